/* The sweeper: finds the items the stream no longer has (outboxd was
 * down for more than the stream's 24 h, a shard was trimmed, a start from
 * `latest`) with a parallel Scan under capacity.sweep_read_units_per_second
 * and delivers them through the same pipeline as the shard workers:
 * routes, per-key order, marks, failures. Items of one partition key lie
 * in one Scan segment, in sort-key (message id, time-ordered) order, so
 * pushing pages in order keeps each key's order. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/record.h"
#include "dynamo/leases.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "relay/pipeline.h"

#define SEGMENTS 4
#define PAGE_ITEMS 100

struct segment {
    json_t *start;   /* ExclusiveStartKey of the next page, NULL at the start */
    bool done;
};

struct sweep {
    struct ob_relay *r;
    const struct ob_sweep_options *o;
    struct ob_sweep_stats *st;
    struct ob_pipeline pipe;
    struct ob_token_bucket budget;
    struct segment seg[SEGMENTS];
    uint64_t seq;    /* stands in for stream sequence numbers in the window */
    double units_per_item;  /* read units a scanned item costs, as last seen */
    int page_items;
    char cutoff[OB_ISO8601_LEN];
};

static void sweep_wait(void *ctx, int64_t until_ms)
{
    struct sweep *sw = ctx;
    /* A stop ends the waits, except those of marks_only, its own, which
     * end at the stop deadline at the latest. */
    int64_t deadline = atomic_load(&sw->r->stop_deadline_ms);
    if (sw->pipe.marks_only && deadline < until_ms)
        until_ms = deadline;
    while ((sw->pipe.marks_only || !atomic_load(&sw->r->stopping)) && ob_mono_ms() < until_ms) {
        int64_t left = until_ms - ob_mono_ms();
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (left < 100 ? left : 100) * 1000000 };
        nanosleep(&ts, NULL);
    }
}

static json_t *scan_request(struct sweep *sw, int segment)
{
    json_t *req = json_pack(
        "{s:s,s:i,s:i,s:i,s:s,s:{s:{s:b},s:{s:s}},s:s}", "TableName", sw->r->cfg->table.name, "Segment", segment,
        "TotalSegments", SEGMENTS, "Limit", sw->page_items, "FilterExpression",
        "(attribute_not_exists(isPublished) OR isPublished <> :t) AND attribute_not_exists(deadLetteredAt) "
        "AND (attribute_not_exists(createdAt) OR createdAt < :cutoff)",
        "ExpressionAttributeValues", ":t", "BOOL", 1, ":cutoff", "S", sw->cutoff, "ReturnConsumedCapacity", "TOTAL");
    if (sw->seg[segment].start)
        json_object_set(req, "ExclusiveStartKey", sw->seg[segment].start);
    return req;
}

/* An item as the INSERT stream record the decoder knows. */
static void take_item(struct sweep *sw, const json_t *item, int64_t now)
{
    char seq[32];
    snprintf(seq, sizeof seq, "%020" PRIu64, ++sw->seq);
    json_t *rec = json_pack("{s:s,s:{s:s,s:O,s:{s:O,s:O}}}", "eventName", "INSERT", "dynamodb", "SequenceNumber",
                            seq, "NewImage", item, "Keys", "pk", json_object_get(item, "pk"), "sk",
                            json_object_get(item, "sk"));
    struct ob_record r = { 0 };
    struct ob_error err;
    if (!rec || ob_record_decode(rec, &r, &err) || r.kind == OB_RECORD_SKIP) {
        ob_record_free(&r);
        json_decref(rec);
        return;
    }
    json_decref(rec);
    sw->st->candidates++;
    sw->st->poison += r.kind == OB_RECORD_POISON;
    if (sw->o->list) {
        fprintf(sw->o->list, "%s\t%s\t%s\t%s%s%s\n", r.msg.sk ? r.msg.sk : "-", r.msg.pk ? r.msg.pk : "-",
                r.msg.message_type ? r.msg.message_type : "-", r.msg.created_at ? r.msg.created_at : "-",
                r.kind == OB_RECORD_POISON ? "\tpoison: " : "", r.kind == OB_RECORD_POISON ? r.poison_reason : "");
    }
    if (sw->o->dry_run) {
        ob_record_free(&r);
        return;
    }
    ob_window_push(&sw->pipe.window, &r, now);
}

/* Pages of about a second of the budget across the segments, so no
 * round overshoots it by much. */
static void size_pages(struct sweep *sw, double units_per_item)
{
    sw->units_per_item = units_per_item;
    double rate = sw->budget.rate;
    double items = rate > 0 ? rate / (SEGMENTS * units_per_item) : PAGE_ITEMS;
    sw->page_items = items < 1 ? 1 : items > PAGE_ITEMS ? PAGE_ITEMS : (int)items;
}

/* One page of every segment still to read, concurrently. */
static enum ob_err scan_round(struct sweep *sw, struct ob_error *err)
{
    struct ob_aws_call calls[SEGMENTS];
    struct ob_aws_call *ptrs[SEGMENTS];
    char *bodies[SEGMENTS];
    int which[SEGMENTS], n = 0;
    for (int i = 0; i < SEGMENTS; i++) {
        if (sw->seg[i].done)
            continue;
        json_t *req = scan_request(sw, i);
        ob_ddb_prepare_call(sw->r->ddb, &calls[n], "Scan", req, &bodies[n]);
        json_decref(req);
        ptrs[n] = &calls[n];
        which[n++] = i;
    }
    /* A page's cost is known only afterwards: take the estimate now,
     * settle with what DynamoDB reports. */
    double estimate = n * sw->page_items * sw->units_per_item;
    int64_t wait = ob_bucket_take(&sw->budget, estimate, ob_mono_ms());
    if (wait > 0)
        sweep_wait(sw, ob_mono_ms() + wait);
    ob_aws_run(sw->pipe.session, ptrs, (size_t)n);
    enum ob_err rc = OB_OK;
    int64_t now = ob_mono_ms();
    double units = 0, scanned = 0;
    for (int k = 0; k < n; k++) {
        struct segment *seg = &sw->seg[which[k]];
        const json_t *resp = calls[k].response;
        if (calls[k].result) {
            if (!rc) {
                rc = calls[k].result;
                *err = calls[k].err;
                ob_error_prefix(err, "Scan %s", sw->r->cfg->table.name);
            }
        } else {
            ob_ddb_account_capacity("Scan", resp);
            units += json_number_value(json_object_get(json_object_get(resp, "ConsumedCapacity"), "CapacityUnits"));
            scanned += json_number_value(json_object_get(resp, "ScannedCount"));
            size_t i;
            const json_t *item;
            json_array_foreach(json_object_get(resp, "Items"), i, item)
                take_item(sw, item, now);
            json_decref(seg->start);
            seg->start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
            seg->done = seg->start == NULL;
        }
        ob_aws_call_release(&calls[k]);
        free(bodies[k]);
    }
    sw->st->read_units += units;
    ob_bucket_settle(&sw->budget, units - estimate);
    if (scanned > 0 && units > 0)
        size_pages(sw, units / scanned);
    return rc;
}

static bool all_read(const struct sweep *sw)
{
    for (int i = 0; i < SEGMENTS; i++)
        if (!sw->seg[i].done)
            return false;
    return true;
}

/* Runs waves until the window has room again (or, at the end, is empty). */
static void deliver(struct sweep *sw, size_t room)
{
    char seq[32];
    while (!atomic_load(&sw->r->stopping) && sw->pipe.window.undone > room) {
        int64_t now = ob_mono_ms();
        if (!ob_pipeline_wave(&sw->pipe, now)) {
            int64_t due = ob_window_next_due(&sw->pipe.window, now);
            ob_pipeline_wait(&sw->pipe, due == INT64_MAX ? now + 100 : due, false);
        }
        ob_window_advance(&sw->pipe.window, seq, sizeof seq);
    }
    ob_window_advance(&sw->pipe.window, seq, sizeof seq);
}

/* Stopping: nothing new goes out, and what the sinks acknowledged is
 * marked (until the stop deadline), so a graceful stop repeats nothing. */
static void finish_marks(struct sweep *sw)
{
    int64_t deadline = atomic_load(&sw->r->stop_deadline_ms);
    sw->pipe.marks_only = true;
    while ((sw->pipe.window.acked || sw->pipe.n_flying) && ob_mono_ms() < deadline) {
        int64_t now = ob_mono_ms();
        /* A failed mark waits out its retry here: short steps, no due time to compute. */
        if (!ob_pipeline_wave(&sw->pipe, now))
            ob_pipeline_wait(&sw->pipe, now + 50 < deadline ? now + 50 : deadline, false);
    }
}

enum ob_err ob_sweep_pass(struct ob_relay *r, struct ob_aws_session *s, const struct ob_sweep_options *o,
                          struct ob_sweep_stats *st, struct ob_error *err)
{
    struct sweep sw = { .r = r, .o = o, .st = st };
    memset(st, 0, sizeof *st);
    ob_pipeline_init(&sw.pipe, r, s, "sweep");
    sw.pipe.wait_until = sweep_wait;
    sw.pipe.ctx = &sw;
    double rate = r->cfg->capacity.sweep_read_units_per_second;
    ob_bucket_init(&sw.budget, rate, rate, ob_mono_ms());
    /* Until the first pages tell: a 2 KB item, read eventually consistent. */
    size_pages(&sw, 0.5);
    ob_iso8601_ms(ob_wall_ms() - o->older_than_ms, sw.cutoff);
    size_t room = (size_t)r->cfg->stream.batch_size;
    enum ob_err rc = OB_OK;
    while (!all_read(&sw) && !atomic_load(&r->stopping)) {
        rc = scan_round(&sw, err);
        if (rc)
            break;
        deliver(&sw, room);
    }
    deliver(&sw, 0);
    if (atomic_load(&r->stopping))
        finish_marks(&sw);
    st->undelivered = sw.pipe.window.undone;
    st->stopped_early = rc == OB_OK && (st->undelivered || !all_read(&sw));
    for (int i = 0; i < SEGMENTS; i++)
        json_decref(sw.seg[i].start);
    ob_pipeline_free(&sw.pipe);
    return rc;
}

/* ---- the daemon's sweeper thread ----------------------------------------- */

/* Until ms have passed, a stop, or (when or_needed) a shard asking for a
 * sweep. */
static void sweeper_wait(struct ob_relay *r, int64_t ms, bool or_needed)
{
    int64_t until = ob_mono_ms() + ms;
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stopping) && !(or_needed && atomic_load(&r->sweep_needed)) && ob_mono_ms() < until) {
        struct timespec ts = ob_clock_after(CLOCK_MONOTONIC, until - ob_mono_ms());
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
}

void *ob_sweeper_main(void *arg)
{
    struct ob_relay *r = arg;
    const struct ob_config *cfg = r->cfg;
    pthread_setname_np(pthread_self(), "ob-sweeper");
    struct ob_aws_session *s = ob_ddb_session(r->ddb);
    struct ob_sweep_lease lease;
    ob_sweep_lease_init(&lease, cfg->leases.table, cfg->table.name, r->instance_id);
    struct ob_sweep_options o = { .older_than_ms = cfg->sweep.older_than_ms };
    /* Other instances' schedules are looked at this often. */
    int64_t check_every = cfg->sweep.interval_ms && cfg->sweep.interval_ms < 30000 ? cfg->sweep.interval_ms : 30000;
    /* What the stream delivers in the first older_than after a start is
     * not the sweeper's: sweeping it too would deliver it twice, so not
     * even a shard asking (a start from a trimmed position) ends this wait. */
    sweeper_wait(r, cfg->sweep.older_than_ms, false);
    while (!atomic_load(&r->stopping)) {
        bool needed = atomic_exchange(&r->sweep_needed, false), retry_later = false;
        if (!needed && cfg->sweep.interval_ms == 0) {
            sweeper_wait(r, check_every, true); /* periodic sweeps are off; trimmed shards still ask */
            continue;
        }
        struct ob_error err;
        /* Held for the sweep's duration; an instance that dies mid-sweep
         * frees it after 10 minutes. */
        enum ob_err rc = ob_sweep_lease_take(s, r->ddb, &lease, ob_wall_ms(), 600000, !needed, &err);
        if (rc == OB_OK) {
            struct ob_sweep_stats st;
            int64_t t0 = ob_mono_ms();
            rc = ob_sweep_pass(r, s, &o, &st, &err);
            if (rc)
                ob_log_warn("sweep failed: %s", err.msg);
            else if (st.stopped_early)
                ob_log_info("sweep stopped early: %zu of the %zu unpublished items found so far left for the next "
                            "sweep", st.undelivered, st.candidates);
            else
                ob_log_at(st.candidates ? OB_SEV_INFO : OB_SEV_DEBUG, "sweep", NULL,
                          "swept %s: %zu unpublished items older than %" PRId64 " s (%zu poison), %.1f read "
                          "units in %.1f s", cfg->table.name, st.candidates, o.older_than_ms / 1000, st.poison,
                          st.read_units, (double)(ob_mono_ms() - t0) / 1000.0);
            /* One stopped early is due again at once, here or elsewhere. */
            int64_t next = ob_wall_ms() + (st.stopped_early ? 0 : cfg->sweep.interval_ms);
            if (ob_sweep_lease_finish(s, r->ddb, &lease, next, &err))
                ob_log_warn("ending the sweep lease failed: %s", err.msg);
            retry_later = needed && (rc || st.stopped_early);
        } else if (rc != OB_ERR_CONDITION_FAILED) {
            ob_log_warn("taking the sweep lease failed: %s", err.msg);
            retry_later = needed;
        }
        /* A sweep asked for and not done is still wanted, after a pause. */
        if (retry_later)
            atomic_store(&r->sweep_needed, true);
        sweeper_wait(r, check_every, !retry_later);
    }
    ob_aws_session_destroy(s);
    return NULL;
}
