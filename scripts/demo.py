#!/usr/bin/env python3
"""`make demo`: DynamoDB Local, `outboxd init`, a few `outboxd add`, and the items read back.

Everything runs on 127.0.0.1 and is stopped at the end.
"""

import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness import DynamoDBLocal  # noqa: E402

BUILD = Path(os.environ.get("BUILD") or "build")
OUTBOXD = str((REPO / BUILD / "outboxd") if not BUILD.is_absolute() else BUILD / "outboxd")


def step(text):
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def outboxd(*args):
    print("$ outboxd " + " ".join(args), flush=True)
    r = subprocess.run([OUTBOXD, *args], capture_output=True, text=True, env=env)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"outboxd {args[0]} failed with exit code {r.returncode}")
    return r.stdout.strip()


env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent")

with tempfile.TemporaryDirectory(prefix="outboxd-demo-") as tmp, DynamoDBLocal(log_dir=tmp) as ddb:
    step(f"DynamoDB Local is up at {ddb.endpoint}")
    cfg = Path(tmp) / "outboxd.yaml"
    cfg.write_text(f"""\
aws:
  region: us-east-1
  endpoint: {ddb.endpoint}
  access_key_id: demo
  secret_access_key: demo-secret
table:
  name: outbox
sinks:
  - name: console
    type: stdout
""")
    step("The config")
    print(cfg.read_text(), end="")
    outboxd("check", "-c", str(cfg))

    step("Create the outbox table (stream + TTL) and the lease table")
    outboxd("init", "-c", str(cfg))

    step("Write three messages, as a producer would")
    ids = [
        outboxd("add", "-c", str(cfg), "--type", "OrderPlaced", "--aggregate-type", "Order",
                "--aggregate-id", "order-1", "--payload", '{"order":"order-1","total":42}',
                "--header", "content-type=application/json"),
        outboxd("add", "-c", str(cfg), "--type", "OrderPaid", "--aggregate-type", "Order",
                "--aggregate-id", "order-1", "--payload", '{"order":"order-1","paid":true}'),
        outboxd("add", "-c", str(cfg), "--type", "CustomerRegistered", "--aggregate-type", "Customer",
                "--aggregate-id", "c-7", "--correlation-id", "signup-7", "--payload", '{"name":"Ada"}'),
    ]

    step("The outbox table, read back with boto3")
    items = ddb.client().scan(TableName="outbox", ConsistentRead=True)["Items"]
    items.sort(key=lambda i: i["sk"]["S"])
    for item in items:
        payload = base64.b64decode(item["payload"]["S"]).decode()
        print(f"  {item['sk']['S']}  pk={item['pk']['S']:<8} {item['messageType']['S']:<19} "
              f"published={item['isPublished']['BOOL']!s:<5} createdAt={item['createdAt']['S']}  {payload}")
    assert sorted(ids) == [i["sk"]["S"] for i in items], "an added message is missing"

    step("Stream records waiting for the relay")
    streams = ddb.streams_client()
    arn = ddb.client().describe_table(TableName="outbox")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it)["Records"]
    for r in records:
        print(f"  {r['eventName']:<6} seq={r['dynamodb']['SequenceNumber']}  sk={r['dynamodb']['Keys']['sk']['S']}")
    print(f"\n{len(items)} messages written and read back; stopping DynamoDB Local.")
