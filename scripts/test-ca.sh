#!/usr/bin/env bash
# Runs Cluster Autoscaler's own externalgrpc client against the compiled binary:
#   test/ca         CA 1.36.1's cloudprovider/externalgrpc (current wire), mTLS and h2c
#   test/ca-legacy  CA 1.34.1's (pre-1.35 wire), mTLS and h2c
# Both compile CA's packages from ../shared/third_party (relative to the repo
# root) and the shared sequence in test/ca/conformance. Needs Go (1.26) and the
# Go module proxy; a missing `go` or CA tree fails, it never skips.
#
# Env: AUTOSCALER_CLOUDSCALE_BIN  the binary under test (default dist/autoscaler-cloudscale)
#      CA_TEST_RUN                optional -run pattern passed to go test
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "test-ca: FAILED: the Go toolchain (go) is not installed or not on PATH; the CA client harnesses (test/ca, test/ca-legacy) need Go >= 1.26" >&2
  echo "test-ca: 0 passed, 1 failed"
  exit 1
fi

bin=${AUTOSCALER_CLOUDSCALE_BIN:-dist/autoscaler-cloudscale}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "test-ca: FAILED: binary under test not found or not executable: $bin (build it with 'bun run build' or set AUTOSCALER_CLOUDSCALE_BIN)" >&2
  echo "test-ca: 0 passed, 1 failed"
  exit 1
fi
export AUTOSCALER_CLOUDSCALE_BIN="$bin"
for ver in 1.36.1 1.34.1; do
  if [ ! -f "$root/../shared/third_party/cluster-autoscaler-$ver/go.mod" ]; then
    echo "test-ca: FAILED: CA's source not found at $root/../shared/third_party/cluster-autoscaler-$ver (the test modules import it by relative path)" >&2
    echo "test-ca: 0 passed, 1 failed"
    exit 1
  fi
done
# Modules come from the Go module proxy; go.sum is committed, -mod=mod lets a
# cold machine fill in anything missing instead of failing.
export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local

echo "test-ca: $(go version); binary $bin"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for dir in test/ca test/ca-legacy; do
  echo "test-ca: === $dir"
  start=$(date +%s)
  # -tags externalgrpc as CA builds itself: 1.34.1's cloudprovider/builder
  # (imported by its config/flags, our source of CA's defaults) otherwise
  # wants every other provider, which the third_party trees leave out.
  args=(test -tags externalgrpc -count=1 -v -timeout 15m)
  if [ -n "${CA_TEST_RUN:-}" ]; then args+=(-run "$CA_TEST_RUN"); fi
  (cd "$dir" && go "${args[@]}" ./...) 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  echo "test-ca: $dir: go test exit $rc after $(( $(date +%s) - start ))s"
  [ "$rc" -eq 0 ] || status=1
done

passed=$(grep -cE '^\s*--- PASS:' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL:' "$log" || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a build or setup failure with no test result
fi
echo "test-ca: $passed passed, $failed failed"
exit "$status"
