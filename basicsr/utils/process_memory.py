"""Process memory: peak resident memory on Linux, and returning large freed blocks to the OS.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), so
after the first frame the full-size maps of a forward pass come from the heap, which keeps
freed memory resident and fragments. :func:`return_large_blocks_to_os` fixes the threshold, so
every large tensor is its own mapping and goes back to the OS when freed; the entry points
that fuse images call it (a user's own loop may call it too). Elsewhere it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
LARGE_BLOCK = 1 << 20
_STATUS = Path('/proc/self/status')


def return_large_blocks_to_os(threshold: int = LARGE_BLOCK) -> bool:
    """Serve allocations of ``threshold`` bytes or more by their own mappings (glibc only).
    Returns True when the setting took effect."""
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name) if name else None
        ok = bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        ok = False
    logger.debug('mmap threshold %s: %s', threshold, 'set' if ok else 'not available')
    return ok


def _status_kib(field: str) -> Optional[int]:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ':'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_bytes() -> Optional[int]:
    """Current resident memory of this process, or None where /proc is not available."""
    kib = _status_kib('VmRSS')
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> Optional[int]:
    """Peak resident memory since the process started or since :func:`reset_peak_rss`."""
    kib = _status_kib('VmHWM')
    return None if kib is None else kib * 1024


def reset_peak_rss() -> bool:
    """Restart the peak count at the current resident size (Linux ``clear_refs`` 5)."""
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False
