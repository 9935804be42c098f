#!/bin/bash
# service_units.sh — the systemd units are valid (`systemd-analyze verify`)
# and the service's hardening keeps its exposure score (`systemd-analyze
# security`) at or below 2.0, "OK"; the README states the score.
# Skipped without systemd-analyze.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
SRC=$TESTS_DIR/..
MAX_EXPOSURE=2.0

# The unit as `make install` writes it, ExecStart pointing at this build
# (verify checks that the program exists).
mkdir -p "$T_DIR/units"
sed -e "s|@sbindir@/sesrelayd|$SESRELAYD|" -e 's|@sysconfdir@|/etc|' \
	"$SRC/systemd/sesrelay.service.in" >"$T_DIR/units/sesrelay.service"
cp "$SRC/systemd/sesrelay.socket" "$T_DIR/units/"
! grep -n '@[a-z]*@' "$T_DIR/units/sesrelay.service" || t_fail "unsubstituted @var@ in the unit"

# --man=no: the man pages are not installed here
out=$(cd "$T_DIR/units" && systemd-analyze verify --man=no ./sesrelay.service ./sesrelay.socket 2>&1) ||
	t_fail "systemd-analyze verify: $out"
[ -z "$out" ] || t_fail "systemd-analyze verify complains: $out"
t_ok "systemd-analyze verify: sesrelay.service and sesrelay.socket are clean"

# What the daemon relies on is in the unit
u=$T_DIR/units/sesrelay.service
for line in 'Type=notify' "ExecStart=$SESRELAYD -f" 'ExecReload=/bin/kill -HUP $MAINPID' \
	'LoadCredential=secret_access_key:/etc/sesrelay/secret' 'StateDirectory=sesrelay' \
	'Environment=SESRELAY_RELAY_SPOOL_DIR=/var/lib/sesrelay' 'ProtectSystem=strict' \
	'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' \
	'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service' \
	'MemoryDenyWriteExecute=yes' 'NoNewPrivileges=yes' 'LimitCORE=0'; do
	grep -qxF "$line" "$u" || t_fail "sesrelay.service lacks $line"
done
t_ok "the unit has Type=notify, ExecReload, the credential, the state directory and the hardening"

# Exposure score
sec=$(cd "$T_DIR/units" && systemd-analyze security --offline=true ./sesrelay.service 2>&1) ||
	t_fail "systemd-analyze security failed: $(tail -3 <<<"$sec")"
score=$(sed -n 's/.*Overall exposure level for sesrelay.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[ -n "$score" ] || t_fail "no exposure score in: $(tail -3 <<<"$sec")"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
	t_fail "exposure $score is above $MAX_EXPOSURE: $(grep '✗' <<<"$sec")"
grep -q "exposure.* $score " "$SRC/README" ||
	t_fail "README does not state the exposure score $score"
t_ok "systemd-analyze security: exposure $score (at most $MAX_EXPOSURE), as the README says"
