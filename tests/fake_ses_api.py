#!/usr/bin/python3
"""fake_ses_api.py - a fake Amazon SES API v2 endpoint for the tests.

HTTPS (HTTP/1.1, keep-alive) on loopback with the test certificates of
tests/gen-certs.sh.  Every request must carry a valid AWS Signature
Version 4 for service "ses" in --region, checked with botocore's own signer
(python3-botocore): the canonical request is rebuilt from the request as
received (path, query, the signed headers, the body) and signed with the
expected secret; a request whose signature differs, whose key id is unknown,
whose scope is not <date>/<region>/ses/aws4_request, whose X-Amz-Date is
more than 15 minutes off, whose x-amz-content-sha256 is not the body's hash,
or that lacks / mismatches the expected X-Amz-Security-Token (--token) is
refused with SES's error shape (403, X-Amzn-ErrorType, {"message": ...}).

Routes (SES API v2):
  GET  /v2/email/account                    GetAccount
  GET  /v2/email/identities/{EmailIdentity} GetEmailIdentity
  POST /v2/email/outbound-emails            SendEmail (Content.Raw only:
       the decoded message is written to --outdir/<MessageId>.eml, the
       request without the data to <MessageId>.json)

State: the JSON file --state, re-read on every request (tests rewrite it
atomically with t_api_state); keys, all optional:
  sandbox (bool, default false)      ProductionAccessEnabled = not sandbox
  sending_enabled (bool, true)       SendingEnabled
  enforcement ("HEALTHY")            EnforcementStatus
  max_24h (50000), max_rate (14), sent_24h (0)   SendQuota
  identities: {"example.com": {"verified": true, "dkim": "SUCCESS"}, ...}
      an identity not listed does not exist (404 NotFoundException)
  fail: {"<Operation>" or "*": "AccessDenied" | "Throttling" | "500" |
         "503" | "MessageRejected" | "MailFromDomainNotVerified" |
         "AccountSuspended" | "SendingPaused" | "BadRequest" | "NotFound" |
         "LimitExceeded"}
  fail_count: answer "fail" to that many requests only (then succeed)
  delay: seconds to wait before answering (timeouts)
Each request is logged as one JSON line to --log:
  {"op": ..., "method": ..., "path": ..., "status": ..., "error": ...}

Usage: fake_ses_api.py --listen 127.0.0.1:0 --portfile F --cert C --key K
       --key-id AKID --secret S [--token T] [--region R] --state F
       [--outdir D] [--log F] [--keys-file F]
  --keys-file: more keys to accept, {key id: {"secret": S, "token": T}},
  re-read per request (fake_aws_creds.py writes it)
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ARGS = None
LOG_LOCK = threading.Lock()
FAILED = [0]            # requests failed so far under fail_count
ACCOUNT_ID = "123456789012"

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/"
    r"aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")


def lookup_key(akid):
    """(secret, token) of a key we accept, or (None, None): --key-id,
    or one of --keys-file (re-read per request: temporary credentials
    issued by fake_aws_creds.py)."""
    if akid == ARGS.key_id:
        return ARGS.secret, ARGS.token
    if ARGS.keys_file:
        try:
            with open(ARGS.keys_file, encoding="utf-8") as f:
                k = json.load(f).get(akid)
        except (FileNotFoundError, ValueError):
            k = None
        if k is not None:
            return k["secret"], k.get("token")
    return None, None


def load_state():
    try:
        with open(ARGS.state, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class SigError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def verify_sigv4(method, raw_path, headers, body):
    """Raise SigError unless the request is signed as SES would accept."""
    auth = headers.get("Authorization")
    if auth is None:
        raise SigError("MissingAuthenticationTokenException",
                       "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if m is None:
        raise SigError("IncompleteSignatureException",
                       "Authorization header requires 'Credential', "
                       "'Signature' and 'SignedHeaders' parameters.")
    akid, date, region, service, signed, signature = m.groups()
    secret, want_token = lookup_key(akid)
    if secret is None:
        raise SigError("UnrecognizedClientException",
                       "The security token included in the request is "
                       "invalid.")
    amzdate = headers.get("X-Amz-Date", "")
    if not re.match(r"^\d{8}T\d{6}Z$", amzdate):
        raise SigError("IncompleteSignatureException",
                       "X-Amz-Date is missing or malformed.")
    if region != ARGS.region or service != "ses" or date != amzdate[:8]:
        raise SigError("SignatureDoesNotMatch",
                       "Credential should be scoped to a valid region and "
                       "service: %s/%s/%s, not %s/%s/%s" % (
                           amzdate[:8], ARGS.region, "ses",
                           date, region, service))
    when = datetime.datetime.strptime(amzdate, "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - when).total_seconds()) > 15 * 60:
        raise SigError("InvalidSignatureException",
                       "Signature expired: %s is now earlier or later than "
                       "15 min of %s" % (amzdate, now.strftime(
                           "%Y%m%dT%H%M%SZ")))
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names:
        raise SigError("SignatureDoesNotMatch",
                       "host and x-amz-date must be signed")
    token = headers.get("X-Amz-Security-Token")
    if want_token is not None:
        if token != want_token:
            raise SigError("UnrecognizedClientException",
                           "The security token included in the request is "
                           "invalid.")
        if "x-amz-security-token" not in names:
            raise SigError("SignatureDoesNotMatch",
                           "x-amz-security-token must be signed")
    elif token is not None:
        raise SigError("UnrecognizedClientException",
                       "The security token included in the request is "
                       "invalid.")
    claimed = headers.get("X-Amz-Content-SHA256")
    if claimed is not None and claimed != hashlib.sha256(body).hexdigest():
        raise SigError("SignatureDoesNotMatch",
                       "x-amz-content-sha256 is not the hash of the body")
    # Rebuild the request with exactly the signed headers, as received.
    sh = {}
    for n in names:
        values = headers.get_all(n)
        if values is None:
            raise SigError("SignatureDoesNotMatch",
                           "signed header %s is not in the request" % n)
        sh[n] = ",".join(v.strip() for v in values)
    req = AWSRequest(method=method, url="https://" + sh["host"] + raw_path,
                     headers=sh, data=body)
    req.context["timestamp"] = amzdate
    signer = SigV4Auth(Credentials(akid, secret, want_token),
                       "ses", ARGS.region)
    canonical = signer.canonical_request(req)
    sts = signer.string_to_sign(req, canonical)
    expected = signer.signature(sts, req)
    if expected != signature:
        raise SigError("SignatureDoesNotMatch",
                       "The request signature we calculated does not match "
                       "the signature you provided. Check your AWS Secret "
                       "Access Key and signing method. Consult the service "
                       "documentation for details.\n\nThe Canonical String "
                       "for this request should have been\n'%s'\n\nThe "
                       "String-to-Sign should have been\n'%s'\n" % (
                           canonical, sts))


FAILS = {
    "AccessDenied": (403, "AccessDeniedException", "Message",
                     "User: arn:aws:iam::%s:user/sesrelay is not authorized "
                     "to perform: ses:%s on resource: arn:aws:ses:%s:%s:%s"),
    "Throttling": (429, "TooManyRequestsException", "message",
                   "Too Many Requests"),
    "500": (500, "InternalFailure", "message",
            "The request processing has failed because of an unknown "
            "error, exception or failure."),
    "503": (503, "ServiceUnavailable", "message", "Service Unavailable"),
    "MessageRejected": (400, "MessageRejected", "message",
                        "Email address is not verified. The following "
                        "identities failed the check in region US-EAST-1: "
                        "x@example.com"),
    "MailFromDomainNotVerified": (400, "MailFromDomainNotVerifiedException",
                                  "message", "The MAIL FROM domain is not "
                                  "verified"),
    "AccountSuspended": (400, "AccountSuspendedException", "message",
                         "Your account has been suspended"),
    "SendingPaused": (400, "SendingPausedException", "message",
                      "Sending is paused for this account"),
    "BadRequest": (400, "BadRequestException", "message",
                   "1 validation error detected"),
    "NotFound": (404, "NotFoundException", "message",
                 "Configuration set <x> does not exist."),
    "LimitExceeded": (400, "LimitExceededException", "message",
                      "Maximum sending rate exceeded."),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-ses-api"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, status, obj, error_type=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type is not None:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(body)

    def record(self, op, status, error=None):
        if ARGS.log is None:
            return
        line = json.dumps({"op": op, "method": self.command,
                           "path": self.path, "status": status,
                           "error": error})
        with LOG_LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def error(self, op, status, code, message, key="message"):
        self.record(op, status, code)
        self.send_json(status, {key: message}, error_type=code)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > 50 * 1024 * 1024:
            self.error("?", 413, "ValidationException", "too large")
            self.close_connection = True
            return
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path == "/v2/email/account":
            op, ident = "GetAccount", None
        elif (self.command == "GET" and
              path.startswith("/v2/email/identities/") and
              "/" not in path[len("/v2/email/identities/"):]):
            op = "GetEmailIdentity"
            ident = unquote(path[len("/v2/email/identities/"):])
        elif self.command == "POST" and path == "/v2/email/outbound-emails":
            op, ident = "SendEmail", None
        else:
            self.error("?", 404, "UnknownOperationException",
                       "no such operation: %s %s" % (self.command, path))
            return
        try:
            verify_sigv4(self.command, self.path, self.headers, body)
        except SigError as e:
            status = 400 if e.code == "IncompleteSignatureException" else 403
            self.error(op, status, e.code, e.message)
            return
        state = load_state()
        if state.get("delay"):
            time.sleep(float(state["delay"]))
        fail = state.get("fail", {})
        kind = fail.get(op) or fail.get("*")
        if kind is not None and "fail_count" in state:
            with LOG_LOCK:
                FAILED[0] += 1
                if FAILED[0] > int(state["fail_count"]):
                    kind = None
        if kind is not None:
            status, code, key, msg = FAILS[kind]
            if kind == "AccessDenied":
                msg = msg % (ACCOUNT_ID, op, ARGS.region, ACCOUNT_ID,
                             "identity/" + ident if ident else "*")
            self.error(op, status, code, msg, key)
            return
        getattr(self, "op_" + op)(state, ident, body)

    def op_GetAccount(self, state, _ident, _body):
        self.record("GetAccount", 200)
        self.send_json(200, {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": state.get("enforcement", "HEALTHY"),
            "ProductionAccessEnabled": not state.get("sandbox", False),
            "SendQuota": {
                "Max24HourSend": float(state.get("max_24h", 50000)),
                "MaxSendRate": float(state.get("max_rate", 14)),
                "SentLast24Hours": float(state.get("sent_24h", 0)),
            },
            "SendingEnabled": state.get("sending_enabled", True),
            "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE",
                                                           "COMPLAINT"]},
        })

    def op_GetEmailIdentity(self, state, ident, _body):
        ids = {k.lower(): v for k, v in state.get("identities", {}).items()}
        info = ids.get(ident.lower())
        if info is None:
            self.error("GetEmailIdentity", 404, "NotFoundException",
                       "Email identity %s does not exist." % ident)
            return
        verified = info.get("verified", True)
        dkim = info.get("dkim", "SUCCESS")
        self.record("GetEmailIdentity", 200)
        self.send_json(200, {
            "IdentityType": "EMAIL_ADDRESS" if "@" in ident else "DOMAIN",
            "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": verified,
            "VerificationStatus": "SUCCESS" if verified else "PENDING",
            "DkimAttributes": {
                "SigningEnabled": dkim == "SUCCESS",
                "Status": dkim,
                "SigningAttributesOrigin": "AWS_SES",
                "Tokens": ["tok1", "tok2", "tok3"],
            },
            "MailFromAttributes": {
                "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
                "MailFromDomainStatus": "SUCCESS",
            },
            "Policies": {},
            "Tags": [],
        })

    def op_SendEmail(self, _state, _ident, body):
        try:
            req = json.loads(body)
            raw = base64.b64decode(req["Content"]["Raw"]["Data"],
                                   validate=True)
        except (ValueError, KeyError, TypeError) as e:
            self.error("SendEmail", 400, "BadRequestException",
                       "Content.Raw.Data: %s" % e)
            return
        mid = "0100%s-%s-000000" % (uuid.uuid4().hex[:12], uuid.uuid4())
        if ARGS.outdir is not None:
            del req["Content"]["Raw"]["Data"]
            tmp = os.path.join(ARGS.outdir, ".%s.tmp" % mid)
            with open(tmp, "wb") as f:
                f.write(raw)
            with open(os.path.join(ARGS.outdir, mid + ".json"), "w",
                      encoding="utf-8") as f:
                json.dump(req, f)
            os.rename(tmp, os.path.join(ARGS.outdir, mid + ".eml"))
        self.record("SendEmail", 200)
        self.send_json(200, {"MessageId": mid})

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_DELETE = handle_any


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--portfile", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--token")
    p.add_argument("--keys-file")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--state", required=True)
    p.add_argument("--outdir")
    p.add_argument("--log")
    ARGS = p.parse_args()
    host, port = ARGS.listen.rsplit(":", 1)
    srv = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    srv.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                 do_handshake_on_connect=False)
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
