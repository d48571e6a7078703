#include "ops/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>

#include "core/buf.h"
#include "core/codec.h"
#include "core/json_scan.h"
#include "ops/clock.h"

static atomic_int log_level = OB_SEV_INFO;
static atomic_int log_json;
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* Whether the stream is the journal's: 1 or 0, -1 until a line finds out. */
static atomic_int log_to_journal = -1;

static const char *const sev_names[] = { "error", "warn", "info", "debug" };
static const char *const sev_priorities[] = { SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG };

void ob_log_setup(enum ob_log_severity level, int json)
{
    atomic_store(&log_level, (int)level);
    atomic_store(&log_json, json);
}

void ob_log_set_stream(FILE *f)
{
    pthread_mutex_lock(&log_lock);
    log_stream = f;
    atomic_store(&log_to_journal, -1);
    pthread_mutex_unlock(&log_lock);
}

int ob_log_enabled(enum ob_log_severity sev)
{
    return (int)sev <= atomic_load(&log_level);
}

/* Parses a decimal number of digits only (strtoull would take a sign or
 * spaces) up to stop; NULL when there is none. */
static const char *parse_decimal(const char *s, char stop, unsigned long long *v)
{
    if (*s < '0' || *s > '9')
        return NULL;
    char *end;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return errno || *end != stop ? NULL : end;
}

bool ob_log_journal_names(const char *journal_stream, dev_t dev, ino_t ino)
{
    unsigned long long d, i;
    const char *p = journal_stream ? parse_decimal(journal_stream, ':', &d) : NULL;
    return p && parse_decimal(p + 1, '\0', &i) && d == (unsigned long long)dev &&
           i == (unsigned long long)ino;
}

/* Whether the lines go to the journal: the stream is on the file that
 * JOURNAL_STREAM names (sd-daemon(3)). The variable alone is not enough:
 * a process that inherited it may have had stderr sent elsewhere
 * (`outboxd check 2>file` in a unit's shell). */
static bool to_journal(void)
{
    int known = atomic_load(&log_to_journal);
    if (known >= 0)
        return known;
    pthread_mutex_lock(&log_lock);
    struct stat st;
    int fd = fileno(log_stream ? log_stream : stderr);
    known = fd >= 0 && fstat(fd, &st) == 0 &&
            ob_log_journal_names(getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
    atomic_store(&log_to_journal, known);
    pthread_mutex_unlock(&log_lock);
    return known;
}

const char *ob_log_journal_prefix(enum ob_log_severity sev)
{
    return to_journal() ? sev_priorities[sev] : "";
}

/* How many bytes the UTF-8 character at s has; 0 when s holds no whole,
 * well-formed one. */
static size_t utf8_char_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return strnlen(s, n) == n && ob_utf8_valid(s, n) ? n : 0;
}

enum escaping {
    ESC_JSON,        /* a JSON string's contents */
    ESC_TEXT_QUOTED, /* a text field in double quotes */
    ESC_TEXT,        /* the text message: nothing follows it on its line */
};

/* Appends s with whatever could end the line or leave its field escaped:
 * control characters always (\n, \r, \t, else \u00XX in JSON, \xHH in
 * text), quotes and backslashes within quotes. Bytes that are not UTF-8
 * are \xHH in text and U+FFFD in JSON, which must stay valid. */
static void put_escaped(struct ob_buf *b, const char *s, enum escaping how)
{
    const char *run = s;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            s++;
            continue;
        }
        size_t n = utf8_char_len(s);
        bool control = c < 0x20 || c == 0x7f;
        bool quote = (c == '"' || c == '\\') && how != ESC_TEXT;
        if (n && !control && !quote) {
            s += n;
            continue;
        }
        ob_buf_append(b, run, (size_t)(s - run));
        run = ++s;
        if (c == '\n')
            ob_buf_puts(b, "\\n");
        else if (c == '\r')
            ob_buf_puts(b, "\\r");
        else if (c == '\t')
            ob_buf_puts(b, "\\t");
        else if (quote)
            ob_buf_cat(b, "\\", c == '"' ? "\"" : "\\", NULL);
        else if (how != ESC_JSON)
            ob_buf_printf(b, "\\x%02x", c);
        else if (control)
            ob_buf_printf(b, "\\u%04x", c);
        else
            ob_buf_puts(b, "\\ufffd");
    }
    ob_buf_append(b, run, (size_t)(s - run));
}

static void put_json_member(struct ob_buf *b, const char *name, const char *value)
{
    ob_buf_cat(b, ",\"", name, "\":\"", NULL);
    put_escaped(b, value, ESC_JSON);
    ob_buf_putc(b, '"');
}

/* name=value, the value in double quotes unless it is plain printable
 * ASCII without spaces, quotes, '=' or backslashes: a producer's message
 * id cannot pass for another field. */
static void put_text_field(struct ob_buf *b, const char *name, const char *value)
{
    bool plain = *value;
    for (const unsigned char *p = (const unsigned char *)value; *p && plain; p++)
        plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '=' && *p != '\\';
    if (plain) {
        ob_buf_cat(b, name, "=", value, " ", NULL);
        return;
    }
    ob_buf_cat(b, name, "=\"", NULL);
    put_escaped(b, value, ESC_TEXT_QUOTED);
    ob_buf_puts(b, "\" ");
}

void ob_log_at(enum ob_log_severity sev, const char *shard, const char *message_id, const char *fmt, ...)
{
    if (!ob_log_enabled(sev))
        return;
    char when[OB_ISO8601_LEN];
    ob_iso8601_ms(ob_wall_ms(), when);

    struct ob_buf msg = { 0 }, line = { 0 };
    va_list ap;
    va_start(ap, fmt);
    ob_buf_vprintf(&msg, fmt, ap);
    va_end(ap);

    /* JSON lines too: journald takes the prefix off any line, so the
     * journal's message is the JSON object as written. */
    ob_buf_puts(&line, ob_log_journal_prefix(sev));

    if (atomic_load(&log_json)) {
        ob_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\"", when, sev_names[sev]);
        if (shard)
            put_json_member(&line, "shard", shard);
        if (message_id)
            put_json_member(&line, "message_id", message_id);
        put_json_member(&line, "msg", ob_buf_cstr(&msg));
        ob_buf_puts(&line, "}\n");
    } else {
        ob_buf_printf(&line, "%s %-5s ", when, sev_names[sev]);
        if (shard)
            put_text_field(&line, "shard", shard);
        if (message_id)
            put_text_field(&line, "id", message_id);
        put_escaped(&line, ob_buf_cstr(&msg), ESC_TEXT);
        ob_buf_putc(&line, '\n');
    }
    pthread_mutex_lock(&log_lock);
    FILE *f = log_stream ? log_stream : stderr;
    fwrite(line.data, 1, line.len, f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
    ob_buf_free(&msg);
    ob_buf_free(&line);
}
