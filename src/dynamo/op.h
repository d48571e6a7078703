/* The call of a dynamo operation that runs on a session while its caller
 * works on (a records read, a checkpoint write): started with the
 * operation as its owner, moved by the session's polls, taken back once
 * done or abandoned. */
#ifndef OB_DYNAMO_OP_H
#define OB_DYNAMO_OP_H

#include <stdbool.h>

#include "dynamo/ddb.h"

struct ob_ddb_op {
    struct ob_ddb_session *s; /* borrowed */
    struct ob_aws_call call;  /* prepared by the operation before ob_ddb_op_start */
    bool done;
};

/* Starts op->call on s and sends it at once. */
void ob_ddb_op_start(struct ob_ddb_op *op, struct ob_ddb_session *s);
/* Whether the call is done (its outcome in op->call). */
bool ob_ddb_op_done(struct ob_ddb_op *op);
/* Takes the call back, finished or not, and releases it. */
void ob_ddb_op_abandon(struct ob_ddb_op *op);

#endif
