/* The stream-record decoder (pure): one element of GetRecords' `Records`
 * → a message to relay, a record to skip, or a poison item (SPEC §3). */
#ifndef OB_CORE_RECORD_H
#define OB_CORE_RECORD_H

#include <jansson.h>
#include <stdint.h>

#include "outboxd/error.h"
#include "outboxd/message.h"

enum ob_record_kind {
    OB_RECORD_MESSAGE, /* INSERT of an item with isPublished not true: relay it */
    OB_RECORD_SKIP,    /* MODIFY, REMOVE, or inserted already published */
    OB_RECORD_POISON,  /* INSERT that cannot be relayed: dead-letter at once */
    OB_RECORD_NO_IMAGE, /* INSERT without NewImage: the stream's view type leaves
                         * it out, which is no fault of the item's (never a dead
                         * letter); nothing after it can be relayed */
};

struct ob_record {
    enum ob_record_kind kind;
    const char *skip_reason;  /* SKIP: static "MODIFY", "REMOVE", "published" */
    char *poison_reason;      /* POISON: owned, e.g. "payload is not valid base64"; else NULL */
    /* MESSAGE: every field decoded. POISON: pk/sk when they are strings
     * (so the item can be marked), other fields as far as they decoded.
     * msg.sequence_number and msg.approximate_creation_ms are set for
     * every kind. */
    struct ob_message msg;
    int64_t size_bytes;       /* dynamodb.SizeBytes, 0 when absent */
};

/* Decodes one record. Returns OB_ERR_INVALID (with err) only when the
 * record is not a stream record at all (no SequenceNumber or no
 * `dynamodb` object); everything about the item is a kind, not an error.
 * *out must be zeroed; free with ob_record_free. */
enum ob_err ob_record_decode(const json_t *record, struct ob_record *out, struct ob_error *err);
/* The same, from the record's JSON text (what GetRecords pages hold). */
enum ob_err ob_record_decode_text(const char *json, size_t len, struct ob_record *out, struct ob_error *err);
void ob_record_free(struct ob_record *r);

/* One GetRecords answer, decoded. */
struct ob_records_page {
    struct ob_record *records;  /* owned; n of them, in stream order */
    size_t n;
    char *next_iterator;        /* owned; NULL when the shard is closed and read */
    size_t malformed;           /* elements that were not stream records (left out) */
    size_t bytes;               /* length of the answer's text */
    char first_malformed[256];  /* why the first of them was */
};

/* Decodes a GetRecords answer's JSON text in one pass with a scanner, no
 * DOM: images of records that are not INSERTs are skipped unread (they
 * are most of a busy stream: every mark-published adds a MODIFY with two
 * images), and an INSERT's NewImage is indexed, not copied. OB_ERR_INVALID when the text is not a JSON
 * object. *out is the caller's (ob_records_page_free) on success. */
enum ob_err ob_records_page_decode(const char *json, size_t len, struct ob_records_page *out, struct ob_error *err);
void ob_records_page_free(struct ob_records_page *p);

/* Compares two stream sequence numbers (decimal strings of any length) as
 * numbers: <0, 0, >0. */
int ob_seq_compare(const char *a, const char *b);

#endif
