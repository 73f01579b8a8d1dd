#!/usr/bin/env bash
# One GPU session's measurements of issue 12's kernel options, as few device calls as possible.
#
# Here first (a machine with PyPI):   bash bench/gpu_wheels.sh         # .whl/, ~61 MB, git-ignored
# Then one device call per phase, each with carry [".whl"] and timeout_s 600; device time is ~15 min in all,
# so run the phase the issue's targets are about first, and the second at once (a warm machine is kept 30 s):
#   bash bench/gpu_session.sh 8b      # Qwen3-8B shape: common recipe, default, no-liger, ckpt-every-2, ckpt-offload
#   bash bench/gpu_session.sh small   # gpu-marked trainer tests, then the Qwen3-0.6B shape with every variant
# Each phase prints a short table last and leaves its logs under $OUT (or /tmp/tuneq-gpu). The estimates of
# ~5 min per phase are arithmetic from the issue's H100 rates, not measured: each arm has a timeout, and an
# arm that runs out of time or memory is a "failed" row, so the table still prints.
#
# Both shapes are random-init Qwen3 configs built on the GPU (no download), QLoRA NF4 r=16, tuneq at the issue's
# 4 x 2048 micro-batch with one micro-batch per optimizer step (so every step is a throughput sample).
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:?usage: bench/gpu_session.sh small|8b}
OUT=${OUT:-/tmp/tuneq-gpu}
mkdir -p "$OUT"

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | grep -v "^WARNING\|^ERROR: pip's dependency resolver" | tail -3
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)"
python3 -c "import liger_kernel.transformers, triton; print('liger-kernel imports; triton', triton.__version__)" 2>&1 | tail -1

BATCH=(--batch-size 4 --max-seq-length 2048 --accumulation 1)
case "$PHASE" in
  small)
    # The trainer's tests need no service stack: tests/trainer_fixtures.py instead of tests/conftest.py.
    timeout 200 python3 -m pytest -q -m gpu --confcutdir=tests/trainer -p tests.trainer_fixtures -p no:cacheprovider \
      tests/trainer >"$OUT/gpu-tests.log" 2>&1
    echo "gpu tests exit $?"
    timeout 330 python3 bench/train_throughput.py --device cuda --shape qwen3-0.6b --examples 1000 --common-examples 160 \
      "${BATCH[@]}" --arm-timeout 45 --variants default,no-liger,ckpt-every-2,no-ckpt,no-workers,compile \
      >"$OUT/bench-0.6b.log" 2>&1
    echo "0.6b bench exit $?"
    echo; echo "== gpu-marked trainer tests"; grep -E "passed|failed|error|FAILED|ERROR" "$OUT/gpu-tests.log" | tail -12
    echo; echo "== Qwen3-0.6B shape"; grep -E "decided: kernels" "$OUT/bench-0.6b.log" | cut -c1-160
    sed -n '/^arm /,$p' "$OUT/bench-0.6b.log"
    ;;
  8b)
    timeout 540 python3 bench/train_throughput.py --device cuda --shape qwen3-8b --examples 500 --common-examples 48 \
      "${BATCH[@]}" --arm-timeout 100 --variants default,no-liger,ckpt-every-2,ckpt-offload >"$OUT/bench-8b.log" 2>&1
    echo "8b bench exit $?"
    echo; echo "== Qwen3-8B shape"; grep -E "decided: kernels" "$OUT/bench-8b.log" | cut -c1-160
    sed -n '/^arm /,$p' "$OUT/bench-8b.log"
    ;;
  *) echo "unknown phase $PHASE: small or 8b" >&2; exit 2 ;;
esac
