"""Histogram, statistics, gradient and error metrics of the three conventions.

Every function is a plane metric ``fn(fused, vis, ir, convention) -> float``: the three
inputs are prepared (H, W) float64 arrays holding integers 0..255 (see ``prepare.py``);
``ir`` is the reference evaluators' A, ``vis`` their B, ``fused`` their F. For ``vifb`` the
front calls each function per RGB channel and averages, except SF, which receives the H x 3W
folded planes.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from basicsr.metrics.common import (SOBEL_Y, corr2, entropy_from_counts, histogram256,
                                    joint_histogram256)
from basicsr.metrics.metric_base import register_metric
from basicsr.utils.rounding import matlab_round

ALL = ('vifb', 'tang', 'cddfuse')
GRAY = ('tang', 'cddfuse')


@register_metric('EN', ALL)
def en(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Shannon entropy of the 256-bin histogram of F, in bits (``vifb``, ``tang``, ``cddfuse``)."""
    return entropy_from_counts(histogram256(np.floor(fused)), base=2.0) + 0.0  # no -0.0


@register_metric('SD', ALL)
def sd(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Population standard deviation of F (``vifb``, ``tang``, ``cddfuse``)."""
    return float(np.std(fused))


@register_metric('SF', ALL)
def sf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Spatial frequency ``sqrt(RF + CF)`` of F (``vifb``, ``tang``, ``cddfuse``).

    ``vifb``: F is the M x N (folded) matrix and both squared-difference sums are divided by
    M*N. ``tang``/``cddfuse``: each sum is divided by its own number of differences.
    """
    row = np.diff(fused, axis=1) ** 2  # horizontal neighbours, (M, N-1)
    col = np.diff(fused, axis=0) ** 2  # vertical neighbours, (M-1, N)
    if convention == 'vifb':
        return float(math.sqrt((row.sum() + col.sum()) / fused.size))
    with np.errstate(invalid='ignore'):
        rf = row.mean() if row.size else math.nan
        cf = col.mean() if col.size else math.nan
    return float(math.sqrt(rf + cf))


@register_metric('AG', ALL)
def ag(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Average gradient of F with MATLAB ``gradient`` differences (``vifb``, ``tang``, ``cddfuse``).

    ``vifb``/``tang``: sum over all H*W pixels of ``sqrt((gx^2 + gy^2)/2)`` divided by
    (H-1)(W-1); ``cddfuse``: the mean over H*W. NaN when H or W is below 2.
    """
    h, w = fused.shape
    if h < 2 or w < 2:
        return math.nan
    gy, gx = np.gradient(fused)
    mag = np.sqrt((gx * gx + gy * gy) / 2.0)
    if convention == 'cddfuse':
        return float(mag.mean())
    return float(mag.sum() / ((h - 1) * (w - 1)))


def _minmax_quantise(x: np.ndarray) -> np.ndarray:
    """VIFB MI quantisation: min-max to [0, 1] (constant -> 0), ``int16(255 x)`` rounding."""
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros_like(x)
    return matlab_round(255.0 * ((x - lo) / (hi - lo)))


def _mutual_information(src: np.ndarray, fused: np.ndarray, base: float,
                        merge_top: bool = False) -> float:
    """``H(src) + H(F) - H(src, F)`` from 256-bin histograms of integer planes.

    ``merge_top`` reproduces Tang's uint8 saturation: 254 and 255 share a bin in the joint
    histogram only (``tang``).
    """
    joint = joint_histogram256(src, fused)
    h_src = entropy_from_counts(joint.sum(axis=1), base)
    h_fused = entropy_from_counts(joint.sum(axis=0), base)
    if merge_top:
        joint = joint.copy()
        joint[254, :] += joint[255, :]
        joint[255, :] = 0
        joint[:, 254] += joint[:, 255]
        joint[:, 255] = 0
    return h_src + h_fused - entropy_from_counts(joint, base) + 0.0  # no -0.0


@register_metric('MI', ALL)
def mi(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Mutual information ``MI(IR, F) + MI(VI, F)`` (``vifb``, ``tang``, ``cddfuse``).

    ``vifb``: nats, each image min-max normalised and re-quantised to 0..255 first;
    ``tang``: bits, 254/255 merged in the joint histogram; ``cddfuse``: nats, each term
    clipped at 0 (scikit-learn ``mutual_info_score``).
    """
    if convention == 'vifb':
        fq = _minmax_quantise(fused)
        return (_mutual_information(_minmax_quantise(vis), fq, math.e)
                + _mutual_information(_minmax_quantise(ir), fq, math.e))
    if convention == 'tang':
        return (_mutual_information(ir, fused, 2.0, merge_top=True)
                + _mutual_information(vis, fused, 2.0, merge_top=True))
    return (max(_mutual_information(ir, fused, math.e), 0.0)
            + max(_mutual_information(vis, fused, math.e), 0.0))


@register_metric('CC', GRAY)
def cc(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Correlation coefficient ``(corr(IR, F) + corr(VI, F)) / 2`` (``tang``, ``cddfuse``);
    NaN if constant."""
    return (corr2(ir, fused) + corr2(vis, fused)) / 2.0


@register_metric('SCD', GRAY)
def scd(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Sum of correlations of differences ``corr(F-VI, IR) + corr(F-IR, VI)``
    (``tang``, ``cddfuse``)."""
    return corr2(fused - vis, ir) + corr2(fused - ir, vis)


def _vifb_distance(src: np.ndarray, fused: np.ndarray) -> float:
    """VIFB's ``sqrt(sum((S - F)^2)) / N`` (the root of the sum, then divided by N)."""
    diff = src - fused
    return math.sqrt(float(np.sum(diff * diff))) / src.size


def _mse_pair(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray) -> float:
    """``(mean((IR-F)^2) + mean((VI-F)^2)) / 2`` on the given scale."""
    return (float(np.mean((ir - fused) ** 2)) + float(np.mean((vis - fused) ** 2))) / 2.0


@register_metric('MSE', GRAY, higher_better=False)
def mse(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Mean squared error averaged over the sources (``tang``, ``cddfuse``).

    ``tang``: images on 0..1 (typical 0.02-0.08); ``cddfuse``: on 0..255 (thousands).
    """
    value = _mse_pair(fused, vis, ir)
    return value / (255.0 * 255.0) if convention == 'tang' else value


@register_metric('RMSE', ('vifb',), higher_better=False)
def rmse(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """VIFB "RMSE": ``(d(VI) + d(IR)) / 2`` with ``d(S) = sqrt(sum((S-F)^2)) / N`` (``vifb``)."""
    return (_vifb_distance(vis, fused) + _vifb_distance(ir, fused)) / 2.0


@register_metric('PSNR', ALL)
def psnr(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Peak signal-to-noise ratio, three different definitions (``vifb``, ``tang``, ``cddfuse``).

    ``vifb``: ``20 log10(255 / sqrt(m))``, m = VIFB RMSE; ``tang``: ``20 log10(255 / sqrt(MSE))``
    with the 0..1 MSE; ``cddfuse``: ``10 log10(max(F)^2 / MSE)`` with the 0..255 MSE.
    Infinite when F equals both sources; NaN for ``cddfuse`` when F is all zero and equals both.
    """
    with np.errstate(divide='ignore', invalid='ignore'):
        if convention == 'vifb':
            m = (_vifb_distance(vis, fused) + _vifb_distance(ir, fused)) / 2.0
            return float(20.0 * np.log10(255.0 / np.sqrt(np.float64(m))))
        value = _mse_pair(fused, vis, ir)
        if convention == 'tang':
            return float(20.0 * np.log10(255.0 / np.sqrt(np.float64(value / (255.0 * 255.0)))))
        peak = float(fused.max())
        return float(10.0 * np.log10(peak * peak / np.float64(value)))


def _cross_entropy(src: np.ndarray, fused: np.ndarray) -> float:
    """``sum P_S log2(P_S / P_F)`` over bins where both histograms are non-zero."""
    p_s = histogram256(src) / src.size
    p_f = histogram256(fused) / fused.size
    keep = (p_s > 0) & (p_f > 0)
    return float(np.sum(p_s[keep] * np.log2(p_s[keep] / p_f[keep])))


@register_metric('CE', ('vifb',), higher_better=False)
def ce(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """VIFB cross entropy ``(CE(VI, F) + CE(IR, F)) / 2`` (a KL divergence, bits; ``vifb``)."""
    return (_cross_entropy(vis, fused) + _cross_entropy(ir, fused)) / 2.0


@register_metric('EI', ('vifb',))
def ei(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Edge intensity: mean Sobel magnitude of F, replicate border (``vifb``)."""
    src = np.ascontiguousarray(fused, dtype=np.float64)
    sy = cv2.filter2D(src, cv2.CV_64F, SOBEL_Y, borderType=cv2.BORDER_REPLICATE)
    sx = cv2.filter2D(src, cv2.CV_64F, np.ascontiguousarray(SOBEL_Y.T),
                      borderType=cv2.BORDER_REPLICATE)
    return float(np.mean(np.sqrt(sx * sx + sy * sy)))
