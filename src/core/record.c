/* The stream-record decoder (SPEC §2, §3). Its input is whatever a stream
 * or a fuzzer hands it, so every JSON value is type-checked before use. */
#include "core/record.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/codec.h"

void ob_message_free(struct ob_message *m)
{
    free(m->pk);
    free(m->sk);
    free(m->message_type);
    free(m->payload);
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
    }
    free(m->headers);
    free(m->aggregate_id);
    free(m->aggregate_type);
    free(m->correlation_id);
    free(m->causation_id);
    free(m->created_at);
    free(m->sequence_number);
    memset(m, 0, sizeof *m);
}

const char *ob_message_header(const struct ob_message *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return NULL;
}

void ob_record_free(struct ob_record *r)
{
    ob_message_free(&r->msg);
    memset(r, 0, sizeof *r);
}

int ob_seq_compare(const char *a, const char *b)
{
    while (*a == '0')
        a++;
    while (*b == '0')
        b++;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

/* Only the first reason is kept: it is the one an operator fixes first. */
__attribute__((format(printf, 2, 3))) static void poison(struct ob_record *r, const char *fmt, ...)
{
    if (r->kind == OB_RECORD_POISON)
        return;
    r->kind = OB_RECORD_POISON;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->poison_reason, sizeof r->poison_reason, fmt, ap);
    va_end(ap);
}

/* The type tag of a DynamoDB attribute value ({"S": "x"} → "S"), or NULL
 * when av is not one. */
static const char *attr_type(const json_t *av)
{
    if (!json_is_object(av) || json_object_size(av) != 1)
        return NULL;
    return json_object_iter_key(json_object_iter((json_t *)av));
}

/* A {"NULL": true} attribute is how some SDKs write an absent optional
 * value, so it reads as absent rather than as the wrong type. */
static const json_t *image_attr(const json_t *image, const char *name)
{
    const json_t *av = json_object_get(image, name);
    const char *type = attr_type(av);
    if (type && strcmp(type, "NULL") == 0)
        return NULL;
    return av;
}

/* The value inside image[name] when it is a well-formed attribute of
 * type want ("S", "N" or "BOOL"); NULL when absent, NULL and poison when
 * it is anything else. */
static const json_t *attr_value(struct ob_record *r, const json_t *image, const char *name, const char *want)
{
    const json_t *av = image_attr(image, name);
    if (!av)
        return NULL;
    const char *type = attr_type(av);
    if (!type) {
        poison(r, "attribute %s is not a DynamoDB attribute value", name);
        return NULL;
    }
    if (strcmp(type, want) != 0) {
        const char *noun = strcmp(want, "S") == 0 ? "a string" : strcmp(want, "N") == 0 ? "a number" : "a boolean";
        poison(r, "attribute %s is not %s (%.16s)", name, noun, type);
        return NULL;
    }
    const json_t *v = json_object_get(av, type);
    /* N values travel as decimal strings. */
    bool ok = strcmp(want, "BOOL") == 0 ? json_is_boolean(v) : json_is_string(v);
    if (!ok) {
        poison(r, "attribute %s has a malformed %s value", name, type);
        return NULL;
    }
    return v;
}

static const char *attr_string(struct ob_record *r, const json_t *image, const char *name)
{
    return json_string_value(attr_value(r, image, name, "S"));
}

static void decode_payload(struct ob_record *r, const json_t *image)
{
    if (!image_attr(image, "payload")) {
        poison(r, "payload is missing");
        return;
    }
    const char *text = attr_string(r, image, "payload");
    if (!text)
        return;
    struct ob_buf bytes = {0};
    if (!ob_base64_decode(&bytes, text, strlen(text))) {
        poison(r, "payload is not valid base64");
        ob_buf_free(&bytes);
        return;
    }
    r->msg.payload_len = bytes.len;
    /* Decoding "" reserves without writing, leaving the terminator unset. */
    r->msg.payload = bytes.len ? (unsigned char *)ob_buf_steal(&bytes) : ob_xcalloc(1, 1);
    ob_buf_free(&bytes);
}

static void decode_headers(struct ob_record *r, const json_t *image)
{
    const char *text = attr_string(r, image, "headers");
    if (!text)
        return;
    json_t *obj = json_loads(text, 0, NULL);
    const char *name;
    json_t *value;
    bool ok = json_is_object(obj);
    if (ok) {
        json_object_foreach(obj, name, value) {
            if (!json_is_string(value))
                ok = false;
        }
    }
    if (!ok) {
        poison(r, "headers is not a JSON object of strings");
        goto out;
    }
    size_t n = json_object_size(obj);
    r->msg.headers = n ? ob_xcalloc(n, sizeof *r->msg.headers) : NULL;
    json_object_foreach(obj, name, value) {
        struct ob_header *h = &r->msg.headers[r->msg.n_headers++];
        h->name = ob_xstrdup(name);
        h->value = ob_xstrdup(json_string_value(value));
    }
out:
    json_decref(obj);
}

/* DynamoDB numbers are decimal strings that may carry a fraction or an
 * exponent; a retry count is whole, and absurd values are poison. */
static bool parse_count(const char *s, int64_t *out)
{
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || *end || !isfinite(d) || d < 0 || d > 1e15 || d != floor(d))
        return false;
    *out = (int64_t)d;
    return true;
}

/* pk and sk from an image or from the record's Keys. */
static void decode_keys(struct ob_record *r, const json_t *image)
{
    const char *pk = json_string_value(json_object_get(image_attr(image, "pk"), "S"));
    const char *sk = json_string_value(json_object_get(image_attr(image, "sk"), "S"));
    r->msg.pk = ob_xstrdup_or_null(pk);
    r->msg.sk = ob_xstrdup_or_null(sk);
    if (!pk)
        poison(r, "pk is missing or not a string");
    if (!sk)
        poison(r, "sk is missing or not a string");
}

static void decode_item(struct ob_record *r, const json_t *image)
{
    struct ob_message *m = &r->msg;
    decode_keys(r, image);

    decode_payload(r, image);
    decode_headers(r, image);

    static const struct {
        const char *name;
        size_t offset;
    } strings[] = {
        {"messageType", offsetof(struct ob_message, message_type)},
        {"aggregateId", offsetof(struct ob_message, aggregate_id)},
        {"aggregateType", offsetof(struct ob_message, aggregate_type)},
        {"correlationId", offsetof(struct ob_message, correlation_id)},
        {"causationId", offsetof(struct ob_message, causation_id)},
        {"createdAt", offsetof(struct ob_message, created_at)},
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        char **field = (char **)(void *)((char *)m + strings[i].offset);
        *field = ob_xstrdup_or_null(attr_string(r, image, strings[i].name));
    }
    /* Checked for type only: outboxd writes them, the relay does not read them. */
    attr_string(r, image, "publishedAt");
    attr_string(r, image, "lastError");
    attr_value(r, image, "ttl", "N");

    if (m->created_at && !ob_iso8601_parse(m->created_at, &m->created_at_ms))
        m->created_at_ms = 0;
    const char *retry = json_string_value(attr_value(r, image, "retryCount", "N"));
    if (retry && !parse_count(retry, &m->retry_count))
        poison(r, "attribute retryCount is not a whole number of at least 0");
}

/* Epoch seconds, possibly fractional, to milliseconds; 0 when absent or
 * out of any plausible range. */
static int64_t seconds_to_ms(const json_t *v)
{
    if (!json_is_number(v))
        return 0;
    double s = json_number_value(v);
    if (!(s >= 0 && s < 1e12))
        return 0;
    return (int64_t)llround(s * 1000.0);
}

enum ob_err ob_record_decode(const json_t *record, struct ob_record *out, struct ob_error *err)
{
    const json_t *ddb = json_object_get(record, "dynamodb");
    const char *seq = json_string_value(json_object_get(ddb, "SequenceNumber"));
    if (!json_is_object(ddb) || !seq)
        return ob_error_set(err, OB_ERR_INVALID, "not a stream record: %s",
                            json_is_object(ddb) ? "no dynamodb.SequenceNumber" : "no dynamodb object");

    out->kind = OB_RECORD_MESSAGE;
    out->msg.sequence_number = ob_xstrdup(seq);
    out->msg.approximate_creation_ms = seconds_to_ms(json_object_get(ddb, "ApproximateCreationDateTime"));
    const json_t *size = json_object_get(ddb, "SizeBytes");
    out->size_bytes = json_is_integer(size) ? json_integer_value(size) : 0;

    const char *event = json_string_value(json_object_get(record, "eventName"));
    if (!event || strcmp(event, "INSERT") != 0) {
        out->kind = OB_RECORD_SKIP;
        if (event && strcmp(event, "MODIFY") == 0)
            out->skip_reason = "MODIFY";
        else if (event && strcmp(event, "REMOVE") == 0)
            out->skip_reason = "REMOVE";
        else
            out->skip_reason = "unknown event";
        return OB_OK;
    }

    const json_t *image = json_object_get(ddb, "NewImage");
    if (!json_is_object(image)) {
        poison(out, "NewImage is missing");
        /* The keys still let the item be marked as dead-lettered. */
        decode_keys(out, json_object_get(ddb, "Keys"));
        return OB_OK;
    }
    /* A published item is skipped whatever else is wrong with it: there is
     * nothing left to deliver. */
    if (json_is_true(attr_value(out, image, "isPublished", "BOOL"))) {
        out->kind = OB_RECORD_SKIP;
        out->skip_reason = "published";
        return OB_OK;
    }
    decode_item(out, image);
    return OB_OK;
}
