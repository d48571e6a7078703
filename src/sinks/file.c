/* file sink: structured CloudEvents appended to a file, one JSON object a
 * line, with the fsync policy of the `fsync` option. SIGHUP reopens the
 * path so that log rotation (rename, then reopen) works. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/log.h"
#include "sinks/common.h"
#include "sinks/sink.h"

enum fsync_mode { FSYNC_ALWAYS, FSYNC_BATCH, FSYNC_NEVER };

struct file_sink {
    pthread_mutex_t mu;  /* guards fd; one batch writes at a time */
    int fd;              /* -1 after a failed reopen: the next publish tries again */
    char *path;
    enum fsync_mode mode;
};

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static enum ob_err file_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                               struct ob_error *err)
{
    (void)ctx;
    const char *path = ob_sink_opt_str(cfg, "path");
    const char *mode = ob_sink_opt_str(cfg, "fsync");
    if (!path || !*path)
        return ob_error_set(err, OB_ERR_CONFIG, "no path");
    enum fsync_mode m = FSYNC_BATCH;
    if (mode && strcmp(mode, "always") == 0)
        m = FSYNC_ALWAYS;
    else if (mode && strcmp(mode, "never") == 0)
        m = FSYNC_NEVER;
    /* Unlike a broker, a file that cannot be opened now is a setting to fix. */
    int fd = open_append(path);
    if (fd < 0)
        return ob_error_set(err, OB_ERR_IO, "open %s: %s", path, strerror(errno));
    struct file_sink *s = ob_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = fd;
    s->path = ob_xstrdup(path);
    s->mode = m;
    *state = s;
    return OB_OK;
}

/* Writes the batch's lines (message i ends at ends[i]) with the fsync
 * policy; on failure, marks the messages not known durable RETRY. Called
 * with s->mu held. */
static void write_batch(struct file_sink *s, struct ob_delivery *batch, size_t n, const struct ob_buf *lines,
                        const size_t *ends)
{
    const char *what = "write";
    size_t failed_from = 0;
    int e = 0;
    if (s->fd < 0 && (s->fd = open_append(s->path)) < 0) {
        e = errno;
        what = "open";
    } else if (s->mode == FSYNC_ALWAYS) {
        size_t start = 0;
        for (size_t i = 0; i < n; i++) {
            failed_from = i;
            e = ob_write_all(s->fd, lines->data + start, ends[i] - start);
            if (!e && (e = ob_fsync_if_supported(s->fd)))
                what = "fsync";
            if (e)
                break;
            start = ends[i];
        }
    } else {
        e = ob_write_all(s->fd, lines->data, lines->len);
        if (!e && s->mode == FSYNC_BATCH && (e = ob_fsync_if_supported(s->fd)))
            what = "fsync";
    }
    for (size_t i = failed_from; e && i < n; i++)
        ob_delivery_set(&batch[i], OB_DELIVERY_RETRY, "%s %s: %s", what, s->path, strerror(e));
}

static void file_publish(void *state, struct ob_delivery *batch, size_t n)
{
    struct file_sink *s = state;
    struct ob_buf lines = {0};
    size_t *ends = ob_xcalloc(n, sizeof *ends);
    for (size_t i = 0; i < n; i++) {
        ob_delivery_json_line(&lines, &batch[i]);
        ends[i] = lines.len;
    }
    pthread_mutex_lock(&s->mu);
    write_batch(s, batch, n, &lines, ends);
    pthread_mutex_unlock(&s->mu);
    free(ends);
    ob_buf_free(&lines);
}

static enum ob_err file_flush(void *state, struct ob_error *err)
{
    struct file_sink *s = state;
    enum ob_err rc = OB_OK;
    pthread_mutex_lock(&s->mu);
    int e = s->fd >= 0 ? ob_fsync_if_supported(s->fd) : 0;
    if (e)
        rc = ob_error_set(err, OB_ERR_IO, "fsync %s: %s", s->path, strerror(e));
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void file_reopen(void *state)
{
    struct file_sink *s = state;
    pthread_mutex_lock(&s->mu);
    if (s->fd >= 0) {
        /* What was acknowledged under `fsync: never` reaches the disk
         * before the rotated file is handed over. */
        ob_fsync_if_supported(s->fd);
        close(s->fd);
    }
    s->fd = open_append(s->path);
    if (s->fd < 0)
        ob_log_warn("file sink: reopen %s: %s (retried on the next publish)", s->path, strerror(errno));
    pthread_mutex_unlock(&s->mu);
}

static void file_destroy(void *state)
{
    struct file_sink *s = state;
    if (s->fd >= 0)
        close(s->fd);
    pthread_mutex_destroy(&s->mu);
    free(s->path);
    free(s);
}

static const char *const fsync_modes[] = {"always", "batch", "never", NULL};

static const struct ob_config_key file_keys[] = {
    {.path = "path", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, .example = "/var/lib/outboxd/events.jsonl",
     .doc = "File the structured CloudEvents are appended to, one JSON object a line."},
    {.path = "fsync", .type = OB_CT_ENUM, .def = "batch", .values = fsync_modes,
     .doc = "fsync after every message, after every batch, or never (a message is acknowledged after it)."},
};

const struct ob_sink_ops ob_file_sink_ops = {
    .schema = {.type = "file", .doc = "Structured CloudEvents appended to a file, one JSON object a line.",
               .keys = file_keys, .n_keys = sizeof file_keys / sizeof file_keys[0]},
    .create = file_create,
    .publish = file_publish,
    .flush = file_flush,
    .reopen = file_reopen,
    .destroy = file_destroy,
};
