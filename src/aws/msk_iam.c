#include "aws/msk_iam.h"

#include <string.h>

#include "aws/sigv4.h"
#include "core/codec.h"

/* As the aws-msk-iam-sasl-signer libraries name them. */
#define MSK_IAM_SERVICE "kafka-cluster"
#define MSK_IAM_ACTION_QUERY "Action=kafka-cluster%3AConnect"

/* The region becomes part of a host name: letters, digits and hyphens,
 * as every AWS region is named ("us-east-1", "us-gov-west-1"). */
static bool valid_region(const char *region)
{
    size_t n = region ? strlen(region) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = region[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* Appends base64url without padding (RFC 4648 section 5), as the signer
 * libraries encode the URL. */
static void put_base64url(struct ob_buf *out, const char *s, size_t len)
{
    size_t start = out->len;
    ob_base64_encode(out, s, len);
    while (out->len > start && out->data[out->len - 1] == '=')
        out->len--;
    out->data[out->len] = '\0';
    for (char *p = out->data + start; *p; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
}

enum ob_err ob_msk_iam_token(const struct ob_aws_credentials *creds, const char *region, time_t now,
                             struct ob_buf *token, int64_t *expires_at_ms, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_buf host = { 0 }, url = { 0 };
    struct ob_sigv4_signed s = { 0 };
    char amz_date[17];

    if (!valid_region(region)) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "MSK IAM token: region \"%s\" is not an AWS region name",
                          region ? region : "");
        goto out;
    }
    ob_buf_cat(&host, "kafka.", region, ".amazonaws.com", NULL);
    ob_sigv4_amz_date(now, amz_date);
    const struct ob_http_header headers[] = { { "host", host.data } };
    const struct ob_sigv4_request req = {
        .method = "GET",
        .path = "/",
        .query = MSK_IAM_ACTION_QUERY,
        .headers = headers,
        .n_headers = 1,
    };
    const struct ob_sigv4_params params = {
        .region = region,
        .service = MSK_IAM_SERVICE,
        .amz_date = amz_date,
        .normalize_path = true,
    };
    rc = ob_sigv4_presign(&req, creds, &params, OB_MSK_IAM_TOKEN_SECONDS, &s, err);
    if (rc) {
        if (err)
            ob_error_prefix(err, "MSK IAM token");
        goto out;
    }
    /* User-Agent is appended after signing, unsigned, as the signer
     * libraries do (urlencode's "%2F" for the '/'): brokers read it for
     * their client metrics only. */
    ob_buf_cat(&url, "https://", host.data, "/?", s.query.data, "&User-Agent=outboxd%2F", NULL);
    ob_sigv4_uri_encode(&url, OUTBOXD_VERSION, strlen(OUTBOXD_VERSION));
    put_base64url(token, url.data, url.len);
    /* From the signing time itself: the Python signer reads X-Amz-Date
     * back as local time, which is off by the zone's offset outside UTC. */
    *expires_at_ms = ((int64_t)now + OB_MSK_IAM_TOKEN_SECONDS) * 1000;
out:
    if (url.data) /* it holds the session token */
        explicit_bzero(url.data, url.cap);
    ob_buf_free(&url);
    ob_buf_free(&host);
    ob_sigv4_signed_free(&s);
    return rc;
}
