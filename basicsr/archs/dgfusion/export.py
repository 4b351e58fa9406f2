"""DGFusion in real arithmetic, for export to ONNX (and TensorRT) at any frame size.

``export_forward(net, vis_y, ir)`` computes the network's function with ``net``'s weights, like
``reference_forward``, but every spectrum is a pair of real tensors (real part, imaginary part)
and every operation is one that ONNX expresses exactly, with no Python-side shape logic:

* 2-D DFTs are matrix products with cosine/sine bases built inside the graph from the input's
  height and width (``Range``, ``Mod``, ``Cos``, ``Sin``, ``MatMul``); the exponent ``k*n`` is
  reduced modulo the length in integers first, so every basis entry is accurate to rounding;
* canonical phase: a mask built from the same dynamic size puts an imaginary part of exactly
  +0 at the self-conjugate bins (``Where``, never a multiplication, which would keep ``-0``);
* amplitude ``sqrt(re^2 + im^2)`` and phase by :func:`phase`, a piecewise ``atan`` with the
  branch conventions of ``torch.angle`` (an imaginary part of +0 on the negative real axis gives
  +pi; ONNX has no ``Atan2`` and the exporter's decomposition returns -pi there).

The same function runs in torch (float64: within 1e-9 of ``reference_forward``) and is what
``scripts/export_onnx.py`` traces, so the exported graph and the checked function are one.
``ExportableDGFusion`` wraps it as a module with ``forward(vis_y, ir) -> fused_y``.

Cost: each DFT is O(HW(H+W)) multiply-adds per channel (dense matrix products, which GEMM
kernels and TensorRT run well) instead of O(HW log HW) for an FFT.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from basicsr.archs.dgfusion.reference import SLOPE, conv, conv_lrelu2, layer_norm
from basicsr.archs.dgfusion.spectral import NONFINITE_FILL, polar_to_stacked

Pair = Tuple[torch.Tensor, torch.Tensor]


def phase(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """``angle(re + i*im)`` in [-pi, pi] from ``Atan``, ``Div`` and ``Where`` only.

    Matches ``torch.angle`` for every value with a nonzero real part, on the imaginary axis, at
    0 (phase 0) and for ``im = +0`` on the negative real axis (+pi). It differs only for an
    imaginary part of exactly ``-0`` on the negative real axis (+pi instead of -pi), which the
    canonical bins never have; elsewhere an exact -0 needs an exactly cancelling sum.
    """
    def const(value: float) -> torch.Tensor:
        return torch.full((), value, dtype=re.dtype, device=re.device)

    zero_re = re == 0
    ratio = torch.atan(im / torch.where(zero_re, const(1.0), re))
    left = torch.where(re < 0, ratio + torch.where(im < 0, const(-math.pi), const(math.pi)), ratio)
    axis = torch.where(im > 0, const(math.pi / 2),
                       torch.where(im < 0, const(-math.pi / 2), const(0.0)))
    return torch.where(zero_re, axis, left)


def amplitude(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """``|re + i*im|`` (ONNX has no ``Hypot``; spectra stay far from float32 overflow)."""
    return torch.sqrt(re * re + im * im)


class DftBasis:
    """Cosine and sine DFT bases for an (H, W) frame and its self-conjugate-bin mask.

    ``cos_h[k, n] = cos(2*pi*k*n/H)``, ``sin_h`` likewise (H, H); ``cos_w``, ``sin_w`` (W, W).
    ``k*n`` is reduced modulo the length to (-len/2, len/2] before the angle is formed, so the
    angle is at most pi and the entries are accurate to rounding at any size. ``self_conj`` is
    (H, W) bool, true at (0,0), (H/2,0), (0,W/2), (H/2,W/2) where those exist. Everything is
    computed from the tensor sizes with tensor operations, so an exported graph keeps H and W
    dynamic.
    """

    def __init__(self, height, width, dtype: torch.dtype, device: torch.device) -> None:
        self.cos_h, self.sin_h, rows = self._basis(height, dtype, device)
        self.cos_w, self.sin_w, cols = self._basis(width, dtype, device)
        self.self_conj = rows[:, None] & cols[None, :]
        self.scale = 1.0 / (height * width)

    @staticmethod
    def _basis(n, dtype: torch.dtype, device: torch.device):
        k = torch.arange(n, device=device)
        length = torch.full((), n, dtype=k.dtype, device=device)  # a tensor: stays dynamic
        m = torch.remainder(k[:, None] * k[None, :], length)
        m = torch.where(2 * m > length, m - length, m)
        angle = m.to(dtype) * (2.0 * math.pi) / length.to(dtype)
        self_conj = (k == 0) | (2 * k == length)
        return torch.cos(angle), torch.sin(angle), self_conj

    def fft2(self, x: torch.Tensor) -> Pair:
        """Canonical-phase ``fft2`` of a real (B,K,H,W) tensor -> (real, imag), each (B,K,H,W)."""
        along_w_cos, along_w_sin = x @ self.cos_w, x @ self.sin_w  # x * e^{-i..}: cos - i sin
        re = self.cos_h @ along_w_cos - self.sin_h @ along_w_sin
        im = -(self.cos_h @ along_w_sin + self.sin_h @ along_w_cos)
        return re, self.canonical(im)

    def canonical(self, im: torch.Tensor) -> torch.Tensor:
        """Imaginary part with exactly +0 at the self-conjugate bins."""
        return torch.where(self.self_conj, torch.zeros((), dtype=im.dtype, device=im.device), im)

    def ifft2_real(self, stacked: torch.Tensor) -> torch.Tensor:
        """``Re ifft2`` of a (B,2K,H,W) spectrum stored as cat(real, imag) -> (B,K,H,W)."""
        re, im = stacked.chunk(2, dim=1)
        t_re = self.cos_h @ re - self.sin_h @ im  # e^{+i..} along H
        t_im = self.sin_h @ re + self.cos_h @ im
        return (t_re @ self.cos_w - t_im @ self.sin_w) * self.scale


def attention(block: nn.Module, basis: DftBasis, q: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Stage-2 block on (B,8C,H,W) stacked spectra -> (B,4C,H,W); ``skip = Re ifft2(q)``."""
    def proj(p: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        return conv(p[2], F.relu(conv(p[0], x)))

    f1 = layer_norm(block.norm_qk, basis.ifft2_real(proj(block.wq, q) * proj(block.wk, k)))
    f2 = layer_norm(block.norm_v, basis.ifft2_real(proj(block.wv, v)))
    return layer_norm(block.norm_out, f1 * f2 + skip)


def export_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor,
                   conv_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """DGFusion's function in real arithmetic.

    Args:
        net: a DGFusion module (only its parameters are read).
        vis_y, ir: (B,1,H,W) float32 or float64 in [0,1], any B, H, W.
        conv_dtype: dtype of the encoders, the gates and the reconstruction (e.g. float16, with
            ``net`` converted to it); every spectral stage stays in the inputs' dtype, as in the
            module's forward under autocast. None: the inputs' dtype everywhere.
    Returns:
        (B,1,H,W) fused luminance in the inputs' dtype, not clamped.
    """
    enh = net.enhancer
    dtype = vis_y.dtype
    low = dtype if conv_dtype is None else conv_dtype

    def in_low(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return fn(x.to(low)).to(dtype)

    def encode(encoder: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(conv(encoder[0], x), SLOPE)
        return conv(encoder[4], F.leaky_relu(conv(encoder[2], x), SLOPE))

    basis = DftBasis(vis_y.shape[-2], vis_y.shape[-1], dtype, vis_y.device)
    vis_re, vis_im = basis.fft2(in_low(lambda x: encode(enh.vis_encoder, x), vis_y))
    ir_re, ir_im = basis.fft2(in_low(lambda x: encode(enh.ir_encoder, x), ir))
    amp_cat = torch.cat([amplitude(vis_re, vis_im), amplitude(ir_re, ir_im)], dim=1)
    pha_cat = torch.cat([phase(vis_re, vis_im), phase(ir_re, ir_im)], dim=1)
    amp_f = conv_lrelu2(enh.amp_proj, conv_lrelu2(enh.amp_joint, amp_cat) + amp_cat)
    pha_f = conv_lrelu2(enh.pha_proj, conv_lrelu2(enh.pha_joint, pha_cat) + pha_cat)

    a, b = enh.a.to(dtype), enh.b.to(dtype)
    disc_re = a * vis_re - b * ir_re
    disc_im = basis.canonical(a * vis_im - b * ir_im)  # a*(+0) - b*(+0) can be -0
    amp_d, pha_d = amplitude(disc_re, disc_im), phase(disc_re, disc_im)
    amp_d = conv_lrelu2(enh.amp_refine2, conv_lrelu2(enh.amp_refine1, amp_d)) + amp_d
    pha_d = conv_lrelu2(enh.pha_refine2, conv_lrelu2(enh.pha_refine1, pha_d)) + pha_d
    s_d = polar_to_stacked(amp_d, pha_d)
    s_ap = polar_to_stacked(amp_f, pha_d)
    s_pa = polar_to_stacked(amp_d, pha_f)

    skip = basis.ifft2_real(s_d)
    fre = attention(net.extractor.frequency, basis, s_d, s_pa, s_ap, skip)
    spa = attention(net.extractor.spatial, basis, s_d, s_ap, s_pa, skip)
    gate = net.fusion.gate
    gates = in_low(lambda x: torch.sigmoid(conv(gate[1], conv(gate[0], x))),
                   torch.cat([fre, spa], dim=1))
    g_fre, g_spa = gates.chunk(2, dim=1)
    res = fre * g_fre + spa * g_spa
    res = torch.where(torch.isfinite(res), res,
                      torch.full((), NONFINITE_FILL, dtype=res.dtype, device=res.device))
    return in_low(lambda x: conv_lrelu2(net.reconstruction, x), res)


class ExportableDGFusion(nn.Module):
    """``forward(vis_y, ir) -> fused_y`` computed by :func:`export_forward`.

    Args:
        net: a DGFusion module; a copy is kept (in float16 for the convolutions that
            ``conv_dtype=torch.float16`` moves there; spectral parameters stay float32).
        conv_dtype: see :func:`export_forward`.
    """

    def __init__(self, net: nn.Module, conv_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        # plain layout: the exported graph then holds the parameters under their own names
        net = copy.deepcopy(net).train(False).to(memory_format=torch.contiguous_format)
        if conv_dtype is not None:
            for part in (net.enhancer.vis_encoder, net.enhancer.ir_encoder, net.fusion.gate,
                         net.reconstruction):
                part.to(conv_dtype)
        self.net = net
        self.conv_dtype = conv_dtype

    def forward(self, vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        return export_forward(self.net, vis_y, ir, self.conv_dtype)
