#!/bin/bash
# abuse_bigdata.sh — 100 MB of DATA with the default max_message_size (40M),
# undeclared (no SIZE=): refused with 552 at the final dot, nothing sent
# upstream, the session goes on (a normal message after it is relayed),
# and the daemon's memory stays bounded: VmRSS/VmHWM are printed and VmHWM
# must stay under the bound (what it keeps is at most max_message_size).
# Then the same with 100 MB in one line without any line break.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3

# kB: 40 MB kept + the daemon itself; sanitizer builds carry shadow memory
# and a quarantine of freed blocks (kept small here).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if ldd "$SESRELAYD" 2>/dev/null | grep libasan >/dev/null; then
	HWM_MAX=200000
else
	HWM_MAX=80000
fi
mem() { awk '/^(VmRSS|VmHWM):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$RELAY_PID/status"; }
hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$RELAY_PID/status"; }

t_start_fake --quiet
t_config
t_start_relay
echo "# before: $(mem)"

big() {		# MODE (lines | oneline): 100 MB, then a normal message
	"$PY" - "$RELAY_PORT" "$1" <<'PY'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=120)
f = s.makefile("rb")

def reply():
    while True:
        line = f.readline()
        if not line:
            return "<eof>"
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()

reply()
for cmd in (b"EHLO big.test", b"MAIL FROM:<app@example.com>",
            b"RCPT TO:<big@example.net>", b"DATA"):
    s.sendall(cmd + b"\r\n")
    reply()
if mode == "lines":
    chunk = (b"x" * 998 + b"\r\n") * 1000          # 1 MB
else:
    chunk = b"y" * 1000000
t0 = time.time()
s.sendall(b"Subject: big\r\n\r\n")
for _ in range(100):
    s.sendall(chunk)
s.sendall(b"\r\n.\r\n")
r = reply()
print("big:", r, "(%.1f s)" % (time.time() - t0))
for cmd in (b"MAIL FROM:<app@example.com>", b"RCPT TO:<small@example.net>",
            b"DATA", b"Subject: small\r\n\r\nhello\r\n."):
    s.sendall(cmd + b"\r\n")
    r = reply()
print("small:", r)
s.sendall(b"QUIT\r\n")
reply()
PY
}

out=$(big lines) || t_fail "client failed: $out"
echo "$out" | sed 's/^/# /'
grep -q '^big: 552 ' <<<"$out" || t_fail "100 MB undeclared: $(head -1 <<<"$out")"
grep -q '^small: 250 .*Ok 0100' <<<"$out" || t_fail "the session after the refusal: $(tail -1 <<<"$out")"
[ "$(t_messages)" = 1 ] || t_fail "$(t_messages) messages at SES, expected only the small one"
echo "# after 100 MB in lines: $(mem)"
[ "$(hwm)" -le "$HWM_MAX" ] || t_fail "VmHWM $(hwm) kB over the bound of $HWM_MAX kB"
t_ok "100 MB DATA: 552, session goes on, memory bounded ($(mem)bound $HWM_MAX kB)"

out=$(big oneline) || t_fail "client failed: $out"
echo "$out" | sed 's/^/# /'
grep -qE '^big: 55[0-9] ' <<<"$out" || t_fail "100 MB in one line: $(head -1 <<<"$out")"
grep -q '^small: 250 .*Ok 0100' <<<"$out" || t_fail "the session after the refusal: $(tail -1 <<<"$out")"
[ "$(t_messages)" = 2 ] || t_fail "$(t_messages) messages at SES, expected only the 2 small ones"
echo "# after 100 MB in one line: $(mem)"
[ "$(hwm)" -le "$HWM_MAX" ] || t_fail "VmHWM $(hwm) kB over the bound of $HWM_MAX kB"
t_ok "100 MB in one line: refused ($(grep -o '^big: 55[0-9]' <<<"$out" | cut -c6-)), memory bounded ($(mem)bound $HWM_MAX kB)"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
