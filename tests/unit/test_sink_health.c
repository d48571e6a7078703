/* A sink's health as every shard worker shares it: while the sink is down
 * one probe at a time tests it, whatever the other threads see meanwhile. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "ops/clock.h"
#include "ops/log.h"
#include "relay/sink_health.h"
#include "test.h"

#define THREADS 8
#define ROUNDS 50
#define SENDS 2000

struct bench {
    struct ob_config cfg;
    struct ob_sink_health h;
    atomic_llong clock;      /* a fake monotonic clock: every admission moves it on */
    atomic_bool flapping;
};

static void health_init(struct ob_sink_health *h)
{
    memset(h, 0, sizeof *h);
    atomic_init(&h->up, true);
}

static const struct ob_delivery retry = { .result = OB_DELIVERY_RETRY };

static void fail_until_down(struct ob_sink_health *h)
{
    while (atomic_load(&h->up))
        ob_sink_failed_retriably(h, &retry, 0);
}

/* What a shard worker does with one message: admission, the send (the
 * sink answers every other one), the probe's outcome. */
static void *worker(void *arg)
{
    struct bench *b = arg;
    for (int i = 0; i < SENDS; i++) {
        int64_t now = atomic_fetch_add(&b->clock, 5), retry_at;
        bool probe;
        if (ob_sink_admit(&b->cfg, &b->h, 1, now, &retry_at, &probe) == 0)
            continue;
        bool answered = i % 2;
        if (probe)
            ob_sink_probed(&b->cfg, &b->h, answered, 1, now);
        if (answered)
            ob_sink_answered(&b->h);
        else
            ob_sink_failed_retriably(&b->h, &retry, 0);
    }
    return NULL;
}

/* The sink comes and goes as fast as it can. */
static void *flapper(void *arg)
{
    struct bench *b = arg;
    while (atomic_load(&b->flapping)) {
        fail_until_down(&b->h);
        ob_sink_answered(&b->h);
    }
    return NULL;
}

TEST(a_sink_that_flaps_while_threads_send_to_it_can_always_be_probed_once_it_is_down)
{
    static struct bench b;
    ob_log_setup(OB_SEV_ERROR, 0);
    b.cfg.relay.backoff_initial_ms = 1;
    b.cfg.relay.backoff_max_ms = 1;
    for (int round = 0; round < ROUNDS; round++) {
        health_init(&b.h);
        atomic_store(&b.flapping, true);
        pthread_t t[THREADS], f;
        pthread_create(&f, NULL, flapper, &b);
        for (int i = 0; i < THREADS; i++)
            pthread_create(&t[i], NULL, worker, &b);
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
        atomic_store(&b.flapping, false);
        pthread_join(f, NULL);
        /* Everyone is gone: no probe is out, so the next one may go. */
        fail_until_down(&b.h);
        int64_t retry_at;
        bool probe;
        size_t admitted = ob_sink_admit(&b.cfg, &b.h, 1, INT64_MAX / 2, &retry_at, &probe);
        if (admitted != 1 || !probe)
            ob_test_fail(__FILE__, __LINE__, "round %d: no probe admitted (admitted %zu, probe %d): "
                         "a probe is held that nobody sends", round, admitted, probe);
        if (admitted != 1 || !probe)
            return;
        ob_sink_probed(&b.cfg, &b.h, true, 1, INT64_MAX / 2);
    }
}

TEST(while_a_sink_is_down_one_message_probes_it_and_the_others_wait_for_the_next_probe)
{
    struct ob_config cfg = { 0 };
    cfg.relay.backoff_initial_ms = 100;
    cfg.relay.backoff_max_ms = 100;
    struct ob_sink_health h;
    health_init(&h);
    int64_t retry_at;
    bool probe;
    CHECK_INT(ob_sink_admit(&cfg, &h, 5, 1000, &retry_at, &probe), 5);
    CHECK(!probe);
    fail_until_down(&h);
    CHECK_INT(ob_sink_admit(&cfg, &h, 5, 1000, &retry_at, &probe), 1);
    CHECK(probe);
    CHECK_INT(ob_sink_admit(&cfg, &h, 5, 1000, &retry_at, &probe), 0);
    CHECK_INT(retry_at, 1100);
    ob_sink_probed(&cfg, &h, false, 1, 1000);
    CHECK_INT(ob_sink_admit(&cfg, &h, 5, 1005, &retry_at, &probe), 0);
    CHECK(retry_at > 1005 && retry_at <= 1100);
    CHECK_INT(ob_sink_admit(&cfg, &h, 5, 1100, &retry_at, &probe), 1);
    CHECK(probe);
}

TEST(a_retriable_failure_counts_toward_max_attempts_only_when_the_sink_answered_another_attempt_meanwhile)
{
    struct ob_sink_health h;
    health_init(&h);
    int64_t sent_at = ob_mono_ms();
    CHECK(!ob_sink_failed_retriably(&h, &retry, sent_at)); /* nothing answered: the sink may be down */
    ob_sink_answered(&h);
    CHECK(ob_sink_failed_retriably(&h, &retry, sent_at));  /* it answered another one: this message fails */
    CHECK(atomic_load(&h.up));
}

TEST(a_sink_is_down_after_three_retriable_failures_in_a_row_and_at_once_when_it_cannot_be_reached)
{
    struct ob_sink_health h;
    health_init(&h);
    ob_sink_failed_retriably(&h, &retry, 0);
    ob_sink_failed_retriably(&h, &retry, 0);
    CHECK(atomic_load(&h.up));
    ob_sink_failed_retriably(&h, &retry, 0);
    CHECK(!atomic_load(&h.up));
    ob_sink_answered(&h);
    CHECK(atomic_load(&h.up));
    struct ob_delivery refused = { .result = OB_DELIVERY_RETRY, .unreachable = true };
    CHECK(!ob_sink_failed_retriably(&h, &refused, 0));
    CHECK(!atomic_load(&h.up));
}

TEST(a_message_whose_own_destination_cannot_be_reached_waits_for_it_alone_without_counting)
{
    struct ob_sink_health h;
    health_init(&h);
    struct ob_delivery elsewhere = { .result = OB_DELIVERY_RETRY, .destination_unreachable = true };
    for (int i = 0; i < 5; i++)
        CHECK(!ob_sink_failed_retriably(&h, &elsewhere, 0)); /* an outage of that host: never counts */
    CHECK(atomic_load(&h.up));                              /* nor takes the sink down */
    CHECK_INT(atomic_load(&h.consecutive_retry), 0);
}

TEST(the_message_of_a_failed_probe_is_known_so_that_another_one_probes_next)
{
    struct ob_config cfg = { 0 };
    cfg.relay.backoff_initial_ms = 100;
    cfg.relay.backoff_max_ms = 100;
    struct ob_sink_health h;
    health_init(&h);
    fail_until_down(&h);
    int64_t retry_at;
    bool probe;
    CHECK_INT(ob_sink_admit(&cfg, &h, 2, 1000, &retry_at, &probe), 1);
    ob_sink_probed(&cfg, &h, false, 42, 1000);
    CHECK(ob_sink_probe_failed_last(&h, 42));
    CHECK(!ob_sink_probe_failed_last(&h, 43));
    CHECK_INT(ob_sink_admit(&cfg, &h, 2, 1100, &retry_at, &probe), 1);
    ob_sink_probed(&cfg, &h, true, 43, 1100);
    CHECK(!ob_sink_probe_failed_last(&h, 42));
}
