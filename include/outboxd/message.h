/* One outbox message as the relay sees it: the item's attributes (SPEC §2)
 * decoded from a stream record's NewImage, plus where it sits in the
 * stream. Every string is owned by the struct (ob_message_free): each in
 * its own allocation, or, when `block` is set (a decoded message), all
 * but sequence_number inside that one block, which must then not be
 * replaced field by field. Absent optional attributes are NULL. */
#ifndef OUTBOXD_MESSAGE_H
#define OUTBOXD_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ob_header {
    char *name;
    char *value;
};

struct ob_message {
    char *pk;                   /* partition key value (required) */
    char *sk;                   /* message id (required) */
    char *message_type;
    unsigned char *payload;     /* decoded bytes, NUL-terminated for convenience */
    size_t payload_len;
    struct ob_header *headers;  /* the `headers` JSON object, in its order */
    size_t n_headers;
    char *aggregate_id;
    char *aggregate_type;
    char *correlation_id;
    char *causation_id;
    char *created_at;           /* as stored */
    int64_t created_at_ms;      /* parsed createdAt, 0 when absent or unparseable */
    int64_t retry_count;        /* retryCount, 0 when absent */

    char *sequence_number;      /* of the stream record; always its own allocation */
    int64_t approximate_creation_ms;
    void *block;                /* see above; NULL: every string allocated on its own */
};

/* Frees every field and zeroes the struct (not the struct itself). */
void ob_message_free(struct ob_message *m);
/* The value of header `name` (case-insensitive), or NULL. */
const char *ob_message_header(const struct ob_message *m, const char *name);

#ifdef __cplusplus
}
#endif
#endif
