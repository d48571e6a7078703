/* The operations HTTP server on metrics.listen: /metrics (Prometheus text
 * format), /healthz (the liveness callback's answer) and /readyz (the
 * readiness callback's answer). One thread, poll()-driven, non-blocking
 * sockets: no client can hold it up, and a probe is answered however many
 * idle or slow connections are open (see the limits below).
 * GET and HEAD only, HTTP/1.0 and 1.1 with keep-alive. */
#ifndef OB_OPS_HTTP_SERVER_H
#define OB_OPS_HTTP_SERVER_H

#include <stdbool.h>

#include "core/buf.h"
#include "outboxd/error.h"

/* Limits, as docs/OPERATIONS.md gives them to operators. A request head
 * must be whole within the timeout of the connection's opening or of its
 * previous response (an idle keep-alive connection is closed then, too);
 * one larger than OB_HTTP_MAX_HEAD gets 431 and the connection is closed.
 * A new connection beyond OB_HTTP_MAX_CONNS closes the open one that
 * waited longest for its client, and so does one that meets a process out
 * of descriptors. */
#define OB_HTTP_MAX_CONNS 128
#define OB_HTTP_MAX_HEAD 8192
#define OB_HTTP_HEAD_TIMEOUT_MS 5000

struct ob_http_server;

struct ob_http_routes {
    /* /readyz: true for 200 "ready\n"; false for 503 with the reason the
     * callback appended to why (a line of its own is added when empty).
     * Runs on the server thread, so it must be quick and thread-safe.
     * NULL: ready whenever the server runs. */
    bool (*ready)(void *ctx, struct ob_buf *why);
    void *ready_ctx;
    /* /healthz, the same way: true for 200 "ok\n", false for 503 with the
     * reason ("not healthy" when empty). NULL: healthy whenever the server
     * runs. */
    bool (*healthy)(void *ctx, struct ob_buf *why);
    void *healthy_ctx;
};

/* address: "host:port" where host is an IPv4 address, [IPv6] address, a
 * name (the first address that binds is used) or empty for every
 * interface; port 0 picks a free one (see ob_http_server_port). routes is
 * copied. A bad address or a failed bind gives OB_ERR_CONFIG naming it,
 * e.g. "metrics.listen 127.0.0.1:9464: Address already in use".
 * The caller owns *out and releases it with ob_http_server_stop. */
enum ob_err ob_http_server_start(const char *address, const struct ob_http_routes *routes,
                                 struct ob_http_server **out, struct ob_error *err);

/* The bound TCP port. */
int ob_http_server_port(const struct ob_http_server *srv);

/* Wakes the server thread, waits for it, closes every connection (idle
 * keep-alive ones included) and frees srv. NULL is a no-op. */
void ob_http_server_stop(struct ob_http_server *srv);

#endif
