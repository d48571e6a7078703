#include "aws/credentials.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/cred_answers.h"
#include "aws/cred_fetch.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/url.h"

/* The keys of a profile that outboxd reads, in both shared files. */
enum profile_key {
    PK_ACCESS_KEY_ID,
    PK_SECRET_ACCESS_KEY,
    PK_SESSION_TOKEN,
    PK_REGION,
    PK_ROLE_ARN,
    PK_SOURCE_PROFILE,
    PK_CREDENTIAL_SOURCE,
    PK_WEB_IDENTITY_TOKEN_FILE,
    PK_ROLE_SESSION_NAME,
    PK_EXTERNAL_ID,
    PK_DURATION_SECONDS,
    PK_CREDENTIAL_PROCESS,
    PK_MFA_SERIAL,
    PK_COUNT
};

static const char *const profile_key_names[PK_COUNT] = {
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region",
    "role_arn", "source_profile", "credential_source", "web_identity_token_file",
    "role_session_name", "external_id", "duration_seconds", "credential_process",
    "mfa_serial",
};

/* What one profile section of a shared file holds. */
struct profile_values {
    char *v[PK_COUNT];
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
    for (size_t i = 0; i < PK_COUNT; i++)
        wipe_free(v->v[i]);
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
 * ';'; a key ends at the first '=' or ':'; key names are case-insensitive. Indented lines under a key with an
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
    FILE *f = fopen(path, "re");
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
        /* The first '=' or ':' ends the key, as in Python's configparser. */
        char *eq = s + strcspn(s, "=:");
        if (!*eq)
            continue;
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        nested = !*value;
        for (size_t i = 0; i < PK_COUNT; i++)
            if (strcasecmp(key, profile_key_names[i]) == 0)
                set_value(&v->v[i], value);
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
    out->expires_at = 0;
    snprintf(out->source, sizeof out->source, "%s", source);
}

/* One walk of the chain, resolving or (describe) only saying which source
 * it would use: the same order, the same files and variables read, the
 * same configuration errors, but no request made and no process run. A
 * source found fills out->source with its name; resolving, the keys too. */
struct walk {
    const struct ob_credentials_options *opt;
    bool describe;
    const char *profile_named_by; /* "aws.profile", "AWS_PROFILE"; NULL: "default" by default */
    struct ob_buf tried; /* "; "-separated: what gave nothing, and why */
};

static enum ob_err name_only(struct ob_aws_credentials *out, const char *name)
{
    snprintf(out->source, sizeof out->source, "%s", name);
    return OB_OK;
}

/* Static keys found: describing, only their source's name. */
static void found_keys(const struct walk *w, struct ob_aws_credentials *out, bool *found, const char *akid,
                       const char *secret, const char *token, const char *source)
{
    *found = true;
    if (w->describe)
        name_only(out, source);
    else
        fill(out, akid, secret, token, source);
}

/* A temporary source found: describing, only its name; else what fetch
 * gives (fetch is evaluated only then). */
#define FOUND(w, out, found, name, fetch) (*(found) = true, (w)->describe ? name_only(out, name) : (fetch))

static enum ob_err from_environment(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                    struct ob_error *err)
{
    static const char source[] = "environment (AWS_ACCESS_KEY_ID)";
    const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    if (akid && secret) {
        found_keys(w, out, found, akid, secret, env("AWS_SESSION_TOKEN"), source);
        return OB_OK;
    }
    if (akid || secret)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "environment: %s is set but %s is not",
                            akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                            akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    ob_buf_puts(&w->tried, "; environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)");
    return OB_OK;
}

static enum ob_err web_identity(struct walk *w, const struct ob_assume_role *role, const char *token_file,
                                const char *profile, struct ob_aws_credentials *out, bool *found,
                                struct ob_error *err)
{
    struct ob_buf source = { 0 };
    ob_buf_printf(&source, "web identity (role %s, token file %s", role->role_arn, token_file);
    if (profile)
        ob_buf_printf(&source, ", profile %s", profile);
    ob_buf_putc(&source, ')');
    enum ob_err rc = FOUND(w, out, found, ob_buf_cstr(&source),
                           ob_sts_assume_role_with_web_identity(role, token_file, ob_buf_cstr(&source), out, err));
    ob_buf_free(&source);
    return rc;
}

/* AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (IRSA on EKS). */
static enum ob_err from_web_identity_env(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                         struct ob_error *err)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = env("AWS_ROLE_ARN");
    if (!file && !arn) {
        ob_buf_puts(&w->tried, "; web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)");
        return OB_OK;
    }
    if (!file || !arn)
        return ob_error_set(err, OB_ERR_CREDENTIALS, "web identity: %s is set but %s is not",
                            file ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN",
                            file ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
    struct ob_assume_role role = {
        .role_arn = arn, .session_name = env("AWS_ROLE_SESSION_NAME"), .region = w->opt->region,
    };
    return web_identity(w, &role, file, NULL, out, found, err);
}

/* A profile as both shared files hold it: [0] the credentials file, [1]
 * the config file. */
struct profile {
    const char *name;
    char *path[2];
    bool file_found[2], section_found[2];
    struct profile_values v[2];
};

/* The two shared files: what messages call them, the variable naming
 * each, its name under ~/.aws. */
static const struct {
    const char *what, *var, *name;
} shared_files[2] = {
    { "shared credentials file", "AWS_SHARED_CREDENTIALS_FILE", "credentials" },
    { "config file", "AWS_CONFIG_FILE", "config" },
};

static enum ob_err profile_load(const char *name, struct profile *p, struct ob_error *err)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    for (int i = 0; i < 2; i++) {
        p->path[i] = shared_file_path(shared_files[i].var, shared_files[i].name);
        if (!p->path[i])
            continue;
        enum ob_err rc = ini_read_profile(p->path[i], name, i == 1, &p->v[i], &p->file_found[i],
                                          &p->section_found[i], err);
        if (rc)
            return rc;
    }
    return OB_OK;
}

static void profile_free(struct profile *p)
{
    for (int i = 0; i < 2; i++) {
        free(p->path[i]);
        profile_values_free(&p->v[i]);
    }
}

/* A setting of the profile: the credentials file's wins, as botocore
 * merges the two. *file (may be NULL) gets which file it is from. */
static const char *setting(const struct profile *p, enum profile_key k, int *file)
{
    int i = p->v[0].v[k] ? 0 : 1;
    if (file)
        *file = i;
    return p->v[i].v[k];
}

/* Static keys of one file's section. A key without a secret (or the
 * reverse) is an error naming the file and profile. */
static enum ob_err static_keys(struct walk *w, const struct profile *p, int i, struct ob_aws_credentials *out,
                               bool *found, struct ob_error *err)
{
    const struct profile_values *v = &p->v[i];
    const char *akid = v->v[PK_ACCESS_KEY_ID], *secret = v->v[PK_SECRET_ACCESS_KEY];
    struct ob_buf source = { 0 };
    enum ob_err rc = OB_OK;

    if (!p->path[i] || !p->file_found[i] || !p->section_found[i] || (!akid && !secret))
        return OB_OK;
    ob_buf_printf(&source, "%s %s (profile %s)", shared_files[i].what, p->path[i], p->name);
    if (!akid || !secret) {
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "%s has %s but no %s", ob_buf_cstr(&source),
                          akid ? "aws_access_key_id" : "aws_secret_access_key",
                          akid ? "aws_secret_access_key" : "aws_access_key_id");
    } else {
        found_keys(w, out, found, akid, secret, v->v[PK_SESSION_TOKEN], ob_buf_cstr(&source));
    }
    ob_buf_free(&source);
    return rc;
}

/* Why a shared file gave nothing, for "no credentials" messages. */
static void note_shared_file(struct ob_buf *tried, const struct profile *p, int i)
{
    const char *what = shared_files[i].what;
    if (!p->path[i])
        ob_buf_printf(tried, "; %s (neither %s nor HOME is set)", what, shared_files[i].var);
    else if (!p->file_found[i])
        ob_buf_printf(tried, "; %s %s (no such file)", what, p->path[i]);
    else if (!p->section_found[i])
        ob_buf_printf(tried, "; %s %s (no profile %s)", what, p->path[i], p->name);
    else
        ob_buf_printf(tried, "; %s %s (profile %s: no aws_access_key_id)", what, p->path[i], p->name);
}

/* The profiles on the way from the first to a source_profile, for the
 * loop check. */
#define MAX_PROFILE_CHAIN 8
struct profile_chain {
    const char *names[MAX_PROFILE_CHAIN];
    size_t n;
};

static enum ob_err from_profile(struct walk *w, const char *name, bool as_source, struct profile_chain *chain,
                                struct ob_aws_credentials *out, bool *found, struct ob_error *err);
static enum ob_err from_container(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                  struct ob_error *err);
static enum ob_err from_instance_metadata(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                          struct ob_error *err);

/* The credentials a role is assumed with: source_profile (its static
 * keys when it names the profile itself, as botocore allows) or
 * credential_source. *what gets their name for the source's. */
static enum ob_err role_source(struct walk *w, const struct profile *p, struct profile_chain *chain,
                               struct ob_aws_credentials *by, struct ob_buf *what, struct ob_error *err)
{
    const char *source_profile = setting(p, PK_SOURCE_PROFILE, NULL);
    const char *credential_source = setting(p, PK_CREDENTIAL_SOURCE, NULL);
    enum ob_err rc = OB_OK;
    bool found = false;

    if (source_profile && credential_source)
        return ob_error_set(err, OB_ERR_CONFIG, "profile %s has both source_profile and credential_source",
                            p->name);
    if (source_profile) {
        ob_buf_printf(what, "source profile %s", source_profile);
        if (strcmp(source_profile, p->name) == 0) {
            for (int i = 0; i < 2 && !found && !rc; i++)
                rc = static_keys(w, p, i, by, &found, err);
        } else {
            for (size_t i = 0; i < chain->n; i++)
                if (strcmp(chain->names[i], source_profile) == 0)
                    return ob_error_set(err, OB_ERR_CONFIG, "profile %s: source_profile %s makes a loop", p->name,
                                        source_profile);
            rc = from_profile(w, source_profile, true, chain, by, &found, err);
        }
        if (!rc && !found)
            rc = ob_error_set(err, OB_ERR_CREDENTIALS, "profile %s: its source_profile %s has no credentials",
                              p->name, source_profile);
        return rc;
    }
    if (!credential_source)
        return ob_error_set(err, OB_ERR_CONFIG,
                            "profile %s has role_arn but no source_profile, credential_source or "
                            "web_identity_token_file",
                            p->name);
    ob_buf_printf(what, "credential_source %s", credential_source);
    if (strcmp(credential_source, "Environment") == 0)
        rc = from_environment(w, by, &found, err);
    else if (strcmp(credential_source, "EcsContainer") == 0)
        rc = from_container(w, by, &found, err);
    else if (strcmp(credential_source, "Ec2InstanceMetadata") == 0)
        rc = from_instance_metadata(w, by, &found, err);
    else
        return ob_error_set(err, OB_ERR_CONFIG,
                            "profile %s: credential_source %s is not Environment, EcsContainer or "
                            "Ec2InstanceMetadata",
                            p->name, credential_source);
    if (!rc && !found)
        rc = ob_error_set(err, OB_ERR_CREDENTIALS, "profile %s: credential_source %s has no credentials", p->name,
                          credential_source);
    return rc;
}

/* role_arn: web_identity_token_file, or AssumeRole with the credentials
 * of source_profile or credential_source. */
static enum ob_err assumed_role(struct walk *w, const struct profile *p, struct profile_chain *chain,
                                struct ob_aws_credentials *out, bool *found, struct ob_error *err)
{
    enum ob_err rc = OB_OK;
    struct ob_aws_credentials by = { 0 };
    struct ob_buf what = { 0 }, source = { 0 };
    struct ob_assume_role role = {
        .role_arn = setting(p, PK_ROLE_ARN, NULL),
        .session_name = setting(p, PK_ROLE_SESSION_NAME, NULL),
        .external_id = setting(p, PK_EXTERNAL_ID, NULL),
        .region = w->opt->region,
    };
    const char *duration = setting(p, PK_DURATION_SECONDS, NULL);
    const char *token_file = setting(p, PK_WEB_IDENTITY_TOKEN_FILE, NULL);

    if (setting(p, PK_MFA_SERIAL, NULL))
        return ob_error_set(err, OB_ERR_CONFIG,
                            "profile %s: mfa_serial needs a code typed in; outboxd runs unattended", p->name);
    if (duration) {
        char *end;
        long d = strtol(duration, &end, 10);
        if (*end || d < 900 || d > 43200)
            return ob_error_set(err, OB_ERR_CONFIG,
                                "profile %s: duration_seconds \"%s\" is not a number of seconds from 900 to 43200",
                                p->name, duration);
        role.duration_seconds = (int)d;
    }
    if (token_file)
        return web_identity(w, &role, token_file, p->name, out, found, err);

    if (chain->n == MAX_PROFILE_CHAIN)
        return ob_error_set(err, OB_ERR_CONFIG, "profile %s: more than %d source profiles in a row", p->name,
                            MAX_PROFILE_CHAIN);
    chain->names[chain->n++] = p->name;
    rc = role_source(w, p, chain, &by, &what, err);
    chain->n--;
    if (rc)
        goto out;
    ob_buf_printf(&source, "assumed role %s (profile %s, %s)", role.role_arn, p->name, ob_buf_cstr(&what));
    rc = FOUND(w, out, found, ob_buf_cstr(&source), ob_sts_assume_role(&role, &by, ob_buf_cstr(&source), out, err));
out:
    ob_aws_credentials_free(&by);
    ob_buf_free(&what);
    ob_buf_free(&source);
    return rc;
}

#define CREDENTIAL_PROCESS_TIMEOUT_MS 60000

/* The shared files' profile in botocore's order: an assumed role (role_arn
 * in either file), static keys of the credentials file,
 * credential_process, static keys of the config file. As another's
 * source_profile (as_source), a profile with static keys gives them, its
 * own role_arn being for when it is asked for itself, as botocore. */
static enum ob_err from_profile(struct walk *w, const char *name, bool as_source, struct profile_chain *chain,
                                struct ob_aws_credentials *out, bool *found, struct ob_error *err)
{
    struct profile p;
    struct ob_buf source = { 0 };
    int file;
    enum ob_err rc = profile_load(name, &p, err);
    if (rc)
        goto out;
    /* As botocore: a profile asked for by name must exist, not fall through
     * to the container's or the instance's identity. */
    if (!as_source && w->profile_named_by && !p.section_found[0] && !p.section_found[1]) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "profile %s (%s) is in neither the %s %s nor the %s %s", name,
                          w->profile_named_by, shared_files[0].what, p.path[0] ? p.path[0] : "(HOME unset)",
                          shared_files[1].what, p.path[1] ? p.path[1] : "(HOME unset)");
        goto out;
    }
    bool has_keys = setting(&p, PK_ACCESS_KEY_ID, NULL) || setting(&p, PK_SECRET_ACCESS_KEY, NULL);
    if (setting(&p, PK_ROLE_ARN, NULL) && !(as_source && has_keys)) {
        rc = assumed_role(w, &p, chain, out, found, err);
        goto out;
    }
    rc = static_keys(w, &p, 0, out, found, err);
    if (rc || *found)
        goto out;
    const char *command = setting(&p, PK_CREDENTIAL_PROCESS, &file);
    if (command) {
        ob_buf_printf(&source, "credential_process (profile %s of %s)", name, p.path[file]);
        rc = FOUND(w, out, found, ob_buf_cstr(&source),
                   ob_credential_process_run(command, CREDENTIAL_PROCESS_TIMEOUT_MS, ob_buf_cstr(&source), out, err));
        goto out;
    }
    rc = static_keys(w, &p, 1, out, found, err);
    if (rc || *found)
        goto out;
    note_shared_file(&w->tried, &p, 0);
    note_shared_file(&w->tried, &p, 1);
out:
    ob_buf_free(&source);
    profile_free(&p);
    return rc;
}

#define ECS_CONTAINER_HOST "http://169.254.170.2"

/* The Authorization header's value for a _FULL_URI: the token file
 * (read each time: it is rotated), else the variable. NULL when neither
 * is set. A value that would break the header is refused. */
static enum ob_err container_authorization(const char *source, char **out, struct ob_error *err)
{
    const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    *out = NULL;
    if (file) {
        struct ob_buf b = { 0 };
        enum ob_err rc = ob_cred_token_file_read(file, source, &b, err);
        if (rc) {
            wipe_free(ob_buf_steal(&b));
            return rc;
        }
        *out = ob_buf_steal(&b);
    } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
        *out = ob_xstrdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
    }
    if (*out && strpbrk(*out, "\r\n")) {
        wipe_free(*out);
        *out = NULL;
        return ob_error_set(err, OB_ERR_CREDENTIALS, "%s: the authorization token has a line break", source);
    }
    return OB_OK;
}

/* AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on 169.254.170.2 (ECS, Fargate),
 * else _FULL_URI with an authorization token (EKS Pod Identity). */
static enum ob_err from_container(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                  struct ob_error *err)
{
    const char *relative = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    struct ob_buf url = { 0 }, source = { 0 };
    struct ob_url u = { 0 };
    struct ob_error why = { 0 };
    char *authorization = NULL;
    enum ob_err rc = OB_OK;

    if (!relative && !full) {
        ob_buf_puts(&w->tried,
                    "; container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, AWS_CONTAINER_CREDENTIALS_FULL_URI)");
        return OB_OK;
    }
    if (relative) {
        ob_buf_cat(&url, ECS_CONTAINER_HOST, relative[0] == '/' ? "" : "/", relative, NULL);
    } else {
        ob_buf_puts(&url, full);
        ob_buf_puts(&source, "container endpoint ");
        ob_url_put_redacted(&source, full);
        if (ob_url_parse(full, &u, &why) != OB_OK) {
            rc = ob_error_set(err, OB_ERR_CONFIG, "%s (AWS_CONTAINER_CREDENTIALS_FULL_URI): %s", ob_buf_cstr(&source),
                              why.msg);
            goto out;
        }
        if (!ob_container_url_allowed(&u)) {
            rc = ob_error_set(err, OB_ERR_CONFIG,
                              "%s (AWS_CONTAINER_CREDENTIALS_FULL_URI): over http only a loopback address, "
                              "169.254.170.2, 169.254.170.23 or [fd00:ec2::23] may be used; else https",
                              ob_buf_cstr(&source));
            goto out;
        }
        ob_buf_reset(&source);
    }
    ob_buf_puts(&source, "container endpoint ");
    ob_url_put_redacted(&source, ob_buf_cstr(&url));
    if (full && !relative) {
        const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        if (file)
            ob_buf_printf(&source, " (token file %s)", file);
        else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
            ob_buf_puts(&source, " (token AWS_CONTAINER_AUTHORIZATION_TOKEN)");
        if (!w->describe && (rc = container_authorization(ob_buf_cstr(&source), &authorization, err)))
            goto out;
    }
    rc = FOUND(w, out, found, ob_buf_cstr(&source),
               ob_container_fetch(ob_buf_cstr(&url), authorization, ob_buf_cstr(&source), out, err));
out:
    wipe_free(authorization);
    ob_url_free(&u);
    ob_buf_free(&url);
    ob_buf_free(&source);
    return rc;
}

#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define IMDS_IPV6_ENDPOINT "http://[fd00:ec2::254]"

/* Instance metadata's endpoint: AWS_EC2_METADATA_SERVICE_ENDPOINT, else
 * the address of AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE (IPv4, IPv6; as
 * botocore, either case); *endpoint NULL when AWS_EC2_METADATA_DISABLED
 * is true. */
static enum ob_err imds_endpoint(const char **endpoint, struct ob_error *err)
{
    const char *disabled = env("AWS_EC2_METADATA_DISABLED");
    const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    *endpoint = NULL;
    if (disabled && strcasecmp(disabled, "true") == 0)
        return OB_OK;
    if ((*endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")))
        return OB_OK;
    if (mode && strcasecmp(mode, "ipv6") == 0)
        *endpoint = IMDS_IPV6_ENDPOINT;
    else if (!mode || strcasecmp(mode, "ipv4") == 0)
        *endpoint = IMDS_DEFAULT_ENDPOINT;
    else
        return ob_error_set(err, OB_ERR_CONFIG, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE is \"%.40s\", not IPv4 or IPv6",
                            mode);
    return OB_OK;
}

static enum ob_err from_instance_metadata(struct walk *w, struct ob_aws_credentials *out, bool *found,
                                          struct ob_error *err)
{
    const char *endpoint;
    enum ob_err rc = imds_endpoint(&endpoint, err);
    if (rc)
        return rc;
    if (!endpoint) {
        ob_buf_puts(&w->tried, "; instance metadata (AWS_EC2_METADATA_DISABLED is true)");
        return OB_OK;
    }
    struct ob_buf source = { 0 };
    ob_buf_printf(&source, "instance metadata (IMDSv2, %s)", endpoint);
    rc = FOUND(w, out, found, ob_buf_cstr(&source),
                           ob_imds_credentials(endpoint, ob_buf_cstr(&source), out, err));
    ob_buf_free(&source);
    return rc;
}

static enum ob_err walk_chain(struct walk *w, struct ob_aws_credentials *out, struct ob_error *err)
{
    const struct ob_credentials_options *opt = w->opt;
    enum ob_err rc = OB_OK;
    bool found = false;

    memset(out, 0, sizeof *out);
    const char *akid = nonempty(opt->access_key_id), *secret = nonempty(opt->secret_access_key);
    if (akid || secret || nonempty(opt->session_token)) {
        if (!akid || !secret) {
            const char *have = akid ? "access_key_id" : secret ? "secret_access_key" : "session_token";
            return ob_error_set(err, OB_ERR_CONFIG, "aws.%s is set but aws.%s is not", have,
                                akid ? "secret_access_key" : "access_key_id");
        }
        found_keys(w, out, &found, akid, secret, opt->session_token, "config (aws.access_key_id)");
        return OB_OK;
    }
    ob_buf_puts(&w->tried, "config (aws.access_key_id, aws.secret_access_key)");

    const char *profile = nonempty(opt->profile);
    if (profile) {
        ob_buf_printf(&w->tried, "; environment (skipped: aws.profile is set)");
        w->profile_named_by = "aws.profile";
    } else {
        rc = from_environment(w, out, &found, err);
        if (rc || found)
            return rc;
        profile = env("AWS_PROFILE");
        w->profile_named_by = profile ? "AWS_PROFILE" : NULL;
    }
    rc = from_web_identity_env(w, out, &found, err);
    if (rc || found)
        return rc;
    struct profile_chain chain = { 0 };
    rc = from_profile(w, profile ? profile : "default", false, &chain, out, &found, err);
    if (rc || found)
        return rc;
    rc = from_container(w, out, &found, err);
    if (rc || found)
        return rc;
    rc = from_instance_metadata(w, out, &found, err);
    if (rc && !w->describe)
        return ob_error_prefix(err, "no AWS credentials found (tried %s); the last source failed",
                               ob_buf_cstr(&w->tried));
    if (rc || found)
        return rc;
    if (w->describe)
        return OB_OK; /* out->source empty: none */
    return ob_error_set(err, OB_ERR_CREDENTIALS, "no AWS credentials found; tried %s", ob_buf_cstr(&w->tried));
}

enum ob_err ob_credentials_resolve(const struct ob_credentials_options *opt, struct ob_aws_credentials *out,
                                   struct ob_error *err)
{
    struct walk w = { .opt = opt };
    enum ob_err rc = walk_chain(&w, out, err);
    if (rc)
        ob_aws_credentials_free(out);
    ob_buf_free(&w.tried);
    return rc;
}

enum ob_err ob_credentials_describe(const struct ob_credentials_options *opt, struct ob_buf *said,
                                    struct ob_error *err)
{
    struct walk w = { .opt = opt, .describe = true };
    struct ob_aws_credentials c;
    enum ob_err rc = walk_chain(&w, &c, err);
    if (!rc && c.source[0])
        ob_buf_puts(said, c.source);
    else if (!rc)
        ob_buf_printf(said, "none found (tried %s)", ob_buf_cstr(&w.tried));
    ob_buf_free(&w.tried);
    return rc;
}

/* As botocore checks a region before putting it in a host name: what
 * else would send requests (a web identity token among them) elsewhere. */
static bool region_name_valid(const char *region)
{
    size_t n = strspn(region, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
    return n && n <= 63 && !region[n] && region[0] != '-' && region[n - 1] != '-';
}

/* The region chain, resolving or (describe) saying where the region comes
 * from without asking instance metadata: *out is the region (NULL when
 * describing instance metadata or nothing), from says where it came from
 * (describing, "none found: ..." when nowhere, which resolving is an error). */
static enum ob_err region_walk(const char *configured, const char *profile, bool describe, char **out,
                               struct ob_buf *from, struct ob_error *err)
{
    static const char *const vars[] = { "AWS_REGION", "AWS_DEFAULT_REGION" };
    enum ob_err rc = OB_OK;
    struct profile_values v = { 0 };
    bool file_found, section_found;
    char *path = NULL;

    *out = NULL;
    if (nonempty(configured)) {
        *out = ob_xstrdup(configured);
        ob_buf_puts(from, "aws.region");
        goto out;
    }
    for (size_t i = 0; i < 2; i++) {
        if (env(vars[i])) {
            *out = ob_xstrdup(env(vars[i]));
            ob_buf_puts(from, vars[i]);
            goto out;
        }
    }
    if (!nonempty(profile))
        profile = env("AWS_PROFILE");
    if (!profile)
        profile = "default";
    path = shared_file_path(shared_files[1].var, shared_files[1].name);
    if (path && (rc = ini_read_profile(path, profile, true, &v, &file_found, &section_found, err)))
        goto out;
    if (v.v[PK_REGION]) {
        *out = ob_xstrdup(v.v[PK_REGION]);
        ob_buf_printf(from, "profile %s of %s", profile, path);
        goto out;
    }
    const char *endpoint;
    if ((rc = imds_endpoint(&endpoint, err)))
        goto out;
    if (endpoint) {
        ob_buf_printf(from, "instance metadata %s", endpoint);
        if (!describe)
            rc = ob_imds_region(endpoint, out, err);
        goto out;
    }
    struct ob_buf why = { 0 };
    ob_buf_printf(&why,
                  "set aws.region, AWS_REGION or AWS_DEFAULT_REGION, or region in profile %s of %s (instance "
                  "metadata is disabled: AWS_EC2_METADATA_DISABLED)",
                  profile, path ? path : "the config file (AWS_CONFIG_FILE, HOME unset)");
    if (describe)
        ob_buf_printf(from, "none found: %s", ob_buf_cstr(&why));
    else
        rc = ob_error_set(err, OB_ERR_CONFIG, "no AWS region: %s", ob_buf_cstr(&why));
    ob_buf_free(&why);
out:
    if (!rc && *out && !region_name_valid(*out)) {
        rc = ob_error_set(err, OB_ERR_CONFIG, "region \"%.64s\" (%s) is not a region name (letters, digits and '-')",
                          *out, ob_buf_cstr(from));
        free(*out);
        *out = NULL;
    }
    profile_values_free(&v);
    free(path);
    return rc;
}

enum ob_err ob_aws_region_resolve(const char *configured, const char *profile, char **out, struct ob_error *err)
{
    struct ob_buf from = { 0 };
    enum ob_err rc = region_walk(configured, profile, false, out, &from, err);
    ob_buf_free(&from);
    return rc;
}

enum ob_err ob_region_describe(const char *configured, const char *profile, struct ob_buf *said,
                                   struct ob_error *err)
{
    char *region = NULL;
    struct ob_buf from = { 0 };
    enum ob_err rc = region_walk(configured, profile, true, &region, &from, err);
    if (!rc && region)
        ob_buf_printf(said, "%s (%s)", region, ob_buf_cstr(&from));
    else if (!rc && strncmp(from.data, "none", 4) != 0)
        ob_buf_printf(said, "from %s", ob_buf_cstr(&from));
    else if (!rc)
        ob_buf_puts(said, ob_buf_cstr(&from));
    free(region);
    ob_buf_free(&from);
    return rc;
}

struct ob_credentials_options ob_credentials_options_of(const struct ob_config_aws *aws)
{
    return (struct ob_credentials_options){
        .access_key_id = aws->access_key_id,
        .secret_access_key = aws->secret_access_key,
        .session_token = aws->session_token,
        .profile = aws->profile,
        .region = aws->region,
    };
}
