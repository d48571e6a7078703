#include "ops/notify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "core/buf.h"

static bool notify_enabled(void)
{
    const char *s = getenv("NOTIFY_SOCKET");
    return s && s[0];
}

/* Appends "STATUS=text" on one line: a newline would start another
 * assignment, letting a status say anything. */
static void put_status(struct ob_buf *b, const char *status)
{
    ob_buf_puts(b, "STATUS=");
    for (const char *p = status; *p; p++)
        ob_buf_putc(b, *p == '\n' || *p == '\r' ? ' ' : *p);
}

void ob_notify_ready(const char *status)
{
    if (!notify_enabled())
        return;
    struct ob_buf b = { 0 };
    ob_buf_puts(&b, "READY=1");
    if (status) {
        ob_buf_putc(&b, '\n');
        put_status(&b, status);
    }
    sd_notify(0, ob_buf_cstr(&b));
    ob_buf_free(&b);
}

void ob_notify_status(const char *fmt, ...)
{
    if (!notify_enabled())
        return;
    struct ob_buf text = { 0 }, b = { 0 };
    va_list ap;
    va_start(ap, fmt);
    ob_buf_vprintf(&text, fmt, ap);
    va_end(ap);
    put_status(&b, ob_buf_cstr(&text));
    sd_notify(0, ob_buf_cstr(&b));
    ob_buf_free(&text);
    ob_buf_free(&b);
}

void ob_notify_stopping(void)
{
    if (notify_enabled())
        sd_notify(0, "STOPPING=1");
}

void ob_notify_reloading(void)
{
    if (!notify_enabled())
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* The time of this message lets systemd tell this reload cycle from
     * one before it (sd_notify(3), MONOTONIC_USEC). */
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void ob_notify_watchdog(void)
{
    if (notify_enabled())
        sd_notify(0, "WATCHDOG=1");
}

int64_t ob_notify_watchdog_interval_us(void)
{
    uint64_t usec = 0;
    /* Half the timeout, as sd_watchdog_enabled(3) advises: one late
     * ping must not get the process killed. */
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return (int64_t)(usec / 2);
}
