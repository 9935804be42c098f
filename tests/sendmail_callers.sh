#!/bin/bash
# sendmail.sesrelay driven by the real callers that expect /usr/sbin/sendmail:
# cron's invocation, bsd-mailx, PHP's mail(), git send-email.
set -euo pipefail
. "$TESTS_DIR/sendmail_lib.sh"
sm_setup
n=0

# --- cron: Debian cron runs "sendmail -FCronDaemon -i -B8BITMIME -oem USER"
# with its own header; the user name is qualified with sendmail_domain
n=$((n + 1))
printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> run-parts\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\nhello from cron\n' |
	"$SM" -C "$CONF" -FCronDaemon -i -B8BITMIME -oem root || t_fail "cron-style call: exit $?"
sm_wait $n
grep -qx 'rcpt=root@example.com' "$(last_env)" || t_fail "cron: recipient: $(cat "$(last_env)")"
grep -qx "mail_from=$(id -un)@example.com" "$(last_env)" || t_fail "cron: sender: $(cat "$(last_env)")"
grep -q '^hello from cron' "$(last_eml)" || t_fail "cron: body lost"
grep -q '^Message-ID: <.*@example.com>' "$(last_eml)" || t_fail "cron: no Message-ID added"
no_bare_lf "$(last_eml)"
t_ok "cron's sendmail call delivers to root@example.com"

# --- cron-style shell: echo | sendmail -t
n=$((n + 1))
{ echo "To: ops@example.net"; echo "Subject: disk"; echo; echo "df says 91%"; } |
	"$SM" -C "$CONF" -t || t_fail "echo | sendmail -t: exit $?"
sm_wait $n
grep -qx 'rcpt=ops@example.net' "$(last_env)" || t_fail "-t: no recipient"
grep -q '^df says 91%' "$(last_eml)" || t_fail "-t: body lost"
t_ok "echo | sendmail -t"

# --- bsd-mailx: sendmail set in a MAILRC file; mail calls it with -i -t
if [ -x /usr/bin/bsd-mailx ] || [ -x /usr/bin/mail ]; then
	MAILX=/usr/bin/bsd-mailx; [ -x "$MAILX" ] || MAILX=/usr/bin/mail
	n=$((n + 1))
	printf 'set sendmail=%s\n' "$T_DIR/bin/sendmail" >"$T_DIR/mailrc"
	printf 'report line 1\nUTF-8: caf\xc3\xa9\n' |
		MAILRC=$T_DIR/mailrc "$MAILX" -s "Report caf$(printf '\xc3\xa9')" -c cc@example.net to@example.net ||
		t_fail "mail(1) failed: $?"
	sm_wait $n
	grep -qx 'rcpt=to@example.net' "$(last_env)" || t_fail "mailx: To: $(cat "$(last_env)")"
	grep -qx 'rcpt=cc@example.net' "$(last_env)" || t_fail "mailx: Cc not a recipient"
	grep -q "^Subject: Report caf$(printf '\xc3\xa9')" "$(last_eml)" || t_fail "mailx: UTF-8 Subject changed"
	grep -q "^UTF-8: caf$(printf '\xc3\xa9')" "$(last_eml)" || t_fail "mailx: 8-bit body changed"
	t_ok "bsd-mailx (MAILRC sendmail=) with a UTF-8 subject and Cc"
else
	[ "${CI:-}" != true ] || t_fail "bsd-mailx not installed"
	echo "skip: no bsd-mailx"
fi

# --- PHP mail(): sendmail_path with -t -i, extra headers, a "." line
if command -v php >/dev/null; then
	n=$((n + 1))
	php -n -d "sendmail_path=$SM -C $CONF -t -i" -r '
		$ok = mail("web@example.net", "Order #42",
		    "Thanks.\n.\nA dot line above.\n",
		    "From: shop@example.com\r\nBcc: audit@example.net");
		exit($ok ? 0 : 1);' || t_fail "php mail() returned false"
	sm_wait $n
	env=$(last_env) eml=$(last_eml)
	grep -qx 'rcpt=web@example.net' "$env" || t_fail "php: To: $(cat "$env")"
	grep -qx 'rcpt=audit@example.net' "$env" || t_fail "php: Bcc not a recipient"
	! grep -qi '^Bcc:' "$eml" || t_fail "php: Bcc header not removed"
	grep -q '^From: shop@example.com' "$eml" || t_fail "php: From lost"
	[ "$(grep -c '^From:' "$eml")" -eq 1 ] || t_fail "php: From added twice"
	grep -qx $'.\r' "$eml" || t_fail "php: the '.' line was lost despite -i"
	grep -q '^A dot line above' "$eml" || t_fail "php: text after the dot lost"
	t_ok "PHP mail() with sendmail_path='... -t -i', Bcc removed, dot kept"

	# a failing sendmail makes mail() return false (daemon down below)
else
	[ "${CI:-}" != true ] || t_fail "php-cli not installed"
	echo "skip: no php"
fi

# --- git send-email --sendmail-cmd
if git send-email -h >/dev/null 2>&1 || git send-email --help >/dev/null 2>&1; then
	n=$((n + 1))
	repo=$T_DIR/repo
	git init -q "$repo"
	echo "int x;" >"$repo/x.c"
	git -C "$repo" add x.c
	git -C "$repo" -c user.name=Dev -c user.email=dev@example.com commit -q -m "first: the patch subject"
	git -C "$repo" format-patch -q -1 -o "$T_DIR/patches"
	(cd "$repo" && git -c user.name=Dev -c user.email=dev@example.com send-email \
		--sendmail-cmd="$SM -C $CONF" --to=list@example.net --from='Dev <dev@example.com>' \
		--envelope-sender=auto --confirm=never --quiet --no-validate "$T_DIR"/patches/*.patch) >"$T_DIR/git.out" 2>&1 ||
		t_fail "git send-email failed: $(cat "$T_DIR/git.out")"
	sm_wait $n
	grep -qx 'rcpt=list@example.net' "$(last_env)" || t_fail "git: recipient: $(cat "$(last_env)")"
	grep -qx 'mail_from=dev@example.com' "$(last_env)" || t_fail "git: sender: $(cat "$(last_env)")"
	grep -q '^Subject: \[PATCH\] first: the patch subject' "$(last_eml)" || t_fail "git: subject"
	t_ok "git send-email --sendmail-cmd"
else
	[ "${CI:-}" != true ] || t_fail "git send-email not installed"
	echo "skip: no git send-email"
fi

# --- the daemon down: callers see the failure (PHP: mail() returns false)
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
rc=0
echo hi | "$SM" -C "$CONF" down@example.net 2>"$T_DIR/err" || rc=$?
[ $rc = 75 ] || t_fail "daemon down: exit $rc, expected 75 (EX_TEMPFAIL)"
grep -q "sesrelayd is not reachable at unix:$SOCK" "$T_DIR/err" || t_fail "daemon down: message: $(cat "$T_DIR/err")"
if command -v php >/dev/null; then
	out=$(php -n -d "sendmail_path=$SM -C $CONF -t -i" -r 'var_export(mail("x@example.net", "s", "b"));' 2>/dev/null)
	[ "$out" = false ] || t_fail "php mail() with the daemon down returned $out"
fi
t_ok "daemon down: exit 75 with a clear message; mail() returns false"
