#!/bin/bash
# creds_chain.sh — the refreshable credential sources against fake STS,
# container and IMDSv2 endpoints on loopback (tests/fake_aws_creds.py),
# through src/aws_creds_provider.c and the real HTTP client
# (tests/creds_fetch): each source found in the right order, web identity
# token checked, container authorization token read from its file,
# IMDSv2's token dance, short-lived credentials refreshed ahead of expiry,
# a failed refresh keeping the current credentials until they expire,
# then none (mail would wait), then recovery.
set -euo pipefail
. "$TESTS_DIR/lib.sh"

FETCH=$(dirname "$FAKE_SES")/creds_fetch
[ -x "$FETCH" ] || t_fail "no $FETCH (make check builds it)"
unset AWS_REGION AWS_DEFAULT_REGION AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID \
	AWS_SECRET_ACCESS_KEY AWS_PROFILE AWS_SHARED_CREDENTIALS_FILE \
	AWS_CONFIG_FILE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE \
	AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI \
	AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \
	AWS_EC2_METADATA_DISABLED AWS_EC2_METADATA_SERVICE_ENDPOINT \
	AWS_ENDPOINT_URL_STS CREDENTIALS_DIRECTORY
export HOME=$T_DIR/home
mkdir -p "$HOME"

ROLE=arn:aws:iam::123456789012:role/sesrelay
STATE=$T_DIR/creds-state.json
KEYS=$T_DIR/keys.json
LOG=$T_DIR/creds.log
printf 'eyJhbGciOiJSUzI1NiJ9.fake-projected-sa-token.sig\n' >"$T_DIR/sa-token"
printf 'ecs-auth-token-1234\n' >"$T_DIR/ecs-token"
echo '{}' >"$STATE"
/usr/bin/python3 "$TESTS_DIR/fake_aws_creds.py" --portfile "$T_DIR/creds.port" \
	--state "$STATE" --keys-file "$KEYS" --role-arn "$ROLE" \
	--token-file "$T_DIR/sa-token" --auth-token ecs-auth-token-1234 \
	--log "$LOG" 2>>"$T_DIR/creds-fake.log" &
T_PIDS+=($!)
t_wait_file "$T_DIR/creds.port" || t_fail "fake_aws_creds did not start: $(cat "$T_DIR/creds-fake.log")"
CP=$(cat "$T_DIR/creds.port")
EP=http://127.0.0.1:$CP

CONF=$T_DIR/c.conf
printf '[ses]\nregion = us-east-1\n' >"$CONF"
state() { printf '%s\n' "$1" >"$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"; }
count() { grep -c "\"op\": \"$1\", \"status\": ${2:-200}" "$LOG" 2>/dev/null || true; }
# fetch N SECONDS [VAR=value...]: run creds_fetch with those variables
fetch() {
	local n=$1 s=$2
	shift 2
	env "$@" "$FETCH" "$CONF" "$n" "$s" >"$T_DIR/out" 2>"$T_DIR/err" || return $?
}
no_secret() {
	/usr/bin/python3 - "$KEYS" "$@" <<'PY'
import json, sys
keys = json.load(open(sys.argv[1]))
for f in sys.argv[2:]:
    text = open(f).read()
    for k in keys.values():
        for s in (k["secret"], k["token"]):
            if s in text:
                sys.exit("secret in " + f)
PY
}
WEB=(AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE=$T_DIR/sa-token AWS_ENDPOINT_URL_STS=$EP)
ECS=(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/creds/task-1 SESRELAY_TEST_CONTAINER_HOST=127.0.0.1:$CP AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$T_DIR/ecs-token)
IMDS=(AWS_EC2_METADATA_SERVICE_ENDPOINT=$EP)

# ---- each source, and the order ----
fetch 1 10 "${WEB[@]}" "${ECS[@]}" "${IMDS[@]}" || t_fail "web identity: $(cat "$T_DIR/out" "$T_DIR/err")"
grep -q "^ok ASIAFAKE[0-9]* [0-9]* web identity $ROLE" "$T_DIR/out" || t_fail "web identity: $(cat "$T_DIR/out")"
[ "$(count sts)" = 1 ] && [ "$(count ecs)" = 0 ] && [ "$(count imds-token)" = 0 ] || t_fail "web identity did not come first: $(cat "$LOG")"
t_ok "web identity (AWS_ROLE_ARN + token file) beats the container endpoint and IMDS; STS checked role and token"

fetch 1 10 "${ECS[@]}" "${IMDS[@]}" || t_fail "container: $(cat "$T_DIR/out" "$T_DIR/err")"
grep -q "^ok ASIAFAKE[0-9]* [0-9]* container endpoint http://127.0.0.1:$CP/creds/task-1" "$T_DIR/out" || t_fail "container: $(cat "$T_DIR/out")"
[ "$(count ecs)" = 1 ] && [ "$(count imds-token)" = 0 ] || t_fail "container did not come before IMDS: $(cat "$LOG")"
# the authorization token file is read at each fetch: a wrong one is refused
printf 'wrong\n' >"$T_DIR/ecs-token"
fetch 1 3 "${ECS[@]}" && t_fail "a wrong container token was accepted"
grep -q "^fail container endpoint.*HTTP 401" "$T_DIR/out" || t_fail "wrong container token: $(cat "$T_DIR/out")"
printf 'ecs-auth-token-1234\n' >"$T_DIR/ecs-token"
fetch 1 10 AWS_CONTAINER_CREDENTIALS_FULL_URI=$EP/creds/full AWS_CONTAINER_AUTHORIZATION_TOKEN=ecs-auth-token-1234 ||
	t_fail "full URI: $(cat "$T_DIR/out" "$T_DIR/err")"
rc=0; fetch 1 3 AWS_CONTAINER_CREDENTIALS_FULL_URI=http://192.0.2.1/creds || rc=$?
[ $rc = 3 ] && grep -q "loopback or link-local" "$T_DIR/out" || t_fail "a plain-http full URI to a routable host was not refused ($rc): $(cat "$T_DIR/out")"
t_ok "container endpoint (relative URI with token file, full URI with token) before IMDS; a remote http full URI refused"

fetch 1 10 "${IMDS[@]}" || t_fail "IMDS: $(cat "$T_DIR/out" "$T_DIR/err")"
grep -q "^ok ASIAFAKE[0-9]* [0-9]* instance metadata (IMDSv2)" "$T_DIR/out" || t_fail "IMDS: $(cat "$T_DIR/out")"
[ "$(count imds-token)" = 1 ] && [ "$(count imds-role)" = 1 ] && [ "$(count imds-creds)" = 1 ] || t_fail "IMDSv2 steps: $(cat "$LOG")"
rc=0; fetch 1 3 AWS_EC2_METADATA_DISABLED=true || rc=$?
[ $rc = 3 ] && grep -q "no SES credentials.*AWS_EC2_METADATA_DISABLED" "$T_DIR/out" || t_fail "nothing at all: $rc $(cat "$T_DIR/out")"
t_ok "IMDSv2: token PUT, role, credentials; nothing anywhere is a clear error naming what was tried"

# static keys in the environment beat every HTTP source
fetch 1 5 AWS_ACCESS_KEY_ID=$EXAMPLE_KEY_ID AWS_SECRET_ACCESS_KEY=$EXAMPLE_SECRET "${WEB[@]}" "${IMDS[@]}" || t_fail "env: $(cat "$T_DIR/out")"
grep -q "^ok $EXAMPLE_KEY_ID 0 environment" "$T_DIR/out" || t_fail "env: $(cat "$T_DIR/out")"
# a profile with role_arn + web_identity_token_file (config file)
printf '[profile relay]\nrole_arn = %s\nweb_identity_token_file = %s\n' "$ROLE" "$T_DIR/sa-token" >"$T_DIR/awsconfig"
fetch 1 10 AWS_CONFIG_FILE=$T_DIR/awsconfig AWS_PROFILE=relay AWS_ENDPOINT_URL_STS=$EP "${IMDS[@]}" || t_fail "profile: $(cat "$T_DIR/out" "$T_DIR/err")"
grep -q "^ok ASIAFAKE.* web identity $ROLE" "$T_DIR/out" || t_fail "profile web identity: $(cat "$T_DIR/out")"
# a bad web identity token: STS's error is reported
printf 'stale\n' >"$T_DIR/other-token"
fetch 1 3 AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE=$T_DIR/other-token AWS_ENDPOINT_URL_STS=$EP && t_fail "a wrong token was accepted"
grep -q "^fail web identity.*InvalidIdentityToken" "$T_DIR/out" || t_fail "wrong token: $(cat "$T_DIR/out")"
t_ok "environment keys beat HTTP sources; a role_arn + web_identity_token_file profile; STS's InvalidIdentityToken reported"

# ---- refresh ahead of expiry ----
# 6 s credentials, 4 s margin: refreshed every ~2 s, always valid
state '{"lifetime": 6}'
fetch 4 20 "${WEB[@]}" SESRELAY_TEST_REFRESH_MARGIN=4 || t_fail "refresh: $(cat "$T_DIR/out" "$T_DIR/err")"
[ "$(grep -c '^ok ' "$T_DIR/out")" = 4 ] || t_fail "refresh: $(cat "$T_DIR/out")"
[ "$(grep '^ok ' "$T_DIR/out" | awk '{print $2}' | sort -u | wc -l)" = 4 ] || t_fail "the keys did not rotate: $(cat "$T_DIR/out")"
! grep -q '^current none' "$T_DIR/out" || t_fail "a moment without credentials during refresh: $(cat "$T_DIR/out")"
t_ok "short-lived credentials rotate ahead of expiry, never a moment without"

# ---- a failed refresh keeps the current ones until they expire ----
state '{"lifetime": 5}'
( sleep 2; printf '{"lifetime": 5, "fail": {"sts": "500"}}\n' >"$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"
  sleep 7; printf '{"lifetime": 30}\n' >"$STATE.tmp" && mv -f "$STATE.tmp" "$STATE" ) &
T_PIDS+=($!)
fetch 2 25 "${WEB[@]}" SESRELAY_TEST_REFRESH_MARGIN=3 || t_fail "failed refresh: $(cat "$T_DIR/out" "$T_DIR/err")"
first=$(grep -m1 '^ok ' "$T_DIR/out" | awk '{print $2}')
grep -q '^fail web identity.*STS HTTP 500' "$T_DIR/out" || t_fail "no failed refresh seen: $(cat "$T_DIR/out")"
# after the failure the first key is still current, then none, then a new one
awk -v k="$first" '/^fail/{f=1} f && $1=="current" && $2==k {a=1} a && $0=="current none" {b=1} b && /^ok /{c=1} END{exit !(a&&b&&c)}' "$T_DIR/out" ||
	t_fail "failed refresh: expected the old key kept, then none, then a new one: $(cat "$T_DIR/out")"
grep -q "fetching from web identity.*failed.*current ones stay in use" "$T_DIR/err" || t_fail "the failure is not logged: $(cat "$T_DIR/err")"
no_secret "$T_DIR/out" "$T_DIR/err" "$LOG"
t_ok "a failed refresh keeps the current credentials until they expire, then none (mail waits), then recovers; no secret printed"
