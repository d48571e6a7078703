/* http(s) URLs: parsing and resolving references (RFC 3986 §5.4). */
#include "test.h"

#include "core/buf.h"
#include "core/url.h"

/* scheme://[userinfo@]host[:port]path[?query], as the parts say. */
static void render(const struct ob_url *u, struct ob_buf *b)
{
    ob_buf_cat(b, u->tls ? "https://" : "http://", u->userinfo ? u->userinfo : "", u->userinfo ? "@" : "", u->host,
               u->port ? ":" : "", u->port ? u->port : "", u->path, u->query ? "?" : "", u->query ? u->query : "",
               NULL);
}

static void check_resolves(const char *base_text, const char *ref, const char *want, int line)
{
    struct ob_url base, out;
    struct ob_error err = { 0 };
    if (ob_url_parse(base_text, &base, &err) != OB_OK) {
        ob_test_fail(__FILE__, line, "base '%s': %s", base_text, err.msg);
        return;
    }
    if (ob_url_resolve(&base, ref, &out, &err) != OB_OK) {
        ob_test_fail(__FILE__, line, "'%s' did not resolve: %s", ref, err.msg);
    } else {
        struct ob_buf got = { 0 };
        render(&out, &got);
        if (strcmp(got.data, want) != 0)
            ob_test_fail(__FILE__, line, "'%s' resolved to '%s', want '%s'", ref, got.data, want);
        ob_buf_free(&got);
        ob_url_free(&out);
    }
    ob_url_free(&base);
}

TEST(references_resolve_as_rfc3986_section_5_4_says)
{
    static const char *const cases[][2] = {
        /* 5.4.1 normal examples (fragments are dropped) */
        { "g", "http://a/b/c/g" },          { "./g", "http://a/b/c/g" },
        { "g/", "http://a/b/c/g/" },        { "/g", "http://a/g" },
        { "//g", "http://g/" },             { "?y", "http://a/b/c/d;p?y" },
        { "g?y", "http://a/b/c/g?y" },      { "#s", "http://a/b/c/d;p?q" },
        { "g#s", "http://a/b/c/g" },        { "g?y#s", "http://a/b/c/g?y" },
        { ";x", "http://a/b/c/;x" },        { "g;x", "http://a/b/c/g;x" },
        { "", "http://a/b/c/d;p?q" },       { ".", "http://a/b/c/" },
        { "./", "http://a/b/c/" },          { "..", "http://a/b/" },
        { "../", "http://a/b/" },           { "../g", "http://a/b/g" },
        { "../..", "http://a/" },           { "../../", "http://a/" },
        { "../../g", "http://a/g" },
        /* 5.4.2 abnormal examples */
        { "../../../g", "http://a/g" },     { "../../../../g", "http://a/g" },
        { "/./g", "http://a/g" },           { "/../g", "http://a/g" },
        { "g.", "http://a/b/c/g." },        { ".g", "http://a/b/c/.g" },
        { "g..", "http://a/b/c/g.." },      { "..g", "http://a/b/c/..g" },
        { "./../g", "http://a/b/g" },       { "./g/.", "http://a/b/c/g/" },
        { "g/./h", "http://a/b/c/g/h" },    { "g/../h", "http://a/b/c/h" },
        { "g;x=1/./y", "http://a/b/c/g;x=1/y" }, { "g;x=1/../y", "http://a/b/c/y" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_resolves("http://a/b/c/d;p?q", cases[i][0], cases[i][1], __LINE__);
}

TEST(an_absolute_reference_replaces_the_base_and_keeps_its_own_scheme_and_port)
{
    check_resolves("https://hooks.example/base/hook", "http://127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080/x?y=1",
                   __LINE__);
    check_resolves("http://u:p@a:81/b", "//c/d", "http://c/d", __LINE__);
    check_resolves("http://u:p@a:81/b", "events/x", "http://u:p@a:81/events/x", __LINE__);
}

TEST(parsing_keeps_a_port_only_when_it_is_not_the_schemes_default)
{
    static const char *const cases[][2] = {
        { "http://h", "http://h/" },
        { "HTTP://h:80/x", "http://h/x" },
        { "https://h:443/", "https://h/" },
        { "https://h:8443/a?b", "https://h:8443/a?b" },
        { "http://[::1]:8000/p", "http://[::1]:8000/p" },
        { "http://h:/p", "http://h/p" },
        { "http://user:secret@h/p#frag", "http://user:secret@h/p" },
        { "http://h/caf\xc3\xa9", "http://h/caf%C3%A9" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_url u;
        struct ob_error err = { 0 };
        if (ob_url_parse(cases[i][0], &u, &err) != OB_OK) {
            ob_test_fail(__FILE__, __LINE__, "'%s' refused: %s", cases[i][0], err.msg);
            continue;
        }
        struct ob_buf got = { 0 };
        render(&u, &got);
        CHECK_STR(got.data, cases[i][1]);
        ob_buf_free(&got);
        ob_url_free(&u);
    }
}

TEST(the_port_defaults_to_the_schemes)
{
    struct ob_url u;
    struct ob_error err = { 0 };
    CHECK_INT(ob_url_parse("https://h/", &u, &err), OB_OK);
    CHECK_STR(ob_url_port(&u), "443");
    ob_url_free(&u);
    CHECK_INT(ob_url_parse("http://h:8080/", &u, &err), OB_OK);
    CHECK_STR(ob_url_port(&u), "8080");
    ob_url_free(&u);
}

TEST(what_is_not_an_http_url_is_refused_with_a_reason)
{
    static const char *const bad[] = {
        "ftp://h/x", "h/x", "/x", "http:x", "http://", "http://:80/", "http://h:0/", "http://h:65536/",
        "http://h:8x/", "http://h x/", "http://h/a b", "http://h/a\r\nX: 1", "http://[zz]/", "http://[]/",
        "http://h/?q=a b", "mailto:x@y",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ob_url u;
        struct ob_error err = { 0 };
        if (ob_url_parse(bad[i], &u, &err) == OB_OK) {
            ob_test_fail(__FILE__, __LINE__, "accepted '%s'", bad[i]);
            ob_url_free(&u);
        } else if (!err.msg[0]) {
            ob_test_fail(__FILE__, __LINE__, "'%s' refused without a reason", bad[i]);
        }
    }
}

TEST(a_reference_that_is_not_http_or_has_spaces_does_not_resolve)
{
    struct ob_url base, out;
    struct ob_error err = { 0 };
    CHECK_INT(ob_url_parse("http://h/base/", &base, &err), OB_OK);
    CHECK_INT(ob_url_resolve(&base, "ftp://h/x", &out, &err), OB_ERR_CONFIG);
    CHECK_INT(ob_url_resolve(&base, "a b", &out, &err), OB_ERR_CONFIG);
    CHECK_INT(ob_url_resolve(&base, "x\n", &out, &err), OB_ERR_CONFIG);
    ob_url_free(&base);
}

TEST(a_url_is_shown_with_its_password_query_and_fragment_hidden)
{
    static const char *const cases[][2] = {
        { "https://user:pass@host/hook?apikey=SECRET", "https://user:***@host/hook?***" },
        { "https://user:p%40ss:w@rd@host:8443/a/b", "https://user:***@host:8443/a/b" },
        { "https://TOKEN@host/", "https://***@host/" },
        { "redis://:pass@host:6379", "redis://:***@host:6379" },
        { "http://host/p?a=1#frag", "http://host/p?***" },
        { "http://host/p#access_token=x", "http://host/p#***" },
        { "http://host/a@b/c", "http://host/a@b/c" },
        { "http://host?q", "http://host?***" },
        { "http://[::1]:8000/x", "http://[::1]:8000/x" },
        { "https://example.org/hook", "https://example.org/hook" },
        /* What was written for a URL but is none is hidden the same way. */
        { "ftp://u:p@h/x?k=v", "ftp://u:***@h/x?***" },
        { "u:p@h/x?k", "u:***@h/x?***" },
        { "h/x?to=http://u:p@y", "h/x?***" },
        { "", "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ob_buf b = { 0 };
        ob_url_put_redacted(&b, cases[i][0]);
        if (strcmp(ob_buf_cstr(&b), cases[i][1]) != 0)
            ob_test_fail(__FILE__, __LINE__, "'%s' shown as '%s', want '%s'", cases[i][0], ob_buf_cstr(&b),
                         cases[i][1]);
        ob_buf_free(&b);
    }
}
