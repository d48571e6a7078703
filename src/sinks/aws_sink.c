/* See aws_sink.h: the part the AWS sinks share. */
#include "sinks/aws_sink.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "sinks/common.h"

const char *const ob_aws_sink_schemes[] = {"http://", "https://", NULL};

/* Attempts of one call: the relay retries the message after them, with
 * its own backoff and the sink-down logic, which a longer client retry
 * would only delay. */
#define SINK_CALL_ATTEMPTS 3

struct ob_aws_sink_pooled {
    struct ob_aws_session *session;
    struct ob_aws_sink_pooled *next;
};

enum ob_err ob_aws_sink_identity(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, char **region,
                                 struct ob_error *err)
{
    const char *own = ob_sink_opt_str(cfg, "region");
    *region = NULL;
    if (!ctx->credentials)
        return ob_error_set(err, OB_ERR_CONFIG, "no AWS credentials were given to the sink");
    if (own && *own)
        *region = ob_xstrdup(own);
    else if (ctx->region && *ctx->region)
        *region = ob_xstrdup(ctx->region);
    else
        return ob_error_set(err, OB_ERR_CONFIG, "no AWS region for the sink: set its region or aws.region");
    return OB_OK;
}

enum ob_err ob_aws_sink_init(struct ob_aws_sink *s, const struct ob_config_sink *cfg,
                             const struct ob_sink_context *ctx, const char *host, struct ob_error *err)
{
    memset(s, 0, sizeof *s);
    static const struct ob_config_aws none = { 0 };
    const struct ob_config_aws *aws = ctx->aws ? ctx->aws : &none;
    struct ob_buf url = { 0 };
    enum ob_err rc = ob_aws_sink_identity(cfg, ctx, &s->region, err);
    if (rc)
        goto out;
    const char *endpoint = ob_sink_opt_str(cfg, "endpoint");
    if (endpoint && *endpoint)
        ob_buf_puts(&url, endpoint);
    else
        ob_buf_cat(&url, "https://", host, ".", s->region, ".amazonaws.com/", NULL);
    rc = ob_aws_endpoint_parse(ob_buf_cstr(&url), &s->endpoint, err);
    if (rc)
        goto out;
    int64_t timeout = ob_sink_opt_duration_ms(cfg, "timeout");
    struct ob_aws_client_options o = {
        .region = s->region,
        .credentials = ctx->credentials,
        .max_attempts = SINK_CALL_ATTEMPTS,
        .retry_base_delay_ms = aws->retry_base_delay_ms > 0 ? aws->retry_base_delay_ms : 25,
        .retry_max_delay_ms = aws->retry_max_delay_ms > 0 ? aws->retry_max_delay_ms : 20000,
        .connect_timeout_ms = aws->connect_timeout_ms > 0 ? aws->connect_timeout_ms : 3000,
        .request_timeout_ms = timeout > 0 ? timeout : 10000,
        .max_connections = aws->max_connections > 0 ? aws->max_connections : 64,
        .tls_skip_verify = !ob_sink_opt_bool(cfg, "tls_verify"),
    };
    rc = ob_aws_client_create(&o, &s->client, err);
    if (rc)
        goto out;
    pthread_mutex_init(&s->mu, NULL);
out:
    ob_buf_free(&url);
    if (rc) {
        ob_aws_endpoint_free(&s->endpoint);
        free(s->region);
        memset(s, 0, sizeof *s);
    }
    return rc;
}

void ob_aws_sink_fini(struct ob_aws_sink *s)
{
    if (!s->client)
        return;
    while (s->idle) {
        struct ob_aws_sink_pooled *p = s->idle;
        s->idle = p->next;
        ob_aws_session_destroy(p->session);
        free(p);
    }
    ob_aws_client_destroy(s->client);
    ob_aws_endpoint_free(&s->endpoint);
    free(s->region);
    pthread_mutex_destroy(&s->mu);
    memset(s, 0, sizeof *s);
}

struct ob_aws_session *ob_aws_sink_session(struct ob_aws_sink *s)
{
    pthread_mutex_lock(&s->mu);
    struct ob_aws_sink_pooled *p = s->idle;
    if (p)
        s->idle = p->next;
    pthread_mutex_unlock(&s->mu);
    if (!p)
        return ob_aws_session_create(s->client);
    struct ob_aws_session *session = p->session;
    free(p);
    return session;
}

void ob_aws_sink_session_done(struct ob_aws_sink *s, struct ob_aws_session *session)
{
    if (!session)
        return;
    struct ob_aws_sink_pooled *p = ob_xcalloc(1, sizeof *p);
    p->session = session;
    pthread_mutex_lock(&s->mu);
    p->next = s->idle;
    s->idle = p;
    pthread_mutex_unlock(&s->mu);
}

void ob_aws_sink_call_failed(const struct ob_aws_call *call, struct ob_delivery *const *d, size_t n)
{
    /* Expired credentials (still, after the client's retries: the refresh
     * has not brought new ones yet) fail every message alike, as a sink
     * that cannot be reached does: it is down at once and its messages
     * wait without counting, even where another message went through
     * meanwhile (SPEC §6: an expired token is never a dead letter). */
    bool unreachable = (call->http_status == 0 && call->exchange.failure == OB_HTTP_CONNECT) ||
                       call->err.code == OB_ERR_CREDENTIALS;
    /* Credentials or rights the service refuses (wrong or rotated keys, a
     * clock off, a policy or key that does not allow it) are the
     * operator's to fix, not the message's: retried. Refused for every
     * message, the sink is down and its messages wait; refused for one
     * destination while others go, its attempts count and max_attempts
     * ends them. */
    bool refused_rights = call->err.code == OB_ERR_ACCESS_DENIED;
    enum ob_delivery_result result = call->err.retriable || refused_rights ? OB_DELIVERY_RETRY : OB_DELIVERY_REJECT;
    for (size_t i = 0; i < n; i++) {
        ob_delivery_set(d[i], result, "%s: %s", call->operation, call->err.msg);
        d[i]->unreachable = unreachable;
    }
}

void ob_aws_sink_no_session(struct ob_delivery *const *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ob_delivery_set(d[i], OB_DELIVERY_RETRY, "no connection pool could be made (out of descriptors?)");
}

long ob_aws_sink_entry_index(const char *id, size_t len, size_t n)
{
    if (!id || len == 0 || len > 19 || (id[0] == '0' && len > 1))
        return -1;
    size_t i = 0;
    for (size_t k = 0; k < len; k++) {
        if (id[k] < '0' || id[k] > '9')
            return -1;
        i = i * 10 + (size_t)(id[k] - '0');
    }
    return i < n ? (long)i : -1;
}

const struct ob_aws_error_name *ob_aws_sink_error_name(const struct ob_aws_service *service, const char *code)
{
    for (size_t i = 0; i < service->n_errors; i++)
        if (strcmp(service->errors[i].name, code) == 0)
            return &service->errors[i];
    return NULL;
}

void ob_aws_sink_entry_failed(struct ob_delivery *d, const char *operation, const char *code, const char *message,
                              bool retriable)
{
    ob_delivery_set(d, retriable ? OB_DELIVERY_RETRY : OB_DELIVERY_REJECT, "%s entry: %s: %s", operation,
                    code && *code ? code : "(no code)", message && *message ? message : "(no message)");
}

size_t ob_aws_sink_pack(const struct ob_aws_batch_rules *r, const struct ob_aws_entry *e, size_t n, size_t *call_of)
{
    struct open_call {
        const char *destination;
        size_t entries, bytes;
    } *calls = ob_xcalloc(n ? n : 1, sizeof *calls);
    size_t n_calls = 0;
    for (size_t i = 0; i < n; i++) {
        /* One past the destination's latest call (0: none yet). */
        size_t c = n_calls;
        while (c > 0 && strcmp(calls[c - 1].destination, e[i].destination) != 0)
            c--;
        size_t bytes = c > 0 ? calls[c - 1].bytes + e[i].size : 0;
        bool fits = c > 0 && calls[c - 1].entries < r->max_entries &&
                    (r->bytes_below ? bytes < r->max_bytes : bytes <= r->max_bytes);
        if (!fits) {
            calls[n_calls].destination = e[i].destination;
            c = ++n_calls;
        }
        calls[c - 1].entries++;
        calls[c - 1].bytes += e[i].size;
        call_of[i] = c - 1;
    }
    free(calls);
    return n_calls;
}

/* One call of a send and its entries. */
struct batch_call {
    struct ob_aws_call call;
    struct ob_buf body;
    struct ob_aws_call_entries entries;
    bool split;   /* refused as a whole for what may be one entry's fault */
};

/* Runs calls[0..n) concurrently on session and sets their deliveries'
 * results, but a call of several entries refused as invalid as a whole
 * is marked `split` instead. */
static void run_calls(struct ob_aws_sink *s, const struct ob_aws_batch_rules *r, struct ob_aws_session *session,
                      struct batch_call *calls, size_t n)
{
    struct ob_aws_call **run = ob_xcalloc(n, sizeof *run);
    for (size_t k = 0; k < n; k++) {
        struct batch_call *c = &calls[k];
        r->encode(&c->entries, &c->body);
        c->call = (struct ob_aws_call){
            .service = r->service,
            .endpoint = &s->endpoint,
            .operation = r->operation,
            .body = ob_buf_cstr(&c->body),
            .body_len = c->body.len,
        };
        run[k] = &c->call;
    }
    ob_aws_run(session, run, n);
    for (size_t k = 0; k < n; k++) {
        struct batch_call *c = &calls[k];
        if (c->call.result == OB_OK)
            r->read_answer(&c->call, &c->entries);
        else if (c->entries.n > 1 && c->call.err.code == OB_ERR_VALIDATION)
            c->split = true;
        else
            ob_aws_sink_call_failed(&c->call, c->entries.d, c->entries.n);
    }
    free(run);
}

static void calls_free(struct batch_call *calls, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ob_aws_call_release(&calls[k].call);
        ob_buf_free(&calls[k].body);
    }
    free(calls);
}

/* Each entry of the split calls of calls[0..n) again, in a call of its own. */
static void run_split(struct ob_aws_sink *s, const struct ob_aws_batch_rules *r, struct ob_aws_session *session,
                      const struct batch_call *calls, size_t n)
{
    size_t n_alone = 0;
    for (size_t k = 0; k < n; k++)
        n_alone += calls[k].split ? calls[k].entries.n : 0;
    if (n_alone == 0)
        return;
    struct batch_call *alone = ob_xcalloc(n_alone, sizeof *alone);
    size_t a = 0;
    for (size_t k = 0; k < n; k++) {
        const struct ob_aws_call_entries *c = &calls[k].entries;
        for (size_t i = 0; calls[k].split && i < c->n; i++, a++)
            alone[a].entries = (struct ob_aws_call_entries){ c->destination, c->e + i, c->d + i, 1 };
    }
    run_calls(s, r, session, alone, n_alone);
    calls_free(alone, n_alone);
}

void ob_aws_sink_send(struct ob_aws_sink *s, const struct ob_aws_batch_rules *r, const struct ob_aws_entry *e,
                      size_t n)
{
    if (n == 0)
        return;
    size_t *call_of = ob_xcalloc(n, sizeof *call_of);
    size_t n_calls = ob_aws_sink_pack(r, e, n, call_of);
    struct batch_call *calls = ob_xcalloc(n_calls, sizeof *calls);
    /* The calls' entries, call after call. */
    const struct ob_aws_entry **by_call = ob_xcalloc(n, sizeof *by_call);
    struct ob_delivery **d_by_call = ob_xcalloc(n, sizeof *d_by_call);
    size_t *start = ob_xcalloc(n_calls, sizeof *start);
    for (size_t i = 0; i < n; i++)
        calls[call_of[i]].entries.n++;
    for (size_t c = 1; c < n_calls; c++)
        start[c] = start[c - 1] + calls[c - 1].entries.n;
    for (size_t c = 0; c < n_calls; c++)
        calls[c].entries.n = 0;
    for (size_t i = 0; i < n; i++) {
        struct ob_aws_call_entries *c = &calls[call_of[i]].entries;
        size_t at = start[call_of[i]] + c->n++;
        by_call[at] = &e[i];
        d_by_call[at] = e[i].d;
    }
    for (size_t c = 0; c < n_calls; c++) {
        calls[c].entries.destination = by_call[start[c]]->destination;
        calls[c].entries.e = by_call + start[c];
        calls[c].entries.d = d_by_call + start[c];
    }
    struct ob_aws_session *session = ob_aws_sink_session(s);
    if (!session) {
        ob_aws_sink_no_session(d_by_call, n);
        goto out;
    }
    run_calls(s, r, session, calls, n_calls);
    run_split(s, r, session, calls, n_calls);
    ob_aws_sink_session_done(s, session);
out:
    calls_free(calls, n_calls);
    free(start);
    free(d_by_call);
    free(by_call);
    free(call_of);
}
