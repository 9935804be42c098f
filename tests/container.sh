#!/bin/bash
# container.sh BUILD_DIR — the container image, built and used as a user
# would: the Dockerfile is built with podman from a Debian 12 base that
# tools/container-base bootstraps from Debian's mirror (no registry); the
# image has no shell, runs as uid 10025, and `sesrelayd -V` works in it.
# Then it runs as a sidecar on the host's loopback beside the fake SES
# (tests/fake_ses from BUILD_DIR), configured by SESRELAY_* variables and
# mounted secret files: swaks's mail reaches the fake (passthrough), the
# image's HEALTHCHECK passes, logs are JSON lines on stderr; in spool mode
# with the spool on a volume, the container is killed (SIGKILL) during a
# load and started again: every message that got a 250 reaches the fake.
# SIGTERM (`podman stop`) drains and exits 0.  Prints the image size.
#
# Run by tests/run once (not by `make check`, which runs twice); needs
# root, podman and mmdebstrap (tools/debian-packages).  Exit 77 (skip)
# with a reason when podman cannot run here; tests/run counts that as a
# failure in CI.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$top/build}" && pwd)
export FAKE_SES=$B/tests/fake_ses SESRELAYD=$B/sesrelayd SESRELAY=$B/sesrelay
export GEN_CERTS=$top/tests/gen-certs.sh TESTS_DIR=$top/tests
. "$TESTS_DIR/lib.sh"

skip() { echo "SKIP: container: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (rootful podman, mmdebstrap --mode=root)"
for c in podman mmdebstrap swaks; do
	command -v "$c" >/dev/null || skip "$c is not installed (tools/debian-packages)"
done
[ -x "$FAKE_SES" ] || t_fail "$FAKE_SES not built (run tools/build $B first)"

IMAGE=localhost/sesrelay:test-$$
NAME=sesrelay-test-$$
KUBE=$T_DIR/pod.yaml
KUBEVOL=sesrelay-spool-test-$$
dangling_before=$(podman images -q --filter dangling=true | sort)
cleanup_containers() {
	podman rm -f -v -t 0 "$NAME" >/dev/null 2>&1 || true
	[ ! -f "$KUBE" ] || podman kube down "$KUBE" >/dev/null 2>&1 || true
	podman volume rm -f "$KUBEVOL" >/dev/null 2>&1 || true
	podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
	# the build stage's images this build left behind, not others'
	comm -13 <(echo "$dangling_before") <(podman images -q --filter dangling=true | sort) |
		xargs -r podman rmi -f >/dev/null 2>&1 || true
}
trap 'cleanup_containers; t_cleanup' EXIT

# --- the base: bootstrapped once, cached (tools/container-base)
BASE=$("$top/tools/container-base") || t_fail "tools/container-base failed"

# --- how containers run here.  A plain `podman run` is the normal case.
# Some machines need help, and we say so: crun refuses a host whose
# cgroup v2 hierarchy holds controllers beside v1 ones ("hybrid mode"),
# where runc works; and a host without CAP_SYS_RESOURCE cannot give a
# container podman's default limits of 1048576 open files.
PODMAN=(podman)
RUNOPT=()
if ! podman run --rm --network host "$BASE" true >"$T_DIR/probe.out" 2>&1; then
	if grep -q 'setrlimit\|rlimit' "$T_DIR/probe.out"; then
		RUNOPT=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
	fi
	if ! podman run --rm --network host "${RUNOPT[@]}" "$BASE" true >"$T_DIR/probe.out" 2>&1; then
		grep -q 'hybrid mode' "$T_DIR/probe.out" && command -v runc >/dev/null &&
			PODMAN=(podman --runtime runc)
		RUNOPT=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
		"${PODMAN[@]}" run --rm --network host "${RUNOPT[@]}" "$BASE" true >"$T_DIR/probe.out" 2>&1 ||
			skip "podman cannot run a container here: $(tail -1 "$T_DIR/probe.out")"
	fi
	echo "note: this host needs: ${PODMAN[*]} run ${RUNOPT[*]}"
	# the same for `podman kube play`, which takes no such options
	{
		echo '[containers]'
		echo 'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]'
		[ "${#PODMAN[@]}" -eq 1 ] || printf '[engine]\nruntime = "runc"\n'
	} >"$T_DIR/containers.conf"
	export CONTAINERS_CONF=$T_DIR/containers.conf
fi
pod() { "${PODMAN[@]}" "$@"; }

# --- build: exactly the Dockerfile's documented podman command
start=$(date +%s)
pod build --format docker --network host "${RUNOPT[@]}" --build-arg BASE="$BASE" \
	-t "$IMAGE" "$top" >"$T_DIR/build.log" 2>&1 ||
	t_fail "podman build failed: $(tail -20 "$T_DIR/build.log")"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $((size / 1000)) kB, built in $(( $(date +%s) - start )) s (the base: $BASE)"
[ "$size" -lt 60000000 ] || t_fail "image is $size bytes: more than the runtime files?"
[ "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 10025:10025 ] ||
	t_fail "the image does not run as uid 10025"
podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q '"/usr/bin/sesrelay","health"' ||
	t_fail "no HEALTHCHECK in the image (built without --format docker?)"
out=$(pod run --rm "${RUNOPT[@]}" "$IMAGE" -V 2>&1) || t_fail "sesrelayd -V in the image: $out"
for lib in 'sesrelayd [0-9]' 'OpenSSL 3' 'libevent 2' 'libcurl ' 'jansson ' 'libsasl2 '; do
	grep -q "^$lib" <<<"$out" || t_fail "sesrelayd -V in the image lacks '$lib': $out"
done
if pod run --rm "${RUNOPT[@]}" --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
	t_fail "the image has a shell"
fi
t_ok "image built from the Debian mirror: no shell, uid 10025, sesrelayd -V lists its libraries"

# --- a sidecar beside the fake SES, on the host's loopback
t_start_fake --quiet
SEC=$T_DIR/secrets
mkdir -m 755 "$SEC"
printf '%s\n' "$EXAMPLE_SECRET" >"$SEC/ses"
chown 10025:10025 "$SEC/ses"; chmod 600 "$SEC/ses"
cp "$CERTS/ca.pem" "$SEC/ca.pem"; chmod 644 "$SEC/ca.pem"
RELAY_PORT=$(t_free_port)
METRICS_PORT=$(t_free_port)
sidecar() {	# sidecar [podman run options...]: start $NAME, wait for SMTP
	pod run -d --name "$NAME" --network host "${RUNOPT[@]}" \
		--health-interval disable --stop-timeout 45 \
		-v "$SEC/ses:/run/secrets/ses:ro" -v "$SEC/ca.pem:/run/secrets/ca.pem:ro" \
		-e SESRELAY_RELAY_LISTEN="127.0.0.1:$RELAY_PORT" \
		-e SESRELAY_RELAY_HOSTNAME=sidecar.test \
		-e SESRELAY_RELAY_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
		-e SESRELAY_SES_ENDPOINT="127.0.0.1:$FAKE_PORT" \
		-e SESRELAY_SES_CA_FILE=/run/secrets/ca.pem \
		-e SESRELAY_SES_ACCESS_KEY_ID="$EXAMPLE_KEY_ID" \
		-e SESRELAY_SES_SECRET_ACCESS_KEY_FILE=/run/secrets/ses \
		-e AWS_REGION=us-east-1 \
		"$@" "$IMAGE" >/dev/null 2>"$T_DIR/run.err" ||
		t_fail "podman run failed: $(cat "$T_DIR/run.err")"
	t_wait_port "$RELAY_PORT" 20 || t_fail "the sidecar does not listen: $(podman logs "$NAME" 2>&1 | tail -5)"
}
send() {	# send TO: swaks through the sidecar; fails unless 250
	local out
	out=$(swaks --server 127.0.0.1 --port "$RELAY_PORT" --timeout 30 \
		--from app@example.com --to "$1" --header "Subject: container $1" 2>&1) || true
	grep -q '^<-  250 ' <<<"$out" || t_fail "not accepted: $(grep '^<-' <<<"$out" | tail -2)"
}
exited_ok() {	# exited_ok: podman stop (SIGTERM) ends the container with 0
	pod stop -t 45 "$NAME" >/dev/null 2>&1
	local rc
	rc=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
	[ "$rc" = 0 ] || t_fail "sesrelayd exited $rc after SIGTERM: $(podman logs "$NAME" 2>&1 | tail -5)"
}

sidecar
send one@example.net
[ "$(t_messages)" -eq 1 ] || t_fail "the message did not reach the fake SES"
grep -q '^rcpt=one@example.net' "$MAILDIR"/*.env || t_fail "wrong recipient at the fake"
pod healthcheck run "$NAME" >"$T_DIR/health.out" 2>&1 ||
	t_fail "the image's HEALTHCHECK fails: $(cat "$T_DIR/health.out")"
# logs go to a file first: `podman logs | grep -q` under pipefail fails
# when grep exits early and podman gets SIGPIPE
podman logs "$NAME" >"$T_DIR/ctr.log" 2>&1
grep -q '^{.*"msg":"sesrelayd [^ ]* ready: mode passthrough' "$T_DIR/ctr.log" ||
	t_fail "no JSON 'ready' line in the container's log: $(tail -3 "$T_DIR/ctr.log")"
grep -q 'credentials: secret_access_key_file /run/secrets/ses' "$T_DIR/ctr.log" ||
	t_fail "the mounted secret file was not used"
! grep -qF "$EXAMPLE_SECRET" "$T_DIR/ctr.log" || t_fail "the secret is in the log"
exited_ok
pod rm -v "$NAME" >/dev/null 2>&1
t_ok "passthrough sidecar: swaks -> container -> fake SES; HEALTHCHECK passes; JSON logs; SIGTERM exits 0"

# --- spool mode on a volume: SIGKILL during a load, start again
VOL=$T_DIR/spool
mkdir "$VOL"; chown 10025:10025 "$VOL"; chmod 700 "$VOL"
spool_sidecar() {
	sidecar -e SESRELAY_RELAY_MODE=spool -e SESRELAY_QUEUE_RETRY_MIN=1s \
		-e SESRELAY_QUEUE_RETRY_MAX=2s -v "$VOL:/var/spool/sesrelay"
}
spool_sidecar
ACK=$T_DIR/acked
: >"$ACK"
/usr/bin/python3 "$TESTS_DIR/spool_load.py" "$RELAY_PORT" "$ACK" \
	--count 600 --workers 4 --seconds 30 >"$T_DIR/load.out" 2>&1 &
LOAD=$!
T_PIDS+=("$LOAD")
for _ in $(seq 100); do [ "$(wc -l <"$ACK")" -ge 30 ] && break; sleep 0.1; done
pod kill -s KILL "$NAME" >/dev/null
pod wait "$NAME" >/dev/null 2>&1 || true
before=$(sort -u "$ACK" | wc -l)
queued=$(find "$VOL/queue" -type f ! -name '*.state' 2>/dev/null | wc -l)
pod rm -v "$NAME" >/dev/null 2>&1
spool_sidecar			# a new container, the same volume
wait "$LOAD" || true
cat "$T_DIR/load.out"
acked=$(sort -u "$ACK" | wc -l)
[ "$acked" -gt "$before" ] || t_fail "nothing acknowledged after the restart"
SPOOL=$VOL
t_wait_queue_empty 60 || t_fail "$(t_queue_left) messages still queued: $(podman logs "$NAME" 2>&1 | tail -3)"
grep -h '^X-Test-Seq: ' "$MAILDIR"/*.eml | tr -d '\r' | awk '{print $2}' | sort -n >"$T_DIR/arrived"
missing=$(comm -23 <(sort -u "$ACK") <(sort -u "$T_DIR/arrived") | wc -l)
dups=$(uniq -d "$T_DIR/arrived" | wc -l)
echo "SIGKILL with $before acknowledged ($queued still in the spool volume); acknowledged=$acked arrived=$(wc -l <"$T_DIR/arrived") lost=$missing duplicates=$dups"
[ "$missing" -eq 0 ] || t_fail "$missing acknowledged messages lost across the container's SIGKILL"
exited_ok
t_ok "spool volume: container killed during load and started again, nothing acknowledged lost ($dups duplicates)"

# --- examples/podman-pod.yaml as written, but for the image's name and the
# secret's path on this host: the pod starts, its relay is ready and
# healthy (sesrelay health run in the pod, SMTP and /healthz)
sed -e "s|localhost/sesrelay:0.1.0|$IMAGE|" -e "s|/etc/sesrelay/ses-secret|$SEC/ses|" \
	-e "s|claimName: sesrelay-spool|claimName: $KUBEVOL|" "$top/examples/podman-pod.yaml" >"$KUBE"
podman volume create "$KUBEVOL" >/dev/null
podman kube play "$KUBE" >"$T_DIR/kube.out" 2>&1 || t_fail "podman kube play examples/podman-pod.yaml: $(tail -3 "$T_DIR/kube.out")"
ctr=app-with-sesrelay-sesrelay
for _ in $(seq 100); do
	podman logs "$ctr" >"$T_DIR/pod.log" 2>&1
	grep -q '"msg":"sesrelayd [^ ]* ready: mode spool' "$T_DIR/pod.log" && break
	sleep 0.1
done
grep -q '"msg":"sesrelayd [^ ]* ready: mode spool' "$T_DIR/pod.log" ||
	t_fail "the pod's relay is not ready: $(tail -3 "$T_DIR/pod.log")"
out=$(podman exec "$ctr" /usr/bin/sesrelay health 2>&1) || t_fail "sesrelay health in the pod: $out"
grep -q '^smtp 127.0.0.1:2525: 220 ' <<<"$out" && grep -q '^http 127.0.0.1:9925/healthz: 200 ok' <<<"$out" ||
	t_fail "sesrelay health in the pod: $out"
podman kube down "$KUBE" >/dev/null 2>&1 || t_fail "podman kube down failed"
t_ok "examples/podman-pod.yaml: podman kube play starts the relay in a pod; sesrelay health passes there"
