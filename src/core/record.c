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
#include "core/json_scan.h"

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

/* What every record carries, whatever its event: the part both decoders
 * share. Returns whether the record is an INSERT to decode further. */
static bool record_head(struct ob_record *out, const char *seq, int64_t approximate_ms, int64_t size_bytes,
                        const char *event)
{
    out->kind = OB_RECORD_MESSAGE;
    out->msg.sequence_number = ob_xstrdup(seq);
    out->msg.approximate_creation_ms = approximate_ms;
    out->size_bytes = size_bytes;
    if (event && strcmp(event, "INSERT") == 0)
        return true;
    out->kind = OB_RECORD_SKIP;
    if (event && strcmp(event, "MODIFY") == 0)
        out->skip_reason = "MODIFY";
    else if (event && strcmp(event, "REMOVE") == 0)
        out->skip_reason = "REMOVE";
    else
        out->skip_reason = "unknown event";
    return false;
}

static enum ob_err not_a_record(struct ob_error *err, bool has_ddb)
{
    return ob_error_set(err, OB_ERR_INVALID, "not a stream record: %s",
                        has_ddb ? "no dynamodb.SequenceNumber" : "no dynamodb object");
}

enum ob_err ob_record_decode(const json_t *record, struct ob_record *out, struct ob_error *err)
{
    const json_t *ddb = json_object_get(record, "dynamodb");
    const char *seq = json_string_value(json_object_get(ddb, "SequenceNumber"));
    if (!json_is_object(ddb) || !seq)
        return not_a_record(err, json_is_object(ddb));
    const json_t *size = json_object_get(ddb, "SizeBytes");
    if (!record_head(out, seq, seconds_to_ms(json_object_get(ddb, "ApproximateCreationDateTime")),
                     json_is_integer(size) ? json_integer_value(size) : 0,
                     json_string_value(json_object_get(record, "eventName"))))
        return OB_OK;

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

/* ---- GetRecords pages ----------------------------------------------------- */

/* A scanned string as a C string (owned), escapes decoded; NULL when it
 * does not decode (e.g. an escaped NUL). */
static char *span_dup(const struct ob_jspan *v)
{
    if (!v->escaped)
        return ob_xstrndup(v->s, v->len);
    json_t *j = json_loadb(v->s - 1, v->len + 2, JSON_DECODE_ANY, NULL);
    char *out = ob_xstrdup_or_null(json_string_value(j));
    json_decref(j);
    return out;
}

/* A scanned number as jansson reads it (integer or real); NULL if absent. */
static json_t *span_number(const struct ob_jspan *v)
{
    return v->s ? json_loadb(v->s, v->len, JSON_DECODE_ANY, NULL) : NULL;
}

/* What the fast path reads of one record: the event and dynamodb's
 * scalars; images are skipped. */
struct record_scan {
    struct ob_jspan event, seq, approximate, size;
    bool has_event, has_ddb, has_seq;
};

static bool scan_record(struct ob_jscan *s, struct record_scan *r)
{
    memset(r, 0, sizeof *r);
    struct ob_jspan key;
    if (!ob_jscan_object(s))
        return false;
    while (ob_jscan_key(s, &key)) {
        if (ob_jspan_is(&key, "eventName")) {
            r->has_event = ob_jscan_string(s, &r->event);
        } else if (ob_jspan_is(&key, "dynamodb") && !r->has_ddb) {
            struct ob_jscan peek = *s;
            if (!ob_jscan_object(&peek)) {
                ob_jscan_skip(s);
                continue;
            }
            *s = peek;
            r->has_ddb = true;
            while (ob_jscan_key(s, &key)) {
                if (ob_jspan_is(&key, "SequenceNumber"))
                    r->has_seq = ob_jscan_string(s, &r->seq);
                else if (ob_jspan_is(&key, "ApproximateCreationDateTime"))
                    ob_jscan_number(s, &r->approximate);
                else if (ob_jspan_is(&key, "SizeBytes"))
                    ob_jscan_number(s, &r->size);
                else
                    ob_jscan_skip(s);
            }
        } else {
            ob_jscan_skip(s);
        }
    }
    return !s->failed;
}

static void page_malformed(struct ob_records_page *p, const char *why)
{
    if (p->malformed++ == 0)
        snprintf(p->first_malformed, sizeof p->first_malformed, "%.255s", why);
}

/* One element of Records: the fast path for what is skipped, jansson for
 * INSERTs (so they keep every check of ob_record_decode). */
static void page_record(struct ob_records_page *p, const char *start, const char *end, const struct record_scan *r,
                        size_t *cap)
{
    if (p->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        p->records = ob_xrealloc(p->records, *cap * sizeof *p->records);
    }
    struct ob_record *out = &p->records[p->n];
    memset(out, 0, sizeof *out);
    struct ob_error err;
    char *event = r->has_event ? span_dup(&r->event) : NULL;
    if (event && strcmp(event, "INSERT") == 0) {
        json_t *rec = json_loadb(start, (size_t)(end - start), 0, NULL);
        if (ob_record_decode(rec, out, &err) == OB_OK)
            p->n++;
        else
            page_malformed(p, err.msg);
        json_decref(rec);
        goto out;
    }
    char *seq = r->has_seq ? span_dup(&r->seq) : NULL;
    if (!r->has_ddb || !seq) {
        not_a_record(&err, r->has_ddb);
        page_malformed(p, err.msg);
        free(seq);
        goto out;
    }
    json_t *approximate = span_number(&r->approximate), *size = span_number(&r->size);
    record_head(out, seq, seconds_to_ms(approximate), json_is_integer(size) ? json_integer_value(size) : 0, event);
    p->n++;
    json_decref(approximate);
    json_decref(size);
    free(seq);
out:
    free(event);
}

enum ob_err ob_records_page_decode(const char *json, size_t len, struct ob_records_page *out, struct ob_error *err)
{
    memset(out, 0, sizeof *out);
    struct ob_jscan s;
    struct ob_jspan key;
    size_t cap = 0;
    ob_jscan_init(&s, json, len);
    if (!ob_jscan_object(&s))
        goto bad;
    while (ob_jscan_key(&s, &key)) {
        if (ob_jspan_is(&key, "NextShardIterator") && !out->next_iterator) {
            struct ob_jspan v;
            if (ob_jscan_string(&s, &v))
                out->next_iterator = span_dup(&v);
        } else if (ob_jspan_is(&key, "Records")) {
            struct ob_jscan peek = s;
            if (!ob_jscan_array(&peek)) {
                ob_jscan_skip(&s);
                continue;
            }
            s = peek;
            while (ob_jscan_element(&s)) {
                const char *start = s.p;
                struct record_scan r;
                if (*start != '{') {
                    if (ob_jscan_skip(&s))
                        page_malformed(out, "not a stream record: not an object");
                    continue;
                }
                if (!scan_record(&s, &r))
                    break;
                page_record(out, start, s.p, &r, &cap);
            }
        } else {
            ob_jscan_skip(&s);
        }
    }
    if (ob_jscan_done(&s))
        return OB_OK;
bad:
    ob_records_page_free(out);
    return ob_error_set(err, OB_ERR_INVALID, "GetRecords: the answer is not a JSON object");
}

void ob_records_page_free(struct ob_records_page *p)
{
    for (size_t i = 0; i < p->n; i++)
        ob_record_free(&p->records[i]);
    free(p->records);
    free(p->next_iterator);
    memset(p, 0, sizeof *p);
}
