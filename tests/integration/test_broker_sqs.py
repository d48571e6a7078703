"""The sqs sink against fauxqs (the SQS emulator, JSON protocol): the relay drains 5,000
messages into a FIFO queue through an outage of the emulator, an oversize message is
dead-lettered at once, a missing queue follows max_attempts; through tests/tools/sink_publish
with the fault proxy in front: throttling and 5xx are retriable, a failed entry of a batch
fails that message alone."""

import base64
import json
import os
import shutil
import tempfile
import threading
import time

import pytest

from broker_contract import BrokerRun, check_ce, oversize_payload, structured_received
from harness.fault_proxy import FaultProxy, Rule
from harness.fauxqs import PersistentFauxqs
from relay_util import (create_outbox_table, dlq_sink, free_port, lines_of, metric, metric_samples, relay_config,
                        scan_items, wait_until, with_relay)

SECRET = "testsecret"   # the tests' secret access key (outboxd_config.aws_section)
OUTAGE_S = 30
_queues = iter(range(1_000_000))


def new_queue(server, fifo=False, **attributes):
    name = f"q{next(_queues)}" + (".fifo" if fifo else "")
    return server.sqs().create_queue(name, fifo=fifo, **attributes)


def sqs_sink(queue_url, endpoint, name="sqs", extra=""):
    return f"  - name: {name}\n    type: sqs\n    queue_url: {queue_url}\n    endpoint: {endpoint}\n{extra}"


def sink_options(queue_url, endpoint, **kw):
    return {"type": "sqs", "queue_url": queue_url, "endpoint": endpoint, **kw}


def msg(sk="m1", pk="key-1", n=1, **kw):
    payload = json.dumps({"key": pk, "n": n}).encode()
    return {"pk": pk, "sk": sk, "messageType": "Test.Event", "aggregateType": "Test", "aggregateId": pk,
            "createdAt": "2025-01-02T03:04:05.000Z", "payload_b64": base64.b64encode(payload).decode(), **kw}


def results(run):
    return {r["sk"]: r for r in run.results}


def receive_unique(sqs, url, want, timeout=180):
    """Receives (and deletes) until want distinct messages came, then what else is there (repeats)."""
    out = []
    deadline = time.monotonic() + timeout
    while len({m["MessageId"] for m in out}) < want and time.monotonic() < deadline:
        distinct = len({json.loads(m["Body"])["id"] for m in out})
        if distinct >= want:
            break
        out += sqs.receive_all(url, want - distinct, timeout=max(1, deadline - time.monotonic()))
    return out + sqs.receive_all(url, 10_000, timeout=3)


def queued(sqs, url):
    attrs = sqs.call("GetQueueAttributes", QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


# -- the relay ---------------------------------------------------------------------------


def test_fifo_queue_gets_5000_messages_in_key_order_through_a_30s_outage(ddb, tmp_config, spawn_outboxd, tmp_path):
    """fauxqs is stopped for 30 s once part of the run arrived, then started again on its
    SQLite files (the plain emulator would come back empty): the relay waits, loses and
    dead-letters nothing; repeats are only what was in flight when it went (its
    deduplication window did not survive the restart). Its files are in memory (/dev/shm):
    SQLite's syncs to a disk made the emulator 5 times slower."""
    data = tempfile.mkdtemp(dir="/dev/shm") if os.path.isdir("/dev/shm") else str(tmp_path)
    server = PersistentFauxqs(data).start()
    try:
        sqs = server.sqs()
        url = new_queue(server, fifo=True)
        port = free_port()
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_fifo", sqs_sink(url, server.endpoint),
                        default_sink="sqs", metrics_port=port)
        producer = threading.Thread(target=run.produce)
        producer.start()
        try:
            assert wait_until(lambda: queued(sqs, url) >= 1000, 120, interval=0.2), run.daemon.output()[-3000:]
            server.stop()
            assert wait_until(lambda: metric(metric_samples(port), "outboxd_sink_up", sink="sqs") == 0, OUTAGE_S)
            time.sleep(OUTAGE_S)
            server.start()
        finally:
            producer.join()
        got = receive_unique(sqs, url, run.count)
        received = [structured_received(m["Body"]) for m in got]
        dup = run.check(received, max_duplicates=64)
        for m, r in zip(got, received):
            assert m["Attributes"]["MessageGroupId"] == r.key
            assert m["Attributes"]["MessageDeduplicationId"] == r.id
            assert m["MessageAttributes"]["x-n"]["StringValue"] == str(r.n)
            check_ce(r.attrs, run.table)
        run.all_published()
        run.no_dead_letters()
        print(f"sqs fifo: {run.count} messages through a {OUTAGE_S}s outage, {dup} repeated")
        run.stop()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_oversize_message_is_dead_lettered_at_once_and_its_key_goes_on(ddb, tmp_config, spawn_outboxd, run_outboxd,
                                                                       fauxqs, tmp_path):
    url = new_queue(fauxqs, MaximumMessageSize=2048)
    table = create_outbox_table(ddb, "outbox_sqs_big")
    port, dlq = free_port(), tmp_path / "dlq.jsonl"
    sinks = sqs_sink(url, fauxqs.endpoint, extra="    max_message_size: 2048\n") + dlq_sink(dlq)
    config = tmp_config(with_relay(relay_config(ddb.endpoint, table, sinks, default_sink="sqs", metrics_port=port),
                                   dead_letter_sink="dlq", max_attempts=10))
    daemon = spawn_outboxd("run", "-c", config)
    add = ["add", "-c", config, "--type", "Test.Event", "--partition-key", "key-1"]
    big = run_outboxd(*add, "--payload", oversize_payload(2048)).stdout.strip()
    small = run_outboxd(*add, "--payload", '{"n":2}').stdout.strip()
    got = fauxqs.sqs().receive_all(url, 1, timeout=30)
    assert [json.loads(m["Body"])["id"] for m in got] == [small], daemon.output()[-3000:]
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30)
    assert lines_of(dlq)[0]["id"] == big
    item = next(i for i in scan_items(ddb, table) if i["sk"]["S"] == big)
    assert "deadLetteredAt" in item
    assert item["lastError"]["S"].startswith("too_large: ") and "max_message_size" in item["lastError"]["S"]
    assert item["retryCount"]["N"] == "1"
    assert metric(metric_samples(port), "outboxd_messages_dead_lettered_total", reason="too_large") == 1
    assert daemon.stop() == 0


def test_missing_queue_is_rejected_until_max_attempts_and_no_secret_is_logged(ddb, tmp_config, spawn_outboxd,
                                                                             run_outboxd, fauxqs, tmp_path):
    table = create_outbox_table(ddb, "outbox_sqs_missing")
    dlq = tmp_path / "dlq.jsonl"
    sinks = sqs_sink("no-such-queue", fauxqs.endpoint) + dlq_sink(dlq)
    config = tmp_config(with_relay(relay_config(ddb.endpoint, table, sinks, default_sink="sqs", log_level="debug"),
                                   dead_letter_sink="dlq", max_attempts=3))
    daemon = spawn_outboxd("run", "-c", config)
    sk = run_outboxd("add", "-c", config, "--type", "Test.Event", "--payload", '{"n":1}').stdout.strip()
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30), daemon.output()[-3000:]
    item = next(i for i in scan_items(ddb, table) if i["sk"]["S"] == sk)
    assert item["retryCount"]["N"] == "3"
    assert "GetQueueUrl: QueueDoesNotExist" in item["lastError"]["S"]
    assert lines_of(dlq)[0]["deadletterreason"] == item["lastError"]["S"]
    assert daemon.stop() == 0
    assert SECRET not in daemon.output()


def test_throttling_and_5xx_of_every_call_for_a_while_dead_letter_nothing(ddb, tmp_config, spawn_outboxd, fauxqs,
                                                                         tmp_path):
    """With max_attempts 2, a throttling answer taken for a rejection would dead-letter."""
    url = new_queue(fauxqs, fifo=True)
    proxy = FaultProxy(fauxqs.endpoint).start()
    try:
        proxy.set_rules([Rule(match_target="SendMessageBatch", action="error", error_type="RequestThrottled",
                              times=6),
                         Rule(match_target="SendMessageBatch", action="status", status=503, times=6)])
        dlq = tmp_path / "dlq.jsonl"
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_throttled",
                        sqs_sink(url, proxy.endpoint) + dlq_sink(dlq), default_sink="sqs", count=40, keys=4,
                        relay={"dead_letter_sink": "dlq", "max_attempts": 2})
        run.produce()
        got = receive_unique(fauxqs.sqs(), url, run.count, timeout=60)
        run.check([structured_received(m["Body"]) for m in got])
        run.all_published()
        run.no_dead_letters()
        assert proxy.count(target="SendMessageBatch", action="error") == 6
        assert proxy.count(target="SendMessageBatch", action="status") == 6
        run.stop()
    finally:
        proxy.stop()


# -- the sink alone (tests/tools/sink_publish) -------------------------------------------


def test_structured_body_attributes_and_fifo_ids_arrive(fauxqs, sink_publish):
    url = new_queue(fauxqs, fifo=True)
    headers = {"trace-id": "t-1", "AWS.reserved": "left out", "content-type": "application/json"}
    run = sink_publish(sink_options(url, fauxqs.endpoint), [msg("m1", headers=headers)])
    assert run.results[0]["result"] == "ack", run.results
    [m] = fauxqs.sqs().receive_all(url, 1, timeout=10)
    ce = json.loads(m["Body"])
    assert ce["id"] == "m1" and ce["partitionkey"] == "key-1" and ce["data"] == {"key": "key-1", "n": 1}
    assert {k: v["StringValue"] for k, v in m["MessageAttributes"].items()} == {
        "trace-id": "t-1", "content-type": "application/json"}
    assert m["Attributes"]["MessageGroupId"] == "key-1"
    assert m["Attributes"]["MessageDeduplicationId"] == "m1"


def test_a_payload_holding_the_noncharacters_sqs_refuses_arrives_with_them_escaped(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    payload = json.dumps({"text": "a\ufffe\uffffb"}, ensure_ascii=False).encode()
    run = sink_publish(sink_options(url, fauxqs.endpoint), [msg("m1", payload_b64=base64.b64encode(payload).decode())])
    assert run.results[0]["result"] == "ack", run.results
    [m] = fauxqs.sqs().receive_all(url, 1, timeout=10)
    assert json.loads(m["Body"])["data"] == {"text": "a\ufffe\uffffb"}


def test_queue_name_is_resolved_once_and_batches_hold_ten(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    name = url.rsplit("/", 1)[1]
    proxy = FaultProxy(fauxqs.endpoint).start()
    try:
        run = sink_publish(sink_options(name, proxy.endpoint), [msg(f"m{i}", pk=f"k{i}") for i in range(25)],
                           "--batch", "25")
        run2 = sink_publish(sink_options(name, proxy.endpoint), [msg(f"n{i}", pk=f"k{i}") for i in range(25)],
                            "--batch", "5")
        assert {r["result"] for r in run.results + run2.results} == {"ack"}
        # One process each: the second's five publishes asked once.
        assert proxy.count(target="GetQueueUrl") == 2
        assert sorted(len(json.loads(r.body)["Entries"]) for r in proxy.select(target="SendMessageBatch")) == \
            [5] * 5 + [5, 10, 10]
    finally:
        proxy.stop()
    assert len(fauxqs.sqs().receive_all(url, 50, timeout=20)) == 50


@pytest.mark.parametrize("rule", [
    Rule(action="error", error_type="RequestThrottled"),
    Rule(action="error", error_type="KmsThrottled"),
    Rule(action="throttling"),
    Rule(action="status", status=500),
    Rule(action="status", status=503),
    Rule(action="reset"),
], ids=["RequestThrottled", "KmsThrottled", "ThrottlingException", "500", "503", "reset"])
def test_throttling_5xx_and_resets_are_retry(fauxqs, sink_publish, rule):
    url = new_queue(fauxqs)
    with FaultProxy(fauxqs.endpoint, rules=[rule]).start() as proxy:
        run = sink_publish(sink_options(url, proxy.endpoint), [msg("m1"), msg("m2", pk="key-2")])
    assert [r["result"] for r in run.results] == ["retry", "retry"], run.results


def test_a_failed_entry_fails_that_message_alone(fauxqs, sink_publish):
    url = new_queue(fauxqs)

    def fail_m2(answer, request):
        i = next(e["Id"] for e in request["Entries"] if json.loads(e["MessageBody"])["id"] == "m2")
        answer["Successful"] = [s for s in answer["Successful"] if s["Id"] != i]
        answer["Failed"] = [{"Id": i, "SenderFault": True, "Code": "InvalidMessageContents", "Message": "no"}]
        return answer
    with FaultProxy(fauxqs.endpoint, rules=[Rule(action="rewrite", rewrite=fail_m2)]).start() as proxy:
        run = sink_publish(sink_options(url, proxy.endpoint), [msg(f"m{i}", pk=f"k{i}") for i in range(1, 4)])
    r = results(run)
    assert r["m1"]["result"] == "ack" and r["m3"]["result"] == "ack"
    assert r["m2"]["result"] == "reject"
    assert r["m2"]["error"] == "SendMessageBatch entry: InvalidMessageContents: no"


def test_an_answer_with_another_body_md5_is_retry(fauxqs, sink_publish):
    url = new_queue(fauxqs)

    def damage(answer):
        for s in answer["Successful"]:
            s["MD5OfMessageBody"] = "0" * 32
        return answer
    with FaultProxy(fauxqs.endpoint, rules=[Rule(action="rewrite", rewrite=damage)]).start() as proxy:
        run = sink_publish(sink_options(url, proxy.endpoint), [msg()])
    assert run.results[0]["result"] == "retry"
    assert "MD5OfMessageBody" in run.results[0]["error"]


def test_missing_queue_url_is_reject(fauxqs, sink_publish):
    url = fauxqs.endpoint + "/000000000000/absent"
    run = sink_publish(sink_options(url, fauxqs.endpoint), [msg()])
    assert run.results[0]["result"] == "reject"
    assert run.results[0]["error"].startswith("SendMessageBatch: QueueDoesNotExist")


def test_a_route_topic_that_is_no_queue_is_reject(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    run = sink_publish(sink_options(url, fauxqs.endpoint), [msg(destination="not a queue")])
    assert run.results[0]["result"] == "reject"
    assert "is not a queue URL or name" in run.results[0]["error"]
