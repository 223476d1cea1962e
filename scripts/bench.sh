#!/usr/bin/env bash
# The benchmark (bench/README.md):
#   ./scripts/bench.sh            full run: 5,000 servers; table, bench/results.json, last line "bench: ..."
#   ./scripts/bench.sh --smoke    CI's small run: 500 servers, a few hundred calls (.cache/bench/results-smoke.json)
# Other flags go to the benchmark (e.g. --cpu-prof DIR: the provider runs from source under Bun's profiler).
#
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default: built from the working tree into .cache/bench/)
#      CA_SOURCE_DIR              CA's source trees (see scripts/ca-source.sh)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "bench: the Go toolchain (go >= 1.26) is not installed or not on PATH; the load client and the baseline are Go" >&2
  exit 1
fi
if ! command -v bun >/dev/null 2>&1; then
  ./scripts/bootstrap.sh || exit 1
  export PATH="$root/.tools/node_modules/.bin:$root/node_modules/.bin:$PATH"
fi

if [ -z "${AUTOSCALER_CLOUDSCALE_BIN:-}" ]; then
  # Measure what the working tree builds, not a stale binary; built beside the benchmark so that
  # a run never replaces dist/autoscaler-cloudscale under tests that are using it.
  mkdir -p .cache/bench
  bun run scripts/build.ts --outfile .cache/bench/autoscaler-cloudscale || { echo "bench: build failed" >&2; exit 1; }
  export AUTOSCALER_CLOUDSCALE_BIN="$root/.cache/bench/autoscaler-cloudscale"
fi
case "$AUTOSCALER_CLOUDSCALE_BIN" in /*) ;; *) AUTOSCALER_CLOUDSCALE_BIN="$root/$AUTOSCALER_CLOUDSCALE_BIN" ;; esac
export AUTOSCALER_CLOUDSCALE_BIN

export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
mkdir -p .cache/bench
# bench/go.mod imports CA 1.36.1's generated externalgrpc code through .cache/ca-src.
# shellcheck source=scripts/ca-source.sh
source "$root/scripts/ca-source.sh"
ca_source 1.36.1 || { echo "bench: Cluster Autoscaler's source not found (see above)" >&2; exit 1; }
start=$(date +%s.%N)
if ! (cd bench && go test -c -o "$root/.cache/bench/bench.test" .); then
  echo "bench: building the Go benchmark (bench/) failed" >&2
  exit 1
fi
echo "bench: Go benchmark built in $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}") s ($(go version | cut -d' ' -f3))"

args=()
for a in "$@"; do
  case "$a" in
    --*) args+=("-${a#--}") ;;
    *) args+=("$a") ;;
  esac
done
# Every phase is bounded in count and in time; the whole run is bounded too.
exec "$root/.cache/bench/bench.test" -test.run '^TestBench$' -test.timeout 20m -test.count 1 "${args[@]}"
