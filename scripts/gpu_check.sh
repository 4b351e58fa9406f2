#!/usr/bin/env bash
# GPU check of DGFusion on one CUDA machine, in one command (a few minutes on one GPU):
#   1. the CUDA-marked tests;
#   2. scripts/gpu_check.py: accuracy against the float64 reference, latency / fps / peak memory
#      at 640x512 and 1920x1080 (batch 1 and 8, float32 and bfloat16), the PSNR / max difference
#      of the 8-bit image fused with --precision bf16 against fp32 at those sizes, AMP training it/s;
#   3. a 2-iteration NCCL training run under torchrun on the demo dataset.
# Prints one table; writes the figures to ${OUT_DIR:-.}/gpu_check.json.
# Usage: bash scripts/gpu_check.sh [PYTHON]   (default: .venv/bin/python if present, else python3)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
out=${OUT_DIR:-.}
mkdir -p "$out"
status=0

echo "== CUDA-marked tests"
"$PY" -m pytest -q -m cuda 2>&1 | tail -3 || status=1

echo "== network figures"
"$PY" -m basicsr.tools.gpu_check --json "$out/gpu_check.json" || status=1

echo "== torchrun --nproc_per_node=1 (NCCL), 2 iterations on the demo dataset"
"$PY" -m basicsr.data.demo >/dev/null
run=gpu_check_$$
if "$PY" -m torch.distributed.run --nproc_per_node=1 train.py -opt options/train/DGFusion_demo.yml \
     --set device=cuda --set name="$run" --set train.total_iter=2 --set val.val_freq=2 \
     --set train.scheduler.milestones=[1] --set logger.print_freq=1 \
     --set logger.save_checkpoint_freq=2 > "$out/torchrun.log" 2>&1; then
  echo "| torchrun NCCL 2 iterations | ok | $(grep -c 'iter ' "$out/torchrun.log") log lines |"
else
  echo "| torchrun NCCL 2 iterations | FAILED | see $out/torchrun.log |"; tail -5 "$out/torchrun.log"
  status=1
fi
rm -rf "experiments/$run"
exit $status
