"""The relay on many shards that close and split (the topology proxy in front of DynamoDB Local)."""

import os
import threading
import time

from relay_util import (check_per_key_order, create_outbox_table, duplicates, http_messages, http_sink,
                        produce, relay_config, wait_until)


def reader_threads(pid):
    """Names of outboxd's shard reader threads ("sh:<end of the shard id>")."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("sh:"):
            names.append(name[3:])
    return names


def test_eight_splitting_shards_deliver_everything_parents_first_in_key_order(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_shards")
    proxy = topology_proxy(shards=8, split_every=1000, table=table, page_size=5)
    cfg = tmp_config(relay_config(proxy.endpoint, table, http_sink("hook", http_receiver.url), max_in_flight=16))
    d = spawn_outboxd("run", "-c", cfg)

    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(reader_threads(d.pid))
            time.sleep(0.05)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        rows = produce(ddb.endpoint, table, 5000, 50, threads=16, ids=True)
        assert http_receiver.wait_for(5000, timeout=240), d.output()
        time.sleep(2)
    finally:
        stop.set()
        sampler.join()

    msgs = http_messages(http_receiver)
    assert sorted({m[2] for m in msgs}) == sorted(r[0] for r in rows)
    print(f"\n5000 messages, {duplicates(msgs)} duplicates, {len(proxy.shards())} shards")
    assert duplicates(msgs) == 0
    assert check_per_key_order(msgs) == []

    shards = {s["id"]: s for s in proxy.shards()}
    assert sum(1 for s in shards.values() if s["closed"]) >= 5
    # Parents strictly before children: a child's first read follows its parent's last.
    reads = proxy.read_log()
    first, last = {}, {}
    for t, sid, n, end in reads:
        first.setdefault(sid, t)
        last[sid] = t
    for s in shards.values():
        if s["parent"] in shards and s["id"] in first:
            assert first[s["id"]] > last[s["parent"]], f"{s['id']} read before its parent {s['parent']} ended"
            assert any(sid == s["parent"] and end for _, sid, _, end in reads)
    # One reader thread per shard, never two for one shard; at rest, exactly the open ones.
    for names in samples:
        assert len(names) == len(set(names)), names
    open_now = sorted(s["id"][-12:] for s in shards.values() if not s["closed"])
    assert wait_until(lambda: sorted(reader_threads(d.pid)) == open_now, 15), (reader_threads(d.pid), open_now)
    assert d.stop() == 0


def test_an_expired_iterator_is_replaced_without_losing_or_repeating_records(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_expired")
    proxy = topology_proxy(shards=2, split_every=100000, table=table)
    cfg = tmp_config(relay_config(proxy.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 40, 4)
    assert http_receiver.wait_for(40, timeout=30), d.output()
    proxy.expire_iterators()
    produce(ddb.endpoint, table, 40, 4)
    assert http_receiver.wait_for(80, timeout=30), d.output()
    time.sleep(1)
    msgs = http_messages(http_receiver)
    assert duplicates(msgs) == 0 and len(msgs) == 80
    assert "iterator expired" in d.output()
    assert d.stop() == 0


def test_trimmed_stream_data_restarts_at_the_oldest_record_and_says_so(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_trimmed")
    proxy = topology_proxy(shards=1, split_every=100000, table=table)
    cfg = tmp_config(relay_config(proxy.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 10, 1, threads=1)
    assert http_receiver.wait_for(10, timeout=30), d.output()
    assert d.stop() == 0
    # While outboxd is down, 20 more arrive and the older half ages out of the stream.
    rows = produce(ddb.endpoint, table, 20, 1, threads=1, ids=True)
    assert proxy.wait_records(40, timeout=10) >= 40
    proxy.trim(proxy.ingested - 10)
    d2 = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(20, timeout=30), d2.output()
    time.sleep(1)
    later = [r.headers["ce-id"] for r in http_receiver.accepted()[10:]]
    assert later == [r[0] for r in rows[10:]]
    assert "no longer in the stream" in d2.output() or "trimmed" in d2.output()
    assert d2.running()
    assert d2.stop() == 0


def test_idle_shards_are_polled_at_most_five_times_a_second(ddb, topology_proxy, tmp_config, spawn_outboxd):
    table = create_outbox_table(ddb, "outbox_idle")
    proxy = topology_proxy(shards=3, split_every=100000, table=table)
    cfg = tmp_config(relay_config(proxy.endpoint, table, "  - name: out\n    type: stdout\n", poll="50ms"))
    d = spawn_outboxd("run", "-c", cfg)
    assert wait_until(lambda: len({sid for _, sid, _, _ in proxy.read_log()}) == 3, 20), d.output()
    t0 = time.monotonic()
    time.sleep(3)
    reads = [(t, sid) for t, sid, _, _ in proxy.read_log() if t0 <= t < t0 + 3]
    for sid in {s for _, s in reads}:
        times = sorted(t for t, s in reads if s == sid)
        assert len(times) <= 16, (sid, len(times))
        assert all(b - a >= 0.19 for a, b in zip(times, times[1:])), sid
    assert d.stop() == 0


def test_status_shows_every_shard_with_its_owner_checkpoint_and_lag(ddb, topology_proxy, tmp_config,
                                                                     spawn_outboxd, run_outboxd, http_receiver):
    import json
    table = create_outbox_table(ddb, "outbox_status")
    proxy = topology_proxy(shards=3, split_every=100000, table=table)
    cfg = tmp_config(relay_config(proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  extra="leases:\n  instance_id: status-test\n"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 30, 6)
    assert http_receiver.wait_for(30, timeout=30), d.output()
    time.sleep(1)
    r = run_outboxd("status", "-c", cfg, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["table"] == table and len(doc["shards"]) == 3
    for s in doc["shards"]:
        assert s["state"] == "open" and s["owner"] == "status-test"
        assert s["lag_seconds"] is not None and s["lag_seconds"] < 60
    assert any(s["checkpoint"].isdigit() for s in doc["shards"])
    text = run_outboxd("status", "-c", cfg)
    assert text.returncode == 0 and "SHARD" in text.stdout and text.stdout.count("status-test") == 3
    assert d.stop() == 0
