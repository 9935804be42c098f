#!/bin/bash
# service_notify.sh — sesrelayd speaks systemd's protocols without
# systemd: readiness notifications to $NOTIFY_SOCKET (a path, then an
# abstract "@" socket) — READY=1 only once it accepts mail, RELOADING=1
# with MONOTONIC_USEC then READY=1 on SIGHUP (also when the reload is
# refused), STATUS= with the queue, STOPPING=1 on SIGTERM — and socket
# activation: a listening socket passed as fd 3 with LISTEN_FDS and
# LISTEN_PID is served instead of [relay] listen, and relays.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
PY=/usr/bin/python3
[ -x $PY ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }

# notify_listen ADDR FILE: a service manager's notification socket; each
# datagram becomes one line of FILE, its newlines shown as "|".
notify_listen() {
	rm -f "$2" "$2.ready"
	$PY - "$1" "$2" <<'PY' &
import socket, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(out + ".ready", "w").close()
with open(out, "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", "|") + "\n")
        f.flush()
PY
	T_PIDS+=($!)
	for _ in $(seq 100); do [ -e "$2.ready" ] && return 0; sleep 0.05; done
	t_fail "notification listener did not start"
}

# wait_note FILE REGEX [COUNT]: until COUNT lines of FILE match (5 s)
wait_note() {
	local n=${3:-1}
	for _ in $(seq 100); do
		[ "$(grep -cE "$2" "$1" 2>/dev/null || true)" -ge "$n" ] && return 0
		sleep 0.05
	done
	t_fail "no notification matching '$2' (x$n); got: $(cat "$1" 2>/dev/null)"
}

send() {	# to [swaks options]: the relay's reply to the final dot
	swaks --server 127.0.0.1 --port "$1" --timeout 20 --from app@example.com \
		--to "$2" --header "Subject: notify test" 2>&1 | sed -n 's/^<-  \(250 .*\)$/\1/p' | tail -1
}

stop_daemon() {	# pid log
	kill -TERM "$1"
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$1" 2>/dev/null || t_fail "sesrelayd did not exit on SIGTERM"
	wait "$1" || t_fail "sesrelayd exited non-zero: $(tail -5 "$2")"
	! grep -qE 'Sanitizer|runtime error' "$2" || t_fail "sanitizer report in $2"
}

t_start_fake --quiet
T_MODE=spool t_config
NOTES=$T_DIR/notes

# --- READY=1 once it accepts mail, with a STATUS line
notify_listen "$T_DIR/notify.sock" "$NOTES"
NOTIFY_SOCKET=$T_DIR/notify.sock "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log" &
RELAY_PID=$!; T_PIDS+=($RELAY_PID)
wait_note "$NOTES" '(^|\|)READY=1(\||$)'
# the moment READY=1 is sent, the port must already accept
(exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null || t_fail "READY=1 came before the listener accepted"
grep -q 'READY=1|STATUS=queue 0 messages; 0 clients; 0 upstream sessions$' "$NOTES" ||
	t_fail "READY=1 without the expected STATUS: $(cat "$NOTES")"
t_ok "READY=1 once listening, with STATUS=queue 0 messages; ..."

# --- SIGHUP: RELOADING=1 + MONOTONIC_USEC, then READY=1 with the queue
t_stop_fake
[[ $(send "$RELAY_PORT" q1@example.net) == "250 2.0.0 Ok: queued as "* ]] || t_fail "not queued"
sleep 1
kill -HUP "$RELAY_PID"
wait_note "$NOTES" '^RELOADING=1\|MONOTONIC_USEC=[0-9]+\|'
wait_note "$NOTES" '(^|\|)READY=1(\||$)' 2
line=$(grep -n '^RELOADING=1' "$NOTES" | head -1 | cut -d: -f1)
ready=$(grep -n '^READY=1' "$NOTES" | sed -n 2p | cut -d: -f1)
[ "$ready" -gt "$line" ] || t_fail "READY=1 did not follow RELOADING=1: $(cat "$NOTES")"
usec=$(sed -n 's/^RELOADING=1|MONOTONIC_USEC=\([0-9]*\)|.*/\1/p' "$NOTES" | head -1)
$PY -c 'import sys,time; sys.exit(abs(time.monotonic()*1e6 - int(sys.argv[1])) > 10e6)' "$usec" ||
	t_fail "MONOTONIC_USEC=$usec is not CLOCK_MONOTONIC now"
sed -n "${ready}p" "$NOTES" | grep -qE '^READY=1\|STATUS=queue 1 message, oldest [0-9]+s; 0 clients; 0 upstream sessions$' ||
	t_fail "STATUS after the reload does not show the queued message: $(sed -n "${ready}p" "$NOTES")"
grep -q 'configuration reloaded' "$T_DIR/relay.log" || t_fail "reload not logged"
t_ok "SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 with STATUS=queue 1 message, oldest ...s"

# --- a refused reload still ends in READY=1 (the old configuration runs)
cp "$CONF" "$CONF.good"
echo "bogus_key = 1" >>"$CONF"
kill -HUP "$RELAY_PID"
wait_note "$NOTES" '^RELOADING=1' 2
wait_note "$NOTES" '^READY=1\|STATUS=reload refused' 1
cp "$CONF.good" "$CONF"
t_ok "a refused reload: RELOADING=1, then READY=1 with STATUS=reload refused"

# --- SIGTERM: STOPPING=1
stop_daemon "$RELAY_PID" "$T_DIR/relay.log"
grep -q '^STOPPING=1|STATUS=stopping' "$NOTES" || t_fail "no STOPPING=1: $(cat "$NOTES")"
t_ok "SIGTERM: STOPPING=1"

# --- socket activation: fd 3 + LISTEN_FDS/LISTEN_PID, an abstract
# notification socket; [relay] listen names another port, never bound
t_start_fake --quiet
ACT_PORT=$(t_free_port)
T_MODE=passthrough t_config		# listen = 127.0.0.1:$RELAY_PORT
ABS="@sesrelay-test-$$-$RANDOM"
notify_listen "$ABS" "$NOTES.2"
: >"$T_DIR/act.log"
NOTIFY_SOCKET=$ABS $PY - "$ACT_PORT" "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/act.log" <<'PY' &
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="smtp")
os.execv(sys.argv[2], sys.argv[2:])	# same pid: LISTEN_PID is ours
PY
ACT_PID=$!; T_PIDS+=($ACT_PID)
wait_note "$NOTES.2" '^READY=1\|STATUS=passthrough; 0 clients; 0 upstream sessions$'
grep -q "listening on fd 3 127.0.0.1:$ACT_PORT (smtp)" "$T_DIR/act.log" ||
	t_fail "the passed socket is not served: $(cat "$T_DIR/act.log")"
grep -q 'socket activation: serving 1 socket' "$T_DIR/act.log" || t_fail "socket activation not logged"
! (exec 3<>"/dev/tcp/127.0.0.1/$RELAY_PORT") 2>/dev/null || t_fail "[relay] listen was bound too"
reply=$(send "$ACT_PORT" act@example.net)
[[ $reply == "250 2.0.0 Ok 0100"* ]] || t_fail "no relay through the passed socket: $reply"
[ "$(t_messages)" -eq 1 ] || t_fail "SES did not get the message"
stop_daemon "$ACT_PID" "$T_DIR/act.log"
grep -q '^STOPPING=1' "$NOTES.2" || t_fail "no STOPPING=1 on the abstract socket"
t_ok "socket activation: fd 3 served, [relay] listen not bound, relayed; abstract NOTIFY_SOCKET"

# --- LISTEN_PID of another process: ignored, [relay] listen is bound
LISTEN_FDS=1 LISTEN_PID=1 "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log" &
RELAY_PID=$!; T_PIDS+=($RELAY_PID)
t_wait_port "$RELAY_PORT" || t_fail "LISTEN_PID of another process was not ignored: $(tail -3 "$T_DIR/relay.log")"
stop_daemon "$RELAY_PID" "$T_DIR/relay.log"
t_ok "LISTEN_FDS for another pid: ignored, [relay] listen bound"

# --- fd 3 not a listening socket: exit 1 naming it
rc=0
out=$(bash -c 'exec 3</dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$@"' _ "$SESRELAYD" -f -c "$CONF" 2>&1) || rc=$?
[ $rc -eq 1 ] || t_fail "a bad fd 3 gave exit $rc, not 1: $out"
grep -q 'LISTEN_FDS: fd 3 is not a listening stream socket' <<<"$out" || t_fail "bad fd 3 not named: $out"
t_ok "LISTEN_FDS with a non-socket fd 3: exit 1, one line naming it"
