/* aws/http_client: HTTP/1.1 answers read right whatever their framing,
 * connections kept and re-opened, failures named. A loopback server
 * thread plays a script of canned answers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "aws/http_client.h"
#include "core/buf.h"
#include "test.h"

#define REQUEST_MAX 8192

/* One request the server reads, and what it does then. */
struct step {
    const char *answer;   /* written after the request; NULL: say nothing until the client hangs up */
    bool close_after;     /* close the connection after answering (no Connection: close header) */
};

struct server {
    int listen_fd;
    char port[8];
    const struct step *steps;
    size_t n_steps;
    int accepted;
    atomic_int requests_read; /* watched while the server runs */
    char last_request[REQUEST_MAX];  /* the head and body of the last request read */
    pthread_t thread;
};

/* Reads one request (head and Content-Length body) into buf; false at EOF. */
static bool read_request(int fd, char buf[REQUEST_MAX])
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, REQUEST_MAX - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        char *cl = strstr(buf, "Content-Length: ");
        size_t body = cl ? (size_t)atoi(cl + 16) : 0;
        if (len >= (size_t)(end + 4 - buf) + body)
            return true;
    }
}

/* How long the server waits for a connection or a request: a test whose
 * client gave up fails instead of hanging. */
static const struct timeval patience = { .tv_sec = 3 };

static void *serve(void *arg)
{
    struct server *s = arg;
    int fd = -1;
    for (size_t i = 0; i < s->n_steps; i++) {
        if (fd < 0) {
            fd = accept(s->listen_fd, NULL, NULL);
            if (fd < 0)
                return NULL; /* nobody came within the receive timeout */
            s->accepted++;
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
        }
        if (!read_request(fd, s->last_request)) {
            close(fd);
            fd = -1;
            i--; /* the client hung up: the same step on the next connection */
            continue;
        }
        atomic_fetch_add(&s->requests_read, 1);
        const struct step *st = &s->steps[i];
        if (!st->answer) {
            char c;
            while (read(fd, &c, 1) > 0) {
            }
        } else if (write(fd, st->answer, strlen(st->answer)) < 0) {
            break;
        }
        if (!st->answer || st->close_after) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0) {
        char c;
        while (read(fd, &c, 1) > 0) {
        }
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *s, const struct step *steps, size_t n)
{
    memset(s, 0, sizeof *s);
    s->steps = steps;
    s->n_steps = n;
    int port;
    s->listen_fd = ob_test_listen_loopback(3000, &port);
    snprintf(s->port, sizeof s->port, "%d", port);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

/* Proxies are what a test sets: none from the machine. */
__attribute__((constructor)) static void no_proxies(void)
{
    static const char *const names[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                                         "NO_PROXY" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unsetenv(names[i]);
}

/* Host name lookups the clients made. */
static atomic_int lookups;

static int counted_getaddrinfo(const char *name, const char *port, const struct addrinfo *hints,
                               struct addrinfo **out)
{
    atomic_fetch_add(&lookups, 1);
    return getaddrinfo(name, port, hints, out);
}

static struct ob_http_client *client(int64_t request_timeout_ms)
{
    struct ob_http_client_options o = { .max_connections = 4, .connect_timeout_ms = 2000,
                                        .request_timeout_ms = request_timeout_ms, .tls_verify = true,
                                        .resolve = counted_getaddrinfo };
    struct ob_error err = { 0 };
    return ob_http_client_create(&o, &err);
}

/* Queues one POST. */
static void exchange_start(struct ob_http_client *c, const struct ob_http_origin *o, struct ob_http_exchange *ex,
                           struct ob_buf *rx)
{
    static const char head[] = "POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n";
    ob_buf_reset(rx);
    *ex = (struct ob_http_exchange){ .origin = o, .head = head, .head_len = sizeof head - 1, .body = "{}",
                                     .body_len = 2, .rx = rx };
    ob_http_client_start(c, ex);
}

/* Sends one POST and waits for its outcome (at most 5 s). */
static void exchange(struct ob_http_client *c, const struct ob_http_origin *o, struct ob_http_exchange *ex,
                     struct ob_buf *rx)
{
    exchange_start(c, o, ex, rx);
    for (int i = 0; i < 50; i++) {
        ob_http_client_drive(c, 100);
        if (ob_http_client_next_done(c) == ex)
            return;
    }
    ex->failure = OB_HTTP_PROTOCOL;
    snprintf(ex->error, sizeof ex->error, "test: no outcome within 5 s");
}

/* Plays the steps, one exchange each, and checks every exchange got an
 * answer; the last exchange and the buffer are left for the caller. */
static bool play(const struct step *steps, size_t n, int64_t timeout_ms, struct server *s,
                 struct ob_http_exchange *last, struct ob_buf *rx)
{
    server_start(s, steps, n);
    struct ob_http_origin o = { 0 };
    ob_http_origin_set(&o, false, "127.0.0.1", s->port);
    struct ob_http_client *c = client(timeout_ms);
    bool all_answered = true;
    for (size_t i = 0; i < n; i++) {
        exchange(c, &o, last, rx);
        if (i + 1 < n && last->failure != OB_HTTP_OK) {
            ob_test_fail(__FILE__, __LINE__, "exchange %zu failed: %s", i, last->error);
            all_answered = false;
        }
        usleep(20000); /* lets the server act on its step (close) first */
    }
    ob_http_client_destroy(c);
    ob_http_origin_free(&o);
    server_stop(s);
    return all_answered;
}

/* One answer, one request: what the client makes of each framing. */
TEST(each_answer_framing_gives_its_status_and_body_or_its_failure)
{
    static const struct {
        const char *what;
        struct step step;
        int64_t timeout_ms;
        enum ob_http_failure failure;
        int status;
        const char *body;
    } cases[] = {
        { "a body of known length comes back whole",
          { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false }, 0, OB_HTTP_OK, 200, "hello" },
        { "a chunked body is put back together, its extensions and trailers ignored",
          { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n", false },
          0, OB_HTTP_OK, 200, "abcde" },
        { "an interim 100 Continue is passed over",
          { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", false }, 0, OB_HTTP_OK, 204, "" },
        { "a body without length ends with the connection",
          { "HTTP/1.0 200 OK\r\n\r\nxyz", true }, 0, OB_HTTP_OK, 200, "xyz" },
        { "a body cut short is a broken connection, not an answer",
          { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true }, 0, OB_HTTP_IO, 0, NULL },
        { "what is not HTTP is a protocol error", { "HELLO THERE\r\n\r\n", false }, 0, OB_HTTP_PROTOCOL, 0, NULL },
        { "no answer within the request timeout is a timeout", { NULL, false }, 200, OB_HTTP_TIMEOUT, 0, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct server s;
        struct ob_http_exchange ex;
        struct ob_buf rx = { 0 };
        play(&cases[i].step, 1, cases[i].timeout_ms, &s, &ex, &rx);
        if (ex.failure != cases[i].failure || ex.status != cases[i].status ||
            (cases[i].body && strcmp(ob_buf_cstr(&rx), cases[i].body) != 0))
            ob_test_fail(__FILE__, __LINE__, "%s: failure %d (%s), status %d, body '%s'", cases[i].what,
                         (int)ex.failure, ex.error, ex.status, ob_buf_cstr(&rx));
        ob_buf_free(&rx);
    }
}

TEST(a_request_times_out_on_its_own_deadline_after_earlier_requests_were_answered)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false },
        { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false },
        { NULL, false },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    CHECK(play(steps, 3, 300, &s, &ex, &rx));
    CHECK_INT(ex.failure, OB_HTTP_TIMEOUT);
    ob_buf_free(&rx);
}

TEST(requests_share_one_kept_alive_connection)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", false },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", false },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    CHECK(play(steps, 3, 0, &s, &ex, &rx));
    CHECK_STR(ob_buf_cstr(&rx), "c");
    CHECK_INT(s.accepted, 1);
    ob_buf_free(&rx);
}

TEST(a_request_sent_on_a_kept_alive_connection_goes_out_before_any_drive)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", false },
    };
    struct server s;
    server_start(&s, steps, 2);
    struct ob_http_origin o = { 0 };
    ob_http_origin_set(&o, false, "127.0.0.1", s.port);
    struct ob_http_client *c = client(0);
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange(c, &o, &ex, &rx); /* opens the connection and keeps it */
    CHECK_INT(ex.failure, OB_HTTP_OK);

    exchange_start(c, &o, &ex, &rx);
    ob_http_client_send(c);
    for (int i = 0; i < 200 && atomic_load(&s.requests_read) < 2; i++)
        usleep(10000);
    CHECK_INT(atomic_load(&s.requests_read), 2);
    CHECK(ob_http_client_next_done(c) == NULL); /* the answer is not looked for until a drive */
    for (int i = 0; i < 50 && ob_http_client_next_done(c) != &ex; i++)
        ob_http_client_drive(c, 100);
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_STR(ob_buf_cstr(&rx), "b");
    ob_http_client_destroy(c);
    ob_http_origin_free(&o);
    server_stop(&s);
    ob_buf_free(&rx);
}

TEST(connection_close_in_an_answer_makes_the_next_request_open_a_new_connection)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na", true },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", false },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    CHECK(play(steps, 2, 0, &s, &ex, &rx));
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_INT(s.accepted, 2);
    ob_buf_free(&rx);
}

TEST(new_connections_to_a_host_share_one_lookup_of_its_name)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na", true },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nb", true },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc", false },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    atomic_store(&lookups, 0);
    CHECK(play(steps, 3, 0, &s, &ex, &rx));
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_INT(s.accepted, 3);
    CHECK_INT(atomic_load(&lookups), 1);
    ob_buf_free(&rx);
}

TEST(a_kept_alive_connection_the_server_dropped_is_replaced_without_failing_the_request)
{
    /* The server closes after answering, without saying so: the client
     * finds out only when its next request meets the closed connection. */
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", true },
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", false },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    CHECK(play(steps, 2, 0, &s, &ex, &rx));
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_STR(ob_buf_cstr(&rx), "b");
    CHECK_INT(s.accepted, 2);
    ob_buf_free(&rx);
}

TEST(a_refused_connection_says_so_with_the_errno)
{
    /* A port just closed has no listener. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    char port[8];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    struct ob_http_origin o = { 0 };
    ob_http_origin_set(&o, false, "127.0.0.1", port);
    struct ob_http_client *c = client(0);
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange(c, &o, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK_INT(ex.os_errno, ECONNREFUSED);
    CHECK(strstr(ex.error, "Connection refused") != NULL);
    /* The address may be gone for good: the next connection asks again. */
    atomic_store(&lookups, 0);
    exchange(c, &o, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK_INT(atomic_load(&lookups), 1);
    ob_http_client_destroy(c);
    ob_http_origin_free(&o);
    ob_buf_free(&rx);
}

TEST(an_origin_key_tells_scheme_host_and_port_apart)
{
    struct ob_http_origin a = { 0 }, b = { 0 }, v6 = { 0 };
    ob_http_origin_set(&a, false, "h", "80");
    ob_http_origin_set(&b, true, "h", "80");
    ob_http_origin_set(&v6, false, "[::1]", "8000");
    CHECK(strcmp(a.key, b.key) != 0);
    CHECK_STR(v6.host, "::1");
    ob_http_origin_free(&a);
    ob_http_origin_free(&b);
    ob_http_origin_free(&v6);
}

TEST(a_request_already_sent_is_not_sent_again_when_its_connection_breaks)
{
    /* The server may have acted on it (a POST is not replayable): the
     * caller hears of the failure instead of the server seeing it twice. */
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", false },
        { "", true },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    CHECK(play(steps, 2, 0, &s, &ex, &rx));
    CHECK_INT(ex.failure, OB_HTTP_IO);
    CHECK_INT(s.accepted, 1);
    ob_buf_free(&rx);
}

TEST(a_body_announced_larger_than_it_is_takes_memory_only_as_its_bytes_arrive)
{
    /* 200 MB announced, 3 bytes sent: a peer must not make each connection
     * hold the memory of a length it merely names. */
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\nabc", true },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    play(steps, 1, 0, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_IO);
    if (rx.cap > ((size_t)4 << 20))
        ob_test_fail(__FILE__, __LINE__, "the body buffer holds %zu bytes for the 3 that arrived", rx.cap);
    ob_buf_free(&rx);
}

TEST(a_body_longer_than_what_is_reserved_up_front_comes_back_whole)
{
    size_t body_len = (size_t)3 << 20;
    struct ob_buf answer = { 0 };
    ob_buf_printf(&answer, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body_len);
    size_t head_len = answer.len;
    for (size_t i = 0; i < body_len; i++)
        ob_buf_putc(&answer, (char)('a' + i % 26));
    const struct step steps[] = { { answer.data, false } };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    play(steps, 1, 0, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_INT(rx.len, body_len);
    CHECK(memcmp(rx.data, answer.data + head_len, body_len) == 0);
    ob_buf_free(&rx);
    ob_buf_free(&answer);
}

TEST(a_body_announced_beyond_the_limit_is_refused_saying_so)
{
    static const struct step steps[] = {
        { "HTTP/1.1 200 OK\r\nContent-Length: 300000000\r\n\r\nabc", true },
    };
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    play(steps, 1, 0, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_PROTOCOL);
    CHECK_STR(ex.error, "the answer's body is larger than 256 MiB");
    ob_buf_free(&rx);
}

/* ---- through a proxy (the server plays the proxy) ---- */

/* One exchange with origin (tls, host, port) through a proxy at
 * 127.0.0.1 that answers `answer`, reachable as proxy_url's host. */
static void exchange_via_proxy(const char *variable, const char *userinfo, bool tls, bool direct,
                               const char *answer, struct server *s, struct ob_http_exchange *ex, struct ob_buf *rx)
{
    static struct step step;
    step = (struct step){ .answer = answer, .close_after = true };
    server_start(s, &step, 1);
    char url[128];
    snprintf(url, sizeof url, "http://%s127.0.0.1:%s", userinfo, s->port);
    setenv(variable, url, 1);
    struct ob_http_client_options opt = { .connect_timeout_ms = 2000, .request_timeout_ms = 3000,
                                          .tls_verify = true, .direct = direct };
    struct ob_error err = { 0 };
    struct ob_http_client *c = ob_http_client_create(&opt, &err);
    unsetenv(variable);
    struct ob_http_origin o = { 0 };
    ob_http_origin_set(&o, tls, "origin.invalid", tls ? "443" : "8080");
    exchange(c, &o, ex, rx);
    ob_http_client_destroy(c);
    ob_http_origin_free(&o);
    server_stop(s);
}

TEST(an_http_request_through_a_proxy_goes_in_absolute_form_with_its_credentials)
{
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTP_PROXY", "u:p@", false, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", &s,
                       &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_OK);
    CHECK_STR(s.last_request, "POST http://origin.invalid:8080/x HTTP/1.1\r\n"
                              "Proxy-Authorization: Basic dTpw\r\n"
                              "Host: test\r\nContent-Length: 2\r\n\r\n{}");
    CHECK_STR(rx.data, "ok");
    ob_buf_free(&rx);
}

TEST(a_proxy_asking_for_credentials_is_a_connect_failure_that_says_so)
{
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    const char *refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                          "Content-Length: 0\r\n\r\n";
    exchange_via_proxy("HTTPS_PROXY", "u:hunter2@", true, false, refusal, &s, &ex, &rx);
    CHECK_STR(s.last_request, "CONNECT origin.invalid:443 HTTP/1.1\r\nHost: origin.invalid:443\r\n"
                              "Proxy-Authorization: Basic dTpodW50ZXIy\r\n\r\n");
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK(strstr(ex.error, "refused CONNECT to origin.invalid:443: proxy authentication required") != NULL);
    CHECK(strstr(ex.error, "hunter2") == NULL);
    /* Over plain http the proxy's 407 is the answer: the same failure. */
    exchange_via_proxy("HTTP_PROXY", "u:hunter2@", false, false, refusal, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK(strstr(ex.error, "proxy authentication required") != NULL);
    ob_buf_free(&rx);
}

TEST(a_direct_client_ignores_the_proxy_variables)
{
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    /* Direct, origin.invalid does not resolve: the proxy never hears of it. */
    exchange_via_proxy("HTTP_PROXY", "", false, true, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &s, &ex,
                       &rx);
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK(strstr(ex.error, "cannot resolve origin.invalid") != NULL);
    CHECK_INT(atomic_load(&s.requests_read), 0);
    ob_buf_free(&rx);
}

TEST(a_proxy_variable_outboxd_cannot_use_fails_each_connection_saying_why)
{
    setenv("HTTPS_PROXY", "socks5://u:hunter2@127.0.0.1:1080", 1);
    struct ob_http_client_options opt = { .connect_timeout_ms = 2000, .tls_verify = true };
    struct ob_error err = { 0 };
    struct ob_http_client *c = ob_http_client_create(&opt, &err);
    unsetenv("HTTPS_PROXY");
    CHECK(c != NULL);
    struct ob_http_origin o = { 0 };
    ob_http_origin_set(&o, true, "origin.invalid", "443");
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange(c, &o, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_CONNECT);
    CHECK(strstr(ex.error, "HTTPS_PROXY: only http:// proxies are supported") != NULL);
    CHECK(strstr(ex.error, "hunter2") == NULL);
    ob_http_client_destroy(c);
    ob_http_origin_free(&o);
    ob_buf_free(&rx);
}

TEST(interim_answers_to_connect_are_passed_over_until_the_tunnel_opens)
{
    /* A client must read 1xx answers before the final one (RFC 9110
     * §15.2). The proxy then hangs up: the TLS handshake through the
     * tunnel is what fails, not CONNECT. */
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTPS_PROXY", "", true, false,
                       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\n"
                       "HTTP/1.1 200 Connection established\r\n\r\n",
                       &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_TLS);
    CHECK(strstr(ex.error, "refused") == NULL);
    ob_buf_free(&rx);
}

TEST(a_tunnel_the_proxy_closes_after_its_200_fails_the_handshake_naming_the_proxy)
{
    /* Nothing of the request went out: the caller's retry sends it once. */
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTPS_PROXY", "", true, false, "HTTP/1.1 200 Connection established\r\n\r\n", &s, &ex,
                       &rx);
    CHECK_INT(ex.failure, OB_HTTP_TLS);
    char proxy[64];
    snprintf(proxy, sizeof proxy, "through proxy 127.0.0.1:%s", s.port);
    if (!strstr(ex.error, proxy))
        ob_test_fail(__FILE__, __LINE__, "'%s' does not name the proxy", ex.error);
    CHECK_INT(atomic_load(&s.requests_read), 1); /* the CONNECT */
    ob_buf_free(&rx);
}

TEST(a_proxy_that_never_answers_connect_is_given_up_at_the_connect_timeout_naming_it)
{
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTPS_PROXY", "", true, false, NULL, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_TIMEOUT);
    char proxy[64];
    snprintf(proxy, sizeof proxy, "through proxy 127.0.0.1:%s", s.port);
    if (!strstr(ex.error, "connect timed out after 2000 ms") || !strstr(ex.error, proxy))
        ob_test_fail(__FILE__, __LINE__, "'%s' does not say the connect through the proxy timed out", ex.error);
    ob_buf_free(&rx);
}

TEST(bytes_after_the_answer_to_connect_are_refused_before_tls_starts)
{
    /* The origin speaks only after the client hello: what comes with the
     * 200 is the proxy's, not the origin's, and cannot be taken. */
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTPS_PROXY", "", true, false, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", &s, &ex,
                       &rx);
    CHECK_INT(ex.failure, OB_HTTP_PROTOCOL);
    CHECK(strstr(ex.error, "sent bytes after its answer to CONNECT") != NULL);
    ob_buf_free(&rx);
}

TEST(interim_answers_to_connect_without_end_are_refused_past_64_kib)
{
    struct ob_buf answer = { 0 };
    while (answer.len <= 65536)
        ob_buf_puts(&answer, "HTTP/1.1 100 Continue\r\n\r\n");
    struct server s;
    struct ob_http_exchange ex;
    struct ob_buf rx = { 0 };
    exchange_via_proxy("HTTPS_PROXY", "", true, false, answer.data, &s, &ex, &rx);
    CHECK_INT(ex.failure, OB_HTTP_PROTOCOL);
    CHECK(strstr(ex.error, "without a final answer to CONNECT") != NULL);
    ob_buf_free(&rx);
    ob_buf_free(&answer);
}
