"""Slow checks on the real images beside the repository (``../shared``); skipped without them.

Run by ``make test-all`` and by CI when time allows.
"""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from basicsr.data.saliency import saliency_mask_u8, to_gray_u8
from basicsr.metrics import compute_metrics
from tests.conftest import REPO

SHARED = REPO.parent / 'shared' / 'data'
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SHARED.is_dir(), reason='../shared/data not present')]


def rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


@pytest.mark.parametrize('stem', [f"{i:02d}" for i in range(1, 11)])
def test_tno_cross_convention_agreement(stem):
    """Spec section 7: EN and SD agree everywhere; Qabf tang ~ cddfuse to 1e-5; VIF, CC, SCD to 1e-6."""
    tno = SHARED / 'tno'
    f, v, i = (rgb(tno / d / f"{stem}.png") for d in ('fused_SeAFusion', 'vi', 'ir'))
    tang = compute_metrics(f, v, i, ['EN', 'SD', 'Qabf', 'VIF', 'CC', 'SCD'], 'tang')
    cdd = compute_metrics(f, v, i, ['EN', 'SD', 'Qabf', 'VIF', 'CC', 'SCD'], 'cddfuse')
    for name, tol in (('Qabf', 1e-5), ('VIF', 1e-6), ('CC', 1e-6), ('SCD', 1e-6)):
        assert cdd[name] == pytest.approx(tang[name], rel=tol, abs=tol), name
    # the two conventions' gray images may differ by one level at a few pixels; on images whose
    # channels are equal they are identical and so are EN and SD
    if np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 1], f[..., 2]):
        assert cdd['EN'] == pytest.approx(tang['EN'], abs=1e-12)
        assert cdd['SD'] == pytest.approx(tang['SD'], rel=1e-9)


def spec_table_mask(vis, ir):
    """The spec's table, from exact integer saliency tables (independent of the library code)."""
    def saliency_int(gray):
        hist = np.bincount(gray.ravel(), minlength=256).astype(np.int64)
        levels = np.arange(256)
        table = np.abs(levels[:, None] - levels[None, :]) @ hist
        return table[gray]
    sv, si = saliency_int(to_gray_u8(vis)), saliency_int(to_gray_u8(ir))
    # mat2gray is monotone, so comparing normalised maps = comparing (S - min) / range
    nv = (sv - sv.min()) / (sv.max() - sv.min()) if sv.max() > sv.min() else np.zeros(sv.shape)
    ni = (si - si.min()) / (si.max() - si.min()) if si.max() > si.min() else np.zeros(si.shape)
    return np.where((nv > ni) | ((nv == ni) & (nv > 0)), 255, 0).astype(np.uint8)


@pytest.mark.parametrize('stem', sorted(p.stem for p in (SHARED / 'vsm_cases' / 'V').glob('*.png'))
                         if SHARED.is_dir() else ['none'])
def test_vsm_masks_follow_the_spec_table(stem):
    vis = cv2.imread(str(SHARED / 'vsm_cases' / 'V' / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    ir = cv2.imread(str(SHARED / 'vsm_cases' / 'T' / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    mask = saliency_mask_u8(vis, ir, 'dgfusion')
    assert set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask, spec_table_mask(vis, ir))


def test_evaluate_script_on_vifb_all_methods(tmp_path):
    out = tmp_path / 'vifb.csv'
    run = subprocess.run([sys.executable, 'scripts/evaluate.py', '--fused', str(SHARED / 'vifb_fused'),
                          '--vis', str(SHARED / 'vifb' / 'VI'), '--ir', str(SHARED / 'vifb' / 'IR'),
                          '--convention', 'vifb', '--out', str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    for method in ('IFCNN', 'SeAFusion', 'U2Fusion', 'VSMWLS'):
        assert f"| {method} |" in run.stdout
    rows = out.read_text().splitlines()
    assert rows[0].split(',')[:2] == ['method', 'image']
    assert len(rows) == 1 + 4 * (21 + 1)  # 21 images and a mean row per method
