"""DGFusion network: exactness against the published model, size, gradients, edge cases."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from basicsr.archs import build_network
from basicsr.archs.dgfusion_arch import DGFusion
from basicsr.utils.checkpoint import load_network
from basicsr.utils.errors import ConfigError, RegistryError

PARITY = Path(__file__).resolve().parent / 'data' / 'dgfusion_c4.pt'


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
