"""A running relay's operations server (metrics.listen) under a slowloris siege: with 1,000
idle and half-sent connections open on its port, /healthz, /readyz and /metrics still answer
within 100 ms (a failed liveness probe restarts the pod), and messages keep flowing."""

import resource
import socket
import statistics
import threading
import time

from relay_util import free_port, http_sink, produce, relay_config, wait_until

SIEGE = 1000
PROBES = 9  # per route: the median must be within 100 ms, none may take a second
PATHS = ("/healthz", "/readyz", "/metrics")


def probe_ms(port, path, timeout=3.0):
    """Milliseconds from connecting to the whole 200 response, as a probe with this timeout
    sees it; None when no 200 came in time."""
    t0 = time.monotonic()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
            while time.monotonic() - t0 < timeout:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    took = (time.monotonic() - t0) * 1000
    return took if data.startswith(b"HTTP/1.1 200 ") and took < timeout * 1000 else None


class Siege:
    """What a slowloris attacker holds open: a third of the connections silent, a third with
    a request head cut short, a third sending theirs a byte every 100 ms. A connection the
    server closes stays closed."""

    def __init__(self, port):
        self.socks = []
        self.stopping = threading.Event()
        for i in range(SIEGE):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 3 == 1:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/pl")
            self.socks.append(s)
        self.trickler = threading.Thread(target=self._trickle, daemon=True)
        self.trickler.start()

    def _trickle(self):
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: "
        k = 0
        while not self.stopping.wait(0.1):
            byte = head[k:k + 1] or b"a"
            k += 1
            for s in self.socks[2::3]:
                try:
                    s.send(byte, socket.MSG_DONTWAIT)
                except OSError:
                    pass

    def end(self):
        self.stopping.set()
        self.trickler.join()
        for s in self.socks:
            s.close()


def test_probes_answer_within_100ms_while_1000_idle_and_half_sent_connections_are_open(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SIEGE + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= SIEGE + 200
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    assert wait_until(lambda: probe_ms(port, "/readyz") is not None, 30), d.output()

    siege = Siege(port)
    took = {p: [] for p in PATHS}
    failed = None
    try:
        time.sleep(0.3)  # the trickle has started; the server has seen everyone
        producer = threading.Thread(target=produce, args=(ddb.endpoint, table, 20, 4))
        producer.start()
        for n in range(PROBES * len(PATHS)):
            path = PATHS[n % len(PATHS)]
            ms = probe_ms(port, path)
            if ms is None:
                failed = f"{path}: no 200 within 3000 ms ({n} probes answered before)"
                break
            took[path].append(ms)
        producer.join()
        delivered = http_receiver.wait_for(20, timeout=30)
    finally:
        siege.end()
    assert failed is None, failed
    for path, ms in took.items():
        assert statistics.median(ms) <= 100 and max(ms) < 1000, (path, sorted(round(x) for x in ms))
    assert delivered, d.output()
    assert d.stop() == 0
