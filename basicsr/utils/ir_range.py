"""How 16-bit images (radiometric thermal frames) are mapped to [0, 1] and to 8 bits.

An 8-bit image is always ``value / 255``. A 16-bit image holds raw sensor counts whose useful
span is a small part of 0..65535, so it is stretched between two limits:

* ``minmax`` -- the image's own minimum and maximum;
* ``percentile:LO,HI`` -- the LO-th and HI-th percentiles of the image (default
  ``percentile:0.5,99.5``): a few hot or dead pixels no longer set the contrast;
* ``fixed:LO,HI`` -- the same raw counts for every image (comparable brightness across a
  sequence; take them from the camera's calibration).

Values outside the limits are clipped. For a video, the limits found on the first frame are
held for the whole run so that brightness does not flicker. The same rule is used by the
network input, the test dataset and ``scripts/evaluate.py``, so metrics agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from basicsr.utils.errors import ConfigError

DEFAULT_IR_RANGE = 'percentile:0.5,99.5'
MODES = ('minmax', 'percentile', 'fixed')
Limits = Tuple[float, float]


@dataclass(frozen=True)
class IrRange:
    """A parsed range rule; see the module docstring. ``lo``/``hi`` are unused for minmax."""

    mode: str = 'percentile'
    lo: float = 0.5
    hi: float = 99.5

    def __str__(self) -> str:
        return self.mode if self.mode == 'minmax' else f"{self.mode}:{self.lo:g},{self.hi:g}"

    def limits(self, img: np.ndarray) -> Limits:
        """Raw limits ``(lo, hi)`` of a 16-bit image under this rule (all channels together)."""
        if self.mode == 'fixed':
            return float(self.lo), float(self.hi)
        if self.mode == 'minmax':
            return float(img.min()), float(img.max())
        lo, hi = np.percentile(img, [self.lo, self.hi])
        return float(lo), float(hi)


def parse_ir_range(text: str, where: str = '--ir-range') -> IrRange:
    """``'minmax'``, ``'percentile:LO,HI'`` (0 <= LO < HI <= 100) or ``'fixed:LO,HI'``
    (0 <= LO < HI <= 65535). Raises ConfigError naming ``where`` and the accepted forms."""
    text = str(text).strip()
    usage = (f"{where}: '{text}' is not minmax, percentile:LO,HI or fixed:LO,HI "
             f"(e.g. {DEFAULT_IR_RANGE} or fixed:7000,12000)")
    mode, _, rest = text.partition(':')
    if mode == 'minmax' and not rest:
        return IrRange('minmax', 0.0, 0.0)
    if mode not in ('percentile', 'fixed'):
        raise ConfigError(usage)
    try:
        lo, hi = (float(v) for v in rest.split(','))
    except ValueError:
        raise ConfigError(usage) from None
    top = 100.0 if mode == 'percentile' else 65535.0
    if not 0 <= lo < hi <= top:
        raise ConfigError(f"{where}: '{text}' needs 0 <= LO < HI <= {top:g}")
    return IrRange(mode, lo, hi)


def to_unit(img: np.ndarray, rule: IrRange, limits: Optional[Limits] = None) -> np.ndarray:
    """uint8 -> ``img / 255``; uint16 -> ``clip((img - lo) / (hi - lo), 0, 1)`` with the
    limits of ``rule`` (or the given ``limits``). Float32, same shape. A 16-bit image whose
    limits are equal gives zeros."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    lo, hi = limits if limits is not None else rule.limits(img)
    if hi <= lo:
        return np.zeros(img.shape, np.float32)
    return np.clip((img.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0)


def unit_to_u8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 ``round(255 x)`` (half to even), as written fused images are."""
    return np.round(np.clip(unit.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def to_u8(img: np.ndarray, rule: IrRange, limits: Optional[Limits] = None) -> np.ndarray:
    """8-bit image as is; 16-bit -> ``round(255 clip((img - lo) / (hi - lo), 0, 1))`` in float64
    (half to even), the 8-bit image the metrics see. Same shape."""
    if img.dtype == np.uint8:
        return img
    lo, hi = limits if limits is not None else rule.limits(img)
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    return unit_to_u8((img.astype(np.float64) - lo) / (hi - lo))
