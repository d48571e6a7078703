#include "dynamo/streams.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/json_scan.h"
#include "dynamo/table.h"
#include "ops/clock.h"

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

void ob_stream_get_records_prepare(struct ob_ddb *d, const char *iterator, int limit, struct ob_aws_call *call,
                                   struct ob_buf *body)
{
    ob_buf_reset(body);
    ob_buf_puts(body, "{\"ShardIterator\":");
    ob_json_put_string(body, iterator);
    ob_buf_puts(body, ",\"Limit\":");
    ob_buf_put_int(body, limit);
    ob_buf_putc(body, '}');
    ob_ddb_prepare_raw(d, &ob_service_streams, call, "GetRecords", body->data, body->len);
}

/* The answer (up to 1 MB of item images) is read with the scanner of
 * ob_records_page_decode, not loaded as a DOM. */
enum ob_err ob_stream_get_records_result(struct ob_aws_call *call, struct ob_records_page *page, struct ob_buf *keep,
                                         struct ob_error *err)
{
    enum ob_err rc = call->result;
    if (rc)
        *err = call->err;
    else
        rc = ob_records_page_decode(call->rx.data ? call->rx.data : "", call->rx.len, page, err);
    if (keep)
        ob_aws_call_release_keep(call, keep);
    else
        ob_aws_call_release(call);
    return rc;
}

enum ob_err ob_stream_get_records(struct ob_ddb_session *s, const char *iterator, int limit,
                                  struct ob_records_page *page, struct ob_error *err)
{
    struct ob_aws_call call;
    struct ob_buf body = { 0 };
    ob_stream_get_records_prepare(s->ddb, iterator, limit, &call, &body);
    struct ob_aws_call *one = &call;
    ob_aws_run(s->aws, &one, 1);
    enum ob_err rc = ob_stream_get_records_result(&call, page, NULL, err);
    ob_buf_free(&body);
    return rc;
}

void ob_checkpoint_write_prepare(struct ob_ddb *d, const char *lease_table, const char *shard_id, const char *owner,
                                 const char *checkpoint, struct ob_aws_call *call, char **body)
{
    char now[OB_ISO8601_LEN];
    ob_iso8601_ms(ob_wall_ms(), now);
    json_t *req = json_pack("{s:s,s:{s:{s:s}},s:s,s:s,s:{s:{s:s},s:{s:s},s:{s:s}}}", "TableName", lease_table, "Key",
                            "leaseKey", "S", shard_id, "UpdateExpression", "SET checkpoint = :c, checkpointAt = :t",
                            "ConditionExpression", "leaseOwner = :me", "ExpressionAttributeValues", ":c", "S",
                            checkpoint, ":t", "S", now, ":me", "S", owner);
    ob_ddb_prepare_call(d, call, "UpdateItem", req, body);
    json_decref(req);
}

enum ob_err ob_checkpoint_write_result(struct ob_aws_call *call, const char *lease_table, const char *shard_id,
                                       struct ob_error *err)
{
    enum ob_err rc = ob_ddb_call_finish(call, NULL, err);
    if (rc)
        ob_error_prefix(err, "checkpoint of %s in %s", shard_id, lease_table);
    return rc;
}
