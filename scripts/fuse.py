"""Fuse your own visible/infrared images with a DGFusion checkpoint (ours or published).

Usage (from the repository root)::

    python scripts/fuse.py --weights CKPT --vis vis.png --ir ir.png --out fused.png
    python scripts/fuse.py --weights experiments/x/checkpoints --vis VIS_DIR --ir IR_DIR --out OUT_DIR
        [--device auto|cpu|cuda|cuda:N] [--no-ema] [--tile N [--tile-overlap M]] [--ext png]

``--weights`` is a checkpoint file (our training checkpoints or a published state dict; the
layout and the width are detected) or a checkpoints folder (its ``latest`` file, else the
newest ``*.pth``). ``--no-ema`` uses ``params`` instead of ``params_ema``.

Inputs are read exactly as the test dataset reads them: visible RGB (alpha dropped) or gray,
infrared with 1 or 3 channels (3 equal channels -> one of them, else BT.601 luma); 8-bit
values / 255, 16-bit min-max scaled per image. Folders are paired by file stem across
extensions. The output is what ``basicsr/test.py`` writes: the visible luminance Y and the
infrared go through the network, the fused Y is clamped to [0, 1] and recombined with the
visible Cb/Cr (published inverse conversion); a gray visible image gives a gray result.
Folder mode writes ``OUT_DIR/<stem>.<ext>``.

Tiling (``--tile N``, off by default) runs the network on overlapping N x N tiles and blends
them with linear ramps over the overlap, so that large frames fit in small memory. The
network uses global 2-D FFTs, so a tile sees only its own content: tiled results differ
slightly from whole-image ones (more with small tiles); use it only when the frame does not
fit.

Exit status: 0 all fused; 1 some pairs of a folder failed (each is reported by name and the
others are still written); 2 bad arguments or setup (one ``error: ...`` line).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional, Sequence, Tuple  # noqa: E402

import cv2  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from tqdm import tqdm  # noqa: E402

from basicsr.utils.errors import CheckpointError, ConfigError, DataError, DGFusionError  # noqa: E402
from basicsr.utils.img_util import (IMAGE_EXTENSIONS, img2tensor, ir_to_gray,  # noqa: E402
                                    pair_by_stem, read_image, tensor2img, to_float01, write_image)

# what a single failing pair may raise without stopping a folder run
PAIR_ERRORS = (DGFusionError, RuntimeError, ValueError, OSError, cv2.error)
DEFAULT_OVERLAP = 32


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', required=True, type=Path,
                        help='checkpoint file or checkpoints folder')
    parser.add_argument('--vis', required=True, type=Path, help='visible image or folder')
    parser.add_argument('--ir', required=True, type=Path, help='infrared image or folder')
    parser.add_argument('--out', required=True, type=Path, help='output image or folder')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--no-ema', action='store_true', help="use 'params', not 'params_ema'")
    parser.add_argument('--tile', type=int, default=0,
                        help='tile size in pixels (0: whole image, the default)')
    parser.add_argument('--tile-overlap', type=int, default=None,
                        help=f'overlap of neighbouring tiles (default {DEFAULT_OVERLAP})')
    parser.add_argument('--ext', default='png', help='output extension in folder mode')
    parser.add_argument('--engine', choices=('torch', 'onnx'), default='torch',
                        help='torch (checkpoint) or onnx (--weights is an exported .onnx file, '
                             'run in onnxruntime on the CPU)')
    return parser.parse_args(argv)


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# ---------------------------------------------------------------- reading and fusing

def load_pair(vis_path: Path, ir_path: Path) -> Tuple[torch.Tensor, torch.Tensor]:
    """Read one pair as the test dataset does.

    Returns:
        ``vis`` (1,3,H,W) RGB or (1,1,H,W) gray and ``ir`` (1,1,H,W), float32 in [0, 1].

    Raises:
        DataError: unreadable file or different sizes.
    """
    vis_raw, ir_raw = read_image(vis_path), ir_to_gray(read_image(ir_path))
    if vis_raw.shape[:2] != ir_raw.shape[:2]:
        raise DataError(f"{vis_path} is {vis_raw.shape[0]}x{vis_raw.shape[1]} but "
                        f"{ir_path} is {ir_raw.shape[0]}x{ir_raw.shape[1]}")
    vis = img2tensor(to_float01(vis_raw))[None]
    ir = img2tensor(to_float01(ir_raw))[None]
    return vis, ir


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles of size ``tile`` covering ``0..length`` with >= ``overlap`` shared."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(size: int, overlap: int, ramp_start: bool, ramp_end: bool,
          device: torch.device) -> torch.Tensor:
    """(size,) float32 weights: 1 inside, rising over ``overlap`` pixels at shared borders."""
    w = torch.ones(size, device=device)
    if overlap > 0:
        edge = torch.arange(1, size + 1, device=device, dtype=torch.float32) / (overlap + 1)
        if ramp_start:
            w = torch.minimum(w, edge)
        if ramp_end:
            w = torch.minimum(w, edge.flip(0))
    return w


@torch.inference_mode()
def fuse_tiled(net: nn.Module, vis_y: torch.Tensor, ir: torch.Tensor, tile: int,
               overlap: int) -> torch.Tensor:
    """Network output on overlapping tiles, blended with linear ramps.

    Args:
        net: DGFusion, ``net(vis_y, ir) -> fused_y``.
        vis_y, ir: (B,1,H,W) float in [0, 1], same device as ``net``.
        tile: tile side in pixels (> ``overlap``).
        overlap: pixels shared by neighbouring tiles (>= 0).
    Returns:
        (B,1,H,W) fused luminance, not clamped (like ``net``'s output).
    """
    _, _, h, w = vis_y.shape
    acc = torch.zeros_like(vis_y, dtype=torch.float32)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=vis_y.device)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    for y0 in ys:
        th = min(tile, h)
        wy = _ramp(th, overlap, y0 > 0, y0 + th < h, vis_y.device)
        for x0 in xs:
            tw = min(tile, w)
            wx = _ramp(tw, overlap, x0 > 0, x0 + tw < w, vis_y.device)
            win = (wy[:, None] * wx[None, :])[None, None]
            part = net(vis_y[..., y0:y0 + th, x0:x0 + tw], ir[..., y0:y0 + th, x0:x0 + tw])
            acc[..., y0:y0 + th, x0:x0 + tw] += part.float() * win
            weight[..., y0:y0 + th, x0:x0 + tw] += win
    return (acc / weight).to(vis_y.dtype)


def fuse_pair(model, vis: torch.Tensor, ir: torch.Tensor, tile: int = 0,
              overlap: int = DEFAULT_OVERLAP) -> torch.Tensor:
    """``model.fuse`` (whole image) or the same colour handling around :func:`fuse_tiled`.

    Args:
        model: ``FusionModel`` built with ``is_train=False``.
        vis: (1,3,H,W) RGB or (1,1,H,W) gray; ``ir``: (1,1,H,W); float in [0, 1].
    Returns:
        (1,3,H,W) or (1,1,H,W) float32 in [0, 1] on ``model.device``.
    """
    from basicsr.models.fusion_model import merge_luma, split_luma
    if tile <= 0 or (vis.shape[-2] <= tile and vis.shape[-1] <= tile):
        return model.fuse(vis, ir)
    vis_y, cbcr = split_luma(vis.to(model.device))
    fused_y = fuse_tiled(model.net_g, vis_y, ir.to(model.device), tile, overlap)
    return merge_luma(fused_y.float(), cbcr)


# ---------------------------------------------------------------- command line

def check_ext(ext: str) -> str:
    ext = '.' + ext.lstrip('.').lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ConfigError(f"--ext: '{ext[1:]}' is not one of "
                          f"{', '.join(e[1:] for e in IMAGE_EXTENSIONS)}")
    return ext


def plan_jobs(args: argparse.Namespace) -> Tuple[List[Dict[str, Path]], bool]:
    """``([{'stem', 'vis', 'ir', 'out'}...], folder_mode)`` from the path arguments."""
    ext = check_ext(args.ext)
    vis, ir, out = args.vis, args.ir, args.out
    if vis.is_dir() and ir.is_dir():
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out: {out} is a file; folder inputs need an output folder")
        for role, folder in (('--vis', vis), ('--ir', ir)):
            if out.resolve() == folder.resolve():
                raise ConfigError(f"--out: {out} is the {role} folder; choose another folder")
        jobs = pair_by_stem([('vis', vis), ('ir', ir)])
        for job in jobs:
            job['out'] = out / f"{job['stem']}{ext}"
        return jobs, True
    for role, path in (('--vis', vis), ('--ir', ir)):
        if not path.exists():
            raise DataError(f"{role}: {path} does not exist")
    if vis.is_dir() or ir.is_dir():
        raise ConfigError(f"--vis {vis} and --ir {ir}: give two files or two folders")
    if out.is_dir():
        out = out / f"{vis.stem}{ext}"
    elif out.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ConfigError(f"--out: {out} needs an image extension "
                          f"({', '.join(IMAGE_EXTENSIONS)}) or must be an existing folder")
    if out.resolve() in (vis.resolve(), ir.resolve()):
        raise ConfigError(f"--out: {out} would overwrite an input image")
    return [{'stem': vis.stem, 'vis': vis, 'ir': ir, 'out': out}], False


def load_model(args: argparse.Namespace):
    """Device, checkpoint path and an inference ``FusionModel`` from the arguments."""
    if args.engine == 'onnx':  # same surface (device, net_g, fuse), CPU only
        from basicsr.deploy.onnx_runtime import OnnxFusionModel
        if args.device not in ('auto', 'cpu'):
            raise ConfigError(f"--device: {args.device}: the onnx engine runs on the CPU")
        return OnnxFusionModel(args.weights), args.weights
    from basicsr.models.fusion_model import FusionModel
    from basicsr.utils.checkpoint import load_network
    from basicsr.utils.dist import resolve_device
    from basicsr.utils.options import parse_device, resolve_checkpoint_path

    problem = parse_device(args.device)
    if problem:
        raise ConfigError(f"--device: {problem}")
    device = resolve_device(args.device)
    ckpt = resolve_checkpoint_path(args.weights)
    if ckpt is None:
        what = 'folder holds no latest pointer or *.pth file' if args.weights.is_dir() else \
            'no such checkpoint file or folder'
        raise CheckpointError(f"--weights: {args.weights}: {what}")
    net = load_network(ckpt, device=device, use_ema=not args.no_ema)
    return FusionModel({}, device, net=net, is_train=False), ckpt


def check_tiling(args: argparse.Namespace) -> int:
    overlap = DEFAULT_OVERLAP if args.tile_overlap is None else args.tile_overlap
    if args.tile < 0:
        raise ConfigError(f"--tile: {args.tile} must be >= 0 (0 disables tiling)")
    if args.tile and not 0 <= overlap < args.tile:
        raise ConfigError(f"--tile-overlap: {overlap} must be >= 0 and below --tile {args.tile}")
    if args.tile_overlap is not None and not args.tile:
        raise ConfigError("--tile-overlap needs --tile")
    return overlap


def print_summary(latencies: List[float], device: torch.device, n_failed: int) -> None:
    if latencies:
        ms = [1000.0 * t for t in latencies]
        line = (f"fused {len(ms)} image(s) on {device}: latency per image median "
                f"{statistics.median(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms, "
                f"min {min(ms):.1f} ms, max {max(ms):.1f} ms")
        if len(ms) > 1:
            line += f" (first {ms[0]:.1f} ms, includes warm-up)"
        print(line)
    if n_failed:
        print(f"{n_failed} pair(s) failed", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    overlap = check_tiling(args)
    jobs, folder_mode = plan_jobs(args)
    model, ckpt = load_model(args)
    print(model.summary() if args.engine == 'onnx' else
          f"loaded {ckpt}: DGFusion channels {model.net_g.channels}, "
          f"{sum(p.numel() for p in model.net_g.parameters()):,} parameters, on {model.device}"
          + (f", tiles {args.tile} overlap {overlap}" if args.tile else ''))
    sync = model.device.type == 'cuda'
    latencies: List[float] = []
    failed: List[str] = []
    # the bar shows on a terminal only, keeping logs and error output clean
    bar = tqdm(jobs, desc='fuse', unit='img', file=sys.stderr,
               disable=not (folder_mode and sys.stderr.isatty()))
    for job in bar:
        try:
            vis, ir = load_pair(job['vis'], job['ir'])
            if sync:
                torch.cuda.synchronize(model.device)
            start = time.perf_counter()
            fused = fuse_pair(model, vis, ir, args.tile, overlap)
            if sync:
                torch.cuda.synchronize(model.device)
            latencies.append(time.perf_counter() - start)
            write_image(job['out'], tensor2img(fused))
        except PAIR_ERRORS as err:
            if not folder_mode:
                raise DataError(f"{job['stem']}: {first_line(err)}") from None
            failed.append(job['stem'])
            tqdm.write(f"failed: {job['stem']}: {first_line(err)}", file=sys.stderr)
    bar.close()
    print_summary(latencies, model.device, len(failed))
    if folder_mode:
        print(f"wrote {len(jobs) - len(failed)} of {len(jobs)} fused image(s) to {args.out}")
    else:
        print(f"wrote {jobs[0]['out']}")
    if failed:
        print(f"failed pairs: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except DGFusionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as err:  # e.g. an unwritable output folder, out of memory
        print(f"error: {first_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
