/* A client for the AWS JSON protocols (DynamoDB, DynamoDB Streams, and the
 * JSON-speaking sinks): signed POSTs over kept-alive connections, run
 * concurrently on one thread's ob_http_client, retried in the SDKs' standard mode,
 * errors classified from `__type` into enum ob_err codes.
 *
 * Ownership and threads:
 *  - struct ob_aws_client is shared and thread-safe: region, the
 *    credential provider (borrowed), the signing-key cache, timeouts and
 *    the retry quota. Every request is signed with the provider's current
 *    credentials; an answer that calls them expired (ExpiredToken...)
 *    tells the provider and is retried, and stays retriable
 *    (OB_ERR_CREDENTIALS) when the attempts run out.
 *  - struct ob_aws_session is one thread's connection pool (an
 *    ob_http_client). It is not thread-safe, except ob_aws_session_cancel.
 *  - struct ob_aws_call is owned by the caller; ob_aws_call_release frees
 *    what a run left in it (response JSON). */
#ifndef OB_AWS_CLIENT_H
#define OB_AWS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "aws/credentials_provider.h"
#include "aws/http_client.h"
#include "core/buf.h"
#include "outboxd/error.h"

struct ob_aws_endpoint {
    char *url;  /* "https://dynamodb.us-east-1.amazonaws.com/" */
    char *host; /* Host header: host, or host:port when the port is not the scheme's */
    char *path; /* request path, "/" unless the URL has one */
    struct ob_http_origin origin;
};

/* Parses an endpoint URL (http or https; no query, no user info).
 * Fills *ep (free with ob_aws_endpoint_free). */
enum ob_err ob_aws_endpoint_parse(const char *url, struct ob_aws_endpoint *ep, struct ob_error *err);
void ob_aws_endpoint_free(struct ob_aws_endpoint *ep);

/* What an error name (the part of `__type` after the last '#') means to
 * outboxd. */
struct ob_aws_error_name {
    const char *name;
    enum ob_err code;
    bool retriable;
};

struct ob_aws_service {
    const char *signing_name;  /* credential scope service: "dynamodb" */
    const char *target_prefix; /* X-Amz-Target prefix: "DynamoDB_20120810"; NULL: none (query protocol) */
    const char *content_type;  /* "application/x-amz-json-1.0" */
    /* The AWS query protocol (SNS): the body is a form, the answers XML.
     * A success is left unparsed in the call's `rx` (as raw_success does);
     * an error is read from <Code> and <Message>. */
    bool query_protocol;
    /* The service's own error names, looked up before the ones any AWS
     * service may answer (throttling, credentials, server faults), which
     * the client knows. */
    const struct ob_aws_error_name *errors;
    size_t n_errors;
};

struct ob_aws_client_options {
    const char *region;
    struct ob_cred_provider *credentials; /* borrowed: outlives the client */
    int max_attempts;
    int64_t retry_base_delay_ms;
    int64_t retry_max_delay_ms;
    int64_t connect_timeout_ms;
    int64_t request_timeout_ms;
    int max_connections; /* per session */
    bool tls_skip_verify; /* a sink's explicit `tls_verify: false`; DynamoDB always verifies */
};

struct ob_aws_client;

/* Returns a new client in *out; the caller owns it (ob_aws_client_destroy
 * after every session of it is destroyed). */
enum ob_err ob_aws_client_create(const struct ob_aws_client_options *opt, struct ob_aws_client **out,
                                 struct ob_error *err);
void ob_aws_client_destroy(struct ob_aws_client *c);
const char *ob_aws_client_region(const struct ob_aws_client *c);
int ob_aws_client_retry_quota(struct ob_aws_client *c);

struct ob_aws_session;

/* The caller owns the session; one thread uses it at a time. */
struct ob_aws_session *ob_aws_session_create(struct ob_aws_client *c);
void ob_aws_session_destroy(struct ob_aws_session *s);
/* Safe from any thread: calls running in the session fail now with
 * OB_ERR_NETWORK "canceled" instead of waiting out their retries, and
 * later runs fail at once. */
void ob_aws_session_cancel(struct ob_aws_session *s);

struct ob_aws_call {
    /* Inputs, borrowed for the duration of the run. */
    const struct ob_aws_service *service;
    const struct ob_aws_endpoint *endpoint;
    const char *operation; /* "PutItem" */
    const char *body;
    size_t body_len;
    /* A 2xx answer is left unparsed in `rx` (response stays NULL), for
     * callers that read large answers with their own scanner. */
    bool raw_success;
    /* Who started it (ob_aws_start): parts sharing a session take back
     * only their own calls (ob_aws_next_done). */
    const void *owner;

    /* Outputs. */
    enum ob_err result;
    struct ob_error err;  /* when result != OB_OK */
    long http_status;     /* of the last attempt, 0 if none answered */
    json_t *response;     /* parsed body of the last answer (success or AWS error), or NULL; owned */
    int attempts;

    struct ob_buf rx;     /* the last answer's body, as received */

    /* Private to client.c. */
    struct ob_aws_call *next_in_session;
    bool started;
    int state;
    int retry_cost;
    int64_t next_at_ms;
    struct ob_buf head;
    struct ob_http_exchange exchange;
    struct ob_cred_snapshot *signed_with; /* the attempt on the wire's credentials */
};

/* Runs every call concurrently (up to max_connections at once), each with
 * its own retries, and returns when all have an outcome. */
void ob_aws_run(struct ob_aws_session *s, struct ob_aws_call *const *calls, size_t n);

/* Calls that run while the caller does other work (marks overlapping the
 * next deliveries). ob_aws_start hands the call to the session; it makes
 * progress in ob_aws_poll and in every ob_aws_run of the session, and
 * comes back, done, from ob_aws_next_done. The call must stay where it is
 * until then, or until ob_aws_abandon takes it back unfinished. */
void ob_aws_start(struct ob_aws_session *s, struct ob_aws_call *call);
/* Sends and receives for the session's calls, waiting up to timeout_ms
 * for one to finish (not at all when one, of any owner, is waiting to be
 * taken). */
void ob_aws_poll(struct ob_aws_session *s, int timeout_ms);
/* Sends the calls just started, without looking for answers. */
void ob_aws_send(struct ob_aws_session *s);
/* The first finished call started by owner, or NULL. */
struct ob_aws_call *ob_aws_next_done(struct ob_aws_session *s, const void *owner);
void ob_aws_abandon(struct ob_aws_session *s, struct ob_aws_call *call);

/* One call, synchronously. On OB_OK, *response (when not NULL) receives the
 * parsed body (caller owns: json_decref). */
enum ob_err ob_aws_call_json(struct ob_aws_session *s, const struct ob_aws_service *service,
                             const struct ob_aws_endpoint *endpoint, const char *operation,
                             const json_t *request, json_t **response, struct ob_error *err);

/* Frees what runs left in the call (the answer, buffers). */
void ob_aws_call_release(struct ob_aws_call *call);

/* For a caller that reads big answers again and again (GetRecords): the
 * call's answer goes into `keep`'s storage, lent after the call is prepared,
 * and ob_aws_call_release_keep gives it back emptied instead of freeing it.
 * A freed answer of a few hundred KiB would be trimmed from the heap and its
 * pages faulted in again by the next read. `keep` stays the caller's. */
void ob_aws_call_lend_rx(struct ob_aws_call *call, struct ob_buf *keep);
void ob_aws_call_release_keep(struct ob_aws_call *call, struct ob_buf *keep);

/* Classifies an AWS JSON error answer of service (NULL: one that has no
 * error names of its own) (pure; for the client and tests). */
void ob_aws_classify_error(const struct ob_aws_service *service, long http_status, const json_t *body,
                           struct ob_error *err);
/* The same for an XML error answer of the query protocol. */
void ob_aws_classify_xml_error(const struct ob_aws_service *service, long http_status, const char *body, size_t len,
                               struct ob_error *err);

#endif
