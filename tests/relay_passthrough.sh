#!/bin/bash
# relay_passthrough.sh — the happy paths of passthrough mode, end to end:
# swaks, msmtp, curl and Python's smtplib each send through sesrelayd to
# the fake SES endpoint, and what SES stored is compared byte for byte with
# what the client sent: body untouched (dot lines, 8-bit, a 998-character
# line), one Received: added, client X-SES-* fields gone, ours added per
# the [sender P] rules; envelope, AUTH user, TLS version, SES's message id
# in the client's reply and in the log; upstream session reuse; the null
# sender mapped to null_sender, or refused without it.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

for tool in swaks msmtp curl; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 not installed"; exit 77; }
PY=/usr/bin/python3
CLIENT=$TESTS_DIR/smtp_client.py
export LC_ALL=C


ARN_EX=arn:aws:ses:us-east-1:123456789012:identity/example.com
ARN_BOSS=arn:aws:ses:us-east-1:123456789012:identity/boss@example.com
ARN_OSRC=arn:aws:ses:us-east-1:210987654321:identity/other.org
ARN_OFROM=arn:aws:ses:us-east-1:210987654321:identity/from.other.org
ARN_ORP=arn:aws:ses:us-east-1:210987654321:identity/bounce.other.org
TAGS='app=test, env=ci'

t_start_fake
t_config \
	"configuration_set = cs-default" \
	"message_tags = $TAGS" \
	"null_sender = bounces@example.com" \
	"" \
	"[sender example.com]" \
	"arn = $ARN_EX" \
	"configuration_set = cs-example" \
	"" \
	"[sender boss@example.com]" \
	"arn = $ARN_BOSS" \
	"configuration_set = cs-boss" \
	"" \
	"[sender other.org]" \
	"source_arn = $ARN_OSRC" \
	"from_arn = $ARN_OFROM" \
	"return_path_arn = $ARN_ORP"
t_start_relay
LOG=$T_DIR/relay.log
M=$T_DIR/msgs
mkdir -p "$M"

# crlf FILE: LF lines -> CRLF lines, in place.
crlf() { sed -i 's/$/\r/' "$1"; }
long_line=$(printf '%0998d' 0 | tr 0 L)

# The client's X-SES-* fields (any case, one folded) must not reach SES;
# X-SESSION and X-Other are not X-SES-* and must stay; the folded
# Subject must not be re-folded; the body has dot lines, 8-bit UTF-8 and
# a line of exactly 998 characters.
cat >"$M/a.txt" <<EOF
From: App <app@example.com>
To: a@example.net, b@example.net
Cc: c@example.net
Subject: passthrough via swaks,
	folded on purpose
Date: Mon, 23 Nov 2026 10:00:00 +0000
Message-ID: <swaks-1@example.com>
X-SES-SOURCE-ARN: arn:aws:ses:us-east-1:999999999999:identity/evil.com
x-ses-configuration-set: evil-set
X-SESSION: not an SES header
X-Ses-Message-Tags: evil=1,
  more=2
X-Other: kept
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Line one.
.leading dot
..two leading dots
.
Grüße aus Köln — 日本語のテキスト
$long_line
last line
EOF
crlf "$M/a.txt"
# swaks ends the data with one more CRLF of its own
cp "$M/a.txt" "$M/a.sent"
printf '\r\n' >>"$M/a.sent"

cat >"$M/b.txt" <<EOF
From: "News" <News@Example.COM>
To: reader@example.net
Subject: via msmtp: envelope other.org, From: example.com
Date: Mon, 23 Nov 2026 10:01:00 +0000
Message-ID: <msmtp-1@example.com>
X-SES-FROM-ARN: arn:aws:ses:us-east-1:999999999999:identity/evil.com
x-ses-return-path-arn: arn:aws:ses:us-east-1:999999999999:identity/evil.com

.msmtp body with a dot line
Grüße
EOF
cp "$M/b.txt" "$M/b.lf"		# msmtp takes LF lines and sends CRLF
crlf "$M/b.txt"

cat >"$M/c.txt" <<EOF
From: someone@mail.example.com
To: d@example.net
Subject: via curl: envelope boss@example.com
Date: Mon, 23 Nov 2026 10:02:00 +0000
Message-ID: <curl-1@example.com>
X-SES-CONFIGURATION-SET: evil-set

..curl body
$long_line
EOF
crlf "$M/c.txt"

for n in 1 2; do
	cat >"$M/d$n.txt" <<EOF
From: x@unmatched.net
To: e@example.net
Subject: smtplib message $n of 2 in one session
Date: Mon, 23 Nov 2026 10:03:0$n +0000
Message-ID: <smtplib-$n@unmatched.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit
X-Ses-Source-Arn: arn:aws:ses:us-east-1:999999999999:identity/evil.com

8-bit body, declared BODY=8BITMIME: Ünïcödé ✓ €
.dot line
EOF
	crlf "$M/d$n.txt"
done

cat >"$M/e.txt" <<EOF
From: MAILER-DAEMON@example.com
To: app@example.net
Subject: a bounce with the null sender
Date: Mon, 23 Nov 2026 10:04:00 +0000
Message-ID: <bounce-1@example.com>

bounce body
EOF
crlf "$M/e.txt"

# ---- send them, back to back ----
swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
	--helo swaks.test --from app@example.com \
	--to a@example.net,b@example.net,c@example.net \
	--data "@$M/a.txt" >"$M/a.out" 2>&1 || t_fail "swaks failed: $(cat "$M/a.out")"
printf 'account default\nhost 127.0.0.1\n' >"$M/msmtprc"
chmod 600 "$M/msmtprc"
msmtp -C "$M/msmtprc" --port="$RELAY_PORT" --auth=off --tls=off \
	--domain=msmtp.test --timeout=20 --from=app@other.org \
	--debug reader@example.net <"$M/b.lf" >"$M/b.out" 2>&1 ||
	t_fail "msmtp failed: $(cat "$M/b.out")"
curl -sS -v --max-time 20 "smtp://127.0.0.1:$RELAY_PORT/curl.test" \
	--mail-from boss@example.com --mail-rcpt d@example.net \
	-T "$M/c.txt" >"$M/c.out" 2>&1 || t_fail "curl failed: $(cat "$M/c.out")"
"$PY" "$CLIENT" send "$RELAY_PORT" --from x@unmatched.net \
	--to e@example.net --mail-opt BODY=8BITMIME "$M/d1.txt" "$M/d2.txt" \
	>"$M/d.out" 2>&1 || t_fail "smtplib failed: $(cat "$M/d.out")"
"$PY" "$CLIENT" send "$RELAY_PORT" --from '' --to app@example.net "$M/e.txt" \
	>"$M/e.out" 2>&1 || t_fail "smtplib (null sender) failed: $(cat "$M/e.out")"

# ses_id OUTPUT-FILE: the SES message id in the client's final reply.
ses_id_re='250[ -]2\.0\.0 Ok (0100[0-9a-f-]+)'
ses_id() {
	local id
	id=$(grep -aoE "$ses_id_re" "$1" | sed -E "s/$ses_id_re/\\1/" | head -1)
	[ -n "$id" ] || t_fail "no '250 2.0.0 Ok <SES message id>' in the client's output: $(cat "$1")"
	echo "$id"
}
id_a=$(ses_id "$M/a.out")
id_b=$(ses_id "$M/b.out")
id_c=$(ses_id "$M/c.out")
[ "$(grep -c '^data: 250 2\.0\.0 Ok 0100' "$M/d.out")" = 2 ] ||
	t_fail "smtplib: expected two '250 2.0.0 Ok <id>' replies: $(cat "$M/d.out")"
# shellcheck disable=SC2034 # read as ${!id} below
id_d1=$(sed -n 1p "$M/d.out" | sed -E 's/.*Ok (0100[0-9a-f-]+).*/\1/')
# shellcheck disable=SC2034
id_d2=$(sed -n 2p "$M/d.out" | sed -E 's/.*Ok (0100[0-9a-f-]+).*/\1/')
id_e=$(ses_id "$M/e.out")
t_ok "each client's final reply is '250 2.0.0 Ok <SES message id>'"

# env_of ID: the fake's .env file for SES message id ID.
env_of() {
	local f
	f=$(grep -l "^message_id=$1\$" "$MAILDIR"/*.env 2>/dev/null || true)
	[ "$(printf '%s' "$f" | grep -c .)" = 1 ] ||
		t_fail "message $1 (from the client's reply) not stored exactly once by the fake: '$f'"
	echo "$f"
}

[ "$(t_messages)" = 6 ] || t_fail "fake SES stored $(t_messages) messages, expected 6"

# check NAME ID SENT MAIL_FROM RCPTS INSERT...: envelope and bytes of one.
check() {
	local name=$1 id=$2 sent=$3 from=$4 rcpts=$5
	shift 5
	local env eml args=()
	env=$(env_of "$id")
	eml=${env%.env}.eml
	grep -qx "mail_from=$from" "$env" ||
		t_fail "$name: SES got MAIL FROM $(grep mail_from "$env"), expected $from"
	[ "$(grep '^rcpt=' "$env" | sed 's/^rcpt=//' | paste -sd, -)" = "$rcpts" ] ||
		t_fail "$name: SES got recipients $(grep '^rcpt=' "$env" | paste -sd' ' -), expected $rcpts"
	grep -qx "auth_user=$EXAMPLE_KEY_ID" "$env" ||
		t_fail "$name: upstream AUTH user $(grep auth_user "$env"), expected $EXAMPLE_KEY_ID"
	grep -qxE 'tls=TLSv1\.[23]' "$env" ||
		t_fail "$name: upstream TLS $(grep '^tls=' "$env"), expected TLSv1.2 or TLSv1.3"
	for x in "$@"; do args+=(--insert "$x"); done
	local why
	why=$("$PY" "$CLIENT" check-eml "$sent" "$eml" --received "${args[@]}") ||
		t_fail "$name: what SES got is not what the client sent plus our header: $why"
	[ "$(grep -c "delivery id=.* ses_id=$id" "$LOG")" = 1 ] ||
		t_fail "$name: expected one 'delivery id=... ses_id=$id' line in the log: $(grep delivery "$LOG")"
	t_ok "$name: envelope, AUTH, TLS, bytes, X-SES-* headers, log line"
}

check "swaks (3 recipients, dot lines, 998-char line, forged X-SES-*)" \
	"$id_a" "$M/a.sent" app@example.com \
	a@example.net,b@example.net,c@example.net \
	"X-SES-SOURCE-ARN: $ARN_EX" "X-SES-FROM-ARN: $ARN_EX" \
	"X-SES-RETURN-PATH-ARN: $ARN_EX" "X-SES-CONFIGURATION-SET: cs-example" \
	"X-SES-MESSAGE-TAGS: $TAGS"
check "msmtp (envelope other.org selects source/return-path; From: example.com selects from_arn)" \
	"$id_b" "$M/b.txt" app@other.org reader@example.net \
	"X-SES-SOURCE-ARN: $ARN_OSRC" "X-SES-FROM-ARN: $ARN_EX" \
	"X-SES-RETURN-PATH-ARN: $ARN_ORP" "X-SES-CONFIGURATION-SET: cs-default" \
	"X-SES-MESSAGE-TAGS: $TAGS"
check "curl (exact address rule beats domain; From: subdomain uses the domain rule)" \
	"$id_c" "$M/c.txt" boss@example.com d@example.net \
	"X-SES-SOURCE-ARN: $ARN_BOSS" "X-SES-FROM-ARN: $ARN_EX" \
	"X-SES-RETURN-PATH-ARN: $ARN_BOSS" "X-SES-CONFIGURATION-SET: cs-boss" \
	"X-SES-MESSAGE-TAGS: $TAGS"
for n in 1 2; do
	id=id_d$n
	check "smtplib message $n (BODY=8BITMIME, no sender rule)" \
		"${!id}" "$M/d$n.txt" x@unmatched.net e@example.net \
		"X-SES-CONFIGURATION-SET: cs-default" "X-SES-MESSAGE-TAGS: $TAGS"
done
check "null sender mapped to null_sender (and its [sender] rule)" \
	"$id_e" "$M/e.txt" bounces@example.com app@example.net \
	"X-SES-SOURCE-ARN: $ARN_EX" "X-SES-FROM-ARN: $ARN_EX" \
	"X-SES-RETURN-PATH-ARN: $ARN_EX" "X-SES-CONFIGURATION-SET: cs-example" \
	"X-SES-MESSAGE-TAGS: $TAGS"

n=$(grep -c 'delivery id=.* ses_id=0100' "$LOG" || true)
[ "$n" = 6 ] || t_fail "expected 6 delivery lines with an SES id in the log, got $n: $(grep delivery "$LOG")"
t_ok "one delivery log line per message"

# Five client sessions, six messages, back to back: one upstream session.
sessions=$(sed -n 's/^session=//p' "$MAILDIR"/*.env | sort -u)
[ "$(printf '%s\n' "$sessions" | grep -c .)" = 1 ] ||
	t_fail "upstream session not reused: the fake saw sessions $(echo $sessions)"
t_ok "two messages in one SMTP session and back-to-back sessions share one upstream session"

# ---- without null_sender, MAIL FROM:<> is refused at MAIL ----
RELAY2_PORT=$(t_free_port)
sed -e "s/^listen = .*/listen = 127.0.0.1:$RELAY2_PORT/" -e '/^null_sender/d' \
	"$CONF" >"$T_DIR/no-null.conf"
"$SESRELAYD" -f -c "$T_DIR/no-null.conf" 2>>"$T_DIR/relay2.log" &
RELAY2_PID=$!
T_PIDS+=("$RELAY2_PID")
t_wait_port "$RELAY2_PORT" || t_fail "second sesrelayd did not start: $(cat "$T_DIR/relay2.log")"
out=$(printf 'EHLO null.test\r\nMAIL FROM:<>\r\nQUIT\r\n' |
	"$PY" "$CLIENT" raw "$RELAY2_PORT" --replies 4)
mail_reply=$(printf '%s\n' "$out" | grep -E '^[0-9]{3} ' | sed -n 3p)
case $mail_reply in
550*) ;;
*) t_fail "MAIL FROM:<> without null_sender: expected 550, got '$mail_reply'" ;;
esac
[ "$(t_messages)" = 6 ] || t_fail "a message reached SES from the null sender without null_sender"
t_ok "MAIL FROM:<> refused with 550 when null_sender is not set"

# each line names its message: two messages of one session are not one id
n=$(grep 'delivery id=.* ses_id=0100' "$LOG" | sed -E 's/.*delivery id=([^ ]+).*/\1/' | sort -u | wc -l)
[ "$n" = 6 ] || t_fail "6 messages but $n distinct local ids in the delivery log lines: $(grep -o 'delivery id=[^ ]*' "$LOG" | paste -sd' ' -)"
t_ok "one delivery log line per message, each with its own id"

stop_relay "$RELAY_PID" "$LOG"
stop_relay "$RELAY2_PID" "$T_DIR/relay2.log"
t_ok "sesrelayd exits 0 on SIGTERM, no sanitizer report"
