/* bench_ceiling: the ceiling of a DynamoDB endpoint for outboxd's hottest
 * call, the conditional mark-published UpdateItem.
 *
 *   bench_ceiling ENDPOINT TABLE N CONCURRENCY [--existing | --load-only]
 *
 * Creates TABLE if missing and writes N unpublished outbox items with
 * BatchWriteItem (untimed; --existing skips both, --load-only does only
 * that, so a later --existing run can be watched alone), then times N
 * mark-published UpdateItems, the very body ob_mark_published_body
 * builds, with CONCURRENCY keep-alive connections of one request in flight
 * each, and prints one JSON line:
 *   {"ops":N,"seconds":S,"ops_per_s":R,"conflicts":C}
 * The client has to be cheap so the server is what is measured: raw
 * non-blocking sockets, one epoll loop, request bytes patched from a
 * precomputed template. The Authorization header is well-formed but not a
 * real signature, which ddb_bench_server and DynamoDB Local both accept. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "dynamo/mark.h"

#define PK_FMT "bench-p%06zu"
#define SK_FMT "bench-m%010zu"
#define PK_DIGITS 6
#define SK_DIGITS 10
#define PARTITIONS 4096
#define BATCH 25

struct conn {
    int fd;
    struct ob_buf out;
    size_t out_off;
    struct ob_buf in;
    bool busy;
};

struct job;
typedef void (*build_fn)(const struct job *j, size_t i, struct ob_buf *out);

/* total requests; a 400 answer naming `tolerated` is counted in
 * conflicts, any other non-200 in errors. */
struct job {
    size_t total, next, done;
    build_fn build;
    const char *tolerated;
    size_t conflicts, errors;
    char first_error[512];
};

static struct {
    char host[280]; /* Host header: host:port */
    const char *table;
    size_t n;
    struct ob_buf update;  /* one full mark-published request */
    size_t pk_at, sk_at;   /* where its key digits are */
    int ep;
} bench;

static void put_request(struct ob_buf *out, const char *target, const char *body, size_t len)
{
    ob_buf_printf(out,
                  "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\n"
                  "X-Amz-Target: DynamoDB_20120810.%s\r\nX-Amz-Date: 20260101T000000Z\r\n"
                  "Authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/dynamodb/aws4_request, "
                  "SignedHeaders=host;x-amz-date;x-amz-target, Signature=%064d\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  bench.host, target, 0, len);
    ob_buf_append(out, body, len);
}

static void put_json_request(struct ob_buf *out, const char *target, json_t *req)
{
    char *body = json_dumps(req, JSON_COMPACT);
    put_request(out, target, body, strlen(body));
    free(body);
}

static void digits(char *at, size_t width, size_t v)
{
    for (size_t i = width; i-- > 0; v /= 10)
        at[i] = (char)('0' + v % 10);
}

static void build_update(const struct job *j, size_t i, struct ob_buf *out)
{
    (void)j;
    ob_buf_append(out, bench.update.data, bench.update.len);
    char *req = out->data + out->len - bench.update.len;
    digits(req + bench.pk_at, PK_DIGITS, i % PARTITIONS);
    digits(req + bench.sk_at, SK_DIGITS, i);
}

static void build_load(const struct job *j, size_t batch, struct ob_buf *out)
{
    (void)j;
    json_t *writes = json_array();
    char pk[32], sk[32];
    for (size_t i = batch * BATCH; i < bench.n && i < (batch + 1) * BATCH; i++) {
        snprintf(pk, sizeof pk, PK_FMT, i % PARTITIONS);
        snprintf(sk, sizeof sk, SK_FMT, i);
        json_array_append_new(
            writes,
            json_pack("{s:{s:{s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:b},s:{s:s}}}}",
                      "PutRequest", "Item", "pk", "S", pk, "sk", "S", sk, "messageType", "S", "bench.OrderPlaced",
                      "payload", "S", "eyJvcmRlcklkIjoiMTIzNDUiLCJhbW91bnQiOjQyLCJjdXJyZW5jeSI6IkVVUiJ9",
                      "headers", "S", "{\"content-type\":\"application/json\"}", "aggregateId", "S", pk,
                      "aggregateType", "S", "Order", "createdAt", "S", "2026-01-01T00:00:00.000Z", "isPublished",
                      "BOOL", 0, "retryCount", "N", "0"));
    }
    json_t *req = json_pack("{s:{s:o}}", "RequestItems", bench.table, writes);
    put_json_request(out, "BatchWriteItem", req);
    json_decref(req);
}

static void build_create(const struct job *j, size_t i, struct ob_buf *out)
{
    (void)j;
    (void)i;
    json_t *req = json_pack("{s:s,s:[{s:s,s:s},{s:s,s:s}],s:[{s:s,s:s},{s:s,s:s}],s:s,s:{s:b,s:s}}", "TableName",
                            bench.table, "KeySchema", "AttributeName", "pk", "KeyType", "HASH", "AttributeName",
                            "sk", "KeyType", "RANGE", "AttributeDefinitions", "AttributeName", "pk",
                            "AttributeType", "S", "AttributeName", "sk", "AttributeType", "S", "BillingMode",
                            "PAY_PER_REQUEST", "StreamSpecification", "StreamEnabled", 1, "StreamViewType",
                            "NEW_AND_OLD_IMAGES");
    put_json_request(out, "CreateTable", req);
    json_decref(req);
}

/* The request template: outboxd's own body (with the
 * ReturnConsumedCapacity its client adds) for item 0. */
static int make_update_template(void)
{
    char pk[32], sk[32];
    snprintf(pk, sizeof pk, PK_FMT, (size_t)0);
    snprintf(sk, sizeof sk, SK_FMT, (size_t)0);
    struct ob_buf body = { 0 };
    ob_mark_published_body(&body, bench.table, pk, sk, 1767225600000, 604800);
    put_request(&bench.update, "UpdateItem", body.data, body.len);
    ob_buf_free(&body);
    const char *p = strstr(bench.update.data, "\"" "bench-p"), *s = strstr(bench.update.data, "\"" "bench-m");
    if (!p || !s)
        return -1;
    bench.pk_at = (size_t)(p - bench.update.data) + 8;
    bench.sk_at = (size_t)(s - bench.update.data) + 8;
    return 0;
}

static int conn_send(struct conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
            epoll_ctl(bench.ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        if (w < 0) {
            perror("bench_ceiling: send");
            return -1;
        }
        c->out_off += (size_t)w;
    }
    return 0;
}

/* Prepares the job's next request on c; run() sends it. */
static void issue(struct job *j, struct conn *c)
{
    if (j->next == j->total)
        return;
    ob_buf_reset(&c->out);
    c->out_off = 0;
    j->build(j, j->next++, &c->out);
    c->busy = true;
}

/* Sends every prepared request back to back, after a round of answers was
 * read: the server is woken once for the lot instead of once per request. */
static int send_prepared(struct conn *conns, size_t width)
{
    for (size_t i = 0; i < width; i++)
        if (conns[i].out_off < conns[i].out.len && conn_send(&conns[i]) < 0)
            return -1;
    return 0;
}

/* One complete answer at the head of c->in: its status, body and total
 * length, or 0 when more bytes are needed. */
static size_t parse_answer(const struct conn *c, int *status, const char **body, size_t *body_len)
{
    const char *data = c->in.data;
    const char *end = c->in.len ? memmem(data, c->in.len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return 0;
    size_t head = (size_t)(end - data) + 4, clen = 0;
    *status = atoi(data + 9);
    for (const char *l = data; l && l < end; l = memchr(l, '\n', (size_t)(end - l))) {
        l++;
        if (strncasecmp(l, "content-length:", 15) == 0)
            clen = strtoul(l + 15, NULL, 10);
    }
    if (c->in.len < head + clen)
        return 0;
    *body = data + head;
    *body_len = clen;
    return head + clen;
}

static void classify(struct job *j, int status, const char *body, size_t len)
{
    if (status == 200)
        return;
    if (status == 400 && j->tolerated && memmem(body, len, j->tolerated, strlen(j->tolerated))) {
        j->conflicts++;
        return;
    }
    if (!j->errors++)
        snprintf(j->first_error, sizeof j->first_error, "HTTP %d: %.*s", status, (int)(len < 400 ? len : 400),
                 body);
}

static int conn_receive(struct job *j, struct conn *c)
{
    ob_buf_reserve(&c->in, 16384);
    ssize_t r = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (r <= 0) {
        fprintf(stderr, "bench_ceiling: the server closed a connection\n");
        return -1;
    }
    c->in.len += (size_t)r;
    c->in.data[c->in.len] = '\0';
    int status;
    const char *body;
    size_t len, used;
    while ((used = parse_answer(c, &status, &body, &len)) > 0) {
        if (status != 100) {
            classify(j, status, body, len);
            j->done++;
            c->busy = false;
        }
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
        c->in.data[c->in.len] = '\0';
        if (!c->busy)
            issue(j, c);
    }
    return 0;
}

/* Runs the job over the first `width` connections. */
static int run(struct job *j, struct conn *conns, size_t width)
{
    for (size_t i = 0; i < width; i++)
        issue(j, &conns[i]);
    if (send_prepared(conns, width) < 0)
        return -1;
    struct epoll_event evs[256];
    while (j->done < j->total) {
        int n = epoll_wait(bench.ep, evs, 256, 30000);
        if (n == 0) {
            fprintf(stderr, "bench_ceiling: no answer for 30 s\n");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                epoll_ctl(bench.ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (conn_send(c) < 0)
                    return -1;
            }
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_receive(j, c) < 0)
                return -1;
        }
        if (send_prepared(conns, width) < 0)
            return -1;
    }
    if (j->errors)
        fprintf(stderr, "bench_ceiling: %zu failed requests; first: %s\n", j->errors, j->first_error);
    return j->errors ? -1 : 0;
}

static int connect_all(const char *endpoint, struct conn *conns, size_t n)
{
    char host[256], port[16] = "80";
    const char *h = strncmp(endpoint, "http://", 7) == 0 ? endpoint + 7 : NULL;
    size_t hl = h ? strcspn(h, ":/") : 0;
    if (!h || hl == 0 || hl >= sizeof host) {
        fprintf(stderr, "bench_ceiling: ENDPOINT must look like http://HOST:PORT\n");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (h[hl] == ':')
        snprintf(port, sizeof port, "%.*s", (int)strcspn(h + hl + 1, "/"), h + hl + 1);
    snprintf(bench.host, sizeof bench.host, "%s:%s", host, port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "bench_ceiling: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        conns[i].fd = fd;
        if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            perror("bench_ceiling: connect");
            rc = -1;
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
        epoll_ctl(bench.ep, EPOLL_CTL_ADD, fd, &ev);
    }
    freeaddrinfo(ai);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fputs("usage: bench_ceiling ENDPOINT TABLE N CONCURRENCY [--existing | --load-only]\n", stderr);
    return 64;
}

int main(int argc, char **argv)
{
    int rc = 1;
    bool existing = argc == 6 && strcmp(argv[5], "--existing") == 0;
    bool load_only = argc == 6 && strcmp(argv[5], "--load-only") == 0;
    if (argc != 5 && !existing && !load_only)
        return usage();
    char *end1, *end2;
    long long n = strtoll(argv[3], &end1, 10), width = strtoll(argv[4], &end2, 10);
    if (*end1 || *end2 || n < 1 || width < 1 || width > 10000)
        return usage();
    bench.table = argv[2];
    bench.n = (size_t)n;
    bench.ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)width, sizeof *conns);
    for (long long i = 0; i < width; i++)
        conns[i].fd = -1;
    if (bench.ep < 0 || !conns || connect_all(argv[1], conns, (size_t)width) < 0 || make_update_template() < 0)
        goto out;
    if (!existing) {
        struct job create = { .total = 1, .build = build_create, .tolerated = "ResourceInUseException" };
        struct job load = { .total = (bench.n + BATCH - 1) / BATCH, .build = build_load };
        if (run(&create, conns, 1) < 0 || run(&load, conns, width < 32 ? (size_t)width : 32) < 0)
            goto out;
    }
    if (load_only) {
        rc = 0;
        goto out;
    }
    struct job update = { .total = bench.n, .build = build_update, .tolerated = "ConditionalCheckFailedException" };
    double t0 = now_s();
    if (run(&update, conns, (size_t)width) < 0)
        goto out;
    double secs = now_s() - t0;
    printf("{\"ops\":%zu,\"seconds\":%.3f,\"ops_per_s\":%.0f,\"conflicts\":%zu}\n", bench.n, secs,
           (double)bench.n / secs, update.conflicts);
    rc = 0;
out:
    for (long long i = 0; conns && i < width; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
        ob_buf_free(&conns[i].in);
        ob_buf_free(&conns[i].out);
    }
    free(conns);
    ob_buf_free(&bench.update);
    if (bench.ep >= 0)
        close(bench.ep);
    return rc;
}
