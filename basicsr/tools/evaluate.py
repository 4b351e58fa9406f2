"""Evaluate fused images against their visible/infrared sources with the fusion metrics.

Usage (from the repository root):
    python scripts/evaluate.py --fused results/ --vis data/vi --ir data/ir \
        [--convention cddfuse] [--metrics EN SD SF MI SCD VIF Qabf SSIM | all] \
        [--workers N] [--out table.csv] [--fused-suffix SUFFIX ...] [--ir-range RULE] \
        [--compare NAME=FOLDER ...] [--report report.html | --no-report]

Pairing: sources are paired by file stem across extensions (``vis/<stem>.*``,
``ir/<stem>.*``). A fused image is ``<fused dir>/<stem><suffix>.<ext>``.
* ``--fused-suffix`` gives the suffix once (used for every fused folder) or once per folder.
  Pass ``--fused-suffix ''`` for files named exactly like the sources.
* Without it the suffix is detected: every text that follows a source stem in a fused file
  name and completes the set of stems is a method, so a folder holding
  ``<stem>_A.jpg`` and ``<stem>_B.jpg`` for every stem is evaluated as two methods.
A fused folder may be given several times with different suffixes. A method is labelled by
its suffix without the leading ``_``/``-`` (or its folder name when the suffix is empty).
``--compare NAME=FOLDER`` (repeatable) adds another method labelled ``NAME`` whose images are
``<stem>.*``, ``<stem>_NAME.*`` or ``<stem>-NAME.*`` in ``FOLDER``; it is scored like the others.

Images are read as stored (1-channel files stay gray, 3-channel infrared stays 3-channel, as
the reference evaluators read them). 16-bit images are mapped to 8 bits by ``--ir-range``
(``minmax``, ``percentile:LO,HI`` (default 0.5,99.5) or ``fixed:LO,HI``), the rule
``test.py`` and ``scripts/fuse.py`` apply, so all three give the same numbers.

Output: a Markdown table of the means (one row per method) on stdout, labelled with the
convention. ``--out`` writes the per-image values at full precision: header
``image,<metric>...`` with one row per stem and a row ``mean``; with several methods a first
column ``method`` is added and each method's rows end with its own ``mean`` row. A value that
cannot be computed (e.g. SSIM on an image smaller than its window) is ``n/a``, with the reason
printed; means are over the computed values, and an ``images`` row gives their count when it
is not every image. With ``--out``, a self-contained ``report.html`` is written beside the CSV
(``--report PATH`` elsewhere, ``--no-report`` none): the tables with the best value per column
marked and sortable columns, and per image thumbnails vis | ir | each method, linking to the
full images (see :mod:`basicsr.inference.html_report`).

A source without its partner, a missing fused image, an unreadable image or one of the wrong
size is reported by name and skipped; the others are still evaluated. ``--out`` may not be,
contain or lie inside a ``--vis``, ``--ir`` or ``--fused`` folder (exit 2, before any work).
Exit status: 0 done; 1 some images failed (each named); 2 bad arguments or setup (one
``error: ...`` line); 130 interrupted (the values so far are written to ``--out``).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from basicsr.inference.html_report import (REPORT_NAME, ImageColumn, Section,
                                           compare_images, convention_table, parse_compare,
                                           write_report)
from basicsr.inference.report import means_table, write_csv
from basicsr.inference.scoring import score
from basicsr.metrics import (CONVENTIONS, DEFAULT_CONVENTION, default_metrics,
                             higher_is_better, metrics_for, read_image_rgb)
from basicsr.utils.cli import command
from basicsr.utils.errors import (EXIT_ITEMS_FAILED, EXIT_OK, ConfigError, DataError,
                                  DGFusionError, Interrupted)
from basicsr.data.pairs import match_folders
from basicsr.utils import img_util
from basicsr.utils.fs import check_outputs_apart, ensure_writable_file
from basicsr.utils.ir_range import DEFAULT_IR_RANGE, IrRange, parse_ir_range
from basicsr.utils.logger import console


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
        raise DataError(f"{what} folder {folder}: no images ({', '.join(img_util.IMAGE_EXTENSIONS)})")
    return found


def source_stems(vis_dir: Path, ir_dir: Path
                 ) -> Tuple[Dict[str, Path], Dict[str, Path], List[Tuple[str, str]]]:
    """Visible and infrared images paired by stem, and ``(stem, message)`` per unpaired stem."""
    list_images(vis_dir, 'vis'), list_images(ir_dir, 'ir')  # the folder-specific messages
    pairs, unpaired = match_folders(vis_dir, ir_dir)
    return ({p['stem']: p['vis'] for p in pairs}, {p['stem']: p['ir'] for p in pairs}, unpaired)


def match_suffix(files: Dict[str, Path], stems: Sequence[str], suffix: str,
                 folder: Path) -> Dict[str, Path]:
    """Fused path per stem for ``<stem><suffix>``; DataError when no stem has one (a stem
    without its fused image is reported and skipped later)."""
    out = {s: files[s + suffix] for s in stems if s + suffix in files}
    if not out:
        raise DataError(f"fused folder {folder}: no '<stem>{suffix}.*' image for any source "
                        f"(e.g. {_short(sorted(stems), 3)})")
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
    # no suffix completes the set: a folder with failed pairs (test.py, fuse.py) still has one
    # suffix that covers most stems; its missing images are named and skipped later
    ranked = sorted(counts, key=lambda s: (-len(counts[s]), s))
    best = ranked[0]
    if 2 * len(counts[best]) >= len(stems) and (len(ranked) == 1 or
                                              len(counts[ranked[1]]) < len(counts[best])):
        return [best]
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


def add_compared(methods: Dict[str, Dict[str, Path]], compare: Dict[str, Path],
                 stems: Sequence[str]) -> None:
    """Add the ``--compare NAME=FOLDER`` methods to ``methods``; DataError when a folder holds
    no image of any stem, ConfigError when a name is already a method label."""
    for name, folder in compare.items():
        if name in methods:
            raise ConfigError(f"--compare {name}={folder}: method label '{name}' is already taken "
                              f"by a --fused folder")
        found = compare_images(folder, name, stems)
        if not found:
            raise DataError(f"--compare {name}={folder}: no image named <stem>.*, <stem>_{name}.* "
                            f"or <stem>-{name}.* for any source (e.g. {_short(sorted(stems), 3)})")
        methods[name] = found


def report_path(args: argparse.Namespace) -> Optional[Path]:
    """Where the HTML report goes: ``--report``, else ``report.html`` beside ``--out``."""
    if args.no_report:
        return None
    if args.report is not None:
        return args.report
    return args.out.parent / REPORT_NAME if args.out is not None else None


def write_html(path: Path, groups: Dict[str, List[dict]], conv: str, stems: Sequence[str],
               vis: Dict[str, Path], ir: Dict[str, Path],
               methods: Dict[str, Dict[str, Path]]) -> None:
    """The report: the per-method table and thumbnails vis | ir | each method per stem."""
    table = convention_table(groups, conv)
    columns = [ImageColumn('vis', vis), ImageColumn('ir', ir)] + [
        ImageColumn(label, paths) for label, paths in methods.items()]
    write_report(path, 'evaluate.py: ' + ', '.join(methods),
                 [Section(f"{len(stems)} images, {len(methods)} method(s)", [table], stems, columns)])


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, by the parent


Task = Tuple[str, Path, Path, Dict[str, Path], List[str], str, IrRange]
# per stem: {method: (values or None, error or None, n/a notes)}
StemResult = Dict[str, Tuple[Optional[Dict[str, float]], Optional[str], List[str]]]


def evaluate_stem(task: Task) -> Tuple[str, StemResult]:
    """Metrics of every method for one stem; a failure is kept as a message, not raised."""
    stem, vis_path, ir_path, fused_paths, names, convention, ir_range = task
    out: StemResult = {}
    try:
        vis, ir = read_image_rgb(vis_path, ir_range), read_image_rgb(ir_path, ir_range)
    except DGFusionError as err:
        return stem, {m: (None, str(err), []) for m in fused_paths}
    for method, path in fused_paths.items():
        try:
            values, notes = score(read_image_rgb(path), vis, ir, names, convention, stem)
            out[method] = (values, None, notes)
        except DGFusionError as err:
            out[method] = (None, f"{path.name}: {err}", [])
    return stem, out


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
    parser.add_argument('--ir-range', default=DEFAULT_IR_RANGE,
                        help='16-bit images to 8 bits: minmax, percentile:LO,HI or fixed:LO,HI '
                             f'(default {DEFAULT_IR_RANGE})')
    parser.add_argument('--compare', action='append', default=[], metavar='NAME=FOLDER',
                        help='another method to score and show, e.g. SeAFusion=path/to/folder '
                             '(repeatable)')
    parser.add_argument('--report', type=Path, default=None,
                        help=f'HTML report to write (default: {REPORT_NAME} beside --out)')
    parser.add_argument('--no-report', action='store_true', help='write no HTML report')
    return parser.parse_args(argv)


def check_names(conv: str, requested: Optional[List[str]]) -> List[str]:
    if conv not in CONVENTIONS:
        raise ConfigError(f"--convention: unknown '{conv}' "
                          f"(expected one of {', '.join(CONVENTIONS)})")
    if requested is None:
        names = default_metrics(conv)
    elif requested == ['all']:
        names = metrics_for(conv)
    else:
        names = list(requested)
    for name in names:
        higher_is_better(name, conv)  # raises for unknown / undefined names
    return names


def run(args: argparse.Namespace) -> int:
    conv = args.convention
    names = check_names(conv, args.metrics)
    if args.workers < 1:
        raise ConfigError(f"--workers: expected a positive integer, got {args.workers}")
    ir_range = parse_ir_range(args.ir_range)
    if args.out is not None:
        check_outputs_apart([('--out', args.out)], [('--vis', args.vis), ('--ir', args.ir)]
                            + [('--fused', folder) for folder in args.fused])
        ensure_writable_file(args.out, '--out')
    if args.report is not None and args.no_report:
        raise ConfigError('--report and --no-report exclude each other')
    html_path = report_path(args)
    if html_path is not None:
        ensure_writable_file(html_path, '--report')
    compare = parse_compare(args.compare)

    vis, ir, unpaired = source_stems(args.vis, args.ir)
    stems = sorted(vis)
    methods = resolve_methods(args.fused, args.fused_suffix, stems)
    add_compared(methods, compare, stems)
    failures = [(s, msg) for s, msg in unpaired]
    tasks = []
    for s in stems:
        fused = {m: paths[s] for m, paths in methods.items() if s in paths}
        for m in methods:
            if m not in fused:
                failures.append((s, f"no fused image for method {m}"))
        if fused:
            tasks.append((s, vis[s], ir[s], fused, names, conv, ir_range))

    start = time.perf_counter()
    per_stem: Dict[str, StemResult] = {}
    workers = max(1, min(args.workers, len(tasks)))
    try:
        # disable=None: the bar shows on a terminal only, keeping logs and error output clean.
        with tqdm(total=len(tasks), desc=f'metrics ({conv})', unit='img', file=sys.stderr,
                  disable=None) as bar:
            if workers == 1:
                for task in tasks:
                    stem, out = evaluate_stem(task)
                    per_stem[stem] = out
                    bar.update()
            else:
                # spawn: a forked worker can inherit a lock held by one of this process's threads
                with mp.get_context('spawn').Pool(workers, initializer=_init_worker) as pool:
                    for stem, out in pool.imap_unordered(evaluate_stem, tasks):
                        per_stem[stem] = out
                        bar.update()
    except KeyboardInterrupt:
        if args.out is not None and per_stem:
            write_csv(args.out, collect(per_stem, methods, stems)[0])
        raise Interrupted(f"{len(per_stem)} of {len(tasks)} images evaluated"
                          + (f"; their values are in {args.out}" if args.out and per_stem else '')
                          ) from None
    elapsed = time.perf_counter() - start

    groups, notes, item_failures = collect(per_stem, methods, stems)
    failures += item_failures
    lower = [n for n in names if not higher_is_better(n, conv)]
    n_ok = max((len(rows) for rows in groups.values()), default=0)
    console(f"convention: {conv}; {n_ok} of {len(stems) + len(unpaired)} images, {len(methods)} "
            f"method(s); {elapsed:.1f} s with {workers} worker(s)")
    if any(groups.values()):
        console(means_table(groups))
    for note in notes:
        console(f"n/a: {note}")
    if lower:
        console(f"lower is better: {', '.join(lower)}; higher is better: the others")
    if args.out is not None and any(groups.values()):
        write_csv(args.out, groups)
        console(f"per-image values written to {args.out}")
    if html_path is not None:
        write_html(html_path, groups, conv, stems, vis, ir, methods)
        console(f"report written to {html_path}")
    for stem, msg in sorted(failures):
        console(f"failed: {stem}: {msg}", err=True)
    if failures:
        console(f"{len(failures)} image(s) failed: {_short(sorted({s for s, _ in failures}))}", err=True)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


def collect(per_stem: Dict[str, StemResult], methods: Dict[str, Dict[str, Path]],
            stems: Sequence[str]):
    """Rows per method (stem order), n/a notes and ``(stem, message)`` failures."""
    groups: Dict[str, List[dict]] = {m: [] for m in methods}
    notes: List[str] = []
    failures: List[Tuple[str, str]] = []
    for stem in stems:
        for method, (values, error, stem_notes) in per_stem.get(stem, {}).items():
            if error is not None:
                failures.append((stem, error if len(methods) == 1 else f"{method}: {error}"))
                continue
            groups[method].append({'image': stem, **values})
            notes.extend(stem_notes if len(methods) == 1 else [f"{method} {n}" for n in stem_notes])
    return groups, notes, failures


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
