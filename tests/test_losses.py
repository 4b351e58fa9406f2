"""Tests of basicsr.losses: values worked out by hand, function == module, errors, gradients."""
import math

import pytest
import torch

from basicsr.losses import (FrequencyAmplitudeLoss, MaxGradientLoss, MaxIntensityLoss,
                            SaliencyMaskL1Loss, SSIMFusionLoss, build_loss,
                            frequency_amplitude_loss, max_gradient_loss, max_intensity_loss,
                            saliency_mask_l1_loss, sobel_gradient, ssim_fusion_loss)
from basicsr.utils.errors import ConfigError, RegistryError

D = torch.float64


def t(rows) -> torch.Tensor:
    """(1, 1, H, W) float64 tensor from nested lists."""
    return torch.tensor(rows, dtype=D)[None, None]


# Shared 2x2 example. The mask holds 1, 0.5 and 0 so the published and weighted formulas differ.
F22 = [[0.5, 0.5], [0.5, 0.5]]
V22 = [[0.8, 0.6], [0.2, 0.4]]
I22 = [[0.2, 0.4], [1.0, 0.6]]
M22 = [[1.0, 0.5], [0.0, 0.0]]


def rand_inputs(shape=(2, 1, 12, 12), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g, dtype=dtype) for _ in range(4)]


# ---------------------------------------------------------------------------- hand values

def test_saliency_published_by_hand():
    # M*V = [[.8,.3],[0,0]]; |M*V - F| = [[.3,.2],[.5,.5]] -> 1.5/4 = 0.375
    # [M==1] = [[1,0],[0,0]]; (1-[M==1])*I = [[0,.4],[1,.6]]; |F - .| = [[.5,.1],[.5,.1]] -> 0.3
    got = saliency_mask_l1_loss(t(F22), t(V22), t(I22), t(M22), formula='published')
    assert got.item() == pytest.approx(0.675, abs=1e-12)
    # (1-M)*I instead of the indicator would give 0.375 + 1.4/4 = 0.725: the 0.5 pixel matters.
    assert got.item() != pytest.approx(0.725, abs=1e-6)


def test_saliency_weighted_by_hand():
    # M*V + (1-M)*I = [[.8,.5],[1,.6]]; |F - .| = [[.3,0],[.5,.1]] -> 0.9/4
    got = saliency_mask_l1_loss(t(F22), t(V22), t(I22), t(M22), formula='weighted')
    assert got.item() == pytest.approx(0.225, abs=1e-12)


def test_saliency_formulas_agree_on_binary_mask_only_in_second_term():
    # With a binary mask [M==1] == M, so the published IR term equals mean|F - (1-M) I|.
    mask = t([[1.0, 0.0], [0.0, 1.0]])
    f, v, i = t(F22), t(V22), t(I22)
    expected = (mask * v - f).abs().mean() + (f - (1 - mask) * i).abs().mean()
    got = saliency_mask_l1_loss(f, v, i, mask)
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)


def test_max_intensity_by_hand():
    # max(V, I) = [[.8,.6],[1,.6]]; |F - .| = [[.3,.1],[.5,.1]] -> 1.0/4
    assert max_intensity_loss(t(F22), t(V22), t(I22)).item() == pytest.approx(0.25, abs=1e-12)


def test_frequency_amplitude_by_hand():
    # 2x2 DFT of [[a,b],[c,d]]: [a+b+c+d, a-b+c-d; a+b-c-d, a-b-c+d] (all real)
    # |F|: [2,0;0,0]  |V|: [2,0;.8,.4]  |I|: [2.2,.2;1,.6]  (I has -1, -.6 before abs)
    # target = [2.1,.1;.9,.5]; squared diffs .01+.01+.81+.25 = 1.08 -> mean 0.27
    got = frequency_amplitude_loss(t(F22), t(V22), t(I22))
    assert got.item() == pytest.approx(0.27, abs=1e-12)


def test_sobel_zero_padding_on_constant_image():
    # Constant c: interior 0; an edge pixel misses one row (|Sy| = 4c); a corner misses a row and
    # a column (|Sx| = |Sy| = 3c). Replicate padding would give 0 everywhere.
    c = 0.5
    g = sobel_gradient(torch.full((1, 1, 5, 5), c, dtype=D))[0, 0]
    expected = torch.tensor([[6, 4, 4, 4, 6],
                             [4, 0, 0, 0, 4],
                             [4, 0, 0, 0, 4],
                             [4, 0, 0, 0, 4],
                             [6, 4, 4, 4, 6]], dtype=D) * c
    assert torch.equal(g, expected)


def test_sobel_of_impulse():
    # An impulse of height h at the centre of a 3x3 image: each neighbour sees one kernel tap,
    # |Sx| + |Sy| = 1+1 on diagonals, 2+0 on edges: 2h everywhere except the centre (0).
    g = sobel_gradient(t([[0, 0, 0], [0, 3.0, 0], [0, 0, 0]]))[0, 0]
    assert torch.equal(g, torch.tensor([[6, 6, 6], [6, 0, 6], [6, 6, 6]], dtype=D))


def test_max_gradient_by_hand():
    # G(ones 3x3) = [[6,4,6],[4,0,4],[6,4,6]]; G(3*impulse) = 6 off-centre, 0 centre.
    # max = 6 off-centre, 0 centre.
    ones = torch.ones(1, 1, 3, 3, dtype=D)
    impulse = t([[0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    zeros = torch.zeros_like(ones)
    # F = 0: mean(max) = 48/9
    assert max_gradient_loss(zeros, ones, impulse).item() == pytest.approx(48 / 9, abs=1e-12)
    # F = V: |G(V) - max| = 2 on the four edge pixels -> 8/9
    assert max_gradient_loss(ones, ones, impulse).item() == pytest.approx(8 / 9, abs=1e-12)
    # symmetric in V and I
    assert max_gradient_loss(ones, impulse, ones).item() == pytest.approx(8 / 9, abs=1e-12)


def test_ssim_constant_images_by_hand():
    # Constant images have sigma = 0: SSIM = (2 a b + c1) c2 / ((a^2 + b^2 + c1) c2) = (2ab + c1)/(a^2+b^2+c1)
    c1 = 0.01 ** 2
    f = torch.full((1, 1, 8, 8), 0.5, dtype=D)
    v = torch.full((1, 1, 8, 8), 0.5, dtype=D)
    i = torch.full((1, 1, 8, 8), 0.25, dtype=D)
    ssim_fi = (2 * 0.5 * 0.25 + c1) / (0.25 + 0.0625 + c1)
    expected = 1 - (1 + ssim_fi) / 2
    assert ssim_fusion_loss(f, v, i).item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize('win', [3, 7, 11])
def test_ssim_loss_averages_the_two_sources(win):
    """Loss = 1 - (SSIM(F,V) + SSIM(F,I)) / 2: with V = F only the infrared half remains, so
    it is half the loss against I on both sides; the sources are interchangeable."""
    f, v, i, _ = rand_inputs((1, 1, 12, 14), dtype=D, seed=win)
    both_ir = ssim_fusion_loss(f, i, i, window_size=win).item()
    assert both_ir > 0.1  # random images are far from similar
    assert ssim_fusion_loss(f, f, i, window_size=win).item() == pytest.approx(both_ir / 2, abs=1e-9)
    assert ssim_fusion_loss(f, v, i, window_size=win).item() == pytest.approx(
        ssim_fusion_loss(f, i, v, window_size=win).item(), abs=1e-9)


def test_ssim_loss_uses_the_window_size():
    f, v, i, _ = rand_inputs((1, 1, 12, 14), dtype=D, seed=5)
    assert ssim_fusion_loss(f, v, i, window_size=3).item() != pytest.approx(
        ssim_fusion_loss(f, v, i, window_size=11).item(), abs=1e-6)


def test_ssim_identical_images_zero():
    f, _, _, _ = rand_inputs((2, 1, 16, 16), dtype=D)
    assert ssim_fusion_loss(f, f, f).item() == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------- modules

MODULES = [
    (lambda w: SaliencyMaskL1Loss(loss_weight=w), lambda f, v, i, m: saliency_mask_l1_loss(f, v, i, m)),
    (lambda w: SaliencyMaskL1Loss('weighted', loss_weight=w),
     lambda f, v, i, m: saliency_mask_l1_loss(f, v, i, m, formula='weighted')),
    (lambda w: MaxIntensityLoss(loss_weight=w), lambda f, v, i, m: max_intensity_loss(f, v, i)),
    (lambda w: MaxGradientLoss(loss_weight=w), lambda f, v, i, m: max_gradient_loss(f, v, i)),
    (lambda w: SSIMFusionLoss(window_size=5, loss_weight=w),
     lambda f, v, i, m: ssim_fusion_loss(f, v, i, window_size=5)),
    (lambda w: FrequencyAmplitudeLoss(loss_weight=w), lambda f, v, i, m: frequency_amplitude_loss(f, v, i)),
]


@pytest.mark.parametrize('make,fn', MODULES)
def test_module_equals_function_times_weight(make, fn):
    f, v, i, m = rand_inputs()
    m = (m > 0.5).float()
    got = make(2.5)(f, v, i, m)
    assert got.ndim == 0
    assert torch.allclose(got, 2.5 * fn(f, v, i, m), rtol=1e-6, atol=0)


@pytest.mark.parametrize('make,fn', MODULES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_dtype_follows_input_and_grads_finite(make, fn, dtype):
    f, v, i, m = rand_inputs(dtype=dtype)
    m = (m > 0.5).to(dtype)
    f.requires_grad_(True)
    loss = make(1.0)(f, v, i, m)
    assert loss.dtype == dtype and loss.device == f.device
    loss.backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0


def test_gradcheck_float64():
    f, v, i, m = rand_inputs((1, 1, 6, 7), dtype=D, seed=3)
    m = torch.where(m > 0.6, 1.0, torch.where(m < 0.3, 0.0, 0.5)).to(D)
    args = [a.clone().requires_grad_(True) for a in (f, v, i)]
    assert torch.autograd.gradcheck(lambda a, b, c: saliency_mask_l1_loss(a, b, c, m, 'weighted'), args)
    assert torch.autograd.gradcheck(lambda a, b, c: max_gradient_loss(a, b, c), args)
    assert torch.autograd.gradcheck(lambda a: frequency_amplitude_loss(a, v, i), args[:1])
    assert torch.autograd.gradcheck(lambda a: ssim_fusion_loss(a, v, i, window_size=5), args[:1])


def test_half_precision_frequency_does_not_overflow():
    # 64x64: DC of ones = 4096 and (4096 - 2048)^2 overflows float16; computed in float32.
    # Only the DC term differs: 2048^2 / 4096 = 1024.
    ones = torch.ones(1, 1, 64, 64, dtype=torch.float16)
    got = frequency_amplitude_loss(ones, ones, torch.zeros_like(ones))
    assert got.dtype == torch.float32 and got.item() == pytest.approx(1024.0, rel=1e-6)


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize('fn', [max_intensity_loss, max_gradient_loss, ssim_fusion_loss,
                                frequency_amplitude_loss])
def test_shape_errors(fn):
    f = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"expected ir of shape \(B,1,H,W\), got \(2, 3, 8, 8\)"):
        fn(f, f, torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"expected fused of shape \(B,1,H,W\), got \(8, 8\)"):
        fn(torch.rand(8, 8), f, f)
    with pytest.raises(ValueError, match=r"expected vis_y of shape \(B,1,H,W\) = \(2, 1, 8, 8\) like fused, "
                                         r"got \(2, 1, 8, 9\)"):
        fn(f, torch.rand(2, 1, 8, 9), f)


def test_mask_shape_and_missing_mask():
    f = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"expected mask of shape"):
        saliency_mask_l1_loss(f, f, f, torch.rand(1, 1, 4, 5))
    with pytest.raises(ValueError, match=r"needs a mask of shape \(B,1,H,W\), got None"):
        SaliencyMaskL1Loss()(f, f, f)
    with pytest.raises(ValueError, match=r"floating point"):
        max_intensity_loss(f, f, torch.zeros(1, 1, 4, 4, dtype=torch.uint8))


def test_ssim_size_and_window_errors():
    f = torch.rand(1, 1, 5, 5)
    with pytest.raises(ValueError, match=r"H and W > window_size // 2 = 5"):
        ssim_fusion_loss(f, f, f)
    with pytest.raises(ValueError, match=r"odd positive int, got 4"):
        SSIMFusionLoss(window_size=4)


def test_option_errors():
    with pytest.raises(ValueError, match=r"unknown 'avg' \(choices: published, weighted\)"):
        SaliencyMaskL1Loss(formula='avg')
    with pytest.raises(ValueError, match=r"unknown formula 'x' \(choices: published, weighted\)"):
        saliency_mask_l1_loss(*[torch.rand(1, 1, 2, 2)] * 4, formula='x')
    with pytest.raises(TypeError, match='reduction'):  # every loss is a mean: no such option
        MaxIntensityLoss(reduction='sum')
    with pytest.raises(ConfigError, match=r"loss_weight: expected a number, got '1e-4'.*!!float"):
        MaxIntensityLoss(loss_weight='1e-4')
    with pytest.raises(ConfigError, match=r"finite number >= 0"):
        MaxGradientLoss(loss_weight=-1.0)
    with pytest.raises(ConfigError):
        MaxGradientLoss(loss_weight=math.nan)


def test_build_loss_and_registry_errors():
    cfg = {'type': 'MaxIntensityLoss', 'loss_weight': 3.0}
    loss = build_loss(cfg)
    assert isinstance(loss, MaxIntensityLoss) and loss.loss_weight == 3.0
    assert cfg == {'type': 'MaxIntensityLoss', 'loss_weight': 3.0}
    with pytest.raises(RegistryError) as err:
        build_loss({'type': 'MaxIntensityLos'})
    msg = str(err.value)
    assert '\n' not in msg
    for name in ('FrequencyAmplitudeLoss', 'MaxGradientLoss', 'SSIMFusionLoss', 'SaliencyMaskL1Loss'):
        assert name in msg
    assert "did you mean 'MaxIntensityLoss'?" in msg
    with pytest.raises(RegistryError, match=r"train.losses.loss_wieght: .*did you mean 'loss_weight'"):
        build_loss({'type': 'MaxIntensityLoss', 'loss_wieght': 1.0})
