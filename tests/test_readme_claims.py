"""Behaviours the README states in words, checked on tiny synthetic data."""
from __future__ import annotations

import csv
import importlib

import cv2
import numpy as np
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.test import main as run_test_cli
from tests.conftest import write_pairs


def load_script(name: str):
    """The module behind ``scripts/<name>.py``: ``basicsr.tools.<name>``."""
    return importlib.import_module(f'basicsr.tools.{name}')


def test_evaluate_names_and_skips_a_missing_fused_image_and_scores_the_rest(tmp_path, capsys):
    """A test.py output with a failed pair (no fused image for it) can still be scored."""
    data = write_pairs(tmp_path, n=4, size=(12, 14), masks=False)
    fused = tmp_path / 'fused'
    fused.mkdir()
    for p in sorted(data['vis'].iterdir())[:3]:  # 003 failed: no fused image
        (fused / p.name).write_bytes(p.read_bytes())
    table = tmp_path / 'table.csv'
    code = load_script('evaluate').main(['--fused', str(fused), '--vis', str(data['vis']),
                                         '--ir', str(data['ir']), '--out', str(table),
                                         '--workers', '1', '--metrics', 'EN'])
    out = capsys.readouterr()
    assert code == 1, out.err
    assert [ln for ln in out.err.splitlines() if ln.startswith('failed: ')] == \
        ['failed: 003: no fused image for method fused']
    rows = list(csv.reader(open(table)))
    assert [r[0] for r in rows] == ['image', '000', '001', '002', 'mean']
    from basicsr.metrics import compute_metrics, read_image_rgb
    for row in rows[1:4]:  # the values of the pairs evaluated are those of the metric itself
        vis = read_image_rgb(data['vis'] / f"{row[0]}.png")
        ir = read_image_rgb(data['ir'] / f"{row[0]}.png")
        expected = compute_metrics(vis, vis, ir, names=['EN'], convention='cddfuse')['EN']
        assert float(row[1]) == expected


def test_test_py_names_a_size_mismatch_without_an_option_it_lacks(tmp_path, capsys):
    data = write_pairs(tmp_path / 'data', n=2, size=(12, 14), masks=False)
    cv2.imwrite(str(data['ir'] / '001.png'), np.zeros((10, 14), np.uint8))
    torch.manual_seed(0)
    ckpt = tmp_path / 'c2.pth'
    torch.save({'network_g': {'type': 'DGFusion', 'channels': 2},
                'params': DGFusion(channels=2).state_dict()}, ckpt)
    opt = tmp_path / 'test.yml'
    opt.write_text(f"""name: sizes
device: cpu
datasets:
  test_1: {{name: set_a, dataroot_vis: {data['vis']}, dataroot_ir: {data['ir']}}}
path: {{results_root: {tmp_path / 'results'}, pretrain_network_g: {ckpt}}}
""")
    code = run_test_cli(['-opt', str(opt)])
    err = capsys.readouterr().err
    failed = [ln for ln in err.splitlines() if ln.startswith('failed: 001')]
    assert code == 1 and len(failed) == 1, err
    assert '12x14' in failed[0] and '10x14' in failed[0]
    assert '--resize' not in err  # test.py has no such option
