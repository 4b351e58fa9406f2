"""DGFusion's lean inference path and training forward against the plain reference evaluation."""
import pytest
import torch

import basicsr.archs.dgfusion.lean as lean
from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.reference import reference_forward
from basicsr.archs.dgfusion.spectral import canonical_fft2, canonical_rfft2, unfold_half_
from basicsr.models.precision import bf16_autocast_available

SIZES = [(15, 21), (16, 20), (16, 21), (21, 16), (1, 10), (9, 1), (40, 33)]


@pytest.fixture(params=[1, 1000], ids=['one-band', 'many-bands'])
def band_pixels(request, monkeypatch):
    """One band, and bands of 16 rows (so halos, trims and band seams are exercised)."""
    monkeypatch.setattr(lean, 'CPU_BANDS', request.param)
    return request.param


def _inputs(batch, size, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, *size, generator=g), torch.rand(batch, 1, *size, generator=g)


@pytest.mark.parametrize('channels', [2, 3, 4])
@pytest.mark.parametrize('size', SIZES)
def test_lean_equals_reference(channels, size, band_pixels):
    torch.manual_seed(channels)
    net = DGFusion(channels).train(False)
    vis_y, ir = _inputs(2, size, size[0] * 31 + size[1])
    with torch.no_grad():
        ref = reference_forward(net, vis_y, ir)
        out = net(vis_y, ir)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert (out - ref).abs().max() <= 1e-5


def test_lean_is_taken_only_without_autograd(monkeypatch):
    calls = []
    real = lean.lean_forward
    monkeypatch.setattr('basicsr.archs.dgfusion.module.lean_forward',
                        lambda *a: calls.append(1) or real(*a))
    net = DGFusion(2)
    vis_y, ir = _inputs(1, (8, 9), 0)
    net(vis_y, ir)  # training mode, grad on
    net.train(False)
    net(vis_y, ir)  # grad on: autograd path
    assert calls == []
    with torch.no_grad():
        net(vis_y, ir)
    with torch.inference_mode():
        out = net(vis_y, ir)
    assert calls == [1, 1] and out.requires_grad is False
    net.lean_inference = False
    with torch.no_grad():
        net(vis_y, ir)
    assert calls == [1, 1]


def test_lean_float64_matches_reference_to_rounding():
    torch.manual_seed(5)
    net = DGFusion(3).double().train(False)
    vis_y, ir = (t.double() for t in _inputs(2, (18, 23), 6))
    with torch.inference_mode():
        out = net(vis_y, ir)
        diff = (out - reference_forward(net, vis_y, ir)).abs().max()
    assert out.dtype == torch.float64
    assert diff <= 1e-11


def test_lean_follows_weight_updates(band_pixels):
    """The lean path follows the parameters after an optimiser step and after
    load_state_dict (both change the parameters in place)."""
    torch.manual_seed(7)
    net = DGFusion(2)
    vis_y, ir = _inputs(2, (12, 14), 8)
    net.train(False)
    with torch.no_grad():
        before = net(vis_y, ir)
    net.train(True)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    net(vis_y, ir).square().mean().backward()
    opt.step()
    net.train(False)
    with torch.inference_mode():
        after = net(vis_y, ir)
        ref = reference_forward(net, vis_y, ir)
    assert (after - before).abs().max() > 1e-4  # the step changed the function
    assert (after - ref).abs().max() <= 1e-5
    other = DGFusion(2)
    net.load_state_dict(other.state_dict())
    with torch.inference_mode():
        assert (net(vis_y, ir) - reference_forward(other.train(False), vis_y, ir)).abs().max() <= 1e-5


def test_lean_counts_nonfinite_features_once_per_pixel(band_pixels):
    torch.manual_seed(9)
    net = DGFusion(2).train(False)
    vis_y, ir = _inputs(2, (40, 9), 10)
    with torch.no_grad():
        net.fusion.gate[1].bias.fill_(float('nan'))
        net(vis_y, ir)
    assert int(net.last_nonfinite) == 2 * 8 * 40 * 9  # B * 4C * H * W, halo rows not counted


@pytest.mark.parametrize('channels', [2, 4])
@pytest.mark.parametrize('size', [(11, 14), (12, 9), (1, 8)])
def test_training_gradients_equal_reference(channels, size):
    torch.manual_seed(11 + channels)
    net = DGFusion(channels)
    vis_y, ir = _inputs(2, size, 12)
    grads = []
    for forward in (lambda: net(vis_y, ir), lambda: reference_forward(net, vis_y, ir)):
        net.zero_grad(set_to_none=True)
        out = forward()
        out.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    for name, g in grads[0].items():
        scale = max(1.0, grads[1][name].abs().max().item())
        assert (g - grads[1][name]).abs().max() <= 1e-5 * scale, name


@pytest.mark.parametrize('size', [(6, 8), (7, 8), (6, 9), (7, 9), (1, 4)])
def test_one_sided_spectrum_unfolds_to_the_full_one(size):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    full = canonical_fft2(x)
    half = canonical_rfft2(x)
    amp = unfold_half_(torch.empty(x.shape, dtype=x.dtype), half.abs(), odd=False)
    pha = unfold_half_(torch.empty(x.shape, dtype=x.dtype), half.angle(), odd=True)
    torch.testing.assert_close(amp, full.abs(), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.polar(amp, pha), full, rtol=0, atol=1e-12)


def test_real_ifft2_parts_equals_complex_ifft():
    real, imag = torch.randn(2, 3, 7, 10, dtype=torch.float64), torch.randn(2, 3, 7, 10, dtype=torch.float64)
    out = lean.real_ifft2_parts(real, imag, torch.empty_like(real))
    torch.testing.assert_close(out, torch.fft.ifft2(torch.complex(real, imag)).real, rtol=0, atol=1e-12)


def test_polar_stacked_function_gradients():
    from basicsr.archs.dgfusion.spectral import polar_to_stacked_lean
    amp = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    pha = (torch.rand(2, 3, 4, 5, dtype=torch.float64) * 6 - 3).requires_grad_(True)
    assert torch.autograd.gradcheck(polar_to_stacked_lean, (amp, pha))


needs_bf16 = pytest.mark.skipif(not bf16_autocast_available(torch.device('cpu')),
                                reason='no bfloat16 autocast on this CPU')


@needs_bf16
def test_lean_bf16_stores_only_convolution_inputs_in_bf16(monkeypatch, band_pixels):
    """Under bfloat16 autocast the joint blocks' maps and the stacked q/k/v products are stored
    in bfloat16; encoder outputs, refined discrepancy maps (they feed the attention skip) and
    the output stay float32. Without autocast every map is float32."""
    stored = []
    real = lean.run_banded
    monkeypatch.setattr(lean, 'run_banded', lambda chain, inputs, n, k, dtype: stored.append(
        (chain.__qualname__.split('.')[0], dtype)) or real(chain, inputs, n, k, dtype))
    torch.manual_seed(0)
    net = DGFusion(2).train(False)
    vis_y, ir = _inputs(1, (20, 17), 3)
    with torch.inference_mode():
        net(vis_y, ir)
        assert {dtype for _, dtype in stored} == {torch.float32}
        stored.clear()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = net(vis_y, ir)
    assert out.dtype == torch.float32
    expected = {'encoder_chain': torch.float32, 'joint_chain': torch.bfloat16,
                'refine_chain': torch.float32, 'value_chain': torch.bfloat16,
                'product_chain': torch.bfloat16, 'output_chain': torch.float32}
    assert {name for name, _ in stored} == set(expected)
    assert all(dtype == expected[name] for name, dtype in stored)


@needs_bf16
@pytest.mark.parametrize('channels,size', [(2, (24, 30)), (4, (33, 28))])
def test_lean_bf16_agrees_with_fp32(channels, size, band_pixels):
    """bfloat16 keeps 8 mantissa bits (unit roundoff 2**-8 ~ 0.004): the output stays within a
    few percent of the float32 output's range, but is not equal to it (bf16 really ran)."""
    torch.manual_seed(channels)
    net = DGFusion(channels).train(False)
    vis_y, ir = _inputs(1, size, 11)
    with torch.inference_mode():
        fp32 = net(vis_y, ir)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = net(vis_y, ir)
    scale = fp32.abs().max()
    diff = (bf16 - fp32).abs().max()
    assert 0 < diff <= 0.05 * scale
