#include "core/url.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/codec.h"

void ob_url_free(struct ob_url *u)
{
    free(u->userinfo);
    free(u->host);
    free(u->port);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof *u);
}

const char *ob_url_port(const struct ob_url *u)
{
    return u->port ? u->port : u->tls ? "443" : "80";
}

void ob_url_put_redacted(struct ob_buf *b, const char *text)
{
    /* "://" of a scheme, not of a URL in the query. */
    const char *scheme_end = strstr(text, "://");
    if (scheme_end && scheme_end > text + strcspn(text, "/?#"))
        scheme_end = NULL;
    const char *authority = scheme_end ? scheme_end + 3 : text;
    size_t authority_len = strcspn(authority, "/?#");
    const char *at = NULL;
    for (const char *p = authority; p < authority + authority_len; p++)
        if (*p == '@')
            at = p;
    const char *rest = text;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        const char *shown_end = colon ? colon + 1 : authority;
        ob_buf_append(b, text, (size_t)(shown_end - text));
        ob_buf_puts(b, "***");
        rest = at;
    }
    const char *hidden = rest + strcspn(rest, "?#");
    ob_buf_append(b, rest, (size_t)(hidden - rest));
    if (*hidden)
        ob_buf_cat(b, *hidden == '?' ? "?" : "#", "***", NULL);
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

void ob_url_put_basic_credentials(struct ob_buf *b, const char *userinfo)
{
    struct ob_buf plain = { 0 };
    for (const char *p = userinfo; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hex_value(p[1])) >= 0 && (lo = hex_value(p[2])) >= 0) {
            ob_buf_putc(&plain, (char)(hi * 16 + lo));
            p += 2;
        } else {
            ob_buf_putc(&plain, *p);
        }
    }
    if (!strchr(ob_buf_cstr(&plain), ':'))
        ob_buf_putc(&plain, ':');
    ob_base64_encode(b, plain.data, plain.len);
    ob_buf_free(&plain);
}

/* A reference split into its five parts (RFC 3986 §3); NULL for a part
 * not present (an empty path is present). Points into the text. */
struct ref_parts {
    const char *scheme, *authority, *path, *query;
    size_t scheme_len, authority_len, path_len, query_len;
};

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void split(const char *s, struct ref_parts *p)
{
    memset(p, 0, sizeof *p);
    const char *end = s + strcspn(s, "#");
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    const char *c = s;
    if (is_alpha(*c)) {
        while (c < end && (is_alpha(*c) || (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))
            c++;
        if (c < end && *c == ':') {
            p->scheme = s;
            p->scheme_len = (size_t)(c - s);
            s = c + 1;
        }
    }
    if (end - s >= 2 && s[0] == '/' && s[1] == '/') {
        s += 2;
        size_t n = strcspn(s, "/?#");
        p->authority = s;
        p->authority_len = n;
        s += n;
    }
    size_t n = strcspn(s, "?#");
    p->path = s;
    p->path_len = n;
    s += n;
    if (*s == '?') {
        p->query = s + 1;
        p->query_len = (size_t)(end - p->query);
    }
}

/* Printable ASCII stays; bytes above 0x7e are percent-encoded; space and
 * control characters make the URL invalid. */
static bool copy_encoded(struct ob_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
        if (c > 0x7f) {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            ob_buf_append(b, esc, 3);
        } else {
            ob_buf_putc(b, (char)c);
        }
    }
    return true;
}

static char *encoded_or_null(const char *s, size_t n, bool *ok)
{
    struct ob_buf b = { 0 };
    ob_buf_reserve(&b, n);
    if (!copy_encoded(&b, s, n)) {
        *ok = false;
        ob_buf_free(&b);
        return NULL;
    }
    return ob_buf_steal(&b);
}

static bool host_char(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || strchr("-._~%!$&'()*+,;=", c);
}

/* authority = [ userinfo "@" ] host [ ":" port ] */
static enum ob_err parse_authority(const char *a, size_t n, struct ob_url *u, struct ob_error *err)
{
    const char *end = a + n;
    const char *at = NULL;
    for (const char *p = a; p < end; p++)
        if (*p == '@')
            at = p;
    if (at) {
        bool ok = true;
        u->userinfo = encoded_or_null(a, (size_t)(at - a), &ok);
        if (!ok)
            return ob_error_set(err, OB_ERR_CONFIG, "the user information has spaces or control characters");
        a = at + 1;
    }
    const char *host_end;
    if (a < end && *a == '[') {
        const char *close = memchr(a, ']', (size_t)(end - a));
        if (!close || close == a + 1)
            return ob_error_set(err, OB_ERR_CONFIG, "an IPv6 host must be written [address]");
        for (const char *p = a + 1; p < close; p++)
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F') || *p == ':' ||
                  *p == '.'))
                return ob_error_set(err, OB_ERR_CONFIG, "'%.*s' is not an IPv6 address", (int)(close - a - 1), a + 1);
        host_end = close + 1;
    } else {
        host_end = a;
        while (host_end < end && *host_end != ':') {
            if (!host_char(*host_end))
                return ob_error_set(err, OB_ERR_CONFIG, "the host has a character not allowed there ('%c')",
                                    *host_end);
            host_end++;
        }
    }
    if (host_end == a)
        return ob_error_set(err, OB_ERR_CONFIG, "no host");
    u->host = ob_xstrndup(a, (size_t)(host_end - a));
    if (host_end == end)
        return OB_OK;
    if (*host_end != ':')
        return ob_error_set(err, OB_ERR_CONFIG, "unexpected text after the host");
    const char *p = host_end + 1;
    if (p == end)
        return OB_OK; /* "host:" means the default port */
    long port = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            return ob_error_set(err, OB_ERR_CONFIG, "the port is not a number from 1 to 65535");
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535)
        return ob_error_set(err, OB_ERR_CONFIG, "the port is not a number from 1 to 65535");
    if (port != (u->tls ? 443 : 80)) {
        struct ob_buf b = { 0 };
        ob_buf_printf(&b, "%ld", port);
        u->port = ob_buf_steal(&b);
    }
    return OB_OK;
}

/* RFC 3986 §5.2.4, on an absolute path; appends the result to out. */
static void remove_dot_segments(struct ob_buf *out, const char *in, size_t n)
{
    size_t start = out->len;
    const char *p = in, *end = in + n;
    while (p < end) {
        const char *seg_end = memchr(p + 1, '/', (size_t)(end - p - 1));
        if (!seg_end)
            seg_end = end;
        size_t len = (size_t)(seg_end - p); /* "/seg" */
        bool last = seg_end == end;
        if (len == 2 && p[1] == '.') {
            if (last)
                ob_buf_putc(out, '/');
        } else if (len == 3 && p[1] == '.' && p[2] == '.') {
            while (out->len > start && out->data[out->len - 1] != '/')
                out->len--;
            if (out->len > start)
                out->len--; /* the '/' before the dropped segment */
            if (out->data)
                out->data[out->len] = '\0';
            if (last)
                ob_buf_putc(out, '/');
        } else {
            ob_buf_append(out, p, len);
        }
        p = seg_end;
    }
    if (out->len == start)
        ob_buf_putc(out, '/');
}

static enum ob_err set_path(struct ob_url *u, const char *path, size_t n, struct ob_error *err)
{
    struct ob_buf enc = { 0 }, out = { 0 };
    if (!copy_encoded(&enc, path, n)) {
        ob_buf_free(&enc);
        return ob_error_set(err, OB_ERR_CONFIG, "the path has spaces or control characters");
    }
    if (enc.len && enc.data[0] == '/')
        remove_dot_segments(&out, enc.data, enc.len);
    else
        ob_buf_putc(&out, '/'); /* an empty path under an authority is "/" */
    ob_buf_free(&enc);
    free(u->path);
    u->path = ob_buf_steal(&out);
    return OB_OK;
}

static enum ob_err set_query(struct ob_url *u, const struct ref_parts *p, struct ob_error *err)
{
    bool ok = true;
    free(u->query);
    u->query = p->query ? encoded_or_null(p->query, p->query_len, &ok) : NULL;
    return ok ? OB_OK : ob_error_set(err, OB_ERR_CONFIG, "the query has spaces or control characters");
}

static enum ob_err set_scheme(struct ob_url *u, const struct ref_parts *p, struct ob_error *err)
{
    if (p->scheme_len == 5 && strncasecmp(p->scheme, "https", 5) == 0)
        u->tls = true;
    else if (p->scheme_len == 4 && strncasecmp(p->scheme, "http", 4) == 0)
        u->tls = false;
    else
        return ob_error_set(err, OB_ERR_CONFIG, "the scheme is not http or https");
    return OB_OK;
}

/* Fills u from an absolute reference's parts. */
static enum ob_err from_absolute(const struct ref_parts *p, struct ob_url *u, struct ob_error *err)
{
    enum ob_err rc = set_scheme(u, p, err);
    if (!rc && !p->authority)
        rc = ob_error_set(err, OB_ERR_CONFIG, "no host (an http URL is http://host/...)");
    if (!rc)
        rc = parse_authority(p->authority, p->authority_len, u, err);
    if (!rc)
        rc = set_path(u, p->path, p->path_len, err);
    if (!rc)
        rc = set_query(u, p, err);
    return rc;
}

enum ob_err ob_url_parse(const char *text, struct ob_url *u, struct ob_error *err)
{
    memset(u, 0, sizeof *u);
    struct ref_parts p;
    split(text, &p);
    enum ob_err rc = p.scheme ? from_absolute(&p, u, err)
                              : ob_error_set(err, OB_ERR_CONFIG, "not an absolute URL (it needs http:// or https://)");
    if (rc)
        ob_url_free(u);
    return rc;
}

enum ob_err ob_url_resolve(const struct ob_url *base, const char *ref, struct ob_url *out, struct ob_error *err)
{
    memset(out, 0, sizeof *out);
    struct ref_parts p;
    split(ref, &p);
    enum ob_err rc;
    if (p.scheme) {
        rc = from_absolute(&p, out, err);
        goto out;
    }
    out->tls = base->tls;
    if (p.authority) {
        rc = parse_authority(p.authority, p.authority_len, out, err);
        if (!rc)
            rc = set_path(out, p.path, p.path_len, err);
        if (!rc)
            rc = set_query(out, &p, err);
        goto out;
    }
    out->userinfo = ob_xstrdup_or_null(base->userinfo);
    out->host = ob_xstrdup(base->host);
    out->port = ob_xstrdup_or_null(base->port);
    if (p.path_len == 0) {
        out->path = ob_xstrdup(base->path);
        out->query = ob_xstrdup_or_null(base->query);
        rc = p.query ? set_query(out, &p, err) : OB_OK;
        goto out;
    }
    if (p.path[0] == '/') {
        rc = set_path(out, p.path, p.path_len, err);
    } else {
        /* merge: the base path up to its last '/', then the reference */
        struct ob_buf merged = { 0 };
        const char *slash = strrchr(base->path, '/');
        ob_buf_append(&merged, base->path, slash ? (size_t)(slash - base->path) + 1 : 0);
        if (!merged.len)
            ob_buf_putc(&merged, '/');
        ob_buf_append(&merged, p.path, p.path_len);
        rc = set_path(out, merged.data, merged.len, err);
        ob_buf_free(&merged);
    }
    if (!rc)
        rc = set_query(out, &p, err);
out:
    if (rc)
        ob_url_free(out);
    return rc;
}
