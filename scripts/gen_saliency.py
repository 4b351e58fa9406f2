"""Precompute VSM saliency masks for visible/infrared pairs (port of the published VSM.m).

Usage (from the repository root)::

    python scripts/gen_saliency.py --vis DIR --ir DIR --out DIR [--mode dgfusion|weighted]
                                   [--workers N] [--force]
    python scripts/gen_saliency.py -opt options/train/dgfusion_msrs.yml [--force]

Pairs are matched by file stem across png/jpg/jpeg/bmp/tif/tiff; each mask is written as
``<stem>.png`` (the visible image's stem, 8-bit, 0/255 in dgfusion mode). Images are read
unchanged (16-bit and 3-channel infrared are handled as in ``basicsr/utils/saliency.py``; an
alpha channel is ignored, as MATLAB's imread returns it separately). A mask newer than both
of its inputs is kept unless ``--force`` (also needed after changing ``--mode``).

With ``-opt``, every entry under ``datasets:`` that has ``dataroot_vis``, ``dataroot_ir`` and
``dataroot_mask`` gets its mask folder filled; relative paths are taken from the current
directory. Failed pairs (unreadable file, size mismatch, unmatched stem) are
reported by name on stderr, the others are still done, and the exit status is 1. Before any
work, every input folder must exist and every mask folder must be writable and apart from
every image folder (not the same, not inside, not containing one): exit 2 otherwise. Ctrl-C
or SIGTERM keeps the masks already written and exits 130.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Iterable, List, Optional, Tuple  # noqa: E402

import cv2  # noqa: E402
from tqdm import tqdm  # noqa: E402

from basicsr.data.pairs import match_folders  # noqa: E402
from basicsr.utils.cli import run_main  # noqa: E402
from basicsr.utils.errors import (EXIT_ITEMS_FAILED, EXIT_OK, ConfigError, DataError,  # noqa: E402
                                  Interrupted, first_line)
from basicsr.utils.fs import check_outputs_apart, ensure_writable_dir  # noqa: E402
from basicsr.utils.img_util import read_image  # noqa: E402
from basicsr.utils.saliency import MODES, saliency_mask_u8  # noqa: E402
from basicsr.utils.yaml_io import load_yaml_file  # noqa: E402

@dataclass(frozen=True)
class PairJob:
    """One mask to make: ``vis`` + ``ir`` -> ``out`` (a PNG)."""
    name: str
    vis: Path
    ir: Path
    out: Path
    mode: str


@dataclass
class Tally:
    written: int = 0
    skipped: int = 0
    failed: int = 0


def match_pairs(vis_dir: Path, ir_dir: Path, out_dir: Path,
                mode: str) -> Tuple[List[PairJob], List[Tuple[str, str]]]:
    """Pair the two folders by stem. Returns (jobs, failures as (name, reason))."""
    pairs, unmatched = match_folders(vis_dir, ir_dir)
    jobs = [PairJob(p['stem'], p['vis'], p['ir'], out_dir / f"{p['stem']}.png", mode) for p in pairs]
    return jobs, unmatched


def is_up_to_date(job: PairJob) -> bool:
    """True if the mask exists and is newer than both inputs."""
    try:
        out_time = job.out.stat().st_mtime_ns
        return out_time > max(job.vis.stat().st_mtime_ns, job.ir.stat().st_mtime_ns)
    except OSError:
        return False


def make_mask(job: PairJob) -> Tuple[str, Optional[str]]:
    """Compute and write one mask. Returns (name, None) or (name, error message)."""
    try:
        vis, ir = read_image(job.vis), read_image(job.ir)
        try:
            mask = saliency_mask_u8(vis, ir, job.mode)
        except DataError as exc:
            raise DataError(f"{job.vis.name} + {job.ir.name}: {exc}") from None
        # write beside the target, then rename, so an interrupted run leaves no half file
        tmp = job.out.with_name(f".{job.out.stem}.{os.getpid()}.tmp.png")
        try:
            if not cv2.imwrite(str(tmp), mask):
                raise DataError(f"{job.out}: cannot write mask")
            os.replace(tmp, job.out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return job.name, None
    except Exception as exc:  # report every failure by name and go on with the others
        return job.name, first_line(exc)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one pair per process; nested threads only compete


def run_jobs(jobs: List[PairJob], workers: int,
             desc: str = 'masks') -> Iterable[Tuple[str, Optional[str]]]:
    """Run ``jobs`` in ``workers`` processes (<= 1: in this process), yielding results."""
    bar = tqdm(total=len(jobs), desc=desc, unit='pair', disable=None)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield make_mask(job)
                bar.update()
            return
        with multiprocessing.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
            for result in pool.imap_unordered(make_mask, jobs, chunksize=4):
                yield result
                bar.update()
    finally:
        bar.close()


def generate(vis_dir: Path, ir_dir: Path, out_dir: Path, mode: str = 'dgfusion',
             workers: int = 0, force: bool = False, desc: str = 'masks') -> Tally:
    """Fill ``out_dir`` with the masks of all pairs; failures go to stderr by name."""
    tally = Tally()
    jobs, failures = match_pairs(vis_dir, ir_dir, out_dir, mode)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder (expected the mask output folder)")
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if force or not is_up_to_date(job)]
    tally.skipped = len(jobs) - len(todo)
    results = run_jobs(todo, workers, desc)
    try:
        for name, error in results:
            if error is None:
                tally.written += 1
            else:
                failures.append((name, error))
    except KeyboardInterrupt:
        results.close()  # ends the worker processes, which may stop in the middle of a write
        for tmp in out_dir.glob('.*.tmp.png'):  # their temporary files (make_mask's names)
            tmp.unlink(missing_ok=True)
        raise
    for name, error in sorted(failures):
        print(f"error: {name}: {error}", file=sys.stderr)
    tally.failed = len(failures)
    return tally


def dataset_folders(opt_path: Path) -> Tuple[List[Tuple[str, Path, Path, Path]], List[Tuple[str, Path]]]:
    """(dataset name, vis, ir, mask) folders of every complete entry under ``datasets:``, and
    ``(dotted key, folder)`` of every image folder the file names (masks may touch none)."""
    opt = load_yaml_file(opt_path)  # safe, bounded, duplicate keys refused
    datasets = opt.get('datasets') if isinstance(opt, dict) else None
    if not isinstance(datasets, dict):
        raise ConfigError(f"{opt_path}: datasets: missing or not a mapping")
    keys = ('dataroot_vis', 'dataroot_ir', 'dataroot_mask')
    found, seen = [], set()
    images = [(f"datasets.{name}.{key}", Path(str(entry[key])).expanduser())
              for name, entry in datasets.items() if isinstance(entry, dict)
              for key in keys[:2] if entry.get(key)]
    for name, entry in datasets.items():
        if not isinstance(entry, dict) or not all(entry.get(k) for k in keys):
            continue
        if str(entry['dataroot_mask']) == 'auto':  # computed on the fly by the dataset
            continue
        vis, ir, mask = (Path(str(entry[k])).expanduser() for k in keys)
        triple = tuple(p.resolve() for p in (vis, ir, mask))
        if triple not in seen:
            seen.add(triple)
            found.append((str(name), vis, ir, mask))
    if not found:
        raise ConfigError(f"{opt_path}: no entry under datasets has all of {', '.join(keys)}")
    return found, images


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', type=Path, help='option file: fill every dataset mask folder')
    parser.add_argument('--vis', type=Path, help='visible image folder')
    parser.add_argument('--ir', type=Path, help='infrared image folder')
    parser.add_argument('--out', type=Path, help='mask output folder')
    parser.add_argument('--mode', choices=MODES, default='dgfusion',
                        help='dgfusion: binary map of the published script (default); '
                             'weighted: S_vis / (S_vis + S_ir)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='processes (default: all cores; 0 or 1: in this process)')
    parser.add_argument('--force', action='store_true', help='redo masks that are up to date')
    args = parser.parse_args(argv)
    folders = (args.vis, args.ir, args.out)
    if args.opt is not None and any(f is not None for f in folders):
        parser.error('give either -opt or --vis/--ir/--out, not both')
    if args.opt is None and any(f is None for f in folders):
        parser.error('give --vis, --ir and --out (or -opt OPTIONS.yml)')
    if args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}')
    return args


def check_runs(runs: List[Tuple[str, Path, Path, Path]], images: List[Tuple[str, Path]]) -> None:
    """Before any work: every input folder exists, and no mask folder is, contains or lies
    inside an image folder (``images``: those of every run and any other the option file
    names), which would overwrite images with masks."""
    images = list(images)
    for name, vis, ir, _ in runs:
        for role, folder in (('vis', vis), ('ir', ir)):
            what = f"datasets.{name}.dataroot_{role}" if name else f"--{role}"
            if not folder.is_dir():
                raise DataError(f"{what}: {folder}: " + ('is a file, expected a folder of images'
                                                        if folder.exists() else 'folder does not exist'))
            images.append((what, folder))
    for name, _, _, out in runs:
        check_outputs_apart([(f"datasets.{name}.dataroot_mask" if name else '--out', out)], images)


def run(args: argparse.Namespace) -> int:
    if args.opt is not None:
        runs, images = dataset_folders(args.opt)
    else:
        runs, images = [('', args.vis, args.ir, args.out)], []
    check_runs(runs, images)
    for name, _, _, out in runs:  # every output before any work
        ensure_writable_dir(out, f"datasets.{name} mask folder" if name else 'mask folder')
    any_failed = False
    try:
        for name, vis, ir, out in runs:
            prefix = f"datasets.{name}: " if name else ''
            try:
                tally = generate(vis, ir, out, args.mode, args.workers, args.force,
                                 desc=name or 'masks')
            except DataError as exc:  # e.g. a folder without images: the others still run
                print(f"error: {prefix}{exc}", file=sys.stderr)
                any_failed = True
                continue
            any_failed |= tally.failed > 0
            print(f"{prefix}{tally.written} written, {tally.skipped} skipped, "
                  f"{tally.failed} failed -> {out}")
    except KeyboardInterrupt:
        raise Interrupted("the masks written so far are kept (rerun to finish: up-to-date "
                          "masks are skipped)") from None
    return EXIT_ITEMS_FAILED if any_failed else EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
