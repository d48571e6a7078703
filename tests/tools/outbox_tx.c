/* Test tool: the producer API from a JSON description on stdin.
 *   outbox_tx ENDPOINT TABLE < {"message": {...}, "items": [{"kind": "put", "json": {...}}]}
 * message keys: id, partition_key, type, aggregate_id, aggregate_type,
 * correlation_id, causation_id, payload, headers {k: v}. Without "items"
 * it calls ob_outbox_add, else ob_outbox_add_transact. Prints one JSON
 * line: {"result", "id", "msg", "reasons": [{"code", "message"}]}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outboxd/outbox.h"
#include <jansson.h>

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: outbox_tx ENDPOINT TABLE < spec.json\n");
        return 64;
    }
    json_error_t jerr;
    json_t *spec = json_loadf(stdin, 0, &jerr);
    if (!spec) {
        fprintf(stderr, "outbox_tx: bad JSON: %s\n", jerr.text);
        return 65;
    }
    const json_t *m = json_object_get(spec, "message");
    const json_t *hdrs = json_object_get(m, "headers");
    struct ob_outbox_header headers[64];
    size_t nh = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)hdrs, k, v) if (nh < 64) headers[nh++] = (struct ob_outbox_header){ k, json_string_value(v) };
    const char *payload = str(m, "payload");
    struct ob_outbox_message msg = {
        .message_id = str(m, "id"),
        .partition_key = str(m, "partition_key"),
        .message_type = str(m, "type"),
        .aggregate_id = str(m, "aggregate_id"),
        .aggregate_type = str(m, "aggregate_type"),
        .correlation_id = str(m, "correlation_id"),
        .causation_id = str(m, "causation_id"),
        .payload = payload,
        .payload_len = payload ? strlen(payload) : 0,
        .headers = headers,
        .n_headers = nh,
    };
    const json_t *items = json_object_get(spec, "items");
    size_t n = json_array_size(items);
    struct ob_outbox_tx_item *tx = calloc(n + 1, sizeof *tx);
    char **bodies = calloc(n + 1, sizeof *bodies);
    struct ob_outbox_tx_reason *reasons = calloc(n + 1, sizeof *reasons);
    static const char *const kinds[] = { "put", "update", "delete", "condition_check" };
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_array_get(items, i);
        for (int kind = 0; kind < 4; kind++)
            if (strcmp(str(it, "kind") ? str(it, "kind") : "", kinds[kind]) == 0)
                tx[i].kind = (enum ob_outbox_tx_kind)kind;
        bodies[i] = json_dumps(json_object_get(it, "json"), JSON_COMPACT);
        tx[i].json = bodies[i];
    }

    struct ob_outbox_options opt = { .table = argv[2], .region = "us-east-1", .endpoint = argv[1] };
    struct ob_outbox *ob = NULL;
    struct ob_error err = { 0 };
    char id[OB_OUTBOX_ID_MAX] = "";
    enum ob_err rc = ob_outbox_open(&opt, &ob, &err);
    if (rc == OB_OK)
        rc = items ? ob_outbox_add_transact(ob, &msg, tx, n, id, reasons, &err) : ob_outbox_add(ob, &msg, id, &err);
    json_t *out = json_pack("{s:s,s:s,s:s}", "result", ob_err_name(rc), "id", id, "msg", rc ? err.msg : "");
    json_t *rs = json_array();
    for (size_t i = 0; items && rc == OB_ERR_TRANSACTION_CANCELED && i <= n; i++)
        json_array_append_new(rs, json_pack("{s:s,s:s}", "code", reasons[i].code, "message", reasons[i].message));
    json_object_set_new(out, "reasons", rs);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    for (size_t i = 0; i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(tx);
    free(reasons);
    ob_outbox_close(ob);
    json_decref(spec);
    return rc == OB_OK ? 0 : 1;
}
