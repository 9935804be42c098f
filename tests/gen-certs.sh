#!/bin/sh
# gen-certs.sh DIR — test certificates for the protocol tests.
#
#   ca.pem/ca.key           test CA
#   ses.pem/ses.key         signed by the CA, CN and SANs like SES's VPC
#                           endpoint certificate (regional name, *.vpce, FIPS)
#   wrong.pem/wrong.key     signed by the CA for wrong.example.com
#   self.pem/self.key       self-signed for the regional name (untrusted)
#   inbound.pem/inbound.key signed by the CA for localhost / 127.0.0.1
#   api.pem/api.key         signed by the CA for the SES API v2 host
#                           (email.us-east-1.amazonaws.com) and 127.0.0.1
#
# EC P-256 keys (mode 600), 10-year validity.  Idempotent: nothing is done
# if DIR/ca.pem exists and is newer than this script.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
mkdir -p "$dir"
if [ -f "$dir/ca.pem" ] && [ "$dir/ca.pem" -nt "$0" ]; then
	exit 0
fi

OPENSSL=${OPENSSL:-openssl}
days=3650
region=us-east-1
ses_name=email-smtp.$region.amazonaws.com

umask 077
tmp=$(mktemp -d "$dir/.gen-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

newkey() {
	"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	    -out "$tmp/$1.key" 2>/dev/null
}

# sign NAME CN SAN: a leaf certificate for NAME signed by the test CA.
sign() {
	newkey "$1"
	cat >"$tmp/$1.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
	"$OPENSSL" req -new -key "$tmp/$1.key" -subj "/CN=$2" \
	    -out "$tmp/$1.csr" 2>/dev/null
	"$OPENSSL" x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" \
	    -CAkey "$tmp/ca.key" -CAcreateserial -CAserial "$tmp/ca.srl" \
	    -days "$days" -sha256 -extfile "$tmp/$1.ext" \
	    -out "$tmp/$1.pem" 2>/dev/null
}

newkey ca
"$OPENSSL" req -x509 -new -key "$tmp/ca.key" -sha256 -days "$days" \
    -subj "/O=sesrelay tests/CN=sesrelay test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$tmp/ca.pem" 2>/dev/null

sign ses "$ses_name" "DNS:$ses_name, DNS:*.email-smtp.$region.vpce.amazonaws.com, DNS:email-smtp-fips.$region.amazonaws.com"
sign wrong wrong.example.com "DNS:wrong.example.com"
sign inbound localhost "DNS:localhost, IP:127.0.0.1"
sign api email.$region.amazonaws.com "DNS:email.$region.amazonaws.com, DNS:localhost, IP:127.0.0.1, IP:::1"

newkey self
"$OPENSSL" req -x509 -new -key "$tmp/self.key" -sha256 -days "$days" \
    -subj "/CN=$ses_name" \
    -addext "subjectAltName=DNS:$ses_name" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "extendedKeyUsage=serverAuth" \
    -out "$tmp/self.pem" 2>/dev/null

for n in ses wrong self inbound api ca; do
	chmod 600 "$tmp/$n.key"
	chmod 644 "$tmp/$n.pem"
	mv -f "$tmp/$n.key" "$dir/$n.key"
	# ca.pem last: it marks the set as complete.
	[ "$n" = ca ] || mv -f "$tmp/$n.pem" "$dir/$n.pem"
done
mv -f "$tmp/ca.pem" "$dir/ca.pem"
