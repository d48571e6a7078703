#include "dynamo/streams.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/json_scan.h"
#include "dynamo/op.h"
#include "dynamo/table.h"

void ob_shard_list_free(struct ob_shard_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].id);
        free(l->v[i].parent_id);
        free(l->v[i].start_seq);
        free(l->v[i].end_seq);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

enum ob_err ob_stream_arn(struct ob_ddb_session *s, const char *table, bool images, char **arn,
                          struct ob_error *err)
{
    json_t *req = json_pack("{s:s}", "TableName", table);
    json_t *resp = NULL;
    enum ob_err rc = ob_ddb_call(s, "DescribeTable", req, &resp, err);
    if (rc) {
        ob_error_prefix(err, "DescribeTable %s", table);
        goto out;
    }
    const json_t *t = json_object_get(resp, "Table");
    bool on = json_is_true(json_object_get(json_object_get(t, "StreamSpecification"), "StreamEnabled"));
    char differs[128];
    if ((!on || images) && ob_table_stream_differs(t, differs, sizeof differs)) {
        rc = ob_error_set(err, OB_ERR_MISMATCH, "table %s: %s (`outboxd init` lists every difference)", table,
                          differs);
        goto out;
    }
    const char *latest = json_string_value(json_object_get(t, "LatestStreamArn"));
    if (!latest) {
        rc = ob_error_set(err, OB_ERR_SERVICE, "DescribeTable %s: an enabled stream without LatestStreamArn", table);
        goto out;
    }
    *arn = ob_xstrdup(latest);
out:
    json_decref(req);
    json_decref(resp);
    return rc;
}

static void append_shard(struct ob_shard_list *l, const json_t *sh)
{
    const char *id = json_string_value(json_object_get(sh, "ShardId"));
    if (!id)
        return;
    const json_t *range = json_object_get(sh, "SequenceNumberRange");
    l->v = ob_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    struct ob_shard *x = &l->v[l->n++];
    x->id = ob_xstrdup(id);
    x->parent_id = ob_xstrdup_or_null(json_string_value(json_object_get(sh, "ParentShardId")));
    x->start_seq = ob_xstrdup_or_null(json_string_value(json_object_get(range, "StartingSequenceNumber")));
    x->end_seq = ob_xstrdup_or_null(json_string_value(json_object_get(range, "EndingSequenceNumber")));
}

enum ob_err ob_stream_describe(struct ob_ddb_session *s, const char *arn,
                               struct ob_shard_list *out, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    char *start = NULL;
    for (;;) {
        json_t *req = json_pack("{s:s,s:i}", "StreamArn", arn, "Limit", 100);
        if (start)
            json_object_set_new(req, "ExclusiveStartShardId", json_string(start));
        json_t *resp = NULL;
        rc = ob_streams_call(s, "DescribeStream", req, &resp, err);
        json_decref(req);
        if (rc) {
            ob_error_prefix(err, "DescribeStream");
            break;
        }
        const json_t *desc = json_object_get(resp, "StreamDescription");
        size_t i;
        const json_t *sh;
        json_array_foreach(json_object_get(desc, "Shards"), i, sh)
            append_shard(out, sh);
        const char *next = json_string_value(json_object_get(desc, "LastEvaluatedShardId"));
        free(start);
        start = ob_xstrdup_or_null(next);
        json_decref(resp);
        if (!start)
            break;
    }
    free(start);
    if (rc)
        ob_shard_list_free(out);
    return rc;
}

enum ob_err ob_stream_iterator(struct ob_ddb_session *s, const char *arn, const char *shard_id,
                               const char *type, const char *seq, char **iterator, struct ob_error *err)
{
    json_t *req = json_pack("{s:s,s:s,s:s}", "StreamArn", arn, "ShardId", shard_id, "ShardIteratorType", type);
    if (seq)
        json_object_set_new(req, "SequenceNumber", json_string(seq));
    json_t *resp = NULL;
    enum ob_err rc = ob_streams_call(s, "GetShardIterator", req, &resp, err);
    if (rc) {
        ob_error_prefix(err, "GetShardIterator %s %s", shard_id, type);
        goto out;
    }
    const char *it = json_string_value(json_object_get(resp, "ShardIterator"));
    if (!it) {
        /* AWS answers without an iterator for a closed shard read past its end. */
        *iterator = NULL;
        goto out;
    }
    *iterator = ob_xstrdup(it);
out:
    json_decref(req);
    json_decref(resp);
    return rc;
}

void ob_get_records_body(struct ob_buf *out, const char *iterator, int limit)
{
    ob_buf_puts(out, "{\"ShardIterator\":");
    ob_json_put_string(out, iterator);
    ob_buf_puts(out, ",\"Limit\":");
    ob_buf_put_int(out, limit);
    ob_buf_putc(out, '}');
}

/* The call of a GetRecords whose request text is in body (kept until the
 * call is released). */
static void get_records_prepare(struct ob_ddb *d, const char *iterator, int limit, struct ob_aws_call *call,
                                struct ob_buf *body)
{
    ob_get_records_body(body, iterator, limit);
    ob_ddb_prepare_raw(d, &ob_service_streams, call, "GetRecords", body->data, body->len);
}

/* The outcome of a finished GetRecords. The answer (up to 1 MB of item
 * images) is read with the scanner of ob_records_page_decode, not loaded
 * as a DOM. */
static enum ob_err get_records_outcome(const struct ob_aws_call *call, struct ob_records_page *page,
                                       struct ob_error *err)
{
    if (call->result) {
        *err = call->err;
        return call->result;
    }
    return ob_records_page_decode(call->rx.data ? call->rx.data : "", call->rx.len, page, err);
}

enum ob_err ob_stream_get_records(struct ob_ddb_session *s, const char *iterator, int limit,
                                  struct ob_records_page *page, struct ob_error *err)
{
    struct ob_aws_call call;
    struct ob_buf body = { 0 };
    get_records_prepare(s->ddb, iterator, limit, &call, &body);
    struct ob_aws_call *one = &call;
    ob_aws_run(s->aws, &one, 1);
    enum ob_err rc = get_records_outcome(&call, page, err);
    ob_aws_call_release(&call);
    ob_buf_free(&body);
    return rc;
}

struct ob_records_read {
    struct ob_ddb_op op;
    struct ob_buf body;              /* its request text */
    struct ob_buf *storage;          /* borrowed */
};

struct ob_records_read *ob_records_read_start(struct ob_ddb_session *s, const char *iterator, int limit,
                                              struct ob_buf *storage)
{
    struct ob_records_read *rd = ob_xcalloc(1, sizeof *rd);
    rd->storage = storage;
    get_records_prepare(s->ddb, iterator, limit, &rd->op.call, &rd->body);
    ob_aws_call_lend_rx(&rd->op.call, storage);
    ob_ddb_op_start(&rd->op, s);
    return rd;
}

bool ob_records_read_poll(struct ob_records_read *rd)
{
    return ob_ddb_op_done(&rd->op);
}

enum ob_err ob_records_read_finish(struct ob_records_read *rd, struct ob_records_page *page,
                                   struct ob_error *err)
{
    enum ob_err rc = get_records_outcome(&rd->op.call, page, err);
    ob_aws_call_release_keep(&rd->op.call, rd->storage);
    ob_buf_free(&rd->body);
    free(rd);
    return rc;
}

void ob_records_read_abandon(struct ob_records_read *rd)
{
    ob_ddb_op_abandon(&rd->op);
    ob_buf_free(&rd->body);
    free(rd);
}
