#!/bin/bash
# install_layout.sh BUILD_DIR — `make install DESTDIR=...` puts the
# programs, the man pages, the sample configuration and the systemd units
# where an admin looks for them, with ExecStart pointing at the installed
# daemon; the configuration is installed mode 0640 and a second install
# keeps an admin's edited copy.  Run by tests/run (not by `make check`,
# which would run make inside make).
set -euo pipefail
B=$(cd "$1" && pwd)
D=$(mktemp -d "${TMPDIR:-/tmp}/sesrelay-install.XXXXXX")
trap 'rm -rf "$D"' EXIT
fail() { echo "FAIL: install_layout: $*"; exit 1; }

prefix=$(sed -n 's/^prefix = //p' "$B/Makefile")
sysconfdir=$(sed -n 's/^sysconfdir = //p' "$B/Makefile" | sed "s|\${prefix}|$prefix|")
make -C "$B" -s install DESTDIR="$D" >"$D.log" 2>&1 || { cat "$D.log"; rm -f "$D.log"; fail "make install failed"; }
rm -f "$D.log"
for f in "$prefix/sbin/sesrelayd" "$prefix/bin/sesrelay" "$prefix/sbin/sendmail.sesrelay"; do
	[ -x "$D$f" ] || fail "$f is not installed (or not executable)"
done
for f in man5/sesrelay.conf.5 man8/sesrelay.8 man8/sesrelayd.8 man8/sendmail.sesrelay.8; do
	[ -f "$D$prefix/share/man/$f" ] || fail "man page $prefix/share/man/$f is not installed"
done
conf=$sysconfdir/sesrelay/sesrelay.conf
[ -f "$D$conf" ] && [ -f "$D$conf.sample" ] || fail "$conf (and .sample) not installed"
[ "$(stat -c %a "$D$conf")" = 640 ] || fail "$conf is mode $(stat -c %a "$D$conf"), not 640"
"$D$prefix/sbin/sesrelayd" -V | grep -q '^sesrelayd ' || fail "the installed sesrelayd does not run"
# sendmail, mailq, newaliases only with --enable-sendmail-link
if grep -q $'^\t *ln -sf .*sendmail.sesrelay' "$B/Makefile"; then
	for f in sbin/sendmail bin/mailq bin/newaliases; do
		[ "$(readlink "$D$prefix/$f")" = "$prefix/sbin/sendmail.sesrelay" ] ||
			fail "--enable-sendmail-link: $prefix/$f is not a link to sendmail.sesrelay"
	done
else
	[ ! -e "$D$prefix/sbin/sendmail" ] || fail "sbin/sendmail installed without --enable-sendmail-link"
fi
units=$prefix/lib/systemd/system
[ -f "$D$units/sesrelay.service" ] && [ -f "$D$units/sesrelay.socket" ] ||
	fail "the systemd units are not in $units"
grep -qx "ExecStart=$prefix/sbin/sesrelayd -f" "$D$units/sesrelay.service" ||
	fail "ExecStart does not name $prefix/sbin/sesrelayd: $(grep ExecStart "$D$units/sesrelay.service")"
! grep -q '@[a-z]*@' "$D$units/sesrelay.service" || fail "unsubstituted @var@ in the installed unit"
echo "# an admin's edit" >>"$D$conf"
make -C "$B" -s install DESTDIR="$D" >/dev/null 2>&1 || fail "second make install failed"
grep -q "an admin's edit" "$D$conf" || fail "a second install overwrote the admin's $conf"
echo "PASS: install_layout ($(cd "$D" && find . -type f | wc -l) files under DESTDIR, prefix $prefix)"
