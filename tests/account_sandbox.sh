#!/bin/bash
# account_sandbox.sh — sandbox_recipients = refuse: while GetAccount says
# the account is in the sandbox, RCPT of a recipient that is not a
# verified identity (neither the address nor its domain) gets 550 5.7.1
# with the reason; verified ones 250; answers are cached; the session
# waits for the lookup without holding up another session; an API failure
# lets the recipient through; out of the sandbox nothing is looked up.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "SKIP: python3-botocore not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C

t_start_fake --quiet
t_api_state '{"sandbox": true, "identities": {"example.com": {},
  "ok@example.net": {}, "pending@example.net": {"verified": false}}}'
t_start_api
T_ACCOUNT_POLL=2s t_config "sandbox_recipients = refuse"
t_start_relay
for _ in $(seq 100); do grep -q 'GetAccount answers' "$T_DIR/relay.log" && break; sleep 0.1; done
grep -q 'GetAccount answers: sandbox' "$T_DIR/relay.log" || t_fail "no GetAccount: $(cat "$T_DIR/relay.log")"

# pipelined: the replies come in order, each after its lookup
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<ok@example.net>\r\nRCPT TO:<bad@example.net>\r\nRCPT TO:<anyone@Example.COM>\r\nRCPT TO:<pending@example.net>\r\nRSET\r\nQUIT\r\n' |
	$PY "$CLIENT" raw "$RELAY_PORT" --timeout 20 >"$T_DIR/r.out"
grep -E '^[0-9]{3} ' "$T_DIR/r.out" | sed -n '4,8p' >"$T_DIR/codes"
sed -n 1p "$T_DIR/codes" | grep -q '^250 2\.1\.5' || t_fail "verified address: $(cat "$T_DIR/r.out")"
sed -n 2p "$T_DIR/codes" | grep -q '^550 5\.7\.1 <bad@example.net> is not a verified identity and the SES account is in the sandbox' ||
	t_fail "unverified: $(cat "$T_DIR/r.out")"
sed -n 3p "$T_DIR/codes" | grep -q '^250 2\.1\.5' || t_fail "verified domain: $(cat "$T_DIR/r.out")"
sed -n 4p "$T_DIR/codes" | grep -q '^550 5\.7\.1 <pending@example.net>' || t_fail "pending: $(cat "$T_DIR/r.out")"
sed -n 5p "$T_DIR/codes" | grep -q '^250' || t_fail "RSET after: $(cat "$T_DIR/r.out")"
t_ok "sandbox: verified address and domain 250, unverified and pending 550 5.7.1 with the reason, in order"

n=$(t_api_count GetEmailIdentity)
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<bad@example.net>\r\nQUIT\r\n' |
	$PY "$CLIENT" raw "$RELAY_PORT" --timeout 20 >"$T_DIR/r.out"
grep -q '^550 5\.7\.1 <bad@example.net>' "$T_DIR/r.out" || t_fail "cached refusal: $(cat "$T_DIR/r.out")"
[ "$(t_api_count GetEmailIdentity)" = "$n" ] || t_fail "the answer was not cached"
t_ok "answers are cached (no new GetEmailIdentity)"

# a slow API: this session waits, another is served meanwhile
t_api_state '{"sandbox": true, "delay": 2, "identities": {"slow@example.org": {}}}'
sleep 2.5	# the next poll sees the delay too, and comes back
( printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<slow@example.org>\r\nQUIT\r\n' |
	$PY "$CLIENT" raw "$RELAY_PORT" --timeout 30 >"$T_DIR/slow.out" ) &
slow=$!
sleep 0.5
start=$(date +%s%N)
printf 'EHLO t\r\nNOOP\r\nQUIT\r\n' | $PY "$CLIENT" raw "$RELAY_PORT" --timeout 10 >"$T_DIR/fast.out"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
wait $slow
grep -q '^250 2\.0\.0' "$T_DIR/fast.out" || grep -q '^250 ' "$T_DIR/fast.out" || t_fail "other session: $(cat "$T_DIR/fast.out")"
[ "$ms" -lt 1000 ] || t_fail "another session took $ms ms while a lookup waited"
grep -q '^250 2\.1\.5' "$T_DIR/slow.out" || t_fail "slow lookup: $(cat "$T_DIR/slow.out")"
t_ok "a session waiting for a lookup does not hold up another ($ms ms)"

# the API failing: the recipient goes through (SES decides)
t_api_state '{"sandbox": true, "fail": {"GetEmailIdentity": "500"}}'
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<new@example.info>\r\nQUIT\r\n' |
	$PY "$CLIENT" raw "$RELAY_PORT" --timeout 20 >"$T_DIR/r.out"
grep -q '^250 2\.1\.5' "$T_DIR/r.out" || t_fail "API failure: $(cat "$T_DIR/r.out")"
grep -q 'GetEmailIdentity new@example.info failed (server_error)' "$T_DIR/relay.log" || t_fail "not logged"
t_ok "GetEmailIdentity failing: the recipient is accepted, the failure logged"

# out of the sandbox: no lookup at all
t_api_state '{"identities": {}}'
sleep 2.5
n=$(t_api_count GetEmailIdentity)
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.biz>\r\nQUIT\r\n' |
	$PY "$CLIENT" raw "$RELAY_PORT" --timeout 20 >"$T_DIR/r.out"
grep -q '^250 2\.1\.5' "$T_DIR/r.out" || t_fail "production: $(cat "$T_DIR/r.out")"
[ "$(t_api_count GetEmailIdentity)" = "$n" ] || t_fail "looked up out of the sandbox"
t_ok "production access: recipients are not looked up"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
