"""The sns sink on fauxqs (the SNS and SQS emulator): PublishBatch to a topic, read back from
an SQS queue subscribed to it with raw message delivery. A FIFO topic keeps each key's order
and carries MessageGroupId = pk and MessageDeduplicationId = id (SPEC §4); an outage of the
emulator loses and dead-letters nothing; an oversize message is dead-lettered at once
(too_large); a topic that does not exist follows max_attempts; throttling and 5xx are
retried; a failed entry of a batch fails its message alone."""

import http.server
import json
import subprocess
import threading

import yaml

from broker_contract import (BrokerRun, ce_id, check_ce, check_queue_binding, message, oversize_payload,
                             receive_every, structured_received)
from harness.fault_proxy import Rule
from harness.fauxqs import persistent_fauxqs, sns_fault_proxy, sns_topic_into_queue
from outboxd_config import tool, tool_env
from relay_util import scan_items, sink_yaml

SNS_LIMIT = 262144  # a topic's MaximumMessageSize unless raised


def sns_sink(topic_arn, endpoint, **keys):
    """The sns sink's keys: sink_publish's options, sink_yaml's for the relay."""
    return {"type": "sns", "topic_arn": topic_arn, "endpoint": endpoint, **keys}


def sns_run(ddb, tmp_config, spawn_outboxd, table, sink, tmp_path, max_attempts, **kw):
    """A BrokerRun of the sns sink `sink` (its keys), dead letters to the file sink dlq."""
    return BrokerRun(ddb, tmp_config, spawn_outboxd, table, sink_yaml("sns", sink), default_sink="sns",
                     dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": max_attempts}, **kw)


def test_a_publish_carries_headers_as_attributes_and_a_fifo_topic_gets_group_and_dedup_ids(
        fauxqs, sink_publish):
    topic, queue = sns_topic_into_queue(fauxqs, "attrs", fifo=True)
    headers = {"tenant": "acme & co", "bad name": "dropped", "AWS.reserved": "dropped", "empty": ""}
    run = sink_publish(sns_sink(topic, fauxqs.endpoint),
                       [message("id-1", pk="key 1", headers=headers),
                        message("id-2", pk="key-2", error_info="why it died")])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run.results
    got = {ce_id(m["Body"]): m for m in fauxqs.sqs().receive_all(queue, 2, timeout=20)}
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
    with persistent_fauxqs(tmp_path) as server:
        topic, queue = sns_topic_into_queue(server, "orders", fifo=True)
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sns",
                        sink_yaml("sns", sns_sink(topic, server.endpoint)), default_sink="sns")
        run.through_an_outage(server)
        messages = receive_every(server.sqs(), queue, run.ids())
        received = [structured_received(m["Body"]) for m in messages]
        # The emulator forgets its FIFO deduplication on restart: a batch whose answer the outage
        # cut may come again (at most the in-flight window).
        dup = run.check(received, max_duplicates=64)
        check_queue_binding(messages, received)
        for r in received:
            check_ce(r.attrs, run.table)
        print(f"sns fifo: {run.count} messages through a 30 s outage, {dup} repeated")
        run.stop()


def test_an_oversize_message_is_dead_lettered_at_once_as_too_large_and_its_key_goes_on(
        ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    topic, queue = sns_topic_into_queue(fauxqs, "big")
    run = sns_run(ddb, tmp_config, spawn_outboxd, "outbox_sns_big", sns_sink(topic, fauxqs.endpoint), tmp_path,
                  max_attempts=10)
    run.put("key-1", "big", oversize_payload(SNS_LIMIT))
    run.put("key-1", "small", {"n": 2})
    got = fauxqs.sqs().receive_all(queue, 1, timeout=30)
    assert [ce_id(m["Body"]) for m in got] == ["small"], run.daemon.output()[-3000:]
    run.check_too_large("big", "over the topic's limit of 262144")
    run.stop()


def test_a_topic_that_does_not_exist_is_a_rejection_that_follows_max_attempts(
        ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    missing = "arn:aws:sns:us-east-1:000000000000:nobody-here"
    run = sns_run(ddb, tmp_config, spawn_outboxd, "outbox_sns_missing", sns_sink(missing, fauxqs.endpoint), tmp_path,
                  max_attempts=3)
    run.put("key-1", "m-1", {"n": 1})
    run.check_rejected(["m-1"], 3, "PublishBatch: NotFound: Topic does not exist")
    run.stop()


def test_throttling_and_server_errors_are_retried_and_dead_letter_nothing(
        ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    topic, queue = sns_topic_into_queue(fauxqs, "faults", fifo=True)
    rules = [Rule(match_body="Action=PublishBatch", action="error", status=400, error_type="Throttled", times=6),
             Rule(match_body="Action=PublishBatch", action="status", status=503, times=6)]
    with sns_fault_proxy(fauxqs.endpoint, rules) as proxy:
        run = sns_run(ddb, tmp_config, spawn_outboxd, "outbox_sns_throttled", sns_sink(topic, proxy.endpoint),
                      tmp_path, max_attempts=3, count=20, keys=5)
        run.produce()
        messages = receive_every(fauxqs.sqs(), queue, run.ids(), timeout=60)
        run.check([structured_received(m["Body"]) for m in messages])
        assert proxy.count(action="error") == 6 and proxy.count(action="status") == 6
        assert run.metric("outboxd_throttled_requests_total", operation="PublishBatch") >= 1
        assert "Throttled: injected by FaultProxy" in run.daemon.output(), run.daemon.output()[-3000:]
        run.all_published(timeout=30)
        run.no_dead_letters()
        run.stop()


def one_bad_among_nine(ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path, name, bad_payload, error, endpoint=None,
                       **sink_keys):
    """Writes a message "bad" and nine good ones, then starts the relay, so that one publish (one
    PublishBatch) carries the ten: the good ones arrive, untouched by bad's failure, and bad is
    rejected (its error holding error) until max_attempts (2)."""
    topic, queue = sns_topic_into_queue(fauxqs, f"one-bad-{name}")
    run = sns_run(ddb, tmp_config, spawn_outboxd, f"outbox_sns_{name}",
                  sns_sink(topic, endpoint or fauxqs.endpoint, **sink_keys), tmp_path, max_attempts=2, start=False)
    run.put("key-bad", "bad", bad_payload)
    for k in range(9):
        run.put(f"key-{k}", f"good-{k}", {"n": k})
    run.start()
    run.check_rejected(["bad"], 2, error, timeout=30)
    got = sorted(ce_id(m["Body"]) for m in fauxqs.sqs().receive_all(queue, 9, timeout=20))
    assert got == [f"good-{k}" for k in range(9)]
    for i in scan_items(ddb, run.table):
        if i["sk"]["S"] != "bad":
            assert i["isPublished"]["BOOL"] and "retryCount" not in i and "lastError" not in i, i
    run.stop()


def test_a_failed_entry_of_a_batch_fails_its_message_alone(ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    # The sink allows 1 MiB (a topic raised so); the emulator's topic keeps SNS's default 256 KiB
    # and fails that entry of the batch (InvalidParameter) while the nine others go through.
    one_bad_among_nine(ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path, "too-long", oversize_payload(SNS_LIMIT),
                       "PublishBatch entry: InvalidParameter: Message too long", max_message_size=1048576)


def test_a_batch_refused_as_a_whole_as_invalid_fails_only_the_message_at_fault(
        ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path):
    # SNS refuses a whole PublishBatch for what one entry holds (an attribute or body it will not
    # take): the sink sends each entry of such a batch again alone, so only that one fails.
    rule = Rule(match_body="refused-by-sns", action="error", status=400, error_type="InvalidParameter",
                message="Invalid parameter: Message")
    with sns_fault_proxy(fauxqs.endpoint, [rule]) as proxy:
        one_bad_among_nine(ddb, tmp_config, spawn_outboxd, fauxqs, tmp_path, "refused", {"x": "refused-by-sns"},
                           "PublishBatch: InvalidParameter: Invalid parameter: Message", endpoint=proxy.endpoint)


def test_a_refusal_that_quotes_the_signed_request_keeps_the_session_token_out_of_the_error(tmp_path):
    # SNS's SignatureDoesNotMatch quotes the canonical request it expected, whose
    # x-amz-security-token line is the session token: no error may carry it (SPEC §7).
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
    assert result["result"] == "retry" and "SignatureDoesNotMatch" in result["error"], result
    assert "x-amz-security-token:" in result["error"], result
    assert token[:16] not in result["error"] and token[:16].encode() not in p.stderr, result
