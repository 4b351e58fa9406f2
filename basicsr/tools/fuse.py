"""Fuse your own visible/infrared data with a DGFusion checkpoint: one pair, folders or videos.

Usage (from the repository root)::

    python scripts/fuse.py --vis vis.png --ir ir.tif --out fused.png
    python scripts/fuse.py --weights CKPT --vis vis.png --ir ir.tif --out fused.png
    python scripts/fuse.py --weights CKPT --vis VIS_DIR --ir IR_DIR --out OUT_DIR
    python scripts/fuse.py --weights CKPT --vis vis.mp4 --ir ir.mp4 --out fused.avi [--frames]
    python scripts/fuse.py --weights CKPT --layout msrs --root DIR --split test --out OUT_DIR
        [--device auto|cpu|cuda|cuda:N] [--batch N] [--no-ema] [--tile N [--tile-overlap M]]
        [--ir-range minmax|percentile:LO,HI|fixed:LO,HI] [--resize ir|vis]
        [--save fused grid mask] [--ext png] [--max-memory GIB] [--precision fp32|bf16|fp16]

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

``--precision`` (torch engine): ``fp32`` (default, float32 throughout), ``bf16`` (the network
runs under bfloat16 autocast: convolutions in bfloat16, DGFusion's spectral steps in float32;
the output is cast to float32 before the clamp) on a device that computes bfloat16 natively
(a GPU with bf16, a CPU with AVX-512 BF16, AMX or Arm BF16; elsewhere it is emulated, slower
than fp32, and refused), ``fp16`` on CUDA only. The rules are those of ``train.precision``
(``basicsr/models/precision.py``). An ``.onnx`` file has its own precision, so ``--engine onnx``
takes fp32 only.

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
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from basicsr.data.layouts import LAYOUTS
from basicsr.inference import DEFAULT_OVERLAP, Pair, Stopwatch, fuse, latency_summary, load_model
from basicsr.inference.baselines import BASELINES, BaselineModel
from basicsr.inference.fusion import resolve_overlap
from basicsr.inference.loader import REFERENCE_WEIGHTS, REPO_ROOT, find_checkpoint
from basicsr.inference.video import PAIR_ERRORS, Item, batches, prefetch
from basicsr.models.precision import PRECISIONS, check_precision
from basicsr.tools.fuse_plan import SAVE_KINDS, check_args, plan_run
from basicsr.utils.cli import command, exit_status
from basicsr.utils.errors import (EXIT_INTERRUPTED, ConfigError,
                                  DataError, one_line)
from basicsr.utils.img_util import tensor2img
from basicsr.utils.ir_range import DEFAULT_IR_RANGE, unit_to_u8
from basicsr.utils.dist import parse_device, resolve_device
from basicsr.utils.logger import console


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
                        help=f'pixels shared by neighbouring tiles (default {DEFAULT_OVERLAP}, '
                             'a quarter of smaller tiles)')
    parser.add_argument('--ir-range', default=DEFAULT_IR_RANGE,
                        help=f'16-bit images: minmax, percentile:LO,HI or fixed:LO,HI (default {DEFAULT_IR_RANGE})')
    parser.add_argument('--resize', choices=('ir', 'vis'), default=None,
                        help='resample this modality when the sizes of a pair differ')
    parser.add_argument('--save', nargs='+', default=['fused'], metavar='KIND',
                        help=f"what to write: {', '.join(SAVE_KINDS)} (default fused)")
    parser.add_argument('--ext', default='png', help='image extension of fused images (folder mode)')
    parser.add_argument('--max-memory', type=float, default=None, metavar='GIB',
                        help='memory a network pass may use (default: 90%% of the free memory)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='torch engine: fp32 (default), bf16 (needs native bfloat16) or '
                             'fp16 (CUDA only), as train.precision')
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


# ---------------------------------------------------------------- outputs

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
    from basicsr.data.saliency import saliency_mask_u8
    vis = unit_to_u8(pair.vis.permute(1, 2, 0).numpy())
    return saliency_mask_u8(vis[..., 0] if vis.shape[2] == 1 else vis, unit_to_u8(pair.ir[0].numpy()))


# ---------------------------------------------------------------- running

def fuse_batch(net, group: List[Item], args: argparse.Namespace, overlap: Optional[int],
               sinks: Dict[str, object]) -> float:
    """Fuse and write one batch; returns its compute seconds."""
    budget = int(args.max_memory * 2 ** 30) if args.max_memory else None
    vis = torch.stack([it.pair.vis for it in group])
    ir = torch.stack([it.pair.ir for it in group])
    param = next(net.parameters(), None)  # none for the onnx engine (CPU)
    with Stopwatch(param.device if param is not None else torch.device('cpu')) as watch:
        fused = fuse(net, vis, ir, tile=args.tile, overlap=overlap, memory_budget=budget,
                     precision=args.precision)
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
    if args.engine != 'torch' and args.precision != 'fp32':
        why = 'the .onnx file has its own precision' if args.engine == 'onnx' else 'a weight-free baseline'
        raise ConfigError(f"--precision: {args.precision} is for --engine torch; --engine "
                          f"{args.engine} runs as it is ({why}): drop --precision")
    if args.engine == 'torch':
        check_precision(args.precision, resolve_device(args.device), '--precision')
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
    extras = ([f"precision {args.precision}"] if args.precision != 'fp32' else []) + (
        [f"tiles {args.tile} overlap {resolve_overlap(args.tile, overlap)}"] if args.tile else [])
    console(', '.join([f"loaded {model.describe()}", *extras]))
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
        console(f"warning: {line}", err=True)
    if interrupted:
        console(f"interrupted: {done} {unit}(s) fused and kept in {plan.where}", err=True)
        return EXIT_INTERRUPTED
    console(latency_summary(latencies, model.device, 'frame' if plan.mode == 'video' else 'image'))
    if plan.mode != 'single' and elapsed > 0:
        console(f"{done} {unit}(s) in {elapsed:.1f} s ({done / elapsed:.2f} {unit}/s with reading and writing)")
    console(f"wrote {done} of {done + len(failed)} to {plan.where}")
    return exit_status(failed)


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
