#!/bin/bash
# fault_close_race.sh — SES replies, then closes the connection at once: the
# reply, the TLS close_notify and the FIN arrive in one TCP segment (the
# fake's --fault close:DOT).  SES has accepted the message ("250 Ok <id>"),
# so the relay must say so: 250 to a passthrough client, and in spool mode
# one delivery, not a retry.
#
# libevent's OpenSSL bufferevent reports the end of the connection before
# the read callback for data read in the same pass; relay_client.c takes
# the replies still buffered first.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
export LC_ALL=C

t_start_fake --idle-timeout 5 --fault close:DOT
t_config
t_start_relay
swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 --helo client.test \
	--from app@example.com --to race@example.net >"$T_DIR/swaks.out" 2>&1 || true
r=$(awk 'p { print substr($0, 5); exit } $0 == " -> ." { p = 1 }' "$T_DIR/swaks.out")
[ "$(t_messages)" = 1 ] || t_fail "passthrough: the fake stored $(t_messages) messages, expected 1"
grep -qE '^250 .*Ok 0100' <<<"$r" ||
	t_fail "passthrough: SES accepted the message, the client was told '$r'"
t_ok "passthrough: SES's 250 reaches the client although SES closed at once"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

rm -f "$MAILDIR"/*
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay
swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 --helo client.test \
	--from app@example.com --to race@example.net >"$T_DIR/swaks.out" 2>&1 || true
grep -q '^<-  250 .*queued as' "$T_DIR/swaks.out" || t_fail "spool: not queued"
t_wait_queue_empty 10 || true
sleep 4		# time for two or three retries, if the relay (wrongly) retries
[ "$(t_messages)" = 1 ] && [ "$(t_queue_left)" = 0 ] ||
	t_fail "spool: SES got $(t_messages) copies, $(t_queue_left) still queued; expected 1 and 0"
t_ok "spool: delivered exactly once"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
