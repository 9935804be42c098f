#!/bin/bash
# abuse_fd_limit.sh — more clients than the daemon has file descriptors:
# sesrelayd runs under `ulimit -n 128` with max_clients = 1000 and 300
# clients connect and stay.  The daemon must stay within its limits:
# serve what it can, not spin on accept() (CPU used in 2 s is measured) nor
# flood its log, and serve new clients again once the others leave.
#
# accept() then fails with EMFILE at once, every time: smtp_server.c pauses
# its listeners for 250 ms on such an error instead of retrying at once
# (libevent's listener without an error callback would spin and log
# "Error from accept() call" about a million times a second).
#
# Then no descriptor is left for the upstream connection: the client gets
# 451 4.4.1 at its final dot and its session goes on.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge 1024 ] || { echo "SKIP: hard descriptor limit $hard"; exit 77; }
ulimit -n 1024

t_start_fake --quiet
t_config
sed -i '/^\[ses\]/i max_clients = 1000' "$CONF"
# glibc fills freed memory (no tcache, which skips that): a use after
# free crashes the plain build too, not only the ASan one
(ulimit -n 128; GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.perturb=165 exec "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log") &
RELAY_PID=$!
T_PIDS+=("$RELAY_PID")
t_wait_port "$RELAY_PORT" || t_fail "sesrelayd did not start: $(cat "$T_DIR/relay.log")"

"$PY" - "$RELAY_PORT" 300 <<'PY' >"$T_DIR/conns.out" 2>&1 &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))   # done in the kernel's backlog
    socks.append(s)
    if i % 50 == 49:
        time.sleep(0.05)
print("connecting", len(socks), flush=True)
time.sleep(8)           # hold them
PY
CPID=$!
T_PIDS+=("$CPID")
for _ in $(seq 100); do grep -q '^connecting' "$T_DIR/conns.out" && break; sleep 0.1; done
sleep 1
lines0=$(wc -l <"$T_DIR/relay.log")
cpu0=$(awk '{ print $14 + $15 }' "/proc/$RELAY_PID/stat")
sleep 2
cpu1=$(awk '{ print $14 + $15 }' "/proc/$RELAY_PID/stat")
lines1=$(wc -l <"$T_DIR/relay.log")
tick=$(getconf CLK_TCK)
fds=$(ls "/proc/$RELAY_PID/fd" | wc -l)
echo "# $(head -1 "$T_DIR/conns.out"); daemon: $fds descriptors, CPU $(( (cpu1 - cpu0) * 1000 / tick )) ms in 2 s, $((lines1 - lines0)) log lines"
kill -0 "$RELAY_PID" 2>/dev/null || t_fail "sesrelayd died: $(tail -5 "$T_DIR/relay.log")"
[ $(( (cpu1 - cpu0) * 1000 / tick )) -le 500 ] ||
	t_fail "sesrelayd spins at its descriptor limit: $(( (cpu1 - cpu0) * 1000 / tick )) ms CPU in 2 s ($(tail -1 "$T_DIR/relay.log" | cut -c1-80))"
[ $((lines1 - lines0)) -le 100 ] ||
	t_fail "sesrelayd floods its log at its descriptor limit: $((lines1 - lines0)) lines in 2 s"
t_ok "at its descriptor limit sesrelayd neither spins nor floods its log"

kill "$CPID" 2>/dev/null || true
wait "$CPID" 2>/dev/null || true
ok=
for _ in $(seq 100); do
	out=$(printf 'EHLO again.test\r\nQUIT\r\n' | "$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 5) || true
	grep -q '^220 ' <<<"$out" && grep -q '^221 ' <<<"$out" && { ok=1; break; }
	sleep 0.1
done
[ -n "$ok" ] || t_fail "after the clients left, a new client is not served: $out"
t_ok "clients gone: a new client is served"

# No descriptor left for the upstream connection: the limit lets the
# daemon open one more, the client's.  The upstream socket() then fails
# inside relay_submit (the endpoint is numeric: no DNS wait), which must
# still report the failure later, from the event loop: the client gets
# 451 4.4.1 at its final dot and its session goes on in step.  (It once
# called back at once, and the session kept the freed job: ASan reports
# the use after free; glibc's perturbed free, set above, makes the plain
# build crash on it.)
if command -v prlimit >/dev/null; then
	fd=0
	while [ -e "/proc/$RELAY_PID/fd/$fd" ]; do fd=$((fd + 1)); done
	prlimit --pid "$RELAY_PID" --nofile=$((fd + 1)):
	out=$(printf 'EHLO fd.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nSubject: no fd\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n' |
		"$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 20) || true
	prlimit --pid "$RELAY_PID" --nofile=128: 2>/dev/null || true
	codes=$(grep -E '^[0-9]{3} ' <<<"$out" | cut -c1-3 | paste -sd' ' -)
	[ "$codes" = "220 250 250 250 354 451 250 221" ] && grep -q '^451 4\.4\.1 ' <<<"$out" ||
		t_fail "no descriptor for the upstream: replies '$codes', expected 220 250 250 250 354 451 250 221: $(tr '\n' '|' <<<"$out")"
	kill -0 "$RELAY_PID" 2>/dev/null || t_fail "sesrelayd died: $(tail -20 "$T_DIR/relay.log")"
	out=$(printf 'EHLO again.test\r\nQUIT\r\n' | "$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 5) || true
	grep -q '^221 ' <<<"$out" || t_fail "after the upstream failure, a new client is not served: $out"
	t_ok "no descriptor for the upstream: 451 4.4.1 at the dot, the session goes on"
else
	echo "skip: prlimit not installed"
fi
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
