"""stream.start_position: latest applies to a relay's first start on a stream only (SPEC §3):
no later start skips a record written after that first start."""

import signal
import time

import pytest

from harness.fault_proxy import Rule
from relay_util import http_messages, http_sink, produce, relay_config, wait_until


def latest_relay(tmp_config, endpoint, table, receiver):
    # No sweep: what the stream does not deliver would stay undelivered.
    text = relay_config(endpoint, table, http_sink("hook", receiver.url),
                        extra="stream:\n  start_position: latest\nsweep:\n  interval: 0s\n  older_than: 1h\n")
    return tmp_config(text.replace("stream:\n  poll_interval: 100ms\n", ""))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_restart_reads_what_arrived_while_down_on_a_shard_that_was_idle_since_the_first_start(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, stop):
    history = {r[0] for r in produce(ddb.endpoint, table, 5, 1, ids=True)}  # a latest start skips it
    cfg = latest_relay(tmp_config, ddb.endpoint, table, http_receiver)
    d = spawn_outboxd("run", "-c", cfg)
    d.wait_for_output("started reading")
    d.stop(stop)

    rows = produce(ddb.endpoint, table, 12, 3, ids=True)  # written while it is down
    d = spawn_outboxd("run", "-c", cfg, name="restarted")
    d.wait_for_output("started reading")
    want = {r[0] for r in rows}
    assert wait_until(lambda: want <= {m[2] for m in http_messages(http_receiver)}, 30), d.output()
    time.sleep(0.5)
    got = [m[2] for m in http_messages(http_receiver)]
    assert len(got) == len(set(got))
    # Stream record times are rounded down (to the minute in DynamoDB Local): a restart may
    # deliver records of the first start's minute written before it, never lose later ones.
    assert set(got) <= want | history
    assert d.stop() == 0


def test_a_restart_reads_what_arrived_after_the_first_start_while_the_sink_was_down(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    http_receiver.respond(lambda req: 503)
    cfg = latest_relay(tmp_config, ddb.endpoint, table, http_receiver)
    d = spawn_outboxd("run", "-c", cfg)
    d.wait_for_output("started reading")
    rows = produce(ddb.endpoint, table, 6, 2, ids=True)
    assert wait_until(lambda: len(http_receiver.requests) > 0, 20), d.output()
    d.stop(signal.SIGKILL)

    http_receiver.respond(lambda req: 200)
    d = spawn_outboxd("run", "-c", cfg, name="restarted")
    assert http_receiver.wait_for(6, timeout=30), d.output()
    assert {m[2] for m in http_messages(http_receiver)} == {r[0] for r in rows}
    assert d.stop() == 0


def test_a_child_shard_of_a_latest_relay_is_read_from_its_start(ddb, table, tmp_config, spawn_outboxd,
                                                                 http_receiver, topology_proxy):
    topo = topology_proxy(shards=1, split_every=0, table=table)
    cfg = latest_relay(tmp_config, topo.endpoint, table, http_receiver)
    d = spawn_outboxd("run", "-c", cfg)
    d.wait_for_output("started reading")
    # A slow sink keeps the parent open until the child has records of its own.
    http_receiver.respond(lambda req: time.sleep(0.3) or 200)
    rows = produce(ddb.endpoint, table, 4, 2, ids=True)
    topo.wait_records(4)
    topo.split_now()
    rows += produce(ddb.endpoint, table, 8, 2, ids=True)
    want = {r[0] for r in rows}
    assert wait_until(lambda: want <= {m[2] for m in http_messages(http_receiver)}, 30), d.output()
    assert d.stop() == 0


def test_a_start_whose_view_says_latest_resumes_from_where_an_earlier_start_pinned_it(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # The lease says LATEST when the coordinator reads it; an earlier start pins it (here the
    # test does, while this start's pin is on its way): the start resumes from that pin instead
    # of pinning anew and skipping what came between.
    cfg = latest_relay(tmp_config, fault_proxy.endpoint, table, http_receiver)
    ddb.client().create_table(TableName=f"{table}-leases", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}])
    arn = ddb.client().describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = ddb.streams_client().describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    leases = ddb.client()
    leases.put_item(TableName=f"{table}-leases", Item={
        "leaseKey": {"S": shard}, "streamArn": {"S": arn}, "checkpoint": {"S": "LATEST"},
        "leaseCounter": {"N": "0"}})
    pinned_at = int(time.time() * 1000)
    rows = produce(ddb.endpoint, table, 5, 1, ids=True)  # written after the earlier start's pin
    pin = Rule(match_target="UpdateItem", match_body="checkpoint = :latest", action="delay", delay_ms=2000, times=1)
    fault_proxy.set_rules([pin])
    d = spawn_outboxd("run", "-c", cfg)
    assert wait_until(lambda: pin.applied == 1, 20), d.output()  # the pin waits in the proxy
    leases.update_item(TableName=f"{table}-leases", Key={"leaseKey": {"S": shard}},
                       UpdateExpression="SET checkpoint = :p", ExpressionAttributeValues={":p": {"S": f"LATEST@{pinned_at}"}})
    want = {r[0] for r in rows}
    assert wait_until(lambda: want <= {m[2] for m in http_messages(http_receiver)}, 30), d.output()
    assert d.stop() == 0


def test_a_lease_the_first_start_could_not_create_at_once_still_starts_from_latest(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    history = {r[0] for r in produce(ddb.endpoint, table, 5, 1, ids=True)}
    # Every try of the first lease creation is throttled: the next listing creates it.
    fault_proxy.set_rules([Rule(match_target="PutItem", match_body=f"{table}-leases", action="throttle", times=12)])
    d = spawn_outboxd("run", "-c", latest_relay(tmp_config, fault_proxy.endpoint, table, http_receiver))
    d.wait_for_output("started reading", timeout=30)
    rows = produce(ddb.endpoint, table, 3, 1, ids=True)
    want = {r[0] for r in rows}
    assert wait_until(lambda: want <= {m[2] for m in http_messages(http_receiver)}, 30), d.output()
    time.sleep(1)
    assert not history & {m[2] for m in http_messages(http_receiver)}, "the history a latest start skips"
    assert d.stop() == 0
