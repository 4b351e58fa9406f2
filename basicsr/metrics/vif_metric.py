"""Multi-scale pixel-domain visual information fidelity (VIF), ``tang`` and ``cddfuse``.

Sheikh & Bovik, "Image information and visual quality", IEEE TIP 2006, in the pixel-domain
multi-scale form of the LIVE ``vifp_mscale`` script:
``VIF = vifp(IR, F) + vifp(VI, F)`` with the source as reference and the fused image as the
distorted signal.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np

from basicsr.metrics.common import gaussian_1d
from basicsr.metrics.metric_base import register_metric
from basicsr.utils.errors import ConfigError


_NOISE_VAR = 2.0  # sigma_n^2 of the HVS noise model
_EPS = 1e-10
_NUM_SCALES = 4


def _filter_valid(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Separable ``filter2(w, image, 'valid')`` with ``w = outer(k, k)``: (H-n+1, W-n+1), maybe empty."""
    n = kernel_1d.size
    h, w = image.shape
    if h < n or w < n:
        return np.zeros((max(h - n + 1, 0), max(w - n + 1, 0)))
    same = cv2.sepFilter2D(np.ascontiguousarray(image), cv2.CV_64F, kernel_1d, kernel_1d,
                           borderType=cv2.BORDER_CONSTANT)
    c = n // 2
    return same[c:c + h - n + 1, c:c + w - n + 1]


def _scale_terms(ref: np.ndarray, dist: np.ndarray, k: np.ndarray,
                 mu2: np.ndarray, sigma2_sq: np.ndarray) -> Tuple[float, float]:
    """Numerator and denominator sums of one scale (distorted-image statistics precomputed)."""
    mu1 = _filter_valid(ref, k)
    sigma1_sq = _filter_valid(ref * ref, k) - mu1 * mu1
    sigma12 = _filter_valid(ref * dist, k) - mu1 * mu2
    sigma1_sq = np.maximum(sigma1_sq, 0.0)
    g = sigma12 / (sigma1_sq + _EPS)
    sv_sq = sigma2_sq - g * sigma12
    # The reference applies these corrections in this order; later ones see earlier results.
    low1 = sigma1_sq < _EPS
    g[low1] = 0.0
    sv_sq[low1] = sigma2_sq[low1]
    sigma1_sq[low1] = 0.0
    low2 = sigma2_sq < _EPS
    g[low2] = 0.0
    sv_sq[low2] = 0.0
    neg = g < 0
    sv_sq[neg] = sigma2_sq[neg]
    g[neg] = 0.0
    sv_sq[sv_sq <= _EPS] = _EPS
    num = float(np.sum(np.log10(1.0 + g * g * sigma1_sq / (sv_sq + _NOISE_VAR))))
    den = float(np.sum(np.log10(1.0 + sigma1_sq / _NOISE_VAR)))
    return num, den


def vifp_multi(refs: Sequence[np.ndarray], dist: np.ndarray) -> List[float]:
    """``vifp(ref, dist)`` for several references against one distorted image.

    Args:
        refs: 2-D float64 reference images (H, W), values 0..255.
        dist: 2-D float64 distorted (fused) image of the same shape.

    Returns:
        One ``num/den`` ratio per reference; NaN where ``den`` is 0 (constant reference, or an
        image below 17 px per side). Scales whose filtered image is empty (sides < 41 px for the
        coarsest one) add nothing.
    """
    refs = [np.asarray(r, dtype=np.float64) for r in refs]
    dist = np.asarray(dist, dtype=np.float64)
    nums = [0.0] * len(refs)
    dens = [0.0] * len(refs)
    for scale in range(1, _NUM_SCALES + 1):
        n = 2 ** (_NUM_SCALES - scale + 1) + 1  # 17, 9, 5, 3
        k = gaussian_1d(n, n / 5.0)
        if scale > 1:
            refs = [_filter_valid(r, k)[::2, ::2] for r in refs]
            dist = _filter_valid(dist, k)[::2, ::2]
        mu2 = _filter_valid(dist, k)
        sigma2_sq = np.maximum(_filter_valid(dist * dist, k) - mu2 * mu2, 0.0)
        for i, ref in enumerate(refs):
            num, den = _scale_terms(ref, dist, k, mu2, sigma2_sq)
            nums[i] += num
            dens[i] += den
    with np.errstate(divide='ignore', invalid='ignore'):
        return [float(np.float64(nm) / np.float64(dn)) for nm, dn in zip(nums, dens)]


def vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """Multi-scale pixel VIF of ``dist`` against ``ref`` (2-D float64, 0..255); NaN if undefined."""
    return vifp_multi([ref], dist)[0]


@register_metric('VIF', conventions=('tang', 'cddfuse'), higher_better=True)
def vif(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """VIF = vifp(IR, F) + vifp(VI, F) on gray planes (H, W) holding integers 0..255.

    ``tang`` returns NaN when a vifp is undefined (constant source); ``cddfuse`` replaces a
    NaN vifp by 1.0 as its reference does. Range about 0..2 on real data (can exceed it).
    """
    if convention not in ('tang', 'cddfuse'):
        raise ConfigError(f"VIF: convention '{convention}' not supported (expected tang or cddfuse)")
    v_ir, v_vis = vifp_multi([ir, vis], fused)
    if convention == 'cddfuse':
        v_ir = 1.0 if np.isnan(v_ir) else v_ir
        v_vis = 1.0 if np.isnan(v_vis) else v_vis
    return float(v_ir + v_vis)
