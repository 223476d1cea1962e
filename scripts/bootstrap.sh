#!/usr/bin/env bash
# Installs the pinned Bun from the npm registry into .tools/ and the project's packages from bun.lock.
# Everything the build and tests need comes from here; nothing is assumed to be installed globally.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN_VERSION="$(cat .bun-version)"
if [ ! -x .tools/node_modules/.bin/bun ] || [ "$(.tools/node_modules/.bin/bun --version)" != "$BUN_VERSION" ]; then
  mkdir -p .tools
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error "bun@${BUN_VERSION}" >/dev/null
fi
export PATH="$PWD/.tools/node_modules/.bin:$PATH"
if [ -f bun.lock ]; then bun install --frozen-lockfile >/dev/null; else bun install >/dev/null; fi
echo "bootstrap: bun $(bun --version), packages installed" >&2
