"""The sweeper never races the stream (SPEC §3): it sweeps an item only once every open shard's
reader has passed its createdAt by sweep.older_than, re-checks items right before sending, leaves
undated items to `outboxd sweep --include-undated`, keeps its lease while it sweeps, and a key
blocked by on_failure: block does not hold a sweep for good."""

import time

from harness.fault_proxy import Rule
from relay_util import (check_strict_order, duplicates, http_messages, http_sink, produce, relay_config,
                        scan_items, wait_until)
from test_sweep import OLD, put, sweeping_relay


def relay_with_sink_down(ddb, table, tmp_config, spawn_outboxd, receiver):
    """A relay reading the stream, sweeping every second what is a second old, its sink down (503)."""
    receiver.respond(lambda req: 503)
    text = relay_config(ddb.endpoint, table, http_sink("hook", receiver.url),
                        extra="sweep:\n  interval: 1s\n  older_than: 1s\nleases:\n  duration: 3s\n")
    d = spawn_outboxd("run", "-c", tmp_config(text))
    d.wait_for_output("started reading")
    return d


def test_a_sink_outage_longer_than_older_than_is_not_swept_while_the_stream_holds_its_messages(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    d = relay_with_sink_down(ddb, table, tmp_config, spawn_outboxd, http_receiver)
    rows = produce(ddb.endpoint, table, 20, 2, ids=True)
    time.sleep(8)  # several sweeps come due while the stream's reader waits for the sink
    http_receiver.respond(lambda req: 200)
    assert http_receiver.wait_for(20, timeout=60), d.output()
    time.sleep(4)  # a sweep racing the stream would deliver again meanwhile
    msgs = http_messages(http_receiver)
    assert duplicates(msgs) == 0 and check_strict_order(msgs) == {}
    assert sorted(m[2] for m in msgs) == sorted(r[0] for r in rows)
    assert d.stop() == 0


def test_a_daemon_sweep_leaves_undated_items_and_outboxd_sweep_include_undated_takes_them(
        ddb, table, tmp_config, spawn_outboxd, run_outboxd, http_receiver):
    for i in range(3):
        put(ddb, table, "k", f"dated{i}")
    for i in range(2):
        ddb.client().put_item(TableName=table, Item={"pk": {"S": "u"}, "sk": {"S": f"undated{i}"},
                                                      "payload": {"S": "e30="}})
    cfg = sweeping_relay(tmp_config, ddb.endpoint, table, http_receiver, extra="leases:\n  duration: 3s\n")
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(3, timeout=30), d.output()
    time.sleep(3)
    assert sorted(r.headers["ce-id"] for r in http_receiver.accepted()) == ["dated0", "dated1", "dated2"]
    assert d.stop() == 0
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1s", "--include-undated")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(r.headers["ce-id"] for r in http_receiver.accepted())[-2:] == ["undated0", "undated1"]


def test_an_item_published_after_the_scan_saw_it_is_not_sent_by_the_sweep(
        ddb, table, fault_proxy, tmp_config, run_outboxd, http_receiver):
    for i in range(3):
        put(ddb, table, "k", f"m{i}")
    ddb.client().update_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": "m1"}},
                             UpdateExpression="SET isPublished = :t", ExpressionAttributeValues={":t": {"BOOL": True}})

    def stale(answer):  # the Scan's view from before m1 was published
        item = {"pk": {"S": "k"}, "sk": {"S": "m1"}, "createdAt": {"S": OLD}, "messageType": {"S": "T"},
                "payload": {"S": "e30="}}
        if answer.get("Items") and not any(i["sk"]["S"] == "m1" for i in answer["Items"]):
            answer["Items"].insert(1, item)
            answer["Count"] += 1
        return answer
    fault_proxy.set_rules([Rule(match_target="Scan", match_body='"TotalSegments"', action="rewrite",
                                rewrite=stale)])
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url)))
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [q.headers["ce-id"] for q in http_receiver.accepted()] == ["m0", "m2"]
    assert "1 items were published or dead-lettered by the stream meanwhile" in r.stdout


def test_the_sweep_lease_is_renewed_while_a_long_sweep_runs(ddb, table, tmp_config, spawn_outboxd,
                                                           http_receiver):
    for i in range(40):
        put(ddb, table, "k", f"m{i:03d}")  # one key: one at a time, a second each
    http_receiver.respond(lambda req: time.sleep(1) or 200)
    cfg = sweeping_relay(tmp_config, ddb.endpoint, table, http_receiver, extra="leases:\n  duration: 3s\n")
    d = spawn_outboxd("run", "-c", cfg)
    leases = ddb.client()

    def lease_until():
        item = leases.get_item(TableName=f"{table}-leases", Key={"leaseKey": {"S": f"sweep:{table}"}},
                               ConsistentRead=True).get("Item", {})
        return int(item["leaseUntil"]["N"]) if "leaseUntil" in item else None
    assert wait_until(lambda: lease_until() is not None, 20), d.output()
    first = lease_until()
    time.sleep(25)
    assert len(http_receiver.accepted()) < 40, "the sweep ended before the lease needed a renewal"
    assert lease_until() > first + 15000
    assert d.stop() == 0


def test_a_key_blocked_by_on_failure_block_does_not_hold_the_sweep_for_good(ddb, table, tmp_config,
                                                                           run_outboxd, http_receiver):
    for k in "ab":
        for i in range(3):
            put(ddb, table, k, f"{k}{i}")
    http_receiver.respond(lambda req: 400 if req.headers["ce-id"].startswith("a") else 200)
    text = relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url))
    cfg = tmp_config(text.replace("relay:\n", "relay:\n  on_failure: block\n  max_attempts: 2\n"))
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1s", timeout=60)
    assert [q.headers["ce-id"] for q in http_receiver.accepted()] == ["b0", "b1", "b2"]
    assert "3 items of keys blocked by relay.on_failure: block were left for the next sweep" in r.stdout
    items = {i["sk"]["S"]: i for i in scan_items(ddb, table)}
    assert not any(items[f"a{i}"].get("isPublished", {}).get("BOOL") for i in range(3))


def test_items_whose_created_at_has_an_offset_are_not_swept_while_the_stream_holds_them(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    # createdAt "07:00-05:00" is 12:00Z but sorts before "11:00Z": compared as text, the sweep
    # took it while the stream's reader waited for the sink.
    d = relay_with_sink_down(ddb, table, tmp_config, spawn_outboxd, http_receiver)
    time.sleep(3)  # the reader has said how far it is: sweeps run
    sks = []
    for i in range(10):
        at = time.gmtime(time.time() - 5 * 3600)
        put(ddb, table, "k", f"m{i:02d}", created=time.strftime("%Y-%m-%dT%H:%M:%S.000-05:00", at))
        sks.append(f"m{i:02d}")
    time.sleep(6)  # several sweeps come due while the stream's reader waits for the sink
    http_receiver.respond(lambda req: 200)
    assert http_receiver.wait_for(10, timeout=60), d.output()
    time.sleep(3)
    assert [r.headers["ce-id"] for r in http_receiver.accepted()] == sks
    assert d.stop() == 0


def test_a_stream_whose_every_lease_ended_holds_the_sweep_until_its_open_shards_have_leases(
        ddb, table, tmp_config, run_outboxd, http_receiver):
    # Every lease at SHARD_END means the children's leases are not there yet: their readers
    # have not read what the sweep would find.
    put(ddb, table, "k", "m0")
    arn = ddb.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    c = ddb.client()
    c.create_table(TableName=f"{table}-leases", BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}])
    c.put_item(TableName=f"{table}-leases", Item={"leaseKey": {"S": "shardId-parent"}, "streamArn": {"S": arn},
                                                  "checkpoint": {"S": "SHARD_END"}, "leaseCounter": {"N": "3"}})
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing swept" in r.stdout and http_receiver.requests == []
