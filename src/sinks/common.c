#include "sinks/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

void ob_delivery_set(struct ob_delivery *d, enum ob_delivery_result result, const char *fmt, ...)
{
    d->result = result;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->error, sizeof d->error, fmt, ap);
    va_end(ap);
}

void ob_delivery_json_line(struct ob_buf *out, const struct ob_delivery *d)
{
    ob_ce_structured(out, d->ce, d->msg);
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
