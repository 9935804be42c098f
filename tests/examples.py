#!/usr/bin/python3
"""examples.py SESRELAYD EXAMPLES_DIR CONF — check the deployment examples
without a cluster (Debian 12 has no kubeconform, and its kubectl 1.20
cannot validate without an API server):

* every YAML file parses; Kubernetes objects use only the fields of the
  API schema written out below (a typo such as `readinessprobe` or a field
  in the wrong place fails), with the right apiVersion per kind, required
  fields present, selectors matching the template's labels, volume mounts
  naming declared volumes, probe ports among the container's ports;
  compose files: services with images, network_mode naming a service,
  named volumes declared;
* every container's SESRELAY_* / AWS_* environment is given to the real
  `sesrelayd -n -c CONF` (secret files replaced by a temporary one with
  the SPEC's example secret, role credentials by the example key): the
  relay must accept the configuration the example sets (the IRSA ones
  with SESRELAY_SES_TRANSPORT=api, role credentials replaced by the
  example key).
Exit 1 on the first class of failures, listing them all.
"""
import os
import subprocess
import sys
import tempfile

import yaml

sesrelayd, exdir, conf = sys.argv[1:4]
errors = []


def err(where, msg):
    errors.append("%s: %s" % (where, msg))


# --- the Kubernetes fields the examples may use: {field: sub-schema};
# a sub-schema is a dict (an object), [dict] (a list of objects), or a
# type name (a leaf).
S = "str"
I = "int"
B = "bool"
M = "map"   # free-form string map (labels, annotations)
L = "list"  # list of strings
ANY_PORT = "port"  # int or named port

PROBE = {"httpGet": {"path": S, "port": ANY_PORT, "scheme": S},
         "tcpSocket": {"port": ANY_PORT},
         "exec": {"command": L},
         "initialDelaySeconds": I, "periodSeconds": I, "timeoutSeconds": I,
         "failureThreshold": I, "successThreshold": I}
ENV = {"name": S, "value": S,
       "valueFrom": {"secretKeyRef": {"name": S, "key": S, "optional": B},
                     "configMapKeyRef": {"name": S, "key": S, "optional": B},
                     "fieldRef": {"fieldPath": S}}}
CONTAINER = {
    "name": S, "image": S, "imagePullPolicy": S, "command": L, "args": L,
    "env": [ENV], "ports": [{"name": S, "containerPort": I, "hostPort": I,
                             "protocol": S}],
    "readinessProbe": PROBE, "livenessProbe": PROBE, "startupProbe": PROBE,
    "resources": {"requests": M, "limits": M},
    "securityContext": {"runAsNonRoot": B, "runAsUser": I, "runAsGroup": I,
                        "readOnlyRootFilesystem": B,
                        "allowPrivilegeEscalation": B,
                        "capabilities": {"drop": L, "add": L}},
    "volumeMounts": [{"name": S, "mountPath": S, "readOnly": B,
                      "subPath": S}],
}
VOLUME = {
    "name": S,
    "hostPath": {"path": S, "type": S},
    "emptyDir": {"medium": S, "sizeLimit": S},
    "persistentVolumeClaim": {"claimName": S, "readOnly": B},
    "secret": {"secretName": S, "defaultMode": I, "optional": B,
               "items": [{"key": S, "path": S, "mode": I}]},
    "projected": {"defaultMode": I, "sources": [{
        "serviceAccountToken": {"audience": S, "expirationSeconds": I,
                                "path": S},
        "secret": {"name": S, "items": [{"key": S, "path": S}]}}]},
}
POD_SPEC = {
    "containers": [CONTAINER], "initContainers": [CONTAINER],
    "volumes": [VOLUME], "serviceAccountName": S, "restartPolicy": S,
    "terminationGracePeriodSeconds": I, "hostNetwork": B,
    "nodeSelector": M,
    "securityContext": {"fsGroup": I, "runAsNonRoot": B, "runAsUser": I,
                        "runAsGroup": I},
}
META = {"name": S, "namespace": S, "labels": M, "annotations": M}
TEMPLATE = {"metadata": META, "spec": POD_SPEC}
SELECTOR = {"matchLabels": M}
KINDS = {
    "Pod": ("v1", {"apiVersion": S, "kind": S, "metadata": META,
                   "spec": POD_SPEC}),
    "ServiceAccount": ("v1", {"apiVersion": S, "kind": S,
                              "metadata": META}),
    "Deployment": ("apps/v1", {"apiVersion": S, "kind": S, "metadata": META,
                               "spec": {"replicas": I, "selector": SELECTOR,
                                        "template": TEMPLATE,
                                        "strategy": {"type": S}}}),
    "DaemonSet": ("apps/v1", {"apiVersion": S, "kind": S, "metadata": META,
                              "spec": {"selector": SELECTOR,
                                       "template": TEMPLATE,
                                       "updateStrategy": {"type": S}}}),
}


def check(where, value, schema):
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return err(where, "not an object")
        for k, v in value.items():
            if k not in schema:
                err(where, "unknown field %r" % k)
            else:
                check("%s.%s" % (where, k), v, schema[k])
    elif isinstance(schema, list):
        if not isinstance(value, list):
            return err(where, "not a list")
        for i, v in enumerate(value):
            check("%s[%d]" % (where, i), v, schema[0])
    elif schema == S:
        if not isinstance(value, str):
            err(where, "not a string: %r (quote it)" % (value,))
    elif schema == I:
        if not isinstance(value, int) or isinstance(value, bool):
            err(where, "not an integer: %r" % (value,))
    elif schema == B:
        if not isinstance(value, bool):
            err(where, "not a boolean: %r" % (value,))
    elif schema == M:
        if not isinstance(value, dict) or not all(
                isinstance(v, str) for v in value.values()):
            err(where, "not a map of strings: %r" % (value,))
    elif schema == L:
        if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value):
            err(where, "not a list of strings: %r" % (value,))
    elif schema == ANY_PORT:
        if not isinstance(value, (int, str)):
            err(where, "not a port: %r" % (value,))


def pod_checks(where, spec, envs):
    vols = {v.get("name") for v in spec.get("volumes", [])}
    if not spec.get("containers"):
        err(where, "no containers")
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        cw = "%s container %s" % (where, c.get("name"))
        for req in ("name", "image"):
            if req not in c:
                err(cw, "no %s" % req)
        for m in c.get("volumeMounts", []):
            if m.get("name") not in vols:
                err(cw, "mounts undeclared volume %r" % m.get("name"))
        ports = {p.get("containerPort") for p in c.get("ports", [])}
        names = {p.get("name") for p in c.get("ports", [])}
        for pk in ("readinessProbe", "livenessProbe"):
            p = c.get(pk, {})
            for h in ("httpGet", "tcpSocket"):
                if h in p:
                    port = p[h].get("port")
                    if port not in ports and port not in names and not (
                            isinstance(port, int) and not ports):
                        err(cw, "%s port %r is not a container port" %
                            (pk, port))
        env = {}
        for e in c.get("env", []):
            if e.get("name") in env:
                err(cw, "env %s set twice" % e.get("name"))
            env[e.get("name")] = e.get("value", "<from %s>" % (
                list(e.get("valueFrom", {}).keys()) or ["?"])[0])
        if "image" in c and "sesrelay" in c["image"] and "command" not in c:
            envs.append((cw, env))


def check_k8s(path, doc, envs):
    kind = doc.get("kind")
    where = "%s: %s %s" % (path, kind, doc.get("metadata", {}).get("name"))
    if kind not in KINDS:
        return err(where, "kind %r not checked by this script" % kind)
    api, schema = KINDS[kind]
    if doc.get("apiVersion") != api:
        err(where, "apiVersion %r, not %r" % (doc.get("apiVersion"), api))
    if not doc.get("metadata", {}).get("name"):
        err(where, "no metadata.name")
    check(where, doc, schema)
    if kind == "Pod":
        pod_checks(where, doc.get("spec", {}), envs)
    elif kind in ("Deployment", "DaemonSet"):
        spec = doc.get("spec", {})
        sel = spec.get("selector", {}).get("matchLabels", {})
        labels = spec.get("template", {}).get("metadata", {}).get(
            "labels", {})
        if not sel or any(labels.get(k) != v for k, v in sel.items()):
            err(where, "selector %r does not match the template labels %r"
                % (sel, labels))
        pod_checks(where, spec.get("template", {}).get("spec", {}), envs)


def check_compose(path, doc, envs):
    services = doc.get("services", {})
    declared = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        where = "%s: service %s" % (path, name)
        if "image" not in svc and "build" not in svc:
            err(where, "no image or build")
        nm = svc.get("network_mode", "")
        if nm.startswith("service:") and nm[8:] not in services:
            err(where, "network_mode names no service: %s" % nm)
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if not src.startswith((".", "/")) and src not in declared:
                err(where, "volume %r is not declared" % src)
        if "sesrelay" in svc.get("image", ""):
            envs.append((where, {k: str(v) for k, v in
                                 svc.get("environment", {}).items()}))


envs = []
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(exdir)
               for f in fs if f.endswith((".yaml", ".yml")))
if not files:
    err(exdir, "no examples")
for path in files:
    rel = os.path.relpath(path, exdir)
    try:
        docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as e:
        err(rel, "not YAML: %s" % e)
        continue
    for doc in docs:
        if "services" in doc:
            check_compose(rel, doc, envs)
        else:
            check_k8s(rel, doc, envs)
if errors:
    print("\n".join("FAIL: " + e for e in errors))
    sys.exit(1)

# --- the relay's own verdict on each example's environment
with tempfile.TemporaryDirectory() as tmp:
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
    os.chmod(secret, 0o600)
    for where, env in envs:
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("SESRELAY_", "AWS_"))}
        e["SESRELAY_RELAY_SPOOL_DIR"] = tmp
        notes = []
        for k, v in env.items():
            if not k.startswith(("SESRELAY_", "AWS_")):
                continue
            if k.endswith("_FILE") and k.startswith("SESRELAY_"):
                v = secret
            if v.startswith("<from"):
                v = "AKIAIOSFODNN7EXAMPLE"   # a secretKeyRef: the key id
            if k in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
                continue
            if k == "SESRELAY_RELAY_SPOOL_DIR":
                continue
            e[k] = v
        if "AWS_ROLE_ARN" in env:
            e.setdefault("SESRELAY_SES_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            e.setdefault("SESRELAY_SES_SECRET_ACCESS_KEY_FILE", secret)
            notes.append("role credentials replaced by the example key")
        r = subprocess.run([sesrelayd, "-n", "-c", conf], env=e,
                           capture_output=True, text=True)
        if r.returncode != 0:
            err(where, "sesrelayd -n refuses its environment: %s" %
                r.stderr.strip())
        else:
            print("ok - %s: sesrelayd -n accepts its environment%s" %
                  (where, "".join(" (%s)" % n for n in notes)))
if errors:
    print("\n".join("FAIL: " + e for e in errors))
    sys.exit(1)
print("ok - %d example files: Kubernetes fields and references, compose "
      "services" % len(files))
