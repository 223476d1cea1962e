#!/usr/bin/env bash
# Runs Go test modules that drive Cluster Autoscaler's own packages (from the CA 1.36.1 tree in
# ../shared/third_party, built with -tags externalgrpc) against the compiled binary:
#   ./scripts/test-go-units.sh [MODULE_DIR...]      (default: test/nodegroupset)
#   test/nodegroupset  --balance-similar-node-groups on expanded groups (processors/nodegroupset),
#                      a scale-up across them (estimator, expander/waste|price|leastnodes), GPU answers
# Needs Go (1.26) and the Go module proxy; a missing `go` fails, it never skips.
# The last line is "N passed, N failed" (go test's --- PASS / --- FAIL lines, subtests included).
#
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default dist/autoscaler-cloudscale)
#      GO_TEST_RUN                optional -run pattern passed to go test
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(test/nodegroupset)

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "test-go-units: FAILED: the Go toolchain (go) is not installed or not on PATH; ${modules[*]} need Go >= 1.26" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
bin=${AUTOSCALER_CLOUDSCALE_BIN:-dist/autoscaler-cloudscale}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "test-go-units: FAILED: binary under test not found or not executable: $bin (build it with 'bun run build' or set AUTOSCALER_CLOUDSCALE_BIN)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -d ../shared/third_party/cluster-autoscaler-1.36.1 ]; then
  echo "test-go-units: FAILED: CA's source is not at ../shared/third_party/cluster-autoscaler-1.36.1 (see the developers' guide)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
export AUTOSCALER_CLOUDSCALE_BIN="$bin"
# CA's tree keeps only the externalgrpc cloud provider: build with its tag. go.sum is
# committed; -mod=mod lets a cold machine fill in anything missing from the module proxy.
export GOFLAGS="-mod=mod -buildvcs=false -tags=externalgrpc"
export GOTOOLCHAIN=local

echo "test-go-units: $(go version); binary $bin"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for dir in "${modules[@]}"; do
  echo "test-go-units: === $dir"
  start=$(date +%s)
  args=(test -count=1 -v -timeout 20m)
  if [ -n "${GO_TEST_RUN:-}" ]; then args+=(-run "$GO_TEST_RUN"); fi
  # CA's packages log through klog to stderr; keep only the test's own lines.
  (cd "$dir" && go "${args[@]}" ./... 2>&1) | grep -Ev '^[IWE][0-9]{4} ' | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "test-go-units: $dir: go test exit $rc after $(($(date +%s) - start))s"
  [ "$rc" -eq 0 ] || status=1
done

passed=$(grep -cE '^\s*--- PASS:' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL:' "$log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a build or setup failure with no test result
fi
echo "$passed passed, $failed failed"
exit "$status"
