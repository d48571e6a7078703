/* The CloudEvents mapping of SPEC §4, structured-mode JSON, destination
 * templates, globs and route selection. */
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

/* The structured JSON of m with the default source template. */
static char *structured(const struct ob_message *m)
{
    struct ob_ce ce;
    ob_ce_from_message(&ce, m, NULL, "outbox");
    struct ob_buf out = {0};
    ob_ce_structured(&out, &ce, m);
    ob_ce_free(&ce);
    return ob_buf_steal(&out);
}

static char *expand(const char *tmpl, const struct ob_message *m)
{
    struct ob_buf out = {0};
    ob_template_expand(&out, tmpl, m, "outbox");
    return ob_buf_steal(&out);
}

/* CHECK_STR on an allocated string, which is freed either way. */
#define CHECK_OWNED_STR(expr, want)                                                                  \
    do {                                                                                           \
        char *_s = (expr);                                                                         \
        const char *_w = (want);                                                                   \
        bool _ok = strcmp(_s, _w) == 0;                                                            \
        if (!_ok)                                                                                  \
            ob_test_fail(__FILE__, __LINE__, "%s:\n  got      \"%s\"\n  expected \"%s\"", #expr, _s, _w); \
        free(_s);                                                                                  \
        if (!_ok)                                                                                  \
            return;                                                                                \
    } while (0)

TEST(ce_maps_every_message_attribute)
{
    struct ob_message m = order_placed();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    CHECK_STR(ce.id, "m-1");
    CHECK_STR(ce.type, "OrderPlaced");
    CHECK_STR(ce.source, "/outbox/Order");
    CHECK_STR(ce.subject, "42");
    CHECK_STR(ce.time, "2025-11-25T22:05:12.123Z");
    CHECK_STR(ce.partitionkey, "order-1");
    CHECK_STR(ce.correlationid, "c-1");
    CHECK_STR(ce.causationid, "c-0");
    CHECK_STR(ce.datacontenttype, "application/json");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_missing_optional_attributes_are_null_and_type_defaults)
{
    struct ob_message m = bare();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    CHECK_STR(ce.type, "outbox.message");
    CHECK(!ce.subject && !ce.time && !ce.correlationid && !ce.causationid);
    CHECK_STR(ce.datacontenttype, "application/json");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_default_source_without_aggregate_type_keeps_the_slash)
{
    struct ob_message m = bare();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    CHECK_STR(ce.source, "/outbox/");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_source_follows_the_configured_template)
{
    struct ob_message m = order_placed();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, "urn:shop:{aggregateType}:{aggregateId}", "outbox");
    CHECK_STR(ce.source, "urn:shop:Order:42");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_source_that_expands_empty_is_slash_table)
{
    struct ob_message m = bare();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, "{aggregateType}", "outbox");
    CHECK_STR(ce.source, "/outbox");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_datacontenttype_is_the_content_type_header_in_any_case)
{
    struct ob_message m = bare();
    add_header(&m, "CONTENT-TYPE", "text/plain; charset=utf-8");
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    CHECK_STR(ce.datacontenttype, "text/plain; charset=utf-8");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_empty_content_type_header_falls_back_to_json)
{
    struct ob_message m = bare();
    add_header(&m, "content-type", "");
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    CHECK_STR(ce.datacontenttype, "application/json");
    ob_ce_free(&ce);
    ob_message_free(&m);
}

TEST(ce_structured_json_payload_is_data_with_exact_numbers_and_no_whitespace)
{
    struct ob_message m = order_placed();
    CHECK_OWNED_STR(structured(&m),
                    "{\"specversion\":\"1.0\",\"id\":\"m-1\",\"source\":\"/outbox/Order\",\"type\":\"OrderPlaced\","
                    "\"subject\":\"42\",\"time\":\"2025-11-25T22:05:12.123Z\",\"datacontenttype\":\"application/json\","
                    "\"partitionkey\":\"order-1\",\"correlationid\":\"c-1\",\"causationid\":\"c-0\",\"tenant\":\"acme\","
                    "\"data\":{\"a\":1,\"b\":[1.10,\"x y\"]}}");
    ob_message_free(&m);
}

TEST(ce_structured_binary_payload_is_data_base64)
{
    struct ob_message m = bare();
    set_payload(&m, "\x00\xff\x10", 3);
    add_header(&m, "content-type", "application/octet-stream");
    CHECK_OWNED_STR(structured(&m),
                    "{\"specversion\":\"1.0\",\"id\":\"s\",\"source\":\"/outbox/\",\"type\":\"outbox.message\","
                    "\"datacontenttype\":\"application/octet-stream\",\"partitionkey\":\"p\","
                    "\"data_base64\":\"AP8Q\"}");
    ob_message_free(&m);
}

TEST(ce_structured_text_payload_is_data_base64)
{
    struct ob_message m = bare();
    set_payload(&m, "\"hello\"", 7);
    add_header(&m, "content-type", "text/plain");
    CHECK_OWNED_STR(structured(&m),
                    "{\"specversion\":\"1.0\",\"id\":\"s\",\"source\":\"/outbox/\",\"type\":\"outbox.message\","
                    "\"datacontenttype\":\"text/plain\",\"partitionkey\":\"p\",\"data_base64\":\"ImhlbGxvIg==\"}");
    ob_message_free(&m);
}

TEST(ce_structured_json_scalar_payload_is_data)
{
    struct ob_message m = bare();
    set_payload(&m, " \"hi\"\n", 6);
    CHECK_OWNED_STR(structured(&m), "{\"specversion\":\"1.0\",\"id\":\"s\",\"source\":\"/outbox/\","
                                    "\"type\":\"outbox.message\",\"datacontenttype\":\"application/json\","
                                    "\"partitionkey\":\"p\",\"data\":\"hi\"}");
    ob_message_free(&m);
}

TEST(ce_structured_plus_json_type_with_parameters_is_json)
{
    struct ob_message m = bare();
    set_payload(&m, "[1, 2]", 6);
    add_header(&m, "content-type", "application/cloudevents-batch+JSON ; charset=utf-8");
    char *json = structured(&m);
    bool ok = strstr(json, ",\"data\":[1,2]}") != NULL;
    free(json);
    CHECK(ok);
    ob_message_free(&m);
}

TEST(ce_structured_invalid_json_under_a_json_type_is_data_base64)
{
    struct ob_message m = bare();
    set_payload(&m, "{\"a\":", 5);
    char *json = structured(&m);
    bool ok = strstr(json, ",\"data_base64\":\"eyJhIjo=\"}") != NULL && !strstr(json, "\"data\"");
    free(json);
    CHECK(ok);
    ob_message_free(&m);
}

TEST(ce_structured_json_followed_by_nul_bytes_is_data_base64)
{
    struct ob_message m = bare();
    set_payload(&m, "1\0", 2);
    char *json = structured(&m);
    bool ok = strstr(json, ",\"data_base64\":\"MQA=\"}") != NULL;
    free(json);
    CHECK(ok);
    ob_message_free(&m);
}

TEST(ce_structured_json_strings_keep_their_spaces_and_escapes)
{
    struct ob_message m = bare();
    const char payload[] = "{ \"k\" : \"a \\\" b\\\\\" }";
    set_payload(&m, payload, sizeof payload - 1);
    char *json = structured(&m);
    bool ok = strstr(json, ",\"data\":{\"k\":\"a \\\" b\\\\\"}}") != NULL;
    free(json);
    CHECK(ok);
    ob_message_free(&m);
}

TEST(ce_structured_empty_payload_has_no_data)
{
    struct ob_message m = bare();
    set_payload(&m, "", 0);
    char *json = structured(&m);
    bool ok = !strstr(json, "\"data\"") && !strstr(json, "\"data_base64\"");
    free(json);
    CHECK(ok);
    ob_message_free(&m);
}

TEST(ce_headers_become_extensions_only_with_valid_unreserved_names)
{
    struct ob_message m = bare();
    static const char *const names[] = {"tenant",      "region2",     "Tenant",       "x-request-id", "under_score",
                                        "a23456789012345678901", "a2345678901234567890", "id", "source",
                                        "type",        "subject",     "time",         "dataschema",   "specversion",
                                        "data",        "datacontenttype", "partitionkey", "correlationid",
                                        "causationid", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        add_header(&m, names[i], "h");
    CHECK_OWNED_STR(structured(&m), "{\"specversion\":\"1.0\",\"id\":\"s\",\"source\":\"/outbox/\","
                                    "\"type\":\"outbox.message\",\"datacontenttype\":\"application/json\","
                                    "\"partitionkey\":\"p\",\"tenant\":\"h\",\"region2\":\"h\","
                                    "\"a2345678901234567890\":\"h\",\"data\":{}}");
    ob_message_free(&m);
}

static void collect_attribute(const char *name, const char *value, void *ctx)
{
    ob_buf_printf(ctx, "%s=%s;", name, value);
}

TEST(ce_binary_attributes_are_the_present_context_attributes_without_content_type)
{
    struct ob_message m = order_placed();
    struct ob_ce ce;
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    struct ob_buf seen = {0};
    ob_ce_each_attribute(&ce, collect_attribute, &seen);
    ob_ce_free(&ce);
    ob_message_free(&m);
    CHECK_OWNED_STR(ob_buf_steal(&seen), "specversion=1.0;id=m-1;type=OrderPlaced;source=/outbox/Order;subject=42;"
                                         "time=2025-11-25T22:05:12.123Z;partitionkey=order-1;correlationid=c-1;"
                                         "causationid=c-0;");

    m = bare();
    ob_ce_from_message(&ce, &m, NULL, "outbox");
    ob_ce_each_attribute(&ce, collect_attribute, &seen);
    ob_ce_free(&ce);
    ob_message_free(&m);
    CHECK_OWNED_STR(ob_buf_steal(&seen), "specversion=1.0;id=s;type=outbox.message;source=/outbox/;partitionkey=p;");
}

TEST(template_expands_every_placeholder)
{
    struct ob_message m = order_placed();
    CHECK_OWNED_STR(expand("{table}/{messageType}/{aggregateType}/{aggregateId}/{partitionKey}/{messageId}", &m),
                    "outbox/OrderPlaced/Order/42/order-1/m-1");
    CHECK_OWNED_STR(expand("{pk}.{sk}", &m), "order-1.m-1");
    ob_message_free(&m);
}

TEST(template_missing_attribute_expands_empty)
{
    struct ob_message m = bare();
    CHECK_OWNED_STR(expand("orders.{messageType}.{aggregateType}-{aggregateId}", &m), "orders..-");
    ob_message_free(&m);
}

TEST(template_copies_text_outside_placeholders_verbatim)
{
    struct ob_message m = order_placed();
    CHECK_OWNED_STR(expand("", &m), "");
    CHECK_OWNED_STR(expand("plain.topic", &m), "plain.topic");
    CHECK_OWNED_STR(expand("a}b{c", &m), "a}b{c");
    CHECK_OWNED_STR(expand("{nope}{messageType}", &m), "{nope}OrderPlaced");
    CHECK_OWNED_STR(expand("{{messageType}}", &m), "{OrderPlaced}");
    ob_message_free(&m);
}

TEST(template_check_accepts_known_placeholders_and_plain_text)
{
    char bad[32];
    CHECK(ob_template_check("", bad, sizeof bad));
    CHECK(ob_template_check("orders", bad, sizeof bad));
    CHECK(ob_template_check("/{table}/{aggregateType}", bad, sizeof bad));
    CHECK(ob_template_check("{messageType}{aggregateId}{partitionKey}{messageId}{pk}{sk}", bad, sizeof bad));
}

TEST(template_check_names_an_unknown_placeholder)
{
    char bad[32];
    CHECK(!ob_template_check("orders.{type}.{messageType}", bad, sizeof bad));
    CHECK_STR(bad, "{type}");
    CHECK(!ob_template_check("{}", bad, sizeof bad));
    CHECK_STR(bad, "{}");
    CHECK(!ob_template_check("{MessageType}", bad, sizeof bad));
    CHECK_STR(bad, "{MessageType}");
}

TEST(template_check_rejects_unbalanced_braces)
{
    char bad[32];
    CHECK(!ob_template_check("/{table}/{aggregateType", bad, sizeof bad));
    CHECK_STR(bad, "{aggregateType");
    CHECK(!ob_template_check("{a{messageType}", bad, sizeof bad));
    CHECK_STR(bad, "{a");
    CHECK(!ob_template_check("orders}", bad, sizeof bad));
    CHECK_STR(bad, "}");
}

TEST(template_check_truncates_what_it_reports_to_the_buffer)
{
    char bad[6];
    CHECK(!ob_template_check("{unknownName}", bad, sizeof bad));
    CHECK_STR(bad, "{unkn");
}

TEST(glob_matches_literals_stars_and_question_marks)
{
    CHECK(ob_glob_match("Order", "Order"));
    CHECK(!ob_glob_match("Order", "Orders"));
    CHECK(!ob_glob_match("Orders", "Order"));
    CHECK(ob_glob_match("Order*", "Order"));
    CHECK(ob_glob_match("Order*", "OrderPlaced"));
    CHECK(!ob_glob_match("Order*", "order"));
    CHECK(ob_glob_match("*Placed", "OrderPlaced"));
    CHECK(ob_glob_match("O*r*d", "OrderPlaced"));
    CHECK(!ob_glob_match("O*r*x", "OrderPlaced"));
    CHECK(ob_glob_match("Order?", "Orders"));
    CHECK(!ob_glob_match("Order?", "Order"));
    CHECK(ob_glob_match("*", ""));
    CHECK(ob_glob_match("", ""));
    CHECK(!ob_glob_match("", "x"));
    CHECK(!ob_glob_match("?", ""));
    CHECK(ob_glob_match("**a**", "a"));
    CHECK(ob_glob_match("[a]", "[a]"));
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

/* sinks events, orders, audit; default events; two routes. */
struct route_fixture {
    struct ob_config cfg;
    struct ob_config_sink sinks[3];
    struct ob_config_route routes[2];
};

static void route_fixture_init(struct route_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->sinks[0].name = "events";
    f->sinks[1].name = "orders";
    f->sinks[2].name = "audit";
    f->routes[0] = (struct ob_config_route){.match_message_type = "Order*", .match_aggregate_type = "Order",
                                            .sink = "orders", .sink_index = 1,
                                            .destination = "orders.{messageType}"};
    f->routes[1] = (struct ob_config_route){.match_aggregate_type = "Aud?t", .sink = "audit", .sink_index = 2};
    f->cfg.sinks = f->sinks;
    f->cfg.n_sinks = 3;
    f->cfg.routes = f->routes;
    f->cfg.n_routes = 2;
    f->cfg.default_sink = "events";
}

TEST(route_first_matching_route_wins_with_its_destination)
{
    struct route_fixture f;
    route_fixture_init(&f);
    f.routes[1].match_aggregate_type = NULL; /* now matches everything, but comes second */
    struct ob_message m = order_placed();
    size_t sink = 99;
    const char *dest = NULL;
    ob_route_select(&f.cfg, &m, &sink, &dest);
    CHECK_INT(sink, 1);
    CHECK_STR(dest, "orders.{messageType}");
    ob_message_free(&m);
}

TEST(route_every_given_glob_must_match)
{
    struct route_fixture f;
    route_fixture_init(&f);
    struct ob_message m = order_placed();
    free(m.aggregate_type);
    m.aggregate_type = ob_xstrdup("Customer");
    size_t sink = 99;
    const char *dest = "x";
    ob_route_select(&f.cfg, &m, &sink, &dest);
    CHECK_INT(sink, 0);
    CHECK(!dest);
    ob_message_free(&m);
}

TEST(route_without_a_match_uses_the_default_sink)
{
    struct route_fixture f;
    route_fixture_init(&f);
    f.cfg.default_sink = "audit";
    struct ob_message m = bare();
    size_t sink = 99;
    const char *dest = "x";
    ob_route_select(&f.cfg, &m, &sink, &dest);
    CHECK_INT(sink, 2);
    CHECK(!dest);
    ob_message_free(&m);
}

TEST(route_glob_on_a_missing_attribute_matches_as_empty)
{
    struct route_fixture f;
    route_fixture_init(&f);
    f.routes[0] = (struct ob_config_route){.match_message_type = "?*", .sink_index = 1};
    f.routes[1] = (struct ob_config_route){.match_message_type = "*", .sink_index = 2};
    struct ob_message m = bare();
    size_t sink = 99;
    const char *dest;
    ob_route_select(&f.cfg, &m, &sink, &dest);
    CHECK_INT(sink, 2);
    ob_message_free(&m);
}

TEST(route_question_mark_glob_on_aggregate_type)
{
    struct route_fixture f;
    route_fixture_init(&f);
    struct ob_message m = bare();
    m.aggregate_type = ob_xstrdup("Audit");
    size_t sink = 99;
    const char *dest;
    ob_route_select(&f.cfg, &m, &sink, &dest);
    CHECK_INT(sink, 2);
    CHECK(!dest);
    ob_message_free(&m);
}
