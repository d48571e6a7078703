/* An HTTP/1.1 client on epoll: kept-alive connections per origin, plain
 * or TLS (OpenSSL), one exchange per connection at a time, many
 * connections at once.
 *
 * Why not libcurl: outboxd sends two small POSTs per message (the sink's
 * and the mark-published UpdateItem). curl spent more CPU on each than
 * the rest of the relay together: a liveness poll(2) per reuse, socket
 * callbacks re-arming epoll, a dozen allocations per transfer. Here a
 * request is one send(2), its answer one recv(2) in the common case, the
 * connection stays in the epoll set while it lives and nothing is
 * allocated per exchange once buffers have grown.
 *
 * One thread drives a client at a time; ob_http_client_wakeup is safe from
 * any thread. */
#ifndef OB_AWS_HTTP_CLIENT_H
#define OB_AWS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "outboxd/error.h"

/* Where a connection goes. */
struct ob_http_origin {
    bool tls;
    char *host; /* name or address to resolve and verify; IPv6 without brackets */
    char *port; /* decimal */
    char *key;  /* "tls|host|port": connections are shared by equal keys */
};

/* Fills *o with copies (free with ob_http_origin_free). host may be an
 * IPv6 address in brackets. */
void ob_http_origin_set(struct ob_http_origin *o, bool tls, const char *host, const char *port);
void ob_http_origin_free(struct ob_http_origin *o);

struct addrinfo;

struct ob_http_client_options {
    int max_connections;        /* per origin; 0: 64 */
    int64_t connect_timeout_ms; /* TCP and TLS handshake; 0: none */
    int64_t request_timeout_ms; /* the whole exchange, from its start; 0: none */
    bool tls_verify;            /* certificate chain and host name */
    const char *ca_file;        /* NULL: the system's trust store */
    /* Never through a proxy, whatever HTTPS_PROXY says: the instance
     * metadata and container credential endpoints (SPEC §6). Otherwise an
     * origin goes through the proxy the environment names for its scheme
     * unless NO_PROXY exempts it: http in absolute form, https through a
     * CONNECT tunnel, the origin's certificate verified as when direct. */
    bool direct;
    /* Looks a host name up, as getaddrinfo (NULL: getaddrinfo). The answer
     * is kept for 30 s and shared by the connections opened meanwhile. */
    int (*resolve)(const char *name, const char *port, const struct addrinfo *hints, struct addrinfo **out);
};

enum ob_http_failure {
    OB_HTTP_OK,       /* an answer arrived, whatever its status */
    OB_HTTP_CONNECT,  /* no connection (`os_errno` says why when the kernel did) */
    OB_HTTP_TLS,      /* handshake or certificate */
    OB_HTTP_TIMEOUT,
    OB_HTTP_IO,       /* the connection broke or closed early */
    OB_HTTP_PROTOCOL, /* the answer was not HTTP/1.x */
};

/* One request and its answer. The caller owns it and everything it points
 * to until the client hands it back from ob_http_client_next_done (or it is
 * aborted). */
struct ob_http_exchange {
    const struct ob_http_origin *origin;
    const char *head; /* request line and header lines, ending in an empty line */
    size_t head_len;
    const void *body;
    size_t body_len;
    struct ob_buf *rx; /* the answer's body is appended here; NULL: dropped */
    void *user;

    enum ob_http_failure failure;
    int status;        /* when failure == OB_HTTP_OK */
    int os_errno;      /* OB_HTTP_CONNECT: the connect(2) error, 0 if none */
    char error[200];   /* what went wrong, when failure != OB_HTTP_OK */

    /* Private to http_client.c. */
    struct ob_http_exchange *next;
    struct http_conn *conn;
    int64_t deadline_ms;
    bool requeued;
};

struct ob_http_client;

/* The proxies the process environment names (HTTPS_PROXY, HTTP_PROXY,
 * NO_PROXY: core/proxy.h says how they are read), as every client not
 * `direct` reads them when it is made. A client made while they name a
 * proxy that cannot be used fails each new connection with this error. */
struct ob_proxy_env;
enum ob_err ob_http_proxy_env_load(struct ob_proxy_env *env, struct ob_error *err);

/* NULL with err set when the kernel or OpenSSL cannot make one (or
 * ca_file cannot be loaded). The caller owns it (ob_http_client_destroy). */
struct ob_http_client *ob_http_client_create(const struct ob_http_client_options *opt, struct ob_error *err);
/* Closes every connection; exchanges still in it are dropped. */
void ob_http_client_destroy(struct ob_http_client *c);

/* Queues ex; it goes out on the next ob_http_client_drive. */
void ob_http_client_start(struct ob_http_client *c, struct ob_http_exchange *ex);

/* Takes ex (started, not yet done) out of the client: its connection is
 * closed if it was on one. */
void ob_http_client_abort(struct ob_http_client *c, struct ob_http_exchange *ex);

/* Sends and receives what it can, waiting up to timeout_ms (0: not at all)
 * for something to happen; returns early on ob_http_client_wakeup or when
 * an exchange is done. */
void ob_http_client_drive(struct ob_http_client *c, int timeout_ms);
/* Sends what was queued without looking for answers, for a caller that
 * looks later, after other work: on a kept-alive connection a request
 * goes out now; one that needs a new connection starts connecting and
 * goes out from the drive that finds it connected. */
void ob_http_client_send(struct ob_http_client *c);

/* The finished exchanges, one per call, then NULL. */
struct ob_http_exchange *ob_http_client_next_done(struct ob_http_client *c);

/* Makes a thread blocked in ob_http_client_drive return. */
void ob_http_client_wakeup(struct ob_http_client *c);

#endif
