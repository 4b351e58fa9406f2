"""What a ``fuse`` run will do, decided before the model loads: the flags checked, the inputs
classified (one pair, folders, videos, a benchmark layout), every output location checked and
its sinks opened (see ``basicsr/tools/fuse.py``)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2

from basicsr.data.layouts import get_layout, layout_pairs
from basicsr.inference import check_tile, match_folders, read_pair
from basicsr.inference.video import (ImageSink, Item, VideoSink, file_items, is_video, open_video,
                                     video_items)
from basicsr.utils.errors import ConfigError, DataError
from basicsr.utils.fs import check_outputs_apart, ensure_writable_dir, ensure_writable_file
from basicsr.utils.img_util import IMAGE_EXTENSIONS
from basicsr.utils.ir_range import parse_ir_range
from basicsr.utils.checkpoint_folder import resolve_checkpoint_path

RESIZE_HINT = ' (resample one with --resize ir|vis)'
SAVE_KINDS = ('fused', 'grid', 'mask')


@dataclass
class Plan:
    mode: str                      # 'single', 'folder' or 'video'
    items: Callable[[], Iterator[Item]]
    total: Optional[int]
    sinks: Dict[str, object]
    where: str                     # what to report at the end


def check_args(args: argparse.Namespace) -> Optional[int]:
    """Validate flags that need no file; return the tile overlap (None: the default)."""
    overlap = args.tile_overlap
    if args.tile_overlap is not None and args.tile is None:
        raise ConfigError('--tile-overlap needs --tile')
    try:
        check_tile(args.tile, overlap)
    except ConfigError as err:
        raise ConfigError(f"--tile: {err}") from None
    if args.batch < 1:
        raise ConfigError(f"--batch: {args.batch} must be >= 1")
    if args.max_memory is not None and args.max_memory <= 0:
        raise ConfigError(f"--max-memory: {args.max_memory} must be > 0 (GiB)")
    bad = [k for k in args.save if k not in SAVE_KINDS]
    if bad:
        raise ConfigError(f"--save: {', '.join(bad)} is not one of {', '.join(SAVE_KINDS)}")
    parse_ir_range(args.ir_range)
    return overlap


def check_ext(ext: str) -> str:
    ext = '.' + ext.lstrip('.').lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ConfigError(f"--ext: '{ext[1:]}' is not one of {', '.join(e[1:] for e in IMAGE_EXTENSIONS)}")
    return ext


def folder_sinks(out: Path, ext: str, save: Sequence[str]) -> Dict[str, object]:
    sinks: Dict[str, object] = {}
    for kind in save:
        folder = out if kind == 'fused' else out / kind
        sinks[kind] = ImageSink(ensure_writable_dir(folder, f"--out {kind} folder"),
                                ext if kind == 'fused' else '.png')
    return sinks


def plan_layout(args: argparse.Namespace, ext: str) -> Plan:
    """``--layout``: the benchmark's pairs under ``--root``, written as ``OUT/<stem>``."""
    layout = get_layout(args.layout)
    args.border = layout.border if args.border is None else args.border
    args.resize = layout.resize if args.resize is None else args.resize
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out: {args.out} is a file; --layout needs an output folder")
    try:
        folders = [f for g in layout.groups(args.root, args.split) for f in (g.vis, g.ir)]
        check_outputs_apart([('--out', args.out)], [('--root', f) for f in folders] + inputs(args))
        jobs, unmatched = layout_pairs(layout, args.root, args.split)
    except ConfigError as err:
        raise ConfigError(f"--{err}") from None  # 'split: ...' -> '--split: ...'
    sinks = folder_sinks(args.out, ext, args.save)
    return Plan('folder', lambda: file_items(jobs, unmatched, parse_ir_range(args.ir_range), args.resize,
                                   args.border or 0, RESIZE_HINT), len(jobs) + len(unmatched),
                sinks, f"{args.out}")


def inputs(args: argparse.Namespace) -> List[Tuple[str, Path]]:
    """What the run reads, for :func:`check_outputs_apart`: the sources and the weights file
    (of a checkpoints folder: the file it resolves to)."""
    weights = args.weights
    if weights is not None and weights.is_dir():
        weights = resolve_checkpoint_path(weights)
    sources = [(flag, path) for flag, path in (('--vis', args.vis), ('--ir', args.ir)) if path]
    return sources + ([('--weights', weights)] if weights else [])


def plan_run(args: argparse.Namespace, warnings: List[str]) -> Plan:
    """Classify the inputs, check every output location, and say how to produce the items."""
    ext = check_ext(args.ext)
    if args.layout is not None:
        return plan_layout(args, ext)
    vis, ir, out = args.vis, args.ir, args.out
    if vis.is_dir() and ir.is_dir():
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out: {out} is a file; folder inputs need an output folder")
        check_outputs_apart([('--out', out)], inputs(args))
        jobs, unmatched = match_folders(vis, ir)
        sinks = folder_sinks(out, ext, args.save)
        return Plan('folder', lambda: file_items(jobs, unmatched, parse_ir_range(args.ir_range), args.resize,
                                   args.border or 0, RESIZE_HINT), len(jobs) + len(unmatched),
                    sinks, f"{out}")
    if is_video(vis) or is_video(ir):
        if not (is_video(vis) and is_video(ir)):
            raise ConfigError(f"--vis {vis} and --ir {ir}: give two videos, two images or two folders")
        return plan_video(args, ext, warnings)
    for role, path in (('--vis', vis), ('--ir', ir)):
        if not path.exists():
            raise DataError(f"{role}: {path} does not exist")
    if vis.is_dir() or ir.is_dir():
        raise ConfigError(f"--vis {vis} and --ir {ir}: give two files or two folders")
    if out.is_dir():
        out = out / f"{vis.stem}{ext}"
    elif out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"--out: {out} needs an image extension ({', '.join(IMAGE_EXTENSIONS)}) "
                          f"or must be an existing folder")
    targets = {kind: out if kind == 'fused' else out.with_name(f"{out.stem}_{kind}.png")
               for kind in args.save}
    check_outputs_apart([(f"--out {kind} file", t) for kind, t in targets.items()], inputs(args))
    sinks = {kind: ImageSink(single=ensure_writable_file(target, f"--out {kind} file"))
             for kind, target in targets.items()}
    rule = parse_ir_range(args.ir_range)
    items = lambda: iter([Item(vis.stem, read_pair(vis, ir, rule, args.resize, stem=vis.stem,  # noqa: E731
                                                   size_hint=RESIZE_HINT))])
    return Plan('single', items, 1, sinks, str(out))


def plan_video(args: argparse.Namespace, ext: str, warnings: List[str]) -> Plan:
    vis_cap, ir_cap = open_video(args.vis, '--vis'), open_video(args.ir, '--ir')
    fps = vis_cap.get(cv2.CAP_PROP_FPS) or 25.0
    size = {name: (int(c.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(c.get(cv2.CAP_PROP_FRAME_WIDTH)))
            for name, c in (('vis', vis_cap), ('ir', ir_cap))}
    if size['vis'] != size['ir'] and args.resize is None:
        raise DataError(f"{args.vis} is {size['vis'][0]}x{size['vis'][1]} but {args.ir} is "
                        f"{size['ir'][0]}x{size['ir'][1]}{RESIZE_HINT}")
    frame = size['ir'] if args.resize == 'vis' else size['vis']
    counts = [int(c.get(cv2.CAP_PROP_FRAME_COUNT)) for c in (vis_cap, ir_cap)]
    total = min(counts) if min(counts) > 0 else None
    out = args.out
    if args.frames:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out: {out} is a file; --frames needs an output folder")
        check_outputs_apart([('--out', out)], inputs(args))
        sinks = folder_sinks(out, ext, args.save)
    else:
        targets = {kind: out if kind == 'fused' else out.with_name(f"{out.stem}_{kind}{out.suffix}")
                   for kind in args.save}
        check_outputs_apart([(f"--out {kind} video", t) for kind, t in targets.items()], inputs(args))
        sinks = {}
        try:
            for kind, target in targets.items():
                ensure_writable_file(target, f"--out {kind} video")
                width = 3 * frame[1] if kind == 'grid' else frame[1]
                sinks[kind] = VideoSink(target, fps, (frame[0], width))
        except BaseException:  # also Ctrl-C / SIGTERM: no empty partial video left behind
            for sink in sinks.values():
                sink.close()
            raise
    return Plan('video', lambda: video_items(vis_cap, ir_cap, parse_ir_range(args.ir_range), args.resize,
                                         warnings, RESIZE_HINT), total, sinks,
                f"{out} ({fps:g} frames/s)")
