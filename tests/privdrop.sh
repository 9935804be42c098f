#!/bin/bash
# Least privilege: started as root with user = nobody, sesrelayd binds,
# reads its keys, then runs as nobody (checked in /proc) and still relays;
# started as root without user, it refuses to run.
set -euo pipefail
[ "$(id -u)" -eq 0 ] || exit 77
getent passwd nobody >/dev/null || exit 77
. "$TESTS_DIR/lib.sh"

t_start_fake --quiet
t_config
sed -i '/^user = root$/d' "$CONF"
out=$("$SESRELAYD" -f -c "$CONF" 2>&1) && t_fail "started as root without [relay] user"
grep -q 'user: refusing to run as root' <<<"$out" || t_fail "no clear refusal: $out"
t_ok "as root without [relay] user: refused ($out)"

sed -i 's/^\[relay\]$/[relay]\nuser = nobody/' "$CONF"
t_start_relay
uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$RELAY_PID/status")
gid=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$RELAY_PID/status")
groups=$(awk '/^Groups:/ {$1=""; print}' "/proc/$RELAY_PID/status" | xargs)
nobody=$(id -u nobody) nogroup=$(id -g nobody)
[ "$uid" = "$nobody $nobody $nobody $nobody" ] || t_fail "uids are '$uid', not all $nobody"
[ "$gid" = "$nogroup $nogroup $nogroup $nogroup" ] || t_fail "gids are '$gid', not all $nogroup"
[ "$groups" = "$nogroup" ] || t_fail "supplementary groups '$groups'"
cap=$(awk '/^CapEff:/ {print $2}' "/proc/$RELAY_PID/status")
[ "$cap" = 0000000000000000 ] || t_fail "effective capabilities left: $cap"
out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 --from a@example.com \
	--to b@example.net 2>&1 || true)
grep -q '^<-  250 2.0.0 Ok 0100' <<<"$out" || t_fail "does not relay as nobody: $out"
t_ok "runs as nobody (uid/gid $nobody/$nogroup, no capabilities) and relays"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"

# Spool mode as nobody: the spool belongs to nobody, and root (the admin)
# lists and flushes it without taking it over.
chmod 711 "$T_DIR"	# nobody reaches its spool in there, nothing else
T_MODE=spool t_config
sed -i 's/^\[relay\]$/[relay]\nuser = nobody/' "$CONF"
sed -i '/^user = root$/d' "$CONF"
rm -rf "$SPOOL"
out=$("$SESRELAY" queue -c "$CONF" 2>&1) && t_fail "sesrelay queue listed a spool that does not exist: $out"
grep -q 'has not run in spool mode' <<<"$out" || t_fail "sesrelay queue before the first start: $out"
[ ! -e "$SPOOL" ] || t_fail "sesrelay queue created $SPOOL"
t_stop_fake
t_start_relay
out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 --from a@example.com \
	--to b@example.net 2>&1 || true)
grep -q '^<-  250 .*queued as' <<<"$out" || t_fail "spool mode as nobody: not queued: $out"
[ "$(stat -c %U "$SPOOL/queue")" = nobody ] || t_fail "the spool is owned by $(stat -c %U "$SPOOL/queue")"
out=$("$SESRELAY" queue -c "$CONF" 2>&1) || t_fail "sesrelay queue as root on nobody's spool: $out"
grep -q '^1 message in' <<<"$out" || t_fail "sesrelay queue does not list the deferred message: $out"
[ "$(stat -c %U "$SPOOL/queue")" = nobody ] || t_fail "sesrelay queue changed the owner of the spool"
t_start_fake --quiet
out=$("$SESRELAY" flush -c "$CONF" 2>&1) || t_fail "sesrelay flush as root: $out"
t_wait_queue_empty 20 || t_fail "not delivered after sesrelay flush"
t_ok "spool as nobody: root lists it with sesrelay queue and flushes it"

# flush signals only a sesrelayd: not whatever a stale pid file names
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
sleep 300 &
SLEEP=$!
T_PIDS+=("$SLEEP")
echo "$SLEEP" >"$SPOOL/sesrelayd.pid"
out=$("$SESRELAY" flush -c "$CONF" 2>&1) && t_fail "sesrelay flush signalled pid $SLEEP (sleep): $out"
kill -0 "$SLEEP" 2>/dev/null || t_fail "sesrelay flush killed an unrelated process"
grep -q 'not sesrelayd' <<<"$out" || t_fail "sesrelay flush with a stale pid file: $out"
t_ok "sesrelay flush refuses a pid file that names another program"
