"""One message cannot hold its sink down for every other (SPEC §3): a message whose own
destination cannot be reached waits for it alone (an outage of that host dead-letters nothing),
and a message a sink fails alone does not stay its probe while others wait."""

import base64
import json
import time

from relay_util import (dead_letter_config, free_port, lines_of, metric, metric_samples, produce, scan_items,
                        wait_until)


def put_message(ddb, table, key, aggregate_type="Test"):
    """One unpublished outbox item whose payload is {"key": key, "n": 0}."""
    payload = base64.b64encode(json.dumps({"key": key, "n": 0}).encode()).decode()
    ddb.client().put_item(TableName=table, Item={
        "pk": {"S": key}, "sk": {"S": f"{key}-0"}, "messageType": {"S": "Test.Event"},
        "aggregateType": {"S": aggregate_type}, "payload": {"S": payload},
        "createdAt": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}})


def good_ones_arrive_soon(receiver, n, d):
    """The n good messages all arrive within 15 s of being written: the bad one holds none back.
    Returns when they were written (monotonic)."""
    t0 = time.monotonic()
    assert receiver.wait_for(n, timeout=30), f"{len(receiver.accepted())} of {n} arrived; {d.output()[-2000:]}"
    print(f"\nthe {n} good messages arrived within {time.monotonic() - t0:.1f} s")
    assert time.monotonic() - t0 < 15
    return t0


def test_a_message_whose_own_destination_refuses_connections_waits_for_it_while_the_others_flow(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    # The route sends aggregateType "bad" to an absolute URL of its own (the http sink takes it:
    # test_sink_http's test_absolute_destination_replaces_url), where nobody listens for a while:
    # an outage of that host, which dead-letters nothing (SPEC §3) and holds back no other message.
    from harness.http_receiver import HttpReceiver
    nobody = free_port()
    routes = f"""\
routes:
  - match: {{ aggregateType: "bad" }}
    sink: hook
    topic: "http://127.0.0.1:{nobody}/{{aggregateType}}"
"""
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, http_receiver.url, dlq, max_attempts=3, extra=routes,
                                        metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    put_message(ddb, table, "bad", aggregate_type="bad")
    produce(ddb.endpoint, table, 50, 10)
    t0 = good_ones_arrive_soon(http_receiver, 50, d)
    time.sleep(max(0.0, 6 - (time.monotonic() - t0)))  # more than max_attempts tries of the bad one
    assert lines_of(dlq) == [] and not any("deadLetteredAt" in i for i in scan_items(ddb, table))
    assert metric(metric_samples(port), "outboxd_sink_up", sink="hook") == 1
    assert "a sink is down" not in d.output()
    late = HttpReceiver(port=nobody).start()  # the destination's host is back
    try:
        assert late.wait_for(1, timeout=30), d.output()[-3000:]
        assert wait_until(lambda: all(i.get("isPublished", {}).get("BOOL") for i in scan_items(ddb, table)), 20)
        assert lines_of(dlq) == []
    finally:
        late.stop()
    assert d.stop() == 0


def test_a_message_the_sink_fails_alone_is_not_its_only_probe_while_others_wait(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    # The sink answers 503 to "bad" alone. Sent with nothing else, bad takes the sink down (an
    # outage looks the same); then other messages come, and one of them must probe it.
    http_receiver.respond(lambda req: 503 if json.loads(req.body)["key"] == "bad" else 200)
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, http_receiver.url, dlq, max_attempts=3,
                                        metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    put_message(ddb, table, "bad")
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_sink_up", sink="hook") == 0, 30), \
        d.output()[-3000:]
    produce(ddb.endpoint, table, 20, 5)
    good_ones_arrive_soon(http_receiver, 20, d)
    assert all(x["data"]["key"] == "bad" for x in lines_of(dlq))
    assert d.stop() == 0
