/* One shard's worker: reads the shard with GetRecords (back to back while
 * records come, never more than 5 calls a second, poll_interval when
 * idle) into its pipeline, the next page while the window's messages go
 * out, and moves the shard's checkpoint to the
 * pipeline's low watermark — at most once a second while busy, at once
 * when the window empties and when it stops — while, and only while, its
 * lease holds; the write runs while messages go out, so a slow or
 * throttled lease table does not hold up deliveries. Records older than
 * the worker are checked against the table before they are sent
 * (cold_check): after a crash or a take-over they are what the last
 * checkpoint did not cover, so they are mostly published. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/codec.h"
#include "core/record.h"
#include "dynamo/leases.h"
#include "dynamo/mark.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/relay_internal.h"
#include "relay/pipeline.h"
#include "relay/window.h"

/* A shard that has caught up is read at most 5 times a second (Lambda
 * polls 4 times); a full page means more is waiting, and the next read
 * goes at once. GetRecords pages end at 1,000 records or 1 MB. */
#define MIN_FETCH_GAP_MS 200
#define FULL_PAGE_BYTES (900 * 1000)
/* A checkpoint per wave would cost one write per max_in_flight messages;
 * what it saves after a crash, the check of old records saves too. */
#define CHECKPOINT_EVERY_MS 1000
/* The end of a drain (at most a quarter of it) sends nothing new: what
 * was delivered has that time to be marked instead of being repeated
 * after the restart. */
#define DRAIN_MARKS_MS 1000
#define SEQ_MAX 128
/* Empty pages in a row that tell a reader without other news it is caught up. */
#define CAUGHT_UP_EMPTY_READS 5
/* A shard reads on when fewer than FETCH_ROOM_WAVES waves of work are
 * left, at most PAGE_WAVES waves of records (or PAGE_MIN_RECORDS) at a
 * time. */
#define FETCH_ROOM_WAVES 3
#define PAGE_WAVES 2
#define PAGE_MIN_RECORDS 100

/* Reading runs while the window's messages go out: a GetRecords call,
 * then, for records older than the worker, the lookup of their items,
 * both on the worker's session; the page enters the window when both
 * are done. */
enum read_phase { READ_IDLE, READ_RECORDS, READ_CHECK };

struct page_read {
    enum read_phase phase;
    int64_t sent_wall_ms;            /* when the GetRecords went out */
    struct ob_records_read *records; /* READ_RECORDS: the GetRecords */
    struct ob_buf answer;            /* storage for its answer, kept while pages come full */
    struct ob_records_page page;     /* READ_CHECK: decoded, waiting for the lookup */
    struct ob_items_lookup *lookup;
    struct ob_item_key *keys;        /* the lookup's keys: keys[j] is page.records[idx[j]] */
    size_t *idx;
    enum ob_item_state *states;
    size_t n_keys;
};

/* The checkpoint write running on the worker's session, at most one. */
struct checkpoint_write {
    struct ob_checkpoint_write *op;  /* NULL: none runs */
    char checkpoint[SEQ_MAX];        /* what it stores */
    int64_t retry_at_ms;             /* after a failed write, the next one waits until then */
};

struct ob_shard_worker {
    struct ob_relay *relay;
    struct ob_shard shard;           /* owned copy */
    char *start_checkpoint;          /* sequence number, TRIM_HORIZON or LATEST */
    char *owner;                     /* our instance id, the lease's owner */
    bool cold;                       /* no checkpoint: from TRIM_HORIZON */
    int64_t started_wall_ms;         /* when the worker started, with its lease */
    bool check_old;                  /* records older than the worker may still come */
    int64_t skip_before_ms;          /* a LATEST@ start: records created before then are not ours */
    struct ob_replay replay;         /* which of those go out again */

    pthread_t thread;
    atomic_bool stop;                /* stop reading, drain until drain_deadline_ms */
    atomic_llong drain_deadline_ms;
    atomic_bool abandoned;           /* the lease is gone: stop at once */
    atomic_bool taken_over;          /* its checkpoint write found another owner */
    atomic_llong valid_until_ms;     /* the lease holds until then */
    atomic_bool finished;
    bool reached_end;

    struct ob_ddb_session *session;
    struct ob_pipeline pipe;         /* its window, waves and marks */
    char *iterator;                  /* NULL: the shard is read to its end */
    bool halted;                     /* a record without NewImage came: nothing more is read */
    char last_read[SEQ_MAX];         /* sequence number of the newest record read */
    char checkpoint[SEQ_MAX];        /* low watermark */
    char written[SEQ_MAX];           /* last checkpoint stored */
    int64_t written_at_ms;           /* when (monotonic) */
    struct checkpoint_write cp_write;
    int64_t fetch_backoff_ms;
    int64_t next_fetch_ms;           /* the next GetRecords may start then */
    bool page_full;                  /* the last GetRecords page was full */
    int64_t caught_up_at_ms;         /* wall: when the read that found nothing more went out; 0: not caught up */
    int empty_reads;                 /* empty pages in a row */
    int64_t newest_read_ms;          /* approximate creation time of the newest record read */
    atomic_llong read_through_ms;    /* wall: every record written before was handled; 0: unknown */
    struct page_read read;
    struct ob_shard_health *health;  /* claimed while the thread runs */
    struct ob_metric_series *lag, *records_read;
    char lag_labels[160];
};

struct worker_wait {
    struct ob_shard_worker *w;
    bool draining;  /* stopped when the wait began */
};

static bool worker_wait_over(void *ctx)
{
    const struct worker_wait *ww = ctx;
    return (!ww->draining && atomic_load(&ww->w->stop)) || atomic_load(&ww->w->abandoned);
}

static void wait_until(struct ob_shard_worker *w, int64_t until)
{
    /* A stop ends a wait once, when it comes; draining, waits go on (to
     * the drain deadline at most), or a drain waiting on a backoff spins. */
    struct worker_wait ww = { .w = w, .draining = atomic_load(&w->stop) };
    int64_t deadline = atomic_load(&w->drain_deadline_ms);
    if (ww.draining && deadline < until)
        until = deadline;
    ob_relay_wait(w->relay, until, worker_wait_over, &ww);
}

/* ---- reading ---------------------------------------------------------- */

static enum ob_err open_iterator(struct ob_shard_worker *w, const char *type, const char *seq,
                                 struct ob_error *err)
{
    free(w->iterator);
    w->iterator = NULL;
    struct ob_relay *r = w->relay;
    enum ob_err rc = ob_stream_iterator(w->session, r->stream_arn, w->shard.id, type, seq, &w->iterator, err);
    if (rc == OB_ERR_TRIMMED) {
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL,
             "records after %s are no longer in the stream (older than 24 h); reading from the oldest record, "
             "the sweeper delivers what was missed", seq ? seq : "the start");
        ob_relay_want_sweep(r);
        rc = ob_stream_iterator(w->session, r->stream_arn, w->shard.id, "TRIM_HORIZON", NULL, &w->iterator,
                                err);
    }
    return rc;
}

static enum ob_err open_at_checkpoint(struct ob_shard_worker *w, const char *cp, struct ob_error *err)
{
    int64_t since;
    if (ob_checkpoint_is_latest_since(cp, &since)) {
        /* Approximate creation times are rounded down, to the second in
         * AWS and to the minute in DynamoDB Local: a restart may deliver
         * up to a minute of records from before the first start, and
         * skips none from after it. */
        w->skip_before_ms = since - since % 60000;
        return open_iterator(w, OB_CHECKPOINT_TRIM_HORIZON, NULL, err);
    }
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
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "the lease could not be renewed in time; stopping at once");
    return true;
}

static bool lease_held(void *ctx)
{
    return !lease_gone(ctx);
}

static void pipeline_wait(void *ctx, int64_t until_ms)
{
    wait_until(ctx, until_ms);
}

static void pipeline_sink_call(void *ctx, bool started)
{
    struct ob_shard_worker *w = ctx;
    ob_shard_health_sink_call(w->health, started, ob_mono_ms());
}

/* The distinct keys of a page (an item written twice has two records):
 * slots hold 1 + the index of a key in the caller's array. */
struct key_set {
    size_t *slot;
    size_t mask;
};

static void key_set_init(struct key_set *ks, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    ks->slot = ob_xcalloc(cap, sizeof *ks->slot);
    ks->mask = cap - 1;
}

/* Adds pk/sk as keys[k] unless an equal key is there; false if it was. */
static bool key_set_insert(struct key_set *ks, const struct ob_item_key *keys, size_t k, const char *pk,
                           const char *sk)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = sk; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = (size_t)h & ks->mask;; i = (i + 1) & ks->mask) {
        if (ks->slot[i] == 0) {
            ks->slot[i] = k + 1;
            return true;
        }
        const struct ob_item_key *o = &keys[ks->slot[i] - 1];
        if (strcmp(o->sk, sk) == 0 && strcmp(o->pk, pk) == 0)
            return false;
    }
}

/* When the next GetRecords may go, after a read that brought got records. */
static void schedule_read(struct ob_shard_worker *w, size_t got, int64_t now)
{
    int64_t poll = w->relay->cfg->stream.poll_interval_ms;
    w->next_fetch_ms = now + (w->fetch_backoff_ms ? w->fetch_backoff_ms
                              : got && w->page_full ? 0
                              : got ? MIN_FETCH_GAP_MS
                              : poll < MIN_FETCH_GAP_MS ? MIN_FETCH_GAP_MS : poll);
}

static void read_free(struct page_read *rd)
{
    free(rd->keys);
    free(rd->idx);
    free(rd->states);
    rd->keys = NULL;
    rd->idx = NULL;
    rd->states = NULL;
    ob_records_page_free(&rd->page);
}

/* Halts the worker at the page's first record without NewImage; returns
 * how many records come before it (all of them when none lacks it). */
static size_t halt_at_missing_image(struct ob_shard_worker *w, const struct ob_records_page *page)
{
    for (size_t i = 0; i < page->n; i++)
        if (page->records[i].kind == OB_RECORD_NO_IMAGE) {
            w->halted = true;
            ob_pipeline_log(&w->pipe, OB_SEV_ERROR, NULL,
                            "stream record %s is an INSERT that has no NewImage: the stream's view type is not "
                            "NEW_AND_OLD_IMAGES, so no item from here on can be relayed; the shard stops reading "
                            "before it (nothing is dead-lettered). Give the table a NEW_AND_OLD_IMAGES stream and "
                            "restart", page->records[i].msg.sequence_number);
            return i;
        }
    return page->n;
}

/* The page read goes into the window, up to a record without NewImage:
 * not the item's fault (SPEC §3: the view type never dead-letters), and
 * skipping it would lose the item. */
static void page_push(struct ob_shard_worker *w, int64_t now)
{
    struct ob_records_page *page = &w->read.page;
    struct ob_record *recs = page->records;
    size_t m = halt_at_missing_image(w, page);
    int64_t newest = 0;
    for (size_t i = 0; i < m; i++) {
        if (recs[i].kind == OB_RECORD_POISON)
            ob_pipeline_log(&w->pipe, OB_SEV_WARN, recs[i].msg.sk, "poison item: %s", recs[i].poison_reason);
        if (recs[i].msg.approximate_creation_ms > newest)
            newest = recs[i].msg.approximate_creation_ms;
        if (i == m - 1) /* before the window takes it */
            ob_str_join(w->last_read, sizeof w->last_read, recs[i].msg.sequence_number, NULL);
        ob_window_push(&w->pipe.window, &recs[i], now);
    }
    /* The window took the contents of the first m; the rest go. */
    for (size_t i = m; i < page->n; i++)
        ob_record_free(&recs[i]);
    page->n = 0;
    ob_metric_add(w->records_read, (double)m);
    if (newest)
        w->newest_read_ms = newest;
    /* A short page means caught up; an empty one only after a few in a
     * row, or once caught up before: GetRecords may answer empty pages
     * before the records that follow (a worker starting on a backlog). */
    w->empty_reads = m ? 0 : w->empty_reads + 1;
    if (w->page_full || w->halted)
        w->caught_up_at_ms = 0;
    else if (m || w->empty_reads >= CAUGHT_UP_EMPTY_READS || w->caught_up_at_ms)
        w->caught_up_at_ms = w->read.sent_wall_ms;
    double lag = newest ? (double)(ob_wall_ms() - newest) / 1000.0 : 0.0;
    ob_metric_set(w->lag, lag < 0 ? 0 : lag);

    /* Halted, the shard is not read on, nor taken for read to its end. */
    if (!w->halted) {
        free(w->iterator);
        w->iterator = page->next_iterator;
        page->next_iterator = NULL;
    }
    read_free(&w->read);
    w->read.phase = READ_IDLE;
    schedule_read(w, m, now);
}

/* After a LATEST@ start, the records from before the first start are
 * skipped, as that start skipped them. */
static void skip_before_first_start(struct ob_shard_worker *w, struct ob_records_page *page)
{
    for (size_t i = 0; i < page->n; i++) {
        struct ob_record *rec = &page->records[i];
        if (rec->msg.approximate_creation_ms < w->skip_before_ms && rec->kind != OB_RECORD_SKIP) {
            rec->kind = OB_RECORD_SKIP;
            rec->skip_reason = "written before the first start (start_position: latest)";
        }
    }
}

/* Candidates older than the worker may be published already: on a cold
 * start, after a crash, and on a take-over, whose previous owner may have
 * marked messages after its last checkpoint however long after this
 * process started. Starts the lookup of their items; false when the page
 * has none. */
static bool cold_check_start(struct ob_shard_worker *w)
{
    struct ob_relay *r = w->relay;
    struct page_read *rd = &w->read;
    struct ob_record *recs = rd->page.records;
    size_t n = rd->page.n;
    rd->keys = ob_xcalloc(n ? n : 1, sizeof *rd->keys);
    rd->idx = ob_xcalloc(n ? n : 1, sizeof *rd->idx);
    rd->states = ob_xcalloc(n ? n : 1, sizeof *rd->states);
    size_t k = 0;
    bool older = false;
    struct key_set seen;
    key_set_init(&seen, n);
    for (size_t i = 0; i < n; i++) {
        if (recs[i].msg.approximate_creation_ms < w->started_wall_ms)
            older = true;
        if (recs[i].kind != OB_RECORD_MESSAGE || recs[i].msg.approximate_creation_ms >= w->started_wall_ms)
            continue;
        if (!key_set_insert(&seen, rd->keys, k, recs[i].msg.pk, recs[i].msg.sk))
            continue;
        rd->keys[k].pk = recs[i].msg.pk;
        rd->keys[k].sk = recs[i].msg.sk;
        rd->idx[k++] = i;
    }
    free(seen.slot);
    /* An empty page says nothing: GetRecords may answer empty pages
     * before the records that follow. */
    if (n > 0 && !older) {
        w->check_old = false;
        ob_replay_free(&w->replay);
    }
    rd->n_keys = k;
    if (k == 0)
        return false;
    rd->lookup = ob_items_lookup_start(w->session, r->cfg->table.name, rd->keys, k, rd->states);
    return true;
}

/* The lookup answered: candidates it says are published or dead-lettered
 * are skipped, unless their key is being replayed (ob_replay). One it
 * does not name goes out: skipped as deleted, an item the answer merely
 * left out would be lost, while a deleted one's mark fails its condition
 * (a duplicate at worst). */
static void cold_check_done(struct ob_shard_worker *w)
{
    struct page_read *rd = &w->read;
    struct ob_error err;
    size_t k = rd->n_keys;
    enum ob_err rc = ob_items_lookup_finish(rd->lookup, &err);
    rd->lookup = NULL;
    if (rc)
        /* Delivering again is safe (at-least-once); losing is not. */
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "cold-start check failed, delivering without it: %s", err.msg);
    size_t skipped = 0;
    for (size_t j = 0; j < k; j++) {
        bool handled = rc == OB_OK &&
                       (rd->states[j] == OB_ITEM_PUBLISHED || rd->states[j] == OB_ITEM_DEAD_LETTERED);
        struct ob_record *rec = &rd->page.records[rd->idx[j]];
        if (ob_replay_deliver(&w->replay, rec->msg.pk, handled))
            continue;
        rec->kind = OB_RECORD_SKIP;
        rec->skip_reason = rd->states[j] == OB_ITEM_PUBLISHED ? "published" : "dead-lettered";
        skipped++;
    }
    if (skipped)
        ob_pipeline_log(&w->pipe, OB_SEV_DEBUG, NULL, "cold start: %zu of %zu candidates already published or dead-lettered",
                        skipped, k);
}

/* What a GetRecords asks for: stream.batch_size records, but no more
 * than the next few waves take, so the answer being read and what the
 * shard holds decoded stay small (a page of 1,000 records is up to 1 MB
 * of JSON per shard, and the window held it all). */
static int read_limit(const struct ob_config *cfg)
{
    int waves = PAGE_WAVES * cfg->relay.max_in_flight;
    if (waves < PAGE_MIN_RECORDS) /* a small max_in_flight must not mean a read per message */
        waves = PAGE_MIN_RECORDS;
    return cfg->stream.batch_size < waves ? cfg->stream.batch_size : waves;
}

static void read_start(struct ob_shard_worker *w)
{
    w->read.phase = READ_RECORDS;
    w->read.sent_wall_ms = ob_wall_ms();
    w->read.records = ob_records_read_start(w->session, w->iterator, read_limit(w->relay->cfg), &w->read.answer);
}

/* The GetRecords answered. */
static void records_read(struct ob_shard_worker *w, int64_t now)
{
    struct ob_relay *r = w->relay;
    struct ob_error err;
    struct ob_records_page *page = &w->read.page;
    enum ob_err rc = ob_records_read_finish(w->read.records, page, &err);
    w->read.records = NULL;
    bool reopened = false; /* a new iterator replaced a lost one: read again later */
    w->read.phase = READ_IDLE;
    if (rc == OB_ERR_EXPIRED_ITERATOR || rc == OB_ERR_TRIMMED) {
        if (rc == OB_ERR_TRIMMED) {
            ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "stream records were trimmed before they were read; reading from the "
                 "oldest record, the sweeper delivers what was missed");
            ob_relay_want_sweep(r);
            rc = open_iterator(w, "TRIM_HORIZON", NULL, &err);
        } else {
            ob_pipeline_log(&w->pipe, OB_SEV_INFO, NULL, "shard iterator expired; continuing after %s",
                 w->last_read[0] ? w->last_read : "the start position");
            rc = reopen_iterator(w, &err);
        }
        if (rc == OB_OK)
            w->fetch_backoff_ms = 0;
        reopened = rc == OB_OK;
    }
    if (rc) {
        static const struct ob_backoff fetch = { .initial_ms = 500, .max_ms = 30000 };
        w->fetch_backoff_ms = ob_backoff_next_ms(&fetch, w->fetch_backoff_ms);
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "reading the shard failed (next try in %" PRId64 " ms): %s", w->fetch_backoff_ms,
             err.msg);
    }
    if (rc || reopened) {
        read_free(&w->read);
        schedule_read(w, 0, now);
        return;
    }
    w->fetch_backoff_ms = 0;
    w->page_full = page->n + page->malformed >= (size_t)read_limit(r->cfg) || page->bytes >= FULL_PAGE_BYTES;
    if (!w->page_full) /* caught up: the next read is a poll_interval away, and idle shards hold nothing */
        ob_buf_free(&w->read.answer);
    if (page->malformed)
        ob_pipeline_log(&w->pipe, OB_SEV_ERROR, NULL, "skipping %zu malformed stream record(s), the first: %s",
                        page->malformed, page->first_malformed);
    if (w->skip_before_ms)
        skip_before_first_start(w, page);
    if (w->check_old && cold_check_start(w)) {
        w->read.phase = READ_CHECK;
        return;
    }
    page_push(w, now);
}

/* Moves reading on; true when a page entered the window or a read ended. */
static bool read_step(struct ob_shard_worker *w, int64_t now)
{
    struct page_read *rd = &w->read;
    if (rd->phase == READ_IDLE)
        return false;
    if (rd->phase == READ_RECORDS) {
        if (!ob_records_read_poll(rd->records))
            return false;
        records_read(w, now);
        return true;
    }
    if (!ob_items_lookup_poll(rd->lookup))
        return false;
    cold_check_done(w);
    page_push(w, now);
    return true;
}

/* Takes back what reading has running (the worker stops). */
static void read_abandon(struct ob_shard_worker *w)
{
    struct page_read *rd = &w->read;
    if (rd->phase == READ_RECORDS) {
        ob_records_read_abandon(rd->records);
        rd->records = NULL;
    } else if (rd->phase == READ_CHECK) {
        ob_items_lookup_abandon(rd->lookup);
        rd->lookup = NULL;
    }
    read_free(rd);
    ob_buf_free(&rd->answer);
    rd->phase = READ_IDLE;
}

/* ---- checkpoints -------------------------------------------------------- */

/* Takes the outcome of the finished checkpoint write. After a failed one
 * the next waits a CHECKPOINT_EVERY_MS (its retries are behind it). */
static void checkpoint_finish(struct ob_shard_worker *w)
{
    struct checkpoint_write *cw = &w->cp_write;
    struct ob_error err;
    enum ob_err rc = ob_checkpoint_write_finish(cw->op, &err);
    cw->op = NULL;
    if (rc == OB_ERR_CONDITION_FAILED) {
        atomic_store(&w->taken_over, true);
        atomic_store(&w->abandoned, true);
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "the lease was taken over; stopping at once");
    } else if (rc) {
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "writing the checkpoint failed (kept for the next try): %s", err.msg);
        cw->retry_at_ms = ob_mono_ms() + CHECKPOINT_EVERY_MS;
    } else {
        snprintf(w->written, sizeof w->written, "%s", cw->checkpoint);
        w->written_at_ms = ob_mono_ms();
    }
}

/* Starts writing cp unless it is stored, a write is running or the lease
 * is gone. */
static void checkpoint_start(struct ob_shard_worker *w, const char *cp)
{
    struct checkpoint_write *cw = &w->cp_write;
    if (cw->op || strcmp(cp, w->written) == 0 || lease_gone(w))
        return;
    snprintf(cw->checkpoint, sizeof cw->checkpoint, "%s", cp);
    cw->op = ob_checkpoint_write_start(w->session, w->relay->cfg->leases.table, w->shard.id, w->owner, cp);
}

/* True when the running checkpoint write finished (its outcome taken). */
static bool checkpoint_step(struct ob_shard_worker *w)
{
    if (!w->cp_write.op || !ob_checkpoint_write_poll(w->cp_write.op))
        return false;
    checkpoint_finish(w);
    return true;
}

/* Waits for the running checkpoint write, if any, and takes its outcome;
 * without the lease there is nothing to wait for. */
static void checkpoint_settle(struct ob_shard_worker *w)
{
    struct checkpoint_write *cw = &w->cp_write;
    while (cw->op && !checkpoint_step(w)) {
        if (lease_gone(w)) {
            ob_checkpoint_write_abandon(cw->op);
            cw->op = NULL;
            return;
        }
        ob_ddb_session_poll(w->session, 50);
    }
}

/* Stores cp before returning (the shard's end, the worker's stop). */
static void checkpoint_write_now(struct ob_shard_worker *w, const char *cp)
{
    checkpoint_settle(w);
    checkpoint_start(w, cp);
    checkpoint_settle(w);
}

/* Records reach GetRecords within moments of their write; a read counts
 * for what was written this long before it went out. */
#define STREAM_DELAY_MS 1000

/* Up to when every record of the shard was handled (marked, skipped or
 * dead-lettered): the oldest record not done yet, or with nothing left,
 * the last read that found nothing more. The lease carries it to the
 * sweeper, which sweeps nothing newer (SPEC §3). Approximate creation
 * times are rounded down, which errs on the safe side. */
static void note_read_through(struct ob_shard_worker *w)
{
    const struct ob_window *win = &w->pipe.window;
    int64_t through = ob_window_count(win) ? win->v[win->head].rec.msg.approximate_creation_ms
                      : w->caught_up_at_ms ? w->caught_up_at_ms - STREAM_DELAY_MS
                                           : w->newest_read_ms;
    if (through > 0)
        atomic_store(&w->read_through_ms, through);
}

static void advance(struct ob_shard_worker *w, int64_t now)
{
    checkpoint_step(w);
    ob_window_advance(&w->pipe.window, w->checkpoint, sizeof w->checkpoint);
    if (w->checkpoint[0] && now >= w->cp_write.retry_at_ms &&
        (now - w->written_at_ms >= CHECKPOINT_EVERY_MS || ob_window_count(&w->pipe.window) == 0))
        checkpoint_start(w, w->checkpoint);
}

/* ---- health ------------------------------------------------------------- */

/* Where the worker stands, for the health check (SPEC §7): a read due or
 * running must be answered, and messages waiting must move, within
 * relay.stuck_after. A page read counts for reading only: answers while
 * messages stand still are no progress for them. read: a read ended;
 * moved: an entry was delivered or left the window. */
static void watch(struct ob_shard_worker *w, bool read, bool moved, size_t fetch_room)
{
    struct ob_shard_health *h = w->health;
    int64_t now = ob_mono_ms(), stuck_after = w->relay->health.stuck_after_ms;
    bool stopping = atomic_load(&w->stop); /* a drain has its own deadline */
    bool reading = !stopping && !w->halted && w->iterator &&
                   (w->read.phase != READ_IDLE || w->pipe.window.undone < fetch_room);
    bool answered = read && w->read.phase == READ_IDLE && w->fetch_backoff_ms == 0;
    ob_lane_set(&h->reading, reading, answered, w->next_fetch_ms > now ? w->next_fetch_ms : now, stuck_after);
    ob_lane_set(&h->delivering, !stopping && w->pipe.window.undone, moved, now, stuck_after);
    atomic_store(&h->undone, (long long)w->pipe.window.undone);
}

/* Whatever waits waits for sinks (down, or a message's backoff after it
 * failed): nothing delivered is unmarked and no write of the table runs
 * or waits to run again. */
static bool waits_for_sinks(const struct ob_shard_worker *w)
{
    return w->pipe.window.undone && !w->pipe.window.acked && !w->pipe.n_flying && !w->pipe.waiting;
}

/* ---- the thread --------------------------------------------------------- */

enum pin { PIN_OPEN_LATEST, PIN_RESUME, PIN_STOP };

/* A first start from LATEST stores when it began before it reads, so that
 * any later start reads every record written since (LATEST@). Only over
 * LATEST itself: a view of the lease from before an earlier start pinned
 * it must not pin again (what came between would be skipped); then the
 * worker resumes from the lease's checkpoint (start_checkpoint). */
static enum pin pin_latest(struct ob_shard_worker *w)
{
    struct ob_relay *r = w->relay;
    char cp[SEQ_MAX];
    ob_checkpoint_latest_since(cp, sizeof cp, ob_wall_ms());
    while (!atomic_load(&w->stop) && !lease_gone(w)) {
        char *current = NULL;
        struct ob_error err;
        enum ob_err rc = ob_lease_pin_latest(w->session, r->cfg->leases.table, w->shard.id, w->owner, cp,
                                             &current, &err);
        if (rc == OB_ERR_CONDITION_FAILED && !current) {
            atomic_store(&w->taken_over, true);
            atomic_store(&w->abandoned, true);
            ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "the lease was taken over; stopping at once");
            return PIN_STOP;
        }
        if (rc == OB_OK || rc == OB_ERR_CONDITION_FAILED) {
            free(w->start_checkpoint);
            w->start_checkpoint = current ? current : ob_xstrdup(cp);
            snprintf(w->written, sizeof w->written, "%s", w->start_checkpoint);
            if (strcmp(w->start_checkpoint, OB_CHECKPOINT_SHARD_END) == 0) {
                w->reached_end = true;
                return PIN_STOP;
            }
            return rc == OB_OK ? PIN_OPEN_LATEST : PIN_RESUME;
        }
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "cannot store the start position, retrying: %s", err.msg);
        wait_until(w, ob_mono_ms() + 2000);
    }
    return PIN_STOP;
}

static void run(struct ob_shard_worker *w)
{
    struct ob_relay *r = w->relay;
    const struct ob_config *cfg = r->cfg;
    struct ob_error err;
    /* The next page is read when the window runs low on work, not while
     * it holds a page: what a shard keeps decoded stays about one page.
     * Work, not entries: done entries behind a message that waits (a
     * blocked key) must not stop the other keys. */
    size_t fetch_room = FETCH_ROOM_WAVES * (size_t)cfg->relay.max_in_flight;

    /* Pinned, the first start still opens at LATEST (it skips the stream's
     * history without reading it); only later starts read from the oldest. */
    bool first_from_latest = false;
    if (strcmp(w->start_checkpoint, OB_CHECKPOINT_LATEST) == 0) {
        enum pin pin = pin_latest(w);
        if (pin == PIN_STOP)
            return;
        first_from_latest = pin == PIN_OPEN_LATEST;
    }
    const char *first_open = first_from_latest ? OB_CHECKPOINT_LATEST : w->start_checkpoint;
    bool opened = false;
    while (!opened && !atomic_load(&w->stop) && !lease_gone(w)) {
        if (open_at_checkpoint(w, first_open, &err) == OB_OK) {
            opened = true;
            break;
        }
        if (err.code == OB_ERR_NOT_FOUND) {
            ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "the shard is gone from the stream (trimmed); the sweeper delivers what "
                 "it held: %s", err.msg);
            ob_relay_want_sweep(r);
            checkpoint_write_now(w, OB_CHECKPOINT_SHARD_END);
            w->reached_end = strcmp(w->written, OB_CHECKPOINT_SHARD_END) == 0;
            return;
        }
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "cannot start reading the shard, retrying: %s", err.msg);
        wait_until(w, ob_mono_ms() + 2000);
    }
    if (!opened)
        return;
    if (w->skip_before_ms) {
        char since[OB_ISO8601_LEN];
        ob_iso8601_ms(w->skip_before_ms, since);
        ob_pipeline_log(&w->pipe, OB_SEV_INFO, NULL, "started reading from TRIM_HORIZON, skipping the records written "
                        "before the first start at %s (start_position: latest)", since);
    } else {
        ob_pipeline_log(&w->pipe, OB_SEV_INFO, NULL, "started reading from %s%s", first_open,
                        w->cold ? " (cold start)" : "");
    }

    int64_t marks_from = INT64_MAX; /* draining: from then on only marks go out */
    for (;;) {
        int64_t now = ob_mono_ms();
        bool stopping = atomic_load(&w->stop);
        if (stopping && marks_from == INT64_MAX) {
            int64_t deadline = atomic_load(&w->drain_deadline_ms);
            int64_t last = (deadline - now) / 4;
            marks_from = deadline - (last < DRAIN_MARKS_MS ? last : DRAIN_MARKS_MS);
        }
        w->pipe.marks_only = now >= marks_from;
        bool marked = w->pipe.window.acked == 0 && !w->pipe.n_flying;
        if (lease_gone(w) || (stopping && (w->pipe.window.undone == 0 || (w->pipe.marks_only && marked) ||
                                           now >= atomic_load(&w->drain_deadline_ms))))
            break;
        bool read = read_step(w, now);
        bool may_read = !stopping && !w->halted && w->read.phase == READ_IDLE && w->iterator &&
                        w->pipe.window.undone < fetch_room;
        if (may_read && now >= w->next_fetch_ms && !lease_gone(w)) {
            read_start(w);
            may_read = false;
        }
        size_t undone = w->pipe.window.undone, acked = w->pipe.window.acked;
        bool sent = ob_pipeline_wave(&w->pipe, now);
        advance(w, ob_mono_ms());
        note_read_through(w);
        watch(w, read, w->pipe.window.undone < undone || w->pipe.window.acked > acked, fetch_room);
        if (!w->iterator && w->read.phase == READ_IDLE && ob_window_count(&w->pipe.window) == 0) {
            checkpoint_write_now(w, OB_CHECKPOINT_SHARD_END);
            if (strcmp(w->written, OB_CHECKPOINT_SHARD_END) == 0) {
                ob_pipeline_log(&w->pipe, OB_SEV_INFO, NULL, "shard read to its end");
                w->reached_end = true;
                return;
            }
            wait_until(w, ob_mono_ms() + 1000);
            continue;
        }
        if (sent || read)
            continue;
        int64_t until = ob_window_next_due(&w->pipe.window, now);
        if (may_read && w->next_fetch_ms < until)
            until = w->next_fetch_ms;
        if (until == INT64_MAX)
            until = now + 1000;
        if (until > now) {
            bool for_sinks = waits_for_sinks(w);
            if (for_sinks)
                ob_lane_pause(&w->health->delivering, now);
            ob_pipeline_wait(&w->pipe, until, w->read.phase != READ_IDLE || w->cp_write.op != NULL);
            if (for_sinks)
                ob_lane_restart(&w->health->delivering, ob_mono_ms(), r->health.stuck_after_ms);
        }
    }
    if (w->pipe.window.undone)
        ob_pipeline_log(&w->pipe, OB_SEV_WARN, NULL, "stopping with %zu messages not delivered; they are read again on restart",
             w->pipe.window.undone);
}

static void *worker_main(void *arg)
{
    struct ob_shard_worker *w = arg;
    char name[16];
    size_t len = strlen(w->shard.id);
    snprintf(name, sizeof name, "sh:%s", len > 12 ? w->shard.id + len - 12 : w->shard.id);
    pthread_setname_np(pthread_self(), name);

    w->session = ob_ddb_session_create(w->relay->ddb);
    w->pipe.session = w->session;
    w->health = ob_health_claim(&w->relay->health, w->shard.id);
    run(w);
    ob_health_release(w->health); /* what is left is bounded by the lease */
    /* Only the checkpoint's call stays in the session: a finished call
     * nobody takes would end every wait of checkpoint_settle at once. */
    read_abandon(w);
    ob_pipeline_abandon_writes(&w->pipe);
    if (w->checkpoint[0] && !w->reached_end)
        checkpoint_write_now(w, w->checkpoint);
    else
        checkpoint_settle(w);
    ob_pipeline_log(&w->pipe, OB_SEV_INFO, NULL, "stopped reading%s (checkpoint %s)",
         w->reached_end ? ": shard ended" : atomic_load(&w->abandoned) ? ": lease lost" : "",
         w->written[0] ? w->written : w->start_checkpoint);
    ob_ddb_session_destroy(w->session);
    w->session = NULL;
    w->pipe.session = NULL;
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
    w->started_wall_ms = ob_wall_ms();
    w->check_old = true;
    /* Resuming from a checkpoint, a key's marks may have landed out of
     * order before a crash (ob_replay); on a cold start, with no
     * checkpoint, every published item is skipped (SPEC §3), as the
     * ordering rule none does. */
    ob_replay_init(&w->replay, start->cold ? OB_ORDER_NONE : r->cfg->relay.ordering);
    w->written_at_ms = ob_mono_ms();
    atomic_init(&w->valid_until_ms, start->lease_valid_until_ms);
    atomic_init(&w->drain_deadline_ms, INT64_MAX);
    snprintf(w->written, sizeof w->written, "%s", start->checkpoint);
    ob_pipeline_init(&w->pipe, r, NULL, w->shard.id);
    w->pipe.may_send = lease_held;
    w->pipe.wait_until = pipeline_wait;
    w->pipe.sink_call = pipeline_sink_call;
    w->pipe.ctx = w;
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
        ob_pipeline_free(&w->pipe);
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

int64_t ob_shard_worker_read_through(struct ob_shard_worker *w)
{
    return atomic_load(&w->read_through_ms);
}

bool ob_shard_worker_finished(struct ob_shard_worker *w)
{
    return atomic_load(&w->finished);
}

bool ob_shard_worker_taken_over(struct ob_shard_worker *w)
{
    return atomic_load(&w->taken_over);
}

bool ob_shard_worker_join(struct ob_shard_worker *w)
{
    pthread_join(w->thread, NULL);
    bool end = w->reached_end;
    ob_metric_drop("outboxd_stream_lag_seconds", w->lag_labels);
    ob_pipeline_free(&w->pipe);
    ob_replay_free(&w->replay);
    free(w->iterator);
    free(w->shard.id);
    free(w->shard.parent_id);
    free(w->start_checkpoint);
    free(w->owner);
    free(w);
    return end;
}
