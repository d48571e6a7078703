/* The items this process gave up unrecorded: delivered (or dead-lettered)
 * while DynamoDB refused every write of their record for good, so the
 * table still shows them unpublished and not dead-lettered, which is what
 * the sweeper selects. Remembering them keeps each sweep from delivering
 * such an item again (SPEC §3: no permanent DynamoDB error repeats a
 * delivery in a loop): within a process it goes out once; after a restart
 * a sweep may deliver it once more. Keyed by the exact (pk, sk): a hash
 * alone could make another item look given up, and skip it. Bounded;
 * thread-safe. */
#ifndef OB_RELAY_GIVEN_UP_H
#define OB_RELAY_GIVEN_UP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* Items remembered at most: beyond, a sweep may deliver one again. */
#define OB_GIVEN_UP_MAX 100000

struct given_up_item;

struct ob_given_up {
    pthread_mutex_t lock;
    struct given_up_item **buckets;  /* chained by hash; NULL until the first item */
    size_t n_buckets, n, max;
    bool full;                       /* an item found it full (said once) */
};

void ob_given_up_init(struct ob_given_up *g, size_t max);
void ob_given_up_free(struct ob_given_up *g);

/* Remembers the item (pk, sk). False when it is not remembered: the set
 * is full (logged once). */
bool ob_given_up_add(struct ob_given_up *g, const char *pk, const char *sk);

/* Whether the item (pk, sk) was given up (NULL keys: no). */
bool ob_given_up_has(struct ob_given_up *g, const char *pk, const char *sk);

#endif
