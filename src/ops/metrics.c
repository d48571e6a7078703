#include "ops/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/log.h"

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

static const char *const kind_names[] = { "counter", "gauge", "histogram" };

struct metric_family {
    const char *name;
    enum metric_kind kind;
    const char *labels; /* label names, "" for the one unlabelled sample */
    const char *help;
    const double *bounds; /* histograms: upper bounds, ascending; +Inf implied */
    size_t n_bounds;
};

/* Delivery takes milliseconds on a healthy sink and minutes when one is
 * down or a shard is replayed; the buckets span both. */
static const double latency_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
#define N_LATENCY_BOUNDS (sizeof latency_bounds / sizeof latency_bounds[0])

/* SPEC §7: every metric outboxd exports, in the order of its table. */
static const struct metric_family families[] = {
    { "outboxd_messages_delivered_total", KIND_COUNTER, "sink", "Messages acknowledged by a sink.", NULL, 0 },
    { "outboxd_messages_failed_total", KIND_COUNTER, "sink", "Failed delivery attempts.", NULL, 0 },
    { "outboxd_messages_dead_lettered_total", KIND_COUNTER, "reason", "Messages dead-lettered, by reason.", NULL, 0 },
    { "outboxd_messages_duplicate_total", KIND_COUNTER, "", "Mark-published found the item already published.",
      NULL, 0 },
    { "outboxd_delivery_latency_seconds", KIND_HISTOGRAM, "sink",
      "Seconds from an item's createdAt to its publish being marked.", latency_bounds, N_LATENCY_BOUNDS },
    { "outboxd_stream_records_read_total", KIND_COUNTER, "", "Stream records read.", NULL, 0 },
    { "outboxd_stream_lag_seconds", KIND_GAUGE, "shard", "Now minus the newest record read, per shard.", NULL, 0 },
    { "outboxd_consumed_capacity_units_total", KIND_COUNTER, "table,operation,kind",
      "DynamoDB capacity units consumed.", NULL, 0 },
    { "outboxd_throttled_requests_total", KIND_COUNTER, "operation", "DynamoDB requests throttled.", NULL, 0 },
    { "outboxd_aws_requests_total", KIND_COUNTER, "operation", "AWS requests sent (every attempt), by operation.",
      NULL, 0 },
    { "outboxd_aws_retries_total", KIND_COUNTER, "operation", "AWS requests retried, by operation.", NULL, 0 },
    { "outboxd_item_write_failures_total", KIND_COUNTER, "write,error",
      "Failed writes of an outbox item's record (published, dead_letter, failed_attempt), transient or permanent.",
      NULL, 0 },
    { "outboxd_item_writes_given_up_total", KIND_COUNTER, "write",
      "Items whose record DynamoDB refused for good, smaller write included: released unrecorded.", NULL, 0 },
    { "outboxd_shards_owned", KIND_GAUGE, "", "Shards this instance reads.", NULL, 0 },
    { "outboxd_shards_stuck", KIND_GAUGE, "",
      "Shards with work waiting and no progress for relay.stuck_after (waiting for sinks does not count).", NULL, 0 },
    { "outboxd_sink_up", KIND_GAUGE, "sink", "1 when the sink is accepting messages.", NULL, 0 },
    { "outboxd_sweep_held_back_seconds", KIND_GAUGE, "",
      "How long the sweeper has waited for a shard's reader to say how far it has read (0: not waiting).", NULL, 0 },
};
#define N_FAMILIES (sizeof families / sizeof families[0])

struct ob_metric_series {
    const struct metric_family *family;
    char *labels;
    _Atomic bool hidden;  /* ob_metric_drop: kept, so held pointers stay valid */
    _Atomic uint64_t bits; /* a double (the value, or a histogram's sum), so updates need no lock */
    struct ob_metric_series *next;
    /* Histograms: observations per bucket, not cumulative, the last one
     * +Inf. Their total is the count, so _count always equals le="+Inf". */
    _Atomic uint64_t buckets[];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ob_metric_series *series_list;

static const struct metric_family *family_find(const char *name)
{
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strcmp(families[i].name, name) == 0)
            return &families[i];
    ob_log_error("internal: undeclared metric family %s", name);
    return NULL;
}

static double bits_to_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static size_t n_buckets(const struct metric_family *f)
{
    return f->kind == KIND_HISTOGRAM ? f->n_bounds + 1 : 0;
}

/* Caller holds registry_lock. */
static struct ob_metric_series *series_find_locked(const struct metric_family *f, const char *labels)
{
    for (struct ob_metric_series *s = series_list; s; s = s->next)
        if (s->family == f && strcmp(s->labels, labels) == 0)
            return s;
    return NULL;
}

struct ob_metric_series *ob_metric_series(const char *family, const char *labels)
{
    const struct metric_family *f = family_find(family);
    if (!f)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    struct ob_metric_series *s = series_find_locked(f, labels);
    if (s) {
        atomic_store(&s->hidden, false);
        goto out;
    }
    size_t nb = n_buckets(f);
    s = ob_xcalloc(1, sizeof *s + nb * sizeof s->buckets[0]);
    s->family = f;
    s->labels = ob_xstrdup(labels);
    atomic_init(&s->hidden, false);
    atomic_init(&s->bits, double_to_bits(0.0));
    for (size_t i = 0; i < nb; i++)
        atomic_init(&s->buckets[i], 0);
    s->next = series_list;
    series_list = s;
out:
    pthread_mutex_unlock(&registry_lock);
    return s;
}

static void bits_add(_Atomic uint64_t *bits, double v)
{
    uint64_t old = atomic_load(bits);
    while (!atomic_compare_exchange_weak(bits, &old, double_to_bits(bits_to_double(old) + v)))
        ;
}

void ob_metric_add(struct ob_metric_series *s, double v)
{
    if (s && s->family->kind != KIND_HISTOGRAM)
        bits_add(&s->bits, v);
}

void ob_metric_set(struct ob_metric_series *s, double v)
{
    if (s && s->family->kind != KIND_HISTOGRAM)
        atomic_store(&s->bits, double_to_bits(v));
}

void ob_metric_observe(struct ob_metric_series *s, double v)
{
    if (!s || s->family->kind != KIND_HISTOGRAM)
        return;
    const struct metric_family *f = s->family;
    size_t i = 0;
    while (i < f->n_bounds && !(v <= f->bounds[i]))
        i++;
    atomic_fetch_add(&s->buckets[i], 1);
    bits_add(&s->bits, v);
}

static uint64_t histogram_count(const struct ob_metric_series *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < n_buckets(s->family); i++)
        n += atomic_load(&((struct ob_metric_series *)s)->buckets[i]);
    return n;
}

double ob_metric_get(const struct ob_metric_series *s)
{
    if (!s)
        return 0.0;
    if (s->family->kind == KIND_HISTOGRAM)
        return (double)histogram_count(s);
    return bits_to_double(atomic_load(&((struct ob_metric_series *)s)->bits));
}

void ob_metric_count(const char *family, const char *labels, double v)
{
    ob_metric_add(ob_metric_series(family, labels), v);
}

void ob_metric_drop(const char *family, const char *labels)
{
    const struct metric_family *f = family_find(family);
    if (!f)
        return;
    pthread_mutex_lock(&registry_lock);
    struct ob_metric_series *s = series_find_locked(f, labels);
    if (s)
        atomic_store(&s->hidden, true);
    pthread_mutex_unlock(&registry_lock);
}

void ob_metrics_escape(struct ob_buf *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            ob_buf_putc(out, '\\');
        if (*p == '\n') {
            ob_buf_puts(out, "\\n");
            continue;
        }
        ob_buf_putc(out, *p);
    }
}

/* The text format's float: shortest form that reads back to the same
 * double (0.1, not 0.10000000000000001), and +Inf, -Inf, NaN by name. */
static void put_float(struct ob_buf *out, double v)
{
    if (isnan(v)) {
        ob_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        ob_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char s[32];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v)
        snprintf(s, sizeof s, "%.17g", v);
    ob_buf_puts(out, s);
}

/* name{labels[,extra]} — braces left out when there is no label at all. */
static void put_name(struct ob_buf *out, const char *name, const char *suffix, const char *labels,
                     const char *extra)
{
    ob_buf_puts(out, name);
    ob_buf_puts(out, suffix);
    if (!labels[0] && !extra)
        return;
    ob_buf_putc(out, '{');
    ob_buf_puts(out, labels);
    if (extra) {
        if (labels[0])
            ob_buf_putc(out, ',');
        ob_buf_puts(out, extra);
    }
    ob_buf_putc(out, '}');
}

/* s NULL: the zero sample of an unlabelled family nobody has touched yet. */
static void render_series(struct ob_buf *out, const struct metric_family *f, const struct ob_metric_series *s)
{
    const char *labels = s ? s->labels : "";
    double value = s ? bits_to_double(atomic_load(&((struct ob_metric_series *)s)->bits)) : 0.0;
    if (f->kind != KIND_HISTOGRAM) {
        put_name(out, f->name, "", labels, NULL);
        ob_buf_putc(out, ' ');
        put_float(out, value);
        ob_buf_putc(out, '\n');
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < n_buckets(f); i++) {
        if (s)
            cumulative += atomic_load(&((struct ob_metric_series *)s)->buckets[i]);
        struct ob_buf le = { 0 };
        ob_buf_puts(&le, "le=\"");
        put_float(&le, i < f->n_bounds ? f->bounds[i] : INFINITY);
        ob_buf_putc(&le, '"');
        put_name(out, f->name, "_bucket", labels, le.data);
        ob_buf_printf(out, " %llu\n", (unsigned long long)cumulative);
        ob_buf_free(&le);
    }
    put_name(out, f->name, "_sum", labels, NULL);
    ob_buf_putc(out, ' ');
    put_float(out, value);
    ob_buf_putc(out, '\n');
    put_name(out, f->name, "_count", labels, NULL);
    ob_buf_printf(out, " %llu\n", (unsigned long long)cumulative);
}

static int series_cmp(const void *a, const void *b)
{
    const struct ob_metric_series *x = *(struct ob_metric_series *const *)a;
    const struct ob_metric_series *y = *(struct ob_metric_series *const *)b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return strcmp(x->labels, y->labels);
}

void ob_metrics_render(struct ob_buf *out)
{
    /* Snapshot the list under the lock, render outside it: series are never
     * freed while outboxd runs, so the pointers stay valid. */
    pthread_mutex_lock(&registry_lock);
    size_t n = 0;
    for (struct ob_metric_series *s = series_list; s; s = s->next)
        n++;
    struct ob_metric_series **sorted = ob_xcalloc(n ? n : 1, sizeof *sorted);
    size_t i = 0;
    for (struct ob_metric_series *s = series_list; s; s = s->next)
        if (!atomic_load(&s->hidden))
            sorted[i++] = s;
    n = i;
    pthread_mutex_unlock(&registry_lock);
    qsort(sorted, n, sizeof *sorted, series_cmp);

    /* Every declared family has its HELP/TYPE lines even before its first
     * event, so dashboards and alerts can name it from the start. */
    for (size_t f = 0; f < N_FAMILIES; f++) {
        const struct metric_family *fam = &families[f];
        ob_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                      kind_names[fam->kind]);
        bool any = false;
        for (i = 0; i < n; i++) {
            if (sorted[i]->family != fam)
                continue;
            render_series(out, fam, sorted[i]);
            any = true;
        }
        if (!any && !fam->labels[0])
            render_series(out, fam, NULL);
    }
    free(sorted);
}

void ob_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    struct ob_metric_series *s = series_list;
    series_list = NULL;
    pthread_mutex_unlock(&registry_lock);
    while (s) {
        struct ob_metric_series *next = s->next;
        free(s->labels);
        free(s);
        s = next;
    }
}
