"""The relay under load on DynamoDB Local: 10,000 messages written while it runs."""

import calendar
import json
import time

from relay_util import (check_strict_order, create_outbox_table, duplicates, http_messages, http_sink,
                        produce, relay_config, scan_items, wait_until)


def epoch(iso):
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) + int(iso[20:23]) / 1000


def test_ten_thousand_messages_over_fifty_keys_arrive_once_in_key_order(ddb, tmp_config, spawn_outboxd,
                                                                       http_receiver):
    table = create_outbox_table(ddb, "outbox_10k")
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), max_in_flight=64,
                                  ttl_seconds=86400))
    d = spawn_outboxd("run", "-c", cfg)
    rows = produce(ddb.endpoint, table, 10000, 50, threads=16, ids=True)
    assert http_receiver.wait_for(10000, timeout=300), d.output()
    time.sleep(2)

    msgs = http_messages(http_receiver)
    assert len(msgs) == 10000
    assert duplicates(msgs) == 0
    assert check_strict_order(msgs) == {}
    assert sorted(m[2] for m in msgs) == sorted(r[0] for r in rows)
    for r in http_receiver.accepted()[:200]:
        h = r.headers
        assert h["ce-specversion"] == "1.0" and h["ce-type"].startswith("Test.Event")
        assert h["ce-source"] == f"/{table}/Test" and h["ce-subject"] == h["ce-partitionkey"]
        assert h["idempotency-key"] == h["ce-id"] and h["content-type"] == "application/json"
        assert h["x-n"] == str(json.loads(r.body)["n"])

    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 60)
    items = scan_items(ddb, table)
    assert len(items) == 10000
    for item in items:
        published = epoch(item["publishedAt"]["S"])
        assert abs(int(item["ttl"]["N"]) - (published + 86400)) <= 1
    assert d.stop() == 0
