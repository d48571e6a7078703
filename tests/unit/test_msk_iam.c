/* The MSK IAM token: what aws-msk-iam-sasl-signer-python's
 * generate_auth_token makes with botocore, for the same credentials,
 * region and time, with outboxd's User-Agent.
 *
 * The expected URLs were computed once with botocore (Debian's 1.29.27;
 * 1.43.11 gives the same) by botocore_token() of
 * tests/integration/test_msk_iam_botocore.py, which is that library's
 * __construct_auth_token at a frozen clock, e.g.
 *   botocore_token("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None,
 *                  "us-east-1", datetime.datetime(2023, 6, 13, 9, 41, 7), "outboxd/0.1.0")
 * and decoded; the User-Agent they end with is left out here and appended
 * from OUTBOXD_VERSION, so that a release does not change them. That test
 * also compares whole tokens for random inputs. */
#include <stdio.h>
#include <string.h>

#include "aws/msk_iam.h"
#include "core/codec.h"
#include "test.h"

#define EXAMPLE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EXAMPLE_TOKEN "IQoJb3JpZ2luX2VjEXAMPLE/session+token=="

static const struct ob_aws_credentials long_term = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = EXAMPLE_SECRET,
};

static const struct ob_aws_credentials temporary = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = EXAMPLE_SECRET,
    .session_token = EXAMPLE_TOKEN,
};

/* 2023-06-13T09:41:07Z and 2026-02-28T23:59:59Z */
#define SIGNED_AT_2023 1686649267
#define SIGNED_AT_2026 1772323199

/* The URL a token encodes, or false when it is not base64url without
 * padding (RFC 4648 section 5, as the signer libraries encode). */
static bool decode_token(const char *token, struct ob_buf *url)
{
    struct ob_buf b64 = { 0 };
    bool ok = strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == strlen(token) &&
              strlen(token) % 4 != 1;
    for (const char *p = token; ok && *p; p++)
        ob_buf_putc(&b64, *p == '-' ? '+' : *p == '_' ? '/' : *p);
    while (ok && b64.len % 4)
        ob_buf_putc(&b64, '=');
    ok = ok && ob_base64_decode(url, b64.data, b64.len);
    ob_buf_free(&b64);
    return ok;
}

static void check_token_encodes(const char *token, const char *url_before_user_agent)
{
    struct ob_buf url = { 0 }, want = { 0 };
    ob_buf_cat(&want, url_before_user_agent, "&User-Agent=outboxd%2F" OUTBOXD_VERSION, NULL);
    CHECK(decode_token(token, &url));
    CHECK_STR(ob_buf_cstr(&url), want.data);
    ob_buf_free(&url);
    ob_buf_free(&want);
}

TEST(msk_iam_token_is_botocores_presigned_connect_url_for_long_term_credentials)
{
    struct ob_buf token = { 0 };
    int64_t expires_at_ms = 0;
    struct ob_error err = { 0 };
    CHECK_INT(ob_msk_iam_token(&long_term, "us-east-1", SIGNED_AT_2023, &token, &expires_at_ms, &err), OB_OK);
    check_token_encodes(token.data,
                        "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect"
                        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIDEXAMPLE%2F20230613%2Fus-east-1%2Fkafka-cluster%2Faws4_request"
                        "&X-Amz-Date=20230613T094107Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
                        "&X-Amz-Signature=e6d315fc8eaffa515722a763bd915b27c97d61440cea6cb1c0f5376a95e96d14");
    ob_buf_free(&token);
}

/* The token of temporary credentials is signed, in the query, as botocore
 * puts it (a broker checks it with the signature). */
TEST(msk_iam_token_signs_the_session_token_of_temporary_credentials_in_its_query)
{
    struct ob_buf token = { 0 };
    int64_t expires_at_ms = 0;
    struct ob_error err = { 0 };
    CHECK_INT(ob_msk_iam_token(&temporary, "eu-central-1", SIGNED_AT_2026, &token, &expires_at_ms, &err), OB_OK);
    check_token_encodes(token.data,
                        "https://kafka.eu-central-1.amazonaws.com/?Action=kafka-cluster%3AConnect"
                        "&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                        "&X-Amz-Credential=AKIDEXAMPLE%2F20260228%2Feu-central-1%2Fkafka-cluster%2Faws4_request"
                        "&X-Amz-Date=20260228T235959Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
                        "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2Fsession%2Btoken%3D%3D"
                        "&X-Amz-Signature=496d3a1abb9dc321059882c24ebe6b7b03cc6d2ff21d27f2ddc12c29c70720b3");
    ob_buf_free(&token);
}

/* Both URLs above are 3n+1 bytes long with this version, so their base64
 * would end in "==": the token must not. */
TEST(msk_iam_token_is_base64url_without_padding)
{
    struct ob_buf token = { 0 }, url = { 0 };
    int64_t expires_at_ms = 0;
    CHECK_INT(ob_msk_iam_token(&temporary, "us-east-1", SIGNED_AT_2023, &token, &expires_at_ms, NULL), OB_OK);
    CHECK(!strpbrk(token.data, "+/="));
    CHECK(strchr(token.data, '_')); /* "/?" of the URL encodes to one */
    CHECK(decode_token(token.data, &url));
    CHECK_INT(token.len, (url.len * 4 + 2) / 3);
    ob_buf_free(&token);
    ob_buf_free(&url);
}

/* A URL is ASCII: base64 gives '+' only for a '~' (or '>') at the end of a
 * 3-byte group, and '/' for a '?' there. Three '~' in the key id (which
 * goes in unencoded: '~' is unreserved) put one at every position. */
TEST(msk_iam_token_uses_the_url_safe_alphabet_for_the_characters_that_need_it)
{
    const struct ob_aws_credentials tilde = { .access_key_id = "AKID~~~", .secret_access_key = EXAMPLE_SECRET };
    struct ob_buf token = { 0 }, url = { 0 };
    int64_t expires_at_ms = 0;
    CHECK_INT(ob_msk_iam_token(&tilde, "us-east-1", SIGNED_AT_2023, &token, &expires_at_ms, NULL), OB_OK);
    CHECK(!strpbrk(token.data, "+/="));
    CHECK(strchr(token.data, '-'));
    CHECK(decode_token(token.data, &url));
    CHECK(strstr(url.data, "X-Amz-Credential=AKID~~~%2F20230613%2F"));
    ob_buf_free(&token);
    ob_buf_free(&url);
}

TEST(msk_iam_token_expires_900_seconds_after_signing)
{
    struct ob_buf token = { 0 };
    int64_t expires_at_ms = 0;
    CHECK_INT(ob_msk_iam_token(&long_term, "us-east-1", SIGNED_AT_2023, &token, &expires_at_ms, NULL), OB_OK);
    CHECK_INT(expires_at_ms, (int64_t)(SIGNED_AT_2023 + OB_MSK_IAM_TOKEN_SECONDS) * 1000);
    CHECK_INT(OB_MSK_IAM_TOKEN_SECONDS, 900);
    ob_buf_free(&token);
}

/* The region becomes the host name: anything but a region's letters,
 * digits and hyphens would make another URL (or another host). */
TEST(msk_iam_token_refuses_a_region_that_is_not_an_aws_region_name)
{
    const char *regions[] = { "", "us-east-1.evil.example", "us-east-1/x", "us east 1", "US-EAST-1", "a?b",
                              "0123456789012345678901234567890123456789012345678901234567890123" };
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++) {
        struct ob_buf token = { 0 };
        int64_t expires_at_ms = 0;
        struct ob_error err = { 0 };
        CHECK_INT(ob_msk_iam_token(&long_term, regions[i], SIGNED_AT_2023, &token, &expires_at_ms, &err),
                  OB_ERR_CONFIG);
        CHECK(strstr(err.msg, "region"));
        CHECK_INT(token.len, 0);
        ob_buf_free(&token);
    }
    struct ob_buf token = { 0 };
    int64_t expires_at_ms = 0;
    CHECK_INT(ob_msk_iam_token(&long_term, NULL, SIGNED_AT_2023, &token, &expires_at_ms, NULL), OB_ERR_CONFIG);
    ob_buf_free(&token);
}

TEST(msk_iam_token_failure_says_what_is_missing_without_the_secret_or_token)
{
    const struct ob_aws_credentials no_key_id = { .secret_access_key = EXAMPLE_SECRET,
                                                  .session_token = EXAMPLE_TOKEN };
    const struct ob_aws_credentials no_secret = { .access_key_id = "AKIDEXAMPLE", .session_token = EXAMPLE_TOKEN };
    const struct ob_aws_credentials *cases[] = { &no_key_id, &no_secret };
    for (size_t i = 0; i < 2; i++) {
        struct ob_buf token = { 0 };
        int64_t expires_at_ms = 0;
        struct ob_error err = { 0 };
        CHECK_INT(ob_msk_iam_token(cases[i], "us-east-1", SIGNED_AT_2023, &token, &expires_at_ms, &err),
                  OB_ERR_INVALID);
        CHECK(strstr(err.msg, "MSK IAM token"));
        CHECK(strstr(err.msg, "access key id or secret"));
        CHECK(!strstr(err.msg, EXAMPLE_SECRET));
        CHECK(!strstr(err.msg, EXAMPLE_TOKEN));
        CHECK_INT(token.len, 0);
        ob_buf_free(&token);
    }
}
