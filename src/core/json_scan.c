/* The JSON pull scanner. Strings are found with memchr, so skipping a
 * large image costs little more than reading it once. */
#include "core/json_scan.h"

#include "core/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ob_jscan_init(struct ob_jscan *s, const char *text, size_t len)
{
    s->p = text;
    s->end = text + len;
    s->failed = false;
    s->trusted = false;
}

void ob_jscan_init_trusted(struct ob_jscan *s, const char *text, size_t len)
{
    ob_jscan_init(s, text, len);
    s->trusted = true;
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

/* Whether text holds a byte below 0x20 (not allowed raw in a JSON
 * string), eight bytes at a time: payload images are most of a page. */
static bool has_control(const char *text, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, text + i, sizeof w);
        /* A byte b < 0x20 makes b - 0x20 borrow into its high bit while
         * b itself has it clear. */
        if ((w - 0x20 * ones) & ~w & highs)
            return true;
    }
    for (; i < len; i++)
        if ((unsigned char)text[i] < 0x20)
            return true;
    return false;
}

/* Most strings are short (names, keys, types): they are read a byte at a
 * time, the calls to memchr being the longer part for them. */
#define SHORT_STRING 32

/* The string from start up to its closing quote at q is read. */
static bool string_read(struct ob_jscan *s, struct ob_jspan *out, const char *start, const char *q, bool escaped)
{
    if (out) {
        out->s = start;
        out->len = (size_t)(q - start);
        out->escaped = escaped;
    }
    s->p = q + 1;
    return true;
}

/* At an opening quote: consumes the string. */
static bool scan_string(struct ob_jscan *s, struct ob_jspan *out)
{
    const char *start = ++s->p;
    const char *at = start, *stop = s->end - start > SHORT_STRING ? start + SHORT_STRING : s->end;
    while (at < stop && *at != '"' && *at != '\\' && (unsigned char)*at >= 0x20)
        at++;
    if (at < stop && *at == '"')
        return string_read(s, out, start, at, false);
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
    if (has_control(start, (size_t)(q - start)))
        return fail(s);
    return string_read(s, out, start, q, escaped);
}

static bool digit_at(const struct ob_jscan *s, const char *p)
{
    return p < s->end && *p >= '0' && *p <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(struct ob_jscan *s, struct ob_jspan *out)
{
    const char *start = s->p, *p = s->p;
    if (p < s->end && *p == '-')
        p++;
    if (!digit_at(s, p))
        return fail(s);
    if (*p++ != '0')
        while (digit_at(s, p))
            p++;
    if (p < s->end && *p == '.') {
        if (!digit_at(s, ++p))
            return fail(s);
        while (digit_at(s, p))
            p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            p++;
        if (!digit_at(s, p))
            return fail(s);
        while (digit_at(s, p))
            p++;
    }
    s->p = p;
    if (out) {
        out->s = start;
        out->len = (size_t)(p - start);
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

static bool skip_at_depth(struct ob_jscan *s, int depth);

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

/* Whether the next value opens with `open`, leaving the scanner at it;
 * otherwise the value is skipped. */
static bool at_open(struct ob_jscan *s, char open)
{
    if (s->failed)
        return false;
    if (peek(s) == open)
        return true;
    ob_jscan_skip(s);
    return false;
}

bool ob_jscan_try_object(struct ob_jscan *s)
{
    return at_open(s, '{') && enter(s, '{');
}

bool ob_jscan_try_array(struct ob_jscan *s)
{
    return at_open(s, '[') && enter(s, '[');
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
        if (peek(s) == 0)
            return fail(s);
    }
    return true;
}

bool ob_jscan_key(struct ob_jscan *s, struct ob_jspan *key)
{
    struct ob_jspan k;
    if (!next_in(s, '{', '}'))
        return false;
    if (peek(s) != '"' || !scan_string(s, &k))
        return fail(s);
    if (peek(s) != ':')
        return fail(s);
    s->p++;
    *key = k;
    return true;
}

bool ob_jscan_element(struct ob_jscan *s)
{
    return next_in(s, '[', ']');
}

/* The end of the object or array at s->p, trusting it is well-formed:
 * strings are jumped over with memchr (a quote ends one unless an odd
 * run of backslashes precedes it), brackets inside them are ignored. */
static bool skip_container_trusted(struct ob_jscan *s)
{
    const char *p = s->p, *end = s->end;
    size_t depth = 0;
    while (p < end) {
        char c = *p++;
        if (c == '"') {
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q)
                    return fail(s);
                const char *b = q;
                while (b > p && b[-1] == '\\')
                    b--;
                p = q + 1;
                if (((q - b) & 1) == 0)
                    break;
            }
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            s->p = p;
            return true;
        }
    }
    return fail(s);
}

/* Skipping walks containers with the same checks as reading them, unless
 * the scanner is trusted. */
static bool skip_at_depth(struct ob_jscan *s, int depth)
{
    if (s->failed)
        return false;
    struct ob_jspan key;
    char c = peek(s);
    if (s->trusted && (c == '{' || c == '['))
        return skip_container_trusted(s);
    switch (c) {
    case '"':
        return scan_string(s, NULL);
    case '{':
        if (depth >= OB_JSCAN_MAX_DEPTH)
            return fail(s);
        s->p++;
        while (ob_jscan_key(s, &key))
            skip_at_depth(s, depth + 1);
        return !s->failed;
    case '[':
        if (depth >= OB_JSCAN_MAX_DEPTH)
            return fail(s);
        s->p++;
        while (ob_jscan_element(s))
            skip_at_depth(s, depth + 1);
        return !s->failed;
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

bool ob_jscan_skip(struct ob_jscan *s)
{
    return skip_at_depth(s, 0);
}

bool ob_jscan_string(struct ob_jscan *s, struct ob_jspan *out)
{
    if (s->failed)
        return false;
    if (peek(s) != '"') {
        if (out)
            memset(out, 0, sizeof *out);
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
        if (out)
            memset(out, 0, sizeof *out);
        ob_jscan_skip(s);
        return false;
    }
    return scan_number(s, out);
}

bool ob_jscan_bool(struct ob_jscan *s, bool *out)
{
    if (s->failed)
        return false;
    char c = peek(s);
    if (c == 't' || c == 'f') {
        *out = c == 't';
        return scan_literal(s, c == 't' ? "true" : "false");
    }
    ob_jscan_skip(s);
    return false;
}

bool ob_jscan_object_span(struct ob_jscan *s, struct ob_jspan *out)
{
    memset(out, 0, sizeof *out);
    if (!at_open(s, '{'))
        return false;
    const char *start = s->p;
    if (!ob_jscan_skip(s))
        return false;
    out->s = start;
    out->len = (size_t)(s->p - start);
    return true;
}

bool ob_jscan_done(struct ob_jscan *s)
{
    return !s->failed && peek(s) == 0 && s->p == s->end;
}

bool ob_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    while (s < end) {
        unsigned char c = *s;
        if (c >= 0x01 && c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* NUL, a continuation byte, or an invalid lead */
        }
        if ((size_t)(end - s) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        /* Overlong forms, surrogates, beyond U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        s += n + 1;
    }
    return true;
}

void ob_json_put_string(struct ob_buf *out, const char *s)
{
    ob_buf_putc(out, '"');
    const char *run = s;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ob_buf_append(out, run, (size_t)(s - run));
        run = s + 1;
        switch (c) {
        case '"': ob_buf_puts(out, "\\\""); break;
        case '\\': ob_buf_puts(out, "\\\\"); break;
        case '\n': ob_buf_puts(out, "\\n"); break;
        case '\r': ob_buf_puts(out, "\\r"); break;
        case '\t': ob_buf_puts(out, "\\t"); break;
        default: ob_buf_printf(out, "\\u%04x", c);
        }
    }
    ob_buf_append(out, run, (size_t)(s - run));
    ob_buf_putc(out, '"');
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(struct ob_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    ob_buf_append(b, u, n);
}

/* Decodes one escape at p (after the backslash) into b; returns the
 * bytes it took, 0 when it is not one JSON allows here (\u0000 and lone
 * surrogates included, as jansson decides). */
static size_t unescape_one(struct ob_buf *b, const char *p, const char *end)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = p < end && *p ? strchr(from, *p) : NULL;
    if (hit && *p != 'u') {
        ob_buf_putc(b, to[hit - from]);
        return 1;
    }
    if (p >= end || *p != 'u' || end - p < 5)
        return 0;
    int cp = hex4(p + 1);
    if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
        return 0;
    if (cp < 0xd800 || cp > 0xdbff) {
        put_utf8(b, (unsigned)cp);
        return 5;
    }
    if (end - p < 11 || p[5] != '\\' || p[6] != 'u')
        return 0;
    int lo = hex4(p + 7);
    if (lo < 0xdc00 || lo > 0xdfff)
        return 0;
    put_utf8(b, 0x10000 + (((unsigned)cp - 0xd800) << 10) + ((unsigned)lo - 0xdc00));
    return 11;
}

double ob_jspan_double(const struct ob_jspan *v)
{
    /* Up to 15 digits are exact in a double, and one division by an
     * exact power of ten is rounded as strtod rounds. */
    static const double tens[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };
    uint64_t m = 0;
    int digits = 0, frac = -1;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c == '.' && frac < 0) {
            frac = 0;
        } else if (c >= '0' && c <= '9' && digits < 15) {
            m = m * 10 + (uint64_t)(c - '0');
            digits++;
            frac += frac >= 0;
        } else {
            digits = 0; /* a sign, an exponent or too many digits */
            break;
        }
    }
    if (digits && frac != 0)
        return frac > 0 ? (double)m / tens[frac] : (double)m;
    char small[64];
    char *text = v->len < sizeof small ? small : ob_xmalloc(v->len + 1);
    memcpy(text, v->s, v->len);
    text[v->len] = '\0';
    double d = strtod(text, NULL);
    if (text != small)
        free(text);
    return d;
}

char *ob_jspan_dup(const struct ob_jspan *v)
{
    if (!v->escaped)
        return ob_utf8_valid(v->s, v->len) ? ob_xstrndup(v->s, v->len) : NULL;
    struct ob_buf b = { 0 };
    ob_buf_reserve(&b, v->len);
    const char *p = v->s, *end = v->s + v->len;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        if (!bs) {
            ob_buf_append(&b, p, (size_t)(end - p));
            break;
        }
        ob_buf_append(&b, p, (size_t)(bs - p));
        size_t took = unescape_one(&b, bs + 1, end);
        if (!took) {
            ob_buf_free(&b);
            return NULL;
        }
        p = bs + 1 + took;
    }
    if (!ob_utf8_valid(b.data ? b.data : "", b.len)) {
        ob_buf_free(&b);
        return NULL;
    }
    return ob_buf_steal(&b);
}
