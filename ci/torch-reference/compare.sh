#!/usr/bin/env bash
# Side-by-side speed comparison with PyTorch on this CPU. Not run in CI.
#
#   bash ci/torch-reference/compare.sh   # 2 threads for both; THREADS, ROUNDS, LEVER_ROUNDS, STEPS override
#
# 1. creates ci/torch-reference/.venv and installs torch, numpy and safetensors from PyPI;
# 2. saves our weights, and checks that PyTorch's logits for them equal ours within 1e-5;
# 3. alternates PyTorch and us (ROUNDS times, keeping the best of each), then measures our
#    levers switched on one by one;
# 4. writes book/generated/bench/results.json and speed.md with ours / PyTorch.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=ci/torch-reference
VENV=$HERE/.venv
PY=$VENV/bin/python
THREADS=${THREADS:-2}
WORK=target/torch-reference
STEPS=${STEPS:-40}

if ! [ -x "$PY" ] || ! "$PY" -c "import torch, numpy, safetensors" 2>/dev/null; then
    python3 -m venv "$VENV"
    # The Linux wheel on PyPI imports its CUDA libraries even on a CPU, so the plain install
    # (with the nvidia-* packages, about 3 GB) is the one that works.
    "$VENV/bin/pip" install --quiet torch numpy safetensors
fi

cargo build --release -p bench
BENCH=target/release/bench
export RAYON_NUM_THREADS=$THREADS
ROUNDS=${ROUNDS:-3}
mkdir -p "$WORK"
rm -f "$WORK"/torch.json "$WORK"/ours-*.json
echo "== machine: $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== equality check"
"$BENCH" save --save-weights "$WORK/weights.safetensors"
"$PY" "$HERE/torch_reference.py" check "$WORK/weights.safetensors" --out "$WORK/check.json"
# Other processes only slow a run down, so alternate short runs and keep each side's best.
ours=()
for r in $(seq "$ROUNDS"); do
    echo "== round $r: PyTorch"
    "$PY" "$HERE/torch_reference.py" time --threads "$THREADS" --steps "$STEPS" --out "$WORK/torch.json" --append
    echo "== round $r: ours"
    "$BENCH" all --steps "$STEPS" --json "$WORK/ours-$r.json"
    ours+=(--ours-json "$WORK/ours-$r.json")
done
echo "== ours, levers switched on one by one (each in a fresh process)"
"$BENCH" levers --steps "$STEPS" --lever-rounds "${LEVER_ROUNDS:-3}" --json "$WORK/ours-levers.json"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BENCH" report "${ours[@]}" --ours-json "$WORK/ours-levers.json" --torch-json "$WORK/torch.json" \
    --check-json "$WORK/check.json" --out book/generated/bench
