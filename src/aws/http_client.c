/* HTTP/1.1 over plain TCP or OpenSSL on one epoll set (see http_client.h). */
#include "aws/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/proxy.h"
#include "ops/clock.h"

#define EVENTS_PER_WAIT 64
#define READ_MIN 1024               /* what a connection's read buffer starts with */
#define READ_MAX 65536
#define MAX_HEAD 65536              /* status line and headers of one answer */
#define MAX_BODY ((size_t)256 << 20)
#define BODY_TOO_LARGE "the answer's body is larger than 256 MiB" /* MAX_BODY */
#define NOT_HTTP "the answer is not valid HTTP/1.1"
/* What a body's announced length reserves before its bytes arrive. */
#define RX_RESERVE_MAX ((size_t)1 << 20)

/* CONN_TUNNEL: connected to a proxy, CONNECT sent or being sent, its
 * answer being read. */
enum conn_state { CONN_CONNECTING, CONN_TUNNEL, CONN_HANDSHAKE, CONN_READY };

/* Where the reader is in the current answer. */
enum answer_phase {
    PHASE_HEAD,
    PHASE_BODY,        /* Content-Length bytes left in `remaining` */
    PHASE_CHUNK_SIZE,
    PHASE_CHUNK_DATA,
    PHASE_CHUNK_END,   /* the CRLF after a chunk's data */
    PHASE_TRAILER,
    PHASE_UNTIL_CLOSE, /* no length: the body ends with the connection */
    PHASE_DONE,
};

struct http_host;

/* A host's addresses, shared by the connections being opened to it and
 * kept for RESOLVED_TTL_MS (the JVM's and the AWS SDKs' default): a burst
 * of new connections costs one lookup, not one each, and a resolver slow
 * to answer stalls the thread once. */
#define RESOLVED_TTL_MS 30000

struct resolved {
    int refs;
    int64_t until_ms;
    struct addrinfo *list;
};

static void resolved_release(struct resolved *r)
{
    if (r && --r->refs == 0) {
        freeaddrinfo(r->list);
        free(r);
    }
}

struct http_conn {
    struct http_host *host;
    int fd;
    SSL *ssl;
    enum conn_state state;
    uint32_t events;                  /* as registered with epoll */
    struct resolved *addrs;           /* a reference while connecting */
    struct addrinfo *addr;            /* the address tried */
    int64_t connect_deadline_ms;
    struct ob_http_exchange *ex;      /* NULL: idle */
    int answers;                      /* answers read on this connection */
    size_t out_off;                   /* bytes of the request (or of CONNECT) sent */
    size_t target_off, line_end;      /* through a proxy in absolute form: where the
                                         head's request target and first line end */
    struct ob_buf in;                 /* received, not yet parsed from in_off */
    size_t in_off;
    enum answer_phase phase;
    uint64_t remaining;
    bool keep_alive;
    bool answer_started;              /* a byte of the current answer arrived */
    struct http_conn *next;
};

/* The connections to one origin. Whether they go through a proxy is
 * decided once, when the origin is first seen: proxied and direct
 * connections to it never mix. */
struct http_host {
    char *key;
    bool tls;
    char *name, *port;
    const char *addr_name, *addr_port; /* what is connected to: the origin or its proxy */
    const struct ob_proxy *proxy;      /* NULL: direct */
    char *proxy_label;                 /* "proxy HOST:PORT", for messages (no credentials) */
    char *connect_request;             /* https through the proxy: CONNECT, sent first */
    size_t connect_request_len;
    char *absolute;                    /* http through the proxy: "http://HOST:PORT" before the target */
    size_t absolute_len;
    char *proxy_auth;                  /* http through the proxy: a Proxy-Authorization line, or "" */
    size_t proxy_auth_len;
    int n_conns;
    struct http_conn *conns;
    struct resolved *resolved;        /* a reference; NULL: look the name up */
    struct http_host *next;
};

struct ob_http_client {
    struct ob_http_client_options opt;
    char *ca_file;
    struct ob_proxy_env proxies;  /* from the environment at creation; empty when direct */
    char *proxy_error;            /* the environment names a proxy that cannot be used */
    SSL_CTX *ssl_ctx;   /* made at the first TLS connection */
    int epoll_fd;
    int wake_fd;
    struct http_host *hosts;
    struct ob_http_exchange *queue, *queue_tail;
    struct ob_http_exchange *retry, *retry_tail; /* to go again first, at the next dispatch */
    struct ob_http_exchange *done, *done_tail;
    /* No deadline falls before this: deadlines are only ever added, with
     * this lowered, or dropped (a requeued exchange keeps its own, and
     * expire counts it), so expire walks the connections when one may be
     * due, not on every drive. */
    int64_t next_expiry;
};

static void expiry_at(struct ob_http_client *c, int64_t deadline_ms)
{
    if (deadline_ms && deadline_ms < c->next_expiry)
        c->next_expiry = deadline_ms;
}

void ob_http_origin_set(struct ob_http_origin *o, bool tls, const char *host, const char *port)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        o->host = ob_xstrndup(host + 1, n - 2);
    else
        o->host = ob_xstrdup(host);
    o->tls = tls;
    o->port = ob_xstrdup(port);
    struct ob_buf key = { 0 };
    ob_buf_cat(&key, tls ? "tls|" : "tcp|", o->host, "|", o->port, NULL);
    o->key = ob_buf_steal(&key);
}

void ob_http_origin_free(struct ob_http_origin *o)
{
    free(o->host);
    free(o->port);
    free(o->key);
    memset(o, 0, sizeof *o);
}

struct ob_http_client *ob_http_client_create(const struct ob_http_client_options *opt, struct ob_error *err)
{
    struct ob_http_client *c = ob_xcalloc(1, sizeof *c);
    c->next_expiry = INT64_MAX;
    c->opt = *opt;
    if (c->opt.max_connections <= 0)
        c->opt.max_connections = 64;
    c->ca_file = ob_xstrdup_or_null(opt->ca_file);
    c->opt.ca_file = c->ca_file;
    struct ob_error proxy_err = { 0 };
    if (!opt->direct && ob_http_proxy_env_load(&c->proxies, &proxy_err) != OB_OK)
        c->proxy_error = ob_xstrdup(proxy_err.msg);
    c->wake_fd = -1;
    c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (c->epoll_fd < 0)
        goto fail;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0)
        goto fail;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, c->wake_fd, &ev) != 0)
        goto fail;
    return c;
fail:
    ob_error_set(err, OB_ERR_INTERNAL, "cannot make an HTTP client: %s", strerror(errno));
    ob_http_client_destroy(c);
    return NULL;
}

/* ---- completing exchanges ---------------------------------------------- */

static void list_append(struct ob_http_exchange **head, struct ob_http_exchange **tail, struct ob_http_exchange *ex);

static void exchange_done(struct ob_http_client *c, struct ob_http_exchange *ex)
{
    list_append(&c->done, &c->done_tail, ex);
}

static void exchange_fail(struct ob_http_client *c, struct ob_http_exchange *ex, enum ob_http_failure failure,
                          int os_errno, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void exchange_fail(struct ob_http_client *c, struct ob_http_exchange *ex, enum ob_http_failure failure,
                          int os_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ex->error, sizeof ex->error, fmt, ap);
    va_end(ap);
    ex->failure = failure;
    ex->os_errno = os_errno;
    ex->status = 0;
    exchange_done(c, ex);
}

static void list_append(struct ob_http_exchange **head, struct ob_http_exchange **tail, struct ob_http_exchange *ex)
{
    ex->conn = NULL;
    ex->next = NULL;
    if (*tail)
        (*tail)->next = ex;
    else
        *head = ex;
    *tail = ex;
}

/* Unlinks ex from the list at *head (with *tail); false if not there. */
static bool list_remove(struct ob_http_exchange **head, struct ob_http_exchange **tail,
                        struct ob_http_exchange *ex)
{
    struct ob_http_exchange *prev = NULL;
    for (struct ob_http_exchange *e = *head; e; prev = e, e = e->next) {
        if (e != ex)
            continue;
        if (prev)
            prev->next = e->next;
        else
            *head = e->next;
        if (*tail == e)
            *tail = prev;
        e->next = NULL;
        return true;
    }
    return false;
}

/* ---- connections --------------------------------------------------------- */

static void conn_close(struct ob_http_client *c, struct http_conn *conn)
{
    struct http_host *h = conn->host;
    for (struct http_conn **p = &h->conns; *p; p = &(*p)->next)
        if (*p == conn) {
            *p = conn->next;
            break;
        }
    h->n_conns--;
    if (conn->fd >= 0) {
        epoll_ctl(c->epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
        close(conn->fd);
    }
    SSL_free(conn->ssl);
    if (conn->addrs && h->resolved == conn->addrs) {
        /* Closed before it connected (refused, timed out, or its request
         * ended): the next connection asks again. */
        resolved_release(h->resolved);
        h->resolved = NULL;
    }
    resolved_release(conn->addrs);
    ob_buf_free(&conn->in);
    free(conn);
}

/* The connection cannot go on: its exchange fails with the reason given,
 * and the connection is closed. */
static void conn_fail(struct ob_http_client *c, struct http_conn *conn, enum ob_http_failure failure, int os_errno,
                      const char *what)
{
    if (conn->ex)
        exchange_fail(c, conn->ex, failure, os_errno, "%s", what);
    conn->ex = NULL;
    conn_close(c, conn);
}

/* conn_fail for what may be the proxy's doing (a tunnel it closed, a
 * CONNECT it never answered, a certificate it put in the origin's place):
 * the message names the proxy when there is one. */
static void conn_fail_via(struct ob_http_client *c, struct http_conn *conn, enum ob_http_failure failure,
                          const char *what)
{
    char full[300];
    if (conn->host->proxy)
        snprintf(full, sizeof full, "%s (through %s)", what, conn->host->proxy_label);
    conn_fail(c, conn, failure, 0, conn->host->proxy ? full : what);
}

/* The request as it goes out: head and body; for an http origin through
 * a proxy, the request line in absolute form with the proxy's credentials
 * after it (the caller's Host header, which SigV4 signed, stays). Sent in
 * place, nothing copied. */
static int request_parts(const struct http_conn *conn, const struct ob_http_exchange *ex, struct iovec part[6])
{
    const struct http_host *h = conn->host;
    int n = 0;
    if (!h->absolute) {
        part[n++] = (struct iovec){ (char *)ex->head, ex->head_len };
    } else {
        part[n++] = (struct iovec){ (char *)ex->head, conn->target_off };
        part[n++] = (struct iovec){ h->absolute, h->absolute_len };
        part[n++] = (struct iovec){ (char *)ex->head + conn->target_off, conn->line_end - conn->target_off };
        part[n++] = (struct iovec){ h->proxy_auth, h->proxy_auth_len };
        part[n++] = (struct iovec){ (char *)ex->head + conn->line_end, ex->head_len - conn->line_end };
    }
    part[n++] = (struct iovec){ (char *)ex->body, ex->body_len };
    return n;
}

static size_t request_len(const struct http_conn *conn, const struct ob_http_exchange *ex)
{
    size_t n = ex->head_len + ex->body_len;
    if (conn->host->absolute)
        n += conn->host->absolute_len + conn->host->proxy_auth_len;
    return n;
}

/* The connection broke (EOF, reset) before the answer was complete. A
 * request that a reused connection broke before it was all written goes
 * again, once, on a new connection: the server cannot have acted on it.
 * Once written it may have (a POST is not replayable): the caller hears of
 * the failure and its own retry decides. Idle connections the server
 * closed are mostly found before they are reused (send_queued). */
static void conn_broken(struct ob_http_client *c, struct http_conn *conn, int os_errno)
{
    struct ob_http_exchange *ex = conn->ex;
    if (ex && conn->answers > 0 && !ex->requeued && conn->out_off < request_len(conn, ex)) {
        ex->requeued = true;
        conn->ex = NULL;
        list_append(&c->retry, &c->retry_tail, ex);
        conn_close(c, conn);
        return;
    }
    char what[160];
    if (os_errno)
        snprintf(what, sizeof what, "connection broken: %s", strerror(os_errno));
    else
        snprintf(what, sizeof what, conn->answer_started ? "the server closed the connection in the middle of the answer"
                                                          : "the server closed the connection without answering");
    conn_fail(c, conn, OB_HTTP_IO, os_errno, what);
}

static void conn_interest(struct ob_http_client *c, struct http_conn *conn, uint32_t events)
{
    if (conn->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = conn };
    epoll_ctl(c->epoll_fd, EPOLL_CTL_MOD, conn->fd, &ev);
    conn->events = events;
}

enum io_result { IO_AGAIN = -1, IO_ERROR = -2 };

/* What OpenSSL last said, for messages. */
static void tls_error_text(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "%s", errno ? strerror(errno) : "unexpected end of the connection");
}

/* What an SSL_read or SSL_write that moved no data means: 0 the peer
 * closed, IO_AGAIN (the socket's readiness it waits for is set), or
 * IO_ERROR with tls_error filled. */
static ssize_t tls_outcome(struct ob_http_client *c, struct http_conn *conn, int r, char *tls_error,
                           size_t tls_error_size)
{
    switch (SSL_get_error(conn->ssl, r)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        conn_interest(c, conn, EPOLLIN);
        return IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        conn_interest(c, conn, EPOLLIN | EPOLLOUT);
        return IO_AGAIN;
    default:
        tls_error_text(tls_error, tls_error_size);
        return IO_ERROR;
    }
}

/* > 0 bytes, 0 end of stream, IO_AGAIN, or IO_ERROR (errno set; for TLS
 * *tls_error filled). */
static ssize_t io_read(struct ob_http_client *c, struct http_conn *conn, char *p, size_t n, char *tls_error,
                       size_t tls_error_size)
{
    if (!conn->ssl) {
        ssize_t r = recv(conn->fd, p, n, 0);
        if (r >= 0)
            return r;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
    ERR_clear_error();
    int r = SSL_read(conn->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    return r > 0 ? r : tls_outcome(c, conn, r, tls_error, tls_error_size);
}

/* Sends from byte `off` of the request (request_parts), in place: one
 * sendmsg for all parts over TCP; TLS writes one part at a time. */
static ssize_t io_write(struct ob_http_client *c, struct http_conn *conn, const struct ob_http_exchange *ex,
                        size_t off, char *tls_error, size_t tls_error_size)
{
    struct iovec part[6];
    int n_parts = request_parts(conn, ex, part), first = 0;
    while (first < n_parts && off >= part[first].iov_len)
        off -= part[first++].iov_len;
    struct iovec *iov = part + first;
    iov[0].iov_base = (char *)iov[0].iov_base + off;
    iov[0].iov_len -= off;
    if (!conn->ssl) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)(n_parts - first) };
        ssize_t r = sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? IO_AGAIN : IO_ERROR;
    }
    ERR_clear_error();
    size_t n = iov[0].iov_len;
    int r = SSL_write(conn->ssl, iov[0].iov_base, n > INT32_MAX ? INT32_MAX : (int)n);
    return r > 0 ? r : tls_outcome(c, conn, r, tls_error, tls_error_size);
}

/* Sends what is left of the request; false if the connection is gone. */
static bool conn_write(struct ob_http_client *c, struct http_conn *conn)
{
    char tls_error[120];
    while (conn->out_off < request_len(conn, conn->ex)) {
        ssize_t n = io_write(c, conn, conn->ex, conn->out_off, tls_error, sizeof tls_error);
        if (n > 0) {
            conn->out_off += (size_t)n;
            continue;
        }
        if (n == IO_AGAIN) {
            if (!conn->ssl)
                conn_interest(c, conn, EPOLLIN | EPOLLOUT);
            return true;
        }
        if (n == 0) { /* the peer closed the TLS session */
            conn_broken(c, conn, 0);
            return false;
        }
        if (conn->ssl) {
            conn_fail(c, conn, OB_HTTP_TLS, 0, tls_error);
            return false;
        }
        conn_broken(c, conn, errno);
        return false;
    }
    conn_interest(c, conn, EPOLLIN);
    return true;
}

static void conn_begin(struct ob_http_client *c, struct http_conn *conn, struct ob_http_exchange *ex)
{
    conn->ex = ex;
    ex->conn = conn;
    conn->phase = PHASE_HEAD;
    conn->answer_started = false;
    conn->keep_alive = true;
    conn->out_off = 0;
    if (conn->host->absolute) {
        /* "METHOD SP target SP HTTP/1.1 CRLF" */
        const char *sp = memchr(ex->head, ' ', ex->head_len);
        const char *nl = memchr(ex->head, '\n', ex->head_len);
        conn->target_off = sp ? (size_t)(sp - ex->head) + 1 : 0;
        conn->line_end = nl ? (size_t)(nl - ex->head) + 1 : conn->target_off;
        if (conn->line_end < conn->target_off)
            conn->line_end = conn->target_off;
    }
    if (conn->state == CONN_READY)
        conn_write(c, conn);
}

static bool is_ip_literal(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

static SSL_CTX *client_ssl_ctx(struct ob_http_client *c, char *why, size_t why_size)
{
    if (c->ssl_ctx)
        return c->ssl_ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        goto fail;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (c->opt.tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = c->ca_file ? SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1)
            goto fail;
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    c->ssl_ctx = ctx;
    return ctx;
fail:
    tls_error_text(why, why_size);
    SSL_CTX_free(ctx);
    return NULL;
}

/* Connected (and through TLS): the request waiting, if any, goes out;
 * false if the connection is gone. */
static bool conn_ready(struct ob_http_client *c, struct http_conn *conn)
{
    conn->state = CONN_READY;
    conn->connect_deadline_ms = 0;
    if (conn->ex)
        return conn_write(c, conn);
    conn_interest(c, conn, EPOLLIN);
    return true;
}

/* Drives the TLS handshake; false if the connection is gone. */
static bool conn_handshake(struct ob_http_client *c, struct http_conn *conn)
{
    ERR_clear_error();
    int r = SSL_connect(conn->ssl);
    if (r == 1) {
        return conn_ready(c, conn);
    }
    int e = SSL_get_error(conn->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        conn_interest(c, conn, EPOLLIN);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        conn_interest(c, conn, EPOLLOUT);
        return true;
    }
    char what[200], detail[120];
    long verify = SSL_get_verify_result(conn->ssl);
    if (verify != X509_V_OK) {
        snprintf(what, sizeof what, "TLS: server certificate not accepted: %s",
                 X509_verify_cert_error_string(verify));
    } else {
        tls_error_text(detail, sizeof detail);
        snprintf(what, sizeof what, "TLS handshake failed: %s", detail);
    }
    conn_fail_via(c, conn, OB_HTTP_TLS, what);
    return false;
}

/* Over the connection (or the tunnel through a proxy): TLS with the
 * origin when it wants it, then ready. False if the connection is gone. */
static bool conn_secure(struct ob_http_client *c, struct http_conn *conn)
{
    if (!conn->host->tls)
        return conn_ready(c, conn);
    char why[120];
    SSL_CTX *ctx = client_ssl_ctx(c, why, sizeof why);
    if (ctx) {
        conn->ssl = SSL_new(ctx);
        if (conn->ssl && SSL_set_fd(conn->ssl, conn->fd) == 1 &&
            (is_ip_literal(conn->host->name) || SSL_set_tlsext_host_name(conn->ssl, conn->host->name) == 1) &&
            (!c->opt.tls_verify || SSL_set1_host(conn->ssl, conn->host->name) == 1)) {
            conn->state = CONN_HANDSHAKE;
            return conn_handshake(c, conn);
        }
        tls_error_text(why, sizeof why);
    }
    char what[180];
    snprintf(what, sizeof what, "TLS setup: %s", why);
    conn_fail(c, conn, OB_HTTP_TLS, 0, what);
    return false;
}

static bool conn_tunnel_fail(struct ob_http_client *c, struct http_conn *conn, enum ob_http_failure failure,
                             int os_errno, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static bool conn_tunnel_fail(struct ob_http_client *c, struct http_conn *conn, enum ob_http_failure failure,
                             int os_errno, const char *fmt, ...)
{
    char what[160], full[220];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s %s", conn->host->proxy_label, what);
    conn_fail(c, conn, failure, os_errno, full);
    return false;
}

/* Sends CONNECT and reads the proxy's answer; at a 2xx the tunnel is open
 * and TLS with the origin starts through it. False if the connection is
 * gone. */
static bool conn_tunnel(struct ob_http_client *c, struct http_conn *conn)
{
    struct http_host *h = conn->host;
    while (conn->out_off < h->connect_request_len) {
        ssize_t n = send(conn->fd, h->connect_request + conn->out_off, h->connect_request_len - conn->out_off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            conn->out_off += (size_t)n;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            conn_interest(c, conn, EPOLLOUT);
            return true;
        }
        return conn_tunnel_fail(c, conn, OB_HTTP_CONNECT, errno, "broke the connection: %s", strerror(errno));
    }
    conn_interest(c, conn, EPOLLIN);
    for (;;) {
        /* What is here is looked at first: it may hold the answer after
         * an interim one. */
        int status = 0;
        size_t head_len = 0, len = conn->in.len - conn->in_off;
        switch (ob_proxy_connect_answer(conn->in.data + conn->in_off, len, &status, &head_len)) {
        case OB_PROXY_ANSWER_PARTIAL: {
            if (conn->in.len >= MAX_HEAD) /* interim answers without end */
                return conn_tunnel_fail(c, conn, OB_HTTP_PROTOCOL, 0,
                                        "sent more than 64 KiB without a final answer to CONNECT");
            ob_buf_reserve(&conn->in, READ_MIN - 1);
            ssize_t n = recv(conn->fd, conn->in.data + conn->in.len, conn->in.cap - conn->in.len - 1, 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return true;
            if (n < 0)
                return conn_tunnel_fail(c, conn, OB_HTTP_CONNECT, errno, "broke the connection: %s",
                                        strerror(errno));
            if (n == 0)
                return conn_tunnel_fail(c, conn, OB_HTTP_CONNECT, 0,
                                        "closed the connection without answering CONNECT");
            conn->in.len += (size_t)n;
            conn->in.data[conn->in.len] = '\0';
            continue;
        }
        case OB_PROXY_ANSWER_INVALID:
            return conn_tunnel_fail(c, conn, OB_HTTP_PROTOCOL, 0, "answered CONNECT with something not HTTP/1.1");
        case OB_PROXY_ANSWER_DONE:
            break;
        }
        if (status / 100 == 1 && status != 101) {
            conn->in_off += head_len; /* 100 Continue and other interim answers */
            continue;
        }
        if (status / 100 != 2) {
            char buf[32];
            return conn_tunnel_fail(c, conn, OB_HTTP_CONNECT, 0, "refused CONNECT to %s:%s: %s", h->name, h->port,
                                    ob_proxy_refusal(status, buf, sizeof buf));
        }
        /* The origin speaks only after the TLS client hello. */
        if (head_len != len)
            return conn_tunnel_fail(c, conn, OB_HTTP_PROTOCOL, 0, "sent bytes after its answer to CONNECT");
        ob_buf_free(&conn->in);
        conn->in_off = 0;
        conn->out_off = 0;
        return conn_secure(c, conn);
    }
}

static bool conn_connected(struct ob_http_client *c, struct http_conn *conn)
{
    resolved_release(conn->addrs);
    conn->addrs = NULL;
    conn->addr = NULL;
    if (conn->host->connect_request) {
        conn->state = CONN_TUNNEL;
        return conn_tunnel(c, conn);
    }
    return conn_secure(c, conn);
}

/* Tries conn->addr and the addresses after it; false if the connection is
 * gone (its exchange failed). */
static bool conn_try_addresses(struct ob_http_client *c, struct http_conn *conn, int last_errno)
{
    for (; conn->addr; conn->addr = conn->addr->ai_next) {
        struct addrinfo *a = conn->addr;
        if (conn->fd >= 0) {
            epoll_ctl(c->epoll_fd, EPOLL_CTL_DEL, conn->fd, NULL);
            close(conn->fd);
        }
        conn->fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (conn->fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = conn };
        if (epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev) != 0) {
            last_errno = errno;
            close(conn->fd);
            conn->fd = -1;
            continue;
        }
        conn->events = EPOLLOUT;
        if (connect(conn->fd, a->ai_addr, a->ai_addrlen) == 0)
            return conn_connected(c, conn);
        if (errno == EINPROGRESS)
            return true;
        last_errno = errno;
    }
    char what[200];
    if (conn->host->proxy)
        snprintf(what, sizeof what, "connect to %s: %s", conn->host->proxy_label, strerror(last_errno));
    else
        snprintf(what, sizeof what, "connect: %s", strerror(last_errno));
    conn_fail(c, conn, OB_HTTP_CONNECT, last_errno, what);
    return false;
}

/* h->resolved, looked up again when missing or older than its TTL; false
 * (why says why) when the name does not resolve. */
static bool host_resolve(struct ob_http_client *c, struct http_host *h, char *why, size_t why_len)
{
    int64_t now = ob_mono_ms();
    if (h->resolved && now < h->resolved->until_ms)
        return true;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *list = NULL;
    int gai = (c->opt.resolve ? c->opt.resolve : getaddrinfo)(h->addr_name, h->addr_port, &hints, &list);
    if (gai != 0) {
        snprintf(why, why_len, "cannot resolve %s%s: %s", h->proxy ? "the proxy " : "", h->addr_name,
                 gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        return false;
    }
    resolved_release(h->resolved);
    h->resolved = ob_xmalloc(sizeof *h->resolved);
    *h->resolved = (struct resolved){ .refs = 1, .until_ms = now + RESOLVED_TTL_MS, .list = list };
    return true;
}

/* A new connection to h, carrying ex; false if it failed at once (ex is
 * then done). */
static bool conn_open(struct ob_http_client *c, struct http_host *h, struct ob_http_exchange *ex)
{
    struct http_conn *conn = ob_xcalloc(1, sizeof *conn);
    conn->host = h;
    conn->fd = -1;
    conn->state = CONN_CONNECTING;
    conn->next = h->conns;
    h->conns = conn;
    h->n_conns++;
    if (c->opt.connect_timeout_ms > 0)
        conn->connect_deadline_ms = ob_mono_ms() + c->opt.connect_timeout_ms;
    expiry_at(c, conn->connect_deadline_ms);
    conn_begin(c, conn, ex);

    if (c->proxy_error) {
        conn_fail(c, conn, OB_HTTP_CONNECT, 0, c->proxy_error);
        return false;
    }
    char what[200];
    if (!host_resolve(c, h, what, sizeof what)) {
        conn_fail(c, conn, OB_HTTP_CONNECT, 0, what);
        return false;
    }
    conn->addrs = h->resolved;
    conn->addrs->refs++;
    conn->addr = conn->addrs->list;
    return conn_try_addresses(c, conn, ECONNREFUSED);
}

static bool conn_connect_result(struct ob_http_client *c, struct http_conn *conn)
{
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        so_error = errno;
    if (so_error == 0)
        return conn_connected(c, conn);
    conn->addr = conn->addr->ai_next;
    return conn_try_addresses(c, conn, so_error);
}

/* ---- reading answers ------------------------------------------------------- */

static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *value_len)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *value_len = (size_t)(end - v);
    return true;
}

static bool token_in_list(const char *v, size_t len, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(v + i, token, n) == 0 && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
            (i + n == len || v[i + n] == ',' || v[i + n] == ' ' || v[i + n] == ';'))
            return true;
    return false;
}

/* Parses the status line and headers in [p, p+len) (without the empty
 * line); NULL, or why the answer cannot be taken. */
static const char *parse_head(struct http_conn *conn, const char *p, size_t len, int *status)
{
    const char *end = p + len;
    const char *eol = memchr(p, '\n', len);
    if (!eol)
        eol = end;
    size_t line_len = (size_t)(eol - p);
    if (line_len && p[line_len - 1] == '\r')
        line_len--;
    if (line_len < 12 || strncmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ')
        return NOT_HTTP;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return NOT_HTTP;
        code = code * 10 + (p[i] - '0');
    }
    if (line_len > 12 && p[12] != ' ')
        return NOT_HTTP;
    bool http10 = p[7] == '0';
    bool chunked = false, has_length = false, close = http10, keep_alive = false;
    uint64_t length = 0;
    for (const char *l = eol < end ? eol + 1 : end; l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - l);
        if (n && l[n - 1] == '\r')
            n--;
        const char *v;
        size_t vl;
        if (header_is(l, n, "Content-Length", &v, &vl)) {
            if (vl == 0 || vl > 19)
                return NOT_HTTP;
            uint64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return NOT_HTTP;
                x = x * 10 + (uint64_t)(v[i] - '0');
            }
            if (has_length && x != length)
                return NOT_HTTP;
            has_length = true;
            length = x;
        } else if (header_is(l, n, "Transfer-Encoding", &v, &vl)) {
            chunked = token_in_list(v, vl, "chunked");
        } else if (header_is(l, n, "Connection", &v, &vl)) {
            if (token_in_list(v, vl, "close"))
                close = true;
            if (token_in_list(v, vl, "keep-alive"))
                keep_alive = true;
        }
        l = nl ? nl + 1 : end;
    }
    *status = code;
    conn->keep_alive = !close || (http10 && keep_alive);
    if (code / 100 == 1)
        return NULL;
    if (code == 204 || code == 304) {
        conn->phase = PHASE_DONE;
    } else if (chunked) {
        conn->phase = PHASE_CHUNK_SIZE;
    } else if (has_length) {
        if (length > MAX_BODY)
            return BODY_TOO_LARGE;
        /* Only what a normal answer needs is reserved on the peer's word:
         * the rest grows as its bytes arrive. */
        if (conn->ex->rx)
            ob_buf_reserve_exact(conn->ex->rx, (size_t)(length < RX_RESERVE_MAX ? length : RX_RESERVE_MAX));
        conn->remaining = length;
        conn->phase = length ? PHASE_BODY : PHASE_DONE;
    } else {
        conn->phase = PHASE_UNTIL_CLOSE;
        conn->keep_alive = false;
    }
    return NULL;
}

static bool body_append(struct http_conn *conn, const char *p, size_t n)
{
    struct ob_buf *rx = conn->ex->rx;
    if (!rx)
        return true;
    if (rx->len + n > MAX_BODY)
        return false;
    ob_buf_append(rx, p, n);
    return true;
}

/* A line ending at "\n" from in_off, or NULL if not all here; *len
 * excludes the CR LF. */
static const char *next_line(struct http_conn *conn, size_t *len)
{
    const char *p = conn->in.data + conn->in_off;
    const char *nl = memchr(p, '\n', conn->in.len - conn->in_off);
    if (!nl)
        return NULL;
    conn->in_off += (size_t)(nl - p) + 1;
    *len = (size_t)(nl - p);
    if (*len && p[*len - 1] == '\r')
        (*len)--;
    return p;
}

/* Consumes what it can of the received bytes; NULL, or why the answer
 * cannot be taken. */
static const char *parse_answer(struct http_conn *conn)
{
    for (;;) {
        size_t avail = conn->in.len - conn->in_off;
        const char *p = conn->in.data + conn->in_off;
        size_t n;
        switch (conn->phase) {
        case PHASE_HEAD: {
            const char *end = avail >= 4 ? memmem(p, avail, "\r\n\r\n", 4) : NULL;
            if (!end)
                return avail <= MAX_HEAD ? NULL : NOT_HTTP;
            size_t head_len = (size_t)(end - p);
            conn->in_off += head_len + 4;
            int status = 0;
            const char *refused = parse_head(conn, p, head_len, &status);
            if (refused)
                return refused;
            if (status == 101)
                return NOT_HTTP;
            if (status / 100 == 1)
                continue; /* 100 Continue and other interim answers */
            conn->ex->status = status;
            continue;
        }
        case PHASE_BODY:
        case PHASE_CHUNK_DATA:
            if (!avail)
                return NULL;
            n = avail < conn->remaining ? avail : (size_t)conn->remaining;
            if (!body_append(conn, p, n))
                return BODY_TOO_LARGE;
            conn->in_off += n;
            conn->remaining -= n;
            if (conn->remaining == 0)
                conn->phase = conn->phase == PHASE_BODY ? PHASE_DONE : PHASE_CHUNK_END;
            continue;
        case PHASE_CHUNK_SIZE: {
            const char *l = next_line(conn, &n);
            if (!l)
                return avail <= 1024 ? NULL : NOT_HTTP;
            uint64_t size = 0;
            size_t i = 0;
            for (; i < n && i < 16; i++) {
                char ch = l[i];
                int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                      : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
                if (d < 0)
                    break;
                size = size * 16 + (uint64_t)d;
            }
            if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
                return NOT_HTTP;
            if (size > MAX_BODY)
                return BODY_TOO_LARGE;
            conn->remaining = size;
            conn->phase = size ? PHASE_CHUNK_DATA : PHASE_TRAILER;
            continue;
        }
        case PHASE_CHUNK_END: {
            const char *l = next_line(conn, &n);
            if (!l)
                return avail <= 1 ? NULL : NOT_HTTP;
            if (n != 0)
                return NOT_HTTP;
            conn->phase = PHASE_CHUNK_SIZE;
            continue;
        }
        case PHASE_TRAILER: {
            const char *l = next_line(conn, &n);
            if (!l)
                return avail <= MAX_HEAD ? NULL : NOT_HTTP;
            if (n == 0)
                conn->phase = PHASE_DONE;
            continue;
        }
        case PHASE_UNTIL_CLOSE:
            if (!body_append(conn, p, avail))
                return BODY_TOO_LARGE;
            conn->in_off += avail;
            return NULL;
        case PHASE_DONE:
            return NULL;
        }
    }
}

/* The current exchange has its answer: hand it back, and keep the
 * connection for the next one or close it. False if the connection is
 * gone. */
static bool conn_answer_done(struct ob_http_client *c, struct http_conn *conn)
{
    struct ob_http_exchange *ex = conn->ex;
    conn->ex = NULL;
    conn->answers++;
    if (conn->host->absolute && ex->status == 407) {
        /* The proxy's answer, not the origin's: like a refused CONNECT. */
        exchange_fail(c, ex, OB_HTTP_CONNECT, 0, "%s refused the request: proxy authentication required",
                      conn->host->proxy_label);
    } else {
        ex->failure = OB_HTTP_OK;
        ex->error[0] = '\0';
        exchange_done(c, ex);
    }
    /* Bytes past the answer were not asked for (one request at a time). */
    bool extra = conn->in_off < conn->in.len;
    ob_buf_reset(&conn->in);
    conn->in_off = 0;
    if (!conn->keep_alive || extra || conn->phase == PHASE_UNTIL_CLOSE) {
        conn_close(c, conn);
        return false;
    }
    return true;
}

/* The end of the stream or an error from io_read; false: the connection is
 * gone. */
static bool conn_read_ended(struct ob_http_client *c, struct http_conn *conn, ssize_t n, const char *tls_error)
{
    if (n == IO_ERROR) {
        if (conn->ssl && conn->ex)
            conn_fail(c, conn, OB_HTTP_TLS, 0, tls_error);
        else if (conn->ex)
            conn_broken(c, conn, errno);
        else
            conn_close(c, conn);
    } else if (conn->ex && conn->phase == PHASE_UNTIL_CLOSE) {
        conn_answer_done(c, conn);
    } else if (conn->ex) {
        conn_broken(c, conn, 0);
    } else {
        conn_close(c, conn);
    }
    return false;
}

/* Reads what the socket has; false if the connection is gone. A body of
 * known length goes straight into the caller's buffer: reserved once when
 * it is at most RX_RESERVE_MAX, else grown as its bytes arrive. */
static bool conn_read(struct ob_http_client *c, struct http_conn *conn)
{
    char tls_error[120];
    const char *refused;
    for (;;) {
        if (conn->in_off && conn->in_off == conn->in.len) {
            ob_buf_reset(&conn->in);
            conn->in_off = 0;
        }
        struct ob_http_exchange *ex = conn->ex;
        bool direct = ex && ex->rx && conn->phase == PHASE_BODY && conn->in.len == 0;
        struct ob_buf *into = direct ? ex->rx : &conn->in;
        size_t room;
        if (direct) {
            if (into->cap <= into->len + 1)
                ob_buf_reserve(into, conn->remaining < READ_MAX ? (size_t)conn->remaining : READ_MAX);
            room = into->cap - into->len - 1;
            if (room > conn->remaining)
                room = (size_t)conn->remaining;
        } else {
            /* Answers are mostly small: start small, double while full. */
            ob_buf_reserve(into, into->cap >= READ_MAX ? READ_MAX - 1 : READ_MIN - 1);
            room = into->cap - into->len - 1;
        }
        ssize_t n = io_read(c, conn, into->data + into->len, room, tls_error, sizeof tls_error);
        if (n == IO_AGAIN)
            return true;
        if (n <= 0)
            return conn_read_ended(c, conn, n, tls_error);
        if (!ex) {
            /* An idle connection should not speak. */
            conn_close(c, conn);
            return false;
        }
        into->len += (size_t)n;
        into->data[into->len] = '\0';
        conn->answer_started = true;
        if (direct) {
            conn->remaining -= (uint64_t)n;
            if (conn->remaining == 0)
                conn->phase = PHASE_DONE;
        } else if ((refused = parse_answer(conn))) {
            conn_fail(c, conn, OB_HTTP_PROTOCOL, 0, refused);
            return false;
        }
        if (conn->phase == PHASE_DONE)
            return conn_answer_done(c, conn);
        if ((size_t)n < room && !(conn->ssl && SSL_pending(conn->ssl)))
            return true;
    }
}

static void conn_on_event(struct ob_http_client *c, struct http_conn *conn, uint32_t events)
{
    switch (conn->state) {
    case CONN_CONNECTING:
        conn_connect_result(c, conn);
        return;
    case CONN_TUNNEL:
        conn_tunnel(c, conn);
        return;
    case CONN_HANDSHAKE:
        conn_handshake(c, conn);
        return;
    case CONN_READY:
        if ((events & EPOLLOUT) && conn->ex && conn->out_off < request_len(conn, conn->ex)) {
            if (!conn_write(c, conn))
                return;
            events &= ~(uint32_t)EPOLLOUT;
        }
        /* TLS may want the socket writable to go on reading. */
        if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || (conn->ssl && (events & EPOLLOUT)))
            conn_read(c, conn);
        return;
    }
}

/* ---- the client ------------------------------------------------------------- */

/* What h's connections send a proxy before or within each request. */
static void host_via_proxy(struct http_host *h)
{
    const struct ob_proxy *p = h->proxy;
    struct ob_buf b = { 0 };
    h->addr_name = p->host;
    h->addr_port = p->port;
    ob_buf_puts(&b, "proxy ");
    ob_proxy_put_authority(&b, p->host, p->port);
    h->proxy_label = ob_buf_steal(&b);
    if (h->tls) {
        ob_proxy_connect_request(&b, p, h->name, h->port);
        h->connect_request_len = b.len;
        h->connect_request = ob_buf_steal(&b);
        return;
    }
    ob_buf_puts(&b, "http://");
    ob_proxy_put_authority(&b, h->name, h->port);
    h->absolute_len = b.len;
    h->absolute = ob_buf_steal(&b);
    if (p->credentials)
        ob_buf_cat(&b, "Proxy-Authorization: Basic ", p->credentials, "\r\n", NULL);
    h->proxy_auth_len = b.len;
    h->proxy_auth = ob_buf_steal(&b);
}

static struct http_host *client_host(struct ob_http_client *c, const struct ob_http_origin *o)
{
    for (struct http_host *h = c->hosts; h; h = h->next)
        if (strcmp(h->key, o->key) == 0)
            return h;
    struct http_host *h = ob_xcalloc(1, sizeof *h);
    h->key = ob_xstrdup(o->key);
    h->tls = o->tls;
    h->name = ob_xstrdup(o->host);
    h->port = ob_xstrdup(o->port);
    h->addr_name = h->name;
    h->addr_port = h->port;
    if (!c->opt.direct && (h->proxy = ob_proxy_for(&c->proxies, h->tls, h->name, h->port)))
        host_via_proxy(h);
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

/* Puts queued exchanges on idle connections, opening new ones up to the
 * limit; the rest wait for a connection to come free. */
static void dispatch_queue(struct ob_http_client *c)
{
    struct ob_http_exchange *ex = c->queue, *prev = NULL;
    while (ex) {
        struct ob_http_exchange *next = ex->next;
        struct http_host *h = client_host(c, ex->origin);
        struct http_conn *idle = NULL;
        for (struct http_conn *conn = h->conns; conn; conn = conn->next)
            if (!conn->ex && conn->state == CONN_READY) {
                idle = conn;
                break;
            }
        if (!idle && h->n_conns >= c->opt.max_connections) {
            prev = ex;
            ex = next;
            continue;
        }
        if (prev)
            prev->next = next;
        else
            c->queue = next;
        if (c->queue_tail == ex)
            c->queue_tail = prev;
        ex->next = NULL;
        if (idle)
            conn_begin(c, idle, ex);
        else
            conn_open(c, h, ex);
        ex = next;
    }
}

static void dispatch(struct ob_http_client *c)
{
    /* What a stale connection broke goes first, in its order. A request
     * whose connection breaks while being dispatched lands in c->retry
     * again (once: it is marked requeued), not in the list being walked. */
    do {
        if (c->retry) {
            c->retry_tail->next = c->queue;
            if (!c->queue)
                c->queue_tail = c->retry_tail;
            c->queue = c->retry;
            c->retry = c->retry_tail = NULL;
        }
        dispatch_queue(c);
    } while (c->retry);
}

/* Fails what has run out of time; returns the next deadline (INT64_MAX:
 * none). */
static int64_t expire(struct ob_http_client *c, int64_t now)
{
    if (now < c->next_expiry)
        return c->next_expiry;
    int64_t next = INT64_MAX;
    for (struct ob_http_exchange *ex = c->queue, *after; ex; ex = after) {
        after = ex->next;
        if (ex->deadline_ms && now >= ex->deadline_ms) {
            list_remove(&c->queue, &c->queue_tail, ex);
            exchange_fail(c, ex, OB_HTTP_TIMEOUT, 0, "no connection free within %lld ms",
                          (long long)c->opt.request_timeout_ms);
        } else if (ex->deadline_ms && ex->deadline_ms < next) {
            next = ex->deadline_ms;
        }
    }
    /* Requeued ones go out again at the next dispatch, and are failed
     * there if late: their deadlines still count. */
    for (struct ob_http_exchange *ex = c->retry; ex; ex = ex->next)
        if (ex->deadline_ms && ex->deadline_ms < next)
            next = ex->deadline_ms;
    for (struct http_host *h = c->hosts; h; h = h->next)
        for (struct http_conn *conn = h->conns, *after; conn; conn = after) {
            after = conn->next;
            if (conn->connect_deadline_ms && now >= conn->connect_deadline_ms) {
                char what[80];
                snprintf(what, sizeof what, "connect timed out after %lld ms", (long long)c->opt.connect_timeout_ms);
                conn_fail_via(c, conn, OB_HTTP_TIMEOUT, what);
                continue;
            }
            if (conn->ex && conn->ex->deadline_ms && now >= conn->ex->deadline_ms) {
                char what[80];
                snprintf(what, sizeof what, "no answer within %lld ms", (long long)c->opt.request_timeout_ms);
                conn_fail(c, conn, OB_HTTP_TIMEOUT, 0, what);
                continue;
            }
            if (conn->connect_deadline_ms && conn->connect_deadline_ms < next)
                next = conn->connect_deadline_ms;
            if (conn->ex && conn->ex->deadline_ms && conn->ex->deadline_ms < next)
                next = conn->ex->deadline_ms;
        }
    c->next_expiry = next;
    return next;
}

void ob_http_client_start(struct ob_http_client *c, struct ob_http_exchange *ex)
{
    ex->failure = OB_HTTP_OK;
    ex->status = 0;
    ex->os_errno = 0;
    ex->error[0] = '\0';
    ex->requeued = false;
    ex->deadline_ms = c->opt.request_timeout_ms > 0 ? ob_mono_ms() + c->opt.request_timeout_ms : 0;
    expiry_at(c, ex->deadline_ms);
    list_append(&c->queue, &c->queue_tail, ex);
}

void ob_http_client_abort(struct ob_http_client *c, struct ob_http_exchange *ex)
{
    if (ex->conn) {
        struct http_conn *conn = ex->conn;
        conn->ex = NULL;
        ex->conn = NULL;
        conn_close(c, conn);
        return;
    }
    if (!list_remove(&c->queue, &c->queue_tail, ex) && !list_remove(&c->retry, &c->retry_tail, ex))
        list_remove(&c->done, &c->done_tail, ex);
}

/* Waits up to timeout_ms for events and handles them. */
static void handle_events(struct ob_http_client *c, int timeout_ms)
{
    struct epoll_event events[EVENTS_PER_WAIT];
    int n = epoll_wait(c->epoll_fd, events, EVENTS_PER_WAIT, timeout_ms);
    for (int i = 0; i < n; i++) {
        if (!events[i].data.ptr) {
            uint64_t v;
            if (read(c->wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: another wake-up was read already */
            }
            continue;
        }
        conn_on_event(c, events[i].data.ptr, events[i].events);
    }
}

/* Sends what is queued; returns the next deadline (INT64_MAX: none). */
static int64_t send_queued(struct ob_http_client *c, int64_t now)
{
    /* Before requests go out on idle connections: what happened to those
     * meanwhile is known first. A server may close one right after its
     * answer, without saying so; a request written into it would fail
     * without having been read. */
    if (c->queue || c->retry)
        handle_events(c, 0);
    dispatch(c);
    return expire(c, now);
}

void ob_http_client_send(struct ob_http_client *c)
{
    send_queued(c, ob_mono_ms());
}

void ob_http_client_drive(struct ob_http_client *c, int timeout_ms)
{
    int64_t now = ob_mono_ms();
    int64_t next = send_queued(c, now);
    /* With answers waiting to be collected the caller comes back at once:
     * a look for more events now would mostly find none. */
    if (c->done)
        return;
    if (next != INT64_MAX && next - now < timeout_ms)
        timeout_ms = next - now > 0 ? (int)(next - now) : 0;
    handle_events(c, timeout_ms);
    expire(c, ob_mono_ms());
}

struct ob_http_exchange *ob_http_client_next_done(struct ob_http_client *c)
{
    struct ob_http_exchange *ex = c->done;
    if (ex) {
        c->done = ex->next;
        if (!c->done)
            c->done_tail = NULL;
        ex->next = NULL;
    }
    return ex;
}

void ob_http_client_wakeup(struct ob_http_client *c)
{
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, a wake-up is pending anyway */
    }
}

void ob_http_client_destroy(struct ob_http_client *c)
{
    if (!c)
        return;
    while (c->hosts) {
        struct http_host *h = c->hosts;
        c->hosts = h->next;
        while (h->conns)
            conn_close(c, h->conns);
        resolved_release(h->resolved);
        free(h->key);
        free(h->name);
        free(h->port);
        free(h->proxy_label);
        free(h->connect_request);
        free(h->absolute);
        free(h->proxy_auth);
        free(h);
    }
    SSL_CTX_free(c->ssl_ctx);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->epoll_fd >= 0)
        close(c->epoll_fd);
    free(c->ca_file);
    ob_proxy_env_free(&c->proxies);
    free(c->proxy_error);
    free(c);
}

static const char *process_env(const char *name)
{
    return getenv(name);
}

enum ob_err ob_http_proxy_env_load(struct ob_proxy_env *env, struct ob_error *err)
{
    return ob_proxy_env_load(process_env, env, err);
}
