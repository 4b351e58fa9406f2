"""Colour conversion between RGB and YCbCr (BT.601 full range), as the published model uses."""
from __future__ import annotations

import torch
from kornia.color import rgb_to_ycbcr

__all__ = ['rgb_to_ycbcr', 'ycbcr_to_rgb']


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
