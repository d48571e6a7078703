/* sqs sink: SendMessageBatch in the AWS JSON 1.0 protocol. Each message is
 * its structured CloudEvent as the body, its headers as String message
 * attributes (as many as SQS takes); a FIFO queue gets MessageGroupId = pk
 * and MessageDeduplicationId = the message id. A publish groups its
 * messages by queue into calls of up to 10 within the batch size limit
 * (ob_aws_sink_send). A queue given by name is resolved once with
 * GetQueueUrl and kept. */
#include "sinks/sqs.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/codec.h"
#include "sinks/common.h"

#define QUEUE_NAME_MAX 80
#define ATTRIBUTE_NAME_MAX 256
#define ATTRIBUTE_TYPE "String"

static const struct ob_aws_error_name sqs_errors[] = {
    /* The JSON protocol's names, and the query protocol's where they differ. */
    {"QueueDoesNotExist", OB_ERR_NOT_FOUND, false},
    {"AWS.SimpleQueueService.NonExistentQueue", OB_ERR_NOT_FOUND, false},
    {"RequestThrottled", OB_ERR_THROTTLED, true},
    {"KmsThrottled", OB_ERR_THROTTLED, true},
    {"OverLimit", OB_ERR_THROTTLED, true},
    {"InvalidSecurity", OB_ERR_ACCESS_DENIED, false},
    {"KmsAccessDenied", OB_ERR_ACCESS_DENIED, false},
    {"KmsDisabled", OB_ERR_ACCESS_DENIED, false},
    {"KmsInvalidKeyUsage", OB_ERR_ACCESS_DENIED, false},
    {"KmsInvalidState", OB_ERR_ACCESS_DENIED, false},
    {"KmsNotFound", OB_ERR_ACCESS_DENIED, false},
    {"KmsOptInRequired", OB_ERR_ACCESS_DENIED, false},
    {"InvalidAddress", OB_ERR_VALIDATION, false},
    {"InvalidMessageContents", OB_ERR_VALIDATION, false},
    {"InvalidParameterValue", OB_ERR_VALIDATION, false},
    {"MissingParameter", OB_ERR_VALIDATION, false},
    {"UnsupportedOperation", OB_ERR_VALIDATION, false},
    {"BatchRequestTooLong", OB_ERR_VALIDATION, false},
    {"TooManyEntriesInBatchRequest", OB_ERR_VALIDATION, false},
    {"EmptyBatchRequest", OB_ERR_VALIDATION, false},
    {"BatchEntryIdsNotDistinct", OB_ERR_VALIDATION, false},
    {"InvalidBatchEntryId", OB_ERR_VALIDATION, false},
};

static const struct ob_aws_service sqs_service = {
    .signing_name = "sqs",
    .target_prefix = "AmazonSQS",
    .content_type = "application/x-amz-json-1.0",
    .errors = sqs_errors,
    .n_errors = sizeof sqs_errors / sizeof sqs_errors[0],
};

/* A queue name resolved by GetQueueUrl; kept for the sink's life, so
 * entries may borrow its url. */
struct sqs_queue_url {
    char *name, *url;
    struct sqs_queue_url *next;
};

struct sqs_sink {
    struct ob_aws_sink aws;
    char *queue;                 /* queue_url as configured */
    size_t max_message_size;
    pthread_mutex_t mu;          /* guards urls */
    struct sqs_queue_url *urls;
};

/* ---- pure parts (sqs.h) ---- */

bool ob_sqs_is_url(const char *queue)
{
    return strncmp(queue, "http://", 7) == 0 || strncmp(queue, "https://", 8) == 0;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* The queue name of a name or URL: its last path segment, length in *len. */
static const char *queue_name(const char *queue, size_t *len)
{
    const char *name = queue;
    if (ob_sqs_is_url(queue)) {
        const char *slash = strrchr(queue + (queue[4] == 's' ? 8 : 7), '/');
        name = slash ? slash + 1 : queue + strlen(queue);
    }
    *len = strlen(name);
    return name;
}

bool ob_sqs_queue_valid(const char *queue, const char **why)
{
    if (!*queue) {
        *why = "it is empty";
        return false;
    }
    if (ob_sqs_is_url(queue)) {
        for (const unsigned char *p = (const unsigned char *)queue; *p; p++)
            if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#') {
                *why = "a queue URL is printable ASCII without spaces, query or fragment";
                return false;
            }
    }
    size_t len;
    const char *name = queue_name(queue, &len);
    size_t base = ends_with(name, len, ".fifo") ? len - 5 : len;
    bool ok = base > 0 && len <= QUEUE_NAME_MAX;
    for (size_t i = 0; ok && i < base; i++)
        ok = name_char(name[i]);
    if (!ok)
        *why = ob_sqs_is_url(queue) ? "the URL's last path segment is not a queue name (1 to 80 of A-Z a-z 0-9 - _, "
                                      "optionally ending in .fifo)"
                                    : "a queue name is 1 to 80 of A-Z a-z 0-9 - _, optionally ending in .fifo; "
                                      "or give the queue URL";
    return ok;
}

bool ob_sqs_is_fifo(const char *queue)
{
    size_t len;
    const char *name = queue_name(queue, &len);
    return ends_with(name, len, ".fifo");
}

/* The code point of the UTF-8 sequence at *p, which moves past it; -1 on
 * a malformed sequence. */
static long utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    long cp;
    int more;
    if (s[0] < 0x80) {
        cp = s[0];
        more = 0;
    } else if ((s[0] & 0xe0) == 0xc0) {
        cp = s[0] & 0x1f;
        more = 1;
    } else if ((s[0] & 0xf0) == 0xe0) {
        cp = s[0] & 0x0f;
        more = 2;
    } else if ((s[0] & 0xf8) == 0xf0) {
        cp = s[0] & 0x07;
        more = 3;
    } else {
        return -1;
    }
    for (int i = 1; i <= more; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const long least[] = {0, 0x80, 0x800, 0x10000};
    if (cp < least[more])
        return -1; /* overlong */
    *p = s + 1 + more;
    return cp;
}

/* Text SQS accepts in a message: valid UTF-8 of #x9 #xA #xD #x20-#xD7FF
 * #xE000-#xFFFD #x10000-#x10FFFF. */
static bool sqs_text_ok(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        long c = utf8_next(&p);
        if (!(c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) || (c >= 0xe000 && c <= 0xfffd) ||
              (c >= 0x10000 && c <= 0x10ffff)))
            return false;
    }
    return true;
}

static bool attribute_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > ATTRIBUTE_NAME_MAX || name[0] == '.' || name[len - 1] == '.' || strstr(name, "..") ||
        strncasecmp(name, "AWS.", 4) == 0 || strncasecmp(name, "Amazon.", 7) == 0)
        return false;
    for (const char *c = name; *c; c++)
        if (!name_char(*c) && *c != '.')
            return false;
    return true;
}

size_t ob_sqs_attributes(const struct ob_message *m, const struct ob_header *out[OB_SQS_MAX_ATTRIBUTES])
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_headers && n < OB_SQS_MAX_ATTRIBUTES; i++) {
        const struct ob_header *h = &m->headers[i];
        if (attribute_name_ok(h->name) && h->value[0] && sqs_text_ok(h->value))
            out[n++] = h;
    }
    return n;
}

size_t ob_sqs_message_size(size_t body_len, const struct ob_header *const *attrs, size_t n)
{
    size_t size = body_len;
    for (size_t i = 0; i < n; i++)
        size += strlen(attrs[i]->name) + strlen(ATTRIBUTE_TYPE) + strlen(attrs[i]->value);
    return size;
}

static void md5_hex(EVP_MD_CTX *ctx, char hex[OB_SQS_MD5_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    ob_hex_encode(md, len, hex);
}

void ob_sqs_md5(const void *data, size_t len, char hex[OB_SQS_MD5_HEX])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort(); /* allocation failure */
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    EVP_DigestUpdate(ctx, data, len);
    md5_hex(ctx, hex);
    EVP_MD_CTX_free(ctx);
}

static void md5_length_prefixed(EVP_MD_CTX *ctx, const char *s)
{
    size_t len = strlen(s);
    unsigned char be[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                           (unsigned char)len};
    EVP_DigestUpdate(ctx, be, sizeof be);
    EVP_DigestUpdate(ctx, s, len);
}

static int by_attribute_name(const void *a, const void *b)
{
    return strcmp((*(const struct ob_header *const *)a)->name, (*(const struct ob_header *const *)b)->name);
}

void ob_sqs_md5_attributes(const struct ob_header *const *attrs, size_t n, char hex[OB_SQS_MD5_HEX])
{
    const struct ob_header *sorted[OB_SQS_MAX_ATTRIBUTES];
    if (n > OB_SQS_MAX_ATTRIBUTES)
        n = OB_SQS_MAX_ATTRIBUTES;
    memcpy(sorted, attrs, n * sizeof *attrs);
    qsort(sorted, n, sizeof *sorted, by_attribute_name);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort(); /* allocation failure */
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    static const unsigned char string_transport = 1;
    for (size_t i = 0; i < n; i++) {
        md5_length_prefixed(ctx, sorted[i]->name);
        md5_length_prefixed(ctx, ATTRIBUTE_TYPE);
        EVP_DigestUpdate(ctx, &string_transport, 1);
        md5_length_prefixed(ctx, sorted[i]->value);
    }
    md5_hex(ctx, hex);
    EVP_MD_CTX_free(ctx);
}

void ob_sqs_fifo_id(const char *value, char out[OB_SQS_FIFO_ID_MAX + 1])
{
    size_t len = strlen(value);
    bool fits = len > 0 && len <= OB_SQS_FIFO_ID_MAX;
    for (const unsigned char *c = (const unsigned char *)value; fits && *c; c++)
        fits = *c > 0x20 && *c < 0x7f;
    if (fits) {
        memcpy(out, value, len + 1);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(value, len, md, &md_len, EVP_sha256(), NULL))
        abort(); /* allocation failure */
    ob_hex_encode(md, md_len, out);
}

bool ob_sqs_entry_prepare(struct ob_sqs_entry *e, struct ob_delivery *d, const char *queue,
                          size_t max_message_size)
{
    e->d = d;
    e->queue = queue;
    e->fifo = ob_sqs_is_fifo(queue);
    ob_delivery_structured(&e->body, d);
    ob_json_escape_noncharacters(&e->body);
    e->n_attrs = ob_sqs_attributes(d->msg, e->attrs);
    e->size = ob_sqs_message_size(e->body.len, e->attrs, e->n_attrs);
    if (e->size <= max_message_size)
        return true;
    ob_delivery_set(d, OB_DELIVERY_REJECT, "message is %zu bytes with its attributes; the queue takes at most %zu "
                    "(max_message_size)", e->size, max_message_size);
    d->too_large = true;
    return false;
}

void ob_sqs_entry_free(struct ob_sqs_entry *e)
{
    ob_buf_free(&e->body);
}

/* Strings that are valid UTF-8 already: the structured CloudEvent is
 * jansson's own output, attributes passed sqs_text_ok, queue URLs and
 * FIFO ids are ASCII. */
static void set_text(json_t *obj, const char *key, const char *text, size_t len)
{
    json_object_set_new(obj, key, json_stringn_nocheck(text, len));
}

void ob_sqs_encode_batch(struct ob_buf *out, const struct ob_sqs_entry *const *e, size_t n)
{
    json_t *req = json_object(), *entries = json_array();
    set_text(req, "QueueUrl", e[0]->queue_url, strlen(e[0]->queue_url));
    for (size_t i = 0; i < n; i++) {
        json_t *entry = json_object();
        char id[24];
        snprintf(id, sizeof id, "%zu", i);
        set_text(entry, "Id", id, strlen(id));
        set_text(entry, "MessageBody", ob_buf_cstr(&e[i]->body), e[i]->body.len);
        if (e[i]->n_attrs) {
            json_t *attrs = json_object();
            for (size_t a = 0; a < e[i]->n_attrs; a++) {
                json_t *value = json_object();
                set_text(value, "DataType", ATTRIBUTE_TYPE, strlen(ATTRIBUTE_TYPE));
                set_text(value, "StringValue", e[i]->attrs[a]->value, strlen(e[i]->attrs[a]->value));
                json_object_set_new(attrs, e[i]->attrs[a]->name, value);
            }
            json_object_set_new(entry, "MessageAttributes", attrs);
        }
        if (e[i]->fifo) {
            char fifo_id[OB_SQS_FIFO_ID_MAX + 1];
            /* A poison dead letter may have no pk: it groups with the empty key. */
            ob_sqs_fifo_id(e[i]->d->msg->pk ? e[i]->d->msg->pk : "", fifo_id);
            set_text(entry, "MessageGroupId", fifo_id, strlen(fifo_id));
            ob_sqs_fifo_id(e[i]->d->ce->id, fifo_id);
            set_text(entry, "MessageDeduplicationId", fifo_id, strlen(fifo_id));
        }
        json_array_append_new(entries, entry);
    }
    json_object_set_new(req, "Entries", entries);
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text)
        abort(); /* allocation failure */
    ob_buf_puts(out, text);
    free(text);
    json_decref(req);
}

/* The entry an answer's "Id" names, or NULL. */
static const struct ob_sqs_entry *answered_entry(const json_t *item, const struct ob_sqs_entry *const *e, size_t n)
{
    const json_t *id = json_object_get(item, "Id");
    long i = ob_aws_sink_entry_index(json_string_value(id), json_string_length(id), n);
    return i >= 0 ? e[i] : NULL;
}

/* Whether SQS's digest (possibly absent) is the one computed here. */
static bool md5_matches(const json_t *item, const char *key, const char *computed)
{
    const char *theirs = json_string_value(json_object_get(item, key));
    return theirs && strcasecmp(theirs, computed) == 0;
}

/* Entry codes that are not the message's fault whatever SenderFault says. */
static bool entry_code_retriable(const char *code)
{
    static const char *const codes[] = {"RequestThrottled", "KmsThrottled", "ThrottlingException", "Throttling",
                                        "InternalError", "InternalFailure", "ServiceUnavailable", NULL};
    for (size_t i = 0; code && codes[i]; i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

void ob_sqs_apply_answer(const json_t *answer, const struct ob_sqs_entry *const *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ob_delivery_set(e[i]->d, OB_DELIVERY_RETRY, "SendMessageBatch: the answer has no result for this message");
    size_t k;
    const json_t *item;
    json_array_foreach(json_object_get(answer, "Successful"), k, item) {
        const struct ob_sqs_entry *x = answered_entry(item, e, n);
        if (!x)
            continue;
        char body_md5[OB_SQS_MD5_HEX], attrs_md5[OB_SQS_MD5_HEX];
        ob_sqs_md5(x->body.data, x->body.len, body_md5);
        if (!md5_matches(item, "MD5OfMessageBody", body_md5)) {
            ob_delivery_set(x->d, OB_DELIVERY_RETRY, "SendMessageBatch: MD5OfMessageBody is not the body's (%s): "
                            "the message was damaged on the way", body_md5);
            continue;
        }
        if (x->n_attrs) {
            ob_sqs_md5_attributes(x->attrs, x->n_attrs, attrs_md5);
            if (!md5_matches(item, "MD5OfMessageAttributes", attrs_md5)) {
                ob_delivery_set(x->d, OB_DELIVERY_RETRY, "SendMessageBatch: MD5OfMessageAttributes is not the "
                                "attributes' (%s): the message was damaged on the way", attrs_md5);
                continue;
            }
        }
        x->d->result = OB_DELIVERY_ACK;
        x->d->error[0] = '\0';
    }
    json_array_foreach(json_object_get(answer, "Failed"), k, item) {
        const struct ob_sqs_entry *x = answered_entry(item, e, n);
        if (!x)
            continue;
        const char *code = json_string_value(json_object_get(item, "Code"));
        bool sender_fault = json_is_true(json_object_get(item, "SenderFault"));
        ob_aws_sink_entry_failed(x->d, "SendMessageBatch", code,
                                 json_string_value(json_object_get(item, "Message")),
                                 !sender_fault || entry_code_retriable(code));
    }
}

/* ---- the sink ---- */

static void sqs_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    const char *queue = ob_sink_opt_str(sink, "queue_url"), *why = NULL;
    if (queue && !ob_sqs_queue_valid(queue, &why))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "queue_url"), "'queue_url' of %s: %s",
                            ob_sink_check_owner(c), why);
}

static void sink_free(struct sqs_sink *s)
{
    ob_aws_sink_fini(&s->aws);
    while (s->urls) {
        struct sqs_queue_url *u = s->urls;
        s->urls = u->next;
        free(u->name);
        free(u->url);
        free(u);
    }
    pthread_mutex_destroy(&s->mu);
    free(s->queue);
    free(s);
}

static enum ob_err sqs_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                              struct ob_error *err)
{
    *state = NULL;
    const char *queue = ob_sink_opt_str(cfg, "queue_url"), *why = NULL;
    /* The loader's check refused a bad one; a section built without the
     * loader must not start either. */
    if (!queue || !ob_sqs_queue_valid(queue, &why))
        return ob_error_set(err, OB_ERR_CONFIG, "queue_url: %s", queue ? why : "none given");
    struct sqs_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->queue = ob_xstrdup(queue);
    s->max_message_size = (size_t)ob_sink_opt_int(cfg, "max_message_size");
    enum ob_err rc = ob_aws_sink_init(&s->aws, cfg, ctx, "sqs", err);
    if (rc) {
        sink_free(s);
        return rc;
    }
    *state = s;
    return OB_OK;
}

static const char *url_cached(struct sqs_sink *s, const char *name)
{
    const char *url = NULL;
    pthread_mutex_lock(&s->mu);
    for (const struct sqs_queue_url *u = s->urls; u && !url; u = u->next)
        if (strcmp(u->name, name) == 0)
            url = u->url;
    pthread_mutex_unlock(&s->mu);
    return url;
}

/* Keeps name's url (another thread may have kept it first: that one
 * stays); returns the kept one. */
static const char *url_keep(struct sqs_sink *s, const char *name, const char *url)
{
    const char *kept = NULL;
    pthread_mutex_lock(&s->mu);
    for (const struct sqs_queue_url *u = s->urls; u && !kept; u = u->next)
        if (strcmp(u->name, name) == 0)
            kept = u->url;
    if (!kept) {
        struct sqs_queue_url *u = ob_xcalloc(1, sizeof *u);
        u->name = ob_xstrdup(name);
        u->url = ob_xstrdup(url);
        u->next = s->urls;
        s->urls = u;
        kept = u->url;
    }
    pthread_mutex_unlock(&s->mu);
    return kept;
}

/* A GetQueueUrl call of a publish. */
struct url_call {
    struct ob_aws_call call;
    struct ob_buf body;
    const char *name;
};

/* The deliveries of the live entries whose queue is name. */
static size_t entries_named(struct ob_sqs_entry *const *live, size_t n, const char *name, struct ob_delivery **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!live[i]->queue_url && strcmp(live[i]->queue, name) == 0)
            out[k++] = live[i]->d;
    return k;
}

/* Whether url (an answer's QueueUrl, possibly NULL) is a queue URL whose
 * queue is name: it is kept for the sink's life, and every message to
 * name goes there. */
static bool url_of_queue(const char *url, const char *name)
{
    const char *why;
    size_t len;
    if (!url || !ob_sqs_is_url(url) || !ob_sqs_queue_valid(url, &why))
        return false;
    const char *named = queue_name(url, &len);
    return len == strlen(name) && memcmp(named, name, len) == 0;
}

/* Sets the queue URL of the live entries of calls[0..n)'s names from
 * their answers; the others get their result. */
static void read_urls(struct sqs_sink *s, const struct url_call *calls, size_t n_calls,
                      struct ob_sqs_entry *const *live, size_t n)
{
    struct ob_delivery **ds = ob_xcalloc(n, sizeof *ds);
    for (size_t c = 0; c < n_calls; c++) {
        const char *url = json_string_value(json_object_get(calls[c].call.response, "QueueUrl"));
        size_t k = entries_named(live, n, calls[c].name, ds);
        if (calls[c].call.result != OB_OK) {
            ob_aws_sink_call_failed(&calls[c].call, ds, k);
            continue;
        }
        if (!url_of_queue(url, calls[c].name)) {
            for (size_t i = 0; i < k; i++)
                ob_delivery_set(ds[i], OB_DELIVERY_RETRY, "GetQueueUrl: the answer's QueueUrl '%.200s' is not a URL "
                                "of queue '%s'", url ? url : "", calls[c].name);
            continue;
        }
        url = url_keep(s, calls[c].name, url);
        for (size_t i = 0; i < n; i++)
            if (!live[i]->queue_url && strcmp(live[i]->queue, calls[c].name) == 0)
                live[i]->queue_url = url;
    }
    free(ds);
}

/* Gives every entry of live[0..n) its queue URL: its own, a kept one, or
 * one GetQueueUrl answers now (the names asked concurrently). Entries
 * whose name cannot be resolved get their result and keep queue_url NULL. */
static void resolve_urls(struct sqs_sink *s, struct ob_sqs_entry *const *live, size_t n)
{
    struct url_call *calls = ob_xcalloc(n ? n : 1, sizeof *calls);
    struct ob_aws_call **run = ob_xcalloc(n ? n : 1, sizeof *run);
    struct ob_aws_session *session = NULL;
    size_t n_calls = 0;
    for (size_t i = 0; i < n; i++) {
        struct ob_sqs_entry *e = live[i];
        e->queue_url = ob_sqs_is_url(e->queue) ? e->queue : url_cached(s, e->queue);
        bool asked = false;
        for (size_t c = 0; !e->queue_url && c < n_calls && !asked; c++)
            asked = strcmp(calls[c].name, e->queue) == 0;
        if (e->queue_url || asked)
            continue;
        struct url_call *c = &calls[n_calls];
        c->name = e->queue;
        json_t *req = json_pack("{s:s}", "QueueName", e->queue);
        char *text = json_dumps(req, JSON_COMPACT);
        ob_buf_puts(&c->body, text);
        free(text);
        json_decref(req);
        c->call = (struct ob_aws_call){
            .service = &sqs_service,
            .endpoint = &s->aws.endpoint,
            .operation = "GetQueueUrl",
            .body = ob_buf_cstr(&c->body),
            .body_len = c->body.len,
        };
        run[n_calls++] = &c->call;
    }
    if (n_calls == 0)
        goto out;
    session = ob_aws_sink_session(&s->aws);
    if (!session) {
        for (size_t i = 0; i < n; i++)
            if (!live[i]->queue_url)
                ob_aws_sink_no_session(&live[i]->d, 1);
        goto out;
    }
    ob_aws_run(session, run, n_calls);
    read_urls(s, calls, n_calls, live, n);
out:
    ob_aws_sink_session_done(&s->aws, session);
    for (size_t c = 0; c < n_calls; c++) {
        ob_aws_call_release(&calls[c].call);
        ob_buf_free(&calls[c].body);
    }
    free(run);
    free(calls);
}

static void encode_call(const struct ob_aws_call_entries *c, struct ob_buf *body)
{
    const struct ob_sqs_entry *e[OB_SQS_MAX_ENTRIES];
    for (size_t i = 0; i < c->n; i++)
        e[i] = c->e[i]->own;
    ob_sqs_encode_batch(body, e, c->n);
}

static void read_answer(const struct ob_aws_call *call, const struct ob_aws_call_entries *c)
{
    const struct ob_sqs_entry *e[OB_SQS_MAX_ENTRIES];
    for (size_t i = 0; i < c->n; i++)
        e[i] = c->e[i]->own;
    ob_sqs_apply_answer(call->response, e, c->n);
}

const struct ob_aws_batch_rules ob_sqs_batch = {
    .service = &sqs_service,
    .operation = "SendMessageBatch",
    .max_entries = OB_SQS_MAX_ENTRIES,
    .max_bytes = OB_SQS_MAX_BYTES,
    .encode = encode_call,
    .read_answer = read_answer,
};

static void sqs_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct sqs_sink *s = state;
    struct ob_sqs_entry *entries = ob_xcalloc(n, sizeof *entries);
    struct ob_sqs_entry **live = ob_xcalloc(n, sizeof *live);
    struct ob_aws_entry *ready = ob_xcalloc(n, sizeof *ready);
    size_t n_live = 0, n_ready = 0;
    for (size_t i = 0; i < n; i++) {
        struct ob_delivery *d = &batch[i];
        const char *queue = d->destination ? d->destination : s->queue, *why = NULL;
        if (!ob_sqs_queue_valid(queue, &why))
            ob_delivery_set(d, OB_DELIVERY_REJECT, "queue '%.200s' is not a queue URL or name: %s", queue, why);
        else if (ob_sqs_entry_prepare(&entries[i], d, queue, s->max_message_size))
            live[n_live++] = &entries[i];
    }
    resolve_urls(s, live, n_live);
    for (size_t i = 0; i < n_live; i++)
        if (live[i]->queue_url)
            ready[n_ready++] = (struct ob_aws_entry){.d = live[i]->d, .destination = live[i]->queue_url,
                                                     .size = live[i]->size, .own = live[i]};
    ob_aws_sink_send(&s->aws, &ob_sqs_batch, ready, n_ready);
    for (size_t i = 0; i < n; i++)
        ob_sqs_entry_free(&entries[i]);
    free(ready);
    free(live);
    free(entries);
}

static void sqs_destroy(void *state)
{
    sink_free(state);
}

static const struct ob_config_key sqs_keys[] = {
    {.path = "queue_url", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED,
     .example = "https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo",
     .doc = "Queue URL, or queue name (resolved once with `GetQueueUrl`); a name ending in `.fifo` is a FIFO "
            "queue. A route's `topic` overrides it."},
    OB_AWS_SINK_KEYS("SQS", "sqs"),
    {.path = "max_message_size", .type = OB_CT_INT, .def = "1048576", .min = 1024, .max = OB_SQS_MAX_BYTES,
     .doc = "Largest message in bytes (body and attributes): the queue's `MaximumMessageSize`. A larger one "
            "is dead-lettered at once (`too_large`)."},
};

const struct ob_sink_ops ob_sqs_sink_ops = {
    .schema = {.type = "sqs", .doc = "Amazon SQS (SendMessageBatch), the CloudEvent as a structured body.",
               .keys = sqs_keys, .n_keys = sizeof sqs_keys / sizeof sqs_keys[0], .check = sqs_check},
    .create = sqs_create,
    .publish = sqs_publish,
    .destroy = sqs_destroy,
};
