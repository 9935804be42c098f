#!/bin/bash
# service_metrics.sh — [relay] metrics_listen: GET /metrics counts exactly
# what happened (messages accepted, refused for a duplicate header,
# refused by SES for an unverified address; recipients; deliveries;
# latency histograms), GET /healthz is 200 "ok" while SES answers and 503
# once the latest attempt failed, 200 again when SES is back (spool mode:
# by the next delivery; passthrough: by the probe /healthz starts).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
PY=/usr/bin/python3
[ -x $PY ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
LOG=$T_DIR/relay.log

# metrics_on ADDR: [relay] metrics_listen = ADDR in CONF
metrics_on() { sed -i "s/^\[relay\]\$/[relay]\nmetrics_listen = $1/" "$CONF"; }

# smtp FROM TO[,TO...] SUBJECT [extra header line]: one connection, one
# message; prints the reply to the final dot
smtp() {
	$PY - "$RELAY_PORT" "$@" <<'PY'
import smtplib, sys
port, sender, rcpts, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
extra = sys.argv[5] + "\r\n" if len(sys.argv) > 5 else ""
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\nbody\r\n" % (sender, rcpts[0], subject, extra)).encode()
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.ehlo("client.test")
    s.mail(sender)
    for r in rcpts:
        s.rcpt(r)
    code, text = s.data(msg)
    print(code, text.decode())
PY
}

scrape() { curl -sS --max-time 10 "http://127.0.0.1:$MPORT/metrics" >"$T_DIR/metrics" || t_fail "GET /metrics failed"; }
# metric NAME{labels}: its value in the last scrape
metric() {
	awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "missing" }' "$T_DIR/metrics"
}
expect() {	# NAME VALUE...
	local name=$1 want=$2 got
	got=$(metric "$name")
	[ "$got" = "$want" ] || t_fail "$name is $got, expected $want"
}
healthz() {	# prints the HTTP status, body in $T_DIR/healthz
	curl -sS --max-time 10 -o "$T_DIR/healthz" -w '%{http_code}' "http://127.0.0.1:$MPORT/healthz"
}

t_start_fake --quiet --idle-timeout 2
MPORT=$(t_free_port)
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s" "bounce = none"
metrics_on "127.0.0.1:$MPORT"
t_start_relay
grep -q "metrics on http://127.0.0.1:$MPORT/metrics" "$LOG" || t_fail "metrics listener not logged"

# before anything: healthy, all zero
[ "$(healthz)" = 200 ] || t_fail "/healthz before any attempt: $(cat "$T_DIR/healthz")"
[ "$(cat "$T_DIR/healthz")" = ok ] || t_fail "/healthz body: $(cat "$T_DIR/healthz")"
scrape
# t_start_relay's probe of the port is the only connection so far
expect sesrelay_smtp_connections_total 1
expect 'sesrelay_smtp_messages_total{result="accepted"}' 0
expect sesrelay_upstream_sessions_total 0
expect sesrelay_upstream_last_success_timestamp_seconds 0
t_ok "before any mail: /healthz 200 ok, counters at 0"

# --- the traffic: 3 good messages (4 recipients), 1 refused at DATA for a
# duplicate Subject, 1 SES refuses (unverified address)
for m in "ok1@example.net" "ok2@example.net,ok3@example.net" "ok4@example.net"; do
	r=$(smtp app@example.com "$m" good)
	[[ $r == "250 2.0.0 Ok: queued as "* ]] || t_fail "not queued: $r"
done
r=$(smtp app@example.com dup@example.net dup "Subject: twice")
[[ $r == 554* ]] || t_fail "duplicate Subject not refused: $r"
r=$(smtp app@example.com unverified-m@example.net doomed)
[[ $r == "250 2.0.0 Ok: queued as "* ]] || t_fail "not queued: $r"
t_wait_queue_empty 15 || t_fail "queue not emptied: $(tail -3 "$LOG")"
[ "$(t_messages)" -eq 3 ] || t_fail "expected 3 messages at SES, got $(t_messages)"

scrape
expect sesrelay_smtp_connections_total 6
expect sesrelay_smtp_connections_refused_total 0
expect 'sesrelay_smtp_messages_total{result="accepted"}' 4
expect 'sesrelay_smtp_messages_total{result="refused"}' 1
expect 'sesrelay_smtp_messages_total{result="deferred"}' 0
expect sesrelay_smtp_recipients_total 5
expect sesrelay_smtp_reply_seconds_count 5
expect 'sesrelay_smtp_reply_seconds_bucket{le="+Inf"}' 5
expect 'sesrelay_deliveries_total{result="sent"}' 3
expect 'sesrelay_deliveries_total{result="deferred"}' 0
expect 'sesrelay_deliveries_total{result="failed"}' 1
expect 'sesrelay_delivery_recipients_total{result="sent"}' 4
expect 'sesrelay_delivery_recipients_total{result="failed"}' 1
expect sesrelay_bounces_total 0
expect sesrelay_delivery_delay_seconds_count 3
expect sesrelay_queue_messages 0
expect sesrelay_queue_oldest_age_seconds 0
expect sesrelay_upstream_tls_failures_total 0
expect sesrelay_upstream_auth_failures_total 0
expect sesrelay_upstream_throttled_total 0
expect sesrelay_healthy 1
# the versions sesrelayd -V prints, as labels
V=$("$SESRELAYD" -V)
ver() { sed -n "s/^$1 \([^ ]*\).*/\1/p" <<<"$V"; }
expect 'sesrelay_build_info{version="'"$(ver sesrelayd)"'",mode="spool",openssl="'"$(ver OpenSSL)"'",libevent="'"$(ver libevent)"'",libcurl="'"$(ver libcurl)"'",jansson="'"$(ver jansson)"'"}' 1
[ "$(metric sesrelay_smtp_received_bytes_total)" -gt 0 ] || t_fail "no bytes counted"
[ "$(metric sesrelay_upstream_sessions_total)" -ge 1 ] || t_fail "no upstream session counted"
last=$(metric sesrelay_upstream_last_success_timestamp_seconds)
[ $(( $(date +%s) - last )) -le 30 ] || t_fail "last success $last is not recent"
# histogram buckets are cumulative and end at the count
$PY - "$T_DIR/metrics" <<'PY' || t_fail "histogram buckets are not cumulative"
import re, sys
b = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\w+)_bucket\{le="([^"]+)"\} (\d+)$', line)
    if m:
        b.setdefault(m[1], []).append(int(m[3]))
assert set(b) == {"sesrelay_smtp_reply_seconds", "sesrelay_delivery_delay_seconds"}, b
for v in b.values():
    assert v == sorted(v) and len(v) == 13, v
PY
# every sample has HELP and TYPE
$PY - "$T_DIR/metrics" <<'PY' || t_fail "metrics without # TYPE"
import sys
typed = set()
for line in open(sys.argv[1]):
    if line.startswith("# TYPE "):
        typed.add(line.split()[2])
    elif not line.startswith("#"):
        name = line.split("{")[0].split()[0]
        base = name
        for suf in ("_bucket", "_sum", "_count"):
            if name.endswith(suf) and name[:-len(suf)] in typed:
                base = name[:-len(suf)]
        assert base in typed, name
PY
t_ok "/metrics: 5 more connections, 4 accepted, 1 refused, 5 recipients, 3 sent, 1 failed (SES refused), histograms"

# --- other paths and methods
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/")
[ "$code" = 404 ] || t_fail "GET / gave $code, not 404"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$MPORT/metrics")
[ "$code" = 501 ] || t_fail "POST /metrics gave $code, not 501"
t_ok "/ is 404, POST is 501 (GET and HEAD only)"

# --- SES gone: a delivery fails, /healthz 503; back: 200
[ "$(healthz)" = 200 ] || t_fail "/healthz while SES answers: $(cat "$T_DIR/healthz")"
# sesrelay health (the container's HEALTHCHECK): SMTP greeting, /healthz
out=$("$SESRELAY" health -c "$CONF") || t_fail "sesrelay health while all is well: $out"
grep -q "^smtp 127.0.0.1:$RELAY_PORT: 220 relay.test ESMTP" <<<"$out" &&
	grep -q "^http 127.0.0.1:$MPORT/healthz: 200 ok\$" <<<"$out" || t_fail "sesrelay health: $out"
t_stop_fake
r=$(smtp app@example.com outage@example.net outage)
[[ $r == "250 2.0.0 Ok: queued as "* ]] || t_fail "not queued: $r"
for _ in $(seq 100); do grep -q 'delivery id=.*status=deferred' "$LOG" && break; sleep 0.1; done
grep -q 'delivery id=.*status=deferred' "$LOG" || t_fail "the delivery did not fail"
[ "$(healthz)" = 503 ] || t_fail "/healthz with SES down: $(cat "$T_DIR/healthz")"
grep -q '^failing: upstream attempts failing since' "$T_DIR/healthz" || t_fail "503 body: $(cat "$T_DIR/healthz")"
rc=0; out=$("$SESRELAY" health -c "$CONF") || rc=$?
[ $rc = 1 ] && grep -q "^http 127.0.0.1:$MPORT/healthz: 503 failing: " <<<"$out" ||
	t_fail "sesrelay health with SES down: exit $rc: $out"
"$SESRELAY" health -s -c "$CONF" >/dev/null || t_fail "sesrelay health -s (SMTP only) fails while the relay is up"
scrape
expect sesrelay_healthy 0
expect sesrelay_queue_messages 1
[ "$(metric 'sesrelay_deliveries_total{result="deferred"}')" -ge 1 ] || t_fail "deferred delivery not counted"
t_ok "SES down, delivery deferred: /healthz 503, sesrelay_healthy 0, queue 1"

t_start_fake --quiet --idle-timeout 2
t_wait_queue_empty 15 || t_fail "queued mail not delivered after SES came back"
[ "$(healthz)" = 200 ] || t_fail "/healthz after SES came back: $(cat "$T_DIR/healthz")"
t_ok "SES back, mail delivered: /healthz 200"
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || t_fail "sesrelayd exited non-zero"
rc=0; out=$("$SESRELAY" health -s -c "$CONF") || rc=$?
[ $rc = 1 ] && grep -q "^smtp 127.0.0.1:$RELAY_PORT: cannot connect: Connection refused" <<<"$out" ||
	t_fail "sesrelay health with the relay stopped: exit $rc: $out"
t_ok "sesrelay health: 0 while serving, 1 with SES down (/healthz 503) or the relay stopped; -s checks SMTP only"
! grep -qE 'Sanitizer|runtime error' "$LOG" || t_fail "sanitizer report"

# --- passthrough: the 451 makes it 503; with SES back and no traffic, the
# probe /healthz starts brings it back to 200
T_MODE=passthrough t_config
if $PY -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	MHOST='[::1]'		# and IPv6 works
else
	MHOST=127.0.0.1
fi
metrics_on "$MHOST:$MPORT"
healthz() { curl -sS --max-time 10 -o "$T_DIR/healthz" -w '%{http_code}' "http://$MHOST:$MPORT/healthz"; }
t_start_relay
t_stop_fake
r=$(smtp app@example.com pt@example.net passthrough)
[[ $r == 451* ]] || t_fail "passthrough with SES down: $r"
t_start_fake --quiet --idle-timeout 2	# back, but nothing was sent since
[ "$(healthz)" = 503 ] || t_fail "/healthz after a 451: $(cat "$T_DIR/healthz")"
grep -q 'probing SES now' "$T_DIR/healthz" || t_fail "no probe started: $(cat "$T_DIR/healthz")"
ok=0
for _ in $(seq 50); do
	[ "$(healthz)" = 200 ] && { ok=1; break; }
	sleep 0.2
done
[ $ok = 1 ] || t_fail "/healthz did not recover by probing: $(cat "$T_DIR/healthz")"
grep -q 'health: probe of SES passed' "$LOG" || t_fail "no probe logged"
curl -sS --max-time 10 "http://$MHOST:$MPORT/metrics" >"$T_DIR/metrics"
expect 'sesrelay_smtp_messages_total{result="deferred"}' 1
! grep -q '^sesrelay_queue_' "$T_DIR/metrics" || t_fail "queue metrics in passthrough mode"
t_ok "passthrough: 451 -> /healthz 503; SES back -> probe -> 200; no queue metrics"
