/* Shard leases in the lease table (the Kinesis Client Library's model):
 * one item per shard — leaseKey (shard id), leaseOwner, leaseCounter,
 * checkpoint, parentShardIds, streamArn, and pendingOwner while a steal
 * waits for the owner to hand the shard over. Every change is a
 * conditional write on the counter or the owner, so two instances never
 * both believe they hold a lease. */
#ifndef OB_DYNAMO_LEASES_H
#define OB_DYNAMO_LEASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dynamo/ddb.h"
#include "dynamo/streams.h"

/* A checkpoint meaning "read from the shard's oldest record". */
#define OB_CHECKPOINT_TRIM_HORIZON "TRIM_HORIZON"
/* TRIM_HORIZON on a first start: items already published are skipped. */
#define OB_CHECKPOINT_COLD "TRIM_HORIZON_COLD"
/* A checkpoint meaning "read only what is written from now on": a shard's
 * first start with start_position latest. */
#define OB_CHECKPOINT_LATEST "LATEST"
/* "LATEST@<epoch ms>": the shard was first read from LATEST at that time.
 * Every later start (restart, kill -9, take-over) reads from TRIM_HORIZON
 * and skips only the records from before it, so no record written after
 * the first start is skipped (SPEC §3), even when none had come. */
#define OB_CHECKPOINT_LATEST_SINCE "LATEST@"
/* The checkpoint of a shard that was read to its end. */
#define OB_CHECKPOINT_SHARD_END "SHARD_END"

/* Writes the LATEST@ checkpoint of since_ms into out. */
void ob_checkpoint_latest_since(char *out, size_t size, int64_t since_ms);
/* Whether cp is a LATEST@ checkpoint; then *since_ms is its time. */
bool ob_checkpoint_is_latest_since(const char *cp, int64_t *since_ms);

struct ob_lease {
    char *key;            /* shard id */
    char *owner;          /* NULL: nobody */
    int64_t counter;
    char *checkpoint;     /* sequence number, TRIM_HORIZON, LATEST or SHARD_END */
    char *pending_owner;  /* an instance waiting for a hand-over, or NULL */
    char *parent;         /* the parent shard id, or NULL */
    int64_t read_through; /* epoch ms: its reader has handled every record written before; 0: unknown */
};

struct ob_lease_list {
    struct ob_lease *v;
    size_t n;
};

void ob_lease_list_free(struct ob_lease_list *l);
void ob_lease_free(struct ob_lease *l);

/* Every lease of stream_arn (Scan, all pages). *out must be zeroed. */
enum ob_err ob_leases_list(struct ob_ddb_session *s, const char *table, const char *stream_arn,
                           struct ob_lease_list *out, struct ob_error *err);

/* Creates the lease of a new shard (no owner) unless it exists: OB_OK
 * either way. */
enum ob_err ob_lease_create(struct ob_ddb_session *s, const char *table, const char *stream_arn,
                            const struct ob_shard *shard, const char *checkpoint, struct ob_error *err);

/* Takes a lease last seen with `counter` (expired, free, or our own after
 * a restart). On OB_OK *new_counter is the counter now held;
 * OB_ERR_CONDITION_FAILED: someone else changed it first. */
enum ob_err ob_lease_take(struct ob_ddb_session *s, const char *table, const char *key,
                          const char *me, int64_t counter, int64_t *new_counter, struct ob_error *err);

/* Asks the owner of a lease last seen with `counter` to hand it over. */
enum ob_err ob_lease_request(struct ob_ddb_session *s, const char *table, const char *key,
                             const char *me, int64_t counter, struct ob_error *err);

/* Hands a lease we hold to its pendingOwner (after our worker stopped). */
enum ob_err ob_lease_hand_over(struct ob_ddb_session *s, const char *table, const char *key,
                               const char *me, struct ob_error *err);

/* Gives a lease up (graceful shutdown): no owner, counter moved on. */
enum ob_err ob_lease_release(struct ob_ddb_session *s, const char *table, const char *key,
                             const char *me, struct ob_error *err);

/* Stores `pinned` (a LATEST@ checkpoint) in a lease `me` holds that is
 * still at LATEST. OB_ERR_CONDITION_FAILED: the lease is not ours any
 * more (*current NULL), or its checkpoint moved on (*current: that
 * checkpoint, owned by the caller), e.g. pinned by an earlier start whose
 * news had not reached our view. */
enum ob_err ob_lease_pin_latest(struct ob_ddb_session *s, const char *table, const char *key,
                                const char *me, const char *pinned, char **current, struct ob_error *err);

/* The request of a checkpoint write: checkpoint, and checkpointAt at
 * now_ms, on the condition that owner holds the lease (caller owns:
 * json_decref). */
json_t *ob_checkpoint_request(const char *table, const char *key, const char *owner, const char *checkpoint,
                              int64_t now_ms);

/* Records a shard's checkpoint in its lease (ob_checkpoint_request, now)
 * while its caller works on: ob_checkpoint_write_start sends it on the
 * session at once, the session's polls move it, ob_checkpoint_write_poll
 * says whether it is done, and ob_checkpoint_write_finish then gives its
 * outcome (OB_ERR_CONDITION_FAILED: the lease was lost) and frees it;
 * table and key are borrowed until then. ob_checkpoint_write_abandon
 * takes it back unfinished and frees it. */
struct ob_checkpoint_write;
struct ob_checkpoint_write *ob_checkpoint_write_start(struct ob_ddb_session *s, const char *table,
                                                      const char *key, const char *owner,
                                                      const char *checkpoint);
bool ob_checkpoint_write_poll(struct ob_checkpoint_write *cw);
enum ob_err ob_checkpoint_write_finish(struct ob_checkpoint_write *cw, struct ob_error *err);
void ob_checkpoint_write_abandon(struct ob_checkpoint_write *cw);

/* Deletes the lease of a shard that was read to its end (its checkpoint
 * is SHARD_END): OB_OK also when it is gone already. */
enum ob_err ob_lease_delete_ended(struct ob_ddb_session *s, const char *table, const char *key,
                                  struct ob_error *err);

/* Renewals of every lease in keys/counters, concurrently, each storing
 * read_through[i] (readThrough) unless it is 0. results[i] is OB_OK
 * (counters[i] incremented; pending[i] true when someone asked for a
 * hand-over), OB_ERR_CONDITION_FAILED (lost) or another error (unknown:
 * retry next time). */
void ob_leases_renew(struct ob_ddb_session *s, const char *table, const char *me,
                     const char *const *keys, int64_t *counters, const int64_t *read_through, size_t n,
                     enum ob_err *results, bool *pending);

/* The time up to which the readers of every open shard of the stream
 * have handled what was written (the least readThrough of the leases not
 * at SHARD_END): the sweeper takes nothing newer, so it never races the
 * stream. INT64_MAX when the stream has no lease (nobody reads it); 0
 * when an open shard's reader has not said yet. *behind: the lease
 * holding it back, or NULL (owned). */
enum ob_err ob_leases_read_through(struct ob_ddb_session *s, const char *table,
                                   const char *stream_arn, int64_t *read_through, char **behind,
                                   struct ob_error *err);

/* The sweep lease: one item (leaseKey "sweep:<table>") that lets one
 * instance at a time sweep, and schedules the next sweep. */
struct ob_sweep_lease {
    const char *table;       /* the lease table */
    char key[512];           /* "sweep:<outbox table>" */
    const char *me;
};

/* The sweep lease of outbox_table in lease_table, for instance `me`
 * (strings borrowed). */
void ob_sweep_lease_init(struct ob_sweep_lease *l, const char *lease_table, const char *outbox_table,
                         const char *me);

/* Takes the sweep lease until now + hold_ms, when no sweep runs (or the
 * one running has expired) and, with on_schedule, the next sweep is due.
 * OB_ERR_CONDITION_FAILED: not now. */
enum ob_err ob_sweep_lease_take(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                int64_t now_ms, int64_t hold_ms, bool on_schedule, struct ob_error *err);
/* Keeps our sweep lease until now + hold_ms. OB_ERR_CONDITION_FAILED:
 * another instance took it (it had expired). */
enum ob_err ob_sweep_lease_renew(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                 int64_t now_ms, int64_t hold_ms, struct ob_error *err);
/* Ends our sweep and schedules the next one at next_ms (epoch ms). */
enum ob_err ob_sweep_lease_finish(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                  int64_t next_ms, struct ob_error *err);

#endif
