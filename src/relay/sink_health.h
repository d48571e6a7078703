/* Whether a sink answers, shared by every thread that publishes to it
 * (SPEC §3): a run of retriable failures marks it down; while it is down
 * its messages wait and one probe at a time, process-wide, tests it. */
#ifndef OB_RELAY_SINK_HEALTH_H
#define OB_RELAY_SINK_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/relay_internal.h"

/* The sink answered (a 2xx, or a rejection of this one message). */
void ob_sink_answered(struct ob_sink_health *h);

/* A retriable failure of an attempt sent at sent_at (monotonic ms); d
 * says whether a connection could be made. A sink is down after 3 such
 * failures in a row, at once when it could not be reached. Returns
 * whether the failure counts toward relay.max_attempts: only when the sink
 * is up and answered another attempt while this one was out, so it is this
 * message that fails. Without such an answer the sink may be down, and
 * attempts while it is down do not count (SPEC §3): an outage of any
 * length, found out or not yet, dead-letters nothing. A message whose own
 * destination (elsewhere than the sink's) cannot be reached fails alone:
 * that says nothing of the sink, and counts while the sink is up. */
bool ob_sink_failed_retriably(struct ob_sink_health *h, const struct ob_delivery *d, int64_t sent_at);

/* How many of k messages for the sink (from the front) may be sent now:
 * all while it is up; while it is down one, the probe, when it is time
 * for one and no other is out, else none. *probe says whether the one
 * admitted is the probe (then ob_sink_probed must follow); the others
 * wait until *retry_at. The caller puts first, when it has one, a message
 * other than the last probe that failed (ob_sink_probe_failed_last). */
size_t ob_sink_admit(const struct ob_config *cfg, struct ob_sink_health *h, size_t k, int64_t now, int64_t *retry_at,
                     bool *probe);

/* The probe's outcome: it sets when the next one may go. message: its
 * ob_item_key_hash. */
void ob_sink_probed(const struct ob_config *cfg, struct ob_sink_health *h, bool answered, uint64_t message,
                    int64_t now);

/* Whether message (its ob_item_key_hash) was the last probe, and it failed.
 * A message the sink fails alone (a 5xx to it only) cannot tell a sink
 * that is up from one that is down: it probes again only when no other
 * message waits, so it never keeps the sink down for the others. */
bool ob_sink_probe_failed_last(struct ob_sink_health *h, uint64_t message);

#endif
