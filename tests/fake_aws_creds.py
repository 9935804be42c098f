#!/usr/bin/python3
"""fake_aws_creds.py - fake AWS credential endpoints for the tests.

Plain HTTP on loopback (as the container endpoint and IMDS are; STS is
reached through AWS_ENDPOINT_URL_STS=http://127.0.0.1:PORT, which
http_client allows for loopback only).  One server plays:

  POST /            STS AssumeRoleWithWebIdentity (form body): Action,
                    Version, RoleArn (must be --role-arn), RoleSessionName,
                    WebIdentityToken (must be the contents of --token-file,
                    read at each request); XML answer as STS gives it.
  GET  /creds/...   the ECS/EKS container endpoint: Authorization must be
                    --auth-token when given; JSON answer.
  PUT  /latest/api/token                        IMDSv2 token (needs
                    X-aws-ec2-metadata-token-ttl-seconds)
  GET  /latest/meta-data/iam/security-credentials/        the role name
  GET  /latest/meta-data/iam/security-credentials/<role>  JSON answer
                    (both need X-aws-ec2-metadata-token; IMDSv1 refused)

Every answer issues fresh credentials ASIA<n>..., expiring after the
state's "lifetime" seconds (default 3600), and adds them to --keys-file
(JSON {key id: {"secret": ..., "token": ...}}, written atomically) so that
fake_ses_api.py --keys-file accepts exactly what was issued.

State: the JSON file --state, re-read per request: {"lifetime": 120,
"fail": {"sts"|"ecs"|"imds": "500" | "InvalidIdentityToken" |
"AccessDenied" | "hang"}}.  Each request is logged as one JSON line to
--log: {"op": "sts"|"ecs"|"imds-token"|"imds-role"|"imds-creds",
"status": N, "key": issued key id or null}.
"""

import argparse
import datetime
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ARGS = None
LOCK = threading.Lock()
COUNTER = [0]
KEYS = {}
IMDS_TOKENS = set()
ROLE = "sesrelay-instance-role"


def load_state():
    try:
        with open(ARGS.state, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return {}


def issue(lifetime):
    with LOCK:
        COUNTER[0] += 1
        key = "ASIAFAKE%012d" % COUNTER[0]
        secret = secrets.token_urlsafe(30)[:40]
        token = "FQoGZXIvYXdz" + secrets.token_urlsafe(120)
        KEYS[key] = {"secret": secret, "token": token}
        while len(KEYS) > 200:
            KEYS.pop(next(iter(KEYS)))
        tmp = ARGS.keys_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(KEYS, f)
        os.rename(tmp, ARGS.keys_file)
    exp = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=lifetime)
    return key, secret, token, exp.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-aws-creds"

    def log_message(self, fmt, *args):
        pass

    def record(self, op, status, key=None):
        if ARGS.log:
            with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"op": op, "status": status,
                                    "key": key}) + "\n")

    def send(self, status, body, ctype):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def failing(self, op, family):
        kind = load_state().get("fail", {}).get(family)
        if kind is None:
            return False
        if kind == "hang":
            self.record(op, 0)
            time.sleep(30)
            self.close_connection = True
            return True
        if kind == "500":
            self.record(op, 500)
            self.send(500, "internal error", "text/plain")
            return True
        self.record(op, 403 if kind == "AccessDenied" else 400)
        if family == "sts":
            self.sts_error(403 if kind == "AccessDenied" else 400, kind,
                           "injected failure")
        else:
            self.send(200, json.dumps({"Code": kind,
                                       "Message": "injected failure"}),
                      "application/json")
        return True

    def sts_error(self, status, code, msg):
        self.send(status, "<ErrorResponse xmlns=\"https://sts.amazonaws.com/"
                  "doc/2011-06-15/\"><Error><Type>Sender</Type><Code>%s"
                  "</Code><Message>%s</Message></Error><RequestId>%s"
                  "</RequestId></ErrorResponse>" % (code, msg,
                                                    secrets.token_hex(8)),
                  "text/xml")

    def lifetime(self):
        return int(load_state().get("lifetime", 3600))

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode()
        if self.path != "/":
            self.record("?", 404)
            self.send(404, "no such path", "text/plain")
            return
        if self.failing("sts", "sts"):
            return
        form = {k: v[0] for k, v in parse_qs(body).items()}
        if form.get("Action") != "AssumeRoleWithWebIdentity" or \
                form.get("Version") != "2011-06-15":
            self.record("sts", 400)
            self.sts_error(400, "InvalidAction", "bad Action or Version")
            return
        if form.get("RoleArn") != ARGS.role_arn:
            self.record("sts", 403)
            self.sts_error(403, "AccessDenied", "Not authorized to perform "
                           "sts:AssumeRoleWithWebIdentity")
            return
        with open(ARGS.token_file, encoding="utf-8") as f:
            want = f.read().strip()
        if form.get("WebIdentityToken") != want or \
                not form.get("RoleSessionName"):
            self.record("sts", 400)
            self.sts_error(400, "InvalidIdentityToken",
                           "The web identity token is not valid")
            return
        key, secret, token, exp = issue(self.lifetime())
        self.record("sts", 200, key)
        self.send(200, "<AssumeRoleWithWebIdentityResponse xmlns=\"https://"
                  "sts.amazonaws.com/doc/2011-06-15/\">"
                  "<AssumeRoleWithWebIdentityResult>"
                  "<SubjectFromWebIdentityToken>system:serviceaccount:mail:"
                  "sesrelay</SubjectFromWebIdentityToken>"
                  "<AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROA:%s"
                  "</AssumedRoleId></AssumedRoleUser><Credentials>"
                  "<SessionToken>%s</SessionToken><SecretAccessKey>%s"
                  "</SecretAccessKey><Expiration>%s</Expiration><AccessKeyId>"
                  "%s</AccessKeyId></Credentials><Audience>sts.amazonaws.com"
                  "</Audience></AssumeRoleWithWebIdentityResult>"
                  "<ResponseMetadata><RequestId>%s</RequestId>"
                  "</ResponseMetadata></AssumeRoleWithWebIdentityResponse>" % (
                      ARGS.role_arn, form["RoleSessionName"],
                      form["RoleSessionName"], token, secret, exp, key,
                      secrets.token_hex(8)), "text/xml")

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/latest/api/token":
            self.record("?", 404)
            self.send(404, "no such path", "text/plain")
            return
        if self.failing("imds-token", "imds"):
            return
        if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.record("imds-token", 400)
            self.send(400, "missing ttl", "text/plain")
            return
        tok = secrets.token_urlsafe(40)
        IMDS_TOKENS.add(tok)
        self.record("imds-token", 200)
        self.send(200, tok, "text/plain")

    def do_GET(self):
        if self.path.startswith("/creds/"):
            if self.failing("ecs", "ecs"):
                return
            if ARGS.auth_token and \
                    self.headers.get("Authorization") != ARGS.auth_token:
                self.record("ecs", 401)
                self.send(401, json.dumps({"Code": "Unauthorized",
                                           "Message": "bad token"}),
                          "application/json")
                return
            key, secret, token, exp = issue(self.lifetime())
            self.record("ecs", 200, key)
            self.send(200, json.dumps({
                "RoleArn": ARGS.role_arn, "AccessKeyId": key,
                "SecretAccessKey": secret, "Token": token,
                "Expiration": exp}), "application/json")
            return
        base = "/latest/meta-data/iam/security-credentials/"
        if self.path.startswith(base):
            op = "imds-role" if self.path == base else "imds-creds"
            if self.failing(op, "imds"):
                return
            if self.headers.get("X-aws-ec2-metadata-token") not in \
                    IMDS_TOKENS:
                self.record(op, 401)
                self.send(401, "", "text/plain")
                return
            if op == "imds-role":
                self.record(op, 200)
                self.send(200, ROLE, "text/plain")
                return
            if self.path[len(base):] != ROLE:
                self.record(op, 404)
                self.send(404, "", "text/plain")
                return
            key, secret, token, exp = issue(self.lifetime())
            self.record(op, 200, key)
            self.send(200, json.dumps({
                "Code": "Success", "LastUpdated": exp, "Type": "AWS-HMAC",
                "AccessKeyId": key, "SecretAccessKey": secret,
                "Token": token, "Expiration": exp}), "application/json")
            return
        self.record("?", 404)
        self.send(404, "no such path", "text/plain")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--portfile", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--keys-file", required=True)
    p.add_argument("--role-arn", default="arn:aws:iam::123456789012:role/"
                   "sesrelay")
    p.add_argument("--token-file")
    p.add_argument("--auth-token")
    p.add_argument("--log")
    ARGS = p.parse_args()
    host, port = ARGS.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    srv.daemon_threads = True
    tmp = ARGS.portfile + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, ARGS.portfile)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
