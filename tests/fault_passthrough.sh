#!/bin/bash
# fault_passthrough.sh — a hostile or broken SES endpoint, passthrough mode.
# For each fault of the fake SES (--fault, see tests/fake_ses.c): the
# client's reply to its final dot is a 4xx with the right code and a
# readable reason, nothing reaches SES, sesrelayd keeps serving the next
# client, and once the endpoint is healthy again (the fake restarted on the
# same port without the fault) the next message goes through.  Replies
# split into one-byte packets must simply work.  The stall case, which
# takes the relay's real 60 s command timeout, is tests/fault_stall.sh.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C

# send TO: one message through the relay; prints the reply to the final dot
send() {
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 90 \
		--helo client.test --from app@example.com --to "$1" \
		--header "Subject: fault test $1" >"$T_DIR/swaks.out" 2>&1 || true
	awk 'p { print substr($0, 5); exit } $0 == " -> ." { p = 1 }' "$T_DIR/swaks.out"
}
restart_fake() {	# [fake options]: same port, new options
	t_stop_fake
	t_start_fake --idle-timeout 5 "$@"
}
# serving: a new client is greeted and its EHLO answered
serving() {
	local out
	out=$(printf 'EHLO next.test\r\nQUIT\r\n' | "$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 10)
	grep -q '^220 ' <<<"$out" && grep -q '^250 ' <<<"$out" && grep -q '^221 ' <<<"$out" ||
		t_fail "$1: the next client is not served: $out"
	kill -0 "$RELAY_PID" 2>/dev/null || t_fail "$1: sesrelayd died: $(tail -20 "$T_DIR/relay.log")"
}

t_start_fake --idle-timeout 5
t_config
t_start_relay
n=0

# fault_case NAME FAULT ERE WHAT: the client's reply to the dot must match
# ERE (WHAT says it in words, for the log)
fault_case() {
	local name=$1 fault=$2 ere=$3 r
	restart_fake --fault "$fault"
	r=$(send "$name@example.net")
	printf '%s\n' "$r" | grep -qE "$ere" ||
		t_fail "$name ($fault): expected a reply matching /$ere/, got '$r' ($(grep -E '^(<-|<\*\*)' "$T_DIR/swaks.out" | tail -3))"
	grep -q "fault .* at \|fault tls-garbage" "$T_DIR/fake.log" ||
		t_fail "$name: the fake never injected $fault: $(tail -5 "$T_DIR/fake.log")"
	[ "$(t_messages)" = "$n" ] || t_fail "$name: a message reached SES through the fault"
	serving "$name"
	restart_fake
	r=$(send "after-$name@example.net")
	printf '%s\n' "$r" | grep -qE '^250 ' ||
		t_fail "$name: after the fault was removed: '$r' ($(tail -3 "$T_DIR/relay.log"))"
	n=$((n + 1))
	[ "$(t_messages)" = "$n" ] || t_fail "$name: $(t_messages) messages at SES, expected $n"
	echo "ok - $name ($fault): client told '$4', next client served, delivered once healthy"
	: >"$T_DIR/fake.log"
}

fault_case reset-in-data reset:BODY \
	'^451 4\.4\.2 .*may have been delivered' "451 4.4.2 ... may have been delivered"
fault_case reset-at-mail reset:MAIL \
	'^451 4\.4\.2 .*connection to SES' "451 4.4.2 connection to SES ..."
fault_case tls-garbage tls-garbage \
	'^451 4\.7\.5 ' "451 4.7.5 <TLS failure>"
fault_case 421-after-mail 421:RCPT \
	'^451 .*Service not available' "451 <SES's 421 text>"
fault_case 421-greeting 421:GREETING \
	'^451 .*Service not available' "451 <SES's 421 text>"
fault_case garbage-reply garbage:MAIL \
	'^451 4\.5\.0 .*malformed' "451 4.5.0 SES sent a malformed reply"
fault_case garbage-greeting garbage:GREETING \
	'^451 4\.5\.0 .*malformed' "451 4.5.0 SES sent a malformed reply"
fault_case huge-reply huge:MAIL \
	'^451 4\.5\.0 .*longer than' "451 4.5.0 SES sent a reply line longer than ..."
fault_case huge-ehlo huge:EHLO \
	'^451 4\.5\.0 .*longer than' "451 4.5.0 SES sent a reply line longer than ..."

# SES's 421 after MAIL, the client pipelining: its reply to the dot is a
# 451, not SES's 421 (which would tell the client that this session
# closes: RFC 5321 3.8), and its session stays open and in step (the NOOP
# after it is answered, then QUIT).
restart_fake --fault 421:RCPT
out=$(printf 'EHLO c.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nNOOP\r\nQUIT\r\n' |
	"$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 20)
codes=$(grep -E '^[0-9]{3} ' <<<"$out" | cut -c1-3 | paste -sd' ' -)
[ "$codes" = "220 250 250 250 354 451 250 221" ] ||
	t_fail "421 after MAIL, pipelined: replies '$codes', expected 220 250 250 250 354 451 250 221: $(tr '\n' '|' <<<"$out")"
grep -q '^451 4\.0\.0 Service not available' <<<"$out" ||
	t_fail "421 after MAIL, pipelined: the 451 does not carry SES's text: $(tr '\n' '|' <<<"$out")"
t_ok "SES's 421 after MAIL, client pipelining: 451 with SES's text at the dot, session open and in step"

# Replies in one-byte packets (and one-byte TLS records): all fine.
restart_fake --fault split
r=$(send split@example.net)
printf '%s\n' "$r" | grep -qE '^250 2\.0\.0 Ok 0100' || t_fail "split replies: '$r' ($(tail -3 "$T_DIR/relay.log"))"
n=$((n + 1))
[ "$(t_messages)" = "$n" ] || t_fail "split replies: $(t_messages) messages at SES, expected $n"
t_ok "replies split into one-byte packets: delivered (250 with SES's id)"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
