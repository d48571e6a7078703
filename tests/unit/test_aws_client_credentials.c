/* aws/client with a credential provider: every request signed with the
 * provider's current credentials, an expired-token answer refreshed and
 * retried, and one whose attempts run out still retriable. A loopback
 * server answers ExpiredTokenException to requests signed with the keys
 * it calls expired, and {} to the others. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "aws/client.h"
#include "aws/credentials_provider.h"
#include "test.h"

static const char expired_body[] = "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ExpiredTokenException\","
                                   "\"message\":\"The security token included in the request is expired\"}";

struct server {
    int listen_fd;
    char url[64];
    const char *expired_key; /* requests signed with it are answered "expired" */
    atomic_bool stop;
    atomic_int requests;
    char last_key[64];       /* the access key id of the last request */
    pthread_t thread;
};

static const struct timeval patience = { .tv_usec = 200000 };

/* Reads one request into buf (head and Content-Length body); false at EOF or timeout. */
static bool read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strstr(buf, "Content-Length: ");
        if (end && len >= (size_t)(end + 4 - buf) + (cl ? (size_t)atoi(cl + 16) : 0))
            return true;
    }
}

static void *serve(void *arg)
{
    struct server *s = arg;
    char buf[8192];
    while (!atomic_load(&s->stop)) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
        while (!atomic_load(&s->stop)) {
            if (!read_request(fd, buf, sizeof buf)) {
                if (atomic_load(&s->stop))
                    break;
                continue;
            }
            const char *cred = strstr(buf, "Credential=");
            size_t n = cred ? strcspn(cred + 11, "/") : 0;
            snprintf(s->last_key, sizeof s->last_key, "%.*s", (int)n, cred ? cred + 11 : "");
            atomic_fetch_add(&s->requests, 1);
            bool expired = strcmp(s->last_key, s->expired_key) == 0;
            const char *body = expired ? expired_body : "{}";
            char answer[512];
            int len = snprintf(answer, sizeof answer,
                               "HTTP/1.1 %s\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: %zu\r\n\r\n%s",
                               expired ? "400 Bad Request" : "200 OK", strlen(body), body);
            if (write(fd, answer, (size_t)len) < 0)
                break;
        }
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *s, const char *expired_key)
{
    memset(s, 0, sizeof *s);
    s->expired_key = expired_key;
    int port;
    s->listen_fd = ob_test_listen_loopback(200, &port);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/", port);
    pthread_create(&s->thread, NULL, serve, s);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

/* Hands out "AKID<n>" on its call n; they do not expire. */
static enum ob_err numbered_keys(void *ctx, struct ob_aws_credentials *out, struct ob_error *err)
{
    (void)err;
    atomic_int *calls = ctx;
    int n = atomic_fetch_add(calls, 1) + 1;
    char akid[16];
    snprintf(akid, sizeof akid, "AKID%d", n);
    memset(out, 0, sizeof *out);
    out->access_key_id = ob_xstrdup(akid);
    out->secret_access_key = ob_xstrdup("secret");
    out->session_token = ob_xstrdup("token");
    snprintf(out->source, sizeof out->source, "numbered keys");
    return OB_OK;
}

static const struct ob_aws_service service = {
    .signing_name = "dynamodb",
    .target_prefix = "DynamoDB_20120810",
    .content_type = "application/x-amz-json-1.0",
};

/* One PutItem through a client of provider p, max_attempts attempts. */
static enum ob_err put_once(const struct server *srv, struct ob_cred_provider *p, int max_attempts,
                            struct ob_error *err)
{
    struct ob_aws_client_options o = {
        .region = "us-east-1",
        .credentials = p,
        .max_attempts = max_attempts,
        .retry_base_delay_ms = 100,
        .retry_max_delay_ms = 400,
        .connect_timeout_ms = 1000,
        .request_timeout_ms = 2000,
    };
    struct ob_aws_client *c = NULL;
    struct ob_aws_endpoint ep;
    if (ob_aws_client_create(&o, &c, err) || ob_aws_endpoint_parse(srv->url, &ep, err))
        abort();
    struct ob_aws_session *s = ob_aws_session_create(c);
    json_t *req = json_pack("{s:s}", "TableName", "outbox");
    enum ob_err rc = ob_aws_call_json(s, &service, &ep, "PutItem", req, NULL, err);
    json_decref(req);
    ob_aws_session_destroy(s);
    ob_aws_endpoint_free(&ep);
    ob_aws_client_destroy(c);
    return rc;
}

TEST(an_expired_token_answer_is_retried_with_the_refreshed_credentials)
{
    struct server srv;
    server_start(&srv, "AKID1");
    atomic_int calls = 0;
    const struct ob_cred_source source = { .resolve = numbered_keys, .ctx = &calls };
    struct ob_cred_provider *p = NULL;
    struct ob_error err = { 0 };
    CHECK_INT(ob_cred_provider_create_from(&source, true, &p, &err), OB_OK);
    CHECK_INT(put_once(&srv, p, 8, &err), OB_OK);
    server_stop(&srv);
    CHECK_STR(srv.last_key, "AKID2");
    CHECK(atomic_load(&srv.requests) >= 2);
    CHECK_INT(atomic_load(&calls), 2);
    ob_cred_provider_destroy(p);
}

TEST(an_expired_token_that_outlasts_the_attempts_stays_retriable_for_the_caller)
{
    struct server srv;
    server_start(&srv, "AKIDSTUCK");
    const struct ob_aws_credentials stuck = { .access_key_id = "AKIDSTUCK", .secret_access_key = "stuck-secret",
                                              .session_token = "stuck-token" };
    struct ob_cred_provider *p = ob_cred_provider_static(&stuck);
    struct ob_error err = { 0 };
    CHECK_INT(put_once(&srv, p, 3, &err), OB_ERR_CREDENTIALS);
    server_stop(&srv);
    CHECK(err.retriable);
    CHECK_INT(atomic_load(&srv.requests), 3);
    CHECK(strstr(err.msg, "ExpiredTokenException: The security token included in the request is expired") != NULL);
    ob_cred_provider_destroy(p);
}
