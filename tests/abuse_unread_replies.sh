#!/bin/bash
# abuse_unread_replies.sh — a client that pipelines commands and never
# reads the replies, so that they are still unwritten when its message is
# with SES (state relaying) or its AUTH failure waits out its delay (state
# paused) and [relay] timeout passes: sesrelayd stays up, and the outcome is
# not lost — SES's 250 for the message, the 535 for the AUTH — for a client
# that reads at last.
#
# How: a socket with a 4 KB receive buffer, a few hundred EHLOs with
# 250-byte names (a 360-byte reply each), then the command that starts the
# wait.  sesrelayd stops reading commands while 64 KB of replies are
# unwritten (OUTPUT_HIGH), and lets the kernel hold at most 16 KB of them
# unsent (TCP_NOTSENT_LOWAT), so a client that reads nothing makes it hold
# about 90 KB in all.  That bound is checked first (without the kernel
# bound, the send buffer autotunes to 4 MB and holds about 2 MB); it is
# measured as the number of EHLOs read before sesrelayd stops reading, and
# each state is then reached with half of OUTPUT_HIGH's worth fewer EHLOs:
# the last command is read, and 32 KB of replies are still unwritten.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
command -v saslpasswd2 >/dev/null || { echo "SKIP: saslpasswd2 not installed"; exit 77; }
PY=/usr/bin/python3

t_start_fake --quiet
mkdir -p "$T_DIR/sasl"
printf 'alice-pw\n' | saslpasswd2 -p -c -f "$T_DIR/sasldb" -u relay.test -a sesrelay alice
cat >"$T_DIR/sasl/sesrelay.conf" <<EOF2
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $T_DIR/sasldb
mech_list: PLAIN LOGIN
EOF2
export SASL_CONF_PATH=$T_DIR/sasl
t_config
sed -i 's/^timeout = 30s$/timeout = 1s/; s/^\[relay\]$/[relay]\nauth = optional/' "$CONF"
t_start_relay -d

"$PY" - "$RELAY_PORT" "$FAKE_PID" "$RELAY_PID" "$T_DIR/relay.log" <<'PY' || t_fail "see above; log: $(grep -v ' state \| -> ' "$T_DIR/relay.log" | tail -15)"
import base64, os, re, signal, socket, struct, sys, time
port, fake_pid, relay_pid, log = (int(sys.argv[1]), int(sys.argv[2]),
                                  int(sys.argv[3]), sys.argv[4])
TIMEOUT = 1                     # [relay] timeout
EHLO = ("EHLO %s\r\n" % ("h" * 250)).encode()
TXN = b"MAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n"
WRONG = ("AUTH PLAIN %s\r\n" %
         base64.b64encode(b"\0alice\0wrong-pw").decode()).encode()

def fail(why):
    print("FAIL: " + why)
    sys.exit(1)

def logtext():
    with open(log, errors="replace") as f:
        return f.read()

def alive():
    try:
        os.kill(relay_pid, 0)
    except OSError:
        return False
    # a zombie is dead too
    with open("/proc/%d/stat" % relay_pid) as f:
        return f.read().split(") ", 1)[1][0] != "Z"

def wait_log(pattern, seconds):
    for _ in range(int(seconds * 20)):
        if re.search(pattern, logtext()):
            return True
        time.sleep(0.05)
    return False

def settle():
    """Wait until the daemon's log stops growing (it has done all it can)."""
    n, still = -1, 0
    for _ in range(100):
        m = os.path.getsize(log)
        still = still + 1 if m == n else 0
        if still >= 4:
            return
        n = m
        time.sleep(0.1)

def unread(m, tail, src="127.0.0.1"):
    """A client that sends m EHLOs and tail, reading nothing; returns the
    socket and its session id."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    lport = s.getsockname()[1]
    pat = r"session (\w+) connect client=%s:%d\b" % (re.escape(src), lport)
    if not wait_log(pat, 5):
        fail("the relay did not log the new session")
    sid = re.search(pat, logtext()).group(1)
    s.settimeout(1.5)
    try:
        s.sendall(EHLO * m + tail)
    except (socket.timeout, BrokenPipeError, ConnectionResetError):
        pass                    # the daemon stopped reading, or hung up
    settle()
    return s, sid

def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

def read_all(s, seconds):
    s.settimeout(0.5)
    buf, t0 = b"", time.time()
    while time.time() - t0 < seconds:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not d:
            break
        buf += d
    return buf

OUTPUT_HIGH = 64 * 1024        # smtp_server.c: replies queued at most
HELD_MAX = 160 * 1024           # OUTPUT_HIGH + 16 KB unsent + the window

def ehlo_reply_len():
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(EHLO + b"QUIT\r\n")
    buf = b""
    while not buf.endswith(b"\r\n221 2.0.0 Bye\r\n"):
        d = c.recv(65536)
        if not d:
            break
        buf += d
    c.close()
    m = re.search(rb"\r\n(250-.*?\r\n250 [^\r]*\r\n)", buf, re.S)
    if m is None:
        fail("no EHLO reply: %r" % buf[-300:])
    return len(m.group(1))

def find_count():
    """The number of EHLOs to send before the command that starts the wait:
    half of OUTPUT_HIGH's worth fewer than sesrelayd reads from a client
    that reads nothing."""
    s, sid = unread(20000, b"")
    top = len(re.findall(r"session %s state \w+ -> ready" % sid, logtext()))
    reset(s)
    held = top * REPLY_LEN
    if held > HELD_MAX:
        fail("a client reading no replies made sesrelayd and its kernel "
             "hold %d KB of them (%d EHLOs read), over %d KB" %
             (held // 1024, top, HELD_MAX // 1024))
    m = top - OUTPUT_HIGH // 2 // REPLY_LEN
    if m < 1:
        fail("only %d EHLOs read before sesrelayd stopped reading" % top)
    print("ok - a client reading no replies: sesrelayd and its kernel hold "
          "%d KB of them, at most %d KB" % (held // 1024, HELD_MAX // 1024))
    return m

def relaying(m):
    os.kill(fake_pid, signal.SIGSTOP)
    try:
        s, sid = unread(m, TXN)
        s.sendall(b"From: app@example.com\r\nSubject: unread\r\n\r\nhi\r\n.\r\n")
        hit = wait_log(r"session %s client=\S+ (timeout in state relaying|"
                       r"not reading replies \(state relaying\))" % sid,
                       TIMEOUT + 3)
    finally:
        os.kill(fake_pid, signal.SIGCONT)
    if not hit:
        reset(s)
        return None
    time.sleep(1)               # SES answers; the daemon must still be up
    if not alive():
        fail("relaying: sesrelayd died when SES's reply came after the "
             "timeout")
    out = read_all(s, 10).decode("latin1")
    final = re.search(r"\r\n354 [^\r]*\r\n([0-9]{3} [^\r]*)\r\n", out)
    if final is None or not final.group(1).startswith("250 2.0.0 Ok 0100"):
        fail("relaying: the reply to the final dot is %r, expected SES's "
             "250 (end of the stream: %r)" %
             (final and final.group(1), out[-300:]))
    s.close()
    print("ok - state relaying: replies unread past the timeout; daemon up, "
          "the client reading at last gets %s" % final.group(1)[:24])
    return True

failures = 0
REPLY_LEN = ehlo_reply_len()

def paused(m):
    global failures
    s, sid = unread(m, WRONG)
    t0 = time.time()
    if not wait_log(r"session %s state ready -> paused" % sid, 3):
        reset(s)
        return None
    failures += 1
    hit = wait_log(r"session %s client=\S+ (timeout in state paused|"
                   r"not reading replies \(state paused\))" % sid, TIMEOUT + 2)
    if not hit:
        reset(s)
        return None
    # the delay is a second per failure from this address: let it end
    # before the client reads
    time.sleep(max(0, failures + 0.5 - (time.time() - t0)))
    if not alive():
        fail("paused: sesrelayd died when the AUTH delay ended after the "
             "timeout")
    out = read_all(s, 10).decode("latin1")
    if "\r\n535 5.7.8 " not in out:
        fail("paused: no 535 5.7.8 for the AUTH (end of the stream: %r)" %
             out[-300:])
    s.close()
    print("ok - state paused: replies unread past the timeout; daemon up, "
          "the client reading at last gets its 535 5.7.8")
    return True

def closing(m):
    """Five AUTH failures, the last of which closes the session, from a
    client that reads nothing: the last 535 and 421 cannot be written, and
    the session must still end, CLOSE_WRITE_SECONDS (5) after it began to
    close, not hold its descriptor until shutdown.  From another loopback
    address, whose AUTH delays start at 1 s (1+2+3+4+5 s)."""
    s, sid = unread(m, WRONG * 5, src="127.0.0.3")
    if not wait_log(r"session %s state \w+ -> closing" % sid, 20):
        reset(s)
        return None
    if not wait_log(r"session %s closed" % sid, 5 + 3):
        fail("closing: the session whose replies are unread did not end "
             "after its fifth AUTH failure")
    reset(s)
    print("ok - closing after the fifth AUTH failure with replies unread: "
          "the session ends within the write bound")
    return True

# two AUTH failures from this address first: the next one waits 3 s,
# longer than the timeout
for i in range(2):
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(b"EHLO prime.test\r\n" + WRONG)
    buf = b""
    while b"\r\n535 " not in buf:
        d = c.recv(4096)
        if not d:
            fail("priming: no 535: %r" % buf)
        buf += d
    c.close()
    failures += 1

for name, scenario in (("relaying", relaying), ("paused", paused),
                       ("closing", closing)):
    for attempt in range(3):
        m = find_count()
        if scenario(m):
            break
        print("# %s: %d EHLOs did not leave replies unwritten; again" %
              (name, m))
    else:
        fail("%s: could not leave replies unwritten in that state" % name)
PY
grep -q 'leaving closing state' "$T_DIR/relay.log" && t_fail "fatal: $(grep 'leaving closing' "$T_DIR/relay.log")"
sent=$(grep -c 'delivery id=.* status=sent' "$T_DIR/relay.log" || true)
[ "$sent" -ge 1 ] && [ "$(t_messages)" = "$sent" ] ||
	t_fail "$(t_messages) messages at SES, $sent reported sent"
t_ok "each message sent while its replies were unread reached SES once"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
