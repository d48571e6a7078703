#include "core/token_bucket.h"

void ob_bucket_init(struct ob_token_bucket *b, double rate, double burst, int64_t now_ms)
{
    b->rate = rate;
    b->burst = burst > 0 ? burst : rate;
    b->tokens = b->burst;
    b->last_ms = now_ms;
}

static void refill(struct ob_token_bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
}

int64_t ob_bucket_take(struct ob_token_bucket *b, double n, int64_t now_ms)
{
    if (b->rate <= 0)
        return 0;
    refill(b, now_ms);
    b->tokens -= n;
    if (b->tokens >= 0)
        return 0;
    return (int64_t)(-b->tokens * 1000.0 / b->rate) + 1;
}

void ob_bucket_settle(struct ob_token_bucket *b, double delta)
{
    if (b->rate > 0)
        b->tokens -= delta;
}
