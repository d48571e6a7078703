/* http_receiver: a loopback HTTP/1.1 server that the relay's HTTP sink
 * posts messages to, recording when each one arrived.
 *
 *   http_receiver --port P [--log FILE] [--status CODE]
 *
 * Listens on 127.0.0.1:P (0 picks a free port) and prints
 * "listening on 127.0.0.1:PORT" once bound. Every request is answered
 * "HTTP/1.1 CODE <reason>" with an empty body (CODE 204 unless --status)
 * and recorded with its id (the ce-id header, else Idempotency-Key, else
 * webhook-id, else empty) and its CLOCK_REALTIME arrival in microseconds,
 * taken when the whole request has been read. GET /count is not recorded;
 * it answers 200 with the number of recorded messages, for a runner to
 * poll. On SIGTERM or SIGINT the records go to FILE as "<id> <us>" lines
 * in arrival order (spaces and control bytes in ids become '_'), and the
 * process exits 0.
 *
 * A benchmark instrument: it must cost far less per request than the
 * relay. One epoll loop, keep-alive and pipelining, one recv per readable
 * event, requests parsed in place, ids kept in one arena, all answers of
 * an event round leaving each connection in one send. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "loop.h"

#define RECV_SIZE (64u << 10)
#define MAX_HEAD (64u << 10)
#define MAX_BODY (16u << 20)
#define MAX_ID 256
#define CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"
#define BAD_REQUEST "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

struct conn {
    bool open;
    bool close_after; /* no more requests are read: Connection: close, 400 or EOF */
    bool continued;   /* 100 Continue sent for the request being received */
    bool want_out;
    uint32_t events;
    struct ob_buf in, out;
    size_t in_off, out_off;
};

struct rec {
    uint64_t us;
    size_t id_off, id_len;
};

static struct {
    struct bench_loop io;
    struct conn *conns;
    size_t n_conns;
    char answer[96]; /* status line and Content-Length: 0 */
    size_t answer_len;
    struct rec *recs;
    size_t n_recs, recs_cap;
    struct ob_buf ids;
    uint64_t requests;
} loop = { .io = BENCH_LOOP_INIT("http_receiver") };

static uint64_t real_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void conn_close(int fd)
{
    struct conn *c = &loop.conns[fd];
    epoll_ctl(loop.io.ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->open = false;
    ob_buf_free(&c->in);
    ob_buf_free(&c->out);
}

/* Reads while requests may come, writes while answers wait: a closing
 * connection must stop watching input, or its EOF would fire forever. */
static void conn_watch(int fd)
{
    struct conn *c = &loop.conns[fd];
    uint32_t events = (c->close_after ? 0 : EPOLLIN | EPOLLRDHUP) | (c->want_out ? EPOLLOUT : 0);
    if (events == c->events)
        return;
    struct epoll_event ev = { .events = events, .data.fd = fd };
    epoll_ctl(loop.io.ep, EPOLL_CTL_MOD, fd, &ev);
    c->events = events;
}

static void conn_flush(int fd)
{
    struct conn *c = &loop.conns[fd];
    while (c->out_off < c->out.len) {
        ssize_t w = send(fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->want_out = true;
            conn_watch(fd);
            return;
        }
        if (w <= 0) {
            conn_close(fd);
            return;
        }
        c->out_off += (size_t)w;
    }
    ob_buf_reset(&c->out);
    c->out_off = 0;
    c->want_out = false;
    if (c->close_after)
        conn_close(fd);
    else
        conn_watch(fd);
}

static void flush_if_open(int fd)
{
    if (loop.conns[fd].open)
        conn_flush(fd);
}

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Whether the comma-separated list v holds token tok. */
static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != ';')
            i++;
        if (i - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
        while (i < n && v[i] != ',')
            i++;
    }
    return false;
}

/* Length of the chunked body at p, trailers included: 0 while it is
 * incomplete, -1 when malformed. The body itself is never needed. p is
 * NUL-terminated (ob_buf), which strtoull relies on. */
static ssize_t chunked_len(const char *p, size_t n)
{
    size_t i = 0;
    for (;;) {
        const char *eol = memmem(p + i, n - i, "\r\n", 2);
        if (!eol)
            return n - i > 4096 ? -1 : 0;
        if (!isxdigit((unsigned char)p[i]))
            return -1;
        char *e;
        size_t end = (size_t)(eol - p), size = strtoull(p + i, &e, 16);
        if (size > MAX_BODY || (e != eol && *e != ';' && *e != ' ' && *e != '\t'))
            return -1;
        i = end + 2;
        if (size == 0)
            break;
        if (i + size > MAX_BODY)
            return -1;
        if (n - i < size + 2)
            return 0;
        if (p[i + size] != '\r' || p[i + size + 1] != '\n')
            return -1;
        i += size + 2;
    }
    for (;;) { /* trailer lines up to an empty one */
        const char *eol = memmem(p + i, n - i, "\r\n", 2);
        if (!eol)
            return n - i > MAX_HEAD ? -1 : 0;
        size_t len = (size_t)(eol - (p + i));
        i += len + 2;
        if (len == 0)
            return (ssize_t)i;
    }
}

static void record(const char *id, size_t n, uint64_t us)
{
    if (loop.n_recs == loop.recs_cap) {
        loop.recs_cap = loop.recs_cap ? loop.recs_cap * 2 : 65536;
        loop.recs = ob_xrealloc(loop.recs, loop.recs_cap * sizeof *loop.recs);
    }
    if (n > MAX_ID)
        n = MAX_ID;
    size_t off = loop.ids.len;
    ob_buf_append(&loop.ids, id, n);
    /* One line per message in the log, so nothing may split it. */
    for (char *p = loop.ids.data + off; p < loop.ids.data + off + n; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            *p = '_';
    loop.recs[loop.n_recs++] = (struct rec){ us, off, n };
}

/* Parses and answers every complete request in c->in. Returns -1 when the
 * input is not HTTP we accept (the caller answers 400 and closes). */
static int conn_process(struct conn *c, uint64_t *now)
{
    while (!c->close_after) {
        /* A stray CRLF between requests is allowed (RFC 9112 2.2). */
        while (c->in.len - c->in_off >= 2 && memcmp(c->in.data + c->in_off, "\r\n", 2) == 0)
            c->in_off += 2;
        if (c->in.len == c->in_off)
            return 0;
        const char *data = c->in.data + c->in_off;
        size_t avail = c->in.len - c->in_off;
        const char *end = memmem(data, avail, "\r\n\r\n", 4);
        if (!end)
            return avail > MAX_HEAD ? -1 : 0;
        size_t head_len = (size_t)(end - data) + 4, body_len = 0;
        /* Request line: METHOD SP TARGET SP HTTP/1.x */
        const char *eol = memchr(data, '\r', head_len), *sp1 = memchr(data, ' ', (size_t)(eol - data));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (eol[1] != '\n' || !sp2 || sp1 == data || sp2 == sp1 + 1 || eol - sp2 != 9 ||
            memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || (sp2[8] != '0' && sp2[8] != '1'))
            return -1;
        bool close = sp2[8] == '0', expect = false, chunked = false, have_len = false;
        const char *id = "";
        size_t id_len = 0;
        int id_rank = 3;
        for (const char *line = eol + 2; line < end; line = eol + 2) {
            eol = memchr(line, '\r', (size_t)(end + 2 - line));
            const char *colon = memchr(line, ':', (size_t)(eol - line));
            if (eol[1] != '\n' || !colon || colon == line || line[0] == ' ' || line[0] == '\t' || colon[-1] == ' ' ||
                colon[-1] == '\t')
                return -1;
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t nl = (size_t)(colon - line), vl = (size_t)(ve - v);
            int rank = name_is(line, nl, "ce-id")             ? 0
                       : name_is(line, nl, "idempotency-key") ? 1
                       : name_is(line, nl, "webhook-id")      ? 2
                                                              : 3;
            if (rank < id_rank) {
                id = v, id_len = vl, id_rank = rank;
            } else if (name_is(line, nl, "content-length")) {
                size_t n = 0, k = 0;
                for (; k < vl && v[k] >= '0' && v[k] <= '9' && n <= MAX_BODY; k++)
                    n = n * 10 + (size_t)(v[k] - '0');
                if (k == 0 || k < vl || n > MAX_BODY || (have_len && n != body_len))
                    return -1;
                body_len = n, have_len = true;
            } else if (name_is(line, nl, "transfer-encoding")) {
                if (!has_token(v, vl, "chunked"))
                    return -1; /* no other coding frames a body */
                chunked = true;
            } else if (name_is(line, nl, "expect")) {
                expect = has_token(v, vl, "100-continue");
            } else if (name_is(line, nl, "connection")) {
                close = has_token(v, vl, "close") || (close && !has_token(v, vl, "keep-alive"));
            }
        }
        if (chunked) { /* Transfer-Encoding overrides Content-Length */
            ssize_t n = chunked_len(data + head_len, avail - head_len);
            if (n < 0)
                return -1;
            body_len = (size_t)n;
        }
        if ((chunked && body_len == 0) || avail - head_len < body_len) {
            if (expect && !c->continued) {
                ob_buf_append(&c->out, CONTINUE, sizeof CONTINUE - 1);
                c->continued = true;
            }
            return 0;
        }
        c->continued = false;
        c->close_after = close;
        loop.requests++;
        size_t tl = (size_t)(sp2 - sp1 - 1);
        if (sp1 - data == 3 && memcmp(data, "GET", 3) == 0 && tl >= 6 && memcmp(sp1 + 1, "/count", 6) == 0 &&
            (tl == 6 || sp1[7] == '?')) {
            char digits[24];
            int dl = snprintf(digits, sizeof digits, "%zu", loop.n_recs);
            ob_buf_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s", dl,
                          close ? "Connection: close\r\n" : "", digits);
        } else {
            if (!*now)
                *now = real_us();
            record(id, id_len, *now);
            ob_buf_append(&c->out, loop.answer, loop.answer_len);
            ob_buf_puts(&c->out, close ? "Connection: close\r\n\r\n" : "\r\n");
        }
        c->in_off += head_len + body_len;
    }
    return 0;
}

static void conn_readable(int fd)
{
    struct conn *c = &loop.conns[fd];
    ob_buf_reserve(&c->in, RECV_SIZE);
    ssize_t r = recv(fd, c->in.data + c->in.len, RECV_SIZE, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r < 0) { /* reset by the peer: nothing to tell it */
        conn_close(fd);
        return;
    }
    if (r == 0) { /* the peer is done sending: answer what it sent, then close */
        c->close_after = true;
        bench_loop_mark(&loop.io, fd);
        return;
    }
    c->in.len += (size_t)r;
    c->in.data[c->in.len] = '\0';
    uint64_t now = 0; /* one clock read serves every request this recv completed */
    if (conn_process(c, &now) < 0) {
        ob_buf_append(&c->out, BAD_REQUEST, sizeof BAD_REQUEST - 1);
        c->close_after = true;
    }
    if (c->close_after || c->in_off == c->in.len) {
        ob_buf_reset(&c->in);
        c->in_off = 0;
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in.data[c->in.len] = '\0';
        c->in_off = 0;
    }
    if (c->out.len > c->out_off || c->close_after)
        bench_loop_mark(&loop.io, fd);
}

static uint32_t conn_accept(int fd)
{
    loop.conns = bench_slots_reserve(loop.conns, &loop.n_conns, sizeof *loop.conns, (size_t)fd);
    struct conn *c = &loop.conns[fd];
    *c = (struct conn){ .open = true, .events = EPOLLIN | EPOLLRDHUP };
    return c->events;
}

static void conn_event(int fd, uint32_t e)
{
    struct conn *c = &loop.conns[fd];
    if (!c->open)
        return;
    if (e & EPOLLERR)
        conn_close(fd); /* reset: drop it quietly */
    else if (!c->close_after && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
        conn_readable(fd);
    else if (e & EPOLLHUP)
        conn_close(fd); /* closing, and the peer is gone too */
    else if (e & EPOLLOUT)
        bench_loop_mark(&loop.io, fd);
}

static const char *reason(long code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static int usage(void)
{
    fputs("usage: http_receiver --port P [--log FILE] [--status CODE]\n"
          "  port 0 picks a free port; the bound one is printed as \"listening on 127.0.0.1:P\"\n"
          "  CODE (200-599, default 204) answers every request but GET /count\n",
          stderr);
    return 64;
}

static int write_log(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror("http_receiver: log");
        return -1;
    }
    setvbuf(f, NULL, _IOFBF, 1u << 20);
    for (size_t i = 0; i < loop.n_recs; i++) {
        const struct rec *r = &loop.recs[i];
        fprintf(f, "%.*s %" PRIu64 "\n", (int)r->id_len, loop.ids.data + r->id_off, r->us);
    }
    if (ferror(f) | (fclose(f) != 0)) {
        perror("http_receiver: log");
        return -1;
    }
    return 0;
}

/* Frees everything, so a sanitizer build reports real leaks at exit. */
static void shutdown_all(void)
{
    for (size_t fd = 0; fd < loop.n_conns; fd++) {
        if (loop.conns[fd].open)
            close((int)fd);
        ob_buf_free(&loop.conns[fd].in);
        ob_buf_free(&loop.conns[fd].out);
    }
    free(loop.conns);
    free(loop.recs);
    ob_buf_free(&loop.ids);
    bench_loop_close(&loop.io);
}

int main(int argc, char **argv)
{
    long port = -1, status = 204;
    const char *log_path = NULL;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--port") == 0 && val && bench_int_arg(val, 0, 65535, &port))
            i++;
        else if (strcmp(a, "--status") == 0 && val && bench_int_arg(val, 200, 599, &status))
            i++;
        else if (strcmp(a, "--log") == 0 && val)
            log_path = val, i++;
        else
            return usage();
    }
    if (port < 0)
        return usage();
    loop.answer_len = (size_t)snprintf(loop.answer, sizeof loop.answer, "HTTP/1.1 %ld %s\r\nContent-Length: 0\r\n",
                                       status, reason(status));
    loop.io.on_accept = conn_accept;
    loop.io.on_event = conn_event;
    loop.io.on_flush = flush_if_open;
    if (bench_loop_open(&loop.io, port) < 0 || bench_loop_run(&loop.io) < 0) {
        rc = 71;
        goto out;
    }
    fprintf(stderr, "http_receiver: %" PRIu64 " requests, %zu messages\n", loop.requests, loop.n_recs);
    if (log_path && write_log(log_path) < 0)
        rc = 74;
out:
    shutdown_all();
    return rc;
}
