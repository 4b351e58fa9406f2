"""DGFusion network: exactness against the published model, size, gradients, edge cases."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.spectral import canonical_fft2
from basicsr.inference.loader import load_network
from basicsr.utils.errors import ConfigError, RegistryError

PARITY = Path(__file__).resolve().parent / 'data' / 'dgfusion_c4.pt'
# same weights; five sizes with the float64 canonical-phase output of the published network
CANONICAL = Path(__file__).resolve().parent / 'data' / 'dgfusion_c4_canonical.pt'


def conv_params(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout


def spec_param_count(c: int) -> int:
    """Live parameters, summed from the layer list of the network spec."""
    encoders = 2 * (conv_params(1, c) + conv_params(c, 2 * c) + conv_params(2 * c, 4 * c))
    joint = 2 * 2 * conv_params(8 * c, 8 * c)  # amp_fuse, pha_fuse
    proj = 2 * (conv_params(8 * c, 4 * c) + conv_params(4 * c, 4 * c))  # conv1, conv2
    refine = 4 * 2 * conv_params(4 * c, 4 * c)  # amp/pha_sub1/2
    scalars = 2  # a, b
    attention = 2 * (3 * 2 * conv_params(8 * c, 8 * c) + 3 * 2 * 4 * c)  # wq/wk/wv + 3 LNs
    gates = conv_params(8 * c, 4 * c) + conv_params(4 * c, 8 * c)
    final = conv_params(4 * c, 2 * c) + conv_params(2 * c, 1)
    return encoders + joint + proj + refine + scalars + attention + gates + final


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_parameter_count_matches_spec():
    assert spec_param_count(16) == 3_091_971
    assert n_params(DGFusion(16)) == 3_091_971
    assert n_params(DGFusion(2)) == spec_param_count(2)


def test_parity_with_published_model(tmp_path):
    data = torch.load(PARITY, map_location='cpu', weights_only=True)
    path = tmp_path / 'published.pth'
    torch.save(data['checkpoint'], path)
    net = load_network(path)
    with torch.no_grad():
        fused = net(data['vis_y'], data['ir'])
    diff = (fused - data['fused_y_unclamped']).abs().max().item()
    print(f'parity max abs diff (C=4, {tuple(fused.shape)}): {diff:.3e}')
    assert fused.dtype == torch.float32
    assert diff <= 1e-5
    assert fused.min() < 0  # the reference output is not clamped, nor is ours


@pytest.mark.parametrize('shape', [(2, 1, 7, 6), (1, 1, 5, 9), (1, 1, 1, 1), (1, 1, 1, 8)])
def test_output_shape_any_size(shape):
    torch.manual_seed(0)
    net = DGFusion(2)
    with torch.no_grad():
        out = net(torch.rand(shape), torch.rand(shape))
    assert out.shape == shape


def test_every_parameter_gets_gradient():
    torch.manual_seed(1)
    net = DGFusion(2)
    vis_y, ir = torch.rand(2, 1, 6, 5), torch.rand(2, 1, 6, 5)
    net(vis_y, ir).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def _degenerate_inputs():
    g = torch.Generator().manual_seed(2)
    img = torch.rand(1, 1, 6, 7, generator=g)
    row = torch.rand(1, 1, 1, 9, generator=g)
    return {
        'vis_equals_ir': (img, img.clone()),
        'constant': (torch.full((1, 1, 5, 5), 0.5), torch.full((1, 1, 5, 5), 0.5)),
        'zeros': (torch.zeros(1, 1, 4, 6), torch.zeros(1, 1, 4, 6)),
        'ones_vs_zeros': (torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)),
        'pixel_1x1': (torch.rand(1, 1, 1, 1, generator=g), torch.rand(1, 1, 1, 1, generator=g)),
        'row_1xW': (row, torch.rand(1, 1, 1, 9, generator=g)),
        'column_Hx1': (row.transpose(2, 3), row.transpose(2, 3).flip(2)),
    }


@pytest.mark.parametrize('case', list(_degenerate_inputs()))
def test_degenerate_inputs_finite(case):
    torch.manual_seed(3)
    net = DGFusion(2)
    vis_y, ir = (t.clone().requires_grad_(True) for t in _degenerate_inputs()[case])
    out = net(vis_y, ir)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(vis_y.grad).all() and torch.isfinite(ir.grad).all()
    for name, p in net.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name


def test_nonfinite_features_replaced_and_counted():
    torch.manual_seed(4)
    net = DGFusion(2)
    vis_y, ir = torch.rand(1, 1, 4, 5), torch.rand(1, 1, 4, 5)
    with torch.no_grad():
        net(vis_y, ir)
        assert int(net.last_nonfinite) == 0
        net.fusion.gate[1].bias.fill_(float('nan'))  # every gate, hence every feature, is NaN
        out = net(vis_y, ir)
    assert int(net.last_nonfinite) == 1 * 8 * 4 * 5  # B * 4C * H * W
    # reference: the reconstruction convolutions applied to a feature map filled with 1e-5
    w0, b0 = net.reconstruction[0].weight, net.reconstruction[0].bias
    w2, b2 = net.reconstruction[2].weight, net.reconstruction[2].bias
    x = torch.full((1, 8, 4, 5), 1e-5)
    ref = F.leaky_relu(F.conv2d(F.leaky_relu(F.conv2d(x, w0, b0, padding=1), 0.1),
                                w2, b2, padding=1), 0.1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-7)


def test_gradcheck_float64():
    torch.manual_seed(5)
    net = DGFusion(1).double()
    vis_y = torch.rand(1, 1, 5, 6, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    ir = torch.rand(1, 1, 5, 6, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_(True)
    a = net.enhancer.a.detach().clone().requires_grad_(True)
    b = (net.enhancer.b.detach() * 0.7).requires_grad_(True)

    def fn(v, i, a_, b_):
        params = {'enhancer.a': a_, 'enhancer.b': b_}
        return torch.func.functional_call(net, params, (v, i))

    assert torch.autograd.gradcheck(fn, (vis_y, ir, a, b), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_follows_dtype():
    torch.manual_seed(6)
    net = DGFusion(2).double()
    vis_y, ir = (torch.rand(1, 1, 4, 5, dtype=torch.float64) for _ in range(2))
    out = net(vis_y, ir)
    assert out.dtype == torch.float64
    assert net.last_nonfinite.device == out.device


def test_rejects_mismatched_inputs():
    net = DGFusion(2)
    with pytest.raises(ValueError, match=r'\(B,1,H,W\)'):
        net(torch.rand(1, 1, 4, 5), torch.rand(1, 1, 4, 6))
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5))


def test_build_network():
    net = build_network({'type': 'DGFusion', 'channels': 2})
    assert isinstance(net, DGFusion) and net.channels == 2
    assert n_params(net) == spec_param_count(2)
    with pytest.raises(RegistryError, match="did you mean 'channels'"):
        build_network({'type': 'DGFusion', 'channel': 2})
    with pytest.raises(RegistryError, match="did you mean 'DGFusion'"):
        build_network({'type': 'DGFuson'})
    with pytest.raises(ConfigError, match='channels must be a positive int'):
        build_network({'type': 'DGFusion', 'channels': '16'})


def _canonical_reference_net(tmp_path):
    data = torch.load(CANONICAL, map_location='cpu', weights_only=True)
    path = tmp_path / 'published.pth'
    torch.save(data['checkpoint'], path)
    return load_network(path), data['cases']


def test_canonical_reference_float32_and_float64(tmp_path):
    net, cases = _canonical_reference_net(tmp_path)
    net64 = load_network(tmp_path / 'published.pth').double()
    assert len(cases) == 5
    with torch.no_grad():
        for case in cases:
            ref = case['fused_y_canonical_f64']
            out32 = net(case['vis_y'], case['ir'])
            out64 = net64(case['vis_y'].double(), case['ir'].double())
            size = tuple(ref.shape[-2:])
            assert (out32.double() - ref).abs().max() <= 1e-5, size
            assert (out64 - ref).abs().max() <= 1e-9, size


@pytest.mark.parametrize('channels', [2, 3, 4])
@pytest.mark.parametrize('size', [(15, 21), (16, 20), (16, 21), (21, 16), (12, 12), (1, 10)])
def test_float32_matches_float64(channels, size):
    """Without canonical phase the even sizes differ by up to ~1e-2 (the +-pi flips)."""
    torch.manual_seed(100 + channels)
    net = DGFusion(channels)
    net64 = DGFusion(channels).double()
    net64.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(size[0] * 100 + size[1])
    vis_y, ir = torch.rand(1, 1, *size, generator=g), torch.rand(1, 1, *size, generator=g)
    with torch.no_grad():
        diff = (net(vis_y, ir).double() - net64(vis_y.double(), ir.double())).abs().max()
    assert diff <= 1e-5


def test_thread_count_does_not_change_output():
    torch.manual_seed(7)
    net = DGFusion(3)
    g = torch.Generator().manual_seed(8)
    vis_y, ir = torch.rand(2, 1, 24, 30, generator=g), torch.rand(2, 1, 24, 30, generator=g)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                outs.append(net(vis_y, ir))
    finally:
        torch.set_num_threads(threads)
    assert (outs[0] - outs[1]).abs().max() <= 1e-6


@pytest.mark.parametrize('size', [(6, 8), (7, 8), (6, 9), (7, 9)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_self_conjugate_bins_have_canonical_phase(size, dtype):
    """DC, and the Nyquist row/column of even sizes, of a negative-valued real map: phase +pi."""
    h, w = size
    g = torch.Generator().manual_seed(h * w)
    # strictly negative with a strictly negative alternating sum along each axis, so every
    # self-conjugate bin is a negative real number in exact arithmetic
    x = -(1.0 + torch.rand(2, 3, h, w, generator=g, dtype=dtype))
    x[..., 1::2, :] *= 0.1
    x[..., :, 1::2] *= 0.1
    phase = torch.angle(canonical_fft2(x))
    rows = [0] + ([h // 2] if h % 2 == 0 else [])
    cols = [0] + ([w // 2] if w % 2 == 0 else [])
    for r in rows:
        for c in cols:
            assert (phase[..., r, c] == math.pi).all(), (r, c)
    # every other bin keeps the plain FFT's phase
    keep = torch.ones(h, w, dtype=torch.bool)
    for r in rows:
        for c in cols:
            keep[r, c] = False
    plain = torch.angle(torch.fft.fft2(x))
    assert torch.equal(phase[..., keep], plain[..., keep])


def test_canonical_phase_keeps_gradients():
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: torch.view_as_real(canonical_fft2(t)), (x,))


def test_compiled_graphs_hold_real_tensors_only():
    """Once ``prepare_compile`` ran, torch.compile's graphs of the training forward hold no
    complex tensor (the FFT steps run eagerly between them), and forward and backward through
    them equal the eager ones (a recording backend that runs the graphs as traced: no Inductor)."""
    from basicsr.archs.dgfusion.spectral import prepare_compile
    prepare_compile()
    graphs = []

    def record(gm, example_inputs):
        graphs.append([node.meta['example_value'] for node in gm.graph.nodes
                       if isinstance(node.meta.get('example_value'), torch.Tensor)])
        return gm.forward

    torch.manual_seed(0)
    net = DGFusion(2).train()
    g = torch.Generator().manual_seed(1)
    vis_y, ir = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g)
    grads = []
    for run in (net, torch.compile(net, backend=record)):
        net.zero_grad(set_to_none=True)
        (run(vis_y, ir) - ir).abs().mean().backward()
        grads.append({n: p.grad for n, p in net.named_parameters()})
    assert len(graphs) > 1  # the graph breaks at the FFT steps
    assert not any(t.is_complex() for values in graphs for t in values)
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)
