#!/bin/bash
# Spool mode: 250 only once on disk, then delivery at SES's pace through
# outages and throttling; 120 recipients go as 50+50+20; permanent
# failures bounce (DSN) or stay in failed/; lifetime expiry; sesrelay
# queue and flush; SIGTERM keeps the queue for the next start.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || exit 77

send() {	# from to [swaks options...]
	local from=$1 to=$2; shift 2
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from "$from" --to "$to" "$@" 2>&1 || true
}

queued() {	# like send; fails the test unless the relay said "queued"
	local out
	out=$(send "$@")
	grep -q '^<-  250 2.0.0 Ok: queued as [0-9A-F]\{16\}$' <<<"$out" ||
		t_fail "not queued: $(grep '^<-' <<<"$out" | tail -3)"
}

t_start_fake --quiet --idle-timeout 1
T_MODE=spool t_config "null_sender = bounces@example.com" \
	"" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay

# --- a plain message: 250 "queued as", then delivered, queue empty
out=$(send app@example.com one@example.net --header "Subject: plain")
grep -q '^<-  250 2.0.0 Ok: queued as [0-9A-F]\{16\}$' <<<"$out" || t_fail "no queued reply: $out"
qid=$(sed -n 's/^<-  250 2.0.0 Ok: queued as //p' <<<"$out")
t_wait_queue_empty 10 || t_fail "message not delivered: $(tail -3 "$T_DIR/relay.log")"
[ "$(t_messages)" -eq 1 ] || t_fail "expected 1 message at SES, got $(t_messages)"
grep -q "delivery id=$qid from=<app@example.com> rcpts=1 .*status=sent .*ses_id=0100" "$T_DIR/relay.log" ||
	t_fail "no delivery log line for $qid"
t_ok "spooled, delivered, logged with the SES message id"

# --- outage: the endpoint is down; mail waits in the queue, then goes out
t_stop_fake			# the endpoint is gone
for i in 1 2 3; do
	queued app@example.com "out$i@example.net" --header "Subject: outage $i"
done
sleep 1.5
[ "$(t_queue_left)" -eq 3 ] || t_fail "expected 3 queued during the outage, have $(t_queue_left)"
listing=$("$SESRELAY" queue -c "$CONF")
grep -q '^3 messages in' <<<"$listing" || t_fail "sesrelay queue: $listing"
grep -q 'app@example.com> 1/1' <<<"$listing" || t_fail "sesrelay queue lacks sender/recipients: $listing"
grep -q 'status=deferred' "$T_DIR/relay.log" || t_fail "no deferred delivery logged"
t_start_fake --quiet --idle-timeout 1	# back, same port
"$SESRELAY" flush -c "$CONF" | grep -q 'asked sesrelayd' || t_fail "sesrelay flush failed"
t_wait_queue_empty 15 || t_fail "outage mail not delivered after the endpoint came back"
[ "$(t_messages)" -eq 4 ] || t_fail "expected 4 messages at SES, got $(t_messages)"
t_ok "outage: queued, listed, retried, delivered after flush"

# --- throttling: 454 is retried
kill -USR2 "$FAKE_PID"		# throttle everything
queued app@example.com thr@example.net --header "Subject: throttled"
for _ in $(seq 50); do grep -q 'status=deferred reply="454 Throttling failure' "$T_DIR/relay.log" && break; sleep 0.1; done
grep -q 'status=deferred reply="454 Throttling failure' "$T_DIR/relay.log" || t_fail "throttling not deferred"
kill -USR2 "$FAKE_PID"
t_wait_queue_empty 15 || t_fail "throttled mail not retried"
[ "$(t_messages)" -eq 5 ] || t_fail "expected 5 messages at SES, got $(t_messages)"
t_ok "throttling: deferred, then delivered"

# --- 120 recipients: three upstream transactions, everyone exactly once
rm -f "$MAILDIR"/*
/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "120-recipient message refused"
import smtplib, sys
rcpts = ["r%03d@example.net" % i for i in range(120)]
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as s:
    s.sendmail("app@example.com", rcpts, b"Subject: many\r\n\r\nhello\r\n")
PY
t_wait_queue_empty 15 || t_fail "120-recipient message not delivered"
[ "$(t_messages)" -eq 3 ] || t_fail "expected 3 transactions, got $(t_messages)"
counts=$(for f in "$MAILDIR"/*.env; do grep -c '^rcpt=' "$f"; done | sort -n | tr '\n' ' ')
[ "$counts" = "20 50 50 " ] || t_fail "transactions carry $counts recipients, not 20 50 50"
got=$(cat "$MAILDIR"/*.env | sed -n 's/^rcpt=//p' | sort)
want=$(for i in $(seq 0 119); do printf 'r%03d@example.net\n' "$i"; done | sort)
[ "$got" = "$want" ] || t_fail "recipients differ from the 120 sent"
t_ok "120 recipients: 50 + 50 + 20, each once"

# --- permanent failure: a DSN to the sender, from null_sender
rm -f "$MAILDIR"/*
queued app@example.com unverified-x@example.net --header "Subject: doomed"
t_wait_queue_empty 15 || t_fail "failed message or its DSN still queued"
dsn=$(grep -l '^rcpt=app@example.com' "$MAILDIR"/*.env | head -1)
[ -n "$dsn" ] || t_fail "no DSN delivered to the sender"
grep -q '^mail_from=bounces@example.com' "$dsn" || t_fail "DSN not sent from null_sender"
eml=${dsn%.env}.eml
grep -q 'Content-Type: multipart/report; report-type=delivery-status' "$eml" || t_fail "DSN is not a multipart/report"
grep -q 'Final-Recipient: rfc822; unverified-x@example.net' "$eml" || t_fail "DSN lacks Final-Recipient"
grep -q 'Action: failed' "$eml" || t_fail "DSN lacks Action: failed"
grep -q 'Subject: doomed' "$eml" || t_fail "DSN lacks the original headers"
t_ok "permanent failure: RFC 3464 DSN sent to the envelope sender"

# --- a bounce never bounces; <> from a client is sent as null_sender and
# its failure is kept in failed/
queued '<>' unverified-y@example.net --header "Subject: bounce of a bounce"
t_wait_queue_empty 15 || t_fail "null-sender message still queued"
ls "$SPOOL/failed/" | grep '\.reason$' >/dev/null || t_fail "nothing kept in failed/"
grep -q 'unverified-y@example.net' "$SPOOL"/failed/*.reason || t_fail "failed/ reason lacks the recipient"
grep -q "no DSN: the message was itself a bounce" "$T_DIR/relay.log" || t_fail "no log line for the kept failure"
t_ok "a bounce is never bounced: kept in failed/ with its reason"

# --- SIGTERM keeps the queue; the next start delivers it
t_stop_fake			# a real outage this time
queued app@example.com later@example.net --header "Subject: after restart"
kill -TERM "$RELAY_PID"
for _ in $(seq 100); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$RELAY_PID" 2>/dev/null && t_fail "sesrelayd did not stop on SIGTERM"
wait "$RELAY_PID" || t_fail "sesrelayd exited non-zero on SIGTERM"
[ "$(t_queue_left)" -eq 1 ] || t_fail "queue not kept across SIGTERM ($(t_queue_left))"
t_start_fake --quiet --idle-timeout 1
t_start_relay
t_wait_queue_empty 15 || t_fail "queued message not delivered after restart"
grep -q '^rcpt=later@example.net' "$MAILDIR"/*.env || t_fail "the message queued before SIGTERM did not arrive"
t_ok "SIGTERM keeps the queue; restart delivers it"

# --- lifetime: what cannot be delivered in time fails (bounce = none)
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || true
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 1s" "lifetime = 2s" "bounce = none"
kill -USR1 "$FAKE_PID"		# down for good
t_start_relay
queued app@example.com expire@example.net --header "Subject: too late"
t_wait_queue_empty 15 || t_fail "expired message still queued"
grep -q 'expire@example.net>: lifetime expired' "$SPOOL"/failed/*.reason || t_fail "no lifetime-expired reason in failed/"
t_ok "lifetime: expired message kept in failed/ (bounce = none)"
