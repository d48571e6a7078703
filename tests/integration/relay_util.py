"""Pieces the relay tests share: tables, configs, producers, checks on what arrived."""

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

from harness.util import free_port
from outboxd_config import aws_section, tool, tool_env


def process_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_measured(d, timeout=30):
    """SIGTERM to outboxd d; returns (exit status, seconds the stop took, CPU seconds it used)."""
    cpu = [process_cpu_seconds(d.pid)]
    done = threading.Event()

    def sample():
        while not done.wait(0.1):
            try:
                cpu.append(process_cpu_seconds(d.pid))
            except (OSError, ValueError):
                return
    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    rc = d.stop(signal.SIGTERM, timeout=timeout)
    done.set()
    sampler.join()
    return rc, time.monotonic() - t0, cpu[-1] - cpu[0]


def create_outbox_table(ddb, name):
    c = ddb.client()
    c.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}],
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}],
                   StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    return name


def relay_config(endpoint, table, sinks, extra="", metrics_port=None, poll="100ms", max_in_flight=16,
                 log_level="info", log_format="text", default_sink=None, ttl_seconds=604800):
    """Config text for `outboxd run`: sinks is YAML text of the `sinks:` list items."""
    text = aws_section(endpoint) + f"""\
  retry_base_delay: 10ms
table:
  name: {table}
  ttl_seconds: {ttl_seconds}
stream:
  poll_interval: {poll}
relay:
  max_in_flight: {max_in_flight}
  backoff: {{ initial: 50ms, max: 1s }}
  shutdown_timeout: 20s
log:
  level: {log_level}
  format: {log_format}
sinks:
{sinks}
"""
    if default_sink:
        text += f"default_sink: {default_sink}\n"
    if metrics_port:
        text += f"metrics:\n  listen: 127.0.0.1:{metrics_port}\n"
    return text + extra


def http_sink(name, url, extra=""):
    return f"  - name: {name}\n    type: http\n    url: {url}\n{extra}"


def sink_yaml(name, options):
    """A `sinks:` item of relay_config: the sink name with options (its keys, as the
    sink_publish fixture takes them: {"type": "sqs", "queue_url": ...})."""
    return f"  - name: {name}\n" + "".join(f"    {k}: {json.dumps(v)}\n" for k, v in options.items())


def produce(endpoint, table, count, keys, threads=8, payload_bytes=16, rate=0, ids=False, timeout=600):
    """Writes count messages over keys with the producer API (tests/tools/produce.c).

    Returns the list of (id, pk, n, written_ms) when ids, else the summary dict."""
    env = tool_env()
    if ids:
        env["PRODUCE_IDS"] = "1"
    p = subprocess.run([tool("produce"), endpoint, table, str(count), str(keys), str(threads),
                        str(payload_bytes), str(rate)], capture_output=True, text=True, env=env,
                       timeout=timeout)
    assert p.returncode == 0, p.stderr
    if ids:
        rows = []
        for line in p.stdout.splitlines():
            i, pk, n, ms = line.split()
            rows.append((i, pk, int(n), int(ms)))
        return rows
    return json.loads(p.stderr.strip().splitlines()[-1])


def spawn_producer(endpoint, table, count, keys, threads=8, rate=0):
    return subprocess.Popen([tool("produce"), endpoint, table, str(count), str(keys), str(threads), "16",
                             str(rate)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=tool_env())


def wait_until(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def http_messages(receiver):
    """(key, n, message id) of every 2xx-answered request, in arrival order."""
    out = []
    for r in receiver.accepted():
        body = json.loads(r.body)
        out.append((body["key"], body["n"], r.headers["ce-id"]))
    return out


def check_per_key_order(messages):
    """Every key's messages arrive in order: each is the key's next one, or, after a crash or
    a take-over, an earlier one from which the key comes again in order (its messages since
    the last one marked). A key never goes on from a repeated message past one it did not
    repeat, so it never ends on an older message than one it saw. Returns the violations."""
    prev = {}
    bad = []
    for key, n, _ in messages:
        if key in prev and n > prev[key] + 1:
            bad.append((key, prev[key], n))
        prev[key] = n
    return bad


def check_strict_order(messages):
    """Each key's messages arrive exactly as 0, 1, 2, ... with no repeats."""
    seen = defaultdict(list)
    for key, n, _ in messages:
        seen[key].append(n)
    return {k: v for k, v in seen.items() if v != list(range(len(v)))}


def duplicates(messages):
    counts = defaultdict(int)
    for _, _, i in messages:
        counts[i] += 1
    return sum(c - 1 for c in counts.values())


def scan_items(ddb, table):
    c = ddb.client()
    items, kw = [], {}
    while True:
        page = c.scan(TableName=table, ConsistentRead=True, **kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def metrics_text(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def probe(port, path):
    """(status, body) of GET path; (None, "") while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric_samples(port):
    """{(name, frozenset(labels.items())): value} parsed by prometheus_client's parser;
    {} while the server is not listening yet."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        text = metrics_text(port)
    except OSError:
        return {}
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def dlq_sink(path):
    """A file sink named dlq (the dead-letter sink of the tests)."""
    return f"  - name: dlq\n    type: file\n    path: {path}\n"


def dead_letter_config(endpoint, table, hook_url, dlq, max_attempts=None, **kw):
    """relay_config of the http sink hook (the default sink) whose dead letters go to the
    file sink dlq at path dlq; kw go to relay_config."""
    relay = {} if max_attempts is None else {"max_attempts": max_attempts}
    return with_relay(relay_config(endpoint, table, http_sink("hook", hook_url) + dlq_sink(dlq), default_sink="hook",
                                   **kw), **relay, dead_letter_sink="dlq")


def with_relay(text, **kv):
    """relay_config's text with `relay:` keys replaced or added."""
    head, rest = text.split("relay:\n", 1)
    body, tail = [], []
    it = iter(rest.splitlines(keepends=True))
    for line in it:
        if line.startswith("  "):
            body.append(line)
        else:
            tail.append(line)
            tail.extend(it)
            break
    keys = {ln.split(":", 1)[0].strip(): ln for ln in body}
    for k, v in kv.items():
        keys[k] = f"  {k}: {v}\n"
    return head + "relay:\n" + "".join(keys.values()) + "".join(tail)


def lines_of(path):
    """The JSON lines of a file sink's file ([] before it exists)."""
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


__all__ = ["create_outbox_table", "relay_config", "http_sink", "sink_yaml", "produce", "spawn_producer", "wait_until",
           "http_messages", "check_per_key_order", "check_strict_order", "duplicates", "scan_items",
           "metrics_text", "metric_samples", "metric", "free_port", "dlq_sink", "with_relay", "lines_of"]
