/* The JSON pull scanner. Strings are found with memchr, so skipping a
 * large image costs little more than reading it once. */
#include "core/json_scan.h"

#include <string.h>

void ob_jscan_init(struct ob_jscan *s, const char *text, size_t len)
{
    s->p = text;
    s->end = text + len;
    s->failed = false;
}

static bool fail(struct ob_jscan *s)
{
    s->failed = true;
    return false;
}

static void skip_ws(struct ob_jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* The next non-blank character, not consumed; 0 at the end. */
static char peek(struct ob_jscan *s)
{
    skip_ws(s);
    return s->p < s->end ? *s->p : 0;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* At an opening quote: consumes the string. */
static bool scan_string(struct ob_jscan *s, struct ob_jspan *out)
{
    const char *start = ++s->p;
    const char *q = memchr(start, '"', (size_t)(s->end - start));
    if (!q)
        return fail(s);
    bool escaped = memchr(start, '\\', (size_t)(q - start)) != NULL;
    if (escaped) {
        const char *p = start;
        for (;;) {
            if (p >= s->end)
                return fail(s);
            if (*p == '"')
                break;
            if (*p != '\\') {
                p++;
                continue;
            }
            if (++p >= s->end)
                return fail(s);
            if (*p == 'u') {
                if (s->end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]))
                    return fail(s);
                p += 5;
            } else if (strchr("\"\\/bfnrt", *p) && *p) {
                p++;
            } else {
                return fail(s);
            }
        }
        q = p;
    }
    for (const char *p = start; p < q; p++)
        if ((unsigned char)*p < 0x20)
            return fail(s);
    if (out) {
        out->s = start;
        out->len = (size_t)(q - start);
        out->escaped = escaped;
    }
    s->p = q + 1;
    return true;
}

static bool scan_number(struct ob_jscan *s, struct ob_jspan *out)
{
    const char *start = s->p;
    bool digit = false;
    while (s->p < s->end) {
        char c = *s->p;
        if (c >= '0' && c <= '9')
            digit = true;
        else if (!(c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
            break;
        s->p++;
    }
    if (!digit)
        return fail(s);
    if (out) {
        out->s = start;
        out->len = (size_t)(s->p - start);
        out->escaped = false;
    }
    return true;
}

static bool scan_literal(struct ob_jscan *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return fail(s);
    s->p += n;
    return true;
}

/* Brackets are matched on a small stack; strings are scanned whole, so
 * brackets inside them do not count. */
static bool skip_container(struct ob_jscan *s)
{
    char stack[OB_JSCAN_MAX_DEPTH];
    size_t depth = 0;
    stack[depth++] = *s->p == '{' ? '}' : ']';
    s->p++;
    while (depth) {
        char c = peek(s);
        switch (c) {
        case 0:
            return fail(s);
        case '"':
            if (!scan_string(s, NULL))
                return false;
            break;
        case '{':
        case '[':
            if (depth == OB_JSCAN_MAX_DEPTH)
                return fail(s);
            stack[depth++] = c == '{' ? '}' : ']';
            s->p++;
            break;
        case '}':
        case ']':
            if (stack[--depth] != c)
                return fail(s);
            s->p++;
            break;
        case 't':
            if (!scan_literal(s, "true"))
                return false;
            break;
        case 'f':
            if (!scan_literal(s, "false"))
                return false;
            break;
        case 'n':
            if (!scan_literal(s, "null"))
                return false;
            break;
        case ',':
        case ':':
            s->p++;
            break;
        default:
            if (!scan_number(s, NULL))
                return false;
        }
    }
    return true;
}

bool ob_jscan_skip(struct ob_jscan *s)
{
    if (s->failed)
        return false;
    switch (peek(s)) {
    case '"':
        return scan_string(s, NULL);
    case '{':
    case '[':
        return skip_container(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    case 0:
        return fail(s);
    default:
        return scan_number(s, NULL);
    }
}

static bool enter(struct ob_jscan *s, char open)
{
    if (s->failed)
        return false;
    if (peek(s) != open)
        return fail(s);
    s->p++;
    return true;
}

bool ob_jscan_object(struct ob_jscan *s)
{
    return enter(s, '{');
}

bool ob_jscan_array(struct ob_jscan *s)
{
    return enter(s, '[');
}

/* Inside a container at a member or element: consumes the closing
 * bracket (false), or the comma that must separate it from the previous
 * one (the first follows the opening bracket directly). */
static bool next_in(struct ob_jscan *s, char open, char close)
{
    if (s->failed)
        return false;
    char c = peek(s);
    if (c == 0)
        return fail(s);
    const char *prev = s->p - 1;
    while (*prev == ' ' || *prev == '\n' || *prev == '\r' || *prev == '\t')
        prev--;
    bool first = *prev == open;
    if (c == close) {
        if (!first && *prev == ',')
            return fail(s);
        s->p++;
        return false;
    }
    if (!first) {
        if (c != ',')
            return fail(s);
        s->p++;
        skip_ws(s);
    }
    return true;
}

bool ob_jscan_key(struct ob_jscan *s, struct ob_jspan *key)
{
    if (!next_in(s, '{', '}'))
        return false;
    if (peek(s) != '"' || !scan_string(s, key))
        return fail(s);
    if (peek(s) != ':')
        return fail(s);
    s->p++;
    return true;
}

bool ob_jscan_element(struct ob_jscan *s)
{
    return next_in(s, '[', ']');
}

bool ob_jscan_string(struct ob_jscan *s, struct ob_jspan *out)
{
    if (s->failed)
        return false;
    if (peek(s) != '"') {
        ob_jscan_skip(s);
        return false;
    }
    return scan_string(s, out);
}

bool ob_jscan_number(struct ob_jscan *s, struct ob_jspan *out)
{
    if (s->failed)
        return false;
    char c = peek(s);
    if (!(c == '-' || (c >= '0' && c <= '9'))) {
        ob_jscan_skip(s);
        return false;
    }
    return scan_number(s, out);
}

bool ob_jscan_done(struct ob_jscan *s)
{
    return !s->failed && peek(s) == 0 && s->p == s->end;
}

bool ob_jspan_is(const struct ob_jspan *span, const char *lit)
{
    size_t n = strlen(lit);
    return !span->escaped && span->len == n && memcmp(span->s, lit, n) == 0;
}
