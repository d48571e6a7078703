"""Tests of the shard topology proxy (harness/topology_proxy.py): each one behaviour."""

import json
import re
import time
import uuid
from itertools import count

import pytest
from botocore.exceptions import ClientError

from harness import raw_post

SHARD_ID_RE = re.compile(r"^shardId-\d{20}-[0-9a-f]{8}$")
_names = count()


def _table_name():
    return f"topo_{next(_names)}_{uuid.uuid4().hex[:6]}"


def make_table(client, name):
    return client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]


def batch_put(client, table, items):
    """Put items (dicts pk -> str, v -> int) with batch_write_item, 25 per call."""
    reqs = [{"PutRequest": {"Item": {"pk": {"S": it["pk"]}, "v": {"N": str(it["v"])}}}} for it in items]
    for i in range(0, len(reqs), 25):
        pending = {table: reqs[i:i + 25]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or None


def put_keys(client, table, keys, v=0):
    batch_put(client, table, [{"pk": k, "v": v} for k in keys])


def list_shards(s, arn, limit=None):
    shards, start, pages = [], None, 0
    while True:
        kw = {"StreamArn": arn}
        if start:
            kw["ExclusiveStartShardId"] = start
        if limit:
            kw["Limit"] = limit
        d = s.describe_stream(**kw)["StreamDescription"]
        pages += 1
        shards += d["Shards"]
        start = d.get("LastEvaluatedShardId")
        if not start:
            return shards, pages


def read_shard(s, arn, shard_id, typ="TRIM_HORIZON", seq=None, limit=None):
    """Read one shard until a closed shard ends (no NextShardIterator) or an open one is idle.
    Returns (records, last response)."""
    kw = {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": typ}
    if seq is not None:
        kw["SequenceNumber"] = seq
    it = s.get_shard_iterator(**kw)["ShardIterator"]
    out = []
    while True:
        resp = s.get_records(ShardIterator=it, **({"Limit": limit} if limit else {}))
        out += resp["Records"]
        it = resp.get("NextShardIterator")
        if it is None or not resp["Records"]:
            return out, resp


def read_all(s, arn):
    """{shard id: records} for every shard, parents before children."""
    shards, _ = list_shards(s, arn)
    return {sh["ShardId"]: read_shard(s, arn, sh["ShardId"])[0] for sh in shards}, shards


def seqn(rec):
    return int(rec["dynamodb"]["SequenceNumber"])


@pytest.fixture
def setup(ddb, topology_proxy):
    """setup(**proxy_kwargs) -> (proxy, ddb client via proxy, streams client via proxy, table, arn)."""
    def make(**kw):
        proxy = topology_proxy(**kw)
        c = ddb.client(endpoint=proxy.endpoint, max_attempts=1)
        s = ddb.streams_client(endpoint=proxy.endpoint, max_attempts=1)
        name = _table_name()
        arn = make_table(c, name)["LatestStreamArn"]
        return proxy, c, s, name, arn
    return make


def test_presents_eight_root_shards_with_upstream_stream_fields(ddb, setup):
    proxy, c, s, name, arn = setup(shards=8)
    d = s.describe_stream(StreamArn=arn)["StreamDescription"]
    up = ddb.streams_client().describe_stream(StreamArn=arn)["StreamDescription"]
    assert len(up["Shards"]) == 1
    assert len(d["Shards"]) == 8
    for k in ("StreamArn", "StreamLabel", "StreamStatus", "StreamViewType", "CreationRequestDateTime",
              "TableName", "KeySchema"):
        assert d[k] == up[k], k
    assert d["StreamStatus"] == "ENABLED" and d["TableName"] == name
    assert "LastEvaluatedShardId" not in d
    start = up["Shards"][0]["SequenceNumberRange"]["StartingSequenceNumber"]
    for sh in d["Shards"]:
        assert SHARD_ID_RE.match(sh["ShardId"]), sh["ShardId"]
        assert "ParentShardId" not in sh
        assert sh["SequenceNumberRange"] == {"StartingSequenceNumber": start}
    assert len({sh["ShardId"] for sh in d["Shards"]}) == 8
    ranges = sorted(x["hash_range"] for x in proxy.shards())
    assert ranges[0][0] == 0 and ranges[-1][1] == 1 << 32
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_describe_stream_pagination_lists_every_shard_once(setup):
    proxy, c, s, name, arn = setup(shards=8, split_every=10, page_size=3)
    put_keys(c, name, [f"p{i}" for i in range(30)])
    assert proxy.wait_records(30) == 30
    want = [x["id"] for x in proxy.shards()]
    assert len(want) == 8 + 3 * 2                   # three partition splits
    shards, pages = list_shards(s, arn)
    ids = [sh["ShardId"] for sh in shards]
    assert ids == want                              # creation order, each exactly once
    assert pages == -(-len(want) // 3)
    first = s.describe_stream(StreamArn=arn)["StreamDescription"]
    assert len(first["Shards"]) == 3 and first["LastEvaluatedShardId"] == ids[2]
    two = s.describe_stream(StreamArn=arn, Limit=2, ExclusiveStartShardId=ids[2])["StreamDescription"]
    assert [x["ShardId"] for x in two["Shards"]] == ids[3:5]
    # parents are listed before their children
    pos = {i: n for n, i in enumerate(ids)}
    for sh in shards:
        if "ParentShardId" in sh:
            assert pos[sh["ParentShardId"]] < pos[sh["ShardId"]]


def test_records_of_one_key_land_in_one_shard(setup):
    proxy, c, s, name, arn = setup(shards=8, split_every=0)
    keys = [f"key-{i}" for i in range(12)]
    for v in range(3):
        put_keys(c, name, keys, v=v)
    assert proxy.wait_records(36) == 36
    by_shard, _ = read_all(s, arn)
    where = {}
    for sid, recs in by_shard.items():
        for r in recs:
            where.setdefault(r["dynamodb"]["Keys"]["pk"]["S"], set()).add(sid)
        assert [seqn(r) for r in recs] == sorted(seqn(r) for r in recs)
    assert sorted(where) == sorted(keys)
    assert all(len(v) == 1 for v in where.values()), where
    assert len({next(iter(v)) for v in where.values()}) > 1     # spread over several shards
    for k in keys:
        sid = next(iter(where[k]))
        evs = [r for r in by_shard[sid] if r["dynamodb"]["Keys"]["pk"]["S"] == k]
        assert [r["eventName"] for r in evs] == ["INSERT", "MODIFY", "MODIFY"]
        assert sid == proxy.shard_for_key(k)


def test_split_closes_busiest_shard_and_children_name_their_parent(setup):
    proxy, c, s, name, arn = setup(shards=4, split_every=50)
    put_keys(c, name, [f"s{i}" for i in range(100)])
    assert proxy.wait_records(100) == 100
    shards, _ = list_shards(s, arn)
    closed = [sh for sh in shards if "EndingSequenceNumber" in sh["SequenceNumberRange"]]
    assert len(closed) == 2 and len(shards) == 4 + 2 * 2
    info = {x["id"]: x for x in proxy.shards()}
    for parent in closed:
        pid = parent["ShardId"]
        end = parent["SequenceNumberRange"]["EndingSequenceNumber"]
        recs = proxy.shard_records(pid)
        assert recs and recs[-1]["dynamodb"]["SequenceNumber"] == end
        kids = [sh for sh in shards if sh.get("ParentShardId") == pid]
        assert len(kids) == 2
        for k in kids:
            st = k["SequenceNumberRange"]["StartingSequenceNumber"]
            assert "EndingSequenceNumber" not in k["SequenceNumberRange"]
            assert int(st) > int(end) and len(st) == len(end)
            assert all(seqn(r) >= int(st) for r in proxy.shard_records(k["ShardId"]))
        lo, hi = info[pid]["hash_range"]
        assert sorted(info[k["ShardId"]]["hash_range"] for k in kids) == [(lo, (lo + hi) // 2),
                                                                          ((lo + hi) // 2, hi)]
    # the first split closed the shard that had received the most records by then
    shard_of = {seqn(r): x for x in info for r in proxy.shard_records(x)}
    counts = {}
    for r in proxy.records()[:50]:
        counts[shard_of[seqn(r)]] = counts.get(shard_of[seqn(r)], 0) + 1
    best = min(counts, key=lambda k: (-counts[k], k))
    assert closed[0]["ShardId"] == best


def test_rotation_when_max_open_is_reached(setup):
    proxy, c, s, name, arn = setup(shards=2, max_open=2, split_every=0)
    put_keys(c, name, ["r1", "r2", "r3"])
    assert proxy.wait_records(3) == 3
    old, kids = proxy.split_now()
    assert len(kids) == 1
    info = {x["id"]: x for x in proxy.shards()}
    assert info[kids[0]]["hash_range"] == info[old]["hash_range"] and info[kids[0]]["parent"] == old
    assert sum(1 for x in info.values() if not x["closed"]) == 2


def test_closed_shard_read_to_its_end_has_no_next_iterator(setup):
    proxy, c, s, name, arn = setup(shards=2, split_every=0)
    put_keys(c, name, [f"c{i}" for i in range(10)])
    assert proxy.wait_records(10) == 10
    old, kids = proxy.split_now()
    n = len(proxy.shard_records(old))
    assert n >= 1
    recs, last = read_shard(s, arn, old, limit=3)
    assert len(recs) == n
    assert "NextShardIterator" not in last
    assert proxy.read_log()[-1][1:] == (old, n % 3 or 3, True)
    # an open shard with nothing new: empty Records and a fresh iterator
    it = s.get_shard_iterator(StreamArn=arn, ShardId=kids[0], ShardIteratorType="LATEST")["ShardIterator"]
    resp = s.get_records(ShardIterator=it)
    assert resp["Records"] == [] and resp["NextShardIterator"] and resp["NextShardIterator"] != it


def test_at_after_sequence_number_and_latest_positioning(setup):
    proxy, c, s, name, arn = setup(shards=1, split_every=0)
    put_keys(c, name, [f"a{i}" for i in range(5)])
    assert proxy.wait_records(5) == 5
    sid = proxy.shards()[0]["id"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in proxy.shard_records(sid)]
    at, _ = read_shard(s, arn, sid, "AT_SEQUENCE_NUMBER", seqs[2])
    assert [r["dynamodb"]["SequenceNumber"] for r in at] == seqs[2:]
    after, _ = read_shard(s, arn, sid, "AFTER_SEQUENCE_NUMBER", seqs[2])
    assert [r["dynamodb"]["SequenceNumber"] for r in after] == seqs[3:]
    after_last, _ = read_shard(s, arn, sid, "AFTER_SEQUENCE_NUMBER", seqs[-1])
    assert after_last == []
    latest = s.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="LATEST")["ShardIterator"]
    put_keys(c, name, ["a-new"])
    assert proxy.wait_records(6) == 6
    recs = s.get_records(ShardIterator=latest)["Records"]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in recs] == ["a-new"]


def test_unknown_shard_is_resource_not_found(ddb, setup):
    proxy, c, s, name, arn = setup(shards=2)
    with pytest.raises(ClientError) as e:
        s.get_shard_iterator(StreamArn=arn, ShardId="shardId-00000000000000000000-00000000",
                             ShardIteratorType="TRIM_HORIZON")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # raw body in the AWS error JSON shape
    body = json.dumps({"StreamArn": arn, "ShardId": "shardId-00000000000000000000-00000000",
                       "ShardIteratorType": "TRIM_HORIZON"}).encode()
    status, _, payload = raw_post(proxy.port, "DynamoDBStreams_20120810.GetShardIterator", body)
    assert status == 400
    assert json.loads(payload)["__type"] == "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"


def test_expire_iterators_gives_expired_iterator_exception(setup):
    proxy, c, s, name, arn = setup(shards=1)
    put_keys(c, name, ["e1"])
    assert proxy.wait_records(1) == 1
    sid = proxy.shards()[0]["id"]
    it = s.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    proxy.expire_iterators()
    with pytest.raises(ClientError) as e:
        s.get_records(ShardIterator=it)
    assert e.value.response["Error"]["Code"] == "ExpiredIteratorException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    it2 = s.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert len(s.get_records(ShardIterator=it2)["Records"]) == 1


def test_iterator_older_than_ttl_expires(setup):
    proxy, c, s, name, arn = setup(shards=1, iterator_ttl=0.3)
    sid = s.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = s.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    nxt = s.get_records(ShardIterator=it)["NextShardIterator"]      # fresh: works
    time.sleep(0.4)
    with pytest.raises(ClientError) as e:
        s.get_records(ShardIterator=nxt)
    assert e.value.response["Error"]["Code"] == "ExpiredIteratorException"


def test_trimmed_data_access(setup):
    proxy, c, s, name, arn = setup(shards=1, split_every=0)
    put_keys(c, name, [f"t{i}" for i in range(10)])
    assert proxy.wait_records(10) == 10
    sid = proxy.shards()[0]["id"]
    seqs = [r["dynamodb"]["SequenceNumber"] for r in proxy.shard_records(sid)]
    old_it = s.get_shard_iterator(StreamArn=arn, ShardId=sid,
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert proxy.trim(4) == int(seqs[3])
    with pytest.raises(ClientError) as e:
        s.get_records(ShardIterator=old_it)
    assert e.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    for typ, seq in (("AT_SEQUENCE_NUMBER", seqs[3]), ("AFTER_SEQUENCE_NUMBER", seqs[1])):
        with pytest.raises(ClientError) as e:
            s.get_shard_iterator(StreamArn=arn, ShardId=sid, ShardIteratorType=typ, SequenceNumber=seq)
        assert e.value.response["Error"]["Code"] == "TrimmedDataAccessException"
    # AFTER the last trimmed record is fine, and TRIM_HORIZON starts after the trim point
    after, _ = read_shard(s, arn, sid, "AFTER_SEQUENCE_NUMBER", seqs[3])
    assert [r["dynamodb"]["SequenceNumber"] for r in after] == seqs[4:]
    horizon, _ = read_shard(s, arn, sid)
    assert [r["dynamodb"]["SequenceNumber"] for r in horizon] == seqs[4:]


def test_fully_trimmed_closed_shard_disappears(setup):
    proxy, c, s, name, arn = setup(shards=1, split_every=0)
    put_keys(c, name, ["h1", "h2"])
    assert proxy.wait_records(2) == 2
    old, kids = proxy.split_now()
    put_keys(c, name, ["h3"])
    assert proxy.wait_records(3) == 3
    proxy.trim(2)
    shards, _ = list_shards(s, arn)
    assert [sh["ShardId"] for sh in shards] == kids and shards[0]["ParentShardId"] == old
    with pytest.raises(ClientError) as e:
        s.get_shard_iterator(StreamArn=arn, ShardId=old, ShardIteratorType="TRIM_HORIZON")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_dynamodb_calls_pass_through(ddb, setup):
    proxy, c, s, name, arn = setup(shards=2)
    direct = ddb.client()
    c.put_item(TableName=name, Item={"pk": {"S": "x"}, "v": {"N": "1"}})
    assert direct.get_item(TableName=name, Key={"pk": {"S": "x"}})["Item"]["v"] == {"N": "1"}
    r = c.update_item(TableName=name, Key={"pk": {"S": "x"}}, UpdateExpression="SET v = v + :one",
                      ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
    assert r["Attributes"]["v"] == {"N": "2"}
    assert c.get_item(TableName=name, Key={"pk": {"S": "x"}}, ConsistentRead=True)["Item"]["v"] == {"N": "2"}
    via, real = c.describe_table(TableName=name)["Table"], direct.describe_table(TableName=name)["Table"]
    assert via["LatestStreamArn"] == real["LatestStreamArn"] == arn
    assert via["KeySchema"] == real["KeySchema"]
    with pytest.raises(ClientError) as e:
        c.put_item(TableName=name, Item={"pk": {"S": "x"}}, ConditionExpression="attribute_not_exists(pk)")
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    arns = [x["StreamArn"] for x in s.list_streams(TableName=name)["Streams"]]
    assert arns == [arn]
    # keep-alive: the two boto3 clients used one connection each for all those calls
    assert proxy.connections == 2


def test_union_of_shards_equals_upstream_stream(ddb, setup):
    proxy, c, s, name, arn = setup(shards=4, split_every=25, max_open=6)
    keys = [f"u{i}" for i in range(40)]
    put_keys(c, name, keys, v=0)                      # 40 INSERT
    put_keys(c, name, keys[:30], v=1)                 # 30 MODIFY
    for i in range(0, 10, 5):
        c.batch_write_item(RequestItems={name: [{"DeleteRequest": {"Key": {"pk": {"S": k}}}}
                                                for k in keys[i:i + 5]]})   # 10 REMOVE
    assert proxy.wait_records(80) == 80
    # upstream read directly
    up_s = ddb.streams_client()
    up_shards = up_s.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    upstream, _ = read_shard(up_s, arn, up_shards[0]["ShardId"])
    assert len(upstream) == 80
    by_shard, shards = read_all(s, arn)
    assert len(shards) > 4 and any("ParentShardId" in sh for sh in shards)
    flat = [r for recs in by_shard.values() for r in recs]
    assert len(flat) == len(upstream)
    assert sorted(flat, key=seqn) == upstream               # same records, unchanged, none twice
    for recs in by_shard.values():
        assert [seqn(r) for r in recs] == sorted(seqn(r) for r in recs)
    assert {r["eventName"] for r in flat} == {"INSERT", "MODIFY", "REMOVE"}
    # within each shard's range: every record's seq lies in [start, end]
    for sh in shards:
        rng = sh["SequenceNumberRange"]
        for r in by_shard[sh["ShardId"]]:
            assert seqn(r) >= int(rng["StartingSequenceNumber"])
            if "EndingSequenceNumber" in rng:
                assert seqn(r) <= int(rng["EndingSequenceNumber"])
