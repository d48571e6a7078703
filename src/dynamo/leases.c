#include "dynamo/leases.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/codec.h"
#include "dynamo/op.h"
#include "ops/clock.h"

void ob_lease_free(struct ob_lease *l)
{
    free(l->key);
    free(l->owner);
    free(l->checkpoint);
    free(l->pending_owner);
    free(l->parent);
    memset(l, 0, sizeof *l);
}

void ob_lease_list_free(struct ob_lease_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ob_lease_free(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void ob_checkpoint_latest_since(char *out, size_t size, int64_t since_ms)
{
    snprintf(out, size, "%s%lld", OB_CHECKPOINT_LATEST_SINCE, (long long)since_ms);
}

bool ob_checkpoint_is_latest_since(const char *cp, int64_t *since_ms)
{
    size_t n = strlen(OB_CHECKPOINT_LATEST_SINCE);
    if (!cp || strncmp(cp, OB_CHECKPOINT_LATEST_SINCE, n) != 0 || !isdigit((unsigned char)cp[n]))
        return false;
    char *end;
    long long v = strtoll(cp + n, &end, 10);
    if (*end)
        return false;
    *since_ms = v;
    return true;
}

static void append_lease(struct ob_lease_list *out, const json_t *item)
{
    const char *key = ob_ddb_attr_s(item, "leaseKey");
    if (!key)
        return;
    out->v = ob_xrealloc(out->v, (out->n + 1) * sizeof *out->v);
    struct ob_lease *l = &out->v[out->n++];
    memset(l, 0, sizeof *l);
    l->key = ob_xstrdup(key);
    l->owner = ob_xstrdup_or_null(ob_ddb_attr_s(item, "leaseOwner"));
    if (l->owner && !*l->owner) {
        free(l->owner);
        l->owner = NULL;
    }
    const char *n = json_string_value(json_object_get(json_object_get(item, "leaseCounter"), "N"));
    l->counter = n ? strtoll(n, NULL, 10) : 0;
    l->checkpoint = ob_xstrdup_or_null(ob_ddb_attr_s(item, "checkpoint"));
    l->pending_owner = ob_xstrdup_or_null(ob_ddb_attr_s(item, "pendingOwner"));
    const char *rt = json_string_value(json_object_get(json_object_get(item, "readThrough"), "N"));
    l->read_through = rt ? strtoll(rt, NULL, 10) : 0;
    const json_t *parents = json_object_get(json_object_get(item, "parentShardIds"), "SS");
    l->parent = ob_xstrdup_or_null(json_string_value(json_array_get(parents, 0)));
}

enum ob_err ob_leases_list(struct ob_ddb_session *s, const char *table, const char *stream_arn,
                           struct ob_lease_list *out, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    json_t *start = NULL;
    for (;;) {
        json_t *req = json_pack("{s:s,s:b,s:s,s:{s:{s:s}}}", "TableName", table, "ConsistentRead", 1,
                                "FilterExpression", "streamArn = :a", "ExpressionAttributeValues", ":a", "S",
                                stream_arn);
        if (start)
            json_object_set(req, "ExclusiveStartKey", start);
        json_t *resp = NULL;
        rc = ob_ddb_call(s, "Scan", req, &resp, err);
        json_decref(req);
        if (rc) {
            ob_error_prefix(err, "Scan %s", table);
            break;
        }
        size_t i;
        const json_t *item;
        json_array_foreach(json_object_get(resp, "Items"), i, item)
            append_lease(out, item);
        json_decref(start);
        start = json_incref(json_object_get(resp, "LastEvaluatedKey"));
        json_decref(resp);
        if (!start)
            break;
    }
    json_decref(start);
    if (rc)
        ob_lease_list_free(out);
    return rc;
}

/* The UpdateItem request of one lease: expression, condition and values
 * (taken). */
static json_t *lease_update_request(const char *table, const char *key, const char *update, const char *condition,
                                    json_t *values)
{
    return json_pack("{s:s,s:{s:{s:s}},s:s,s:s,s:o}", "TableName", table, "Key", "leaseKey", "S", key,
                     "UpdateExpression", update, "ConditionExpression", condition, "ExpressionAttributeValues",
                     values);
}

/* An UpdateItem of one lease: expression, condition and values. */
static enum ob_err lease_update(struct ob_ddb_session *s, const char *table, const char *key,
                                const char *update, const char *condition, json_t *values, json_t **response,
                                struct ob_error *err)
{
    json_t *req = lease_update_request(table, key, update, condition, values);
    if (response)
        json_object_set_new(req, "ReturnValues", json_string("ALL_NEW"));
    enum ob_err rc = ob_ddb_call(s, "UpdateItem", req, response, err);
    json_decref(req);
    return rc;
}

enum ob_err ob_lease_create(struct ob_ddb_session *s, const char *table, const char *stream_arn,
                            const struct ob_shard *shard, const char *checkpoint, struct ob_error *err)
{
    json_t *item = json_pack("{s:{s:s},s:{s:s},s:{s:s},s:o}", "leaseKey", "S", shard->id, "checkpoint", "S",
                             checkpoint, "streamArn", "S", stream_arn, "leaseCounter", ob_ddb_number(0));
    if (shard->parent_id)
        json_object_set_new(item, "parentShardIds", json_pack("{s:[s]}", "SS", shard->parent_id));
    json_t *req = json_pack("{s:s,s:o,s:s}", "TableName", table, "Item", item, "ConditionExpression",
                            "attribute_not_exists(leaseKey)");
    enum ob_err rc = ob_ddb_call(s, "PutItem", req, NULL, err);
    json_decref(req);
    if (rc == OB_ERR_CONDITION_FAILED)
        return OB_OK;
    if (rc)
        ob_error_prefix(err, "creating the lease of %s", shard->id);
    return rc;
}

enum ob_err ob_lease_take(struct ob_ddb_session *s, const char *table, const char *key,
                          const char *me, int64_t counter, int64_t *new_counter, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o,s:o}", ":me", "S", me, ":c", ob_ddb_number(counter), ":n",
                               ob_ddb_number(counter + 1));
    enum ob_err rc = lease_update(s, table, key, "SET leaseOwner = :me, leaseCounter = :n REMOVE pendingOwner",
                                  "leaseCounter = :c", values, NULL, err);
    if (rc == OB_OK)
        *new_counter = counter + 1;
    return rc;
}

enum ob_err ob_lease_request(struct ob_ddb_session *s, const char *table, const char *key,
                             const char *me, int64_t counter, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o}", ":me", "S", me, ":c", ob_ddb_number(counter));
    return lease_update(s, table, key, "SET pendingOwner = :me",
                        "leaseCounter = :c AND attribute_not_exists(pendingOwner)", values, NULL, err);
}

enum ob_err ob_lease_hand_over(struct ob_ddb_session *s, const char *table, const char *key,
                               const char *me, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o}", ":me", "S", me, ":one", ob_ddb_number(1));
    return lease_update(s, table, key,
                        "SET leaseOwner = pendingOwner, leaseCounter = leaseCounter + :one REMOVE pendingOwner",
                        "leaseOwner = :me AND attribute_exists(pendingOwner)", values, NULL, err);
}

enum ob_err ob_lease_release(struct ob_ddb_session *s, const char *table, const char *key,
                             const char *me, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o}", ":me", "S", me, ":one", ob_ddb_number(1));
    return lease_update(s, table, key, "SET leaseCounter = leaseCounter + :one REMOVE leaseOwner",
                        "leaseOwner = :me", values, NULL, err);
}

enum ob_err ob_lease_pin_latest(struct ob_ddb_session *s, const char *table, const char *key,
                                const char *me, const char *pinned, char **current, struct ob_error *err)
{
    *current = NULL;
    char now[OB_ISO8601_LEN];
    ob_iso8601_ms(ob_wall_ms(), now);
    json_t *values = json_pack("{s:{s:s},s:{s:s},s:{s:s},s:{s:s}}", ":me", "S", me, ":p", "S", pinned, ":t", "S", now,
                               ":latest", "S", OB_CHECKPOINT_LATEST);
    enum ob_err rc = lease_update(s, table, key, "SET checkpoint = :p, checkpointAt = :t",
                                  "leaseOwner = :me AND checkpoint = :latest", values, NULL, err);
    if (rc != OB_ERR_CONDITION_FAILED)
        return rc;
    /* Who holds it now, and where it is. */
    json_t *req = json_pack("{s:s,s:{s:{s:s}},s:b}", "TableName", table, "Key", "leaseKey", "S", key,
                            "ConsistentRead", 1);
    json_t *resp = NULL;
    rc = ob_ddb_call(s, "GetItem", req, &resp, err);
    json_decref(req);
    if (rc)
        return rc;
    const json_t *item = json_object_get(resp, "Item");
    const char *owner = ob_ddb_attr_s(item, "leaseOwner");
    if (owner && strcmp(owner, me) == 0)
        *current = ob_xstrdup_or_null(ob_ddb_attr_s(item, "checkpoint"));
    json_decref(resp);
    return OB_ERR_CONDITION_FAILED;
}

json_t *ob_checkpoint_request(const char *table, const char *key, const char *owner, const char *checkpoint,
                              int64_t now_ms)
{
    char at[OB_ISO8601_LEN];
    ob_iso8601_ms(now_ms, at);
    json_t *values = json_pack("{s:{s:s},s:{s:s},s:{s:s}}", ":c", "S", checkpoint, ":t", "S", at, ":me", "S", owner);
    return lease_update_request(table, key, "SET checkpoint = :c, checkpointAt = :t", "leaseOwner = :me", values);
}

struct ob_checkpoint_write {
    struct ob_ddb_op op;
    const char *table, *key;         /* borrowed */
    char *body;                      /* its request text */
};

struct ob_checkpoint_write *ob_checkpoint_write_start(struct ob_ddb_session *s, const char *table,
                                                      const char *key, const char *owner,
                                                      const char *checkpoint)
{
    struct ob_checkpoint_write *cw = ob_xcalloc(1, sizeof *cw);
    cw->table = table;
    cw->key = key;
    json_t *req = ob_checkpoint_request(table, key, owner, checkpoint, ob_wall_ms());
    ob_ddb_prepare_call(s->ddb, &cw->op.call, "UpdateItem", req, &cw->body);
    json_decref(req);
    ob_ddb_op_start(&cw->op, s);
    return cw;
}

bool ob_checkpoint_write_poll(struct ob_checkpoint_write *cw)
{
    return ob_ddb_op_done(&cw->op);
}

enum ob_err ob_checkpoint_write_finish(struct ob_checkpoint_write *cw, struct ob_error *err)
{
    enum ob_err rc = ob_ddb_call_finish(&cw->op.call, NULL, err);
    if (rc)
        ob_error_prefix(err, "checkpoint of %s in %s", cw->key, cw->table);
    free(cw->body);
    free(cw);
    return rc;
}

void ob_checkpoint_write_abandon(struct ob_checkpoint_write *cw)
{
    ob_ddb_op_abandon(&cw->op);
    free(cw->body);
    free(cw);
}

enum ob_err ob_lease_delete_ended(struct ob_ddb_session *s, const char *table, const char *key,
                                  struct ob_error *err)
{
    json_t *req = json_pack("{s:s,s:{s:{s:s}},s:s,s:{s:{s:s}}}", "TableName", table, "Key", "leaseKey", "S", key,
                            "ConditionExpression", "attribute_not_exists(leaseKey) OR checkpoint = :end",
                            "ExpressionAttributeValues", ":end", "S", OB_CHECKPOINT_SHARD_END);
    enum ob_err rc = ob_ddb_call(s, "DeleteItem", req, NULL, err);
    json_decref(req);
    if (rc)
        ob_error_prefix(err, "deleting the lease of %s", key);
    return rc;
}

void ob_leases_renew(struct ob_ddb_session *s, const char *table, const char *me,
                     const char *const *keys, int64_t *counters, const int64_t *read_through, size_t n,
                     enum ob_err *results, bool *pending)
{
    if (n == 0)
        return;
    json_t **requests = ob_xcalloc(n, sizeof *requests);
    json_t **responses = ob_xcalloc(n, sizeof *responses);
    for (size_t i = 0; i < n; i++) {
        json_t *req = json_pack("{s:s,s:{s:{s:s}},s:s,s:s,s:{s:{s:s},s:o,s:o},s:s}", "TableName", table, "Key",
                                "leaseKey", "S", keys[i], "UpdateExpression",
                                read_through[i] ? "SET leaseCounter = :n, readThrough = :rt" : "SET leaseCounter = :n",
                                "ConditionExpression", "leaseOwner = :me AND leaseCounter = :c",
                                "ExpressionAttributeValues", ":me", "S", me, ":c", ob_ddb_number(counters[i]), ":n",
                                ob_ddb_number(counters[i] + 1), "ReturnValues", "ALL_NEW");
        if (read_through[i])
            json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), ":rt",
                                ob_ddb_number(read_through[i]));
        requests[i] = req;
    }
    ob_ddb_call_all(s, "UpdateItem", requests, n, results, responses, NULL);
    for (size_t i = 0; i < n; i++) {
        pending[i] = false;
        if (results[i] == OB_OK) {
            counters[i]++;
            pending[i] = ob_ddb_attr_s(json_object_get(responses[i], "Attributes"), "pendingOwner") != NULL;
        }
        json_decref(responses[i]);
        json_decref(requests[i]);
    }
    free(requests);
    free(responses);
}

enum ob_err ob_leases_read_through(struct ob_ddb_session *s, const char *table,
                                   const char *stream_arn, int64_t *read_through, char **behind,
                                   struct ob_error *err)
{
    struct ob_lease_list l = { 0 };
    *read_through = INT64_MAX;
    *behind = NULL;
    enum ob_err rc = ob_leases_list(s, table, stream_arn, &l, err);
    if (rc)
        return rc;
    const struct ob_lease *least = NULL;
    for (size_t i = 0; i < l.n; i++) {
        const struct ob_lease *x = &l.v[i];
        if (x->checkpoint && strcmp(x->checkpoint, OB_CHECKPOINT_SHARD_END) == 0)
            continue;
        if (!least || x->read_through < least->read_through)
            least = x;
    }
    if (least) {
        *read_through = least->read_through;
        *behind = ob_xstrdup(least->key);
    } else if (l.n) {
        /* Every lease ended: the open shards' leases are not there yet. */
        *read_through = 0;
        *behind = ob_xstrdup("(a shard without a lease yet)");
    }
    ob_lease_list_free(&l);
    return OB_OK;
}

void ob_sweep_lease_init(struct ob_sweep_lease *l, const char *lease_table, const char *outbox_table,
                         const char *me)
{
    l->table = lease_table;
    snprintf(l->key, sizeof l->key, "sweep:%s", outbox_table);
    l->me = me;
}

enum ob_err ob_sweep_lease_take(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                int64_t now_ms, int64_t hold_ms, bool on_schedule, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o,s:o}", ":me", "S", l->me, ":now", ob_ddb_number(now_ms), ":until",
                               ob_ddb_number(now_ms + hold_ms));
    const char *free_now = "(attribute_not_exists(leaseUntil) OR leaseUntil < :now)";
    char condition[256];
    snprintf(condition, sizeof condition, "%s%s", free_now,
             on_schedule ? " AND (attribute_not_exists(nextSweepAt) OR nextSweepAt <= :now)" : "");
    return lease_update(s, l->table, l->key, "SET leaseOwner = :me, leaseUntil = :until", condition, values,
                        NULL, err);
}

enum ob_err ob_sweep_lease_renew(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                 int64_t now_ms, int64_t hold_ms, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o}", ":me", "S", l->me, ":until", ob_ddb_number(now_ms + hold_ms));
    return lease_update(s, l->table, l->key, "SET leaseUntil = :until",
                        "leaseOwner = :me AND attribute_exists(leaseUntil)", values, NULL, err);
}

enum ob_err ob_sweep_lease_finish(struct ob_ddb_session *s, const struct ob_sweep_lease *l,
                                  int64_t next_ms, struct ob_error *err)
{
    json_t *values = json_pack("{s:{s:s},s:o}", ":me", "S", l->me, ":next", ob_ddb_number(next_ms));
    return lease_update(s, l->table, l->key, "SET nextSweepAt = :next REMOVE leaseUntil", "leaseOwner = :me",
                        values, NULL, err);
}
