"""Evaluate fused images against their visible/infrared sources with the fusion metrics.

Usage (from the repository root):
    python scripts/evaluate.py --fused results/ --vis data/vi --ir data/ir \
        [--convention cddfuse] [--metrics EN SD SF MI SCD VIF Qabf SSIM | all] \
        [--workers N] [--out table.csv] [--fused-suffix SUFFIX ...]

Pairing: sources are paired by file stem across extensions (``vis/<stem>.*``,
``ir/<stem>.*``). A fused image is ``<fused dir>/<stem><suffix>.<ext>``.
* ``--fused-suffix`` gives the suffix once (used for every fused folder) or once per folder.
  Pass ``--fused-suffix ''`` for files named exactly like the sources.
* Without it the suffix is detected: every text that follows a source stem in a fused file
  name and completes the set of stems is a method, so a folder holding
  ``<stem>_A.jpg`` and ``<stem>_B.jpg`` for every stem is evaluated as two methods.
A fused folder may be given several times with different suffixes. A method is labelled by
its suffix without the leading ``_``/``-`` (or its folder name when the suffix is empty).

Output: a Markdown table of the means (one row per method) on stdout, labelled with the
convention. ``--out`` writes the per-image values: header ``image,<metric>...`` with one row
per stem and a last row ``mean``; with several methods a first column ``method`` is added
and each method's rows end with its own ``mean`` row. Means are plain means over the images
(a NaN or inf value in a column carries into its mean).
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from basicsr.metrics import (CONVENTIONS, DEFAULT_CONVENTION, compute_metrics,  # noqa: E402
                             default_metrics, higher_is_better, metrics_for, read_image_rgb)
from basicsr.utils.errors import ConfigError, DataError, DGFusionError  # noqa: E402
from basicsr.utils import img_util  # noqa: E402

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def _short(items: Sequence[str], limit: int = 5) -> str:
    items = list(items)
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more


def list_images(folder: Path, what: str) -> Dict[str, Path]:
    """Map stem -> path of the images in ``folder``; DataError if missing, empty or ambiguous."""
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")
    found = img_util.list_images(folder)
    if not found:
        raise DataError(f"{what} folder {folder}: no images ({', '.join(IMAGE_EXTS)})")
    return found


def source_stems(vis_dir: Path, ir_dir: Path) -> Tuple[Dict[str, Path], Dict[str, Path]]:
    """Visible and infrared images paired by stem; DataError naming unpaired stems."""
    vis, ir = list_images(vis_dir, 'vis'), list_images(ir_dir, 'ir')
    only_vis, only_ir = sorted(set(vis) - set(ir)), sorted(set(ir) - set(vis))
    if only_vis or only_ir:
        parts = []
        if only_vis:
            parts.append(f"no ir image for {_short(only_vis)}")
        if only_ir:
            parts.append(f"no vis image for {_short(only_ir)}")
        raise DataError(f"unpaired sources in {vis_dir} / {ir_dir}: {'; '.join(parts)}")
    return vis, ir


def match_suffix(files: Dict[str, Path], stems: Sequence[str], suffix: str,
                 folder: Path) -> Dict[str, Path]:
    """Fused path per stem for ``<stem><suffix>``; DataError naming missing stems."""
    out = {s: files[s + suffix] for s in stems if s + suffix in files}
    missing = [s for s in stems if s not in out]
    if missing:
        raise DataError(f"fused folder {folder}: no '<stem>{suffix}.*' image for "
                        f"{_short(missing)}")
    return out


def detect_suffixes(files: Dict[str, Path], stems: Sequence[str], folder: Path) -> List[str]:
    """Suffixes that follow every source stem in ``files``; DataError when none does."""
    counts: Dict[str, set] = {}
    for name in files:
        for stem in stems:
            if name.startswith(stem):
                counts.setdefault(name[len(stem):], set()).add(stem)
    complete = sorted(s for s, hit in counts.items() if len(hit) == len(stems))
    if complete:
        return complete
    if not counts:
        raise DataError(f"fused folder {folder}: no file name starts with a source stem "
                        f"(e.g. {_short(sorted(stems), 3)})")
    best = max(sorted(counts), key=lambda s: len(counts[s]))
    missing = sorted(set(stems) - counts[best])
    raise DataError(f"fused folder {folder}: suffix '{best}' lacks images for {_short(missing)} "
                    f"(give --fused-suffix to choose)")


def resolve_methods(fused_dirs: Sequence[Path], suffixes: Sequence[str] | None,
                    stems: Sequence[str]) -> Dict[str, Dict[str, Path]]:
    """Method label -> {stem: fused path} for every fused folder / suffix."""
    if suffixes is not None and len(suffixes) not in (1, len(fused_dirs)):
        raise ConfigError(f"--fused-suffix: give one suffix or one per --fused folder "
                          f"({len(fused_dirs)}), got {len(suffixes)}")
    methods: Dict[str, Dict[str, Path]] = {}
    for k, folder in enumerate(fused_dirs):
        files = list_images(folder, 'fused')
        if suffixes is None:
            chosen = detect_suffixes(files, stems, folder)
        else:
            chosen = [suffixes[k] if len(suffixes) > 1 else suffixes[0]]
        for suffix in chosen:
            label = suffix.lstrip('_-') or folder.name
            if label in methods:
                raise ConfigError(f"method label '{label}' occurs twice (folder {folder}, "
                                  f"suffix '{suffix}'); give distinct --fused-suffix values")
            methods[label] = match_suffix(files, stems, suffix, folder)
    return methods


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)


def evaluate_stem(task: Tuple[str, Path, Path, Dict[str, Path], List[str], str]
                  ) -> Tuple[str, Dict[str, Dict[str, float]]]:
    """Metrics of every method for one stem: ``(stem, {method: {metric: value}})``."""
    stem, vis_path, ir_path, fused_paths, names, convention = task
    vis, ir = read_image_rgb(vis_path), read_image_rgb(ir_path)
    out = {}
    for method, path in fused_paths.items():
        try:
            out[method] = compute_metrics(read_image_rgb(path), vis, ir, names, convention)
        except DGFusionError as err:
            raise type(err)(f"{stem} ({method}, {path.name}): {err}") from None
    return stem, out


def markdown_table(means: Dict[str, Dict[str, float]], names: Sequence[str]) -> str:
    """Markdown table: one row per method, one column per metric."""
    lines = ['| method | ' + ' | '.join(names) + ' |',
             '|---|' + '---:|' * len(names)]
    for method, row in means.items():
        lines.append(f'| {method} | ' + ' | '.join(f'{row[n]:.4f}' for n in names) + ' |')
    return '\n'.join(lines)


def write_csv(path: Path, results: Dict[str, Dict[str, Dict[str, float]]],
              means: Dict[str, Dict[str, float]], names: Sequence[str]) -> None:
    """Per-image CSV (see the module docstring for the layout)."""
    several = len(results) > 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow((['method'] if several else []) + ['image'] + list(names))
        for method, per_image in results.items():
            lead = [method] if several else []
            for stem, row in per_image.items():
                writer.writerow(lead + [stem] + [repr(row[n]) for n in names])
            writer.writerow(lead + ['mean'] + [repr(means[method][n]) for n in names])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fused', nargs='+', required=True, type=Path,
                        help='fused image folder(s)')
    parser.add_argument('--vis', required=True, type=Path, help='visible image folder')
    parser.add_argument('--ir', required=True, type=Path, help='infrared image folder')
    parser.add_argument('--convention', default=DEFAULT_CONVENTION,
                        help=f"one of {', '.join(CONVENTIONS)} (default {DEFAULT_CONVENTION})")
    parser.add_argument('--metrics', nargs='+', default=None,
                        help="metric names, or 'all' (default: the 8-metric default set)")
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='worker processes (default: all cores)')
    parser.add_argument('--out', type=Path, default=None, help='per-image CSV to write')
    parser.add_argument('--fused-suffix', nargs='+', default=None,
                        help='text after the stem in fused file names, once or per --fused folder')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    conv = args.convention
    if conv not in CONVENTIONS:
        raise ConfigError(f"--convention: unknown '{conv}' "
                          f"(expected one of {', '.join(CONVENTIONS)})")
    if args.metrics is None:
        names = default_metrics(conv)
    elif args.metrics == ['all']:
        names = metrics_for(conv)
    else:
        names = list(args.metrics)
    for name in names:
        higher_is_better(name, conv)  # raises for unknown / undefined names
    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {args.workers}")

    vis, ir = source_stems(args.vis, args.ir)
    stems = sorted(vis)
    methods = resolve_methods(args.fused, args.fused_suffix, stems)
    tasks = [(s, vis[s], ir[s], {m: paths[s] for m, paths in methods.items()}, names, conv)
             for s in stems]

    start = time.perf_counter()
    per_stem: Dict[str, Dict[str, Dict[str, float]]] = {}
    workers = min(args.workers, len(tasks))
    # disable=None: the bar shows on a terminal only, keeping logs and error output clean.
    with tqdm(total=len(tasks), desc=f'metrics ({conv})', unit='img', file=sys.stderr,
              disable=None) as bar:
        if workers == 1:
            for task in tasks:
                stem, out = evaluate_stem(task)
                per_stem[stem] = out
                bar.update()
        else:
            with mp.get_context().Pool(workers, initializer=_init_worker) as pool:
                for stem, out in pool.imap_unordered(evaluate_stem, tasks):
                    per_stem[stem] = out
                    bar.update()
    elapsed = time.perf_counter() - start

    results = {m: {s: per_stem[s][m] for s in stems} for m in methods}
    means = {m: {n: float(np.mean([row[n] for row in results[m].values()])) for n in names}
             for m in methods}
    lower = [n for n in names if not higher_is_better(n, conv)]
    print(f"convention: {conv}; {len(stems)} images, {len(methods)} method(s); "
          f"{elapsed:.1f} s with {workers} worker(s)")
    print(markdown_table(means, names))
    if lower:
        print(f"lower is better: {', '.join(lower)}; higher is better: the others")
    if args.out is not None:
        write_csv(args.out, results, means, names)
        print(f"per-image values written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except DGFusionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
