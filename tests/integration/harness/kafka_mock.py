"""librdkafka's mock Kafka cluster (tests/tools/kafka_mock.c) as a child process: three
brokers on loopback ports, topics, broker outages and injected Produce errors by command;
consume() reads a topic back with confluent_kafka (Debian's python3-confluent-kafka, a
librdkafka client like any other).

    with KafkaMock() as kafka:
        kafka.create_topic("orders", 6)
        kafka.all_down(); ...; kafka.all_up()
        kafka.produce_errors(3, "NOT_LEADER_FOR_PARTITION")
        messages = kafka.consume("orders", want=100)

java_partition(key, n) is the partition Java's default partitioner (and librdkafka's
murmur2_random) gives a key among n.
"""

import collections
import signal
import subprocess
import threading
import time
from pathlib import Path

from .util import register_child, run_dir, set_pdeathsig, unregister_child

# One record as consumed: headers is a dict of str (the last value of a repeated name).
Record = collections.namedtuple("Record", "topic partition offset key value headers")


def _tool(name):
    from outboxd_config import tool
    return tool(name)


class KafkaMock:
    name = "kafka_mock"

    def __init__(self, brokers=3, log_dir=None):
        self.brokers = brokers
        self.log_dir = Path(log_dir) if log_dir else run_dir()
        self.proc = None
        self.bootstraps = None
        self._lock = threading.Lock()

    def start(self, timeout=30):
        if self.proc is not None:
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"kafka_mock-{time.monotonic_ns()}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([_tool("kafka_mock"), str(self.brokers)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1,
                                         preexec_fn=set_pdeathsig(signal.SIGKILL))
        register_child(self)
        line = self._read_line(timeout)
        if not line.startswith("bootstraps "):
            self.stop()
            raise RuntimeError(f"kafka_mock did not start: {line!r}")
        self.bootstraps = line.split(" ", 1)[1].strip()
        return self

    def _read_line(self, timeout):
        out = []
        reader = threading.Thread(target=lambda: out.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not out:
            raise RuntimeError(f"kafka_mock did not answer within {timeout}s")
        return out[0]

    def command(self, line, timeout=30):
        """Sends one command; raises unless the mock answers ok."""
        with self._lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self._read_line(timeout).strip()
        if answer != "ok":
            raise RuntimeError(f"kafka_mock: {line!r}: {answer}")

    def create_topic(self, topic, partitions):
        self.command(f"topic {topic} {partitions}")

    def broker_down(self, broker_id):
        self.command(f"down {broker_id}")

    def broker_up(self, broker_id):
        self.command(f"up {broker_id}")

    def all_down(self):
        self.command("all down")

    def all_up(self):
        self.command("all up")

    def produce_errors(self, times, *errors):
        """The next Produce requests answer errors (rd_kafka_err2name names) in turn, times over."""
        self.command(f"produce_errors {times} {' '.join(errors)}")

    def consumer(self, topic):
        from confluent_kafka import Consumer
        c = Consumer({"bootstrap.servers": self.bootstraps, "group.id": f"test-{time.monotonic_ns()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        return c

    def record_count(self, topic):
        """How many records topic got (its partitions' high watermarks): the mock keeps only
        the last 5 MB of a partition, more than consume() can read back."""
        from confluent_kafka import TopicPartition
        c = self.consumer(topic)
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
        finally:
            c.close()

    def consume(self, topic, want, timeout=60, quiet=3.0):
        """Records of topic from the start until want came (and quiet seconds passed with no
        more: duplicates show) or timeout; in the order each partition holds them."""
        c = self.consumer(topic)
        out = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        try:
            while time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is None:
                    if len(out) >= want and time.monotonic() - last >= quiet:
                        break
                    continue
                if m.error():
                    continue
                last = time.monotonic()
                headers = {k: (v.decode() if v is not None else None) for k, v in (m.headers() or [])}
                out.append(Record(m.topic(), m.partition(), m.offset(), m.key().decode() if m.key() else None,
                                  m.value(), headers))
        finally:
            c.close()
        return out

    def stop(self, timeout=10):
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                try:
                    proc.stdin.write("quit\n")
                    proc.stdin.flush()
                    proc.wait(timeout=timeout)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            self.proc = None
            unregister_child(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def murmur2(data):
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key, partitions):
    """Java's DefaultPartitioner for a keyed record: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class SaslTokenCatcher:
    """A TLS listener that speaks just enough Kafka for a client to authenticate with
    SASL/OAUTHBEARER (ApiVersions v3, SaslHandshake v1, SaslAuthenticate v0) and keeps the
    bearer tokens clients present (librdkafka's mock cluster speaks no SASL). Every
    authentication succeeds; the connection is closed after it.

        with SaslTokenCatcher(tmp_path) as catcher:
            ... a producer with security.protocol=sasl_ssl, OAUTHBEARER on catcher.address
            token = catcher.wait_token()
    """

    API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36

    def __init__(self, cert_dir):
        import socket
        import ssl
        cert, key = Path(cert_dir) / "catcher.crt", Path(cert_dir) / "catcher.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                        "-days", "1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.tokens = []
        self.done = threading.Event()
        self.cond = threading.Condition()

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.sock.close()

    def wait_token(self, timeout=30):
        with self.cond:
            self.cond.wait_for(lambda: self.tokens, timeout)
            return self.tokens[0] if self.tokens else None

    def _accept(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn, n):
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise EOFError
            out += chunk
        return out

    def _serve(self, raw):
        import struct
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            while True:
                size = struct.unpack(">i", self._read(conn, 4))[0]
                req = self._read(conn, size)
                key, _version, corr = struct.unpack(">hhi", req[:8])
                if key == self.API_VERSIONS:
                    # v3 body (flexible: compact array, tagged fields); the header stays v0.
                    apis = [(self.API_VERSIONS, 0, 3), (self.SASL_HANDSHAKE, 0, 1), (self.SASL_AUTHENTICATE, 0, 0)]
                    body = struct.pack(">h", 0) + bytes([len(apis) + 1])
                    body += b"".join(struct.pack(">hhh", *a) + b"\0" for a in apis) + struct.pack(">i", 0) + b"\0"
                elif key == self.SASL_HANDSHAKE:
                    body = struct.pack(">hi", 0, 1) + struct.pack(">h", 11) + b"OAUTHBEARER"
                elif key == self.SASL_AUTHENTICATE:
                    client_id_len = struct.unpack(">h", req[8:10])[0]
                    at = 10 + max(client_id_len, 0)
                    n = struct.unpack(">i", req[at:at + 4])[0]
                    message = req[at + 4:at + 4 + n].decode()
                    token = next(p[len("auth=Bearer "):] for p in message.split("\x01") if p.startswith("auth=Bearer "))
                    with self.cond:
                        self.tokens.append(token)
                        self.cond.notify_all()
                    body = struct.pack(">hhi", 0, -1, 0)
                else:
                    return
                conn.sendall(struct.pack(">ii", len(body) + 4, corr) + body)
                if key == self.SASL_AUTHENTICATE:
                    return
        except (OSError, EOFError, ValueError, StopIteration):
            return
        finally:
            raw.close()
