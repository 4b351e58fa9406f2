"""Precision of training (``train.precision``) and of inference (``val.precision`` of test.py and
validation, ``scripts/fuse.py --precision``): ``fp32 | bf16 | fp16``, with the same rules.

* ``fp32``: everything in float32.
* ``bf16``: autocast to bfloat16 on any device that computes it natively. Every convolution
  runs in bfloat16, those on amplitude and phase maps included; the FFTs, amplitudes, phases,
  layer-norm statistics, losses, optimiser, EMA and checkpoints stay float32 (see
  :func:`basicsr.archs.dgfusion.spectral.spectral_autocast`). bfloat16 has float32's exponent range, so
  no gradient scaler is needed.
* ``fp16``: CUDA only; autocast to float16 with a gradient scaler. Spectra overflow float16,
  so every frequency-domain block runs in float32.

A CPU computes bfloat16 natively with AVX-512 BF16 or AMX (x86) or the BF16 extension (Arm);
elsewhere oneDNN emulates it several times slower than float32, so such a CPU is refused with
one line instead of taking a silently slow path.
"""
from __future__ import annotations

import platform
import warnings
from typing import Optional

import torch

from basicsr.utils.errors import ConfigError

PRECISIONS = ('fp32', 'bf16', 'fp16')
AUTOCAST_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 in hardware (AVX-512 BF16, AMX, or Arm BF16)."""
    if platform.machine().lower() in ('x86_64', 'amd64', 'i386', 'i686'):
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively."""
    if device.type == 'cuda':
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == 'cpu':
        return cpu_has_native_bf16()
    return False


def bf16_autocast_available(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs on ``device`` at all, natively or emulated (a
    convolution under it gives bfloat16); for agreement checks, not for speed."""
    try:
        x = torch.ones(1, 1, 4, 4, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # an unsupported dtype only warns and disables
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return torch.nn.functional.conv2d(x, x[..., :3, :3]).dtype == torch.bfloat16
    except (RuntimeError, ValueError):
        return False


def precision_problem(precision: str, device: torch.device, key: str = 'train.precision') -> Optional[str]:
    """One line saying why ``precision`` cannot run on ``device``, or None when it can."""
    if precision not in PRECISIONS:
        return f"{key}: {precision!r} is not one of {', '.join(PRECISIONS)}"
    if precision == 'fp16' and device.type != 'cuda':
        return (f"{key}: fp16 needs a CUDA device (this run is on {device.type}); use bf16 on a "
                f"CPU with bfloat16 support, or fp32")
    if precision == 'bf16' and not bf16_supported(device):
        what = 'this CPU has no native bfloat16 (AVX-512 BF16, AMX or Arm BF16)' \
            if device.type == 'cpu' else f'{device} does not compute bfloat16 natively'
        return f"{key}: bf16 is not supported here: {what}, so it would run slower than fp32; use fp32"
    return None


def check_precision(precision: str, device: torch.device, key: str = 'train.precision') -> None:
    """Raise :class:`ConfigError` (one line) when ``precision`` cannot run on ``device``."""
    problem = precision_problem(precision, device, key)
    if problem:
        raise ConfigError(problem)


def autocast(precision: str, device: torch.device):
    """The autocast context of ``precision`` on ``device`` (a disabled one for fp32)."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
