"""test.py end to end: checkpoints, fused PNGs, tables equal to evaluate.py's, bad files, exits."""
from __future__ import annotations

import csv
import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.metrics import metrics_for
from basicsr.test import main as run_test_cli
from basicsr.train import main as train_main
from tests.conftest import REPO, train_options, write_pairs

PARITY = REPO / 'tests' / 'data' / 'dgfusion_c4.pt'


def write_test_options(tmp_path: Path, data, ckpt, metrics: str = '[]', convention: str = 'cddfuse',
                       results: Path = None, extra: str = '', val_extra: str = '') -> Path:
    """test.py options for one set ``set_a`` (run name ``tiny_test``): ``extra`` goes in at the
    top level, ``val_extra`` (indented lines) into the ``val`` section."""
    path = tmp_path / 'test.yml'
    path.write_text(f"""name: tiny_test
device: cpu
datasets:
  test_1:
    name: set_a
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
{extra}path:
  results_root: {results or tmp_path / 'results'}
  pretrain_network_g: {ckpt}
val:
  metrics:
    names: {metrics}
    convention: {convention}
{val_extra}""")
    return path


def random_checkpoint(path: Path, seed: int = 0) -> Path:
    """A bare state dict of DGFusion(channels=2) with random weights."""
    torch.manual_seed(seed)
    torch.save(DGFusion(channels=2).state_dict(), path)
    return path


def load_evaluate():
    """The module behind ``scripts/evaluate.py``."""
    return importlib.import_module('basicsr.tools.evaluate')




def test_fuses_every_pair_with_our_checkpoint(tmp_path, tiny_data, capsys):
    opt = tmp_path / 'train.yml'
    opt.write_text(train_options(tmp_path, tiny_data, total_iter=2, save_freq=2))
    assert train_main(['-opt', str(opt)]) == 0
    data = write_pairs(tmp_path / 'test', n=3, size=(17, 23), masks=False, seed=5)
    ckpt_dir = tmp_path / 'experiments' / 'tiny' / 'checkpoints'  # a folder: newest checkpoint
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, ckpt_dir, '[EN, SD, MI]'))]) == 0
    out = tmp_path / 'results' / 'tiny_test' / 'set_a'
    pngs = sorted(out.glob('*.png'))
    assert [p.name for p in pngs] == ['000.png', '001.png', '002.png']
    for p in pngs:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img.shape == (17, 23, 3)  # RGB, input size
    rows = list(csv.reader(open(out / 'metrics_cddfuse.csv')))
    assert rows[0] == ['image', 'latency_ms', 'EN', 'SD', 'MI']
    assert [r[0] for r in rows[1:]] == ['000', '001', '002', 'mean']
    printed = capsys.readouterr().out
    assert 'network parameters: ' in printed and '| mean (3 images) |' in printed


def test_published_checkpoint_detected_and_gray_visible(tmp_path):
    parity = torch.load(PARITY, map_location='cpu', weights_only=True)
    ckpt = tmp_path / 'published.pth'
    torch.save(parity['checkpoint'], ckpt)
    data = write_pairs(tmp_path / 'test', n=2, size=(9, 11), masks=False)
    for p in data['vis'].iterdir():  # gray visible images give gray fused images
        cv2.imwrite(str(p), cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, ckpt))]) == 0
    out = tmp_path / 'results' / 'tiny_test' / 'set_a'
    img = cv2.imread(str(out / '000.png'), cv2.IMREAD_UNCHANGED)
    assert img.shape == (9, 11)
    assert (out / 'latency.csv').is_file()


def test_fused_pixels_follow_the_published_pipeline(tmp_path):
    """fused RGB = round(clamp(ycbcr->rgb(clamp(net(Y), 0, 1), Cb, Cr)) * 255), spec inverse."""
    parity = torch.load(PARITY, map_location='cpu', weights_only=True)
    ckpt = tmp_path / 'published.pth'
    torch.save(parity['checkpoint'], ckpt)
    data = write_pairs(tmp_path / 'test', n=1, size=(12, 10), masks=False, seed=9)
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, ckpt))]) == 0
    fused = cv2.cvtColor(cv2.imread(str(tmp_path / 'results/tiny_test/set_a/000.png')), cv2.COLOR_BGR2RGB)
    vis = torch.from_numpy(cv2.cvtColor(cv2.imread(str(data['vis'] / '000.png')), cv2.COLOR_BGR2RGB))
    vis = vis.permute(2, 0, 1).double() / 255
    ir = torch.from_numpy(cv2.imread(str(data['ir'] / '000.png'), 0)).double()[None, None] / 255
    r, g, b = vis
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = (b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5
    from basicsr.inference.loader import load_network
    net = load_network(ckpt).double()
    with torch.no_grad():
        fy = net(y[None, None], ir).clamp(0, 1)[0, 0]
    rgb = torch.stack([fy + 1.403 * (cr - 0.5), fy - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5),
                       fy + 1.773 * (cb - 0.5)])
    expected = (rgb.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()
    diff = abs(expected - fused.astype(float))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.02  # float32 vs float64 at .5 boundaries


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    data = write_pairs(tmp_path / 'test', n=1, masks=False)
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, tmp_path / 'none.pth'))]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'none.pth' in err and 'Traceback' not in err


def mixed_set(root: Path) -> dict:
    """RGB and gray visible; 1-channel, 3-channel (unequal) and 16-bit infrared; 24x30."""
    data = write_pairs(root, n=4, size=(24, 30), masks=False, seed=11)
    rng = np.random.default_rng(12)
    cv2.imwrite(str(data['vis'] / '001.png'), cv2.imread(str(data['vis'] / '001.png'), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(data['ir'] / '002.png'), rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    (data['ir'] / '003.png').unlink()
    cv2.imwrite(str(data['ir'] / '003.tif'), rng.integers(2000, 9000, (24, 30), dtype=np.uint16))
    return data


@pytest.mark.parametrize('convention', ['cddfuse', 'tang', 'vifb'])
def test_table_equals_evaluate_on_the_written_files(tmp_path, convention, capsys):
    """test.py's values == scripts/evaluate.py's on the files test.py wrote, to the last digit."""
    data = mixed_set(tmp_path / 'data')
    ckpt = random_checkpoint(tmp_path / 'c2.pth')
    names = metrics_for(convention)
    opt = write_test_options(tmp_path, data, ckpt, '[' + ', '.join(names) + ']', convention)
    assert run_test_cli(['-opt', str(opt)]) == 0
    out_dir = tmp_path / 'results' / 'tiny_test' / 'set_a'
    ours = list(csv.reader(open(out_dir / f'metrics_{convention}.csv')))
    theirs_path = tmp_path / 'evaluate.csv'
    code = load_evaluate().main(['--fused', str(out_dir), '--vis', str(data['vis']), '--ir',
                                 str(data['ir']), '--fused-suffix', '', '--convention', convention,
                                 '--metrics', *names, '--workers', '1', '--out', str(theirs_path)])
    assert code == 0, capsys.readouterr().err
    theirs = list(csv.reader(open(theirs_path)))
    assert ours[0] == ['image', 'latency_ms'] + names and theirs[0] == ['image'] + names
    assert [r[0] for r in ours] == [r[0] for r in theirs]
    assert [r[0] for r in ours[1:5]] == ['000', '001', '002', '003']
    for mine, ref in zip(ours[1:], theirs[1:]):
        assert mine[2:] == ref[1:], mine[0]
    assert any(v != 'n/a' for r in ours[1:5] for v in r[2:])


def test_bad_and_unmatched_pairs_are_skipped_and_named(tmp_path, capsys):
    data = write_pairs(tmp_path / 'data', n=5, size=(16, 18), masks=False, seed=2)
    (data['vis'] / '001.png').write_bytes(b'')                                   # zero bytes
    good = (data['ir'] / '002.png').read_bytes()
    (data['ir'] / '002.png').write_bytes(good[:len(good) // 3])                  # truncated
    cv2.imwrite(str(data['ir'] / '003.png'), np.zeros((16, 17), np.uint8))       # wrong size
    cv2.imwrite(str(data['ir'] / 'lonely.png'), np.zeros((16, 18), np.uint8))    # unmatched
    ckpt = random_checkpoint(tmp_path / 'c2.pth')
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, ckpt, '[EN]'))]) == 1
    out_dir = tmp_path / 'results' / 'tiny_test' / 'set_a'
    assert sorted(p.name for p in out_dir.glob('*.png')) == ['000.png', '004.png']
    rows = list(csv.reader(open(out_dir / 'metrics_cddfuse.csv')))
    assert [r[0] for r in rows[1:]] == ['000', '004', 'mean']
    err = capsys.readouterr().err
    for stem in ('001', '002', '003', 'lonely'):
        assert f"failed: {stem}: " in err
    assert '16x18' in err and '16x17' in err and 'Traceback' not in err


def test_unwritable_results_folder_is_found_before_any_work(tmp_path, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(8, 8), masks=False)
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    opt = write_test_options(tmp_path, data, random_checkpoint(tmp_path / 'c2.pth'),
                             results=blocker / 'results')
    assert run_test_cli(['-opt', str(opt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ') and 'a_file' in err[0]
    assert 'path.results_root: results folder' in err[0]  # found by the option checks


def test_ctrl_c_writes_the_partial_table_and_exits_130(tmp_path, capsys, monkeypatch):
    import basicsr.validation as validation
    data = write_pairs(tmp_path / 'data', n=3, size=(10, 12), masks=False)
    ckpt = random_checkpoint(tmp_path / 'c2.pth')
    real_fuse, calls = validation.fuse, []

    def fuse_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_fuse(*args, **kwargs)

    monkeypatch.setattr(validation, 'fuse', fuse_then_interrupt)
    assert run_test_cli(['-opt', str(write_test_options(tmp_path, data, ckpt, '[EN]'))]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('interrupted: set_a: 1 of 3 pairs done')
    rows = list(csv.reader(open(tmp_path / 'results/tiny_test/set_a/metrics_cddfuse.csv')))
    assert [r[0] for r in rows[1:]] == ['000', 'mean']


def test_tiled_testing_and_16bit_range_option(tmp_path):
    data = write_pairs(tmp_path / 'data', n=1, size=(40, 50), masks=False)
    ckpt = random_checkpoint(tmp_path / 'c2.pth')
    opt = write_test_options(tmp_path, data, ckpt, extra='    ir_range: fixed:0,255\n')
    assert run_test_cli(['-opt', str(opt), '--tile', '32']) == 0
    assert cv2.imread(str(tmp_path / 'results/tiny_test/set_a/000.png')).shape == (40, 50, 3)
    assert run_test_cli(['-opt', str(opt), '--tile', '8']) == 2
