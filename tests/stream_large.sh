#!/bin/bash
# stream_large.sh — large messages stream through in bounded memory, in
# both modes: 39 MB relayed byte-exact (the body's SHA-256 at the client
# and in the fake SES's maildir), 41 MB refused with 552 at the final dot
# (undeclared) or at MAIL (SIZE=), nothing at SES; the exact limit (with
# max_message_size = 1M: 1,048,576 octets pass, 1,048,577 get 552); a bare
# LF, a bare CR or a NUL octet in the middle of a 2 MB message (streamed
# by then) refused at the final dot with nothing at SES (in passthrough
# the upstream transaction is dropped without its final dot); a message
# without From: under sender restrictions refused with its reason.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
SC=$TESTS_DIR/stream_client.py

# body_hashes: sha256 of the body (after the header section) of every
# message at the fake SES, sorted.
body_hashes() {
	"$PY" - "$MAILDIR" <<'PY'
import glob, hashlib, sys
for p in sorted(glob.glob(sys.argv[1] + "/*.eml")):
    d = open(p, "rb").read()
    print(hashlib.sha256(d[d.index(b"\r\n\r\n") + 4:]).hexdigest())
PY
}
wait_messages() {	# N: wait up to 60 s for N messages at SES
	for _ in $(seq 600); do [ "$(t_messages)" -ge "$1" ] && return 0; sleep 0.1; done
	return 1
}

t_start_fake --quiet
for mode in spool passthrough; do
	rm -f "$MAILDIR"/*
	RELAY_PORT=$(t_free_port)
	T_MODE=$mode t_config
	t_start_relay

	out=$("$PY" "$SC" "$RELAY_PORT" 39M)
	case $out in "250 "*" | 250 "*) ;; *) t_fail "$mode: 39 MB: $out" ;; esac
	wait_messages 1 || t_fail "$mode: 39 MB did not reach SES: $(tail -3 "$T_DIR/relay.log")"
	sent=${out##*sha256=}
	got=$(body_hashes)
	[ "$got" = "$sent" ] || t_fail "$mode: 39 MB body differs at SES: sent $sent, got $got"
	t_ok "$mode: 39 MB relayed byte-exact (sha256 $sent)"

	out=$("$PY" "$SC" "$RELAY_PORT" 41M)
	case $out in "250 "*" | 552 5.3.4 "*) ;; *) t_fail "$mode: 41 MB undeclared: $out" ;; esac
	out=$("$PY" "$SC" "$RELAY_PORT" 41M --declare)
	case $out in "552 5.3.4 "*) ;; *) t_fail "$mode: 41 MB with SIZE=: $out" ;; esac
	sleep 1
	[ "$(t_messages)" = 1 ] || t_fail "$mode: a 41 MB message reached SES"
	t_ok "$mode: 41 MB refused with 552 5.3.4 at the final dot (at MAIL with SIZE=); nothing at SES"

	for v in lf cr nul; do
		out=$("$PY" "$SC" "$RELAY_PORT" 2M --inject "$v@1500000")
		case $v:$out in
		lf:"250 "*" | 550 5.6.0 "*|cr:"250 "*" | 550 5.6.0 "*) ;;
		nul:"250 "*" | 554 5.6.0 "*NUL*) ;;
		*) t_fail "$mode: 2 MB with a $v at 1.5 MB: $out" ;;
		esac
	done
	sleep 1
	[ "$(t_messages)" = 1 ] || t_fail "$mode: a message with a bare LF/CR/NUL reached SES"
	t_ok "$mode: bare LF, bare CR, NUL 1.5 MB into a streamed message: refused at the dot, nothing at SES"
	if [ "$mode" = passthrough ]; then
		# the upstream saw DATA but never the final dot
		grep -q 'abandoned\|without ending the data' "$T_DIR/relay.log" ||
			t_fail "passthrough: no sign of the upstream transaction being dropped: $(tail -5 "$T_DIR/relay.log")"
	fi
	stop_relay "$RELAY_PID" "$T_DIR/relay.log"

	# the exact limit, and no From: under sender restrictions
	rm -f "$MAILDIR"/*
	RELAY_PORT=$(t_free_port)
	T_MODE=$mode t_config "max_message_size = 1M" "" "[sender *]" "networks = 127.0.0.0/8"
	sed -i 's/^max_message_size = 1M$//' "$CONF"
	sed -i 's/^\[relay\]$/[relay]\nmax_message_size = 1M/' "$CONF"
	t_start_relay
	out=$("$PY" "$SC" "$RELAY_PORT" 1048576)
	case $out in "250 "*" | 250 "*) ;; *) t_fail "$mode: 1,048,576 octets with max_message_size = 1M: $out" ;; esac
	out=$("$PY" "$SC" "$RELAY_PORT" 1048577)
	case $out in "250 "*" | 552 5.3.4 "*) ;; *) t_fail "$mode: 1,048,577 octets: $out" ;; esac
	out=$("$PY" "$SC" "$RELAY_PORT" 1048577 --declare)
	case $out in "552 5.3.4 "*) ;; *) t_fail "$mode: SIZE=1048577: $out" ;; esac
	t_ok "$mode: max_message_size = 1M: 1,048,576 octets pass, 1,048,577 get 552 5.3.4 (at the dot, or at MAIL with SIZE=)"
	out=$("$PY" "$SC" "$RELAY_PORT" 500K --from none)
	case $out in "250 "*" | 550 5.7.1 "*"no From:"*) ;; *) t_fail "$mode: no From: under [sender *] networks: $out" ;; esac
	wait_messages 1 || t_fail "$mode: the 1 MB message did not reach SES"
	sleep 1
	[ "$(t_messages)" = 1 ] || t_fail "$mode: $(t_messages) messages at SES, expected 1"
	t_ok "$mode: no From: header under sender restrictions: 550 5.7.1 with the reason"
	stop_relay "$RELAY_PID" "$T_DIR/relay.log"
done
