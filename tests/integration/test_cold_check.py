"""The check before records older than a shard's worker are sent: their items are looked up
with BatchGetItem, and only those the answer says are published (or dead-lettered) are skipped."""

import base64
import signal
import time

import pytest

from harness import FaultProxy, Rule
from relay_util import http_sink, relay_config, scan_items, wait_until


def put(c, table, pk, sk):
    c.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk},
                                      "payload": {"S": base64.b64encode(b"{}").decode()},
                                      "isPublished": {"BOOL": False}})


def delivered(receiver):
    return [r.headers["ce-id"] for r in receiver.accepted()]


def without_item(sk):
    """A BatchGetItem answer rewrite: item sk is left out of Responses, as if it did not exist."""
    def rewrite(answer):
        for table, items in answer.get("Responses", {}).items():
            answer["Responses"][table] = [i for i in items if i.get("sk", {}).get("S") != sk]
        return answer
    return rewrite


def test_an_item_the_lookup_answer_leaves_out_is_delivered_not_taken_for_deleted(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    c = ddb.client()
    for sk in ("m1", "m2", "m3"):
        put(c, table, "k", sk)
    # m1 was delivered and marked before this start.
    c.update_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": "m1"}},
                  UpdateExpression="SET isPublished = :t", ExpressionAttributeValues={":t": {"BOOL": True}})
    fault_proxy.set_rules([Rule(match_target="BatchGetItem", action="rewrite", rewrite=without_item("m2"))])
    d = spawn_outboxd("run", "-c", tmp_config(relay_config(fault_proxy.endpoint, table,
                                                           http_sink("hook", http_receiver.url))))
    assert wait_until(lambda: "m3" in delivered(http_receiver), 20), d.output()
    time.sleep(1)
    assert fault_proxy.count(target="BatchGetItem", action="rewrite") >= 1
    assert sorted(delivered(http_receiver)) == ["m2", "m3"], d.output()
    assert d.stop() == 0


DURATION = "2s"


def stamped(written):
    """A GetRecords answer rewrite: the INSERT of each item in written {sk: epoch seconds} gets
    that second as its ApproximateCreationDateTime, as DynamoDB gives it (DynamoDB Local
    rounds it down to the minute)."""
    def rewrite(answer):
        for rec in answer.get("Records", []):
            ddb = rec.get("dynamodb", {})
            sk = ddb.get("Keys", {}).get("sk", {}).get("S")
            if rec.get("eventName") == "INSERT" and sk in written:
                ddb["ApproximateCreationDateTime"] = written[sk]
        return answer
    return rewrite


@pytest.fixture
def second_proxy(ddb):
    with FaultProxy(ddb.endpoint) as p:
        yield p


def instance_config(endpoint, table, receiver, name):
    return relay_config(endpoint, table, http_sink("hook", receiver.url), max_in_flight=8,
                        extra=f"leases:\n  instance_id: {name}\n  duration: {DURATION}\n")


def test_a_take_over_checks_what_the_dead_owner_marked_after_its_last_checkpoint(
        ddb, table, fault_proxy, second_proxy, tmp_config, spawn_outboxd, http_receiver):
    # a reads the shard through a proxy that fails its checkpoint writes from some point on;
    # b runs from before those messages are written, waiting for a lease, and reads the
    # records with their creation times to the second.
    c = ddb.client()
    a = spawn_outboxd("run", "-c", tmp_config(instance_config(fault_proxy.endpoint, table, http_receiver, "a"),
                                              name="a.yaml"), name="a")
    put(c, table, "k0", "before")
    assert wait_until(lambda: delivered(http_receiver) == ["before"], 20), a.output()
    written = {}
    second_proxy.set_rules([Rule(match_target="GetRecords", action="rewrite", rewrite=stamped(written))])
    b = spawn_outboxd("run", "-c", tmp_config(instance_config(second_proxy.endpoint, table, http_receiver, "b"),
                                              name="b.yaml"), name="b")
    assert b.wait_for_output("reading the stream", timeout=20), b.output()
    time.sleep(1.1)  # the second of what comes now is later than b's start
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="checkpointAt", action="error")])
    ids = [f"m{i:02d}" for i in range(20)]
    for i, sk in enumerate(ids):
        written[sk] = int(time.time())
        put(c, table, f"k{i % 5}", sk)
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 30), a.output()
    assert fault_proxy.count(target="UpdateItem", action="error") >= 1
    a.stop(signal.SIGKILL)

    # b takes the shard over from a's last checkpoint: what a marked after it is not sent again.
    assert b.wait_for_output("started reading", timeout=20), b.output()
    put(c, table, "k0", "after")
    assert wait_until(lambda: "after" in delivered(http_receiver), 20), b.output()
    time.sleep(1)
    got = delivered(http_receiver)
    again = sorted(sk for sk in set(got) if got.count(sk) > 1)
    assert again == [], (again, b.output())
    assert sorted(got) == sorted(["before", "after"] + ids)
    assert b.stop() == 0


def test_an_empty_first_page_does_not_end_the_check_of_older_records(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # GetRecords may answer empty pages before the records that follow (AWS says so;
    # DynamoDB Local never does): the proxy answers the first read that way.
    c = ddb.client()
    for sk in ("m1", "m2", "m3"):
        put(c, table, "k", sk)
    for sk in ("m1", "m2"):
        c.update_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": sk}},
                      UpdateExpression="SET isPublished = :t", ExpressionAttributeValues={":t": {"BOOL": True}})

    def empty(answer, request):
        return {"Records": [], "NextShardIterator": request["ShardIterator"]}
    fault_proxy.set_rules([Rule(match_target="GetRecords", action="rewrite", rewrite=empty, times=1)])
    d = spawn_outboxd("run", "-c", tmp_config(relay_config(fault_proxy.endpoint, table,
                                                           http_sink("hook", http_receiver.url))))
    assert wait_until(lambda: "m3" in delivered(http_receiver), 20), d.output()
    time.sleep(1)
    assert fault_proxy.count(target="GetRecords", action="rewrite") == 1
    assert delivered(http_receiver) == ["m3"], d.output()
    assert d.stop() == 0
