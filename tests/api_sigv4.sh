#!/bin/bash
# api_sigv4.sh — the fake SES API v2 is honest and src/http_client.c signs
# like the AWS SDKs: the real `aws sesv2` (Debian's awscli, botocore's
# signer) and tests/api_request (http_client.c + aws_sigv4.c) get the same
# answers from tests/fake_ses_api.py, which checks every signature with
# botocore; a wrong secret, a missing session token, a wrong certificate
# name and an untrusted CA are refused; an email-address identity in the
# path (the double encoding) is signed right; a POST body is hashed and
# stored byte for byte; many requests share the loop; a slow answer times
# out.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

command -v aws >/dev/null || { echo "SKIP: awscli not installed"; exit 77; }
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "SKIP: python3-botocore not installed"; exit 77; }
[ -x "$API_REQUEST" ] || t_fail "no $API_REQUEST (make check builds it)"
PY=/usr/bin/python3
export LC_ALL=C

t_certs
t_api_state '{"sandbox": true, "max_rate": 2, "max_24h": 200, "sent_24h": 17,
  "identities": {"example.com": {"dkim": "SUCCESS"},
                 "user@example.com": {"verified": false, "dkim": "PENDING"}}}'
t_start_api

# awscli and api_request with the same environment
export AWS_ACCESS_KEY_ID=$EXAMPLE_KEY_ID AWS_SECRET_ACCESS_KEY=$EXAMPLE_SECRET
export AWS_DEFAULT_REGION=us-east-1 AWS_CA_BUNDLE=$CERTS/ca.pem
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_SESSION_TOKEN AWS_PROFILE 2>/dev/null || true
AWS=(aws --endpoint-url "$API_URL" --output json)

# same_json A_FILE B_FILE: the same JSON document
same_json() {
	$PY -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a != b)' "$1" "$2"
}
# body OUTFILE: api_request's output without the status line
body() { sed 1d "$1"; }

"${AWS[@]}" sesv2 get-account >"$T_DIR/cli.json" 2>"$T_DIR/cli.err" ||
	t_fail "aws sesv2 get-account failed: $(cat "$T_DIR/cli.err")"
grep -q '"MaxSendRate": 2.0' "$T_DIR/cli.json" || t_fail "awscli: $(cat "$T_DIR/cli.json")"
"$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" ||
	t_fail "api_request GetAccount: $(cat "$T_DIR/c.out")"
head -1 "$T_DIR/c.out" | grep -q '^status=200 ' || t_fail "GetAccount: $(cat "$T_DIR/c.out")"
body "$T_DIR/c.out" >"$T_DIR/c.json"
same_json "$T_DIR/cli.json" "$T_DIR/c.json" ||
	t_fail "awscli and http_client differ: $(cat "$T_DIR/cli.json") / $(cat "$T_DIR/c.json")"
[ "$(t_api_count GetAccount 200)" = 2 ] || t_fail "fake did not see 2 good GetAccount"
t_ok "aws sesv2 get-account and http_client get the same signed answer"

# an email address in the path: sent user%40example.com, signed %2540
"${AWS[@]}" sesv2 get-email-identity --email-identity user@example.com >"$T_DIR/cli.json" ||
	t_fail "aws sesv2 get-email-identity failed"
"$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/identities/user%40example.com" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=200 ' || t_fail "GetEmailIdentity user@: $(cat "$T_DIR/c.out")"
body "$T_DIR/c.out" >"$T_DIR/c.json"
same_json "$T_DIR/cli.json" "$T_DIR/c.json" || t_fail "GetEmailIdentity answers differ"
grep -q '"/v2/email/identities/user%40example.com", "status": 200' "$API_LOG" ||
	t_fail "identity path not as expected: $(tail -2 "$API_LOG")"
t_ok "email-address identity in the path is signed with the double encoding"

# curl's own signer (CURLOPT_AWS_SIGV4, 7.88) cannot sign that path: the
# reason aws_sigv4.c exists.  Informational only when curl is newer.
if curl --version | head -1 | grep -q '^curl 7\.'; then
	curl -s --cacert "$CERTS/ca.pem" --aws-sigv4 aws:amz:us-east-1:ses \
		--user "$EXAMPLE_KEY_ID:$EXAMPLE_SECRET" \
		"$API_URL/v2/email/identities/user%40example.com" >"$T_DIR/curl.json" || true
	grep -q 'signature we calculated does not match' "$T_DIR/curl.json" ||
		t_fail "curl 7's CURLOPT_AWS_SIGV4 now signs encoded paths? $(head -c 300 "$T_DIR/curl.json")"
	t_ok "curl 7's CURLOPT_AWS_SIGV4 is refused for the same path (why aws_sigv4.c)"
fi

# a wrong secret: refused by the fake in SES's shape, for both clients
if AWS_SECRET_ACCESS_KEY=wrong "${AWS[@]}" sesv2 get-account >/dev/null 2>"$T_DIR/cli.err"; then
	t_fail "awscli with a wrong secret was answered"
fi
grep -q SignatureDoesNotMatch "$T_DIR/cli.err" || t_fail "awscli: $(cat "$T_DIR/cli.err")"
AWS_SECRET_ACCESS_KEY=wrong "$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=403 type=SignatureDoesNotMatch' || t_fail "wrong secret: $(head -3 "$T_DIR/c.out")"
AWS_ACCESS_KEY_ID=AKIAI44QH8DHBEXAMPLE "$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=403 type=UnrecognizedClientException' || t_fail "unknown key: $(head -3 "$T_DIR/c.out")"
"$API_REQUEST" -u -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=403 type=MissingAuthenticationTokenException' || t_fail "unsigned: $(head -3 "$T_DIR/c.out")"
t_ok "wrong secret, unknown key id and unsigned requests are refused (403)"

# POST: the body is hashed and arrives byte for byte (SendEmail, Raw)
printf 'From: a@example.com\r\nTo: b@example.org\r\nSubject: t\r\n\r\nbody \xff\r\n.\r\n' >"$T_DIR/msg.eml"
$PY -c 'import base64,json,sys; print(json.dumps({"Content": {"Raw": {"Data": base64.b64encode(open(sys.argv[1],"rb").read()).decode()}}}))' \
	"$T_DIR/msg.eml" >"$T_DIR/send.json"
"$API_REQUEST" -c "$CERTS/ca.pem" -X POST -H 'Content-Type: application/json' -d "$T_DIR/send.json" \
	"$API_URL/v2/email/outbound-emails" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=200 ' || t_fail "SendEmail: $(cat "$T_DIR/c.out")"
mid=$(body "$T_DIR/c.out" | $PY -c 'import json,sys; print(json.load(sys.stdin)["MessageId"])')
cmp "$T_DIR/msg.eml" "$API_OUT/$mid.eml" || t_fail "stored message differs"
t_ok "a signed POST body arrives byte for byte (SendEmail Content.Raw)"

# many requests in flight on one loop, one connection pool
urls=()
for i in $(seq 20); do urls+=("$API_URL/v2/email/identities/example.com"); done
"$API_REQUEST" -c "$CERTS/ca.pem" "${urls[@]}" >"$T_DIR/c.out" || t_fail "20 at once: $(grep -v '^{' "$T_DIR/c.out" | head)"
[ "$(grep -c '^status=200 ' "$T_DIR/c.out")" = 20 ] || t_fail "not 20 answers: $(grep '^status' "$T_DIR/c.out" | sort | uniq -c)"
t_ok "20 requests in flight at once all answered"

# a slow answer: the request's timeout ends it, with a reason
t_api_state '{"delay": 3}'
start=$(date +%s%N)
"$API_REQUEST" -c "$CERTS/ca.pem" -t 800 "$API_URL/v2/email/account" >"$T_DIR/c.out" && t_fail "slow answer did not fail"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
head -1 "$T_DIR/c.out" | grep -qi '^status=0 .*timed\? \?out' || t_fail "timeout: $(head -1 "$T_DIR/c.out")"
[ "$ms" -lt 2500 ] || t_fail "timeout of 800 ms took $ms ms"
t_api_state '{}'
t_ok "a request that gets no answer in time fails with a timeout ($ms ms)"

# TLS: an untrusted CA, a wrong name, plain http to a non-local host
"$API_REQUEST" -c /etc/ssl/certs/ca-certificates.crt "$API_URL/v2/email/account" >"$T_DIR/c.out" && t_fail "untrusted CA accepted"
head -1 "$T_DIR/c.out" | grep -qi 'certificate' || t_fail "untrusted CA: $(head -1 "$T_DIR/c.out")"
"$API_REQUEST" -c "$CERTS/ca.pem" "https://localhost:$API_PORT/v2/email/account" >"$T_DIR/c.out" ||
	t_fail "localhost is in the certificate: $(head -1 "$T_DIR/c.out")"
saved_pid=$API_PID saved_port=$API_PORT
rm -f "$T_DIR/api.port"
/usr/bin/python3 "$TESTS_DIR/fake_ses_api.py" --portfile "$T_DIR/api.port" \
	--cert "$CERTS/wrong.pem" --key "$CERTS/wrong.key" --key-id "$EXAMPLE_KEY_ID" \
	--secret "$EXAMPLE_SECRET" --state "$API_STATE" 2>>"$T_DIR/api.log" &
T_PIDS+=($!)
t_wait_file "$T_DIR/api.port" || t_fail "second fake did not start"
"$API_REQUEST" -c "$CERTS/ca.pem" "https://127.0.0.1:$(cat "$T_DIR/api.port")/v2/email/account" >"$T_DIR/c.out" &&
	t_fail "a certificate for wrong.example.com was accepted for 127.0.0.1"
head -1 "$T_DIR/c.out" | grep -qiE 'certificate|match|subject' || t_fail "wrong name: $(head -1 "$T_DIR/c.out")"
"$API_REQUEST" -c "$CERTS/ca.pem" "http://email.us-east-1.amazonaws.com/v2/email/account" >"$T_DIR/c.out" 2>"$T_DIR/c.err" &&
	t_fail "plain http to a public host was sent"
grep -q 'plain http is only for loopback' "$T_DIR/c.err" || t_fail "http: $(cat "$T_DIR/c.err")"
t_ok "untrusted CA, wrong certificate name and plain http to a public host are refused"

# temporary credentials: X-Amz-Security-Token, signed
t_stop_api
API_PORT=$saved_port
t_start_api --token 'IQoJb3JpZ2luX2VjEXAMPLE//token+/='
AWS_SESSION_TOKEN='IQoJb3JpZ2luX2VjEXAMPLE//token+/=' "${AWS[@]}" sesv2 get-account >/dev/null ||
	t_fail "awscli with a session token refused"
AWS_SESSION_TOKEN='IQoJb3JpZ2luX2VjEXAMPLE//token+/=' "$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=200 ' || t_fail "with token: $(head -3 "$T_DIR/c.out")"
"$API_REQUEST" -c "$CERTS/ca.pem" "$API_URL/v2/email/account" >"$T_DIR/c.out" || true
head -1 "$T_DIR/c.out" | grep -q '^status=403 ' || t_fail "without the token: $(head -1 "$T_DIR/c.out")"
t_ok "a session token is sent and signed; without it the fake refuses"
