"""Latency measurement that waits for the GPU, and its one-line summary: the one timer of the
benchmarks, the GPU check, validation and ``fuse``."""
from __future__ import annotations

import statistics
import time
from typing import Callable, List, Sequence

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued work on a CUDA device (no-op elsewhere), so wall time is compute time."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then ``sw.seconds``; synchronised on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> 'Stopwatch':
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start


def timings(fn: Callable[[], object], device: torch.device, repeat: int = 5,
            warmup: int = 1) -> List[float]:
    """Wall seconds of each of ``repeat`` calls of ``fn()``, after ``warmup`` untimed ones;
    each call is timed by a :class:`Stopwatch` on ``device``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        with Stopwatch(device) as watch:
            fn()
        times.append(watch.seconds)
    return times


def median_seconds(fn: Callable[[], object], device: torch.device, repeat: int = 5,
                   warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls after ``warmup`` untimed ones."""
    return statistics.median(timings(fn, device, repeat, warmup))


def median_ms(fn: Callable[[], object], device: torch.device, repeat: int = 5,
              warmup: int = 1) -> float:
    """:func:`median_seconds` in milliseconds."""
    return 1000.0 * median_seconds(fn, device, repeat, warmup)


def latency_summary(seconds: Sequence[float], device: torch.device, what: str = 'image') -> str:
    """``fused N image(s) on DEV: latency per image median .. ms, mean .., min .., max ..``."""
    ms: List[float] = [1000.0 * s for s in seconds]
    if not ms:
        return f"fused no {what} on {device}"
    line = (f"fused {len(ms)} {what}(s) on {device}: latency per {what} median "
            f"{statistics.median(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms, "
            f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")
    if len(ms) > 1:
        line += f" (first {ms[0]:.1f} ms, includes warm-up)"
    return line
