/* kinesis sink: stream addresses, partition keys, the size rules, the
 * PutRecords request and what its answer means for each message. */
#include "test.h"

#include <jansson.h>
#include <openssl/sha.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/config.h"
#include "sinks/kinesis.h"

/* ---- stream names and ARNs ---------------------------------------------- */

TEST(kinesis_stream_by_name_has_no_arn)
{
    struct ob_kinesis_stream st;
    struct ob_error err = {0};
    CHECK_INT(ob_kinesis_stream_parse("orders.v1_A-z", &st, &err), OB_OK);
    CHECK_STR(st.name, "orders.v1_A-z");
    CHECK(st.arn == NULL && st.region == NULL);
    ob_kinesis_stream_free(&st);
}

TEST(kinesis_stream_arn_gives_name_arn_and_region)
{
    struct ob_kinesis_stream st;
    struct ob_error err = {0};
    const char *arn = "arn:aws-cn:kinesis:cn-north-1:123456789012:stream/orders";
    CHECK_INT(ob_kinesis_stream_parse(arn, &st, &err), OB_OK);
    CHECK_STR(st.name, "orders");
    CHECK_STR(st.arn, arn);
    CHECK_STR(st.region, "cn-north-1");
    ob_kinesis_stream_free(&st);
}

TEST(kinesis_stream_refuses_what_is_neither_a_name_nor_an_arn)
{
    char long_name[130];
    memset(long_name, 'a', 129);
    long_name[129] = '\0';
    const char *bad[] = {
        "", "orders/v1", "orders v1", long_name,
        "arn:aws:sqs:us-east-1:123456789012:stream/orders",   /* another service */
        "arn:aws:kinesis:us-east-1:12345:stream/orders",      /* account of 5 digits */
        "arn:aws:kinesis::123456789012:stream/orders",        /* no region */
        "arn:aws:kinesis:us-east-1:123456789012:orders",      /* no stream/ */
        "arn:aws:kinesis:us-east-1:123456789012:stream/",     /* no name */
        "arn:aws:kinesis:us-east-1:123456789012:stream/a/b",  /* a name with '/' */
        "arn:azure:kinesis:us-east-1:123456789012:stream/x",  /* not an AWS partition */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ob_kinesis_stream st;
        struct ob_error err = {0};
        if (ob_kinesis_stream_parse(bad[i], &st, &err) != OB_ERR_INVALID) {
            ob_test_fail(__FILE__, __LINE__, "'%s' was taken", bad[i]);
            return;
        }
        CHECK(strstr(err.msg, "neither a stream name") != NULL);
    }
}

/* ---- partition keys ----------------------------------------------------- */

static void digest_key(const char *pk, char out[OB_KINESIS_DIGEST_KEY_SIZE])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)pk, strlen(pk), md);
    strcpy(out, "sha256:");
    ob_hex_encode(md, sizeof md, out + 7);
}

static char *repeat(const char *unit, size_t times)
{
    struct ob_buf b = {0};
    for (size_t i = 0; i < times; i++)
        ob_buf_puts(&b, unit);
    return ob_buf_steal(&b);
}

TEST(kinesis_partition_key_is_the_pk_up_to_256_characters)
{
    char digest[OB_KINESIS_DIGEST_KEY_SIZE];
    char *ascii = repeat("k", 256), *accented = repeat("\xc3\xa9", 256); /* 512 bytes, 256 characters */
    CHECK(ob_kinesis_partition_key("key-1", digest) != digest);
    CHECK_STR(ob_kinesis_partition_key("key-1", digest), "key-1");
    CHECK_STR(ob_kinesis_partition_key(ascii, digest), ascii);
    CHECK_STR(ob_kinesis_partition_key(accented, digest), accented);
    free(ascii);
    free(accented);
}

TEST(kinesis_partition_key_of_a_longer_pk_is_its_digest)
{
    char digest[OB_KINESIS_DIGEST_KEY_SIZE], want[OB_KINESIS_DIGEST_KEY_SIZE];
    char *ascii = repeat("k", 257);
    /* 129 characters outside the BMP: 258 UTF-16 code units, as Kinesis counts. */
    char *astral = repeat("\xf0\x9f\x98\x80", 129);
    digest_key(ascii, want);
    CHECK_STR(ob_kinesis_partition_key(ascii, digest), want);
    CHECK_INT(strlen(want), OB_KINESIS_DIGEST_KEY_SIZE - 1);
    digest_key(astral, want);
    CHECK_STR(ob_kinesis_partition_key(astral, digest), want);
    free(ascii);
    free(astral);
}

TEST(kinesis_partition_key_is_the_same_for_the_same_long_pk)
{
    char a[OB_KINESIS_DIGEST_KEY_SIZE], b[OB_KINESIS_DIGEST_KEY_SIZE];
    char *pk = repeat("order-", 100), *other = repeat("order+", 100);
    char *copy = ob_xstrdup(pk);
    CHECK_STR(ob_kinesis_partition_key(pk, a), ob_kinesis_partition_key(copy, b));
    CHECK(strcmp(ob_kinesis_partition_key(pk, a), ob_kinesis_partition_key(other, b)) != 0);
    free(pk);
    free(other);
    free(copy);
}

TEST(kinesis_partition_key_of_an_empty_or_non_utf8_pk_is_its_digest)
{
    char digest[OB_KINESIS_DIGEST_KEY_SIZE];
    CHECK_STR(ob_kinesis_partition_key("", digest),
              "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char want[OB_KINESIS_DIGEST_KEY_SIZE];
    digest_key("k\xff", want);
    CHECK_STR(ob_kinesis_partition_key("k\xff", digest), want);
}

/* ---- size rules ---------------------------------------------------------- */

TEST(kinesis_record_size_counts_data_and_key)
{
    struct ob_kinesis_record r = {.data = "{}", .data_len = 2, .key = "\xc3\xa9t\xc3\xa9"};
    CHECK_INT(ob_kinesis_record_size(&r), 2 + 5);
}

/* Packs n records of these sizes to one stream as the sink does. */
static size_t pack(const size_t *size, size_t n, size_t *call_of)
{
    struct ob_aws_entry *e = calloc(n, sizeof *e);
    for (size_t i = 0; i < n; i++)
        e[i] = (struct ob_aws_entry){.destination = "s", .size = size[i]};
    size_t n_calls = ob_aws_sink_pack(&ob_kinesis_batch, e, n, call_of);
    free(e);
    return n_calls;
}

TEST(kinesis_call_takes_at_most_500_records)
{
    size_t size[1201], call_of[1201];
    for (size_t i = 0; i < 1201; i++)
        size[i] = 2;
    CHECK_INT(pack(size, 1201, call_of), 3);
    CHECK_INT(call_of[499], 0);
    CHECK_INT(call_of[500], 1);
    CHECK_INT(call_of[1000], 2);
}

TEST(kinesis_call_takes_at_most_5_mib_of_data_and_keys)
{
    /* Records of exactly 1 MiB each (data + key): five fit, a sixth does not. */
    size_t size[7], call_of[7];
    for (size_t i = 0; i < 7; i++)
        size[i] = OB_KINESIS_MAX_RECORD_BYTES;
    CHECK_INT(pack(size, 7, call_of), 2);
    CHECK_INT(call_of[4], 0);
    CHECK_INT(call_of[5], 1);
    size[4]++; /* 1 byte over 5 MiB with the fifth */
    CHECK_INT(pack(size, 7, call_of), 2);
    CHECK_INT(call_of[3], 0);
    CHECK_INT(call_of[4], 1);
}

/* ---- the request -------------------------------------------------------- */

TEST(kinesis_request_carries_base64_data_and_the_partition_key)
{
    struct ob_kinesis_stream st = {.name = "orders"};
    struct ob_kinesis_record recs[] = {
        {.data = "{\"id\":\"1\"}", .data_len = 10, .key = "key-\"1\""},
        {.data = "\x00\xff", .data_len = 2, .key = "k2"},
    };
    struct ob_buf body = {0};
    ob_kinesis_request(&body, &st, recs, 2);
    CHECK_STR(body.data, "{\"StreamName\":\"orders\",\"Records\":["
                         "{\"Data\":\"eyJpZCI6IjEifQ==\",\"PartitionKey\":\"key-\\\"1\\\"\"},"
                         "{\"Data\":\"AP8=\",\"PartitionKey\":\"k2\"}]}");
    ob_buf_free(&body);
}

TEST(kinesis_request_to_an_arn_names_the_stream_both_ways)
{
    struct ob_kinesis_stream st = {.name = "orders",
                                   .arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
                                   .region = "us-east-1"};
    struct ob_kinesis_record r = {.data = "{}", .data_len = 2, .key = "k"};
    struct ob_buf body = {0};
    ob_kinesis_request(&body, &st, &r, 1);
    json_t *req = json_loads(body.data, 0, NULL);
    CHECK(req != NULL);
    CHECK_STR(json_string_value(json_object_get(req, "StreamName")), "orders");
    CHECK_STR(json_string_value(json_object_get(req, "StreamARN")), st.arn);
    CHECK_INT(json_array_size(json_object_get(req, "Records")), 1);
    json_decref(req);
    ob_buf_free(&body);
}

/* ---- the answer --------------------------------------------------------- */

static void results_of(const char *answer_text, struct ob_delivery *d, size_t n)
{
    struct ob_delivery *ptrs[8];
    for (size_t i = 0; i < n; i++) {
        d[i] = (struct ob_delivery){.result = OB_DELIVERY_ACK};
        ptrs[i] = &d[i];
    }
    json_t *answer = json_loads(answer_text, 0, NULL);
    ob_kinesis_results(answer, ptrs, n);
    json_decref(answer);
}

TEST(kinesis_partly_failed_answer_fails_only_those_records)
{
    struct ob_delivery d[5];
    results_of("{\"FailedRecordCount\":3,\"Records\":["
               "{\"SequenceNumber\":\"4959\",\"ShardId\":\"shardId-000000000000\"},"
               "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate exceeded for shard\"},"
               "{\"SequenceNumber\":\"4960\",\"ShardId\":\"shardId-000000000001\"},"
               "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\"},"
               "{\"ErrorCode\":\"KMSAccessDeniedException\",\"ErrorMessage\":\"denied\"}]}",
               d, 5);
    CHECK_INT(d[0].result, OB_DELIVERY_ACK);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    CHECK_STR(d[1].error, "PutRecords entry: ProvisionedThroughputExceededException: Rate exceeded for shard");
    CHECK_INT(d[2].result, OB_DELIVERY_ACK);
    CHECK_INT(d[3].result, OB_DELIVERY_RETRY);
    CHECK_INT(d[4].result, OB_DELIVERY_REJECT);
    CHECK_STR(d[4].error, "PutRecords entry: KMSAccessDeniedException: denied");
    CHECK(!d[4].too_large);
}

TEST(kinesis_answer_without_a_result_per_record_retries_them_all)
{
    struct ob_delivery d[2];
    results_of("{\"FailedRecordCount\":0,\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"s\"}]}", d, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
    CHECK_INT(d[1].result, OB_DELIVERY_RETRY);
    CHECK(strstr(d[0].error, "PutRecords") != NULL);
    results_of("[]", d, 2);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
}

TEST(kinesis_record_neither_stored_nor_failed_is_retried)
{
    struct ob_delivery d[1];
    results_of("{\"Records\":[{\"ShardId\":\"s\"}]}", d, 1);
    CHECK_INT(d[0].result, OB_DELIVERY_RETRY);
}

/* ---- the keys' rules (check) -------------------------------------------- */

/* The first diagnostic of loading a kinesis sink with these keys, "" when none. */
static void check_sink(const char *keys, char *out, size_t cap)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n"
                      "  - name: k\n    type: kinesis\n%s", keys);
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, &diag);
    snprintf(out, cap, "%s", diag.n ? diag.lines[0] : "");
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
    ob_buf_free(&y);
}

TEST(kinesis_check_refuses_a_stream_name_that_kinesis_would)
{
    char diag[1024];
    check_sink("    stream_name: orders/v1\n", diag, sizeof diag);
    CHECK_STR(diag, "test.yaml:8:18: error: 'stream_name' of kinesis sink 'k': 'orders/v1' is neither a stream "
                    "name ([a-zA-Z0-9_.-], 1 to 128 characters) nor a stream ARN "
                    "(arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME)");
}

TEST(kinesis_check_refuses_an_arn_of_another_region_than_the_sinks)
{
    char diag[1024];
    check_sink("    region: eu-west-1\n    stream_name: arn:aws:kinesis:us-east-1:123456789012:stream/orders\n", diag,
               sizeof diag);
    CHECK_STR(diag, "test.yaml:9:18: error: 'stream_name' of kinesis sink 'k' is in us-east-1, but the sink's region "
                    "is eu-west-1 (requests are signed for and sent to the sink's region)");
    check_sink("    region: us-east-1\n    stream_name: arn:aws:kinesis:us-east-1:123456789012:stream/orders\n", diag,
               sizeof diag);
    CHECK_STR(diag, "");
}

TEST(kinesis_check_takes_a_sink_without_a_stream_for_routes_that_give_one)
{
    char diag[1024];
    check_sink("    endpoint: http://127.0.0.1:4567\n", diag, sizeof diag);
    CHECK_STR(diag, "");
}

TEST(kinesis_sink_is_not_created_for_an_arn_outside_the_relays_region)
{
    const char *yaml = "aws:\n  region: eu-west-1\n  access_key_id: AKIDTEST\n  secret_access_key: testsecret\n"
                       "table:\n  name: outbox\nsinks:\n  - name: k\n    type: kinesis\n"
                       "    stream_name: arn:aws:kinesis:us-east-1:123456789012:stream/orders\n";
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    CHECK_INT(ob_config_load_string("test.yaml", yaml, strlen(yaml), &ob_sinks, &cfg, &diag), OB_OK);
    static const struct ob_aws_credentials keys = { .access_key_id = "AKIDTEST", .secret_access_key = "s" };
    struct ob_cred_provider *credentials = ob_cred_provider_static(&keys);
    struct ob_sink_context ctx = { .table = cfg->table.name, .aws = &cfg->aws, .region = cfg->aws.region,
                                   .credentials = credentials };
    struct ob_sink *s = NULL;
    struct ob_error err = {0};
    CHECK_INT(ob_sink_create(&cfg->sinks[0], &ctx, &s, &err), OB_ERR_CONFIG);
    CHECK_STR(err.msg, "sink 'k': stream_name is in us-east-1, but the sink's region is eu-west-1 (requests are "
                       "signed for and sent to the sink's region)");
    ob_cred_provider_destroy(credentials);
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
}
