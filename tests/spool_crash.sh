#!/bin/bash
# Spool mode survives kill -9: clients send continuously while the daemon
# is killed at random moments and restarted; every message that got a 250
# must reach the (fake) SES at least once.  Prints the duplicate count.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || exit 77

t_start_fake --quiet
T_MODE=spool t_config "" "[queue]" "retry_min = 1s" "retry_max = 2s"
t_start_relay

ACK=$T_DIR/acked
: >"$ACK"
/usr/bin/python3 "$TESTS_DIR/spool_load.py" "$RELAY_PORT" "$ACK" \
	--count 4000 --workers 6 --seconds 40 >"$T_DIR/load.out" 2>&1 &
LOAD=$!
T_PIDS+=("$LOAD")

kills=0
for _ in 1 2 3 4 5 6; do
	sleep "0.$((RANDOM % 9 + 1))"
	kill -0 "$LOAD" 2>/dev/null || break
	kill -9 "$RELAY_PID"
	wait "$RELAY_PID" 2>/dev/null || true
	kills=$((kills + 1))
	t_start_relay
done
wait "$LOAD" || true
cat "$T_DIR/load.out"
acked=$(sort -un "$ACK" | wc -l)
[ "$acked" -ge 50 ] || t_fail "only $acked messages acknowledged: the load did not run"

# everything acknowledged must arrive: wait for the queue to drain
t_wait_queue_empty 30 || t_fail "$(t_queue_left) messages still queued after 30 s: $(tail -5 "$T_DIR/relay.log")"

grep -h '^X-Test-Seq: ' "$MAILDIR"/*.eml | tr -d '\r' | awk '{print $2}' | sort -n >"$T_DIR/arrived"
missing=$(comm -23 <(sort -u "$ACK") <(sort -u "$T_DIR/arrived") | wc -l)
dups=$(uniq -d "$T_DIR/arrived" | wc -l)
total=$(wc -l <"$T_DIR/arrived")
echo "kill -9 x$kills: acknowledged=$acked arrived=$total lost=$missing duplicates=$dups"
[ "$missing" -eq 0 ] || t_fail "$missing acknowledged messages were lost: $(comm -23 <(sort -u "$ACK") <(sort -u "$T_DIR/arrived") | head)"
t_ok "no acknowledged message lost across $kills kill -9 ($dups duplicates)"
