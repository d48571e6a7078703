/* metrics_dump: fills the metrics registry with series of every kind, odd
 * label values and a dropped series, and prints ob_metrics_render, for
 * tests/integration/test_metrics_text.py to parse with prometheus_client. */
#include <stdio.h>

#include "core/buf.h"
#include "ops/metrics.h"

static void sink_labels(struct ob_buf *b, const char *sink)
{
    ob_buf_reset(b);
    ob_buf_puts(b, "sink=\"");
    ob_metrics_escape(b, sink);
    ob_buf_putc(b, '"');
}

int main(void)
{
    struct ob_buf l = { 0 };

    sink_labels(&l, "kafka");
    ob_metric_count("outboxd_messages_delivered_total", l.data, 41);
    ob_metric_count("outboxd_messages_delivered_total", l.data, 1);
    ob_metric_set(ob_metric_series("outboxd_sink_up", l.data), 1);
    struct ob_metric_series *lat = ob_metric_series("outboxd_delivery_latency_seconds", l.data);
    ob_metric_observe(lat, 0.004);
    ob_metric_observe(lat, 0.2);
    ob_metric_observe(lat, 0.2);
    ob_metric_observe(lat, 7);
    ob_metric_observe(lat, 1e6);

    sink_labels(&l, "we\"ird\\sink\nname");
    ob_metric_count("outboxd_messages_failed_total", l.data, 2);
    ob_metric_set(ob_metric_series("outboxd_sink_up", l.data), 0);
    ob_metric_observe(ob_metric_series("outboxd_delivery_latency_seconds", l.data), 0.5);

    ob_metric_count("outboxd_messages_dead_lettered_total", "reason=\"poison\"", 1);
    ob_metric_count("outboxd_stream_records_read_total", "", 1234);
    ob_metric_set(ob_metric_series("outboxd_stream_lag_seconds", "shard=\"shardId-0001\""), 0.25);
    ob_metric_set(ob_metric_series("outboxd_stream_lag_seconds", "shard=\"shardId-0002\""), 9);
    ob_metric_drop("outboxd_stream_lag_seconds", "shard=\"shardId-0002\"");
    ob_metric_count("outboxd_consumed_capacity_units_total", "kind=\"write\",operation=\"UpdateItem\",table=\"outbox\"",
                    2.5);
    ob_metric_count("outboxd_throttled_requests_total", "operation=\"GetRecords\"", 3);
    ob_metric_set(ob_metric_series("outboxd_shards_owned", ""), 4);

    ob_buf_reset(&l);
    ob_metrics_render(&l);
    fputs(ob_buf_cstr(&l), stdout);
    ob_buf_free(&l);
    ob_metrics_reset();
    return ferror(stdout) ? 1 : 0;
}
