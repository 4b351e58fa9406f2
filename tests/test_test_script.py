"""test.py end to end: our checkpoints and published ones, one fused PNG per pair, tables."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import torch

from basicsr.test import main as run_test_cli
from basicsr.train import main as train_main
from tests.conftest import REPO, train_options, write_pairs

PARITY = REPO / 'tests' / 'data' / 'dgfusion_c4.pt'


def write_test_options(tmp_path: Path, data, ckpt, metrics: str = '[]') -> Path:
    path = tmp_path / 'test.yml'
    path.write_text(f"""name: tiny_test
device: cpu
datasets:
  test_1:
    name: set_a
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
path:
  results_root: {tmp_path / 'results'}
  pretrain_network_g: {ckpt}
val:
  metrics:
    names: {metrics}
    convention: cddfuse
""")
    return path




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
    assert 'network parameters: ' in printed and '| mean |' in printed


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
    from basicsr.utils.checkpoint import load_network
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
