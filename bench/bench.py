#!/usr/bin/python3
"""bench/bench.py — measuring helpers for bench/run (loopback only).

  cpu PID                 CPU ticks used so far by PID and every process
                          below it: its utime+stime+cutime+cstime (the
                          children it already reaped) plus utime+stime of
                          the live ones.  Two readings give the CPU of a
                          whole process tree over an interval, even when
                          its members come and go (Postfix's smtpd, smtp).
  pss PID OUT [MS]        sample the summed PSS (smaps_rollup) of the tree
                          every MS ms (default 50) until SIGTERM; write
                          the peak (kB), the largest process count and
                          the number of samples to OUT
  probe HOST PORT OUT [--len N] [--from ADDR] [--tls CA NAME USER PASSWORD]
                          latency probe: one SMTP session sending messages
                          back to back (2 ms apart); each sample is the
                          time from the final "." to the reply.  Runs until
                          SIGTERM, then writes "n p50 p99 max ok" (ms) to
                          OUT; a 421 reconnects.
  send HOST PORT SESSIONS MESSAGES LEN
                          the load for large messages: SESSIONS threads,
                          one connection per message, every DATA sent at
                          once (one body of LEN octets, built once, in
                          78-octet lines: what smtp-source -l sends; but
                          smtp-source writes a whole body before it
                          serves its next session, so its large messages
                          go one at a time).  Exits 1 unless every final
                          dot got a 250.
  startup PROG CONF PORT [TIMES]
                          median ms from exec to the first 220 greeting
  idle PORT PID N         open N idle client connections (each greeted),
                          then print the daemon's VmRSS and PSS in kB
  passwd PROG [TIMES]     median ms of `PROG passwd` (secret on stdin)
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rfind(")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(d))
    return kids


def tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    # fields after "(comm)": state is field 3, utime 14 ... cstime 17
    return st[st.rfind(")") + 2:].split()


def cpu(pid):
    total = 0
    for i, p in enumerate(tree(pid)):
        try:
            f = stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    print(total)


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Stop(Exception):
    pass


def on_term(*_):
    raise Stop()


def pss(pid, out, ms):
    signal.signal(signal.SIGTERM, on_term)
    peak = nprocs = samples = 0
    try:
        while True:
            procs = tree(pid)
            v = sum(pss_kb(p) for p in procs)
            peak = max(peak, v)
            nprocs = max(nprocs, len(procs))
            samples += 1
            time.sleep(ms / 1000.0)
    except Stop:
        pass
    with open(out, "w") as f:
        f.write("%d %d %d\n" % (peak, nprocs, samples))


class Conn:
    def __init__(self, host, port, tls):
        self.s = socket.create_connection((host, port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.expect("220")
        self.cmd("EHLO probe.test", "250")
        if tls is not None:
            ca, name, user, password = tls
            self.cmd("STARTTLS", "220")
            ctx = ssl.create_default_context(cafile=ca)
            self.s = ctx.wrap_socket(self.s, server_hostname=name)
            self.cmd("EHLO probe.test", "250")
            import base64
            tok = base64.b64encode(b"\0" + user.encode() + b"\0" +
                                   password.encode()).decode()
            self.cmd("AUTH PLAIN " + tok, "235")

    def reply(self):
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("latin-1"))
            if len(line) < 4 or line[3:4] == b" ":
                return lines[-1][:3], lines

    def expect(self, code):
        c, lines = self.reply()
        if c != code:
            raise RuntimeError("expected %s, got %r" % (code, lines))
        return c

    def cmd(self, line, code):
        self.s.sendall(line.encode() + b"\r\n")
        return self.expect(code)


def probe(host, port, out, length, tls, sender):
    head = b"From: probe@example.com\r\nTo: sink@example.net\r\n" \
           b"Subject: latency probe\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = head + line * max(0, (length - len(head) + 77) // 78)
    signal.signal(signal.SIGTERM, on_term)
    samples, ok = [], 0
    c = None
    try:
        while True:
            try:
                if c is None:
                    c = Conn(host, port, tls)
                code = c.cmd("MAIL FROM:<%s>" % sender, "250")
                c.cmd("RCPT TO:<sink@example.net>", "250")
                c.cmd("DATA", "354")
                c.s.sendall(body)
                t0 = time.perf_counter()
                c.s.sendall(b".\r\n")
                code, _ = c.reply()
                t1 = time.perf_counter()
                samples.append((t1 - t0) * 1000.0)
                if code == "250":
                    ok += 1
                time.sleep(0.002)
            except (RuntimeError, EOFError, OSError):
                # a 421 (session limit) or a closed session: start again
                c = None
                time.sleep(0.01)
    except Stop:
        pass
    with open(out + ".raw", "w") as f:
        f.write("".join("%.3f\n" % v for v in samples))
    samples.sort()

    def pct(p):
        if not samples:
            return 0.0
        return samples[min(len(samples) - 1, int(p * len(samples)))]
    with open(out, "w") as f:
        f.write("%d %.3f %.3f %.3f %d\n" % (len(samples), pct(0.50),
                pct(0.99), samples[-1] if samples else 0.0, ok))


def send(host, port, sessions, msgs, length):
    import threading
    head = b"From: <bench@example.com>\r\nTo: <sink@example.net>\r\n" \
           b"Subject: bench\r\n\r\n"
    n, rem = divmod(length, 80)
    if rem == 1 and n > 0:
        body = (b"X" * 78 + b"\r\n") * (n - 1) + b"X" * 79 + b"\r\n"
    else:
        body = (b"X" * 78 + b"\r\n") * n + \
            (b"X" * (rem - 2) + b"\r\n" if rem >= 2 else b"X\r\n" * rem)
    data = memoryview(head + body + b".\r\n")
    failed = []

    def one(count):
        for _ in range(count):
            try:
                c = Conn(host, port, None)
                c.s.settimeout(300)
                c.cmd("MAIL FROM:<bench@example.com>", "250")
                c.cmd("RCPT TO:<sink@example.net>", "250")
                c.cmd("DATA", "354")
                c.s.sendall(data)
                c.expect("250")
                c.s.sendall(b"QUIT\r\n")
                c.s.close()
            except (RuntimeError, EOFError, OSError) as e:
                failed.append(str(e))
    per, extra = divmod(msgs, sessions)
    ts = [threading.Thread(target=one, args=(per + (i < extra),))
          for i in range(sessions)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("send: %d of %d messages accepted" % (msgs - len(failed), msgs))
    for e in failed[:3]:
        print("send: " + e)
    sys.exit(1 if failed else 0)


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def startup(prog, conf, port, times):
    res = []
    for _ in range(times):
        t0 = time.perf_counter()
        p = subprocess.Popen([prog, "-f", "-c", conf],
                             stderr=subprocess.DEVNULL)
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port))
                if s.recv(512).startswith(b"220"):
                    break
            except OSError:
                time.sleep(0.0005)
        res.append((time.perf_counter() - t0) * 1000.0)
        s.close()
        p.terminate()
        p.wait()
    print("%.1f" % median(res))


def idle(port, pid, n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=15)
        if not s.recv(512).startswith(b"220"):
            raise SystemExit("idle: no greeting")
        conns.append(s)
    time.sleep(0.2)
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    print("%d %d" % (rss, pss_kb(pid)))


def passwd(prog, times):
    res = []
    for _ in range(times):
        t0 = time.perf_counter()
        subprocess.run([prog, "passwd"], input=b"wJalrXUtnFEMI/K7MDENG/"
                       b"bPxRfiCYEXAMPLEKEY\n", stdout=subprocess.DEVNULL,
                       check=True)
        res.append((time.perf_counter() - t0) * 1000.0)
    print("%.1f" % median(res))


def main(a):
    if a[0] == "cpu":
        cpu(int(a[1]))
    elif a[0] == "pss":
        pss(int(a[1]), a[2], float(a[3]) if len(a) > 3 else 50.0)
    elif a[0] == "probe":
        length, tls, sender, rest = 10240, None, "probe@example.com", a[4:]
        while rest:
            if rest[0] == "--len":
                length, rest = int(rest[1]), rest[2:]
            elif rest[0] == "--from":
                sender, rest = rest[1], rest[2:]
            elif rest[0] == "--tls":
                tls, rest = tuple(rest[1:5]), rest[5:]
            else:
                raise SystemExit("probe: bad option %s" % rest[0])
        probe(a[1], int(a[2]), a[3], length, tls, sender)
    elif a[0] == "send":
        send(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]))
    elif a[0] == "startup":
        startup(a[1], a[2], int(a[3]), int(a[4]) if len(a) > 4 else 5)
    elif a[0] == "idle":
        idle(int(a[1]), int(a[2]), int(a[3]))
    elif a[0] == "passwd":
        passwd(a[1], int(a[2]) if len(a) > 2 else 5)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
