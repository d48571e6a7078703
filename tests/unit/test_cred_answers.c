/* What the temporary credential sources answer (STS XML, the container
 * endpoint's and credential_process's JSON) and the container URL rule. */
#include <string.h>

#include "aws/cred_answers.h"
#include "test.h"

#define SRC "test source"

static enum ob_err json(const char *text, enum ob_cred_json kind, struct ob_aws_credentials *c, struct ob_error *e)
{
    return ob_cred_json_parse(text, strlen(text), kind, SRC, c, e);
}

TEST(container_json_gives_keys_token_and_expiry)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"AccessKeyId\":\"ASIAX\",\"SecretAccessKey\":\"sek\",\"Token\":\"tok\","
                   "\"Expiration\":\"2026-12-07T22:39:20Z\",\"RoleArn\":\"arn:x\"}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_OK);
    CHECK_STR(c.access_key_id, "ASIAX");
    CHECK_STR(c.secret_access_key, "sek");
    CHECK_STR(c.session_token, "tok");
    CHECK_INT(c.expires_at, 1796683160);
    CHECK_STR(c.source, SRC);
    ob_aws_credentials_free(&c);
}

TEST(instance_metadata_json_must_say_success)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\","
                   "\"Token\":\"T\",\"Expiration\":\"2026-12-07T22:39:20Z\"}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": the answer's Code is \"AssumeRoleUnauthorizedAccess\", not \"Success\"");
}

TEST(endpoint_json_without_expiration_or_token_is_refused_naming_the_field)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\"}", OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": the answer has no \"Expiration\"");
    CHECK_INT(json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":\"2026-12-07T22:39:20Z\"}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": the answer has no \"Token\"");
    CHECK_INT(json("not json", OB_CRED_JSON_ENDPOINT, &c, &e), OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": the answer is not a JSON object");
}

TEST(a_bad_expiration_is_named_but_the_secret_never_is)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"VERYSECRET\",\"Token\":\"T\",\"Expiration\":\"soon\"}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": Expiration \"soon\" is not an ISO 8601 time");
}

TEST(process_json_is_version_1_with_an_optional_expiration)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"Version\":1,\"AccessKeyId\":\"AKIA\",\"SecretAccessKey\":\"S\"}", OB_CRED_JSON_PROCESS, &c, &e),
              OB_OK);
    CHECK_STR(c.access_key_id, "AKIA");
    CHECK(!c.session_token);
    CHECK_INT(c.expires_at, 0);
    ob_aws_credentials_free(&c);
    CHECK_INT(json("{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"SessionToken\":\"T\","
                   "\"Expiration\":\"2026-12-07T22:39:20.5+01:00\"}",
                   OB_CRED_JSON_PROCESS, &c, &e),
              OB_OK);
    CHECK_STR(c.session_token, "T");
    CHECK_INT(c.expires_at, 1796683160 - 3600);
    ob_aws_credentials_free(&c);
    CHECK_INT(json("{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\"}", OB_CRED_JSON_PROCESS, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": the output's \"Version\" is not 1");
}

static const char sts_ok[] =
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
    "  <AssumeRoleWithWebIdentityResult>\n"
    "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n"
    "    <Credentials>\n"
    "      <SessionToken>to&amp;ken</SessionToken>\n"
    "      <SecretAccessKey>sek</SecretAccessKey>\n"
    "      <Expiration>2026-12-07T22:39:20Z</Expiration>\n"
    "      <AccessKeyId>ASIASTS</AccessKeyId>\n"
    "    </Credentials>\n"
    "  </AssumeRoleWithWebIdentityResult>\n"
    "</AssumeRoleWithWebIdentityResponse>\n";

TEST(sts_answer_gives_the_credentials_of_its_result)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(ob_sts_answer_parse(200, sts_ok, strlen(sts_ok), SRC, &c, &e), OB_OK);
    CHECK_STR(c.access_key_id, "ASIASTS");
    CHECK_STR(c.secret_access_key, "sek");
    CHECK_STR(c.session_token, "to&ken");
    CHECK_INT(c.expires_at, 1796683160);
    ob_aws_credentials_free(&c);
}

TEST(sts_error_names_its_code_and_message_and_whether_to_retry)
{
    static const char denied[] =
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
        "<Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
        "</Error><RequestId>r</RequestId></ErrorResponse>";
    static const char throttled[] = "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message>"
                                    "</Error></ErrorResponse>";
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(ob_sts_answer_parse(403, denied, strlen(denied), SRC, &c, &e), OB_ERR_ACCESS_DENIED);
    CHECK_STR(e.msg, SRC ": STS answered HTTP 403 AccessDenied: Not authorized to perform "
                     "sts:AssumeRoleWithWebIdentity");
    CHECK_STR(e.aws_type, "AccessDenied");
    CHECK(!e.retriable);
    CHECK_INT(ob_sts_answer_parse(400, throttled, strlen(throttled), SRC, &c, &e), OB_ERR_THROTTLED);
    CHECK(e.retriable);
    CHECK_INT(ob_sts_answer_parse(502, "bad gateway", 11, SRC, &c, &e), OB_ERR_SERVICE);
    CHECK_STR(e.msg, SRC ": STS answered HTTP 502");
    CHECK(e.retriable);
    CHECK_INT(ob_sts_answer_parse(200, "<x/>", 4, SRC, &c, &e), OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": STS answered without <Credentials>");
}

TEST(sts_form_encodes_its_values_and_skips_unset_ones)
{
    struct ob_buf b = { 0 };
    struct ob_sts_param p[] = {
        { "RoleArn", "arn:aws:iam::1:role/x" },
        { "ExternalId", NULL },
        { "RoleSessionName", "a b" },
    };
    ob_sts_form(&b, "AssumeRole", p, 3);
    CHECK_STR(ob_buf_cstr(&b),
              "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=a%20b");
    ob_buf_free(&b);
}

static bool allowed(const char *text)
{
    struct ob_url u;
    struct ob_error e = { 0 };
    if (ob_url_parse(text, &u, &e) != OB_OK)
        return false;
    bool ok = ob_container_url_allowed(&u);
    ob_url_free(&u);
    return ok;
}

TEST(container_full_uri_is_https_or_loopback_or_the_ecs_and_eks_addresses)
{
    CHECK(allowed("https://creds.example.com/x"));
    CHECK(allowed("http://127.0.0.1:8080/creds"));
    CHECK(allowed("http://127.3.2.1/creds"));
    CHECK(allowed("http://localhost/creds"));
    CHECK(allowed("http://[::1]:80/creds"));
    CHECK(allowed("http://169.254.170.2/v2/credentials/x"));
    CHECK(allowed("http://169.254.170.23/v1/credentials"));
    CHECK(allowed("http://[fd00:ec2::23]/v1/credentials"));
    CHECK(allowed("http://[fd00:ec2:0::23]/v1/credentials"));
    CHECK(!allowed("http://169.254.169.254/latest"));
    CHECK(!allowed("http://10.0.0.1/creds"));
    CHECK(!allowed("http://creds.example.com/x"));
    CHECK(!allowed("http://[fd00:ec2::24]/x"));
}

TEST(an_expiration_that_is_not_a_string_is_refused_not_taken_for_none)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":1796683160}",
                   OB_CRED_JSON_PROCESS, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": Expiration is not a string (an ISO 8601 time)");
    CHECK_INT(json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\",\"Expiration\":true}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_ERR_CREDENTIALS);
    CHECK_STR(e.msg, SRC ": Expiration is not a string (an ISO 8601 time)");
    CHECK_INT(json("{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Expiration\":null}",
                   OB_CRED_JSON_PROCESS, &c, &e),
              OB_OK);
    CHECK_INT(c.expires_at, 0);
    ob_aws_credentials_free(&c);
}

TEST(an_expiration_at_the_epoch_is_long_past_not_never)
{
    struct ob_aws_credentials c;
    struct ob_error e = { 0 };
    CHECK_INT(json("{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"S\",\"Token\":\"T\","
                   "\"Expiration\":\"1970-01-01T00:00:00.500Z\"}",
                   OB_CRED_JSON_ENDPOINT, &c, &e),
              OB_OK);
    CHECK(c.expires_at < 0);
    ob_aws_credentials_free(&c);
}
