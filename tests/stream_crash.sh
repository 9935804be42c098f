#!/bin/bash
# stream_crash.sh — spool mode, kill -9 in the middle of a 30 MB DATA loses
# nothing that got 250: with SES unreachable, a 30 MB message is accepted
# (250, streamed to its own spool file); a second 30 MB message is half
# sent (its tmp/ file is growing) when sesrelayd is killed with SIGKILL.
# After a restart with SES back, the first arrives byte-exact, the half
# one never does, and its tmp/ file is gone.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
SC=$TESTS_DIR/stream_client.py

t_start_fake --quiet
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_stop_fake			# SES down: the messages stay queued
t_start_relay

out=$("$PY" "$SC" "$RELAY_PORT" 30M)
case $out in "250 "*" | 250 2.0.0 Ok: queued as "*) ;; *) t_fail "30 MB: $out" ;; esac
sent=${out##*sha256=}
[ "$(t_queue_left)" = 1 ] || t_fail "30 MB accepted but $(t_queue_left) messages queued"
t_ok "30 MB accepted (250) while SES is down"

"$PY" "$SC" "$RELAY_PORT" 30M --stop-after 15000000 >"$T_DIR/partial.out" 2>&1 &
CLIENT=$!
T_PIDS+=("$CLIENT")
for _ in $(seq 300); do grep -q '^partial' "$T_DIR/partial.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^partial' "$T_DIR/partial.out" || t_fail "the second message was not sent: $(cat "$T_DIR/partial.out")"
# the relay is writing it to tmp/: wait until most of it is there
tmpsize=0
for _ in $(seq 100); do
	tmpsize=$(find "$SPOOL/tmp" -type f ! -name 'free.*' -printf '%s\n' | sort -n | tail -1)
	[ "${tmpsize:-0}" -gt 10000000 ] && break
	sleep 0.1
done
[ "${tmpsize:-0}" -gt 10000000 ] || t_fail "no growing tmp/ file for the half-sent message (largest: ${tmpsize:-none})"
kill -9 "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true
kill "$CLIENT" 2>/dev/null || true
t_ok "sesrelayd killed with SIGKILL while a 30 MB DATA was half received ($tmpsize octets in tmp/)"

t_start_fake --quiet
t_start_relay
t_wait_queue_empty 60 || t_fail "$(t_queue_left) messages still queued after 60 s: $(tail -5 "$T_DIR/relay.log")"
sleep 1
[ "$(t_messages)" = 1 ] || t_fail "$(t_messages) messages at SES, expected exactly the one that got 250"
got=$("$PY" - "$MAILDIR" <<'PY'
import glob, hashlib, sys
for p in glob.glob(sys.argv[1] + "/*.eml"):
    d = open(p, "rb").read()
    print(hashlib.sha256(d[d.index(b"\r\n\r\n") + 4:]).hexdigest())
PY
)
[ "$got" = "$sent" ] || t_fail "the accepted 30 MB message differs at SES: sent $sent, got $got"
left=$(find "$SPOOL/tmp" -type f ! -name 'free.*' | wc -l)
[ "$left" = 0 ] || t_fail "$left unfinished files left in tmp/"
grep -q 'removed unfinished' "$T_DIR/relay.log" || t_fail "the half-received file was not removed at start-up"
t_ok "after restart: the accepted 30 MB arrives byte-exact, the half-received one never, tmp/ clean"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
