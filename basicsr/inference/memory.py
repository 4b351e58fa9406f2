"""Memory guard: refuse a forward pass that would not fit, before it starts.

A whole-frame DGFusion pass keeps several full-resolution maps and their spectra alive at once
(the FFTs are global), so its peak memory grows with the pixel count times the width C. The
network's lean inference path (what it runs without autograd) keeps at most eight 4C-channel
maps at full size. Measured peak, float32 under ``torch.inference_mode`` on a CPU (peak
resident memory of a fresh process during one 512x640 pass minus its level before, large
blocks returned to the OS as the entry points set it), in bytes per pixel:

====  =========  ==================
 C    512x640    model 512 + 160 C
====  =========  ==================
 2    455        832
 4    815        1152
 8    1283       1792
 16   2253       3072
====  =========  ==================

:func:`bytes_per_pixel` is that linear model, with a margin for glibc's default allocator
(which keeps freed blocks resident: 2.8 KB per pixel at C=16) and for the fixed overhead of
small frames: about 3 KiB per pixel at the published width C=16, so a 640x512 frame needs
~1 GB and a 4000x3000 photo ~37 GB. On a GPU the same tensors live in device memory, plus the
FFT library's work space, which the 10% margin of :func:`check_fits` leaves room for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import torch

from basicsr.utils.errors import DataError


BASE_BYTES_PER_PIXEL = 512
BYTES_PER_PIXEL_PER_CHANNEL = 160
USABLE_FRACTION = 0.9  # of the free memory; the rest of the process needs some too
MIN_TILE = 32
TILE_STEP = 32
MAX_SUGGESTED_TILE = 4096


class FrameTooLarge(DataError):
    """A forward pass would need more memory than is free."""


def bytes_per_pixel(channels: int) -> int:
    """Peak bytes per pixel of one whole-frame forward pass at width ``channels``."""
    return BASE_BYTES_PER_PIXEL + BYTES_PER_PIXEL_PER_CHANNEL * int(channels)


def estimate_bytes(channels: int, height: int, width: int, batch: int = 1) -> int:
    """Estimated peak bytes of a forward pass on ``batch`` frames of ``height`` x ``width``."""
    return bytes_per_pixel(channels) * int(height) * int(width) * int(batch)


def free_memory(device: torch.device) -> Optional[int]:
    """Free bytes on ``device``: CUDA free plus what the caching allocator holds unused; on the
    CPU ``MemAvailable`` of ``/proc/meminfo``. None when unknown (then nothing is refused)."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    if device.type != 'cpu':
        return None
    meminfo = Path('/proc/meminfo')
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def suggest_tile(channels: int, budget: int, batch: int = 1) -> Optional[int]:
    """Largest multiple of 32 (>= 32) whose square tile fits ``budget`` bytes, or None."""
    tile = MAX_SUGGESTED_TILE
    while tile >= MIN_TILE:
        if estimate_bytes(channels, tile, tile, batch) <= budget:
            return tile
        tile -= TILE_STEP
    return None


def _size(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"


def check_fits(channels: int, size: Tuple[int, int], batch: int, device: torch.device,
               budget: Optional[int] = None, tiled: bool = False) -> None:
    """Raise :class:`FrameTooLarge` when a pass over ``size`` would not fit.

    Args:
        channels: network width C.
        size: (H, W) of the region processed at once (the frame, or one tile).
        batch: frames per pass.
        device: where the pass runs.
        budget: bytes allowed; default 90% of :func:`free_memory` (no check when unknown).
        tiled: whether ``size`` is a tile (changes the advice).
    """
    if budget is None:
        free = free_memory(device)
        if free is None:
            return
        budget = int(free * USABLE_FRACTION)
    need = estimate_bytes(channels, size[0], size[1], batch)
    if need <= budget:
        return
    tile = suggest_tile(channels, budget, batch)
    what = f"{'tiles of ' if tiled else 'a whole-frame pass on '}{size[0]}x{size[1]}"
    advice = (f"use --tile {tile}" if tile else "no tile of 32 px or more fits; free memory "
              "or use a smaller --batch")
    if batch > 1:
        advice += f" or a smaller --batch than {batch}"
    raise FrameTooLarge(f"{what} needs about {_size(need)} (DGFusion channels {channels}, "
                        f"batch {batch}) but {_size(budget)} is usable on {device}: {advice}")
