"""Poison items among good ones: dead-lettered with their reasons, never a crash or a stall (own DynamoDB Local)."""

import base64
import threading

from relay_util import (dlq_sink, free_port, http_sink, lines_of, metric, metric_samples, produce, relay_config,
                        scan_items, wait_until, with_relay)


POISON = [
    ("payload missing", {}),
    ("payload not base64", {"payload": {"S": "%%%not-base64%%%"}}),
    ("payload not a string", {"payload": {"N": "12"}}),
    ("headers not JSON", {"headers": {"S": "{not json"}}),
    ("headers an array", {"headers": {"S": "[\"a\"]"}}),
    ("headers with a number", {"headers": {"S": "{\"a\":1}"}}),
    ("messageType a number", {"messageType": {"N": "7"}}),
    ("isPublished a string", {"isPublished": {"S": "no"}}),
    ("retryCount a string", {"retryCount": {"S": "x"}}),
    ("createdAt a list", {"createdAt": {"L": []}}),
]


def test_poison_items_of_every_kind_are_dead_lettered_and_the_good_ones_all_flow(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)
                                             + dlq_sink(dlq), metrics_port=port, max_in_flight=32,
                                             default_sink="hook"),
                                dead_letter_sink="dlq"))
    d = spawn_outboxd("run", "-c", cfg)
    c = ddb.client()
    producer = threading.Thread(target=produce, args=(ddb.endpoint, table, 5000, 50), kwargs={"threads": 16})
    producer.start()
    for i in range(100):
        kind, attrs = POISON[i % len(POISON)]
        item = {"pk": {"S": f"poison-{i % 7}"}, "sk": {"S": f"p{i:03d}"},
                "payload": {"S": base64.b64encode(b"{}").decode()}}
        if kind == "payload missing":
            del item["payload"]
        item.update(attrs)
        c.put_item(TableName=table, Item=item)
    producer.join()
    assert http_receiver.wait_for(5000, timeout=180), d.output()[-5000:]
    assert wait_until(lambda: len(lines_of(dlq)) == 100, 60), d.output()[-5000:]
    assert d.running()
    assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 100, 30)
    for item in scan_items(ddb, table):
        if item["sk"]["S"].startswith("p"):
            assert item["lastError"]["S"], item
    reasons = {x["id"]: x["deadletterreason"] for x in lines_of(dlq)}
    assert "base64" in reasons["p001"] and "headers" in reasons["p003"] and "messageType" in reasons["p006"]
    assert metric(metric_samples(port), "outboxd_messages_dead_lettered_total", reason="poison") == 100
    assert d.stop() == 0
