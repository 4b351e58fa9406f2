"""Every ```bash command of README.md runs as written, so the README cannot drift.

Each block runs in a fresh working folder that mirrors the repository (code, option files,
shipped model) and holds tiny synthetic stand-ins for the data a command names: images, 16-bit
TIFFs, videos, folders of pairs, the data folders of the option files it reads, checkpoints
(``CKPT`` is a small checkpoint of ours). Commands of one block run in order, so a later one
may use what an earlier one wrote (the ONNX file of "Deploy"). Every command must exit 0.

Commands that cannot run here are listed in :data:`NOT_RUN` with the reason; a command that is
neither run nor listed fails the test, so a new README command needs one or the other.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.data.layouts import get_layout
from basicsr.utils.checkpoint import CKPT_FORMAT
from tests.conftest import REPO

README = REPO / 'README.md'
PARITY = REPO / 'tests' / 'data' / 'dgfusion_c4.pt'
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv')

# command (regular expression on the command text) -> why it is not run by this test
NOT_RUN: Dict[str, str] = {
    r'^make (demo|test|test-all|lint)\b': 'the demo training, the whole test suite (minutes) or '
                                          'the linter; CI runs them',
    r'^(python3 -m venv|\. \.venv/bin/activate|pip install)': 'creates an environment or '
                                                              'installs packages (network)',
    r'^torchrun ': 'multi-process training',
    r'^until ': 'a retry loop around the full 300k-iteration training',
    r'^python train\.py -opt options/train/DGFusion\.yml( --auto-resume| --set .*)?$':
        'the full 300k-iteration training (its --dry-run is run)',
    r'--device cuda': 'needs a CUDA GPU',
    r'^python scripts/benchmark(_metrics|_saliency)?\.py': 'a benchmark (minutes; '
                                                           'benchmark_saliency reads real cases)',
    r'^python scripts/download_data\.py (?!.*--from)': 'fetches the public sets from GitHub '
                                                       '(network); tests/test_download.py runs it '
                                                       'against a loopback server and a mirror',
    r'--layout |\.layout=': 'a benchmark layout on its own folder tree: tests/test_layouts.py '
                             'trains, tests and fuses on a miniature copy of each layout',
    r'^bash scripts/gpu_train\.sh': 'needs a CUDA GPU; tests/test_gpu_train.py runs it on the CPU '
                                     'with a tiny budget',
    r'--size 640x512': 'a fixed 640x512 export, checked against the float64 reference at that '
                       'size: minutes on a CPU (the dynamic export above is run and checked)',
}
# sections whose commands take more than a few seconds here: ONNX export with its onnxruntime
# checks; test.py on three sets at the published width, twice
SLOW_SECTIONS = ('Deploy', 'Testing')


def readme_blocks() -> List[Tuple[str, List[str]]]:
    """``(section heading, commands)`` of every bash block, continuation lines joined and
    ``;`` / ``&&`` lists split into their commands."""
    text = README.read_text(encoding='utf-8')
    blocks = []
    for match in re.finditer(r'```bash\n(.*?)```', text, re.S):
        heading = re.findall(r'^#{2,3} (.+)$', text[:match.start()], re.M)[-1]
        joined = match.group(1).replace('\\\n', ' ')
        commands = []
        for line in joined.splitlines():
            if line.strip().startswith('#') or not line.strip():
                continue
            if line.startswith(('until ', '. ')):
                commands.append(line.split('  #')[0].strip())
                continue
            words = shlex.split(line, comments=True)
            current: List[str] = []
            for word in words + [';']:
                if word in (';', '&&'):
                    if current:
                        commands.append(shlex.join(current))
                    current = []
                else:
                    current.append(word)
        blocks.append((heading, commands))
    return blocks


def not_run_reason(command: str) -> Optional[str]:
    for pattern, reason in NOT_RUN.items():
        if re.search(pattern, command):
            return reason
    return None


# ---------------------------------------------------------------- synthetic stand-ins

def write_image(path: Path, role: str, size=(24, 32), seed: int = 0, bits: int = 8) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = size + ((3,) if role == 'vis' else ())
    if bits == 16:
        img = rng.integers(6000, 13000, shape).astype(np.uint16)
    else:
        img = rng.integers(0, 256, shape).astype(np.uint8)
    assert cv2.imwrite(str(path), img)


def write_video(path: Path, size=(24, 32), frames: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = 'MJPG' if path.suffix == '.avi' else 'mp4v'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10, (size[1], size[0]))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, size + (3,)).astype(np.uint8))
    writer.release()
    assert path.stat().st_size > 0


def write_folder(folder: Path, role: str, size=(24, 32), suffix: str = '', n: int = 2,
                 bits: int = 8, masks: bool = False) -> None:
    for k in range(n):
        path = folder / f"{k:03d}{suffix}.png"
        if masks:
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), (np.random.default_rng(k).random(size) > 0.5).astype(np.uint8) * 255)
        else:
            write_image(path, role, size, seed=k + (0 if role == 'vis' else 100), bits=bits)


def write_checkpoint(path: Path) -> None:
    """A published-layout file when the name says so, else a small checkpoint of ours."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if 'published' in path.name:
        torch.save(torch.load(PARITY, map_location='cpu', weights_only=True)['checkpoint'], path)
        return
    torch.manual_seed(0)
    net = DGFusion(channels=2)
    torch.save({'format': CKPT_FORMAT, 'network_g': {'type': 'DGFusion', 'channels': 2},
                'params': net.state_dict(), 'params_ema': net.state_dict(), 'iter': 1}, path)


def write_option_data(option_file: Path, cwd: Path) -> None:
    """The data folders an option file names, relative to ``cwd`` (``../`` stays in tmp)."""
    opt = yaml.safe_load(option_file.read_text(encoding='utf-8'))
    for phase, ds in (opt.get('datasets') or {}).items():
        size = (136, 136) if phase == 'train' else (24, 32)  # training: >= patch_size
        if ds.get('layout') and isinstance(ds.get('root'), str):  # a benchmark layout's folders
            for group in get_layout(ds['layout']).folders(Path(ds['root']), ds.get('split')):
                folders = [(group.vis, 'vis'), (group.ir, 'ir')]
                if group.mask is not None and phase == 'train':
                    folders.append((group.mask, 'mask'))
                for folder, role in folders:
                    if stand_in(cwd, str(folder)):
                        write_folder(cwd / folder, role, size, masks=role == 'mask')
            continue
        for key, role in (('dataroot_vis', 'vis'), ('dataroot_ir', 'ir'), ('dataroot_mask', 'mask')):
            folder = ds.get(key)
            if isinstance(folder, str) and folder not in ('auto', 'none') and stand_in(cwd, folder):
                write_folder(cwd / folder, role, size, masks=role == 'mask')


def stand_in(cwd: Path, value: str) -> Optional[Path]:
    """Where a stand-in for input ``value`` may be written: inside the temporary folder only
    (never through a link into the repository: a README naming a file that is not shipped must
    fail), and never for a placeholder such as ``...``."""
    path = cwd / value
    if not value.strip('./') or path.exists():
        return None
    try:
        path.resolve().relative_to(cwd.parent.resolve())
    except ValueError:
        return None
    return path


def prepare(words: List[str], cwd: Path) -> List[str]:
    """Create every input the command names that is not there yet; ``CKPT`` -> a checkpoint."""
    words = ['ckpt.pth' if w == 'CKPT' else w.strip('[]') for w in words]
    words = [w for w in words if w]
    resize = '--resize' in words
    suffixes = []
    if '--fused-suffix' in words:
        i = words.index('--fused-suffix') + 1
        while i < len(words) and not words[i].startswith('--'):
            suffixes.append(words[i])
            i += 1
    for i, word in enumerate(words[:-1]):
        value = words[i + 1]
        if word == '-opt':
            write_option_data(cwd / value, cwd)
        elif word in ('--vis', '--ir'):
            role, path = word[2:], stand_in(cwd, value)
            if path is None:
                continue
            size = (20, 28) if resize and role == 'ir' else (24, 32)
            bits = 16 if '16' in value or (role == 'ir' and path.suffix == '.tif') else 8
            if path.suffix.lower() in VIDEO_EXTS:
                write_video(path)
            elif path.suffix.lower() in IMAGE_EXTS:
                write_image(path, role, size, bits=bits)
            else:
                write_folder(path, role, size, bits=bits)
        elif word == '--fused':
            j = i + 1
            while j < len(words) and not words[j].startswith('--'):
                suffix = suffixes[min(j - i - 1, len(suffixes) - 1)] if suffixes else ''
                if stand_in(cwd, words[j]) is not None:
                    write_folder(cwd / words[j], 'vis', suffix=suffix)
                j += 1
        elif word == '--compare' and '=' in value and stand_in(cwd, value.split('=', 1)[1]):
            write_folder(cwd / value.split('=', 1)[1], 'vis')
        elif word in ('--weights', '--input') and value.endswith('.pth') and stand_in(cwd, value):
            write_checkpoint(cwd / value)
    return words


def workspace(tmp_path: Path) -> Path:
    """A folder that looks like the repository: code, options and the shipped model linked."""
    cwd = tmp_path / 'repo'  # one level down, so that ../shared of an option file stays in tmp
    cwd.mkdir()
    for name in ('basicsr', 'scripts', 'options', 'pretrained_model', 'train.py', 'test.py'):
        (cwd / name).symlink_to(REPO / name)
    return cwd


def entry_point(script: str) -> Callable[[List[str]], int]:
    if script == 'train.py':
        from basicsr.train import main
        return main
    if script == 'test.py':
        from basicsr.test import main
        return main
    # the module the wrapper scripts/<name>.py runs (``from <module> import main``), imported by
    # its package name: worker processes started by spawn (gen_saliency, evaluate) import their
    # task functions from it
    tree = ast.parse((REPO / script).read_text(encoding='utf-8'))
    module = next(node.module for node in tree.body
                  if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ['main'])
    return importlib.import_module(module).main


def block_params():
    params = []
    for k, (heading, commands) in enumerate(readme_blocks()):
        marks = [pytest.mark.slow] if heading.startswith(SLOW_SECTIONS) else []
        params.append(pytest.param(heading, commands, id=f"{k}-{heading.split()[0]}", marks=marks))
    return params


def test_readme_has_the_blocks_this_test_reads():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    assert all(commands for _, commands in blocks)


@pytest.mark.parametrize('heading, commands', block_params())
def test_readme_commands_run(tmp_path, monkeypatch, capsys, heading, commands):
    if heading.startswith('Deploy'):
        pytest.importorskip('onnx')
        pytest.importorskip('onnxscript')
    cwd = workspace(tmp_path)
    monkeypatch.chdir(cwd)
    ran = 0
    for command in commands:
        if not_run_reason(command):
            continue
        words = shlex.split(command)
        assert words[0] in ('python', 'python3') and words[1].endswith('.py'), \
            f"{command!r}: neither run by this test nor listed in NOT_RUN"
        argv = prepare(words[2:], cwd)
        code = entry_point(words[1])(argv)
        out = capsys.readouterr()
        assert code == 0, f"{command!r} exited {code}:\n{out.err[-2000:]}"
        assert 'Traceback' not in out.err
        ran += 1
    if ran == 0:
        pytest.skip(f"{heading}: every command is in NOT_RUN")


def test_readme_names_only_shipped_model_files():
    """Paths under pretrained_model/ in the README are files of the repository."""
    text = README.read_text(encoding='utf-8')
    named = set(re.findall(r'pretrained_model/[\w.-]+\.(?:pth|png|md)', text))
    assert named, 'the README names the shipped model'
    assert [n for n in sorted(named) if not (REPO / n).is_file()] == []
