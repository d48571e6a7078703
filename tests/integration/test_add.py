"""`outboxd add` and the producer API write SPEC §2 items that other clients read."""

import base64
import json
import re
import subprocess
import time

import pytest

from outboxd_config import ddb_config, tool, tool_env
from relay_util import create_outbox_table

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def table(ddb):
    return create_outbox_table(ddb, "outbox")


@pytest.fixture
def config(ddb, table, tmp_config):
    return tmp_config(ddb_config(ddb.endpoint, table=table))


def get(ddb, pk, sk):
    return ddb.client().get_item(TableName="outbox", Key={"pk": {"S": pk}, "sk": {"S": sk}},
                                 ConsistentRead=True).get("Item")


def test_add_writes_every_attribute_with_exact_names_and_types(ddb, config, run_outboxd):
    before = time.time()
    r = run_outboxd("add", "-c", config, "--type", "OrderPlaced", "--payload", '{"total":42}',
                    "--partition-key", "order-42", "--aggregate-id", "42", "--aggregate-type", "Order",
                    "--correlation-id", "corr-1", "--causation-id", "cause-1",
                    "--header", "content-type=application/json", "--header", "tenant=acme")
    assert r.returncode == 0, r.stderr
    msg_id = r.stdout.strip()
    assert UUID7.match(msg_id), msg_id

    item = get(ddb, "order-42", msg_id)
    assert item["pk"] == {"S": "order-42"}
    assert item["sk"] == {"S": msg_id}
    assert item["messageType"] == {"S": "OrderPlaced"}
    assert base64.b64decode(item["payload"]["S"]) == b'{"total":42}'
    assert json.loads(item["headers"]["S"]) == {"content-type": "application/json", "tenant": "acme"}
    assert item["aggregateId"] == {"S": "42"}
    assert item["aggregateType"] == {"S": "Order"}
    assert item["correlationId"] == {"S": "corr-1"}
    assert item["causationId"] == {"S": "cause-1"}
    assert item["isPublished"] == {"BOOL": False}
    assert item["retryCount"] == {"N": "0"}
    assert ISO_MS.match(item["createdAt"]["S"])
    created = time.mktime(time.strptime(item["createdAt"]["S"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before - 2 <= created <= time.time() + 2
    assert "ttl" not in item and "publishedAt" not in item


def test_add_ids_are_time_ordered(config, run_outboxd):
    ids = [run_outboxd("add", "-c", config, "--type", "T", "--payload", "x").stdout.strip() for _ in range(3)]
    assert all(UUID7.match(i) for i in ids)
    assert ids == sorted(ids)


def test_add_partition_key_defaults_to_aggregate_id_then_message_id(ddb, config, run_outboxd):
    a = run_outboxd("add", "-c", config, "--type", "T", "--payload", "x", "--aggregate-id", "agg-7").stdout.strip()
    assert get(ddb, "agg-7", a) is not None
    b = run_outboxd("add", "-c", config, "--type", "T", "--payload", "x").stdout.strip()
    assert get(ddb, b, b) is not None


def test_add_takes_binary_payload_from_file_and_stdin(ddb, config, run_outboxd, tmp_path):
    data = bytes(range(256))
    f = tmp_path / "payload.bin"
    f.write_bytes(data)
    r = run_outboxd("add", "-c", config, "--type", "Blob", "--payload-file", f, "--partition-key", "blob")
    assert r.returncode == 0, r.stderr
    assert base64.b64decode(get(ddb, "blob", r.stdout.strip())["payload"]["S"]) == data
    r = run_outboxd("add", "-c", config, "--type", "Text", "--partition-key", "blob", "-", input="from stdin")
    assert r.returncode == 0, r.stderr
    assert base64.b64decode(get(ddb, "blob", r.stdout.strip())["payload"]["S"]) == b"from stdin"


def test_add_refuses_to_overwrite_an_existing_message_id(ddb, config, run_outboxd):
    args = ("add", "-c", config, "--type", "T", "--payload", "first", "--partition-key", "dup", "--id", "m-1")
    assert run_outboxd(*args).returncode == 0
    r = run_outboxd("add", "-c", config, "--type", "T", "--payload", "second", "--partition-key", "dup",
                    "--id", "m-1")
    assert r.returncode == 65
    assert "message id m-1 already exists" in r.stderr
    assert base64.b64decode(get(ddb, "dup", "m-1")["payload"]["S"]) == b"first"


@pytest.mark.parametrize("args, needle", [
    (("--payload", "x"), "--type is required"),
    (("--type", "T"), "exactly one of --payload"),
    (("--type", "T", "--payload", "x", "--payload-file", "f"), "exactly one of --payload"),
    (("--type", "T", "--payload", "x", "--header", "novalue"), "--header wants NAME=VALUE"),
    (("--type", "T", "--payload", "x", "extra"), "unexpected argument 'extra'"),
])
def test_add_usage_errors_exit_64(config, run_outboxd, args, needle):
    r = run_outboxd("add", "-c", config, *args)
    assert r.returncode == 64
    assert needle in r.stderr


def test_add_to_a_missing_table_names_the_problem(ddb, tmp_config, run_outboxd):
    cfg = tmp_config(ddb_config(ddb.endpoint, table="no-such-table"))
    r = run_outboxd("add", "-c", cfg, "--type", "T", "--payload", "x")
    assert r.returncode == 78
    assert "ResourceNotFoundException" in r.stderr


def test_item_written_by_boto3_reads_back_through_our_client_with_every_field(ddb, table):
    item = {
        "pk": {"S": "boto-1"}, "sk": {"S": "0190f0c2-0000-7000-8000-000000000001"},
        "messageType": {"S": "Shipped"}, "payload": {"S": base64.b64encode(b"\x00\xffbytes").decode()},
        "headers": {"S": json.dumps({"content-type": "application/octet-stream"})},
        "aggregateId": {"S": "a-1"}, "aggregateType": {"S": "Shipment"},
        "correlationId": {"S": "c-1"}, "causationId": {"S": "k-1"},
        "createdAt": {"S": "2026-11-25T10:00:00.000Z"}, "publishedAt": {"S": "2026-11-25T10:00:01.000Z"},
        "isPublished": {"BOOL": True}, "retryCount": {"N": "2"}, "lastError": {"S": "HTTP 503"},
        "ttl": {"N": "1795000000"},
    }
    ddb.client().put_item(TableName=table, Item=item)
    req = json.dumps({"TableName": table, "Key": {"pk": item["pk"], "sk": item["sk"]}, "ConsistentRead": True})
    out = subprocess.run([tool("ddb_call"), ddb.endpoint, "GetItem", req, "1", "1", "1", "--print-response"],
                         capture_output=True, text=True, env=tool_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    assert lines[0]["result"] == "ok"
    assert lines[0]["response"]["Item"] == item
    assert lines[0]["response"]["ConsumedCapacity"]["TableName"] == table


def test_producer_api_counts_consumed_capacity_per_operation(ddb, table):
    req = json.dumps({"TableName": table, "Item": {"pk": {"S": "cap"}, "sk": {"S": "1"}, "payload": {"S": ""}}})
    out = subprocess.run([tool("ddb_call"), ddb.endpoint, "PutItem", req, "3", "1", "1"],
                         capture_output=True, text=True, env=tool_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["consumed"] == {f"{table}/PutItem/write": 3.0}
