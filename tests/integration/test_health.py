"""Liveness and readiness (SPEC §7). /healthz fails, and WATCHDOG=1 stops, while a shard worker is
stuck: work waiting and no progress for relay.stuck_after. A sink that is slow or down is not a
stuck worker, and a sink outage does not make /readyz unready (a sidecar's readiness gates its whole
pod); its state is in outboxd_sink_up. Calls are frozen with the fault proxy's `hang`."""

import socket
import threading
import time
import uuid

from harness.fault_proxy import Rule
from harness.http_receiver import HttpReceiver
from relay_util import free_port, http_sink, metric, metric_samples, probe, relay_config, scan_items, wait_until, \
    with_relay

STUCK_AFTER = 3
# The health check sees a stuck worker within a second of stuck_after; probes come every 0.2 s.
NOTICE = STUCK_AFTER + 6
HANG = 60000   # longer than any test: a hung call is answered only by the relay's own timeout


def not_ok_during(port, seconds, paths=("/healthz", "/readyz")):
    """Every answer of paths that was not a 200, probing every 0.2 s for seconds."""
    bad, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        for path in paths:
            status, body = probe(port, path)
            if status != 200:
                bad.append((round(end - time.monotonic(), 1), path, status, body.strip()))
        time.sleep(0.2)
    return bad


def health_config(endpoint, table, sinks, port, **relay):
    """A relay with relay.stuck_after: 3s whose AWS requests time out after 2 s (a hung call
    is retried soon after the hang ends)."""
    text = relay_config(endpoint, table, sinks, metrics_port=port, default_sink="hook")
    text = text.replace("  retry_base_delay: 10ms\n", "  retry_base_delay: 10ms\n  request_timeout: 2s\n")
    return with_relay(text, stuck_after=f"{STUCK_AFTER}s", **relay)


def put(ddb, table, pk, sk):
    ddb.client().put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk},
                                                 "payload": {"S": "eyJ4IjoxfQ=="}})


def shard_id(ddb, table):
    arn = ddb.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shards = ddb.streams_client().describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return shards[-1]["ShardId"]


def start_reading(ddb, table, spawn_outboxd, tmp_config, cfg_text, port, receiver):
    """outboxd, once it reads the stream and delivered and marked a first message."""
    d = spawn_outboxd("run", "-c", tmp_config(cfg_text))
    assert wait_until(lambda: probe(port, "/readyz")[0] == 200, 30), d.output()
    put(ddb, table, "k0", "first")
    assert receiver.wait_for(1, timeout=20), d.output()
    assert wait_until(lambda: all(i.get("isPublished", {}).get("BOOL") for i in scan_items(ddb, table)), 20)
    return d


def marks_of(table):
    """The outbox table's UpdateItems (marks, failure records), not the lease table's."""
    return Rule(match_target="UpdateItem", match_body=f'"TableName":"{table}"', action="hang", delay_ms=HANG)


def all_published(ddb, table, n):
    items = scan_items(ddb, table)
    return len(items) == n and all(i.get("isPublished", {}).get("BOOL") for i in items)


def test_healthz_fails_naming_the_shard_while_its_marks_hang_though_reads_go_on_and_recovers(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    port = free_port()
    d = start_reading(ddb, table, spawn_outboxd, tmp_config,
                      health_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url), port),
                      port, http_receiver)
    shard = shard_id(ddb, table)
    fault_proxy.set_rules([marks_of(table)])
    for i in range(10):
        put(ddb, table, f"k{i % 3}", f"m{i}")
    assert http_receiver.wait_for(11, timeout=20), d.output()
    delivered = max(r.time for r in http_receiver.accepted())
    reads = fault_proxy.count(target="GetRecords")
    assert wait_until(lambda: probe(port, "/healthz")[0] == 503, NOTICE, interval=0.2), d.output()
    seen = time.monotonic()
    status, body = probe(port, "/healthz")
    assert status == 503 and shard in body and "stuck" in body, body
    assert seen - delivered >= STUCK_AFTER - 0.5, f"stuck {seen - delivered:.1f} s after the last delivery"
    assert fault_proxy.count(target="GetRecords") > reads + 5   # its reads were answered all along
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_shards_stuck") == 1, 3)
    assert probe(port, "/readyz")[0] == 200
    fault_proxy.clear_rules()
    assert wait_until(lambda: probe(port, "/healthz")[0] == 200, 20, interval=0.2), d.output()
    assert wait_until(lambda: all_published(ddb, table, 11), 30), d.output()
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_shards_stuck") == 0, 3)
    assert f"shard={shard}" in d.output() and "stuck" in d.output()
    assert d.stop() == 0


def test_healthz_fails_while_a_shards_reads_hang_and_recovers(ddb, table, fault_proxy, tmp_config, spawn_outboxd,
                                                              http_receiver):
    port = free_port()
    d = start_reading(ddb, table, spawn_outboxd, tmp_config,
                      health_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url), port),
                      port, http_receiver)
    shard = shard_id(ddb, table)
    fault_proxy.set_rules([Rule(match_target="GetRecords", action="hang", delay_ms=HANG)])
    for i in range(5):
        put(ddb, table, "k", f"m{i}")
    assert wait_until(lambda: probe(port, "/healthz")[0] == 503, NOTICE, interval=0.2), d.output()
    status, body = probe(port, "/healthz")
    assert shard in body and "stuck" in body, body
    fault_proxy.clear_rules()
    assert wait_until(lambda: probe(port, "/healthz")[0] == 200, 20, interval=0.2), d.output()
    assert http_receiver.wait_for(6, timeout=20), d.output()
    assert d.stop() == 0


def test_healthz_fails_while_the_coordinators_scan_of_the_leases_hangs_and_recovers(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    port = free_port()
    d = start_reading(ddb, table, spawn_outboxd, tmp_config,
                      health_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url), port),
                      port, http_receiver)
    fault_proxy.set_rules([Rule(match_target="Scan", match_body=f"{table}-leases", action="hang", delay_ms=HANG)])
    assert wait_until(lambda: probe(port, "/healthz")[0] == 503, NOTICE + 4, interval=0.2), d.output()
    assert "the lease coordinator's loop is" in probe(port, "/healthz")[1]
    assert metric(metric_samples(port), "outboxd_shards_stuck") == 0
    fault_proxy.clear_rules()
    assert wait_until(lambda: probe(port, "/healthz")[0] == 200, 20, interval=0.2), d.output()
    assert d.stop() == 0


def test_a_sink_down_longer_than_stuck_after_keeps_healthz_and_readyz_at_200(
        ddb, table, tmp_config, spawn_outboxd):
    port, sink_port = free_port(), free_port()
    receiver = HttpReceiver(port=sink_port).start()
    # Probes of the down sink up to 5 s apart: the worker sleeps longer than stuck_after.
    cfg = health_config(ddb.endpoint, table, http_sink("hook", receiver.url), port,
                        backoff="{ initial: 50ms, max: 5s }")
    d = start_reading(ddb, table, spawn_outboxd, tmp_config, cfg, port, receiver)
    receiver.respond(lambda req: 503)
    for i in range(10):
        put(ddb, table, f"k{i % 3}", f"m{i}")
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_sink_up", sink="hook") == 0, 20), d.output()
    assert not_ok_during(port, STUCK_AFTER + 4) == []
    receiver.stop()                               # now connections are refused
    assert not_ok_during(port, STUCK_AFTER + 2) == []
    assert metric(metric_samples(port), "outboxd_sink_up", sink="hook") == 0
    up = HttpReceiver(port=sink_port).start()
    try:
        assert up.wait_for(10, timeout=30), d.output()
        assert wait_until(lambda: all_published(ddb, table, 11), 20), d.output()
        assert "stuck" not in d.output()
        assert d.stop() == 0
    finally:
        up.stop()


def test_a_sink_slower_than_stuck_after_keeps_healthz_at_200(ddb, table, tmp_config, spawn_outboxd, http_receiver):
    port = free_port()
    cfg = health_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), port)
    d = start_reading(ddb, table, spawn_outboxd, tmp_config, cfg, port, http_receiver)

    def slow(req):
        time.sleep(STUCK_AFTER + 1)
        return 200
    http_receiver.respond(slow)
    for i in range(3):
        put(ddb, table, "k", f"m{i}")             # one key: one at a time
    assert not_ok_during(port, 3 * (STUCK_AFTER + 1), paths=("/healthz",)) == []
    assert http_receiver.wait_for(4, timeout=10), d.output()
    assert "stuck" not in d.output()
    assert d.stop() == 0


def test_an_idle_shard_is_never_stuck(ddb, table, tmp_config, spawn_outboxd, http_receiver):
    port = free_port()
    cfg = health_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), port)
    d = start_reading(ddb, table, spawn_outboxd, tmp_config, cfg, port, http_receiver)
    assert not_ok_during(port, 2 * STUCK_AFTER + 1) == []
    assert metric(metric_samples(port), "outboxd_shards_stuck") == 0
    assert "stuck" not in d.output()
    assert d.stop() == 0


class NotifySocket:
    """An abstract AF_UNIX datagram socket for NOTIFY_SOCKET: every message with its time."""

    def __init__(self):
        self.name = f"outboxd-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    @property
    def address(self):
        return "@" + self.name

    def _read(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def pings(self, since=0.0):
        return [t for t, m in list(self.messages) if t >= since and "WATCHDOG=1" in m.split("\n")]

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def longest_gap(times, start, end):
    points = [start] + [t for t in times if start <= t <= end] + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def test_watchdog_pings_stop_while_a_worker_is_stuck_and_resume_after(ddb, table, fault_proxy, tmp_config,
                                                                       spawn_outboxd, http_receiver):
    port = free_port()
    notify = NotifySocket()
    try:
        cfg = tmp_config(health_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url), port))
        # WatchdogSec=1s: a ping every half second while all is well.
        d = spawn_outboxd("run", "-c", cfg, env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "1000000"})
        assert wait_until(lambda: any("READY=1" in m for _, m in notify.messages), 30), d.output()
        put(ddb, table, "k0", "first")
        assert http_receiver.wait_for(1, timeout=20), d.output()
        t0 = time.monotonic()
        time.sleep(2)
        assert longest_gap(notify.pings(), t0, time.monotonic()) < 1.5
        fault_proxy.set_rules([Rule(match_target="GetRecords", action="hang", delay_ms=HANG), marks_of(table)])
        for i in range(5):
            put(ddb, table, "k", f"m{i}")
        frozen = time.monotonic()
        assert wait_until(lambda: notify.pings(time.monotonic() - 3) == [], NOTICE + 3), \
            f"{len(notify.pings(frozen))} WATCHDOG=1 since the freeze {time.monotonic() - frozen:.1f} s ago"
        assert probe(port, "/healthz")[0] == 503
        assert "stuck" in d.output()
        assert any("STATUS=running: 1 shards read" in m and ", 1 stuck" in m for _, m in notify.messages[-3:])
        fault_proxy.clear_rules()
        thawed = time.monotonic()
        assert wait_until(lambda: len(notify.pings(thawed)) >= 3, 20), d.output()
        assert probe(port, "/healthz")[0] == 200
        assert d.stop() == 0
    finally:
        notify.close()
