/* The pure parts of the sqs sink (sinks/sqs.c): which queue, what a
 * message's request entry holds, the size and grouping rules, the MD5s SQS
 * answers with, the SendMessageBatch request and its answer. Only the
 * sink and its unit tests include this. */
#ifndef OB_SINKS_SQS_H
#define OB_SINKS_SQS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "outboxd/message.h"
#include "sinks/aws_sink.h"
#include "sinks/sink.h"

#define OB_SQS_MAX_ENTRIES 10           /* per SendMessageBatch */
#define OB_SQS_MAX_ATTRIBUTES 10        /* message attributes per message */
/* The largest message, and the most one SendMessageBatch may carry in all
 * (bodies and attributes as ob_sqs_message_size counts): 1 MiB since
 * August 2025 (256 KiB before). */
#define OB_SQS_MAX_BYTES 1048576
#define OB_SQS_FIFO_ID_MAX 128          /* MessageGroupId, MessageDeduplicationId */
#define OB_SQS_MD5_HEX 33

/* Whether queue is a queue URL (http:// or https://) rather than a name. */
bool ob_sqs_is_url(const char *queue);
/* Whether queue is usable: a name (1 to 80 of A-Z a-z 0-9 - _, a FIFO
 * queue's ending in ".fifo" within the 80), or an http(s) URL whose last
 * path segment is such a name. When not, *why says what is wrong. */
bool ob_sqs_queue_valid(const char *queue, const char **why);
/* A FIFO queue: its name ends in ".fifo". */
bool ob_sqs_is_fifo(const char *queue);

/* The message headers that go as String message attributes, in header
 * order: those SQS accepts (name 1 to 256 of A-Z a-z 0-9 _ - ., not
 * starting with "AWS." or "Amazon." in any case, no leading, trailing
 * or doubled '.'; a non-empty value of characters SQS allows), the first
 * OB_SQS_MAX_ATTRIBUTES of them. Fills out; returns the count. */
size_t ob_sqs_attributes(const struct ob_message *m, const struct ob_header *out[OB_SQS_MAX_ATTRIBUTES]);
/* A message's size as SQS counts it against its limits: the body's bytes
 * and each attribute's name, data type ("String") and value. */
size_t ob_sqs_message_size(size_t body_len, const struct ob_header *const *attrs, size_t n);
/* MD5OfMessageAttributes as SQS computes it: over the attributes sorted by
 * name, each as length-prefixed (4 bytes, big-endian) name and data type,
 * transport byte 1 (a string) and length-prefixed value; lowercase hex. */
void ob_sqs_md5_attributes(const struct ob_header *const *attrs, size_t n, char hex[OB_SQS_MD5_HEX]);
/* MD5 of bytes, lowercase hex (MD5OfMessageBody). */
void ob_sqs_md5(const void *data, size_t len, char hex[OB_SQS_MD5_HEX]);
/* A FIFO MessageGroupId or MessageDeduplicationId from value: value itself
 * when it is 1 to 128 printable ASCII characters but space (what SQS
 * allows), else the lowercase hex SHA-256 of value (64 characters), so
 * one value always gives one id. */
void ob_sqs_fifo_id(const char *value, char out[OB_SQS_FIFO_ID_MAX + 1]);

/* One message of a publish, as it goes into a SendMessageBatch entry. */
struct ob_sqs_entry {
    struct ob_delivery *d;
    const char *queue;        /* as given: the route's topic or queue_url */
    const char *queue_url;    /* resolved; NULL until then */
    bool fifo;
    struct ob_buf body;       /* the structured CloudEvent; owned */
    const struct ob_header *attrs[OB_SQS_MAX_ATTRIBUTES];
    size_t n_attrs;
    size_t size;              /* ob_sqs_message_size */
};

/* Fills e for d bound for queue: body, attributes, size. False (and d's
 * result set: REJECT, too_large) when the message is over
 * max_message_size bytes. e->body is e's either way (ob_sqs_entry_free). */
bool ob_sqs_entry_prepare(struct ob_sqs_entry *e, struct ob_delivery *d, const char *queue,
                          size_t max_message_size);
void ob_sqs_entry_free(struct ob_sqs_entry *e);

/* SendMessageBatch as ob_aws_sink_send sends it: one queue's entries, at
 * most OB_SQS_MAX_ENTRIES and OB_SQS_MAX_BYTES a call. */
extern const struct ob_aws_batch_rules ob_sqs_batch;

/* The SendMessageBatch request of e[0..n), one queue's: entry Ids "0",
 * "1", ... by position; MessageGroupId and MessageDeduplicationId
 * (ob_sqs_fifo_id of pk and id) for a FIFO queue. Appends to out. */
void ob_sqs_encode_batch(struct ob_buf *out, const struct ob_sqs_entry *const *e, size_t n);

/* Sets the results of e[0..n) from the answer to their SendMessageBatch:
 * a Successful entry whose MD5s match what was sent is ACK, a mismatch
 * RETRY; a Failed entry is ob_aws_sink_entry_failed (retriable when not
 * the sender's fault, or a throttling code); an entry the answer does not
 * name is RETRY. */
void ob_sqs_apply_answer(const json_t *answer, const struct ob_sqs_entry *const *e, size_t n);

#endif
