# tests/sendmail_lib.sh — shared by tests/sendmail_*.sh: a sesrelayd in
# passthrough mode listening on a unix socket and on TCP, the fake SES
# behind it, and sendmail.sesrelay ($SM) with a wrapper on PATH.
. "$TESTS_DIR/lib.sh"
SM=$(dirname "$SESRELAYD")/sendmail.sesrelay
[ -x "$SM" ] || t_fail "no $SM"
export SESRELAY_CLI=$SESRELAY

# sm_setup [fake_ses options...]
sm_setup() {
	t_start_fake --quiet "$@"
	SOCK=$T_DIR/relay.sock
	t_config
	sed -i "s|^listen = .*|& unix:$SOCK\nsendmail_domain = example.com|" "$CONF"
	t_start_relay
	for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
	[ -S "$SOCK" ] || t_fail "no unix socket $SOCK"
	# a "sendmail" on PATH, for callers that only know that name
	mkdir -p "$T_DIR/bin"
	printf '#!/bin/sh\nexec "%s" -C "%s" "$@"\n' "$SM" "$CONF" >"$T_DIR/bin/sendmail"
	chmod +x "$T_DIR/bin/sendmail"
}

# last_eml / last_env: the newest message the fake SES stored
last_eml() { find "$MAILDIR" -name '*.eml' | sort | tail -1; }
last_env() { find "$MAILDIR" -name '*.env' | sort | tail -1; }

# sm_wait N: wait (10 s) until the fake SES has N messages
sm_wait() {
	for _ in $(seq 200); do [ "$(t_messages)" -ge "$1" ] && return 0; sleep 0.05; done
	t_fail "expected $1 messages at the fake SES, have $(t_messages): $(tail -5 "$T_DIR/relay.log")"
}

# no_bare_lf FILE: every LF in FILE is preceded by CR
no_bare_lf() {
	/usr/bin/python3 - "$1" <<'PY' || t_fail "bare LF in $1"
import sys, re
d = open(sys.argv[1], 'rb').read()
sys.exit(1 if re.search(rb'(?<!\r)\n', d) else 0)
PY
}
