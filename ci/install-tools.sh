#!/usr/bin/env bash
# Install what the test command needs beyond a plain Rust toolchain. Safe to run repeatedly.
set -euo pipefail

# rustfmt and clippy are rustup components; a minimal toolchain may lack them.
if command -v rustup >/dev/null 2>&1; then
  for c in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
      rustup component add "$c"
    fi
  done
fi
