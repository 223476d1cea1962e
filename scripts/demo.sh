#!/usr/bin/env bash
# The embedded default, from a fresh clone: installs Bun and the packages, builds the binary,
# and runs `autoscaler-cloudscale demo` (simulator + provider + a scripted autoscaler).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PATH="$PWD/.tools/node_modules/.bin:$PATH"
bun run scripts/build.ts >&2
exec ./dist/autoscaler-cloudscale demo "$@"
