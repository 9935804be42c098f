#!/bin/bash
# spool_envelope.sh — a message with a large envelope: 1000 recipients
# (the default max_recipients) of 76 characters each, an 80 KB envelope.
# It is queued while SES is down, listed by `sesrelay queue`, read back
# after a restart, and delivered to every recipient exactly once, in
# twenty transactions of 50.  Every file the spool holds is private
# (0600), and a clean stop leaves an empty journal and no reusable files.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }

t_start_fake --quiet
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_stop_fake
t_start_relay
/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "1000-recipient message refused"
import smtplib, sys
pad = "x" * 58
rcpts = ["r%04d.%s@example.net" % (i, pad) for i in range(1000)]
assert all(len(r) == 76 for r in rcpts)
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30) as s:
    s.sendmail("app@example.com", rcpts, b"Subject: many\r\n\r\nhello\r\n")
PY
qfile=$(find "$SPOOL/queue" -type f ! -name '*.state' | head -1)
[ "$(stat -c %s "$qfile")" -gt 65536 ] || t_fail "the envelope is only $(stat -c %s "$qfile") bytes"
out=$("$SESRELAY" queue -c "$CONF" 2>&1) || t_fail "sesrelay queue: $out"
grep -q ' 1000/1000 ' <<<"$out" || t_fail "sesrelay queue does not list the message with 1000 recipients: $out"
t_ok "1000 recipients ($(stat -c %s "$qfile") bytes of spool file): queued and listed"
for _ in $(seq 100); do [ -e "$qfile.state" ] && break; sleep 0.1; done
[ -e "$qfile.state" ] || t_fail "no .state file after the first attempt"
open=$(find "$SPOOL" -type f -perm /077 -printf '%m %p\n')
[ -z "$open" ] || t_fail "spool files others may read: $open"
t_ok "queue file, its .state file, journal and pid file are all mode 0600"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_start_fake --quiet
t_start_relay
t_wait_queue_empty 60 || t_fail "not delivered after a restart: $(grep -E 'spool|delivery' "$T_DIR/relay.log" | tail -3)"
! grep -q 'not a valid spool file\|cannot read from the spool' "$T_DIR/relay.log" ||
	t_fail "the spool could not read its own file: $(grep -m1 'spool' "$T_DIR/relay.log")"
[ "$(t_messages)" -eq 20 ] || t_fail "expected 20 transactions, got $(t_messages)"
got=$(cat "$MAILDIR"/*.env | sed -n 's/^rcpt=//p' | sort | uniq | wc -l)
all=$(cat "$MAILDIR"/*.env | grep -c '^rcpt=')
[ "$got" = 1000 ] && [ "$all" = 1000 ] || t_fail "$got distinct recipients in $all deliveries, expected 1000 and 1000"
t_ok "after a restart: delivered to all 1000, each once, in 20 transactions"

# small messages leave their files for reuse; a clean stop gives the
# disk back
for i in $(seq 5); do
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 --from app@example.com \
		--to "small$i@example.net" >/dev/null 2>&1 || t_fail "small message $i refused"
done
t_wait_queue_empty 20 || t_fail "small messages not delivered"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
[ "$(stat -c %s "$SPOOL/journal")" -le 1 ] || t_fail "the journal keeps $(stat -c %s "$SPOOL/journal") bytes after a clean stop"
[ -z "$(ls -A "$SPOOL/tmp")" ] || t_fail "tmp/ keeps files after a clean stop: $(ls "$SPOOL/tmp" | head -3)"
t_ok "a clean stop leaves an empty journal and nothing in tmp/"
