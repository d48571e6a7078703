/* The sns sink's pure parts: the form encoding, SNS's naming rules, the
 * PublishBatch request and answer; and what it decides without calling
 * SNS (config check, too_large, no topic). */
#include "test.h"

#include "delivery_fixture.h"

#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/config.h"
#include "sinks/common.h"
#include "sinks/sink.h"
#include "sinks/sns.h"

#define FIFO_ARN "arn:aws:sns:us-east-1:000000000000:orders.fifo"

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The value of field name in form, percent-decoded into out (what SNS
 * reads back); false when the form has no such field or a bad escape. */
static bool form_field(const char *form, const char *name, struct ob_buf *out)
{
    ob_buf_reset(out);
    size_t n = strlen(name);
    for (const char *p = form; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != '=')
            continue;
        for (const char *v = p + n + 1; *v && *v != '&'; v++) {
            if (*v != '%') {
                ob_buf_putc(out, *v);
                continue;
            }
            int hi = hex_digit(v[1]), lo = hi < 0 ? -1 : hex_digit(v[2]);
            if (lo < 0)
                return false;
            ob_buf_putc(out, (char)(hi * 16 + lo));
            v += 2;
        }
        ob_buf_cstr(out);
        return true;
    }
    return false;
}

TEST(form_encoding_keeps_the_unreserved_characters_and_escapes_every_other_byte)
{
    struct ob_buf b = { 0 };
    const char s[] = "aZ09-._~ +/&=%:\"\xc3\xa9\n";
    ob_sns_form_encode(&b, s, sizeof s - 1);
    CHECK_STR(ob_buf_cstr(&b), "aZ09-._~%20%2B%2F%26%3D%25%3A%22%C3%A9%0A");
    ob_buf_reset(&b);
    ob_sns_form_encode(&b, "a\0b", 3);
    CHECK_STR(ob_buf_cstr(&b), "a%00b");
    ob_buf_free(&b);
}

TEST(a_topic_arn_is_an_sns_arn_with_a_twelve_digit_account_and_a_topic_name)
{
    CHECK(ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:123456789012:orders"));
    CHECK(ob_sns_topic_arn_ok("arn:aws-us-gov:sns:us-gov-west-1:123456789012:Orders_v2-x.fifo"));
    CHECK(ob_sns_topic_arn_ok(FIFO_ARN));
    CHECK(!ob_sns_topic_arn_ok("orders"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sqs:us-east-1:123456789012:orders"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:12345:orders"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns::123456789012:orders"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:123456789012:"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:123456789012:.fifo"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:123456789012:a.b"));
    CHECK(!ob_sns_topic_arn_ok("arn:aws:sns:us-east-1:123456789012:orders:sub"));
    CHECK(!ob_sns_topic_arn_ok("https://sns.us-east-1.amazonaws.com/123456789012/orders"));
    CHECK(ob_sns_topic_fifo(FIFO_ARN));
    CHECK(!ob_sns_topic_fifo("arn:aws:sns:us-east-1:123456789012:orders"));
}

TEST(a_fifo_id_that_sns_takes_goes_as_it_is_any_other_as_its_sha256)
{
    struct ob_buf b = { 0 };
    ob_sns_fifo_id(&b, "key-1/!~");
    CHECK_STR(ob_buf_cstr(&b), "key-1/!~");
    ob_buf_reset(&b);
    ob_sns_fifo_id(&b, "k 1"); /* a space is not SNS punctuation */
    CHECK_STR(ob_buf_cstr(&b), "sha256-ca786f1e02cd1fa6858ba7d98a5653bb1643ebe08c849ba27d08415c02aec72a");
    char long_id[130];
    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    ob_buf_reset(&b);
    ob_sns_fifo_id(&b, long_id);
    CHECK(strncmp(ob_buf_cstr(&b), "sha256-", 7) == 0 && b.len == 7 + 64);
    long_id[128] = '\0'; /* 128 characters still fit */
    ob_buf_reset(&b);
    ob_sns_fifo_id(&b, long_id);
    CHECK_STR(ob_buf_cstr(&b), long_id);
    ob_buf_reset(&b);
    ob_sns_fifo_id(&b, "");
    CHECK_STR(ob_buf_cstr(&b), "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    ob_buf_free(&b);
}

TEST(a_header_is_a_message_attribute_only_within_sns_rules)
{
    CHECK(ob_sns_attribute_ok("tenant", "acme"));
    CHECK(ob_sns_attribute_ok("x.trace-id_2", "caf\xc3\xa9\t"));
    CHECK(!ob_sns_attribute_ok("tenant", ""));
    CHECK(!ob_sns_attribute_ok("has space", "v"));
    CHECK(!ob_sns_attribute_ok(".lead", "v"));
    CHECK(!ob_sns_attribute_ok("trail.", "v"));
    CHECK(!ob_sns_attribute_ok("a..b", "v"));
    CHECK(!ob_sns_attribute_ok("aws.reserved", "v"));
    CHECK(!ob_sns_attribute_ok("Amazon.reserved", "v"));
    CHECK(!ob_sns_attribute_ok("ctl", "a\x01" "b"));
    CHECK(!ob_sns_attribute_ok("utf8", "\xc3"));
    CHECK(!ob_sns_attribute_ok("nonchar", "\xef\xbf\xbf"));
    char name[258];
    memset(name, 'n', 257);
    name[257] = '\0';
    CHECK(!ob_sns_attribute_ok(name, "v"));
    name[256] = '\0';
    CHECK(ob_sns_attribute_ok(name, "v"));
}

TEST(an_entry_carries_the_structured_cloudevent_and_the_first_ten_valid_headers_counted_in_its_size)
{
    struct delivery_fixture f;
    delivery_fixture_init(&f, "key-1", "id-1", "{\"n\":1}");
    static const char *const names[] = { "bad name", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        delivery_fixture_header(&f, names[i], "v");
    struct ob_sns_entry e;
    ob_sns_entry_build(&e, &f.d);
    struct ob_buf want = { 0 };
    ob_delivery_structured(&want, &f.d);
    CHECK_STR(ob_buf_cstr(&e.body), ob_buf_cstr(&want));
    CHECK_INT(e.n_attrs, 10);
    CHECK_STR(e.attrs[0]->name, "h1");
    CHECK_STR(e.attrs[9]->name, "h10");
    /* names h1..h9 (2 bytes) and h10, "String", "v" each */
    CHECK_INT(e.size, want.len + 9 * (2 + 6 + 1) + (3 + 6 + 1));
    ob_buf_free(&want);
    ob_sns_entry_free(&e);
    ob_ce_free(&f.ce);
}

TEST(a_fifo_request_has_the_topic_the_message_its_attributes_group_pk_and_dedup_id)
{
    struct delivery_fixture a, b;
    delivery_fixture_init(&a, "key-1", "id-1", "{\"n\":1}");
    delivery_fixture_header(&a, "tenant", "acme & co");
    delivery_fixture_init(&b, "k 1", "id-2", "{\"n\":2}");
    struct ob_sns_entry ea, eb;
    ob_sns_entry_build(&ea, &a.d);
    ob_sns_entry_build(&eb, &b.d);
    struct ob_buf form = { 0 }, v = { 0 };
    ob_sns_request_start(&form, FIFO_ARN);
    ob_sns_request_entry(&form, 0, &ea, true);
    ob_sns_request_entry(&form, 1, &eb, true);
    const char *f = ob_buf_cstr(&form);
    CHECK(strncmp(f, "Action=PublishBatch&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3A", 66) == 0);
    CHECK(form_field(f, "TopicArn", &v));
    CHECK_STR(ob_buf_cstr(&v), FIFO_ARN);
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.Id", &v));
    CHECK_STR(ob_buf_cstr(&v), "0");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.Message", &v));
    CHECK_STR(ob_buf_cstr(&v), ob_buf_cstr(&ea.body));
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.MessageGroupId", &v));
    CHECK_STR(ob_buf_cstr(&v), "key-1");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.MessageDeduplicationId", &v));
    CHECK_STR(ob_buf_cstr(&v), "id-1");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Name", &v));
    CHECK_STR(ob_buf_cstr(&v), "tenant");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.DataType", &v));
    CHECK_STR(ob_buf_cstr(&v), "String");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.1.MessageAttributes.entry.1.Value.StringValue", &v));
    CHECK_STR(ob_buf_cstr(&v), "acme & co");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.2.Id", &v));
    CHECK_STR(ob_buf_cstr(&v), "1");
    CHECK(form_field(f, "PublishBatchRequestEntries.member.2.MessageGroupId", &v));
    CHECK_STR(ob_buf_cstr(&v), "sha256-ca786f1e02cd1fa6858ba7d98a5653bb1643ebe08c849ba27d08415c02aec72a");
    CHECK(!form_field(f, "PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Name", &v));
    ob_buf_free(&form);
    ob_buf_free(&v);
    ob_sns_entry_free(&ea);
    ob_sns_entry_free(&eb);
    ob_ce_free(&a.ce);
    ob_ce_free(&b.ce);
}

TEST(a_poison_dead_letter_without_pk_or_sk_goes_to_a_fifo_topic_under_the_empty_keys_group_and_its_event_id)
{
    /* A poison item whose pk and sk are not strings reaches the dead-letter
     * sink with neither; the relay gives its CloudEvent the stream record's
     * sequence number as id. */
    struct delivery_fixture a;
    delivery_fixture_init(&a, NULL, NULL, "{}");
    a.ce.id = "49590338271490256608559692538361571095921575989136588898";
    struct ob_sns_entry e;
    ob_sns_entry_build(&e, &a.d);
    struct ob_buf form = { 0 }, v = { 0 }, empty_group = { 0 };
    ob_sns_request_start(&form, FIFO_ARN);
    ob_sns_request_entry(&form, 0, &e, true);
    ob_sns_fifo_id(&empty_group, "");
    CHECK(form_field(ob_buf_cstr(&form), "PublishBatchRequestEntries.member.1.MessageGroupId", &v));
    CHECK_STR(ob_buf_cstr(&v), ob_buf_cstr(&empty_group));
    CHECK(form_field(ob_buf_cstr(&form), "PublishBatchRequestEntries.member.1.MessageDeduplicationId", &v));
    CHECK_STR(ob_buf_cstr(&v), a.ce.id);
    ob_buf_free(&form);
    ob_buf_free(&v);
    ob_buf_free(&empty_group);
    ob_sns_entry_free(&e);
    ob_ce_free(&a.ce);
}

TEST(a_standard_topic_request_has_no_group_or_dedup_id)
{
    struct delivery_fixture a;
    delivery_fixture_init(&a, "key-1", "id-1", "{}");
    struct ob_sns_entry e;
    ob_sns_entry_build(&e, &a.d);
    struct ob_buf form = { 0 }, v = { 0 };
    ob_sns_request_start(&form, "arn:aws:sns:us-east-1:000000000000:orders");
    ob_sns_request_entry(&form, 0, &e, false);
    CHECK(form_field(ob_buf_cstr(&form), "PublishBatchRequestEntries.member.1.Message", &v));
    CHECK(!form_field(ob_buf_cstr(&form), "PublishBatchRequestEntries.member.1.MessageGroupId", &v));
    CHECK(!form_field(ob_buf_cstr(&form), "PublishBatchRequestEntries.member.1.MessageDeduplicationId", &v));
    ob_buf_free(&form);
    ob_buf_free(&v);
    ob_sns_entry_free(&e);
    ob_ce_free(&a.ce);
}

TEST(an_answer_fails_only_the_entries_it_says_failed_each_by_its_code)
{
    const char *xml =
        "<PublishBatchResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishBatchResult>"
        "<Successful><member><Id>0</Id><MessageId>m-0</MessageId></member>"
        "<member><Id>2</Id><MessageId>m-2</MessageId><SequenceNumber>1</SequenceNumber></member>"
        "<member><Id>5</Id></member></Successful>"
        "<Failed><member><Id>1</Id><Code>Throttled</Code><Message>Rate exceeded</Message>"
        "<SenderFault>true</SenderFault></member>"
        "<member><Id>3</Id><Code>InvalidParameter</Code><Message>bad &amp; worse</Message>"
        "<SenderFault>true</SenderFault></member>"
        "<member><Id>6</Id><Code>SomethingNew</Code><SenderFault>false</SenderFault></member>"
        "<member><Id>9</Id><Code>InvalidParameter</Code><SenderFault>true</SenderFault></member>"
        "</Failed></PublishBatchResult></PublishBatchResponse>";
    struct ob_delivery d[7];
    struct ob_delivery *p[7];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 7; i++)
        p[i] = &d[i];
    ob_sns_answer(xml, strlen(xml), p, 7);
    CHECK_INT(d[0].result, OB_DELIVERY_ACK);
    CHECK_INT(d[2].result, OB_DELIVERY_ACK);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[1].error, "PublishBatch entry: Throttled: Rate exceeded");
    CHECK_INT(d[3].result, OB_DELIVERY_REJECT);
    CHECK_STR(d[3].error, "PublishBatch entry: InvalidParameter: bad & worse");
    CHECK_INT(d[4].result, OB_DELIVERY_RETRY); /* not mentioned: SNS may or may not have it */
    CHECK_STR(d[4].error, "PublishBatch: the answer does not say what became of this message");
    CHECK_INT(d[5].result, OB_DELIVERY_RETRY); /* successful without a MessageId */
    CHECK_INT(d[6].result, OB_DELIVERY_RETRY); /* a code unknown here, and not the sender's fault */
}

TEST(a_member_whose_id_is_not_one_sent_answers_for_no_entry)
{
    /* Ids go out as "0".."9": "00" and "01" are neither 0 nor 1. */
    const char *xml = "<PublishBatchResponse><PublishBatchResult><Successful>"
                      "<member><Id>00</Id><MessageId>m-0</MessageId></member></Successful>"
                      "<Failed><member><Id>01</Id><Code>InvalidParameter</Code><SenderFault>true</SenderFault>"
                      "</member></Failed></PublishBatchResult></PublishBatchResponse>";
    struct ob_delivery d[2];
    struct ob_delivery *p[2] = { &d[0], &d[1] };
    memset(d, 0, sizeof d);
    ob_sns_answer(xml, strlen(xml), p, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[1].error, "PublishBatch: the answer does not say what became of this message");
}

TEST(a_truncated_answer_acknowledges_no_entry_whose_success_it_cut)
{
    const char *xml = "<PublishBatchResponse><PublishBatchResult><Successful>"
                      "<member><Id>0</Id><MessageId>m-0</MessageId></member>"
                      "<member><Id>1</Id><MessageId>m-1</MessageId></member></Successful>"
                      "<Failed><member><Id>2</Id><Code>InvalidParameter</Code><SenderFault>true</SenderFault>"
                      "</member></Failed></PublishBatchResult></PublishBatchResponse>";
    const char *whole_success = strstr(xml, "</Successful>") + strlen("</Successful>");
    for (size_t len = 0; len <= strlen(xml); len++) {
        struct ob_delivery d[3];
        struct ob_delivery *p[3] = { &d[0], &d[1], &d[2] };
        memset(d, 0, sizeof d);
        ob_sns_answer(xml, len, p, 3);
        bool complete = xml + len >= whole_success;
        CHECK_INT(d[0].result, complete ? OB_DELIVERY_ACK : OB_DELIVERY_RETRY);
        CHECK_INT(d[1].result, complete ? OB_DELIVERY_ACK : OB_DELIVERY_RETRY);
        CHECK(d[2].result != OB_DELIVERY_ACK);
    }
}

TEST(an_unreadable_answer_acknowledges_nothing)
{
    struct ob_delivery d[2];
    struct ob_delivery *p[2] = { &d[0], &d[1] };
    memset(d, 0, sizeof d);
    ob_sns_answer("<html>proxy error</html>", 24, p, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
}

TEST(a_failed_call_is_classified_by_the_names_of_sns)
{
    static const struct {
        const char *code;
        enum ob_err err;
        bool retriable;
    } cases[] = {
        { "Throttled", OB_ERR_THROTTLED, true },
        { "KMSThrottling", OB_ERR_THROTTLED, true },
        { "InternalError", OB_ERR_SERVICE, true },
        { "NotFound", OB_ERR_NOT_FOUND, false },
        { "InvalidParameter", OB_ERR_VALIDATION, false },
        { "AuthorizationError", OB_ERR_ACCESS_DENIED, false },
        { "KMSDisabled", OB_ERR_INVALID, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_buf xml = { 0 };
        ob_buf_cat(&xml, "<ErrorResponse><Error><Type>Sender</Type><Code>", cases[i].code,
                   "</Code><Message>said</Message></Error></ErrorResponse>", NULL);
        struct ob_error err = { 0 };
        ob_aws_classify_xml_error(&ob_sns_service, 400, xml.data, xml.len, &err);
        ob_buf_free(&xml);
        CHECK_INT(err.code, cases[i].err);
        CHECK_INT(err.retriable, cases[i].retriable);
    }
}

static struct ob_config *load(const char *sink_keys, struct ob_config_diag *diag)
{
    struct ob_buf y = { 0 };
    ob_buf_printf(&y, "aws:\n  region: us-east-1\n  access_key_id: AKIDTEST\n  secret_access_key: s\n"
                      "table:\n  name: outbox\nsinks:\n  - name: t\n    type: sns\n"
                      "    endpoint: http://127.0.0.1:1/\n%s",
                  sink_keys);
    struct ob_config *cfg = NULL;
    ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, diag);
    ob_buf_free(&y);
    return cfg;
}

TEST(check_refuses_a_topic_arn_that_is_not_an_sns_arn_at_its_value)
{
    struct ob_config_diag diag = { 0 };
    struct ob_config *cfg = load("    topic_arn: arn:aws:sqs:us-east-1:123456789012:q\n", &diag);
    CHECK(cfg == NULL);
    CHECK_INT(diag.n, 1);
    CHECK_STR(diag.lines[0], "test.yaml:11:16: error: 'topic_arn' of sns sink 't' is not an SNS topic ARN "
                             "(arn:aws:sns:REGION:ACCOUNT:NAME): 'arn:aws:sqs:us-east-1:123456789012:q'");
    ob_config_diag_free(&diag);
}

TEST(an_oversize_message_is_too_large_and_one_without_a_topic_rejected_without_calling_sns)
{
    struct ob_config_diag diag = { 0 };
    struct ob_config *cfg = load("    max_message_size: 1024\n", &diag);
    CHECK(cfg != NULL);
    static const struct ob_aws_credentials keys = { .access_key_id = "AKIDTEST", .secret_access_key = "s" };
    struct ob_cred_provider *credentials = ob_cred_provider_static(&keys);
    struct ob_sink_context ctx = { .table = "outbox", .aws = &cfg->aws, .region = cfg->aws.region,
                                   .credentials = credentials };
    struct ob_sink *s = NULL;
    struct ob_error err = { 0 };
    CHECK_INT(ob_sink_create(&cfg->sinks[0], &ctx, &s, &err), OB_OK);
    char big[1100];
    memset(big, 'x', sizeof big - 1);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = '\0';
    struct delivery_fixture f[3];
    delivery_fixture_init(&f[0], "key-1", "id-1", big);
    f[0].d.destination = FIFO_ARN;
    delivery_fixture_init(&f[1], "key-2", "id-2", "{}");
    delivery_fixture_init(&f[2], "key-3", "id-3", "{}");
    f[2].d.destination = "orders";
    struct ob_delivery batch[3] = { f[0].d, f[1].d, f[2].d };
    ob_sink_publish(s, batch, 3);
    CHECK_INT(batch[0].result, OB_DELIVERY_REJECT);
    CHECK(batch[0].too_large);
    CHECK(strstr(batch[0].error, "over the topic's limit of 1024 (max_message_size)") != NULL);
    CHECK_INT(batch[1].result, OB_DELIVERY_REJECT);
    CHECK(!batch[1].too_large);
    CHECK_STR(batch[1].error, "no topic: the route gives none and the sink has no topic_arn");
    CHECK_INT(batch[2].result, OB_DELIVERY_REJECT);
    CHECK_STR(batch[2].error, "'orders' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)");
    for (int i = 0; i < 3; i++)
        ob_ce_free(&f[i].ce);
    ob_sink_destroy(s);
    ob_cred_provider_destroy(credentials);
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
}
