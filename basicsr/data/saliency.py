"""Histogram-contrast visual saliency (VSM) and the visible/infrared masks built from it.

Port of the published ``VSM.m`` mask script (saliency of Ma et al., "Infrared and visible
image fusion based on visual saliency map and weighted least square optimization",
Infrared Physics & Technology 82, 2017). For an 8-bit gray image ``g`` with histogram
``hist``::

    T[j] = sum_i hist[i] * |j - i|        (j = 0..255, exact integers)
    S    = mat2gray(T[g])                 ((S - min S) / (max S - min S), 0 if constant)

Masks (``mode``):

* ``'dgfusion'`` (default, what the published script writes): ``w = S_vis / (S_vis - S_ir)``
  saved as an image, i.e. clipped to [0, 1] with NaN -> 0. That is the binary map
  ``1 where S_vis > S_ir, or S_vis == S_ir > 0; else 0``.
* ``'weighted'``: ``S_vis / (S_vis + S_ir)``, 0.5 where both are zero.

Gray conversion (:func:`to_gray_u8`) follows the script: channel mean in float64, then
MATLAB rounding ``floor(x + 0.5)``. Deviations from the script, where it cannot run:

* a 3-channel infrared image is converted like the visible one (the script fails on it);
* 16-bit input is min-max scaled to 0..255 before rounding (the script only reads 8-bit);
  a constant 16-bit image becomes all zeros;
* a saliency map that is constant (max == min) is all zeros. For a constant image this is
  what mat2gray gives too (S is 0 there); for the only other case, a two-valued image with
  equal counts, MATLAB/Octave mat2gray would clip the constant to 1.

Everything is order-independent over channels, so RGB and BGR arrays give the same result.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from basicsr.utils.errors import DataError
from basicsr.utils.img_util import check_declared_size
from basicsr.utils.rounding import matlab_round

logger = logging.getLogger(__name__)

MODES = ('dgfusion', 'weighted')


# floor(s / 3 + 0.5) for the channel sums s = 0..765 of an 8-bit 3-channel image
_MEAN3_ROUND = matlab_round(np.arange(766) / 3.0).astype(np.uint8)


def _shape_str(a: np.ndarray) -> str:
    return 'x'.join(str(s) for s in a.shape)


def to_gray_u8(img: np.ndarray) -> np.ndarray:
    """Convert an image as OpenCV reads it to the 8-bit gray image the VSM script works on.

    Args:
        img: (H, W), (H, W, 1) or (H, W, 3) array, uint8 or uint16, any channel order.
    Returns:
        (H, W) uint8. 3 channels: mean over channels in float64, then ``floor(x + 0.5)``.
        uint16: (channel mean, then) min-max scaled to 0..255 and rounded the same way;
        a constant 16-bit image gives zeros.
    Raises:
        DataError: other dtypes or shapes.
    """
    if not isinstance(img, np.ndarray):
        raise DataError(f"expected a numpy image array, got {type(img).__name__}")
    if img.dtype not in (np.uint8, np.uint16):
        raise DataError(f"unsupported image dtype {img.dtype} (expected uint8 or uint16)")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)) or img.size == 0:
        raise DataError(f"unsupported image shape {_shape_str(img)} (expected HxW, HxWx1 or HxWx3)")

    if img.dtype == np.uint8:
        if img.ndim == 2:
            return np.ascontiguousarray(img)
        # the float64 mean + rounding tabulated over the exact channel sums 0..765: the
        # same numbers as computing it per pixel, about 6x faster
        total = img[:, :, 0].astype(np.uint16)
        total += img[:, :, 1]
        total += img[:, :, 2]
        return np.take(_MEAN3_ROUND, total)
    # (a + b + c) / 3 in float64 is exact for equal channels, so no special case needed
    gray = img.astype(np.float64) if img.ndim == 2 else img.astype(np.float64).sum(axis=2) / 3.0

    lo, hi = float(gray.min()), float(gray.max())
    logger.debug('16-bit image min-max scaled from [%g, %g] to 0..255', lo, hi)
    if hi == lo:
        return np.zeros(gray.shape, np.uint8)
    # (x - lo) * 255 is exact, so the division is the only rounding step
    return matlab_round((gray - lo) * 255.0 / (hi - lo)).astype(np.uint8)


def _check_gray_u8(gray_u8: np.ndarray) -> None:
    if not isinstance(gray_u8, np.ndarray) or gray_u8.dtype != np.uint8 or gray_u8.ndim != 2:
        what = (f"{gray_u8.dtype} array of shape {_shape_str(gray_u8)}"
                if isinstance(gray_u8, np.ndarray) else type(gray_u8).__name__)
        raise DataError(f"VSM saliency expects a 2-D uint8 gray image, got {what}")
    if gray_u8.size == 0:
        raise DataError("VSM saliency expects a non-empty image, got shape "
                        f"{_shape_str(gray_u8)}")


def _hist(gray_u8: np.ndarray) -> np.ndarray:
    _check_gray_u8(gray_u8)
    return np.bincount(gray_u8.ravel(), minlength=256).astype(np.int64)


def _table_from_hist(hist: np.ndarray) -> np.ndarray:
    j = np.arange(256, dtype=np.int64)
    count_le = np.cumsum(hist)               # sum_{i<=j} hist[i]
    moment_le = np.cumsum(j * hist)          # sum_{i<=j} i * hist[i]
    # sum_{i<=j} (j-i) h[i] + sum_{i>j} (i-j) h[i], regrouped
    return j * (2 * count_le - count_le[-1]) + moment_le[-1] - 2 * moment_le


def saliency_table_int(gray_u8: np.ndarray) -> np.ndarray:
    """Exact contrast table ``T[j] = sum_i hist[i] * |j - i|`` of an 8-bit gray image.

    Args:
        gray_u8: (H, W) uint8.
    Returns:
        (256,) int64.
    """
    return _table_from_hist(_hist(gray_u8))


def saliency_table(gray_u8: np.ndarray) -> np.ndarray:
    """Normalised saliency per gray level: ``S = table[gray_u8]`` (see :func:`vsm_saliency`).

    Args:
        gray_u8: (H, W) uint8.
    Returns:
        (256,) float64; levels present in the image map into [0, 1], the others to >= 0
        (T is convex with its kinks at present levels, so its minimum is at one of them).
    """
    hist = _hist(gray_u8)
    t = _table_from_hist(hist)
    present = t[hist > 0]
    lo, hi = int(present.min()), int(present.max())
    if hi == lo:
        return np.zeros(256, np.float64)
    # the same (S - min) / (max - min) per pixel, done once per level
    return (t - lo).astype(np.float64) / float(hi - lo)


def vsm_saliency(gray_u8: np.ndarray) -> np.ndarray:
    """Visual saliency map of an 8-bit gray image (histogram contrast, mat2gray-normalised).

    Args:
        gray_u8: (H, W) uint8.
    Returns:
        (H, W) float64 in [0, 1]; all zeros when the saliency is constant.

    Example:
        >>> vsm_saliency(np.array([[0, 10, 10, 30]], np.uint8))  # T = 50, 30, 30, 70
        array([[0.5, 0. , 0. , 1. ]])
    """
    return saliency_table(gray_u8)[gray_u8]


def mask_from_saliency(s_vis: np.ndarray, s_ir: np.ndarray, mode: str = 'dgfusion') -> np.ndarray:
    """Combine two saliency maps into a mask.

    Args:
        s_vis, s_ir: same-shape float arrays in [0, 1].
        mode: ``'dgfusion'`` (binary; 1 where s_vis > s_ir or s_vis == s_ir > 0) or
            ``'weighted'`` (s_vis / (s_vis + s_ir), 0.5 where both are 0).
    Returns:
        float64 array of the same shape, in [0, 1].
    """
    _check_mode(mode)
    s_vis = np.asarray(s_vis, dtype=np.float64)
    s_ir = np.asarray(s_ir, dtype=np.float64)
    if mode == 'dgfusion':
        # s_vis > s_ir already implies s_vis > 0, so this covers the strict case and the ties
        return ((s_vis >= s_ir) & (s_vis > 0)).astype(np.float64)
    total = s_vis + s_ir
    out = np.full(total.shape, 0.5)
    np.divide(s_vis, total, out=out, where=total > 0)
    return out


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise DataError(f"unknown saliency mask mode '{mode}' (expected one of {', '.join(MODES)})")


def _gray_pair(vis: np.ndarray, ir: np.ndarray, mode: str) -> tuple:
    _check_mode(mode)
    vis_g, ir_g = to_gray_u8(vis), to_gray_u8(ir)
    if vis_g.shape != ir_g.shape:
        raise DataError(f"size mismatch: visible {_shape_str(vis_g)} vs infrared "
                        f"{_shape_str(ir_g)} (HxW)")
    return vis_g, ir_g


def _pair_lut(vis_g: np.ndarray, ir_g: np.ndarray, mode: str) -> np.ndarray:
    """(256, 256) float64 mask value of every (vis level, ir level) combination."""
    return mask_from_saliency(saliency_table(vis_g)[:, None], saliency_table(ir_g)[None, :], mode)


def _lookup(lut: np.ndarray, vis_g: np.ndarray, ir_g: np.ndarray) -> np.ndarray:
    # one gather with the index vis * 256 + ir instead of two full-size saliency images
    idx = vis_g.astype(np.uint16)
    idx <<= 8
    idx |= ir_g
    return np.take(lut.ravel(), idx)


def saliency_mask(vis: np.ndarray, ir: np.ndarray, mode: str = 'dgfusion') -> np.ndarray:
    """VSM mask of a visible/infrared pair, as the published script computes it.

    Args:
        vis: (H, W, 3) or (H, W) uint8/uint16, RGB or BGR (the channel mean is used).
        ir: (H, W), (H, W, 1) or (H, W, 3) uint8/uint16.
        mode: ``'dgfusion'`` (binary, default) or ``'weighted'``; see the module docstring.
    Returns:
        (H, W) float32 in [0, 1]: per pixel, :func:`mask_from_saliency` of the two
        :func:`vsm_saliency` maps.
    Raises:
        DataError: unsupported dtype/shape, different sizes, unknown mode.
    """
    vis_g, ir_g = _gray_pair(vis, ir, mode)
    return _lookup(_pair_lut(vis_g, ir_g, mode).astype(np.float32), vis_g, ir_g)


def saliency_mask_u8(vis: np.ndarray, ir: np.ndarray, mode: str = 'dgfusion') -> np.ndarray:
    """The mask as the script writes it: :func:`mask_to_u8` of the float64 mask.

    Same arguments as :func:`saliency_mask`. Returns (H, W) uint8 (0/255 in dgfusion mode).
    """
    vis_g, ir_g = _gray_pair(vis, ir, mode)
    return _lookup(mask_to_u8(_pair_lut(vis_g, ir_g, mode)), vis_g, ir_g)


def mask_to_u8(mask: np.ndarray) -> np.ndarray:
    """Mask in [0, 1] -> uint8 the way MATLAB writes a double image: ``floor(m * 255 + 0.5)``.

    Args:
        mask: float array in [0, 1] (values outside are clipped, NaN -> 0).
    Returns:
        uint8 array of the same shape (a binary mask becomes 0/255).
    """
    m = np.nan_to_num(np.asarray(mask, dtype=np.float64), nan=0.0)
    return matlab_round(np.clip(m, 0.0, 1.0) * 255.0).astype(np.uint8)


def read_mask(path: Union[str, Path]) -> np.ndarray:
    """Read a mask PNG written by MATLAB (8-bit, 0..255) or GNU Octave (16-bit, 0..65535).

    Args:
        path: image file; single channel, or 3 equal channels (first one used).
    Returns:
        (H, W) float32 in [0, 1].
    Raises:
        DataError: unreadable file or unsupported dtype/shape.
    """
    if Path(path).is_file():
        check_declared_size(path)  # refuse a huge declared size before decoding
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: cannot read mask image")
    if img.ndim == 3:
        img = img[:, :, 0]
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype)
    if scale is None:
        raise DataError(f"{path}: unsupported mask dtype {img.dtype} (expected 8- or 16-bit)")
    return (img.astype(np.float64) / scale).astype(np.float32)
