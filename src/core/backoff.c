#include "core/backoff.h"

#include <stdlib.h>

/* min(max, initial * 2^(attempt-1)), 0 when either is not positive. A
 * ceiling past half of max goes straight to max: doubling it could
 * overflow, and once at max the loop ends, so it runs at most 63 times
 * whatever the attempt number. */
static int64_t ceiling(const struct ob_backoff *b, int attempt)
{
    int64_t max = b->max_ms > 0 ? b->max_ms : 0;
    int64_t c = b->initial_ms < max ? b->initial_ms : max;
    if (c <= 0)
        return 0;
    for (int i = 1; i < attempt && c < max; i++)
        c = c > max / 2 ? max : c * 2;
    return c;
}

static int64_t at_least_floor(const struct ob_backoff *b, int64_t d)
{
    return d < b->floor_ms ? b->floor_ms : d;
}

int64_t ob_backoff_exponential_ms(const struct ob_backoff *b, int attempt)
{
    return at_least_floor(b, ceiling(b, attempt));
}

int64_t ob_backoff_full_jitter_ms(const struct ob_backoff *b, int attempt, double r)
{
    return at_least_floor(b, (int64_t)(r * (double)ceiling(b, attempt)));
}

double ob_backoff_draw(uint64_t bits)
{
    return (double)(bits >> 11) / 9007199254740992.0; /* 2^53 */
}

int64_t ob_backoff_ms(const struct ob_backoff *b, int attempt)
{
    /* random() gives 31 bits: two fill the top 62. */
    uint64_t bits = (uint64_t)random() << 33 | (uint64_t)random() << 2;
    return ob_backoff_full_jitter_ms(b, attempt, ob_backoff_draw(bits));
}

int64_t ob_backoff_next_ms(const struct ob_backoff *b, int64_t prev_ms)
{
    if (prev_ms <= 0)
        return ob_backoff_exponential_ms(b, 1);
    /* The last delay is the ceiling of its attempt: the next one doubles it. */
    const struct ob_backoff from_prev = { prev_ms, b->max_ms, b->floor_ms };
    return ob_backoff_exponential_ms(&from_prev, 2);
}
