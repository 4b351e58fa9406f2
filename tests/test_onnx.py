"""ONNX deployment: the real-arithmetic network, the export, onnxruntime parity, fuse.py --engine onnx.

The torch-only checks always run; the ones that export or run a graph skip when the optional
packages (onnx, onnxscript, onnxruntime; requirements-dev.txt) are missing.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from typing import Tuple

import cv2
import numpy as np
import pytest
import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.export import DftBasis, export_forward, phase
from basicsr.archs.dgfusion.reference import reference_forward
from basicsr.archs.dgfusion.spectral import canonical_fft2
from basicsr.inference.loader import load_network
from basicsr.utils.errors import CheckpointError, ConfigError
from tests.conftest import REPO, write_pairs

CANONICAL = REPO / 'tests' / 'data' / 'dgfusion_c4_canonical.pt'
EXPORT_SIZE = (2, 11, 8)  # batch, H, W of the example used at export


def has(*names: str) -> bool:
    import importlib.util
    return all(importlib.util.find_spec(n) is not None for n in names)


needs_export = pytest.mark.skipif(not has('onnx', 'onnxscript', 'onnxruntime'),
                                  reason='onnx, onnxscript and onnxruntime are not installed')


def run_script(name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / 'scripts' / f'{name}.py'), *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def script_main(name: str, capsys, *args) -> Tuple[int, str]:
    """Run ``scripts/<name>.py``'s ``main`` (``basicsr.tools.<name>``) in this process:
    (exit status, stderr)."""
    import importlib
    module = importlib.import_module(f'basicsr.tools.{name}')
    capsys.readouterr()
    status = module.main([str(a) for a in args])
    return status, capsys.readouterr().err


# ---------------------------------------------------------------- torch: one network function

def test_phase_branches_match_torch_angle():
    """Hand-picked points: every branch, +0 imaginary part on the negative real axis -> +pi."""
    re = torch.tensor([2.0, -2.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, -3.0], dtype=torch.float64)
    im = torch.tensor([0.0, 0.0, 1e-300, -1.0, 5.0, -5.0, 0.0, -1.0, 3.0], dtype=torch.float64)
    expected = torch.tensor([0.0, math.pi, math.pi, -3 * math.pi / 4, math.pi / 2,
                             -math.pi / 2, 0.0, -math.pi / 4, 3 * math.pi / 4], dtype=torch.float64)
    assert torch.allclose(phase(re, im), expected, rtol=0, atol=1e-15)
    assert torch.equal(phase(re, im), torch.angle(torch.complex(re, im)))


@pytest.mark.parametrize('size', [(7, 5), (6, 8), (6, 5), (1, 4), (5, 2), (4, 1)])
def test_dft_basis_is_one_sided_with_canonical_bins(size):
    h, w = size
    x = torch.randn(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h))
    basis = DftBasis(h, w, torch.float64, x.device)
    assert basis.cos_w.shape == basis.sin_w.shape == (w, w // 2 + 1)  # no W x W basis
    re, im = basis.fft2(x)
    spec = torch.fft.fft2(x)
    half = spec[..., :w // 2 + 1]
    assert re.shape == im.shape == (2, 3, h, w // 2 + 1)
    assert torch.allclose(re, half.real, atol=1e-12) and torch.allclose(im, half.imag, atol=1e-12)
    rows = [0] + ([h // 2] if h % 2 == 0 else [])
    cols = [0] + ([w // 2] if w % 2 == 0 else [])
    bins = im[..., rows, :][..., cols]
    assert torch.all(bins == 0) and not torch.any(torch.signbit(bins))  # exactly +0
    # unfolded to the full size by the Hermitian mirror: the full spectrum's amplitude and phase
    assert torch.allclose(basis.amplitude((re, im)), spec.abs(), atol=1e-12)
    phase_full = basis.phase((re, im))
    assert phase_full.shape == (2, 3, h, w)
    assert torch.allclose(phase_full, canonical_fft2(x).angle(), atol=1e-9)
    z = torch.randn(2, 6, h, w, dtype=torch.float64)
    expected = torch.fft.ifft2(torch.complex(z[:, :3], z[:, 3:])).real
    assert torch.allclose(basis.ifft2_real(z), expected, atol=1e-13)


@pytest.mark.parametrize('channels,size', [(2, (9, 7)), (2, (8, 10)), (3, (10, 7)), (3, (1, 6))])
def test_export_forward_is_the_reference_function(channels, size):
    torch.manual_seed(channels)
    net = DGFusion(channels).double().train(False)
    gen = torch.Generator().manual_seed(7)
    vis_y, ir = (torch.rand(2, 1, *size, generator=gen, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        ref = reference_forward(net, vis_y, ir)
        assert (export_forward(net, vis_y, ir) - ref).abs().max() <= 1e-9
        out32 = export_forward(net.float(), vis_y.float(), ir.float())
    assert (out32.double() - ref).abs().max() <= 1e-5


def test_export_forward_matches_published_canonical_outputs(tmp_path):
    """Float64 outputs of the published network with canonical phase (independent code)."""
    data = torch.load(CANONICAL, map_location='cpu', weights_only=True)
    torch.save(data['checkpoint'], tmp_path / 'published.pth')
    net = load_network(tmp_path / 'published.pth').double()
    with torch.no_grad():
        for case in data['cases']:
            ref = case['fused_y_canonical_f64']
            out = export_forward(net, case['vis_y'].double(), case['ir'].double())
            assert (out - ref).abs().max() <= 1e-9, tuple(ref.shape)


# ---------------------------------------------------------------- export and onnxruntime

@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A channels-2 checkpoint and its dynamic ONNX export (made once for the module)."""
    if not has('onnx', 'onnxscript', 'onnxruntime'):
        pytest.skip('onnx, onnxscript and onnxruntime are not installed')
    from basicsr.deploy.onnx_export import export_onnx

    root = tmp_path_factory.mktemp('onnx')
    torch.manual_seed(3)
    net = DGFusion(2).train(False)
    torch.save({'params': net.state_dict()}, root / 'c2.pth')
    export_onnx(net, root / 'c2.onnx', example=EXPORT_SIZE,
                network_g={'type': 'DGFusion', 'channels': 2})
    return net, root / 'c2.pth', root / 'c2.onnx'


@needs_export
@pytest.mark.parametrize('size', [(13, 6), (16, 21), (9, 7), (10, 12)])  # odd/even mixes
def test_onnxruntime_matches_torch_and_reference_on_other_sizes(exported, size):
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    net, _, model = exported
    runtime = OnnxNetwork(model)
    assert runtime.fixed_size is None and runtime.network_g == {'type': 'DGFusion', 'channels': 2}
    gen = torch.Generator().manual_seed(size[0])
    vis_y, ir = (torch.rand(3, 1, *size, generator=gen, dtype=torch.float64) for _ in range(2))
    out = runtime(vis_y.float(), ir.float())
    assert out.shape == (3, 1, *size) and out.dtype == torch.float32
    with torch.no_grad():
        ref = reference_forward(copy.deepcopy(net).double(), vis_y, ir)
        torch_out = net(vis_y.float(), ir.float())
    assert (out.double() - ref).abs().max() <= 1e-4
    assert (out - torch_out).abs().max() <= 1e-4


class _Spectra(torch.nn.Module):
    """One-sided spectrum of a (B,K,H,W) map and its unfolded amplitude and phase."""

    def forward(self, x: torch.Tensor):
        basis = DftBasis(x.shape[-2], x.shape[-1], x.dtype, x.device)
        spec = basis.fft2(x)
        return spec[0], spec[1], basis.amplitude(spec), basis.phase(spec)


@needs_export
def test_onnxruntime_one_sided_spectra_have_canonical_bins(tmp_path):
    """The exported spectral backend in onnxruntime: half-width spectra, +0 imaginary parts at
    the self-conjugate bins (a negative mean gives phase +pi at (0,0)), and full-size amplitude
    and phase equal to those of numpy's two-sided FFT, on odd and even sizes."""
    import onnxruntime as ort
    dims = {0: torch.export.Dim('batch', min=1), 2: torch.export.Dim('height', min=1),
            3: torch.export.Dim('width', min=1)}
    torch.onnx.export(_Spectra().eval(), (torch.rand(2, 3, 11, 8),), str(tmp_path / 'spectra.onnx'),
                      dynamo=True, input_names=['x'], dynamic_shapes={'x': dims}, verbose=False)
    session = ort.InferenceSession(str(tmp_path / 'spectra.onnx'),
                                   providers=['CPUExecutionProvider'])
    gen = np.random.default_rng(0)
    for h, w in [(6, 8), (7, 5), (8, 7), (9, 10)]:
        x = (gen.random((1, 3, h, w)) - 0.9).astype(np.float32)  # negative means
        re, im, amp, pha = session.run(None, {'x': x})
        assert re.shape == im.shape == (1, 3, h, w // 2 + 1) and amp.shape == pha.shape == x.shape
        rows = [0] + ([h // 2] if h % 2 == 0 else [])
        cols = [0] + ([w // 2] if w % 2 == 0 else [])
        bins = im[..., rows, :][..., cols]
        assert np.all(bins == 0) and not np.any(np.signbit(bins)), (h, w)
        assert np.all(pha[..., 0, 0] == np.float32(math.pi)), (h, w)
        spec = np.fft.fft2(x.astype(np.float64))
        canonical = spec.copy()
        for r in rows:
            canonical.imag[..., r, cols] = 0.0
        assert np.abs(amp - np.abs(spec)).max() <= 1e-4 * np.abs(spec).max()
        assert np.abs(pha - np.angle(canonical)).max() <= 1e-4, (h, w)


@needs_export
def test_exported_graph_has_no_full_width_basis(exported):
    """Every DFT product of the exported graph is with an H x H basis or a W x (W//2+1) one:
    the one-sided transforms cannot silently revert to W x W bases."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    _, _, model = exported
    proto = onnx.load(str(model))
    h, w = 12, 10
    for graph_input in proto.graph.input:
        for dim, value in zip(graph_input.type.tensor_type.shape.dim, (1, 1, h, w)):
            dim.Clear()
            dim.dim_value = value
    proto = SymbolicShapeInference.infer_shapes(proto, auto_merge=True)
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in proto.graph.value_info}
    bases = [shapes[name] for node in proto.graph.node if node.op_type == 'MatMul'
             for name in node.input if len(shapes.get(name, ())) == 2]
    assert bases and set(bases) == {(h, h), (w, w // 2 + 1)}


@needs_export
def test_fuse_onnx_engine_writes_the_torch_images(exported, tmp_path, capsys):
    _, ckpt, model = exported
    dirs = write_pairs(tmp_path / 'data', n=2, size=(15, 22), masks=False)
    outs = {}
    for engine, weights in (('torch', ckpt), ('onnx', model)):
        status, err = script_main('fuse', capsys, '--engine', engine, '--weights', weights,
                                  '--vis', dirs['vis'], '--ir', dirs['ir'],
                                  '--out', tmp_path / engine)
        assert status == 0, err
        outs[engine] = sorted((tmp_path / engine).glob('*.png'))
    assert len(outs['onnx']) == 2
    for a, b in zip(outs['torch'], outs['onnx']):
        diff = np.abs(cv2.imread(str(a)).astype(int) - cv2.imread(str(b)).astype(int))
        assert diff.max() <= 1, a.name


@needs_export
def test_corrupted_onnx_file_gives_one_line(exported, tmp_path, capsys):
    _, _, model = exported
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(model.read_bytes()[: model.stat().st_size // 3])
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    with pytest.raises(CheckpointError, match='broken.onnx: not a readable ONNX model'):
        OnnxNetwork(broken)
    dirs = write_pairs(tmp_path / 'data', n=1, size=(9, 9), masks=False)
    vis = next(dirs['vis'].iterdir())
    status, err = script_main('fuse', capsys, '--engine', 'onnx', '--weights', broken,
                              '--vis', vis, '--ir', dirs['ir'] / vis.name,
                              '--out', tmp_path / 'out.png')
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'broken.onnx' in lines[0]
    assert not (tmp_path / 'out.png').exists()


@needs_export
def test_files_with_the_earlier_metadata_keys_still_read(exported, tmp_path):
    """Exports written before the generic ``network.*`` keys recorded ``dgfusion.*`` ones."""
    import onnx
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    net, _, model = exported
    proto = onnx.load(str(model))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta['network.config']) == {'type': 'DGFusion', 'channels': 2}
    assert meta['network.type'] == 'DGFusion'
    del proto.metadata_props[:]
    count = sum(p.numel() for p in net.parameters())
    for key, value in (('dgfusion.channels', '2'), ('dgfusion.parameters', str(count)),
                       ('dgfusion.precision', 'fp32')):
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(tmp_path / 'old.onnx'))
    runtime = OnnxNetwork(tmp_path / 'old.onnx')
    assert runtime.network_g == {'type': 'DGFusion', 'channels': 2}
    assert runtime.parameter_count == count and runtime.precision == 'fp32'
    assert runtime.summary().startswith(f'DGFusion (channels=2) ONNX ({count:,} parameters, fp32')


def test_missing_onnxruntime_is_one_clear_error(monkeypatch, tmp_path):
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import fails
    with pytest.raises(ConfigError, match='needs onnxruntime, which is not installed'):
        OnnxNetwork(tmp_path / 'model.onnx')


def test_export_script_refuses_bad_arguments_before_work(tmp_path, capsys):
    torch.save({'params': DGFusion(2).state_dict()}, tmp_path / 'c2.pth')
    cases = [(['--size', '12x'], "--size: '12x' is not HxW"),
             (['--out', tmp_path / 'model.bin'], 'must end in .onnx'),
             (['--weights', tmp_path / 'none.pth'], 'none.pth: no such checkpoint'),
             (['--opset', '17'], '--opset: 17 is below 18')]
    for args, text in cases:
        full = ['--weights', tmp_path / 'c2.pth', '--out', tmp_path / 'model.onnx', *args]
        status, err = script_main('export_onnx', capsys, *full)
        assert status == 2, err
        assert err.strip().splitlines() == [err.strip()] and err.startswith('error: ')
        assert text in err
    assert not (tmp_path / 'model.onnx').exists()


@needs_export
@pytest.mark.slow
def test_published_weights_fixed_size_export_matches_canonical_reference(tmp_path):
    """Published C=4 weights exported at one fixed size by the script, then dynamic ones
    against the float64 outputs of the published network on the five stored sizes."""
    from basicsr.deploy.onnx_runtime import OnnxNetwork
    data = torch.load(CANONICAL, map_location='cpu', weights_only=True)
    torch.save(data['checkpoint'], tmp_path / 'published.pth')
    proc = run_script('export_onnx', '--weights', tmp_path / 'published.pth',
                      '--out', tmp_path / 'c4.onnx', '--check-sizes', '37x53,1x9')
    assert proc.returncode == 0, proc.stderr
    runtime = OnnxNetwork(tmp_path / 'c4.onnx')
    for case in data['cases']:
        out = runtime(case['vis_y'].float(), case['ir'].float())
        assert (out.double() - case['fused_y_canonical_f64']).abs().max() <= 1e-4
    proc = run_script('export_onnx', '--weights', tmp_path / 'published.pth',
                      '--out', tmp_path / 'c4_fixed.onnx', '--size', '31x31')
    assert proc.returncode == 0, proc.stderr
    fixed = OnnxNetwork(tmp_path / 'c4_fixed.onnx')
    assert fixed.fixed_size == (31, 31)
    case = data['cases'][3]
    out = fixed(case['vis_y'][:1].float(), case['ir'][:1].float())
    assert (out.double() - case['fused_y_canonical_f64'][:1]).abs().max() <= 1e-4


@needs_export
@pytest.mark.slow
def test_benchmark_onnx_row(monkeypatch, capsys):
    from basicsr.tools import benchmark as bench
    monkeypatch.setattr(bench, 'ONNX_SIZES', ((12, 10),))
    assert bench.main(['--only', 'onnx', '--channels', '2', '--repeat', '1', '--warmup', '0',
                       '--device', 'cpu']) == 0
    rows = [[cell.strip() for cell in line.split('|')[1:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith('| 12x10')]
    assert [row[1] for row in rows] == ['torch lean (cpu)', 'onnxruntime']
    (_, _, torch_ms, torch_ratio, *_), (_, _, ort_ms, ort_ratio, _, _, _, ort_err) = rows
    assert float(torch_ms) > 0 and float(torch_ratio) == 1.0
    assert float(ort_ratio) == pytest.approx(float(ort_ms) / float(torch_ms), abs=0.01)
    assert all(float(row[7]) <= 1e-4 for row in rows)  # max abs vs float64, both engines
