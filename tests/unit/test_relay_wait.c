/* The one wait of the relay's threads (ob_relay_wait): until a condition
 * holds, seen at each ob_relay_wake, or a monotonic deadline. */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "ops/clock.h"
#include "relay/relay_internal.h"
#include "test.h"

static void relay_init(struct ob_relay *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    ob_relay_cond_init(&r->wake);
}

static void relay_free(struct ob_relay *r)
{
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
}

struct waking {
    struct ob_relay *r;
    atomic_bool flag;
};

static bool flag_set(void *ctx)
{
    struct waking *w = ctx;
    return atomic_load(&w->flag);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* A wake-up before the flag is set, then the flag and another. */
static void *wake_twice(void *arg)
{
    struct waking *w = arg;
    sleep_ms(50);
    ob_relay_wake(w->r);
    sleep_ms(200);
    atomic_store(&w->flag, true);
    ob_relay_wake(w->r);
    return NULL;
}

TEST(a_wait_ends_at_its_deadline_when_its_condition_never_holds)
{
    struct ob_relay r;
    relay_init(&r);
    struct waking w = { .r = &r };
    int64_t t0 = ob_mono_ms();
    ob_relay_wait(&r, t0 + 150, flag_set, &w);
    int64_t took = ob_mono_ms() - t0;
    relay_free(&r);
    CHECK(took >= 150);
    CHECK(took < 10000);
}

TEST(a_wait_whose_condition_holds_does_not_wait)
{
    struct ob_relay r;
    relay_init(&r);
    struct waking w = { .r = &r };
    atomic_store(&w.flag, true);
    int64_t t0 = ob_mono_ms();
    ob_relay_wait(&r, t0 + 60000, flag_set, &w);
    int64_t took = ob_mono_ms() - t0;
    relay_free(&r);
    CHECK(took < 10000);
}

/* A wake-up whose condition does not hold yet leaves the wait waiting;
 * the one after the condition came ends it, long before its deadline. */
TEST(a_wait_ends_at_the_first_wake_up_that_finds_its_condition_held)
{
    struct ob_relay r;
    relay_init(&r);
    struct waking w = { .r = &r };
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, wake_twice, &w), 0);
    int64_t t0 = ob_mono_ms();
    ob_relay_wait(&r, t0 + 60000, flag_set, &w);
    int64_t took = ob_mono_ms() - t0;
    bool flag = atomic_load(&w.flag);
    pthread_join(t, NULL);
    relay_free(&r);
    CHECK(flag);
    CHECK(took < 30000);
}

/* What the coordinator waits for: any wake-up at all. */
TEST(each_wake_up_is_counted_for_waiters_that_wait_for_any)
{
    struct ob_relay r;
    relay_init(&r);
    unsigned long long before = atomic_load(&r.wakes);
    ob_relay_wake(&r);
    ob_relay_wake(&r);
    unsigned long long after = atomic_load(&r.wakes);
    relay_free(&r);
    CHECK_INT(after - before, 2);
}
