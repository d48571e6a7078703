/* AWS JSON error answers become distinct error codes; endpoints parse. */
#include "test.h"

#include "aws/client.h"
#include "dynamo/ddb.h"
#include "dynamo/mark.h"

static struct ob_error classify_of(const struct ob_aws_service *service, long status, const char *body)
{
    struct ob_error err = { 0 };
    json_t *j = json_loads(body, 0, NULL);
    ob_aws_classify_error(service, status, j, &err);
    json_decref(j);
    return err;
}

/* An answer of DynamoDB. */
static struct ob_error classify(long status, const char *body)
{
    return classify_of(&ob_service_dynamodb, status, body);
}

TEST(throttling_errors_are_retriable_throttles)
{
    static const char *const names[] = { "ProvisionedThroughputExceededException", "ThrottlingException",
                                         "RequestLimitExceeded", "LimitExceededException" };
    for (int i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":\"slow\"}",
                 names[i]);
        struct ob_error e = classify(400, body);
        CHECK_INT(e.code, OB_ERR_THROTTLED);
        CHECK(e.retriable);
        CHECK_STR(e.aws_type, names[i]);
    }
}

TEST(error_type_prefix_is_ignored)
{
    struct ob_error e = classify(400, "{\"__type\":\"ConditionalCheckFailedException\",\"message\":\"x\"}");
    CHECK_INT(e.code, OB_ERR_CONDITION_FAILED);
    CHECK(!e.retriable);
    e = classify(400, "{\"__type\":\"com.amazon.coral.validate#ValidationException\",\"Message\":\"bad\"}");
    CHECK_INT(e.code, OB_ERR_VALIDATION);
    CHECK_STR(e.msg, "ValidationException: bad");
}

TEST(stream_errors_have_their_own_codes)
{
    CHECK_INT(classify(400, "{\"__type\":\"x#ExpiredIteratorException\"}").code, OB_ERR_EXPIRED_ITERATOR);
    CHECK_INT(classify(400, "{\"__type\":\"x#TrimmedDataAccessException\"}").code, OB_ERR_TRIMMED);
    CHECK_INT(classify(400, "{\"__type\":\"x#ResourceNotFoundException\"}").code, OB_ERR_NOT_FOUND);
    CHECK_INT(classify(400, "{\"__type\":\"x#TransactionCanceledException\"}").code, OB_ERR_TRANSACTION_CANCELED);
}

TEST(server_errors_are_retriable_and_unknown_4xx_are_not)
{
    struct ob_error e = classify(500, "{\"__type\":\"x#InternalServerError\",\"message\":\"oops\"}");
    CHECK_INT(e.code, OB_ERR_SERVICE);
    CHECK(e.retriable);
    e = classify(503, "not json");
    CHECK_INT(e.code, OB_ERR_SERVICE);
    CHECK(e.retriable);
    CHECK_INT(e.http_status, 503);
    e = classify(403, "{\"__type\":\"x#SomethingNew\"}");
    CHECK_INT(e.code, OB_ERR_HTTP);
    CHECK(!e.retriable);
    e = classify(400, "{\"__type\":\"x#UnrecognizedClientException\",\"message\":\"bad key\"}");
    CHECK_INT(e.code, OB_ERR_ACCESS_DENIED);
}

/* SPEC §3: a 408 is retriable, as botocore's transient names are (a proxy
 * or load balancer in front of the service answers them): a sink's
 * message failing so is retried, not rejected toward its dead letter. */
TEST(a_request_timeout_is_retriable_by_its_status_or_its_name)
{
    struct ob_error e = classify_of(NULL, 408, "<html>Request Timeout</html>");
    CHECK(e.retriable);
    CHECK_INT(e.http_status, 408);
    static const char *const transient[] = { "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete" };
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"__type\":\"%s\",\"message\":\"m\"}", transient[i]);
        e = classify_of(NULL, 400, body);
        if (!e.retriable)
            ob_test_fail(__FILE__, __LINE__, "%s is not retriable", transient[i]);
    }
    ob_aws_classify_xml_error(NULL, 408, NULL, 0, &e);
    CHECK(e.retriable);
}

/* botocore's standard mode takes these as throttling from any service; a
 * 400 naming one is not a rejection of the message. */
TEST(the_throttling_names_botocore_knows_are_throttles_of_every_service)
{
    static const char *const names[] = { "ThrottledException", "RequestThrottledException", "RequestThrottled",
                                         "BandwidthLimitExceeded", "RequestLimitExceeded" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"__type\":\"x#%s\",\"message\":\"slow down\"}", names[i]);
        struct ob_error e = classify_of(NULL, 400, body);
        if (e.code != OB_ERR_THROTTLED || !e.retriable)
            ob_test_fail(__FILE__, __LINE__, "%s: code %d retriable %d", names[i], (int)e.code, e.retriable);
    }
}

/* Every error name outboxd knows, by the code and retriability a DynamoDB
 * or Streams answer naming it gets. */
static const struct {
    enum ob_err code;
    bool retriable;
    const char *names[10];
} known_errors[] = {
    { OB_ERR_THROTTLED, true,
      { "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
        "LimitExceededException", "TooManyRequestsException", "SlowDown", "TransactionInProgressException" } },
    { OB_ERR_CONDITION_FAILED, false, { "ConditionalCheckFailedException" } },
    { OB_ERR_NOT_FOUND, false, { "ResourceNotFoundException" } },
    { OB_ERR_VALIDATION, false,
      { "ValidationException", "SerializationException", "ItemCollectionSizeLimitExceededException" } },
    { OB_ERR_EXPIRED_ITERATOR, false, { "ExpiredIteratorException" } },
    { OB_ERR_TRIMMED, false, { "TrimmedDataAccessException" } },
    { OB_ERR_TRANSACTION_CANCELED, false, { "TransactionCanceledException" } },
    { OB_ERR_RESOURCE_IN_USE, false, { "ResourceInUseException" } },
    { OB_ERR_ACCESS_DENIED, false,
      { "UnrecognizedClientException", "AccessDeniedException", "InvalidSignatureException", "IncompleteSignature",
        "MissingAuthenticationToken" } },
    { OB_ERR_CREDENTIALS, true, { "ExpiredTokenException", "ExpiredToken", "TokenRefreshRequired" } },
    { OB_ERR_SERVICE, true,
      { "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException" } },
};

TEST(every_known_error_name_keeps_its_code_and_retriability)
{
    const struct ob_aws_service *const services[] = { &ob_service_dynamodb, &ob_service_streams };
    char body[256];
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < sizeof known_errors / sizeof known_errors[0]; i++)
            for (const char *const *name = known_errors[i].names; *name; name++) {
                snprintf(body, sizeof body,
                         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":\"m\"}", *name);
                struct ob_error e = classify_of(services[s], 400, body);
                if (e.code != known_errors[i].code || e.retriable != known_errors[i].retriable)
                    ob_test_fail(__FILE__, __LINE__, "%s of %s: code %d retriable %d, expected %d %d", *name,
                                 services[s]->target_prefix, (int)e.code, e.retriable, (int)known_errors[i].code,
                                 known_errors[i].retriable);
                CHECK_STR(e.aws_type, *name);
            }
}

/* DynamoDB's names are DynamoDB's: another service's answer naming one is
 * classified by its HTTP status, while the names every AWS service
 * answers keep their meaning. */
TEST(a_service_without_error_names_of_its_own_knows_only_the_generic_ones)
{
    static const struct ob_aws_service plain = { .signing_name = "x", .target_prefix = "X_1",
                                                 .content_type = "application/x-amz-json-1.1" };
    struct ob_error e = classify_of(&plain, 400, "{\"__type\":\"ConditionalCheckFailedException\"}");
    CHECK_INT(e.code, OB_ERR_HTTP);
    CHECK(!e.retriable);
    CHECK_STR(e.aws_type, "ConditionalCheckFailedException");
    e = classify_of(NULL, 400, "{\"__type\":\"x#ProvisionedThroughputExceededException\"}");
    CHECK_INT(e.code, OB_ERR_HTTP);
    e = classify_of(&plain, 400, "{\"__type\":\"x#ThrottlingException\"}");
    CHECK_INT(e.code, OB_ERR_THROTTLED);
    CHECK(e.retriable);
    e = classify_of(NULL, 400, "{\"__type\":\"x#ExpiredTokenException\"}");
    CHECK_INT(e.code, OB_ERR_CREDENTIALS);
}

/* SPEC §3 and §6: a policy that denies the write, or a write DynamoDB finds
 * invalid, fails however often it goes; a refusal of the credentials or
 * the signature (a skewed clock, a token expired or rotated) passes once
 * the clock or the credentials do, so an item write tries it again. */
TEST(only_access_denied_and_validation_errors_refuse_an_item_write_for_good)
{
    static const char *const for_good[] = { "AccessDeniedException", "ValidationException",
                                            "SerializationException" };
    static const char *const passing[] = { "InvalidSignatureException", "UnrecognizedClientException",
                                           "MissingAuthenticationToken", "ExpiredTokenException",
                                           "IncompleteSignature", "ThrottlingException", "InternalServerError" };
    char body[256];
    for (size_t i = 0; i < sizeof for_good / sizeof for_good[0]; i++) {
        snprintf(body, sizeof body, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":\"x\"}",
                 for_good[i]);
        struct ob_error e = classify(400, body);
        if (!ob_mark_error_permanent(&e))
            ob_test_fail(__FILE__, __LINE__, "%s is not permanent", for_good[i]);
    }
    for (size_t i = 0; i < sizeof passing / sizeof passing[0]; i++) {
        snprintf(body, sizeof body, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":"
                 "\"Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z\"}", passing[i]);
        struct ob_error e = classify(400, body);
        if (ob_mark_error_permanent(&e))
            ob_test_fail(__FILE__, __LINE__, "%s is permanent: an item write would give up on it", passing[i]);
    }
}

TEST(endpoint_host_keeps_non_default_ports_only)
{
    struct ob_aws_endpoint ep;
    struct ob_error err;
    CHECK_INT(ob_aws_endpoint_parse("http://127.0.0.1:8000", &ep, &err), OB_OK);
    CHECK_STR(ep.host, "127.0.0.1:8000");
    CHECK_STR(ep.path, "/");
    ob_aws_endpoint_free(&ep);
    CHECK_INT(ob_aws_endpoint_parse("https://dynamodb.eu-west-1.amazonaws.com:443/", &ep, &err), OB_OK);
    CHECK_STR(ep.host, "dynamodb.eu-west-1.amazonaws.com");
    ob_aws_endpoint_free(&ep);
    CHECK_INT(ob_aws_endpoint_parse("ftp://x", &ep, &err), OB_ERR_CONFIG);
    CHECK_INT(ob_aws_endpoint_parse("http://h:99999", &ep, &err), OB_ERR_CONFIG);
    CHECK_INT(ob_aws_endpoint_parse("http://h/?a=b", &ep, &err), OB_ERR_CONFIG);
}

/* The query protocol (SNS) answers errors in XML. */
TEST(query_protocol_errors_are_read_from_code_and_message)
{
    static const char body[] = "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>"
                               "<Type>Sender</Type><Code>Throttling</Code><Message>Rate &amp; limit</Message>"
                               "</Error><RequestId>1</RequestId></ErrorResponse>";
    struct ob_error e = { 0 };
    ob_aws_classify_xml_error(NULL, 400, body, sizeof body - 1, &e);
    CHECK_INT(e.code, OB_ERR_THROTTLED);
    CHECK(e.retriable);
    CHECK_STR(e.aws_type, "Throttling");
    CHECK_STR(e.msg, "Throttling: Rate & limit");

    ob_aws_classify_xml_error(NULL, 503, "<html>down</html>", 17, &e);
    CHECK_INT(e.code, OB_ERR_SERVICE);
    CHECK(e.retriable);
    CHECK_STR(e.msg, "HTTP 503");

    ob_aws_classify_xml_error(NULL, 404, NULL, 0, &e);
    CHECK(!e.retriable);
}

/* Keys or a clock the service refuses, in every spelling services use, are access denied. */
/* SPEC §6: temporary credentials that expired are refreshed and the call
 * retried; never "access denied", which an operator must fix. */
TEST(expired_credentials_are_their_own_retriable_kind_in_json_and_xml)
{
    struct ob_error e = classify(400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ExpiredTokenException\","
                                      "\"message\":\"The security token included in the request is expired\"}");
    CHECK_INT(e.code, OB_ERR_CREDENTIALS);
    CHECK(e.retriable);
    const char xml[] = "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>"
                       "<Message>The security token included in the request is expired</Message></Error></ErrorResponse>";
    ob_aws_classify_xml_error(NULL, 403, xml, strlen(xml), &e);
    CHECK_INT(e.code, OB_ERR_CREDENTIALS);
    CHECK(e.retriable);
}

TEST(refused_signatures_keys_and_clocks_are_access_denied)
{
    /* RequestExpired is a clock off, not expired credentials. */
    static const char *const names[] = {"SignatureDoesNotMatch", "InvalidClientTokenId", "AuthFailure",
                                        "RequestExpired", "RequestTimeTooSkewed"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>"
                 "<Message>no</Message></Error></ErrorResponse>", names[i]);
        struct ob_error e = { 0 };
        ob_aws_classify_xml_error(NULL, 403, body, strlen(body), &e);
        CHECK_INT(e.code, OB_ERR_ACCESS_DENIED);
    }
}
