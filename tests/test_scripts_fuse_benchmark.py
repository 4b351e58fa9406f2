"""scripts/fuse.py (own images, folders or one pair) and scripts/benchmark.py (runs, prints)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.data.fusion_dataset import PairedFusionDataset
from basicsr.models.fusion_model import FusionModel
from basicsr.utils.checkpoint import load_network
from basicsr.utils.img_util import tensor2img
from tests.conftest import REPO, write_pairs

PARITY = REPO / 'tests' / 'data' / 'dgfusion_c4.pt'
ENV = dict(os.environ, OMP_NUM_THREADS='1')  # same float results as the in-test reference


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f'script_{name}', REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'scripts' / f'{name}.py'), *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture
def published_ckpt(tmp_path) -> Path:
    """The parity checkpoint (published layout, C=4) as a plain .pth file."""
    path = tmp_path / 'published_c4.pth'
    torch.save(torch.load(PARITY, map_location='cpu', weights_only=True)['checkpoint'], path)
    return path


def test_pixels(ckpt: Path, vis_dir: Path, ir_dir: Path) -> dict:
    """stem -> the uint8 image basicsr/test.py writes: test dataset, model.fuse, tensor2img."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = FusionModel({}, torch.device('cpu'), net=load_network(ckpt), is_train=False)
        out = {}
        dataset = PairedFusionDataset(str(vis_dir), str(ir_dir), phase='test')
        for item in (dataset[i] for i in range(len(dataset))):  # indices wrap: no plain iter
            vis = item['vis'][None]
            if item['vis_gray']:  # test.py: gray in, gray out
                vis = vis[:, :1]
            out[item['stem']] = tensor2img(model.fuse(vis, item['ir'][None]))
    finally:
        torch.set_num_threads(threads)
    return out


test_pixels.__test__ = False  # a helper, not a test


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


# ---------------------------------------------------------------- fuse.py

def test_folder_mode_matches_test_script_rgb_gray_16bit(tmp_path, published_ckpt):
    data = write_pairs(tmp_path / 'data', n=3, size=(19, 26), masks=False, seed=3)
    gray_vis = data['vis'] / '001.png'  # pair 001: gray visible -> gray result
    cv2.imwrite(str(gray_vis), cv2.imread(str(gray_vis), cv2.IMREAD_GRAYSCALE))
    rng = np.random.default_rng(4)  # pair 002: 16-bit infrared (min-max scaled), 3 channels
    (data['ir'] / '002.png').unlink()
    cv2.imwrite(str(data['ir'] / '002.tif'),
                rng.integers(1000, 30000, (19, 26, 3), dtype=np.uint16))
    out_dir = tmp_path / 'fused'
    res = run_script('fuse', '--weights', published_ckpt, '--vis', data['vis'],
                     '--ir', data['ir'], '--out', out_dir, '--device', 'cpu')
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ['000.png', '001.png', '002.png']
    expected = test_pixels(published_ckpt, data['vis'], data['ir'])
    for stem, shape in (('000', (19, 26, 3)), ('001', (19, 26)), ('002', (19, 26, 3))):
        got = read_rgb(out_dir / f'{stem}.png')
        assert got.shape == shape and got.dtype == np.uint8
        np.testing.assert_array_equal(got, expected[stem])
    assert 'latency per image' in res.stdout and 'wrote 3 of 3' in res.stdout


def test_single_pair_mode_and_checkpoint_folder(tmp_path, published_ckpt):
    data = write_pairs(tmp_path / 'data', n=1, size=(21, 17), masks=False, seed=6)
    out = tmp_path / 'out' / 'mine.png'
    res = run_script('fuse', '--weights', published_ckpt.parent, '--vis', data['vis'] / '000.png',
                     '--ir', data['ir'] / '000.png', '--out', out, '--device', 'cpu')
    assert res.returncode == 0, res.stderr
    got = read_rgb(out)
    assert got.shape == (21, 17, 3)
    np.testing.assert_array_equal(got, test_pixels(published_ckpt, data['vis'], data['ir'])['000'])


def test_failing_pairs_reported_others_written(tmp_path, published_ckpt):
    data = write_pairs(tmp_path / 'data', n=4, size=(12, 14), masks=False, seed=7)
    (data['vis'] / '001.png').write_bytes(b'not an image at all')
    cv2.imwrite(str(data['ir'] / '002.png'), np.zeros((10, 14), np.uint8))  # size mismatch
    out_dir = tmp_path / 'fused'
    res = run_script('fuse', '--weights', published_ckpt, '--vis', data['vis'],
                     '--ir', data['ir'], '--out', out_dir, '--device', 'cpu')
    assert res.returncode == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ['000.png', '003.png']
    assert re.search(r'failed: 001: .*cannot read image', res.stderr)
    assert re.search(r'failed: 002: .*12x14.*10x14', res.stderr)
    assert 'Traceback' not in res.stderr


def test_missing_weights_one_line_error(tmp_path):
    data = write_pairs(tmp_path / 'data', n=1, size=(8, 8), masks=False)
    res = run_script('fuse', '--weights', tmp_path / 'nope.pth', '--vis', data['vis'],
                     '--ir', data['ir'], '--out', tmp_path / 'fused')
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'nope.pth' in lines[0]
    assert not (tmp_path / 'fused').exists()


@pytest.mark.parametrize('extra, needle', [
    (['--weights', 'GARBAGE'], 'not a loadable checkpoint'),
    (['--weights', 'CKPT', '--tile', '8', '--tile-overlap', '8'], '--tile-overlap'),
    (['--weights', 'CKPT', '--device', 'gpu'], '--device'),
    (['--weights', 'CKPT', '--ext', 'gif'], '--ext'),
])
def test_setup_errors_exit_2(tmp_path, published_ckpt, capsys, extra, needle):
    fuse = load_script('fuse')
    data = write_pairs(tmp_path / 'data', n=1, size=(8, 8), masks=False)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'PK\x03\x04 truncated')
    extra = [{'GARBAGE': str(garbage), 'CKPT': str(published_ckpt)}.get(a, a) for a in extra]
    code = fuse.main(extra + ['--vis', str(data['vis']), '--ir', str(data['ir']),
                              '--out', str(tmp_path / 'fused')])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith('error: ') and needle in err[0]


def test_tile_starts_cover_with_overlap():
    fuse = load_script('fuse')
    assert fuse.tile_starts(10, 4, 1) == [0, 3, 6]      # tiles [0,4) [3,7) [6,10)
    assert fuse.tile_starts(9, 4, 1) == [0, 3, 5]       # last tile flush with the border
    assert fuse.tile_starts(4, 8, 2) == [0]


def test_tiled_blend_is_exact_for_a_pointwise_network():
    """Blend weights sum to one per pixel, so a per-pixel network gives the untiled result."""
    fuse = load_script('fuse')
    g = torch.Generator().manual_seed(0)
    vis_y, ir = torch.rand(1, 1, 23, 30, generator=g), torch.rand(1, 1, 23, 30, generator=g)

    def pointwise(v, i):
        return 0.7 * v - 0.2 * i + v * i

    tiled = fuse.fuse_tiled(pointwise, vis_y, ir, tile=8, overlap=3)
    torch.testing.assert_close(tiled, pointwise(vis_y, ir), rtol=1e-6, atol=1e-6)


def test_tile_larger_than_image_is_the_whole_image(published_ckpt):
    fuse = load_script('fuse')
    net = load_network(published_ckpt)
    g = torch.Generator().manual_seed(1)
    vis_y, ir = torch.rand(1, 1, 11, 13, generator=g), torch.rand(1, 1, 11, 13, generator=g)
    with torch.no_grad():
        whole = net(vis_y, ir)
    torch.testing.assert_close(fuse.fuse_tiled(net, vis_y, ir, tile=16, overlap=4), whole)


# ---------------------------------------------------------------- benchmark.py

def spec_convs(c):
    """(cin, cout) of every convolution in the network spec's layer list."""
    enc = [(1, c), (c, 2 * c), (2 * c, 4 * c)] * 2
    joint = [(8 * c, 8 * c)] * 4 + [(8 * c, 4 * c), (4 * c, 4 * c)] * 2
    refine = [(4 * c, 4 * c)] * 8
    attention = [(8 * c, 8 * c)] * 12
    return enc + joint + refine + attention + [(8 * c, 4 * c), (4 * c, 8 * c), (4 * c, 2 * c), (2 * c, 1)]


def test_vsm_reference_port_hand_example():
    bench = load_script('benchmark')
    # hist: 0 x1, 10 x2, 30 x1 -> T(0)=2*10+30=50, T(10)=10+20=30, T(30)=30+2*20=70
    gray = np.array([[0, 10, 10, 30]], np.uint8)
    np.testing.assert_array_equal(bench.vsm_reference(gray), [[0.5, 0.0, 0.0, 1.0]])
    assert not bench.vsm_reference(np.full((2, 3), 7, np.uint8)).any()


def test_benchmark_tiny_run_prints_tables(tmp_path):
    res = run_script('benchmark', '--channels', '2', '--sizes', '16x20', '--repeat', '1',
                     '--only', 'net,vsm', '--device', 'cpu', '--no-train',
                     '--json', str(tmp_path / 'figures.json'))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert re.search(r'\| plain \| \d+ \| 1\.00 \|', out)
    assert re.search(r'\| lean \| \d+ \| [\d.]+ \|', out)
    figures = json.loads((tmp_path / 'figures.json').read_text())
    size = figures['net']['sizes']['16x20']
    assert figures['net']['conv_macs_per_pixel'] == sum(  # 9*cin*cout summed over the spec's convs
        9 * cin * cout for cin, cout in spec_convs(2))
    assert size['lean']['max_abs_vs_f64'] <= 1e-5 and size['plain']['max_abs_vs_f64'] <= 1e-5
    assert re.search(r'\| vsm_saliency[^|]*\| [\d.]+ \| [\d.]+x \| equal \|', out)
    assert 'MISMATCH' not in out + res.stderr
    assert '### Metrics' not in out  # not selected
