#!/bin/bash
# fault_spool.sh — a hostile or broken SES endpoint, spool mode.  For each
# fault of the fake SES (--fault, see tests/fake_ses.c) the client still
# gets "250 queued"; the delivery attempts fail and are logged as deferred
# with a readable reason; the message stays in the queue; and once the
# endpoint is healthy again (the fake restarted on the same port without
# the fault) it is delivered exactly once.  A stalled endpoint keeps the
# message queued until the stalled connection ends.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
export LC_ALL=C

queue() {	# TO: the client must be told "queued"
	local out
	out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 \
		--helo client.test --from app@example.com --to "$1" \
		--header "Subject: spool fault $1" 2>&1 || true)
	grep -q '^<-  250 2.0.0 Ok: queued as ' <<<"$out" ||
		t_fail "$1: not queued: $(grep '^<' <<<"$out" | tail -2)"
}
restart_fake() {	# [fake options]: same port, new options
	t_stop_fake
	t_start_fake --idle-timeout 5 "$@"
}
# wait_log ERE [seconds]: until the relay's log has a new line matching ERE
wait_log() {
	local n=$(( ${2:-15} * 10 ))
	for _ in $(seq "$n"); do
		tail -n +"$LOGPOS" "$T_DIR/relay.log" | grep -E "$1" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}

t_start_fake --idle-timeout 5
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay
n=0

# fault_case NAME FAULT ERE: deferred attempts log a reply matching ERE
fault_case() {
	local name=$1 fault=$2 ere=$3
	restart_fake --fault "$fault"
	LOGPOS=$(( $(wc -l <"$T_DIR/relay.log") + 1 ))
	queue "$name@example.net"
	wait_log "status=deferred reply=\"$ere" 15 ||
		t_fail "$name ($fault): no deferred attempt with a reply matching /$ere/: $(tail -n +"$LOGPOS" "$T_DIR/relay.log" | tail -3)"
	sleep 1.5	# at least one retry, still failing
	[ "$(t_queue_left)" = 1 ] || t_fail "$name: $(t_queue_left) messages queued, expected 1"
	[ "$(t_messages)" = "$n" ] || t_fail "$name: a message reached SES through the fault"
	kill -0 "$RELAY_PID" 2>/dev/null || t_fail "$name: sesrelayd died: $(tail -20 "$T_DIR/relay.log")"
	restart_fake
	t_wait_queue_empty 15 || t_fail "$name: not delivered after the fault was removed: $(tail -3 "$T_DIR/relay.log")"
	n=$((n + 1))
	[ "$(t_messages)" = "$n" ] || t_fail "$name: $(t_messages) messages at SES, expected $n (lost or duplicated)"
	t_ok "$name ($fault): queued, deferred ('$(tail -n +"$LOGPOS" "$T_DIR/relay.log" | grep -m1 -oE "status=deferred reply=\"[^\"]{0,60}" | cut -d'"' -f2)...'), delivered once healthy"
}

fault_case reset-in-data reset:BODY '451 4\.4\.2 .*may have been delivered'
fault_case reset-at-mail reset:MAIL '451 4\.4\.2 connection to SES'
fault_case tls-garbage tls-garbage '451 4\.7\.5 '
fault_case 421-after-mail 421:RCPT '4[0-9][0-9] .*Service not available'
fault_case 421-greeting 421:GREETING '4[0-9][0-9] .*Service not available'
fault_case garbage-reply garbage:MAIL '451 4\.5\.0 .*malformed'
fault_case huge-reply huge:MAIL '451 4\.5\.0 .*longer than'

# A stalled endpoint: greets, authenticates, then never answers MAIL.  The
# message waits in the queue (the relay's upstream command timeout is 60 s);
# when the stalled connection ends, it is retried and delivered.
restart_fake --fault stall:MAIL
queue stall@example.net
for _ in $(seq 100); do grep -q 'fault stall at MAIL' "$T_DIR/fake.log" && break; sleep 0.1; done
grep -q 'fault stall at MAIL' "$T_DIR/fake.log" || t_fail "stall: the fake never stalled"
sleep 3
[ "$(t_queue_left)" = 1 ] && [ "$(t_messages)" = "$n" ] ||
	t_fail "stall: queue $(t_queue_left), at SES $(t_messages): expected 1 and $n"
restart_fake
t_wait_queue_empty 20 || t_fail "stall: not delivered after the stalled connection ended: $(tail -3 "$T_DIR/relay.log")"
n=$((n + 1))
[ "$(t_messages)" = "$n" ] || t_fail "stall: $(t_messages) messages at SES, expected $n"
t_ok "stalled endpoint: the message waits in the queue, delivered once healthy"

# Replies in one-byte packets: delivered on the first attempt.
restart_fake --fault split
LOGPOS=$(( $(wc -l <"$T_DIR/relay.log") + 1 ))
queue split@example.net
t_wait_queue_empty 15 || t_fail "split replies: not delivered: $(tail -3 "$T_DIR/relay.log")"
n=$((n + 1))
[ "$(t_messages)" = "$n" ] || t_fail "split replies: $(t_messages) messages at SES, expected $n"
! tail -n +"$LOGPOS" "$T_DIR/relay.log" | grep 'status=deferred' >/dev/null ||
	t_fail "split replies: a deferred attempt: $(grep status=deferred "$T_DIR/relay.log" | tail -1)"
t_ok "replies split into one-byte packets: delivered at once"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
