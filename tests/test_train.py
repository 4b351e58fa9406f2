"""End-to-end training: checkpoints, resume, clean stops, non-finite losses, DDP on Gloo."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from basicsr.train import main as train_main
from basicsr.trainer import Trainer
from basicsr.inference.loader import load_network
from basicsr.options import load_options
from tests.conftest import REPO, train_options


def write_opt(tmp_path, data, name='opt.yml', **over):
    path = tmp_path / name
    path.write_text(train_options(tmp_path, data, **over))
    return path


def losses_of(exp_dir: Path):
    lines = (exp_dir / 'train_log.jsonl').read_text().splitlines()
    return {r['iter']: r for r in map(json.loads, lines)}


def final_weights(ckpt: Path):
    return torch.load(ckpt, map_location='cpu', weights_only=True)


def assert_same_weights(a, b, atol=1e-6):
    for key in ('params', 'params_ema'):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], atol=atol, rtol=0, msg=name)


def test_five_iterations_write_checkpoint_and_run_record(tmp_path, tiny_data, tiny_val):
    opt = write_opt(tmp_path, tiny_data, val=tiny_val, val_freq=5, tb='true')
    assert train_main(['-opt', str(opt)]) == 0
    exp = tmp_path / 'experiments' / 'tiny'
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(exp / 'tb_logger'))
    events.Reload()
    assert {'train/total', 'train/lr'} <= set(events.Tags()['scalars'])
    grid = events.Images('val/vis_ir_mask_fused')[0]
    assert (grid.width, grid.height) == (4 * 21, 18)  # vis | ir | mask | fused side by side
    ckpt = exp / 'checkpoints' / 'iter_00000005.pth'
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert state['iter'] == 5 and state['network_g'] == {'type': 'DGFusion', 'channels': 2}
    assert {'params', 'params_ema', 'optimizer', 'scheduler', 'rng', 'config'} <= set(state)
    assert (exp / 'checkpoints' / 'latest').read_text() == ckpt.name
    logs = losses_of(exp)
    assert sorted(logs) == [1, 2, 3, 4, 5]
    assert all(torch.isfinite(torch.tensor(r['total'])) for r in logs.values())
    assert logs[4]['lr'] == pytest.approx(5e-4)  # MultiStepLR milestone 3, gamma 0.5
    assert (exp / 'options_original.yml').read_text() == opt.read_text()
    assert 'total_iter: 5' in (exp / 'options_resolved.yml').read_text()
    runs = (exp / 'runs.yml').read_text()
    assert 'command:' in runs and 'git_commit:' in runs
    assert sorted(p.name for p in (exp / 'visualization' / 'iter_00000005').iterdir()) == ['000.png', '001.png']
    net = load_network(ckpt)  # our checkpoints load through the public loader
    assert sum(p.numel() for p in net.parameters()) == sum(v.numel() for v in state['params_ema'].values())


def test_resume_equals_straight_run(tmp_path, tiny_data):
    straight = write_opt(tmp_path, tiny_data, name='a.yml', total_iter=4, save_freq=2)
    assert train_main(['-opt', str(straight)]) == 0
    exp_a = tmp_path / 'experiments' / 'tiny'
    exp_a.rename(tmp_path / 'straight')
    first = write_opt(tmp_path, tiny_data, name='b.yml', total_iter=2, save_freq=2)
    assert train_main(['-opt', str(first)]) == 0  # the process ends after 2 iterations
    assert train_main(['-opt', str(first), '--auto-resume', '--set', 'train.total_iter=4']) == 0
    resumed = tmp_path / 'experiments' / 'tiny'
    a, b = losses_of(tmp_path / 'straight'), losses_of(resumed)
    assert sorted(b) == [1, 2, 3, 4]
    for it in a:
        assert b[it]['total'] == pytest.approx(a[it]['total'], abs=1e-6, rel=0)
    assert_same_weights(final_weights(tmp_path / 'straight' / 'checkpoints' / 'iter_00000004.pth'),
                        final_weights(resumed / 'checkpoints' / 'iter_00000004.pth'))


def test_sigterm_saves_and_resume_continues_exactly(tmp_path, tiny_data):
    opt = write_opt(tmp_path, tiny_data, total_iter=100000, save_freq=100000, print_freq=1)
    exp = tmp_path / 'experiments' / 'tiny'
    proc = subprocess.Popen([sys.executable, 'train.py', '-opt', str(opt)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = exp / 'train_log.jsonl'
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out  # saved, and not reported as done
    assert 'Traceback' not in out
    pointer = (exp / 'checkpoints' / 'latest').read_text()
    stopped_at = int(pointer[5:13])
    assert stopped_at >= 2 and f"stopped at iteration {stopped_at}" in out
    # continue two more iterations from the saved state ...
    assert train_main(['-opt', str(opt), '--auto-resume', '--set', f"train.total_iter={stopped_at + 2}"]) == 0
    resumed = final_weights(exp / 'checkpoints' / f"iter_{stopped_at + 2:08d}.pth")
    # ... and compare with a run that never stopped
    shutil.rmtree(exp)
    assert train_main(['-opt', str(opt), '--set', f"train.total_iter={stopped_at + 2}"]) == 0
    straight = final_weights(exp / 'checkpoints' / f"iter_{stopped_at + 2:08d}.pth")
    assert_same_weights(straight, resumed)


def test_nonfinite_losses_skip_then_stop(tmp_path, tiny_data, monkeypatch):
    opt = write_opt(tmp_path, tiny_data, total_iter=30, save_freq=2)
    trainer = Trainer(load_options(opt))
    calls = {'n': 0}
    real_forward = trainer.model.net_g.forward

    def flaky(vis_y, ir):
        calls['n'] += torch.is_grad_enabled()  # training steps only, not the checkpoint checks
        out = real_forward(vis_y, ir)
        return out * float('nan') if calls['n'] == 3 or calls['n'] > 4 else out

    monkeypatch.setattr(trainer.model.net_g, 'forward', flaky)
    assert trainer.run() == 1  # stopped with a clear error, not a traceback
    logs = losses_of(trainer.exp_dir)
    assert logs[3]['skipped'] == 1.0 and logs[4]['skipped'] == 0.0
    assert max(logs) == 13  # steps 5..14 non-finite; the 10th in a row (14) stops training
    assert trainer.model.nonfinite_total == 11
    good = final_weights(trainer.exp_dir / 'checkpoints' / 'iter_00000004.pth')
    assert all(torch.isfinite(v).all() for v in good['params'].values())


@pytest.mark.dist
def test_torchrun_two_gloo_processes_match_single_process(tmp_path, tiny_data):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # SGD: Adam turns float round-off in exactly-zero gradients (the imaginary half of the wv
    # biases only reaches the output through a zero real part) into full-size steps, which
    # would hide what this test checks: that DDP averages gradients like one large batch.
    sgd = '{type: SGD, lr: 0.001, momentum: 0.9}'
    dist_opt = write_opt(tmp_path, tiny_data, name='dist.yml', total_iter=3, batch=2, optim=sgd)
    out = tmp_path / 'out'
    out.mkdir()
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                          '--nproc_per_node=2', 'tests/dist_worker.py', str(dist_opt), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    shutil.rmtree(tmp_path / 'experiments')
    single_opt = write_opt(tmp_path, tiny_data, name='single.yml', total_iter=3, batch=4, optim=sgd)
    assert train_main(['-opt', str(single_opt)]) == 0
    single = final_weights(tmp_path / 'experiments' / 'tiny' / 'checkpoints' / 'iter_00000003.pth')
    for name in r0:
        torch.testing.assert_close(r0[name], single['params'][name], atol=1e-5, rtol=0, msg=name)


def test_nonfinite_gradient_with_finite_loss_is_skipped(tmp_path, tiny_data):
    opt = write_opt(tmp_path, tiny_data, total_iter=3, save_freq=3)
    trainer = Trainer(load_options(opt))
    param = next(trainer.model.net_g.parameters())
    calls = {'n': 0}

    def poison(grad):
        calls['n'] += 1
        return grad * float('inf') if calls['n'] == 2 else grad

    param.register_hook(poison)
    assert trainer.run() == 0
    logs = losses_of(trainer.exp_dir)
    assert [logs[i]['skipped'] for i in (1, 2, 3)] == [0.0, 1.0, 0.0]
    assert torch.isfinite(torch.tensor(logs[2]['total'])).item() is False
    final = final_weights(trainer.exp_dir / 'checkpoints' / 'iter_00000003.pth')
    assert all(torch.isfinite(v).all() for v in final['params'].values())


def test_auto_resume_survives_a_broken_latest_pointer(tmp_path, tiny_data):
    opt = write_opt(tmp_path, tiny_data, total_iter=2, save_freq=1)
    assert train_main(['-opt', str(opt)]) == 0
    ckpts = tmp_path / 'experiments' / 'tiny' / 'checkpoints'
    (ckpts / 'latest').write_text('')  # e.g. a crash while the pointer was written
    trainer = Trainer(load_options(opt), auto_resume=True)
    assert trainer.start_iter == 2


def test_worker_errors_are_shown_as_one_line():
    from basicsr.utils.errors import DataError, one_line
    wrapped = DataError('Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most '
                        'recent call last):\n  File "x.py", line 1, in f\nbasicsr.utils.errors.'
                        'DataError: /data/a.png: cannot read image')
    assert one_line(wrapped) == '/data/a.png: cannot read image'
    assert one_line(DataError('plain message')) == 'plain message'


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_amp_training_on_cuda(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data, total_iter=3, save_freq=3, patch=18)  # not a power of 2
    text = text.replace('device: cpu', 'device: cuda').replace('  ema_decay:', '  precision: fp16\n  ema_decay:')
    (tmp_path / 'amp.yml').write_text(text)
    assert train_main(['-opt', str(tmp_path / 'amp.yml')]) == 0
    logs = losses_of(tmp_path / 'experiments' / 'tiny')
    assert all(r['skipped'] == 0.0 for r in logs.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_compiled_amp_training_on_cuda(tmp_path, tiny_data):
    """train.compile with AMP on CUDA: every step updates, the first loss is the eager AMP
    run's (half-precision round-off apart), and the checkpoint keys are the eager ones."""
    text = train_options(tmp_path, tiny_data, total_iter=3, save_freq=3, patch=18)
    text = text.replace('device: cpu', 'device: cuda').replace('  ema_decay:', '  precision: fp16\n  ema_decay:')
    (tmp_path / 'amp.yml').write_text(text)
    assert train_main(['-opt', str(tmp_path / 'amp.yml')]) == 0
    assert train_main(['-opt', str(tmp_path / 'amp.yml'), '--set', 'name=tiny_compiled',
                       '--set', 'train.compile=true']) == 0
    runs = tmp_path / 'experiments'
    eager, compiled = losses_of(runs / 'tiny'), losses_of(runs / 'tiny_compiled')
    assert all(r['skipped'] == 0.0 for r in compiled.values())
    assert compiled[1]['total'] == pytest.approx(eager[1]['total'], rel=1e-2)
    keys = [list(final_weights(runs / run / 'checkpoints' / 'iter_00000003.pth')['params'])
            for run in ('tiny', 'tiny_compiled')]
    assert keys[0] == keys[1]


class ToyFusion(torch.nn.Module):
    """A second architecture, known only to this test: two convolutions on [vis_y, ir]."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.width = width
        self.body = torch.nn.Sequential(torch.nn.Conv2d(2, width, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(width, 1, 3, padding=1))

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([vis_y, ir], dim=1))


def test_registered_toy_architecture_trains_resumes_and_tests(tmp_path, tiny_data, monkeypatch):
    """Registering a class is all a new architecture needs: train, save, resume, test."""
    from basicsr.test import main as test_main
    from basicsr.utils.registry import ARCH_REGISTRY
    monkeypatch.setitem(ARCH_REGISTRY._obj_map, 'ToyFusion', ToyFusion)
    text = train_options(tmp_path, tiny_data, total_iter=2, save_freq=2).replace(
        'type: DGFusion\n  channels: 2', 'type: ToyFusion\n  width: 3')
    opt = tmp_path / 'toy.yml'
    opt.write_text(text)
    assert train_main(['-opt', str(opt)]) == 0
    assert train_main(['-opt', str(opt), '--auto-resume', '--set', 'train.total_iter=4']) == 0
    ckpts = tmp_path / 'experiments' / 'tiny' / 'checkpoints'
    state = torch.load(ckpts / 'iter_00000004.pth', map_location='cpu', weights_only=True)
    assert state['network_g'] == {'type': 'ToyFusion', 'width': 3} and state['iter'] == 4
    assert sorted(state['params']) == sorted(ToyFusion(3).state_dict())
    net = load_network(ckpts / 'iter_00000004.pth')
    assert isinstance(net, ToyFusion) and net.width == 3
    for name, value in net.state_dict().items():
        assert torch.equal(value, state['params_ema'][name]), name
    test_opt = tmp_path / 'toy_test.yml'  # no network_g: the checkpoint's own is built
    test_opt.write_text(f"""name: toy_test
device: cpu
datasets:
  test_1:
    name: set_a
    dataroot_vis: {tiny_data['vis']}
    dataroot_ir: {tiny_data['ir']}
path:
  results_root: {tmp_path / 'results'}
  pretrain_network_g: {ckpts}
""")
    assert test_main(['-opt', str(test_opt)]) == 0
    written = sorted(p.name for p in (tmp_path / 'results' / 'toy_test').rglob('*.png'))
    assert len(written) == len(list(tiny_data['vis'].iterdir()))


@pytest.mark.slow  # compiling takes about a minute on two cores
def test_compiled_run_saves_the_eager_checkpoint_layout(tmp_path, tiny_data, tiny_val):
    """train.compile: true trains and validates; its first loss is the eager run's, and its
    checkpoint has the eager run's keys (no ``_orig_mod.``) and loads with load_network.

    Weights after a step are not compared: a round-off difference in one step (1e-8) moves the
    fused output of the next one by up to 1e-3 here (phases of near-real spectrum bins flip
    between -pi and pi), in eager runs as much as in compiled ones."""
    opt = write_opt(tmp_path, tiny_data, val=tiny_val, val_freq=2, total_iter=2, save_freq=2)
    assert train_main(['-opt', str(opt)]) == 0
    assert train_main(['-opt', str(opt), '--set', 'name=tiny_compiled',
                       '--set', 'train.compile=true']) == 0
    runs = tmp_path / 'experiments'
    eager = final_weights(runs / 'tiny' / 'checkpoints' / 'iter_00000002.pth')
    ckpt = runs / 'tiny_compiled' / 'checkpoints' / 'iter_00000002.pth'
    compiled = final_weights(ckpt)
    assert compiled['config']['train']['compile'] is True
    for key in ('params', 'params_ema'):
        assert list(compiled[key]) == list(eager[key])
        assert not any(k.startswith(('_orig_mod.', 'module.')) for k in compiled[key])
    first = losses_of(runs / 'tiny')[1]['total']
    assert losses_of(runs / 'tiny_compiled')[1]['total'] == pytest.approx(first, rel=1e-5, abs=0)
    net = load_network(ckpt)
    for name, value in net.state_dict().items():
        assert torch.equal(value, compiled['params_ema'][name]), name
    assert (runs / 'tiny_compiled' / 'visualization' / 'iter_00000002').is_dir()


def test_compile_failure_is_one_error_line_and_status_2(tmp_path, tiny_data):
    """No working C++ compiler (what a CPU compile needs): one line naming train.compile and
    the way out, exit status 2, no traceback."""
    opt = write_opt(tmp_path, tiny_data, total_iter=2)
    env = dict(os.environ, CXX=str(tmp_path / 'no-such-compiler'),
               TORCHINDUCTOR_CACHE_DIR=str(tmp_path / 'inductor-cache'))  # nothing cached
    run = subprocess.run([sys.executable, 'train.py', '-opt', str(opt), '--set', 'train.compile=true'],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 2, run.stderr[-3000:]
    assert 'Traceback' not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and errors[0] == run.stderr.strip().splitlines()[-1]
    assert errors[0].startswith('error: train.compile: ')
    assert 'C++ compiler' in errors[0] and errors[0].endswith('set train.compile=false to train without it')


@pytest.mark.dist
@pytest.mark.slow  # two processes compile on two cores
def test_torchrun_with_compile_keeps_the_ranks_in_step(tmp_path, tiny_data):
    """train.compile under DDP (the compiled module inside DistributedDataParallel): the run
    finishes and both ranks hold the same weights, so gradients were averaged."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    opt = write_opt(tmp_path, tiny_data, name='dist.yml', total_iter=2, batch=2, save_freq=2)
    opt.write_text(opt.read_text().replace('  ema_decay:', '  compile: true\n  ema_decay:'))
    out = tmp_path / 'out'
    out.mkdir()
    run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                          '--nproc_per_node=2', 'tests/dist_worker.py', str(opt), str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert not any(k.startswith(('_orig_mod.', 'module.')) for k in r0)
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    logs = losses_of(tmp_path / 'experiments' / 'tiny')
    assert [logs[i]['skipped'] for i in (1, 2)] == [0.0, 0.0]
