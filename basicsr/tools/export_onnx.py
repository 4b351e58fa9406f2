"""Export a checkpoint of any registered network to ONNX, then check the file in onnxruntime.

Usage (from the repository root)::

    python scripts/export_onnx.py --weights CKPT --out model.onnx [--opset 18]
        [--dynamic | --size HxW] [--fp16] [--no-ema] [--check-sizes 33x47,48x64,40x35 | --no-check]

The graph takes the visible luminance ``vis_y`` and the infrared ``ir`` ((B,1,H,W) float32 in
[0,1]) and returns the fused luminance ``fused_y`` (B,1,H,W), not clamped; clamping and the
colour conversion stay outside (``scripts/fuse.py --engine onnx`` does both as the torch path
does). ``--dynamic`` (the default) leaves batch, height and width free; ``--size HxW`` fixes
them to 1 x HxW. ``--fp16`` stores and runs the encoders, gates and reconstruction in float16
and keeps the spectral stages in float32.

After writing, the file is run in onnxruntime (when installed) on random frames of the
``--check-sizes`` (a fixed-size export: its own size) and compared with the float64 reference
evaluation: fp32 exports must agree within 1e-4 (max abs), fp16 exports report their PSNR
against fp32. Exit status: 0 written and checked; 1 written but a check failed (each size
named); 2 bad arguments or setup (one ``error: ...`` line); 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from basicsr.utils.cli import command, parse_size_list
from basicsr.utils.errors import EXIT_ITEMS_FAILED, EXIT_OK, ConfigError
from basicsr.utils.logger import console

DEFAULT_CHECK_SIZES = '33x47,48x64,40x35'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', required=True, type=Path,
                        help='checkpoint file or checkpoints folder')
    parser.add_argument('--out', required=True, type=Path, help='output .onnx file')
    parser.add_argument('--opset', type=int, default=18, help='ONNX operator set (>= 18)')
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument('--dynamic', action='store_true',
                       help='any batch, height and width (the default)')
    shape.add_argument('--size', default=None, help='fixed HxW (batch 1)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 convolutions outside the spectral stages')
    parser.add_argument('--no-ema', action='store_true', help="use 'params', not 'params_ema'")
    parser.add_argument('--check-sizes', default=DEFAULT_CHECK_SIZES,
                        help='HxW list checked in onnxruntime after a dynamic export')
    parser.add_argument('--no-check', action='store_true', help='skip the onnxruntime check')
    return parser.parse_args(argv)


def load_net(args: argparse.Namespace):
    from basicsr.inference.loader import load_model
    return load_model(args.weights, device='cpu', use_ema=not args.no_ema, where='--weights')


def check(args: argparse.Namespace, net, sizes: List[Tuple[int, int]]) -> List[str]:
    """Run the written file in onnxruntime; returns the failed sizes (empty when all pass)."""
    from basicsr.deploy.onnx_check import PARITY_TOL, max_abs_to_reference, psnr_to_fp32
    from basicsr.deploy.onnx_runtime import OnnxNetwork

    try:
        runtime = OnnxNetwork(args.out)
    except ConfigError as err:  # onnxruntime not installed: the export itself is done
        console(f"check skipped: {err}")
        return []
    failed = []
    for h, w in sizes:
        start = time.perf_counter()
        if args.fp16:
            psnr = psnr_to_fp32(runtime, net, (h, w))
            console(f"check {h}x{w}: fp16 PSNR against fp32 {psnr:.2f} dB "
                    f"({time.perf_counter() - start:.1f} s)")
            continue
        diff = max_abs_to_reference(runtime, net, (h, w))
        ok = diff <= PARITY_TOL
        console(f"check {h}x{w}: max abs difference from the float64 reference {diff:.3g} "
                f"({'ok' if ok else f'FAILED, above {PARITY_TOL:g}'}; "
                f"{time.perf_counter() - start:.1f} s)")
        if not ok:
            failed.append(f'{h}x{w}')
    return failed


def run(args: argparse.Namespace) -> int:
    from basicsr.deploy.onnx_export import MIN_OPSET, export_onnx, require_exporter
    from basicsr.utils.checkpoint import describe_config
    from basicsr.utils.fs import check_outputs_apart, ensure_writable_file
    from basicsr.utils.checkpoint_folder import resolve_checkpoint_path

    size = parse_size_list(args.size, '--size')[0] if args.size is not None else None
    if args.size is not None and ',' in args.size:
        raise ConfigError(f"--size: '{args.size}' must be one HxW")
    check_sizes = [size] if size is not None else parse_size_list(args.check_sizes,
                                                                  '--check-sizes')
    if args.opset < MIN_OPSET:
        raise ConfigError(f"--opset: {args.opset} is below {MIN_OPSET}, the lowest operator set "
                          f"the exporter writes")
    if args.out.suffix.lower() != '.onnx':
        raise ConfigError(f"--out: {args.out} must end in .onnx")
    check_outputs_apart([('--out', args.out)], [('--weights', args.weights if args.weights.is_file()
                                                 else resolve_checkpoint_path(args.weights))])
    ensure_writable_file(args.out, '--out file')
    require_exporter()
    model = load_net(args)
    net = model.net
    start = time.perf_counter()
    export_onnx(net, args.out, opset=args.opset, size=size, fp16=args.fp16,
                network_g=model.network_g)
    console(f"wrote {args.out}: {describe_config(model.network_g)} from {model.checkpoint}, "
            f"opset {args.opset}, "
            f"{'any size' if size is None else f'{size[0]}x{size[1]}'}, "
            f"{'fp16 convolutions' if args.fp16 else 'fp32'} "
            f"({time.perf_counter() - start:.1f} s)")
    failed = [] if args.no_check else check(args, net, check_sizes)
    if failed:
        console(f"error: {args.out} differs from the reference at {', '.join(failed)}", err=True)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
