"""Constants and spectral helpers shared by DGFusion's forwards (training, lean inference,
reference, export).

Spectra of real 4C-channel feature maps are stored either as complex tensors or as real
(B,8C,H,W) tensors whose channels [0,4C) are the real part and [4C,8C) the imaginary part.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Dict, Optional

import torch

LRELU_SLOPE = 0.1
# Published behaviour: non-finite fused features are overwritten with this value.
NONFINITE_FILL = 1e-5


def full_precision(x: torch.Tensor):
    """Context that turns autocast off: spectra overflow float16 and cuFFT in half precision
    accepts power-of-two sizes only, so every frequency-domain block runs in float32."""
    return torch.autocast(x.device.type, enabled=False)


def spectral_autocast(x: torch.Tensor):
    """Context for a frequency-domain block of the training forward.

    Under float16 autocast it is :func:`full_precision`. Under bfloat16 autocast (float32's
    exponent range, so spectra cannot overflow) autocast stays on: the block's convolutions
    run in bfloat16, while its FFT steps cast their inputs to float32 themselves
    (:func:`to_float32` in :func:`ifft2_real` and before the forward FFT), so amplitudes,
    phases and layer-norm statistics stay float32.
    """
    device = x.device.type
    if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16:
        return contextlib.nullcontext()
    return full_precision(x)


# complex steps of the training forward, by qualified name: the plain function, and the
# ``torch.compiler.disable`` wrapper that :func:`prepare_compile` builds
_COMPLEX_STEPS: Dict[str, Callable] = {}
_EAGER_UNDER_COMPILE: Dict[str, Callable] = {}


def complex_step(fn: Callable) -> Callable:
    """Decorator for a function of real tensors that computes with complex ones: under
    ``torch.compile`` it runs eagerly (one graph break per call) once :func:`prepare_compile` ran.

    Inductor generates no code for complex tensors (it calls the eager kernels anyway) and some
    of its complex decompositions fail in backward (a sum of complex gradients of different
    strides), so compiled graphs of the network hold real tensors only. The eager wrappers are
    built by :func:`prepare_compile`, not here, so that importing the network does not import
    ``torch._dynamo`` (about a second). Outside ``torch.compile`` the call is ``fn`` itself.
    """
    key = f"{fn.__module__}.{fn.__qualname__}"
    _COMPLEX_STEPS[key] = fn

    @functools.wraps(fn)
    def step(*args: torch.Tensor):
        if torch.compiler.is_compiling():
            return _EAGER_UNDER_COMPILE.get(key, fn)(*args)
        return fn(*args)
    return step


def prepare_compile() -> None:
    """Make every :func:`complex_step` run eagerly under ``torch.compile``; call it before
    compiling a module that uses them (idempotent; imports ``torch._dynamo``)."""
    for key, fn in _COMPLEX_STEPS.items():
        if key not in _EAGER_UNDER_COMPILE:
            _EAGER_UNDER_COMPILE[key] = torch.compiler.disable(fn)


def to_float32(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32; float32/float64 unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """(B,2K,H,W) real -> (B,K,H,W) complex: channels [0,K) real part, [K,2K) imaginary part."""
    real, imag = x.chunk(2, dim=1)
    return torch.complex(real, imag)


@complex_step
def ifft2_real(stacked: torch.Tensor) -> torch.Tensor:
    """``Re ifft2`` of a (B,2K,H,W) spectrum stored as cat(real, imag) -> (B,K,H,W) real
    (float32 for a half/bfloat16 input)."""
    return torch.fft.ifft2(as_complex(to_float32(stacked))).real


def polar_to_stacked(amp: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """Amplitude and phase (B,K,H,W) -> (B,2K,H,W) real tensor cat(amp*cos, amp*sin)."""
    return torch.cat([amp * torch.cos(pha), amp * torch.sin(pha)], dim=1)


class _PolarStacked(torch.autograd.Function):
    """``cat(amp*cos(pha), amp*sin(pha))`` that keeps only ``amp`` and ``pha`` for backward
    (the cosine and sine are recomputed there), instead of four saved tensors."""

    @staticmethod
    def forward(ctx, amp: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(amp, pha)
        return polar_to_stacked(amp, pha)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        amp, pha = ctx.saved_tensors
        grad_re, grad_im = grad.chunk(2, dim=1)
        cos, sin = torch.cos(pha), torch.sin(pha)
        grad_amp = grad_re * cos + grad_im * sin
        grad_pha = amp * (grad_im * cos - grad_re * sin)
        return grad_amp, grad_pha


def polar_to_stacked_lean(amp: torch.Tensor, pha: torch.Tensor) -> torch.Tensor:
    """:func:`polar_to_stacked` with a lighter autograd footprint (same values and gradients)."""
    if torch.is_grad_enabled() and (amp.requires_grad or pha.requires_grad):
        return _PolarStacked.apply(amp, pha)
    return polar_to_stacked(amp, pha)


def self_conjugate_index(n: int) -> slice:
    """Indices along one FFT axis of length ``n`` whose bins are their own mirror: 0, and n/2
    when ``n`` is even (a strided slice, so no Python loop over bins)."""
    return slice(0, n, n // 2) if n % 2 == 0 else slice(0, 1)


def canonicalize_phase_(spec: torch.Tensor, width: Optional[int] = None) -> torch.Tensor:
    """Set the imaginary part of the self-conjugate bins of ``spec`` to exactly +0, in place.

    ``spec``: (..., H, W) complex, the 2-D FFT of a real tensor (or a real linear combination of
    such), or its one-sided half (..., H, W//2+1) from ``rfft2`` with ``width=W``. The bins
    (0,0), (H/2,0), (0,W/2), (H/2,W/2) that exist for the size are real in exact arithmetic;
    their computed imaginary part is rounding noise or a signed zero, which would make ``angle``
    flip between +pi and -pi across FFT libraries, CPUs, dtypes and thread counts. With +0 their
    phase is 0 for a positive and +pi for a negative value. The write goes through the real view
    (autograd records it; the gradient into those zeroed parts is zero, as it is in exact
    arithmetic). Returns ``spec``.
    """
    rows = self_conjugate_index(spec.shape[-2])
    cols = self_conjugate_index(spec.shape[-1] if width is None else width)
    torch.view_as_real(spec)[..., rows, cols, 1] = 0.0
    return spec


def canonical_fft2(x: torch.Tensor) -> torch.Tensor:
    """``fft2`` of a real (..., H, W) tensor with canonical phase (see ``canonicalize_phase_``)."""
    return canonicalize_phase_(torch.fft.fft2(x))


def canonical_rfft2(x: torch.Tensor) -> torch.Tensor:
    """One-sided ``rfft2`` (..., H, W//2+1) of a real (..., H, W) tensor, canonical phase."""
    return canonicalize_phase_(torch.fft.rfft2(x), width=x.shape[-1])


def mirrored_columns(half: torch.Tensor, width: int) -> torch.Tensor:
    """The columns W//2+1 .. W-1 of a full (..., H, W) spectrum-indexed map, read from its
    one-sided half (..., H, W//2+1) at the mirrored bins: ``out[..., r, c] = half[..., -r, W-c]``
    (indices modulo H). Shape (..., H, W - W//2 - 1); a new tensor (flip and roll: plain copies,
    an order of magnitude faster than a gather)."""
    wh = half.shape[-1]
    return torch.roll(half[..., 1:width - wh + 1].flip((-2, -1)), 1, dims=-2)


def unfold_half_(full: torch.Tensor, half: torch.Tensor, odd: bool) -> torch.Tensor:
    """Write a map of the one-sided half spectrum into the full (..., H, W) map ``full``.

    ``half`` (..., H, W//2+1) holds a function of the bins of a real tensor's spectrum that is
    even (``odd=False``: amplitude, ``m(-k) = m(k)``) or odd (``odd=True``: phase,
    ``m(-k) = -m(k)``) under ``k -> -k``; the missing columns are its mirror image. Returns
    ``full``.
    """
    w, wh = full.shape[-1], half.shape[-1]
    full[..., :wh] = half
    if w > wh:
        mirror = mirrored_columns(half, w)
        full[..., wh:] = mirror.neg_() if odd else mirror
    return full
