"""Inference precision: ``fuse(..., precision=)``, ``scripts/fuse.py --precision``, ``val.precision``
of test.py and training validation, and the bf16-vs-fp32 agreement tool."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.inference import fuse, load_network, read_pair
from basicsr.models import precision as precision_mod
from basicsr.models.precision import bf16_autocast_available
from basicsr.options import load_options
from basicsr.test import main as run_test_cli
from basicsr.tools import precision_check
from basicsr.tools.fuse import main as fuse_main
from basicsr.train import main as train_main
from basicsr.utils.color import merge_luma, split_luma
from basicsr.utils.errors import ConfigError
from basicsr.utils.img_util import tensor2img
from tests.conftest import train_options, write_pairs
from tests.test_test_script import write_test_options

CPU = torch.device('cpu')
BF16_UNIT_ROUNDOFF = 2.0 ** -8  # bfloat16 keeps 8 significant bits (7 stored)
needs_bf16_autocast = pytest.mark.skipif(not bf16_autocast_available(CPU),
                                         reason='bfloat16 autocast does not run on this CPU')


def _net(channels: int = 3, seed: int = 0) -> DGFusion:
    torch.manual_seed(seed)
    return DGFusion(channels).train(False)


def _inputs(h: int, w: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g), torch.rand(1, 1, h, w, generator=g)


def _checkpoint(path: Path, channels: int = 2, seed: int = 0) -> Path:
    torch.save(_net(channels, seed).state_dict(), path)
    return path


def _native_bf16(monkeypatch, native: bool) -> None:
    """Make this CPU count as computing bfloat16 natively (or not)."""
    monkeypatch.setattr(precision_mod, 'cpu_has_native_bf16', lambda: native)


# ---------------------------------------------------------------- fuse(..., precision=)

def test_fp32_is_the_plain_float32_pipeline_bit_for_bit():
    net = _net()
    vis, ir = _inputs(24, 32)
    with torch.inference_mode():
        vis_y, cbcr = split_luma(vis)
        expected = merge_luma(net(vis_y, ir), cbcr)
    assert torch.equal(fuse(net, vis, ir), expected)
    assert torch.equal(fuse(net, vis, ir, precision='fp32'), expected)


@needs_bf16_autocast
@pytest.mark.parametrize('channels, size', [(2, (24, 32)), (3, (33, 47)), (4, (48, 64))])
def test_bf16_network_output_agrees_with_fp32_within_bf16_rounding(channels, size):
    net = _net(channels, seed=channels)
    vis, ir = _inputs(*size, seed=channels)
    vis_y = split_luma(vis)[0]
    with torch.inference_mode():
        out32 = net(vis_y, ir)
        with precision_mod.autocast('bf16', CPU):
            out16 = net(vis_y, ir).float()
    span = float(out32.max() - out32.min())
    err = (out16 - out32).abs()
    assert not torch.equal(out16, out32)  # the convolutions did run in bfloat16
    # rounding to 8 significant bits is at most one unit roundoff (0.39 %) per operation; over
    # the network's layers the mean error stays within one unit of the output range and the
    # largest within a few
    assert float(err.mean()) <= BF16_UNIT_ROUNDOFF * span
    assert float(err.max()) <= 8 * BF16_UNIT_ROUNDOFF * span


@needs_bf16_autocast
def test_bf16_fuse_returns_float32_in_range_close_to_fp32():
    net = _net(2)
    vis, ir = _inputs(20, 28)
    out32, out16 = fuse(net, vis, ir), fuse(net, vis, ir, precision='bf16')
    assert out16.dtype == torch.float32 and out16.shape == out32.shape
    assert float(out16.min()) >= 0 and float(out16.max()) <= 1
    assert float((out16 - out32).abs().max()) <= 8 * BF16_UNIT_ROUNDOFF
    tiled = fuse(net, vis, ir, tile=32, overlap=8, precision='bf16')  # one tile: the same call
    assert torch.equal(tiled, out16)


# ---------------------------------------------------------------- scripts/fuse.py --precision

@pytest.fixture
def fuse_case(tmp_path):
    data = write_pairs(tmp_path / 'data', n=1, size=(20, 24), masks=False)
    return {'vis': data['vis'] / '000.png', 'ir': data['ir'] / '000.png',
            'ckpt': _checkpoint(tmp_path / 'net.pth'), 'out': tmp_path / 'out'}


def _fuse_args(case, out_name: str, *extra: str):
    return ['--weights', str(case['ckpt']), '--vis', str(case['vis']), '--ir', str(case['ir']),
            '--out', str(case['out'] / out_name), '--device', 'cpu', *extra]


def test_fuse_refuses_bf16_on_a_cpu_without_native_bf16(fuse_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, False)
    assert fuse_main(_fuse_args(fuse_case, 'a.png', '--precision', 'bf16')) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: --precision: bf16 is not supported here') and '\n' not in err
    assert not (fuse_case['out'] / 'a.png').exists()


def test_fuse_refuses_fp16_on_the_cpu_and_unknown_values(fuse_case, capsys):
    assert fuse_main(_fuse_args(fuse_case, 'a.png', '--precision', 'fp16')) == 2
    assert capsys.readouterr().err.strip().startswith('error: --precision: fp16 needs a CUDA device')
    with pytest.raises(SystemExit) as exc:
        fuse_main(_fuse_args(fuse_case, 'a.png', '--precision', 'fp64'))
    assert exc.value.code == 2
    assert "--precision: invalid choice: 'fp64'" in capsys.readouterr().err


@pytest.mark.parametrize('engine, extra', [('onnx', ['--weights', 'net.onnx']), ('average', [])])
def test_fuse_refuses_bf16_for_engines_without_a_torch_network(tmp_path, engine, extra, capsys):
    data = write_pairs(tmp_path / 'data', n=1, size=(20, 24), masks=False)
    code = fuse_main(['--vis', str(data['vis'] / '000.png'), '--ir', str(data['ir'] / '000.png'),
                      '--out', str(tmp_path / 'o.png'), '--engine', engine, '--precision', 'bf16',
                      *[str(tmp_path / e) if e.endswith('.onnx') else e for e in extra]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f'error: --precision: bf16 is for --engine torch; --engine {engine}')
    assert '\n' not in err


@needs_bf16_autocast
def test_fuse_bf16_runs_where_native_and_fp32_is_the_default(fuse_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, True)
    assert fuse_main(_fuse_args(fuse_case, 'default.png')) == 0
    assert fuse_main(_fuse_args(fuse_case, 'fp32.png', '--precision', 'fp32')) == 0
    assert fuse_main(_fuse_args(fuse_case, 'bf16.png', '--precision', 'bf16')) == 0
    capsys.readouterr()
    read = {name: cv2.imread(str(fuse_case['out'] / f'{name}.png')) for name in ('default', 'fp32', 'bf16')}
    assert np.array_equal(read['default'], read['fp32'])
    # the same pair fused here in bf16 and fp32, quantised as fuse.py writes it
    pair = read_pair(fuse_case['vis'], fuse_case['ir'])
    net = _net(2)
    expected = {p: tensor2img(fuse(net, pair.vis[None], pair.ir[None], precision=p))
                for p in ('fp32', 'bf16')}
    assert np.array_equal(read['fp32'][..., ::-1], expected['fp32'])
    assert np.array_equal(read['bf16'][..., ::-1], expected['bf16'])
    assert not np.array_equal(expected['fp32'], expected['bf16'])  # the flag did change the arithmetic


# ---------------------------------------------------------------- val.precision (test.py, training)

def _test_options(tmp_path: Path, precision: str) -> Path:
    data = write_pairs(tmp_path / 'test', n=2, size=(17, 23), masks=False, seed=3)
    return write_test_options(tmp_path, data, _checkpoint(tmp_path / 'net.pth'),
                              val_extra=f'  precision: {precision}\n')


def test_test_py_refuses_bf16_without_native_support(tmp_path, monkeypatch, capsys):
    _native_bf16(monkeypatch, False)
    assert run_test_cli(['-opt', str(_test_options(tmp_path, 'bf16'))]) == 2
    err = capsys.readouterr().err
    assert 'val.precision: bf16 is not supported here' in err and 'Traceback' not in err
    assert not (tmp_path / 'results' / 'tiny_test' / 'set_a').exists()


def test_test_py_refuses_unknown_precision_in_the_options(tmp_path, capsys):
    assert run_test_cli(['-opt', str(_test_options(tmp_path, 'fp64'))]) == 2
    err = capsys.readouterr().err
    assert 'val.precision' in err and "'fp64'" in err and 'bf16' in err


@needs_bf16_autocast
def test_test_py_fuses_in_bf16_where_native(tmp_path, monkeypatch, capsys):
    _native_bf16(monkeypatch, True)
    opt = _test_options(tmp_path, 'bf16')
    assert run_test_cli(['-opt', str(opt)]) == 0
    out = tmp_path / 'results' / 'tiny_test' / 'set_a'
    net = _net(2)
    for stem in ('000', '001'):
        pair = read_pair(tmp_path / 'test' / 'vis' / f'{stem}.png', tmp_path / 'test' / 'ir' / f'{stem}.png')
        expected = tensor2img(fuse(net, pair.vis[None], pair.ir[None], precision='bf16'))
        assert np.array_equal(cv2.imread(str(out / f'{stem}.png'))[..., ::-1], expected)
    # the same options with --set val.precision=fp32 write the fp32 images
    assert run_test_cli(['-opt', str(opt), '--set', 'val.precision=fp32']) == 0
    pair = read_pair(tmp_path / 'test' / 'vis' / '000.png', tmp_path / 'test' / 'ir' / '000.png')
    fp32 = tensor2img(fuse(net, pair.vis[None], pair.ir[None]))
    assert np.array_equal(cv2.imread(str(out / '000.png'))[..., ::-1], fp32)
    assert not np.array_equal(fp32, tensor2img(fuse(net, pair.vis[None], pair.ir[None], precision='bf16')))
    capsys.readouterr()


def test_training_options_check_val_precision(tmp_path, tiny_data, monkeypatch):
    _native_bf16(monkeypatch, False)
    path = tmp_path / 'train.yml'
    path.write_text(train_options(tmp_path, tiny_data))
    assert load_options(path).opt['val']['precision'] == 'fp32'  # the default
    with pytest.raises(ConfigError, match=r'val\.precision: bf16 is not supported here'):
        load_options(path, overrides=['val.precision=bf16'])
    _native_bf16(monkeypatch, True)
    assert load_options(path, overrides=['val.precision=bf16']).opt['val']['precision'] == 'bf16'


@needs_bf16_autocast
def test_training_validation_fuses_with_val_precision(tmp_path, tiny_data, tiny_val, monkeypatch):
    _native_bf16(monkeypatch, True)
    path = tmp_path / 'train.yml'
    path.write_text(train_options(tmp_path, tiny_data, val=tiny_val, total_iter=2, save_freq=2, val_freq=2))
    assert train_main(['-opt', str(path), '--set', 'val.precision=bf16']) == 0
    exp = tmp_path / 'experiments' / 'tiny'
    net = load_network(next((exp / 'checkpoints').glob('*2.pth')))  # its EMA weights, as validated
    differs = False
    for stem in ('000', '001'):
        pair = read_pair(tiny_val['vis'] / f'{stem}.png', tiny_val['ir'] / f'{stem}.png')
        expected = tensor2img(fuse(net, pair.vis[None], pair.ir[None], precision='bf16'))
        written = cv2.imread(str(exp / 'visualization' / 'iter_00000002' / f'{stem}.png'))
        assert np.array_equal(written[..., ::-1], expected)
        differs |= not np.array_equal(expected, tensor2img(fuse(net, pair.vis[None], pair.ir[None])))
    assert differs  # bf16 and fp32 give other 8-bit images here, so the check tells them apart


# ---------------------------------------------------------------- scripts/precision_check.py

def test_agreement_of_8bit_images():
    ref = np.full((4, 5, 3), 100, np.uint8)
    assert precision_check.agreement(ref, ref) == (math.inf, 0)
    psnr, diff = precision_check.agreement(ref + 1, ref)  # one level everywhere: MSE 1
    assert psnr == pytest.approx(20 * math.log10(255)) and diff == 1
    img = ref.copy()
    img[0, 0, 0] = 90  # one pixel 10 levels off out of 60 values: MSE 100 / 60
    psnr, diff = precision_check.agreement(img, ref)
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 * 60 / 100)) and diff == 10


@pytest.fixture
def check_case(tmp_path):
    data = write_pairs(tmp_path / 'data', n=3, size=(20, 24), masks=False, seed=7)
    return {'vis': data['vis'], 'ir': data['ir'], 'ckpt': _checkpoint(tmp_path / 'net.pth'),
            'csv': tmp_path / 'out' / 'agreement.csv'}


def _check_args(case, *extra: str):
    return ['--vis', str(case['vis']), '--ir', str(case['ir']), '--weights', str(case['ckpt']),
            '--device', 'cpu', '--csv', str(case['csv']), *extra]


def test_precision_check_refuses_emulated_bf16_without_the_flag(check_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, False)
    assert precision_check.main(_check_args(check_case)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: bf16 is not supported here') and '--allow-emulated-bf16' in err
    assert '\n' not in err and not check_case['csv'].exists()


@needs_bf16_autocast
def test_precision_check_table_matches_the_fused_images(check_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, False)
    assert precision_check.main(_check_args(check_case, '--allow-emulated-bf16', '--min-psnr', '0',
                                            '--max-diff', '255')) == 0
    out = capsys.readouterr()
    assert 'timings are meaningless' in out.err
    assert 'minimum PSNR' in out.out and 'maximum difference' in out.out
    rows = {r['image']: r for r in csv.DictReader(open(check_case['csv']))}
    assert [s for s in rows if s != 'mean'] == ['000', '001', '002']
    net = _net(2)
    for stem in ('000', '001', '002'):
        pair = read_pair(check_case['vis'] / f'{stem}.png', check_case['ir'] / f'{stem}.png')
        images = [tensor2img(fuse(net, pair.vis[None], pair.ir[None], precision=p)) for p in ('fp32', 'bf16')]
        diff = np.abs(images[1].astype(int) - images[0].astype(int))
        mse = float(np.mean(diff.astype(float) ** 2))
        assert int(float(rows[stem]['max_diff'])) == diff.max()
        psnr = rows[stem]['psnr_db']
        assert (psnr == 'n/a' and mse == 0) or float(psnr) == pytest.approx(10 * math.log10(255 ** 2 / mse))


@needs_bf16_autocast
def test_precision_check_names_the_pairs_outside_the_bounds(check_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, True)  # native: no flag needed
    (check_case['ir'] / '002.png').unlink()  # 002 has no infrared image
    assert precision_check.main(_check_args(check_case, '--min-psnr', '1000')) == 1
    err = capsys.readouterr().err
    assert 'failed: 000: PSNR' in err and 'failed: 001: PSNR' in err and 'failed: 002:' in err
    assert err.strip().splitlines()[-1] == '3 pair(s) failed: 002, 000, 001'


def test_precision_check_bad_arguments(check_case, monkeypatch, capsys):
    _native_bf16(monkeypatch, True)
    with pytest.raises(SystemExit) as exc:
        precision_check.main(_check_args(check_case, '--max-diff', '-1'))
    assert exc.value.code == 2 and '--max-diff must be >= 0' in capsys.readouterr().err
    code = precision_check.main(['--vis', str(check_case['vis']), '--ir', str(check_case['ir']),
                                 '--weights', str(check_case['ckpt']), '--device', 'cpu',
                                 '--csv', str(check_case['vis'] / 'x.csv')])
    assert code == 2 and 'error: --csv' in capsys.readouterr().err
