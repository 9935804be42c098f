#!/bin/bash
# service_logs.sh — logs of a full run, with -d, in both formats: never
# the secret access key, the derived SMTP password or the AUTH strings
# made from them; every "delivery" line that went to SES carries ses_id=;
# log_format = json gives one valid JSON object per line, even with
# 8-bit junk from a client; without -f, sesrelayd detaches and logs
# nothing more on stderr (syslog instead).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }
PY=/usr/bin/python3
[ -x $PY ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }

PASSWORD=$(printf '%s\n' "$EXAMPLE_SECRET" | "$SESRELAY" passwd --region us-east-1)
[ ${#PASSWORD} -eq 44 ] || t_fail "sesrelay passwd: $PASSWORD"
# what AUTH PLAIN and AUTH LOGIN would put on the wire
PLAIN=$(printf '\0%s\0%s' "$EXAMPLE_KEY_ID" "$PASSWORD" | base64 -w0)
LOGIN=$(printf '%s' "$PASSWORD" | base64 -w0)
SECRET_B64=$(printf '%s' "$EXAMPLE_SECRET" | base64 -w0)

send() {	# to [swaks options]
	local to=$1; shift
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from app@example.com --to "$to" "$@" >/dev/null 2>&1 || true
}

# junk: a client sending 8-bit bytes that are not UTF-8
junk() {
	$PY - "$RELAY_PORT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
f.readline()
for line in (b"EHLO \xff\xfe.example\r\n", b"MAIL FROM:<\xc3\x28@example.com>\r\n",
             b"RCPT TO:<x\"\\\x01@example.net>\r\n", b"QUIT\r\n"):
    s.sendall(line)
    while True:
        r = f.readline()
        if not r or r[3:4] != b"-":
            break
s.close()
PY
}

run() {	# format mode: a full run in LOG=$T_DIR/log.$format.$mode
	local format=$1 mode=$2
	LOG=$T_DIR/log.$format.$mode
	: >"$T_DIR/relay.log"
	T_MODE=$mode t_config "null_sender = bounces@example.com" "" "[queue]" "retry_min = 1s" "retry_max = 1s"
	sed -i "s/^\[relay\]$/[relay]\nlog_format = $format/" "$CONF"
	t_start_relay -d
	send ok@example.net --header "Subject: fine"
	send dup@example.net --header "Subject: one" --header "Subject: two"
	send unverified-l@example.net --header "Subject: doomed"
	junk
	t_stop_fake
	send outage@example.net --header "Subject: outage"
	sleep 1.5
	t_start_fake --quiet
	kill -HUP "$RELAY_PID"
	if [ "$mode" = spool ]; then
		t_wait_queue_empty 15 || t_fail "$format/$mode: queue not emptied"
	fi
	sleep 0.5
	kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || t_fail "$format/$mode: exit non-zero"
	cp "$T_DIR/relay.log" "$LOG"
	[ "$(wc -l <"$LOG")" -ge 15 ] || t_fail "$format/$mode: only $(wc -l <"$LOG") log lines"
	local s
	for s in "$EXAMPLE_SECRET" "$PASSWORD" "$PLAIN" "$LOGIN" "$SECRET_B64"; do
		! grep -qF -- "$s" "$LOG" || t_fail "$format/$mode: a secret is in the log: $(grep -F -- "$s" "$LOG" | head -1)"
	done
	# also a fragment: a secret cut or split must not leak either
	! grep -qF -- "${PASSWORD:4:20}" "$LOG" || t_fail "$format/$mode: part of the password is in the log"
	! grep -qF -- "${EXAMPLE_SECRET:8:20}" "$LOG" || t_fail "$format/$mode: part of the secret is in the log"
	grep -q 'delivery id=' "$LOG" || t_fail "$format/$mode: no delivery lines"
	local bad
	bad=$(grep 'delivery id=' "$LOG" | grep -v 'status=refused' | grep -v ' ses_id=' || true)
	[ -z "$bad" ] || t_fail "$format/$mode: delivery lines without ses_id=: $bad"
	grep 'delivery id=.*status=sent' "$LOG" | grep ' ses_id=0100' >/dev/null ||
		t_fail "$format/$mode: no SES message id on a sent delivery"
	grep 'delivery id=.*status=\(deferred\|bounced\)' "$LOG" | grep ' ses_id=' >/dev/null ||
		t_fail "$format/$mode: no failed delivery line with ses_id="
}

t_start_fake --quiet
for format in text json; do
	for mode in spool passthrough; do
		run "$format" "$mode"
	done
done
t_ok "text and JSON logs of full runs (-d, both modes): no secret, password or AUTH string"
t_ok "every delivery line that reached SES has ses_id= (status=refused lines were refused locally)"

# text: "sesrelayd: " and one event per line
for mode in spool passthrough; do
	! grep -v '^sesrelayd: ' "$T_DIR/log.text.$mode" | grep . >/dev/null ||
		t_fail "text/$mode: a line without the sesrelayd: prefix: $(grep -v '^sesrelayd: ' "$T_DIR/log.text.$mode" | head -1)"
done
# json: every line one object with ts, level, msg
for mode in spool passthrough; do
	$PY - "$T_DIR/log.json.$mode" <<'PY' || t_fail "json/$mode: not one JSON object per line"
import json, re, sys
n = 0
for raw in open(sys.argv[1], "rb"):
    line = raw.decode("utf-8")          # strict: invalid UTF-8 fails
    obj = json.loads(line)
    assert isinstance(obj, dict) and set(obj) == {"ts", "level", "msg"}, line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["ts"]), obj["ts"]
    assert obj["level"] in ("debug", "info", "warning", "error"), obj["level"]
    assert "\n" not in obj["msg"]
    n += 1
assert n > 0
PY
done
grep -q '"level":"debug"' "$T_DIR/log.json.spool" || t_fail "-d gave no debug lines"
t_ok "log_format = json: one valid JSON object per line (ts, level, msg), junk bytes included"

# without -f: detached, nothing on stderr
T_MODE=spool t_config
: >"$T_DIR/daemon.err"
"$SESRELAYD" -c "$CONF" 2>"$T_DIR/daemon.err" || t_fail "sesrelayd (detached) exited $?"
t_wait_file "$SPOOL/sesrelayd.pid" 10 || t_fail "detached daemon wrote no pid file"
DPID=$(cat "$SPOOL/sesrelayd.pid"); T_PIDS+=("$DPID")
t_wait_port "$RELAY_PORT" || t_fail "detached daemon does not listen"
send detached@example.net --header "Subject: detached"
t_wait_queue_empty 10 || t_fail "detached daemon did not deliver"
kill -TERM "$DPID"
for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$DPID" 2>/dev/null || t_fail "detached daemon did not stop"
# start-up lines (before detaching) may go to stderr; nothing after
! grep -qE 'ready:|delivery|queued|stopp' "$T_DIR/daemon.err" ||
	t_fail "detached daemon logged on stderr: $(grep -E 'ready:|delivery|queued|stopp' "$T_DIR/daemon.err" | head -3)"
t_ok "without -f: detaches, relays, logs nothing on stderr after start-up (syslog)"

# detached with a relative -c: SIGHUP still finds the file (the daemon
# has left for /); the new hostname shows in the next greeting
(cd "$T_DIR" && "$SESRELAYD" -c sesrelay.conf 2>"$T_DIR/daemon.err") || t_fail "sesrelayd -c sesrelay.conf exited $?"
t_wait_file "$SPOOL/sesrelayd.pid" 10 || t_fail "detached daemon wrote no pid file"
DPID=$(cat "$SPOOL/sesrelayd.pid"); T_PIDS+=("$DPID")
sed -i 's/^hostname = relay.test$/hostname = reloaded.test/' "$CONF"
kill -HUP "$DPID"
greeting=
for _ in $(seq 50); do
	greeting=$(timeout 5 $PY -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),5); print(s.recv(200).decode().strip())' "$RELAY_PORT" 2>/dev/null) || true
	grep -q reloaded.test <<<"$greeting" && break
	sleep 0.1
done
grep -q '^220 reloaded.test ' <<<"$greeting" || t_fail "relative -c: SIGHUP did not reload (greeting '$greeting')"
kill -TERM "$DPID"
for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
t_ok "without -f and with a relative -c path: SIGHUP reloads the file"

# a start-up failure after detaching (the spool is opened after the
# fork): exit 1, its reason on stderr
T_MODE=spool t_config
mkdir -p "$T_DIR/open"
chmod 777 "$T_DIR/open"
sed -i "s|^spool_dir = .*|spool_dir = $T_DIR/open|" "$CONF"
rc=0
"$SESRELAYD" -c "$CONF" 2>"$T_DIR/daemon.err" || rc=$?
[ $rc = 1 ] || t_fail "detached start with an unusable spool_dir exited $rc, expected 1"
grep -q "spool_dir: $T_DIR/open is writable by others" "$T_DIR/daemon.err" ||
	t_fail "detached start failure: the reason is not on stderr: $(cat "$T_DIR/daemon.err")"
t_ok "without -f: a start-up failure after detaching exits 1 with its reason ($(cat "$T_DIR/daemon.err"))"

# no core dumps: the derived password is in memory, even when the shell
# that starts the daemon allows them
T_MODE=passthrough t_config
(ulimit -c unlimited; exec "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log") &
CPID=$!
T_PIDS+=("$CPID")
t_wait_port "$RELAY_PORT" || t_fail "sesrelayd did not start: $(tail -3 "$T_DIR/relay.log")"
core=$(awk '/^Max core file size/ { print $5, $6 }' "/proc/$CPID/limits")
[ "$core" = "0 0" ] || t_fail "sesrelayd may dump core (limits: $core)"
stop_relay "$CPID" "$T_DIR/relay.log"
t_ok "sesrelayd runs with core dumps off (RLIMIT_CORE 0 0)"
