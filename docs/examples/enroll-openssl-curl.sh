#!/usr/bin/env bash
# Enroll a derived PIV credential from the station's QR payload with nothing but openssl and curl
# (README, "Phone enrollment"). Usage: enroll-openssl-curl.sh 'dpiv://enroll?v=1&est=...' DIR
set -euo pipefail
uri=$1 dir=$2
mkdir -p "$dir" && cd "$dir"
field() { printf '%s' "$uri" | tr '?&' '\n\n' | sed -n "s/^$1=//p" | python3 -c 'import sys, urllib.parse; print(urllib.parse.unquote(sys.stdin.read().strip()))'; }
est=$(field est) fp=$(field fp) user=$(field user) otp=$(field otp)
hostport=$(printf '%s' "$est" | sed -E 's#^https://([^/]+)/.*#\1#')

# 1. the station's TLS certificate, trusted only if its SHA-256 is the payload's fp
openssl s_client -connect "$hostport" </dev/null 2>/dev/null | openssl x509 -out tls.pem
seen=$(openssl x509 -in tls.pem -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
[ "$seen" = "$fp" ] || { echo "not the station the QR code names (fingerprint $seen)" >&2; exit 1; }

# 2. a P-256 key and its PKCS#10 request (the subject is ignored: the station names the applicant)
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -subj /CN=phone \
  -outform DER -out csr.der 2>/dev/null
openssl base64 -in csr.der -out csr.b64

# 3. EST simpleenroll (RFC 7030 §4.2) with HTTP Basic user:otp; the answer is base64 PKCS#7 certs-only
curl -sS --fail-with-body --cacert tls.pem -u "$user:$otp" -H 'Content-Type: application/pkcs10' \
  --data-binary @csr.b64 "${est}simpleenroll" -o cert.p7.b64
openssl base64 -d -in cert.p7.b64 | openssl pkcs7 -inform DER -print_certs -out cert.pem

# 4. activation (the key is now behind the applicant's PIN) and the self-test, over mutual TLS
curl -sS --fail-with-body --cacert tls.pem --cert cert.pem --key key.pem -X POST "${est}activate"
echo
curl -sS --fail-with-body --cacert tls.pem --cert cert.pem --key key.pem -X POST "${est}selftest"
echo
