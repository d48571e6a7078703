#include "relay/given_up.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "dynamo/mark.h"
#include "ops/log.h"

struct given_up_item {
    struct given_up_item *next;
    uint64_t hash;
    size_t pk_len;
    char keys[];                     /* pk, '\0', sk, '\0' */
};

void ob_given_up_init(struct ob_given_up *g, size_t max)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->lock, NULL);
    g->max = max;
}

void ob_given_up_free(struct ob_given_up *g)
{
    for (size_t i = 0; i < g->n_buckets; i++)
        while (g->buckets[i]) {
            struct given_up_item *it = g->buckets[i];
            g->buckets[i] = it->next;
            free(it);
        }
    free(g->buckets);
    pthread_mutex_destroy(&g->lock);
    memset(g, 0, sizeof *g);
}

/* The item, under the lock; NULL when not there. */
static struct given_up_item *find(const struct ob_given_up *g, uint64_t hash, const char *pk, const char *sk)
{
    if (!g->n_buckets)
        return NULL;
    for (struct given_up_item *it = g->buckets[hash % g->n_buckets]; it; it = it->next)
        if (it->hash == hash && strcmp(it->keys, pk) == 0 && strcmp(it->keys + it->pk_len + 1, sk) == 0)
            return it;
    return NULL;
}

/* Doubles the buckets (64 at first), under the lock. */
static void grow(struct ob_given_up *g)
{
    size_t n = g->n_buckets ? 2 * g->n_buckets : 64;
    struct given_up_item **b = ob_xcalloc(n, sizeof *b);
    for (size_t i = 0; i < g->n_buckets; i++)
        while (g->buckets[i]) {
            struct given_up_item *it = g->buckets[i];
            g->buckets[i] = it->next;
            it->next = b[it->hash % n];
            b[it->hash % n] = it;
        }
    free(g->buckets);
    g->buckets = b;
    g->n_buckets = n;
}

bool ob_given_up_add(struct ob_given_up *g, const char *pk, const char *sk)
{
    size_t pk_len = strlen(pk), sk_len = strlen(sk);
    uint64_t hash = ob_item_key_hash(pk, pk_len, sk, sk_len);
    bool added = true;
    pthread_mutex_lock(&g->lock);
    if (find(g, hash, pk, sk))
        goto out;
    if (g->n >= g->max) {
        if (!g->full)
            ob_log_error("%zu items given up unrecorded are remembered, no more: a sweep may deliver the next ones "
                         "again", g->max);
        g->full = true;
        added = false;
        goto out;
    }
    if (g->n >= g->n_buckets)
        grow(g);
    struct given_up_item *it = ob_xmalloc(sizeof *it + pk_len + sk_len + 2);
    it->hash = hash;
    it->pk_len = pk_len;
    memcpy(it->keys, pk, pk_len + 1);
    memcpy(it->keys + pk_len + 1, sk, sk_len + 1);
    it->next = g->buckets[hash % g->n_buckets];
    g->buckets[hash % g->n_buckets] = it;
    g->n++;
out:
    pthread_mutex_unlock(&g->lock);
    return added;
}

bool ob_given_up_has(struct ob_given_up *g, const char *pk, const char *sk)
{
    if (!pk || !sk)
        return false;
    uint64_t hash = ob_item_key_hash(pk, strlen(pk), sk, strlen(sk));
    pthread_mutex_lock(&g->lock);
    bool has = find(g, hash, pk, sk) != NULL;
    pthread_mutex_unlock(&g->lock);
    return has;
}
