/* http and https URLs (RFC 3986): parsing, and resolving a reference such
 * as a message's destination ("events/orders", "/root", "//host/x",
 * "https://other/y") against a base URL. Pure code. */
#ifndef OB_CORE_URL_H
#define OB_CORE_URL_H

#include <stdbool.h>

#include "outboxd/error.h"

/* Every member is owned (ob_url_free); bytes outside printable ASCII in
 * path and query are percent-encoded. */
struct ob_url {
    bool tls;        /* https */
    char *userinfo;  /* as written (percent-encoded), NULL when none */
    char *host;      /* as written: a name, an IPv4 address or "[IPv6]" */
    char *port;      /* decimal, NULL when none or the scheme's default */
    char *path;      /* at least "/" */
    char *query;     /* without '?', NULL when none */
};

/* Parses an absolute http:// or https:// URL; the fragment is dropped.
 * OB_ERR_CONFIG with a message saying what is wrong. */
enum ob_err ob_url_parse(const char *text, struct ob_url *u, struct ob_error *err);

/* The URL that ref (absolute or relative) names from base (RFC 3986 §5.2). */
enum ob_err ob_url_resolve(const struct ob_url *base, const char *ref, struct ob_url *out, struct ob_error *err);

/* "80" or "443" when no port was written. */
const char *ob_url_port(const struct ob_url *u);

void ob_url_free(struct ob_url *u);

/* Appends text, a URL or what was written for one, with what may be a
 * secret (SPEC §7) replaced by "***": the password of its user
 * information (all of it when there is no ':'), its query and its
 * fragment. "https://user:***@host/hook?***": for messages and `check`. */
struct ob_buf;
void ob_url_put_redacted(struct ob_buf *b, const char *text);

/* Appends the base64 of userinfo percent-decoded, with a ':' added when
 * it has none: the credentials of a Basic Authorization (RFC 7617). */
void ob_url_put_basic_credentials(struct ob_buf *b, const char *userinfo);

#endif
