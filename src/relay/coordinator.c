/* The lease coordinator thread. It keeps the stream's shard list current
 * (DescribeStream, every page) and a lease per shard in the lease table;
 * takes free and expired leases, and steals towards an even share across
 * live instances (the owner hands a stolen lease over after its worker
 * stopped, so two instances never read one shard at once); starts a worker
 * for each held shard whose parent was read to its end; deletes the
 * leases of ended shards that left the stream; and on stop drains the
 * workers and releases every lease. Its renewer thread renews the leases
 * held, so no slow listing or scan delays a renewal. */
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
/* The renewer renews RENEW_BATCH leases at a time. */
#define RENEW_BATCH 256

enum slot_state {
    SLOT_IDLE,       /* not held by us, or held and waiting for its parent */
    SLOT_RUNNING,    /* our worker reads it */
    SLOT_HANDING,    /* our worker stops; then the lease goes to pendingOwner */
    SLOT_RELEASING,  /* our worker stops; then the lease is released */
};

/* The renewer thread reads and writes the atomic fields; the slots array
 * and each slot's worker change only under the coordinator's lock, which
 * the renewer holds while it looks at them (never across a call). */
struct slot {
    struct ob_shard shard;       /* owned; id always set, the rest once listed */
    bool listed;                 /* seen in DescribeStream */
    bool listed_now;             /* in the last complete listing */
    bool seen;                   /* in the last scan of the lease table */
    bool first_listing;          /* in the first complete listing: a first start's shard */
    struct ob_lease lease;       /* the last scan's view (owned); key NULL: no lease item seen */
    int64_t counter_changed_at;  /* monotonic: when a change of lease.counter was first seen */
    atomic_bool held;            /* we own the lease */
    atomic_llong held_counter;
    atomic_llong valid_until;    /* monotonic: we may read until then */
    atomic_bool hand_over_asked; /* a renewal found a pendingOwner */
    bool done;                   /* read to its end (SHARD_END) */
    enum slot_state state;
    struct ob_shard_worker *worker;
};

struct coordinator {
    struct ob_relay *r;
    const char *me;
    struct ob_ddb_session *session;
    pthread_mutex_t lock;        /* slots, n and each slot's worker, against the renewer */
    struct slot *slots;
    size_t n;
    bool scanned;                /* the lease table was read at least once */
    bool cold;                   /* the first scan found no lease of this stream */
    bool listed_once;            /* a listing was complete */
    int64_t duration;
    struct ob_metric_series *owned;

    pthread_t renewer;
    struct ob_ddb_session *renew_session;
    pthread_cond_t renew_wake;   /* under lock */
    bool renewer_stop;           /* under lock */
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
    pthread_mutex_lock(&c->lock);
    c->slots = ob_xrealloc(c->slots, (c->n + 1) * sizeof *c->slots);
    struct slot *s = &c->slots[c->n++];
    memset(s, 0, sizeof *s);
    s->shard.id = ob_xstrdup(id);
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void slot_free(struct slot *s)
{
    free(s->shard.id);
    free(s->shard.parent_id);
    free(s->shard.start_seq);
    free(s->shard.end_seq);
    ob_lease_free(&s->lease);
}

/* Forgets slot i (no worker, not held). */
static void remove_slot(struct coordinator *c, size_t i)
{
    pthread_mutex_lock(&c->lock);
    slot_free(&c->slots[i]);
    memmove(&c->slots[i], &c->slots[i + 1], (c->n - i - 1) * sizeof *c->slots);
    c->n--;
    pthread_mutex_unlock(&c->lock);
}

static void set_worker(struct coordinator *c, struct slot *s, struct ob_shard_worker *w)
{
    pthread_mutex_lock(&c->lock);
    s->worker = w;
    pthread_mutex_unlock(&c->lock);
}

static void llog(enum ob_log_severity sev, const struct slot *s, const char *what, const char *detail)
{
    ob_log_at(sev, s->shard.id, NULL, "lease %s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

/* ---- the lease table ---------------------------------------------------- */

/* A first start's shards (those of its first listing, also when their
 * lease is created later) start where stream.start_position says; shards
 * that appear later are children, read from their start. */
static const char *initial_checkpoint(struct coordinator *c, const struct slot *s, const struct ob_shard *sh)
{
    bool first_start = c->cold && s->first_listing;
    if (first_start && c->r->cfg->stream.start_position == OB_START_LATEST)
        return sh->end_seq ? OB_CHECKPOINT_SHARD_END : OB_CHECKPOINT_LATEST;
    if (first_start)
        return OB_CHECKPOINT_COLD;
    return OB_CHECKPOINT_TRIM_HORIZON;
}

/* Takes in a complete listing of the stream's shards, creating the
 * leases of new ones; false when it failed. *created: whether it created
 * one (then a scan shows it). */
static bool list_shards(struct coordinator *c, bool *created)
{
    *created = false;
    struct ob_shard_list l = { 0 };
    struct ob_error err;
    struct ob_relay *r = c->r;
    if (ob_stream_describe(c->session, r->stream_arn, &l, &err)) {
        ob_log_warn("listing the stream's shards failed: %s", err.msg);
        return false;
    }
    for (size_t i = 0; i < c->n; i++)
        c->slots[i].listed_now = false;
    for (size_t i = 0; i < l.n; i++) {
        const struct ob_shard *sh = &l.v[i];
        struct slot *s = find(c, sh->id);
        if (!s)
            s = add_slot(c, sh->id);
        s->listed_now = true;
        if (!c->listed_once)
            s->first_listing = true;
        if (!s->listed) {
            s->listed = true;
            s->shard.parent_id = ob_xstrdup_or_null(sh->parent_id);
            s->shard.start_seq = ob_xstrdup_or_null(sh->start_seq);
        }
        if (!s->shard.end_seq && sh->end_seq)
            s->shard.end_seq = ob_xstrdup(sh->end_seq);
        if (!s->lease.key) {
            if (ob_lease_create(c->session, r->cfg->leases.table, r->stream_arn, sh,
                                initial_checkpoint(c, s, sh), &err)) {
                ob_log_warn("%s", err.msg);
            } else {
                *created = true;
            }
        }
    }
    ob_shard_list_free(&l);
    atomic_store(&r->discovered, true);
    c->listed_once = true;
    return true;
}

/* Takes in a fresh view of every lease. */
static bool scan_leases(struct coordinator *c)
{
    struct ob_lease_list l = { 0 };
    struct ob_error err;
    struct ob_relay *r = c->r;
    if (ob_leases_list(c->session, r->cfg->leases.table, r->stream_arn, &l, &err)) {
        ob_log_warn("reading the leases failed: %s", err.msg);
        return false;
    }
    /* A change is dated by when it was seen (KCL's rule): a later date
     * than the renewal's, however long the scan or the thread took, so a
     * live owner's lease never looks expired. */
    int64_t now = ob_mono_ms();
    if (!c->scanned) {
        c->scanned = true;
        c->cold = l.n == 0;
        if (c->cold)
            ob_log_info("no lease of this stream yet: first start, reading %s",
                        r->cfg->stream.start_position == OB_START_LATEST
                            ? "new records only (start_position: latest)"
                            : "from the oldest record, skipping items already published");
    }
    for (size_t i = 0; i < c->n; i++)
        c->slots[i].seen = false;
    for (size_t i = 0; i < l.n; i++) {
        struct ob_lease *x = &l.v[i];
        struct slot *s = find(c, x->key);
        if (!s)
            s = add_slot(c, x->key);
        s->seen = true;
        if (!s->lease.key || s->lease.counter != x->counter)
            s->counter_changed_at = now;
        ob_lease_free(&s->lease);
        s->lease = *x;
        memset(x, 0, sizeof *x);
        if (!s->shard.parent_id && s->lease.parent)
            s->shard.parent_id = ob_xstrdup(s->lease.parent);
        if (s->lease.checkpoint && strcmp(s->lease.checkpoint, OB_CHECKPOINT_SHARD_END) == 0)
            s->done = true;
    }
    ob_lease_list_free(&l);
    /* A lease deleted elsewhere (an ended shard that left the stream). */
    for (size_t i = c->n; i-- > 0;) {
        struct slot *s = &c->slots[i];
        if (s->seen || !s->lease.key)
            continue;
        ob_lease_free(&s->lease);
        if (!s->listed_now && !atomic_load(&s->held) && !s->worker)
            remove_slot(c, i);
    }
    return true;
}

/* The lease of an ended shard goes once the shard has left the stream
 * (DescribeStream lists the shards of the last 24 h) and every child it
 * has there has a lease: the lease table stays as small as the stream. */
static bool children_leased(const struct coordinator *c, const struct slot *p)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct slot *s = &c->slots[i];
        if (s->listed_now && s->shard.parent_id && strcmp(s->shard.parent_id, p->shard.id) == 0 && !s->lease.key)
            return false;
    }
    return true;
}

static void delete_ended(struct coordinator *c)
{
    struct ob_relay *r = c->r;
    for (size_t i = c->n; i-- > 0;) {
        struct slot *s = &c->slots[i];
        if (s->listed_now || !s->lease.key || !s->lease.checkpoint || atomic_load(&s->held) || s->worker ||
            strcmp(s->lease.checkpoint, OB_CHECKPOINT_SHARD_END) != 0 || !children_leased(c, s))
            continue;
        struct ob_error err;
        if (ob_lease_delete_ended(c->session, r->cfg->leases.table, s->shard.id, &err)) {
            ob_log_warn("%s", err.msg);
            continue;
        }
        llog(OB_SEV_INFO, s, "deleted", "the shard was read to its end and has left the stream");
        remove_slot(c, i);
    }
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
    enum ob_err rc = ob_lease_take(c->session, r->cfg->leases.table, s->shard.id, c->me, s->lease.counter,
                                   &counter, &err);
    if (rc == OB_ERR_CONDITION_FAILED)
        return; /* someone was faster; the next scan shows who */
    if (rc) {
        ob_log_warn("taking the lease of %s failed: %s", s->shard.id, err.msg);
        return;
    }
    atomic_store(&s->hand_over_asked, false);
    atomic_store(&s->held_counter, counter);
    atomic_store(&s->valid_until, now + c->duration * 2 / 3);
    atomic_store(&s->held, true);
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
        if (atomic_load(&s->held)) {
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
            mine += atomic_load(&s->held);
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
        if (available(s) && !atomic_load(&s->held) && expired(c, s, now)) {
            take(c, s, now, s->lease.owner ? "expired" : "free");
            mine += atomic_load(&s->held);
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
        if (available(s) && !atomic_load(&s->held) && s->lease.owner && strcmp(s->lease.owner, owners[most]) == 0 &&
            !s->lease.pending_owner) {
            struct ob_error err;
            struct ob_relay *r = c->r;
            if (ob_lease_request(c->session, r->cfg->leases.table, s->shard.id, c->me, s->lease.counter,
                                 &err) == OB_OK)
                ob_log_info("asked %s to hand over %s (%zu leases there, %zu here, even share %zu)", owners[most],
                            s->shard.id, counts[most], mine, target);
            return;
        }
    }
}

/* ---- the renewer thread ----------------------------------------------- */

/* Called with the lock held. */
static void lost(struct slot *s, const char *why)
{
    llog(OB_SEV_WARN, s, "lost", why);
    atomic_store(&s->held, false);
    if (s->worker)
        ob_shard_worker_abandon(s->worker);
}

/* Renews up to RENEW_BATCH held leases of the slots from *from on, and
 * moves *from past them; false when there were none. The calls run
 * without the lock; their outcomes go to the slots still held with the
 * counter renewed. *failed: a renewal failed without losing its lease. */
static bool renew_batch(struct coordinator *c, size_t *from, bool *failed)
{
    char *keys[RENEW_BATCH];
    int64_t counters[RENEW_BATCH], sent[RENEW_BATCH], read_through[RENEW_BATCH];
    size_t n = 0, next;
    pthread_mutex_lock(&c->lock);
    for (next = *from; next < c->n && n < RENEW_BATCH; next++) {
        struct slot *s = &c->slots[next];
        if (atomic_load(&s->held)) {
            keys[n] = ob_xstrdup(s->shard.id);
            sent[n] = counters[n] = atomic_load(&s->held_counter);
            read_through[n] = s->worker ? ob_shard_worker_read_through(s->worker) : 0;
            n++;
        }
    }
    pthread_mutex_unlock(&c->lock);
    *from = next;
    if (n == 0)
        return false;
    enum ob_err results[RENEW_BATCH];
    bool pending[RENEW_BATCH];
    struct ob_relay *r = c->r;
    /* Valid for the lease duration from when the renewal was sent, less a
     * margin, so we stop before anyone may take it. */
    int64_t valid_until = ob_mono_ms() + c->duration * 2 / 3;
    ob_leases_renew(c->renew_session, r->cfg->leases.table, c->me, (const char *const *)keys, counters,
                    read_through, n, results, pending);
    int64_t now = ob_mono_ms();
    bool news = false;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = find(c, keys[i]);
        free(keys[i]);
        if (!s || !atomic_load(&s->held) || atomic_load(&s->held_counter) != sent[i])
            continue; /* released, handed over or lost meanwhile */
        if (results[i] == OB_ERR_CONDITION_FAILED) {
            lost(s, "another instance holds it now");
            news = true;
            continue;
        }
        if (results[i]) {
            if (now > atomic_load(&s->valid_until)) {
                lost(s, "not renewed in time");
                news = true;
            } else {
                *failed = true;
            }
            continue;
        }
        atomic_store(&s->held_counter, counters[i]);
        atomic_store(&s->valid_until, valid_until);
        if (s->worker)
            ob_shard_worker_renewed(s->worker, valid_until);
        if (pending[i]) {
            atomic_store(&s->hand_over_asked, true);
            news = true;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (news)
        ob_relay_wake(r); /* hand-overs and losses are the coordinator's to act on */
    return true;
}

static void *renewer_main(void *arg)
{
    struct coordinator *c = arg;
    pthread_setname_np(pthread_self(), "ob-renewer");
    pthread_mutex_lock(&c->lock);
    while (!c->renewer_stop) {
        pthread_mutex_unlock(&c->lock);
        /* Every duration/3 from when the last round began, however long
         * its calls took: a renewal is valid for 2/3 of the duration from
         * its sending, so calls may take up to a third. A failed one is
         * tried again within a second. */
        int64_t began = ob_mono_ms();
        size_t from = 0;
        bool failed = false;
        while (renew_batch(c, &from, &failed))
            ;
        int64_t next = began + (failed && c->duration / 3 > 1000 ? 1000 : c->duration / 3);
        pthread_mutex_lock(&c->lock);
        struct timespec ts = ob_clock_after(CLOCK_MONOTONIC, next - ob_mono_ms());
        if (!c->renewer_stop && next > ob_mono_ms())
            pthread_cond_timedwait(&c->renew_wake, &c->lock, &ts);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- workers ------------------------------------------------------------ */

static void stop_worker(struct slot *s, enum slot_state next, int64_t deadline)
{
    if (s->state == SLOT_RUNNING)
        ob_shard_worker_stop(s->worker, deadline);
    s->state = next;
}

/* A renewal found that another instance asked for the lease. */
static void hand_over_asked(struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (!atomic_exchange(&s->hand_over_asked, false) || !atomic_load(&s->held) || s->state == SLOT_HANDING ||
            s->state == SLOT_RELEASING)
            continue;
        llog(OB_SEV_INFO, s, "requested by another instance", "handing it over");
        if (s->state == SLOT_RUNNING)
            stop_worker(s, SLOT_HANDING, ob_mono_ms() + HAND_OVER_DRAIN_MS);
        else
            s->state = SLOT_HANDING;
    }
}

static void start_ready(struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        int64_t valid_until = atomic_load(&s->valid_until);
        if (!atomic_load(&s->held) || s->done || s->state != SLOT_IDLE || !s->lease.checkpoint ||
            !parent_done(c, s) || ob_mono_ms() >= valid_until)
            continue;
        bool cold = strcmp(s->lease.checkpoint, OB_CHECKPOINT_COLD) == 0;
        struct ob_shard_start start = {
            .checkpoint = cold ? OB_CHECKPOINT_TRIM_HORIZON : s->lease.checkpoint,
            .cold = cold,
            .owner = c->me,
            .lease_valid_until_ms = valid_until,
        };
        struct ob_error err;
        struct ob_shard_worker *w;
        if (ob_shard_worker_start(c->r, &s->shard, &start, &w, &err)) {
            ob_log_error("%s: %s", s->shard.id, err.msg);
            continue;
        }
        set_worker(c, s, w);
        /* A renewal sent before the worker was set is not passed on to it. */
        ob_shard_worker_renewed(w, atomic_load(&s->valid_until));
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
            struct ob_shard_worker *w = s->worker;
            set_worker(c, s, NULL);
            /* A worker whose checkpoint write found another owner knows
             * before the next renewal does: not started again meanwhile. */
            if (ob_shard_worker_taken_over(w) && atomic_exchange(&s->held, false))
                llog(OB_SEV_WARN, s, "lost", "another instance holds it now");
            end = ob_shard_worker_join(w);
        }
        if (end) {
            s->done = true;
            ended = true;
        }
        /* Not renewed from here on: the write below changes the lease. */
        bool held = atomic_load(&s->held);
        if (held && (s->state == SLOT_HANDING || end || s->state == SLOT_RELEASING))
            atomic_store(&s->held, false);
        if (!held) {
            s->state = SLOT_IDLE;
            continue;
        }
        if (s->state == SLOT_HANDING) {
            if (ob_lease_hand_over(c->session, r->cfg->leases.table, s->shard.id, c->me, &err) == OB_OK)
                llog(OB_SEV_INFO, s, "handed over", s->lease.pending_owner ? s->lease.pending_owner : "to its requester");
        } else if (end || s->state == SLOT_RELEASING) {
            if (ob_lease_release(c->session, r->cfg->leases.table, s->shard.id, c->me, &err) == OB_OK)
                llog(OB_SEV_INFO, s, "released", end ? "shard read to its end" : NULL);
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

struct wake_wait {
    struct ob_relay *r;
    unsigned long long wakes;  /* ob_relay_wake calls before the wait */
    bool shutting_down;
};

static bool woken(void *ctx)
{
    const struct wake_wait *ww = ctx;
    return atomic_load(&ww->r->wakes) != ww->wakes || (!ww->shutting_down && atomic_load(&ww->r->stopping));
}

/* Waits up to ms for a wake-up. Running, a stop ends it at once (seen
 * under the lock, so its wake-up is not missed); shutting down, it waits
 * for workers to finish. */
static void wait_for(struct coordinator *c, int64_t ms, bool shutting_down)
{
    struct wake_wait ww = { .r = c->r, .wakes = atomic_load(&c->r->wakes), .shutting_down = shutting_down };
    ob_relay_wait(c->r, ob_mono_ms() + ms, woken, &ww);
}

static bool any_worker(const struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].worker)
            return true;
    return false;
}

/* Drains every worker (until the relay's stop deadline), while the
 * renewer keeps the leases, then releases them. */
static void shut_down(struct coordinator *c)
{
    int64_t deadline = atomic_load(&c->r->stop_deadline_ms);
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].state == SLOT_RUNNING)
            stop_worker(&c->slots[i], SLOT_RELEASING, deadline);
        else if (atomic_load(&c->slots[i].held))
            c->slots[i].state = SLOT_RELEASING;
    while (any_worker(c)) {
        reap(c);
        wait_for(c, 50, true);
    }
    reap(c);
    publish_counts(c);
}

static void renewer_stop(struct coordinator *c)
{
    pthread_mutex_lock(&c->lock);
    c->renewer_stop = true;
    pthread_cond_signal(&c->renew_wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->renewer, NULL);
}

void *ob_coordinator_main(void *arg)
{
    struct coordinator c = { .r = arg };
    struct ob_relay *r = c.r;
    pthread_setname_np(pthread_self(), "ob-coordinator");
    c.me = r->instance_id;
    c.duration = r->cfg->leases.duration_ms;
    c.session = ob_ddb_session_create(r->ddb);
    c.renew_session = ob_ddb_session_create(r->ddb);
    c.owned = ob_metric_series("outboxd_shards_owned", "");
    pthread_mutex_init(&c.lock, NULL);
    ob_relay_cond_init(&c.renew_wake);
    bool renewing = pthread_create(&c.renewer, NULL, renewer_main, &c) == 0;
    if (!renewing) {
        ob_log_error("cannot start the lease renewer thread; reading nothing");
        atomic_store(&r->stopping, true);
    }
    int64_t next_list = 0, next_scan = 0;
    /* Every instance scans the whole lease table (strongly consistent) at
     * KCL's pace, a third of the duration: a dead owner's shards are taken
     * over within the duration plus two scans, whatever poll_interval is. */
    int64_t scan_every = c.duration / 3 < 100 ? 100 : c.duration / 3;
    while (!atomic_load(&r->stopping)) {
        int64_t now = ob_mono_ms();
        if (reap(&c))
            next_list = next_scan = now; /* the children of a finished shard may be readable now */
        hand_over_asked(&c);
        if (now >= next_scan) {
            bool first = !c.scanned;
            if (scan_leases(&c)) {
                if (first || now >= next_list) {
                    bool created;
                    if (list_shards(&c, &created)) {
                        if (created)
                            scan_leases(&c);
                        delete_ended(&c);
                    }
                    next_list = ob_mono_ms() + LIST_INTERVAL_MS;
                }
                balance(&c, ob_mono_ms());
            }
            next_scan = ob_mono_ms() + scan_every;
        }
        start_ready(&c);
        publish_counts(&c);
        int64_t wait = next_scan - ob_mono_ms();
        atomic_store(&r->health.coordinator_turn_ms, ob_mono_ms() + wait); /* its heartbeat (SPEC §7) */
        wait_for(&c, wait < 20 ? 20 : wait, false);
    }
    shut_down(&c);
    if (renewing)
        renewer_stop(&c);
    for (size_t i = 0; i < c.n; i++)
        slot_free(&c.slots[i]);
    free(c.slots);
    pthread_cond_destroy(&c.renew_wake);
    pthread_mutex_destroy(&c.lock);
    ob_ddb_session_destroy(c.renew_session);
    ob_ddb_session_destroy(c.session);
    return NULL;
}
