#!/bin/bash
# Lifetime expiry in spool mode: every recipient of an accepted message
# ends delivered or in the DSN, never neither -- also when the lifetime
# runs out in the middle of a paced multi-chunk attempt, with a recipient
# of an earlier chunk deferred by SES (a 451 at RCPT, every time).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || exit 77

t_start_fake --quiet --refuse-rcpt 451:defer
# 50 recipients per second: 150 recipients take three chunks of 50, two
# seconds from the first to the last, past the lifetime of 2 s
T_MODE=spool t_config "max_send_rate = 50" "null_sender = bounces@example.com" \
	"" "[queue]" "retry_min = 1s" "retry_max = 1s" "lifetime = 2s"
t_start_relay

/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "150-recipient message refused"
import smtplib, sys
rcpts = ["r%03d@example.net" % i for i in range(150)]
rcpts[7] = "defer-007@example.net"
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("app@example.com", rcpts,
               b"From: app@example.com\r\nSubject: many\r\n\r\nhello\r\n")
PY
t_wait_queue_empty 20 || t_fail "still queued: $(ls "$SPOOL/queue")"

dsn=$(grep -l '^rcpt=app@example.com' "$MAILDIR"/*.env 2>/dev/null | head -1 || true)
[ -n "$dsn" ] || t_fail "no DSN to the sender: $(grep -E 'expired|bounce' "$T_DIR/relay.log")"
eml=${dsn%.env}.eml
delivered=$(grep -L '^rcpt=app@example.com' "$MAILDIR"/*.env | xargs sed -n 's/^rcpt=//p' | sort)
bounced=$(sed -n 's/^Final-Recipient: rfc822; \(.*\)\r$/\1/p' "$eml" | sort)
all=$(for i in $(seq 0 149); do printf 'r%03d@example.net\n' "$i"; done |
	sed 's/^r007@/defer-007@/' | sort)
twice=$(comm -12 <(echo "$delivered") <(echo "$bounced"))
[ -z "$twice" ] || t_fail "delivered and bounced: $twice"
lost=$(comm -23 <(echo "$all") <(sort -u <(echo "$delivered"; echo "$bounced")))
[ -z "$lost" ] || t_fail "neither delivered nor bounced: $(echo $lost)"
grep -qx 'defer-007@example.net' <<<"$bounced" || t_fail "the deferred recipient is not in the DSN"
[ "$(grep -c . <<<"$delivered")" -eq 149 ] ||
	t_fail "expected the 149 others delivered, got $(grep -c . <<<"$delivered")"
t_ok "lifetime expiry mid-attempt: 149 delivered, the deferred one bounced, none lost"

# the DSN says why (RFC 3463 5.4.7: delivery time expired), with no
# Diagnostic-Code: expiry is the relay's reason, not an SMTP reply
group=$(tr -d '\r' <"$eml" | sed -n '/^Final-Recipient: rfc822; defer-007@example.net$/,/^$/p')
grep -qx 'Action: failed' <<<"$group" || t_fail "no Action: failed in: $group"
grep -qx 'Status: 5.4.7' <<<"$group" || t_fail "expiry is not Status 5.4.7: $group"
! grep -q '^Diagnostic-Code:' <<<"$group" || t_fail "a Diagnostic-Code for a local reason: $group"
grep -q '^<defer-007@example.net>: lifetime expired; last error: 451 ' "$eml" ||
	t_fail "the DSN's text does not say why"
t_ok "expiry DSN: Status 5.4.7, no Diagnostic-Code, the reason in the text"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
