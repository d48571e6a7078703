/* A shard worker's window: the records read from its shard, in stream
 * order, each with its delivery state. It decides what may be sent now
 * under the ordering rule and where the checkpoint may move (the low
 * watermark: everything up to it is done). Pure; one thread owns it. */
#ifndef OB_RELAY_WINDOW_H
#define OB_RELAY_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/record.h"

enum ob_entry_state {
    OB_ENTRY_DONE,    /* marked, skipped or dead-lettered */
    OB_ENTRY_PENDING, /* to deliver (again, after next_at_ms) */
    OB_ENTRY_ACKED,   /* the sink has it; mark-published pending */
    OB_ENTRY_DEAD,    /* to dead-letter */
};

/* A set of key hashes (never 0), open-addressed. */
struct ob_hash_set {
    uint64_t *slot;
    size_t cap, n;
};

struct ob_entry {
    struct ob_record rec;     /* owned */
    enum ob_entry_state state;
    int attempts;             /* failed attempts that count toward relay.max_attempts */
    int64_t failures;         /* every failed attempt, for retryCount */
    int64_t next_at_ms;       /* monotonic; not before */
    char *last_error;         /* owned; NULL until something failed */
    bool too_large;           /* its sink said it is over the broker's size limit */
    uint64_t key_hash;
    int64_t read_at_ms;       /* monotonic, when the record was read */
    uint64_t id;              /* increasing in window order: finds the entry after it moved */
};

struct ob_window {
    struct ob_entry *v;
    size_t head, len, cap;    /* live entries are v[head..len) */
    enum ob_ordering ordering;
    size_t undone;            /* entries not DONE */
    size_t acked;             /* entries ACKED: delivered, not yet marked */
    uint64_t next_id;
    struct ob_hash_set seen;  /* scratch for ob_window_ready */
};

void ob_window_init(struct ob_window *w, enum ob_ordering ordering);
void ob_window_free(struct ob_window *w);

/* Appends a record (the window takes it over; *rec is zeroed). Its state
 * follows its kind: MESSAGE → PENDING, POISON → DEAD, SKIP → DONE. The
 * returned pointer is valid until the next push or advance. */
struct ob_entry *ob_window_push(struct ob_window *w, struct ob_record *rec, int64_t now_ms);

/* The entry with this id, or NULL when it is no longer in the window.
 * Entries move on push: what outlives a push keeps the id, not a pointer. */
struct ob_entry *ob_window_find(struct ob_window *w, uint64_t id);

/* Sets an entry's state, keeping the counts right. An entry made DONE
 * keeps only its sequence number: its message is freed. */
void ob_window_set_state(struct ob_window *w, struct ob_entry *e, enum ob_entry_state state);

/* Entries that may be sent now, in stream order, at most max: PENDING or
 * DEAD entries due by now_ms that the ordering rule allows —
 *   key:   the first undelivered entry of its pk (earlier PENDING/DEAD
 *          entries of the same pk hold later ones back);
 *   shard: only the first undelivered entry of the window;
 *   none:  any.
 * Returns the count; out[] pointers are valid until the next push or advance. */
size_t ob_window_ready(struct ob_window *w, int64_t now_ms, struct ob_entry **out, size_t max);

/* ACKED entries due by now_ms, at most max. */
size_t ob_window_acked(struct ob_window *w, int64_t now_ms, struct ob_entry **out, size_t max);

/* The earliest next_at_ms after now_ms of an entry waiting for time
 * (INT64_MAX: none). Entries already due are either picked or held back
 * by one that is not, so they need no wake-up of their own. */
int64_t ob_window_next_due(const struct ob_window *w, int64_t now_ms);

/* Drops the DONE entries at the head. Returns the sequence number of the
 * last one dropped (the new checkpoint), copied into seq (cap bytes), or
 * false when none was dropped. */
bool ob_window_advance(struct ob_window *w, char *seq, size_t cap);

static inline size_t ob_window_count(const struct ob_window *w)
{
    return w->len - w->head;
}

/* Which records written before this process started are delivered
 * again when a shard is resumed from a checkpoint. Before a crash or a
 * take-over the previous reader's marks may have landed in any order: a
 * key's later message marked, an earlier one not. Skipping every
 * published one would then deliver the earlier message after the later
 * one, and a consumer keeping the latest state would end on the older.
 * So once a key (the shard, with ordering: shard) has an unpublished
 * message among the old records, its later old messages go out again
 * even when published: the consumer sees the key's messages since its
 * last marked one again, in order. With ordering: none (and on a cold
 * start, SPEC §3) every published one is skipped. */
struct ob_replay {
    enum ob_ordering ordering;
    struct ob_hash_set replaying;
};

void ob_replay_init(struct ob_replay *rp, enum ob_ordering ordering);
void ob_replay_free(struct ob_replay *rp);

/* Decides for one old message, in stream order: true to deliver it.
 * published: the table says it is published (or dead-lettered). */
bool ob_replay_deliver(struct ob_replay *rp, const char *pk, bool published);

#endif
