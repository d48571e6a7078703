/* The AWS SDKs' "standard" retry mode: capped exponential backoff with full
 * jitter, a maximum number of attempts, and a token-bucket retry quota that
 * stops retry storms when a service is down (a retry costs 5 tokens, one
 * after a timeout 10; a success refunds what its retries took, or 1).
 * One quota per client, shared by its threads. */
#ifndef OB_AWS_RETRY_H
#define OB_AWS_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/backoff.h"

#define OB_RETRY_QUOTA_MAX 500
#define OB_RETRY_COST 5
#define OB_RETRY_TIMEOUT_COST 10
#define OB_RETRY_NO_RETRY_INCREMENT 1

struct ob_retry_policy {
    int max_attempts;        /* total attempts, >= 1 */
    struct ob_backoff delay; /* base and max delay, full jitter */
    pthread_mutex_t lock;
    int quota;               /* tokens left */
    uint64_t rng;            /* xorshift state for jitter */
};

void ob_retry_policy_init(struct ob_retry_policy *p, int max_attempts, int64_t base_delay_ms,
                          int64_t max_delay_ms, uint64_t seed);
void ob_retry_policy_destroy(struct ob_retry_policy *p);

/* Asks to retry after failed attempt number `attempt` (1-based). On yes,
 * takes the quota cost, stores it in *cost (to refund on success) and the
 * delay in *delay_ms. No when attempts are used up or the quota is empty. */
bool ob_retry_acquire(struct ob_retry_policy *p, int attempt, bool timeout, int *cost, int64_t *delay_ms);

/* After a successful response: refunds `cost` (what this request's retries
 * took) or, when it needed none, adds the no-retry increment. */
void ob_retry_on_success(struct ob_retry_policy *p, int cost);

int ob_retry_quota(struct ob_retry_policy *p);

#endif
