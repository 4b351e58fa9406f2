"""Training faults that must never cost work: damaged data files (found by the dry run,
skipped at run time up to ``max_bad_fraction``), stops of any kind (a checkpoint first, the
error in the run log), and diverged weights (never the resume point, refused by the loaders)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.data.contract import UnreadablePairsError
from basicsr.data.fusion_dataset import PairedFusionDataset
from basicsr.models.fusion_model import FusionModel
from basicsr.test import main as run_test_cli
from basicsr.train import main as train_main
from basicsr.utils.checkpoint import CKPT_FORMAT
from basicsr.utils.divergence import LossWatch
from basicsr.utils.errors import DataError, DGFusionError
from basicsr.utils.image_check import inspect_image
from tests.conftest import REPO, train_options, write_pairs


def write_opt(tmp_path: Path, data, **over) -> Path:
    path = tmp_path / 'opt.yml'
    path.write_text(train_options(tmp_path, data, **over))
    return path


def exp_dir(tmp_path: Path) -> Path:
    return tmp_path / 'experiments' / 'tiny'


def run_log(tmp_path: Path) -> str:
    return (exp_dir(tmp_path) / 'train_tiny.log').read_text()


def logged_iters(tmp_path: Path):
    lines = (exp_dir(tmp_path) / 'train_log.jsonl').read_text().splitlines()
    return [json.loads(line)['iter'] for line in lines]


def latest_iter(tmp_path: Path) -> int:
    pointer = (exp_dir(tmp_path) / 'checkpoints' / 'latest').read_text()
    return int(pointer[len('iter_'):-len('.pth')])


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def corrupt_after(monkeypatch, steps: int, damage) -> None:
    """Call ``damage()`` right after training step ``steps`` (a file going bad mid-run)."""
    real = FusionModel.train_step
    calls = {'n': 0}

    def step(self, batch):
        out = real(self, batch)
        calls['n'] += 1
        if calls['n'] == steps:
            damage()
        return out

    monkeypatch.setattr(FusionModel, 'train_step', step)


# ---------------------------------------------------------------- whole-file checks
@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.tif'])
def test_inspect_image_whole_and_truncated(tmp_path, ext):
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / f"a{ext}"
    cv2.imwrite(str(path), img)
    info = inspect_image(path)
    assert (info.height, info.width, info.channels) == (30, 40, 3)
    truncate(path)
    with pytest.raises(DataError, match=r'a\.(png|jpg|bmp|tif)'):
        inspect_image(path)
    path.write_bytes(b'')
    with pytest.raises(DataError, match='empty file'):
        inspect_image(path)


def test_dry_run_reports_every_damaged_file_together(tmp_path, tiny_data, tiny_val, capsys):
    (tiny_data['vis'] / '001.png').write_bytes(b'')                      # 0-byte
    truncate(tiny_data['ir'] / '002.png')                                # truncated
    cv2.imwrite(str(tiny_data['mask'] / '003.png'), np.zeros((17, 19), np.uint8))  # wrong size
    cv2.imwrite(str(tiny_val['ir'] / '001.png'), np.zeros((9, 9), np.uint8))      # wrong size
    opt = write_opt(tmp_path, tiny_data, val=tiny_val, val_freq=1)
    assert train_main(['-opt', str(opt), '--dry-run']) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith('error: ') and '4 problems' in lines[0]
    expected = [(tiny_data['vis'] / '001.png', 'empty file (0 bytes)'),
                (tiny_data['ir'] / '002.png', 'truncated'),
                (tiny_data['mask'] / '003.png', '17x19, but the visible image 003.png is 20x24'),
                (tiny_val['ir'] / '001.png', '9x9, but the visible image 001.png is 18x21')]
    for path, needle in expected:
        assert sum(str(path) in line and needle in line for line in lines) == 1, err
    assert not (tmp_path / 'experiments').exists()  # a dry run writes nothing


def test_dry_run_passes_whole_data(tmp_path, tiny_data, tiny_val, capsys):
    opt = write_opt(tmp_path, tiny_data, val=tiny_val, val_freq=1)
    assert train_main(['-opt', str(opt), '--dry-run']) == 0
    assert 'is valid' in capsys.readouterr().err


# ---------------------------------------------------------------- skipping at run time
def test_corrupt_file_from_the_start_is_skipped_and_named_once(tmp_path, tiny_data, capsys):
    bad = tiny_data['vis'] / '001.png'
    bad.write_bytes(b'')
    opt = write_opt(tmp_path, tiny_data, total_iter=8, save_freq=8)
    code = train_main(['-opt', str(opt), '--set', 'datasets.train.max_bad_fraction=0.5'])
    out = capsys.readouterr().out
    assert code == 0
    # 8 iterations of batch 2 visit every one of the 8 items of an epoch twice
    for text in (run_log(tmp_path), out):
        warnings = [line for line in text.splitlines() if 'skipped unreadable training pair' in line]
        assert len(warnings) == 1 and str(bad) in warnings[0] and '1 of 4 pairs' in warnings[0]
    assert logged_iters(tmp_path) == list(range(1, 9)) and latest_iter(tmp_path) == 8


def test_file_corrupted_mid_run_is_skipped(tmp_path, tiny_data, monkeypatch, capsys):
    bad = tiny_data['ir'] / '002.png'
    corrupt_after(monkeypatch, 2, lambda: truncate(bad))
    opt = write_opt(tmp_path, tiny_data, total_iter=8, save_freq=8)
    assert train_main(['-opt', str(opt), '--set', 'datasets.train.max_bad_fraction=0.25']) == 0
    warnings = [line for line in run_log(tmp_path).splitlines() if 'skipped unreadable' in line]
    assert len(warnings) == 1 and str(bad) in warnings[0]
    assert latest_iter(tmp_path) == 8


def test_too_many_bad_pairs_stop_saves_then_auto_resume_continues(tmp_path, tiny_data,
                                                                  monkeypatch, capsys):
    bad = tiny_data['vis'] / '003.png'
    original = bad.read_bytes()
    n = 3  # the file goes bad after iteration n
    corrupt_after(monkeypatch, n, lambda: bad.write_bytes(b'garbage'))
    opt = write_opt(tmp_path, tiny_data, total_iter=20, save_freq=1)
    assert train_main(['-opt', str(opt), '--set', 'datasets.train.max_bad_fraction=0']) == 1
    log = run_log(tmp_path)
    assert 'max_bad_fraction' in log and str(bad) in log  # the error is in the run's log
    stopped = max(logged_iters(tmp_path))
    assert stopped >= n and latest_iter(tmp_path) == stopped
    monkeypatch.undo()
    bad.write_bytes(original)
    capsys.readouterr()
    assert train_main(['-opt', str(opt), '--auto-resume']) == 0
    out = capsys.readouterr().out
    assert f"at iteration {stopped}" in out and stopped >= n - 1
    assert latest_iter(tmp_path) == 20


def test_any_stop_saves_the_iteration_reached_first(tmp_path, tiny_data, monkeypatch, capsys):
    bad = tiny_data['vis'] / '000.png'
    corrupt_after(monkeypatch, 3, lambda: bad.write_bytes(b''))
    opt = write_opt(tmp_path, tiny_data, total_iter=20, save_freq=1000)
    assert train_main(['-opt', str(opt), '--set', 'datasets.train.max_bad_fraction=0']) == 1
    stopped = max(logged_iters(tmp_path))
    assert stopped >= 3 and latest_iter(tmp_path) == stopped


def test_error_mid_run_saves_and_is_written_to_the_log(tmp_path, tiny_data, monkeypatch, capsys):
    real = FusionModel.train_step
    calls = {'n': 0}

    def step(self, batch):
        calls['n'] += 1
        if calls['n'] == 4:
            raise DGFusionError('something went wrong in step 4')
        return real(self, batch)

    monkeypatch.setattr(FusionModel, 'train_step', step)
    opt = write_opt(tmp_path, tiny_data, total_iter=20, save_freq=1000)
    assert train_main(['-opt', str(opt)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == 'error: something went wrong in step 4'
    assert 'error: something went wrong in step 4' in run_log(tmp_path)
    assert latest_iter(tmp_path) == 3


@pytest.mark.dist
def test_torchrun_processes_stop_together_on_unreadable_pairs(tmp_path, tiny_data):
    (tiny_data['ir'] / '001.png').write_bytes(b'')
    opt = write_opt(tmp_path, tiny_data, total_iter=12, batch=1, save_freq=1000)
    opt.write_text(opt.read_text().replace('    enlarge_ratio: 2\n',
                                           '    enlarge_ratio: 2\n    max_bad_fraction: 0\n'))
    out = tmp_path / 'out'
    out.mkdir()
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                          '--nproc_per_node=2', 'tests/dist_worker.py', str(opt), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, OMP_NUM_THREADS='1'))
    text = run.stdout + run.stderr
    assert run.returncode != 0 and 'max_bad_fraction' in text, text[-3000:]
    # both processes left the loop (neither waits for the other) and wrote their weights
    assert (out / 'rank0.pt').is_file() and (out / 'rank1.pt').is_file(), text[-3000:]


def test_dataset_substitutes_the_next_readable_pair(tmp_path):
    data = write_pairs(tmp_path / 'd', n=4)
    (data['ir'] / '001.png').write_bytes(b'')
    ds = PairedFusionDataset(str(data['vis']), str(data['ir']), str(data['mask']), phase='train',
                             patch_size=16, max_bad_fraction=0.25)
    item = ds[(1, 7)]
    assert item['stem'] == '002' and item['skipped'].startswith('001\t')
    assert ds[(1, 7)]['skipped'] == ''  # named once per process
    (data['ir'] / '002.png').write_bytes(b'')
    with pytest.raises(UnreadablePairsError, match='2 of 4 training pairs'):
        ds[(2, 0)]


def test_truncated_jpeg_is_not_trained_on(tmp_path):
    # a decoder fills the missing part of a cut JPEG with gray and does not fail
    data = write_pairs(tmp_path / 'd', n=3, ext_vis='.jpg')
    truncate(data['vis'] / '000.jpg', keep=0.6)
    assert cv2.imread(str(data['vis'] / '000.jpg')) is not None
    ds = PairedFusionDataset(str(data['vis']), str(data['ir']), str(data['mask']), phase='train',
                             patch_size=16, max_bad_fraction=0.5)
    item = ds[(0, 3)]
    assert item['stem'] == '001' and 'truncated' in item['skipped']


# ---------------------------------------------------------------- diverged weights
def test_loss_watch_rule():
    watch = LossWatch(window=5, factor=10.0)
    assert watch.problem(1e9) is None  # nothing to compare with yet
    for loss in (1.0, 2.0, float('nan'), 3.0):
        watch.record(loss)
    assert watch.reference(math.nan) == 2.0  # median of the finite losses
    assert watch.problem(19.0) is None and 'diverged' in watch.problem(21.0)
    assert watch.problem(50.0, loss_before=6.0) is None  # one hard batch is not divergence
    assert 'inf' in watch.problem(float('inf'))


def saved_weights(tmp_path: Path):
    for path in sorted((exp_dir(tmp_path) / 'checkpoints').glob('iter_*.pth')):
        state = torch.load(path, map_location='cpu', weights_only=True)
        yield path, [t for key in ('params', 'params_ema') for t in state[key].values()
                     if t.is_floating_point()]


def test_learning_rate_jump_leaves_a_sane_resume_point(tmp_path, tiny_data, capsys):
    # lr 1e-3 for three steps, then 1e30 (MultiStepLR milestone 3, gamma 1e33)
    opt = write_opt(tmp_path, tiny_data, total_iter=20, save_freq=1)
    train_main(['-opt', str(opt), '--set', 'train.scheduler.gamma=1e33'])
    assert latest_iter(tmp_path) == 3
    for path, tensors in saved_weights(tmp_path):
        assert max(float(t.abs().max()) for t in tensors) < 1e3, path
    assert 'not saving iteration 4 as a resume point' in run_log(tmp_path)


def test_huge_learning_rate_saves_no_diverged_weights(tmp_path, tiny_data, capsys):
    opt = write_opt(tmp_path, tiny_data, total_iter=15, save_freq=1)
    assert train_main(['-opt', str(opt), '--set', 'train.optim_g.lr=1e30']) == 1
    for path, tensors in saved_weights(tmp_path):
        assert max(float(t.abs().max()) for t in tensors) < 1e3, path
    assert 'last checkpoint: none' in run_log(tmp_path)


@pytest.fixture
def nonfinite_ckpt(tmp_path) -> Path:
    """A checkpoint of ours whose EMA weights hold one NaN."""
    net = DGFusion(channels=2)
    params = net.state_dict()
    ema = {k: v.clone() for k, v in params.items()}
    first = next(k for k, v in ema.items() if v.is_floating_point())
    ema[first].view(-1)[0] = float('nan')
    path = tmp_path / 'diverged.pth'
    torch.save({'format': CKPT_FORMAT, 'network_g': {'type': 'DGFusion', 'channels': 2},
                'params': params, 'params_ema': ema, 'iter': 1}, path)
    return path


@pytest.mark.parametrize('dry_run', [False, True])
def test_auto_resume_refuses_nonfinite_weights(tmp_path, tiny_data, capsys, dry_run):
    opt = write_opt(tmp_path, tiny_data, total_iter=2, save_freq=2)
    assert train_main(['-opt', str(opt)]) == 0
    ckpt = exp_dir(tmp_path) / 'checkpoints' / 'iter_00000002.pth'
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    next(iter(state['params'].values())).view(-1)[0] = float('inf')
    torch.save(state, ckpt)
    capsys.readouterr()
    args = ['-opt', str(opt), '--auto-resume', '--set', 'train.total_iter=4']
    assert train_main(args + (['--dry-run'] if dry_run else [])) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith('error: ') and str(ckpt) in lines[-1] and 'NaN or inf' in lines[-1]
    assert not (exp_dir(tmp_path) / 'checkpoints' / 'iter_00000004.pth').exists()


@pytest.mark.parametrize('value', ['1.5', '-0.1', 'lots'])
def test_max_bad_fraction_is_checked(tmp_path, tiny_data, capsys, value):
    opt = write_opt(tmp_path, tiny_data)
    args = ['-opt', str(opt), '--dry-run', '--set', f"datasets.train.max_bad_fraction={value}"]
    assert train_main(args) == 2
    assert 'datasets.train.max_bad_fraction' in capsys.readouterr().err


def test_fuse_refuses_nonfinite_weights(tmp_path, nonfinite_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(16, 16), masks=False)
    from basicsr.tools import fuse as module
    code = module.main(['--weights', str(nonfinite_ckpt), '--vis', str(data['vis']),
                        '--ir', str(data['ir']), '--out', str(tmp_path / 'fused')])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert str(nonfinite_ckpt) in lines[0] and 'NaN or inf' in lines[0]
    assert not any((tmp_path / 'fused').glob('*.png'))


def test_test_py_refuses_nonfinite_weights(tmp_path, nonfinite_ckpt, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(16, 16), masks=False)
    opt = tmp_path / 'test.yml'
    opt.write_text(f"""name: t
device: cpu
datasets:
  test_1:
    name: a
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
path:
  results_root: {tmp_path / 'results'}
  pretrain_network_g: {nonfinite_ckpt}
""")
    assert run_test_cli(['-opt', str(opt)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'NaN or inf' in lines[0] and str(nonfinite_ckpt) in lines[0]
