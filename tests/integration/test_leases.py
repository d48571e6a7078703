"""Several instances on one table: leases, takeover after kill -9, rebalancing, one reader per shard."""

import calendar
import re
import signal
import time

from relay_util import (check_per_key_order, create_outbox_table, duplicates, http_messages, http_sink,
                        produce, relay_config, spawn_producer, wait_until)

READING = re.compile(r"^(\S+) \w+\s+shard=(\S+) (started reading|stopped reading)")
DURATION = 3.0
POLL = 0.25


def wall(iso):
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) + int(iso[20:23]) / 1000


def reading_intervals(output, killed_at=None):
    """{shard: [(start, end)]} from one instance's log; a kill ends what was open."""
    open_, out = {}, {}
    for line in output.splitlines():
        m = READING.match(line)
        if not m:
            continue
        t, shard, what = wall(m.group(1)), m.group(2), m.group(3)
        if what == "started reading":
            open_[shard] = t
        elif shard in open_:
            out.setdefault(shard, []).append((open_.pop(shard), t))
    for shard, t in open_.items():
        out.setdefault(shard, []).append((t, killed_at if killed_at else float("inf")))
    return out


def instance_config(endpoint, table, receiver, name):
    return relay_config(endpoint, table, http_sink("hook", receiver.url), poll=f"{int(POLL * 1000)}ms",
                        max_in_flight=8,
                        extra=f"leases:\n  instance_id: {name}\n  duration: {int(DURATION)}s\n")


def test_three_instances_share_shards_take_over_a_killed_one_and_rebalance(
        ddb, topology_proxy, tmp_config, spawn_outboxd, http_receiver):
    table = create_outbox_table(ddb, "outbox_leases")
    proxy = topology_proxy(shards=8, split_every=100000, table=table)
    cfgs = {n: tmp_config(instance_config(proxy.endpoint, table, http_receiver, n), name=f"{n}.yaml")
            for n in "abc"}
    procs = {n: spawn_outboxd("run", "-c", cfgs[n], name=n) for n in "abc"}
    logs = {}

    def running_shards(n):
        return [s for s, iv in reading_intervals(procs[n].output()).items() if iv[-1][1] == float("inf")]
    # Leases spread over the three instances.
    assert wait_until(lambda: all(len(running_shards(n)) >= 2 for n in "abc"), 40), \
        {n: running_shards(n) for n in "abc"}
    producer = spawn_producer(ddb.endpoint, table, 5000, 50, threads=8, rate=250)
    time.sleep(4)

    # kill -9 one: its shards are taken over within leases.duration + one poll interval. On a
    # loaded machine b may be between a shard handed back and the next taken: kill it reading.
    assert wait_until(lambda: running_shards("b"), 10), procs["b"].output()[-4000:]
    victim = running_shards("b")
    killed_at = time.time()
    logs["b-killed"] = (procs["b"].output(), killed_at)
    procs["b"].stop(signal.SIGKILL)

    def taken_over():
        starts = {}
        for n in "ac":
            for shard, iv in reading_intervals(procs[n].output()).items():
                later = [s for s, _ in iv if s > killed_at]
                if later:
                    starts[shard] = min(later + [starts.get(shard, float("inf"))])
        return starts
    assert wait_until(lambda: all(s in taken_over() for s in victim), 20), (victim, taken_over())
    delays = [taken_over()[s] - killed_at for s in victim]
    print(f"\ntakeover of {len(victim)} shards after kill -9: {max(delays):.2f} s at most")
    # The slack is the scheduling of a loaded 2-core machine under a sanitizer (4.6 s seen
    # against 4.25 with 1 s); a take-over that waited out a second lease period would be 6 s or more.
    assert max(delays) <= DURATION + POLL + 2.0, delays

    # Started again under the same id: the leases rebalance towards it.
    procs["b2"] = spawn_outboxd("run", "-c", cfgs["b"], name="b2")
    assert wait_until(lambda: len(running_shards("b2")) >= 2, 40), procs["b2"].output()

    assert producer.wait(timeout=120) == 0, producer.stderr.read()
    assert http_receiver.wait_for(5000, timeout=120), {n: p.output()[-3000:] for n, p in procs.items()}
    time.sleep(2)
    msgs = http_messages(http_receiver)
    print(f"5000 messages over 3 instances, 1 kill -9, {duplicates(msgs)} duplicates")
    assert len({m[2] for m in msgs}) == 5000
    assert duplicates(msgs) <= len(victim) * 8
    assert check_per_key_order(msgs) == []

    for n in ("a", "c", "b2"):
        assert procs[n].stop() == 0
    # No shard was ever read by two instances at once.
    per_instance = [reading_intervals(logs["b-killed"][0], killed_at)]
    per_instance += [reading_intervals(procs[n].output()) for n in ("a", "c", "b2")]
    shards = set().union(*per_instance)
    for shard in shards:
        spans = sorted((s, e, i) for i, inst in enumerate(per_instance) for s, e in inst.get(shard, []))
        for (s1, e1, i1), (s2, e2, i2) in zip(spans, spans[1:]):
            assert s2 >= e1, f"{shard} read by instance {i1} until {e1} and by {i2} from {s2}"


def test_a_graceful_stop_releases_leases_for_others_at_once(ddb, topology_proxy, tmp_config, spawn_outboxd,
                                                            http_receiver):
    table = create_outbox_table(ddb, "outbox_release")
    proxy = topology_proxy(shards=4, split_every=100000, table=table)
    a = spawn_outboxd("run", "-c", tmp_config(instance_config(proxy.endpoint, table, http_receiver, "a"),
                                              name="a.yaml"), name="a")
    assert wait_until(lambda: a.output().count("started reading") == 4, 20), a.output()
    b = spawn_outboxd("run", "-c", tmp_config(instance_config(proxy.endpoint, table, http_receiver, "b"),
                                              name="b.yaml"), name="b")
    assert wait_until(lambda: b.output().count("started reading") >= 1, 30), b.output()
    stopped_at = time.time()
    assert a.stop() == 0
    assert "lease released" in a.output()
    assert wait_until(lambda: b.output().count("started reading") - b.output().count("stopped reading") == 4,
                      DURATION), b.output()
    print(f"\nleases of a stopped instance taken in {time.time() - stopped_at:.2f} s")
    assert b.stop() == 0


def test_a_worker_whose_checkpoint_meets_another_owner_is_not_started_again_on_the_stale_lease(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    # Another instance took the lease between two renewals: the checkpoint write fails its
    # condition, the worker stops, and this instance leaves the shard to the new owner.
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url),
                                  extra="leases:\n  instance_id: first\n  duration: 60s\n"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 5, 5, threads=1)
    assert http_receiver.wait_for(5, timeout=30), d.output()
    c = ddb.client()
    shards = [i["leaseKey"]["S"] for i in c.scan(TableName=f"{table}-leases")["Items"] if "checkpoint" in i]
    assert len(shards) == 1
    c.update_item(TableName=f"{table}-leases", Key={"leaseKey": {"S": shards[0]}},
                  UpdateExpression="SET leaseOwner = :o", ExpressionAttributeValues={":o": {"S": "second"}})
    produce(ddb.endpoint, table, 5, 5, threads=1)
    assert d.wait_for_output("lease lost", timeout=30), d.output()
    time.sleep(2)
    assert d.output().count("started reading") == 1, d.output()
    assert d.stop() == 0
