"""The relay reads only a stream that carries both images (SPEC §3): `run` refuses any other,
and a record without NewImage stops its shard instead of being dead-lettered."""

import base64
import json

import pytest

from harness import Rule
from relay_util import dlq_sink, http_sink, lines_of, relay_config, wait_until, with_relay


def put(c, table, pk, sk):
    c.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk},
                                      "payload": {"S": base64.b64encode(b"{}").decode()},
                                      "isPublished": {"BOOL": False}})


def dead_lettering_config(endpoint, table, receiver, dlq):
    return with_relay(relay_config(endpoint, table, http_sink("hook", receiver.url) + dlq_sink(dlq),
                                   default_sink="hook"),
                      dead_letter_sink="dlq")


def create_table(c, table, view):
    """An outbox table whose stream has the view type view (None: no stream)."""
    stream = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": view}} if view else {}
    c.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}], **stream)


@pytest.mark.parametrize("view", ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", None])
def test_run_refuses_a_stream_without_both_images_and_dead_letters_nothing(view, ddb, tmp_config, spawn_outboxd,
                                                                           http_receiver, tmp_path):
    table = f"view_{(view or 'off').lower()}"
    c = ddb.client()
    create_table(c, table, view)
    put(c, table, "k", "m1")
    dlq = tmp_path / "dlq.jsonl"
    d = spawn_outboxd("run", "-c", tmp_config(dead_lettering_config(ddb.endpoint, table, http_receiver, dlq)))
    exited = wait_until(lambda: not d.running(), 20)
    item = c.get_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": "m1"}}, ConsistentRead=True)["Item"]
    what = (d.output()[-3000:], item, lines_of(dlq), len(http_receiver.accepted()))
    assert "deadLetteredAt" not in item and lines_of(dlq) == [], what
    assert exited and d.wait() == 78, what
    differs = f"stream view type is {view}, expected NEW_AND_OLD_IMAGES" if view else \
        "stream is not enabled, expected NEW_AND_OLD_IMAGES"
    assert differs in d.output(), what
    assert http_receiver.accepted() == []


def test_status_lists_the_shards_of_a_stream_of_any_view_type(ddb, tmp_config, run_outboxd):
    create_table(ddb.client(), "status_keys_only", "KEYS_ONLY")
    r = run_outboxd("status", "-c", tmp_config(relay_config(ddb.endpoint, "status_keys_only",
                                                            "  - name: out\n    type: stdout\n")), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["shards"]) == 1


def without_new_image(sk):
    """A GetRecords answer rewrite: the INSERT of item sk loses its NewImage, as a stream
    of another view type would give it."""
    def rewrite(answer):
        for rec in answer.get("Records", []):
            ddb = rec.get("dynamodb", {})
            if rec.get("eventName") == "INSERT" and ddb.get("Keys", {}).get("sk", {}).get("S") == sk:
                ddb.pop("NewImage", None)
        return answer
    return rewrite


def test_an_insert_without_new_image_stops_its_shard_and_is_read_again_after_a_restart(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    c = ddb.client()
    for sk in ("m1", "m2", "m3"):
        put(c, table, "k", sk)
    dlq = tmp_path / "dlq.jsonl"
    fault_proxy.set_rules([Rule(match_target="GetRecords", action="rewrite", rewrite=without_new_image("m2"))])
    cfg = tmp_config(dead_lettering_config(fault_proxy.endpoint, table, http_receiver, dlq))
    d = spawn_outboxd("run", "-c", cfg)
    assert d.wait_for_output("has no NewImage", timeout=20), d.output()
    assert http_receiver.wait_for(1, timeout=20), d.output()
    assert d.running()
    items = {i["sk"]["S"]: i for i in c.scan(TableName=table, ConsistentRead=True)["Items"]}
    assert not any("deadLetteredAt" in i for i in items.values()) and lines_of(dlq) == [], (items, d.output())
    assert [r.headers["ce-id"] for r in http_receiver.accepted()] == ["m1"]
    assert d.stop() == 0

    # With the stream as it should be, the shard goes on from m2.
    d = spawn_outboxd("run", "-c", tmp_config(dead_lettering_config(ddb.endpoint, table, http_receiver, dlq)))
    assert http_receiver.wait_for(3, timeout=20), d.output()
    assert d.stop() == 0
    assert [r.headers["ce-id"] for r in http_receiver.accepted()] == ["m1", "m2", "m3"]



def test_a_record_without_new_image_on_a_closed_shards_last_page_does_not_end_the_shard(
        ddb, table, topology_proxy, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    from harness import FaultProxy
    c = ddb.client()
    topo = topology_proxy(shards=1, split_every=0, table=table)
    topo.attach(c.describe_table(TableName=table)["Table"]["LatestStreamArn"])
    for sk in ("m1", "m2"):
        put(c, table, "k", sk)
    topo.wait_records(2)
    parent, _ = topo.split_now()
    put(c, table, "k", "m3")  # in the child
    proxy = FaultProxy(topo.endpoint).start()
    try:
        proxy.set_rules([Rule(match_target="GetRecords", action="rewrite", rewrite=without_new_image("m2"))])
        d = spawn_outboxd("run", "-c", tmp_config(dead_lettering_config(proxy.endpoint, table, http_receiver,
                                                                         tmp_path / "dlq.jsonl")))
        assert d.wait_for_output("has no NewImage", timeout=20), d.output()
        assert http_receiver.wait_for(1, timeout=20), d.output()
        # m3 must not overtake m2: the parent is not read to its end, its child does not start.
        assert not wait_until(lambda: len(http_receiver.accepted()) > 1, 5), d.output()
        lease = c.get_item(TableName=f"{table}-leases", Key={"leaseKey": {"S": parent}},
                           ConsistentRead=True)["Item"]
        assert lease["checkpoint"]["S"] != "SHARD_END"
        assert d.stop() == 0
    finally:
        proxy.stop()
