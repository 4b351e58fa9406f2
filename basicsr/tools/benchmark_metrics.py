"""Time every fusion metric on one image triple (per metric, best of N runs, this process).

Usage (from the repository root):
    python scripts/benchmark_metrics.py [--fused F --vis V --ir I] [--convention cddfuse]
        [--metrics ... | all] [--repeat 3] [--threads 1]

Without image paths it uses TNO 01 (576x768) from ``datasets/TNO``
(``python scripts/download_data.py tno``).
``--threads 1`` (default) limits OpenCV to one thread, so the timings are those of one core.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import torch

from basicsr.data.download import download_hint
from basicsr.inference.loader import REPO_ROOT
from basicsr.inference.timing import timings
from basicsr.metrics import (CONVENTIONS, compute_metrics, default_metrics,
                             evaluate_prepared, higher_is_better, metrics_for, prepare_inputs,
                             read_image_rgb)
from basicsr.utils.cli import run_main
from basicsr.utils.errors import ConfigError
from basicsr.utils.logger import console

TNO = REPO_ROOT / 'datasets' / 'TNO'


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls, seconds (no warm-up: the first call counts)."""
    return min(timings(fn, torch.device('cpu'), repeat, warmup=0))


def run(args: argparse.Namespace) -> int:
    if args.convention not in CONVENTIONS:
        raise ConfigError(f"--convention: unknown '{args.convention}' "
                          f"(expected one of {', '.join(CONVENTIONS)})")
    paths = [args.fused or TNO / 'fused' / 'SeAFusion' / '01.png',
             args.vis or TNO / 'vis' / '01.png', args.ir or TNO / 'ir' / '01.png']
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: not found (give --fused/--vis/--ir, or get "
                          f"the default with: {download_hint(TNO / 'vis')})")
    fused, vis, ir = (read_image_rgb(p) for p in paths)
    conv = args.convention
    if args.metrics is None:
        names = default_metrics(conv)
    elif args.metrics == ['all']:
        names = metrics_for(conv)
    else:
        names = list(args.metrics)
    for name in names:
        higher_is_better(name, conv)
    cv2.setNumThreads(args.threads)

    prepared = prepare_inputs(fused, vis, ir, conv)
    console(f"{paths[0]} ({'x'.join(map(str, fused.shape))}), convention {conv}, "
            f"best of {args.repeat}, {args.threads} OpenCV thread(s)")
    t_prep = best_time(lambda: prepare_inputs(fused, vis, ir, conv), args.repeat)
    console(f"{'prepare':10s} {t_prep:8.4f} s")
    for name in names:
        t = best_time(lambda: evaluate_prepared(prepared, [name]), args.repeat)
        console(f"{name:10s} {t:8.4f} s")
    total = best_time(lambda: compute_metrics(fused, vis, ir, names, conv), args.repeat)
    console(f"{'all above':10s} {total:8.4f} s  (compute_metrics, {len(names)} metrics)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Time the fusion metrics on one image triple.')
    parser.add_argument('--fused', type=Path)
    parser.add_argument('--vis', type=Path)
    parser.add_argument('--ir', type=Path)
    parser.add_argument('--convention', default='cddfuse')
    parser.add_argument('--metrics', nargs='+', default=None)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
