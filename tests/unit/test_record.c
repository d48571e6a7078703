/* The stream-record decoder: which records are messages, which are
 * skipped, which are poison and why (SPEC §2, §3), and that no JSON input
 * makes it crash; and the GetRecords page decoder, which must give for
 * each element what ob_record_decode gives. */
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fuzz/record_diff.h"
#include "core/buf.h"
#include "core/record.h"

/* An INSERT of a complete, valid outbox item, as GetRecords returns it. */
static const char insert_json[] =
    "{\"eventID\":\"e1\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\","
    "\"awsRegion\":\"us-east-1\",\"dynamodb\":{\"ApproximateCreationDateTime\":1764108312.5,"
    "\"Keys\":{\"pk\":{\"S\":\"order-1\"},\"sk\":{\"S\":\"m-1\"}},"
    "\"NewImage\":{\"pk\":{\"S\":\"order-1\"},\"sk\":{\"S\":\"m-1\"},\"payload\":{\"S\":\"eyJhIjoxfQ==\"},"
    "\"headers\":{\"S\":\"{\\\"Content-Type\\\":\\\"application/json\\\",\\\"tenant\\\":\\\"acme\\\"}\"},"
    "\"messageType\":{\"S\":\"OrderPlaced\"},\"aggregateId\":{\"S\":\"42\"},\"aggregateType\":{\"S\":\"Order\"},"
    "\"correlationId\":{\"S\":\"c-1\"},\"causationId\":{\"S\":\"c-0\"},\"isPublished\":{\"BOOL\":false},"
    "\"retryCount\":{\"N\":\"3\"},\"createdAt\":{\"S\":\"2025-11-25T22:05:12.123Z\"}},"
    "\"SequenceNumber\":\"000000000000000000123\",\"SizeBytes\":321,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}";

static json_t *insert_record(void)
{
    return json_loads(insert_json, 0, NULL);
}

static json_t *new_image(json_t *record)
{
    return json_object_get(json_object_get(record, "dynamodb"), "NewImage");
}

/* Sets NewImage.name to the attribute value written as JSON text. */
static void set_attr(json_t *record, const char *name, const char *attr_json)
{
    json_object_set_new(new_image(record), name, json_loads(attr_json, JSON_DECODE_ANY, NULL));
}

/* Decodes record (and releases it); the record must decode without error. */
static enum ob_record_kind decode(json_t *record, struct ob_record *r)
{
    struct ob_error err = {0};
    enum ob_err rc = ob_record_decode(record, r, &err);
    json_decref(record);
    if (rc != OB_OK) {
        printf("  unexpected error: %s\n", err.msg);
        return (enum ob_record_kind)-1;
    }
    return r->kind;
}

/* Decodes insert_record() with NewImage.name set to attr_json (NULL:
 * removed), as decode does. */
static enum ob_record_kind decode_with(const char *name, const char *attr_json, struct ob_record *r)
{
    json_t *rec = insert_record();
    if (attr_json)
        set_attr(rec, name, attr_json);
    else
        json_object_del(new_image(rec), name);
    return decode(rec, r);
}

/* ob_record_decode's result for record (released), the record dropped. */
static enum ob_err decode_result(json_t *record)
{
    struct ob_error err = {0};
    struct ob_record r = {0};
    enum ob_err rc = ob_record_decode(record, &r, &err);
    json_decref(record);
    ob_record_free(&r);
    return rc;
}

/* The poison reason when NewImage.name is set to attr_json (NULL: removed). */
static void poison_with(const char *name, const char *attr_json, char reason[256])
{
    struct ob_record r = {0};
    reason[0] = 0;
    if (decode_with(name, attr_json, &r) == OB_RECORD_POISON)
        snprintf(reason, 256, "%s", r.poison_reason);
    ob_record_free(&r);
}

/* One row of a poison table: NewImage.name set to attr_json (NULL:
 * removed) makes the record poison for this reason. */
struct poison_case {
    const char *name, *attr_json, *reason;
};

/* Checks every row, naming each one that gives another reason. */
static void check_poison_cases(const struct poison_case *cases, size_t n, int line)
{
    for (size_t i = 0; i < n; i++) {
        char reason[256];
        poison_with(cases[i].name, cases[i].attr_json, reason);
        if (strcmp(reason, cases[i].reason) != 0)
            ob_test_fail(__FILE__, line, "%s %s:\n  got      \"%s\"\n  expected \"%s\"", cases[i].name,
                         cases[i].attr_json ? cases[i].attr_json : "removed", reason, cases[i].reason);
    }
}

#define CHECK_POISON_CASES(cases) check_poison_cases((cases), sizeof(cases) / sizeof(cases)[0], __LINE__)

TEST(record_insert_decodes_every_attribute)
{
    struct ob_record r = {0};
    CHECK_INT(decode(insert_record(), &r), OB_RECORD_MESSAGE);
    const struct ob_message *m = &r.msg;
    CHECK_STR(m->pk, "order-1");
    CHECK_STR(m->sk, "m-1");
    CHECK_STR(m->message_type, "OrderPlaced");
    CHECK_STR(m->aggregate_id, "42");
    CHECK_STR(m->aggregate_type, "Order");
    CHECK_STR(m->correlation_id, "c-1");
    CHECK_STR(m->causation_id, "c-0");
    CHECK_STR(m->created_at, "2025-11-25T22:05:12.123Z");
    CHECK_INT(m->created_at_ms, 1764108312123LL);
    CHECK_INT(m->retry_count, 3);
    CHECK_STR(m->sequence_number, "000000000000000000123");
    CHECK_INT(r.size_bytes, 321);
    ob_record_free(&r);
}

TEST(record_payload_is_base64_decoded_and_nul_terminated)
{
    struct ob_record r = {0};
    CHECK_INT(decode(insert_record(), &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.payload_len, 7);
    CHECK_STR((const char *)r.msg.payload, "{\"a\":1}");
    ob_record_free(&r);
}

TEST(record_empty_payload_is_zero_bytes_not_poison)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("payload", "{\"S\":\"\"}", &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.payload_len, 0);
    CHECK(r.msg.payload);
    CHECK_INT(r.msg.payload[0], 0);
    ob_record_free(&r);
}

TEST(record_headers_keep_their_order_and_are_found_case_insensitively)
{
    struct ob_record r = {0};
    CHECK_INT(decode(insert_record(), &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.n_headers, 2);
    CHECK_STR(r.msg.headers[0].name, "Content-Type");
    CHECK_STR(r.msg.headers[0].value, "application/json");
    CHECK_STR(r.msg.headers[1].name, "tenant");
    CHECK_STR(ob_message_header(&r.msg, "content-type"), "application/json");
    CHECK_STR(ob_message_header(&r.msg, "TENANT"), "acme");
    CHECK(!ob_message_header(&r.msg, "missing"));
    ob_record_free(&r);
}

/* A decoded message's strings share one block sized from the image: the
 * densest headers text (one-character names and values), escapes that
 * shrink when decoded and a repeated name all fit, whole and in order. */
TEST(record_headers_of_every_density_decode_whole)
{
    json_t *obj = json_object();
    char name[2] = { 0 }, value[2] = { 0 };
    for (int i = 0; i < 52; i++) {
        name[0] = (char)(i < 26 ? 'a' + i : 'A' + i - 26);
        value[0] = (char)('0' + i % 10);
        json_object_set_new(obj, name, json_string(value));
    }
    json_object_set_new(obj, "\u00e9\n", json_string("\u00e9t\u00e9\t"));
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    json_t *rec = insert_record();
    json_object_set_new(new_image(rec), "headers", json_pack("{s:s}", "S", text));
    free(text);
    set_attr(rec, "pk", "{\"S\":\"caf\\u00e9 \\\"q\\\"\"}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.n_headers, 53);
    CHECK_STR(r.msg.headers[0].name, "a");
    CHECK_STR(r.msg.headers[51].name, "Z");
    CHECK_STR(r.msg.headers[51].value, "1");
    CHECK_STR(r.msg.headers[52].name, "\u00e9\n");
    CHECK_STR(r.msg.headers[52].value, "\u00e9t\u00e9\t");
    CHECK_STR(r.msg.pk, "caf\u00e9 \"q\"");
    CHECK_STR((const char *)r.msg.payload, "{\"a\":1}");
    ob_record_free(&r);
}

TEST(record_a_repeated_header_name_takes_the_last_value_in_the_first_place)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("headers", "{\"S\":\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":\\\"2\\\",\\\"a\\\":\\\"3\\\"}\"}", &r),
              OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.n_headers, 2);
    CHECK_STR(r.msg.headers[0].name, "a");
    CHECK_STR(r.msg.headers[0].value, "3");
    CHECK_STR(r.msg.headers[1].value, "2");
    ob_record_free(&r);
}

TEST(record_only_pk_sk_and_payload_are_required)
{
    json_t *rec = insert_record();
    static const char *const optional[] = {"headers", "messageType", "aggregateId", "aggregateType",
                                           "correlationId", "causationId", "isPublished", "retryCount",
                                           "createdAt"};
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++)
        json_object_del(new_image(rec), optional[i]);
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    CHECK_STR(r.msg.pk, "order-1");
    CHECK(!r.msg.message_type && !r.msg.aggregate_id && !r.msg.aggregate_type);
    CHECK(!r.msg.correlation_id && !r.msg.causation_id && !r.msg.created_at);
    CHECK_INT(r.msg.n_headers, 0);
    CHECK_INT(r.msg.created_at_ms, 0);
    CHECK_INT(r.msg.retry_count, 0);
    ob_record_free(&r);
}

TEST(record_null_typed_optional_attribute_reads_as_absent)
{
    json_t *rec = insert_record();
    set_attr(rec, "correlationId", "{\"NULL\":true}");
    set_attr(rec, "headers", "{\"NULL\":true}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    CHECK(!r.msg.correlation_id);
    CHECK_INT(r.msg.n_headers, 0);
    ob_record_free(&r);
}

TEST(record_unknown_attributes_are_ignored)
{
    json_t *rec = insert_record();
    set_attr(rec, "tenantId", "{\"N\":\"7\"}");
    set_attr(rec, "extra", "{\"M\":{\"x\":{\"L\":[]}}}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    ob_record_free(&r);
}

TEST(record_unparseable_created_at_is_kept_but_not_poison)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("createdAt", "{\"S\":\"yesterday\"}", &r), OB_RECORD_MESSAGE);
    CHECK_STR(r.msg.created_at, "yesterday");
    CHECK_INT(r.msg.created_at_ms, 0);
    ob_record_free(&r);
}

TEST(record_approximate_creation_time_is_fractional_seconds_to_ms)
{
    struct ob_record r = {0};
    CHECK_INT(decode(insert_record(), &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.approximate_creation_ms, 1764108312500LL);
    ob_record_free(&r);

    json_t *rec = insert_record();
    json_object_set_new(json_object_get(rec, "dynamodb"), "ApproximateCreationDateTime", json_integer(1764108312));
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.approximate_creation_ms, 1764108312000LL);
    ob_record_free(&r);
}

/* The decimal forms a stream writes, read to the millisecond. */
TEST(record_approximate_creation_time_keeps_milliseconds_and_rounds_finer_fractions)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        { "1764108312", 1764108312000LL },    { "1764108312.1", 1764108312100LL },
        { "1764108312.12", 1764108312120LL }, { "1764108312.123", 1764108312123LL },
        { "1764108312.1236", 1764108312124LL }, { "1.7641083121e9", 1764108312100LL },
        { "0", 0 },                           { "99999999999.5", 99999999999500LL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_buf text = { 0 };
        const char *at = strstr(insert_json, "1764108312.5");
        ob_buf_append(&text, insert_json, (size_t)(at - insert_json));
        ob_buf_cat(&text, cases[i].text, at + strlen("1764108312.5"), NULL);
        struct ob_record r = { 0 };
        struct ob_error err;
        CHECK_INT(ob_record_decode_text(text.data, text.len, &r, &err), OB_OK);
        CHECK_INT(r.msg.approximate_creation_ms, cases[i].ms);
        ob_record_free(&r);
        ob_buf_free(&text);
    }
}

TEST(record_is_published_false_is_a_message)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("isPublished", "{\"BOOL\":false}", &r), OB_RECORD_MESSAGE);
    ob_record_free(&r);
}

/* The skip reason of insert_record() with eventName replaced. */
static void skip_reason_of_event(json_t *event_name, const char **reason, struct ob_record *r)
{
    json_t *rec = insert_record();
    if (event_name)
        json_object_set_new(rec, "eventName", event_name);
    else
        json_object_del(rec, "eventName");
    *reason = decode(rec, r) == OB_RECORD_SKIP ? r->skip_reason : NULL;
}

TEST(record_modify_is_skipped)
{
    struct ob_record r = {0};
    const char *reason;
    skip_reason_of_event(json_string("MODIFY"), &reason, &r);
    CHECK_STR(reason, "MODIFY");
    CHECK_STR(r.msg.sequence_number, "000000000000000000123");
    CHECK_INT(r.msg.approximate_creation_ms, 1764108312500LL);
    ob_record_free(&r);
}

TEST(record_remove_is_skipped)
{
    struct ob_record r = {0};
    const char *reason;
    skip_reason_of_event(json_string("REMOVE"), &reason, &r);
    CHECK_STR(reason, "REMOVE");
    ob_record_free(&r);
}

TEST(record_unknown_or_missing_event_name_is_skipped_as_unknown_event)
{
    json_t *const event_names[] = {json_string("insert"), json_integer(1), NULL /* absent */};
    for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++) {
        struct ob_record r = {0};
        const char *reason;
        skip_reason_of_event(event_names[i], &reason, &r);
        CHECK_STR(reason, "unknown event");
        ob_record_free(&r);
    }
}

TEST(record_insert_of_a_published_item_is_skipped)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("isPublished", "{\"BOOL\":true}", &r), OB_RECORD_SKIP);
    CHECK_STR(r.skip_reason, "published");
    CHECK_STR(r.msg.sequence_number, "000000000000000000123");
    ob_record_free(&r);
}

TEST(record_published_item_is_skipped_even_with_a_bad_payload)
{
    json_t *rec = insert_record();
    set_attr(rec, "isPublished", "{\"BOOL\":true}");
    set_attr(rec, "payload", "{\"S\":\"not base64\"}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_SKIP);
    CHECK_STR(r.skip_reason, "published");
    ob_record_free(&r);
}

TEST(record_insert_without_new_image_is_no_image_not_poison)
{
    json_t *rec = insert_record();
    json_object_del(json_object_get(rec, "dynamodb"), "NewImage");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_NO_IMAGE);
    CHECK(r.poison_reason == NULL);
    CHECK_STR(r.msg.sequence_number, "000000000000000000123");
    ob_record_free(&r);
}

TEST(record_insert_whose_new_image_is_not_an_item_is_poison_with_keys_from_keys)
{
    json_t *rec = insert_record();
    json_object_set_new(json_object_get(rec, "dynamodb"), "NewImage", json_string("not an item"));
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_POISON);
    CHECK_STR(r.poison_reason, "NewImage is not an item");
    CHECK_STR(r.msg.pk, "order-1");
    CHECK_STR(r.msg.sk, "m-1");
    CHECK_STR(r.msg.sequence_number, "000000000000000000123");
    ob_record_free(&r);
}

TEST(record_pk_missing_or_not_a_string_is_poison)
{
    static const struct poison_case cases[] = {
        {"pk", NULL, "pk is missing or not a string"},
        {"pk", "{\"N\":\"1\"}", "pk is missing or not a string"},
        {"pk", "{\"S\":17}", "pk is missing or not a string"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_sk_missing_or_not_a_string_is_poison)
{
    static const struct poison_case cases[] = {
        {"sk", NULL, "sk is missing or not a string"},
        {"sk", "{\"B\":\"AAAA\"}", "sk is missing or not a string"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_poison_keeps_pk_and_sk_when_they_are_strings)
{
    json_t *rec = insert_record();
    set_attr(rec, "payload", "{\"S\":\"%%%\"}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_POISON);
    CHECK_STR(r.msg.pk, "order-1");
    CHECK_STR(r.msg.sk, "m-1");
    CHECK_STR(r.msg.sequence_number, "000000000000000000123");
    ob_record_free(&r);
}

TEST(record_payload_missing_is_poison)
{
    static const struct poison_case cases[] = {
        {"payload", NULL, "payload is missing"},
        {"payload", "{\"NULL\":true}", "payload is missing"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_payload_not_a_string_is_poison)
{
    static const struct poison_case cases[] = {
        {"payload", "{\"B\":\"eyJhIjoxfQ==\"}", "attribute payload is not a string (B)"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_payload_not_strict_base64_is_poison)
{
    static const char *const bad[] = {"{\"S\":\"eyJhIjoxfQ\"}", "{\"S\":\"eyJh IjoxfQ==\"}",
                                      "{\"S\":\"eyJhIjoxfQ==\\n\"}", "{\"S\":\"!!!!\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char reason[256];
        poison_with("payload", bad[i], reason);
        CHECK_STR(reason, "payload is not valid base64");
    }
}

TEST(record_headers_not_a_json_object_of_strings_is_poison)
{
    static const char *const bad[] = {"{\"S\":\"[\\\"a\\\"]\"}", "{\"S\":\"{\\\"a\\\":1}\"}",
                                      "{\"S\":\"{\\\"a\\\":null}\"}", "{\"S\":\"{\\\"a\\\":\"}",
                                      "{\"S\":\"\"}", "{\"S\":\"\\\"text\\\"\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char reason[256];
        poison_with("headers", bad[i], reason);
        CHECK_STR(reason, "headers is not a JSON object of strings");
    }
}

TEST(record_headers_of_another_dynamodb_type_is_poison)
{
    static const struct poison_case cases[] = {
        {"headers", "{\"M\":{\"a\":{\"S\":\"b\"}}}", "attribute headers is not a string (M)"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_string_attributes_of_another_type_are_poison)
{
    static const char *const names[] = {"messageType", "aggregateId", "aggregateType", "correlationId",
                                        "causationId", "createdAt", "publishedAt", "lastError"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char reason[256], want[256];
        poison_with(names[i], "{\"N\":\"1\"}", reason);
        snprintf(want, sizeof want, "attribute %s is not a string (N)", names[i]);
        CHECK_STR(reason, want);
    }
}

TEST(record_is_published_of_another_type_is_poison)
{
    static const struct poison_case cases[] = {
        {"isPublished", "{\"S\":\"true\"}", "attribute isPublished is not a boolean (S)"},
        {"isPublished", "{\"BOOL\":\"true\"}", "attribute isPublished has a malformed BOOL value"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_number_attributes_of_another_type_are_poison)
{
    static const struct poison_case cases[] = {
        {"retryCount", "{\"S\":\"3\"}", "attribute retryCount is not a number (S)"},
        {"ttl", "{\"BOOL\":true}", "attribute ttl is not a number (BOOL)"},
        {"retryCount", "{\"N\":3}", "attribute retryCount has a malformed N value"},
        {"retryCount", "{\"N\":\"-1\"}", "attribute retryCount is not a whole number of at least 0"},
        {"retryCount", "{\"N\":\"1.5\"}", "attribute retryCount is not a whole number of at least 0"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_retry_count_may_be_written_with_an_exponent)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("retryCount", "{\"N\":\"2E1\"}", &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.retry_count, 20);
    ob_record_free(&r);
}

TEST(record_retry_count_is_read_whole_up_to_1e15_and_beyond_is_poison)
{
    struct ob_record r = {0};
    CHECK_INT(decode_with("retryCount", "{\"N\":\"999999999999999\"}", &r), OB_RECORD_MESSAGE);
    CHECK(r.msg.retry_count == 999999999999999);
    ob_record_free(&r);
    CHECK_INT(decode_with("retryCount", "{\"N\":\"0007\"}", &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.retry_count, 7);
    ob_record_free(&r);
    static const struct poison_case cases[] = {
        {"retryCount", "{\"N\":\"10000000000000001\"}", "attribute retryCount is not a whole number of at least 0"},
        {"retryCount", "{\"N\":\"\"}", "attribute retryCount is not a whole number of at least 0"},
        {"retryCount", "{\"N\":\"12a\"}", "attribute retryCount is not a whole number of at least 0"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_attribute_that_is_not_an_attribute_value_is_poison)
{
    static const struct poison_case cases[] = {
        {"messageType", "\"OrderPlaced\"", "attribute messageType is not a DynamoDB attribute value"},
        {"aggregateId", "{\"S\":\"a\",\"N\":\"1\"}", "attribute aggregateId is not a DynamoDB attribute value"},
        {"causationId", "{\"S\":null}", "attribute causationId has a malformed S value"},
    };
    CHECK_POISON_CASES(cases);
}

TEST(record_poison_reason_is_the_first_problem_found)
{
    json_t *rec = insert_record();
    set_attr(rec, "payload", "{\"S\":\"%%%\"}");
    set_attr(rec, "messageType", "{\"N\":\"1\"}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_POISON);
    CHECK_STR(r.poison_reason, "payload is not valid base64");
    ob_record_free(&r);
}

TEST(record_without_sequence_number_or_dynamodb_is_an_error)
{
    json_t *rec = insert_record();
    json_object_del(json_object_get(rec, "dynamodb"), "SequenceNumber");
    CHECK_INT(decode_result(rec), OB_ERR_INVALID);

    rec = insert_record();
    json_object_set_new(json_object_get(rec, "dynamodb"), "SequenceNumber", json_integer(123));
    CHECK_INT(decode_result(rec), OB_ERR_INVALID);

    rec = insert_record();
    json_object_set_new(rec, "dynamodb", json_string("x"));
    CHECK_INT(decode_result(rec), OB_ERR_INVALID);

    CHECK_INT(decode_result(json_array()), OB_ERR_INVALID);
}

TEST(seq_compare_orders_decimal_strings_as_numbers)
{
    CHECK_INT(ob_seq_compare("000000000000000000123", "123"), 0);
    CHECK(ob_seq_compare("99", "100") < 0);
    CHECK(ob_seq_compare("100", "99") > 0);
    CHECK(ob_seq_compare("0000124", "123") > 0);
    CHECK(ob_seq_compare("49600000000000000000000000000000000000000000000000001",
                         "49600000000000000000000000000000000000000000000000002") < 0);
    CHECK_INT(ob_seq_compare("0", "000"), 0);
    CHECK_INT(ob_seq_compare("", "0"), 0);
}

/* xorshift64*: a fixed seed makes every run feed the same inputs. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

TEST(record_decoder_survives_mutated_and_truncated_records)
{
    static const char replacements[] = "{}[]\":,0123456789aSNBOL \\tfn";
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    size_t len = strlen(insert_json);
    int decoded = 0;
    for (int round = 0; round < 2000; round++) {
        char text[sizeof insert_json];
        memcpy(text, insert_json, sizeof insert_json);
        int edits = 1 + (int)(next_random(&state) % 4);
        for (int e = 0; e < edits; e++)
            text[next_random(&state) % len] = replacements[next_random(&state) % (sizeof replacements - 1)];
        if (next_random(&state) % 8 == 0)
            text[next_random(&state) % len] = 0;
        json_t *rec = json_loads(text, 0, NULL);
        if (!rec)
            continue;
        struct ob_record r = {0};
        struct ob_error err = {0};
        enum ob_err rc = ob_record_decode(rec, &r, &err);
        json_decref(rec);
        decoded++;
        if (rc == OB_OK) {
            CHECK(r.msg.sequence_number);
            CHECK(r.kind == OB_RECORD_MESSAGE || r.kind == OB_RECORD_SKIP || r.kind == OB_RECORD_POISON ||
                  r.kind == OB_RECORD_NO_IMAGE);
            CHECK((r.kind == OB_RECORD_SKIP) == (r.skip_reason != NULL));
            CHECK((r.kind == OB_RECORD_POISON) == (r.poison_reason != NULL));
            if (r.kind == OB_RECORD_MESSAGE)
                CHECK(r.msg.pk && r.msg.sk && r.msg.payload);
        } else {
            CHECK_INT(rc, OB_ERR_INVALID);
        }
        ob_record_free(&r);
    }
    CHECK(decoded >= 300);
}

/* ---- GetRecords pages ---------------------------------------------------------- */

/* ob_records_page_decode on a copy of text in a buffer of exactly its
 * length: no terminator, so a read past the end is a heap overflow under
 * ASan. */
static enum ob_err decode_page(const char *text, struct ob_records_page *page, struct ob_error *err)
{
    size_t len = strlen(text);
    char *exact = malloc(len);
    if (len)
        memcpy(exact, text, len);
    enum ob_err rc = ob_records_page_decode(exact, len, page, err);
    free(exact);
    return rc;
}

/* insert_record() with eventName and SequenceNumber replaced. */
static json_t *record_with(const char *event, const char *seq)
{
    json_t *rec = insert_record();
    json_object_set_new(rec, "eventName", json_string(event));
    json_object_set_new(json_object_get(rec, "dynamodb"), "SequenceNumber", json_string(seq));
    return rec;
}

/* A GetRecords answer (owned text) holding records (stolen) and, unless
 * next is NULL, a NextShardIterator; flags as for json_dumps. */
static char *page_text_with(json_t *records, const char *next, size_t flags)
{
    json_t *top = json_object();
    json_object_set_new(top, "Records", records);
    if (next)
        json_object_set_new(top, "NextShardIterator", json_string(next));
    char *text = json_dumps(top, flags);
    json_decref(top);
    return text;
}

static char *page_text(json_t *records, const char *next)
{
    return page_text_with(records, next, JSON_COMPACT);
}

/* Whether decoding text as a page gives what jansson and ob_record_decode
 * give for each element of its Records: the records ob_record_decode
 * accepts, in order and equal field by field (record_difference), the
 * others counted as malformed, and the same NextShardIterator. Fails the
 * test, naming what, when not. */
static bool page_agrees_with_record_decode(const char *text, const char *what)
{
    json_t *top = json_loads(text, 0, NULL);
    if (!json_is_object(top)) {
        ob_test_fail(__FILE__, __LINE__, "%s: jansson does not read an object", what);
        json_decref(top);
        return false;
    }
    struct ob_records_page page;
    struct ob_error err = {0};
    if (decode_page(text, &page, &err) != OB_OK) {
        ob_test_fail(__FILE__, __LINE__, "%s: the page does not decode: %s", what, err.msg);
        json_decref(top);
        return false;
    }
    bool ok = true;
    const char *next = json_string_value(json_object_get(top, "NextShardIterator"));
    if (!record_diff_same_str(page.next_iterator, next)) {
        ob_test_fail(__FILE__, __LINE__, "%s: next_iterator \"%s\", expected \"%s\"", what,
                     page.next_iterator ? page.next_iterator : "(null)", next ? next : "(null)");
        ok = false;
    }
    size_t decoded = 0, malformed = 0, i;
    const json_t *rec;
    json_array_foreach(json_object_get(top, "Records"), i, rec) {
        struct ob_record want = {0};
        struct ob_error rerr = {0};
        if (ob_record_decode(rec, &want, &rerr) != OB_OK) {
            malformed++;
        } else if (decoded < page.n) {
            const char *field = record_difference(&page.records[decoded], &want);
            if (field && ok) {
                ob_test_fail(__FILE__, __LINE__, "%s: element %zu (record %zu, sequence number %s): %s differs",
                             what, i, decoded, want.msg.sequence_number, field);
                ok = false;
            }
            decoded++;
        } else {
            decoded++;
        }
        ob_record_free(&want);
    }
    if (ok && (page.n != decoded || page.malformed != malformed)) {
        ob_test_fail(__FILE__, __LINE__, "%s: %zu records and %zu malformed, expected %zu and %zu", what, page.n,
                     page.malformed, decoded, malformed);
        ok = false;
    }
    if (ok && page.malformed && !page.first_malformed[0]) {
        ob_test_fail(__FILE__, __LINE__, "%s: malformed elements without a reason", what);
        ok = false;
    }
    ob_records_page_free(&page);
    json_decref(top);
    return ok;
}

TEST(page_insert_modify_and_remove_decode_to_message_skip_skip)
{
    json_t *records = json_array();
    json_array_append_new(records, record_with("INSERT", "100"));
    json_array_append_new(records, record_with("MODIFY", "101"));
    json_array_append_new(records, record_with("REMOVE", "102"));
    char *text = page_text(records, "it-1");
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(text, &page, &err), OB_OK);
    CHECK_INT(page.n, 3);
    CHECK_INT(page.malformed, 0);
    CHECK_INT(page.records[0].kind, OB_RECORD_MESSAGE);
    CHECK_INT(page.records[1].kind, OB_RECORD_SKIP);
    CHECK_INT(page.records[2].kind, OB_RECORD_SKIP);
    CHECK_STR(page.records[1].skip_reason, "MODIFY");
    CHECK_STR(page.records[2].skip_reason, "REMOVE");
    static const char *const seqs[] = {"100", "101", "102"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(page.records[i].msg.sequence_number, seqs[i]);
        CHECK_INT(page.records[i].msg.approximate_creation_ms, 1764108312500LL);
        CHECK_INT(page.records[i].size_bytes, 321);
    }
    CHECK_STR(page.records[0].msg.pk, "order-1");
    CHECK_STR(page.records[0].msg.message_type, "OrderPlaced");
    CHECK_STR((const char *)page.records[0].msg.payload, "{\"a\":1}");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "INSERT, MODIFY, REMOVE"));
    free(text);
}

TEST(page_records_keep_stream_order)
{
    static const char *const events[] = {"REMOVE", "INSERT", "MODIFY", "INSERT", "MODIFY", "REMOVE", "INSERT"};
    const size_t n = sizeof events / sizeof events[0];
    json_t *records = json_array();
    char seq[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(seq, sizeof seq, "4960000000000000000000%zu", i + 1);
        json_array_append_new(records, record_with(events[i], seq));
    }
    char *text = page_text(records, NULL);
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(text, &page, &err), OB_OK);
    CHECK_INT(page.n, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(seq, sizeof seq, "4960000000000000000000%zu", i + 1);
        CHECK_STR(page.records[i].msg.sequence_number, seq);
        CHECK_INT(page.records[i].kind, strcmp(events[i], "INSERT") == 0 ? OB_RECORD_MESSAGE : OB_RECORD_SKIP);
    }
    ob_records_page_free(&page);
    free(text);
}

TEST(page_next_shard_iterator_is_kept_and_absent_or_null_is_null)
{
#define ITERATOR "arn:aws:dynamodb:us-east-1:1:table/outbox/stream/2025-11-25T00:00:00.000|1|AAAA"
    static const struct {
        const char *text;
        const char *iterator; /* NULL: none */
    } cases[] = {
        {"{\"Records\":[],\"NextShardIterator\":\"" ITERATOR "\"}", ITERATOR},
        {"{\"Records\":[]}", NULL},
        {"{\"Records\":[],\"NextShardIterator\":null}", NULL},
        {"{\"NextShardIterator\":\"\",\"Records\":[]}", ""},
    };
#undef ITERATOR
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_records_page page;
        struct ob_error err = {0};
        CHECK_INT(decode_page(cases[i].text, &page, &err), OB_OK);
        bool same = record_diff_same_str(page.next_iterator, cases[i].iterator);
        if (!same)
            ob_test_fail(__FILE__, __LINE__, "%s: next_iterator \"%s\"", cases[i].text,
                         page.next_iterator ? page.next_iterator : "(null)");
        ob_records_page_free(&page);
    }
}

TEST(page_empty_records_array_gives_no_records)
{
    static const char *const texts[] = {"{\"Records\":[],\"NextShardIterator\":\"it\"}", "{\"Records\": [ ] }",
                                        "{}", "{\"NextShardIterator\":\"it\"}"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct ob_records_page page;
        struct ob_error err = {0};
        CHECK_INT(decode_page(texts[i], &page, &err), OB_OK);
        CHECK_INT(page.n, 0);
        CHECK_INT(page.malformed, 0);
        ob_records_page_free(&page);
        CHECK(page_agrees_with_record_decode(texts[i], texts[i]));
    }
}

TEST(page_elements_that_are_not_stream_records_are_counted_and_the_rest_decoded)
{
    json_t *records = json_array();
    json_array_append_new(records, record_with("INSERT", "1"));
    json_array_append_new(records, json_loads("{\"eventName\":\"MODIFY\",\"dynamodb\":{\"Keys\":{}}}", 0, NULL));
    json_array_append_new(records, json_integer(42));
    json_array_append_new(records, json_loads("{\"eventName\":\"INSERT\"}", 0, NULL));
    json_array_append_new(records, json_string("x"));
    json_array_append_new(records, json_null());
    json_array_append_new(records, json_array());
    json_array_append_new(records, json_loads("{\"eventName\":\"REMOVE\",\"dynamodb\":\"x\"}", 0, NULL));
    json_array_append_new(records, json_loads("{\"dynamodb\":{\"SequenceNumber\":7}}", 0, NULL));
    json_array_append_new(records, record_with("MODIFY", "2"));
    char *text = page_text(records, "it");
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(text, &page, &err), OB_OK);
    CHECK_INT(page.n, 2);
    CHECK_INT(page.malformed, 8);
    CHECK_STR(page.first_malformed, "not a stream record: no dynamodb.SequenceNumber");
    CHECK_STR(page.records[0].msg.sequence_number, "1");
    CHECK_INT(page.records[0].kind, OB_RECORD_MESSAGE);
    CHECK_STR(page.records[1].msg.sequence_number, "2");
    CHECK_STR(page.next_iterator, "it");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "malformed elements"));
    free(text);

    /* A first element that is not an object gives the first reason. */
    CHECK_INT(decode_page("{\"Records\":[5,{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"3\"}}]}",
                          &page, &err),
              OB_OK);
    CHECK_INT(page.n, 1);
    CHECK_INT(page.malformed, 1);
    CHECK(strncmp(page.first_malformed, "not a stream record", 19) == 0);
    ob_records_page_free(&page);
}

TEST(page_escaped_sequence_number_iterator_and_event_are_decoded)
{
    static const char text[] =
        "{\"Records\":[{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"\\u0031\\u00322\\u0033\"}},"
        "{\"eventName\":\"INS\\u0045RT\",\"dynamodb\":{\"SequenceNumber\":\"\\u0034\\u0035\\u0036\","
        "\"NewImage\":{\"pk\":{\"S\":\"p\\u00e9\"},\"sk\":{\"S\":\"s\\/1\"},\"payload\":{\"S\":\"eyJhIjoxfQ\\u003d=\"},"
        "\"messageType\":{\"S\":\"a\\\"b\\\\c\\n\"}}}}],"
        "\"NextShardIterator\":\"it\\u002f\\\"x\\\"\\\\y\"}";
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(text, &page, &err), OB_OK);
    CHECK_INT(page.n, 2);
    CHECK_STR(page.records[0].msg.sequence_number, "1223");
    CHECK_STR(page.records[0].skip_reason, "MODIFY");
    CHECK_STR(page.records[1].msg.sequence_number, "456");
    CHECK_INT(page.records[1].kind, OB_RECORD_MESSAGE);
    CHECK_STR(page.records[1].msg.pk, "p\xc3\xa9");
    CHECK_STR(page.records[1].msg.sk, "s/1");
    CHECK_STR(page.records[1].msg.message_type, "a\"b\\c\n");
    CHECK_STR((const char *)page.records[1].msg.payload, "{\"a\":1}");
    CHECK_STR(page.next_iterator, "it/\"x\"\\y");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "escapes"));
}

TEST(page_white_space_and_key_order_do_not_matter)
{
    static const char pretty[] =
        "\n {\n  \"NextShardIterator\" : \"it-2\" ,\n  \"Records\" : [\n   {\n    \"dynamodb\" : {\n"
        "     \"SizeBytes\" : 12 ,\n"
        "     \"NewImage\" : { \"pk\" : { \"S\" : \"p\" } ,\t\"sk\" : {\"S\":\"s\"},\r\n"
        "       \"payload\" : { \"S\" : \"eyJhIjoxfQ==\" } } ,\n"
        "     \"SequenceNumber\" : \"9\" ,\n     \"ApproximateCreationDateTime\" : 1764108312.25\n    } ,\n"
        "    \"eventName\" : \"INSERT\"\n   } ,\n"
        "   { \"dynamodb\" : { \"SequenceNumber\" : \"10\" } , \"eventName\" : \"REMOVE\" }\n  ]\n }\n ";
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(pretty, &page, &err), OB_OK);
    CHECK_INT(page.n, 2);
    CHECK_INT(page.records[0].kind, OB_RECORD_MESSAGE);
    CHECK_STR(page.records[0].msg.pk, "p");
    CHECK_STR(page.records[0].msg.sequence_number, "9");
    CHECK_INT(page.records[0].msg.approximate_creation_ms, 1764108312250LL);
    CHECK_INT(page.records[0].size_bytes, 12);
    CHECK_STR(page.records[1].skip_reason, "REMOVE");
    CHECK_STR(page.records[1].msg.sequence_number, "10");
    CHECK_STR(page.next_iterator, "it-2");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(pretty, "pretty, keys reordered"));

    /* The same page compact and indented decodes to the same records. */
    json_t *records = json_array();
    json_array_append_new(records, insert_record());
    json_array_append_new(records, record_with("MODIFY", "7"));
    char *compact = page_text(json_deep_copy(records), "it");
    char *indented = page_text_with(records, "it", JSON_INDENT(3));
    struct ob_records_page a, b;
    CHECK_INT(decode_page(compact, &a, &err), OB_OK);
    CHECK_INT(decode_page(indented, &b, &err), OB_OK);
    CHECK_INT(a.n, 2);
    CHECK_INT(b.n, 2);
    for (size_t i = 0; i < 2; i++) {
        const char *field = record_difference(&a.records[i], &b.records[i]);
        CHECK_STR(field ? field : "", "");
    }
    ob_records_page_free(&a);
    ob_records_page_free(&b);
    free(compact);
    free(indented);
}

TEST(page_text_that_is_not_a_json_object_is_invalid)
{
    static const char *const texts[] = {
        "", "   ", "[]", "[{\"Records\":[]}]", "\"Records\"", "42", "null", "true", "not json", "{",
        "{\"Records\":[", "{\"Records\":[]", "{\"Records\":[]}x", "{\"Records\":[]}{}", "{\"Records\":[]},",
        "{'Records':[]}", "{Records:[]}", "{\"Records\":[],}", "{\"Records\":[{\"eventName\":\"MODIFY\",}]}",
        "{\"Records\":[{\"dynamodb\":{\"SequenceNumber\":\"1\"}},]}", "{\"Records\":[{\"eventName\":\"INSERT\"]}",
        "{\"Records\":[],\"NextShardIterator\":\"it}", "{\"NextShardIterator\":\"\\x\",\"Records\":[]}",
        "{\"Records\":[{\"dynamodb\":{\"SequenceNumber\":\"1\",\"NewImage\":{\"a\":[}}}]}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct ob_records_page page;
        struct ob_error err = {0};
        enum ob_err rc = decode_page(texts[i], &page, &err);
        if (rc != OB_ERR_INVALID || err.code != OB_ERR_INVALID || !err.msg[0]) {
            ob_test_fail(__FILE__, __LINE__, "%s: rc %d, expected OB_ERR_INVALID with a message", texts[i], rc);
            if (rc == OB_OK)
                ob_records_page_free(&page);
            continue;
        }
        CHECK(page.n == 0 && !page.records && !page.next_iterator);
    }
}

/* The length of the first proper prefix of text that decodes, each
 * prefix in a buffer of exactly its length; (size_t)-1 when none does. */
static size_t first_accepted_prefix(const char *text)
{
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut++) {
        char *exact = malloc(cut);
        if (cut)
            memcpy(exact, text, cut);
        struct ob_records_page page;
        struct ob_error err = {0};
        enum ob_err rc = ob_records_page_decode(exact, cut, &page, &err);
        free(exact);
        if (rc == OB_OK) {
            ob_records_page_free(&page);
            return cut;
        }
    }
    return (size_t)-1;
}

/* Runs in a child process: under ASan a read past a cut aborts it, and
 * that fails this test alone instead of ending the binary. */
TEST(page_truncated_answer_is_invalid_without_reading_past_its_end)
{
    json_t *records = json_array();
    json_array_append_new(records, insert_record());
    json_array_append_new(records, json_integer(1));
    json_array_append_new(records, record_with("REMOVE", "5"));
    char *compact = page_text(json_deep_copy(records), "it");
    char *indented = page_text_with(records, "it", JSON_INDENT(1));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        const char *texts[] = {compact, indented};
        for (size_t t = 0; t < 2; t++) {
            size_t cut = first_accepted_prefix(texts[t]);
            if (cut != (size_t)-1) {
                printf("  the first %zu bytes decode: %.*s\n", cut, (int)cut, texts[t]);
                fflush(stdout);
                _exit(3);
            }
        }
        _exit(0);
    }
    free(compact);
    free(indented);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        ob_test_fail(__FILE__, __LINE__, "killed by signal %d (a sanitizer report above?)", WTERMSIG(status));
    else if (WEXITSTATUS(status) == 3)
        ob_test_fail(__FILE__, __LINE__, "a truncated answer decodes");
    else if (WEXITSTATUS(status) != 0)
        ob_test_fail(__FILE__, __LINE__, "exit status %d (a sanitizer report above?)", WEXITSTATUS(status));
}

TEST(page_unknown_top_level_keys_are_ignored)
{
    static const char text[] =
        "{\"ResponseMetadata\":{\"RequestId\":\"r\",\"x\":[1,{\"y\":\"]}\\\"\"}]},"
        "\"Records\":[{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"5\"}}],"
        "\"ChildShards\":[{\"ShardId\":\"s\",\"ParentShards\":[\"p\"]}],\"Other\":null,\"N\":-1.5e3,\"B\":true,"
        "\"records\":[1],\"NextShardIteratorX\":\"no\"}";
    struct ob_records_page page;
    struct ob_error err = {0};
    CHECK_INT(decode_page(text, &page, &err), OB_OK);
    CHECK_INT(page.n, 1);
    CHECK_INT(page.malformed, 0);
    CHECK_STR(page.records[0].msg.sequence_number, "5");
    CHECK(!page.next_iterator);
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "unknown keys"));
}

/* The i-th of the record variants the differential runs on (NULL past
 * the last): insert_json as the tests above change it, and elements that
 * are not stream records. */
static json_t *record_variant(size_t i)
{
    json_t *rec = insert_record(), *ddb = json_object_get(rec, "dynamodb");
    switch (i) {
    case 0: break;
    case 1: set_attr(rec, "isPublished", "{\"BOOL\":true}"); break;
    case 2: set_attr(rec, "isPublished", "{\"BOOL\":true}"); set_attr(rec, "payload", "{\"S\":\"not base64\"}"); break;
    case 3: json_object_del(ddb, "NewImage"); break;
    case 4: json_object_del(ddb, "NewImage"); json_object_del(ddb, "Keys"); break;
    case 5: json_object_del(new_image(rec), "payload"); break;
    case 6: set_attr(rec, "payload", "{\"NULL\":true}"); break;
    case 7: set_attr(rec, "payload", "{\"S\":\"%%%\"}"); break;
    case 8: set_attr(rec, "payload", "{\"B\":\"eyJhIjoxfQ==\"}"); break;
    case 9: set_attr(rec, "payload", "{\"S\":\"\"}"); break;
    case 10: set_attr(rec, "headers", "{\"S\":\"[\\\"a\\\"]\"}"); break;
    case 11: set_attr(rec, "headers", "{\"S\":\"{\\\"a\\\":1}\"}"); break;
    case 12:
        set_attr(rec, "headers", "{\"S\":\"{\\\"a\\\\u00e9\\\":\\\"\\\\\\\"q\\\\\\\"\\\", \\\"b\\\" : \\\"\\\"}\"}");
        break;
    case 13: set_attr(rec, "headers", "{\"M\":{\"a\":{\"S\":\"b\"}}}"); break;
    case 14: set_attr(rec, "headers", "{\"NULL\":true}"); set_attr(rec, "correlationId", "{\"NULL\":true}"); break;
    case 15: set_attr(rec, "pk", "{\"N\":\"1\"}"); break;
    case 16: json_object_del(new_image(rec), "sk"); break;
    case 17: set_attr(rec, "pk", "{\"S\":17}"); break;
    case 18: set_attr(rec, "retryCount", "{\"N\":\"2E1\"}"); break;
    case 19: set_attr(rec, "retryCount", "{\"N\":\"1.5\"}"); break;
    case 20: set_attr(rec, "retryCount", "{\"N\":3}"); break;
    case 21: set_attr(rec, "retryCount", "{\"S\":\"3\"}"); break;
    case 22: set_attr(rec, "createdAt", "{\"S\":\"yesterday\"}"); break;
    case 23: set_attr(rec, "messageType", "\"OrderPlaced\""); break;
    case 24: set_attr(rec, "aggregateId", "{\"S\":\"a\",\"N\":\"1\"}"); break;
    case 25: set_attr(rec, "causationId", "{\"S\":null}"); break;
    case 26: set_attr(rec, "isPublished", "{\"S\":\"true\"}"); break;
    case 27: set_attr(rec, "isPublished", "{\"BOOL\":\"true\"}"); break;
    case 28: set_attr(rec, "ttl", "{\"BOOL\":true}"); break;
    case 29: set_attr(rec, "messageType", "{\"S\":\"Bestellung \\u00fc \\\"x\\\"\\n\\t\\\\ \\u2713\"}"); break;
    case 30: set_attr(rec, "extra", "{\"M\":{\"x\":{\"L\":[[],{},\"]\",{\"S\":\"}\"}]}}}"); break;
    case 31:
        set_attr(rec, "payload", "{\"S\":\"eyJh IjoxfQ==\"}");
        set_attr(rec, "messageType", "{\"N\":\"1\"}");
        break;
    case 32: json_object_set_new(ddb, "ApproximateCreationDateTime", json_integer(1764108312)); break;
    case 33: json_object_set_new(ddb, "ApproximateCreationDateTime", json_string("1764108312")); break;
    case 34: json_object_del(ddb, "ApproximateCreationDateTime"); break;
    case 35: json_object_set_new(ddb, "ApproximateCreationDateTime", json_real(-1.5)); break;
    case 36: json_object_set_new(ddb, "ApproximateCreationDateTime", json_real(1e13)); break;
    case 37: json_object_set_new(ddb, "ApproximateCreationDateTime", json_real(0.0005)); break;
    case 38: json_object_set_new(ddb, "ApproximateCreationDateTime", json_real(1764108312.123456789)); break;
    case 39: json_object_set_new(ddb, "SizeBytes", json_real(321.0)); break;
    case 40: json_object_set_new(ddb, "SizeBytes", json_string("321")); break;
    case 41: json_object_del(ddb, "SizeBytes"); break;
    case 42: json_object_set_new(ddb, "SizeBytes", json_integer(-7)); break;
    case 43: json_object_set_new(ddb, "SizeBytes", json_integer(INT64_MAX)); break;
    case 44: json_object_set_new(rec, "eventName", json_string("MODIFY")); break;
    case 45: json_object_set_new(rec, "eventName", json_string("REMOVE")); break;
    case 46: json_object_set_new(rec, "eventName", json_string("insert")); break;
    case 47: json_object_set_new(rec, "eventName", json_integer(1)); break;
    case 48: json_object_del(rec, "eventName"); break;
    case 49: json_object_set_new(rec, "eventName", json_null()); break;
    case 50: json_object_set_new(rec, "dynamodb", json_string("x")); break;
    case 51: json_object_set_new(ddb, "SequenceNumber", json_integer(123)); break;
    case 52: json_object_del(ddb, "SequenceNumber"); break;
    case 53: json_object_set_new(ddb, "SequenceNumber", json_string("\"1\\2\"")); break;
    case 54: json_object_set_new(ddb, "NewImage", json_array()); break;
    case 55: json_object_set_new(ddb, "NewImage", json_object()); break;
    case 56: json_object_set_new(ddb, "OldImage", json_deep_copy(new_image(rec))); break;
    case 57: json_object_set_new(rec, "eventName", json_string("MODIFY"));
             json_object_set_new(ddb, "OldImage", json_deep_copy(new_image(rec))); break;
    case 58: json_decref(rec); return json_integer(5);
    case 59: json_decref(rec); return json_string("{\"dynamodb\":{}}");
    case 60: json_decref(rec); return json_null();
    case 61: json_decref(rec); return json_array();
    case 62: json_decref(rec); return json_object();
    case 63: json_decref(rec); return json_loads("{\"dynamodb\":{\"SequenceNumber\":\"1\"}}", 0, NULL);
    default: json_decref(rec); return NULL;
    }
    return rec;
}

TEST(page_decode_agrees_with_ob_record_decode_element_by_element)
{
    json_t *all = json_array(), *rec;
    char what[64];
    for (size_t i = 0; (rec = record_variant(i)); i++) {
        json_array_append(all, rec);
        /* Each alone, compact and indented, then all of them in one page. */
        for (int indent = 0; indent < 2; indent++) {
            json_t *one = json_array();
            json_array_append(one, rec);
            char *text = page_text_with(one, indent ? "next" : NULL, indent ? JSON_INDENT(2) : JSON_COMPACT);
            snprintf(what, sizeof what, "variant %zu%s", i, indent ? " indented" : "");
            bool ok = page_agrees_with_record_decode(text, what);
            free(text);
            if (!ok) {
                json_decref(rec);
                json_decref(all);
                return;
            }
        }
        json_decref(rec);
    }
    char *text = page_text(all, "it");
    bool ok = page_agrees_with_record_decode(text, "every variant in one page");
    free(text);
    CHECK(ok);
}

TEST(page_decode_agrees_with_ob_record_decode_on_mutated_records)
{
    static const char replacements[] = "{}[]\":,0123456789aSNBOL \\tfnu";
    static const char modify[] = "{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"9\"}}";
    uint64_t state = 0x2545f4914f6cdd1dULL;
    size_t len = strlen(insert_json);
    int compared = 0;
    for (int round = 0; round < 2000; round++) {
        char text[sizeof insert_json];
        memcpy(text, insert_json, sizeof insert_json);
        int edits = 1 + (int)(next_random(&state) % 4);
        for (int e = 0; e < edits; e++)
            text[next_random(&state) % len] = replacements[next_random(&state) % (sizeof replacements - 1)];
        /* The page as sent, whatever it holds: decoded or refused, never a crash. */
        struct ob_buf raw = {0};
        ob_buf_printf(&raw, "{\"Records\":[%s,%s]}", modify, text);
        struct ob_records_page page;
        struct ob_error err = {0};
        if (decode_page(ob_buf_cstr(&raw), &page, &err) == OB_OK)
            ob_records_page_free(&page);
        else
            CHECK(page.n == 0 && !page.records && !page.next_iterator);
        /* Its canonical form (no duplicate keys) against jansson. */
        json_t *top = json_loads(ob_buf_cstr(&raw), 0, NULL);
        ob_buf_free(&raw);
        if (!top)
            continue;
        char *canonical = json_dumps(top, JSON_COMPACT);
        json_decref(top);
        char what[64];
        snprintf(what, sizeof what, "mutation round %d", round);
        bool ok = page_agrees_with_record_decode(canonical, what);
        if (!ok)
            printf("  page: %s\n", canonical);
        free(canonical);
        if (!ok)
            return;
        compared++;
    }
    CHECK(compared >= 300);
}

TEST(page_decode_agrees_with_ob_record_decode_on_unusual_json_text)
{
    /* Valid JSON without duplicate keys, as jansson would not write it. */
    static const char *const texts[] = {
        "{\"Records\":[{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":1.7641083125E9,\"SizeBytes\":3.21e2}}]}",
        "{\"Records\":[{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":1764108312.500000000000000000000000000000000000000000000000000000000000001,"
        "\"SizeBytes\":-0}}]}",
        "{\"Records\":[{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":0.000000000000000000000000000000000000000000000000000000000000001e72}}]}",
        "{\"Records\":[{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"\\u0032\","
        "\"NewImage\":{\"pk\":{\"S\":\"\\ud83d\\ude00\"},\"sk\":{\"S\":\"\\u2028\"},"
        "\"payload\":{\"S\":\"eyJhIjoxfQ==\"},"
        "\"retryCount\":{\"N\":\"1e0\"},\"headers\":{\"S\":\"{ \\\"a\\\" : \\\"\\\\u00e9\\\" }\"}}}}],"
        "\"NextShardIterator\":\"\\u2028\\ud83d\\ude00\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "text %zu", i);
        page_agrees_with_record_decode(texts[i], what);
    }
}
