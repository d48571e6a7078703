"""The part the test servers share (fault proxy, topology proxy, HTTP receiver).

LoopbackServer listens on 127.0.0.1 (a given port or a free one), serves each
connection in a thread of its own and, on stop(), closes every connection as a
crashed server would. read_body() reads a request body, chunked or not. Upstream
forwards requests to an http server on loopback over kept-alive connections.
RequestLog keeps what a server saw, for tests to read and wait on.

    class Echo(LoopbackServer):
        class handler(BaseHTTPRequestHandler): ...    # its self.server is the Echo
    with Echo() as server: ... server.url ...
"""

import http.client
import socket
import socketserver
import ssl
import threading
import time
from urllib.parse import urlsplit

from .util import register_child, unregister_child

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding",
              "upgrade", "expect", "content-length"}

_LINE_MAX = 65537


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True           # a handler that sleeps must not block stop()
    allow_reuse_address = True      # a test starts a server again on the port it had
    request_queue_size = 256

    def finish_request(self, request, client_address):
        self.owner._serve_accepted(request, client_address)   # a bug of the server: handle_error prints it


class LoopbackServer:
    """A TCP server on 127.0.0.1: port None (a free one) or the port given.

    A subclass serves a connection by its `handler` class (a socketserver handler, e.g.
    a BaseHTTPRequestHandler, whose self.server is this object) or by overriding
    serve_connection(). With certfile, each connection is TLS (its handshake runs in
    the connection's thread, so a client that never ends one cannot stall the others).
    """
    thread_name = "server"
    handler = None
    stop_waits_for_connections = False     # True: stop() lets their threads end first

    def __init__(self, port=None, certfile=None, keyfile=None):
        self.port = port
        self._tls = None
        if certfile:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(certfile, keyfile)
        self._listener = None
        self._serve_thread = None
        self._conns_lock = threading.Lock()
        self._conns = {}                # open connection -> the thread serving it
        self._accepted = 0
        self._stopping = threading.Event()

    @property
    def url(self):
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def endpoint(self):
        """The url, as AWS clients name it."""
        return self.url

    @property
    def connections(self):
        """Client connections accepted so far."""
        with self._conns_lock:
            return self._accepted

    def bind(self):
        """Listen now (connections wait in the backlog until start()); returns self."""
        if self._listener is None:
            self._listener = _Listener(("127.0.0.1", self.port or 0), None)
            self._listener.owner = self
            self.port = self._listener.server_address[1]
        return self

    def start(self):
        if self._serve_thread is not None:
            return self
        self.bind()
        self._stopping.clear()
        self._serve_thread = threading.Thread(target=self._listener.serve_forever,
                                              kwargs={"poll_interval": 0.05},
                                              name=f"{self.thread_name}-{self.port}", daemon=True)
        self._serve_thread.start()
        register_child(self)
        return self

    def stop(self, timeout=5.0):
        """Stops listening and closes every connection, kept-alive ones too."""
        if self._listener is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        listener, self._listener = self._listener, None
        if self._serve_thread is not None:
            listener.shutdown()
            self._serve_thread.join(timeout)
            self._serve_thread = None
        listener.server_close()
        with self._conns_lock:
            conns = dict(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.stop_waits_for_connections:
            for t in conns.values():
                t.join(max(0.0, deadline - time.monotonic()))
        self._on_stop(deadline)
        unregister_child(self)

    def _on_stop(self, deadline):
        """What a subclass closes once its connections are (its own threads, pools)."""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def serve_connection(self, sock, client_address, number):
        """Serves one connection until it ends (number: 1 for the first accepted)."""
        self.handler(sock, client_address, self)

    def _serve_accepted(self, sock, client_address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            with self._conns_lock:
                self._accepted += 1
                number = self._accepted
                self._conns[sock] = threading.current_thread()
            self.serve_connection(sock, client_address, number)
        except OSError:
            pass                # the client gave up (e.g. its timeout), or stop() closed it
        finally:
            with self._conns_lock:
                self._conns.pop(sock, None)
            if self._tls is not None:
                sock.close()    # the listener closes the plain socket, not its TLS wrapper


def read_body(rfile, headers):
    """The body of a request whose headers (a mapping whose get takes lower-case names,
    e.g. email.message.Message) were read from rfile: Content-Length bytes, or the chunks
    of a chunked body (trailers skipped). ConnectionError when the client went midway."""
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        out = bytearray()
        while True:
            size = int(_line(rfile).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while _line(rfile) not in (b"\r\n", b"\n"):
                    pass
                return bytes(out)
            out += _exactly(rfile, size)
            _line(rfile)
    return _exactly(rfile, int(headers.get("content-length") or 0))


def _line(rfile):
    line = rfile.readline(_LINE_MAX)
    if not line:
        raise ConnectionError("the client went in the middle of a request")
    return line


def _exactly(rfile, n):
    data = rfile.read(n) if n else b""
    if len(data) != n:
        raise ConnectionError("the client went in the middle of a request")
    return data


class Upstream:
    """An http server on loopback ("http://127.0.0.1:PORT" or a port number) that
    requests are forwarded to."""

    def __init__(self, endpoint, timeout=60.0):
        if isinstance(endpoint, int):
            endpoint = f"http://127.0.0.1:{endpoint}"
        u = urlsplit(endpoint)
        if u.scheme != "http" or u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"upstream must be http on loopback, got {endpoint}")
        self.host = u.hostname
        self.port = u.port or 80
        self.timeout = timeout

    def connect(self):
        """A connection to keep for several exchanges (it opens on the first; owner: the caller)."""
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def exchange(self, conn, method, path, headers, body):
        """Sends one request on conn, its hop-by-hop headers left out. Returns (status,
        reason, headers but hop-by-hop ones, payload). A kept-alive conn that the upstream
        had closed is tried once more (it opens again); conn is closed on an error."""
        for again in (False, True):
            fresh = conn.sock is None
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                have_host = False
                for k, v in headers:
                    if k.lower() not in HOP_BY_HOP:
                        have_host = have_host or k.lower() == "host"
                        conn.putheader(k, v)
                if not have_host:
                    conn.putheader("Host", f"{self.host}:{self.port}")
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                payload = resp.read()
                if resp.will_close:
                    conn.close()
                return (resp.status, resp.reason,
                        [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP], payload)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.BadStatusLine):
                conn.close()
                if fresh or again:
                    raise
            except BaseException:
                conn.close()
                raise


class RequestLog:
    """Entries in arrival order, shared by a server's threads; wait() wakes on each change."""

    def __init__(self):
        self._cond = threading.Condition()
        self._entries = []
        self._added = 0

    def add(self, make):
        """Appends make(n), n counting entries from 1 across clears; make runs under the
        log's lock so that n follows the log's order. Returns the entry."""
        with self._cond:
            self._added += 1
            entry = make(self._added)
            self._entries.append(entry)
            self._cond.notify_all()
            return entry

    def update(self, entry, **fields):
        """Sets fields of an entry, waking the waiters."""
        with self._cond:
            for k, v in fields.items():
                setattr(entry, k, v)
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self._entries)

    def take(self):
        """The entries so far, removed at once (none is missed, memory stays flat)."""
        with self._cond:
            entries, self._entries = self._entries, []
            return entries

    def clear(self):
        self.take()

    def wait(self, n, timeout, where=lambda entry: True):
        """Blocks until n entries satisfy where; returns how many do (< n on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                count = sum(1 for e in self._entries if where(e))
                left = deadline - time.monotonic()
                if count >= n or left <= 0:
                    return count
                self._cond.wait(left)
