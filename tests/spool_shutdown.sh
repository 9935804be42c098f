#!/bin/bash
# Stopping in spool mode: whatever is in flight when sesrelayd stops, it
# exits cleanly (0, no sanitizer report), the delivery progress is on
# disk, and the next start delivers the rest, each recipient once.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || exit 77
[ -x /usr/bin/python3 ] || exit 77

# wait_exit PID: 0 once PID has exited (within 10 s); its status in $rc
wait_exit() {
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$1" 2>/dev/null || return 1
	rc=0
	wait "$1" || rc=$?
}

# rcpt_count ADDRESS: how many transactions at SES carried it
rcpt_count() { cat "$MAILDIR"/*.env 2>/dev/null | grep -c "^rcpt=$1\$" || true; }

# --- a second SIGTERM while deliveries hang at SES: exit now, keep them
t_start_fake --fault stall:DOT
T_MODE=spool t_config "null_sender = bounces@example.com" \
	"" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay
for from in app@example.com '<>'; do
	out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from "$from" --to stuck@example.net 2>&1 || true)
	grep -q '^<-  250 2.0.0 Ok: queued as ' <<<"$out" || t_fail "not queued: $out"
done
for _ in $(seq 100); do
	[ "$(grep -c 'fault stall' "$T_DIR/fake.log")" -ge 2 ] && break
	sleep 0.1
done
[ "$(grep -c 'fault stall' "$T_DIR/fake.log")" -ge 2 ] ||
	t_fail "the deliveries never reached the stalled DOT"
# sesrelay queue shows the envelope sender as the client gave it
listing=$("$SESRELAY" queue -c "$CONF")
grep -q ' <app@example.com> 1/1 ' <<<"$listing" || t_fail "sesrelay queue: $listing"
grep -q ' <> 1/1 ' <<<"$listing" || t_fail "sesrelay queue does not show <> for MAIL FROM:<>: $listing"
! grep -q 'bounces@example.com' <<<"$listing" || t_fail "sesrelay queue shows null_sender: $listing"
kill -TERM "$RELAY_PID"
sleep 1
kill -0 "$RELAY_PID" 2>/dev/null || t_fail "sesrelayd exited on the first SIGTERM with a delivery in flight"
kill -TERM "$RELAY_PID"
wait_exit "$RELAY_PID" || t_fail "sesrelayd did not exit within 10 s of the second SIGTERM"
[ "$rc" -eq 0 ] || t_fail "sesrelayd exited $rc: $(tail -20 "$T_DIR/relay.log")"
! grep -qE 'Sanitizer|runtime error' "$T_DIR/relay.log" ||
	t_fail "sanitizer report: $(grep -A30 -E 'Sanitizer|runtime error' "$T_DIR/relay.log" | head -40)"
[ "$(t_queue_left)" -eq 2 ] || t_fail "expected the messages kept in the queue, have $(t_queue_left)"
t_stop_fake
t_start_fake --quiet
t_start_relay
t_wait_queue_empty 15 || t_fail "not delivered after the restart"
[ "$(rcpt_count stuck@example.net)" -eq 2 ] || t_fail "delivered $(rcpt_count stuck@example.net) times, not twice (two messages)"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "second SIGTERM with deliveries in flight: exit 0, kept, delivered after the restart"

# --- SIGTERM in the middle of a multi-chunk attempt (the next chunk
# waits for max_send_rate): what was delivered is saved, not sent again
rm -f "$MAILDIR"/*
T_MODE=spool t_config "max_send_rate = 50" "" "[queue]" "retry_min = 1s" "retry_max = 1s"
t_start_relay
/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "120-recipient message refused"
import smtplib, sys
rcpts = ["m%03d@example.net" % i for i in range(120)]
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("app@example.com", rcpts, b"Subject: many\r\n\r\nhello\r\n")
PY
for _ in $(seq 100); do [ "$(t_messages)" -ge 1 ] && break; sleep 0.05; done
[ "$(t_messages)" -ge 1 ] || t_fail "the first chunk did not arrive"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
before=$(t_messages)
[ "$(t_queue_left)" -eq 1 ] || t_fail "the message is not kept across SIGTERM"
t_start_relay
t_wait_queue_empty 15 || t_fail "not delivered after the restart"
twice=$(cat "$MAILDIR"/*.env | sed -n 's/^rcpt=m/m/p' | sort | uniq -d)
[ -z "$twice" ] || t_fail "delivered twice after a clean stop: $(echo $twice | wc -w) recipients, e.g. $(echo $twice | cut -c1-60)"
n=$(cat "$MAILDIR"/*.env | grep -c '^rcpt=m')
[ "$n" -eq 120 ] || t_fail "$n recipients delivered, not 120"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "SIGTERM after $before of the chunks: the rest after the restart, none twice"
