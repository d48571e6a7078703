"""Differential test: outboxd's MSK IAM token against botocore's presigner.

The token is what aws-msk-iam-sasl-signer-python's generate_auth_token makes
(aws_msk_iam_sasl_signer/MSKAuthTokenProvider.py, __construct_auth_token):
SigV4QueryAuth(credentials, "kafka-cluster", region, expires=900) adds its
query authentication to AWSRequest("GET", "https://kafka.REGION.amazonaws.com/",
params={"Action": "kafka-cluster:Connect"}); then the request's params become
{"User-Agent": "<lib>/<version>"}, prepare() appends them with urlencode, and
the URL is base64url-encoded with the padding stripped. `botocore_token`
below does exactly that at a frozen clock, with outboxd's User-Agent
("outboxd/VERSION") in place of the library's, and build/tools/msk_token
(BUILD overrides "build") must print the same token for the same
credentials, region and time: random ones, with and without a session
token.

Then each token is checked the way a broker would: decoded, its signature
recomputed by botocore's SigV4Auth from the URL's own query (X-Amz-Signature
and the unsigned User-Agent left out), over the credentials' secret.
"""

import base64
import contextlib
import datetime
import json
import os
import random
import subprocess
import urllib.parse
from pathlib import Path
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from test_sigv4_botocore import _frozen_datetime_module

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / os.environ.get("BUILD", "build") / "tools" / "msk_token"
USER_AGENT = "outboxd/" + (ROOT / "VERSION").read_text().strip()

SEED = 20230613
N_TOKENS = 60
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1", "me-central-1"]
EXPIRES = 900


@contextlib.contextmanager
def _frozen_clock(when):
    """botocore's signing time is `when`: older botocore reads datetime.utcnow,
    newer get_current_datetime."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(botocore.auth, "datetime", _frozen_datetime_module(when)))
        if hasattr(botocore.auth, "get_current_datetime"):
            stack.enter_context(mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: when))
        yield


def botocore_token(access_key, secret_key, token, region, when, user_agent=USER_AGENT):
    """aws-msk-iam-sasl-signer-python's __construct_auth_token at `when` (naive UTC)."""
    request = AWSRequest(method="GET", url=f"https://kafka.{region}.amazonaws.com/",
                         params={"Action": "kafka-cluster:Connect"})
    signer = botocore.auth.SigV4QueryAuth(Credentials(access_key, secret_key, token), "kafka-cluster", region,
                                          expires=EXPIRES)
    with _frozen_clock(when):
        signer.add_auth(request)
    request.params = {"User-Agent": user_agent}
    url = request.prepare().url
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def _decode(token):
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def _verifies(url, access_key, secret_key, region):
    """Whether url's X-Amz-Signature is botocore's signature of the rest of it."""
    parts = urllib.parse.urlsplit(url)
    pairs = [p.split("=", 1) for p in parts.query.split("&")]
    given = dict(pairs)
    signed_query = "&".join(f"{k}={v}" for k, v in pairs if k not in ("X-Amz-Signature", "User-Agent"))
    request = AWSRequest(method="GET", url=urllib.parse.urlunsplit(parts._replace(query=signed_query)))
    request.context["timestamp"] = given["X-Amz-Date"]
    # The token, if any, is in the query: the credentials only sign.
    auth = botocore.auth.SigV4Auth(Credentials(access_key, secret_key), "kafka-cluster", region)
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    return auth.signature(string_to_sign, request) == given["X-Amz-Signature"]


def _random_case(rng):
    access_key = rng.choice(["AKIA", "ASIA"]) + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
                                                      for _ in range(16))
    secret_key = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                         for _ in range(40))
    token = None
    if rng.random() < 0.5:
        # STS tokens are base64 with '/', '+' and '=': all must be percent-encoded.
        token = "IQoJb3JpZ2luX2VjE" + "".join(
            rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
            for _ in range(rng.randint(100, 900))) + rng.choice(["", "=", "=="])
    when = datetime.datetime(2015, 1, 1) + datetime.timedelta(seconds=rng.randrange(30 * 365 * 86400))
    return {"access_key": access_key, "secret_key": secret_key, "token": token,
            "region": rng.choice(REGIONS), "when": when}


def _cases():
    rng = random.Random(SEED)
    return [_random_case(rng) for _ in range(N_TOKENS)]


def _outboxd_tokens(cases):
    assert TOOL.exists(), f"{TOOL} is missing: run `make {TOOL.relative_to(ROOT)}`"
    lines = []
    for c in cases:
        line = {"access_key": c["access_key"], "secret_key": c["secret_key"], "region": c["region"],
                "now": int(c["when"].replace(tzinfo=datetime.timezone.utc).timestamp())}
        if c["token"] is not None:
            line["token"] = c["token"]
        lines.append(json.dumps(line))
    proc = subprocess.run([str(TOOL)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(out) == len(cases), f"msk_token failed:\n{proc.stdout}\n{proc.stderr}"
    return [line.split(" ") for line in out]


def test_cases_cover_session_tokens_and_their_absence():
    with_token = sum(c["token"] is not None for c in _cases())
    assert 10 <= with_token <= N_TOKENS - 10


def test_token_equals_botocore_presigners_for_random_credentials_regions_and_times():
    cases = _cases()
    mismatches = []
    for i, (c, (ours, _)) in enumerate(zip(cases, _outboxd_tokens(cases))):
        want = botocore_token(c["access_key"], c["secret_key"], c["token"], c["region"], c["when"])
        if ours != want:
            mismatches.append(f"case {i} ({c['region']}, {c['when']}, token: {c['token'] is not None}):\n"
                              f"  ours:     {_decode(ours)}\n  botocore: {_decode(want)}")
    assert not mismatches, f"{len(mismatches)} of {len(cases)} differ:\n" + "\n".join(mismatches[:3])


def test_token_expires_900_seconds_after_signing():
    cases = _cases()
    for c, (_, expires_ms) in zip(cases, _outboxd_tokens(cases)):
        signed_at = int(c["when"].replace(tzinfo=datetime.timezone.utc).timestamp())
        assert int(expires_ms) == (signed_at + EXPIRES) * 1000


def test_decoded_token_is_a_url_whose_signature_botocore_verifies():
    cases = _cases()
    for c, (ours, _) in zip(cases, _outboxd_tokens(cases)):
        url = _decode(ours)
        assert url.startswith(f"https://kafka.{c['region']}.amazonaws.com/?Action=kafka-cluster%3AConnect&")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert query["X-Amz-Expires"] == [str(EXPIRES)]
        assert query["X-Amz-SignedHeaders"] == ["host"]
        assert query["X-Amz-Credential"][0].startswith(c["access_key"] + "/")
        assert query.get("X-Amz-Security-Token") == ([c["token"]] if c["token"] else None)
        assert query["User-Agent"] == [USER_AGENT]
        assert _verifies(url, c["access_key"], c["secret_key"], c["region"])
        # Not vacuous: another secret does not verify.
        assert not _verifies(url, c["access_key"], c["secret_key"][::-1], c["region"])
