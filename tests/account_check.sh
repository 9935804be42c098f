#!/bin/bash
# account_check.sh — `sesrelay check`'s account section against the fake
# SES API v2 (tests/fake_ses_api.py, every signature checked by botocore):
# one state after another (production, sandbox, paused, shut down, quota
# used up or nearly, unverified sender, identity missing, DKIM pending,
# AccessDenied for each IAM action, throttled, internal error, API down),
# each problem one line saying what to do, the exit status, and --json.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
/usr/bin/python3 -c 'import botocore' 2>/dev/null || { echo "SKIP: python3-botocore not installed"; exit 77; }
PY=/usr/bin/python3
export LC_ALL=C

t_start_fake
t_start_api
t_config \
	"[sender app@example.com]" \
	"[sender example.org]" \
	"[sender billing@example.org]" \
	"from_arn = arn:aws:ses:us-east-1:123456789012:identity/example.org" \
	"[sender partner.example]" \
	"source_arn = arn:aws:ses:us-east-1:210987654321:identity/partner.example"

GOOD_IDS='"identities": {"example.com": {}, "example.org": {}, "app@example.com": {"verified": false}}'
# check STATE: run sesrelay check with the API in STATE; sets OUT and RC
check() {
	t_api_state "$1"
	RC=0
	timeout 60 "$SESRELAY" check -c "$CONF" "${@:2}" >"$T_DIR/check.out" 2>&1 || RC=$?
	OUT=$(cat "$T_DIR/check.out")
}
# has STEP STATUS ERE: a line of the report
has() {
	grep -qE "^$1 +$2 +.*$3" "$T_DIR/check.out" ||
		t_fail "no '$1 $2 ...$3' line (exit $RC):
$OUT"
}

check "{\"max_24h\": 50000, \"max_rate\": 14, \"sent_24h\": 12500, $GOOD_IDS}"
[ $RC = 0 ] || t_fail "healthy account: exit $RC:
$OUT"
has result ok "SES accepted"
has api ok "127.0.0.1:$API_PORT .*signed for us-east-1.*secret_access_key_file"
has account ok "production access"
has sending ok "sending enabled"
has enforcement ok HEALTHY
has quota ok "12500 of 50000 sent in the last 24 hours \(25\.0 %\)"
has rate warn "max send rate 14 per second, but max_send_rate is 0 \(no limit\).*set max_send_rate = auto"
has identity ok "app@example.com \(\[sender app@example.com\]\): sending allowed by the verified domain example.com"
has identity ok "example.org \(\[sender example.org\]\): verified"
has identity ok "example.org \(from_arn of \[sender billing@example.org\]\): verified"
has identity warn "partner.example \(source_arn of \[sender partner.example\]\): not an identity of this account; if it belongs to account 210987654321"
has dkim ok "example.com: DKIM SUCCESS, signing"
! grep -q FAIL "$T_DIR/check.out" || t_fail "a FAIL for a healthy account: $OUT"
[ "$(t_api_count GetEmailIdentity 200)" -ge 3 ] || t_fail "identities not looked up: $(cat "$API_LOG")"
grep -q '"path": "/v2/email/identities/app%40example.com", "status": 200' "$API_LOG" ||
	t_fail "the address identity was not signed right: $(grep app "$API_LOG")"
t_ok "healthy account: every step ok, the identities looked up (signed), exit 0"

check "{\"sandbox\": true, \"max_24h\": 200, \"max_rate\": 1, \"sent_24h\": 170, $GOOD_IDS}"
[ $RC = 0 ] || t_fail "sandbox alone is a warning: exit $RC"
has account warn "account is in the sandbox: only verified recipients receive mail; request production access"
has quota warn "170 of 200 sent in the last 24 hours \(85\.0 %\); request a higher quota"
t_ok "sandbox and a quota 85 % used: warnings saying what to do"

check "{\"sending_enabled\": false, $GOOD_IDS}"
[ $RC = 1 ] || t_fail "paused: exit $RC"
has sending FAIL "sending is paused for the account \(SendingEnabled false\)"
check "{\"enforcement\": \"SHUTDOWN\", $GOOD_IDS}"
[ $RC = 1 ] || t_fail "shutdown: exit $RC"
has enforcement FAIL "SHUTDOWN: AWS stopped the account"
check "{\"max_24h\": 200, \"sent_24h\": 200, $GOOD_IDS}"
[ $RC = 1 ] || t_fail "quota used up: exit $RC"
has quota FAIL "daily quota used up: 200 of 200 in the last 24 hours"
check "{\"max_24h\": -1, \"sent_24h\": 99, $GOOD_IDS}"
has quota ok "no daily quota \(Max24HourSend -1\); 99 sent"
t_ok "paused, shut down, quota used up: FAIL and exit 1; unlimited quota ok"

check '{"identities": {"example.com": {"verified": false}, "example.org": {"dkim": "PENDING"}}}'
[ $RC = 1 ] || t_fail "unverified sender: exit $RC"
has identity FAIL "app@example.com \(\[sender app@example.com\]\): not an identity of this account in this region, nor is its domain example.com \(not verified for sending \(verification PENDING\)\).*verify the domain"
has dkim warn "example.org: DKIM PENDING: mail is not DKIM-signed.*publish the CNAME records"
check '{"identities": {"example.com": {}}}'
has identity FAIL "example.org \(\[sender example.org\]\): not an identity of this account in this region: SES refuses this sender; verify it in SES us-east-1 \(or fix \[ses\] region\)"
t_ok "unverified and missing identities FAIL, DKIM pending warns"

check '{"fail": {"GetAccount": "AccessDenied"}, "identities": {"example.com": {}, "example.org": {}}}'
[ $RC = 1 ] || t_fail "AccessDenied: exit $RC"
has account FAIL "GetAccount failed: HTTP 403 AccessDeniedException: User: arn:aws:iam::123456789012:user/sesrelay is not authorized to perform: ses:GetAccount.*allow ses:GetAccount in the IAM policy"
has identity ok "example.org"
check '{"fail": {"GetEmailIdentity": "AccessDenied"}}'
has identity FAIL "GetEmailIdentity failed: HTTP 403 AccessDeniedException.*allow ses:GetEmailIdentity in the IAM policy"
t_ok "AccessDenied names the missing IAM action (ses:GetAccount, ses:GetEmailIdentity)"

check '{"fail": {"*": "Throttling"}}'
[ $RC = 1 ] || t_fail "throttled: exit $RC"
has account FAIL "HTTP 429 TooManyRequestsException.*SES is throttling API calls: try again"
check '{"fail": {"*": "500"}}'
has account FAIL "HTTP 500 InternalFailure.*try again later"
t_stop_api
check '{}'
[ $RC = 1 ] || t_fail "API down: exit $RC"
has result ok "SES accepted"
has account FAIL "GetAccount failed: .*check the network path to the API endpoint"
t_start_api
t_ok "throttled, internal error and API down: FAIL with what to do"

# --json: one object for scripts
check "{\"sandbox\": true, \"max_24h\": 1000, \"max_rate\": 3, \"sent_24h\": 250, $GOOD_IDS}" --json
[ $RC = 0 ] || t_fail "--json: exit $RC: $OUT"
$PY - "$T_DIR/check.out" <<'PY' || t_fail "--json: $OUT"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ok"] is True, d["ok"]
a = d["account"]
assert a["ProductionAccessEnabled"] is False and a["SendingEnabled"] is True, a
assert a["Max24HourSend"] == 1000 and a["MaxSendRate"] == 3 and a["SentLast24Hours"] == 250, a
assert abs(a["share_used"] - 0.25) < 1e-9, a
steps = {(s["step"], s["status"]) for s in d["steps"]}
assert ("account", "warn") in steps and ("result", "ok") in steps, steps
ids = {(i["identity"], i["for"]): i for i in d["identities"]}
i = ids[("app@example.com", "[sender app@example.com]")]
assert i["found"] and not i["verified"], i
assert ids[("example.com", "[sender app@example.com]")]["verified"], ids
assert ids[("example.com", "[sender app@example.com]")]["dkim"] == "SUCCESS", ids
PY
check '{"fail": {"GetAccount": "AccessDenied"}}' --json
[ $RC = 1 ] || t_fail "--json AccessDenied: exit $RC"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] is False and d["account"] is None; assert any("ses:GetAccount" in s["detail"] for s in d["steps"] if s["status"]=="FAIL")' "$T_DIR/check.out" ||
	t_fail "--json AccessDenied: $OUT"
t_ok "--json: one JSON object with the account, the identities and every step"
! grep -qF "$EXAMPLE_SECRET" "$T_DIR/check.out" || t_fail "the secret is in check's output"
