#!/bin/bash
# spool_journal.sh — the journal is what makes a 250 durable in spool mode:
# queue files are not synced, so after a power loss one may be missing or
# hold other bytes.  Simulated here: five messages are acknowledged while
# SES is down, the daemon is killed with -9, then two queue files are
# deleted (one of them listed in journal.done, as if delivered before the
# crash), one is cut short and one gets the bytes of another message.  At
# the next start the journal must put back exactly what is missing, and
# after a clean stop the journal must be empty (a clean start reads nothing).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || exit 77

t_start_fake --quiet
t_stop_fake		# SES down: everything stays queued
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 1s"
t_start_relay

/usr/bin/python3 - "$RELAY_PORT" >"$T_DIR/send.out" <<'PY'
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    for i in range(5):
        body = "Subject: journal %d\r\nX-Test-Seq: %d\r\n\r\n" % (i, i) + \
            "".join("line %d of message %d\r\n" % (n, i) for n in range(200))
        s.sendmail("app@example.com", ["rcpt%d@example.net" % i], body.encode())
print("sent=5")
PY
grep -q '^sent=5$' "$T_DIR/send.out" || t_fail "could not send: $(cat "$T_DIR/send.out")"
kill -9 "$RELAY_PID"
wait "$RELAY_PID" 2>/dev/null || true

# the five queue files, by the message they hold
declare -A file
for f in "$SPOOL"/queue/*; do
	case $f in *.state) continue ;; esac
	seq=$(sed -n 's/^X-Test-Seq: \([0-9]*\).*/\1/p' "$f")
	file[$seq]=$f
done
[ "${#file[@]}" = 5 ] || t_fail "expected 5 queue files, found ${#file[@]}: $(ls "$SPOOL/queue")"
head -c 40 "$SPOOL/journal" | grep -q '^J1 ' || t_fail "the journal holds no record after a crash"
rm "${file[0]}"					# the rename was lost
rm "${file[1]}"; basename "${file[1]}" >>"$SPOOL/journal.done"	# delivered
truncate -s 10 "${file[2]}"			# data lost
cp "${file[4]}" "${file[3]}"			# stale bytes of another file

t_start_fake --quiet
: >"$T_DIR/relay.log"
t_start_relay
# the listener may be up before the spool is opened: wait for the replay
for _ in $(seq 100); do
	grep -q 'journal: [0-9]* messages checked' "$T_DIR/relay.log" && break
	sleep 0.1
done
grep -q 'journal: 5 messages checked, 3 restored' "$T_DIR/relay.log" ||
	t_fail "replay: $(grep journal "$T_DIR/relay.log" || cat "$T_DIR/relay.log")"
t_wait_queue_empty 30 || t_fail "$(t_queue_left) messages still queued"
arrived=$(grep -h '^X-Test-Seq: ' "$MAILDIR"/*.eml | tr -d '\r' | awk '{print $2}' | sort -n | tr '\n' ' ')
[ "$arrived" = "0 2 3 4 " ] || t_fail "arrived: '$arrived', expected '0 2 3 4 ' (1 was done before the crash)"
for f in "$MAILDIR"/*.eml; do
	n=$(grep -c '^line [0-9]* of message' "$f")
	[ "$n" = 200 ] || t_fail "$f: $n body lines, expected 200"
done
t_ok "after a simulated power loss the journal restored 3 queue files; 4 messages delivered whole, the done one not again"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
[ "$(head -c 1 "$SPOOL/journal" | od -An -c | tr -d ' ')" = '\n' ] ||
	t_fail "the journal is not empty after a clean stop"
[ ! -s "$SPOOL/journal.done" ] || t_fail "journal.done is not empty after a clean stop"
t_ok "a clean stop leaves an empty journal"
