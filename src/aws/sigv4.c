#include "aws/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* SHA-256 through OpenSSL's low-level calls, which OpenSSL 3 deprecates in
 * favour of EVP: an EVP digest init allocates its provider context (four
 * per signed request) and each call dispatches through the provider. These
 * run the same assembly (SHA-NI where the CPU has it) on a context on the
 * stack, and cannot fail. An OpenSSL built without its deprecated API
 * gets the EVP path (and so does a FIPS build that wants every digest to
 * go through its provider). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>

#include "core/codec.h"

#define SHA256_LEN 32
#define SHA256_HEX_LEN 65

static const char *const unsigned_headers[] = { "authorization", "expect", "user-agent", "x-amzn-trace-id" };

/* ASCII only, whatever the locale: <ctype.h> would let a locale call
 * some bytes above 127 letters. */
static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986 encoding of everything but the unreserved set, uppercase hex,
 * as SigV4 wants for query keys, values and path segments. */
static void uri_encode(struct ob_buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            ob_buf_putc(out, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            ob_buf_append(out, esc, sizeof esc);
        }
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX so that a query written with lowercase hex or with reserved
 * characters left bare canonicalizes like its strictly encoded twin. A '%'
 * not followed by two hex digits is kept as a literal '%'. '+' stays '+':
 * SigV4 does not read it as a space. */
static void percent_decode(struct ob_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            ob_buf_putc(out, (char)(hi << 4 | lo));
            i += 2;
        } else {
            ob_buf_putc(out, s[i]);
        }
    }
}

/* Dot-segment removal as botocore does it (utils.remove_dot_segments):
 * RFC 3986 5.2.4 plus dropping empty segments, which AWS also wants. It
 * differs from the RFC for a trailing "." or "..": "/a/b/.." gives "/a",
 * not "/a/". The AWS suites have no such case; outboxd follows botocore,
 * which tests/integration/test_sigv4_botocore.py checks it against. */
static void remove_dot_segments(struct ob_buf *out, const char *path)
{
    size_t n = strlen(path);
    /* Where each kept segment starts in segs, to cut back to on "..". */
    size_t *starts = ob_xmalloc((n / 2 + 1) * sizeof *starts);
    size_t depth = 0;
    struct ob_buf segs = { 0 };

    for (const char *p = path; *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        bool dot = len == 1 && p[0] == '.';
        bool dotdot = len == 2 && p[0] == '.' && p[1] == '.';
        if (dotdot && depth > 0) {
            segs.len = starts[--depth];
        } else if (len > 0 && !dot && !dotdot) {
            starts[depth++] = segs.len;
            if (segs.len)
                ob_buf_putc(&segs, '/');
            ob_buf_append(&segs, p, len);
        }
        p += len;
        if (*p == '/')
            p++;
    }

    if (path[0] == '/')
        ob_buf_putc(out, '/');
    /* segs.len may have been cut back by "..": append only what is kept. */
    ob_buf_append(out, segs.data ? segs.data : "", segs.len);
    if (n > 0 && path[n - 1] == '/' && depth > 0)
        ob_buf_putc(out, '/');
    ob_buf_free(&segs);
    free(starts);
}

/* norm: scratch for the normalized path. */
static void canonical_path(struct ob_buf *out, const char *path, bool normalize, struct ob_buf *norm)
{
    if (!*path) {
        ob_buf_putc(out, '/');
        return;
    }
    /* Without dots or empty segments there is nothing to remove ("/"). */
    if (!normalize || (!strchr(path, '.') && !strstr(path, "//"))) {
        uri_encode(out, path, strlen(path), true);
        return;
    }
    ob_buf_reset(norm);
    remove_dot_segments(norm, path);
    uri_encode(out, norm->data, norm->len, true);
}

struct query_param {
    char *key; /* encoded */
    char *value;
};

static int query_param_cmp(const void *a, const void *b)
{
    const struct query_param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* Encodes one raw key or value canonically, returning a malloc'ed string. */
static char *canonical_component(const char *s, size_t len)
{
    struct ob_buf raw = { 0 }, enc = { 0 };
    percent_decode(&raw, s, len);
    uri_encode(&enc, ob_buf_cstr(&raw), raw.len, false);
    ob_buf_free(&raw);
    if (!enc.data)
        return ob_xstrdup("");
    return ob_buf_steal(&enc);
}

/* Sorted by encoded key, then by encoded value for repeated keys; a key
 * without '=' has an empty value; empty pairs ("a=1&&b=2") are skipped. */
static void canonical_query(struct ob_buf *out, const char *query)
{
    if (!query || !*query)
        return;
    size_t cap = 1;
    for (const char *p = query; *p; p++)
        cap += *p == '&';
    struct query_param *params = ob_xcalloc(cap, sizeof *params);
    size_t n = 0;

    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            params[n].key = canonical_component(p, klen);
            params[n].value = eq ? canonical_component(eq + 1, len - klen - 1) : ob_xstrdup("");
            n++;
        }
        p += len;
        if (*p == '&')
            p++;
    }

    qsort(params, n, sizeof *params, query_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            ob_buf_putc(out, '&');
        ob_buf_printf(out, "%s=%s", params[i].key, params[i].value);
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

struct canon_header {
    const char *name; /* lowercased, trimmed; in the sign call's names buffer */
    size_t name_off;
    const char *value;
    size_t order; /* keeps repeated headers in request order through the sort */
};

static int canon_header_cmp(const struct canon_header *x, const struct canon_header *y)
{
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* A request signs a handful of headers: insertion sort beats qsort's
 * merge sort and its callbacks there. */
static void sort_headers(struct canon_header *h, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct canon_header x = h[i];
        size_t j = i;
        for (; j > 0 && canon_header_cmp(&h[j - 1], &x) > 0; j--)
            h[j] = h[j - 1];
        h[j] = x;
    }
}

/* hdrs sorted: "name;name", a repeated name once. */
static void put_signed_names(struct ob_buf *out, const struct canon_header *hdrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0)
            continue;
        if (i > 0)
            ob_buf_putc(out, ';');
        ob_buf_puts(out, hdrs[i].name);
    }
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Trims both ends and collapses each inner run of whitespace, folded
 * continuation lines included, into one space. */
static void put_trimmed(struct ob_buf *out, const char *v)
{
    for (bool any = false;;) {
        size_t gap = 0, run = 0;
        while (is_space(v[gap]))
            gap++;
        v += gap;
        while (v[run] && !is_space(v[run]))
            run++;
        if (!run)
            return;
        if (any && gap)
            ob_buf_putc(out, ' ');
        ob_buf_append(out, v, run);
        any = true;
        v += run;
    }
}

/* Appends name lowercased and trimmed, with its NUL, to names (one buffer
 * for all of a request's names); returns where it starts. */
static size_t lowercase_name(struct ob_buf *names, const char *name)
{
    while (is_space(*name))
        name++;
    size_t len = strlen(name);
    while (len > 0 && is_space(name[len - 1]))
        len--;
    size_t off = names->len;
    ob_buf_append(names, name, len);
    ob_buf_putc(names, '\0');
    for (char *p = names->data + off; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return off;
}

/* hdrs sorted: "name:value\n" each, a repeated name's values joined by
 * commas. */
static void put_canonical_headers(struct ob_buf *cr, const struct canon_header *hdrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(hdrs[i].name, hdrs[i - 1].name) == 0) {
            ob_buf_putc(cr, ',');
        } else {
            if (i > 0)
                ob_buf_putc(cr, '\n');
            ob_buf_cat(cr, hdrs[i].name, ":", NULL);
        }
        put_trimmed(cr, hdrs[i].value);
    }
    ob_buf_putc(cr, '\n');
}

static bool is_unsigned_header(const char *lname)
{
    for (size_t i = 0; i < sizeof unsigned_headers / sizeof unsigned_headers[0]; i++)
        if (strcmp(lname, unsigned_headers[i]) == 0)
            return true;
    return false;
}

#ifdef OPENSSL_NO_DEPRECATED_3_0
/* A digest that fails (no provider offers SHA-256) leaves zeros: the
 * signature is then refused by AWS, which names the failure. */
static void sha256(const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    if (!EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL))
        memset(md, 0, SHA256_LEN);
}

/* HMAC (RFC 2104) by OpenSSL; the key is kept as HMAC pads it (hashed
 * when longer than a block), which gives the same MAC. */
struct hmac_key {
    unsigned char k[64];
};

static void hmac_key_init(struct hmac_key *hk, const void *key, size_t key_len)
{
    memset(hk->k, 0, sizeof hk->k);
    if (key_len > sizeof hk->k)
        sha256(key, key_len, hk->k);
    else
        memcpy(hk->k, key, key_len);
}

static void hmac_key_sign(const struct hmac_key *hk, const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    if (!HMAC(EVP_sha256(), hk->k, sizeof hk->k, data, len, md, NULL))
        memset(md, 0, SHA256_LEN);
}
#else
/* Not the one-shot SHA256(): OpenSSL 3 made it an EVP_Q_digest, which
 * fetches the algorithm on every call. */
static void sha256(const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(md, &c);
}

/* HMAC (RFC 2104): H(K^opad || H(K^ipad || m)). A key's two padded blocks
 * are hashed once into a keyed state; each message then costs the hash of
 * the message and of one digest. */
struct hmac_key {
    SHA256_CTX inner, outer;
};

static void hmac_key_init(struct hmac_key *hk, const void *key, size_t key_len)
{
    enum { BLOCK = 64 };
    unsigned char k[BLOCK] = { 0 }, pad[BLOCK];
    if (key_len > BLOCK)
        sha256(key, key_len, k);
    else
        memcpy(k, key, key_len);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    SHA256_Init(&hk->inner);
    SHA256_Update(&hk->inner, pad, BLOCK);
    for (size_t i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&hk->outer);
    SHA256_Update(&hk->outer, pad, BLOCK);
    explicit_bzero(k, sizeof k);
    explicit_bzero(pad, sizeof pad);
}

static void hmac_key_sign(const struct hmac_key *hk, const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    unsigned char inner[SHA256_LEN];
    SHA256_CTX c = hk->inner;
    SHA256_Update(&c, data, len);
    SHA256_Final(inner, &c);
    c = hk->outer;
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(md, &c);
    explicit_bzero(inner, sizeof inner);
    explicit_bzero(&c, sizeof c);
}
#endif

_Static_assert(sizeof(struct hmac_key) <= sizeof(((struct ob_sigv4_key_cache *)0)->keyed),
               "the key cache holds a keyed HMAC state");

static void hmac_sha256(const void *key, size_t key_len, const void *data, size_t len, unsigned char md[SHA256_LEN])
{
    struct hmac_key hk;
    hmac_key_init(&hk, key, key_len);
    hmac_key_sign(&hk, data, len, md);
    explicit_bzero(&hk, sizeof hk);
}

static void derive_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                               unsigned char key[SHA256_LEN])
{
    struct ob_buf k = { 0 };
    unsigned char a[SHA256_LEN], b[SHA256_LEN];
    ob_buf_printf(&k, "AWS4%s", secret);
    hmac_sha256(k.data, k.len, date8, strlen(date8), a);
    hmac_sha256(a, sizeof a, region, strlen(region), b);
    hmac_sha256(b, sizeof b, service, strlen(service), a);
    hmac_sha256(a, sizeof a, "aws4_request", 12, key);
    explicit_bzero(k.data, k.len);
    explicit_bzero(a, sizeof a);
    explicit_bzero(b, sizeof b);
    ob_buf_free(&k);
}

static bool valid_amz_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

/* The value goes into add_values at *off; the pointers are set once the
 * buffer has stopped growing. */
static void add_header(struct ob_sigv4_signed *out, size_t *off, const char *name, const char *value)
{
    out->add[out->n_add].name = name;
    off[out->n_add++] = out->add_values.len;
    ob_buf_append(&out->add_values, value, strlen(value) + 1);
}

/* Starts a (maybe reused) result afresh, keeping its buffers. */
static void signed_reset(struct ob_sigv4_signed *s)
{
    ob_buf_reset(&s->canonical_request);
    ob_buf_reset(&s->string_to_sign);
    ob_buf_reset(&s->authorization);
    ob_buf_reset(&s->query);
    ob_buf_reset(&s->add_values);
    ob_buf_reset(&s->names);
    ob_buf_reset(&s->signed_names);
    ob_buf_reset(&s->scope);
    s->signature[0] = '\0';
    s->n_add = 0;
}

static enum ob_err check_inputs(const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                                const struct ob_sigv4_params *params, struct ob_error *err)
{
    if (!req->method || !*req->method || !req->path)
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: request has no method or path");
    if (req->n_headers && !req->headers)
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: request headers missing");
    if (req->body_len && !req->body)
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: request body missing");
    if (!creds || !creds->access_key_id || !*creds->access_key_id || !creds->secret_access_key ||
        !*creds->secret_access_key)
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: credentials have no access key id or secret");
    if (!params->region || !*params->region || !params->service || !*params->service)
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: region and service are required");
    if (!valid_amz_date(params->amz_date))
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: date \"%s\" is not YYYYMMDDTHHMMSSZ",
                            params->amz_date ? params->amz_date : "(null)");
    return OB_OK;
}

/* Collects the signed headers: the request's own (but the never-signed
 * ones) and those the signer adds. */
static enum ob_err collect_headers(const struct ob_sigv4_request *req, bool sign_token,
                                   const struct ob_sigv4_signed *out, struct canon_header *hdrs,
                                   size_t *n_hdrs, struct ob_buf *names, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    bool has_host = false;
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct ob_http_header *h = &req->headers[i];
        if (!h->name || !h->value) {
            rc = ob_error_set(err, OB_ERR_INVALID, "sigv4: header %zu has no name or value", i);
            goto out;
        }
        size_t off = lowercase_name(names, h->name);
        const char *lname = names->data + off;
        if (!*lname || is_unsigned_header(lname))
            continue;
        bool added_by_signer = false;
        for (size_t a = 0; a < out->n_add; a++)
            added_by_signer |= strcasecmp(lname, out->add[a].name) == 0;
        if (added_by_signer) {
            rc = ob_error_set(err, OB_ERR_INVALID, "sigv4: the request already has %s, which the signer adds",
                              h->name);
            goto out;
        }
        has_host |= strcmp(lname, "host") == 0;
        hdrs[n].name_off = off;
        hdrs[n].value = h->value;
        hdrs[n].order = n;
        n++;
    }
    if (!has_host) {
        rc = ob_error_set(err, OB_ERR_INVALID, "sigv4: the request has no Host header");
        goto out;
    }
    for (size_t i = 0; i < out->n_add; i++) {
        if (!sign_token && strcmp(out->add[i].name, "X-Amz-Security-Token") == 0)
            continue;
        hdrs[n].name_off = lowercase_name(names, out->add[i].name);
        hdrs[n].value = out->add[i].value;
        hdrs[n].order = n;
        n++;
    }
out:
    /* The buffer has stopped growing: names can point into it now. */
    for (size_t i = 0; i < n; i++)
        hdrs[i].name = names->data + hdrs[i].name_off;
    *n_hdrs = n;
    return rc;
}

/* The signing key as a keyed HMAC state into *hk, from cache when it
 * holds the key of this scope (cache may be NULL), else derived (and
 * cached). */
static void signing_key(struct ob_sigv4_key_cache *cache, uint64_t credentials_id,
                        const struct ob_aws_credentials *creds, const char *date8,
                        const struct ob_sigv4_params *params, struct hmac_key *hk)
{
    unsigned char key[SHA256_LEN];
    char cache_scope[sizeof cache->scope];
    bool cacheable = cache && ob_str_join(cache_scope, sizeof cache_scope, date8, "/", params->region, "/",
                                          params->service, NULL);
    if (cacheable) {
        bool hit = false;
        pthread_mutex_lock(&cache->mu);
        if (cache->valid && cache->credentials_id == credentials_id && strcmp(cache->scope, cache_scope) == 0) {
            memcpy(hk, cache->keyed, sizeof *hk);
            hit = true;
        }
        pthread_mutex_unlock(&cache->mu);
        if (hit)
            return;
    }
    derive_signing_key(creds->secret_access_key, date8, params->region, params->service, key);
    hmac_key_init(hk, key, sizeof key);
    explicit_bzero(key, sizeof key);
    if (cacheable) {
        pthread_mutex_lock(&cache->mu);
        cache->credentials_id = credentials_id;
        memcpy(cache->scope, cache_scope, sizeof cache_scope);
        memcpy(cache->keyed, hk, sizeof *hk);
        cache->valid = true;
        pthread_mutex_unlock(&cache->mu);
    }
}

/* The parameters the presigner adds to a query (put_presign_query and
 * the signature). */
static const char *const presign_param_names[] = {
    "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
    "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
};

/* The first parameter of query that the presigner adds itself, or NULL. */
static const char *presign_param_in(const char *query)
{
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&"), klen = strcspn(p, "=&");
        for (size_t i = 0; i < sizeof presign_param_names / sizeof presign_param_names[0]; i++)
            if (klen == strlen(presign_param_names[i]) && strncmp(p, presign_param_names[i], klen) == 0)
                return presign_param_names[i];
        p += len;
        if (*p == '&')
            p++;
    }
    return NULL;
}

static void put_query_param(struct ob_buf *q, const char *name, const char *value)
{
    if (q->len)
        ob_buf_putc(q, '&');
    ob_buf_cat(q, name, "=", NULL);
    uri_encode(q, value, strlen(value), false);
}

/* out->query before signing: the request's query and the authentication
 * parameters the signature covers. */
static void put_presign_query(struct ob_sigv4_signed *out, const struct ob_sigv4_request *req,
                              const struct ob_aws_credentials *creds, const struct ob_sigv4_params *params,
                              unsigned expires, bool sign_token)
{
    struct ob_buf *q = &out->query;
    char expires_str[16];
    snprintf(expires_str, sizeof expires_str, "%u", expires);
    if (req->query)
        ob_buf_puts(q, req->query);
    put_query_param(q, "X-Amz-Algorithm", "AWS4-HMAC-SHA256");
    put_query_param(q, "X-Amz-Credential", creds->access_key_id); /* "AKID/scope" */
    ob_buf_puts(q, "%2F");
    uri_encode(q, out->scope.data, out->scope.len, false);
    put_query_param(q, "X-Amz-Date", params->amz_date);
    put_query_param(q, "X-Amz-Expires", expires_str);
    put_query_param(q, "X-Amz-SignedHeaders", out->signed_names.data);
    if (sign_token)
        put_query_param(q, "X-Amz-Security-Token", creds->session_token);
}

/* expires: 0 signs with an Authorization header, else presigns for that
 * many seconds. */
static enum ob_err sign(struct ob_sigv4_key_cache *cache, uint64_t credentials_id, const struct ob_sigv4_request *req,
                        const struct ob_aws_credentials *creds, const struct ob_sigv4_params *params,
                        unsigned expires, struct ob_sigv4_signed *out, struct ob_error *err)
{
    enum ob_err rc;
    size_t n_hdrs = 0;
    bool presign = expires > 0;
    unsigned char md[SHA256_LEN];
    char payload_hex[SHA256_HEX_LEN], creq_hex[SHA256_HEX_LEN];
    char date8[9];

    signed_reset(out);
    rc = check_inputs(req, creds, params, err);
    if (rc)
        goto out;
    const char *taken = presign ? presign_param_in(req->query) : NULL;
    if (taken) {
        rc = ob_error_set(err, OB_ERR_INVALID, "sigv4: the query already has %s, which the presigner adds", taken);
        goto out;
    }
    memcpy(date8, params->amz_date, 8);
    date8[8] = '\0';
    bool has_token = creds->session_token && *creds->session_token;
    bool sign_token = has_token && !params->omit_session_token;

    sha256(req->body_len ? req->body : "", req->body_len, md);
    ob_hex_encode(md, sizeof md, payload_hex);

    if (!presign) {
        size_t value_off[OB_SIGV4_MAX_ADD];
        add_header(out, value_off, "X-Amz-Date", params->amz_date);
        if (has_token)
            add_header(out, value_off, "X-Amz-Security-Token", creds->session_token);
        if (params->sign_body_header)
            add_header(out, value_off, "x-amz-content-sha256", payload_hex);
        for (size_t i = 0; i < out->n_add; i++)
            out->add[i].value = out->add_values.data + value_off[i];
    }

    if (out->hdrs_cap < req->n_headers + OB_SIGV4_MAX_ADD) {
        out->hdrs_cap = req->n_headers + OB_SIGV4_MAX_ADD;
        free(out->hdrs);
        out->hdrs = ob_xcalloc(out->hdrs_cap, sizeof(struct canon_header));
    }
    struct canon_header *hdrs = out->hdrs;
    rc = collect_headers(req, sign_token, out, hdrs, &n_hdrs, &out->names, err);
    if (rc)
        goto out;
    sort_headers(hdrs, n_hdrs);

    struct ob_buf *cr = &out->canonical_request;
    /* Sized for a typical request at once: signing runs per request. */
    ob_buf_reserve(cr, 512);
    ob_buf_reserve(&out->string_to_sign, 256);
    ob_buf_reserve(&out->authorization, 256);
    ob_buf_reserve(&out->signed_names, 128);
    ob_buf_reserve(&out->scope, 64);
    put_signed_names(&out->signed_names, hdrs, n_hdrs);
    ob_buf_cat(&out->scope, date8, "/", params->region, "/", params->service, "/aws4_request", NULL);
    if (presign)
        put_presign_query(out, req, creds, params, expires, sign_token);

    ob_buf_cat(cr, req->method, "\n", NULL);
    canonical_path(cr, req->path, params->normalize_path, &out->path);
    ob_buf_putc(cr, '\n');
    canonical_query(cr, presign ? out->query.data : req->query);
    ob_buf_putc(cr, '\n');
    put_canonical_headers(cr, hdrs, n_hdrs);
    ob_buf_cat(cr, "\n", out->signed_names.data, "\n", payload_hex, NULL);

    sha256(cr->data, cr->len, md);
    ob_hex_encode(md, sizeof md, creq_hex);
    ob_buf_cat(&out->string_to_sign, "AWS4-HMAC-SHA256\n", params->amz_date, "\n", out->scope.data, "\n",
               creq_hex, NULL);

    struct hmac_key hk;
    signing_key(cache, credentials_id, creds, date8, params, &hk);
    hmac_key_sign(&hk, out->string_to_sign.data, out->string_to_sign.len, md);
    explicit_bzero(&hk, sizeof hk);
    ob_hex_encode(md, sizeof md, out->signature);
    if (presign) {
        if (has_token && !sign_token)
            put_query_param(&out->query, "X-Amz-Security-Token", creds->session_token);
        put_query_param(&out->query, "X-Amz-Signature", out->signature);
    } else {
        ob_buf_cat(&out->authorization, "AWS4-HMAC-SHA256 Credential=", creds->access_key_id, "/",
                   out->scope.data, ", SignedHeaders=", out->signed_names.data, ", Signature=", out->signature,
                   NULL);
    }
out:
    return rc;
}

enum ob_err ob_sigv4_sign(const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                          const struct ob_sigv4_params *params, struct ob_sigv4_signed *out,
                          struct ob_error *err)
{
    return sign(NULL, 0, req, creds, params, 0, out, err);
}

enum ob_err ob_sigv4_sign_cached(struct ob_sigv4_key_cache *cache, uint64_t credentials_id,
                                 const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                                 const struct ob_sigv4_params *params, struct ob_sigv4_signed *out,
                                 struct ob_error *err)
{
    return sign(cache, credentials_id, req, creds, params, 0, out, err);
}

enum ob_err ob_sigv4_presign(const struct ob_sigv4_request *req, const struct ob_aws_credentials *creds,
                             const struct ob_sigv4_params *params, unsigned expires_seconds,
                             struct ob_sigv4_signed *out, struct ob_error *err)
{
    if (expires_seconds < 1 || expires_seconds > OB_SIGV4_PRESIGN_MAX_SECONDS) {
        signed_reset(out);
        return ob_error_set(err, OB_ERR_INVALID, "sigv4: a presigned URL lasts 1 to %d seconds, not %u",
                            OB_SIGV4_PRESIGN_MAX_SECONDS, expires_seconds);
    }
    return sign(NULL, 0, req, creds, params, expires_seconds, out, err);
}

/* For a buffer that may have held the session token, whatever its length
 * now. */
static void wipe_free(struct ob_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    ob_buf_free(b);
}

void ob_sigv4_signed_free(struct ob_sigv4_signed *s)
{
    ob_buf_free(&s->canonical_request);
    ob_buf_free(&s->string_to_sign);
    ob_buf_free(&s->authorization);
    wipe_free(&s->query);
    wipe_free(&s->add_values);
    ob_buf_free(&s->names);
    ob_buf_free(&s->signed_names);
    ob_buf_free(&s->scope);
    ob_buf_free(&s->path);
    free(s->hdrs);
    memset(s, 0, sizeof *s);
}

void ob_sigv4_uri_encode(struct ob_buf *out, const char *s, size_t len)
{
    uri_encode(out, s, len, false);
}

void ob_sigv4_key_cache_init(struct ob_sigv4_key_cache *cache)
{
    memset(cache, 0, sizeof *cache);
    pthread_mutex_init(&cache->mu, NULL);
}

void ob_sigv4_key_cache_destroy(struct ob_sigv4_key_cache *cache)
{
    pthread_mutex_destroy(&cache->mu);
    explicit_bzero(cache->keyed, sizeof cache->keyed);
    cache->valid = false;
}

void ob_sigv4_amz_date(time_t t, char out[17])
{
    struct ob_utc u;
    ob_utc_from_epoch((int64_t)t, &u);
    char *w = ob_put_digits(out, u.year, 4);
    w = ob_put_digits(w, u.mon, 2);
    w = ob_put_digits(w, u.day, 2);
    *w++ = 'T';
    w = ob_put_digits(w, u.hour, 2);
    w = ob_put_digits(w, u.min, 2);
    w = ob_put_digits(w, u.sec, 2);
    *w++ = 'Z';
    *w = '\0';
}
