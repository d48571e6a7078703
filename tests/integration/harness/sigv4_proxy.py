"""SigV4Proxy: a FaultProxy in front of DynamoDB Local that, as DynamoDB does,
accepts only requests signed with credentials it knows: those of a
CredentialLedger (harness/aws_creds.py), until they expire.

Each request's signature is computed again with botocore's SigV4Auth from the
ledger's secret for the access key id it names, over the headers it says it
signed, at the date it says. Then, as DynamoDB answers:

- no Authorization header: 400 MissingAuthenticationTokenException;
- a key id the ledger does not have, or a session token not the one it was
  issued with: 400 UnrecognizedClientException;
- credentials past their expiry: 400 ExpiredTokenException;
- a signature that does not match: 403 InvalidSignatureException;
- else the request goes on to the FaultProxy's rules and DynamoDB Local.

accepted(key) / rejected(key) count the requests per access key id;
rejections() lists (key, error type) in arrival order.

    ledger = CredentialLedger(); keys = ledger.add_static("AKIDOK", "secret")
    with SigV4Proxy(ddb.endpoint, ledger) as proxy: ... proxy.endpoint ...
"""

import json
import re
import threading
import uuid
import zlib
from collections import Counter

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .fault_proxy import ERROR_PREFIX, FaultProxy

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                   r"SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")

_INVALID_TOKEN = "The security token included in the request is invalid."
_EXPIRED = "The security token included in the request is expired"
_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. Check your "
                  "AWS Secret Access Key and signing method. Consult the service documentation for details.")


def expected_signature(method, host, path, headers, body, signed, key_id, secret, token, date8_region_service,
                       amz_date):
    """The signature botocore computes for this request over the headers named in `signed`."""
    _, region, service = date8_region_service
    only = {k: v for k, v in headers if k.lower() in signed}
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=only)
    req.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(key_id, secret, token), service, region)
    return auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)


class SigV4Proxy(FaultProxy):
    thread_name = "sigv4proxy"

    def __init__(self, upstream, ledger, port=None, rules=None):
        super().__init__(upstream, port=port, rules=rules)
        self.ledger = ledger
        self._counts_lock = threading.Lock()
        self._accepted_by_key = Counter()
        self._rejected_by_key = Counter()
        self._rejections = []

    def accepted(self, key_id=None):
        with self._counts_lock:
            return sum(self._accepted_by_key.values()) if key_id is None else self._accepted_by_key[key_id]

    def rejected(self, key_id=None):
        with self._counts_lock:
            return sum(self._rejected_by_key.values()) if key_id is None else self._rejected_by_key[key_id]

    def rejections(self):
        """(access key id, error type) of every request refused, in arrival order."""
        with self._counts_lock:
            return list(self._rejections)

    def keys_accepted(self):
        """The access key ids that signed accepted requests."""
        with self._counts_lock:
            return set(self._accepted_by_key)

    def verdict(self, req):
        """(access key id or None, None when the request passes, else (status, error type, message))."""
        hmap = req["hmap"]
        m = _AUTH.match(hmap.get("authorization", ""))
        if not m:
            return None, (400, "MissingAuthenticationTokenException", "Request is missing Authentication Token")
        key_id, date8, region, service, signed, signature = m.groups()
        issued = self.ledger.lookup(key_id)
        if issued is None or hmap.get("x-amz-security-token") != issued.session_token:
            return key_id, (400, "UnrecognizedClientException", _INVALID_TOKEN)
        if issued.expired():
            return key_id, (400, "ExpiredTokenException", _EXPIRED)
        signed = set(signed.split(";"))
        amz_date = hmap.get("x-amz-date", "")
        if "host" not in signed or "x-amz-date" not in signed or not amz_date.startswith(date8):
            return key_id, (403, "InvalidSignatureException", _BAD_SIGNATURE)
        want = expected_signature(req["method"], hmap.get("host", ""), req["path"], req["headers"], req["body"],
                                  signed, key_id, issued.secret_access_key, issued.session_token,
                                  (date8, region, service), amz_date)
        if want != signature:
            return key_id, (403, "InvalidSignatureException", _BAD_SIGNATURE)
        return key_id, None

    def _handle(self, c, cid, req, upstream):
        key_id, refusal = self.verdict(req)
        with self._counts_lock:
            if refusal:
                self._rejected_by_key[key_id] += 1
                self._rejections.append((key_id, refusal[1]))
            else:
                self._accepted_by_key[key_id] += 1
        if not refusal:
            return super()._handle(c, cid, req, upstream)
        status, etype, message = refusal
        payload = json.dumps({"__type": ERROR_PREFIX + etype, "message": message}).encode()
        self._send(c, status, "Bad Request" if status == 400 else "Forbidden",
                   [("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
                    ("x-amz-crc32", str(zlib.crc32(payload) & 0xFFFFFFFF))],
                   payload, req["keep"])
        return req["keep"]

    def __repr__(self):
        return f"<SigV4Proxy {self.endpoint} -> {self._upstream.host}:{self._upstream.port}>"
