"""DGFusion as one plain function of its weights, with a pluggable spectral backend.

:func:`functional_forward` computes the network's function with ``net``'s weights the
straightforward way, written out step by step: full-size tensors,
out-of-place activations, plain NCHW layout. Every spectral step goes through a backend:

* :class:`TorchSpectra` -- complex tensors from ``torch.fft`` (:func:`reference_forward`): slow
  and memory-hungry on purpose; in float64 it is the reference that the module's training
  forward, its lean inference forward and exported models are checked against, in float32 the
  "plain" baseline of ``scripts/benchmark.py``. Autograd works through it.
* :class:`basicsr.archs.dgfusion.export.DftBasis` -- real arithmetic with DFT-basis matrices
  that ONNX expresses (:func:`basicsr.archs.dgfusion.export.export_forward`).

A backend holds spectra in its own form ``S`` and provides ``fft2(x) -> S`` (canonical phase),
``amplitude(S)``, ``phase(S)``, ``discrepancy(a, b, vis, ir) -> S`` (``a*vis - b*ir``,
canonical phase) and ``ifft2_real(stacked)`` (``Re ifft2`` of a (B,2K,H,W) cat(real, imag)).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from basicsr.archs.dgfusion.blocks import TwoConvBlock, attention_inputs, stage1_spectra
from basicsr.archs.dgfusion.spectral import (LRELU_SLOPE, NONFINITE_FILL, as_complex, canonical_fft2,
                                             canonicalize_phase_, polar_to_stacked)

SLOPE = LRELU_SLOPE


def conv(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, in the plain (contiguous NCHW) layout."""
    weight = layer.weight.to(x.dtype).contiguous()
    return F.conv2d(x.contiguous(), weight, layer.bias.to(x.dtype), padding=1)


def conv_lrelu2(block: TwoConvBlock, x: torch.Tensor) -> torch.Tensor:
    """conv, lrelu, conv, lrelu (the block's ``first`` and ``second`` convolutions)."""
    return F.leaky_relu(conv(block.second, F.leaky_relu(conv(block.first, x), SLOPE)), SLOPE)


def layer_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(x - mean_c) / sqrt(var_c + eps) * w + b`` over the channels of every pixel."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    w, b = norm.weight.to(x.dtype), norm.bias.to(x.dtype)
    return (x - mean) / torch.sqrt(var + norm.eps) * w[:, None, None] + b[:, None, None]


class TorchSpectra:
    """Spectral backend of complex tensors from ``torch.fft`` (see the module docstring)."""

    @staticmethod
    def fft2(x: torch.Tensor) -> torch.Tensor:
        return canonical_fft2(x)

    @staticmethod
    def amplitude(spec: torch.Tensor) -> torch.Tensor:
        return spec.abs()

    @staticmethod
    def phase(spec: torch.Tensor) -> torch.Tensor:
        return spec.angle()

    @staticmethod
    def discrepancy(a: torch.Tensor, b: torch.Tensor, vis: torch.Tensor,
                    ir: torch.Tensor) -> torch.Tensor:
        # a*(+0) - b*(+0) can be -0 (a < 0, or the sign rules of complex products): re-canonicalise
        return canonicalize_phase_(a * vis - b * ir)

    @staticmethod
    def ifft2_real(stacked: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(as_complex(stacked)).real


def attention(block: nn.Module, spectra: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              skip: torch.Tensor) -> torch.Tensor:
    """Stage-2 block on (B,8C,H,W) stacked spectra -> (B,4C,H,W); ``skip = Re ifft2(q)``."""
    def proj(p: TwoConvBlock, x: torch.Tensor) -> torch.Tensor:
        return conv(p.second, F.relu(conv(p.first, x)))

    f1 = layer_norm(block.norm_qk, spectra.ifft2_real(proj(block.wq, q) * proj(block.wk, k)))
    f2 = layer_norm(block.norm_v, spectra.ifft2_real(proj(block.wv, v)))
    return layer_norm(block.norm_out, f1 * f2 + skip)


def functional_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor, spectra: Any,
                       conv_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """DGFusion's function with ``net``'s weights and the spectral backend ``spectra``.

    Args:
        net: a DGFusion module (only its parameters are read).
        vis_y, ir: (B,1,H,W) float32 or float64 in [0,1], any B, H, W.
        spectra: the spectral backend (:class:`TorchSpectra`, ``DftBasis``).
        conv_dtype: dtype of the encoders, the gates and the reconstruction (e.g. float16, with
            those parts of ``net`` converted to it); every spectral stage stays in the inputs'
            dtype, as in the module's forward under autocast. None: the inputs' dtype everywhere.
    Returns:
        (B,1,H,W) fused luminance in the inputs' dtype, not clamped.
    """
    enh = net.enhancer
    dtype = vis_y.dtype
    low = dtype if conv_dtype is None else conv_dtype

    def in_low(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return fn(x.to(low)).to(dtype)

    def encode(encoder: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        first, second, third = encoder.convs
        return lambda x: conv(third, F.leaky_relu(conv(second, F.leaky_relu(conv(first, x), SLOPE)),
                                                  SLOPE))

    vis_spec = spectra.fft2(in_low(encode(enh.vis_encoder), vis_y))
    ir_spec = spectra.fft2(in_low(encode(enh.ir_encoder), ir))
    amp_cat = torch.cat([spectra.amplitude(vis_spec), spectra.amplitude(ir_spec)], dim=1)
    pha_cat = torch.cat([spectra.phase(vis_spec), spectra.phase(ir_spec)], dim=1)
    amp_f = conv_lrelu2(enh.amp_proj, conv_lrelu2(enh.amp_joint, amp_cat) + amp_cat)
    pha_f = conv_lrelu2(enh.pha_proj, conv_lrelu2(enh.pha_joint, pha_cat) + pha_cat)

    disc = spectra.discrepancy(enh.a.to(dtype), enh.b.to(dtype), vis_spec, ir_spec)
    amp_d, pha_d = spectra.amplitude(disc), spectra.phase(disc)
    amp_d = conv_lrelu2(enh.amp_refine2, conv_lrelu2(enh.amp_refine1, amp_d)) + amp_d
    pha_d = conv_lrelu2(enh.pha_refine2, conv_lrelu2(enh.pha_refine1, pha_d)) + pha_d
    s_d, s_ap, s_pa = (polar_to_stacked(amp, pha) for amp, pha in
                       stage1_spectra(amp_f, pha_f, amp_d, pha_d))

    wiring = attention_inputs(s_d, s_ap, s_pa)
    skip = spectra.ifft2_real(s_d)  # shared by both blocks (their q)
    fre = attention(net.extractor.frequency, spectra, *wiring['frequency'], skip)
    spa = attention(net.extractor.spatial, spectra, *wiring['spatial'], skip)
    gate = net.fusion.gate
    gates = in_low(lambda x: torch.sigmoid(conv(gate.second, conv(gate.first, x))),
                   torch.cat([fre, spa], dim=1))
    g_fre, g_spa = gates.chunk(2, dim=1)
    res = fre * g_fre + spa * g_spa
    res = torch.where(torch.isfinite(res), res,
                      torch.full((), NONFINITE_FILL, dtype=res.dtype, device=res.device))
    return in_low(lambda x: conv_lrelu2(net.reconstruction, x), res)


def reference_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) ``vis_y`` and ``ir`` in [0,1] -> (B,1,H,W) fused Y (unclamped), in the
    inputs' dtype, through ``torch.fft`` (use float64 inputs for the reference values)."""
    return functional_forward(net, vis_y, ir, TorchSpectra())
