/* Where two decoded stream records differ in anything the relay reads:
 * the name of the first field that does, or NULL when they agree. One
 * comparison for tests/unit/test_record.c and the record fuzz body
 * (bodies.c), which both hold ob_records_page_decode to what jansson and
 * ob_record_decode give for each element of the same page. */
#ifndef OB_TESTS_RECORD_DIFF_H
#define OB_TESTS_RECORD_DIFF_H

#include <stdbool.h>
#include <string.h>

#include "core/record.h"

static inline bool record_diff_same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* In record_difference: returns the field's name when a and b differ in
 * it (strings: both NULL, or equal text). */
#define RECORD_DIFF_STR(a, b, field)                          \
    do {                                                      \
        if (!record_diff_same_str((a)->field, (b)->field))    \
            return #field;                                    \
    } while (0)
#define RECORD_DIFF_INT(a, b, field)                          \
    do {                                                      \
        if ((a)->field != (b)->field)                         \
            return #field;                                    \
    } while (0)

static inline const char *record_difference(const struct ob_record *a, const struct ob_record *b)
{
    const struct ob_message *x = &a->msg, *y = &b->msg;
    RECORD_DIFF_INT(a, b, kind);
    RECORD_DIFF_STR(a, b, skip_reason);
    RECORD_DIFF_STR(a, b, poison_reason);
    RECORD_DIFF_STR(x, y, pk);
    RECORD_DIFF_STR(x, y, sk);
    RECORD_DIFF_STR(x, y, message_type);
    if (x->payload_len != y->payload_len || !x->payload != !y->payload ||
        (x->payload_len && memcmp(x->payload, y->payload, x->payload_len) != 0))
        return "payload";
    RECORD_DIFF_INT(x, y, n_headers);
    for (size_t i = 0; i < x->n_headers; i++)
        if (!record_diff_same_str(x->headers[i].name, y->headers[i].name) ||
            !record_diff_same_str(x->headers[i].value, y->headers[i].value))
            return "headers";
    RECORD_DIFF_STR(x, y, aggregate_id);
    RECORD_DIFF_STR(x, y, aggregate_type);
    RECORD_DIFF_STR(x, y, correlation_id);
    RECORD_DIFF_STR(x, y, causation_id);
    RECORD_DIFF_STR(x, y, created_at);
    RECORD_DIFF_INT(x, y, created_at_ms);
    RECORD_DIFF_INT(x, y, retry_count);
    RECORD_DIFF_STR(x, y, sequence_number);
    RECORD_DIFF_INT(x, y, approximate_creation_ms);
    RECORD_DIFF_INT(a, b, size_bytes);
    return NULL;
}

#undef RECORD_DIFF_STR
#undef RECORD_DIFF_INT

#endif
