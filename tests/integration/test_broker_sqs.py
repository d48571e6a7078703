"""The sqs sink against fauxqs (the SQS emulator, JSON protocol): the relay drains 5,000
messages into a FIFO queue through an outage of the emulator, an oversize message is
dead-lettered at once, a missing queue follows max_attempts; through tests/tools/sink_publish
with the fault proxy in front: throttling and 5xx are retriable, a failed entry of a batch
fails that message alone."""

import json

import pytest

from broker_contract import (BrokerRun, by_sk, ce_id, check_ce, check_queue_binding, message, oversize_payload,
                             receive_every, structured_received)
from harness.fault_proxy import FaultProxy, Rule
from harness.fauxqs import persistent_fauxqs
from relay_util import sink_yaml

SECRET = "testsecret"   # the tests' secret access key (outboxd_config.aws_section)
_queues = iter(range(1_000_000))


def new_queue(server, fifo=False, **attributes):
    name = f"q{next(_queues)}" + (".fifo" if fifo else "")
    return server.sqs().create_queue(name, fifo=fifo, **attributes)


def sqs_sink(queue_url, endpoint, **keys):
    """The sqs sink's keys: sink_publish's options, sink_yaml's for the relay."""
    return {"type": "sqs", "queue_url": queue_url, "endpoint": endpoint, **keys}


# -- the relay ---------------------------------------------------------------------------


def test_fifo_queue_gets_5000_messages_in_key_order_through_a_30s_outage(ddb, tmp_config, spawn_outboxd, tmp_path):
    """fauxqs is stopped for 30 s once part of the run arrived, then started again on its
    SQLite files (the plain emulator would come back empty): the relay waits, loses and
    dead-letters nothing; repeats are only what was in flight when it went (its
    deduplication window did not survive the restart)."""
    with persistent_fauxqs(tmp_path) as server:
        url = new_queue(server, fifo=True)
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_fifo",
                        sink_yaml("sqs", sqs_sink(url, server.endpoint)), default_sink="sqs")
        run.through_an_outage(server)
        messages = receive_every(server.sqs(), url, run.ids())
        received = [structured_received(m["Body"]) for m in messages]
        dup = run.check(received, max_duplicates=64)
        check_queue_binding(messages, received)
        for r in received:
            check_ce(r.attrs, run.table)
        print(f"sqs fifo: {run.count} messages through a 30 s outage, {dup} repeated")
        run.stop()


def test_oversize_message_is_dead_lettered_at_once_and_its_key_goes_on(ddb, tmp_config, spawn_outboxd, fauxqs,
                                                                       tmp_path):
    url = new_queue(fauxqs, MaximumMessageSize=2048)
    run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_big",
                    sink_yaml("sqs", sqs_sink(url, fauxqs.endpoint, max_message_size=2048)), default_sink="sqs",
                    dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": 10})
    run.put("key-1", "big", oversize_payload(2048))
    run.put("key-1", "small", {"n": 2})
    got = fauxqs.sqs().receive_all(url, 1, timeout=30)
    assert [ce_id(m["Body"]) for m in got] == ["small"], run.daemon.output()[-3000:]
    run.check_too_large("big", "max_message_size")
    run.stop()


def test_missing_queue_is_rejected_until_max_attempts_and_no_secret_is_logged(ddb, tmp_config, spawn_outboxd,
                                                                             fauxqs, tmp_path):
    run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_missing",
                    sink_yaml("sqs", sqs_sink("no-such-queue", fauxqs.endpoint)), default_sink="sqs",
                    dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": 3}, log_level="debug")
    run.put("key-1", "m-1", {"n": 1})
    run.check_rejected(["m-1"], 3, "GetQueueUrl: QueueDoesNotExist")
    run.stop()
    assert SECRET not in run.daemon.output()


def test_throttling_and_5xx_of_every_call_for_a_while_dead_letter_nothing(ddb, tmp_config, spawn_outboxd, fauxqs,
                                                                         tmp_path):
    """With max_attempts 2, a throttling answer taken for a rejection would dead-letter."""
    url = new_queue(fauxqs, fifo=True)
    rules = [Rule(match_target="SendMessageBatch", action="error", error_type="RequestThrottled", times=6),
             Rule(match_target="SendMessageBatch", action="status", status=503, times=6)]
    with FaultProxy(fauxqs.endpoint, rules=rules) as proxy:
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs_throttled",
                        sink_yaml("sqs", sqs_sink(url, proxy.endpoint)), default_sink="sqs", count=40, keys=4,
                        dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": 2})
        run.produce()
        messages = receive_every(fauxqs.sqs(), url, run.ids(), timeout=60)
        run.check([structured_received(m["Body"]) for m in messages])
        run.all_published()
        run.no_dead_letters()
        assert proxy.count(target="SendMessageBatch", action="error") == 6
        assert proxy.count(target="SendMessageBatch", action="status") == 6
        run.stop()


# -- the sink alone (tests/tools/sink_publish) -------------------------------------------


def test_structured_body_attributes_and_fifo_ids_arrive(fauxqs, sink_publish):
    url = new_queue(fauxqs, fifo=True)
    headers = {"trace-id": "t-1", "AWS.reserved": "left out", "content-type": "application/json"}
    run = sink_publish(sqs_sink(url, fauxqs.endpoint), [message("m1", headers=headers)])
    assert run.results[0]["result"] == "ack", run.results
    [m] = fauxqs.sqs().receive_all(url, 1, timeout=10)
    ce = json.loads(m["Body"])
    assert ce["id"] == "m1" and ce["partitionkey"] == "key-1" and ce["data"] == {"n": 1}
    assert {k: v["StringValue"] for k, v in m["MessageAttributes"].items()} == {
        "trace-id": "t-1", "content-type": "application/json"}
    assert m["Attributes"]["MessageGroupId"] == "key-1"
    assert m["Attributes"]["MessageDeduplicationId"] == "m1"


def test_a_payload_holding_the_noncharacters_sqs_refuses_arrives_with_them_escaped(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    payload = json.dumps({"text": "a\ufffe\uffffb"}, ensure_ascii=False)
    run = sink_publish(sqs_sink(url, fauxqs.endpoint), [message("m1", payload=payload)])
    assert run.results[0]["result"] == "ack", run.results
    [m] = fauxqs.sqs().receive_all(url, 1, timeout=10)
    assert json.loads(m["Body"])["data"] == {"text": "a\ufffe\uffffb"}


def test_queue_name_is_resolved_once_and_batches_hold_ten(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    name = url.rsplit("/", 1)[1]
    with FaultProxy(fauxqs.endpoint) as proxy:
        run = sink_publish(sqs_sink(name, proxy.endpoint), [message(f"m{i}", pk=f"k{i}") for i in range(25)],
                           "--batch", "25")
        run2 = sink_publish(sqs_sink(name, proxy.endpoint), [message(f"n{i}", pk=f"k{i}") for i in range(25)],
                            "--batch", "5")
        assert {r["result"] for r in run.results + run2.results} == {"ack"}
        # One process each: the second's five publishes asked once.
        assert proxy.count(target="GetQueueUrl") == 2
        assert sorted(len(json.loads(r.body)["Entries"]) for r in proxy.select(target="SendMessageBatch")) == \
            [5] * 5 + [5, 10, 10]
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
    with FaultProxy(fauxqs.endpoint, rules=[rule]) as proxy:
        run = sink_publish(sqs_sink(url, proxy.endpoint), [message("m1"), message("m2", pk="key-2")])
    assert [r["result"] for r in run.results] == ["retry", "retry"], run.results


def test_a_failed_entry_fails_that_message_alone(fauxqs, sink_publish):
    url = new_queue(fauxqs)

    def fail_m2(answer, request):
        i = next(e["Id"] for e in request["Entries"] if ce_id(e["MessageBody"]) == "m2")
        answer["Successful"] = [s for s in answer["Successful"] if s["Id"] != i]
        answer["Failed"] = [{"Id": i, "SenderFault": True, "Code": "InvalidMessageContents", "Message": "no"}]
        return answer
    with FaultProxy(fauxqs.endpoint, rules=[Rule(action="rewrite", rewrite=fail_m2)]) as proxy:
        run = sink_publish(sqs_sink(url, proxy.endpoint), [message(f"m{i}", pk=f"k{i}") for i in range(1, 4)])
    r = by_sk(run.results)
    assert r["m1"]["result"] == "ack" and r["m3"]["result"] == "ack"
    assert r["m2"]["result"] == "reject"
    assert r["m2"]["error"] == "SendMessageBatch entry: InvalidMessageContents: no"


def test_an_answer_with_another_body_md5_is_retry(fauxqs, sink_publish):
    url = new_queue(fauxqs)

    def damage(answer):
        for s in answer["Successful"]:
            s["MD5OfMessageBody"] = "0" * 32
        return answer
    with FaultProxy(fauxqs.endpoint, rules=[Rule(action="rewrite", rewrite=damage)]) as proxy:
        run = sink_publish(sqs_sink(url, proxy.endpoint), [message("m1")])
    assert run.results[0]["result"] == "retry"
    assert "MD5OfMessageBody" in run.results[0]["error"]


def test_missing_queue_url_is_reject(fauxqs, sink_publish):
    url = fauxqs.endpoint + "/000000000000/absent"
    run = sink_publish(sqs_sink(url, fauxqs.endpoint), [message("m1")])
    assert run.results[0]["result"] == "reject"
    assert run.results[0]["error"].startswith("SendMessageBatch: QueueDoesNotExist")


def test_a_route_topic_that_is_no_queue_is_reject(fauxqs, sink_publish):
    url = new_queue(fauxqs)
    run = sink_publish(sqs_sink(url, fauxqs.endpoint), [message("m1", destination="not a queue")])
    assert run.results[0]["result"] == "reject"
    assert "is not a queue URL or name" in run.results[0]["error"]
