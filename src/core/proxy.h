/* Forward proxies as the environment names them (HTTPS_PROXY, HTTP_PROXY,
 * NO_PROXY; SPEC §6), read the way curl and the AWS SDKs read them, and
 * the CONNECT exchange that opens a tunnel through one. Pure code: the
 * caller hands in how to read a variable and the bytes the proxy sent.
 *
 * Reading the variables:
 * - For each of https_proxy, http_proxy and no_proxy the lowercase name
 *   wins over the uppercase one, as in curl and Python's urllib (which
 *   botocore uses); an empty value counts as unset, so an empty
 *   lowercase variable lets the uppercase one through.
 * - A proxy is http://[user[:password]@]host[:port]; without a scheme
 *   http:// is assumed (as botocore does) and without a port 80, the
 *   scheme's (botocore through urllib3, and Go's net/http, both do; curl's
 *   1080 is its SOCKS heritage). Only http:// proxies are supported: TLS
 *   to the proxy itself (https://) and SOCKS are refused with a message.
 *   '/', '?' and '#' in the user information must be percent-encoded; a
 *   URL with one before its last '@' is refused. Messages and `shown`
 *   never hold the password, nor a user information without ':' (it may
 *   be a token).
 * - NO_PROXY is a list separated by commas or white space. "*" alone
 *   bypasses every proxy. An IP address matches that address exactly (as
 *   an address: "::1" and "0::1" are one); "addr/bits" a CIDR block (curl
 *   and Go both take these); any other entry is a host name that matches
 *   itself and its subdomains on a dot boundary, with or without a
 *   leading "." or "*." (curl's reading: ".example.com" also matches
 *   example.com), case-insensitively. A name never matches an IP
 *   literal. ":port" after an entry limits it to that port (after the
 *   brackets of an IPv6 address: "[::1]:8000"; "[::1]" alone is ::1).
 *   Entries that cannot match anything (a bad block) are ignored, as
 *   curl does.
 * - The instance metadata and container credential addresses are never
 *   proxied, whatever the variables say. */
#ifndef OB_CORE_PROXY_H
#define OB_CORE_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "outboxd/error.h"

/* One proxy; every member owned (ob_proxy_env_free). */
struct ob_proxy {
    char *host;        /* a name or an address; IPv6 without brackets */
    char *port;        /* decimal */
    char *credentials; /* base64 of "user:password" for Basic, or NULL */
    char *shown;       /* the URL with its password hidden, for logs */
};

struct ob_no_proxy_rule;

/* What the environment says; a zeroed struct means no proxy at all. */
struct ob_proxy_env {
    struct ob_proxy *https; /* for https:// origins; NULL: none */
    struct ob_proxy *http;  /* for http:// origins; NULL: none */
    bool bypass_all;        /* NO_PROXY=* */
    struct ob_no_proxy_rule *rules;
    size_t n_rules;
    char *no_proxy;         /* as written, for logs; NULL when unset */
};

/* How a variable is read: getenv, or a test's table. NULL or "": unset. */
typedef const char *(*ob_env_get_fn)(const char *name);

/* Reads the variables through get. OB_ERR_CONFIG, with a message naming
 * the variable and never its password, when a proxy URL is not one
 * outboxd can use; env is then left zeroed. */
enum ob_err ob_proxy_env_load(ob_env_get_fn get, struct ob_proxy_env *env, struct ob_error *err);
void ob_proxy_env_free(struct ob_proxy_env *env);

/* Parses one proxy URL (name: the variable, for messages). */
enum ob_err ob_proxy_parse(const char *name, const char *text, struct ob_proxy *p, struct ob_error *err);
void ob_proxy_free(struct ob_proxy *p);

/* The proxy an origin goes through, or NULL for a direct connection. host
 * is a name or an address (IPv6 with or without brackets). */
const struct ob_proxy *ob_proxy_for(const struct ob_proxy_env *env, bool tls, const char *host, const char *port);

/* Whether NO_PROXY's rules (or "*") exempt host:port. */
bool ob_proxy_bypassed(const struct ob_proxy_env *env, const char *host, const char *port);

/* 169.254.169.254, 169.254.170.2, 169.254.170.23, fd00:ec2::254 and
 * fd00:ec2::23: instance metadata and container credentials. */
bool ob_proxy_is_metadata_address(const char *host);

/* Appends "https via URL, http via URL, not for NO_PROXY" (passwords
 * hidden), or nothing when no proxy is set. */
void ob_proxy_env_describe(struct ob_buf *b, const struct ob_proxy_env *env);

/* "host:port" as a request target or Host value: IPv6 in brackets. */
void ob_proxy_put_authority(struct ob_buf *b, const char *host, const char *port);

/* Appends the CONNECT request for host:port through p. */
void ob_proxy_connect_request(struct ob_buf *b, const struct ob_proxy *p, const char *host, const char *port);

/* What a proxy's answer to CONNECT is so far. */
enum ob_proxy_answer {
    OB_PROXY_ANSWER_PARTIAL, /* its head has not ended yet */
    OB_PROXY_ANSWER_DONE,    /* *status and *head_len (with the empty line) set */
    OB_PROXY_ANSWER_INVALID, /* not HTTP/1.x, or a head over 16 KiB */
};

enum ob_proxy_answer ob_proxy_connect_answer(const char *p, size_t len, int *status, size_t *head_len);

/* What a refusal means, for messages: "proxy authentication required"
 * for 407, else "HTTP <status>". */
const char *ob_proxy_refusal(int status, char *buf, size_t size);

#endif
