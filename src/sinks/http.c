/* http sink: POSTs each message (webhooks), CloudEvents HTTP binding in
 * binary or structured mode, optionally signed the Standard Webhooks way.
 * The message's own headers travel as HTTP headers in both modes (SPEC §4),
 * except names that would change framing, routing or authentication.
 * A batch goes out concurrently on one ob_http_client; clients (with their
 * kept-alive connections) are pooled per sink because publish runs on
 * several threads at once. Destinations resolve against the configured url
 * as RFC 3986 says. */
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

#include "aws/http_client.h"
#include "core/codec.h"
#include "core/url.h"
#include "sinks/common.h"
#include "sinks/sink.h"

#define HMAC_SHA256_LEN 32

/* Connections to a batch's URLs at most, and a pool of clients. */
#define MAX_CONNECTIONS 1024
#define KEPT_BUF_MAX (64u << 10) /* a kept request's head or body, at most */

struct http_pooled {
    struct ob_http_client *client;
    /* The last batch's requests, kept with their buffers' storage: a
     * request head is 1 to 2 KiB, too big for malloc's per-thread cache. */
    struct http_req *reqs;
    size_t n_reqs;
    struct http_pooled *next;
};

/* Where a request goes and as what. */
struct http_target {
    struct ob_http_origin origin;
    char *request_line;        /* "POST /path?query HTTP/1.1\r\nHost: host\r\n" */
    char *url_auth;            /* "Authorization: Basic ...\r\n" from the URL's userinfo, or NULL */
    char *shown;               /* the URL without userinfo, query or fragment: safe in errors */
};

struct http_sink {
    struct http_target target; /* the configured url */
    struct ob_url base;        /* url parsed: destinations resolve against it */
    bool structured;
    char **extra;              /* "Name: value\r\n" lines of the `headers` option */
    size_t n_extra;
    char *auth_header;         /* "Authorization: Bearer|Basic ...\r\n" or NULL */
    unsigned char *secret;     /* webhook_secret decoded, NULL when unset */
    size_t secret_len;
    bool idempotency_key;
    long timeout_ms, connect_timeout_ms;
    bool tls_verify;
    char *ca_file;
    pthread_mutex_t mu;        /* guards idle */
    struct http_pooled *idle;
};

/* One request of a batch in flight. */
struct http_req {
    struct ob_delivery *d;
    struct ob_http_exchange ex;
    struct ob_buf head;
    struct ob_buf body;        /* structured mode; binary mode sends the payload in place */
    struct http_target dest;   /* a message's own destination; origin.key NULL when none */
    bool active;               /* started, not finished */
};

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

static void add_header(struct ob_buf *head, const char *name, const char *value)
{
    ob_buf_cat(head, name, ": ", value, "\r\n", NULL);
}

/* "Name: value\r\n"; the caller frees it. */
static char *header_line(const char *name, const char *value)
{
    struct ob_buf line = {0};
    add_header(&line, name, value);
    return ob_buf_steal(&line);
}

static char *basic_auth_line(const char *user, const char *password)
{
    struct ob_buf plain = {0}, line = {0};
    ob_buf_cat(&plain, user, ":", password, NULL);
    ob_buf_puts(&line, "Authorization: Basic ");
    ob_base64_encode(&line, plain.data, plain.len);
    ob_buf_puts(&line, "\r\n");
    ob_buf_free(&plain);
    return ob_buf_steal(&line);
}

/* CloudEvents HTTP binding 1.0.2 §3.1.3.2: header values percent-encode
 * space, '"', '%' and every byte outside printable ASCII. */
static void add_ce_header(const char *name, const char *value, void *ctx)
{
    struct ob_buf *head = ctx;
    static const char hex[] = "0123456789ABCDEF";
    ob_buf_cat(head, "ce-", name, ": ", NULL);
    /* Runs that need no escaping are copied whole. */
    const unsigned char *p = (const unsigned char *)value, *run = p;
    for (; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '%') {
            ob_buf_append(head, run, (size_t)(p - run));
            char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
            ob_buf_append(head, esc, sizeof esc);
            run = p + 1;
        }
    }
    ob_buf_append(head, run, (size_t)(p - run));
    ob_buf_puts(head, "\r\n");
}

static void target_free(struct http_target *t)
{
    ob_http_origin_free(&t->origin);
    free(t->request_line);
    free(t->url_auth);
    free(t->shown);
    memset(t, 0, sizeof *t);
}

/* "user:password" of a URL as a Basic Authorization line (RFC 7617). */
static char *userinfo_auth_line(const char *userinfo)
{
    struct ob_buf line = {0};
    ob_buf_puts(&line, "Authorization: Basic ");
    ob_url_put_basic_credentials(&line, userinfo);
    ob_buf_puts(&line, "\r\n");
    return ob_buf_steal(&line);
}

/* Where u points: origin, request line with Host, credentials given in
 * the URL, the URL to show in errors. */
static void target_from_url(const struct ob_url *u, struct http_target *t)
{
    ob_http_origin_set(&t->origin, u->tls, u->host, ob_url_port(u));
    const char *colon = u->port ? ":" : "", *port = u->port ? u->port : "";
    struct ob_buf b = {0};
    ob_buf_cat(&b, "POST ", u->path, u->query ? "?" : "", u->query ? u->query : "", " HTTP/1.1\r\nHost: ", u->host,
               colon, port, "\r\n", NULL);
    t->request_line = ob_buf_steal(&b);
    t->url_auth = u->userinfo ? userinfo_auth_line(u->userinfo) : NULL;
    ob_buf_cat(&b, u->tls ? "https://" : "http://", u->host, colon, port, u->path, NULL);
    t->shown = ob_buf_steal(&b);
}

static void reqs_free(struct http_req *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ob_buf_free(&reqs[i].head);
        ob_buf_free(&reqs[i].body);
        target_free(&reqs[i].dest);
    }
    free(reqs);
}

/* n requests for a batch, from p's kept ones: emptied, their buffers'
 * storage kept unless it grew big (a structured body, a message with
 * large headers). */
static struct http_req *reqs_take(struct http_pooled *p, size_t n)
{
    if (n > p->n_reqs) {
        p->reqs = ob_xrealloc(p->reqs, n * sizeof *p->reqs);
        memset(p->reqs + p->n_reqs, 0, (n - p->n_reqs) * sizeof *p->reqs);
        p->n_reqs = n;
    }
    for (size_t i = 0; i < n; i++) {
        struct http_req *r = &p->reqs[i];
        struct ob_buf head = r->head, body = r->body;
        if (head.cap > KEPT_BUF_MAX)
            ob_buf_free(&head);
        if (body.cap > KEPT_BUF_MAX)
            ob_buf_free(&body);
        target_free(&r->dest);
        memset(r, 0, sizeof *r);
        r->head = head;
        r->body = body;
        ob_buf_reset(&r->head);
        ob_buf_reset(&r->body);
    }
    return p->reqs;
}

static void sink_free(struct http_sink *s)
{
    while (s->idle) {
        struct http_pooled *p = s->idle;
        s->idle = p->next;
        ob_http_client_destroy(p->client);
        reqs_free(p->reqs, p->n_reqs);
        free(p);
    }
    pthread_mutex_destroy(&s->mu);
    target_free(&s->target);
    ob_url_free(&s->base);
    for (size_t i = 0; i < s->n_extra; i++)
        free(s->extra[i]);
    free(s->extra);
    free(s->auth_header);
    free(s->secret);
    free(s->ca_file);
    free(s);
}

/* The HMAC key of a webhook_secret: the bytes of the base64 after
 * "whsec_", else the text itself. False when "whsec_" is not followed by
 * base64. */
static bool webhook_secret_key(const char *secret, struct ob_buf *raw)
{
    if (strncmp(secret, "whsec_", 6) != 0) {
        ob_buf_puts(raw, secret);
        return true;
    }
    return ob_base64_decode(raw, secret + 6, strlen(secret + 6)) && raw->len > 0;
}

/* The rules between the keys, for `check` as for `run`. */
static void http_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    bool user = ob_sink_check_given(c, "basic_username"), pass = ob_sink_check_given(c, "basic_password");
    if (user != pass)
        ob_sink_check_error(c, (struct ob_config_pos){0}, "missing required key '%s' in %s (%s is set)",
                            user ? "basic_password" : "basic_username", ob_sink_check_owner(c),
                            user ? "basic_username" : "basic_password");
    const char *secret = ob_sink_opt_str(sink, "webhook_secret");
    struct ob_buf raw = {0};
    if (secret && !webhook_secret_key(secret, &raw))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "webhook_secret"),
                            "'webhook_secret' of %s must be 'whsec_' followed by base64 (the value is not shown: it is "
                            "secret)", ob_sink_check_owner(c));
    ob_buf_free(&raw);
}

static enum ob_err http_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                               struct ob_error *err)
{
    (void)ctx;
    enum ob_err rc = OB_OK;
    struct http_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);

    const char *url = ob_sink_opt_str(cfg, "url");
    struct ob_error why = {0};
    if (!url || ob_url_parse(url, &s->base, &why) != OB_OK) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "url is not a valid http:// or https:// URL: %s",
                          url ? why.msg : "none given");
        goto out;
    }
    target_from_url(&s->base, &s->target);
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
    if (bearer) {
        if (!value_ok(bearer)) {
            rc = ob_error_set(err, OB_ERR_CONFIG, "bearer_token has control characters");
            goto out;
        }
        struct ob_buf line = {0};
        ob_buf_cat(&line, "Bearer ", bearer, NULL);
        s->auth_header = header_line("Authorization", line.data);
        ob_buf_free(&line);
    }
    if (user) {
        if (!value_ok(user) || !value_ok(password)) {
            rc = ob_error_set(err, OB_ERR_CONFIG, "basic_username and basic_password must not have control characters");
            goto out;
        }
        s->auth_header = basic_auth_line(user, password);
    }

    const char *secret = ob_sink_opt_str(cfg, "webhook_secret");
    if (secret) {
        struct ob_buf raw = {0};
        /* The loader's http_check refused a bad one; a section built
         * without the loader must not sign with a wrong key either. */
        if (!webhook_secret_key(secret, &raw)) {
            ob_buf_free(&raw);
            rc = ob_error_set(err, OB_ERR_CONFIG, "'webhook_secret' must be 'whsec_' followed by base64");
            goto out;
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

/* A pooled client, or a new one. */
static struct http_pooled *client_take(struct http_sink *s)
{
    pthread_mutex_lock(&s->mu);
    struct http_pooled *p = s->idle;
    if (p)
        s->idle = p->next;
    pthread_mutex_unlock(&s->mu);
    if (p)
        return p;
    struct ob_http_client_options opt = {
        .max_connections = MAX_CONNECTIONS,
        .connect_timeout_ms = s->connect_timeout_ms,
        .request_timeout_ms = s->timeout_ms,
        .tls_verify = s->tls_verify,
        .ca_file = s->ca_file,
    };
    struct ob_error err = {0};
    p = ob_xcalloc(1, sizeof *p);
    p->client = ob_http_client_create(&opt, &err);
    if (!p->client)
        abort(); /* no epoll or eventfd: the process is out of descriptors or memory */
    return p;
}

static void client_give(struct http_sink *s, struct http_pooled *p)
{
    pthread_mutex_lock(&s->mu);
    p->next = s->idle;
    s->idle = p;
    pthread_mutex_unlock(&s->mu);
}

/* Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature
 * "v1,base64(HMAC-SHA256(secret, id.timestamp.body))". */
static bool add_webhook_headers(const struct http_sink *s, struct ob_buf *head, const char *id, const void *body,
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
        add_header(head, "webhook-id", id);
        add_header(head, "webhook-timestamp", ts);
        add_header(head, "webhook-signature", sig.data);
    }
    ob_buf_free(&signed_content);
    ob_buf_free(&sig);
    return ok;
}

/* Builds r's request. False (and d's result set) when this message cannot
 * be sent at all. */
static bool req_prepare(const struct http_sink *s, struct http_req *r)
{
    struct ob_delivery *d = r->d;
    const struct ob_message *m = d->msg;
    const struct ob_ce *ce = d->ce;
    const struct http_target *t = &s->target;

    if (d->destination && *d->destination) {
        struct ob_url u;
        struct ob_error why = {0};
        if (ob_url_resolve(&s->base, d->destination, &u, &why) != OB_OK) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "destination is not a valid http(s) URL or reference: %s", why.msg);
            return false;
        }
        target_from_url(&u, &r->dest);
        ob_url_free(&u);
        t = &r->dest;
    }

    const void *body;
    size_t body_len;
    /* The id travels raw in Idempotency-Key and webhook-id. */
    if (!value_ok(ce->id)) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "message id has control characters: it cannot be an HTTP header");
        return false;
    }
    struct ob_buf *head = &r->head;
    ob_buf_reserve(head, 1024); /* a typical head, in one allocation */
    ob_buf_puts(head, t->request_line);
    if (s->structured) {
        ob_delivery_structured(&r->body, d);
        body = r->body.data;
        body_len = r->body.len;
        add_header(head, "Content-Type", "application/cloudevents+json");
    } else {
        if (!value_ok(ce->datacontenttype)) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "content-type has control characters: it cannot be an HTTP header");
            return false;
        }
        body = m->payload ? (const void *)m->payload : "";
        body_len = m->payload_len;
        add_header(head, "Content-Type", ce->datacontenttype);
        ob_ce_each_attribute(ce, add_ce_header, head);
        if (d->error_info)
            add_ce_header(OB_CE_DEAD_LETTER_REASON, d->error_info, head);
    }
    for (size_t i = 0; i < m->n_headers; i++) {
        const struct ob_header *h = &m->headers[i];
        if (is_token(h->name) && !header_reserved(h->name) && value_ok(h->value))
            add_header(head, h->name, h->value);
    }
    if (s->idempotency_key)
        add_header(head, "Idempotency-Key", ce->id);
    if (s->auth_header || t->url_auth)
        ob_buf_puts(head, s->auth_header ? s->auth_header : t->url_auth);
    if (s->secret && !add_webhook_headers(s, head, ce->id, body, body_len)) {
        ob_delivery_set(d, OB_DELIVERY_RETRY, "cannot compute the webhook signature");
        return false;
    }
    for (size_t i = 0; i < s->n_extra; i++)
        ob_buf_puts(head, s->extra[i]);
    ob_buf_puts(head, "User-Agent: outboxd/" OUTBOXD_VERSION "\r\nAccept: */*\r\nContent-Length: ");
    ob_buf_put_int(head, (int64_t)body_len);
    ob_buf_puts(head, "\r\n\r\n");

    r->ex = (struct ob_http_exchange){
        .origin = &t->origin,
        .head = head->data,
        .head_len = head->len,
        .body = body,
        .body_len = body_len,
        .user = r,
    };
    return true;
}

/* Sets d's result from a finished exchange. */
static void req_finish(const struct http_sink *s, struct http_req *r)
{
    const struct ob_http_exchange *ex = &r->ex;
    const char *shown = r->dest.shown ? r->dest.shown : s->target.shown;
    switch (ex->failure) {
    case OB_HTTP_OK:
        if (ex->status >= 200 && ex->status < 300)
            return;
        bool retry = ex->status == 408 || ex->status == 429 || ex->status >= 500;
        ob_delivery_set(r->d, retry ? OB_DELIVERY_RETRY : OB_DELIVERY_REJECT, "HTTP %d from POST %s", ex->status,
                        shown);
        return;
    /* Every transport failure is retriable: the server may come back. */
    case OB_HTTP_TIMEOUT:
        ob_delivery_set(r->d, OB_DELIVERY_RETRY, "timeout after %ld ms (%s)", s->timeout_ms, shown);
        return;
    default:
        ob_delivery_set(r->d, OB_DELIVERY_RETRY, "%s (%s)", ex->error, shown);
        /* The sink is its url's origin: a message's own destination
         * elsewhere that cannot be reached fails that message alone. */
        if (ex->failure == OB_HTTP_CONNECT && strcmp(ex->origin->key, s->target.origin.key) != 0)
            r->d->destination_unreachable = true;
        else
            r->d->unreachable = ex->failure == OB_HTTP_CONNECT;
        return;
    }
}

static void http_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct http_sink *s = state;
    struct http_pooled *p = client_take(s);
    struct http_req *reqs = reqs_take(p, n);
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
        struct http_req *r = &reqs[i];
        r->d = &batch[i];
        if (!req_prepare(s, r))
            continue;
        ob_http_client_start(p->client, &r->ex);
        r->active = true;
        active++;
    }
    /* Every exchange ends: the client enforces timeout_ms. */
    while (active) {
        ob_http_client_drive(p->client, 1000);
        struct ob_http_exchange *ex;
        while ((ex = ob_http_client_next_done(p->client))) {
            struct http_req *r = ex->user;
            req_finish(s, r);
            r->active = false;
            active--;
        }
    }
    client_give(s, p);
}

static void http_destroy(void *state)
{
    sink_free(state);
}

static const char *const http_schemes[] = {"http://", "https://", NULL};
static const char *const http_modes[] = {"binary", "structured", NULL};

static const struct ob_config_key http_keys[] = {
    {.path = "url", .type = OB_CT_URL, .flags = OB_CK_REQUIRED, .values = http_schemes,
     .example = "https://example.org/hook", .doc = "URL each message is POSTed to."},
    {.path = "mode", .type = OB_CT_ENUM, .def = "binary", .values = http_modes,
     .doc = "CloudEvents HTTP binding: `ce-` headers and the payload as body, or one JSON document."},
    {.path = "headers", .type = OB_CT_MAP, .example = "{ X-Source: outboxd }",
     .doc = "Extra request headers."},
    {.path = "bearer_token", .type = OB_CT_STRING, .flags = OB_CK_SECRET, .example = "${HOOK_TOKEN}",
     .doc = "Sent as `Authorization: Bearer`."},
    {.path = "basic_username", .type = OB_CT_STRING, .example = "outboxd",
     .doc = "HTTP basic authentication user; needs `basic_password`."},
    {.path = "basic_password", .type = OB_CT_STRING, .flags = OB_CK_SECRET, .example = "${HOOK_PASSWORD}",
     .doc = "HTTP basic authentication password."},
    {.path = "webhook_secret", .type = OB_CT_STRING, .flags = OB_CK_SECRET, .example = "${HOOK_SECRET}",
     .doc = "Signs requests the Standard Webhooks way; `whsec_` followed by base64, or raw bytes."},
    {.path = "idempotency_key", .type = OB_CT_BOOL, .def = "true",
     .doc = "Send the message id as `Idempotency-Key`."},
    {.path = "connect_timeout", .type = OB_CT_DURATION, .def = "3s", .min = 1, .max = INT64_MAX,
     .doc = "TCP and TLS connect timeout."},
    {.path = "ca_file", .type = OB_CT_STRING, .def_doc = "the system's CA certificates",
     .example = "/etc/ssl/certs/internal-ca.pem", .doc = "PEM file of CA certificates to verify the server with."},
};

const struct ob_sink_ops ob_http_sink_ops = {
    .schema = {.type = "http", .doc = "HTTP POST (webhooks), CloudEvents HTTP binding.", .keys = http_keys,
               .n_keys = sizeof http_keys / sizeof http_keys[0], .check = http_check},
    .create = http_create,
    .publish = http_publish,
    .destroy = http_destroy,
};
