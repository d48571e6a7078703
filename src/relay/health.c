#include "relay/health.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/codec.h"
#include "ops/clock.h"
#include "ops/log.h"

void ob_lane_set(struct ob_lane *l, bool waiting, bool progressed, int64_t from, int64_t stuck_after)
{
    if (!waiting)
        atomic_store(&l->due_ms, OB_LANE_IDLE);
    else if (progressed || atomic_load(&l->due_ms) == OB_LANE_IDLE)
        atomic_store(&l->due_ms, from + stuck_after);
}

void ob_lane_pause(struct ob_lane *l, int64_t now)
{
    atomic_store(&l->paused_ms, now);
}

void ob_lane_resume(struct ob_lane *l, int64_t now)
{
    int64_t since = atomic_load(&l->paused_ms);
    int64_t due = atomic_load(&l->due_ms);
    /* The due time moves before the pause ends: a check in between sees
     * the old pause or the new due time, never the old due time alone. */
    if (since && due != OB_LANE_IDLE)
        atomic_store(&l->due_ms, due + (now - since));
    atomic_store(&l->paused_ms, 0);
}

void ob_lane_restart(struct ob_lane *l, int64_t now, int64_t stuck_after)
{
    atomic_store(&l->due_ms, now + stuck_after);
    atomic_store(&l->paused_ms, 0);
}

int64_t ob_lane_overdue_ms(const struct ob_lane *l, int64_t now)
{
    int64_t paused = atomic_load(&l->paused_ms);
    int64_t due = atomic_load(&l->due_ms);
    int64_t at = paused ? paused : now;
    return due != OB_LANE_IDLE && at > due ? at - due : 0;
}

void ob_health_init(struct ob_health *h, int64_t stuck_after_ms)
{
    h->stuck_after_ms = stuck_after_ms;
    atomic_init(&h->shards, NULL);
    atomic_init(&h->coordinator_turn_ms, OB_LANE_IDLE);
    atomic_init(&h->coordinator_reported, false);
}

void ob_health_free(struct ob_health *h)
{
    struct ob_shard_health *s = atomic_exchange(&h->shards, NULL);
    while (s) {
        struct ob_shard_health *next = s->next;
        free(s);
        s = next;
    }
}

struct ob_shard_health *ob_health_claim(struct ob_health *h, const char *shard)
{
    struct ob_shard_health *s = atomic_load(&h->shards);
    for (; s; s = s->next) {
        bool free_slot = false;
        if (atomic_compare_exchange_strong(&s->claimed, &free_slot, true))
            break;
    }
    bool fresh = !s;
    if (fresh) {
        s = ob_xcalloc(1, sizeof *s); /* zeroed atomics: unclaimed, gen 0 */
        atomic_store(&s->claimed, true);
    }
    atomic_fetch_add(&s->gen, 1); /* odd: a check skips the slot */
    size_t i = 0;
    for (; shard[i] && i < OB_HEALTH_SHARD_MAX - 1; i++)
        atomic_store_explicit(&s->shard[i], shard[i], memory_order_relaxed);
    atomic_store_explicit(&s->shard[i], '\0', memory_order_relaxed);
    atomic_store(&s->reading.due_ms, OB_LANE_IDLE);
    atomic_store(&s->reading.paused_ms, 0);
    atomic_store(&s->delivering.due_ms, OB_LANE_IDLE);
    atomic_store(&s->delivering.paused_ms, 0);
    atomic_store(&s->undone, 0);
    atomic_store(&s->reported, false);
    atomic_fetch_add(&s->gen, 1);
    if (fresh) {
        s->next = atomic_load(&h->shards);
        while (!atomic_compare_exchange_weak(&h->shards, &s->next, s))
            ;
    }
    return s;
}

void ob_health_release(struct ob_shard_health *s)
{
    atomic_store(&s->reading.due_ms, OB_LANE_IDLE);
    atomic_store(&s->delivering.due_ms, OB_LANE_IDLE);
    atomic_store(&s->claimed, false);
}

void ob_shard_health_sink_call(struct ob_shard_health *s, bool started, int64_t now)
{
    if (started) {
        ob_lane_pause(&s->reading, now);
        ob_lane_pause(&s->delivering, now);
    } else {
        ob_lane_resume(&s->reading, now);
        ob_lane_resume(&s->delivering, now);
    }
}

/* Copies the slot's shard id; false when a claim changed the slot since
 * the check read gen. */
static bool copy_shard(struct ob_shard_health *s, unsigned gen, char out[OB_HEALTH_SHARD_MAX])
{
    for (size_t i = 0; i < OB_HEALTH_SHARD_MAX; i++)
        out[i] = atomic_load_explicit(&s->shard[i], memory_order_relaxed);
    out[OB_HEALTH_SHARD_MAX - 1] = '\0';
    atomic_thread_fence(memory_order_acquire);
    return atomic_load(&s->gen) == gen;
}

/* Logs a part's change of state once: an error when it became stuck, info
 * when it no longer is. */
static void log_change(const struct ob_health *h, atomic_bool *reported, bool stuck, const char *shard,
                       int64_t stalled_ms, const char *what)
{
    if (stuck && !atomic_exchange(reported, true)) {
        char since[OB_ISO8601_LEN];
        ob_iso8601_ms(ob_wall_ms() - stalled_ms, since);
        ob_log_at(OB_SEV_ERROR, shard, NULL, "stuck since %s: %s (relay.stuck_after %g s); /healthz fails and "
                  "WATCHDOG=1 stops until it moves on", since, what, (double)h->stuck_after_ms / 1000.0);
    } else if (!stuck && atomic_exchange(reported, false)) {
        ob_log_at(OB_SEV_INFO, shard, NULL, "no longer stuck");
    }
}

size_t ob_health_check(struct ob_health *h, int64_t now, struct ob_buf *why, bool log, bool *coordinator)
{
    size_t n = 0;
    char what[160];
    for (struct ob_shard_health *s = atomic_load(&h->shards); s; s = s->next) {
        unsigned gen = atomic_load(&s->gen);
        bool claimed = !(gen & 1) && atomic_load(&s->claimed);
        int64_t delivering = claimed ? ob_lane_overdue_ms(&s->delivering, now) : 0;
        int64_t reading = claimed ? ob_lane_overdue_ms(&s->reading, now) : 0;
        bool stuck = delivering > 0 || reading > 0;
        char shard[OB_HEALTH_SHARD_MAX];
        if (!(stuck || (log && atomic_load(&s->reported))) || !copy_shard(s, gen, shard))
            continue;
        int64_t stalled = h->stuck_after_ms + (delivering > 0 ? delivering : reading);
        if (delivering > 0)
            snprintf(what, sizeof what, "%lld messages waiting have not moved for %.1f s",
                     (long long)atomic_load(&s->undone), (double)stalled / 1000.0);
        else
            snprintf(what, sizeof what, "reading the stream has not progressed for %.1f s",
                     (double)stalled / 1000.0);
        if (stuck && why)
            ob_buf_printf(why, "shard %s is stuck: %s\n", shard, what);
        if (log)
            log_change(h, &s->reported, stuck, shard, stalled, what);
        n += stuck;
    }
    int64_t turn = atomic_load(&h->coordinator_turn_ms);
    int64_t late = turn != OB_LANE_IDLE && now > turn ? now - turn : 0;
    *coordinator = late > h->stuck_after_ms;
    snprintf(what, sizeof what, "the lease coordinator's loop is %.1f s late", (double)late / 1000.0);
    if (*coordinator && why)
        ob_buf_printf(why, "%s\n", what);
    if (log)
        log_change(h, &h->coordinator_reported, *coordinator, NULL, late, what);
    return n;
}
