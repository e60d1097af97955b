#!/usr/bin/env bash
# On demand, not in CI: mutation testing of the fast kernels (nearly all of the project's
# unsafe code), to show that their tests catch wrong answers. cargo-mutants changes one
# operator, constant or return value at a time in chapters-code/transformer/src/kernels/ and
# runs the kernel tests; a mutant that no test catches is listed in <out>/mutants.out/missed.txt.
#
# Left out, because they change speed or labels, not results, so the tests (which compare the
# fused path with the plain one) cannot and should not tell them apart: the process tuning
# (tune_process, keep_freed_memory, single_threaded), the Kernels and Tuning defaults, and the
# names of candle custom ops (`name`: a label in candle's graph and messages).
#
# Ten mutants survive by construction (equivalent mutants), listed here so that a run with
# exactly these in missed.txt is a clean run. Each changes how work is split or whether it runs
# in parallel, never what is computed:
# - mod.rs `ELEMS_PER_TASK: usize = 16 * 1024` with `+`: element-wise kernels split their work
#   into chunks of another size;
# - mod.rs `reduce_lanes`, `while w > 1` with `>=`: one more pass with w = 0 adds nothing;
# - products.rs `matmul`, `parallel && threads > 1` (4 mutants: `||`, `==`, `<`, `>=`): gemm runs
#   on one thread or on the pool, with the same result;
# - softmax.rs `softmax_rows`, `ROWS_PER_TASK * 4` (`+`, `/`) and `SoftmaxOp::bwd`,
#   `t_k * ROWS_PER_TASK * 4` (`/`): rows are independent, so any whole number of rows per task
#   gives the same values;
# - linear.rs `linear_bwd`, `d_out * ROWS_PER_TASK * 4` with `/`: the bias gradient's partial
#   sums cover 4 rows instead of 64, which regroups a float sum (a rounding-level change, still
#   independent of the thread count; no tolerance can or should tell one fixed grouping from
#   another).
#
# The mutants are applied in place, one at a time, in a scratch git worktree of HEAD (under
# <out>/tree), never in your checkout: commit the kernels and tests you want to check first.
# Each mutant costs one incremental release build of the changed kernel file and a run of the
# kernel tests (together 3 to 10 s), so the whole run of about 800 mutants takes about an hour
# and a half on 2 cores, after a first build of the dependencies (about 5 minutes; the cache is
# kept in <out>/target for the next run).
#
# Usage: ci/mutants.sh [out-dir]   (installs cargo-mutants when missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/mutants}"
version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  echo "mutants: installing cargo-mutants $version from crates.io" >&2
  cargo install --locked --version "$version" cargo-mutants
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
tree="$out/tree"
git -C "$root" worktree prune
if [ -e "$tree" ] && ! git -C "$root" worktree remove --force "$tree"; then
  echo "mutants: $tree is in the way and is not this repository's worktree; remove it" >&2
  exit 1
fi
if ! git -C "$root" diff --quiet HEAD -- chapters-code/transformer; then
  echo "mutants: note: uncommitted changes under chapters-code/transformer are not tested" >&2
fi
git -C "$root" worktree add --detach "$tree" HEAD >&2
trap 'git -C "$root" worktree remove --force "$tree" 2>/dev/null || true' EXIT
cd "$tree"
# The build cache lives beside the tree, so a second run starts warm.
export CARGO_TARGET_DIR="$out/target"
cargo mutants --in-place --no-shuffle --file 'chapters-code/transformer/src/kernels/*.rs' \
  --package transformer --profile release --output "$out" --timeout 60 --build-timeout 300 \
  --exclude-re 'tune_process|keep_freed_memory|single_threaded|<impl Default for (Kernels|Tuning)>|::name -> ' \
  -- --lib --test kernels --test kernels_errors
