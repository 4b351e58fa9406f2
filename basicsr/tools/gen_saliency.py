"""Precompute VSM saliency masks for visible/infrared pairs (port of the published VSM.m).

Usage (from the repository root)::

    python scripts/gen_saliency.py --vis DIR --ir DIR --out DIR [--mode dgfusion|weighted]
                                   [--workers N] [--force]
    python scripts/gen_saliency.py -opt options/train/DGFusion_RoadScene.yml [--force]
    python scripts/gen_saliency.py --layout msrs --root DIR --split train --out DIR
                                   [--border N] [--resize ir|vis]

Pairs are matched by file stem across png/jpg/jpeg/bmp/tif/tiff; each mask is written as
``<stem>.png`` (the visible image's stem, 8-bit, 0/255 in dgfusion mode). Images are read
unchanged (16-bit and 3-channel infrared are handled as in ``basicsr/data/saliency.py``; an
alpha channel is ignored, as MATLAB's imread returns it separately). A mask newer than both
of its inputs is kept unless ``--force`` (also needed after changing ``--mode``).

With ``-opt``, every entry under ``datasets:`` that has ``dataroot_vis``, ``dataroot_ir`` and
``dataroot_mask`` gets its mask folder filled; relative paths are taken from the current
directory; an entry given by ``layout`` + ``root`` fills its ``dataroot_mask`` folder, or, when
absent, the training set's own mask folder (``dgfusion``: ``train/MASK``). With ``--layout`` the
pairs are those of a benchmark folder (``basicsr/data/layouts.py``), read with the layout's
quirks (``--border``/``--resize`` default to the layout's), and the mask of pair ``<stem>`` is
``OUT/<stem>.png`` (VTUAV: ``OUT/<sequence>/<frame>.png``), where a training set with the same
layout and ``dataroot_mask: OUT`` finds it. Failed pairs (unreadable file, size mismatch, unmatched stem) are
reported by name on stderr, the others are still done, and the exit status is 1. Before any
work, every input folder must exist and every mask folder must be writable and apart from
every image folder (not the same, not inside, not containing one): exit 2 otherwise. Ctrl-C
or SIGTERM keeps the masks already written and exits 130.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import cv2
from tqdm import tqdm

from basicsr.data.layouts import LAYOUTS, get_layout, layout_pairs
from basicsr.data.pairs import RESIZE_CHOICES, match_folders, read_sources
from basicsr.utils.cli import command
from basicsr.utils.errors import (EXIT_ITEMS_FAILED, EXIT_OK, ConfigError, DataError,
                                  DGFusionError, Interrupted, first_line)
from basicsr.utils.fs import check_outputs_apart, ensure_writable_dir
from basicsr.data.saliency import MODES, saliency_mask_u8
from basicsr.utils.yaml_io import load_yaml_file
from basicsr.utils.logger import console

@dataclass(frozen=True)
class PairJob:
    """One mask to make: ``vis`` + ``ir`` -> ``out`` (a PNG), after cutting ``border`` pixels
    from each side and resampling ``resize`` (``'ir'``/``'vis'``) when the sizes differ."""
    name: str
    vis: Path
    ir: Path
    out: Path
    mode: str
    border: int = 0
    resize: Optional[str] = None


Found = Tuple[List[Dict[str, Path]], List[Tuple[str, str]]]


@dataclass
class MaskRun:
    """One mask folder to fill: ``find()`` gives its pairs (as ``match_folders``)."""
    name: str
    out: Path
    find: Callable[[], Found]
    border: int = 0
    resize: Optional[str] = None
    inputs: List[Tuple[str, Path]] = field(default_factory=list)  # (option or flag, image folder)


@dataclass
class Tally:
    written: int = 0
    skipped: int = 0
    failed: int = 0


def folder_run(name: str, vis_dir: Path, ir_dir: Path, out_dir: Path) -> MaskRun:
    """Two folders paired by stem."""
    inputs = [(f"datasets.{name}.dataroot_{role}" if name else f"--{role}", folder)
              for role, folder in (('vis', vis_dir), ('ir', ir_dir))]
    return MaskRun(name, out_dir, lambda: match_folders(vis_dir, ir_dir), inputs=inputs)


def layout_run(name: str, layout: str, root: Path, split: Optional[str], out_dir: Path,
               border: Optional[int] = None, resize: Optional[str] = None) -> MaskRun:
    """The pairs of a benchmark layout (its border and resize unless given)."""
    chosen = get_layout(layout)
    groups = chosen.groups(root, split)  # a missing folder or split is a setup error, found first
    label = f"datasets.{name}.root" if name else '--root'
    return MaskRun(name, out_dir, lambda: layout_pairs(chosen, root, split),
                   chosen.border if border is None else border,
                   chosen.resize if resize is None else resize,
                   [(label, folder) for g in groups for folder in (g.vis, g.ir)])


def match_pairs(run: MaskRun, mode: str) -> Tuple[List[PairJob], List[Tuple[str, str]]]:
    """The jobs of ``run``. Returns (jobs, failures as (name, reason))."""
    pairs, unmatched = run.find()
    jobs = [PairJob(p['stem'], p['vis'], p['ir'], run.out / f"{p['stem']}.png", mode, run.border,
                    run.resize) for p in pairs]
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
        vis, ir = read_sources(job.vis, job.ir, job.border, job.resize)
        job.out.parent.mkdir(parents=True, exist_ok=True)  # <sequence>/ of a layout
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
        # spawn, not fork: a fork of a process with running threads (torch, tqdm, a caller's
        # servers) can copy a held lock into a worker, which then waits forever
        context = multiprocessing.get_context('spawn')
        with context.Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
            for result in pool.imap_unordered(make_mask, jobs, chunksize=4):
                yield result
                bar.update()
    finally:
        bar.close()


def generate(run: MaskRun, mode: str = 'dgfusion', workers: int = 0, force: bool = False,
             desc: str = 'masks') -> Tally:
    """Fill ``run.out`` with the masks of all pairs; failures go to stderr by name."""
    tally = Tally()
    out_dir = run.out
    jobs, failures = match_pairs(run, mode)
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
        for tmp in out_dir.rglob('.*.tmp.png'):  # their temporary files (make_mask's names)
            tmp.unlink(missing_ok=True)
        raise
    for name, error in sorted(failures):
        console(f"error: {name}: {error}", err=True)
    tally.failed = len(failures)
    return tally


def dataset_runs(opt_path: Path) -> Tuple[List[MaskRun], List[Tuple[str, Path]]]:
    """The mask folder of every complete entry under ``datasets:``: ``dataroot_vis``,
    ``dataroot_ir`` and ``dataroot_mask``, or ``layout`` and ``root`` (see the module doc);
    and ``(dotted key, folder)`` of every image folder the file names (masks may touch none)."""
    opt = load_yaml_file(opt_path)  # safe, bounded, duplicate keys refused
    datasets = opt.get('datasets') if isinstance(opt, dict) else None
    if not isinstance(datasets, dict):
        raise ConfigError(f"{opt_path}: datasets: missing or not a mapping")
    keys = ('dataroot_vis', 'dataroot_ir', 'dataroot_mask')
    found: List[MaskRun] = []
    seen = set()
    images = [(f"datasets.{name}.{key}", Path(str(entry[key])).expanduser())
              for name, entry in datasets.items() if isinstance(entry, dict)
              for key in keys[:2] if entry.get(key)]
    for name, entry in datasets.items():
        if isinstance(entry, dict) and entry.get('layout') and entry.get('root'):
            run = _layout_entry_run(opt_path, str(name), entry)
            key = run and (Path(str(entry['root'])).resolve(), entry.get('split'), run.out.resolve())
            if run is not None and key not in seen:
                seen.add(key)
                found.append(run)
            continue
        if not isinstance(entry, dict) or not all(entry.get(k) for k in keys):
            continue
        if str(entry['dataroot_mask']) == 'auto':  # computed on the fly by the dataset
            continue
        vis, ir, mask = (Path(str(entry[k])).expanduser() for k in keys)
        triple = tuple(p.resolve() for p in (vis, ir, mask))
        if triple not in seen:
            seen.add(triple)
            found.append(folder_run(str(name), vis, ir, mask))
    if not found:
        raise ConfigError(f"{opt_path}: no entry under datasets has all of {', '.join(keys)} "
                          f"(or layout and root with a mask folder)")
    return found, images


def _layout_entry_run(opt_path: Path, name: str, entry: Dict) -> Optional[MaskRun]:
    """The mask run of a ``layout`` entry: its ``dataroot_mask`` folder, else (training set)
    the layout's own mask folder; None when its masks are computed on the fly or unused."""
    mask = entry.get('dataroot_mask')
    phase = entry.get('phase', 'train' if name == 'train' else 'test')
    if mask in ('auto', 'none') or (not mask and phase != 'train'):
        return None
    try:
        layout = get_layout(str(entry['layout']))
        split = entry.get('split')
        root = Path(str(entry['root'])).expanduser()
        if mask:
            out = Path(str(mask)).expanduser()
        elif layout.has_mask:
            masks = [g.mask for g in layout.groups(root, split)]
            if len(masks) != 1:  # no shipped layout with masks has several folder pairs
                return None
            out = masks[0]
        else:
            return None
        return layout_run(name, layout.name, root, split, out, entry.get('border'),
                          entry.get('resize'))
    except DGFusionError as exc:
        raise ConfigError(f"{opt_path}: datasets.{name}: {exc}") from None


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', type=Path, help='option file: fill every dataset mask folder')
    parser.add_argument('--vis', type=Path, help='visible image folder')
    parser.add_argument('--ir', type=Path, help='infrared image folder')
    parser.add_argument('--out', type=Path, help='mask output folder')
    parser.add_argument('--layout', choices=LAYOUTS, default=None,
                        help='a benchmark folder layout under --root instead of --vis/--ir')
    parser.add_argument('--root', type=Path, help='the benchmark folder (--layout)')
    parser.add_argument('--split', default=None, help='the benchmark split, e.g. train (--layout)')
    parser.add_argument('--border', type=int, default=None,
                        help="pixels cut from each side of every image (--layout; default: the layout's)")
    parser.add_argument('--resize', choices=RESIZE_CHOICES, default=None,
                        help="resample this modality when a pair's sizes differ (default: the layout's)")
    parser.add_argument('--mode', choices=MODES, default='dgfusion',
                        help='dgfusion: binary map of the published script (default); '
                             'weighted: S_vis / (S_vis + S_ir)')
    parser.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                        help='processes (default: all cores; 0 or 1: in this process)')
    parser.add_argument('--force', action='store_true', help='redo masks that are up to date')
    args = parser.parse_args(argv)
    folders = (args.vis, args.ir, args.out)
    if args.opt is not None and any(f is not None for f in folders + (args.layout, args.root)):
        parser.error('give either -opt or --vis/--ir/--out (or --layout/--root/--out), not both')
    if args.layout is not None:
        if args.vis is not None or args.ir is not None:
            parser.error('give either --layout and --root, or --vis and --ir')
        if args.root is None or args.out is None:
            parser.error('--layout needs --root and --out')
    elif args.opt is None and any(f is None for f in folders):
        parser.error('give --vis, --ir and --out (or -opt OPTIONS.yml, or --layout, --root and --out)')
    for flag in ('root', 'split', 'border'):
        if args.layout is None and getattr(args, flag) is not None:
            parser.error(f'--{flag} needs --layout')
    if args.border is not None and args.border < 0:
        parser.error(f'--border must be >= 0, got {args.border}')
    if args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}')
    return args


def check_runs(runs: List[MaskRun], images: List[Tuple[str, Path]]) -> None:
    """Before any work: every input folder exists, and no mask folder is, contains or lies
    inside an image folder (``images``: any other the option file names, plus those of every
    run), which would overwrite images with masks."""
    images = list(images)
    for run in runs:
        for what, folder in run.inputs:
            if not folder.is_dir():
                raise DataError(f"{what}: {folder}: " + ('is a file, expected a folder of images'
                                                        if folder.exists() else 'folder does not exist'))
            images.append((what, folder))
    for run in runs:
        check_outputs_apart([(f"datasets.{run.name}.dataroot_mask" if run.name else '--out', run.out)],
                            images)


def plan_runs(args: argparse.Namespace) -> Tuple[List[MaskRun], List[Tuple[str, Path]]]:
    """The mask runs the arguments ask for, and the other image folders an option file names."""
    if args.opt is not None:
        return dataset_runs(args.opt)
    if args.layout is not None:
        try:
            return [layout_run('', args.layout, args.root, args.split, args.out, args.border,
                               args.resize)], []
        except ConfigError as exc:
            raise ConfigError(f"--{exc}") from None  # 'split: ...' -> '--split: ...'
    runs = [folder_run('', args.vis, args.ir, args.out)]
    if args.resize is not None:
        runs[0].resize = args.resize
    return runs, []


def run(args: argparse.Namespace) -> int:
    runs, images = plan_runs(args)
    check_runs(runs, images)
    for mask_run in runs:  # every output before any work
        ensure_writable_dir(mask_run.out, f"datasets.{mask_run.name} mask folder" if mask_run.name
                            else 'mask folder')
    any_failed = False
    try:
        for mask_run in runs:
            name, out = mask_run.name, mask_run.out
            prefix = f"datasets.{name}: " if name else ''
            try:
                tally = generate(mask_run, args.mode, args.workers, args.force, desc=name or 'masks')
            except DataError as exc:  # e.g. a folder without images: the others still run
                console(f"error: {prefix}{exc}", err=True)
                any_failed = True
                continue
            any_failed |= tally.failed > 0
            console(f"{prefix}{tally.written} written, {tally.skipped} skipped, "
                    f"{tally.failed} failed -> {out}")
    except KeyboardInterrupt:
        raise Interrupted("the masks written so far are kept (rerun to finish: up-to-date "
                          "masks are skipped)") from None
    return EXIT_ITEMS_FAILED if any_failed else EXIT_OK


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
