#!/bin/bash
# fake_ses_selftest.sh — check that tests/fake_ses behaves like SES's SMTP
# interface, driven by swaks (and bash's /dev/tcp for what swaks won't send).
# Exit 0 pass, 1 fail, 77 skip.  $FAKE_SES: the binary (default
# tests/fake_ses or ./fake_ses from the build directory).
set -u

command -v swaks >/dev/null 2>&1 || { echo "SKIP: swaks not installed"; exit 77; }
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl not installed"; exit 77; }

srcdir=$(cd "$(dirname "$0")" && pwd)
FAKE_SES=${FAKE_SES:-}
if [ -z "$FAKE_SES" ]; then
	for f in tests/fake_ses ./fake_ses "$srcdir/fake_ses"; do
		[ -x "$f" ] && { FAKE_SES=$f; break; }
	done
fi
[ -n "$FAKE_SES" ] && [ -x "$FAKE_SES" ] || { echo "FAIL: no fake_ses binary (set FAKE_SES)"; exit 1; }

AKID=AKIAIOSFODNN7EXAMPLE
SECRET=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
PASSWORD=BLBM/9hSUELfq8Gw+rU1YcBjkOxGbhT2XG763xVLGWL9	# SPEC.md, us-east-1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fake_ses_selftest.XXXXXX") || exit 1
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
pass() { echo "ok - $1"; }
fail() {
	echo "not ok - $1"
	[ $# -gt 1 ] && printf '%s\n' "$2" | sed 's/^/#   /'
	failures=$((failures + 1))
}

"$srcdir/gen-certs.sh" "$tmp/certs" || { echo "FAIL: gen-certs.sh"; exit 1; }
echo "$SECRET" >"$tmp/secret"
mkdir "$tmp/md" "$tmp/md2"

# start NAME ARGS...: start the fake in the background; sets $port and $pid.
start() {
	local name=$1
	shift
	"$FAKE_SES" --listen 127.0.0.1:0 --portfile "$tmp/$name.port" \
	    --cert "$tmp/certs/ses.pem" --key "$tmp/certs/ses.key" \
	    --user "$AKID" "$@" 2>"$tmp/$name.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		[ -s "$tmp/$name.port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	port=$(cat "$tmp/$name.port" 2>/dev/null)
	if [ -z "$port" ]; then
		echo "FAIL: $name did not start"; cat "$tmp/$name.log"; exit 1
	fi
}

start main --secret-file "$tmp/secret" --region us-east-1 \
    --maildir "$tmp/md" --idle-timeout 2
main_pid=$pid
main_port=$port

SW=(swaks --server 127.0.0.1 --port "$main_port" --helo selftest.example
    --from sender@example.com --timeout 10)
AUTH=(--auth-user "$AKID" --auth-password "$PASSWORD")

# --- before TLS (raw SMTP: swaks will not AUTH when AUTH is not offered) ---
crlf=$'\r'
if exec 3<>"/dev/tcp/127.0.0.1/$main_port"; then
	read -r -t 5 greeting <&3
	printf 'EHLO selftest.example\r\n' >&3
	ehlo=
	while read -r -t 5 line <&3; do
		ehlo+="${line%$crlf}"$'\n'
		case $line in "250 "*) break ;; esac
	done
	printf 'AUTH PLAIN %s\r\n' "$(printf '\0%s\0%s' "$AKID" "$PASSWORD" | base64 -w0)" >&3
	read -r -t 5 auth <&3
	printf 'MAIL FROM:<sender@example.com>\r\n' >&3
	read -r -t 5 mail <&3
	t0=$SECONDS
	read -r -t 10 idle <&3
	t1=$SECONDS
	exec 3<&-
	greeting=${greeting%$crlf} auth=${auth%$crlf} mail=${mail%$crlf} idle=${idle%$crlf}
	[ "$greeting" = "220 email-smtp.amazonaws.com ESMTP SimpleEmailService-d-FAKE" ] &&
	    pass "greeting" || fail "greeting" "$greeting"
	if grep -qx "250-STARTTLS" <<<"$ehlo" && grep -qx "250-8BITMIME" <<<"$ehlo" &&
	    grep -qx "250-SIZE 41943040" <<<"$ehlo" && ! grep -q "AUTH" <<<"$ehlo" &&
	    ! grep -q "PIPELINING" <<<"$ehlo"; then
		pass "EHLO before TLS: STARTTLS, no AUTH, no PIPELINING"
	else
		fail "EHLO before TLS" "$ehlo"
	fi
	[ "$auth" = "530 Must issue a STARTTLS command first" ] &&
	    pass "AUTH before STARTTLS refused (530)" || fail "AUTH before STARTTLS" "$auth"
	[ "$mail" = "530 Must issue a STARTTLS command first" ] &&
	    pass "MAIL before STARTTLS refused (530)" || fail "MAIL before STARTTLS" "$mail"
	[ "$idle" = "451 4.4.2 Timeout waiting for data from client." ] &&
	    [ $((t1 - t0)) -le 4 ] &&
	    pass "idle session closed with 451 4.4.2" || fail "idle timeout" "$idle after $((t1 - t0))s"
else
	fail "connect to fake_ses"
fi

# --- AUTH ---
out=$("${SW[@]}" --tls --auth PLAIN --auth-user "$AKID" --auth-password "${PASSWORD%?}X" \
    --to rcpt@example.com 2>&1)
rc=$?
[ $rc -ne 0 ] && grep -q "^<~\* 535 Authentication Credentials Invalid" <<<"$out" &&
    pass "wrong password refused (535)" || fail "wrong password" "$out"

out=$("${SW[@]}" --tls --auth PLAIN --auth-user AKIAWRONGUSER0000000 --auth-password "$PASSWORD" \
    --to rcpt@example.com 2>&1)
[ $? -ne 0 ] && grep -q "535 Authentication Credentials Invalid" <<<"$out" &&
    pass "wrong user refused (535)" || fail "wrong user" "$out"

v2=$(printf '\002%032d' 0 | base64 -w0)
out=$("${SW[@]}" --tls --auth LOGIN --auth-user "$AKID" --auth-password "$v2" \
    --to rcpt@example.com 2>&1)
[ $? -ne 0 ] && grep -q "535 Signature Version 2 is deprecated" <<<"$out" &&
    pass "v2 password refused (535 Signature Version 2)" || fail "v2 password" "$out"

# --- a message, byte for byte (swaks dot-stuffs; swaks adds the final CRLF) ---
printf 'Subject: selftest\r\nFrom: <sender@example.com>\r\nTo: <rcpt@example.com>\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n\r\n8bit: \303\251t\303\251\r\nlast line' >"$tmp/msg"
printf '\r\n' | cat "$tmp/msg" - >"$tmp/msg.expected"
out=$("${SW[@]}" --tls --tls-verify --tls-ca-path "$tmp/certs/ca.pem" --auth PLAIN "${AUTH[@]}" \
    --to rcpt@example.com,second@example.com --data @"$tmp/msg" 2>&1)
rc=$?
id=$(sed -n 's/^<~  250 Ok \(0100[0-9a-f]\{12\}-[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}-000000\)\r\{0,1\}$/\1/p' <<<"$out")
if [ $rc -eq 0 ] && [ -n "$id" ]; then
	pass "AUTH PLAIN accepted, 250 Ok <ses-message-id>"
else
	fail "AUTH PLAIN + message" "$out"
fi
if cmp -s "$tmp/msg.expected" "$tmp/md/000001.eml"; then
	pass "message stored byte for byte (dot-unstuffed)"
else
	fail "stored message differs" "$(od -c "$tmp/md/000001.eml" 2>&1 | head -20)"
fi
env_expected="mail_from=sender@example.com
rcpt=rcpt@example.com
rcpt=second@example.com
auth_user=$AKID
tls=TLSv1.3
session=5
seq_in_session=1
size=$(wc -c <"$tmp/msg.expected")
message_id=$id"
[ "$(cat "$tmp/md/000001.env" 2>&1)" = "$env_expected" ] &&
    pass "envelope file" || fail "envelope file" "$(cat "$tmp/md/000001.env" 2>&1)"

out=$("${SW[@]}" --tls --auth LOGIN "${AUTH[@]}" --to rcpt@example.com 2>&1)
[ $? -eq 0 ] && grep -q "^<~  235 Authentication successful." <<<"$out" &&
    grep -q "^<~  250 Ok 0100" <<<"$out" && [ -f "$tmp/md/000002.env" ] &&
    pass "AUTH LOGIN accepted" || fail "AUTH LOGIN" "$out"

# --- refusals ---
out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --from '<>' --to rcpt@example.com 2>&1)
[ $? -ne 0 ] && grep -q "^<~\* 501 Invalid MAIL FROM address provided" <<<"$out" &&
    pass "MAIL FROM:<> refused (501)" || fail "null sender" "$out"

rcpts=$(seq -f 'r%g@example.com' -s, 1 51)
out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --to "$rcpts" 2>&1)
n554=$(grep -c "^<~\* 554 Transaction failed: Recipient count exceeds 50." <<<"$out")
last=$(grep -B1 "^<~\* 554" <<<"$out" | head -1)
if [ "$n554" = 1 ] && [ "$last" = " ~> RCPT TO:<r51@example.com>" ] &&
    [ "$(grep -c '^rcpt=' "$tmp/md/000003.env" 2>/dev/null)" = 50 ]; then
	pass "51st recipient refused (554), 50 delivered"
else
	fail "51 recipients" "$out"
fi

printf 'Subject: one\r\nFrom: <sender@example.com>\r\nSubject: two\r\n\r\nbody\r\n' >"$tmp/dup"
out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --to rcpt@example.com --data @"$tmp/dup" 2>&1)
[ $? -ne 0 ] && grep -q "^<~\* 554 Transaction failed: Duplicate header 'Subject'." <<<"$out" &&
    pass "duplicate Subject refused (554 Duplicate header)" || fail "duplicate header" "$out"

out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --to unverified.rcpt@example.com 2>&1)
[ $? -ne 0 ] && grep -q "^<~\* 554 Message rejected: Email address is not verified. The following identities failed the check in region US-EAST-1: unverified.rcpt@example.com" <<<"$out" &&
    pass "unverified identity refused (554)" || fail "unverified" "$out"

# --- injected failures ---
kill -USR2 "$main_pid"
sleep 0.2
out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --to rcpt@example.com 2>&1)
[ $? -ne 0 ] && grep -q "^<~\* 454 Throttling failure: Maximum sending rate exceeded." <<<"$out" &&
    pass "SIGUSR2: throttling (454)" || fail "SIGUSR2 throttle" "$out"
kill -USR2 "$main_pid"

kill -USR1 "$main_pid"
sleep 0.2
line=
if exec 3<>"/dev/tcp/127.0.0.1/$main_port"; then
	read -r -t 5 line <&3
	rc=$?
	exec 3<&-
	[ $rc -eq 1 ] && [ -z "$line" ] && pass "SIGUSR1: down (closed without greeting)" ||
	    fail "SIGUSR1 down" "rc=$rc line=$line"
else
	fail "SIGUSR1 down: connect refused"
fi
kill -USR1 "$main_pid"
sleep 0.2
out=$("${SW[@]}" --tls --auth PLAIN "${AUTH[@]}" --to rcpt@example.com 2>&1)
[ $? -eq 0 ] && pass "up again after SIGUSR1" || fail "up again" "$out"

# --- implicit TLS (port 465 style) with a given password ---
start implicit --implicit-tls --password "$PASSWORD" --maildir "$tmp/md2" --quiet
out=$(swaks --server 127.0.0.1 --port "$port" --tls-on-connect --tls-verify \
    --tls-ca-path "$tmp/certs/ca.pem" --helo selftest.example --from sender@example.com \
    --to rcpt@example.com --auth PLAIN "${AUTH[@]}" --timeout 10 2>&1)
[ $? -eq 0 ] && grep -q "250-AUTH PLAIN LOGIN" <<<"$out" && [ -f "$tmp/md2/000001.eml" ] &&
    pass "implicit TLS" || fail "implicit TLS" "$out"

# --- clean exit on SIGTERM with a summary ---
kill -TERM "$main_pid"
wait "$main_pid"
rc=$?
summary=$(tail -1 "$tmp/main.log")
[ $rc -eq 0 ] && grep -q "^fake_ses: exit sessions=[0-9]* accepted=4 rejected=3 " <<<"$summary" &&
    pass "SIGTERM: clean exit with summary" || fail "SIGTERM exit" "rc=$rc $summary"

if [ $failures -ne 0 ]; then
	echo "# fake_ses log:"
	sed 's/^/#   /' "$tmp/main.log"
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS"
exit 0
