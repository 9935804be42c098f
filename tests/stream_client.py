#!/usr/bin/python3
"""stream_client.py — send large messages to the relay, generated on the fly
(never held whole), and print one line per message:

    <reply to MAIL> | <reply to the final dot> sha256=<hex of the body>

usage: stream_client.py PORT SIZE [options]
  SIZE        octets of the message as sent (header + body, after DATA,
              before dot-stuffing), e.g. 39M, 41943040
  --count N   messages per connection (default 1)
  --conns N   concurrent connections (default 1)
  --declare   send SIZE=<size> with MAIL FROM
  --inject K@OFFSET  put K into the body at OFFSET: "lf" (a bare LF),
              "nul" (a NUL octet), "cr" (a bare CR)
  --stop-after OCTETS  send only this much of the data, then wait
              (for kill -9 tests); prints "partial" and sleeps
  --from ADDR From: address (default app@example.com); "none": no From:
"""
import hashlib, socket, sys, threading, time

def parse_size(s):
    m = {"K": 1024, "M": 1024 * 1024}
    return int(s[:-1]) * m[s[-1]] if s[-1] in m else int(s)

args = sys.argv[1:]
port, size = int(args[0]), parse_size(args[1])
opts = {"--count": "1", "--conns": "1", "--from": "app@example.com"}
flags = set()
i = 2
while i < len(args):
    if args[i] == "--declare":
        flags.add("declare"); i += 1
    else:
        opts[args[i]] = args[i + 1]; i += 2
count, conns = int(opts["--count"]), int(opts["--conns"])
inject = None
if "--inject" in opts:
    k, off = opts["--inject"].split("@")
    inject = ({"lf": b"\n", "nul": b"\0", "cr": b"\r"}[k], int(off))
stop_after = int(opts["--stop-after"]) if "--stop-after" in opts else None

LINE = b"".join(bytes([33 + (j * 7) % 90]) for j in range(76)) + b"\r\n"  # 78

def body_chunks(n, seq):
    """n octets of body: CRLF lines of 78 octets, some starting with a dot
    (dot-stuffing must be exact), ending with CRLF."""
    made = 0
    k = 0
    while made < n:
        left = n - made
        if left <= 160:
            piece = b"z" * max(0, left - 2) + b"\r\n" if left >= 2 else b"\r\n"[:left]
        else:
            lines = []
            for _ in range(min(840, (left - 80) // 78)):
                k += 1
                lines.append(b"." + LINE[1:] if k % 97 == 0 else LINE)
            piece = b"".join(lines)
        made += len(piece)
        yield piece

def reply(f):
    while True:
        line = f.readline()
        if not line:
            return "<eof>"
        if line[3:4] != b"-":
            return line.decode(errors="replace").strip()

out_lock = threading.Lock()

def one_conn(cid):
    s = socket.create_connection(("127.0.0.1", port), timeout=300)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO stream.test\r\n"); reply(f)
    for m in range(count):
        frm = opts["--from"]
        hdr = b"" if frm == "none" else b"From: <" + frm.encode() + b">\r\n"
        hdr += (b"To: <big@example.net>\r\nSubject: big %d.%d\r\n"
                b"X-Test-Seq: %d\r\n\r\n" % (cid, m, cid * 1000 + m))
        decl = b" SIZE=%d" % size if "declare" in flags else b""
        s.sendall(b"MAIL FROM:<app@example.com>" + decl + b"\r\n")
        r_mail = reply(f)
        if not r_mail.startswith("250"):
            with out_lock:
                print("%s | - sha256=-" % r_mail, flush=True)
            s.sendall(b"RSET\r\n"); reply(f)
            continue
        s.sendall(b"RCPT TO:<big@example.net>\r\n"); reply(f)
        s.sendall(b"DATA\r\n"); reply(f)
        h = hashlib.sha256()
        sent = 0
        buf = [hdr]
        sent += len(hdr)
        for piece in body_chunks(size - len(hdr), cid):
            if inject is not None and sent <= inject[1] < sent + len(piece):
                o = inject[1] - sent
                piece = piece[:o] + inject[0] + piece[o + 1:]
            h.update(piece)
            stuffed = piece.replace(b"\r\n.", b"\r\n..")
            if stuffed.startswith(b"."):
                stuffed = b"." + stuffed
            buf.append(stuffed)
            sent += len(piece)
            if stop_after is not None and sent >= stop_after:
                s.sendall(b"".join(buf))
                with out_lock:
                    print("partial %d" % sent, flush=True)
                time.sleep(600)
            if sum(map(len, buf)) > 1 << 20:
                s.sendall(b"".join(buf)); buf = []
        buf.append(b".\r\n")
        s.sendall(b"".join(buf))
        r_dot = reply(f)
        with out_lock:
            print("%s | %s sha256=%s" % (r_mail, r_dot, h.hexdigest()),
                  flush=True)
    s.sendall(b"QUIT\r\n")
    reply(f)

ts = [threading.Thread(target=one_conn, args=(c,)) for c in range(conns)]
for t in ts: t.start()
for t in ts: t.join()
