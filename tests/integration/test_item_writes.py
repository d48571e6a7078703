"""Writes of an item's record (mark published, dead letter) that DynamoDB refuses end in defined
states (SPEC §3): a refusal that passes is waited out, one for good is written smaller or given
up, and nothing is delivered again in a loop."""

import time

from harness.fault_proxy import Rule
from harness.http_receiver import HttpReceiver
from relay_util import (create_outbox_table, dead_letter_config, free_port, http_sink, lines_of, metric, metric_samples,
                        produce, relay_config, scan_items, wait_until, with_relay)


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
    # Each refusal costs a write that is tried again; an expired token's three are first retried
    # by the AWS client itself, after asking for fresh credentials, so fewer may reach the relay.
    assert 9 <= metric(samples, "outboxd_item_write_failures_total", write="published", error="transient") <= 12
    assert len(http_receiver.requests) == 20
    assert d.stop() == 0


def with_message_type(type_key):
    """A GetRecords rewrite: every new item's messageType becomes an attribute value of type
    type_key (a poison item whose reason, in lastError, quotes type_key)."""
    def rewrite(answer):
        for r in answer.get("Records", []):
            image = r.get("dynamodb", {}).get("NewImage")
            if image and r.get("eventName") == "INSERT":
                image["messageType"] = {type_key: "x"}
        return answer
    return rewrite


def test_a_dead_letter_record_written_again_keeps_no_ttl_whatever_its_last_error_says(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    # The dead-letter sink rejects the dead letter (so no ttl, SPEC §3); DynamoDB refuses the
    # first record for good, so it is written again shorter. lastError quotes "#ttl".
    fault_proxy.set_rules([Rule(match_target="GetRecords", action="rewrite", rewrite=with_message_type("#ttl")),
                           Rule(match_target="UpdateItem", match_body="deadLetteredAt", action="error",
                                error_type="ValidationException", message="refused by the test", times=1)])
    dl = HttpReceiver().start()
    try:
        dl.respond(lambda req: 422)
        cfg = tmp_config(with_relay(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url)
                                                 + http_sink("dlq", dl.url), default_sink="hook"),
                                    dead_letter_sink="dlq"))
        d = spawn_outboxd("run", "-c", cfg)
        produce(ddb.endpoint, table, 1, 1)
        assert wait_until(lambda: any("deadLetteredAt" in i for i in scan_items(ddb, table)), 30), \
            d.output()[-3000:]
        [item] = scan_items(ddb, table)
        assert "(#ttl)" in item["lastError"]["S"] and "HTTP 422" in item["lastError"]["S"], item
        assert "ttl" not in item, item
        assert len(dl.requests) == 1 and http_receiver.requests == []
        assert d.stop() == 0
    finally:
        dl.stop()


def near_limit_item(ddb, table, pk, sk):
    """An unpublished item as large as DynamoDB takes less 12 bytes (room for isPublished = true,
    not for publishedAt and ttl), its payload valid base64. Its size is found on a scratch table."""
    scratch = create_outbox_table(ddb, table + "_size")
    c = ddb.client()

    def item(n):
        return {"pk": {"S": pk}, "sk": {"S": sk}, "messageType": {"S": "Big"},
                "createdAt": {"S": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())},
                "payload": {"S": "A" * n}}
    lo, hi = 300_000, 420_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            c.put_item(TableName=scratch, Item=item(mid))
            lo = mid
        except c.exceptions.ClientError:
            hi = mid - 1
    n = (lo - 12) // 4 * 4
    assert n + len("publishedAt") + 24 > lo    # the whole mark does not fit
    return item(n)


def test_an_item_too_big_for_the_whole_mark_is_marked_published_with_the_minimal_mark(
        ddb, table, tmp_config, spawn_outboxd, http_receiver):
    item = near_limit_item(ddb, table, "big", "big-1")
    port = free_port()
    cfg = tmp_config(relay_config(ddb.endpoint, table, http_sink("hook", http_receiver.url), metrics_port=port))
    d = spawn_outboxd("run", "-c", cfg)
    ddb.client().put_item(TableName=table, Item=item)
    produce(ddb.endpoint, table, 5, 1)
    assert http_receiver.wait_for(6, timeout=60), d.output()
    assert wait_until(lambda: all(i.get("isPublished", {}).get("BOOL") for i in scan_items(ddb, table)), 20), \
        [(i["sk"]["S"], i.get("lastError"), "deadLetteredAt" in i) for i in scan_items(ddb, table)
         if not i.get("isPublished", {}).get("BOOL")]
    [big] = [i for i in scan_items(ddb, table) if i["pk"]["S"] == "big"]
    assert "deadLetteredAt" not in big and "publishedAt" not in big and "ttl" not in big
    samples = metric_samples(port)
    assert metric(samples, "outboxd_item_writes_given_up_total", write="published") == 0
    assert metric(samples, "outboxd_item_write_failures_total", write="published", error="permanent") == 1
    assert "published without publishedAt and ttl" in d.output()
    assert len(http_receiver.requests) == 6
    assert d.stop() == 0


SWEEP_EVERY_1S = "sweep:\n  interval: 1s\n  older_than: 1s\nleases:\n  duration: 3s\n"
# Every write to an outbox item (only they have "pk") is refused, as by a policy denying UpdateItem.
DENY_ITEM_WRITES = Rule(match_target="UpdateItem", match_body='"pk"', action="error",
                        error_type="AccessDeniedException", message="not authorized to perform: dynamodb:UpdateItem")


def test_a_delivered_item_whose_every_write_is_refused_is_not_delivered_again_by_the_sweeps(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver):
    fault_proxy.set_rules([DENY_ITEM_WRITES])
    port = free_port()
    cfg = tmp_config(relay_config(fault_proxy.endpoint, table, http_sink("hook", http_receiver.url),
                                  metrics_port=port, extra=SWEEP_EVERY_1S))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 1, 1)
    assert http_receiver.wait_for(1, timeout=30), d.output()
    time.sleep(10)                                      # 5 sweeps or so
    assert len(http_receiver.requests) == 1, f"{len(http_receiver.requests)} deliveries of one message"
    assert "no sweep sends it again until a restart" in d.output()
    samples = metric_samples(port)
    assert metric(samples, "outboxd_item_writes_given_up_total", write="published") == 1
    assert d.stop() == 0


def test_a_dead_letter_whose_every_record_is_refused_is_not_dead_lettered_again_by_the_sweeps(
        ddb, table, fault_proxy, tmp_config, spawn_outboxd, http_receiver, tmp_path):
    fault_proxy.set_rules([DENY_ITEM_WRITES])
    http_receiver.respond(lambda req: 400)
    dlq = tmp_path / "dlq.jsonl"
    port = free_port()
    cfg = tmp_config(dead_letter_config(fault_proxy.endpoint, table, http_receiver.url, dlq, max_attempts=1,
                                        metrics_port=port, extra=SWEEP_EVERY_1S))
    d = spawn_outboxd("run", "-c", cfg)
    produce(ddb.endpoint, table, 1, 1)
    assert wait_until(lambda: len(lines_of(dlq)) == 1, 30), d.output()
    time.sleep(10)
    assert len(lines_of(dlq)) == 1, f"{len(lines_of(dlq))} dead letters of one message"
    assert len(http_receiver.requests) == 1
    assert metric(metric_samples(port), "outboxd_item_writes_given_up_total", write="dead_letter") == 1
    assert d.stop() == 0
