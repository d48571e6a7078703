"""The sweeper: unpublished items the stream no longer has are found and delivered."""

import base64
import resource
import time

from harness.fault_proxy import Rule
from relay_util import (check_strict_order, free_port, http_messages, http_sink, metric,
                        metric_samples, produce, relay_config, scan_items, stop_measured, wait_until)

OLD = "2026-01-01T00:00:00.000Z"


def put(ddb, table, pk, sk, created=OLD, **extra):
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "createdAt": {"S": created}, "messageType": {"S": "T"},
            "payload": {"S": base64.b64encode(f'{{"sk":"{sk}"}}'.encode()).decode()}}
    item.update(extra)
    ddb.client().put_item(TableName=table, Item=item)


def seed(ddb, table):
    """Old unpublished items of two keys, plus ones the sweep must leave alone."""
    for k in ("a", "b"):
        for i in range(5):
            put(ddb, table, k, f"{k}{i}", created=f"2026-01-01T00:00:0{i}.000Z")
    put(ddb, table, "c", "published", isPublished={"BOOL": True})
    put(ddb, table, "c", "dead", deadLetteredAt={"S": OLD})
    put(ddb, table, "c", "recent", created=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))


def sweeping_relay(tmp_config, endpoint, table, receiver, extra="", shutdown_timeout="20s"):
    """Config of a relay that reads only new stream records and sweeps a second after its start."""
    text = relay_config(endpoint, table, http_sink("hook", receiver.url),
                        extra="stream:\n  start_position: latest\n"
                              "sweep:\n  interval: 1h\n  older_than: 1s\n" + extra)
    return tmp_config(text.replace("stream:\n  poll_interval: 100ms\n", "")
                      .replace("shutdown_timeout: 20s", f"shutdown_timeout: {shutdown_timeout}"))


def test_a_dry_run_lists_old_unpublished_items_and_delivers_nothing(ddb, table, tmp_config, run_outboxd,
                                                                    http_receiver):
    seed(ddb, table)
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    r = run_outboxd("sweep", "-c", cfg, "--dry-run", "--older-than", "1m")
    assert r.returncode == 0, r.stderr
    listed = sorted(line.split("\t")[0] for line in r.stdout.splitlines() if "\t" in line)
    assert listed == sorted(f"{k}{i}" for k in "ab" for i in range(5))
    assert "10 unpublished items" in r.stdout
    assert http_receiver.requests == []
    assert not any(i.get("isPublished", {}).get("BOOL") for i in scan_items(ddb, table) if i["pk"]["S"] != "c")


def test_sweep_delivers_in_key_order_through_the_routes_and_marks_published(ddb, table, tmp_config, run_outboxd,
                                                                           http_receiver):
    seed(ddb, table)
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1m")
    assert r.returncode == 0, r.stderr
    assert "10 unpublished items found and delivered" in r.stdout
    got = [req.headers["ce-id"] for req in http_receiver.accepted()]
    assert sorted(got) == sorted(f"{k}{i}" for k in "ab" for i in range(5))
    for k in "ab":
        assert [x for x in got if x[0] == k] == [f"{k}{i}" for i in range(5)]
    items = {i["sk"]["S"]: i for i in scan_items(ddb, table)}
    assert all(items[f"{k}{i}"]["isPublished"]["BOOL"] for k in "ab" for i in range(5))
    assert "isPublished" not in items["recent"] and "isPublished" not in items["dead"]


def test_the_daemon_sweeps_what_a_latest_start_missed_within_the_read_budget(ddb, table, tmp_config,
                                                                              spawn_outboxd, http_receiver):
    produce(ddb.endpoint, table, 600, 20, threads=16, payload_bytes=1000)
    time.sleep(1.5)
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port,
                                  extra="stream:\n  start_position: latest\n"
                                        "sweep:\n  interval: 1m\n  older_than: 1s\n"
                                        "capacity:\n  sweep_read_units_per_second: 10\n")
                     .replace("stream:\n  poll_interval: 100ms\n", ""))
    t0 = time.monotonic()
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(600, timeout=120), d.output()
    elapsed = time.monotonic() - t0
    units = metric(metric_samples(port), "outboxd_consumed_capacity_units_total", table=table, operation="Scan",
                   kind="read")
    print(f"\nswept 600 items with {units:.1f} read units in {elapsed:.1f} s "
          f"({units / elapsed:.1f}/s, budget 10/s)")
    assert units > 0
    assert units <= 10 * elapsed + 10          # the budget, plus one second of burst
    msgs = http_messages(http_receiver)
    assert len(msgs) == 600 and check_strict_order(msgs) == {}
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 20)
    assert "swept" in d.output()
    assert d.stop() == 0


def test_a_sigterm_during_a_sweep_marks_what_it_delivered_and_a_restart_sends_the_rest_once(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # Marks are answered 2 s late when SIGTERM comes: the sweep sends nothing new, waits for
    # the marks of what the sink has, and leaves the next sweep due at once.
    for i in range(30):
        put(ddb, table, f"k{i % 5}", f"m{i:03d}")
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET isPublished", action="delay",
                                delay_ms=2000)])
    cfg = sweeping_relay(tmp_config, fault_proxy.endpoint, table, http_receiver)
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(5, timeout=60), d.output()
    assert d.stop() == 0
    delivered = {r.headers["ce-id"] for r in http_receiver.accepted()}
    items = {i["sk"]["S"]: i for i in scan_items(ddb, table)}
    assert 0 < len(delivered) < 30
    assert [s for s in sorted(delivered) if not items[s].get("isPublished", {}).get("BOOL")] == []
    assert "sweep stopped early" in d.output()
    fault_proxy.set_rules([])
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(30, timeout=60), d.output()
    time.sleep(1)
    ids = [r.headers["ce-id"] for r in http_receiver.accepted()]
    assert sorted(ids) == [f"m{i:03d}" for i in range(30)]
    assert d.stop() == 0


def test_a_stop_during_a_sweep_waiting_on_the_write_budget_ends_by_the_drain_deadline(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # 16 items delivered in one wave; their marks fail once and wait on a budget of one
    # write unit a second when SIGTERM comes: the wait ends at the drain deadline, and the
    # sweep ends as stopped early instead of the process being cut at shutdown_timeout.
    for i in range(16):
        put(ddb, table, f"k{i}", f"m{i:03d}")
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET isPublished", action="error",
                                times=16)])
    cfg = sweeping_relay(tmp_config, fault_proxy.endpoint, table, http_receiver,
                         extra="capacity:\n  max_write_units_per_second: 1\n", shutdown_timeout="6s")
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(16, timeout=60), d.output()
    time.sleep(0.5)
    rc, seconds, _ = stop_measured(d)
    assert rc == 0 and seconds < 6, d.output()[-3000:]
    assert "shutdown_timeout" not in d.output() and "sweep stopped early" in d.output()


def children_cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def test_a_sweep_whose_look_up_waits_out_unprocessed_keys_sleeps_while_its_marks_are_answered(
        ddb, table, fault_proxy, tmp_config, run_outboxd, http_receiver):
    # 200 old items read in rounds of 100 (25 a segment page at 50 read units/s); with a
    # batch of 50 the first round's last marks are still out when the second round looks its
    # items up. That look-up gets every key back unprocessed 7 times (6.35 s of backoff): the
    # marks answered meanwhile must not make it wait without sleeping.
    for i in range(200):
        put(ddb, table, f"k{i % 20}", f"m{i:03d}")
    fault_proxy.set_rules([Rule(match_target="BatchGetItem", action="pass", times=1),
                           Rule(match_target="BatchGetItem", action="unprocessed", times=7)])
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url))
                     .replace("stream:\n", "stream:\n  batch_size: 50\n"))
    before = children_cpu_seconds()
    r = run_outboxd("sweep", "-c", cfg, "--older-than", "1m", timeout=120)
    cpu = children_cpu_seconds() - before
    assert r.returncode == 0, r.stderr[-3000:]
    assert "200 unpublished items found and delivered" in r.stdout, r.stdout
    assert fault_proxy.rules[1].applied == 7
    assert cpu < 2.0, f"{cpu:.2f} s of CPU for a sweep that waited 6 s"
