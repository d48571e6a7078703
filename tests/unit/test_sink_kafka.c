/* kafka sink, the parts without a broker: the record's headers (the
 * CloudEvents Kafka binding), what librdkafka's errors mean for a
 * delivery, the key rules and the `properties` checks of `outboxd check`. */
#include "test.h"

#include <librdkafka/rdkafka.h>
#include <time.h>

#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/config.h"
#include "sinks/kafka.h"
#include "sinks/sink.h"

/* The config loader's errors for a kafka sink with these extra key lines,
 * joined by newlines ("" when the config loads). */
static void load_errors(const char *keys, struct ob_buf *out)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n"
                      "  - name: k\n    type: kafka\n    brokers: 127.0.0.1:1\n    topic: t\n%s", keys);
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    ob_buf_reset(out);
    ob_buf_puts(out, "");
    if (ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, &diag) != OB_OK)
        for (size_t i = 0; i < diag.n; i++)
            ob_buf_cat(out, i ? "\n" : "", diag.lines[i], NULL);
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
    ob_buf_free(&y);
}

/* ---- headers ---- */

struct record {
    struct ob_message m;
    struct ob_header h[4];
    struct ob_ce ce;
    struct ob_delivery d;
};

static void record_init(struct record *r)
{
    memset(r, 0, sizeof *r);
    r->m.pk = "key-1";
    r->m.sk = "01HID";
    r->m.message_type = "Order.Placed";
    r->m.aggregate_type = "Order";
    r->m.aggregate_id = "o-7";
    r->m.correlation_id = "corr-1";
    r->m.created_at = "2026-01-02T03:04:05.678Z";
    r->m.payload = (unsigned char *)"{}";
    r->m.payload_len = 2;
    r->h[0] = (struct ob_header){"content-type", "application/cloudevents-batch+json"};
    r->h[1] = (struct ob_header){"traceparent", "00-abc-def-01"};
    r->h[2] = (struct ob_header){"CE_id", "spoofed"};
    r->h[3] = (struct ob_header){"ce_type", "spoofed"};
    r->m.headers = r->h;
    r->m.n_headers = 4;
    ob_ce_from_message(&r->ce, &r->m, NULL, "outbox");
    r->d.msg = &r->m;
    r->d.ce = &r->ce;
}

/* "name=value" of every header in order, one per line. */
static void headers_text(const struct ob_delivery *d, struct ob_buf *out)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    ob_kafka_headers_add(h, d);
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        ob_buf_cat(out, name, "=", NULL);
        ob_buf_append(out, value, size);
        ob_buf_putc(out, '\n');
    }
    rd_kafka_headers_destroy(h);
}

TEST(kafka_record_carries_the_ce_headers_content_type_and_the_message_headers_that_do_not_clash)
{
    struct record r;
    record_init(&r);
    struct ob_buf got = {0};
    headers_text(&r.d, &got);
    /* content-type comes from the message's own header (SPEC §4), once. */
    CHECK_STR(ob_buf_cstr(&got), "ce_specversion=1.0\n"
                                 "ce_id=01HID\n"
                                 "ce_type=Order.Placed\n"
                                 "ce_source=/outbox/Order\n"
                                 "ce_subject=o-7\n"
                                 "ce_time=2026-01-02T03:04:05.678Z\n"
                                 "ce_partitionkey=key-1\n"
                                 "ce_correlationid=corr-1\n"
                                 "content-type=application/cloudevents-batch+json\n"
                                 "traceparent=00-abc-def-01\n");
    ob_buf_free(&got);
    ob_ce_free(&r.ce);
}

TEST(kafka_dead_letter_carries_its_reason_as_a_ce_extension)
{
    struct record r;
    record_init(&r);
    r.m.n_headers = 0;
    r.d.error_info = "attempts: HTTP 400";
    struct ob_buf got = {0};
    headers_text(&r.d, &got);
    CHECK(strstr(ob_buf_cstr(&got), "\ncontent-type=application/cloudevents-batch+json\n"
                                    "ce_deadletterreason=attempts: HTTP 400\n"));
    ob_buf_free(&got);
    ob_ce_free(&r.ce);
}

/* ---- errors ---- */

TEST(kafka_errors_map_to_retry_or_reject)
{
    static const struct {
        rd_kafka_resp_err_t err;
        enum ob_delivery_result result;
        bool too_large;
    } cases[] = {
        {RD_KAFKA_RESP_ERR_NO_ERROR, OB_DELIVERY_ACK, false},
        {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, OB_DELIVERY_REJECT, true},
        {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR__TRANSPORT, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR__FATAL, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR__PURGE_QUEUE, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR__AUTHENTICATION, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED, OB_DELIVERY_RETRY, false},
        {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, OB_DELIVERY_REJECT, false},
        {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, OB_DELIVERY_REJECT, false},
        {RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, OB_DELIVERY_REJECT, false},
        {RD_KAFKA_RESP_ERR_INVALID_RECORD, OB_DELIVERY_REJECT, false},
        {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, OB_DELIVERY_REJECT, false},
        {RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, OB_DELIVERY_REJECT, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool too_large = !cases[i].too_large;
        enum ob_delivery_result r = ob_kafka_result(cases[i].err, &too_large);
        if (r != cases[i].result || too_large != cases[i].too_large) {
            ob_test_fail(__FILE__, __LINE__, "%s: result %d too_large %d", rd_kafka_err2name(cases[i].err), r,
                         too_large);
            return;
        }
    }
}

/* ---- properties ---- */

TEST(kafka_properties_pass_through_what_librdkafka_accepts)
{
    struct ob_buf e = {0};
    load_errors("    properties:\n      linger.ms: \"20\"\n      compression.type: zstd\n"
                "      enable.idempotence: \"true\"\n      acks: \"-1\"\n      partitioner: murmur2\n", &e);
    CHECK_STR(ob_buf_cstr(&e), "");
    ob_buf_free(&e);
}

TEST(kafka_check_reports_librdkafkas_message_at_the_property)
{
    struct ob_buf e = {0};
    load_errors("    properties:\n      linger.ms: \"5\"\n      no.such.thing: x\n      batch.size: lots\n", &e);
    CHECK_STR(ob_buf_cstr(&e),
              "test.yaml:12:7: error: properties of kafka sink 'k': librdkafka refuses 'no.such.thing': "
              "No such configuration property: \"no.such.thing\"\n"
              "test.yaml:13:7: error: properties of kafka sink 'k': librdkafka refuses 'batch.size': "
              "Invalid value for configuration property \"batch.size\"");
    ob_buf_free(&e);
}

TEST(kafka_properties_cannot_turn_off_the_guarantees)
{
    struct ob_buf e = {0};
    load_errors("    properties: { enable.idempotence: \"false\", request.required.acks: \"1\", "
                "partitioner: consistent, transactional.id: tx }\n", &e);
    CHECK(strstr(ob_buf_cstr(&e), "test.yaml:10:19: error: properties of kafka sink 'k': 'enable.idempotence' "
                                  "cannot be set: the sink's producer is idempotent"));
    CHECK(strstr(ob_buf_cstr(&e), "'request.required.acks' cannot be set: a record counts as delivered once all "
                                  "in-sync replicas have it: acks must stay all"));
    CHECK(strstr(ob_buf_cstr(&e), "'partitioner' cannot be set: records are placed by the Java client's"));
    CHECK(strstr(ob_buf_cstr(&e), "'transactional.id' cannot be set"));
    ob_buf_free(&e);
}

/* With it librdkafka reports failures only: a publish would wait out its
 * timeout for every delivered record and have it sent again, forever. */
TEST(kafka_properties_cannot_turn_off_the_delivery_reports_of_successes)
{
    struct ob_buf e = {0};
    load_errors("    properties: { delivery.report.only.error: \"true\" }\n", &e);
    CHECK_STR(ob_buf_cstr(&e), "test.yaml:10:19: error: properties of kafka sink 'k': 'delivery.report.only.error' "
                               "cannot be set: a record counts as delivered on its delivery report: "
                               "delivery.report.only.error must stay false");
    ob_buf_free(&e);
}

/* Settings librdkafka takes one by one but refuses together when the
 * producer is made: check says so, not the start of `run`. */
TEST(kafka_check_reports_what_librdkafka_refuses_only_when_the_producer_is_made)
{
    struct ob_buf e = {0};
    load_errors("    properties:\n      max.in.flight: \"10\"\n      linger.ms: \"20\"\n      retries: \"0\"\n", &e);
    CHECK_STR(ob_buf_cstr(&e),
              "test.yaml:11:7: error: properties of kafka sink 'k': librdkafka refuses the producer with "
              "'max.in.flight': `max.in.flight` must be set <= 5 when `enable.idempotence` is true\n"
              "test.yaml:13:7: error: properties of kafka sink 'k': librdkafka refuses the producer with "
              "'retries': `retries` must be set >= 1 when `enable.idempotence` is true");
    load_errors("    timeout: 30d\n", &e);
    CHECK(strstr(ob_buf_cstr(&e), "test.yaml:10:14: error: timeout of kafka sink 'k': librdkafka refuses "
                                  "message.timeout.ms: "));
    load_errors("    timeout: 50ms\n    properties: { linger.ms: \"100\" }\n", &e);
    CHECK_STR(ob_buf_cstr(&e), "test.yaml:11:19: error: properties of kafka sink 'k': librdkafka refuses the "
                               "producer with 'linger.ms': `message.timeout.ms` must be greater than `linger.ms`");
    ob_buf_free(&e);
}

TEST(kafka_properties_that_a_key_sets_are_refused)
{
    struct ob_buf e = {0};
    load_errors("    properties:\n      bootstrap.servers: 127.0.0.1:9\n      sasl.password: hunter2\n", &e);
    CHECK_STR(ob_buf_cstr(&e),
              "test.yaml:11:7: error: properties of kafka sink 'k': 'bootstrap.servers' is set by the sink's "
              "brokers, not in properties\n"
              "test.yaml:12:7: error: properties of kafka sink 'k': 'sasl.password' is set by the sink's "
              "sasl_password, not in properties");
    ob_buf_free(&e);
}

/* ---- keys ---- */

TEST(kafka_sasl_plain_needs_a_user_and_a_password)
{
    struct ob_buf e = {0};
    load_errors("    sasl_mechanism: plain\n    sasl_username: u\n", &e);
    CHECK_STR(ob_buf_cstr(&e), "test.yaml:10:21: error: sasl_mechanism plain of kafka sink 'k' needs sasl_username "
                               "and sasl_password");
    ob_buf_free(&e);
}

TEST(kafka_aws_msk_iam_takes_no_password_and_needs_tls)
{
    struct ob_buf e = {0};
    load_errors("    sasl_mechanism: aws_msk_iam\n    sasl_password: x\n    tls: false\n", &e);
    CHECK_STR(ob_buf_cstr(&e),
              "test.yaml:11:20: error: sasl_password of kafka sink 'k': aws_msk_iam signs with the relay's AWS "
              "credentials, it takes no password\n"
              "test.yaml:12:10: error: aws_msk_iam of kafka sink 'k' needs tls: MSK takes IAM authentication over "
              "TLS only");
    ob_buf_free(&e);
}

TEST(kafka_sasl_user_without_a_mechanism_is_an_error)
{
    struct ob_buf e = {0};
    load_errors("    sasl_username: u\n    sasl_password: p\n", &e);
    CHECK_STR(ob_buf_cstr(&e), "test.yaml:10:20: error: sasl_username of kafka sink 'k' needs sasl_mechanism");
    ob_buf_free(&e);
}

/* ---- the producer without a broker ---- */

TEST(kafka_sink_is_created_without_a_broker_and_a_publish_there_retries_unreachable_within_its_timeout)
{
    const char *y = "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n"
                    "  - name: k\n    type: kafka\n    brokers: 127.0.0.1:1\n    topic: t\n    timeout: 500ms\n";
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    CHECK_INT(ob_config_load_string("test.yaml", y, strlen(y), &ob_sinks, &cfg, &diag), OB_OK);
    struct ob_sink_context ctx = {.table = "outbox", .aws = &cfg->aws};
    struct ob_sink *s = NULL;
    struct ob_error err = {0};
    CHECK_INT(ob_sink_create(&cfg->sinks[0], &ctx, &s, &err), OB_OK);
    struct record r;
    record_init(&r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ob_sink_publish(s, &r.d, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK_INT(r.d.result, OB_DELIVERY_RETRY);
    CHECK(strstr(r.d.error, "Local: Message timed out (_MSG_TIMED_OUT, topic t)"));
    CHECK(r.d.unreachable);
    CHECK(seconds < 3.0);
    ob_sink_destroy(s);
    ob_ce_free(&r.ce);
    ob_config_free(cfg);
}
