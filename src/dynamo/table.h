/* The outbox table (SPEC §2) and the lease table: create when missing,
 * wait until ACTIVE, enable TTL, and verify an existing table, reporting
 * every difference. */
#ifndef OB_DYNAMO_TABLE_H
#define OB_DYNAMO_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "dynamo/ddb.h"

struct ob_table_spec {
    const char *name;
    bool provisioned;       /* else PAY_PER_REQUEST */
    int64_t read_capacity;  /* when provisioned */
    int64_t write_capacity;
    int64_t wait_timeout_ms; /* for ACTIVE; 0: 5 minutes */
};

enum ob_table_outcome { OB_TABLE_EXISTED, OB_TABLE_CREATED };

/* Ensures the outbox table: keys pk (S, HASH) / sk (S, RANGE), stream
 * NEW_AND_OLD_IMAGES, TTL on `ttl`. A table that exists but differs gives
 * OB_ERR_MISMATCH with every difference in err->msg, one per line. */
enum ob_err ob_table_ensure_outbox(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                                   enum ob_table_outcome *outcome, struct ob_error *err);

/* How a table's stream (a DescribeTable Table) differs from the one the
 * relay reads, enabled with NEW_AND_OLD_IMAGES: the difference in buf,
 * or NULL when there is none. */
const char *ob_table_stream_differs(const json_t *table, char *buf, size_t len);

/* Ensures the lease table: key leaseKey (S, HASH), no stream needed. */
enum ob_err ob_table_ensure_leases(struct ob_ddb_session *s, const struct ob_table_spec *spec,
                                   enum ob_table_outcome *outcome, struct ob_error *err);

#endif
