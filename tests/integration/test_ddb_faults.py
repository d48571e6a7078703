"""DynamoDB throttling and connection resets under load (own DynamoDB Local)."""

import json
import time

from harness.fault_proxy import Rule
from relay_util import (check_per_key_order, free_port, http_messages, http_sink, metric, metric_samples, produce,
                        relay_config, scan_items, stop_measured, wait_until)


def test_throttling_and_resets_from_dynamodb_lose_nothing_and_do_not_busy_loop(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    fault_proxy.set_rules([Rule(match_target="DescribeStream", action="throttle", probability=0.5, seed=3,
                                error_type="LimitExceededException"),
                           Rule(action="throttle", probability=0.3, seed=1),
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
    assert metric(s, "outboxd_throttled_requests_total", operation="DescribeStream") > 0
    assert fault_proxy.count(action="reset") > 0
    assert cpu / elapsed < 0.5
    assert d.stop() == 0


def get_records_limits(fault_proxy):
    """The GetRecords requests that went through the proxy with a Limit, and the set of their Limits."""
    reads = [r for r in fault_proxy.select(target="GetRecords") if json.loads(r.body).get("Limit")]
    return reads, {json.loads(r.body)["Limit"] for r in reads}


def test_a_shard_reads_its_next_page_while_the_last_ones_messages_go_out(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # Every GetRecords answer comes 400 ms late. A shard asks for 2 x max_in_flight
    # records a call and reads on while that page's messages are delivered and marked.
    fault_proxy.set_rules([Rule(match_target="GetRecords", action="delay", delay_ms=400)])
    produce(ddb.endpoint, table, 400, 400, threads=8)
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  max_in_flight=64))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(400, timeout=120), d.output()[-5000:]
    reads, limits = get_records_limits(fault_proxy)
    assert limits == {128}
    # While a later read waits for its answer, messages of the page before arrive.
    arrivals = [r.time for r in http_receiver.accepted()]
    during = [a for a in arrivals if any(r.start <= a <= r.end for r in reads[1:])]
    assert during, f"no delivery overlapped a read: reads {[(r.start, r.end) for r in reads]}, arrivals {arrivals}"
    assert d.stop() == 0


def test_a_small_max_in_flight_still_reads_a_hundred_records_a_call(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    produce(ddb.endpoint, table, 5, 5, threads=1)
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  max_in_flight=2))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(5, timeout=60), d.output()[-5000:]
    reads, limits = get_records_limits(fault_proxy)
    assert reads and limits == {100}
    assert d.stop() == 0


def test_slow_checkpoint_writes_do_not_hold_up_deliveries(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, run_outboxd, http_receiver):
    # Every checkpoint write is answered 4 s late. Messages written meanwhile go out as
    # they come; the write at the stop is still waited for.
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET checkpoint", action="delay",
                                delay_ms=4000)])
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 300, 10, threads=2, rate=50)
    assert http_receiver.wait_for(300, timeout=60), d.output()[-5000:]
    arrivals = [r.time for r in http_receiver.accepted()]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert fault_proxy.count(target="UpdateItem", action="delay") >= 1
    assert max(gaps) < 2.0, f"deliveries stalled for {max(gaps):.1f} s"
    assert d.stop() == 0
    r = run_outboxd("status", "-c", cfg, "--json")
    assert r.returncode == 0, r.stderr
    assert [s["checkpoint"].isdigit() for s in json.loads(r.stdout)["shards"]] == [True]


def test_a_stop_with_marks_and_a_checkpoint_write_still_running_exits_cleanly_without_spinning(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # At the drain deadline marks (answered 3 s late) and a checkpoint write (15 s late)
    # still run: the marks are taken back and the write is waited for, idle, until
    # shutdown_timeout ends the process.
    slow_checkpoints = Rule(match_target="UpdateItem", match_body="SET checkpoint", action="delay", delay_ms=15000)
    fault_proxy.set_rules([slow_checkpoints])
    text = relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url))
    cfg = tmp_config(text.replace("shutdown_timeout: 20s", "shutdown_timeout: 4s"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 50, 10, threads=2)
    assert http_receiver.wait_for(50, timeout=60), d.output()[-5000:]
    fault_proxy.set_rules([slow_checkpoints, Rule(match_target="UpdateItem", match_body="SET isPublished",
                                                  action="delay", delay_ms=3000)])
    produce(ddb.endpoint, table, 20, 10, threads=2)
    assert http_receiver.wait_for(70, timeout=60), d.output()[-5000:]
    rc, seconds, cpu = stop_measured(d)
    assert seconds < 10
    assert rc == 0, d.output()[-5000:]
    assert "ERROR: AddressSanitizer" not in d.output()
    assert cpu < 1.0, f"{cpu:.2f} s of CPU while stopping"


def test_a_cold_start_check_throttled_without_end_waits_and_still_stops_at_once(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # Every key of the cold-start check comes back unprocessed: nothing is sent while the
    # table cannot say what is published (SPEC 3), and a stop does not wait for it.
    produce(ddb.endpoint, table, 20, 5, threads=2)
    time.sleep(1.5)  # older than the process: checked before they are sent
    fault_proxy.set_rules([Rule(match_target="BatchGetItem", action="unprocessed")])
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    assert fault_proxy.wait_for(4, target="BatchGetItem", timeout=30), d.output()[-3000:]
    assert http_receiver.accepted() == []
    rc, seconds, _ = stop_measured(d)
    assert rc == 0 and seconds < 5, d.output()[-3000:]
    assert "lease released" in d.output() and "shutdown_timeout" not in d.output()
    fault_proxy.set_rules([])
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(20, timeout=30), d.output()[-3000:]
    assert len(http_receiver.accepted()) == 20
    assert d.stop() == 0


def test_a_drain_cut_by_its_deadline_leaves_nothing_delivered_unmarked(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # One message at a time to a sink answering in 100 ms, marks answered 300 ms late: the
    # drain cannot finish in time, and its last part sends nothing new, so what was
    # delivered is marked, not repeated after a restart.
    produce(ddb.endpoint, table, 300, 10, threads=8)
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET isPublished", action="delay",
                                delay_ms=300)])
    http_receiver.respond(lambda req: time.sleep(0.1) or 200)
    text = relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url))
    cfg = tmp_config(text.replace("shutdown_timeout: 20s", "shutdown_timeout: 6s")
                     .replace("relay:\n", "relay:\n  ordering: shard\n"))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(10, timeout=60), d.output()[-3000:]
    assert d.stop() == 0
    delivered = {r.headers["ce-id"] for r in http_receiver.accepted()}
    published = {i["sk"]["S"] for i in scan_items(ddb, table) if i.get("isPublished", {}).get("BOOL")}
    assert len(delivered) < 300
    assert sorted(delivered - published) == []
