/* The SDKs' standard retry mode: backoff bounds and the retry quota. */
#include "test.h"

#include "aws/retry.h"

TEST(retry_delays_are_full_jitter_under_a_cap_doubling_from_the_base)
{
    struct ob_retry_policy p;
    ob_retry_policy_init(&p, 100, 25, 20000, 1);
    int64_t most_of_the_last = 0;
    for (int attempt = 1; attempt <= 12; attempt++) {
        int64_t cap = attempt <= 10 ? 25LL << (attempt - 1) : 20000;
        for (int i = 0; i < 8; i++) {
            int cost = 0;
            int64_t delay = -1;
            CHECK(ob_retry_acquire(&p, attempt, false, &cost, &delay));
            CHECK(delay >= 0 && delay < cap);
            if (attempt == 12 && delay > most_of_the_last)
                most_of_the_last = delay;
        }
    }
    CHECK(most_of_the_last > 12800); /* above attempt 10's cap: max bounds it, not the doubling */
    ob_retry_policy_destroy(&p);
}

TEST(retry_stops_at_max_attempts)
{
    struct ob_retry_policy p;
    ob_retry_policy_init(&p, 3, 25, 20000, 1);
    int cost = 0;
    int64_t delay;
    CHECK(ob_retry_acquire(&p, 1, false, &cost, &delay));
    CHECK(ob_retry_acquire(&p, 2, false, &cost, &delay));
    CHECK(!ob_retry_acquire(&p, 3, false, &cost, &delay));
    CHECK_INT(cost, 2 * OB_RETRY_COST);
    ob_retry_policy_destroy(&p);
}

TEST(retry_quota_empties_under_a_storm_and_refills_on_success)
{
    struct ob_retry_policy p;
    ob_retry_policy_init(&p, 1000, 1, 1, 1);
    int granted = 0;
    int64_t delay;
    for (int i = 0; i < 1000; i++) {
        int cost = 0;
        if (ob_retry_acquire(&p, 1, false, &cost, &delay))
            granted++;
    }
    CHECK_INT(granted, OB_RETRY_QUOTA_MAX / OB_RETRY_COST);
    CHECK_INT(ob_retry_quota(&p), 0);
    int cost = 0;
    CHECK(!ob_retry_acquire(&p, 1, false, &cost, &delay));
    ob_retry_on_success(&p, 0);
    CHECK_INT(ob_retry_quota(&p), OB_RETRY_NO_RETRY_INCREMENT);
    ob_retry_on_success(&p, 10);
    CHECK_INT(ob_retry_quota(&p), 11);
    ob_retry_policy_destroy(&p);
}

TEST(timeouts_cost_more_quota_than_other_retries)
{
    struct ob_retry_policy p;
    ob_retry_policy_init(&p, 10, 1, 1, 1);
    int cost = 0;
    int64_t delay;
    CHECK(ob_retry_acquire(&p, 1, true, &cost, &delay));
    CHECK_INT(cost, OB_RETRY_TIMEOUT_COST);
    CHECK_INT(ob_retry_quota(&p), OB_RETRY_QUOTA_MAX - OB_RETRY_TIMEOUT_COST);
    ob_retry_policy_destroy(&p);
}
