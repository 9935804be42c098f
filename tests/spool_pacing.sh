#!/bin/bash
# max_send_rate paces deliveries by recipients per second, as SES's quota
# counts them: 60 recipients at 10/s (a burst of one second's worth) take
# at least 5 s from the first transaction to the last.  A lower bound
# only: a slow machine cannot make this test fail.  No burst either: a
# message to more recipients than the rate goes in transactions of at
# most the rate, and no two transactions that arrive within half a
# second of each other carry more than the rate together.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || exit 77

t_start_fake --quiet
T_MODE=spool t_config "max_send_rate = 10"
t_start_relay

/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "messages not accepted"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    for m in range(6):
        rcpts = ["p%d-%d@example.net" % (m, i) for i in range(10)]
        s.sendmail("app@example.com", rcpts, b"Subject: paced\r\n\r\nhi\r\n")
PY
t_wait_queue_empty 30 || t_fail "not delivered within 30 s"
[ "$(t_messages)" -eq 6 ] || t_fail "expected 6 transactions, got $(t_messages)"
spread=$(stat -c %.Y "$MAILDIR"/*.env | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {printf "%.2f", b - a}')
awk -v s="$spread" 'BEGIN { exit !(s >= 4.5) }' ||
	t_fail "60 recipients at max_send_rate = 10 went out within $spread s (expected >= 5 s)"
t_ok "max_send_rate = 10: 60 recipients spread over $spread s"

# --- no burst: 40 + 5 recipients at 10/s; the rate also caps the chunks
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
rm -f "$MAILDIR"/*
t_start_relay
/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "messages not accepted"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("app@example.com", ["b%d@example.net" % i for i in range(40)],
               b"Subject: burst\r\n\r\nhi\r\n")
    s.sendmail("app@example.com", ["c%d@example.net" % i for i in range(5)],
               b"Subject: small\r\n\r\nhi\r\n")
PY
t_wait_queue_empty 30 || t_fail "not delivered within 30 s"
# one line per transaction: arrival time, recipients
for f in "$MAILDIR"/*.env; do
	echo "$(stat -c %.Y "$f") $(grep -c '^rcpt=' "$f")"
done | sort -n >"$T_DIR/txns"
total=$(awk '{n += $2} END {print n}' "$T_DIR/txns")
[ "$total" -eq 45 ] || t_fail "$total recipients delivered, not 45"
awk '$2 > 10 {exit 1}' "$T_DIR/txns" ||
	t_fail "a transaction carries more than max_send_rate = 10 recipients: $(awk '{print $2}' "$T_DIR/txns" | tr '\n' ' ')"
awk '{t[NR] = $1; n[NR] = $2}
    END {for (i = 1; i <= NR; i++) {s = 0
	for (j = i; j <= NR && t[j] - t[i] < 0.5; j++) s += n[j]
	if (s > 10) exit 1}}' "$T_DIR/txns" ||
	t_fail "more than 10 recipients within half a second: $(tr '\n' ' ' <"$T_DIR/txns")"
t_ok "max_send_rate = 10: $(wc -l <"$T_DIR/txns") transactions of at most 10, never more than 10 together"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
