"""MATLAB's rounding rule, shared by the VSM port, the metrics and the image io."""
from __future__ import annotations

import numpy as np


def matlab_round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero, as MATLAB ``round`` and its integer casts do.

    numpy's ``round`` is half-to-even and differs at .5 (0.5 -> 1, 1.5 -> 2, 2.5 -> 3 here).
    Returns float64 whole numbers of the same shape.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)
