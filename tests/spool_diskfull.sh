#!/bin/bash
# Spool mode with a full disk: the client gets a temporary error (452/451),
# never a 250 for a message that is not on disk, and nothing accepted is
# lost.  As root, the spool is a 512 KiB tmpfs in a private mount
# namespace (real ENOSPC); otherwise a file size limit (RLIMIT_FSIZE)
# injects the write failure (EFBIG).
set -euo pipefail
if [ "$(id -u)" -eq 0 ] && [ -z "${SESRELAY_IN_NS:-}" ] &&
    unshare -m true 2>/dev/null; then
	SESRELAY_IN_NS=1 exec unshare -m bash "$0" "$@"
fi
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || exit 77

t_start_fake --quiet
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 1s"
mkdir -p "$SPOOL"
if [ -n "${SESRELAY_IN_NS:-}" ]; then
	mount --make-rprivate / 2>/dev/null || true
	mount -t tmpfs -o size=512k,mode=0700 tmpfs "$SPOOL"
	T_UMOUNT=$SPOOL
	how="tmpfs of 512 KiB"
	t_start_relay
else
	chmod 700 "$SPOOL"
	how="RLIMIT_FSIZE of 200 KiB"
	RELAY_PORT_SAVE=$RELAY_PORT
	prlimit --fsize=204800 "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log" &
	RELAY_PID=$!; T_PIDS+=("$RELAY_PID")
	t_wait_port "$RELAY_PORT" || t_fail "sesrelayd did not start"
fi
t_stop_fake		# keep everything queued: the disk fills up

# 100 KB messages until the relay refuses one; record which got 250
/usr/bin/python3 - "$RELAY_PORT" "$T_DIR/acked" >"$T_DIR/fill.out" <<'PY'
import smtplib, sys
port, ackfile = int(sys.argv[1]), sys.argv[2]
body = ("y" * 98 + "\r\n") * 1000
acked, temp = [], []
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    for i in range(12):
        msg = ("Subject: fill %d\r\nX-Test-Seq: %d\r\n\r\n%s" % (i, i, body)).encode()
        try:
            s.sendmail("app@example.com", ["big@example.net"], msg)
            acked.append(i)
        except smtplib.SMTPResponseException as e:
            temp.append("%d %s" % (e.smtp_code, e.smtp_error.decode()))
            if e.smtp_code >= 500:
                print("permanent:", e.smtp_code, e.smtp_error.decode())
    s.noop()    # the session survives the refusal
open(ackfile, "w").write("".join("%d\n" % i for i in acked))
print("acked=%d refused=%d" % (len(acked), len(temp)))
for t in temp[:3]:
    print("refused:", t)
PY
cat "$T_DIR/fill.out"
grep -q '^permanent:' "$T_DIR/fill.out" && t_fail "a full disk gave a permanent error"
grep -Eq '^refused: (452 4\.3\.1 Insufficient system storage|451 4\.3\.0 Error: queue file write error)' "$T_DIR/fill.out" ||
	t_fail "the disk never filled or the refusal is not a 452/451 ($how)"
acked=$(wc -l <"$T_DIR/acked")
[ "$acked" -ge 1 ] || t_fail "nothing was accepted before the disk filled"
[ -z "$(ls -A "$SPOOL/tmp")" ] || t_fail "a partial file was left in tmp/: $(ls "$SPOOL/tmp")"

t_start_fake --quiet	# SES is back: everything acknowledged goes out
t_wait_queue_empty 30 || t_fail "$(t_queue_left) messages still queued"
arrived=$(grep -h '^X-Test-Seq: ' "$MAILDIR"/*.eml | tr -d '\r' | awk '{print $2}' | sort -un)
missing=$(comm -23 <(sort -u "$T_DIR/acked") <(echo "$arrived"))
[ -z "$missing" ] || t_fail "acknowledged but lost: $missing"
t_ok "full disk ($how): temporary refusal, $acked acknowledged messages all delivered"
