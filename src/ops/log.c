#include "ops/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <time.h>

#include "core/buf.h"
#include "core/codec.h"

static atomic_int log_level = OB_SEV_INFO;
static atomic_int log_json;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const sev_names[] = { "error", "warn", "info", "debug" };

void ob_log_setup(enum ob_log_severity level, int json)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_json, json);
}

void ob_log_set_stream(FILE *f)
{
    pthread_mutex_lock(&log_lock);
    log_stream = f;
    pthread_mutex_unlock(&log_lock);
}

int ob_log_enabled(enum ob_log_severity sev)
{
    return (int)sev <= atomic_load(&log_level);
}

static void json_escape(struct ob_buf *b, const char *s)
{
    ob_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': ob_buf_puts(b, "\\\""); break;
        case '\\': ob_buf_puts(b, "\\\\"); break;
        case '\n': ob_buf_puts(b, "\\n"); break;
        case '\r': ob_buf_puts(b, "\\r"); break;
        case '\t': ob_buf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                ob_buf_printf(b, "\\u%04x", *p);
            else
                ob_buf_putc(b, (char)*p);
        }
    }
    ob_buf_putc(b, '"');
}

void ob_log_at(enum ob_log_severity sev, const char *shard, const char *message_id, const char *fmt, ...)
{
    if (!ob_log_enabled(sev))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char when[OB_ISO8601_LEN];
    ob_iso8601_ms((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, when);

    struct ob_buf msg = { 0 }, line = { 0 };
    va_list ap;
    va_start(ap, fmt);
    ob_buf_vprintf(&msg, fmt, ap);
    va_end(ap);

    if (atomic_load(&log_json)) {
        ob_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", when, sev_names[sev]);
        if (shard) {
            ob_buf_puts(&line, ",\"shard\":");
            json_escape(&line, shard);
        }
        if (message_id) {
            ob_buf_puts(&line, ",\"message_id\":");
            json_escape(&line, message_id);
        }
        ob_buf_puts(&line, ",\"msg\":");
        json_escape(&line, ob_buf_cstr(&msg));
        ob_buf_puts(&line, "}\n");
    } else {
        ob_buf_printf(&line, "%s %-5s ", when, sev_names[sev]);
        if (shard)
            ob_buf_printf(&line, "shard=%s ", shard);
        if (message_id)
            ob_buf_printf(&line, "id=%s ", message_id);
        ob_buf_printf(&line, "%s\n", ob_buf_cstr(&msg));
    }
    pthread_mutex_lock(&log_lock);
    FILE *f = log_stream ? log_stream : stderr;
    fwrite(line.data, 1, line.len, f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
    ob_buf_free(&msg);
    ob_buf_free(&line);
}
