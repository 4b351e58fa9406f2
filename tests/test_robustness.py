"""Nothing lost, nothing silent: run locks, range checks, bounded YAML, run names, output
locations, oversized images, orphan temp files, resume limits, exit codes and ``--set``."""
from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.train import main as train_main
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.img_util import read_image
from basicsr.options import load_options
from basicsr.utils.yaml_io import load_yaml_text
from tests.conftest import REPO, train_options

LOCK_NAME = '.run.lock'


def write_opt(tmp_path: Path, data, name: str = 'opt.yml', text: str = None, **over) -> Path:
    path = tmp_path / name
    path.write_text(text if text is not None else train_options(tmp_path, data, **over))
    return path


def cli(script: str, *args, cwd=REPO, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env=env)


def train_cli(capsys, *args) -> subprocess.CompletedProcess:
    """``train.py`` in this process (fast; error paths): exit code and captured output."""
    capsys.readouterr()
    code = train_main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def script_cli(capsys, name: str, *args) -> subprocess.CompletedProcess:
    """``scripts/<name>.py`` run in this process: exit code and captured output."""
    import importlib
    module = importlib.import_module(f"basicsr.tools.{name}")
    capsys.readouterr()
    code = module.main([str(a) for a in args])
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def problems(path: Path, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_options(path, **kw)
    return str(info.value)


def one_error_line(run: subprocess.CompletedProcess) -> str:
    assert 'Traceback' not in run.stderr, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith('error: ')]
    assert len(lines) == 1, run.stderr
    return lines[0]


def huge_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A valid-looking PNG whose header declares ``width`` x ``height`` (no real pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b''))
                     + chunk(b'IEND', b''))
    return path


def wait_for_iterations(log: Path, n: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 150
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"first run did not reach {n} iterations: {proc.poll()}")


# --- 1. one live run per experiment folder --------------------------------------------------

def test_second_run_refuses_while_first_is_live_and_first_is_untouched(tmp_path, tiny_data, capsys):
    opt = write_opt(tmp_path, tiny_data, total_iter=100000, save_freq=100000, print_freq=1)
    exp = tmp_path / 'experiments' / 'tiny'
    first = subprocess.Popen([sys.executable, 'train.py', '-opt', str(opt)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_iterations(exp / 'train_log.jsonl', 2, first)
        lock = (exp / LOCK_NAME).read_text()
        assert f"pid={first.pid}\n" in lock and f"host={socket.gethostname()}\n" in lock
        for extra in ([], ['--auto-resume'], ['--dry-run']):
            second = train_cli(capsys, '-opt', opt, *extra)
            assert second.returncode == 2, second.stderr
            line = one_error_line(second)
            assert f"PID {first.pid} on host {socket.gethostname()}" in line and 'in use' in line
        # the live run's folder was neither moved nor written to by the refused runs
        assert not list((tmp_path / 'experiments').glob('tiny_archived_*'))
        assert (exp / 'runs.yml').read_text().count('command:') == 1
        assert first.poll() is None  # still training
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, out  # Ctrl-C: saved, then 130
    stopped = int((exp / 'checkpoints' / 'latest').read_text()[5:13])
    assert (exp / 'checkpoints' / f"iter_{stopped:08d}.pth").is_file()
    assert not (exp / LOCK_NAME).exists()  # released on the way out


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, tiny_data, capsys):
    opt = write_opt(tmp_path, tiny_data, total_iter=1, save_freq=1)
    exp = tmp_path / 'experiments' / 'tiny'
    exp.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    (exp / LOCK_NAME).write_text(f"pid={dead.pid}\nhost={socket.gethostname()}\nstart=\nstarted=then\n")
    run = train_cli(capsys, '-opt', opt, '--auto-resume')
    assert run.returncode == 0, run.stderr
    log = (exp / 'train_tiny.log').read_text()
    assert f"taking over the stale run lock of {exp} (PID {dead.pid}" in log
    assert not (exp / LOCK_NAME).exists()


def test_lock_of_another_host_is_not_taken_over(tmp_path, tiny_data, capsys):
    opt = write_opt(tmp_path, tiny_data, total_iter=1, save_freq=1)
    exp = tmp_path / 'experiments' / 'tiny'
    exp.mkdir(parents=True)
    (exp / LOCK_NAME).write_text("pid=1\nhost=elsewhere.invalid\nstart=\nstarted=then\n")
    run = train_cli(capsys, '-opt', opt)
    assert run.returncode == 2
    assert 'PID 1 on host elsewhere.invalid' in one_error_line(run)
    assert (exp / LOCK_NAME).exists() and not (exp / 'checkpoints').exists()


# --- 2. ranges and consistency, also under --dry-run ----------------------------------------

@pytest.mark.parametrize('old,new,expected', [
    ('gamma: 0.5', 'gamma: -0.5', 'train.scheduler.gamma: must be > 0, got -0.5'),
    ('patch_size: 16', 'patch_size: -32', 'datasets.train.patch_size: must be >= 8, got -32'),
    ('patch_size: 16', 'patch_size: 0', 'datasets.train.patch_size: must be >= 8, got 0'),
    ('patch_size: 16', 'patch_size: 64', 'datasets.train.patch_size: 64 is larger than 4 training image(s)'),
    ('lr: 1e-3', 'lr: 0', 'train.optim_g.lr: must be > 0, got 0'),
    ('betas: [0.9, 0.999]', 'betas: [0.9, 1.5]', 'train.optim_g.betas.1: must be in [0, 1), got 1.5'),
    ('milestones: [3]', 'milestones: [3, 2]', 'train.scheduler.milestones: must be strictly increasing'),
    ('milestones: [3]', 'milestones: [0]', 'train.scheduler.milestones: iteration numbers must be >= 1'),
    ('enlarge_ratio: 2', 'enlarge_ratio: 0', 'datasets.train.enlarge_ratio: must be >= 1, got 0'),
    ('ema_decay: 0.9', 'ema_decay: 1.0', 'train.ema_decay: must be in [0, 1), got 1.0'),
    ('ema_decay: 0.9', 'ema_decay: .nan', 'train.ema_decay: must be a finite number'),
    ('manual_seed: 0', 'manual_seed: -3', 'manual_seed: must be >= 0, got -3'),
    ('  ema_decay: 0.9', '  grad_clip: 0\n  ema_decay: 0.9', 'train.grad_clip: must be > 0, got 0'),
])
def test_numeric_ranges_name_the_dotted_key(tmp_path, tiny_data, old, new, expected):
    text = train_options(tmp_path, tiny_data)
    assert old in text
    path = write_opt(tmp_path, tiny_data, text=text.replace(old, new, 1))
    assert expected in problems(path)
    assert problems(path, dry_run=True) == problems(path)


@pytest.mark.parametrize('setting', ['train.scheduler.gamma=-0.5', 'datasets.train.patch_size=-32'])
def test_dry_run_refuses_what_the_run_refuses(tmp_path, tiny_data, setting, capsys):
    path = write_opt(tmp_path, tiny_data)
    runs = [train_cli(capsys, '-opt', path, '--set', setting, *extra) for extra in ([], ['--dry-run'])]
    assert [r.returncode for r in runs] == [2, 2]
    assert runs[0].stderr == runs[1].stderr
    assert f"{setting.split('=')[0]}: must be" in runs[0].stderr and 'Traceback' not in runs[0].stderr
    assert not (tmp_path / 'experiments').exists()


def test_milestone_beyond_total_iter_is_a_warning(tmp_path, tiny_data):
    path = write_opt(tmp_path, tiny_data, total_iter=2)
    loaded = load_options(path)
    assert loaded.warnings == ['train.scheduler.milestones: [3] beyond train.total_iter 2: the '
                               'learning rate never reaches this step']


def test_missing_mask_folder_says_how_to_make_it(tmp_path, tiny_data, capsys):
    data = dict(tiny_data, mask=tmp_path / 'masks')
    path = write_opt(tmp_path, data)
    for extra in ([], ['--dry-run']):
        run = train_cli(capsys, '-opt', path, *extra)
        assert run.returncode == 2
        assert (f"datasets.train.dataroot_mask: folder '{tmp_path / 'masks'}' does not exist; "
                f"scripts/gen_saliency.py -opt {path} makes the masks") in run.stderr


def test_unmatched_names_are_found_by_the_dry_run(tmp_path, tiny_data):
    (tiny_data['ir'] / '003.png').unlink()
    msg = problems(write_opt(tmp_path, tiny_data), dry_run=True)
    assert 'datasets.train: unmatched image names: 1 without a match in ir folder' in msg


# --- 3. YAML: bounded aliases, duplicate keys, short values in messages ----------------------

def billion_laughs() -> str:
    lines = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    for i in range(1, 9):
        prev, cur = chr(ord('a') + i - 1), chr(ord('a') + i)
        lines.append(f"{cur}: &{cur} [" + ', '.join([f'*{prev}'] * 9) + ']')
    return '\n'.join(lines) + '\n'


def test_alias_expansion_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r'aliases expand the document to 4\.9e\+08 nodes'):
        load_yaml_text(billion_laughs(), 'bomb.yml')
    path = tmp_path / 'bomb.yml'
    path.write_text('name: x\n' + billion_laughs())
    run = train_cli(capsys, '-opt', path, '--dry-run')
    assert run.returncode == 2 and 'aliases expand the document' in one_error_line(run)
    assert len(run.stderr) < 400


def test_small_aliases_and_merge_keys_still_work():
    text = 'base: &b {lr: 1.0, gamma: 0.5}\nsched:\n  <<: *b\n  gamma: 0.1\nlist: [*b, *b]\n'
    assert load_yaml_text(text) == {'base': {'lr': 1.0, 'gamma': 0.5}, 'sched': {'lr': 1.0, 'gamma': 0.1},
                                    'list': [{'lr': 1.0, 'gamma': 0.5}] * 2}
    with pytest.raises(ConfigError, match='recursive'):
        load_yaml_text('a: &a [1, *a]\n')


def test_duplicate_key_names_key_and_both_lines(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('  total_iter: 5\n', '  total_iter: 5\n  lr: 1\n'
                                                      '  total_iter: 50\n')
    lines = text.splitlines()
    first = lines.index('  total_iter: 5') + 1
    second = lines.index('  total_iter: 50') + 1
    msg = problems(write_opt(tmp_path, tiny_data, text=text))
    assert f"duplicate key 'total_iter' on lines {first} and {second}" in msg


def test_messages_cut_long_values(tmp_path, tiny_data):
    long_value = 'x' * 5000
    text = train_options(tmp_path, tiny_data).replace('device: cpu', f'device: {long_value}')
    text = text.replace('total_iter: 5', f'total_iter: [{", ".join([long_value] * 50)}]')
    msg = problems(write_opt(tmp_path, tiny_data, text=text))
    lines = msg.splitlines()
    assert any(ln.startswith('  - device: ') for ln in lines)
    assert any(ln.startswith('  - train.total_iter: expected integer') for ln in lines)
    assert max(len(ln) for ln in lines) < 300


# --- 4. run names ---------------------------------------------------------------------------

@pytest.mark.parametrize('name,expected', [
    ('""', 'name: must not be empty'), ("'  '", 'name: must not be empty'),
    ('../../x', "name: '../../x' must be a single folder name"), ('a/b', "name: 'a/b' must be a single"),
    ('..', "name: '..' must be a single folder name"), ('"a\\\\b"', "must be a single folder name"),
])
def test_name_is_one_folder(tmp_path, tiny_data, name, expected):
    text = train_options(tmp_path, tiny_data).replace('name: tiny', f'name: {name}', 1)
    assert expected in problems(write_opt(tmp_path, tiny_data, text=text))


def test_set_empty_name_is_refused(tmp_path, tiny_data, capsys):
    path = write_opt(tmp_path, tiny_data)
    run = train_cli(capsys, '-opt', path, '--set', 'name=')
    assert run.returncode == 2 and 'name: must not be empty' in run.stderr
    assert not (tmp_path / 'experiments').exists()


# --- 5. output locations ----------------------------------------------------------------------

def test_train_output_location_that_is_a_file(tmp_path, tiny_data, capsys):
    blocker = tmp_path / 'experiments'
    blocker.write_text('a file where the experiments folder should be')
    path = write_opt(tmp_path, tiny_data)
    for extra in ([], ['--dry-run']):
        run = train_cli(capsys, '-opt', path, *extra)
        assert run.returncode == 2
        line = one_error_line(run)
        assert 'path.experiments_root: experiment folder' in line and 'is a file' in line


def test_gen_saliency_checks_its_output_before_any_work(tmp_path, tiny_data, capsys):
    blocker = tmp_path / 'masks'
    blocker.write_text('')
    run = script_cli(capsys, 'gen_saliency', '--vis', tiny_data['vis'], '--ir', tiny_data['ir'],
              '--out', blocker / 'sub', '--workers', 0)
    assert run.returncode == 2
    assert 'mask folder' in one_error_line(run) and str(blocker) in run.stderr


def test_convert_checkpoint_checks_output_before_reading(tmp_path, capsys):
    blocker = tmp_path / 'out'
    blocker.write_text('')
    junk = tmp_path / 'junk.pth'
    junk.write_text('junk')
    run = script_cli(capsys, 'convert_checkpoint', '--input', junk, '--output', blocker / 'x.pth', '--to', 'ours')
    assert run.returncode == 2
    line = one_error_line(run)
    assert 'out' in line and 'junk' not in line  # the output problem, found first


# --- 6. images declaring a huge size --------------------------------------------------------

@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.tif'])
@pytest.mark.parametrize('shape', [(17, 23), (9, 31, 3)])
def test_declared_size_reads_headers(tmp_path, ext, shape):
    from basicsr.utils.image_header import declared_size
    path = tmp_path / f"img{ext}"
    cv2.imwrite(str(path), np.zeros(shape, np.uint8))
    assert declared_size(path) == (shape[1], shape[0])


def test_huge_declared_size_refused_before_decoding(tmp_path, monkeypatch):
    path = huge_png(tmp_path / 'huge.png')
    with pytest.raises(DataError, match=r'huge\.png: image header declares 60000x60000 pixels '
                                        r'\(3600 MP\), above the limit of 100 MP'):
        read_image(path)
    small = tmp_path / 'small.png'
    cv2.imwrite(str(small), np.zeros((10, 20), np.uint8))
    monkeypatch.setenv('DGFUSION_MAX_PIXELS', '199')
    with pytest.raises(DataError, match='20x10 pixels'):
        read_image(small)
    monkeypatch.setenv('DGFUSION_MAX_PIXELS', '200')
    assert read_image(small).shape == (10, 20)


def test_train_refuses_a_huge_image_by_name(tmp_path, tiny_data, capsys):
    huge_png(tiny_data['vis'] / '001.png')
    path = write_opt(tmp_path, tiny_data)
    run = train_cli(capsys, '-opt', path)
    assert run.returncode == 2
    assert f"{tiny_data['vis'] / '001.png'} (60000x60000)" in one_error_line(run)


def test_gen_saliency_names_a_huge_image(tmp_path, tiny_data, capsys):
    huge_png(tiny_data['ir'] / '002.png')
    run = script_cli(capsys, 'gen_saliency', '--vis', tiny_data['vis'], '--ir', tiny_data['ir'],
              '--out', tmp_path / 'masks', '--workers', 0)
    assert run.returncode == 1 and 'Traceback' not in run.stderr
    assert 'error: 002: ' in run.stderr and '60000x60000' in run.stderr
    assert sorted(p.name for p in (tmp_path / 'masks').iterdir()) == ['000.png', '001.png', '003.png']


# --- 7./8. orphan temp files, resume limits, exit codes ---------------------------------------

def test_orphan_temp_checkpoints_removed_on_resume(tmp_path, tiny_data):
    path = write_opt(tmp_path, tiny_data, total_iter=2, save_freq=2)
    assert train_main(['-opt', str(path)]) == 0
    ckpts = tmp_path / 'experiments' / 'tiny' / 'checkpoints'
    orphans = [ckpts / '.iter_00000004.pth.0123456789ab.tmp', ckpts / '.latest.tmp']
    for orphan in orphans:
        orphan.write_bytes(b'half a checkpoint')
    assert train_main(['-opt', str(path), '--auto-resume', '--set', 'train.total_iter=3']) == 0
    assert not any(p.exists() for p in orphans)
    assert sorted(p.name for p in ckpts.iterdir()) == ['iter_00000002.pth', 'iter_00000003.pth', 'latest']
    log = (tmp_path / 'experiments' / 'tiny' / 'train_tiny.log').read_text()
    assert 'removed 2 temporary checkpoint file(s)' in log


def test_resume_past_total_iter_is_an_error(tmp_path, tiny_data, capsys):
    path = write_opt(tmp_path, tiny_data, total_iter=4, save_freq=4)
    assert train_main(['-opt', str(path)]) == 0
    ckpt = tmp_path / 'experiments' / 'tiny' / 'checkpoints' / 'iter_00000004.pth'
    for extra in ([], ['--dry-run']):
        run = train_cli(capsys, '-opt', path, '--auto-resume', '--set', 'train.total_iter=2', *extra)
        assert run.returncode == 2
        assert f"{ckpt} is at iteration 4, beyond train.total_iter 2" in one_error_line(run)
    assert 'iter_00000004.pth' == (ckpt.parent / 'latest').read_text()
    # at exactly total_iter there is nothing left to do: done, so a retry loop ends
    assert train_main(['-opt', str(path), '--auto-resume']) == 0


# --- 9. --set, help text, one line per problem --------------------------------------------------

def test_set_accepts_documented_keys_missing_from_the_file(tmp_path, tiny_data):
    path = write_opt(tmp_path, tiny_data)
    opt = load_options(path, overrides=[
        'datasets.train.use_hflip=false', 'datasets.train.mask_mode=weighted',
        'train.optim_g.weight_decay=0.01', 'val.max_images=2']).opt
    assert opt['datasets']['train']['use_hflip'] is False
    assert opt['datasets']['train']['mask_mode'] == 'weighted'
    assert opt['train']['optim_g']['weight_decay'] == 0.01
    assert opt['val']['max_images'] == 2
    msg = problems(path, overrides=['datasets.train.use_hflp=false', 'train.optim_g.weight_decay=-1'])
    assert "no existing key 'datasets.train.use_hflp'; did you mean datasets.train.use_hflip?" in msg
    assert 'train.optim_g.weight_decay: must be >= 0, got -1' in msg


def write_test_options(tmp_path: Path, data, convention: str = 'cddfuse') -> Path:
    ckpt = tmp_path / 'model.pth'
    torch.save({'params': {}}, ckpt)
    path = tmp_path / 'test.yml'
    path.write_text(f"""name: t
device: cpu
datasets:
  test_1:
    dataroot_vis: {data['vis']}
    dataroot_ir: {data['ir']}
path:
  results_root: {tmp_path / 'results'}
  pretrain_network_g: {ckpt}
val:
  metrics:
    names: [EN, SD, SF, MI, SCD, VIF, Qabf, SSIM]
    convention: {convention}
""")
    return path


def test_test_options_take_max_images_and_report_a_bad_convention_once(tmp_path, tiny_data):
    path = write_test_options(tmp_path, tiny_data)
    opt = load_options(path, is_train=False, overrides=['val.max_images=1']).opt
    assert opt['val']['max_images'] == 1
    msg = problems(write_test_options(tmp_path, tiny_data, 'cdfuse'), is_train=False)
    assert msg.count(' is not ') == 1 and "val.metrics.convention: 'cdfuse' is not one of" in msg


def test_help_examples_fit_the_script(capsys):
    from basicsr.test import parse_args as test_args
    from basicsr.train import parse_args as train_args
    helps = []
    for parse_args in (train_args, test_args):
        capsys.readouterr()
        with pytest.raises(SystemExit):
            parse_args(['--help'])
        helps.append(' '.join(capsys.readouterr().out.split()))  # argparse wraps lines
    train_help, test_help = helps
    assert '--set train.total_iter=1000' in train_help and '--auto-resume' in train_help
    assert 'train.total_iter' not in test_help and '--set device=cpu' in test_help
