"""Training losses of visible-thermal fusion: a pure function and a thin module per loss.

Every function takes luminance-like tensors of shape (B, 1, H, W), floating point, in [0, 1]:

* ``fused`` -- F, the network's fused Y channel;
* ``vis_y`` -- V, the Y channel of the visible image;
* ``ir``    -- I, the infrared image;
* ``mask``  -- M, the saliency mask (1 where the visible image should win), when needed.

and returns a 0-dim tensor on the inputs' device, in their (promoted) dtype. Half-precision
inputs are computed and returned in float32 where the sums could overflow (FFT, SSIM).

The modules share one forward signature, so the trainer can call them alike:
``forward(fused, vis_y, ir, mask=None) -> loss_weight * loss``. They are registered in
``LOSS_REGISTRY`` under their class names.

Example:
    >>> fused, vis_y, ir = torch.rand(3, 2, 1, 16, 16).unbind(0)
    >>> MaxIntensityLoss(loss_weight=10.0)(fused, vis_y, ir).shape
    torch.Size([])
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as nnf
from kornia.filters import get_sobel_kernel2d
from kornia.metrics import ssim as kornia_ssim

from basicsr.utils.errors import ConfigError
from basicsr.utils.registry import LOSS_REGISTRY


MASK_FORMULAS: Tuple[str, ...] = ('published', 'weighted')


class LossOptionError(ConfigError, ValueError):
    """A loss constructor option is invalid (a ``ConfigError`` that is also a ``ValueError``)."""


# --------------------------------------------------------------------------------------------
# input checks

def _check_images(where: str, fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                  mask: Optional[torch.Tensor] = None) -> None:
    """Raise a one-line error unless every given tensor is floating point (B, 1, H, W) like ``fused``."""
    named = [('fused', fused), ('vis_y', vis_y), ('ir', ir)]
    if mask is not None:
        named.append(('mask', mask))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{where}: expected {name} to be a torch.Tensor of shape (B,1,H,W), "
                            f"got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 1:
            raise ValueError(f"{where}: expected {name} of shape (B,1,H,W), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{where}: expected {name} to be a floating point tensor in [0,1], "
                             f"got dtype {t.dtype}")
    for name, t in named[1:]:
        if t.shape != fused.shape:
            raise ValueError(f"{where}: expected {name} of shape (B,1,H,W) = {tuple(fused.shape)} "
                             f"like fused, got {tuple(t.shape)}")


def _at_least_float32(*tensors: torch.Tensor) -> Sequence[torch.Tensor]:
    """Cast float16/bfloat16 tensors to float32; leave float32/float64 as they are."""
    return [t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors]


# --------------------------------------------------------------------------------------------
# pure functions

def saliency_mask_l1_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                          mask: torch.Tensor, formula: str = 'published') -> torch.Tensor:
    r"""Mask-guided intensity loss.

    ``formula='published'`` is the objective of the published DGFusion training code:

    .. math:: \operatorname{mean}|M V - F| + \operatorname{mean}|F - (1 - [M = 1])\, I|

    where :math:`[M = 1]` is 1 where the mask is exactly 1 and 0 elsewhere (the published
    masks are binary, so this is ``1 - M`` for them; a soft mask of 0.5 counts as 0).

    ``formula='weighted'`` is the single-term blend the method family describes:

    .. math:: \operatorname{mean}|F - (M V + (1 - M) I)|

    Args:
        fused, vis_y, ir, mask: (B, 1, H, W) floating point in [0, 1].
        formula: ``'published'`` or ``'weighted'``.

    Returns:
        0-dim tensor, >= 0.
    """
    if formula not in MASK_FORMULAS:
        raise LossOptionError(f"saliency_mask_l1_loss: unknown formula '{formula}' "
                              f"(choices: {', '.join(MASK_FORMULAS)})")
    _check_images('saliency_mask_l1_loss', fused, vis_y, ir, mask)
    if formula == 'published':
        ir_weight = 1.0 - (mask == 1).to(fused.dtype)
        return (mask * vis_y - fused).abs().mean() + (fused - ir_weight * ir).abs().mean()
    return (fused - (mask * vis_y + (1.0 - mask) * ir)).abs().mean()


def max_intensity_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    r"""Intensity loss towards the brighter source: :math:`\operatorname{mean}|F - \max(V, I)|`.

    Args:
        fused, vis_y, ir: (B, 1, H, W) floating point in [0, 1].

    Returns:
        0-dim tensor, >= 0.
    """
    _check_images('max_intensity_loss', fused, vis_y, ir)
    return (fused - torch.maximum(vis_y, ir)).abs().mean()


def sobel_gradient(image: torch.Tensor) -> torch.Tensor:
    r"""Gradient magnitude :math:`G = |S_x * X| + |S_y * X|` with the raw 3x3 Sobel pair.

    Zero padding and no normalisation, as in the published training code. (kornia's
    ``spatial_gradient``/``sobel`` pad by replication and divide by 8, so only its kernel is
    used here.) The kernel is applied as a correlation; a convolution flips its sign only,
    which the absolute values remove. On a constant image the interior is 0 and the border
    is not: 4c on edges and 6c on corners for a constant c.

    Args:
        image: (B, 1, H, W) floating point.

    Returns:
        (B, 1, H, W), same dtype and device, >= 0.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[1] != 1:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"sobel_gradient: expected image of shape (B,1,H,W), got {got}")
    kernel = get_sobel_kernel2d(device=image.device, dtype=image.dtype).unsqueeze(1)  # (2,1,3,3)
    response = nnf.conv2d(image, kernel, padding=1)                                    # (B,2,H,W)
    return response.abs().sum(dim=1, keepdim=True)


def max_gradient_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    r"""Texture loss towards the stronger gradient: :math:`\operatorname{mean}|G(F) - \max(G(V), G(I))|`.

    :math:`G` is :func:`sobel_gradient` (raw Sobel, zero padding).

    Args:
        fused, vis_y, ir: (B, 1, H, W) floating point in [0, 1].

    Returns:
        0-dim tensor, >= 0.
    """
    _check_images('max_gradient_loss', fused, vis_y, ir)
    target = torch.maximum(sobel_gradient(vis_y), sobel_gradient(ir))
    return (sobel_gradient(fused) - target).abs().mean()


def ssim_fusion_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                     window_size: int = 11) -> torch.Tensor:
    r"""Structural loss :math:`1 - (\mathrm{SSIM}(F, V) + \mathrm{SSIM}(F, I)) / 2`.

    SSIM is ``kornia.metrics.ssim`` averaged over its map: Gaussian window of
    ``window_size`` taps with :math:`\sigma = 1.5`, reflect padding (so H and W must exceed
    ``window_size // 2``), data range 1, :math:`c_1 = 0.01^2`, :math:`c_2 = 0.03^2`.

    Args:
        fused, vis_y, ir: (B, 1, H, W) floating point in [0, 1].
        window_size: odd positive number of window taps.

    Returns:
        0-dim tensor in [0, 2] (0 when F = V = I).
    """
    _check_images('ssim_fusion_loss', fused, vis_y, ir)
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1 \
            or window_size % 2 == 0:
        raise LossOptionError(f"ssim_fusion_loss: window_size must be an odd positive int, "
                              f"got {window_size!r}")
    height, width = fused.shape[-2:]
    if min(height, width) <= window_size // 2:
        raise ValueError(f"ssim_fusion_loss: expected H and W > window_size // 2 = "
                         f"{window_size // 2}, got (B,1,H,W) = {tuple(fused.shape)}")
    fused, vis_y, ir = _at_least_float32(fused, vis_y, ir)
    ssim_vis = kornia_ssim(fused, vis_y, window_size, max_val=1.0).mean()
    ssim_ir = kornia_ssim(fused, ir, window_size, max_val=1.0).mean()
    return 1.0 - (ssim_vis + ssim_ir) / 2.0


def frequency_amplitude_loss(fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    r"""Amplitude-spectrum loss :math:`\operatorname{mean}((|\mathcal{F}F| - (|\mathcal{F}V| + |\mathcal{F}I|)/2)^2)`.

    :math:`\mathcal{F}` is ``torch.fft.fft2`` over (H, W) with its default (unnormalised)
    scaling, so the DC term is the image sum; the mean runs over all B*H*W frequencies.

    Args:
        fused, vis_y, ir: (B, 1, H, W) floating point in [0, 1].

    Returns:
        0-dim tensor, >= 0 (float32 for half-precision inputs).
    """
    _check_images('frequency_amplitude_loss', fused, vis_y, ir)
    fused, vis_y, ir = _at_least_float32(fused, vis_y, ir)
    amp_fused = torch.fft.fft2(fused).abs()
    amp_target = (torch.fft.fft2(vis_y).abs() + torch.fft.fft2(ir).abs()) / 2.0
    return (amp_fused - amp_target).pow(2).mean()


# --------------------------------------------------------------------------------------------
# modules

class _FusionLoss(nn.Module):
    """Common part of the loss modules: ``loss_weight * fn(fused, vis_y, ir[, mask], *options)``.

    A subclass sets ``fn`` (its loss function), ``needs_mask`` (the function takes the mask
    after the three images) and ``options`` (names of its attributes passed after them, in
    order, and shown by ``repr``). Every loss is a mean over pixels; ``loss_weight`` scales it.
    """

    needs_mask = False  # True for losses that need the visible-weight mask
    options: Tuple[str, ...] = ()
    fn: Callable[..., torch.Tensor]  # the loss function (a staticmethod in each subclass)

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(loss_weight, bool) or not isinstance(loss_weight, (int, float)):
            hint = " (YAML reads 1e-4 as a string; write 1.0e-4 or !!float 1e-4)" \
                if isinstance(loss_weight, str) else ''
            raise LossOptionError(f"{name}.loss_weight: expected a number, got {loss_weight!r}{hint}")
        if not math.isfinite(loss_weight) or loss_weight < 0:
            raise LossOptionError(f"{name}.loss_weight: expected a finite number >= 0, got {loss_weight!r}")
        self.loss_weight = float(loss_weight)

    def _option(self, name: str, value: Any, valid: bool, problem: str) -> Any:
        """``value`` when ``valid``, else LossOptionError ``<Class>.<name>: <problem>``."""
        if not valid:
            raise LossOptionError(f"{type(self).__name__}.{name}: {problem}")
        return value

    def forward(self, fused: torch.Tensor, vis_y: torch.Tensor, ir: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B,1,H,W) images in [0,1] (``mask`` only for losses that need it) -> 0-dim loss."""
        images = (fused, vis_y, ir)
        if self.needs_mask:
            if mask is None:
                raise ValueError(f"{type(self).__name__}: needs a mask of shape (B,1,H,W), got "
                                 "None (give the dataset a mask folder or let it compute masks)")
            images += (mask,)
        return self.loss_weight * self.fn(*images, *(getattr(self, n) for n in self.options))

    def extra_repr(self) -> str:
        return ''.join(f"{n}={getattr(self, n)!r}, " for n in self.options) \
            + f"loss_weight={self.loss_weight}"


@LOSS_REGISTRY.register()
class SaliencyMaskL1Loss(_FusionLoss):
    """Module of :func:`saliency_mask_l1_loss`; needs the mask.

    Args:
        formula: ``'published'`` (default) or ``'weighted'``.
        loss_weight: factor applied to the loss.
    """

    needs_mask = True
    options = ('formula',)
    fn = staticmethod(saliency_mask_l1_loss)

    def __init__(self, formula: str = 'published', loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.formula = self._option('formula', formula, formula in MASK_FORMULAS,
                                    f"unknown '{formula}' (choices: {', '.join(MASK_FORMULAS)})")


@LOSS_REGISTRY.register()
class MaxIntensityLoss(_FusionLoss):
    """Module of :func:`max_intensity_loss`; the mask is ignored."""

    fn = staticmethod(max_intensity_loss)


@LOSS_REGISTRY.register()
class MaxGradientLoss(_FusionLoss):
    """Module of :func:`max_gradient_loss`; the mask is ignored."""

    fn = staticmethod(max_gradient_loss)


@LOSS_REGISTRY.register()
class SSIMFusionLoss(_FusionLoss):
    """Module of :func:`ssim_fusion_loss`; the mask is ignored.

    Args:
        window_size: odd number of Gaussian window taps (sigma 1.5).
        loss_weight: factor applied to the loss.
    """

    options = ('window_size',)
    fn = staticmethod(ssim_fusion_loss)

    def __init__(self, window_size: int = 11, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        odd = isinstance(window_size, int) and not isinstance(window_size, bool) \
            and window_size >= 1 and window_size % 2 == 1
        self.window_size = self._option('window_size', window_size, odd,
                                        f"expected an odd positive int, got {window_size!r}")


@LOSS_REGISTRY.register()
class FrequencyAmplitudeLoss(_FusionLoss):
    """Module of :func:`frequency_amplitude_loss`; the mask is ignored."""

    fn = staticmethod(frequency_amplitude_loss)
