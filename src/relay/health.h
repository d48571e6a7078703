/* Whether the relay's threads make progress (SPEC §7): a shard worker is
 * stuck when work waits in it and none moved for relay.stuck_after, not
 * counting time spent waiting for sinks (a slow or down sink is not a
 * stuck worker); the coordinator is stuck when its loop has not turned for
 * that long past when it meant to. The check runs on the operations
 * server's thread (/healthz) and the main thread (WATCHDOG=1, logs, the
 * outboxd_shards_stuck gauge), so it reads only atomics: a stuck thread
 * may hold any lock. */
#ifndef OB_RELAY_HEALTH_H
#define OB_RELAY_HEALTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* No progress is due: nothing waits. */
#define OB_LANE_IDLE INT64_MAX

/* One kind of a worker's work (reading, delivering) that must progress
 * by a time while it waits. Written by its worker only. */
struct ob_lane {
    atomic_llong due_ms;             /* monotonic; OB_LANE_IDLE while nothing waits */
    atomic_llong paused_ms;          /* since when time does not count (waiting for sinks); 0: it counts */
};

/* Once a turn of the worker: idle while nothing waits; once something
 * waits, and again each time it progressed, progress is due stuck_after
 * after from (now, or when the work is next due to start). */
void ob_lane_set(struct ob_lane *l, bool waiting, bool progressed, int64_t from, int64_t stuck_after);
/* From now until resumed or restarted, time does not count. */
void ob_lane_pause(struct ob_lane *l, int64_t now);
/* The time since the pause moves the due time on (a sink call ended). */
void ob_lane_resume(struct ob_lane *l, int64_t now);
/* Progress is due stuck_after from now: everything in the lane waited
 * for sinks until now, so none of the time before counts (however long
 * and however often it waits for them). */
void ob_lane_restart(struct ob_lane *l, int64_t now, int64_t stuck_after);
/* How long past due the lane is at now: > 0 when it is stuck. */
int64_t ob_lane_overdue_ms(const struct ob_lane *l, int64_t now);

#define OB_HEALTH_SHARD_MAX 96

/* A shard worker's health. Slots live as long as the relay, so a check
 * may read one while its worker ends; a worker claims one for its life. */
struct ob_shard_health {
    struct ob_shard_health *next;    /* in the relay's list; fixed once published */
    atomic_bool claimed;
    atomic_uint gen;                 /* odd while a claim writes shard: a reader rereads when it changed */
    _Atomic char shard[OB_HEALTH_SHARD_MAX];
    struct ob_lane reading;          /* a GetRecords due or running must be answered */
    struct ob_lane delivering;       /* messages undone must move (be delivered, marked, dead-lettered) */
    atomic_llong undone;             /* messages waiting, for the report */
    atomic_bool reported;            /* logged as stuck (the main thread's) */
};

struct ob_health {
    int64_t stuck_after_ms;
    _Atomic(struct ob_shard_health *) shards;  /* only ever pushed to, freed by ob_health_free */
    atomic_llong coordinator_turn_ms;          /* monotonic: the coordinator's loop turns again by then */
    atomic_bool coordinator_reported;
};

void ob_health_init(struct ob_health *h, int64_t stuck_after_ms);
/* Frees the slots: no worker holds one any more. */
void ob_health_free(struct ob_health *h);

/* A slot for the worker of shard, idle, until ob_health_release. */
struct ob_shard_health *ob_health_claim(struct ob_health *h, const char *shard);
void ob_health_release(struct ob_shard_health *s);

/* A sink call starts or ends: it pauses both lanes (the worker can do
 * nothing else meanwhile). */
void ob_shard_health_sink_call(struct ob_shard_health *s, bool started, int64_t now);

/* What is stuck at now, a line for each in why (when not NULL). Returns
 * how many shards are stuck; *coordinator says whether the coordinator is.
 * With log (the main thread only), each part that became stuck is logged
 * as an error once, and as info when it is no longer. */
size_t ob_health_check(struct ob_health *h, int64_t now, struct ob_buf *why, bool log, bool *coordinator);

#endif
