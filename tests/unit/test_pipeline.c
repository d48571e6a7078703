/* The delivery pipeline against a fake DynamoDB (fake_item_writer.c) and a
 * fake sink: what becomes of a message whose mark fails, is throttled,
 * comes late or finds the item published, and where the checkpoint (the
 * window's low watermark) may go meanwhile. Time is the test's: each wave
 * runs a second after the last. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "dynamo/item_writes.h"
#include "fake_item_writer.h"
#include "ops/clock.h"
#include "ops/metrics.h"
#include "relay/pipeline.h"
#include "test.h"

static const char config_yaml[] = "aws: { region: us-east-1, endpoint: \"http://127.0.0.1:9\" }\n"
                                  "table: { name: outbox }\n"
                                  "relay: { max_in_flight: 8, max_attempts: 3 }\n"
                                  "sinks:\n"
                                  "  - { name: fake, type: stdout }\n"
                                  "default_sink: fake\n";

/* ---- the fake sink: acknowledges every message unless told otherwise ---- */

#define MAX_SENT 256

static struct {
    char sk[MAX_SENT][64];
    size_t n;
    char refused[64];                /* a message the sink answers with `answer` */
    enum ob_delivery_result answer;
    bool too_large;                  /* the answer says the message is over the broker's limit */
    int times;                       /* left; -1: every time */
} sent;

/* The sink answers the next `times` deliveries of sk (-1: every one) with result. */
static void sink_answers(const char *sk, enum ob_delivery_result result, int times)
{
    snprintf(sent.refused, sizeof sent.refused, "%s", sk);
    sent.answer = result;
    sent.times = times;
}

static void fake_publish(void *state, struct ob_delivery *batch, size_t n)
{
    (void)state;
    for (size_t i = 0; i < n; i++) {
        if (sent.n < MAX_SENT)
            snprintf(sent.sk[sent.n++], sizeof sent.sk[0], "%s", batch[i].msg->sk);
        batch[i].result = OB_DELIVERY_ACK;
        if (sent.times != 0 && strcmp(sent.refused, batch[i].msg->sk) == 0) {
            sent.times -= sent.times > 0;
            batch[i].result = sent.answer;
            batch[i].too_large = sent.too_large;
            snprintf(batch[i].error, sizeof batch[i].error, "HTTP 400 (fake)");
        }
    }
}

static const struct ob_sink_ops fake_sink_ops = { .schema = { .type = "fake" }, .publish = fake_publish };

/* How many times the sink was sent the message sk. */
static int sent_count(const char *sk)
{
    int k = 0;
    for (size_t i = 0; i < sent.n; i++)
        k += strcmp(sent.sk[i], sk) == 0;
    return k;
}

/* ---- a relay of one pipeline ------------------------------------------ */

struct harness {
    struct ob_config *cfg;
    struct ob_relay relay;
    struct ob_routing routing;
    struct ob_sink sink;
    struct ob_sink *sinks[1];
    struct ob_sink_health health;
    struct ob_pipeline p;
    int64_t now;
    char checkpoint[64];             /* the last low watermark, "" before one */
};

static void wait_until(void *ctx, int64_t until_ms)
{
    (void)ctx, (void)until_ms;
}

static bool harness_init(struct harness *h)
{
    struct ob_config_diag diag = { 0 };
    memset(h, 0, sizeof *h);
    if (ob_config_load_string("pipeline.yaml", config_yaml, strlen(config_yaml), &ob_sinks, &h->cfg, &diag)) {
        ob_config_diag_free(&diag);
        return false;
    }
    fake_writes_reset();
    memset(&sent, 0, sizeof sent);
    h->relay.cfg = h->cfg;
    pthread_mutex_init(&h->relay.routing_lock, NULL);
    ob_given_up_init(&h->relay.given_up, 100);
    h->sink = (struct ob_sink){ .ops = &fake_sink_ops, .name = "fake" };
    h->sinks[0] = &h->sink;
    atomic_init(&h->routing.refs, 1); /* the harness's: never destroyed by a wave */
    h->routing.cfg = h->cfg;
    h->routing.sinks = h->sinks;
    h->routing.health = &h->health;
    h->relay.routing = &h->routing;
    atomic_init(&h->health.up, true);
    h->health.delivered = ob_metric_series("outboxd_messages_delivered_total", "sink=\"fake\"");
    h->health.failed = ob_metric_series("outboxd_messages_failed_total", "sink=\"fake\"");
    h->health.latency = ob_metric_series("outboxd_delivery_latency_seconds", "sink=\"fake\"");
    ob_pipeline_init(&h->p, &h->relay, NULL, "test");
    h->p.wait_until = wait_until;
    h->now = ob_mono_ms();
    return true;
}

static void harness_free(struct harness *h)
{
    ob_pipeline_free(&h->p);
    ob_given_up_free(&h->relay.given_up);
    pthread_mutex_destroy(&h->relay.routing_lock);
    ob_config_free(h->cfg);
}

/* A message of partition key pk, sk its id and its sequence number. */
static void push(struct harness *h, const char *pk, const char *sk)
{
    struct ob_record r = { .kind = OB_RECORD_MESSAGE };
    r.msg.pk = ob_xstrdup(pk);
    r.msg.sk = ob_xstrdup(sk);
    r.msg.sequence_number = ob_xstrdup(sk);
    ob_window_push(&h->p.window, &r, h->now);
}

/* One wave, a second after the last; the checkpoint follows the low
 * watermark. */
static void wave(struct harness *h)
{
    ob_pipeline_wave(&h->p, h->now);
    ob_window_advance(&h->p.window, h->checkpoint, sizeof h->checkpoint);
    h->now += 1000;
}

/* Waves until the checkpoint is at sk (at most n); whether it got there. */
static bool waves_until_checkpoint(struct harness *h, const char *sk, int n)
{
    for (int i = 0; i < n && strcmp(h->checkpoint, sk) != 0; i++)
        wave(h);
    return strcmp(h->checkpoint, sk) == 0;
}

/* Messages m1 (key a) and m2 (key b) until the checkpoint passed both,
 * then waves that change nothing more. Whether it passed them and m1 was
 * given up unrecorded (remembered, so no sweep sends it again); frees h. */
static bool m1_given_up_once_passed(struct harness *h)
{
    push(h, "a", "m1");
    push(h, "b", "m2");
    bool passed = waves_until_checkpoint(h, "m2", 60);
    for (int k = 0; k < 20; k++)
        wave(h);
    bool remembered = ob_given_up_has(&h->relay.given_up, "a", "m1");
    harness_free(h);
    return passed && remembered;
}

static double metric(const char *family, const char *labels)
{
    return ob_metric_get(ob_metric_series(family, labels));
}

/* ---- the fake itself ---------------------------------------------------- */

TEST(fake_writer_answers_a_held_write_only_after_its_release)
{
    fake_writes_reset();
    struct ob_item_writer *wr = ob_item_writer_create(NULL, "outbox");
    struct ob_item_write *a = ob_item_write_new(NULL), *b = ob_item_write_new(NULL);
    ob_item_write_set_mark(wr, a, "p", "a", 0, 60);
    ob_item_write_set_mark(wr, b, "p", "b", 0, 60);
    fake_writes_hold("a");
    ob_item_writer_start(wr, a);
    ob_item_writer_start(wr, b);
    CHECK(ob_item_writer_next_done(wr) == b);
    CHECK(ob_item_writer_next_done(wr) == NULL);
    fake_writes_release();
    CHECK(ob_item_writer_next_done(wr) == a);
    CHECK_INT(ob_item_write_result(a), OB_OK);
    CHECK_INT(fake_writes_count("a", FAKE_MARK), 1);
    ob_item_write_free(a);
    ob_item_write_free(b);
    ob_item_writer_destroy(wr);
}

TEST(fake_writer_fails_an_items_writes_as_often_as_told_then_succeeds)
{
    fake_writes_reset();
    struct ob_item_writer *wr = ob_item_writer_create(NULL, "outbox");
    struct ob_item_write *a = ob_item_write_new(NULL);
    ob_item_write_set_mark(wr, a, "p", "a", 0, 60);
    fake_writes_fail("a", OB_ERR_THROTTLED, "ThrottlingException", 2);
    for (int i = 0; i < 3; i++)
        ob_item_writer_run(wr, &a, 1);
    CHECK_INT(ob_item_write_result(a), OB_OK);
    CHECK_INT(fake_writes_count("a", FAKE_MARK), 3);
    ob_item_write_free(a);
    ob_item_writer_destroy(wr);
    fake_writes_fail("b", OB_ERR_VALIDATION, "ValidationException", -1);
    wr = ob_item_writer_create(NULL, "outbox");
    a = ob_item_write_new(NULL);
    ob_item_write_set_mark_minimal(wr, a, "p", "b");
    ob_item_writer_run(wr, &a, 1);
    CHECK_INT(ob_item_write_result(a), OB_ERR_VALIDATION);
    CHECK_STR(ob_item_write_error(a)->aws_type, "ValidationException");
    ob_item_write_free(a);
    ob_item_writer_destroy(wr);
}

/* ---- marks -------------------------------------------------------------- */

TEST(a_mark_failing_retriably_is_tried_again_and_the_checkpoint_waits_for_its_success)
{
    struct harness h;
    CHECK(harness_init(&h));
    fake_writes_fail("m1", OB_ERR_THROTTLED, "ProvisionedThroughputExceededException", 3);
    push(&h, "a", "m1");
    push(&h, "b", "m2");
    bool reached = waves_until_checkpoint(&h, "m2", 60);
    int marks = fake_writes_count("m1", FAKE_MARK);
    harness_free(&h);
    CHECK(reached);
    /* Three failed, the fourth succeeded: only then did the checkpoint pass it. */
    CHECK_INT(marks, 4);
}

TEST(a_throttled_mark_does_not_send_the_message_to_the_sink_again)
{
    struct harness h;
    CHECK(harness_init(&h));
    fake_writes_fail("m1", OB_ERR_THROTTLED, "ThrottlingException", 3);
    push(&h, "a", "m1");
    bool reached = waves_until_checkpoint(&h, "m1", 60);
    harness_free(&h);
    CHECK(reached);
    CHECK_INT(sent_count("m1"), 1);
    CHECK_INT(fake_writes_count("m1", FAKE_MARK), 4);
}

TEST(a_mark_refused_for_good_gives_the_message_up_unrecorded_once)
{
    static const struct {
        enum ob_err code;
        const char *aws_type;
    } refusals[] = {
        { OB_ERR_VALIDATION, "ValidationException" },
        { OB_ERR_ACCESS_DENIED, "AccessDeniedException" },
    };
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        struct harness h;
        CHECK(harness_init(&h));
        double given_up = metric("outboxd_item_writes_given_up_total", "write=\"published\"");
        fake_writes_fail("m1", refusals[i].code, refusals[i].aws_type, -1);
        CHECK(m1_given_up_once_passed(&h));
        /* The mark, the smallest mark, the record that it could not be
         * marked: each once, and the message sent once. */
        CHECK_INT(fake_writes_count("m1", FAKE_MARK), 1);
        CHECK_INT(fake_writes_count("m1", FAKE_MARK_MINIMAL), 1);
        CHECK_INT(fake_writes_count("m1", FAKE_DEAD_LETTER), 1);
        CHECK_INT(fake_writes_dead_letter_ttl("m1"), 0);
        CHECK_INT(sent_count("m1"), 1);
        CHECK_INT(metric("outboxd_item_writes_given_up_total", "write=\"published\"") - given_up, 1);
    }
}

TEST(a_late_mark_keeps_the_checkpoint_behind_it)
{
    struct harness h;
    CHECK(harness_init(&h));
    fake_writes_hold("m1");
    push(&h, "a", "m1");
    push(&h, "b", "m2");
    push(&h, "c", "m3");
    for (int i = 0; i < 10; i++)
        wave(&h);
    char held[sizeof h.checkpoint];
    snprintf(held, sizeof held, "%s", h.checkpoint);
    int marks_held = fake_writes_count("m2", FAKE_MARK) + fake_writes_count("m3", FAKE_MARK);
    fake_writes_release();
    wave(&h);
    char after[sizeof h.checkpoint];
    snprintf(after, sizeof after, "%s", h.checkpoint);
    harness_free(&h);
    CHECK_INT(marks_held, 2);
    CHECK_STR(held, "");
    CHECK_STR(after, "m3");
    CHECK_INT(fake_writes_count("m1", FAKE_MARK), 1);
    CHECK_INT(sent_count("m1"), 1);
}

TEST(a_mark_finding_the_item_published_counts_a_duplicate)
{
    struct harness h;
    CHECK(harness_init(&h));
    double duplicates = metric("outboxd_messages_duplicate_total", "");
    fake_writes_fail("m1", OB_ERR_CONDITION_FAILED, "ConditionalCheckFailedException", 1);
    push(&h, "a", "m1");
    bool reached = waves_until_checkpoint(&h, "m1", 10);
    harness_free(&h);
    CHECK(reached);
    CHECK_INT(metric("outboxd_messages_duplicate_total", "") - duplicates, 1);
    CHECK_INT(fake_writes_count("m1", FAKE_MARK), 1);
    CHECK_INT(sent_count("m1"), 1);
}

/* ---- failure and dead-letter records ----------------------------------- */

TEST(a_rejected_delivery_is_recorded_on_the_item_and_sent_again)
{
    struct harness h;
    CHECK(harness_init(&h));
    sink_answers("m1", OB_DELIVERY_REJECT, 1);
    push(&h, "a", "m1");
    bool reached = waves_until_checkpoint(&h, "m1", 60);
    harness_free(&h);
    CHECK(reached);
    CHECK_INT(fake_writes_count("m1", FAKE_FAILED), 1);
    CHECK_INT(sent_count("m1"), 2);
    CHECK_INT(fake_writes_count("m1", FAKE_MARK), 1);
}

TEST(a_message_over_the_brokers_size_limit_is_dead_lettered_at_once_with_reason_too_large)
{
    struct harness h;
    CHECK(harness_init(&h));
    double dead = metric("outboxd_messages_dead_lettered_total", "reason=\"too_large\"");
    sink_answers("m1", OB_DELIVERY_REJECT, -1);
    sent.too_large = true;
    push(&h, "a", "m1");
    push(&h, "a", "m2");
    bool reached = waves_until_checkpoint(&h, "m2", 60);
    harness_free(&h);
    CHECK(reached);
    /* relay.max_attempts is 3: the limit is not tried again. */
    CHECK_INT(sent_count("m1"), 1);
    CHECK_INT(fake_writes_count("m1", FAKE_DEAD_LETTER), 1);
    CHECK_INT(fake_writes_count("m2", FAKE_MARK), 1);
    CHECK_INT(metric("outboxd_messages_dead_lettered_total", "reason=\"too_large\"") - dead, 1);
}

TEST(a_dead_letter_record_refused_for_good_is_written_again_short_then_given_up_once)
{
    struct harness h;
    CHECK(harness_init(&h));
    double dead = metric("outboxd_messages_dead_lettered_total", "reason=\"attempts\"");
    double given_up = metric("outboxd_item_writes_given_up_total", "write=\"dead_letter\"");
    sink_answers("m1", OB_DELIVERY_REJECT, -1);
    fake_writes_fail("m1", OB_ERR_VALIDATION, "ValidationException", -1);
    CHECK(m1_given_up_once_passed(&h));
    /* relay.max_attempts: 3, then the record, then the record cut short. */
    CHECK_INT(sent_count("m1"), 3);
    CHECK_INT(fake_writes_count("m1", FAKE_DEAD_LETTER), 2);
    CHECK_INT(fake_writes_count("m1", FAKE_MARK), 0);
    CHECK_INT(metric("outboxd_messages_dead_lettered_total", "reason=\"attempts\"") - dead, 1);
    CHECK_INT(metric("outboxd_item_writes_given_up_total", "write=\"dead_letter\"") - given_up, 1);
}
