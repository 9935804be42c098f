#!/bin/bash
# man_lint.sh — the manual pages pass `mandoc -T lint -W style` without
# a single message (but for references to pages not installed), and each
# names the programs, files and keys it should.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
command -v mandoc >/dev/null || { echo "SKIP: mandoc not installed"; exit 77; }
MAN=$TESTS_DIR/../man

pages=("$MAN/sesrelayd.8" "$MAN/sesrelay.8" "$MAN/sesrelay.conf.5" "$MAN/sendmail.sesrelay.8")
for p in "${pages[@]}"; do
	[ -f "$p" ] || t_fail "missing $p"
	out=$(mandoc -T lint -W warning "$p" 2>&1) || t_fail "mandoc -T lint: $out"
	[ -z "$out" ] || t_fail "mandoc -T lint -W warning: $out"
	# style too, but for cross references to pages this machine lacks
	# (ours are not installed; mandoc.db may be stale)
	out=$(mandoc -T lint -W style "$p" 2>&1 |
		grep -v 'referenced manual not found\|mandoc.db' || true)
	[ -z "$out" ] || t_fail "mandoc -T lint -W style: $out"
done
t_ok "mandoc -T lint -W style: no message for ${#pages[@]} pages"

# what sesrelayd(8) must explain
for w in NOTIFY_SOCKET LISTEN_FDS LISTEN_PID CREDENTIALS_DIRECTORY /metrics /healthz \
	metrics_listen log_format SIGHUP sesrelay.service sesrelay.socket; do
	grep -qF -- "$w" "$MAN/sesrelayd.8" || t_fail "sesrelayd.8 does not mention $w"
done
grep -qF CREDENTIALS_DIRECTORY "$MAN/sesrelay.conf.5" || t_fail "sesrelay.conf.5 lacks CREDENTIALS_DIRECTORY"
# every metric the daemon serves is listed in sesrelayd(8)
for m in $(sed -n 's/.*"\(sesrelay_[a-z_]*\)".*/\1/p' "$TESTS_DIR/../src/metrics.c" | sort -u); do
	grep -qF -- "$m" "$MAN/sesrelayd.8" || t_fail "sesrelayd.8 does not list the metric $m"
done
# the rendered pages have no leftover macros
for p in "${pages[@]}"; do
	! mandoc -T ascii "$p" | grep -E '^\.[A-Z][a-z]' >/dev/null || t_fail "$p renders a raw macro"
done
t_ok "sesrelayd.8 covers systemd, socket activation, credentials, metrics and logging"
