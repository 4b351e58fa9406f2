"""Latency and peak memory of one DGFusion engine (torch or onnxruntime), measured in a fresh
process so that the peak resident memory belongs to that engine alone.

``measure_in_subprocess('onnxruntime', 'model.onnx', (H, W), ...)`` spawns a process that loads
the model, runs ``warmup`` untimed and ``repeat`` timed forwards on random (1,1,H,W) frames and
returns ``(median_ms, peak_mib, max_abs)``: the rise of the process's peak resident set size over
its size after loading (Linux; CUDA: ``torch.cuda.max_memory_allocated``), and, given a saved
float64 reference output (:func:`basicsr.deploy.onnx_check.reference_output`), the max abs
difference from it, computed after the peak was read. None where unknown.
"""
from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Optional, Tuple

import torch

from basicsr.inference.timing import median_ms
from basicsr.utils.process_memory import peak_rss_bytes, return_large_blocks_to_os, rss_bytes

ENGINES = ('torch', 'onnxruntime')


Figures = Tuple[float, Optional[float], Optional[float]]


def _measure(engine: str, model_path: str, size: Tuple[int, int], repeat: int, warmup: int,
             threads: Optional[int], device: str, reference: Optional[str]) -> Figures:
    return_large_blocks_to_os()  # as the fusing entry points do, for both engines
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device if engine == 'torch' else 'cpu')
    if engine == 'torch':
        from basicsr.inference.loader import load_network
        net = load_network(model_path, device=dev)
    else:
        from basicsr.deploy.onnx_runtime import OnnxNetwork
        net = OnnxNetwork(Path(model_path), threads)
    vis_y = torch.rand(1, 1, *size, device=dev)
    ir = torch.rand(1, 1, *size, device=dev)
    cuda = dev.type == 'cuda'
    base = rss_bytes()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode():
        ms = median_ms(lambda: net(vis_y, ir), dev, repeat, warmup)
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    else:
        now = peak_rss_bytes()
        peak = None if base is None or now is None else (now - base) / 2 ** 20
    error = None
    if reference is not None:
        from basicsr.deploy.onnx_check import max_abs_to
        with torch.inference_mode():
            error = max_abs_to(lambda v, i: net(v.to(dev), i.to(dev)),
                               torch.load(reference, weights_only=True))
    return ms, peak, error


def measure_in_subprocess(engine: str, model_path: str, size: Tuple[int, int], repeat: int,
                          warmup: int, threads: Optional[int] = None, device: str = 'cpu',
                          reference: Optional[str] = None) -> Figures:
    """``(median_ms, peak_mib, max_abs)`` of ``engine`` (``'torch'``: a checkpoint on ``device``;
    ``'onnxruntime'``: an ``.onnx`` file on the CPU) at ``size`` (H, W), batch 1; ``max_abs``
    against the float64 output saved at ``reference`` (None without one)."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {ENGINES}")
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(_measure, (engine, model_path, size, repeat, warmup, threads, device,
                                      reference))
