/* State shared by the relay's threads. */
#ifndef OB_RELAY_INTERNAL_H
#define OB_RELAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "core/token_bucket.h"
#include "dynamo/ddb.h"
#include "dynamo/leases.h"
#include "dynamo/streams.h"
#include "relay/given_up.h"
#include "relay/health.h"
#include "sinks/sink.h"

struct ob_metric_series;

/* Whether a sink answers: a run of retriable failures across every worker
 * (or a connection it refused) marks it down; while it is down its
 * messages wait, one probe at a time tests it, and its retriable failures
 * do not count toward relay.max_attempts (SPEC §3). See sink_health.h. */
struct ob_sink_health {
    atomic_int consecutive_retry;
    atomic_llong answered_at_ms;     /* monotonic: its last 2xx or rejection */
    atomic_bool up;
    atomic_bool probing;             /* while down: one message, process-wide, tests it */
    atomic_llong next_probe_at_ms;   /* monotonic */
    atomic_int probe_failures;
    atomic_ullong failed_probe;      /* the message (ob_item_key_hash) of the last probe that failed */
    struct ob_metric_series *up_gauge, *delivered, *failed, *latency;
};

/* What SIGHUP replaces: the config's routes, sinks and CloudEvents source.
 * Reference-counted: a worker holds it for one wave; the last holder
 * flushes and destroys the sinks. */
struct ob_routing {
    atomic_int refs;
    struct ob_config *cfg;           /* owned */
    struct ob_sink **sinks;          /* cfg->sinks order, owned */
    struct ob_sink_health *health;   /* one per sink */
    struct ob_sink *dead_letter;     /* one of sinks, or NULL */
    struct ob_sink_health *dead_letter_health;
};

struct ob_relay {
    const struct ob_config *cfg;     /* startup config: table, stream, relay settings */
    const struct ob_cred_context *aws; /* the process's region and credentials; a reload keeps them */
    struct ob_ddb *ddb;
    char *stream_arn;

    pthread_mutex_t routing_lock;
    struct ob_routing *routing;

    const char *instance_id;         /* leases.instance_id, else the host name */
    char instance_buf[256];
    atomic_bool stopping;
    atomic_llong stop_deadline_ms;   /* monotonic; workers give up draining after it */
    atomic_bool sweep_needed;        /* stream data was trimmed before it was read */
    atomic_bool discovered;          /* the first DescribeStream succeeded */

    /* Items given up unrecorded: no sweep of this process delivers them again. */
    struct ob_given_up given_up;

    /* capacity.max_write_units_per_second over every worker's writes. */
    pthread_mutex_t budget_lock;
    struct ob_token_bucket write_budget;

    /* Whether the workers and the coordinator make progress (SPEC §7). */
    struct ob_health health;

    /* Wakes the coordinator (a worker finished, stop requested), the
     * workers and the sweeper (ob_relay_wake, ob_relay_wait). */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_ullong wakes;             /* ob_relay_wake calls so far: a waiter tells one came */
    int workers_running;
};

struct ob_routing *ob_routing_get(struct ob_relay *r);
void ob_routing_put(struct ob_routing *rt);
/* A shard lost records the stream no longer has: the sweeper runs now. */
void ob_relay_want_sweep(struct ob_relay *r);
/* Initializes a condition variable whose timed waits are on
 * CLOCK_MONOTONIC (ob_clock_after), so a step of the wall clock neither
 * stalls them nor ends them early. */
void ob_relay_cond_init(pthread_cond_t *cond);
void ob_relay_wake(struct ob_relay *r);
/* Waits for ob_relay_wake until done(ctx) holds or the monotonic instant
 * until_ms has come. done is asked under the lock ob_relay_wake takes, so
 * what was changed before a wake-up is seen, never missed. */
void ob_relay_wait(struct ob_relay *r, int64_t until_ms, bool (*done)(void *ctx), void *ctx);
/* Takes n write units from the budget; returns the milliseconds to wait
 * before writing (0: now). settle() corrects by what was really consumed. */
int64_t ob_relay_budget_take(struct ob_relay *r, double n);
void ob_relay_budget_settle(struct ob_relay *r, double delta);

/* One shard's reader: its own thread, session, window and checkpoint. */
struct ob_shard_worker;

struct ob_shard_start {
    const char *checkpoint;          /* where to start: a sequence number (after it), TRIM_HORIZON or LATEST */
    bool cold;                       /* check candidates' state before delivering */
    const char *owner;               /* our instance id: checkpoints are written while we hold the lease */
    int64_t lease_valid_until_ms;    /* monotonic; see ob_shard_worker_renewed */
};

/* Starts the worker of `shard` (copied). The coordinator owns it. */
enum ob_err ob_shard_worker_start(struct ob_relay *r, const struct ob_shard *shard,
                                  const struct ob_shard_start *start, struct ob_shard_worker **out,
                                  struct ob_error *err);
/* The lease was renewed: the worker may go on reading until valid_until;
 * past it, it stops at once as if the lease were lost (an instance that
 * cannot renew must stop before another may take the shard). */
void ob_shard_worker_renewed(struct ob_shard_worker *w, int64_t valid_until_ms);
/* Asks the worker to stop reading, deliver what it has read until
 * deadline_ms (monotonic), write its checkpoint and exit. */
void ob_shard_worker_stop(struct ob_shard_worker *w, int64_t deadline_ms);
/* The lease is gone: stop now, deliver and checkpoint nothing more. */
void ob_shard_worker_abandon(struct ob_shard_worker *w);
/* Wall-clock ms up to which the worker handled every record of its shard
 * (0: not known yet); any thread may ask. */
int64_t ob_shard_worker_read_through(struct ob_shard_worker *w);
bool ob_shard_worker_finished(struct ob_shard_worker *w);
/* Whether its checkpoint write found another owner of the lease. */
bool ob_shard_worker_taken_over(struct ob_shard_worker *w);
/* Joins and frees. Returns true when the shard was read to its end. */
bool ob_shard_worker_join(struct ob_shard_worker *w);

struct ob_sweep_options {
    int64_t older_than_ms;
    bool include_undated;            /* items without createdAt too (outboxd sweep --include-undated) */
    bool dry_run;                    /* find and list, deliver nothing */
    FILE *list;                      /* one line per item found, or NULL */
    const struct ob_sweep_lease *lease;  /* held by the caller; renewed while the sweep runs */
};

struct ob_sweep_stats {
    size_t candidates;               /* unpublished, not dead-lettered, old enough */
    size_t poison;
    size_t undelivered;              /* left when the sweep stopped early */
    size_t blocked;                  /* on_failure: block; left for the next sweep with their keys */
    size_t rechecked;                /* found published or dead-lettered right before sending */
    size_t given_up;                 /* given up unrecorded by this process before: not sent again */
    int64_t cutoff_ms;               /* createdAt before it was swept (0: the stream held everything back) */
    char *behind;                    /* owned: the shard whose reader held the cutoff back, or NULL */
    bool stopped_early;              /* a stop came before every item was read and delivered */
    double read_units;
};

/* How long a sweep lease is held without renewal: an instance that dies
 * while sweeping frees it then. Renewed every 20 s, it outlasts a call
 * that takes all its retries (aws.request_timeout x aws.max_attempts). */
#define OB_SWEEP_HOLD_MS 300000

/* One sweep of the outbox table (the caller holds the sweep lease, o->lease).
 * st->behind is the caller's to free. */
enum ob_err ob_sweep_pass(struct ob_relay *r, struct ob_ddb_session *s, const struct ob_sweep_options *o,
                          struct ob_sweep_stats *st, struct ob_error *err);
/* The daemon's sweeper thread: every sweep.interval, and at once when a
 * shard's records were trimmed before they were read. */
void *ob_sweeper_main(void *relay);

/* relay.backoff for an attempt (1-based): exponential, full jitter, at
 * least 10 ms; for deliveries and the probes of a sink that is down. */
int64_t ob_relay_backoff_ms(const struct ob_config *cfg, int attempt);

/* The coordinator thread's body. */
void *ob_coordinator_main(void *relay);

#endif
