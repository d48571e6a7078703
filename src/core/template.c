/* Destination and source templates. */
#include "core/template.h"

#include <stdio.h>
#include <string.h>

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
