/* http sink settings that must fail at creation, without showing secrets. */
#include "test.h"

#include "core/buf.h"
#include "core/config.h"
#include "sinks/sink.h"

/* The error of creating the one sink of a config with these sink keys. */
static void create_error(const char *keys, struct ob_error *err)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n"
                      "  - name: h\n    type: http\n    url: http://127.0.0.1:1/\n%s", keys);
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    ob_error_clear(err);
    if (ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, &diag) == OB_OK) {
        struct ob_sink_context ctx = {.table = cfg->table.name, .aws = &cfg->aws};
        struct ob_sink *s = NULL;
        ob_sink_create(&cfg->sinks[0], &ctx, &s, err);
        ob_sink_destroy(s);
    } else {
        snprintf(err->msg, sizeof err->msg, "config: %s", diag.n ? diag.lines[0] : "?");
    }
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
    ob_buf_free(&y);
}

TEST(http_sink_creation_errors_do_not_show_secrets)
{
    struct ob_error err;
    create_error("    bearer_token: \"sec\\r\\nret\"\n", &err);
    CHECK_STR(err.msg, "sink 'h': bearer_token has control characters");
}

TEST(http_sink_rejects_a_header_name_that_is_not_a_token)
{
    struct ob_error err;
    create_error("    headers: { \"X Bad\": v }\n", &err);
    CHECK_INT(err.code, OB_ERR_CONFIG);
    CHECK_STR(err.msg, "sink 'h': headers: 'X Bad' is not a valid header name, or its value has control characters");
}

TEST(http_sink_ca_file_must_be_readable)
{
    struct ob_error err;
    create_error("    ca_file: /nonexistent/ca.pem\n", &err);
    CHECK_INT(err.code, OB_ERR_CONFIG);
    CHECK_STR(err.msg, "sink 'h': ca_file /nonexistent/ca.pem: No such file or directory");
}
