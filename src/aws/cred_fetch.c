#include "aws/cred_fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aws/cred_answers.h"
#include "aws/http_client.h"
#include "aws/sigv4.h"
#include "core/url.h"
#include "ops/clock.h"

extern char **environ;

/* One request, for fetch(). */
struct fetch {
    const char *method;
    const char *url;
    const char *headers; /* extra header lines, each ending in CRLF; NULL: none */
    const char *body;
    size_t body_len;
    int64_t timeout_ms;
    int attempts;          /* tries on no answer or a 5xx */
    int64_t retry_delay_ms;
    bool direct;           /* never through a proxy: the metadata addresses */
};

/* One exchange on a client of its own, driven until it is done. */
static void exchange_once(struct ob_http_client *client, struct ob_http_exchange *ex)
{
    ob_http_client_start(client, ex);
    while (ob_http_client_next_done(client) != ex)
        ob_http_client_drive(client, 200);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sends f and leaves the answer's status in *status and its body in rx
 * (any status: the caller reads it). No answer after every attempt is
 * OB_ERR_NETWORK (retriable). */
static enum ob_err fetch(const struct fetch *f, const char *source, int *status, struct ob_buf *rx,
                         struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_url u;
    struct ob_http_origin origin = { 0 };
    struct ob_buf head = { 0 };
    struct ob_http_client *client = NULL;
    struct ob_error why = { 0 };

    if (ob_url_parse(f->url, &u, &why) != OB_OK)
        return ob_error_set(err, OB_ERR_CONFIG, "%s: %s", source, why.msg);
    ob_http_origin_set(&origin, u.tls, u.host, ob_url_port(&u));
    ob_buf_cat(&head, f->method, " ", u.path, u.query ? "?" : "", u.query ? u.query : "", " HTTP/1.1\r\nHost: ",
               u.host, u.port ? ":" : "", u.port ? u.port : "", "\r\n", f->headers ? f->headers : "", NULL);
    ob_buf_printf(&head, "Content-Length: %zu\r\nUser-Agent: outboxd\r\n\r\n", f->body_len);
    struct ob_http_client_options opt = {
        .max_connections = 1,
        .connect_timeout_ms = f->timeout_ms,
        .request_timeout_ms = f->timeout_ms,
        .tls_verify = true,
        .direct = f->direct,
    };
    client = ob_http_client_create(&opt, err);
    if (!client) {
        rc = err ? err->code : OB_ERR_INTERNAL;
        goto out;
    }
    for (int attempt = 1;; attempt++) {
        struct ob_http_exchange ex = {
            .origin = &origin, .head = head.data, .head_len = head.len,
            .body = f->body, .body_len = f->body_len, .rx = rx,
        };
        ob_buf_reset(rx);
        exchange_once(client, &ex);
        if (ex.failure == OB_HTTP_OK) {
            *status = ex.status;
            if (ex.status < 500 || attempt >= f->attempts)
                break;
        } else if (attempt >= f->attempts) {
            rc = ob_error_set(err, OB_ERR_NETWORK, "%s: %s", source, ex.error);
            if (err)
                err->retriable = true;
            break;
        }
        sleep_ms(f->retry_delay_ms);
    }
out:
    if (head.data)
        explicit_bzero(head.data, head.len); /* it may carry a token */
    ob_buf_free(&head);
    ob_http_client_destroy(client);
    ob_http_origin_free(&origin);
    ob_url_free(&u);
    return rc;
}

static void wipe(struct ob_buf *b)
{
    if (b->data)
        explicit_bzero(b->data, b->cap);
    ob_buf_free(b);
}

/* ---- STS ---------------------------------------------------------- */

void ob_sts_endpoint(const char *region, struct ob_buf *out)
{
    const char *url = getenv("AWS_ENDPOINT_URL_STS");
    if (!url || !*url)
        url = getenv("AWS_ENDPOINT_URL");
    if (url && *url)
        ob_buf_puts(out, url);
    else if (region && *region)
        ob_buf_printf(out, "https://sts.%s.amazonaws.com/", region);
    else
        ob_buf_puts(out, "https://sts.amazonaws.com/");
}

#define STS_TIMEOUT_MS 10000
#define STS_FORM "Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n"

static void sts_params(const struct ob_assume_role *r, struct ob_sts_param p[4], char session[40], char duration[16])
{
    snprintf(session, 40, "outboxd-%lld", (long long)time(NULL));
    snprintf(duration, 16, "%d", r->duration_seconds);
    p[0] = (struct ob_sts_param){ "RoleArn", r->role_arn };
    p[1] = (struct ob_sts_param){ "RoleSessionName", r->session_name ? r->session_name : session };
    p[2] = (struct ob_sts_param){ "DurationSeconds", r->duration_seconds ? duration : NULL };
    p[3] = (struct ob_sts_param){ "ExternalId", r->external_id };
}

/* POSTs form to STS (headers: extra lines, e.g. the signature) and parses
 * its answer. */
static enum ob_err sts_call(const char *url, const char *headers, const struct ob_buf *form, const char *source,
                            struct ob_aws_credentials *out, struct ob_error *err)
{
    struct ob_buf rx = { 0 };
    int status = 0;
    struct fetch f = {
        .method = "POST", .url = url, .headers = headers, .body = form->data, .body_len = form->len,
        .timeout_ms = STS_TIMEOUT_MS, .attempts = 2, .retry_delay_ms = 500,
    };
    enum ob_err rc = fetch(&f, source, &status, &rx, err);
    if (!rc)
        rc = ob_sts_answer_parse(status, rx.data ? rx.data : "", rx.len, source, out, err);
    wipe(&rx);
    return rc;
}

/* Tokens are a few KiB (JWTs); past this the path is not a token file
 * (/dev/zero would be read until memory ran out). */
#define TOKEN_FILE_MAX (64 * 1024)

enum ob_err ob_cred_token_file_read(const char *path, const char *source, struct ob_buf *out, struct ob_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: cannot read token file %s: %s", source, path,
                            strerror(errno));
    char chunk[4096];
    size_t n;
    while (out->len <= TOKEN_FILE_MAX && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ob_buf_append(out, chunk, n);
    explicit_bzero(chunk, sizeof chunk);
    bool failed = ferror(f);
    fclose(f);
    if (failed)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: cannot read token file %s", source, path);
    if (out->len > TOKEN_FILE_MAX)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: token file %s is larger than %d KiB", source, path,
                            TOKEN_FILE_MAX / 1024);
    while (out->len && strchr(" \t\r\n", out->data[out->len - 1]))
        out->data[--out->len] = '\0';
    if (!out->len)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: token file %s is empty", source, path);
    return OB_OK;
}

enum ob_err ob_sts_assume_role_with_web_identity(const struct ob_assume_role *r, const char *token_file,
                                                 const char *source, struct ob_aws_credentials *out,
                                                 struct ob_error *err)
{
    struct ob_buf token = { 0 }, form = { 0 }, url = { 0 };
    struct ob_sts_param p[4];
    char session[40], duration[16];

    memset(out, 0, sizeof *out);
    enum ob_err rc = ob_cred_token_file_read(token_file, source, &token, err);
    if (rc)
        goto out;
    sts_params(r, p, session, duration);
    p[3] = (struct ob_sts_param){ "WebIdentityToken", ob_buf_cstr(&token) };
    ob_sts_form(&form, "AssumeRoleWithWebIdentity", p, 4);
    ob_sts_endpoint(r->region, &url);
    rc = sts_call(ob_buf_cstr(&url), STS_FORM, &form, source, out, err);
out:
    wipe(&token);
    wipe(&form);
    ob_buf_free(&url);
    return rc;
}

enum ob_err ob_sts_assume_role(const struct ob_assume_role *r, const struct ob_aws_credentials *by,
                               const char *source, struct ob_aws_credentials *out, struct ob_error *err)
{
    enum ob_err rc;
    struct ob_buf form = { 0 }, url = { 0 }, headers = { 0 };
    struct ob_sts_param p[4];
    struct ob_url u = { 0 };
    struct ob_sigv4_signed sig = { 0 };
    char session[40], duration[16], amz_date[17];

    memset(out, 0, sizeof *out);
    sts_params(r, p, session, duration);
    ob_sts_form(&form, "AssumeRole", p, 4);
    ob_sts_endpoint(r->region, &url);
    rc = ob_url_parse(ob_buf_cstr(&url), &u, err);
    if (rc) {
        ob_error_prefix(err, "%s", source);
        goto out;
    }
    struct ob_buf host = { 0 };
    ob_buf_cat(&host, u.host, u.port ? ":" : "", u.port ? u.port : "", NULL);
    const struct ob_http_header h[] = {
        { "Host", ob_buf_cstr(&host) },
        { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
    };
    struct ob_sigv4_request req = {
        .method = "POST", .path = u.path, .query = u.query, .headers = h, .n_headers = 2,
        .body = form.data, .body_len = form.len,
    };
    ob_sigv4_amz_date(time(NULL), amz_date);
    /* The global endpoint signs for us-east-1. */
    struct ob_sigv4_params sp = {
        .region = r->region && *r->region ? r->region : "us-east-1", .service = "sts", .amz_date = amz_date,
        .normalize_path = true,
    };
    rc = ob_sigv4_sign(&req, by, &sp, &sig, err);
    ob_buf_free(&host);
    if (rc) {
        ob_error_prefix(err, "%s", source);
        goto out;
    }
    ob_buf_puts(&headers, STS_FORM);
    for (size_t i = 0; i < sig.n_add; i++)
        ob_buf_cat(&headers, sig.add[i].name, ": ", sig.add[i].value, "\r\n", NULL);
    ob_buf_cat(&headers, "Authorization: ", ob_buf_cstr(&sig.authorization), "\r\n", NULL);
    rc = sts_call(ob_buf_cstr(&url), ob_buf_cstr(&headers), &form, source, out, err);
out:
    wipe(&headers);
    ob_sigv4_signed_free(&sig);
    ob_url_free(&u);
    ob_buf_free(&form);
    ob_buf_free(&url);
    return rc;
}

/* ---- the container endpoint and instance metadata ----------------- */

/* An answer that is not 200, as an error naming the source. */
static enum ob_err status_error(int status, const char *source, const char *what, struct ob_error *err)
{
    enum ob_err rc = ob_error_set(err, status >= 500 ? OB_ERR_SERVICE : OB_ERR_CREDENTIALS,
                                  "%s: %s answered HTTP %d", source, what, status);
    if (err) {
        err->http_status = status;
        err->retriable = status >= 500 || status == 429;
    }
    return rc;
}

enum ob_err ob_container_fetch(const char *url, const char *authorization, const char *source,
                               struct ob_aws_credentials *out, struct ob_error *err)
{
    struct ob_buf headers = { 0 }, rx = { 0 };
    int status = 0;

    memset(out, 0, sizeof *out);
    if (authorization)
        ob_buf_cat(&headers, "Authorization: ", authorization, "\r\n", NULL);
    struct fetch f = {
        .method = "GET", .url = url, .headers = ob_buf_cstr(&headers), .timeout_ms = 2000, .attempts = 3,
        .retry_delay_ms = 1000, .direct = true,
    };
    enum ob_err rc = fetch(&f, source, &status, &rx, err);
    if (!rc && status != 200)
        rc = status_error(status, source, "the endpoint", err);
    if (!rc)
        rc = ob_cred_json_parse(rx.data ? rx.data : "", rx.len, OB_CRED_JSON_ENDPOINT, source, out, err);
    wipe(&headers);
    wipe(&rx);
    return rc;
}

#define IMDS_TOKEN_TTL_S 21600
#define IMDS_TOKEN_TTL_HEADER "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"
/* A token is fetched again this long before its TTL ends. */
#define IMDS_TOKEN_MARGIN_S 300

/* The IMDSv2 session token, shared by the process's lookups. */
static struct {
    pthread_mutex_t mu;
    char token[512];
    bool v1;            /* none: the service has no tokens (IMDSv1) */
    char endpoint[256]; /* the endpoint it is for */
    int64_t until_ms;   /* monotonic */
} imds = { .mu = PTHREAD_MUTEX_INITIALIZER };

static enum ob_err imds_request(const char *method, const char *endpoint, const char *path, const char *headers,
                                const char *source, int *status, struct ob_buf *rx, struct ob_error *err)
{
    struct ob_buf url = { 0 };
    size_t n = strlen(endpoint);
    while (n && endpoint[n - 1] == '/')
        n--;
    ob_buf_append(&url, endpoint, n);
    ob_buf_puts(&url, path);
    struct fetch f = {
        .method = method, .url = ob_buf_cstr(&url), .headers = headers, .timeout_ms = 1000, .attempts = 2,
        .retry_delay_ms = 100, .direct = true,
    };
    enum ob_err rc = fetch(&f, source, status, rx, err);
    ob_buf_free(&url);
    return rc;
}

/* Whether a token request answered status means an IMDSv1-only service,
 * read without a token as the SDKs do unless AWS_EC2_METADATA_V1_DISABLED
 * is true. */
static bool imds_v1_fallback(int status)
{
    const char *v1_disabled = getenv("AWS_EC2_METADATA_V1_DISABLED");
    return (status == 403 || status == 404 || status == 405) &&
           !(v1_disabled && strcasecmp(v1_disabled, "true") == 0);
}

/* Copies the session token into header as its header line, fetching a
 * new one when there is none, it is near its end, or `stale` (a 401);
 * leaves header empty where IMDSv1 is read without one. */
static enum ob_err imds_token_header(const char *endpoint, bool stale, const char *source, struct ob_buf *header,
                                     struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_buf rx = { 0 };
    int status = 0;

    pthread_mutex_lock(&imds.mu);
    if (stale || !(imds.token[0] || imds.v1) || strcmp(imds.endpoint, endpoint) != 0 ||
        ob_mono_ms() >= imds.until_ms) {
        imds.token[0] = '\0';
        imds.v1 = false;
        rc = imds_request("PUT", endpoint, "/latest/api/token", IMDS_TOKEN_TTL_HEADER, source, &status, &rx, err);
        imds.v1 = !rc && imds_v1_fallback(status);
        if (!rc && status != 200 && !imds.v1)
            rc = status_error(status, source, "the token request (PUT /latest/api/token)", err);
        if (!rc && !imds.v1 && (!rx.len || rx.len >= sizeof imds.token || strpbrk(ob_buf_cstr(&rx), "\r\n")))
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the token answer is not a token", source);
        if (rc)
            goto out;
        if (!imds.v1)
            memcpy(imds.token, rx.data, rx.len + 1);
        snprintf(imds.endpoint, sizeof imds.endpoint, "%s", endpoint);
        imds.until_ms = ob_mono_ms() + (int64_t)(IMDS_TOKEN_TTL_S - IMDS_TOKEN_MARGIN_S) * 1000;
    }
    if (!imds.v1)
        ob_buf_cat(header, "X-aws-ec2-metadata-token: ", imds.token, "\r\n", NULL);
out:
    pthread_mutex_unlock(&imds.mu);
    wipe(&rx);
    return rc;
}

/* GET path with the session token; a 401 (the token expired or the
 * instance restarted) fetches a new token and tries once more. Any other
 * status than 200 is an error. */
static enum ob_err imds_get(const char *endpoint, const char *path, const char *source, struct ob_buf *rx,
                            struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_buf header = { 0 };
    int status = 401;
    for (int attempt = 0; attempt < 2 && status == 401; attempt++) {
        ob_buf_reset(&header);
        rc = imds_token_header(endpoint, attempt > 0, source, &header, err);
        if (!rc)
            rc = imds_request("GET", endpoint, path, ob_buf_cstr(&header), source, &status, rx, err);
        if (rc)
            goto out;
    }
    if (status == 404 && strcmp(path, "/latest/meta-data/iam/security-credentials/") == 0)
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the instance has no IAM role (instance profile)", source);
    else if (status != 200)
        rc = status_error(status, source, path, err);
out:
    wipe(&header);
    return rc;
}

enum ob_err ob_imds_credentials(const char *endpoint, const char *source, struct ob_aws_credentials *out,
                                struct ob_error *err)
{
    static const char roles[] = "/latest/meta-data/iam/security-credentials/";
    struct ob_buf rx = { 0 }, path = { 0 };

    memset(out, 0, sizeof *out);
    enum ob_err rc = imds_get(endpoint, roles, source, &rx, err);
    if (rc)
        goto out;
    /* One role per instance profile: the first line. */
    size_t n = strcspn(ob_buf_cstr(&rx), "\r\n");
    if (!n) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the instance has no IAM role (instance profile)", source);
        goto out;
    }
    ob_buf_puts(&path, roles);
    ob_buf_append(&path, rx.data, n);
    rc = imds_get(endpoint, ob_buf_cstr(&path), source, &rx, err);
    if (!rc)
        rc = ob_cred_json_parse(rx.data ? rx.data : "", rx.len, OB_CRED_JSON_ENDPOINT, source, out, err);
out:
    wipe(&rx);
    ob_buf_free(&path);
    return rc;
}

enum ob_err ob_imds_region(const char *endpoint, char **out, struct ob_error *err)
{
    struct ob_buf rx = { 0 }, source = { 0 };
    *out = NULL;
    ob_buf_printf(&source, "instance metadata %s", endpoint);
    enum ob_err rc = imds_get(endpoint, "/latest/meta-data/placement/region", ob_buf_cstr(&source), &rx, err);
    if (!rc) {
        size_t n = strcspn(ob_buf_cstr(&rx), " \t\r\n");
        if (!n)
            rc = ob_error_set(err, OB_ERR_CONFIG, "%s: the region answer is empty", ob_buf_cstr(&source));
        else
            *out = strndup(rx.data, n);
    }
    ob_buf_free(&rx);
    ob_buf_free(&source);
    return rc;
}

/* ---- credential_process ------------------------------------------- */

/* Reads the child's stdout into out and its stderr into errs until both
 * close or deadline_ms (monotonic) passes; false on the deadline. */
static bool read_child(int out_fd, int err_fd, int64_t deadline_ms, struct ob_buf *out, struct ob_buf *errs)
{
    struct pollfd p[2] = { { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };
    struct ob_buf *to[2] = { out, errs };
    int open_fds = 2;
    while (open_fds) {
        int64_t left = deadline_ms - ob_mono_ms();
        if (left <= 0)
            return false;
        if (poll(p, 2, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
            return false;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t n = read(p[i].fd, chunk, sizeof chunk);
            if (n > 0 && to[i]->len < (1u << 20)) {
                ob_buf_append(to[i], chunk, (size_t)n);
            } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                p[i].fd = -1;
                open_fds--;
            }
            explicit_bzero(chunk, sizeof chunk);
        }
    }
    return true;
}

/* Waits for the child to exit until deadline_ms (monotonic): it may close
 * its output and run on. False on the deadline. */
static bool child_exited(pid_t pid, int64_t deadline_ms, int *wstatus)
{
    for (;;) {
        pid_t r = waitpid(pid, wstatus, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return true;
        if (ob_mono_ms() >= deadline_ms)
            return false;
        sleep_ms(10);
    }
}

enum ob_err ob_credential_process_run(const char *command, int64_t timeout_ms, const char *source,
                                      struct ob_aws_credentials *out, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    struct ob_buf stdout_text = { 0 }, stderr_text = { 0 };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    pid_t pid = -1;

    memset(out, 0, sizeof *out);
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        rc = ob_error_set(err, OB_ERR_IO, "%s: pipe: %s", source, strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    /* Nothing else: a library's socket without FD_CLOEXEC must not live on
     * in a helper (or what it leaves running). */
    posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    /* A process group of its own, to kill what it started too; the signals
     * as a shell would set them, not as this thread blocks or ignores them
     * (SIGPIPE, the relay's SIGTERM). */
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    sigfillset(&all);
    posix_spawnattr_setsigdefault(&attr, &all);
    char *argv[] = { "/bin/sh", "-c", (char *)command, NULL };
    int e = posix_spawn(&pid, "/bin/sh", &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_pipe[1] = err_pipe[1] = -1;
    if (e) {
        pid = -1;
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: cannot run /bin/sh: %s", source, strerror(e));
        goto out;
    }
    int64_t deadline_ms = ob_mono_ms() + timeout_ms;
    int wstatus = 0;
    bool done = read_child(out_pipe[0], err_pipe[0], deadline_ms, &stdout_text, &stderr_text) &&
                child_exited(pid, deadline_ms, &wstatus);
    if (!done) {
        kill(-pid, SIGKILL);
        while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
            ;
    }
    pid = -1;
    if (!done) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: credential_process did not finish within %lld s", source,
                          (long long)(timeout_ms / 1000));
        goto out;
    }
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
        const char *first = ob_buf_cstr(&stderr_text);
        int line = (int)strcspn(first, "\r\n");
        if (WIFEXITED(wstatus))
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: credential_process exited with status %d%s%.*s", source,
                              WEXITSTATUS(wstatus), line ? ": " : "", line > 300 ? 300 : line, first);
        else
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: credential_process was killed by signal %d", source,
                              WTERMSIG(wstatus));
        goto out;
    }
    rc = ob_cred_json_parse(stdout_text.data ? stdout_text.data : "", stdout_text.len, OB_CRED_JSON_PROCESS, source,
                            out, err);
out:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    wipe(&stdout_text);
    ob_buf_free(&stderr_text);
    return rc;
}
