#!/bin/sh
# Usage: gen_certs.sh OUTDIR
#
# Makes a throwaway PKI for the integration tests, with the openssl CLI only (EC P-256, valid ~2 days):
#   ca.pem / ca.key          self-signed test CA (the trust anchor the proxy is given as ca_file)
#   server.pem / server.key  leaf for DNS:dot.test, IP:127.0.0.1, IP:::1, signed by the CA
#   wrong.pem / wrong.key    leaf for DNS:wrong.test only, signed by the same CA
# Idempotent: if every file is present and the certificates are good for at least another 12 hours,
# nothing is regenerated. Quiet unless something fails.
set -eu

out=${1:?usage: gen_certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"

fresh() {
  for f in ca.pem ca.key server.pem server.key wrong.pem wrong.key; do
    [ -s "$f" ] || return 1
  done
  for f in ca.pem server.pem wrong.pem; do
    openssl x509 -in "$f" -noout -checkend 43200 >/dev/null 2>&1 || return 1
  done
  return 0
}
fresh && exit 0

tmp=$(mktemp -d .gen_certs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 8)"; }

key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 2 -subj "/CN=dotproxy test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -set_serial "$(serial)" -out "$tmp/ca.pem" 2>/dev/null

leaf() {  # leaf NAME CN SAN
  key "$tmp/$1.key"
  openssl req -new -key "$tmp/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
  cat >"$tmp/$1.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$3
EXT
  openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -set_serial "$(serial)" \
    -days 2 -sha256 -extfile "$tmp/$1.ext" -out "$tmp/$1.pem" 2>/dev/null
}
leaf server dot.test "DNS:dot.test,IP:127.0.0.1,IP:::1"
leaf wrong wrong.test "DNS:wrong.test"

openssl verify -CAfile "$tmp/ca.pem" -verify_hostname dot.test "$tmp/server.pem" >/dev/null
openssl verify -CAfile "$tmp/ca.pem" -verify_hostname wrong.test "$tmp/wrong.pem" >/dev/null

chmod 600 "$tmp"/*.key
for f in ca.key ca.pem server.key server.pem wrong.key wrong.pem; do
  mv -f "$tmp/$f" "$f"
done
