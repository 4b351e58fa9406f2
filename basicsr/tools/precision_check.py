"""Agreement of bfloat16 inference with float32: fuse every pair of two folders both ways.

Usage (from the repository root)::

    python scripts/precision_check.py --vis VIS_DIR --ir IR_DIR [--weights CKPT] [--no-ema]
        [--device auto|cpu|cuda|cuda:N] [--ir-range ...] [--resize ir|vis]
        [--min-psnr 45] [--max-diff 3] [--csv FILE] [--allow-emulated-bf16]

Each pair (paired by file stem, read as ``scripts/fuse.py`` reads it) goes through
:func:`basicsr.inference.fuse` twice with the same weights: ``precision='fp32'`` and
``precision='bf16'`` (what ``fuse.py --precision bf16`` runs). Both results are 8-bit images
as written; the table gives per pair the PSNR of the bf16 image against the fp32 one
(peak 255, over all channels) and the largest absolute difference in 8-bit levels, then the
minimum PSNR and the maximum difference over the folder. ``--csv`` also writes the table.

bf16 is refused, like ``fuse.py --precision bf16``, on a device that does not compute it
natively. ``--allow-emulated-bf16`` runs it anyway where bfloat16 autocast works in emulation
(oneDNN on an AVX2 CPU): the agreement is a numerical property, the same on native hardware up
to the order of accumulation, but the timings are then meaningless.

Exit status: 0 every pair within both bounds (PSNR >= ``--min-psnr`` dB and difference <=
``--max-diff`` levels); 1 some pairs outside a bound or unreadable (each named); 2 bad
arguments or setup; 130 interrupted (the rows so far go to ``--csv``).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from basicsr.inference import Stopwatch, fuse, load_model, match_folders
from basicsr.inference.loader import REFERENCE_WEIGHTS, REPO_ROOT, find_checkpoint
from basicsr.inference.report import Row, markdown_table, write_csv
from basicsr.inference.video import PAIR_ERRORS, file_items
from basicsr.models.precision import bf16_autocast_available, precision_problem
from basicsr.utils.cli import command, exit_status
from basicsr.utils.dist import parse_device, resolve_device
from basicsr.utils.errors import ConfigError, Interrupted, one_line
from basicsr.utils.fs import check_outputs_apart, ensure_writable_file
from basicsr.utils.img_util import tensor2img
from basicsr.utils.ir_range import DEFAULT_IR_RANGE, parse_ir_range
from basicsr.utils.logger import console

MIN_PSNR = 45.0  # dB
MAX_DIFF = 3     # 8-bit levels


def agreement(image: np.ndarray, reference: np.ndarray) -> Tuple[float, int]:
    """PSNR in dB (peak 255, inf when equal) of the uint8 ``image`` against ``reference`` (same
    shape, (H,W) or (H,W,3)) and their largest absolute difference in 8-bit levels."""
    diff = image.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff * diff))
    psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
    return psnr, int(np.abs(diff).max())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--vis', required=True, type=Path, help='folder of visible images')
    p.add_argument('--ir', required=True, type=Path, help='folder of infrared images')
    p.add_argument('--weights', type=Path, default=None,
                   help=f'checkpoint file or checkpoints folder (default: the reference model '
                        f'{REFERENCE_WEIGHTS.relative_to(REPO_ROOT)})')
    p.add_argument('--no-ema', action='store_true', help="use 'params', not 'params_ema'")
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--ir-range', default=DEFAULT_IR_RANGE,
                   help=f'16-bit images: minmax, percentile:LO,HI or fixed:LO,HI (default {DEFAULT_IR_RANGE})')
    p.add_argument('--resize', choices=('ir', 'vis'), default=None,
                   help='resample this modality when the sizes of a pair differ')
    p.add_argument('--min-psnr', type=float, default=MIN_PSNR,
                   help=f'a pair fails below this PSNR in dB (default {MIN_PSNR:g})')
    p.add_argument('--max-diff', type=int, default=MAX_DIFF,
                   help=f'a pair fails above this many 8-bit levels of difference (default {MAX_DIFF})')
    p.add_argument('--csv', type=Path, default=None, help='also write the table to this CSV file')
    p.add_argument('--allow-emulated-bf16', action='store_true',
                   help='run bf16 where it is only emulated (agreement only: timings are meaningless)')
    args = p.parse_args(argv)
    if args.max_diff < 0:
        p.error(f'--max-diff must be >= 0, got {args.max_diff}')
    if not math.isfinite(args.min_psnr):
        p.error(f'--min-psnr must be a finite number of dB, got {args.min_psnr}')
    return args


def check_bf16(device: torch.device, allow_emulated: bool) -> bool:
    """Refuse bf16 where it cannot run as asked; returns True when it runs emulated."""
    problem = precision_problem('bf16', device, 'bf16')
    if problem is None:
        return False
    if not allow_emulated:
        raise ConfigError(f"{problem.split(': ', 1)[1]}, or pass --allow-emulated-bf16 to measure "
                          f"the agreement only")
    if not bf16_autocast_available(device):
        raise ConfigError(f"--allow-emulated-bf16: bfloat16 autocast does not run on {device} "
                          f"(torch {torch.__version__}), not even emulated")
    return True


def compare_pair(net: torch.nn.Module, vis: torch.Tensor, ir: torch.Tensor,
                 device: torch.device) -> Row:
    """fp32 and bf16 fusion of one pair ((1,C,H,W) in [0,1]): PSNR, max difference, times."""
    images, ms = {}, {}
    for precision in ('fp32', 'bf16'):
        with Stopwatch(device) as watch:
            fused = fuse(net, vis, ir, precision=precision)
        images[precision], ms[precision] = tensor2img(fused), 1000.0 * watch.seconds
    psnr, diff = agreement(images['bf16'], images['fp32'])
    return {'psnr_db': psnr, 'max_diff': diff, 'fp32_ms': ms['fp32'], 'bf16_ms': ms['bf16']}


def verdict(row: Row, min_psnr: float, max_diff: int) -> Optional[str]:
    """Why a row fails the bounds, or None."""
    why = []
    if row['psnr_db'] < min_psnr:
        why.append(f"PSNR {row['psnr_db']:.2f} dB < {min_psnr:g}")
    if row['max_diff'] > max_diff:
        why.append(f"difference {row['max_diff']} levels > {max_diff}")
    return '; '.join(why) or None


def summary(rows: List[Row]) -> str:
    """``minimum PSNR .. dB (stem), maximum difference .. levels (stem)``."""
    low = min(rows, key=lambda r: r['psnr_db'])
    high = max(rows, key=lambda r: r['max_diff'])
    return (f"minimum PSNR {low['psnr_db']:.2f} dB ({low['image']}), maximum difference "
            f"{high['max_diff']} levels ({high['image']}) over {len(rows)} pairs")


def run(args: argparse.Namespace) -> int:
    problem = parse_device(args.device)
    if problem:
        raise ConfigError(f"--device: {problem}")
    device = resolve_device(args.device)
    emulated = check_bf16(device, args.allow_emulated_bf16)
    rule = parse_ir_range(args.ir_range)
    weights = find_checkpoint(args.weights or REFERENCE_WEIGHTS, '--weights')
    if args.csv is not None:
        check_outputs_apart([('--csv', args.csv)], [('--vis', args.vis), ('--ir', args.ir),
                                                    ('--weights', weights)])
        ensure_writable_file(args.csv, '--csv')
    for flag, folder in (('--vis', args.vis), ('--ir', args.ir)):
        if not folder.is_dir():
            raise ConfigError(f"{flag}: {folder} is not a folder")
    jobs, unmatched = match_folders(args.vis, args.ir)
    model = load_model(weights, args.device, use_ema=not args.no_ema, where='--weights')
    console(f"loaded {model.describe()}")
    if emulated:
        console(f"warning: bf16 is emulated on {device} (--allow-emulated-bf16): the agreement "
                f"holds for native bf16 up to accumulation order; the timings are meaningless", err=True)
    rows: List[Row] = []
    failed: List[str] = []
    try:
        for item in file_items(jobs, unmatched, rule, args.resize):
            error = item.error
            if item.pair is not None:
                try:
                    row = {'image': item.stem, **compare_pair(model.net, item.pair.vis[None],
                                                              item.pair.ir[None], model.device)}
                except PAIR_ERRORS as err:
                    error = one_line(err)
            if error is not None:
                failed.append(item.stem)
                console(f"failed: {item.stem}: {error}", err=True)
                continue
            rows.append(row)
            why = verdict(row, args.min_psnr, args.max_diff)
            if why:
                failed.append(item.stem)
                console(f"failed: {item.stem}: {why}", err=True)
    except KeyboardInterrupt:
        if args.csv is not None:
            write_csv(args.csv, rows)
        raise Interrupted(f"{len(rows)} pair(s) compared" + (f"; their table is in {args.csv}"
                                                               if rows and args.csv else '')) from None
    if args.csv is not None:
        write_csv(args.csv, rows)
    shown = [{**row, 'max_diff': str(row['max_diff'])} for row in rows]  # levels: integers
    console(markdown_table(shown, f"bf16 vs fp32, 8-bit fused images ({len(rows)} pairs, "
                                  f"{model.device})", with_mean=False, digits=2))
    if rows:
        console(summary(rows) + f"; bounds: PSNR >= {args.min_psnr:g} dB, difference <= "
                f"{args.max_diff} levels")
    return exit_status(failed, 'pair(s)')


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
