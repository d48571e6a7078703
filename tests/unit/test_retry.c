/* The SDKs' standard retry mode: backoff bounds and the retry quota. */
#include "test.h"

#include "aws/retry.h"

TEST(backoff_is_full_jitter_under_an_exponential_cap)
{
    CHECK_INT(ob_retry_backoff_ms(25, 20000, 1, 0.999999), 24);
    CHECK_INT(ob_retry_backoff_ms(25, 20000, 2, 0.999999), 49);
    CHECK_INT(ob_retry_backoff_ms(25, 20000, 5, 0.5), 200);
    CHECK_INT(ob_retry_backoff_ms(25, 20000, 40, 0.999999), 19999);
    CHECK_INT(ob_retry_backoff_ms(25, 20000, 3, 0.0), 0);
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
