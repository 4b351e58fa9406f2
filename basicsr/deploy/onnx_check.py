"""Checks of an exported network against its float64 reference, run in onnxruntime.

fp32 exports: max absolute difference of the (unclamped) fused Y from the network's float64
reference evaluation (its spec's ``reference_forward``, else its own forward in float64). fp16
exports: PSNR (peak 1) of the clamped fused Y against the float32 evaluation of the exported
module.
"""
from __future__ import annotations

import copy
import math
from typing import Tuple

import torch
import torch.nn as nn

from basicsr.archs.contract import exportable_module, reference_forward

PARITY_TOL = 1e-4


def random_pair(size: Tuple[int, int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1,1,H,W) float64 visible Y and infrared, uniform in [0,1]."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(1, 1, *size, generator=gen, dtype=torch.float64) for _ in range(2))


@torch.no_grad()
def reference_output(net: nn.Module, size: Tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(1,1,H,W) float64 reference output of ``net`` on ``random_pair(size, seed)``."""
    vis_y, ir = random_pair(size, seed)
    return reference_forward(copy.deepcopy(net).cpu().double().train(False), vis_y, ir)


@torch.no_grad()
def max_abs_to(run, reference: torch.Tensor, seed: int = 0) -> float:
    """max |run(vis_y, ir) - reference| on ``random_pair`` of the reference's size, ``seed``
    (the pair ``reference`` was computed on). ``run``: callable taking float32 (1,1,H,W)
    tensors (e.g. an ``OnnxNetwork`` or a module)."""
    vis_y, ir = random_pair(tuple(reference.shape[-2:]), seed)
    return float((run(vis_y.float(), ir.float()).double().cpu() - reference).abs().max())


def max_abs_to_reference(run, net: nn.Module, size: Tuple[int, int], seed: int = 0) -> float:
    """max |run(vis_y, ir) - the float64 reference of ``net``| on a random (H, W) pair.

    ``run``: callable taking float32 (1,1,H,W) tensors (e.g. an ``OnnxNetwork``).
    """
    return max_abs_to(run, reference_output(net, size, seed), seed)


@torch.no_grad()
def psnr_to_fp32(run, net: nn.Module, size: Tuple[int, int], seed: int = 0) -> float:
    """PSNR in dB (peak 1) of ``run``'s clamped fused Y against the float32 exported module's."""
    vis_y, ir = random_pair(size, seed)
    vis_y, ir = vis_y.float(), ir.float()
    ref = exportable_module(copy.deepcopy(net).cpu().float())(vis_y, ir).clamp(0, 1)
    mse = float(((run(vis_y, ir).float().clamp(0, 1) - ref) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
