"""DGFusion in real arithmetic, for export to ONNX (and TensorRT) at any frame size.

``export_forward(net, vis_y, ir)`` is :func:`basicsr.archs.dgfusion.reference.functional_forward`
(the function ``reference_forward`` evaluates) with the spectral backend :class:`DftBasis`: every
spectrum is a pair of real tensors (real part, imaginary part) and every operation is one that
ONNX expresses exactly, with no Python-side shape logic:

* 2-D DFTs are matrix products with cosine/sine bases built inside the graph from the input's
  height and width (``Range``, ``Mod``, ``Cos``, ``Sin``, ``MatMul``); the exponent ``k*n`` is
  reduced modulo the length in integers first, so every basis entry is accurate to rounding;
* spectra are one-sided, as in the lean torch path: a W x (W//2+1) basis along the width, then
  H x H along the height; amplitudes and phases are taken on that half and unfolded to the full
  size by the Hermitian mirror (``Gather`` with index tensors from the same sizes); the inverse
  of a spectrum of real maps is two one-sided forward transforms (:meth:`DftBasis.ifft2_real`);
* canonical phase: a mask built from the same dynamic size puts an imaginary part of exactly
  +0 at the self-conjugate bins (``Where``, never a multiplication, which would keep ``-0``);
* amplitude ``sqrt(re^2 + im^2)`` and phase by :func:`phase`, a piecewise ``atan`` with the
  branch conventions of ``torch.angle`` (an imaginary part of +0 on the negative real axis gives
  +pi; ONNX has no ``Atan2`` and the exporter's decomposition returns -pi there).

The same function runs in torch (float64: within 1e-9 of ``reference_forward``) and is what
``scripts/export_onnx.py`` traces, so the exported graph and the checked function are one.
``ExportableDGFusion`` wraps it as a module with ``forward(vis_y, ir) -> fused_y``.

Cost: each DFT is O(HW(H+W)) multiply-adds per channel (dense matrix products, which GEMM
kernels and TensorRT run well) instead of O(HW log HW) for an FFT; the one-sided transforms
take about 0.6x the products of two-sided ones (0.32 T instead of 0.53 T multiply-adds at
C=16, 640x512).
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


def dft_basis(n, bins, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, ...]:
    """Cosine and sine DFT bases of length ``n`` for the frequencies ``0 .. bins-1``.

    Returns ``cos[t, k] = cos(2*pi*k*t/n)`` and ``sin[t, k]`` likewise, each (n, bins), and the
    (bins,) bool mask of the self-conjugate frequencies (0, and n/2 when ``n`` is even). ``k*t``
    is reduced modulo ``n`` to (-n/2, n/2] before the angle is formed, so the angle is at most pi
    and the entries are accurate to rounding at any size. ``n`` and ``bins`` may be symbolic
    sizes: everything is a tensor operation, so an exported graph keeps them dynamic.
    """
    t = torch.arange(n, device=device)
    k = torch.arange(bins, device=device)
    length = torch.full((), n, dtype=t.dtype, device=device)  # a tensor: stays dynamic
    m = torch.remainder(t[:, None] * k[None, :], length)
    m = torch.where(2 * m > length, m - length, m)
    angle = m.to(dtype) * (2.0 * math.pi) / length.to(dtype)
    return torch.cos(angle), torch.sin(angle), (k == 0) | (2 * k == length)


class DftBasis:
    """Spectral backend of real arithmetic on one-sided spectra, for an (H, W) frame.

    A spectrum is a (real, imag) pair of (B,K,H,W//2+1) tensors: the columns ``0 .. W//2`` of the
    2-D DFT of a real map (as ``torch.fft.rfft2``); the other columns are the Hermitian mirror
    ``X[-r, W-c] = conj X[r, c]``, so amplitude and phase maps are taken on the half and
    unfolded to (B,K,H,W) by :meth:`unfold` (``|X(-k)| = |X(k)|``, ``angle X(-k) = -angle X(k)``).

    Bases: ``cos_h``, ``sin_h`` (H, H) along the height, ``cos_w``, ``sin_w`` (W, W//2+1) along
    the width (see :func:`dft_basis`). ``self_conj`` (H, W//2+1) bool is true at the
    self-conjugate bins (0,0), (H/2,0), (0,W/2), (H/2,W/2) where those exist. ``mirror_rows``
    (H,) and ``mirror_cols`` (W - W//2 - 1,) int64 index the half at the mirrored bins of the
    columns ``W//2+1 .. W-1``. Everything is computed from the sizes with tensor operations, so
    an exported graph keeps H and W dynamic.
    """

    def __init__(self, height, width, dtype: torch.dtype, device: torch.device) -> None:
        half = width // 2 + 1
        self.cos_h, self.sin_h, rows = dft_basis(height, height, dtype, device)
        self.cos_w, self.sin_w, cols = dft_basis(width, half, dtype, device)
        self.self_conj = rows[:, None] & cols[None, :]
        r = torch.arange(height, device=device)
        self.mirror_rows = torch.remainder(-r, torch.full((), height, dtype=r.dtype, device=device))
        # columns W//2+1 .. W-1 read the half at W-c: W-W//2-1 .. 1
        self.mirror_cols = width - torch.arange(half, width, device=device)
        self.scale = 1.0 / (height * width)

    def real_part(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Real part of ``(cos_h - i sin_h) @ (a - i b)`` for real (B,K,H,Wh) ``a``, ``b``: the
        DFT along the height of a map whose DFT along the width is ``a - i b``."""
        return self.cos_h @ a - self.sin_h @ b

    def imag_part(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Imaginary part of the same product."""
        return -(self.cos_h @ b + self.sin_h @ a)

    def fft2(self, x: torch.Tensor) -> Pair:
        """Canonical-phase one-sided DFT of a real (B,K,H,W) tensor -> (real, imag), each
        (B,K,H,W//2+1)."""
        a, b = x @ self.cos_w, x @ self.sin_w
        return self.real_part(a, b), self.canonical(self.imag_part(a, b))

    def canonical(self, im: torch.Tensor) -> torch.Tensor:
        """Imaginary part with exactly +0 at the self-conjugate bins."""
        return torch.where(self.self_conj, torch.zeros((), dtype=im.dtype, device=im.device), im)

    def mirrored(self, half: torch.Tensor) -> torch.Tensor:
        """(B,K,H,W//2+1) half map -> (B,K,H,W-W//2-1): its values at the mirrored bins of the
        columns ``W//2+1 .. W-1`` (``out[..., r, c] = half[..., -r, W-c]``, two ``Gather``)."""
        return half.index_select(-1, self.mirror_cols).index_select(-2, self.mirror_rows)

    def unfold(self, half: torch.Tensor, odd: bool) -> torch.Tensor:
        """Full (B,K,H,W) map of an even (``odd=False``: amplitude) or odd (phase) function of
        the bins, from its one-sided half (B,K,H,W//2+1)."""
        mirror = self.mirrored(half)
        return torch.cat([half, -mirror if odd else mirror], dim=-1)

    def amplitude(self, spec: Pair) -> torch.Tensor:
        """(B,K,H,W) amplitude of a one-sided spectrum."""
        return self.unfold(amplitude(*spec), odd=False)

    def phase(self, spec: Pair) -> torch.Tensor:
        """(B,K,H,W) phase in [-pi, pi] of a one-sided spectrum."""
        return self.unfold(phase(*spec), odd=True)

    def discrepancy(self, a: torch.Tensor, b: torch.Tensor, vis: Pair, ir: Pair) -> Pair:
        """``a*vis - b*ir`` with canonical phase (``a*(+0) - b*(+0)`` can be -0)."""
        return a * vis[0] - b * ir[0], self.canonical(a * vis[1] - b * ir[1])

    def ifft2_real(self, stacked: torch.Tensor) -> torch.Tensor:
        """``Re ifft2`` of a (B,2K,H,W) spectrum stored as cat(real, imag) -> (B,K,H,W).

        For real maps X (real part) and Y (imaginary part), ``Re ifft2(X + iY)`` is
        ``(Re F(X) + Im F(Y)) / N`` on the half and ``(Re F(X) - Im F(Y)) / N`` at the mirrored
        bins, with F the forward DFT: two one-sided transforms, no full-width basis.
        """
        a, b = stacked @ self.cos_w, stacked @ self.sin_w
        k = stacked.shape[1] // 2
        even = self.real_part(a[:, :k], b[:, :k]) * self.scale
        odd = self.imag_part(a[:, k:], b[:, k:]) * self.scale
        return torch.cat([even + odd, self.mirrored(even) - self.mirrored(odd)], dim=-1)


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
