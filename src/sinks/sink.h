/* The one sink interface. A sink declares its config keys and the rules
 * between them, is created from its config section, shared by every
 * shard worker (thread-safe), and publishes a batch of deliveries with a
 * result for each. Adding a sink: one file under sinks/ defining a
 * `const struct ob_sink_ops`, one line in the catalogue of sinks/sink.c
 * (README.md, "Adding a sink"). */
#ifndef OB_SINKS_SINK_H
#define OB_SINKS_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "aws/credentials_provider.h"
#include "core/cloudevents.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "outboxd/error.h"
#include "outboxd/message.h"

enum ob_delivery_result {
    OB_DELIVERY_ACK,     /* the broker has it */
    OB_DELIVERY_RETRY,   /* retriable: network, timeout, 408/429/5xx, broker unavailable */
    OB_DELIVERY_REJECT,  /* the broker refused this message: 4xx, too large, invalid */
};

struct ob_delivery {
    /* Inputs, borrowed for the duration of publish. */
    const struct ob_message *msg;
    const struct ob_ce *ce;
    const char *destination;    /* expanded route template, NULL: the sink's own */
    const char *error_info;     /* dead-letter deliveries: the reason, else NULL */
    /* Outputs. */
    enum ob_delivery_result result;
    bool unreachable;           /* RETRY: no connection to the sink could be made (refused, unreachable, no address),
                                   or its credentials expired: every message fails alike */
    bool destination_unreachable; /* RETRY: none to the message's own destination, elsewhere than the sink's */
    bool too_large;             /* REJECT: over the broker's size limit; dead-lettered at once (SPEC §3) */
    char error[512];            /* why, when not ACK; never contains secrets */
};

/* What a sink may need besides its own section. */
struct ob_sink_context {
    const char *table;          /* for {table} in templates */
    /* The relay's aws section: the AWS sinks' retry rules. */
    const struct ob_config_aws *aws;
    /* The process's region (a sink's own `region` overrides it) and
     * credentials, which the AWS sinks sign with (borrowed; NULL where
     * no AWS sink is made). */
    const char *region;
    struct ob_cred_provider *credentials;
};

struct ob_sink_ops {
    /* The config `type`, the type's own keys (every sink also has name,
     * type, tls_verify and timeout) and the check of the rules between
     * them, which `outboxd check` runs too. The first member: the
     * catalogue lists these, and finds the ops from them. */
    struct ob_sink_schema schema;
    /* Creates the sink's state from its section. Connection problems are
     * not errors here (the broker may come up later); bad settings are. */
    enum ob_err (*create)(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, void **state,
                          struct ob_error *err);
    /* Delivers every element of batch, concurrently where the broker
     * allows, and sets each result. Called from several threads at once. */
    void (*publish)(void *state, struct ob_delivery *batch, size_t n);
    /* Makes what publish acknowledged durable (fsync, producer flush). NULL: nothing to do. */
    enum ob_err (*flush)(void *state, struct ob_error *err);
    /* SIGHUP: reopen files. NULL: nothing to do. */
    void (*reopen)(void *state);
    void (*destroy)(void *state);
};

struct ob_sink {
    const struct ob_sink_ops *ops;
    void *state;
    char *name;
};

/* Creates the sink of a config section. The caller owns *out (ob_sink_destroy). */
enum ob_err ob_sink_create(const struct ob_config_sink *cfg, const struct ob_sink_context *ctx, struct ob_sink **out,
                           struct ob_error *err);
void ob_sink_publish(struct ob_sink *s, struct ob_delivery *batch, size_t n);
enum ob_err ob_sink_flush(struct ob_sink *s, struct ob_error *err);
void ob_sink_reopen(struct ob_sink *s);
void ob_sink_destroy(struct ob_sink *s);
/* Every sink type this build has: what cmd/ hands to the config loader. */
extern const struct ob_sink_catalogue ob_sinks;

#endif
