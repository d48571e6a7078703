"""outboxd's /metrics text, as build/tools/metrics_dump renders it, read by the
Prometheus project's own parser (prometheus_client.parser), which raises on any
line it cannot read. Families, types, label unescaping and histogram buckets
must come back as written."""

import math
import subprocess

import pytest

from outboxd_config import tool

parser = pytest.importorskip("prometheus_client.parser")

SPEC_FAMILIES = {
    "outboxd_messages_delivered": "counter",
    "outboxd_messages_failed": "counter",
    "outboxd_messages_dead_lettered": "counter",
    "outboxd_messages_duplicate": "counter",
    "outboxd_delivery_latency_seconds": "histogram",
    "outboxd_stream_records_read": "counter",
    "outboxd_stream_lag_seconds": "gauge",
    "outboxd_consumed_capacity_units": "counter",
    "outboxd_throttled_requests": "counter",
    "outboxd_shards_owned": "gauge",
    "outboxd_sink_up": "gauge",
}
WEIRD = 'we"ird\\sink\nname'


@pytest.fixture(scope="module")
def families():
    out = subprocess.run([tool("metrics_dump")], check=True, capture_output=True, text=True, timeout=30).stdout
    # prometheus_client drops the _total suffix from counter family names.
    return {f.name: f for f in parser.text_string_to_metric_families(out)}


def samples(fam, name=None):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for s in fam.samples if name is None or s.name == name}


def test_every_spec_family_is_there_with_its_type(families):
    for name, kind in SPEC_FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name


def test_counters_and_gauges_read_back(families):
    assert samples(families["outboxd_messages_delivered"]) == {
        ("outboxd_messages_delivered_total", (("sink", "kafka"),)): 42.0}
    assert samples(families["outboxd_consumed_capacity_units"]) == {
        ("outboxd_consumed_capacity_units_total",
         (("kind", "write"), ("operation", "UpdateItem"), ("table", "outbox"))): 2.5}
    assert samples(families["outboxd_shards_owned"]) == {("outboxd_shards_owned", ()): 4.0}
    assert samples(families["outboxd_stream_records_read"]) == {
        ("outboxd_stream_records_read_total", ()): 1234.0}


def test_unlabelled_families_have_a_zero_sample_before_any_update(families):
    assert samples(families["outboxd_messages_duplicate"]) == {("outboxd_messages_duplicate_total", ()): 0.0}


def test_escaped_label_values_unescape_to_the_original(families):
    assert samples(families["outboxd_messages_failed"]) == {
        ("outboxd_messages_failed_total", (("sink", WEIRD),)): 2.0}
    assert samples(families["outboxd_sink_up"]) == {
        ("outboxd_sink_up", (("sink", "kafka"),)): 1.0,
        ("outboxd_sink_up", (("sink", WEIRD),)): 0.0,
    }


def test_dropped_series_are_gone(families):
    assert samples(families["outboxd_stream_lag_seconds"]) == {
        ("outboxd_stream_lag_seconds", (("shard", "shardId-0001"),)): 0.25}


def test_histogram_buckets_are_cumulative_and_end_in_inf(families):
    fam = families["outboxd_delivery_latency_seconds"]
    buckets = [(float(s.labels["le"]), s.value) for s in fam.samples
               if s.name.endswith("_bucket") and s.labels["sink"] == "kafka"]
    bounds = [b for b, _ in buckets]
    assert bounds == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, math.inf]
    counts = dict(buckets)
    assert counts[0.005] == 1 and counts[0.1] == 1 and counts[0.25] == 3 and counts[5] == 3
    assert counts[10] == 4 and counts[300] == 4 and counts[math.inf] == 5
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)
    s = samples(fam)
    assert s[("outboxd_delivery_latency_seconds_count", (("sink", "kafka"),))] == 5
    assert s[("outboxd_delivery_latency_seconds_sum", (("sink", "kafka"),))] == pytest.approx(1e6 + 7.404)
    assert s[("outboxd_delivery_latency_seconds_count", (("sink", WEIRD),))] == 1
