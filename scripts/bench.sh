#!/usr/bin/env bash
# The benchmark (bench/README.md):
#   ./scripts/bench.sh            full run: the real CA at 1,000 and 5,000 nodes (--ca-scale), then the per-call
#                                 benchmark at 5,000 servers; table, bench/results.json, last line "bench: ..."
#   ./scripts/bench.sh --smoke    CI's small run: 500 servers, a few hundred calls (.cache/bench/results-smoke.json)
#   ./scripts/bench.sh --ca-scale only the real CA at scale (test/e2e/cascale_test.go; bench/ca-scale.json), ~30-35 min
#   ./scripts/bench.sh --no-ca-scale   the full per-call benchmark without the CA-at-scale part
# Other flags go to the benchmark (e.g. --cpu-prof DIR: the provider runs from source under Bun's profiler).
#
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default: built from the working tree into .cache/bench/)
#      CA_SOURCE_DIR              CA's source trees (see scripts/ca-source.sh)
#      E2E_SCALE_NODES, E2E_SCALE_LOOPS, E2E_SCALE_BLOCKS  the CA-at-scale run (test/e2e/cascale_test.go)
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$REPO_ROOT
cd "$root"

use_go bench "the load client and the baseline (Go)" || exit 1
if ! command -v bun >/dev/null 2>&1; then use_bun || exit 1; fi

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
ca_scale=full # full: before the full per-call run; only: nothing else; no: skip
smoke=0
for a in "$@"; do
  case "$a" in
    --ca-scale) ca_scale=only ;;
    --no-ca-scale) ca_scale=no ;;
    --smoke) smoke=1; args+=("-smoke") ;;
    --*) args+=("-${a#--}") ;;
    *) args+=("$a") ;;
  esac
done
if [ "$smoke" = 1 ] && [ "$ca_scale" = full ]; then ca_scale=no; fi
# Any argument but the CA-at-scale flags (rounds, servers, a profile, an A/B binary) makes it a per-call experiment.
if [ "$ca_scale" = full ] && [ ${#args[@]} -gt 0 ]; then ca_scale=no; fi

if [ "$ca_scale" != no ]; then
  # The real CA at 1,000 and 5,000 nodes: the e2e suite's control plane (kwok), CA 1.36.1, our binary and
  # the Go baseline (the benchmark binary just built, in its baseline role).
  scale_out="$root/bench/ca-scale.json"
  echo "bench: === CA at scale (test/e2e/cascale_test.go; results in $scale_out)"
  rm -f "$scale_out"
  E2E_TAGS=cascale E2E_RUN='^TestCAScale$' E2E_TIMEOUT=${E2E_TIMEOUT:-120m} E2E_BENCH_BIN="$root/.cache/bench/bench.test" \
    E2E_SCALE_OUT="$scale_out" ./scripts/test-e2e.sh
  scale_rc=$?
  if [ "$ca_scale" = only ]; then
    "$root/.cache/bench/bench.test" -test.run '^TestCAScaleReport$' -test.count 1 -ca-scale "$scale_out" || exit 1
    exit "$scale_rc"
  fi
  args+=(-ca-scale "$scale_out")
fi
# Every phase is bounded in count and in time; the whole run is bounded too.
exec "$root/.cache/bench/bench.test" -test.run '^TestBench$' -test.timeout 20m -test.count 1 "${args[@]}"
