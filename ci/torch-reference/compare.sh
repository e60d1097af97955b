#!/usr/bin/env bash
# Side-by-side speed comparison with PyTorch on this CPU. Not run in CI.
#
#   bash ci/torch-reference/compare.sh   # 2 threads for both; THREADS, ROUNDS, LEVER_ROUNDS, STEPS override
#
# Another model shape: MODEL="--d-model 64 --vocab 1024" (flags both sides take: --d-model,
# --layers, --heads, --vocab, --seq) with OUT=<folder>, so that the book's outputs stay as
# they are.
#
# 1. creates ci/torch-reference/.venv and installs torch, numpy and safetensors from PyPI;
# 2. saves our weights, and checks that PyTorch's logits for them equal ours within 1e-5;
# 3. alternates PyTorch and us (ROUNDS times, keeping the best of each), then measures our
#    levers switched on one by one; each round also profiles our training step;
# 4. writes book/generated/bench/results.json, speed.md, levers.md and profile.md, with
#    ours / PyTorch, the CPU, and the GEMM peaks of gemm (ours), numpy and PyTorch.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=ci/torch-reference
VENV=$HERE/.venv
PY=$VENV/bin/python
THREADS=${THREADS:-2}
WORK=target/torch-reference
STEPS=${STEPS:-40}
OUT=${OUT:-book/generated/bench}
read -r -a MODEL_ARGS <<< "${MODEL:-}"
if [ -n "${MODEL:-}" ] && [ "$(realpath -m "$OUT")" = "$(realpath -m book/generated/bench)" ]; then
    echo "MODEL is set: give OUT=<folder> too, so that the book's outputs are not replaced" >&2
    exit 2
fi

if ! [ -x "$PY" ] || ! "$PY" -c "import torch, numpy, safetensors" 2>/dev/null; then
    python3 -m venv "$VENV"
    # The Linux wheel on PyPI imports its CUDA libraries even on a CPU, so the plain install
    # (with the nvidia-* packages, about 3 GB) is the one that works.
    "$VENV/bin/pip" install --quiet torch numpy safetensors
fi

cargo build --release -p bench
BENCH=target/release/bench
export RAYON_NUM_THREADS=$THREADS
# numpy's BLAS (for its GEMM peak) on the same threads.
export OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
ROUNDS=${ROUNDS:-3}
mkdir -p "$WORK"
rm -f "$WORK"/torch.json "$WORK"/ours-*.json
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== equality check"
"$BENCH" save "${MODEL_ARGS[@]}" --save-weights "$WORK/weights.safetensors"
"$PY" "$HERE/torch_reference.py" "${MODEL_ARGS[@]}" check "$WORK/weights.safetensors" --out "$WORK/check.json"
# Other processes only slow a run down, so alternate short runs and keep each side's best.
ours=()
for r in $(seq "$ROUNDS"); do
    echo "== round $r: PyTorch"
    "$PY" "$HERE/torch_reference.py" "${MODEL_ARGS[@]}" time --threads "$THREADS" --steps "$STEPS" --out "$WORK/torch.json" --append
    echo "== round $r: ours"
    "$BENCH" all "${MODEL_ARGS[@]}" --steps "$STEPS" --json "$WORK/ours-$r.json"
    "$BENCH" profile "${MODEL_ARGS[@]}" --steps "$STEPS" --json "$WORK/ours-profile-$r.json"
    ours+=(--ours-json "$WORK/ours-$r.json" --ours-json "$WORK/ours-profile-$r.json")
done
echo "== ours, levers switched on one by one (each in a fresh process)"
"$BENCH" levers "${MODEL_ARGS[@]}" --steps "$STEPS" --lever-rounds "${LEVER_ROUNDS:-3}" --json "$WORK/ours-levers.json"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH" report "${MODEL_ARGS[@]}" "${ours[@]}" --ours-json "$WORK/ours-levers.json" \
    --torch-json "$WORK/torch.json" \
    --check-json "$WORK/check.json" --out "$OUT"
