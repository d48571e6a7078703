/* The relay's writes to outbox items as asynchronous operations, in
 * curl's easy/multi style: a struct ob_item_write is one write (the
 * caller's, tagged with the caller's pointer and reused write after
 * write), a struct ob_item_writer runs them on one thread's session. The
 * caller sets what a write writes (the bodies of dynamo/mark.h: one
 * conditional UpdateItem each), starts it and polls, and takes it back
 * finished with its outcome; or runs a few to their end at once.
 *
 * Write units DynamoDB reports go to
 * outboxd_consumed_capacity_units_total{operation="UpdateItem",kind="write"},
 * counted once per batch taken (ob_item_writer_next_done returning NULL,
 * ob_item_writer_run). Not thread-safe: one thread owns a writer and its
 * writes. */
#ifndef OB_DYNAMO_ITEM_WRITES_H
#define OB_DYNAMO_ITEM_WRITES_H

#include <stddef.h>
#include <stdint.h>

#include "outboxd/error.h"

struct ob_ddb_session;
struct ob_item_writer;
struct ob_item_write;

/* A writer of table's items (table borrowed) on the session s (borrowed).
 * The caller owns it: ob_item_writer_destroy once every started write
 * came back, and before the session goes. */
struct ob_item_writer *ob_item_writer_create(struct ob_ddb_session *s, const char *table);
void ob_item_writer_destroy(struct ob_item_writer *wr);

/* A write, the caller's (ob_item_write_free); tag is given back by
 * ob_item_write_tag. */
struct ob_item_write *ob_item_write_new(void *tag);
void ob_item_write_free(struct ob_item_write *x);
void *ob_item_write_tag(const struct ob_item_write *x);

/* What x writes on the item (pk, sk) of wr's table; a write that is not
 * running may be set again. The mark published (isPublished, publishedAt,
 * ttl) is written as text, without a DOM: it is the relay's most frequent
 * call. */
void ob_item_write_set_mark(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                            int64_t now_ms, int64_t ttl_seconds);
/* isPublished alone, for an item the whole mark would take past 400 KB. */
void ob_item_write_set_mark_minimal(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                    const char *sk);
/* A failed attempt: retryCount and lastError. */
void ob_item_write_set_failed(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                              int64_t retry_count, const char *error);
/* A dead letter: deadLetteredAt, retryCount, lastError, and a ttl unless
 * ttl_seconds is 0. */
void ob_item_write_set_dead_letter(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                   const char *sk, int64_t now_ms, int64_t retry_count, const char *error,
                                   int64_t ttl_seconds);
/* x is done with for now: it keeps its storage for the next write, unless
 * a long one made that big. */
void ob_item_write_recycle(struct ob_item_write *x);

/* Starts x in the background: it makes progress in every poll and run of
 * the session and comes back from ob_item_writer_next_done (or
 * ob_item_writer_take_back). It must stay where it is until then. */
void ob_item_writer_start(struct ob_item_writer *wr, struct ob_item_write *x);
/* Sends the writes just started, without waiting for answers. */
void ob_item_writer_send(struct ob_item_writer *wr);
/* Runs xs[0..n) to their outcome now; started writes go on meanwhile. */
void ob_item_writer_run(struct ob_item_writer *wr, struct ob_item_write *const *xs, size_t n);
/* Drives the session (the writer's writes and every other operation on
 * it), waiting up to timeout_ms for one to finish (0: only what arrived). */
void ob_item_writer_poll(struct ob_item_writer *wr, int timeout_ms);
/* A started write that finished, or NULL when none is left to take. */
struct ob_item_write *ob_item_writer_next_done(struct ob_item_writer *wr);
/* A started write taken back unfinished, or NULL when none runs; the
 * caller's again. Before the writer is destroyed, until NULL. */
struct ob_item_write *ob_item_writer_take_back(struct ob_item_writer *wr);

/* The outcome of a finished write: OB_OK, OB_ERR_CONDITION_FAILED (the
 * item is published already, or gone) or the error, *ob_item_write_error
 * saying which. */
enum ob_err ob_item_write_result(const struct ob_item_write *x);
const struct ob_error *ob_item_write_error(const struct ob_item_write *x);
/* The write units it consumed as DynamoDB reported them, or -1 when the
 * answer said none. */
double ob_item_write_units(const struct ob_item_write *x);

#endif
