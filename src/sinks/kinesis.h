/* kinesis sink: its pure parts (stream addresses, partition keys, the
 * size rules, the PutRecords request and answer), for kinesis.c and the
 * unit tests. The sink itself is ob_kinesis_sink_ops in the catalogue. */
#ifndef OB_SINKS_KINESIS_H
#define OB_SINKS_KINESIS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "outboxd/error.h"
#include "sinks/aws_sink.h"
#include "sinks/sink.h"

/* PutRecords' limits. A record's size is its data and its partition key;
 * a call's is the sum of its records' (base64 and JSON do not count). */
#define OB_KINESIS_MAX_RECORDS 500
#define OB_KINESIS_MAX_RECORD_BYTES (1024u * 1024u)
#define OB_KINESIS_MAX_CALL_BYTES (5u * 1024u * 1024u)
/* A partition key's length: Unicode characters as Kinesis (Java) counts
 * them, UTF-16 code units. */
#define OB_KINESIS_MAX_KEY_UNITS 256

/* A pk Kinesis cannot take as a partition key becomes this prefix and the
 * lowercase hex SHA-256 of the pk. */
#define OB_KINESIS_DIGEST_PREFIX "sha256:"
#define OB_KINESIS_DIGEST_KEY_SIZE (sizeof OB_KINESIS_DIGEST_PREFIX - 1 + 64 + 1)

/* A stream as PutRecords addresses it. Owned strings. */
struct ob_kinesis_stream {
    char *name;   /* StreamName */
    char *arn;    /* StreamARN, NULL when the stream was given by name */
    char *region; /* the ARN's region, NULL when given by name */
};

/* Parses a stream name ([a-zA-Z0-9_.-], 1 to 128 characters) or a stream
 * ARN (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME) into *out
 * (ob_kinesis_stream_free); OB_ERR_INVALID saying what is wrong else. */
enum ob_err ob_kinesis_stream_parse(const char *text, struct ob_kinesis_stream *out, struct ob_error *err);
void ob_kinesis_stream_free(struct ob_kinesis_stream *st);

/* The PartitionKey of a message's pk: the pk itself when Kinesis takes it
 * (UTF-8, 1 to 256 characters), else OB_KINESIS_DIGEST_PREFIX and its
 * digest, written into digest. The same pk always gives the same key, so a
 * key's messages stay on one shard, in order. */
const char *ob_kinesis_partition_key(const char *pk, char digest[OB_KINESIS_DIGEST_KEY_SIZE]);

/* One record of a PutRecords call. */
struct ob_kinesis_record {
    const char *data; /* the structured CloudEvent */
    size_t data_len;
    const char *key;  /* PartitionKey (ob_kinesis_partition_key) */
};

/* What Kinesis counts of a record against OB_KINESIS_MAX_RECORD_BYTES and
 * OB_KINESIS_MAX_CALL_BYTES. */
size_t ob_kinesis_record_size(const struct ob_kinesis_record *r);

/* PutRecords as ob_aws_sink_send sends it: one stream's records, at most
 * OB_KINESIS_MAX_RECORDS and OB_KINESIS_MAX_CALL_BYTES a call. */
extern const struct ob_aws_batch_rules ob_kinesis_batch;

/* Appends the PutRecords request of n records to st. */
void ob_kinesis_request(struct ob_buf *body, const struct ob_kinesis_stream *st, const struct ob_kinesis_record *recs,
                        size_t n);

/* Sets the results of the n deliveries of a call from its PutRecords
 * answer: a record with a SequenceNumber is acknowledged; one with an
 * ErrorCode fails alone, RETRY when Kinesis may take it later (throttling,
 * an internal failure), REJECT else. An answer without one result per
 * record makes every delivery RETRY (Kinesis may have some: at least
 * once). */
void ob_kinesis_results(const json_t *answer, struct ob_delivery *const *d, size_t n);

#endif
