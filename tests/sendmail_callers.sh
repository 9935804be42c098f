#!/bin/bash
# sendmail.sesrelay with its real callers: cron-style `sendmail -t`,
# bsd-mailx, PHP mail(), git send-email; the options, -bs, mailq and
# newaliases, bare dots, no last line end, 8-bit headers, 30 MB, and the
# exit codes (usage, no recipients, daemon down).
set -euo pipefail
. "$TESTS_DIR/lib.sh"
SM=$SENDMAIL_SESRELAY
[ -x "$SM" ] || t_fail "no $SM"

t_start_fake --quiet
t_config "" "[sender restricted.example]" "networks = 10.0.0.0/8"
# the daemon also listens on a unix socket, which sendmail prefers
sed -i "s|^listen = .*|& unix:$T_DIR/relay.sock|" "$CONF"
t_start_relay
t_wait_file "$T_DIR/relay.sock" 5 || [ -S "$T_DIR/relay.sock" ] || t_fail "no unix socket"

# the names callers run: a wrapper per name, as a symlink would be
for n in sendmail mailq newaliases; do
	printf '#!/bin/bash\nexec -a %s %q -C %q "$@"\n' "$n" "$SM" "$CONF" >"$T_DIR/$n"
	chmod +x "$T_DIR/$n"
done
SEND=$T_DIR/sendmail
ME=$(id -un)

last() { ls "$MAILDIR"/*."$1" | sort | tail -1; }
count() { find "$MAILDIR" -name '*.env' | wc -l; }
expect_new() {	# n_before what: one more message at SES
	local want=$(( $1 + 1 ))
	for _ in $(seq 100); do [ "$(count)" -ge "$want" ] && break; sleep 0.1; done
	[ "$(count)" -eq "$want" ] || t_fail "$2: expected $want messages at SES, have $(count)"
}

# --- cron style: echo | sendmail -t; From, Date, Message-ID added
n=$(count)
printf 'To: cron@example.net\nSubject: cron job\n\noutput line\n' | "$SEND" -t
expect_new "$n" "sendmail -t"
grep -qx "mail_from=$ME@relay.test" "$(last env)" || t_fail "envelope sender: $(cat "$(last env)")"
grep -qx "rcpt=cron@example.net" "$(last env)" || t_fail "rcpt: $(cat "$(last env)")"
eml=$(last eml)
grep -q $'^From: .*'"$ME@relay.test"$'>\r$\|^From: '"$ME@relay.test"$'\r$' "$eml" || t_fail "no From: added: $(head -8 "$eml")"
grep -q $'^Date: [A-Z][a-z][a-z], [0-9]* [A-Z][a-z][a-z] 20[0-9][0-9] [0-9:]* [-+][0-9]\{4\}\r$' "$eml" || t_fail "no Date: added: $(head -8 "$eml")"
grep -q $'^Message-ID: <[0-9]\{14\}\.[0-9A-F]\{16\}@relay.test>\r$' "$eml" || t_fail "no Message-ID: added"
grep -q $'^output line\r$' "$eml" || t_fail "LF not turned into CRLF: $(od -c "$eml" | tail -3)"
t_ok "echo | sendmail -t: sent over the unix socket, From/Date/Message-ID added, CRLF"

# --- what Debian's cron writes for MAILTO=root (cron 3.0pl1: the
# arguments and header block of its do_command.c): bare local names get
# @hostname in the envelope and in From/To, as Postfix's myorigin does
n=$(count)
printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@box> run-parts\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\njob output\n' |
	"$SEND" -FCronDaemon -i -B8BITMIME -oem root
expect_new "$n" "cron's MAILTO=root"
grep -qx "rcpt=root@relay.test" "$(last env)" || t_fail "bare recipient not qualified: $(cat "$(last env)")"
eml=$(last eml)
grep -q $'^From: root@relay.test (Cron Daemon)\r$' "$eml" || t_fail "From: not qualified: $(grep -i ^from: "$eml")"
grep -q $'^To: root@relay.test\r$' "$eml" || t_fail "To: not qualified: $(grep -i ^to: "$eml")"
grep -q $'^Subject: Cron <root@box> run-parts\r$' "$eml" || t_fail "Subject changed: $(grep -i ^subject: "$eml")"
n=$(count)
printf 'To: ops, Ops Team <team>\nSubject: t\n\nx\n' | "$SEND" -t -f cronuser
expect_new "$n" "sendmail -t -f with bare names"
got=$(sed -n 's/^rcpt=//p' "$(last env)" | sort | tr '\n' ' ')
[ "$got" = "ops@relay.test team@relay.test " ] || t_fail "-t bare recipients: $got"
grep -qx "mail_from=cronuser@relay.test" "$(last env)" || t_fail "-f cronuser not qualified: $(cat "$(last env)")"
grep -q $'^To: ops@relay.test, Ops Team <team@relay.test>\r$' "$(last eml)" || t_fail "To: list not qualified: $(grep -i ^to: "$(last eml)")"
t_ok "cron's MAILTO=root and bare -t/-f names: qualified with @hostname in envelope and header"

# --- a header line split across writes stays a header (PHP writes in pieces)
n=$(count)
{ printf 'To: split@example.net\nSubj'; sleep 0.3; printf 'ect: split\n\nbody\n'; } | "$SEND" -t
expect_new "$n" "split header"
sed $'/^\r$/q' "$(last eml)" | grep -q $'^Subject: split\r$' ||
	t_fail "a split header line became body: $(cat "$(last eml)")"
t_ok "a header line split across two writes"

# --- -t with To, Cc, Bcc (Bcc removed), arguments, -f, -F, ignored options
n=$(count)
printf 'To: "A, B" <a@example.net>\nCc: c@example.net (C)\nBcc: hidden@example.net\nSubject: t\n\nx\n' |
	"$SEND" -t -oi -oem -odb -B 8BITMIME -N never -V envid -f '<app@example.com>' -F 'Cron Daemon' extra@example.net
expect_new "$n" "-t with Cc and Bcc"
got=$(sed -n 's/^rcpt=//p' "$(last env)" | sort | tr '\n' ' ')
[ "$got" = "a@example.net c@example.net extra@example.net hidden@example.net " ] || t_fail "recipients: $got"
grep -qx "mail_from=app@example.com" "$(last env)" || t_fail "-f ignored"
! grep -qi '^Bcc:' "$(last eml)" || t_fail "Bcc: header not removed"
grep -q $'^From: "Cron Daemon" <app@example.com>\r$' "$(last eml)" || t_fail "-F not used: $(grep -i ^from: "$(last eml)")"
t_ok "-t To/Cc/Bcc + argument recipients, Bcc removed, -f and -F, -oem -odb -B -N -V accepted"

# --- dots and line ends
n=$(count)
printf 'Subject: dots\n\n.\n..two\n.lead\nlast without newline' | "$SEND" -i -r app@example.com d@example.net
expect_new "$n" "-i"
grep -q $'^\.\r$' "$(last eml)" || t_fail "-i: the lone dot line is gone"
grep -q $'^\.\.two\r$' "$(last eml)" || t_fail "dot-stuffing broke '..two'"
grep -q $'^\.lead\r$' "$(last eml)" || t_fail "dot-stuffing broke '.lead'"
tail -c 22 "$(last eml)" | cmp -s - <(printf 'last without newline\r\n') || t_fail "no CRLF added to the last line"
n=$(count)
printf 'Subject: dot ends\n\nkept\n.\nnot kept\n' | "$SEND" d@example.net
expect_new "$n" "dot end"
grep -q $'^kept\r$' "$(last eml)" || t_fail "body before the dot lost"
! grep -q 'not kept' "$(last eml)" || t_fail "without -i, a lone dot must end the message"
t_ok "bare dots: data with -i, the end without; no last newline; dot-stuffing"

# --- 8-bit and UTF-8 headers pass untouched
n=$(count)
printf 'Subject: h\xc3\xa9llo \xf0\x9f\x99\x82\nX-Latin1: caf\xe9\n\nb\xc3\xb6dy\n' | "$SEND" u@example.net
expect_new "$n" "8-bit"
grep -q $'^Subject: h\xc3\xa9llo \xf0\x9f\x99\x82\r$' "$(last eml)" || t_fail "UTF-8 Subject changed"
grep -q $'^X-Latin1: caf\xe9\r$' "$(last eml)" || t_fail "8-bit header changed"
t_ok "8-bit and UTF-8 headers and body arrive as written"

# --- 30 MB, streamed
n=$(count)
{ printf 'Subject: big\n\n'; head -c 22500000 /dev/zero | base64 -w 76; } >"$T_DIR/big"
# max RSS against that of a one-line message (ASan builds start larger)
rss0=$( { printf 'Subject: small\n\nx\n' | /usr/bin/time -f '%M' "$SEND" big@example.net 2>&1 >/dev/null; } | tail -1)
n=$(( n + 1 ))
rss=$( { /usr/bin/time -f '%M' "$SEND" big@example.net <"$T_DIR/big" 2>&1 >/dev/null; } | tail -1)
expect_new "$n" "30 MB"
size=$(sed -n 's/^size=//p' "$(last env)")
[ "$size" -gt 30000000 ] || t_fail "30 MB message arrived with $size bytes"
[ $(( rss - rss0 )) -lt 15000 ] || t_fail "sendmail held the message in memory: max RSS $rss kB, $rss0 kB for one line"
echo "# 30 MB message: $size bytes at SES, sendmail max RSS ${rss} kB (${rss0} kB for a one-line message)"
t_ok "a 30 MB message, streamed (max RSS $rss kB)"

# --- real callers
# bsd-mailx runs /usr/sbin/sendmail, always: in a private mount namespace
# (root) ours is bind-mounted there, as installing it as the MTA would do
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && [ -e /usr/sbin/sendmail ]; then
	n=$(count)
	echo "mailx body" | MAILRC=/dev/null unshare -m bash -c \
		'mount --bind "$1" /usr/sbin/sendmail && exec mail -s "from mailx" -r app@example.com mx@example.net' \
		_ "$SEND" 2>"$T_DIR/mailx.err" || t_fail "mail: $(cat "$T_DIR/mailx.err")"
	expect_new "$n" "bsd-mailx"
	grep -qx "rcpt=mx@example.net" "$(last env)" || t_fail "mailx recipient"
	grep -qx "mail_from=app@example.com" "$(last env)" || t_fail "mailx -r"
	grep -q $'^Subject: from mailx\r$' "$(last eml)" || t_fail "mailx subject"
	t_ok "bsd-mailx: mail -s ... delivered through /usr/sbin/sendmail"
elif [ "${CI:-}" = true ]; then t_fail "bsd-mailx test needs root and unshare"; fi

if command -v php >/dev/null; then
	n=$(count)
	php -n -d "sendmail_path=$SEND -t -i" -r 'exit(mail("php@example.net", "from php", "php body\nline 2", "From: site@example.com") ? 0 : 1);' ||
		t_fail "php mail() returned false"
	expect_new "$n" "php mail()"
	grep -qx "rcpt=php@example.net" "$(last env)" || t_fail "php recipient"
	grep -q $'^line 2\r$' "$(last eml)" || t_fail "php body"
	t_ok "php mail() through sendmail_path"
elif [ "${CI:-}" = true ]; then t_fail "php-cli missing"; fi

n=$(count)
git init -q "$T_DIR/repo"
( cd "$T_DIR/repo" && echo hi >f && git add f && git -c user.name=Dev -c user.email=dev@example.com commit -q -m "a patch" &&
  git -c user.name=Dev -c user.email=dev@example.com send-email --quiet --confirm=never \
	--smtp-server="$SEND" --from=dev@example.com --to=list@example.net --no-validate -1 ) >"$T_DIR/git.log" 2>&1 ||
	t_fail "git send-email: $(tail -5 "$T_DIR/git.log")"
expect_new "$n" "git send-email"
grep -qx "rcpt=list@example.net" "$(last env)" || t_fail "git recipient"
grep -q '^Subject: \[PATCH\] a patch' "$(last eml)" || t_fail "git subject: $(grep ^Subject "$(last eml)")"
t_ok "git send-email --smtp-server=sendmail.sesrelay"

# --- -bs: SMTP on stdin/stdout
n=$(count)
out=$(printf 'EHLO me\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<bs@example.net>\r\nDATA\r\nFrom: app@example.com\r\nSubject: bs\r\n\r\nhi\r\n.\r\nQUIT\r\n' | "$SEND" -bs)
grep -q '^250 .*' <<<"$out" && grep -q '^221' <<<"$out" || t_fail "-bs: $out"
expect_new "$n" "-bs"
t_ok "-bs speaks SMTP with the daemon"

# --- mailq, newaliases, -bp
out=$("$T_DIR/newaliases") || t_fail "newaliases failed"
grep -q 'nothing to do' <<<"$out" || t_fail "newaliases: $out"
rc=0; out=$("$T_DIR/mailq" 2>&1) || rc=$?
grep -q 'passthrough keeps no queue' <<<"$out" || t_fail "mailq (passthrough): rc=$rc $out"
rc=0; out=$("$SEND" -bp 2>&1) || rc=$?
grep -q 'passthrough keeps no queue' <<<"$out" || t_fail "-bp: $out"
t_ok "newaliases is a no-op; mailq and -bp run sesrelay queue"

# --- exit codes
rc=0; echo x | "$SEND" -Z a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 64 ] && grep -q -- '-Z: unknown option' "$T_DIR/err" || t_fail "-Z: rc=$rc $(cat "$T_DIR/err")"
rc=0; printf 'Subject: x\n\n' | "$SEND" -t 2>"$T_DIR/err" || rc=$?
[ $rc = 64 ] && grep -q 'no recipient' "$T_DIR/err" || t_fail "no recipients: rc=$rc $(cat "$T_DIR/err")"
rc=0; echo x | "$SEND" $'a@example.net\r\nRCPT TO:<b@example.net>' 2>"$T_DIR/err" || rc=$?
[ $rc = 64 ] && grep -q 'recipient address contains' "$T_DIR/err" || t_fail "CRLF in a recipient: rc=$rc $(cat "$T_DIR/err")"
rc=0; echo x | "$SEND" -f 2>"$T_DIR/err" || rc=$?
[ $rc = 64 ] || t_fail "-f without argument: rc=$rc"
sed "s|^listen = .*|listen = unix:$T_DIR/nobody.sock|" "$CONF" >"$T_DIR/down.conf"
n=$(count)
rc=0; echo x | "$SM" -C "$T_DIR/down.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] && grep -q 'cannot reach sesrelayd at unix:.*nobody.sock' "$T_DIR/err" &&
	grep -q 'message not sent' "$T_DIR/err" ||
	t_fail "daemon down: rc=$rc $(cat "$T_DIR/err")"
port=$(t_free_port)
sed "s|^listen = .*|listen = 127.0.0.1:$port|" "$CONF" >"$T_DIR/down.conf"
rc=0; echo x | "$SM" -C "$T_DIR/down.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] || t_fail "daemon down (TCP): rc=$rc $(cat "$T_DIR/err")"
rc=0; echo x | "$SM" -C "$T_DIR/missing.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 78 ] || t_fail "missing config: rc=$rc $(cat "$T_DIR/err")"
rc=0; printf 'Subject: x\n\nhi\n' | "$SEND" 'bad address@@x' 2>"$T_DIR/err" || rc=$?
[ $rc = 67 ] && grep -q 'recipient <bad address@@x> refused' "$T_DIR/err" || t_fail "bad recipient: rc=$rc $(cat "$T_DIR/err")"
[ "$(count)" -eq "$n" ] || t_fail "a failed submission reached SES"
rc=0; printf 'Subject: x\n\nhi\n' | "$SEND" -f app@restricted.example a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 77 ] && grep -q 'sender <app@restricted.example> refused: 550 5.7.1' "$T_DIR/err" ||
	t_fail "refused sender: rc=$rc $(cat "$T_DIR/err")"
# a second daemon with a 1 MB limit: a 2 MB message is refused, exit 65
port2=$(t_free_port)
SESRELAY_RELAY_LISTEN=127.0.0.1:$port2 SESRELAY_RELAY_MAX_MESSAGE_SIZE=1M \
	SESRELAY_RELAY_SPOOL_DIR=$T_DIR/spool2 "$SESRELAYD" -f -c "$CONF" 2>>"$T_DIR/relay2.log" &
pid2=$!
T_PIDS+=("$pid2")
t_wait_port "$port2" || t_fail "second sesrelayd: $(cat "$T_DIR/relay2.log")"
sed "s|^listen = .*|listen = 127.0.0.1:$port2|" "$CONF" >"$T_DIR/small.conf"
rc=0; { printf 'Subject: big\n\n'; head -c 1500000 /dev/zero | base64; } |
	"$SM" -C "$T_DIR/small.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 65 ] && grep -q 'message refused: 552' "$T_DIR/err" || t_fail "too large: rc=$rc $(cat "$T_DIR/err")"
[ "$(count)" -eq "$n" ] || t_fail "a failed submission reached SES"
stop_relay "$pid2" "$T_DIR/relay2.log"
t_ok "exit codes: 64 usage, 64 no recipients, 75 daemon down, 78 config, 67 recipient, 77 sender, 65 too large"

# --- -v shows the dialogue; a user who may not read the config still runs it
n=$(count)
printf 'Subject: v\n\nx\n' | "$SEND" -v -f app@example.com v@example.net 2>"$T_DIR/err" || t_fail "-v: $(cat "$T_DIR/err")"
grep -q '^>>> MAIL FROM:<app@example.com> BODY=8BITMIME$' "$T_DIR/err" && grep -q '^<<< 250' "$T_DIR/err" ||
	t_fail "-v printed no dialogue: $(cat "$T_DIR/err")"
expect_new "$n" "-v"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/25) 2>/dev/null; then
	rc=0; echo x | setpriv --reuid=nobody --regid=nogroup --clear-groups "$SM" -v -C "$CONF" a@example.net \
		2>"$T_DIR/err" || rc=$?
	# the config is in a mode-700 directory: the defaults, 127.0.0.1:25
	[ $rc = 75 ] && grep -q 'is not readable: using 127.0.0.1:25' "$T_DIR/err" &&
		grep -q 'cannot reach sesrelayd at 127.0.0.1:25' "$T_DIR/err" ||
		t_fail "unreadable config as nobody: rc=$rc $(cat "$T_DIR/err")"
	t_ok "-v dialogue; as nobody with an unreadable config: the defaults"
else
	t_ok "-v dialogue"
fi

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
