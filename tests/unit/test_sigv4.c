/* SigV4 against AWS's two public suites (see the README next to them):
 * classic/ (botocore's copy of aws4_testsuite, one file per artefact) and
 * v4/ (aws-c-auth's aws-signing-test-suite, one folder per case). Every
 * header-signing case must give the same canonical request, string to sign,
 * signature and signed request, and so must every query-signing
 * (presigned URL) case of v4/.
 *
 * The suites are found at $OB_SIGV4_VECTORS, else in tests/vectors/sigv4
 * (a byte-for-byte copy kept in the repository, so a clean clone tests
 * itself) from the repository root, where the tests run. */
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/sigv4.h"
#include "core/buf.h"
#include "test.h"

#define MAX_HEADERS 32

static const char *vectors_dir(void)
{
    const char *d = getenv("OB_SIGV4_VECTORS");
    return d && *d ? d : "tests/vectors/sigv4";
}

/* Formats a path into b (reset first) and returns it. */
__attribute__((format(printf, 2, 3))) static const char *pathf(struct ob_buf *b, const char *fmt, ...)
{
    va_list ap;
    ob_buf_reset(b);
    va_start(ap, fmt);
    ob_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return b->data;
}

/* A raw HTTP request as the suites write it. Header values keep folded
 * continuation lines ("a\n  b"): unfolding them is the signer's job. */
struct raw_request {
    struct ob_buf text; /* owns every string below */
    char *method, *path, *query;
    struct ob_http_header headers[MAX_HEADERS];
    size_t n_headers;
    const char *body;
    size_t body_len;
};

static bool parse_request(struct raw_request *r, const char *file)
{
    memset(r, 0, sizeof *r);
    if (!ob_test_read_buf(file, &r->text))
        return false;
    char *p = r->text.data, *end = r->text.data + r->text.len;

    char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
        return false;
    *eol = '\0';
    char *sp = strchr(p, ' '), *version = strstr(p, " HTTP/");
    if (!sp || !version || version < sp)
        return false;
    *sp = '\0';
    *version = '\0';
    r->method = p;
    r->path = sp + 1;
    char *q = strchr(r->path, '?');
    if (q) {
        *q = '\0';
        r->query = q + 1;
    }
    p = eol + 1;

    char *last_value_end = NULL;
    while (p < end && *p != '\n') {
        eol = memchr(p, '\n', (size_t)(end - p));
        char *line_end = eol ? eol : end;
        if (*p == ' ' || *p == '\t') {
            /* A continuation: glue it to the previous value, newline kept. */
            if (!last_value_end)
                return false;
            *last_value_end = '\n';
        } else {
            char *colon = memchr(p, ':', (size_t)(line_end - p));
            if (!colon || r->n_headers == MAX_HEADERS)
                return false;
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            r->headers[r->n_headers].name = p;
            r->headers[r->n_headers].value = v;
            r->n_headers++;
        }
        last_value_end = line_end;
        if (!eol) {
            p = end;
            break;
        }
        *eol = '\0';
        p = eol + 1;
    }
    if (p < end && *p == '\n')
        p++;
    r->body = p;
    r->body_len = (size_t)(end - p);
    return true;
}

static const char *find_header(const struct raw_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void remove_header(struct raw_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            memmove(&r->headers[i], &r->headers[i + 1], (r->n_headers - i - 1) * sizeof r->headers[0]);
            r->n_headers--;
            return;
        }
    }
}

/* One case of either suite, with what the signer must produce. */
struct vector_case {
    char name[128];
    struct raw_request req;
    struct ob_aws_credentials creds;
    struct ob_sigv4_params params;
    char amz_date[17];
    char region[64], service[64];
    struct ob_buf creq, sts, signature, authorization; /* expected */
    unsigned presign_seconds; /* 0: signed with a header */
    bool check_signed_request;
    struct raw_request sreq;
};

static void vector_case_free(struct vector_case *c)
{
    ob_buf_free(&c->req.text);
    ob_buf_free(&c->sreq.text);
    ob_buf_free(&c->creq);
    ob_buf_free(&c->sts);
    ob_buf_free(&c->signature);
    ob_buf_free(&c->authorization);
    ob_aws_credentials_free(&c->creds);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits a query (in place) into its pairs, sorted; returns their count. */
static size_t sorted_pairs(char *query, char **pairs, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(query, "&", &save); p && n < max; p = strtok_r(NULL, "&", &save))
        pairs[n++] = p;
    qsort(pairs, n, sizeof *pairs, cmp_str);
    return n;
}

/* A presigned request's query must have the same pairs as ours; the
 * suite's order of the authentication parameters is aws-c-auth's, ours
 * botocore's, and a server reads them in any order. */
static bool signed_query_matches(const struct vector_case *c, const struct ob_sigv4_signed *s,
                                 struct ob_buf *why)
{
    char *want_q = ob_xstrdup(c->sreq.query ? c->sreq.query : ""), *got_q = ob_xstrdup(ob_buf_cstr(&s->query));
    char *want[64], *got[64];
    size_t n_want = sorted_pairs(want_q, want, 64), n_got = sorted_pairs(got_q, got, 64);
    bool same = n_want == n_got;
    for (size_t i = 0; same && i < n_want; i++)
        same = strcmp(want[i], got[i]) == 0;
    if (!same)
        ob_buf_printf(why, "presigned query %s, expected %s", ob_buf_cstr(&s->query), c->sreq.query);
    free(want_q);
    free(got_q);
    return same;
}

/* The signed request must hold exactly the request's headers, the ones
 * the signer asked to add, and our Authorization (none when presigned). */
static bool signed_request_matches(const struct vector_case *c, const struct ob_sigv4_signed *s,
                                   struct ob_buf *why)
{
    bool used_req[MAX_HEADERS] = { false }, used_add[OB_SIGV4_MAX_ADD] = { false };
    bool used_authz = c->presign_seconds > 0;
    size_t expected = c->req.n_headers + s->n_add + !used_authz;
    if (c->sreq.n_headers != expected) {
        ob_buf_printf(why, "signed request has %zu headers, expected %zu", c->sreq.n_headers, expected);
        return false;
    }
    for (size_t i = 0; i < c->sreq.n_headers; i++) {
        const struct ob_http_header *h = &c->sreq.headers[i];
        bool found = false;
        for (size_t j = 0; j < c->req.n_headers && !found; j++) {
            if (!used_req[j] && strcmp(h->name, c->req.headers[j].name) == 0 &&
                strcmp(h->value, c->req.headers[j].value) == 0)
                found = used_req[j] = true;
        }
        for (size_t j = 0; j < s->n_add && !found; j++) {
            if (!used_add[j] && strcasecmp(h->name, s->add[j].name) == 0 &&
                strcmp(h->value, s->add[j].value) == 0)
                found = used_add[j] = true;
        }
        if (!found && !used_authz && strcasecmp(h->name, "Authorization") == 0 &&
            strcmp(h->value, ob_buf_cstr(&s->authorization)) == 0)
            found = used_authz = true;
        if (!found) {
            ob_buf_printf(why, "signed request header %s:%s not produced", h->name, h->value);
            return false;
        }
    }
    return true;
}

/* Signs c and appends a line to failures when anything differs. */
static void run_case(struct vector_case *c, struct ob_buf *failures)
{
    struct ob_sigv4_request req = {
        .method = c->req.method,
        .path = c->req.path,
        .query = c->req.query,
        .headers = c->req.headers,
        .n_headers = c->req.n_headers,
        .body = c->req.body,
        .body_len = c->req.body_len,
    };
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    struct ob_buf why = { 0 };

    enum ob_err rc = c->presign_seconds ? ob_sigv4_presign(&req, &c->creds, &c->params, c->presign_seconds, &s, &err)
                                        : ob_sigv4_sign(&req, &c->creds, &c->params, &s, &err);
    if (rc != OB_OK)
        ob_buf_printf(&why, "sign failed: %s", err.msg);
    else if (strcmp(ob_buf_cstr(&s.canonical_request), ob_buf_cstr(&c->creq)) != 0)
        ob_buf_printf(&why, "canonical request:\n%s\n--- expected:\n%s", ob_buf_cstr(&s.canonical_request),
                      ob_buf_cstr(&c->creq));
    else if (strcmp(ob_buf_cstr(&s.string_to_sign), ob_buf_cstr(&c->sts)) != 0)
        ob_buf_printf(&why, "string to sign:\n%s\n--- expected:\n%s", ob_buf_cstr(&s.string_to_sign),
                      ob_buf_cstr(&c->sts));
    else if (c->signature.len && strcmp(s.signature, ob_buf_cstr(&c->signature)) != 0)
        ob_buf_printf(&why, "signature %s, expected %s", s.signature, ob_buf_cstr(&c->signature));
    else if (c->authorization.len &&
             strcmp(ob_buf_cstr(&s.authorization), ob_buf_cstr(&c->authorization)) != 0)
        ob_buf_printf(&why, "authorization %s, expected %s", ob_buf_cstr(&s.authorization),
                      ob_buf_cstr(&c->authorization));
    else if (c->check_signed_request && signed_request_matches(c, &s, &why) && c->presign_seconds)
        signed_query_matches(c, &s, &why);

    if (why.len)
        ob_buf_printf(failures, "  %s: %s\n", c->name, why.data);
    ob_buf_free(&why);
    ob_sigv4_signed_free(&s);
}

static bool load_text(const char *dir, const char *name, const char *suffix, struct ob_buf *out)
{
    struct ob_buf path = { 0 };
    bool ok = ob_test_read_buf(pathf(&path, "%s/%s%s", dir, name, suffix), out);
    ob_buf_free(&path);
    return ok;
}

static void set_credentials(struct vector_case *c, const char *akid, const char *secret, const char *token)
{
    c->creds.access_key_id = ob_xstrdup(akid);
    c->creds.secret_access_key = ob_xstrdup(secret);
    c->creds.session_token = token ? ob_xstrdup(token) : NULL;
}

/* The classic suite's session-token cases, per its README: the token is a
 * credential; it is signed unless it is added after signing. Its value is
 * taken from the signed request, where it appears. */
static const struct {
    const char *name;
    bool omit;
} classic_token_cases[] = {
    { "get-vanilla-with-session-token", false },
    { "post-sts-header-after", true },
};

static bool load_classic(const char *dir, const char *name, struct vector_case *c)
{
    struct ob_buf path = { 0 };
    snprintf(c->name, sizeof c->name, "classic/%s", name);
    bool ok = parse_request(&c->req, pathf(&path, "%s/%s.req", dir, name)) &&
              parse_request(&c->sreq, pathf(&path, "%s/%s.sreq", dir, name)) &&
              load_text(dir, name, ".creq", &c->creq) && load_text(dir, name, ".sts", &c->sts) &&
              load_text(dir, name, ".authz", &c->authorization);
    ob_buf_free(&path);
    if (!ok)
        return false;
    /* The signer adds X-Amz-Date itself: the request's value is its input. */
    const char *date = find_header(&c->req, "X-Amz-Date");
    if (!date || strlen(date) != 16)
        return false;
    memcpy(c->amz_date, date, sizeof c->amz_date);
    remove_header(&c->req, "X-Amz-Date");

    const char *token = NULL;
    c->params.omit_session_token = false;
    for (size_t i = 0; i < sizeof classic_token_cases / sizeof classic_token_cases[0]; i++) {
        if (strcmp(name, classic_token_cases[i].name) == 0) {
            token = find_header(&c->sreq, "X-Amz-Security-Token");
            c->params.omit_session_token = classic_token_cases[i].omit;
        }
    }
    /* Its signed request carries a rotated token as the signature (see the
     * suite's README): its other files are right, this one is not. */
    c->check_signed_request = strcmp(name, "get-vanilla-with-session-token") != 0;

    set_credentials(c, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token);
    c->params.region = "us-east-1";
    c->params.service = "service";
    c->params.amz_date = c->amz_date;
    c->params.normalize_path = true;
    return true;
}

/* kind: "header" or "query" (presigned), the prefix of the result files. */
static bool load_v4(const char *dir, const char *name, const char *kind, struct vector_case *c)
{
    struct ob_buf path = { 0 };
    bool ok = false;
    snprintf(c->name, sizeof c->name, "v4/%s (%s)", name, kind);
    json_t *ctx = json_load_file(pathf(&path, "%s/%s/context.json", dir, name), 0, NULL);
    if (!ctx)
        goto out;
    const char *akid =
        json_string_value(json_object_get(json_object_get(ctx, "credentials"), "access_key_id"));
    const char *secret =
        json_string_value(json_object_get(json_object_get(ctx, "credentials"), "secret_access_key"));
    const char *token = json_string_value(json_object_get(json_object_get(ctx, "credentials"), "token"));
    const char *region = json_string_value(json_object_get(ctx, "region"));
    const char *service = json_string_value(json_object_get(ctx, "service"));
    const char *ts = json_string_value(json_object_get(ctx, "timestamp"));
    if (!akid || !secret || !region || !service || !ts)
        goto out;

    /* "2015-08-30T12:36:00Z" -> "20150830T123600Z" */
    size_t n = 0;
    for (const char *p = ts; *p && n < sizeof c->amz_date - 1; p++)
        if (*p != '-' && *p != ':')
            c->amz_date[n++] = *p;
    c->amz_date[n] = '\0';

    snprintf(c->region, sizeof c->region, "%s", region);
    snprintf(c->service, sizeof c->service, "%s", service);
    set_credentials(c, akid, secret, token);
    c->params.region = c->region;
    c->params.service = c->service;
    c->params.amz_date = c->amz_date;
    c->params.normalize_path = json_is_true(json_object_get(ctx, "normalize"));
    c->params.sign_body_header = json_is_true(json_object_get(ctx, "sign_body"));
    c->params.omit_session_token = json_is_true(json_object_get(ctx, "omit_session_token"));

    if (strcmp(kind, "query") == 0) {
        json_int_t seconds = json_integer_value(json_object_get(ctx, "expiration_in_seconds"));
        if (seconds <= 0 || seconds > OB_SIGV4_PRESIGN_MAX_SECONDS)
            goto out;
        c->presign_seconds = (unsigned)seconds;
    }

    c->check_signed_request = true;
    ok = parse_request(&c->req, pathf(&path, "%s/%s/request.txt", dir, name)) &&
         parse_request(&c->sreq, pathf(&path, "%s/%s/%s-signed-request.txt", dir, name, kind)) &&
         ob_test_read_buf(pathf(&path, "%s/%s/%s-canonical-request.txt", dir, name, kind), &c->creq) &&
         ob_test_read_buf(pathf(&path, "%s/%s/%s-string-to-sign.txt", dir, name, kind), &c->sts) &&
         ob_test_read_buf(pathf(&path, "%s/%s/%s-signature.txt", dir, name, kind), &c->signature);
out:
    json_decref(ctx);
    ob_buf_free(&path);
    return ok;
}

/* Case names in dir, sorted: files ending in suffix (suffix removed), or
 * folders holding context.json when suffix is NULL. */
static size_t list_cases(const char *dir, const char *suffix, char ***names)
{
    size_t n = 0, cap = 0;
    struct ob_buf probe = { 0 };
    *names = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.')
            continue;
        if (suffix) {
            size_t sl = strlen(suffix);
            if (len <= sl || strcmp(e->d_name + len - sl, suffix) != 0)
                continue;
            len -= sl;
        } else {
            FILE *f = fopen(pathf(&probe, "%s/%s/context.json", dir, e->d_name), "r");
            if (!f)
                continue;
            fclose(f);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *names = ob_xrealloc(*names, cap * sizeof **names);
        }
        (*names)[n++] = ob_xstrndup(e->d_name, len);
    }
    closedir(d);
    ob_buf_free(&probe);
    if (n)
        qsort(*names, n, sizeof **names, cmp_str);
    return n;
}

/* Runs one suite; returns the number of cases found. v4_kind: which of
 * a v4 case's results, "header" or "query"; NULL for classic/. */
static size_t run_suite(const char *suite, const char *v4_kind, struct ob_buf *failures)
{
    bool classic = !v4_kind;
    struct ob_buf dir_buf = { 0 };
    const char *dir = pathf(&dir_buf, "%s/%s", vectors_dir(), suite);
    char **names;
    size_t n = list_cases(dir, classic ? ".req" : NULL, &names);
    for (size_t i = 0; i < n; i++) {
        struct vector_case c = { 0 };
        bool loaded = classic ? load_classic(dir, names[i], &c) : load_v4(dir, names[i], v4_kind, &c);
        if (loaded)
            run_case(&c, failures);
        else
            ob_buf_printf(failures, "  %s/%s: cannot load the case's files\n", suite, names[i]);
        vector_case_free(&c);
        free(names[i]);
    }
    free(names);
    ob_buf_free(&dir_buf);
    return n;
}

TEST(sigv4_every_header_signing_vector_of_both_suites_matches)
{
    struct ob_buf failures = { 0 };
    size_t n_classic = run_suite("classic", NULL, &failures);
    size_t n_v4 = run_suite("v4", "header", &failures);
    printf("  sigv4 vectors in %s: %zu cases (classic %zu, v4 %zu)\n", vectors_dir(), n_classic + n_v4,
           n_classic, n_v4);
    if (failures.len)
        ob_test_fail(__FILE__, __LINE__, "vector cases failed:\n%s", failures.data);
    ob_buf_free(&failures);
    /* Guards against a wrong path making the loop above vacuous. */
    CHECK(n_classic + n_v4 >= 60);
}

TEST(sigv4_every_presigning_vector_of_the_v4_suite_matches)
{
    struct ob_buf failures = { 0 };
    size_t n = run_suite("v4", "query", &failures);
    printf("  presigned sigv4 vectors in %s/v4: %zu cases\n", vectors_dir(), n);
    if (failures.len)
        ob_test_fail(__FILE__, __LINE__, "vector cases failed:\n%s", failures.data);
    ob_buf_free(&failures);
    CHECK(n >= 30);
}

static const struct ob_aws_credentials example_creds = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

static const struct ob_http_header host_only[] = { { "Host", "dynamodb.us-east-1.amazonaws.com" } };

static struct ob_sigv4_request post_request(const struct ob_http_header *headers, size_t n, const char *body)
{
    return (struct ob_sigv4_request){
        .method = "POST",
        .path = "/",
        .headers = headers,
        .n_headers = n,
        .body = body,
        .body_len = body ? strlen(body) : 0,
    };
}

static struct ob_sigv4_params dynamodb_params(const char *amz_date)
{
    return (struct ob_sigv4_params){
        .region = "us-east-1",
        .service = "dynamodb",
        .amz_date = amz_date,
        .normalize_path = true,
    };
}

TEST(sigv4_amz_date_is_utc_basic_format)
{
    char out[17];
    ob_sigv4_amz_date(1440938160, out);
    CHECK_STR(out, "20150830T123600Z");
    ob_sigv4_amz_date(0, out);
    CHECK_STR(out, "19700101T000000Z");
}

TEST(sigv4_cached_key_signs_like_uncached_across_days_and_keys)
{
    struct ob_sigv4_key_cache cache;
    ob_sigv4_key_cache_init(&cache);
    struct ob_sigv4_request req = post_request(host_only, 1, "{}");
    const char *dates[] = { "20150830T123600Z", "20150830T235959Z", "20150831T000000Z", "20150830T123600Z" };
    struct ob_aws_credentials other = { .access_key_id = "AKIDOTHER", .secret_access_key = "other-secret" };
    for (size_t i = 0; i < 8; i++) {
        const struct ob_aws_credentials *creds = i < 4 ? &example_creds : &other;
        struct ob_sigv4_params p = dynamodb_params(dates[i % 4]);
        struct ob_sigv4_signed a = { 0 }, b = { 0 };
        struct ob_error err = { 0 };
        CHECK_INT(ob_sigv4_sign_cached(&cache, i < 4 ? 1 : 2, &req, creds, &p, &a, &err), OB_OK);
        CHECK_INT(ob_sigv4_sign(&req, creds, &p, &b, &err), OB_OK);
        bool same = strcmp(a.authorization.data, b.authorization.data) == 0;
        ob_sigv4_signed_free(&a);
        ob_sigv4_signed_free(&b);
        CHECK(same);
    }
    ob_sigv4_key_cache_destroy(&cache);
}

/* A refresh may bring the same access key id back with a new secret: a
 * key derived from the old secret must not sign for the new one. */
TEST(sigv4_cached_key_is_not_reused_for_a_new_secret_of_the_same_access_key_id)
{
    struct ob_sigv4_key_cache cache;
    ob_sigv4_key_cache_init(&cache);
    struct ob_sigv4_request req = post_request(host_only, 1, "{}");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_aws_credentials renewed = example_creds;
    renewed.secret_access_key = "a-new-secret-for-the-same-key-id";
    const struct ob_aws_credentials *in_turn[] = { &example_creds, &renewed };
    for (size_t i = 0; i < 2; i++) {
        struct ob_sigv4_signed a = { 0 }, b = { 0 };
        struct ob_error err = { 0 };
        CHECK_INT(ob_sigv4_sign_cached(&cache, 7 + i, &req, in_turn[i], &p, &a, &err), OB_OK);
        CHECK_INT(ob_sigv4_sign(&req, in_turn[i], &p, &b, &err), OB_OK);
        CHECK_STR(a.signature, b.signature);
        ob_sigv4_signed_free(&a);
        ob_sigv4_signed_free(&b);
    }
    ob_sigv4_key_cache_destroy(&cache);
}

/* A client signs every request into one result: each call must start it
 * afresh, whatever the previous request left in it. */
TEST(sigv4_a_reused_result_signs_each_request_as_a_fresh_one_does)
{
    static const struct ob_http_header many[] = {
        { "Host", "example.amazonaws.com" }, { "X-Amz-Target", "DynamoDB_20120810.UpdateItem" },
        { "Content-Type", "application/x-amz-json-1.0" }, { "My-Header", "  a   b  " },
    };
    struct ob_aws_credentials with_token = example_creds;
    with_token.session_token = "A-LONG-SESSION-TOKEN-THAT-MAKES-THE-VALUES-BUFFER-GROW-0123456789";
    struct {
        const struct ob_http_header *h;
        size_t n;
        const char *path, *query, *body;
        const struct ob_aws_credentials *creds;
        bool body_header;
    } cases[] = {
        { many, 4, "/", NULL, "{\"TableName\":\"outbox\"}", &with_token, true },
        { host_only, 1, "/a/./b/../c//d/", "b=2&a=1", "", &example_creds, false },
        { many, 4, "/", NULL, "{}", &example_creds, false },
        { host_only, 1, "/x.y/", "z", "payload", &with_token, false },
        { many, 2, "/", NULL, "", &example_creds, true },
    };
    struct ob_sigv4_signed reused = { 0 };
    for (size_t round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct ob_sigv4_request req = post_request(cases[i].h, cases[i].n, cases[i].body);
            req.path = cases[i].path;
            req.query = cases[i].query;
            struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
            p.sign_body_header = cases[i].body_header;
            struct ob_sigv4_signed fresh = { 0 };
            struct ob_error err = { 0 };
            CHECK_INT(ob_sigv4_sign(&req, cases[i].creds, &p, &reused, &err), OB_OK);
            CHECK_INT(ob_sigv4_sign(&req, cases[i].creds, &p, &fresh, &err), OB_OK);
            CHECK_STR(reused.canonical_request.data, fresh.canonical_request.data);
            CHECK_STR(reused.string_to_sign.data, fresh.string_to_sign.data);
            CHECK_STR(reused.authorization.data, fresh.authorization.data);
            CHECK_INT(reused.n_add, fresh.n_add);
            for (size_t a = 0; a < fresh.n_add; a++) {
                CHECK_STR(reused.add[a].name, fresh.add[a].name);
                CHECK_STR(reused.add[a].value, fresh.add[a].value);
            }
            ob_sigv4_signed_free(&fresh);
        }
    ob_sigv4_signed_free(&reused);
}

struct cache_worker {
    struct ob_sigv4_key_cache *cache;
    int id;
    int mismatches;
};

/* Threads alternate between two days so the one entry is replaced while
 * others read it. */
static void *cache_worker_run(void *arg)
{
    struct cache_worker *w = arg;
    struct ob_sigv4_request req = post_request(host_only, 1, "{}");
    for (int i = 0; i < 200; i++) {
        struct ob_sigv4_params p = dynamodb_params((i + w->id) % 2 ? "20150830T123600Z" : "20150831T000000Z");
        struct ob_sigv4_signed a = { 0 }, b = { 0 };
        if (ob_sigv4_sign_cached(w->cache, 1, &req, &example_creds, &p, &a, NULL) != OB_OK ||
            ob_sigv4_sign(&req, &example_creds, &p, &b, NULL) != OB_OK ||
            strcmp(a.signature, b.signature) != 0)
            w->mismatches++;
        ob_sigv4_signed_free(&a);
        ob_sigv4_signed_free(&b);
    }
    return NULL;
}

TEST(sigv4_key_cache_is_shared_safely_by_threads)
{
    struct ob_sigv4_key_cache cache;
    ob_sigv4_key_cache_init(&cache);
    struct cache_worker w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct cache_worker){ .cache = &cache, .id = i };
        pthread_create(&t[i], NULL, cache_worker_run, &w[i]);
    }
    int mismatches = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        mismatches += w[i].mismatches;
    }
    ob_sigv4_key_cache_destroy(&cache);
    CHECK_INT(mismatches, 0);
}

TEST(sigv4_adds_date_token_and_body_hash_headers_in_order)
{
    struct ob_aws_credentials creds = example_creds;
    creds.session_token = "TOKEN";
    struct ob_sigv4_request req = post_request(host_only, 1, "");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    p.sign_body_header = true;
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &creds, &p, &s, &err), OB_OK);
    CHECK_INT(s.n_add, 3);
    CHECK_STR(s.add[0].name, "X-Amz-Date");
    CHECK_STR(s.add[0].value, "20150830T123600Z");
    CHECK_STR(s.add[1].name, "X-Amz-Security-Token");
    CHECK_STR(s.add[1].value, "TOKEN");
    CHECK_STR(s.add[2].name, "x-amz-content-sha256");
    CHECK_STR(s.add[2].value, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(strstr(s.authorization.data,
                 "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_hashes_binary_body_with_nul_bytes)
{
    static const unsigned char body[] = { 0x00, 0x01, 0xff, 0x00 };
    struct ob_sigv4_request req = post_request(host_only, 1, NULL);
    req.body = body;
    req.body_len = sizeof body;
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_OK);
    const char *hash = strrchr(s.canonical_request.data, '\n') + 1;
    /* sha256sum of the four bytes 00 01 ff 00 */
    CHECK_STR(hash, "7d5c5de84c8ff4027cfb003aed237d4b27d0fe6edfb7e83e3e4bda87c5eec7d9");
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_does_not_sign_user_agent_expect_or_trace_id)
{
    const struct ob_http_header h[] = {
        { "Host", "example.com" },
        { "User-Agent", "outboxd/1" },
        { "Expect", "100-continue" },
        { "X-Amzn-Trace-Id", "Root=1" },
        { "X-Amz-Target", "DynamoDB_20120810.PutItem" },
    };
    struct ob_sigv4_request req = post_request(h, 5, "{}");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_OK);
    CHECK(strstr(s.authorization.data, "SignedHeaders=host;x-amz-date;x-amz-target,"));
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_rejects_request_without_host)
{
    const struct ob_http_header h[] = { { "Content-Type", "application/x-amz-json-1.0" } };
    struct ob_sigv4_request req = post_request(h, 1, "{}");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_ERR_INVALID);
    CHECK(strstr(err.msg, "Host"));
    CHECK(!strstr(err.msg, example_creds.secret_access_key));
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_rejects_header_the_signer_adds)
{
    const struct ob_http_header h[] = { { "Host", "example.com" }, { "x-amz-date", "20150830T123600Z" } };
    struct ob_sigv4_request req = post_request(h, 2, "");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_ERR_INVALID);
    CHECK(strstr(err.msg, "x-amz-date"));
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_rejects_malformed_date)
{
    struct ob_sigv4_request req = post_request(host_only, 1, "");
    struct ob_sigv4_params p = dynamodb_params("2015-08-30T12:36:00Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_ERR_INVALID);
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_query_with_lowercase_hex_and_bare_reserved_chars_canonicalizes_like_strict)
{
    struct ob_sigv4_request req = post_request(host_only, 1, "");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed a = { 0 }, b = { 0 };
    struct ob_error err = { 0 };
    req.query = "b=%e1%88%b4&a=x y!&a=&c";
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &a, &err), OB_OK);
    req.query = "c=&a=&a=x%20y%21&b=%E1%88%B4";
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &b, &err), OB_OK);
    CHECK(strstr(a.canonical_request.data, "\na=&a=x%20y%21&b=%E1%88%B4&c=\n"));
    CHECK_STR(a.canonical_request.data, b.canonical_request.data);
    ob_sigv4_signed_free(&a);
    ob_sigv4_signed_free(&b);
}

TEST(sigv4_path_is_normalized_then_encoded_once_more)
{
    struct ob_sigv4_request req = post_request(host_only, 1, "");
    struct ob_sigv4_params p = dynamodb_params("20150830T123600Z");
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    req.path = "//a%20b/./c d/../$e/";
    CHECK_INT(ob_sigv4_sign(&req, &example_creds, &p, &s, &err), OB_OK);
    CHECK(strncmp(s.canonical_request.data, "POST\n/a%2520b/%24e/\n", 20) == 0);
    ob_sigv4_signed_free(&s);
}

static const struct ob_http_header example_host[] = { { "Host", "example.amazonaws.com" } };

static struct ob_sigv4_request presign_request(const char *query)
{
    return (struct ob_sigv4_request){
        .method = "GET",
        .path = "/",
        .query = query,
        .headers = example_host,
        .n_headers = 1,
    };
}

static struct ob_sigv4_params example_params(void)
{
    return (struct ob_sigv4_params){
        .region = "us-east-1",
        .service = "service",
        .amz_date = "20150830T123600Z",
        .normalize_path = true,
    };
}

/* The v4 suite's get-vanilla-with-session-token, in the order botocore
 * writes a presigned URL (the suite's differs), the request's own query
 * first as SigV4QueryAuth puts "operation params" first. */
TEST(sigv4_presigned_query_is_the_requests_then_authentication_in_botocores_order)
{
    struct ob_aws_credentials creds = example_creds;
    creds.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    struct ob_sigv4_request req = presign_request("Action=a%3Ab");
    struct ob_sigv4_params p = example_params();
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_presign(&req, &creds, &p, 3600, &s, &err), OB_OK);
    struct ob_buf want = { 0 };
    ob_buf_cat(&want,
               "Action=a%3Ab&X-Amz-Algorithm=AWS4-HMAC-SHA256"
               "&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request"
               "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
               "&X-Amz-Security-Token=6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
               "&X-Amz-Signature=",
               s.signature, NULL);
    CHECK_STR(s.query.data, want.data);
    ob_buf_free(&want);
    CHECK_INT(s.n_add, 0);
    CHECK_STR(ob_buf_cstr(&s.authorization), "");
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_presign_rejects_a_query_that_already_has_an_authentication_parameter)
{
    const char *queries[] = { "X-Amz-Signature=00", "a=1&X-Amz-Date=20150830T123600Z", "X-Amz-Security-Token" };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        struct ob_sigv4_request req = presign_request(queries[i]);
        struct ob_sigv4_params p = example_params();
        struct ob_sigv4_signed s = { 0 };
        struct ob_error err = { 0 };
        CHECK_INT(ob_sigv4_presign(&req, &example_creds, &p, 60, &s, &err), OB_ERR_INVALID);
        CHECK(strstr(err.msg, "X-Amz-"));
        ob_sigv4_signed_free(&s);
    }
    /* Names are case-sensitive in a query: this one is the request's own. */
    struct ob_sigv4_request req = presign_request("x-amz-date=1&X-Amz-Dates=2");
    struct ob_sigv4_params p = example_params();
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_presign(&req, &example_creds, &p, 60, &s, &err), OB_OK);
    ob_sigv4_signed_free(&s);
}

TEST(sigv4_presigned_url_lasts_one_second_to_seven_days)
{
    const struct {
        unsigned seconds;
        enum ob_err rc;
    } cases[] = { { 0, OB_ERR_INVALID }, { 1, OB_OK }, { 604800, OB_OK }, { 604801, OB_ERR_INVALID } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_sigv4_request req = presign_request(NULL);
        struct ob_sigv4_params p = example_params();
        struct ob_sigv4_signed s = { 0 };
        struct ob_error err = { 0 };
        CHECK_INT(ob_sigv4_presign(&req, &example_creds, &p, cases[i].seconds, &s, &err), cases[i].rc);
        ob_sigv4_signed_free(&s);
    }
}

/* A client may sign and presign with one result: the query, the added
 * headers and the Authorization of one call must not leak into the next. */
TEST(sigv4_a_result_reused_between_presigning_and_header_signing_keeps_nothing_of_the_other)
{
    struct ob_aws_credentials creds = example_creds;
    creds.session_token = "SESSION-TOKEN";
    struct ob_sigv4_request req = presign_request(NULL);
    struct ob_sigv4_params p = example_params();
    struct ob_sigv4_signed s = { 0 };
    struct ob_error err = { 0 };
    CHECK_INT(ob_sigv4_presign(&req, &creds, &p, 60, &s, &err), OB_OK);
    CHECK(strstr(s.query.data, "X-Amz-Security-Token=SESSION-TOKEN"));
    CHECK_INT(ob_sigv4_sign(&req, &creds, &p, &s, &err), OB_OK);
    CHECK_STR(ob_buf_cstr(&s.query), "");
    CHECK_INT(s.n_add, 2);
    CHECK(strstr(s.canonical_request.data, "\n\nhost;x-amz-date;x-amz-security-token\n"));
    CHECK_INT(ob_sigv4_presign(&req, &creds, &p, 60, &s, &err), OB_OK);
    CHECK_INT(s.n_add, 0);
    CHECK_STR(ob_buf_cstr(&s.authorization), "");
    CHECK(strstr(s.canonical_request.data, "\n\nhost\n"));
    ob_sigv4_signed_free(&s);
}
