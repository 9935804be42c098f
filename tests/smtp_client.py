#!/usr/bin/python3
"""smtp_client.py — small SMTP helpers shared by the protocol tests
(tests/relay_*.sh).  Run with Debian's /usr/bin/python3.  Every wait is
bounded by a socket timeout.

  raw PORT [--replies N] [--timeout S] [--no-greeting-wait]
      Connect to 127.0.0.1:PORT, read the greeting, then send standard
      input in ONE write.  Print every reply line as received (CRLF
      stripped), then "<eof>" if the server closed the connection or
      "<timeout>" if it went quiet.  Stops after N complete replies
      (the greeting counts) when --replies is given.

  send PORT --from A --to B [--to C ...] [--mail-opt O ...] FILE...
      Python's smtplib: one session, one message per FILE (read as bytes;
      smtplib dot-stuffs and sends them).  Prints "data: CODE TEXT" for
      each message's final reply.

  check-eml SENT EML [--insert "Name: value" ...] [--received]
      Check byte for byte that EML (what the fake SES stored) is SENT
      (what the client submitted, CRLF lines, not dot-stuffed) with its
      X-SES-* header fields removed, preceded only by the --insert fields
      (exact "Name: value" lines, in any order) and, with --received,
      exactly one Received: field.  Exit 1 with a reason otherwise.
"""
import argparse
import re
import smtplib
import socket
import sys

REPLY_RE = re.compile(rb"^(\d{3})([ -])")


def cmd_raw(a):
    data = sys.stdin.buffer.read()
    s = socket.create_connection(("127.0.0.1", a.port), timeout=a.timeout)
    buf = b""
    nreplies = 0
    sent = False
    out = sys.stdout.buffer
    ended = "<timeout>"
    if a.no_greeting_wait:
        s.sendall(data)
        sent = True
    try:
        while a.replies is None or nreplies < a.replies:
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                out.write(line + b"\n")
                m = REPLY_RE.match(line)
                if m and m.group(2) == b" ":
                    nreplies += 1
                    if not sent:
                        s.sendall(data)
                        sent = True
                if a.replies is not None and nreplies >= a.replies:
                    break
            if a.replies is not None and nreplies >= a.replies:
                ended = None
                break
            chunk = s.recv(65536)
            if not chunk:
                if buf:
                    out.write(buf + b"<no-crlf>\n")
                ended = "<eof>"
                break
            buf += chunk
    except socket.timeout:
        ended = "<timeout>"
    except ConnectionResetError:
        ended = "<reset>"
    if ended:
        out.write(ended.encode() + b"\n")
    out.flush()
    s.close()
    return 0


def cmd_send(a):
    smtp = smtplib.SMTP("127.0.0.1", a.port, local_hostname="smtplib.test",
                        timeout=a.timeout)
    smtp.ehlo()
    for path in a.files:
        with open(path, "rb") as f:
            msg = f.read()
        code, text = smtp.mail(getattr(a, "from"), a.mail_opt or [])
        if code != 250:
            print("mail: %d %s" % (code, text.decode(errors="replace")))
            smtp.rset()
            continue
        ok = 0
        for r in a.to:
            code, text = smtp.rcpt(r)
            if code in (250, 251):
                ok += 1
            else:
                print("rcpt: %d %s" % (code, text.decode(errors="replace")))
        if ok == 0:
            smtp.rset()
            continue
        # smtplib's data() dot-stuffs and ends with CRLF.CRLF
        code, text = smtp.data(msg)
        print("data: %d %s" % (code, text.decode(errors="replace")))
        sys.stdout.flush()
    smtp.quit()
    return 0


def split_header(msg):
    """(header section incl. the empty line, body) of a CRLF message."""
    if msg.startswith(b"\r\n"):
        return b"\r\n", msg[2:]
    i = msg.find(b"\r\n\r\n")
    if i < 0:
        return msg, b""
    return msg[:i + 4], msg[i + 4:]


def fields(header):
    """The header fields of a header section, each with its CRLFs and
    continuation lines, in order (the final empty line is left out)."""
    out = []
    for line in header.split(b"\r\n")[:-1]:
        if line == b"":
            break
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line + b"\r\n"
        else:
            out.append(line + b"\r\n")
    return out


def fname(field):
    return field.split(b":", 1)[0].strip().lower()


def cmd_check_eml(a):
    sent = open(a.sent, "rb").read()
    got = open(a.eml, "rb").read()
    shdr, sbody = split_header(sent)
    kept = [f for f in fields(shdr) if not fname(f).startswith(b"x-ses-")]
    expect_tail = b"".join(kept) + b"\r\n" + sbody
    if not got.endswith(expect_tail):
        # find where they part, for the message
        g_hdr, g_body = split_header(got)
        if g_body != sbody:
            n = next((i for i in range(min(len(g_body), len(sbody)))
                      if g_body[i] != sbody[i]), min(len(g_body), len(sbody)))
            print("body differs at byte %d: sent %r, got %r" % (
                n, sbody[max(0, n - 20):n + 40], g_body[max(0, n - 20):n + 40]))
        else:
            print("header differs: expected the client's fields %r at the "
                  "end of the header, got header %r" % (kept, g_hdr))
        return 1
    prefix = got[:len(got) - len(expect_tail)]
    pf = fields(prefix + b"\r\n")
    if b"".join(pf) != prefix:
        print("added header lines are not well-formed fields: %r" % prefix)
        return 1
    want = sorted((x.encode() + b"\r\n") for x in a.insert)
    ses = sorted(f for f in pf if fname(f).startswith(b"x-ses-"))
    if ses != want:
        print("X-SES-* fields added: %r, expected %r" % (ses, want))
        return 1
    rec = [f for f in pf if fname(f) == b"received"]
    other = [f for f in pf if fname(f) not in (b"received",)
             and not fname(f).startswith(b"x-ses-")]
    if other:
        print("unexpected fields added: %r" % other)
        return 1
    if a.received:
        if len(rec) != 1:
            print("expected exactly one Received: field added, got %r" % rec)
            return 1
        if not re.match(rb"Received: from \S+ .*\bby \S+ .*;", rec[0], re.S):
            print("Received: field is not RFC 5321 shaped: %r" % rec[0])
            return 1
    elif rec:
        print("unexpected Received: %r" % rec)
        return 1
    # SES acts on the first instance: none of the client's may remain
    for f in fields(split_header(got)[0]):
        if fname(f).startswith(b"x-ses-") and f not in want:
            print("client X-SES-* field reached SES: %r" % f)
            return 1
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw")
    r.add_argument("port", type=int)
    r.add_argument("--replies", type=int)
    r.add_argument("--timeout", type=float, default=10)
    r.add_argument("--no-greeting-wait", action="store_true")
    s = sub.add_parser("send")
    s.add_argument("port", type=int)
    s.add_argument("--from", required=True)
    s.add_argument("--to", action="append", required=True)
    s.add_argument("--mail-opt", action="append")
    s.add_argument("--timeout", type=float, default=20)
    s.add_argument("files", nargs="+")
    c = sub.add_parser("check-eml")
    c.add_argument("sent")
    c.add_argument("eml")
    c.add_argument("--insert", action="append", default=[])
    c.add_argument("--received", action="store_true")
    a = p.parse_args()
    return {"raw": cmd_raw, "send": cmd_send, "check-eml": cmd_check_eml}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
