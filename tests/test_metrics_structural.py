"""VIF, Qabf, Nabf, Qcb, Qcv and FMI: hand-derived values and slow per-pixel references.

The slow references below are written straight from the metric definitions (explicit loops,
explicit padding, explicit DFT matrices) and share no code with the library.
"""
import math

import numpy as np
import pytest

from basicsr.metrics.contrast_metrics import norm255, qcb, qcv
from basicsr.metrics.fmi_metric import edge_sobel, fmi, fmi_features
from basicsr.metrics.gradient_metrics import nabf, nabf_generic, nabf_intended, qabf, qabf_generic
from basicsr.metrics.vif_metric import vif, vifp
from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import METRIC_REGISTRY

KX = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
KY = [[1, 2, 1], [0, 0, 0], [-1, -2, -1]]


def _rand(shape, seed, flat=False):
    """Integer image 0..255; with ``flat`` it has constant patches and an inverted region."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, shape).astype(np.float64)
    if flat:
        img[: shape[0] // 3, : shape[1] // 3] = 90.0
        img[-4:, -5:] = 255.0 - img[-4:, -5:]
    return img


# ----------------------------------------------------------------------------- slow references
def _slow_qabf(pa, pb, pf):
    h, w = pf.shape

    def grad(p):
        pad = np.zeros((h + 2, w + 2))
        pad[1:-1, 1:-1] = p
        g, a = np.zeros((h, w)), np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                sx = sy = 0.0
                for u in (-1, 0, 1):
                    for v in (-1, 0, 1):  # true convolution: kernel index opposite to offset
                        sx += KX[1 - u][1 - v] * pad[i + 1 + u, j + 1 + v]
                        sy += KY[1 - u][1 - v] * pad[i + 1 + u, j + 1 + v]
                g[i, j] = math.sqrt(sx * sx + sy * sy)
                a[i, j] = math.pi / 2 if sx == 0 else math.atan(sy / sx)
        return g, a

    (ga, aa), (gb, ab), (gf, af) = grad(pa), grad(pb), grad(pf)
    num = den = 0.0
    for i in range(h):
        for j in range(w):
            for gx, ax in ((ga[i, j], aa[i, j]), (gb[i, j], ab[i, j])):
                if gx > gf[i, j]:
                    s = gf[i, j] / gx
                elif gx == gf[i, j]:
                    s = gf[i, j]
                else:
                    s = gx / gf[i, j]
                o = 1 - abs(ax - af[i, j]) / (math.pi / 2)
                q = 0.9994 / (1 + math.exp(-15 * (s - 0.5))) * 0.9879 / (1 + math.exp(-22 * (o - 0.8)))
                num += q * gx
                den += gx
    return num / den


def _slow_nabf(f, a, b):
    h, w = f.shape

    def refl(k, n):
        return -k if k < 0 else (2 * n - 2 - k if k >= n else k)

    def grad(p):
        g, al = np.zeros((h, w)), np.zeros((h, w))
        for i in range(h):
            for j in range(w):
                gv = gh = 0.0
                for u in (-1, 0, 1):
                    for v in (-1, 0, 1):  # correlation
                        x = p[refl(i + u, h), refl(j + v, w)]
                        gv += KX[1 + u][1 + v] / 8 * x
                        gh += -KY[1 + u][1 + v] / 8 * x
                g[i, j] = math.hypot(gv, gh)
                al[i, j] = 0.0 if gv == 0 and gh == 0 else (
                    math.copysign(math.pi / 2, gv) if gh == 0 else math.atan(gv / gh))
        return g, al

    (gf, af), (ga, aa), (gb, ab) = grad(f), grad(a), grad(b)
    num = den = 0.0
    for i in range(h):
        for j in range(w):
            terms = []
            for gx, ax in ((ga[i, j], aa[i, j]), (gb[i, j], ab[i, j])):
                s = 0.0 if gx == 0 or gf[i, j] == 0 else min(gx, gf[i, j]) / max(gx, gf[i, j])
                o = abs(abs(ax - af[i, j]) - math.pi / 2) * 2 / math.pi
                q = math.sqrt(0.9999 / (1 + math.exp(-19 * (s - 0.5)))
                              * 0.9995 / (1 + math.exp(-22 * (o - 0.5))))
                wx = gx ** 1.5 if gx >= 2 else 0.001
                terms.append(((1 - q) * wx, wx))
            if gf[i, j] > ga[i, j] and gf[i, j] > gb[i, j]:
                num += terms[0][0] + terms[1][0]
            den += terms[0][1] + terms[1][1]
    return num / den


def _slow_vifp(ref, dist):
    def window(n):
        ax = np.arange(n) - (n - 1) / 2
        g = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * (n / 5) ** 2))
        return g / g.sum()

    def valid(x, wdw):
        n = wdw.shape[0]
        out = np.zeros((max(x.shape[0] - n + 1, 0), max(x.shape[1] - n + 1, 0)))
        for i in range(out.shape[0]):
            for j in range(out.shape[1]):
                out[i, j] = np.sum(wdw * x[i:i + n, j:j + n])
        return out

    num = den = 0.0
    for s in range(1, 5):
        n = 2 ** (5 - s) + 1
        wdw = window(n)
        if s > 1:
            ref, dist = valid(ref, wdw)[::2, ::2], valid(dist, wdw)[::2, ::2]
        m1, m2 = valid(ref, wdw), valid(dist, wdw)
        s1, s2, s12 = valid(ref * ref, wdw), valid(dist * dist, wdw), valid(ref * dist, wdw)
        for i in range(m1.shape[0]):
            for j in range(m1.shape[1]):
                v1 = max(s1[i, j] - m1[i, j] ** 2, 0.0)
                v2 = max(s2[i, j] - m2[i, j] ** 2, 0.0)
                c12 = s12[i, j] - m1[i, j] * m2[i, j]
                g = c12 / (v1 + 1e-10)
                sv = v2 - g * c12
                if v1 < 1e-10:
                    g, sv, v1 = 0.0, v2, 0.0
                if v2 < 1e-10:
                    g, sv = 0.0, 0.0
                if g < 0:
                    sv, g = v2, 0.0
                sv = max(sv, 1e-10)
                num += math.log10(1 + g * g * v1 / (sv + 2))
                den += math.log10(1 + v1 / 2)
    return num / den


def _slow_edge(img):
    h, w = img.shape
    bx, by = np.zeros((h, w)), np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            for u in (-1, 0, 1):
                for v in (-1, 0, 1):
                    x = img[min(max(i + u, 0), h - 1), min(max(j + v, 0), w - 1)]
                    by[i, j] += KY[1 + u][1 + v] / 8 * x
                    bx[i, j] += KY[1 + v][1 + u] / 8 * x  # transposed Sobel
    b = bx ** 2 + by ** 2
    cutoff = 4 * b.mean()
    tol = 100 * np.finfo(float).eps
    e = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            hor = (abs(bx[i, j]) >= abs(by[i, j]) - tol and (j == 0 or b[i, j - 1] <= b[i, j])
                   and (j == w - 1 or b[i, j] > b[i, j + 1]))
            ver = (abs(by[i, j]) >= abs(bx[i, j]) - tol and (i == 0 or b[i - 1, j] <= b[i, j])
                   and (i == h - 1 or b[i, j] > b[i + 1, j]))
            e[i, j] = b[i, j] > cutoff and (hor or ver)
    return e


def _slow_fmi_pair(xw, fw):
    """(fmi of one window pair, fused window as left by the reference)."""
    if np.array_equal(xw, fw):
        return 1.0, fw

    def norm(p):
        return np.ones_like(p) if p.max() == p.min() else (p - p.min()) / (p.max() - p.min())

    xw, fw = norm(xw), norm(fw)
    x, f = xw.flatten(order='F'), fw.flatten(order='F')
    x, f = x / x.sum(), f / f.sum()
    xc, fc = np.cumsum(x), np.cumsum(f)
    dx, df = x - 1 / 9, f - 1 / 9  # a pdf over 9 bins has mean exactly 1/9
    cov = np.sum(dx * df)
    c = 0.0 if cov == 0 else cov / math.sqrt(np.sum(dx * dx) * np.sum(df * df))
    k = np.arange(1, 10)
    sdx = math.sqrt(np.sum((k - np.sum(k * x)) ** 2 * x))
    sdf = math.sqrt(np.sum((k - np.sum(k * f)) ** 2 * f))
    up = np.minimum(fc[:, None], xc[None, :])
    lo = np.maximum(fc[:, None] + xc[None, :] - 1, 0.0)
    bnd = up if c >= 0 else lo
    if sdx == 0 or sdf == 0 or c == 0:
        lam = 0.0
    else:
        lam = c / (np.sum(bnd - fc[:, None] * xc[None, :]) / (sdf * sdx))
    pad = np.zeros((10, 10))
    pad[1:, 1:] = bnd
    joint = lam * (pad[1:, 1:] - pad[:-1, 1:] - pad[1:, :-1] + pad[:-1, :-1]) \
        + (1 - lam) * f[:, None] * x[None, :]
    hj = sum(-p * math.log2(abs(p)) for p in joint.ravel() if p != 0)
    hx = sum(-p * math.log2(p) for p in x if p > 0)
    hf = sum(-p * math.log2(p) for p in f if p > 0)
    mi = hx + hf - hj
    return (0.0 if mi == 0 else 2 * mi / (hx + hf)), fw


def _slow_fmi_map(a, b, f):
    h, w = f.shape
    out = np.zeros((h - 2, w - 2))
    for i in range(h - 2):
        for j in range(w - 2):
            fa, fw = _slow_fmi_pair(a[i:i + 3, j:j + 3], f[i:i + 3, j:j + 3])
            fb, _ = _slow_fmi_pair(b[i:i + 3, j:j + 3], fw)
            out[i, j] = (fa + fb) / 2
    return out


def _signed_freq(n):
    k = np.arange(n)
    return np.where(k < n - n // 2, k, k - n)


def _dft_filter(x, response_of_r, div):
    """Re(IDFT2(DFT2(x) * S(r))) with explicit DFT matrices; r from the scaled frequency grid."""
    h, w = x.shape
    fh = np.exp(-2j * np.pi * np.outer(np.arange(h), np.arange(h)) / h)
    fw = np.exp(-2j * np.pi * np.outer(np.arange(w), np.arange(w)) / w)
    u = _signed_freq(w) * (2.0 / w) * (w / div)
    v = _signed_freq(h) * (2.0 / h) * (h / div)
    resp = response_of_r(np.sqrt(u[None, :] ** 2 + v[:, None] ** 2))
    spec = fh @ x @ fw.T
    return np.real(np.conj(fh) @ (spec * resp) @ np.conj(fw).T / (h * w))


def _slow_filter_same(x, kern):
    h, w = x.shape
    r = kern.shape[0] // 2
    pad = np.zeros((h + 2 * r, w + 2 * r))
    pad[r:r + h, r:r + w] = x
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.sum(kern * pad[i:i + 2 * r + 1, j:j + 2 * r + 1])
    return out


def _slow_qcb(f, vi, ir):
    def csf(r):
        return np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)

    ax = np.arange(-15, 16)
    gauss = {s: np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * s * s)) / (2 * np.pi * s * s)
             for s in (2, 4)}
    cp = []
    for img in (vi, ir, f):
        t = _dft_filter(norm255(img), csf, 30.0)
        c = np.abs(_slow_filter_same(t, gauss[2]) / _slow_filter_same(t, gauss[4]) - 1)
        cp.append(c ** 3 / (c ** 2 + 1e-4))
    cv, ci, cf = cp
    q = [np.where(c < cf, c / cf, cf / c) for c in (cv, ci)]
    return np.mean((cv ** 2 * q[0] + ci ** 2 * q[1]) / (cv ** 2 + ci ** 2))


def _slow_qcv(f, vi, ir):
    def csf(r):
        return 2.6 * (0.0192 + 0.144 * r) * np.exp(-(0.144 * r) ** 1.1)

    fn = norm255(f)
    h, w = f.shape
    num = den = 0.0
    for src in (norm255(vi), norm255(ir)):
        g = np.hypot(_slow_filter_same(src, np.array(KX, float)),
                     _slow_filter_same(src, -np.array(KY, float)))
        d = _dft_filter(src - fn, csf, 8.0)
        for i0 in range(0, h, 16):
            for j0 in range(0, w, 16):
                lam = np.sum(g[i0:i0 + 16, j0:j0 + 16] ** 5)
                num += lam * np.sum(d[i0:i0 + 16, j0:j0 + 16] ** 2) / 256
                den += lam
    return num / den


# ----------------------------------------------------------------------------- Qabf
def _impulse(value=1.0):
    p = np.zeros((7, 7))
    p[3, 3] = value
    return p


def _qg(x):
    return 0.9994 / (1 + math.exp(-15 * (x - 0.5)))


QA_ONE = 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))  # orientation term for equal angles


def test_qabf_self_uses_equal_strength_branch_and_vifb_scaling():
    p = _impulse()
    # Sobel of a unit impulse: g = 2 at the 4 edge neighbours, sqrt(2) at the 4 corners.
    # Equal strengths take G = g_F (not 1), so Qg varies with g; x255 saturates it at 0.9994.
    r2 = math.sqrt(2)
    expected_tang = QA_ONE * (4 * 2 * _qg(2) + 4 * r2 * _qg(r2)) / (4 * 2 + 4 * r2)
    expected_vifb = 0.9994 * QA_ONE
    assert qabf(p, p, p, 'tang') == pytest.approx(expected_tang, rel=1e-12)
    assert qabf(p, p, p, 'cddfuse') == pytest.approx(expected_tang, rel=1e-12)
    assert qabf(p, p, p, 'vifb') == pytest.approx(expected_vifb, rel=1e-12)
    assert abs(expected_vifb - expected_tang) > 1e-7  # far above the 1e-12 tolerance


def test_qabf_half_strength_same_in_all_conventions():
    a, f, b = _impulse(1.0), _impulse(2.0), np.zeros((7, 7))
    expected = 0.9994 / 2 * QA_ONE  # G = 0.5 wherever g_A > 0; B has no gradient (weight 0)
    for conv in ('vifb', 'tang', 'cddfuse'):
        # vifb: A = VI, B = IR; tang/cddfuse: A = IR, B = VI; the value is symmetric in A, B.
        assert qabf(f, a, b, conv) == pytest.approx(expected, rel=1e-12)
        assert qabf(f, b, a, conv) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('seed', [0, 1])
def test_qabf_matches_slow_reference(seed):
    a, b = _rand((9, 11), seed, flat=True), _rand((9, 11), seed + 10)
    f = a.copy()
    f[:, 6:] = b[:, 6:]  # shares gradients with both sources: exercises g_X == g_F
    assert qabf_generic(a, b, f) == pytest.approx(_slow_qabf(a, b, f), rel=1e-12)
    assert qabf(f, b, a, 'tang') == pytest.approx(_slow_qabf(a, b, f), rel=1e-12)
    assert qabf(f, b, a, 'vifb') == pytest.approx(_slow_qabf(255 * b, 255 * a, 255 * f), rel=1e-12)


def test_qabf_nan_without_gradients():
    z = np.zeros((6, 6))
    assert math.isnan(qabf(_rand((6, 6), 3), z, z, 'tang'))


# ----------------------------------------------------------------------------- Nabf
def _step_case():
    a = np.zeros((6, 8))
    a[:, 4:] = 16.0
    return a, 2 * a, np.zeros((6, 8))


def test_nabf_hand_step_edge_all_roles():
    a, f, b = _step_case()
    # Rows are identical -> gh = 0; gv = (a[c+1]-a[c-1])/2 = 8 at columns 3, 4 (12 pixels).
    # There g_f = 16: G_a = 0.5, equal angles -> A_a = 1; b flat -> G_b = 0, A_b = 0.
    qa = math.sqrt(0.9999 / 2 * 0.9995 / (1 + math.exp(-11)))
    qb = math.sqrt(0.9999 / (1 + math.exp(9.5)) * 0.9995 / (1 + math.exp(11)))
    wa = 8 ** 1.5
    expected = 12 * ((1 - qa) * wa + (1 - qb) * 0.001) / (12 * wa + 36 * 0.001 + 48 * 0.001)
    assert nabf_generic(f, a, b) == pytest.approx(expected, rel=1e-12)
    # tang reproduces the toolbox's argument order: N(f=IR, a=VI, b=F).
    assert nabf(b, a, f, 'tang') == pytest.approx(expected, rel=1e-12)
    assert nabf_intended(f, a, b, 'tang') == pytest.approx(expected, rel=1e-12)


def test_nabf_zero_when_fused_never_stronger():
    a, b = _rand((9, 11), 4), _rand((9, 11), 5)
    assert nabf_generic(np.full((9, 11), 50.0), a, b) == 0.0
    assert nabf_generic(a, a, b) == 0.0  # g_f == g_a everywhere: never strictly stronger
    assert nabf_intended(np.zeros((9, 11)), b, a, 'tang') == 0.0


@pytest.mark.parametrize('seed', [0, 1])
def test_nabf_matches_slow_reference(seed):
    f, a, b = _rand((9, 11), seed, flat=True), _rand((9, 11), seed + 20), _rand((9, 11), seed + 30)
    b[:4] = f[:4]
    assert nabf_generic(f, a, b) == pytest.approx(_slow_nabf(f, a, b), rel=1e-12)
    assert nabf(b, a, f, 'tang') == pytest.approx(_slow_nabf(f, a, b), rel=1e-12)


# ----------------------------------------------------------------------------- VIF
@pytest.mark.parametrize('shape', [(45, 43), (30, 20)])
def test_vif_matches_slow_reference(shape):
    ref = _rand(shape, 7, flat=True)
    dist = np.clip(0.6 * ref + 0.4 * _rand(shape, 8), 0, 255).round()
    dist[-6:, :] = 255 - ref[-6:, :]  # negative covariance: g < 0 branch
    assert vifp(ref, dist) == pytest.approx(_slow_vifp(ref, dist), rel=1e-9)


def test_vif_of_image_with_itself():
    # D = R: sigma12 = sigma1^2 = sigma2^2, g = s/(s+1e-10) ~ 1, sv^2 clamps to 1e-10, so every
    # numerator term is log10(1 + s/(2 + 1e-10)) ~ the denominator term: vifp = 1 - O(1e-10).
    img = _rand((48, 48), 9, flat=True)
    for conv in ('tang', 'cddfuse'):
        assert vif(img, img, img, conv) == pytest.approx(2.0, abs=1e-8)


def test_vif_constant_source_nan_or_one():
    img = _rand((48, 48), 10)
    const = np.full((48, 48), 120.0)
    assert math.isnan(vif(img, img, const, 'tang'))
    # cddfuse: NaN vifp(IR, F) -> 1.0, plus vifp(VI, F) = vifp(F, F) ~ 1.
    assert vif(img, img, const, 'cddfuse') == pytest.approx(2.0, abs=1e-8)
    assert vif(const, const, const, 'cddfuse') == 2.0


def test_vif_below_17_px_is_undefined():
    img = _rand((12, 30), 11)
    assert math.isnan(vif(img, img, img, 'tang'))
    assert vif(img, img, img, 'cddfuse') == 2.0


# ----------------------------------------------------------------------------- Qcb, Qcv
def test_norm255_matlab_rounding_and_special_cases():
    # 3/10 * 255 = 76.5 rounds away from zero (numpy's half-to-even would give 76).
    assert norm255(np.array([[0.0, 3.0, 10.0]])).tolist() == [[0.0, 77.0, 255.0]]
    z = np.zeros((2, 2))
    assert norm255(z).tolist() == z.tolist()
    assert np.isnan(norm255(np.full((2, 2), 5.0))).all()


def test_qcb_qcv_identical_images():
    img = _rand((20, 27), 12)
    assert qcb(img, img, img, 'vifb') == pytest.approx(1.0, abs=1e-12)
    assert qcv(img, img, img, 'vifb') == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('shape', [(9, 11), (18, 20)])
def test_qcb_qcv_match_slow_reference(shape):
    f, vi, ir = _rand(shape, 13), _rand(shape, 14, flat=True), _rand(shape, 15)
    assert qcb(f, vi, ir, 'vifb') == pytest.approx(_slow_qcb(f, vi, ir), rel=1e-10)
    assert qcv(f, vi, ir, 'vifb') == pytest.approx(_slow_qcv(f, vi, ir), rel=1e-10)


def test_qcb_qcv_invariant_to_affine_rescaling():
    f, vi, ir = _rand((16, 21), 16), _rand((16, 21), 17), _rand((16, 21), 18)
    f[0, 0], f[0, 1] = 0, 255  # full range, so x -> 0.5 x + 40 normalises back exactly
    scaled = 0.5 * f + 40
    assert qcb(scaled, vi, ir, 'vifb') == pytest.approx(qcb(f, vi, ir, 'vifb'), rel=1e-12)
    assert qcv(scaled, vi, ir, 'vifb') == pytest.approx(qcv(f, vi, ir, 'vifb'), rel=1e-12)


# ----------------------------------------------------------------------------- FMI
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_edge_sobel_matches_slow_reference(seed):
    img = _rand((9, 11), seed, flat=True)
    assert np.array_equal(edge_sobel(img), _slow_edge(img))


@pytest.mark.parametrize('density', [0.1, 0.4, 0.9])
def test_fmi_features_match_slow_reference(density):
    rng = np.random.default_rng(int(density * 10))
    a, b, f = ((rng.random((9, 11)) < density).astype(float) for _ in range(3))
    b[:3] = f[:3]
    value, fmap = fmi_features(a, b, f)
    expected = _slow_fmi_map(a, b, f)
    assert np.allclose(fmap, expected, rtol=0, atol=1e-12)
    assert value == pytest.approx(expected.mean(), abs=1e-12)


def test_fmi_tang_matches_slow_reference_on_images():
    ir, vi, f = _rand((9, 11), 21), _rand((9, 11), 22, flat=True), _rand((9, 11), 23)
    expected = _slow_fmi_map(_slow_edge(ir).astype(float), _slow_edge(vi).astype(float),
                             _slow_edge(f).astype(float)).mean()
    assert fmi(f, vi, ir, 'tang') == pytest.approx(expected, abs=1e-12)


def test_fmi_in_place_normalisation_quirk():
    z, ones = np.zeros((3, 3)), np.ones((3, 3))
    point = z.copy()
    point[1, 1] = 1
    # IR differs from the all-zero F window, so F is normalised to ones before the VI test:
    # VI (all ones) then counts as equal -> 1. IR (point mass) vs uniform: mi = 0 -> 0.
    assert fmi_features(point, ones, z)[0] == pytest.approx(0.5, abs=1e-12)
    # IR equals F: F stays zeros, VI (ones) is scored: two uniform pdfs -> mi = 0.
    assert fmi_features(z, ones, z)[0] == pytest.approx(0.5, abs=1e-12)


def test_fmi_identical_and_constant_images():
    img = _rand((12, 14), 24)
    assert fmi(img, img, img, 'tang') == 1.0
    c = np.full((12, 14), 9.0)
    assert fmi(c, c, c, 'tang') == 1.0  # no edges anywhere: every window pair is equal


# ----------------------------------------------------------------------------- general
PLANE_FNS = [(vif, 'tang'), (vif, 'cddfuse'), (qabf, 'vifb'), (qabf, 'tang'), (nabf, 'tang'),
             (nabf_intended, 'tang'), (qcb, 'vifb'), (qcv, 'vifb'), (fmi, 'tang')]


def _documented_small_image_value(name: str, conv: str, shape) -> float | None:
    """What each docstring promises on an image too small for the metric (None: a number).

    VIF: NaN below 17 px per side (``tang``), 1.0 per source there (``cddfuse``); FMI: NaN
    below 3 px; a single pixel has no gradient, so Qabf, Qcb, Qcv are 0/0 = NaN.
    """
    if name == 'vif' and min(shape) < 17:
        return math.nan if conv == 'tang' else 2.0
    if name == 'fmi' and min(shape) < 3:
        return math.nan
    if name in ('qabf', 'qcb', 'qcv') and shape == (1, 1):
        return math.nan
    return None


@pytest.mark.parametrize('shape', [(1, 1), (2, 3), (5, 1), (16, 16), (40, 40)])
def test_small_images_give_the_documented_values(shape):
    f, vi, ir = _rand(shape, 25), _rand(shape, 26), _rand(shape, 27)
    for fn, conv in PLANE_FNS:
        value = fn(f, vi, ir, conv)
        expected = _documented_small_image_value(fn.__name__, conv, shape)
        assert isinstance(value, float), (fn.__name__, conv)
        if expected is None:
            assert math.isfinite(value) and value >= 0, (fn.__name__, conv, value)
        elif math.isnan(expected):
            assert math.isnan(value), (fn.__name__, conv, value)
        else:
            assert value == expected, (fn.__name__, conv, value)


def test_ranges_on_random_images():
    f, vi, ir = _rand((40, 44), 28), _rand((40, 44), 29, flat=True), _rand((40, 44), 30)
    f = np.round((f + vi) / 2)
    for conv in ('vifb', 'tang'):
        assert 0 <= qabf(f, vi, ir, conv) <= 1
    assert 0 <= nabf(f, vi, ir, 'tang') <= 1
    assert 0 <= qcb(f, vi, ir, 'vifb') <= 1
    assert qcv(f, vi, ir, 'vifb') >= 0
    assert 0 <= fmi(f, vi, ir, 'tang') <= 1
    assert vif(f, vi, ir, 'tang') >= 0


def test_registry_entries_and_unknown_convention():
    expected = {'VIF': (('tang', 'cddfuse'), True), 'Qabf': (('vifb', 'tang', 'cddfuse'), True),
                'Nabf': (('tang',), False), 'Nabf_intended': (('tang',), False),
                'Qcb': (('vifb',), True), 'Qcv': (('vifb',), False), 'FMI': (('tang',), True)}
    for name, (convs, up) in expected.items():
        spec = METRIC_REGISTRY.get(name)
        assert spec.conventions == convs
        assert all(spec.higher_better[c] is up for c in convs)
    img = _rand((8, 8), 31)
    for fn, conv in ((vif, 'vifb'), (qabf, 'gray'), (nabf, 'cddfuse'), (qcb, 'tang'),
                     (qcv, 'cddfuse'), (fmi, 'vifb')):
        with pytest.raises(ConfigError):
            fn(img, img, img, conv)
