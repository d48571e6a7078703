/* The configuration file (SPEC §6): loading, strict validation, defaults,
 * the `outboxd check` summary and the generated reference documents.
 *
 * Every key is described once, in the schema tables of config_schema.c
 * and, for a sink type's keys, in its sink's (a catalogue of them is
 * handed in); the YAML walk, the error messages, the defaults,
 * docs/CONFIGURATION.md and config/outboxd.yaml.example all come from
 * those tables. */
#ifndef OB_CORE_CONFIG_H
#define OB_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/log_level.h"
#include "outboxd/error.h"

enum ob_billing_mode { OB_BILLING_PAY_PER_REQUEST, OB_BILLING_PROVISIONED };
enum ob_start_position { OB_START_TRIM_HORIZON, OB_START_LATEST };
enum ob_ordering { OB_ORDER_KEY, OB_ORDER_SHARD, OB_ORDER_NONE };
enum ob_on_failure { OB_ON_FAILURE_DEAD_LETTER, OB_ON_FAILURE_BLOCK };
enum ob_log_format { OB_LOG_TEXT, OB_LOG_JSON };

struct ob_config_pair {
    char *key;
    char *value;
    int line, column;                /* 1-based position of the key, 0 when not from a file */
};

/* A string→string map in file order (HTTP headers, a client library's properties). */
struct ob_config_map {
    struct ob_config_pair *pairs;
    size_t n;
};

/* One sink option: every key of the sink's type is present, the ones the
 * file does not set carry the schema default (line 0). Which union member
 * is meaningful follows the key's type in the schema. */
struct ob_sink_opt {
    const char *key;                 /* points into the schema table */
    char *str;                       /* string, URL, template, enum value */
    bool b;
    int64_t i;                       /* integer; duration in milliseconds */
    struct ob_config_map map;
    bool set;                        /* the file or a default gave a value */
    int line, column;                /* 1-based position of the value, 0 for defaults */
};

struct ob_sink_schema;
struct ob_sink_catalogue;

struct ob_config_sink {
    char *name;
    char *type;                      /* a type of the catalogue it was loaded with */
    const struct ob_sink_schema *schema;   /* that type's keys: opts[i] is ob_sink_key(schema, i) */
    struct ob_sink_opt *opts;
    size_t n_opts;
    int line, column;                /* the list item */
};

struct ob_config_route {
    char *match_message_type;        /* glob, NULL = any */
    char *match_aggregate_type;      /* glob, NULL = any */
    char *sink;                      /* a defined sink's name */
    size_t sink_index;               /* into ob_config.sinks */
    char *destination;               /* per-sink destination template, NULL = the sink's own */
    int line, column;
};

/* The aws section: DynamoDB's, and what the AWS sinks start from. */
struct ob_config_aws {
    char *region, *endpoint, *streams_endpoint;
    char *access_key_id, *secret_access_key, *session_token, *profile;
    int max_attempts;
    int64_t retry_base_delay_ms, retry_max_delay_ms;
    int64_t connect_timeout_ms, request_timeout_ms;
    int max_connections;
};

struct ob_config {
    char *path;
    const struct ob_sink_catalogue *sink_types;   /* it was loaded with: a reload uses the same */
    struct ob_config_aws aws;
    struct {
        char *name;
        bool create_if_not_exists;
        int64_t ttl_seconds;
        enum ob_billing_mode billing_mode;
        int64_t read_capacity, write_capacity;   /* 0 unless provisioned */
    } table;
    struct {
        enum ob_start_position start_position;
        int64_t poll_interval_ms;
        int batch_size;
    } stream;
    struct {
        char *table;                 /* default "<table.name>-leases" */
        char *instance_id;           /* NULL: the runtime uses the host name */
        int64_t duration_ms;
    } leases;
    struct {
        enum ob_ordering ordering;
        int max_in_flight;
        int max_attempts;
        int64_t backoff_initial_ms, backoff_max_ms;
        enum ob_on_failure on_failure;
        char *dead_letter_sink;      /* NULL = record on the item only */
        int64_t shutdown_timeout_ms;
        int64_t stuck_after_ms;      /* no progress for this long while work waits: stuck (SPEC §7) */
    } relay;
    struct {
        double max_write_units_per_second;   /* 0 = unlimited */
        double sweep_read_units_per_second;
    } capacity;
    struct {
        int64_t interval_ms, older_than_ms;
    } sweep;
    struct {
        char *source;
    } cloudevents;
    struct ob_config_sink *sinks;
    size_t n_sinks;
    struct ob_config_route *routes;
    size_t n_routes;
    char *default_sink;              /* always a defined sink after loading */
    struct {
        char *listen;                /* NULL = no metrics server */
    } metrics;
    struct {
        enum ob_log_severity level;
        enum ob_log_format format;
    } log;
};

/* Every problem found, each a full "FILE:LINE:COLUMN: error: MESSAGE" line,
 * in file order. */
struct ob_config_diag {
    char **lines;
    size_t n;
};

/* Sinks may be of the types of sinks (it must outlive the config). Returns
 * OB_OK and *out (the caller owns it: ob_config_free), or OB_ERR_CONFIG
 * with every problem in diag (ob_config_diag_free), which must be zeroed
 * before the call. */
enum ob_err ob_config_load(const char *path, const struct ob_sink_catalogue *sinks, struct ob_config **out,
                           struct ob_config_diag *diag);
/* The same from memory; name is the file name used in messages. */
enum ob_err ob_config_load_string(const char *name, const char *yaml, size_t len, const struct ob_sink_catalogue *sinks,
                                  struct ob_config **out, struct ob_config_diag *diag);
void ob_config_free(struct ob_config *cfg);
void ob_config_diag_free(struct ob_config_diag *diag);

/* The keys whose value in `loaded` differs from the one in `running` and
 * that SIGHUP cannot apply (the schema's keys without OB_CK_RELOAD), by
 * dotted path, in schema order. Writes at most max of them to names (they
 * point into the schema) and returns how many differ. */
size_t ob_config_restart_changes(const struct ob_config *running, const struct ob_config *loaded,
                                 const char **names, size_t max);

/* What `outboxd check` prints: every setting, secrets as "(set)". */
void ob_config_print_summary(const struct ob_config *cfg, FILE *f);
/* docs/CONFIGURATION.md, the man page packaging/man/outboxd.yaml.5 (the
 * same reference in roff; date is its YYYY-MM-DD) and
 * config/outboxd.yaml.example, from the schema and the sink types of
 * sinks; the example's one live sink is of the first type. */
void ob_config_write_reference(FILE *f, const struct ob_sink_catalogue *sinks);
void ob_config_write_man(FILE *f, const struct ob_sink_catalogue *sinks, const char *date);
void ob_config_write_example(FILE *f, const struct ob_sink_catalogue *sinks);

/* "250ms", "5s", "10m", "2h", "7d" or "0" → milliseconds; *ok false
 * (and 0 returned) on anything else or on overflow. */
int64_t ob_parse_duration_ms(const char *s, bool *ok);

/* Sink options by key, as the sink's type declares them. An unset key
 * without a default gives NULL, false, 0 or an empty map. */
const char *ob_sink_opt_str(const struct ob_config_sink *sink, const char *key);
bool ob_sink_opt_bool(const struct ob_config_sink *sink, const char *key);
int64_t ob_sink_opt_int(const struct ob_config_sink *sink, const char *key);
int64_t ob_sink_opt_duration_ms(const struct ob_config_sink *sink, const char *key);
const struct ob_config_map *ob_sink_opt_map(const struct ob_config_sink *sink, const char *key);
/* True when the file (not a default) gave the key. */
bool ob_sink_opt_is_set(const struct ob_config_sink *sink, const char *key);

const struct ob_config_sink *ob_config_find_sink(const struct ob_config *cfg, const char *name);

#endif
