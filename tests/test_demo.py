"""Tests of basicsr.data.demo: layout, determinism, idempotence, warm objects, recovery, CLI."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from basicsr.data import demo
from basicsr.data.demo import MARKER_NAME, make_demo_dataset, render_pair
from basicsr.data.saliency import saliency_mask
from basicsr.utils.errors import ConfigError, DataError

SMALL = dict(n_train=3, n_test=2, size=(24, 32), seed=0)
REPO = Path(__file__).resolve().parents[1]


def files_of(root: Path):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())


def test_layout_sizes_and_channels(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    assert root == tmp_path / 'demo'
    names = ['0000.png', '0001.png', '0002.png']
    expected = [f'train/vis/{n}' for n in names] + [f'train/ir/{n}' for n in names] \
        + [f'test/vis/{n}' for n in names[:2]] + [f'test/ir/{n}' for n in names[:2]] + [MARKER_NAME] \
        + [f'train/mask/{n}' for n in names]
    assert files_of(root) == sorted(expected)
    for rel in files_of(root):
        if not rel.endswith('.png'):
            continue
        img = cv2.imread(str(root / rel), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8
        assert img.shape == ((24, 32, 3) if '/vis/' in rel else (24, 32)), rel
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker['n_train'] == 3 and marker['n_test'] == 2 and marker['size'] == [24, 32]
    assert marker['masks'] is True
    # leaves nothing but the dataset beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo']


def test_masks_are_the_vsm_masks_of_the_written_pairs(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    for i in range(3):
        vis = cv2.imread(str(root / f'train/vis/{i:04d}.png'), cv2.IMREAD_UNCHANGED)
        ir = cv2.imread(str(root / f'train/ir/{i:04d}.png'), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(root / f'train/mask/{i:04d}.png'), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, saliency_mask(vis, ir, 'dgfusion') == 1.0)


def test_vis_written_as_rgb(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    bgr = cv2.imread(str(root / 'train/vis/0000.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(bgr[..., ::-1], render_pair(0, 'train', 0, (24, 32)).vis)


def test_deterministic_bytes(tmp_path):
    a = make_demo_dataset(tmp_path / 'a', **SMALL)
    b = make_demo_dataset(tmp_path / 'b', **SMALL)
    assert files_of(a) == files_of(b)
    for rel in files_of(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    # every image has its own stream: rendering one alone gives the same pixels
    alone = render_pair(0, 'test', 1, (24, 32))
    assert np.array_equal(cv2.imread(str(a / 'test/ir/0001.png'), cv2.IMREAD_UNCHANGED), alone.ir)
    # and different seeds / splits / indices differ
    assert not np.array_equal(render_pair(1, 'test', 1, (24, 32)).ir, alone.ir)
    assert not np.array_equal(render_pair(0, 'train', 1, (24, 32)).ir, alone.ir)


def test_idempotent_and_regenerates_on_other_parameters(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    stamps = {rel: (root / rel).stat().st_mtime_ns for rel in files_of(root)}
    time.sleep(0.02)
    make_demo_dataset(tmp_path / 'demo', **SMALL)
    assert {rel: (root / rel).stat().st_mtime_ns for rel in files_of(root)} == stamps
    make_demo_dataset(tmp_path / 'demo', **{**SMALL, 'n_test': 1})
    assert sorted(p.name for p in (root / 'test' / 'ir').iterdir()) == ['0000.png']
    assert json.loads((root / MARKER_NAME).read_text())['n_test'] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo']


def test_force_rewrites(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    marker_stamp = (root / MARKER_NAME).stat().st_mtime_ns
    time.sleep(0.02)
    make_demo_dataset(tmp_path / 'demo', force=True, **SMALL)
    assert (root / MARKER_NAME).stat().st_mtime_ns != marker_stamp


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


@pytest.mark.parametrize('size', [(24, 32), (64, 80)])
def test_warm_objects_bright_in_ir_hard_to_see_in_vis(size):
    nights = set()
    for index in range(6):
        pair = render_pair(0, 'train', index, size)
        nights.add(pair.night)
        assert pair.objects.any()
        ring = _dilate(pair.objects, 3) & ~pair.objects
        ir_contrast = pair.ir[pair.objects].mean() - pair.ir[ring].mean()
        gray = pair.vis.astype(np.float64).mean(axis=2)
        vis_contrast = abs(gray[pair.objects].mean() - gray[ring].mean())
        assert ir_contrast > 40, (index, ir_contrast)          # warmer than their surroundings
        assert vis_contrast < ir_contrast / 2, (index, vis_contrast, ir_contrast)
    assert nights == {False, True}


def test_night_darker_than_day():
    day = render_pair(0, 'train', 0, (24, 32)).vis.mean()
    night = render_pair(0, 'train', 1, (24, 32)).vis.mean()
    assert night < day / 2


def test_interrupted_run_leaves_no_dataset_and_recovers(tmp_path, monkeypatch):
    real_write = demo._write_png
    calls = []

    def failing_write(path, img):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real_write(path, img)

    monkeypatch.setattr(demo, '_write_png', failing_write)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / 'demo', **SMALL)
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor a temporary folder
    monkeypatch.setattr(demo, '_write_png', real_write)
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    assert (root / MARKER_NAME).exists() and len(list((root / 'test' / 'vis').iterdir())) == 2


def test_killed_run_leftover_is_ignored_and_cleaned(tmp_path):
    # A killed run leaves its temporary folder: it is never taken for the dataset.
    stale = tmp_path / '.demo.partial-123-abcd'
    (stale / 'train' / 'vis').mkdir(parents=True)
    (stale / 'train' / 'vis' / '0000.png').write_bytes(b'not a png')
    old = time.time() - 2 * demo.STALE_AFTER_S
    for folder in (stale / 'train' / 'vis', stale / 'train', stale):
        os.utime(folder, (old, old))
    fresh = tmp_path / '.demo.partial-456-ef01'  # maybe another live run: left alone
    fresh.mkdir()
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    assert not stale.exists() and fresh.exists()
    assert json.loads((root / MARKER_NAME).read_text())['n_train'] == 3


def test_foreign_or_old_folders(tmp_path):
    foreign = tmp_path / 'data'
    (foreign / 'train').mkdir(parents=True)
    (foreign / 'train' / 'keep.txt').write_text('mine')
    with pytest.raises(DataError, match=r"exists and is not a demo dataset"):
        make_demo_dataset(foreign, **SMALL)
    assert (foreign / 'train' / 'keep.txt').read_text() == 'mine'
    # a demo dataset of an older generator version is replaced
    root = make_demo_dataset(tmp_path / 'demo', **SMALL)
    marker = json.loads((root / MARKER_NAME).read_text())
    (root / MARKER_NAME).write_text(json.dumps({**marker, 'generator_version': 0}))
    make_demo_dataset(root, **SMALL)
    assert json.loads((root / MARKER_NAME).read_text()) == marker
    # an empty folder is fine
    (tmp_path / 'empty').mkdir()
    assert (make_demo_dataset(tmp_path / 'empty', **SMALL) / MARKER_NAME).exists()


@pytest.mark.parametrize('kwargs,match', [
    (dict(n_train=0), 'n_train must be an int >= 1, got 0'),
    (dict(n_test=-1), 'n_test must be an int >= 0, got -1'),
    (dict(size=(8, 32)), r'size must be \(H, W\) with ints >= 16, got \(8, 32\)'),
    (dict(seed=-3), 'seed must be an int >= 0, got -3'),
])
def test_parameter_errors(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_demo_dataset(tmp_path / 'demo', **{**SMALL, **kwargs})
    assert not (tmp_path / 'demo').exists()


def test_cli(tmp_path, capsys):
    assert demo.main(['--root', str(tmp_path / 'd'), '--n-train', '2', '--n-test', '1',
                      '--size', '16', '20']) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / 'd')
    assert cv2.imread(str(tmp_path / 'd' / 'test' / 'vis' / '0000.png')).shape == (16, 20, 3)
    proc = subprocess.run([sys.executable, '-m', 'basicsr.data.demo', '--root', str(tmp_path / 'x'),
                           '--size', '8', '8'], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        'error: demo dataset: size must be (H, W) with ints >= 16, got (8, 8)']


def _demo_run_options(tmp_path: Path, entry: str) -> Path:
    """An option file of ``entry`` (train or test) whose data lie in a missing datasets/demo."""
    from tests.conftest import train_options
    if entry == 'train':
        text = train_options(tmp_path, {k: Path('datasets/demo/train') / k
                                        for k in ('vis', 'ir', 'mask')}, total_iter=1)
    else:
        text = ("name: demo_test\ndevice: cpu\ndatasets:\n  test_1:\n    name: demo\n"
                "    dataroot_vis: datasets/demo/test/vis\n    dataroot_ir: datasets/demo/test/ir\n"
                f"path:\n  results_root: {tmp_path / 'results'}\n"
                f"  pretrain_network_g: {tmp_path / 'absent.pth'}\n")
    path = tmp_path / f"{entry}.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize('entry', ['train', 'test'])
def test_entry_points_leave_the_demo_data_to_its_command(tmp_path, monkeypatch, capsys, entry):
    """train.py and test.py never write the demo dataset: a missing one is the usual missing
    folder error, naming the command that makes it."""
    from basicsr.test import main as test_main
    from basicsr.train import main as train_main
    monkeypatch.chdir(tmp_path)
    opt = _demo_run_options(tmp_path, entry)
    assert (train_main if entry == 'train' else test_main)(['-opt', str(opt)]) == 2
    err = capsys.readouterr().err
    assert "dataroot_vis: folder 'datasets/demo/" in err, err
    named = [line for line in err.splitlines() if 'does not exist' in line]
    assert len(named) == (3 if entry == 'train' else 2), err  # vis, ir (, mask for training)
    assert all(line.endswith('; python -m basicsr.data.demo makes the demo dataset')
               for line in named), err
    assert not (tmp_path / 'datasets').exists()
