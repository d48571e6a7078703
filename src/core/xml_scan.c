/* See xml_scan.h: element lookup for the AWS query protocol's answers. */
#include "core/xml_scan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Whether the tag at p (just after '<' or "</") is named tag, ignoring a
 * namespace prefix; *after gets the position after the name. */
static bool name_is(const char *p, const char *end, const char *tag, const char **after)
{
    const char *n = p;
    while (n < end && !strchr(" \t\r\n/>", *n))
        n++;
    const char *local = p;
    for (const char *c = p; c < n; c++)
        if (*c == ':')
            local = c + 1;
    size_t len = strlen(tag);
    *after = n;
    return (size_t)(n - local) == len && memcmp(local, tag, len) == 0;
}

static const char *find_char(const char *p, const char *end, char c)
{
    const char *q = memchr(p, c, (size_t)(end - p));
    return q ? q : end;
}

bool ob_xml_next(struct ob_xml_span xml, size_t *pos, const char *tag, struct ob_xml_span *inner)
{
    const char *end = xml.p + xml.len;
    const char *p = xml.p + (*pos < xml.len ? *pos : xml.len);
    while ((p = find_char(p, end, '<')) < end) {
        const char *after;
        if (p + 1 < end && name_is(p + 1, end, tag, &after)) {
            const char *gt = find_char(after, end, '>');
            if (gt == end)
                return false;
            if (gt[-1] == '/') { /* <tag/> */
                *inner = (struct ob_xml_span){ gt + 1, 0 };
                *pos = (size_t)(gt + 1 - xml.p);
                return true;
            }
            /* The matching end tag: same-named elements inside nest. */
            int depth = 1;
            const char *q = gt + 1, *content = gt + 1;
            while ((q = find_char(q, end, '<')) < end) {
                const char *qa;
                if (q + 1 < end && q[1] == '/' && name_is(q + 2, end, tag, &qa)) {
                    if (--depth == 0) {
                        const char *close = find_char(qa, end, '>');
                        if (close == end)
                            return false;
                        *inner = (struct ob_xml_span){ content, (size_t)(q - content) };
                        *pos = (size_t)(close + 1 - xml.p);
                        return true;
                    }
                } else if (name_is(q + 1, end, tag, &qa)) {
                    const char *g = find_char(qa, end, '>');
                    if (g < end && g[-1] != '/')
                        depth++;
                }
                q++;
            }
            return false;
        }
        p++;
    }
    return false;
}

static void put_utf8(struct ob_buf *out, uint32_t c)
{
    char b[4];
    size_t n;
    if (c < 0x80) {
        b[0] = (char)c, n = 1;
    } else if (c < 0x800) {
        b[0] = (char)(0xc0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3f)), n = 2;
    } else if (c < 0x10000) {
        b[0] = (char)(0xe0 | c >> 12), b[1] = (char)(0x80 | ((c >> 6) & 0x3f)), b[2] = (char)(0x80 | (c & 0x3f)), n = 3;
    } else {
        b[0] = (char)(0xf0 | c >> 18), b[1] = (char)(0x80 | ((c >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((c >> 6) & 0x3f)), b[3] = (char)(0x80 | (c & 0x3f)), n = 4;
    }
    ob_buf_append(out, b, n);
}

/* Decodes the entity at p ('&'), appending it; returns what it used, 0
 * when it is not one (the '&' is then kept as it is). */
static size_t entity(const char *p, const char *end, struct ob_buf *out)
{
    static const struct { const char *name; char c; } named[] = {
        { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        size_t n = strlen(named[i].name);
        if ((size_t)(end - p) >= n && memcmp(p, named[i].name, n) == 0) {
            ob_buf_putc(out, named[i].c);
            return n;
        }
    }
    if (end - p < 4 || p[1] != '#')
        return 0;
    const char *q = p + 2;
    int base = 10;
    if (*q == 'x' || *q == 'X')
        base = 16, q++;
    uint32_t c = 0;
    const char *digits = q;
    for (; q < end && *q != ';'; q++) {
        int v = *q >= '0' && *q <= '9' ? *q - '0'
              : base == 16 && *q >= 'a' && *q <= 'f' ? *q - 'a' + 10
              : base == 16 && *q >= 'A' && *q <= 'F' ? *q - 'A' + 10 : -1;
        if (v < 0 || c > 0x10ffff)
            return 0;
        c = c * (uint32_t)base + (uint32_t)v;
    }
    if (q == end || q == digits || c > 0x10ffff || c == 0 || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    put_utf8(out, c);
    return (size_t)(q + 1 - p);
}

bool ob_xml_text(struct ob_xml_span xml, const char *tag, struct ob_buf *out)
{
    size_t pos = 0;
    struct ob_xml_span in;
    if (!ob_xml_next(xml, &pos, tag, &in))
        return false;
    const char *p = in.p, *end = in.p + in.len;
    ob_buf_reserve(out, in.len + 1);
    while (p < end) {
        if (*p == '&') {
            size_t used = entity(p, end, out);
            if (used) {
                p += used;
                continue;
            }
        }
        ob_buf_putc(out, *p++);
    }
    return true;
}
