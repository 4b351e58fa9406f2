"""Fusion metrics front, input preparation, simple and SSIM-family metrics.

Expected values are computed by hand in the comments, or by direct (per-window) versions of
the spec's formulas written here independently of the library's vectorised code.
"""
from __future__ import annotations

import csv
import logging
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr.metrics import (compute_metrics, default_metrics, higher_is_better, metrics_for,
                             prepare_inputs, read_image_rgb)
from basicsr.metrics.ssim_metrics import _half_mean, _mef_ssim_level, mef_ms_ssim
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.registry import METRIC_REGISTRY

ROOT = Path(__file__).resolve().parents[1]
CONVS = ('vifb', 'tang', 'cddfuse')
RNG = np.random.default_rng(0)
# one metric on whole images: MetricSpec.__call__(fused, vis, ir, convention='cddfuse')
EN, MI, RMSE = (METRIC_REGISTRY.get(name) for name in ('EN', 'MI', 'RMSE'))


def rand_u8(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=shape, dtype=np.uint8)


def one(name: str, fused, vis, ir, conv: str) -> float:
    return compute_metrics(fused, vis, ir, [name], conv)[name]


def u8(a) -> np.ndarray:
    return np.asarray(a, dtype=np.uint8)


# ----------------------------------------------------------------------------- histogram metrics

@pytest.mark.parametrize('conv', CONVS)
def test_en_two_levels_is_one_bit(conv):
    fused = u8([[0, 255], [255, 0]])
    assert one('EN', fused, fused, fused, conv) == pytest.approx(1.0, abs=1e-12)


def test_en_vifb_averages_channels():
    # R: two levels (1 bit), G: constant (0 bit), B: four equal levels (2 bits) -> mean 1.
    fused = np.zeros((2, 2, 3), np.uint8)
    fused[..., 0] = [[0, 9], [9, 0]]
    fused[..., 1] = 7
    fused[..., 2] = [[1, 2], [3, 4]]
    assert EN(fused, fused, fused, 'vifb') == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize('conv', CONVS)
def test_sd_population(conv):
    # mean 4, squared deviations 9 + 1 + 1 + 9 = 20 -> sqrt(20 / 4).
    fused = u8([[1, 3], [5, 7]])
    assert one('SD', fused, fused, fused, conv) == pytest.approx(math.sqrt(5.0), rel=1e-12)


def test_mi_identical_images():
    # Four equally frequent levels: H = 2 bits; MI(X, X) = H(X).
    x = u8([[0, 50, 100, 150]] * 2)
    assert MI(x, x, x, 'cddfuse') == pytest.approx(2 * 2 * math.log(2), rel=1e-12)
    assert MI(x, x, x, 'vifb') == pytest.approx(2 * 2 * math.log(2), rel=1e-12)
    assert MI(x, x, x, 'tang') == pytest.approx(2 * 2.0, rel=1e-12)


def test_mi_tang_merges_254_and_255_in_joint_histogram_only():
    # Marginals: 1 bit each; the joint histogram puts 254 and 255 in one bin -> 0 bit.
    x = u8([[254, 255], [255, 254]])
    assert MI(x, x, x, 'tang') == pytest.approx(2 * (1 + 1 - 0), abs=1e-12)
    assert MI(x, x, x, 'cddfuse') == pytest.approx(2 * math.log(2), rel=1e-12)


def test_mi_vifb_minmax_normalisation():
    # Same pattern at different grey levels: identical after min-max; constant -> zeros.
    fused = u8([[10, 20], [20, 10]])
    vis = u8([[0, 255], [255, 0]])
    const = np.full((2, 2), 77, np.uint8)
    assert MI(fused, vis, const, 'vifb') == pytest.approx(math.log(2), rel=1e-12)


def test_ce_by_hand():
    fused = u8([[0, 1], [1, 1]])  # P_F: 0 -> 1/4, 1 -> 3/4
    vis = u8([[0, 0], [1, 1]])    # P_S: 1/2, 1/2
    ir = u8([[0, 0], [0, 5]])     # P_S: 0 -> 3/4, 5 -> 1/4 (P_F(5) = 0: skipped)
    ce_vis = 0.5 * math.log2(0.5 / 0.25) + 0.5 * math.log2(0.5 / 0.75)
    ce_ir = 0.75 * math.log2(0.75 / 0.25)
    assert one('CE', fused, vis, ir, 'vifb') == pytest.approx((ce_vis + ce_ir) / 2, rel=1e-12)


# ----------------------------------------------------------------------------- gradient metrics

def test_sf_ramp_gray():
    fused = u8([[0, 2, 4, 6]] * 3)  # horizontal differences 2, vertical 0
    assert one('SF', fused, fused, fused, 'tang') == pytest.approx(2.0, rel=1e-12)
    assert one('SF', fused, fused, fused, 'cddfuse') == pytest.approx(2.0, rel=1e-12)
    # vifb: sum 4 * 3 rows * 3 differences = 36 over M*N = 12.
    assert one('SF', fused, fused, fused, 'vifb') == pytest.approx(math.sqrt(3.0), rel=1e-12)


def test_sf_vifb_folds_rgb():
    # [R | G | B] is 3 x 12: per row 3*4 (R) + 36 (seam 6 -> 0) + 3*4 (G) + 36 (seam) + 0 (B)
    # = 96; 3 rows = 288 over M*N = 36 -> sqrt(8). Per-channel averaging would give 2 sqrt(3)/3.
    fused = np.zeros((3, 4, 3), np.uint8)
    fused[..., 0] = [[0, 2, 4, 6]] * 3
    fused[..., 1] = [[0, 2, 4, 6]] * 3
    assert one('SF', fused, fused, fused, 'vifb') == pytest.approx(math.sqrt(8.0), rel=1e-12)


def test_ag_plane():
    # F = 2j + 4i: gradients (2, 4) everywhere -> sqrt((4 + 16) / 2) = sqrt(10) per pixel.
    i, j = np.mgrid[0:3, 0:4]
    fused = (2 * j + 4 * i).astype(np.uint8)
    assert one('AG', fused, fused, fused, 'cddfuse') == pytest.approx(math.sqrt(10), rel=1e-12)
    # 12 pixels / ((3-1)(4-1)) = 2.
    for conv in ('vifb', 'tang'):
        assert one('AG', fused, fused, fused, conv) == pytest.approx(2 * math.sqrt(10), rel=1e-12)


def test_ei_step_replicate_border():
    # Rows [0 0 10 10]: Sx = 4 (F[j-1] - F[j+1]) = 0, -40, -40, 0 with the edge repeated;
    # zero padding would add a response in the last column and first/last rows.
    fused = u8([[0, 0, 10, 10]] * 3)
    assert one('EI', fused, fused, fused, 'vifb') == pytest.approx(20.0, rel=1e-12)


# ----------------------------------------------------------------------------- correlation metrics

def test_cc_scd_constructed():
    a = np.array([1, -1, 1, -1], float)
    b = np.array([1, 1, -1, -1], float)
    ir = (100 + 10 * a).reshape(2, 2).astype(np.uint8)
    vis = (100 + 10 * b).reshape(2, 2).astype(np.uint8)
    fused = (100 + 10 * (a + b)).reshape(2, 2).astype(np.uint8)
    # corr(a, a + b) = 4 / sqrt(4 * 8) = 1/sqrt(2) for both sources.
    for conv in ('tang', 'cddfuse'):
        assert one('CC', fused, vis, ir, conv) == pytest.approx(1 / math.sqrt(2), rel=1e-12)
        # F - VI = IR - 100 and F - IR = VI - 100: both correlations are 1.
        assert one('SCD', fused, vis, ir, conv) == pytest.approx(2.0, rel=1e-12)


def test_cc_constant_is_nan():
    const = np.full((3, 3), 9, np.uint8)
    assert math.isnan(one('CC', const, rand_u8(3, 3), rand_u8(3, 3), 'cddfuse'))


# ----------------------------------------------------------------------------- error metrics

def _error_triple():
    fused = np.full((2, 2), 10, np.uint8)
    vis = u8([[12, 10], [10, 10]])  # squared differences sum 4
    ir = u8([[10, 10], [16, 10]])   # squared differences sum 36
    return fused, vis, ir


def test_mse_psnr_cddfuse():
    f, v, i = _error_triple()
    assert one('MSE', f, v, i, 'cddfuse') == pytest.approx(5.0, rel=1e-12)  # (36/4 + 4/4) / 2
    assert one('PSNR', f, v, i, 'cddfuse') == pytest.approx(10 * math.log10(100 / 5), rel=1e-12)


def test_mse_psnr_tang():
    f, v, i = _error_triple()
    assert one('MSE', f, v, i, 'tang') == pytest.approx(5.0 / 255 ** 2, rel=1e-12)
    expected = 20 * math.log10(255 / math.sqrt(5.0 / 255 ** 2))
    assert one('PSNR', f, v, i, 'tang') == pytest.approx(expected, rel=1e-12)


def test_rmse_psnr_vifb():
    f, v, i = _error_triple()
    # d(VI) = sqrt(4) / 4 = 0.5, d(IR) = sqrt(36) / 4 = 1.5 -> 1.0.
    assert one('RMSE', f, v, i, 'vifb') == pytest.approx(1.0, rel=1e-12)
    assert one('PSNR', f, v, i, 'vifb') == pytest.approx(20 * math.log10(255.0), rel=1e-12)


def test_psnr_identical_is_inf():
    x = rand_u8(4, 4)
    assert one('PSNR', x, x, x, 'tang') == math.inf


# ----------------------------------------------------------------------------- SSIM family

def _gauss(size=11, sigma=1.5):
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _window_ssim(px, py, w, c1, c2, sample=False):
    """SSIM of one window from explicitly weighted sums (w sums to 1)."""
    mx, my = np.sum(w * px), np.sum(w * py)
    vx, vy = np.sum(w * (px - mx) ** 2), np.sum(w * (py - my) ** 2)
    cxy = np.sum(w * (px - mx) * (py - my))
    if sample:
        k = px.size / (px.size - 1)
        vx, vy, cxy = k * vx, k * vy, k * cxy
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


@pytest.mark.parametrize('conv,expected', [('vifb', 2.0), ('cddfuse', 2.0), ('tang', 1.0)])
def test_ssim_self(conv, expected):
    x = rand_u8(16, 18)
    assert one('SSIM', x, x, x, conv) == pytest.approx(expected, rel=1e-9)


def test_ssim_vifb_single_window():
    x, y, z = (rand_u8(11, 11).astype(float) for _ in range(3))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = _window_ssim(y, x, _gauss(), c1, c2) + _window_ssim(z, x, _gauss(), c1, c2)
    got = one('SSIM', x.astype(np.uint8), y.astype(np.uint8), z.astype(np.uint8), 'vifb')
    assert got == pytest.approx(expected, rel=1e-10)


def test_ssim_cddfuse_sample_covariance_and_range():
    # One 7x7 window: x has a single 1, y = 2x. Sample variance of x = (49 - 1)/(49*48) = 1/49.
    x = np.zeros((7, 7), np.uint8)
    x[3, 3] = 1
    y = 2 * x
    m1, m2, v1, v2, c12 = 1 / 49, 2 / 49, 1 / 49, 4 / 49, 2 / 49
    c1, c2 = 0.02 ** 2, 0.06 ** 2
    s = (2 * m1 * m2 + c1) * (2 * c12 + c2) / ((m1 ** 2 + m2 ** 2 + c1) * (v1 + v2 + c2))
    assert one('SSIM', y, x, x, 'cddfuse') == pytest.approx(2 * s, rel=1e-12)


def test_ssim_tang_replicate_padding():
    f, a, b = (rand_u8(6, 7) for _ in range(3))
    w = _gauss()

    def direct(p, q):
        pp, qp = np.pad(p.astype(float), 5, mode='edge'), np.pad(q.astype(float), 5, mode='edge')
        vals = [_window_ssim(pp[r:r + 11, c:c + 11], qp[r:r + 11, c:c + 11], w, 1e-4, 9e-4)
                for r in range(p.shape[0]) for c in range(p.shape[1])]
        return float(np.mean(vals))

    expected = 0.5 * direct(f, b) + 0.5 * direct(f, a)
    assert one('SSIM', f, a, b, 'tang') == pytest.approx(expected, rel=1e-8)


def test_ssim_constant_images():
    # sigma = 0: luminance term only, (2ab + C1) / (a^2 + b^2 + C1).
    f, s = np.full((12, 12), 100, np.uint8), np.full((12, 12), 50, np.uint8)
    lum = lambda c1: (2 * 100 * 50 + c1) / (100 ** 2 + 50 ** 2 + c1)  # noqa: E731
    assert one('SSIM', f, s, s, 'vifb') == pytest.approx(2 * lum(6.5025), rel=1e-9)
    assert one('SSIM', f, s, s, 'cddfuse') == pytest.approx(2 * lum(4e-4), rel=1e-9)
    assert one('SSIM', f, s, s, 'tang') == pytest.approx(lum(1e-4), rel=1e-9)


def test_half_mean_anchor_and_symmetric_border():
    x = np.arange(0, 36, 4, dtype=float).reshape(3, 3)  # [[0 4 8] [12 16 20] [24 28 32]]
    np.testing.assert_array_equal(_half_mean(x), [[8, 14], [26, 32]])


def _mef_ssim_direct(sources, fused):
    """Per-window MEF-SSIM (Ma et al.) following the spec's description literally."""
    eps = np.finfo(float).eps
    w = _gauss()
    h, wd = fused.shape
    qs = []
    for r in range(h - 10):
        for c in range(wd - 10):
            xs = [s[r:r + 11, c:c + 11] for s in sources]
            fp = fused[r:r + 11, c:c + 11]
            dev = [x - x.mean() for x in xs]
            norms = [np.linalg.norm(d) for d in dev]
            e = [n + 0.001 for n in norms]
            ratio = (np.linalg.norm(sum(dev)) + eps) / (sum(norms) + eps)
            ratio = 1 - eps if ratio > 1 else (eps if ratio < 0 else ratio)
            p = min(math.tan(math.pi / 2 * ratio), 10.0)
            wk = np.array([(ek / 11) ** p + eps for ek in e])
            wk /= wk.sum()
            rp = sum(wk[k] * dev[k] / e[k] for k in range(len(xs)))
            if np.linalg.norm(rp) > 0:
                rp = rp / np.linalg.norm(rp) * max(e)
            m1, m2 = np.sum(w * rp), np.sum(w * fp)
            v1, v2 = np.sum(w * (rp - m1) ** 2), np.sum(w * (fp - m2) ** 2)
            cov = np.sum(w * (rp - m1) * (fp - m2))
            qs.append((2 * cov + (0.03 * 255) ** 2) / (v1 + v2 + (0.03 * 255) ** 2))
    return float(np.mean(qs))


def _half(x):
    p = np.pad(x, ((0, 1), (0, 1)), mode='edge')  # one-pixel 'symmetric' pad = edge copy
    return np.array([[p[i:i + 2, j:j + 2].mean() for j in range(0, x.shape[1], 2)]
                     for i in range(0, x.shape[0], 2)])


def test_ms_ssim_matches_direct_windows():
    ir, vis, noise = (rand_u8(44, 46).astype(float) for _ in range(3))
    ir[:20, :20] = 90  # flat patches exercise the R = 1 and ||r|| = 0 branches
    vis[:20, :20] = 30
    fused = np.floor(0.4 * ir + 0.4 * vis + 0.2 * noise)
    levels = []
    src, f = (ir, vis), fused
    for lvl in range(3):
        if lvl:
            src, f = tuple(_half(s) for s in src), _half(f)
        levels.append(_mef_ssim_direct(src, f))
        assert _mef_ssim_level(src, f) == pytest.approx(levels[-1], rel=1e-9)
    weights = np.array([0.0448, 0.2856, 0.3001]) / 0.6305  # normalised to sum 1
    expected = float(np.prod(np.array(levels) ** weights))
    got = one('MS_SSIM', fused.astype(np.uint8), vis.astype(np.uint8), ir.astype(np.uint8), 'tang')
    assert got == pytest.approx(expected, rel=1e-9)


def test_ms_ssim_small_is_minus_inf_and_self_is_high():
    x = rand_u8(40, 60)
    assert one('MS_SSIM', x, x, x, 'tang') == -math.inf  # min(H, W) / 4 = 10 < 11
    y = rand_u8(48, 48).astype(float)
    assert mef_ms_ssim((y, y), y) == pytest.approx(1.0, abs=1e-9)


# ----------------------------------------------------------------------------- preparation

def test_tang_gray_matlab_rounding():
    # Coefficients sum to 1 - 1e-15: white must round to 255 (truncation would give 254).
    # (14, 222, 0): 134.505 in MATLAB's weights -> 135; cv2/cddfuse: float32 134.5 -> 134 (even).
    img = u8([[[255, 255, 255], [14, 222, 0], [246, 197, 108]]])
    tang = prepare_inputs(img, img, img, 'tang').planes[0][0]
    np.testing.assert_array_equal(tang, [[255, 135, 202]])
    cdd = prepare_inputs(img, img, img, 'cddfuse').planes[0][0]
    ref = np.round(cv2.cvtColor(img[..., ::-1].astype(np.float32), cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(cdd, ref)
    assert cdd[0, 1] == 134


def test_cddfuse_gray_matches_cv2_and_keeps_gray_values():
    img = rand_u8(40, 50, 3)
    got = prepare_inputs(img, img, img, 'cddfuse').planes[0][0]
    ref = np.round(cv2.cvtColor(img[..., ::-1].astype(np.float32), cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(got, ref)
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(prepare_inputs(gray, gray, gray, 'cddfuse').planes[0][0], gray)


def test_vifb_gray_ir_used_for_every_channel():
    fused, vis, ir = rand_u8(8, 9, 3), rand_u8(8, 9, 3), rand_u8(8, 9)
    ir3 = np.repeat(ir[..., None], 3, axis=2)
    names = ['EN', 'MI', 'CE', 'RMSE', 'PSNR', 'SF', 'AG', 'EI']
    a = compute_metrics(fused, vis, ir, names, 'vifb')
    b = compute_metrics(fused, vis, ir3, names, 'vifb')
    for n in names:
        assert a[n] == pytest.approx(b[n], rel=1e-12)
    # Per-channel mean, checked on RMSE with channel-wise hand values.
    d = lambda s, f: math.sqrt(np.sum((s.astype(float) - f) ** 2)) / s.size  # noqa: E731
    chans = [(d(vis[..., k], fused[..., k]) + d(ir, fused[..., k])) / 2 for k in range(3)]
    assert RMSE(fused, vis, ir, 'vifb') == pytest.approx(np.mean(chans), rel=1e-12)


def test_float_inputs():
    x = rand_u8(6, 6)
    as_float = compute_metrics(x.astype(np.float32), x, x, ['EN', 'SD'])
    assert as_float == compute_metrics(x, x, x, ['EN', 'SD'])


def test_non_integer_floats_are_rounded_with_warning(caplog):
    x = u8([[1, 2], [3, 4]])
    with caplog.at_level(logging.WARNING):
        a = compute_metrics(x + 0.4, x, x, ['SD'], 'tang')
    assert 'rounded' in caplog.text
    assert a['SD'] == pytest.approx(np.std([1, 2, 3, 4]), rel=1e-12)
    # 2.5 -> 3 (half away, tang) vs 2 (half even, cddfuse).
    half = np.array([[2.5, 2.5], [0, 0]])
    assert compute_metrics(half, x, x, ['SD'], 'tang')['SD'] == pytest.approx(1.5, rel=1e-12)
    assert compute_metrics(half, x, x, ['SD'], 'cddfuse')['SD'] == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize('bad', [
    np.zeros((4, 4), np.uint16), np.full((4, 4), 256.0), np.full((4, 4), np.nan),
    np.zeros((4, 4, 2), np.uint8), np.zeros((4,), np.uint8), np.zeros((4, 4), bool)])
def test_bad_inputs_raise(bad):
    x = np.zeros((4, 4), np.uint8)
    with pytest.raises(DataError):
        compute_metrics(bad, x, x, ['EN'])


def test_size_mismatch_raises():
    with pytest.raises(DataError, match='sizes differ'):
        compute_metrics(rand_u8(4, 4), rand_u8(4, 5), rand_u8(4, 4), ['EN'])


def test_vifb_gray_fused_with_rgb_source_raises():
    with pytest.raises(DataError, match=r'1-channel fused .* rebuild the RGB fused image first '
                                        r'\(VIFB scores R, G and B separately\)$'):
        compute_metrics(rand_u8(4, 4), rand_u8(4, 4, 3), rand_u8(4, 4), ['EN'], 'vifb')


# ----------------------------------------------------------------------------- front

def test_convention_and_metric_errors():
    x = rand_u8(8, 8)
    with pytest.raises(ConfigError, match='unknown metric convention'):
        compute_metrics(x, x, x, ['EN'], 'matlab')
    with pytest.raises(ConfigError, match='defined in: vifb'):
        compute_metrics(x, x, x, ['CE'], 'cddfuse')
    with pytest.raises(ConfigError, match='defined in: tang, cddfuse'):
        compute_metrics(x, x, x, ['SCD'], 'vifb')
    with pytest.raises(ConfigError, match="'ENN'"):
        compute_metrics(x, x, x, ['ENN'], 'cddfuse')
    with pytest.raises(ConfigError):
        metrics_for('nope')


def test_metric_lists_and_directions():
    vifb = set(metrics_for('vifb'))
    assert {'EN', 'SD', 'SF', 'AG', 'MI', 'SSIM', 'PSNR', 'RMSE', 'CE', 'EI'} <= vifb
    assert not {'CC', 'SCD', 'MSE', 'MS_SSIM'} & vifb
    assert {'CC', 'SCD', 'MSE', 'MS_SSIM'} <= set(metrics_for('tang'))
    assert not {'CE', 'EI', 'RMSE', 'MS_SSIM'} & set(metrics_for('cddfuse'))
    assert default_metrics('cddfuse') == ['EN', 'SD', 'SF', 'MI', 'SCD', 'VIF', 'Qabf', 'SSIM']
    assert not higher_is_better('MSE', 'cddfuse') and not higher_is_better('MSE', 'tang')
    assert not higher_is_better('CE', 'vifb') and not higher_is_better('RMSE', 'vifb')
    assert higher_is_better('EN', 'vifb') and higher_is_better('SSIM', 'tang')
    with pytest.raises(ConfigError):
        higher_is_better('RMSE', 'cddfuse')


def test_compute_metrics_default_and_all():
    x, y, z = rand_u8(48, 48, 3), rand_u8(48, 48, 3), rand_u8(48, 48)
    assert list(compute_metrics(x, y, z)) == default_metrics('cddfuse')
    assert list(compute_metrics(x, y, z, 'all', 'vifb')) == metrics_for('vifb')


# ----------------------------------------------------------------------------- image reading

def test_read_image_rgb(tmp_path):
    rgb = rand_u8(5, 6, 3)
    cv2.imwrite(str(tmp_path / 'c.png'), rgb[..., ::-1])
    np.testing.assert_array_equal(read_image_rgb(tmp_path / 'c.png'), rgb)
    gray = rand_u8(5, 6)
    cv2.imwrite(str(tmp_path / 'g.png'), gray)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / 'g.png'), gray)
    rgba = np.concatenate([rgb[..., ::-1], np.full((5, 6, 1), 200, np.uint8)], axis=2)
    cv2.imwrite(str(tmp_path / 'a.png'), rgba)
    np.testing.assert_array_equal(read_image_rgb(tmp_path / 'a.png'), rgb)
    cv2.imwrite(str(tmp_path / 'w.png'), np.zeros((5, 6), np.uint16))
    with pytest.raises(DataError, match='w.png'):
        read_image_rgb(tmp_path / 'w.png')
    with pytest.raises(DataError, match='missing.png'):
        read_image_rgb(tmp_path / 'missing.png')


# ----------------------------------------------------------------------------- scripts/evaluate.py

def _run_eval(*args):
    return subprocess.run([sys.executable, 'scripts/evaluate.py', *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture()
def folders(tmp_path):
    vis, ir, fused = tmp_path / 'vi', tmp_path / 'ir', tmp_path / 'fused'
    for d in (vis, ir, fused):
        d.mkdir()
    two_level = np.tile(u8([[0, 200], [200, 0]]), (10, 10))  # EN exactly 1 bit
    for k, stem in enumerate(['a1', 'b2']):
        cv2.imwrite(str(vis / f'{stem}.jpg'), rand_u8(20, 20, 3))
        cv2.imwrite(str(ir / f'{stem}.png'), rand_u8(20, 20))
        cv2.imwrite(str(fused / f'{stem}_M.png'), two_level if k == 0 else rand_u8(20, 20))
        cv2.imwrite(str(fused / f'{stem}_N.png'), rand_u8(20, 20))
    return tmp_path


def _read_csv(path):
    with open(path, newline='') as fh:
        return list(csv.reader(fh))


def test_evaluate_single_method(folders):
    out = folders / 'table.csv'
    res = _run_eval('--fused', folders / 'fused', '--vis', folders / 'vi', '--ir', folders / 'ir',
                    '--fused-suffix', '_M', '--metrics', 'EN', 'SD', 'MI', '--workers', '2',
                    '--out', out)
    assert res.returncode == 0, res.stderr
    assert '| M |' in res.stdout and 'convention: cddfuse' in res.stdout
    rows = _read_csv(out)
    assert rows[0] == ['image', 'EN', 'SD', 'MI']
    assert [r[0] for r in rows[1:]] == ['a1', 'b2', 'mean']
    assert float(rows[1][1]) == pytest.approx(1.0, abs=1e-12)
    for col in (1, 2, 3):
        assert float(rows[3][col]) == pytest.approx((float(rows[1][col]) + float(rows[2][col])) / 2)
    fused = read_image_rgb(folders / 'fused' / 'b2_M.png')
    vis, ir = read_image_rgb(folders / 'vi' / 'b2.jpg'), read_image_rgb(folders / 'ir' / 'b2.png')
    assert float(rows[2][2]) == pytest.approx(np.std(fused.astype(float)), rel=1e-12)
    assert float(rows[2][3]) == pytest.approx(MI(fused, vis, ir), rel=1e-12)


def test_evaluate_detects_several_methods(folders):
    out = folders / 'table.csv'
    res = _run_eval('--fused', folders / 'fused', '--vis', folders / 'vi', '--ir', folders / 'ir',
                    '--metrics', 'EN', '--workers', '1', '--out', out, '--convention', 'tang')
    assert res.returncode == 0, res.stderr
    rows = _read_csv(out)
    assert rows[0] == ['method', 'image', 'EN']
    assert [r[:2] for r in rows[1:]] == [['M', 'a1'], ['M', 'b2'], ['M', 'mean'],
                                         ['N', 'a1'], ['N', 'b2'], ['N', 'mean']]


def _assert_one_line_error(res, *needles):
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), res.stderr
    for needle in needles:
        assert needle in lines[0]


def test_evaluate_errors(folders):
    base = ['--vis', folders / 'vi', '--ir', folders / 'ir', '--workers', '1']
    _assert_one_line_error(_run_eval('--fused', folders / 'nope', *base), 'nope')
    _assert_one_line_error(_run_eval('--fused', folders / 'fused', *base, '--metrics', 'CE'), 'CE')
    _assert_one_line_error(_run_eval('--fused', folders / 'fused', *base, '--ir-range', 'gamma'),
                           '--ir-range', 'gamma')
    (folders / 'tables').mkdir()
    _assert_one_line_error(_run_eval('--fused', folders / 'fused', *base,
                                     '--out', folders / 'tables'), '--out', 'is a folder')
    _assert_one_line_error(_run_eval('--fused', folders / 'fused', *base,  # an input folder
                                     '--out', folders / 'vi'), '--out', 'same location as --vis')


def test_evaluate_skips_bad_items_by_name(folders):
    """An unpaired source and a wrongly sized fused image are named and skipped; exit 1."""
    cv2.imwrite(str(folders / 'vi' / 'c3.png'), rand_u8(20, 20, 3))
    cv2.imwrite(str(folders / 'fused' / 'b2_M.png'), rand_u8(21, 20))
    out = folders / 'table.csv'
    res = _run_eval('--fused', folders / 'fused', '--vis', folders / 'vi', '--ir', folders / 'ir',
                    '--fused-suffix', '_M', '--metrics', 'EN', '--workers', '1', '--out', out)
    assert res.returncode == 1
    assert re.search(r'failed: b2: b2_M\.png: .*sizes differ', res.stderr)
    assert re.search(r'failed: c3: c3\.png has no infrared image', res.stderr)
    assert 'Traceback' not in res.stderr
    rows = _read_csv(out)
    assert [r[0] for r in rows[1:]] == ['a1', 'mean']
    assert float(rows[1][1]) == pytest.approx(1.0, abs=1e-12) and rows[2][1] == rows[1][1]


def test_evaluate_n_a_values_with_reason_and_counted_mean(tmp_path):
    """vifb SSIM (11x11 windows) is undefined on a 9x9 image: n/a, reason, mean over the others."""
    for d in ('vi', 'ir', 'fused'):
        (tmp_path / d).mkdir()
    for stem, size in (('big', 24), ('small', 9)):
        cv2.imwrite(str(tmp_path / 'vi' / f'{stem}.png'), rand_u8(size, size, 3))
        cv2.imwrite(str(tmp_path / 'ir' / f'{stem}.png'), rand_u8(size, size))
        cv2.imwrite(str(tmp_path / 'fused' / f'{stem}.png'), rand_u8(size, size, 3))
    out = tmp_path / 'table.csv'
    res = _run_eval('--fused', tmp_path / 'fused', '--vis', tmp_path / 'vi', '--ir', tmp_path / 'ir',
                    '--fused-suffix', '', '--metrics', 'EN', 'SSIM', '--workers', '1', '--out', out,
                    '--convention', 'vifb')
    assert res.returncode == 0, res.stderr
    assert re.search(r"n/a: small: SSIM n/a \(NaN: 9x9 is too small for the metric's windows\)",
                     res.stdout)
    assert re.search(r'\| fused \| 2 \| [-\d.]+ \| [-\d.]+ \(1 of 2\) \|', res.stdout)
    rows = _read_csv(out)
    assert [r[0] for r in rows[1:]] == ['big', 'small', 'mean', 'images']
    assert rows[2][2] == 'n/a' and rows[3][2] == rows[1][2] and rows[4] == ['images', '2', '1']
    assert float(rows[3][1]) == pytest.approx((float(rows[1][1]) + float(rows[2][1])) / 2)


def test_evaluate_reads_16bit_infrared_with_the_range_rule(tmp_path):
    """A 16-bit infrared file is mapped to 8 bits by --ir-range, not refused."""
    for d in ('vi', 'ir', 'fused'):
        (tmp_path / d).mkdir()
    ir16 = (np.arange(400, dtype=np.uint16).reshape(20, 20) * 50 + 3000)
    cv2.imwrite(str(tmp_path / 'ir' / 'a.png'), ir16)
    cv2.imwrite(str(tmp_path / 'vi' / 'a.png'), rand_u8(20, 20))
    fused = rand_u8(20, 20)
    cv2.imwrite(str(tmp_path / 'fused' / 'a.png'), fused)
    out = tmp_path / 't.csv'
    res = _run_eval('--fused', tmp_path / 'fused', '--vis', tmp_path / 'vi', '--ir', tmp_path / 'ir',
                    '--fused-suffix', '', '--metrics', 'CC', '--workers', '1', '--out', out,
                    '--ir-range', 'fixed:3000,22950')
    assert res.returncode == 0, res.stderr
    ir8 = np.round((ir16.astype(float) - 3000) / 19950 * 255)       # exact linear map
    vis = read_image_rgb(tmp_path / 'vi' / 'a.png').astype(float)
    f = fused.astype(float)
    cc = (np.corrcoef(ir8.ravel(), f.ravel())[0, 1] + np.corrcoef(vis.ravel(), f.ravel())[0, 1]) / 2
    assert float(_read_csv(out)[1][1]) == pytest.approx(cc, rel=1e-9)


def test_registry_entries_are_whole_image_metric_functions():
    from basicsr.utils.registry import METRIC_REGISTRY
    # two-level image: half 0, half 255 -> EN = 1 bit in every convention
    fused = np.zeros((4, 4), np.uint8)
    fused[:, 2:] = 255
    src = np.full((4, 4), 7, np.uint8)
    for conv in ('vifb', 'tang', 'cddfuse'):
        assert METRIC_REGISTRY.get('EN')(fused, src, src, conv) == pytest.approx(1.0)


def test_evaluate_ctrl_c_exits_130_with_one_line(folders, capsys, monkeypatch):
    from basicsr.tools import evaluate
    real, calls = evaluate.evaluate_stem, []

    def stop_on_second(task):
        calls.append(task[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(evaluate, 'evaluate_stem', stop_on_second)
    out = folders / 'partial.csv'
    code = evaluate.main(['--fused', str(folders / 'fused'), '--vis', str(folders / 'vi'), '--ir',
                          str(folders / 'ir'), '--fused-suffix', '_M', '--metrics', 'EN',
                          '--workers', '1', '--out', str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1 and err[0].startswith('interrupted: 1 of 2 images')
    assert [r[0] for r in _read_csv(out)[1:]] == ['a1', 'mean']
