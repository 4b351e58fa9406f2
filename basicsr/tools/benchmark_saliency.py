"""Speed of the VSM mask generation on the 460x630 pairs of a data folder.

Usage (from the repository root)::

    python scripts/benchmark_saliency.py [--data datasets/VIFB] [--pairs 48]
                                         [--repeat 30] [--workers N]

``--data`` holds ``vis/`` and ``ir/`` (or ``V/`` and ``T/``) images paired by stem; the default,
VIFB, comes from ``python scripts/download_data.py vifb``.

Prints the milliseconds per pair (median and best of ``--repeat``) of the pure saliency work
(gray conversion, tables, mask, rounding to uint8; images already decoded), of PNG decoding
and of PNG writing, and the end-to-end pairs/s of ``scripts/gen_saliency.py``'s worker
(read, compute, write) in one process and in ``--workers`` processes (default: all cores).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, Tuple

import cv2
import torch

from basicsr.data.download import download_hint
from basicsr.inference.loader import REPO_ROOT
from basicsr.inference.timing import Stopwatch, timings
from basicsr.tools.gen_saliency import PairJob, make_mask, run_jobs
from basicsr.utils.cli import run_main
from basicsr.utils.errors import DataError, DGFusionError
from basicsr.utils.img_util import list_images
from basicsr.data.saliency import saliency_mask_u8
from basicsr.utils.logger import console

SIZE = (460, 630)
DEFAULT_DATA = REPO_ROOT / 'datasets' / 'VIFB'
CPU = torch.device('cpu')


def find_pairs(data: Path) -> List[PairJob]:
    """The vis/ir (or V/T) pairs of ``data`` whose visible image is 460x630."""
    names = next(((v, t) for v, t in (('vis', 'ir'), ('V', 'T'))
                  if (data / v).is_dir() and (data / t).is_dir()), None)
    if names is None:
        raise DataError(f"{data}: expected sub-folders vis and ir (or V and T); get the default "
                        f"with: {download_hint(data / 'vis')}")
    vis_files, ir_files = (list_images(data / n) for n in names)
    pairs = []
    for stem, vis in vis_files.items():
        img = cv2.imread(str(vis), cv2.IMREAD_UNCHANGED)
        if stem in ir_files and img is not None and img.shape[:2] == SIZE:
            pairs.append(PairJob(stem, vis, ir_files[stem], Path(), 'dgfusion'))
    if not pairs:
        raise DataError(f"{data}: no {SIZE[0]}x{SIZE[1]} pair found in {names[0]} and {names[1]}")
    return pairs


def time_ms(fn: Callable[[], object], repeat: int) -> Tuple[float, float]:
    """(median, best) wall time of ``fn()`` in ms over ``repeat`` calls, after one warm-up.

    The best time is what an unloaded core gives; the median includes other processes' noise.
    """
    times = timings(fn, CPU, repeat, warmup=1)
    return 1000.0 * statistics.median(times), 1000.0 * min(times)


def pairs_per_s(jobs: List[PairJob], workers: int) -> float:
    with Stopwatch(CPU) as watch:
        failed = [name for name, err in run_jobs(jobs, workers, 'bench') if err is not None]
    if failed:
        raise DataError(f"benchmark pairs failed: {', '.join(failed)}")
    return len(jobs) / watch.seconds


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA, help='folder with V/ and T/')
    parser.add_argument('--pairs', type=int, default=48, help='pairs per end-to-end run')
    parser.add_argument('--repeat', type=int, default=30, help='repeats of the per-pair timings')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    return run_main(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    try:
        pairs = find_pairs(args.data)
        console(f"pairs: {', '.join(p.name for p in pairs)} ({SIZE[0]}x{SIZE[1]}); "
                f"cores: {os.cpu_count()}")
        decoded = [(cv2.imread(str(p.vis), cv2.IMREAD_UNCHANGED),
                    cv2.imread(str(p.ir), cv2.IMREAD_UNCHANGED)) for p in pairs]

        for job, (vis, ir) in zip(pairs, decoded):
            pure = time_ms(lambda: saliency_mask_u8(vis, ir), args.repeat)
            decode = time_ms(lambda: (cv2.imread(str(job.vis), cv2.IMREAD_UNCHANGED),
                                        cv2.imread(str(job.ir), cv2.IMREAD_UNCHANGED)), args.repeat)
            mask = saliency_mask_u8(vis, ir)
            with tempfile.TemporaryDirectory() as tmp:
                target = str(Path(tmp) / 'm.png')
                write = time_ms(lambda: cv2.imwrite(target, mask), args.repeat)
            console(f"{job.name}: ms per pair, median (best): saliency {pure[0]:.2f} "
                    f"({pure[1]:.2f}), decode {decode[0]:.2f} ({decode[1]:.2f}), "
                    f"write {write[0]:.2f} ({write[1]:.2f})")

        with tempfile.TemporaryDirectory() as tmp:
            jobs = [PairJob(f"{i}", pairs[i % len(pairs)].vis, pairs[i % len(pairs)].ir,
                            Path(tmp) / f"{i}.png", 'dgfusion') for i in range(args.pairs)]
            make_mask(jobs[0])  # warm-up
            single = pairs_per_s(jobs, 0)
            multi = pairs_per_s(jobs, args.workers)
        console(f"end-to-end (read + mask + write), {args.pairs} pairs: {single:.1f} pairs/s in 1 "
                f"process, {multi:.1f} pairs/s in {args.workers} processes")
    except DGFusionError as exc:
        console(f"error: {exc}", err=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
