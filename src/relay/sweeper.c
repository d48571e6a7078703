/* The sweeper: finds the items the stream no longer has (outboxd was
 * down for more than the stream's 24 h, a shard was trimmed, a start from
 * `latest`) with a parallel Scan under capacity.sweep_read_units_per_second
 * and delivers them through the same pipeline as the shard workers:
 * routes, per-key order, marks, failures. Items of one partition key lie
 * in one Scan segment, in sort-key (message id, time-ordered) order, so
 * pushing pages in order keeps each key's order. It never races the
 * stream (SPEC §3): it takes only items created older_than before what
 * the readers of every open shard have handled (their leases' readThrough),
 * and looks each item up again right before it goes out. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/record.h"
#include "dynamo/leases.h"
#include "dynamo/mark.h"
#include "dynamo/outbox_scan.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/pipeline.h"

#define PAGE_ITEMS 100
/* The sweep lease is renewed this often. */
#define SWEEP_RENEW_MS 20000

struct sweep {
    struct ob_relay *r;
    const struct ob_sweep_options *o;
    struct ob_sweep_stats *st;
    struct ob_pipeline pipe;
    struct ob_token_bucket budget;
    struct ob_outbox_scan scan;
    uint64_t seq;    /* stands in for stream sequence numbers in the window */
    double units_per_item;  /* read units a scanned item costs, as last seen */
    int page_items;
    int64_t lease_renew_at;  /* monotonic */
    int64_t marks_until;    /* monotonic: stopping, what was delivered is marked until then */
    bool lease_lost;        /* another instance sweeps now: send nothing new */
    uint64_t *blocked;      /* key hashes given up for this sweep (on_failure: block) */
    size_t n_blocked;
    struct ob_record *found; /* a round's candidates, looked up before they go into the window */
    size_t n_found, cap_found;
};

/* Nothing new goes out: the process stops, or the sweep lease was lost. */
static bool sweep_stopping(const struct sweep *sw)
{
    return atomic_load(&sw->r->stopping) || sw->lease_lost;
}

/* Keeps the sweep lease for as long as the sweep runs (SPEC §3): it
 * passes to another instance only by expiry. */
static void keep_lease(struct sweep *sw)
{
    if (!sw->o->lease || sw->lease_lost || ob_mono_ms() < sw->lease_renew_at)
        return;
    struct ob_error err;
    enum ob_err rc = ob_sweep_lease_renew(sw->pipe.session, sw->o->lease, ob_wall_ms(), OB_SWEEP_HOLD_MS,
                                          &err);
    if (rc == OB_ERR_CONDITION_FAILED) {
        sw->lease_lost = true;
        ob_log_warn("the sweep lease was taken by another instance (it had expired); this sweep stops");
    } else if (rc) {
        ob_log_warn("renewing the sweep lease failed (trying again in 5 s): %s", err.msg);
        sw->lease_renew_at = ob_mono_ms() + 5000;
        return;
    }
    sw->lease_renew_at = ob_mono_ms() + SWEEP_RENEW_MS;
}

static void sweep_wait(void *ctx, int64_t until_ms)
{
    struct sweep *sw = ctx;
    /* A stop ends the waits, except those of marks_only, its own, which
     * end at the stop deadline at the latest. */
    if (sw->pipe.marks_only && sw->marks_until < until_ms)
        until_ms = sw->marks_until;
    while ((sw->pipe.marks_only || !sweep_stopping(sw)) && ob_mono_ms() < until_ms) {
        keep_lease(sw);
        int64_t left = until_ms - ob_mono_ms();
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (left < 100 ? left : 100) * 1000000 };
        nanosleep(&ts, NULL);
    }
}

static bool key_blocked(const struct sweep *sw, uint64_t key_hash)
{
    for (size_t i = 0; i < sw->n_blocked; i++)
        if (sw->blocked[i] == key_hash)
            return true;
    return false;
}

/* Whether an item is old enough: its createdAt, parsed, before the cutoff
 * (the Scan's bound, compared as text, is later); one that does not parse
 * counts as undated. */
static bool before_cutoff(const struct sweep *sw, const struct ob_record *r)
{
    if (r->msg.created_at_ms)
        return r->msg.created_at_ms < sw->st->cutoff_ms;
    return sw->o->include_undated;
}

/* An item as the INSERT stream record the decoder knows, kept for the
 * round's look-up. */
static void take_item(struct sweep *sw, const json_t *item)
{
    char seq[32];
    snprintf(seq, sizeof seq, "%020" PRIu64, ++sw->seq);
    json_t *rec = json_pack("{s:s,s:{s:s,s:O,s:{s:O,s:O}}}", "eventName", "INSERT", "dynamodb", "SequenceNumber",
                            seq, "NewImage", item, "Keys", "pk", json_object_get(item, "pk"), "sk",
                            json_object_get(item, "sk"));
    struct ob_record r = { 0 };
    struct ob_error err;
    if (!rec || ob_record_decode(rec, &r, &err) || r.kind == OB_RECORD_SKIP || !before_cutoff(sw, &r)) {
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
    if (sw->n_found == sw->cap_found) {
        sw->cap_found = sw->cap_found ? 2 * sw->cap_found : 64;
        sw->found = ob_xrealloc(sw->found, sw->cap_found * sizeof *sw->found);
    }
    sw->found[sw->n_found++] = r;
}

/* Right before they go out, the round's items are looked up again
 * (strongly consistent): one published or dead-lettered since the Scan
 * saw it is skipped. The rest go into the window, in order, except the
 * items of a key given up for this sweep. */
static void recheck_and_push(struct sweep *sw)
{
    size_t n = sw->n_found;
    if (n == 0)
        return;
    struct ob_item_key *keys = ob_xcalloc(n, sizeof *keys);
    enum ob_item_state *states = ob_xcalloc(n, sizeof *states);
    size_t *idx = ob_xcalloc(n, sizeof *idx);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sw->found[i].msg.pk && sw->found[i].msg.sk) { /* a poison item without keys is not looked up */
            keys[k].pk = sw->found[i].msg.pk;
            keys[k].sk = sw->found[i].msg.sk;
            idx[k++] = i;
        }
    enum ob_err rc = OB_OK;
    struct ob_error err;
    if (k) {
        struct ob_items_lookup *l = ob_items_lookup_start(sw->pipe.session, sw->r->cfg->table.name, keys,
                                                          k, states);
        while (!ob_items_lookup_poll(l)) {
            ob_pipeline_collect(&sw->pipe, ob_mono_ms());
            ob_ddb_session_poll(sw->pipe.session, 50);
        }
        rc = ob_items_lookup_finish(l, &err);
        if (rc) /* delivering again is safe (at-least-once); the mark's condition tells */
            ob_log_warn("sweep: looking items up again before sending failed, sending without it: %s", err.msg);
    }
    for (size_t j = 0; rc == OB_OK && j < k; j++) {
        struct ob_record *rec = &sw->found[idx[j]];
        if (states[j] == OB_ITEM_PUBLISHED || states[j] == OB_ITEM_DEAD_LETTERED) {
            rec->kind = OB_RECORD_SKIP;
            rec->skip_reason = states[j] == OB_ITEM_PUBLISHED ? "published" : "dead-lettered";
            sw->st->rechecked++;
        }
    }
    int64_t now = ob_mono_ms();
    for (size_t i = 0; i < n; i++) {
        struct ob_entry *e = ob_window_push(&sw->pipe.window, &sw->found[i], now);
        if (e->state != OB_ENTRY_DONE && ob_given_up_has(&sw->r->given_up, e->rec.msg.pk, e->rec.msg.sk)) {
            ob_window_set_state(&sw->pipe.window, e, OB_ENTRY_DONE);
            sw->st->given_up++;
        }
        if (e->state == OB_ENTRY_PENDING && key_blocked(sw, e->key_hash)) {
            ob_window_set_state(&sw->pipe.window, e, OB_ENTRY_DONE);
            sw->st->blocked++;
        }
    }
    sw->n_found = 0;
    free(keys);
    free(states);
    free(idx);
}

/* With on_failure: block, a message that used up its attempts would hold
 * the sweep for good: its key is given up for this sweep (what the sinks
 * took of it is still marked), all its items wait for the next one, in
 * order. */
static void give_up_blocked(struct sweep *sw)
{
    const struct ob_config *cfg = sw->r->cfg;
    struct ob_window *win = &sw->pipe.window;
    if (cfg->relay.on_failure != OB_ON_FAILURE_BLOCK)
        return;
    for (size_t i = win->head; i < win->len; i++) {
        struct ob_entry *e = &win->v[i];
        if (e->state != OB_ENTRY_PENDING || e->attempts < cfg->relay.max_attempts || key_blocked(sw, e->key_hash))
            continue;
        ob_log_warn("sweep: key %s blocked after %d attempts (%s); its items wait for the next sweep", e->rec.msg.pk,
                    e->attempts, e->last_error ? e->last_error : "failed");
        sw->blocked = ob_xrealloc(sw->blocked, (sw->n_blocked + 1) * sizeof *sw->blocked);
        sw->blocked[sw->n_blocked++] = e->key_hash;
    }
    for (size_t i = win->head; sw->n_blocked && i < win->len; i++) {
        struct ob_entry *e = &win->v[i];
        /* A dead letter goes on: it is sent once, and its record may be
         * waiting to be written. */
        if (e->state == OB_ENTRY_PENDING && key_blocked(sw, e->key_hash)) {
            ob_window_set_state(win, e, OB_ENTRY_DONE);
            sw->st->blocked++;
        }
    }
}

/* Pages of about a second of the budget across the segments, so no
 * round overshoots it by much. */
static void size_pages(struct sweep *sw, double units_per_item)
{
    sw->units_per_item = units_per_item;
    double rate = sw->budget.rate;
    double items = rate > 0 ? rate / (OB_OUTBOX_SCAN_SEGMENTS * units_per_item) : PAGE_ITEMS;
    sw->page_items = items < 1 ? 1 : items > PAGE_ITEMS ? PAGE_ITEMS : (int)items;
}

/* One page of every segment still to read, concurrently. */
static enum ob_err scan_round(struct sweep *sw, struct ob_error *err)
{
    /* A page's cost is known only afterwards: take the estimate now,
     * settle with what DynamoDB reports. */
    double estimate = ob_outbox_scan_left(&sw->scan) * sw->page_items * sw->units_per_item;
    int64_t wait = ob_bucket_take(&sw->budget, estimate, ob_mono_ms());
    if (wait > 0)
        sweep_wait(sw, ob_mono_ms() + wait);
    struct ob_outbox_scan_pages pages = { 0 };
    enum ob_err rc = ob_outbox_scan_round(sw->pipe.session, &sw->scan, sw->page_items, &pages, err);
    size_t i;
    const json_t *item;
    json_array_foreach(pages.items, i, item)
        take_item(sw, item);
    sw->st->read_units += pages.units;
    ob_bucket_settle(&sw->budget, pages.units - estimate);
    if (pages.scanned > 0 && pages.units > 0)
        size_pages(sw, pages.units / pages.scanned);
    ob_outbox_scan_pages_free(&pages);
    recheck_and_push(sw);
    return rc;
}

/* Runs waves until the window has room again (or, at the end, is empty). */
static void deliver(struct sweep *sw, size_t room)
{
    char seq[32];
    while (!sweep_stopping(sw) && sw->pipe.window.undone > room) {
        int64_t now = ob_mono_ms();
        keep_lease(sw);
        if (!ob_pipeline_wave(&sw->pipe, now)) {
            int64_t due = ob_window_next_due(&sw->pipe.window, now);
            ob_pipeline_wait(&sw->pipe, due == INT64_MAX ? now + 100 : due, false);
        }
        give_up_blocked(sw);
        ob_window_advance(&sw->pipe.window, seq, sizeof seq);
    }
    ob_window_advance(&sw->pipe.window, seq, sizeof seq);
}

/* Stopping: nothing new goes out, and what the sinks acknowledged is
 * marked (until the stop deadline), so a graceful stop repeats nothing. */
static void finish_marks(struct sweep *sw)
{
    /* A lost lease is no stop of the process: a few seconds for the marks. */
    int64_t deadline = atomic_load(&sw->r->stopping) ? atomic_load(&sw->r->stop_deadline_ms) : ob_mono_ms() + 5000;
    sw->marks_until = deadline;
    sw->pipe.marks_only = true;
    while ((sw->pipe.window.acked || sw->pipe.n_flying) && ob_mono_ms() < deadline) {
        int64_t now = ob_mono_ms();
        keep_lease(sw);
        /* A failed mark waits out its retry here: short steps, no due time to compute. */
        if (!ob_pipeline_wave(&sw->pipe, now))
            ob_pipeline_wait(&sw->pipe, now + 50 < deadline ? now + 50 : deadline, false);
    }
}

/* The newest createdAt this sweep takes: older_than before now and before
 * what the reader of every open shard has handled; 0 when a reader has
 * not said yet (then nothing is swept now). */
static enum ob_err sweep_cutoff(struct sweep *sw, struct ob_error *err)
{
    struct ob_relay *r = sw->r;
    int64_t cutoff = ob_wall_ms() - sw->o->older_than_ms;
    if (r->stream_arn) {
        int64_t through;
        char *behind;
        enum ob_err rc = ob_leases_read_through(sw->pipe.session, r->cfg->leases.table, r->stream_arn,
                                                &through, &behind, err);
        if (rc) {
            ob_error_prefix(err, "reading how far the shards' readers are");
            return rc;
        }
        if (through != INT64_MAX && (through == 0 || through - sw->o->older_than_ms < cutoff)) {
            cutoff = through ? through - sw->o->older_than_ms : 0;
            sw->st->behind = behind;
        } else {
            free(behind);
        }
    }
    sw->st->cutoff_ms = cutoff > 0 ? cutoff : 0;
    return OB_OK;
}

enum ob_err ob_sweep_pass(struct ob_relay *r, struct ob_ddb_session *s, const struct ob_sweep_options *o,
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
    sw.lease_renew_at = ob_mono_ms() + SWEEP_RENEW_MS;
    size_t room = (size_t)r->cfg->stream.batch_size;
    enum ob_err rc = sweep_cutoff(&sw, err);
    if (rc || st->cutoff_ms == 0)
        goto out;
    ob_outbox_scan_init(&sw.scan, r->cfg->table.name, st->cutoff_ms, o->include_undated);
    while (ob_outbox_scan_left(&sw.scan) && !sweep_stopping(&sw)) {
        rc = scan_round(&sw, err);
        if (rc)
            break;
        deliver(&sw, room);
    }
    deliver(&sw, 0);
    if (sweep_stopping(&sw))
        finish_marks(&sw);
    st->undelivered = sw.pipe.window.undone;
    st->stopped_early = rc == OB_OK && (st->undelivered || ob_outbox_scan_left(&sw.scan));
out:
    ob_outbox_scan_free(&sw.scan);
    for (size_t i = 0; i < sw.n_found; i++)
        ob_record_free(&sw.found[i]);
    free(sw.found);
    free(sw.blocked);
    ob_pipeline_free(&sw.pipe);
    return rc;
}

/* ---- the daemon's sweeper thread ----------------------------------------- */

static bool relay_stopping(void *ctx)
{
    struct ob_relay *r = ctx;
    return atomic_load(&r->stopping);
}

static bool stopping_or_sweep_needed(void *ctx)
{
    struct ob_relay *r = ctx;
    return atomic_load(&r->stopping) || atomic_load(&r->sweep_needed);
}

/* Until ms have passed, a stop, or (when or_needed) a shard asking for a
 * sweep. */
static void sweeper_wait(struct ob_relay *r, int64_t ms, bool or_needed)
{
    ob_relay_wait(r, ob_mono_ms() + ms, or_needed ? stopping_or_sweep_needed : relay_stopping, r);
}

/* Sweeps wait while a shard's reader has not said how far it has read:
 * a metric says for how long, and past HELD_BACK_WARN_MS a warning every
 * so often names the shard (a halted shard, one nobody can read, an
 * instance of an older version). behind NULL: not held back (any more). */
#define HELD_BACK_WARN_MS 600000
struct held_back {
    int64_t since, warned_at;    /* monotonic; since 0: not held back */
};

static void held_back_for(struct held_back *hb, const char *behind)
{
    struct ob_metric_series *gauge = ob_metric_series("outboxd_sweep_held_back_seconds", "");
    int64_t now = ob_mono_ms();
    if (!behind) {
        hb->since = 0;
        ob_metric_set(gauge, 0);
        return;
    }
    if (!hb->since)
        hb->since = now;
    ob_metric_set(gauge, (double)(now - hb->since) / 1000.0);
    if (now - hb->since >= HELD_BACK_WARN_MS && now - hb->warned_at >= HELD_BACK_WARN_MS) {
        hb->warned_at = now;
        ob_log_warn("sweeps have waited %" PRId64 " s for the reader of shard %s to say how far it has read; nothing "
                    "is swept meanwhile", (now - hb->since) / 1000, behind);
    } else {
        ob_log_debug("sweep: the reader of %s has not said how far it has read; sweeping later", behind);
    }
}

void *ob_sweeper_main(void *arg)
{
    struct ob_relay *r = arg;
    const struct ob_config *cfg = r->cfg;
    pthread_setname_np(pthread_self(), "ob-sweeper");
    struct ob_ddb_session *s = ob_ddb_session_create(r->ddb);
    struct ob_sweep_lease lease;
    ob_sweep_lease_init(&lease, cfg->leases.table, cfg->table.name, r->instance_id);
    struct ob_sweep_options o = { .older_than_ms = cfg->sweep.older_than_ms, .lease = &lease };
    /* Other instances' schedules are looked at this often. */
    int64_t check_every = cfg->sweep.interval_ms && cfg->sweep.interval_ms < 30000 ? cfg->sweep.interval_ms : 30000;
    /* What the stream delivers in the first older_than after a start is
     * not the sweeper's: sweeping it too would deliver it twice, so not
     * even a shard asking (a start from a trimmed position) ends this wait. */
    sweeper_wait(r, cfg->sweep.older_than_ms, false);
    struct held_back held = { 0 };
    while (!atomic_load(&r->stopping)) {
        bool needed = atomic_exchange(&r->sweep_needed, false), retry_later = false;
        if (!needed && cfg->sweep.interval_ms == 0) {
            sweeper_wait(r, check_every, true); /* periodic sweeps are off; trimmed shards still ask */
            continue;
        }
        struct ob_error err;
        bool held_back = false;
        /* Renewed while the sweep runs; an instance that dies mid-sweep
         * frees it after OB_SWEEP_HOLD_MS. */
        enum ob_err rc = ob_sweep_lease_take(s, &lease, ob_wall_ms(), OB_SWEEP_HOLD_MS, !needed, &err);
        if (rc == OB_OK) {
            struct ob_sweep_stats st;
            int64_t t0 = ob_mono_ms();
            rc = ob_sweep_pass(r, s, &o, &st, &err);
            held_back = rc == OB_OK && st.cutoff_ms == 0;
            if (rc)
                ob_log_warn("sweep failed: %s", err.msg);
            else if (held_back)
                held_back_for(&held, st.behind ? st.behind : "(unknown)");
            else if (st.stopped_early)
                ob_log_info("sweep stopped early: %zu of the %zu unpublished items found so far left for the next "
                            "sweep", st.undelivered, st.candidates);
            else
                ob_log_at(st.candidates ? OB_SEV_INFO : OB_SEV_DEBUG, "sweep", NULL,
                          "swept %s: %zu unpublished items older than %" PRId64 " s (%zu poison), %.1f read "
                          "units in %.1f s", cfg->table.name, st.candidates, o.older_than_ms / 1000, st.poison,
                          st.read_units, (double)(ob_mono_ms() - t0) / 1000.0);
            if (st.given_up)
                ob_log_info("sweep: %zu items this process delivered but could not record on the table were not "
                            "sent again", st.given_up);
            if (st.blocked)
                ob_log_warn("sweep: %zu items of keys blocked by on_failure: block wait for the next sweep",
                            st.blocked);
            free(st.behind);
            /* One stopped early or held back is due again at once, here or elsewhere. */
            int64_t next = ob_wall_ms() + (st.stopped_early || held_back ? 0 : cfg->sweep.interval_ms);
            if (ob_sweep_lease_finish(s, &lease, next, &err))
                ob_log_warn("ending the sweep lease failed: %s", err.msg);
            retry_later = needed && (rc || st.stopped_early || held_back);
            if (!held_back && rc == OB_OK)
                held_back_for(&held, NULL);
        } else if (rc != OB_ERR_CONDITION_FAILED) {
            ob_log_warn("taking the sweep lease failed: %s", err.msg);
            retry_later = needed;
        }
        /* A sweep asked for and not done is still wanted, after a pause. */
        if (retry_later)
            atomic_store(&r->sweep_needed, true);
        /* Held back, the readers say how far they are at each lease renewal. */
        sweeper_wait(r, held_back ? cfg->leases.duration_ms / 3 : check_every, !retry_later);
    }
    ob_ddb_session_destroy(s);
    return NULL;
}
