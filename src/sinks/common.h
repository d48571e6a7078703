/* Helpers shared by the sinks: results, and the JSON-lines writers
 * (stdout, file). Not part of the sink interface (sink.h). */
#ifndef OB_SINKS_COMMON_H
#define OB_SINKS_COMMON_H

#include <stddef.h>

#include "core/buf.h"
#include "sinks/sink.h"

/* Sets d's result and, for anything but ACK, its error text (truncated
 * to fit). Callers must not format secrets into it. */
void ob_delivery_set(struct ob_delivery *d, enum ob_delivery_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The CloudEvents extension attribute that carries a dead-lettered
 * message's error (struct ob_delivery.error_info). */
#define OB_CE_DEAD_LETTER_REASON "deadletterreason"

/* Appends d's structured CloudEvent (one line, no newline) to out, with
 * OB_CE_DEAD_LETTER_REASON when d is a dead letter. */
void ob_delivery_structured(struct ob_buf *out, const struct ob_delivery *d);
/* Rewrites the noncharacters U+FFFE and U+FFFF of a JSON text (they can
 * only be inside its strings) as the escapes \ufffe and \uffff: the same
 * JSON to a reader, and characters that SQS and SNS, which take only
 * XML 1.0's, accept. */
void ob_json_escape_noncharacters(struct ob_buf *json);

/* The same and a newline. */
void ob_delivery_json_line(struct ob_buf *out, const struct ob_delivery *d);

/* write(2) until all of p is written, retrying EINTR and short writes.
 * 0, or the errno of the failed write. */
int ob_write_all(int fd, const void *p, size_t n);

/* fsync(2) that accepts descriptors which cannot be synced (pipes,
 * terminals, /dev/null): 0, or the errno of a real failure. */
int ob_fsync_if_supported(int fd);

#endif
