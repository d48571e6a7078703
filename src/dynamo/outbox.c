/* The producer API of include/outboxd/outbox.h. */
#include "outboxd/outbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/buf.h"
#include "core/codec.h"
#include "dynamo/ddb.h"
#include "ops/clock.h"

#define TX_MAX_ITEMS 100

struct ob_outbox {
    char *table;
    struct ob_cred_context aws;
    struct ob_ddb *ddb;
    pthread_mutex_t lock;        /* guards the idle sessions */
    struct ob_ddb_session **idle;
    size_t n_idle, cap_idle;
};

enum ob_err ob_outbox_open(const struct ob_outbox_options *opt, struct ob_outbox **out, struct ob_error *err)
{
    *out = NULL;
    if (!opt->table || !*opt->table)
        return ob_error_set(err, OB_ERR_INVALID, "outbox: no table name");
    const struct ob_credentials_options co = {
        .access_key_id = opt->access_key_id,
        .secret_access_key = opt->secret_access_key,
        .session_token = opt->session_token,
        .profile = opt->profile,
    };
    /* The handle may live as long as the application: its credentials are
     * refreshed like the daemon's. */
    struct ob_cred_context aws;
    enum ob_err rc = ob_cred_context_open(opt->region, &co, true, &aws, err);
    if (rc)
        return rc;
    struct ob_ddb_options dopt = {
        .region = aws.region,
        .credentials = aws.credentials,
        .endpoint = opt->endpoint,
        .max_attempts = opt->max_attempts,
        .request_timeout_ms = opt->request_timeout_ms,
    };
    struct ob_ddb *ddb;
    rc = ob_ddb_open(&dopt, &ddb, err);
    if (rc) {
        ob_cred_context_close(&aws);
        return rc;
    }
    struct ob_outbox *ob = ob_xcalloc(1, sizeof *ob);
    ob->table = ob_xstrdup(opt->table);
    ob->aws = aws;
    ob->ddb = ddb;
    pthread_mutex_init(&ob->lock, NULL);
    *out = ob;
    return OB_OK;
}

void ob_outbox_close(struct ob_outbox *ob)
{
    if (!ob)
        return;
    for (size_t i = 0; i < ob->n_idle; i++)
        ob_ddb_session_destroy(ob->idle[i]);
    free(ob->idle);
    pthread_mutex_destroy(&ob->lock);
    ob_ddb_close(ob->ddb);
    ob_cred_context_close(&ob->aws);
    free(ob->table);
    free(ob);
}

static struct ob_ddb_session *session_take(struct ob_outbox *ob)
{
    struct ob_ddb_session *s = NULL;
    pthread_mutex_lock(&ob->lock);
    if (ob->n_idle)
        s = ob->idle[--ob->n_idle];
    pthread_mutex_unlock(&ob->lock);
    return s ? s : ob_ddb_session_create(ob->ddb);
}

static void session_give_back(struct ob_outbox *ob, struct ob_ddb_session *s)
{
    pthread_mutex_lock(&ob->lock);
    if (ob->n_idle == ob->cap_idle) {
        ob->cap_idle = ob->cap_idle ? ob->cap_idle * 2 : 4;
        ob->idle = ob_xrealloc(ob->idle, ob->cap_idle * sizeof *ob->idle);
    }
    ob->idle[ob->n_idle++] = s;
    pthread_mutex_unlock(&ob->lock);
}

static void new_message_id(char id[OB_OUTBOX_ID_MAX])
{
    uint8_t rnd[10];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    char uuid[OB_UUID_STR_LEN];
    ob_uuid7_format(ob_wall_ms(), rnd, uuid);
    snprintf(id, OB_OUTBOX_ID_MAX, "%s", uuid);
}

static void put_s(json_t *item, const char *name, const char *value)
{
    if (value)
        json_object_set_new(item, name, json_pack("{s:s}", "S", value));
}

/* Builds the DynamoDB item of SPEC §2 (new reference) and the chosen id. */
static enum ob_err build_item(const struct ob_outbox_message *msg, char id[OB_OUTBOX_ID_MAX], json_t **item_out,
                              struct ob_error *err)
{
    if (msg->message_id) {
        if (!*msg->message_id || strlen(msg->message_id) >= OB_OUTBOX_ID_MAX)
            return ob_error_set(err, OB_ERR_INVALID, "message id must be 1 to %d characters",
                                OB_OUTBOX_ID_MAX - 1);
        snprintf(id, OB_OUTBOX_ID_MAX, "%s", msg->message_id);
    } else {
        new_message_id(id);
    }
    const char *pk = msg->partition_key ? msg->partition_key : msg->aggregate_id ? msg->aggregate_id : id;
    if (!*pk)
        return ob_error_set(err, OB_ERR_INVALID, "partition key must not be empty");

    json_t *headers = json_object();
    for (size_t i = 0; i < msg->n_headers; i++) {
        const struct ob_outbox_header *h = &msg->headers[i];
        if (!h->name || !*h->name || !h->value) {
            json_decref(headers);
            return ob_error_set(err, OB_ERR_INVALID, "header %zu needs a name and a value", i + 1);
        }
        json_t *v = json_string(h->value);
        if (!v || json_object_set_new(headers, h->name, v) != 0) {
            json_decref(headers);
            return ob_error_set(err, OB_ERR_INVALID, "header '%s' is not valid UTF-8", h->name);
        }
    }
    char *headers_json = json_dumps(headers, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(headers);

    struct ob_buf b64 = { 0 };
    ob_base64_encode(&b64, msg->payload, msg->payload_len);
    char created[OB_ISO8601_LEN];
    ob_iso8601_ms(ob_wall_ms(), created);

    json_t *item = json_object();
    put_s(item, "pk", pk);
    put_s(item, "sk", id);
    put_s(item, "messageType", msg->message_type);
    put_s(item, "payload", ob_buf_cstr(&b64));
    put_s(item, "headers", headers_json);
    put_s(item, "aggregateId", msg->aggregate_id);
    put_s(item, "aggregateType", msg->aggregate_type);
    put_s(item, "correlationId", msg->correlation_id);
    put_s(item, "causationId", msg->causation_id);
    put_s(item, "createdAt", created);
    json_object_set_new(item, "isPublished", json_pack("{s:b}", "BOOL", 0));
    json_object_set_new(item, "retryCount", json_pack("{s:s}", "N", "0"));
    free(headers_json);
    ob_buf_free(&b64);
    if (json_object_size(item) == 0 || !json_object_get(item, "pk") || !json_object_get(item, "sk")) {
        json_decref(item);
        return ob_error_set(err, OB_ERR_INVALID, "message fields must be valid UTF-8");
    }
    *item_out = item;
    return OB_OK;
}

/* The outbox item is only ever created, never overwritten. */
static json_t *outbox_put(const struct ob_outbox *ob, json_t *item)
{
    return json_pack("{s:s,s:o,s:s}", "TableName", ob->table, "Item", item, "ConditionExpression",
                     "attribute_not_exists(sk)");
}

enum ob_err ob_outbox_add(struct ob_outbox *ob, const struct ob_outbox_message *msg, char id[OB_OUTBOX_ID_MAX],
                          struct ob_error *err)
{
    json_t *item;
    enum ob_err rc = build_item(msg, id, &item, err);
    if (rc)
        return rc;
    json_t *req = outbox_put(ob, item);
    struct ob_ddb_session *s = session_take(ob);
    rc = ob_ddb_call(s, "PutItem", req, NULL, err);
    session_give_back(ob, s);
    json_decref(req);
    if (rc == OB_ERR_CONDITION_FAILED)
        ob_error_set(err, rc, "message id %s already exists in table %s", id, ob->table);
    return rc;
}

static const char *const tx_keys[] = {
    [OB_TX_PUT] = "Put",
    [OB_TX_UPDATE] = "Update",
    [OB_TX_DELETE] = "Delete",
    [OB_TX_CONDITION_CHECK] = "ConditionCheck",
};

/* Fills reasons from CancellationReasons and names the failing items in err. */
static void read_cancellation(const json_t *resp, size_t n_items, struct ob_outbox_tx_reason *reasons,
                              struct ob_error *err)
{
    const json_t *list = json_object_get(resp, "CancellationReasons");
    struct ob_buf what = { 0 };
    for (size_t i = 0; i <= n_items; i++) {
        const json_t *r = json_array_get(list, i);
        const char *code = json_string_value(json_object_get(r, "Code"));
        const char *message = json_string_value(json_object_get(r, "Message"));
        if (reasons) {
            snprintf(reasons[i].code, sizeof reasons[i].code, "%s", code ? code : "None");
            snprintf(reasons[i].message, sizeof reasons[i].message, "%s", message ? message : "");
        }
        if (code && strcmp(code, "None") != 0) {
            if (i < n_items)
                ob_buf_printf(&what, "%sitem %zu: %s", what.len ? "; " : "", i + 1, code);
            else
                ob_buf_printf(&what, "%soutbox item: %s", what.len ? "; " : "", code);
            if (message && *message)
                ob_buf_printf(&what, " (%s)", message);
        }
    }
    ob_error_set(err, OB_ERR_TRANSACTION_CANCELED, "transaction canceled, nothing written: %s",
                 what.len ? what.data : "no reason given");
    ob_buf_free(&what);
}

enum ob_err ob_outbox_add_transact(struct ob_outbox *ob, const struct ob_outbox_message *msg,
                                   const struct ob_outbox_tx_item *items, size_t n_items,
                                   char id[OB_OUTBOX_ID_MAX], struct ob_outbox_tx_reason *reasons,
                                   struct ob_error *err)
{
    json_t *req = NULL, *resp = NULL, *item = NULL;
    enum ob_err rc;
    if (n_items >= TX_MAX_ITEMS)
        return ob_error_set(err, OB_ERR_INVALID, "a transaction holds at most %d items besides the outbox item",
                            TX_MAX_ITEMS - 1);
    json_t *list = json_array();
    for (size_t i = 0; i < n_items; i++) {
        json_error_t jerr;
        if ((unsigned)items[i].kind > OB_TX_CONDITION_CHECK) {
            rc = ob_error_set(err, OB_ERR_INVALID, "item %zu: unknown kind %d", i + 1, (int)items[i].kind);
            goto out;
        }
        json_t *body = items[i].json ? json_loads(items[i].json, 0, &jerr) : NULL;
        if (!json_is_object(body)) {
            json_decref(body);
            rc = ob_error_set(err, OB_ERR_INVALID, "item %zu: not a JSON object: %s", i + 1,
                              items[i].json ? jerr.text : "missing");
            goto out;
        }
        json_array_append_new(list, json_pack("{s:o}", tx_keys[items[i].kind], body));
    }
    rc = build_item(msg, id, &item, err);
    if (rc)
        goto out;
    json_t *put = outbox_put(ob, item);
    json_array_append_new(list, json_pack("{s:o}", "Put", put));
    req = json_pack("{s:O}", "TransactItems", list);

    struct ob_ddb_session *s = session_take(ob);
    rc = ob_ddb_call(s, "TransactWriteItems", req, &resp, err);
    session_give_back(ob, s);
    if (rc == OB_ERR_TRANSACTION_CANCELED)
        read_cancellation(resp, n_items, reasons, err);
out:
    json_decref(list);
    json_decref(req);
    json_decref(resp);
    return rc;
}
