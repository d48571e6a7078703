/* The CloudEvents 1.0 mapping of SPEC §4. Pure code. */
#ifndef OB_CORE_CLOUDEVENTS_H
#define OB_CORE_CLOUDEVENTS_H

#include "core/buf.h"
#include "outboxd/message.h"

/* A message's CloudEvents attributes. Strings point into the message
 * except `source`, which is owned (ob_ce_free). Optional attributes whose
 * attribute is missing are NULL (subject, time, correlationid, causationid). */
struct ob_ce {
    const char *id;              /* sk */
    const char *type;            /* messageType, else "outbox.message" */
    char *source;                /* cloudevents.source expanded; "/{table}" when that comes out empty */
    const char *subject;         /* aggregateId */
    const char *time;            /* createdAt, normalised RFC 3339 is not attempted */
    const char *partitionkey;    /* pk */
    const char *correlationid;
    const char *causationid;
    const char *datacontenttype; /* headers' content-type, else "application/json" */
};

/* source_template: cfg->cloudevents.source (NULL: "/{table}/{aggregateType}"). */
void ob_ce_from_message(struct ob_ce *ce, const struct ob_message *m, const char *source_template,
                        const char *table);
void ob_ce_free(struct ob_ce *ce);

/* Appends the structured-mode JSON object (one line, no newline):
 * specversion "1.0", every present attribute, headers as extension
 * attributes when their name is a valid CloudEvents attribute name
 * (a-z0-9, at most 20 characters) that does not clash with a context
 * attribute (content-type is datacontenttype), and the payload as `data`
 * when datacontenttype is JSON (application/json or +json) and the payload
 * parses as JSON, else as `data_base64`. */
void ob_ce_structured(struct ob_buf *out, const struct ob_ce *ce, const struct ob_message *m);

/* Binary mode: calls fn(name, value, ctx) for each CloudEvents context
 * attribute as it travels in protocol headers, names lowercase without a
 * prefix ("specversion", "id", "type", "source", "subject", "time",
 * "partitionkey", "correlationid", "causationid"), absent ones skipped;
 * datacontenttype is not included (it is the protocol's content type). */
void ob_ce_each_attribute(const struct ob_ce *ce, void (*fn)(const char *name, const char *value, void *ctx),
                          void *ctx);

#endif
