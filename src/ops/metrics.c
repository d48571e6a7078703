#include "ops/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/log.h"

struct metric_family {
    const char *name;
    const char *kind; /* counter | gauge */
    const char *help;
};

/* SPEC §7: every metric outboxd exports. */
static const struct metric_family families[] = {
    { "outboxd_messages_delivered_total", "counter", "Messages acknowledged by a sink." },
    { "outboxd_messages_failed_total", "counter", "Failed delivery attempts." },
    { "outboxd_messages_dead_lettered_total", "counter", "Messages dead-lettered, by reason." },
    { "outboxd_messages_duplicate_total", "counter", "Mark-published found the item already published." },
    { "outboxd_stream_records_read_total", "counter", "Stream records read." },
    { "outboxd_stream_lag_seconds", "gauge", "Now minus the newest record read, per shard." },
    { "outboxd_consumed_capacity_units_total", "counter", "DynamoDB capacity units consumed." },
    { "outboxd_throttled_requests_total", "counter", "DynamoDB requests throttled." },
    { "outboxd_aws_retries_total", "counter", "AWS requests retried, by operation." },
    { "outboxd_shards_owned", "gauge", "Shards this instance reads." },
    { "outboxd_sink_up", "gauge", "1 when the sink is accepting messages." },
};

struct ob_metric_series {
    const struct metric_family *family;
    char *labels;
    _Atomic uint64_t bits; /* a double, so updates need no lock */
    struct ob_metric_series *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ob_metric_series *series_list;

static const struct metric_family *family_find(const char *name)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (strcmp(families[i].name, name) == 0)
            return &families[i];
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

struct ob_metric_series *ob_metric_series(const char *family, const char *labels)
{
    const struct metric_family *f = family_find(family);
    if (!f) {
        ob_log_error("internal: undeclared metric family %s", family);
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    struct ob_metric_series *s;
    for (s = series_list; s; s = s->next)
        if (s->family == f && strcmp(s->labels, labels) == 0)
            goto out;
    s = ob_xcalloc(1, sizeof *s);
    s->family = f;
    s->labels = ob_xstrdup(labels);
    atomic_init(&s->bits, double_to_bits(0.0));
    s->next = series_list;
    series_list = s;
out:
    pthread_mutex_unlock(&registry_lock);
    return s;
}

void ob_metric_add(struct ob_metric_series *s, double v)
{
    if (!s)
        return;
    uint64_t old = atomic_load(&s->bits);
    while (!atomic_compare_exchange_weak(&s->bits, &old, double_to_bits(bits_to_double(old) + v)))
        ;
}

void ob_metric_set(struct ob_metric_series *s, double v)
{
    if (s)
        atomic_store(&s->bits, double_to_bits(v));
}

double ob_metric_get(const struct ob_metric_series *s)
{
    return s ? bits_to_double(atomic_load(&((struct ob_metric_series *)s)->bits)) : 0.0;
}

void ob_metric_count(const char *family, const char *labels, double v)
{
    ob_metric_add(ob_metric_series(family, labels), v);
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
    pthread_mutex_lock(&registry_lock);
    size_t n = 0;
    for (struct ob_metric_series *s = series_list; s; s = s->next)
        n++;
    struct ob_metric_series **sorted = ob_xcalloc(n, sizeof *sorted);
    size_t i = 0;
    for (struct ob_metric_series *s = series_list; s; s = s->next)
        sorted[i++] = s;
    pthread_mutex_unlock(&registry_lock);
    qsort(sorted, n, sizeof *sorted, series_cmp);

    /* Every declared family has its HELP/TYPE lines even before its first
     * event, so dashboards and alerts can name it from the start. */
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        const struct metric_family *fam = &families[f];
        ob_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name, fam->kind);
        for (i = 0; i < n; i++) {
            if (sorted[i]->family != fam)
                continue;
            if (sorted[i]->labels[0])
                ob_buf_printf(out, "%s{%s} %.17g\n", fam->name, sorted[i]->labels, ob_metric_get(sorted[i]));
            else
                ob_buf_printf(out, "%s %.17g\n", fam->name, ob_metric_get(sorted[i]));
        }
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
