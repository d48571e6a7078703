/* JSON text without a DOM. A pull scanner over JSON text (pure, no
 * allocation): walks objects and
 * arrays, hands out the raw spans of strings and numbers, and skips
 * whole values without building them. It is for the few large answers
 * where a DOM costs more than the work (GetRecords: megabytes of item
 * images of which most are skipped). Any malformed input sets `failed`;
 * every call after that returns false. */
#ifndef OB_CORE_JSON_SCAN_H
#define OB_CORE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Nesting allowed in skipped values; deeper input is malformed here. */
#define OB_JSCAN_MAX_DEPTH 256

struct ob_jscan {
    const char *p, *end;
    bool failed;
    /* Skipped objects and arrays are followed only for their extent
     * (strings and nesting), not checked: for text from a source that
     * writes valid JSON where what is skipped is not used (the images of
     * a GetRecords page that are not decoded). What is read is checked
     * as always. */
    bool trusted;
};

/* A string's contents between its quotes, escapes not decoded. */
struct ob_jspan {
    const char *s;
    size_t len;
    bool escaped; /* contains a backslash: decode before use */
};

void ob_jscan_init(struct ob_jscan *s, const char *text, size_t len);
/* The same, trusted (see above). */
void ob_jscan_init_trusted(struct ob_jscan *s, const char *text, size_t len);

/* Enters an object or an array at the next value; false (failing) when
 * the value is something else. */
bool ob_jscan_object(struct ob_jscan *s);
bool ob_jscan_array(struct ob_jscan *s);

/* Enters the next value when it is an object / an array; false, without
 * failing, when it is of another type (it is skipped). */
bool ob_jscan_try_object(struct ob_jscan *s);
bool ob_jscan_try_array(struct ob_jscan *s);

/* The next member's key of the object entered last, leaving the scanner
 * at its value; false at the closing brace (consumed) or on error. */
bool ob_jscan_key(struct ob_jscan *s, struct ob_jspan *key);

/* Whether another element follows in the array entered last, leaving the
 * scanner at it; false at the closing bracket (consumed) or on error. */
bool ob_jscan_element(struct ob_jscan *s);

/* Reads the next value when it is a string / a number (its text) / a
 * boolean; false,
 * without failing, when the value is of another type (it is skipped and
 * *out zeroed). */
bool ob_jscan_string(struct ob_jscan *s, struct ob_jspan *out);
bool ob_jscan_number(struct ob_jscan *s, struct ob_jspan *out);

bool ob_jscan_bool(struct ob_jscan *s, bool *out);

/* Reads the next value when it is an object, as the span of its text
 * from brace to brace (for a second scanner to index later); false,
 * without failing, when the value is of another type (it is skipped and
 * *out zeroed). */
bool ob_jscan_object_span(struct ob_jscan *s, struct ob_jspan *out);

/* Skips the next value, whatever it is. */
bool ob_jscan_skip(struct ob_jscan *s);

/* The rest of the text holds nothing but white space. */
bool ob_jscan_done(struct ob_jscan *s);

/* Appends s as a JSON string (quotes included), escaping what JSON
 * requires; the caller's s is UTF-8 text. */
struct ob_buf;
void ob_json_put_string(struct ob_buf *out, const char *s);

/* Whether s[0..len) is well-formed UTF-8 without NUL (what JSON text may
 * carry in a string; jansson checks the same). */
bool ob_utf8_valid(const char *s, size_t len);

/* A string's span as a C string (the caller frees it), escapes decoded;
 * NULL when it does not decode (an escaped NUL, a lone surrogate) or is
 * not UTF-8. */
char *ob_jspan_dup(const struct ob_jspan *v);
/* The value of a number span (from ob_jscan_number); "12" and "0.5" are
 * read without strtod, which other forms take. */
double ob_jspan_double(const struct ob_jspan *v);

/* Whether a span equals the literal lit (spans with escapes never match). */
/* Inline: with a literal, the compiler knows its length, and most
 * comparisons (attribute and key names) end at the length. */
static inline bool ob_jspan_is(const struct ob_jspan *span, const char *lit)
{
    size_t n = strlen(lit);
    return !span->escaped && span->len == n && memcmp(span->s, lit, n) == 0;
}

#endif
