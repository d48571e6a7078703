/* DynamoDB Streams reads: the stream of a table, its shards
 * (DescribeStream, every page), iterators, records. */
#ifndef OB_DYNAMO_STREAMS_H
#define OB_DYNAMO_STREAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/record.h"
#include "dynamo/ddb.h"

/* A shard as DescribeStream lists it. All strings owned. */
struct ob_shard {
    char *id;
    char *parent_id;  /* NULL for a root shard */
    char *start_seq;
    char *end_seq;    /* NULL while the shard is open */
};

struct ob_shard_list {
    struct ob_shard *v;
    size_t n;
};

void ob_shard_list_free(struct ob_shard_list *l);

/* The table's current stream ARN (DescribeTable LatestStreamArn). A table
 * whose stream is disabled gives OB_ERR_MISMATCH saying so; with images
 * (the relay, which reads every item from its stream record) so does a
 * stream whose view type is not NEW_AND_OLD_IMAGES. Caller frees *arn. */
enum ob_err ob_stream_arn(struct ob_ddb_session *s, const char *table, bool images, char **arn,
                          struct ob_error *err);

/* Every shard of the stream, following LastEvaluatedShardId. *out must be
 * zeroed; the caller frees it (ob_shard_list_free) on success. */
enum ob_err ob_stream_describe(struct ob_ddb_session *s, const char *arn,
                               struct ob_shard_list *out, struct ob_error *err);

/* GetShardIterator; type "TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER",
 * "AFTER_SEQUENCE_NUMBER" (seq required for the last two). Caller frees
 * *iterator. */
enum ob_err ob_stream_iterator(struct ob_ddb_session *s, const char *arn, const char *shard_id,
                               const char *type, const char *seq, char **iterator, struct ob_error *err);

/* GetRecords, decoded; *page is the caller's (ob_records_page_free) on
 * success. */
enum ob_err ob_stream_get_records(struct ob_ddb_session *s, const char *iterator, int limit,
                                  struct ob_records_page *page, struct ob_error *err);

/* The GetRecords request of at most limit records from iterator,
 * appended to out. */
void ob_get_records_body(struct ob_buf *out, const char *iterator, int limit);

/* A GetRecords that runs on the session while its caller works on:
 * ob_records_read_start sends it at once, the session's polls move it,
 * ob_records_read_poll says whether it is done, and
 * ob_records_read_finish then gives the decoded page (*page the
 * caller's, ob_records_page_free) or the error, and frees the read.
 * ob_records_read_abandon takes it back unfinished and frees it. The
 * answer is received into `storage` (the caller's, lent until then and
 * given back emptied): a caller that reads on and on keeps it between
 * reads, so an answer of a few hundred KiB is not freed and faulted in
 * again by the next read. */
struct ob_records_read;
struct ob_records_read *ob_records_read_start(struct ob_ddb_session *s, const char *iterator, int limit,
                                              struct ob_buf *storage);
bool ob_records_read_poll(struct ob_records_read *rd);
enum ob_err ob_records_read_finish(struct ob_records_read *rd, struct ob_records_page *page,
                                   struct ob_error *err);
void ob_records_read_abandon(struct ob_records_read *rd);

#endif
