"""Tests of the integration harness itself: each one behaviour."""

import json
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from harness import (DynamoDBLocal, FaultProxy, Rule, free_port, pid_alive,
                     processes_matching, raw_post, wait_port)

HERE = Path(__file__).resolve().parent


def make_table(client, name, stream=True):
    kw = {}
    if stream:
        kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    return client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **kw)




def test_free_port_and_wait_port():
    port = free_port()
    assert not wait_port(port, timeout=0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        assert wait_port(port, timeout=2)


def test_dynamodb_local_starts_creates_streamed_table_and_stops_without_leftover_jvm(tmp_path):
    inst = DynamoDBLocal(log_dir=tmp_path).start()
    pid, port = inst.pid, inst.port
    try:
        assert inst.endpoint == f"http://127.0.0.1:{port}"
        c = inst.client()
        desc = make_table(c, "harness_stream")["TableDescription"]
        assert desc["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        arn = desc["LatestStreamArn"]
        c.put_item(TableName="harness_stream", Item={"pk": {"S": "a"}})
        s = inst.streams_client()
        shards = s.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        assert len(shards) == 1
        it = s.get_shard_iterator(StreamArn=arn, ShardId=shards[0]["ShardId"],
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        recs = s.get_records(ShardIterator=it)["Records"]
        assert [r["eventName"] for r in recs] == ["INSERT"]
    finally:
        inst.stop()
    assert not pid_alive(pid)
    assert processes_matching("DynamoDBLocal.jar", f"-port\0{port}\0") == []
    assert not wait_port(port, timeout=0.2)


def test_dynamodb_local_dies_with_a_killed_parent(tmp_path):
    # The harness process is SIGKILLed (no atexit, no finalizers): the JVM must go too.
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from harness import DynamoDBLocal;"
            "d = DynamoDBLocal(log_dir=sys.argv[2]).start(); print(d.pid, d.port, flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(HERE), str(tmp_path)], stdout=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        jpid, port = map(int, line.split())
        assert pid_alive(jpid)
    finally:
        p.kill()
        p.wait()
    deadline = time.monotonic() + 10
    while pid_alive(jpid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(jpid)
    assert processes_matching("DynamoDBLocal.jar", f"-port\0{port}\0") == []


def test_dynamodb_local_stopped_at_interpreter_exit(tmp_path):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from harness import DynamoDBLocal;"
            "d = DynamoDBLocal(log_dir=sys.argv[2]).start(); print(d.pid, flush=True)")
    out = subprocess.run([sys.executable, "-c", code, str(HERE), str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not pid_alive(int(out.stdout))


def test_proxy_forwards_transparently_on_one_keepalive_connection(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    make_table(c, "harness_fwd", stream=False)
    for i in range(5):
        c.put_item(TableName="harness_fwd", Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    item = c.get_item(TableName="harness_fwd", Key={"pk": {"S": "k3"}})["Item"]
    assert item == {"pk": {"S": "k3"}, "v": {"N": "3"}}
    assert fault_proxy.count(target="PutItem", status=200, forwarded=True) == 5
    assert fault_proxy.count() == 7
    assert fault_proxy.connections == 1
    # and the data really went to DynamoDB Local
    assert "Item" in ddb.client().get_item(TableName="harness_fwd", Key={"pk": {"S": "k0"}})


def test_throttle_times_two_then_success(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    make_table(c, "harness_thr", stream=False)
    fault_proxy.set_rules([Rule(match_target="PutItem", action="throttle", times=2)])
    codes = []
    for _ in range(3):
        try:
            c.put_item(TableName="harness_thr", Item={"pk": {"S": "x"}})
            codes.append("ok")
        except ClientError as e:
            codes.append(e.response["Error"]["Code"])
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert codes == ["ProvisionedThroughputExceededException"] * 2 + ["ok"]
    assert fault_proxy.count(target="PutItem", action="throttle") == 2
    assert fault_proxy.count(target="PutItem", forwarded=True) == 1
    assert fault_proxy.count(target="CreateTable", action="pass") == 1


def test_throttle_is_retried_by_boto3_with_retries_on(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=3)
    make_table(c, "harness_retry", stream=False)
    fault_proxy.set_rules([Rule(match_target="PutItem", action="throttling", times=2)])
    c.put_item(TableName="harness_retry", Item={"pk": {"S": "x"}})
    recs = fault_proxy.select(target="PutItem")
    assert [r.status for r in recs] == [400, 400, 200]
    assert [r.error_type for r in recs] == ["ThrottlingException", "ThrottlingException", None]
    assert all(g > 0 for g in fault_proxy.gaps(target="PutItem"))


def test_reset_gives_a_connection_error(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    fault_proxy.set_rules([Rule(match_target="ListTables", action="reset", times=1)])
    with pytest.raises((ConnectionClosedError, HTTPClientError, BotoConnectionError)):
        c.list_tables()
    c.list_tables()             # the rule is used up: next call passes
    assert [(r.action, r.status, r.forwarded) for r in fault_proxy.requests] == \
        [("reset", "reset", False), ("pass", 200, True)]


def test_reset_is_a_real_rst(ddb, fault_proxy):
    fault_proxy.set_rules([Rule(action="reset")])
    with pytest.raises(ConnectionResetError):
        raw_post(fault_proxy.port, "DynamoDB_20120810.ListTables")


def test_reset_after_forwards_then_resets(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    make_table(c, "harness_ra", stream=False)
    fault_proxy.set_rules([Rule(match_target="PutItem", action="reset_after", times=1)])
    with pytest.raises((ConnectionClosedError, HTTPClientError, BotoConnectionError)):
        c.put_item(TableName="harness_ra", Item={"pk": {"S": "written"}})
    assert "Item" in c.get_item(TableName="harness_ra", Key={"pk": {"S": "written"}})
    assert fault_proxy.count(target="PutItem", status="reset", forwarded=True) == 1


def test_delay_adds_latency(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    c.list_tables()
    t0 = time.monotonic()
    c.list_tables()
    base = time.monotonic() - t0
    fault_proxy.set_rules([Rule(match_target="ListTables", action="delay", delay_ms=400)])
    t0 = time.monotonic()
    c.list_tables()
    slow = time.monotonic() - t0
    assert slow >= 0.4
    assert slow - base >= 0.35
    rec = fault_proxy.requests[-1]
    assert rec.action == "delay" and rec.forwarded and rec.status == 200 and rec.duration >= 0.4


def test_request_log_records_targets_statuses_and_error_bodies(ddb, fault_proxy):
    fault_proxy.set_rules([
        Rule(match_target="DescribeTable", action="error", error_type="ValidationException", times=1),
        Rule(match_target="ListTables", action="status", status=503, times=1),
        Rule(match_target="DynamoDBStreams_20120810.ListStreams", action="status", status=500),
    ])
    st, head, body = raw_post(fault_proxy.port, "DynamoDB_20120810.DescribeTable", b'{"TableName":"nope"}')
    assert st == 400
    doc = json.loads(body)
    assert doc["__type"] == "com.amazonaws.dynamodb.v20120810#ValidationException" and doc["message"]
    crc = [l for l in head.split(b"\r\n") if l.lower().startswith(b"x-amz-crc32:")]
    assert crc and int(crc[0].split(b":")[1]) == zlib.crc32(body)
    assert raw_post(fault_proxy.port, "DynamoDB_20120810.ListTables")[0] == 503
    assert raw_post(fault_proxy.port, "DynamoDB_20120810.ListTables")[0] == 200
    st, _, body = raw_post(fault_proxy.port, "DynamoDBStreams_20120810.ListStreams")
    assert st == 500 and json.loads(body)["__type"].endswith("#InternalServerError")
    st, _, body = raw_post(fault_proxy.port, "DynamoDB_20120810.DescribeTable", b'{"TableName":"nope"}')
    assert st == 400 and json.loads(body)["__type"].endswith("#ResourceNotFoundException")

    log = fault_proxy.requests
    assert [(r.target, r.action, r.status, r.forwarded) for r in log] == [
        ("DescribeTable", "error", 400, False),
        ("ListTables", "status", 503, False),
        ("ListTables", "pass", 200, True),
        ("ListStreams", "status", 500, False),
        ("DescribeTable", "pass", 400, True),
    ]
    assert [r.error_type for r in log] == ["ValidationException", "ServiceUnavailable", None,
                                           "InternalServerError", "ResourceNotFoundException"]
    assert [r.seq for r in log] == [1, 2, 3, 4, 5]
    assert all(a.start <= b.start for a, b in zip(log, log[1:]))
    assert all(r.end >= r.start for r in log)
    assert fault_proxy.count(target="ListTables") == 2
    assert fault_proxy.count(status=503) == 1
    assert fault_proxy.count(target="DynamoDBStreams_20120810.ListStreams") == 1
    assert len(fault_proxy.gaps(target="ListTables")) == 1
    fault_proxy.clear_log()
    assert fault_proxy.requests == []


def test_probability_rule_is_reproducible_with_a_seed(ddb, fault_proxy):
    def pattern():
        fault_proxy.set_rules([Rule(action="status", status=500, probability=0.5, seed=42)])
        fault_proxy.clear_log()
        for _ in range(20):
            raw_post(fault_proxy.port, "DynamoDB_20120810.ListTables")
        return [r.status for r in fault_proxy.requests]
    first = pattern()
    assert first == pattern()
    assert 0 < first.count(500) < 20


def test_match_body_selects_one_item(ddb, fault_proxy):
    c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
    make_table(c, "harness_body", stream=False)
    fault_proxy.set_rules([Rule(match_target="PutItem", match_body='"poison"', action="error",
                                error_type="ValidationException")])
    c.put_item(TableName="harness_body", Item={"pk": {"S": "fine"}})
    with pytest.raises(ClientError) as ei:
        c.put_item(TableName="harness_body", Item={"pk": {"S": "poison"}})
    assert ei.value.response["Error"]["Code"] == "ValidationException"


def test_wait_for_and_concurrent_clients(ddb, fault_proxy):
    import threading
    errors = []

    def worker():
        try:
            c = ddb.client(endpoint=fault_proxy.endpoint, max_attempts=1)
            for _ in range(5):
                c.list_tables()
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)
    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    assert fault_proxy.wait_for(20, timeout=30, target="ListTables") == 20
    for t in ts:
        t.join()
    assert errors == []
    assert fault_proxy.connections == 4


def test_proxy_stop_closes_port(ddb):
    p = FaultProxy(ddb.endpoint).start()
    port = p.port
    assert wait_port(port, timeout=1)
    p.stop()
    assert not wait_port(port, timeout=0.3)


def test_tmp_config_writes_dict_and_text(tmp_config):
    import yaml
    p = tmp_config({"aws": {"region": "us-east-1", "endpoint": "http://127.0.0.1:1"},
                    "stream": {"poll_interval": "250ms", "batch_size": 100}})
    assert p.name == "outboxd.yaml" and p.is_file()
    assert yaml.safe_load(p.read_text())["stream"] == {"poll_interval": "250ms", "batch_size": 100}
    q = tmp_config("""
        table:
          name: outbox
        """, name="other.yaml")
    assert q.read_text() == "table:\n  name: outbox\n"
