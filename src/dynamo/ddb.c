#include "dynamo/ddb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_scan.h"
#include "ops/metrics.h"

/* The error names of DynamoDB and DynamoDB Streams (the client knows
 * those of every AWS service); one list for both, as a call to either may
 * answer any of them. */
static const struct ob_aws_error_name ddb_errors[] = {
    { "ProvisionedThroughputExceededException", OB_ERR_THROTTLED, true },
    { "RequestLimitExceeded", OB_ERR_THROTTLED, true },
    { "LimitExceededException", OB_ERR_THROTTLED, true },
    { "TransactionInProgressException", OB_ERR_THROTTLED, true },
    { "ConditionalCheckFailedException", OB_ERR_CONDITION_FAILED, false },
    { "ItemCollectionSizeLimitExceededException", OB_ERR_VALIDATION, false },
    { "ExpiredIteratorException", OB_ERR_EXPIRED_ITERATOR, false },
    { "TrimmedDataAccessException", OB_ERR_TRIMMED, false },
    { "TransactionCanceledException", OB_ERR_TRANSACTION_CANCELED, false },
    { "ResourceInUseException", OB_ERR_RESOURCE_IN_USE, false },
};

const struct ob_aws_service ob_service_dynamodb = {
    .signing_name = "dynamodb",
    .target_prefix = "DynamoDB_20120810",
    .content_type = "application/x-amz-json-1.0",
    .errors = ddb_errors,
    .n_errors = sizeof ddb_errors / sizeof ddb_errors[0],
};

/* The Streams host signs as "dynamodb" too (see AWS-NOTES). */
const struct ob_aws_service ob_service_streams = {
    .signing_name = "dynamodb",
    .target_prefix = "DynamoDBStreams_20120810",
    .content_type = "application/x-amz-json-1.0",
    .errors = ddb_errors,
    .n_errors = sizeof ddb_errors / sizeof ddb_errors[0],
};

/* Data operations: they accept ReturnConsumedCapacity; the kind tells
 * which units CapacityUnits counts when the answer does not split them. */
static const struct {
    const char *operation;
    const char *kind;
} data_operations[] = {
    { "GetItem", "read" },         { "BatchGetItem", "read" },   { "Query", "read" },
    { "Scan", "read" },            { "TransactGetItems", "read" }, { "PutItem", "write" },
    { "UpdateItem", "write" },     { "DeleteItem", "write" },    { "BatchWriteItem", "write" },
    { "TransactWriteItems", "write" },
};

static const char *data_operation_kind(const char *operation)
{
    for (size_t i = 0; i < sizeof data_operations / sizeof data_operations[0]; i++)
        if (strcmp(data_operations[i].operation, operation) == 0)
            return data_operations[i].kind;
    return NULL;
}

enum ob_err ob_ddb_open(const struct ob_ddb_options *opt, struct ob_ddb **out, struct ob_error *err)
{
    enum ob_err rc;
    const char *region = opt->region;
    *out = NULL;
    if (!region || !*region)
        return ob_error_set(err, OB_ERR_CONFIG, "no AWS region");
    struct ob_ddb *d = ob_xcalloc(1, sizeof *d);
    struct ob_buf url = { 0 };

    if (opt->endpoint)
        ob_buf_puts(&url, opt->endpoint);
    else
        ob_buf_printf(&url, "https://dynamodb.%s.amazonaws.com/", region);
    rc = ob_aws_endpoint_parse(url.data, &d->dynamodb, err);
    if (rc)
        goto out;
    ob_buf_reset(&url);
    if (opt->streams_endpoint)
        ob_buf_puts(&url, opt->streams_endpoint);
    else if (opt->endpoint)
        ob_buf_puts(&url, opt->endpoint);
    else
        ob_buf_printf(&url, "https://streams.dynamodb.%s.amazonaws.com/", region);
    rc = ob_aws_endpoint_parse(url.data, &d->streams, err);
    if (rc)
        goto out;

    struct ob_aws_client_options co2 = {
        .region = region,
        .credentials = opt->credentials,
        .max_attempts = opt->max_attempts > 0 ? opt->max_attempts : 8,
        .retry_base_delay_ms = opt->retry_base_delay_ms > 0 ? opt->retry_base_delay_ms : 25,
        .retry_max_delay_ms = opt->retry_max_delay_ms > 0 ? opt->retry_max_delay_ms : 20000,
        .connect_timeout_ms = opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : 3000,
        .request_timeout_ms = opt->request_timeout_ms > 0 ? opt->request_timeout_ms : 10000,
        .max_connections = opt->max_connections > 0 ? opt->max_connections : 64,
    };
    rc = ob_aws_client_create(&co2, &d->aws, err);
out:
    ob_buf_free(&url);
    if (rc) {
        ob_ddb_close(d);
        d = NULL;
    }
    *out = d;
    return rc;
}

void ob_ddb_close(struct ob_ddb *d)
{
    if (!d)
        return;
    ob_aws_client_destroy(d->aws);
    ob_aws_endpoint_free(&d->dynamodb);
    ob_aws_endpoint_free(&d->streams);
    free(d);
}

struct ob_ddb_session *ob_ddb_session_create(struct ob_ddb *d)
{
    struct ob_ddb_session *s = ob_xcalloc(1, sizeof *s);
    s->ddb = d;
    s->aws = ob_aws_session_create(d->aws);
    return s;
}

void ob_ddb_session_destroy(struct ob_ddb_session *s)
{
    if (!s)
        return;
    ob_aws_session_destroy(s->aws);
    free(s);
}

void ob_ddb_session_poll(struct ob_ddb_session *s, int timeout_ms)
{
    ob_aws_poll(s->aws, timeout_ms);
}

void ob_ddb_session_send(struct ob_ddb_session *s)
{
    ob_aws_send(s->aws);
}

static void capacity_labels(struct ob_buf *b, const char *table, const char *operation, const char *kind)
{
    ob_buf_puts(b, "kind=\"");
    ob_buf_puts(b, kind);
    ob_buf_puts(b, "\",operation=\"");
    ob_metrics_escape(b, operation);
    ob_buf_puts(b, "\",table=\"");
    ob_metrics_escape(b, table);
    ob_buf_putc(b, '"');
}

void ob_ddb_count_units(const char *table, const char *operation, const char *kind, double units)
{
    if (units <= 0)
        return;
    struct ob_buf l = { 0 };
    capacity_labels(&l, table, operation, kind);
    ob_metric_count("outboxd_consumed_capacity_units_total", l.data, units);
    ob_buf_free(&l);
}

static void account_one(const char *operation, const json_t *cc)
{
    const char *table = json_string_value(json_object_get(cc, "TableName"));
    if (!table)
        return;
    const json_t *r = json_object_get(cc, "ReadCapacityUnits");
    const json_t *w = json_object_get(cc, "WriteCapacityUnits");
    if (r || w) {
        ob_ddb_count_units(table, operation, "read", json_number_value(r));
        ob_ddb_count_units(table, operation, "write", json_number_value(w));
        return;
    }
    const char *kind = data_operation_kind(operation);
    ob_ddb_count_units(table, operation, kind ? kind : "read",
                json_number_value(json_object_get(cc, "CapacityUnits")));
}

void ob_ddb_account_capacity(const char *operation, const json_t *response)
{
    const json_t *cc = json_object_get(response, "ConsumedCapacity");
    if (json_is_object(cc)) {
        account_one(operation, cc);
    } else if (json_is_array(cc)) {
        size_t i;
        const json_t *one;
        json_array_foreach(cc, i, one)
            account_one(operation, one);
    }
}

double ob_ddb_consumed_units(const char *table, const char *operation, const char *kind)
{
    struct ob_buf l = { 0 };
    capacity_labels(&l, table, operation, kind);
    double v = ob_metric_get(ob_metric_series("outboxd_consumed_capacity_units_total", l.data));
    ob_buf_free(&l);
    return v;
}

static void want_capacity(const char *operation, json_t *request)
{
    if (data_operation_kind(operation) && !json_object_get(request, "ReturnConsumedCapacity"))
        json_object_set_new(request, "ReturnConsumedCapacity", json_string("TOTAL"));
}

char *ob_ddb_request_text(const char *operation, json_t *request)
{
    want_capacity(operation, request);
    char *body = json_dumps(request, JSON_COMPACT);
    if (!body) {
        fprintf(stderr, "outboxd: out of memory\n");
        abort();
    }
    return body;
}

/* A call to one of d's two services, at that service's endpoint. */
static void prepare(struct ob_ddb *d, const struct ob_aws_service *service, struct ob_aws_call *call,
                    const char *operation, const char *body, size_t len)
{
    memset(call, 0, sizeof *call);
    call->service = service;
    call->endpoint = service == &ob_service_streams ? &d->streams : &d->dynamodb;
    call->operation = operation;
    call->body = body;
    call->body_len = len;
}

void ob_ddb_prepare_call(struct ob_ddb *d, struct ob_aws_call *call, const char *operation, json_t *request,
                         char **body_out)
{
    char *body = ob_ddb_request_text(operation, request);
    prepare(d, &ob_service_dynamodb, call, operation, body, strlen(body));
    *body_out = body;
}

void ob_ddb_prepare_raw(struct ob_ddb *d, const struct ob_aws_service *service, struct ob_aws_call *call,
                        const char *operation, const char *body, size_t len)
{
    prepare(d, service, call, operation, body, len);
    call->raw_success = true;
}

void ob_ddb_prepare_raw_call(struct ob_ddb *d, struct ob_aws_call *call, const char *operation, const char *body,
                             size_t len)
{
    ob_ddb_prepare_raw(d, &ob_service_dynamodb, call, operation, body, len);
}

double ob_ddb_raw_units(const struct ob_aws_call *call)
{
    struct ob_jscan s;
    struct ob_jspan key, num;
    if (call->result != OB_OK || !call->rx.len)
        return -1;
    ob_jscan_init(&s, call->rx.data, call->rx.len);
    if (!ob_jscan_object(&s))
        return -1;
    while (ob_jscan_key(&s, &key)) {
        if (!ob_jspan_is(&key, "ConsumedCapacity")) {
            ob_jscan_skip(&s);
            continue;
        }
        if (!ob_jscan_try_object(&s))
            continue;
        while (ob_jscan_key(&s, &key)) {
            if (ob_jspan_is(&key, "CapacityUnits") && ob_jscan_number(&s, &num))
                return ob_jspan_double(&num);
            ob_jscan_skip(&s);
        }
    }
    return -1;
}

enum ob_err ob_ddb_call(struct ob_ddb_session *s, const char *operation, json_t *request,
                        json_t **response, struct ob_error *err)
{
    enum ob_err rc;
    ob_ddb_call_all(s, operation, &request, 1, &rc, response, err);
    return rc;
}

void ob_ddb_call_all(struct ob_ddb_session *s, const char *operation, json_t *const *requests, size_t n,
                     enum ob_err *results, json_t **responses, struct ob_error *errs)
{
    if (n == 0)
        return;
    struct ob_aws_call *calls = ob_xcalloc(n, sizeof *calls);
    struct ob_aws_call **ptrs = ob_xcalloc(n, sizeof *ptrs);
    char **bodies = ob_xcalloc(n, sizeof *bodies);
    for (size_t i = 0; i < n; i++) {
        ob_ddb_prepare_call(s->ddb, &calls[i], operation, requests[i], &bodies[i]);
        ptrs[i] = &calls[i];
    }
    ob_aws_run(s->aws, ptrs, n);
    for (size_t i = 0; i < n; i++) {
        if (responses)
            responses[i] = NULL;
        results[i] = ob_ddb_call_finish(&calls[i], responses ? &responses[i] : NULL, errs ? &errs[i] : NULL);
        free(bodies[i]);
    }
    free(calls);
    free(ptrs);
    free(bodies);
}

enum ob_err ob_ddb_call_finish(struct ob_aws_call *call, json_t **response, struct ob_error *err)
{
    enum ob_err rc = call->result;
    if (call->response)
        ob_ddb_account_capacity(call->operation, call->response);
    if (rc && err)
        *err = call->err;
    if (response && (rc == OB_OK || rc == OB_ERR_TRANSACTION_CANCELED)) {
        *response = call->response;
        call->response = NULL;
    }
    ob_aws_call_release(call);
    return rc;
}

enum ob_err ob_streams_call(struct ob_ddb_session *s, const char *operation,
                            const json_t *request, json_t **response, struct ob_error *err)
{
    return ob_aws_call_json(s->aws, &ob_service_streams, &s->ddb->streams, operation, request, response, err);
}


json_t *ob_ddb_number(int64_t v)
{
    char n[24];
    snprintf(n, sizeof n, "%lld", (long long)v);
    return json_pack("{s:s}", "N", n);
}

const char *ob_ddb_attr_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

static void options_from_config(const struct ob_config *cfg, const struct ob_cred_context *aws,
                                struct ob_ddb_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->region = aws->region;
    opt->credentials = aws->credentials;
    opt->endpoint = cfg->aws.endpoint;
    opt->streams_endpoint = cfg->aws.streams_endpoint;
    opt->max_attempts = cfg->aws.max_attempts;
    opt->retry_base_delay_ms = cfg->aws.retry_base_delay_ms;
    opt->retry_max_delay_ms = cfg->aws.retry_max_delay_ms;
    opt->connect_timeout_ms = cfg->aws.connect_timeout_ms;
    opt->request_timeout_ms = cfg->aws.request_timeout_ms;
    opt->max_connections = cfg->aws.max_connections;
}

enum ob_err ob_ddb_open_config(const struct ob_config *cfg, const struct ob_cred_context *aws, struct ob_ddb **out,
                               struct ob_error *err)
{
    struct ob_ddb_options opt;
    options_from_config(cfg, aws, &opt);
    return ob_ddb_open(&opt, out, err);
}
