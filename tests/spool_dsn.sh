#!/bin/bash
# DSNs in spool mode (bounce = dsn): a DSN goes to SES like any message
# from null_sender, with the X-SES-* fields of its [sender] section (SES
# refuses delegated sending without them); a message that failed leaves
# the queue only once its DSN is durable, and a DSN that cannot be spooled
# (a full disk) leaves the original in failed/ instead.  The disk-full
# part needs root: the spool is then a 1 MiB tmpfs in a private mount
# namespace.
set -euo pipefail
if [ "$(id -u)" -eq 0 ] && [ -z "${SESRELAY_IN_NS:-}" ] &&
    unshare -m true 2>/dev/null; then
	SESRELAY_IN_NS=1 exec unshare -m bash "$0" "$@"
fi
. "$TESTS_DIR/lib.sh"
command -v swaks >/dev/null || exit 77

queued() {	# from to [swaks options...]: prints the queue id
	local from=$1 to=$2 out
	shift 2
	out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 20 \
		--from "$from" --to "$to" "$@" 2>&1 || true)
	sed -n 's/^<-  250 2.0.0 Ok: queued as \([0-9A-F]\{16\}\)$/\1/p' <<<"$out" | grep . ||
		t_fail "not queued: $(grep '^<-' <<<"$out" | tail -3)"
}

# --- a DSN carries the X-SES-* fields of null_sender's [sender] section
arn=arn:aws:ses:us-east-1:123456789012:identity/bounce.example.org
t_start_fake --quiet
T_MODE=spool t_config "null_sender = bounces@bounce.example.org" \
	"configuration_set = relayset" "message_tags = kind=relay" \
	"" "[queue]" "retry_min = 1s" "retry_max = 1s" \
	"" "[sender bounce.example.org]" "arn = $arn" "configuration_set = dsnset"
t_start_relay
id=$(queued app@example.com unverified-w@example.net --header "Subject: doomed")
t_wait_queue_empty 15 || t_fail "the failed message or its DSN is still queued"
dsn=$(grep -l '^rcpt=app@example.com' "$MAILDIR"/*.env | head -1 || true)
[ -n "$dsn" ] || t_fail "no DSN delivered"
grep -q '^mail_from=bounces@bounce.example.org$' "$dsn" || t_fail "DSN not sent from null_sender"
hdr=$(tr -d '\r' <"${dsn%.env}.eml" | sed '/^$/q')
for f in "X-SES-SOURCE-ARN: $arn" "X-SES-FROM-ARN: $arn" "X-SES-RETURN-PATH-ARN: $arn" \
    "X-SES-CONFIGURATION-SET: dsnset" "X-SES-MESSAGE-TAGS: kind=relay"; do
	grep -qxF "$f" <<<"$hdr" || t_fail "the DSN's header lacks $f: $hdr"
done
! grep -q '^Received:' <<<"$hdr" || t_fail "the DSN has a Received: line, but the relay made it"
grep -q '^Content-Type: multipart/report; report-type=delivery-status;' <<<"$hdr" ||
	t_fail "the DSN is not a multipart/report: $hdr"
t_ok "the DSN carries null_sender's X-SES-* fields"
stop_relay "$RELAY_PID" "$T_DIR/relay.log"
t_stop_fake
rm -rf "$MAILDIR" "$SPOOL"

# --- the disk is full when the DSN is written: the original stays
if [ -z "${SESRELAY_IN_NS:-}" ]; then
	echo "SKIP: a full disk needs root and unshare -m"
	exit 77
fi
t_start_fake --quiet
T_MODE=spool t_config "null_sender = bounces@example.com" \
	"" "[queue]" "retry_min = 2s" "retry_max = 2s"
mkdir -p "$SPOOL"
mount --make-rprivate / 2>/dev/null || true
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$SPOOL"
T_UMOUNT=$SPOOL
t_start_relay
t_stop_fake			# keep it queued while the disk fills up
id=$(queued app@example.com unverified-z@example.net --header "Subject: doomed")
dd if=/dev/zero of="$SPOOL/filler" bs=4k 2>/dev/null || true
t_start_fake --quiet		# SES refuses it (554): a DSN is due
for _ in $(seq 150); do
	grep -q "cannot spool the DSN" "$T_DIR/relay.log" && break
	sleep 0.1
done
sleep 0.5
[ -f "$SPOOL/failed/$id" ] ||
	t_fail "the original is not in failed/ (queue: $(ls "$SPOOL/queue"), failed: $(ls "$SPOOL/failed"))"
[ ! -e "$SPOOL/queue/$id" ] || t_fail "the original is still in queue/"
grep -q "bounce id=$id .*cannot spool the DSN" "$T_DIR/relay.log" &&
	grep -q "failed id=$id .*kept in failed/" "$T_DIR/relay.log" ||
	t_fail "no log lines for the DSN not spooled and the original kept: $(grep "$id" "$T_DIR/relay.log")"
[ "$(t_messages)" -eq 0 ] || t_fail "SES got $(t_messages) messages"
rm -f "$SPOOL/filler"
t_ok "DSN not spooled (disk full): the original is kept in failed/"

stop_relay "$RELAY_PID" "$T_DIR/relay.log"
