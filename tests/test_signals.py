"""SIGTERM stops every entry point as Ctrl-C does: what is done is kept, one line, exit 130.

The scripts run as real processes and get a real SIGTERM once they have written a first
result; no partial or empty file may be left behind.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.utils.signals import sigterm_as_interrupt
from tests.conftest import REPO, write_pairs
from tests.test_test_script import write_test_options

ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode; never reached
    assert signal.getsignal(signal.SIGTERM) is before


def checkpoint(path: Path, channels: int = 4) -> Path:
    torch.manual_seed(0)
    torch.save({'network_g': {'type': 'DGFusion', 'channels': channels},
                'params': DGFusion(channels=channels).state_dict()}, path)
    return path


def terminate_when(cmd: List[str], ready: Callable[[], bool], cwd: Path = REPO,
                   timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``cmd``, send SIGTERM as soon as ``ready()`` holds, and return the finished run."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
            assert time.monotonic() < deadline, 'no first result in time'
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def one_interrupted_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 130, run.stderr
    assert 'Traceback' not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith(('interrupted', 'error'))]
    assert len(lines) == 1 and lines[0].startswith('interrupted'), run.stderr
    return lines[0]


def finished_pngs(folder: Path) -> List[Path]:
    """The PNGs in ``folder`` that are written (an atomic write's temporary is a dot-file)."""
    return [p for p in folder.glob('*.png') if not p.name.startswith('.')] if folder.is_dir() else []


def leftovers(folder: Path) -> List[Path]:
    """Temporary, partial or empty files under ``folder``."""
    return [p for p in folder.rglob('*') if p.is_file() and (
        p.name.startswith('.') or 'partial' in p.name or p.stat().st_size == 0)]


def test_fuse_folder_sigterm_keeps_the_fused_images(tmp_path):
    data = write_pairs(tmp_path / 'data', n=100, size=(32, 40), masks=False)
    out = tmp_path / 'fused'
    run = terminate_when([sys.executable, 'scripts/fuse.py', '--weights', str(checkpoint(tmp_path / 'c4.pth')),
                          '--vis', str(data['vis']), '--ir', str(data['ir']), '--out', str(out),
                          '--device', 'cpu'], lambda: bool(finished_pngs(out)))
    line = one_interrupted_line(run)
    written = sorted(out.glob('*.png'))
    assert 1 <= len(written) < 100 and f"{len(written)} img(s) fused" in line
    assert all(cv2.imread(str(p)).shape == (32, 40, 3) for p in written)
    assert not leftovers(out)


def write_video(path: Path, frames: int, size=(48, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (size[1], size[0]))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    writer.release()


def test_fuse_video_sigterm_before_any_frame_leaves_no_partial_file(tmp_path):
    write_video(tmp_path / 'vis.avi', 60)
    write_video(tmp_path / 'ir.avi', 60)
    out = tmp_path / 'out' / 'fused.avi'
    partial = out.with_name('.fused.partial.avi')  # opened before the model loads
    run = terminate_when([sys.executable, 'scripts/fuse.py', '--weights', str(checkpoint(tmp_path / 'c4.pth')),
                          '--vis', str(tmp_path / 'vis.avi'), '--ir', str(tmp_path / 'ir.avi'),
                          '--out', str(out), '--device', 'cpu'], partial.exists)
    one_interrupted_line(run)
    assert not partial.exists() and not leftovers(out.parent)
    assert not out.exists() or cv2.VideoCapture(str(out)).read()[0]  # never an empty video


def test_fuse_video_sigterm_keeps_the_finished_frames(tmp_path, capsys, monkeypatch):
    """In process: SIGTERM after the second frame; the video holds exactly those frames."""
    from basicsr.tools import fuse as module
    write_video(tmp_path / 'vis.avi', 6, size=(16, 24))
    write_video(tmp_path / 'ir.avi', 6, size=(16, 24))
    original, calls = module.fuse_batch, []

    def fuse_then_signal(*args, **kwargs):
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, 'fuse_batch', fuse_then_signal)
    out = tmp_path / 'fused.avi'
    code = module.main(['--weights', str(checkpoint(tmp_path / 'c2.pth', 2)), '--vis', str(tmp_path / 'vis.avi'),
                        '--ir', str(tmp_path / 'ir.avi'), '--out', str(out), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert code == 130 and 'interrupted: 2 frame(s) fused' in err, err
    cap, count = cv2.VideoCapture(str(out)), 0
    while cap.read()[0]:
        count += 1
    assert count == 2 and not leftovers(tmp_path)


def test_test_py_sigterm_writes_the_partial_table(tmp_path):
    data = write_pairs(tmp_path / 'data', n=100, size=(32, 40), masks=False)
    opt = write_test_options(tmp_path, data, checkpoint(tmp_path / 'c4.pth'), metrics='[EN, SD]')
    out = tmp_path / 'results' / 'tiny_test' / 'set_a'
    run = terminate_when([sys.executable, 'test.py', '-opt', str(opt)],
                         lambda: len(finished_pngs(out)) >= 2)
    line = one_interrupted_line(run)
    rows = list(csv.reader(open(out / 'metrics_cddfuse.csv')))
    assert rows[0] == ['image', 'latency_ms', 'EN', 'SD']
    stems = [r[0] for r in rows[1:] if r[0] != 'mean']
    assert stems and all((out / f"{s}.png").is_file() for s in stems)
    assert f"{len(stems)} of 100 pairs done" in line
    assert not leftovers(out)


@pytest.mark.parametrize('workers', ['0', '2'])
def test_gen_saliency_sigterm_keeps_the_masks(tmp_path, workers):
    data = write_pairs(tmp_path / 'data', n=400, size=(64, 80), masks=False)
    out = tmp_path / 'masks'
    run = terminate_when([sys.executable, 'scripts/gen_saliency.py', '--vis', str(data['vis']),
                          '--ir', str(data['ir']), '--out', str(out), '--workers', workers],
                         lambda: bool(finished_pngs(out)))
    one_interrupted_line(run)
    assert 1 <= len(list(out.glob('*.png'))) < 400 and not leftovers(out)


def test_evaluate_sigterm_writes_the_values_so_far(tmp_path, capsys, monkeypatch):
    """In process: the third image sends SIGTERM to this process, as a scheduler would."""
    from basicsr.tools import evaluate as module
    data = write_pairs(tmp_path / 'data', n=6, size=(16, 20), masks=False)
    original, calls = module.evaluate_stem, []

    def evaluate_then_signal(task):
        calls.append(task[0])
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(task)

    monkeypatch.setattr(module, 'evaluate_stem', evaluate_then_signal)
    table = tmp_path / 'table.csv'
    code = module.main(['--fused', str(data['vis']), '--vis', str(data['vis']), '--ir', str(data['ir']),
                        '--out', str(table), '--workers', '1', '--metrics', 'EN'])
    err = capsys.readouterr().err
    assert code == 130 and 'interrupted: 2 of 6 images evaluated' in err, err
    rows = list(csv.reader(open(table)))
    assert [r[0] for r in rows] == ['image', '000', '001', 'mean']
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_train_sigterm_saves_a_checkpoint_and_exits_130(tmp_path):
    from tests.conftest import train_options
    data = write_pairs(tmp_path / 'train')
    opt = tmp_path / 'train.yml'
    opt.write_text(train_options(tmp_path, data, total_iter=100000, save_freq=100000))
    exp = tmp_path / 'experiments' / 'tiny'
    run = terminate_when([sys.executable, 'train.py', '-opt', str(opt)],
                         lambda: (exp / 'train_log.jsonl').is_file())
    assert run.returncode == 130 and 'Traceback' not in run.stderr, run.stderr
    saved = sorted((exp / 'checkpoints').glob('iter_*.pth'))
    assert saved and not leftovers(exp / 'checkpoints')
