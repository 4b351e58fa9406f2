"""scripts/fuse.py (one pair, folders, videos; robust to bad files) and scripts/benchmark.py."""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.data.saliency import saliency_mask_u8
from basicsr.inference import fuse, load_model, read_pair
from basicsr.utils.img_util import tensor2img
from basicsr.utils.ir_range import parse_ir_range
from tests.conftest import REPO, write_pairs

PARITY = REPO / 'tests' / 'data' / 'dgfusion_c4.pt'
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def load_script(name: str):
    """The module behind ``scripts/<name>.py``: ``basicsr.tools.<name>``."""
    return importlib.import_module(f'basicsr.tools.{name}')


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'scripts' / f'{name}.py'), *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def run_fuse(capsys, *args):
    """scripts/fuse.py in this process: (exit code, stdout, stderr)."""
    code = load_script('fuse').main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def published_ckpt(tmp_path) -> Path:
    """The parity checkpoint (published layout, C=4) as a plain .pth file."""
    path = tmp_path / 'published_c4.pth'
    torch.save(torch.load(PARITY, map_location='cpu', weights_only=True)['checkpoint'], path)
    return path


def expected_fused(ckpt: Path, vis, ir, rule: str = 'percentile:0.5,99.5', resize=None) -> np.ndarray:
    """What the shared inference path gives for one pair (files or RGB frames)."""
    pair = read_pair(vis, ir, parse_ir_range(rule), resize)
    net = load_model(ckpt, 'cpu').net
    return tensor2img(fuse(net, pair.vis[None], pair.ir[None]))


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def huge_declared_png(path: Path, side: int = 60000) -> None:
    """A valid 2x2 PNG whose header is patched to claim ``side`` x ``side`` pixels."""
    data = bytearray(cv2.imencode('.png', np.zeros((2, 2), np.uint8))[1].tobytes())
    data[16:24] = side.to_bytes(4, 'big') * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, 'big')
    path.write_bytes(bytes(data))


def write_video(path: Path, frames, fps: float) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()


def decoded_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames, cap.get(cv2.CAP_PROP_FPS)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


# ---------------------------------------------------------------- fuse.py: images and folders

def test_folder_with_bad_files_fuses_the_rest(tmp_path, published_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=8, size=(19, 26), masks=False, seed=3)
    vis_dir, ir_dir = data['vis'], data['ir']
    cv2.imwrite(str(vis_dir / '001.png'), cv2.imread(str(vis_dir / '001.png'), cv2.IMREAD_GRAYSCALE))
    rng = np.random.default_rng(4)  # 002: 16-bit infrared with 3 channels
    (ir_dir / '002.png').unlink()
    cv2.imwrite(str(ir_dir / '002.tif'), rng.integers(1000, 30000, (19, 26, 3), dtype=np.uint16))
    (vis_dir / '003.png').write_bytes(b'not an image at all')
    (ir_dir / '004.png').write_bytes(b'')                                    # zero bytes
    good = (vis_dir / '005.png').read_bytes()
    (vis_dir / '005.png').write_bytes(good[:len(good) // 2])                 # truncated
    cv2.imwrite(str(ir_dir / '006.png'), np.zeros((10, 26), np.uint8))       # wrong size
    huge_declared_png(vis_dir / '007.png')                                   # 60000x60000 header
    cv2.imwrite(str(vis_dir / 'zzz.png'), np.zeros((19, 26, 3), np.uint8))   # no partner
    out_dir = tmp_path / 'fused'
    code, out, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', vis_dir, '--ir', ir_dir,
                              '--out', out_dir, '--device', 'cpu')
    assert code == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ['000.png', '001.png', '002.png']
    for stem, shape in (('000', (19, 26, 3)), ('001', (19, 26)), ('002', (19, 26, 3))):
        ir_file = next(ir_dir.glob(f'{stem}.*'))
        got = read_rgb(out_dir / f'{stem}.png')
        assert got.shape == shape
        np.testing.assert_array_equal(got, expected_fused(published_ckpt, vis_dir / f'{stem}.png', ir_file))
    failed = dict(re.findall(r'^failed: (\S+): (.*)$', err, re.M))
    assert sorted(failed) == ['003', '004', '005', '006', '007', 'zzz']
    assert '003.png' in failed['003'] and '004.png' in failed['004'] and '005.png' in failed['005']
    assert '19x26' in failed['006'] and '10x26' in failed['006']
    assert '007.png' in failed['007'] and 'no infrared image' in failed['zzz']
    assert 'wrote 3 of 9' in out and 'Traceback' not in err


def test_single_pair_grid_and_mask(tmp_path, published_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(21, 17), masks=False, seed=6)
    vis, ir = data['vis'] / '000.png', data['ir'] / '000.png'
    out = tmp_path / 'out' / 'mine.png'
    code, _, err = run_fuse(capsys, '--weights', published_ckpt.parent, '--vis', vis, '--ir', ir,
                            '--out', out, '--device', 'cpu', '--save', 'fused', 'grid', 'mask')
    assert code == 0, err
    fused = read_rgb(out)
    np.testing.assert_array_equal(fused, expected_fused(published_ckpt, vis, ir))
    grid = read_rgb(out.with_name('mine_grid.png'))
    assert grid.shape == (21, 51, 3)
    np.testing.assert_array_equal(grid[:, :17], read_rgb(vis))
    np.testing.assert_array_equal(grid[:, 17:34], np.repeat(read_rgb(ir)[..., None], 3, axis=2))
    np.testing.assert_array_equal(grid[:, 34:], fused)
    mask = read_rgb(out.with_name('mine_mask.png'))
    np.testing.assert_array_equal(mask, saliency_mask_u8(read_rgb(vis), read_rgb(ir)))


def test_size_mismatch_needs_resize(tmp_path, published_ckpt, capsys):
    vis, ir = tmp_path / 'v.png', tmp_path / 'i.png'
    cv2.imwrite(str(vis), np.random.default_rng(0).integers(0, 256, (15, 22, 3), dtype=np.uint8))
    cv2.imwrite(str(ir), np.random.default_rng(1).integers(0, 256, (30, 44), dtype=np.uint8))
    code, _, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', vis, '--ir', ir,
                            '--out', tmp_path / 'f.png', '--device', 'cpu')
    assert code == 2 and '15x22' in err and '30x44' in err and '--resize' in err
    code, _, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', vis, '--ir', ir,
                            '--out', tmp_path / 'f.png', '--device', 'cpu', '--resize', 'ir')
    assert code == 0, err
    np.testing.assert_array_equal(read_rgb(tmp_path / 'f.png'),
                                  expected_fused(published_ckpt, vis, ir, resize='ir'))


def test_16bit_infrared_fixed_range(tmp_path, published_ckpt, capsys):
    vis, ir = tmp_path / 'v.png', tmp_path / 'i.png'
    cv2.imwrite(str(vis), np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8))
    cv2.imwrite(str(ir), np.random.default_rng(1).integers(6000, 9000, (12, 16), dtype=np.uint16))
    code, _, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', vis, '--ir', ir,
                            '--out', tmp_path / 'f.png', '--device', 'cpu', '--ir-range', 'fixed:6500,8500')
    assert code == 0, err
    np.testing.assert_array_equal(read_rgb(tmp_path / 'f.png'),
                                  expected_fused(published_ckpt, vis, ir, 'fixed:6500,8500'))


def test_memory_guard_fails_fast_with_a_tile_size(tmp_path, published_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(70, 90), masks=False)
    args = ['--weights', published_ckpt, '--vis', data['vis'] / '000.png', '--ir',
            data['ir'] / '000.png', '--out', tmp_path / 'f.png', '--device', 'cpu',
            '--max-memory', '0.003']  # ~3 MiB: fits 32x32 tiles at C=4, not 64x64
    code, _, err = run_fuse(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith('error: ')
    assert 'a whole-frame pass on 70x90 needs about' in lines[0] and '--tile 32' in lines[0]
    assert not (tmp_path / 'f.png').exists()
    code, _, err = run_fuse(capsys, *args, '--tile', '32')
    assert code == 0, err
    assert read_rgb(tmp_path / 'f.png').shape == (70, 90, 3)


# ---------------------------------------------------------------- fuse.py: videos

@pytest.fixture
def videos(tmp_path):
    """10 visible frames at 12 fps and 8 infrared frames, 24x32, MJPG in .avi."""
    rng = np.random.default_rng(8)
    vis = [cv2.GaussianBlur(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (5, 5), 0) for _ in range(10)]
    ir = [cv2.GaussianBlur(rng.integers(0, 256, (24, 32), dtype=np.uint8), (5, 5), 0) for _ in range(8)]
    write_video(tmp_path / 'vis.avi', vis, 12.0)
    write_video(tmp_path / 'ir.avi', ir, 30.0)
    return tmp_path / 'vis.avi', tmp_path / 'ir.avi'


def test_video_in_video_out(tmp_path, published_ckpt, videos):
    out = tmp_path / 'fused.avi'
    res = run_script('fuse', '--weights', published_ckpt, '--vis', videos[0], '--ir', videos[1],
                     '--out', out, '--device', 'cpu', '--save', 'fused', 'grid', '--batch', '3')
    assert res.returncode == 0, res.stderr
    assert 'warning: the infrared video ended after 8 frames' in res.stderr
    frames, fps = decoded_frames(out)
    assert len(frames) == 8 and fps == pytest.approx(12.0) and frames[0].shape == (24, 32, 3)
    grid, _ = decoded_frames(tmp_path / 'fused_grid.avi')
    assert len(grid) == 8 and grid[0].shape == (24, 96, 3)
    vis_in, _ = decoded_frames(videos[0])
    ir_in, _ = decoded_frames(videos[1])
    expected = expected_fused(published_ckpt, vis_in[0], ir_in[0])
    # MJPG is lossy: the written frame is close to, not equal to, the fused one
    assert np.abs(frames[0].astype(float) - expected).mean() < 6
    assert not list(tmp_path.glob('.*partial*'))
    assert 'frame/s' in res.stdout


def test_video_to_frames_batched(tmp_path, published_ckpt, videos, capsys):
    out = tmp_path / 'frames'
    code, stdout, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', videos[0], '--ir',
                                 videos[1], '--out', out, '--frames', '--device', 'cpu', '--batch', '4')
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == [f'{i:06d}.png' for i in range(8)]
    vis_in, _ = decoded_frames(videos[0])
    ir_in, _ = decoded_frames(videos[1])
    for i in (0, 5):  # batches of 4 vs one frame at a time: float rounding only
        got = read_rgb(out / f'{i:06d}.png').astype(int)
        assert np.abs(got - expected_fused(published_ckpt, vis_in[i], ir_in[i])).max() <= 1


# ---------------------------------------------------------------- fuse.py: setup errors

def test_missing_weights_one_line_error(tmp_path, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(8, 8), masks=False)
    code, _, err = run_fuse(capsys, '--weights', tmp_path / 'nope.pth', '--vis', data['vis'],
                            '--ir', data['ir'], '--out', tmp_path / 'fused')
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith('error: ') and 'nope.pth' in lines[0]
    assert not (tmp_path / 'fused').exists()


@pytest.mark.parametrize('extra, needle', [
    (['--weights', 'GARBAGE'], 'not a loadable checkpoint'),
    (['--weights', 'CKPT', '--tile', '64', '--tile-overlap', '64'], '--tile'),
    (['--weights', 'CKPT', '--tile', '16'], 'at least 32'),
    (['--weights', 'CKPT', '--device', 'gpu'], '--device'),
    (['--weights', 'CKPT', '--ext', 'gif'], '--ext'),
    (['--weights', 'CKPT', '--ir-range', 'percentile:99,1'], '--ir-range'),
    (['--weights', 'CKPT', '--save', 'fused', 'heatmap'], '--save'),
    (['--weights', 'CKPT', '--batch', '0'], '--batch'),
])
def test_setup_errors_exit_2(tmp_path, published_ckpt, capsys, extra, needle):
    data = write_pairs(tmp_path / 'data', n=1, size=(8, 8), masks=False)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'PK\x03\x04 truncated')
    extra = [{'GARBAGE': str(garbage), 'CKPT': str(published_ckpt)}.get(a, a) for a in extra]
    code, _, err = run_fuse(capsys, *extra, '--vis', data['vis'], '--ir', data['ir'],
                            '--out', tmp_path / 'fused')
    err = err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith('error: ') and needle in err[0]


def test_unwritable_output_is_found_before_any_work(tmp_path, published_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=2, size=(8, 8), masks=False)
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    code, out, err = run_fuse(capsys, '--weights', published_ckpt, '--vis', data['vis'], '--ir',
                              data['ir'], '--out', blocker / 'fused')
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and 'a_file' in lines[0] and 'loaded' not in out


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


@pytest.mark.slow  # compiles the training step (about a minute on two cores)
def test_benchmark_compiled_training_row_runs():
    """The worker of the ``train compiled`` row at a tiny size: it times and measures the
    step after the warm-up that compiles it."""
    bench = load_script('benchmark_network')
    spec = {'path': 'train compiled', 'device': 'cpu', 'channels': 2, 'size': [0, 0],
            'train_shape': [2, 16, 16], 'repeat': 1, 'warmup': 0, 'threads': None}
    result = bench.run_worker(spec)
    assert result['ms'] > 0
    assert result['peak_bytes'] is None or result['peak_bytes'] >= 0


def test_benchmark_bf16_training_row_runs():
    """The worker of the ``train bf16`` row at a tiny size (oneDNN emulates bfloat16 on a CPU
    without it, so this runs everywhere)."""
    bench = load_script('benchmark_network')
    spec = {'path': 'train bf16', 'device': 'cpu', 'channels': 2, 'size': [0, 0],
            'train_shape': [1, 12, 10], 'repeat': 1, 'warmup': 0, 'threads': None}
    assert bench.run_worker(spec)['ms'] > 0


def test_benchmark_compile_needs_the_training_table(capsys):
    bench = load_script('benchmark')
    assert bench.main(['--only', 'net', '--compile', '--no-train']) == 2
    assert '--compile adds a row to the training table' in capsys.readouterr().err


@pytest.mark.parametrize('compiled_fails,has_bf16', [(False, True), (True, True), (False, False)])
def test_benchmark_training_table_with_compiled_row(monkeypatch, compiled_fails, has_bf16):
    """Ratios of the training rows are against ``train plain``, pixels per second from the
    batch of 4 x 128 x 128; a failed compilation is a row of n/a with its reason under the
    table, and so are the bf16 rows on a device without native bfloat16."""
    from basicsr.models import precision
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: has_bf16)
    bench = load_script('benchmark_network')
    figures = {'train plain': (200.0, 40 * 2 ** 20), 'train': (100.0, 10 * 2 ** 20),
               'train bf16': (40.0, 8 * 2 ** 20), 'train compiled': (50.0, 20 * 2 ** 20),
               'train compiled bf16': (25.0, 4 * 2 ** 20)}

    def fake_measure(spec):
        if spec['path'].startswith('train compiled') and compiled_fails:
            raise RuntimeError(f"benchmark worker for '{spec['path']}' failed: no C++ compiler")
        ms, peak = figures[spec['path']]
        return {'ms': ms, 'peak_bytes': peak}

    monkeypatch.setattr(bench, 'measure', fake_measure)
    blocks, report = bench.bench_network(torch.device('cpu'), 2, [], 1, 0, None, accuracy=False,
                                         train=True, compile=True)
    text = blocks[-1]
    assert '| train plain | 200 | 1.00 | 40 | 1.00 | 327680 |' in text  # 65536 px / 0.2 s
    assert '| train | 100 | 0.50 | 10 | 0.25 | 655360 |' in text
    if not has_bf16:
        assert '| train bf16 | n/a | n/a | n/a | n/a | n/a |' in text
        assert 'bf16 rows: bf16 is not supported here' in text
        assert '| train compiled | 50 | 0.25 | 20 | 0.50 | 1310720 |' in text
    elif compiled_fails:
        assert '| train bf16 | 40 | 0.20 | 8 | 0.20 | 1638400 |' in text
        assert '| train compiled | n/a | n/a | n/a | n/a | n/a |' in text
        assert text.endswith("train compiled bf16: benchmark worker for 'train compiled bf16' "
                             "failed: no C++ compiler")
        assert report['train']['train compiled']['ms'] is None
    else:
        assert '| train compiled | 50 | 0.25 | 20 | 0.50 | 1310720 |' in text
        assert '| train compiled bf16 | 25 | 0.12 | 4 | 0.10 | 2621440 |' in text


def test_agreement_8bit_hand_example():
    bench = load_script('benchmark_network')
    base = torch.zeros(1, 1, 2, 2)
    fused = base.clone()
    fused[0, 0, 0, 0] = 2 / 255  # one pixel two levels off: MSE 4/4 = 1 -> 20*log10(255)
    got = bench.agreement_8bit(fused, base)
    assert got['max_levels'] == 2 and abs(got['psnr_8bit_db'] - 20 * math.log10(255)) < 1e-9
    fused[0, 0, 1, 1] = 1.7  # clamped to 1: 255 levels off
    assert bench.agreement_8bit(fused, base)['max_levels'] == 255
    assert bench.agreement_8bit(base, base)['psnr_8bit_db'] == float('inf')


@pytest.mark.parametrize('has_bf16,emulated', [(True, False), (False, False), (False, True)])
def test_benchmark_lean_bf16_row(monkeypatch, has_bf16, emulated):
    """The inference table has a lean bf16 row with its 8-bit agreement with lean float32; a
    CPU without native bfloat16 gets a row of n/a and the reason, unless --emulated-bf16."""
    from basicsr.models import precision
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: has_bf16)
    bench = load_script('benchmark_network')
    figures = {'plain': {'ms': 400.0, 'peak_bytes': 800 * 2 ** 20},
               'lean': {'ms': 200.0, 'peak_bytes': 200 * 2 ** 20},
               'lean bf16': {'ms': 100.0, 'peak_bytes': 160 * 2 ** 20, 'psnr_8bit_db': 51.26,
                             'max_levels': 2.0},
               'conv': {'ms': 1.0, 'gmacs_per_s': 10.0}}
    monkeypatch.setattr(bench, 'measure', lambda spec: dict(figures[spec['path']]))
    blocks, report = bench.bench_network(torch.device('cpu'), 2, [(64, 80)], 1, 0, None,
                                         accuracy=False, train=False, emulated_bf16=emulated)
    text = blocks[0]
    assert '| lean | 200 | 0.50 | 200 | 0.25 | 40960 |' in text  # 200 MiB / 5120 px
    if has_bf16 or emulated:
        assert '| lean bf16 | 100 | 0.25 | 160 | 0.20 | 32768 | n/a |' in text
        row = next(line for line in text.split('\n') if line.startswith('| lean bf16 |'))
        assert row.endswith('| 51.3 / 2 |')
        assert ('emulated bfloat16' in text) == emulated
    else:
        assert '| lean bf16 | n/a | n/a | n/a | n/a | n/a |' in text
        assert 'lean bf16: bf16 is not supported here' in text
        assert report['sizes']['64x80']['lean bf16']['ms'] is None
