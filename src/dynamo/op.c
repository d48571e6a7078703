#include "dynamo/op.h"

void ob_ddb_op_start(struct ob_ddb_op *op, struct ob_ddb_session *s)
{
    op->s = s;
    op->done = false;
    op->call.owner = op;
    ob_aws_start(s->aws, &op->call);
    ob_aws_send(s->aws); /* it goes out now */
}

bool ob_ddb_op_done(struct ob_ddb_op *op)
{
    if (!op->done)
        op->done = ob_aws_next_done(op->s->aws, op) != NULL;
    return op->done;
}

void ob_ddb_op_abandon(struct ob_ddb_op *op)
{
    ob_aws_abandon(op->s->aws, &op->call);
    ob_aws_call_release(&op->call);
}
