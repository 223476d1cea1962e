#!/usr/bin/env bash
# The embedded default, from a fresh clone: installs Bun and the packages, builds the binary,
# and runs `autoscaler-cloudscale demo` (simulator + provider + a scripted autoscaler).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
use_bun
bun run scripts/build.ts >&2
exec ./dist/autoscaler-cloudscale demo "$@"
