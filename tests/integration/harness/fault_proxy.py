"""FaultProxy: an HTTP/1.1 reverse proxy on 127.0.0.1 that injects AWS-style faults.

It runs in the test's process (threads). Rules are consulted per request, in order;
the first rule that matches (target op, optional body substring), still has `times`
left and wins its `probability` roll decides what happens. No match = forward.

    proxy = FaultProxy(ddb.endpoint).start()
    proxy.set_rules([Rule(match_target="PutItem", action="throttle", times=2),
                     Rule(action="status", status=500, probability=0.3, seed=7)])
    ... point outboxd / boto3 at proxy.endpoint ...
    assert proxy.count(target="PutItem", action="throttle") == 2
"""

import http.client
import json
import random
import socket
import struct
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field

from .server_base import LoopbackServer, RequestLog, Upstream, read_body

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"

ACTIONS = ("pass", "delay", "throttle", "throttling", "status", "error",
           "reset", "reset_after", "hang", "unprocessed", "rewrite")

_STATUS_DEFAULT_TYPE = {500: "InternalServerError", 502: "BadGateway",
                        503: "ServiceUnavailable", 504: "GatewayTimeout"}


@dataclass
class Rule:
    """One fault rule.

    match_target: op name ("PutItem"), full target ("DynamoDBStreams_20120810.GetRecords"),
                  a list of those, or None for every request.
    match_body:   optional substring the request body must contain (e.g. an item id).
    action:       pass | delay | throttle | throttling | status | error | reset |
                  reset_after (forward, then RST instead of answering) |
                  hang (read the request, answer nothing for delay_ms, then RST) |
                  unprocessed (answer a BatchGetItem 200 with every key in UnprocessedKeys) |
                  rewrite (forward, then answer a 200 with rewrite(the answer's JSON) instead).
    times:        apply to the first N matching requests only (None = always).
    probability:  apply with this chance (seeded RNG per rule; seed None = 0).
    status:       HTTP status for `status` (default 500) / `error` (default 400).
    error_type:   __type after the '#' (defaults: per action / status).
    message:      error message.
    delay_ms:     sleep before acting (for `delay` the added latency; also honoured by
                  the error actions, and for `hang` how long to hold the connection).
    rewrite:      for `rewrite`, a function from the decoded answer (and, when it takes two
                  arguments, the decoded request) to the answer to send.
    """
    match_target: object = None
    action: str = "pass"
    times: int = None
    probability: float = None
    seed: int = None
    status: int = None
    error_type: str = None
    message: str = None
    delay_ms: int = 0
    match_body: str = None
    rewrite: object = None
    # runtime state
    applied: int = field(default=0, compare=False)
    _rng: random.Random = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {ACTIONS}")
        if self.action == "delay" and not self.delay_ms:
            raise ValueError("delay needs delay_ms")
        if self.action == "rewrite" and not callable(self.rewrite):
            raise ValueError("rewrite needs a rewrite function")
        self._rng = random.Random(0 if self.seed is None else self.seed)

    def matches(self, op, full_target, body):
        if self.match_target is not None:
            names = [self.match_target] if isinstance(self.match_target, str) else list(self.match_target)
            if op not in names and full_target not in names:
                return False
        if self.match_body is not None and self.match_body.encode() not in body:
            return False
        return True

    def take(self):
        """Called under the proxy lock for a matching request: apply now?"""
        if self.times is not None and self.applied >= self.times:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.applied += 1
        return True


@dataclass
class RequestRecord:
    seq: int
    conn: int                # client connection number (keep-alive: several records share one)
    start: float             # time.monotonic() when the request was fully read
    end: float               # just before the response was sent / the connection reset
    wall: float              # time.time() at start
    method: str
    path: str
    target: str              # op name after the '.', "" if no X-Amz-Target
    full_target: str
    action: str              # the action taken ("pass" when no rule applied)
    rule: int                # index of the rule applied, -1 for none
    status: object           # int HTTP status, or "reset"
    forwarded: bool          # reached the upstream
    error_type: str = None   # __type (after '#') of an error response, injected or upstream
    request_bytes: int = 0
    body: bytes = b""        # the request body (stream reads and writes are small)

    @property
    def duration(self):
        return self.end - self.start


def _record_filter(target=None, action=None, status=None, forwarded=None):
    targets = None if target is None else ([target] if isinstance(target, str) else list(target))
    return lambda r: ((targets is None or r.target in targets or r.full_target in targets) and
                      (action is None or r.action == action) and
                      (status is None or r.status == status) and
                      (forwarded is None or r.forwarded == forwarded))


class FaultProxy(LoopbackServer):
    thread_name = "faultproxy"
    stop_waits_for_connections = True     # no request reaches upstream after stop()

    def __init__(self, upstream, port=None, rules=None, upstream_timeout=60.0):
        super().__init__(port)
        self._upstream = Upstream(upstream, upstream_timeout)
        self._lock = threading.Lock()
        self._rules = list(rules or [])
        self._log = RequestLog()

    # -- rules -----------------------------------------------------------------

    def set_rules(self, rules):
        """Replace all rules (their counters and RNGs start afresh)."""
        rules = list(rules)
        for r in rules:
            r.applied = 0
            r._rng = random.Random(0 if r.seed is None else r.seed)
        with self._lock:
            self._rules = rules

    def add_rule(self, rule):
        with self._lock:
            self._rules.append(rule)

    def clear_rules(self):
        with self._lock:
            self._rules = []

    @property
    def rules(self):
        with self._lock:
            return list(self._rules)

    # -- the request log -------------------------------------------------------

    @property
    def requests(self):
        """A snapshot (list of RequestRecord, in arrival order)."""
        return self._log.snapshot()

    def clear_log(self):
        self._log.clear()

    def take_log(self):
        """The records so far, removed from the log at once (a long run tallies and
        forgets them, so none is missed and its memory stays flat)."""
        return self._log.take()

    def select(self, target=None, action=None, status=None, forwarded=None):
        """Records filtered by target op (str or list), action, status (int or "reset"), forwarded."""
        where = _record_filter(target, action, status, forwarded)
        return [r for r in self.requests if where(r)]

    def count(self, target=None, action=None, status=None, forwarded=None):
        return len(self.select(target, action, status, forwarded))

    def times(self, target=None, **filters):
        """Start times (monotonic) of the selected requests."""
        return [r.start for r in self.select(target, **filters)]

    def gaps(self, target=None, **filters):
        """Seconds between consecutive selected requests (start to start): backoff checks."""
        t = self.times(target, **filters)
        return [b - a for a, b in zip(t, t[1:])]

    def wait_for(self, n, timeout=30.0, **filters):
        """Block until count(**filters) >= n; returns the count (may be < n on timeout)."""
        return self._log.wait(n, timeout, where=_record_filter(**filters))

    def _record(self, **kw):
        return self._log.add(lambda seq: RequestRecord(seq=seq, **kw))

    # -- serving ----------------------------------------------------------------

    def serve_connection(self, c, client_address, cid):
        rfile = c.makefile("rb")
        upstream = self._upstream.connect()
        try:
            while not self._stopping.is_set():
                req = self._read_request(c, rfile)
                if req is None or not self._handle(c, cid, req, upstream):
                    break
        finally:
            upstream.close()
            rfile.close()

    def _read_request(self, c, rfile):
        line = rfile.readline(65537)
        while line in (b"\r\n", b"\n"):          # tolerate stray CRLF between requests
            line = rfile.readline(65537)
        if not line:
            return None
        try:
            method, path, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        except ValueError:
            raise ConnectionError("not a request line")
        headers = []
        while True:
            h = rfile.readline(65537)
            if not h:
                raise ConnectionError("the client went in the middle of a request")
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        hmap = {k.lower(): v for k, v in headers}
        if hmap.get("expect", "").lower() == "100-continue":
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = read_body(rfile, hmap)
        conn_hdr = hmap.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and "close" not in conn_hdr) or "keep-alive" in conn_hdr
        return dict(method=method, path=path, version=version, headers=headers, hmap=hmap,
                    body=body, keep=keep, start=time.monotonic(), wall=time.time(), rfile=rfile)

    def _choose(self, op, full_target, body):
        with self._lock:
            for i, r in enumerate(self._rules):
                if r.matches(op, full_target, body) and r.take():
                    return i, r
        return -1, None

    def _handle(self, c, cid, req, upstream):
        # Each request is recorded before its answer leaves, so a client that
        # has seen the answer always finds the request in the log.
        full_target = req["hmap"].get("x-amz-target", "")
        op = full_target.rpartition(".")[2] if full_target else ""
        idx, rule = self._choose(op, full_target, req["body"])
        action = rule.action if rule else "pass"
        base = dict(conn=cid, start=req["start"], wall=req["wall"], method=req["method"],
                    path=req["path"], target=op, full_target=full_target, action=action,
                    rule=idx, request_bytes=len(req["body"]), body=req["body"])
        if rule and rule.delay_ms and action != "hang":
            time.sleep(rule.delay_ms / 1000.0)

        if action == "reset":
            self._record(end=time.monotonic(), status="reset", forwarded=False, **base)
            self._rst(c, req["rfile"])
            return False
        if action == "hang":
            end = time.monotonic() + (rule.delay_ms or 0) / 1000.0
            while time.monotonic() < end and not self._stopping.is_set():
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
            self._record(end=time.monotonic(), status="reset", forwarded=False, **base)
            self._rst(c, req["rfile"])
            return False
        if action == "unprocessed":
            asked = json.loads(req["body"])["RequestItems"]
            payload = json.dumps({"Responses": {t: [] for t in asked}, "UnprocessedKeys": asked}).encode()
            self._record(end=time.monotonic(), status=200, forwarded=False, **base)
            self._send(c, 200, "OK", [("Content-Type", "application/x-amz-json-1.0")], payload, req["keep"])
            return req["keep"]
        if action in ("throttle", "throttling", "status", "error"):
            status, etype = self._error_for(rule, action)
            msg = rule.message or f"injected by FaultProxy ({action})"
            payload = json.dumps({"__type": ERROR_PREFIX + etype, "message": msg}).encode()
            self._record(end=time.monotonic(), status=status, forwarded=False, error_type=etype, **base)
            self._send(c, status, http.client.responses.get(status, "Error"),
                       [("Content-Type", "application/x-amz-json-1.0"),
                        ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
                        ("x-amz-crc32", str(zlib.crc32(payload) & 0xFFFFFFFF))],
                       payload, req["keep"])
            return req["keep"]

        # pass / delay / reset_after / rewrite: forward
        try:
            status, reason, headers, payload = self._upstream.exchange(
                upstream, req["method"], req["path"], req["headers"], req["body"])
        except OSError as e:
            payload = json.dumps({"__type": ERROR_PREFIX + "InternalServerError",
                                  "message": f"FaultProxy: upstream unreachable: {e}"}).encode()
            self._record(end=time.monotonic(), status=502, forwarded=False,
                         error_type="InternalServerError", **{**base, "action": "upstream_error"})
            self._send(c, 502, "Bad Gateway", [("Content-Type", "application/x-amz-json-1.0")],
                       payload, False)
            return False
        etype = None
        if status >= 400:
            try:
                etype = str(json.loads(payload).get("__type", "")).rpartition("#")[2] or None
            except (ValueError, AttributeError):
                etype = None
        if action == "reset_after":
            self._record(end=time.monotonic(), status="reset", forwarded=True, error_type=etype, **base)
            self._rst(c, req["rfile"])
            return False
        if action == "rewrite" and status == 200:
            answer = json.loads(payload)
            if rule.rewrite.__code__.co_argcount >= 2:   # rewrite(answer, request)
                answer = rule.rewrite(answer, json.loads(req["body"] or b"{}"))
            else:
                answer = rule.rewrite(answer)
            payload = json.dumps(answer).encode()
        self._record(end=time.monotonic(), status=status, forwarded=True, error_type=etype, **base)
        self._send(c, status, reason, headers, payload, req["keep"])
        return req["keep"]

    @staticmethod
    def _error_for(rule, action):
        if action == "throttle":
            return rule.status or 400, rule.error_type or "ProvisionedThroughputExceededException"
        if action == "throttling":
            return rule.status or 400, rule.error_type or "ThrottlingException"
        if action == "error":
            return rule.status or 400, rule.error_type or "ValidationException"
        status = rule.status or 500
        return status, rule.error_type or _STATUS_DEFAULT_TYPE.get(status, "InternalServerError")

    @staticmethod
    def _send(c, status, reason, headers, payload, keep):
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(payload)}")
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        c.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    @staticmethod
    def _rst(c, rfile):
        """Close so that the peer gets a TCP RST, not a FIN (SO_LINGER 0)."""
        try:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            rfile.close()             # the makefile holds a reference: the fd closes with the last one
            c.close()
        except OSError:
            pass

    def __repr__(self):
        return f"<FaultProxy {self.endpoint} -> {self._upstream.host}:{self._upstream.port}>"
