"""Failures the relay must ride out: sinks down or refusing messages, and the write budget."""

import json
import threading
import time

from harness.http_receiver import HttpReceiver
from relay_util import (check_strict_order, dlq_sink, free_port, http_messages, http_sink, lines_of, metric,
                        metric_samples, produce, relay_config, scan_items, wait_until, with_relay)


def test_a_sink_down_for_30_s_loses_nothing_dead_letters_nothing_and_is_probed_one_at_a_time(
        ddb, table, tmp_config, spawn_outboxd, tmp_path):
    port = free_port()
    down = HttpReceiver(port=port).start()
    active, most, first, lock = [0], [0], [], threading.Lock()

    def failing(req):
        with lock:
            active[0] += 1
            first[:] = first or [time.monotonic()]
            # The first wave goes out before the sink is known to be down.
            if time.monotonic() > first[0] + 2:
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
