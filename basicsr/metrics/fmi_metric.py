"""Feature mutual information (FMI) on edge maps, ``tang`` convention.

M. B. A. Haghighat, A. Aghagolzadeh and H. Seyedarabi, "A non-reference image fusion metric
based on mutual information of image features", Computers & Electrical Engineering 37(5),
2011; the fast sliding-window form with 3x3 windows and edge features used by the Tang
toolbox under the name FMI.

Best effort: the reference runs MATLAB's ``edge`` (Sobel, default threshold, thinning),
which could not be run. :func:`edge_sobel` implements the documented algorithm of that
function (see its docstring); a different thinning rule would change FMI slightly.

Everything per window is a function of the 3x3 binary patches only, so the windows are
encoded as 9-bit codes and the per-window formula is evaluated once per distinct
(source code, fused code) pair, vectorised over the pairs. The arithmetic order follows
the reference (column-major patch order, sequential sums), except that a pdf's mean is
taken as exactly 1/9: with a left-to-right float sum, two constant windows would score 1
instead of 0 (about +0.024 on TNO 01; which one MATLAB's ``sum`` gives is unverified).
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from basicsr.metrics.common import SOBEL_X, SOBEL_Y
from basicsr.metrics.metric_base import register_metric
from basicsr.utils.errors import ConfigError


_SOBEL_Y8 = SOBEL_Y / 8.0
_SOBEL_X8 = -SOBEL_X / 8.0  # MATLAB edge's x kernel is the transpose of its y kernel
_EDGE_SCALE = 4.0
_THIN_TOL = 100 * np.finfo(np.float64).eps
_ALL_ONES = 511  # code of a 3x3 patch of ones


def edge_sobel(image: np.ndarray) -> np.ndarray:
    """Binary edge map of MATLAB ``edge(image)`` (Sobel, automatic threshold, thinning).

    Steps: ``bx``, ``by`` = correlation with the Sobel pair divided by 8, replicate border;
    ``b = bx^2 + by^2``; cutoff ``4 * mean(b)`` (i.e. threshold ``sqrt(4 mean|grad|^2)``).
    Thinning is a directional non-maximum suppression: a pixel with ``b > cutoff`` is an edge
    if ``|bx| >= |by| - 100 eps`` and ``b(r, c-1) <= b(r, c) > b(r, c+1)``, or
    ``|by| >= |bx| - 100 eps`` and ``b(r-1, c) <= b(r, c) > b(r+1, c)``; a missing neighbour
    at the image border passes its comparison.

    Args:
        image: 2-D float array (H, W), any range (the threshold is relative).

    Returns:
        bool array (H, W).
    """
    a = np.ascontiguousarray(image, dtype=np.float64)
    bx = cv2.filter2D(a, cv2.CV_64F, _SOBEL_X8, borderType=cv2.BORDER_REPLICATE)
    by = cv2.filter2D(a, cv2.CV_64F, _SOBEL_Y8, borderType=cv2.BORDER_REPLICATE)
    b = bx * bx + by * by
    cutoff = _EDGE_SCALE * np.sum(b) / b.size
    bx, by = np.abs(bx), np.abs(by)
    left = np.ones_like(b, dtype=bool)
    right = np.ones_like(left)
    up = np.ones_like(left)
    down = np.ones_like(left)
    left[:, 1:] = b[:, :-1] <= b[:, 1:]
    right[:, :-1] = b[:, :-1] > b[:, 1:]
    up[1:, :] = b[:-1, :] <= b[1:, :]
    down[:-1, :] = b[:-1, :] > b[1:, :]
    horizontal = (bx >= by - _THIN_TOL) & left & right
    vertical = (by >= bx - _THIN_TOL) & up & down
    return (b > cutoff) & (horizontal | vertical)


def _window_codes(feature: np.ndarray) -> np.ndarray:
    """9-bit code of every interior 3x3 window of a binary map; bit k = column-major element k."""
    f = feature.astype(np.int64)
    h, w = f.shape
    codes = np.zeros((h - 2, w - 2), dtype=np.int64)
    for col in range(3):
        for row in range(3):
            codes |= f[row:row + h - 2, col:col + w - 2] << (col * 3 + row)
    return codes


def _decode(codes: np.ndarray) -> np.ndarray:
    """(K,) codes -> (K, 9) float patches in column-major element order."""
    return ((codes[:, None] >> np.arange(9)) & 1).astype(np.float64)


def _seq_sum(x: np.ndarray) -> np.ndarray:
    """Left-to-right sum over the last axis (the reference's accumulation order)."""
    return np.cumsum(x, axis=-1)[..., -1]


def _normalise(p: np.ndarray) -> np.ndarray:
    """Per-row min-max normalisation; constant rows become ones."""
    hi = p.max(axis=1, keepdims=True)
    lo = p.min(axis=1, keepdims=True)
    const = hi == lo
    with np.errstate(divide='ignore', invalid='ignore'):
        out = (p - lo) / (hi - lo)
    return np.where(const, 1.0, out)


def _entropy_terms(p: np.ndarray) -> np.ndarray:
    """``-p log2|p|`` with 0 where p == 0 (real part of the complex log for p < 0)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(p != 0, -p * np.log2(np.abs(np.where(p != 0, p, 1.0))), 0.0)


def fmi_patch_pairs(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Normalised feature MI of K window pairs, for windows that are not element-wise equal.

    Args:
        x: (K, 9) source patches, column-major element order, non-negative.
        f: (K, 9) fused patches, same layout.

    Returns:
        (K,) float64 values ``2 mi / (H_x + H_f)`` (0 where mi == 0).
    """
    n = x.shape[1]
    x_pdf = _normalise(x)
    f_pdf = _normalise(f)
    x_pdf = x_pdf / _seq_sum(x_pdf)[:, None]
    f_pdf = f_pdf / _seq_sum(f_pdf)[:, None]
    x_cdf = np.cumsum(x_pdf, axis=1)
    f_cdf = np.cumsum(f_pdf, axis=1)

    # A pdf's mean over n bins is 1/n. Using the exact value keeps two uniform pdfs (two
    # constant windows) uncorrelated (c = 0, so mi = 0); a left-to-right float sum of nine
    # 1/9 gives 1 + 2 ulp, which would make c = 1 and score such windows 1 instead of 0.
    x_dev = x_pdf - 1.0 / n
    f_dev = f_pdf - 1.0 / n
    cov = _seq_sum(x_dev * f_dev)
    with np.errstate(divide='ignore', invalid='ignore'):
        c = np.where(cov == 0, 0.0,
                     cov / np.sqrt(_seq_sum(x_dev * x_dev) * _seq_sum(f_dev * f_dev)))

    idx = np.arange(1, n + 1, dtype=np.float64)
    with np.errstate(invalid='ignore'):
        x_sd = np.sqrt(_seq_sum(x_pdf * idx ** 2) - _seq_sum(x_pdf * idx) ** 2)
        f_sd = np.sqrt(_seq_sum(f_pdf * idx ** 2) - _seq_sum(f_pdf * idx) ** 2)

    # Frechet bounds of the joint cdf: rows i index f, columns j index x.
    fc = f_cdf[:, :, None]
    xc = x_cdf[:, None, :]
    upper = 0.5 * (fc + xc - np.abs(fc - xc))
    lower = 0.5 * (fc + xc - 1 + np.abs(fc + xc - 1))
    positive = c >= 0
    bound = np.where(positive[:, None, None], upper, lower)
    cov_bound = _seq_sum((bound - fc * xc).reshape(len(c), -1))
    degenerate = (x_sd == 0) | (f_sd == 0) | (positive & (c == 0))
    with np.errstate(divide='ignore', invalid='ignore'):
        lam = np.where(degenerate, 0.0, c / (cov_bound / (f_sd * x_sd)))

    # Joint pmf: 2-D difference of the bound (zero outside), mixed with independence.
    padded = np.zeros((len(c), n + 1, n + 1))
    padded[:, 1:, 1:] = bound
    cell = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    lam3 = lam[:, None, None]
    joint = lam3 * cell + (1 - lam3) * f_pdf[:, :, None] * x_pdf[:, None, :]
    terms = _entropy_terms(joint)
    # Reference accumulation order: (1,1), first column, first row, then the rest row-wise.
    ordered = np.concatenate([terms[:, :, 0], terms[:, 0, 1:], terms[:, 1:, 1:].reshape(len(c), -1)],
                             axis=1)
    h_joint = _seq_sum(ordered)
    h_x = _seq_sum(_entropy_terms(x_pdf))
    h_f = _seq_sum(_entropy_terms(f_pdf))
    mi = h_x + h_f - h_joint
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(mi == 0, 0.0, 2 * mi / (h_x + h_f))


def _pair_table(keys: np.ndarray) -> np.ndarray:
    """Table over all 512*512 (x code, f code) keys holding fmi_patch_pairs for the given keys."""
    table = np.zeros(512 * 512)
    uniq = np.flatnonzero(np.bincount(keys, minlength=table.size))
    if uniq.size:
        table[uniq] = fmi_patch_pairs(_decode(uniq // 512), _decode(uniq % 512))
    return table


def fmi_features(feat_ir: np.ndarray, feat_vis: np.ndarray,
                 feat_fused: np.ndarray) -> Tuple[float, np.ndarray]:
    """FMI of binary feature maps (3x3 windows); returns (FMI, per-window map).

    Args:
        feat_ir, feat_vis, feat_fused: 2-D binary maps (H, W) of equal shape (bool or 0/1).

    Returns:
        Mean of the (H-2, W-2) map ``(fmi_IR,F + fmi_VI,F) / 2`` (NaN if H or W < 3) and the map.
    """
    h, w = feat_fused.shape
    if h < 3 or w < 3:
        return float('nan'), np.zeros((max(h - 2, 0), max(w - 2, 0)))
    c_ir, c_vis, c_f = (_window_codes(np.asarray(e) != 0) for e in (feat_ir, feat_vis, feat_fused))
    same_ir = c_ir == c_f
    # The reference normalises the fused window in place while scoring IR, so unless the IR
    # window matched, the VI equality test sees the normalised window (constant -> ones).
    f_norm = np.where((c_f == 0) | (c_f == _ALL_ONES), _ALL_ONES, c_f)
    same_vis = c_vis == np.where(same_ir, c_f, f_norm)
    key_ir = c_ir * 512 + c_f
    key_vis = c_vis * 512 + c_f
    table = _pair_table(np.concatenate([key_ir[~same_ir], key_vis[~same_vis]]))
    fmi_ir = np.where(same_ir, 1.0, table[key_ir])
    fmi_vis = np.where(same_vis, 1.0, table[key_vis])
    fmi_map = (fmi_ir + fmi_vis) / 2
    return float(np.mean(fmi_map)), fmi_map


def fmi_edge(ir: np.ndarray, vis: np.ndarray, fused: np.ndarray) -> float:
    """Tang-toolbox FMI with MATLAB-style Sobel edge maps as features (2-D, equal shape)."""
    return fmi_features(edge_sobel(ir), edge_sobel(vis), edge_sobel(fused))[0]


@register_metric('FMI', conventions=('tang',), higher_better=True)
def fmi(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Tang-toolbox FMI (edge features, window 3) on gray planes (H, W); range 0..1.

    Best effort: MATLAB's edge thinning is reproduced from its documented rule, not checked
    against MATLAB output. 1 when all three edge maps coincide; NaN below 3 px per side.
    """
    if convention != 'tang':
        raise ConfigError(f"FMI: convention '{convention}' not supported (defined in tang only)")
    return fmi_edge(ir, vis, fused)
