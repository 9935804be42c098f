#!/bin/bash
# stream_memory.sh — 20 concurrent 10 MB messages, in both modes: all
# accepted and at SES byte-exact, and the relay's peak PSS (sampled from
# /proc/PID/smaps_rollup every 20 ms) stays under a generous bound.  The
# figures are printed; bench/run large reports them beside Postfix's.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
SC=$TESTS_DIR/stream_client.py
# kB: the target is 20 MB; sanitizer builds carry shadow memory and a
# quarantine of freed blocks (kept small here)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16"
if ldd "$SESRELAYD" 2>/dev/null | grep libasan >/dev/null; then
	PSS_MAX=400000
else
	PSS_MAX=40000
fi

t_start_fake --quiet
for mode in spool passthrough; do
	rm -f "$MAILDIR"/*
	RELAY_PORT=$(t_free_port)
	T_MODE=$mode t_config
	t_start_relay
	"$PY" - "$RELAY_PID" >"$T_DIR/pss" <<'PY' &
import sys, time
pid, peak = sys.argv[1], 0
try:
    while True:
        for l in open("/proc/%s/smaps_rollup" % pid):
            if l.startswith("Pss:"):
                peak = max(peak, int(l.split()[1]))
        sys.stdout.write("%d\n" % peak); sys.stdout.flush()
        time.sleep(0.02)
except (OSError, KeyboardInterrupt):
    pass
PY
	SAMPLER=$!
	T_PIDS+=("$SAMPLER")
	t0=$(date +%s.%N)
	"$PY" "$SC" "$RELAY_PORT" 10M --conns 20 >"$T_DIR/out"
	for _ in $(seq 600); do [ "$(t_messages)" -ge 20 ] && break; sleep 0.1; done
	t1=$(date +%s.%N)
	kill "$SAMPLER"; wait "$SAMPLER" 2>/dev/null || true
	peak=$(tail -1 "$T_DIR/pss")
	n250=$(grep -c '| 250 ' "$T_DIR/out" || true)
	[ "$n250" = 20 ] || t_fail "$mode: $n250 of 20 accepted: $(grep -v '| 250 ' "$T_DIR/out" | head -3)"
	[ "$(t_messages)" = 20 ] || t_fail "$mode: $(t_messages) of 20 at SES"
	sort <(sed 's/.*sha256=//' "$T_DIR/out") >"$T_DIR/sent"
	"$PY" - "$MAILDIR" <<'PY' | sort >"$T_DIR/got"
import glob, hashlib, sys
for p in glob.glob(sys.argv[1] + "/*.eml"):
    d = open(p, "rb").read()
    print(hashlib.sha256(d[d.index(b"\r\n\r\n") + 4:]).hexdigest())
PY
	cmp -s "$T_DIR/sent" "$T_DIR/got" || t_fail "$mode: bodies differ at SES"
	echo "# $mode: 20 x 10 MB in $(echo "$t1 - $t0" | bc) s, relay peak PSS $peak kB"
	[ "$peak" -le "$PSS_MAX" ] || t_fail "$mode: peak PSS $peak kB over the bound of $PSS_MAX kB"
	t_ok "$mode: 20 concurrent 10 MB messages byte-exact at SES, peak PSS $peak kB (bound $PSS_MAX kB)"
	stop_relay "$RELAY_PID" "$T_DIR/relay.log"
done
