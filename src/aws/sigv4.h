/* AWS Signature Version 4: requests signed with an Authorization header
 * (ob_sigv4_sign) and presigned URLs, whose authentication is in the query
 * string (ob_sigv4_presign).
 *
 * Signing is a pure function: the request, the credentials and the params
 * (including the date) go in, the canonical request, the string to sign,
 * the signature and the headers to add come out. Nothing is read from the
 * clock or the environment.
 *
 * Ownership:
 *  - everything in struct ob_sigv4_request, ob_aws_credentials and
 *    ob_sigv4_params is borrowed for the duration of the call;
 *  - struct ob_sigv4_signed owns its buffers and strings; zero it before
 *    its first use and release it with ob_sigv4_signed_free, also after a
 *    failed call. It may sign request after request: each call starts it
 *    afresh and keeps its buffers, so a reused one signs without
 *    allocating;
 *  - struct ob_sigv4_key_cache is owned by whoever embeds it (one per
 *    client); it is shared by threads and locks itself.
 *
 * Signing with a header, the signer adds X-Amz-Date (and
 * X-Amz-Security-Token, x-amz-content-sha256 when asked) itself, so a
 * request must not already carry the headers it adds; presigning, it adds
 * query parameters instead, under the same rule. As the SDKs do, User-Agent, Expect, X-Amzn-Trace-Id and
 * Authorization are never signed: proxies and libcurl rewrite them. */
#ifndef OB_AWS_SIGV4_H
#define OB_AWS_SIGV4_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/identity.h"
#include "core/buf.h"
#include "outboxd/error.h"

struct ob_http_header {
    const char *name;
    const char *value;
};

struct ob_sigv4_request {
    const char *method;
    /* As sent on the wire, already percent-encoded where needed, e.g. "/"
     * or "/a%20b/../c". Encoded once more for the canonical request, which
     * is the "double encoding" AWS asks of every service but S3. */
    const char *path;
    const char *query; /* raw query without '?', or NULL */
    const struct ob_http_header *headers;
    size_t n_headers; /* must include Host */
    const void *body;
    size_t body_len;
};

struct ob_sigv4_params {
    const char *region;
    const char *service; /* credential scope name: "dynamodb" for Streams too */
    const char *amz_date; /* "20150830T123600Z", see ob_sigv4_amz_date */
    /* Remove "." and ".." segments and empty segments from the path, as
     * every service but S3 expects. */
    bool normalize_path;
    /* Add and sign x-amz-content-sha256 with the body's hash (header
     * signing only: a presigned URL has no headers to add). */
    bool sign_body_header;
    /* Send the session token unsigned, added after signing (a few services
     * want this); by default it is signed. */
    bool omit_session_token;
};

#define OB_SIGV4_MAX_ADD 4

struct ob_sigv4_signed {
    struct ob_buf canonical_request;
    struct ob_buf string_to_sign;
    struct ob_buf authorization; /* the Authorization header's value; empty when presigned */
    /* Presigned: the query to send, without '?' (see ob_sigv4_presign);
     * empty when signed with a header. */
    struct ob_buf query;
    char signature[65]; /* lowercase hex */
    /* Headers the caller must send besides its own and Authorization, in
     * this order: X-Amz-Date, X-Amz-Security-Token when the credentials
     * have a token, x-amz-content-sha256 when sign_body_header. Values
     * point into add_values. */
    struct ob_http_header add[OB_SIGV4_MAX_ADD];
    size_t n_add;
    /* Kept from call to call */
    struct ob_buf add_values, names, signed_names, scope, path;
    void *hdrs;
    size_t hdrs_cap;
};

/* Caches the derived signing key (kSigning), which depends only on the
 * secret, the day, the region and the service: it changes once a day, so
 * the four HMACs that derive it need not run for every request. One entry:
 * a client signs with one identity for one region. */
struct ob_sigv4_key_cache {
    pthread_mutex_t mu;
    bool valid;
    /* What the key was derived for: the credentials (their id, see
     * ob_sigv4_sign_cached; not the access key id: a refresh may bring it
     * back with a new secret) and "20150830/region/service". */
    uint64_t credentials_id;
    char scope[256];
    /* The signing key's keyed HMAC state (its padded blocks already
     * hashed), opaque here: its type is private to the signer. */
    _Alignas(16) unsigned char keyed[256];
};

void ob_sigv4_key_cache_init(struct ob_sigv4_key_cache *cache);
void ob_sigv4_key_cache_destroy(struct ob_sigv4_key_cache *cache);

/* Signs req. Bad input (no Host, a header the signer adds already
 * present, a malformed date) is OB_ERR_INVALID. Error messages never
 * contain the secret or the token. */
enum ob_err ob_sigv4_sign(const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                          const struct ob_sigv4_params *params, struct ob_sigv4_signed *out,
                          struct ob_error *err);

/* The same, taking the signing key from cache (thread-safe).
 * credentials_id names creds: it must differ for any two sets of
 * credentials signed through one cache (ob_cred_snapshot's generation). */
enum ob_err ob_sigv4_sign_cached(struct ob_sigv4_key_cache *cache, uint64_t credentials_id,
                                 const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                                 const struct ob_sigv4_params *params, struct ob_sigv4_signed *out,
                                 struct ob_error *err);

/* Longest validity AWS accepts for a presigned URL: seven days. */
#define OB_SIGV4_PRESIGN_MAX_SECONDS 604800

/* Signs req as a presigned URL valid for expires_seconds (1 to
 * OB_SIGV4_PRESIGN_MAX_SECONDS) from params->amz_date. out->query receives
 * the query to send: req->query as given, then X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Security-Token when the credentials have a token, X-Amz-Signature
 * (botocore's order, so a URL can be compared with botocore's byte for
 * byte). The token is signed unless omit_session_token. The canonical
 * request ends with the body's hash (that of an empty body for a GET), as
 * botocore and aws-c-auth presign for every service but S3 (which wants
 * UNSIGNED-PAYLOAD). Nothing goes in out->add or out->authorization.
 * Besides ob_sigv4_sign's errors, a query that already has one of the
 * parameters the signer adds is OB_ERR_INVALID. */
enum ob_err ob_sigv4_presign(const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                             const struct ob_sigv4_params *params, unsigned expires_seconds,
                             struct ob_sigv4_signed *out, struct ob_error *err);

void ob_sigv4_signed_free(struct ob_sigv4_signed *s);

/* Appends s percent-encoded as SigV4 wants a query key or value: all but
 * A-Z a-z 0-9 - . _ ~, uppercase hex. */
void ob_sigv4_uri_encode(struct ob_buf *out, const char *s, size_t len);

/* "YYYYMMDDTHHMMSSZ" in UTC. */
void ob_sigv4_amz_date(time_t t, char out[17]);

#endif
