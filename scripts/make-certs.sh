#!/usr/bin/env bash
# Makes the certificates of the mutual TLS link between Cluster Autoscaler (CA) and the provider,
# for the ways without cert-manager (the binary on a control-plane node, the Talos extension):
# a private CA for this link only, the provider's server certificate and CA's client certificate.
#
#   scripts/make-certs.sh --address HOST:PORT [--address HOST:PORT ...] [--out DIR] [--days N]
#
#   --address  the `address` of CA's cloud-config (for example 127.0.0.1:8086). CA checks the
#              server certificate against its host part, so each host becomes a SAN: an IP address
#              as an IP SAN, a name as a DNS SAN. Give one per address CA may use.
#   --out      where to write (default ./pki); created with mode 0700
#   --days     lifetime of the server and client certificates (default 365); the CA lives 10 years
#
# It writes, in the layout the two sides read:
#   DIR/ca.crt, DIR/ca.key                        the private CA (keep ca.key offline)
#   DIR/provider/tls.crt, tls.key, client-ca.crt  the provider's --tls-cert, --tls-key, --tls-client-ca
#   DIR/cluster-autoscaler/tls.crt, tls.key, ca.crt  CA's cloud-config cert, key, cacert
#                                                  (kubectl create secret generic --from-file=DIR/cluster-autoscaler/)
# Run it again to renew: an existing DIR/ca.key is reused, so only the server and client
# certificates change and neither side needs the new CA. Needs openssl (1.1.1 or 3.x).
set -euo pipefail

out=pki
days=365
addresses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --address) addresses+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --days) days=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-certs: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#addresses[@]} -gt 0 ] || { echo "make-certs: give CA's cloud-config address with --address HOST:PORT" >&2; exit 2; }
command -v openssl >/dev/null || { echo "make-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }

# host of HOST:PORT, [V6]:PORT, or a bare host
host_of() {
  case "$1" in
    \[*\]*) local h=${1#\[}; echo "${h%%\]*}" ;;
    *:*:*) echo "$1" ;;
    *:*) echo "${1%:*}" ;;
    *) echo "$1" ;;
  esac
}
sans=()
for a in "${addresses[@]}"; do
  h=$(host_of "$a")
  [ -n "$h" ] || { echo "make-certs: no host in address $a" >&2; exit 2; }
  if [[ $h =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $h == *:* ]]; then sans+=("IP:$h"); else sans+=("DNS:$h"); fi
done
san_list=$(IFS=,; echo "${sans[*]}")
cn=$(host_of "${addresses[0]}")

umask 077
mkdir -p "$out/provider" "$out/cluster-autoscaler"
chmod 0700 "$out"
cd "$out"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)

if [ -f ca.key ] && [ -f ca.crt ]; then
  echo "make-certs: reusing the CA in $out/ca.crt" >&2
else
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 -sha256 \
    -subj "/CN=autoscaler-cloudscale-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# issue NAME CN EXTENSIONS: a key and a certificate signed by the CA, under NAME/.
issue() {
  local dir=$1 subject=$2 ext=$3
  openssl req "${ec[@]}" -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$subject" 2>/dev/null
  printf '%s\n' "$ext" >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/tls.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/ext.cnf"
}
issue provider "$cn" "subjectAltName=$san_list
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
issue cluster-autoscaler cluster-autoscaler "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
cp ca.crt provider/client-ca.crt
cp ca.crt cluster-autoscaler/ca.crt
chmod 0644 ca.crt provider/tls.crt provider/client-ca.crt cluster-autoscaler/tls.crt cluster-autoscaler/ca.crt

for f in provider/tls.crt cluster-autoscaler/tls.crt; do
  openssl verify -CAfile ca.crt "$f" >/dev/null
done
echo "make-certs: $out/provider/tls.crt for $san_list, $out/cluster-autoscaler/tls.crt (CN cluster-autoscaler); both valid until $(openssl x509 -in provider/tls.crt -noout -enddate | cut -d= -f2)" >&2
