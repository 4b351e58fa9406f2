#!/usr/bin/env bash
# Train the reference recipe on one CUDA GPU for a fixed wall-clock budget, in one command, and
# keep what it learnt:
#   bash scripts/gpu_train.sh OUT_DIR [MINUTES] [extra train.py arguments, e.g. --set KEY=VALUE]
# MINUTES (default 8, at most 8) is the training loop's budget (train.max_minutes): the run
# saves a checkpoint when it is reached and ends normally. Mixed precision: bf16 where the GPU
# computes it natively, else fp16 with a gradient scaler. By default the run starts from the
# shipped reference model (WARM=0 starts from scratch) with the cosine schedule over ITERS
# iterations (default 6000; on a GPU the budget usually ends the run first).
# Writes into OUT_DIR: DGFusion_gpu.pth (EMA weights, loadable by fuse.py --weights and
# test.py), train_log.jsonl, the run's log, validation CSVs (val/) and the resolved options.
# Exit status: 0 done, 1 training diverged, 2 bad arguments or set-up, 130 interrupted.
# Environment: PY (python), DEVICE (default cuda; cpu only for a smoke test), OPT (option
# file, default options/train/DGFusion_RoadScene.yml), PRECISION (override), ITERS, WARM,
# TMAX_KEY (the option that sets the schedule's length, default train.scheduler.T_max).
set -uo pipefail
cd "$(dirname "$0")/.."
usage="usage: bash scripts/gpu_train.sh OUT_DIR [MINUTES (0 < m <= 8)] [train.py arguments]"
[ $# -ge 1 ] || { echo "error: $usage" >&2; exit 2; }
out=$1; shift
minutes=8
if [ $# -ge 1 ] && [[ $1 != -* ]]; then minutes=$1; shift; fi
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DEVICE=${DEVICE:-cuda}
OPT=${OPT:-options/train/DGFusion_RoadScene.yml}
ITERS=${ITERS:-6000}
TMAX_KEY=${TMAX_KEY-train.scheduler.T_max}  # the schedule's length key; empty: leave it
WARM=${WARM:-1}
if ! "$PY" -c "import sys; m = float(sys.argv[1]); sys.exit(0 if 0 < m <= 8 else 1)" "$minutes" 2>/dev/null; then
  echo "error: MINUTES: expected a number in (0, 8], got '$minutes'" >&2; exit 2
fi
if ! [[ $ITERS =~ ^[1-9][0-9]*$ ]]; then echo "error: ITERS: expected a positive integer, got '$ITERS'" >&2; exit 2; fi
if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "error: $out: output folder exists and is not empty; give a new folder" >&2; exit 2
fi
precision=${PRECISION:-$("$PY" - "$DEVICE" <<'EOF'
import sys, torch
from basicsr.models.precision import bf16_supported
device = torch.device(sys.argv[1])
if device.type != 'cuda':
    print('fp32')
elif not torch.cuda.is_available():
    print('fp16')  # train.py names the missing GPU
else:
    print('bf16' if bf16_supported(device) else 'fp16')
EOF
)} || { echo "error: could not import torch and basicsr with $PY" >&2; exit 2; }
mkdir -p "$out" || exit 2
name=gpu_train
warm=()
if [ "$WARM" = 1 ]; then
  warm=(--set path.pretrain_network_g=pretrained_model/DGFusion_RoadScene_c16.pth --set path.param_key_g=params)
fi
echo "== training $OPT on $DEVICE ($precision) for at most $minutes min, cosine over $ITERS iterations"
"$PY" train.py -opt "$OPT" --set name=$name --set device="$DEVICE" --set train.precision="$precision" \
  --set train.max_minutes="$minutes" --set train.total_iter="$ITERS" \
  ${TMAX_KEY:+--set "$TMAX_KEY=$ITERS"} --set path.experiments_root="$out/experiments" \
  "${warm[@]}" "$@"
status=$?
exp="$out/experiments/$name"
if [ -d "$exp/checkpoints" ]; then
  "$PY" -m basicsr.tools.convert_checkpoint --input "$exp/checkpoints" --output "$out/DGFusion_gpu.pth" \
    --to ours || { [ $status -eq 0 ] && status=1; }
fi
for f in "$exp"/train_log.jsonl "$exp"/train_*.log "$exp"/options_resolved.yml; do
  [ -f "$f" ] && cp "$f" "$out/"
done
[ -d "$exp/val" ] && cp -r "$exp/val" "$out/"
echo "== exit $status; weights: $out/DGFusion_gpu.pth"
exit $status
