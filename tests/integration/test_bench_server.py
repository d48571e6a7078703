"""tests/bench/ddb_bench_server answers boto3 like DynamoDB and DynamoDB Streams do
for the calls outboxd makes, and bench_ceiling measures it.

The server is a benchmark instrument (tests/bench/README.md); these tests keep
its answers honest so a benchmark against it measures outboxd, not a
misbehaving stand-in.
"""

import json
import subprocess
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from harness import aws_client
from harness.bench_server import BenchServer, bench_path as _bench_path

SHARDS = 3
SEQ_WIDTH = 21
MARK_PUBLISHED = dict(
    UpdateExpression="SET isPublished = :t, publishedAt = :now, #ttl = :ttl REMOVE lastError",
    ConditionExpression="attribute_exists(pk) AND (isPublished = :f OR attribute_not_exists(isPublished))",
    ExpressionAttributeNames={"#ttl": "ttl"},
    ExpressionAttributeValues={":t": {"BOOL": True}, ":f": {"BOOL": False},
                               ":now": {"S": "2026-01-01T00:00:00.000Z"}, ":ttl": {"N": "1767830400"}},
)


def bench_path(name):
    try:
        return _bench_path(name)
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def server():
    s = BenchServer("--shards", str(SHARDS), "--seq-width", str(SEQ_WIDTH))
    try:
        yield s
    finally:
        status, err = s.stop()
        assert status == 0, err


@pytest.fixture(scope="module")
def ddb(server):
    return aws_client("dynamodb", server.endpoint, max_attempts=1)


@pytest.fixture(scope="module")
def streams(server):
    return aws_client("dynamodbstreams", server.endpoint, max_attempts=1)


def create_outbox(ddb, name):
    return ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]


def item(pk, sk, **extra):
    return {"pk": {"S": pk}, "sk": {"S": sk}, "payload": {"S": "eyJhIjoxfQ=="},
            "isPublished": {"BOOL": False}, **extra}


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def test_create_table_reports_an_active_table_with_its_stream(ddb):
    desc = create_outbox(ddb, "t_create")
    assert desc["LatestStreamArn"].startswith("arn:aws:dynamodb:us-east-1:")
    table = ddb.describe_table(TableName="t_create")["Table"]
    assert table["TableStatus"] == "ACTIVE"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "t_create" in ddb.list_tables()["TableNames"]
    ddb.update_time_to_live(TableName="t_create",
                            TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    ttl = ddb.describe_time_to_live(TableName="t_create")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    with pytest.raises(ClientError) as e:
        create_outbox(ddb, "t_create")
    assert error_code(e) == "ResourceInUseException"


def test_conditional_put_fails_on_an_existing_item(ddb):
    create_outbox(ddb, "t_put")
    ddb.put_item(TableName="t_put", Item=item("p", "1"), ConditionExpression="attribute_not_exists(sk)")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(TableName="t_put", Item=item("p", "1"), ConditionExpression="attribute_not_exists(sk)")
    got = ddb.get_item(TableName="t_put", Key={"pk": {"S": "p"}, "sk": {"S": "1"}}, ConsistentRead=True)
    assert got["Item"] == item("p", "1")


def test_mark_published_succeeds_once_then_fails_the_condition(ddb):
    create_outbox(ddb, "t_mark")
    ddb.put_item(TableName="t_mark", Item=item("p", "1", lastError={"S": "boom"}))
    key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
    r = ddb.update_item(TableName="t_mark", Key=key, ReturnConsumedCapacity="TOTAL", **MARK_PUBLISHED)
    assert r["ConsumedCapacity"] == {"TableName": "t_mark", "CapacityUnits": 1.0}
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(TableName="t_mark", Key=key, **MARK_PUBLISHED)
    got = ddb.get_item(TableName="t_mark", Key=key)["Item"]
    assert got["isPublished"] == {"BOOL": True} and got["ttl"] == {"N": "1767830400"}
    assert "lastError" not in got
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.update_item(TableName="t_mark", Key={"pk": {"S": "p"}, "sk": {"S": "missing"}}, **MARK_PUBLISHED)


def test_checkpoint_update_without_condition_creates_the_lease_item(ddb):
    ddb.create_table(TableName="t_leases", KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.update_item(TableName="t_leases", Key={"leaseKey": {"S": "shardId-1"}},
                    UpdateExpression="SET checkpoint = :c, checkpointAt = :t, streamArn = :a, parentShardIds = :p",
                    ExpressionAttributeValues={":c": {"S": "123"}, ":t": {"S": "now"}, ":a": {"S": "arn"},
                                               ":p": {"SS": ["shardId-0"]}})
    items = ddb.scan(TableName="t_leases", ConsistentRead=True)["Items"]
    assert items == [{"leaseKey": {"S": "shardId-1"}, "checkpoint": {"S": "123"}, "checkpointAt": {"S": "now"},
                      "streamArn": {"S": "arn"}, "parentShardIds": {"SS": ["shardId-0"]}}]


def test_batch_write_then_batch_get_with_projection(ddb):
    create_outbox(ddb, "t_batch")
    ddb.batch_write_item(RequestItems={"t_batch": [{"PutRequest": {"Item": item("p", str(i))}} for i in range(25)]})
    keys = [{"pk": {"S": "p"}, "sk": {"S": str(i)}} for i in (0, 7, 24)] + [{"pk": {"S": "x"}, "sk": {"S": "0"}}]
    r = ddb.batch_get_item(RequestItems={"t_batch": {"Keys": keys, "ConsistentRead": True,
                                                     "ProjectionExpression": "pk, sk, isPublished"}},
                           ReturnConsumedCapacity="TOTAL")
    assert r["UnprocessedKeys"] == {}
    got = sorted(r["Responses"]["t_batch"], key=lambda i: int(i["sk"]["S"]))
    assert got == [{"pk": {"S": "p"}, "sk": {"S": s}, "isPublished": {"BOOL": False}} for s in ("0", "7", "24")]
    assert r["ConsumedCapacity"][0]["TableName"] == "t_batch"


def test_unsupported_input_and_unknown_tables_are_rejected(ddb):
    create_outbox(ddb, "t_bad")
    with pytest.raises(ClientError) as e:
        ddb.update_item(TableName="t_bad", Key={"pk": {"S": "p"}, "sk": {"S": "1"}},
                        UpdateExpression="ADD n :one", ExpressionAttributeValues={":one": {"N": "1"}})
    assert error_code(e) == "ValidationException"
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName="nope", Key={"pk": {"S": "p"}, "sk": {"S": "1"}})
    assert error_code(e) == "ResourceNotFoundException"


def test_describe_stream_lists_every_shard_across_pages(ddb, streams):
    arn = create_outbox(ddb, "t_shards")["LatestStreamArn"]
    first = streams.describe_stream(StreamArn=arn, Limit=2)["StreamDescription"]
    assert first["StreamStatus"] == "ENABLED" and first["TableName"] == "t_shards"
    assert len(first["Shards"]) == 2 and first["LastEvaluatedShardId"] == first["Shards"][-1]["ShardId"]
    rest = streams.describe_stream(StreamArn=arn, Limit=2,
                                   ExclusiveStartShardId=first["LastEvaluatedShardId"])["StreamDescription"]
    assert len(rest["Shards"]) == SHARDS - 2 and "LastEvaluatedShardId" not in rest
    ids = [s["ShardId"] for s in first["Shards"] + rest["Shards"]]
    assert len(set(ids)) == SHARDS
    assert all("EndingSequenceNumber" not in s["SequenceNumberRange"] for s in first["Shards"] + rest["Shards"])


def records_of(streams, arn, pk, iterator_type="TRIM_HORIZON", **kw):
    """(shard id, records of pk) from the shard that holds pk's records."""
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType=iterator_type, **kw)["ShardIterator"]
        r = streams.get_records(ShardIterator=it, Limit=1000)
        assert r["NextShardIterator"]
        mine = [x for x in r["Records"] if x["dynamodb"]["Keys"]["pk"]["S"] == pk]
        if mine:
            return shard["ShardId"], mine
    return None, []


def test_records_come_in_order_with_new_and_old_images(ddb, streams):
    arn = create_outbox(ddb, "t_records")["LatestStreamArn"]
    ddb.put_item(TableName="t_records", Item=item("order-1", "a"))
    ddb.update_item(TableName="t_records", Key={"pk": {"S": "order-1"}, "sk": {"S": "a"}}, **MARK_PUBLISHED)
    shard, recs = records_of(streams, arn, "order-1")
    assert [r["eventName"] for r in recs] == ["INSERT", "MODIFY"]
    ins, mod = recs[0]["dynamodb"], recs[1]["dynamodb"]
    assert ins["NewImage"] == item("order-1", "a") and "OldImage" not in ins
    assert mod["OldImage"]["isPublished"] == {"BOOL": False} and mod["NewImage"]["isPublished"] == {"BOOL": True}
    assert ins["Keys"] == {"pk": {"S": "order-1"}, "sk": {"S": "a"}}
    assert ins["StreamViewType"] == "NEW_AND_OLD_IMAGES" and ins["SizeBytes"] > 0
    assert recs[0]["eventSource"] == "aws:dynamodb" and recs[0]["eventVersion"] == "1.1"
    assert recs[0]["awsRegion"] == "us-east-1" and recs[0]["eventID"] != recs[1]["eventID"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in recs]
    assert all(len(s) == SEQ_WIDTH and s.isdigit() for s in seqs) and int(seqs[0]) < int(seqs[1])

    _, after = records_of(streams, arn, "order-1", "AFTER_SEQUENCE_NUMBER", SequenceNumber=seqs[0])
    assert [r["dynamodb"]["SequenceNumber"] for r in after] == seqs[1:]
    _, at = records_of(streams, arn, "order-1", "AT_SEQUENCE_NUMBER", SequenceNumber=seqs[0])
    assert [r["dynamodb"]["SequenceNumber"] for r in at] == seqs
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    r = streams.get_records(ShardIterator=it)
    assert r["Records"] == [] and r["NextShardIterator"]
    ddb.delete_item(TableName="t_records", Key={"pk": {"S": "order-1"}, "sk": {"S": "a"}})
    r = streams.get_records(ShardIterator=r["NextShardIterator"])
    assert [x["eventName"] for x in r["Records"]] == ["REMOVE"]
    assert r["Records"][0]["dynamodb"]["OldImage"]["isPublished"] == {"BOOL": True}


def post_list_tables(endpoint):
    req = urllib.request.Request(endpoint + "/", data=b"{}", method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=5) as r:
        return json.loads(r.read())


def test_latency_delays_answers_without_serializing_them():
    s = BenchServer("--latency-ms", "100")
    try:
        t0 = time.monotonic()
        assert post_list_tables(s.endpoint) == {"TableNames": []}
        assert time.monotonic() - t0 >= 0.09
        threads = [threading.Thread(target=post_list_tables, args=(s.endpoint,)) for _ in range(10)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        assert 0.09 <= elapsed < 0.6, elapsed
    finally:
        status, err = s.stop()
    assert status == 0, err


def test_bench_ceiling_reports_its_rate_and_conflicts(server):
    def run(*extra):
        p = subprocess.run([bench_path("bench_ceiling"), server.endpoint, "t_ceiling", "2000", "8", *extra],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    first = run()
    assert first["ops"] == 2000 and first["conflicts"] == 0 and first["ops_per_s"] > 0 and first["seconds"] > 0
    again = run("--existing")
    assert again["conflicts"] == 2000
