/* outboxd producer API: write outbox items in the schema outboxd relays
 * (SPEC §2, shared with Excalibur.Outbox.DynamoDb), alone or in one
 * TransactWriteItems call with your own business writes.
 *
 *   struct ob_outbox_options o = { .table = "outbox", .region = "eu-west-1" };
 *   struct ob_outbox *ob;  struct ob_error err;
 *   if (ob_outbox_open(&o, &ob, &err)) { fprintf(stderr, "%s\n", err.msg); ... }
 *   struct ob_outbox_message m = { .message_type = "OrderPlaced",
 *                                  .aggregate_id = "order-42", .payload = json, .payload_len = n };
 *   char id[OB_OUTBOX_ID_MAX];
 *   ob_outbox_add(ob, &m, id, &err);
 *   ob_outbox_close(ob);
 *
 * A handle is thread-safe: threads share its connections. Link with
 * liboutboxd.a and -ljansson -lyaml -lssl -lcrypto -lsystemd -lpthread -lm. */
#ifndef OUTBOXD_OUTBOX_H
#define OUTBOXD_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "outboxd/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ob_outbox_options {
    const char *table;             /* required */
    const char *region;            /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the profile's region */
    const char *endpoint;          /* NULL: the region's DynamoDB endpoint */
    const char *access_key_id;     /* NULL: environment, then shared files (profile) */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
    int max_attempts;              /* 0: 8 */
    int64_t request_timeout_ms;    /* 0: 10 s */
};

struct ob_outbox;

struct ob_outbox_header {
    const char *name;
    const char *value;
};

struct ob_outbox_message {
    const char *message_id;     /* sk; NULL: a new time-ordered UUIDv7 */
    const char *partition_key;  /* pk; NULL: aggregate_id when set, else the message id */
    const char *message_type;
    const char *aggregate_id;
    const char *aggregate_type;
    const char *correlation_id;
    const char *causation_id;
    const void *payload;        /* bytes, stored base64 */
    size_t payload_len;
    const struct ob_outbox_header *headers; /* stored as one JSON object of strings */
    size_t n_headers;
};

#define OB_OUTBOX_ID_MAX 256

/* Opens a producer handle; the caller owns *out (ob_outbox_close). */
enum ob_err ob_outbox_open(const struct ob_outbox_options *opt, struct ob_outbox **out, struct ob_error *err);
void ob_outbox_close(struct ob_outbox *ob);

/* Writes one outbox item. A message id that already exists is refused
 * (OB_ERR_CONDITION_FAILED), never overwritten. id receives the message id. */
enum ob_err ob_outbox_add(struct ob_outbox *ob, const struct ob_outbox_message *msg, char id[OB_OUTBOX_ID_MAX],
                          struct ob_error *err);

enum ob_outbox_tx_kind { OB_TX_PUT, OB_TX_UPDATE, OB_TX_DELETE, OB_TX_CONDITION_CHECK };

/* One of your writes in the transaction: `json` is the body of the
 * TransactWriteItems element in DynamoDB JSON, e.g. for OB_TX_PUT
 * {"TableName":"orders","Item":{"id":{"S":"42"}},"ConditionExpression":"attribute_not_exists(id)"}. */
struct ob_outbox_tx_item {
    enum ob_outbox_tx_kind kind;
    const char *json;
};

/* Why a transaction was canceled, one per item: code is "None" for items
 * that were fine, else e.g. "ConditionalCheckFailed". */
struct ob_outbox_tx_reason {
    char code[64];
    char message[256];
};

/* Writes your items and the outbox item in one TransactWriteItems call: all
 * or nothing. When DynamoDB cancels it, returns OB_ERR_TRANSACTION_CANCELED
 * with err->msg naming the failing items, and fills reasons (when not NULL;
 * n_items + 1 entries: yours in order, then the outbox item). At most 99
 * items of yours. */
enum ob_err ob_outbox_add_transact(struct ob_outbox *ob, const struct ob_outbox_message *msg,
                                   const struct ob_outbox_tx_item *items, size_t n_items,
                                   char id[OB_OUTBOX_ID_MAX], struct ob_outbox_tx_reason *reasons,
                                   struct ob_error *err);

#ifdef __cplusplus
}
#endif
#endif
