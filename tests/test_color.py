"""Colour helpers: RGB <-> YCbCr split of the visible image and the merge of the fused Y."""
from __future__ import annotations

import torch

from basicsr.utils.color import merge_luma, split_luma


def test_split_luma_is_bt601_full_range():
    vis = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    r, g, b = vis[:, 0:1], vis[:, 1:2], vis[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    vis_y, cbcr = split_luma(vis)
    torch.testing.assert_close(vis_y, y, atol=1e-6, rtol=0)
    torch.testing.assert_close(cbcr, torch.cat([(b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5], 1),
                               atol=1e-3, rtol=0)


def test_gray_passes_through_and_merge_clamps():
    gray = torch.rand(1, 1, 3, 6)
    vis_y, cbcr = split_luma(gray)
    assert vis_y is gray and cbcr is None
    fused_y = torch.tensor([[[[-0.5, 0.25, 1.5]]]])
    assert torch.equal(merge_luma(fused_y, None), torch.tensor([[[[0.0, 0.25, 1.0]]]]))


def test_merge_rebuilds_rgb_with_the_visible_chroma():
    """Neutral chroma (0.5) gives gray RGB equal to the clamped fused Y; the inverse is the published one."""
    fused_y = torch.tensor([[[[0.2, 0.9]]]])
    neutral = torch.full((1, 2, 1, 2), 0.5)
    torch.testing.assert_close(merge_luma(fused_y, neutral), fused_y.expand(1, 3, 1, 2))
    cbcr = torch.tensor([[[[0.6, 0.4]], [[0.3, 0.7]]]])  # Cb, Cr
    cb, cr = cbcr[:, :1] - 0.5, cbcr[:, 1:] - 0.5
    expected = torch.cat([fused_y + 1.403 * cr, fused_y - 0.714 * cr - 0.344 * cb,
                          fused_y + 1.773 * cb], 1).clamp(0, 1)
    torch.testing.assert_close(merge_luma(fused_y, cbcr), expected)
