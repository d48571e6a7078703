/* The JSON pull scanner (core/json_scan.h): walking objects and arrays,
 * the spans of strings and numbers, skipping whole values, and that
 * malformed text sets `failed` without reading past the end. Every input
 * is copied into a buffer of exactly its length, with no terminator, so
 * that a read past len is a heap overflow under ASan. */
#include "test.h"

#include <stdbool.h>

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

/* Walks the next value as a decoder does: containers with object/key and
 * array/element, scalars with skip. */
static bool walk(struct ob_jscan *s)
{
    const char *p = s->p;
    while (p < s->end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    char c = p < s->end ? *p : 0;
    struct ob_jspan key;
    if (c == '{') {
        if (!ob_jscan_object(s))
            return false;
        while (ob_jscan_key(s, &key))
            if (!walk(s))
                return false;
        return !s->failed;
    }
    if (c == '[') {
        if (!ob_jscan_array(s))
            return false;
        while (ob_jscan_element(s))
            if (!walk(s))
                return false;
        return !s->failed;
    }
    return ob_jscan_skip(s);
}

/* Whether text[0..len) is accepted as one value and nothing after it,
 * read by walking / by one skip. */
static bool walks_bytes(const char *text, size_t len)
{
    struct input in;
    struct ob_jscan *s = open_bytes(&in, text, len);
    bool ok = walk(s) && ob_jscan_done(s);
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

/* Checks that accepts (walks or skips) rejects each of a list of texts,
 * naming every one it accepts. */
#define CHECK_NONE_ACCEPTED(list, accepts)                                                          \
    do {                                                                                            \
        for (size_t _i = 0; _i < sizeof(list) / sizeof(list)[0]; _i++)                              \
            if (accepts((list)[_i]))                                                                \
                ob_test_fail(__FILE__, __LINE__, "%s accepted: %s", #accepts, (list)[_i]);          \
        if (ob_test_failed_now)                                                                     \
            return;                                                                                 \
    } while (0)

/* Checks that each of a list of texts is rejected both ways. */
#define CHECK_ALL_REJECTED(list)                                                                    \
    do {                                                                                            \
        CHECK_NONE_ACCEPTED(list, walks);                                                           \
        CHECK_NONE_ACCEPTED(list, skips);                                                           \
    } while (0)

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

/* ---- walking and reading ---------------------------------------------------------- */

TEST(jscan_walks_nested_objects_and_arrays_reading_keys_and_values)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "{\"a\":{\"b\":[1,\"two\",{\"c\":true}],\"d\":{}},\"e\":[],\"f\":\"g\"}");
    struct ob_jspan k, v;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "a");
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "b");
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_number(s, &v));
    CHECK_STR(span_text(&v), "1");
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "two");
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "c");
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_key(s, &k));   /* end of {"c":true} */
    CHECK(!ob_jscan_element(s));   /* end of the array */
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "d");
    CHECK(ob_jscan_object(s));
    CHECK(!ob_jscan_key(s, &k));   /* {} */
    CHECK(!ob_jscan_key(s, &k));   /* end of a's object */
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "e");
    CHECK(ob_jscan_array(s));
    CHECK(!ob_jscan_element(s));   /* [] */
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "f");
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "g");
    CHECK(!ob_jscan_key(s, &k));
    CHECK(!s->failed);
    CHECK(ob_jscan_done(s));
    close_input(&in);
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

TEST(jscan_string_with_a_backslash_is_marked_escaped)
{
    static const char *const texts[] = {"\"a\\nb\"", "\"\\\"\"", "\"\\\\\"", "\"\\/\\b\\f\\n\\r\\t\"",
                                        "\"x\\u00e9\""};
    static const char *const raw[] = {"a\\nb", "\\\"", "\\\\", "\\/\\b\\f\\n\\r\\t", "x\\u00e9"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, texts[i]);
        struct ob_jspan v;
        CHECK(ob_jscan_string(s, &v));
        CHECK(v.escaped);
        CHECK_STR(span_text(&v), raw[i]);
        CHECK(ob_jscan_done(s));
        close_input(&in);
    }
}

TEST(jscan_string_ending_in_an_escaped_quote_is_read_to_its_real_end)
{
    /* ["a\"b","a\"","c"]: the first quote after a is escaped. */
    struct input in;
    struct ob_jscan *s = open_text(&in, "[\"a\\\"b\",\"a\\\"\",\"c\"]");
    struct ob_jspan v;
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "a\\\"b");
    CHECK(v.escaped);
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "a\\\"");
    CHECK(v.escaped);
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "c");
    CHECK(!v.escaped);
    CHECK(!ob_jscan_element(s));
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

TEST(jscan_string_ending_in_an_escaped_backslash_ends_at_its_quote)
{
    /* ["a\\","b"] and ["a\\\\","b"]: the quote after the backslashes closes the string. */
    static const char *const texts[] = {"[\"a\\\\\",\"b\"]", "[\"a\\\\\\\\\",\"b\"]"};
    static const char *const raw[] = {"a\\\\", "a\\\\\\\\"};
    for (size_t i = 0; i < 2; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, texts[i]);
        struct ob_jspan v;
        CHECK(ob_jscan_array(s));
        CHECK(ob_jscan_element(s));
        CHECK(ob_jscan_string(s, &v));
        CHECK_STR(span_text(&v), raw[i]);
        CHECK(v.escaped);
        CHECK(ob_jscan_element(s));
        CHECK(ob_jscan_string(s, &v));
        CHECK_STR(span_text(&v), "b");
        CHECK(!ob_jscan_element(s));
        CHECK(ob_jscan_done(s));
        close_input(&in);
    }
    /* "a\\" then a stray quote: the string ended before it. */
    CHECK(!skips("\"a\\\\\"\""));
}

TEST(jscan_unicode_escapes_are_accepted_undecoded)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "\"\\u00e9\\uD83D\\uDE00\\u0041\"");
    struct ob_jspan v;
    CHECK(ob_jscan_string(s, &v));
    CHECK(v.escaped);
    CHECK_STR(span_text(&v), "\\u00e9\\uD83D\\uDE00\\u0041");
    CHECK(ob_jscan_done(s));
    close_input(&in);
}

TEST(jscan_number_span_is_its_text)
{
    static const char *const numbers[] = {"0", "-1.5e3", "12E+2", "3.25", "-0", "1e-7", "18446744073709551616"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, numbers[i]);
        struct ob_jspan v;
        CHECK(ob_jscan_number(s, &v));
        CHECK_STR(span_text(&v), numbers[i]);
        CHECK(!v.escaped);
        CHECK(ob_jscan_done(s));
        close_input(&in);
    }
    struct input in;
    struct ob_jscan *s = open_text(&in, "{\"n\":-1.5e3,\"m\":7}");
    struct ob_jspan k, v;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_number(s, &v));
    CHECK_STR(span_text(&v), "-1.5e3");
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_number(s, &v));
    CHECK_STR(span_text(&v), "7");
    CHECK(!ob_jscan_key(s, &k));
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
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, not_objects[i]);
        CHECK(!ob_jscan_object(s));
        CHECK(s->failed);
        close_input(&in);
    }
    struct input in;
    struct ob_jscan *s = open_text(&in, "{}");
    CHECK(!ob_jscan_array(s));
    CHECK(s->failed);
    close_input(&in);
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

/* Whether trying to enter text as an object (or an array) fails it. */
static bool trying_fails(const char *text, bool array)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, text);
    bool entered = array ? ob_jscan_try_array(s) : ob_jscan_try_object(s);
    bool failed = s->failed;
    close_input(&in);
    return !entered && failed;
}

TEST(jscan_try_object_or_array_skipping_a_malformed_value_fails)
{
    static const char *const not_objects[] = {"[1 2]", "[1,]", "\"abc", "tru", ""};
    static const char *const not_arrays[] = {"{\"a\" 1}", "{\"a\":1,}", "\"abc", "tru", ""};
    for (size_t i = 0; i < sizeof not_objects / sizeof not_objects[0]; i++)
        if (!trying_fails(not_objects[i], false))
            ob_test_fail(__FILE__, __LINE__, "try_object did not fail: %s", not_objects[i]);
    for (size_t i = 0; i < sizeof not_arrays / sizeof not_arrays[0]; i++)
        if (!trying_fails(not_arrays[i], true))
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

TEST(jscan_white_space_is_allowed_between_all_tokens)
{
    static const char text[] = " \t\r\n{ \"a\" \n:\t[ 1 ,\r\n\"b\" , { } ,[ ] , true , null ] ,\n\"c\"\t:\r-2.5 } \n\t";
    struct input in;
    struct ob_jscan *s = open_text(&in, text);
    struct ob_jspan k, v;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "a");
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_number(s, &v));
    CHECK_STR(span_text(&v), "1");
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_string(s, &v));
    CHECK_STR(span_text(&v), "b");
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_object(s));
    CHECK(!ob_jscan_key(s, &k));
    for (int i = 0; i < 3; i++) {
        CHECK(ob_jscan_element(s));
        CHECK(ob_jscan_skip(s));
    }
    CHECK(!ob_jscan_element(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK_STR(span_text(&k), "c");
    CHECK(ob_jscan_number(s, &v));
    CHECK_STR(span_text(&v), "-2.5");
    CHECK(!ob_jscan_key(s, &k));
    CHECK(!s->failed);
    CHECK(ob_jscan_done(s));
    close_input(&in);
    CHECK(skips(text));
    CHECK(walks(text));
    /* Only space, tab, CR and LF are white space in JSON. */
    static const char *const not_blank[] = {"[1,\f2]", "\v[]", "[1]\f", "{\"a\":\0011}"};
    CHECK_ALL_REJECTED(not_blank);
}

/* ---- malformed text ------------------------------------------------------------------- */

TEST(jscan_missing_comma_between_members_or_elements_fails)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "{\"a\":1 \"b\":2}");
    struct ob_jspan k;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_key(s, &k));
    CHECK(s->failed);
    close_input(&in);

    s = open_text(&in, "[1 2]");
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_element(s));
    CHECK(s->failed);
    close_input(&in);

    static const char *const texts[] = {"{\"a\":{} \"b\":[]}", "[\"a\" \"b\"]", "[[] {}]"};
    CHECK_NONE_ACCEPTED(texts, walks);
}

TEST(jscan_trailing_comma_fails)
{
    struct input in;
    struct ob_jscan *s = open_text(&in, "{\"a\":1,}");
    struct ob_jspan k;
    CHECK(ob_jscan_object(s));
    CHECK(ob_jscan_key(s, &k));
    CHECK(ob_jscan_skip(s));
    CHECK(!ob_jscan_key(s, &k));
    CHECK(s->failed);
    close_input(&in);

    /* In an array the comma promises an element; reading it fails. */
    s = open_text(&in, "[1,]");
    CHECK(ob_jscan_array(s));
    CHECK(ob_jscan_element(s));
    CHECK(ob_jscan_skip(s));
    while (ob_jscan_element(s))
        if (!ob_jscan_skip(s))
            break;
    CHECK(s->failed);
    close_input(&in);

    static const char *const texts[] = {"[1,2,]", "{\"a\":[],}", "[,]", "[,1]", "{,\"a\":1}", "[1,,2]"};
    CHECK_NONE_ACCEPTED(texts, walks);
}

TEST(jscan_member_without_a_colon_or_a_string_key_fails)
{
    static const char *const texts[] = {"{\"a\" 1}", "{\"a\"}", "{\"a\"::1}", "{1:2}", "{a:1}", "{\"a\":}",
                                        "{null:1}"};
    CHECK_NONE_ACCEPTED(texts, walks);
}

/* What walking rejects, skipping the same value must reject too: a
 * skipped image is still part of a text that must be JSON (the header:
 * "any malformed input sets failed"). */
TEST(jscan_skip_rejects_the_malformed_containers_walking_rejects)
{
    static const char *const texts[] = {
        "{\"a\":1 \"b\":2}", "[1 2]", "[\"a\" \"b\"]", "[true false]", "[[] {}]", "[1,]", "{\"a\":1,}",
        "[,1]", "[1,,2]", "{\"a\" 1}", "{\"a\"}", "{\"a\"::1}", "{1:2}", "[1:2]", "{\"a\":1:2}", "[\"a\":1]",
    };
    CHECK_ALL_REJECTED(texts);
}

TEST(jscan_unterminated_string_fails)
{
    static const char *const texts[] = {"\"abc", "[\"abc]", "{\"a\":\"b}", "\"a\\\"", "\"a\\", "{\"abc",
                                        "\"", "[\"a\\\\\\\"]"};
    CHECK_ALL_REJECTED(texts);
    struct input in;
    struct ob_jscan *s = open_text(&in, "\"abc");
    struct ob_jspan v;
    CHECK(!ob_jscan_string(s, &v));
    CHECK(s->failed);
    close_input(&in);
}

TEST(jscan_bad_escape_fails)
{
    static const char *const texts[] = {"\"\\x41\"", "[\"a\\x\"]", "\"\\a\"", "\"\\U0041\"", "\"\\'\"",
                                        "{\"k\\q\":1}", "\"\\ \""};
    CHECK_ALL_REJECTED(texts);
    static const char nul_escape[] = "\"\\\0\"";
    CHECK(!skips_bytes(nul_escape, sizeof nul_escape - 1));
}

TEST(jscan_truncated_unicode_escape_fails)
{
    static const char *const texts[] = {"\"\\u12\"", "\"\\u12", "\"\\u\"", "\"\\u12G4\"", "[\"\\u123\"]",
                                        "\"\\u", "\"\\u1", "\"\\u123", "\"\\u1234"};
    CHECK_ALL_REJECTED(texts);
}

TEST(jscan_control_character_in_a_string_fails)
{
    static const char *const texts[] = {"\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"", "[\"a\\n\rb\"]",
                                        "{\"k\x02\":1}", "{\"a\":[\"\x7f\",\"\x10\"]}"};
    CHECK_ALL_REJECTED(texts);
    static const char nul[] = "\"a\0b\"";
    CHECK(!skips_bytes(nul, sizeof nul - 1));
    CHECK(!walks_bytes(nul, sizeof nul - 1));
    /* DEL and bytes above 0x7f are not control characters here. */
    CHECK(skips("\"\x7f\xc3\xa9\""));
}

TEST(jscan_mismatched_brackets_fail)
{
    static const char *const texts[] = {"[}", "{]", "[1}", "{\"a\":1]", "{\"a\":[1}}", "[{]}", "]", "}", "[[]",
                                        "{\"a\":{}"};
    CHECK_ALL_REJECTED(texts);
    struct input in;
    struct ob_jscan *s = open_text(&in, "[}");
    CHECK(!ob_jscan_skip(s));
    CHECK(s->failed);
    close_input(&in);
}

TEST(jscan_empty_input_fails)
{
    static const char *const texts[] = {"", " ", "\n\t\r "};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        struct input in;
        struct ob_jscan *s = open_text(&in, texts[i]);
        struct ob_jspan v;
        CHECK(!ob_jscan_skip(s));
        CHECK(s->failed);
        close_input(&in);
        s = open_text(&in, texts[i]);
        CHECK(!ob_jscan_string(s, &v));
        CHECK(s->failed);
        close_input(&in);
        s = open_text(&in, texts[i]);
        CHECK(!ob_jscan_object(s));
        CHECK(s->failed);
        close_input(&in);
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

TEST(jscan_malformed_literals_fail)
{
    static const char *const texts[] = {"tru", "nul", "fals", "t", "nulll", "[truex]", "{\"a\":nan}",
                                        "True", "[undefined]", "-", "[-]", "{\"a\":-}", "[.]"};
    CHECK_ALL_REJECTED(texts);
}

/* The number grammar (RFC 8259 §6): what strtod or a lenient reader
 * might take is still not JSON. */
TEST(jscan_number_rejects_what_is_not_a_json_number)
{
    static const char *const texts[] = {"1.2.3", "--1", "+1", "1e", "1e+", "1-2", "01", ".5", "1.", "[1e5e5]",
                                        "{\"a\":2E}"};
    CHECK_ALL_REJECTED(texts);
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
        bool walked = walk(&s) && ob_jscan_done(&s);
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
