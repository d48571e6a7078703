/* One shard's worker: reads the shard with GetRecords, keeps the records
 * in its window, sends what the ordering rule allows to the sinks in
 * waves of at most relay.max_in_flight, marks what the sinks acknowledged
 * with concurrent conditional UpdateItems, and moves the shard's
 * checkpoint to the low watermark after every wave that advanced it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/record.h"
#include "dynamo/leases.h"
#include "dynamo/mark.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/relay_internal.h"
#include "relay/window.h"

/* AWS allows 5 GetRecords per second per shard. */
#define MIN_FETCH_GAP_MS 200
#define SEQ_MAX 128
/* A sink is down after this many retriable failures in a row. */
#define SINK_DOWN_AFTER 3

struct ob_shard_worker {
    struct ob_relay *relay;
    struct ob_shard shard;           /* owned copy */
    char *start_checkpoint;          /* sequence number, TRIM_HORIZON or LATEST */
    char *owner;                     /* our instance id, the lease's owner */
    bool cold;

    pthread_t thread;
    atomic_bool stop;                /* stop reading, drain until drain_deadline_ms */
    atomic_llong drain_deadline_ms;
    atomic_bool abandoned;           /* the lease is gone: stop at once */
    atomic_llong valid_until_ms;     /* the lease holds until then */
    atomic_bool finished;
    bool reached_end;

    struct ob_aws_session *session;
    struct ob_window window;
    char *iterator;                  /* NULL: the shard is read to its end */
    char last_read[SEQ_MAX];         /* sequence number of the newest record read */
    char checkpoint[SEQ_MAX];        /* low watermark */
    char written[SEQ_MAX];           /* last checkpoint stored */
    int64_t fetch_backoff_ms;
    struct ob_metric_series *lag, *records_read;
    char lag_labels[160];
};

/* A message on its way through one wave. */
struct wave_item {
    struct ob_entry *e;
    struct ob_ce ce;
    struct ob_buf destination;
    size_t sink;
};

static int64_t backoff_ms(const struct ob_config *cfg, int attempt)
{
    int64_t cap = cfg->relay.backoff_initial_ms;
    for (int i = 1; i < attempt && cap < cfg->relay.backoff_max_ms; i++)
        cap *= 2;
    if (cap > cfg->relay.backoff_max_ms)
        cap = cfg->relay.backoff_max_ms;
    /* Full jitter, but never a hot retry loop. */
    int64_t d = cap > 0 ? (int64_t)(((uint64_t)random() << 16 ^ (uint64_t)random()) % (uint64_t)cap) : 0;
    return d < 10 ? 10 : d;
}

static void wlog(const struct ob_shard_worker *w, enum ob_log_severity sev, const char *msg_id, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));
static void wlog(const struct ob_shard_worker *w, enum ob_log_severity sev, const char *msg_id, const char *fmt, ...)
{
    if (!ob_log_enabled(sev))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ob_log_at(sev, w->shard.id, msg_id, "%s", line);
}

static void set_error(struct ob_entry *e, const char *msg)
{
    free(e->last_error);
    e->last_error = ob_xstrdup(msg);
}

static void wait_until(struct ob_shard_worker *w, int64_t until)
{
    struct ob_relay *r = w->relay;
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&w->stop) && !atomic_load(&w->abandoned) && ob_mono_ms() < until) {
        struct timespec ts = ob_realtime_after(until - ob_mono_ms());
        if (pthread_cond_timedwait(&r->wake, &r->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->lock);
}

/* ---- reading ---------------------------------------------------------- */

static enum ob_err open_iterator(struct ob_shard_worker *w, const char *type, const char *seq,
                                 struct ob_error *err)
{
    free(w->iterator);
    w->iterator = NULL;
    struct ob_relay *r = w->relay;
    enum ob_err rc = ob_stream_iterator(w->session, r->ddb, r->stream_arn, w->shard.id, type, seq, &w->iterator, err);
    if (rc == OB_ERR_TRIMMED) {
        wlog(w, OB_SEV_WARN, NULL,
             "records after %s are no longer in the stream (older than 24 h); reading from the oldest record, "
             "the sweeper delivers what was missed", seq ? seq : "the start");
        atomic_store(&r->sweep_needed, true);
        rc = ob_stream_iterator(w->session, r->ddb, r->stream_arn, w->shard.id, "TRIM_HORIZON", NULL, &w->iterator,
                                err);
    }
    return rc;
}

static enum ob_err open_at_checkpoint(struct ob_shard_worker *w, const char *cp, struct ob_error *err)
{
    if (strcmp(cp, OB_CHECKPOINT_TRIM_HORIZON) == 0 || strcmp(cp, OB_CHECKPOINT_LATEST) == 0)
        return open_iterator(w, cp, NULL, err);
    return open_iterator(w, "AFTER_SEQUENCE_NUMBER", cp, err);
}

/* Where reading continues after an iterator was lost. */
static enum ob_err reopen_iterator(struct ob_shard_worker *w, struct ob_error *err)
{
    return open_at_checkpoint(w, w->last_read[0] ? w->last_read : w->start_checkpoint, err);
}

/* Past the lease's validity the shard may already be someone else's. */
static bool lease_gone(struct ob_shard_worker *w)
{
    if (atomic_load(&w->abandoned))
        return true;
    if (ob_mono_ms() <= atomic_load(&w->valid_until_ms))
        return false;
    if (!atomic_exchange(&w->abandoned, true))
        wlog(w, OB_SEV_WARN, NULL, "the lease could not be renewed in time; stopping at once");
    return true;
}

/* On a cold start, skips candidates already published (or deleted). */
static void cold_check(struct ob_shard_worker *w, struct ob_record *recs, size_t n)
{
    struct ob_relay *r = w->relay;
    struct ob_item_key *keys = ob_xcalloc(n ? n : 1, sizeof *keys);
    size_t *idx = ob_xcalloc(n ? n : 1, sizeof *idx);
    enum ob_item_state *states = ob_xcalloc(n ? n : 1, sizeof *states);
    size_t k = 0;
    bool older = false;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].msg.approximate_creation_ms < r->started_wall_ms)
            older = true;
        if (recs[i].kind != OB_RECORD_MESSAGE || recs[i].msg.approximate_creation_ms >= r->started_wall_ms)
            continue;
        bool dup = false;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(keys[j].sk, recs[i].msg.sk) == 0 && strcmp(keys[j].pk, recs[i].msg.pk) == 0;
        if (dup)
            continue;
        keys[k].pk = recs[i].msg.pk;
        keys[k].sk = recs[i].msg.sk;
        idx[k++] = i;
    }
    if (!older)
        w->cold = false;
    struct ob_error err;
    if (k > 0) {
        enum ob_err rc = ob_items_state(w->session, r->ddb, r->cfg->table.name, keys, k, states, &err);
        if (rc) {
            /* Delivering again is safe (at-least-once); losing is not. */
            wlog(w, OB_SEV_WARN, NULL, "cold-start check failed, delivering without it: %s", err.msg);
        } else {
            size_t skipped = 0;
            for (size_t j = 0; j < k; j++) {
                if (states[j] == OB_ITEM_UNPUBLISHED)
                    continue;
                struct ob_record *rec = &recs[idx[j]];
                rec->kind = OB_RECORD_SKIP;
                rec->skip_reason = states[j] == OB_ITEM_PUBLISHED ? "published" : "deleted";
                skipped++;
            }
            if (skipped)
                wlog(w, OB_SEV_DEBUG, NULL, "cold start: %zu of %zu candidates already published or deleted",
                     skipped, k);
        }
    }
    free(keys);
    free(idx);
    free(states);
}

/* One GetRecords call into the window. Returns the records read. */
static size_t fetch(struct ob_shard_worker *w, int64_t now)
{
    struct ob_relay *r = w->relay;
    struct ob_error err;
    json_t *resp = NULL;
    enum ob_err rc = ob_stream_get_records(w->session, r->ddb, w->iterator, r->cfg->stream.batch_size, &resp, &err);
    if (rc == OB_ERR_EXPIRED_ITERATOR || rc == OB_ERR_TRIMMED) {
        if (rc == OB_ERR_TRIMMED) {
            wlog(w, OB_SEV_WARN, NULL, "stream records were trimmed before they were read; reading from the "
                 "oldest record, the sweeper delivers what was missed");
            atomic_store(&r->sweep_needed, true);
            rc = open_iterator(w, "TRIM_HORIZON", NULL, &err);
        } else {
            wlog(w, OB_SEV_INFO, NULL, "shard iterator expired; continuing after %s",
                 w->last_read[0] ? w->last_read : "the start position");
            rc = reopen_iterator(w, &err);
        }
        if (rc == OB_OK) {
            w->fetch_backoff_ms = 0;
            return 0;
        }
    }
    if (rc) {
        w->fetch_backoff_ms = w->fetch_backoff_ms ? w->fetch_backoff_ms * 2 : 500;
        if (w->fetch_backoff_ms > 30000)
            w->fetch_backoff_ms = 30000;
        wlog(w, OB_SEV_WARN, NULL, "reading the shard failed (next try in %" PRId64 " ms): %s", w->fetch_backoff_ms,
             err.msg);
        return 0;
    }
    w->fetch_backoff_ms = 0;

    const json_t *records = json_object_get(resp, "Records");
    size_t n = json_array_size(records);
    struct ob_record *recs = ob_xcalloc(n ? n : 1, sizeof *recs);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (ob_record_decode(json_array_get(records, i), &recs[m], &err)) {
            wlog(w, OB_SEV_ERROR, NULL, "skipping a malformed stream record: %s", err.msg);
            ob_record_free(&recs[m]);
            memset(&recs[m], 0, sizeof recs[m]);
            continue;
        }
        m++;
    }
    if (w->cold)
        cold_check(w, recs, m);
    int64_t newest = 0;
    for (size_t i = 0; i < m; i++) {
        if (recs[i].kind == OB_RECORD_POISON)
            wlog(w, OB_SEV_WARN, recs[i].msg.sk, "poison item: %s", recs[i].poison_reason);
        if (recs[i].msg.approximate_creation_ms > newest)
            newest = recs[i].msg.approximate_creation_ms;
        snprintf(w->last_read, sizeof w->last_read, "%s", recs[i].msg.sequence_number);
        ob_window_push(&w->window, &recs[i], now);
    }
    free(recs);
    ob_metric_add(w->records_read, (double)m);
    double lag = newest ? (double)(ob_wall_ms() - newest) / 1000.0 : 0.0;
    ob_metric_set(w->lag, lag < 0 ? 0 : lag);

    const char *next = json_string_value(json_object_get(resp, "NextShardIterator"));
    free(w->iterator);
    w->iterator = next ? ob_xstrdup(next) : NULL;
    json_decref(resp);
    return m;
}

/* ---- delivering --------------------------------------------------------- */

/* The sink answered (a 2xx, or a rejection of this one message). */
static void sink_answered(struct ob_sink_health *h)
{
    atomic_store(&h->consecutive_retry, 0);
    atomic_store(&h->probe_failures, 0);
    if (!atomic_exchange(&h->up, true)) {
        ob_metric_set(h->up_gauge, 1);
        ob_log_info("a sink is up again; delivering what waited");
    }
}

/* A retriable failure. Returns whether the sink is down now: then the
 * failure does not count toward the message's attempts. */
static bool sink_failed_retriably(struct ob_sink_health *h)
{
    if (atomic_fetch_add(&h->consecutive_retry, 1) + 1 >= SINK_DOWN_AFTER && atomic_exchange(&h->up, false)) {
        ob_metric_set(h->up_gauge, 0);
        ob_log_warn("a sink is down (%d retriable failures in a row); its messages wait for it, one probe at a "
                    "time", SINK_DOWN_AFTER);
    }
    return !atomic_load(&h->up);
}

/* While a sink is down, only one message in the whole process tests it;
 * the others wait without spending attempts. Returns how many of the
 * group's items (from the front) may be sent now. */
static size_t admit(const struct ob_config *cfg, struct ob_sink_health *h, struct wave_item *group, size_t k,
                    int64_t now)
{
    if (atomic_load(&h->up))
        return k;
    int64_t probe_at = atomic_load(&h->next_probe_at_ms);
    size_t admitted = now >= probe_at && !atomic_exchange(&h->probing, true) ? 1 : 0;
    int64_t retry_at = probe_at > now ? probe_at : now + cfg->relay.backoff_initial_ms;
    for (size_t i = admitted; i < k; i++)
        group[i].e->next_at_ms = retry_at;
    return admitted;
}

/* The probe's outcome sets when the next one may go. */
static void probed(const struct ob_config *cfg, struct ob_sink_health *h, bool answered, int64_t now)
{
    if (!answered) {
        int n = atomic_fetch_add(&h->probe_failures, 1) + 1;
        atomic_store(&h->next_probe_at_ms, now + backoff_ms(cfg, n));
    }
    atomic_store(&h->probing, false);
}

/* A delivery failed: count it, schedule the retry or give up on it. */
static void delivery_failed(struct ob_shard_worker *w, struct ob_entry *e, const struct ob_delivery *d,
                            struct ob_sink_health *h, int64_t now)
{
    const struct ob_config *cfg = w->relay->cfg;
    bool counts = true;
    if (d->result == OB_DELIVERY_RETRY)
        counts = !sink_failed_retriably(h);
    else
        sink_answered(h);
    ob_metric_add(h->failed, 1);
    e->failures++;
    if (counts)
        e->attempts++;
    set_error(e, d->error);
    if (e->attempts >= cfg->relay.max_attempts && cfg->relay.on_failure == OB_ON_FAILURE_DEAD_LETTER) {
        wlog(w, OB_SEV_WARN, e->rec.msg.sk, "giving up after %d attempts, dead-lettering: %s", e->attempts,
             d->error);
        ob_window_set_state(&w->window, e, OB_ENTRY_DEAD);
        e->next_at_ms = now;
        return;
    }
    int64_t delay = backoff_ms(cfg, e->attempts > 0 ? e->attempts : 1);
    e->next_at_ms = now + delay;
    wlog(w, e->failures == 1 ? OB_SEV_INFO : OB_SEV_DEBUG, e->rec.msg.sk,
         "delivery failed (attempt %" PRId64 ", next in %" PRId64 " ms): %s", e->failures, delay, d->error);
}

/* The AWS writes of one wave, run concurrently. */
enum write_kind { WRITE_MARK, WRITE_FAILED, WRITE_DEAD };

struct write {
    enum write_kind kind;
    struct ob_entry *e;
    struct ob_sink_health *health;   /* WRITE_MARK: for the latency histogram */
    json_t *request;
    char *body;
    struct ob_aws_call call;
};

struct writes {
    struct write *v;
    size_t n, cap;
};

static void add_write(struct writes *ws, enum write_kind kind, struct ob_entry *e, struct ob_sink_health *h,
                      json_t *request)
{
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? ws->cap * 2 : 64;
        ws->v = ob_xrealloc(ws->v, ws->cap * sizeof *ws->v);
    }
    struct write *x = &ws->v[ws->n++];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    x->e = e;
    x->health = h;
    x->request = request;
}

static void dead_letter_write(struct ob_shard_worker *w, struct writes *ws, struct ob_entry *e, bool with_sink)
{
    const struct ob_config *cfg = w->relay->cfg;
    int64_t ttl = with_sink ? cfg->table.ttl_seconds : 0;
    add_write(ws, WRITE_DEAD, e, NULL,
              ob_mark_dead_letter_request(cfg->table.name, e->rec.msg.pk, e->rec.msg.sk, ob_wall_ms(),
                                          e->rec.msg.retry_count + e->failures,
                                          e->last_error ? e->last_error : "dead-lettered", ttl));
}

static void entry_done_dead(struct ob_shard_worker *w, struct ob_entry *e)
{
    const char *reason = e->rec.kind == OB_RECORD_POISON ? "poison" : "attempts";
    char labels[32];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    ob_metric_count("outboxd_messages_dead_lettered_total", labels, 1);
    ob_window_set_state(&w->window, e, OB_ENTRY_DONE);
}

static void run_writes(struct ob_shard_worker *w, struct writes *ws, int64_t now)
{
    if (ws->n == 0)
        return;
    struct ob_relay *r = w->relay;
    static const char *const ops = "UpdateItem";
    struct ob_aws_call **calls = ob_xcalloc(ws->n, sizeof *calls);
    for (size_t i = 0; i < ws->n; i++) {
        ob_ddb_prepare_call(r->ddb, &ws->v[i].call, ops, ws->v[i].request, &ws->v[i].body);
        calls[i] = &ws->v[i].call;
    }
    /* Each write of a small item costs one unit; settled below with what
     * DynamoDB reports. */
    int64_t wait = ob_relay_budget_take(r, (double)ws->n);
    if (wait > 0)
        wait_until(w, ob_mono_ms() + wait);
    ob_aws_run(w->session, calls, ws->n);
    double consumed = 0;
    for (size_t i = 0; i < ws->n; i++) {
        const json_t *cc = json_object_get(ws->v[i].call.response, "ConsumedCapacity");
        consumed += cc ? json_number_value(json_object_get(cc, "CapacityUnits")) : 1.0;
    }
    ob_relay_budget_settle(r, consumed - (double)ws->n);
    int64_t wall = ob_wall_ms();
    for (size_t i = 0; i < ws->n; i++) {
        struct write *x = &ws->v[i];
        struct ob_entry *e = x->e;
        enum ob_err rc = x->call.result;
        if (x->call.response)
            ob_ddb_account_capacity(ops, x->call.response);
        switch (x->kind) {
        case WRITE_MARK:
            if (rc == OB_OK || rc == OB_ERR_CONDITION_FAILED) {
                if (rc == OB_ERR_CONDITION_FAILED)
                    ob_metric_count("outboxd_messages_duplicate_total", "", 1);
                int64_t created = e->rec.msg.created_at_ms ? e->rec.msg.created_at_ms
                                                           : e->rec.msg.approximate_creation_ms;
                if (created && x->health)
                    ob_metric_observe(x->health->latency, (double)(wall - created) / 1000.0);
                ob_window_set_state(&w->window, e, OB_ENTRY_DONE);
            } else {
                e->next_at_ms = now + 1000;
                wlog(w, OB_SEV_WARN, e->rec.msg.sk, "marking published failed, will retry: %s", x->call.err.msg);
            }
            break;
        case WRITE_DEAD:
            if (rc == OB_OK || rc == OB_ERR_CONDITION_FAILED) {
                entry_done_dead(w, e);
            } else {
                e->next_at_ms = now + 1000;
                wlog(w, OB_SEV_WARN, e->rec.msg.sk, "recording the dead letter failed, will retry: %s",
                     x->call.err.msg);
            }
            break;
        case WRITE_FAILED:
            if (rc && rc != OB_ERR_CONDITION_FAILED)
                wlog(w, OB_SEV_DEBUG, e->rec.msg.sk, "recording the failed attempt failed: %s", x->call.err.msg);
            break;
        }
        ob_aws_call_release(&x->call);
        free(x->body);
        json_decref(x->request);
    }
    free(calls);
    ws->n = 0;
}

static void prepare_item(struct ob_shard_worker *w, struct ob_routing *rt, struct wave_item *it,
                         struct ob_entry *e)
{
    const char *dest = NULL;
    memset(it, 0, sizeof *it);
    it->e = e;
    ob_ce_from_message(&it->ce, &e->rec.msg, rt->cfg->cloudevents.source, w->relay->cfg->table.name);
    if (!it->ce.id)
        it->ce.id = e->rec.msg.sequence_number;
    ob_route_select(rt->cfg, &e->rec.msg, &it->sink, &dest);
    if (dest)
        ob_template_expand(&it->destination, dest, &e->rec.msg, w->relay->cfg->table.name);
}

static void release_items(struct wave_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ob_ce_free(&items[i].ce);
        ob_buf_free(&items[i].destination);
    }
}

/* Publishes items[0..n) to sink (all of them go to it). */
static void publish_to(struct ob_sink *sink, struct wave_item *items, size_t n, struct ob_delivery *d,
                       const char *error_info)
{
    for (size_t i = 0; i < n; i++) {
        memset(&d[i], 0, sizeof d[i]);
        d[i].msg = &items[i].e->rec.msg;
        d[i].ce = &items[i].ce;
        d[i].destination = items[i].destination.len ? items[i].destination.data : NULL;
        d[i].error_info = error_info ? items[i].e->last_error : NULL;
    }
    ob_sink_publish(sink, d, n);
}

/* Sends the deliverable entries to their sinks; ACKs become marks. */
static void deliver(struct ob_shard_worker *w, struct ob_routing *rt, struct ob_entry **picks, size_t n,
                    struct writes *ws, int64_t now)
{
    struct wave_item *items = ob_xcalloc(n, sizeof *items);
    struct wave_item *group = ob_xcalloc(n, sizeof *group);
    struct ob_delivery *d = ob_xcalloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++)
        prepare_item(w, rt, &items[i], picks[i]);
    const struct ob_config *cfg = w->relay->cfg;
    for (size_t s = 0; s < rt->cfg->n_sinks; s++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (items[i].sink == s)
                group[k++] = items[i];
        if (k == 0)
            continue;
        struct ob_sink_health *h = &rt->health[s];
        bool probe = !atomic_load(&h->up);
        k = admit(cfg, h, group, k, now);
        if (k == 0)
            continue;
        publish_to(rt->sinks[s], group, k, d, NULL);
        if (probe)
            probed(cfg, h, d[0].result != OB_DELIVERY_RETRY, now);
        for (size_t i = 0; i < k; i++) {
            struct ob_entry *e = group[i].e;
            if (d[i].result == OB_DELIVERY_ACK) {
                sink_answered(h);
                ob_metric_add(h->delivered, 1);
                ob_window_set_state(&w->window, e, OB_ENTRY_ACKED);
                add_write(ws, WRITE_MARK, e, h,
                          ob_mark_published_request(cfg->table.name, e->rec.msg.pk, e->rec.msg.sk, ob_wall_ms(),
                                                    cfg->table.ttl_seconds));
            } else {
                delivery_failed(w, e, &d[i], h, now);
                add_write(ws, WRITE_FAILED, e, NULL,
                          ob_mark_failed_request(cfg->table.name, e->rec.msg.pk, e->rec.msg.sk,
                                                 e->rec.msg.retry_count + e->failures, e->last_error));
            }
        }
    }
    release_items(items, n);
    free(items);
    free(group);
    free(d);
}

/* Dead-letters entries: to the dead-letter sink when there is one, then
 * the record on the item. */
static void dead_letter(struct ob_shard_worker *w, struct ob_routing *rt, struct ob_entry **picks, size_t n,
                        struct writes *ws, int64_t now)
{
    struct wave_item *items = ob_xcalloc(n, sizeof *items);
    struct ob_delivery *d = ob_xcalloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++) {
        struct ob_entry *e = picks[i];
        if (!e->last_error)
            set_error(e, e->rec.kind == OB_RECORD_POISON ? e->rec.poison_reason : "dead-lettered");
        if (!e->rec.msg.payload)
            e->rec.msg.payload = (unsigned char *)ob_xstrdup("");
        prepare_item(w, rt, &items[i], e);
    }
    if (rt->dead_letter)
        publish_to(rt->dead_letter, items, n, d, "error");
    for (size_t i = 0; i < n; i++) {
        struct ob_entry *e = picks[i];
        if (rt->dead_letter && d[i].result != OB_DELIVERY_ACK) {
            if (d[i].result == OB_DELIVERY_RETRY)
                sink_failed_retriably(rt->dead_letter_health);
            e->next_at_ms = now + backoff_ms(w->relay->cfg, 5);
            wlog(w, OB_SEV_WARN, e->rec.msg.sk, "the dead-letter sink did not take the message: %s", d[i].error);
            continue;
        }
        if (rt->dead_letter)
            sink_answered(rt->dead_letter_health);
        if (!e->rec.msg.pk || !e->rec.msg.sk) {
            wlog(w, OB_SEV_ERROR, NULL, "poison record %s has no usable key (%s); it cannot be marked",
                 e->rec.msg.sequence_number, e->last_error);
            entry_done_dead(w, e);
            continue;
        }
        dead_letter_write(w, ws, e, rt->dead_letter != NULL);
    }
    release_items(items, n);
    free(items);
    free(d);
}

/* One wave. Returns whether anything was sent or written. */
static bool wave(struct ob_shard_worker *w, int64_t now)
{
    const struct ob_config *cfg = w->relay->cfg;
    size_t max = (size_t)cfg->relay.max_in_flight;
    struct ob_entry **picks = ob_xcalloc(max, sizeof *picks);
    struct ob_entry **acked = ob_xcalloc(max, sizeof *acked);
    size_t n = ob_window_ready(&w->window, now, picks, max);
    size_t n_acked = ob_window_acked(&w->window, now, acked, max);
    if ((n == 0 && n_acked == 0) || lease_gone(w)) {
        free(picks);
        free(acked);
        return false;
    }
    struct ob_routing *rt = ob_routing_get(w->relay);
    struct writes ws = { 0 };
    for (size_t i = 0; i < n_acked; i++)
        add_write(&ws, WRITE_MARK, acked[i], NULL,
                  ob_mark_published_request(cfg->table.name, acked[i]->rec.msg.pk, acked[i]->rec.msg.sk,
                                            ob_wall_ms(), cfg->table.ttl_seconds));
    size_t n_dead = 0, n_live = 0;
    struct ob_entry **dead = ob_xcalloc(n ? n : 1, sizeof *dead);
    for (size_t i = 0; i < n; i++) {
        if (picks[i]->state == OB_ENTRY_DEAD)
            dead[n_dead++] = picks[i];
        else
            picks[n_live++] = picks[i];
    }
    if (n_live)
        deliver(w, rt, picks, n_live, &ws, now);
    if (n_dead)
        dead_letter(w, rt, dead, n_dead, &ws, now);
    run_writes(w, &ws, now);
    ob_routing_put(rt);
    free(ws.v);
    free(dead);
    free(picks);
    free(acked);
    return true;
}

/* ---- checkpoints -------------------------------------------------------- */

static void write_checkpoint(struct ob_shard_worker *w, const char *cp)
{
    if (strcmp(cp, w->written) == 0 || lease_gone(w))
        return;
    struct ob_relay *r = w->relay;
    struct ob_error err;
    enum ob_err rc = ob_checkpoint_write(w->session, r->ddb, r->cfg->leases.table, w->shard.id, w->owner, cp, &err);
    if (rc == OB_ERR_CONDITION_FAILED) {
        atomic_store(&w->abandoned, true);
        wlog(w, OB_SEV_WARN, NULL, "the lease was taken over; stopping at once");
        return;
    }
    if (rc) {
        wlog(w, OB_SEV_WARN, NULL, "writing the checkpoint failed (kept for the next try): %s", err.msg);
        return;
    }
    snprintf(w->written, sizeof w->written, "%s", cp);
}

static void advance(struct ob_shard_worker *w)
{
    if (ob_window_advance(&w->window, w->checkpoint, sizeof w->checkpoint) && w->checkpoint[0])
        write_checkpoint(w, w->checkpoint);
}

/* ---- the thread --------------------------------------------------------- */

static void run(struct ob_shard_worker *w)
{
    struct ob_relay *r = w->relay;
    const struct ob_config *cfg = r->cfg;
    struct ob_error err;
    int64_t next_fetch = 0;
    size_t fetch_room = (size_t)cfg->stream.batch_size;

    bool opened = false;
    while (!opened && !atomic_load(&w->stop) && !lease_gone(w)) {
        if (open_at_checkpoint(w, w->start_checkpoint, &err) == OB_OK) {
            opened = true;
            break;
        }
        if (err.code == OB_ERR_NOT_FOUND) {
            wlog(w, OB_SEV_WARN, NULL, "the shard is gone from the stream (trimmed); the sweeper delivers what "
                 "it held: %s", err.msg);
            atomic_store(&r->sweep_needed, true);
            write_checkpoint(w, OB_CHECKPOINT_SHARD_END);
            w->reached_end = strcmp(w->written, OB_CHECKPOINT_SHARD_END) == 0;
            return;
        }
        wlog(w, OB_SEV_WARN, NULL, "cannot start reading the shard, retrying: %s", err.msg);
        wait_until(w, ob_mono_ms() + 2000);
    }
    if (!opened)
        return;
    wlog(w, OB_SEV_INFO, NULL, "started reading from %s%s", w->start_checkpoint, w->cold ? " (cold start)" : "");

    for (;;) {
        int64_t now = ob_mono_ms();
        bool stopping = atomic_load(&w->stop);
        if (lease_gone(w) || (stopping && (w->window.undone == 0 || now >= atomic_load(&w->drain_deadline_ms))))
            break;
        if (!stopping && w->iterator && ob_window_count(&w->window) < fetch_room && now >= next_fetch &&
            !lease_gone(w)) {
            size_t got = fetch(w, now);
            next_fetch = now + (w->fetch_backoff_ms ? w->fetch_backoff_ms
                                : got ? MIN_FETCH_GAP_MS
                                : cfg->stream.poll_interval_ms < MIN_FETCH_GAP_MS ? MIN_FETCH_GAP_MS
                                                                                   : cfg->stream.poll_interval_ms);
            now = ob_mono_ms();
        }
        bool sent = wave(w, now);
        advance(w);
        if (!w->iterator && ob_window_count(&w->window) == 0) {
            write_checkpoint(w, OB_CHECKPOINT_SHARD_END);
            if (strcmp(w->written, OB_CHECKPOINT_SHARD_END) == 0) {
                wlog(w, OB_SEV_INFO, NULL, "shard read to its end");
                w->reached_end = true;
                return;
            }
            wait_until(w, ob_mono_ms() + 1000);
            continue;
        }
        if (sent)
            continue;
        int64_t until = ob_window_next_due(&w->window, now);
        bool may_fetch = !stopping && w->iterator && ob_window_count(&w->window) < fetch_room;
        if (may_fetch && next_fetch < until)
            until = next_fetch;
        if (until == INT64_MAX)
            until = now + 1000;
        if (until > now)
            wait_until(w, until);
    }
    if (w->window.undone)
        wlog(w, OB_SEV_WARN, NULL, "stopping with %zu messages not delivered; they are read again on restart",
             w->window.undone);
}

static void *worker_main(void *arg)
{
    struct ob_shard_worker *w = arg;
    char name[16];
    size_t len = strlen(w->shard.id);
    snprintf(name, sizeof name, "sh:%s", len > 12 ? w->shard.id + len - 12 : w->shard.id);
    pthread_setname_np(pthread_self(), name);

    w->session = ob_ddb_session(w->relay->ddb);
    run(w);
    if (w->checkpoint[0] && !w->reached_end)
        write_checkpoint(w, w->checkpoint);
    wlog(w, OB_SEV_INFO, NULL, "stopped reading%s (checkpoint %s)",
         w->reached_end ? ": shard ended" : atomic_load(&w->abandoned) ? ": lease lost" : "",
         w->written[0] ? w->written : w->start_checkpoint);
    ob_aws_session_destroy(w->session);
    w->session = NULL;
    atomic_store(&w->finished, true);
    ob_relay_wake(w->relay);
    return NULL;
}

enum ob_err ob_shard_worker_start(struct ob_relay *r, const struct ob_shard *shard,
                                  const struct ob_shard_start *start, struct ob_shard_worker **out,
                                  struct ob_error *err)
{
    struct ob_shard_worker *w = ob_xcalloc(1, sizeof *w);
    w->relay = r;
    w->shard.id = ob_xstrdup(shard->id);
    w->shard.parent_id = shard->parent_id ? ob_xstrdup(shard->parent_id) : NULL;
    w->start_checkpoint = ob_xstrdup(start->checkpoint);
    w->owner = ob_xstrdup(start->owner);
    w->cold = start->cold;
    atomic_init(&w->valid_until_ms, start->lease_valid_until_ms);
    atomic_init(&w->drain_deadline_ms, INT64_MAX);
    snprintf(w->written, sizeof w->written, "%s", start->checkpoint);
    ob_window_init(&w->window, r->cfg->relay.ordering);
    struct ob_buf l = { 0 };
    ob_buf_puts(&l, "shard=\"");
    ob_metrics_escape(&l, shard->id);
    ob_buf_putc(&l, '"');
    snprintf(w->lag_labels, sizeof w->lag_labels, "%s", l.data);
    ob_buf_free(&l);
    w->lag = ob_metric_series("outboxd_stream_lag_seconds", w->lag_labels);
    w->records_read = ob_metric_series("outboxd_stream_records_read_total", "");
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e) {
        ob_window_free(&w->window);
        free(w->shard.id);
        free(w->shard.parent_id);
        free(w->start_checkpoint);
        free(w->owner);
        free(w);
        return ob_error_set(err, OB_ERR_INTERNAL, "starting a shard thread: %s", strerror(e));
    }
    *out = w;
    return OB_OK;
}

void ob_shard_worker_renewed(struct ob_shard_worker *w, int64_t valid_until_ms)
{
    atomic_store(&w->valid_until_ms, valid_until_ms);
}

void ob_shard_worker_stop(struct ob_shard_worker *w, int64_t deadline_ms)
{
    atomic_store(&w->drain_deadline_ms, deadline_ms);
    atomic_store(&w->stop, true);
    ob_relay_wake(w->relay);
}

void ob_shard_worker_abandon(struct ob_shard_worker *w)
{
    atomic_store(&w->abandoned, true);
    ob_relay_wake(w->relay);
}

bool ob_shard_worker_finished(struct ob_shard_worker *w)
{
    return atomic_load(&w->finished);
}

bool ob_shard_worker_join(struct ob_shard_worker *w)
{
    pthread_join(w->thread, NULL);
    bool end = w->reached_end;
    ob_metric_drop("outboxd_stream_lag_seconds", w->lag_labels);
    ob_window_free(&w->window);
    free(w->iterator);
    free(w->shard.id);
    free(w->shard.parent_id);
    free(w->start_checkpoint);
    free(w->owner);
    free(w);
    return end;
}
