#!/usr/bin/env bash
# Builds the container image from Containerfile with podman, on a machine that reaches no
# container registry: the two base images the Containerfile names are replaced, through its
# build arguments, by stand-ins assembled here from Debian 12's own packages. The Containerfile
# itself is used unchanged (its defaults stay the real bases for docker buildx).
#
#   scripts/image-build.sh [--arch amd64|arm64|all] [--x64-bin FILE] [--arm64-bin FILE] [--tag NAME]
#   scripts/image-build.sh --env      print the environment podman needs here (eval it), build nothing
#   scripts/image-build.sh --remove [--tag NAME]   remove the image, its per-arch images, the stand-ins
#                                                   and the untagged layers builds left (podman image prune)
#
# Defaults: --arch all, binaries dist/autoscaler-cloudscale-linux-{x64,arm64} (scripts/release.sh),
# --tag localhost/autoscaler-cloudscale:dev. Per arch it builds NAME-amd64 / NAME-arm64
# (`podman build --platform linux/ARCH`; the stages that differ per arch only COPY, so the arm64
# image needs no emulator), then the multi-arch index NAME holding both, as
# `docker buildx build --platform linux/amd64,linux/arm64` makes it. The last line names the images.
#
# The stand-ins (from the packages scripts/packaging-deps.sh fetches into .cache/packaging/base-debs):
#   localhost/autoscaler-cloudscale-standin/debian:12-slim-ARCH  for DEBIAN_IMAGE: base-files and
#       libc6 of ARCH with /bin, /sbin and /lib* merged into /usr as in Debian 12's images, so the
#       Containerfile's COPY --from=debian follows the same symlinks it meets in debian:12-slim
#   localhost/autoscaler-cloudscale-standin/distroless:nonroot-ARCH  for DISTROLESS_IMAGE, built as
#       distroless builds base-nossl-debian12:nonroot: base-files, netbase, tzdata and libc6 of ARCH,
#       the CA bundle made from ca-certificates, /etc/passwd and /etc/group with root, nobody and
#       nonroot (65532) whose shell /sbin/nologin does not exist, /tmp (1777), /home/nonroot (0700,
#       65532), nsswitch.conf; config USER 65532, WORKDIR /home/nonroot, PATH and SSL_CERT_FILE.
#       No shell, no package manager.
#
# podman runs on this kind of machine only with runc, cgroupfs and no default ulimits (crun, its
# default runtime, fails in cgroup hybrid mode). This script writes that containers.conf to
# .cache/podman/containers.conf and uses it through CONTAINERS_CONF; `--env` prints the export for
# other callers (after installing what is missing). Podman, runc and systemd come from Debian (apt-get) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

ARCHES=(amd64 arm64)
X64_BIN=dist/autoscaler-cloudscale-linux-x64
ARM64_BIN=dist/autoscaler-cloudscale-linux-arm64
TAG=localhost/autoscaler-cloudscale:dev
MODE=build
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) case "$2" in all) ARCHES=(amd64 arm64) ;; amd64 | arm64) ARCHES=("$2") ;; *) echo "image-build: --arch amd64|arm64|all" >&2; exit 2 ;; esac; shift 2 ;;
    --x64-bin) X64_BIN=$2; shift 2 ;;
    --arm64-bin) ARM64_BIN=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --env) MODE=env; shift ;;
    --remove) MODE=remove; shift ;;
    *) echo "image-build: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { echo "image-build: $*" >&2; }
STANDIN=localhost/autoscaler-cloudscale-standin
CONF_DIR="$ROOT/.cache/podman"
mkdir -p "$CONF_DIR"
cat >"$CONF_DIR/containers.conf" <<'EOF'
# podman on this kind of machine: crun fails in hybrid cgroup
# mode, podman's default ulimits cannot be set here.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF="$CONF_DIR/containers.conf"
if [ "$MODE" = env ]; then echo "export CONTAINERS_CONF=$CONTAINERS_CONF"; exit 0; fi

# podman and runc for the image (catatonit for kube play); systemd for the proof of the unit (test/packaging/systemd.test.ts
# boots it in a container), when this machine lacks it.
pkgs=()
command -v podman >/dev/null 2>&1 || pkgs+=(podman)
command -v runc >/dev/null 2>&1 || pkgs+=(runc)
# The pods of `podman kube play` start with an infra container that runs catatonit.
command -v catatonit >/dev/null 2>&1 || pkgs+=(catatonit)
[ -x /lib/systemd/systemd ] && command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
if [ ${#pkgs[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "${pkgs[*]} missing and this is not root: apt-get install ${pkgs[*]}"; exit 1; }
  log "installing ${pkgs[*]} (apt-get)"
  t=$SECONDS
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}") >/dev/null
  log "installed ${pkgs[*]} in $((SECONDS - t))s: $(podman --version), runc $(runc --version | awk 'NR == 1 { print $3 }')"
fi

if [ "$MODE" = remove ]; then
  podman manifest rm "$TAG" >/dev/null 2>&1 || true
  for a in amd64 arm64; do
    podman rmi -f "$TAG-$a" "$STANDIN/debian:12-slim-$a" "$STANDIN/distroless:nonroot-$a" >/dev/null 2>&1 || true
  done
  # The build's cached intermediate layers, now untagged.
  podman image prune -f >/dev/null 2>&1 || true
  exit 0
fi

./scripts/packaging-deps.sh >&2
DEBS="$ROOT/.cache/packaging/base-debs"
deb() { ls "$DEBS"/"$1"_*_"$2".deb; }
WORK=$(mktemp -d "$ROOT/.cache/podman/build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# /bin, /sbin and /lib* become symlinks into /usr, as in Debian 12's images (merged /usr).
merge_usr() {
  local root=$1 d
  for d in bin sbin lib lib64; do
    [ -e "$root/$d" ] || [ -e "$root/usr/$d" ] || continue
    mkdir -p "$root/usr/$d"
    if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
    fi
    ln -sfn "usr/$d" "$root/$d"
  done
}

# import DIR TAG ARCH CHANGE...: the directory as a one-layer image, owned as on disk.
import_root() {
  local dir=$1 tag=$2 arch=$3; shift 3
  local changes=()
  for c in "$@"; do changes+=(--change "$c"); done
  tar -C "$dir" --numeric-owner --sort=name --mtime=@0 -cf "$dir.tar" .
  podman import -q --os linux --arch "$arch" "${changes[@]}" "$dir.tar" "$tag" >/dev/null
  rm -f "$dir.tar"
}

standin_debian() {
  local a=$1 r="$WORK/debian-$1"
  mkdir -p "$r"
  dpkg-deb -x "$(deb base-files "$a")" "$r"
  dpkg-deb -x "$(deb libc6 "$a")" "$r"
  merge_usr "$r"
  printf 'root:x:0:0:root:/root:/bin/bash\n' >"$r/etc/passwd"
  printf 'root:x:0:\n' >"$r/etc/group"
  import_root "$r" "$STANDIN/debian:12-slim-$a" "$a" \
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

standin_distroless() {
  local a=$1 r="$WORK/distroless-$1" ca="$WORK/ca-certificates"
  mkdir -p "$r"
  for p in base-files:"$a" netbase:all tzdata:all libc6:"$a"; do dpkg-deb -x "$(deb "${p%%:*}" "${p#*:}")" "$r"; done
  # The CA bundle, as update-ca-certificates would write it, from the package's certificates.
  rm -rf "$ca" && dpkg-deb -x "$(deb ca-certificates all)" "$ca"
  mkdir -p "$r/etc/ssl/certs" "$r/usr/share/doc/ca-certificates"
  find "$ca/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$r/etc/ssl/certs/ca-certificates.crt"
  cp "$ca/usr/share/doc/ca-certificates/copyright" "$r/usr/share/doc/ca-certificates/"
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\n' >"$r/etc/nsswitch.conf"
  install -d -m 1777 "$r/tmp"
  install -d -m 0700 "$r/root"
  install -d -m 0700 -o 65532 -g 65532 "$r/home/nonroot"
  import_root "$r" "$STANDIN/distroless:nonroot-$a" "$a" \
    "USER 65532" "WORKDIR /home/nonroot" \
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
}

# The build context: only what Containerfile.dockerignore lets in, the release binaries.
CTX="$WORK/context"
mkdir -p "$CTX/dist"
t_all=$SECONDS
for a in "${ARCHES[@]}"; do
  case $a in amd64) bin=$X64_BIN; name=x64 ;; arm64) bin=$ARM64_BIN; name=arm64 ;; esac
  [ -f "$bin" ] || { log "no $a binary at $bin (scripts/release.sh builds dist/autoscaler-cloudscale-linux-$name)"; exit 1; }
  ln "$bin" "$CTX/dist/autoscaler-cloudscale-linux-$name" 2>/dev/null || cp "$bin" "$CTX/dist/autoscaler-cloudscale-linux-$name"
done

podman manifest rm "$TAG" >/dev/null 2>&1 || true
podman manifest create "$TAG" >/dev/null
for a in "${ARCHES[@]}"; do
  t=$SECONDS
  standin_debian "$a"
  standin_distroless "$a"
  log "$a: stand-ins built in $((SECONDS - t))s"
  t=$SECONDS
  podman build -q --platform "linux/$a" --pull=never \
    -f Containerfile --ignorefile Containerfile.dockerignore \
    --build-arg "DEBIAN_IMAGE=$STANDIN/debian:12-slim-$a" \
    --build-arg "DISTROLESS_IMAGE=$STANDIN/distroless:nonroot-$a" \
    -t "$TAG-$a" "$CTX" >/dev/null
  podman manifest add "$TAG" "containers-storage:$TAG-$a" >/dev/null
  log "$a: $TAG-$a built in $((SECONDS - t))s ($(podman image inspect --format '{{.Size}}' "$TAG-$a" | awk '{ printf "%.1f MiB", $1 / 1048576 }'))"
done
log "total $((SECONDS - t_all))s; $(podman --version), runc $(runc --version | awk 'NR == 1 { print $3 }')"
echo "$TAG ${ARCHES[*]/#/$TAG-}"
