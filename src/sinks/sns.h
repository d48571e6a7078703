/* The sns sink's pure parts, for sns.c and its unit tests: SNS's naming
 * rules, one message as a PublishBatch entry, the request form and the
 * answer. No I/O. */
#ifndef OB_SINKS_SNS_H
#define OB_SINKS_SNS_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/client.h"
#include "core/buf.h"
#include "sinks/sink.h"

#define OB_SNS_BATCH_MAX 10      /* entries of one PublishBatch */
#define OB_SNS_MAX_ATTRIBUTES 10 /* more are discarded on raw delivery to SQS */

/* SNS as the AWS client calls it: the query protocol, SNS's error names. */
extern const struct ob_aws_service ob_sns_service;

/* Appends s[0..len) form-encoded: RFC 3986 unreserved characters as they
 * are, every other byte as %XX. */
void ob_sns_form_encode(struct ob_buf *out, const char *s, size_t len);

/* Whether s is an SNS topic ARN, arn:PARTITION:sns:REGION:ACCOUNT:NAME, with
 * a 12-digit account and a valid topic name (ending in .fifo or not). */
bool ob_sns_topic_arn_ok(const char *s);
/* Whether the topic of arn is a FIFO topic. */
bool ob_sns_topic_fifo(const char *arn);

/* A MessageGroupId or MessageDeduplicationId for s: s itself when SNS takes
 * it (1 to 128 ASCII letters, digits and punctuation), else "sha256-" and
 * the hex SHA-256 of s, the same for the same s. */
void ob_sns_fifo_id(struct ob_buf *out, const char *s);

/* Whether a header can travel as a String message attribute: SNS's rules
 * for the name (letters, digits, '_', '-', '.'; at most 256; no leading,
 * trailing or double '.'; not "AWS." or "Amazon." in any case) and a
 * non-empty value of XML characters. */
bool ob_sns_attribute_ok(const char *name, const char *value);

/* One message as a PublishBatch entry. */
struct ob_sns_entry {
    struct ob_delivery *d;
    struct ob_buf body;          /* the structured CloudEvent */
    const struct ob_header *attrs[OB_SNS_MAX_ATTRIBUTES]; /* borrowed from d->msg */
    size_t n_attrs;
    size_t size;                 /* as SNS counts it: body, and names, types and values of attributes */
};

/* Fills e for d: its body, the first OB_SNS_MAX_ATTRIBUTES headers that
 * ob_sns_attribute_ok takes, its size. Free with ob_sns_entry_free. */
void ob_sns_entry_build(struct ob_sns_entry *e, struct ob_delivery *d);
void ob_sns_entry_free(struct ob_sns_entry *e);

/* Appends the start of a PublishBatch form to topic_arn. */
void ob_sns_request_start(struct ob_buf *form, const char *topic_arn);
/* Appends entry number index of the request (its Id is the index, decimal);
 * a FIFO topic's entry gets MessageGroupId from pk and
 * MessageDeduplicationId from the message id (ob_sns_fifo_id). */
void ob_sns_request_entry(struct ob_buf *form, size_t index, const struct ob_sns_entry *e, bool fifo);

/* Sets d[0..n) (n at most OB_SNS_BATCH_MAX; entry i has Id "i") from a
 * PublishBatch answer: a Successful member with a MessageId is ACK (left
 * as it is), a Failed one a failure by its Code and SenderFault, an entry
 * the answer does not mention RETRY. */
void ob_sns_answer(const char *xml, size_t len, struct ob_delivery *const *d, size_t n);

#endif
