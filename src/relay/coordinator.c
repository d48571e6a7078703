/* The coordinator thread: keeps the stream's shard list current
 * (DescribeStream, every page), starts a worker for each shard whose
 * parents have been read to their end, retires workers of finished shards
 * and, on stop, stops and joins every worker. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "relay/relay_internal.h"

/* New shards appear when shards close (about every 4 hours in AWS); a
 * worker reaching a shard's end asks for a listing at once. */
#define DESCRIBE_INTERVAL_MS 10000
#define DESCRIBE_MIN_GAP_MS 250

enum slot_state { SLOT_WAITING, SLOT_RUNNING, SLOT_DONE };

struct slot {
    struct ob_shard shard;       /* owned */
    enum slot_state state;
    struct ob_shard_worker *worker;
    bool initial;                /* listed by the first DescribeStream of this run */
};

struct coordinator {
    struct ob_relay *r;
    struct ob_aws_session *session;
    struct slot *slots;
    size_t n;
    struct ob_checkpoint_list checkpoints;
    bool cold;                   /* no checkpoint of this stream existed at start */
    bool listed;
    struct ob_metric_series *owned;
};

static struct slot *find(struct coordinator *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->slots[i].shard.id, id) == 0)
            return &c->slots[i];
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? ob_xstrdup(s) : NULL;
}

static void add_slot(struct coordinator *c, const struct ob_shard *sh)
{
    c->slots = ob_xrealloc(c->slots, (c->n + 1) * sizeof *c->slots);
    struct slot *s = &c->slots[c->n++];
    memset(s, 0, sizeof *s);
    s->shard.id = ob_xstrdup(sh->id);
    s->shard.parent_id = dup_or_null(sh->parent_id);
    s->shard.start_seq = dup_or_null(sh->start_seq);
    s->shard.end_seq = dup_or_null(sh->end_seq);
    s->initial = !c->listed;
    const char *cp = ob_checkpoint_find(&c->checkpoints, sh->id);
    if (cp && strcmp(cp, OB_CHECKPOINT_SHARD_END) == 0)
        s->state = SLOT_DONE;
    else if (!cp && s->initial && c->cold && c->r->cfg->stream.start_position == OB_START_LATEST && sh->end_seq)
        s->state = SLOT_DONE; /* `latest` on a first start: closed shards hold only the past */
}

static void update_slot(struct slot *s, const struct ob_shard *sh)
{
    if (!s->shard.end_seq && sh->end_seq)
        s->shard.end_seq = ob_xstrdup(sh->end_seq);
}

static void list_shards(struct coordinator *c)
{
    struct ob_shard_list l = { 0 };
    struct ob_error err;
    if (ob_stream_describe(c->session, c->r->ddb, c->r->stream_arn, &l, &err)) {
        ob_log_warn("listing the stream's shards failed: %s", err.msg);
        return;
    }
    size_t before = c->n;
    for (size_t i = 0; i < l.n; i++) {
        struct slot *s = find(c, l.v[i].id);
        if (s)
            update_slot(s, &l.v[i]);
        else
            add_slot(c, &l.v[i]);
    }
    if (c->n > before)
        ob_log_debug("%zu shards listed, %zu new", l.n, c->n - before);
    ob_shard_list_free(&l);
    c->listed = true;
    atomic_store(&c->r->discovered, true);
}

/* A shard may be read once every parent has been read to its end; a
 * parent no longer listed has aged out of the stream. */
static bool parents_done(struct coordinator *c, const struct slot *s)
{
    if (!s->shard.parent_id)
        return true;
    const struct slot *p = find(c, s->shard.parent_id);
    return !p || p->state == SLOT_DONE;
}

static void start_ready(struct coordinator *c)
{
    const struct ob_config *cfg = c->r->cfg;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (s->state != SLOT_WAITING || !parents_done(c, s))
            continue;
        const char *cp = ob_checkpoint_find(&c->checkpoints, s->shard.id);
        struct ob_shard_start start = { .iterator_type = "TRIM_HORIZON" };
        if (cp) {
            start.iterator_type = "AFTER_SEQUENCE_NUMBER";
            start.seq = cp;
        } else if (s->initial && c->cold) {
            if (cfg->stream.start_position == OB_START_LATEST)
                start.iterator_type = "LATEST";
            else
                start.cold = true;
        }
        struct ob_error err;
        if (ob_shard_worker_start(c->r, &s->shard, &start, &s->worker, &err)) {
            ob_log_error("%s: %s", s->shard.id, err.msg);
            continue;
        }
        s->state = SLOT_RUNNING;
    }
}

/* Joins finished workers; returns whether a shard was read to its end. */
static bool reap(struct coordinator *c)
{
    bool ended = false;
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (s->state != SLOT_RUNNING || !ob_shard_worker_finished(s->worker))
            continue;
        bool end = ob_shard_worker_join(s->worker);
        s->worker = NULL;
        s->state = end ? SLOT_DONE : SLOT_WAITING;
        ended |= end;
    }
    return ended;
}

static int running(const struct coordinator *c)
{
    int n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += c->slots[i].state == SLOT_RUNNING;
    return n;
}

static void publish_counts(struct coordinator *c)
{
    int n = running(c);
    ob_metric_set(c->owned, n);
    pthread_mutex_lock(&c->r->lock);
    c->r->workers_running = n;
    pthread_mutex_unlock(&c->r->lock);
}

static void wait_for(struct coordinator *c, int64_t ms)
{
    struct ob_relay *r = c->r;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->lock);
    if (!atomic_load(&r->stopping))
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
}

static bool load_checkpoints(struct coordinator *c)
{
    struct ob_error err;
    struct ob_relay *r = c->r;
    while (!atomic_load(&r->stopping)) {
        if (ob_checkpoints_load(c->session, r->ddb, r->cfg->leases.table, r->stream_arn, &c->checkpoints, &err)
            == OB_OK) {
            c->cold = c->checkpoints.n == 0;
            ob_log_info("%zu shard checkpoints in %s%s", c->checkpoints.n, r->cfg->leases.table,
                        c->cold ? (r->cfg->stream.start_position == OB_START_LATEST
                                       ? "; first start: reading new records only (start_position: latest)"
                                       : "; first start: reading from the oldest record, skipping items "
                                         "already published")
                                : "");
            return true;
        }
        ob_log_warn("reading checkpoints failed, retrying: %s", err.msg);
        wait_for(c, 2000);
    }
    return false;
}

static void shutdown_workers(struct coordinator *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->slots[i].state == SLOT_RUNNING)
            ob_shard_worker_stop(c->slots[i].worker);
    for (size_t i = 0; i < c->n; i++) {
        struct slot *s = &c->slots[i];
        if (s->state == SLOT_RUNNING) {
            ob_shard_worker_join(s->worker);
            s->worker = NULL;
            s->state = SLOT_WAITING;
        }
    }
    publish_counts(c);
}

void *ob_coordinator_main(void *arg)
{
    struct coordinator c = { .r = arg };
    pthread_setname_np(pthread_self(), "ob-coordinator");
    c.session = ob_ddb_session(c.r->ddb);
    c.owned = ob_metric_series("outboxd_shards_owned", "");
    int64_t next_list = 0, last_list = -DESCRIBE_MIN_GAP_MS;
    if (!load_checkpoints(&c))
        goto out;
    while (!atomic_load(&c.r->stopping)) {
        int64_t now = ob_mono_ms();
        if (reap(&c))
            next_list = now; /* children of the finished shard may be readable now */
        if (now >= next_list && now - last_list >= DESCRIBE_MIN_GAP_MS) {
            list_shards(&c);
            last_list = now;
            next_list = now + DESCRIBE_INTERVAL_MS;
        }
        if (c.listed)
            start_ready(&c);
        publish_counts(&c);
        int64_t wait = next_list - ob_mono_ms();
        wait_for(&c, wait < 50 ? 50 : wait);
    }
out:
    shutdown_workers(&c);
    for (size_t i = 0; i < c.n; i++) {
        free(c.slots[i].shard.id);
        free(c.slots[i].shard.parent_id);
        free(c.slots[i].shard.start_seq);
        free(c.slots[i].shard.end_seq);
    }
    free(c.slots);
    ob_checkpoint_list_free(&c.checkpoints);
    ob_aws_session_destroy(c.session);
    return NULL;
}
