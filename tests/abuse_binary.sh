#!/bin/bash
# abuse_binary.sh — random bytes on the socket: 20 clients that send 256 kB
# of binary without waiting for the greeting, 20 that mix binary with
# CRLFs (many "commands"), and one that sends 1 MB of binary as a message
# body.  The daemon survives (no crash, no sanitizer report), answers
# every line it takes as a command, closes who it must, and serves a
# normal client during and after.  The random data is seeded and the seed
# printed, so a failure can be replayed (SEED=n).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
SEED=${SEED:-$RANDOM}
echo "# SEED=$SEED"

t_start_fake --quiet
t_config
sed -i 's/^timeout = .*/timeout = 10s/' "$CONF"
t_start_relay

"$PY" - "$RELAY_PORT" "$SEED" >"$T_DIR/binary.out" 2>&1 <<'PY' &
import random, socket, sys, threading
port, seed = int(sys.argv[1]), int(sys.argv[2])
results = {}

def client(name, payload, greet=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    got, end = b"", "eof"
    try:
        if greet:
            got += s.recv(4096)
        try:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        except OSError:         # closed on us while sending: read the rest
            pass
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    except socket.timeout:
        end = "timeout"
    finally:
        s.close()
        results[name] = (got, end)

threads = []
for i in range(20):
    r = random.Random(seed * 1000 + i)
    threads.append(threading.Thread(target=client, name="raw%d" % i,
        args=("raw%d" % i, r.randbytes(256 * 1024))))
for i in range(20):
    r = random.Random(seed * 1000 + 100 + i)
    parts = []
    for _ in range(200):
        parts.append(r.randbytes(r.randrange(0, 300)))
        parts.append(b"\r\n")
    threads.append(threading.Thread(target=client, name="lines%d" % i,
        args=("lines%d" % i, b"".join(parts), True)))
r = random.Random(seed * 1000 + 999)
body = r.randbytes(1 << 20)
threads.append(threading.Thread(target=client, name="data", args=("data",
    b"EHLO bin.test\r\nMAIL FROM:<app@example.com>\r\n"
    b"RCPT TO:<bin@example.net>\r\nDATA\r\n" + body + b"\r\n.\r\nQUIT\r\n",
    True)))
for t in threads:
    t.start()
for t in threads:
    t.join()
bad = ["%s: no result" % t.name for t in threads if t.name not in results]
for name, (got, end) in sorted(results.items()):
    lines = [l for l in got.split(b"\r\n") if l]
    if end == "timeout":
        bad.append("%s: no end of connection" % name)
    for l in lines:
        if not (l[:3].isdigit() and l[3:4] in (b" ", b"-")):
            bad.append("%s: not a reply: %r" % (name, l[:60]))
            break
codes = {}
for got, end in results.values():
    for l in got.split(b"\r\n"):
        if l[3:4] == b" ":
            codes[l[:3].decode()] = codes.get(l[:3].decode(), 0) + 1
print("replies by code:", dict(sorted(codes.items())))
print("data client:", [l.decode(errors="replace")[:70] for l in
                       results["data"][0].split(b"\r\n") if l][-2:],
      results["data"][1])
print("problems:", bad[:5])
sys.exit(1 if bad else 0)
PY
BIN=$!
T_PIDS+=("$BIN")

sleep 0.5
out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 --helo client.test \
	--from app@example.com --to during@example.net 2>&1 || true)
grep -q '^<-  250 .*Ok 0100' <<<"$out" || t_fail "a normal client during the binary flood: $(grep '^<' <<<"$out" | tail -2)"
t_ok "a normal client is served during the binary flood"
wait "$BIN" || t_fail "binary clients: $(cat "$T_DIR/binary.out")"
sed 's/^/# /' "$T_DIR/binary.out"
t_ok "41 binary clients: every line answered with a reply, every connection ended"
kill -0 "$RELAY_PID" 2>/dev/null || t_fail "sesrelayd died: $(tail -20 "$T_DIR/relay.log")"
out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 --helo client.test \
	--from app@example.com --to after@example.net 2>&1 || true)
grep -q '^<-  250 .*Ok 0100' <<<"$out" || t_fail "a normal client after the binary flood: $(grep '^<' <<<"$out" | tail -2)"
[ "$(t_messages)" = 2 ] || t_fail "$(t_messages) messages at SES, expected the 2 normal ones"
t_ok "after the flood a normal client is served; nothing binary reached SES"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
