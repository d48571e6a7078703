"""Fixtures for outboxd's integration tests (see harness/ for the pieces)."""

import os
import signal

import pytest

from harness import (DynamoDBLocal, FaultProxy, OutboxdProcess, outboxd_path,
                     run_outboxd_cmd, write_config)
from harness import util as _util

# Nothing in these tests may leave the machine: keep HTTP clients off proxies and
# botocore off the instance-metadata endpoint.
for _k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_k, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _sigterm(signum, frame):
    # Turn SIGTERM (e.g. from `timeout`) into an interrupt so fixture finalizers run.
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config):
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:          # not the main thread
        pass


def pytest_sessionfinish(session, exitstatus):
    d = _util.run_dir_if_created()
    if d is None:
        return
    if exitstatus == 0 and not os.environ.get("OUTBOXD_KEEP_LOGS"):
        _util.remove_run_dir()
    else:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"integration logs kept in {d}")


@pytest.fixture(scope="module")
def ddb():
    """A fresh DynamoDB Local per test module (it slows as it fills).

    OUTBOXD_TEST_BACKEND=bench gives tests/bench/ddb_bench_server instead
    (`make bench` runs the relay's happy path on it; the suite never does).
    """
    if os.environ.get("OUTBOXD_TEST_BACKEND") == "bench":
        from harness.bench_server import BenchServer
        inst = BenchServer("--shards", os.environ.get("OUTBOXD_TEST_BENCH_SHARDS", "1"))
        try:
            yield inst
        finally:
            inst.stop()
        return
    inst = DynamoDBLocal()
    inst.start()
    try:
        yield inst
    finally:
        inst.stop()


@pytest.fixture
def fault_proxy(ddb):
    """A FaultProxy in front of the module's DynamoDB Local, no rules yet."""
    proxy = FaultProxy(ddb.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def tmp_config(tmp_path):
    """tmp_config(dict_or_text, name="outboxd.yaml", dedent=True) -> Path of the written file."""
    def make(content, name="outboxd.yaml", dedent=True):
        return write_config(tmp_path, content, name=name, dedent=dedent)
    return make


@pytest.fixture(scope="session")
def outboxd_bin():
    """Absolute path of $BUILD/outboxd (BUILD defaults to "build")."""
    path = outboxd_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built (make BUILD={os.environ.get('BUILD', 'build')})", pytrace=False)
    return path


@pytest.fixture
def run_outboxd(outboxd_bin, tmp_path):
    """run_outboxd(*args, env=None, timeout=60, input=None, cwd=None) -> CompletedProcess (text).

    env is merged onto a sanitized environment (no AWS_*/OUTBOXD_*/proxies); None removes a key.
    """
    def run(*args, env=None, timeout=60, input=None, cwd=None):
        return run_outboxd_cmd(outboxd_bin, *args, env=env, timeout=timeout, input=input,
                               cwd=cwd, home=tmp_path)
    return run


@pytest.fixture
def spawn_outboxd(outboxd_bin, tmp_path):
    """spawn_outboxd(*args, env=None, name="outboxd") -> OutboxdProcess (log under tmp_path).

    Every process still running at teardown gets SIGTERM, then SIGKILL.
    """
    procs = []

    def spawn(*args, env=None, name="outboxd", cwd=None):
        p = OutboxdProcess(outboxd_bin, *args, env=env, cwd=cwd, home=tmp_path,
                           log_path=tmp_path / f"{name}-{len(procs)}.log")
        procs.append(p)
        return p
    yield spawn
    for p in procs:
        p.stop(timeout=10)


@pytest.fixture
def topology_proxy(ddb):
    """topology_proxy(**kwargs) -> a started TopologyProxy in front of the module's DynamoDB
    Local (kwargs go to TopologyProxy: shards, split_every, max_open, page_size, ...).
    Every proxy made is stopped at teardown."""
    from harness import TopologyProxy
    proxies = []

    def make(**kwargs):
        p = TopologyProxy(ddb.endpoint, **kwargs).start()
        proxies.append(p)
        return p
    yield make
    for p in proxies:
        p.stop()


@pytest.fixture
def http_receiver():
    """A started HttpReceiver (harness/http_receiver.py) answering 200; stopped at teardown."""
    from harness.http_receiver import HttpReceiver
    rx = HttpReceiver().start()
    try:
        yield rx
    finally:
        rx.stop()


@pytest.fixture
def sink_publish(tmp_path):
    """sink_publish(options, messages, *args, timeout=30, returncode=0) -> SinkRun.

    Runs build/tools/sink_publish with a config whose sink `s` has `options`
    (a dict, e.g. {"type": "http", "url": ...}); messages are dicts of the
    tool's input lines; args go to the tool (e.g. "--batch", "4"). SinkRun has
    .results (the tool's {"sk","result","error"} lines), .other (the rest
    of stdout), .stderr, .returncode; the exit status must be `returncode`.
    """
    import json
    import subprocess
    from types import SimpleNamespace

    import yaml
    from outboxd_config import tool, tool_env

    def run(options, messages=(), *args, timeout=30, returncode=0):
        cfg = {"aws": {"region": "us-east-1", "endpoint": "http://127.0.0.1:1",
                       "access_key_id": "AKIDTEST", "secret_access_key": "testsecret"},
               "table": {"name": "outbox"},
               "sinks": [{"name": "s", **options}], "default_sink": "s"}
        path = tmp_path / "sink_publish.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        stdin = "".join(json.dumps(m) + "\n" for m in messages)
        p = subprocess.run([tool("sink_publish"), str(path), "s", *args], input=stdin.encode(),
                           capture_output=True, timeout=timeout, env=tool_env())
        assert p.returncode == returncode, p.stderr.decode()
        lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]
        return SimpleNamespace(results=[x for x in lines if "result" in x],
                               other=[x for x in lines if "result" not in x],
                               stderr=p.stderr.decode(), returncode=p.returncode)
    return run


_table_numbers = iter(range(1_000_000))


@pytest.fixture
def table(ddb):
    """A new outbox table (pk/sk, NEW_AND_OLD_IMAGES stream) in the module's DynamoDB Local."""
    from relay_util import create_outbox_table
    return create_outbox_table(ddb, f"outbox_t{next(_table_numbers)}")


@pytest.fixture(scope="module")
def fauxqs():
    """The SQS and SNS emulator (npm fauxqs on Node 22), one per test module."""
    from harness.fauxqs import Fauxqs
    with Fauxqs() as server:
        yield server


@pytest.fixture
def eventbridge():
    """A started EventBridgeServer (PutEvents on loopback: SigV4 and botocore's model checked,
    bus `default`); stopped at teardown."""
    from harness.eventbridge_server import EventBridgeServer
    server = EventBridgeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kinesalite(tmp_path_factory):
    """The Kinesis emulator (npm kinesalite on Node 22), one per test module; its streams are
    kept in a LevelDB directory, so stop() and start() again is an outage that loses nothing."""
    from harness.kinesalite import Kinesalite
    with Kinesalite(path=tmp_path_factory.mktemp("kinesalite") / "db") as server:
        yield server


@pytest.fixture(scope="module")
def kafka_mock():
    """librdkafka's mock Kafka cluster, 3 brokers (harness/kafka_mock.py), one per test module."""
    from harness.kafka_mock import KafkaMock
    with KafkaMock() as cluster:
        yield cluster
