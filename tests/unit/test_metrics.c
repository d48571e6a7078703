/* The metrics registry and its Prometheus text rendering. */
#include "test.h"

#include <pthread.h>

#include "ops/metrics.h"

/* The rendered lines of one family, HELP and TYPE excluded; the caller frees it. */
static char *family_samples(const char *family)
{
    struct ob_buf all = { 0 }, mine = { 0 };
    ob_metrics_render(&all);
    size_t n = strlen(family);
    for (char *line = all.data; line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (strncmp(line, family, n) == 0 && (line[n] == ' ' || line[n] == '{' || line[n] == '_'))
            ob_buf_append(&mine, line, len);
        line += len;
    }
    ob_buf_free(&all);
    if (!mine.data)
        return ob_xstrdup("");
    return ob_buf_steal(&mine);
}

static int count_occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

TEST(histogram_renders_cumulative_buckets_sum_and_count)
{
    ob_metrics_reset();
    struct ob_metric_series *s = ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"kafka\"");
    CHECK(s);
    ob_metric_observe(s, 0.003);
    ob_metric_observe(s, 0.01); /* on a bound: counted in that bucket (le is <=) */
    ob_metric_observe(s, 0.7);
    ob_metric_observe(s, 1000);
    char *got = family_samples("outboxd_delivery_latency_seconds");
    CHECK_STR(got, "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.005\"} 1\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.01\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.025\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.05\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.1\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.25\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"0.5\"} 2\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"1\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"2.5\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"5\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"10\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"30\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"60\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"300\"} 3\n"
                   "outboxd_delivery_latency_seconds_bucket{sink=\"kafka\",le=\"+Inf\"} 4\n"
                   "outboxd_delivery_latency_seconds_sum{sink=\"kafka\"} 1000.713\n"
                   "outboxd_delivery_latency_seconds_count{sink=\"kafka\"} 4\n");
    free(got);
    CHECK(ob_metric_get(s) == 4.0);
    ob_metrics_reset();
}

TEST(histogram_family_is_declared_as_histogram_once)
{
    ob_metrics_reset();
    ob_metric_observe(ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"a\""), 1);
    ob_metric_observe(ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"b\""), 2);
    struct ob_buf out = { 0 };
    ob_metrics_render(&out);
    CHECK(strstr(out.data, "# TYPE outboxd_delivery_latency_seconds histogram\n"));
    CHECK_INT(count_occurrences(out.data, "# TYPE outboxd_delivery_latency_seconds "), 1);
    CHECK_INT(count_occurrences(out.data, "# HELP outboxd_delivery_latency_seconds "), 1);
    CHECK(strstr(out.data, "outboxd_delivery_latency_seconds_count{sink=\"a\"} 1\n"));
    CHECK(strstr(out.data, "outboxd_delivery_latency_seconds_sum{sink=\"b\"} 2\n"));
    ob_buf_free(&out);
    ob_metrics_reset();
}

TEST(add_and_set_leave_histograms_alone_and_observe_leaves_counters_alone)
{
    ob_metrics_reset();
    struct ob_metric_series *h = ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"a\"");
    struct ob_metric_series *c = ob_metric_series("outboxd_messages_delivered_total", "sink=\"a\"");
    ob_metric_add(h, 5);
    ob_metric_set(h, 5);
    ob_metric_observe(c, 5);
    CHECK(ob_metric_get(h) == 0.0);
    CHECK(ob_metric_get(c) == 0.0);
    ob_metrics_reset();
}

TEST(every_spec_family_has_help_and_type)
{
    static const char *const spec[][2] = {
        { "outboxd_messages_delivered_total", "counter" },
        { "outboxd_messages_failed_total", "counter" },
        { "outboxd_messages_dead_lettered_total", "counter" },
        { "outboxd_messages_duplicate_total", "counter" },
        { "outboxd_delivery_latency_seconds", "histogram" },
        { "outboxd_stream_records_read_total", "counter" },
        { "outboxd_stream_lag_seconds", "gauge" },
        { "outboxd_consumed_capacity_units_total", "counter" },
        { "outboxd_throttled_requests_total", "counter" },
        { "outboxd_shards_owned", "gauge" },
        { "outboxd_sink_up", "gauge" },
    };
    ob_metrics_reset();
    struct ob_buf out = { 0 };
    ob_metrics_render(&out);
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        char type[160], help[160];
        snprintf(type, sizeof type, "# TYPE %s %s\n", spec[i][0], spec[i][1]);
        snprintf(help, sizeof help, "# HELP %s ", spec[i][0]);
        if (!strstr(out.data, type) || count_occurrences(out.data, help) != 1) {
            ob_test_fail(__FILE__, __LINE__, "%s: no single HELP and '%s'", spec[i][0], type);
            break;
        }
    }
    ob_buf_free(&out);
}

TEST(unlabelled_families_render_zero_before_the_first_update)
{
    ob_metrics_reset();
    char *got = family_samples("outboxd_messages_duplicate_total");
    CHECK_STR(got, "outboxd_messages_duplicate_total 0\n");
    free(got);
    got = family_samples("outboxd_stream_records_read_total");
    CHECK_STR(got, "outboxd_stream_records_read_total 0\n");
    free(got);
    got = family_samples("outboxd_shards_owned");
    CHECK_STR(got, "outboxd_shards_owned 0\n");
    free(got);
    ob_metric_count("outboxd_stream_records_read_total", "", 3);
    got = family_samples("outboxd_stream_records_read_total");
    CHECK_STR(got, "outboxd_stream_records_read_total 3\n");
    free(got);
    ob_metrics_reset();
}

TEST(labelled_families_render_only_existing_series)
{
    ob_metrics_reset();
    char *got = family_samples("outboxd_sink_up");
    CHECK_STR(got, "");
    free(got);
    got = family_samples("outboxd_delivery_latency_seconds");
    CHECK_STR(got, "");
    free(got);
    ob_metric_set(ob_metric_series("outboxd_sink_up", "sink=\"b\""), 1);
    ob_metric_set(ob_metric_series("outboxd_sink_up", "sink=\"a\""), 0);
    got = family_samples("outboxd_sink_up");
    CHECK_STR(got, "outboxd_sink_up{sink=\"a\"} 0\noutboxd_sink_up{sink=\"b\"} 1\n");
    free(got);
    ob_metrics_reset();
}

TEST(values_render_in_shortest_round_trip_form)
{
    ob_metrics_reset();
    struct ob_metric_series *s = ob_metric_series("outboxd_stream_lag_seconds", "shard=\"s\"");
    ob_metric_set(s, 0.1);
    char *got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"s\"} 0.1\n");
    free(got);
    ob_metric_set(s, 1.0 / 3.0);
    got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"s\"} 0.33333333333333331\n");
    free(got);
    ob_metric_set(s, 1.0 / 0.0);
    got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"s\"} +Inf\n");
    free(got);
    ob_metric_set(s, 12345678);
    got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"s\"} 12345678\n");
    free(got);
    ob_metrics_reset();
}

TEST(escape_quotes_backslashes_and_newlines)
{
    struct ob_buf b = { 0 };
    ob_metrics_escape(&b, "a\"b\\c\nd/é");
    CHECK_STR(ob_buf_cstr(&b), "a\\\"b\\\\c\\nd/é");
    ob_buf_free(&b);
}

TEST(escaped_label_values_render_verbatim)
{
    ob_metrics_reset();
    struct ob_buf l = { 0 };
    ob_buf_puts(&l, "sink=\"");
    ob_metrics_escape(&l, "we\"ird\\\n");
    ob_buf_putc(&l, '"');
    ob_metric_count("outboxd_messages_failed_total", l.data, 2);
    char *got = family_samples("outboxd_messages_failed_total");
    CHECK_STR(got, "outboxd_messages_failed_total{sink=\"we\\\"ird\\\\\\n\"} 2\n");
    free(got);
    ob_buf_free(&l);
    ob_metrics_reset();
}

TEST(drop_hides_a_series_and_lookup_brings_it_back)
{
    ob_metrics_reset();
    struct ob_metric_series *a = ob_metric_series("outboxd_stream_lag_seconds", "shard=\"a\"");
    struct ob_metric_series *b = ob_metric_series("outboxd_stream_lag_seconds", "shard=\"b\"");
    ob_metric_set(a, 1);
    ob_metric_set(b, 2);
    ob_metric_drop("outboxd_stream_lag_seconds", "shard=\"a\"");
    ob_metric_drop("outboxd_stream_lag_seconds", "shard=\"never\"");
    char *got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"b\"} 2\n");
    free(got);
    /* The holder may still write: nothing shows, nothing breaks. */
    ob_metric_set(a, 7);
    got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"b\"} 2\n");
    free(got);
    CHECK(ob_metric_series("outboxd_stream_lag_seconds", "shard=\"a\"") == a);
    got = family_samples("outboxd_stream_lag_seconds");
    CHECK_STR(got, "outboxd_stream_lag_seconds{shard=\"a\"} 7\noutboxd_stream_lag_seconds{shard=\"b\"} 2\n");
    free(got);
    ob_metrics_reset();
}

TEST(undeclared_family_gives_null_and_updates_through_null_are_no_ops)
{
    ob_metrics_reset();
    CHECK(ob_metric_series("outboxd_no_such_thing", "") == NULL);
    ob_metric_add(NULL, 1);
    ob_metric_set(NULL, 1);
    ob_metric_observe(NULL, 1);
    ob_metric_drop("outboxd_no_such_thing", "");
    CHECK(ob_metric_get(NULL) == 0.0);
}

#define THREADS 4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    struct ob_metric_series **s = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        ob_metric_add(s[0], 1);
        ob_metric_observe(s[1], 0.5);
        if (i % 1000 == 0) {
            ob_metric_drop("outboxd_stream_lag_seconds", "shard=\"x\"");
            ob_metric_set(ob_metric_series("outboxd_stream_lag_seconds", "shard=\"x\""), i);
        }
    }
    return NULL;
}

TEST(concurrent_updates_and_renders_lose_nothing)
{
    ob_metrics_reset();
    struct ob_metric_series *s[2] = {
        ob_metric_series("outboxd_messages_delivered_total", "sink=\"a\""),
        ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"a\""),
    };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, hammer, s);
    for (int i = 0; i < 50; i++) {
        struct ob_buf out = { 0 };
        ob_metrics_render(&out);
        ob_buf_free(&out);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(ob_metric_get(s[0]) == THREADS * PER_THREAD);
    CHECK(ob_metric_get(s[1]) == THREADS * PER_THREAD);
    char *got = family_samples("outboxd_delivery_latency_seconds_sum");
    CHECK_STR(got, "outboxd_delivery_latency_seconds_sum{sink=\"a\"} 40000\n");
    free(got);
    ob_metrics_reset();
}
