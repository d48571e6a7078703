#include "ops/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/thread.h"

#define SEND_IDLE_MS 5000      /* for the client to take some of a response */
#define LINGER_MS 1000         /* after the last response, for the client's unread bytes */
#define ACCEPT_BACKOFF_MS 100  /* accept() failed with nothing to free: retry later, not in a spin */
#define ACCEPT_WARN_MS 60000   /* such failures can last: one log line a minute */
/* New connections taken in one pass. At the cap each closes the open one
 * that waited longest, which one just taken is not: with this bound it is
 * read in three more passes at least before a burst of newer ones can
 * close it. */
#define ACCEPT_BATCH (OB_HTTP_MAX_CONNS / 4)

#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_TYPE "text/plain; charset=utf-8"

/* READING until a whole request head is in; WRITING its response; LINGER
 * after shutdown(SHUT_WR) on a closing connection, reading what the client
 * still sends, so the kernel does not reset the connection and lose the
 * response (a 431 is answered before its request is all read). */
enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGER };

struct conn {
    int fd;
    enum conn_state state;
    bool eof;          /* the client shut down its side */
    bool close_after;  /* close once out is sent */
    int64_t deadline_ms; /* closed then; the earliest is the first shed at the cap */
    size_t in_len;
    size_t out_off;
    struct ob_buf out;
    char in[OB_HTTP_MAX_HEAD];
};

struct ob_http_server {
    int listen_fd;
    int wake_fd;   /* eventfd: written by ob_http_server_stop */
    int port;
    struct ob_http_routes routes;
    pthread_t thread;
    int64_t accept_paused_until;
    int64_t next_accept_warn;
    size_t n_conns;
    struct conn *conns[OB_HTTP_MAX_CONNS]; /* owned */
};

/* Offset just past the blank line ending a request head, 0 when it has not
 * arrived yet. Bare LF line ends are accepted, as RFC 9112 allows. */
static size_t head_end(const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\n')
            continue;
        if (p[i + 1] == '\n')
            return i + 2;
        if (p[i + 1] == '\r' && i + 2 < n && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

static void put_response(struct conn *c, int status, const char *type, const struct ob_buf *body, bool head_only)
{
    char date[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ob_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
                  reason_phrase(status), date, type, body->len);
    if (status == 405)
        ob_buf_puts(&c->out, "Allow: GET, HEAD\r\n");
    ob_buf_puts(&c->out, c->close_after ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
    if (!head_only)
        ob_buf_append(&c->out, body->data, body->len);
}

static void put_error(struct conn *c, int status)
{
    struct ob_buf body = { 0 };
    ob_buf_printf(&body, "%s\n", reason_phrase(status));
    put_response(c, status, TEXT_TYPE, &body, false);
    ob_buf_free(&body);
}

/* Does a comma-separated header value hold token (any case)? */
static bool has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    const char *p = value;
    while (*p) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, ",");
        size_t trimmed = len;
        while (trimmed && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

/* /healthz and /readyz: 200 with ok_text while check is unset or passes,
 * else 503 with the reason it gave, or with fallback. */
static void answer_check(struct conn *c, bool (*check)(void *ctx, struct ob_buf *why), void *ctx,
                         const char *ok_text, const char *fallback, bool head_only)
{
    struct ob_buf body = { 0 };
    bool ok = !check || check(ctx, &body);
    if (ok) {
        ob_buf_reset(&body);
        ob_buf_puts(&body, ok_text);
    } else {
        if (body.len == 0)
            ob_buf_puts(&body, fallback);
        if (body.data[body.len - 1] != '\n')
            ob_buf_putc(&body, '\n');
    }
    put_response(c, ok ? 200 : 503, TEXT_TYPE, &body, head_only);
    ob_buf_free(&body);
}

static void answer(const struct ob_http_server *srv, struct conn *c, const char *path, bool head_only)
{
    const struct ob_http_routes *routes = &srv->routes;
    if (strcmp(path, "/healthz") == 0) {
        answer_check(c, routes->healthy, routes->healthy_ctx, "ok\n", "not healthy", head_only);
    } else if (strcmp(path, "/readyz") == 0) {
        answer_check(c, routes->ready, routes->ready_ctx, "ready\n", "not ready", head_only);
    } else {
        struct ob_buf body = { 0 };
        bool metrics = strcmp(path, "/metrics") == 0;
        if (metrics)
            ob_metrics_render(&body);
        else
            ob_buf_puts(&body, "Not Found\n");
        put_response(c, metrics ? 200 : 404, metrics ? METRICS_TYPE : TEXT_TYPE, &body, head_only);
        ob_buf_free(&body);
    }
}

/* Parses the request head in c->in[0, len), which starts with a request
 * line and ends with an empty line, and appends the response to
 * c->out, setting close_after when the connection must end with it. */
static void handle_request(const struct ob_http_server *srv, struct conn *c, size_t len)
{
    char head[OB_HTTP_MAX_HEAD + 1];
    memcpy(head, c->in, len);
    head[len] = '\0';
    char *p = head;

    char *line_end = strchr(p, '\n');
    *line_end = '\0';
    if (line_end > p && line_end[-1] == '\r')
        line_end[-1] = '\0';
    char *method = p;
    char *target = strchr(method, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;
    if (!version || strchr(version + 1, ' ')) {
        c->close_after = true;
        put_error(c, 400);
        return;
    }
    *target++ = '\0';
    *version++ = '\0';
    bool v10 = strcmp(version, "HTTP/1.0") == 0;
    if (!v10 && strcmp(version, "HTTP/1.1") != 0) {
        c->close_after = true;
        put_error(c, strncmp(version, "HTTP/", 5) == 0 ? 505 : 400);
        return;
    }

    bool conn_close = false, conn_keep_alive = false, has_body = false;
    for (p = line_end + 1; *p && *p != '\r' && *p != '\n'; p = line_end + 1) {
        line_end = strchr(p, '\n');
        *line_end = '\0';
        if (line_end > p && line_end[-1] == '\r')
            line_end[-1] = '\0';
        char *colon = strchr(p, ':');
        /* A folded line or a header without a name cannot be read safely. */
        if (!colon || colon == p || *p == ' ' || *p == '\t') {
            c->close_after = true;
            put_error(c, 400);
            return;
        }
        *colon = '\0';
        const char *value = colon + 1 + strspn(colon + 1, " \t");
        if (strcasecmp(p, "Connection") == 0) {
            conn_close |= has_token(value, "close");
            conn_keep_alive |= has_token(value, "keep-alive");
        } else if (strcasecmp(p, "Transfer-Encoding") == 0 ||
                   (strcasecmp(p, "Content-Length") == 0 && strtoull(value, NULL, 10) != 0)) {
            has_body = true;
        }
    }
    /* No route takes a body: rather than read and skip one, answer and close. */
    c->close_after = has_body || (v10 ? !conn_keep_alive : conn_close);

    bool head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0) {
        put_error(c, 405);
        return;
    }
    target[strcspn(target, "?")] = '\0';
    answer(srv, c, target, head_only);
}

/* Reads what is available. -1: the connection failed. */
static int conn_fill(struct conn *c)
{
    while (!c->eof && c->in_len < sizeof c->in) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
        if (r > 0) {
            c->in_len += (size_t)r;
        } else if (r == 0) {
            c->eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* Sends what the socket takes. -1: failed; 0: more to send; 1: all sent. */
static int conn_flush(struct conn *c, int64_t now)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->out_off += (size_t)w;
            c->deadline_ms = now + SEND_IDLE_MS;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else if (!(w < 0 && errno == EINTR)) {
            return -1;
        }
    }
    ob_buf_reset(&c->out);
    c->out_off = 0;
    return 1;
}

/* Discards what a closing client still sends. False once it is gone. */
static bool conn_drain(struct conn *c)
{
    char sink[4096];
    for (;;) {
        ssize_t r = recv(c->fd, sink, sizeof sink, 0);
        if (r > 0)
            continue;
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* Moves c as far as it goes without blocking: read, answer, send, and again
 * for pipelined requests. One response at a time, so a client that never
 * reads cannot make outboxd buffer without bound. False: close c. */
static bool conn_step(const struct ob_http_server *srv, struct conn *c, int64_t now)
{
    for (;;) {
        switch (c->state) {
        case CONN_LINGER:
            return conn_drain(c);
        case CONN_WRITING: {
            int r = conn_flush(c, now);
            if (r <= 0)
                return r == 0;
            if (c->close_after) {
                shutdown(c->fd, SHUT_WR);
                c->state = CONN_LINGER;
                c->deadline_ms = now + LINGER_MS;
            } else {
                c->state = CONN_READING;
                c->deadline_ms = now + OB_HTTP_HEAD_TIMEOUT_MS;
            }
            break;
        }
        case CONN_READING: {
            /* Bytes of a head do not move the deadline: a client sending
             * one now and then holds its connection for the head timeout
             * at most. */
            if (conn_fill(c) < 0)
                return false;
            /* RFC 9112 2.2: empty lines before a request are ignored. */
            size_t blank = 0;
            while (blank < c->in_len && (c->in[blank] == '\r' || c->in[blank] == '\n'))
                blank++;
            memmove(c->in, c->in + blank, c->in_len - blank);
            c->in_len -= blank;
            size_t end = head_end(c->in, c->in_len);
            if (end) {
                handle_request(srv, c, end);
                memmove(c->in, c->in + end, c->in_len - end);
                c->in_len -= end;
            } else if (c->in_len == sizeof c->in) {
                c->close_after = true;
                put_error(c, 431);
            } else {
                return !c->eof;
            }
            if (c->eof)
                c->close_after = true;
            c->state = CONN_WRITING;
            break;
        }
        }
    }
}

static void conn_free(struct conn *c)
{
    close(c->fd);
    ob_buf_free(&c->out);
    free(c);
}

static void conn_drop(struct ob_http_server *srv, size_t i)
{
    conn_free(srv->conns[i]);
    srv->conns[i] = srv->conns[--srv->n_conns];
}

/* Closes the connection that would time out first: the one that has waited
 * longest for its client (a closing one, which only lingers, before any
 * other). Idle and slow clients thereby make room for a new one, which is
 * how a probe gets through however many of them are open. */
static void shed_one(struct ob_http_server *srv)
{
    size_t victim = 0;
    for (size_t i = 1; i < srv->n_conns; i++) {
        if (srv->conns[i]->deadline_ms < srv->conns[victim]->deadline_ms)
            victim = i;
    }
    conn_drop(srv, victim);
}

static void warn_accept(struct ob_http_server *srv, int64_t now, int e, const char *then)
{
    if (now < srv->next_accept_warn)
        return;
    srv->next_accept_warn = now + ACCEPT_WARN_MS;
    ob_log_warn("metrics.listen: accept: %s; %s", strerror(e), then);
}

/* Takes the new connections waiting (up to ACCEPT_BATCH) and reads the
 * request each already sent. At the cap, each closes the one waiting
 * longest; so does an accept() that finds the process out of descriptors
 * (the relay's sockets may have taken them), rather than leave the probe
 * waiting in the backlog. */
static void accept_some(struct ob_http_server *srv, int64_t now)
{
    for (int taken = 0; taken < ACCEPT_BATCH; taken++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if ((e == EMFILE || e == ENFILE) && srv->n_conns > 0) {
                warn_accept(srv, now, e, "closing the connections that waited longest");
                shed_one(srv);
                continue;
            }
            /* The connection stays queued and poll() would report it
             * again at once. */
            warn_accept(srv, now, e, "trying again shortly");
            srv->accept_paused_until = now + ACCEPT_BACKOFF_MS;
            return;
        }
        if (srv->n_conns == OB_HTTP_MAX_CONNS)
            shed_one(srv);
        struct conn *c = ob_xcalloc(1, sizeof *c);
        c->fd = fd;
        c->state = CONN_READING;
        c->deadline_ms = now + OB_HTTP_HEAD_TIMEOUT_MS;
        srv->conns[srv->n_conns++] = c;
        if (!conn_step(srv, c, now))
            conn_drop(srv, srv->n_conns - 1);
    }
}

static void *server_main(void *arg)
{
    struct ob_http_server *srv = arg;
    struct pollfd pfd[2 + OB_HTTP_MAX_CONNS];
    for (;;) {
        int64_t now = ob_mono_ms();
        bool accepting = now >= srv->accept_paused_until;
        pfd[0] = (struct pollfd){ .fd = srv->wake_fd, .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = accepting ? srv->listen_fd : -1, .events = POLLIN };
        int64_t wake_at = accepting ? now + 60000 : srv->accept_paused_until;
        for (size_t i = 0; i < srv->n_conns; i++) {
            const struct conn *c = srv->conns[i];
            pfd[2 + i] = (struct pollfd){ .fd = c->fd, .events = c->state == CONN_WRITING ? POLLOUT : POLLIN };
            if (c->deadline_ms < wake_at)
                wake_at = c->deadline_ms;
        }
        int timeout = wake_at > now ? (int)(wake_at - now) : 0;
        if (poll(pfd, 2 + srv->n_conns, timeout) < 0) {
            if (errno == EINTR)
                continue;
            ob_log_error("metrics.listen: poll: %s; the metrics server stops", strerror(errno));
            break;
        }
        if (pfd[0].revents)
            break;
        now = ob_mono_ms();
        /* Backwards, so that moving the last connection into a freed slot
         * moves one already handled. */
        for (size_t i = srv->n_conns; i-- > 0;) {
            struct conn *c = srv->conns[i];
            bool keep = pfd[2 + i].revents ? conn_step(srv, c, now) : true;
            if (!keep || now >= c->deadline_ms)
                conn_drop(srv, i);
        }
        if (pfd[1].revents)
            accept_some(srv, now);
    }
    return NULL;
}

/* "host:port", "[v6]:port" or ":port" into getaddrinfo's arguments; *host
 * stays NULL for every interface. The caller frees both. */
static enum ob_err split_listen(const char *address, char **host, char **port, struct ob_error *err)
{
    const char *colon = strrchr(address, ':');
    if (!colon)
        return ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: expected host:port", address);
    const char *h = address;
    size_t hlen = (size_t)(colon - address);
    if (hlen && h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: expected [IPv6 address]:port", address);
        h++;
        hlen -= 2;
    } else if (memchr(h, ':', hlen) || memchr(h, '[', hlen) || memchr(h, ']', hlen)) {
        return ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: an IPv6 address goes in brackets, as [::1]:9464",
                            address);
    }
    const char *ps = colon + 1;
    size_t plen = strlen(ps);
    if (plen == 0 || plen > 5 || strspn(ps, "0123456789") != plen || atoi(ps) > 65535)
        return ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: the port must be a number from 0 to 65535",
                            address);
    *host = hlen ? ob_xstrndup(h, hlen) : NULL;
    *port = ob_xstrdup(ps);
    return OB_OK;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

enum ob_err ob_http_server_start(const char *address, const struct ob_http_routes *routes,
                                 struct ob_http_server **out, struct ob_error *err)
{
    enum ob_err rc;
    char *host = NULL, *port = NULL;
    struct addrinfo *ai = NULL;
    struct ob_http_server *srv = NULL;
    *out = NULL;

    rc = split_listen(address, &host, &port, err);
    if (rc)
        goto out;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG };
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: %s", address,
                          gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        goto out;
    }

    srv = ob_xcalloc(1, sizeof *srv);
    srv->listen_fd = -1;
    srv->wake_fd = -1;
    int first_errno = 0;
    for (const struct addrinfo *a = ai; a && srv->listen_fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        int one = 1;
        /* SO_REUSEADDR: a restart binds while the old process's
         * connections are still in TIME_WAIT. */
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            srv->listen_fd = fd;
            break;
        }
        if (!first_errno)
            first_errno = errno;
        if (fd >= 0)
            close(fd);
    }
    if (srv->listen_fd < 0) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "metrics.listen %s: %s", address, strerror(first_errno));
        goto out;
    }
    srv->port = bound_port(srv->listen_fd);
    srv->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->wake_fd < 0) {
        rc = ob_error_set(err, OB_ERR_IO, "metrics.listen %s: eventfd: %s", address, strerror(errno));
        goto out;
    }
    if (routes)
        srv->routes = *routes;

    int e = ob_thread_start_without_signals(&srv->thread, server_main, srv);
    if (e) {
        rc = ob_error_set(err, OB_ERR_IO, "metrics.listen %s: cannot start a thread: %s", address, strerror(e));
        goto out;
    }
    *out = srv;
    srv = NULL;
out:
    if (srv) {
        if (srv->listen_fd >= 0)
            close(srv->listen_fd);
        if (srv->wake_fd >= 0)
            close(srv->wake_fd);
        free(srv);
    }
    if (ai)
        freeaddrinfo(ai);
    free(host);
    free(port);
    return rc;
}

int ob_http_server_port(const struct ob_http_server *srv)
{
    return srv->port;
}

void ob_http_server_stop(struct ob_http_server *srv)
{
    if (!srv)
        return;
    uint64_t one = 1;
    while (write(srv->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
    pthread_join(srv->thread, NULL);
    for (size_t i = 0; i < srv->n_conns; i++)
        conn_free(srv->conns[i]);
    close(srv->listen_fd);
    close(srv->wake_fd);
    free(srv);
}
