"""Checkpoint reading/writing, published <-> ours conversion, and the converter script."""
import logging
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.published import (infer_channels, is_published_state,
                                              ours_to_published, published_to_ours)
from basicsr.inference.loader import load_network
from basicsr.utils.checkpoint import read_checkpoint, save_atomic
from basicsr.utils.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT / 'tests' / 'data' / 'dgfusion_c4.pt'
# Published dead-key prefixes, written out here from the network spec.
SPEC_DEAD_PREFIXES = ('attention_module.', 'freprocess.amp_res.', 'freprocess.pha_res.',
                      'freprocess.conv1s.', 'freprocess.conv2s.', 'freprocess.post.',
                      'interaction.subF_att.norm4.', 'interaction.fuse_att.norm4.')


@pytest.fixture(scope='module')
def parity():
    return torch.load(PARITY, map_location='cpu', weights_only=True)


def random_state(channels: int, seed: int) -> dict:
    torch.manual_seed(seed)
    return {k: torch.randn_like(v) for k, v in DGFusion(channels).state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert list(a) == list(b) or sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


# --- name mapping ---------------------------------------------------------------------------

def test_export_matches_published_layout(parity):
    published = parity['checkpoint']['params']
    exported = ours_to_published(random_state(4, 0), channels=4)
    assert {k: tuple(v.shape) for k, v in exported.items()} == \
        {k: tuple(v.shape) for k, v in published.items()}
    dead = [k for k in exported if k.startswith(SPEC_DEAD_PREFIXES)]
    assert len(dead) == 38
    assert all(not exported[k].any() for k in dead)


def test_published_size_at_c16():
    exported = ours_to_published(DGFusion(16).state_dict(), channels=16)
    assert sum(v.numel() for v in exported.values()) == 4_275_859  # figure from the spec


def test_round_trip_bit_identical():
    ours = random_state(2, 1)
    back = published_to_ours(ours_to_published(ours, channels=2))
    assert_same_state(ours, back)
    ours64 = {k: v.double() for k, v in ours.items()}
    assert_same_state(ours64, published_to_ours(ours_to_published(ours64, channels=2)))


def test_published_names_map_onto_ours(parity):
    published = parity['checkpoint']['params']
    ours = published_to_ours(published)
    assert sorted(ours) == sorted(DGFusion(4).state_dict())
    assert torch.equal(ours['enhancer.vis_encoder.0.weight'], published['freprocess.pre1.0.weight'])
    assert torch.equal(ours['extractor.frequency.norm_qk.weight'],
                       published['interaction.subF_att.norm1.body.weight'])
    assert torch.equal(ours['extractor.spatial.wv.2.bias'],
                       published['interaction.fuse_att.wv.2.bias'])
    assert torch.equal(ours['fusion.gate.1.weight'], published['interaction.fuse.1.weight'])
    assert torch.equal(ours['reconstruction.2.bias'], published['final_conv.2.bias'])


def test_detection_and_channels(parity):
    published = parity['checkpoint']['params']
    assert is_published_state(published)
    assert is_published_state({'module.' + k: v for k, v in published.items()})
    assert not is_published_state(random_state(2, 0))
    assert infer_channels(published) == 4
    assert infer_channels({'_orig_mod.' + k: v for k, v in random_state(3, 0).items()}) == 3
    with pytest.raises(CheckpointError, match='cannot infer'):
        infer_channels({'weight': torch.zeros(2, 1, 3, 3)})


# --- load_network ---------------------------------------------------------------------------

def test_load_published_drops_dead_keys_once(parity, tmp_path, caplog):
    path = tmp_path / 'pub.pth'
    torch.save({'params': {'module.' + k: v for k, v in parity['checkpoint']['params'].items()}},
               path)
    caplog.set_level(logging.INFO, logger='basicsr.utils.checkpoint')
    net = load_network(path)
    assert not net.training and net.channels == 4
    drops = [r.getMessage() for r in caplog.records if 'dropped' in r.getMessage()]
    # C=4: attention_module 55,616 + amp/pha_res 9,248 + conv1s/2s 9,280 + post 148 + norm4 64
    assert len(drops) == 1 and '38' in drops[0] and '74356' in drops[0]


def test_load_training_checkpoint_prefers_ema(tmp_path):
    params, ema = random_state(2, 2), random_state(2, 3)
    ckpt = {'format': 'dgfusion-ckpt-v1', 'network_g': {'type': 'DGFusion', 'channels': 2},
            'params': {'module.' + k: v for k, v in params.items()},
            'params_ema': {'_orig_mod.' + k: v for k, v in ema.items()},
            'iter': 7, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4}]},
            'scheduler': {'last_epoch': 7}, 'rng': {'torch': torch.get_rng_state()},
            'config': {'name': 'demo'}}
    path = tmp_path / 'train.pth'
    save_atomic(ckpt, path)
    assert_same_state(load_network(path).state_dict(), ema)
    assert_same_state(load_network(path, use_ema=False).state_dict(), params)
    bare = tmp_path / 'bare.pth'
    torch.save(params, bare)
    assert_same_state(load_network(bare).state_dict(), params)


def test_network_g_channels_conflict_is_reported(tmp_path):
    path = tmp_path / 'c.pth'
    torch.save({'network_g': {'type': 'DGFusion', 'channels': 4}, 'params': random_state(2, 0)},
               path)
    with pytest.raises(CheckpointError, match=r'channels=4.*mis-shaped'):
        load_network(path)


def test_misshaped_key_named_with_both_shapes(parity, tmp_path):
    state = dict(parity['checkpoint']['params'])
    state['interaction.fuse.0.weight'] = torch.zeros(8, 16, 3, 3)  # a C=2 tensor in a C=4 file
    path = tmp_path / 'bad.pth'
    torch.save({'params': state}, path)
    with pytest.raises(CheckpointError) as err:
        load_network(path)
    msg = str(err.value)
    assert '\n' not in msg and str(path) in msg
    assert 'interaction.fuse.0.weight expected (16, 32, 3, 3) found (8, 16, 3, 3)' in msg


def test_missing_and_unexpected_keys(parity, tmp_path):
    state = dict(parity['checkpoint']['params'])
    del state['final_conv.2.bias']
    state['attention_module.extra.weight'] = torch.zeros(3)  # not a known-dead key
    path = tmp_path / 'keys.pth'
    torch.save({'params': state}, path)
    with pytest.raises(CheckpointError, match=r'missing 1 keys \(final_conv\.2\.bias\).*'
                                              r'unexpected 1 keys \(attention_module\.extra'):
        load_network(path)


def test_other_architecture_refused(tmp_path):
    path = tmp_path / 'conv.pth'
    torch.save({'params': torch.nn.Conv2d(3, 4, 3).state_dict()}, path)
    with pytest.raises(CheckpointError,
                       match=r'missing \d+ keys.*unexpected 2 keys \(weight, bias\)'):
        load_network(path)


class _Payload:
    def __init__(self):
        self.x = 1


class _StateSubclass(OrderedDict):
    pass


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), 'w'))  # would create a file when unpickled


@pytest.mark.parametrize('kind', ['truncated', 'text', 'object', 'dict_subclass', 'exploit',
                                  'tensor'])
def test_unloadable_files_refused(kind, tmp_path):
    path, marker = tmp_path / f'{kind}.pth', tmp_path / 'unpickled'
    if kind == 'truncated':
        torch.save({'params': random_state(1, 0)}, path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == 'text':
        path.write_text('name: not a checkpoint\n')
    elif kind == 'object':
        torch.save({'params': _Payload()}, path)
    elif kind == 'dict_subclass':
        torch.save(_StateSubclass(w=torch.zeros(1)), path)
    elif kind == 'exploit':
        torch.save({'params': _Exploit(marker)}, path)
    else:
        torch.save(torch.zeros(3), path)
    for fn in (read_checkpoint, load_network):
        with pytest.raises(CheckpointError, match=r'not a loadable checkpoint \(') as err:
            fn(path)
        assert str(err.value).startswith(str(path)) and '\n' not in str(err.value)
        if kind in ('object', 'dict_subclass', 'exploit'):
            assert 'weights_only loading refuses' in str(err.value)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint file'):
        load_network(tmp_path / 'absent.pth')


# --- save_atomic ----------------------------------------------------------------------------

def test_save_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / 'sub' / 'ckpt.pth'
    save_atomic({'iter': 1, 'w': torch.arange(3)}, path)
    save_atomic({'iter': 2, 'w': torch.arange(4)}, path)
    obj = read_checkpoint(path)
    assert obj['iter'] == 2 and torch.equal(obj['w'], torch.arange(4))
    with pytest.raises((AttributeError, pickle.PicklingError)):  # by Python version
        save_atomic({'iter': 3, 'bad': lambda: 0}, path)  # lambdas cannot be pickled
    assert read_checkpoint(path)['iter'] == 2
    assert [p.name for p in path.parent.iterdir()] == ['ckpt.pth']


# --- scripts/convert_checkpoint.py ----------------------------------------------------------

def run_convert(*args):
    return subprocess.run([sys.executable, 'scripts/convert_checkpoint.py', *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_convert_script_both_directions(parity, tmp_path):
    src = tmp_path / 'pub.pth'
    torch.save(parity['checkpoint'], src)
    ours, back = tmp_path / 'ours.pth', tmp_path / 'back.pth'
    r = run_convert('--input', src, '--output', ours, '--to', 'ours')
    assert r.returncode == 0, r.stderr
    ckpt = read_checkpoint(ours)
    assert ckpt['format'] == 'dgfusion-ckpt-v1'
    assert ckpt['network_g'] == {'type': 'DGFusion', 'channels': 4}
    net = load_network(ours)
    with torch.no_grad():
        fused = net(parity['vis_y'], parity['ir'])
    assert (fused - parity['fused_y_unclamped']).abs().max() <= 1e-5

    r = run_convert('--input', ours, '--output', back, '--to', 'published', '--key', 'params')
    assert r.returncode == 0, r.stderr
    published, exported = parity['checkpoint']['params'], read_checkpoint(back)['params']
    assert sorted(exported) == sorted(published)
    for k, v in exported.items():
        expected = torch.zeros_like(v) if k.startswith(SPEC_DEAD_PREFIXES) else published[k]
        assert torch.equal(v, expected), k


def test_convert_script_errors(tmp_path):
    junk = tmp_path / 'junk.pth'
    junk.write_text('junk')
    r = run_convert('--input', junk, '--output', tmp_path / 'o.pth', '--to', 'ours')
    assert r.returncode != 0
    assert r.stderr.startswith('error: ') and r.stderr.count('\n') == 1
    assert 'Traceback' not in r.stderr and not (tmp_path / 'o.pth').exists()
