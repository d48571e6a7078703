/* The catalogue of sinks and the wrappers the relay calls. */
#include "sinks/sink.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

extern const struct ob_sink_ops ob_stdout_sink_ops;
extern const struct ob_sink_ops ob_file_sink_ops;
extern const struct ob_sink_ops ob_http_sink_ops;
extern const struct ob_sink_ops ob_kafka_sink_ops;
extern const struct ob_sink_ops ob_sqs_sink_ops;
extern const struct ob_sink_ops ob_sns_sink_ops;
extern const struct ob_sink_ops ob_eventbridge_sink_ops;
extern const struct ob_sink_ops ob_kinesis_sink_ops;

/* Every sink this build has: a new sink is a line here (and its extern). Messages and
 * docs list them in this order, and the generated example config shows
 * the first live. */
static const struct ob_sink_schema *const sink_types[] = {
    &ob_http_sink_ops.schema,
    &ob_file_sink_ops.schema,
    &ob_stdout_sink_ops.schema,
    &ob_kafka_sink_ops.schema,
    &ob_sqs_sink_ops.schema,
    &ob_sns_sink_ops.schema,
    &ob_eventbridge_sink_ops.schema,
    &ob_kinesis_sink_ops.schema,
};

const struct ob_sink_catalogue ob_sinks = {.types = sink_types, .n = sizeof sink_types / sizeof sink_types[0]};

/* The ops of a type of the catalogue, whose first member its schema is;
 * NULL for a config loaded with another catalogue. */
static const struct ob_sink_ops *ops_find(const char *type)
{
    const struct ob_sink_schema *schema = ob_sink_catalogue_find(&ob_sinks, type);
    return schema ? (const struct ob_sink_ops *)(const void *)schema : NULL;
}

enum ob_err ob_sink_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, struct ob_sink **out,
                           struct ob_error *err)
{
    *out = NULL;
    const struct ob_sink_ops *ops = ops_find(cfg->type);
    if (!ops)
        return ob_error_set(err, OB_ERR_CONFIG, "sink '%s': type '%s' is not available in this build", cfg->name,
                            cfg->type);
    void *state = NULL;
    enum ob_err rc = ops->create(cfg, ctx, &state, err);
    if (rc) {
        ob_error_prefix(err, "sink '%s'", cfg->name);
        return rc;
    }
    struct ob_sink *s = ob_xcalloc(1, sizeof *s);
    s->ops = ops;
    s->state = state;
    s->name = ob_xstrdup(cfg->name);
    *out = s;
    return OB_OK;
}

void ob_sink_publish(struct ob_sink *s, struct ob_delivery *batch, size_t n)
{
    /* Sinks only write results that differ from a clean ACK. */
    for (size_t i = 0; i < n; i++) {
        batch[i].result = OB_DELIVERY_ACK;
        batch[i].unreachable = false;
        batch[i].destination_unreachable = false;
        batch[i].too_large = false;
        batch[i].error[0] = '\0';
    }
    if (n > 0)
        s->ops->publish(s->state, batch, n);
}

enum ob_err ob_sink_flush(struct ob_sink *s, struct ob_error *err)
{
    if (!s->ops->flush)
        return OB_OK;
    enum ob_err rc = s->ops->flush(s->state, err);
    if (rc)
        ob_error_prefix(err, "sink '%s'", s->name);
    return rc;
}

void ob_sink_reopen(struct ob_sink *s)
{
    if (s->ops->reopen)
        s->ops->reopen(s->state);
}

void ob_sink_destroy(struct ob_sink *s)
{
    if (!s)
        return;
    s->ops->destroy(s->state);
    free(s->name);
    free(s);
}
