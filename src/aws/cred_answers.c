#include "aws/cred_answers.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "aws/sigv4.h"
#include "core/codec.h"
#include "core/xml_scan.h"

static void fill(struct ob_aws_credentials *out, const char *akid, const char *secret, const char *token,
                 int64_t expires_at, const char *source)
{
    out->access_key_id = ob_xstrdup(akid);
    out->secret_access_key = ob_xstrdup(secret);
    out->session_token = token && *token ? ob_xstrdup(token) : NULL;
    out->expires_at = expires_at;
    snprintf(out->source, sizeof out->source, "%s", source);
}

/* An Expiration as AWS writes it ("2026-12-07T22:39:20Z") in Unix seconds,
 * never 0 (which says the keys do not expire). The value is not secret: it
 * may be shown. */
static enum ob_err parse_expiration(const char *text, const char *source, int64_t *out, struct ob_error *err)
{
    int64_t ms;
    if (!ob_iso8601_parse(text, &ms))
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: Expiration \"%.40s\" is not an ISO 8601 time", source,
                            text);
    *out = ms >= 1000 ? ms / 1000 : -1;
    return OB_OK;
}

static const char *json_member(json_t *doc, const char *name)
{
    return json_string_value(json_object_get(doc, name));
}

enum ob_err ob_cred_json_parse(const char *text, size_t len, enum ob_cred_json kind, const char *source,
                               struct ob_aws_credentials *out, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    memset(out, 0, sizeof *out);
    json_t *doc = json_loadb(text, len, 0, NULL);
    if (!json_is_object(doc)) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the answer is not a JSON object", source);
        goto out;
    }
    bool process = kind == OB_CRED_JSON_PROCESS;
    const char *code = json_member(doc, "Code");
    if (!process && code && strcmp(code, "Success") != 0) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the answer's Code is \"%.64s\", not \"Success\"", source,
                          code);
        goto out;
    }
    if (process && json_integer_value(json_object_get(doc, "Version")) != 1) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the output's \"Version\" is not 1", source);
        goto out;
    }
    const char *akid = json_member(doc, "AccessKeyId"), *secret = json_member(doc, "SecretAccessKey");
    const char *token = json_member(doc, process ? "SessionToken" : "Token");
    json_t *expiration_value = json_object_get(doc, "Expiration");
    const char *expiration = json_string_value(expiration_value);
    /* One that is there but not text must not pass for none (never expiring). */
    if (expiration_value && !json_is_null(expiration_value) && !expiration) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: Expiration is not a string (an ISO 8601 time)", source);
        goto out;
    }
    const char *missing = !akid || !*akid ? "AccessKeyId"
                          : !secret || !*secret ? "SecretAccessKey"
                          : !process && !token ? "Token"
                          : !process && !expiration ? "Expiration"
                                                    : NULL;
    if (missing) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the answer has no \"%s\"", source, missing);
        goto out;
    }
    int64_t expires_at = 0;
    if (expiration && (rc = parse_expiration(expiration, source, &expires_at, err)))
        goto out;
    fill(out, akid, secret, token, expires_at, source);
out:
    json_decref(doc);
    return rc;
}

/* STS error codes that are the caller's to fix, and those worth a retry. */
static const char *const sts_retriable[] = { "IDPCommunicationError", "InvalidIdentityToken", NULL };

static bool listed(const char *const *names, const char *name)
{
    for (; *names; names++)
        if (strcmp(*names, name) == 0)
            return true;
    return false;
}

static enum ob_err sts_error(int status, struct ob_xml_span xml, const char *source, struct ob_error *err)
{
    struct ob_buf code = { 0 }, message = { 0 };
    struct ob_xml_span error = { 0 };
    size_t pos = 0;
    if (ob_xml_next(xml, &pos, "Error", &error)) {
        ob_xml_text(error, "Code", &code);
        ob_xml_text(error, "Message", &message);
    }
    enum ob_err rc;
    bool retriable = false;
    if (!code.len) {
        rc = ob_error_set(err, status >= 500 ? OB_ERR_SERVICE : OB_ERR_HTTP, "%s: STS answered HTTP %d", source,
                          status);
        retriable = status >= 500 || status == 429;
    } else {
        const char *name = ob_buf_cstr(&code);
        rc = strcmp(name, "Throttling") == 0 ? OB_ERR_THROTTLED
             : status >= 500                 ? OB_ERR_SERVICE
                                             : OB_ERR_ACCESS_DENIED;
        retriable = rc != OB_ERR_ACCESS_DENIED || listed(sts_retriable, name);
        ob_error_set(err, rc, "%s: STS answered HTTP %d %s%s%.300s", source, status, name,
                     message.len ? ": " : "", ob_buf_cstr(&message));
        if (err)
            snprintf(err->aws_type, sizeof err->aws_type, "%s", name);
    }
    if (err) {
        err->retriable = retriable;
        err->http_status = status;
    }
    ob_buf_free(&code);
    ob_buf_free(&message);
    return rc;
}

enum ob_err ob_sts_answer_parse(int status, const char *xml, size_t len, const char *source,
                                struct ob_aws_credentials *out, struct ob_error *err)
{
    static const char *const fields[] = { "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration" };
    enum ob_err rc = OB_OK;
    struct ob_xml_span doc = { xml, len }, creds;
    struct ob_buf v[4] = { 0 };
    size_t pos = 0;

    memset(out, 0, sizeof *out);
    if (status != 200)
        return sts_error(status, doc, source, err);
    if (!ob_xml_next(doc, &pos, "Credentials", &creds)) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: STS answered without <Credentials>", source);
        goto out;
    }
    for (size_t i = 0; i < 4; i++) {
        if (!ob_xml_text(creds, fields[i], &v[i]) || !v[i].len) {
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s: STS answered without <%s>", source, fields[i]);
            goto out;
        }
    }
    int64_t expires_at = 0;
    rc = parse_expiration(ob_buf_cstr(&v[3]), source, &expires_at, err);
    if (rc)
        goto out;
    fill(out, ob_buf_cstr(&v[0]), ob_buf_cstr(&v[1]), ob_buf_cstr(&v[2]), expires_at, source);
out:
    for (size_t i = 0; i < 4; i++) {
        if (v[i].data)
            explicit_bzero(v[i].data, v[i].len);
        ob_buf_free(&v[i]);
    }
    return rc;
}

void ob_sts_form(struct ob_buf *out, const char *action, const struct ob_sts_param *params, size_t n)
{
    ob_buf_printf(out, "Action=%s&Version=2011-06-15", action);
    for (size_t i = 0; i < n; i++) {
        if (!params[i].value)
            continue;
        ob_buf_printf(out, "&%s=", params[i].name);
        ob_sigv4_uri_encode(out, params[i].value, strlen(params[i].value));
    }
}

bool ob_container_url_allowed(const struct ob_url *u)
{
    static const char *const container_hosts[] = { "169.254.170.2", "169.254.170.23", NULL };
    if (u->tls)
        return true;
    if (strcasecmp(u->host, "localhost") == 0 || listed(container_hosts, u->host))
        return true;
    unsigned char a[16];
    if (inet_pton(AF_INET, u->host, a) == 1)
        return a[0] == 127;
    size_t n = strlen(u->host);
    char bare[64];
    if (n < 3 || n - 2 >= sizeof bare || u->host[0] != '[')
        return false;
    memcpy(bare, u->host + 1, n - 2);
    bare[n - 2] = '\0';
    static const unsigned char loopback6[16] = { [15] = 1 };
    unsigned char b[16];
    if (inet_pton(AF_INET6, bare, b) != 1)
        return false;
    /* fd00:ec2::23 written another way ("fd00:0ec2:0::23") is the same address. */
    static const unsigned char eks6[16] = { 0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23 };
    return memcmp(b, loopback6, 16) == 0 || memcmp(b, eks6, 16) == 0;
}
