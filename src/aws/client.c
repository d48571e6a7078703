#include "aws/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/retry.h"
#include "aws/sigv4.h"
#include "core/url.h"
#include "core/xml_scan.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"

enum call_state { CALL_WAITING, CALL_ACTIVE, CALL_DONE };

struct ob_aws_client {
    char *region;
    struct ob_cred_provider *credentials; /* borrowed */
    struct ob_sigv4_key_cache key_cache;
    struct ob_retry_policy retry;
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms;
    int max_connections;
    bool tls_skip_verify;
};

/* A session calls a handful of operations; their request counters are
 * looked up once, not per call (the registry takes a lock). */
#define SESSION_COUNTERS 8
#define SPARE_HEADS 64

struct ob_aws_session {
    struct ob_aws_client *client;
    struct ob_http_client *http;
    struct ob_aws_call *calls;            /* not done yet: waiting or active */
    struct ob_aws_call *done, *done_tail; /* started calls that are done, to hand back */
    int active;                           /* calls on a connection */
    atomic_bool canceled;
    struct ob_sigv4_signed sig;           /* reused by every request signed */
    time_t amz_date_at;                   /* the second amz_date names */
    char amz_date[17];
    /* Request heads of finished attempts, for the next calls: a signed
     * head is 2 KiB, past malloc's per-thread cache. */
    struct ob_buf spare_heads[SPARE_HEADS];
    size_t n_spare_heads;
    struct {
        char operation[40];
        struct ob_metric_series *requests;
    } counters[SESSION_COUNTERS];
};

enum ob_err ob_aws_endpoint_parse(const char *url, struct ob_aws_endpoint *ep, struct ob_error *err)
{
    memset(ep, 0, sizeof *ep);
    struct ob_url u;
    struct ob_error why = { 0 };
    struct ob_buf shown = { 0 };
    ob_url_put_redacted(&shown, url);
    enum ob_err rc = OB_OK;
    if (ob_url_parse(url, &u, &why) != OB_OK) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "endpoint '%s': %s", ob_buf_cstr(&shown), why.msg);
        goto out;
    }
    if (u.userinfo || u.query || strchr(url, '#')) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "endpoint '%s' must not have user information, a query or a fragment",
                          ob_buf_cstr(&shown));
        goto out;
    }
    /* Host header: without the scheme's default port, as SDKs send it, so
     * the signed value matches what the server reconstructs. */
    struct ob_buf host = { 0 };
    ob_buf_cat(&host, u.host, u.port ? ":" : "", u.port ? u.port : "", NULL);
    ep->host = ob_buf_steal(&host);
    ep->path = ob_xstrdup(u.path);
    ep->url = ob_xstrdup(url);
    ob_http_origin_set(&ep->origin, u.tls, u.host, ob_url_port(&u));
out:
    ob_url_free(&u);
    ob_buf_free(&shown);
    return rc;
}

void ob_aws_endpoint_free(struct ob_aws_endpoint *ep)
{
    free(ep->url);
    free(ep->host);
    free(ep->path);
    ob_http_origin_free(&ep->origin);
    memset(ep, 0, sizeof *ep);
}

enum ob_err ob_aws_client_create(const struct ob_aws_client_options *opt, struct ob_aws_client **out,
                                 struct ob_error *err)
{
    if (!opt->region || !*opt->region)
        return ob_error_set(err, OB_ERR_CONFIG, "no AWS region: set aws.region or AWS_REGION");
    struct ob_aws_client *c = ob_xcalloc(1, sizeof *c);
    c->region = ob_xstrdup(opt->region);
    c->credentials = opt->credentials;
    ob_sigv4_key_cache_init(&c->key_cache);
    uint64_t seed = (uint64_t)ob_mono_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    ob_retry_policy_init(&c->retry, opt->max_attempts, opt->retry_base_delay_ms, opt->retry_max_delay_ms,
                         seed);
    c->connect_timeout_ms = opt->connect_timeout_ms;
    c->request_timeout_ms = opt->request_timeout_ms;
    c->max_connections = opt->max_connections > 0 ? opt->max_connections : 64;
    c->tls_skip_verify = opt->tls_skip_verify;
    *out = c;
    return OB_OK;
}

void ob_aws_client_destroy(struct ob_aws_client *c)
{
    if (!c)
        return;
    free(c->region);
    ob_sigv4_key_cache_destroy(&c->key_cache);
    ob_retry_policy_destroy(&c->retry);
    free(c);
}

const char *ob_aws_client_region(const struct ob_aws_client *c)
{
    return c->region;
}

int ob_aws_client_retry_quota(struct ob_aws_client *c)
{
    return ob_retry_quota(&c->retry);
}

struct ob_aws_session *ob_aws_session_create(struct ob_aws_client *c)
{
    struct ob_aws_session *s = ob_xcalloc(1, sizeof *s);
    s->client = c;
    struct ob_http_client_options ho = {
        .max_connections = c->max_connections,
        .connect_timeout_ms = c->connect_timeout_ms,
        .request_timeout_ms = c->request_timeout_ms,
        .tls_verify = !c->tls_skip_verify,
    };
    struct ob_error err = { 0 };
    s->http = ob_http_client_create(&ho, &err);
    if (!s->http) {
        free(s);
        return NULL;
    }
    atomic_init(&s->canceled, false);
    return s;
}

void ob_aws_session_destroy(struct ob_aws_session *s)
{
    if (!s)
        return;
    ob_http_client_destroy(s->http);
    ob_sigv4_signed_free(&s->sig);
    while (s->n_spare_heads)
        ob_buf_free(&s->spare_heads[--s->n_spare_heads]);
    free(s);
}

void ob_aws_session_cancel(struct ob_aws_session *s)
{
    atomic_store(&s->canceled, true);
    ob_http_client_wakeup(s->http);
}

/* The attempt is over: its credentials are not needed any more. */
static void call_unsign(struct ob_aws_call *call)
{
    ob_cred_release(call->signed_with);
    call->signed_with = NULL;
}

void ob_aws_call_release(struct ob_aws_call *call)
{
    call_unsign(call);
    if (call->response)
        json_decref(call->response);
    call->response = NULL;
    ob_buf_free(&call->rx);
    ob_buf_free(&call->head);
}

void ob_aws_call_lend_rx(struct ob_aws_call *call, struct ob_buf *keep)
{
    ob_buf_free(&call->rx);
    call->rx = *keep;
    *keep = (struct ob_buf){ 0 };
}

void ob_aws_call_release_keep(struct ob_aws_call *call, struct ob_buf *keep)
{
    ob_buf_free(keep);
    *keep = call->rx;
    ob_buf_reset(keep);
    call->rx = (struct ob_buf){ 0 };
    ob_aws_call_release(call);
}

/* Error names any AWS JSON service may answer and what they mean to
 * outboxd; a service's own names are in its struct ob_aws_service. */
static const struct ob_aws_error_name aws_errors[] = {
    { "ThrottlingException", OB_ERR_THROTTLED, true },
    { "Throttling", OB_ERR_THROTTLED, true },
    { "TooManyRequestsException", OB_ERR_THROTTLED, true },
    { "SlowDown", OB_ERR_THROTTLED, true },
    /* botocore's other throttling and transient names, for every service. */
    { "ThrottledException", OB_ERR_THROTTLED, true },
    { "RequestThrottledException", OB_ERR_THROTTLED, true },
    { "RequestThrottled", OB_ERR_THROTTLED, true },
    { "BandwidthLimitExceeded", OB_ERR_THROTTLED, true },
    { "RequestLimitExceeded", OB_ERR_THROTTLED, true },
    { "RequestTimeout", OB_ERR_SERVICE, true },
    { "RequestTimeoutException", OB_ERR_SERVICE, true },
    { "PriorRequestNotComplete", OB_ERR_SERVICE, true },
    { "ResourceNotFoundException", OB_ERR_NOT_FOUND, false },
    { "ValidationException", OB_ERR_VALIDATION, false },
    { "SerializationException", OB_ERR_VALIDATION, false },
    { "UnrecognizedClientException", OB_ERR_ACCESS_DENIED, false },
    { "AccessDeniedException", OB_ERR_ACCESS_DENIED, false },
    { "InvalidSignatureException", OB_ERR_ACCESS_DENIED, false },
    { "IncompleteSignature", OB_ERR_ACCESS_DENIED, false },
    { "MissingAuthenticationToken", OB_ERR_ACCESS_DENIED, false },
    /* The query protocol's and botocore's names for keys or a clock the service refuses. */
    { "SignatureDoesNotMatch", OB_ERR_ACCESS_DENIED, false },
    { "InvalidClientTokenId", OB_ERR_ACCESS_DENIED, false },
    { "AuthFailure", OB_ERR_ACCESS_DENIED, false },
    { "RequestExpired", OB_ERR_ACCESS_DENIED, false },
    { "RequestTimeTooSkewed", OB_ERR_ACCESS_DENIED, false },
    { "RequestInTheFuture", OB_ERR_ACCESS_DENIED, false },
    /* Temporary credentials that expired (the SDKs' list): refreshed and
     * retried, never the request's fault. RequestExpired is not one: it is
     * a clock off by more than the signature's 5 minutes. */
    { "ExpiredToken", OB_ERR_CREDENTIALS, true },
    { "ExpiredTokenException", OB_ERR_CREDENTIALS, true },
    { "TokenRefreshRequired", OB_ERR_CREDENTIALS, true },
    { "InternalServerError", OB_ERR_SERVICE, true },
    { "InternalFailure", OB_ERR_SERVICE, true },
    { "ServiceUnavailable", OB_ERR_SERVICE, true },
    { "ServiceUnavailableException", OB_ERR_SERVICE, true },
};

static const struct ob_aws_error_name *find_error_name(const struct ob_aws_error_name *names, size_t n,
                                                       const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(names[i].name, name) == 0)
            return &names[i];
    return NULL;
}

/* Classifies an error answer from its name (NULL when it has none) and message. */
static void classify_named(const struct ob_aws_service *service, long http_status, const char *name,
                           const char *message, struct ob_error *err)
{
    enum ob_err code = http_status >= 500 ? OB_ERR_SERVICE : OB_ERR_HTTP;
    /* 408: the request timed out on its way (a proxy, a load balancer): SPEC §3's retriable. */
    bool retriable = http_status >= 500 || http_status == 429 || http_status == 408;
    if (http_status == 429)
        code = OB_ERR_THROTTLED;
    const struct ob_aws_error_name *known = service ? find_error_name(service->errors, service->n_errors, name) : NULL;
    if (!known)
        known = find_error_name(aws_errors, sizeof aws_errors / sizeof aws_errors[0], name);
    if (known) {
        code = known->code;
        retriable = known->retriable;
    }
    if (name)
        ob_error_set(err, code, "%s: %s", name, message ? message : "(no message)");
    else
        ob_error_set(err, code, "HTTP %ld%s%s", http_status, message ? ": " : "", message ? message : "");
    err->retriable = retriable;
    err->http_status = (int)http_status;
    if (name)
        snprintf(err->aws_type, sizeof err->aws_type, "%s", name);
}

/* What an error answer says: its name and its message, each when it has one. */
struct error_said {
    struct ob_buf name, message;
    bool named, said;
};

static void said_json(const json_t *body, struct error_said *s)
{
    const char *type = json_string_value(json_object_get(body, "__type"));
    const char *message = json_string_value(json_object_get(body, "message"));
    if (!message)
        message = json_string_value(json_object_get(body, "Message"));
    const char *name = type ? strrchr(type, '#') : NULL;
    name = name ? name + 1 : type;
    if ((s->named = name != NULL))
        ob_buf_puts(&s->name, name);
    if ((s->said = message != NULL))
        ob_buf_puts(&s->message, message);
}

static void said_xml(const char *body, size_t len, struct error_said *s)
{
    struct ob_xml_span xml = { body ? body : "", body ? len : 0 };
    s->named = ob_xml_text(xml, "Code", &s->name);
    s->said = ob_xml_text(xml, "Message", &s->message);
}

/* Classifies what s says, and frees it. */
static void classify_said(const struct ob_aws_service *service, long http_status, struct error_said *s,
                          struct ob_error *err)
{
    classify_named(service, http_status, s->named ? ob_buf_cstr(&s->name) : NULL,
                   s->said ? ob_buf_cstr(&s->message) : NULL, err);
    ob_buf_free(&s->name);
    ob_buf_free(&s->message);
}

void ob_aws_classify_error(const struct ob_aws_service *service, long http_status, const json_t *body,
                           struct ob_error *err)
{
    struct error_said s = { 0 };
    said_json(body, &s);
    classify_said(service, http_status, &s, err);
}

void ob_aws_classify_xml_error(const struct ob_aws_service *service, long http_status, const char *body, size_t len,
                               struct ob_error *err)
{
    struct error_said s = { 0 };
    said_xml(body, len, &s);
    classify_said(service, http_status, &s, err);
}

static enum ob_err call_start(struct ob_aws_session *s, struct ob_aws_call *call, struct ob_error *err)
{
    struct ob_aws_client *c = s->client;
    enum ob_err rc = OB_OK;
    struct ob_sigv4_signed *sig = &s->sig;
    char target[128];
    target[0] = '\0';
    if (call->service->target_prefix)
        ob_str_join(target, sizeof target, call->service->target_prefix, ".", call->operation, NULL);

    struct ob_http_header hdrs[] = {
        { "Host", call->endpoint->host },
        { "Content-Type", call->service->content_type },
        { "X-Amz-Target", target },
    };
    size_t n_hdrs = call->service->target_prefix ? 3 : 2;
    struct ob_sigv4_request req = {
        .method = "POST",
        .path = call->endpoint->path,
        .query = NULL,
        .headers = hdrs,
        .n_headers = n_hdrs,
        .body = call->body,
        .body_len = call->body_len,
    };
    time_t now = time(NULL);
    if (now != s->amz_date_at) {
        ob_sigv4_amz_date(now, s->amz_date);
        s->amz_date_at = now;
    }
    struct ob_sigv4_params params = {
        .region = c->region,
        .service = call->service->signing_name,
        .amz_date = s->amz_date,
        .normalize_path = true,
    };
    call->signed_with = ob_cred_acquire(c->credentials);
    rc = ob_sigv4_sign_cached(&c->key_cache, call->signed_with->generation, &req, &call->signed_with->creds,
                              &params, sig, err);
    if (rc) {
        call_unsign(call);
        goto out;
    }

    struct ob_buf *h = &call->head;
    if (!h->data && s->n_spare_heads)
        *h = s->spare_heads[--s->n_spare_heads];
    ob_buf_reset(h);
    ob_buf_reserve(h, 1024); /* a signed head, in one allocation */
    ob_buf_cat(h, "POST ", call->endpoint->path, " HTTP/1.1\r\n", NULL);
    for (size_t i = 0; i < n_hdrs; i++)
        ob_buf_cat(h, hdrs[i].name, ": ", hdrs[i].value, "\r\n", NULL);
    for (size_t i = 0; i < sig->n_add; i++)
        ob_buf_cat(h, sig->add[i].name, ": ", sig->add[i].value, "\r\n", NULL);
    ob_buf_cat(h, "Authorization: ", ob_buf_cstr(&sig->authorization), "\r\n",
               "User-Agent: outboxd/" OUTBOXD_VERSION "\r\nContent-Length: ", NULL);
    ob_buf_put_int(h, (int64_t)call->body_len);
    ob_buf_puts(h, "\r\n\r\n");

    ob_buf_reset(&call->rx);
    call->exchange = (struct ob_http_exchange){
        .origin = &call->endpoint->origin,
        .head = h->data,
        .head_len = h->len,
        .body = call->body,
        .body_len = call->body_len,
        .rx = &call->rx,
        .user = call,
    };
    ob_http_client_start(s->http, &call->exchange);
    call->attempts++;
    call->state = CALL_ACTIVE;
out:
    return rc;
}

static void labels_operation(struct ob_buf *b, const char *operation)
{
    ob_buf_puts(b, "operation=\"");
    ob_metrics_escape(b, operation);
    ob_buf_putc(b, '"');
}

static void count_request(struct ob_aws_session *s, const char *operation)
{
    size_t i = 0;
    for (; i < SESSION_COUNTERS && s->counters[i].operation[0]; i++)
        if (strcmp(s->counters[i].operation, operation) == 0) {
            ob_metric_add(s->counters[i].requests, 1);
            return;
        }
    struct ob_buf l = { 0 };
    labels_operation(&l, operation);
    struct ob_metric_series *series = ob_metric_series("outboxd_aws_requests_total", l.data);
    ob_buf_free(&l);
    ob_metric_add(series, 1);
    if (i < SESSION_COUNTERS && strlen(operation) < sizeof s->counters[i].operation) {
        strcpy(s->counters[i].operation, operation);
        s->counters[i].requests = series;
    }
}

/* Masks the client's secrets where an error answer quotes them: a
 * signature mismatch quotes the canonical request, whose
 * x-amz-security-token line is the session token. Same length, so the
 * answer stays readable. The answer's bytes are masked, and what is read
 * from them again: JSON may write a token's '/' as "\/", XML a character
 * as a reference, which the bytes do not match (SPEC §7). */
static void mask_secrets(struct ob_buf *text, const struct ob_aws_credentials *creds)
{
    const char *secrets[] = { creds->session_token, creds->secret_access_key };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        size_t n = secrets[i] ? strlen(secrets[i]) : 0;
        char *at = text->data, *end = text->data + text->len;
        while (n && at && (at = memmem(at, (size_t)(end - at), secrets[i], n))) {
            memset(at, '*', n);
            at += n;
        }
    }
}

/* Decides the outcome of a finished attempt: done, or wait and retry. */
static void call_finish_attempt(struct ob_aws_session *s, struct ob_aws_call *call)
{
    const struct ob_http_exchange *ex = &call->exchange;
    if (s->n_spare_heads < SPARE_HEADS) { /* the exchange is over: its head is not read again */
        s->spare_heads[s->n_spare_heads++] = call->head;
        call->head = (struct ob_buf){ 0 };
    }
    struct ob_aws_client *c = s->client;
    bool timeout = false;
    long status = 0;
    if (call->response) {
        json_decref(call->response);
        call->response = NULL;
    }
    ob_error_clear(&call->err);
    count_request(s, call->operation);

    if (ex->failure != OB_HTTP_OK) {
        timeout = ex->failure == OB_HTTP_TIMEOUT;
        ob_error_set(&call->err, OB_ERR_NETWORK, "%s %s: %s", call->operation, call->endpoint->url, ex->error);
        call->err.retriable = true;
    } else {
        status = ex->status;
        json_error_t jerr;
        bool success = status >= 200 && status < 300;
        bool query = call->service->query_protocol;
        const struct ob_aws_credentials *creds = &call->signed_with->creds;
        if (!success)
            mask_secrets(&call->rx, creds);
        call->response = call->rx.len && !query && !(success && call->raw_success)
                             ? json_loadb(call->rx.data, call->rx.len, 0, &jerr) : NULL;
        if (!success) {
            struct error_said said = { 0 };
            if (query)
                said_xml(call->rx.data, call->rx.len, &said);
            else
                said_json(call->response, &said);
            mask_secrets(&said.name, creds);
            mask_secrets(&said.message, creds);
            classify_said(call->service, status, &said, &call->err);
        } else if (!call->response && !call->raw_success && !query) {
            ob_error_set(&call->err, OB_ERR_SERVICE, "%s: HTTP %ld with an unreadable JSON body", call->operation,
                         status);
            call->err.retriable = true;
        }
    }
    call->http_status = status;
    /* The service calls these credentials expired: the provider gets new
     * ones, which the retry signs with. */
    if (call->err.code == OB_ERR_CREDENTIALS)
        ob_cred_report_expired(c->credentials, call->signed_with);
    call_unsign(call);

    if (call->err.code == OB_OK) {
        ob_retry_on_success(&c->retry, call->retry_cost);
        call->result = OB_OK;
        call->state = CALL_DONE;
        return;
    }
    if (call->err.code == OB_ERR_THROTTLED) {
        struct ob_buf l = { 0 };
        labels_operation(&l, call->operation);
        ob_metric_count("outboxd_throttled_requests_total", l.data, 1);
        ob_buf_free(&l);
    }
    int64_t delay = 0;
    if (call->err.retriable && !atomic_load(&s->canceled) &&
        ob_retry_acquire(&c->retry, call->attempts, timeout, &call->retry_cost, &delay)) {
        ob_log_debug("%s: attempt %d failed (%s), retrying in %lld ms", call->operation, call->attempts,
                     call->err.msg, (long long)delay);
        struct ob_buf l = { 0 };
        labels_operation(&l, call->operation);
        ob_metric_count("outboxd_aws_retries_total", l.data, 1);
        ob_buf_free(&l);
        call->next_at_ms = ob_mono_ms() + delay;
        call->state = CALL_WAITING;
        return;
    }
    if (call->err.retriable && call->attempts > 1)
        ob_error_prefix(&call->err, "after %d attempts", call->attempts);
    call->result = call->err.code;
    call->state = CALL_DONE;
}

static void call_cancel(struct ob_aws_session *s, struct ob_aws_call *call)
{
    if (call->state == CALL_ACTIVE) {
        ob_http_client_abort(s->http, &call->exchange);
        s->active--;
    }
    call_unsign(call);
    ob_error_set(&call->err, OB_ERR_NETWORK, "%s: canceled (shutting down)", call->operation);
    call->result = OB_ERR_NETWORK;
    call->state = CALL_DONE;
}

/* A call leaves the session's list when done; a started one (ob_aws_start)
 * then waits in the done list for ob_aws_next_done. */
static void call_settled(struct ob_aws_session *s, struct ob_aws_call *call)
{
    for (struct ob_aws_call **p = &s->calls; *p; p = &(*p)->next_in_session)
        if (*p == call) {
            *p = call->next_in_session;
            break;
        }
    call->next_in_session = NULL;
    if (!call->started)
        return;
    if (s->done_tail)
        s->done_tail->next_in_session = call;
    else
        s->done = call;
    s->done_tail = call;
}

static void call_enter(struct ob_aws_session *s, struct ob_aws_call *call, bool started)
{
    if (call->response)
        json_decref(call->response);
    call->response = NULL;
    call->state = CALL_WAITING;
    call->next_at_ms = 0;
    call->attempts = 0;
    call->retry_cost = 0;
    call->http_status = 0;
    call->result = OB_OK;
    call->started = started;
    ob_error_clear(&call->err);
    call->next_in_session = s->calls;
    s->calls = call;
}

/* Starts the calls that are due, sends and (unless send_only) receives
 * for up to wait ms, and settles what finished. */
static void session_step(struct ob_aws_session *s, int64_t wait, bool send_only)
{
    if (atomic_load(&s->canceled)) {
        while (s->calls) {
            struct ob_aws_call *call = s->calls;
            call_cancel(s, call);
            call_settled(s, call);
        }
        return;
    }
    int64_t now = ob_mono_ms();
    for (struct ob_aws_call *call = s->calls, *next; call; call = next) {
        next = call->next_in_session;
        if (call->state != CALL_WAITING)
            continue;
        if (call->next_at_ms > now) {
            if (call->next_at_ms - now < wait)
                wait = call->next_at_ms - now;
            continue;
        }
        if (s->active >= s->client->max_connections)
            continue;
        if (call_start(s, call, &call->err) != OB_OK) {
            call->result = call->err.code;
            call->state = CALL_DONE;
            call_settled(s, call);
            wait = 0;
            continue;
        }
        s->active++;
    }
    /* Sends what was just started, then waits for an answer, a retry's
     * time or a cancel. */
    if (send_only)
        ob_http_client_send(s->http);
    else
        ob_http_client_drive(s->http, wait > 0 ? (int)wait : 0);
    struct ob_http_exchange *ex;
    while ((ex = ob_http_client_next_done(s->http))) {
        struct ob_aws_call *call = ex->user;
        s->active--;
        call_finish_attempt(s, call);
        if (call->state == CALL_DONE)
            call_settled(s, call);
    }
}

void ob_aws_run(struct ob_aws_session *s, struct ob_aws_call *const *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        call_enter(s, calls[i], false);
    for (size_t i = 0; i < n; i++)
        while (calls[i]->state != CALL_DONE)
            session_step(s, 1000, false);
}

void ob_aws_start(struct ob_aws_session *s, struct ob_aws_call *call)
{
    call_enter(s, call, true);
}

void ob_aws_send(struct ob_aws_session *s)
{
    session_step(s, 0, true);
}

void ob_aws_poll(struct ob_aws_session *s, int timeout_ms)
{
    /* Bytes of an answer still coming (a GetRecords page) do not end the
     * wait: the caller would only look and wait again. */
    int64_t until = ob_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - ob_mono_ms();
        session_step(s, s->done || left < 0 ? 0 : left, false);
        if (s->done || left <= 0 || atomic_load(&s->canceled))
            return;
    }
}

/* Unlinks call from the done list, if it is there. */
static void done_remove(struct ob_aws_session *s, const struct ob_aws_call *call)
{
    struct ob_aws_call *prev = NULL;
    for (struct ob_aws_call *c = s->done; c; prev = c, c = c->next_in_session)
        if (c == call) {
            if (prev)
                prev->next_in_session = c->next_in_session;
            else
                s->done = c->next_in_session;
            if (s->done_tail == c)
                s->done_tail = prev;
            c->next_in_session = NULL;
            return;
        }
}

struct ob_aws_call *ob_aws_next_done(struct ob_aws_session *s, const void *owner)
{
    struct ob_aws_call *call = s->done;
    while (call && call->owner != owner)
        call = call->next_in_session;
    if (call)
        done_remove(s, call);
    return call;
}

void ob_aws_abandon(struct ob_aws_session *s, struct ob_aws_call *call)
{
    if (call->state == CALL_ACTIVE) {
        ob_http_client_abort(s->http, &call->exchange);
        s->active--;
    }
    call_unsign(call);
    call->state = CALL_DONE;
    call->started = false;
    call_settled(s, call);
    done_remove(s, call);
    call->next_in_session = NULL;
}

enum ob_err ob_aws_call_json(struct ob_aws_session *s, const struct ob_aws_service *service,
                             const struct ob_aws_endpoint *endpoint, const char *operation,
                             const json_t *request, json_t **response, struct ob_error *err)
{
    char *body = json_dumps(request, JSON_COMPACT);
    if (!body)
        return ob_error_set(err, OB_ERR_NOMEM, "%s: cannot serialize the request", operation);
    struct ob_aws_call call = {
        .service = service,
        .endpoint = endpoint,
        .operation = operation,
        .body = body,
        .body_len = strlen(body),
    };
    struct ob_aws_call *one = &call;
    ob_aws_run(s, &one, 1);
    enum ob_err rc = call.result;
    if (rc) {
        if (err)
            *err = call.err;
    } else if (response) {
        *response = call.response;
        call.response = NULL;
    }
    ob_aws_call_release(&call);
    free(body);
    return rc;
}
