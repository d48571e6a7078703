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

static inline const char *record_difference(const struct ob_record *a, const struct ob_record *b)
{
    const struct ob_message *x = &a->msg, *y = &b->msg;
    if (a->kind != b->kind)
        return "kind";
    if (!record_diff_same_str(a->skip_reason, b->skip_reason))
        return "skip_reason";
    if (strncmp(a->poison_reason, b->poison_reason, sizeof a->poison_reason) != 0)
        return "poison_reason";
    if (!record_diff_same_str(x->pk, y->pk))
        return "pk";
    if (!record_diff_same_str(x->sk, y->sk))
        return "sk";
    if (!record_diff_same_str(x->message_type, y->message_type))
        return "message_type";
    if (x->payload_len != y->payload_len || !x->payload != !y->payload ||
        (x->payload_len && memcmp(x->payload, y->payload, x->payload_len) != 0))
        return "payload";
    if (x->n_headers != y->n_headers)
        return "n_headers";
    for (size_t i = 0; i < x->n_headers; i++)
        if (!record_diff_same_str(x->headers[i].name, y->headers[i].name) ||
            !record_diff_same_str(x->headers[i].value, y->headers[i].value))
            return "headers";
    if (!record_diff_same_str(x->aggregate_id, y->aggregate_id))
        return "aggregate_id";
    if (!record_diff_same_str(x->aggregate_type, y->aggregate_type))
        return "aggregate_type";
    if (!record_diff_same_str(x->correlation_id, y->correlation_id))
        return "correlation_id";
    if (!record_diff_same_str(x->causation_id, y->causation_id))
        return "causation_id";
    if (!record_diff_same_str(x->created_at, y->created_at))
        return "created_at";
    if (x->created_at_ms != y->created_at_ms)
        return "created_at_ms";
    if (x->retry_count != y->retry_count)
        return "retry_count";
    if (!record_diff_same_str(x->sequence_number, y->sequence_number))
        return "sequence_number";
    if (x->approximate_creation_ms != y->approximate_creation_ms)
        return "approximate_creation_ms";
    if (a->size_bytes != b->size_bytes)
        return "size_bytes";
    return NULL;
}

#endif
