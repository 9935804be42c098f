#!/bin/bash
# relay_pipelining.sh — the inbound SMTP dialogue, driven by a raw socket
# client (tests/smtp_client.py raw): two whole transactions pipelined in
# one write, 1,000 pipelined NOOPs, over-long command lines, unknown
# commands and the error limit, RSET, HELO vs EHLO keywords, VRFY,
# commands out of order, 8-bit addresses.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C


t_start_fake
t_config
t_start_relay

# raw [smtp_client raw options]: stdin in one write to the relay.
raw() { "$PY" "$CLIENT" raw "$RELAY_PORT" "$@"; }
# codes: the reply codes, one per complete reply, space-separated.
codes() { grep -E '^[0-9]{3} ' | cut -c1-3 | paste -sd' ' -; }
# want WHAT GOT EXPECTED
want() { [ "$2" = "$3" ] || t_fail "$1: got '$2', expected '$3'"; }

# ---- two transactions and QUIT in one write ----
{
	printf 'EHLO pipe.test\r\nMAIL FROM:<app@example.com>\r\n'
	printf 'RCPT TO:<r1@example.net>\r\nRCPT TO:<r2@example.net>\r\n'
	printf 'RCPT TO:<r3@example.net>\r\nDATA\r\n'
	printf 'From: app@example.com\r\nSubject: first\r\n\r\nfirst body\r\n.\r\n'
	printf 'MAIL FROM:<app2@example.com>\r\nRCPT TO:<r4@example.net>\r\nDATA\r\n'
	printf 'From: app2@example.com\r\nSubject: second\r\n\r\nsecond body\r\n.\r\n'
	printf 'QUIT\r\n'
} | raw --timeout 20 >"$T_DIR/two.out"
want "two pipelined transactions: reply codes" "$(codes <"$T_DIR/two.out")" \
	"220 250 250 250 250 250 354 250 250 250 354 250 221"
n=$(grep -cE '^250 2\.0\.0 Ok 0100' "$T_DIR/two.out" || true)
want "two pipelined transactions: SES ids in the replies" "$n" 2
tail -1 "$T_DIR/two.out" | grep -qx '<eof>' || t_fail "connection not closed after QUIT"
want "two pipelined transactions: messages at SES" "$(t_messages)" 2
want "first message's recipients" \
	"$(grep -l 'mail_from=app@example.com' "$MAILDIR"/*.env | xargs grep -h '^rcpt=' | paste -sd, -)" \
	"rcpt=r1@example.net,rcpt=r2@example.net,rcpt=r3@example.net"
want "second message's recipients" \
	"$(grep -l 'mail_from=app2@example.com' "$MAILDIR"/*.env | xargs grep -h '^rcpt=' | paste -sd, -)" \
	"rcpt=r4@example.net"
t_ok "EHLO, MAIL, 3 RCPT, DATA, message, MAIL, RCPT, DATA, message, QUIT in one write: 13 replies in order, 2 messages"

# ---- 1,000 NOOPs in one write ----
{
	printf 'EHLO pipe.test\r\n'
	for _ in $(seq 1000); do printf 'NOOP\r\n'; done
	printf 'QUIT\r\n'
} | raw --timeout 20 >"$T_DIR/noop.out"
want "1,000 pipelined NOOPs: 250 replies" "$(grep -cx '250 2\.0\.0 Ok' "$T_DIR/noop.out")" 1000
want "1,000 pipelined NOOPs: the replies" "$(codes <"$T_DIR/noop.out" | tr ' ' '\n' | uniq -c | awk '{print $1 "x" $2}' | paste -sd' ' -)" \
	"1x220 1001x250 1x221"
t_ok "1,000 pipelined NOOPs: 1,000 '250' replies"

# ---- over-long command line, unknown command: 500, the session goes on ----
long=$(printf '%01010d' 0 | tr 0 a)
printf 'EHLO pipe.test\r\nNOOP %s\r\nNOOP\r\nFROBNICATE\r\nNOOP\r\nQUIT\r\n' "$long" |
	raw >"$T_DIR/long.out"
want "over-long line and unknown command" "$(codes <"$T_DIR/long.out")" \
	"220 250 500 250 500 250 221"
t_ok "a command line over 1000 bytes and an unknown command get 500; the session continues"

# ---- more than 20 errors: 421 and close ----
{
	printf 'EHLO pipe.test\r\n'
	for i in $(seq 25); do printf 'RCPT TO:<r%d@example.net>\r\n' "$i"; done
} | raw --timeout 10 >"$T_DIR/errors.out"
got=$(codes <"$T_DIR/errors.out")
case $got in
"220 250 "*"503 421") ;;
*) t_fail "25 failed commands: expected 503s then 421, got '$got'" ;;
esac
n503=$(printf '%s\n' "$got" | tr ' ' '\n' | grep -c '^503$')
[ "$n503" -eq 20 ] ||
	t_fail "25 failed commands: $n503 answered with 503 before the 421"
tail -1 "$T_DIR/errors.out" | grep -qx '<eof>' || t_fail "not closed after 421: $(tail -2 "$T_DIR/errors.out")"
t_ok "too many errors: 421 after $n503 failed commands, connection closed"

# ---- more than 10 unknown commands: 421 and close ----
{
	printf 'EHLO pipe.test\r\n'
	for i in $(seq 25); do printf 'BOGUS%d\r\n' "$i"; done
} | raw --timeout 10 >"$T_DIR/unknown.out"
got=$(codes <"$T_DIR/unknown.out")
n500=$(printf '%s\n' "$got" | tr ' ' '\n' | grep -c '^500$')
[ "$got" = "220 250 $(printf '500 %.0s' $(seq 10))421" ] ||
	t_fail "25 unknown commands: expected 10 500s then 421, got '$got'"
tail -1 "$T_DIR/unknown.out" | grep -qx '<eof>' || t_fail "not closed after 421: $(tail -2 "$T_DIR/unknown.out")"
grep -q 'Too many unknown commands' "$T_DIR/unknown.out" || t_fail "421 text: $(tail -2 "$T_DIR/unknown.out")"
t_ok "too many unknown commands: 421 after $n500, connection closed"

# ---- RSET mid-transaction ----
before=$(t_messages)
{
	printf 'EHLO pipe.test\r\nMAIL FROM:<dropped@example.com>\r\n'
	printf 'RCPT TO:<dropped@example.net>\r\nRSET\r\nRCPT TO:<x@example.net>\r\n'
	printf 'MAIL FROM:<kept@example.com>\r\nRCPT TO:<kept@example.net>\r\nDATA\r\n'
	printf 'From: kept@example.com\r\nSubject: after RSET\r\n\r\nbody\r\n.\r\nQUIT\r\n'
} | raw --timeout 20 >"$T_DIR/rset.out"
want "RSET mid-transaction" "$(codes <"$T_DIR/rset.out")" \
	"220 250 250 250 250 503 250 250 354 250 221"
want "RSET: messages at SES" "$(t_messages)" $((before + 1))
env=$(grep -l 'mail_from=kept@example.com' "$MAILDIR"/*.env)
want "RSET: envelope at SES" "$(grep -hE '^(mail_from|rcpt)=' "$env" | paste -sd, -)" \
	"mail_from=kept@example.com,rcpt=kept@example.net"
t_ok "RSET drops the transaction: RCPT after it gets 503; the next one carries only its own envelope"

# ---- HELO vs EHLO ----
printf 'HELO pipe.test\r\nEHLO pipe.test\r\nQUIT\r\n' | raw >"$T_DIR/ehlo.out"
want "HELO/EHLO codes" "$(codes <"$T_DIR/ehlo.out")" "220 250 250 221"
helo=$(sed -n 2p "$T_DIR/ehlo.out")
case $helo in
"250 "*) ;;
*) t_fail "HELO: expected a one-line 250, got '$helo'" ;;
esac
kw=$(sed -n '/^250-/,/^250 /p' "$T_DIR/ehlo.out" | sed 1d | cut -c5- | cut -d' ' -f1 | sort | paste -sd' ' -)
for k in PIPELINING SIZE 8BITMIME ENHANCEDSTATUSCODES; do
	printf ' %s ' "$kw" | grep -q " $k " || t_fail "EHLO does not advertise $k: $kw"
done
! printf ' %s ' "$kw" | grep -q ' SMTPUTF8 ' || t_fail "EHLO advertises SMTPUTF8 (SES takes no internationalized addresses)"
grep -qx '250-SIZE 41943040' "$T_DIR/ehlo.out" || grep -qx '250 SIZE 41943040' "$T_DIR/ehlo.out" ||
	t_fail "EHLO SIZE is not the default max_message_size 40M: $(grep SIZE "$T_DIR/ehlo.out")"
t_ok "HELO: one line; EHLO: PIPELINING SIZE 41943040 8BITMIME ENHANCEDSTATUSCODES, no SMTPUTF8"

# ---- VRFY, order of commands, 8-bit address ----
printf 'VRFY postmaster\r\nMAIL FROM:<a@example.com>\r\nEHLO pipe.test\r\nDATA\r\nMAIL FROM:<a@example.com>\r\nDATA\r\nRSET\r\nMAIL FROM:<j\xc3\xb6rg@example.com>\r\nQUIT\r\n' |
	raw >"$T_DIR/misc.out"
got=$(codes <"$T_DIR/misc.out")
read -r -a c <<<"$got"
want "VRFY" "${c[1]:-}" 252
want "MAIL before EHLO" "${c[2]:-}" 503
want "EHLO" "${c[3]:-}" 250
want "DATA without MAIL" "${c[4]:-}" 503
want "MAIL" "${c[5]:-}" 250
case ${c[6]:-} in 503|554) ;; *) t_fail "DATA without RCPT: got '${c[6]:-}', expected 503 or 554" ;; esac
want "RSET" "${c[7]:-}" 250
want "MAIL FROM with an 8-bit address" "${c[8]:-}" 553
want "QUIT" "${c[9]:-}" 221
t_ok "VRFY 252; MAIL before EHLO 503; DATA without RCPT ${c[6]}; 8-bit address 553"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
