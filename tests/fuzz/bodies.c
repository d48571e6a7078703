/* The bodies of the fuzz targets (fuzz.h). Linked into each libFuzzer
 * binary by make fuzz, and #included by tests/unit/test_fuzz_regressions.c
 * so that make test replays the seed corpus and every saved crash. */
#include "fuzz.h"

#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/codec.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "core/json_scan.h"
#include "core/proxy.h"
#include "core/record.h"
#include "core/route.h"
#include "core/template.h"
#include "record_diff.h"
#include "sinks/sink.h"

/* A broken promise is reported like a sanitizer finding: abort(), which
 * libFuzzer saves as a crash and the unit test sees as a signal. */
#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#define FUZZ_TABLE "outbox"

/* ---- config ------------------------------------------------------------------ */

static void check_template(const char *tmpl)
{
    char bad[64];
    FUZZ_ASSERT(!tmpl || ob_template_check(tmpl, bad, sizeof bad));
}

/* Loading promises valid templates wherever the schema says template. */
static void check_loaded_templates(const struct ob_config *cfg)
{
    check_template(cfg->cloudevents.source);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        FUZZ_ASSERT(cfg->routes[i].sink_index < cfg->n_sinks);
        check_template(cfg->routes[i].destination);
    }
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const struct ob_config_sink *sink = &cfg->sinks[i];
        FUZZ_ASSERT(sink->schema && sink->n_opts == ob_sink_n_keys(sink->schema));
        for (size_t j = 0; j < sink->n_opts; j++)
            if (ob_sink_key(sink->schema, j)->type == OB_CT_TEMPLATE)
                check_template(sink->opts[j].str);
    }
}

int ob_fuzz_config(const uint8_t *data, size_t size)
{
    /* Opened once: one per input would exhaust descriptors in a long run. */
    static FILE *devnull;
    if (!devnull)
        devnull = fopen("/dev/null", "w");
    FUZZ_ASSERT(devnull);

    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    enum ob_err rc = ob_config_load_string("fuzz.yaml", (const char *)data, size, &ob_sinks, &cfg, &diag);
    if (rc == OB_OK) {
        FUZZ_ASSERT(cfg && diag.n == 0);
        FUZZ_ASSERT(ob_config_find_sink(cfg, cfg->default_sink));
        check_loaded_templates(cfg);
        ob_config_print_summary(cfg, devnull);
        char type[] = "OrderPlaced", aggregate[] = "Order";
        struct ob_message m = {.message_type = type, .aggregate_type = aggregate};
        size_t sink_index = 0;
        const char *destination = NULL;
        ob_route_select(cfg, &m, &sink_index, &destination);
        FUZZ_ASSERT(sink_index < cfg->n_sinks);
    } else {
        FUZZ_ASSERT(rc == OB_ERR_CONFIG && !cfg && diag.n > 0);
        for (size_t i = 0; i < diag.n; i++)
            FUZZ_ASSERT(strncmp(diag.lines[i], "fuzz.yaml:", 10) == 0);
    }
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
    return 0;
}

/* ---- the CloudEvents encoder, shared by record and cloudevents ---------------- */

/* What ob_ce_structured promises (cloudevents.h): one line holding one
 * JSON object with specversion "1.0" and the payload as exactly one of
 * `data` (the same JSON) or `data_base64` (the same bytes). */
static void check_structured(const struct ob_buf *out, const struct ob_message *m)
{
    const char *text = ob_buf_cstr(out);
    FUZZ_ASSERT(strlen(text) == out->len && !memchr(text, '\n', out->len));
    json_error_t jerr;
    json_t *obj = json_loadb(text, out->len, 0, &jerr);
    if (!obj)
        fprintf(stderr, "structured output does not parse (%s at %d): %.300s\n", jerr.text, jerr.position, text);
    FUZZ_ASSERT(json_is_object(obj));
    const char *specversion = json_string_value(json_object_get(obj, "specversion"));
    FUZZ_ASSERT(specversion && strcmp(specversion, "1.0") == 0);

    json_t *data = json_object_get(obj, "data");
    const char *b64 = json_string_value(json_object_get(obj, "data_base64"));
    FUZZ_ASSERT(!(data && b64));
    FUZZ_ASSERT((m->payload_len > 0) == (data || b64));
    if (data) {
        json_t *want = json_loadb((const char *)m->payload, m->payload_len, JSON_DECODE_ANY, NULL);
        FUZZ_ASSERT(want && json_equal(want, data));
        json_decref(want);
    }
    if (b64) {
        struct ob_buf bytes = {0};
        FUZZ_ASSERT(ob_base64_decode(&bytes, b64, strlen(b64)));
        FUZZ_ASSERT(bytes.len == m->payload_len && memcmp(bytes.data, m->payload, bytes.len) == 0);
        ob_buf_free(&bytes);
    }
    json_decref(obj);
}

static void count_attribute(const char *name, const char *value, void *ctx)
{
    size_t *n = ctx;
    FUZZ_ASSERT(name && value);
    if (*n == 0)
        FUZZ_ASSERT(strcmp(name, "specversion") == 0 && strcmp(value, "1.0") == 0);
    (*n)++;
}

/* Encodes m both ways a sink does; source_template NULL is the default. */
static void encode_message(const struct ob_message *m, const char *source_template)
{
    struct ob_ce ce;
    ob_ce_from_message(&ce, m, source_template, FUZZ_TABLE);
    FUZZ_ASSERT(ce.type && ce.source && ce.source[0] && ce.datacontenttype);

    struct ob_buf out = {0};
    ob_ce_structured(&out, &ce, m);
    check_structured(&out, m);
    ob_buf_free(&out);

    size_t n = 0;
    ob_ce_each_attribute(&ce, count_attribute, &n);
    /* specversion, type and source are never absent. */
    FUZZ_ASSERT(n >= 3);
    ob_ce_free(&ce);
}

/* Expands tmpl for m; text without a '{' comes out unchanged. */
static void expand_template(const char *tmpl, const struct ob_message *m)
{
    struct ob_buf out = {0};
    ob_template_expand(&out, tmpl, m, FUZZ_TABLE);
    if (!strchr(tmpl, '{'))
        FUZZ_ASSERT(strcmp(ob_buf_cstr(&out), tmpl) == 0);
    ob_buf_free(&out);
}

/* ---- record -------------------------------------------------------------------- */

static const char *const record_templates[] = {
    "/{table}/{aggregateType}", "{messageType}.{aggregateId}", "{pk}/{sk}|{partitionKey}/{messageId}",
    "x{unknown}{", "}{table",
};

static void decode_record(const json_t *json)
{
    struct ob_record r = {0};
    struct ob_error err = {0};
    if (ob_record_decode(json, &r, &err) != OB_OK) {
        FUZZ_ASSERT(err.code == OB_ERR_INVALID && err.msg[0]);
        ob_record_free(&r);
        return;
    }
    const struct ob_message *m = &r.msg;
    FUZZ_ASSERT(m->sequence_number && ob_seq_compare(m->sequence_number, m->sequence_number) == 0);
    if (r.kind == OB_RECORD_SKIP) {
        FUZZ_ASSERT(r.skip_reason);
    } else if (r.kind == OB_RECORD_NO_IMAGE) {
        FUZZ_ASSERT(!r.poison_reason);
    } else {
        if (r.kind == OB_RECORD_MESSAGE)
            FUZZ_ASSERT(m->pk && m->sk && m->payload && m->payload[m->payload_len] == 0 && m->retry_count >= 0);
        else
            FUZZ_ASSERT(r.kind == OB_RECORD_POISON && r.poison_reason && r.poison_reason[0]);
        /* Poison is dead-lettered through the same encoder. */
        encode_message(m, NULL);
        for (size_t i = 0; i < sizeof record_templates / sizeof record_templates[0]; i++) {
            expand_template(record_templates[i], m);
            encode_message(m, record_templates[i]);
        }
    }
    ob_record_free(&r);
}

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

/* How deeply v nests (a scalar is 1). */
static size_t json_depth(const json_t *v)
{
    size_t deepest = 0, i;
    const char *key;
    json_t *member;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, member) {
            size_t d = json_depth(member);
            deepest = d > deepest ? d : deepest;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, member) {
            size_t d = json_depth(member);
            deepest = d > deepest ? d : deepest;
        }
    }
    return deepest + 1;
}

/* ob_records_page_decode on text[0..len), copied to a buffer of exactly
 * len bytes so that ASan sees a read past the end. */
static enum ob_err decode_page(const char *text, size_t len, struct ob_records_page *page, struct ob_error *err)
{
    char *exact = ob_xmalloc(len);
    memcpy(exact, text, len);
    enum ob_err rc = ob_records_page_decode(exact, len, page, err);
    free(exact);
    return rc;
}

/* The page decoder on the bytes as they came: whatever they hold, no
 * crash and no leak; refused, it leaves nothing behind; decoded, each
 * record is one ob_record_decode could give. JSON that jansson reads as
 * an object is never refused, unless it nests deeper than the scanner
 * skips or holds a NUL byte (jansson drops one that follows a number,
 * which JSON does not allow). */
static void check_page_bytes(const uint8_t *data, size_t size, const json_t *top)
{
    struct ob_records_page page;
    struct ob_error err = {0};
    enum ob_err rc = decode_page((const char *)data, size, &page, &err);
    if (rc != OB_OK) {
        FUZZ_ASSERT(rc == OB_ERR_INVALID && err.msg[0]);
        FUZZ_ASSERT(page.n == 0 && !page.records && !page.next_iterator);
        FUZZ_ASSERT(!json_is_object(top) || json_depth(top) > OB_JSCAN_MAX_DEPTH || memchr(data, 0, size));
        return;
    }
    FUZZ_ASSERT(page.n == 0 || page.records);
    FUZZ_ASSERT(!page.malformed || page.first_malformed[0]);
    for (size_t i = 0; i < page.n; i++) {
        const struct ob_record *r = &page.records[i];
        FUZZ_ASSERT(r->msg.sequence_number);
        FUZZ_ASSERT((r->kind == OB_RECORD_SKIP) == (r->skip_reason != NULL));
        FUZZ_ASSERT((r->kind == OB_RECORD_POISON) == (r->poison_reason != NULL));
        if (r->kind == OB_RECORD_MESSAGE)
            FUZZ_ASSERT(r->msg.pk && r->msg.sk && r->msg.payload && r->msg.payload[r->msg.payload_len] == 0);
    }
    ob_records_page_free(&page);
}

/* The page decoder against jansson on a GetRecords answer jansson read
 * (top, whose Records is an array): the records ob_record_decode accepts,
 * in order and equal field by field, and the other elements counted as
 * malformed. It runs on jansson's own rendering of top, which has no
 * duplicate keys (jansson keeps the last, the scanner need not). */
static void check_page_against_jansson(const json_t *top)
{
    if (json_depth(top) > OB_JSCAN_MAX_DEPTH)
        return;
    char *text = json_dumps(top, JSON_COMPACT);
    FUZZ_ASSERT(text);
    struct ob_records_page page;
    struct ob_error err = {0};
    enum ob_err rc = decode_page(text, strlen(text), &page, &err);
    if (rc != OB_OK)
        fprintf(stderr, "page refused: %s\n", err.msg);
    FUZZ_ASSERT(rc == OB_OK);
    const json_t *records = json_object_get(top, "Records");
    FUZZ_ASSERT(page.n + page.malformed == json_array_size(records));
    FUZZ_ASSERT(!page.malformed || page.first_malformed[0]);
    const char *next = json_string_value(json_object_get(top, "NextShardIterator"));
    FUZZ_ASSERT(record_diff_same_str(page.next_iterator, next));
    size_t i, decoded = 0;
    const json_t *rec;
    json_array_foreach(records, i, rec) {
        struct ob_record want = {0};
        struct ob_error rerr = {0};
        if (ob_record_decode(rec, &want, &rerr) == OB_OK) {
            FUZZ_ASSERT(decoded < page.n);
            const char *field = record_difference(&page.records[decoded], &want);
            if (field)
                fprintf(stderr, "element %zu (record %zu): %s differs\n", i, decoded, field);
            FUZZ_ASSERT(!field);
            decoded++;
        }
        ob_record_free(&want);
    }
    FUZZ_ASSERT(decoded == page.n);
    ob_records_page_free(&page);
    free(text);
}

int ob_fuzz_record(const uint8_t *data, size_t size)
{
    json_t *top = json_loadb((const char *)data, size, 0, NULL);
    check_page_bytes(data, size, top);
    const json_t *records = json_object_get(top, "Records");
    if (json_is_array(records)) {
        check_page_against_jansson(top);
        const char *prev = NULL;
        size_t i;
        const json_t *rec;
        json_array_foreach(records, i, rec) {
            decode_record(rec);
            /* Ordering of sequence numbers must be antisymmetric whatever they hold. */
            const char *seq = json_string_value(json_object_get(json_object_get(rec, "dynamodb"), "SequenceNumber"));
            if (prev && seq)
                FUZZ_ASSERT(sign(ob_seq_compare(prev, seq)) == -sign(ob_seq_compare(seq, prev)));
            if (seq)
                prev = seq;
        }
    } else if (top) {
        decode_record(top);
    }
    json_decref(top);
    return 0;
}

/* ---- cloudevents --------------------------------------------------------------- */

/* Input layout: one flags byte, then NUL-terminated strings in this
 * order, then the payload (the rest, NULs allowed). A field the input
 * ends before is absent. */
enum {
    CE_PK, CE_SK, CE_TYPE, CE_AGGREGATE_ID, CE_AGGREGATE_TYPE, CE_CORRELATION_ID, CE_CAUSATION_ID,
    CE_CREATED_AT, CE_HEADERS, CE_TEMPLATE, CE_GLOB, CE_SUBJECT, CE_N_FIELDS
};
/* Flag bits that make an optional attribute absent even when given. */
enum {
    CE_NO_TYPE = 1 << 0, CE_NO_AGGREGATE_ID = 1 << 1, CE_NO_AGGREGATE_TYPE = 1 << 2,
    CE_NO_CORRELATION = 1 << 3, CE_NO_CAUSATION = 1 << 4, CE_NO_CREATED_AT = 1 << 5,
    CE_NO_PAYLOAD = 1 << 6, CE_NO_HEADERS = 1 << 7
};

static char *unless(uint8_t flags, unsigned bit, char *field)
{
    return flags & bit ? NULL : field;
}

/* The headers a JSON object of strings gives; anything else, none. */
static void set_headers(struct ob_message *m, const char *text)
{
    json_t *obj = text ? json_loads(text, 0, NULL) : NULL;
    const char *name;
    json_t *value;
    m->headers = ob_xcalloc(json_object_size(obj) + 1, sizeof *m->headers);
    json_object_foreach(obj, name, value) {
        if (json_is_string(value)) {
            m->headers[m->n_headers].name = ob_xstrdup(name);
            m->headers[m->n_headers].value = ob_xstrdup(json_string_value(value));
            m->n_headers++;
        }
    }
    json_decref(obj);
}

/* The textbook dynamic-programming matcher to compare against:
 * match[i][j] says whether glob[i..] matches s[j..]. */
static bool glob_reference(const char *glob, const char *s)
{
    size_t gl = strlen(glob), sl = strlen(s);
    bool *match = ob_xcalloc((gl + 1) * (sl + 1), sizeof *match);
#define AT(i, j) match[(i) * (sl + 1) + (j)]
    AT(gl, sl) = true;
    for (size_t i = gl; i-- > 0;)
        for (size_t j = sl + 1; j-- > 0;) {
            if (glob[i] == '*')
                AT(i, j) = AT(i + 1, j) || (j < sl && AT(i, j + 1));
            else
                AT(i, j) = j < sl && (glob[i] == '?' || glob[i] == s[j]) && AT(i + 1, j + 1);
        }
    bool result = AT(0, 0);
#undef AT
    free(match);
    return result;
}

static void check_glob(const char *glob, const char *s)
{
    bool got = ob_glob_match(glob, s);
    /* Any string read as a glob matches itself: '*' and '?' match themselves too. */
    FUZZ_ASSERT(ob_glob_match(s, s) && ob_glob_match("*", s));
    /* The reference is quadratic in space: keep it to route-sized strings. */
    if (strlen(glob) <= 256 && strlen(s) <= 256)
        FUZZ_ASSERT(got == glob_reference(glob, s));
}

int ob_fuzz_cloudevents(const uint8_t *data, size_t size)
{
    uint8_t flags = size ? data[0] : 0;
    char *text = ob_xmalloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    char *field[CE_N_FIELDS] = {0};
    size_t pos = size ? 1 : 0;
    for (size_t i = 0; i < CE_N_FIELDS && pos < size; i++) {
        field[i] = text + pos;
        pos += strlen(text + pos) + 1;
    }
    size_t payload_len = pos < size ? size - pos : 0;

    struct ob_message m = {
        .pk = field[CE_PK],
        .sk = field[CE_SK],
        .message_type = unless(flags, CE_NO_TYPE, field[CE_TYPE]),
        .aggregate_id = unless(flags, CE_NO_AGGREGATE_ID, field[CE_AGGREGATE_ID]),
        .aggregate_type = unless(flags, CE_NO_AGGREGATE_TYPE, field[CE_AGGREGATE_TYPE]),
        .correlation_id = unless(flags, CE_NO_CORRELATION, field[CE_CORRELATION_ID]),
        .causation_id = unless(flags, CE_NO_CAUSATION, field[CE_CAUSATION_ID]),
        .created_at = unless(flags, CE_NO_CREATED_AT, field[CE_CREATED_AT]),
        /* text[size] is the NUL the decoder also leaves after a payload. */
        .payload = flags & CE_NO_PAYLOAD ? NULL : (unsigned char *)text + size - payload_len,
        .payload_len = flags & CE_NO_PAYLOAD ? 0 : payload_len,
    };
    if (m.created_at && !ob_iso8601_parse(m.created_at, &m.created_at_ms))
        m.created_at_ms = 0;
    if (!(flags & CE_NO_HEADERS))
        set_headers(&m, field[CE_HEADERS]);

    const char *tmpl = field[CE_TEMPLATE] ? field[CE_TEMPLATE] : "";
    char bad[64];
    if (!ob_template_check(tmpl, bad, sizeof bad))
        FUZZ_ASSERT(bad[0] == '{' || bad[0] == '}');
    expand_template(tmpl, &m);
    encode_message(&m, NULL);
    encode_message(&m, tmpl);
    check_glob(field[CE_GLOB] ? field[CE_GLOB] : "", field[CE_SUBJECT] ? field[CE_SUBJECT] : "");

    for (size_t i = 0; i < m.n_headers; i++) {
        free(m.headers[i].name);
        free(m.headers[i].value);
    }
    free(m.headers);
    free(text);
    return 0;
}

/* ---- proxy ------------------------------------------------------------------ */

/* The variables the proxy body's environment holds (fuzz_env). */
static const char *fuzz_proxy_url, *fuzz_no_proxy;

static const char *fuzz_env(const char *name)
{
    if (strcasecmp(name, "https_proxy") == 0 || strcasecmp(name, "http_proxy") == 0)
        return fuzz_proxy_url;
    return strcasecmp(name, "no_proxy") == 0 ? fuzz_no_proxy : NULL;
}

/* A parsed proxy is usable: a host and a port from 1 to 65535; what is
 * shown of its user information is the user and "***" at most. */
static void check_proxy(const struct ob_proxy *p)
{
    FUZZ_ASSERT(p->host && p->port && p->shown && strncmp(p->shown, "http://", 7) == 0);
    long port = strtol(p->port, NULL, 10);
    FUZZ_ASSERT(port >= 1 && port <= 65535);
    const char *userinfo = p->shown + 7, *at = strrchr(userinfo, '@');
    FUZZ_ASSERT(!at == !p->credentials);
    if (!at)
        return;
    const char *colon = memchr(userinfo, ':', (size_t)(at - userinfo));
    FUZZ_ASSERT(!colon || (at - colon == 4 && strncmp(colon, ":***", 4) == 0));
}

/* The proxy URL with the letters and digits of what precedes its last
 * '@' (after its scheme) changed, each for one of its kind: the same URL
 * but for its credentials. Owned by the caller. */
static char *with_other_credentials(const char *url)
{
    char *other = ob_xstrdup(url);
    const char *sep = strstr(url, "://");
    size_t start = 0;
    if (sep && sep > url && isalpha((unsigned char)url[0]) &&
        strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == (size_t)(sep - url))
        start = (size_t)(sep - url) + 3;
    const char *at = strrchr(url, '@');
    for (size_t i = start; at && i < (size_t)(at - url); i++)
        if (isalpha((unsigned char)other[i]))
            other[i] = other[i] == 'q' ? 'r' : 'q';
        else if (isdigit((unsigned char)other[i]))
            other[i] = other[i] == '7' ? '8' : '7';
    return other;
}

int ob_fuzz_proxy(const uint8_t *data, size_t size)
{
    /* proxy URL NUL NO_PROXY NUL host NUL CONNECT answer */
    struct ob_buf in = { 0 };
    ob_buf_append(&in, data, size);
    ob_buf_putc(&in, '\0');
    const char *end = in.data + size;
    fuzz_proxy_url = in.data;
    fuzz_no_proxy = fuzz_proxy_url + strlen(fuzz_proxy_url) + 1;
    if (fuzz_no_proxy > end)
        fuzz_no_proxy = end;
    const char *host = fuzz_no_proxy + strlen(fuzz_no_proxy) + 1;
    if (host > end)
        host = end;
    const char *answer = host + strlen(host) + 1;
    if (answer > end)
        answer = end;

    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    if (ob_proxy_env_load(fuzz_env, &env, &err) == OB_OK) {
        if (env.https)
            check_proxy(env.https);
        for (int tls = 0; tls < 2; tls++) {
            FUZZ_ASSERT(!ob_proxy_for(&env, tls, "169.254.169.254", "80"));
            FUZZ_ASSERT(!ob_proxy_for(&env, tls, "fd00:ec2::23", "80"));
            ob_proxy_for(&env, tls, host, "443");
        }
        struct ob_buf b = { 0 };
        ob_proxy_env_describe(&b, &env);
        if (env.https)
            ob_proxy_connect_request(&b, env.https, host, "443");
        ob_buf_free(&b);
        ob_proxy_env_free(&env);
    } else {
        FUZZ_ASSERT(err.msg[0] && !env.https && !env.http);
        /* The refusal says nothing of the credentials. */
        char *url = (char *)fuzz_proxy_url, *other = with_other_credentials(url);
        struct ob_error other_err = { 0 };
        fuzz_proxy_url = other;
        FUZZ_ASSERT(ob_proxy_env_load(fuzz_env, &env, &other_err) != OB_OK);
        FUZZ_ASSERT(strcmp(err.msg, other_err.msg) == 0);
        fuzz_proxy_url = url;
        free(other);
    }

    size_t len = (size_t)(end - answer), head_len = 0;
    int status = 0;
    if (ob_proxy_connect_answer(answer, len, &status, &head_len) == OB_PROXY_ANSWER_DONE) {
        FUZZ_ASSERT(status >= 100 && status <= 999);
        FUZZ_ASSERT(head_len >= 4 && head_len <= len && memcmp(answer + head_len - 4, "\r\n\r\n", 4) == 0);
        /* Every shorter prefix of the head is still waiting for more. */
        int s2;
        size_t h2;
        FUZZ_ASSERT(ob_proxy_connect_answer(answer, head_len - 1, &s2, &h2) == OB_PROXY_ANSWER_PARTIAL);
    }
    ob_buf_free(&in);
    return 0;
}
