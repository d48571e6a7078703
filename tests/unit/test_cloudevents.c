/* The CloudEvents mapping of SPEC §4 and its structured-mode JSON
 * (tests/data/cloudevents/), destination templates (tests/data/template/),
 * route globs (tests/data/route/) and route selection. Run from the
 * repository root. */
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/buf.h"
#include "core/cloudevents.h"
#include "core/config.h"
#include "core/route.h"
#include "core/template.h"

static void set_payload(struct ob_message *m, const void *bytes, size_t len)
{
    free(m->payload);
    m->payload = ob_xcalloc(len + 1, 1);
    memcpy(m->payload, bytes, len);
    m->payload_len = len;
}

static void add_header(struct ob_message *m, const char *name, const char *value)
{
    m->headers = ob_xrealloc(m->headers, (m->n_headers + 1) * sizeof *m->headers);
    m->headers[m->n_headers++] = (struct ob_header){ob_xstrdup(name), ob_xstrdup(value)};
}

/* Every attribute set, a JSON payload; free with ob_message_free. */
static struct ob_message order_placed(void)
{
    struct ob_message m = {
        .pk = ob_xstrdup("order-1"),
        .sk = ob_xstrdup("m-1"),
        .message_type = ob_xstrdup("OrderPlaced"),
        .aggregate_id = ob_xstrdup("42"),
        .aggregate_type = ob_xstrdup("Order"),
        .correlation_id = ob_xstrdup("c-1"),
        .causation_id = ob_xstrdup("c-0"),
        .created_at = ob_xstrdup("2025-11-25T22:05:12.123Z"),
    };
    const char payload[] = "{\"a\": 1, \"b\": [1.10, \"x y\"]}";
    set_payload(&m, payload, sizeof payload - 1);
    add_header(&m, "Content-Type", "application/json");
    add_header(&m, "tenant", "acme");
    return m;
}

/* Only what the table requires: pk, sk, payload. */
static struct ob_message bare(void)
{
    struct ob_message m = {.pk = ob_xstrdup("p"), .sk = ob_xstrdup("s")};
    set_payload(&m, "{}", 2);
    return m;
}

/* The row's message: `message:` order_placed or bare, its payload
 * replaced by `payload:` and each `header: name: value` added. */
static struct ob_message message_of(const struct ob_test_row *row)
{
    const char *base = ob_test_row_get(row, "message");
    struct ob_message m = base && !strcmp(base, "order_placed") ? order_placed() : bare();
    if (!base || (strcmp(base, "order_placed") && strcmp(base, "bare")))
        ob_test_row_fail(row, "message: is order_placed or bare, not %s", base ? base : "missing");
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        if (!strcmp(f->key, "payload")) {
            set_payload(&m, f->value, f->len);
        } else if (!strcmp(f->key, "header")) {
            size_t name_len = strcspn(f->value, ":");
            char *name = ob_xstrndup(f->value, name_len);
            const char *value = f->value + name_len + (f->value[name_len] == ':');
            add_header(&m, name, value + (*value == ' '));
            free(name);
        }
    }
    return m;
}

static void collect_attribute(const char *name, const char *value, void *ctx)
{
    ob_buf_printf(ctx, "%s=%s;", name, value);
}

/* Compares got with every expected value of key in row (exact, or as a
 * part got holds or lacks). */
static void check_text(const struct ob_test_row *row, const char *key, const char *got)
{
    size_t key_len = strlen(key);
    for (size_t i = 0; i < row->n_fields; i++) {
        const struct ob_test_field *f = &row->fields[i];
        if (strncmp(f->key, key, key_len))
            continue;
        const char *how = f->key + key_len;
        bool ok = !strcmp(how, "")        ? !strcmp(got, f->value)
                  : !strcmp(how, "-has")  ? strstr(got, f->value) != NULL
                  : !strcmp(how, "-lacks") ? !strstr(got, f->value)
                                           : true;
        if (!ok)
            ob_test_row_fail(row, "%s:\n  got      \"%s\"\n  expected \"%s\"", f->key, got, f->value);
    }
}

static void check_event(const struct ob_test_row *row)
{
    struct ob_message m = message_of(row);
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, ob_test_row_get(row, "source-template"), "outbox");
    struct ob_buf attributes = {0}, structured = {0};
    ob_ce_each_attribute(&ce, collect_attribute, &attributes);
    ob_ce_structured(&structured, &ce, &m);
    check_text(row, "attributes", ob_buf_cstr(&attributes));
    check_text(row, "datacontenttype", ce.datacontenttype);
    check_text(row, "structured", ob_buf_cstr(&structured));
    ob_buf_free(&attributes);
    ob_buf_free(&structured);
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_messages_map_to_the_events_of_every_case_in_events_cases)
{
    static const char *const keys[] = {"message",        "payload",         "header",     "source-template",
                                       "attributes",     "attributes-has",  "datacontenttype", "structured",
                                       "structured-has", "structured-lacks", NULL};
    ob_test_each_row("tests/data/cloudevents/events.cases", keys, check_event);
}

static void check_expansion(const struct ob_test_row *row)
{
    struct ob_message m = message_of(row);
    struct ob_buf out = {0};
    ob_template_expand(&out, ob_test_row_get(row, "template"), &m, "outbox");
    check_text(row, "expect", ob_buf_cstr(&out));
    ob_buf_free(&out);
    ob_message_free(&m);
}

TEST(template_expands_as_every_case_in_expand_cases)
{
    static const char *const keys[] = {"message", "template", "expect", NULL};
    ob_test_each_row("tests/data/template/expand.cases", keys, check_expansion);
}

static void check_template_check(const struct ob_test_row *row)
{
    char bad[32] = "";
    const char *size = ob_test_row_get(row, "bad-size");
    size_t bad_len = size ? (size_t)atoi(size) : sizeof bad;
    bool accepted = ob_template_check(ob_test_row_get(row, "template"), bad, bad_len);
    const char *want_bad = ob_test_row_get(row, "bad"), *want_accepted = ob_test_row_get(row, "accepted");
    if (!want_bad == !(want_accepted && !strcmp(want_accepted, "yes")))
        ob_test_row_fail(row, "say accepted: yes or bad:");
    else if (accepted != !want_bad)
        ob_test_row_fail(row, "%s", accepted ? "accepted" : "refused");
    else if (want_bad)
        check_text(row, "bad", bad);
}

TEST(template_check_accepts_or_names_the_fault_as_every_case_in_check_cases)
{
    static const char *const keys[] = {"template", "accepted", "bad", "bad-size", NULL};
    ob_test_each_row("tests/data/template/check.cases", keys, check_template_check);
}

static void check_glob(const struct ob_test_row *row)
{
    bool matched = ob_glob_match(ob_test_row_get(row, "glob"), ob_test_row_get(row, "subject"));
    check_text(row, "matches", matched ? "yes" : "no");
}

TEST(glob_matches_as_every_case_in_glob_cases)
{
    static const char *const keys[] = {"glob", "subject", "matches", NULL};
    ob_test_each_row("tests/data/route/glob.cases", keys, check_glob);
}

TEST(glob_pathological_pattern_is_fast)
{
    char s[100001];
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool matched = ob_glob_match("a*a*a*a*a*a*a*a*a*a*b", s);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(!matched);
    CHECK(ob_glob_match("a*a*a*a*a*a*a*a*a*a*a", s));
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(seconds < 0.5);
}

/* Route selection: sinks events (0), orders (1), audit (2); two routes;
 * a message of message_type and aggregate_type (NULL: absent) goes to
 * want_sink with want_destination. */
static const struct route_case {
    const char *why;
    struct ob_config_route routes[2];
    char *default_sink;
    char *message_type, *aggregate_type;
    size_t want_sink;
    const char *want_destination;
} route_cases[] = {
    {"the first matching route wins, with its destination (the second matches everything)",
     {{.match_message_type = "Order*", .match_aggregate_type = "Order", .sink_index = 1,
       .destination = "orders.{messageType}"},
      {.sink_index = 2}},
     "events", "OrderPlaced", "Order", 1, "orders.{messageType}"},
    {"every glob a route gives must match",
     {{.match_message_type = "Order*", .match_aggregate_type = "Order", .sink_index = 1,
       .destination = "orders.{messageType}"},
      {.match_aggregate_type = "Aud?t", .sink_index = 2}},
     "events", "OrderPlaced", "Customer", 0, NULL},
    {"without a match the default sink takes the message",
     {{.match_message_type = "Order*", .match_aggregate_type = "Order", .sink_index = 1},
      {.match_aggregate_type = "Aud?t", .sink_index = 2}},
     "audit", NULL, NULL, 2, NULL},
    {"a glob on a missing attribute matches it as empty",
     {{.match_message_type = "?*", .sink_index = 1}, {.match_message_type = "*", .sink_index = 2}},
     "events", NULL, NULL, 2, NULL},
    {"? in a glob on aggregateType matches one character",
     {{.match_message_type = "Order*", .match_aggregate_type = "Order", .sink_index = 1},
      {.match_aggregate_type = "Aud?t", .sink_index = 2}},
     "events", NULL, "Audit", 2, NULL},
};

TEST(route_selects_the_sink_and_destination_of_every_route_case)
{
    for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++) {
        const struct route_case *c = &route_cases[i];
        struct ob_config_sink sinks[3] = {{.name = "events"}, {.name = "orders"}, {.name = "audit"}};
        struct ob_config_route routes[2] = {c->routes[0], c->routes[1]};
        struct ob_config cfg = {.sinks = sinks, .n_sinks = 3, .routes = routes, .n_routes = 2,
                                .default_sink = c->default_sink};
        struct ob_message m = {.message_type = c->message_type, .aggregate_type = c->aggregate_type};
        size_t sink = 99;
        const char *destination = "unset";
        ob_route_select(&cfg, &m, &sink, &destination);
        if (sink != c->want_sink || (destination && c->want_destination ? strcmp(destination, c->want_destination)
                                                                         : destination != c->want_destination))
            ob_test_fail(__FILE__, __LINE__, "%s: sink %zu, destination %s", c->why, sink,
                         destination ? destination : "(none)");
    }
}
