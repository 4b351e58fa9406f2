"""``fuse``: colour split, the network (whole frame or tiles), clamp and colour merge."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from basicsr.archs.contract import bytes_per_pixel
from basicsr.inference.memory import MIN_TILE, check_fits
from basicsr.inference.tiling import fuse_tiled
from basicsr.models.precision import autocast
from basicsr.utils.color import merge_luma, split_luma
from basicsr.utils.errors import ConfigError, DataError

DEFAULT_OVERLAP = 32


def resolve_overlap(tile: Optional[int], overlap: Optional[int]) -> int:
    """``overlap``, or by default 32 pixels (a quarter of tiles smaller than 128)."""
    if overlap is not None:
        return overlap
    return min(DEFAULT_OVERLAP, (tile or 0) // 4)


def check_tile(tile: Optional[int], overlap: Optional[int] = None) -> None:
    """ConfigError unless ``tile`` is None or >= 32 and ``0 <= overlap < tile``."""
    if tile is None:
        return
    overlap = resolve_overlap(tile, overlap)
    if tile < MIN_TILE:
        raise ConfigError(f"tile {tile} is too small: use at least {MIN_TILE} pixels (tiles "
                          f"see only their own content; tiny ones fuse badly)")
    if not 0 <= overlap < tile:
        raise ConfigError(f"tile overlap {overlap} must be >= 0 and below the tile size {tile}")


def _check_inputs(vis: torch.Tensor, ir: torch.Tensor) -> None:
    if vis.dim() != 4 or vis.shape[1] not in (1, 3):
        raise DataError(f"visible input must be (B,3,H,W) RGB or (B,1,H,W) gray, got {tuple(vis.shape)}")
    if ir.dim() != 4 or ir.shape[1] != 1:
        raise DataError(f"infrared input must be (B,1,H,W), got {tuple(ir.shape)}")
    if vis.shape[0] != ir.shape[0] or vis.shape[-2:] != ir.shape[-2:]:
        raise DataError(f"visible {tuple(vis.shape)} and infrared {tuple(ir.shape)} differ in "
                        f"batch or size")


@torch.inference_mode()
def fuse(net: nn.Module, vis: torch.Tensor, ir: torch.Tensor, tile: Optional[int] = None,
         overlap: Optional[int] = None, memory_budget: Optional[int] = None,
         check_memory: bool = True, precision: str = 'fp32') -> torch.Tensor:
    """Fuse visible and infrared images with a fusion network, as the published DGFusion
    pipeline does.

    The visible RGB image is converted to YCbCr (BT.601); its Y and the infrared image go
    through ``net``; the fused Y is clamped to [0,1] and recombined with the visible Cb/Cr.
    A gray visible image gives a gray result.

    Args:
        net: ``net(vis_y, ir) -> fused_y``, in eval mode.
        vis: (B,3,H,W) RGB or (B,1,H,W) gray, float in [0,1], any H and W.
        ir: (B,1,H,W) float in [0,1]. Both are moved to the network's device.
        tile: None for one whole-frame pass, else the side (>= 32) of overlapping tiles
            blended with linear ramps (output differs from the whole frame: the FFTs are global).
        overlap: pixels shared by neighbouring tiles (default 32, a quarter of smaller tiles).
        memory_budget: bytes the pass may use (default: 90% of the free memory).
        check_memory: refuse, before starting, a pass whose estimated peak memory does not
            fit (:class:`basicsr.inference.memory.FrameTooLarge`, with a suggested tile), by
            the network's memory model (:func:`basicsr.archs.contract.bytes_per_pixel`;
            none: not checked).
        precision: ``fp32`` (default: no autocast), ``bf16`` or ``fp16``: the network call
            runs under that autocast (:func:`basicsr.models.precision.autocast`; which
            precision a device may use is the caller's check,
            :func:`basicsr.models.precision.check_precision`); its output is cast to float32
            before the clamp and colour merge.

    Returns:
        (B,3,H,W) or (B,1,H,W) float32 in [0,1] on the network's device.
    """
    _check_inputs(vis, ir)
    check_tile(tile, overlap)
    param = next(net.parameters(), None)
    device = param.device if param is not None else vis.device
    vis, ir = vis.to(device), ir.to(device)
    b, _, h, w = vis.shape
    whole = tile is None or (h <= tile and w <= tile)
    if check_memory:
        region = (h, w) if whole else (min(tile, h), min(tile, w))
        check_fits(bytes_per_pixel(net), region, b, device, memory_budget, tiled=not whole,
                   network=type(net).__name__)
    vis_y, cbcr = split_luma(vis)
    with autocast(precision, device):
        fused_y = net(vis_y, ir) if whole else fuse_tiled(net, vis_y, ir, tile, resolve_overlap(tile, overlap))
    return merge_luma(fused_y.float(), cbcr)
