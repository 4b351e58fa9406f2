"""Network section of ``scripts/benchmark.py``: DGFusion's lean inference and training paths
against the plain eager float32 evaluation, measured in one run.

Every figure comes from its own child process (``--worker``), so that each peak memory is the
peak of that path alone: CUDA ``max_memory_allocated``, or on a CPU the process's peak resident
memory above its level before the first full-size call. Rows:

* ``plain``: ``reference_forward`` (the plain forward) in float32 under inference mode;
* ``lean``: the module's own forward under inference mode (it takes the lean path);
* ``lean bf16``: the same under bfloat16 autocast (``--precision bf16``), where the device
  computes bfloat16 natively (elsewhere a row of n/a saying why; ``--emulated-bf16`` measures it
  anyway: its memory and accuracy are those of native bfloat16, its latency is not), with the
  PSNR and largest difference of its 8-bit output against the lean float32 output;
* ``train plain`` / ``train``: one optimiser step (forward, loss, backward, Adam) through
  ``reference_forward`` and through the module's training forward, batch 4 x 128 x 128;
* ``train compiled`` (on request): the same step through ``torch.compile`` of the module, as
  ``train.compile: true`` runs it; compilation happens in the untimed warm-up steps;
* ``train bf16`` (and ``train compiled bf16`` with the compiled row): the module's step under
  ``train.precision: bf16`` autocast, where the device computes bfloat16 natively (elsewhere a
  row of n/a saying why);
* ``conv``: one channels-last 3x3 convolution 8C -> 8C at the frame size, the machine's
  convolution rate that the network's achieved rate is compared with.

Accuracy is the max abs difference to the float64 evaluation of ``reference_forward``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from basicsr.inference.timing import median_ms, synchronize
from basicsr.utils.cli import run_module
from basicsr.utils.logger import console

TRAIN_SHAPE = (4, 128, 128)
# untimed training steps before the timing: optimiser state, kernels and, for the compiled row,
# the compilation (its first runs after compiling are still slow)
TRAIN_WARMUP_STEPS = 3


def conv_macs_per_pixel(net: torch.nn.Module) -> int:
    """Multiply-adds per pixel of all the network's 3x3 convolutions (each runs once per pixel)."""
    return sum(m.weight.numel() for m in net.modules() if isinstance(m, torch.nn.Conv2d))


class PeakMemory:
    """Peak memory of what runs between ``start()`` and ``stop()`` (bytes above the start)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        from basicsr.utils.process_memory import reset_peak_rss, rss_bytes
        if self.device.type == 'cuda':
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            reset_peak_rss()
            self.base = rss_bytes() or 0

    def stop(self) -> Optional[int]:
        from basicsr.utils.process_memory import peak_rss_bytes
        if self.device.type == 'cuda':
            return torch.cuda.max_memory_allocated(self.device) - self.base
        peak = peak_rss_bytes()
        return None if peak is None else peak - self.base


def run_worker(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Measure one row (``spec['path']``) in this process; returns its figures."""
    from basicsr.archs.dgfusion.module import DGFusion
    from basicsr.archs.dgfusion.reference import reference_forward
    from basicsr.utils.process_memory import return_large_blocks_to_os

    return_large_blocks_to_os()
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    device = torch.device(spec['device'])
    path, (h, w), c = spec['path'], spec['size'], spec['channels']
    torch.manual_seed(0)
    net = DGFusion(c).to(device)
    gen = torch.Generator().manual_seed(1)
    batch = 1
    if path.startswith('train'):
        batch, h, w = spec.get('train_shape') or TRAIN_SHAPE
    vis_y = torch.rand(batch, 1, h, w, generator=gen).to(device)
    ir = torch.rand(batch, 1, h, w, generator=gen).to(device)
    result: Dict[str, Any] = {}
    if path == 'ref64':
        net = net.double().train(False)
        with torch.inference_mode():
            out = reference_forward(net, vis_y.double(), ir.double())
        torch.save(out.cpu(), spec['ref_file'])
        return result

    if path == 'conv':
        c8 = 8 * c
        conv = torch.nn.Conv2d(c8, c8, 3, padding=1).to(device, memory_format=torch.channels_last)
        x = torch.rand(1, c8, h, w, device=device).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            ms = median_ms(lambda: conv(x), device, spec['repeat'], spec['warmup'])
        return {'ms': ms, 'gmacs_per_s': 9 * c8 * c8 * h * w / ms / 1e6}

    if path.startswith('train'):
        net.train(True)
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        module = net
        if path.startswith('train compiled'):  # the wrapper train.compile uses
            from basicsr.models.fusion_model import compile_for_training
            module = compile_for_training(net)
        forward = (lambda: reference_forward(net, vis_y, ir)) if path == 'train plain' else \
            (lambda: module(vis_y, ir))
        from basicsr.models.precision import autocast
        precision = 'bf16' if path.endswith('bf16') else 'fp32'

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast(precision, device):
                fused = forward()
            fused.float().square().mean().backward()
            opt.step()
        for _ in range(TRAIN_WARMUP_STEPS):
            step()
        peak = PeakMemory(device)
        peak.start()
        result['ms'] = median_ms(step, device, spec['repeat'], 0)
        result['peak_bytes'] = peak.stop()
        return result

    net.train(False)
    small = (vis_y[..., :16, :16], ir[..., :16, :16])
    from basicsr.models.precision import autocast
    precision = 'bf16' if path.endswith('bf16') else 'fp32'
    with torch.inference_mode(), autocast(precision, device):
        run = (lambda v, i: reference_forward(net, v, i)) if path == 'plain' else net
        run(*small)
        peak = PeakMemory(device)
        peak.start()
        result['ms'] = median_ms(lambda: run(vis_y, ir), device, spec['repeat'], spec['warmup'])
        result['peak_bytes'] = peak.stop()
        out = run(vis_y, ir).float()
    if spec.get('ref_file'):
        ref = torch.load(spec['ref_file'], weights_only=True)
        result['max_abs_vs_f64'] = (out.double().cpu() - ref).abs().max().item()
    if path == 'lean':
        torch.save(out.cpu(), spec['lean_file'])
    elif path == 'lean bf16':
        result.update(agreement_8bit(out.cpu(), torch.load(spec['lean_file'], weights_only=True)))
    return result


def agreement_8bit(fused: torch.Tensor, base: torch.Tensor) -> Dict[str, float]:
    """PSNR (dB) and largest level difference of two fused Y maps (any shape, values in about
    [0,1]) after clamping to [0,1] and rounding to 8 bits; ``inf`` dB when they are equal."""
    from basicsr.tools.precision_check import agreement

    def u8(x: torch.Tensor):
        return (x.double().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    psnr, levels = agreement(u8(fused), u8(base))
    return {'psnr_8bit_db': psnr, 'max_levels': levels}


def measure(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run :func:`run_worker` for ``spec`` in a fresh Python process."""
    proc = run_module('basicsr.tools.benchmark_network', ['--worker', json.dumps(spec)],
                      capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        raise RuntimeError(f"benchmark worker for '{spec['path']}' failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ratio(value: Optional[float], base: Optional[float]) -> str:
    return 'n/a' if value is None or not base else f'{value / base:.2f}'


def _mib(value: Optional[int]) -> str:
    return 'n/a' if value is None else f'{value / 2 ** 20:.0f}'


def bench_network(device: torch.device, channels: int, sizes: Sequence[Tuple[int, int]],
                  repeat: int, warmup: int, threads: Optional[int], accuracy: bool,
                  train: bool, compile: bool = False,
                  emulated_bf16: bool = False) -> Tuple[List[str], Dict[str, Any]]:
    """Measure every row; returns Markdown blocks and the JSON-ready figures. ``compile`` adds
    the ``train compiled`` row to the training table (a failed compilation is a row of n/a
    and its reason, not the end of the benchmark). ``emulated_bf16`` measures the ``lean bf16``
    row on a device without native bfloat16 (its latency is then not meaningful)."""
    from basicsr.archs.dgfusion.module import DGFusion
    from basicsr.models.precision import precision_problem

    macs = conv_macs_per_pixel(DGFusion(channels))
    common = {'device': str(device), 'channels': channels, 'repeat': repeat, 'warmup': warmup,
              'threads': threads}
    blocks, report = [], {'channels': channels, 'conv_macs_per_pixel': macs, 'sizes': {}}
    header = ['path', 'ms', 'latency ratio', 'peak MiB', 'memory ratio', 'bytes/pixel',
              'max abs vs float64', 'GMAC/s', 'of conv rate', '8-bit vs lean: PSNR dB / max levels']
    bf16_problem = precision_problem('bf16', device, 'bf16')
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in sizes:
            ref_file = str(Path(tmp) / f'ref_{h}x{w}.pt')
            size_spec = {**common, 'size': [h, w], 'ref_file': ref_file if accuracy else None,
                         'lean_file': str(Path(tmp) / f'lean_{h}x{w}.pt')}
            if accuracy:
                measure({**size_spec, 'path': 'ref64'})
            rows = {p: measure({**size_spec, 'path': p}) for p in ('plain', 'lean', 'conv')}
            note = ''
            if bf16_problem and not emulated_bf16:
                rows['lean bf16'] = {'ms': None, 'peak_bytes': None, 'error': bf16_problem}
                note = f"\n\nlean bf16: {bf16_problem.split(': ', 1)[1]}"
            else:
                rows['lean bf16'] = measure({**size_spec, 'path': 'lean bf16'})
                if bf16_problem:
                    rows['lean bf16']['emulated'] = True
                    note = ("\n\nlean bf16 ran with emulated bfloat16 (--emulated-bf16): its memory "
                            "and accuracy are those of native bfloat16, its latency is not")
            conv_rate = rows['conv']['gmacs_per_s']
            frame_macs = macs * h * w
            table = [inference_row(p, rows[p], rows['plain'], h * w, frame_macs, conv_rate)
                     for p in ('plain', 'lean', 'lean bf16')]
            blocks.append(f"### DGFusion inference, C={channels}, {h}x{w}, batch 1, {device}: "
                          f"{frame_macs / 1e9:.3g} G multiply-adds per frame; one 3x3 conv "
                          f"{8 * channels}->{8 * channels} runs at {conv_rate:.3g} GMAC/s\n\n"
                          + markdown(header, table) + note)
            report['sizes'][f'{h}x{w}'] = {**rows, 'frame_macs': frame_macs}
        if train:
            paths = ['train plain', 'train', 'train bf16']
            if compile:
                paths += ['train compiled', 'train compiled bf16']
            rows, notes = {}, []
            for p in paths:
                if p.endswith('bf16') and bf16_problem:
                    rows[p] = {'ms': None, 'peak_bytes': None, 'error': bf16_problem}
                    continue
                try:
                    rows[p] = measure({**common, 'size': [0, 0], 'path': p})
                except RuntimeError as exc:
                    if not p.startswith('train compiled'):
                        raise
                    rows[p] = {'ms': None, 'peak_bytes': None, 'error': str(exc)}
                    notes.append(f"\n\n{p}: {exc}")
            if bf16_problem:
                notes.append(f"\n\nbf16 rows: {bf16_problem.split(': ', 1)[1]}")
            base = rows['train plain']
            b, th, tw = TRAIN_SHAPE
            table = [[p, 'n/a' if r['ms'] is None else f"{r['ms']:.0f}", _ratio(r['ms'], base['ms']),
                      _mib(r['peak_bytes']), _ratio(r['peak_bytes'], base['peak_bytes']),
                      'n/a' if r['ms'] is None else f"{b * th * tw / r['ms'] * 1e3:.0f}"]
                     for p, r in rows.items()]
            blocks.append(f"### DGFusion training step (forward, loss, backward, Adam), C={channels}, "
                          f"batch {b} x {th}x{tw}, {device}, median of {repeat} after "
                          f"{TRAIN_WARMUP_STEPS} warm-up steps\n\n"
                          + markdown(['path', 'ms', 'time ratio', 'peak MiB', 'memory ratio',
                                      'pixels/s'], table)
                          + ''.join(notes))
            report['train'] = rows
    return blocks, report


def inference_row(path: str, row: Dict[str, Any], plain: Dict[str, Any], pixels: int,
                  frame_macs: int, conv_rate: float) -> List[str]:
    """Cells of one inference table row (n/a where the row was not measured)."""
    ms, peak, err = row.get('ms'), row.get('peak_bytes'), row.get('max_abs_vs_f64')
    rate = None if ms is None else frame_macs / ms / 1e6
    agree = 'psnr_8bit_db' in row and f"{row['psnr_8bit_db']:.1f} / {row['max_levels']:.0f}"
    return [path, 'n/a' if ms is None else f"{ms:.0f}", _ratio(ms, plain['ms']), _mib(peak),
            _ratio(peak, plain['peak_bytes']), 'n/a' if peak is None else f"{peak / pixels:.0f}",
            'n/a' if err is None else f'{err:.2e}', 'n/a' if rate is None else f'{rate:.0f}',
            'n/a' if rate is None else f'{rate / conv_rate:.2f}', agree or '']


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``--worker SPEC``: run :func:`run_worker` and print its JSON line (0); else usage (2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 2 and argv[0] == '--worker':
        console(json.dumps(run_worker(json.loads(argv[1]))))
        return 0
    console("usage: this module is run by scripts/benchmark.py", err=True)
    return 2


if __name__ == '__main__':
    sys.exit(main())
