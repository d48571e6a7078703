/* A growable byte buffer, always NUL-terminated, for building request
 * bodies, canonical strings and log lines without fixed limits.
 * The struct owns `data`; ob_buf_free releases it. A zeroed struct is an
 * empty buffer. Allocation failure aborts: outboxd cannot run out of
 * memory gracefully in the middle of building a request. */
#ifndef OB_CORE_BUF_H
#define OB_CORE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ob_buf {
    char *data;
    size_t len;
    size_t cap;
};

void ob_buf_reserve(struct ob_buf *b, size_t extra);
/* The same, growing to exactly what is asked: for a buffer whose final
 * size is known (a decoded payload, a body of known length). */
void ob_buf_reserve_exact(struct ob_buf *b, size_t extra);
void ob_buf_append(struct ob_buf *b, const void *p, size_t n);
void ob_buf_puts(struct ob_buf *b, const char *s);
void ob_buf_putc(struct ob_buf *b, char c);
/* Appends each string up to the NULL that ends the list: printf's "%s%s"
 * without parsing a format, for the hot paths. */
void ob_buf_cat(struct ob_buf *b, ...) __attribute__((sentinel));
/* Appends v in decimal, without printf (the hot paths write a few per
 * request). */
void ob_buf_put_int(struct ob_buf *b, int64_t v);
void ob_buf_printf(struct ob_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ob_buf_vprintf(struct ob_buf *b, const char *fmt, va_list ap);
/* Keeps the allocation, forgets the contents. */
void ob_buf_reset(struct ob_buf *b);
void ob_buf_free(struct ob_buf *b);
/* Hands the data to the caller (free() it) and leaves b empty. */
char *ob_buf_steal(struct ob_buf *b);
/* A string const char* for empty buffers too. */
const char *ob_buf_cstr(const struct ob_buf *b);

/* Aborting allocators used across outboxd. */
void *ob_xmalloc(size_t n);
void *ob_xcalloc(size_t n, size_t size);
void *ob_xrealloc(void *p, size_t n);
char *ob_xstrdup(const char *s);
/* NULL stays NULL. */
char *ob_xstrdup_or_null(const char *s);
char *ob_xstrndup(const char *s, size_t n);

/* The strings, one after another, into dst (size bytes, NUL-terminated):
 * snprintf's "%s%s..." without parsing a format. False when they did not
 * all fit; dst then holds what did. */
bool ob_str_join(char *dst, size_t size, ...) __attribute__((sentinel));

#endif
