#!/bin/bash
# fault_stall.sh — a stalled SES endpoint, passthrough mode: it greets,
# authenticates, then never answers MAIL.  The client's reply to its final
# dot is a 451 once the relay's upstream command timeout expires (60 s:
# relay_client.c COMMAND_TIMEOUT; there is no knob to shorten it yet, so
# this test takes a minute), and meanwhile sesrelayd serves other clients.
# The spool-mode stall is in tests/fault_spool.sh.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C

t_start_fake --idle-timeout 5 --fault stall:MAIL
t_config
t_start_relay

t0=$SECONDS
swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 100 \
	--helo client.test --from app@example.com --to stall@example.net \
	>"$T_DIR/swaks.out" 2>&1 &
SWAKS=$!
for _ in $(seq 100); do grep -q 'fault stall at MAIL' "$T_DIR/fake.log" && break; sleep 0.1; done
grep -q 'fault stall at MAIL' "$T_DIR/fake.log" || t_fail "the fake never stalled: $(tail -3 "$T_DIR/fake.log")"

# meanwhile, another client is served at once
out=$(printf 'EHLO other.test\r\nNOOP\r\nQUIT\r\n' | "$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 5)
[ "$(grep -cE '^(220|250|221) ' <<<"$out")" = 4 ] || t_fail "another client during the stall: $out"
t_ok "while SES stalls, another client is served"

wait "$SWAKS" || true
took=$((SECONDS - t0))
r=$(awk 'p { print substr($0, 5); exit } $0 == " -> ." { p = 1 }' "$T_DIR/swaks.out")
printf '%s\n' "$r" | grep -qE '^451 4\.4\.2 .*timed out' ||
	t_fail "stalled SES: reply to the dot '$r' after ${took}s ($(tail -3 "$T_DIR/relay.log"))"
[ "$took" -ge 55 ] && [ "$took" -le 90 ] || t_fail "stalled SES: answered after ${took}s, expected about 60"
[ "$(t_messages)" = 0 ] || t_fail "stalled SES: a message was stored"
t_ok "stalled SES: '$r' after ${took}s"

t_stop_fake
t_start_fake --idle-timeout 5
r=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 --helo client.test \
	--from app@example.com --to after@example.net 2>&1 | grep -E '^<-  250 .*Ok 0100' || true)
[ -n "$r" ] || t_fail "after the stall: not delivered ($(tail -3 "$T_DIR/relay.log"))"
t_ok "endpoint healthy again: delivered"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
