#!/usr/bin/env bash
# Finds the Cluster Autoscaler's source for the Go modules that build or import it (test/ca,
# test/ca-legacy, test/nodegroupset, bench/, and scripts/e2e-build.sh), and points the repo's
# links at it:
#   .cache/ca-src/cluster-autoscaler-<v>  ->  the tree found
# The go.mod files replace k8s.io/autoscaler/cluster-autoscaler by a relative path to those links,
# so the same go.mod works in a clone anywhere.
#
# Where the trees come from, in this order (the first that has every version wins):
#   1. $CA_SOURCE_DIR: a directory holding cluster-autoscaler-<v>/ for each version (the layout of
#      ../shared/third_party), or, for one version only, that tree itself;
#   2. ../shared/third_party, beside the repo (the layout of this project's machines);
#   3. a download of the release tag from kubernetes/autoscaler into the user's cache
#      (${XDG_CACHE_HOME:-~/.cache}/autoscaler-cloudscale/ca-src/cluster-autoscaler-<v>), once;
#      CA_SOURCE_URL overrides the address, with {version} standing for the version (a file://
#      or http:// URL of a tarball laid out as GitHub's tag archives are).
# It says which one it used. The module proxy cannot serve CA (it refuses every version of
# k8s.io/autoscaler/cluster-autoscaler), hence the download.
#
#   source scripts/ca-source.sh && ca_source 1.36.1 1.34.1   # sets CA_SOURCE_ROOT, or returns 1
#   ./scripts/ca-source.sh [VERSION...]                        # the same from the command line
# The default versions are the ones the test modules use.

CA_SOURCE_VERSIONS=(1.36.1 1.34.1)
CA_SOURCE_DEFAULT_URL="https://github.com/kubernetes/autoscaler/archive/refs/tags/cluster-autoscaler-{version}.tar.gz"

# True when DIR looks like CA's own module at the root of a source tree.
_ca_tree_ok() {
  [ -f "$1/go.mod" ] && grep -q '^module k8s.io/autoscaler/cluster-autoscaler$' "$1/go.mod" &&
    [ -d "$1/cloudprovider/externalgrpc" ]
}

# The tree of version V under directory D ($CA_SOURCE_DIR's two accepted layouts), or nothing.
_ca_tree_in() { # D V
  if _ca_tree_ok "$1/cluster-autoscaler-$2"; then
    (cd "$1/cluster-autoscaler-$2" && pwd)
  elif _ca_tree_ok "$1" && [ -f "$1/version/version.go" ] && grep -q "\"$2\"" "$1/version/version.go"; then
    (cd "$1" && pwd)
  fi
}

# Downloads version V into the cache (unless it is there) and prints the tree's path.
_ca_fetch() { # V
  local v=$1 cache url tmp top
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/autoscaler-cloudscale/ca-src"
  if _ca_tree_ok "$cache/cluster-autoscaler-$v"; then
    echo "$cache/cluster-autoscaler-$v"
    return 0
  fi
  url=${CA_SOURCE_URL:-$CA_SOURCE_DEFAULT_URL}
  url=${url//\{version\}/$v}
  command -v curl >/dev/null 2>&1 || { echo "ca-source: curl is needed to download $url" >&2; return 1; }
  mkdir -p "$cache" || return 1
  tmp=$(mktemp -d "$cache/.fetch-$v.XXXXXX") || return 1
  echo "ca-source: downloading Cluster Autoscaler $v from $url" >&2
  if ! curl -fsSL --retry 3 -o "$tmp/src.tar.gz" "$url"; then
    echo "ca-source: download failed: $url" >&2
    rm -rf "$tmp"
    return 1
  fi
  # GitHub's tag archives hold the whole repository under one top folder; keep its
  # cluster-autoscaler/ folder only.
  top=$(tar -tzf "$tmp/src.tar.gz" 2>/dev/null | head -1 | cut -d/ -f1)
  if [ -z "$top" ] || ! tar -xzf "$tmp/src.tar.gz" -C "$tmp" "$top/cluster-autoscaler" 2>/dev/null; then
    echo "ca-source: $url is not a tarball with $top/cluster-autoscaler/ in it" >&2
    rm -rf "$tmp"
    return 1
  fi
  if ! _ca_tree_ok "$tmp/$top/cluster-autoscaler"; then
    echo "ca-source: $url holds no Cluster Autoscaler module (go.mod of k8s.io/autoscaler/cluster-autoscaler with cloudprovider/externalgrpc)" >&2
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "${cache:?}/cluster-autoscaler-$v"
  mv "$tmp/$top/cluster-autoscaler" "$cache/cluster-autoscaler-$v" && rm -rf "$tmp" || return 1
  echo "ca-source: Cluster Autoscaler $v unpacked into $cache/cluster-autoscaler-$v" >&2
  echo "$cache/cluster-autoscaler-$v"
}

# ca_source [VERSION...]: resolves every version, links .cache/ca-src/cluster-autoscaler-<v> to
# it, sets CA_SOURCE_ROOT (the links' directory) and prints one line per version saying where
# it came from. Returns 1 (saying why) when a version cannot be found.
ca_source() {
  local root versions v tree from links shared
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  versions=("$@")
  [ ${#versions[@]} -gt 0 ] || versions=("${CA_SOURCE_VERSIONS[@]}")
  links="$root/.cache/ca-src"
  shared="$root/../shared/third_party"
  mkdir -p "$links" || return 1
  for v in "${versions[@]}"; do
    tree="" from=""
    if [ -n "${CA_SOURCE_DIR:-}" ]; then
      tree=$(_ca_tree_in "$CA_SOURCE_DIR" "$v")
      if [ -z "$tree" ]; then
        echo "ca-source: CA_SOURCE_DIR=$CA_SOURCE_DIR holds no Cluster Autoscaler $v (expected $CA_SOURCE_DIR/cluster-autoscaler-$v/go.mod)" >&2
        return 1
      fi
      from="CA_SOURCE_DIR"
    elif [ -n "$(_ca_tree_in "$shared" "$v")" ]; then
      tree=$(_ca_tree_in "$shared" "$v")
      from="../shared/third_party"
    else
      tree=$(_ca_fetch "$v") || { echo "ca-source: Cluster Autoscaler $v not found: set CA_SOURCE_DIR to a directory with cluster-autoscaler-$v/, or allow the download" >&2; return 1; }
      from="downloaded (cache)"
    fi
    ln -sfn "$tree" "$links/cluster-autoscaler-$v" || return 1
    echo "ca-source: Cluster Autoscaler $v: $tree ($from)"
  done
  export CA_SOURCE_ROOT="$links"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  ca_source "$@"
fi
