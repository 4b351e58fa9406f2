"""test.py never ignores a network_g option: a value the checkpoint contradicts is an error."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.test import main as run_test_cli
from tests.conftest import write_pairs
from tests.test_test_script import write_test_options


def options(tmp_path: Path, ckpt: Path, network_g: str = '') -> Path:
    data = write_pairs(tmp_path / 'data', n=1, size=(12, 14), masks=False)
    return write_test_options(tmp_path, data, ckpt, extra=network_g)


def ours(path: Path, channels: int) -> Path:
    torch.manual_seed(0)
    torch.save({'network_g': {'type': 'DGFusion', 'channels': channels},
                'params': DGFusion(channels=channels).state_dict()}, path)
    return path


def bare(path: Path, channels: int) -> Path:
    """A state dict without a stored network_g: the width is read from the weights."""
    torch.manual_seed(0)
    torch.save(DGFusion(channels=channels).state_dict(), path)
    return path


@pytest.mark.parametrize('make, network_g, overrides', [
    (ours, '', ['--set', 'network_g.channels=16']),
    (ours, 'network_g: {type: DGFusion, channels: 2}\n', []),
    (bare, '', ['--set', 'network_g.channels=16']),
    (bare, 'network_g:\n  type: DGFusion\n  channels: 8\n', []),
])
def test_a_network_option_the_checkpoint_contradicts_is_an_error(tmp_path, capsys, make, network_g,
                                                                 overrides):
    ckpt = make(tmp_path / 'c4.pth', 4)
    code = run_test_cli(['-opt', str(options(tmp_path, ckpt, network_g))] + overrides)
    err = capsys.readouterr().err
    asked = '16' if overrides else network_g.split('channels: ')[1].split('}')[0].strip()
    lines = [ln for ln in err.splitlines() if ln.startswith('error: ')]
    assert code == 2 and len(lines) == 1 and 'Traceback' not in err, err
    assert f"network_g.channels is {asked} in the options but 4 in the checkpoint" in lines[0]
    assert str(ckpt) in lines[0]
    assert not list((tmp_path / 'results').rglob('*.png'))  # nothing fused


@pytest.mark.parametrize('network_g, overrides', [
    ('', []),                                                 # nothing asked: the checkpoint's
    ('network_g: {type: DGFusion, channels: 4}\n', []),       # asked and equal
    ('', ['--set', 'network_g.channels=4']),
])
def test_an_agreeing_or_absent_network_option_runs(tmp_path, capsys, network_g, overrides):
    ckpt = ours(tmp_path / 'c4.pth', 4)
    code = run_test_cli(['-opt', str(options(tmp_path, ckpt, network_g))] + overrides)
    assert code == 0, capsys.readouterr().err
    assert len(list((tmp_path / 'results' / 'tiny_test' / 'set_a').glob('*.png'))) == 1
