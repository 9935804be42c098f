#!/bin/bash
# abuse_connections.sh — 10,000 connections opened and held against a
# sesrelayd with max_clients = 1000: exactly 1000 are served (220) and
# held, every other one is refused with "421 4.3.2", the daemon's memory
# stays bounded (VmRSS/VmHWM printed), a client is refused while the limit
# is reached and served again as soon as the held connections go.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
TOTAL=10000
MAX=1000

# descriptors: the daemon needs MAX + a few, the client all of TOTAL;
# connections are opened 100 at a time (less than the listen backlog)
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=65536
[ "$hard" -ge $((TOTAL + 100)) ] || { echo "SKIP: hard descriptor limit $hard < $((TOTAL + 100))"; exit 77; }
ulimit -n "$hard"

# Memory bounds (kB): sanitizer builds carry shadow memory, and a
# quarantine of freed blocks (kept small here).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if ldd "$SESRELAYD" 2>/dev/null | grep libasan >/dev/null; then
	RSS_MAX=150000
else
	RSS_MAX=40000
fi
mem() { awk '/^(VmRSS|VmHWM):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$RELAY_PID/status"; }
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$RELAY_PID/status"; }

t_start_fake --quiet
t_config
sed -i "/^\\[ses\\]/i max_clients = $MAX" "$CONF"
t_start_relay
echo "# before: $(mem)"

mkfifo "$T_DIR/hold"
cat >"$T_DIR/conns.py" <<'PY'
import resource, selectors, socket, sys, time
port, total, batch = (int(a) for a in sys.argv[1:4])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, refused, other = [], 0, []
t0 = time.time()
for start in range(0, total, batch):
    sel, bufs = selectors.DefaultSelector(), {}
    for _ in range(min(batch, total - start)):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    deadline = time.time() + 30
    while bufs and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                d = s.recv(512)
            except OSError as e:
                d = b""
            bufs[s] += d
            if b"\r\n" in bufs[s] or not d:
                line = bufs.pop(s)
                sel.unregister(s)
                if line.startswith(b"220 "):
                    held.append(s)
                elif line.startswith(b"421 4.3.2 "):
                    refused += 1
                    s.close()
                else:
                    other.append(line[:80])
                    s.close()
    for s in bufs:
        other.append(b"<no answer in 30 s>")
        s.close()
    sel.close()
print("held=%d refused=%d other=%d secs=%.1f" % (len(held), refused,
      len(other), time.time() - t0), other[:3], flush=True)
sys.stdin.read()        # hold them until told
PY
"$PY" "$T_DIR/conns.py" "$RELAY_PORT" "$TOTAL" 100 <"$T_DIR/hold" >"$T_DIR/conns.out" 2>&1 &
CPID=$!
T_PIDS+=("$CPID")
exec 9>"$T_DIR/hold"	# the client holds until this closes
for _ in $(seq 900); do grep -q '^held=' "$T_DIR/conns.out" && break; sleep 0.1; done
grep -q '^held=' "$T_DIR/conns.out" || t_fail "client did not finish: $(cat "$T_DIR/conns.out")"
res=$(head -1 "$T_DIR/conns.out")
echo "# $res"
echo "# holding $MAX: $(mem)"
held=$(sed -n 's/^held=\([0-9]*\).*/\1/p' <<<"$res")
refused=$(sed -n 's/.* refused=\([0-9]*\).*/\1/p' <<<"$res")
[ "$held" = "$MAX" ] || t_fail "$held connections served, expected max_clients = $MAX: $res"
[ "$refused" = $((TOTAL - MAX)) ] || t_fail "$refused refused with 421 4.3.2, expected $((TOTAL - MAX)): $res"
t_ok "$TOTAL connections: $held served and held, $refused refused with 421 4.3.2"
n=$(grep -c 'connection refused .*reason=max_clients' "$T_DIR/relay.log" || true)
[ "$n" = "$refused" ] || t_fail "$n refusals logged, expected $refused"

out=$("$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 10 </dev/null)
grep -q '^421 4\.3\.2 ' <<<"$out" || t_fail "at the limit, a new client got: $out"
t_ok "at the limit a new client is refused: $(head -1 <<<"$out" | cut -c1-50)"
h=$(hwm)
[ "$h" -le "$RSS_MAX" ] || t_fail "VmHWM $h kB over the bound of $RSS_MAX kB"
t_ok "memory with $MAX sessions held: $(mem)(bound $RSS_MAX kB)"

exec 9>&-		# the client lets go of its connections
wait "$CPID" || true
ok=
for _ in $(seq 50); do
	out=$(printf 'EHLO again.test\r\nQUIT\r\n' | "$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 10)
	grep -q '^220 ' <<<"$out" && grep -q '^221 ' <<<"$out" && { ok=1; break; }
	sleep 0.1
done
[ -n "$ok" ] || t_fail "after the held connections closed, a client is not served: $out"
t_ok "held connections gone: a new client is served"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
