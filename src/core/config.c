/* Loading the configuration: libyaml builds the document, one walk driven
 * by the schema tables types every value and stores it, then the checks
 * that involve several keys run. Every problem is collected with its
 * position; nothing stops at the first. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "core/buf.h"
#include "core/config_schema.h"
#include "core/template.h"
#include "core/url.h"

#define NO_INDEX SIZE_MAX

struct diag_item {
    struct ob_config_pos at;
    size_t seq;
    char *msg;
};

struct loader {
    const char *file;
    const struct ob_sink_catalogue *sinks;
    yaml_document_t *doc;
    struct ob_config_pos root;
    struct diag_item *items;
    size_t n_items, cap_items;
    struct ob_config *cfg;
    struct ob_config_pos *sink_name_at;   /* per sink: where its name is written */
    struct ob_config_pos *route_sink_at;  /* per route: where its sink is named */
};

/* One mapping's keys being walked: the schema table and what was found. */
struct walk {
    const struct ob_config_key *keys;
    size_t n;
    struct ob_config_pos *key_at; /* where the file names each key; line 0 = absent */
    struct ob_config_pos *val_at;
    bool *set;                   /* a value was stored (sections: it is a mapping) */
    bool *bad;                   /* the file's value was reported as an error */
    void *base;                  /* values go to fields at the keys' offsets, or */
    struct ob_sink_opt *opts;    /* to one option per key (sinks) */
    const char *owner;           /* "" at the top, "TYPE sink 'events'", "route #2" */
    const struct ob_sink_schema *sink_schema;
    size_t dest;                 /* the destination key given (routes) */
};

struct value {
    char *s;
    bool b;
    int64_t i;
    double d;
    struct ob_config_map map;
};

static void vreport(struct loader *ld, struct ob_config_pos at, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void report(struct loader *ld, struct ob_config_pos at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void vreport(struct loader *ld, struct ob_config_pos at, const char *fmt, va_list ap)
{
    if (ld->n_items == ld->cap_items) {
        ld->cap_items = ld->cap_items ? ld->cap_items * 2 : 16;
        ld->items = ob_xrealloc(ld->items, ld->cap_items * sizeof ld->items[0]);
    }
    struct ob_buf b = {0};
    ob_buf_vprintf(&b, fmt, ap);
    ld->items[ld->n_items] = (struct diag_item){at, ld->n_items, ob_buf_steal(&b)};
    ld->n_items++;
}

static void report(struct loader *ld, struct ob_config_pos at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ld, at, fmt, ap);
    va_end(ap);
}

static struct ob_config_pos mark_pos(yaml_mark_t m)
{
    return (struct ob_config_pos){(int)m.line + 1, (int)m.column + 1};
}

static yaml_node_t *node(struct loader *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain empty, "~" or "null" value: the key is there without a value. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "a string";
    }
}

void ob_config_format_duration(struct ob_buf *b, int64_t ms)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000},
    };
    for (size_t i = 0; ms && i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0) {
            ob_buf_printf(b, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    ob_buf_printf(b, ms ? "%lldms" : "%lld", (long long)ms);
}

int64_t ob_parse_duration_ms(const char *s, bool *ok)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    *ok = false;
    if (!s || !isdigit((unsigned char)*s))
        return 0;
    int64_t n = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (INT64_MAX - 9) / 10)
            return 0;
        n = n * 10 + (*p - '0');
    }
    if (!*p) {
        *ok = n == 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (n > INT64_MAX / units[i].ms)
                return 0;
            *ok = true;
            return n * units[i].ms;
        }
    }
    return 0;
}

/* "'stream.poll_interval'" or "'timeout' of TYPE sink 'events'" */
static void put_key_name(struct ob_buf *b, const struct walk *w, const char *path)
{
    ob_buf_printf(b, "'%s'", path);
    if (*w->owner)
        ob_buf_printf(b, " of %s", w->owner);
}

/* " in 'stream'", " in 'match' of route #1", " in TYPE sink 'x'", or "" at the top. */
static void put_place(struct ob_buf *b, const struct walk *w, const char *prefix)
{
    if (*prefix)
        ob_buf_printf(b, " in '%s'", prefix);
    if (*w->owner)
        ob_buf_printf(b, *prefix ? " of %s" : " in %s", w->owner);
}

/* Expands ${VAR}, ${VAR:-default} and $$. Returns a new string, or NULL
 * after reporting (nothing is reported when ld is NULL). */
static char *expand_env(struct loader *ld, const char *name, const char *s, struct ob_config_pos at)
{
    struct ob_buf b = {0};
    char *result = NULL;
    for (const char *p = s; *p; p++) {
        if (p[0] != '$' || (p[1] != '$' && p[1] != '{')) {
            ob_buf_putc(&b, *p);
            continue;
        }
        if (p[1] == '$') {
            ob_buf_putc(&b, '$');
            p++;
            continue;
        }
        const char *var = p + 2, *end = var, *def = NULL, *close = NULL;
        while (isalnum((unsigned char)*end) || *end == '_')
            end++;
        bool named = end > var && !isdigit((unsigned char)*var);
        if (named && *end == '}') {
            close = end;
        } else if (named && end[0] == ':' && end[1] == '-') {
            def = end + 2;
            close = strchr(def, '}');
        }
        if (!close) {
            if (ld)
                report(ld, at, "%s has a malformed environment reference (expected ${NAME} or ${NAME:-default}; "
                       "write $$ for a literal $)", name);
            goto out;
        }
        char *var_name = ob_xstrndup(var, (size_t)(end - var));
        const char *val = getenv(var_name);
        if (def && (!val || !*val)) {
            ob_buf_append(&b, def, (size_t)(close - def));
        } else if (val) {
            ob_buf_puts(&b, val);
        } else {
            if (ld)
                report(ld, at, "environment variable '%s' used by %s is not set (write ${%s:-default} to give a default)",
                       var_name, name, var_name);
            free(var_name);
            goto out;
        }
        free(var_name);
        p = close;
    }
    result = ob_buf_steal(&b);
out:
    ob_buf_free(&b);
    return result;
}

static bool parse_int(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-');
    if (!isdigit((unsigned char)*p))
        return false;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return false;
    *out = v;
    return true;
}

/* Types text as k says and fills v; reports and returns false when the
 * text does not fit. A secret's text is never put in a message. */
static bool parse_value(struct loader *ld, const struct ob_config_key *k, const char *name, const char *text,
                        struct ob_config_pos at, struct value *v)
{
    struct ob_buf msg = {0};
    bool ok = false;
    switch (k->type) {
    case OB_CT_STRING:
        ok = true;
        break;
    case OB_CT_URL:
        for (size_t i = 0; k->values[i] && !ok; i++)
            ok = strncmp(text, k->values[i], strlen(k->values[i])) == 0 && text[strlen(k->values[i])];
        if (!ok) {
            ob_buf_printf(&msg, "%s must be ", name);
            ob_config_put_type(&msg, k, false);
        }
        break;
    case OB_CT_TEMPLATE: {
        char bad[256];
        ok = ob_template_check(text, bad, sizeof bad);
        if (!ok && bad[0] == '{' && bad[strlen(bad) - 1] == '}') {
            ob_buf_printf(&msg, "%s has unknown placeholder %s (known: ", name, bad);
            for (size_t i = 0; ob_template_names[i]; i++)
                ob_buf_printf(&msg, "%s{%s}", i ? ", " : "", ob_template_names[i]);
            ob_buf_putc(&msg, ')');
        } else if (!ok) {
            ob_buf_printf(&msg, "%s must be a template with placeholders like {messageType}, and no other braces",
                          name);
        }
        break;
    }
    case OB_CT_BOOL:
        ok = !strcmp(text, "true") || !strcmp(text, "false");
        v->b = !strcmp(text, "true");
        if (!ok)
            ob_buf_printf(&msg, "%s must be true or false", name);
        break;
    case OB_CT_INT:
        ok = parse_int(text, &v->i) && v->i >= k->min && v->i <= k->max;
        if (!ok && k->max == INT64_MAX)
            ob_buf_printf(&msg, "%s must be an integer of at least %lld", name, (long long)k->min);
        else if (!ok)
            ob_buf_printf(&msg, "%s must be an integer from %lld to %lld", name, (long long)k->min,
                          (long long)k->max);
        break;
    case OB_CT_NUMBER: {
        char *end = NULL;
        errno = 0;
        v->d = strtod(text, &end);
        ok = !isspace((unsigned char)*text) && end != text && !*end && !errno && isfinite(v->d) &&
             v->d >= (double)k->min && (k->max == INT64_MAX || v->d <= (double)k->max);
        if (!ok)
            ob_buf_printf(&msg, "%s must be a number of at least %lld", name, (long long)k->min);
        break;
    }
    case OB_CT_DURATION:
        v->i = ob_parse_duration_ms(text, &ok);
        if (!ok) {
            ob_buf_printf(&msg, "%s must be a duration like 250ms, 5s, 10m or 7d", name);
        } else if (v->i < k->min || v->i > k->max) {
            ok = false;
            ob_buf_printf(&msg, "%s must be at least ", name);
            ob_config_format_duration(&msg, k->min);
            if (k->max != INT64_MAX) {
                ob_buf_puts(&msg, " and at most ");
                ob_config_format_duration(&msg, k->max);
            }
        }
        break;
    case OB_CT_ENUM:
        for (size_t i = 0; k->values[i] && !ok; i++) {
            ok = strcmp(text, k->values[i]) == 0;
            v->i = (int64_t)i;
        }
        if (!ok) {
            ob_buf_printf(&msg, "%s must be ", name);
            ob_config_put_type(&msg, k, false);
        }
        break;
    case OB_CT_MAP:
    case OB_CT_SECTION:
    case OB_CT_SINKS:
    case OB_CT_ROUTES:
        break;
    }
    if (ok) {
        v->s = ob_xstrdup(text);
    } else if (k->flags & OB_CK_SECRET) {
        report(ld, at, "%s (the value is not shown: it is secret)", ob_buf_cstr(&msg));
    } else {
        struct ob_buf shown = {0};
        if (k->type == OB_CT_URL)
            ob_url_put_redacted(&shown, text);
        else
            ob_buf_puts(&shown, text);
        report(ld, at, "%s, got '%s'", ob_buf_cstr(&msg), ob_buf_cstr(&shown));
        ob_buf_free(&shown);
    }
    ob_buf_free(&msg);
    return ok;
}

static void map_free(struct ob_config_map *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->pairs[i].key);
        free(m->pairs[i].value);
    }
    free(m->pairs);
    m->pairs = NULL;
    m->n = 0;
}

static void value_free(struct value *v)
{
    free(v->s);
    map_free(&v->map);
}

/* Hands v's allocations to the walk's target. */
static void store(struct walk *w, size_t i, struct value *v, struct ob_config_pos at)
{
    const struct ob_config_key *k = &w->keys[i];
    w->set[i] = true;
    if (w->opts) {
        struct ob_sink_opt *o = &w->opts[i];
        free(o->str);
        map_free(&o->map);
        o->str = k->type == OB_CT_ENUM ? ob_xstrdup(k->values[v->i]) : v->s;
        if (k->type == OB_CT_ENUM)
            free(v->s);
        o->b = v->b;
        o->i = v->i;
        o->map = v->map;
        o->set = true;
        o->line = at.line;
        o->column = at.column;
        return;
    }
    char *field = (char *)w->base + k->offset;
    switch (k->type) {
    case OB_CT_STRING:
    case OB_CT_URL:
    case OB_CT_TEMPLATE:
        free(*(char **)(void *)field);
        memcpy(field, &v->s, sizeof v->s);
        return;
    case OB_CT_BOOL:
        memcpy(field, &v->b, sizeof v->b);
        break;
    case OB_CT_INT:
    case OB_CT_DURATION:
    case OB_CT_ENUM:
        if (k->size == sizeof(int)) {
            int small = (int)v->i;
            memcpy(field, &small, sizeof small);
        } else {
            memcpy(field, &v->i, sizeof v->i);
        }
        break;
    case OB_CT_NUMBER:
        memcpy(field, &v->d, sizeof v->d);
        break;
    case OB_CT_MAP:
        memcpy(field, &v->map, sizeof v->map);
        v->map = (struct ob_config_map){0};
        break;
    case OB_CT_SECTION:
    case OB_CT_SINKS:
    case OB_CT_ROUTES:
        break;
    }
    value_free(v);
}

static void walk_string_map(struct loader *ld, struct walk *w, size_t i, yaml_node_t *m, const char *name)
{
    if (m->type != YAML_MAPPING_NODE) {
        report(ld, w->val_at[i], "%s must be a mapping of strings, got %s", name, kind(m));
        return;
    }
    struct value v = {0};
    size_t n = (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    struct ob_config_pos *first = ob_xcalloc(n, sizeof *first);
    v.map.pairs = ob_xcalloc(n, sizeof *v.map.pairs);
    bool ok = true;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(ld, p->key), *vn = node(ld, p->value);
        struct ob_config_pos kat = mark_pos(kn->start_mark);
        if (kn->type != YAML_SCALAR_NODE || vn->type != YAML_SCALAR_NODE) {
            report(ld, kn->type != YAML_SCALAR_NODE ? kat : mark_pos(vn->start_mark),
                   "%s must be a mapping of strings, got %s %s", name, kind(kn->type != YAML_SCALAR_NODE ? kn : vn),
                   kn->type != YAML_SCALAR_NODE ? "as a key" : "as a value");
            ok = false;
            continue;
        }
        size_t dup = 0;
        while (dup < v.map.n && strcmp(v.map.pairs[dup].key, scalar(kn)) != 0)
            dup++;
        if (dup < v.map.n) {
            report(ld, kat, "duplicate key '%s' in %s (first at line %d)", scalar(kn), name, first[dup].line);
            ok = false;
            continue;
        }
        char *text = is_null(vn) ? ob_xstrdup("") : expand_env(ld, name, scalar(vn), mark_pos(vn->start_mark));
        if (!text) {
            ok = false;
            continue;
        }
        first[v.map.n] = kat;
        v.map.pairs[v.map.n++] = (struct ob_config_pair){ob_xstrdup(scalar(kn)), text, kat.line, kat.column};
    }
    free(first);
    if (ok)
        store(w, i, &v, w->val_at[i]);
    else
        value_free(&v);
}

static void walk_leaf(struct loader *ld, struct walk *w, size_t i, yaml_node_t *vn)
{
    const struct ob_config_key *k = &w->keys[i];
    struct ob_buf name = {0};
    put_key_name(&name, w, k->path);
    if (k->type == OB_CT_MAP) {
        walk_string_map(ld, w, i, vn, ob_buf_cstr(&name));
        goto out;
    }
    if (vn->type != YAML_SCALAR_NODE) {
        struct ob_buf noun = {0};
        ob_config_put_type(&noun, k, false);
        report(ld, w->val_at[i], "%s must be %s, got %s", ob_buf_cstr(&name), ob_buf_cstr(&noun), kind(vn));
        ob_buf_free(&noun);
        goto out;
    }
    if (strlen(scalar(vn)) != vn->data.scalar.length) {
        report(ld, w->val_at[i], "%s must not contain a NUL character", ob_buf_cstr(&name));
        goto out;
    }
    char *text = expand_env(ld, ob_buf_cstr(&name), scalar(vn), w->val_at[i]);
    if (!text)
        goto out;
    struct value v = {0};
    if (!*text) {
        if (k->flags & OB_CK_REQUIRED)
            report(ld, w->val_at[i], "%s must not be empty", ob_buf_cstr(&name));
    } else if (parse_value(ld, k, ob_buf_cstr(&name), text, w->val_at[i], &v)) {
        store(w, i, &v, w->val_at[i]);
    }
    free(text);
out:
    ob_buf_free(&name);
}

static size_t key_index(const struct ob_config_key *keys, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].path, path) == 0)
            return i;
    return NO_INDEX;
}

/* The keys directly below prefix, for "expected one of" lists. */
static void put_children(struct ob_buf *b, const struct walk *w, const char *prefix)
{
    size_t plen = strlen(prefix), n = 0;
    for (size_t i = 0; i < w->n; i++) {
        const char *p = w->keys[i].path;
        if (plen && (strncmp(p, prefix, plen) != 0 || p[plen] != '.'))
            continue;
        const char *rest = plen ? p + plen + 1 : p;
        if (strchr(rest, '.'))
            continue;
        ob_buf_printf(b, "%s%s", n++ ? ", " : "", rest);
    }
}

static void report_unknown(struct loader *ld, const struct walk *w, const char *prefix, const char *key,
                           struct ob_config_pos at)
{
    struct ob_buf b = {0};
    ob_buf_printf(&b, "unknown %skey '%s'", *prefix || *w->owner ? "" : "top-level ", key);
    put_place(&b, w, prefix);
    ob_buf_puts(&b, " (");
    if (w->sink_schema && !*prefix) {
        size_t n = 0;
        for (size_t s = 0; s < ld->sinks->n; s++)
            if (key_index(ld->sinks->types[s]->keys, ld->sinks->types[s]->n_keys, key) != NO_INDEX)
                ob_buf_printf(&b, "%s%s", n++ ? ", " : "it is a key of ", ld->sinks->types[s]->type);
        if (n)
            ob_buf_puts(&b, " sinks; ");
    }
    ob_buf_puts(&b, "expected one of: ");
    put_children(&b, w, prefix);
    ob_buf_puts(&b, ")");
    report(ld, at, "%s", ob_buf_cstr(&b));
    ob_buf_free(&b);
}

static void walk_sinks(struct loader *ld, struct walk *w, size_t i, yaml_node_t *vn);
static void walk_routes(struct loader *ld, struct walk *w, size_t i, yaml_node_t *vn);

static void walk_map(struct loader *ld, struct walk *w, yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(ld, p->key), *vn = node(ld, p->value);
        struct ob_config_pos kat = mark_pos(kn->start_mark);
        if (kn->type != YAML_SCALAR_NODE) {
            struct ob_buf place = {0};
            put_place(&place, w, prefix);
            report(ld, kat, "keys must be strings, got %s%s", kind(kn), ob_buf_cstr(&place));
            ob_buf_free(&place);
            continue;
        }
        char *path = *prefix ? NULL : ob_xstrdup(scalar(kn));
        if (!path) {
            struct ob_buf b = {0};
            ob_buf_printf(&b, "%s.%s", prefix, scalar(kn));
            path = ob_buf_steal(&b);
        }
        size_t i = key_index(w->keys, w->n, path);
        const struct ob_config_key *k = i == NO_INDEX ? NULL : &w->keys[i];
        struct ob_buf name = {0};
        if (k)
            put_key_name(&name, w, k->path);
        if (!k) {
            report_unknown(ld, w, prefix, scalar(kn), kat);
        } else if (w->key_at[i].line) {
            struct ob_buf place = {0};
            put_place(&place, w, prefix);
            report(ld, kat, "duplicate %skey '%s'%s (first at line %d)", *prefix || *w->owner ? "" : "top-level ",
                   scalar(kn), ob_buf_cstr(&place), w->key_at[i].line);
            ob_buf_free(&place);
        } else if ((k->flags & OB_CK_DEST) && w->dest != NO_INDEX) {
            w->key_at[i] = kat;
            report(ld, kat, "%s has both '%s' and '%s': give one destination", w->owner, w->keys[w->dest].path,
                   k->path);
        } else {
            size_t reported = ld->n_items;
            w->key_at[i] = kat;
            w->val_at[i] = mark_pos(vn->start_mark);
            if (k->flags & OB_CK_DEST)
                w->dest = i;
            if (is_null(vn)) {
                w->set[i] = k->type == OB_CT_SECTION;
                if ((k->flags & OB_CK_REQUIRED) && k->type != OB_CT_SECTION)
                    report(ld, w->val_at[i], "%s must not be empty", ob_buf_cstr(&name));
            } else if (k->type == OB_CT_SECTION && vn->type != YAML_MAPPING_NODE) {
                report(ld, w->val_at[i], "%s must be a mapping, got %s", ob_buf_cstr(&name), kind(vn));
            } else if (k->type == OB_CT_SECTION) {
                w->set[i] = true;
                walk_map(ld, w, vn, path);
            } else if (k->type == OB_CT_SINKS) {
                walk_sinks(ld, w, i, vn);
            } else if (k->type == OB_CT_ROUTES) {
                walk_routes(ld, w, i, vn);
            } else {
                walk_leaf(ld, w, i, vn);
            }
            w->bad[i] = ld->n_items > reported;
        }
        ob_buf_free(&name);
        free(path);
    }
}

static void walk_init(struct walk *w, const struct ob_config_key *keys, size_t n, const char *owner)
{
    *w = (struct walk){.keys = keys, .n = n, .owner = owner, .dest = NO_INDEX};
    w->key_at = ob_xcalloc(n, sizeof *w->key_at);
    w->val_at = ob_xcalloc(n, sizeof *w->val_at);
    w->set = ob_xcalloc(n, sizeof *w->set);
    w->bad = ob_xcalloc(n, sizeof *w->bad);
}

static void walk_done(struct walk *w)
{
    free(w->key_at);
    free(w->val_at);
    free(w->set);
    free(w->bad);
}

/* Missing required keys, reported at the mapping that lacks them. A key
 * below a section that is present but malformed was already reported. */
static void check_required(struct loader *ld, const struct walk *w, struct ob_config_pos item)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct ob_config_key *k = &w->keys[i];
        if (!(k->flags & OB_CK_REQUIRED) || w->key_at[i].line)
            continue;
        const char *dot = strrchr(k->path, '.');
        if (!dot) {
            if (*w->owner)
                report(ld, item, "missing required key '%s' in %s", k->path, w->owner);
            else
                report(ld, item, "missing required key '%s'", k->path);
            continue;
        }
        char *parent = ob_xstrndup(k->path, (size_t)(dot - k->path));
        size_t pi = key_index(w->keys, w->n, parent);
        if (pi != NO_INDEX && w->key_at[pi].line && w->set[pi]) {
            struct ob_buf place = {0};
            put_place(&place, w, parent);
            report(ld, w->key_at[pi], "missing required key '%s'%s", dot + 1, ob_buf_cstr(&place));
            ob_buf_free(&place);
        } else if (pi == NO_INDEX || !w->key_at[pi].line) {
            report(ld, item, "missing required key '%s'%s%s", k->path, *w->owner ? " in " : "", w->owner);
        }
        free(parent);
    }
}

/* Defaults go through the same parser as the file's values. */
static void apply_defaults(struct loader *ld, struct walk *w)
{
    for (size_t i = 0; i < w->n; i++) {
        const struct ob_config_key *k = &w->keys[i];
        if (w->set[i] || !k->def || (!w->opts && !k->size))
            continue;
        struct value v = {0};
        if (!*k->def) {
            v.s = ob_xstrdup("");
            store(w, i, &v, (struct ob_config_pos){0, 0});
        } else if (parse_value(ld, k, k->path, k->def, (struct ob_config_pos){0, 0}, &v)) {
            store(w, i, &v, (struct ob_config_pos){0, 0});
        }
    }
}

static yaml_node_t *find_value(struct loader *ld, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(ld, p->key);
        if (kn->type == YAML_SCALAR_NODE && strcmp(scalar(kn), key) == 0)
            return node(ld, p->value);
    }
    return NULL;
}

static bool valid_sink_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return false;
    return true;
}

static const struct ob_sink_opt *opt_find(const struct ob_config_sink *sink, const char *key)
{
    for (size_t i = 0; i < sink->n_opts; i++)
        if (strcmp(sink->opts[i].key, key) == 0)
            return &sink->opts[i];
    return NULL;
}

struct ob_sink_check {
    struct loader *ld;
    const struct walk *w;
    struct ob_config_pos item;
};

bool ob_sink_check_given(const struct ob_sink_check *c, const char *key)
{
    size_t i = key_index(c->w->keys, c->w->n, key);
    return i != NO_INDEX && c->w->key_at[i].line && (c->w->set[i] || c->w->bad[i]);
}

struct ob_config_pos ob_sink_check_value_at(const struct ob_sink_check *c, const char *key)
{
    size_t i = key_index(c->w->keys, c->w->n, key);
    return i == NO_INDEX ? (struct ob_config_pos){0, 0} : c->w->val_at[i];
}

const char *ob_sink_check_owner(const struct ob_sink_check *c)
{
    return c->w->owner;
}

void ob_sink_check_error(struct ob_sink_check *c, struct ob_config_pos at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c->ld, at.line ? at : c->item, fmt, ap);
    va_end(ap);
}

static void walk_sink(struct loader *ld, size_t index, yaml_node_t *item)
{
    struct ob_config_sink *s = &ld->cfg->sinks[index];
    struct ob_config_key *keys = NULL;   /* the common ones and the type's own, in one table to walk */
    struct ob_config_pos at = mark_pos(item->start_mark);
    s->line = at.line;
    s->column = at.column;
    if (item->type != YAML_MAPPING_NODE) {
        report(ld, at, "each entry of 'sinks' must be a mapping, got %s", kind(item));
        return;
    }
    yaml_node_t *nn = find_value(ld, item, "name"), *tn = find_value(ld, item, "type");
    if (nn && nn->type == YAML_SCALAR_NODE && !is_null(nn)) {
        s->name = expand_env(NULL, "", scalar(nn), at);
        ld->sink_name_at[index] = mark_pos(nn->start_mark);
    }
    if (s->name && !*s->name) {
        free(s->name);
        s->name = NULL;
    }
    struct ob_buf owner = {0};
    if (s->name)
        ob_buf_printf(&owner, "sink '%s'", s->name);
    else
        ob_buf_printf(&owner, "sink #%zu", index + 1);
    if (s->name && !valid_sink_name(s->name)) {
        report(ld, ld->sink_name_at[index], "sink name '%s' may only have letters, digits, '_', '.' and '-'", s->name);
    } else if (s->name) {
        for (size_t j = 0; j < index; j++) {
            if (ld->cfg->sinks[j].name && !strcmp(ld->cfg->sinks[j].name, s->name)) {
                report(ld, ld->sink_name_at[index], "duplicate sink name '%s' (first defined at line %d)", s->name,
                       ld->sink_name_at[j].line);
                break;
            }
        }
    }
    const struct ob_sink_schema *schema = NULL;
    struct ob_buf types = {0};
    for (size_t i = 0; i < ld->sinks->n; i++)
        ob_buf_printf(&types, "%s%s", i ? ", " : "", ld->sinks->types[i]->type);
    char *type = NULL;
    if (!tn) {
        report(ld, at, "missing required key 'type' in %s (one of: %s)", ob_buf_cstr(&owner), ob_buf_cstr(&types));
    } else if (tn->type != YAML_SCALAR_NODE || is_null(tn)) {
        report(ld, mark_pos(tn->start_mark), "'type' of %s must be one of: %s, got %s", ob_buf_cstr(&owner),
               ob_buf_cstr(&types), is_null(tn) ? "nothing" : kind(tn));
    } else if ((type = expand_env(ld, "'type'", scalar(tn), mark_pos(tn->start_mark))) &&
               !(schema = ob_sink_catalogue_find(ld->sinks, type))) {
        report(ld, mark_pos(tn->start_mark), "unknown sink type '%s' in %s (this build has: %s)", type,
               ob_buf_cstr(&owner), ob_buf_cstr(&types));
    }
    free(type);
    ob_buf_free(&types);
    if (!schema) {
        if (!nn)
            report(ld, at, "missing required key 'name' in %s", ob_buf_cstr(&owner));
        goto out;
    }

    s->type = ob_xstrdup(schema->type);
    s->schema = schema;
    ob_buf_reset(&owner);
    if (s->name)
        ob_buf_printf(&owner, "%s sink '%s'", schema->type, s->name);
    else
        ob_buf_printf(&owner, "%s sink #%zu", schema->type, index + 1);
    s->n_opts = ob_sink_n_keys(schema);
    keys = ob_xcalloc(s->n_opts, sizeof *keys);
    s->opts = ob_xcalloc(s->n_opts, sizeof *s->opts);
    for (size_t i = 0; i < s->n_opts; i++) {
        keys[i] = *ob_sink_key(schema, i);
        s->opts[i].key = keys[i].path;
    }
    struct walk w;
    walk_init(&w, keys, s->n_opts, ob_buf_cstr(&owner));
    w.sink_schema = schema;
    w.opts = s->opts;
    walk_map(ld, &w, item, "");
    check_required(ld, &w, at);
    apply_defaults(ld, &w);
    if (schema->check) {
        struct ob_sink_check c = {.ld = ld, .w = &w, .item = at};
        schema->check(s, &c);
    }
    walk_done(&w);
out:
    free(keys);
    ob_buf_free(&owner);
}

static void walk_sinks(struct loader *ld, struct walk *w, size_t i, yaml_node_t *vn)
{
    if (vn->type != YAML_SEQUENCE_NODE) {
        report(ld, w->val_at[i], "'sinks' must be a list of sinks, got %s", kind(vn));
        return;
    }
    size_t n = (size_t)(vn->data.sequence.items.top - vn->data.sequence.items.start);
    if (!n) {
        report(ld, w->val_at[i], "'sinks' must list at least one sink");
        return;
    }
    w->set[i] = true;
    ld->cfg->sinks = ob_xcalloc(n, sizeof *ld->cfg->sinks);
    ld->sink_name_at = ob_xcalloc(n, sizeof *ld->sink_name_at);
    ld->cfg->n_sinks = n;
    for (size_t j = 0; j < n; j++)
        walk_sink(ld, j, node(ld, vn->data.sequence.items.start[j]));
}

static void walk_routes(struct loader *ld, struct walk *w, size_t i, yaml_node_t *vn)
{
    if (vn->type != YAML_SEQUENCE_NODE) {
        report(ld, w->val_at[i], "'routes' must be a list of routes, got %s", kind(vn));
        return;
    }
    size_t n = (size_t)(vn->data.sequence.items.top - vn->data.sequence.items.start);
    w->set[i] = true;
    ld->cfg->routes = ob_xcalloc(n, sizeof *ld->cfg->routes);
    ld->route_sink_at = ob_xcalloc(n, sizeof *ld->route_sink_at);
    ld->cfg->n_routes = n;
    size_t match = key_index(ob_route_keys, ob_route_n_keys, "match");
    size_t sink = key_index(ob_route_keys, ob_route_n_keys, "sink");
    for (size_t j = 0; j < n; j++) {
        yaml_node_t *item = node(ld, vn->data.sequence.items.start[j]);
        struct ob_config_route *r = &ld->cfg->routes[j];
        struct ob_config_pos at = mark_pos(item->start_mark);
        r->line = at.line;
        r->column = at.column;
        if (item->type != YAML_MAPPING_NODE) {
            report(ld, at, "each entry of 'routes' must be a mapping, got %s", kind(item));
            continue;
        }
        struct ob_buf owner = {0};
        ob_buf_printf(&owner, "route #%zu", j + 1);
        struct walk rw;
        walk_init(&rw, ob_route_keys, ob_route_n_keys, ob_buf_cstr(&owner));
        rw.base = r;
        walk_map(ld, &rw, item, "");
        check_required(ld, &rw, at);
        if (rw.set[match] && !r->match_message_type && !r->match_aggregate_type &&
            rw.key_at[key_index(ob_route_keys, ob_route_n_keys, "match.messageType")].line == 0 &&
            rw.key_at[key_index(ob_route_keys, ob_route_n_keys, "match.aggregateType")].line == 0)
            report(ld, rw.key_at[match], "'match' of %s needs messageType or aggregateType", ob_buf_cstr(&owner));
        ld->route_sink_at[j] = rw.val_at[sink];
        walk_done(&rw);
        ob_buf_free(&owner);
    }
}

static void put_sink_names(struct ob_buf *b, const struct ob_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].name)
            ob_buf_printf(b, "%s%s", n++ ? ", " : "defined: ", cfg->sinks[i].name);
    if (!n)
        ob_buf_puts(b, "no sinks are defined");
}

static bool check_sink_ref(struct loader *ld, const char *what, const char *name, struct ob_config_pos at, size_t *index)
{
    for (size_t i = 0; i < ld->cfg->n_sinks; i++) {
        if (ld->cfg->sinks[i].name && !strcmp(ld->cfg->sinks[i].name, name)) {
            if (index)
                *index = i;
            return true;
        }
    }
    struct ob_buf names = {0};
    put_sink_names(&names, ld->cfg);
    report(ld, at, "%s '%s' is not a defined sink (%s)", what, name, ob_buf_cstr(&names));
    ob_buf_free(&names);
    return false;
}

/* Rules between keys of the top level, and the defaults derived from
 * other keys. */
static void check_config(struct loader *ld, struct walk *w)
{
    struct ob_config *cfg = ld->cfg;
#define IDX(path) key_index(w->keys, w->n, path)
#define KEY_AT(path) w->key_at[IDX(path)]
#define VAL_AT(path) w->val_at[IDX(path)]
#define IS_SET(path) w->set[IDX(path)]
    /* No region here is no default either: the commands that call AWS find
     * it (ob_aws_region_resolve: the environment, the profile, instance
     * metadata) and stop when there is none. */
    if (!cfg->aws.streams_endpoint && cfg->aws.endpoint)
        cfg->aws.streams_endpoint = ob_xstrdup(cfg->aws.endpoint);
    if (!cfg->leases.table && cfg->table.name) {
        struct ob_buf b = {0};
        ob_buf_printf(&b, "%s-leases", cfg->table.name);
        cfg->leases.table = ob_buf_steal(&b);
    }

    if (cfg->aws.access_key_id && !cfg->aws.secret_access_key)
        report(ld, KEY_AT("aws"), "missing required key 'secret_access_key' in 'aws' (access_key_id is set)");
    if (!cfg->aws.access_key_id && cfg->aws.secret_access_key)
        report(ld, KEY_AT("aws"), "missing required key 'access_key_id' in 'aws' (secret_access_key is set)");
    if (cfg->aws.session_token && !cfg->aws.access_key_id && !cfg->aws.secret_access_key)
        report(ld, KEY_AT("aws.session_token"), "'aws.session_token' needs access_key_id and secret_access_key");
    if (cfg->aws.profile && (cfg->aws.access_key_id || cfg->aws.secret_access_key))
        report(ld, KEY_AT("aws.profile"), "'aws.profile' cannot be combined with static keys (access_key_id)");
    if (IS_SET("aws.retry_base_delay") && IS_SET("aws.retry_max_delay") &&
        cfg->aws.retry_base_delay_ms > cfg->aws.retry_max_delay_ms)
        report(ld, VAL_AT("aws.retry_base_delay"), "'aws.retry_base_delay' must not be longer than 'aws.retry_max_delay'");

    static const char *const capacities[] = {"table.read_capacity", "table.write_capacity"};
    for (size_t i = 0; i < 2; i++) {
        if (cfg->table.billing_mode == OB_BILLING_PROVISIONED && !KEY_AT(capacities[i]).line)
            report(ld, KEY_AT("table"), "missing required key '%s' in 'table' (billing_mode is provisioned)",
                   capacities[i] + 6);
        else if (cfg->table.billing_mode == OB_BILLING_PAY_PER_REQUEST && KEY_AT(capacities[i]).line)
            report(ld, KEY_AT(capacities[i]), "'%s' needs billing_mode provisioned (billing_mode is pay_per_request)",
                   capacities[i]);
    }

    if (IS_SET("relay.backoff.initial") && IS_SET("relay.backoff.max") &&
        cfg->relay.backoff_initial_ms > cfg->relay.backoff_max_ms)
        report(ld, VAL_AT("relay.backoff.initial"), "'relay.backoff.initial' must not be longer than 'relay.backoff.max'");

    if (cfg->metrics.listen) {
        const char *colon = strrchr(cfg->metrics.listen, ':');
        int64_t port = 0;
        if (!colon || colon == cfg->metrics.listen || !parse_int(colon + 1, &port) || port < 1 || port > 65535)
            report(ld, VAL_AT("metrics.listen"), "'metrics.listen' must be host:port, like 127.0.0.1:9464, got '%s'",
                   cfg->metrics.listen);
    }

    /* Sink references only mean something once the sinks were walked. */
    if (!IS_SET("sinks"))
        goto out;
    for (size_t i = 0; i < cfg->n_routes; i++)
        if (cfg->routes[i].sink)
            check_sink_ref(ld, "route sink", cfg->routes[i].sink, ld->route_sink_at[i], &cfg->routes[i].sink_index);
    if (cfg->relay.dead_letter_sink)
        check_sink_ref(ld, "dead_letter_sink", cfg->relay.dead_letter_sink, VAL_AT("relay.dead_letter_sink"), NULL);
    /* A sink without a name was reported already; no default is derived then. */
    bool all_named = true;
    for (size_t i = 0; i < cfg->n_sinks; i++)
        all_named = all_named && cfg->sinks[i].name;
    if (cfg->default_sink) {
        check_sink_ref(ld, "default_sink", cfg->default_sink, VAL_AT("default_sink"), NULL);
    } else if (all_named && cfg->n_sinks == 1) {
        cfg->default_sink = ob_xstrdup(cfg->sinks[0].name);
    } else if (all_named && cfg->n_sinks > 1) {
        struct ob_buf names = {0};
        put_sink_names(&names, cfg);
        report(ld, KEY_AT("sinks"), "several sinks are defined but 'default_sink' is not set (%s)",
               ob_buf_cstr(&names));
        ob_buf_free(&names);
    }
out:;
#undef IDX
#undef KEY_AT
#undef VAL_AT
#undef IS_SET
}

static void report_yaml_error(struct loader *ld, const yaml_parser_t *parser, const char *yaml, size_t len)
{
    struct ob_config_pos at = mark_pos(parser->problem_mark);
    if (parser->error == YAML_READER_ERROR) {
        /* The reader fails before marks exist: count lines up to the byte. */
        at = (struct ob_config_pos){1, 1};
        for (size_t i = 0; i < parser->problem_offset && i < len; i++)
            at = yaml[i] == '\n' ? (struct ob_config_pos){at.line + 1, 1} : (struct ob_config_pos){at.line, at.column + 1};
        report(ld, at, "not valid UTF-8 text: %s", parser->problem);
    } else if (parser->context) {
        report(ld, at, "YAML syntax error: %s (%s started at line %d)", parser->problem, parser->context,
               (int)parser->context_mark.line + 1);
    } else {
        report(ld, at, "YAML syntax error: %s", parser->problem ? parser->problem : "cannot parse");
    }
}

static int by_position(const void *a, const void *b)
{
    const struct diag_item *x = a, *y = b;
    if (x->at.line != y->at.line)
        return x->at.line < y->at.line ? -1 : 1;
    if (x->at.column != y->at.column)
        return x->at.column < y->at.column ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void diag_fill(struct loader *ld, struct ob_config_diag *diag)
{
    qsort(ld->items, ld->n_items, sizeof ld->items[0], by_position);
    if (diag) {
        diag->lines = ob_xrealloc(diag->lines, (diag->n + ld->n_items) * sizeof diag->lines[0]);
    }
    for (size_t i = 0; i < ld->n_items; i++) {
        struct ob_buf b = {0};
        if (ld->items[i].at.line)
            ob_buf_printf(&b, "%s:%d:%d: error: %s", ld->file, ld->items[i].at.line, ld->items[i].at.column,
                          ld->items[i].msg);
        else
            ob_buf_printf(&b, "%s: error: %s", ld->file, ld->items[i].msg);
        free(ld->items[i].msg);
        if (diag)
            diag->lines[diag->n++] = ob_buf_steal(&b);
        ob_buf_free(&b);
    }
    free(ld->items);
    ld->items = NULL;
    ld->n_items = 0;
}

static void load_document(struct loader *ld, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    bool have_doc = false, have_extra = false;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(ld, &parser, yaml, len);
        goto out;
    }
    have_doc = true;
    ld->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        report(ld, (struct ob_config_pos){1, 1}, "the file is empty (expected a mapping with at least 'table' and 'sinks')");
        goto out;
    }
    ld->root = mark_pos(root->start_mark);
    if (root->type != YAML_MAPPING_NODE) {
        report(ld, ld->root, "the top level must be a mapping of keys like 'table' and 'sinks', got %s", kind(root));
        goto out;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        report_yaml_error(ld, &parser, yaml, len);
    } else {
        have_extra = true;
        yaml_node_t *next = yaml_document_get_root_node(&extra);
        if (next)
            report(ld, mark_pos(next->start_mark), "only one YAML document is allowed");
    }
    struct walk w;
    walk_init(&w, ob_config_keys, ob_config_n_keys, "");
    w.base = ld->cfg;
    walk_map(ld, &w, root, "");
    check_required(ld, &w, ld->root);
    apply_defaults(ld, &w);
    check_config(ld, &w);
    walk_done(&w);
out:
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    ld->doc = NULL;
    yaml_parser_delete(&parser);
}

enum ob_err ob_config_load_string(const char *name, const char *yaml, size_t len, const struct ob_sink_catalogue *sinks,
                                  struct ob_config **out, struct ob_config_diag *diag)
{
    struct loader ld = {.file = name, .sinks = sinks};
    ld.cfg = ob_xcalloc(1, sizeof *ld.cfg);
    ld.cfg->path = ob_xstrdup(name);
    ld.cfg->sink_types = sinks;
    load_document(&ld, yaml, len);
    free(ld.sink_name_at);
    free(ld.route_sink_at);
    *out = NULL;
    if (ld.n_items) {
        diag_fill(&ld, diag);
        ob_config_free(ld.cfg);
        return OB_ERR_CONFIG;
    }
    *out = ld.cfg;
    return OB_OK;
}

enum ob_err ob_config_load(const char *path, const struct ob_sink_catalogue *sinks, struct ob_config **out,
                           struct ob_config_diag *diag)
{
    struct ob_buf text = {0};
    enum ob_err rc = OB_ERR_CONFIG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    while (!err) {
        ob_buf_reserve(&text, 65536);
        ssize_t n = read(fd, text.data + text.len, text.cap - text.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            err = errno;
        if (n <= 0)
            break;
        text.len += (size_t)n;
        text.data[text.len] = '\0';
    }
    if (fd >= 0)
        close(fd);
    *out = NULL;
    if (err) {
        struct loader ld = {.file = path};
        report(&ld, (struct ob_config_pos){0, 0}, "cannot read: %s", strerror(err));
        diag_fill(&ld, diag);
        goto out;
    }
    rc = ob_config_load_string(path, ob_buf_cstr(&text), text.len, sinks, out, diag);
out:
    ob_buf_free(&text);
    return rc;
}

static void free_fields(const struct ob_config_key *keys, size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        const struct ob_config_key *k = &keys[i];
        if (k->size && (k->type == OB_CT_STRING || k->type == OB_CT_URL || k->type == OB_CT_TEMPLATE)) {
            char **p = (char **)(void *)((char *)base + k->offset);
            free(*p);
            *p = NULL;
        }
    }
}

void ob_config_free(struct ob_config *cfg)
{
    if (!cfg)
        return;
    free_fields(ob_config_keys, ob_config_n_keys, cfg);
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        struct ob_config_sink *s = &cfg->sinks[i];
        for (size_t j = 0; j < s->n_opts; j++) {
            free(s->opts[j].str);
            map_free(&s->opts[j].map);
        }
        free(s->opts);
        free(s->name);
        free(s->type);
    }
    free(cfg->sinks);
    /* Every destination spelling shares one field: freed once, by name. */
    for (size_t i = 0; i < cfg->n_routes; i++) {
        free(cfg->routes[i].match_message_type);
        free(cfg->routes[i].match_aggregate_type);
        free(cfg->routes[i].sink);
        free(cfg->routes[i].destination);
    }
    free(cfg->routes);
    free(cfg->path);
    free(cfg);
}

/* Whether key k holds the same value in a and b. A key without a field of
 * its own or without a plain value (a list, a map) is taken as changed:
 * nothing here can tell that it was not. */
static bool same_value(const struct ob_config_key *k, const struct ob_config *a, const struct ob_config *b)
{
    if (!k->size)
        return false;
    const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
    switch (k->type) {
    case OB_CT_STRING:
    case OB_CT_URL:
    case OB_CT_TEMPLATE: {
        const char *sa, *sb;
        memcpy(&sa, fa, sizeof sa);
        memcpy(&sb, fb, sizeof sb);
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
    }
    case OB_CT_NUMBER: {
        double da, db;
        memcpy(&da, fa, sizeof da);
        memcpy(&db, fb, sizeof db);
        return da == db;
    }
    case OB_CT_BOOL:
    case OB_CT_INT:
    case OB_CT_DURATION:
    case OB_CT_ENUM:
        return memcmp(fa, fb, k->size) == 0;
    case OB_CT_MAP:
    case OB_CT_SECTION:
    case OB_CT_SINKS:
    case OB_CT_ROUTES:
        break;
    }
    return false;
}

size_t ob_config_restart_changes(const struct ob_config *running, const struct ob_config *loaded,
                                 const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        const struct ob_config_key *k = &ob_config_keys[i];
        if (k->type == OB_CT_SECTION || (k->flags & OB_CK_RELOAD) || same_value(k, running, loaded))
            continue;
        if (n < max)
            names[n] = k->path;
        n++;
    }
    return n;
}

void ob_config_diag_free(struct ob_config_diag *diag)
{
    if (!diag)
        return;
    for (size_t i = 0; i < diag->n; i++)
        free(diag->lines[i]);
    free(diag->lines);
    diag->lines = NULL;
    diag->n = 0;
}

const struct ob_config_sink *ob_config_find_sink(const struct ob_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].name && strcmp(cfg->sinks[i].name, name) == 0)
            return &cfg->sinks[i];
    return NULL;
}

const char *ob_sink_opt_str(const struct ob_config_sink *sink, const char *key)
{
    const struct ob_sink_opt *o = opt_find(sink, key);
    return o && o->set ? o->str : NULL;
}

bool ob_sink_opt_bool(const struct ob_config_sink *sink, const char *key)
{
    const struct ob_sink_opt *o = opt_find(sink, key);
    return o && o->set && o->b;
}

int64_t ob_sink_opt_int(const struct ob_config_sink *sink, const char *key)
{
    const struct ob_sink_opt *o = opt_find(sink, key);
    return o && o->set ? o->i : 0;
}

int64_t ob_sink_opt_duration_ms(const struct ob_config_sink *sink, const char *key)
{
    return ob_sink_opt_int(sink, key);
}

const struct ob_config_map *ob_sink_opt_map(const struct ob_config_sink *sink, const char *key)
{
    static const struct ob_config_map empty;
    const struct ob_sink_opt *o = opt_find(sink, key);
    return o && o->set ? &o->map : &empty;
}

bool ob_sink_opt_is_set(const struct ob_config_sink *sink, const char *key)
{
    const struct ob_sink_opt *o = opt_find(sink, key);
    return o && o->line > 0;
}
