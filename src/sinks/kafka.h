/* The kafka sink's pure parts, for its own file and its unit test
 * (tests/unit/test_sink_kafka.c): how a delivery becomes a record's
 * headers, what a librdkafka error means for a delivery, and which
 * librdkafka properties the sink accepts. Nothing else includes this. */
#ifndef OB_SINKS_KAFKA_H
#define OB_SINKS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "sinks/sink.h"

/* Adds d's headers in the CloudEvents Kafka protocol binding, binary mode:
 * `ce_` + each context attribute, `content-type`, the dead-letter reason
 * as the `ce_` extension OB_CE_DEAD_LETTER_REASON, then the message's own
 * headers except names that clash with those (`content-type`, `ce_*`,
 * case-insensitive). */
void ob_kafka_headers_add(rd_kafka_headers_t *h, const struct ob_delivery *d);

/* What a delivery report's (or rd_kafka_producev's) error means: RETRY
 * for what may pass (transport, timeouts, leadership, throttling, a
 * purged queue, a fatal producer error: the producer is recreated),
 * REJECT for what this message will always get (too large: *too_large,
 * unknown topic, authorization, invalid record). */
enum ob_delivery_result ob_kafka_result(rd_kafka_resp_err_t err, bool *too_large);

/* Sets property name = value on conf, which already holds the sink's own
 * settings, as a `properties:` entry: false (and why, in librdkafka's
 * words where it refused) when librdkafka does not know the property or
 * its value, when a sink key owns it (bootstrap.servers: `brokers`), or
 * when it would break the sink's guarantees (idempotence, acks=all, the
 * Java-compatible partitioner, no transactions). */
bool ob_kafka_property_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *why, size_t why_size);

/* A conf with the settings every producer of the sink has whatever its
 * section says (idempotence, acks=all, the partitioner): what the
 * property rules are checked against. */
rd_kafka_conf_t *ob_kafka_conf_new(void);

#endif
