#!/usr/bin/env bash
# Builds the upstream binaries the end-to-end suite (test/e2e) runs, each only if it is not in the
# cache yet, and prints how long each build took:
#   ./scripts/e2e-build.sh            build what is missing
#   ./scripts/e2e-build.sh --list     print the cached paths (name=path), build nothing
#   ./scripts/e2e-build.sh NAME...    build only these (names as --list prints them: helm kubectl ...)
#
# Cache: ~/.cache/autoscaler-cloudscale/e2e-bin/<name>-<version> (the user's cache, not the checkout:
# CI starts from a clean clone each time, and a cache inside it would never hit). A second run builds
# nothing. Beside each binary a
# .stamp file holds the Go version and a hash of the module files it was built from; a binary whose
# stamp differs (another Go, an edited tool module) is built again.
#   etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubectl, kwok: from the tool module
#     test/e2e/tools (versions from its go.mod, which carries CA 1.36.1's require and replace blocks;
#     kubectl gives `kubectl kustomize` and server-side apply to the packaging tests and the e2e suite)
#   helm: helm.sh/helm/v4 from its own small tool module test/e2e/tools/helm (it needs newer
#     k8s.io modules than CA pins, so it cannot share the module above)
#   crds: the CustomResourceDefinitions of the kinds deploy/ and the chart use (cert-manager's
#     Certificate, Issuer, ClusterIssuer; the Prometheus Operator's ServiceMonitor, PrometheusRule),
#     each project's own YAML from its Go module (deploy/crds, example/prometheus-operator-crd), in
#     one file, so the e2e suite checks those objects against their real schemas
#   cluster-autoscaler 1.36.1 and 1.34.1: `go build -tags externalgrpc` inside CA's source tree, as
#     scripts/ca-source.sh finds it (read-only is fine: only -o and the Go caches are written)
# Needs Go (>= 1.26) and the Go module proxy. A missing Go or a failed build exits non-zero.
#
# Env: E2E_BIN_DIR      cache directory (default ${XDG_CACHE_HOME:-~/.cache}/autoscaler-cloudscale/e2e-bin)
#      CA_SOURCE_DIR    CA's source trees (see scripts/ca-source.sh)
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root=$REPO_ROOT
cd "$root"

use_go e2e-build "the e2e suite" || exit 1
bin=${E2E_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/autoscaler-cloudscale/e2e-bin}
mkdir -p "$bin"

# Version of a required module in a tool module's go.mod.
modver() { awk -v m="$2" '$1 == m && NF >= 2 { print $2; exit }' "$1/go.mod"; }
tools=test/e2e/tools
k8s_ver=$(modver $tools k8s.io/kubernetes)
kwok_ver=$(modver $tools sigs.k8s.io/kwok)
etcd_ver=$(modver $tools go.etcd.io/etcd/server/v3)
helm_tools=$tools/helm
helm_ver=$(modver $helm_tools helm.sh/helm/v4)
ca_versions=(1.36.1 1.34.1)
certmanager_ver=v1.21.2
promop_ver=v0.85.0

# name=path of every binary the suite uses (what test/e2e reads from E2E_BIN_* variables).
list() {
  echo "etcd=$bin/etcd-$etcd_ver"
  for c in kube-apiserver kube-scheduler kube-controller-manager kubectl; do echo "$c=$bin/$c-$k8s_ver"; done
  echo "kwok=$bin/kwok-$kwok_ver"
  echo "kwok-stages=$bin/kwok-stages-$kwok_ver.yaml"
  for v in "${ca_versions[@]}"; do echo "cluster-autoscaler-$v=$bin/cluster-autoscaler-$v"; done
  echo "helm=$bin/helm-$helm_ver"
  echo "crds=$bin/crds-cert-manager-$certmanager_ver-prometheus-operator-$promop_ver.yaml"
}
if [ "${1:-}" = "--list" ]; then list; exit 0; fi

# Names given on the command line: build only those (all when none).
only=("$@")
for n in "${only[@]}"; do
  list | grep -q "^$n=" || { echo "e2e-build: unknown name $n (see --list)" >&2; exit 1; }
done
wanted() { # NAME
  [ ${#only[@]} -eq 0 ] && return 0
  local n
  for n in "${only[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

echo "e2e-build: $(go version); cache $bin"
status=0
t_all=$SECONDS
built=0

# CPU seconds (user + sys) of all finished children so far into $cpu, from the `times` builtin (run in
# this shell, not a subshell): contention on a shared machine inflates wall time, CPU time much less.
cpu_file=$(mktemp)
trap 'rm -f "$cpu_file"' EXIT
cpu=0
child_cpu() {
  times >"$cpu_file"
  cpu=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } } END { printf "%.0f", s }' "$cpu_file")
}

# stamp DIR: what a binary built in module DIR depends on besides its version.
stamp() { echo "$(go version) $(cat "$1/go.mod" "$1/go.sum" 2>/dev/null | sha256sum | cut -c1-16)"; }

# build NAME OUT DIR PKG [FLAGS...]: runs `go build FLAGS -o tmp PKG` in DIR unless OUT exists with
# the same stamp. No -trimpath, so compiled packages are shared with the other Go suites through the
# build cache (test/ca imports CA's packages at the same versions).
build() {
  local name=$1 out=$2 dir=$3 pkg=$4; shift 4
  local want; want=$(stamp "$dir")
  if [ -x "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$want" ]; then echo "e2e-build: $name: cached ($out)"; return 0; fi
  local t=$SECONDS c0 tmp="$out.tmp.$$"
  child_cpu
  c0=$cpu
  echo "e2e-build: $name: building in $dir ..."
  if (cd "$dir" && go build "$@" -o "$tmp" "$pkg"); then
    mv -f "$tmp" "$out"
    echo "$want" >"$out.stamp"
    built=$((built + 1))
    child_cpu
    echo "e2e-build: $name: built in $((SECONDS - t))s (CPU $((cpu - c0))s) -> $out"
  else
    rm -f "$tmp"
    echo "e2e-build: $name: FAILED after $((SECONDS - t))s" >&2
    status=1
  fi
}

# Tool modules: go.sum is committed; -mod=mod lets a cold machine fetch what is missing.
k8s_major=$(echo "${k8s_ver#v}" | cut -d. -f1)
k8s_minor=$(echo "${k8s_ver#v}" | cut -d. -f2)
kv=k8s.io/component-base/version
k8s_ldflags="-s -w -X $kv.gitVersion=$k8s_ver -X $kv.gitMajor=$k8s_major -X $kv.gitMinor=$k8s_minor -X $kv.gitTreeState=clean"
wanted etcd && GOFLAGS="-mod=mod -buildvcs=false" build "etcd $etcd_ver" "$bin/etcd-$etcd_ver" $tools go.etcd.io/etcd/server/v3 -ldflags "-s -w"
for c in kube-apiserver kube-scheduler kube-controller-manager kubectl; do
  wanted $c && GOFLAGS="-mod=mod -buildvcs=false" build "$c $k8s_ver" "$bin/$c-$k8s_ver" $tools "k8s.io/kubernetes/cmd/$c" -ldflags "$k8s_ldflags"
done
wanted kwok && GOFLAGS="-mod=mod -buildvcs=false" build "kwok $kwok_ver" "$bin/kwok-$kwok_ver" $tools sigs.k8s.io/kwok/cmd/kwok -ldflags "-s -w"
# helm reports the version it was built as (its Makefile sets the same variable).
wanted helm && GOFLAGS="-mod=mod -buildvcs=false" build "helm $helm_ver" "$bin/helm-$helm_ver" $helm_tools helm.sh/helm/v4/cmd/helm \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_ver"

# kwok needs stages (without --config it exits with "no stages found"): the module's own fast node
# initialisation, heartbeat (kwok renews node leases itself) and pod ready/complete/delete stages, in one multi-document file.
stages="$bin/kwok-stages-$kwok_ver.yaml"
if ! wanted kwok-stages; then
  :
elif [ ! -s "$stages" ]; then
  if kdir=$(cd $tools && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok) && [ -d "$kdir/kustomize/stage" ]; then
    {
      for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        echo "---"; cat "$kdir/kustomize/stage/$f"
      done
    } >"$stages.tmp" && mv -f "$stages.tmp" "$stages" && echo "e2e-build: kwok stages -> $stages"
  else
    echo "e2e-build: kwok stages: FAILED: sigs.k8s.io/kwok $kwok_ver not found in the module cache" >&2
    status=1
  fi
else
  echo "e2e-build: kwok stages: cached ($stages)"
fi

# CRDs from the projects' Go modules (downloaded outside any module: no module graph to load).
crds="$bin/crds-cert-manager-$certmanager_ver-prometheus-operator-$promop_ver.yaml"
moddir() { (d=$(mktemp -d) && cd "$d" && GOFLAGS= GOWORK=off go mod download -json "$1" | awk -F'"' '$2 == "Dir" { print $4 }'; rm -rf "$d"); }
if ! wanted crds; then
  :
elif [ -s "$crds" ]; then
  echo "e2e-build: crds: cached ($crds)"
else
  t=$SECONDS
  cm=$(moddir github.com/cert-manager/cert-manager@$certmanager_ver)
  po=$(moddir github.com/prometheus-operator/prometheus-operator@$promop_ver)
  files=("$cm"/deploy/crds/cert-manager.io_{certificates,issuers,clusterissuers}.yaml "$po"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml)
  if [ -n "$cm" ] && [ -n "$po" ] && ls "${files[@]}" >/dev/null; then
    for f in "${files[@]}"; do echo "---"; grep -v '^---$' "$f"; done >"$crds.tmp" && mv -f "$crds.tmp" "$crds"
    echo "e2e-build: crds: cert-manager $certmanager_ver, prometheus-operator $promop_ver in $((SECONDS - t))s -> $crds"
  else
    echo "e2e-build: crds: FAILED: CRD files not found in the modules ($cm, $po)" >&2
    status=1
  fi
fi

# The real cluster-autoscaler: CA is its own main module there, so its replace lines apply.
# shellcheck source=scripts/ca-source.sh
source "$root/scripts/ca-source.sh"
ca_wanted=()
for v in "${ca_versions[@]}"; do wanted "cluster-autoscaler-$v" && ca_wanted+=("$v"); done
if [ ${#ca_wanted[@]} -gt 0 ]; then ca_source "${ca_wanted[@]}" || status=1; fi
for v in "${ca_wanted[@]}"; do
  src=$(cd "$root/.cache/ca-src/cluster-autoscaler-$v" 2>/dev/null && pwd -P)
  if [ ! -f "$src/go.mod" ]; then
    echo "e2e-build: cluster-autoscaler $v: FAILED: source tree not found at $src" >&2
    status=1
    continue
  fi
  GOFLAGS="-mod=readonly -buildvcs=false" build "cluster-autoscaler $v" "$bin/cluster-autoscaler-$v" "$src" . -tags externalgrpc -ldflags "-s -w"
done

child_cpu
echo "e2e-build: $built built, total $((SECONDS - t_all))s (CPU ${cpu}s)"
[ "$status" -eq 0 ] || { echo "e2e-build: FAILED" >&2; exit 1; }
