"""Failures the relay must ride out: sinks down or refusing messages, and the write budget."""

import json
import threading
import time

import pytest

from harness.fault_proxy import Rule
from harness.http_receiver import HttpReceiver
from relay_util import (check_strict_order, dead_letter_config, free_port, http_messages, http_sink, lines_of, metric,
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
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, f"http://127.0.0.1:{port}", dlq, max_attempts=3,
                                        max_in_flight=8))
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
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, http_receiver.url, dlq, max_attempts=3))
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


ROUTED = """\
routes:
  - match: { messageType: "Test*" }
    sink: hook
    topic: "orders.{messageType}"
"""


def routed_relay_with_http_dead_letters(ddb_endpoint, table, hook_url, dlq_url, metrics_port=None, **relay):
    """A relay whose route sends Test* messages to hook under the destination orders.{messageType}, and
    whose dead-letter sink dlq is an HTTP sink at dlq_url."""
    return with_relay(relay_config(ddb_endpoint, table, http_sink("hook", hook_url) + http_sink("dlq", dlq_url),
                                   extra=ROUTED, metrics_port=metrics_port, default_sink="hook"),
                      dead_letter_sink="dlq", **relay)


def stays(pred, seconds):
    """pred() holds for the next `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pred():
            return False
        time.sleep(0.2)
    return pred()


def test_dead_letters_go_to_the_dead_letter_sinks_own_url_not_the_failed_routes_destination(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-1" else 200)
    dl = HttpReceiver().start()
    try:
        dl.respond(lambda req: 200 if req.path == "/dlq" else 404)
        cfg = tmp_config(routed_relay_with_http_dead_letters(ddb.endpoint, table, http_receiver.url + "/",
                                                             dl.url + "/dlq", max_attempts=1))
        d = spawn_outboxd("run", "-c", cfg)
        produce(ddb.endpoint, table, 20, 2)
        assert http_receiver.wait_for(10, timeout=60), d.output()
        assert wait_until(lambda: len(dl.requests) >= 10, 30), d.output()
        assert stays(lambda: len(dl.requests) == 10, 3), [r.path for r in dl.requests]
        assert {r.path for r in dl.requests} == {"/dlq"}
        assert {r.path for r in http_receiver.requests} == {"/orders.Test.Event1", "/orders.Test.Event0"}
        assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 10, 20)
        assert all("ttl" in i for i in scan_items(ddb, table) if "deadLetteredAt" in i)
        assert d.stop() == 0
    finally:
        dl.stop()


def test_a_dead_letter_the_dead_letter_sink_rejects_is_recorded_once_with_both_reasons_and_no_ttl(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-1" else 200)
    dl = HttpReceiver().start()
    try:
        dl.respond(lambda req: 422)
        port = free_port()
        cfg = tmp_config(routed_relay_with_http_dead_letters(ddb.endpoint, table, http_receiver.url + "/",
                                                             dl.url + "/dlq", metrics_port=port, max_attempts=2))
        d = spawn_outboxd("run", "-c", cfg)
        produce(ddb.endpoint, table, 20, 2)
        assert http_receiver.wait_for(10, timeout=60), d.output()
        assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 10, 30), \
            d.output()[-3000:]
        assert stays(lambda: len(dl.requests) == 10, 3), len(dl.requests)
        for item in scan_items(ddb, table):
            if item["pk"]["S"] == "key-1":
                assert "HTTP 400" in item["lastError"]["S"] and "HTTP 422" in item["lastError"]["S"], item
                assert "ttl" not in item and int(item["retryCount"]["N"]) == 2
        assert metric(metric_samples(port), "outboxd_messages_dead_lettered_total", reason="attempts") == 10
        assert d.stop() == 0
    finally:
        dl.stop()


def test_dead_letters_wait_for_a_dead_letter_sink_that_is_down_and_reach_it_once_it_is_up(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-1" else 200)
    dl = HttpReceiver().start()
    up_at = time.monotonic() + 8
    try:
        dl.respond(lambda req: 404 if req.path != "/dlq" else 200 if time.monotonic() >= up_at else 503)
        port = free_port()
        cfg = tmp_config(routed_relay_with_http_dead_letters(ddb.endpoint, table, http_receiver.url + "/",
                                                             dl.url + "/dlq", metrics_port=port, max_attempts=1))
        d = spawn_outboxd("run", "-c", cfg)
        produce(ddb.endpoint, table, 20, 2)
        assert wait_until(lambda: metric(metric_samples(port), "outboxd_sink_up", sink="dlq") == 0, 20), \
            d.output()[-3000:]
        assert dl.wait_for(10, timeout=60), d.output()[-3000:]
        assert stays(lambda: len(dl.accepted()) == 10, 2)
        assert len({r.headers["ce-id"] for r in dl.accepted()}) == 10
        down = [r for r in dl.requests if r.status == 503]
        assert len(down) < 40, f"{len(down)} dead letters sent while the dead-letter sink was down"
        assert wait_until(lambda: sum("deadLetteredAt" in i and "ttl" in i for i in scan_items(ddb, table)) == 10,
                          20)
        assert metric(metric_samples(port), "outboxd_sink_up", sink="dlq") == 1
        assert d.stop() == 0
    finally:
        dl.stop()


def item_writes(fault_proxy, text):
    """The UpdateItems that went through the proxy with text in their body."""
    return [r for r in fault_proxy.select(target="UpdateItem") if text.encode() in r.body]


def checkpoint_after_stop(run_outboxd, cfg):
    r = run_outboxd("status", "-c", cfg, "--json")
    assert r.returncode == 0, r.stderr
    return [s["checkpoint"] for s in json.loads(r.stdout)["shards"]]


def test_a_dead_letter_record_dynamodb_refuses_for_good_is_given_up_after_one_send_to_the_dead_letter_sink(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, run_outboxd, http_receiver, tmp_path):
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="deadLetteredAt", action="error",
                                error_type="AccessDeniedException", message="not authorized to perform UpdateItem")])
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-1" else 200)
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    cfg = tmp_config(dead_letter_config(fault_proxy.endpoint, table, http_receiver.url, dlq, max_attempts=1,
                                        metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 20, 2)
    assert http_receiver.wait_for(10, timeout=60), d.output()
    assert wait_until(lambda: len(lines_of(dlq)) >= 10, 30), d.output()[-3000:]
    assert stays(lambda: len(lines_of(dlq)) == 10, 4), f"{len(lines_of(dlq))} dead letters sent for 10 messages"
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_item_writes_given_up_total",
                                     write="dead_letter") == 10, 20), d.output()[-3000:]
    assert "error" in d.output() and "AccessDeniedException" in d.output()
    assert not any("deadLetteredAt" in i for i in scan_items(ddb, table))
    assert d.stop() == 0
    assert [c.isdigit() for c in checkpoint_after_stop(run_outboxd, cfg)] == [True]


def test_a_dead_letter_record_too_big_for_dynamodb_is_written_again_with_a_shorter_last_error(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    # The hook's long path makes lastError long; the end of it, the route's destination, is cut
    # off in the shorter write.
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="orders.Test.Event1", action="error",
                                error_type="ValidationException",
                                message="Item size has exceeded the maximum allowed size")])
    http_receiver.respond(lambda req: 400 if json.loads(req.body)["key"] == "key-1" else 200)
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    hook = http_receiver.url + "/" + "x" * 150 + "/"
    cfg = tmp_config(dead_letter_config(fault_proxy.endpoint, table, hook, dlq, max_attempts=1, extra=ROUTED,
                                        metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 20, 2)
    assert http_receiver.wait_for(10, timeout=60), d.output()
    assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 10, 30), \
        d.output()[-3000:]
    assert stays(lambda: len(lines_of(dlq)) == 10, 3), f"{len(lines_of(dlq))} dead letters sent for 10 messages"
    for item in scan_items(ddb, table):
        if item["pk"]["S"] == "key-1":
            assert item["lastError"]["S"].startswith("HTTP 400 from POST"), item
            assert "ttl" in item and int(item["retryCount"]["N"]) == 1
    assert metric(metric_samples(port), "outboxd_item_write_failures_total", write="dead_letter",
                  error="permanent") == 10
    assert d.stop() == 0


@pytest.mark.parametrize("error_type,match", [("ValidationException", "SET isPublished"),
                                              ("AccessDeniedException", '"pk"')])
def test_a_mark_dynamodb_refuses_for_good_is_not_retried_and_does_not_pin_the_checkpoint(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, run_outboxd, http_receiver, error_type, match):
    # ValidationException on both marks (the whole one and the one of isPublished alone): the
    # item is recorded as handled (deadLetteredAt, so no sweep delivers it again). AccessDenied
    # on every write to the outbox table: nothing can be recorded; the entry is given up.
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body=match, action="error",
                                error_type=error_type, message="refused by the test")])
    port = free_port()
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 20, 2)
    assert http_receiver.wait_for(20, timeout=60), d.output()
    assert wait_until(lambda: len(item_writes(fault_proxy, "SET isPublished")) >= 40, 20)
    assert stays(lambda: len(item_writes(fault_proxy, "SET isPublished")) == 40, 4), \
        f"{len(item_writes(fault_proxy, 'SET isPublished'))} marks tried for 20 messages (a whole and a minimal each)"
    assert len(item_writes(fault_proxy, "publishedAt")) == 20
    assert len(http_receiver.requests) == 20
    items = scan_items(ddb, table)
    assert not any(i.get("isPublished", {}).get("BOOL") for i in items)
    if error_type == "ValidationException":
        assert wait_until(lambda: sum("deadLetteredAt" in i for i in scan_items(ddb, table)) == 20, 10)
        assert all("refused by the test" in i["lastError"]["S"] and "ttl" not in i for i in scan_items(ddb, table))
        given_up = 0
    else:
        assert not any("deadLetteredAt" in i for i in items)
        given_up = 20
    assert metric(metric_samples(port), "outboxd_item_writes_given_up_total", write="published") == given_up
    assert d.stop() == 0
    assert [c.isdigit() for c in checkpoint_after_stop(run_outboxd, cfg)] == [True]


@pytest.mark.parametrize("max_attempts", [1, 2])
@pytest.mark.parametrize("outage", ["refused", "503"])
def test_an_outage_dead_letters_nothing_even_with_one_or_two_attempts(
        ddb, table, tmp_config, spawn_outboxd, tmp_path, outage, max_attempts):
    port = free_port()
    up_at = time.monotonic() + 8
    sink = None
    if outage == "503":
        sink = HttpReceiver(port=port)
        sink.respond(lambda req: 200 if time.monotonic() >= up_at else 503)
        sink.start()
    dlq = tmp_path / "dlq.jsonl"
    cfg = tmp_config(dead_letter_config(ddb.endpoint, table, f"http://127.0.0.1:{port}", dlq,
                                        max_attempts=max_attempts))
    d = spawn_outboxd("run", "-c", cfg)
    try:
        produce(ddb.endpoint, table, 50, 5)
        time.sleep(max(0.0, up_at - time.monotonic()))
        if outage == "refused":
            sink = HttpReceiver(port=port).start()  # it listens from here on
        assert sink.wait_for(50, timeout=60), d.output()[-3000:]
        time.sleep(1)
        msgs = http_messages(sink)
        assert len(msgs) == 50 and check_strict_order(msgs) == {}
        assert lines_of(dlq) == []
        assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 20)
        assert not any("deadLetteredAt" in i for i in scan_items(ddb, table))
        assert d.stop() == 0
    finally:
        if sink:
            sink.stop()
