/* The sqs sink's pure parts: queue names, attributes and their MD5, FIFO
 * ids, size and grouping rules, the SendMessageBatch request and how its
 * answer sets each message's result; and the config check. */
#include "test.h"

#include "delivery_fixture.h"

#include "core/config.h"
#include "sinks/sqs.h"

TEST(queue_names_and_urls_are_told_apart_and_checked)
{
    const char *why = NULL;
    CHECK(ob_sqs_queue_valid("orders", &why));
    CHECK(ob_sqs_queue_valid("orders-2_b.fifo", &why));
    CHECK(ob_sqs_queue_valid("https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo", &why));
    CHECK(ob_sqs_queue_valid("http://127.0.0.1:4566/000000000000/q", &why));
    CHECK(ob_sqs_is_url("http://127.0.0.1:4566/000000000000/q"));
    CHECK(!ob_sqs_is_url("q"));
    CHECK(!ob_sqs_queue_valid("", &why));
    CHECK(!ob_sqs_queue_valid(".fifo", &why));
    CHECK(!ob_sqs_queue_valid("orders.v2", &why));
    CHECK(!ob_sqs_queue_valid("has space", &why));
    CHECK_STR(why, "a queue name is 1 to 80 of A-Z a-z 0-9 - _, optionally ending in .fifo; or give the queue URL");
    char long_name[82];
    memset(long_name, 'q', 81);
    long_name[81] = '\0';
    CHECK(!ob_sqs_queue_valid(long_name, &why));
    CHECK(!ob_sqs_queue_valid("https://sqs.us-east-1.amazonaws.com/123456789012/", &why));
    CHECK(!ob_sqs_queue_valid("https://sqs.us-east-1.amazonaws.com/1/q?x=1", &why));
    CHECK_STR(why, "a queue URL is printable ASCII without spaces, query or fragment");
}

TEST(a_queue_whose_name_ends_in_fifo_is_fifo)
{
    CHECK(ob_sqs_is_fifo("orders.fifo"));
    CHECK(ob_sqs_is_fifo("https://sqs.eu-west-1.amazonaws.com/1/orders.fifo"));
    CHECK(!ob_sqs_is_fifo("orders"));
    CHECK(!ob_sqs_is_fifo("https://sqs.eu-west-1.amazonaws.com/1/orders"));
}

TEST(headers_sqs_refuses_as_attributes_are_left_out)
{
    struct delivery_fixture f;
    delivery_fixture_init(&f, "k", "m1", "{}");
    delivery_fixture_header(&f, "trace-id", "t1");
    delivery_fixture_header(&f, "AWS.Trace", "reserved prefix");
    delivery_fixture_header(&f, "amazon.x", "reserved prefix in any case");
    delivery_fixture_header(&f, ".lead", "leading period");
    delivery_fixture_header(&f, "trail.", "trailing period");
    delivery_fixture_header(&f, "a..b", "doubled period");
    delivery_fixture_header(&f, "has space", "not a name character");
    delivery_fixture_header(&f, "empty", "");
    delivery_fixture_header(&f, "control", "bell\a");
    delivery_fixture_header(&f, "tenant.id", "acme");
    const struct ob_header *attrs[OB_SQS_MAX_ATTRIBUTES];
    size_t n = ob_sqs_attributes(&f.m, attrs);
    CHECK_INT(n, 2);
    CHECK_STR(attrs[0]->name, "trace-id");
    CHECK_STR(attrs[1]->name, "tenant.id");
    ob_ce_free(&f.ce);
}

TEST(only_the_first_ten_good_headers_become_attributes)
{
    static const char *const names[] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11"};
    struct delivery_fixture f;
    delivery_fixture_init(&f, "k", "m1", "{}");
    for (size_t i = 0; i < 12; i++)
        delivery_fixture_header(&f, names[i], "v");
    const struct ob_header *attrs[OB_SQS_MAX_ATTRIBUTES];
    CHECK_INT(ob_sqs_attributes(&f.m, attrs), 10);
    CHECK_STR(attrs[9]->name, "h9");
    ob_ce_free(&f.ce);
}

TEST(message_size_counts_body_and_each_attributes_name_type_and_value)
{
    struct ob_header h[2] = {{(char *)"ab", (char *)"xyz"}, {(char *)"c", (char *)"é"}};
    const struct ob_header *attrs[2] = {&h[0], &h[1]};
    /* 100 + (2 + 6 + 3) + (1 + 6 + 2): é is two bytes. */
    CHECK_INT(ob_sqs_message_size(100, attrs, 2), 120);
}

/* The expected digests were computed by two other implementations of the
 * algorithm (fauxqs's md5OfMessageAttributes and a Python one) that agree. */
TEST(md5_of_message_attributes_is_computed_as_sqs_does)
{
    struct ob_header h[3] = {
        {(char *)"trace-id", (char *)"abc-123"},
        {(char *)"Tenant", (char *)"acme"},
        {(char *)"z.b", (char *)"\xc3\x9c" "n\xc3\xaf" "code \xe2\x9c\x93"},
    };
    const struct ob_header *attrs[3] = {&h[0], &h[1], &h[2]};
    char hex[OB_SQS_MD5_HEX];
    ob_sqs_md5_attributes(attrs, 3, hex);
    CHECK_STR(hex, "5e596c70fd848984c29680c3dff6ef1e");
    const struct ob_header *one[1] = {&h[0]};
    struct ob_header a = {(char *)"a", (char *)"1"};
    one[0] = &a;
    ob_sqs_md5_attributes(one, 1, hex);
    CHECK_STR(hex, "314c77b249893c6b3c765a42cc08b245");
}

TEST(md5_of_the_body_is_plain_md5)
{
    char hex[OB_SQS_MD5_HEX];
    ob_sqs_md5("hello", 5, hex);
    CHECK_STR(hex, "5d41402abc4b2a76b9719d911017c592");
}

TEST(fifo_ids_are_the_value_when_sqs_takes_it_else_its_sha256)
{
    char id[OB_SQS_FIFO_ID_MAX + 1];
    ob_sqs_fifo_id("0195c4d2-7f3a-7b1c-9e0f-1a2b3c4d5e6f", id);
    CHECK_STR(id, "0195c4d2-7f3a-7b1c-9e0f-1a2b3c4d5e6f");
    ob_sqs_fifo_id("order#42:{x}", id);
    CHECK_STR(id, "order#42:{x}");
    /* SHA-256 of "has space" and of "". */
    ob_sqs_fifo_id("has space", id);
    CHECK_STR(id, "47b5c36fc0b017ba576f10f988d0cbcbc78256dab5de0e4689980898e7c715e3");
    ob_sqs_fifo_id("", id);
    CHECK_STR(id, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char long_value[130];
    memset(long_value, 'a', 129);
    long_value[129] = '\0';
    ob_sqs_fifo_id(long_value, id);
    CHECK_INT(strlen(id), 64);
    long_value[128] = '\0';
    ob_sqs_fifo_id(long_value, id);
    CHECK_STR(id, long_value);
}

TEST(a_message_over_max_message_size_is_rejected_as_too_large)
{
    struct delivery_fixture f;
    delivery_fixture_init(&f, "k", "m1", "{\"n\":1}");
    delivery_fixture_header(&f, "trace-id", "t1");
    struct ob_sqs_entry e = {0};
    CHECK(ob_sqs_entry_prepare(&e, &f.d, "q", 1024));
    size_t size = e.size;
    CHECK_INT(size, e.body.len + strlen("trace-id") + strlen("String") + 2);
    ob_sqs_entry_free(&e);
    memset(&e, 0, sizeof e);
    CHECK(ob_sqs_entry_prepare(&e, &f.d, "q", size));
    ob_sqs_entry_free(&e);
    memset(&e, 0, sizeof e);
    CHECK(!ob_sqs_entry_prepare(&e, &f.d, "q", size - 1));
    CHECK_INT(f.d.result, OB_DELIVERY_REJECT);
    CHECK(f.d.too_large);
    CHECK(strstr(f.d.error, "max_message_size"));
    ob_sqs_entry_free(&e);
    ob_ce_free(&f.ce);
}

TEST(a_dead_letters_body_carries_its_reason)
{
    struct delivery_fixture f;
    delivery_fixture_init(&f, "k", "m1", "{\"n\":1}");
    f.d.error_info = "attempts: HTTP 500";
    struct ob_sqs_entry e = {0};
    CHECK(ob_sqs_entry_prepare(&e, &f.d, "q", OB_SQS_MAX_BYTES));
    CHECK(strstr(e.body.data, "\"deadletterreason\":\"attempts: HTTP 500\""));
    ob_sqs_entry_free(&e);
    ob_ce_free(&f.ce);
}

/* Packs messages of sizes[] bound for queues[] as the sink does. */
static size_t pack(const char *const *queues, const size_t *sizes, size_t n, size_t *call_of)
{
    struct ob_aws_entry e[16] = {0};
    for (size_t i = 0; i < n; i++)
        e[i] = (struct ob_aws_entry){.destination = queues[i], .size = sizes[i]};
    return ob_aws_sink_pack(&ob_sqs_batch, e, n, call_of);
}

TEST(a_call_takes_at_most_ten_messages_of_one_queue)
{
    const char *queues[13];
    size_t sizes[13], call_of[13];
    for (size_t i = 0; i < 13; i++) {
        queues[i] = i < 12 ? "a" : "b";
        sizes[i] = 100;
    }
    CHECK_INT(pack(queues, sizes, 13, call_of), 3);
    CHECK_INT(call_of[9], 0);
    CHECK_INT(call_of[10], 1);
    CHECK_INT(call_of[11], 1);
    CHECK_INT(call_of[12], 2);
}

TEST(a_call_stays_within_the_batch_size_limit)
{
    const char *queues[4] = {"a", "a", "a", "a"};
    size_t sizes[4] = {OB_SQS_MAX_BYTES / 2, OB_SQS_MAX_BYTES / 2, 1, OB_SQS_MAX_BYTES}, call_of[4];
    CHECK_INT(pack(queues, sizes, 4, call_of), 3);
    CHECK_INT(call_of[1], 0);
    CHECK_INT(call_of[2], 1);
    CHECK_INT(call_of[3], 2);
}

TEST(the_request_of_a_fifo_queue_has_group_and_deduplication_ids_and_attributes)
{
    struct delivery_fixture f;
    delivery_fixture_init(&f, "key-1", "0195c4d2-id", "{\"n\":1}");
    f.m.created_at = (char *)"2025-01-02T03:04:05.678Z";
    f.ce.time = f.m.created_at;
    delivery_fixture_header(&f, "trace-id", "t\"1");
    struct ob_sqs_entry e = {0};
    CHECK(ob_sqs_entry_prepare(&e, &f.d, "http://127.0.0.1:1/000000000000/q.fifo", OB_SQS_MAX_BYTES));
    e.queue_url = e.queue;
    const struct ob_sqs_entry *one[] = {&e};
    struct ob_buf out = {0};
    ob_sqs_encode_batch(&out, one, 1);
    CHECK_STR(out.data,
              "{\"QueueUrl\":\"http://127.0.0.1:1/000000000000/q.fifo\",\"Entries\":[{\"Id\":\"0\",\"MessageBody\":"
              "\"{\\\"specversion\\\":\\\"1.0\\\",\\\"id\\\":\\\"0195c4d2-id\\\",\\\"source\\\":\\\"/outbox/Order\\\","
              "\\\"type\\\":\\\"Order.Created\\\",\\\"time\\\":\\\"2025-01-02T03:04:05.678Z\\\","
              "\\\"datacontenttype\\\":\\\"application/json\\\",\\\"partitionkey\\\":\\\"key-1\\\","
              "\\\"data\\\":{\\\"n\\\":1}}\",\"MessageAttributes\":{\"trace-id\":{\"DataType\":\"String\","
              "\"StringValue\":\"t\\\"1\"}},\"MessageGroupId\":\"key-1\",\"MessageDeduplicationId\":\"0195c4d2-id\"}]}");
    ob_buf_free(&out);
    ob_sqs_entry_free(&e);
    ob_ce_free(&f.ce);
}

TEST(the_request_of_a_standard_queue_has_no_fifo_ids_and_ids_by_position)
{
    struct delivery_fixture f[2];
    struct ob_sqs_entry e[2] = {{0}};
    for (size_t i = 0; i < 2; i++) {
        delivery_fixture_init(&f[i], "key-1", i ? "m2" : "m1", "{}");
        CHECK(ob_sqs_entry_prepare(&e[i], &f[i].d, "q", OB_SQS_MAX_BYTES));
        e[i].queue_url = "http://127.0.0.1:1/000000000000/q";
    }
    const struct ob_sqs_entry *both[] = {&e[0], &e[1]};
    struct ob_buf out = {0};
    ob_sqs_encode_batch(&out, both, 2);
    json_t *req = json_loads(out.data, 0, NULL);
    CHECK(req);
    json_t *entries = json_object_get(req, "Entries");
    CHECK_INT(json_array_size(entries), 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(entries, 1), "Id")), "1");
    CHECK(!json_object_get(json_array_get(entries, 0), "MessageGroupId"));
    CHECK(!json_object_get(json_array_get(entries, 0), "MessageDeduplicationId"));
    CHECK(!json_object_get(json_array_get(entries, 0), "MessageAttributes"));
    json_decref(req);
    ob_buf_free(&out);
    for (size_t i = 0; i < 2; i++) {
        ob_sqs_entry_free(&e[i]);
        ob_ce_free(&f[i].ce);
    }
}

TEST(a_poison_dead_letter_without_pk_or_sk_goes_to_a_fifo_queue_under_the_empty_keys_group_and_its_event_id)
{
    /* A poison item whose pk and sk are not strings reaches the dead-letter
     * sink with neither; the relay gives its CloudEvent the stream record's
     * sequence number as id. */
    struct delivery_fixture f;
    delivery_fixture_init(&f, NULL, NULL, "{}");
    f.ce.id = "49590338271490256608559692538361571095921575989136588898";
    struct ob_sqs_entry e = {0};
    CHECK(ob_sqs_entry_prepare(&e, &f.d, "http://127.0.0.1:1/000000000000/dlq.fifo", OB_SQS_MAX_BYTES));
    e.queue_url = e.queue;
    const struct ob_sqs_entry *one[] = {&e};
    struct ob_buf out = {0};
    ob_sqs_encode_batch(&out, one, 1);
    json_t *req = json_loads(out.data, 0, NULL);
    json_t *entry = json_array_get(json_object_get(req, "Entries"), 0);
    char empty_group[OB_SQS_FIFO_ID_MAX + 1];
    ob_sqs_fifo_id("", empty_group);
    CHECK_STR(json_string_value(json_object_get(entry, "MessageGroupId")), empty_group);
    CHECK_STR(json_string_value(json_object_get(entry, "MessageDeduplicationId")), f.ce.id);
    json_decref(req);
    ob_buf_free(&out);
    ob_sqs_entry_free(&e);
    ob_ce_free(&f.ce);
}

/* Five prepared messages (m0 with an attribute) and the answer to their batch. */
static void apply(const char *answer_fmt, enum ob_delivery_result want[5], char errors[5][512])
{
    struct delivery_fixture f[5];
    struct ob_sqs_entry e[5] = {{0}};
    char ids[5][4];
    for (size_t i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "m%zu", i);
        delivery_fixture_init(&f[i], "k", ids[i], "{}");
        if (i == 0)
            delivery_fixture_header(&f[i], "a", "1");
        ob_sqs_entry_prepare(&e[i], &f[i].d, "q", OB_SQS_MAX_BYTES);
    }
    char body_md5[OB_SQS_MD5_HEX];
    ob_sqs_md5(e[0].body.data, e[0].body.len, body_md5);
    struct ob_buf text = {0};
    /* Every message's body is the same but for its id: m0's digest fits m0 only. */
    ob_buf_printf(&text, answer_fmt, body_md5);
    json_t *answer = json_loads(text.data, 0, NULL);
    const struct ob_sqs_entry *sent[] = {&e[0], &e[1], &e[2], &e[3], &e[4]};
    ob_sqs_apply_answer(answer, sent, 5);
    for (size_t i = 0; i < 5; i++) {
        want[i] = f[i].d.result;
        memcpy(errors[i], f[i].d.error, sizeof f[i].d.error);
        ob_sqs_entry_free(&e[i]);
        ob_ce_free(&f[i].ce);
    }
    json_decref(answer);
    ob_buf_free(&text);
}

TEST(each_entry_of_an_answer_sets_its_own_messages_result)
{
    enum ob_delivery_result r[5];
    char err[5][512];
    apply("{\"Successful\":[{\"Id\":\"0\",\"MessageId\":\"x\",\"MD5OfMessageBody\":\"%s\","
          "\"MD5OfMessageAttributes\":\"314c77b249893c6b3c765a42cc08b245\"}],"
          "\"Failed\":[{\"Id\":\"1\",\"SenderFault\":true,\"Code\":\"InvalidMessageContents\",\"Message\":\"bad\"},"
          "{\"Id\":\"2\",\"SenderFault\":false,\"Code\":\"AWS.SimpleQueueService.Internal\",\"Message\":\"oops\"},"
          "{\"Id\":\"3\",\"SenderFault\":true,\"Code\":\"KmsThrottled\",\"Message\":\"slow down\"}]}",
          r, err);
    CHECK_INT(r[0], OB_DELIVERY_ACK);
    CHECK_INT(r[1], OB_DELIVERY_REJECT);
    CHECK_STR(err[1], "SendMessageBatch entry: InvalidMessageContents: bad");
    CHECK_INT(r[2], OB_DELIVERY_RETRY);
    CHECK_INT(r[3], OB_DELIVERY_RETRY);
    CHECK_INT(r[4], OB_DELIVERY_RETRY);
    CHECK_STR(err[4], "SendMessageBatch: the answer has no result for this message");
}

TEST(an_md5_that_is_not_what_was_sent_is_retry)
{
    enum ob_delivery_result r[5];
    char err[5][512];
    /* m1's entry answered with m0's body digest; m0's attributes digest wrong. */
    apply("{\"Successful\":[{\"Id\":\"1\",\"MessageId\":\"x\",\"MD5OfMessageBody\":\"%1$s\"},"
          "{\"Id\":\"0\",\"MessageId\":\"y\",\"MD5OfMessageBody\":\"%1$s\","
          "\"MD5OfMessageAttributes\":\"00000000000000000000000000000000\"}]}",
          r, err);
    CHECK_INT(r[1], OB_DELIVERY_RETRY);
    CHECK(strstr(err[1], "MD5OfMessageBody"));
    CHECK_INT(r[0], OB_DELIVERY_RETRY);
    CHECK(strstr(err[0], "MD5OfMessageAttributes"));
}

TEST(an_answer_without_the_attributes_md5_is_retry_when_attributes_were_sent)
{
    enum ob_delivery_result r[5];
    char err[5][512];
    apply("{\"Successful\":[{\"Id\":\"0\",\"MessageId\":\"x\",\"MD5OfMessageBody\":\"%s\"}]}", r, err);
    CHECK_INT(r[0], OB_DELIVERY_RETRY);
}

TEST(an_answer_entry_whose_id_is_not_one_sent_acknowledges_nothing)
{
    /* Ids go out as "0".."9": "00", "+0", " 0" and "-0" are none of them,
     * though strtoul reads each as 0. */
    static const char *const ids[] = {"00", "+0", " 0", "-0", "0 "};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        enum ob_delivery_result r[5];
        char err[5][512];
        char fmt[512];
        snprintf(fmt, sizeof fmt, "{\"Successful\":[{\"Id\":\"%s\",\"MessageId\":\"x\",\"MD5OfMessageBody\":"
                 "\"%%s\",\"MD5OfMessageAttributes\":\"314c77b249893c6b3c765a42cc08b245\"}]}", ids[k]);
        apply(fmt, r, err);
        CHECK_INT(r[0], OB_DELIVERY_RETRY);
    }
}

/* The errors of loading a config whose sqs sink has these keys. */
static void load_errors(const char *keys, struct ob_config_diag *diag)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n  - name: q\n    type: sqs\n%s", keys);
    struct ob_config *cfg = NULL;
    ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, diag);
    ob_config_free(cfg);
    ob_buf_free(&y);
}

TEST(check_refuses_a_queue_url_that_is_neither_url_nor_name)
{
    struct ob_config_diag diag = {0};
    load_errors("    queue_url: \"orders queue\"\n", &diag);
    CHECK_INT(diag.n, 1);
    CHECK_STR(diag.lines[0], "test.yaml:8:16: error: 'queue_url' of sqs sink 'q': a queue name is 1 to 80 of A-Z a-z "
                             "0-9 - _, optionally ending in .fifo; or give the queue URL");
    ob_config_diag_free(&diag);
}

TEST(check_accepts_a_queue_url_and_a_max_message_size_within_sqs_limits)
{
    struct ob_config_diag diag = {0};
    load_errors("    queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo\n"
                "    max_message_size: 262144\n", &diag);
    CHECK_INT(diag.n, 0);
    ob_config_diag_free(&diag);
    load_errors("    queue_url: orders\n    max_message_size: 2000000\n", &diag);
    CHECK_INT(diag.n, 1);
    ob_config_diag_free(&diag);
}
