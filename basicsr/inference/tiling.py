"""Running the network on overlapping tiles and blending them.

The network's FFT stages are global, so a tile sees only its own content and tiled output is
not the whole-frame output (see the README, "Fuse your own data", for measured differences);
tile only when the frame does not fit.
"""
from __future__ import annotations

from typing import Callable, List

import torch

Network = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of size ``tile`` covering ``0..length`` with >= ``overlap`` shared."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def ramp(size: int, overlap: int, at_start: bool, at_end: bool, device: torch.device) -> torch.Tensor:
    """(size,) float32 weights: 1 inside, rising linearly over ``overlap`` pixels at shared borders."""
    w = torch.ones(size, device=device)
    if overlap > 0:
        edge = torch.arange(1, size + 1, device=device, dtype=torch.float32) / (overlap + 1)
        if at_start:
            w = torch.minimum(w, edge)
        if at_end:
            w = torch.minimum(w, edge.flip(0))
    return w


def fuse_tiled(net: Network, vis_y: torch.Tensor, ir: torch.Tensor, tile: int,
               overlap: int) -> torch.Tensor:
    """Network output on overlapping ``tile`` x ``tile`` tiles, blended with linear ramps.

    Args:
        net: ``net(vis_y, ir) -> fused_y``.
        vis_y, ir: (B,1,H,W) float in [0,1], on the network's device.
        tile: tile side in pixels (> ``overlap``).
        overlap: pixels shared by neighbouring tiles (>= 0).
    Returns:
        (B,1,H,W) fused luminance, not clamped. The blend weights sum to one per pixel, so a
        per-pixel network gives exactly its untiled output.
    """
    _, _, h, w = vis_y.shape
    acc = torch.zeros_like(vis_y, dtype=torch.float32)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=vis_y.device)
    th, tw = min(tile, h), min(tile, w)
    for y0 in tile_starts(h, tile, overlap):
        wy = ramp(th, overlap, y0 > 0, y0 + th < h, vis_y.device)
        for x0 in tile_starts(w, tile, overlap):
            wx = ramp(tw, overlap, x0 > 0, x0 + tw < w, vis_y.device)
            win = (wy[:, None] * wx[None, :])[None, None]
            part = net(vis_y[..., y0:y0 + th, x0:x0 + tw], ir[..., y0:y0 + th, x0:x0 + tw])
            acc[..., y0:y0 + th, x0:x0 + tw] += part.float() * win
            weight[..., y0:y0 + th, x0:x0 + tw] += win
    return (acc / weight).to(vis_y.dtype)
