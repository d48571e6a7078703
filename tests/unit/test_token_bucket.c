/* Capacity budgets: the token bucket. */
#include "core/token_bucket.h"
#include "test.h"

TEST(a_full_bucket_lets_a_burst_through_then_paces_at_the_rate)
{
    struct ob_token_bucket b;
    ob_bucket_init(&b, 50, 50, 0);
    CHECK_INT((int)ob_bucket_take(&b, 50, 0), 0);
    CHECK_INT((int)ob_bucket_take(&b, 10, 0), 201); /* 10 tokens of debt at 50/s */
    CHECK_INT((int)ob_bucket_take(&b, 0, 100), 101);
    CHECK_INT((int)ob_bucket_take(&b, 0, 200), 0);
}

TEST(over_a_long_run_takes_average_the_rate)
{
    struct ob_token_bucket b;
    ob_bucket_init(&b, 50, 50, 0);
    int64_t now = 0;
    double taken = 0;
    while (now < 20000) {
        int64_t wait = ob_bucket_take(&b, 4, now);
        taken += 4;
        now += wait;
    }
    CHECK(taken / 20.0 <= 50 * 1.05 + 50 / 20.0);
    CHECK(taken / 20.0 >= 50 * 0.95);
}

TEST(settling_charges_what_was_really_consumed)
{
    struct ob_token_bucket b;
    ob_bucket_init(&b, 10, 10, 0);
    CHECK_INT((int)ob_bucket_take(&b, 5, 0), 0);
    ob_bucket_settle(&b, 10); /* the writes cost 15 units, not 5 */
    CHECK_INT((int)ob_bucket_take(&b, 0, 0), 501);
}

TEST(a_zero_rate_is_unlimited)
{
    struct ob_token_bucket b;
    ob_bucket_init(&b, 0, 0, 0);
    CHECK_INT((int)ob_bucket_take(&b, 1e9, 0), 0);
}
