#!/bin/bash
# account_daemon.sh — sesrelayd watches the SES account (GetAccount on the
# fake SES API v2, SigV4 checked by botocore) and acts on it:
#  - max_send_rate = auto: MaxSendRate / instances, measured over > 5 s
#    at the fake SMTP endpoint within 10 %;
#  - daily quota used up: spool mode keeps mail queued (logged once,
#    sesrelay_account_held 1) and delivers it once, after the quota frees
#    up; a transaction never overruns the quota left;
#  - sending paused: passthrough answers 451 4.7.0 with the reason;
#  - API down: mail flows at the configured rate, logged, api_up 0.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "SKIP: python3-botocore not installed"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
PY=/usr/bin/python3
export LC_ALL=C

# send N [FIRST]: N one-recipient messages in one session, all accepted
send() {
	$PY - "$RELAY_PORT" "$1" "${2:-0}" <<'PY'
import smtplib, sys
port, n, first = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    for i in range(first, first + n):
        s.sendmail("app@example.com", ["r%d@example.net" % i],
                   b"Subject: m%d\r\n\r\nhi\r\n" % i)
PY
}
# wait_log ERE [seconds]
wait_log() {
	for _ in $(seq $(( ${2:-10} * 10 ))); do
		grep -qE "$1" "$T_DIR/relay.log" && return 0
		sleep 0.1
	done
	t_fail "no '$1' in the log: $(tail -20 "$T_DIR/relay.log")"
}
MPORT=$(t_free_port)
metric() {
	curl -sS --max-time 10 "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
new_relay() {
	: >"$T_DIR/relay.log"
	rm -rf "$MAILDIR"/* "$T_DIR/spool"
	RELAY_PORT=
	t_config "max_send_rate = $1" "instances = ${2:-1}" "${@:3}"
	sed -i "s/^\[relay\]\$/[relay]\nmetrics_listen = 127.0.0.1:$MPORT/" "$CONF"
	t_start_relay
}

t_start_fake --quiet
t_api_state '{"max_rate": 8, "max_24h": 50000, "sent_24h": 10}'
t_start_api

# ---- max_send_rate = auto: 8 per second / 2 instances = 4 per second
T_MODE=spool new_relay auto 2
wait_log 'account: max_send_rate auto: 4 per second \(MaxSendRate 8 / instances 2\)'
[ "$(metric sesrelay_account_max_send_rate)" = 8 ] || t_fail "max_send_rate metric: $(metric sesrelay_account_max_send_rate)"
[ "$(metric sesrelay_account_send_rate)" = 4 ] || t_fail "send_rate metric: $(metric sesrelay_account_send_rate)"
send 32 || t_fail "messages not accepted"
t_wait_queue_empty 40 || t_fail "not delivered within 40 s"
[ "$(t_messages)" -eq 32 ] || t_fail "expected 32 messages, got $(t_messages)"
# 32 recipients at 4/s: the first second's 4, then 28 more over 7 s
stat -c %.Y "$MAILDIR"/*.env | sort -n >"$T_DIR/times"
read -r spread rate < <(awk 'NR == 1 {a = $1} {b = $1} END {printf "%.2f %.3f\n", b - a, (NR - 4) / (b - a)}' "$T_DIR/times")
awk -v s="$spread" -v r="$rate" 'BEGIN { exit !(s >= 5 && r >= 3.6 && r <= 4.4) }' ||
	t_fail "auto rate: 32 recipients over $spread s = $rate per second (want 4 +- 10 %)"
[ "$(metric sesrelay_account_sent_last_24h)" = 42 ] || t_fail "sent_last_24h: $(metric sesrelay_account_sent_last_24h) (want 10 + 32)"
t_ok "max_send_rate = auto: MaxSendRate 8 / instances 2 -> measured $rate per second over $spread s"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# ---- the daily quota: 5 left of 100; then used up; then free again
t_api_state '{"max_rate": 50, "max_24h": 100, "sent_24h": 95}'
T_ACCOUNT_POLL=1s T_MODE=spool new_relay 0
wait_log 'account: GetAccount answers'
send 8 || t_fail "messages not accepted"
wait_log 'account: holding mail: the daily sending quota of the SES account is used up \(100 of 100'
sleep 2.5	# two polls: still 95 sent by SES + 5 by us
[ "$(t_messages)" -eq 5 ] || t_fail "with 5 left of the quota, $(t_messages) messages went out"
for _ in $(seq 30); do [ "$(t_queue_left)" -eq 3 ] && break; sleep 0.1; done	# the 5th leaves the spool
[ "$(t_queue_left)" -eq 3 ] || t_fail "3 messages should wait in the queue, $(t_queue_left) do: $(ls -la "$T_DIR/spool/queue") $(cat "$T_DIR/relay.log")"
[ "$(grep -c 'holding mail' "$T_DIR/relay.log")" = 1 ] || t_fail "hold logged more than once: $(grep 'holding' "$T_DIR/relay.log")"
[ "$(metric sesrelay_account_held)" = 1 ] || t_fail "held metric: $(metric sesrelay_account_held)"
t_api_state '{"max_rate": 50, "max_24h": 100, "sent_24h": 5}'	# a day later
t_wait_queue_empty 10 || t_fail "not delivered after the quota freed up"
wait_log 'account: sending again'
[ "$(t_messages)" -eq 8 ] || t_fail "expected 8 messages in all, got $(t_messages)"
for i in $(seq 0 7); do
	[ "$(grep -l "^rcpt=r$i@example.net" "$MAILDIR"/*.env | wc -l)" = 1 ] || t_fail "r$i@example.net not delivered exactly once"
done
[ "$(metric sesrelay_account_held)" = 0 ] || t_fail "held metric after: $(metric sesrelay_account_held)"
t_ok "quota: 5 of 8 sent with 5 left, 3 kept queued (logged once), delivered once after the quota freed up"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# ---- passthrough: paused account, quota used up -> 451 4.7.0 with the reason
t_api_state '{"sending_enabled": false}'
T_ACCOUNT_POLL=1s T_MODE=passthrough new_relay 0
wait_log 'account: holding mail: sending is paused'
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nQUIT\r\n' |
	$PY "$TESTS_DIR/smtp_client.py" raw "$RELAY_PORT" --timeout 10 >"$T_DIR/pt.out"
grep -q '^451 4\.7\.0 Try again later: sending is paused for the SES account (SendingEnabled false)' "$T_DIR/pt.out" ||
	t_fail "paused, passthrough: $(cat "$T_DIR/pt.out")"
t_api_state '{"max_24h": 10, "sent_24h": 10}'
wait_log 'holding mail: the daily sending quota'
printf 'EHLO t\r\nMAIL FROM:<app@example.com>\r\nQUIT\r\n' |
	$PY "$TESTS_DIR/smtp_client.py" raw "$RELAY_PORT" --timeout 10 >"$T_DIR/pt.out"
grep -q '^451 4\.7\.0 Try again later: the daily sending quota of the SES account is used up (10 of 10' "$T_DIR/pt.out" ||
	t_fail "quota, passthrough: $(cat "$T_DIR/pt.out")"
t_api_state '{}'
wait_log 'account: sending again'
send 1 || t_fail "passthrough after the hold: not accepted"
t_ok "passthrough: paused and quota used up answer 451 4.7.0 with the reason; mail goes again after"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# ---- the API down: mail flows at the configured rate
t_stop_api
T_MODE=spool new_relay 5
wait_log 'account: GetAccount failed \(transport\): .*mail goes on at 5 per second, without the daily quota check'
send 15 || t_fail "messages not accepted with the API down"
t_wait_queue_empty 20 || t_fail "not delivered with the API down"
[ "$(t_messages)" -eq 15 ] || t_fail "API down: $(t_messages) of 15 delivered"
spread=$(stat -c %.Y "$MAILDIR"/*.env | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.2f", b - a}')
awk -v s="$spread" 'BEGIN { exit !(s >= 1.8) }' || t_fail "15 at 5/s went out within $spread s"
[ "$(metric sesrelay_account_api_up)" = 0 ] || t_fail "api_up: $(metric sesrelay_account_api_up)"
[ "$(metric 'sesrelay_account_api_requests_total{result="transport"}')" -ge 1 ] || t_fail "transport failures not counted"
t_ok "API down: 15 messages at the configured 5 per second ($spread s), logged, api_up 0"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# ---- auto, and the API never answered: the fallback rate (1 per second)
T_MODE=spool new_relay auto 1
wait_log 'account: max_send_rate auto: 1 per second \(GetAccount has not answered'
send 3 || t_fail "messages not accepted"
t_wait_queue_empty 20 || t_fail "not delivered at the fallback rate"
spread=$(stat -c %.Y "$MAILDIR"/*.env | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.2f", b - a}')
awk -v s="$spread" 'BEGIN { exit !(s >= 1.8) }' || t_fail "3 at 1/s went out within $spread s"
[ "$(metric sesrelay_account_rate_fallback)" = 1 ] || t_fail "rate_fallback: $(metric sesrelay_account_rate_fallback)"
t_ok "auto without an answer: the fallback rate of 1 per second ($spread s for 3)"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
