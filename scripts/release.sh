#!/usr/bin/env bash
# Builds every release artifact into dist/:
#   dist/autoscaler-cloudscale-linux-x64                  Bun-compiled binary (glibc, x86_64)
#   dist/autoscaler-cloudscale-linux-arm64                Bun-compiled binary (glibc, aarch64)
#   dist/autoscaler-cloudscale-talos-extension-x64.tar    Talos system extension, OCI layout tarball (linux/amd64)
#   dist/autoscaler-cloudscale-talos-extension-arm64.tar  the same for linux/arm64
#   dist/autoscaler-cloudscale-talos-extension.tar        both platforms in one OCI layout (multi-arch)
#   dist/SHA256SUMS                                       sha256sum of all of the above
# The distroless image is built from the two binaries with Containerfile (needs a
# container engine; see docs/operating.md).
#
# Needs: npm (Bun comes from the npm registry through scripts/bootstrap.sh) and
# Debian's package archive (glibc files for the extension, scripts/packaging-deps.sh).
# Bun binaries are never stripped: strip removes the embedded program.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

use_bun
./scripts/packaging-deps.sh

VERSION="$(bun -e 'console.log((await Bun.file("package.json").json()).version)')"
mkdir -p dist
rm -f dist/autoscaler-cloudscale-linux-x64 dist/autoscaler-cloudscale-linux-arm64 \
      dist/autoscaler-cloudscale-talos-extension*.tar dist/SHA256SUMS

for arch in x64 arm64; do
  bun run scripts/build.ts --target "bun-linux-$arch" --outfile "dist/autoscaler-cloudscale-linux-$arch"
done

bun packaging/talos/build-extension.ts --version "$VERSION" --out-dir dist \
  --arch x64=dist/autoscaler-cloudscale-linux-x64 \
  --arch arm64=dist/autoscaler-cloudscale-linux-arm64

(
  cd dist
  sha256sum autoscaler-cloudscale-linux-x64 autoscaler-cloudscale-linux-arm64 \
    autoscaler-cloudscale-talos-extension-x64.tar autoscaler-cloudscale-talos-extension-arm64.tar \
    autoscaler-cloudscale-talos-extension.tar >SHA256SUMS
)

# Report: size of every artifact and how long `version` takes to start and exit
# (arm64 through the user-mode emulator, so only indicative).
# shellcheck disable=SC1091
. .cache/packaging/deps.env
now_ms() { date +%s%3N; }
time_version() {
  local t0 out
  t0=$(now_ms)
  out="$("$@" version)"
  echo "$(( $(now_ms) - t0 )) ms  ($out)"
}
echo "release: version $VERSION" >&2
for f in autoscaler-cloudscale-linux-x64 autoscaler-cloudscale-linux-arm64 \
         autoscaler-cloudscale-talos-extension-x64.tar autoscaler-cloudscale-talos-extension-arm64.tar \
         autoscaler-cloudscale-talos-extension.tar; do
  printf 'release: %-48s %10d bytes (%s MiB)\n' "$f" "$(stat -c %s "dist/$f")" \
    "$(awk -v s="$(stat -c %s "dist/$f")" 'BEGIN { printf "%.1f", s / 1048576 }')" >&2
done
case "$(uname -m)" in
  x86_64)
    echo "release: start x64:   $(time_version dist/autoscaler-cloudscale-linux-x64)" >&2
    echo "release: start arm64: $(time_version "$EMULATOR" -L .cache/packaging/libc6-arm64 dist/autoscaler-cloudscale-linux-arm64) under qemu" >&2
    ;;
  aarch64)
    echo "release: start arm64: $(time_version dist/autoscaler-cloudscale-linux-arm64)" >&2
    ;;
esac
echo "release: checksums in dist/SHA256SUMS" >&2
