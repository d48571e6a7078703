/* A token bucket for capacity budgets (pure: the caller passes the time).
 * Takes may run into debt, so a caller learns how long to wait instead of
 * being refused, and consumption known only afterwards can be settled. */
#ifndef OB_CORE_TOKEN_BUCKET_H
#define OB_CORE_TOKEN_BUCKET_H

#include <stdint.h>

struct ob_token_bucket {
    double rate;      /* tokens per second; 0 = unlimited */
    double burst;     /* most tokens saved up */
    double tokens;
    int64_t last_ms;
};

void ob_bucket_init(struct ob_token_bucket *b, double rate, double burst, int64_t now_ms);
/* Takes n tokens; returns the milliseconds until the bucket is out of
 * debt again (0: go now). */
int64_t ob_bucket_take(struct ob_token_bucket *b, double n, int64_t now_ms);
/* Settles a take: delta tokens more (or, negative, fewer) were used. */
void ob_bucket_settle(struct ob_token_bucket *b, double delta);

#endif
