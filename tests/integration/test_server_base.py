"""Tests of harness/server_base.py, the part the test servers share: each one behaviour.

None needs DynamoDB Local: the servers here are tiny ones built on the base.
"""

import http.client
import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from harness.server_base import LoopbackServer, RequestLog, Upstream, read_body
from harness.util import wait_port


class LineEcho(LoopbackServer):
    """Answers each line a connection sends with "<connection number> <line>"."""
    thread_name = "line-echo"

    def serve_connection(self, sock, client_address, number):
        with sock.makefile("rwb") as f:
            for line in f:
                f.write(b"%d %s" % (number, line))
                f.flush()


def ask(sock, line):
    sock.sendall(line)
    return sock.recv(100)


class Recorder(LoopbackServer):
    """HTTP: records (method, path, headers, body) of each request and answers 200 "ok".
    A request with header Hang-Up: yes is answered, then its connection closed without
    telling the client (as a server does to an idle kept-alive connection)."""
    thread_name = "recorder"

    class handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = read_body(self.rfile, self.headers)
            self.server.log.add(lambda n: (self.command, self.path, self.headers, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            self.close_connection = self.headers.get("Hang-Up") == "yes"

        def log_message(self, format, *args):
            pass

    def __init__(self):
        super().__init__()
        self.log = RequestLog()


def test_a_server_listens_on_a_free_loopback_port_and_serves_each_connection_in_its_own_thread():
    with LineEcho() as server:
        assert server.url == server.endpoint == f"http://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as a, \
                socket.create_connection(("127.0.0.1", server.port), timeout=5) as b:
            assert ask(a, b"x\n") == b"1 x\n"
            assert ask(b, b"y\n") == b"2 y\n"       # while the first is still open
            assert ask(a, b"z\n") == b"1 z\n"
        assert server.connections == 2


def test_a_server_binds_before_it_starts_so_its_port_is_known_and_taken():
    server = LineEcho().bind()
    try:
        with pytest.raises(OSError):
            socket.create_server(("127.0.0.1", server.port))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as a:
            server.start()                            # the connection waited in the backlog
            assert ask(a, b"x\n") == b"1 x\n"
    finally:
        server.stop()


def test_stop_closes_kept_alive_connections_and_the_port_and_may_be_repeated():
    server = LineEcho().start()
    port = server.port
    a = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        assert ask(a, b"x\n") == b"1 x\n"
        server.stop()
        assert a.recv(100) == b""                     # as a crashed server: the connection is gone
        assert not wait_port(port, timeout=0.3)
        server.stop()
    finally:
        a.close()


def test_a_stopped_server_starts_again_on_the_same_port():
    server = LineEcho().start()
    port = server.port
    server.stop()
    with server.start():
        assert server.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as a:
            assert ask(a, b"x\n") == b"1 x\n"


def test_read_body_reads_content_length_bytes():
    rfile = io.BytesIO(b"hello, and the next request")
    assert read_body(rfile, {"content-length": "5"}) == b"hello"
    assert rfile.read() == b", and the next request"


def test_read_body_without_a_length_is_empty():
    assert read_body(io.BytesIO(b"next"), {}) == b""


def test_read_body_joins_the_chunks_of_a_chunked_body_and_skips_its_trailers():
    rfile = io.BytesIO(b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nnext")
    assert read_body(rfile, {"transfer-encoding": "chunked"}) == b"hello, world"
    assert rfile.read() == b"next"


@pytest.mark.parametrize("headers, wire", [
    ({"content-length": "10"}, b"short"),
    ({"transfer-encoding": "chunked"}, b"5\r\nhel"),
    ({"transfer-encoding": "chunked"}, b"5\r\nhello\r\n"),
])
def test_read_body_of_a_client_gone_midway_raises_connection_error(headers, wire):
    with pytest.raises(ConnectionError):
        read_body(io.BytesIO(wire), headers)


def test_a_handler_class_serves_http_with_the_server_as_its_server():
    with Recorder() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", "/a", body=iter([b"chu", b"nked"]), encode_chunked=True)
        assert conn.getresponse().read() == b"ok"
        conn.close()
        [(method, path, _, body)] = server.log.snapshot()
        assert (method, path, body) == ("POST", "/a", b"chunked")


def test_upstream_must_be_http_on_loopback():
    assert Upstream(8000).port == 8000 and Upstream(8000).host == "127.0.0.1"
    assert (Upstream("http://localhost:9").host, Upstream("http://localhost:9").port) == ("localhost", 9)
    for bad in ("https://127.0.0.1:1", "http://192.0.2.1:80"):
        with pytest.raises(ValueError):
            Upstream(bad)


def test_upstream_exchange_drops_hop_by_hop_headers_and_names_the_host_when_the_client_did_not():
    with Recorder() as server:
        up = Upstream(server.url)
        conn = up.connect()
        status, reason, headers, payload = up.exchange(
            conn, "POST", "/x", [("X-Amz-Target", "T"), ("Connection", "close"), ("Keep-Alive", "5"),
                                 ("Transfer-Encoding", "chunked"), ("Content-Length", "99")], b"body")
        conn.close()
        assert (status, reason, payload) == (200, "OK", b"ok")
        assert "content-length" not in {k.lower() for k, _ in headers}
        [(_, path, seen, body)] = server.log.snapshot()
        assert (path, body) == ("/x", b"body")
        assert seen["Host"] == f"127.0.0.1:{server.port}" and seen["X-Amz-Target"] == "T"
        assert seen["Content-Length"] == "4" and seen["Connection"] is None and seen["Keep-Alive"] is None


def test_upstream_exchange_sends_the_clients_host_as_it_was():
    with Recorder() as server:
        up = Upstream(server.url)
        up.exchange(up.connect(), "POST", "/", [("Host", "example:1")], b"")
        assert server.log.snapshot()[0][2]["Host"] == "example:1"


def test_upstream_exchange_tries_again_once_on_a_new_connection_when_a_kept_alive_one_went_stale():
    with Recorder() as server:
        up = Upstream(server.url)
        conn = up.connect()
        assert up.exchange(conn, "POST", "/1", [("Hang-Up", "yes")], b"")[0] == 200
        time.sleep(0.2)                               # the server has closed it by now
        assert up.exchange(conn, "POST", "/2", [], b"")[0] == 200
        conn.close()
        assert [path for _, path, _, _ in server.log.snapshot()] == ["/1", "/2"]
        assert server.connections == 2


def test_upstream_exchange_raises_when_a_new_connection_fails():
    server = Recorder().start()
    up = Upstream(server.url)
    server.stop()
    with pytest.raises(ConnectionError):
        up.exchange(up.connect(), "POST", "/", [], b"")


def test_a_request_log_numbers_its_entries_in_its_order_across_clears():
    log = RequestLog()
    assert [log.add(lambda n: n), log.add(lambda n: n)] == [1, 2]
    log.clear()
    log.add(lambda n: n)
    assert log.snapshot() == [3]
    assert log.take() == [3] and log.snapshot() == []


def test_a_request_log_wait_returns_once_enough_entries_match():
    log = RequestLog()
    adder = threading.Timer(0.2, lambda: [log.add(lambda n: n) for _ in range(4)])
    adder.start()
    assert log.wait(2, timeout=10, where=lambda n: n % 2 == 0) == 2
    adder.join()


def test_a_request_log_wait_gives_the_count_so_far_after_its_timeout():
    log = RequestLog()
    log.add(lambda n: n)
    t0 = time.monotonic()
    assert log.wait(2, timeout=0.3) == 1
    assert time.monotonic() - t0 >= 0.3


def test_a_request_log_update_wakes_a_waiter_on_a_changed_entry():
    class Entry:
        status = 0
    log = RequestLog()
    entry = log.add(lambda n: Entry())
    threading.Timer(0.2, lambda: log.update(entry, status=200)).start()
    assert log.wait(1, timeout=10, where=lambda e: e.status == 200) == 1
