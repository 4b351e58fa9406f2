"""Gradient-based fusion metrics: Qabf (Xydeas & Petrovic) and Nabf (Shreyamsha Kumar).

* Qabf: C. S. Xydeas and V. Petrovic, "Objective image fusion performance measure",
  Electronics Letters 36(4), 2000 (``vifb``, ``tang``, ``cddfuse``).
* Nabf: B. K. Shreyamsha Kumar, "Multifocus and multispectral image fusion based on pixel
  significance using discrete cosine harmonic wavelet transform", SIViP 2013, modified
  fusion-artefact measure (``tang``).

All functions take 2-D float64 planes (H, W) holding integers 0..255 (any real values work).
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

from basicsr.metrics.common import SOBEL_X, SOBEL_Y, conv2_same
from basicsr.metrics.metric_base import register_metric
from basicsr.utils.errors import ConfigError


# Qabf sigmoid constants (Gamma, kappa, sigma) for strength and orientation.
_QG = (0.9994, 15.0, 0.5)
_QA = (0.9879, 22.0, 0.8)
# Nabf constants.
_NG = (0.9999, 19.0, 0.5)
_NA = (0.9995, 22.0, 0.5)
_N_THRESH = 2.0
_N_POWER = 1.5
_N_MIN_WEIGHT = 0.001

_KV8 = SOBEL_X / 8.0
_KH8 = -SOBEL_Y / 8.0


def _check(name: str, convention: str, allowed: Tuple[str, ...]) -> None:
    if convention not in allowed:
        raise ConfigError(f"{name}: convention '{convention}' not supported "
                          f"(expected one of {', '.join(allowed)})")


def _qabf_strength_orientation(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sobel magnitude ``g`` and orientation ``atan(Sy/Sx)`` (pi/2 where Sx == 0), zero padding."""
    sx = conv2_same(p, SOBEL_X)
    sy = conv2_same(p, SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide='ignore', invalid='ignore'):
        alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / sx))
    return g, alpha


def _qabf_edge_preservation(g_x: np.ndarray, a_x: np.ndarray,
                            g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q_XF map: sigmoid(relative strength) * sigmoid(relative orientation)."""
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.minimum(g_x, g_f) / np.maximum(g_x, g_f)
    # Quirk kept by all three references: equal strengths give G = g_F, not 1.
    strength = np.where(g_x == g_f, g_f, ratio)
    orient = 1.0 - np.abs(a_x - a_f) / (np.pi / 2)
    q_g = _QG[0] / (1.0 + np.exp(-_QG[1] * (strength - _QG[2])))
    q_a = _QA[0] / (1.0 + np.exp(-_QA[1] * (orient - _QA[2])))
    return q_g * q_a


def qabf_generic(p_a: np.ndarray, p_b: np.ndarray, p_f: np.ndarray) -> float:
    """Generic Qabf of fused ``p_f`` from sources ``p_a``, ``p_b`` (2-D, same shape).

    ``Qabf = sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B)``, range 0..~0.987; NaN when both
    sources have no gradient anywhere.
    """
    g_a, a_a = _qabf_strength_orientation(np.asarray(p_a, dtype=np.float64))
    g_b, a_b = _qabf_strength_orientation(np.asarray(p_b, dtype=np.float64))
    g_f, a_f = _qabf_strength_orientation(np.asarray(p_f, dtype=np.float64))
    q_af = _qabf_edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_edge_preservation(g_b, a_b, g_f, a_f)
    num = np.sum(q_af * g_a + q_bf * g_b)
    den = np.sum(g_a + g_b)
    with np.errstate(divide='ignore', invalid='ignore'):
        return float(num / den)


@register_metric('Qabf', conventions=('vifb', 'tang', 'cddfuse'), higher_better=True)
def qabf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Qabf on one prepared plane (H, W), integers 0..255.

    ``vifb`` scales the three planes by 255 first (its ``255*im2double`` on data already
    0..255); that only changes the ``g_X == g_F`` branch, which then sits at the sigmoid's
    ceiling. ``tang`` and ``cddfuse`` use the planes as given.
    """
    _check('Qabf', convention, ('vifb', 'tang', 'cddfuse'))
    if convention == 'vifb':
        return qabf_generic(255.0 * vis, 255.0 * ir, 255.0 * fused)
    return qabf_generic(ir, vis, fused)


def _nabf_gradient(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Sobel/8 magnitude and orientation atan(gv/gh); mirror border without edge repeat."""
    p = np.ascontiguousarray(p, dtype=np.float64)
    gv = cv2.filter2D(p, cv2.CV_64F, _KV8, borderType=cv2.BORDER_REFLECT_101)
    gh = cv2.filter2D(p, cv2.CV_64F, _KH8, borderType=cv2.BORDER_REFLECT_101)
    g = np.sqrt(gv * gv + gh * gh)
    with np.errstate(divide='ignore', invalid='ignore'):
        alpha = np.arctan(gv / gh)  # +-pi/2 where only gh == 0
    alpha[(gv == 0) & (gh == 0)] = 0.0
    return g, alpha


def _nabf_q(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide='ignore', invalid='ignore'):
        strength = np.where((g_x == 0) | (g_f == 0), 0.0,
                            np.minimum(g_x, g_f) / np.maximum(g_x, g_f))
    orient = np.abs(np.abs(a_x - a_f) - np.pi / 2) * 2 / np.pi
    q_g = _NG[0] / (1.0 + np.exp(-_NG[1] * (strength - _NG[2])))
    q_a = _NA[0] / (1.0 + np.exp(-_NA[1] * (orient - _NA[2])))
    return np.sqrt(q_g * q_a)


def nabf_generic(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Fusion-artefact measure N(f, a, b) of ``f`` fused from ``a`` and ``b`` (2-D, same shape).

    Counts the information loss only where ``f`` has a stronger gradient than both sources;
    range 0..1, 0 when ``f`` is nowhere stronger. Never NaN (weights are floored at 0.001).
    """
    g_f, a_f = _nabf_gradient(f)
    g_a, a_a = _nabf_gradient(a)
    g_b, a_b = _nabf_gradient(b)
    q_a = _nabf_q(g_a, a_a, g_f, a_f)
    q_b = _nabf_q(g_b, a_b, g_f, a_f)
    w_a = np.where(g_a >= _N_THRESH, g_a ** _N_POWER, _N_MIN_WEIGHT)
    w_b = np.where(g_b >= _N_THRESH, g_b ** _N_POWER, _N_MIN_WEIGHT)
    mask = (g_f > g_a) & (g_f > g_b)
    num = np.sum(mask * ((1.0 - q_a) * w_a + (1.0 - q_b) * w_b))
    return float(num / np.sum(w_a + w_b))


@register_metric('Nabf', conventions=('tang',), higher_better=False)
def nabf(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Nabf as published by the ``tang`` toolbox: ``N(f=IR, a=VI, b=F)``.

    The toolbox passes its arguments in the wrong order, so the IR image plays the fused
    role. This reproduces the published numbers; see ``Nabf_intended`` for the definition's
    order. Lower is better; range 0..1.
    """
    _check('Nabf', convention, ('tang',))
    return nabf_generic(ir, vis, fused)


@register_metric('Nabf_intended', conventions=('tang',), higher_better=False)
def nabf_intended(fused: np.ndarray, vis: np.ndarray, ir: np.ndarray, convention: str) -> float:
    """Nabf in the order of its definition, ``N(f=F, a=IR, b=VI)`` (tang formulas otherwise).

    Not comparable with published tang-convention Nabf values. Lower is better; range 0..1.
    """
    _check('Nabf_intended', convention, ('tang',))
    return nabf_generic(fused, ir, vis)
