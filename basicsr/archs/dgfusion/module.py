"""DGFusion: discrepancy-guided visible-infrared fusion network.

The network follows the published model exactly (layers, shapes and parameter names of its
released code):

1. ``enhancer`` -- amplitude-phase feature enhancer: shallow encoders per modality, joint
   amplitude and joint phase, the learnable discrepancy spectrum ``D = a*V - b*I`` and its
   refinement; it returns three spectra ``S_d``, ``S_ap``, ``S_pa``.
2. ``extractor`` -- discrepancy-aware feature extractor: one attention block for the frequency
   branch (q=S_d, k=S_pa, v=S_ap) and one for the spatial branch (q=S_d, k=S_ap, v=S_pa).
3. ``fusion`` -- adaptive discrepancy-guided fusion: sigmoid gates weigh the two branches.
4. ``reconstruction`` -- two convolutions back to one luminance channel.

Unlike the published module, this one holds no parameters that its forward pass does not use;
``basicsr.archs.dgfusion.published`` maps published checkpoints onto these names.

Its blocks and the wiring of its spectra are in :mod:`basicsr.archs.dgfusion.blocks`, shared
with the lean, reference and export evaluations.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from basicsr.archs.dgfusion.blocks import (ConvLReLUBlock, Gate, Projection, ShallowEncoder,
                                           attention_inputs, stage1_spectra)
from basicsr.archs.dgfusion.lean import lean_forward
from basicsr.archs.dgfusion.spectral import (NONFINITE_FILL, canonical_fft2, canonicalize_phase_,
                                             complex_step, ifft2_real, polar_to_stacked_lean,
                                             spectral_autocast, to_float32)
from basicsr.utils.errors import ConfigError


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of every pixel, with per-channel weight and bias.

    ``y = (x - mean_c(x)) / sqrt(var_c(x) + eps) * weight + bias`` with the biased variance.
    Input and output (B,C,H,W) float; ``weight``/``bias`` have shape (C,).
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the fused kernel over a channels-last view: one pass, and autograd keeps only the
        # per-pixel mean and inverse deviation
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


@complex_step
def polar_spectra(vis_feat: torch.Tensor, ir_feat: torch.Tensor, a: torch.Tensor,
                  b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Amplitudes and phases of the spectra of ``vis_feat``, ``ir_feat`` (B,4C,H,W) float32 and
    of the discrepancy spectrum ``D = a*V - b*I`` (``a``, ``b``: shape (1,)).

    Returns ``cat(|V|, |I|)``, ``cat(angle V, angle I)`` (B,8C,H,W), ``|D|`` and ``angle D``
    (B,4C,H,W); phases in [-pi, pi], canonical at the self-conjugate bins.
    """
    vis_spec = canonical_fft2(vis_feat)  # (B,4C,H,W) complex
    ir_spec = canonical_fft2(ir_feat)
    amp_cat = torch.cat([torch.abs(vis_spec), torch.abs(ir_spec)], dim=1)
    pha_cat = torch.cat([torch.angle(vis_spec), torch.angle(ir_spec)], dim=1)
    # a*(+0) - b*(+0) can be -0 (a < 0, or the sign rules of complex products): re-canonicalise
    disc = canonicalize_phase_(a * vis_spec - b * ir_spec)
    return amp_cat, pha_cat, torch.abs(disc), torch.angle(disc)


class AmplitudePhaseEnhancer(nn.Module):
    """Stage 1: amplitude-phase feature enhancer.

    Input ``vis_y``, ``ir``: (B,1,H,W) in [0,1]. Output: three real tensors (B,8C,H,W), each a
    spectrum stored as cat(real, imag) of 4C complex channels:
    ``S_d`` (refined discrepancy), ``S_ap`` (joint amplitude with discrepancy phase) and
    ``S_pa`` (discrepancy amplitude with joint phase).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.vis_encoder = ShallowEncoder(c)
        self.ir_encoder = ShallowEncoder(c)
        # joint amplitude / joint phase: residual block on the 8C concatenation, then 8C->4C
        self.amp_joint = ConvLReLUBlock(8 * c, 8 * c)
        self.pha_joint = ConvLReLUBlock(8 * c, 8 * c)
        self.amp_proj = ConvLReLUBlock(8 * c, 4 * c)
        self.pha_proj = ConvLReLUBlock(8 * c, 4 * c)
        # discrepancy spectrum D = a*V - b*I
        self.a = nn.Parameter(torch.ones(1))
        self.b = nn.Parameter(torch.ones(1))
        self.amp_refine1 = ConvLReLUBlock(4 * c, 4 * c)
        self.amp_refine2 = ConvLReLUBlock(4 * c, 4 * c)
        self.pha_refine1 = ConvLReLUBlock(4 * c, 4 * c)
        self.pha_refine2 = ConvLReLUBlock(4 * c, 4 * c)

    def forward(self, vis_y: torch.Tensor,
                ir: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vis_feat, ir_feat = self.vis_encoder(vis_y), self.ir_encoder(ir)
        with spectral_autocast(vis_feat):
            return self._spectral(to_float32(vis_feat), to_float32(ir_feat))

    def _spectral(self, vis_feat: torch.Tensor,
                  ir_feat: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        amp_cat, pha_cat, amp_disc, pha_disc = polar_spectra(vis_feat, ir_feat, self.a, self.b)
        amp_joint = self.amp_proj(self.amp_joint(amp_cat) + amp_cat)
        pha_joint = self.pha_proj(self.pha_joint(pha_cat) + pha_cat)
        amp_disc = self.amp_refine2(self.amp_refine1(amp_disc)) + amp_disc
        pha_disc = self.pha_refine2(self.pha_refine1(pha_disc)) + pha_disc

        s_d, s_ap, s_pa = (polar_to_stacked_lean(amp, pha) for amp, pha in
                           stage1_spectra(amp_joint, pha_joint, amp_disc, pha_disc))
        return s_d, s_ap, s_pa


class DiscrepancyAttention(nn.Module):
    """Stage 2 block: discrepancy-aware feature extractor (used twice, own weights each).

    ``q``, ``k``, ``v``: (B,8C,H,W) real spectra stored as cat(real, imag). Returns
    ``norm_out(F1 * F2 + s)`` of shape (B,4C,H,W), where
    ``F1 = norm_qk(Re ifft2(wq(q) * wk(k)))`` (element-wise product of the real 8C tensors,
    then read as complex), ``F2 = norm_v(Re ifft2(wv(v)))`` and ``s = Re ifft2(q)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c8 = 8 * channels
        self.wq = Projection(c8)
        self.wk = Projection(c8)
        self.wv = Projection(c8)
        self.norm_qk = ChannelLayerNorm(4 * channels)
        self.norm_v = ChannelLayerNorm(4 * channels)
        self.norm_out = ChannelLayerNorm(4 * channels)

    def _query_key(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``wq(q) * wk(k)``. Under autograd the two output convolutions are recomputed in
        backward instead of keeping both 8C-channel products' factors (their inputs are kept
        anyway): two more convolutions per step, four fewer full-size tensors held."""
        hidden_q = self.wq.hidden(q)
        hidden_k = self.wk.hidden(k)

        def product(hq: torch.Tensor, hk: torch.Tensor) -> torch.Tensor:
            return self.wq.second(hq) * self.wk.second(hk)
        if torch.is_grad_enabled() and hidden_q.requires_grad:
            return checkpoint(product, hidden_q, hidden_k, use_reentrant=False)
        return product(hidden_q, hidden_k)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``skip``: ``Re ifft2(q as complex)`` when the caller already has it, else computed."""
        f1 = self.norm_qk(ifft2_real(self._query_key(q, k)))
        f2 = self.norm_v(ifft2_real(self.wv(v)))
        if skip is None:
            skip = ifft2_real(q)
        return self.norm_out(f1 * f2 + skip)


class DiscrepancyAwareExtractor(nn.Module):
    """Stage 2: frequency and spatial branch, wired by :func:`attention_inputs`.

    Inputs (B,8C,H,W) each; returns ``(fre, spa)``, each (B,4C,H,W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.frequency = DiscrepancyAttention(channels)
        self.spatial = DiscrepancyAttention(channels)

    def forward(self, s_d: torch.Tensor, s_ap: torch.Tensor,
                s_pa: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        wiring = attention_inputs(s_d, s_ap, s_pa)
        skip = ifft2_real(s_d)  # the same in both blocks: computed once
        fre = self.frequency(*wiring['frequency'], skip)
        spa = self.spatial(*wiring['spatial'], skip)
        return fre, spa


class AdaptiveFusion(nn.Module):
    """Stage 3: adaptive discrepancy-guided fusion.

    ``g = sigmoid(conv(conv(cat(fre, spa))))`` (8C->4C->8C, no activation in between);
    returns ``fre * g[:, :4C] + spa * g[:, 4C:]``, shape (B,4C,H,W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gate = Gate(channels)

    def forward(self, fre: torch.Tensor, spa: torch.Tensor) -> torch.Tensor:
        g_fre, g_spa = self.gate(torch.cat([fre, spa], dim=1)).chunk(2, dim=1)
        return fre * g_fre + spa * g_spa


class DGFusion(nn.Module):
    """DGFusion network: ``forward(vis_y, ir) -> fused_y``.

    Args:
        channels: base width C (published model: 16, 3,091,971 parameters).

    Inputs ``vis_y`` (visible luminance, BT.601 Y) and ``ir``: (B,1,H,W) float in [0,1], any
    H and W. Output: fused luminance (B,1,H,W), same dtype/device, NOT clamped.

    After every forward, ``last_nonfinite`` holds a 0-dim int64 tensor (on the input's device)
    with the number of non-finite fused features that were replaced by 1e-5, as the published
    model does; read it with ``int(net.last_nonfinite)`` when logging (a host sync).

    Example:
        >>> net = DGFusion(channels=2)
        >>> net(torch.rand(1, 1, 9, 7), torch.rand(1, 1, 9, 7)).shape
        torch.Size([1, 1, 9, 7])
    """

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ConfigError(f"DGFusion: channels must be a positive int, got {channels!r}")
        self.channels = channels
        self.enhancer = AmplitudePhaseEnhancer(channels)
        self.extractor = DiscrepancyAwareExtractor(channels)
        self.fusion = AdaptiveFusion(channels)
        self.reconstruction = ConvLReLUBlock(4 * channels, 1, hidden=2 * channels)
        self.last_nonfinite: torch.Tensor = torch.zeros((), dtype=torch.long)
        # without autograd and not training, forward takes the lean path (same function)
        self.lean_inference = True
        # convolution weights in channels-last layout: every convolution then runs in the
        # layout the CPU (oneDNN) and GPU (cuDNN) kernels are fastest in, in training too
        self.to(memory_format=torch.channels_last)

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        if vis_y.dim() != 4 or vis_y.shape[1] != 1 or vis_y.shape != ir.shape:
            raise ValueError(f"DGFusion: expected vis_y and ir of equal shape (B,1,H,W), got "
                             f"{tuple(vis_y.shape)} and {tuple(ir.shape)}")
        if self.lean_inference and not self.training and not torch.is_grad_enabled():
            return lean_forward(self, vis_y, ir)
        s_d, s_ap, s_pa = self.enhancer(vis_y, ir)
        with spectral_autocast(s_d):
            fre, spa = self.extractor(s_d, s_ap, s_pa)
        res = self.fusion(fre, spa)
        finite = torch.isfinite(res)
        self.last_nonfinite = (~finite).sum().detach()
        res = torch.where(finite, res, torch.full((), NONFINITE_FILL, dtype=res.dtype,
                                                  device=res.device))
        return self.reconstruction(res)
