#!/usr/bin/env bash
# On demand, not in CI: mutation testing of the fast kernels (nearly all of the project's
# unsafe code), to show that their tests catch wrong answers. cargo-mutants changes one operator, constant or
# return value at a time in chapters-code/transformer/src/kernels/ and runs the kernel tests;
# a mutant that no test catches is listed in <out>/mutants.out/missed.txt.
#
# The process tuning (tune_process, keep_freed_memory) and the Kernels and Tuning defaults are
# left out: thread and allocator settings change speed, not results, so the tests (which
# compare the fused path with the plain one) cannot and should not tell them apart.
#
# Usage: ci/mutants.sh [out-dir]   (two to three hours on 2 cores; installs cargo-mutants when missing)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/mutants}"
version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  echo "mutants: installing cargo-mutants $version from crates.io" >&2
  cargo install --locked --version "$version" cargo-mutants
fi
cd "$root"
exec cargo mutants --file 'chapters-code/transformer/src/kernels/*.rs' --package transformer \
  --profile release --jobs 2 --output "$out" --timeout 60 --build-timeout 300 \
  --exclude-re 'tune_process|keep_freed_memory|<impl Default for (Kernels|Tuning)>' \
  -- --lib --test kernels --test kernels_errors
