"""The producer API's transactional form: the caller's writes and the outbox item, all or nothing."""

import json
import subprocess

import pytest

from outboxd_config import tool, tool_env
from relay_util import create_outbox_table


@pytest.fixture(scope="module")
def tables(ddb):
    c = ddb.client()
    create_outbox_table(ddb, "outbox")
    c.create_table(TableName="orders", BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    return c


def produce(ddb, spec):
    out = subprocess.run([tool("outbox_tx"), ddb.endpoint, "outbox"], input=json.dumps(spec),
                         capture_output=True, text=True, env=tool_env(), timeout=60)
    assert out.stdout, out.stderr
    return json.loads(out.stdout)


def outbox_items(client, pk):
    return client.query(TableName="outbox", KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": pk}}, ConsistentRead=True)["Items"]


def test_transaction_writes_business_item_and_outbox_item_together(ddb, tables):
    res = produce(ddb, {
        "message": {"type": "OrderPlaced", "aggregate_id": "o-1", "payload": '{"id":"o-1"}'},
        "items": [{"kind": "put", "json": {"TableName": "orders", "Item": {"id": {"S": "o-1"}},
                                           "ConditionExpression": "attribute_not_exists(id)"}}],
    })
    assert res["result"] == "ok", res
    assert tables.get_item(TableName="orders", Key={"id": {"S": "o-1"}}, ConsistentRead=True).get("Item")
    items = outbox_items(tables, "o-1")
    assert [i["sk"]["S"] for i in items] == [res["id"]]
    assert items[0]["messageType"] == {"S": "OrderPlaced"}


def test_failed_caller_condition_writes_nothing_and_names_the_item(ddb, tables):
    tables.put_item(TableName="orders", Item={"id": {"S": "o-2"}, "state": {"S": "shipped"}})
    res = produce(ddb, {
        "message": {"type": "OrderPlaced", "aggregate_id": "o-2", "payload": "{}"},
        "items": [
            {"kind": "update", "json": {"TableName": "orders", "Key": {"id": {"S": "o-3"}},
                                        "UpdateExpression": "SET #s = :n",
                                        "ExpressionAttributeNames": {"#s": "state"},
                                        "ExpressionAttributeValues": {":n": {"S": "new"}}}},
            {"kind": "put", "json": {"TableName": "orders", "Item": {"id": {"S": "o-2"}},
                                     "ConditionExpression": "attribute_not_exists(id)"}},
        ],
    })
    assert res["result"] == "transaction canceled", res
    assert "item 2: ConditionalCheckFailed" in res["msg"]
    assert [r["code"] for r in res["reasons"]] == ["None", "ConditionalCheckFailed", "None"]
    assert outbox_items(tables, "o-2") == []
    assert "Item" not in tables.get_item(TableName="orders", Key={"id": {"S": "o-3"}}, ConsistentRead=True)
    assert tables.get_item(TableName="orders", Key={"id": {"S": "o-2"}},
                           ConsistentRead=True)["Item"]["state"] == {"S": "shipped"}


def test_condition_check_and_delete_items_join_the_transaction(ddb, tables):
    tables.put_item(TableName="orders", Item={"id": {"S": "o-4"}, "state": {"S": "open"}})
    tables.put_item(TableName="orders", Item={"id": {"S": "o-5"}})
    res = produce(ddb, {
        "message": {"type": "OrderClosed", "aggregate_id": "o-4", "payload": "{}"},
        "items": [
            {"kind": "condition_check", "json": {"TableName": "orders", "Key": {"id": {"S": "o-4"}},
                                                 "ConditionExpression": "#s = :o",
                                                 "ExpressionAttributeNames": {"#s": "state"},
                                                 "ExpressionAttributeValues": {":o": {"S": "open"}}}},
            {"kind": "delete", "json": {"TableName": "orders", "Key": {"id": {"S": "o-5"}}}},
        ],
    })
    assert res["result"] == "ok", res
    assert len(outbox_items(tables, "o-4")) == 1
    assert "Item" not in tables.get_item(TableName="orders", Key={"id": {"S": "o-5"}}, ConsistentRead=True)


def test_caller_item_that_is_not_json_is_refused_before_any_write(ddb, tables):
    out = subprocess.run([tool("outbox_tx"), ddb.endpoint, "outbox"],
                         input=json.dumps({"message": {"type": "T", "aggregate_id": "o-6", "payload": "{}"},
                                           "items": [{"kind": "put", "json": "not an object"}]}),
                         capture_output=True, text=True, env=tool_env(), timeout=60)
    res = json.loads(out.stdout)
    assert res["result"] == "invalid"
    assert "item 1: not a JSON object" in res["msg"]
    assert outbox_items(tables, "o-6") == []
