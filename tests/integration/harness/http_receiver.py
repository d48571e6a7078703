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

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: Message          # case-insensitive get/[]; get_all for repeated names
    body: bytes
    time: float               # time.monotonic() when the request was read
    client_port: int          # the client's TCP port: one per kept-alive connection
    status: int = 0           # what it was answered (0 while the responder runs)


def _read_chunked(rfile):
    body = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += rfile.read(size)
        rfile.readline()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive
    server_version = "HttpReceiver"

    def _handle(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.receiver._serve(self, Request(self.command, self.path, self.headers, body,
                                                  time.monotonic(), self.client_address[1]))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True              # a responder that sleeps must not block stop()
    request_queue_size = 256

    def finish_request(self, request, client_address):
        # TLS handshakes run here, in the connection's thread, so a client
        # that never finishes one cannot stall accept().
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.receiver._lock:
            self.receiver._connections.add(request)
        if self.receiver._tls is not None:
            try:
                request = self.receiver._tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        try:
            super().finish_request(request, client_address)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass               # the client gave up (e.g. its timeout), or stop() closed it
        finally:
            with self.receiver._lock:
                self.receiver._connections.discard(request)

    def handle_error(self, request, client_address):
        pass


class HttpReceiver:
    def __init__(self, certfile=None, keyfile=None, port=0, keep=True):
        self._lock = threading.Condition()
        # keep=False: requests are answered (the responder still sees each) but not kept,
        # so a long run's memory stays flat; requests/accepted/wait_for then see none.
        self._keep = keep
        self._connections = set()
        self._requests = []
        self._responder = lambda req: 200
        self._tls = None
        if certfile:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile, keyfile)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.receiver = self
        self._thread = None
        scheme = "https" if certfile else "http"
        self.port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-receiver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops listening and closes every connection, kept-alive ones too (a stopped
        receiver is gone, as a crashed server would be)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(timeout=5)

    def respond(self, fn):
        """fn(Request) -> HTTP status for every later request (it may sleep)."""
        self._responder = fn

    @property
    def requests(self):
        with self._lock:
            return list(self._requests)

    def accepted(self):
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self._requests if 200 <= r.status < 300]

    def wait_for(self, n, timeout=10.0):
        """True once at least n requests were answered 2xx; False after timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(1 for r in self._requests if 200 <= r.status < 300) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def _serve(self, handler, req):
        if self._keep:
            with self._lock:
                self._requests.append(req)
        status = int(self._responder(req))
        with self._lock:
            req.status = status
            self._lock.notify_all()
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        handler.wfile.flush()
