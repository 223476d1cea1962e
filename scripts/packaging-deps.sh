#!/usr/bin/env bash
# Fetches what the packaging (scripts/release.sh) and its tests (test/packaging)
# need besides Bun, from Debian's package archive only, into .cache/packaging/:
#
#   .cache/packaging/libc6-amd64/   Debian 12's libc6 for amd64, extracted (dpkg-deb -x)
#   .cache/packaging/libc6-arm64/   the same for arm64
#   .cache/packaging/qemu/qemu-aarch64-static (on an x86_64 host) or
#   .cache/packaging/qemu/qemu-x86_64-static  (on an aarch64 host):
#                                   a static user-mode emulator, so the tests can
#                                   run the other architecture's binary in a chroot
#   .cache/packaging/base-debs/     the packages the container image's base stand-ins are
#                                   assembled from (scripts/image-build.sh): libc6 and base-files
#                                   for amd64 and arm64, ca-certificates, tzdata, netbase
#   .cache/packaging/deps.env       the package versions used
#
# It uses a private apt state under .cache/packaging/apt (its own package lists for
# amd64 and arm64), so it adds no architecture to the machine and installs nothing
# into it, except the few base tools below if they are missing.
#
#   scripts/packaging-deps.sh            # fetch once; later runs reuse the cache
#   scripts/packaging-deps.sh --refresh  # fetch the current versions again
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="$PWD/.cache/packaging"
REFRESH=0
[ "${1:-}" = "--refresh" ] && REFRESH=1

log() { echo "packaging-deps: $*" >&2; }

# Base tools the build and the proofs call. All are in Debian's base system; install
# any that a slimmer machine lacks.
need_pkgs=()
for t in unshare:util-linux chroot:coreutils mount:mount tar:tar gzip:gzip sha256sum:coreutils \
         dpkg-deb:dpkg apt-get:apt openssl:openssl; do
  cmd="${t%%:*}"; pkg="${t#*:}"
  command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing tools (${need_pkgs[*]}) and not root: install them first"; exit 1
  fi
  log "installing ${need_pkgs[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

case "$(uname -m)" in
  x86_64) EMU_ARCH=aarch64 ;;
  aarch64) EMU_ARCH=x86_64 ;;
  *) log "unsupported host architecture $(uname -m)"; exit 1 ;;
esac
EMULATOR="$CACHE/qemu/qemu-${EMU_ARCH}-static"

if [ "$REFRESH" = 0 ] && [ -f "$CACHE/deps.env" ] && [ -x "$EMULATOR" ] \
   && [ -f "$CACHE/libc6-amd64/lib/x86_64-linux-gnu/libc.so.6" ] \
   && [ -f "$CACHE/libc6-arm64/lib/aarch64-linux-gnu/libc.so.6" ] \
   && [ -f "$CACHE/base-debs/ok" ]; then
  exit 0
fi

APT_DIR="$CACHE/apt"
rm -rf "$APT_DIR" "$CACHE/debs" "$CACHE/base-debs"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$CACHE/debs" "$CACHE/base-debs"
# apt drops privileges to _apt for downloads; let it write there.
chown -R _apt:root "$APT_DIR" "$CACHE/debs" "$CACHE/base-debs" 2>/dev/null || true
APT=(apt-get -qq
  -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64"
  -o "Dir::State::Lists=$APT_DIR/lists" -o "Dir::Cache=$APT_DIR/cache")

log "updating private package lists (amd64, arm64)"
"${APT[@]}" update >/dev/null
(
  cd "$CACHE/debs"
  "${APT[@]}" download libc6:amd64 libc6:arm64 "qemu-user-static:$(dpkg --print-architecture)" >/dev/null 2>&1 \
    || "${APT[@]}" download libc6:amd64 libc6:arm64 "qemu-user-static:$(dpkg --print-architecture)"
)

# What the stand-ins for the image's two base images are made of (about 3.5 MB more).
BASE_PKGS=(libc6:amd64 libc6:arm64 base-files:amd64 base-files:arm64 ca-certificates tzdata netbase)
(
  cd "$CACHE/base-debs"
  "${APT[@]}" download "${BASE_PKGS[@]}" >/dev/null 2>&1 || "${APT[@]}" download "${BASE_PKGS[@]}"
)
chown -R root:root "$CACHE/base-debs"
: >"$CACHE/base-debs/ok"

for arch in amd64 arm64; do
  deb="$(ls "$CACHE"/debs/libc6_*_"$arch".deb)"
  rm -rf "$CACHE/libc6-$arch"
  dpkg-deb -x "$deb" "$CACHE/libc6-$arch"
done
rm -rf "$CACHE/qemu" "$CACHE/qemu-x"
dpkg-deb -x "$(ls "$CACHE"/debs/qemu-user-static_*.deb)" "$CACHE/qemu-x"
mkdir -p "$CACHE/qemu"
cp "$CACHE/qemu-x/usr/bin/qemu-${EMU_ARCH}-static" "$EMULATOR"
rm -rf "$CACHE/qemu-x"

{
  echo "LIBC6_AMD64=$(dpkg-deb -f "$(ls "$CACHE"/debs/libc6_*_amd64.deb)" Version)"
  echo "LIBC6_ARM64=$(dpkg-deb -f "$(ls "$CACHE"/debs/libc6_*_arm64.deb)" Version)"
  printf 'BASE_PACKAGES="%s"\n' "$(for f in "$CACHE"/base-debs/*.deb; do dpkg-deb --showformat='${Package}:${Architecture}=${Version} ' -W "$f"; done | sed 's/ $//')"
  echo "QEMU_USER_STATIC=$(dpkg-deb -f "$(ls "$CACHE"/debs/qemu-user-static_*.deb)" Version)"
  echo "EMULATOR=$EMULATOR"
} >"$CACHE/deps.env"
rm -rf "$CACHE/debs" "$APT_DIR"
log "$(tr '\n' ' ' <"$CACHE/deps.env")"
