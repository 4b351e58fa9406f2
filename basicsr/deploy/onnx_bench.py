"""Latency and peak memory of one DGFusion engine (torch or onnxruntime), measured in a fresh
process so that the peak resident memory belongs to that engine alone.

``measure_in_subprocess('onnxruntime', 'model.onnx', (H, W), ...)`` spawns a process that loads
the model, runs ``warmup`` untimed and ``repeat`` timed forwards on random (1,1,H,W) frames and
returns ``(median_ms, peak_mib)``: the rise of the process's peak resident set size over its
size after loading (Linux; CUDA: ``torch.cuda.max_memory_allocated``). None where unknown.
"""
from __future__ import annotations

import multiprocessing
import resource
import sys
from pathlib import Path
from typing import Optional, Tuple

import torch

from basicsr.inference.timing import median_ms

ENGINES = ('torch', 'onnxruntime')


def _rss_mib() -> Optional[float]:
    try:
        pages = int(Path('/proc/self/statm').read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * resource.getpagesize() / 2 ** 20


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == 'darwin' else peak / 2 ** 10  # bytes / KiB


def _measure(engine: str, model_path: str, size: Tuple[int, int], repeat: int, warmup: int,
             threads: Optional[int], device: str) -> Tuple[float, Optional[float]]:
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
    base = _rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode():
        ms = median_ms(lambda: net(vis_y, ir), dev, repeat, warmup)
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    else:
        peak = None if base is None else _peak_rss_mib() - base
    return ms, peak


def measure_in_subprocess(engine: str, model_path: str, size: Tuple[int, int], repeat: int,
                          warmup: int, threads: Optional[int] = None,
                          device: str = 'cpu') -> Tuple[float, Optional[float]]:
    """``(median_ms, peak_mib)`` of ``engine`` (``'torch'``: a checkpoint on ``device``;
    ``'onnxruntime'``: an ``.onnx`` file on the CPU) at ``size`` (H, W), batch 1."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {ENGINES}")
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        return pool.apply(_measure, (engine, model_path, size, repeat, warmup, threads, device))
