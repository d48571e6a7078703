/* http sink: POSTs each message (webhooks), CloudEvents HTTP binding in
 * binary or structured mode, optionally signed the Standard Webhooks way.
 * The message's own headers travel as HTTP headers in both modes (SPEC §4),
 * except names that would change framing, routing or authentication.
 * A batch goes out concurrently on one curl multi handle; multi handles
 * (with their kept-alive connections) are pooled per sink because publish
 * runs on several threads at once. */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aws/multi.h"
#include "core/codec.h"
#include "sinks/common.h"
#include "sinks/sink.h"

#define HMAC_SHA256_LEN 32

/* One multi handle of the pool, with easy handles kept for reuse. */
struct http_conn {
    struct ob_multi *multi;
    CURL **easy;
    size_t n_easy;
    struct http_conn *next;
};

struct http_sink {
    char *url;                 /* the configured url, as curl normalised it */
    char *shown_url;           /* url without userinfo, query or fragment: safe in errors */
    CURLU *base;               /* url parsed, read-only after create: destinations resolve against it */
    bool structured;
    char **extra;              /* "Name: value" lines of the `headers` option */
    size_t n_extra;
    char *bearer_header;       /* "Authorization: Bearer ..." or NULL */
    char *basic_user, *basic_password;
    unsigned char *secret;     /* webhook_secret decoded, NULL when unset */
    size_t secret_len;
    bool idempotency_key;
    long timeout_ms, connect_timeout_ms;
    bool tls_verify;
    char *ca_file;
    pthread_mutex_t mu;        /* guards idle */
    struct http_conn *idle;
};

/* One request of a batch in flight; everything curl reads until it is done. */
struct http_req {
    struct ob_delivery *d;
    CURL *easy;
    struct curl_slist *headers;
    struct ob_buf body;        /* structured mode; binary mode sends the payload in place */
    char *url, *shown;         /* curl_free; NULL when the sink's own url is used */
    bool active;               /* added to the multi handle, not finished */
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_global(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* RFC 9110 token characters. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* RFC 9110 field value: no control characters but tab (CR/LF would
 * inject headers). */
static bool value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* Message headers that would change how the request is framed, routed or
 * authenticated, or clash with what this sink sets itself. */
static bool header_reserved(const char *name)
{
    static const char *const names[] = {"content-type", "content-length", "transfer-encoding", "host",
                                        "connection", "keep-alive", "expect", "te", "trailer", "upgrade",
                                        "authorization", "idempotency-key", NULL};
    static const char *const prefixes[] = {"ce-", "webhook-", "proxy-", NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    for (size_t i = 0; prefixes[i]; i++)
        if (strncasecmp(name, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* "Name: value" for a curl header list; curl drops "Name:" (an empty
 * value), "Name;" sends one. The caller frees it. */
static char *header_line(const char *name, const char *value)
{
    struct ob_buf line = {0};
    if (*value)
        ob_buf_cat(&line, name, ": ", value, NULL);
    else
        ob_buf_cat(&line, name, ";", NULL);
    return ob_buf_steal(&line);
}

static void append_line(struct curl_slist **hl, const char *line)
{
    struct curl_slist *n = curl_slist_append(*hl, line);
    if (!n)
        abort();   /* out of memory, as the ob_x* allocators do */
    *hl = n;
}

static void add_header(struct curl_slist **hl, const char *name, const char *value)
{
    char *line = header_line(name, value);
    append_line(hl, line);
    free(line);
}

/* CloudEvents HTTP binding 1.0.2 §3.1.3.2: header values percent-encode
 * space, '"', '%' and every byte outside printable ASCII. */
static void add_ce_header(const char *name, const char *value, void *ctx)
{
    struct curl_slist **hl = ctx;
    struct ob_buf n = {0}, v = {0};
    static const char hex[] = "0123456789ABCDEF";
    ob_buf_cat(&n, "ce-", name, NULL);
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '%') {
            char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            ob_buf_append(&v, esc, sizeof esc);
        } else {
            ob_buf_putc(&v, (char)*p);
        }
    }
    add_header(hl, n.data, ob_buf_cstr(&v));
    ob_buf_free(&n);
    ob_buf_free(&v);
}

/* The URL of u and the same without userinfo, query and fragment; both
 * curl_free'd by the caller. */
static CURLUcode url_strings(CURLU *u, char **url, char **shown)
{
    *url = *shown = NULL;
    CURLUcode uc = curl_url_get(u, CURLUPART_URL, url, 0);
    if (uc)
        return uc;
    CURLU *tmp = curl_url_dup(u);
    if (!tmp)
        return CURLUE_OUT_OF_MEMORY;
    curl_url_set(tmp, CURLUPART_USER, NULL, 0);
    curl_url_set(tmp, CURLUPART_PASSWORD, NULL, 0);
    curl_url_set(tmp, CURLUPART_OPTIONS, NULL, 0);
    curl_url_set(tmp, CURLUPART_QUERY, NULL, 0);
    curl_url_set(tmp, CURLUPART_FRAGMENT, NULL, 0);
    uc = curl_url_get(tmp, CURLUPART_URL, shown, 0);
    curl_url_cleanup(tmp);
    if (uc) {
        curl_free(*url);
        *url = NULL;
    }
    return uc;
}

static bool scheme_is_http(CURLU *u)
{
    char *scheme = NULL;
    bool ok = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    return ok;
}

static void sink_free(struct http_sink *s)
{
    while (s->idle) {
        struct http_conn *c = s->idle;
        s->idle = c->next;
        for (size_t i = 0; i < c->n_easy; i++)
            curl_easy_cleanup(c->easy[i]);
        free(c->easy);
        ob_multi_destroy(c->multi);
        free(c);
    }
    pthread_mutex_destroy(&s->mu);
    curl_free(s->url);
    curl_free(s->shown_url);
    curl_url_cleanup(s->base);
    for (size_t i = 0; i < s->n_extra; i++)
        free(s->extra[i]);
    free(s->extra);
    free(s->bearer_header);
    free(s->basic_user);
    free(s->basic_password);
    free(s->secret);
    free(s->ca_file);
    free(s);
}

static enum ob_err http_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                               struct ob_error *err)
{
    (void)ctx;
    pthread_once(&curl_once, curl_global);
    enum ob_err rc = OB_OK;
    struct http_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);

    const char *url = ob_sink_opt_str(cfg, "url");
    s->base = curl_url();
    if (!url || !s->base || curl_url_set(s->base, CURLUPART_URL, url, 0) != CURLUE_OK || !scheme_is_http(s->base) ||
        url_strings(s->base, &s->url, &s->shown_url) != CURLUE_OK) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "url is not a valid http:// or https:// URL");
        goto out;
    }
    const char *mode = ob_sink_opt_str(cfg, "mode");
    s->structured = mode && strcmp(mode, "structured") == 0;

    const struct ob_config_map *hdrs = ob_sink_opt_map(cfg, "headers");
    s->extra = ob_xcalloc(hdrs->n + 1, sizeof *s->extra);
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct ob_config_pair *p = &hdrs->pairs[i];
        if (!is_token(p->key) || !value_ok(p->value)) {
            rc = ob_error_set(err, OB_ERR_CONFIG, "headers: '%s' is not a valid header name, or its value has control characters",
                              p->key);
            goto out;
        }
        s->extra[s->n_extra++] = header_line(p->key, p->value);
    }

    const char *bearer = ob_sink_opt_str(cfg, "bearer_token");
    const char *user = ob_sink_opt_str(cfg, "basic_username");
    const char *password = ob_sink_opt_str(cfg, "basic_password");
    if (bearer && (user || password)) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "bearer_token and basic_username/basic_password exclude each other");
        goto out;
    }
    if (!user != !password) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "basic_username and basic_password go together");
        goto out;
    }
    if (bearer) {
        if (!value_ok(bearer)) {
            rc = ob_error_set(err, OB_ERR_CONFIG, "bearer_token has control characters");
            goto out;
        }
        struct ob_buf line = {0};
        ob_buf_printf(&line, "Authorization: Bearer %s", bearer);
        s->bearer_header = ob_buf_steal(&line);
    }
    if (user) {
        s->basic_user = ob_xstrdup(user);
        s->basic_password = ob_xstrdup(password);
    }

    const char *secret = ob_sink_opt_str(cfg, "webhook_secret");
    if (secret) {
        struct ob_buf raw = {0};
        if (strncmp(secret, "whsec_", 6) == 0) {
            if (!ob_base64_decode(&raw, secret + 6, strlen(secret + 6)) || raw.len == 0) {
                ob_buf_free(&raw);
                rc = ob_error_set(err, OB_ERR_CONFIG, "webhook_secret: 'whsec_' must be followed by base64");
                goto out;
            }
        } else {
            ob_buf_puts(&raw, secret);
        }
        s->secret_len = raw.len;
        s->secret = (unsigned char *)ob_buf_steal(&raw);
    }

    s->idempotency_key = ob_sink_opt_bool(cfg, "idempotency_key");
    s->timeout_ms = (long)ob_sink_opt_duration_ms(cfg, "timeout");
    s->connect_timeout_ms = (long)ob_sink_opt_duration_ms(cfg, "connect_timeout");
    s->tls_verify = ob_sink_opt_bool(cfg, "tls_verify");
    const char *ca = ob_sink_opt_str(cfg, "ca_file");
    if (ca && access(ca, R_OK) != 0) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "ca_file %s: %s", ca, strerror(errno));
        goto out;
    }
    s->ca_file = ca ? ob_xstrdup(ca) : NULL;
out:
    if (rc) {
        sink_free(s);
        s = NULL;
    }
    *state = s;
    return rc;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* An easy handle with the sink's options; a request sets only what is
 * its own. */
static CURL *easy_new(const struct http_sink *s)
{
    CURL *e = curl_easy_init();
    if (!e)
        abort(); /* out of memory, as the ob_x* allocators do */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    if (s->basic_user) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, s->basic_user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, s->basic_password);
    }
    if (!s->tls_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (s->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, s->ca_file);
    return e;
}

/* A pooled multi handle with at least n easy handles, or a new one. */
static struct http_conn *conn_take(struct http_sink *s, size_t n)
{
    pthread_mutex_lock(&s->mu);
    struct http_conn *c = s->idle;
    if (c)
        s->idle = c->next;
    pthread_mutex_unlock(&s->mu);
    if (!c) {
        c = ob_xcalloc(1, sizeof *c);
        c->multi = ob_multi_create();
        if (!c->multi)
            abort();
    }
    if (c->n_easy < n) {
        c->easy = ob_xrealloc(c->easy, n * sizeof *c->easy);
        for (; c->n_easy < n; c->n_easy++)
            c->easy[c->n_easy] = easy_new(s);
        /* curl's default cache limit follows the handles still added, so
         * it would close connections as the batch's transfers finish. */
        curl_multi_setopt(ob_multi_curl(c->multi), CURLMOPT_MAXCONNECTS, (long)n);
    }
    return c;
}

static void conn_give(struct http_sink *s, struct http_conn *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = s->idle;
    s->idle = c;
    pthread_mutex_unlock(&s->mu);
}


/* Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature
 * "v1,base64(HMAC-SHA256(secret, id.timestamp.body))". */
static bool add_webhook_headers(const struct http_sink *s, struct curl_slist **hl, const char *id, const void *body,
                                size_t body_len)
{
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    struct ob_buf signed_content = {0}, sig = {0};
    ob_buf_printf(&signed_content, "%s.%s.", id, ts);
    ob_buf_append(&signed_content, body, body_len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    bool ok = HMAC(EVP_sha256(), s->secret, (int)s->secret_len, (const unsigned char *)signed_content.data,
                   signed_content.len, md, &md_len) &&
              md_len == HMAC_SHA256_LEN;
    if (ok) {
        ob_buf_puts(&sig, "v1,");
        ob_base64_encode(&sig, md, md_len);
        add_header(hl, "webhook-id", id);
        add_header(hl, "webhook-timestamp", ts);
        add_header(hl, "webhook-signature", sig.data);
    }
    ob_buf_free(&signed_content);
    ob_buf_free(&sig);
    return ok;
}

/* Builds r's request on its easy handle. False (and d's result set) when
 * this message cannot be sent at all. */
static bool req_prepare(const struct http_sink *s, struct http_req *r)
{
    struct ob_delivery *d = r->d;
    const struct ob_message *m = d->msg;
    const struct ob_ce *ce = d->ce;

    if (d->destination && *d->destination) {
        CURLU *u = curl_url_dup(s->base);
        bool ok = u && curl_url_set(u, CURLUPART_URL, d->destination, 0) == CURLUE_OK && scheme_is_http(u) &&
                  url_strings(u, &r->url, &r->shown) == CURLUE_OK;
        curl_url_cleanup(u);
        if (!ok) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "destination is not a valid http(s) URL or reference");
            return false;
        }
    }

    const void *body;
    size_t body_len;
    /* The id travels raw in Idempotency-Key and webhook-id. */
    if (!value_ok(ce->id)) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "message id has control characters: it cannot be an HTTP header");
        return false;
    }
    if (s->structured) {
        ob_delivery_structured(&r->body, d);
        body = r->body.data;
        body_len = r->body.len;
        add_header(&r->headers, "Content-Type", "application/cloudevents+json");
    } else {
        if (!value_ok(ce->datacontenttype)) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "content-type has control characters: it cannot be an HTTP header");
            return false;
        }
        body = m->payload ? (const void *)m->payload : "";
        body_len = m->payload_len;
        add_header(&r->headers, "Content-Type", ce->datacontenttype);
        ob_ce_each_attribute(ce, add_ce_header, &r->headers);
        if (d->error_info)
            add_ce_header(OB_CE_DEAD_LETTER_REASON, d->error_info, &r->headers);
    }
    for (size_t i = 0; i < m->n_headers; i++) {
        const struct ob_header *h = &m->headers[i];
        if (is_token(h->name) && !header_reserved(h->name) && value_ok(h->value))
            add_header(&r->headers, h->name, h->value);
    }
    if (s->idempotency_key)
        add_header(&r->headers, "Idempotency-Key", ce->id);
    if (s->bearer_header)
        append_line(&r->headers, s->bearer_header);
    if (s->secret && !add_webhook_headers(s, &r->headers, ce->id, body, body_len)) {
        ob_delivery_set(d, OB_DELIVERY_RETRY, "cannot compute the webhook signature");
        return false;
    }
    for (size_t i = 0; i < s->n_extra; i++)
        append_line(&r->headers, s->extra[i]);
    add_header(&r->headers, "User-Agent", "outboxd/" OUTBOXD_VERSION);
    append_line(&r->headers, "Expect:");   /* no 100-continue round trip */

    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url ? r->url : s->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    return true;
}

/* Sets d's result from a finished transfer. */
static void req_finish(const struct http_sink *s, struct http_req *r, CURLcode cc)
{
    const char *shown = r->shown ? r->shown : s->shown_url;
    if (cc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300)
            return;
        bool retry = status == 408 || status == 429 || status >= 500;
        ob_delivery_set(r->d, retry ? OB_DELIVERY_RETRY : OB_DELIVERY_REJECT, "HTTP %ld from POST %s", status, shown);
        return;
    }
    /* Every transport failure is retriable: the server may come back. */
    long os_errno = 0;
    if (cc == CURLE_COULDNT_CONNECT)
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno)
        ob_delivery_set(r->d, OB_DELIVERY_RETRY, "connect: %s (%s)", strerror((int)os_errno), shown);
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        ob_delivery_set(r->d, OB_DELIVERY_RETRY, "timeout after %ld ms (%s)", s->timeout_ms, shown);
    else
        ob_delivery_set(r->d, OB_DELIVERY_RETRY, "%s (%s)", r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc), shown);
}

static void http_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct http_sink *s = state;
    struct http_conn *c = conn_take(s, n);
    struct http_req *reqs = ob_xcalloc(n, sizeof *reqs);
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
        struct http_req *r = &reqs[i];
        r->d = &batch[i];
        r->easy = c->easy[i];
        if (!req_prepare(s, r))
            continue;
        if (ob_multi_add(c->multi, r->easy) == CURLM_OK) {
            r->active = true;
            active++;
        } else {
            ob_delivery_set(r->d, OB_DELIVERY_RETRY, "cannot start the request (%s)", s->shown_url);
        }
    }
    /* Every transfer ends: curl's timer enforces timeout_ms. */
    while (active) {
        ob_multi_drive(c->multi, 1000);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(ob_multi_curl(c->multi), &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct http_req *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            req_finish(s, r, msg->data.result);
            ob_multi_remove(c->multi, r->easy);
            r->active = false;
            active--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct http_req *r = &reqs[i];
        /* Nothing of the request may outlive it in the pooled handle. */
        curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, NULL);
        curl_slist_free_all(r->headers);
        ob_buf_free(&r->body);
        curl_free(r->url);
        curl_free(r->shown);
    }
    free(reqs);
    conn_give(s, c);
}

static void http_destroy(void *state)
{
    sink_free(state);
}

const struct ob_sink_ops ob_http_sink_ops = {
    .type = "http",
    .create = http_create,
    .publish = http_publish,
    .destroy = http_destroy,
};
