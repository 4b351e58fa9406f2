"""Input preparation of the fusion metrics, per convention.

Images enter as numpy arrays in **RGB** order, (H, W, 3), or gray, (H, W) / (H, W, 1):
uint8, or float arrays holding values in [0, 255]. They leave as 2-D float64 planes holding
integers 0..255, one ``(fused, vis, ir)`` triple per evaluated plane.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from basicsr.utils.img_util import read_image
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.ir_range import IrRange, to_u8
from basicsr.utils.rounding import matlab_round

logger = logging.getLogger(__name__)

CONVENTIONS = ('vifb', 'tang', 'cddfuse')

# MATLAB rgb2gray coefficients (the exact doubles of the inverse NTSC transform row).
_MATLAB_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)

Plane = np.ndarray
Triple = Tuple[Plane, Plane, Plane]


@dataclass
class PreparedInputs:
    """Prepared planes of one image triple.

    Attributes:
        convention: the convention the planes were prepared for.
        planes: ``(fused, vis, ir)`` triples of (H, W) float64 arrays holding integers 0..255;
            one triple for ``tang``/``cddfuse``, one per channel (R, G, B) for RGB ``vifb``.
        folded: for ``vifb``, the triple folded into (H, C*W) ``[R | G | B]`` arrays that SF
            uses; equal to ``planes[0]`` for gray data; None otherwise.
    """

    convention: str
    planes: List[Triple]
    folded: Union[Triple, None] = None


def check_convention(convention: str) -> str:
    """Return ``convention`` or raise ConfigError naming the accepted ones."""
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown metric convention '{convention}' (expected one of "
                          f"{', '.join(CONVENTIONS)})")
    return convention


def read_image_rgb(path: Union[str, Path], ir_range: Optional[IrRange] = None) -> np.ndarray:
    """Read an image file as RGB (H, W, 3) uint8, or gray (H, W) uint8.

    The file is decoded as stored (``cv2.IMREAD_UNCHANGED``): a 1-channel file stays 2-D,
    an alpha channel is dropped, BGR is flipped to RGB. A 16-bit file is mapped to 8 bits by
    ``ir_range`` (the rule the fusion pipeline applies to 16-bit thermal frames, see
    ``basicsr.utils.ir_range``); without a rule it is refused. Raises DataError for
    unreadable files and for other bit depths.
    """
    img = read_image(path)
    if img.dtype == np.uint16 and ir_range is not None:
        return to_u8(img, ir_range)
    if img.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit image, got dtype {img.dtype}"
                        + (' (16-bit infrared needs an --ir-range rule)' if img.dtype == np.uint16 else ''))
    return img


def to_uint8(img: np.ndarray, name: str, convention: str) -> np.ndarray:
    """Validate one input image and return it as uint8, (H, W) or (H, W, 3).

    Accepts uint8, or float arrays with values in [0, 255]. Non-integer floats are rounded
    to 8 bits with a warning (half away from zero for ``vifb``/``tang`` as MATLAB's uint8
    cast does, half to even for ``cddfuse`` as ``np.round`` does): metrics such as MI and
    EN are only meaningful on quantised images. Other dtypes (uint16, int, bool) raise.
    """
    if not isinstance(img, np.ndarray):
        raise DataError(f"{name}: expected a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise DataError(f"{name}: expected an (H, W) or (H, W, 3) RGB image, got shape "
                        f"{tuple(img.shape)}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise DataError(f"{name}: empty image of shape {tuple(img.shape)}")
    if img.dtype == np.uint8:
        return img
    if not np.issubdtype(img.dtype, np.floating):
        raise DataError(f"{name}: expected uint8 or float values 0..255, got dtype {img.dtype} "
                        f"(convert to 8 bits first)")
    if not np.all(np.isfinite(img)):
        raise DataError(f"{name}: contains NaN or infinite values")
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > 255.0:
        raise DataError(f"{name}: float values must lie in [0, 255], got [{lo:g}, {hi:g}] "
                        f"(a 0..1 image must be multiplied by 255 first)")
    img = img.astype(np.float64)
    rounded = np.round(img) if convention == 'cddfuse' else matlab_round(img)
    if np.any(rounded != img):
        logger.warning('%s: non-integer float values rounded to 8 bits before the metrics', name)
    return rounded.astype(np.uint8)


def gray_tang(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` on uint8 (``tang``): (H, W, 3) RGB -> (H, W) uint8; gray passes."""
    if img.ndim == 2:
        return img
    # by hand: cv2.cvtColor's coefficients and half-to-even rounding would move tang MI
    rgb = img.astype(np.float64)
    r, g, b = _MATLAB_GRAY
    y = r * rgb[..., 0] + g * rgb[..., 1] + b * rgb[..., 2]
    return np.clip(matlab_round(y), 0, 255).astype(np.uint8)


def gray_cddfuse(img: np.ndarray) -> np.ndarray:
    """cv2-style float32 gray of CDDFuse: (H, W[, 3]) uint8 -> (H, W) uint8.

    ``cv2.imread`` replicates a 1-channel file to 3 channels, so a gray input goes through
    the same float32 weighted sum (whose coefficients need not sum to exactly 1 in float32)
    before half-to-even rounding.
    """
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    y = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def _channels(img: np.ndarray, count: int) -> List[np.ndarray]:
    """Split (H, W, 3) into R, G, B planes; repeat a gray plane ``count`` times."""
    if img.ndim == 2:
        return [img] * count
    return [img[:, :, k] for k in range(3)]


def prepare_inputs(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray,
                   convention: str) -> PreparedInputs:
    """Validate three images and prepare their planes for ``convention``.

    Args:
        fused, vis, ir: RGB (H, W, 3) or gray (H, W) arrays, uint8 or float 0..255, equal H, W.
        convention: ``vifb`` (per channel, no gray conversion), ``tang`` (MATLAB rgb2gray with
            half-away rounding) or ``cddfuse`` (float32 cv2 gray with half-even rounding).

    Returns:
        PreparedInputs with float64 planes holding integers 0..255.

    Raises:
        ConfigError for an unknown convention; DataError for bad dtypes, shapes or sizes, and
        for ``vifb`` with a 1-channel fused image and an RGB source.
    """
    check_convention(convention)
    named = (('fused', fused), ('vis', vis), ('ir', ir))
    images = {n: to_uint8(x, n, convention) for n, x in named}
    sizes = {n: x.shape[:2] for n, x in images.items()}
    if len(set(sizes.values())) != 1:
        listed = ', '.join(f"{n} {h}x{w}" for n, (h, w) in sizes.items())
        raise DataError(f'image sizes differ: {listed}')
    f8, v8, i8 = images['fused'], images['vis'], images['ir']

    if convention in ('tang', 'cddfuse'):
        gray = gray_tang if convention == 'tang' else gray_cddfuse
        triple = tuple(gray(x).astype(np.float64) for x in (f8, v8, i8))
        return PreparedInputs(convention, [triple])

    if f8.ndim == 2 and (v8.ndim == 3 or i8.ndim == 3):
        raise DataError("vifb convention: a 1-channel fused image with an RGB source is not "
                        "supported; rebuild the RGB fused image first (VIFB scores R, G and B "
                        "separately)")
    count = 3 if f8.ndim == 3 else 1
    chans = [[c.astype(np.float64) for c in _channels(x, count)] for x in (f8, v8, i8)]
    planes = [tuple(chans[j][k] for j in range(3)) for k in range(count)]
    folded = tuple(np.concatenate(chans[j], axis=1) for j in range(3))
    return PreparedInputs(convention, planes, folded)
