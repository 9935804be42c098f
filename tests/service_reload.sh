#!/bin/bash
# service_reload.sh — SIGHUP re-reads the configuration and credentials:
# after a key rotation, mail sent while the relay still had the old
# secret is deferred (SES says 535), then delivered with the new one once
# reloaded, nothing lost; a configuration that does not load, a secret
# file others can read, or a change of mode is refused with a logged
# reason naming the key, and the running configuration keeps relaying;
# the systemd credentials directory ($CREDENTIALS_DIRECTORY) is re-read
# too; listeners are moved, added and removed as `listen` says, and so
# is metrics_listen; hostname and max_message_size apply to new sessions;
# a change of user is logged as restart-only, of sasl_service refused, a
# certificate that does not load refused.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || { echo "SKIP: swaks not installed"; exit 77; }

NEW_SECRET='newSecretKey/K7MDENG/bPxRfiCYROTATED0001'
LOG=$T_DIR/relay.log

queued() {	# to: fails unless the relay queued it
	local out
	out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from app@example.com --to "$1" --header "Subject: reload $1" 2>&1) || true
	grep -q '^<-  250 2.0.0 Ok: queued as ' <<<"$out" ||
		t_fail "not queued: $(grep '^<-' <<<"$out" | tail -2)"
}

# wait_log REGEX [COUNT] [seconds]: until COUNT lines of the log match
wait_log() {
	local n=${2:-1} t=$(( ${3:-10} * 10 ))
	for _ in $(seq "$t"); do
		[ "$(grep -cE "$1" "$LOG" || true)" -ge "$n" ] && return 0
		sleep 0.1
	done
	t_fail "no log line matching '$1' (x$n): $(tail -5 "$LOG")"
}

reload() {	# SIGHUP, then wait for the outcome: ok | refused
	local want=$1 n
	n=$(grep -cE 'configuration reloaded|reload refused' "$LOG" || true)
	kill -HUP "$RELAY_PID"
	wait_log 'configuration reloaded|reload refused' $((n + 1))
	tail -n +1 "$LOG" | grep -E 'configuration reloaded|reload refused' | tail -1 >"$T_DIR/last"
	if [ "$want" = ok ]; then
		grep -q 'configuration reloaded' "$T_DIR/last" || t_fail "reload refused: $(cat "$T_DIR/last")"
	else
		grep -q 'reload refused' "$T_DIR/last" || t_fail "reload was not refused"
	fi
}

t_start_fake --quiet --idle-timeout 2
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay
queued before@example.net
t_wait_queue_empty 10 || t_fail "first message not delivered"
[ "$(t_messages)" -eq 1 ] || t_fail "expected 1 message at SES"

# --- key rotation: SES now wants the new secret; the relay has the old
t_stop_fake
t_start_fake --quiet --idle-timeout 2 --secret "$NEW_SECRET"
queued during1@example.net
queued during2@example.net
wait_log 'delivery id=.* status=deferred reply="451 4.7.0 SES refused the relay.s credentials: 535 ' 2
[ "$(t_queue_left)" -eq 2 ] || t_fail "mail sent with the old secret not kept in the queue ($(t_queue_left))"
t_ok "old secret: SES refuses AUTH, the mail is deferred and kept"

printf '%s\n' "$NEW_SECRET" >"$T_DIR/secret"
reload ok
t_wait_queue_empty 15 || t_fail "deferred mail not delivered after the reload: $(tail -3 "$LOG")"
queued after@example.net
t_wait_queue_empty 10 || t_fail "mail after the reload not delivered"
for r in before during1 during2 after; do
	grep -q "^rcpt=$r@example.net" "$MAILDIR"/*.env || t_fail "$r@example.net never reached SES"
done
[ "$(t_messages)" -eq 4 ] || t_fail "expected 4 messages at SES, got $(t_messages)"
t_ok "SIGHUP: new secret used, the deferred mail delivered, nothing lost"

# --- a broken configuration: refused, named, the old one keeps relaying
cp "$CONF" "$CONF.good"
sed -i 's/^timeout = 30s$/timeout = soon/' "$CONF"
reload refused
grep -qE "reload refused, keeping the running configuration: $CONF:[0-9]+: \[relay\] timeout: " "$T_DIR/last" ||
	t_fail "the refusal does not name the file, line and key: $(cat "$T_DIR/last")"
queued broken@example.net
t_wait_queue_empty 10 || t_fail "not relaying after a refused reload"
t_ok "a bad value: reload refused with file, line and key; still relaying"

# a secret file others may read: refused, the running credentials stay
cp "$CONF.good" "$CONF"
chmod 644 "$T_DIR/secret"
reload refused
grep -q "secret_access_key_file: $T_DIR/secret is readable by others" "$T_DIR/last" ||
	t_fail "the refusal does not name the secret file: $(cat "$T_DIR/last")"
chmod 600 "$T_DIR/secret"
# a wrong secret would only show at AUTH; a missing one is refused
mv "$T_DIR/secret" "$T_DIR/secret.moved"
reload refused
grep -q "cannot read $T_DIR/secret" "$T_DIR/last" || t_fail "missing secret file not named: $(cat "$T_DIR/last")"
mv "$T_DIR/secret.moved" "$T_DIR/secret"
queued secretfile@example.net
t_wait_queue_empty 10 || t_fail "not relaying after refused credential reloads"
t_ok "an unreadable or exposed secret file: refused, named, still relaying with the running credentials"

# a change of mode needs a restart: refused
sed -i 's/^mode = spool$/mode = passthrough/' "$CONF"
reload refused
grep -q '\[relay\] mode: changing the mode needs a restart' "$T_DIR/last" || t_fail "mode change: $(cat "$T_DIR/last")"
queued mode@example.net
t_wait_queue_empty 10 || t_fail "not relaying after the refused mode change"
cp "$CONF.good" "$CONF"
reload ok
t_ok "a change of mode: refused until restart; still spooling"

# --- listeners follow the configuration: one moved, one added, one that
# cannot be bound is logged and skipped
greets() {	# greets ADDR: 0 if an SMTP server greets there (unix:PATH or PORT)
	$PY - "$1" <<'PY'
import socket, sys
a = sys.argv[1]
if a.startswith("unix:"):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(a[5:])
else:
    s = socket.create_connection(("127.0.0.1", int(a)), 5)
sys.exit(0 if s.recv(100).startswith(b"220 ") else 1)
PY
}
PY=/usr/bin/python3
OLD_PORT=$RELAY_PORT
NEW_PORT=$(t_free_port)
sed -i "s|^listen = .*|listen = 127.0.0.1:$NEW_PORT unix:$T_DIR/relay.sock|" "$CONF"
reload ok
greets "$NEW_PORT" || t_fail "reload: not listening on the new port $NEW_PORT"
greets "unix:$T_DIR/relay.sock" || t_fail "reload: not listening on the new unix socket"
! greets "$OLD_PORT" 2>/dev/null || t_fail "reload: still listening on the old port $OLD_PORT"
RELAY_PORT=$NEW_PORT queued moved@example.net
t_wait_queue_empty 10 || t_fail "mail through the new listener not delivered"
sed -i "s|^listen = .*|listen = 127.0.0.1:$NEW_PORT 127.0.0.1:$FAKE_PORT|" "$CONF"
reload ok
grep -q "reload: listen 127.0.0.1:$FAKE_PORT: bind: Address already in use; not listening there" "$LOG" ||
	t_fail "a listen address in use is not logged: $(tail -3 "$LOG")"
[ ! -e "$T_DIR/relay.sock" ] || t_fail "the unix socket left behind after its listener was removed"
greets "$NEW_PORT" || t_fail "the listener kept across the reload stopped"
sed -i "s|^listen = .*|listen = 127.0.0.1:$OLD_PORT|" "$CONF"
reload ok
greets "$OLD_PORT" || t_fail "reload: not listening on $OLD_PORT again"
t_ok "SIGHUP moves, adds and removes listeners; an address in use is logged and skipped"

# --- metrics_listen follows the configuration too: started, moved, an
# address that cannot be bound is logged and the old one kept, removed
http_ok() {	# http_ok PORT: 0 if /metrics answers there
	curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" -o "$T_DIR/metrics.out"
}
M1=$(t_free_port)
M2=$(t_free_port)
sed -i "s/^\[relay\]\$/[relay]\nmetrics_listen = 127.0.0.1:$M1/" "$CONF"
reload ok
http_ok "$M1" || t_fail "reload: metrics not served on the new metrics_listen $M1"
grep -q '^sesrelay_build_info{' "$T_DIR/metrics.out" || t_fail "no build info on /metrics"
start=$(awk '$1 == "sesrelay_start_time_seconds" { print $2 }' "$T_DIR/metrics.out")
[ $(( $(date +%s) - start )) -ge 3 ] || t_fail "metrics started on reload claim the daemon started at the reload"
sed -i "s/^metrics_listen = .*/metrics_listen = 127.0.0.1:$M2/" "$CONF"
reload ok
http_ok "$M2" || t_fail "reload: metrics not moved to $M2"
! http_ok "$M1" || t_fail "reload: metrics still served on the old address $M1"
sed -i "s/^metrics_listen = .*/metrics_listen = 127.0.0.1:$FAKE_PORT/" "$CONF"
reload ok
grep -q "reload: \[relay\] metrics_listen: cannot listen on 127.0.0.1:$FAKE_PORT: Address already in use; still serving metrics on 127.0.0.1:$M2" "$LOG" ||
	t_fail "a metrics address in use is not logged: $(tail -3 "$LOG")"
http_ok "$M2" || t_fail "the old metrics address stopped although the new one could not be bound"
sed -i "/^metrics_listen = /d" "$CONF"
reload ok
! http_ok "$M2" || t_fail "metrics_listen removed, but metrics still served on $M2"
t_ok "SIGHUP starts, moves and stops metrics_listen; an address in use is logged, the old one kept"

# --- the other [relay] keys apply to new sessions: hostname, sizes
ehlo() {	# ehlo: the greeting and EHLO reply of the relay, one line each
	$PY - "$RELAY_PORT" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
print(s.ehlo("t")[1].decode().replace("\n", " | "))
print(s.docmd("NOOP")[0]); s.quit()
PY
}
sed -i -e 's/^hostname = relay.test$/hostname = renamed.test/' \
	-e 's/^\[relay\]$/[relay]\nmax_message_size = 1M/' "$CONF"
reload ok
out=$(ehlo)
grep -q '^renamed.test ' <<<"$out" || t_fail "hostname not reloaded: $out"
grep -q 'SIZE 1048576' <<<"$out" || t_fail "max_message_size not reloaded: $out"
t_ok "hostname and max_message_size apply to new sessions after SIGHUP"

# --- what needs a restart: user is logged, sasl_service and an unloadable
# certificate refuse the reload, naming the key
cur_user=$(sed -n 's/^user = //p' "$CONF")
if [ -n "$cur_user" ]; then
	sed -i "s/^user = .*/user = nobody/" "$CONF"
else
	sed -i 's/^\[relay\]$/[relay]\nuser = nobody/' "$CONF"
fi
reload ok
grep -q "reload: \[relay\] user changed from ${cur_user:-(unset)} to nobody: it applies only at the next start (still running as uid $(id -u))" "$LOG" ||
	t_fail "a change of user is not logged: $(tail -3 "$LOG")"
sed -i 's/^\[relay\]$/[relay]\nauth = optional/' "$CONF"
reload ok
sed -i 's/^\[relay\]$/[relay]\nsasl_service = other/' "$CONF"
reload refused
grep -q '\[relay\] sasl_service: changing the SASL service (now sesrelay) needs a restart' "$T_DIR/last" ||
	t_fail "sasl_service change: $(cat "$T_DIR/last")"
sed -i '/^sasl_service = /d' "$CONF"
echo 'not a certificate' >"$T_DIR/bad.pem"
sed -i "s|^\[relay\]\$|[relay]\ntls_cert = $T_DIR/bad.pem\ntls_key = $T_DIR/bad.pem|" "$CONF"
reload refused
grep -q '\[relay\] tls_cert, tls_key: ' "$T_DIR/last" || t_fail "a missing certificate: $(cat "$T_DIR/last")"
queued restartonly@example.net
t_wait_queue_empty 10 || t_fail "not relaying after the refused reloads"
cp "$CONF.good" "$CONF"
reload ok
t_ok "user: logged as restart-only; sasl_service and a certificate that does not load: refused, named"

! grep -qE 'Sanitizer|runtime error' "$LOG" || t_fail "sanitizer report in the log"
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || t_fail "sesrelayd exited non-zero"

# --- credentials from $CREDENTIALS_DIRECTORY (systemd LoadCredential=)
mkdir -m 700 "$T_DIR/creds"
printf '%s\n' "$NEW_SECRET" >"$T_DIR/creds/secret_access_key"
chmod 400 "$T_DIR/creds/secret_access_key"
sed -i '/^secret_access_key_file = /d' "$CONF"
out=$(CREDENTIALS_DIRECTORY=$T_DIR/creds "$SESRELAYD" -n -c "$CONF") || t_fail "-n with CREDENTIALS_DIRECTORY: $out"
grep -q "credentials: secret_access_key_file $T_DIR/creds/secret_access_key (CREDENTIALS_DIRECTORY)" <<<"$out" ||
	t_fail "the credential source is not the credentials directory: $out"
CREDENTIALS_DIRECTORY=$T_DIR/creds t_start_relay
queued creds1@example.net
t_wait_queue_empty 10 || t_fail "not relaying with the credentials directory: $(tail -3 "$LOG")"
t_stop_fake
t_start_fake --quiet --idle-timeout 2		# back to the example secret
chmod 600 "$T_DIR/creds/secret_access_key"
printf '%s\n' "$EXAMPLE_SECRET" >"$T_DIR/creds/secret_access_key"
reload ok
grep -q "(credentials: secret_access_key_file $T_DIR/creds/secret_access_key (CREDENTIALS_DIRECTORY))" "$T_DIR/last" ||
	t_fail "reload did not use the credentials directory: $(cat "$T_DIR/last")"
queued creds2@example.net
t_wait_queue_empty 10 || t_fail "not relaying after the credential was rotated"
t_ok "CREDENTIALS_DIRECTORY/secret_access_key: used at start and re-read on SIGHUP"
