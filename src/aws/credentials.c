#include "aws/credentials.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"

/* What one profile section of a shared file holds. */
struct profile_values {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;
    char *region;
};

static void wipe_free(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void profile_values_free(struct profile_values *v)
{
    wipe_free(v->access_key_id);
    wipe_free(v->secret_access_key);
    wipe_free(v->session_token);
    wipe_free(v->region);
    memset(v, 0, sizeof *v);
}

/* Empty counts as unset: `${VAR}` in the config expands to "" when VAR is
 * not set, and an empty variable is as good as none. */
static const char *nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

static const char *env(const char *name)
{
    return nonempty(getenv(name));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The shared config file names profiles "[profile NAME]" (any blanks
 * between the two words) and the default one "[default]" or "[profile
 * default]"; the shared credentials file names them "[NAME]". */
static bool section_matches(const char *inner, const char *profile, bool config_style)
{
    if (!config_style)
        return strcmp(inner, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(inner, "default") == 0)
        return true;
    if (strncmp(inner, "profile", 7) != 0 || !isspace((unsigned char)inner[7]))
        return false;
    const char *name = inner + 7;
    while (isspace((unsigned char)*name))
        name++;
    return strcmp(name, profile) == 0;
}

static void set_value(char **slot, const char *value)
{
    wipe_free(*slot);
    *slot = ob_xstrdup(value);
}

/* Reads the profile's section(s) of an INI file into *v, later keys
 * winning as in botocore. Comments are whole lines starting with '#' or
 * ';'; key names are case-insensitive. Indented lines under a key with an
 * empty value are that key's sub-settings (as in "s3 =\n  region = x")
 * and are not the profile's own. A missing file sets *file_found false
 * and is not an error. */
static enum ob_err ini_read_profile(const char *path, const char *profile, bool config_style,
                                    struct profile_values *v, bool *file_found, bool *section_found,
                                    struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    char *line = NULL;
    size_t cap = 0;
    bool in_section = false, nested = false;

    *file_found = *section_found = false;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return OB_OK;
        return ob_error_set(err, OB_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    }
    *file_found = true;

    while (getline(&line, &cap, f) >= 0) {
        bool indented = line[0] == ' ' || line[0] == '\t';
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            size_t n = strlen(s);
            nested = false;
            in_section = false;
            if (s[n - 1] != ']')
                continue;
            s[n - 1] = '\0';
            in_section = section_matches(trim(s + 1), profile, config_style);
            *section_found |= in_section;
            continue;
        }
        if (!in_section)
            continue;
        if (indented && nested)
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        nested = !*value;
        if (strcasecmp(key, "aws_access_key_id") == 0)
            set_value(&v->access_key_id, value);
        else if (strcasecmp(key, "aws_secret_access_key") == 0)
            set_value(&v->secret_access_key, value);
        else if (strcasecmp(key, "aws_session_token") == 0)
            set_value(&v->session_token, value);
        else if (strcasecmp(key, "region") == 0)
            set_value(&v->region, value);
    }
    if (ferror(f))
        rc = ob_error_set(err, OB_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    if (line)
        explicit_bzero(line, cap);
    free(line);
    fclose(f);
    return rc;
}

/* $VAR, else ~/.aws/NAME; NULL when neither is known. Caller frees. */
static char *shared_file_path(const char *var, const char *name)
{
    const char *p = env(var);
    if (p)
        return ob_xstrdup(p);
    const char *home = env("HOME");
    if (!home)
        return NULL;
    struct ob_buf b = { 0 };
    ob_buf_printf(&b, "%s/.aws/%s", home, name);
    return ob_buf_steal(&b);
}

static void fill(struct ob_aws_credentials *out, const char *akid, const char *secret, const char *token,
                 const char *source)
{
    out->access_key_id = ob_xstrdup(akid);
    out->secret_access_key = ob_xstrdup(secret);
    out->session_token = nonempty(token) ? ob_xstrdup(token) : NULL;
    snprintf(out->source, sizeof out->source, "%s", source);
}

/* One shared file as a source. *found tells whether it gave credentials;
 * tried gets a note on why not. */
static enum ob_err try_shared_file(const char *what, const char *var, const char *name, bool config_style,
                                   const char *profile, struct ob_aws_credentials *out, bool *found,
                                   struct ob_buf *tried, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct profile_values v = { 0 };
    struct ob_buf source = { 0 };
    bool file_found = false, section_found = false;

    *found = false;
    char *path = shared_file_path(var, name);
    if (!path) {
        ob_buf_printf(tried, "; %s (neither %s nor HOME is set)", what, var);
        goto out;
    }
    rc = ini_read_profile(path, profile, config_style, &v, &file_found, &section_found, err);
    if (rc)
        goto out;
    ob_buf_printf(&source, "%s %s (profile %s)", what, path, profile);
    if (!file_found) {
        ob_buf_printf(tried, "; %s %s (no such file)", what, path);
    } else if (!section_found) {
        ob_buf_printf(tried, "; %s %s (no profile %s)", what, path, profile);
    } else if (!v.access_key_id && !v.secret_access_key) {
        ob_buf_printf(tried, "; %s (no aws_access_key_id)", source.data);
    } else if (!v.access_key_id || !v.secret_access_key) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s has %s but no %s", source.data,
                          v.access_key_id ? "aws_access_key_id" : "aws_secret_access_key",
                          v.access_key_id ? "aws_secret_access_key" : "aws_access_key_id");
    } else {
        fill(out, v.access_key_id, v.secret_access_key, v.session_token, source.data);
        *found = true;
    }
out:
    profile_values_free(&v);
    ob_buf_free(&source);
    free(path);
    return rc;
}

enum ob_err ob_credentials_resolve(const struct ob_credentials_options *opt, struct ob_aws_credentials *out,
                                   struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_buf tried = { 0 };
    bool found = false;

    memset(out, 0, sizeof *out);
    const char *akid = nonempty(opt->access_key_id), *secret = nonempty(opt->secret_access_key);
    if (akid || secret || nonempty(opt->session_token)) {
        if (!akid || !secret) {
            const char *have = akid ? "access_key_id" : secret ? "secret_access_key" : "session_token";
            return ob_error_set(err, OB_ERR_CONFIG, "aws.%s is set but aws.%s is not", have,
                                akid ? "secret_access_key" : "access_key_id");
        }
        fill(out, akid, secret, opt->session_token, "config");
        return OB_OK;
    }
    ob_buf_puts(&tried, "config (aws.access_key_id, aws.secret_access_key)");

    const char *profile = nonempty(opt->profile);
    if (profile) {
        ob_buf_printf(&tried, "; environment (skipped: aws.profile is set)");
    } else {
        akid = env("AWS_ACCESS_KEY_ID");
        secret = env("AWS_SECRET_ACCESS_KEY");
        if (akid && secret) {
            fill(out, akid, secret, env("AWS_SESSION_TOKEN"), "environment");
            goto out;
        }
        if (akid || secret) {
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "environment: %s is set but %s is not",
                              akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                              akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
            goto out;
        }
        ob_buf_puts(&tried, "; environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
        profile = env("AWS_PROFILE");
    }
    if (!profile)
        profile = "default";

    rc = try_shared_file("shared credentials file", "AWS_SHARED_CREDENTIALS_FILE", "credentials", false,
                         profile, out, &found, &tried, err);
    if (rc || found)
        goto out;
    rc = try_shared_file("config file", "AWS_CONFIG_FILE", "config", true, profile, out, &found, &tried, err);
    if (rc || found)
        goto out;
    rc = ob_error_set(err, OB_ERR_CREDENTIALS, "no AWS credentials found; tried %s", tried.data);
out:
    ob_buf_free(&tried);
    return rc;
}

void ob_aws_credentials_free(struct ob_aws_credentials *c)
{
    wipe_free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    memset(c, 0, sizeof *c);
}

enum ob_err ob_aws_region_resolve(const char *configured, const char *profile, char **out,
                                  struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct profile_values v = { 0 };
    bool file_found, section_found;

    *out = NULL;
    const char *region = nonempty(configured);
    if (!region)
        region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (region) {
        *out = ob_xstrdup(region);
        return OB_OK;
    }

    if (!nonempty(profile))
        profile = env("AWS_PROFILE");
    if (!profile)
        profile = "default";
    char *path = shared_file_path("AWS_CONFIG_FILE", "config");
    if (path) {
        rc = ini_read_profile(path, profile, true, &v, &file_found, &section_found, err);
        if (rc)
            goto out;
    }
    if (v.region) {
        *out = ob_xstrdup(v.region);
        goto out;
    }
    rc = ob_error_set(err, OB_ERR_CONFIG,
                      "no AWS region: set aws.region, AWS_REGION or AWS_DEFAULT_REGION, or region in "
                      "profile %s of %s",
                      profile, path ? path : "the config file (AWS_CONFIG_FILE, HOME unset)");
out:
    profile_values_free(&v);
    free(path);
    return rc;
}
