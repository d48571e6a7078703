"""HttpReceiver: an HTTP/1.1 server on 127.0.0.1 that records every request.

A webhook endpoint for tests of the http sink and of the relay: keep-alive,
one thread per connection, optional TLS. Each request is recorded (method,
path, headers, body, monotonic time) and answered with the status a
test-chosen function returns (default 200), with an empty body.

    rx = HttpReceiver().start()                 # or HttpReceiver(certfile=..., keyfile=...)
    rx.respond(lambda req: 503 if req.headers["ce-id"] == "m1" else 200)
    ... POST to rx.url + "/hook" ...
    assert rx.wait_for(10, timeout=5)           # 10 requests answered 2xx
    bodies = [r.body for r in rx.accepted()]
    rx.stop()
"""

import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler

from .server_base import LoopbackServer, RequestLog, read_body


@dataclass
class Request:
    method: str
    path: str
    headers: Message          # case-insensitive get/[]; get_all for repeated names
    body: bytes
    time: float               # time.monotonic() when the request was read
    client_port: int          # the client's TCP port: one per kept-alive connection
    status: int = 0           # what it was answered (0 while the responder runs)


def _answered_2xx(req):
    return 200 <= req.status < 300


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive
    server_version = "HttpReceiver"

    def _handle(self):
        body = read_body(self.rfile, self.headers)
        self.server._answer(self, Request(self.command, self.path, self.headers, body,
                                         time.monotonic(), self.client_address[1]))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format, *args):
        pass


class HttpReceiver(LoopbackServer):
    thread_name = "http-receiver"
    handler = _Handler

    def __init__(self, certfile=None, keyfile=None, port=0, keep=True):
        super().__init__(port, certfile, keyfile)
        # keep=False: requests are answered (the responder still sees each) but not kept,
        # so a long run's memory stays flat; requests/accepted/wait_for then see none.
        self._keep = keep
        self._log = RequestLog()
        self._responder = lambda req: 200
        self.bind()

    def respond(self, fn):
        """fn(Request) -> HTTP status for every later request (it may sleep)."""
        self._responder = fn

    @property
    def requests(self):
        return self._log.snapshot()

    def accepted(self):
        """The requests answered 2xx, in arrival order."""
        return [r for r in self._log.snapshot() if _answered_2xx(r)]

    def wait_for(self, n, timeout=10.0):
        """True once at least n requests were answered 2xx; False after timeout seconds."""
        return self._log.wait(n, timeout, where=_answered_2xx) >= n

    def _answer(self, handler, req):
        if self._keep:
            self._log.add(lambda _: req)
        self._log.update(req, status=int(self._responder(req)))
        handler.send_response(req.status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        handler.wfile.flush()
