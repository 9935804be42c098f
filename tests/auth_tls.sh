#!/bin/bash
# Who may relay: inbound STARTTLS, SMTP AUTH through libsasl2 with a real
# sasldb (saslpasswd2), sender restrictions, the STARTTLS injection
# defence, and (as root) AUTH not offered in clear on a non-loopback TCP
# listener plus the per-client connection cap, in a private network
# namespace where 192.0.2.1 (TEST-NET-1) lives on its own loopback.
set -euo pipefail
if [ "$(id -u)" -eq 0 ] && [ -z "${SESRELAY_IN_NETNS:-}" ] &&
    unshare -n true 2>/dev/null; then
	SESRELAY_IN_NETNS=1 exec unshare -n bash "$0" "$@"
fi
if [ -n "${SESRELAY_IN_NETNS:-}" ]; then
	ip link set lo up
	ip addr add 192.0.2.1/32 dev lo
fi
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null && command -v saslpasswd2 >/dev/null || exit 77

t_start_fake --quiet
# a sasldb with alice and bob; the realm is the relay's hostname
mkdir -p "$T_DIR/sasl"
printf 'alice-pw\n' | saslpasswd2 -p -c -f "$T_DIR/sasldb" -u relay.test -a sesrelay alice
printf 'bob-pw\n' | saslpasswd2 -p -c -f "$T_DIR/sasldb" -u relay.test -a sesrelay bob
# carol's password makes a 2.7 KB AUTH PLAIN line (RFC 4954 allows 12288;
# saslpasswd2 keeps at most about 2 KB of a password)
printf '%02000d\n' 0 | saslpasswd2 -p -c -f "$T_DIR/sasldb" -u relay.test -a sesrelay carol
cat >"$T_DIR/sasl/sesrelay.conf" <<EOF2
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: $T_DIR/sasldb
mech_list: PLAIN LOGIN SCRAM-SHA-256
EOF2
export SASL_CONF_PATH=$T_DIR/sasl

t_config "null_sender = bounces@example.org" \
	"" "[sender billing@example.com]" "users = alice" \
	"" "[sender example.org]" "users = bob"
sed -i "s|^\[relay\]|[relay]\nauth = required\ntls_cert = $CERTS/inbound.pem\ntls_key = $CERTS/inbound.key|" "$CONF"
t_start_relay

sw() {	# swaks against the relay; never fails the pipeline
	swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--helo client.test "$@" 2>&1 || true
}

# --- AUTH required: MAIL without it is refused
out=$(sw --from billing@example.com --to x@example.net)
grep -q '^<\*\* 530 5.7.0 Authentication required' <<<"$out" || t_fail "no 530 without AUTH: $out"
[ "$(t_messages)" -eq 0 ] || t_fail "something was relayed without AUTH"
t_ok "auth = required: MAIL without AUTH gets 530"

# --- wrong password: 535, after a delay
t0=$(date +%s.%N)
out=$(sw --tls --auth PLAIN --auth-user alice --auth-password wrong --from billing@example.com --to x@example.net)
t1=$(date +%s.%N)
grep -q '535 5.7.8' <<<"$out" || t_fail "wrong password not refused with 535: $out"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 0.9) }' || t_fail "no delay before 535"
grep -q 'auth mech=PLAIN result=failed' "$T_DIR/relay.log" || t_fail "failed AUTH not logged"
grep -q 'wrong' "$T_DIR/relay.log" && t_fail "the password attempt appears in the log"
t_ok "wrong password: 535 5.7.8 after a delay, logged without the secret"

# --- the delay follows the client across sessions
t0=$(date +%s.%N)
out=$(sw --tls --auth PLAIN --auth-user alice --auth-password wrong2 --from billing@example.com --to x@example.net)
t1=$(date +%s.%N)
grep -q '535 5.7.8' <<<"$out" || t_fail "second wrong password not refused: $out"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.9) }' ||
	t_fail "a new session reset the delay ($(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}') s)"
t_ok "AUTH failures from one client cost more in the next session too"

# --- right password over STARTTLS: relayed, user logged
out=$(sw --tls --auth LOGIN --auth-user alice --auth-password alice-pw --from billing@example.com --to x@example.net)
grep -q '^<~  235 2.7.0' <<<"$out" || t_fail "AUTH LOGIN over TLS failed: $out"
grep -q '^<~  250 2.0.0 Ok 0100' <<<"$out" || t_fail "not relayed after AUTH: $out"
grep -q 'auth user=alice mech=LOGIN result=ok' "$T_DIR/relay.log" || t_fail "AUTH user not logged"
grep -q 'alice-pw' "$T_DIR/relay.log" && t_fail "the password appears in the log"
eml=$(ls "$MAILDIR"/*.eml | tail -1)
grep -q 'with ESMTPSA id' "$eml" || t_fail "Received: does not say ESMTPSA"
out=$(sw --tls --auth PLAIN --auth-user bob --auth-password bob-pw --from news@mail.example.org --to y@example.net)
grep -q '^<~  250 2.0.0 Ok 0100' <<<"$out" || t_fail "AUTH PLAIN over TLS failed: $out"
t_ok "AUTH PLAIN and LOGIN over STARTTLS: relayed (ESMTPSA)"

# --- SCRAM-SHA-256 (the password never crosses the wire) with a small
# client of our own: Python's smtplib has no SCRAM
/usr/bin/python3 - "$RELAY_PORT" "$CERTS/ca.pem" <<'PY' || t_fail "SCRAM-SHA-256 AUTH failed"
import base64, hashlib, hmac, os, smtplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
s = smtplib.SMTP("127.0.0.1", port, timeout=10)
s.starttls(context=ssl.create_default_context(cafile=ca))
s.ehlo("client.test")
assert "SCRAM-SHA-256" in s.esmtp_features.get("auth", ""), s.esmtp_features
b64 = lambda b: base64.b64encode(b).decode()
cnonce = b64(os.urandom(18))
first_bare = "n=alice,r=" + cnonce
code, msg = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(("n,," + first_bare).encode()))
assert code == 334, (code, msg)
server_first = base64.b64decode(msg).decode()
f = dict(kv.split("=", 1) for kv in server_first.split(","))
assert f["r"].startswith(cnonce)
salted = hashlib.pbkdf2_hmac("sha256", b"alice-pw", base64.b64decode(f["s"]), int(f["i"]))
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
stored = hashlib.sha256(client_key).digest()
without_proof = "c=biws,r=" + f["r"]
auth_msg = ",".join([first_bare, server_first, without_proof]).encode()
sig = hmac.new(stored, auth_msg, "sha256").digest()
proof = bytes(a ^ b for a, b in zip(client_key, sig))
code, msg = s.docmd(b64((without_proof + ",p=" + b64(proof)).encode()))
if code == 334:        # server-final (v=...), then an empty response
    code, msg = s.docmd("")
assert code == 235, (code, msg)
s.sendmail("billing@example.com", ["scram@example.net"], b"From: billing@example.com\r\nSubject: scram\r\n\r\nhi\r\n")
s.quit()
PY
grep -q 'auth user=alice mech=SCRAM-SHA-256 result=ok' "$T_DIR/relay.log" || t_fail "SCRAM AUTH not logged"
t_ok "AUTH SCRAM-SHA-256 with the sasldb's secret, then relayed"

# --- AUTH lines longer than other commands (RFC 4954: 12288 octets): a
# 2.7 KB initial response, a 2.7 KB response to 334; a 13 KB one gets
# 500 5.5.6 and ends the exchange, the session in step; other commands
# keep the 1000-octet limit
/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "long AUTH lines"
import base64, socket, sys
port = int(sys.argv[1])
ir = base64.b64encode(b"\0carol\0" + b"0" * 2000)
def session():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rb")
    def cmd(line):
        if line is not None:
            s.sendall(line + b"\r\n")
        while True:
            l = f.readline()
            assert l, "connection closed"
            if l[3:4] != b"-":
                return l.rstrip(b"\r\n")
    cmd(None)
    assert cmd(b"EHLO long.test").startswith(b"250 "), "EHLO"
    return s, cmd
s, cmd = session()
r = cmd(b"AUTH PLAIN " + ir)
assert r.startswith(b"235 "), ("%d-byte AUTH PLAIN line" % (len(ir) + 13), r)
s.close()
s, cmd = session()
assert cmd(b"AUTH PLAIN").startswith(b"334"), "no 334"
r = cmd(ir)
assert r.startswith(b"235 "), ("%d-byte response line" % (len(ir) + 2), r)
s.close()
s, cmd = session()
assert cmd(b"AUTH PLAIN").startswith(b"334"), "no 334"
r = cmd(b"A" * 13000)
assert r.startswith(b"500 5.5.6 "), ("13000-byte response", r)
r = cmd(b"NOOP")
assert r.startswith(b"250 "), ("NOOP after the long response", r)
r = cmd(b"NOOP " + b"x" * 1500)
assert r.startswith(b"500 5.5.2 "), ("1506-byte NOOP", r)
r = cmd(b"QUIT")
assert r.startswith(b"221 "), r
PY
grep -q 'auth user=carol mech=PLAIN result=ok' "$T_DIR/relay.log" || t_fail "carol's AUTH not logged"
t_ok "AUTH lines up to 12288 octets (2.7 KB initial response and response); longer: 500 5.5.6, in step"

# --- sender restrictions: envelope and From:
out=$(sw --tls --auth PLAIN --auth-user bob --auth-password bob-pw --from billing@example.com --to x@example.net)
grep -q '550 5.7.1 <billing@example.com>: Sender address not allowed' <<<"$out" || t_fail "bob used alice's sender: $out"
out=$(sw --tls --auth PLAIN --auth-user alice --auth-password alice-pw --from billing@example.com --to x@example.net \
	--header 'From: Billing <news@example.org>')
grep -q '550 5.7.1 From: address <news@example.org> not allowed' <<<"$out" || t_fail "alice used bob's From: $out"
n=$(t_messages)
[ "$n" -eq 3 ] || t_fail "refused messages were relayed ($n at SES, expected 3)"
t_ok "sender restrictions: envelope sender and From: outside the user's list get 550 5.7.1"

# --- a From: that cannot be read is not waved through: bob may not send
# as billing@example.com, however the From: is written
for from in 'Billing, Inc <billing@example.com>' 'Billing <billing@example.com' \
    'Undisclosed:;' 'Billing <billing@example.com> (x) junk'; do
	out=$(sw --tls --auth PLAIN --auth-user bob --auth-password bob-pw --from news@example.org \
		--to x@example.net --header "From: $from")
	grep -q '550 5.7.1 From: header cannot be parsed' <<<"$out" ||
		t_fail "bob's unreadable From: '$from' not refused: $(grep -E '^(<\*\*|<~ )' <<<"$out" | tail -3)"
done
out=$(sw --tls --auth PLAIN --auth-user bob --auth-password bob-pw --from news@example.org --to x@example.net \
	--header 'From: news@example.org, "Billing" <billing@example.com>')
grep -q '550 5.7.1 From: address <billing@example.com> not allowed' <<<"$out" ||
	t_fail "bob's second From: address billing@example.com not refused: $out"
[ "$(t_messages)" -eq "$n" ] || t_fail "a From: bob may not use was relayed ($(t_messages) at SES, expected $n)"
out=$(sw --tls --auth PLAIN --auth-user alice --auth-password alice-pw --from billing@example.com --to x@example.net \
	--header 'From: "Billing, Inc" <billing@example.com>')
grep -q '^<~  250 2.0.0 Ok 0100' <<<"$out" || t_fail "alice's quoted display name with a comma was refused: $out"
t_ok "From: unreadable or with an address not allowed among several: 550 5.7.1; a quoted display name with a comma is fine"

# --- MAIL FROM:<> goes to SES as null_sender: that address's rules apply
n=$(t_messages)
out=$(sw --tls --auth PLAIN --auth-user alice --auth-password alice-pw --from '<>' --to x@example.net \
	--header 'From: "Billing" <billing@example.com>')
grep -q '550 5.7.1 <bounces@example.org>: Sender address not allowed for this user (<> is relayed with this null_sender)' <<<"$out" ||
	t_fail "alice sent <> as bob's null_sender: $(grep -E '^(<\*\*|<~ |<- )' <<<"$out" | tail -3)"
out=$(sw --tls --auth PLAIN --auth-user bob --auth-password bob-pw --from '<>' --to x@example.net \
	--header 'From: news@example.org')
grep -q '^<~  250 2.0.0 Ok 0100' <<<"$out" || t_fail "bob's <> (as his null_sender) was refused: $out"
[ "$(t_messages)" -eq $((n + 1)) ] || t_fail "expected exactly bob's <> message at SES"
grep -q '^mail_from=bounces@example.org' "$(ls -t "$MAILDIR"/*.env | head -1)" ||
	t_fail "bob's <> did not go to SES as null_sender"
t_ok "MAIL FROM:<>: refused for a user who may not use null_sender's address, relayed as it for one who may"

# --- STARTTLS command injection: a command pipelined after STARTTLS in
# clear must not be executed after the handshake
/usr/bin/python3 - "$RELAY_PORT" "$CERTS/ca.pem" <<'PY' || t_fail "STARTTLS injection not refused"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        l = f.readline()
        lines.append(l)
        if l[3:4] != b"-":
            return lines
reply()
s.sendall(b"EHLO x\r\n"); reply()
s.sendall(b"STARTTLS\r\nRSET\r\n")
assert reply()[0].startswith(b"220"), "no 220 to STARTTLS"
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(s, server_hostname="localhost")
t.sendall(b"HELP\r\n")
got = b""
t.settimeout(1.5)
try:
    while True:
        d = t.recv(4096)
        if not d:
            break
        got += d
except socket.timeout:
    pass
# the injected RSET would have produced a "250 2.0.0 Ok" before HELP's 214
assert got.startswith(b"214 ") and got.count(b"\r\n") == 1, got
PY
grep -q 'discarded .* bytes pipelined after STARTTLS' "$T_DIR/relay.log" || t_fail "injection not logged"
t_ok "STARTTLS injection: pipelined plaintext discarded"

if [ -n "${SESRELAY_IN_NETNS:-}" ]; then
	# --- a TCP listener that is not loopback: AUTH only after STARTTLS
	kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
	sed -i "s|^listen = .*|listen = 192.0.2.1:$RELAY_PORT|; s|^allow = .*||" "$CONF"
	sed -i "s|^\[relay\]|[relay]\nallow = 192.0.2.0/24 127.0.0.0/8|" "$CONF"
	"$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay.log" &
	RELAY_PID=$!; T_PIDS+=("$RELAY_PID")
	for _ in $(seq 100); do (exec 3<>/dev/tcp/192.0.2.1/$RELAY_PORT) 2>/dev/null && break; sleep 0.05; done
	out=$(swaks --server 192.0.2.1 --port "$RELAY_PORT" --quit-after EHLO 2>&1 || true)
	grep -q '250-STARTTLS' <<<"$out" || t_fail "STARTTLS not offered: $out"
	grep -q 'AUTH' <<<"$out" && t_fail "AUTH offered in clear on a non-loopback listener: $out"
	out=$(swaks --server 192.0.2.1 --port "$RELAY_PORT" --tls --quit-after AUTH --auth PLAIN \
		--auth-user alice --auth-password alice-pw 2>&1 || true)
	grep -q '250-AUTH .*PLAIN' <<<"$out" || t_fail "AUTH not offered after STARTTLS: $out"
	grep -q '235 2.7.0' <<<"$out" || t_fail "AUTH after STARTTLS failed: $out"
	t_ok "non-loopback TCP: AUTH (PLAIN) offered only after STARTTLS"

	# --- at most 50 sessions from one non-loopback client
	/usr/bin/python3 - "$RELAY_PORT" <<'PY' || t_fail "per-client connection cap"
import socket, sys
port = int(sys.argv[1])
socks = []
for i in range(50):
    s = socket.create_connection(("192.0.2.1", port), timeout=10)
    assert s.recv(200).startswith(b"220"), i
    socks.append(s)
s = socket.create_connection(("192.0.2.1", port), timeout=10)
r = s.recv(200)
assert r.startswith(b"421 4.7.0"), r
PY
	t_ok "per-client cap: the 51st session from one address gets 421"
else
	echo "skip: not root, no network namespace for the non-loopback checks"
fi
