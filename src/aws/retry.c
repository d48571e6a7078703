#include "aws/retry.h"

void ob_retry_policy_init(struct ob_retry_policy *p, int max_attempts, int64_t base_delay_ms,
                          int64_t max_delay_ms, uint64_t seed)
{
    p->max_attempts = max_attempts < 1 ? 1 : max_attempts;
    p->delay = (struct ob_backoff){ .initial_ms = base_delay_ms, .max_ms = max_delay_ms };
    p->quota = OB_RETRY_QUOTA_MAX;
    p->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    pthread_mutex_init(&p->lock, NULL);
}

void ob_retry_policy_destroy(struct ob_retry_policy *p)
{
    pthread_mutex_destroy(&p->lock);
}

static double next_fraction(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return ob_backoff_draw(x);
}

bool ob_retry_acquire(struct ob_retry_policy *p, int attempt, bool timeout, int *cost, int64_t *delay_ms)
{
    bool ok = false;
    int want = timeout ? OB_RETRY_TIMEOUT_COST : OB_RETRY_COST;
    pthread_mutex_lock(&p->lock);
    if (attempt >= p->max_attempts || p->quota < want)
        goto out;
    p->quota -= want;
    *cost += want;
    *delay_ms = ob_backoff_full_jitter_ms(&p->delay, attempt, next_fraction(&p->rng));
    ok = true;
out:
    pthread_mutex_unlock(&p->lock);
    return ok;
}

void ob_retry_on_success(struct ob_retry_policy *p, int cost)
{
    pthread_mutex_lock(&p->lock);
    p->quota += cost > 0 ? cost : OB_RETRY_NO_RETRY_INCREMENT;
    if (p->quota > OB_RETRY_QUOTA_MAX)
        p->quota = OB_RETRY_QUOTA_MAX;
    pthread_mutex_unlock(&p->lock);
}

int ob_retry_quota(struct ob_retry_policy *p)
{
    pthread_mutex_lock(&p->lock);
    int q = p->quota;
    pthread_mutex_unlock(&p->lock);
    return q;
}
