/* The delivery half of reading a shard (or sweeping the table): a window
 * of records, sent in waves of at most relay.max_in_flight as the
 * ordering allows, to the sinks their routes name; what a sink
 * acknowledged is marked published with conditional UpdateItems that run
 * while the next waves go out (a key's next message waits for the sink's
 * acknowledgement, not for the mark); failures are retried with backoff,
 * counted, recorded on the item and finally dead-lettered (SPEC §3). */
#include "relay/pipeline.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/route.h"
#include "core/template.h"
#include "dynamo/item_writes.h"
#include "dynamo/mark.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/sink_health.h"

/* A message on its way through one wave. */
struct wave_item {
    struct ob_entry *e;
    struct ob_ce ce;
    struct ob_buf destination;
    size_t sink;
};

void ob_pipeline_log(const struct ob_pipeline *p, enum ob_log_severity sev, const char *msg_id, const char *fmt, ...)
{
    if (!ob_log_enabled(sev))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ob_log_at(sev, p->log_name, msg_id, "%s", line);
}

static void set_error(struct ob_entry *e, const char *msg)
{
    free(e->last_error);
    e->last_error = ob_xstrdup(msg);
}

/* A delivery failed: count it, schedule the retry or give up on it. */
static void delivery_failed(struct ob_pipeline *p, struct ob_entry *e, const struct ob_delivery *d,
                            struct ob_sink_health *h, int64_t sent_at, int64_t now)
{
    const struct ob_config *cfg = p->relay->cfg;
    bool counts = d->result == OB_DELIVERY_REJECT || ob_sink_failed_retriably(h, d, sent_at);
    ob_metric_add(h->failed, 1);
    e->failures++;
    if (counts)
        e->attempts++;
    if (d->result == OB_DELIVERY_REJECT && d->too_large) {
        /* No attempt can succeed: dead-lettered now, whatever on_failure says. */
        char why[sizeof d->error + 16];
        snprintf(why, sizeof why, "too_large: %s", d->error);
        set_error(e, why);
        e->too_large = true;
        ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "dead-lettering at once: %s", why);
        ob_window_set_state(&p->window, e, OB_ENTRY_DEAD);
        e->next_at_ms = now;
        return;
    }
    set_error(e, d->error);
    if (e->attempts >= cfg->relay.max_attempts && cfg->relay.on_failure == OB_ON_FAILURE_DEAD_LETTER) {
        ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "giving up after %d attempts, dead-lettering: %s", e->attempts,
             d->error);
        ob_window_set_state(&p->window, e, OB_ENTRY_DEAD);
        e->next_at_ms = now;
        return;
    }
    /* Waiting on its own destination's host, a message backs off by its
     * failures: nothing else paces it. */
    int64_t n = d->destination_unreachable ? e->failures : e->attempts;
    int64_t delay = ob_relay_backoff_ms(cfg, n > 0 ? (n < 64 ? (int)n : 64) : 1);
    e->next_at_ms = now + delay;
    bool loud = e->failures == 1 || (d->destination_unreachable && e->failures % 10 == 0);
    ob_pipeline_log(p, loud ? (d->destination_unreachable ? OB_SEV_WARN : OB_SEV_INFO) : OB_SEV_DEBUG, e->rec.msg.sk,
         "delivery failed (attempt %" PRId64 ", next in %" PRId64 " ms): %s", e->failures, delay, d->error);
}

/* The item writes of one wave, each with its dynamo write, both kept for
 * a later write when it is done (p->spare; the write's storage with it).
 * Marks go on running after the wave (started in p->writer); the rare
 * writes run within it. A write that failed waits in p->waiting and goes
 * again, as itself, when its entry is due: a dead letter is never sent
 * again for a record that could not be written (SPEC §3). */
enum write_kind {
    WRITE_MARK,
    WRITE_MARK_MINIMAL, /* isPublished alone: DynamoDB refused the whole mark (an item near 400 KB) */
    WRITE_FAILED,
    WRITE_DEAD,
    WRITE_DEAD_SHORT,   /* the dead-letter record again, lastError cut: DynamoDB refused the full one */
    WRITE_NOT_MARKED,   /* DynamoDB refused both marks: the item is recorded as handled instead */
};

struct pipeline_write {
    enum write_kind kind;
    int tries;                       /* failed tries of this write */
    bool with_ttl;                   /* a dead-letter record: the dead-letter sink took the message */
    uint64_t entry;                  /* the entry's id: entries move while a mark runs */
    /* WRITE_MARK: the sink's latency histogram. The series, not the sink's
     * health: a mark may outlive the routing (SIGHUP) it was sent under,
     * and series live as long as the registry. */
    struct ob_metric_series *latency;
    struct ob_item_write *op;        /* owned; tagged with this */
    struct pipeline_write *next;     /* in p->waiting or p->spare */
};

struct pipeline_writes {
    struct pipeline_write **v;
    size_t n, cap;
};

/* A wave's arrays, kept between waves (a wave runs on every turn of a
 * shard's loop) and grown with max_in_flight: picks, marks and dead
 * letters hold up to max entries each, a wave's writes up to 2 x max. */
struct pipeline_scratch {
    size_t max;
    struct ob_entry **picks, **acked, **dead;
    struct wave_item *items, *group;
    struct ob_delivery *d;
    struct pipeline_write **sync;
    struct ob_item_write **ops;
    struct pipeline_writes writes;
};

static struct pipeline_scratch *scratch_for(struct ob_pipeline *p, size_t max)
{
    struct pipeline_scratch *sc = p->scratch;
    if (!sc)
        sc = p->scratch = ob_xcalloc(1, sizeof *sc);
    if (sc->max < max) {
        sc->max = max;
        sc->picks = ob_xrealloc(sc->picks, max * sizeof *sc->picks);
        sc->acked = ob_xrealloc(sc->acked, max * sizeof *sc->acked);
        sc->dead = ob_xrealloc(sc->dead, max * sizeof *sc->dead);
        sc->items = ob_xrealloc(sc->items, max * sizeof *sc->items);
        sc->group = ob_xrealloc(sc->group, max * sizeof *sc->group);
        sc->d = ob_xrealloc(sc->d, max * sizeof *sc->d);
        sc->sync = ob_xrealloc(sc->sync, 2 * max * sizeof *sc->sync);
        sc->ops = ob_xrealloc(sc->ops, 2 * max * sizeof *sc->ops);
    }
    return sc;
}

static void scratch_free(struct pipeline_scratch *sc)
{
    if (!sc)
        return;
    free(sc->picks);
    free(sc->acked);
    free(sc->dead);
    free(sc->items);
    free(sc->group);
    free(sc->d);
    free(sc->sync);
    free(sc->ops);
    free(sc->writes.v);
    free(sc);
}

static void writes_push(struct pipeline_writes *ws, struct pipeline_write *x)
{
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? ws->cap * 2 : 64;
        ws->v = ob_xrealloc(ws->v, ws->cap * sizeof *ws->v);
    }
    ws->v[ws->n++] = x;
}

/* The pipeline's writer, made at its first write: a shard worker makes
 * its session on its own thread, after the pipeline. */
static struct ob_item_writer *writer(struct ob_pipeline *p)
{
    if (!p->writer)
        p->writer = ob_item_writer_create(p->session, p->relay->cfg->table.name);
    return p->writer;
}

/* A write for e, from the spare ones when there is one; what it writes is
 * set by the caller (it starts or runs with the wave's writes). */
static struct pipeline_write *add_write(struct ob_pipeline *p, struct pipeline_writes *ws, enum write_kind kind,
                                        struct ob_entry *e, struct ob_sink_health *h)
{
    struct pipeline_write *x = p->spare;
    if (x) {
        p->spare = x->next;
        p->n_spare--;
    } else {
        x = ob_xcalloc(1, sizeof *x);
        x->op = ob_item_write_new(x);
    }
    writes_push(ws, x);
    x->kind = kind;
    x->tries = 0;
    x->with_ttl = false;
    x->entry = e->id;
    x->latency = h ? h->latency : NULL;
    x->next = NULL;
    return x;
}

static void add_mark(struct ob_pipeline *p, struct pipeline_writes *ws, struct ob_entry *e, struct ob_sink_health *h)
{
    const struct ob_config *cfg = p->relay->cfg;
    e->next_at_ms = INT64_MAX; /* its mark runs: not picked again until it fails */
    ob_item_write_set_mark(writer(p), add_write(p, ws, WRITE_MARK, e, h)->op, e->rec.msg.pk, e->rec.msg.sk,
                           ob_wall_ms(), cfg->table.ttl_seconds);
}

/* lastError of the smaller writes: at most this many bytes. */
#define SHORT_ERROR_MAX 160

/* msg cut to SHORT_ERROR_MAX bytes at a character boundary, into out. */
static const char *short_error(const char *msg, char out[SHORT_ERROR_MAX + 1])
{
    size_t n = strlen(msg);
    if (n > SHORT_ERROR_MAX) {
        n = SHORT_ERROR_MAX;
        while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, msg, n);
    out[n] = '\0';
    return out;
}

/* x writes the dead-letter record on e (WRITE_DEAD, or a smaller write
 * with lastError cut): with a ttl only when x->with_ttl. */
static void set_dead_letter(struct ob_pipeline *p, struct pipeline_write *x, struct ob_entry *e)
{
    const struct ob_config *cfg = p->relay->cfg;
    char cut[SHORT_ERROR_MAX + 1];
    const char *error = e->last_error ? e->last_error : "dead-lettered";
    ob_item_write_set_dead_letter(writer(p), x->op, e->rec.msg.pk, e->rec.msg.sk, ob_wall_ms(),
                                  e->rec.msg.retry_count + e->failures,
                                  x->kind == WRITE_DEAD ? error : short_error(error, cut),
                                  x->with_ttl ? cfg->table.ttl_seconds : 0);
}

static void entry_done_dead(struct ob_pipeline *p, struct ob_entry *e)
{
    const char *reason = e->rec.kind == OB_RECORD_POISON ? "poison" : e->too_large ? "too_large" : "attempts";
    char labels[32];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    ob_metric_count("outboxd_messages_dead_lettered_total", labels, 1);
    ob_window_set_state(&p->window, e, OB_ENTRY_DONE);
}

static const char *write_name(enum write_kind kind)
{
    switch (kind) {
    case WRITE_MARK:
    case WRITE_MARK_MINIMAL:
    case WRITE_NOT_MARKED:
        return "published";
    case WRITE_DEAD:
    case WRITE_DEAD_SHORT:
        return "dead_letter";
    case WRITE_FAILED:
        break;
    }
    return "failed_attempt";
}

static void count_write_failure(const struct pipeline_write *x, bool permanent)
{
    char labels[64];
    snprintf(labels, sizeof labels, "write=\"%s\",error=\"%s\"", write_name(x->kind),
             permanent ? "permanent" : "transient");
    ob_metric_count("outboxd_item_write_failures_total", labels, 1);
}

/* x goes again when its entry is due: at once (another write in its
 * place), or after a backoff of 1 s doubling to 30 s (a transient error). */
static void write_again(struct ob_pipeline *p, struct pipeline_write *x, struct ob_entry *e, int64_t at)
{
    e->next_at_ms = at;
    x->next = p->waiting;
    p->waiting = x;
}

/* Why x failed (it did). */
static const char *write_error(const struct pipeline_write *x)
{
    return ob_item_write_error(x->op)->msg;
}

static void write_retry(struct ob_pipeline *p, struct pipeline_write *x, struct ob_entry *e, int64_t now)
{
    /* No jitter: the client's own retries of each call below jitter. */
    static const struct ob_backoff again = { .initial_ms = 1000, .max_ms = 30000 };
    x->tries++;
    int64_t delay = ob_backoff_exponential_ms(&again, x->tries);
    ob_pipeline_log(p, x->tries == 1 || x->tries % 10 == 0 ? OB_SEV_WARN : OB_SEV_DEBUG, e->rec.msg.sk,
                    "writing the item's %s record failed (try %d), will write it again in %" PRId64 " ms: %s",
                    write_name(x->kind), x->tries, delay, write_error(x));
    write_again(p, x, e, now + delay);
}

/* Nothing could be recorded on the item: the entry is let go, so its
 * shard goes on, and remembered, so that no sweep of this process (which
 * finds it unpublished) delivers it again. */
static void write_given_up(struct ob_pipeline *p, struct pipeline_write *x, struct ob_entry *e)
{
    char labels[48];
    snprintf(labels, sizeof labels, "write=\"%s\"", write_name(x->kind));
    ob_metric_count("outboxd_item_writes_given_up_total", labels, 1);
    bool remembered = ob_given_up_add(&p->relay->given_up, e->rec.msg.pk, e->rec.msg.sk);
    ob_pipeline_log(p, OB_SEV_ERROR, e->rec.msg.sk,
                    "DynamoDB refused the item's %s record for good; giving it up unrecorded (%s): %s",
                    write_name(x->kind), remembered ? "no sweep sends it again until a restart"
                                                    : "too many given up: a sweep may send it again",
                    write_error(x));
}

/* DynamoDB refused x for good. Returns whether x goes again, as the
 * smaller write in its place. */
static bool write_refused(struct ob_pipeline *p, struct pipeline_write *x, struct ob_entry *e, int64_t now)
{
    switch (x->kind) {
    case WRITE_MARK:
        ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "DynamoDB refused the mark (%s); marking the item published "
                        "without publishedAt and ttl instead (it is not deleted by its ttl)", write_error(x));
        x->kind = WRITE_MARK_MINIMAL;
        ob_item_write_set_mark_minimal(writer(p), x->op, e->rec.msg.pk, e->rec.msg.sk);
        break;
    case WRITE_MARK_MINIMAL: {
        /* deadLetteredAt: the sweeper does not deliver it again. */
        char why[OB_ERROR_MSG_MAX + 64];
        snprintf(why, sizeof why, "delivered, but marking it published failed: %s", write_error(x));
        set_error(e, why);
        ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "%s; recording that on the item instead", why);
        x->kind = WRITE_NOT_MARKED;
        set_dead_letter(p, x, e);
        break;
    }
    case WRITE_DEAD:
        ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "recording the dead letter failed (%s); writing it again "
                        "with lastError cut to %d bytes", write_error(x), SHORT_ERROR_MAX);
        x->kind = WRITE_DEAD_SHORT;
        set_dead_letter(p, x, e);
        break;
    default:
        return false;
    }
    x->tries = 0;
    write_again(p, x, e, now);
    return true;
}

/* What a finished write means for its entry. Returns whether x is kept,
 * to go again. */
static bool write_done(struct ob_pipeline *p, struct pipeline_write *x, int64_t now, int64_t wall)
{
    struct ob_entry *e = ob_window_find(&p->window, x->entry);
    enum ob_err rc = ob_item_write_result(x->op);
    if (!e)
        return false; /* cannot happen: an entry with a write running is not done */
    if (rc == OB_OK || rc == OB_ERR_CONDITION_FAILED) {
        switch (x->kind) {
        case WRITE_MARK:
        case WRITE_MARK_MINIMAL: {
            if (rc == OB_ERR_CONDITION_FAILED)
                ob_metric_count("outboxd_messages_duplicate_total", "", 1);
            int64_t created = e->rec.msg.created_at_ms ? e->rec.msg.created_at_ms : e->rec.msg.approximate_creation_ms;
            if (created && x->latency)
                ob_metric_observe(x->latency, (double)(wall - created) / 1000.0);
            ob_window_set_state(&p->window, e, OB_ENTRY_DONE);
            break;
        }
        case WRITE_NOT_MARKED:
            ob_window_set_state(&p->window, e, OB_ENTRY_DONE);
            break;
        case WRITE_DEAD:
        case WRITE_DEAD_SHORT:
            entry_done_dead(p, e);
            break;
        case WRITE_FAILED:
            break;
        }
        return false;
    }
    bool permanent = ob_mark_error_permanent(ob_item_write_error(x->op));
    count_write_failure(x, permanent);
    if (x->kind == WRITE_FAILED) {
        /* The next attempt's record, or the dead letter's, says it again. */
        ob_pipeline_log(p, OB_SEV_DEBUG, e->rec.msg.sk, "recording the failed attempt failed: %s", write_error(x));
        return false;
    }
    if (!permanent) {
        write_retry(p, x, e, now);
        return true;
    }
    if (write_refused(p, x, e, now))
        return true;
    write_given_up(p, x, e);
    if (x->kind == WRITE_NOT_MARKED)
        ob_window_set_state(&p->window, e, OB_ENTRY_DONE);
    else
        entry_done_dead(p, e);
    return false;
}

/* Settles the capacity budget with what DynamoDB reports for n writes
 * (each was taken as one unit). */
static void settle_units(struct ob_pipeline *p, struct pipeline_write *const *xs, size_t n)
{
    double consumed = 0;
    for (size_t i = 0; i < n; i++) {
        double units = ob_item_write_units(xs[i]->op);
        consumed += units >= 0 ? units : 1.0;
    }
    ob_relay_budget_settle(p->relay, consumed - (double)n);
}

static void write_free(struct pipeline_write *x)
{
    ob_item_write_free(x->op);
    free(x);
}

/* A done write is kept for the next, as many as max_in_flight. */
static void write_recycle(struct ob_pipeline *p, struct pipeline_write *x)
{
    if (p->n_spare >= (size_t)p->relay->cfg->relay.max_in_flight) {
        write_free(x);
        return;
    }
    ob_item_write_recycle(x->op);
    x->next = p->spare;
    p->spare = x;
    p->n_spare++;
}

/* What n finished writes mean: the budget settled, their entries moved on. */
static void writes_finished(struct ob_pipeline *p, struct pipeline_write *const *xs, size_t n, int64_t now)
{
    settle_units(p, xs, n);
    int64_t wall = ob_wall_ms();
    for (size_t i = 0; i < n; i++)
        if (!write_done(p, xs[i], now, wall))
            write_recycle(p, xs[i]);
}

/* Takes the marks that finished; true if there were any. */
static bool collect_marks(struct ob_pipeline *p, int64_t now)
{
    ob_item_writer_poll(p->writer, 0);
    struct pipeline_write *done[64];
    size_t n = 0;
    bool any = false;
    struct ob_item_write *op;
    do {
        op = ob_item_writer_next_done(p->writer);
        if (op) {
            p->n_flying--;
            done[n++] = ob_item_write_tag(op);
        }
        if (n == sizeof done / sizeof done[0] || (!op && n)) {
            writes_finished(p, done, n, now);
            n = 0;
            any = true;
        }
    } while (op);
    return any;
}

static void run_writes(struct ob_pipeline *p, struct pipeline_writes *ws, int64_t now)
{
    if (ws->n == 0)
        return;
    struct pipeline_scratch *sc = p->scratch;
    struct ob_item_writer *wr = writer(p);
    /* Each write of a small item costs one unit; settled with what
     * DynamoDB reports. */
    int64_t wait = ob_relay_budget_take(p->relay, (double)ws->n);
    if (wait > 0)
        p->wait_until(p->ctx, ob_mono_ms() + wait);
    struct pipeline_write **sync = sc->sync;
    struct ob_item_write **ops = sc->ops;
    size_t k = 0;
    bool started = false;
    for (size_t i = 0; i < ws->n; i++) {
        struct pipeline_write *x = ws->v[i];
        if (x->kind == WRITE_MARK) {
            ob_item_writer_start(wr, x->op);
            p->n_flying++;
            started = true;
            continue;
        }
        sync[k] = x;
        ops[k++] = x->op;
    }
    if (started)
        ob_item_writer_send(wr); /* the marks go out now */
    if (k) {
        ob_item_writer_run(wr, ops, k);
        writes_finished(p, sync, k, now);
    }
    ws->n = 0;
}

/* The item's CloudEvent, to the sink's own destination. */
static void prepare_event(struct ob_pipeline *p, struct ob_routing *rt, struct wave_item *it, struct ob_entry *e)
{
    memset(it, 0, sizeof *it);
    it->e = e;
    ob_ce_from_message(&it->ce, &e->rec.msg, rt->cfg->cloudevents.source, p->relay->cfg->table.name);
    if (!it->ce.id)
        it->ce.id = e->rec.msg.sequence_number;
}

/* The item's CloudEvent, to the sink and destination its route says. */
static void prepare_item(struct ob_pipeline *p, struct ob_routing *rt, struct wave_item *it,
                         struct ob_entry *e)
{
    const char *dest = NULL;
    prepare_event(p, rt, it, e);
    ob_route_select(rt->cfg, &e->rec.msg, &it->sink, &dest);
    if (dest)
        ob_template_expand(&it->destination, dest, &e->rec.msg, p->relay->cfg->table.name);
}

static void release_items(struct wave_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ob_ce_free(&items[i].ce);
        ob_buf_free(&items[i].destination);
    }
}

/* Which message a probe was: ob_item_key_hash (a poison item may have no
 * keys: its key's hash then). */
static uint64_t probe_message(const struct ob_entry *e)
{
    const struct ob_message *m = &e->rec.msg;
    return m->pk && m->sk ? ob_item_key_hash(m->pk, strlen(m->pk), m->sk, strlen(m->sk)) : e->key_hash;
}

/* How many of items[0..k), bound for the sink of h, go now (moved to the
 * front); the others wait. A probe is a message other than the last probe
 * that failed when there is one: a message the sink fails alone would
 * else probe it for good, and keep it down for every other. */
static size_t admit(const struct ob_config *cfg, struct ob_sink_health *h, struct wave_item *items, size_t k,
                    int64_t now, bool *probe)
{
    int64_t retry_at = now;
    size_t admitted = ob_sink_admit(cfg, h, k, now, &retry_at, probe);
    for (size_t i = 0; *probe && i < k; i++)
        if (!ob_sink_probe_failed_last(h, probe_message(items[i].e))) {
            struct wave_item first = items[0];
            items[0] = items[i];
            items[i] = first;
            break;
        }
    for (size_t i = admitted; i < k; i++)
        items[i].e->next_at_ms = retry_at;
    return admitted;
}

/* Publishes items[0..n) to sink (all of them go to it). */
static void publish_to(struct ob_pipeline *p, struct ob_sink *sink, struct wave_item *items, size_t n,
                       struct ob_delivery *d, const char *error_info)
{
    for (size_t i = 0; i < n; i++) {
        memset(&d[i], 0, sizeof d[i]);
        d[i].msg = &items[i].e->rec.msg;
        d[i].ce = &items[i].ce;
        d[i].destination = items[i].destination.len ? items[i].destination.data : NULL;
        d[i].error_info = error_info ? items[i].e->last_error : NULL;
    }
    if (p->sink_call)
        p->sink_call(p->ctx, true);
    ob_sink_publish(sink, d, n);
    if (p->sink_call)
        p->sink_call(p->ctx, false);
}

/* Sends the deliverable entries to their sinks; ACKs become marks. */
static void deliver(struct ob_pipeline *p, struct ob_routing *rt, struct ob_entry **picks, size_t n,
                    struct pipeline_writes *ws, int64_t now)
{
    struct wave_item *items = p->scratch->items, *group = p->scratch->group;
    struct ob_delivery *d = p->scratch->d;
    for (size_t i = 0; i < n; i++)
        prepare_item(p, rt, &items[i], picks[i]);
    const struct ob_config *cfg = p->relay->cfg;
    for (size_t s = 0; s < rt->cfg->n_sinks; s++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (items[i].sink == s)
                group[k++] = items[i];
        if (k == 0)
            continue;
        struct ob_sink_health *h = &rt->health[s];
        bool probe;
        k = admit(cfg, h, group, k, now, &probe);
        if (k == 0)
            continue;
        int64_t sent_at = ob_mono_ms();
        publish_to(p, rt->sinks[s], group, k, d, NULL);
        if (probe)
            ob_sink_probed(cfg, h, d[0].result != OB_DELIVERY_RETRY, probe_message(group[0].e), now);
        /* The answers first: they say whether the batch's retriable
         * failures count. */
        for (size_t i = 0; i < k; i++)
            if (d[i].result != OB_DELIVERY_RETRY)
                ob_sink_answered(h);
        for (size_t i = 0; i < k; i++) {
            struct ob_entry *e = group[i].e;
            if (d[i].result == OB_DELIVERY_ACK) {
                ob_metric_add(h->delivered, 1);
                ob_window_set_state(&p->window, e, OB_ENTRY_ACKED);
                add_mark(p, ws, e, h);
            } else {
                delivery_failed(p, e, &d[i], h, sent_at, now);
                ob_item_write_set_failed(writer(p), add_write(p, ws, WRITE_FAILED, e, NULL)->op, e->rec.msg.pk,
                                         e->rec.msg.sk, e->rec.msg.retry_count + e->failures, e->last_error);
            }
        }
    }
    release_items(items, n);
}

/* Dead-letters entries: to the dead-letter sink's own destination when
 * there is one, under its health like any sink's (while it is down one
 * probe at a time, the others wait), then the record on the item. A dead
 * letter the sink rejects is recorded all the same, with both reasons
 * and no ttl. */
static void dead_letter(struct ob_pipeline *p, struct ob_routing *rt, struct ob_entry **picks, size_t n,
                        struct pipeline_writes *ws, int64_t now)
{
    const struct ob_config *cfg = p->relay->cfg;
    struct wave_item *items = p->scratch->items;
    struct ob_delivery *d = p->scratch->d;
    struct ob_sink_health *h = rt->dead_letter_health;
    for (size_t i = 0; i < n; i++) {
        struct ob_entry *e = picks[i];
        if (!e->last_error)
            set_error(e, e->rec.kind == OB_RECORD_POISON ? e->rec.poison_reason : "dead-lettered");
        if (!e->rec.msg.payload)
            e->rec.msg.payload = (unsigned char *)ob_xstrdup("");
        prepare_event(p, rt, &items[i], e);
    }
    size_t k = n;
    int64_t sent_at = 0;
    if (rt->dead_letter) {
        bool probe;
        k = admit(cfg, h, items, n, now, &probe);
        sent_at = ob_mono_ms();
        publish_to(p, rt->dead_letter, items, k, d, "error");
        if (probe)
            ob_sink_probed(cfg, h, d[0].result != OB_DELIVERY_RETRY, probe_message(items[0].e), now);
        for (size_t i = 0; i < k; i++)
            if (d[i].result != OB_DELIVERY_RETRY)
                ob_sink_answered(h);
    }
    for (size_t i = 0; i < k; i++) {
        struct ob_entry *e = items[i].e; /* admitted ones first: in items' order */
        bool taken = false;
        if (rt->dead_letter) {
            ob_metric_add(d[i].result == OB_DELIVERY_ACK ? h->delivered : h->failed, 1);
            if (d[i].result == OB_DELIVERY_RETRY) {
                ob_sink_failed_retriably(h, &d[i], sent_at);
                int64_t delay = ob_relay_backoff_ms(cfg, 5);
                e->next_at_ms = now + delay;
                ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "the dead-letter sink did not take the message, "
                                "will send it again in %" PRId64 " ms: %s", delay, d[i].error);
                continue;
            }
            taken = d[i].result == OB_DELIVERY_ACK;
            if (!taken) {
                char both[sizeof d[i].error + 64];
                snprintf(both, sizeof both, "; the dead-letter sink rejected it: %s", d[i].error);
                char *error = ob_xmalloc(strlen(e->last_error) + strlen(both) + 1);
                strcpy(error, e->last_error);
                strcat(error, both);
                free(e->last_error);
                e->last_error = error;
                ob_pipeline_log(p, OB_SEV_WARN, e->rec.msg.sk, "the dead-letter sink rejected the message (%s); "
                                "recording it as dead-lettered, without ttl", d[i].error);
            }
        }
        if (!e->rec.msg.pk || !e->rec.msg.sk) {
            ob_pipeline_log(p, OB_SEV_ERROR, NULL, "poison record %s has no usable key (%s); it cannot be marked",
                 e->rec.msg.sequence_number, e->last_error);
            entry_done_dead(p, e);
            continue;
        }
        e->next_at_ms = INT64_MAX; /* its record is written: not picked again until that fails */
        struct pipeline_write *x = add_write(p, ws, WRITE_DEAD, e, NULL);
        x->with_ttl = taken;
        set_dead_letter(p, x, e);
    }
    release_items(items, n);
}

/* The write of e that waited to go again joins this wave's (from
 * p->waiting). Returns whether there was one. */
static bool write_waiting(struct ob_pipeline *p, struct pipeline_writes *ws, struct ob_entry *e)
{
    for (struct pipeline_write **at = &p->waiting; *at; at = &(*at)->next)
        if ((*at)->entry == e->id) {
            struct pipeline_write *x = *at;
            *at = x->next;
            x->next = NULL;
            e->next_at_ms = INT64_MAX; /* not picked again until it fails */
            writes_push(ws, x);
            return true;
        }
    return false;
}

bool ob_pipeline_wave(struct ob_pipeline *p, int64_t now)
{
    const struct ob_config *cfg = p->relay->cfg;
    bool collected = p->n_flying && collect_marks(p, now);
    size_t max = (size_t)cfg->relay.max_in_flight;
    /* relay.max_in_flight bounds what is delivered and not yet marked, so
     * a crash repeats at most that many messages per shard, and a slow
     * table slows deliveries instead of piling up marks. */
    size_t room = p->marks_only ? 0 : p->window.acked < max ? max - p->window.acked : 0;
    struct pipeline_scratch *sc = scratch_for(p, max);
    struct ob_entry **picks = sc->picks, **acked = sc->acked, **dead = sc->dead;
    size_t n = room ? ob_window_ready(&p->window, now, picks, room) : 0;
    size_t n_acked = ob_window_acked(&p->window, now, acked, max);
    if ((n == 0 && n_acked == 0) || (p->may_send && !p->may_send(p->ctx)))
        return collected;
    struct ob_routing *rt = ob_routing_get(p->relay);
    struct pipeline_writes *ws = &sc->writes;
    ws->n = 0;
    for (size_t i = 0; i < n_acked; i++)
        if (!write_waiting(p, ws, acked[i]))
            add_mark(p, ws, acked[i], NULL);
    size_t n_dead = 0, n_live = 0;
    for (size_t i = 0; i < n; i++) {
        if (picks[i]->state != OB_ENTRY_DEAD)
            picks[n_live++] = picks[i];
        else if (!write_waiting(p, ws, picks[i]))
            dead[n_dead++] = picks[i];
    }
    if (n_live)
        deliver(p, rt, picks, n_live, ws, now);
    if (n_dead)
        dead_letter(p, rt, dead, n_dead, ws, now);
    run_writes(p, ws, now);
    ob_routing_put(rt);
    return true;
}

void ob_pipeline_collect(struct ob_pipeline *p, int64_t now_ms)
{
    if (p->n_flying)
        collect_marks(p, now_ms);
}

void ob_pipeline_init(struct ob_pipeline *p, struct ob_relay *r, struct ob_ddb_session *s, const char *log_name)
{
    memset(p, 0, sizeof *p);
    p->relay = r;
    p->session = s;
    p->log_name = log_name;
    ob_window_init(&p->window, r->cfg->relay.ordering);
}

void ob_pipeline_abandon_writes(struct ob_pipeline *p)
{
    if (!p->writer)
        return;
    struct ob_item_write *op;
    while ((op = ob_item_writer_take_back(p->writer)))
        write_free(ob_item_write_tag(op));
    p->n_flying = 0;
    ob_item_writer_destroy(p->writer);
    p->writer = NULL;
}

void ob_pipeline_free(struct ob_pipeline *p)
{
    ob_pipeline_abandon_writes(p);
    while (p->waiting) {
        struct pipeline_write *x = p->waiting;
        p->waiting = x->next;
        write_free(x);
    }
    while (p->spare) {
        struct pipeline_write *x = p->spare;
        p->spare = x->next;
        write_free(x);
    }
    p->n_spare = 0;
    scratch_free(p->scratch);
    p->scratch = NULL;
    ob_window_free(&p->window);
}

void ob_pipeline_wait(struct ob_pipeline *p, int64_t until_ms, bool others_running)
{
    if (!p->n_flying && !others_running) {
        p->wait_until(p->ctx, until_ms);
        return;
    }
    /* Calls running: their answers end the wait. Stop requests are seen
     * within a short slice. */
    int64_t left = until_ms - ob_mono_ms();
    if (left > 0)
        ob_item_writer_poll(writer(p), left < 50 ? (int)left : 50);
}
