#!/usr/bin/env python3
"""make bench: what outboxd costs and how fast it relays (issue 6, BENCHMARKS.md).

Backends:
  A  DynamoDB Local, a fresh JVM per run (what users see locally);
  B  tests/bench/ddb_bench_server, 4 shards, 0 ms or 5 ms added per call
     (a benchmark instrument: the emulator is too slow to show outboxd's cost).

Scenarios, each run BENCH_RUNS times (default 3), the median reported:
  drain    N messages (BENCH_MESSAGES, default 20,000) of 1 KiB over 100 keys
           already in the table; outboxd relays them to tests/bench/http_receiver
           and marks them; messages/s from the first arrival to the last mark,
           outboxd's CPU (user+sys of its process) per message, its peak RSS.
  drain_kafka  the same drain through the kafka sink into librdkafka's mock cluster
           (tests/tools/kafka_mock, 3 brokers, a topic of 6 partitions): msg/s from
           the first delivery to the last mark, outboxd's CPU per message, its peak RSS;
           the topic's record count (its high watermarks) against the messages.
  ceiling  the same conditional mark-published UpdateItems from bench_ceiling,
           at the relay's mark concurrency (shards x max_in_flight), no stream.
  latency  a producer writes at a fixed rate for BENCH_LATENCY_SECONDS (30);
           write acknowledged -> receiver arrival, p50/p99/max.
  idle     outboxd on an idle table for BENCH_IDLE_SECONDS (30): CPU, RSS,
           GetRecords/s.
  accept   the relay's acceptance tests (tests/integration/test_relay.py) on B.

Prints one table and writes bench/results.json. No figure here is asserted:
the targets are stated beside the measurements for a reader, not a gate.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness import DynamoDBLocal, free_port, outboxd_env, outboxd_path  # noqa: E402
from harness.bench_server import BenchServer, bench_path  # noqa: E402
from harness.util import register_child, unregister_child  # noqa: E402
from outboxd_config import aws_section, tool, tool_env  # noqa: E402
from relay_util import create_outbox_table, metric_samples  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
KEYS = 100
PAYLOAD = 1024
SHARDS_B = 4
MAX_IN_FLIGHT = int(os.environ.get("BENCH_MAX_IN_FLIGHT", "64"))
POLL_MS = 250
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "30"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
BACKENDS = set(filter(None, os.environ.get("BENCH_BACKENDS", "").split(",")))
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK = Path(tempfile.mkdtemp(prefix="outboxd-bench-"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- processes -----------------------------------------------------------------

def cpu_seconds(pid):
    """user+sys CPU seconds of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Receiver:
    """tests/bench/http_receiver: answers every POST at once, logs id and arrival µs."""

    def __init__(self):
        self.log_path = WORK / f"receiver-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen([bench_path("http_receiver"), "--port", "0", "--log", str(self.log_path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        register_child(self)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"http_receiver did not start: {line!r}")
        self.url = "http://" + line.split()[-1] + "/hook"
        self.count_url = "http://" + line.split()[-1] + "/count"

    def count(self):
        with urllib.request.urlopen(self.count_url, timeout=5) as r:
            return int(r.read())

    def stop(self):
        """Stops it; returns [(id, arrival_us)] in arrival order."""
        self.proc.terminate()
        self.proc.communicate(timeout=60)
        unregister_child(self)
        out = []
        for line in self.log_path.read_text().splitlines():
            mid, us = line.rsplit(" ", 1)
            out.append((mid, int(us)))
        return out


class Outboxd:
    """outboxd run with a production-like config (defaults but for the stated knobs)."""

    def __init__(self, endpoint, sink, poll_ms=POLL_MS, max_in_flight=MAX_IN_FLIGHT):
        """sink: the `sinks:` list item (http_sink(url), kafka_sink(bootstraps))."""
        self.metrics_port = free_port()
        cfg = WORK / f"outboxd-{time.monotonic_ns()}.yaml"
        cfg.write_text(aws_section(endpoint) + f"""\
table:
  name: outbox
stream:
  start_position: trim_horizon
  poll_interval: {poll_ms}ms
relay:
  max_in_flight: {max_in_flight}
sinks:
{sink}metrics:
  listen: 127.0.0.1:{self.metrics_port}
log:
  level: warn
""")
        self.log_path = cfg.with_suffix(".log")
        self.log_file = open(self.log_path, "w")
        self.started = time.time()
        self.proc = subprocess.Popen([str(outboxd_path()), "run", "-c", str(cfg)], env=outboxd_env(),
                                     stdout=self.log_file, stderr=subprocess.STDOUT)
        register_child(self)

    @property
    def pid(self):
        return self.proc.pid

    def samples(self):
        return metric_samples(self.metrics_port)

    def marked(self):
        """Messages marked published (or found already published)."""
        s = self.samples()
        total = sum(v for (name, _), v in s.items() if name == "outboxd_delivery_latency_seconds_count")
        return total + sum(v for (name, _), v in s.items() if name == "outboxd_messages_duplicate_total")

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"outboxd exited {self.proc.returncode}: {self.log_path.read_text()}")
            s = self.samples()
            if any(n == "outboxd_shards_owned" and v > 0 for (n, _), v in s.items()):
                return
            time.sleep(0.05)
        raise RuntimeError("outboxd owned no shard in time")

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=60)
        finally:
            unregister_child(self)
            self.log_file.close()
        if rc != 0:
            raise RuntimeError(f"outboxd exited {rc}: {self.log_path.read_text()[-2000:]}")


def http_sink(url):
    return f"  - name: hook\n    type: http\n    url: {url}\n"


KAFKA_TOPIC, KAFKA_PARTITIONS = "outbox", 6


def kafka_sink(bootstraps):
    return f"  - name: events\n    type: kafka\n    brokers: {bootstraps}\n    topic: {KAFKA_TOPIC}\n    properties: {{ linger.ms: \"5\" }}\n"


def produce(endpoint, count, threads, rate=0, ids=False):
    env = tool_env()
    if ids:
        env["PRODUCE_IDS"] = "1"
    p = subprocess.run([tool("produce"), endpoint, "outbox", str(count), str(KEYS), str(threads), str(PAYLOAD),
                        str(rate)], env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"produce failed: {p.stderr[-2000:]}")
    if not ids:
        return None
    rows = {}
    for line in p.stdout.splitlines():
        mid, _pk, _n, written_ms = line.split()
        rows[mid] = int(written_ms)
    return rows


# -- backends --------------------------------------------------------------------

class Backend:
    def __init__(self, name, latency_ms=None):
        self.name, self.latency_ms = name, latency_ms
        self.shards = 1 if latency_ms is None else SHARDS_B

    @property
    def label(self):
        return "A" if self.latency_ms is None else f"B {self.latency_ms} ms"

    def start(self):
        if self.latency_ms is None:
            return DynamoDBLocal(log_dir=WORK).start()
        return BenchServer("--shards", str(self.shards), "--latency-ms", str(self.latency_ms))


A = Backend("A")
B0 = Backend("B0", 0)
B5 = Backend("B5", 5)


def with_backend(backend, fn):
    server = backend.start()
    try:
        return fn(server)
    finally:
        server.stop()


def load_threads(backend):
    # The producer waits on each write; enough threads keep B busy at 5 ms.
    return 16 if backend.latency_ms is None else 64


# -- scenarios -------------------------------------------------------------------

def drain_once(backend):
    def run(server):
        create_outbox_table(server, "outbox")
        t = time.time()
        produce(server.endpoint, MESSAGES, load_threads(backend))
        log(f"  loaded {MESSAGES} in {time.time() - t:.1f} s")
        recv = Receiver()
        d = Outboxd(server.endpoint, http_sink(recv.url))
        server_cpu0 = cpu_seconds(server.pid)
        try:
            first, done = wait_drained(d, lambda: recv.count() > 0)
            cpu = cpu_seconds(d.pid)
            rss = status_kib(d.pid, "VmHWM")
            server_cpu = cpu_seconds(server.pid) - server_cpu0
        finally:
            d.stop()
            arrivals = recv.stop()
        ids = [a[0] for a in arrivals]
        first_us = arrivals[0][1] if arrivals else first * 1e6
        seconds = done - first_us / 1e6
        return {"messages": MESSAGES, "seconds": round(seconds, 3), "messages_per_s": round(MESSAGES / seconds),
                "cpu_us_per_message": round(cpu * 1e6 / MESSAGES, 1), "peak_rss_kib": rss,
                "startup_to_first_s": round(first_us / 1e6 - d.started, 3),
                "backend_cpu_us_per_message": round(server_cpu * 1e6 / MESSAGES, 1),
                "delivered": len(set(ids)), "duplicates": len(ids) - len(set(ids))}
    return with_backend(backend, run)


def wait_drained(d, delivering):
    """Waits until outboxd d marked all MESSAGES (30 min at most): (when delivering() first
    came true, or None; when the last was marked)."""
    first = None
    deadline = time.time() + 1800
    while time.time() < deadline:
        if first is None and delivering():
            first = time.time()
        if d.marked() >= MESSAGES:
            return first, time.time()
        if d.proc.poll() is not None:
            raise RuntimeError(f"outboxd exited: {d.log_path.read_text()[-2000:]}")
        time.sleep(0.01)
    raise RuntimeError(f"drain did not finish: {d.marked()} marked")


def drain_kafka_once(backend):
    from harness.kafka_mock import KafkaMock

    def delivered(d):
        return sum(v for (n, _), v in d.samples().items() if n == "outboxd_messages_delivered_total")

    def run(server):
        create_outbox_table(server, "outbox")
        produce(server.endpoint, MESSAGES, load_threads(backend))
        with KafkaMock(log_dir=WORK) as kafka:
            kafka.create_topic(KAFKA_TOPIC, KAFKA_PARTITIONS)
            kafka_cpu0 = cpu_seconds(kafka.proc.pid)
            d = Outboxd(server.endpoint, kafka_sink(kafka.bootstraps))
            try:
                first, done = wait_drained(d, lambda: delivered(d) > 0)
                cpu = cpu_seconds(d.pid)
                rss = status_kib(d.pid, "VmHWM")
                kafka_cpu = cpu_seconds(kafka.proc.pid) - kafka_cpu0
            finally:
                d.stop()
            records = kafka.record_count(KAFKA_TOPIC)
        seconds = done - first
        return {"messages": MESSAGES, "seconds": round(seconds, 3), "messages_per_s": round(MESSAGES / seconds),
                "cpu_us_per_message": round(cpu * 1e6 / MESSAGES, 1), "peak_rss_kib": rss,
                "startup_to_first_s": round(first - d.started, 3),
                "broker_cpu_us_per_message": round(kafka_cpu * 1e6 / MESSAGES, 1),
                "records": records, "duplicates": records - MESSAGES}
    return with_backend(backend, run)


# With an added latency the relay's concurrency, not the server, bounds the ceiling
# (256 in flight / 5 ms = 51,200/s); the server's own capacity is measured with this
# many times as many requests in flight.
CAPACITY_FACTOR = 4


def ceiling_once(backend):
    def run(server):
        conc = backend.shards * MAX_IN_FLIGHT

        def ceiling(table, concurrency):
            def call(*mode):
                p = subprocess.run([bench_path("bench_ceiling"), server.endpoint, table, str(MESSAGES),
                                    str(concurrency), *mode], capture_output=True, text=True, timeout=1800)
                if p.returncode != 0:
                    raise RuntimeError(f"bench_ceiling failed: {p.stderr[-2000:]}")
                return p.stdout
            call("--load-only")
            server_cpu0 = cpu_seconds(server.pid)
            r = json.loads(call("--existing").strip().splitlines()[-1])
            return r, cpu_seconds(server.pid) - server_cpu0
        r, server_cpu = ceiling("ceiling", conc)
        out = {"ops_per_s": round(r["ops_per_s"]), "concurrency": conc, "conflicts": r["conflicts"],
               "backend_cpu_us_per_op": round(server_cpu * 1e6 / r["ops"], 1)}
        if backend.latency_ms:
            cap, _ = ceiling("capacity", conc * CAPACITY_FACTOR)
            out.update({"capacity_ops_per_s": round(cap["ops_per_s"]),
                        "capacity_concurrency": conc * CAPACITY_FACTOR})
        return out
    return with_backend(backend, run)


def with_ready_relay(backend, measure):
    """On a fresh backend: the outbox table, a Receiver and an outboxd that owns its shards.
    Returns what measure(server, d, recv) returns and the receiver's arrivals, both stopped."""
    def run(server):
        create_outbox_table(server, "outbox")
        recv = Receiver()
        d = Outboxd(server.endpoint, http_sink(recv.url))
        try:
            d.wait_ready()
            result = measure(server, d, recv)
        finally:
            d.stop()
            arrivals = recv.stop()
        return result, arrivals
    return with_backend(backend, run)


def latency_once(backend, rate):
    count = int(rate * LATENCY_SECONDS)

    def measure(server, d, recv):
        rows = produce(server.endpoint, count, 8 if backend.latency_ms is None else 32, rate=rate, ids=True)
        deadline = time.time() + 120
        while recv.count() < count and time.time() < deadline:
            time.sleep(0.05)
        return rows
    rows, arrivals = with_ready_relay(backend, measure)
    seen = {}
    for mid, us in arrivals:
        seen.setdefault(mid, us)
    lat = sorted(seen[m] / 1000 - w for m, w in rows.items() if m in seen)
    if len(lat) < len(rows):
        raise RuntimeError(f"latency: {len(rows) - len(lat)} of {len(rows)} messages never arrived")
    return {"rate": rate, "messages": len(lat), "poll_ms": POLL_MS,
            "p50_ms": round(percentile(lat, 50), 1), "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(lat[-1], 1)}


def idle_once(backend):
    def measure(server, d, recv):
        time.sleep(2)
        c0, g0, t0 = cpu_seconds(d.pid), get_records(d), time.time()
        time.sleep(IDLE_SECONDS)
        c1, g1, t1 = cpu_seconds(d.pid), get_records(d), time.time()
        return {"seconds": round(t1 - t0, 1), "cpu_percent": round(100 * (c1 - c0) / (t1 - t0), 3),
                "rss_kib": status_kib(d.pid, "VmRSS"), "get_records_per_s": round((g1 - g0) / (t1 - t0), 2),
                "poll_ms": POLL_MS, "shards": backend.shards}
    result, _arrivals = with_ready_relay(backend, measure)
    return result


def get_records(d):
    return sum(v for (n, labels), v in d.samples().items()
               if n == "outboxd_aws_requests_total" and ("operation", "GetRecords") in labels)


def acceptance():
    # One shard, the shape of DynamoDB Local the tests are written for.
    env = dict(os.environ, OUTBOXD_TEST_BACKEND="bench", OUTBOXD_TEST_BENCH_SHARDS="1")
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_relay.py"],
                       cwd=REPO / "tests" / "integration", env=env, capture_output=True, text=True, timeout=1200)
    last = (p.stdout.strip().splitlines() or [""])[-1]
    if p.returncode != 0:
        log(p.stdout[-4000:])
    return {"passed": p.returncode == 0, "summary": last}


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def median_of(runs):
    """Per key, the median of the runs' numbers (other values from the first run)."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in runs)
    out["runs"] = runs
    return out


def repeat(name, fn, *args):
    runs = []
    for i in range(RUNS):
        log(f"{name}: run {i + 1}/{RUNS}")
        runs.append(fn(*args))
        log(f"  {json.dumps(runs[-1])}")
    return median_of(runs)


# -- report ----------------------------------------------------------------------

def machine():
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def want(name):
    return not ONLY or name in ONLY


def main():
    results = {"machine": machine(), "config": {"messages": MESSAGES, "keys": KEYS, "payload_bytes": PAYLOAD,
                                                "max_in_flight": MAX_IN_FLIGHT, "poll_ms": POLL_MS,
                                                "runs": RUNS, "shards_b": SHARDS_B}}
    backends = [b for b in (B0, B5, A) if not BACKENDS or b.name in BACKENDS]
    for b in backends:
        if want("drain"):
            results[f"drain_{b.name}"] = repeat(f"drain {b.label}", drain_once, b)
    for b in backends:
        if want("drain_kafka"):
            results[f"drain_kafka_{b.name}"] = repeat(f"drain kafka {b.label}", drain_kafka_once, b)
    for b in backends:
        if want("ceiling"):
            results[f"ceiling_{b.name}"] = repeat(f"ceiling {b.label}", ceiling_once, b)
    if want("latency") and A in backends:
        results["latency_A"] = repeat("latency A 100/s", latency_once, A, 100)
    if want("latency") and B5 in backends:
        results["latency_B5"] = repeat("latency B 5 ms 2000/s", latency_once, B5, 2000)
    if want("idle") and A in backends:
        results["idle_A"] = repeat("idle A", idle_once, A)
    if want("accept"):
        log("acceptance tests on B")
        results["acceptance_B"] = acceptance()
    out = REPO / "bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"results: {out.relative_to(REPO)}")


def print_table(r):
    rows = []

    def add(scenario, figure, target=""):
        rows.append((scenario, figure, target))

    for b in (B0, B5, A):
        d = r.get(f"drain_{b.name}")
        c = r.get(f"ceiling_{b.name}")
        if d:
            add(f"drain {b.label}", f"{d['messages_per_s']:,.0f} msg/s",
                {"B0": ">= 30,000", "B5": ">= 20,000"}.get(b.name, ""))
            add(f"drain {b.label}", f"{d['cpu_us_per_message']:.1f} us CPU/msg", "<= 30" if b.name == "B0" else "")
            add(f"drain {b.label}", f"{d['peak_rss_kib'] / 1024:.1f} MiB peak RSS", "<= 16")
            add(f"drain {b.label}", f"{d['duplicates']} duplicates, {d['delivered']} delivered")
        k = r.get(f"drain_kafka_{b.name}")
        if k:
            add(f"drain kafka {b.label}", f"{k['messages_per_s']:,.0f} msg/s")
            add(f"drain kafka {b.label}", f"{k['cpu_us_per_message']:.1f} us CPU/msg, "
                f"mock cluster {k['broker_cpu_us_per_message']:.1f} us/msg")
            add(f"drain kafka {b.label}", f"{k['peak_rss_kib'] / 1024:.1f} MiB peak RSS")
            add(f"drain kafka {b.label}", f"{k['records']} records for {k['messages']} messages")
        if c:
            add(f"ceiling {b.label}", f"{c['ops_per_s']:,.0f} UpdateItem/s at {c['concurrency']} in flight")
        if c and d and b.name == "A":
            add(f"drain/ceiling {b.label}", f"{d['messages_per_s'] / c['ops_per_s']:.2f}", ">= 0.95")
        elif c and d:
            add(f"ceiling/drain {b.label}", f"{c['ops_per_s'] / d['messages_per_s']:.1f}x",
                ">= 3x (the backend is not the limit)" if "capacity_ops_per_s" not in c else "")
        if c and "capacity_ops_per_s" in c:
            add(f"capacity {b.label}", f"{c['capacity_ops_per_s']:,.0f} UpdateItem/s at "
                f"{c['capacity_concurrency']} in flight")
            if d:
                add(f"capacity/drain {b.label}", f"{c['capacity_ops_per_s'] / d['messages_per_s']:.1f}x",
                    ">= 3x (the backend is not the limit)")
        if c and d:
            # What the backend spends: on A a drained message costs the emulator more than a
            # bare UpdateItem; on B the same server code's cost per UpdateItem shows how fast
            # the machine ran, for comparing runs.
            add(f"backend CPU {b.label}", f"{d['backend_cpu_us_per_message']:,.1f} us/msg drained, "
                f"{c['backend_cpu_us_per_op']:,.1f} us/UpdateItem in the ceiling")
    for key, label in (("latency_A", "latency A 100/s"), ("latency_B5", "latency B 5 ms 2000/s")):
        lat = r.get(key)
        if lat:
            p = lat["poll_ms"]
            add(label, f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms, max {lat['max_ms']:.0f} ms "
                f"(poll {p} ms)", f"p50 <= {p / 2 + 15:.0f}, p99 <= {p + 50:.0f}")
    idle = r.get("idle_A")
    if idle:
        add("idle A", f"{idle['cpu_percent']:.2f}% CPU, {idle['rss_kib'] / 1024:.1f} MiB RSS, "
            f"{idle['get_records_per_s']:.1f} GetRecords/s", "< 0.5%")
    acc = r.get("acceptance_B")
    if acc:
        add("acceptance tests on B", acc["summary"], "all pass")
    w = [max(len(row[i]) for row in rows + [("scenario", "measured", "target")]) for i in range(3)]
    line = "+".join("-" * (x + 2) for x in w)
    print(f"{'scenario':<{w[0]}} | {'measured':<{w[1]}} | target")
    print(line)
    for s, f, t in rows:
        print(f"{s:<{w[0]}} | {f:<{w[1]}} | {t}")


if __name__ == "__main__":
    main()
