"""Structural similarity metrics: SSIM in three variants and Tang's MEF-MS-SSIM.

Plane metrics ``fn(fused, vis, ir, convention) -> float`` on prepared (H, W) float64 planes
holding integers 0..255.
"""
from __future__ import annotations

import math
from typing import Tuple

import cv2
import numpy as np

from skimage.metrics import structural_similarity

from basicsr.metrics.common import gaussian_1d
from basicsr.metrics.metric_base import register_metric

_EPS = float(np.finfo(np.float64).eps)


def _gauss(x: np.ndarray, border: int) -> np.ndarray:
    """Separable 11x11 sigma-1.5 Gaussian filtering of x (same size, given cv2 border)."""
    g = gaussian_1d(11, 1.5)
    return cv2.sepFilter2D(np.ascontiguousarray(x, dtype=np.float64), cv2.CV_64F, g, g,
                           borderType=border)


def _gauss_valid(x: np.ndarray) -> np.ndarray:
    """11x11 Gaussian over windows fully inside x: (H-10, W-10), possibly empty."""
    h, w = x.shape
    if h < 11 or w < 11:
        return np.zeros((max(h - 10, 0), max(w - 10, 0)))
    return _gauss(x, cv2.BORDER_CONSTANT)[5:h - 5, 5:w - 5]


def _ssim_map(mu_x: np.ndarray, mu_y: np.ndarray, var_x: np.ndarray, var_y: np.ndarray,
              cov: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """Wang et al.'s SSIM map
    ``(2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2))``."""
    num = (2.0 * mu_x * mu_y + c1) * (2.0 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    with np.errstate(invalid='ignore', divide='ignore'):
        return num / den


def _mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan


def _gauss_moments(x: np.ndarray, y: np.ndarray, filt) -> Tuple[np.ndarray, ...]:
    """Gaussian means, variances and covariance of x, y under the filter ``filt``.

    The second moments are taken of globally centred copies: mathematically the same, but
    it avoids cancellation, which matters where C2 is tiny (Tang's L = 1).
    """
    mx, my = filt(x), filt(y)
    xc, yc = x - x.mean(), y - y.mean()
    mxc, myc = filt(xc), filt(yc)
    var_x = filt(xc * xc) - mxc * mxc
    var_y = filt(yc * yc) - myc * myc
    cov = filt(xc * yc) - mxc * myc
    return mx, my, var_x, var_y, cov


def ssim_vifb(x: np.ndarray, y: np.ndarray) -> float:
    """VIFB SSIM: Gaussian 11 / 1.5, 'valid' windows, L = 255; NaN below 11 px.

    scikit-image with Gaussian weights filters the whole image and averages only the pixels
    whose 11x11 window lies inside it: the same 'valid' mean, to the last bit."""
    if min(x.shape) < 11:
        return math.nan
    return float(structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255.0))


def ssim_matlab(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB built-in ``ssim`` on double images (``tang``): dynamic range 1, Gaussian 11 / 1.5,
    replicate padding, same-size map, mean of the map. (Hand-written: scikit-image averages only
    the interior windows, which moves the value by ~3e-3.)"""
    moments = _gauss_moments(x, y, lambda a: _gauss(a, cv2.BORDER_REPLICATE))
    return _mean_or_nan(_ssim_map(*moments, 0.01 ** 2, 0.03 ** 2))


def _box_valid(x: np.ndarray, n: int) -> np.ndarray:
    """Sum over every n x n window (n odd) fully inside x: (H-n+1, W-n+1).

    OpenCV's running sums are exact for integer-valued (or dyadic) float64 inputs, so the
    variances of flat patches come out exactly 0.
    """
    h, w = x.shape
    r = n // 2
    s = cv2.boxFilter(np.ascontiguousarray(x, dtype=np.float64), cv2.CV_64F, (n, n),
                      normalize=False, borderType=cv2.BORDER_CONSTANT)
    return s[r:h - r, r:w - r]


def ssim_skimage(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image ``structural_similarity`` as CDDFuse calls it: 7x7 uniform window,
    sample covariance, ``data_range=2`` (the 0.19 default for float data); NaN below 7 px."""
    if min(x.shape) < 7:
        return math.nan
    return float(structural_similarity(x, y, data_range=2.0))


@register_metric('SSIM', ('vifb', 'tang', 'cddfuse'))
def ssim(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Structural similarity of F with both sources.

    ``vifb``: ``SSIM(VI, F) + SSIM(IR, F)`` (sum, 0..2); ``tang``: MATLAB ``ssim``,
    ``0.5 ssim(F, IR) + 0.5 ssim(F, VI)`` (mean, 0..1, no reference value available);
    ``cddfuse``: scikit-image 0.19 SSIM, ``ssim(F, IR) + ssim(F, VI)`` (sum).
    """
    if convention == 'vifb':
        return ssim_vifb(vis, fused) + ssim_vifb(ir, fused)
    if convention == 'tang':
        return 0.5 * ssim_matlab(fused, ir) + 0.5 * ssim_matlab(fused, vis)
    return ssim_skimage(fused, ir) + ssim_skimage(fused, vis)


# ----------------------------------------------------------------------------- MEF-MS-SSIM

_MEF_LEVEL_WEIGHTS = np.array([0.0448, 0.2856, 0.3001])
_MEF_WIN = 11


def _half_mean(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(x, ones(2)/4, 'symmetric')`` (block starting at each pixel), then
    every second row/column from the first: (ceil(H/2), ceil(W/2))."""
    p = np.pad(x, ((0, 1), (0, 1)), mode='symmetric')
    block = (p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4.0
    return block[::2, ::2]


def _gcov(a: np.ndarray, b: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Gaussian-weighted covariance of a and b over valid 11x11 windows."""
    return _gauss_valid(a * b) - ga * gb


def _mef_ssim_level(sources: Tuple[np.ndarray, ...], fused: np.ndarray) -> float:
    """MEF-SSIM of Ma et al. at one scale, vectorised over all valid 11x11 windows.

    Each window's desired patch ``r = s * sum_k a_k (x_k - mu_k)`` is linear in the sources,
    so its Gaussian moments follow from filtered products of the sources and F.
    """
    n, count = _MEF_WIN, float(_MEF_WIN * _MEF_WIN)
    c_const = (0.03 * 255.0) ** 2
    k_src = len(sources)
    s1 = [_box_valid(x, n) for x in sources]
    # ||x_k - mu_k||^2 and cross terms; the numerators are exact on integer data.
    cross = {}
    for i in range(k_src):
        for j in range(i, k_src):
            raw = count * _box_valid(sources[i] * sources[j], n) - s1[i] * s1[j]
            cross[i, j] = cross[j, i] = (np.maximum(raw, 0.0) if i == j else raw) / count
    norms = [np.sqrt(cross[k, k]) for k in range(k_src)]
    energy = [v + 0.001 for v in norms]
    pairs = [(i, j) for i in range(k_src) for j in range(k_src)]
    sum_norm = np.sqrt(np.maximum(sum(cross[p] for p in pairs), 0.0))

    ratio = (sum_norm + _EPS) / (sum(norms) + _EPS)
    ratio = np.where(ratio > 1.0, 1.0 - _EPS, np.where(ratio < 0.0, _EPS, ratio))
    power = np.minimum(np.tan(math.pi / 2.0 * ratio), 10.0)
    weights = [(e / n) ** power + _EPS for e in energy]
    total = sum(weights)
    coef = [w / total / e for w, e in zip(weights, energy)]  # a_k = w_k / e_k
    e_max = np.maximum.reduce(energy)

    r_sq = sum(coef[i] * coef[j] * cross[i, j] for i in range(k_src) for j in range(k_src))
    diag = sum(coef[k] * coef[k] * cross[k, k] for k in range(k_src))
    nonzero = r_sq > 1e-12 * diag  # ||r|| = 0 up to rounding: r left as is
    scale = np.where(nonzero, e_max / np.sqrt(np.where(nonzero, r_sq, 1.0)), 1.0)

    g_src = [_gauss_valid(x) for x in sources]
    g_f = _gauss_valid(fused)
    var_r = sum(coef[i] * coef[j] * _gcov(sources[i], sources[j], g_src[i], g_src[j])
                for i in range(k_src) for j in range(k_src)) * scale * scale
    cov_rf = sum(coef[k] * _gcov(sources[k], fused, g_src[k], g_f) for k in range(k_src)) * scale
    var_f = _gcov(fused, fused, g_f, g_f)
    q = (2.0 * cov_rf + c_const) / (var_r + var_f + c_const)
    return float(q.mean())


def mef_ms_ssim(sources: Tuple[np.ndarray, ...], fused: np.ndarray, levels: int = 3) -> float:
    """Multi-scale MEF-SSIM ``prod_l Q_l^w_l``; -inf when min(H, W)/4 < 11.

    NaN when a level score is negative (MATLAB would return a complex number).
    """
    if min(fused.shape) / 4.0 < _MEF_WIN:
        return -math.inf
    weights = _MEF_LEVEL_WEIGHTS[:levels] / _MEF_LEVEL_WEIGHTS[:levels].sum()
    scores = []
    for level in range(levels):
        if level:
            sources = tuple(_half_mean(x) for x in sources)
            fused = _half_mean(fused)
        scores.append(_mef_ssim_level(sources, fused))
    with np.errstate(invalid='ignore'):
        return float(np.prod(np.power(np.array(scores), weights)))


@register_metric('MS_SSIM', ('tang',))
def ms_ssim(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Tang's "MS-SSIM": multi-exposure MEF-MS-SSIM of F against the stack {IR, VI}."""
    return mef_ms_ssim((ir, vis), fused)
