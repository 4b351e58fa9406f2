"""Colour conversion between RGB and YCbCr (BT.601 full range), as the published model uses."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from kornia.color import rgb_to_ycbcr

__all__ = ['rgb_to_ycbcr', 'ycbcr_to_rgb', 'split_luma', 'merge_luma']


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) YCbCr in [0,1] -> RGB, with the published model's inverse coefficients.

    ``R = Y + 1.403 (Cr-0.5)``, ``G = Y - 0.714 (Cr-0.5) - 0.344 (Cb-0.5)``,
    ``B = Y + 1.773 (Cb-0.5)``. kornia's inverse uses the exact reciprocals of the forward
    factors; the published pipeline rounds them, which shifts a few 8-bit pixels, so the
    rounded ones are kept here to reproduce its fused images. Not clamped.
    """
    if ycbcr.dim() < 3 or ycbcr.shape[-3] != 3:
        raise ValueError(f"ycbcr_to_rgb expects (*,3,H,W), got {tuple(ycbcr.shape)}")
    y, cb, cr = ycbcr[..., 0, :, :], ycbcr[..., 1, :, :] - 0.5, ycbcr[..., 2, :, :] - 0.5
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return torch.stack([r, g, b], dim=-3)


def split_luma(vis: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(B,3,H,W) RGB in [0,1] -> Y (B,1,H,W) and CbCr (B,2,H,W); (B,1,H,W) gray -> itself, None."""
    if vis.shape[1] == 1:
        return vis, None
    ycbcr = rgb_to_ycbcr(vis)
    return ycbcr[:, :1], ycbcr[:, 1:]


def merge_luma(fused_y: torch.Tensor, cbcr: Optional[torch.Tensor]) -> torch.Tensor:
    """Clamp the fused Y to [0,1] and rebuild RGB with the visible Cb/Cr (clamped to [0,1])."""
    fused_y = fused_y.clamp(0, 1)
    if cbcr is None:
        return fused_y
    return ycbcr_to_rgb(torch.cat([fused_y, cbcr], dim=1)).clamp(0, 1)
