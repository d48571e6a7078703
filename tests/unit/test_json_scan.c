/* The JSON pull scanner (core/json_scan.h): walking objects and arrays,
 * the spans of strings and numbers, skipping whole values, and that
 * malformed text sets `failed` without reading past the end. Every input
 * is copied into a buffer of exactly its length, with no terminator, so
 * that a read past len is a heap overflow under ASan. */
#include "test.h"

#include <stdbool.h>

#include "core/buf.h"
#include "core/json_scan.h"

/* ---- inputs ------------------------------------------------------------------- */

/* text[0..len) in a buffer of exactly len bytes, and a scanner on it. */
struct input {
    char *text;
    struct ob_jscan s;
};

static struct ob_jscan *open_bytes(struct input *in, const char *text, size_t len)
{
    in->text = malloc(len);
    if (len && !in->text)
        abort();
    if (len)
        memcpy(in->text, text, len);
    ob_jscan_init(&in->s, in->text, len);
    return &in->s;
}

static struct ob_jscan *open_text(struct input *in, const char *text)
{
    return open_bytes(in, text, strlen(text));
}

static void close_input(struct input *in)
{
    free(in->text);
    in->text = NULL;
}

/* A span's bytes as a C string for CHECK_STR (four can be in use at once). */
static const char *span_text(const struct ob_jspan *v)
{
    static char bufs[4][512];
    static unsigned next;
    char *b = bufs[next++ % 4];
    size_t n = v->len < sizeof bufs[0] - 1 ? v->len : sizeof bufs[0] - 1;
    if (n)
        memcpy(b, v->s, n);
    b[n] = 0;
    return b;
}

/* Appends a string's span as it stands, quoted; e"..." when the span is
 * marked escaped. */
static void put_string(struct ob_buf *trace, const struct ob_jspan *v)
{
    ob_buf_printf(trace, "%s\"%.*s\"", v->escaped ? "e" : "", (int)v->len, v->s);
}

/* Walks the next value as a decoder does: containers with object/key and
 * array/element, strings and numbers read, literals skipped. What it
 * reads goes to trace as compact JSON (the spans of strings and numbers
 * as they stand, put_string's e"..." for an escaped string), ending in
 * '!' where the scanner failed. */
static bool walk(struct ob_jscan *s, struct ob_buf *trace)
{
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    char c = p < s->end ? *p : 0;
    struct ob_jspan v;
    bool ok;
    if (c == '{' || c == '[') {
        bool object = c == '{';
        ok = object ? ob_jscan_object(s) : ob_jscan_array(s);
        if (ok)
            ob_buf_putc(trace, c);
        for (size_t n = 0; ok && (object ? ob_jscan_key(s, &v) : ob_jscan_element(s)); n++) {
            if (n)
                ob_buf_putc(trace, ',');
            if (object) {
                put_string(trace, &v);
                ob_buf_putc(trace, ':');
            }
            if (!walk(s, trace))
                return false;
        }
        ok = ok && !s->failed;
        if (ok)
            ob_buf_putc(trace, object ? '}' : ']');
    } else if (c == '"') {
        ok = ob_jscan_string(s, &v);
        if (ok)
            put_string(trace, &v);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        ok = ob_jscan_number(s, &v);
        if (ok)
            ob_buf_printf(trace, "%.*s", (int)v.len, v.s);
    } else {
        ok = ob_jscan_skip(s);
        size_t len = (size_t)(s->p - p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r' || p[len - 1] == '\n'))
            len--;
        if (ok)
            ob_buf_append(trace, p, len);
    }
    if (!ok)
        ob_buf_putc(trace, '!');
    return ok;
}

/* Whether text[0..len) is accepted as one value and nothing after it,
 * read by walking / by one skip. */
static bool walks_bytes(const char *text, size_t len)
{
    struct input in;
    struct ob_jscan *s = open_bytes(&in, text, len);
    struct ob_buf trace = {0};
    bool ok = walk(s, &trace) && ob_jscan_done(s);
    ob_buf_free(&trace);
    close_input(&in);
    return ok;
}

static bool skips_bytes(const char *text, size_t len)
{
    struct input in;
    struct ob_jscan *s = open_bytes(&in, text, len);
    bool ok = ob_jscan_skip(s) && ob_jscan_done(s);
    close_input(&in);
    return ok;
}

static bool walks(const char *text)
{
    return walks_bytes(text, strlen(text));
}

static bool skips(const char *text)
{
    return skips_bytes(text, strlen(text));
}

/* Reads the elements of the array text with read (ob_jscan_string,
 * _number, _object_span): the first `others` are of another kind, each
 * skipped without failing (false, the span zeroed); the last is read as
 * `last`. */
static void check_reads_only_its_kind(bool (*read)(struct ob_jscan *, struct ob_jspan *), const char *text,
                                      int others, const char *last)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, text);
    struct ob_jspan v;
    CHECK(ob_jscan_array(s));
    for (int i = 0; i < others; i++) {
        CHECK(ob_jscan_element(s));
        v.s = in.text;
        CHECK(!read(s, &v));
        CHECK(v.s == NULL && v.len == 0);
        CHECK(!s->failed);
    }
    CHECK(ob_jscan_element(s));
    CHECK(read(s, &v));
    CHECK_STR(span_text(&v), last);
    CHECK(!ob_jscan_element(s));
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

/* Whether call, the first call on text, returns false and fails the scanner. */
static bool call_fails(const char *text, bool (*call)(struct ob_jscan *))
{
    struct input in;
    struct ob_jscan *s = open_text(&in, text);
    bool done = call(s), failed = s->failed;
    close_input(&in);
    return !done && failed;
}

static bool read_string(struct ob_jscan *s)
{
    struct ob_jspan v;
    return ob_jscan_string(s, &v);
}

/* ---- walking and reading ---------------------------------------------------------- */

/* text: walked gives trace: (see walk); when the trace does not end in
 * '!', nothing follows the value and skipping accepts the text too. */
static void check_walk(const struct ob_test_row *row)
{
    const struct ob_test_field *text = ob_test_row_field(row, "text");
    const char *want = ob_test_row_get(row, "trace");
    if (!text || !want) {
        ob_test_row_fail(row, "text: and trace: are required");
        return;
    }
    struct input in;
    struct ob_jscan *s = open_bytes(&in, text->value, text->len);
    struct ob_buf trace = {0};
    bool walked = walk(s, &trace), done = walked && ob_jscan_done(s);
    close_input(&in);
    if (strcmp(ob_buf_cstr(&trace), want))
        ob_test_row_fail(row, "trace:\n  got      %s\n  expected %s", ob_buf_cstr(&trace), want);
    else if (walked && !done)
        ob_test_row_fail(row, "more text follows the value");
    else if (skips_bytes(text->value, text->len) != walked)
        ob_test_row_fail(row, "skipping %s", walked ? "refuses it" : "accepts it");
    ob_buf_free(&trace);
}

TEST(jscan_walks_every_text_of_walks_cases_as_its_trace)
{
    static const char *const keys[] = {"text", "trace", NULL};
    ob_test_each_row("tests/data/json_scan/walks.cases", keys, check_walk);
}

TEST(jscan_string_span_is_the_text_between_the_quotes)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "\"hello, world\"");
    struct ob_jspan v;
    CHECK(ob_jscan_string(s, &v));
    CHECK(v.s == in.text + 1);
    CHECK_INT(v.len, 12);
    CHECK(!v.escaped);
    CHECK(ob_jscan_done(s));
    close_input(&in);

    s = open_text(&in, "\"\"");
    CHECK(ob_jscan_string(s, &v));
    CHECK_INT(v.len, 0);
    CHECK(!v.escaped);
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

TEST(jspan_is_matches_only_the_same_unescaped_text)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "[\"Records\",\"Record\",\"Recordsx\",\"Rec\\u006frds\",\"\"]");
    struct ob_jspan v;
    bool want[] = {true, false, false, false, false};
    CHECK(ob_jscan_array(s));
    for (size_t i = 0; i < 5; i++) {
        CHECK(ob_jscan_element(s));
        CHECK(ob_jscan_string(s, &v));
        CHECK_INT(ob_jspan_is(&v, "Records"), want[i]);
    }
    CHECK(ob_jspan_is(&v, ""));
    close_input(&in);
}

/* ---- skipping --------------------------------------------------------------------- */

TEST(jscan_skip_passes_over_every_kind_of_value)
{
    static const char *const values[] = {
        "\"s\"", "\"\"", "12", "-0.5e-2", "true", "false", "null", "{}", "[]",
        "{\"a\":[1,{\"b\":null}],\"c\":{\"d\":[true,false,\"x\"]}}", "[[[\"x\"]],{},[]]",
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        if (!skips(values[i]) || !walks(values[i])) {
            ob_test_fail(__FILE__, __LINE__, "not skipped: %s", values[i]);
            return;
        }
    }
    /* All of them as the elements of one array, each skipped in turn. */
    char all[512] = "[";
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        strcat(all, values[i]);
        strcat(all, i + 1 < sizeof values / sizeof values[0] ? "," : "]");
    }
    struct input in;
    struct ob_jscan *s = open_text(&in, all);
    size_t n = 0;
    CHECK(ob_jscan_array(s));
    while (ob_jscan_element(s)) {
        CHECK(ob_jscan_skip(s));
        n++;
    }
    CHECK(!s->failed);
    CHECK_INT(n, sizeof values / sizeof values[0]);
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

/* text is an array of a value and the string "next": the value is
 * skipped and "next" read after it. */
static bool skips_first_then_reads_next(const char *text, bool trusted)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, text);
    s->trusted = trusted;
    struct ob_jspan v;
    bool ok = ob_jscan_array(s) && ob_jscan_element(s) && ob_jscan_skip(s) && ob_jscan_element(s) &&
              ob_jscan_string(s, &v) && strcmp(span_text(&v), "next") == 0 && !ob_jscan_element(s) &&
              ob_jscan_done(s);
    close_input(&in);
    return ok;
}

TEST(jscan_skip_ignores_brackets_braces_and_quotes_inside_strings)
{
    /* [{"a":"}]{[\"\\","]":["}",{"{":"["}]},"next"] */
    CHECK(skips_first_then_reads_next("[{\"a\":\"}]{[\\\"\\\\\",\"]\":[\"}\",{\"{\":\"[\"}]},\"next\"]", false));
}

/* A trusted scanner (GetRecords pages) follows a skipped container only
 * for its extent, so it must find the same end as a checking one. */
TEST(jscan_trusted_skip_finds_the_end_past_brackets_quotes_and_backslash_runs_in_strings)
{
    /* [{"a":"}]{[\"\\","]":["}",{"{":"[\\\\"}],"b":"x\\\"]"},"next"] */
    static const char text[] =
        "[{\"a\":\"}]{[\\\"\\\\\",\"]\":[\"}\",{\"{\":\"[\\\\\\\\\"}],\"b\":\"x\\\\\\\"]\"},\"next\"]";
    CHECK(skips_first_then_reads_next(text, true));
    CHECK(skips_first_then_reads_next(text, false));
}

TEST(jscan_trusted_skip_passes_over_what_it_does_not_read_but_reads_strictly)
{
    /* A raw tab inside a skipped image, then one inside a string that is read. */
    struct input in;
    struct ob_jscan *s = open_text(&in, "[{\"img\":{\"S\":\"a\tb\"}},\"c\td\"]");
    s->trusted = true;
    struct ob_jspan v;
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_skip(s));
    CHECK(ob_jscan_element(s));
    CHECK(!ob_jscan_string(s, &v));
    close_input(&in);
    CHECK(!skips("{\"img\":{\"S\":\"a\tb\"}}"));
}

TEST(jscan_trusted_skip_of_a_cut_container_fails)
{
    static const char *const cut[] = { "{\"a\":[1,2]", "[\"]\"", "{\"a\":\"b\\\"}", "[[[]]" };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, cut[i]);
        s->trusted = true;
        CHECK(!ob_jscan_skip(s));
        close_input(&in);
    }
}

/* n nested arrays, or objects {"a":...} when objects, around 1. */
static char *nested(size_t n, bool objects)
{
    char *t = malloc(n * 6 + 2), *p = t;
    for (size_t i = 0; i < n; i++) {
        if (objects) {
            memcpy(p, "{\"a\":", 5);
            p += 5;
        } else {
            *p++ = '[';
        }
    }
    *p++ = '1';
    for (size_t i = 0; i < n; i++)
        *p++ = objects ? '}' : ']';
    *p = 0;
    return t;
}

TEST(jscan_skip_passes_over_nesting_up_to_the_limit)
{
    for (int objects = 0; objects < 2; objects++) {
        char *t = nested(OB_JSCAN_MAX_DEPTH, objects);
        bool ok = skips(t);
        free(t);
        CHECK(ok);
    }
}

TEST(jscan_nesting_beyond_the_limit_fails)
{
    for (int objects = 0; objects < 2; objects++) {
        char *t = nested(OB_JSCAN_MAX_DEPTH + 1, objects);
        struct input in;
        struct ob_jscan *s = open_text(&in, t);
        free(t);
        CHECK(!ob_jscan_skip(s));
        CHECK(s->failed);
        close_input(&in);
    }
    char *t = nested(100000, false);
    bool ok = skips(t);
    free(t);
    CHECK(!ok);
}

TEST(jscan_string_on_another_kind_of_value_skips_it_without_failing)
{
    check_reads_only_its_kind(ob_jscan_string, "[1, {\"a\":\"b\",\"c\":[\"]\"]}, null, true, [1,[2]], \"x\"]", 5, "x");
}

TEST(jscan_number_on_another_kind_of_value_skips_it_without_failing)
{
    check_reads_only_its_kind(ob_jscan_number, "[\"1\", {\"a\":1}, null, false, [1], -2]", 5, "-2");
}

TEST(jscan_object_or_array_on_another_kind_of_value_fails)
{
    static const char *const not_objects[] = {"[]", "\"{\"", "1", "null", ""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++)
        CHECK(call_fails(not_objects[i], ob_jscan_object));
    CHECK(call_fails("{}", ob_jscan_array));
}

TEST(jscan_try_object_or_array_enters_its_kind_and_skips_any_other_without_failing)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "[\"{\", 1, null, [{}], {\"a\":[1]}, true, \"[\", {\"b\":2}]");
    struct ob_jspan k;
    CHECK(ob_jscan_array(s));
    for (int i = 0; i < 4; i++) {
        CHECK(ob_jscan_element(s));
        CHECK(!ob_jscan_try_object(s));
        CHECK(!s->failed);
    }
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_try_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "a");
    CHECK(ob_jscan_try_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_element(s));
    CHECK(!ob_jscan_key(s, &k));
    for (int i = 0; i < 3; i++) {
        CHECK(ob_jscan_element(s));
        CHECK(!ob_jscan_try_array(s));
        CHECK(!s->failed);
    }
    CHECK(!ob_jscan_element(s));
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

TEST(jscan_try_object_or_array_skipping_a_malformed_value_fails)
{
    static const char *const not_objects[] = {"[1 2]", "[1,]", "\"abc", "tru", ""};
    static const char *const not_arrays[] = {"{\"a\" 1}", "{\"a\":1,}", "\"abc", "tru", ""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++)
        if (!call_fails(not_objects[i], ob_jscan_try_object))
            ob_test_fail(__FILE__, __LINE__, "try_object did not fail: %s", not_objects[i]);
    for (size_t i = 0; i < sizeof not_arrays / sizeof not_arrays[0]; i++)
        if (!call_fails(not_arrays[i], ob_jscan_try_array))
            ob_test_fail(__FILE__, __LINE__, "try_array did not fail: %s", not_arrays[i]);
}

TEST(jscan_object_span_is_the_whole_object_from_brace_to_brace)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "{\"k\": \n {\"a\":[1,{}], \"b\":\"}\"} ,\"m\":{}}");
    struct ob_jspan k, v;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_object_span(s, &v));
    CHECK(v.s == in.text + 8);
    CHECK_STR(span_text(&v), "{\"a\":[1,{}], \"b\":\"}\"}");
    CHECK(!v.escaped);
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_object_span(s, &v));
    CHECK_STR(span_text(&v), "{}");
    CHECK(!ob_jscan_key(s, &k));
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

TEST(jscan_object_span_on_another_kind_of_value_skips_it_without_failing)
{
    check_reads_only_its_kind(ob_jscan_object_span, "[[{}], \"{}\", 1, null, false, {\"a\":1}]", 5, "{\"a\":1}");
}

TEST(jscan_object_span_of_a_malformed_object_fails_with_no_span)
{
    static const char *const texts[] = {"{\"a\":}", "{\"a\":1", "{\"a\":1,}", "{1:2}"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, texts[i]);
        struct ob_jspan v;
        bool read = ob_jscan_object_span(s, &v);
        bool failed = s->failed;
        close_input(&in);
        if (read || !failed || v.s) {
            ob_test_fail(__FILE__, __LINE__, "%s: read %d, failed %d", texts[i], read, failed);
            return;
        }
    }
}

/* ---- malformed text ------------------------------------------------------------------- */

/* Each rejected: text is refused by walking and by skipping, each
 * walk-rejects: / skip-rejects: text by that one. */
static void check_rejected(const struct ob_test_row *row)
{
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        bool by_walk = strcmp(f->key, "skip-rejects") != 0, by_skip = strcmp(f->key, "walk-rejects") != 0;
        if (by_walk && walks_bytes(f->value, f->len))
            ob_test_row_fail(row, "walking accepts %s", f->value);
        if (by_skip && skips_bytes(f->value, f->len))
            ob_test_row_fail(row, "skipping accepts %s", f->value);
    }
}

TEST(jscan_refuses_every_text_of_rejected_cases)
{
    static const char *const keys[] = {"rejected", "walk-rejects", "skip-rejects", NULL};
    ob_test_each_row("tests/data/json_scan/rejected.cases", keys, check_rejected);
}

TEST(jscan_reading_an_unterminated_string_fails)
{
    CHECK(call_fails("\"abc", read_string));
}

TEST(jscan_skipping_mismatched_brackets_fails)
{
    CHECK(call_fails("[}", ob_jscan_skip));
}

TEST(jscan_empty_input_fails)
{
    static const char *const texts[] = {"", " ", "\n\t\r "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        CHECK(call_fails(texts[i], ob_jscan_skip));
        CHECK(call_fails(texts[i], read_string));
        CHECK(call_fails(texts[i], ob_jscan_object));
    }
}

TEST(jscan_garbage_after_the_value_is_not_done)
{
    static const char *const texts[] = {"{} x", "{}}", "[]]", "1 2", "\"a\"\"b\"", "{},{}", "null,", "true false",
                                        "{\"a\":1} {"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, texts[i]);
        bool skipped = ob_jscan_skip(s);
        bool done = ob_jscan_done(s);
        close_input(&in);
        if (!skipped || done) {
            ob_test_fail(__FILE__, __LINE__, "%s: skip %d, done %d", texts[i], skipped, done);
            return;
        }
    }
    static const char nul_after[] = "{}\0";
    CHECK(!skips_bytes(nul_after, sizeof nul_after - 1));
    CHECK(skips("{} \n"));
}

TEST(jscan_after_a_failure_every_call_returns_false)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "[1 2, {\"a\":\"b\"}, \"c\"]");
    struct ob_jspan v;
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_element(s));
    CHECK(s->failed);
    CHECK(!ob_jscan_element(s));
    CHECK(!ob_jscan_skip(s));
    CHECK(!ob_jscan_string(s, &v));
    CHECK(!ob_jscan_number(s, &v));
    CHECK(!ob_jscan_object(s));
    CHECK(!ob_jscan_array(s));
    CHECK(!ob_jscan_try_object(s));
    CHECK(!ob_jscan_try_array(s));
    CHECK(!ob_jscan_object_span(s, &v));
    CHECK(!ob_jscan_key(s, &v));
    CHECK(!ob_jscan_done(s));
    CHECK(s->failed);
    close_input(&in);
}

/* ---- bounds ----------------------------------------------------------------------------- */

TEST(jscan_every_proper_prefix_of_a_document_fails_without_reading_past_it)
{
    static const char doc[] =
        "{\"Records\":[{\"eventName\":\"MODIFY\",\"dynamodb\":{\"SequenceNumber\":\"12\",\"SizeBytes\":-1.5e3,"
        "\"NewImage\":{\"s\":{\"S\":\"a\\\"b\\\\\\u00e9\"},\"l\":{\"L\":[true,false,null,[],{}]}}}}],"
        "\"NextShardIterator\":null}";
    CHECK(walks(doc));
    CHECK(skips(doc));
    for (size_t len = 0; len < sizeof doc - 1; len++) {
        if (walks_bytes(doc, len) || skips_bytes(doc, len)) {
            ob_test_fail(__FILE__, __LINE__, "prefix of %zu bytes accepted: %.*s", len, (int)len, doc);
            return;
        }
    }
}

TEST(jscan_bytes_past_len_are_not_part_of_the_text)
{
    /* Each text is complete only with the bytes after len. */
    static const struct {
        const char *text;
        size_t len;
    } cut[] = {
        {"\"ab\"", 3}, {"[1]", 2}, {"true", 3}, {"null", 2}, {"\"\\u0041\"", 6}, {"\"a\\\"\"", 4},
        {"{\"a\":1}", 6}, {"{\"a\":1}", 4}, {"[\"x\",1]", 5},
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        /* The whole text is in the buffer; the scanner is told fewer bytes. */
        size_t full = strlen(cut[i].text);
        char *buf = malloc(full);
        memcpy(buf, cut[i].text, full);
        struct ob_jscan s;
        ob_jscan_init(&s, buf, cut[i].len);
        bool skipped = ob_jscan_skip(&s) && ob_jscan_done(&s);
        ob_jscan_init(&s, buf, cut[i].len);
        struct ob_buf trace = {0};
        bool walked = walk(&s, &trace) && ob_jscan_done(&s);
        ob_buf_free(&trace);
        free(buf);
        if (skipped || walked) {
            ob_test_fail(__FILE__, __LINE__, "%.*s (of %s) accepted", (int)cut[i].len, cut[i].text, cut[i].text);
            return;
        }
    }
    /* A number ends at len even when digits follow in memory. */
    static const char digits[] = "12345";
    struct ob_jscan s;
    struct ob_jspan v;
    ob_jscan_init(&s, digits, 2);
    CHECK(ob_jscan_number(&s, &v));
    CHECK_STR(span_text(&v), "12");
    CHECK(ob_jscan_done(&s));
}

/* The decoded string of a JSON string literal's contents (between the
 * quotes), or NULL when it does not decode. */
static char *dup_of(const char *contents)
{
    struct ob_jspan v = { contents, strlen(contents), strchr(contents, '\\') != NULL };
    return ob_jspan_dup(&v);
}

TEST(jspan_dup_decodes_every_escape_to_utf8)
{
    static const char *const cases[][2] = {
        { "plain", "plain" },
        { "a\\\"b\\\\c\\/d", "a\"b\\c/d" },
        { "\\b\\f\\n\\r\\t", "\b\f\n\r\t" },
        { "caf\\u00e9", "caf\xc3\xa9" },
        { "\\u20AC", "\xe2\x82\xac" },
        { "\\ud83d\\ude00!", "\xf0\x9f\x98\x80!" },
        { "{\\\"traceparent\\\":\\\"00-ab\\\"}", "{\"traceparent\":\"00-ab\"}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = dup_of(cases[i][0]);
        CHECK_STR(got, cases[i][1]);
        free(got);
    }
}

TEST(jspan_dup_refuses_nul_lone_surrogates_and_bad_utf8)
{
    static const char *const bad[] = { "\\u0000", "a\\ud83d", "\\ud83dx", "\\ude00", "\\ud83d\\u0041",
                                       "\\x", "\\u12", "bad \xff byte" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *got = dup_of(bad[i]);
        if (got) {
            ob_test_fail(__FILE__, __LINE__, "'%s' decoded to '%s'", bad[i], got);
            free(got);
        }
    }
}

TEST(a_number_span_reads_as_strtod_reads_it)
{
    static const char *const texts[] = { "0",       "1",    "1.0",    "0.5",   "12.25",  "123456789012345",
                                         "1234567890123456", "0.1", "2.675", "-1.5", "1e3", "1.5E-2",
                                         "0.000000000000001", "9007199254740993" };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct ob_jspan v = { .s = texts[i], .len = strlen(texts[i]) };
        double want = strtod(texts[i], NULL), got = ob_jspan_double(&v);
        if (got != want)
            CHECK_STR(texts[i], "reads as strtod does");
    }
}
