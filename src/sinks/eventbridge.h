/* The pure parts of the eventbridge sink (eventbridge.c): a delivery as a
 * PutEvents entry, the service's entry-size rule, how a batch's calls go,
 * and what an answer says of each entry. Here for the unit tests. */
#ifndef OB_SINKS_EVENTBRIDGE_H
#define OB_SINKS_EVENTBRIDGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sinks/aws_sink.h"
#include "sinks/sink.h"

#define OB_EB_MAX_ENTRIES 10            /* entries in one PutEvents call */
/* An entry, and a call's entries together, by the size rule, must be
 * under this ("less than 256KB"). */
#define OB_EB_MAX_BYTES (256u << 10)
#define OB_EB_TIME_BYTES 14             /* what a Time counts in the size rule */
#define OB_EB_MAX_DETAIL_TYPE 128       /* characters (UTF-16 code units, as the service counts) */
#define OB_EB_MAX_BUS 1600              /* an event bus name or ARN */
#define OB_EB_UNTYPED "outbox.message"  /* DetailType of a message whose type is empty */
/* A Time goes with 14 digits: to the millisecond below 10^14 ms (the year
 * 5138); a later createdAt goes without Time. */
#define OB_EB_MAX_TIME_MS 100000000000000LL

/* Whether bus is what PutEvents takes as EventBusName: a name of
 * [.-_A-Za-z0-9], or the ARN of a bus (arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME). */
bool ob_eventbridge_bus_valid(const char *bus);

/* DetailType of a message of CloudEvents type `type`: the type, cut to
 * OB_EB_MAX_DETAIL_TYPE characters at a character's end, or
 * OB_EB_UNTYPED when it is empty (the service refuses an empty one). */
void ob_eventbridge_detail_type(struct ob_buf *out, const char *type);

/* An entry's size by the service's rule: Time 14 bytes when present, the
 * UTF-8 bytes of Source, DetailType and Detail. */
size_t ob_eventbridge_entry_size(bool has_time, size_t source_len, size_t detail_type_len, size_t detail_len);

/* d's PutEvents entry, to d's destination or else default_bus, with Time
 * when createdAt is after 1970 and before OB_EB_MAX_TIME_MS; the caller
 * owns it (json_decref). Its size by the rule in *size. NULL, with d's
 * result set, when d cannot be sent: REJECT (too_large when not under
 * OB_EB_MAX_BYTES) for what the service would refuse. */
json_t *ob_eventbridge_entry(struct ob_delivery *d, const char *default_bus, size_t *size);

/* PutEvents as ob_aws_sink_send sends it: entries of one bus together (a
 * bus the service does not know fails its call alone), at most
 * OB_EB_MAX_ENTRIES a call, their sizes together under OB_EB_MAX_BYTES. */
extern const struct ob_aws_batch_rules ob_eventbridge_batch;

/* The body of a PutEvents call of these entries (a JSON array), Time in
 * seconds to the millisecond; the caller frees it. NULL when out of memory. */
char *ob_eventbridge_body(json_t *entries);

/* Sets d[0..n) from the PutEvents answer of the call that carried them in
 * this order: an entry with an EventId is acknowledged; an ErrorCode
 * ThrottlingException or InternalFailure makes it RETRY, any other
 * REJECT; an entry with neither is RETRY, and so is every entry when the
 * answer does not have one entry for each sent (it cannot say whose an
 * EventId is; the service may have some: at least once). */
void ob_eventbridge_read_answer(const json_t *answer, struct ob_delivery *const *d, size_t n);

#endif
