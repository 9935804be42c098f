#!/bin/bash
# abuse_pipelining.sh — 100,000 commands pipelined in one stream, written
# as fast as the daemon takes them: every one answered, in order, up to the
# session's limit, then "421 4.7.0" and the end of the connection (EHLO,
# MAIL, RCPT cycles: 10,000 transactions answered, the 10,001st MAIL gets
# the 421; NOOPs: 1000 answered, then the 421); the
# daemon's memory stays bounded (VmRSS/VmHWM printed; it stops reading
# while replies pile up unread).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
# kB; sanitizer builds carry shadow memory and a quarantine (kept small)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if ldd "$SESRELAYD" 2>/dev/null | grep libasan >/dev/null; then
	HWM_MAX=150000
else
	HWM_MAX=30000
fi
mem() { awk '/^(VmRSS|VmHWM):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$RELAY_PID/status"; }
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$RELAY_PID/status"; }

t_start_fake --quiet
t_config
t_start_relay
echo "# before: $(mem)"

pipeline() {	# KIND: cycles | noops
	"$PY" - "$RELAY_PORT" "$1" <<'PY'
import socket, sys, threading, time
port, kind = int(sys.argv[1]), sys.argv[2]
N = 100000
if kind == "cycles":
    cmds = [b"EHLO pipe.test", b"MAIL FROM:<app@example.com>",
            b"RCPT TO:<rcpt@example.net>"] * (N // 3 + 1)
    cmds = cmds[:N]
    want = [b"250 ", b"250 2.1.0 ", b"250 2.1.5 "] * (N // 3 + 1)
else:
    cmds = [b"NOOP"] * N
    want = [b"250 2.0.0 "] * N
s = socket.create_connection(("127.0.0.1", port), timeout=60)
data = b"".join(c + b"\r\n" for c in cmds)
t0 = time.time()
err = []

def writer():
    try:
        s.sendall(data)
    except OSError as e:        # the server closed: fine after a 421
        err.append(e)

buf, replies, ended = b"", [], None
w = threading.Thread(target=writer)
w.start()
while True:
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        ended = "reset"
        break
    if not d:
        ended = "eof"
        break
    buf += d
    *lines, buf = buf.split(b"\r\n")
    replies += [l for l in lines if l[3:4] != b"-"]
    if len(replies) == N + 1:
        s.sendall(b"QUIT\r\n")
w.join()
replies = replies[1:]                   # the greeting
bad = next((i for i, r in enumerate(replies[:N]) if not r.startswith(want[i])),
           None)
print("%s: %d commands, %d replies, first out of order: %s, then %s, "
      "%.1f s" % (kind, N, len(replies),
                  bad if bad is None else "%d %r" % (bad, replies[bad][:50]),
                  ended, time.time() - t0))
if kind == "cycles":
    # MAIL number 10,001 (MAX_TRANSACTIONS + 1) is command 3 * 10000 + 1
    at = 3 * 10000 + 1
    ok = bad is not None and bad == at and \
        replies[bad].startswith(b"421 4.7.0 ") and \
        b"Too many transactions" in replies[bad] and \
        len(replies) == at + 1 and ended in ("eof", "reset")
else:
    ok = bad is not None and bad == 1000 and \
        replies[bad].startswith(b"421 4.7.0 ") and \
        len(replies) == 1001 and ended in ("eof", "reset")
sys.exit(0 if ok else 1)
PY
}

out=$(pipeline cycles) || t_fail "$out"
echo "# $out"
echo "# after: $(mem)"
t_ok "100,000 pipelined EHLO/MAIL/RCPT: 30,001 answered in order, then 421 4.7.0 at the 10,001st transaction and closed"
out=$(pipeline noops) || t_fail "$out"
echo "# $out"
echo "# after: $(mem)"
t_ok "100,000 pipelined NOOPs: 1000 answered, then 421 4.7.0 and closed"
[ "$(hwm)" -le "$HWM_MAX" ] || t_fail "VmHWM $(hwm) kB over the bound of $HWM_MAX kB"
t_ok "memory bounded: $(mem)(bound $HWM_MAX kB)"
[ "$(t_messages)" = 0 ] || t_fail "a message reached SES"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
