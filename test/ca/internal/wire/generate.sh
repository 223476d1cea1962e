#!/usr/bin/env bash
# Regenerates the Go code for this directory's externalgrpc.proto.
# Needs: buf (the repo's node_modules/.bin/buf) and Go; the two protoc plugins
# are installed from the Go module proxy into a temporary GOBIN.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.11
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
work=$(mktemp -d)
trap 'rm -rf "$bin" "$work"' EXIT
cp "$here/externalgrpc.proto" "$work/"
printf 'version: v2\n' > "$work/buf.yaml"
cat > "$work/buf.gen.yaml" <<YAML
version: v2
plugins:
  - local: $bin/protoc-gen-go
    out: out
    opt: [paths=source_relative]
  - local: $bin/protoc-gen-go-grpc
    out: out
    opt: [paths=source_relative]
YAML
(cd "$work" && "$root/node_modules/.bin/buf" generate)
cp "$work/out/"*.go "$here/"
