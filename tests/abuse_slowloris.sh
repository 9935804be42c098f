#!/bin/bash
# abuse_slowloris.sh — clients that send one byte per second, with
# timeout = 5s: a command line trickled in is cut after 5 s, a message
# trickled in after 4 x 5 s (the DATA deadline), each with "421 4.4.2"
# and a closed connection; 50 of them at once do not keep a normal client
# from being served meanwhile.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3

t_start_fake --quiet
t_config
sed -i 's/^timeout = .*/timeout = 5s/' "$CONF"
t_start_relay

"$PY" - "$RELAY_PORT" >"$T_DIR/slow.out" 2>&1 <<'PY' &
import socket, sys, threading, time
port = int(sys.argv[1])
results = {}

def slow(name, prefix, trickle):
    """Send prefix at once, then trickle one byte per second; note the
    first 421 reply line, when it came (seconds after the trickle began)
    and whether the connection was then closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=40)
    buf = b""

    def lines():
        nonlocal buf
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            yield line

    def recv(timeout):
        """'data', 'timeout', or 'eof' (closed or reset)"""
        nonlocal buf
        s.settimeout(timeout)
        try:
            d = s.recv(4096)
        except socket.timeout:
            return "timeout"
        except OSError:
            return "eof"
        buf += d
        return "data" if d else "eof"

    while b"\r\n" not in buf and recv(10) == "data":      # 220
        pass
    list(lines())
    s.sendall(prefix)
    want = prefix.count(b"\r\n")                # one final reply each
    while want > 0 and recv(10) == "data":
        want -= sum(1 for l in lines() if l[3:4] != b"-")
    t0 = time.time()
    last, closed, when = b"", False, 0.0
    for c in trickle:
        try:
            s.send(bytes([c]))
        except OSError:
            closed = True
            break
        t1 = time.time()
        got = recv(1.0)
        for l in lines():
            last, when = l, time.time() - t0
        if got == "eof":
            closed = True
            break
        if last.startswith(b"421"):
            break
        time.sleep(max(0.0, 1.0 - (time.time() - t1)))
    for _ in range(3):                      # then it must close
        if closed:
            break
        got = recv(10)
        for l in lines():
            last = l
        closed = got == "eof"
    results[name] = (last.decode(errors="replace"), when, closed)

threads = [threading.Thread(target=slow, args=("command",
    b"", b"EHLO slowloris.example.com" * 10))]
threads.append(threading.Thread(target=slow, args=("data",
    b"EHLO s.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n",
    b"Subject: slow\r\n\r\n" + b"x" * 60)))
for i in range(50):
    threads.append(threading.Thread(target=slow, args=("many%d" % i,
        b"", b"NOOP " + b"z" * 60)))
for t in threads:
    t.start()
for t in threads:
    t.join()
for k in ("command", "data"):
    print(k, "%.1f" % results[k][1], results[k][2], results[k][0])
late = [k for k in results if k.startswith("many") and
        not (results[k][0].startswith("421 4.4.2") and results[k][2])]
print("many", 50 - len(late), "of 50 cut", late[:3])
PY
SLOW=$!
T_PIDS+=("$SLOW")

# meanwhile a normal client is served
sleep 2
out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 --helo client.test \
	--from app@example.com --to normal@example.net 2>&1 || true)
grep -q '^<-  250 .*Ok 0100' <<<"$out" || t_fail "a normal client during the slowloris: $(grep '^<' <<<"$out" | tail -2)"
t_ok "50 slowloris clients: a normal client is served meanwhile"

wait "$SLOW" || t_fail "slowloris client failed: $(cat "$T_DIR/slow.out")"
cat "$T_DIR/slow.out" | sed 's/^/# /'
read -r _ secs closed reply < <(grep '^command ' "$T_DIR/slow.out")
[[ $reply == "421 4.4.2 "* ]] && [ "$closed" = True ] ||
	t_fail "command trickled in: '$reply', closed=$closed"
awk -v s="$secs" 'BEGIN { exit !(s >= 4 && s <= 8) }' ||
	t_fail "command trickled in: cut after ${secs}s, expected about 5"
t_ok "a command line trickled in is cut after ${secs}s: $reply"
read -r _ secs closed reply < <(grep '^data ' "$T_DIR/slow.out")
[[ $reply == "421 4.4.2 "* ]] && [ "$closed" = True ] ||
	t_fail "message trickled in: '$reply', closed=$closed"
awk -v s="$secs" 'BEGIN { exit !(s >= 18 && s <= 24) }' ||
	t_fail "message trickled in: cut after ${secs}s, expected about 20"
t_ok "a message trickled in is cut after ${secs}s (4 x timeout): $reply"
grep -q '^many 50 of 50 cut' "$T_DIR/slow.out" || t_fail "not every slow client was cut: $(grep '^many' "$T_DIR/slow.out")"
t_ok "all 50 parallel slowloris clients cut with 421 4.4.2"
[ "$(t_messages)" = 1 ] || t_fail "$(t_messages) messages reached SES, expected only the normal one"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
