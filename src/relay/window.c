#include "relay/window.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* FNV-1a; 0 is kept free as the empty slot of a hash set. Two keys may
 * share a hash: they then keep order between each other too. */
static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

void ob_window_init(struct ob_window *w, enum ob_ordering ordering)
{
    memset(w, 0, sizeof *w);
    w->ordering = ordering;
}

/* Empties the set, sized for at least n keys without growing. */
static void hash_set_clear(struct ob_hash_set *hs, size_t n)
{
    size_t need = 16;
    while (need < 2 * n + 2)
        need *= 2;
    if (need > hs->cap) {
        free(hs->slot);
        hs->slot = ob_xmalloc(need * sizeof *hs->slot);
        hs->cap = need;
    }
    memset(hs->slot, 0, hs->cap * sizeof *hs->slot);
    hs->n = 0;
}

static bool hash_set_has(const struct ob_hash_set *hs, uint64_t h)
{
    if (hs->cap == 0)
        return false;
    size_t mask = hs->cap - 1;
    for (size_t i = h & mask; hs->slot[i]; i = (i + 1) & mask)
        if (hs->slot[i] == h)
            return true;
    return false;
}

/* Adds h (not 0); false when it was there. Grows at half full. */
static bool hash_set_insert(struct ob_hash_set *hs, uint64_t h)
{
    if (2 * (hs->n + 1) > hs->cap) {
        struct ob_hash_set old = *hs;
        *hs = (struct ob_hash_set){ 0 };
        hash_set_clear(hs, old.n + 1);
        for (size_t i = 0; i < old.cap; i++)
            if (old.slot[i])
                hash_set_insert(hs, old.slot[i]);
        free(old.slot);
    }
    size_t mask = hs->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (hs->slot[i] == h)
            return false;
        if (hs->slot[i] == 0) {
            hs->slot[i] = h;
            hs->n++;
            return true;
        }
    }
}

static void entry_free(struct ob_entry *e)
{
    ob_record_free(&e->rec);
    free(e->last_error);
}

void ob_window_free(struct ob_window *w)
{
    for (size_t i = w->head; i < w->len; i++)
        entry_free(&w->v[i]);
    free(w->v);
    free(w->seen.slot);
    memset(w, 0, sizeof *w);
}

/* Moves the live entries to the front, keeping of each run of done
 * entries only the last: the checkpoint only ever needs the sequence
 * number before the first entry that is not done, and a key that waits
 * must not make the window hold every entry read after it. */
static void compact(struct ob_window *w)
{
    size_t out = 0;
    for (size_t i = w->head; i < w->len; i++) {
        struct ob_entry *e = &w->v[i];
        if (e->state == OB_ENTRY_DONE && i + 1 < w->len && w->v[i + 1].state == OB_ENTRY_DONE) {
            entry_free(e);
            continue;
        }
        if (out != i)
            w->v[out] = *e;
        out++;
    }
    w->head = 0;
    w->len = out;
}

struct ob_entry *ob_window_push(struct ob_window *w, struct ob_record *rec, int64_t now_ms)
{
    if (w->len == w->cap) {
        compact(w);
        /* Grow when compacting freed little, so pushes stay O(1) on average. */
        if (w->len == w->cap || w->len > w->cap / 2) {
            w->cap = w->cap ? w->cap * 2 : 256;
            w->v = ob_xrealloc(w->v, w->cap * sizeof *w->v);
        }
    }
    struct ob_entry *e = &w->v[w->len++];
    memset(e, 0, sizeof *e);
    e->rec = *rec;
    memset(rec, 0, sizeof *rec);
    e->id = ++w->next_id;
    e->key_hash = key_hash(e->rec.msg.pk);
    e->read_at_ms = now_ms;
    e->next_at_ms = now_ms;
    switch (e->rec.kind) {
    case OB_RECORD_MESSAGE: e->state = OB_ENTRY_PENDING; break;
    case OB_RECORD_POISON: e->state = OB_ENTRY_DEAD; break;
    default: e->state = OB_ENTRY_DONE; break;
    }
    if (e->state != OB_ENTRY_DONE)
        w->undone++;
    return e;
}

/* A done entry only holds its place for the checkpoint: its message goes
 * now, not when the head passes it (a blocked key can keep thousands of
 * done entries behind it). */
static void entry_shed(struct ob_entry *e)
{
    char *seq = e->rec.msg.sequence_number;
    e->rec.msg.sequence_number = NULL;
    entry_free(e);
    e->last_error = NULL;
    memset(&e->rec, 0, sizeof e->rec);
    e->rec.msg.sequence_number = seq;
}

struct ob_entry *ob_window_find(struct ob_window *w, uint64_t id)
{
    size_t lo = w->head, hi = w->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->len && w->v[lo].id == id ? &w->v[lo] : NULL;
}

void ob_window_set_state(struct ob_window *w, struct ob_entry *e, enum ob_entry_state state)
{
    if (e->state != OB_ENTRY_DONE && state == OB_ENTRY_DONE) {
        entry_shed(e);
        w->undone--;
    } else if (e->state == OB_ENTRY_DONE && state != OB_ENTRY_DONE) {
        w->undone++;
    }
    w->acked += (state == OB_ENTRY_ACKED) - (e->state == OB_ENTRY_ACKED);
    e->state = state;
}

static bool undelivered(const struct ob_entry *e)
{
    return e->state == OB_ENTRY_PENDING || e->state == OB_ENTRY_DEAD;
}

/* Two keys may share a hash: they then wait for each other, which keeps
 * order and costs at most some parallelism. */
size_t ob_window_ready(struct ob_window *w, int64_t now_ms, struct ob_entry **out, size_t max)
{
    size_t n = 0, waiting = 0;
    if (w->ordering == OB_ORDER_KEY)
        hash_set_clear(&w->seen, w->undone);
    for (size_t i = w->head; i < w->len && n < max && waiting < w->undone; i++) {
        struct ob_entry *e = &w->v[i];
        if (e->state == OB_ENTRY_DONE)
            continue;
        waiting++;
        if (!undelivered(e))
            continue;
        bool first = true;
        if (w->ordering == OB_ORDER_KEY)
            first = hash_set_insert(&w->seen, e->key_hash);
        if (first && e->next_at_ms <= now_ms)
            out[n++] = e;
        if (w->ordering == OB_ORDER_SHARD)
            break;
    }
    return n;
}

size_t ob_window_acked(struct ob_window *w, int64_t now_ms, struct ob_entry **out, size_t max)
{
    size_t n = 0;
    for (size_t i = w->head; i < w->len && n < max; i++) {
        struct ob_entry *e = &w->v[i];
        if (e->state == OB_ENTRY_ACKED && e->next_at_ms <= now_ms)
            out[n++] = e;
    }
    return n;
}

int64_t ob_window_next_due(const struct ob_window *w, int64_t now_ms)
{
    int64_t due = INT64_MAX;
    for (size_t i = w->head; i < w->len; i++) {
        const struct ob_entry *e = &w->v[i];
        if (e->state != OB_ENTRY_DONE && e->next_at_ms > now_ms && e->next_at_ms < due)
            due = e->next_at_ms;
    }
    return due;
}

bool ob_window_advance(struct ob_window *w, char *seq, size_t cap)
{
    bool moved = false;
    while (w->head < w->len && w->v[w->head].state == OB_ENTRY_DONE) {
        struct ob_entry *e = &w->v[w->head++];
        const char *s = e->rec.msg.sequence_number;
        if (s && strlen(s) < cap) {
            strcpy(seq, s);
            moved = true;
        }
        entry_free(e);
    }
    if (w->head == w->len)
        w->head = w->len = 0;
    return moved;
}

void ob_replay_init(struct ob_replay *rp, enum ob_ordering ordering)
{
    memset(rp, 0, sizeof *rp);
    rp->ordering = ordering;
}

void ob_replay_free(struct ob_replay *rp)
{
    free(rp->replaying.slot);
    memset(rp, 0, sizeof *rp);
}

bool ob_replay_deliver(struct ob_replay *rp, const char *pk, bool published)
{
    if (rp->ordering == OB_ORDER_NONE)
        return !published;
    uint64_t h = rp->ordering == OB_ORDER_KEY ? key_hash(pk) : 1;
    if (!published) {
        hash_set_insert(&rp->replaying, h);
        return true;
    }
    return hash_set_has(&rp->replaying, h);
}
