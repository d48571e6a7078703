#include "sinks/common.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ob_delivery_set(struct ob_delivery *d, enum ob_delivery_result result, const char *fmt, ...)
{
    d->result = result;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
}

void ob_delivery_structured(struct ob_buf *out, const struct ob_delivery *d)
{
    size_t start = out->len;
    ob_ce_structured(out, d->ce, d->msg);
    if (!d->error_info || out->len == start || out->data[out->len - 1] != '}')
        return;
    /* The reason may hold bytes of a server's answer: JSON needs UTF-8. */
    json_t *reason = json_string(d->error_info);
    if (!reason) {
        char *ascii = ob_xstrdup(d->error_info);
        for (char *c = ascii; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        reason = json_string(ascii);
        free(ascii);
    }
    char *text = json_dumps(reason, JSON_ENCODE_ANY);
    out->len--;   /* reopen the object: drop its closing brace */
    ob_buf_printf(out, ",\"" OB_CE_DEAD_LETTER_REASON "\":%s}", text);
    free(text);
    json_decref(reason);
}

void ob_delivery_json_line(struct ob_buf *out, const struct ob_delivery *d)
{
    ob_delivery_structured(out, d);
    ob_buf_putc(out, '\n');
}

int ob_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int ob_fsync_if_supported(int fd)
{
    if (fsync(fd) == 0 || errno == EINVAL || errno == EROFS)
        return 0;
    return errno;
}

void ob_json_escape_noncharacters(struct ob_buf *json)
{
    static const char lead[] = "\xef\xbf";
    if (!json->data || !memmem(json->data, json->len, lead, 2))
        return;
    struct ob_buf out = { 0 };
    ob_buf_reserve(&out, json->len + 16);
    for (size_t i = 0; i < json->len; i++) {
        const unsigned char *p = (const unsigned char *)json->data + i;
        if (i + 2 < json->len && p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
            ob_buf_puts(&out, p[2] == 0xbe ? "\\ufffe" : "\\uffff");
            i += 2;
        } else {
            ob_buf_putc(&out, (char)*p);
        }
    }
    ob_buf_free(json);
    *json = out;
}
