"""Memory guard: refuse a forward pass that would not fit, before it starts.

Generic over networks: the peak bytes per pixel of a pass come from the network's memory model
(``bytes_per_pixel`` of its spec, :mod:`basicsr.archs.contract`); the estimate is that number
times the pixels and the batch, compared with 90% of the free memory of the device. A network
without a memory model is not checked (logged once).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Set, Tuple

import torch

from basicsr.utils.errors import DataError

logger = logging.getLogger(__name__)

USABLE_FRACTION = 0.9  # of the free memory; the rest of the process needs some too
MIN_TILE = 32
TILE_STEP = 32
MAX_SUGGESTED_TILE = 4096


class FrameTooLarge(DataError):
    """A forward pass would need more memory than is free."""


_UNCHECKED: Set[str] = set()  # networks already logged as having no memory model


def estimate_bytes(bytes_per_pixel: int, height: int, width: int, batch: int = 1) -> int:
    """Estimated peak bytes of a forward pass on ``batch`` frames of ``height`` x ``width`` for
    a network that needs ``bytes_per_pixel`` per pixel."""
    return int(bytes_per_pixel) * int(height) * int(width) * int(batch)


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


def suggest_tile(bytes_per_pixel: int, budget: int, batch: int = 1) -> Optional[int]:
    """Largest multiple of 32 (>= 32) whose square tile fits ``budget`` bytes, or None."""
    tile = MAX_SUGGESTED_TILE
    while tile >= MIN_TILE:
        if estimate_bytes(bytes_per_pixel, tile, tile, batch) <= budget:
            return tile
        tile -= TILE_STEP
    return None


def _size(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"


def check_fits(bytes_per_pixel: Optional[int], size: Tuple[int, int], batch: int,
               device: torch.device, budget: Optional[int] = None, tiled: bool = False,
               network: str = 'the network') -> None:
    """Raise :class:`FrameTooLarge` when a pass over ``size`` would not fit.

    Args:
        bytes_per_pixel: the network's memory model (peak bytes per pixel, batch 1); None when
            it has none: then nothing is refused.
        size: (H, W) of the region processed at once (the frame, or one tile).
        batch: frames per pass.
        device: where the pass runs.
        budget: bytes allowed; default 90% of :func:`free_memory` (no check when unknown).
        tiled: whether ``size`` is a tile (changes the advice).
        network: how to name the network in messages.
    """
    if bytes_per_pixel is None:
        if network not in _UNCHECKED:
            _UNCHECKED.add(network)
            logger.info('%s has no memory model: passes are not checked against free memory',
                        network)
        return
    if budget is None:
        free = free_memory(device)
        if free is None:
            return
        budget = int(free * USABLE_FRACTION)
    need = estimate_bytes(bytes_per_pixel, size[0], size[1], batch)
    if need <= budget:
        return
    tile = suggest_tile(bytes_per_pixel, budget, batch)
    what = f"{'tiles of ' if tiled else 'a whole-frame pass on '}{size[0]}x{size[1]}"
    advice = (f"use --tile {tile}" if tile else "no tile of 32 px or more fits; free memory "
              "or use a smaller --batch")
    if batch > 1:
        advice += f" or a smaller --batch than {batch}"
    raise FrameTooLarge(f"{what} needs about {_size(need)} ({network}: {bytes_per_pixel:,} bytes "
                        f"per pixel, batch {batch}) but {_size(budget)} is usable on {device}: "
                        f"{advice}")
