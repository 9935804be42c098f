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
