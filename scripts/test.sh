#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it, on a fresh machine of this kind:
#   ./scripts/test.sh
# It installs what it needs (Bun from the npm registry, packages from bun.lock, openssl and the
# packaging tools from Debian, Go modules from the module proxy), checks the generated code,
# builds the binary, then runs each suite. The last line is "N passed, N failed".
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
passed=0
failed=0
suites_failed=()
t0=$SECONDS

step() { printf '\n=== %s (%ss)\n' "$1" "$((SECONDS - t0))"; }
count_bun() { # file suite
  local p f
  read -r p f < <(bun_counts "$1")
  passed=$((passed + p)); failed=$((failed + f))
  echo "$2: $p passed, $f failed"
}
count_go() { # file suite
  local p f
  read -r p f < <(go_counts "$1")
  passed=$((passed + p)); failed=$((failed + f))
  echo "$2: $p passed, $f failed"
}
fail_suite() { suites_failed+=("$1"); failed=$((failed + 1)); echo "$1: FAILED ($2)"; }
# Runs one `bun test` suite, shows and counts its result. A run that ends without bun's
# summary line (a crash, a kill, a module that fails to load) is a failed suite, not 0 failed.
bun_suite() { # name logfile bun-test-arguments...
  local name=$1 log=$2
  shift 2
  bun test "$@" 2>&1 | tee "$log"
  count_bun "$log" "$name"
  if ! grep -Eq '^ *[0-9]+ pass$' "$log"; then fail_suite "$name" "no summary line"; fi
}
# test/test-script.test.ts sources this file for the functions above.
if [ "${TEST_SH_FUNCTIONS_ONLY:-}" = 1 ]; then return 0 2>/dev/null || exit 0; fi

cd "$(dirname "$0")/.."
ROOT="$PWD"
LOGDIR="${TEST_LOG_DIR:-$ROOT/.cache/test-logs}"
mkdir -p "$LOGDIR"
# Every temporary file of the run (test configs, certificates, Go's work folders) goes into one
# folder that is removed at the end, so a run leaves nothing behind in the system's /tmp.
SUITE_TMP=$(mktemp -d "${TMPDIR:-/tmp}/acs-suite.XXXXXX") && export TMPDIR="$SUITE_TMP"
trap 'rm -rf "${SUITE_TMP:-}"' EXIT

step "bootstrap"
if ! use_bun; then fail_suite bootstrap "could not install Bun or the packages"; echo "$passed passed, $failed failed"; exit 1; fi
if ! command -v openssl >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq openssl) >/dev/null 2>&1 || true
fi

step "generated code is up to date"
gen_tmp=$(mktemp -d)
if buf generate --template buf.gen.yaml -o "$gen_tmp" >/dev/null 2>"$LOGDIR/buf.log" && diff -r "$gen_tmp/src/gen" src/gen >"$LOGDIR/gen.diff"; then
  passed=$((passed + 1)); echo "generated code: up to date"
else
  fail_suite "generated code" "src/gen differs from 'buf generate' (run 'bun run generate'): $(head -5 "$LOGDIR/gen.diff" "$LOGDIR/buf.log")"
fi
rm -rf "$gen_tmp"

step "typecheck"
if tsc --noEmit -p . >"$LOGDIR/tsc.log" 2>&1; then passed=$((passed + 1)); echo "typecheck: clean"; else fail_suite typecheck "$(head -20 "$LOGDIR/tsc.log")"; fi

step "lint (eslint with typescript-eslint's type-aware promise rules: eslint.config.js)"
if eslint --max-warnings 0 . >"$LOGDIR/lint.log" 2>&1; then passed=$((passed + 1)); echo "lint: clean"; else fail_suite lint "$(head -40 "$LOGDIR/lint.log")"; fi

step "build"
if ! bun run scripts/build.ts; then fail_suite build "bun build --compile failed"; echo "$passed passed, $failed failed"; exit 1; fi

step "unit and integration tests (bun test, against dist/autoscaler-cloudscale)"
export TEST_PROC_LOG="$LOGDIR/processes.log"
: >"$TEST_PROC_LOG"
bun_suite "bun test" "$LOGDIR/bun-test.log" --timeout 60000 test/*.test.ts

step "fault injection (bun test test/faults: crash trials, lost responses, outages, hostile input, transport, secrets)"
bun_suite faults "$LOGDIR/faults.log" --timeout 600000 test/faults/

# The API token the tests hand to the provider must never appear in anything any process printed.
if [ -s "$TEST_PROC_LOG" ] && ! grep -q "test-token-7f3a9c2e51b84d06" "$TEST_PROC_LOG"; then
  passed=$((passed + 1)); echo "secrets: the API token appears in none of $(wc -l <"$TEST_PROC_LOG") lines of process output"
else
  fail_suite secrets "the API token appears in process output (or no output was recorded): $TEST_PROC_LOG"
fi

if [ -d test/packaging ] && ls test/packaging/*.test.ts >/dev/null 2>&1; then
  step "packaging proofs (bun test test/packaging)"
  # The real kubectl (kustomize) and helm the proofs render with; built once, then cached like the e2e binaries.
  if ! ./scripts/e2e-build.sh kubectl helm >"$LOGDIR/tools-build.log" 2>&1; then
    echo "building kubectl and helm failed; see $LOGDIR/tools-build.log"
  fi
  grep -E 'built in|cached|FAILED' "$LOGDIR/tools-build.log" || true
  if [ -x scripts/packaging-deps.sh ]; then ./scripts/packaging-deps.sh >"$LOGDIR/packaging-deps.log" 2>&1 || echo "packaging-deps.sh failed; see $LOGDIR/packaging-deps.log"; fi
  bun_suite packaging "$LOGDIR/packaging.log" --timeout 300000 test/packaging
fi

step "Cluster Autoscaler's own code (Go; CA's source from scripts/ca-source.sh): externalgrpc conformance of CA 1.36.1 and 1.34.1; CA 1.36.1's balancing, estimator and expanders over our templates"
AUTOSCALER_CLOUDSCALE_BIN="$ROOT/dist/autoscaler-cloudscale" ./scripts/test-ca.sh 2>&1 | tee "$LOGDIR/ca.log"
rc=${PIPESTATUS[0]}
count_go "$LOGDIR/ca.log" "CA conformance"
if [ "$rc" -ne 0 ] && ! grep -q -- '--- FAIL' "$LOGDIR/ca.log"; then fail_suite "CA conformance" "exit code $rc without a failing test (build or setup problem; see above)"; fi

step "end to end: the real Cluster Autoscaler loop (bun run test:e2e: etcd, kube-apiserver, scheduler, controller-manager, kwok, cluster-autoscaler 1.36.1 and 1.34.1, our binary, the simulator)"
AUTOSCALER_CLOUDSCALE_BIN="$ROOT/dist/autoscaler-cloudscale" ./scripts/test-e2e.sh 2>&1 | tee "$LOGDIR/e2e.log"
rc=${PIPESTATUS[0]}
count_go "$LOGDIR/e2e.log" "e2e"
if [ "$rc" -ne 0 ] && ! grep -q -- '--- FAIL' "$LOGDIR/e2e.log"; then fail_suite e2e "exit code $rc without a failing scenario (Go missing, a build failed or the run crashed; see above)"; fi

step "benchmark smoke run (bun run bench:smoke; figures are printed, not asserted)"
if AUTOSCALER_CLOUDSCALE_BIN="$ROOT/dist/autoscaler-cloudscale" ./scripts/bench.sh --smoke >"$LOGDIR/bench-smoke.log" 2>&1; then
  passed=$((passed + 1)); echo "bench smoke: ran"; tail -1 "$LOGDIR/bench-smoke.log"
else
  fail_suite "bench smoke" "$(tail -20 "$LOGDIR/bench-smoke.log")"
fi

step "done"
if [ ${#suites_failed[@]} -gt 0 ]; then echo "failed suites: ${suites_failed[*]}"; fi
# CI may show only the end of this output: name every failed test here, with the log that holds it.
for log in bun-test faults packaging ca e2e; do
  failing_tests "$LOGDIR/$log.log" | while IFS= read -r name; do echo "failed test ($LOGDIR/$log.log): $name"; done
done
echo "total time: $((SECONDS - t0))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
