#!/bin/bash
# examples.sh — the deployment examples in examples/ (compose, podman
# pod, Kubernetes sidecar and DaemonSet) are checked without a cluster by
# tests/examples.py: the Kubernetes fields they use, their references,
# and the real `sesrelayd -n` on each container's environment.  A copy
# with a misspelt field and one with a bad SESRELAY_* value must fail.
set -euo pipefail
. "$TESTS_DIR/lib.sh"
PY=/usr/bin/python3
$PY -c 'import yaml' 2>/dev/null || { echo "SKIP: python3-yaml not installed"; exit 77; }
top=$TESTS_DIR/..
$PY "$TESTS_DIR/examples.py" "$SESRELAYD" "$top/examples" "$top/etc/sesrelay.conf" ||
	t_fail "the examples do not pass"

cp -r "$top/examples" "$T_DIR/typo"
sed -i 's/readinessProbe:/readinessprobe:/' "$T_DIR/typo/kubernetes/sidecar.yaml"
out=$($PY "$TESTS_DIR/examples.py" "$SESRELAYD" "$T_DIR/typo" "$top/etc/sesrelay.conf") &&
	t_fail "a misspelt field passed"
grep -q "unknown field 'readinessprobe'" <<<"$out" || t_fail "the misspelt field is not named: $out"
cp -r "$top/examples" "$T_DIR/badvalue"
sed -i 's/SESRELAY_RELAY_MODE: spool/SESRELAY_RELAY_MODE: spooled/' "$T_DIR/badvalue/compose.yaml"
out=$($PY "$TESTS_DIR/examples.py" "$SESRELAYD" "$T_DIR/badvalue" "$top/etc/sesrelay.conf") &&
	t_fail "a bad SESRELAY_RELAY_MODE passed"
grep -q "SESRELAY_RELAY_MODE: \[relay\] mode: " <<<"$out" || t_fail "the bad value is not named: $out"
t_ok "a misspelt Kubernetes field and a bad SESRELAY_* value are caught"
