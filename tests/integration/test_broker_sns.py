"""The sns sink on fauxqs (the SNS and SQS emulator): PublishBatch to a topic, read back from
an SQS queue subscribed to it with raw message delivery. A FIFO topic keeps each key's order
and carries MessageGroupId = pk and MessageDeduplicationId = id (SPEC §4); an outage of the
emulator loses and dead-letters nothing; an oversize message is dead-lettered at once
(too_large); a topic that does not exist follows max_attempts; throttling and 5xx are
retried; a failed entry of a batch fails its message alone."""

import base64
import json
import threading
import time

from broker_contract import BrokerRun, check_ce, oversize_payload, structured_received
from relay_util import (dead_letter_config, dlq_sink, free_port, lines_of, metric, metric_samples, relay_config,
                        scan_items, wait_until, with_relay)

SNS_LIMIT = 262144  # a topic's MaximumMessageSize unless raised


def sns_sink(name, topic_arn, endpoint, extra=""):
    return f"  - name: {name}\n    type: sns\n    topic_arn: {topic_arn}\n    endpoint: {endpoint}\n{extra}"


def put_message(ddb, table, pk, sk, payload, headers=None):
    """One unpublished outbox item whose payload is the JSON of payload."""
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "messageType": {"S": "Test.Event"},
            "aggregateType": {"S": "Test"}, "aggregateId": {"S": pk},
            "payload": {"S": base64.b64encode(json.dumps(payload).encode()).decode()},
            "createdAt": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}}
    if headers:
        item["headers"] = {"S": json.dumps(headers)}
    ddb.client().put_item(TableName=table, Item=item)


def item_of(ddb, table, sk):
    return next(i for i in scan_items(ddb, table) if i["sk"]["S"] == sk)


def receive_every(server, queue, ids, timeout=120):
    """Receives from queue until every id of ids came (duplicates too, in the order received)."""
    messages, deadline = [], time.monotonic() + timeout
    missing = set(ids)
    while missing and time.monotonic() < deadline:
        got = server.sqs().receive_all(queue, len(missing), timeout=deadline - time.monotonic())
        messages += got
        missing -= {json.loads(m["Body"])["id"] for m in got}
    return messages


def test_a_publish_carries_headers_as_attributes_and_a_fifo_topic_gets_group_and_dedup_ids(
        fauxqs, sink_publish):
    from harness.fauxqs import sns_topic_into_queue
    topic, queue = sns_topic_into_queue(fauxqs, "attrs", fifo=True)
    payload = base64.b64encode(b'{"n": 1}').decode()
    headers = {"tenant": "acme & co", "bad name": "dropped", "AWS.reserved": "dropped", "empty": ""}
    run = sink_publish({"type": "sns", "topic_arn": topic, "endpoint": fauxqs.endpoint},
                       [{"pk": "key 1", "sk": "id-1", "payload_b64": payload, "headers": headers},
                        {"pk": "key-2", "sk": "id-2", "payload_b64": payload, "error_info": "why it died"}])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run.results
    got = {json.loads(m["Body"])["id"]: m for m in fauxqs.sqs().receive_all(queue, 2, timeout=20)}
    one, two = got["id-1"], got["id-2"]
    assert one["MessageAttributes"] == {"tenant": {"DataType": "String", "StringValue": "acme & co"}}
    # A pk with a space is not a MessageGroupId SNS takes: its SHA-256 stands for it, the same for every
    # message of the key.
    assert one["Attributes"]["MessageGroupId"].startswith("sha256-")
    assert one["Attributes"]["MessageDeduplicationId"] == "id-1"
    assert two["Attributes"]["MessageGroupId"] == "key-2" and "MessageAttributes" not in two
    assert json.loads(two["Body"])["deadletterreason"] == "why it died"


def test_5000_messages_over_50_keys_through_a_fifo_topic_survive_a_30s_outage_in_order(
        ddb, tmp_config, spawn_outboxd, tmp_path):
    # The emulator itself goes away for 30 s and comes back with its topics, subscriptions and
    # queued messages (SQLite persistence): connections refused, kept-alive ones cut, as when
    # SNS is unreachable. A fault proxy would only imitate that.
    from harness.fauxqs import PersistentFauxqs, sns_topic_into_queue
    server = PersistentFauxqs(tmp_path / "fauxqs").start()
    try:
        topic, queue = sns_topic_into_queue(server, "orders", fifo=True)
        port = free_port()
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sns", sns_sink("sns", topic, server.endpoint),
                        default_sink="sns", metrics_port=port)
        producer = threading.Thread(target=run.produce)
        producer.start()
        delivered = lambda: metric(metric_samples(port), "outboxd_messages_delivered_total", sink="sns") or 0
        assert wait_until(lambda: delivered() >= 500, 60), run.daemon.output()[-3000:]
        server.stop()
        at_stop = delivered()
        time.sleep(30)
        assert metric(metric_samples(port), "outboxd_sink_up", sink="sns") == 0
        server.start()
        producer.join()
        print(f"\n{at_stop} delivered when SNS went away for 30 s")
        messages = receive_every(server, queue, [r[0] for r in run.rows])
        received = [structured_received(m["Body"]) for m in messages]
        # The emulator forgets its FIFO deduplication on restart: a batch whose answer the outage
        # cut may come again (at most the in-flight window).
        dup = run.check(received, max_duplicates=64)
        print(f"{len(received)} received, {dup} duplicates")
        for m, r in zip(messages, received):
            assert m["Attributes"]["MessageGroupId"] == r.key
            assert m["Attributes"]["MessageDeduplicationId"] == r.id
        check_ce(received[0].attrs, run.table)
        run.all_published()
        run.no_dead_letters()
        run.stop()
    finally:
        server.stop()


def dead_letter_relay(ddb, table, sinks, dlq, port, max_attempts=2):
    return with_relay(relay_config(ddb.endpoint, table, sinks + dlq_sink(dlq), default_sink="sns",
                                   metrics_port=port), max_attempts=max_attempts, dead_letter_sink="dlq")


def test_an_oversize_message_is_dead_lettered_at_once_as_too_large(
        ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    from harness.fauxqs import sns_topic_into_queue
    topic, queue = sns_topic_into_queue(fauxqs, "big")
    dlq, port = tmp_path / "dlq.jsonl", free_port()
    d = spawn_outboxd("run", "-c", tmp_config(dead_letter_relay(ddb, table, sns_sink("sns", topic, fauxqs.endpoint),
                                                                dlq, port, max_attempts=10)))
    put_message(ddb, table, "key-1", "big-1", json.loads(oversize_payload(SNS_LIMIT)))
    put_message(ddb, table, "key-2", "small-1", {"n": 1})
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30), d.output()[-3000:]
    item = item_of(ddb, table, "big-1")
    assert item["lastError"]["S"].startswith("too_large: "), item
    assert "over the topic's limit of 262144" in item["lastError"]["S"]
    assert int(item["retryCount"]["N"]) == 1
    assert metric(metric_samples(port), "outboxd_messages_dead_lettered_total", reason="too_large") == 1
    assert [json.loads(m["Body"])["id"] for m in fauxqs.sqs().receive_all(queue, 1, timeout=20)] == ["small-1"]
    assert d.stop() == 0


def test_a_topic_that_does_not_exist_is_a_rejection_that_follows_max_attempts(
        ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    missing = "arn:aws:sns:us-east-1:000000000000:nobody-here"
    dlq, port = tmp_path / "dlq.jsonl", free_port()
    d = spawn_outboxd("run", "-c", tmp_config(dead_letter_relay(ddb, table, sns_sink("sns", missing, fauxqs.endpoint),
                                                                dlq, port, max_attempts=3)))
    put_message(ddb, table, "key-1", "m-1", {"n": 1})
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30), d.output()[-3000:]
    item = item_of(ddb, table, "m-1")
    assert int(item["retryCount"]["N"]) == 3
    assert "PublishBatch: NotFound: Topic does not exist" in item["lastError"]["S"], item
    assert lines_of(dlq)[0]["id"] == "m-1"
    assert metric(metric_samples(port), "outboxd_messages_dead_lettered_total", reason="attempts") == 1
    assert metric(metric_samples(port), "outboxd_sink_up", sink="sns") == 1
    assert d.stop() == 0


def test_throttling_and_server_errors_are_retried_and_dead_letter_nothing(
        ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    from harness.fault_proxy import Rule
    from harness.fauxqs import sns_fault_proxy, sns_topic_into_queue
    topic, queue = sns_topic_into_queue(fauxqs, "faults", fifo=True)
    proxy = sns_fault_proxy(fauxqs.endpoint).start()
    try:
        proxy.set_rules([Rule(match_body="Action=PublishBatch", action="error", status=400, error_type="Throttled",
                              times=6),
                         Rule(match_body="Action=PublishBatch", action="status", status=503, times=6)])
        dlq, port = tmp_path / "dlq.jsonl", free_port()
        d = spawn_outboxd("run", "-c", tmp_config(dead_letter_relay(ddb, table, sns_sink("sns", topic, proxy.endpoint),
                                                                    dlq, port, max_attempts=3)))
        for k in range(20):
            put_message(ddb, table, f"key-{k % 5}", f"m-{k:02d}", {"n": k})
        got = [json.loads(m["Body"])["id"] for m in fauxqs.sqs().receive_all(queue, 20, timeout=60)]
        assert sorted(got) == [f"m-{k:02d}" for k in range(20)], d.output()[-3000:]
        assert proxy.count(action="error") == 6 and proxy.count(action="status") == 6
        assert metric(metric_samples(port), "outboxd_throttled_requests_total", operation="PublishBatch") >= 1
        assert "Throttled: injected by FaultProxy" in d.output(), d.output()[-3000:]
        assert wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(ddb, table)), 30)
        assert lines_of(dlq) == []
        assert d.stop() == 0
    finally:
        proxy.stop()


def one_bad_among_nine(ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path, bad_payload, endpoint=None,
                       sink_extra=""):
    """Writes a message "bad" and nine good ones, then starts the relay, so that one publish (one
    PublishBatch) carries the ten: the good ones arrive, untouched by bad's failure, and bad is
    dead-lettered after max_attempts (2). Returns bad's item."""
    from harness.fauxqs import sns_topic_into_queue
    topic, queue = sns_topic_into_queue(fauxqs, f"one-bad-{table}")
    put_message(ddb, table, "key-bad", "bad", bad_payload)
    for k in range(9):
        put_message(ddb, table, f"key-{k}", f"good-{k}", {"n": k})
    dlq, port = tmp_path / "dlq.jsonl", free_port()
    sink = sns_sink("sns", topic, endpoint or fauxqs.endpoint, sink_extra)
    d = spawn_outboxd("run", "-c", tmp_config(dead_letter_relay(ddb, table, sink, dlq, port, max_attempts=2)))
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30), d.output()[-3000:]
    got = sorted(json.loads(m["Body"])["id"] for m in fauxqs.sqs().receive_all(queue, 9, timeout=20))
    assert got == [f"good-{k}" for k in range(9)]
    for i in scan_items(ddb, table):
        if i["sk"]["S"] != "bad":
            assert i["isPublished"]["BOOL"] and "retryCount" not in i and "lastError" not in i, i
    assert d.stop() == 0
    bad = item_of(ddb, table, "bad")
    assert int(bad["retryCount"]["N"]) == 2
    return bad


def test_a_failed_entry_of_a_batch_fails_its_message_alone(ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    # The sink allows 1 MiB (a topic raised so); the emulator's topic keeps SNS's default 256 KiB
    # and fails that entry of the batch (InvalidParameter) while the nine others go through.
    bad = one_bad_among_nine(ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path,
                             json.loads(oversize_payload(SNS_LIMIT)), sink_extra="    max_message_size: 1048576\n")
    assert "PublishBatch entry: InvalidParameter: Message too long" in bad["lastError"]["S"], bad


def test_a_batch_refused_as_a_whole_as_invalid_fails_only_the_message_at_fault(
        ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    # SNS refuses a whole PublishBatch for what one entry holds (an attribute or body it will not
    # take): the sink sends each entry of such a batch again alone, so only that one fails.
    from harness.fault_proxy import Rule
    from harness.fauxqs import sns_fault_proxy
    proxy = sns_fault_proxy(fauxqs.endpoint).start()
    try:
        proxy.set_rules([Rule(match_body="refused-by-sns", action="error", status=400, error_type="InvalidParameter",
                              message="Invalid parameter: Message")])
        bad = one_bad_among_nine(ddb, table, tmp_config, spawn_outboxd, fauxqs, tmp_path, {"x": "refused-by-sns"},
                                 endpoint=proxy.endpoint)
        assert "PublishBatch: InvalidParameter: Invalid parameter: Message" in bad["lastError"]["S"], bad
    finally:
        proxy.stop()


def test_a_refusal_that_quotes_the_signed_request_keeps_the_session_token_out_of_the_error(tmp_path):
    # SNS's SignatureDoesNotMatch quotes the canonical request it expected, whose
    # x-amz-security-token line is the session token: no error may carry it (SPEC §7).
    import http.server
    import subprocess

    import yaml
    from outboxd_config import tool, tool_env
    token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN" + "Zm9vYmFy" * 40

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            quoted = f"POST\n/\n\nhost:{self.headers['Host']}\nx-amz-security-token:" \
                     f"{self.headers['X-Amz-Security-Token']}\n"
            body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The "
                    f"Canonical String for this request should have been\n'{quoted}'</Message></Error>"
                    f"</ErrorResponse>").encode()
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "sink_publish.yaml"
        config.write_text(yaml.safe_dump({
            "aws": {"region": "us-east-1", "access_key_id": "AKIDTEST", "secret_access_key": "testsecret",
                    "session_token": token},
            "table": {"name": "outbox"},
            "sinks": [{"name": "s", "type": "sns", "topic_arn": "arn:aws:sns:us-east-1:000000000000:t",
                       "endpoint": f"http://127.0.0.1:{server.server_address[1]}"}],
            "default_sink": "s"}))
        p = subprocess.run([tool("sink_publish"), str(config), "s"], input=b'{"pk": "k", "sk": "m1"}\n',
                           capture_output=True, timeout=30, env=tool_env())
    finally:
        server.shutdown()
    result = json.loads(p.stdout)
    assert result["result"] == "reject" and "SignatureDoesNotMatch" in result["error"], result
    assert "x-amz-security-token:" in result["error"], result
    assert token[:16] not in result["error"] and token[:16].encode() not in p.stderr, result
