/* The relay's health check (SPEC §7): a worker is stuck when work waited
 * for relay.stuck_after without progress, not counting time spent waiting
 * for sinks; the coordinator when its loop is that late. */
#include <string.h>

#include "relay/health.h"
#include "test.h"

#define STUCK_AFTER 3000
#define T0 1000000 /* a monotonic time: never 0, which means "not paused" */

/* A lane as a worker starts it: nothing waits. */
static void idle(struct ob_lane *l)
{
    atomic_init(&l->paused_ms, 0);
    atomic_init(&l->due_ms, OB_LANE_IDLE);
}

TEST(a_lane_is_stuck_only_once_work_waited_stuck_after_without_progress)
{
    struct ob_lane l;
    idle(&l);
    ob_lane_set(&l, false, false, T0, STUCK_AFTER);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 100 * STUCK_AFTER), 0); /* nothing waits: never stuck */
    ob_lane_set(&l, true, false, T0, STUCK_AFTER);
    ob_lane_set(&l, true, false, T0 + 1000, STUCK_AFTER); /* still waiting: the due time stays */
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + STUCK_AFTER), 0);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + STUCK_AFTER + 1), 1);
    ob_lane_set(&l, false, false, T0 + STUCK_AFTER + 2, STUCK_AFTER);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 10 * STUCK_AFTER), 0);
}

TEST(progress_makes_the_next_progress_due_stuck_after_later)
{
    struct ob_lane l;
    idle(&l);
    ob_lane_set(&l, true, false, T0, STUCK_AFTER);
    ob_lane_set(&l, true, true, T0 + 2000, STUCK_AFTER);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 2000 + STUCK_AFTER), 0);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 2500 + STUCK_AFTER), 500);
}

TEST(time_waiting_for_sinks_does_not_count)
{
    struct ob_lane l;
    idle(&l);
    ob_lane_set(&l, true, false, T0, STUCK_AFTER);
    ob_lane_pause(&l, T0 + 1000);
    /* However long the sink takes, the lane stands where the pause began. */
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 60000), 0);
    ob_lane_resume(&l, T0 + 61000);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 61000 + 2000), 0);
    CHECK_INT(ob_lane_overdue_ms(&l, T0 + 61000 + 2000 + 1), 1);
    /* A lane already past due stays stuck during a sink call. */
    ob_lane_pause(&l, T0 + 70000);
    CHECK(ob_lane_overdue_ms(&l, T0 + 80000) > 0);
}

TEST(a_lane_that_waited_only_for_sinks_counts_afresh_after_each_wait)
{
    struct ob_lane l;
    idle(&l);
    ob_lane_set(&l, true, false, T0, STUCK_AFTER);
    /* An outage of any length: the worker's own turns between the waits never add up. */
    int64_t t = T0;
    for (int i = 0; i < 10000; i++) {
        ob_lane_pause(&l, t + 100);
        CHECK_INT(ob_lane_overdue_ms(&l, t + 30000), 0);
        ob_lane_restart(&l, t + 30000, STUCK_AFTER);
        t += 30000;
        ob_lane_set(&l, true, false, t + 10, STUCK_AFTER);
    }
    CHECK_INT(ob_lane_overdue_ms(&l, t + STUCK_AFTER), 0);
    CHECK_INT(ob_lane_overdue_ms(&l, t + STUCK_AFTER + 1), 1);
}

static size_t check(struct ob_health *h, int64_t now, struct ob_buf *why, bool *coordinator)
{
    ob_buf_reset(why);
    return ob_health_check(h, now, why, false, coordinator);
}

TEST(the_check_names_each_stuck_shard_and_forgets_a_released_one)
{
    struct ob_health h;
    ob_health_init(&h, STUCK_AFTER);
    struct ob_buf why = { 0 };
    bool coordinator;
    struct ob_shard_health *a = ob_health_claim(&h, "shardId-a");
    struct ob_shard_health *b = ob_health_claim(&h, "shardId-b");
    ob_lane_set(&a->delivering, true, false, T0, STUCK_AFTER);
    atomic_store(&a->undone, 7);
    ob_lane_set(&b->reading, true, false, T0 + 5000, STUCK_AFTER);
    CHECK_INT(check(&h, T0 + STUCK_AFTER, &why, &coordinator), 0);
    CHECK_INT(why.len, 0);
    CHECK_INT(check(&h, T0 + 4500, &why, &coordinator), 1);
    CHECK_STR(ob_buf_cstr(&why), "shard shardId-a is stuck: 7 messages waiting have not moved for 4.5 s\n");
    CHECK(!coordinator); /* not started: never late */
    CHECK_INT(check(&h, T0 + 9000, &why, &coordinator), 2);
    CHECK(strstr(ob_buf_cstr(&why), "shard shardId-b is stuck: reading the stream has not progressed for 4.0 s\n"));
    ob_health_release(a);
    CHECK_INT(check(&h, T0 + 9000, &why, &coordinator), 1);
    CHECK(!strstr(ob_buf_cstr(&why), "shardId-a"));
    /* A released slot serves the next worker, idle and under its own name. */
    struct ob_shard_health *c = ob_health_claim(&h, "shardId-c");
    CHECK(c == a);
    CHECK_INT(check(&h, T0 + 9000, &why, &coordinator), 1);
    ob_lane_set(&c->delivering, true, false, T0 + 9000, STUCK_AFTER);
    CHECK_INT(check(&h, T0 + 13000, &why, &coordinator), 2);
    CHECK(strstr(ob_buf_cstr(&why), "shard shardId-c is stuck"));
    ob_buf_free(&why);
    ob_health_free(&h);
}

TEST(the_coordinator_is_stuck_once_its_loop_is_stuck_after_late)
{
    struct ob_health h;
    ob_health_init(&h, STUCK_AFTER);
    struct ob_buf why = { 0 };
    bool coordinator;
    atomic_store(&h.coordinator_turn_ms, T0);
    CHECK_INT(check(&h, T0 + STUCK_AFTER, &why, &coordinator), 0);
    CHECK(!coordinator);
    check(&h, T0 + STUCK_AFTER + 500, &why, &coordinator);
    CHECK(coordinator);
    CHECK_STR(ob_buf_cstr(&why), "the lease coordinator's loop is 3.5 s late\n");
    ob_buf_free(&why);
    ob_health_free(&h);
}
