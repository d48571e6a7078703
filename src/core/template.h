/* Destination and source templates: a text with {placeholder}s filled in
 * from one message. Pure code; it knows messages, not configuration. */
#ifndef OB_CORE_TEMPLATE_H
#define OB_CORE_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "outboxd/message.h"

/* Template placeholders: {messageType} {aggregateType} {aggregateId}
 * {partitionKey} {messageId} {table}, and {pk} {sk} as the table spells
 * the last two. A missing attribute expands to "". */
void ob_template_expand(struct ob_buf *out, const char *tmpl, const struct ob_message *m, const char *table);
/* False (and the offending "{name}" copied to bad) when tmpl names an
 * unknown placeholder, has an unclosed '{', or a '}' that closes nothing. */
bool ob_template_check(const char *tmpl, char *bad, size_t bad_len);
/* The placeholder names without braces, NULL-terminated, for messages. */
extern const char *const ob_template_names[];

#endif
