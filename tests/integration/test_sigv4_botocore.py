"""Differential test: outboxd's SigV4 signer against botocore's SigV4Auth.

Randomized requests (fixed seed) are signed by botocore at a frozen clock and
by build/tools/sigv4_sign (BUILD overrides "build"); every Authorization
header must be identical.

Both signers must see the same request. How each side is fed, and where
botocore canonicalizes differently from AWS's test suites:

- Path: botocore's SigV4Auth (every service but S3, DynamoDB included)
  removes dot segments and empty segments, then percent-encodes the path it
  was given once more (quote(path, safe='/~')), which is AWS's "double
  encoding" of an already-encoded wire path. outboxd signs with
  normalize_path=true, as for DynamoDB, and gets the same string. For a
  trailing "." or ".." botocore drops the trailing slash where RFC 3986
  keeps it ("/a/b/.." -> "/a"); the AWS suites have no such case and
  outboxd follows botocore.
- Query: given a raw query in the URL, botocore sorts the pairs but neither
  decodes nor re-encodes them, so "%e1" or a bare "!" would be signed as
  written, while the AWS suites re-encode (get-vanilla-utf8-query). So
  botocore gets the decoded pairs as request params, the way its own
  clients pass them (quote(safe='-_.~') and sorted), and sigv4_sign gets a
  wire query written in one of several equivalent spellings (strict,
  lowercase hex, reserved characters left bare, "k" for "k="), which it
  must decode and re-encode to the same canonical form.
- Headers: botocore never signs User-Agent, Expect or X-Amzn-Trace-Id; nor
  does outboxd, and the generator sends them to check it. Not generated:
  Date (botocore then signs Date instead of X-Amz-Date), X-Amz-Date,
  X-Amz-Security-Token and X-Amz-Content-SHA256 (each replaced or
  reinterpreted by botocore; outboxd rejects them because it adds them
  itself), Authorization.
- Whitespace in header values: botocore collapses with str.split(), which
  also splits on Unicode spaces (U+00A0, U+2000...) and \\x1c-\\x1f; outboxd
  collapses ASCII whitespace only, as HTTP defines it. Values use spaces,
  tabs and folded newlines, not those characters.
- outboxd signs with service "dynamodb" for DynamoDB and its Streams alike.
"""

import base64
import datetime
import json
import os
import random
import re
import subprocess
import types
import urllib.parse
from pathlib import Path
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / os.environ.get("BUILD", "build") / "tools" / "sigv4_sign"

SEED = 20150830
N_REQUESTS = 300

PATH_SEGMENTS = [
    "a", "B", "dir", "file.txt", ".", "..", "", "", "a b", "ü", "日本", "$delete",
    "a+b", "%41", "%2F", "!*'()", ";:@&=+$,", "~user", "-_.", "x%zz", "tab\u00e9",
]
QUERY_KEYS = ["a", "B", "Param", "Param-3", "ሴ", "key with space", "x+y", "a=b", "&", "~tilde", "%", "é"]
QUERY_VALUES = ["", "", "1", "value", "a b", "ሴ", "+", "=", "&x", "%2F", "!*'()", "ü/ö", "~-._"]
HEADER_NAMES = [
    "Content-Type", "X-Amz-Target", "X-Custom", "x-CUSTOM", "My-Header1", "Accept", "X-Multi",
    "User-Agent", "Expect", "X-Amzn-Trace-Id",
]
WORDS = ["application/x-amz-json-1.0", "DynamoDB_20120810.PutItem", "value1", "a,b", "é", "x=y", "q;v=1"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]


def _identity(rng):
    akid = "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    secret = "".join(rng.choice(alphabet) for _ in range(40))
    return akid, secret


def _path(rng, features):
    segs = [rng.choice(PATH_SEGMENTS) for _ in range(rng.randint(0, 6))]
    path = "/" + "/".join(segs)
    if rng.random() < 0.2:
        path = "/" + path
    if {".", ".."} & set(segs):
        features["dot segments"] += 1
    if "//" in path:
        features["double slashes"] += 1
    if any(ord(c) > 127 for c in path):
        features["unicode path"] += 1
    return path


def _wire_query(rng, pairs):
    """One of several spellings of the same query, as a server may get it."""
    style = rng.choice(["strict", "lower-hex", "bare-reserved"])
    out = []
    for key, value in pairs:
        parts = []
        for s, is_key in ((key, True), (value, False)):
            if style == "bare-reserved":
                # '&', '=', '%', '#' and space must stay encoded to keep the
                # pairs apart; '+' is a literal plus in SigV4.
                enc = urllib.parse.quote(s, safe="-_.~!$'()*,;:@/?+")
            else:
                enc = urllib.parse.quote(s, safe="-_.~")
            if style == "lower-hex":
                enc = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), enc)
            parts.append(enc)
        if parts[1] == "" and rng.random() < 0.5:
            out.append(parts[0])
        else:
            out.append(parts[0] + "=" + parts[1])
    return "&".join(out)


def _header_value(rng, features):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        features["odd whitespace"] += 1
        ws = lambda: rng.choice([" ", "  ", "\t", " \t  "])  # noqa: E731
        return ws() + ws().join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) + ws()
    if kind == 2:
        features["multiline values"] += 1
        return "line1\n  line2\n\t line3"
    if kind == 3:
        return ""
    if kind == 4:
        return "   "
    return "unicode é ü 日本"


def _request(rng, features, identities):
    akid, secret = rng.choice(identities)
    region = rng.choice(REGIONS)
    host = rng.choice([f"dynamodb.{region}.amazonaws.com", f"streams.dynamodb.{region}.amazonaws.com",
                       "localhost:8000"])
    headers = [(rng.choice(["Host", "host", "HOST"]), host)]
    for _ in range(rng.randint(0, 6)):
        headers.append((rng.choice(HEADER_NAMES), _header_value(rng, features)))
    if rng.random() < 0.3:
        name = rng.choice(HEADER_NAMES[:7])
        headers.append((name, _header_value(rng, features)))
        headers.append((name.swapcase(), _header_value(rng, features)))
    rng.shuffle(headers)
    lowered = [n.lower() for n, _ in headers]
    if len(set(lowered)) < len(lowered):
        features["duplicate headers"] += 1

    pairs = []  # a list, not a dict: keys repeat
    for _ in range(rng.randint(0, 5)):
        pairs.append((rng.choice(QUERY_KEYS), rng.choice(QUERY_VALUES)))
    if pairs and rng.random() < 0.3:
        pairs.append((pairs[0][0], rng.choice(QUERY_VALUES)))
    keys = [k for k, _ in pairs]
    if len(set(keys)) < len(keys):
        features["repeated query keys"] += 1
    if any(v == "" for _, v in pairs):
        features["empty query values"] += 1

    body_kind = rng.randrange(3)
    if body_kind == 0:
        body = b""
    elif body_kind == 1:
        body = json.dumps({"TableName": "outbox", "Item": {"id": {"S": "é" * rng.randint(0, 9)}}}).encode()
    else:
        body = rng.randbytes(rng.randint(1, 300))
        features["binary bodies"] += 1

    token = None
    if rng.random() < 0.5:
        token = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
                        for _ in range(rng.randint(20, 120)))
        features["session tokens"] += 1

    when = datetime.datetime(2015, 1, 1) + datetime.timedelta(seconds=rng.randrange(20 * 365 * 86400))
    return {
        "method": rng.choice(METHODS),
        "host": host,
        "path": _path(rng, features),
        "pairs": pairs,
        "query": _wire_query(rng, pairs),
        "headers": headers,
        "body": body,
        "access_key": akid,
        "secret_key": secret,
        "token": token,
        "region": region,
        "service": "dynamodb",
        "when": when,
    }


class _RecordingSigV4Auth(botocore.auth.SigV4Auth):
    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request


def _frozen_datetime_module(when):
    class Frozen(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return when

        @classmethod
        def now(cls, tz=None):
            return when.replace(tzinfo=tz) if tz else when

    return types.SimpleNamespace(datetime=Frozen, timezone=datetime.timezone, timedelta=datetime.timedelta)


def _botocore_sign(r):
    request = AWSRequest(method=r["method"], url="https://" + r["host"] + r["path"],
                         data=r["body"], params=r["pairs"])
    for name, value in r["headers"]:
        request.headers[name] = value  # appends: HTTPHeaders keeps repeats
    signer = _RecordingSigV4Auth(Credentials(r["access_key"], r["secret_key"], r["token"]),
                                 r["service"], r["region"])
    with mock.patch.object(botocore.auth, "datetime", _frozen_datetime_module(r["when"])):
        signer.add_auth(request)
    return request.headers["Authorization"], signer.last_canonical_request


def _tool_line(r):
    line = {
        "method": r["method"],
        "path": r["path"],
        "query": r["query"],
        "headers": [[n, v] for n, v in r["headers"]],
        "body_b64": base64.b64encode(r["body"]).decode(),
        "access_key": r["access_key"],
        "secret_key": r["secret_key"],
        "region": r["region"],
        "service": r["service"],
        "amz_date": r["when"].strftime("%Y%m%dT%H%M%SZ"),
    }
    if r["token"] is not None:
        line["token"] = r["token"]
    return json.dumps(line, ensure_ascii=False)


def _generate():
    rng = random.Random(SEED)
    features = {k: 0 for k in ["dot segments", "double slashes", "unicode path", "odd whitespace",
                               "multiline values", "duplicate headers", "repeated query keys",
                               "empty query values", "binary bodies", "session tokens"]}
    identities = [_identity(rng) for _ in range(4)]
    # Two requests in a row may share identity, day and region: the tool's
    # key cache then hits; otherwise it is replaced.
    requests = [_request(rng, features, identities) for _ in range(N_REQUESTS)]
    return requests, features


def test_generator_covers_every_awkward_feature():
    _, features = _generate()
    thin = {k: v for k, v in features.items() if v < 10}
    assert not thin, f"too few requests with {thin}"


def test_authorization_matches_botocore_for_every_request():
    assert TOOL.exists(), f"{TOOL} is missing: run `make {TOOL.relative_to(ROOT)}`"
    requests, _ = _generate()
    lines = [_tool_line(r) for r in requests]
    proc = subprocess.run([str(TOOL)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    ours = proc.stdout.splitlines()
    assert len(ours) == len(requests), f"sigv4_sign printed {len(ours)} lines for {len(requests)}:\n{proc.stderr}"

    mismatches = []
    for i, (r, line, got) in enumerate(zip(requests, lines, ours)):
        want, creq = _botocore_sign(r)
        if got != want:
            mismatches.append((i, line, got, want, creq))
    report = []
    for i, line, got, want, creq in mismatches[:5]:
        detail = subprocess.run([str(TOOL), "-v"], input=line + "\n", capture_output=True, text=True,
                                encoding="utf-8", timeout=10)
        report.append(f"request {i}: {line}\n  ours:     {got}\n  botocore: {want}\n"
                      f"--- botocore canonical request\n{creq}\n{detail.stderr}")
    assert not mismatches, f"{len(mismatches)} of {len(requests)} differ:\n" + "\n".join(report)
    print(f"{len(requests)} requests signed identically")
