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
import hashlib
import json

from broker_contract import BrokerRun, by_sk, ce_id, check_ce, message, oversize_payload, structured_received
from harness.fault_proxy import FaultProxy, Rule
from relay_util import sink_yaml

REGION = "us-east-1"


def kinesis_sink(endpoint, stream=None):
    """The kinesis sink's keys: sink_publish's options, sink_yaml's for the relay."""
    return {"type": "kinesis", "endpoint": endpoint, **({"stream_name": stream} if stream else {})}


def kinesis_run(ddb, tmp_config, spawn_outboxd, table, endpoint, stream, **kw):
    """A BrokerRun of the kinesis sink on endpoint and stream."""
    return BrokerRun(ddb, tmp_config, spawn_outboxd, table, sink_yaml("kinesis", kinesis_sink(endpoint, stream)),
                     default_sink="kinesis", **kw)


def ids_by_request(proxy, **filters):
    """(record, [CloudEvent id of each record it carried]) of each PutRecords request the
    proxy saw, in order of arrival."""
    out = []
    for r in proxy.select(target="PutRecords", **filters):
        body = json.loads(r.body)
        out.append((r, [ce_id(base64.b64decode(x["Data"])) for x in body["Records"]]))
    return out


def test_5000_messages_over_50_keys_arrive_once_in_key_order_through_a_30s_outage(ddb, tmp_config, spawn_outboxd,
                                                                                 kinesalite):
    stream = kinesalite.create_stream("outbox-events", shards=4)
    run = kinesis_run(ddb, tmp_config, spawn_outboxd, "outbox_kinesis", kinesalite.endpoint, stream)
    run.through_an_outage(kinesalite)
    shards = kinesalite.shard_records(stream)
    records = [r for shard in shards.values() for r in shard]
    received = [structured_received(r["Data"]) for r in records]
    # Calls out when kinesalite stopped may have been stored without an answer: those come again.
    dup = run.check(received, max_duplicates=64)
    print(f"kinesis: {run.count} messages through a 30 s outage, {dup} repeated, "
          f"per shard {[len(v) for v in shards.values()]}")
    assert all(len(v) > 0 for v in shards.values()), "every shard gets keys"
    for record, r in zip(records, received):
        assert record["PartitionKey"] == r.key
        check_ce(r.attrs, run.table)
    run.stop()


def test_a_record_over_1_mib_is_too_large_and_never_sent(kinesalite, sink_publish):
    stream = kinesalite.create_stream("oversize")
    with FaultProxy(kinesalite.endpoint) as proxy:
        run = sink_publish(kinesis_sink(proxy.endpoint, stream),
                           [message("small"), message("big", payload=oversize_payload(1024 * 1024))])
        small, over = run.results
        assert small["result"] == "ack", run
        assert over["result"] == "reject" and over["too_large"], run
        assert "over Kinesis's limit of 1048576 bytes" in over["error"]
        assert [ids for _, ids in ids_by_request(proxy)] == [["small"]]
        assert [ce_id(r["Data"]) for r in kinesalite.read_all(stream)] == ["small"]


def test_a_stream_that_does_not_exist_is_a_rejection_dead_lettered_after_max_attempts(ddb, tmp_config, spawn_outboxd,
                                                                                      kinesalite, tmp_path):
    with FaultProxy(kinesalite.endpoint) as proxy:
        run = kinesis_run(ddb, tmp_config, spawn_outboxd, "outbox_kinesis_missing", proxy.endpoint, "no-such-stream",
                          count=6, keys=3, dlq=tmp_path / "dlq.jsonl", relay={"max_attempts": 3})
        run.produce()
        run.check_rejected(run.ids(), 3, "PutRecords: ResourceNotFoundException")
        sent = [i for _, ids in ids_by_request(proxy) for i in ids]
        assert {i: sent.count(i) for i in run.ids()} == {i: 3 for i in run.ids()}
        run.stop()


def test_throttling_is_retried_and_a_partly_failed_call_fails_only_its_failed_records(ddb, tmp_config,
                                                                                    spawn_outboxd, kinesalite):
    stream = kinesalite.create_stream("throttled", shards=2)
    codes = iter(["ProvisionedThroughputExceededException", "InternalFailure"])
    failed = []

    def fail_first_record(answer, request):
        """Kinesis stored them all; the answer says the first one failed."""
        failed.append(ce_id(base64.b64decode(request["Records"][0]["Data"])))
        answer["Records"][0] = {"ErrorCode": next(codes), "ErrorMessage": "injected by the test"}
        answer["FailedRecordCount"] = answer.get("FailedRecordCount", 0) + 1
        return answer

    # Two calls throttled as a whole (the client's three tries each), then two answers
    # with their first record failed; max_attempts 3 would dead-letter a message that
    # each of these counted against.
    rules = [Rule(match_target="PutRecords", action="throttle", times=6),
             Rule(match_target="PutRecords", action="rewrite", rewrite=fail_first_record, times=2)]
    with FaultProxy(kinesalite.endpoint, rules=rules) as proxy:
        run = kinesis_run(ddb, tmp_config, spawn_outboxd, "outbox_kinesis_throttled", proxy.endpoint, stream,
                          count=40, keys=8, relay={"max_attempts": 3})
        run.produce()
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
        got = [ce_id(r["Data"]) for r in kinesalite.read_all(stream, want=run.count + 2)]
        assert sorted(got) == sorted(run.ids() + failed)
        run.stop()


def test_partition_key_is_the_pk_or_the_digest_of_one_kinesis_cannot_take(kinesalite, sink_publish):
    stream = kinesalite.create_stream("partition-keys", shards=4)
    long_pk = "order-" + "x" * 300
    digest = "sha256:" + hashlib.sha256(long_pk.encode()).hexdigest()
    run = sink_publish(kinesis_sink(kinesalite.endpoint, stream),
                       [message("short", pk="key-1"), message("long", pk=long_pk), message("long-again", pk=long_pk),
                        message("empty", pk="")])
    assert [r["result"] for r in run.results] == ["ack"] * 4, run
    shard_of, key_of, ce = {}, {}, {}
    for shard, records in kinesalite.shard_records(stream).items():
        for r in records:
            c = json.loads(r["Data"])
            shard_of[c["id"]], key_of[c["id"]], ce[c["id"]] = shard, r["PartitionKey"], c
    assert key_of == {"short": "key-1", "long": digest, "long-again": digest,
                      "empty": "sha256:" + hashlib.sha256(b"").hexdigest()}
    assert shard_of["long"] == shard_of["long-again"]
    assert ce["long"]["partitionkey"] == long_pk, "the CloudEvent keeps the pk"


def test_a_route_topic_names_the_stream_by_name_or_by_arn_of_the_sinks_region(kinesalite, sink_publish):
    kinesalite.create_stream("by-name")
    kinesalite.create_stream("by-arn")
    arn = f"arn:aws:kinesis:{REGION}:000000000000:stream/by-arn"
    run = sink_publish(kinesis_sink(kinesalite.endpoint),
                       [message("named", destination="by-name"), message("arn", destination=arn),
                        message("elsewhere", destination=arn.replace(REGION, "eu-west-1")),
                        message("invalid", destination="by/slash"), message("nowhere")])
    result = by_sk(run.results)
    assert result["named"]["result"] == result["arn"]["result"] == "ack", run
    assert result["elsewhere"]["result"] == "reject" and "is in eu-west-1" in result["elsewhere"]["error"]
    assert result["invalid"]["result"] == "reject" and "neither a stream name" in result["invalid"]["error"]
    assert result["nowhere"]["result"] == "reject" and "no stream" in result["nowhere"]["error"]
    assert [ce_id(r["Data"]) for r in kinesalite.read_all("by-name")] == ["named"]
    assert [ce_id(r["Data"]) for r in kinesalite.read_all("by-arn")] == ["arn"]
