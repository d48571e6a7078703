"""Writes of an item's record (mark published, dead letter) that DynamoDB refuses end in defined
states (SPEC §3): a refusal that passes is waited out, one for good is written smaller or given
up, and nothing is delivered again in a loop."""

import json

from harness.fault_proxy import Rule
from relay_util import (dlq_sink, free_port, http_sink, metric, metric_samples, produce, relay_config,
                        scan_items, wait_until, with_relay)


def test_a_mark_refused_for_a_signature_or_token_is_written_again_until_it_passes(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # A skewed clock, a token expired or a key rotated: the credentials are refused for a while,
    # then the marks pass (SPEC §6: an expired token is refreshed, never dead-lettered).
    refusals = ["InvalidSignatureException", "ExpiredTokenException", "UnrecognizedClientException",
                "MissingAuthenticationToken"]
    fault_proxy.set_rules([Rule(match_target="UpdateItem", match_body="SET isPublished", action="error",
                                error_type=name, message="Signature expired: 20260101T000000Z is now earlier "
                                "than 20260101T000500Z", times=3) for name in refusals])
    port = free_port()
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 20, 4)
    assert http_receiver.wait_for(20, timeout=60), d.output()
    assert wait_until(lambda: all(i.get("isPublished", {}).get("BOOL") for i in scan_items(ddb, table)), 40), \
        [(i["sk"]["S"], i.get("lastError")) for i in scan_items(ddb, table)
         if not i.get("isPublished", {}).get("BOOL")]
    items = scan_items(ddb, table)
    assert len(items) == 20 and not any("deadLetteredAt" in i for i in items)
    samples = metric_samples(port)
    assert metric(samples, "outboxd_item_writes_given_up_total", write="published") == 0
    assert metric(samples, "outboxd_item_write_failures_total", write="published", error="permanent") == 0
    assert metric(samples, "outboxd_item_write_failures_total", write="published", error="transient") == 12
    assert len(http_receiver.requests) == 20
    assert d.stop() == 0
