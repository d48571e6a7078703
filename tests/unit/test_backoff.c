/* The one backoff: exponential ceilings, full jitter below them, a floor. */
#include <limits.h>
#include <stdlib.h>

#include "core/backoff.h"
#include "test.h"

static const struct ob_backoff sdk = { .initial_ms = 25, .max_ms = 20000 };

TEST(the_ceiling_starts_at_initial_and_doubles_with_each_attempt)
{
    const struct ob_backoff b = { .initial_ms = 100, .max_ms = 30000 };
    CHECK_INT(ob_backoff_exponential_ms(&b, 1), 100);
    CHECK_INT(ob_backoff_exponential_ms(&b, 2), 200);
    CHECK_INT(ob_backoff_exponential_ms(&b, 3), 400);
    CHECK_INT(ob_backoff_exponential_ms(&b, 9), 25600);
}

TEST(the_ceiling_stops_at_max)
{
    const struct ob_backoff b = { .initial_ms = 100, .max_ms = 30000 };
    CHECK_INT(ob_backoff_exponential_ms(&b, 10), 30000);
    CHECK_INT(ob_backoff_exponential_ms(&b, 64), 30000);
    const struct ob_backoff above = { .initial_ms = 5000, .max_ms = 1000 };
    CHECK_INT(ob_backoff_exponential_ms(&above, 1), 1000);
}

TEST(an_attempt_below_one_counts_as_the_first)
{
    CHECK_INT(ob_backoff_exponential_ms(&sdk, 0), 25);
    CHECK_INT(ob_backoff_exponential_ms(&sdk, -3), 25);
}

TEST(huge_attempt_numbers_reach_max_without_overflow)
{
    const struct ob_backoff widest = { .initial_ms = 3, .max_ms = INT64_MAX };
    CHECK_INT(ob_backoff_exponential_ms(&widest, INT_MAX), INT64_MAX);
    CHECK(ob_backoff_full_jitter_ms(&widest, INT_MAX, 0.999999) > INT64_MAX / 2);
    CHECK_INT(ob_backoff_exponential_ms(&sdk, INT_MAX), 20000);
    const struct ob_backoff none = { .initial_ms = 0, .max_ms = 30000 };
    CHECK_INT(ob_backoff_exponential_ms(&none, INT_MAX), 0);
}

TEST(full_jitter_draws_below_the_attempts_ceiling)
{
    /* The SDKs' standard mode with DynamoDB's 25 ms base (aws/retry.c). */
    CHECK_INT(ob_backoff_full_jitter_ms(&sdk, 1, 0.999999), 24);
    CHECK_INT(ob_backoff_full_jitter_ms(&sdk, 2, 0.999999), 49);
    CHECK_INT(ob_backoff_full_jitter_ms(&sdk, 5, 0.5), 200);
    CHECK_INT(ob_backoff_full_jitter_ms(&sdk, 40, 0.999999), 19999);
    CHECK_INT(ob_backoff_full_jitter_ms(&sdk, 3, 0.0), 0);
}

TEST(the_floor_lifts_short_delays_only)
{
    const struct ob_backoff relay = { .initial_ms = 100, .max_ms = 30000, .floor_ms = 10 };
    CHECK_INT(ob_backoff_full_jitter_ms(&relay, 1, 0.0), 10);
    CHECK_INT(ob_backoff_full_jitter_ms(&relay, 1, 0.05), 10);
    CHECK_INT(ob_backoff_full_jitter_ms(&relay, 1, 0.5), 50);
    CHECK_INT(ob_backoff_full_jitter_ms(&relay, 3, 0.5), 200);
    const struct ob_backoff tiny = { .initial_ms = 0, .max_ms = 5, .floor_ms = 10 };
    CHECK_INT(ob_backoff_full_jitter_ms(&tiny, 4, 0.999999), 10);
    CHECK_INT(ob_backoff_exponential_ms(&tiny, 4), 10);
}

TEST(draws_from_random_bits_stay_below_one)
{
    CHECK(ob_backoff_draw(0) == 0.0);
    CHECK(ob_backoff_draw(UINT64_MAX) < 1.0);
    CHECK(ob_backoff_draw((uint64_t)1 << 63) == 0.5);
    const struct ob_backoff b = { .initial_ms = 1000, .max_ms = 1000 };
    CHECK_INT(ob_backoff_full_jitter_ms(&b, 1, ob_backoff_draw(UINT64_MAX)), 999);
}

TEST(drawn_delays_spread_over_floor_to_ceiling)
{
    const struct ob_backoff b = { .initial_ms = 100, .max_ms = 30000, .floor_ms = 10 };
    srandom(1);
    int64_t least = INT64_MAX, most = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t d = ob_backoff_ms(&b, 3);
        least = d < least ? d : least;
        most = d > most ? d : most;
    }
    CHECK(least >= 10 && least < 50);
    CHECK(most >= 350 && most < 400);
}

TEST(stepping_from_the_last_delay_follows_the_schedule)
{
    const struct ob_backoff b = { .initial_ms = 500, .max_ms = 30000 };
    int64_t d = 0;
    for (int attempt = 1; attempt <= 70; attempt++) {
        d = ob_backoff_next_ms(&b, d);
        CHECK_INT(d, ob_backoff_exponential_ms(&b, attempt));
    }
    CHECK_INT(d, 30000);
}
