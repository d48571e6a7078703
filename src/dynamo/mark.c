#include "dynamo/mark.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/json_scan.h"

/* Marking publishes an item that is unpublished by the schema's rules. */
#define UNPUBLISHED "attribute_exists(pk) AND (isPublished = :b OR attribute_not_exists(isPublished))"
/* Failure records go on any item not published, a poison item's
 * malformed isPublished included. */
#define NOT_PUBLISHED "attribute_exists(pk) AND (attribute_not_exists(isPublished) OR isPublished <> :b)"

static json_t *update_request(const char *table, const char *pk, const char *sk, const char *expression,
                              const char *condition, bool b)
{
    return json_pack("{s:s,s:{s:{s:s},s:{s:s}},s:s,s:s,s:{s:{s:b}}}", "TableName", table, "Key", "pk", "S", pk,
                     "sk", "S", sk, "UpdateExpression", expression, "ConditionExpression", condition,
                     "ExpressionAttributeValues", ":b", "BOOL", b);
}

static void set_value(json_t *req, const char *name, json_t *value)
{
    json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), name, value);
}

static json_t *string(const char *s)
{
    return json_pack("{s:s}", "S", s);
}

static json_t *timestamp(int64_t ms)
{
    char iso[OB_ISO8601_LEN];
    ob_iso8601_ms(ms, iso);
    return string(iso);
}

/* `ttl` is a DynamoDB reserved word. */
static void name_ttl(json_t *req)
{
    json_object_set_new(req, "ExpressionAttributeNames", json_pack("{s:s}", "#ttl", "ttl"));
}

void ob_mark_published_body(struct ob_buf *out, const char *table, const char *pk, const char *sk, int64_t now_ms,
                            int64_t ttl_seconds)
{
    char iso[OB_ISO8601_LEN];
    ob_iso8601_ms(now_ms, iso);
    ob_buf_puts(out, "{\"TableName\":");
    ob_json_put_string(out, table);
    ob_buf_puts(out, ",\"Key\":{\"pk\":{\"S\":");
    ob_json_put_string(out, pk);
    ob_buf_puts(out, "},\"sk\":{\"S\":");
    ob_json_put_string(out, sk);
    ob_buf_printf(out,
                  "}},\"UpdateExpression\":\"SET isPublished = :t, publishedAt = :now, #ttl = :ttl REMOVE lastError\","
                  "\"ConditionExpression\":\"" UNPUBLISHED "\","
                  "\"ExpressionAttributeNames\":{\"#ttl\":\"ttl\"},"
                  "\"ExpressionAttributeValues\":{\":b\":{\"BOOL\":false},\":t\":{\"BOOL\":true},"
                  "\":now\":{\"S\":\"%s\"},\":ttl\":{\"N\":\"%lld\"}},"
                  "\"ReturnConsumedCapacity\":\"TOTAL\"}",
                  iso, (long long)(now_ms / 1000 + ttl_seconds));
}

json_t *ob_mark_failed_request(const char *table, const char *pk, const char *sk, int64_t retry_count,
                               const char *error)
{
    json_t *req = update_request(table, pk, sk, "SET retryCount = :n, lastError = :e", NOT_PUBLISHED, true);
    set_value(req, ":n", ob_ddb_number(retry_count));
    set_value(req, ":e", string(error));
    return req;
}

json_t *ob_mark_dead_letter_request(const char *table, const char *pk, const char *sk, int64_t now_ms,
                                    int64_t retry_count, const char *error, int64_t ttl_seconds)
{
    json_t *req;
    if (ttl_seconds > 0) {
        req = update_request(table, pk, sk,
                             "SET deadLetteredAt = :now, retryCount = :n, lastError = :e, #ttl = :ttl",
                             NOT_PUBLISHED, true);
        name_ttl(req);
        set_value(req, ":ttl", ob_ddb_number(now_ms / 1000 + ttl_seconds));
    } else {
        req = update_request(table, pk, sk, "SET deadLetteredAt = :now, retryCount = :n, lastError = :e",
                             NOT_PUBLISHED, true);
    }
    set_value(req, ":now", timestamp(now_ms));
    set_value(req, ":n", ob_ddb_number(retry_count));
    set_value(req, ":e", string(error));
    return req;
}

static void record_states(const json_t *items, const struct ob_item_key *keys, size_t n,
                          enum ob_item_state *states)
{
    size_t i;
    const json_t *item;
    json_array_foreach(items, i, item) {
        const char *pk = ob_ddb_attr_s(item, "pk"), *sk = ob_ddb_attr_s(item, "sk");
        if (!pk || !sk)
            continue;
        bool published = json_is_true(json_object_get(json_object_get(item, "isPublished"), "BOOL"));
        for (size_t k = 0; k < n; k++)
            if (strcmp(keys[k].sk, sk) == 0 && strcmp(keys[k].pk, pk) == 0) {
                states[k] = published ? OB_ITEM_PUBLISHED : OB_ITEM_UNPUBLISHED;
                break;
            }
    }
}

/* The first RequestItems of a chunk of at most 100 keys. */
static json_t *chunk_request_items(const char *table, const struct ob_item_key *keys, size_t n)
{
    json_t *key_list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(key_list, json_pack("{s:{s:s},s:{s:s}}", "pk", "S", keys[i].pk, "sk", "S", keys[i].sk));
    return json_pack("{s:{s:o,s:b,s:s}}", table, "Keys", key_list, "ConsistentRead", 1, "ProjectionExpression",
                     "pk, sk, isPublished");
}

/* BatchGetItem per 100 keys, the chunks concurrently; each round asks
 * again for what was unprocessed. */
enum ob_err ob_items_state(struct ob_aws_session *s, struct ob_ddb *d, const char *table,
                           const struct ob_item_key *keys, size_t n, enum ob_item_state *states,
                           struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    size_t n_chunks = (n + 99) / 100;
    json_t **pending = ob_xcalloc(n_chunks ? n_chunks : 1, sizeof *pending);
    struct ob_aws_call *calls = ob_xcalloc(n_chunks ? n_chunks : 1, sizeof *calls);
    struct ob_aws_call **run = ob_xcalloc(n_chunks ? n_chunks : 1, sizeof *run);
    char **bodies = ob_xcalloc(n_chunks ? n_chunks : 1, sizeof *bodies);
    size_t *which = ob_xcalloc(n_chunks ? n_chunks : 1, sizeof *which);
    for (size_t i = 0; i < n; i++)
        states[i] = OB_ITEM_MISSING;
    for (size_t c = 0; c < n_chunks; c++)
        pending[c] = chunk_request_items(table, keys + c * 100, n - c * 100 < 100 ? n - c * 100 : 100);
    for (int round = 0; rc == OB_OK; round++) {
        size_t k = 0;
        for (size_t c = 0; c < n_chunks; c++) {
            if (!pending[c])
                continue;
            json_t *req = json_pack("{s:O}", "RequestItems", pending[c]);
            ob_ddb_prepare_call(d, &calls[k], "BatchGetItem", req, &bodies[k]);
            json_decref(req);
            which[k] = c;
            run[k] = &calls[k];
            k++;
        }
        if (k == 0)
            break;
        /* Unprocessed keys mean throttling: back off before asking again. */
        if (round > 0)
            usleep((useconds_t)(round < 8 ? 25000 << round : 5000000));
        ob_aws_run(s, run, k);
        for (size_t i = 0; i < k; i++) {
            size_t c = which[i];
            json_t *resp = calls[i].response;
            json_decref(pending[c]);
            pending[c] = NULL;
            if (calls[i].result != OB_OK) {
                if (rc == OB_OK) {
                    rc = calls[i].result;
                    *err = calls[i].err;
                    ob_error_prefix(err, "BatchGetItem %s", table);
                }
            } else {
                ob_ddb_account_capacity("BatchGetItem", resp);
                size_t off = c * 100;
                record_states(json_object_get(json_object_get(resp, "Responses"), table), keys + off,
                              n - off < 100 ? n - off : 100, states + off);
                json_t *unprocessed = json_object_get(resp, "UnprocessedKeys");
                if (json_object_size(unprocessed) > 0)
                    pending[c] = json_incref(unprocessed);
            }
            ob_aws_call_release(&calls[i]);
            free(bodies[i]);
        }
    }
    for (size_t c = 0; c < n_chunks; c++)
        json_decref(pending[c]);
    free(pending);
    free(calls);
    free(run);
    free(bodies);
    free(which);
    return rc;
}
