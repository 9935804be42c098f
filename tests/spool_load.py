#!/usr/bin/python3
"""spool_load.py — send numbered messages to a relay from several
concurrent SMTP sessions and record which ones the relay acknowledged.

  spool_load.py PORT ACKFILE --count N --workers W [--seconds S] [--size B]

Each message carries "X-Test-Seq: <n>".  A sequence number is written to
ACKFILE (one per line, flushed) only after the relay answered 250 to its
DATA.  Connection failures (the relay being killed) are retried with a
short pause; the whole run stops after S seconds.  Prints a summary.
"""
import argparse
import smtplib
import socket
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("ackfile")
p.add_argument("--count", type=int, default=200)
p.add_argument("--workers", type=int, default=4)
p.add_argument("--seconds", type=float, default=60)
p.add_argument("--size", type=int, default=2000)
a = p.parse_args()

lock = threading.Lock()
next_seq = [0]
acked = open(a.ackfile, "a", buffering=1)
stats = {"acked": 0, "refused": 0, "errors": 0}
deadline = time.monotonic() + a.seconds


def take():
    with lock:
        if next_seq[0] >= a.count:
            return None
        next_seq[0] += 1
        return next_seq[0]


def message(seq):
    body = ("x" * 70 + "\r\n") * (a.size // 72 + 1)
    return ("From: load@example.com\r\nTo: sink@example.net\r\n"
            "Subject: load %d\r\nX-Test-Seq: %d\r\n"
            "Message-ID: <seq%d@load.test>\r\n\r\n%s" % (seq, seq, seq, body)
            ).encode()


def worker():
    seq = take()
    while seq is not None and time.monotonic() < deadline:
        try:
            with smtplib.SMTP("127.0.0.1", a.port, timeout=10) as s:
                s.ehlo("load.test")
                while seq is not None and time.monotonic() < deadline:
                    try:
                        s.sendmail("load@example.com", ["sink@example.net"],
                                   message(seq))
                    except smtplib.SMTPResponseException as e:
                        with lock:
                            stats["refused"] += 1
                        if e.smtp_code >= 500:
                            raise
                        continue        # 4xx: try the same one again
                    with lock:
                        acked.write("%d\n" % seq)
                        stats["acked"] += 1
                    seq = take()
        except (OSError, smtplib.SMTPException):
            with lock:
                stats["errors"] += 1
            time.sleep(0.1)


threads = [threading.Thread(target=worker) for _ in range(a.workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("load: acked=%d refused=%d connection_errors=%d" %
      (stats["acked"], stats["refused"], stats["errors"]))
