/* The stream-record decoder: which records are messages, which are
 * skipped, which are poison and why (SPEC §2, §3), and that no JSON input
 * makes it crash; and the GetRecords page decoder, which must give for
 * each element what ob_record_decode gives. */
#include "test.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fuzz/record_diff.h"
#include "core/buf.h"
#include "core/record.h"

/* An INSERT of a complete, valid outbox item, as GetRecords returns it. */
static const char insert_json[] =
    "{\"eventID\":\"e1\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\","
    "\"awsRegion\":\"us-east-1\",\"dynamodb\":{\"ApproximateCreationDateTime\":1764108312.5,"
    "\"Keys\":{\"pk\":{\"S\":\"order-1\"},\"sk\":{\"S\":\"m-1\"}},"
    "\"NewImage\":{\"pk\":{\"S\":\"order-1\"},\"sk\":{\"S\":\"m-1\"},\"payload\":{\"S\":\"eyJhIjoxfQ==\"},"
    "\"headers\":{\"S\":\"{\\\"Content-Type\\\":\\\"application/json\\\",\\\"tenant\\\":\\\"acme\\\"}\"},"
    "\"messageType\":{\"S\":\"OrderPlaced\"},\"aggregateId\":{\"S\":\"42\"},\"aggregateType\":{\"S\":\"Order\"},"
    "\"correlationId\":{\"S\":\"c-1\"},\"causationId\":{\"S\":\"c-0\"},\"isPublished\":{\"BOOL\":false},"
    "\"retryCount\":{\"N\":\"3\"},\"createdAt\":{\"S\":\"2025-11-25T22:05:12.123Z\"}},"
    "\"SequenceNumber\":\"000000000000000000123\",\"SizeBytes\":321,\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}";

static json_t *insert_record(void)
{
    return json_loads(insert_json, 0, NULL);
}

static json_t *new_image(json_t *record)
{
    return json_object_get(json_object_get(record, "dynamodb"), "NewImage");
}

/* Sets NewImage.name to the attribute value written as JSON text. */
static void set_attr(json_t *record, const char *name, const char *attr_json)
{
    json_object_set_new(new_image(record), name, json_loads(attr_json, JSON_DECODE_ANY, NULL));
}

/* ob_record_decode, record released. */
static enum ob_err decode_released(json_t *record, struct ob_record *r, struct ob_error *err)
{
    enum ob_err rc = ob_record_decode(record, r, err);
    json_decref(record);
    return rc;
}

/* Decodes record (and releases it); the record must decode without error. */
static enum ob_record_kind decode(json_t *record, struct ob_record *r)
{
    struct ob_error err = {0};
    enum ob_err rc = decode_released(record, r, &err);
    if (rc != OB_OK) {
        printf("  unexpected error: %s\n", err.msg);
        return (enum ob_record_kind)-1;
    }
    return r->kind;
}

/* ---- decode cases (tests/data/record/decode.cases) ------------------------------ */

/* Applies a row's attr: NAME JSON or set: a.b.c JSON to rec (JSON
 * "removed": deletes the member); false when the path or JSON is bad. */
static bool change(json_t *rec, const struct ob_test_field *f)
{
    size_t path_len = strcspn(f->value, " ");
    char *path = ob_xstrndup(f->value, path_len);
    const char *json = f->value + path_len + (f->value[path_len] == ' ');
    json_t *parent = strcmp(f->key, "attr") ? rec : new_image(rec);
    char *name = path, *dot;
    while (parent && strcmp(f->key, "attr") && (dot = strchr(name, '.'))) {
        *dot = 0;
        parent = json_object_get(parent, name);
        name = dot + 1;
    }
    json_t *value = strcmp(json, "removed") ? json_loads(json, JSON_DECODE_ANY, NULL) : NULL;
    bool ok = json_is_object(parent) && (value || !strcmp(json, "removed"));
    if (ok && value)
        json_object_set_new(parent, name, value);
    else if (ok)
        json_object_del(parent, name);
    else
        json_decref(value);
    free(path);
    return ok;
}

/* The element a row describes: insert_record() changed by its attr: and
 * set: lines, or its element:; NULL (the row failed) when one is bad. */
static json_t *record_of(const struct ob_test_row *row)
{
    json_t *rec = insert_record();
    for (size_t i = 0; rec && i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        if (!strcmp(f->key, "element")) {
            json_decref(rec);
            rec = json_loads(f->value, JSON_DECODE_ANY, NULL);
        } else if ((!strcmp(f->key, "attr") || !strcmp(f->key, "set")) && !change(rec, f)) {
            json_decref(rec);
            rec = NULL;
        }
        if (!rec)
            ob_test_row_fail(row, "bad %s: %s", f->key, f->value);
    }
    return rec;
}

static bool is_change(const char *key)
{
    return !strcmp(key, "attr") || !strcmp(key, "set") || !strcmp(key, "element");
}

/* Appends r's field name as decode.cases writes it; false when a record
 * has no such field. */
static bool put_field(struct ob_buf *out, const struct ob_record *r, const char *name)
{
    static const char *const kinds[] = {"message", "skip", "poison", "no-image"};
    const struct ob_message *m = &r->msg;
    const struct {
        const char *name, *value;
    } texts[] = {
        {"kind", kinds[r->kind]},
        {"skip_reason", r->skip_reason},
        {"poison_reason", r->poison_reason},
        {"pk", m->pk},
        {"sk", m->sk},
        {"message_type", m->message_type},
        {"payload", (const char *)m->payload},
        {"aggregate_id", m->aggregate_id},
        {"aggregate_type", m->aggregate_type},
        {"correlation_id", m->correlation_id},
        {"causation_id", m->causation_id},
        {"created_at", m->created_at},
        {"sequence_number", m->sequence_number},
    };
    const struct {
        const char *name;
        long long value;
    } numbers[] = {
        {"payload_len", (long long)m->payload_len},
        {"created_at_ms", m->created_at_ms},
        {"retry_count", m->retry_count},
        {"approximate_creation_ms", m->approximate_creation_ms},
        {"size_bytes", r->size_bytes},
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        if (!strcmp(texts[i].name, name)) {
            ob_buf_puts(out, texts[i].value ? texts[i].value : "(null)");
            return true;
        }
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (!strcmp(numbers[i].name, name)) {
            ob_buf_printf(out, "%lld", numbers[i].value);
            return true;
        }
    if (strcmp(name, "headers"))
        return false;
    for (size_t i = 0; i < m->n_headers; i++)
        ob_buf_printf(out, "%s=%s;", m->headers[i].name, m->headers[i].value);
    return true;
}

static void check_decode(const struct ob_test_row *row)
{
    json_t *rec = record_of(row);
    if (!rec)
        return;
    struct ob_record r = {0};
    struct ob_error err = {0};
    enum ob_err rc = decode_released(rec, &r, &err);
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        if (is_change(f->key))
            continue;
        struct ob_buf got = {0};
        if (rc != OB_OK)
            ob_buf_printf(&got, "%s", rc == OB_ERR_INVALID && !strcmp(f->key, "kind") ? "error" : err.msg);
        if (rc == OB_OK && !put_field(&got, &r, f->key))
            ob_test_row_fail(row, "unknown key %s", f->key);
        else if (strcmp(ob_buf_cstr(&got), f->value))
            ob_test_row_fail(row, "%s:\n  got      \"%s\"\n  expected \"%s\"", f->key, ob_buf_cstr(&got), f->value);
        ob_buf_free(&got);
    }
    ob_record_free(&r);
}

TEST(record_decodes_every_case_of_decode_cases_to_its_kind_and_fields)
{
    ob_test_each_row("tests/data/record/decode.cases", NULL, check_decode);
}

TEST(record_headers_keep_their_order_and_are_found_case_insensitively)
{
    struct ob_record r = {0};
    CHECK_INT(decode(insert_record(), &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.n_headers, 2);
    CHECK_STR(r.msg.headers[0].name, "Content-Type");
    CHECK_STR(r.msg.headers[0].value, "application/json");
    CHECK_STR(r.msg.headers[1].name, "tenant");
    CHECK_STR(ob_message_header(&r.msg, "content-type"), "application/json");
    CHECK_STR(ob_message_header(&r.msg, "TENANT"), "acme");
    CHECK(!ob_message_header(&r.msg, "missing"));
    ob_record_free(&r);
}

/* A decoded message's strings share one block sized from the image: the
 * densest headers text (one-character names and values), escapes that
 * shrink when decoded and a repeated name all fit, whole and in order. */
TEST(record_headers_of_every_density_decode_whole)
{
    json_t *obj = json_object();
    char name[2] = { 0 }, value[2] = { 0 };
    for (int i = 0; i < 52; i++) {
        name[0] = (char)(i < 26 ? 'a' + i : 'A' + i - 26);
        value[0] = (char)('0' + i % 10);
        json_object_set_new(obj, name, json_string(value));
    }
    json_object_set_new(obj, "\u00e9\n", json_string("\u00e9t\u00e9\t"));
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    json_t *rec = insert_record();
    json_object_set_new(new_image(rec), "headers", json_pack("{s:s}", "S", text));
    free(text);
    set_attr(rec, "pk", "{\"S\":\"caf\\u00e9 \\\"q\\\"\"}");
    struct ob_record r = {0};
    CHECK_INT(decode(rec, &r), OB_RECORD_MESSAGE);
    CHECK_INT(r.msg.n_headers, 53);
    CHECK_STR(r.msg.headers[0].name, "a");
    CHECK_STR(r.msg.headers[51].name, "Z");
    CHECK_STR(r.msg.headers[51].value, "1");
    CHECK_STR(r.msg.headers[52].name, "\u00e9\n");
    CHECK_STR(r.msg.headers[52].value, "\u00e9t\u00e9\t");
    CHECK_STR(r.msg.pk, "caf\u00e9 \"q\"");
    CHECK_STR((const char *)r.msg.payload, "{\"a\":1}");
    ob_record_free(&r);
}

/* The decimal forms a stream writes, read to the millisecond. */
TEST(record_approximate_creation_time_keeps_milliseconds_and_rounds_finer_fractions)
{
    static const struct {
        const char *text;
        int64_t ms;
    } cases[] = {
        { "1764108312", 1764108312000LL },    { "1764108312.1", 1764108312100LL },
        { "1764108312.12", 1764108312120LL }, { "1764108312.123", 1764108312123LL },
        { "1764108312.1236", 1764108312124LL }, { "1.7641083121e9", 1764108312100LL },
        { "0", 0 },                           { "99999999999.5", 99999999999500LL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_buf text = { 0 };
        const char *at = strstr(insert_json, "1764108312.5");
        ob_buf_append(&text, insert_json, (size_t)(at - insert_json));
        ob_buf_cat(&text, cases[i].text, at + strlen("1764108312.5"), NULL);
        struct ob_record r = { 0 };
        struct ob_error err;
        CHECK_INT(ob_record_decode_text(text.data, text.len, &r, &err), OB_OK);
        CHECK_INT(r.msg.approximate_creation_ms, cases[i].ms);
        ob_record_free(&r);
        ob_buf_free(&text);
    }
}

TEST(seq_compare_orders_decimal_strings_as_numbers)
{
    CHECK_INT(ob_seq_compare("000000000000000000123", "123"), 0);
    CHECK(ob_seq_compare("99", "100") < 0);
    CHECK(ob_seq_compare("100", "99") > 0);
    CHECK(ob_seq_compare("0000124", "123") > 0);
    CHECK(ob_seq_compare("49600000000000000000000000000000000000000000000000001",
                         "49600000000000000000000000000000000000000000000000002") < 0);
    CHECK_INT(ob_seq_compare("0", "000"), 0);
    CHECK_INT(ob_seq_compare("", "0"), 0);
}

/* xorshift64*: a fixed seed makes every run feed the same inputs. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}

/* Copies insert_json to text with one to four of its bytes replaced by
 * bytes of replacements, drawn from state. */
static void mutate(char text[sizeof insert_json], const char *replacements, uint64_t *state)
{
    size_t len = strlen(insert_json);
    memcpy(text, insert_json, sizeof insert_json);
    int edits = 1 + (int)(next_random(state) % 4);
    for (int e = 0; e < edits; e++)
        text[next_random(state) % len] = replacements[next_random(state) % strlen(replacements)];
}

TEST(record_decoder_survives_mutated_and_truncated_records)
{
    static const char replacements[] = "{}[]\":,0123456789aSNBOL \\tfn";
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    size_t len = strlen(insert_json);
    int decoded = 0;
    for (int round = 0; round < 2000; round++) {
        char text[sizeof insert_json];
        mutate(text, replacements, &state);
        if (next_random(&state) % 8 == 0)
            text[next_random(&state) % len] = 0;
        json_t *rec = json_loads(text, 0, NULL);
        if (!rec)
            continue;
        struct ob_record r = {0};
        struct ob_error err = {0};
        enum ob_err rc = decode_released(rec, &r, &err);
        decoded++;
        if (rc == OB_OK) {
            CHECK(r.msg.sequence_number);
            CHECK(r.kind == OB_RECORD_MESSAGE || r.kind == OB_RECORD_SKIP || r.kind == OB_RECORD_POISON ||
                  r.kind == OB_RECORD_NO_IMAGE);
            CHECK((r.kind == OB_RECORD_SKIP) == (r.skip_reason != NULL));
            CHECK((r.kind == OB_RECORD_POISON) == (r.poison_reason != NULL));
            if (r.kind == OB_RECORD_MESSAGE)
                CHECK(r.msg.pk && r.msg.sk && r.msg.payload);
        } else {
            CHECK_INT(rc, OB_ERR_INVALID);
        }
        ob_record_free(&r);
    }
    CHECK(decoded >= 300);
}

/* ---- GetRecords pages ---------------------------------------------------------- */

/* ob_records_page_decode on a copy of text in a buffer of exactly its
 * length: no terminator, so a read past the end is a heap overflow under
 * ASan. */
static enum ob_err decode_page(const char *text, struct ob_records_page *page, struct ob_error *err)
{
    size_t len = strlen(text);
    char *exact = malloc(len);
    if (len)
        memcpy(exact, text, len);
    enum ob_err rc = ob_records_page_decode(exact, len, page, err);
    free(exact);
    return rc;
}

/* insert_record() with eventName and SequenceNumber replaced. */
static json_t *record_with(const char *event, const char *seq)
{
    json_t *rec = insert_record();
    json_object_set_new(rec, "eventName", json_string(event));
    json_object_set_new(json_object_get(rec, "dynamodb"), "SequenceNumber", json_string(seq));
    return rec;
}

/* A GetRecords answer (owned text) holding records (stolen) and, unless
 * next is NULL, a NextShardIterator; flags as for json_dumps. */
static char *page_text_with(json_t *records, const char *next, size_t flags)
{
    json_t *top = json_object();
    json_object_set_new(top, "Records", records);
    if (next)
        json_object_set_new(top, "NextShardIterator", json_string(next));
    char *text = json_dumps(top, flags);
    json_decref(top);
    return text;
}

/* Decodes text as a page into *page (the caller frees it), checking that
 * it decodes to n_records records and n_malformed elements left out. */
#define CHECK_PAGE(text, page, n_records, n_malformed)             \
    do {                                                          \
        struct ob_error _err = {0};                               \
        CHECK_INT(decode_page((text), (page), &_err), OB_OK);     \
        CHECK_INT((page)->n, (n_records));                        \
        CHECK_INT((page)->malformed, (n_malformed));              \
    } while (0)

static char *page_text(json_t *records, const char *next)
{
    return page_text_with(records, next, JSON_COMPACT);
}

/* Whether decoding text as a page gives what jansson and ob_record_decode
 * give for each element of its Records: the records ob_record_decode
 * accepts, in order and equal field by field (record_difference), the
 * others counted as malformed, and the same NextShardIterator. Fails the
 * test, naming what, when not. */
static bool page_agrees_with_record_decode(const char *text, const char *what)
{
    json_t *top = json_loads(text, 0, NULL);
    if (!json_is_object(top)) {
        ob_test_fail(__FILE__, __LINE__, "%s: jansson does not read an object", what);
        json_decref(top);
        return false;
    }
    struct ob_records_page page;
    struct ob_error err = {0};
    if (decode_page(text, &page, &err) != OB_OK) {
        ob_test_fail(__FILE__, __LINE__, "%s: the page does not decode: %s", what, err.msg);
        json_decref(top);
        return false;
    }
    bool ok = true;
    const char *next = json_string_value(json_object_get(top, "NextShardIterator"));
    if (!record_diff_same_str(page.next_iterator, next)) {
        ob_test_fail(__FILE__, __LINE__, "%s: next_iterator \"%s\", expected \"%s\"", what,
                     page.next_iterator ? page.next_iterator : "(null)", next ? next : "(null)");
        ok = false;
    }
    size_t decoded = 0, malformed = 0, i;
    const json_t *rec;
    json_array_foreach(json_object_get(top, "Records"), i, rec) {
        struct ob_record want = {0};
        struct ob_error rerr = {0};
        if (ob_record_decode(rec, &want, &rerr) != OB_OK) {
            malformed++;
        } else if (decoded < page.n) {
            const char *field = record_difference(&page.records[decoded], &want);
            if (field && ok) {
                ob_test_fail(__FILE__, __LINE__, "%s: element %zu (record %zu, sequence number %s): %s differs",
                             what, i, decoded, want.msg.sequence_number, field);
                ok = false;
            }
            decoded++;
        } else {
            decoded++;
        }
        ob_record_free(&want);
    }
    if (ok && (page.n != decoded || page.malformed != malformed)) {
        ob_test_fail(__FILE__, __LINE__, "%s: %zu records and %zu malformed, expected %zu and %zu", what, page.n,
                     page.malformed, decoded, malformed);
        ok = false;
    }
    if (ok && page.malformed && !page.first_malformed[0]) {
        ob_test_fail(__FILE__, __LINE__, "%s: malformed elements without a reason", what);
        ok = false;
    }
    ob_records_page_free(&page);
    json_decref(top);
    return ok;
}

TEST(page_insert_modify_and_remove_decode_to_message_skip_skip)
{
    json_t *records = json_array();
    json_array_append_new(records, record_with("INSERT", "100"));
    json_array_append_new(records, record_with("MODIFY", "101"));
    json_array_append_new(records, record_with("REMOVE", "102"));
    char *text = page_text(records, "it-1");
    struct ob_records_page page;
    CHECK_PAGE(text, &page, 3, 0);
    CHECK_INT(page.records[0].kind, OB_RECORD_MESSAGE);
    CHECK_INT(page.records[1].kind, OB_RECORD_SKIP);
    CHECK_INT(page.records[2].kind, OB_RECORD_SKIP);
    CHECK_STR(page.records[1].skip_reason, "MODIFY");
    CHECK_STR(page.records[2].skip_reason, "REMOVE");
    static const char *const seqs[] = {"100", "101", "102"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(page.records[i].msg.sequence_number, seqs[i]);
        CHECK_INT(page.records[i].msg.approximate_creation_ms, 1764108312500LL);
        CHECK_INT(page.records[i].size_bytes, 321);
    }
    CHECK_STR(page.records[0].msg.pk, "order-1");
    CHECK_STR(page.records[0].msg.message_type, "OrderPlaced");
    CHECK_STR((const char *)page.records[0].msg.payload, "{\"a\":1}");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "INSERT, MODIFY, REMOVE"));
    free(text);
}

TEST(page_records_keep_stream_order)
{
    static const char *const events[] = {"REMOVE", "INSERT", "MODIFY", "INSERT", "MODIFY", "REMOVE", "INSERT"};
    const size_t n = sizeof events / sizeof events[0];
    json_t *records = json_array();
    char seq[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(seq, sizeof seq, "4960000000000000000000%zu", i + 1);
        json_array_append_new(records, record_with(events[i], seq));
    }
    char *text = page_text(records, NULL);
    struct ob_records_page page;
    CHECK_PAGE(text, &page, n, 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(seq, sizeof seq, "4960000000000000000000%zu", i + 1);
        CHECK_STR(page.records[i].msg.sequence_number, seq);
        CHECK_INT(page.records[i].kind, strcmp(events[i], "INSERT") == 0 ? OB_RECORD_MESSAGE : OB_RECORD_SKIP);
    }
    ob_records_page_free(&page);
    free(text);
}

TEST(page_elements_that_are_not_stream_records_are_counted_and_the_rest_decoded)
{
    json_t *records = json_array();
    json_array_append_new(records, record_with("INSERT", "1"));
    json_array_append_new(records, json_loads("{\"eventName\":\"MODIFY\",\"dynamodb\":{\"Keys\":{}}}", 0, NULL));
    json_array_append_new(records, json_integer(42));
    json_array_append_new(records, json_loads("{\"eventName\":\"INSERT\"}", 0, NULL));
    json_array_append_new(records, json_string("x"));
    json_array_append_new(records, json_null());
    json_array_append_new(records, json_array());
    json_array_append_new(records, json_loads("{\"eventName\":\"REMOVE\",\"dynamodb\":\"x\"}", 0, NULL));
    json_array_append_new(records, json_loads("{\"dynamodb\":{\"SequenceNumber\":7}}", 0, NULL));
    json_array_append_new(records, record_with("MODIFY", "2"));
    char *text = page_text(records, "it");
    struct ob_records_page page;
    CHECK_PAGE(text, &page, 2, 8);
    CHECK_STR(page.first_malformed, "not a stream record: no dynamodb.SequenceNumber");
    CHECK_STR(page.records[0].msg.sequence_number, "1");
    CHECK_INT(page.records[0].kind, OB_RECORD_MESSAGE);
    CHECK_STR(page.records[1].msg.sequence_number, "2");
    CHECK_STR(page.next_iterator, "it");
    ob_records_page_free(&page);
    CHECK(page_agrees_with_record_decode(text, "malformed elements"));
    free(text);

    /* A first element that is not an object gives the first reason. */
    CHECK_PAGE("{\"Records\":[5,{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"3\"}}]}", &page, 1, 1);
    CHECK(strncmp(page.first_malformed, "not a stream record", 19) == 0);
    ob_records_page_free(&page);
}

/* ---- page cases (tests/data/record/pages.cases) ------------------------------------ */

/* Appends what a pages.cases key says of page: records, malformed, next
 * or "record INDEX FIELD" (want's own INDEX and FIELD are taken from it);
 * false when the key says nothing of pages. */
static bool put_page_field(struct ob_buf *out, const struct ob_records_page *page, const struct ob_test_field *f,
                           const char **want)
{
    if (!strcmp(f->key, "records") || !strcmp(f->key, "malformed")) {
        ob_buf_printf(out, "%zu", !strcmp(f->key, "records") ? page->n : page->malformed);
    } else if (!strcmp(f->key, "next")) {
        ob_buf_puts(out, page->next_iterator ? page->next_iterator : "(null)");
    } else if (!strcmp(f->key, "record")) {
        size_t index = strtoul(f->value, NULL, 10);
        const char *field = f->value + strcspn(f->value, " ") + 1;
        size_t field_len = strcspn(field, " ");
        char *name = ob_xstrndup(field, field_len);
        *want = field + field_len + (field[field_len] == ' ');
        bool known = index < page->n && put_field(out, &page->records[index], name);
        free(name);
        return known;
    } else {
        return false;
    }
    return true;
}

static void check_page(const struct ob_test_row *row)
{
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        if (!strcmp(f->key, "invalid")) {
            struct ob_records_page page;
            struct ob_error err = {0};
            enum ob_err rc = decode_page(f->value, &page, &err);
            if (rc == OB_OK)
                ob_records_page_free(&page);
            if (rc != OB_ERR_INVALID || err.code != OB_ERR_INVALID || !err.msg[0] ||
                (rc != OB_OK && (page.n || page.records || page.next_iterator)))
                ob_test_row_fail(row, "%s: rc %d, expected OB_ERR_INVALID with a message and no records", f->value,
                                 rc);
        }
    }
    const char *text = ob_test_row_get(row, "page");
    if (!text)
        return;
    struct ob_records_page page;
    struct ob_error err = {0};
    if (decode_page(text, &page, &err) != OB_OK) {
        ob_test_row_fail(row, "the page does not decode: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        const char *want = f->value;
        struct ob_buf got = {0};
        if (!strcmp(f->key, "page"))
            continue;
        if (!put_page_field(&got, &page, f, &want))
            ob_test_row_fail(row, "%s %s: no such key, record or field", f->key, f->value);
        else if (strcmp(ob_buf_cstr(&got), want))
            ob_test_row_fail(row, "%s %s:\n  got      \"%s\"", f->key, f->value, ob_buf_cstr(&got));
        ob_buf_free(&got);
    }
    ob_records_page_free(&page);
    char what[64];
    snprintf(what, sizeof what, "pages.cases:%d", row->line);
    page_agrees_with_record_decode(text, what);
}

TEST(page_decodes_every_answer_of_pages_cases)
{
    ob_test_each_row("tests/data/record/pages.cases", NULL, check_page);
}

TEST(page_compact_and_indented_decode_to_the_same_records)
{
    json_t *records = json_array();
    json_array_append_new(records, insert_record());
    json_array_append_new(records, record_with("MODIFY", "7"));
    char *compact = page_text(json_deep_copy(records), "it");
    char *indented = page_text_with(records, "it", JSON_INDENT(3));
    struct ob_records_page a, b;
    CHECK_PAGE(compact, &a, 2, 0);
    CHECK_PAGE(indented, &b, 2, 0);
    for (size_t i = 0; i < 2; i++) {
        const char *field = record_difference(&a.records[i], &b.records[i]);
        CHECK_STR(field ? field : "", "");
    }
    ob_records_page_free(&a);
    ob_records_page_free(&b);
    free(compact);
    free(indented);
}

/* The length of the first proper prefix of text that decodes, each
 * prefix in a buffer of exactly its length; (size_t)-1 when none does. */
static size_t first_accepted_prefix(const char *text)
{
    size_t len = strlen(text);
    for (size_t cut = 0; cut < len; cut++) {
        char *exact = malloc(cut);
        if (cut)
            memcpy(exact, text, cut);
        struct ob_records_page page;
        struct ob_error err = {0};
        enum ob_err rc = ob_records_page_decode(exact, cut, &page, &err);
        free(exact);
        if (rc == OB_OK) {
            ob_records_page_free(&page);
            return cut;
        }
    }
    return (size_t)-1;
}

/* Runs in a child process: under ASan a read past a cut aborts it, and
 * that fails this test alone instead of ending the binary. */
TEST(page_truncated_answer_is_invalid_without_reading_past_its_end)
{
    json_t *records = json_array();
    json_array_append_new(records, insert_record());
    json_array_append_new(records, json_integer(1));
    json_array_append_new(records, record_with("REMOVE", "5"));
    char *compact = page_text(json_deep_copy(records), "it");
    char *indented = page_text_with(records, "it", JSON_INDENT(1));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        const char *texts[] = {compact, indented};
        for (size_t t = 0; t < 2; t++) {
            size_t cut = first_accepted_prefix(texts[t]);
            if (cut != (size_t)-1) {
                printf("  the first %zu bytes decode: %.*s\n", cut, (int)cut, texts[t]);
                fflush(stdout);
                _exit(3);
            }
        }
        _exit(0);
    }
    free(compact);
    free(indented);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        ob_test_fail(__FILE__, __LINE__, "killed by signal %d (a sanitizer report above?)", WTERMSIG(status));
    else if (WEXITSTATUS(status) == 3)
        ob_test_fail(__FILE__, __LINE__, "a truncated answer decodes");
    else if (WEXITSTATUS(status) != 0)
        ob_test_fail(__FILE__, __LINE__, "exit status %d (a sanitizer report above?)", WEXITSTATUS(status));
}

/* Every variant so far, for one page of all of them at the end. */
static json_t *every_variant;

/* The row's variant alone in a page, compact and indented. */
static void check_variant(const struct ob_test_row *row)
{
    json_t *rec = record_of(row);
    if (!rec)
        return;
    json_array_append(every_variant, rec);
    char what[64];
    for (int indent = 0; indent < 2; indent++) {
        json_t *one = json_array();
        json_array_append(one, rec);
        char *text = page_text_with(one, indent ? "next" : NULL, indent ? JSON_INDENT(2) : JSON_COMPACT);
        snprintf(what, sizeof what, "variants.cases:%d%s", row->line, indent ? " indented" : "");
        page_agrees_with_record_decode(text, what);
        free(text);
    }
    json_decref(rec);
}

/* The variants are tests/data/record/variants.cases. */
TEST(page_decode_agrees_with_ob_record_decode_element_by_element)
{
    static const char *const keys[] = {"attr", "set", "element", NULL};
    every_variant = json_array();
    ob_test_each_row("tests/data/record/variants.cases", keys, check_variant);
    char *text = page_text(every_variant, "it");
    every_variant = NULL;
    bool ok = page_agrees_with_record_decode(text, "every variant in one page");
    free(text);
    CHECK(ok);
}

TEST(page_decode_agrees_with_ob_record_decode_on_mutated_records)
{
    static const char replacements[] = "{}[]\":,0123456789aSNBOL \\tfnu";
    static const char modify[] = "{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"9\"}}";
    uint64_t state = 0x2545f4914f6cdd1dULL;
    int compared = 0;
    for (int round = 0; round < 2000; round++) {
        char text[sizeof insert_json];
        mutate(text, replacements, &state);
        /* The page as sent, whatever it holds: decoded or refused, never a crash. */
        struct ob_buf raw = {0};
        ob_buf_printf(&raw, "{\"Records\":[%s,%s]}", modify, text);
        struct ob_records_page page;
        struct ob_error err = {0};
        if (decode_page(ob_buf_cstr(&raw), &page, &err) == OB_OK)
            ob_records_page_free(&page);
        else
            CHECK(page.n == 0 && !page.records && !page.next_iterator);
        /* Its canonical form (no duplicate keys) against jansson. */
        json_t *top = json_loads(ob_buf_cstr(&raw), 0, NULL);
        ob_buf_free(&raw);
        if (!top)
            continue;
        char *canonical = json_dumps(top, JSON_COMPACT);
        json_decref(top);
        char what[64];
        snprintf(what, sizeof what, "mutation round %d", round);
        bool ok = page_agrees_with_record_decode(canonical, what);
        if (!ok)
            printf("  page: %s\n", canonical);
        free(canonical);
        if (!ok)
            return;
        compared++;
    }
    CHECK(compared >= 300);
}

TEST(page_decode_agrees_with_ob_record_decode_on_unusual_json_text)
{
    /* Valid JSON without duplicate keys, as jansson would not write it. */
    static const char *const texts[] = {
        "{\"Records\":[{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":1.7641083125E9,\"SizeBytes\":3.21e2}}]}",
        "{\"Records\":[{\"eventName\":\"REMOVE\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":1764108312.500000000000000000000000000000000000000000000000000000000000001,"
        "\"SizeBytes\":-0}}]}",
        "{\"Records\":[{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"1\","
        "\"ApproximateCreationDateTime\":0.000000000000000000000000000000000000000000000000000000000000001e72}}]}",
        "{\"Records\":[{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"\\u0032\","
        "\"NewImage\":{\"pk\":{\"S\":\"\\ud83d\\ude00\"},\"sk\":{\"S\":\"\\u2028\"},"
        "\"payload\":{\"S\":\"eyJhIjoxfQ==\"},"
        "\"retryCount\":{\"N\":\"1e0\"},\"headers\":{\"S\":\"{ \\\"a\\\" : \\\"\\\\u00e9\\\" }\"}}}}],"
        "\"NextShardIterator\":\"\\u2028\\ud83d\\ude00\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "text %zu", i);
        page_agrees_with_record_decode(texts[i], what);
    }
}
