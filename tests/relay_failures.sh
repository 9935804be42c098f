#!/bin/bash
# relay_failures.sh — failure paths of passthrough mode: what the client is
# told, and that nothing (or exactly the right thing) reaches SES, when the
# upstream certificate is wrong, the credentials are wrong, SES refuses,
# throttles, is down, drops the session, caps messages per session or cuts
# idle sessions; and when the client sends what SES would refuse (too big,
# too many recipients, duplicate header, long line), is not allowed, or
# tries SMTP smuggling.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C


t_certs

# pair NAME [fake options...]: a fake SES of its own under $T_DIR/NAME;
# then relay writes a config for it and relay_start starts sesrelayd.
# They set D, MAILDIR, FAKE_PORT, FAKE_PID, CONF, RELAY_PORT, RELAY_PID, LOG.
pair() {
	D=$T_DIR/$1
	shift
	mkdir -p "$D"
	FAKE_PORT=	# a new port (t_start_fake reuses FAKE_PORT)
	T_DIR=$D t_start_fake "$@"
}
relay() {
	RELAY_PORT=
	T_DIR=$D t_config
}
RELAYS=()
relay_start() {
	T_DIR=$D t_start_relay
	LOG=$D/relay.log
	RELAYS+=("$RELAY_PID:$LOG")
}
# relay_key 'key = value': a [relay] key (t_config's lines land in [ses]).
relay_key() { sed -i "/^\\[ses\\]/i $1" "$CONF"; }

# send [swaks options...]: one message through the current relay with
# swaks; prints the reply to the final dot ("" if swaks never got there).
send() {
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 \
		--helo client.test --from app@example.com "$@" \
		>"$D/swaks.out" 2>&1 || true
	awk 'p { print substr($0, 5); exit } $0 == " -> ." { p = 1 }' "$D/swaks.out"
}
# check_reply WHAT REPLY ERE: REPLY must match ERE.
check_reply() {
	printf '%s\n' "$2" | grep -qE "$3" ||
		t_fail "$1: expected a reply matching /$3/, got '$2' (swaks: $(tail -5 "$D/swaks.out" 2>/dev/null))"
}
# raw PORT [smtp_client options]: stdin in one write; the replies.
raw() { "$PY" "$CLIENT" raw "$@"; }
# fake_txn: transactions the current fake SES saw to their end (any reply):
# what the relay refuses itself must not even be tried upstream.
fake_txn() { grep -c ' reply=' "$D/fake.log" || true; }
# codes: the reply codes of raw's output, one per complete reply.
codes() { grep -E '^[0-9]{3} ' | cut -c1-3; }

# ---- idle upstream close (first half; the second half runs at the end) ----
pair idle --idle-timeout 3
relay
relay_start
IDLE_PORT=$RELAY_PORT IDLE_D=$D IDLE_MAILDIR=$MAILDIR
r=$(send --to one@example.net)
check_reply "idle: first message" "$r" '^250 '
idle_t0=$SECONDS

# ---- one healthy pair for the refusals ----
pair main
relay
relay_start

r=$(send --to unverified@example.net)
check_reply "SES 5xx passed through" "$r" '^554 .*Message rejected: Email address is not verified'
t_ok "SES's 554 reaches the client with SES's text"

kill -USR2 "$FAKE_PID"; sleep 0.3
r=$(send --to throttled@example.net)
check_reply "throttling" "$r" '^454 .*Throttling failure'
kill -USR2 "$FAKE_PID"; sleep 0.3
r=$(send --to after-throttle@example.net)
check_reply "after throttling" "$r" '^250 '
t_ok "SES's 454 Throttling failure reaches the client"
n0=$(t_messages)
x0=$(fake_txn)
[ "$x0" = 3 ] || t_fail "fake_txn: the fake logged $x0 transactions, expected 3: $(cat "$D/fake.log")"

# 51 recipients: the 51st gets 452 4.5.3 (SES takes 50 per message)
{
	printf 'EHLO client.test\r\nMAIL FROM:<app@example.com>\r\n'
	for i in $(seq 51); do printf 'RCPT TO:<r%d@example.net>\r\n' "$i"; done
	printf 'QUIT\r\n'
} | raw "$RELAY_PORT" --replies 56 >"$D/rcpt51.out"
got=$(codes <"$D/rcpt51.out" | paste -sd' ' -)
want="220 250 250 $(printf '250 %.0s' $(seq 50))452 221"
[ "$got" = "$want" ] || t_fail "51 RCPTs: replies $got, expected $want"
grep -qE '^452 4\.5\.3 ' "$D/rcpt51.out" || t_fail "51st RCPT: no '452 4.5.3': $(grep ^452 "$D/rcpt51.out")"
grep -qE '^452 4\.5\.3 .*at most 50 .*as SES takes' "$D/rcpt51.out" ||
	t_fail "51st RCPT: the 452 does not say SES's limit of 50: $(grep ^452 "$D/rcpt51.out")"
t_ok "51st RCPT refused with 452 4.5.3 (SES's limit)"

r=$(send --to dup@example.net --header 'Subject: one' --add-header 'Subject: two')
check_reply "duplicate Subject" "$r" "^554 .*Duplicate header"
[ "$(t_messages)" = "$n0" ] && [ "$(fake_txn)" = "$x0" ] ||
	t_fail "a message with a duplicate Subject was sent to SES"
t_ok "duplicate Subject refused at the end of DATA (554), nothing sent"

long=$(printf '%0999d' 0 | tr 0 x)
r=$(send --to long@example.net --body "short line
$long
after")
check_reply "999-character line" "$r" '^554 '
[ "$(t_messages)" = "$n0" ] && [ "$(fake_txn)" = "$x0" ] ||
	t_fail "a message with a 999-character line was sent to SES"
t_ok "999-character line refused (554), nothing sent"

# SMTP smuggling: the client's message "ends" with a bare-LF end of data,
# then a second transaction follows in the same write.
smuggle() {	# END-SEQUENCE
	printf 'EHLO smuggler.test\r\nMAIL FROM:<app@example.com>\r\n'
	printf 'RCPT TO:<victim@example.net>\r\nDATA\r\n'
	printf 'From: app@example.com\r\nSubject: first\r\n\r\nfirst body'
	printf '%b' "$1"
	printf 'MAIL FROM:<ceo@example.com>\r\nRCPT TO:<smuggled@example.net>\r\n'
	printf 'DATA\r\nFrom: ceo@example.com\r\nSubject: smuggled\r\n\r\n'
	printf 'smuggled body\r\n.\r\nQUIT\r\n'
}
for seq in '\n.\r\n' '\r\n.\n'; do
	smuggle "$seq" | raw "$RELAY_PORT" --timeout 10 >"$D/smuggle.out"
	got=$(codes <"$D/smuggle.out" | paste -sd' ' -)
	case $got in
	"220 250 250 250 354 550"|"220 250 250 250 354 550 221") ;;
	*) t_fail "smuggling with '$seq': replies $got, expected 220 250 250 250 354 550 [221]: $(cat "$D/smuggle.out")" ;;
	esac
	grep -qE '^550 5\.6\.0 ' "$D/smuggle.out" ||
		t_fail "smuggling with '$seq': no '550 5.6.0': $(cat "$D/smuggle.out")"
	[ "$(t_messages)" = "$n0" ] && [ "$(fake_txn)" = "$x0" ] ||
		t_fail "smuggling with '$seq': $(( $(fake_txn) - x0 )) transaction(s) sent to SES"
	! grep -lq smuggled "$MAILDIR"/*.eml 2>/dev/null ||
		t_fail "smuggling with '$seq': the smuggled message reached SES"
	t_ok "SMTP smuggling with '$seq' refused (550 5.6.0), nothing reached SES"
done

# ---- the upstream certificate does not match the name: nothing sent ----
pair wrongname --cert "$CERTS/wrong.pem" --key "$CERTS/wrong.key"
relay
relay_start
r=$(send --to x@example.net)
check_reply "wrong certificate name" "$r" '^4[0-9][0-9] '
grep -q 'certificate verification failed' "$LOG" ||
	t_fail "wrong certificate name: the log does not say 'certificate verification failed': $(cat "$LOG")"
[ "$(t_messages)" = 0 ] || t_fail "a message was sent to a server with the wrong certificate"
t_ok "certificate for the wrong name: 4xx to the client, 'certificate verification failed' logged"

pair selfsigned --cert "$CERTS/self.pem" --key "$CERTS/self.key"
relay
relay_start
r=$(send --to x@example.net)
check_reply "self-signed certificate" "$r" '^4[0-9][0-9] '
[ "$(t_messages)" = 0 ] || t_fail "a message was sent to a server with a self-signed certificate"
t_ok "self-signed certificate: 4xx to the client"

# ---- wrong secret: SES's 535 explained to the client and by `check` ----
pair badsecret
relay
printf '%s\n' 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY00' >"$D/secret"
relay_start
r=$(send --to x@example.net)
check_reply "wrong secret" "$r" '^451 .*535 Authentication Credentials Invalid'
[ "$(t_messages)" = 0 ] || t_fail "wrong secret: a message reached SES"
rc=0
timeout 30 "$SESRELAY" check -c "$CONF" >"$D/check.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || t_fail "sesrelay check exited 0 with a wrong secret: $(cat "$D/check.out")"
grep -q '535 Authentication Credentials Invalid' "$D/check.out" ||
	t_fail "sesrelay check does not show SES's 535: $(cat "$D/check.out")"
t_ok "wrong secret: client gets 451 with SES's 535; sesrelay check fails and shows it"

# ---- SES down (accepts, then closes), then back ----
pair down
relay
relay_start
kill -USR1 "$FAKE_PID"; sleep 0.3
r=$(send --to x@example.net)
check_reply "SES down" "$r" '^4[0-9][0-9] '
kill -USR1 "$FAKE_PID"; sleep 0.3
r=$(send --to x@example.net)
check_reply "SES back up" "$r" '^250 '
[ "$(t_messages)" = 1 ] || t_fail "SES down then up: $(t_messages) messages stored, expected 1"
t_ok "SES down: 4xx; back up: delivered"

# ---- nothing listening at the endpoint ----
D=$T_DIR/nolisten
mkdir -p "$D"
# shellcheck disable=SC2034 # t_config reads it
FAKE_PORT=$(t_free_port)
relay
relay_start
r=$(send --to x@example.net)
check_reply "endpoint not listening" "$r" '^4[0-9][0-9] 4\.4\.1 '
t_ok "endpoint not listening: 4xx 4.4.1"

# ---- max_message_size = 10K ----
pair size
relay
relay_key 'max_message_size = 10K'
relay_start
printf 'EHLO client.test\r\nMAIL FROM:<app@example.com> SIZE=20000\r\nQUIT\r\n' |
	raw "$RELAY_PORT" --replies 4 >"$D/size.out"
got=$(codes <"$D/size.out" | sed -n 3p)
[ "$got" = 552 ] || t_fail "SIZE=20000 over a 10K limit: MAIL got $got, expected 552: $(cat "$D/size.out")"
big=$(for i in $(seq 300); do printf 'line %04d of a message that is too big for the limit\n' "$i"; done)
r=$(send --to x@example.net --body "$big")
check_reply "undeclared 16K message over a 10K limit" "$r" '^552 '
[ "$(t_messages)" = 0 ] && [ "$(fake_txn)" = 0 ] || t_fail "an oversize message was sent to SES"
r=$(send --to x@example.net --body "small")
check_reply "small message under a 10K limit" "$r" '^250 '
t_ok "over max_message_size: 552 at MAIL (SIZE=) and at the final dot"
# ... and a client that keeps trying is an erring one: the 20th 552 is
# followed by 421 and the end of the connection
{
	printf 'EHLO client.test\r\n'
	for _ in $(seq 20); do printf 'MAIL FROM:<app@example.com> SIZE=20000\r\n'; done
} | raw "$RELAY_PORT" --timeout 10 >"$D/size20.out"
got=$(codes <"$D/size20.out" | paste -sd' ' -)
want="220 250 $(printf '552 %.0s' $(seq 20))421"
[ "$got" = "$want" ] && [ "$(tail -1 "$D/size20.out")" = '<eof>' ] ||
	t_fail "20 MAILs over SIZE: replies $got $(tail -1 "$D/size20.out"), expected $want <eof>"
t_ok "20 refused MAILs (552) count as errors: 421, closed"

# ---- max_recipients = 3: the 4th RCPT gets 452 4.5.3 naming that
# limit, not SES's ----
pair rcptmax
relay
relay_key 'max_recipients = 3'
relay_start
{
	printf 'EHLO client.test\r\nMAIL FROM:<app@example.com>\r\n'
	for i in 1 2 3 4; do printf 'RCPT TO:<r%d@example.net>\r\n' "$i"; done
	printf 'QUIT\r\n'
} | raw "$RELAY_PORT" --replies 9 >"$D/rcpt4.out"
got=$(codes <"$D/rcpt4.out" | paste -sd' ' -)
[ "$got" = "220 250 250 250 250 250 452 221" ] ||
	t_fail "max_recipients = 3, 4 RCPTs: replies $got, expected 220 250 250 250 250 250 452 221"
r=$(grep '^452 ' "$D/rcpt4.out")
grep -qE '^452 4\.5\.3 .*at most 3 per message' <<<"$r" && ! grep -q 'SES' <<<"$r" ||
	t_fail "max_recipients = 3: the 452 should state the relay's limit of 3, not SES's: $r"
t_ok "max_recipients = 3: the 4th RCPT gets 452 4.5.3 stating the relay's limit"

# Recipients over the limit are no error for a client that sends its
# message (it may send the rest in its next transaction): 997 refused in
# each of two messages, and the session goes on.  A client that sends
# recipients on and on without a message is bounded: after 1000 refusals
# since its last message each further one is an error (20: 421, closed).
over() {	# N: MAIL, N RCPTs
	printf 'MAIL FROM:<app@example.com>\r\n'
	for i in $(seq "$1"); do printf 'RCPT TO:<r%d@example.net>\r\n' "$i"; done
}
{
	printf 'EHLO client.test\r\n'
	for m in 1 2; do
		over 1000
		printf 'DATA\r\nFrom: app@example.com\r\nSubject: %d\r\n\r\nbody\r\n.\r\n' "$m"
	done
	printf 'QUIT\r\n'
} | raw "$RELAY_PORT" --timeout 20 >"$D/over2.out"
tx="250 250 250 250 $(printf '452 %.0s' $(seq 997))354 250"
got=$(codes <"$D/over2.out" | paste -sd' ' -)
want="220 250 $tx $tx 221"
[ "$got" = "$want" ] || t_fail "2 x (3 + 997) recipients with a message each: the replies differ from 220 250, (250, 250 x 3, 452 x 997, 354, 250) x 2, 221: $(codes <"$D/over2.out" | uniq -c | tr -s ' \n' ' ')"
{ printf 'EHLO client.test\r\n'; over 1023; } | raw "$RELAY_PORT" --timeout 20 >"$D/over.out"
got=$(codes <"$D/over.out" | paste -sd' ' -)
want="220 250 250 250 250 250 $(printf '452 %.0s' $(seq 1020))421"
[ "$got" = "$want" ] && [ "$(tail -1 "$D/over.out")" = '<eof>' ] ||
	t_fail "1023 RCPTs without a message: replies differ from 220 250 250 250 x 3 452 x 1020 421 <eof>: $(codes <"$D/over.out" | uniq -c | tr -s ' \n' ' ') $(tail -1 "$D/over.out")"
t_ok "452 for recipients over the limit: no error while messages follow; 1000 + 20 without one: 421, closed"

# 550 5.1.3 (no domain: only <postmaster> parses without one) counts as an
# error too
{
	printf 'EHLO client.test\r\nMAIL FROM:<app@example.com>\r\n'
	for _ in $(seq 20); do printf 'RCPT TO:<postmaster>\r\n'; done
} | raw "$RELAY_PORT" --timeout 10 >"$D/nodomain.out"
got=$(codes <"$D/nodomain.out" | paste -sd' ' -)
want="220 250 250 $(printf '550 %.0s' $(seq 20))421"
[ "$got" = "$want" ] && [ "$(tail -1 "$D/nodomain.out")" = '<eof>' ] ||
	t_fail "20 RCPT TO:<postmaster>: replies $got $(tail -1 "$D/nodomain.out"), expected $want <eof>"
t_ok "20 refused RCPTs (550 5.1.3) count as errors: 421, closed"

# ---- a client outside allow gets 554 5.7.1 and nothing else ----
pair allow
relay
relay_key 'allow = 10.0.0.0/8'
relay_start
raw "$RELAY_PORT" --timeout 10 </dev/null >"$D/allow.out"
[ "$(wc -l <"$D/allow.out")" = 2 ] && grep -qE '^554 5\.7\.1 ' "$D/allow.out" &&
	[ "$(sed -n 2p "$D/allow.out")" = '<eof>' ] ||
	t_fail "client outside allow: expected one '554 5.7.1' line then close, got: $(cat "$D/allow.out")"
t_ok "client outside allow: 554 5.7.1, then closed"

# ---- SES drops the session after the final dot ----
pair drop --drop-every 1
relay
relay_start
r=$(send --to x@example.net)
check_reply "session dropped after the dot" "$r" '^4[0-9][0-9] .*may have been delivered'
t_ok "session dropped mid-DATA: 4xx 'may have been delivered'"

# ---- SES's 421 after 2 messages per session: all 5 still delivered ----
pair smax --session-max 2
relay
relay_start
for i in 1 2 3 4 5; do
	printf 'From: app@example.com\r\nSubject: %d of 5\r\n\r\nbody %d\r\n' "$i" "$i" >"$D/m$i.txt"
done
"$PY" "$CLIENT" send "$RELAY_PORT" --from app@example.com --to x@example.net \
	"$D"/m[1-5].txt >"$D/smax.out" 2>&1 || t_fail "smtplib: $(cat "$D/smax.out")"
[ "$(grep -c '^data: 250 ' "$D/smax.out")" = 5 ] ||
	t_fail "session-max 2: not every message got 250: $(cat "$D/smax.out")"
[ "$(t_messages)" = 5 ] || t_fail "session-max 2: $(t_messages) of 5 messages stored"
ns=$(sed -n 's/^session=//p' "$MAILDIR"/*.env | sort -u | wc -l)
[ "$ns" -ge 3 ] || t_fail "session-max 2: 5 messages in $ns upstream sessions (the fake's limit was not hit?)"
t_ok "SES's 421 after 2 messages per session: the relay reconnects, all 5 delivered"

# ---- idle upstream close, second half ----
D=$IDLE_D MAILDIR=$IDLE_MAILDIR RELAY_PORT=$IDLE_PORT
left=$(( 12 - (SECONDS - idle_t0) ))
[ "$left" -le 0 ] || sleep "$left"
r=$(send --to two@example.net)
check_reply "idle: second message after 12 s" "$r" '^250 '
[ "$(t_messages)" = 2 ] || t_fail "idle: $(t_messages) of 2 messages stored"
ns=$(sed -n 's/^session=//p' "$MAILDIR"/*.env | sort -u | wc -l)
[ "$ns" = 2 ] || t_fail "idle: both messages in one upstream session although it was cut after 3 s"
t_ok "upstream session cut while idle: the next message goes on a new session"

for r in "${RELAYS[@]}"; do stop_relay "${r%%:*}" "${r#*:}"; done
t_ok "all ${#RELAYS[@]} sesrelayd exit 0 on SIGTERM, no sanitizer report"
