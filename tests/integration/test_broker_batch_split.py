"""The AWS sinks' shared batch sending (sinks/aws_sink.c), through the eventbridge sink against
harness/eventbridge_server.py: a call of several entries refused as a whole as invalid may be
one entry's fault, so each of its entries is sent again in a call of its own and only the one
refused fails."""

import base64
import json


def msg(sk):
    return {"pk": "p1", "sk": sk, "messageType": "OrderCreated", "payload_b64": base64.b64encode(b'{"n": 1}').decode(),
            "aggregateId": "a1", "aggregateType": "Order", "createdAt": "2025-11-25T22:05:12.123Z"}


def test_a_call_refused_whole_as_invalid_is_sent_again_entry_by_entry_and_only_the_refused_one_fails(
        eventbridge, sink_publish):
    # The call of all three, then the first of the three calls of one entry, are refused.
    eventbridge.fail_calls(2, code="ValidationException", message="1 validation error detected")
    run = sink_publish({"type": "eventbridge", "endpoint": eventbridge.url}, [msg(f"m{i}") for i in range(3)])
    assert sorted(r["result"] for r in run.results) == ["ack", "ack", "reject"], run
    refused, = [r for r in run.results if r["result"] == "reject"]
    assert "PutEvents: ValidationException" in refused["error"], refused
    assert [len(c.entries) for c in eventbridge.calls()] == [3, 1, 1, 1]
    acked = sorted(json.loads(e.detail)["id"] for e in eventbridge.events())
    assert acked == sorted(r["sk"] for r in run.results if r["result"] == "ack")
