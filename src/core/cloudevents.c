/* CloudEvents 1.0 (SPEC §4), destination templates and routes. */
#include "core/cloudevents.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/codec.h"

/* pk and sk are the table's own names (SPEC §2) for partitionKey and
 * messageId, and read as naturally in a template. */
const char *const ob_template_names[] = {
    "messageType", "aggregateType", "aggregateId", "partitionKey", "messageId", "table", "pk", "sk", NULL,
};

/* The value of placeholder name[0..len) (NULL when absent), or false when
 * the name is unknown. */
static bool placeholder_value(const char *name, size_t len, const struct ob_message *m, const char *table,
                              const char **value)
{
    const char *const values[] = {
        m ? m->message_type : NULL, m ? m->aggregate_type : NULL, m ? m->aggregate_id : NULL,
        m ? m->pk : NULL,           m ? m->sk : NULL,             table,
        m ? m->pk : NULL,           m ? m->sk : NULL,
    };
    for (size_t i = 0; ob_template_names[i]; i++) {
        if (strlen(ob_template_names[i]) == len && memcmp(ob_template_names[i], name, len) == 0) {
            *value = values[i];
            return true;
        }
    }
    return false;
}

/* The '}' closing the placeholder opened at open, or NULL when another
 * '{' or the end comes first. */
static const char *placeholder_end(const char *open)
{
    const char *end = open + 1 + strcspn(open + 1, "{}");
    return *end == '}' ? end : NULL;
}

void ob_template_expand(struct ob_buf *out, const char *tmpl, const struct ob_message *m, const char *table)
{
    const char *p = tmpl;
    while (*p) {
        const char *end = *p == '{' ? placeholder_end(p) : NULL;
        const char *value = NULL;
        if (end && placeholder_value(p + 1, (size_t)(end - p - 1), m, table, &value)) {
            if (value)
                ob_buf_puts(out, value);
            p = end + 1;
        } else {
            ob_buf_putc(out, *p++);
        }
    }
}

bool ob_template_check(const char *tmpl, char *bad, size_t bad_len)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p == '}') {
            snprintf(bad, bad_len, "}");
            return false;
        }
        if (*p != '{')
            continue;
        const char *end = placeholder_end(p);
        const char *value;
        if (!end) {
            snprintf(bad, bad_len, "%.*s", (int)strcspn(p + 1, "{") + 1, p);
            return false;
        }
        if (!placeholder_value(p + 1, (size_t)(end - p - 1), NULL, NULL, &value)) {
            snprintf(bad, bad_len, "%.*s", (int)(end - p + 1), p);
            return false;
        }
        p = end;
    }
    return true;
}

/* Iterative: on a mismatch only the most recent '*' is retried, one
 * character further, so no pattern takes more than O(len(glob)·len(s)). */
bool ob_glob_match(const char *glob, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*glob == '*') {
            star = glob++;
            resume = s;
        } else if (*glob == '?' || (*glob && *glob == *s)) {
            glob++;
            s++;
        } else if (star) {
            glob = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*glob == '*')
        glob++;
    return !*glob;
}

static bool route_matches(const struct ob_config_route *route, const struct ob_message *m)
{
    const char *type = m->message_type ? m->message_type : "";
    const char *aggregate = m->aggregate_type ? m->aggregate_type : "";
    return (!route->match_message_type || ob_glob_match(route->match_message_type, type)) &&
           (!route->match_aggregate_type || ob_glob_match(route->match_aggregate_type, aggregate));
}

void ob_route_select(const struct ob_config *cfg, const struct ob_message *m, size_t *sink_index,
                     const char **destination_template)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (route_matches(&cfg->routes[i], m)) {
            *sink_index = cfg->routes[i].sink_index;
            *destination_template = cfg->routes[i].destination;
            return;
        }
    }
    /* Loading guarantees default_sink names a defined sink. */
    const struct ob_config_sink *sink = ob_config_find_sink(cfg, cfg->default_sink);
    *sink_index = sink ? (size_t)(sink - cfg->sinks) : 0;
    *destination_template = NULL;
}

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
