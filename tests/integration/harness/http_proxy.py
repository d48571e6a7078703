"""HttpProxy: a forward proxy on 127.0.0.1, as HTTPS_PROXY / HTTP_PROXY name one.

CONNECT host:port opens a tunnel (bytes copied both ways, TLS end to end); a request in
absolute form (POST http://host:port/path) is forwarded over a kept-alive connection.
Only loopback targets are served. With auth=(user, password) a request without that
Proxy-Authorization: Basic is answered 407. Every request is recorded (.seen).

    proxy = HttpProxy(auth=("u", "p")).start()
    env = {"HTTPS_PROXY": proxy.url_for("u", "p")}
    ... proxy.seen: [Seen(method="CONNECT", target="localhost:4443", authorized=True), ...]
"""

import base64
import http.client
import select
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .server_base import LoopbackServer, RequestLog, Upstream, read_body

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Seen:
    method: str
    target: str          # "host:port" for CONNECT, the absolute URL otherwise
    host: str            # the request's Host header
    authorized: bool     # it carried the credentials the proxy wants (or none were wanted)
    proxy_authorization: str
    amz_target: str      # X-Amz-Target of an AWS request through it in absolute form, else ""


class HttpProxy(LoopbackServer):
    thread_name = "http-proxy"

    def __init__(self, port=None, auth=None):
        super().__init__(port)
        self.auth = auth
        self.log = RequestLog()

    def url_for(self, user=None, password=None):
        cred = f"{user}:{password}@" if user else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    @property
    def seen(self):
        return self.log.snapshot()

    def _authorized(self, value):
        if self.auth is None:
            return True
        want = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        return value == f"Basic {want}"

    def serve_connection(self, sock, client_address, number):
        rfile = sock.makefile("rb")
        upstreams = {}
        try:
            while True:
                line = rfile.readline(65537)
                if not line:
                    return
                method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                headers = http.client.parse_headers(rfile)
                auth_value = headers.get("proxy-authorization") or ""
                ok = self._authorized(auth_value)
                self.log.add(lambda n: Seen(method, target, headers.get("host") or "", ok, auth_value,
                                            headers.get("x-amz-target") or ""))
                if method == "CONNECT":
                    self._tunnel(sock, target, ok)
                    return
                body = read_body(rfile, headers)
                if not ok:
                    sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                 b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                    continue
                u = urlsplit(target)
                if u.scheme != "http" or u.hostname not in _LOOPBACK:
                    sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    continue
                key = (u.hostname, u.port or 80)
                if key not in upstreams:
                    up = Upstream(f"http://{u.hostname}:{key[1]}")
                    upstreams[key] = (up, up.connect())
                up, conn = upstreams[key]
                path = u.path + (f"?{u.query}" if u.query else "")
                status, reason, out_headers, payload = up.exchange(conn, method, path or "/",
                                                                   list(headers.items()), body)
                head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in out_headers)
                sock.sendall(head.encode("latin-1") + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        finally:
            for _, conn in upstreams.values():
                conn.close()

    def _tunnel(self, sock, target, ok):
        if not ok:
            sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if host not in _LOOPBACK:
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        try:
            up = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with up:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            ends = [sock, up]
            while not self._stopping.is_set():
                ready, _, _ = select.select(ends, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is sock else sock).sendall(data)
