/* CloudEvents 1.0 (SPEC §4). */
#include "core/cloudevents.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/codec.h"
#include "core/template.h"

void ob_ce_from_message(struct ob_ce *ce, const struct ob_message *m, const char *source_template,
                        const char *table)
{
    struct ob_buf source = {0};
    ob_template_expand(&source, source_template ? source_template : "/{table}/{aggregateType}", m, table);
    if (source.len == 0)
        ob_template_expand(&source, "/{table}", m, table);
    const char *content_type = ob_message_header(m, "content-type");
    *ce = (struct ob_ce){
        .id = m->sk,
        .type = m->message_type ? m->message_type : "outbox.message",
        .source = ob_buf_steal(&source),
        .subject = m->aggregate_id,
        .time = m->created_at,
        .partitionkey = m->pk,
        .correlationid = m->correlation_id,
        .causationid = m->causation_id,
        .datacontenttype = content_type && *content_type ? content_type : "application/json",
    };
}

void ob_ce_free(struct ob_ce *ce)
{
    free(ce->source);
    memset(ce, 0, sizeof *ce);
}

/* application/json or any +json type, parameters allowed. */
static bool is_json_media_type(const char *type)
{
    size_t len = strcspn(type, ";");
    while (len && (type[len - 1] == ' ' || type[len - 1] == '\t'))
        len--;
    static const char json[] = "application/json", suffix[] = "+json";
    if (len == sizeof json - 1 && strncasecmp(type, json, len) == 0)
        return true;
    return len > sizeof suffix - 1 && strncasecmp(type + len - (sizeof suffix - 1), suffix, sizeof suffix - 1) == 0;
}

/* The context attributes a header may not shadow as an extension. */
static bool is_reserved_attribute(const char *name)
{
    static const char *const reserved[] = {
        "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
        "partitionkey", "correlationid", "causationid", "data", NULL,
    };
    for (size_t i = 0; reserved[i]; i++)
        if (strcmp(reserved[i], name) == 0)
            return true;
    return false;
}

static bool is_extension_name(const char *name)
{
    size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789");
    return len >= 1 && len <= 20 && !name[len] && !is_reserved_attribute(name);
}

/* Copies valid JSON text without the whitespace between tokens, so `data`
 * keeps the producer's exact numbers and key order on one line. */
static void put_minified_json(struct ob_buf *out, const unsigned char *json, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = json[i];
        if (in_string) {
            ob_buf_putc(out, (char)c);
            if (c == '\\' && i + 1 < len)
                ob_buf_putc(out, (char)json[++i]);
            else if (c == '"')
                in_string = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            ob_buf_putc(out, (char)c);
            in_string = c == '"';
        }
    }
}

/* json_string refuses invalid UTF-8: such a value is left out rather
 * than breaking the whole line. */
static void set_string(json_t *obj, const char *name, const char *value)
{
    if (value)
        json_object_set_new(obj, name, json_string(value));
}

/* Structured events keep `data` well inside jansson's parsing depth
 * (2048), so every line outboxd writes parses back. */
#define MAX_DATA_NESTING 1024

/* The deepest nesting of arrays and objects in JSON text. */
static size_t json_nesting(const unsigned char *p, size_t n)
{
    size_t depth = 0, most = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > most)
                most = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return most;
}

void ob_ce_structured(struct ob_buf *out, const struct ob_ce *ce, const struct ob_message *m)
{
    json_t *obj = json_object();
    set_string(obj, "specversion", "1.0");
    set_string(obj, "id", ce->id);
    set_string(obj, "source", ce->source);
    set_string(obj, "type", ce->type);
    set_string(obj, "subject", ce->subject);
    set_string(obj, "time", ce->time);
    set_string(obj, "datacontenttype", ce->datacontenttype);
    set_string(obj, "partitionkey", ce->partitionkey);
    set_string(obj, "correlationid", ce->correlationid);
    set_string(obj, "causationid", ce->causationid);
    for (size_t i = 0; i < m->n_headers; i++)
        if (is_extension_name(m->headers[i].name))
            set_string(obj, m->headers[i].name, m->headers[i].value);

    bool json_data = false;
    /* jansson accepts a scalar followed by NUL bytes, which would end the
     * line early when spliced in; and a payload as deep as its parser
     * allows would be one level too deep inside the event. */
    if (m->payload_len && is_json_media_type(ce->datacontenttype) && !memchr(m->payload, 0, m->payload_len) &&
        json_nesting(m->payload, m->payload_len) < MAX_DATA_NESTING) {
        json_t *data = json_loadb((const char *)m->payload, m->payload_len, JSON_DECODE_ANY, NULL);
        json_data = data != NULL;
        json_decref(data);
    }
    if (m->payload_len && !json_data) {
        struct ob_buf b64 = {0};
        ob_base64_encode(&b64, m->payload, m->payload_len);
        set_string(obj, "data_base64", ob_buf_cstr(&b64));
        ob_buf_free(&b64);
    }

    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        abort(); /* only on allocation failure, which outboxd does not survive */
    size_t len = strlen(text);
    if (json_data) {
        /* The object always has specversion, so it ends in '}' after a member. */
        ob_buf_append(out, text, len - 1);
        ob_buf_puts(out, ",\"data\":");
        put_minified_json(out, m->payload, m->payload_len);
        ob_buf_putc(out, '}');
    } else {
        ob_buf_append(out, text, len);
    }
    free(text);
    json_decref(obj);
}

void ob_ce_each_attribute(const struct ob_ce *ce, void (*fn)(const char *name, const char *value, void *ctx),
                          void *ctx)
{
    const struct {
        const char *name, *value;
    } attrs[] = {
        {"specversion", "1.0"},     {"id", ce->id},
        {"type", ce->type},         {"source", ce->source},
        {"subject", ce->subject},   {"time", ce->time},
        {"partitionkey", ce->partitionkey},
        {"correlationid", ce->correlationid},
        {"causationid", ce->causationid},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        if (attrs[i].value)
            fn(attrs[i].name, attrs[i].value, ctx);
}
