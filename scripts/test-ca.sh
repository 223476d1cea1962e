#!/usr/bin/env bash
# Runs the Go test modules that drive Cluster Autoscaler's own code (found by scripts/ca-source.sh:
# $CA_SOURCE_DIR, else ../shared/third_party, else downloaded into the user's cache; built with
# -tags externalgrpc as CA builds itself) against the compiled binary:
#   ./scripts/test-ca.sh [MODULE_DIR...]
#   test/ca            CA 1.36.1's cloudprovider/externalgrpc (current wire), mTLS and h2c
#   test/ca-legacy     CA 1.34.1's (pre-1.35 wire), mTLS and h2c
#   test/nodegroupset  CA 1.36.1's balancing (processors/nodegroupset), binpacking estimator and
#                      expanders over the templates and prices the binary serves
# (default: all three). Needs Go (1.26) and the Go module proxy; a missing `go`, binary or CA
# tree fails, it never skips. The last line is "N passed, N failed" (go test's --- PASS /
# --- FAIL lines, subtests included); a build failure with no test result counts as failed.
#
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default dist/autoscaler-cloudscale)
#      CA_TEST_RUN                optional -run pattern passed to go test
#      CA_SOURCE_DIR              CA's source trees (see scripts/ca-source.sh)
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$REPO_ROOT
cd "$root"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(test/ca test/ca-legacy test/nodegroupset)

fail() {
  echo "test-ca: FAILED: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}
use_go test-ca "${modules[*]}" || { echo "0 passed, 1 failed"; exit 1; }
bin=${AUTOSCALER_CLOUDSCALE_BIN:-dist/autoscaler-cloudscale}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
[ -x "$bin" ] || fail "binary under test not found or not executable: $bin (build it with 'bun run build' or set AUTOSCALER_CLOUDSCALE_BIN)"
# shellcheck source=scripts/ca-source.sh
source "$root/scripts/ca-source.sh"
ca_source 1.36.1 1.34.1 || fail "Cluster Autoscaler's source not found (see above); the test modules import it through .cache/ca-src"
export AUTOSCALER_CLOUDSCALE_BIN="$bin"
# The trees keep only the externalgrpc cloud provider: CA 1.34.1's cloudprovider/builder (which
# its config/flags, our source of CA's defaults, imports) wants every other provider without the
# tag. go.sum is committed; -mod=mod lets a cold machine fill in anything missing from the proxy.
export GOFLAGS="-mod=mod -buildvcs=false -tags=externalgrpc"

echo "test-ca: $(go version); binary $bin"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for dir in "${modules[@]}"; do
  echo "test-ca: === $dir"
  start=$(date +%s)
  args=(test -count=1 -v -timeout 20m)
  if [ -n "${CA_TEST_RUN:-}" ]; then args+=(-run "$CA_TEST_RUN"); fi
  # CA's packages log through klog to stderr; keep only the tests' own lines.
  (cd "$dir" && go "${args[@]}" ./... 2>&1) | grep -Ev '^[IWE][0-9]{4} ' | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "test-ca: $dir: go test exit $rc after $(($(date +%s) - start))s"
  [ "$rc" -eq 0 ] || status=1
done

read -r passed failed < <(go_counts "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a build or setup failure with no test result
fi
echo "$passed passed, $failed failed"
exit "$status"
