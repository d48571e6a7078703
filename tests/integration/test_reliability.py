"""Failures the relay must ride out: sinks down or refusing, poison items, DynamoDB throttling, budgets."""

import base64
import json
import threading
import time

import pytest

from harness.fault_proxy import Rule
from harness.http_receiver import HttpReceiver
from relay_util import (check_per_key_order, check_strict_order, create_outbox_table, free_port,
                        http_messages, http_sink, metric, metric_samples, produce, relay_config, scan_items,
                        wait_until)

_tables = iter(range(1000))


@pytest.fixture
def table(ddb):
    return create_outbox_table(ddb, f"outbox_rel{next(_tables)}")


def dlq_sink(path):
    return f"  - name: dlq\n    type: file\n    path: {path}\n"


def with_relay(text, **kv):
    """relay_config's text with relay keys replaced or added."""
    lines = text.split("relay:\n", 1)
    head, rest = lines[0], lines[1]
    body, tail = [], []
    it = iter(rest.splitlines(keepends=True))
    for line in it:
        if line.startswith("  "):
            body.append(line)
        else:
            tail.append(line)
            tail.extend(it)
            break
    keys = {ln.split(":", 1)[0].strip(): ln for ln in body}
    for k, v in kv.items():
        keys[k] = f"  {k}: {v}\n"
    return head + "relay:\n" + "".join(keys.values()) + "".join(tail)


def lines_of(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_sink_down_for_30_s_loses_nothing_dead_letters_nothing_and_is_probed_one_at_a_time(
        ddb, table, tmp_config, spawn_outboxd, tmp_path):
    port = free_port()
    down = HttpReceiver(port=port).start()
    active, most, lock = [0], [0], threading.Lock()
    outage_start = time.monotonic()

    def failing(req):
        with lock:
            active[0] += 1
            if time.monotonic() > outage_start + 3:
                most[0] = max(most[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return 503
    down.respond(failing)
    dlq = tmp_path / "dlq.jsonl"
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, http_sink("hook", f"http://127.0.0.1:{port}")
                                             + dlq_sink(dlq), max_in_flight=8, default_sink="hook"),
                                max_attempts=3, dead_letter_sink="dlq"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 200, 10)
    time.sleep(15)
    waiting = [i for i in scan_items(ddb, table) if "lastError" in i]
    assert waiting and all(int(i["retryCount"]["N"]) >= 1 for i in waiting)
    assert "503" in waiting[0]["lastError"]["S"]
    down.stop()                                 # now connections are refused
    time.sleep(15)
    up = HttpReceiver(port=port).start()
    try:
        assert up.wait_for(200, timeout=60), d.output()
        time.sleep(1)
        msgs = http_messages(up)
        assert check_strict_order(msgs) == {}
        assert most[0] == 1, f"{most[0]} requests at once while the sink was down"
        assert lines_of(dlq) == []
        assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 20)
        assert not any("deadLetteredAt" in i for i in scan_items(ddb, table))
        assert d.stop() == 0
    finally:
        up.stop()


def test_messages_a_sink_rejects_are_dead_lettered_after_max_attempts_while_other_keys_flow(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-3" else 200)
    dlq = tmp_path / "dlq.jsonl"
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)
                                             + dlq_sink(dlq), default_sink="hook"),
                                max_attempts=3, dead_letter_sink="dlq"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 100, 10)
    assert http_receiver.wait_for(90, timeout=60), d.output()
    assert wait_until(lambda: len(lines_of(dlq)) == 10, 60), d.output()
    rejected = [r for r in http_receiver.requests if r.status == 400]
    assert len(rejected) == 30                              # 3 attempts each
    assert max(r.time for r in http_receiver.accepted()) < max(r.time for r in rejected)
    dead = lines_of(dlq)
    assert {x["data"]["key"] for x in dead} == {"key-3"}
    assert all("HTTP 400" in x["deadletterreason"] for x in dead)
    assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 10, 20)
    for item in scan_items(ddb, table):
        if item["pk"]["S"] == "key-3":
            assert item["isPublished"] == {"BOOL": False}
            assert int(item["retryCount"]["N"]) == 3 and "HTTP 400" in item["lastError"]["S"]
            assert "ttl" in item
    assert d.stop() == 0


def test_on_failure_block_holds_the_rejected_key_and_lets_the_others_flow(ddb, table, tmp_config, spawn_outboxd,
                                                                          http_receiver):
    blocked_until = time.monotonic() + 6
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-3"
                          and time.monotonic() < blocked_until else 200)
    cfg = tmp_config(with_relay(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)),
                                max_attempts=2, on_failure="block"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 100, 10)
    assert http_receiver.wait_for(100, timeout=60), d.output()
    time.sleep(1)
    msgs = http_messages(http_receiver)
    assert len(msgs) == 100 and check_strict_order(msgs) == {}
    key3 = [r.time for r in http_receiver.accepted() if json.loads(r.body)["key"] == "key-3"]
    others = [r.time for r in http_receiver.accepted() if json.loads(r.body)["key"] != "key-3"]
    assert min(key3) >= blocked_until and max(others) < blocked_until
    assert not any("deadLetteredAt" in i for i in scan_items(ddb, table))
    assert d.stop() == 0


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


def test_throttling_and_resets_from_dynamodb_lose_nothing_and_do_not_busy_loop(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    fault_proxy.set_rules([Rule(action="throttle", probability=0.3, seed=1),
                           Rule(action="reset", probability=0.05, seed=2)])
    port = free_port()
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  metrics_port=port, max_in_flight=32))
    d = spawn_outboxd("run", "-c", cfg)
    t0 = time.monotonic()
    produce(ddb.endpoint, table, 5000, 50, threads=16)
    assert http_receiver.wait_for(5000, timeout=240), d.output()[-5000:]
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 120)
    elapsed = time.monotonic() - t0
    with open(f"/proc/{d.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / 100.0
    msgs = http_messages(http_receiver)
    assert len({m[2] for m in msgs}) == 5000
    assert check_per_key_order(msgs) == []
    s = metric_samples(port)
    throttled = sum(v for (name, _), v in s.items() if name == "outboxd_throttled_requests_total")
    print(f"\n5000 messages through 30% throttling and 5% resets in {elapsed:.1f} s: "
          f"{throttled:.0f} throttled requests, outboxd CPU {cpu:.2f} s ({100 * cpu / elapsed:.1f}% of a core)")
    assert throttled > 0
    assert fault_proxy.count(action="reset") > 0
    assert cpu / elapsed < 0.5
    assert d.stop() == 0


def test_the_write_budget_caps_consumed_write_units_per_second(ddb, table, tmp_config, spawn_outboxd,
                                                               http_receiver):
    produce(ddb.endpoint, table, 2000, 20, threads=16)
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port,
                                  max_in_flight=32, extra="capacity:\n  max_write_units_per_second: 50\n"))
    d = spawn_outboxd("run", "-c", cfg)

    def units():
        return metric(metric_samples(port), "outboxd_consumed_capacity_units_total", table=table,
                      operation="UpdateItem", kind="write")
    assert wait_until(lambda: units() > 0, 30), d.output()
    time.sleep(2)
    u0, t0 = units(), time.monotonic()
    time.sleep(20)
    rate = (units() - u0) / (time.monotonic() - t0)
    print(f"\nconsumed {rate:.1f} write units/s against a budget of 50")
    assert 45 <= rate <= 55
    assert d.stop() == 0
