"""Leases stay correct when a coordinator is slow, and cheap for years: expiry is dated by when a
change was observed, renewals do not wait behind slow calls, the lease table is scanned at a
pace tied to leases.duration, and the leases of ended shards that left the stream are deleted."""

import re
import time

from harness import FaultProxy
from harness.fault_proxy import Rule
from relay_util import create_outbox_table, produce, wait_until
from test_leases import DURATION, instance_config, reading_intervals

LEASE_TROUBLE = re.compile(r"lease lost|could not be renewed in time|lease acquired: expired")


def holding(proc):
    return [s for s, iv in reading_intervals(proc.output()).items() if iv[-1][1] == float("inf")]


def test_a_coordinator_stalled_by_slow_describe_stream_calls_neither_takes_live_leases_nor_loses_its_own(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_stall")
    topo = topology_proxy(shards=4, split_every=100000, table=table)
    slow = FaultProxy(topo.endpoint).start()
    try:
        a = spawn_outboxd("run", "-c", tmp_config(instance_config(topo.endpoint, table, http_receiver, "a"),
                                                  name="a.yaml"), name="a")
        b = spawn_outboxd("run", "-c", tmp_config(instance_config(slow.endpoint, table, http_receiver, "b"),
                                                  name="b.yaml"), name="b")
        assert wait_until(lambda: holding(a) and holding(b) and len(holding(a) + holding(b)) == 4, 40), \
            (holding(a), holding(b))
        time.sleep(2 * DURATION)
        settled = (len(a.output()), len(b.output()))
        held = (sorted(holding(a)), sorted(holding(b)))
        # Every listing of b's shards now takes more than twice leases.duration (and less
        # than aws.request_timeout): its coordinator thread waits that long each time.
        slow.set_rules([Rule(match_target="DescribeStream", action="delay", delay_ms=int(2.3 * DURATION * 1000))])
        assert wait_until(lambda: slow.count(target="DescribeStream", action="delay") >= 1, 30)
        time.sleep(DURATION)
        trouble = [ln for p, at in ((a, settled[0]), (b, settled[1]))
                   for ln in p.output()[at:].splitlines() if LEASE_TROUBLE.search(ln)]
        assert trouble == [], "\n".join(trouble)
        assert (sorted(holding(a)), sorted(holding(b))) == held
        assert a.stop() == 0 and b.stop() == 0
    finally:
        slow.stop()


def reading_through(ddb, proxy, table, tmp_config, spawn_outboxd, http_receiver):
    """Instance a, reading a new outbox table of ddb through proxy."""
    table = create_outbox_table(ddb, table)
    d = spawn_outboxd("run", "-c", tmp_config(instance_config(proxy.endpoint, table, http_receiver, "a")))
    d.wait_for_output("started reading")
    return d, table


def test_the_lease_table_is_scanned_at_a_pace_tied_to_leases_duration_not_to_poll_interval(
        ddb, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    d, _ = reading_through(ddb, fault_proxy, "outbox_pace", tmp_config, spawn_outboxd, http_receiver)
    t0 = time.monotonic()
    before = fault_proxy.count(target="Scan")
    time.sleep(2 * DURATION)
    scans = fault_proxy.count(target="Scan") - before
    elapsed = time.monotonic() - t0
    # A third of leases.duration apart (KCL's pace), whatever stream.poll_interval (250 ms) says.
    assert scans <= elapsed / (DURATION / 3) + 2, scans
    assert d.stop() == 0


def test_the_lease_of_an_ended_shard_is_deleted_once_it_left_the_stream_and_its_children_have_leases(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_gc")
    topo = topology_proxy(shards=1, split_every=0, table=table, hide_trimmed_shards=True)
    d = spawn_outboxd("run", "-c", tmp_config(instance_config(topo.endpoint, table, http_receiver, "a")))
    d.wait_for_output("started reading")
    produce(ddb.endpoint, table, 10, 2)
    topo.wait_records(10)
    parent, children = topo.split_now()
    produce(ddb.endpoint, table, 10, 2)
    assert http_receiver.wait_for(20, timeout=30), d.output()

    leases = ddb.client()

    def lease(key):
        return leases.get_item(TableName=f"{table}-leases", Key={"leaseKey": {"S": key}},
                               ConsistentRead=True).get("Item")
    assert wait_until(lambda: (lease(parent) or {}).get("checkpoint", {}).get("S") == "SHARD_END", 20)
    time.sleep(2 * DURATION)
    assert lease(parent) is not None, "deleted while the stream still lists the shard"

    topo.trim(topo.ingested)  # the parent's records are older than 24 h: it leaves DescribeStream
    ok = wait_until(lambda: lease(parent) is None, 30)
    open("/tmp/gc.log", "w").write(d.output())
    assert ok
    assert all(lease(c) is not None for c in children)
    assert "lease deleted" in d.output()
    produce(ddb.endpoint, table, 4, 2)
    assert http_receiver.wait_for(24, timeout=30), d.output()
    assert d.stop() == 0


def test_renewals_that_take_a_fifth_of_leases_duration_keep_the_leases(
        ddb, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    d, table = reading_through(ddb, fault_proxy, "outbox_slowrenew", tmp_config, spawn_outboxd, http_receiver)
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET leaseCounter = :n", action="delay",
                                delay_ms=int(DURATION * 1000 / 5) + 100)])
    rows = produce(ddb.endpoint, table, 30, 6, rate=5, ids=True)
    assert http_receiver.wait_for(30, timeout=30), d.output()
    assert fault_proxy.count(target="UpdateItem", action="delay") >= 5
    trouble = [ln for ln in d.output().splitlines() if LEASE_TROUBLE.search(ln) or "stopped reading" in ln]
    assert trouble == [], "\n".join(trouble)
    assert len({r.headers["ce-id"] for r in http_receiver.accepted()}) == len(rows)
    assert d.stop() == 0
