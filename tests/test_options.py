"""Option files: shipped files validate; every kind of mistake gets its one-line message."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from basicsr.utils.errors import ConfigError
from basicsr.options import load_options
from basicsr.utils.yaml_io import load_yaml_text
from tests.conftest import REPO, train_options


def write(tmp_path: Path, text: str, name: str = 'opt.yml') -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        load_options(path, **kw)
    return str(info.value)


def materialise_paths(opt_file: Path, root: Path) -> Path:
    """Create every data folder (one pair named ``000``) and checkpoint ``opt_file`` refers to,
    relative to a working folder under ``root`` deep enough for its ``../`` paths; return it."""
    import cv2
    import numpy as np
    import torch
    from basicsr.utils.yaml_io import load_yaml_file
    from basicsr.data.layouts import get_layout
    opt = load_yaml_file(opt_file)
    for ds in opt['datasets'].values():  # a benchmark layout: its own folders under root
        if 'layout' in ds:
            group = get_layout(ds['layout']).folders(Path(ds['root']), ds.get('split'))[0]
            ds.update(dataroot_vis=str(group.vis), dataroot_ir=str(group.ir))
            if group.mask is not None and 'dataroot_mask' not in ds:
                ds['dataroot_mask'] = str(group.mask)
    roots = [ds[k] for ds in opt['datasets'].values()
             for k in ('dataroot_vis', 'dataroot_ir', 'dataroot_mask') if k in ds]
    ckpt = (opt.get('path') or {}).get('pretrain_network_g')
    ups = max([Path(p).parts.count('..') for p in roots + ([ckpt] if ckpt else [])] + [0])
    cwd = root.joinpath(*['w'] * ups) if ups else root
    rng = np.random.default_rng(0)
    for ds in opt['datasets'].values():
        side = ds.get('patch_size', 16)
        for key, channels in (('dataroot_vis', 3), ('dataroot_ir', 1), ('dataroot_mask', 1)):
            if ds.get(key) in (None, 'auto', 'none'):
                continue
            folder = cwd / ds[key]
            folder.mkdir(parents=True, exist_ok=True)
            shape = (side, side, channels) if channels == 3 else (side, side)
            cv2.imwrite(str(folder / '000.png'), rng.integers(0, 256, shape, dtype=np.uint8))
    if ckpt:
        target = cwd / ckpt / 'iter_1.pth' if not ckpt.endswith('.pth') else cwd / ckpt
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save({'params': {}}, target)
    return cwd


@pytest.mark.parametrize('opt_file', sorted(str(p.relative_to(REPO)) for p in (REPO / 'options').rglob('*.yml')))
def test_shipped_option_files_validate(opt_file, tmp_path):
    script = 'train.py' if '/train/' in opt_file else 'test.py'
    cmd = [sys.executable, str(REPO / script), '-opt', str(REPO / opt_file), '--dry-run']
    # --dry-run checks the data folders: run in a folder holding every path the file names
    cwd = materialise_paths(REPO / opt_file, tmp_path)
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert 'Traceback' not in run.stderr
    assert f"ok: {REPO / opt_file} is valid" in run.stderr
    assert 'name:' in run.stdout  # the resolved options are printed
    assert not (cwd / 'experiments').exists() or script == 'test.py'  # dry run writes nothing
    assert not (cwd / 'results').exists()


def test_scientific_notation_is_a_float():
    assert load_yaml_text('lr: 1e-4\nx: 3e5\ny: 1.5\nz: 12\nw: "1e-4"') == {
        'lr': 1e-4, 'x': 3e5, 'y': 1.5, 'z': 12, 'w': '1e-4'}


def test_valid_tiny_file_and_defaults(tmp_path, tiny_data):
    loaded = load_options(write(tmp_path, train_options(tmp_path, tiny_data)))
    opt = loaded.opt
    assert opt['train']['optim_g']['lr'] == pytest.approx(1e-3)
    assert opt['train']['grad_clip'] is None           # default filled
    assert opt['datasets']['train']['phase'] == 'train'
    assert opt['model_type'] == 'FusionModel'


def test_typo_unknown_key_suggests(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('    enlarge_ratio: 2', '    use_flip: true')
    msg = problems(write(tmp_path, text))
    assert 'datasets.train.use_flip: unknown option for PairedFusionDataset; did you mean ' \
           'datasets.train.use_hflip?' in msg


def test_top_level_typo(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('manual_seed:', 'manual_sed:')
    msg = problems(write(tmp_path, text))
    assert 'manual_sed: unknown key; did you mean manual_seed?' in msg


def test_wrong_type(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('total_iter: 5', 'total_iter: five')
    msg = problems(write(tmp_path, text))
    assert "train.total_iter: expected integer, got str 'five'" in msg


def test_missing_required(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('  total_iter: 5\n', '')
    msg = problems(write(tmp_path, text))
    assert 'train.total_iter: missing required key (integer)' in msg


def test_missing_dataset_folder_is_the_same_error_with_dry_run(tmp_path, tiny_data, capsys):
    from basicsr.train import main as train_main
    data = dict(tiny_data, ir=tmp_path / 'nope')
    path = write(tmp_path, train_options(tmp_path, data))
    msg = problems(path)
    assert f"datasets.train.dataroot_ir: folder '{tmp_path / 'nope'}' does not exist" in msg
    assert problems(path, dry_run=True) == msg
    printed = []
    for extra in ([], ['--dry-run']):
        capsys.readouterr()
        assert train_main(['-opt', str(path)] + extra) == 2
        printed.append(capsys.readouterr().err)
    assert printed[0] == printed[1] == f"error: {msg}\n"


def test_unknown_registry_names(tmp_path, tiny_data):
    text = (train_options(tmp_path, tiny_data).replace('type: DGFusion', 'type: DGFusoin')
            .replace('type: MaxIntensityLoss', 'type: MaxIntensityLos'))
    msg = problems(write(tmp_path, text))
    # other networks may be registered too (the tests' second network)
    assert re.search(r"network_g\.type: unknown arch type 'DGFusoin' \(available: [^)]*\bDGFusion\b"
                     r"[^)]*\); did you mean 'DGFusion'\?", msg), msg
    assert "train.losses.1.type: unknown loss type 'MaxIntensityLos'" in msg
    assert "did you mean 'MaxIntensityLoss'?" in msg


def test_every_problem_reported_in_one_go(tmp_path, tiny_data):
    text = (train_options(tmp_path, tiny_data).replace('total_iter: 5', 'total_iter: x')
            .replace('channels: 2', 'chanels: 2').replace('device: cpu', 'device: gpu'))
    msg = problems(write(tmp_path, text))
    assert '3 problems' in msg.splitlines()[0]
    assert 'network_g.chanels: unknown option for DGFusion; did you mean network_g.channels?' in msg
    assert "device: 'gpu' is not one of auto, cpu, cuda, cuda:N" in msg


def test_mask_needed_by_loss(tmp_path, tiny_data):
    mask_line = f"    dataroot_mask: {tiny_data['mask']}\n"
    text = train_options(tmp_path, tiny_data).replace(mask_line, '    dataroot_mask: none\n')
    msg = problems(write(tmp_path, text))
    assert 'datasets.train.dataroot_mask: required by SaliencyMaskL1Loss' in msg
    # absent means: compute the masks on the fly
    loaded = load_options(write(tmp_path, train_options(tmp_path, tiny_data).replace(mask_line, '')))
    assert 'dataroot_mask' not in loaded.opt['datasets']['train']


def test_set_overrides_existing_keys_only(tmp_path, tiny_data):
    path = write(tmp_path, train_options(tmp_path, tiny_data))
    opt = load_options(path, overrides=['train.total_iter=7', 'train.optim_g.lr=2e-4',
                                        "name=__import__('os').getcwd()"]).opt
    assert opt['train']['total_iter'] == 7 and opt['train']['optim_g']['lr'] == 2e-4
    assert opt['name'] == "__import__('os').getcwd()"  # a string, never evaluated
    msg = problems(path, overrides=['train.total_iters=7'])
    assert "--set train.total_iters: no existing key 'train.total_iters'; did you mean train.total_iter?" in msg
    msg = problems(path, overrides=['train.total_iter=abc'])
    assert "train.total_iter: expected integer, got str 'abc'" in msg


def test_bad_yaml_and_missing_file(tmp_path):
    msg = problems(write(tmp_path, 'name: [unclosed\n'))
    assert 'invalid YAML' in msg and 'line' in msg
    msg = problems(tmp_path / 'absent.yml')
    assert 'absent.yml: cannot read option file' in msg


def test_cli_reports_without_traceback(tmp_path, tiny_data):
    text = train_options(tmp_path, tiny_data).replace('    enlarge_ratio: 2', '    use_flip: true')
    path = write(tmp_path, text)
    run = subprocess.run([sys.executable, 'train.py', '-opt', str(path)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert 'Traceback' not in run.stderr
    assert run.stderr.startswith('error: ') and 'did you mean datasets.train.use_hflip?' in run.stderr


@pytest.mark.parametrize('old,new,expected', [
    ('print_freq: 1', 'print_freq: 0', 'logger.print_freq: must be >= 1, got 0'),
    ('batch_size_per_gpu: 2', 'batch_size_per_gpu: 0', 'datasets.train.batch_size_per_gpu: must be >= 1, got 0'),
    ('lr: 1e-3', 'lr: abc', "train.optim_g.lr: expected integer or number, got str 'abc'"),
    ('milestones: [3]', 'milestones: abc', "train.scheduler.milestones: expected a list of iteration numbers"),
    ('channels: 2', 'channels: 0', 'network_g.channels: must be >= 1, got 0'),
    ('phase: train', 'phase: val', "datasets.train.phase: 'val' for the train set; expected 'train'"),
    ('loss_weight: 3.0', 'loss_weight: -1', 'train.losses.0.loss_weight: must be >= 0, got -1'),
    ('loss_weight: 3.0', 'loss_weight: 3.0, formula: nope', 'train.losses.0: rejected: SaliencyMaskL1Loss.formula'),
])
def test_values_constructors_would_reject(tmp_path, tiny_data, old, new, expected):
    text = train_options(tmp_path, tiny_data)
    assert old in text
    msg = problems(write(tmp_path, text.replace(old, new, 1)), dry_run=True)
    assert expected in msg


@pytest.mark.parametrize('section', ['train: 5', 'val: 3', 'logger: [1]'])
def test_scalar_sections(tmp_path, tiny_data, section):
    text = train_options(tmp_path, tiny_data)
    key = section.split(':')[0]
    lines, out, skipping = text.splitlines(), [], False
    for line in lines:  # drop the whole section, put the scalar instead
        if line.startswith(key + ':'):
            out.append(section)
            skipping = True
        elif skipping and line.startswith(' '):
            continue
        else:
            skipping = False
            out.append(line)
    msg = problems(write(tmp_path, '\n'.join(out) + '\n'))
    assert f"{key}: expected a mapping" in msg


def test_compile_options(tmp_path, tiny_data):
    """train.compile: off by default, true/false only (one line), settable with --set;
    train.compile_mode: one of torch.compile's modes."""
    path = write(tmp_path, train_options(tmp_path, tiny_data))
    opt = load_options(path).opt
    assert opt['train']['compile'] is False and opt['train']['compile_mode'] == 'default'
    opt = load_options(path, overrides=['train.compile=true', 'train.compile_mode=max-autotune']).opt
    assert opt['train']['compile'] is True and opt['train']['compile_mode'] == 'max-autotune'
    msg = problems(path, overrides=['train.compile=yes please'])
    assert msg == f"{path}: train.compile: expected true/false, got str 'yes please'"
    msg = problems(path, overrides=['train.compile=1'])
    assert msg == f"{path}: train.compile: expected true/false, got int 1"
    msg = problems(path, overrides=['train.compile_mode=fast'])
    assert "train.compile_mode: 'fast' is not one of default, reduce-overhead, max-autotune" in msg


def test_loader_keys_are_the_same_for_the_checker_and_the_builder():
    """The option checker fills and checks exactly the keys that build_dataset strips."""
    from basicsr.data import LOADER_KEYS
    from basicsr.options.schema import LOADER_FIELDS
    assert tuple(LOADER_FIELDS) == LOADER_KEYS
