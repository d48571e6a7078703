/* eventbridge sink: PutEvents (AWS JSON 1.1), each message one entry on
 * its event bus: Source = the CloudEvents source, DetailType = the type,
 * Detail = the structured CloudEvent, Time = createdAt (SPEC §4). A batch
 * goes out as calls of up to 10 entries of one bus under the service's
 * entry-size rule (ob_aws_sink_send); each entry's answer is its
 * message's result. */
#include "sinks/eventbridge.h"

#include <stdlib.h>
#include <string.h>

#include "sinks/common.h"

#define PUT_EVENTS "PutEvents"

/* What PutEvents may answer as a whole besides what any AWS service does
 * (the client knows those: access, signature, validation, 5xx). */
static const struct ob_aws_error_name eventbridge_errors[] = {
    { "ThrottlingException", OB_ERR_THROTTLED, true },
    { "InternalException", OB_ERR_SERVICE, true },
    { "ResourceNotFoundException", OB_ERR_NOT_FOUND, false },
    { "OperationDisabledException", OB_ERR_VALIDATION, false },
    /* A quota on rules or buses here, not a rate: waiting does not help. */
    { "LimitExceededException", OB_ERR_VALIDATION, false },
};

static const struct ob_aws_service eventbridge_service = {
    .signing_name = "events",
    .target_prefix = "AWSEvents",
    .content_type = "application/x-amz-json-1.1",
    .errors = eventbridge_errors,
    .n_errors = sizeof eventbridge_errors / sizeof eventbridge_errors[0],
};

struct eventbridge_sink {
    struct ob_aws_sink aws;
    char *bus;   /* event_bus_name: a message without a destination goes there */
};

#define BUS_NAME_CHARS "._-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define WORD_CHARS "_-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define LOWER "abcdefghijklmnopqrstuvwxyz"

/* s past `lit`, or NULL when s does not start with it. */
static const char *skip_literal(const char *s, const char *lit)
{
    size_t n = strlen(lit);
    return s && strncmp(s, lit, n) == 0 ? s + n : NULL;
}

/* s past a run of 1 or more of set (exactly `exact` when not 0), or NULL. */
static const char *skip_span(const char *s, const char *set, size_t exact)
{
    size_t n = s ? strspn(s, set) : 0;
    return n && (!exact || n == exact) ? s + n : NULL;
}

/* The name part of an event bus ARN as the service's pattern has it,
 * arn:aws[\w-]*:events:[a-z]{2}-[a-z]+-[\w-]+:[0-9]{12}:event-bus/, or NULL. */
static const char *arn_bus_name(const char *arn)
{
    const char *p = skip_literal(arn, "arn:aws");
    p = p ? p + strspn(p, WORD_CHARS) : NULL;
    p = skip_literal(p, ":events:");
    p = skip_literal(skip_span(p, LOWER, 2), "-");
    p = skip_literal(skip_span(p, LOWER, 0), "-");
    p = skip_literal(skip_span(p, WORD_CHARS, 0), ":");
    p = skip_literal(skip_span(p, "0123456789", 12), ":event-bus/");
    return p;
}

bool ob_eventbridge_bus_valid(const char *bus)
{
    size_t len = strlen(bus);
    if (len == 0 || len > OB_EB_MAX_BUS)
        return false;
    const char *name = strncmp(bus, "arn:", 4) == 0 ? arn_bus_name(bus) : bus;
    return name && *name && name[strspn(name, BUS_NAME_CHARS)] == '\0';
}

void ob_eventbridge_detail_type(struct ob_buf *out, const char *type)
{
    if (!*type) {
        ob_buf_puts(out, OB_EB_UNTYPED);
        return;
    }
    const unsigned char *p = (const unsigned char *)type;
    size_t units = 0;
    while (*p) {
        size_t len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1;
        size_t u = len == 4 ? 2 : 1; /* beyond the BMP: a surrogate pair */
        if (units + u > OB_EB_MAX_DETAIL_TYPE)
            break;
        size_t k = 1;
        while (k < len && p[k])
            k++;
        p += k;
        units += u;
    }
    ob_buf_append(out, type, (size_t)(p - (const unsigned char *)type));
}

size_t ob_eventbridge_entry_size(bool has_time, size_t source_len, size_t detail_type_len, size_t detail_len)
{
    return (has_time ? OB_EB_TIME_BYTES : 0) + source_len + detail_type_len + detail_len;
}

json_t *ob_eventbridge_entry(struct ob_delivery *d, const char *default_bus, size_t *size)
{
    const struct ob_ce *ce = d->ce;
    const struct ob_message *m = d->msg;
    const char *bus = d->destination && *d->destination ? d->destination : default_bus;
    struct ob_buf detail_type = { 0 }, detail = { 0 };
    json_t *entry = NULL;
    *size = 0;
    if (!ob_eventbridge_bus_valid(bus)) {
        ob_delivery_set(d, OB_DELIVERY_REJECT,
                        "event bus '%.200s' is neither a bus name (at most 1600 of [.-_A-Za-z0-9]) nor an event bus ARN",
                        bus);
        goto out;
    }
    if (strncmp(ce->source, "aws.", 4) == 0) {
        ob_delivery_set(d, OB_DELIVERY_REJECT,
                        "source '%.200s' starts with 'aws.', which EventBridge keeps for AWS services "
                        "(see cloudevents.source)", ce->source);
        goto out;
    }
    ob_eventbridge_detail_type(&detail_type, ce->type);
    ob_delivery_structured(&detail, d);
    /* Past OB_EB_MAX_TIME_MS the body's 14 digits would round Time (to the
     * year 10000 at the end of 9999, which the SDKs' model refuses for the
     * whole call): the service stamps it, Detail keeps the CloudEvent's. */
    bool has_time = m->created_at && m->created_at_ms > 0 && m->created_at_ms < OB_EB_MAX_TIME_MS;
    *size = ob_eventbridge_entry_size(has_time, strlen(ce->source), detail_type.len, detail.len);
    if (*size >= OB_EB_MAX_BYTES) {
        ob_delivery_set(d, OB_DELIVERY_REJECT,
                        "PutEvents entry of %zu bytes (Time, Source, DetailType and Detail as EventBridge counts them) "
                        "is not under the service's limit of %u bytes", *size, OB_EB_MAX_BYTES);
        d->too_large = true;
        goto out;
    }
    entry = json_pack("{s:s, s:s, s:s%, s:s%}", "EventBusName", bus, "Source", ce->source, "DetailType",
                      detail_type.data, detail_type.len, "Detail", detail.data, detail.len);
    if (!entry) {
        ob_delivery_set(d, OB_DELIVERY_REJECT, "the message's source or type is not UTF-8 text");
        goto out;
    }
    if (has_time)
        json_object_set_new(entry, "Time", json_real((double)m->created_at_ms / 1000.0));
out:
    ob_buf_free(&detail_type);
    ob_buf_free(&detail);
    return entry;
}

char *ob_eventbridge_body(json_t *entries)
{
    json_t *request = json_pack("{s:O}", "Entries", entries);
    /* 14 digits: a Time's milliseconds, below OB_EB_MAX_TIME_MS. */
    char *body = request ? json_dumps(request, JSON_COMPACT | JSON_REAL_PRECISION(14)) : NULL;
    json_decref(request);
    return body;
}

/* Entry error codes the service documents as worth sending again; the
 * others (InvalidArgument, MalformedDetail, NotAuthorizedForSourceException,
 * AccessDeniedException, ...) are about the message or its rights. */
static bool entry_error_retriable(const char *code)
{
    return strcmp(code, "ThrottlingException") == 0 || strcmp(code, "InternalFailure") == 0;
}

void ob_eventbridge_read_answer(const json_t *answer, struct ob_delivery *const *d, size_t n)
{
    const json_t *entries = json_object_get(answer, "Entries");
    /* The service answers one entry for each sent, in their order; an
     * answer of another count cannot say whose an EventId is. */
    if (!json_is_array(entries) || json_array_size(entries) != n) {
        for (size_t i = 0; i < n; i++)
            ob_delivery_set(d[i], OB_DELIVERY_RETRY, "PutEvents answer has %zu entries for %zu sent",
                            json_array_size(entries), n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(entries, i);
        const char *id = json_string_value(json_object_get(e, "EventId"));
        const char *code = json_string_value(json_object_get(e, "ErrorCode"));
        if (code && *code)
            ob_aws_sink_entry_failed(d[i], PUT_EVENTS, code, json_string_value(json_object_get(e, "ErrorMessage")),
                                     entry_error_retriable(code));
        else if (!id || !*id)
            ob_delivery_set(d[i], OB_DELIVERY_RETRY, "PutEvents answer has neither an EventId nor an ErrorCode for "
                            "this entry");
    }
}

/* The rules between the keys, for `check` as for `run`. */
static void eventbridge_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    const char *bus = ob_sink_opt_str(sink, "event_bus_name");
    if (bus && !ob_eventbridge_bus_valid(bus))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "event_bus_name"),
                            "'event_bus_name' of %s must be an event bus name (at most 1600 of [.-_A-Za-z0-9]) or an "
                            "event bus ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)", ob_sink_check_owner(c));
}

static void sink_free(struct eventbridge_sink *s)
{
    ob_aws_sink_fini(&s->aws);
    free(s->bus);
    free(s);
}

static enum ob_err eventbridge_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx,
                                      void **state, struct ob_error *err)
{
    struct eventbridge_sink *s = ob_xcalloc(1, sizeof *s);
    const char *bus = ob_sink_opt_str(cfg, "event_bus_name");
    enum ob_err rc = OB_OK;
    /* The loader's check refused a bad one; a section built without the
     * loader must not send every message to a bus that cannot be. */
    if (!bus || !ob_eventbridge_bus_valid(bus)) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "event_bus_name must be an event bus name or ARN");
        goto out;
    }
    s->bus = ob_xstrdup(bus);
    rc = ob_aws_sink_init(&s->aws, cfg, ctx, "events", err);
out:
    if (rc) {
        sink_free(s);
        s = NULL;
    }
    *state = s;
    return rc;
}

static void encode_call(const struct ob_aws_call_entries *c, struct ob_buf *body)
{
    json_t *entries = json_array();
    for (size_t i = 0; i < c->n; i++)
        json_array_append(entries, c->e[i]->own);
    char *text = ob_eventbridge_body(entries);
    if (!text)
        abort(); /* out of memory */
    ob_buf_puts(body, text);
    free(text);
    json_decref(entries);
}

static void read_answer(const struct ob_aws_call *call, const struct ob_aws_call_entries *c)
{
    ob_eventbridge_read_answer(call->response, c->d, c->n);
}

const struct ob_aws_batch_rules ob_eventbridge_batch = {
    .service = &eventbridge_service,
    .operation = PUT_EVENTS,
    .max_entries = OB_EB_MAX_ENTRIES,
    .max_bytes = OB_EB_MAX_BYTES,
    .bytes_below = true,
    .encode = encode_call,
    .read_answer = read_answer,
};

static void eventbridge_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct eventbridge_sink *s = state;
    struct ob_aws_entry *e = ob_xcalloc(n, sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t size;
        json_t *entry = ob_eventbridge_entry(&batch[i], s->bus, &size);
        if (entry)
            e[k++] = (struct ob_aws_entry){.d = &batch[i],
                                           .destination = json_string_value(json_object_get(entry, "EventBusName")),
                                           .size = size,
                                           .own = entry};
    }
    ob_aws_sink_send(&s->aws, &ob_eventbridge_batch, e, k);
    for (size_t i = 0; i < k; i++)
        json_decref(e[i].own);
    free(e);
}

static void eventbridge_destroy(void *state)
{
    sink_free(state);
}

static const struct ob_config_key eventbridge_keys[] = {
    {.path = "event_bus_name", .type = OB_CT_STRING, .def = "default",
     .example = "arn:aws:events:us-east-1:123456789012:event-bus/orders",
     .doc = "Event bus name or ARN the events go to; a route's `topic` overrides it."},
    OB_AWS_SINK_KEYS("EventBridge", "events"),
};

const struct ob_sink_ops ob_eventbridge_sink_ops = {
    .schema = {.type = "eventbridge", .doc = "Amazon EventBridge PutEvents: the structured CloudEvent as Detail.",
               .keys = eventbridge_keys, .n_keys = sizeof eventbridge_keys / sizeof eventbridge_keys[0],
               .check = eventbridge_check},
    .create = eventbridge_create,
    .publish = eventbridge_publish,
    .destroy = eventbridge_destroy,
};
