"""tests/bench/ddb_bench_server as a harness part: the benchmark backend.

It is a benchmark instrument, never a test double (tests/bench/README.md). The
relay's tests run on DynamoDB Local; `make bench` runs the relay's happy-path
tests on this server too (OUTBOXD_TEST_BACKEND=bench), to show outboxd cannot
tell the two apart.
"""

import os
import subprocess
from pathlib import Path

from .ddb_local import aws_client
from .util import REPO_ROOT, register_child, unregister_child


def bench_path(name):
    """$BUILD (default "build")/bench/NAME, absolute; raises when it is not built."""
    build = Path(os.environ.get("BUILD") or "build")
    if not build.is_absolute():
        build = REPO_ROOT / build
    path = build / "bench" / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is not built (make tests-build)")
    return str(path)


class BenchServer:
    """One ddb_bench_server on a free loopback port (it picks it: --port 0).

    args are its options, e.g. ("--shards", "4", "--latency-ms", "5").
    """

    def __init__(self, *args):
        self.proc = subprocess.Popen([bench_path("ddb_bench_server"), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        register_child(self)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on 127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"ddb_bench_server did not start: {line!r} {self.proc.stderr.read()}")
        self.endpoint = "http://" + line.split()[-1]

    @property
    def pid(self):
        return self.proc.pid

    def client(self, max_attempts=2, endpoint=None, **config):
        return aws_client("dynamodb", endpoint or self.endpoint, max_attempts, **config)

    def streams_client(self, max_attempts=2, endpoint=None, **config):
        return aws_client("dynamodbstreams", endpoint or self.endpoint, max_attempts, **config)

    def stop(self):
        """SIGTERM; returns (exit status, stderr). The server exits 0 after freeing everything."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=30)
        finally:
            unregister_child(self)
        return self.proc.returncode, err

    def __repr__(self):
        return f"<BenchServer {self.endpoint} pid={self.pid}>"
