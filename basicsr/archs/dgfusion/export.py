"""DGFusion in real arithmetic, for export to ONNX (and TensorRT) at any frame size.

``export_forward(net, vis_y, ir)`` is :func:`basicsr.archs.dgfusion.reference.functional_forward`
(the function ``reference_forward`` evaluates) with the spectral backend :class:`DftBasis`: every
spectrum is a pair of real tensors (real part, imaginary part) and every operation is one that
ONNX expresses exactly, with no Python-side shape logic:

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
from typing import Optional, Tuple

import torch
import torch.nn as nn

from basicsr.archs.dgfusion.reference import functional_forward

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
    """Spectral backend of real arithmetic: cosine and sine DFT bases for an (H, W) frame and
    its self-conjugate-bin mask; a spectrum is a (real, imag) pair of (B,K,H,W) tensors.

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

    @staticmethod
    def amplitude(spec: Pair) -> torch.Tensor:
        return amplitude(*spec)

    @staticmethod
    def phase(spec: Pair) -> torch.Tensor:
        return phase(*spec)

    def discrepancy(self, a: torch.Tensor, b: torch.Tensor, vis: Pair, ir: Pair) -> Pair:
        """``a*vis - b*ir`` with canonical phase (``a*(+0) - b*(+0)`` can be -0)."""
        return a * vis[0] - b * ir[0], self.canonical(a * vis[1] - b * ir[1])

    def ifft2_real(self, stacked: torch.Tensor) -> torch.Tensor:
        """``Re ifft2`` of a (B,2K,H,W) spectrum stored as cat(real, imag) -> (B,K,H,W)."""
        re, im = stacked.chunk(2, dim=1)
        t_re = self.cos_h @ re - self.sin_h @ im  # e^{+i..} along H
        t_im = self.sin_h @ re + self.cos_h @ im
        return (t_re @ self.cos_w - t_im @ self.sin_w) * self.scale


def export_forward(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor,
                   conv_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """DGFusion's function in real arithmetic: (B,1,H,W) ``vis_y``, ``ir`` float32 or float64
    in [0,1] -> (B,1,H,W) fused luminance in the inputs' dtype, not clamped. ``conv_dtype``:
    see :func:`basicsr.archs.dgfusion.reference.functional_forward`."""
    basis = DftBasis(vis_y.shape[-2], vis_y.shape[-1], vis_y.dtype, vis_y.device)
    return functional_forward(net, vis_y, ir, basis, conv_dtype)


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
