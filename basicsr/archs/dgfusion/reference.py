"""Plain reference evaluation of DGFusion, written line by line from the network spec.

``reference_forward(net, vis_y, ir)`` computes the network's function with ``net``'s weights
the straightforward way: full-size tensors, ``fft2``/``ifft2`` of every spectrum, out-of-place
activations. It is slow and memory-hungry on purpose: run in float64 it is the reference that
the module's training forward, its lean inference forward and exported models are checked
against, and in float32 it is the "plain" baseline of ``scripts/benchmark.py``. Autograd works
through it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from basicsr.archs.dgfusion.spectral import (LRELU_SLOPE, NONFINITE_FILL, as_complex, canonical_fft2,
                                    canonicalize_phase_, polar_to_stacked)

SLOPE = LRELU_SLOPE


def conv(layer: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """3x3 convolution, padding 1, in the plain (contiguous NCHW) layout."""
    weight = layer.weight.to(x.dtype).contiguous()
    return F.conv2d(x.contiguous(), weight, layer.bias.to(x.dtype), padding=1)


def conv_lrelu2(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """conv, lrelu, conv, lrelu (Sequential indices 0 and 2)."""
    return F.leaky_relu(conv(block[2], F.leaky_relu(conv(block[0], x), SLOPE)), SLOPE)


def layer_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(x - mean_c) / sqrt(var_c + eps) * w + b`` over the channels of every pixel."""
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    w, b = norm.weight.to(x.dtype), norm.bias.to(x.dtype)
    return (x - mean) / torch.sqrt(var + norm.eps) * w[:, None, None] + b[:, None, None]


def attention(block: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    def proj(p: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        return conv(p[2], F.relu(conv(p[0], x)))

    f1 = layer_norm(block.norm_qk, torch.fft.ifft2(as_complex(proj(block.wq, q) * proj(block.wk, k))).real)
    f2 = layer_norm(block.norm_v, torch.fft.ifft2(as_complex(proj(block.wv, v))).real)
    skip = torch.fft.ifft2(as_complex(q)).real
    return layer_norm(block.norm_out, f1 * f2 + skip)


def reference_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) ``vis_y`` and ``ir`` in [0,1] -> (B,1,H,W) fused Y (unclamped), in the
    inputs' dtype (use float64 inputs for the reference values)."""
    enh = net.enhancer

    def encode(encoder: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(conv(encoder[0], x), SLOPE)
        return conv(encoder[4], F.leaky_relu(conv(encoder[2], x), SLOPE))

    vis_spec = canonical_fft2(encode(enh.vis_encoder, vis_y))
    ir_spec = canonical_fft2(encode(enh.ir_encoder, ir))
    amp_cat = torch.cat([vis_spec.abs(), ir_spec.abs()], dim=1)
    pha_cat = torch.cat([vis_spec.angle(), ir_spec.angle()], dim=1)
    amp_f = conv_lrelu2(enh.amp_proj, conv_lrelu2(enh.amp_joint, amp_cat) + amp_cat)
    pha_f = conv_lrelu2(enh.pha_proj, conv_lrelu2(enh.pha_joint, pha_cat) + pha_cat)
    a, b = enh.a.to(vis_y.dtype), enh.b.to(vis_y.dtype)
    disc = canonicalize_phase_(a * vis_spec - b * ir_spec)
    amp_d, pha_d = disc.abs(), disc.angle()
    amp_d = conv_lrelu2(enh.amp_refine2, conv_lrelu2(enh.amp_refine1, amp_d)) + amp_d
    pha_d = conv_lrelu2(enh.pha_refine2, conv_lrelu2(enh.pha_refine1, pha_d)) + pha_d
    s_d = polar_to_stacked(amp_d, pha_d)
    s_ap = polar_to_stacked(amp_f, pha_d)
    s_pa = polar_to_stacked(amp_d, pha_f)

    fre = attention(net.extractor.frequency, s_d, s_pa, s_ap)
    spa = attention(net.extractor.spatial, s_d, s_ap, s_pa)
    gate = net.fusion.gate
    g_fre, g_spa = torch.sigmoid(conv(gate[1], conv(gate[0], torch.cat([fre, spa], 1)))).chunk(2, 1)
    res = fre * g_fre + spa * g_spa
    res = torch.where(torch.isfinite(res), res, torch.full((), NONFINITE_FILL, dtype=res.dtype,
                                                          device=res.device))
    return conv_lrelu2(net.reconstruction, res)
