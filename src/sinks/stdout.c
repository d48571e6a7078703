/* stdout sink: structured CloudEvents, one JSON object a line. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinks/common.h"
#include "sinks/sink.h"

struct stdout_sink {
    pthread_mutex_t mu;  /* one write per batch at a time: lines never interleave */
};

static enum ob_err stdout_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                                 struct ob_error *err)
{
    (void)cfg;
    (void)ctx;
    (void)err;
    struct stdout_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    *state = s;
    return OB_OK;
}

static void stdout_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct stdout_sink *s = state;
    struct ob_buf lines = {0};
    for (size_t i = 0; i < n; i++)
        ob_delivery_json_line(&lines, &batch[i]);
    pthread_mutex_lock(&s->mu);
    int e = ob_write_all(STDOUT_FILENO, lines.data, lines.len);
    pthread_mutex_unlock(&s->mu);
    /* A short write leaves a torn line; every message of the batch is
     * retried, which at-least-once allows. */
    for (size_t i = 0; e && i < n; i++)
        ob_delivery_set(&batch[i], OB_DELIVERY_RETRY, "write stdout: %s", strerror(e));
    ob_buf_free(&lines);
}

static void stdout_destroy(void *state)
{
    struct stdout_sink *s = state;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const struct ob_sink_ops ob_stdout_sink_ops = {
    .schema = {.type = "stdout", .doc = "Structured CloudEvents on standard output, one JSON object a line."},
    .create = stdout_create,
    .publish = stdout_publish,
    .destroy = stdout_destroy,
};
