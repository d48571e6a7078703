/* DynamoDB Streams reads and the lease table's checkpoints: the stream of
 * a table, its shards (DescribeStream, every page), iterators, records. */
#ifndef OB_DYNAMO_STREAMS_H
#define OB_DYNAMO_STREAMS_H

#include <jansson.h>

#include "core/record.h"
#include <stdbool.h>
#include <stddef.h>

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
/* The same in two steps, for a call that runs while its caller works on
 * (ob_aws_start): the prepared call's request text is in *body (the
 * caller's, kept until the call is done); then the outcome of the
 * finished call, which it releases. A caller that reads on and on passes
 * `keep` (else NULL): the answer's storage is lent to the next call
 * (ob_aws_call_lend_rx) instead of being freed. */
void ob_stream_get_records_prepare(struct ob_ddb *d, const char *iterator, int limit, struct ob_aws_call *call,
                                   struct ob_buf *body);
enum ob_err ob_stream_get_records_result(struct ob_aws_call *call, struct ob_records_page *page, struct ob_buf *keep,
                                         struct ob_error *err);

/* The checkpoint of a shard that was read to its end. */
#define OB_CHECKPOINT_SHARD_END "SHARD_END"

/* Records a shard's checkpoint in its lease, on the condition that `owner`
 * still holds the lease, in two steps, for a write that runs while its
 * caller works on (ob_aws_start): the prepared call's request text is in
 * *body (the caller's, freed after the result); then the outcome of the
 * finished call, which it releases (OB_ERR_CONDITION_FAILED: the lease
 * was lost). */
void ob_checkpoint_write_prepare(struct ob_ddb *d, const char *lease_table, const char *shard_id, const char *owner,
                                 const char *checkpoint, struct ob_aws_call *call, char **body);
enum ob_err ob_checkpoint_write_result(struct ob_aws_call *call, const char *lease_table, const char *shard_id,
                                       struct ob_error *err);

#endif
