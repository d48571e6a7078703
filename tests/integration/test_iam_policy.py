"""packaging/iam-policy.json is outboxd's least-privilege policy: it allows every DynamoDB and
DynamoDB Streams operation the code sends (read from the sources, so the policy cannot fall
behind the code) and no other, each on the resource it acts on, and each AWS sink's action."""

import json
import re

from harness.util import REPO_ROOT

POLICY = json.loads((REPO_ROOT / "packaging" / "iam-policy.json").read_text())
SRC = REPO_ROOT / "src"

# The DynamoDB client's functions that take an operation's name (ob_ddb_call,
# ob_streams_call, ob_ddb_prepare_raw, ...), as src/dynamo/ddb.h declares them.
DDB_FUNCTIONS = re.findall(r"\b(ob_\w+)\([^;]*\bconst char \*operation\b", (SRC / "dynamo" / "ddb.h").read_text())
# A call of one of them (not its definition), up to its first string literal: the operation.
DDB_CALL = re.compile(r"\b(?:" + "|".join(DDB_FUNCTIONS) + r')\s*\([^;{}"]*"([A-Z][A-Za-z]+)"')
STREAM_OPERATIONS = {"DescribeStream", "GetShardIterator", "GetRecords"}
# A transaction is authorized by the actions of its parts: outboxd's own part is the Put
# of the outbox item (the caller's other parts are on the caller's tables).
IAM_ACTION_OF_OPERATION = {"TransactWriteItems": "PutItem"}
# An AWS sink's operation (`.operation` of its calls) and the IAM action that allows it.
SINK_ACTIONS = {"SendMessageBatch": "sqs:SendMessage", "GetQueueUrl": "sqs:GetQueueUrl",
                "PublishBatch": "sns:Publish", "PutEvents": "events:PutEvents",
                "PutRecords": "kinesis:PutRecords"}
# The kafka sink's producer with sasl_mechanism aws_msk_iam: it connects, reads the topic's
# metadata and writes, idempotently (src/sinks/kafka.c keeps enable.idempotence on).
MSK_ACTIONS = {"kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently", "kafka-cluster:DescribeTopic",
               "kafka-cluster:WriteData"}
# The service an ARN names, where it is not the actions' prefix.
ARN_SERVICE = {"kafka-cluster": "kafka"}
OPTIONAL_DYNAMODB_ACTIONS = {"dynamodb:CreateTable", "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive"}


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements_allowing(action):
    return [s for s in POLICY["Statement"] if action in s["Action"]]


def dynamodb_operations_sent():
    found = set()
    for path in SRC.rglob("*.c"):
        found |= set(DDB_CALL.findall(path.read_text()))
    return found


def sink_operations_sent():
    found = set()
    for path in (SRC / "sinks").glob("*.c"):
        text = path.read_text()
        macros = dict(re.findall(r'#define (\w+) "(\w+)"', text))
        for name in re.findall(r'\.operation = ("\w+"|\w+),', text):
            found.add(name.strip('"') if name.startswith('"') else macros.get(name, name))
    return found - {"r->operation"}


def test_the_policy_has_the_shape_of_an_iam_identity_policy():
    assert set(POLICY) == {"Version", "Statement"} and POLICY["Version"] == "2012-10-17"
    sids = [s["Sid"] for s in POLICY["Statement"]]
    assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", sid) for sid in sids)
    for s in POLICY["Statement"]:
        assert set(s) == {"Sid", "Effect", "Action", "Resource"}, s["Sid"]
        assert s["Effect"] == "Allow"
        for action in s["Action"]:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Z][A-Za-z]+", action), f"{s['Sid']}: {action} (no wildcards)"
        (service,) = {a.split(":")[0] for a in s["Action"]}  # one service a statement
        for arn in as_list(s["Resource"]):
            m = re.fullmatch(r"arn:aws:([a-z0-9-]+):[a-z0-9-]+:\d{12}:\S+", arn)
            assert m, f"{s['Sid']}: {arn} is not a regional ARN (no Resource *)"
            assert m.group(1) == ARN_SERVICE.get(service, service), f"{s['Sid']}: {arn}"


def test_every_dynamodb_operation_outboxd_sends_is_allowed_on_what_it_acts_on():
    operations = dynamodb_operations_sent()
    assert {"GetRecords", "UpdateItem", "BatchGetItem", "Scan", "CreateTable"} <= operations, operations
    for op in sorted(operations):
        action = "dynamodb:" + IAM_ACTION_OF_OPERATION.get(op, op)
        statements = statements_allowing(action)
        assert statements, f"{op} is sent (src/) but the policy does not allow {action}"
        for s in statements:
            on_stream = all("/stream/" in arn for arn in as_list(s["Resource"]))
            assert on_stream == (op in STREAM_OPERATIONS), f"{s['Sid']}: {action} on {s['Resource']}"


def test_the_policy_allows_no_dynamodb_action_outboxd_does_not_send():
    sent = {"dynamodb:" + IAM_ACTION_OF_OPERATION.get(op, op) for op in dynamodb_operations_sent()}
    allowed = {a for s in POLICY["Statement"] for a in s["Action"] if a.startswith("dynamodb:")}
    assert allowed - sent == set()


def test_creating_tables_and_adding_messages_are_separate_optional_statements():
    for s in POLICY["Statement"]:
        optional = set(s["Action"]) & OPTIONAL_DYNAMODB_ACTIONS
        if optional:
            assert s["Sid"].startswith("Optional") and set(s["Action"]) == OPTIONAL_DYNAMODB_ACTIONS, s["Sid"]
    (adding,) = [s for s in POLICY["Statement"] if s["Sid"] == "OptionalAddMessages"]
    (relaying,) = [s for s in POLICY["Statement"] if s["Sid"] == "MarkAndSweepTheOutboxTable"]
    assert adding["Action"] == ["dynamodb:PutItem"] and "dynamodb:PutItem" not in relaying["Action"]
    assert adding["Resource"] == relaying["Resource"]


def test_every_aws_sinks_action_has_an_example_statement():
    operations = sink_operations_sent()
    assert operations == set(SINK_ACTIONS), "a sink sends an operation this test has no IAM action for"
    for action in set(SINK_ACTIONS.values()) | MSK_ACTIONS:
        statements = statements_allowing(action)
        assert statements and all(s["Sid"].startswith("ExampleSink") for s in statements), action
