"""Loopback stand-ins for the places temporary AWS credentials come from, behaving as
the real ones do where outboxd can tell, each handing out credentials from a
CredentialLedger (harness/aws_creds.py) with a lifetime the test chooses:

- StsServer: the query protocol's AssumeRoleWithWebIdentity (unsigned; the token must
  be one the test allowed) and AssumeRole (its SigV4 signature recomputed by botocore
  with the secret the ledger has for the caller's key, which must not have expired);
  XML answers, and XML errors (<ErrorResponse><Error><Code>...) as STS writes them.
- ContainerCredentialsServer: the ECS / EKS Pod Identity endpoint: GET, JSON answer,
  the Authorization header checked when the server has a token.
- ImdsServer: IMDSv2: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds
  (1 to 21600) gives a session token; a GET without a valid token is 401; the role's
  name, its credentials (JSON) and the placement region. With v1_only, an IMDSv1
  stand-in: the PUT is 404 and GETs need no token.

Each keeps what it was asked (`calls`) for the tests to read.
"""

import datetime
import hmac
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from .server_base import LoopbackServer, read_body

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class Call:
    method: str
    path: str
    headers: dict
    params: dict = field(default_factory=dict)   # STS: the form's fields
    status: int = 0
    code: str = ""                                # the error's code, when one was answered


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self):
        body = read_body(self.rfile, self.headers)
        call = Call(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        status, content_type, data = self.server.answer(self, call, body)
        call.status = status
        with self.server.lock:
            self.server.calls.append(call)
        data = data.encode() if isinstance(data, str) else data
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = _serve

    def log_message(self, format, *args):
        pass


class _CredServer(LoopbackServer):
    handler = _Handler

    def __init__(self, ledger, lifetime=3600.0, port=None):
        super().__init__(port)
        self.ledger = ledger
        self.lifetime = lifetime
        self.lock = threading.Lock()
        self.calls = []

    def issued(self):
        """New credentials from the ledger, valid for the server's lifetime."""
        return self.ledger.issue(self.lifetime)


class StsError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class StsServer(_CredServer):
    """STS on loopback. `tokens`: the web identity tokens it accepts (others are
    InvalidIdentityToken); `region`: the one AssumeRole signatures must be scoped to."""
    thread_name = "sts"

    def __init__(self, ledger, region="us-east-1", tokens=(), lifetime=3600.0, port=None):
        super().__init__(ledger, lifetime, port)
        self.region = region
        self.tokens = set(tokens)
        self._faults = []

    def fail_next(self, status, code, message):
        """The next call is answered with this error."""
        with self.lock:
            self._faults.append((status, code, message))

    def answer(self, handler, call, body):
        try:
            if call.method != "POST":
                raise StsError(405, "InvalidAction", "STS takes POST")
            params = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            call.params = params
            with self.lock:
                fault = self._faults.pop(0) if self._faults else None
            if fault:
                raise StsError(*fault)
            if params.get("Version") != "2011-06-15":
                raise StsError(400, "InvalidAction", "Version must be 2011-06-15")
            action = params.get("Action")
            for name in ("RoleArn", "RoleSessionName"):
                if not params.get(name):
                    raise StsError(400, "ValidationError", f"{name} is required")
            if action == "AssumeRoleWithWebIdentity":
                if params.get("WebIdentityToken") not in self.tokens:
                    raise StsError(400, "InvalidIdentityToken", "Incorrect token audience")
            elif action == "AssumeRole":
                self._check_signature(handler, body)
            else:
                raise StsError(400, "InvalidAction", f"Could not find operation {action}")
        except StsError as e:
            call.code = e.code
            return e.status, "text/xml", (
                f'<ErrorResponse xmlns="{STS_NS}"><Error><Type>Sender</Type><Code>{e.code}</Code>'
                f"<Message>{e.message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
                "</ErrorResponse>")
        creds = self.issued()
        return 200, "text/xml", (
            f'<{action}Response xmlns="{STS_NS}"><{action}Result>'
            f"<AssumedRoleUser><Arn>{params['RoleArn']}/{params['RoleSessionName']}</Arn>"
            "<AssumedRoleId>AROA:x</AssumedRoleId></AssumedRoleUser>"
            f"<Credentials><AccessKeyId>{creds.access_key_id}</AccessKeyId>"
            f"<SecretAccessKey>{creds.secret_access_key}</SecretAccessKey>"
            f"<SessionToken>{creds.session_token}</SessionToken>"
            f"<Expiration>{creds.expiration_iso()}</Expiration></Credentials>"
            f"</{action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ResponseMetadata></{action}Response>")

    def _check_signature(self, handler, body):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        def refuse(code, why):
            raise StsError(403, code, why)
        auth = handler.headers.get("Authorization", "")
        amz_date = handler.headers.get("X-Amz-Date", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not amz_date:
            refuse("MissingAuthenticationToken", "Request is missing Authentication Token")
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",")
                      if "=" in part)
        scope = fields.get("Credential", "").split("/")
        issued = self.ledger.lookup(scope[0])
        if issued is None:
            refuse("InvalidClientTokenId", "The security token included in the request is invalid.")
        if issued.expired():
            refuse("ExpiredToken", "The security token included in the request is expired")
        if scope[1:] != [amz_date[:8], self.region, "sts", "aws4_request"]:
            refuse("SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not {self.region!r}"
                   if scope[2:3] != [self.region] else "Credential scope is wrong")
        if (handler.headers.get("X-Amz-Security-Token") or None) != issued.session_token:
            refuse("InvalidClientTokenId", "The security token included in the request is invalid.")
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 15 * 60:
            refuse("SignatureDoesNotMatch", "Signature expired")
        request = AWSRequest(method="POST", url=f"http://{handler.headers.get('Host')}{handler.path}", data=body)
        for name in fields.get("SignedHeaders", "").split(";"):
            for value in handler.headers.get_all(name) or []:
                request.headers[name] = value
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(issued.access_key_id, issued.secret_access_key, issued.session_token),
                           "sts", self.region)
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            refuse("SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                   "you provided.")


class ContainerCredentialsServer(_CredServer):
    """The container credentials endpoint; with `token`, a request whose Authorization
    is not exactly it is 401, as the EKS Pod Identity agent answers."""
    thread_name = "container-creds"

    def __init__(self, ledger, token=None, lifetime=3600.0, port=None):
        super().__init__(ledger, lifetime, port)
        self.token = token

    def answer(self, handler, call, body):
        if call.method != "GET":
            return 405, "application/json", '{"code":"MethodNotAllowed"}'
        if self.token is not None and call.headers.get("authorization") != self.token:
            call.code = "AccessDenied"
            return 401, "application/json", '{"code":"AccessDeniedException","message":"bad token"}'
        creds = self.issued()
        return 200, "application/json", json.dumps({
            "AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
            "Token": creds.session_token, "Expiration": creds.expiration_iso(),
            "RoleArn": "arn:aws:iam::123456789012:role/outboxd"})


class ImdsServer(_CredServer):
    """IMDSv2: only GETs with a session token it handed out (and has not dropped); with
    v1_only, IMDSv1: no tokens (the PUT is 404), every GET served."""
    thread_name = "imds"
    ROLES = "/latest/meta-data/iam/security-credentials/"

    def __init__(self, ledger, role="outboxd-instance", region="eu-west-3", lifetime=3600.0, port=None,
                 v1_only=False):
        super().__init__(ledger, lifetime, port)
        self.role = role
        self.region = region
        self.v1_only = v1_only
        self._tokens = {}   # token -> monotonic end

    def drop_tokens(self):
        """Forget every session token, as when they expire: the next GET is 401."""
        with self.lock:
            self._tokens.clear()

    def token_puts(self):
        with self.lock:
            return [c for c in self.calls if c.method == "PUT"]

    def answer(self, handler, call, body):
        if call.method == "PUT" and call.path == "/latest/api/token" and self.v1_only:
            return 404, "text/html", "<html><body><h1>404 - Not Found</h1></body></html>"
        if call.method == "PUT" and call.path == "/latest/api/token":
            ttl = call.headers.get("x-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return 400, "text/plain", "Bad Request"
            token = secrets.token_urlsafe(32)
            with self.lock:
                self._tokens[token] = time.monotonic() + int(ttl)
            return 200, "text/plain", token
        if call.method != "GET":
            return 405, "text/plain", "Method Not Allowed"
        with self.lock:
            end = self._tokens.get(call.headers.get("x-aws-ec2-metadata-token"))
        if not self.v1_only and (end is None or time.monotonic() >= end):
            call.code = "Unauthorized"
            return 401, "text/plain", "Unauthorized"
        if call.path == self.ROLES and self.role:
            return 200, "text/plain", self.role
        if call.path == self.ROLES + (self.role or "-"):
            creds = self.issued()
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 200, "text/plain", json.dumps({
                "Code": "Success", "LastUpdated": now, "Type": "AWS-HMAC",
                "AccessKeyId": creds.access_key_id, "SecretAccessKey": creds.secret_access_key,
                "Token": creds.session_token, "Expiration": creds.expiration_iso()}, indent=2)
        if call.path == "/latest/meta-data/placement/region":
            return 200, "text/plain", self.region
        return 404, "text/html", "<html><body><h1>404 - Not Found</h1></body></html>"
