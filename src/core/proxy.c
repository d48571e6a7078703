#include "core/proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/url.h"

#define MAX_CONNECT_HEAD 16384

/* One NO_PROXY entry. */
struct ob_no_proxy_rule {
    char *name;          /* lowercase, without leading "." or "*."; NULL for an address or block */
    int family;          /* AF_INET or AF_INET6 for an address or block */
    unsigned char addr[16];
    int bits;            /* of a block; the whole address for a single one */
    long port;           /* 0: any */
};

/* An IP literal (IPv6 with or without brackets) as bytes; 0 when host is
 * not one, else its family. */
static int parse_address(const char *host, size_t n, unsigned char addr[16])
{
    char text[INET6_ADDRSTRLEN + 2];
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof text)
        return 0;
    memcpy(text, host, n);
    text[n] = '\0';
    if (inet_pton(AF_INET, text, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, text, addr) == 1)
        return AF_INET6;
    return 0;
}

bool ob_proxy_is_metadata_address(const char *host)
{
    static const char *const metadata[] = {
        "169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23",
    };
    unsigned char addr[16], m[16];
    int family = parse_address(host, strlen(host), addr);
    if (!family)
        return false;
    for (size_t i = 0; i < sizeof metadata / sizeof metadata[0]; i++)
        if (parse_address(metadata[i], strlen(metadata[i]), m) == family &&
            memcmp(addr, m, family == AF_INET ? 4 : 16) == 0)
            return true;
    return false;
}

void ob_proxy_put_authority(struct ob_buf *b, const char *host, const char *port)
{
    bool v6 = strchr(host, ':') && host[0] != '[';
    ob_buf_cat(b, v6 ? "[" : "", host, v6 ? "]" : "", ":", port, NULL);
}

void ob_proxy_free(struct ob_proxy *p)
{
    free(p->host);
    free(p->port);
    free(p->credentials);
    free(p->shown);
    memset(p, 0, sizeof *p);
}

/* Where text's "://" is when a scheme precedes it (RFC 3986 §3.1), else
 * NULL: "user:pa://ss@host" has no scheme, but a password. */
static const char *scheme_end_of(const char *text)
{
    const char *end = strstr(text, "://");
    if (!end || end == text || !isalpha((unsigned char)text[0]))
        return NULL;
    for (const char *c = text; c < end; c++)
        if (!isalnum((unsigned char)*c) && *c != '+' && *c != '-' && *c != '.')
            return NULL;
    return end;
}

enum ob_err ob_proxy_parse(const char *name, const char *text, struct ob_proxy *p, struct ob_error *err)
{
    memset(p, 0, sizeof *p);
    struct ob_buf full = { 0 }, shown = { 0 };
    struct ob_url u = { 0 };
    struct ob_error why = { 0 };
    enum ob_err e = OB_OK;
    const char *scheme_end = scheme_end_of(text);
    const char *rest = scheme_end ? scheme_end + 3 : text;
    if (!scheme_end)
        ob_buf_cat(&full, "http://", text, NULL);
    else if ((size_t)(scheme_end - text) == 4 && strncasecmp(text, "http", 4) == 0)
        ob_buf_puts(&full, text);
    else if ((size_t)(scheme_end - text) == 5 && strncasecmp(text, "https", 5) == 0) {
        e = ob_error_set(err, OB_ERR_CONFIG, "%s: TLS to the proxy (https://) is not supported: use an http:// proxy "
                         "(HTTPS still goes through it end to end, by CONNECT)", name);
        goto out;
    } else {
        e = ob_error_set(err, OB_ERR_CONFIG, "%s: only http:// proxies are supported, not %.*s://", name,
                         (int)(scheme_end - text > 16 ? 16 : scheme_end - text), text);
        goto out;
    }
    /* In messages: where the proxy is, never what precedes the last '@'
     * (a password written raw may hold '/', '?' or '#', which would end
     * the user information early for a URL parser). */
    const char *at = strrchr(rest, '@');
    struct ob_buf where = { 0 };
    ob_buf_cat(&where, "http://", at ? "***@" : "", at ? at + 1 : rest, NULL);
    ob_url_put_redacted(&shown, where.data);
    ob_buf_free(&where);
    if (at && rest + strcspn(rest, "/?#") < at) {
        e = ob_error_set(err, OB_ERR_CONFIG, "%s (%s): its user information holds '/', '?' or '#': write them "
                         "percent-encoded (%%2F, %%3F, %%23)", name, shown.data);
        goto out;
    }
    if (ob_url_parse(full.data, &u, &why) != OB_OK) {
        e = ob_error_set(err, OB_ERR_CONFIG, "%s is not a proxy URL (%s): %s", name, shown.data, why.msg);
        goto out;
    }
    size_t n = strlen(u.host);
    p->host = n >= 2 && u.host[0] == '[' ? ob_xstrndup(u.host + 1, n - 2) : ob_xstrdup(u.host);
    p->port = ob_xstrdup(ob_url_port(&u));
    if (u.userinfo) {
        struct ob_buf cred = { 0 };
        ob_url_put_basic_credentials(&cred, u.userinfo);
        p->credentials = ob_buf_steal(&cred);
    }
    /* Shown as the proxy is used: scheme, user, host and port only. */
    ob_buf_reset(&shown);
    ob_buf_puts(&shown, "http://");
    if (u.userinfo && strchr(u.userinfo, ':')) {
        ob_buf_append(&shown, u.userinfo, strcspn(u.userinfo, ":"));
        ob_buf_puts(&shown, ":***@");
    } else if (u.userinfo) {
        ob_buf_puts(&shown, "***@"); /* as ob_url_put_redacted: it may be a token */
    }
    ob_proxy_put_authority(&shown, p->host, p->port);
    p->shown = ob_buf_steal(&shown);
out:
    ob_url_free(&u);
    ob_buf_free(&full);
    ob_buf_free(&shown);
    return e;
}

/* Adds the entry [s, s+n) to env's rules; "*" sets bypass_all. */
static void add_rule(struct ob_proxy_env *env, const char *s, size_t n)
{
    if (n == 1 && s[0] == '*') {
        env->bypass_all = true;
        return;
    }
    struct ob_no_proxy_rule r = { 0 };
    /* ":port" ends the entry: after the ']' of a bracketed IPv6 address,
     * never inside a bare one. */
    const char *colon = NULL;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        colon = close ? memchr(close, ':', (size_t)(s + n - close)) : NULL;
    } else {
        for (size_t i = n; i-- > 0;)
            if (s[i] == ':') {
                colon = s + i;
                break;
            }
    }
    bool bare_v6 = colon && s[0] != '[' && memchr(s, ':', (size_t)(colon - s));
    if (colon && !bare_v6 && colon + 1 < s + n) {
        long port = 0;
        for (const char *p = colon + 1; p < s + n; p++) {
            if (!isdigit((unsigned char)*p) || port > 65535)
                return;
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return;
        r.port = port;
        n = (size_t)(colon - s);
    } else if (colon == s + n - 1 && !bare_v6) {
        n--; /* "host:" */
    }
    const char *slash = memchr(s, '/', n);
    if (slash) {
        int bits = 0;
        size_t digits = (size_t)(s + n - slash - 1);
        if (digits == 0 || digits > 3)
            return;
        for (const char *p = slash + 1; p < s + n; p++) {
            if (!isdigit((unsigned char)*p))
                return;
            bits = bits * 10 + (*p - '0');
        }
        r.family = parse_address(s, (size_t)(slash - s), r.addr);
        if (!r.family || bits > (r.family == AF_INET ? 32 : 128))
            return;
        r.bits = bits;
    } else if ((r.family = parse_address(s, n, r.addr)) != 0) {
        r.bits = r.family == AF_INET ? 32 : 128;
    } else {
        if (n >= 2 && s[0] == '*' && s[1] == '.') {
            s += 2;
            n -= 2;
        } else if (n >= 1 && s[0] == '.') {
            s++;
            n--;
        }
        if (n && s[n - 1] == '.')
            n--;
        if (n == 0)
            return;
        r.name = ob_xstrndup(s, n);
        for (char *c = r.name; *c; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    env->rules = ob_xrealloc(env->rules, (env->n_rules + 1) * sizeof *env->rules);
    env->rules[env->n_rules++] = r;
}

static void parse_no_proxy(struct ob_proxy_env *env, const char *text)
{
    const char *sep = ", \t\r\n";
    for (const char *s = text; *s;) {
        s += strspn(s, sep);
        size_t n = strcspn(s, sep);
        if (n)
            add_rule(env, s, n);
        s += n;
    }
}

static bool block_contains(const struct ob_no_proxy_rule *r, const unsigned char *addr)
{
    int full = r->bits / 8, rest = r->bits % 8;
    if (memcmp(r->addr, addr, (size_t)full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (r->addr[full] & mask) == (addr[full] & mask);
}

static bool name_matches(const char *rule, const char *host, size_t host_len)
{
    size_t n = strlen(rule);
    if (host_len < n || strncasecmp(host + host_len - n, rule, n) != 0)
        return false;
    return host_len == n || host[host_len - n - 1] == '.';
}

bool ob_proxy_bypassed(const struct ob_proxy_env *env, const char *host, const char *port)
{
    if (env->bypass_all)
        return true;
    unsigned char addr[16];
    size_t host_len = strlen(host);
    int family = parse_address(host, host_len, addr);
    if (host_len && host[host_len - 1] == '.')
        host_len--;
    long port_n = strtol(port, NULL, 10);
    for (size_t i = 0; i < env->n_rules; i++) {
        const struct ob_no_proxy_rule *r = &env->rules[i];
        if (r->port && r->port != port_n)
            continue;
        if (r->name ? !family && name_matches(r->name, host, host_len)
                    : family == r->family && block_contains(r, addr))
            return true;
    }
    return false;
}

const struct ob_proxy *ob_proxy_for(const struct ob_proxy_env *env, bool tls, const char *host, const char *port)
{
    const struct ob_proxy *p = tls ? env->https : env->http;
    if (!p || ob_proxy_is_metadata_address(host) || ob_proxy_bypassed(env, host, port))
        return NULL;
    return p;
}

/* The lowercase variable, else the uppercase one; NULL when both are
 * unset or empty. */
static const char *either_case(ob_env_get_fn get, const char *lower, const char *upper)
{
    const char *v = get(lower);
    if (v && *v)
        return v;
    v = get(upper);
    return v && *v ? v : NULL;
}

static enum ob_err load_proxy(ob_env_get_fn get, const char *lower, const char *upper, struct ob_proxy **out,
                              struct ob_error *err)
{
    const char *text = get(lower) && *get(lower) ? lower : upper;
    const char *v = either_case(get, lower, upper);
    if (!v)
        return OB_OK;
    struct ob_proxy *p = ob_xcalloc(1, sizeof *p);
    enum ob_err e = ob_proxy_parse(text, v, p, err);
    if (e) {
        free(p);
        return e;
    }
    *out = p;
    return OB_OK;
}

enum ob_err ob_proxy_env_load(ob_env_get_fn get, struct ob_proxy_env *env, struct ob_error *err)
{
    memset(env, 0, sizeof *env);
    enum ob_err e = load_proxy(get, "https_proxy", "HTTPS_PROXY", &env->https, err);
    if (!e)
        e = load_proxy(get, "http_proxy", "HTTP_PROXY", &env->http, err);
    if (e) {
        ob_proxy_env_free(env);
        return e;
    }
    const char *no = either_case(get, "no_proxy", "NO_PROXY");
    if (no) {
        env->no_proxy = ob_xstrdup(no);
        parse_no_proxy(env, no);
    }
    return OB_OK;
}

void ob_proxy_env_free(struct ob_proxy_env *env)
{
    if (env->https)
        ob_proxy_free(env->https);
    if (env->http)
        ob_proxy_free(env->http);
    free(env->https);
    free(env->http);
    for (size_t i = 0; i < env->n_rules; i++)
        free(env->rules[i].name);
    free(env->rules);
    free(env->no_proxy);
    memset(env, 0, sizeof *env);
}

void ob_proxy_env_describe(struct ob_buf *b, const struct ob_proxy_env *env)
{
    if (!env->https && !env->http)
        return;
    if (env->https)
        ob_buf_cat(b, "https via ", env->https->shown, NULL);
    if (env->http)
        ob_buf_cat(b, env->https ? ", " : "", "http via ", env->http->shown, NULL);
    if (env->no_proxy)
        ob_buf_cat(b, ", not for ", env->no_proxy, NULL);
}

void ob_proxy_connect_request(struct ob_buf *b, const struct ob_proxy *p, const char *host, const char *port)
{
    struct ob_buf target = { 0 };
    ob_proxy_put_authority(&target, host, port);
    ob_buf_cat(b, "CONNECT ", target.data, " HTTP/1.1\r\nHost: ", target.data, "\r\n", NULL);
    if (p->credentials)
        ob_buf_cat(b, "Proxy-Authorization: Basic ", p->credentials, "\r\n", NULL);
    ob_buf_puts(b, "\r\n");
    ob_buf_free(&target);
}

enum ob_proxy_answer ob_proxy_connect_answer(const char *p, size_t len, int *status, size_t *head_len)
{
    /* The status line is judged as soon as it is whole: a peer that is
     * not a proxy is found without waiting for more. */
    size_t line = 0;
    while (line < len && p[line] != '\n')
        line++;
    size_t judged = line < len ? line : len;
    static const char prefix[] = "HTTP/1.";
    for (size_t i = 0; i < judged && i < sizeof prefix - 1; i++)
        if (p[i] != prefix[i])
            return OB_PROXY_ANSWER_INVALID;
    if (line == len)
        return len > MAX_CONNECT_HEAD ? OB_PROXY_ANSWER_INVALID : OB_PROXY_ANSWER_PARTIAL;
    size_t n = line && p[line - 1] == '\r' ? line - 1 : line;
    if (n < 12 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' || (n > 12 && p[12] != ' '))
        return OB_PROXY_ANSWER_INVALID;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return OB_PROXY_ANSWER_INVALID;
        code = code * 10 + (p[i] - '0');
    }
    if (code < 100)
        return OB_PROXY_ANSWER_INVALID;
    const char *end = len >= 4 ? memmem(p, len, "\r\n\r\n", 4) : NULL;
    if (!end)
        return len > MAX_CONNECT_HEAD ? OB_PROXY_ANSWER_INVALID : OB_PROXY_ANSWER_PARTIAL;
    if ((size_t)(end - p) + 4 > MAX_CONNECT_HEAD)
        return OB_PROXY_ANSWER_INVALID;
    *status = code;
    *head_len = (size_t)(end - p) + 4;
    return OB_PROXY_ANSWER_DONE;
}

const char *ob_proxy_refusal(int status, char *buf, size_t size)
{
    if (status == 407)
        return "proxy authentication required";
    snprintf(buf, size, "HTTP %d", status);
    return buf;
}
