"""Training and validation curves of a run, from its own logs, as one PNG.

Usage (from the repository root)::

    python scripts/plot_curves.py experiments/DGFusion_RoadScene --out curves.png [--smooth 8]

Reads ``<run>/train_log.jsonl`` (one record per logged iteration: the loss terms, ``total``
and ``lr``) and ``<run>/val/metrics_iter_N.csv`` (per-image validation metrics; the ``mean``
row is plotted). After a resume, iterations logged twice keep their last record. The figure
has the total loss, each weighted loss term (trailing mean over ``--smooth`` log records, raw
values faint), the learning rate and one panel per validation metric (the validation
latency column is left out).

Exit status: 0 written; 2 no run folder, no log records, or an unwritable ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from basicsr.utils.cli import command
from basicsr.utils.errors import EXIT_OK, ConfigError, DataError
from basicsr.utils.fs import check_outputs_apart, ensure_writable_file
from basicsr.utils.img_util import write_image
from basicsr.utils.plotting import grid, line_chart, moving_average
from basicsr.utils.logger import console

# log keys that are bookkeeping, not loss terms
NOT_LOSSES = {'iter', 'lr', 'skipped', 'skipped_total', 'nonfinite_features', 'grad_norm', 'total'}
NOT_METRICS = {'latency_ms'}  # validation columns that are timings, not scores
VAL_FILE = re.compile(r'metrics_iter_(\d+)\.csv$')


def read_train_log(path: Path) -> Dict[int, dict]:
    """``iter -> record`` from a JSON-lines log; a later record for the same iteration wins."""
    if not path.is_file():
        raise DataError(f"{path}: no training log (is this a run folder of train.py?)")
    records: Dict[int, dict] = {}
    with open(path, encoding='utf-8') as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                records[int(rec['iter'])] = rec
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{n}: not a log record (expected JSON with 'iter')") from None
    if not records:
        raise DataError(f"{path}: no log records yet")
    return dict(sorted(records.items()))


def read_val_means(folder: Path) -> Dict[int, Dict[str, float]]:
    """``iter -> {metric: mean}`` from the validation CSVs (their ``mean`` row)."""
    out: Dict[int, Dict[str, float]] = {}
    for path in sorted(folder.glob('metrics_iter_*.csv')) if folder.is_dir() else []:
        match = VAL_FILE.search(path.name)
        with open(path, newline='', encoding='utf-8') as fh:
            for row in csv.DictReader(fh):
                if row.get('image') == 'mean':
                    out[int(match.group(1))] = {k: _number(v) for k, v in row.items() if k != 'image'}
    return dict(sorted(out.items()))


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float('nan')


def series(records: Dict[int, dict], key: str) -> Tuple[List[float], List[float]]:
    pairs = [(float(i), float(r[key])) for i, r in records.items() if key in r]
    return [i for i, _ in pairs], [v for _, v in pairs]


def curves_image(records: Dict[int, dict], val: Dict[int, Dict[str, float]], smooth: int,
                 title: str = '') -> np.ndarray:
    """The figure: loss panels, the learning rate, then one panel per validation metric."""
    panels = []
    keys = ['total'] + [k for k in next(iter(records.values())) if k not in NOT_LOSSES]
    for key in keys:
        xs, ys = series(records, key)
        name = 'total loss' if key == 'total' else key
        lines = [('raw', xs, ys), (f'mean of {smooth}', xs, list(moving_average(ys, smooth)))]
        panels.append(line_chart(lines, f"{title}{name}" if key == 'total' and title else name))
    xs, ys = series(records, 'lr')
    if xs:
        panels.append(line_chart([('lr', xs, ys)], 'learning rate'))
    metrics: List[str] = [m for m in next(iter(val.values())) if m not in NOT_METRICS] if val else []
    for metric in metrics:
        its = [float(i) for i in val]
        panels.append(line_chart([(metric, its, [val[i][metric] for i in val])],
                                 f"val {metric} (mean)", markers=True))
    cols = 4 if len(panels) > 6 else 3
    return grid(panels, cols)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run', type=Path, help='experiment folder (experiments/<name>)')
    parser.add_argument('--out', type=Path, default=None, help='PNG to write (default <run>/curves.png)')
    parser.add_argument('--smooth', type=int, default=8, help='log records in the trailing mean')
    parser.add_argument('--title', default='', help='text put before the first panel title')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if not args.run.is_dir():
        raise ConfigError(f"run folder {args.run} does not exist")
    if args.smooth < 1:
        raise ConfigError(f"--smooth: {args.smooth} must be >= 1")
    out = args.out or args.run / 'curves.png'
    if out.suffix.lower() != '.png':
        raise ConfigError(f"--out: {out} must end in .png")
    check_outputs_apart([('--out', out)], [('training log', args.run / 'train_log.jsonl'),
                                           ('validation folder', args.run / 'val')])
    ensure_writable_file(out, '--out')
    records = read_train_log(args.run / 'train_log.jsonl')
    val = read_val_means(args.run / 'val')
    write_image(out, curves_image(records, val, args.smooth, args.title))
    console(f"{len(records)} training records (iterations {min(records)}-{max(records)}), "
            f"{len(val)} validations -> {out}")
    return EXIT_OK


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
