"""The network contract: a second network (tests/toy_network.py) runs through train.py, test.py,
fuse.py and export_onnx.py with nothing of it outside its own file; networks without a spec get
the generic behaviour."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.contract import (bytes_per_pixel, exportable_module, network_spec,
                                    prepare_compile, reference_forward)
from basicsr.inference.baselines import PixelAverage
from basicsr.inference.loader import load_network
from basicsr.test import main as run_test_cli
from basicsr.train import main as train_main
from basicsr.utils.errors import ConfigError
from tests.conftest import train_options, write_pairs
from tests.test_test_script import write_test_options
from tests.toy_network import COMPILE_PREPARED, ExportableToy, ToyFusion, toy_bytes_per_pixel


def run_tool(name: str, capsys, *args) -> Tuple[int, str, str]:
    """The command ``name`` (fuse, export_onnx) in this process: (exit status, stdout, stderr).
    The one place that knows where the commands live."""
    module = importlib.import_module(f'basicsr.tools.{name}')
    capsys.readouterr()
    status = module.main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def has(*names: str) -> bool:
    return all(importlib.util.find_spec(n) is not None for n in names)


def write_gray_pair(root: Path, size=(19, 26), seed: int = 4) -> Tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    vis, ir = root / 'vis.png', root / 'ir.png'
    cv2.imwrite(str(vis), rng.integers(0, 256, size, dtype=np.uint8))
    cv2.imwrite(str(ir), rng.integers(0, 256, size, dtype=np.uint8))
    return vis, ir


def by_hand(ckpt: Path, vis: Path, ir: Path) -> np.ndarray:
    """The 8-bit fused image of a gray pair, from the checkpoint's EMA weights and the toy
    module alone: round(clamp(net(vis, ir)) * 255)."""
    stored = torch.load(ckpt, map_location='cpu', weights_only=True)
    net = ToyFusion(**{k: v for k, v in stored['network_g'].items() if k != 'type'})
    net.load_state_dict(stored['params_ema'])
    inputs = [torch.from_numpy(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)).float()[None, None] / 255
              for p in (vis, ir)]
    with torch.no_grad():
        fused = net.train(False)(*inputs).clamp(0, 1)
    return (fused[0, 0] * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """train.py on a ToyFusion option file: (work folder, newest checkpoint file)."""
    tmp = tmp_path_factory.mktemp('toy')
    data = write_pairs(tmp / 'train')
    text = train_options(tmp, data, total_iter=2, save_freq=2)
    assert '  type: DGFusion\n  channels: 2\n' in text
    opt = tmp / 'train.yml'
    opt.write_text(text.replace('  type: DGFusion\n  channels: 2\n', '  type: ToyFusion\n  width: 3\n'))
    assert train_main(['-opt', str(opt)]) == 0
    ckpt = sorted((tmp / 'experiments' / 'tiny' / 'checkpoints').glob('*.pth'))[-1]
    stored = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert stored['network_g'] == {'type': 'ToyFusion', 'width': 3}
    assert set(stored['params_ema']) == set(ToyFusion(3).state_dict())
    return tmp, ckpt


def test_toy_network_trains_and_tests(trained, capsys):
    tmp, ckpt = trained
    data = write_pairs(tmp / 'test', n=2, size=(17, 23), masks=False, seed=5)
    opt = write_test_options(tmp, data, ckpt.parent)  # a folder: its newest checkpoint
    assert run_test_cli(['-opt', str(opt)]) == 0
    out = tmp / 'results' / 'tiny_test' / 'set_a'
    assert sorted(p.name for p in out.glob('*.png')) == ['000.png', '001.png']
    n_params = sum(p.numel() for p in ToyFusion(3).parameters())
    assert f'network parameters: {n_params:,}' in capsys.readouterr().out
    status, _, err = run_tool('fuse', capsys, '--weights', ckpt, '--vis', data['vis'],
                              '--ir', data['ir'], '--out', tmp / 'fused', '--device', 'cpu')
    assert status == 0, err
    for name in ('000.png', '001.png'):  # the same inference path in test.py and fuse.py
        assert np.array_equal(cv2.imread(str(out / name)), cv2.imread(str(tmp / 'fused' / name)))


def test_toy_network_fuses_as_by_hand(trained, capsys):
    tmp, ckpt = trained
    vis, ir = write_gray_pair(tmp / 'gray')
    status, out, err = run_tool('fuse', capsys, '--weights', ckpt, '--vis', vis, '--ir', ir,
                                '--out', tmp / 'gray_fused.png', '--device', 'cpu')
    assert status == 0, err
    assert 'ToyFusion (width=3)' in out
    written = cv2.imread(str(tmp / 'gray_fused.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written, by_hand(ckpt, vis, ir))


def test_toy_memory_model_guards_fuse(trained, capsys):
    tmp, ckpt = trained
    data = write_pairs(tmp / 'big', n=1, size=(70, 90), masks=False)
    need = toy_bytes_per_pixel(ToyFusion(3))
    budget_gib = 0.0001  # 107,374 bytes: 32x32 tiles fit, 64x64 and the whole frame do not
    assert need * 32 * 32 <= budget_gib * 2 ** 30 < need * 64 * 64
    args = ['--weights', ckpt, '--vis', data['vis'] / '000.png', '--ir', data['ir'] / '000.png',
            '--out', tmp / 'big.png', '--device', 'cpu', '--max-memory', budget_gib]
    status, _, err = run_tool('fuse', capsys, *args)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert f'ToyFusion: {need:,} bytes per pixel' in err and '--tile 32' in err
    assert not (tmp / 'big.png').exists()
    status, _, err = run_tool('fuse', capsys, *args, '--tile', '32')
    assert status == 0, err


@pytest.mark.skipif(not has('onnx', 'onnxscript', 'onnxruntime'),
                    reason='onnx, onnxscript and onnxruntime are not installed')
def test_toy_network_exports_to_onnx(trained, capsys):
    import onnx
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    tmp, ckpt = trained
    model = tmp / 'toy.onnx'
    status, out, err = run_tool('export_onnx', capsys, '--weights', ckpt, '--out', model,
                                '--check-sizes', '9x7,12x16')
    assert status == 0, err
    assert 'ToyFusion (width=3)' in out and out.count('ok;') == 2
    meta = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    assert meta['network.type'] == 'ToyFusion'
    assert meta['network.config'] == '{"type": "ToyFusion", "width": 3}'
    runtime = OnnxNetwork(model)
    assert runtime.network_g == {'type': 'ToyFusion', 'width': 3}
    net = load_network(ckpt)
    gen = torch.Generator().manual_seed(2)
    vis_y, ir = (torch.rand(2, 1, 11, 13, generator=gen) for _ in range(2))
    with torch.no_grad():
        assert (runtime(vis_y, ir) - net(vis_y, ir)).abs().max() <= 1e-5
    vis, ir_path = write_gray_pair(tmp / 'onnx_pair')
    status, _, err = run_tool('fuse', capsys, '--engine', 'onnx', '--weights', model, '--vis', vis,
                              '--ir', ir_path, '--out', tmp / 'onnx_fused.png')
    assert status == 0, err
    written = cv2.imread(str(tmp / 'onnx_fused.png'), cv2.IMREAD_UNCHANGED).astype(int)
    assert np.abs(written - by_hand(ckpt, vis, ir_path).astype(int)).max() <= 1


def test_width_is_read_from_a_bare_state_dict(tmp_path):
    torch.manual_seed(0)
    net = ToyFusion(width=4)
    torch.save(net.state_dict(), tmp_path / 'bare.pth')
    loaded = load_network(tmp_path / 'bare.pth', network_g={'type': 'ToyFusion'})
    assert isinstance(loaded, ToyFusion) and loaded.width == 4
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 net.state_dict().values()))


def test_spec_parts_are_the_toys_own():
    net = ToyFusion(width=2)
    assert bytes_per_pixel(net) == 4 * (6 + 2 * 2)
    exported = exportable_module(net, torch.float16)
    assert isinstance(exported, ExportableToy) and exported.body[0].weight.dtype == torch.float16
    assert net.body[0].weight.dtype == torch.float32  # the network itself is not changed


def test_training_compile_runs_the_networks_own_preparation():
    from basicsr.models.fusion_model import compile_for_training
    COMPILE_PREPARED.clear()
    compile_for_training(ToyFusion(width=2))
    assert COMPILE_PREPARED == [True]


def test_a_network_without_a_spec_gets_the_generic_behaviour():
    net = PixelAverage()
    assert network_spec(net).state_adapter is None and bytes_per_pixel(net) is None
    exported = exportable_module(net)
    assert isinstance(exported, PixelAverage) and exported is not net and not exported.training
    with pytest.raises(ConfigError, match=r'PixelAverage: no torch.float16 export'):
        exportable_module(net, torch.float16)
    prepare_compile(net)  # nothing to prepare
    vis_y, ir = torch.rand(1, 1, 4, 5, dtype=torch.float64), torch.rand(1, 1, 4, 5, dtype=torch.float64)
    assert torch.equal(reference_forward(net, vis_y, ir), (vis_y + ir) * 0.5)
