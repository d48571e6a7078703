/* outboxd — error type shared by every layer and by the producer API.
 *
 * Functions return an enum ob_err (OB_OK == 0) and, on failure, fill the
 * caller's struct ob_error with a message meant for an operator. Only the
 * top of a call chain decides whether to log, retry or exit. */
#ifndef OUTBOXD_ERROR_H
#define OUTBOXD_ERROR_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ob_err {
    OB_OK = 0,
    OB_ERR_INVALID,          /* bad argument or bad input data */
    OB_ERR_NOMEM,
    OB_ERR_IO,               /* local file or socket problem */
    OB_ERR_CONFIG,           /* configuration is wrong */
    OB_ERR_CREDENTIALS,      /* no usable AWS credentials */
    OB_ERR_NETWORK,          /* connect/reset/timeout talking to a service */
    OB_ERR_HTTP,             /* unexpected HTTP status without a known AWS error */
    OB_ERR_THROTTLED,        /* ProvisionedThroughputExceeded, Throttling, RequestLimitExceeded, LimitExceeded */
    OB_ERR_CONDITION_FAILED, /* ConditionalCheckFailedException */
    OB_ERR_NOT_FOUND,        /* ResourceNotFoundException */
    OB_ERR_VALIDATION,       /* ValidationException, SerializationException, ... */
    OB_ERR_EXPIRED_ITERATOR, /* ExpiredIteratorException */
    OB_ERR_TRIMMED,          /* TrimmedDataAccessException */
    OB_ERR_TRANSACTION_CANCELED, /* TransactionCanceledException */
    OB_ERR_RESOURCE_IN_USE,  /* ResourceInUseException (table exists, being created) */
    OB_ERR_ACCESS_DENIED,    /* AccessDenied, UnrecognizedClient, InvalidSignature */
    OB_ERR_SERVICE,          /* InternalServerError and 5xx */
    OB_ERR_MISMATCH,         /* an existing resource differs from what is wanted */
    OB_ERR_INTERNAL,         /* a bug or an impossible state */
};

#define OB_ERROR_MSG_MAX 1024

struct ob_error {
    enum ob_err code;
    bool retriable;
    int http_status;                 /* 0 when no HTTP answer was seen */
    char aws_type[96];               /* AWS error name after the last '#', or "" */
    char msg[OB_ERROR_MSG_MAX];
};

/* Fills err (when not NULL) and returns code, so callers can write
 * `return ob_error_set(err, OB_ERR_INVALID, "bad %s", what);`. */
enum ob_err ob_error_set(struct ob_error *err, enum ob_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to err->msg, keeping the code. Returns err->code. */
enum ob_err ob_error_prefix(struct ob_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void ob_error_clear(struct ob_error *err);

/* A short, stable name for a code ("throttled", "validation", ...). */
const char *ob_err_name(enum ob_err code);

#ifdef __cplusplus
}
#endif
#endif
