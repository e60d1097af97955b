#!/usr/bin/env bash
# Check the built book in a real browser (Debian's Chromium driven by playwright-core), offline.
# Installs Chromium from Debian's packages and playwright-core from the npm registry when missing.
# Usage: ci/browser-check.sh [built-book-dir] [output-dir]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
book="${1:-$root/target/book}"
out="${2:-$root/target/browser}"

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser check: please install ${need_apt[*]} (Debian packages), or run 'cargo xtask test --skip-browser'" >&2
    exit 1
  fi
  echo "browser check: installing ${need_apt[*]} from Debian's packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cd "$root/ci/browser"
if [ ! -f node_modules/playwright-core/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node check-book.mjs "$book" "$root/book/SUMMARY.md" "$out"
