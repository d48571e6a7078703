"""The DynamoDB client's standard retry mode, seen through a fault-injecting proxy."""

import json
import subprocess

import pytest

from harness import Rule
from outboxd_config import tool, tool_env


@pytest.fixture(scope="module")
def table(ddb):
    ddb.client().create_table(
        TableName="retry", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    return "retry"


def put(endpoint, repeat=1, max_attempts=8, base_delay_ms=25, item=None):
    req = {"TableName": "retry", "Item": item or {"pk": {"S": "k"}, "sk": {"S": "1"}, "payload": {"S": "x"}}}
    out = subprocess.run([tool("ddb_call"), endpoint, "PutItem", json.dumps(req), str(repeat), str(max_attempts),
                          str(base_delay_ms)], capture_output=True, text=True, env=tool_env(), timeout=120)
    lines = [json.loads(l) for l in out.stdout.splitlines()]
    return lines[:-1], lines[-1]


def test_throttled_calls_are_retried_with_backoff_and_succeed(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="throttle", times=3)])
    calls, _ = put(fault_proxy.endpoint, base_delay_ms=100)
    assert calls[0]["result"] == "ok"
    assert calls[0]["attempts"] == 4
    assert fault_proxy.count(target="PutItem", action="throttle") == 3
    assert fault_proxy.count(target="PutItem", forwarded=True) == 1
    times = fault_proxy.times(target="PutItem")
    # Full jitter under caps of 100, 200 and 400 ms: the three waits add up to
    # something between "clearly not a busy loop" and the sum of the caps.
    assert 0.01 < times[-1] - times[0] < 0.7 + 0.5


def test_throttling_exception_and_server_errors_are_retried(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="throttling", times=1),
                           Rule(match_target="PutItem", action="status", status=500, times=1),
                           Rule(match_target="PutItem", action="status", status=503, times=1)])
    calls, _ = put(fault_proxy.endpoint)
    assert calls[0]["result"] == "ok"
    assert calls[0]["attempts"] == 4


def test_connection_resets_are_retried(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="reset", times=2)])
    calls, _ = put(fault_proxy.endpoint)
    assert calls[0]["result"] == "ok"
    assert calls[0]["attempts"] == 3
    assert fault_proxy.count(target="PutItem", action="reset") == 2


def test_validation_errors_are_not_retried(table, fault_proxy):
    calls, _ = put(fault_proxy.endpoint, item={"pk": {"S": "k"}})  # no sort key: ValidationException
    assert calls[0]["result"] == "validation"
    assert calls[0]["attempts"] == 1
    assert not calls[0]["retriable"]
    assert fault_proxy.count(target="PutItem") == 1


def test_retries_stop_at_max_attempts_with_the_last_error(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="status", status=500)])
    calls, _ = put(fault_proxy.endpoint, max_attempts=3, base_delay_ms=1)
    assert calls[0]["result"] == "service error"
    assert calls[0]["attempts"] == 3
    assert "after 3 attempts" in calls[0]["msg"]
    assert "InternalServerError" in calls[0]["msg"]
    assert fault_proxy.count(target="PutItem") == 3


def test_retry_quota_stops_a_retry_storm(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="status", status=500)])
    calls, summary = put(fault_proxy.endpoint, repeat=150, max_attempts=3, base_delay_ms=1)
    assert all(c["result"] == "service error" for c in calls)
    # 500 tokens at 5 a retry: 100 retries in all, then every call gets one attempt only.
    assert sum(c["attempts"] - 1 for c in calls) == 100
    assert all(c["attempts"] == 1 for c in calls[-50:])
    assert fault_proxy.count(target="PutItem") == 250
    assert summary["quota"] < 5


def test_successes_refill_the_retry_quota(table, fault_proxy):
    fault_proxy.set_rules([Rule(match_target="PutItem", action="status", status=500, times=30)])
    calls, summary = put(fault_proxy.endpoint, repeat=30, max_attempts=3, base_delay_ms=1)
    # 10 calls use up their 3 attempts (30 faults, 20 retries), then 20 succeed at once.
    assert [c["result"] for c in calls].count("ok") == 20
    assert summary["quota"] == 500 - 20 * 5 + 20
