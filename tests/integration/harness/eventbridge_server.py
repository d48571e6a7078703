"""EventBridgeServer: Amazon EventBridge's PutEvents on 127.0.0.1, for there is no emulator.

Each request is checked as the service would, and refused in its words:
- its SigV4 signature, recomputed by botocore's SigV4Auth from the request as received, the
  tests' keys, the server's region and the signing name "events" (403
  InvalidSignatureException; also when unsigned, for another key, or more than 15 minutes off);
- X-Amz-Target AWSEvents.PutEvents and Content-Type application/x-amz-json-1.1, a JSON body
  (400 UnknownOperationException, SerializationException);
- the body against botocore's own service model of PutEvents (botocore.validate.ParamValidator):
  what botocore would refuse is 400 ValidationException; so is what the service refuses beyond
  what botocore checks: more than 10 entries, entries not under 256 KiB together by the
  service's entry-size rule ("must be less than 256KB"), an EventBusName that does not match the model's pattern;
- an event bus it does not have (`buses`) fails the whole call: 400 ResourceNotFoundException.
Each entry then, as the service documents: no Source, no DetailType, or one over 128 characters:
InvalidArgument; a Source starting with "aws.": NotAuthorizedForSourceException; a Detail that is
not a JSON object: MalformedDetail. Accepted entries get an EventId and are recorded in arrival
order. Answers have the service's shape: {"FailedEntryCount": N, "Entries": [{"EventId": ...} |
{"ErrorCode": ..., "ErrorMessage": ...}]}.

    server = EventBridgeServer(buses=("default", "orders")).start()
    server.fail_calls(3, code="ThrottlingException")          # the next 3 requests, whole
    server.fail_entries(lambda e: "m1" in e["Detail"], code="InternalFailure", times=2)
    ... events = server.events()   # Event(n, bus, source, detail_type, detail, time, event_id)
    server.stop(); server.start()  # an outage, on the same port
"""

import collections
import datetime
import hmac
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from .server_base import LoopbackServer, RequestLog, read_body

ACCESS_KEY = "AKIDTEST"      # the keys the tests give outboxd (outboxd_config.aws_section)
SECRET_KEY = "testsecret"
SIGNING_NAME = "events"
TARGET = "AWSEvents.PutEvents"
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_ENTRIES = 10
MAX_BYTES = 256 * 1024
MAX_DETAIL_TYPE = 128
_input_shape = None
_shape_lock = threading.Lock()


def put_events_shape():
    """PutEvents' input shape in botocore's model of EventBridge (loaded once)."""
    global _input_shape
    with _shape_lock:
        if _input_shape is None:
            import botocore.session
            model = botocore.session.get_session().get_service_model("events")
            _input_shape = model.operation_model("PutEvents").input_shape
        return _input_shape


def entry_size(entry):
    """An entry's size by the service's rule: Time 14 bytes when present, the UTF-8 bytes of
    Source, DetailType, Detail and each of Resources."""
    size = 14 if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(key, "")).encode())
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


def bus_name(bus):
    """The name of a bus given by name or ARN."""
    return bus.rsplit("event-bus/", 1)[-1]


class ServiceError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Event:
    """An accepted entry: n counts them in arrival order, from 1."""
    n: int
    bus: str
    source: str
    detail_type: str
    detail: str
    time: object          # the Time as sent (seconds), None when absent
    event_id: str


@dataclass
class Call:
    """One request as answered: n counts requests from 1; entries as received (None when the
    body was not a valid request), status and error code of the answer."""
    n: int
    entries: list
    status: int = 0
    code: str = ""
    failed: int = 0       # FailedEntryCount of a 200 answer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EventBridgeServer"

    def do_POST(self):
        body = read_body(self.rfile, self.headers)
        status, answer = self.server._answer(self, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def log_message(self, format, *args):
        pass


class EventBridgeServer(LoopbackServer):
    thread_name = "eventbridge"
    handler = _Handler

    def __init__(self, port=None, region="us-east-1", buses=("default",), access_key=ACCESS_KEY,
                 secret_key=SECRET_KEY):
        super().__init__(port)
        self.region = region
        self.buses = set(buses)
        self.access_key, self.secret_key = access_key, secret_key
        self._events = RequestLog()
        self._calls = RequestLog()
        self._lock = threading.Lock()
        self._call_faults = collections.deque()
        self._entry_faults = []
        self.bind()

    # -- what tests read -------------------------------------------------------

    def events(self):
        """The accepted entries so far, in arrival order."""
        return self._events.snapshot()

    def wait_events(self, n, timeout):
        """Blocks until n entries were accepted; returns how many were."""
        return self._events.wait(n, timeout)

    def calls(self):
        """Every request so far, answered, in arrival order."""
        return self._calls.snapshot()

    # -- faults ----------------------------------------------------------------

    def fail_calls(self, n, status=400, code="ThrottlingException", message="Rate exceeded"):
        """Answers the next n requests (once signed and well-formed) with this error."""
        with self._lock:
            self._call_faults.extend([(status, code, message)] * n)

    def fail_entries(self, match, code="ThrottlingException", message="Rate exceeded", times=None):
        """Fails each entry for which match(entry as received) is true with ErrorCode code,
        `times` entries in all (None: every one)."""
        with self._lock:
            self._entry_faults.append([match, code, message, times])

    def clear_faults(self):
        with self._lock:
            self._call_faults.clear()
            self._entry_faults.clear()

    # -- serving ---------------------------------------------------------------

    def _answer(self, handler, body):
        call = self._calls.add(lambda n: Call(n, None))
        try:
            self._check_signature(handler, body)
            params = self._check_request(handler, body)
            self._calls.update(call, entries=params["Entries"])
            with self._lock:
                fault = self._call_faults.popleft() if self._call_faults else None
            if fault:
                raise ServiceError(*fault)
            self._check_entries(params["Entries"])
        except ServiceError as e:
            self._calls.update(call, status=e.status, code=e.code)
            return e.status, {"__type": e.code, "message": e.message}
        results = [self._put(entry) for entry in params["Entries"]]
        failed = sum(1 for r in results if "ErrorCode" in r)
        self._calls.update(call, status=200, failed=failed)
        return 200, {"FailedEntryCount": failed, "Entries": results}

    def _check_signature(self, handler, body):
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        def refuse(why):
            raise ServiceError(403, "InvalidSignatureException", why)
        auth = handler.headers.get("Authorization", "")
        amz_date = handler.headers.get("X-Amz-Date", "")
        if not auth.startswith("AWS4-HMAC-SHA256 ") or not amz_date:
            refuse("Request is missing Authentication Token")
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",")
                      if "=" in part)
        scope = fields.get("Credential", "").split("/")
        signed = fields.get("SignedHeaders", "").split(";")
        if scope != [self.access_key, amz_date[:8], self.region, SIGNING_NAME, "aws4_request"]:
            refuse(f"Credential should be scoped to {self.access_key}/{amz_date[:8]}/{self.region}/"
                   f"{SIGNING_NAME}/aws4_request, not {fields.get('Credential')}")
        missing = {"host", "x-amz-date", "x-amz-target", "content-type"} - set(signed)
        if missing:
            refuse(f"SignedHeaders lacks {', '.join(sorted(missing))}")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            refuse(f"X-Amz-Date {amz_date} is not YYYYMMDDTHHMMSSZ")
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 15 * 60:
            refuse(f"Signature expired: {amz_date} is more than 15 minutes from now")
        request = AWSRequest(method=handler.command, url=f"http://{handler.headers.get('Host')}{handler.path}",
                             data=body)
        for name in signed:
            for value in handler.headers.get_all(name) or []:
                request.headers[name] = value
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key), SIGNING_NAME, self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            refuse("The request signature we calculated does not match the signature you provided.")

    def _check_request(self, handler, body):
        from botocore.validate import ParamValidator
        if handler.headers.get("X-Amz-Target") != TARGET:
            raise ServiceError(400, "UnknownOperationException", f"not {TARGET}")
        if (handler.headers.get("Content-Type") or "").split(";")[0].strip() != CONTENT_TYPE:
            raise ServiceError(400, "SerializationException", f"Content-Type is not {CONTENT_TYPE}")
        try:
            params = json.loads(body)
        except ValueError as e:
            raise ServiceError(400, "SerializationException", f"body is not JSON: {e}") from None
        if not isinstance(params, dict):
            raise ServiceError(400, "SerializationException", "body is not a JSON object")
        report = ParamValidator().validate(params, put_events_shape())
        if report.has_errors():
            raise ServiceError(400, "ValidationException", report.generate_report())
        return params

    def _check_entries(self, entries):
        """What the service checks of the call beyond the model (the whole call fails)."""
        if len(entries) > MAX_ENTRIES:
            raise ServiceError(400, "ValidationException", f"1 validation error detected: Value at 'entries' "
                               f"failed to satisfy constraint: Member must have length less than or equal to {MAX_ENTRIES}")
        total = sum(entry_size(e) for e in entries)
        if total >= MAX_BYTES:
            raise ServiceError(400, "ValidationException",
                               f"Total size of the entries in the request is over the limit ({total} bytes)")
        pattern = put_events_shape().members["Entries"].member.members["EventBusName"].metadata["pattern"]
        for e in entries:
            bus = e.get("EventBusName", "default")
            if not re.fullmatch(pattern, bus):
                raise ServiceError(400, "ValidationException", f"EventBusName {bus!r} does not match {pattern}")
            if bus_name(bus) not in self.buses:
                raise ServiceError(400, "ResourceNotFoundException", f"Event bus {bus_name(bus)} does not exist.")

    def _put(self, entry):
        """One entry's result; an accepted one is recorded."""
        failed = self._entry_error(entry)
        if failed:
            return {"ErrorCode": failed[0], "ErrorMessage": failed[1]}
        event_id = str(uuid.uuid4())
        self._events.add(lambda n: Event(n, bus_name(entry.get("EventBusName", "default")), entry["Source"],
                                         entry["DetailType"], entry["Detail"], entry.get("Time"), event_id))
        return {"EventId": event_id}

    def _entry_error(self, entry):
        source, detail_type = entry.get("Source"), entry.get("DetailType")
        if not source:
            return "InvalidArgument", "Parameter Source is not valid. Reason: Source is a required argument."
        if not detail_type:
            return "InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is a required argument."
        if len(detail_type.encode("utf-16-le")) // 2 > MAX_DETAIL_TYPE:
            return "InvalidArgument", "Parameter DetailType is not valid. Reason: DetailType is too long."
        if source.startswith("aws."):
            return "NotAuthorizedForSourceException", "Not authorized for the source."
        try:
            detail_ok = isinstance(json.loads(entry.get("Detail", "")), dict)
        except ValueError:
            detail_ok = False
        if not detail_ok:
            return "MalformedDetail", "Detail is malformed."
        with self._lock:
            for fault in self._entry_faults:
                match, code, message, times = fault
                if (times is None or times > 0) and match(entry):
                    if times is not None:
                        fault[3] -= 1
                    return code, message
        return None


class EventBridgeClient:
    """A PutEvents client signed by botocore (the tests' keys unless given), for tests of the
    server itself: call(params or raw bytes) -> (HTTP status, answer as JSON)."""

    def __init__(self, endpoint, region="us-east-1"):
        self.endpoint, self.region = endpoint, region

    def call(self, params, access_key=ACCESS_KEY, secret_key=SECRET_KEY, timeout=10):
        import urllib.error
        import urllib.request
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        body = params if isinstance(params, bytes) else json.dumps(params).encode()
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET})
        SigV4Auth(Credentials(access_key, secret_key), SIGNING_NAME, self.region).add_auth(req)
        r = urllib.request.Request(self.endpoint + "/", data=body, method="POST", headers=dict(req.headers))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(r, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
