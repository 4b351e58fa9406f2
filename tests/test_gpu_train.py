"""Wall-clock training budget (train.max_minutes) and scripts/gpu_train.sh, smoke-tested on
the CPU with a tiny option file and budget."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from basicsr.inference.loader import load_network
from basicsr.train import main as train_main
from tests.conftest import REPO, train_options


def test_max_minutes_stops_with_a_checkpoint_and_resumes(tmp_path, tiny_data, caplog):
    """A budget smaller than one step ends the run after its first iteration: checkpoint
    there, exit 0; --auto-resume then continues to total_iter."""
    opt = tmp_path / 'opt.yml'
    opt.write_text(train_options(tmp_path, tiny_data, total_iter=3, save_freq=100))
    assert train_main(['-opt', str(opt), '--set', 'train.max_minutes=1e-6']) == 0
    ckpts = tmp_path / 'experiments' / 'tiny' / 'checkpoints'
    assert sorted(p.name for p in ckpts.glob('iter_*.pth')) == ['iter_00000001.pth']
    log = next((tmp_path / 'experiments' / 'tiny').glob('train_*.log')).read_text()
    assert 'train.max_minutes (1e-06) reached at iteration 1' in log
    assert train_main(['-opt', str(opt), '--auto-resume']) == 0
    assert (ckpts / 'iter_00000003.pth').exists()


@pytest.mark.parametrize('value', ['0', '-1', 'soon'])
def test_max_minutes_must_be_a_positive_number(tmp_path, tiny_data, value, capsys):
    opt = tmp_path / 'opt.yml'
    opt.write_text(train_options(tmp_path, tiny_data))
    assert train_main(['-opt', str(opt), '--set', f'train.max_minutes={value}', '--dry-run']) == 2
    assert 'train.max_minutes' in capsys.readouterr().err


def _gpu_train(tmp_path, tiny_data, *args, **env_over):
    opt = tmp_path / 'tiny.yml'
    opt.write_text(train_options(tmp_path, tiny_data, total_iter=50, save_freq=100))
    env = {**os.environ, 'PY': sys.executable, 'DEVICE': 'cpu', 'OPT': str(opt), 'WARM': '0',
           'TMAX_KEY': '', 'ITERS': '50', **env_over}
    return subprocess.run(['bash', str(REPO / 'scripts' / 'gpu_train.sh'), *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which('bash') is None, reason='needs bash')
def test_gpu_train_script_smoke_on_cpu(tmp_path, tiny_data):
    """A 0.05-minute budget on the CPU: the run stops on time, long before its 10**6
    iterations whatever the machine's speed, and the folder holds loadable EMA weights, the
    JSON log and the run's log."""
    out = tmp_path / 'out'
    res = _gpu_train(tmp_path, tiny_data, out, '0.05', ITERS='1000000')
    assert res.returncode == 0, res.stderr[-2000:]
    weights = out / 'DGFusion_gpu.pth'
    net = load_network(weights)
    assert net.channels == 2
    raw = torch.load(weights, map_location='cpu', weights_only=True)
    assert set(raw) >= {'format', 'network_g', 'params'}
    logs = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert 1 <= logs[-1]['iter'] < 1_000_000
    assert list(out.glob('train_*.log'))
    resolved = (out / 'options_resolved.yml').read_text()
    assert 'max_minutes: 0.05' in resolved and 'precision: fp32' in resolved


@pytest.mark.parametrize('args,needle', [((), 'usage: bash scripts/gpu_train.sh'),
                                         (('OUT', '9'), "MINUTES: expected a number in (0, 8], got '9'"),
                                         (('OUT', '0'), "got '0'")])
def test_gpu_train_script_bad_arguments_exit_2(tmp_path, tiny_data, args, needle):
    args = tuple(str(tmp_path / a) if a == 'OUT' else a for a in args)
    res = _gpu_train(tmp_path, tiny_data, *args)
    assert res.returncode == 2 and needle in res.stderr


def test_gpu_train_script_refuses_a_used_folder(tmp_path, tiny_data):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    res = _gpu_train(tmp_path, tiny_data, out, '1')
    assert res.returncode == 2 and 'not empty' in res.stderr
    assert (out / 'keep.txt').read_text() == 'mine'
