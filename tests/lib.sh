# tests/lib.sh — shared by the protocol tests and ./demo: certificates, a
# fake SES endpoint, a sesrelayd, all on loopback, all cleaned up on exit.
# Source it after setting FAKE_SES, SESRELAYD, SESRELAY, GEN_CERTS (the
# Makefile's test environment does; ./demo too).

# The SPEC's example credentials: not a real key.
EXAMPLE_KEY_ID=AKIAIOSFODNN7EXAMPLE
EXAMPLE_SECRET='wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'

T_PIDS=()
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sesrelay-test.XXXXXX")
chmod 700 "$T_DIR"

t_cleanup() {
	local pid
	for pid in "${T_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${T_PIDS[@]}"; do
		# bounded wait: 5 s, then force
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[ -z "${T_UMOUNT:-}" ] || umount "$T_UMOUNT" 2>/dev/null || true
	[ -n "${T_KEEP:-}" ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT

t_fail() { echo "FAIL: $*" >&2; exit 1; }
t_ok() { echo "ok - $*"; }

# t_wait_file FILE [seconds]: wait until FILE exists and is non-empty.
t_wait_file() {
	local f=$1 n=$(( ${2:-10} * 20 ))
	for _ in $(seq "$n"); do [ -s "$f" ] && return 0; sleep 0.05; done
	return 1
}

# t_wait_port PORT [seconds]: wait until 127.0.0.1:PORT accepts.
t_wait_port() {
	local p=$1 n=$(( ${2:-10} * 20 ))
	for _ in $(seq "$n"); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# t_free_port: a TCP port on 127.0.0.1 nobody listens on right now.
t_free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

t_certs() {
	bash "$GEN_CERTS" "$T_DIR/certs" >/dev/null
	CERTS=$T_DIR/certs
}

# t_start_fake [fake_ses options...]: sets FAKE_PORT, FAKE_PID, MAILDIR.
# After t_stop_fake, it starts again on the same port.
t_start_fake() {
	[ -n "${CERTS:-}" ] || t_certs
	MAILDIR=$T_DIR/maildir
	mkdir -p "$MAILDIR"
	rm -f "$T_DIR/fake.port"
	"$FAKE_SES" --listen "127.0.0.1:${FAKE_PORT:-0}" --portfile "$T_DIR/fake.port" \
		--cert "$CERTS/ses.pem" --key "$CERTS/ses.key" \
		--user "$EXAMPLE_KEY_ID" --secret "$EXAMPLE_SECRET" \
		--region us-east-1 --maildir "$MAILDIR" "$@" \
		2>>"$T_DIR/fake.log" &
	FAKE_PID=$!
	T_PIDS+=("$FAKE_PID")
	t_wait_file "$T_DIR/fake.port" || t_fail "fake SES did not start: $(cat "$T_DIR/fake.log")"
	FAKE_PORT=$(cat "$T_DIR/fake.port")
}

# t_stop_fake: a real outage — the endpoint is gone, connections refused.
t_stop_fake() {
	kill "$FAKE_PID"
	wait "$FAKE_PID" 2>/dev/null || true
}

# t_config [extra lines...]: write $T_DIR/sesrelay.conf for a relay on
# RELAY_PORT to the fake, in mode $T_MODE (default passthrough; spool uses
# $T_DIR/spool); extra lines are appended (they may open new sections).
# Sets CONF, RELAY_PORT, SPOOL.
t_config() {
	RELAY_PORT=${RELAY_PORT:-$(t_free_port)}
	printf '%s\n' "$EXAMPLE_SECRET" >"$T_DIR/secret"
	chmod 600 "$T_DIR/secret"
	CONF=$T_DIR/sesrelay.conf
	SPOOL=$T_DIR/spool
	# the SES account is watched only against the fake API
	# (t_start_api); otherwise never: tests stay on loopback
	local api="account_poll = off"
	[ -z "${API_URL:-}" ] ||
		api="api_endpoint = $API_URL
account_poll = ${T_ACCOUNT_POLL:-5m}"
	cat >"$CONF" <<CONF
[relay]
listen = 127.0.0.1:$RELAY_PORT
mode = ${T_MODE:-passthrough}
spool_dir = $SPOOL
hostname = relay.test
timeout = 30s

[ses]
region = us-east-1
endpoint = 127.0.0.1:$FAKE_PORT
ca_file = $CERTS/ca.pem
access_key_id = $EXAMPLE_KEY_ID
secret_access_key_file = $T_DIR/secret
$api
CONF
	# tests run as root on CI: say so, as sesrelayd refuses root otherwise
	[ "$(id -u)" -ne 0 ] || sed -i 's/^\[relay\]$/[relay]\nuser = root/' "$CONF"
	local line
	for line in "$@"; do printf '%s\n' "$line" >>"$CONF"; done
}

# t_start_relay [sesrelayd options...]: start sesrelayd -f on CONF; sets
# RELAY_PID; its log is $T_DIR/relay.log.
t_start_relay() {
	"$SESRELAYD" -f -c "$CONF" "$@" 2>>"$T_DIR/relay.log" &
	RELAY_PID=$!
	T_PIDS+=("$RELAY_PID")
	t_wait_port "$RELAY_PORT" || t_fail "sesrelayd did not start: $(cat "$T_DIR/relay.log")"
}

# stop_relay PID LOG: SIGTERM; sesrelayd must exit 0 within 10 s, with no
# sanitizer report in its log (the tests also run under ASan/UBSan).
stop_relay() {
	local pid=$1 log=$2 rc=0
	kill -TERM "$pid" 2>/dev/null || t_fail "sesrelayd (pid $pid) died early: $(tail -20 "$log")"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || t_fail "sesrelayd did not exit within 10 s of SIGTERM"
	wait "$pid" || rc=$?
	[ $rc = 0 ] || t_fail "sesrelayd exited $rc after SIGTERM: $(tail -20 "$log")"
	! grep -qE 'Sanitizer|runtime error' "$log" ||
		t_fail "sanitizer report in $log: $(grep -A30 -E 'Sanitizer|runtime error' "$log" | head -40)"
}

# t_queue_left: messages still in the spool queue.
t_queue_left() {
	find "$SPOOL/queue" -type f ! -name '*.state' 2>/dev/null | wc -l
}

# t_wait_queue_empty [seconds]: 0 once the spool queue is empty.
t_wait_queue_empty() {
	local n=$(( ${1:-30} * 10 ))
	for _ in $(seq "$n"); do
		[ "$(t_queue_left)" -eq 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# t_messages: number of messages the fake SES has stored.
t_messages() {
	find "$MAILDIR" -name '*.env' | wc -l
}

# ---- the fake SES API v2 (tests/fake_ses_api.py) ----
# t_start_api [fake_ses_api.py options...]: HTTPS on 127.0.0.1 with the
# test CA's api.pem, SigV4 checked for the example key; sets API_PORT,
# API_PID, API_URL, API_STATE (JSON, re-read per request: t_api_state),
# API_LOG (one JSON line per request), API_OUT (SendEmail messages).
API_STATE=$T_DIR/api-state.json
API_LOG=$T_DIR/api-requests.log
API_OUT=$T_DIR/api-out
t_start_api() {
	[ -n "${CERTS:-}" ] || t_certs
	mkdir -p "$API_OUT"
	[ -f "$API_STATE" ] || echo '{}' >"$API_STATE"
	rm -f "$T_DIR/api.port"
	/usr/bin/python3 "$TESTS_DIR/fake_ses_api.py" \
		--listen "127.0.0.1:${API_PORT:-0}" --portfile "$T_DIR/api.port" \
		--cert "$CERTS/api.pem" --key "$CERTS/api.key" \
		--key-id "$EXAMPLE_KEY_ID" --secret "$EXAMPLE_SECRET" \
		--region us-east-1 --state "$API_STATE" --log "$API_LOG" \
		--outdir "$API_OUT" "$@" 2>>"$T_DIR/api.log" &
	API_PID=$!
	T_PIDS+=("$API_PID")
	t_wait_file "$T_DIR/api.port" || t_fail "fake SES API did not start: $(cat "$T_DIR/api.log")"
	API_PORT=$(cat "$T_DIR/api.port")
	API_URL=https://127.0.0.1:$API_PORT
}

# t_stop_api: the API endpoint goes away (connections refused).
t_stop_api() {
	kill "$API_PID" 2>/dev/null || true
	wait "$API_PID" 2>/dev/null || true
}

# t_api_state JSON: replace the fake API's state atomically.
t_api_state() {
	printf '%s\n' "$1" >"$API_STATE.tmp" && mv -f "$API_STATE.tmp" "$API_STATE"
}

# t_api_count OP [STATUS]: requests of operation OP (with STATUS) so far.
t_api_count() {
	/usr/bin/python3 - "$API_LOG" "$1" "${2:-}" <<'PY'
import json, sys
n = 0
try:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r["op"] == sys.argv[2] and (not sys.argv[3] or str(r["status"]) == sys.argv[3]):
            n += 1
except FileNotFoundError:
    pass
print(n)
PY
}
# tests/api_request (src/http_client.c driven from the command line)
API_REQUEST=${API_REQUEST:-$(dirname "${FAKE_SES:-tests/fake_ses}")/api_request}
