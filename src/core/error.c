#include "outboxd/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum ob_err ob_error_set(struct ob_error *err, enum ob_err code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    err->retriable = false;
    err->http_status = 0;
    err->aws_type[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

enum ob_err ob_error_prefix(struct ob_error *err, const char *fmt, ...)
{
    if (!err)
        return OB_ERR_INTERNAL;
    char prefix[OB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[OB_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t m = strnlen(old, sizeof old);
    if (m > sizeof err->msg - 1 - n)
        m = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    return err->code;
}

/* The strings are emptied, not zeroed: every call clears its error, and
 * the struct is over a KiB. */
void ob_error_clear(struct ob_error *err)
{
    if (!err)
        return;
    err->code = OB_OK;
    err->retriable = false;
    err->http_status = 0;
    err->aws_type[0] = '\0';
    err->msg[0] = '\0';
}

const char *ob_err_name(enum ob_err code)
{
    switch (code) {
    case OB_OK: return "ok";
    case OB_ERR_INVALID: return "invalid";
    case OB_ERR_NOMEM: return "out of memory";
    case OB_ERR_IO: return "io";
    case OB_ERR_CONFIG: return "config";
    case OB_ERR_CREDENTIALS: return "credentials";
    case OB_ERR_NETWORK: return "network";
    case OB_ERR_HTTP: return "http";
    case OB_ERR_THROTTLED: return "throttled";
    case OB_ERR_CONDITION_FAILED: return "condition failed";
    case OB_ERR_NOT_FOUND: return "not found";
    case OB_ERR_VALIDATION: return "validation";
    case OB_ERR_EXPIRED_ITERATOR: return "expired iterator";
    case OB_ERR_TRIMMED: return "trimmed data";
    case OB_ERR_TRANSACTION_CANCELED: return "transaction canceled";
    case OB_ERR_RESOURCE_IN_USE: return "resource in use";
    case OB_ERR_ACCESS_DENIED: return "access denied";
    case OB_ERR_SERVICE: return "service error";
    case OB_ERR_MISMATCH: return "mismatch";
    case OB_ERR_INTERNAL: return "internal";
    }
    return "unknown";
}
