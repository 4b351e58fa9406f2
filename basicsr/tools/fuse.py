"""Fuse your own visible/infrared data with a DGFusion checkpoint: one pair, folders or videos.

Usage (from the repository root)::

    python scripts/fuse.py --vis vis.png --ir ir.tif --out fused.png
    python scripts/fuse.py --weights CKPT --vis vis.png --ir ir.tif --out fused.png
    python scripts/fuse.py --weights CKPT --vis VIS_DIR --ir IR_DIR --out OUT_DIR
    python scripts/fuse.py --weights CKPT --vis vis.mp4 --ir ir.mp4 --out fused.avi [--frames]
    python scripts/fuse.py --weights CKPT --layout msrs --root DIR --split test --out OUT_DIR
        [--device auto|cpu|cuda|cuda:N] [--batch N] [--no-ema] [--tile N [--tile-overlap M]]
        [--ir-range minmax|percentile:LO,HI|fixed:LO,HI] [--resize ir|vis]
        [--save fused grid mask] [--ext png] [--max-memory GIB]

``--weights`` is a checkpoint file (ours or a published state dict; layout and width are
detected) or a checkpoints folder (its ``latest`` file, else the newest ``*.pth``); without it
the reference model shipped in ``pretrained_model/`` is used. ``--engine average|maximum``
fuses with a weight-free baseline instead (pixel average / maximum of the visible luminance
and the infrared, with the visible colour), through the same pipeline.

Inputs go through the pipeline of ``test.py`` (``basicsr.inference``): visible RGB or gray,
infrared with 1 or 3 channels, 8-bit values / 255, 16-bit stretched by ``--ir-range``
(default ``percentile:0.5,99.5`` per image; in a video the first frame's limits hold for the
whole run, so brightness does not flicker). Folders are paired by file stem; videos frame by
frame (the shorter stream ends the run with a warning) and are written at the visible
stream's frame rate (``.avi``: MJPG, ``.mp4``/``.mov``: mp4v), or as numbered PNG frames into
the ``--out`` folder with ``--frames``. Any size works and the output has the input's size;
pairs of different sizes are an error unless ``--resize ir`` (infrared resampled to the
visible size) or ``--resize vis``.

``--layout NAME --root DIR [--split S]`` takes the pairs of a public benchmark from its own
folders (dronevehicle, llvip, msrs, m3fd, vtuav, dgfusion; ``basicsr/data/layouts.py``) with its
quirks: ``--border`` and ``--resize`` default to the layout's (DroneVehicle's 100-pixel frame is
cut; VTUAV's infrared frames are resampled to the visible size and its pairs are written as
``OUT/<sequence>/<frame>``).

``--save`` picks what is written: ``fused`` (default), ``grid`` (vis | ir | fused side by
side) and ``mask`` (the VSM visible-weight mask); in folder mode they go to ``OUT/``,
``OUT/grid/`` and ``OUT/mask/``, otherwise beside ``--out`` as ``<name>_grid``/``<name>_mask``.

Memory: a whole-frame pass that would not fit in the free memory (or ``--max-memory``) is
refused before it starts, with the estimate and a tile size that fits. ``--tile N`` (N >= 32)
fuses overlapping tiles; the network's FFTs are global, so tiled output differs from
whole-frame output (README, "Fuse your own data").

Exit status: 0 all fused; 1 some pairs or frames failed (each named, the others written);
2 bad arguments or setup (one ``error: ...`` line, checked before any work, the output
location included: no output may be, contain or lie inside ``--vis``, ``--ir`` or the weights
file); 130 interrupted by Ctrl-C or SIGTERM (what was fused is kept, a video is closed with
the frames fused so far, and no partial file is left).
"""
from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from tqdm import tqdm

from basicsr.inference import (DEFAULT_OVERLAP, Pair, Stopwatch, check_tile, fuse,
                               latency_summary, load_model, match_folders, read_pair)
from basicsr.utils.cli import run_main
from basicsr.utils.errors import (EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_OK,
                                  ConfigError, DataError, DGFusionError, one_line)
from basicsr.utils.fs import check_outputs_apart, ensure_writable_dir, ensure_writable_file
from basicsr.utils.img_util import IMAGE_EXTENSIONS, tensor2img, write_image
from basicsr.inference.fusion import resolve_overlap
from basicsr.inference.baselines import BASELINES, BaselineModel
from basicsr.data.layouts import LAYOUTS, get_layout, layout_pairs
from basicsr.inference.loader import REFERENCE_WEIGHTS, REPO_ROOT, find_checkpoint
from basicsr.utils.ir_range import DEFAULT_IR_RANGE, parse_ir_range, unit_to_u8
from basicsr.utils.options import parse_device, resolve_checkpoint_path

RESIZE_HINT = ' (resample one with --resize ir|vis)'
VIDEO_CODECS = {'.avi': 'MJPG', '.mp4': 'mp4v', '.mov': 'mp4v', '.m4v': 'mp4v', '.mkv': 'MJPG'}
VIDEO_EXTENSIONS = tuple(VIDEO_CODECS) + ('.webm', '.mpg', '.mpeg', '.wmv', '.ts')
SAVE_KINDS = ('fused', 'grid', 'mask')
# what a single failing pair may raise without stopping the run (out of memory: RuntimeError)
PAIR_ERRORS = (DGFusionError, RuntimeError, ValueError, OSError, cv2.error)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', type=Path, default=None,
                        help=f'checkpoint file or checkpoints folder (default: the reference model '
                             f'{REFERENCE_WEIGHTS.relative_to(REPO_ROOT)})')
    parser.add_argument('--vis', type=Path, help='visible image, folder or video')
    parser.add_argument('--ir', type=Path, help='infrared image, folder or video')
    parser.add_argument('--layout', choices=LAYOUTS, default=None,
                        help='a benchmark folder layout under --root instead of --vis/--ir')
    parser.add_argument('--root', type=Path, default=None, help='the benchmark folder (--layout)')
    parser.add_argument('--split', default=None, help='the benchmark split, e.g. test (--layout)')
    parser.add_argument('--border', type=int, default=None,
                        help="pixels cut from each side of every image (--layout; default: the layout's)")
    parser.add_argument('--out', required=True, type=Path,
                        help='output image, folder or video (a folder with --frames)')
    parser.add_argument('--frames', action='store_true', help='video input: write PNG frames into --out')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--batch', type=int, default=1, help='frames per network pass (same-size pairs)')
    parser.add_argument('--no-ema', action='store_true', help="use 'params', not 'params_ema'")
    parser.add_argument('--tile', type=int, default=None, help='fuse in N x N tiles (N >= 32)')
    parser.add_argument('--tile-overlap', type=int, default=None,
                        help=f'pixels shared by neighbouring tiles (default {DEFAULT_OVERLAP}, a quarter of smaller tiles)')
    parser.add_argument('--ir-range', default=DEFAULT_IR_RANGE,
                        help=f'16-bit images: minmax, percentile:LO,HI or fixed:LO,HI (default {DEFAULT_IR_RANGE})')
    parser.add_argument('--resize', choices=('ir', 'vis'), default=None,
                        help='resample this modality when the sizes of a pair differ')
    parser.add_argument('--save', nargs='+', default=['fused'], metavar='KIND',
                        help=f"what to write: {', '.join(SAVE_KINDS)} (default fused)")
    parser.add_argument('--ext', default='png', help='image extension of fused images (folder mode)')
    parser.add_argument('--max-memory', type=float, default=None, metavar='GIB',
                        help='memory a network pass may use (default: 90%% of the free memory)')
    parser.add_argument('--engine', choices=('torch', 'onnx') + tuple(BASELINES), default='torch',
                        help='torch (checkpoint), onnx (--weights is a .onnx file from '
                             'scripts/export_onnx.py, run in onnxruntime on the CPU), or a '
                             'weight-free baseline: average, maximum')
    args = parser.parse_args(argv)
    if args.layout is None:
        if args.vis is None or args.ir is None:
            parser.error('give --vis and --ir (or --layout and --root)')
        for flag in ('root', 'split', 'border'):
            if getattr(args, flag) is not None:
                parser.error(f'--{flag} needs --layout')
    else:
        if args.vis is not None or args.ir is not None:
            parser.error('give either --layout and --root, or --vis and --ir')
        if args.root is None:
            parser.error('--layout needs --root')
    if args.border is not None and args.border < 0:
        parser.error(f'--border must be >= 0, got {args.border}')
    return args


# ---------------------------------------------------------------- inputs

@dataclass
class Item:
    """One pair to fuse, or the reason it cannot be."""

    stem: str
    pair: Optional[Pair] = None
    error: Optional[str] = None


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def open_video(path: Path, role: str) -> cv2.VideoCapture:
    if not path.is_file():
        raise DataError(f"{role}: {path} does not exist")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{role}: {path}: cannot open the video (unknown container or codec)")
    return cap


def video_items(vis_cap: cv2.VideoCapture, ir_cap: cv2.VideoCapture, args: argparse.Namespace,
                warnings: List[str]) -> Iterator[Item]:
    """Frame pairs of two videos; stops at the shorter stream (a warning says which)."""
    rule = parse_ir_range(args.ir_range)
    limits = None
    index = 0
    while True:
        ok_vis, vis = vis_cap.read()
        ok_ir, ir = ir_cap.read()
        if not (ok_vis and ok_ir):
            if ok_vis or ok_ir:
                short, other = ('infrared', 'visible') if ok_vis else ('visible', 'infrared')
                warnings.append(f"the {short} video ended after {index} frames; the rest of the "
                                f"{other} video was not fused")
            return
        stem = f"{index:06d}"
        try:
            pair = read_pair(to_rgb(vis), to_rgb(ir), rule, args.resize, limits, stem=stem,
                             size_hint=RESIZE_HINT)
            limits = limits or pair.ir_limits  # hold the first 16-bit frame's range
            yield Item(stem, pair)
        except PAIR_ERRORS as err:
            yield Item(stem, error=one_line(err))
        index += 1


def to_rgb(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 and frame.shape[2] == 3 else frame


def file_items(jobs: List[Dict[str, Path]], unmatched: List[Tuple[str, str]],
               args: argparse.Namespace) -> Iterator[Item]:
    rule = parse_ir_range(args.ir_range)
    for stem, message in unmatched:
        yield Item(stem, error=message)
    for job in jobs:
        try:
            yield Item(job['stem'], read_pair(job['vis'], job['ir'], rule, args.resize,
                                              stem=job['stem'], border=args.border or 0,
                                              size_hint=RESIZE_HINT))
        except PAIR_ERRORS as err:
            yield Item(job['stem'], error=one_line(err))


def prefetch(make: Callable[[], Iterator[Item]], depth: int) -> Iterator[Item]:
    """Run the generator ``make()`` in a background thread (decoding overlaps fusing)."""
    q: 'queue.Queue' = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in make():
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)
        q.put(end)

    thread = threading.Thread(target=work, name='decode', daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


# ---------------------------------------------------------------- outputs

class ImageSink:
    """Writes ``<folder>/<stem><ext>``, or one fixed file, atomically."""

    def __init__(self, folder: Optional[Path] = None, ext: str = '.png', single: Optional[Path] = None):
        self.folder, self.ext, self.single = folder, ext, single
        self.count = 0

    def write(self, stem: str, img: np.ndarray) -> None:
        write_image(self.single or self.folder / f"{stem}{self.ext}", img)
        self.count += 1

    def close(self) -> None:
        pass


class VideoSink:
    """Writes frames to a temporary video beside ``path``, renamed onto it when closed."""

    def __init__(self, path: Path, fps: float, size: Tuple[int, int]):
        self.path = path
        self.tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        codec = VIDEO_CODECS.get(path.suffix.lower())
        if codec is None:
            raise ConfigError(f"--out: {path}: video output must end in "
                              f"{', '.join(VIDEO_CODECS)} (or use --frames)")
        h, w = size
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), fps, (w, h))
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise ConfigError(f"--out: {path}: OpenCV cannot write {codec} video here "
                              f"(try .avi, or --frames)")
        self.size, self.count = size, 0

    def write(self, stem: str, img: np.ndarray) -> None:
        if img.shape[:2] != self.size:
            raise DataError(f"frame {stem} is {img.shape[0]}x{img.shape[1]}, the video is "
                            f"{self.size[0]}x{self.size[1]}")
        rgb = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> None:
        self.writer.release()
        if self.count:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def as_rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img


def grid_image(pair: Pair, fused: np.ndarray) -> np.ndarray:
    """vis | ir | fused side by side, (H, 3W, 3) uint8 RGB; ir as the network saw it."""
    from torchvision.utils import make_grid
    vis = unit_to_u8(pair.vis.permute(1, 2, 0).numpy())
    ir = unit_to_u8(pair.ir[0].numpy())
    panels = [torch.from_numpy(as_rgb(img)).permute(2, 0, 1)
              for img in (vis[..., 0] if vis.shape[2] == 1 else vis, ir, fused)]
    return make_grid(panels, nrow=3, padding=0).permute(1, 2, 0).contiguous().numpy()


def mask_image(pair: Pair) -> np.ndarray:
    from basicsr.utils.saliency import saliency_mask_u8
    vis = unit_to_u8(pair.vis.permute(1, 2, 0).numpy())
    return saliency_mask_u8(vis[..., 0] if vis.shape[2] == 1 else vis, unit_to_u8(pair.ir[0].numpy()))


# ---------------------------------------------------------------- planning

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
    return Plan('folder', lambda: file_items(jobs, unmatched, args), len(jobs) + len(unmatched),
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
        return Plan('folder', lambda: file_items(jobs, unmatched, args), len(jobs) + len(unmatched),
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
    return Plan('video', lambda: video_items(vis_cap, ir_cap, args, warnings), total, sinks,
                f"{out} ({fps:g} frames/s)")


# ---------------------------------------------------------------- running

def batches(items: Iterator[Item], size: int) -> Iterator[List[Item]]:
    """Consecutive items of equal shapes, at most ``size``; a failed item is a batch of its own."""
    group: List[Item] = []
    for item in items:
        if item.pair is None:
            if group:
                yield group
                group = []
            yield [item]
            continue
        shape = (tuple(item.pair.vis.shape), tuple(item.pair.ir.shape))
        if group and (len(group) == size or shape != (tuple(group[0].pair.vis.shape),
                                                      tuple(group[0].pair.ir.shape))):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def fuse_batch(net, group: List[Item], args: argparse.Namespace, overlap: Optional[int],
               sinks: Dict[str, object]) -> float:
    """Fuse and write one batch; returns its compute seconds."""
    budget = int(args.max_memory * 2 ** 30) if args.max_memory else None
    vis = torch.stack([it.pair.vis for it in group])
    ir = torch.stack([it.pair.ir for it in group])
    param = next(net.parameters(), None)  # none for the onnx engine (CPU)
    with Stopwatch(param.device if param is not None else torch.device('cpu')) as watch:
        fused = fuse(net, vis, ir, tile=args.tile, overlap=overlap, memory_budget=budget)
    for k, item in enumerate(group):
        fused_u8 = tensor2img(fused[k])
        if 'fused' in sinks:
            sinks['fused'].write(item.stem, fused_u8)
        if 'grid' in sinks:
            sinks['grid'].write(item.stem, grid_image(item.pair, fused_u8))
        if 'mask' in sinks:
            sinks['mask'].write(item.stem, mask_image(item.pair))
    return watch.seconds


def load_engine(args: argparse.Namespace):
    """The network to fuse with: a checkpoint in torch, or an exported model in onnxruntime
    (same call surface: ``net(vis_y, ir) -> fused_y``, ``parameters()``, ``describe()``)."""
    if args.engine in BASELINES:
        return BaselineModel(args.engine)
    if args.engine == 'onnx':
        from basicsr.deploy.onnx_runtime import OnnxModel
        return OnnxModel(args.weights)
    return load_model(args.weights, args.device, use_ema=not args.no_ema, where='--weights')


def run(args: argparse.Namespace) -> int:
    overlap = check_args(args)
    problem = parse_device(args.device)
    if problem:
        raise ConfigError(f"--device: {problem}")
    if args.engine == 'onnx' and args.device not in ('auto', 'cpu'):
        raise ConfigError(f"--device: {args.device}: the onnx engine runs on the CPU")
    if args.engine in BASELINES:
        if args.weights is not None:
            raise ConfigError(f"--weights: not used by --engine {args.engine} (a weight-free baseline)")
        if args.device not in ('auto', 'cpu'):
            raise ConfigError(f"--device: {args.device}: the baselines run on the CPU")
    elif args.weights is None:
        if args.engine == 'onnx':
            raise ConfigError("--weights: --engine onnx needs the .onnx file to run")
        if not REFERENCE_WEIGHTS.is_file():
            raise ConfigError(f"--weights: not given and the reference model "
                              f"{REFERENCE_WEIGHTS} is missing (pass a checkpoint)")
        args.weights = REFERENCE_WEIGHTS
    if args.engine == 'torch':
        find_checkpoint(args.weights, '--weights')
    warnings: List[str] = []
    plan = plan_run(args, warnings)  # every output location is checked before the model loads
    try:
        from basicsr.utils.process_memory import return_large_blocks_to_os
        return_large_blocks_to_os()  # freed full-size maps leave the process
        model = load_engine(args)
    except BaseException:
        for sink in plan.sinks.values():
            sink.close()
        raise
    print(f"loaded {model.describe()}" + (f", tiles {args.tile} overlap "
                                          f"{resolve_overlap(args.tile, overlap)}" if args.tile else ''))
    latencies: List[float] = []
    failed: List[str] = []
    done = 0
    unit = 'frame' if plan.mode == 'video' else 'img'
    interrupted = False
    start = time.perf_counter()
    bar = tqdm(total=plan.total, desc='fuse', unit=unit, file=sys.stderr,
               disable=not (plan.mode != 'single' and sys.stderr.isatty()))
    try:
        for group in batches(prefetch(plan.items, 2 * args.batch), args.batch):
            if group[0].pair is None:
                failed.append(group[0].stem)
                tqdm.write(f"failed: {group[0].stem}: {group[0].error}", file=sys.stderr)
            else:
                try:
                    seconds = fuse_batch(model.net, group, args, overlap, plan.sinks)
                    latencies += [seconds / len(group)] * len(group)
                    done += len(group)
                except PAIR_ERRORS as err:
                    if plan.mode == 'single':
                        raise DataError(f"{group[0].stem}: {one_line(err)}") from None
                    for item in group:
                        failed.append(item.stem)
                        tqdm.write(f"failed: {item.stem}: {one_line(err)}", file=sys.stderr)
            bar.update(len(group))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        for sink in plan.sinks.values():
            sink.close()
    elapsed = time.perf_counter() - start
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    if interrupted:
        print(f"interrupted: {done} {unit}(s) fused and kept in {plan.where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(latency_summary(latencies, model.device, 'frame' if plan.mode == 'video' else 'image'))
    if plan.mode != 'single' and elapsed > 0:
        print(f"{done} {unit}(s) in {elapsed:.1f} s ({done / elapsed:.2f} {unit}/s with reading and writing)")
    print(f"wrote {done} of {done + len(failed)} to {plan.where}")
    if failed:
        print(f"{len(failed)} failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    return run_main(lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
