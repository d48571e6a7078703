#include "dynamo/table.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

struct key_def {
    const char *name;
    const char *key_type;  /* HASH | RANGE */
    const char *attr_type; /* S */
};

struct table_shape {
    const struct key_def *keys;
    size_t n_keys;
    bool stream;       /* NEW_AND_OLD_IMAGES required */
    const char *ttl;   /* TTL attribute required, or NULL */
};

static const struct key_def outbox_keys[] = { { "pk", "HASH", "S" }, { "sk", "RANGE", "S" } };
static const struct key_def lease_keys[] = { { "leaseKey", "HASH", "S" } };

static const struct table_shape outbox_shape = { outbox_keys, 2, true, "ttl" };
static const struct table_shape lease_shape = { lease_keys, 1, false, NULL };

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static json_t *create_request(const struct ob_table_spec *spec, const struct table_shape *shape)
{
    json_t *defs = json_array(), *schema = json_array();
    for (size_t i = 0; i < shape->n_keys; i++) {
        json_array_append_new(defs, json_pack("{s:s,s:s}", "AttributeName", shape->keys[i].name,
                                              "AttributeType", shape->keys[i].attr_type));
        json_array_append_new(schema, json_pack("{s:s,s:s}", "AttributeName", shape->keys[i].name, "KeyType",
                                                shape->keys[i].key_type));
    }
    json_t *req = json_pack("{s:s,s:o,s:o,s:s}", "TableName", spec->name, "AttributeDefinitions", defs,
                            "KeySchema", schema, "BillingMode",
                            spec->provisioned ? "PROVISIONED" : "PAY_PER_REQUEST");
    if (spec->provisioned)
        json_object_set_new(req, "ProvisionedThroughput",
                            json_pack("{s:I,s:I}", "ReadCapacityUnits", (json_int_t)spec->read_capacity,
                                      "WriteCapacityUnits", (json_int_t)spec->write_capacity));
    if (shape->stream)
        json_object_set_new(req, "StreamSpecification",
                            json_pack("{s:b,s:s}", "StreamEnabled", 1, "StreamViewType", "NEW_AND_OLD_IMAGES"));
    return req;
}

static enum ob_err describe(struct ob_ddb_session *s, const char *name, json_t **table,
                            struct ob_error *err)
{
    json_t *req = json_pack("{s:s}", "TableName", name);
    json_t *resp = NULL;
    enum ob_err rc = ob_ddb_call(s, "DescribeTable", req, &resp, err);
    json_decref(req);
    if (rc == OB_OK) {
        *table = json_incref(json_object_get(resp, "Table"));
        json_decref(resp);
        if (!*table)
            rc = ob_error_set(err, OB_ERR_SERVICE, "DescribeTable %s: answer has no Table", name);
    }
    return rc;
}

static enum ob_err wait_active(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                               json_t **table, struct ob_error *err)
{
    int64_t limit = spec->wait_timeout_ms > 0 ? spec->wait_timeout_ms : 300000;
    for (int64_t waited = 0;; waited += 200) {
        enum ob_err rc = describe(s, spec->name, table, err);
        if (rc)
            return rc;
        const char *status = json_string_value(json_object_get(*table, "TableStatus"));
        if (status && strcmp(status, "ACTIVE") == 0)
            return OB_OK;
        json_decref(*table);
        *table = NULL;
        if (waited >= limit)
            return ob_error_set(err, OB_ERR_SERVICE, "table %s is still %s after %lld s", spec->name,
                                status ? status : "in an unknown state", (long long)(limit / 1000));
        sleep_ms(200);
    }
}

static const char *key_attr_type(const json_t *table, const char *name)
{
    size_t i;
    const json_t *def;
    json_array_foreach(json_object_get(table, "AttributeDefinitions"), i, def)
        if (strcmp(json_string_value(json_object_get(def, "AttributeName")) ?: "", name) == 0)
            return json_string_value(json_object_get(def, "AttributeType"));
    return NULL;
}

const char *ob_table_stream_differs(const json_t *table, char *buf, size_t len)
{
    const json_t *ss = json_object_get(table, "StreamSpecification");
    const char *view = json_string_value(json_object_get(ss, "StreamViewType"));
    if (!json_is_true(json_object_get(ss, "StreamEnabled")))
        snprintf(buf, len, "stream is not enabled, expected NEW_AND_OLD_IMAGES");
    else if (!view || strcmp(view, "NEW_AND_OLD_IMAGES") != 0)
        snprintf(buf, len, "stream view type is %.48s, expected NEW_AND_OLD_IMAGES", view ? view : "unknown");
    else
        return NULL;
    return buf;
}

/* Appends one line per difference between the table and the shape. */
static void compare_shape(const json_t *table, const struct table_shape *shape, struct ob_buf *diffs)
{
    const json_t *schema = json_object_get(table, "KeySchema");
    for (size_t k = 0; k < shape->n_keys; k++) {
        const struct key_def *want = &shape->keys[k];
        const char *have_role = NULL;
        size_t i;
        const json_t *ks;
        json_array_foreach(schema, i, ks)
            if (strcmp(json_string_value(json_object_get(ks, "KeyType")) ?: "", want->key_type) == 0) {
                const char *have = json_string_value(json_object_get(ks, "AttributeName")) ?: "";
                have_role = have;
                if (strcmp(have, want->name) != 0)
                    ob_buf_printf(diffs, "  %s key is '%s', expected '%s'\n",
                                  strcmp(want->key_type, "HASH") == 0 ? "partition (HASH)" : "sort (RANGE)",
                                  have, want->name);
                else if (strcmp(key_attr_type(table, have) ?: "", want->attr_type) != 0)
                    ob_buf_printf(diffs, "  key '%s' has type %s, expected %s\n", have,
                                  key_attr_type(table, have) ?: "?", want->attr_type);
            }
        if (!have_role)
            ob_buf_printf(diffs, "  no %s key, expected '%s' (%s)\n",
                          strcmp(want->key_type, "HASH") == 0 ? "partition (HASH)" : "sort (RANGE)", want->name,
                          want->attr_type);
    }
    if (json_array_size(schema) > shape->n_keys)
        ob_buf_printf(diffs, "  has a sort (RANGE) key, expected none\n");
    char stream[128];
    if (shape->stream && ob_table_stream_differs(table, stream, sizeof stream))
        ob_buf_printf(diffs, "  %s\n", stream);
}

static enum ob_err ttl_state(struct ob_ddb_session *s, const char *name, char *status,
                             size_t status_len, char *attr, size_t attr_len, struct ob_error *err)
{
    json_t *req = json_pack("{s:s}", "TableName", name), *resp = NULL;
    enum ob_err rc = ob_ddb_call(s, "DescribeTimeToLive", req, &resp, err);
    json_decref(req);
    if (rc)
        return rc;
    const json_t *desc = json_object_get(resp, "TimeToLiveDescription");
    snprintf(status, status_len, "%s", json_string_value(json_object_get(desc, "TimeToLiveStatus")) ?: "DISABLED");
    snprintf(attr, attr_len, "%s", json_string_value(json_object_get(desc, "AttributeName")) ?: "");
    json_decref(resp);
    return OB_OK;
}

static enum ob_err enable_ttl(struct ob_ddb_session *s, const char *name, const char *attr,
                              struct ob_error *err)
{
    json_t *req = json_pack("{s:s,s:{s:b,s:s}}", "TableName", name, "TimeToLiveSpecification", "Enabled", 1,
                            "AttributeName", attr);
    json_t *resp = NULL;
    enum ob_err rc = ob_ddb_call(s, "UpdateTimeToLive", req, &resp, err);
    json_decref(req);
    json_decref(resp);
    return rc;
}

static enum ob_err ensure(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                          const struct table_shape *shape, enum ob_table_outcome *outcome, struct ob_error *err)
{
    json_t *table = NULL, *req = NULL, *resp = NULL;
    struct ob_buf diffs = { 0 };
    enum ob_err rc = describe(s, spec->name, &table, err);
    *outcome = OB_TABLE_EXISTED;
    if (rc == OB_ERR_NOT_FOUND) {
        req = create_request(spec, shape);
        rc = ob_ddb_call(s, "CreateTable", req, &resp, err);
        if (rc == OB_ERR_RESOURCE_IN_USE) /* another instance created it meanwhile */
            rc = OB_OK;
        else if (rc == OB_OK)
            *outcome = OB_TABLE_CREATED;
        if (rc)
            goto out;
    } else if (rc) {
        goto out;
    }
    json_decref(table);
    table = NULL;
    rc = wait_active(s, spec, &table, err);
    if (rc)
        goto out;
    compare_shape(table, shape, &diffs);
    if (shape->ttl) {
        char status[32], attr[256];
        rc = ttl_state(s, spec->name, status, sizeof status, attr, sizeof attr, err);
        if (rc)
            goto out;
        bool on = strcmp(status, "ENABLED") == 0 || strcmp(status, "ENABLING") == 0;
        if (*outcome == OB_TABLE_CREATED && !on) {
            rc = enable_ttl(s, spec->name, shape->ttl, err);
            if (rc)
                goto out;
        } else if (!on) {
            ob_buf_printf(&diffs, "  time to live is %s, expected ENABLED on attribute '%s'\n", status, shape->ttl);
        } else if (strcmp(attr, shape->ttl) != 0) {
            ob_buf_printf(&diffs, "  time to live is on attribute '%s', expected '%s'\n", attr, shape->ttl);
        }
    }
    if (diffs.len) {
        diffs.data[--diffs.len] = '\0'; /* no trailing newline */
        rc = ob_error_set(err, OB_ERR_MISMATCH, "table %s exists but does not match:\n%s", spec->name, diffs.data);
    }
out:
    json_decref(table);
    json_decref(req);
    json_decref(resp);
    ob_buf_free(&diffs);
    return rc;
}

enum ob_err ob_table_ensure_outbox(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                                   enum ob_table_outcome *outcome, struct ob_error *err)
{
    return ensure(s, spec, &outbox_shape, outcome, err);
}

enum ob_err ob_table_ensure_leases(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                                   enum ob_table_outcome *outcome, struct ob_error *err)
{
    return ensure(s, spec, &lease_shape, outcome, err);
}
