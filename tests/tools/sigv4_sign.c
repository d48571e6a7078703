/* sigv4_sign: the signer as a filter, for the differential test against
 * botocore (tests/integration/test_sigv4_botocore.py).
 *
 * stdin: one JSON request per line,
 *   {"method", "path", "query" (raw, optional), "headers": [[name, value], ...],
 *    "body_b64", "access_key", "secret_key", "token" (optional), "region",
 *    "service", "amz_date", and optionally "normalize_path" (default true),
 *    "sign_body_header", "omit_session_token" (default false)}
 * stdout: one line per request, the Authorization header's value, or
 *   "ERROR: message". The exit status is 1 when any line failed.
 * -v also writes each canonical request and string to sign to stderr.
 *
 * Every request goes through one signing-key cache, as in the daemon. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"
#include "core/buf.h"
#include "core/codec.h"

#define MAX_HEADERS 64

static bool flag(const json_t *req, const char *name, bool dflt)
{
    const json_t *v = json_object_get(req, name);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static uint64_t lines_signed;

/* Signs one parsed line into *auth; on failure fills err. */
static enum ob_err sign_line(struct ob_sigv4_key_cache *cache, const json_t *req, bool verbose,
                             struct ob_buf *auth, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_buf body = { 0 };
    struct ob_sigv4_signed s = { 0 };
    struct ob_http_header headers[MAX_HEADERS];
    size_t n_headers = 0;

    const json_t *hs = json_object_get(req, "headers");
    if (json_array_size(hs) > MAX_HEADERS) {
        rc = ob_error_set(err, OB_ERR_INVALID, "more than %d headers", MAX_HEADERS);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(hs); i++) {
        const json_t *h = json_array_get(hs, i);
        headers[n_headers].name = json_string_value(json_array_get(h, 0));
        headers[n_headers].value = json_string_value(json_array_get(h, 1));
        if (!headers[n_headers].name || !headers[n_headers].value) {
            rc = ob_error_set(err, OB_ERR_INVALID, "header %zu is not [name, value]", i);
            goto out;
        }
        n_headers++;
    }
    const char *b64 = json_string_value(json_object_get(req, "body_b64"));
    if (b64 && !ob_base64_decode(&body, b64, strlen(b64))) {
        rc = ob_error_set(err, OB_ERR_INVALID, "body_b64 is not base64");
        goto out;
    }

    struct ob_sigv4_request r = {
        .method = json_string_value(json_object_get(req, "method")),
        .path = json_string_value(json_object_get(req, "path")),
        .query = json_string_value(json_object_get(req, "query")),
        .headers = headers,
        .n_headers = n_headers,
        .body = body.data,
        .body_len = body.len,
    };
    /* A borrowed view: the casts only drop const, the signer reads. */
    struct ob_aws_credentials creds = {
        .access_key_id = (char *)json_string_value(json_object_get(req, "access_key")),
        .secret_access_key = (char *)json_string_value(json_object_get(req, "secret_key")),
        .session_token = (char *)json_string_value(json_object_get(req, "token")),
    };
    struct ob_sigv4_params p = {
        .region = json_string_value(json_object_get(req, "region")),
        .service = json_string_value(json_object_get(req, "service")),
        .amz_date = json_string_value(json_object_get(req, "amz_date")),
        .normalize_path = flag(req, "normalize_path", true),
        .sign_body_header = flag(req, "sign_body_header", false),
        .omit_session_token = flag(req, "omit_session_token", false),
    };
    /* Each line may bring other keys: each is its own set of credentials. */
    rc = ob_sigv4_sign_cached(cache, ++lines_signed, &r, &creds, &p, &s, err);
    if (rc)
        goto out;
    if (verbose)
        fprintf(stderr, "--- canonical request\n%s\n--- string to sign\n%s\n", s.canonical_request.data,
                s.string_to_sign.data);
    ob_buf_puts(auth, s.authorization.data);
out:
    ob_sigv4_signed_free(&s);
    ob_buf_free(&body);
    return rc;
}

int main(int argc, char **argv)
{
    bool verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    if (argc > 2 || (argc == 2 && !verbose)) {
        fprintf(stderr, "usage: sigv4_sign [-v] < requests.jsonl\n");
        return 64;
    }
    struct ob_sigv4_key_cache cache;
    ob_sigv4_key_cache_init(&cache);
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    struct ob_buf auth = { 0 };

    while (getline(&line, &cap, stdin) >= 0) {
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        struct ob_error err = { 0 };
        json_error_t jerr;
        json_t *req = json_loads(line, 0, &jerr);
        ob_buf_reset(&auth);
        enum ob_err rc = req ? sign_line(&cache, req, verbose, &auth, &err)
                             : ob_error_set(&err, OB_ERR_INVALID, "bad JSON: %s", jerr.text);
        if (rc) {
            printf("ERROR: %s\n", err.msg);
            status = 1;
        } else {
            printf("%s\n", auth.data);
        }
        json_decref(req);
    }
    fflush(stdout);
    free(line);
    ob_buf_free(&auth);
    ob_sigv4_key_cache_destroy(&cache);
    return status;
}
