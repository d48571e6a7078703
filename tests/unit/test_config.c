/* The configuration loader: values, defaults, environment expansion, the
 * exact diagnostics of every bad file in tests/data/config/bad, and the
 * generated documents. Run from the repository root. */
#include "test.h"

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "sinks/sink.h"

#define DATA "tests/data/config/"

static void print_diag(const struct ob_config_diag *diag)
{
    for (size_t i = 0; i < diag->n; i++)
        printf("  | %s\n", diag->lines[i]);
}

static struct ob_config *load_ok(const char *path)
{
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    if (ob_config_load(path, &ob_sinks, &cfg, &diag) != OB_OK)
        print_diag(&diag);
    ob_config_diag_free(&diag);
    return cfg;
}

static struct ob_config *load_text(const char *yaml, struct ob_config_diag *diag)
{
    struct ob_config *cfg = NULL;
    ob_config_load_string("test.yaml", yaml, strlen(yaml), &ob_sinks, &cfg, diag);
    return cfg;
}

TEST(config_full_file_sets_every_key)
{
    struct ob_config *cfg = load_ok(DATA "full.yaml");
    CHECK(cfg);
    CHECK_STR(cfg->path, DATA "full.yaml");
    CHECK_STR(cfg->aws.region, "eu-west-1");
    CHECK_STR(cfg->aws.endpoint, "http://127.0.0.1:8000");
    CHECK_STR(cfg->aws.streams_endpoint, "http://127.0.0.1:8001");
    CHECK_STR(cfg->aws.access_key_id, "AKIDs3cr3t");
    CHECK_STR(cfg->aws.secret_access_key, "s3cr3t-access-key");
    CHECK_STR(cfg->aws.session_token, "s3cr3t-session");
    CHECK(!cfg->aws.profile);
    CHECK_INT(cfg->aws.max_attempts, 5);
    CHECK_INT(cfg->aws.retry_base_delay_ms, 50);
    CHECK_INT(cfg->aws.retry_max_delay_ms, 2000);
    CHECK_INT(cfg->aws.connect_timeout_ms, 1000);
    CHECK_INT(cfg->aws.request_timeout_ms, 15000);
    CHECK_INT(cfg->aws.max_connections, 32);
    CHECK_STR(cfg->table.name, "orders-outbox");
    CHECK(cfg->table.create_if_not_exists);
    CHECK_INT(cfg->table.ttl_seconds, 86400);
    CHECK_INT(cfg->table.billing_mode, OB_BILLING_PROVISIONED);
    CHECK_INT(cfg->table.read_capacity, 5);
    CHECK_INT(cfg->table.write_capacity, 10);
    CHECK_INT(cfg->stream.start_position, OB_START_LATEST);
    CHECK_INT(cfg->stream.poll_interval_ms, 500);
    CHECK_INT(cfg->stream.batch_size, 100);
    CHECK_STR(cfg->leases.table, "my-leases");
    CHECK_STR(cfg->leases.instance_id, "host-a");
    CHECK_INT(cfg->leases.duration_ms, 30000);
    CHECK_INT(cfg->relay.ordering, OB_ORDER_SHARD);
    CHECK_INT(cfg->relay.max_in_flight, 16);
    CHECK_INT(cfg->relay.max_attempts, 3);
    CHECK_INT(cfg->relay.backoff_initial_ms, 200);
    CHECK_INT(cfg->relay.backoff_max_ms, 60000);
    CHECK_INT(cfg->relay.on_failure, OB_ON_FAILURE_BLOCK);
    CHECK_STR(cfg->relay.dead_letter_sink, "dlq");
    CHECK_INT(cfg->relay.shutdown_timeout_ms, 45000);
    CHECK_INT(cfg->relay.stuck_after_ms, 90000);
    CHECK(cfg->capacity.max_write_units_per_second == 100.5);
    CHECK(cfg->capacity.sweep_read_units_per_second == 25.0);
    CHECK_INT(cfg->sweep.interval_ms, 3600000);
    CHECK_INT(cfg->sweep.older_than_ms, 7LL * 86400000);
    CHECK_STR(cfg->cloudevents.source, "/orders/{aggregateType}");
    CHECK_STR(cfg->default_sink, "events");
    CHECK_STR(cfg->metrics.listen, "127.0.0.1:9464");
    CHECK_INT(cfg->log.level, OB_SEV_DEBUG);
    CHECK_INT(cfg->log.format, OB_LOG_JSON);

    CHECK_INT(cfg->n_sinks, 3);
    const struct ob_config_sink *http = ob_config_find_sink(cfg, "events");
    CHECK(http);
    CHECK_STR(http->type, "http");
    CHECK(!ob_sink_opt_bool(http, "tls_verify"));
    CHECK_INT(ob_sink_opt_duration_ms(http, "timeout"), 5000);
    CHECK_STR(ob_sink_opt_str(http, "url"), "https://hooks.example.org/outbox");
    CHECK_STR(ob_sink_opt_str(http, "mode"), "structured");
    const struct ob_config_map *headers = ob_sink_opt_map(http, "headers");
    CHECK_INT(headers->n, 2);
    CHECK_STR(headers->pairs[0].key, "X-Source");
    CHECK_STR(headers->pairs[0].value, "outboxd");
    CHECK_STR(headers->pairs[1].key, "X-Env");
    CHECK_STR(ob_sink_opt_str(http, "bearer_token"), "s3cr3t-bearer");
    CHECK_STR(ob_sink_opt_str(http, "basic_username"), "relay");
    CHECK_STR(ob_sink_opt_str(http, "basic_password"), "s3cr3t-basic");
    CHECK_STR(ob_sink_opt_str(http, "webhook_secret"), "whsec_czNjcjN0LXdlYmhvb2s=");
    CHECK(!ob_sink_opt_bool(http, "idempotency_key"));
    CHECK_INT(ob_sink_opt_duration_ms(http, "connect_timeout"), 2000);
    CHECK_STR(ob_sink_opt_str(http, "ca_file"), "/etc/ssl/ca.pem");
    CHECK(ob_sink_opt_is_set(http, "ca_file"));

    const struct ob_config_sink *dlq = ob_config_find_sink(cfg, "dlq");
    CHECK_STR(dlq->type, "file");
    CHECK_STR(ob_sink_opt_str(dlq, "path"), "/var/lib/outboxd/dlq.jsonl");
    CHECK_STR(ob_sink_opt_str(dlq, "fsync"), "always");
    CHECK_STR(ob_config_find_sink(cfg, "console")->type, "stdout");

    CHECK_INT(cfg->n_routes, 3);
    CHECK_STR(cfg->routes[0].match_message_type, "Order*");
    CHECK_STR(cfg->routes[0].match_aggregate_type, "Order");
    CHECK_STR(cfg->routes[0].sink, "console");
    CHECK_INT(cfg->routes[0].sink_index, 2);
    CHECK_STR(cfg->routes[0].destination, "orders.{messageType}");
    CHECK(!cfg->routes[1].match_message_type);
    CHECK_STR(cfg->routes[1].match_aggregate_type, "Payment");
    CHECK(!cfg->routes[1].destination);
    CHECK_STR(cfg->routes[2].destination, "audit");
    CHECK_INT(cfg->routes[2].line, 77);
    ob_config_free(cfg);
}

TEST(config_minimal_file_gets_defaults)
{
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_text("table:\n  name: outbox\nsinks:\n  - name: out\n    type: stdout\n", &diag);
    print_diag(&diag);
    CHECK(cfg);
    CHECK(!cfg->aws.region); /* resolved later, through the region chain */
    CHECK(!cfg->aws.endpoint);
    CHECK(!cfg->aws.streams_endpoint);
    CHECK(!cfg->aws.access_key_id);
    CHECK_INT(cfg->aws.max_attempts, 8);
    CHECK_INT(cfg->aws.retry_base_delay_ms, 25);
    CHECK_INT(cfg->aws.retry_max_delay_ms, 20000);
    CHECK_INT(cfg->aws.connect_timeout_ms, 3000);
    CHECK_INT(cfg->aws.request_timeout_ms, 10000);
    CHECK_INT(cfg->aws.max_connections, 64);
    CHECK(!cfg->table.create_if_not_exists);
    CHECK_INT(cfg->table.ttl_seconds, 604800);
    CHECK_INT(cfg->table.billing_mode, OB_BILLING_PAY_PER_REQUEST);
    CHECK_INT(cfg->table.read_capacity, 0);
    CHECK_INT(cfg->stream.start_position, OB_START_TRIM_HORIZON);
    CHECK_INT(cfg->stream.poll_interval_ms, 250);
    CHECK_INT(cfg->stream.batch_size, 1000);
    CHECK_STR(cfg->leases.table, "outbox-leases");
    CHECK(!cfg->leases.instance_id);
    CHECK_INT(cfg->leases.duration_ms, 10000);
    CHECK_INT(cfg->relay.ordering, OB_ORDER_KEY);
    CHECK_INT(cfg->relay.max_in_flight, 64);
    CHECK_INT(cfg->relay.max_attempts, 10);
    CHECK_INT(cfg->relay.backoff_initial_ms, 100);
    CHECK_INT(cfg->relay.backoff_max_ms, 30000);
    CHECK_INT(cfg->relay.on_failure, OB_ON_FAILURE_DEAD_LETTER);
    CHECK(!cfg->relay.dead_letter_sink);
    CHECK_INT(cfg->relay.shutdown_timeout_ms, 30000);
    CHECK_INT(cfg->relay.stuck_after_ms, 120000);
    CHECK(cfg->capacity.max_write_units_per_second == 0.0);
    CHECK(cfg->capacity.sweep_read_units_per_second == 50.0);
    CHECK_INT(cfg->sweep.interval_ms, 600000);
    CHECK_INT(cfg->sweep.older_than_ms, 300000);
    CHECK_STR(cfg->cloudevents.source, "/{table}/{aggregateType}");
    CHECK_STR(cfg->default_sink, "out");
    CHECK_INT(cfg->n_routes, 0);
    CHECK(!cfg->metrics.listen);
    CHECK_INT(cfg->log.level, OB_SEV_INFO);
    CHECK_INT(cfg->log.format, OB_LOG_TEXT);
    CHECK_INT(cfg->n_sinks, 1);
    CHECK(ob_sink_opt_bool(&cfg->sinks[0], "tls_verify"));
    CHECK_INT(ob_sink_opt_duration_ms(&cfg->sinks[0], "timeout"), 10000);
    CHECK(!ob_sink_opt_is_set(&cfg->sinks[0], "timeout"));
    ob_config_free(cfg);
}

/* The environment is read when the region is resolved, at run time
 * (ob_aws_region_resolve), not baked into the loaded config. */
TEST(config_region_is_only_what_the_file_says)
{
    setenv("AWS_REGION", "ap-south-1", 1);
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_text("table: {name: t}\nsinks: [{name: s, type: stdout}]\n", &diag);
    unsetenv("AWS_REGION");
    CHECK(cfg);
    CHECK(!cfg->aws.region);
    ob_config_free(cfg);
}

TEST(config_every_sink_type_has_working_defaults)
{
    struct ob_config *cfg = load_ok(DATA "sinks_minimal.yaml");
    CHECK(cfg);
    CHECK_INT(cfg->n_sinks, 3);
    CHECK_STR(ob_sink_opt_str(ob_config_find_sink(cfg, "b"), "fsync"), "batch");
    const struct ob_config_sink *http = ob_config_find_sink(cfg, "c");
    CHECK_STR(ob_sink_opt_str(http, "mode"), "binary");
    CHECK(ob_sink_opt_bool(http, "idempotency_key"));
    CHECK_INT(ob_sink_opt_duration_ms(http, "connect_timeout"), 3000);
    CHECK(!ob_sink_opt_str(http, "bearer_token"));
    CHECK_INT(ob_sink_opt_map(http, "headers")->n, 0);
    CHECK(!ob_sink_opt_str(http, "no_such_key"));
    ob_config_free(cfg);
}

TEST(config_expands_environment_variables)
{
    setenv("OB_TEST_TABLE", "from-env", 1);
    setenv("OB_TEST_EMPTY", "", 1);
    unsetenv("OB_TEST_UNSET");
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_text("table:\n"
                                      "  name: ${OB_TEST_TABLE}\n"
                                      "leases:\n"
                                      "  table: pre-${OB_TEST_UNSET:-fallback}-${OB_TEST_EMPTY:-empty}\n"
                                      "  instance_id: \"$${OB_TEST_TABLE}$$ and $5 ${OB_TEST_EMPTY}\"\n"
                                      "stream:\n"
                                      "  poll_interval: ${OB_TEST_UNSET:-2s}\n"
                                      "sinks:\n"
                                      "  - name: s\n"
                                      "    type: http\n"
                                      "    url: http://x/\n"
                                      "    headers: { X-T: \"${OB_TEST_TABLE}\" }\n"
                                      "    bearer_token: ${OB_TEST_UNSET:-}\n",
                                      &diag);
    print_diag(&diag);
    CHECK(cfg);
    CHECK_STR(cfg->table.name, "from-env");
    CHECK_STR(cfg->leases.table, "pre-fallback-empty");
    CHECK_STR(cfg->leases.instance_id, "${OB_TEST_TABLE}$ and $5 ");
    CHECK_INT(cfg->stream.poll_interval_ms, 2000);
    CHECK_STR(ob_sink_opt_map(&cfg->sinks[0], "headers")->pairs[0].value, "from-env");
    CHECK(!ob_sink_opt_str(&cfg->sinks[0], "bearer_token"));
    ob_config_free(cfg);
}

TEST(config_unset_environment_variable_is_an_error_at_its_value)
{
    unsetenv("OB_TEST_UNSET");
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_text("table:\n  name: x${OB_TEST_UNSET}\nsinks: [{name: s, type: stdout}]\n", &diag);
    CHECK(!cfg);
    CHECK_INT(diag.n, 1);
    CHECK_STR(diag.lines[0], "test.yaml:2:9: error: environment variable 'OB_TEST_UNSET' used by 'table.name' is not "
                             "set (write ${OB_TEST_UNSET:-default} to give a default)");
    ob_config_diag_free(&diag);
}

TEST(config_unreadable_file_is_one_error)
{
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    CHECK_INT(ob_config_load(DATA "does-not-exist.yaml", &ob_sinks, &cfg, &diag), OB_ERR_CONFIG);
    CHECK(!cfg);
    CHECK_INT(diag.n, 1);
    CHECK_STR(diag.lines[0], DATA "does-not-exist.yaml: error: cannot read: No such file or directory");
    ob_config_diag_free(&diag);
}

TEST(config_parses_durations)
{
    static const struct {
        const char *text;
        bool ok;
        int64_t ms;
    } cases[] = {
        {"0", true, 0},          {"250ms", true, 250},      {"5s", true, 5000},   {"10m", true, 600000},
        {"2h", true, 7200000},   {"7d", true, 604800000},   {"0s", true, 0},      {"5", false, 0},
        {"", false, 0},          {"-5s", false, 0},         {"1.5s", false, 0},   {"5 s", false, 0},
        {"5S", false, 0},        {"1h30m", false, 0},       {"fast", false, 0},   {"s", false, 0},
        {"99999999999999999999ms", false, 0},               {"9999999999999999d", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = !cases[i].ok;
        int64_t ms = ob_parse_duration_ms(cases[i].text, &ok);
        if (ok != cases[i].ok || ms != cases[i].ms)
            ob_test_fail(__FILE__, __LINE__, "'%s': ok=%d ms=%lld", cases[i].text, ok, (long long)ms);
    }
}

/* A catalogue of two made-up sink types: what the loader knows of sinks
 * is only what a catalogue tells it. */
static const struct ob_config_key low_high_keys[] = {
    {.path = "low", .type = OB_CT_INT, .def = "1", .min = 0, .max = 100, .doc = "Lower bound."},
    {.path = "high", .type = OB_CT_INT, .def = "10", .min = 0, .max = 100, .doc = "Upper bound."},
};

static void low_high_check(const struct ob_config_sink *sink, struct ob_sink_check *c)
{
    if (ob_sink_opt_int(sink, "low") > ob_sink_opt_int(sink, "high"))
        ob_sink_check_error(c, ob_sink_check_value_at(c, "low"), "'low' of %s must not be above 'high'",
                            ob_sink_check_owner(c));
    if (ob_sink_check_given(c, "low") && !ob_sink_check_given(c, "high"))
        ob_sink_check_error(c, (struct ob_config_pos){0}, "missing required key 'high' in %s (low is set)",
                            ob_sink_check_owner(c));
}

static const struct ob_sink_schema low_high_sink = {
    .type = "lowhigh", .doc = "Bounds.", .keys = low_high_keys, .n_keys = 2, .check = low_high_check,
};
static const struct ob_config_key plain_keys[] = {
    {.path = "where", .type = OB_CT_STRING, .flags = OB_CK_REQUIRED, .doc = "Where to."},
};
static const struct ob_sink_schema plain_sink = {.type = "plain", .doc = "Plain.", .keys = plain_keys, .n_keys = 1};
static const struct ob_sink_schema *const made_up_types[] = {&low_high_sink, &plain_sink};
static const struct ob_sink_catalogue made_up = {.types = made_up_types, .n = 2};

static struct ob_config *load_made_up(const char *sinks, struct ob_config_diag *diag)
{
    struct ob_buf yaml = {0};
    ob_buf_printf(&yaml, "table: { name: t }\nsinks:\n%s", sinks);
    struct ob_config *cfg = NULL;
    ob_config_load_string("test.yaml", ob_buf_cstr(&yaml), yaml.len, &made_up, &cfg, diag);
    ob_buf_free(&yaml);
    return cfg;
}

TEST(config_sink_keys_and_defaults_come_from_the_catalogue)
{
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_made_up("  - { name: a, type: lowhigh, high: 50 }\n  - { name: b, type: plain, where: x }\n"
                                         "default_sink: a\n", &diag);
    print_diag(&diag);
    CHECK(cfg);
    CHECK_STR(cfg->sinks[0].type, "lowhigh");
    CHECK_INT(ob_sink_opt_int(&cfg->sinks[0], "low"), 1);
    CHECK_INT(ob_sink_opt_int(&cfg->sinks[0], "high"), 50);
    CHECK_INT(ob_sink_opt_duration_ms(&cfg->sinks[0], "timeout"), 10000);
    CHECK_STR(ob_sink_opt_str(&cfg->sinks[1], "where"), "x");
    CHECK(ob_sink_opt_bool(&cfg->sinks[1], "tls_verify"));
    ob_config_free(cfg);
}

/* Loading these sinks with the made-up catalogue fails with exactly these
 * errors, a line each. */
static void expect_made_up_errors(int line, const char *sinks, const char *expected)
{
    struct ob_config_diag diag = {0};
    struct ob_config *cfg = load_made_up(sinks, &diag);
    struct ob_buf got = {0};
    for (size_t i = 0; i < diag.n; i++)
        ob_buf_printf(&got, "%s\n", diag.lines[i]);
    if (cfg || strcmp(ob_buf_cstr(&got), expected) != 0)
        ob_test_fail(__FILE__, line, "%s\n--- expected\n%s--- got\n%s", cfg ? "loaded" : "not loaded", expected,
                     ob_buf_cstr(&got));
    ob_buf_free(&got);
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
}

TEST(config_sink_type_check_reports_where_it_says_with_the_sink_named)
{
    expect_made_up_errors(__LINE__,
                          "  - name: a\n    type: lowhigh\n    low: 20\n    high: 5\n"
                          "  - name: b\n    type: lowhigh\n    low: 0\ndefault_sink: a\n",
                          "test.yaml:5:10: error: 'low' of lowhigh sink 'a' must not be above 'high'\n"
                          "test.yaml:7:5: error: missing required key 'high' in lowhigh sink 'b' (low is set)\n");
}

TEST(config_sink_type_outside_the_catalogue_is_an_error_that_lists_the_catalogue)
{
    expect_made_up_errors(__LINE__, "  - name: a\n    type: http\n",
                          "test.yaml:4:11: error: unknown sink type 'http' in sink 'a' (this build has: lowhigh, plain)\n");
}

TEST(config_key_of_another_sink_type_is_unknown_and_names_that_type)
{
    expect_made_up_errors(__LINE__, "  - { name: a, type: plain, where: x, high: 3 }\n",
                          "test.yaml:3:39: error: unknown key 'high' in plain sink 'a' (it is a key of lowhigh sinks; "
                          "expected one of: name, type, tls_verify, timeout, where)\n");
}

/* Each bad/NAME.yaml is loaded and its diagnostics compared line for line
 * with bad/NAME.expect; every mismatching case is reported. */
TEST(config_bad_files_give_exactly_the_expected_errors)
{
    size_t n;
    char **names = ob_test_list_files(DATA "bad", ".yaml", &n);
    for (size_t i = 0; i < n; i++) {
        struct ob_buf yaml = {0}, expect_path = {0}, got = {0};
        ob_buf_printf(&yaml, DATA "bad/%s.yaml", names[i]);
        ob_buf_printf(&expect_path, DATA "bad/%s.expect", names[i]);
        char *expect = ob_test_read_file(ob_buf_cstr(&expect_path), NULL);
        struct ob_config *cfg = NULL;
        struct ob_config_diag diag = {0};
        enum ob_err rc = ob_config_load(ob_buf_cstr(&yaml), &ob_sinks, &cfg, &diag);
        for (size_t j = 0; j < diag.n; j++)
            ob_buf_printf(&got, "%s\n", diag.lines[j]);
        if (!expect)
            ob_test_fail(__FILE__, __LINE__, "%s: no .expect file", names[i]);
        else if (rc != OB_ERR_CONFIG || cfg || strcmp(expect, ob_buf_cstr(&got)) != 0)
            ob_test_fail(__FILE__, __LINE__, "%s: rc %d\n--- expected\n%s--- got\n%s", names[i], (int)rc, expect,
                         ob_buf_cstr(&got));
        ob_config_free(cfg);
        ob_config_diag_free(&diag);
        free(expect);
        ob_buf_free(&yaml);
        ob_buf_free(&expect_path);
        ob_buf_free(&got);
    }
    ob_test_names_free(names, n);
    CHECK(n >= 30);
}

TEST(config_summary_never_shows_secrets)
{
    struct ob_config *cfg = load_ok(DATA "full.yaml");
    CHECK(cfg);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f);
    ob_config_print_summary(cfg, f);
    fclose(f);
    ob_config_free(cfg);
    bool leaked = strstr(text, "s3cr3t") != NULL;
    bool shows_set = strstr(text, "bearer_token: (set)") != NULL;
    bool shows_dest = strstr(text, "path: /var/lib/outboxd/dlq.jsonl") != NULL;
    if (leaked)
        printf("%s", text);
    free(text);
    CHECK(!leaked);
    CHECK(shows_set);
    CHECK(shows_dest);
}

TEST(config_example_file_loads)
{
    struct ob_config *cfg = load_ok("config/outboxd.yaml.example");
    CHECK(cfg);
    CHECK_STR(cfg->table.name, "outbox");
    CHECK_INT(cfg->n_sinks, 1);
    ob_config_free(cfg);
}

/* Gives key k of cfg another value (any the field can hold: whether it is
 * valid is the loader's business). False for a key without a plain value
 * in a field of its own, which no comparison could see. */
static bool change_value(struct ob_config *cfg, const struct ob_config_key *k)
{
    char *field = (char *)cfg + k->offset;
    if (!k->size)
        return false;
    switch (k->type) {
    case OB_CT_STRING:
    case OB_CT_URL:
    case OB_CT_TEMPLATE: {
        char *old;
        memcpy(&old, field, sizeof old);
        struct ob_buf b = {0};
        ob_buf_printf(&b, "%s-changed", old ? old : "");
        free(old);
        char *neu = ob_buf_steal(&b);
        memcpy(field, &neu, sizeof neu);
        return true;
    }
    case OB_CT_BOOL:
        *(bool *)(void *)field = !*(bool *)(void *)field;
        return true;
    case OB_CT_INT:
    case OB_CT_DURATION:
    case OB_CT_ENUM:
        if (k->size == sizeof(int))
            *(int *)(void *)field ^= 1;
        else
            *(int64_t *)(void *)field ^= 1;
        return true;
    case OB_CT_NUMBER:
        *(double *)(void *)field += 1;
        return true;
    case OB_CT_MAP:
    case OB_CT_SECTION:
    case OB_CT_SINKS:
    case OB_CT_ROUTES:
        break;
    }
    return false;
}

/* Walks the schema, so a key added later is covered without a change here. */
TEST(config_restart_changes_name_each_changed_key_that_needs_a_restart_and_no_other)
{
    struct ob_config *running = load_ok(DATA "full.yaml");
    CHECK(running);
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        const struct ob_config_key *k = &ob_config_keys[i];
        if (k->type == OB_CT_SECTION)
            continue;
        struct ob_config *loaded = load_ok(DATA "full.yaml");
        CHECK(loaded);
        bool changed = change_value(loaded, k);
        const char *names[2] = {0};
        size_t n = ob_config_restart_changes(running, loaded, names, 2);
        ob_config_free(loaded);
        if (k->flags & OB_CK_RELOAD) {
            if (n != 0)
                ob_test_fail(__FILE__, __LINE__, "%s is applied on reload, yet changing it named %s", k->path,
                             names[0]);
        } else if (!changed) {
            ob_test_fail(__FILE__, __LINE__, "%s needs a restart but has no value a reload could compare", k->path);
        } else if (n != 1 || strcmp(names[0], k->path) != 0) {
            ob_test_fail(__FILE__, __LINE__, "changing %s alone named %zu keys, the first %s", k->path, n,
                         n ? names[0] : "(none)");
        }
    }
    ob_config_free(running);
}

static const char reload_base[] =
    "table:\n  name: outbox\n"
    "relay:\n  shutdown_timeout: 30s\n"
    "sinks:\n  - name: out\n    type: stdout\n";

TEST(config_restart_changes_name_nothing_when_only_reloadable_keys_change)
{
    struct ob_config_diag diag = {0};
    struct ob_config *running = load_text(reload_base, &diag);
    struct ob_config *loaded = load_text("table:\n  name: outbox\n"
                                         "relay:\n  shutdown_timeout: 30s\n  dead_letter_sink: dlq\n"
                                         "cloudevents:\n  source: /orders\n"
                                         "sinks:\n  - name: hook\n    type: http\n    url: http://127.0.0.1:1/\n"
                                         "  - name: dlq\n    type: file\n    path: /tmp/dlq.jsonl\n"
                                         "routes:\n  - match: { messageType: \"Order*\" }\n    sink: dlq\n"
                                         "default_sink: hook\n"
                                         "log:\n  level: debug\n  format: json\n",
                                         &diag);
    print_diag(&diag);
    CHECK(running);
    CHECK(loaded);
    const char *names[1] = {0};
    size_t n = ob_config_restart_changes(running, loaded, names, 1);
    ob_config_free(running);
    ob_config_free(loaded);
    if (n)
        printf("  named %s\n", names[0]);
    CHECK_INT(n, 0);
}

TEST(config_restart_changes_compare_values_not_their_spelling)
{
    struct ob_config_diag diag = {0};
    struct ob_config *running = load_text(reload_base, &diag);
    struct ob_config *loaded = load_text("table: { name: outbox, ttl_seconds: 604800 }\n"
                                         "leases:\n  table: outbox-leases\n"
                                         "relay:\n  shutdown_timeout: 30000ms\n"
                                         "sinks:\n  - name: out\n    type: stdout\n",
                                         &diag);
    print_diag(&diag);
    CHECK(running);
    CHECK(loaded);
    size_t n = ob_config_restart_changes(running, loaded, NULL, 0);
    ob_config_free(running);
    ob_config_free(loaded);
    CHECK_INT(n, 0);
}

static void check_generated(const char *path, void (*write)(FILE *, const struct ob_sink_catalogue *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f);
    write(f, &ob_sinks);
    fclose(f);
    char *committed = ob_test_read_file(path, NULL);
    bool same = committed && strcmp(committed, text) == 0;
    free(committed);
    free(text);
    if (!same)
        ob_test_fail(__FILE__, __LINE__, "%s differs from the schema; regenerate it with `make docs`",
                     path);
}

TEST(config_reference_doc_is_generated_from_the_schema)
{
    check_generated("docs/CONFIGURATION.md", ob_config_write_reference);
}

/* The page's date is the release's (`make docs` takes it from the Debian
 * changelog); all the rest comes from the schema. */
static char man_date[16];

static void write_man_of_committed_date(FILE *f, const struct ob_sink_catalogue *sinks)
{
    ob_config_write_man(f, sinks, man_date);
}

TEST(config_man_page_is_generated_from_the_schema)
{
    char *committed = ob_test_read_file("packaging/man/outboxd.yaml.5", NULL);
    const char *th = committed ? strstr(committed, "\n.TH OUTBOXD.YAML 5 ") : NULL;
    CHECK(th);
    if (th)
        sscanf(th, "\n.TH OUTBOXD.YAML 5 %15s", man_date);
    free(committed);
    check_generated("packaging/man/outboxd.yaml.5", write_man_of_committed_date);
}

TEST(config_example_is_generated_from_the_schema)
{
    check_generated("config/outboxd.yaml.example", ob_config_write_example);
    /* The top-level one the design card names: a link to it, nothing to keep in sync. */
    check_generated("outboxd.yaml.example", ob_config_write_example);
}
