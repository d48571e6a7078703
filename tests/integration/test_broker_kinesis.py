"""The kinesis sink on kinesalite (the Kinesis emulator), read back with boto3's Kinesis
client from TRIM_HORIZON of every shard: the relay's 5,000 messages over 50 keys through a
30 s outage (SPEC §4's binding, per-key order, nothing lost), the size limit, a stream that
does not exist, throttling and partly failed PutRecords calls behind a fault proxy, and how
the sink addresses streams and maps partition keys.

The outage stops kinesalite and starts it again on the same LevelDB directory (the
`kinesalite` fixture), so the stream and what it holds survive it, as they do a real
Kinesis outage; connections are refused meanwhile, which is what an unreachable endpoint
does. A record over Kinesis's 1 MiB cannot come out of DynamoDB (400 KB items), so the size
limit is shown through sink_publish."""

import base64
import concurrent.futures
import hashlib
import json
import time

from broker_contract import BrokerRun, check_ce, oversize_payload, structured_received
from harness.fault_proxy import FaultProxy, Rule
from relay_util import dlq_sink, free_port, lines_of, metric, metric_samples, wait_until

REGION = "us-east-1"


def kinesis_sink(endpoint, stream=None, name="kinesis"):
    text = f"  - name: {name}\n    type: kinesis\n    endpoint: {endpoint}\n"
    return text + (f"    stream_name: {stream}\n" if stream else "")


def kinesis(endpoint, stream=None):
    """Options of a kinesis sink for sink_publish."""
    return {"type": "kinesis", "endpoint": endpoint, **({"stream_name": stream} if stream else {})}


def msg(sk, pk="key-1", payload=b'{"n":0}', **kw):
    return {"pk": pk, "sk": sk, "messageType": "Test.Event", "payload_b64": base64.b64encode(payload).decode(),
            "aggregateType": "Test", "aggregateId": pk, "createdAt": "2026-11-25T22:05:12.123Z", **kw}


def ce_of(record):
    return json.loads(record["Data"])


def ids_by_request(proxy, **filters):
    """(record, [CloudEvent id of each record it carried]) of each PutRecords request the
    proxy saw, in order of arrival."""
    out = []
    for r in proxy.select(target="PutRecords", **filters):
        body = json.loads(r.body)
        out.append((r, [json.loads(base64.b64decode(x["Data"]))["id"] for x in body["Records"]]))
    return out


def test_5000_messages_over_50_keys_arrive_once_in_key_order_through_a_30s_outage(ddb, tmp_config, spawn_outboxd,
                                                                                 kinesalite):
    stream = kinesalite.create_stream("outbox-events", shards=4)
    port = free_port()
    run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_kinesis", kinesis_sink(kinesalite.endpoint, stream),
                    metrics_port=port)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        producing = pool.submit(run.produce)
        # The outage begins while the relay is still draining.
        assert wait_until(lambda: len(kinesalite.read_all(stream)) >= 1000, 90), run.daemon.output()[-4000:]
        kinesalite.stop()
        down_at = time.monotonic()
        assert wait_until(lambda: metric(metric_samples(port), "outboxd_sink_up", sink="kinesis") == 0, 25)
        time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        kinesalite.start()
        producing.result()

    run.all_published(timeout=180)
    run.no_dead_letters()
    assert metric(metric_samples(port), "outboxd_sink_up", sink="kinesis") == 1
    shards = kinesalite.shard_records(stream)
    records = [r for shard in shards.values() for r in shard]
    received = [structured_received(r["Data"]) for r in records]
    # Calls out when kinesalite stopped may have been stored without an answer: those come again.
    dup = run.check(received, max_duplicates=64)
    print(f"kinesis outage run: {len(records)} records, {dup} duplicates, "
          f"per shard {[len(v) for v in shards.values()]}")
    assert all(len(v) > 0 for v in shards.values()), "every shard gets keys"
    assert all(r["PartitionKey"] == ce["partitionkey"] for r, ce in ((r, ce_of(r)) for r in records))
    for r in received[:50]:
        check_ce(r.attrs, run.table)
    run.stop()


def test_a_record_over_1_mib_is_too_large_and_never_sent(kinesalite, sink_publish):
    stream = kinesalite.create_stream("oversize")
    proxy = FaultProxy(kinesalite.endpoint).start()
    try:
        big = msg("big", payload=oversize_payload(1024 * 1024).encode())
        run = sink_publish(kinesis(proxy.endpoint, stream), [msg("small"), big])
        small, over = run.results
        assert small["result"] == "ack", run
        assert over["result"] == "reject" and over["too_large"], run
        assert "over Kinesis's limit of 1048576 bytes" in over["error"]
        assert [ids for _, ids in ids_by_request(proxy)] == [["small"]]
        assert [ce_of(r)["id"] for r in kinesalite.read_all(stream)] == ["small"]
    finally:
        proxy.stop()


def test_a_stream_that_does_not_exist_is_a_rejection_dead_lettered_after_max_attempts(ddb, tmp_config, spawn_outboxd,
                                                                                      kinesalite, tmp_path):
    proxy = FaultProxy(kinesalite.endpoint).start()
    try:
        dlq = tmp_path / "dlq.jsonl"
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_kinesis_missing",
                        kinesis_sink(proxy.endpoint, "no-such-stream") + dlq_sink(dlq), default_sink="kinesis",
                        count=6, keys=3, relay={"max_attempts": 3, "dead_letter_sink": "dlq"})
        rows = run.produce()
        assert wait_until(lambda: len(run.dead_letters()) == 6, 60), run.daemon.output()[-4000:]
        for item in run.dead_letters():
            assert item["retryCount"]["N"] == "3"
            assert "PutRecords: ResourceNotFoundException" in item["lastError"]["S"], item["lastError"]
        sent = [i for _, ids in ids_by_request(proxy) for i in ids]
        assert {i: sent.count(i) for i, *_ in rows} == {i: 3 for i, *_ in rows}
        letters = lines_of(dlq)
        assert sorted(x["id"] for x in letters) == sorted(i for i, *_ in rows)
        assert all("ResourceNotFoundException" in x["deadletterreason"] for x in letters)
        run.stop()
    finally:
        proxy.stop()


def test_throttling_is_retried_and_a_partly_failed_call_fails_only_its_failed_records(ddb, tmp_config,
                                                                                    spawn_outboxd, kinesalite):
    stream = kinesalite.create_stream("throttled", shards=2)
    proxy = FaultProxy(kinesalite.endpoint).start()
    codes = iter(["ProvisionedThroughputExceededException", "InternalFailure"])
    failed = []

    def fail_first_record(answer, request):
        """Kinesis stored them all; the answer says the first one failed."""
        failed.append(json.loads(base64.b64decode(request["Records"][0]["Data"]))["id"])
        answer["Records"][0] = {"ErrorCode": next(codes), "ErrorMessage": "injected by the test"}
        answer["FailedRecordCount"] = answer.get("FailedRecordCount", 0) + 1
        return answer

    try:
        # Two calls throttled as a whole (the client's three tries each), then two answers
        # with their first record failed; max_attempts 3 would dead-letter a message that
        # each of these counted against.
        proxy.set_rules([Rule(match_target="PutRecords", action="throttle", times=6),
                         Rule(match_target="PutRecords", action="rewrite", rewrite=fail_first_record, times=2)])
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_kinesis_throttled",
                        kinesis_sink(proxy.endpoint, stream), count=40, keys=8, relay={"max_attempts": 3})
        rows = run.produce()
        run.all_published(timeout=60)
        run.no_dead_letters()
        assert proxy.count(target="PutRecords", action="throttle") == 6
        assert len(failed) == 2

        requests = ids_by_request(proxy)
        for n, (rewritten, ids) in enumerate(r for r in requests if r[0].action == "rewrite"):
            later = [i for r, more in requests if r.seq > rewritten.seq for i in more]
            assert ids[0] == failed[n] and failed[n] in later, "the failed record is sent again"
            assert not set(ids[1:]) & set(later), "the records stored are not"
        # Kinesis kept the failed records' first copies: they are the only duplicates.
        got = [ce_of(r)["id"] for r in kinesalite.read_all(stream, want=len(rows) + 2)]
        assert sorted(got) == sorted([i for i, *_ in rows] + failed)
        run.stop()
    finally:
        proxy.stop()


def test_partition_key_is_the_pk_or_the_digest_of_one_kinesis_cannot_take(kinesalite, sink_publish):
    stream = kinesalite.create_stream("partition-keys", shards=4)
    long_pk = "order-" + "x" * 300
    digest = "sha256:" + hashlib.sha256(long_pk.encode()).hexdigest()
    run = sink_publish(kinesis(kinesalite.endpoint, stream),
                       [msg("short", pk="key-1"), msg("long", pk=long_pk), msg("long-again", pk=long_pk),
                        msg("empty", pk="")])
    assert [r["result"] for r in run.results] == ["ack"] * 4, run
    shard_of, key_of, ce = {}, {}, {}
    for shard, records in kinesalite.shard_records(stream).items():
        for r in records:
            c = ce_of(r)
            shard_of[c["id"]], key_of[c["id"]], ce[c["id"]] = shard, r["PartitionKey"], c
    assert key_of == {"short": "key-1", "long": digest, "long-again": digest,
                      "empty": "sha256:" + hashlib.sha256(b"").hexdigest()}
    assert shard_of["long"] == shard_of["long-again"]
    assert ce["long"]["partitionkey"] == long_pk, "the CloudEvent keeps the pk"


def test_a_route_topic_names_the_stream_by_name_or_by_arn_of_the_sinks_region(kinesalite, sink_publish):
    kinesalite.create_stream("by-name")
    kinesalite.create_stream("by-arn")
    arn = f"arn:aws:kinesis:{REGION}:000000000000:stream/by-arn"
    run = sink_publish(kinesis(kinesalite.endpoint),
                       [msg("named", destination="by-name"), msg("arn", destination=arn),
                        msg("elsewhere", destination=arn.replace(REGION, "eu-west-1")),
                        msg("invalid", destination="by/slash"), msg("nowhere")])
    result = {r["sk"]: r for r in run.results}
    assert result["named"]["result"] == result["arn"]["result"] == "ack", run
    assert result["elsewhere"]["result"] == "reject" and "is in eu-west-1" in result["elsewhere"]["error"]
    assert result["invalid"]["result"] == "reject" and "neither a stream name" in result["invalid"]["error"]
    assert result["nowhere"]["result"] == "reject" and "no stream" in result["nowhere"]["error"]
    assert [ce_of(r)["id"] for r in kinesalite.read_all("by-name")] == ["named"]
    assert [ce_of(r)["id"] for r in kinesalite.read_all("by-arn")] == ["arn"]
