"""SIGHUP (SPEC §7): what a reload applies, and the one warning that names every changed setting it cannot."""

import base64
import copy
import json
import re
import signal

import yaml

from relay_util import free_port, lines_of, wait_until


def base_config(endpoint, table, url):
    """A relay on DynamoDB Local with one http sink, logging JSON."""
    return {
        "aws": {"region": "us-east-1", "endpoint": endpoint, "access_key_id": "AKIDTEST",
                "secret_access_key": "testsecret", "retry_base_delay": "10ms"},
        "table": {"name": table},
        "stream": {"poll_interval": "100ms"},
        "relay": {"max_in_flight": 16, "backoff": {"initial": "50ms", "max": "1s"}, "shutdown_timeout": "20s"},
        "log": {"level": "info", "format": "json"},
        "sinks": [{"name": "hook", "type": "http", "url": url}],
    }


def changed(cfg, **dotted):
    """cfg with the keys given as dotted paths (`relay__backoff__initial` for relay.backoff.initial) set."""
    out = copy.deepcopy(cfg)
    for path, value in dotted.items():
        *sections, leaf = path.split("__")
        node = out
        for s in sections:
            node = node.setdefault(s, {})
        node[leaf] = value
    return out


def dotted(**kw):
    return {k.replace("__", "."): v for k, v in kw.items()}


def write(path, cfg):
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def log_lines(d):
    return [json.loads(x) for x in d.output().splitlines() if x.startswith("{") and '"level"' in x]


def reload_and_wait(d):
    """SIGHUP, then the reload's own log line."""
    before = sum(1 for x in log_lines(d) if x["msg"].startswith("reloaded "))
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: sum(1 for x in log_lines(d) if x["msg"].startswith("reloaded ")) > before, 15), \
        d.output()


def restart_warnings(d):
    return [x for x in log_lines(d) if x["level"] == "warn" and "restart" in x["msg"]]


def put(ddb, table, sk, message_type="Test", payload=None, aggregate_type="Order"):
    payload = base64.b64encode(b'{"x":1}').decode() if payload is None else payload
    ddb.client().put_item(TableName=table, Item={
        "pk": {"S": "k"}, "sk": {"S": sk}, "payload": {"S": payload}, "messageType": {"S": message_type},
        "aggregateType": {"S": aggregate_type}, "createdAt": {"S": "2026-11-25T10:00:00.000Z"}})


# Settings read once at start (by the coordinator, the shard workers, the
# sweeper, the DynamoDB client, the write budget, the metrics server), each
# changed to a value that still works; shutdown_timeout is written
# differently but means the same, so it has not changed.
RESTART_ONLY_CHANGES = dict(
    aws__region="us-west-2",
    aws__request_timeout="12s",
    table__ttl_seconds=3600,
    stream__poll_interval="200ms",
    leases__duration="15s",
    relay__max_in_flight=32,
    relay__max_attempts=12,
    relay__backoff__initial="60ms",
    relay__backoff__max="2s",
    relay__on_failure="block",
    capacity__max_write_units_per_second=1000,
    capacity__sweep_read_units_per_second=40,
    sweep__interval="20m",
    sweep__older_than="6m",
)


def test_sighup_warns_once_naming_exactly_the_changed_keys_that_need_a_restart(ddb, table, tmp_config,
                                                                              spawn_outboxd, http_receiver, tmp_path):
    first = base_config(ddb.endpoint, table, http_receiver.url + "/v1")
    cfg = tmp_config(yaml.safe_dump(first, sort_keys=False))
    d = spawn_outboxd("run", "-c", cfg)
    assert d.wait_for_output("reading the stream", timeout=30), d.output()
    second = changed(first, **RESTART_ONLY_CHANGES, metrics__listen=f"127.0.0.1:{free_port()}",
                     relay__shutdown_timeout="20000ms", relay__dead_letter_sink="dlq",
                     cloudevents__source="/custom", log__level="debug", default_sink="hook",
                     routes=[{"match": {"messageType": "Order*"}, "sink": "hook"}])
    second["sinks"] = [{"name": "hook", "type": "http", "url": http_receiver.url + "/v2"},
                       {"name": "dlq", "type": "file", "path": str(tmp_path / "dlq.jsonl")}]
    write(cfg, second)
    reload_and_wait(d)

    warnings = restart_warnings(d)
    assert len(warnings) == 1, warnings
    named = re.search(r"take effect only on restart: ([^;]+);", warnings[0]["msg"])
    assert named, warnings[0]["msg"]
    assert sorted(named.group(1).split(", ")) == sorted([*dotted(**RESTART_ONLY_CHANGES), "metrics.listen"])
    applied = re.search(r"\(([^)]+)\) were applied", warnings[0]["msg"])
    assert applied, warnings[0]["msg"]
    assert {"sinks", "routes", "default_sink", "relay.dead_letter_sink", "cloudevents.source",
            "log.level", "log.format"} <= set(applied.group(1).split(", "))

    # The running settings stay what the warning compares a new file with.
    d.send_signal(signal.SIGHUP)
    assert wait_until(lambda: len(restart_warnings(d)) == 2, 15), d.output()
    assert restart_warnings(d)[1]["msg"] == warnings[0]["msg"]
    assert d.stop() == 0


def test_sighup_applies_sinks_routes_cloudevents_dead_letter_sink_and_log_level_without_a_restart_warning(
        ddb, table, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    first = base_config(ddb.endpoint, table, http_receiver.url + "/v1")
    cfg = tmp_config(yaml.safe_dump(first, sort_keys=False))
    d = spawn_outboxd("run", "-c", cfg)
    put(ddb, table, "before")
    assert http_receiver.wait_for(1, timeout=30), d.output()

    dlq = tmp_path / "dlq.jsonl"
    second = changed(first, relay__dead_letter_sink="dlq", cloudevents__source="/custom/{aggregateType}",
                     log__level="debug", default_sink="hook",
                     routes=[{"match": {"messageType": "Special*"}, "sink": "special"}])
    second["sinks"] = [{"name": "hook", "type": "http", "url": http_receiver.url + "/v2"},
                       {"name": "special", "type": "http", "url": http_receiver.url + "/special"},
                       {"name": "dlq", "type": "file", "path": str(dlq)}]
    write(cfg, second)
    reload_and_wait(d)
    assert restart_warnings(d) == []

    # Rejected twice: its second failure is logged at debug only.
    rejected = []

    def respond(req):
        if req.headers["ce-id"] == "retried" and len(rejected) < 2:
            rejected.append(req)
            return 400
        return 200
    http_receiver.respond(respond)
    put(ddb, table, "retried")
    put(ddb, table, "special", message_type="SpecialOffer")
    put(ddb, table, "poison", payload="not base64!")
    assert http_receiver.wait_for(3, timeout=30), d.output()
    assert wait_until(lambda: [x["id"] for x in lines_of(dlq)] == ["poison"], 30), d.output()

    accepted = {r.headers["ce-id"]: r for r in http_receiver.accepted()}
    assert accepted["before"].path == "/v1"
    assert accepted["retried"].path == "/v2"
    assert accepted["special"].path == "/special"
    assert accepted["retried"].headers["ce-source"] == "/custom/Order"
    assert any(x["level"] == "debug" and "attempt 2" in x["msg"] for x in log_lines(d)), d.output()
    assert d.stop() == 0
