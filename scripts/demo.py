#!/usr/bin/env python3
"""`make demo`: DynamoDB Local, `outboxd init`, `outboxd run` relaying to stdout, messages added and relayed.

Everything runs on 127.0.0.1 and is stopped at the end.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
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

    step("Write three messages, as a producer would (before the relay runs: it starts from the oldest record)")
    ids = [
        outboxd("add", "-c", str(cfg), "--type", "OrderPlaced", "--aggregate-type", "Order",
                "--aggregate-id", "order-1", "--payload", '{"order":"order-1","total":42}',
                "--header", "content-type=application/json"),
        outboxd("add", "-c", str(cfg), "--type", "OrderPaid", "--aggregate-type", "Order",
                "--aggregate-id", "order-1", "--payload", '{"order":"order-1","paid":true}'),
        outboxd("add", "-c", str(cfg), "--type", "CustomerRegistered", "--aggregate-type", "Customer",
                "--aggregate-id", "c-7", "--correlation-id", "signup-7", "--payload", '{"name":"Ada"}'),
    ]

    step("Start the relay: outboxd run (CloudEvents on stdout, one JSON line each)")
    log = open(Path(tmp) / "outboxd.log", "w")
    relay = subprocess.Popen([OUTBOXD, "run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=log,
                             text=True, env=env)
    print(f"$ outboxd run -c {cfg}   (pid {relay.pid})", flush=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(iter(relay.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while len(lines) < len(ids) and time.monotonic() < deadline and relay.poll() is None:
        time.sleep(0.1)

    step("Relayed by outboxd")
    for line in lines:
        ev = json.loads(line)
        print(f"  {ev['id']}  {ev['type']:<19} source={ev['source']:<17} data={json.dumps(ev.get('data'))}")

    step("Write one more while it runs")
    ids.append(outboxd("add", "-c", str(cfg), "--type", "OrderShipped", "--aggregate-type", "Order",
                       "--aggregate-id", "order-1", "--payload", '{"order":"order-1","carrier":"ACME"}'))
    deadline = time.monotonic() + 30
    while len(lines) < len(ids) and time.monotonic() < deadline and relay.poll() is None:
        time.sleep(0.1)
    ev = json.loads(lines[-1]) if len(lines) == len(ids) else None
    if ev:
        print(f"  {ev['id']}  {ev['type']:<19} source={ev['source']:<17} data={json.dumps(ev.get('data'))}")

    step("Stop it with SIGTERM (graceful: in-flight work finished, checkpoints written)")
    relay.send_signal(signal.SIGTERM)
    code = relay.wait(timeout=40)
    reader.join(timeout=5)
    log.close()
    print(f"outboxd exited with {code}; its log:")
    sys.stdout.write("".join("  " + l for l in open(Path(tmp) / "outboxd.log")))

    step("The outbox table now: every item marked published, with a TTL")
    items = ddb.client().scan(TableName="outbox", ConsistentRead=True)["Items"]
    items.sort(key=lambda i: i["sk"]["S"])
    for item in items:
        print(f"  {item['sk']['S']}  {item['messageType']['S']:<19} published={item['isPublished']['BOOL']!s:<5} "
              f"publishedAt={item.get('publishedAt', {}).get('S', '-')}  ttl={item.get('ttl', {}).get('N', '-')}")
    relayed = sorted(json.loads(l)["id"] for l in lines)
    ok = relayed == sorted(ids) and code == 0 and all(i["isPublished"]["BOOL"] for i in items)
    print(f"\n{len(relayed)} of {len(ids)} messages relayed, each once; "
          f"{'all marked published' if ok else 'SOMETHING IS WRONG'}. Stopping DynamoDB Local.")
    if not ok:
        raise SystemExit(1)
