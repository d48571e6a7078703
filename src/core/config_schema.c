/* The schema of every configuration key (SPEC §6) but those of each sink
 * type, which its sink declares (sinks/). The walk in config.c, the
 * summary and the generated docs read only these tables: a key is added
 * here and nowhere else. Defaults are written as they would be in
 * the file, so they pass through the same parser as the user's values. */
#include "core/config_schema.h"

#include <stddef.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"

#define CFG(f) .offset = offsetof(struct ob_config, f), .size = sizeof(((struct ob_config *)0)->f)
#define ROUTE(f) .offset = offsetof(struct ob_config_route, f), .size = sizeof(((struct ob_config_route *)0)->f)
#define NO_MAX INT64_MAX

static const char *const http_schemes[] = {"http://", "https://", NULL};

/* Same order as the C enums in config.h: the index is the value. */
static const char *const billing_modes[] = {"pay_per_request", "provisioned", NULL};
static const char *const start_positions[] = {"trim_horizon", "latest", NULL};
static const char *const orderings[] = {"key", "shard", "none", NULL};
static const char *const on_failures[] = {"dead_letter", "block", NULL};
static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

const struct ob_config_key ob_config_keys[] = {
    {.path = "aws", .type = OB_CT_SECTION, .doc = "AWS endpoints, credentials and HTTP client limits."},
    {.path = "aws.region", .type = OB_CT_STRING, CFG(aws.region), .example = "us-east-1",
     .def_doc = "`$AWS_REGION`, then `$AWS_DEFAULT_REGION`, then `region` of the profile, then instance metadata",
     .doc = "AWS region of the table."},
    {.path = "aws.endpoint", .type = OB_CT_URL, .values = http_schemes, CFG(aws.endpoint),
     .example = "http://127.0.0.1:8000", .def_doc = "the regional endpoint",
     .doc = "DynamoDB endpoint: DynamoDB Local, a VPC endpoint."},
    {.path = "aws.streams_endpoint", .type = OB_CT_URL, .values = http_schemes, CFG(aws.streams_endpoint),
     .example = "http://127.0.0.1:8000", .def_doc = "`aws.endpoint`",
     .doc = "DynamoDB Streams endpoint."},
    {.path = "aws.access_key_id", .type = OB_CT_STRING, .flags = OB_CK_SECRET, CFG(aws.access_key_id),
     .example = "${AWS_ACCESS_KEY_ID}", .def_doc = "the default credential chain",
     .doc = "Static access key id; needs `secret_access_key`."},
    {.path = "aws.secret_access_key", .type = OB_CT_STRING, .flags = OB_CK_SECRET, CFG(aws.secret_access_key),
     .example = "${AWS_SECRET_ACCESS_KEY}", .doc = "Static secret access key; needs `access_key_id`."},
    {.path = "aws.session_token", .type = OB_CT_STRING, .flags = OB_CK_SECRET, CFG(aws.session_token),
     .example = "${AWS_SESSION_TOKEN}", .doc = "Session token of temporary static credentials."},
    {.path = "aws.profile", .type = OB_CT_STRING, CFG(aws.profile), .example = "default",
     .doc = "Profile of the shared credentials and config files, for the default chain."},
    {.path = "aws.max_attempts", .type = OB_CT_INT, .def = "8", .min = 1, .max = 100, CFG(aws.max_attempts),
     .doc = "Attempts per AWS request on retriable errors and throttling."},
    {.path = "aws.retry_base_delay", .type = OB_CT_DURATION, .def = "25ms", .min = 1, .max = NO_MAX,
     CFG(aws.retry_base_delay_ms), .doc = "First retry delay; doubles per attempt, with jitter."},
    {.path = "aws.retry_max_delay", .type = OB_CT_DURATION, .def = "20s", .min = 1, .max = NO_MAX,
     CFG(aws.retry_max_delay_ms), .doc = "Upper bound of one retry delay."},
    {.path = "aws.connect_timeout", .type = OB_CT_DURATION, .def = "3s", .min = 1, .max = NO_MAX,
     CFG(aws.connect_timeout_ms), .doc = "TCP and TLS connect timeout."},
    {.path = "aws.request_timeout", .type = OB_CT_DURATION, .def = "10s", .min = 1, .max = NO_MAX,
     CFG(aws.request_timeout_ms), .doc = "Timeout of one AWS request."},
    {.path = "aws.max_connections", .type = OB_CT_INT, .def = "64", .min = 1, .max = 10000,
     CFG(aws.max_connections), .doc = "Requests to AWS at once, per shard worker (and per sweeper): each keeps its own connections."},

    {.path = "table", .type = OB_CT_SECTION, .doc = "The outbox table."},
    {.path = "table.name", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, CFG(table.name), .example = "outbox",
     .doc = "Name of the outbox table."},
    {.path = "table.create_if_not_exists", .type = OB_CT_BOOL, .def = "false", CFG(table.create_if_not_exists),
     .doc = "Create the table (stream and TTL enabled) at start when it is missing."},
    {.path = "table.ttl_seconds", .type = OB_CT_INT, .def = "604800", .min = 1, .max = NO_MAX,
     CFG(table.ttl_seconds), .doc = "Published items get `ttl = now + ttl_seconds`."},
    {.path = "table.billing_mode", .type = OB_CT_ENUM, .def = "pay_per_request", .values = billing_modes,
     CFG(table.billing_mode), .doc = "Billing mode of a table outboxd creates."},
    {.path = "table.read_capacity", .type = OB_CT_INT, .min = 1, .max = NO_MAX, CFG(table.read_capacity),
     .example = "5", .doc = "Read capacity units; required with `billing_mode: provisioned`, not allowed otherwise."},
    {.path = "table.write_capacity", .type = OB_CT_INT, .min = 1, .max = NO_MAX, CFG(table.write_capacity),
     .example = "5", .doc = "Write capacity units; required with `billing_mode: provisioned`, not allowed otherwise."},

    {.path = "stream", .type = OB_CT_SECTION, .doc = "Reading the table's DynamoDB Stream."},
    {.path = "stream.start_position", .type = OB_CT_ENUM, .def = "trim_horizon", .values = start_positions,
     CFG(stream.start_position), .doc = "Where a shard without checkpoint starts."},
    {.path = "stream.poll_interval", .type = OB_CT_DURATION, .def = "250ms", .min = 1, .max = NO_MAX,
     CFG(stream.poll_interval_ms), .doc = "Wait between polls of an idle shard; busy shards are read back to back."},
    {.path = "stream.batch_size", .type = OB_CT_INT, .def = "1000", .min = 1, .max = 1000,
     CFG(stream.batch_size), .doc = "The most records one GetRecords call asks for; a shard asks for no more than 2 x relay.max_in_flight (at least 100) at a time, which bounds what it reads and holds decoded."},

    {.path = "leases", .type = OB_CT_SECTION, .doc = "Coordination of several instances through the lease table."},
    {.path = "leases.table", .type = OB_CT_STRING, CFG(leases.table), .example = "outbox-leases",
     .def_doc = "the table name followed by `-leases`", .doc = "Name of the lease table."},
    {.path = "leases.instance_id", .type = OB_CT_STRING, CFG(leases.instance_id), .example = "my-host-1",
     .def_doc = "the host name", .doc = "Identity of this process; unique among running processes."},
    {.path = "leases.duration", .type = OB_CT_DURATION, .def = "10s", .min = 1000, .max = NO_MAX,
     CFG(leases.duration_ms), .doc = "A lease not renewed for this long is taken over."},

    {.path = "relay", .type = OB_CT_SECTION, .doc = "Delivery: ordering, concurrency, retries, failures."},
    {.path = "relay.ordering", .type = OB_CT_ENUM, .def = "key", .values = orderings, CFG(relay.ordering),
     .doc = "Order kept: per partition key, per shard, or none."},
    {.path = "relay.max_in_flight", .type = OB_CT_INT, .def = "64", .min = 1, .max = 10000,
     CFG(relay.max_in_flight), .doc = "Messages in flight per shard: sent and not yet marked published."},
    {.path = "relay.max_attempts", .type = OB_CT_INT, .def = "10", .min = 1, .max = 1000000,
     CFG(relay.max_attempts), .doc = "Attempts while the sink is up before `on_failure` applies."},
    {.path = "relay.backoff", .type = OB_CT_SECTION, .doc = "Delay between attempts of one message."},
    {.path = "relay.backoff.initial", .type = OB_CT_DURATION, .def = "100ms", .min = 1, .max = NO_MAX,
     CFG(relay.backoff_initial_ms), .doc = "First delay; doubles per attempt, with jitter."},
    {.path = "relay.backoff.max", .type = OB_CT_DURATION, .def = "30s", .min = 1, .max = NO_MAX,
     CFG(relay.backoff_max_ms), .doc = "Upper bound of the delay."},
    {.path = "relay.on_failure", .type = OB_CT_ENUM, .def = "dead_letter", .values = on_failures,
     CFG(relay.on_failure), .doc = "After `max_attempts`: dead-letter the message, or block its key and retry."},
    {.path = "relay.dead_letter_sink", .type = OB_CT_STRING, .flags = OB_CK_RELOAD, CFG(relay.dead_letter_sink),
     .example = "dlq", .def_doc = "none: dead letters are only recorded on the item",
     .doc = "Sink that receives dead-lettered messages with their error."},
    {.path = "relay.shutdown_timeout", .type = OB_CT_DURATION, .def = "30s", .min = 0, .max = NO_MAX,
     CFG(relay.shutdown_timeout_ms), .doc = "Time to finish in-flight work on SIGTERM."},
    {.path = "relay.stuck_after", .type = OB_CT_DURATION, .def = "2m", .min = 3000, .max = NO_MAX,
     CFG(relay.stuck_after_ms), .doc = "A shard worker (or the lease coordinator) with work waiting that makes no "
     "progress for this long is stuck: `/healthz` answers 503 and `WATCHDOG=1` stops. Waiting for a sink that is "
     "slow or down does not count."},

    {.path = "capacity", .type = OB_CT_SECTION, .doc = "Budgets of DynamoDB capacity outboxd may consume."},
    {.path = "capacity.max_write_units_per_second", .type = OB_CT_NUMBER, .def = "0", .min = 0, .max = NO_MAX,
     CFG(capacity.max_write_units_per_second), .doc = "Write units per second for marking published; 0 = unlimited."},
    {.path = "capacity.sweep_read_units_per_second", .type = OB_CT_NUMBER, .def = "50", .min = 0, .max = NO_MAX,
     CFG(capacity.sweep_read_units_per_second), .doc = "Read units per second for the sweeper; 0 = unlimited."},

    {.path = "sweep", .type = OB_CT_SECTION, .doc = "The sweeper, which delivers items the stream no longer has."},
    {.path = "sweep.interval", .type = OB_CT_DURATION, .def = "10m", .min = 0, .max = NO_MAX,
     CFG(sweep.interval_ms), .doc = "Time between periodic sweeps; 0 = no periodic sweep."},
    {.path = "sweep.older_than", .type = OB_CT_DURATION, .def = "5m", .min = 0, .max = NO_MAX,
     CFG(sweep.older_than_ms), .doc = "Only items created longer ago than this are swept."},

    {.path = "cloudevents", .type = OB_CT_SECTION, .doc = "The CloudEvents envelope."},
    {.path = "cloudevents.source", .type = OB_CT_TEMPLATE, .flags = OB_CK_RELOAD, .def = "/{table}/{aggregateType}",
     CFG(cloudevents.source), .doc = "Template of the `source` attribute."},

    {.path = "sinks", .type = OB_CT_SINKS, .flags = OB_CK_REQUIRED | OB_CK_RELOAD,
     .doc = "Where messages go: a list of sinks, each with a unique `name` and a `type`."},
    {.path = "routes", .type = OB_CT_ROUTES, .flags = OB_CK_RELOAD,
     .doc = "Which sink a message goes to: the first matching route wins; no match goes to `default_sink`."},
    {.path = "default_sink", .type = OB_CT_STRING, .flags = OB_CK_RELOAD, CFG(default_sink), .example = "events",
     .def_doc = "the only sink, when there is exactly one", .doc = "Sink of messages no route matches."},

    {.path = "metrics", .type = OB_CT_SECTION, .doc = "The HTTP server of `/metrics`, `/healthz` and `/readyz`."},
    {.path = "metrics.listen", .type = OB_CT_STRING, CFG(metrics.listen), .example = "127.0.0.1:9464",
     .def_doc = "none: no metrics server", .doc = "Address to listen on, `host:port`."},

    {.path = "log", .type = OB_CT_SECTION, .doc = "Logging to standard error."},
    {.path = "log.level", .type = OB_CT_ENUM, .flags = OB_CK_RELOAD, .def = "info", .values = log_levels,
     CFG(log.level), .doc = "Least severe level logged."},
    {.path = "log.format", .type = OB_CT_ENUM, .flags = OB_CK_RELOAD, .def = "text", .values = log_formats,
     CFG(log.format), .doc = "One line per event, as text or as a JSON object."},
};
const size_t ob_config_n_keys = sizeof ob_config_keys / sizeof ob_config_keys[0];

const struct ob_config_key ob_sink_common_keys[] = {
    {.path = "name", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, .example = "events",
     .doc = "Unique name of the sink, `[A-Za-z0-9_.-]+`."},
    {.path = "type", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED,
     .doc = "Kind of broker: one of the types below."},
    {.path = "tls_verify", .type = OB_CT_BOOL, .def = "true",
     .doc = "Verify the broker's TLS certificate; turning it off must be explicit."},
    {.path = "timeout", .type = OB_CT_DURATION, .def = "10s", .min = 1, .max = NO_MAX,
     .doc = "Time a publish may take before it counts as a retriable failure."},
};
const size_t ob_sink_n_common = sizeof ob_sink_common_keys / sizeof ob_sink_common_keys[0];

const struct ob_config_key *ob_sink_key(const struct ob_sink_schema *schema, size_t i)
{
    return i < ob_sink_n_common ? &ob_sink_common_keys[i] : &schema->keys[i - ob_sink_n_common];
}

size_t ob_sink_n_keys(const struct ob_sink_schema *schema)
{
    return ob_sink_n_common + schema->n_keys;
}

const struct ob_sink_schema *ob_sink_catalogue_find(const struct ob_sink_catalogue *catalogue, const char *type)
{
    for (size_t i = 0; i < catalogue->n; i++)
        if (strcmp(catalogue->types[i]->type, type) == 0)
            return catalogue->types[i];
    return NULL;
}

#define DEST_KEY(p, d) {.path = p, .type = OB_CT_TEMPLATE, .flags = OB_CK_DEST, ROUTE(destination), .doc = d}

const struct ob_config_key ob_route_keys[] = {
    {.path = "match", .type = OB_CT_SECTION, .flags = OB_CK_REQUIRED,
     .doc = "What the route takes: every given glob (`*`, `?`) must match."},
    {.path = "match.messageType", .type = OB_CT_STRING, ROUTE(match_message_type), .example = "Order*",
     .doc = "Glob on the message type."},
    {.path = "match.aggregateType", .type = OB_CT_STRING, ROUTE(match_aggregate_type), .example = "Order",
     .doc = "Glob on the aggregate type."},
    {.path = "sink", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, ROUTE(sink), .example = "events",
     .doc = "Name of a defined sink."},
    DEST_KEY("destination", "Destination template, instead of the sink's own (give this or `topic`, not both)."),
    DEST_KEY("topic", "Same as `destination`."),
};
const size_t ob_route_n_keys = sizeof ob_route_keys / sizeof ob_route_keys[0];

/* Each type's name in an error ("must be a string") and in the reference's
 * type column; a URL's schemes and an enum's values follow it. */
static const struct {
    const char *prose, *doc;
} type_names[] = {
    [OB_CT_STRING] = {"a string", "string"},
    [OB_CT_URL] = {"a URL starting with ", "URL:"},
    [OB_CT_TEMPLATE] = {"a template string", "template"},
    [OB_CT_BOOL] = {"true or false", "bool"},
    [OB_CT_INT] = {"an integer", "integer"},
    [OB_CT_NUMBER] = {"a number", "number"},
    [OB_CT_DURATION] = {"a duration like 250ms, 5s, 10m or 7d", "duration"},
    [OB_CT_ENUM] = {"one of ", ""},
    [OB_CT_MAP] = {"a mapping of strings", "map of strings"},
    [OB_CT_SECTION] = {"a mapping", "mapping"},
    [OB_CT_SINKS] = {"a list of sinks", "list of sinks"},
    [OB_CT_ROUTES] = {"a list of routes", "list of routes"},
};

void ob_config_put_type(struct ob_buf *b, const struct ob_config_key *k, bool doc)
{
    ob_buf_puts(b, doc ? type_names[k->type].doc : type_names[k->type].prose);
    if (k->type != OB_CT_URL && k->type != OB_CT_ENUM)
        return;
    for (size_t i = 0; k->values[i]; i++) {
        if (doc && k->type == OB_CT_URL)
            ob_buf_printf(b, " `%s`", k->values[i]);
        else if (doc)
            ob_buf_printf(b, "%s`%s`", i ? ", " : "", k->values[i]);
        else
            ob_buf_printf(b, "%s%s", !i ? "" : k->values[i + 1] ? ", " : " or ", k->values[i]);
    }
}
