/* The lease coordinator thread. It keeps the stream's shard list current
 * (DescribeStream, every page) and a lease per shard in the lease table;
 * renews the leases it holds; takes free and expired leases, and steals
 * towards an even share across live instances (the owner hands a stolen
 * lease over after its worker stopped, so two instances never read one
 * shard at once); starts a worker for each held shard whose parent was
 * read to its end; and on stop drains the workers and releases every
 * lease. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "dynamo/leases.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/relay_internal.h"

/* New shards appear when shards close (about every 4 hours in AWS); a
 * worker reaching a shard's end asks for a listing at once. */
#define LIST_INTERVAL_MS 10000
/* Time a worker of a stolen shard gets to finish its wave and checkpoint. */
#define HAND_OVER_DRAIN_MS 5000

enum slot_state {
    SLOT_IDLE,       /* not held by us, or held and waiting for its parent */
    SLOT_RUNNING,    /* our worker reads it */
    SLOT_HANDING,    /* our worker stops; then the lease goes to pendingOwner */
    SLOT_RELEASING,  /* our worker stops; then the lease is released */
};

struct slot {
    struct ob_shard shard;       /* owned; id always set, the rest once listed */
    bool listed;                 /* seen in DescribeStream */
    struct ob_lease lease;       /* the last scan's view (owned); key NULL: no lease item seen */
    int64_t counter_changed_at;  /* monotonic: when lease.counter last moved */
    bool held;                   /* we own the lease */
    int64_t held_counter;
    int64_t valid_until;         /* monotonic: we may read until then */
    bool done;                   /* read to its end (SHARD_END) */
    enum slot_state state;
    struct ob_shard_worker *worker;
};

struct coordinator {
    struct ob_relay *r;
    const char *me;
    struct ob_aws_session *session;
    struct slot *slots;
    size_t n;
    bool scanned;                /* the lease table was read at least once */
    int64_t scanned_at;          /* monotonic: when the previous scan was */
    bool cold;                   /* the first scan found no lease of this stream */
    int64_t duration;
    struct ob_metric_series *owned;
};

static struct slot *find(struct coordinator *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->slots[i].shard.id, id) == 0)
            return &c->slots[i];
    return NULL;
}

static struct slot *add_slot(struct coordinator *c, const char *id)
{
    c->slots = ob_xrealloc(c->slots, (c->n + 1) * sizeof *c->slots);
    struct slot *s = &c->slots[c->n++];
    memset(s, 0, sizeof *s);
    s->shard.id = ob_xstrdup(id);
    return s;
}

static void llog(enum ob_log_severity sev, const struct slot *s, const char *what, const char *detail)
{
    ob_log_at(sev, s->shard.id, NULL, "lease %s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* ---- the lease table ---------------------------------------------------- */

static const char *initial_checkpoint(struct coordinator *c, const struct ob_shard *sh)
{
    if (c->cold && c->r->cfg->stream.start_position == OB_START_LATEST)
        return sh->end_seq ? OB_CHECKPOINT_SHARD_END : OB_CHECKPOINT_LATEST;
    if (c->cold)
        return OB_CHECKPOINT_COLD;
    return OB_CHECKPOINT_TRIM_HORIZON;
}

/* Returns whether it created a lease (then a scan shows it). */
static bool list_shards(struct coordinator *c)
{
    bool created = false;
    struct ob_shard_list l = { 0 };
    struct ob_error err;
    struct ob_relay *r = c->r;
    if (ob_stream_describe(c->session, r->ddb, r->stream_arn, &l, &err)) {
        ob_log_warn("listing the stream's shards failed: %s", err.msg);
        return false;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct ob_shard *sh = &l.v[i];
        struct slot *s = find(c, sh->id);
        if (!s)
            s = add_slot(c, sh->id);
        if (!s->listed) {
            s->listed = true;
            s->shard.parent_id = ob_xstrdup_or_null(sh->parent_id);
            s->shard.start_seq = ob_xstrdup_or_null(sh->start_seq);
        }
        if (!s->shard.end_seq && sh->end_seq)
            s->shard.end_seq = ob_xstrdup(sh->end_seq);
        if (!s->lease.key) {
            if (ob_lease_create(c->session, r->ddb, r->cfg->leases.table, r->stream_arn, sh,
                                initial_checkpoint(c, sh), &err))
                ob_log_warn("%s", err.msg);
            else
                created = true;
        }
    }
    ob_shard_list_free(&l);
    atomic_store(&r->discovered, true);
    return created;
}

/* Takes in a fresh view of every lease. */
static bool scan_leases(struct coordinator *c, int64_t now)
{
    struct ob_lease_list l = { 0 };
    struct ob_error err;
    struct ob_relay *r = c->r;
    if (ob_leases_list(c->session, r->ddb, r->cfg->leases.table, r->stream_arn, &l, &err)) {
        ob_log_warn("reading the leases failed: %s", err.msg);
        return false;
    }
    if (!c->scanned) {
        c->scanned = true;
        c->cold = l.n == 0;
        if (c->cold)
            ob_log_info("no lease of this stream yet: first start, reading %s",
                        r->cfg->stream.start_position == OB_START_LATEST
                            ? "new records only (start_position: latest)"
                            : "from the oldest record, skipping items already published");
    }
    for (size_t i = 0; i < l.n; i++) {
        struct ob_lease *x = &l.v[i];
        struct slot *s = find(c, x->key);
        if (!s)
            s = add_slot(c, x->key);
        /* A change seen now happened after the previous scan: dating it
         * then keeps the owner's self-fencing (2/3 of the duration after
         * its renewal) ahead of our expiry, and takes over a dead owner's
         * lease within the duration plus one scan interval. */
        if (!s->lease.key)
            s->counter_changed_at = now;
        else if (s->lease.counter != x->counter)
            s->counter_changed_at = c->scanned_at ? c->scanned_at : now;
        ob_lease_free(&s->lease);
        s->lease = *x;
        memset(x, 0, sizeof *x);
        if (!s->shard.parent_id && s->lease.parent)
            s->shard.parent_id = ob_xstrdup(s->lease.parent);
        if (s->lease.checkpoint && strcmp(s->lease.checkpoint, OB_CHECKPOINT_SHARD_END) == 0)
            s->done = true;
    }
    ob_lease_list_free(&l);
    c->scanned_at = now;
    return true;
}

/* A shard may be read once its parent was read to its end; a parent no
 * longer listed nor leased has aged out of the stream. */
static bool parent_done(struct coordinator *c, const struct slot *s)
{
    if (!s->shard.parent_id)
        return true;
    const struct slot *p = find(c, s->shard.parent_id);
    return !p || p->done || (!p->listed && !p->lease.key);
}

static bool expired(const struct coordinator *c, const struct slot *s, int64_t now)
{
    return !s->lease.owner || now - s->counter_changed_at > c->duration;
}

static bool available(const struct slot *s)
{
    return s->lease.key && !s->done;
}

static void take(struct coordinator *c, struct slot *s, int64_t now, const char *why)
{
    struct ob_error err;
    int64_t counter;
    struct ob_relay *r = c->r;
    enum ob_err rc = ob_lease_take(c->session, r->ddb, r->cfg->leases.table, s->shard.id, c->me, s->lease.counter,
                                   &counter, &err);
    if (rc == OB_ERR_CONDITION_FAILED)
        return; /* someone was faster; the next scan shows who */
    if (rc) {
        ob_log_warn("taking the lease of %s failed: %s", s->shard.id, err.msg);
        return;
    }
    s->held = true;
    s->held_counter = counter;
    s->valid_until = now + c->duration * 2 / 3;
    s->lease.counter = counter;
    s->counter_changed_at = now;
    free(s->lease.owner);
    s->lease.owner = ob_xstrdup(c->me);
    llog(OB_SEV_INFO, s, "acquired", why);
}

/* Takes our own leases back, then free and expired ones up to an even
 * share, then asks the most loaded owner for one. */
static void balance(struct coordinator *c, int64_t now)
{
    size_t total = 0, mine = 0;
    bool asked = false;
    const char *owners[256];
    size_t counts[256], n_owners = 0;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (!available(s))
            continue;
        total++;
        if (s->held) {
            mine++;
            continue;
        }
        if (s->lease.pending_owner && strcmp(s->lease.pending_owner, c->me) == 0) {
            /* Asked for and on its way: ours already, for the count. */
            mine++;
            asked = true;
            continue;
        }
        if (s->lease.owner && strcmp(s->lease.owner, c->me) == 0) {
            take(c, s, now, "ours (handed over, or held before a restart)");
            mine += s->held;
            continue;
        }
        if (expired(c, s, now) || n_owners == sizeof owners / sizeof owners[0])
            continue;
        size_t k = 0;
        while (k < n_owners && strcmp(owners[k], s->lease.owner) != 0)
            k++;
        if (k == n_owners) {
            owners[n_owners] = s->lease.owner;
            counts[n_owners++] = 0;
        }
        counts[k]++;
    }
    if (total == 0)
        return;
    size_t instances = n_owners + 1;
    size_t target = (total + instances - 1) / instances;
    for (size_t i = 0; i < c->n && mine < target; i++) {
        struct slot *s = &c->slots[i];
        if (available(s) && !s->held && expired(c, s, now)) {
            take(c, s, now, s->lease.owner ? "expired" : "free");
            mine += s->held;
        }
    }
    /* One hand-over at a time: the owner answers at its next renewal. */
    if (asked || mine + 1 >= target || n_owners == 0)
        return;
    size_t most = 0;
    for (size_t k = 1; k < n_owners; k++)
        if (counts[k] > counts[most])
            most = k;
    if (counts[most] <= target)
        return;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (available(s) && !s->held && s->lease.owner && strcmp(s->lease.owner, owners[most]) == 0 &&
            !s->lease.pending_owner) {
            struct ob_error err;
            struct ob_relay *r = c->r;
            if (ob_lease_request(c->session, r->ddb, r->cfg->leases.table, s->shard.id, c->me, s->lease.counter,
                                 &err) == OB_OK)
                ob_log_info("asked %s to hand over %s (%zu leases there, %zu here, even share %zu)", owners[most],
                            s->shard.id, counts[most], mine, target);
            return;
        }
    }
}

/* ---- workers ------------------------------------------------------------ */

static void stop_worker(struct slot *s, enum slot_state next, int64_t deadline)
{
    if (s->state == SLOT_RUNNING)
        ob_shard_worker_stop(s->worker, deadline);
    s->state = next;
}

static void lost(struct slot *s, const char *why)
{
    llog(OB_SEV_WARN, s, "lost", why);
    s->held = false;
    if (s->worker)
        ob_shard_worker_abandon(s->worker);
}

#define RENEW_BATCH 256

/* Renews the held leases of slots [from, c->n), RENEW_BATCH at a time;
 * returns where the next batch starts. */
static size_t renew_batch(struct coordinator *c, size_t from, int64_t now)
{
    const char *keys[RENEW_BATCH];
    int64_t counters[RENEW_BATCH];
    struct slot *which[RENEW_BATCH];
    size_t n = 0, next = from;
    for (; next < c->n && n < RENEW_BATCH; next++) {
        struct slot *s = &c->slots[next];
        if (s->held) {
            keys[n] = s->shard.id;
            counters[n] = s->held_counter;
            which[n++] = s;
        }
    }
    if (n == 0)
        return next;
    enum ob_err results[RENEW_BATCH];
    bool pending[RENEW_BATCH];
    struct ob_relay *r = c->r;
    ob_leases_renew(c->session, r->ddb, r->cfg->leases.table, c->me, keys, counters, n, results, pending);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = which[i];
        if (results[i] == OB_ERR_CONDITION_FAILED) {
            lost(s, "another instance holds it now");
            continue;
        }
        if (results[i]) {
            if (now > s->valid_until)
                lost(s, "not renewed in time");
            continue;
        }
        s->held_counter = counters[i];
        s->lease.counter = counters[i];
        s->counter_changed_at = now;
        /* Valid for the lease duration from when the renewal was sent,
         * less a margin, so we stop before anyone may take it. */
        s->valid_until = now + c->duration * 2 / 3;
        if (s->worker)
            ob_shard_worker_renewed(s->worker, s->valid_until);
        if (pending[i] && s->state != SLOT_HANDING) {
            llog(OB_SEV_INFO, s, "requested by another instance", "handing it over");
            if (s->state == SLOT_RUNNING)
                stop_worker(s, SLOT_HANDING, ob_mono_ms() + HAND_OVER_DRAIN_MS);
            else
                s->state = SLOT_HANDING;
        }
    }
    return next;
}

static void renew(struct coordinator *c, int64_t now)
{
    for (size_t from = 0; from < c->n;)
        from = renew_batch(c, from, now);
}

static void start_ready(struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (!s->held || s->done || s->state != SLOT_IDLE || !s->lease.checkpoint || !parent_done(c, s) ||
            ob_mono_ms() >= s->valid_until)
            continue;
        bool cold = strcmp(s->lease.checkpoint, OB_CHECKPOINT_COLD) == 0;
        struct ob_shard_start start = {
            .checkpoint = cold ? OB_CHECKPOINT_TRIM_HORIZON : s->lease.checkpoint,
            .cold = cold,
            .owner = c->me,
            .lease_valid_until_ms = s->valid_until,
        };
        struct ob_error err;
        if (ob_shard_worker_start(c->r, &s->shard, &start, &s->worker, &err)) {
            ob_log_error("%s: %s", s->shard.id, err.msg);
            continue;
        }
        s->state = SLOT_RUNNING;
    }
}

/* Finishes what stopped workers leave: hand-overs, releases, ends. Returns
 * whether a shard was read to its end. */
static bool reap(struct coordinator *c)
{
    bool ended = false;
    struct ob_relay *r = c->r;
    struct ob_error err;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (s->worker && !ob_shard_worker_finished(s->worker))
            continue;
        bool end = false;
        if (s->worker) {
            /* A worker whose checkpoint write found another owner knows
             * before the next renewal does: not started again meanwhile. */
            if (ob_shard_worker_taken_over(s->worker) && s->held) {
                llog(OB_SEV_WARN, s, "lost", "another instance holds it now");
                s->held = false;
            }
            end = ob_shard_worker_join(s->worker);
            s->worker = NULL;
        }
        if (end) {
            s->done = true;
            ended = true;
        }
        if (!s->held) {
            s->state = SLOT_IDLE;
            continue;
        }
        if (s->state == SLOT_HANDING) {
            if (ob_lease_hand_over(c->session, r->ddb, r->cfg->leases.table, s->shard.id, c->me, &err) == OB_OK)
                llog(OB_SEV_INFO, s, "handed over", s->lease.pending_owner ? s->lease.pending_owner : "to its requester");
            s->held = false;
        } else if (end || s->state == SLOT_RELEASING) {
            if (ob_lease_release(c->session, r->ddb, r->cfg->leases.table, s->shard.id, c->me, &err) == OB_OK)
                llog(OB_SEV_INFO, s, "released", end ? "shard read to its end" : NULL);
            s->held = false;
        }
        s->state = SLOT_IDLE;
    }
    return ended;
}

static void publish_counts(struct coordinator *c)
{
    int n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->slots[i].state == SLOT_RUNNING;
    ob_metric_set(c->owned, n);
    pthread_mutex_lock(&c->r->lock);
    c->r->workers_running = n;
    pthread_mutex_unlock(&c->r->lock);
}

/* Waits up to ms for a wake-up. Running, a stop ends it at once (seen
 * under the lock, so its wake-up is not missed); shutting down, it waits
 * for workers to finish. */
static void wait_for(struct coordinator *c, int64_t ms, bool shutting_down)
{
    struct ob_relay *r = c->r;
    struct timespec ts = ob_clock_after(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&r->lock);
    if (shutting_down || !atomic_load(&r->stopping))
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
}

static bool any_worker(const struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].worker)
            return true;
    return false;
}

/* Drains every worker (until the relay's stop deadline), keeping the
 * leases renewed meanwhile, then releases them. */
static void shut_down(struct coordinator *c)
{
    int64_t deadline = atomic_load(&c->r->stop_deadline_ms);
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].state == SLOT_RUNNING)
            stop_worker(&c->slots[i], SLOT_RELEASING, deadline);
        else if (c->slots[i].held)
            c->slots[i].state = SLOT_RELEASING;
    int64_t next_renew = ob_mono_ms() + c->duration / 3;
    while (any_worker(c)) {
        reap(c);
        if (ob_mono_ms() >= next_renew) {
            renew(c, ob_mono_ms());
            next_renew = ob_mono_ms() + c->duration / 3;
        }
        wait_for(c, 50, true);
    }
    reap(c);
    publish_counts(c);
}

void *ob_coordinator_main(void *arg)
{
    struct coordinator c = { .r = arg };
    struct ob_relay *r = c.r;
    pthread_setname_np(pthread_self(), "ob-coordinator");
    c.me = r->instance_id;
    c.duration = r->cfg->leases.duration_ms;
    c.session = ob_ddb_session(r->ddb);
    c.owned = ob_metric_series("outboxd_shards_owned", "");
    int64_t next_list = 0, next_scan = 0, next_renew = 0;
    int64_t tick = c.duration / 3 < 1000 ? c.duration / 3 : 1000;
    /* Scans as often as shards are polled (a dead owner's shards are taken
     * over within leases.duration + one poll interval), within reason. */
    int64_t scan_every = r->cfg->stream.poll_interval_ms;
    if (scan_every > c.duration / 3)
        scan_every = c.duration / 3;
    if (scan_every < 100)
        scan_every = 100;
    while (!atomic_load(&r->stopping)) {
        int64_t now = ob_mono_ms();
        if (reap(&c))
            next_list = next_scan = now; /* the children of a finished shard may be readable now */
        if (now >= next_renew) {
            renew(&c, now);
            next_renew = now + c.duration / 3;
        }
        if (now >= next_scan) {
            bool first = !c.scanned;
            if (scan_leases(&c, now)) {
                if (first || now >= next_list) {
                    if (list_shards(&c))
                        scan_leases(&c, now);
                    next_list = now + LIST_INTERVAL_MS;
                }
                balance(&c, now);
            }
            next_scan = now + scan_every;
        }
        start_ready(&c);
        publish_counts(&c);
        int64_t wait = next_renew < next_scan ? next_renew : next_scan;
        wait -= ob_mono_ms();
        wait_for(&c, wait < 20 ? 20 : wait > tick ? tick : wait, false);
    }
    shut_down(&c);
    for (size_t i = 0; i < c.n; i++) {
        free(c.slots[i].shard.id);
        free(c.slots[i].shard.parent_id);
        free(c.slots[i].shard.start_seq);
        free(c.slots[i].shard.end_seq);
        ob_lease_free(&c.slots[i].lease);
    }
    free(c.slots);
    ob_aws_session_destroy(c.session);
    return NULL;
}
