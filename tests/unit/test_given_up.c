/* The items a process gave up unrecorded, which its sweeps skip. */
#include "relay/given_up.h"
#include "test.h"

TEST(an_item_is_remembered_by_its_exact_keys)
{
    struct ob_given_up g;
    ob_given_up_init(&g, 10);
    CHECK(ob_given_up_add(&g, "a", "bc"));
    CHECK(ob_given_up_has(&g, "a", "bc"));
    CHECK(!ob_given_up_has(&g, "ab", "c"));
    CHECK(!ob_given_up_has(&g, "a", "b"));
    CHECK(!ob_given_up_has(&g, "a", NULL));
    CHECK(ob_given_up_add(&g, "a", "bc")); /* again: still remembered, counted once */
    CHECK_INT(g.n, 1);
    ob_given_up_free(&g);
}

TEST(past_its_bound_it_remembers_no_more_and_keeps_what_it_has)
{
    struct ob_given_up g;
    char sk[16];
    ob_given_up_init(&g, 200);
    for (int i = 0; i < 200; i++) {
        snprintf(sk, sizeof sk, "m%d", i);
        CHECK(ob_given_up_add(&g, "k", sk));
    }
    CHECK(!ob_given_up_add(&g, "k", "one more"));
    CHECK(!ob_given_up_has(&g, "k", "one more"));
    for (int i = 0; i < 200; i++) {
        snprintf(sk, sizeof sk, "m%d", i);
        CHECK(ob_given_up_has(&g, "k", sk));
    }
    ob_given_up_free(&g);
}
