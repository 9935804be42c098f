#!/bin/bash
# relay_config_cli.sh — the command lines and the configuration as a user
# meets them: `sesrelayd -n` on good and broken files (exit 2, one line
# naming the key or file), -V, bad flags, `sesrelay passwd` against the
# SPEC's vectors and AWS_REGION, temporary credentials refused, and the
# secret and derived password kept out of argv and the log.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C

unset AWS_REGION AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID \
	AWS_SECRET_ACCESS_KEY AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE
# no ~/.aws/credentials of whoever runs the tests
export HOME=$T_DIR/home
mkdir -p "$HOME"
while read -r v; do unset "$v"; done < <(env | sed -n 's/^\(SESRELAY_[A-Z_]*\)=.*/\1/p')

PW_USE1=BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9
PW_USW2=BF2PynzbSCAjX08zhZZnP/kW+T9P5zs/1Er0pi5vTEmd
PW_EUW1=BMW5RDrXmmVs0lV7GpI4oLkHXpZ4stDsk6q91z1g38Pk

t_start_fake
t_config
GOOD=$CONF
C=$T_DIR/conf
mkdir -p "$C"

# ---- sesrelayd -n, -V, bad flags ----
rc=0
"$SESRELAYD" -n -c "$GOOD" >"$C/good.out" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "sesrelayd -n on a good config exited $rc: $(cat "$C/good.out")"
! grep -qF "$EXAMPLE_SECRET" "$C/good.out" || t_fail "sesrelayd -n prints the secret"
t_ok "sesrelayd -n -c good.conf exits 0"

rc=0
out=$("$SESRELAYD" -V 2>&1) || rc=$?
[ $rc = 0 ] && printf '%s\n' "$out" | grep -q '^sesrelayd [0-9]' ||
	t_fail "sesrelayd -V: exit $rc, output '$out'"
for lib in OpenSSL libevent libcurl jansson libsasl2; do
	grep -qE "^$lib [0-9]" <<<"$out" || t_fail "sesrelayd -V does not name the $lib version: $out"
done
rc=0
"$SESRELAYD" -x >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || t_fail "sesrelayd -x exited $rc, expected 2"
rc=0
"$SESRELAYD" -n -c "$GOOD" extra >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || t_fail "sesrelayd with a stray argument exited $rc, expected 2"
t_ok "sesrelayd -V exits 0; -x and stray arguments exit 2"

# broken NAME WORD: $C/NAME.conf must make `sesrelayd -n` exit 2 with
# exactly one short line on stderr containing WORD (the key, or the file).
broken() {
	local name=$1 word=$2 f=$C/$1.conf rc=0
	timeout 20 "$SESRELAYD" -n -c "$f" >"$C/$name.stdout" 2>"$C/$name.stderr" || rc=$?
	[ $rc = 2 ] || t_fail "$name: sesrelayd -n exited $rc, expected 2; stderr: $(head -c 500 "$C/$name.stderr")"
	local lines
	lines=$(wc -l <"$C/$name.stderr")
	[ "$lines" = 1 ] && [ "$(tail -c 1 "$C/$name.stderr" | od -An -c | tr -d ' ')" = '\n' ] ||
		t_fail "$name: expected exactly one line on stderr, got $lines: $(head -c 500 "$C/$name.stderr")"
	[ "$(wc -c <"$C/$name.stderr")" -lt 1024 ] ||
		t_fail "$name: the error line is $(wc -c <"$C/$name.stderr") bytes long"
	grep -qF -- "$word" "$C/$name.stderr" ||
		t_fail "$name: the error does not name '$word': $(cat "$C/$name.stderr")"
	t_ok "$name: exit 2, one line: $(cat "$C/$name.stderr")"
}
# relay_line NAME LINE: the good config with LINE added to [relay]
relay_line() { sed "/^\\[ses\\]/i $2" "$GOOD" >"$C/$1.conf"; }

printf 'garbage\x00\xff\xfe\x01\x80 = \x9b\n[\xc3\n' >"$C/garbage.conf"
broken garbage "$C/garbage.conf"
printf '\xff\xfe\x80\x9b junk \xc3\x28\n\xe2\x82\n' >"$C/garbage8bit.conf"
broken garbage8bit "$C/garbage8bit.conf"

"$PY" -c 'import sys; sys.stdout.write(open(sys.argv[1]).read() + "configuration_set = " + "a" * (10 << 20) + "\n")' \
	"$GOOD" >"$C/longline.conf"
broken longline "$C/longline.conf"

sed 's/^\[ses\]$/[ses/' "$GOOD" >"$C/bracket.conf"
broken bracket "$C/bracket.conf"

relay_line dupkey 'mode = passthrough'
broken dupkey mode

sed 's/^mode = .*/mode =/' "$GOOD" >"$C/emptymode.conf"
broken emptymode mode

relay_line unknownkey 'colour = blue'
broken unknownkey colour

{ cat "$GOOD"; printf '\n[relya]\nhostname = x\n'; } >"$C/unknownsection.conf"
broken unknownsection relya

sed 's/^timeout = .*/timeout = 5 fortnights/' "$GOOD" >"$C/duration.conf"
broken duration timeout

relay_line size 'max_message_size = 10Q'
broken size max_message_size

# TLS files that do not load: a bad configuration for -n as for a start
printf 'not a certificate\n' >"$C/junk.pem"
chmod 600 "$C/junk.pem"
relay_line badcert "tls_cert = $C/junk.pem\ntls_key = $C/junk.pem"
broken badcert 'tls_cert, tls_key'
sed "s|^ca_file = .*|ca_file = $C/junk.pem|" "$GOOD" >"$C/badca.conf"
broken badca 'ca_file: '
! grep -q duplicate "$C/badca.stderr" || t_fail "badca: $(cat "$C/badca.stderr")"
# ... and for a start, which loads the trust store once, for the pool
rc=0
timeout 20 "$SESRELAYD" -f -c "$C/badca.conf" >/dev/null 2>"$C/badca.start" || rc=$?
[ $rc = 2 ] && grep -q '\[ses\] ca_file: ' "$C/badca.start" ||
	t_fail "badca: a start exited $rc, expected 2 naming ca_file: $(cat "$C/badca.start")"

broken missing "$C/missing.conf"

# ---- sesrelay passwd ----
# passwd WANT [env...] -- [args...]: the secret on stdin gives WANT.
passwd() {
	local want=$1 secret=$2
	shift 2
	local envs=() rc=0 out
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	out=$(printf '%s\n' "$secret" | env "${envs[@]}" "$SESRELAY" passwd "$@" 2>"$C/passwd.err") || rc=$?
	[ $rc = 0 ] && [ "$out" = "$want" ] ||
		t_fail "sesrelay passwd $* (env ${envs[*]}): exit $rc, printed '$out', expected '$want'; stderr: $(cat "$C/passwd.err")"
}
passwd "$PW_USE1" "$EXAMPLE_SECRET" -- --region us-east-1
passwd "$PW_USW2" "$EXAMPLE_SECRET" -- --region us-west-2
passwd "$PW_EUW1" "$EXAMPLE_SECRET" -- --region eu-west-1
passwd "$PW_EUW1" "$EXAMPLE_SECRET" -- --region=eu-west-1
passwd "$PW_USE1" "$EXAMPLE_SECRET" --
passwd "$PW_USW2" "$EXAMPLE_SECRET" AWS_REGION=us-west-2 --
passwd "$PW_EUW1" "$EXAMPLE_SECRET" AWS_REGION=eu-west-1 --
passwd "$PW_USW2" "$EXAMPLE_SECRET" AWS_REGION=eu-west-1 -- --region us-west-2
passwd BMXhUYlu5Z3gSXVQORxlVa7XPaz91aGWdfHxvkOZdWZ2 'some+secret+key' -- --region eu-central-1
t_ok "sesrelay passwd: SPEC and Terraform vectors, --region, AWS_REGION, default us-east-1"

rc=0
"$SESRELAY" passwd --region us-east-1 </dev/null >"$C/empty.out" 2>&1 || rc=$?
[ $rc = 2 ] || t_fail "sesrelay passwd with empty stdin exited $rc, expected 2: $(cat "$C/empty.out")"
rc=0
printf '\n' | "$SESRELAY" passwd >"$C/blank.out" 2>&1 || rc=$?
[ $rc = 2 ] || t_fail "sesrelay passwd with a blank line exited $rc, expected 2: $(cat "$C/blank.out")"
rc=0
"$SESRELAY" passwd "$EXAMPLE_SECRET" </dev/null >"$C/argv.out" 2>&1 || rc=$?
[ $rc = 2 ] && ! grep -qF "$PW_USE1" "$C/argv.out" ||
	t_fail "sesrelay passwd took the secret from argv (exit $rc): $(cat "$C/argv.out")"
t_ok "sesrelay passwd: empty stdin exits 2; never takes the secret from argv"
for bad in "  $EXAMPLE_SECRET" "wJalrXUtnFEMI K7MDENG"; do
	rc=0
	printf '%s\n' "$bad" | "$SESRELAY" passwd >"$C/spaced.out" 2>&1 || rc=$?
	[ $rc = 2 ] && grep -q 'secret access key alone' "$C/spaced.out" ||
		t_fail "sesrelay passwd with blanks in the secret ('$bad') exited $rc: $(cat "$C/spaced.out")"
done
t_ok "sesrelay passwd: a secret with blanks in it is refused, not derived"

# ---- temporary credentials are refused ----
sed 's/^access_key_id = .*/access_key_id = ASIAIOSFODNN7EXAMPLE/' "$GOOD" >"$C/asia.conf"
broken asia "$C/asia.conf"
grep -qi temporary "$C/asia.stderr" || t_fail "ASIA key id: the error does not say temporary credentials: $(cat "$C/asia.stderr")"

sed -e '/^access_key_id/d' -e '/^secret_access_key_file/d' "$GOOD" >"$C/envcreds.conf"
rc=0
AWS_ACCESS_KEY_ID=$EXAMPLE_KEY_ID AWS_SECRET_ACCESS_KEY=$EXAMPLE_SECRET \
	"$SESRELAYD" -n -c "$C/envcreds.conf" >"$C/envcreds.out" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY refused (exit $rc): $(cat "$C/envcreds.out")"
rc=0
AWS_ACCESS_KEY_ID=$EXAMPLE_KEY_ID AWS_SECRET_ACCESS_KEY=$EXAMPLE_SECRET \
	AWS_SESSION_TOKEN=FwoGZXIvYXdzEXAMPLETOKEN \
	"$SESRELAYD" -n -c "$C/envcreds.conf" >"$C/token.out" 2>"$C/token.err" || rc=$?
[ $rc = 2 ] && [ "$(wc -l <"$C/token.err")" = 1 ] && grep -qi temporary "$C/token.err" ||
	t_fail "AWS_SESSION_TOKEN set: exit $rc (expected 2), stderr: $(cat "$C/token.err")"
! grep -qF "$EXAMPLE_SECRET" "$C/token.err" "$C/asia.stderr" || t_fail "the refusal prints the secret"
t_ok "temporary credentials (ASIA key id, AWS_SESSION_TOKEN) refused: exit 2, says temporary"

# ---- the secret stays out of argv and the log ----
RELAY_PORT=	# a port picked just now: the one above may be taken by now
t_start_api	# sesrelay check reads the account too
t_config
t_start_relay -d
printf 'EHLO cli.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nFrom: app@example.com\r\nSubject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n' |
	"$PY" "$CLIENT" raw "$RELAY_PORT" --timeout 20 >"$C/send.out"
grep -q '^250 2\.0\.0 Ok 0100' "$C/send.out" || t_fail "message not delivered: $(cat "$C/send.out")"
timeout 30 "$SESRELAY" check -c "$GOOD" >"$C/check.out" 2>&1 || t_fail "sesrelay check failed: $(cat "$C/check.out")"
tr '\0' ' ' <"/proc/$RELAY_PID/cmdline" >"$C/cmdline"
! grep -qF "$EXAMPLE_SECRET" "$C/cmdline" || t_fail "the secret is in sesrelayd's argv: $(cat "$C/cmdline")"
auth_plain=$(printf '\0%s\0%s' "$EXAMPLE_KEY_ID" "$PW_USE1" | base64 -w0)
for f in "$T_DIR/relay.log" "$C/check.out"; do
	grep -q . "$f" || t_fail "$f is empty: nothing to check"
	for s in "$EXAMPLE_SECRET" "$PW_USE1" "$auth_plain" "$(printf '%s' "$PW_USE1" | base64 -w0)"; do
		! grep -qF -- "$s" "$f" || t_fail "$(basename "$f") contains a secret: $(grep -F -- "$s" "$f" | head -1)"
	done
done
t_ok "secret not in sesrelayd's argv; secret, password and AUTH data not in the debug log nor in sesrelay check's output"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
for s in "$EXAMPLE_SECRET" "$PW_USE1" "$auth_plain"; do
	! grep -qF -- "$s" "$T_DIR/relay.log" || t_fail "the log written at shutdown contains a secret"
done
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report, still no secret in the log"
