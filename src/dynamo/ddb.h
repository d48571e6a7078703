/* DynamoDB and DynamoDB Streams over the AWS JSON client: endpoints from
 * configuration or the region's defaults, ReturnConsumedCapacity=TOTAL on
 * every data call with the units added to
 * outboxd_consumed_capacity_units_total{table,operation,kind}.
 *
 * struct ob_ddb is shared and thread-safe; each thread brings its own
 * struct ob_ddb_session (ob_ddb_session_create). */
#ifndef OB_DYNAMO_DDB_H
#define OB_DYNAMO_DDB_H

#include <jansson.h>

#include "aws/client.h"
#include "core/config.h"
#include "outboxd/error.h"

struct ob_ddb_options {
    const char *region;           /* resolved (struct ob_cred_context's) */
    struct ob_cred_provider *credentials; /* borrowed: outlives the ob_ddb */
    const char *endpoint;         /* NULL: https://dynamodb.<region>.amazonaws.com */
    const char *streams_endpoint; /* NULL: endpoint when set, else https://streams.dynamodb.<region>.amazonaws.com */
    int max_attempts;             /* 0: 8 */
    int64_t retry_base_delay_ms;  /* 0: 25 ms */
    int64_t retry_max_delay_ms;   /* 0: 20 s */
    int64_t connect_timeout_ms;   /* 0: 3 s */
    int64_t request_timeout_ms;   /* 0: 10 s */
    int max_connections;          /* 0: 64 */
};


struct ob_ddb {
    struct ob_aws_client *aws;
    struct ob_aws_endpoint dynamodb;
    struct ob_aws_endpoint streams;
};

extern const struct ob_aws_service ob_service_dynamodb;
extern const struct ob_aws_service ob_service_streams;

/* Parses the endpoints and makes the client. The caller owns *out
 * (ob_ddb_close). */
enum ob_err ob_ddb_open(const struct ob_ddb_options *opt, struct ob_ddb **out, struct ob_error *err);
void ob_ddb_close(struct ob_ddb *d);
/* ob_ddb_open with the options of the config's `aws` section, the region
 * and credentials of aws (borrowed). */
enum ob_err ob_ddb_open_config(const struct ob_config *cfg, const struct ob_cred_context *aws, struct ob_ddb **out,
                               struct ob_error *err);

/* One thread's connection pool for the calls of one ob_ddb. Callers
 * above dynamo/ only create, poll and destroy it and hand it to dynamo's
 * operations; its fields are dynamo's. Not thread-safe. */
struct ob_ddb_session {
    struct ob_ddb *ddb;         /* borrowed */
    struct ob_aws_session *aws; /* owned */
};

/* A new session for the calling thread (caller owns; ob_ddb_session_destroy). */
struct ob_ddb_session *ob_ddb_session_create(struct ob_ddb *d);
void ob_ddb_session_destroy(struct ob_ddb_session *s);
/* Drives every operation running in the session (reads, marks, lookups,
 * checkpoints of one thread): sends and receives, waiting up to timeout_ms
 * for one to finish, not at all when a finished one waits to be taken. */
void ob_ddb_session_poll(struct ob_ddb_session *s, int timeout_ms);
/* Sends what was just started, without waiting for answers. */
void ob_ddb_session_send(struct ob_ddb_session *s);

/* One DynamoDB call. `request` is borrowed; for data operations the call
 * adds ReturnConsumedCapacity=TOTAL when the request lacks it. On OB_OK,
 * *response (when not NULL) is the caller's. On failure err is filled; for
 * TransactionCanceledException *response (when not NULL) still receives the
 * error body so callers can read CancellationReasons. */
enum ob_err ob_ddb_call(struct ob_ddb_session *s, const char *operation, json_t *request,
                        json_t **response, struct ob_error *err);
/* n calls of operation, one per request, run concurrently (each with its
 * own retries), each outcome as ob_ddb_call gives it: results[i],
 * responses[i] (when responses is not NULL; the caller's, NULL when the
 * call failed but for TransactionCanceledException) and errs[i]
 * (when errs is not NULL). requests are borrowed. */
void ob_ddb_call_all(struct ob_ddb_session *s, const char *operation, json_t *const *requests, size_t n,
                     enum ob_err *results, json_t **responses, struct ob_error *errs);
/* One DynamoDB Streams call (DescribeStream, GetShardIterator, GetRecords, ListStreams). */
enum ob_err ob_streams_call(struct ob_ddb_session *s, const char *operation,
                            const json_t *request, json_t **response, struct ob_error *err);

/* Prepares a call for ob_aws_run (concurrent calls): serializes `request`
 * into *body_out (caller frees) after adding ReturnConsumedCapacity. */
void ob_ddb_prepare_call(struct ob_ddb *d, struct ob_aws_call *call, const char *operation, json_t *request,
                         char **body_out);
/* The outcome of a finished call of ob_ddb_prepare_call, as ob_ddb_call
 * gives it (capacity counted, *response and err filled the same way);
 * releases the call. */
enum ob_err ob_ddb_call_finish(struct ob_aws_call *call, json_t **response, struct ob_error *err);
/* Adds the consumed capacity of a finished call's response to the metrics. */
void ob_ddb_account_capacity(const char *operation, const json_t *response);

/* The request as JSON text with ReturnConsumedCapacity added for data
 * operations (caller frees). */
char *ob_ddb_request_text(const char *operation, json_t *request);
/* Prepares a call to service (ob_service_dynamodb or ob_service_streams)
 * of a ready JSON body (borrowed until the call is released) whose 2xx
 * answer stays raw in call->rx: for the hot paths, read with a scanner
 * (ob_ddb_raw_units, ob_records_page_decode) instead of a DOM. */
void ob_ddb_prepare_raw(struct ob_ddb *d, const struct ob_aws_service *service, struct ob_aws_call *call,
                        const char *operation, const char *body, size_t len);
/* ob_ddb_prepare_raw of a DynamoDB call (the hot writes). */
void ob_ddb_prepare_raw_call(struct ob_ddb *d, struct ob_aws_call *call, const char *operation, const char *body,
                             size_t len);
/* ConsumedCapacity.CapacityUnits of a successful raw single-item answer,
 * or -1 when it has none. */
double ob_ddb_raw_units(const struct ob_aws_call *call);
/* Adds units consumed by operation on table (kind "read" or "write"). */
void ob_ddb_count_units(const char *table, const char *operation, const char *kind, double units);

/* DynamoDB JSON helpers: {"N": "<v>"}, and the string of an item's S attribute (or NULL). */
json_t *ob_ddb_number(int64_t v);
const char *ob_ddb_attr_s(const json_t *item, const char *name);

/* Reads a consumed-capacity counter (tests, status). */
double ob_ddb_consumed_units(const char *table, const char *operation, const char *kind);

#endif
