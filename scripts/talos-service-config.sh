#!/usr/bin/env bash
# Writes the ExtensionServiceConfig document of the Talos extension service
# (packaging/talos/extension-service-config.example.yaml has its shape) from the files an
# operator has, ready for `talosctl patch mc --patch @FILE`:
#
#   CLOUDSCALE_API_TOKEN=... scripts/talos-service-config.sh --config config.yaml \
#     --user-data worker.yaml --pki pki > autoscaler-cloudscale.patch.yaml
#
#   --config     the provider's configuration; its userDataFile must be userdata/workers.yaml
#                (relative to the configuration) or /etc/autoscaler-cloudscale/userdata/workers.yaml,
#                where --user-data is mounted
#   --user-data  the worker machine configuration new servers boot with (talosctl gen config)
#   --pki        the directory scripts/make-certs.sh wrote (provider/tls.crt, tls.key, client-ca.crt)
# The token comes from CLOUDSCALE_API_TOKEN. The output holds the token and keys: keep it as
# secret as the machine configuration itself.
set -euo pipefail

config="" userdata="" pki=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --user-data) userdata=$2; shift 2 ;;
    --pki) pki=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "talos-service-config: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for f in "$config" "$userdata" "$pki/provider/tls.crt" "$pki/provider/tls.key" "$pki/provider/client-ca.crt"; do
  [ -n "$f" ] && [ -f "$f" ] || { echo "talos-service-config: missing file ${f:-(give --config, --user-data and --pki)}" >&2; exit 2; }
done
[ -n "${CLOUDSCALE_API_TOKEN:-}" ] || { echo "talos-service-config: set CLOUDSCALE_API_TOKEN" >&2; exit 2; }
case "$CLOUDSCALE_API_TOKEN" in *[[:space:]\"\\]*) echo "talos-service-config: the token has characters a token never has" >&2; exit 2 ;; esac
grep -Eq 'userDataFile: *(/etc/autoscaler-cloudscale/)?userdata/workers.yaml' "$config" ||
  echo "talos-service-config: warning: $config has no userDataFile: userdata/workers.yaml (where --user-data is mounted)" >&2

# file MOUNTPATH PATH: one configFiles entry with the file as a literal block.
file() {
  printf '  - mountPath: %s\n    content: |\n' "$1"
  sed 's/^/      /' "$2"
}
cat <<EOF
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: autoscaler-cloudscale
configFiles:
EOF
file /etc/autoscaler-cloudscale/config.yaml "$config"
file /etc/autoscaler-cloudscale/userdata/workers.yaml "$userdata"
file /etc/autoscaler-cloudscale/tls/tls.crt "$pki/provider/tls.crt"
file /etc/autoscaler-cloudscale/tls/tls.key "$pki/provider/tls.key"
file /etc/autoscaler-cloudscale/tls/client-ca.crt "$pki/provider/client-ca.crt"
cat <<EOF
environment:
  - CLOUDSCALE_API_TOKEN=$CLOUDSCALE_API_TOKEN
EOF
