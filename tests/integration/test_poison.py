"""Poison items among good ones: dead-lettered with their reasons, never a crash or a stall (own DynamoDB Local)."""

import base64
import json
import threading

import pytest

from relay_util import (dead_letter_config, dlq_sink, free_port, lines_of, metric, metric_samples, produce, relay_config,
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
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, http_receiver.url, dlq, metrics_port=port,
                                        max_in_flight=32))
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


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_message_id_with_a_line_break_cannot_forge_a_log_line(ddb, table, tmp_config, spawn_outboxd, tmp_path,
                                                                  log_format):
    forging_id = "forge\n2026-01-01T00:00:00.000Z error  forged: the relay is compromised"
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, dlq_sink(tmp_path / "dlq.jsonl"),
                                             default_sink="dlq", log_format=log_format),
                                dead_letter_sink="dlq"))
    d = spawn_outboxd("run", "-c", cfg)
    # Poison (no payload): its id is logged with the reason.
    ddb.client().put_item(TableName=table, Item={"pk": {"S": "k"}, "sk": {"S": forging_id}})
    assert wait_until(lambda: any("deadLetteredAt" in i for i in scan_items(ddb, table)), 60), d.output()
    assert d.stop() == 0
    lines = d.output().splitlines()
    assert [ln for ln in lines if ln.startswith("2026-01-01T00:00:00.000Z")] == []
    naming_it = [ln for ln in lines if "forged" in ln]
    if log_format == "json":
        assert [json.loads(ln)["message_id"] for ln in naming_it] == [forging_id], lines
    else:
        assert len(naming_it) == 1 and " warn  " in naming_it[0], lines
        assert 'id="forge\\n2026-01-01T00:00:00.000Z error  forged: the relay is compromised" poison item' \
            in naming_it[0], lines
