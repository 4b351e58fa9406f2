"""Metrics of one fused image, with a reason for every value that cannot be computed."""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

# MS-SSIM's five scales of 11-pixel windows: the largest footprint among the metrics
LARGEST_WINDOW = 176


def undefined_reason(value: float, images: Dict[str, np.ndarray]) -> str:
    """Why a metric came out NaN or infinite on these images (fused, vis, ir arrays)."""
    kind = 'NaN' if math.isnan(value) else ('+inf' if value > 0 else '-inf')
    constant = [name for name, img in images.items() if img.size and img.min() == img.max()]
    h, w = next(iter(images.values())).shape[:2]
    if constant:
        why = f"constant {'/'.join(constant)} image"
    elif min(h, w) < LARGEST_WINDOW:
        why = f"{h}x{w} is too small for the metric's windows"
    else:
        why = 'undefined for these images'
    return f"{kind}: {why}"


def score(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, names: Sequence[str],
          convention: str, image: str) -> Tuple[Dict[str, float], List[str]]:
    """``compute_metrics`` on 8-bit images as stored ((H,W) or (H,W,3) RGB).

    Returns the values (non-finite ones kept as they are; tables show them as n/a) and one
    note ``"<image>: <metric> n/a (<reason>)"`` per non-finite value.
    """
    from basicsr.metrics import compute_metrics
    values = compute_metrics(fused, vis, ir, list(names), convention)
    images = {'fused': fused, 'vis': vis, 'ir': ir}
    notes = [f"{image}: {name} n/a ({undefined_reason(v, images)})"
             for name, v in values.items() if not math.isfinite(v)]
    return values, notes
