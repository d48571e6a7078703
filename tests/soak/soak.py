#!/usr/bin/env python3
"""make soak: outboxd under a steady load and steady trouble (tests/soak/README.md).

For SOAK_MINUTES (30) a producer writes SOAK_RATE (30) messages a second over 200
partition keys into DynamoDB Local, each carrying its key and its number within the key.
Three outboxd instances share the table and the lease table and deliver to one HTTP
consumer while:
  - a random instance is killed with SIGKILL every 15-45 s and started again 1-8 s
    later, under its old instance id or a new one;
  - the consumer goes down every ~60 s: 503s for 4-12 s, then refused connections for
    up to 10 s (one time in four 20-30 s of each, past sweep.older_than);
  - SOAK_THROTTLE (20%) of all DynamoDB and Streams calls are throttled (fault proxy);
  - the busiest stream shard splits (or rotates) every SOAK_SPLIT_SECONDS (45 s; the
    topology proxy, 4 root shards, at most 8 open);
  - the periodic sweep runs every minute for items older than 30 s.
Then the producer stops, the relays drain (at most SOAK_DRAIN_SECONDS), stop with SIGTERM,
and the consumer's record is judged against SPEC §1 and §3: nothing lost, every item
published, per-key order kept, duplicates within the bound of what the kills may repeat,
no dead letters. Prints a report, writes it to $BUILD/soak-report.json, keeps every log
under $BUILD/soak/; exits 0 only when every check passed (1: a check failed, 2: the soak
itself could not run).
"""

import base64
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

from harness import (DynamoDBLocal, FaultProxy, OutboxdProcess, Rule, TopologyProxy,  # noqa: E402
                     free_port, outboxd_path, run_outboxd_cmd)
from harness.http_receiver import HttpReceiver  # noqa: E402
from harness.util import set_pdeathsig  # noqa: E402
from outboxd_config import tool, tool_env  # noqa: E402
from relay_util import dlq_sink, http_sink, relay_config, scan_items, with_relay  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
RATE = float(os.environ.get("SOAK_RATE", "30"))
THROTTLE = float(os.environ.get("SOAK_THROTTLE", "0.2"))
SPLIT_SECONDS = float(os.environ.get("SOAK_SPLIT_SECONDS", "45"))
DRAIN_SECONDS = float(os.environ.get("SOAK_DRAIN_SECONDS", "300"))
START_POSITION = os.environ.get("SOAK_START_POSITION", "trim_horizon")
SEED = int(os.environ.get("SOAK_SEED") or time.time())
KEYS = 200
PRODUCER_THREADS = 8
SLOTS = "abc"
MAX_IN_FLIGHT = 16
MAX_ATTEMPTS = 5
LEASE_SECONDS = 4
ROOT_SHARDS, MAX_OPEN = 4, 8
KILL_EVERY = (15.0, 45.0)
RESTART_PAUSE = (1.0, 8.0)
OUTAGE_EVERY = (45.0, 75.0)
OUTAGE_503 = (4.0, 12.0)
OUTAGE_REFUSED = (0.0, 10.0)
# One outage in four is long: 503s and refused connections for 20-30 s each, past
# sweep.older_than, so the sweep runs while the readers hold undelivered messages.
LONG_OUTAGE = (20.0, 30.0)
# A lease that changes hands this soon after its owner was killed is the kill's take-over.
KILL_TAKEOVER_WINDOW = 30.0
STREAMS_OPS = ["GetRecords", "GetShardIterator", "DescribeStream", "ListStreams"]
TABLE = "outbox_soak"
LEASES = "outbox_soak-leases"

BUILD = Path(os.environ.get("BUILD") or "build")
if not BUILD.is_absolute():
    BUILD = REPO / BUILD
OUT = BUILD / "soak"
REPORT = BUILD / "soak-report.json"

T0 = time.monotonic()


def now():
    """Seconds since the soak started (every time in the report and the event log)."""
    return round(time.monotonic() - T0, 3)


def iso(wall):
    """UTC ISO 8601 with milliseconds, as outboxd's log lines start."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall * 1000) % 1000:03d}Z"


def say(line):
    print(f"[{now():7.1f}s] {line}", flush=True)


class Events:
    """What the soak did and saw, in order; written to soak/events.jsonl as it happens."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.items = []
        self.file = open(path, "w")

    def add(self, kind, **details):
        e = {"t": now(), "at": iso(time.time()), "kind": kind, **details}
        with self.lock:
            self.items.append(e)
            self.file.write(json.dumps(e) + "\n")
            self.file.flush()
        return e

    def of(self, kind):
        with self.lock:
            return [e for e in self.items if e["kind"] == kind]

    def close(self):
        self.file.close()


class Consumer:
    """The broker: an HTTP receiver on one port that records every delivery it
    acknowledges, in arrival order, and can go down (503s, then refused connections)."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.deliveries = []     # (t, wall, id, key, n, run) of each request answered 2xx
        self.refused_503 = 0
        self.malformed = []      # requests whose body was not the producer's JSON
        self.failing = False
        self.rx = None
        self.listen()

    def listen(self, timeout=30.0):
        # The port was free a moment ago; after an outage it may briefly be someone's.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rx = HttpReceiver(port=self.port, keep=False)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.rx.respond(self.answer)
        self.rx.start()

    def answer(self, req):
        if self.failing:
            with self.lock:
                self.refused_503 += 1
            return 503
        run = req.path.strip("/")
        try:
            body = json.loads(req.body)
            row = (now(), time.time(), req.headers["ce-id"], body["key"], int(body["n"]), run)
        except (ValueError, KeyError, TypeError):
            with self.lock:
                self.malformed.append({"t": now(), "run": run, "ce-id": req.headers.get("ce-id"),
                                       "body": req.body[:200].decode(errors="replace")})
            return 200
        with self.lock:
            self.deliveries.append(row)
        return 200

    def outage(self, fail_s, refuse_s):
        """503s for fail_s, then refused connections for refuse_s (the 503s first, so no
        request the receiver acknowledged is cut off by the stop)."""
        self.failing = True
        time.sleep(fail_s)
        if refuse_s > 0:
            self.rx.stop()
            time.sleep(refuse_s)
            self.listen()
        self.failing = False

    def snapshot(self):
        with self.lock:
            return list(self.deliveries)

    def stop(self):
        if self.rx is not None:
            self.rx.stop()


def metrics_totals(port):
    """{metric name: sum over its labels} from an instance's /metrics ({} if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = defaultdict(float)
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m and not line.startswith("#"):
            try:
                out[m.group(1)] += float(m.group(3))
            except ValueError:
                pass
    return dict(out)


class Instance:
    """One of the three relays. Each start is a run ("a1", "a2", ...) with its own config,
    log (soak/<run>.log), metrics port and sink path (/<run>), so every delivery names the
    process that made it."""

    def __init__(self, slot, endpoint, consumer):
        self.slot = slot
        self.endpoint = endpoint
        self.consumer = consumer
        self.lock = threading.Lock()
        self.runs = 0
        self.ids = 0
        self.instance_id = None
        self.run = None
        self.proc = None
        self.metrics_port = None
        self.down = False         # killed and not started again yet

    def config(self):
        extra = (f"leases:\n  table: {LEASES}\n  instance_id: {self.instance_id}\n"
                 f"  duration: {LEASE_SECONDS}s\n"
                 "sweep:\n  interval: 1m\n  older_than: 30s\n")
        text = relay_config(self.endpoint, TABLE,
                            http_sink("hook", f"{self.consumer.url}/{self.run}") +
                            dlq_sink(OUT / f"dlq-{self.run}.jsonl"),
                            extra=extra, metrics_port=self.metrics_port, poll="250ms",
                            max_in_flight=MAX_IN_FLIGHT, default_sink="hook")
        text = text.replace("stream:\n", f"stream:\n  start_position: {START_POSITION}\n", 1)
        return with_relay(text, max_attempts=MAX_ATTEMPTS, dead_letter_sink="dlq")

    def start(self, new_id, events):
        self.runs += 1
        fresh = new_id or self.instance_id is None
        if fresh:
            self.ids += 1
            self.instance_id = f"soak-{self.slot}{self.ids}"
        self.run = f"{self.slot}{self.runs}"
        self.metrics_port = free_port()
        cfg = OUT / f"{self.run}.yaml"
        cfg.write_text(self.config())
        self.proc = OutboxdProcess(outboxd_path(), "run", "-c", cfg, log_path=OUT / f"{self.run}.log",
                                   home=OUT)
        self.down = False
        events.add("start", run=self.run, instance_id=self.instance_id, pid=self.proc.pid,
                   restart_new_id=fresh and self.runs > 1)

    def running(self):
        return self.proc is not None and self.proc.running()


class Leases:
    """Watches the lease table (directly, not through the fault proxy): who owns which
    shard, every change of owner, and what an instance owns right now."""

    def __init__(self, ddb, events):
        self.ddb = ddb
        self.events = events
        self.lock = threading.Lock()
        self.owner = {}
        self.changes = []        # (t, shard, old owner, new owner)
        self.next_sweep = None   # the sweep item's nextSweepAt: each new value is a sweep done

    @staticmethod
    def scan(client, sweep=False):
        """The shard leases (with sweep, the sweep lease item too)."""
        items, kw = [], {}
        while True:
            page = client.scan(TableName=LEASES, ConsistentRead=True, **kw)
            items += [i for i in page["Items"] if sweep or not i["leaseKey"]["S"].startswith("sweep:")]
            if "LastEvaluatedKey" not in page:
                return items
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def owned_by(self, client, instance_id):
        """Shards instance_id holds a lease on and has not read to their end."""
        return sorted(i["leaseKey"]["S"] for i in self.scan(client)
                      if i.get("leaseOwner", {}).get("S") == instance_id
                      and i.get("checkpoint", {}).get("S") != "SHARD_END")

    def watch(self, stop):
        client = self.ddb.client()
        while not stop.wait(0.5):
            try:
                items = self.scan(client, sweep=True)
            except Exception:           # DynamoDB Local busy: next round
                continue
            t = now()
            with self.lock:
                for i in items:
                    shard, owner = i["leaseKey"]["S"], i.get("leaseOwner", {}).get("S")
                    if shard.startswith("sweep:"):
                        due = i.get("nextSweepAt", {}).get("N")
                        if due != self.next_sweep and self.next_sweep is not None:
                            self.events.add("sweep_done", by=owner, next_due_ms=due)
                        self.next_sweep = due
                        continue
                    if self.owner.get(shard) != owner:
                        self.changes.append((t, shard, self.owner.get(shard), owner))
                    self.owner[shard] = owner

    def all_owned(self, shard_ids):
        with self.lock:
            return all(self.owner.get(s) for s in shard_ids)


class Soak:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.stop_chaos = threading.Event()
        self.stop_watch = threading.Event()
        self.chaos, self.watchers = [], []
        # Every outboxd is started by this one thread, which lives to the end: a child's
        # PDEATHSIG fires when the thread that started it ends, not the process.
        self.spawner = ThreadPoolExecutor(1, thread_name_prefix="spawner")
        self.events = Events(OUT / "events.jsonl")
        self.calls = Counter()        # (op, action) of every call through the fault proxy
        self.metrics = defaultdict(float)   # outboxd's counters, summed over runs (at kill / stop)
        self.ddb = self.topology = self.faults = self.consumer = self.producer = None
        self.instances = []
        self.harness_errors = []

    # -- setting up -------------------------------------------------------------------

    def start(self):
        self.ddb = DynamoDBLocal(log_dir=OUT).start()
        init_cfg = OUT / "init.yaml"
        init_cfg.write_text(relay_config(self.ddb.endpoint, TABLE, "  - name: out\n    type: stdout\n",
                                         extra=f"leases:\n  table: {LEASES}\n"))
        r = run_outboxd_cmd(outboxd_path(), "init", "-c", init_cfg, home=OUT)
        if r.returncode != 0:
            raise RuntimeError(f"outboxd init failed ({r.returncode}): {r.stdout}{r.stderr}")
        arn = self.ddb.client().describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
        self.topology = TopologyProxy(self.ddb.endpoint, shards=ROOT_SHARDS, split_every=0,
                                      max_open=MAX_OPEN, table=TABLE).start().attach(arn)
        self.faults = FaultProxy(self.topology.endpoint).start()
        self.faults.set_rules([
            Rule(match_target=STREAMS_OPS, action="throttle", error_type="LimitExceededException",
                 probability=THROTTLE, seed=SEED + 1),
            Rule(action="throttle", probability=THROTTLE, seed=SEED + 2)])
        self.consumer = Consumer()
        self.instances = [Instance(s, self.faults.endpoint, self.consumer) for s in SLOTS]
        for inst in self.instances:
            self.start_instance(inst, False)
        self.leases = Leases(self.ddb, self.events)
        self.spawn(self.watchers, self.leases.watch, self.stop_watch)
        roots = [s["id"] for s in self.topology.shards()]
        deadline = time.monotonic() + 90
        while not self.leases.all_owned(roots):
            if time.monotonic() > deadline:
                raise RuntimeError("the root shards were not all leased within 90 s; logs in " + str(OUT))
            time.sleep(0.5)
        say(f"{len(SLOTS)} instances read {len(roots)} shards: " +
            ", ".join(f"{s[-8:]}={o}" for s, o in sorted(self.leases.owner.items())))

    def start_instance(self, inst, new_id):
        self.spawner.submit(inst.start, new_id, self.events).result()

    def spawn(self, group, fn, *args):
        def guarded():
            try:
                fn(*args)
            except Exception as e:      # a broken soak must say so, not hang or pass
                self.harness_errors.append(f"{fn.__name__}: {type(e).__name__}: {e}")
                self.events.add("harness_error", where=fn.__name__, error=f"{type(e).__name__}: {e}")
        t = threading.Thread(target=guarded, name=fn.__name__, daemon=True)
        t.start()
        group.append(t)

    def produce(self):
        count = max(KEYS, round(RATE * 60 * MINUTES / KEYS) * KEYS)
        env = tool_env()
        env["PRODUCE_IDS"] = "1"
        self.produced_path = OUT / "produced.txt"
        with open(self.produced_path, "w") as out, open(OUT / "producer.log", "w") as err:
            self.producer = subprocess.Popen(
                [tool("produce"), self.ddb.endpoint, TABLE, str(count), str(KEYS), str(PRODUCER_THREADS),
                 "16", str(RATE)], stdout=out, stderr=err, env=env,
                preexec_fn=set_pdeathsig(signal.SIGKILL))
        self.events.add("producer_start", messages=count, rate=RATE, keys=KEYS)
        return count

    # -- the trouble ---------------------------------------------------------------------

    def killer(self, rng):
        client = self.ddb.client()
        while not self.stop_chaos.wait(rng.uniform(*KILL_EVERY)):
            inst = rng.choice(self.instances)
            with inst.lock:
                if not inst.running():
                    continue
                owned = self.leases.owned_by(client, inst.instance_id)
                self.add_metrics(inst)
                inst.proc.stop(signal.SIGKILL)
                inst.down = True
                self.events.add("kill", run=inst.run, instance_id=inst.instance_id, shards_owned=len(owned),
                                shards=owned)
            time.sleep(rng.uniform(*RESTART_PAUSE))
            with inst.lock:
                self.start_instance(inst, rng.random() < 0.5)

    def outages(self, rng):
        while not self.stop_chaos.wait(rng.uniform(*OUTAGE_EVERY)):
            if rng.random() < 0.25:
                fail_s, refuse_s = rng.uniform(*LONG_OUTAGE), rng.uniform(*LONG_OUTAGE)
            else:
                fail_s, refuse_s = rng.uniform(*OUTAGE_503), rng.uniform(*OUTAGE_REFUSED)
                if refuse_s < 2:
                    refuse_s = 0.0
            e = self.events.add("sink_down", seconds_503=round(fail_s, 1), seconds_refused=round(refuse_s, 1))
            self.consumer.outage(fail_s, refuse_s)
            self.events.add("sink_up", after=round(now() - e["t"], 1))

    def splitter(self):
        while not self.stop_chaos.wait(SPLIT_SECONDS):
            closed, kids = self.topology.split_now()
            self.events.add("split", closed=closed, children=kids)

    def bookkeeper(self):
        """Tallies the fault proxy's calls (and forgets them), restarts an instance that
        exited by itself (a finding), and prints progress."""
        last_print = 0.0
        while not self.stop_watch.wait(2.0):
            self.tally_calls()
            for inst in self.instances:
                with inst.lock:
                    if inst.down or inst.running():
                        continue
                    rc = inst.proc.proc.returncode
                    self.events.add("exited", run=inst.run, instance_id=inst.instance_id, rc=rc,
                                    log_tail=inst.proc.output()[-3000:])
                    say(f"!! {inst.run} exited by itself with {rc}; started again")
                    inst.proc.stop()
                    self.start_instance(inst, False)
            if now() - last_print >= 30:
                last_print = now()
                d = self.consumer.snapshot()
                distinct = len({x[2] for x in d})
                thr = sum(v for (op, a), v in self.calls.items() if a == "throttle")
                say(f"delivered {distinct} distinct ({len(d) - distinct} repeats), "
                    f"{len(self.events.of('kill'))} kills, {len(self.events.of('sink_down'))} outages, "
                    f"{len(self.events.of('split'))} splits, {thr}/{sum(self.calls.values())} calls throttled, "
                    f"{self.topology.ingested} stream records")

    def tally_calls(self):
        for r in self.faults.take_log():
            self.calls[(r.target, r.action)] += 1

    def add_metrics(self, inst):
        for k, v in metrics_totals(inst.metrics_port).items():
            if k.endswith("_total"):
                self.metrics[k] += v

    # -- the end ---------------------------------------------------------------------------

    def end_chaos(self):
        """Stops the trouble: the last kill's instance is running again, the sink is up."""
        self.stop_chaos.set()
        for t in self.chaos:
            t.join(60)
        self.consumer.failing = False

    def end_watching(self):
        self.stop_watch.set()
        for t in self.watchers:
            t.join(30)
        self.tally_calls()

    def drain(self, produced_ids):
        """Waits (at most DRAIN_SECONDS) until every produced message was delivered and
        every item is published or dead-lettered. Returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + DRAIN_SECONDS
        while time.monotonic() < deadline:
            delivered = {x[2] for x in self.consumer.snapshot()}
            if produced_ids <= delivered and not unsettled(scan_items(self.ddb, TABLE)):
                return round(time.monotonic() - t0, 1)
            time.sleep(3)
        return None

    def stop_instances(self):
        stops = []
        for inst in self.instances:
            with inst.lock:
                self.add_metrics(inst)
                t0 = time.monotonic()
                rc = inst.proc.stop(signal.SIGTERM, timeout=40)
                stops.append({"run": inst.run, "rc": rc, "seconds": round(time.monotonic() - t0, 1)})
                self.events.add("stop", **stops[-1])
        return stops

    def cleanup(self):
        self.stop_chaos.set()
        self.stop_watch.set()
        if self.producer is not None and self.producer.poll() is None:
            self.producer.kill()
            self.producer.wait(10)
        for inst in self.instances:
            if inst.proc is not None:
                inst.proc.stop(signal.SIGTERM, timeout=10)
        self.spawner.shutdown()
        for part in (self.consumer, self.faults, self.topology, self.ddb):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    pass
        self.events.close()


def unsettled(items):
    """Items neither published nor dead-lettered."""
    return [i for i in items if not i.get("isPublished", {}).get("BOOL") and "deadLetteredAt" not in i]


def item_message(item):
    """(key, n) from an outbox item's payload."""
    body = json.loads(base64.b64decode(item["payload"]["S"]))
    return body["key"], int(body["n"])


def item_state(item):
    keep = ("isPublished", "publishedAt", "deadLetteredAt", "retryCount", "lastError", "createdAt")
    return {k: list(item[k].values())[0] for k in keep if k in item}


def producer_failed():
    """Writes the producer reported failed (its summary line), or None without one."""
    lines = (OUT / "producer.log").read_text().strip().splitlines()
    try:
        return json.loads(lines[-1])["failed"]
    except (IndexError, ValueError, KeyError):
        return None


def read_produced(path):
    """{id: (key, n, written epoch ms)} from the producer's output."""
    out = {}
    for line in path.read_text().splitlines():
        i, pk, n, ms = line.split()
        out[i] = (pk, int(n), int(ms))
    return out


# -- judging what the consumer saw ---------------------------------------------------------

def judge_order(deliveries):
    """Per-key order, judged on first deliveries: a message first delivered after a later
    message of its key was first delivered is a violation. Repeats may go back (after a
    crash a key's messages since its oldest unmarked one come again, in order): they are
    counted as backward steps, and the contract of that replay (docs/OPERATIONS.md: "13, 14,
    then 13, 14 again, never 13, 14, 13") is checked as replay skips (a repeat that goes on
    past a message of the key it did not repeat) and stale ends (a key whose last delivery
    is not its newest message)."""
    first_max = {}
    seen = set()
    last = {}
    violations, backward, skips = [], 0, []
    by_key_ns = defaultdict(set)
    for t, _, mid, key, n, run in deliveries:
        by_key_ns[key].add(n)
    order = {k: sorted(v) for k, v in by_key_ns.items()}
    pos = {k: {n: i for i, n in enumerate(v)} for k, v in order.items()}
    newest = {}
    for t, _, mid, key, n, run in deliveries:
        if mid not in seen:
            seen.add(mid)
            top = first_max.get(key)
            if top is not None and n < top[0]:
                violations.append({"key": key, "n": n, "id": mid, "t": t, "run": run,
                                   "after_n": top[0], "after_id": top[1], "after_t": top[2], "after_run": top[3]})
            if top is None or n > top[0]:
                first_max[key] = (n, mid, t, run)
        prev = last.get(key)
        if prev is not None:
            if n < prev[0]:
                backward += 1
            elif pos[key][n] > pos[key][prev[0]] + 1 and n <= newest[key]:
                skips.append({"key": key, "from_n": prev[0], "to_n": n, "t": t, "run": run,
                              "from_run": prev[1]})
        last[key] = (n, run)
        newest[key] = max(newest.get(key, n), n)
    stale = sorted(k for k, (n, _) in last.items() if n != newest[k])
    return violations, backward, skips, stale


def judge_duplicates(deliveries, kills):
    """Each repeat delivery, by what explains it: the process that first delivered the
    message was killed in between (what the bound covers), the same process delivered it
    again, or another process did while the first was not killed."""
    first = {}
    kill_times = defaultdict(list)
    for k in kills:
        kill_times[k["run"]].append(k["t"])
    kinds = Counter()
    samples = defaultdict(list)
    for t, _, mid, key, n, run in deliveries:
        if mid not in first:
            first[mid] = (t, run)
            continue
        t1, run1 = first[mid]
        if any(t1 <= tk <= t for tk in kill_times[run1]):
            kind = "after_kill_of_first_deliverer"
        elif run1 == run:
            kind = "same_process_again"
        else:
            kind = "other_process_first_not_killed"
        kinds[kind] += 1
        if len(samples[kind]) < 10:
            samples[kind].append({"id": mid, "key": key, "n": n, "first_t": t1, "first_run": run1,
                                  "again_t": t, "again_run": run})
    return dict(kinds), dict(samples)


def takeovers(changes, kills, starts):
    """Lease changes from one live owner to another (not a killed owner's lease taken
    over, not a release), each a chance to repeat up to max_in_flight."""
    killed = defaultdict(list)
    for k in kills:
        killed[k["instance_id"]].append(k["t"])
    started = defaultdict(list)
    for s in starts:
        started[s["instance_id"]].append(s["t"])
    live = []
    for t, shard, old, new in changes:
        if not old or not new or old == new:
            continue
        dead = False
        for tk in killed[old]:
            restarted = [ts for ts in started[old] if tk < ts <= t]
            if tk <= t and (not restarted or t - tk <= KILL_TAKEOVER_WINDOW):
                dead = True
        if not dead:
            live.append({"t": t, "shard": shard, "from": old, "to": new})
    return live


def stream_positions(topology, ids):
    """{id: (virtual shard, sequence number)} of the INSERT records of ids."""
    out = {}
    want = set(ids)
    for s in topology.shards():
        for r in topology.shard_records(s["id"]):
            if r.get("eventName") != "INSERT":
                continue
            sk = r["dynamodb"]["Keys"].get("sk", {}).get("S")
            if sk in want:
                out[sk] = (s["id"], r["dynamodb"]["SequenceNumber"])
    return out


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


def report(soak, produced_count, drain_s, stops):
    items = scan_items(soak.ddb, TABLE)
    table = {i["sk"]["S"]: i for i in items}
    produced = {}
    try:
        produced = read_produced(soak.produced_path)
    except (OSError, ValueError) as e:
        soak.harness_errors.append(f"reading {soak.produced_path}: {e}")
    messages = {i: (v[0], v[1]) for i, v in produced.items()}
    for sk, item in table.items():
        messages.setdefault(sk, item_message(item))
    deliveries = soak.consumer.snapshot()
    delivered = {}
    for d in deliveries:
        delivered.setdefault(d[2], d)
    lost = sorted(set(messages) - set(delivered))
    unknown = sorted(set(delivered) - set(messages))
    open_items = unsettled(items)
    dead = [i for i in items if "deadLetteredAt" in i]
    dlq_lines = sum(len(p.read_text().splitlines()) for p in OUT.glob("dlq-*.jsonl"))
    violations, backward, skips, stale = judge_order(deliveries)
    kills = soak.events.of("kill")
    exits = soak.events.of("exited")
    starts = soak.events.of("start")
    dup_count = len(deliveries) - len(delivered)
    dup_kinds, dup_samples = judge_duplicates(deliveries, kills + exits)
    live = takeovers(soak.leases.changes, kills + exits, starts)
    shard_kills = sum(k.get("shards_owned", 0) for k in kills)
    # An instance that exited by itself repeats like a killed one; its leases were not
    # read at that moment, so count it as owning an even share of the open shards.
    shard_exits = len(exits) * -(-MAX_OPEN // len(SLOTS))
    bound = (shard_kills + shard_exits + len(live)) * MAX_IN_FLIGHT
    latency = [d[1] * 1000 - produced[i][2] for i, d in delivered.items() if i in produced]
    where = stream_positions(soak.topology, lost + [v["id"] for v in violations[:20]]) \
        if lost or violations else {}
    shards = soak.topology.shards()
    throttled = sum(v for (op, a), v in soak.calls.items() if a == "throttle")
    checks = {
        "lost == 0": not lost,
        "every item published or dead-lettered": not open_items,
        "order violations == 0": not violations,
        f"duplicates <= bound ({bound})": dup_count <= bound,
        "dead letters == 0": not dead and dlq_lines == 0,
        "graceful stops exit 0": all(s["rc"] == 0 for s in stops),
        "no instance exited by itself": not exits,
        "every delivery is a produced message": not unknown and not soak.consumer.malformed,
        "relays drained in time": drain_s is not None,
        "soak machinery ran cleanly": not soak.harness_errors,
    }
    rep = {
        "passed": all(checks.values()),
        "checks": checks,
        "settings": {"minutes": MINUTES, "rate": RATE, "keys": KEYS, "instances": len(SLOTS),
                     "max_in_flight": MAX_IN_FLIGHT, "max_attempts": MAX_ATTEMPTS,
                     "lease_seconds": LEASE_SECONDS, "throttle": THROTTLE, "split_seconds": SPLIT_SECONDS,
                     "start_position": START_POSITION, "sweep": {"interval": "1m", "older_than": "30s"},
                     "seed": SEED},
        "produced": len(messages),
        "producer_written": len(produced),
        "producer_failed": producer_failed(),
        "producer_planned": produced_count,
        "delivered_distinct": len(delivered),
        "deliveries": len(deliveries),
        "lost": len(lost),
        "table": {"items": len(items), "published": sum(1 for i in items if i.get("isPublished", {}).get("BOOL")),
                  "dead_lettered": len(dead), "unsettled": len(open_items)},
        "order": {"violations": len(violations), "backward_steps": backward, "replay_skips": len(skips),
                  "stale_ends": len(stale)},
        "duplicates": {"count": dup_count, "bound": bound, "by_cause": dup_kinds,
                       "bound_parts": {"kills": len(kills), "shard_leases_killed": shard_kills,
                                       "self_exits": len(exits), "live_takeovers": len(live),
                                       "max_in_flight": MAX_IN_FLIGHT}},
        "dead_letters": {"table": len(dead), "dlq_sink": dlq_lines},
        "first_delivery_latency_ms": {"p50": pct(latency, 0.5), "p99": pct(latency, 0.99),
                                      "max": pct(latency, 1.0),
                                      "over_30s": sum(1 for x in latency if x > 30000)},
        "chaos": {"kills": len(kills), "restarts_new_id": sum(1 for x in starts if x["restart_new_id"]),
                  "sink_outages": len(soak.events.of("sink_down")),
                  "sink_outage_seconds": round(sum(e["after"] for e in soak.events.of("sink_up")), 1),
                  "consumer_503s": soak.consumer.refused_503,
                  "sweeps": len(soak.events.of("sweep_done")),
                  "splits": len(soak.events.of("split")), "shards": len(shards),
                  "open_shards": sum(1 for s in shards if not s["closed"]),
                  "calls": sum(soak.calls.values()), "throttled": throttled,
                  "lease_owner_changes": len(soak.leases.changes)},
        "drain_seconds": drain_s,
        "stops": stops,
        "outboxd_counters": {k: v for k, v in sorted(soak.metrics.items()) if k.startswith("outboxd_")
                             and any(w in k for w in ("delivered", "failed", "dead_letter", "duplicate",
                                                      "throttled", "retries", "records_read"))},
        "findings": {
            "lost": [{"id": i, "key": messages[i][0], "n": messages[i][1],
                      "stream": where.get(i), "item": item_state(table[i]) if i in table else None}
                     for i in lost[:50]],
            "unsettled": [{"id": i["sk"]["S"], **item_state(i)} for i in open_items[:50]],
            "order_violations": [{**v, "stream": where.get(v["id"])} for v in violations[:50]],
            "replay_skips": skips[:20],
            "stale_ends": stale[:20],
            "duplicate_samples": dup_samples,
            "live_takeovers": live[:50],
            "dead_letters": [{"id": i["sk"]["S"], **item_state(i)} for i in dead[:50]],
            "unknown_deliveries": unknown[:20],
            "malformed_deliveries": soak.consumer.malformed[:20],
            "self_exits": exits,
            "harness_errors": soak.harness_errors,
        },
        "logs": str(OUT),
    }
    with open(OUT / "deliveries.jsonl", "w") as f:
        for t, wall, mid, key, n, run in deliveries:
            f.write(json.dumps({"t": t, "at": iso(wall), "id": mid, "key": key, "n": n, "run": run}) + "\n")
    REPORT.write_text(json.dumps(rep, indent=2) + "\n")
    return rep


def print_report(rep):
    s, d, o, c, ch = rep["settings"], rep["duplicates"], rep["order"], rep["checks"], rep["chaos"]
    bp = d["bound_parts"]
    lat = rep["first_delivery_latency_ms"]
    print(f"""
outboxd soak: {s['minutes']:g} min, {s['rate']:g} msg/s over {s['keys']} keys, {s['instances']} instances, \
max_in_flight {s['max_in_flight']}, start_position {s['start_position']}, seed {s['seed']}
  chaos      {ch['kills']} kill -9, {ch['sink_outages']} sink outages ({ch['sink_outage_seconds']} s, \
{ch['consumer_503s']} 503s), {ch['sweeps']} sweeps, {ch['splits']} splits ({ch['shards']} shards, {ch['open_shards']} open), \
{ch['throttled']}/{ch['calls']} calls throttled, {ch['lease_owner_changes']} lease owner changes
  produced   {rep['produced']} (producer wrote {rep['producer_written']} of {rep['producer_planned']}, \
{rep['producer_failed']} failed)
  delivered  {rep['delivered_distinct']} distinct in {rep['deliveries']} deliveries; lost {rep['lost']}; \
first delivery p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms, {lat['over_30s']} over 30 s
  table      {rep['table']['published']} published, {rep['table']['dead_lettered']} dead-lettered, \
{rep['table']['unsettled']} neither
  order      {o['violations']} first-delivery violations; {o['backward_steps']} backward steps (repeats), \
{o['replay_skips']} replay skips, {o['stale_ends']} keys ending on an older message
  duplicates {d['count']} (bound {d['bound']} = ({bp['shard_leases_killed']} shard leases of {bp['kills']} \
killed instances + {bp['self_exits']} self-exits + {bp['live_takeovers']} live take-overs) x {bp['max_in_flight']}); \
by cause {d['by_cause']}
  dead       {rep['dead_letters']['table']} in the table, {rep['dead_letters']['dlq_sink']} at the dead-letter sink
  drain      {rep['drain_seconds']} s; stops {', '.join(f"{x['run']}={x['rc']} ({x['seconds']} s)" for x in rep['stops'])}
""")
    for name, ok in c.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"\n{'PASSED' if rep['passed'] else 'FAILED'}: report {REPORT}, logs {rep['logs']}")


def main():
    def interrupted(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    for sig in (signal.SIGINT, signal.SIGTERM):    # SIGINT too: a background job inherits it ignored
        signal.signal(sig, interrupted)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    REPORT.unlink(missing_ok=True)
    if not os.access(outboxd_path(), os.X_OK):
        print(f"soak: {outboxd_path()} is not built (make tests-build)", file=sys.stderr)
        return 2
    soak = Soak()
    try:
        say(f"soak for {MINUTES:g} min, seed {SEED}, logs in {OUT}")
        soak.start()
        count = soak.produce()
        soak.spawn(soak.watchers, soak.bookkeeper)
        soak.spawn(soak.chaos, soak.killer, random.Random(SEED + 10))
        soak.spawn(soak.chaos, soak.outages, random.Random(SEED + 11))
        soak.spawn(soak.chaos, soak.splitter)
        rc = soak.producer.wait()
        summary = (OUT / "producer.log").read_text().strip().splitlines()
        soak.events.add("producer_done", rc=rc, summary=summary[-1] if summary else None)
        if rc not in (0, 1):        # 1: some writes failed (counted); else it did not run
            soak.harness_errors.append(f"the producer exited with {rc}: {summary[-5:]}")
        say(f"producer done ({rc}); ending the trouble and draining")
        soak.end_chaos()
        produced_ids = set(read_produced(soak.produced_path)) | {i["sk"]["S"] for i in scan_items(soak.ddb, TABLE)}
        drain_s = soak.drain(produced_ids)
        say(f"drained in {drain_s} s" if drain_s is not None else f"not drained after {DRAIN_SECONDS:g} s")
        soak.end_watching()
        stops = soak.stop_instances()
        rep = report(soak, count, drain_s, stops)
        print_report(rep)
        return 0 if rep["passed"] else 1
    except KeyboardInterrupt as e:
        print(f"\nsoak interrupted ({e or 'SIGINT'}); logs in {OUT}", file=sys.stderr)
        return 130
    except Exception as e:
        import traceback
        traceback.print_exc()
        print(f"\nsoak could not run: {type(e).__name__}: {e}; logs in {OUT}", file=sys.stderr)
        return 2
    finally:
        soak.cleanup()


if __name__ == "__main__":
    sys.exit(main())
