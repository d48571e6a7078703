/* What the AWS sinks (one file each under sinks/) share: the `region` and
 * `endpoint` keys, a client that signs with the relay's credentials and
 * retries by its rules (SPEC §4), sessions pooled across the threads that
 * publish at once, and what a failed call, or one failed entry of a batch
 * answer, means for the deliveries it carried. */
#ifndef OB_SINKS_AWS_SINK_H
#define OB_SINKS_AWS_SINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "aws/client.h"
#include "core/buf.h"
#include "sinks/sink.h"

extern const char *const ob_aws_sink_schemes[]; /* http://, https:// */

/* The rows of the two keys every AWS sink has, for its key table;
 * `service` names it in the docs ("SQS"), `host` is the first label of
 * its public endpoint ("sqs"). */
#define OB_AWS_SINK_KEYS(service, host)                                                                      \
    {.path = "region", .type = OB_CT_STRING, .def_doc = "the relay's region (`aws.region`, `AWS_REGION`, ...)", \
     .doc = "Region of the " service " resource."},                                                          \
    {.path = "endpoint", .type = OB_CT_URL, .values = ob_aws_sink_schemes,                                   \
     .def_doc = "`https://" host ".REGION.amazonaws.com/`",                                                 \
     .doc = "Endpoint of " service ": a VPC endpoint, an emulator."}

struct ob_aws_sink_pooled;

struct ob_aws_sink {
    struct ob_aws_client *client;
    struct ob_aws_endpoint endpoint;
    char *region;                       /* resolved */
    pthread_mutex_t mu;                 /* guards idle */
    struct ob_aws_sink_pooled *idle;
};

/* The region an AWS sink signs for (the sink's own, else the process's)
 * into *region (the caller frees it); OB_ERR_CONFIG without one or
 * without the process's credentials (ctx->credentials). */
enum ob_err ob_aws_sink_identity(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, char **region,
                                 struct ob_error *err);

/* Fills s from the sink's section and the relay's: region
 * (ob_aws_sink_identity), endpoint (the sink's, else
 * https://HOST.REGION.amazonaws.com/), credentials (the process's provider),
 * retries (standard mode, 3 attempts per call: the relay retries the
 * message after that), the sink's timeout and tls_verify. On failure s
 * holds nothing. */
enum ob_err ob_aws_sink_init(struct ob_aws_sink *s, const struct ob_config_sink *cfg,
                             const struct ob_sink_context *ctx, const char *host, struct ob_error *err);
void ob_aws_sink_fini(struct ob_aws_sink *s);

/* A session for one publish on the calling thread: an idle one of the
 * pool, or a new one; NULL when none can be made. Give it back with
 * ob_aws_sink_session_done. */
struct ob_aws_session *ob_aws_sink_session(struct ob_aws_sink *s);
void ob_aws_sink_session_done(struct ob_aws_sink *s, struct ob_aws_session *session);

/* Sets each of d[0..n) from a call that failed as a whole (after the
 * client's retries): RETRY for throttling, server errors and the network
 * (`unreachable` when no connection could be made), REJECT for what the
 * service refused; the error names the operation and the service's
 * words. */
void ob_aws_sink_call_failed(const struct ob_aws_call *call, struct ob_delivery *const *d, size_t n);

/* Every delivery of d[0..n) RETRY: no session could be made. */
void ob_aws_sink_no_session(struct ob_delivery *const *d, size_t n);

/* The entry of n a batch answer's Id (id[0..len)) names: AWS sinks send
 * entry i as Id "i" (decimal), and only that exact text names it; -1 for
 * any other (a sign, a space, a leading zero, out of range). */
long ob_aws_sink_entry_index(const char *id, size_t len, size_t n);

/* service's own entry for an error code (its errors table), or NULL. */
const struct ob_aws_error_name *ob_aws_sink_error_name(const struct ob_aws_service *service, const char *code);

/* One entry of a batch answer failed: code is the service's error name
 * for it; retriable (throttling, an internal error) makes it RETRY, else
 * REJECT. */
void ob_aws_sink_entry_failed(struct ob_delivery *d, const char *operation, const char *code, const char *message,
                              bool retriable);

/* One message of a publish as an entry of a batch call (SendMessageBatch,
 * PublishBatch, PutEvents, PutRecords), prepared by its sink. */
struct ob_aws_entry {
    struct ob_delivery *d;
    const char *destination;   /* a call carries one destination's entries only */
    size_t size;               /* by the service's size rule */
    void *own;                 /* the sink's encoding of the message */
};

/* The entries of one call, one destination's in publish order; where the
 * service names entries, entry i goes as Id "i". */
struct ob_aws_call_entries {
    const char *destination;
    const struct ob_aws_entry *const *e;
    struct ob_delivery *const *d;   /* e[i]->d */
    size_t n;
};

/* What a sink's batch call is: its operation, its limits and its own
 * encoding of a call and reading of an answer. */
struct ob_aws_batch_rules {
    const struct ob_aws_service *service;
    const char *operation;
    size_t max_entries;        /* a call's */
    size_t max_bytes;          /* a call's entries' sizes together: at most this... */
    bool bytes_below;          /* ...or, when set, under it ("less than") */
    /* Appends the request body of a call of these entries. */
    void (*encode)(const struct ob_aws_call_entries *c, struct ob_buf *body);
    /* Sets each of c's deliveries from the answer to its call (result OB_OK). */
    void (*read_answer)(const struct ob_aws_call *call, const struct ob_aws_call_entries *c);
};

/* Which call each of e[0..n) goes in (call_of[i]), calls numbered from 0
 * as they are opened: an entry joins its destination's latest call when
 * that has room by r's limits, else opens one (alone, whatever its size),
 * so a destination's entries keep their order from call to call. Returns
 * how many calls. */
size_t ob_aws_sink_pack(const struct ob_aws_batch_rules *r, const struct ob_aws_entry *e, size_t n, size_t *call_of);

/* Sends e[0..n) in the calls they pack into, concurrently on a pooled
 * session, and sets every delivery's result: from the call's answer
 * (r->read_answer), or ob_aws_sink_call_failed for a call that failed as
 * a whole; but a call of several entries refused as invalid as a whole
 * may be one entry's fault: each of its entries goes again in a call of
 * its own, so that only the one at fault fails. */
void ob_aws_sink_send(struct ob_aws_sink *s, const struct ob_aws_batch_rules *r, const struct ob_aws_entry *e,
                      size_t n);

#endif
