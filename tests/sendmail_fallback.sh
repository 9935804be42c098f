#!/bin/bash
# sendmail_fallback = spool: with the daemon down, sendmail.sesrelay
# (setgid sesrelay-drop, run by an ordinary user) leaves the message in
# spool_dir/maildrop; sesrelayd (as nobody) picks it up at start and every
# 10 s and submits it like any client.  The maildrop is Postfix's: the user
# cannot list or read it; forged files (a "." line and SMTP commands
# inside, a bare LF, a bad envelope) reach nobody; tempfail closes it.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
SM=$SENDMAIL_SESRELAY
[ "$(id -u)" -eq 0 ] || { [ "${CI:-}" = true ] && t_fail "needs root"; exit 77; }
command -v setpriv >/dev/null || t_fail "setpriv missing"

made_group=
if ! getent group sesrelay-drop >/dev/null; then
	groupadd --system sesrelay-drop
	made_group=1
fi
# outside T_DIR (mode 700): the caller must reach the spool directory
TOP=$(mktemp -d /tmp/sesrelay-drop.XXXXXX)
chmod 755 "$TOP"
trap 't_cleanup; rm -rf "$TOP"; [ -z "$made_group" ] || groupdel sesrelay-drop' EXIT

t_start_fake --quiet
T_MODE=spool t_config
SPOOL=$TOP/spool
DROP=$SPOOL/maildrop
sed -i "s|^spool_dir = .*|spool_dir = $SPOOL\nsendmail_fallback = spool|; s|^user = root|user = nobody|" "$CONF"
# the caller reads the configuration (no secret in it: a key file)
# and the daemon, as nobody, its key again on SIGHUP
cp "$CERTS/ca.pem" "$TOP/ca.pem"
install -m 600 -o nobody "$T_DIR/secret" "$TOP/secret"
sed -i "s|^ca_file = .*|ca_file = $TOP/ca.pem|; s|^secret_access_key_file = .*|secret_access_key_file = $TOP/secret|" "$CONF"
cp "$CONF" "$TOP/sesrelay.conf"
CONF=$TOP/sesrelay.conf
chmod 644 "$CONF"
port=$(t_free_port)
sed "s|^listen = .*|listen = 127.0.0.1:$port|" "$CONF" >"$TOP/down.conf"
sed 's|^sendmail_fallback = spool|sendmail_fallback = tempfail|' "$TOP/down.conf" >"$TOP/tempfail.conf"
chmod 644 "$TOP"/*.conf
# installed as it must be: setgid sesrelay-drop
install -D -m 2755 -g sesrelay-drop "$SM" "$TOP/bin/sendmail.sesrelay"
SEND=$TOP/bin/sendmail.sesrelay
as_user() { setpriv --reuid=daemon --regid=daemon --clear-groups "$@"; }
# LeakSanitizer cannot run in a setgid process (it must ptrace it at
# exit): a sanitizer build runs the copy with the group as a supplementary
# one instead; the normal build runs it setgid
if ldd "$SM" 2>/dev/null | grep -q libasan; then
	install -m 755 "$SM" "$SEND"
	as_user() { setpriv --reuid=daemon --regid=daemon --groups="$(getent group sesrelay-drop | cut -d: -f3)" "$@"; }
fi
drops() { find "$DROP" -maxdepth 1 -type f -regextype egrep -regex '.*/[0-9a-f]{42}' | wc -l; }

# --- the daemon sets the directories up (as root, before it drops to nobody)
t_start_relay
[ "$(stat -c '%a %U %G' "$SPOOL")" = "710 nobody sesrelay-drop" ] || t_fail "spool_dir: $(stat -c '%a %U %G' "$SPOOL")"
[ "$(stat -c '%a %U %G' "$DROP")" = "1730 nobody sesrelay-drop" ] || t_fail "maildrop: $(stat -c '%a %U %G' "$DROP")"
# with the daemon up, sendmail talks to it and leaves nothing behind
printf 'Subject: direct\n\nup\n' | as_user "$SEND" -C "$CONF" up@example.net
t_wait_queue_empty 30 || t_fail "direct message not delivered"
[ "$(drops)" -eq 0 ] || t_fail "a direct submission went to the maildrop"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "sesrelayd makes spool_dir 0710 and maildrop 1730, nobody:sesrelay-drop"

# --- daemon down: the message goes into the maildrop, exit 0
n0=$(t_messages)
rc=0; printf 'To: cron@example.net\nSubject: while down\n\nline one\n.dot line\n' |
	as_user "$SEND" -C "$CONF" -t 2>"$T_DIR/err" || rc=$?
[ $rc = 0 ] && grep -q 'message left in the maildrop' "$T_DIR/err" || t_fail "daemon down, spool: rc=$rc $(cat "$T_DIR/err")"
[ "$(drops)" -eq 1 ] || t_fail "maildrop holds $(drops) files"
f=$(find "$DROP" -maxdepth 1 -type f | head -1)
[ "$(stat -c '%a %U' "$f")" = "644 daemon" ] || t_fail "maildrop file: $(stat -c '%a %U' "$f")"
head -1 "$f" | grep -qx 'sesrelay-maildrop 1' || t_fail "maildrop file format: $(head -3 "$f")"
out=$("$SESRELAY" queue -c "$CONF")
grep -q "^1 message in $DROP, waiting for the daemon" <<<"$out" || t_fail "sesrelay queue: $out"
! as_user ls "$DROP" >/dev/null 2>&1 || t_fail "the caller can list the maildrop"
! as_user ls "$SPOOL" >/dev/null 2>&1 || t_fail "the caller can list spool_dir"
! as_user "$SEND" -C "$CONF" -bp >/dev/null 2>&1 || t_fail "the caller lists the queue"
# the same with sendmail_fallback = tempfail: 75, nothing kept
rc=0; printf 'Subject: x\n\nx\n' | as_user "$SEND" -C "$TOP/tempfail.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] && grep -q 'message not sent' "$T_DIR/err" || t_fail "tempfail: rc=$rc $(cat "$T_DIR/err")"
[ "$(drops)" -eq 1 ] || t_fail "tempfail wrote to the maildrop"
# not setgid: no way in, 75
rc=0; printf 'Subject: x\n\nx\n' | setpriv --reuid=daemon --regid=daemon --clear-groups "$SM" -C "$CONF" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] && grep -q 'cannot write to the maildrop\|no maildrop' "$T_DIR/err" || t_fail "without setgid: rc=$rc $(cat "$T_DIR/err")"
# a maildrop others may write to is not used
chmod 1733 "$DROP"
rc=0; printf 'Subject: x\n\nx\n' | as_user "$SEND" -C "$CONF" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] && grep -q 'not safe to use' "$T_DIR/err" || t_fail "world-writable maildrop: rc=$rc $(cat "$T_DIR/err")"
chmod 1730 "$DROP"
t_ok "daemon down: exit 0, the message in the maildrop (0644, the caller's); the caller cannot list it; tempfail, no setgid, unsafe dir: 75"

# --- forged files, as a member of the group could write them
forge() {	# name content
	printf '%b' "$2" >"$DROP/$1"
	chown daemon:sesrelay-drop "$DROP/$1"
	chmod 644 "$DROP/$1"
}
smuggle='sesrelay-maildrop 1\nsender a@example.com\nrcpt v@example.net\n\nSubject: s\r\n\r\nx\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n'
forge 0000000001aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "$smuggle"
forge 0000000002aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'sesrelay-maildrop 1\nsender a@example.com\nrcpt v@example.net\n\nSubject: lf\n\nbare\n.\r\n'
forge 0000000003aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'sesrelay-maildrop 1\nsender a@example.com\nrcpt v@example.net\r\nRCPT TO:<x@example.net>\n\nSubject: e\r\n\r\nx\r\n.\r\n'
forge 0000000004aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'not a maildrop file\n'
forge 0000000005aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'sesrelay-maildrop 1\nsender a@example.com\nrcpt v@example.net\n\nSubject: cut\r\n\r\nno final line\r\n'
# being written (0600): left alone; one abandoned 2 hours ago: removed
forge 0000000006aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'sesrelay-maildrop 1\n'
chmod 600 "$DROP/0000000006aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
forge 0000000007aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 'sesrelay-maildrop 1\n'
chmod 600 "$DROP/0000000007aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
touch -d '2 hours ago' "$DROP/0000000007aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

# --- the daemon starts: it picks up the real message, refuses the forged
t_start_relay
for _ in $(seq 150); do
	[ "$(ls "$DROP"/*.bad 2>/dev/null | wc -l)" -ge 5 ] && [ "$(t_messages)" -ge $((n0 + 1)) ] && break
	sleep 0.1
done
t_wait_queue_empty 30 || t_fail "picked-up message not delivered"
[ "$(t_messages)" -eq $((n0 + 1)) ] || t_fail "fake SES got $(( $(t_messages) - n0 )) messages, want 1: $(cat "$T_DIR/relay.log" | grep maildrop)"
eml=$(ls -t "$MAILDIR"/*.eml | head -1)
env=${eml%.eml}.env
grep -qx 'rcpt=cron@example.net' "$env" && grep -qx 'mail_from=daemon@relay.test' "$env" ||
	t_fail "picked-up envelope: $(cat "$env")"
grep -q $'^Subject: while down\r$' "$eml" && grep -q $'^line one\r$' "$eml" && grep -q $'^\.dot line\r$' "$eml" ||
	t_fail "picked-up message: $(cat "$eml")"
! grep -rq 'smuggled\|evil' "$MAILDIR" || t_fail "a smuggled message reached SES"
[ "$(ls "$DROP"/*.bad | wc -l)" -eq 5 ] || t_fail "forged files kept: $(ls "$DROP")"
[ -e "$DROP/0000000006aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" ] || t_fail "a file being written was taken"
[ ! -e "$DROP/0000000007aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" ] || t_fail "an abandoned file was not removed"
[ "$(drops)" -eq 1 ] || t_fail "maildrop: $(ls "$DROP")"
grep -q 'maildrop .*(uid 1): submitted: 250' "$T_DIR/relay.log" || t_fail "no log of the pickup: $(grep maildrop "$T_DIR/relay.log")"
grep -q '0000000001a.*not sent.*malformed: data after the final line' "$T_DIR/relay.log" || t_fail "smuggling not named: $(grep maildrop "$T_DIR/relay.log")"
grep -q '0000000002a.*malformed: a bare LF' "$T_DIR/relay.log" || t_fail "bare LF not named"
grep -q '0000000003a.*malformed: a bare CR\|0000000003a.*malformed: a control character' "$T_DIR/relay.log" || t_fail "envelope injection not named: $(grep 0000000003 "$T_DIR/relay.log")"
grep -q '0000000004a.*not a maildrop file' "$T_DIR/relay.log" || t_fail "garbage not named"
grep -q '0000000005a.*the file ends before the final line' "$T_DIR/relay.log" || t_fail "truncated file not named"
grep -q '0000000007a.*removed: incomplete' "$T_DIR/relay.log" || t_fail "removal not logged"
t_ok "at start the daemon sends the maildrop message (byte-exact, sender daemon@relay.test); forged files reach nobody, each reason logged"

# --- while it runs (a client that could not reach it): picked up within
# 10 s; written by root with the plain binary
n1=$(t_messages)
printf 'Subject: later\n\nlater\n' | "$SM" -C "$TOP/down.conf" later@example.net 2>"$T_DIR/err" ||
	t_fail "root, daemon unreachable: $(cat "$T_DIR/err")"
for _ in $(seq 250); do [ "$(t_messages)" -gt "$n1" ] && break; sleep 0.1; done
[ "$(t_messages)" -eq $((n1 + 1)) ] || t_fail "a message left while the daemon runs was not picked up in 25 s"
t_ok "a maildrop file left while the daemon runs goes out on its next look"

# --- reload to tempfail: the maildrop closes
sed -i 's|^sendmail_fallback = spool|sendmail_fallback = tempfail|' "$CONF"
kill -HUP "$RELAY_PID"
for _ in $(seq 50); do [ "$(stat -c %a "$DROP")" = 700 ] && break; sleep 0.1; done
[ "$(stat -c %a "$DROP")" = 700 ] || t_fail "reload to tempfail left the maildrop $(stat -c %a "$DROP")"
# a caller whose configuration still says spool finds it shut: 75
rc=0; printf 'Subject: x\n\nx\n' | as_user "$SEND" -C "$TOP/down.conf" a@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] && grep -q 'Permission denied' "$T_DIR/err" || t_fail "closed maildrop: rc=$rc $(cat "$T_DIR/err")"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_ok "SIGHUP to sendmail_fallback = tempfail closes the maildrop (0700)"

# --- a symlink for the maildrop: the daemon refuses to start, names it
rm -rf "$DROP"
ln -s /tmp "$DROP"
sed -i 's|^sendmail_fallback = tempfail|sendmail_fallback = spool|' "$CONF"
rc=0; "$SESRELAYD" -f -c "$CONF" 2>"$T_DIR/start.err" || rc=$?
[ $rc != 0 ] && grep -q 'maildrop: not a directory (a symlink?)' "$T_DIR/start.err" || t_fail "symlinked maildrop: rc=$rc $(cat "$T_DIR/start.err")"
[ "$(stat -c %a /tmp)" = 1777 ] || t_fail "/tmp changed!"
t_ok "a symlinked maildrop: sesrelayd refuses to start, naming it"
