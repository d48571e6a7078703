"""What the issue of the broker sinks asks of each of them, written once: the relay drains
5,000 messages over 50 keys into the real broker (or emulator), the test consumes them back
with the broker's own client and hands them here as Received tuples.

    def test_sqs_fifo_...(ddb, tmp_config, spawn_outboxd, fauxqs):
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs", sink_yaml)
        run.produce()                      # 5,000 over 50 keys, written while it runs
        received = ...consume until len(received) >= run.count...
        run.check(received)                # each once, per-key order
        check_ce(received[0].attrs, run.table)   # structured=False for a binary binding
        run.stop()

A broker outage in the middle of that run: run.produce_through_outage(broker, begun) instead
of run.produce(), then consume; run.check(received, max_duplicates=...) and
run.no_dead_letters().
"""

import collections
import concurrent.futures
import json
import time

from relay_util import (check_per_key_order, check_strict_order, create_outbox_table, produce, relay_config,
                        scan_items, wait_until, with_relay)

# One message as consumed: its key (pk), its number within the key (the payload's n),
# its CloudEvents id and every CloudEvents attribute the binding carried
# ({"specversion": "1.0", "type": ..., "data": ...} for a structured body, the
# ce_ headers without the prefix for a binary one).
Received = collections.namedtuple("Received", "key n id attrs")


def structured_received(body):
    """Received of a structured CloudEvent (a JSON document as SQS, SNS, Kinesis carry it)."""
    ce = json.loads(body)
    data = ce.get("data")
    return Received(ce["partitionkey"], data["n"], ce["id"], ce)


class BrokerRun:
    def __init__(self, ddb, tmp_config, spawn_outboxd, table, sinks, default_sink=None, extra="", count=5000,
                 keys=50, max_in_flight=64, metrics_port=None, relay=None):
        """relay: `relay:` keys to set ({"max_attempts": 3, "dead_letter_sink": "dlq"})."""
        self.ddb = ddb
        self.count, self.keys = count, keys
        self.table = create_outbox_table(ddb, table)
        text = relay_config(ddb.endpoint, self.table, sinks, extra=extra, metrics_port=metrics_port,
                            max_in_flight=max_in_flight, default_sink=default_sink)
        self.config = tmp_config(with_relay(text, **relay) if relay else text)
        self.daemon = spawn_outboxd("run", "-c", self.config)
        self.rows = None
        self.producer = None

    def produce(self, count=None, keys=None):
        """Writes the messages (all of them before it returns); their (id, pk, n, ms) rows."""
        self.rows = produce(self.ddb.endpoint, self.table, count or self.count, keys or self.keys, threads=16,
                            ids=True)
        return self.rows

    def produce_through_outage(self, broker, begun, seconds=30, down=None):
        """produce(), and meanwhile, once begun() (some messages arrived), stops broker (a
        ChildServer or anything with stop() and start()) for seconds and starts it again.
        down(), when given, must come true while it is stopped (the sink seen down). Returns
        the rows once every message is written and the broker is back."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            producing = pool.submit(self.produce)
            try:
                assert wait_until(begun, 120, interval=0.2), self.daemon.output()[-3000:]
                broker.stop()
                stopped = time.monotonic()
                if down:
                    assert wait_until(down, seconds), "the sink was not seen down during the outage"
                time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
                broker.start()
            finally:
                rows = producing.result()
        return rows

    def check(self, received, max_duplicates=0):
        """Every message written arrived, at most max_duplicates of them twice or more, and each
        key's messages in order (after a repeat, again in order from the repeated one)."""
        assert self.rows is not None, "produce() first"
        ids = [r.id for r in received]
        missing = set(r[0] for r in self.rows) - set(ids)
        assert not missing, f"{len(missing)} messages never arrived, e.g. {sorted(missing)[:5]}"
        dup = len(ids) - len(set(ids))
        assert dup <= max_duplicates, f"{dup} duplicates (at most {max_duplicates} allowed)"
        triples = [(r.key, r.n, r.id) for r in received]
        if max_duplicates == 0:
            assert check_strict_order(triples) == {}
        else:
            assert check_per_key_order(triples) == []
        return dup

    def all_published(self, timeout=120):
        """Every item ends marked published; none dead-lettered."""
        ok = wait_until(lambda: all(i["isPublished"]["BOOL"] for i in scan_items(self.ddb, self.table)), timeout,
                        interval=1)
        assert ok, self.daemon.output()[-4000:]

    def dead_letters(self):
        """The items recorded as dead-lettered."""
        return [i for i in scan_items(self.ddb, self.table) if "deadLetteredAt" in i]

    def no_dead_letters(self):
        dl = self.dead_letters()
        assert not dl, f"{len(dl)} dead letters, e.g. {dl[0].get('lastError')}"

    def stop(self):
        assert self.daemon.stop() == 0, self.daemon.output()[-4000:]


# The attributes SPEC §4 maps, as produce.c writes them: pk "key-K", type "Test.EventN",
# aggregate type "Test", aggregate id = pk, content-type application/json.
def check_ce(attrs, table, structured=True):
    """A message's CloudEvents attributes as the broker carried them (structured: the JSON
    document; binary: the headers' names without the binding's prefix, values as strings)."""
    assert attrs["specversion"] == "1.0"
    assert attrs["id"]
    assert attrs["type"].startswith("Test.Event")
    assert attrs["source"] == f"/{table}/Test"
    assert attrs["subject"] == attrs["partitionkey"] and attrs["partitionkey"].startswith("key-")
    assert attrs["time"].endswith("Z") and "T" in attrs["time"]
    if structured:
        assert attrs["datacontenttype"] == "application/json"
        assert isinstance(attrs["data"], dict) and "n" in attrs["data"]


def oversize_payload(limit):
    """A JSON payload of a little more than limit bytes."""
    return json.dumps({"pad": "x" * (limit + 1024)})
