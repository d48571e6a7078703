"""The eventbridge sink against harness/eventbridge_server.py (PutEvents on loopback, every
request's SigV4 signature and body checked with botocore): the binding of SPEC §4 (Source,
DetailType, Detail = the structured CloudEvent, Time), batches of 10 within the service's
entry-size rule, each entry's answer its message's result, and through the relay: 5,000
messages with an outage, too_large at once, rejections after max_attempts, throttling and 5xx
retried (SPEC §3)."""

import datetime
import json
import threading

import boto3
import pytest

from broker_contract import BrokerRun, ce_id, check_ce, message, oversize_payload, structured_received
from harness.eventbridge_server import MAX_BYTES, EventBridgeClient
from harness.util import free_port
from relay_util import sink_yaml


def eventbridge_sink(server, **keys):
    """The eventbridge sink's keys: sink_publish's options, sink_yaml's for the relay."""
    return {"type": "eventbridge", "endpoint": server.url, **keys}


def seconds(iso):
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def first_time():
    """A match for fail_entries: true the first time an entry's message is seen, then never."""
    seen, lock = set(), threading.Lock()

    def match(entry):
        with lock:
            new = ce_id(entry["Detail"]) not in seen
            seen.add(ce_id(entry["Detail"]))
            return new
    return match


# -- the test server itself ----------------------------------------------------------------

def test_server_takes_what_botocore_sends_and_answers_in_the_services_shape(eventbridge):
    client = boto3.client("events", endpoint_url=eventbridge.url, region_name="us-east-1",
                          aws_access_key_id="AKIDTEST", aws_secret_access_key="testsecret")
    r = client.put_events(Entries=[{"Source": "/s", "DetailType": "T", "Detail": '{"a": 1}'},
                                   {"Source": "aws.s3", "DetailType": "T", "Detail": "{}"},
                                   {"Source": "/s", "DetailType": "T", "Detail": "[1]"}])
    assert r["FailedEntryCount"] == 2
    assert r["Entries"][0]["EventId"] == eventbridge.events()[0].event_id
    assert [e.get("ErrorCode") for e in r["Entries"][1:]] == ["NotAuthorizedForSourceException", "MalformedDetail"]


def test_server_refuses_a_bad_signature_and_what_botocore_would_refuse(eventbridge):
    client = EventBridgeClient(eventbridge.url)
    entry = {"Source": "/s", "DetailType": "T", "Detail": "{}"}
    assert client.call({"Entries": [entry]})[0] == 200
    status, answer = client.call({"Entries": [entry]}, secret_key="not-the-secret")
    assert (status, answer["__type"]) == (403, "InvalidSignatureException")
    status, answer = client.call({"Entries": [dict(entry, Time="yesterday")]})
    assert (status, answer["__type"]) == (400, "ValidationException") and "Entries[0].Time" in answer["message"]
    assert client.call({"Entries": [entry] * 11})[1]["__type"] == "ValidationException"
    assert client.call({"Entries": [dict(entry, EventBusName="no/such")]})[1]["__type"] == "ValidationException"
    assert client.call({"Entries": [dict(entry, EventBusName="orders")]})[1]["__type"] == "ResourceNotFoundException"
    assert len(eventbridge.events()) == 1


# -- the binding, batches and results (sink_publish, no relay) -------------------------------

def test_each_message_is_an_event_with_the_cloudevent_as_detail(eventbridge, sink_publish):
    eventbridge.buses.add("orders")
    run = sink_publish(eventbridge_sink(eventbridge),
                       [message("m1", pk="p1", messageType="OrderCreated", aggregateType="Order", aggregateId="a1",
                                headers={"content-type": "application/json", "tenant": "t1"}),
                        message("m2", destination="orders"),
                        message("m3", messageType="", createdAt=None),
                        message("m4", messageType="Acme.Orders.Events." + "Long" * 40)])
    assert [r["result"] for r in run.results] == ["ack"] * 4, run
    by_id = {ce_id(e.detail): e for e in eventbridge.events()}
    e = by_id["m1"]
    ce = json.loads(e.detail)
    assert (e.bus, e.source, e.detail_type) == ("default", "/outbox/Order", "OrderCreated")
    assert abs(e.time - seconds("2025-11-25T22:05:12.123Z")) < 0.0005
    assert {k: ce[k] for k in ("specversion", "id", "type", "source", "subject", "time", "partitionkey",
                               "datacontenttype", "data", "tenant")} == {
        "specversion": "1.0", "id": "m1", "type": "OrderCreated", "source": "/outbox/Order", "subject": "a1",
        "time": "2025-11-25T22:05:12.123Z", "partitionkey": "p1", "datacontenttype": "application/json",
        "data": {"n": 1}, "tenant": "t1"}
    assert by_id["m2"].bus == "orders"
    # EventBridge refuses an empty DetailType and one over 128 characters: an empty type goes as
    # outbox.message, a long one cut; Detail keeps the type as it is.
    assert (by_id["m3"].detail_type, json.loads(by_id["m3"].detail)["type"], by_id["m3"].time) == (
        "outbox.message", "", None)
    long_type = "Acme.Orders.Events." + "Long" * 40
    assert by_id["m4"].detail_type == long_type[:128]
    assert json.loads(by_id["m4"].detail)["type"] == long_type


def test_a_created_at_at_the_end_of_9999_goes_without_time_and_its_batch_mates_with_theirs(eventbridge,
                                                                                          sink_publish):
    # Its Time would round to the year 10000 in the body: the whole call refused, both messages.
    run = sink_publish(eventbridge_sink(eventbridge),
                       [message("m1", createdAt="9999-12-31T23:59:59.999Z"), message("m2")])
    assert [r["result"] for r in run.results] == ["ack", "ack"], run
    by_id = {ce_id(e.detail): e for e in eventbridge.events()}
    assert by_id["m1"].time is None and json.loads(by_id["m1"].detail)["time"] == "9999-12-31T23:59:59.999Z"
    assert abs(by_id["m2"].time - seconds("2025-11-25T22:05:12.123Z")) < 0.0005


def test_a_batch_goes_as_calls_of_ten_entries_within_256_kib(eventbridge, sink_publish):
    pad = json.dumps({"pad": "x" * (100 << 10)}).encode()
    run = sink_publish(eventbridge_sink(eventbridge), [message(f"m{i}") for i in range(25)] +
                       [message(f"big{i}", payload=pad) for i in range(3)])
    assert [r["result"] for r in run.results] == ["ack"] * 28, run
    # In order: 10, 10, then 5 small and 2 big ones (a third would pass 256 KiB), the last big one.
    assert sorted(len(c.entries) for c in eventbridge.calls()) == [1, 7, 10, 10]


def test_an_entry_over_256_kib_is_too_large_without_a_call(eventbridge, sink_publish):
    run = sink_publish(eventbridge_sink(eventbridge),
                       [message("big", payload=oversize_payload(MAX_BYTES)), message("m2")])
    big, ok = run.results
    assert (big["result"], big.get("too_large"), ok["result"]) == ("reject", True, "ack"), run
    assert "not under the service's limit of 262144 bytes" in big["error"]
    assert [ce_id(e["Detail"]) for c in eventbridge.calls() for e in c.entries] == ["m2"]


def test_an_entry_of_exactly_256_kib_is_too_large_and_its_batch_mates_go(eventbridge, sink_publish):
    # The service takes entries "less than 256KB" together: an entry of 262,144 bytes by its rule
    # would have the whole call refused, and its batch mates with it.
    sink_publish(eventbridge_sink(eventbridge), [message("probe", payload=b'{"pad":""}')])
    probe, = eventbridge.events()
    base = 14 + len(probe.source.encode()) + len(probe.detail_type.encode()) + len(probe.detail.encode())
    exact = json.dumps({"pad": "x" * (MAX_BYTES - base)}).replace(" ", "").encode()
    run = sink_publish(eventbridge_sink(eventbridge), [message("m1"), message("probe", payload=exact), message("m2")])
    assert [(r["result"], r.get("too_large")) for r in run.results] == [("ack", None), ("reject", True),
                                                                        ("ack", None)], run
    assert "PutEvents entry of 262144 bytes" in run.results[1]["error"]


def test_a_failed_entry_fails_its_message_alone_by_its_error_code(eventbridge, sink_publish):
    codes = {"m1": "ThrottlingException", "m2": "InternalFailure", "m3": "MalformedDetail", "m4": "InvalidArgument"}
    for sk, code in codes.items():
        eventbridge.fail_entries(lambda e, sk=sk: ce_id(e["Detail"]) == sk, code=code,
                                 message=f"{code} for {sk}")
    run = sink_publish(eventbridge_sink(eventbridge), [message(f"m{i}") for i in range(6)])
    assert [(r["sk"], r["result"]) for r in run.results] == [
        ("m0", "ack"), ("m1", "retry"), ("m2", "retry"), ("m3", "reject"), ("m4", "reject"), ("m5", "ack")], run
    assert run.results[3]["error"] == "PutEvents entry: MalformedDetail: MalformedDetail for m3"
    assert len(eventbridge.calls()) == 1
    assert sorted(ce_id(e.detail) for e in eventbridge.events()) == ["m0", "m5"]


@pytest.mark.parametrize("status,code,result", [
    (400, "ThrottlingException", "retry"), (500, "InternalException", "retry"), (503, "ServiceUnavailable", "retry"),
    (400, "AccessDeniedException", "retry")])
def test_a_call_that_fails_as_a_whole_fails_its_entries_by_the_error(eventbridge, sink_publish, status, code,
                                                                     result):
    eventbridge.fail_calls(3, status=status, code=code)     # every attempt the client makes
    run = sink_publish(eventbridge_sink(eventbridge), [message("m1"), message("m2")])
    assert [r["result"] for r in run.results] == [result] * 2, run
    assert run.results[0]["error"].startswith("PutEvents: ") and code in run.results[0]["error"]
    assert not eventbridge.events()


def test_a_bus_that_does_not_exist_fails_its_own_messages_only(eventbridge, sink_publish):
    run = sink_publish(eventbridge_sink(eventbridge), [message("m1", destination="missing"), message("m2")])
    assert [r["result"] for r in run.results] == ["reject", "ack"], run
    assert run.results[0]["error"] == "PutEvents: ResourceNotFoundException: Event bus missing does not exist."


def test_an_endpoint_that_refuses_connections_is_unreachable(sink_publish):
    run = sink_publish({"type": "eventbridge", "endpoint": f"http://127.0.0.1:{free_port()}"}, [message("m1")])
    assert (run.results[0]["result"], run.results[0].get("unreachable")) == ("retry", True), run


def test_check_refuses_an_event_bus_name_that_cannot_be(run_outboxd, tmp_config):
    cfg = tmp_config("""\
        aws: { region: us-east-1 }
        table: { name: outbox }
        sinks:
          - name: eb
            type: eventbridge
            event_bus_name: "orders bus"
        """)
    p = run_outboxd("check", "-c", str(cfg))
    assert p.returncode == 78, p.stdout + p.stderr
    assert "6:21: error: 'event_bus_name' of eventbridge sink 'eb' must be an event bus name" in p.stderr


# -- through the relay ---------------------------------------------------------------------

def eb_run(ddb, tmp_config, spawn_outboxd, server, table, **kw):
    """A BrokerRun of the eventbridge sink eb on server."""
    return BrokerRun(ddb, tmp_config, spawn_outboxd, table, sink_yaml("eb", eventbridge_sink(server)),
                     default_sink="eb", **kw)


def test_5000_messages_arrive_once_in_key_order_through_a_30s_outage(ddb, tmp_config, spawn_outboxd, eventbridge):
    run = eb_run(ddb, tmp_config, spawn_outboxd, eventbridge, "outbox_eb")
    run.through_an_outage(eventbridge)
    events = eventbridge.events()
    received = [structured_received(e.detail) for e in events]
    dup = run.check(received, max_duplicates=64)
    for e, r in zip(events, received):
        assert (e.bus, e.source, e.detail_type) == ("default", r.attrs["source"], r.attrs["type"])
        assert abs(e.time - seconds(r.attrs["time"])) < 0.0005
        check_ce(r.attrs, run.table)
    print(f"eventbridge: {run.count} messages through a 30 s outage, {dup} repeated")
    run.stop()


def test_an_oversize_message_is_dead_lettered_at_once_as_too_large_and_its_key_goes_on(
        ddb, tmp_config, spawn_outboxd, eventbridge, tmp_path):
    run = eb_run(ddb, tmp_config, spawn_outboxd, eventbridge, "outbox_eb_big", dlq=tmp_path / "dlq.jsonl",
                 relay={"max_attempts": 10})
    # Under DynamoDB's 400 KB item, over EventBridge's 256 KiB entry.
    run.put("key-1", "big", oversize_payload(MAX_BYTES))
    run.put("key-1", "small", {"n": 2})
    assert eventbridge.wait_events(1, timeout=30) == 1, run.daemon.output()[-3000:]
    run.check_too_large("big", "too_large: PutEvents entry of ")
    assert [ce_id(e["Detail"]) for c in eventbridge.calls() for e in c.entries] == ["small"]
    run.stop()


def test_a_rejected_message_is_dead_lettered_after_max_attempts(ddb, tmp_config, spawn_outboxd, eventbridge,
                                                                 tmp_path):
    # Keys 2 and 5 of 6 have type Test.Event2: routed to a bus that does not exist.
    routes = 'routes:\n  - match: { messageType: "Test.Event2" }\n    sink: eb\n    topic: missing\n'
    run = eb_run(ddb, tmp_config, spawn_outboxd, eventbridge, "outbox_eb_rej", extra=routes, count=12, keys=6,
                 dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": 3})
    rows = run.produce()
    rejected = [r[0] for r in rows if r[1] in ("key-2", "key-5")]
    run.check_rejected(rejected, 3, "ResourceNotFoundException")
    carried = [ce_id(e["Detail"]) for c in eventbridge.calls() if c.code == "ResourceNotFoundException"
               for e in c.entries]
    assert sorted(carried) == sorted(rejected * 3)
    assert sorted(ce_id(e.detail) for e in eventbridge.events()) == sorted(set(run.ids()) - set(rejected))
    run.stop()


def test_throttling_and_server_errors_are_retried_and_lose_nothing(ddb, tmp_config, spawn_outboxd, eventbridge):
    run = eb_run(ddb, tmp_config, spawn_outboxd, eventbridge, "outbox_eb_thr", count=300, keys=10)
    eventbridge.fail_calls(4, status=400, code="ThrottlingException")
    eventbridge.fail_calls(3, status=500, code="InternalException", message="internal")
    eventbridge.fail_calls(2, status=503, code="ServiceUnavailable", message="unavailable")
    throttled, failed = first_time(), first_time()
    eventbridge.fail_entries(lambda e: json.loads(e["Detail"])["data"]["n"] % 7 == 3 and throttled(e),
                             code="ThrottlingException")
    eventbridge.fail_entries(lambda e: json.loads(e["Detail"])["data"]["n"] % 11 == 5 and failed(e),
                             code="InternalFailure", message="internal")
    run.produce()
    run.all_published()
    run.no_dead_letters()
    # Each message accepted once: a partly failed call had its good entries taken.
    run.check([structured_received(e.detail) for e in eventbridge.events()])
    assert sum(1 for c in eventbridge.calls() if c.status in (400, 500, 503)) == 9
    assert any(0 < c.failed < len(c.entries) for c in eventbridge.calls()), "no call was answered in part"
    run.stop()
