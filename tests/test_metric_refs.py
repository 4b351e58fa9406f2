"""Metric values against the reference evaluators (``../shared/data/metric_refs_sample.csv``).

Tolerances are those of spec ``metrics.md`` §7. Skipped when ``../shared`` is absent.
"""
from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import numpy as np
import pytest

from basicsr.metrics import compute_metrics, prepare_inputs, read_image_rgb

SHARED = Path(__file__).resolve().parents[1].parent / 'shared'
DATA = SHARED / 'data'
CSV = DATA / 'metric_refs_sample.csv'


def _rows():
    if not CSV.is_file():
        return []
    with open(CSV, newline='') as fh:
        return list(csv.DictReader(fh))


ROWS = _rows()
needs_shared = pytest.mark.skipif(not CSV.is_file(), reason='../shared/data is not available')


def triple_paths(dataset: str, image: str, method: str):
    """(fused, vis, ir) file paths of a reference row."""
    if dataset == 'VIFB':
        return (DATA / 'vifb_fused' / f'{image}_{method}.jpg',
                DATA / 'vifb' / 'VI' / f'{image}.jpg', DATA / 'vifb' / 'IR' / f'{image}.jpg')
    return (DATA / 'tno' / f'fused_{method}' / f'{image}.png', DATA / 'tno' / 'vi' / f'{image}.png',
            DATA / 'tno' / 'ir' / f'{image}.png')


@functools.lru_cache(maxsize=None)
def load(dataset: str, image: str, method: str):
    return tuple(read_image_rgb(p) for p in triple_paths(dataset, image, method))


def within_tolerance(convention: str, metric: str, value: float, ref: float) -> bool:
    """Pass criteria of spec §7."""
    if convention == 'vifb':  # 5 significant digits, +-0.6 units of the last one
        return abs(value - ref) <= 0.6 * 10.0 ** (math.floor(math.log10(abs(ref))) - 4)
    if convention == 'tang':
        return abs(value - ref) <= 1e-8 * abs(ref)
    return abs(value - ref) <= (5e-4 if metric == 'SSIM' else 1e-5) * abs(ref)


@needs_shared
@pytest.mark.parametrize('row', ROWS, ids=[
    f"{r['convention']}-{r['dataset']}-{r['image']}-{r['method']}-{r['metric']}" for r in ROWS])
def test_reference_value(row):
    fused, vis, ir = load(row['dataset'], row['image'], row['method'])
    value = compute_metrics(fused, vis, ir, [row['metric']], row['convention'])[row['metric']]
    ref = float(row['value'])
    assert within_tolerance(row['convention'], row['metric'], value, ref), \
        f"{row['metric']} ({row['convention']}): got {value!r}, reference {ref!r}"


@needs_shared
@needs_shared
def test_cross_convention_agreement_tno01():
    fused, vis, ir = load('TNO', '01', 'SeAFusion')
    # EN and SD of the same gray image agree under every convention.
    gray = [p.astype(np.uint8) for p in prepare_inputs(fused, vis, ir, 'tang').planes[0]]
    en_sd = [compute_metrics(*gray, ['EN', 'SD'], conv) for conv in ('vifb', 'tang', 'cddfuse')]
    for other in en_sd[1:]:
        assert other['EN'] == pytest.approx(en_sd[0]['EN'], rel=1e-12)
        assert other['SD'] == pytest.approx(en_sd[0]['SD'], rel=1e-12)
    # Each convention on its own gray conversion of the files.
    names = ['Qabf', 'VIF', 'CC', 'SCD']
    tang = compute_metrics(fused, vis, ir, names, 'tang')
    cdd = compute_metrics(fused, vis, ir, names, 'cddfuse')
    assert cdd['Qabf'] == pytest.approx(tang['Qabf'], rel=1e-5)
    for name in ('VIF', 'CC', 'SCD'):
        assert cdd[name] == pytest.approx(tang[name], rel=1e-6)
