"""What the issue of the broker sinks asks of each of them, written once: the relay drains
5,000 messages over 50 keys into the real broker (or emulator), the test consumes them back
with the broker's own client and hands them here as Received tuples.

    def test_sqs_fifo_...(ddb, tmp_config, spawn_outboxd, fauxqs):
        run = BrokerRun(ddb, tmp_config, spawn_outboxd, "outbox_sqs", sink_yaml("sqs", {...}),
                        default_sink="sqs")
        run.produce()                      # 5,000 over 50 keys, written while it runs
        received = ...consume until len(received) >= run.count...
        run.check(received)                # each once, per-key order
        check_ce(received[0].attrs, run.table)   # structured=False for a binary binding
        run.stop()

A broker outage in the middle of that run: run.produce_through_outage(broker, run.a_fifth_delivered,
down=run.sink_down) instead of run.produce(), then consume; run.check(received, max_duplicates=...)
and run.no_dead_letters(). With dlq=path the run's dead letters go to a file sink:
run.check_too_large(sk, ...) and run.check_rejected(ids, ...) are the issue's two dead-letter
rules. message() is one message for sink_publish (the sink without the relay).
"""

import base64
import collections
import concurrent.futures
import json
import time

from relay_util import (check_per_key_order, check_strict_order, create_outbox_table, dlq_sink, free_port, lines_of,
                        metric, metric_samples, produce, relay_config, scan_items, wait_until, with_relay)

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


def ce_id(body):
    """The id of a structured CloudEvent (a queue message's Body, an event's Detail, a record's Data)."""
    return json.loads(body)["id"]


def _json_bytes(payload):
    """payload as bytes: bytes as they are, text as UTF-8, anything else as its JSON."""
    if isinstance(payload, bytes):
        return payload
    return (payload if isinstance(payload, str) else json.dumps(payload)).encode()


class BrokerRun:
    def __init__(self, ddb, tmp_config, spawn_outboxd, table, sinks, default_sink=None, extra="", count=5000,
                 keys=50, max_in_flight=64, metrics_port=None, relay=None, dlq=None, start=True, **config):
        """sinks: the `sinks:` items (relay_util.sink_yaml); default_sink: the sink under test
        (whose metrics sink_up() and delivered() read); relay: `relay:` keys to set
        ({"max_attempts": 3}); dlq: a path where dead letters go (the file sink dlq); config:
        more relay_config keys (log_level="debug"). start=False: the relay starts at start()
        (after messages put() before it)."""
        self.ddb, self.spawn_outboxd = ddb, spawn_outboxd
        self.count, self.keys = count, keys
        self.sink, self.dlq = default_sink, dlq
        self.metrics_port = metrics_port or free_port()
        self.table = create_outbox_table(ddb, table)
        relay = dict(relay or {})
        if dlq:
            sinks += dlq_sink(dlq)
            relay["dead_letter_sink"] = "dlq"
        text = relay_config(ddb.endpoint, self.table, sinks, extra=extra, metrics_port=self.metrics_port,
                            max_in_flight=max_in_flight, default_sink=default_sink, **config)
        self.config = tmp_config(with_relay(text, **relay) if relay else text)
        self.daemon = None
        self.rows = None
        if start:
            self.start()

    def start(self):
        self.daemon = self.spawn_outboxd("run", "-c", self.config)
        return self

    def produce(self, count=None, keys=None):
        """Writes the messages (all of them before it returns); their (id, pk, n, ms) rows."""
        self.rows = produce(self.ddb.endpoint, self.table, count or self.count, keys or self.keys, threads=16,
                            ids=True)
        return self.rows

    def ids(self):
        """The ids of the messages produce() wrote."""
        return [r[0] for r in self.rows]

    def put(self, pk, sk, payload, headers=None):
        """One unpublished message sk (its id) of key pk; payload: its JSON (message())."""
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "messageType": {"S": "Test.Event"},
                "aggregateType": {"S": "Test"}, "aggregateId": {"S": pk},
                "payload": {"S": base64.b64encode(_json_bytes(payload)).decode()},
                "createdAt": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}}
        if headers:
            item["headers"] = {"S": json.dumps(headers)}
        self.ddb.client().put_item(TableName=self.table, Item=item)
        return sk

    def produce_through_outage(self, broker, begun, seconds=30, down=None):
        """produce(), and meanwhile, once begun() (some messages arrived), stops broker (a
        ChildServer or anything with stop() and start()) for seconds and starts it again; the
        outage must come before every message is published. down(), when given, must come
        true while it is stopped and still hold at its end (the sink seen down, and not up
        again without its broker). Returns the rows once every message is written and the
        broker is back."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            producing = pool.submit(self.produce)
            try:
                assert wait_until(begun, 120, interval=0.2), self.daemon.output()[-3000:]
                broker.stop()
                stopped = time.monotonic()
                published = sum(1 for i in scan_items(self.ddb, self.table) if i["isPublished"]["BOOL"])
                assert published < self.count, "the outage came after the run"
                print(f"\nthe broker stopped for {seconds} s when {published} of {self.count} were published")
                if down:
                    assert wait_until(down, seconds), "the sink was not seen down during the outage"
                time.sleep(max(0.0, seconds - (time.monotonic() - stopped)))
                if down:
                    assert down(), "the sink was up again before its broker"
                broker.start()
            finally:
                rows = producing.result()
        return rows

    def through_an_outage(self, broker, seconds=30):
        """The issue's outage run: produce_through_outage once a fifth is delivered (the sink
        seen down meanwhile), then every item published, nothing dead-lettered, the sink up."""
        self.produce_through_outage(broker, self.a_fifth_delivered, seconds, down=self.sink_down)
        self.all_published(timeout=180)
        self.no_dead_letters()
        assert self.sink_up() == 1

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

    def item(self, sk):
        return next(i for i in scan_items(self.ddb, self.table) if i["sk"]["S"] == sk)

    def dead_letters(self):
        """The items recorded as dead-lettered."""
        return [i for i in scan_items(self.ddb, self.table) if "deadLetteredAt" in i]

    def no_dead_letters(self):
        dl = self.dead_letters()
        assert not dl, f"{len(dl)} dead letters, e.g. {dl[0].get('lastError')}"
        if self.dlq:
            assert self.letters() == []

    def letters(self):
        """The lines the dead-letter sink (dlq) wrote."""
        return lines_of(self.dlq)

    def _dead_lettered(self, ids, timeout):
        """Waits until the dlq holds ids (and nothing else); {id: (its line, its item)}, each
        item marked dead-lettered with its line's reason as its lastError."""
        assert wait_until(lambda: len(self.letters()) >= len(ids), timeout), self.daemon.output()[-3000:]
        lines = {x["id"]: x for x in self.letters()}
        assert sorted(lines) == sorted(ids)
        out = {}
        for i in ids:
            item = self.item(i)
            assert "deadLetteredAt" in item and lines[i]["deadletterreason"] == item["lastError"]["S"], item
            out[i] = lines[i], item
        return out

    def check_too_large(self, sk, error, timeout=30):
        """sk was dead-lettered at its first attempt as too_large, its lastError holding error;
        counted as such. Returns its item."""
        (_, item), = self._dead_lettered([sk], timeout).values()
        assert item["lastError"]["S"].startswith("too_large: ") and error in item["lastError"]["S"], item
        assert item["retryCount"]["N"] == "1"
        assert wait_until(lambda: self.metric("outboxd_messages_dead_lettered_total", reason="too_large") == 1, 10)
        return item

    def check_rejected(self, ids, attempts, error, timeout=60):
        """The messages ids (and only they) were dead-lettered after `attempts` attempts, each
        lastError holding error; counted as dead-lettered for attempts; the sink stayed up (a
        rejection is its message's, not the sink's)."""
        for _, item in self._dead_lettered(ids, timeout).values():
            assert item["retryCount"]["N"] == str(attempts) and error in item["lastError"]["S"], item
        assert wait_until(lambda: self.metric("outboxd_messages_dead_lettered_total", reason="attempts") == len(ids),
                          10)
        assert self.sink_up() == 1

    def metric(self, name, **labels):
        return metric(metric_samples(self.metrics_port), name, **labels)

    def sink_up(self):
        """outboxd_sink_up of the sink under test (None before the metrics answer)."""
        return metric_samples(self.metrics_port).get(("outboxd_sink_up", frozenset({"sink": self.sink}.items())))

    def sink_down(self):
        return self.sink_up() == 0

    def delivered(self):
        """Messages the sink under test acknowledged (outboxd_messages_delivered_total)."""
        return self.metric("outboxd_messages_delivered_total", sink=self.sink)

    def a_fifth_delivered(self):
        """When an outage begins: a fifth of the run delivered, most of it still to come."""
        return self.delivered() >= self.count // 5

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


def check_queue_binding(messages, received):
    """SPEC §4's binding of SQS and SNS as an SQS FIFO queue received it (a FIFO queue, or one
    subscribed to a FIFO topic): MessageGroupId the key, MessageDeduplicationId the id, the
    message's headers (produce.c's x-n) its message attributes."""
    for m, r in zip(messages, received):
        assert (m["Attributes"]["MessageGroupId"], m["Attributes"]["MessageDeduplicationId"]) == (r.key, r.id)
        assert m["MessageAttributes"]["x-n"]["StringValue"] == str(r.n)


def receive_every(sqs, queue_url, ids, timeout=180, settle=3):
    """Receives (and deletes) from an SQS queue (harness.fauxqs's client) until a message of
    each of ids came, then for settle seconds what else comes (repeats): the messages in the
    order received."""
    out, missing = [], set(ids)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        got = sqs.receive_all(queue_url, len(missing), timeout=max(1, deadline - time.monotonic()))
        out += got
        missing -= {ce_id(m["Body"]) for m in got}
    return out + sqs.receive_all(queue_url, 10_000, timeout=settle)


def message(sk, pk="key-1", payload=None, **fields):
    """A message as sink_publish reads it, as produce.c would write it: type Test.Event of
    aggregate Test whose id is pk; payload (bytes, JSON text or an object for its JSON) {"n": 1} unless
    given; fields add or replace (headers={...}, destination=..., createdAt=None for none)."""
    m = {"pk": pk, "sk": sk, "messageType": "Test.Event", "aggregateType": "Test", "aggregateId": pk,
         "createdAt": "2025-11-25T22:05:12.123Z",
         "payload_b64": base64.b64encode(_json_bytes({"n": 1} if payload is None else payload)).decode()}
    m.update(fields)
    return m


def by_sk(results):
    """sink_publish's results by message."""
    return {r["sk"]: r for r in results}


def oversize_payload(limit):
    """A JSON payload of a little more than limit bytes."""
    return json.dumps({"pad": "x" * (limit + 1024)})
