#!/bin/bash
# max_send_rate paces deliveries by recipients per second, as SES's quota
# counts them: 60 recipients at 10/s (a burst of one second's worth) take
# at least 5 s from the first transaction to the last.  A lower bound
# only: a slow machine cannot make this test fail.
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
