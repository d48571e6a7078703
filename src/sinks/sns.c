/* sns sink: PublishBatch to a topic, the structured CloudEvent as the
 * message, the message's headers as String message attributes. SNS speaks
 * the AWS query protocol: a form posted, XML answered (aws/client.h's
 * query_protocol). A publish goes as calls of up to 10 entries of one
 * topic within the topic's size limit (ob_aws_sink_send); a FIFO topic
 * gets MessageGroupId = pk and MessageDeduplicationId = id (SPEC §4). */
#include "sinks/sns.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/codec.h"
#include "core/json_scan.h"
#include "core/xml_scan.h"
#include "sinks/aws_sink.h"
#include "sinks/common.h"

#define FIFO_ID_MAX 128
#define ATTRIBUTE_NAME_MAX 256

/* SNS's error names (botocore's sns model), for a whole call and for a
 * failed entry alike. */
static const struct ob_aws_error_name sns_errors[] = {
    { "Throttled", OB_ERR_THROTTLED, true },
    { "KMSThrottling", OB_ERR_THROTTLED, true },
    { "InternalError", OB_ERR_SERVICE, true },
    { "NotFound", OB_ERR_NOT_FOUND, false },
    { "InvalidParameter", OB_ERR_VALIDATION, false },
    { "ParameterValueInvalid", OB_ERR_VALIDATION, false },
    { "ValidationException", OB_ERR_VALIDATION, false },
    { "BatchRequestTooLong", OB_ERR_VALIDATION, false },
    { "BatchEntryIdsNotDistinct", OB_ERR_VALIDATION, false },
    { "EmptyBatchRequest", OB_ERR_VALIDATION, false },
    { "InvalidBatchEntryId", OB_ERR_VALIDATION, false },
    { "TooManyEntriesInBatchRequest", OB_ERR_VALIDATION, false },
    { "AuthorizationError", OB_ERR_ACCESS_DENIED, false },
    { "InvalidSecurity", OB_ERR_ACCESS_DENIED, false },
    { "KMSAccessDenied", OB_ERR_ACCESS_DENIED, false },
    { "KMSOptInRequired", OB_ERR_ACCESS_DENIED, false },
    { "KMSDisabled", OB_ERR_INVALID, false },
    { "KMSInvalidState", OB_ERR_INVALID, false },
    { "KMSNotFound", OB_ERR_INVALID, false },
};

const struct ob_aws_service ob_sns_service = {
    .signing_name = "sns",
    .target_prefix = NULL,
    .content_type = "application/x-www-form-urlencoded; charset=utf-8",
    .query_protocol = true,
    .errors = sns_errors,
    .n_errors = sizeof sns_errors / sizeof sns_errors[0],
};

void ob_sns_form_encode(struct ob_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    ob_buf_reserve(out, len);
    /* Runs that need no escaping are copied whole. */
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    for (; p < end; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~')
            continue;
        ob_buf_append(out, run, (size_t)(p - run));
        char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
        ob_buf_append(out, esc, sizeof esc);
        run = p + 1;
    }
    ob_buf_append(out, run, (size_t)(p - run));
}

/* Whether every byte of s[0..len) is in one of the ranges, written as
 * pairs of first and last ("az09"); no byte over 0x7f is. */
static bool all_of(const char *s, size_t len, const char *set_ranges)
{
    for (size_t i = 0; i < len; i++) {
        bool in = false;
        for (const char *r = set_ranges; r[0] && !in; r += 2)
            in = s[i] >= r[0] && s[i] <= r[1];
        if (!in)
            return false;
    }
    return true;
}

/* Letters, digits, '_' and '-', as character ranges. */
static const char topic_chars[] = "AZaz09__--";

bool ob_sns_topic_arn_ok(const char *s)
{
    /* arn : partition : sns : region : account : name */
    const char *f[6];
    size_t len[6], n = 0;
    for (const char *p = s;; p++) {
        f[n] = p;
        const char *colon = n < 5 ? strchr(p, ':') : NULL;
        len[n] = colon ? (size_t)(colon - p) : strlen(p);
        n++;
        if (!colon)
            break;
        p = colon;
    }
    if (n != 6 || len[0] != 3 || strncmp(f[0], "arn", 3) != 0 || len[1] == 0 ||
        !all_of(f[1], len[1], "az--") || len[2] != 3 || strncmp(f[2], "sns", 3) != 0 || len[3] == 0 ||
        !all_of(f[3], len[3], "az09--") || len[4] != 12 || !all_of(f[4], len[4], "09"))
        return false;
    size_t name = len[5];
    if (name > 256)
        return false;
    if (name > 5 && strcmp(f[5] + name - 5, ".fifo") == 0)
        name -= 5;
    return name > 0 && all_of(f[5], name, topic_chars);
}

bool ob_sns_topic_fifo(const char *arn)
{
    size_t n = strlen(arn);
    return n > 5 && strcmp(arn + n - 5, ".fifo") == 0;
}

void ob_sns_fifo_id(struct ob_buf *out, const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && n <= FIFO_ID_MAX && all_of(s, n, "!~")) {
        ob_buf_append(out, s, n);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_Digest(s, n, md, &md_len, EVP_sha256(), NULL))
        abort(); /* SHA-256 is always there: OpenSSL is out of memory */
    ob_hex_encode(md, md_len, hex);
    ob_buf_cat(out, "sha256-", hex, NULL);
}

/* Valid UTF-8 of XML 1.0 characters (what SNS carries in a message). */
static bool xml_text_ok(const char *s)
{
    size_t n = strlen(s);
    if (!ob_utf8_valid(s, n))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
        if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) /* U+FFFE, U+FFFF */
            return false;
    }
    return true;
}

bool ob_sns_attribute_ok(const char *name, const char *value)
{
    size_t n = strlen(name);
    if (n == 0 || n > ATTRIBUTE_NAME_MAX || !all_of(name, n, "AZaz09__--..") || name[0] == '.' ||
        name[n - 1] == '.' || strstr(name, "..") || strncasecmp(name, "AWS.", 4) == 0 ||
        strncasecmp(name, "Amazon.", 7) == 0)
        return false;
    return *value && xml_text_ok(value);
}

static const char attribute_type[] = "String";

void ob_sns_entry_build(struct ob_sns_entry *e, struct ob_delivery *d)
{
    memset(e, 0, sizeof *e);
    e->d = d;
    ob_delivery_structured(&e->body, d);
    ob_json_escape_noncharacters(&e->body);
    e->size = e->body.len;
    const struct ob_message *m = d->msg;
    for (size_t i = 0; i < m->n_headers && e->n_attrs < OB_SNS_MAX_ATTRIBUTES; i++) {
        const struct ob_header *h = &m->headers[i];
        if (!ob_sns_attribute_ok(h->name, h->value))
            continue;
        e->attrs[e->n_attrs++] = h;
        e->size += strlen(h->name) + strlen(attribute_type) + strlen(h->value);
    }
}

void ob_sns_entry_free(struct ob_sns_entry *e)
{
    ob_buf_free(&e->body);
    memset(e, 0, sizeof *e);
}

void ob_sns_request_start(struct ob_buf *form, const char *topic_arn)
{
    ob_buf_puts(form, "Action=PublishBatch&Version=2010-03-31&TopicArn=");
    ob_sns_form_encode(form, topic_arn, strlen(topic_arn));
}

/* "&PublishBatchRequestEntries.member.N.FIELD=" and value, form-encoded. */
static void put_field(struct ob_buf *form, size_t member, const char *field, const char *value, size_t len)
{
    ob_buf_puts(form, "&PublishBatchRequestEntries.member.");
    ob_buf_put_int(form, (int64_t)member);
    ob_buf_cat(form, ".", field, "=", NULL);
    ob_sns_form_encode(form, value, len);
}

static void put_string_field(struct ob_buf *form, size_t member, const char *field, const char *value)
{
    put_field(form, member, field, value, strlen(value));
}

void ob_sns_request_entry(struct ob_buf *form, size_t index, const struct ob_sns_entry *e, bool fifo)
{
    size_t member = index + 1;
    char id[24], field[64];
    snprintf(id, sizeof id, "%zu", index);
    put_string_field(form, member, "Id", id);
    put_field(form, member, "Message", e->body.data, e->body.len);
    if (fifo) {
        struct ob_buf v = { 0 };
        /* A poison dead letter may have no pk or sk: it groups with the
         * empty key, and its event id is the relay's stand-in for sk. */
        ob_sns_fifo_id(&v, e->d->msg->pk ? e->d->msg->pk : "");
        put_string_field(form, member, "MessageGroupId", ob_buf_cstr(&v));
        ob_buf_reset(&v);
        ob_sns_fifo_id(&v, e->d->ce->id);
        put_string_field(form, member, "MessageDeduplicationId", ob_buf_cstr(&v));
        ob_buf_free(&v);
    }
    for (size_t i = 0; i < e->n_attrs; i++) {
        snprintf(field, sizeof field, "MessageAttributes.entry.%zu.Name", i + 1);
        put_string_field(form, member, field, e->attrs[i]->name);
        snprintf(field, sizeof field, "MessageAttributes.entry.%zu.Value.DataType", i + 1);
        put_string_field(form, member, field, attribute_type);
        snprintf(field, sizeof field, "MessageAttributes.entry.%zu.Value.StringValue", i + 1);
        put_string_field(form, member, field, e->attrs[i]->value);
    }
}

/* The entry a member's Id names, or -1. */
static int member_entry(struct ob_xml_span member, struct ob_buf *scratch, size_t n)
{
    ob_buf_reset(scratch);
    if (!ob_xml_text(member, "Id", scratch))
        return -1;
    return (int)ob_aws_sink_entry_index(scratch->data, scratch->len, n);
}

/* Whether an entry's failure may pass on a retry: by its name when SNS's
 * model knows it, else by who SNS says was at fault. */
static bool entry_retriable(const char *code, const char *sender_fault)
{
    const struct ob_aws_error_name *known = ob_aws_sink_error_name(&ob_sns_service, code);
    return known ? known->retriable : strcmp(sender_fault, "false") == 0;
}

void ob_sns_answer(const char *xml, size_t len, struct ob_delivery *const *d, size_t n)
{
    bool answered[OB_SNS_BATCH_MAX] = { false };
    struct ob_xml_span doc = { xml ? xml : "", xml ? len : 0 }, list, member;
    struct ob_buf id = { 0 }, message_id = { 0 }, code = { 0 }, message = { 0 }, fault = { 0 };
    size_t pos = 0;
    if (ob_xml_next(doc, &pos, "Successful", &list)) {
        size_t at = 0;
        while (ob_xml_next(list, &at, "member", &member)) {
            int i = member_entry(member, &id, n);
            ob_buf_reset(&message_id);
            if (i >= 0 && ob_xml_text(member, "MessageId", &message_id) && message_id.len > 0)
                answered[i] = true;
        }
    }
    pos = 0;
    if (ob_xml_next(doc, &pos, "Failed", &list)) {
        size_t at = 0;
        while (ob_xml_next(list, &at, "member", &member)) {
            int i = member_entry(member, &id, n);
            if (i < 0)
                continue;
            ob_buf_reset(&code);
            ob_buf_reset(&message);
            ob_buf_reset(&fault);
            ob_xml_text(member, "Code", &code);
            ob_xml_text(member, "Message", &message);
            ob_xml_text(member, "SenderFault", &fault);
            ob_aws_sink_entry_failed(d[i], "PublishBatch", ob_buf_cstr(&code), ob_buf_cstr(&message),
                                     entry_retriable(ob_buf_cstr(&code), ob_buf_cstr(&fault)));
            answered[i] = true;
        }
    }
    for (size_t i = 0; i < n && i < OB_SNS_BATCH_MAX; i++)
        if (!answered[i])
            ob_delivery_set(d[i], OB_DELIVERY_RETRY, "PublishBatch: the answer does not say what became of this "
                                                     "message");
    ob_buf_free(&id);
    ob_buf_free(&message_id);
    ob_buf_free(&code);
    ob_buf_free(&message);
    ob_buf_free(&fault);
}

static void encode_call(const struct ob_aws_call_entries *c, struct ob_buf *form)
{
    bool fifo = ob_sns_topic_fifo(c->destination);
    ob_sns_request_start(form, c->destination);
    for (size_t i = 0; i < c->n; i++)
        ob_sns_request_entry(form, i, c->e[i]->own, fifo);
}

static void read_answer(const struct ob_aws_call *call, const struct ob_aws_call_entries *c)
{
    ob_sns_answer(call->rx.data, call->rx.len, c->d, c->n);
}

struct sns_sink {
    struct ob_aws_sink aws;
    char *topic_arn;     /* NULL: every route names its topic */
    /* PublishBatch: max_bytes is max_message_size, the topics' limit */
    struct ob_aws_batch_rules batch;
};

static void sns_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    const char *arn = ob_sink_opt_str(sink, "topic_arn");
    if (arn && *arn && !ob_sns_topic_arn_ok(arn))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "topic_arn"),
                            "'topic_arn' of %s is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME): '%s'",
                            ob_sink_check_owner(c), arn);
}

static void sns_destroy(void *state)
{
    struct sns_sink *s = state;
    if (!s)
        return;
    ob_aws_sink_fini(&s->aws);
    free(s->topic_arn);
    free(s);
}

static enum ob_err sns_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                              struct ob_error *err)
{
    struct sns_sink *s = ob_xcalloc(1, sizeof *s);
    enum ob_err rc = OB_OK;
    const char *arn = ob_sink_opt_str(cfg, "topic_arn");
    /* sns_check refused a bad one; a section built without the loader must not reach SNS either. */
    if (arn && *arn && !ob_sns_topic_arn_ok(arn)) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "topic_arn '%s' is not an SNS topic ARN", arn);
        goto out;
    }
    s->topic_arn = arn && *arn ? ob_xstrdup(arn) : NULL;
    s->batch = (struct ob_aws_batch_rules){
        .service = &ob_sns_service,
        .operation = "PublishBatch",
        .max_entries = OB_SNS_BATCH_MAX,
        .max_bytes = (size_t)ob_sink_opt_int(cfg, "max_message_size"),
        .encode = encode_call,
        .read_answer = read_answer,
    };
    rc = ob_aws_sink_init(&s->aws, cfg, ctx, "sns", err);
out:
    if (rc) {
        sns_destroy(s);
        s = NULL;
    }
    *state = s;
    return rc;
}

/* The topic of d, or NULL when it has none it can go to (d's result set). */
static const char *delivery_topic(const struct sns_sink *s, struct ob_delivery *d)
{
    const char *topic = d->destination && *d->destination ? d->destination : s->topic_arn;
    if (!topic) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "no topic: the route gives none and the sink has no topic_arn");
        return NULL;
    }
    if (!ob_sns_topic_arn_ok(topic)) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "'%s' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                        topic);
        return NULL;
    }
    return topic;
}

static void sns_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct sns_sink *s = state;
    struct ob_sns_entry *entries = ob_xcalloc(n, sizeof *entries);
    struct ob_aws_entry *e = ob_xcalloc(n, sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct ob_delivery *d = &batch[i];
        const char *topic = delivery_topic(s, d);
        if (!topic)
            continue;
        ob_sns_entry_build(&entries[i], d);
        if (entries[i].size > s->batch.max_bytes) {
            ob_delivery_set(d, OB_DELIVERY_REJECT, "%zu bytes (CloudEvent and message attributes) is over the "
                            "topic's limit of %zu (max_message_size)", entries[i].size, s->batch.max_bytes);
            d->too_large = true;
            continue;
        }
        e[k++] = (struct ob_aws_entry){.d = d, .destination = topic, .size = entries[i].size, .own = &entries[i]};
    }
    ob_aws_sink_send(&s->aws, &s->batch, e, k);
    for (size_t i = 0; i < n; i++)
        ob_sns_entry_free(&entries[i]);
    free(e);
    free(entries);
}

static const struct ob_config_key sns_keys[] = {
    {.path = "topic_arn", .type = OB_CT_STRING, .example = "arn:aws:sns:us-east-1:123456789012:orders.fifo",
     .def_doc = "none: every route gives its `topic`",
     .doc = "ARN of the topic messages go to unless their route's `topic` names another; a FIFO topic (`.fifo`) "
            "gets MessageGroupId = pk and MessageDeduplicationId = id."},
    OB_AWS_SINK_KEYS("SNS", "sns"),
    {.path = "max_message_size", .type = OB_CT_INT, .def = "262144", .min = 1024, .max = 1048576,
     .doc = "The topics' MaximumMessageSize in bytes (SNS's default 256 KiB; up to 1 MiB when the topic is set "
            "so): a larger message (CloudEvent and attributes) is dead-lettered at once as too_large."},
};

const struct ob_sink_ops ob_sns_sink_ops = {
    .schema = {.type = "sns", .doc = "Amazon SNS topic (PublishBatch), the structured CloudEvent as the message.",
               .keys = sns_keys, .n_keys = sizeof sns_keys / sizeof sns_keys[0], .check = sns_check},
    .create = sns_create,
    .publish = sns_publish,
    .destroy = sns_destroy,
};
