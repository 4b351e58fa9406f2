"""Figures of DGFusion on one CUDA GPU, as one Markdown table and a JSON file.

Run through ``scripts/gpu_check.sh`` (which also runs the CUDA-marked tests and a 2-iteration
NCCL training run under ``torchrun``); on its own::

    python scripts/gpu_check.py [--device cuda] [--channels 16] [--json gpu_check.json] [--quick]

Rows:

* accuracy: the lean forward in float32 against the float64 reference evaluation on the GPU
  (max abs difference, sizes odd/even/mixed up to 256x320), and with bfloat16 autocast
  (convolutions in bfloat16, spectra in float32) as PSNR against float32;
* speed: latency, frames per second and peak memory (CUDA max allocated above the start) of
  the lean forward at 640x512 and 1920x1080, batch 1 and 8, float32 and bfloat16 autocast
  (``--precision bf16`` of ``fuse.py``; skipped where the GPU has no native bfloat16), and of
  the plain float32 evaluation at 640x512 batch 1 for the ratio;
* bf16 agreement: at each speed size, PSNR and max difference of the 8-bit image fused by
  :func:`basicsr.inference.fuse` with ``precision='bf16'`` against ``'fp32'``;
* training: AMP (float16 autocast with a gradient scaler, spectra in float32) steps per second
  at batch 16 x 128x128.

``--quick`` runs the same code on tiny sizes (a smoke test that works on a CPU too, bfloat16
emulated where the CPU lacks it).
Exit status: 0; 1 when an accuracy check fails its bound; 2 on bad arguments or no device.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from basicsr.archs.dgfusion.module import DGFusion
from basicsr.archs.dgfusion.reference import reference_forward
from basicsr.inference import fuse
from basicsr.models.precision import autocast, precision_problem
from basicsr.inference.timing import median_seconds
from basicsr.utils.cli import command
from basicsr.utils.errors import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_SETUP
from basicsr.tools.benchmark_network import PeakMemory
from basicsr.tools.precision_check import agreement
from basicsr.utils.img_util import tensor2img
from basicsr.utils.logger import console

FP32_BOUND = 5e-4  # max abs vs float64 (float32 rounding alone gives ~1.2e-4 at 256x320)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cuda', help='cuda, cuda:N (cpu only with --quick)')
    p.add_argument('--channels', type=int, default=16)
    p.add_argument('--json', type=Path, default=Path('gpu_check.json'))
    p.add_argument('--quick', action='store_true', help='tiny sizes: a smoke test')
    return p.parse_args(argv)


def peak_bytes(fn: Callable[[], Any], device: torch.device) -> Optional[int]:
    """Peak memory of ``fn()`` above its start (see ``benchmark_network.PeakMemory``)."""
    peak = PeakMemory(device)
    peak.start()
    fn()
    return peak.stop()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of ``a`` against ``b``, images in [0, 1] (clamped as the model does)."""
    mse = (a.clamp(0, 1).double() - b.clamp(0, 1).double()).square().mean().item()
    return float('inf') if mse == 0 else 10 * math.log10(1.0 / mse)


def inputs(batch: int, size: Tuple[int, int], device: torch.device, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, *size, generator=g).to(device),
            torch.rand(batch, 1, *size, generator=g).to(device))


def check_accuracy(net: DGFusion, device: torch.device, sizes) -> Tuple[List[List[str]], bool]:
    rows, ok = [], True
    net64 = DGFusion(net.channels).to(device).double().train(False)
    net64.load_state_dict(net.state_dict())
    for size in sizes:
        vis_y, ir = inputs(1, size, device)
        with torch.inference_mode():
            ref = reference_forward(net64, vis_y.double(), ir.double())
            out = net(vis_y, ir)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out_bf16 = net(vis_y, ir)
        err = (out.double() - ref).abs().max().item()
        ok &= err <= FP32_BOUND
        rows.append([f'accuracy {size[0]}x{size[1]}', f'fp32 max abs vs float64 {err:.2e}',
                     f'bf16 convs: PSNR vs fp32 {psnr(out_bf16.float(), out):.1f} dB',
                     'ok' if err <= FP32_BOUND else f'FAIL (> {FP32_BOUND})'])
    return rows, ok


def check_bf16_agreement(net: DGFusion, device: torch.device, size) -> Tuple[List[str], Dict]:
    """8-bit agreement of ``fuse(..., precision='bf16')`` with fp32 on a random (H, W) pair."""
    vis_y, ir = inputs(1, size, device)
    images = [tensor2img(fuse(net, vis_y, ir, precision=mode, check_memory=False))
              for mode in ('fp32', 'bf16')]
    psnr8, diff = agreement(images[1], images[0])
    return ([f'fuse {size[0]}x{size[1]} bf16 vs fp32 (8-bit)', f'PSNR {psnr8:.1f} dB',
             f'max diff {diff} levels', ''], {'psnr_db': psnr8, 'max_diff': diff})


def check_speed(net: DGFusion, device: torch.device, sizes, batches,
                emulated_bf16: bool = False) -> Tuple[List[List[str]], Dict]:
    """Speed rows; bf16 ones only where the device computes it natively, or with
    ``emulated_bf16`` (the ``--quick`` smoke test)."""
    rows, figures = [], {}
    problem = None if emulated_bf16 else precision_problem('bf16', device, 'bf16')
    modes = ('fp32',) if problem else ('fp32', 'bf16')
    if problem:
        rows.append(['bf16 rows skipped', problem.split(': ', 1)[1], '', ''])
    for size in sizes:
        if not problem:
            row, figures[f'{size[0]}x{size[1]}_bf16_vs_fp32'] = check_bf16_agreement(net, device, size)
            rows.append(row)
        for batch in batches:
            vis_y, ir = inputs(batch, size, device)
            for mode in modes:
                def run() -> None:
                    with torch.inference_mode(), autocast(mode, device):
                        net(vis_y, ir)
                try:
                    sec, peak = median_seconds(run, device, 5, 2), peak_bytes(run, device)
                except torch.OutOfMemoryError:
                    rows.append([f'{size[0]}x{size[1]} b{batch} {mode}', 'out of memory', '', ''])
                    continue
                key = f'{size[0]}x{size[1]}_b{batch}_{mode}'
                figures[key] = {'ms': 1000 * sec, 'fps': batch / sec, 'peak_bytes': peak}
                per_px = None if peak is None else peak / (batch * size[0] * size[1])
                mem = 'n/a' if peak is None else f'{peak / 2 ** 20:.0f} MiB ({per_px:.0f} B/px)'
                rows.append([f'lean {size[0]}x{size[1]} batch {batch} {mode}', f'{1000 * sec:.1f} ms',
                             f'{batch / sec:.1f} fps', mem])
    return rows, figures


def check_plain(net: DGFusion, device: torch.device, size) -> Tuple[List[List[str]], Dict]:
    vis_y, ir = inputs(1, size, device)

    def run() -> None:
        with torch.inference_mode():
            reference_forward(net, vis_y, ir)
    sec, peak = median_seconds(run, device, 5, 2), peak_bytes(run, device)
    mem = 'n/a' if peak is None else f'{peak / 2 ** 20:.0f} MiB'
    return ([[f'plain {size[0]}x{size[1]} batch 1 fp32', f'{1000 * sec:.1f} ms', f'{1 / sec:.1f} fps', mem]],
            {'ms': 1000 * sec, 'peak_bytes': peak})


def check_training(channels: int, device: torch.device, shape, steps: int) -> Tuple[List[str], float]:
    torch.manual_seed(0)
    net = DGFusion(channels).to(device).train(True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    amp = device.type == 'cuda'
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    vis_y, ir = inputs(shape[0], shape[1:], device)
    target = torch.maximum(vis_y, ir)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            fused = net(vis_y, ir)
        scaler.scale((fused.float() - target).abs().mean()).backward()
        scaler.step(opt)
        scaler.update()
    sec = median_seconds(step, device, steps, 2)
    return [f'AMP training batch {shape[0]} x {shape[1]}x{shape[2]}', f'{1000 * sec:.0f} ms/step',
            f'{1 / sec:.2f} it/s', ''], 1 / sec


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        console('error: no CUDA device is available', err=True)
        return EXIT_SETUP
    if device.type != 'cuda' and not args.quick:
        console('error: --device cpu only with --quick', err=True)
        return EXIT_SETUP
    if args.quick:
        acc_sizes, speed_sizes, batches, plain_size, train_shape = \
            [(9, 11), (8, 12)], [(16, 20)], [1, 2], (16, 20), (2, 16, 16)
    else:
        acc_sizes, speed_sizes, batches, plain_size, train_shape = \
            [(63, 95), (64, 96), (256, 320)], [(512, 640), (1080, 1920)], [1, 8], (512, 640), \
            (16, 128, 128)
    torch.manual_seed(0)
    net = DGFusion(args.channels).to(device).train(False)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    rows, ok = check_accuracy(net, device, acc_sizes)
    speed_rows, speed = check_speed(net, device, speed_sizes, batches, emulated_bf16=args.quick)
    plain_rows, plain = check_plain(net, device, plain_size)
    train_row, its = check_training(args.channels, device, train_shape, steps=3 if args.quick else 10)
    rows += speed_rows + plain_rows + [train_row]
    lean_key = f'{plain_size[0]}x{plain_size[1]}_b1_fp32'
    if lean_key in speed:
        lean = speed[lean_key]
        ratio_mem = 'n/a' if not plain['peak_bytes'] else f"{lean['peak_bytes'] / plain['peak_bytes']:.2f}"
        rows.append([f'lean/plain {plain_size[0]}x{plain_size[1]}', f"latency {lean['ms'] / plain['ms']:.2f}",
                     f'memory {ratio_mem}', ''])
    console(f"### DGFusion GPU check: {name}, torch {torch.__version__}, C={args.channels}\n")
    console('| check | figure | figure | figure |\n|---|---|---|---|')
    for row in rows:
        console('| ' + ' | '.join(row) + ' |')
    report = {'device': name, 'torch': torch.__version__, 'channels': args.channels,
              'accuracy_ok': ok, 'speed': speed, 'plain': plain, 'amp_train_it_per_s': its,
              'rows': rows}
    args.json.write_text(json.dumps(report, indent=2) + '\n', encoding='utf-8')
    console(f"\nfigures written to {args.json}")
    return EXIT_OK if ok else EXIT_ITEMS_FAILED


main = command(parse_args, run)

if __name__ == '__main__':
    sys.exit(main())
