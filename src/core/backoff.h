/* The one backoff of every retry: attempt n (1-based) may wait up to
 * initial * 2^(n-1), that ceiling capped at max; full jitter draws the
 * delay uniformly below the ceiling (as the AWS SDKs' standard retry mode
 * does), and no delay is shorter than the floor. The schedule is pure, the
 * random draw an input; ob_backoff_ms is the thin wrapper that draws. */
#ifndef OB_CORE_BACKOFF_H
#define OB_CORE_BACKOFF_H

#include <stdint.h>

struct ob_backoff {
    int64_t initial_ms;  /* attempt 1's ceiling */
    int64_t max_ms;      /* no ceiling above it */
    int64_t floor_ms;    /* no delay below it, even a draw of 0: no hot retry loop */
};

/* Attempt `attempt`'s ceiling, min(max, initial * 2^(attempt-1)), at least
 * the floor: the delay of a schedule that does not jitter. An attempt
 * below 1 counts as 1; no attempt number overflows. */
int64_t ob_backoff_exponential_ms(const struct ob_backoff *b, int attempt);

/* Full jitter for a draw r in [0,1): r times attempt `attempt`'s ceiling,
 * at least the floor. Pure. */
int64_t ob_backoff_full_jitter_ms(const struct ob_backoff *b, int attempt, double r);

/* A draw in [0,1) from 64 random bits (their top 53, so that it stays
 * below 1 as a double). */
double ob_backoff_draw(uint64_t bits);

/* ob_backoff_full_jitter_ms with a draw from random(): thread-safe in
 * glibc, seeded by the daemon at start (relay.c). */
int64_t ob_backoff_ms(const struct ob_backoff *b, int attempt);

/* For a caller that keeps its last delay instead of counting attempts:
 * the delay after prev_ms in the schedule without jitter (prev_ms 0: the
 * first). */
int64_t ob_backoff_next_ms(const struct ob_backoff *b, int64_t prev_ms);

#endif
