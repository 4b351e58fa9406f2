"""Weight-free reference fusions: the pixel average and the pixel maximum of the luminance.

They run through :func:`basicsr.inference.fuse` like the network (visible Y and infrared in,
fused Y out, recombined with the visible Cb/Cr), so their colour handling and rounding are
exactly those of DGFusion's outputs; any score difference comes from the fusion rule alone.
"""
from __future__ import annotations

from typing import Dict, Type

import torch
import torch.nn as nn


class PixelAverage(nn.Module):
    """``fused_y = (vis_y + ir) / 2``; inputs (B,1,H,W) in [0,1]."""

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return (vis_y + ir) * 0.5


class PixelMaximum(nn.Module):
    """``fused_y = max(vis_y, ir)`` per pixel; inputs (B,1,H,W) in [0,1]."""

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return torch.maximum(vis_y, ir)


BASELINES: Dict[str, Type[nn.Module]] = {'average': PixelAverage, 'maximum': PixelMaximum}


class BaselineModel:
    """A baseline with the call surface of a loaded model (``net``, ``device``, ``describe()``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.net = BASELINES[name]().train(False)
        self.device = torch.device('cpu')

    def describe(self) -> str:
        return f"baseline '{self.name}' of the visible luminance and the infrared (no weights)"
