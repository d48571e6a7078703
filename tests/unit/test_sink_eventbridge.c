/* eventbridge sink, the pure parts: a message as a PutEvents entry (SPEC
 * §4), the service's entry-size rule and its limit (SPEC §3 too_large),
 * how a batch packs into calls, and what an answer means for each entry. */
#include "test.h"

#include <jansson.h>
#include <math.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/config.h"
#include "sinks/common.h"
#include "sinks/eventbridge.h"

/* A message as the relay hands it to a sink. */
struct fixture {
    struct ob_message m;
    struct ob_ce ce;
    struct ob_delivery d;
};

static void fixture_init(struct fixture *f, const char *type, const char *created_at, const char *payload)
{
    memset(f, 0, sizeof *f);
    f->m.pk = ob_xstrdup("p1");
    f->m.sk = ob_xstrdup("m1");
    f->m.message_type = ob_xstrdup_or_null(type);
    f->m.aggregate_type = ob_xstrdup("Order");
    f->m.aggregate_id = ob_xstrdup("a1");
    f->m.created_at = ob_xstrdup_or_null(created_at);
    if (created_at)
        CHECK(ob_iso8601_parse(created_at, &f->m.created_at_ms));
    f->m.payload = (unsigned char *)ob_xstrdup(payload);
    f->m.payload_len = strlen(payload);
    ob_ce_from_message(&f->ce, &f->m, NULL, "outbox");
    f->d.msg = &f->m;
    f->d.ce = &f->ce;
}

static void fixture_free(struct fixture *f)
{
    ob_ce_free(&f->ce);
    ob_message_free(&f->m);
}

static const char *str_of(const json_t *entry, const char *key)
{
    const char *v = json_string_value(json_object_get(entry, key));
    return v ? v : "(absent)";
}

TEST(eventbridge_entry_carries_bus_source_detail_type_the_cloudevent_and_time)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", "2025-11-25T22:05:12.123Z", "{\"n\": 1}");
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK(e != NULL);
    CHECK_STR(str_of(e, "EventBusName"), "default");
    CHECK_STR(str_of(e, "Source"), "/outbox/Order");
    CHECK_STR(str_of(e, "DetailType"), "OrderCreated");
    struct ob_buf ce = {0};
    ob_delivery_structured(&ce, &f.d);
    CHECK_STR(str_of(e, "Detail"), ce.data);
    CHECK(fabs(json_number_value(json_object_get(e, "Time")) - 1764108312.123) < 1e-6);
    CHECK_INT(size, 14 + strlen("/outbox/Order") + strlen("OrderCreated") + ce.len);
    CHECK_INT(json_object_size(e), 5);
    ob_buf_free(&ce);
    json_decref(e);
    fixture_free(&f);
}

TEST(eventbridge_request_body_has_the_entries_and_time_in_seconds_to_the_millisecond)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", "2025-11-25T22:05:12.123Z", "{}");
    size_t size;
    json_t *entries = json_array();
    json_array_append_new(entries, ob_eventbridge_entry(&f.d, "default", &size));
    char *body = ob_eventbridge_body(entries);
    CHECK(strncmp(body, "{\"Entries\":[{", 13) == 0);
    CHECK(strstr(body, "\"Time\":1764108312.123}") != NULL);
    free(body);
    json_decref(entries);
    fixture_free(&f);
}

TEST(eventbridge_entry_without_created_at_has_no_time_and_its_size_no_time_bytes)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", NULL, "{}");
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK(json_object_get(e, "Time") == NULL);
    CHECK_INT(size, strlen("/outbox/Order") + strlen("OrderCreated") + strlen(str_of(e, "Detail")));
    json_decref(e);
    fixture_free(&f);
}

/* Time goes in seconds to the millisecond with 14 digits, exact until the
 * year 5138; a later createdAt (9999-12-31T23:59:59.999Z would round to
 * the year 10000, which the SDKs' model refuses: the whole call, batch
 * mates and all) goes without Time: the service stamps it, and Detail
 * keeps the CloudEvent's time. */
TEST(eventbridge_entry_of_a_created_at_past_the_year_5138_has_no_time)
{
    struct fixture f;
    size_t size;
    fixture_init(&f, "OrderCreated", "9999-12-31T23:59:59.999Z", "{}");
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK(e != NULL);
    CHECK(json_object_get(e, "Time") == NULL);
    CHECK_INT(size, strlen("/outbox/Order") + strlen("OrderCreated") + strlen(str_of(e, "Detail")));
    json_t *detail = json_loads(str_of(e, "Detail"), 0, NULL);
    CHECK_STR(str_of(detail, "time"), "9999-12-31T23:59:59.999Z");
    json_decref(detail);
    json_decref(e);
    fixture_free(&f);

    fixture_init(&f, "OrderCreated", "5138-11-16T09:46:39.999Z", "{}");
    json_t *entries = json_array();
    json_array_append_new(entries, ob_eventbridge_entry(&f.d, "default", &size));
    char *body = ob_eventbridge_body(entries);
    CHECK(strstr(body, "\"Time\":99999999999.999}") != NULL);
    free(body);
    json_decref(entries);
    fixture_free(&f);
}

TEST(eventbridge_entry_size_counts_utf8_bytes)
{
    CHECK_INT(ob_eventbridge_entry_size(true, 3, 4, 5), 14 + 3 + 4 + 5);
    CHECK_INT(ob_eventbridge_entry_size(false, 3, 4, 5), 3 + 4 + 5);
    struct fixture f;
    fixture_init(&f, "Créé€", NULL, "{}");   /* 5 characters, 9 bytes */
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK_INT(size, strlen("/outbox/Order") + 9 + strlen(str_of(e, "Detail")));
    json_decref(e);
    fixture_free(&f);
}

TEST(eventbridge_entry_goes_to_its_route_destination_over_the_sinks_bus)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", NULL, "{}");
    f.d.destination = "arn:aws:events:eu-west-1:123456789012:event-bus/orders";
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK_STR(str_of(e, "EventBusName"), "arn:aws:events:eu-west-1:123456789012:event-bus/orders");
    json_decref(e);
    fixture_free(&f);
}

TEST(eventbridge_dead_letter_detail_carries_its_reason)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", NULL, "{}");
    f.d.error_info = "HTTP 400 from POST http://x/";
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "dlq-bus", &size);
    json_t *detail = json_loads(str_of(e, "Detail"), 0, NULL);
    CHECK_STR(str_of(detail, OB_CE_DEAD_LETTER_REASON), "HTTP 400 from POST http://x/");
    CHECK_STR(str_of(detail, "id"), "m1");
    json_decref(detail);
    json_decref(e);
    fixture_free(&f);
}

TEST(eventbridge_empty_type_is_sent_as_outbox_message_the_detail_keeping_it_empty)
{
    struct fixture f;
    fixture_init(&f, "", NULL, "{}");
    size_t size;
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK_STR(str_of(e, "DetailType"), "outbox.message");
    json_t *detail = json_loads(str_of(e, "Detail"), 0, NULL);
    CHECK_STR(str_of(detail, "type"), "");
    json_decref(detail);
    json_decref(e);
    fixture_free(&f);
}

/* The type cut to n characters. */
static char *detail_type(const char *type)
{
    struct ob_buf b = {0};
    ob_eventbridge_detail_type(&b, type);
    return ob_buf_steal(&b);
}

TEST(eventbridge_detail_type_is_cut_to_128_characters_at_a_characters_end)
{
    char a127[128], a200[201];
    memset(a127, 'a', 127);
    a127[127] = '\0';
    memset(a200, 'a', 200);
    a200[200] = '\0';
    struct ob_buf in = {0};
    char *got = detail_type(a200);
    CHECK_INT(strlen(got), 128);
    free(got);
    /* é: 1 character in 2 bytes, kept whole. */
    ob_buf_cat(&in, a127, "\xc3\xa9zz", NULL);
    got = detail_type(in.data);
    CHECK_INT(strlen(got), 129);
    CHECK_STR(got + 127, "\xc3\xa9");
    free(got);
    /* U+1F600 counts 2, as the service counts (UTF-16): it does not fit
     * after 127, and is not cut in half. */
    ob_buf_reset(&in);
    ob_buf_cat(&in, a127, "\xf0\x9f\x98\x80", NULL);
    got = detail_type(in.data);
    CHECK_STR(got, a127);
    free(got);
    got = detail_type("Order.Created");
    CHECK_STR(got, "Order.Created");
    free(got);
    ob_buf_free(&in);
}

TEST(eventbridge_source_starting_with_aws_dot_is_rejected_without_a_call)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", NULL, "{}");
    free(f.ce.source);
    f.ce.source = ob_xstrdup("aws.orders");
    size_t size;
    CHECK(ob_eventbridge_entry(&f.d, "default", &size) == NULL);
    CHECK_INT(f.d.result, OB_DELIVERY_REJECT);
    CHECK(!f.d.too_large);
    CHECK_STR(f.d.error, "source 'aws.orders' starts with 'aws.', which EventBridge keeps for AWS services "
                         "(see cloudevents.source)");
    fixture_free(&f);
}

TEST(eventbridge_destination_that_is_no_bus_is_rejected_alone)
{
    struct fixture f;
    fixture_init(&f, "OrderCreated", NULL, "{}");
    f.d.destination = "orders/eu";
    size_t size;
    CHECK(ob_eventbridge_entry(&f.d, "default", &size) == NULL);
    CHECK_INT(f.d.result, OB_DELIVERY_REJECT);
    CHECK_STR(f.d.error, "event bus 'orders/eu' is neither a bus name (at most 1600 of [.-_A-Za-z0-9]) nor an "
                         "event bus ARN");
    fixture_free(&f);
}

/* A message whose entry has exactly `target` bytes by the rule, plus extra. */
static void fixture_of_size(struct fixture *f, size_t target, size_t extra)
{
    fixture_init(f, "OrderCreated", "2025-11-25T22:05:12.123Z", "{\"pad\":\"\"}");
    size_t base;
    json_t *e = ob_eventbridge_entry(&f->d, "default", &base);
    json_decref(e);
    fixture_free(f);
    struct ob_buf payload = {0};
    ob_buf_puts(&payload, "{\"pad\":\"");
    for (size_t i = 0; i < target - base + extra; i++)
        ob_buf_putc(&payload, 'x');
    ob_buf_puts(&payload, "\"}");
    fixture_init(f, "OrderCreated", "2025-11-25T22:05:12.123Z", payload.data);
    ob_buf_free(&payload);
}

/* "The total entry size must be less than 256KB" (the service's size
 * rule): an entry of exactly 256 KiB is refused. */
TEST(eventbridge_entry_one_byte_under_256_kib_is_sent_and_one_of_256_kib_is_too_large)
{
    struct fixture f;
    size_t size;
    fixture_of_size(&f, OB_EB_MAX_BYTES - 1, 0);
    json_t *e = ob_eventbridge_entry(&f.d, "default", &size);
    CHECK(e != NULL);
    CHECK_INT(size, 262143);
    CHECK_INT(f.d.result, OB_DELIVERY_ACK);
    json_decref(e);
    fixture_free(&f);

    fixture_of_size(&f, OB_EB_MAX_BYTES, 0);
    CHECK(ob_eventbridge_entry(&f.d, "default", &size) == NULL);
    CHECK_INT(f.d.result, OB_DELIVERY_REJECT);
    CHECK(f.d.too_large);
    CHECK_STR(f.d.error, "PutEvents entry of 262144 bytes (Time, Source, DetailType and Detail as EventBridge counts "
                         "them) is not under the service's limit of 262144 bytes");
    fixture_free(&f);
}

TEST(eventbridge_bus_is_a_name_or_an_event_bus_arn)
{
    static const char *const good[] = {
        "default", "orders.v1-x_Y", "arn:aws:events:us-east-1:123456789012:event-bus/orders",
        "arn:aws-us-gov:events:us-gov-west-1:123456789012:event-bus/default",
        "arn:aws-cn:events:cn-north-1:123456789012:event-bus/a.b",
    };
    static const char *const bad[] = {
        "", "a b", "orders/eu", "aws.partner/x.com/1", "arn:aws:events:us-east-1:12345:event-bus/x",
        "arn:aws:sqs:us-east-1:123456789012:event-bus/x", "arn:aws:events:us-east-1:123456789012:event-bus/",
        "arn:aws:events:us-east-1:123456789012:rule/x", "arn:aws:events:useast1:123456789012:event-bus/x",
        "arn:aws:events:us-east-1:123456789012:event-bus/a/b", "bus\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!ob_eventbridge_bus_valid(good[i]))
            ob_test_fail(__FILE__, __LINE__, "refused %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ob_eventbridge_bus_valid(bad[i]))
            ob_test_fail(__FILE__, __LINE__, "took %s", bad[i]);
    char name[1602];
    memset(name, 'b', sizeof name - 1);
    name[1600] = '\0';
    CHECK(ob_eventbridge_bus_valid(name));
    name[1600] = 'b';
    name[1601] = '\0';
    CHECK(!ob_eventbridge_bus_valid(name));
}

/* Packs entries of these buses and sizes as the sink does. */
static size_t pack(const char *const *bus, const size_t *size, size_t n, size_t *call_of)
{
    struct ob_aws_entry e[32] = {0};
    for (size_t i = 0; i < n; i++)
        e[i] = (struct ob_aws_entry){.destination = bus[i], .size = size[i]};
    return ob_aws_sink_pack(&ob_eventbridge_batch, e, n, call_of);
}

TEST(eventbridge_batch_packs_ten_entries_to_a_call)
{
    const char *bus[25];
    size_t size[25], call_of[25];
    for (size_t i = 0; i < 25; i++) {
        bus[i] = "default";
        size[i] = 1000;
    }
    CHECK_INT(pack(bus, size, 25, call_of), 3);
    CHECK_INT(call_of[0], 0);
    CHECK_INT(call_of[9], 0);
    CHECK_INT(call_of[10], 1);
    CHECK_INT(call_of[19], 1);
    CHECK_INT(call_of[20], 2);
    CHECK_INT(call_of[24], 2);
}

TEST(eventbridge_batch_packs_a_calls_entries_under_256_kib_by_the_rule)
{
    const char *bus[6] = {"b", "b", "b", "b", "b", "b"};
    /* 100 KiB, 100 KiB: a third would pass the limit; 156 KiB after 100
     * would reach it (a call's entries must be under it), 156 KiB less a
     * byte stays under. */
    size_t size[6] = {100u << 10, 100u << 10, 100u << 10, 156u << 10, (156u << 10) - 1, 1}, call_of[6];
    CHECK_INT(pack(bus, size, 6, call_of), 4);
    CHECK_INT(call_of[0], 0);
    CHECK_INT(call_of[1], 0);
    CHECK_INT(call_of[2], 1);
    CHECK_INT(call_of[3], 2);
    CHECK_INT(call_of[4], 3);
    CHECK_INT(call_of[5], 3);
}

/* Results of n deliveries after reading answer (JSON text). */
static void read_answer(const char *answer, struct ob_delivery *d, size_t n)
{
    struct ob_delivery *p[8];
    for (size_t i = 0; i < n; i++) {
        memset(&d[i], 0, sizeof d[i]);
        p[i] = &d[i];
    }
    json_t *a = json_loads(answer, 0, NULL);
    CHECK(a != NULL);
    ob_eventbridge_read_answer(a, p, n);
    json_decref(a);
}

TEST(eventbridge_answer_entry_with_an_event_id_is_acknowledged)
{
    struct ob_delivery d[2];
    read_answer("{\"FailedEntryCount\":0,\"Entries\":[{\"EventId\":\"e1\"},{\"EventId\":\"e2\"}]}", d, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_ACK);
    CHECK_INT(d[1].result, OB_DELIVERY_ACK);
}

TEST(eventbridge_answer_throttled_or_internal_failure_entry_is_retried_alone)
{
    struct ob_delivery d[3];
    read_answer("{\"FailedEntryCount\":2,\"Entries\":[{\"ErrorCode\":\"ThrottlingException\",\"ErrorMessage\":"
                "\"Rate exceeded\"},{\"EventId\":\"e2\"},{\"ErrorCode\":\"InternalFailure\"}]}", d, 3);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[0].error, "PutEvents entry: ThrottlingException: Rate exceeded");
    CHECK_INT(d[1].result, OB_DELIVERY_ACK);
    CHECK_INT(d[2].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[2].error, "PutEvents entry: InternalFailure: (no message)");
}

TEST(eventbridge_answer_entry_with_any_other_error_code_is_rejected)
{
    struct ob_delivery d[4];
    read_answer("{\"FailedEntryCount\":3,\"Entries\":[{\"ErrorCode\":\"MalformedDetail\",\"ErrorMessage\":"
                "\"Detail is malformed.\"},{\"ErrorCode\":\"InvalidArgument\",\"ErrorMessage\":\"Parameter DetailType "
                "is not valid.\"},{\"ErrorCode\":\"NotAuthorizedForSourceException\"},{\"EventId\":\"e4\"}]}", d, 4);
    CHECK_INT(d[0].result, OB_DELIVERY_REJECT);
    CHECK_STR(d[0].error, "PutEvents entry: MalformedDetail: Detail is malformed.");
    CHECK_INT(d[1].result, OB_DELIVERY_REJECT);
    CHECK_INT(d[2].result, OB_DELIVERY_REJECT);
    CHECK(!d[2].too_large);
    CHECK_INT(d[3].result, OB_DELIVERY_ACK);
}

TEST(eventbridge_answer_entry_with_neither_an_event_id_nor_an_error_code_is_retried)
{
    struct ob_delivery d[2];
    read_answer("{\"FailedEntryCount\":0,\"Entries\":[{\"EventId\":\"e1\"},{}]}", d, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_ACK);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[1].error, "PutEvents answer has neither an EventId nor an ErrorCode for this entry");
}

/* The service answers one entry for each sent, in order: an answer of
 * another count cannot say which entry an EventId belongs to, so none is
 * taken as acknowledged (the service may have some: at least once). */
TEST(eventbridge_answer_without_one_entry_per_entry_sent_retries_them_all)
{
    struct ob_delivery d[3];
    read_answer("{\"FailedEntryCount\":0,\"Entries\":[{\"EventId\":\"e1\"},{\"EventId\":\"e2\"}]}", d, 3);
    for (size_t i = 0; i < 3; i++)
        CHECK_INT(d[i].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[0].error, "PutEvents answer has 2 entries for 3 sent");
    read_answer("{\"Entries\":[{\"EventId\":\"e1\"},{\"EventId\":\"e2\"},{\"EventId\":\"e3\"}]}", d, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    read_answer("{\"Entries\":{\"EventId\":\"e1\"}}", d, 1);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    read_answer("{}", d, 1);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
}

/* The diagnostics of loading a config with one eventbridge sink of these keys. */
static void load_sink(const char *keys, struct ob_config_diag *diag, enum ob_err *rc)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n"
                      "  - name: eb\n    type: eventbridge\n%s", keys);
    struct ob_config *cfg = NULL;
    *diag = (struct ob_config_diag){0};
    *rc = ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, diag);
    ob_config_free(cfg);
    ob_buf_free(&y);
}

TEST(eventbridge_check_reports_an_event_bus_name_that_cannot_be_at_its_value)
{
    struct ob_config_diag diag;
    enum ob_err rc;
    load_sink("    event_bus_name: \"orders bus\"\n", &diag, &rc);
    CHECK_INT(rc, OB_ERR_CONFIG);
    CHECK_INT(diag.n, 1);
    if (diag.n)
        CHECK_STR(diag.lines[0], "test.yaml:8:21: error: 'event_bus_name' of eventbridge sink 'eb' must be an event "
                                 "bus name (at most 1600 of [.-_A-Za-z0-9]) or an event bus ARN "
                                 "(arn:aws:events:REGION:ACCOUNT:event-bus/NAME)");
    ob_config_diag_free(&diag);
}

TEST(eventbridge_check_takes_the_default_bus_a_name_or_an_arn)
{
    static const char *const keys[] = {
        "",
        "    event_bus_name: orders\n",
        ("    event_bus_name: arn:aws:events:us-east-1:123456789012:event-bus/orders\n"
         "    region: eu-west-1\n    endpoint: https://vpce-1.events.eu-west-1.vpce.amazonaws.com\n"),
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct ob_config_diag diag;
        enum ob_err rc;
        load_sink(keys[i], &diag, &rc);
        CHECK_INT(rc, OB_OK);
        CHECK_INT(diag.n, 0);
        ob_config_diag_free(&diag);
    }
}
