"""`outboxd run` on DynamoDB Local: what is relayed, where it goes, how it stops and restarts."""

import base64
import json
import signal
import time

from relay_util import (check_strict_order, duplicates, free_port, http_messages,
                        http_sink, metric, metric_samples, probe, produce, relay_config, scan_items, stop_measured,
                        wait_until)

def put(ddb, table, pk, sk, published=False, payload=b'{"x":1}', **attrs):
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "payload": {"S": base64.b64encode(payload).decode()},
            "isPublished": {"BOOL": published}, "messageType": {"S": attrs.pop("type", "Test")},
            "createdAt": {"S": "2026-11-25T10:00:00.000Z"}}
    for k, v in attrs.items():
        item[k] = {"S": v}
    ddb.client().put_item(TableName=table, Item=item)


def get_item(ddb, table, pk, sk):
    return ddb.client().get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                 ConsistentRead=True).get("Item")


def test_inserts_are_delivered_once_and_marked_published_with_ttl(ddb, table, tmp_config, spawn_outboxd,
                                                                   http_receiver):
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url + "/hook"),
                                  ttl_seconds=3600))
    d = spawn_outboxd("run", "-c", cfg)
    rows = produce(ddb.endpoint, table, 60, 6, ids=True)
    assert http_receiver.wait_for(60, timeout=30), d.output()
    msgs = http_messages(http_receiver)
    assert sorted(m[2] for m in msgs) == sorted(r[0] for r in rows)
    assert duplicates(msgs) == 0
    assert check_strict_order(msgs) == {}
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 15)
    now = time.time()
    for item in scan_items(ddb, table):
        assert abs(int(item["ttl"]["N"]) - (now + 3600)) < 15
        assert item["publishedAt"]["S"].endswith("Z")
        assert "lastError" not in item
    assert d.stop() == 0


def test_http_delivery_carries_the_cloudevents_binary_headers(ddb, table, tmp_config, spawn_outboxd,
                                                              http_receiver):
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    put(ddb, table, "order-9", "msg-1", type="OrderPlaced", aggregateId="9", aggregateType="Order",
        correlationId="corr", causationId="cause", headers='{"content-type":"application/json","tenant":"acme"}')
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(1, timeout=20), d.output()
    r = http_receiver.accepted()[0]
    h = r.headers
    assert r.method == "POST"
    assert (h["ce-specversion"], h["ce-id"], h["ce-type"], h["ce-source"]) == ("1.0", "msg-1", "OrderPlaced",
                                                                               f"/{table}/Order")
    assert (h["ce-subject"], h["ce-time"], h["ce-partitionkey"]) == ("9", "2026-11-25T10:00:00.000Z", "order-9")
    assert (h["ce-correlationid"], h["ce-causationid"]) == ("corr", "cause")
    assert h["content-type"] == "application/json"
    assert h["tenant"] == "acme"
    assert h["idempotency-key"] == "msg-1"
    assert r.body == b'{"x":1}'
    assert d.stop() == 0


def test_modify_remove_and_published_inserts_are_never_delivered(ddb, table, tmp_config, spawn_outboxd,
                                                                 http_receiver):
    put(ddb, table, "k", "published-at-insert", published=True)
    put(ddb, table, "k", "modified-later")
    put(ddb, table, "k", "deleted-later")
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(2, timeout=20), d.output()
    c = ddb.client()
    # MODIFY of an unpublished item and REMOVE records follow in the stream.
    c.update_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": "modified-later"}},
                  UpdateExpression="SET tenant = :t", ExpressionAttributeValues={":t": {"S": "x"}})
    c.delete_item(TableName=table, Key={"pk": {"S": "k"}, "sk": {"S": "deleted-later"}})
    put(ddb, table, "k", "last")
    assert http_receiver.wait_for(3, timeout=20), d.output()
    time.sleep(1)
    ids = [r.headers["ce-id"] for r in http_receiver.accepted()]
    assert ids == ["modified-later", "deleted-later", "last"]
    assert d.stop() == 0


def test_cold_start_from_trim_horizon_skips_items_already_published(ddb, table, tmp_config, spawn_outboxd,
                                                                    http_receiver):
    produce(ddb.endpoint, table, 2000, 20, threads=16)
    c = ddb.client()
    items = scan_items(ddb, table)
    published = set()
    for item in items[:1000]:
        c.update_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                      UpdateExpression="SET isPublished = :t", ExpressionAttributeValues={":t": {"BOOL": True}})
        published.add(item["sk"]["S"])
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), max_in_flight=64))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(1000, timeout=90), d.output()
    time.sleep(2)
    got = [r.headers["ce-id"] for r in http_receiver.accepted()]
    assert len(got) == 1000
    assert not published & set(got)
    assert d.stop() == 0


# What a crash can leave when a key's marks land out of order: k's 2 unpublished and 3
# published; j's 1 and 2 unpublished; d's 0 dead-lettered (deadLetteredAt, not published).
CRASH_STATE = {"k": ["pub", "pub", "new", "pub"], "j": ["pub", "new", "new"], "d": ["dead", "new"]}


def write_states(ddb, table, states):
    c = ddb.client()
    for n in range(max(len(v) for v in states.values())):
        for key, st in states.items():
            if n >= len(st):
                continue
            sk = f"{key}-{n}"
            put(ddb, table, key, sk, payload=json.dumps({"key": key, "n": n}).encode())
            if st[n] == "pub":
                c.update_item(TableName=table, Key={"pk": {"S": key}, "sk": {"S": sk}},
                              UpdateExpression="SET isPublished = :t", ExpressionAttributeValues={":t": {"BOOL": True}})
            elif st[n] == "dead":
                c.update_item(TableName=table, Key={"pk": {"S": key}, "sk": {"S": sk}},
                              UpdateExpression="SET deadLetteredAt = :t REMOVE isPublished",
                              ExpressionAttributeValues={":t": {"S": "2026-11-25T10:00:01.000Z"}})


def per_key(receiver, skip=()):
    got = {}
    for key, n, _ in http_messages(receiver):
        if key not in skip:
            got.setdefault(key, []).append(n)
    return got


def test_resumed_from_a_checkpoint_a_key_comes_again_from_its_first_unpublished_message(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    # Sending k's 2 alone would leave a consumer that keeps the latest state on 2: the key
    # comes again from 2, in order. Dead-lettered items are done.
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    put(ddb, table, "x", "x-0", payload=json.dumps({"key": "x", "n": 0}).encode())
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(1, timeout=30), d.output()
    assert d.stop() == 0  # the checkpoint is written
    write_states(ddb, table, CRASH_STATE)
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(6, timeout=30), d.output()
    time.sleep(2)
    assert per_key(http_receiver, skip=("x",)) == {"k": [2, 3], "j": [1, 2], "d": [1]}
    assert d.stop() == 0


def test_on_a_cold_start_published_and_dead_lettered_items_are_skipped(ddb, table, tmp_config, spawn_outboxd,
                                                                       http_receiver):
    # No checkpoint: whatever the table says is published is not sent again (SPEC 3).
    write_states(ddb, table, CRASH_STATE)
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(4, timeout=30), d.output()
    time.sleep(2)
    assert per_key(http_receiver) == {"k": [2], "j": [1, 2], "d": [1]}
    assert d.stop() == 0


def test_on_a_cold_start_keys_that_json_escapes_are_matched_to_their_items(ddb, table, tmp_config, spawn_outboxd,
                                                                          http_receiver):
    # The lookup's answer writes these keys with escapes; each must still find its item.
    key = 'q"\\\u00e9\t'
    write_states(ddb, table, {key: ["pub", "new", "pub", "new"], "plain": ["new", "pub"]})
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(3, timeout=30), d.output()
    time.sleep(2)
    assert per_key(http_receiver) == {key: [1, 3], "plain": [0]}
    assert d.stop() == 0


def test_sigterm_then_restart_delivers_nothing_twice(ddb, table, tmp_config, spawn_outboxd, http_receiver):
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 300, 10)
    assert wait_until(lambda: len(http_receiver.accepted()) >= 100, 30), d.output()
    assert d.stop(signal.SIGTERM) == 0
    d2 = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(300, timeout=60), d2.output()
    time.sleep(1.5)
    msgs = http_messages(http_receiver)
    assert duplicates(msgs) == 0
    assert len(msgs) == 300
    assert check_strict_order(msgs) == {}
    assert d2.stop() == 0


def test_a_receiver_failing_for_ten_seconds_delays_but_loses_nothing(ddb, table, tmp_config, spawn_outboxd,
                                                                     http_receiver):
    failing_until = time.monotonic() + 10
    http_receiver.respond(lambda req: 500 if time.monotonic() < failing_until else 200)
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 100, 5)
    assert http_receiver.wait_for(100, timeout=60), d.output()
    assert min(r.time for r in http_receiver.accepted()) >= failing_until
    msgs = http_messages(http_receiver)
    assert check_strict_order(msgs) == {}
    assert len(http_receiver.requests) > 100
    assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 15)
    assert d.stop() == 0


def test_routes_send_each_message_to_its_sink_and_destination(ddb, table, tmp_config, spawn_outboxd,
                                                              http_receiver, tmp_path):
    out = tmp_path / "events.jsonl"
    sinks = (http_sink("orders", http_receiver.url + "/base/")
             + http_sink("customers", http_receiver.url + "/customers")
             + f"  - name: archive\n    type: file\n    path: {out}\n")
    routes = """\
routes:
  - match: { messageType: "Order*" }
    sink: orders
    destination: "orders/{messageType}/{aggregateId}"
  - match: { aggregateType: "Customer" }
    sink: customers
"""
    cfg = tmp_config(relay_config(ddb.endpoint, table, sinks, extra=routes, default_sink="archive"))
    put(ddb, table, "o1", "m1", type="OrderPlaced", aggregateId="o1", aggregateType="Order")
    put(ddb, table, "c1", "m2", type="CustomerRegistered", aggregateId="c1", aggregateType="Customer")
    put(ddb, table, "s1", "m3", type="ShipmentSent", aggregateId="s1", aggregateType="Shipment")
    put(ddb, table, "o2", "m4", type="OrderPaid", aggregateId="o2", aggregateType="Customer")
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(3, timeout=20), d.output()
    assert wait_until(lambda: out.exists() and out.read_text().count("\n") >= 1, 10)
    paths = sorted((r.headers["ce-id"], r.path) for r in http_receiver.accepted())
    assert paths == [("m1", "/base/orders/OrderPlaced/o1"), ("m2", "/customers"),
                     ("m4", "/base/orders/OrderPaid/o2")]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["id"], x["type"], x["data"]) for x in lines] == [("m3", "ShipmentSent", {"x": 1})]
    assert d.stop() == 0


def test_metrics_parse_as_prometheus_text_and_count_what_happened(ddb, table, tmp_config, spawn_outboxd,
                                                                  http_receiver):
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port))
    put(ddb, table, "k", "done-before", published=True)
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 40, 4)
    assert http_receiver.wait_for(40, timeout=30), d.output()
    assert wait_until(lambda: metric(metric_samples(port), "outboxd_delivery_latency_seconds_count",
                                     sink="hook") >= 40, 10)
    s = metric_samples(port)
    assert metric(s, "outboxd_messages_delivered_total", sink="hook") == 40
    assert metric(s, "outboxd_messages_failed_total", sink="hook") == 0
    assert metric(s, "outboxd_messages_duplicate_total") == 0
    assert metric(s, "outboxd_stream_records_read_total") >= 41
    assert metric(s, "outboxd_shards_owned") == 1
    assert metric(s, "outboxd_sink_up", sink="hook") == 1
    assert metric(s, "outboxd_delivery_latency_seconds_count", sink="hook") == 40
    assert metric(s, "outboxd_consumed_capacity_units_total", table=table, operation="UpdateItem",
                  kind="write") >= 40
    assert any(name == "outboxd_stream_lag_seconds" for name, _ in s)
    assert d.stop() == 0


def test_healthz_and_readyz(ddb, table, tmp_config, spawn_outboxd, http_receiver):
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    assert wait_until(lambda: probe(port, "/readyz")[0] == 200, 20), d.output()
    assert probe(port, "/healthz") == (200, "ok\n")
    put(ddb, table, "k", "m1")
    assert http_receiver.wait_for(1, timeout=20), d.output()
    assert probe(port, "/readyz") == (200, "ready\n")   # a sink outage does not change it: test_health.py
    assert d.stop() == 0


def test_sighup_reloads_routes_and_keeps_the_old_config_when_the_new_one_is_bad(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    first = relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url + "/v1"))
    cfg = tmp_config(first)
    d = spawn_outboxd("run", "-c", cfg)
    put(ddb, table, "k", "m1")
    assert http_receiver.wait_for(1, timeout=20), d.output()
    cfg.write_text(first.replace("/v1", "/v2"))
    d.send_signal(signal.SIGHUP)
    assert d.wait_for_output("reloaded", timeout=10), d.output()
    put(ddb, table, "k", "m2")
    assert http_receiver.wait_for(2, timeout=20), d.output()
    cfg.write_text(first.replace("/v1", "/v3").replace("type: http", "type: htp"))
    d.send_signal(signal.SIGHUP)
    assert d.wait_for_output("keeping the running configuration", timeout=10), d.output()
    put(ddb, table, "k", "m3")
    assert http_receiver.wait_for(3, timeout=20), d.output()
    assert [r.path for r in http_receiver.accepted()] == ["/v1", "/v2", "/v2"]
    assert d.stop() == 0


def test_json_logs_carry_level_and_shard(ddb, table, tmp_config, spawn_outboxd, http_receiver):
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), log_format="json"))
    d = spawn_outboxd("run", "-c", cfg)
    assert d.wait_for_output("reading from", timeout=20), d.output()
    assert d.stop() == 0
    lines = [json.loads(x) for x in d.output().splitlines() if x.strip()]
    assert all("level" in x and "msg" in x for x in lines)
    assert any(x.get("shard", "").startswith("shardId-") for x in lines)


def test_a_missing_table_is_a_clear_startup_error(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(relay_config(ddb.endpoint, "no-such-table", "  - name: out\n    type: stdout\n"))
    r = run_outboxd("run", "-c", cfg, timeout=30)
    assert r.returncode == 78, r.stderr
    assert "table no-such-table does not exist" in r.stderr


def test_stdout_sink_prints_one_structured_cloudevent_per_line(ddb, table, tmp_config, spawn_outboxd):
    cfg = tmp_config(relay_config(ddb.endpoint, table, "  - name: out\n    type: stdout\n"))
    put(ddb, table, "k", "m1", payload=b"\x00\x01binary", headers='{"content-type":"application/octet-stream"}')
    put(ddb, table, "k", "m2")
    d = spawn_outboxd("run", "-c", cfg)

    def events():
        return [json.loads(x) for x in d.output().splitlines() if x.startswith("{")]
    assert wait_until(lambda: len(events()) == 2, 20), d.output()
    first, second = events()
    assert first["specversion"] == "1.0" and first["id"] == "m1"
    assert base64.b64decode(first["data_base64"]) == b"\x00\x01binary" and "data" not in first
    assert second["data"] == {"x": 1} and second["datacontenttype"] == "application/json"
    assert d.stop() == 0


def test_file_sink_reopens_its_file_on_sighup_for_log_rotation(ddb, table, tmp_config, spawn_outboxd, tmp_path):
    out = tmp_path / "events.jsonl"
    cfg = tmp_config(relay_config(ddb.endpoint, table, f"  - name: f\n    type: file\n    path: {out}\n"
                                                       "    fsync: always\n"))
    d = spawn_outboxd("run", "-c", cfg)
    put(ddb, table, "k", "m1")
    assert wait_until(lambda: out.exists() and "m1" in out.read_text(), 20), d.output()
    rotated = tmp_path / "events.jsonl.1"
    out.rename(rotated)
    d.send_signal(signal.SIGHUP)
    assert d.wait_for_output("reloaded", timeout=10), d.output()
    put(ddb, table, "k", "m2")
    assert wait_until(lambda: out.exists() and "m2" in out.read_text(), 20), d.output()
    assert [json.loads(x)["id"] for x in rotated.read_text().splitlines()] == ["m1"]
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["m2"]
    assert d.stop() == 0


def test_a_poison_item_is_dead_lettered_with_its_reason_and_the_rest_flows(ddb, table, tmp_config,
                                                                           spawn_outboxd, http_receiver):
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url)))
    ddb.client().put_item(TableName=table, Item={"pk": {"S": "k"}, "sk": {"S": "bad"},
                                                 "payload": {"S": "not base64!"}})
    put(ddb, table, "k", "good")
    d = spawn_outboxd("run", "-c", cfg)
    assert http_receiver.wait_for(1, timeout=20), d.output()
    assert wait_until(lambda: "deadLetteredAt" in get_item(ddb, table, "k", "bad"), 10), d.output()
    bad = get_item(ddb, table, "k", "bad")
    assert "base64" in bad["lastError"]["S"]
    assert "isPublished" not in bad and "ttl" not in bad
    assert [r.headers["ce-id"] for r in http_receiver.accepted()] == ["good"]
    assert d.running()
    assert d.stop() == 0


def test_systemd_hears_ready_status_and_stopping(ddb, table, tmp_config, spawn_outboxd, tmp_path):
    import socket
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    cfg = tmp_config(relay_config(ddb.endpoint, table, "  - name: out\n    type: stdout\n"))
    d = spawn_outboxd("run", "-c", cfg, env={"NOTIFY_SOCKET": path})
    got = []
    while not any("READY=1" in m for m in got):
        got.append(sock.recv(4096).decode())
    d.send_signal(signal.SIGTERM)
    while not any("STOPPING=1" in m for m in got):
        got.append(sock.recv(4096).decode())
    assert d.wait(timeout=30) == 0
    sock.close()
    d.stop()


def test_a_drain_waiting_on_a_failing_sinks_backoff_waits_idle(ddb, table, tmp_config, spawn_outboxd,
                                                              http_receiver):
    # SIGTERM while the sink answers 503: the messages left wait out their backoff until
    # the drain deadline, without spinning.
    text = relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url))
    cfg = tmp_config(text.replace("shutdown_timeout: 20s", "shutdown_timeout: 8s").replace("max: 1s", "max: 5s"))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 20, 5, threads=2)
    assert http_receiver.wait_for(20, timeout=60), d.output()[-3000:]
    http_receiver.respond(lambda req: 503)
    produce(ddb.endpoint, table, 10, 5, threads=2)
    assert wait_until(lambda: len(http_receiver.requests) >= 35, 30), d.output()[-3000:]
    rc, seconds, cpu = stop_measured(d)
    assert rc == 0, d.output()[-3000:]
    assert cpu < 1.0, f"{cpu:.2f} s of CPU in a stop of {seconds:.1f} s"


def test_sigterm_with_a_hanging_sink_exits_within_shutdown_timeout(ddb, table, tmp_config, spawn_outboxd,
                                                                   http_receiver):
    http_receiver.respond(lambda req: time.sleep(30) or 200)
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url, "    timeout: 60s\n"))
                     .replace("shutdown_timeout: 20s", "shutdown_timeout: 3s"))
    d = spawn_outboxd("run", "-c", cfg)
    put(ddb, table, "k", "m1")
    assert wait_until(lambda: len(http_receiver.requests) == 1, 20), d.output()
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    assert d.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 5
    assert "shutdown_timeout" in d.output()
    d.stop()
