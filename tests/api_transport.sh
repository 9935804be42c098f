#!/bin/bash
# api_transport.sh — transport = api end to end with nothing but a role:
# sesrelayd gets temporary credentials by web identity from a fake STS
# (tests/fake_aws_creds.py) and sends each message with SES API v2
# SendEmail to tests/fake_ses_api.py, which checks every SigV4 signature
# with botocore, X-Amz-Security-Token included, against the keys STS
# issued.  Spool mode: delivered byte for byte with Bcc in Destination and
# the sending-authorization ARN, configuration set and tags; credentials
# rotating every few seconds under load with no failed message; a 429
# storm retried; MessageRejected / MailFromDomainNotVerified bounced,
# AccountSuspended / SendingPaused / 5xx kept; a failed refresh defers
# (451), never bounces; kill -9 loses nothing.  Passthrough: the client's
# 250 carries SES's MessageId.  Temporary credentials with transport = smtp
# are refused with a clear error.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks"; exit 77; }
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "SKIP: python3-botocore"; exit 77; }
unset AWS_REGION AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID \
	AWS_SECRET_ACCESS_KEY AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE \
	AWS_CONFIG_FILE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE \
	AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
	AWS_EC2_METADATA_SERVICE_ENDPOINT AWS_ENDPOINT_URL_STS CREDENTIALS_DIRECTORY
export HOME=$T_DIR/home AWS_EC2_METADATA_DISABLED=true
mkdir -p "$HOME"
PY=/usr/bin/python3

t_certs
ROLE=arn:aws:iam::123456789012:role/sesrelay
CSTATE=$T_DIR/creds-state.json
KEYS=$T_DIR/keys.json
CLOG=$T_DIR/creds.log
printf 'eyJhbGciOiJSUzI1NiJ9.projected-token.sig\n' >"$T_DIR/sa-token"
echo '{"lifetime": 3600}' >"$CSTATE"
echo '{}' >"$KEYS"
$PY "$TESTS_DIR/fake_aws_creds.py" --portfile "$T_DIR/creds.port" --state "$CSTATE" \
	--keys-file "$KEYS" --role-arn "$ROLE" --token-file "$T_DIR/sa-token" \
	--log "$CLOG" 2>>"$T_DIR/creds-fake.log" &
T_PIDS+=($!)
t_wait_file "$T_DIR/creds.port" || t_fail "fake_aws_creds did not start"
STS=http://127.0.0.1:$(cat "$T_DIR/creds.port")
cstate() { printf '%s\n' "$1" >"$CSTATE.tmp" && mv -f "$CSTATE.tmp" "$CSTATE"; }
export AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE=$T_DIR/sa-token AWS_ENDPOINT_URL_STS=$STS

t_start_api --keys-file "$KEYS"
FAKE_PORT=1		# no SMTP endpoint at all: everything goes by the API
arn=arn:aws:ses:us-east-1:123456789012:identity/example.com
METRICS_PORT=$(t_free_port)
T_MODE=spool t_config "transport = api" \
	"configuration_set = relayset" "message_tags = team=mail, env=test" \
	"null_sender = bounces@example.com" \
	"" "[queue]" "retry_min = 1s" "retry_max = 2s" \
	"" "[sender example.com]" "from_arn = $arn"
# no key at all in the configuration
sed -i -e '/^access_key_id/d' -e '/^secret_access_key_file/d' \
	-e "s/^\[relay\]\$/[relay]\nmetrics_listen = 127.0.0.1:$METRICS_PORT/" "$CONF"
! grep -q 'secret\|key_id' "$CONF" || t_fail "the test config still names a key"

# ---- -n says which source; temporary credentials refused for SMTP ----
out=$("$SESRELAYD" -n -c "$CONF" 2>&1) || t_fail "sesrelayd -n: $out"
grep -q "credentials: web identity $ROLE" <<<"$out" || t_fail "sesrelayd -n does not name the source: $out"
sed 's/^transport = api$/transport = smtp/' "$CONF" >"$T_DIR/smtp.conf"
rc=0; out=$("$SESRELAYD" -n -c "$T_DIR/smtp.conf" 2>&1) || rc=$?
[ $rc = 2 ] && grep -q "temporary credentials.*transport = api" <<<"$out" || t_fail "web identity with transport = smtp: $rc $out"
rc=0; out=$(env -u AWS_ROLE_ARN AWS_ACCESS_KEY_ID=ASIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=$EXAMPLE_SECRET \
	AWS_SESSION_TOKEN=FwoGZXIvYXdzEXAMPLE "$SESRELAYD" -n -c "$T_DIR/smtp.conf" 2>&1) || rc=$?
[ $rc = 2 ] && grep -q "temporary (STS) credentials.*transport = api" <<<"$out" || t_fail "AWS_SESSION_TOKEN with transport = smtp: $rc $out"
t_ok "sesrelayd -n names the web identity source; temporary credentials with transport = smtp refused, pointing to transport = api"

# ---- sesrelay check: the chain's source, then signed API requests ----
t_api_state '{"identities": {"example.com": {"verified": true}}}'
rc=0; out=$("$SESRELAY" check -c "$CONF" 2>&1) || rc=$?
[ $rc = 0 ] || t_fail "sesrelay check (transport api) exited $rc: $out"
grep -q "^credentials *ok *web identity $ROLE (key ASIAFAKE" <<<"$out" || t_fail "check does not name the source: $out"
grep -q "^account *ok" <<<"$out" || t_fail "check did not test the account: $out"
[ "$(t_api_count GetAccount 200)" -ge 1 ] || t_fail "no signed GetAccount: $(cat "$API_LOG")"
cstate '{"fail": {"sts": "InvalidIdentityToken"}}'
rc=0; out=$("$SESRELAY" check -c "$CONF" 2>&1) || rc=$?
[ $rc = 1 ] && grep -q "^credentials *FAIL.*InvalidIdentityToken" <<<"$out" || t_fail "check with a refused token: $rc $out"
cstate '{"lifetime": 3600}'
t_api_state '{}'
t_ok "sesrelay check (transport api): names the credential source, signs GetAccount/GetEmailIdentity; a refused token is a FAIL"

t_start_relay
send() {	# from to [swaks options...]
	local from=$1 to=$2; shift 2
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from "$from" --to "$to" "$@" 2>&1 || true
}
queued() {
	local out
	out=$(send "$@")
	grep -q '^<-  250 2.0.0 Ok: queued as [0-9A-F]\{16\}$' <<<"$out" ||
		t_fail "not queued: $(grep '^<-' <<<"$out" | tail -3)"
	sed -n 's/^<-  250 2.0.0 Ok: queued as //p' <<<"$out"
}
sent_count() { find "$API_OUT" -name '*.eml' | wc -l; }

# ---- one message: Bcc in Destination, ARN, set, tags, bytes ----
cat >"$T_DIR/msg1" <<'MSG'
From: App <app@example.com>
To: one@example.net
Subject: by the API

Hello over SendEmail.
MSG
sed -i 's/$/\r/' "$T_DIR/msg1"
$PY "$TESTS_DIR/smtp_client.py" send "$RELAY_PORT" --from app@example.com \
	--to one@example.net --to hidden@example.org "$T_DIR/msg1" >"$T_DIR/m1.out"
id=$(sed -n 's/^data: 250 2.0.0 Ok: queued as //p' "$T_DIR/m1.out")
[ -n "$id" ] || t_fail "not queued: $(cat "$T_DIR/m1.out")"
t_wait_queue_empty 15 || t_fail "not delivered: $(tail -5 "$T_DIR/relay.log")"
[ "$(sent_count)" = 1 ] || t_fail "expected 1 SendEmail, have $(sent_count): $(cat "$API_LOG")"
json=$(ls "$API_OUT"/*.json)
$PY - "$json" "$arn" <<'PY' || t_fail "SendEmail request: $(cat "$json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert sorted(r["Destination"]["ToAddresses"]) == ["hidden@example.org", "one@example.net"], r
assert r["FromEmailAddressIdentityArn"] == sys.argv[2], r
assert r["ConfigurationSetName"] == "relayset", r
assert r["EmailTags"] == [{"Name": "team", "Value": "mail"}, {"Name": "env", "Value": "test"}], r
PY
eml=${json%.json}.eml
$PY "$TESTS_DIR/smtp_client.py" check-eml "$T_DIR/msg1" "$eml" --received \
	--insert "X-SES-CONFIGURATION-SET: relayset" --insert "X-SES-FROM-ARN: $arn" \
	--insert "X-SES-MESSAGE-TAGS: team=mail, env=test" ||
	t_fail "the message SES got differs from what was sent"
mid=$(basename "$eml" .eml)
grep -q "delivery id=$id .*status=sent .*ses_id=$mid" "$T_DIR/relay.log" || t_fail "no delivery line with the MessageId $mid"
grep -q "AWS credentials from web identity $ROLE: key ASIAFAKE" "$T_DIR/relay.log" || t_fail "the log does not say where the credentials came from"
m=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics")
grep -q "^sesrelay_aws_credentials_info{source=\"web identity $ROLE\"} 1" <<<"$m" &&
	grep -q '^sesrelay_aws_credentials_valid 1' <<<"$m" || t_fail "metrics lack the credential source: $(grep aws_cred <<<"$m")"
[ "$(t_api_count SendEmail 200)" = 1 ] || t_fail "SendEmail not signed right: $(cat "$API_LOG")"
t_ok "spool + api: a role's temporary credentials sign SendEmail (token checked); Bcc in Destination; from_arn, set, tags; bytes intact; MessageId logged"

# ---- credentials rotate under load with no failed message ----
# restart with 6 s credentials refreshed 4 s ahead: a new key every ~3 s
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
cstate '{"lifetime": 6}'
SESRELAY_TEST_REFRESH_MARGIN=4 t_start_relay
before=$(grep -c '"op": "sts", "status": 200' "$CLOG")
mkdir -p "$T_DIR/load"
for i in $(seq 40); do
	printf 'From: app@example.com\r\nTo: r%s@example.net\r\nSubject: load %s\r\n\r\nbody %s\r\n' "$i" "$i" "$i" >"$T_DIR/load/m$i"
done
for b in 0 1 2 3; do
	files=()
	for i in $(seq $((b * 10 + 1)) $((b * 10 + 10))); do files+=("$T_DIR/load/m$i"); done
	$PY "$TESTS_DIR/smtp_client.py" send "$RELAY_PORT" --from app@example.com --to load@example.net "${files[@]}" >"$T_DIR/load.out"
	[ "$(grep -c '^data: 250' "$T_DIR/load.out")" = 10 ] || t_fail "load batch $b: $(cat "$T_DIR/load.out")"
	sleep 2.5
done
t_wait_queue_empty 20 || t_fail "load not delivered"
[ "$(sent_count)" = 41 ] || t_fail "expected 41 messages at SES, have $(sent_count)"
after=$(grep -c '"op": "sts", "status": 200' "$CLOG")
[ $((after - before)) -ge 2 ] || t_fail "credentials did not rotate under load ($((after - before)) STS calls)"
! grep -q 'status=deferred\|status=bounced' "$T_DIR/relay.log" || t_fail "a message failed during rotation: $(grep 'status=deferred\|status=bounced' "$T_DIR/relay.log" | head -3)"
t_ok "40 messages while the role's credentials rotated $((after - before)) times: all sent, none deferred"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
cstate '{"lifetime": 3600}'
t_start_relay

# ---- a 429 storm is retried, nothing bounced ----
t_api_state '{"fail": {"SendEmail": "Throttling"}}'
for i in 1 2 3 4 5; do queued app@example.com "thr$i@example.net" --header "Subject: storm $i" >/dev/null; done
for _ in $(seq 100); do [ "$(t_api_count SendEmail 429)" -ge 10 ] && break; sleep 0.1; done
[ "$(t_api_count SendEmail 429)" -ge 10 ] || t_fail "no 429 storm seen: $(tail -3 "$API_LOG")"
grep -q 'status=deferred reply="454 4.7.0 Throttling failure' "$T_DIR/relay.log" || t_fail "429 not deferred as throttling: $(grep status= "$T_DIR/relay.log" | tail -2)"
t_api_state '{}'
t_wait_queue_empty 20 || t_fail "storm mail not delivered after the storm"
[ "$(sent_count)" = 46 ] || t_fail "expected 46 at SES after the storm, have $(sent_count)"
! grep -q 'status=bounced' "$T_DIR/relay.log" || t_fail "something bounced in the storm"
t_ok "a 429 storm ($(t_api_count SendEmail 429) refusals): deferred with backoff, then all delivered"

# ---- error types ----
for kind in AccountSuspended SendingPaused 503; do
	t_api_state "{\"fail\": {\"SendEmail\": \"$kind\"}}"
	id=$(queued app@example.com "$kind@example.net" --header "Subject: $kind")
	for _ in $(seq 50); do grep -q "delivery id=$id .*status=deferred" "$T_DIR/relay.log" && break; sleep 0.1; done
	grep -q "delivery id=$id .*status=deferred reply=\"45" "$T_DIR/relay.log" || t_fail "$kind not deferred: $(grep "id=$id" "$T_DIR/relay.log")"
	t_api_state '{}'
	t_wait_queue_empty 15 || t_fail "$kind mail not delivered afterwards"
done
for kind in MessageRejected:554.5.6.0 MailFromDomainNotVerified:550.5.7.1 BadRequest:554.5.6.0; do
	k=${kind%%:*} want=${kind#*:}
	want="${want%%.*} ${want#*.}"
	t_api_state "{\"fail\": {\"SendEmail\": \"$k\"}, \"fail_count\": 1}"
	id=$(queued app@example.com "$k@example.net" --header "Subject: $k")
	for _ in $(seq 50); do grep -q "delivery id=$id .*status=bounced" "$T_DIR/relay.log" && break; sleep 0.1; done
	grep -q "delivery id=$id .*status=bounced reply=\"$want" "$T_DIR/relay.log" || t_fail "$k not bounced with $want: $(grep "id=$id" "$T_DIR/relay.log")"
	t_wait_queue_empty 15 || t_fail "$k: the DSN was not sent"
	# the fake's fail_count counter is global: restart it per case
	t_api_state '{}'; t_stop_api; t_start_api --keys-file "$KEYS"
	sed -i "s|^api_endpoint = .*|api_endpoint = $API_URL|" "$CONF"
	kill -HUP "$RELAY_PID"; sleep 0.5
done
ls "$API_OUT"/*.eml | xargs grep -l 'Content-Type: multipart/report' | head -1 | grep -q . || t_fail "no DSN went out by the API"
t_ok "AccountSuspended, SendingPaused, 503 kept and retried (4xx); MessageRejected 554, MailFromDomainNotVerified 550, BadRequest 554 bounced with a DSN sent by the API"

# ---- a failed refresh: deferred, never bounced ----
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
cstate '{"lifetime": 4}'
SESRELAY_TEST_REFRESH_MARGIN=2 t_start_relay
sleep 1
cstate '{"lifetime": 4, "fail": {"sts": "500"}}'
sleep 5		# the credentials expire, refreshes fail
id=$(queued app@example.com norole@example.net --header "Subject: no credentials")
for _ in $(seq 50); do grep -q "delivery id=$id .*status=deferred" "$T_DIR/relay.log" && break; sleep 0.1; done
grep -q "delivery id=$id .*status=deferred reply=\"451 4.7.0 no valid AWS credentials" "$T_DIR/relay.log" ||
	t_fail "no credentials: not deferred with 451: $(grep "id=$id" "$T_DIR/relay.log")"
grep -q "fetching from web identity.*failed" "$T_DIR/relay.log" || t_fail "the failed refresh is not logged"
cstate '{"lifetime": 3600}'
t_wait_queue_empty 30 || t_fail "not delivered after the role came back"
! grep -q "delivery id=$id .*status=bounced" "$T_DIR/relay.log" || t_fail "bounced for want of credentials"
t_ok "refreshes failing past expiry: mail deferred with 451 4.7.0, delivered once STS answers again"

# ---- kill -9 with messages in flight loses nothing ----
t_api_state '{"delay": 0.5}'
n0=$(sent_count)
for i in $(seq 20); do
	printf 'From: app@example.com\r\nTo: k%s@example.net\r\nSubject: crash %s\r\n\r\nbody\r\n' "$i" "$i" >"$T_DIR/load/k$i"
done
$PY "$TESTS_DIR/smtp_client.py" send "$RELAY_PORT" --from app@example.com --to crash@example.net "$T_DIR"/load/k* >"$T_DIR/k.out"
[ "$(grep -c '^data: 250' "$T_DIR/k.out")" = 20 ] || t_fail "crash batch not accepted: $(cat "$T_DIR/k.out")"
sleep 0.3
kill -9 "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
t_api_state '{}'
t_start_relay
t_wait_queue_empty 30 || t_fail "the spool was not delivered after kill -9"
missing=$(for i in $(seq 20); do grep -lq "Subject: crash $i\$" "$API_OUT"/*.eml 2>/dev/null || grep -l "Subject: crash $i"$'\r' "$API_OUT"/*.eml >/dev/null || echo "$i"; done)
[ -z "$missing" ] || t_fail "lost after kill -9: $missing"
t_ok "kill -9 with SendEmail requests in flight: all 20 messages reach SES after the restart"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# ---- passthrough: SES's MessageId in the client's 250 ----
RELAY_PORT=$(t_free_port)
sed -i -e "s/^listen = .*/listen = 127.0.0.1:$RELAY_PORT/" -e 's/^mode = spool/mode = passthrough/' "$CONF"
t_start_relay
out=$(send app@example.com pass@example.net --header "Subject: passthrough")
mid=$(sed -n 's/^<-  250 2.0.0 Ok \(0100[0-9a-f-]*\)$/\1/p' <<<"$out")
[ -n "$mid" ] && [ -f "$API_OUT/$mid.eml" ] || t_fail "passthrough 250 without SES's MessageId: $(grep '^<-' <<<"$out" | tail -2)"
t_api_state '{"fail": {"SendEmail": "MessageRejected"}}'
out=$(send app@example.com rej@example.net --header "Subject: rejected")
grep -q '^<\*\* 554 5.6.0 Message rejected: Email address is not verified' <<<"$out" || t_fail "passthrough MessageRejected: $(grep '^<' <<<"$out" | tail -2)"
t_api_state '{"fail": {"SendEmail": "Throttling"}}'
out=$(send app@example.com thr@example.net --header "Subject: throttled")
grep -q '^<\*\* 454 4.7.0 Throttling failure' <<<"$out" || t_fail "passthrough 429: $(grep '^<' <<<"$out" | tail -2)"
t_api_state '{}'
t_ok "passthrough + api: 250 Ok <MessageId>, 554 for MessageRejected, 454 for throttling"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
$PY - "$KEYS" "$T_DIR/relay.log" <<'PY' || t_fail "a secret is in the log"
import json, sys
text = open(sys.argv[2]).read()
for k in json.load(open(sys.argv[1])).values():
    assert k["secret"] not in text and k["token"] not in text
PY
t_ok "no secret or session token in the log"
