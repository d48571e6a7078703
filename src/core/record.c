/* The stream-record decoder (SPEC §2, §3). Its input is whatever a stream
 * or a fuzzer hands it, so every JSON value is type-checked before use. */
#include "core/record.h"

#include <errno.h>
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
    if (m->block) {
        free(m->block);
        free(m->sequence_number);
        memset(m, 0, sizeof *m);
        return;
    }
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
    free(r->poison_reason);
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
    struct ob_buf reason = { 0 };
    va_list ap;
    va_start(ap, fmt);
    ob_buf_vprintf(&reason, fmt, ap);
    va_end(ap);
    r->poison_reason = ob_buf_steal(&reason);
}


/* ---- item images ------------------------------------------------------------ */

/* One attribute of an item image, {"name": {"T": value}}, as spans into
 * the record's text. */
struct attr {
    struct ob_jspan name;
    struct ob_jspan type;   /* the tag; .s NULL when the value is not a one-member object */
    enum { VALUE_STRING, VALUE_BOOL, VALUE_OTHER } kind;
    struct ob_jspan value;  /* VALUE_STRING: the contents */
    bool truth;             /* VALUE_BOOL */
};

/* An image's attributes; outbox items have about a dozen, so they
 * usually fit the inline array. */
struct image {
    struct attr *v;
    size_t n, cap;
    struct attr inline_attrs[16];
};

static void image_init(struct image *im)
{
    im->v = im->inline_attrs;
    im->n = 0;
    im->cap = sizeof im->inline_attrs / sizeof im->inline_attrs[0];
}

static void image_free(struct image *im)
{
    if (im->v != im->inline_attrs)
        free(im->v);
    image_init(im);
}

static struct attr *image_push(struct image *im)
{
    if (im->n == im->cap) {
        im->cap *= 2;
        if (im->v == im->inline_attrs) {
            im->v = ob_xcalloc(im->cap, sizeof *im->v);
            memcpy(im->v, im->inline_attrs, sizeof im->inline_attrs);
        } else {
            im->v = ob_xrealloc(im->v, im->cap * sizeof *im->v);
        }
    }
    struct attr *a = &im->v[im->n++];
    memset(a, 0, sizeof *a);
    return a;
}

/* Indexes the image object at s, which ends after it; false when it is
 * not a well-formed object. */
static bool image_scan_at(struct image *im, struct ob_jscan *s)
{
    struct ob_jspan key;
    if (!ob_jscan_object(s))
        return false;
    while (ob_jscan_key(s, &key)) {
        struct attr *a = image_push(im);
        a->name = key;
        if (!ob_jscan_try_object(s))
            continue;
        if (!ob_jscan_key(s, &a->type))
            continue;
        struct ob_jscan v = *s;
        if (ob_jscan_string(&v, &a->value))
            a->kind = VALUE_STRING;
        else if (v = *s, ob_jscan_bool(&v, &a->truth))
            a->kind = VALUE_BOOL;
        else
            a->kind = VALUE_OTHER;
        *s = v;
        if (ob_jscan_key(s, &key)) {
            a->type.s = NULL; /* more than one member */
            do
                ob_jscan_skip(s);
            while (ob_jscan_key(s, &key));
        }
    }
    return !s->failed;
}

/* The same for the image that is all of text. */
static bool image_scan(struct image *im, const struct ob_jspan *text)
{
    struct ob_jscan s;
    ob_jscan_init(&s, text->s, text->len);
    return image_scan_at(im, &s) && ob_jscan_done(&s);
}

/* Later duplicates win, as in a JSON object. */
static const struct attr *image_find(const struct image *im, const char *name)
{
    for (size_t i = im->n; i-- > 0;)
        if (ob_jspan_is(&im->v[i].name, name))
            return &im->v[i];
    return NULL;
}

/* A {"NULL": true} attribute is how some SDKs write an absent optional
 * value, so it reads as absent rather than as the wrong type. */
static const struct attr *image_attr(const struct image *im, const char *name)
{
    const struct attr *a = image_find(im, name);
    if (a && a->type.s && ob_jspan_is(&a->type, "NULL"))
        return NULL;
    return a;
}

/* ---- the message's block ---------------------------------------------------- */

/* A decoded message's strings, its payload and its headers go into one
 * block (ob_message.block), sized once from the image: a decoded string
 * is never longer than its span, base64's bytes are three quarters of
 * its text, and the headers are measured first (struct headers_text). */
struct block {
    char *base;
    size_t used, cap;
};

/* headers_room: what the headers need (headers_text_open). */
static void block_open(struct ob_record *r, const struct image *im, size_t headers_room, struct block *b)
{
    size_t cap = 16 + headers_room;
    for (size_t i = 0; i < im->n; i++) {
        const struct attr *a = &im->v[i];
        if (a->kind != VALUE_STRING || ob_jspan_is(&a->name, "headers"))
            continue;
        cap += ob_jspan_is(&a->name, "payload") ? a->value.len / 4 * 3 + 1 : a->value.len + 1;
    }
    b->base = ob_xmalloc(cap);
    b->used = 0;
    b->cap = cap;
    r->msg.block = b->base;
}

/* n bytes of the block (aligned for a pointer when asked), or NULL when
 * the bound was wrong, which decoding then treats as bad text. */
static void *block_take(struct block *b, size_t n, bool align)
{
    size_t at = align ? (b->used + _Alignof(struct ob_header) - 1) & ~(_Alignof(struct ob_header) - 1) : b->used;
    if (at > b->cap || b->cap - at < n)
        return NULL;
    b->used = at + n;
    return b->base + at;
}

/* The decoded text of a string span, in the block; NULL when it is not
 * valid text. */
static char *block_string(struct block *b, const struct ob_jspan *v)
{
    char *d;
    if (!v->escaped) {
        if (!ob_utf8_valid(v->s, v->len) || !(d = block_take(b, v->len + 1, false)))
            return NULL;
        memcpy(d, v->s, v->len);
        d[v->len] = '\0';
        return d;
    }
    char *text = ob_jspan_dup(v);
    size_t n = text ? strlen(text) : 0;
    d = text ? block_take(b, n + 1, false) : NULL;
    if (d)
        memcpy(d, text, n + 1);
    free(text);
    return d;
}

/* image[name] when it is a well-formed attribute of type want ("S", "N"
 * or "BOOL"); NULL when absent, NULL and poison when it is anything else. */
static const struct attr *attr_value(struct ob_record *r, const struct image *im, const char *name, const char *want)
{
    const struct attr *a = image_attr(im, name);
    if (!a)
        return NULL;
    if (!a->type.s) {
        poison(r, "attribute %s is not a DynamoDB attribute value", name);
        return NULL;
    }
    if (!ob_jspan_is(&a->type, want)) {
        const char *noun = strcmp(want, "S") == 0 ? "a string" : strcmp(want, "N") == 0 ? "a number" : "a boolean";
        char *type = ob_jspan_dup(&a->type);
        poison(r, "attribute %s is not %s (%.16s)", name, noun, type ? type : "?");
        free(type);
        return NULL;
    }
    /* N values travel as decimal strings. */
    if (a->kind != (strcmp(want, "BOOL") == 0 ? VALUE_BOOL : VALUE_STRING)) {
        poison(r, "attribute %s has a malformed %s value", name, want);
        return NULL;
    }
    return a;
}

/* image[name], in the block, when it is a string attribute. */
static char *attr_string(struct ob_record *r, const struct image *im, struct block *b, const char *name)
{
    const struct attr *a = attr_value(r, im, name, "S");
    if (!a)
        return NULL;
    char *v = block_string(b, &a->value);
    if (!v)
        poison(r, "attribute %s is not valid text", name);
    return v;
}

/* A payload that is missing or bad is poison and left empty (""). */
static void decode_payload(struct ob_record *r, const struct image *im, struct block *b)
{
    unsigned char *bytes = NULL;
    size_t n = 0;
    const struct attr *a = NULL;
    if (!image_attr(im, "payload"))
        poison(r, "payload is missing");
    else
        a = attr_value(r, im, "payload", "S");
    if (a) {
        /* An escaped payload is rare: unescaped first, it is never longer. */
        char *text = a->value.escaped ? ob_jspan_dup(&a->value) : NULL;
        const char *s = a->value.escaped ? text : a->value.s;
        size_t len = a->value.escaped ? (text ? strlen(text) : 0) : a->value.len;
        bytes = s && len % 4 == 0 ? block_take(b, len / 4 * 3 + 1, false) : NULL;
        if (!bytes || !ob_base64_decode_to(bytes, s, len, &n)) {
            poison(r, "payload is not valid base64");
            bytes = NULL;
            n = 0;
        }
        free(text);
    }
    if (!bytes && (bytes = block_take(b, 1, false)))
        bytes[0] = '\0';
    r->msg.payload = bytes;
    r->msg.payload_len = n;
}

/* The headers attribute's text (a JSON object of strings inside a
 * string), read before the block is made so that it can be sized: the
 * room its names, values and array take. */
struct headers_text {
    const char *text;   /* NULL: no headers string, or not valid text */
    size_t len;
    char *owned;        /* text, when it had to be unescaped */
    size_t members;     /* of the object, as far as it is well-formed */
    size_t room;
};

static void headers_text_open(const struct image *im, struct headers_text *h)
{
    memset(h, 0, sizeof *h);
    const struct attr *a = image_attr(im, "headers");
    if (!a || !a->type.s || !ob_jspan_is(&a->type, "S") || a->kind != VALUE_STRING)
        return;
    if (a->value.escaped) {
        h->text = h->owned = ob_jspan_dup(&a->value);
        h->len = h->owned ? strlen(h->owned) : 0;
    } else if (ob_utf8_valid(a->value.s, a->value.len)) {
        h->text = a->value.s;
        h->len = a->value.len;
    }
    if (!h->text)
        return;
    /* Every string of the object, decoded no longer than its span, and a
     * slot of the array for every member, aligned. */
    struct ob_jscan s;
    struct ob_jspan key, value;
    ob_jscan_init(&s, h->text, h->len);
    bool ok = ob_jscan_object(&s);
    while (ok && ob_jscan_key(&s, &key) && (ok = ob_jscan_string(&s, &value))) {
        h->room += key.len + value.len + 2;
        h->members++;
    }
    h->room += (h->members + 1) * sizeof(struct ob_header);
}

static void headers_text_close(struct headers_text *h)
{
    free(h->owned);
}

/* Adds a header (the array has room); a repeated name takes the new
 * value in the old place, as a JSON object does. */
static void add_header(struct ob_message *m, char *name, char *value)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcmp(m->headers[i].name, name) == 0) {
            m->headers[i].value = value;
            return;
        }
    m->headers[m->n_headers].name = name;
    m->headers[m->n_headers++].value = value;
}

/* headers is a string attribute holding a JSON object of strings. */
static void decode_headers(struct ob_record *r, const struct image *im, const struct headers_text *h,
                           struct block *b)
{
    if (!attr_value(r, im, "headers", "S"))
        return;
    if (!h->text) {
        poison(r, "attribute headers is not valid text");
        return;
    }
    struct ob_jscan s;
    struct ob_jspan key, value;
    ob_jscan_init(&s, h->text, h->len);
    r->msg.headers = block_take(b, h->members * sizeof *r->msg.headers, true);
    bool ok = r->msg.headers && ob_jscan_object(&s);
    while (ok && ob_jscan_key(&s, &key)) {
        char *name = block_string(b, &key), *v = NULL;
        ok = name && ob_jscan_string(&s, &value) && (v = block_string(b, &value)) && r->msg.n_headers < h->members;
        if (ok)
            add_header(&r->msg, name, v);
    }
    if (!ok || !ob_jscan_done(&s)) {
        poison(r, "headers is not a JSON object of strings");
        r->msg.headers = NULL;
        r->msg.n_headers = 0;
    }
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

/* A span of 1 to max decimal digits and nothing else (an escaped span's
 * backslash is no digit), read without a copy; max ≤ 18 cannot overflow. */
static bool span_digits(const struct ob_jspan *v, size_t max, int64_t *out)
{
    if (v->len == 0 || v->len > max)
        return false;
    int64_t n = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->s[i] < '0' || v->s[i] > '9')
            return false;
        n = n * 10 + (v->s[i] - '0');
    }
    *out = n;
    return true;
}

/* A count as parse_count reads it; plain digits, nearly every count,
 * without a copy. */
static bool span_count(const struct ob_jspan *v, int64_t *out)
{
    if (span_digits(v, 15, out))
        return true;
    char *text = ob_jspan_dup(v);
    bool ok = text && parse_count(text, out);
    free(text);
    return ok;
}

/* pk and sk from an image or from the record's Keys, in the block. */
static void decode_keys(struct ob_record *r, const struct image *im, struct block *b)
{
    const struct attr *pk = image_attr(im, "pk"), *sk = image_attr(im, "sk");
    if (pk && pk->type.s && ob_jspan_is(&pk->type, "S") && pk->kind == VALUE_STRING)
        r->msg.pk = block_string(b, &pk->value);
    if (sk && sk->type.s && ob_jspan_is(&sk->type, "S") && sk->kind == VALUE_STRING)
        r->msg.sk = block_string(b, &sk->value);
    if (!r->msg.pk)
        poison(r, "pk is missing or not a string");
    if (!r->msg.sk)
        poison(r, "sk is missing or not a string");
}

static void decode_item(struct ob_record *r, const struct image *im)
{
    struct ob_message *m = &r->msg;
    struct block b;
    struct headers_text headers;
    headers_text_open(im, &headers);
    block_open(r, im, headers.room, &b);
    decode_keys(r, im, &b);

    decode_payload(r, im, &b);
    decode_headers(r, im, &headers, &b);
    headers_text_close(&headers);

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
        *field = attr_string(r, im, &b, strings[i].name);
    }
    /* Checked for type only: outboxd writes them, the relay does not read them. */
    attr_value(r, im, "publishedAt", "S");
    attr_value(r, im, "lastError", "S");
    attr_value(r, im, "ttl", "N");

    if (m->created_at && !ob_iso8601_parse(m->created_at, &m->created_at_ms))
        m->created_at_ms = 0;
    const struct attr *retry = attr_value(r, im, "retryCount", "N");
    if (retry && !span_count(&retry->value, &m->retry_count))
        poison(r, "attribute retryCount is not a whole number of at least 0");
}

/* ---- records ---------------------------------------------------------------- */

/* Epoch seconds, possibly fractional, to milliseconds; 0 when absent or
 * out of any plausible range. */
static int64_t seconds_to_ms(const struct ob_jspan *v)
{
    if (!v->s)
        return 0;
    /* What DynamoDB writes, whole seconds or milliseconds, is read without
     * strtod; other forms (more digits, an exponent) take strtod. */
    const char *p = v->s, *e = v->s + v->len;
    int64_t secs = 0, ms = 0;
    int whole = 0, frac = 0;
    while (p < e && *p >= '0' && *p <= '9' && whole < 12)
        secs = secs * 10 + (*p++ - '0'), whole++;
    if (p < e && *p == '.')
        for (p++; p < e && *p >= '0' && *p <= '9' && frac < 3; frac++)
            ms = ms * 10 + (*p++ - '0');
    if (whole && whole < 12 && p == e && (frac || v->s[v->len - 1] != '.')) {
        for (int i = frac; i < 3; i++)
            ms *= 10;
        return secs * 1000 + ms;
    }
    char small[64], *end;
    char *text = v->len < sizeof small ? small : ob_xmalloc(v->len + 1);
    memcpy(text, v->s, v->len);
    text[v->len] = '\0';
    double s = strtod(text, &end);
    bool ok = !*end && s >= 0 && s < 1e12;
    if (text != small)
        free(text);
    return ok ? (int64_t)llround(s * 1000.0) : 0;
}

/* A JSON integer that fits 64 bits, else 0. */
static int64_t span_integer(const struct ob_jspan *v)
{
    int64_t quick;
    if (span_digits(v, 18, &quick))
        return quick;
    char text[32];
    if (!v->s || v->len >= sizeof text || memchr(v->s, '.', v->len) || memchr(v->s, 'e', v->len) ||
        memchr(v->s, 'E', v->len))
        return 0;
    memcpy(text, v->s, v->len);
    text[v->len] = 0;
    errno = 0;
    char *end;
    long long n = strtoll(text, &end, 10);
    return *end || errno ? 0 : (int64_t)n;
}

/* What is read of a record in one pass: the event, dynamodb's scalars and
 * where its images are. Images are skipped; an INSERT's NewImage is
 * indexed into im, during the pass when eventName came before it (as
 * DynamoDB writes records), else afterwards from new_image. */
struct record_scan {
    struct ob_jspan event, seq, approximate, size, new_image, keys;
    bool has_event, has_ddb, has_seq;
    bool has_new_image;  /* the key is there, whatever its value */
    struct image *im;
    bool indexed;  /* im holds NewImage */
};

/* NewImage at s into r->im, checked as a whole (s may be trusted), when
 * the record is known to be an INSERT; else it is only spanned. */
static void scan_new_image(struct ob_jscan *s, struct record_scan *r)
{
    r->has_new_image = true;
    if (r->indexed) { /* a later duplicate wins, as in a JSON object */
        image_free(r->im);
        r->indexed = false;
    }
    if (r->has_event && !r->event.escaped && ob_jspan_is(&r->event, "INSERT")) {
        struct ob_jscan sub = *s;
        const char *start = s->p;
        sub.trusted = false;
        if (image_scan_at(r->im, &sub)) {
            r->new_image = (struct ob_jspan){ .s = start, .len = (size_t)(sub.p - start) };
            r->indexed = true;
            s->p = sub.p;
            return;
        }
        image_free(r->im);
    }
    ob_jscan_object_span(s, &r->new_image);
}

static bool scan_record(struct ob_jscan *s, struct record_scan *r, struct image *im)
{
    memset(r, 0, sizeof *r);
    r->im = im;
    struct ob_jspan key;
    if (!ob_jscan_object(s))
        return false;
    while (ob_jscan_key(s, &key)) {
        if (ob_jspan_is(&key, "eventName")) {
            r->has_event = ob_jscan_string(s, &r->event);
        } else if (ob_jspan_is(&key, "dynamodb")) {
            r->has_seq = false;
            r->has_ddb = ob_jscan_try_object(s);
            if (!r->has_ddb)
                continue;
            while (ob_jscan_key(s, &key)) {
                if (ob_jspan_is(&key, "SequenceNumber"))
                    r->has_seq = ob_jscan_string(s, &r->seq);
                else if (ob_jspan_is(&key, "ApproximateCreationDateTime"))
                    ob_jscan_number(s, &r->approximate);
                else if (ob_jspan_is(&key, "SizeBytes"))
                    ob_jscan_number(s, &r->size);
                else if (ob_jspan_is(&key, "NewImage"))
                    scan_new_image(s, r);
                else if (ob_jspan_is(&key, "Keys"))
                    ob_jscan_object_span(s, &r->keys);
                else
                    ob_jscan_skip(s);
            }
        } else {
            ob_jscan_skip(s);
        }
    }
    return !s->failed;
}

/* Whether a decoded string span is lit (an escaped span is decoded first). */
static bool span_equals(const struct ob_jspan *v, const char *lit)
{
    if (!v->escaped)
        return ob_jspan_is(v, lit);
    char *text = ob_jspan_dup(v);
    bool same = text && strcmp(text, lit) == 0;
    free(text);
    return same;
}

/* What every record carries, whatever its event (seq: owned, taken).
 * Returns whether the record is an INSERT to decode further. */
static bool record_head(struct ob_record *out, char *seq, int64_t approximate_ms, int64_t size_bytes,
                        const struct ob_jspan *event)
{
    out->kind = OB_RECORD_MESSAGE;
    out->msg.sequence_number = seq;
    out->msg.approximate_creation_ms = approximate_ms;
    out->size_bytes = size_bytes;
    if (event && span_equals(event, "INSERT"))
        return true;
    out->kind = OB_RECORD_SKIP;
    if (event && span_equals(event, "MODIFY"))
        out->skip_reason = "MODIFY";
    else if (event && span_equals(event, "REMOVE"))
        out->skip_reason = "REMOVE";
    else
        out->skip_reason = "unknown event";
    return false;
}

/* Decodes one scanned record into *out (zeroed), and frees rs->im. */
static enum ob_err record_decode(const struct record_scan *rs, struct ob_record *out, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct image *im = rs->im;
    char *seq = rs->has_seq ? ob_jspan_dup(&rs->seq) : NULL;
    if (!rs->has_ddb || !seq) {
        free(seq);
        rc = ob_error_set(err, OB_ERR_INVALID, "not a stream record: %s",
                          rs->has_ddb ? "no dynamodb.SequenceNumber" : "no dynamodb object");
        goto out;
    }
    if (!record_head(out, seq, seconds_to_ms(&rs->approximate), span_integer(&rs->size),
                     rs->has_event ? &rs->event : NULL))
        goto out;
    if (!rs->indexed) {
        image_free(im);
        if (!rs->has_new_image) {
            out->kind = OB_RECORD_NO_IMAGE;
            goto out;
        }
        if (!rs->new_image.s || !image_scan(im, &rs->new_image)) {
            poison(out, "NewImage is not an item");
            /* The keys still let the item be marked as dead-lettered. */
            image_free(im);
            if (rs->keys.s && !image_scan(im, &rs->keys))
                image_free(im);
            struct block b;
            block_open(out, im, 0, &b);
            decode_keys(out, im, &b);
            goto out;
        }
    }
    /* A published item is skipped whatever else is wrong with it: there is
     * nothing left to deliver. */
    const struct attr *published = attr_value(out, im, "isPublished", "BOOL");
    if (published && published->truth) {
        out->kind = OB_RECORD_SKIP;
        out->skip_reason = "published";
        goto out;
    }
    decode_item(out, im);
out:
    image_free(im);
    return rc;
}

enum ob_err ob_record_decode_text(const char *json, size_t len, struct ob_record *out, struct ob_error *err)
{
    struct ob_jscan s;
    struct record_scan rs;
    struct image im;
    image_init(&im);
    ob_jscan_init_trusted(&s, json, len);
    if (!scan_record(&s, &rs, &im) || !ob_jscan_done(&s)) {
        image_free(&im);
        return ob_error_set(err, OB_ERR_INVALID, "not a stream record: not a JSON object");
    }
    return record_decode(&rs, out, err);
}

enum ob_err ob_record_decode(const json_t *record, struct ob_record *out, struct ob_error *err)
{
    char *text = json_is_object(record) ? json_dumps(record, JSON_COMPACT) : NULL;
    if (!text)
        return ob_error_set(err, OB_ERR_INVALID, "not a stream record: no dynamodb object");
    enum ob_err rc = ob_record_decode_text(text, strlen(text), out, err);
    free(text);
    return rc;
}

/* ---- GetRecords pages ----------------------------------------------------- */

static void page_malformed(struct ob_records_page *p, const char *why)
{
    if (p->malformed++ == 0)
        snprintf(p->first_malformed, sizeof p->first_malformed, "%.255s", why);
}

enum ob_err ob_records_page_decode(const char *json, size_t len, struct ob_records_page *out, struct ob_error *err)
{
    memset(out, 0, sizeof *out);
    struct ob_jscan s;
    struct ob_jspan key;
    size_t cap = 0;
    /* GetRecords' text comes from DynamoDB: what is skipped (the images
     * of records other than INSERTs, OldImage) is followed, not checked. */
    ob_jscan_init_trusted(&s, json, len);
    if (!ob_jscan_object(&s))
        goto bad;
    while (ob_jscan_key(&s, &key)) {
        if (ob_jspan_is(&key, "NextShardIterator")) {
            struct ob_jspan v;
            free(out->next_iterator);
            out->next_iterator = ob_jscan_string(&s, &v) ? ob_jspan_dup(&v) : NULL;
        } else if (ob_jspan_is(&key, "Records")) {
            if (!ob_jscan_try_array(&s))
                continue;
            while (ob_jscan_element(&s)) {
                struct record_scan rs;
                struct ob_error rerr;
                struct image im;
                if (*s.p != '{') {
                    if (ob_jscan_skip(&s))
                        page_malformed(out, "not a stream record: no dynamodb object");
                    continue;
                }
                image_init(&im);
                if (!scan_record(&s, &rs, &im)) {
                    image_free(&im);
                    break;
                }
                if (out->n == cap) {
                    cap = cap ? cap * 2 : 64;
                    out->records = ob_xrealloc(out->records, cap * sizeof *out->records);
                }
                struct ob_record *rec = &out->records[out->n];
                memset(rec, 0, sizeof *rec);
                if (record_decode(&rs, rec, &rerr) == OB_OK) {
                    out->n++;
                } else {
                    ob_record_free(rec);
                    page_malformed(out, rerr.msg);
                }
            }
        } else {
            ob_jscan_skip(&s);
        }
    }
    if (ob_jscan_done(&s)) {
        out->bytes = len;
        return OB_OK;
    }
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
