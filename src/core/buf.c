#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("outboxd: out of memory\n", stderr);
    abort();
}

void *ob_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *ob_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *ob_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *ob_xstrdup(const char *s)
{
    return ob_xstrndup(s, strlen(s));
}

char *ob_xstrndup(const char *s, size_t n)
{
    char *p = ob_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

bool ob_str_join(char *dst, size_t size, ...)
{
    va_list ap;
    va_start(ap, size);
    size_t len = 0;
    bool fits = size > 0;
    for (const char *p; fits && (p = va_arg(ap, const char *));) {
        size_t n = strlen(p);
        if (n >= size - len) {
            n = size - len - 1;
            fits = false;
        }
        memcpy(dst + len, p, n);
        len += n;
    }
    va_end(ap);
    if (size)
        dst[len] = '\0';
    return fits;
}

void ob_buf_cat(struct ob_buf *b, ...)
{
    va_list ap;
    va_start(ap, b);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        ob_buf_puts(b, s);
    va_end(ap);
}

void ob_buf_reserve(struct ob_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = ob_xrealloc(b->data, cap);
    b->data[b->len] = '\0'; /* a fresh buffer is an empty string too */
    b->cap = cap;
}

void ob_buf_reserve_exact(struct ob_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    b->data = ob_xrealloc(b->data, need);
    b->data[b->len] = '\0';
    b->cap = need;
}

void ob_buf_append(struct ob_buf *b, const void *p, size_t n)
{
    ob_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void ob_buf_puts(struct ob_buf *b, const char *s)
{
    ob_buf_append(b, s, strlen(s));
}

void ob_buf_putc(struct ob_buf *b, char c)
{
    ob_buf_append(b, &c, 1);
}

void ob_buf_vprintf(struct ob_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    ob_buf_reserve(b, 64);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        ob_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap2);
    }
    b->len += (size_t)n;
    va_end(ap2);
}

void ob_buf_put_int(struct ob_buf *b, int64_t v)
{
    char text[24], *w = text + sizeof text;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--w = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--w = '-';
    ob_buf_append(b, w, (size_t)(text + sizeof text - w));
}

void ob_buf_printf(struct ob_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ob_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void ob_buf_reset(struct ob_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ob_buf_free(struct ob_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ob_buf_steal(struct ob_buf *b)
{
    char *p = b->data ? b->data : ob_xstrdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

const char *ob_buf_cstr(const struct ob_buf *b)
{
    return b->data ? b->data : "";
}

char *ob_xstrdup_or_null(const char *s)
{
    return s ? ob_xstrdup(s) : NULL;
}
