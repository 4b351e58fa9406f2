"""Performance figures of DGFusion's network, VSM saliency and metrics, as Markdown tables.

Usage (from the repository root)::

    python scripts/benchmark.py [--only net,vsm,metrics] [--device auto|cpu|cuda|cuda:N]
        [--channels 16] [--sizes 256x320,640x512] [--repeat 3] [--warmup 1] [--threads N]
        [--no-train] [--compile] [--no-accuracy] [--json figures.json]

Sections:

* ``net``: parameter counts of our module and of the published layout (ours plus the
  parameters the published forward never reads, counted from their shapes), then for each
  ``--sizes`` HxW the lean inference forward (what ``DGFusion`` runs under ``no_grad`` /
  ``inference_mode``) against the plain eager float32 reference forward, each in its own
  process: latency (median of ``--repeat`` after ``--warmup``), peak memory (CUDA max allocated,
  or resident memory above the pre-run level on a CPU) and bytes per pixel, max abs difference
  to the float64 reference, multiply-adds per frame and the achieved rate as a fraction of one
  large 3x3 convolution measured in the same run; then one training step (batch 4 x 128x128)
  of the module against the plain evaluation, with ``--compile`` also the step through
  ``torch.compile`` (as ``train.compile: true`` runs it; compiled in the untimed warm-up, which
  takes minutes at C=16 on a CPU). Ratios are lean/plain of this run. See
  ``scripts/benchmark_network.py``.
* ``vsm``: the vectorised ``vsm_saliency`` against a direct port of the published script
  (contrast table by two nested Python loops over the 256 gray levels, then a per-pixel
  lookup and min-max scaling) on a synthetic 460x630 image; both outputs must be equal.
* ``onnx`` (only on request, minutes at C=16): the network exported to ONNX (fp32) and run in
  onnxruntime (CPU) against the torch module's lean path, each in its own process: latency,
  peak memory, bytes per pixel and max abs difference from the float64 reference at 256x320 and
  640x512, with the onnxruntime/torch ratios of the run.
* ``metrics``: ``compute_metrics`` with the cddfuse default metrics on a synthetic 576x768
  gray triple, one metric per call (each call includes the shared preparation), and all
  together.

Timings use ``time.perf_counter`` (CUDA synchronised) and are figures of this machine and its
load, not guarantees: run it on an otherwise idle machine. The default run (C=16, 256x320)
takes a few minutes on a 2-core CPU.
Exit status: 0; 1 when the two VSM outputs differ; 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from basicsr.inference.timing import median_ms
from basicsr.tools.benchmark_network import markdown as table
from basicsr.utils.cli import command, parse_size_list
from basicsr.utils.errors import ConfigError, DGFusionError
from basicsr.utils.logger import console

SECTIONS = ('net', 'vsm', 'metrics', 'onnx')
DEFAULT_SECTIONS = ('net', 'vsm', 'metrics')  # onnx takes minutes at C=16: on request
ONNX_SIZES = ((256, 320), (640, 512))
VSM_SIZE = (460, 630)
CPU = torch.device('cpu')  # the VSM and metric sections time NumPy/OpenCV code
METRIC_SIZE = (576, 768)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', default=','.join(DEFAULT_SECTIONS),
                        help=f"comma-separated sections out of {','.join(SECTIONS)}")
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (net section)')
    parser.add_argument('--channels', type=int, default=16, help='network width C')
    parser.add_argument('--sizes', default='256x320', help='HxW list for the net section')
    parser.add_argument('--repeat', type=int, default=3, help='timed runs per figure (median)')
    parser.add_argument('--no-train', action='store_true', help='skip the training-step table')
    parser.add_argument('--compile', action='store_true',
                        help='add a torch.compile training-step row (compiled in the warm-up)')
    parser.add_argument('--emulated-bf16', action='store_true',
                        help='measure the lean bf16 row even where bfloat16 is only emulated '
                             '(memory and accuracy are meaningful, latency is not)')
    parser.add_argument('--no-accuracy', action='store_true',
                        help='skip the float64 reference (max abs difference column)')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    parser.add_argument('--threads', type=int, default=None, help='torch/OpenCV CPU threads')
    return parser.parse_args(argv)


# ---------------------------------------------------------------- network

def bench_net(args: argparse.Namespace, device: torch.device) -> dict:
    """Parameter table, then the lean/plain inference and training tables (see
    ``scripts/benchmark_network.py``); returns the figures for the JSON file."""
    from basicsr.archs.dgfusion.module import DGFusion
    from basicsr.archs.dgfusion.published import dead_published_shapes
    from basicsr.tools.benchmark_network import bench_network

    c = args.channels
    ours = sum(p.numel() for p in DGFusion(c).parameters())
    dead = sum(math.prod(s) for s in dead_published_shapes(c).values())
    console(f"### Network parameters (C={c})\n")
    console(table(['layout', 'parameters', 'ratio to ours'],
                [['ours', f'{ours:,}', '1.000'],
                 ['published (incl. never-read)', f'{ours + dead:,}', f'{(ours + dead) / ours:.3f}'],
                 ['never read by the published forward', f'{dead:,}', f'{dead / ours:.3f}']]))
    blocks, report = bench_network(device, c, args.sizes, args.repeat, args.warmup, args.threads,
                                   accuracy=not args.no_accuracy, train=not args.no_train,
                                   compile=args.compile, emulated_bf16=args.emulated_bf16)
    for block in blocks:
        console('\n' + block)
    return report


# ---------------------------------------------------------------- VSM saliency

def synthetic_gray(size: Tuple[int, int], seed: int) -> np.ndarray:
    """(H,W) uint8 test image: smooth shapes plus noise, using most of the 256 levels."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = 90 + 60 * np.sin(xx / 37.0) * np.cos(yy / 23.0) + 0.1 * xx
    img[(yy - h / 3) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 6) ** 2] += 80
    img += rng.normal(0, 12, size)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def reference_table(gray_u8: np.ndarray) -> np.ndarray:
    """(256,) int64 contrast table ``T[j] = sum_i hist[i] * |j - i|`` by two Python loops."""
    hist = np.bincount(gray_u8.ravel(), minlength=256).tolist()
    contrast = [0] * 256
    for j in range(256):
        total = 0
        for i in range(256):
            total += hist[i] * abs(j - i)
        contrast[j] = total
    return np.asarray(contrast, dtype=np.int64)


def vsm_reference(gray_u8: np.ndarray) -> np.ndarray:
    """Direct port of the published VSM script: ``T[j] = sum_i hist[i] * |j - i|`` by two
    Python loops over the 256 levels, ``S = T[gray]``, then ``(S - min S) / (max S - min S)``.

    Args:
        gray_u8: (H, W) uint8.
    Returns:
        (H, W) float64 in [0, 1] (zeros when S is constant).
    """
    sal = reference_table(gray_u8)[gray_u8].astype(np.float64)
    lo, hi = sal.min(), sal.max()
    return (sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)


def bench_vsm(args: argparse.Namespace) -> bool:
    """Print the VSM table; True when both implementations give the same map."""
    from basicsr.data.saliency import saliency_table_int, vsm_saliency

    gray = synthetic_gray(VSM_SIZE, seed=0)
    ms_ref = median_ms(lambda: vsm_reference(gray), CPU, args.repeat, args.warmup)
    ms_ours = median_ms(lambda: vsm_saliency(gray), CPU, args.repeat, args.warmup)
    ms_ref_t = median_ms(lambda: reference_table(gray), CPU, args.repeat, args.warmup)
    ms_ours_t = median_ms(lambda: saliency_table_int(gray), CPU, args.repeat, args.warmup)
    ref, ours = vsm_reference(gray), vsm_saliency(gray)
    equal = ref.shape == ours.shape and bool(np.array_equal(ref, ours)) and \
        bool(np.array_equal(reference_table(gray), saliency_table_int(gray)))
    check = 'equal' if equal else \
        f'MISMATCH (max abs diff {float(np.max(np.abs(ref - ours))):.3g})'
    console(f"\n### VSM saliency, synthetic {VSM_SIZE[0]}x{VSM_SIZE[1]} uint8, median of "
            f"{args.repeat}\n")
    console(table(['implementation', 'ms', 'speed-up', 'output'],
                [['reference port (nested Python loops)', f'{ms_ref:.2f}', '1.0x', check],
                 ['vsm_saliency (cumulative sums)', f'{ms_ours:.2f}',
                  f'{ms_ref / ms_ours:.1f}x', check],
                 ['contrast table only: nested loops', f'{ms_ref_t:.3f}', '1.0x', check],
                 ['contrast table only: saliency_table_int', f'{ms_ours_t:.3f}',
                  f'{ms_ref_t / ms_ours_t:.1f}x', check]]))
    if not equal:
        console(f"!!! VSM MISMATCH: vsm_saliency differs from the reference port: {check}", err=True)
    return equal


# ---------------------------------------------------------------- metrics

def bench_metrics(args: argparse.Namespace) -> None:
    from basicsr.metrics import compute_metrics, default_metrics

    vis = synthetic_gray(METRIC_SIZE, seed=1)
    ir = synthetic_gray(METRIC_SIZE, seed=2)[::-1].copy()
    fused = ((vis.astype(np.uint16) + ir) // 2).astype(np.uint8)
    names = default_metrics('cddfuse')
    rows, total_single = [], 0.0
    for name in names:
        ms = median_ms(lambda: compute_metrics(fused, vis, ir, [name], 'cddfuse'),
                       CPU, args.repeat, args.warmup)
        total_single += ms
        rows.append([name, f'{ms:.1f}'])
    ms_all = median_ms(lambda: compute_metrics(fused, vis, ir, names, 'cddfuse'),
                       CPU, args.repeat, args.warmup)
    rows.append(['sum of the single calls', f'{total_single:.1f}'])
    rows.append([f'all {len(names)} in one call', f'{ms_all:.1f}'])
    console(f"\n### Metrics (cddfuse defaults), synthetic {METRIC_SIZE[0]}x{METRIC_SIZE[1]} gray, "
            f"median of {args.repeat}\n")
    console(table(['metric', 'ms'], rows))


# ---------------------------------------------------------------- onnxruntime

def bench_onnx(args: argparse.Namespace, device: torch.device) -> Optional[list]:
    """Exported model in onnxruntime (CPU) against the torch module's lean path on ``device``:
    latency, peak memory, bytes per pixel and max abs difference from the float64 reference
    at 256x320 and 640x512, each engine in its own process, same random weights and frames;
    ratios are onnxruntime / torch of this run."""
    import tempfile
    from basicsr.archs.dgfusion.module import DGFusion
    from basicsr.deploy.onnx_bench import measure_in_subprocess
    from basicsr.deploy.onnx_check import reference_output
    from basicsr.deploy.onnx_export import export_onnx
    from basicsr.deploy.onnx_runtime import import_onnxruntime

    console(f"\n### onnxruntime (CPU, fp32) against the torch lean path ({device}), "
            f"C={args.channels}, batch 1, median of {args.repeat} after {args.warmup} warm-up\n")
    try:
        import_onnxruntime()
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            net = DGFusion(args.channels)
            ckpt, model = Path(tmp) / 'net.pth', Path(tmp) / 'net.onnx'
            torch.save({'params': net.state_dict()}, ckpt)
            export_onnx(net, model)
            rows = []
            for h, w in ONNX_SIZES:
                reference = None
                if not args.no_accuracy:
                    reference = str(Path(tmp) / f'ref_{h}x{w}.pt')
                    torch.save(reference_output(net, (h, w)), reference)
                figures = {engine: measure_in_subprocess(engine, str(path), (h, w), args.repeat,
                                                         args.warmup, args.threads, str(device),
                                                         reference)
                           for engine, path in (('torch', ckpt), ('onnxruntime', model))}
                base_ms, base_mib, _ = figures['torch']
                for engine, (ms, mib, err) in figures.items():
                    rows.append([f'{h}x{w}', engine if engine == 'onnxruntime' else
                                 f'torch lean ({device})', f'{ms:.1f}', f'{ms / base_ms:.2f}',
                                 'n/a' if mib is None else f'{mib:.0f}',
                                 'n/a' if mib is None or not base_mib else f'{mib / base_mib:.2f}',
                                 'n/a' if mib is None else f'{mib * 2 ** 20 / (h * w):.0f}',
                                 'n/a' if err is None else f'{err:.2e}'])
    except DGFusionError as err:
        console(f"skipped: {err}")
        return None
    console(table(['HxW', 'engine', 'ms', 'latency ratio', 'peak MiB (over idle)',
                   'memory ratio', 'bytes/pixel', 'max abs vs float64'], rows))
    return rows


# ---------------------------------------------------------------- main

def run(args: argparse.Namespace) -> int:
    from basicsr.utils.dist import resolve_device
    from basicsr.utils.dist import parse_device

    only = [s.strip() for s in args.only.split(',') if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown or not only:
        raise ConfigError(f"--only: {','.join(unknown) or 'nothing'} is not a subset of "
                          f"{','.join(SECTIONS)}")
    if args.repeat < 1 or args.warmup < 0 or args.channels < 1:
        raise ConfigError("--repeat and --channels must be >= 1, --warmup >= 0")
    if args.compile and (args.no_train or 'net' not in only):
        raise ConfigError("--compile adds a row to the training table of the net section: "
                          "drop --no-train and keep net in --only")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads: {args.threads} must be >= 1")
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    args.sizes = parse_size_list(args.sizes, '--sizes')
    problem = parse_device(args.device)
    if problem:
        raise ConfigError(f"--device: {problem}")
    device = resolve_device(args.device)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == 'cuda' else ''
    console(f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPU(s), "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
            f"numpy {np.__version__}, device {device}{gpu}\n")
    if args.json is not None:
        from basicsr.utils.fs import ensure_writable_file
        ensure_writable_file(args.json, '--json file')
    ok, report = True, {}
    if 'net' in only:
        report['net'] = bench_net(args, device)
    if 'vsm' in only:
        ok = bench_vsm(args)
    if 'metrics' in only:
        bench_metrics(args)
    if 'onnx' in only:
        report['onnx'] = bench_onnx(args, device)
    if args.json is not None:
        import json
        args.json.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
        console(f"\nfigures written to {args.json}")
    return 0 if ok else 1


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
