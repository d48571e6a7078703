/* Proxies from the environment (core/proxy.h): which variable wins, the
 * proxy URL, NO_PROXY as curl and the SDKs read it, CONNECT. */
#include "test.h"

#include "core/buf.h"
#include "core/proxy.h"

/* The environment a test reads: "NAME=value" pairs, NULL-terminated. */
static const char *const *test_env;

static const char *env_get(const char *name)
{
    size_t n = strlen(name);
    for (const char *const *e = test_env; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static bool load(struct ob_proxy_env *env, const char *const *vars, struct ob_error *err)
{
    test_env = vars;
    return ob_proxy_env_load(env_get, env, err) == OB_OK;
}

/* CHECK with a message; the test goes on to report every case. */
#define EXPECT(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            ob_test_fail(__FILE__, __LINE__, __VA_ARGS__);                                                             \
    } while (0)

TEST(lowercase_variables_win_over_uppercase_and_empty_means_unset)
{
    static const char *const vars[] = { "https_proxy=http://lower:1", "HTTPS_PROXY=http://upper:2",
                                        "http_proxy=", "HTTP_PROXY=http://upper:3", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(load(&env, vars, &err), "%s", err.msg);
    EXPECT(env.https && strcmp(env.https->host, "lower") == 0, "https_proxy should win");
    EXPECT(env.http && strcmp(env.http->host, "upper") == 0 && strcmp(env.http->port, "3") == 0,
          "an empty http_proxy lets HTTP_PROXY through");
    ob_proxy_env_free(&env);
}

TEST(no_variables_mean_no_proxy_and_nothing_to_describe)
{
    static const char *const vars[] = { "no_proxy=example.com", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(load(&env, vars, &err), "%s", err.msg);
    EXPECT(!env.https && !env.http, "no proxy expected");
    EXPECT(!ob_proxy_for(&env, true, "dynamodb.eu-west-1.amazonaws.com", "443"), "direct expected");
    struct ob_buf b = { 0 };
    ob_proxy_env_describe(&b, &env);
    EXPECT(b.len == 0, "described as '%s'", ob_buf_cstr(&b));
    ob_buf_free(&b);
    ob_proxy_env_free(&env);
}

TEST(a_proxy_without_scheme_is_http_and_without_port_uses_80)
{
    struct ob_proxy p;
    struct ob_error err = { 0 };
    EXPECT(ob_proxy_parse("HTTPS_PROXY", "proxy.corp:3128", &p, &err) == OB_OK, "%s", err.msg);
    EXPECT(strcmp(p.host, "proxy.corp") == 0 && strcmp(p.port, "3128") == 0, "%s:%s", p.host, p.port);
    ob_proxy_free(&p);
    EXPECT(ob_proxy_parse("HTTPS_PROXY", "http://proxy.corp", &p, &err) == OB_OK, "%s", err.msg);
    EXPECT(strcmp(p.port, "80") == 0, "port %s", p.port);
    EXPECT(!p.credentials, "no credentials expected");
    EXPECT(strcmp(p.shown, "http://proxy.corp:80") == 0, "shown %s", p.shown);
    ob_proxy_free(&p);
    EXPECT(ob_proxy_parse("HTTPS_PROXY", "HTTP://[::1]:8080/", &p, &err) == OB_OK, "%s", err.msg);
    EXPECT(strcmp(p.host, "::1") == 0 && strcmp(p.port, "8080") == 0, "%s:%s", p.host, p.port);
    EXPECT(strcmp(p.shown, "http://[::1]:8080") == 0, "shown %s", p.shown);
    ob_proxy_free(&p);
}

TEST(proxy_credentials_are_decoded_for_basic_and_hidden_when_shown)
{
    struct ob_proxy p;
    struct ob_error err = { 0 };
    EXPECT(ob_proxy_parse("HTTPS_PROXY", "http://al%40ice:s%3Acret@proxy:3128", &p, &err) == OB_OK, "%s", err.msg);
    /* base64("al@ice:s:cret") */
    EXPECT(p.credentials && strcmp(p.credentials, "YWxAaWNlOnM6Y3JldA==") == 0, "credentials %s", p.credentials);
    EXPECT(strcmp(p.shown, "http://al%40ice:***@proxy:3128") == 0, "shown %s", p.shown);
    struct ob_buf req = { 0 };
    ob_proxy_connect_request(&req, &p, "sqs.eu-west-1.amazonaws.com", "443");
    EXPECT(strcmp(req.data, "CONNECT sqs.eu-west-1.amazonaws.com:443 HTTP/1.1\r\n"
                           "Host: sqs.eu-west-1.amazonaws.com:443\r\n"
                           "Proxy-Authorization: Basic YWxAaWNlOnM6Y3JldA==\r\n\r\n") == 0,
          "request %s", req.data);
    ob_buf_free(&req);
    ob_proxy_free(&p);
}

TEST(proxy_urls_outboxd_cannot_use_are_refused_without_their_password)
{
    static const char *const bad[] = { "https://u:hunter2@proxy:443", "socks5://u:hunter2@proxy:1080",
                                       "http://u:hunter2@proxy:99999", "http://u:hunter2@:3128",
                                       "http://u:hunter2@pro xy:3128" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ob_proxy p;
        struct ob_error err = { 0 };
        EXPECT(ob_proxy_parse("HTTPS_PROXY", bad[i], &p, &err) == OB_ERR_CONFIG, "'%s' accepted", bad[i]);
        EXPECT(strstr(err.msg, "HTTPS_PROXY") && !strstr(err.msg, "hunter2"), "message: %s", err.msg);
    }
    static const char *const vars[] = { "HTTP_PROXY=ftp://proxy", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(!load(&env, vars, &err) && strstr(err.msg, "HTTP_PROXY: only http:// proxies"), "message: %s", err.msg);
    EXPECT(!env.http && !env.https, "a refused environment is left empty");
}

TEST(a_password_with_unencoded_url_delimiters_is_hidden_when_its_url_is_refused)
{
    /* Passwords are often written raw: '/', '?' or '#' in one ends the
     * authority early, so the URL does not parse; the message shows where
     * the proxy is, never what came before the last '@'. */
    static const char *const bad[] = { "http://relay:pa/ssw0rd@proxy:3128", "http://relay:pa?ssw0rd@proxy:3128",
                                       "http://relay:pa#ssw0rd@proxy:3128", "relay:pa/ssw0rd@proxy:3128",
                                       "http://pa/ssw0rd@proxy:3128", "relay:pa://ssw0rd@proxy:3128" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ob_proxy p;
        struct ob_error err = { 0 };
        EXPECT(ob_proxy_parse("HTTPS_PROXY", bad[i], &p, &err) == OB_ERR_CONFIG, "'%s' accepted", bad[i]);
        EXPECT(!strstr(err.msg, "pa/") && !strstr(err.msg, "pa?") && !strstr(err.msg, "pa#") &&
                   !strstr(err.msg, "pa:") && !strstr(err.msg, "ssw0rd"),
               "'%s': message %s", bad[i], err.msg);
        EXPECT(strstr(err.msg, "proxy:3128") != NULL, "'%s': message %s does not say where", bad[i], err.msg);
    }
}

TEST(user_information_without_a_colon_is_hidden_whole_as_it_may_be_a_token)
{
    /* As ob_url_put_redacted does: a lone user information may be the
     * secret itself (an API key as the user name). */
    struct ob_proxy p;
    struct ob_error err = { 0 };
    EXPECT(ob_proxy_parse("HTTPS_PROXY", "http://t0k3n@proxy:3128", &p, &err) == OB_OK, "%s", err.msg);
    EXPECT(p.credentials && strcmp(p.credentials, "dDBrM246") == 0, "credentials %s", p.credentials);
    EXPECT(strcmp(p.shown, "http://***@proxy:3128") == 0, "shown %s", p.shown);
    ob_proxy_free(&p);
}

struct bypass_case {
    const char *no_proxy, *host, *port;
    bool bypassed;
};

TEST(no_proxy_matches_names_addresses_blocks_and_ports_as_curl_does)
{
    static const struct bypass_case cases[] = {
        { "*", "anything.example", "443", true },
        { "example.com", "example.com", "443", true },
        { "example.com", "api.example.com", "443", true },
        { "example.com", "EXAMPLE.com.", "443", true },
        { "example.com", "badexample.com", "443", false },
        { ".example.com", "example.com", "443", true },
        { ".example.com", "a.b.example.com", "443", true },
        { "*.example.com", "a.example.com", "443", true },
        { "Example.COM", "api.example.com", "443", true },
        { "foo, example.com bar", "api.example.com", "80", true },
        { "example.com:8443", "api.example.com", "8443", true },
        { "example.com:8443", "api.example.com", "443", false },
        { "10.1.2.3", "10.1.2.3", "80", true },
        { "10.1.2.3", "10.1.2.30", "80", false },
        { "0.0.1", "127.0.0.1", "80", false }, /* a name never matches an address */
        { "10.0.0.0/8", "10.200.3.4", "443", true },
        { "10.0.0.0/8", "11.0.0.1", "443", false },
        { "172.16.0.0/12", "172.31.255.255", "443", true },
        { "172.16.0.0/12", "172.32.0.0", "443", false },
        { "::1", "::1", "80", true },
        { "::1", "[0:0::1]", "80", true },
        { "[::1]:8000", "::1", "8000", true },
        { "[::1]:8000", "::1", "8001", false },
        { "[::1]", "::1", "8000", true },
        { "[fd00:ec2::1]", "fd00:ec2:0::1", "443", true },
        { "[fd00::]/8", "fd12::5", "443", true },
        { "[fd00::]/8:443", "fd12::5", "443", true },
        { "fd00::/8", "fd12::5", "443", true },
        { "127.0.0.1:4566", "127.0.0.1", "4566", true },
        { "127.0.0.1:4566", "127.0.0.1", "8000", false },
        { "10.0.0.0/99, 10.0.0.0/x", "10.0.0.1", "443", false }, /* bad blocks are ignored */
        { "", "example.com", "443", false },
        { "localhost", "127.0.0.1", "443", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bypass_case *c = &cases[i];
        char no_proxy[128];
        snprintf(no_proxy, sizeof no_proxy, "NO_PROXY=%s", c->no_proxy);
        const char *vars[] = { "HTTPS_PROXY=http://proxy:3128", no_proxy, NULL };
        struct ob_proxy_env env;
        struct ob_error err = { 0 };
        EXPECT(load(&env, vars, &err), "%s", err.msg);
        bool got = ob_proxy_for(&env, true, c->host, c->port) == NULL;
        EXPECT(got == c->bypassed, "NO_PROXY='%s' for %s:%s: %s, want %s", c->no_proxy, c->host, c->port,
              got ? "bypassed" : "proxied", c->bypassed ? "bypassed" : "proxied");
        ob_proxy_env_free(&env);
    }
}

TEST(the_scheme_of_the_origin_picks_the_variable)
{
    static const char *const vars[] = { "HTTPS_PROXY=http://tls-proxy:1", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(load(&env, vars, &err), "%s", err.msg);
    const struct ob_proxy *p = ob_proxy_for(&env, true, "example.com", "443");
    EXPECT(p && strcmp(p->host, "tls-proxy") == 0, "https origins go through HTTPS_PROXY");
    EXPECT(!ob_proxy_for(&env, false, "example.com", "80"), "http origins only through HTTP_PROXY");
    ob_proxy_env_free(&env);
}

TEST(metadata_addresses_are_never_proxied)
{
    static const char *const vars[] = { "HTTP_PROXY=http://proxy:3128", "HTTPS_PROXY=http://proxy:3128", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(load(&env, vars, &err), "%s", err.msg);
    static const char *const metadata[] = { "169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254",
                                            "[fd00:ec2::23]", "FD00:EC2:0::254" };
    for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++) {
        EXPECT(!ob_proxy_for(&env, false, metadata[i], "80"), "%s proxied", metadata[i]);
        EXPECT(!ob_proxy_for(&env, true, metadata[i], "443"), "%s proxied", metadata[i]);
    }
    EXPECT(ob_proxy_for(&env, false, "169.254.169.253", "80"), "a neighbour of the metadata address goes through");
    ob_proxy_env_free(&env);
}

TEST(the_description_names_each_proxy_with_passwords_hidden)
{
    static const char *const vars[] = { "HTTPS_PROXY=http://u:hunter2@proxy:3128", "HTTP_PROXY=http://plain:8080",
                                        "NO_PROXY=.internal,10.0.0.0/8", NULL };
    struct ob_proxy_env env;
    struct ob_error err = { 0 };
    EXPECT(load(&env, vars, &err), "%s", err.msg);
    struct ob_buf b = { 0 };
    ob_proxy_env_describe(&b, &env);
    EXPECT(strcmp(b.data, "https via http://u:***@proxy:3128, http via http://plain:8080, "
                         "not for .internal,10.0.0.0/8") == 0,
          "described as '%s'", b.data);
    ob_buf_free(&b);
    ob_proxy_env_free(&env);
}

struct answer_case {
    const char *text;
    enum ob_proxy_answer want;
    int status;
};

TEST(connect_answers_give_their_status_once_their_head_ends)
{
    static const struct answer_case cases[] = {
        { "HTTP/1.1 200 Connection established\r\n\r\n", OB_PROXY_ANSWER_DONE, 200 },
        { "HTTP/1.0 200\r\nProxy-Agent: x\r\n\r\n", OB_PROXY_ANSWER_DONE, 200 },
        { "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n", OB_PROXY_ANSWER_DONE,
          407 },
        { "HTTP/1.1 200 OK\r\n", OB_PROXY_ANSWER_PARTIAL, 0 },
        { "HTTP/1.", OB_PROXY_ANSWER_PARTIAL, 0 },
        { "", OB_PROXY_ANSWER_PARTIAL, 0 },
        { "SSH-2.0-OpenSSH", OB_PROXY_ANSWER_INVALID, 0 },
        { "HTTP/2 200\r\n\r\n", OB_PROXY_ANSWER_INVALID, 0 },
        { "HTTP/1.1 2x0 OK\r\n\r\n", OB_PROXY_ANSWER_INVALID, 0 },
        { "HTTP/1.1 200OK\r\n\r\n", OB_PROXY_ANSWER_INVALID, 0 },
        { "HTTP/1.1 099 Low\r\n\r\n", OB_PROXY_ANSWER_INVALID, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int status = 0;
        size_t head_len = 0;
        size_t len = strlen(cases[i].text);
        enum ob_proxy_answer got = ob_proxy_connect_answer(cases[i].text, len, &status, &head_len);
        EXPECT(got == cases[i].want, "'%s': %d, want %d", cases[i].text, got, cases[i].want);
        if (got == OB_PROXY_ANSWER_DONE)
            EXPECT(status == cases[i].status && head_len == len, "'%s': status %d, head %zu", cases[i].text, status,
                  head_len);
    }
}

TEST(a_connect_answer_head_without_end_is_refused_past_16_kib)
{
    struct ob_buf b = { 0 };
    ob_buf_puts(&b, "HTTP/1.1 200 OK\r\n");
    while (b.len <= 16384)
        ob_buf_puts(&b, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    int status;
    size_t head_len;
    EXPECT(ob_proxy_connect_answer(b.data, b.len, &status, &head_len) == OB_PROXY_ANSWER_INVALID, "accepted");
    ob_buf_free(&b);
}

TEST(refusals_say_what_the_status_means)
{
    char buf[32];
    EXPECT(strcmp(ob_proxy_refusal(407, buf, sizeof buf), "proxy authentication required") == 0, "407");
    EXPECT(strcmp(ob_proxy_refusal(403, buf, sizeof buf), "HTTP 403") == 0, "403");
}
