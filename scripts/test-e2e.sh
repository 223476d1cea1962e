#!/usr/bin/env bash
# The end-to-end suite: the real Cluster Autoscaler loop on one machine.
# etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok, the real cluster-autoscaler
# (1.36.1; 1.34.1 for the legacy scenario), our binary over mutual TLS and the simulator, all on
# 127.0.0.1, started and stopped by test/e2e (Go).
#
#   ./scripts/test-e2e.sh                      build what is missing (~/.cache/autoscaler-cloudscale/e2e-bin), run every scenario
#   E2E_RUN='Scenario(1|4)' ./scripts/test-e2e.sh   only some scenarios (a go test -run pattern)
#   E2E_TAGS=cascale E2E_RUN=TestCAScale ./scripts/test-e2e.sh   the CA-at-scale benchmark (scripts/bench.sh --ca-scale)
#
# The last line is "N passed, N failed" (Go's --- PASS / --- FAIL lines). A missing Go, a failed
# build or a crashed run counts as failed, never as skipped.
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default dist/autoscaler-cloudscale; built if missing)
#      E2E_TIMEOUT                go test -timeout (default 35m)
#      E2E_TAGS                   go build tags (cascale: also compile test/e2e/cascale_test.go)
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$REPO_ROOT
cd "$root"
t0=$SECONDS

finish() { # passed failed
  echo "e2e: total $((SECONDS - t0))s"
  echo "$1 passed, $2 failed"
  [ "$2" -eq 0 ]
  exit $?
}

use_go e2e "the e2e suite" || finish 0 1

bin=${AUTOSCALER_CLOUDSCALE_BIN:-dist/autoscaler-cloudscale}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "e2e: $bin missing; building it"
  if ! (use_bun && bun run build); then
    echo "e2e: FAILED: could not build $bin" >&2
    finish 0 1
  fi
fi
export AUTOSCALER_CLOUDSCALE_BIN="$bin"

run_dir="$root/.cache/e2e-run/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run_dir"
# Keep the logs of the last five runs.
ls -1dt "$root"/.cache/e2e-run/*/ 2>/dev/null | tail -n +6 | xargs -r rm -rf
export E2E_RUN_DIR="$run_dir" E2E_PID_FILE="$run_dir/pids"

export E2E_BIN_DIR=${E2E_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/autoscaler-cloudscale/e2e-bin}
echo "e2e: === building upstream binaries (cached in $E2E_BIN_DIR)"
tb=$SECONDS
if ! ./scripts/e2e-build.sh 2>&1 | tee "$run_dir/build.log"; then
  echo "e2e: FAILED: building the upstream binaries failed (see above; log $run_dir/build.log)" >&2
  finish 0 1
fi
echo "e2e: build step took $((SECONDS - tb))s"

# Kills whatever a run left behind: only pids it recorded whose command line is still one of ours.
kill_leftovers() {
  [ -f "$E2E_PID_FILE" ] || return 0
  local pid name cmd n=0
  while read -r pid name; do
    [ -r "/proc/$pid/cmdline" ] || continue
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
    case "$cmd" in
      *"$E2E_BIN_DIR/"* | *"$bin"*) kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null; n=$((n + 1)); echo "e2e: killed leftover $name (pid $pid)" ;;
    esac
  done <"$E2E_PID_FILE"
  return 0
}
trap kill_leftovers EXIT

# The CA-at-scale benchmark (build tag cascale) is not run here, but it must keep compiling.
if [ "${E2E_TAGS:-}" != cascale ] && ! (cd test/e2e && GOFLAGS="-mod=mod -buildvcs=false" go vet -tags cascale .); then
  echo "e2e: FAILED: test/e2e with the cascale tag (the CA-at-scale benchmark) does not build" >&2
  finish 0 1
fi

echo "e2e: === scenarios (logs in $run_dir)"
tt=$SECONDS
log="$run_dir/go-test.log"
(cd test/e2e && GOFLAGS="-mod=mod -buildvcs=false" go test -count=1 -v -tags "${E2E_TAGS:-}" -timeout "${E2E_TIMEOUT:-35m}" -run "${E2E_RUN:-.}" .) 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "e2e: go test exit $rc after $((SECONDS - tt))s"
kill_leftovers

read -r passed failed < <(go_counts "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "e2e: FAILED: go test exited $rc without a failing test (build, set-up or timeout; see above)" >&2
  failed=1
fi
finish "$passed" "$failed"
