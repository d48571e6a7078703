/* What the schema tables print: the `outboxd check` summary of a loaded
 * configuration, the Markdown reference and the commented example. All
 * three walk the same tables as the loader, so they list every key. */
#include <inttypes.h>
#include <string.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/config_schema.h"
#include "core/url.h"

static void put_field(struct ob_buf *b, const struct ob_config_key *k, const void *base)
{
    const char *field = (const char *)base + k->offset;
    int small = 0;
    int64_t big = 0;
    if (k->size == sizeof small)
        memcpy(&small, field, sizeof small);
    else if (k->size == sizeof big)
        memcpy(&big, field, sizeof big);
    if (k->size == sizeof small)
        big = small;
    switch (k->type) {
    case OB_CT_STRING:
    case OB_CT_URL:
    case OB_CT_TEMPLATE: {
        const char *s;
        memcpy(&s, field, sizeof s);
        if (!s)
            ob_buf_puts(b, "(not set)");
        else if (k->flags & OB_CK_SECRET)
            ob_buf_puts(b, "(set)");
        else if (k->type == OB_CT_URL)
            ob_url_put_redacted(b, s);
        else
            ob_buf_puts(b, s);
        break;
    }
    case OB_CT_BOOL: {
        bool v;
        memcpy(&v, field, sizeof v);
        ob_buf_puts(b, v ? "true" : "false");
        break;
    }
    case OB_CT_INT:
        ob_buf_printf(b, "%" PRId64, big);
        break;
    case OB_CT_DURATION:
        ob_config_format_duration(b, big);
        break;
    case OB_CT_ENUM:
        ob_buf_puts(b, k->values[small]);
        break;
    case OB_CT_NUMBER: {
        double d;
        memcpy(&d, field, sizeof d);
        ob_buf_printf(b, "%g", d);
        break;
    }
    case OB_CT_MAP:
    case OB_CT_SECTION:
    case OB_CT_SINKS:
    case OB_CT_ROUTES:
        break;
    }
}

/* Map values may carry credentials (an Authorization header, a SASL
 * property): only the keys are shown. */
static void put_opt(struct ob_buf *b, const struct ob_config_key *k, const struct ob_sink_opt *o)
{
    if (k->type == OB_CT_MAP) {
        for (size_t i = 0; i < o->map.n; i++)
            ob_buf_printf(b, "%s%s", i ? ", " : "keys ", o->map.pairs[i].key);
    } else if (k->flags & OB_CK_SECRET) {
        ob_buf_puts(b, "(set)");
    } else if (k->type == OB_CT_BOOL) {
        ob_buf_puts(b, o->b ? "true" : "false");
    } else if (k->type == OB_CT_INT) {
        ob_buf_printf(b, "%" PRId64, o->i);
    } else if (k->type == OB_CT_DURATION) {
        ob_config_format_duration(b, o->i);
    } else if (k->type == OB_CT_URL) {
        ob_url_put_redacted(b, o->str);
    } else {
        ob_buf_puts(b, *o->str ? o->str : "\"\"");
    }
}

void ob_config_print_summary(const struct ob_config *cfg, FILE *f)
{
    struct ob_buf b = {0};
    ob_buf_printf(&b, "configuration %s is valid\n", cfg->path);
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        const struct ob_config_key *k = &ob_config_keys[i];
        const char *dot = strchr(k->path, '.');
        if (k->type == OB_CT_SECTION && !dot) {
            ob_buf_cat(&b, k->path, ":\n", NULL);
        } else if (k->type == OB_CT_SINKS) {
            ob_buf_printf(&b, "sinks: %zu\n", cfg->n_sinks);
            for (size_t s = 0; s < cfg->n_sinks; s++) {
                const struct ob_config_sink *sink = &cfg->sinks[s];
                ob_buf_printf(&b, "  %s (%s)\n", sink->name, sink->type);
                for (size_t j = 0; j < sink->n_opts; j++) {
                    const struct ob_sink_opt *o = &sink->opts[j];
                    if (!o->set || !strcmp(o->key, "name") || !strcmp(o->key, "type"))
                        continue;
                    ob_buf_printf(&b, "    %s: ", o->key);
                    put_opt(&b, ob_sink_key(sink->schema, j), o);
                    ob_buf_putc(&b, '\n');
                }
            }
        } else if (k->type == OB_CT_ROUTES) {
            ob_buf_printf(&b, "routes: %zu (first match wins)\n", cfg->n_routes);
            for (size_t r = 0; r < cfg->n_routes; r++) {
                const struct ob_config_route *route = &cfg->routes[r];
                ob_buf_printf(&b, "  %zu. messageType %s, aggregateType %s -> %s", r + 1,
                              route->match_message_type ? route->match_message_type : "*",
                              route->match_aggregate_type ? route->match_aggregate_type : "*", route->sink);
                if (route->destination)
                    ob_buf_printf(&b, " \"%s\"", route->destination);
                ob_buf_putc(&b, '\n');
            }
        } else if (k->type != OB_CT_SECTION) {
            ob_buf_printf(&b, "%s%s: ", dot ? "  " : "", dot ? dot + 1 : k->path);
            put_field(&b, k, cfg);
            ob_buf_putc(&b, '\n');
        }
    }
    fputs(ob_buf_cstr(&b), f);
    ob_buf_free(&b);
}

/* The type column: the type's name, its floor and ceiling, whether it is secret. */
static void put_doc_type(struct ob_buf *b, const struct ob_config_key *k)
{
    ob_config_put_type(b, k, true);
    if (k->type == OB_CT_INT && k->max != INT64_MAX)
        ob_buf_printf(b, " %" PRId64 "–%" PRId64, k->min, k->max);
    else if (k->type == OB_CT_INT || k->type == OB_CT_NUMBER)
        ob_buf_printf(b, " ≥ %" PRId64, k->min);
    if (k->type == OB_CT_DURATION && k->min) {
        ob_buf_puts(b, " ≥ ");
        ob_config_format_duration(b, k->min);
    }
    if (k->flags & OB_CK_SECRET)
        ob_buf_puts(b, ", secret");
}

static void put_doc_default(struct ob_buf *b, const struct ob_config_key *k)
{
    if (k->flags & OB_CK_REQUIRED)
        ob_buf_puts(b, "**required**");
    else if (k->def && *k->def)
        ob_buf_printf(b, "`%s`", k->def);
    else if (k->def)
        ob_buf_puts(b, "`\"\"`");
    else if (k->def_doc)
        ob_buf_puts(b, k->def_doc);
    else
        ob_buf_puts(b, "not set");
}

/* The keys SIGHUP applies, from the schema: "`a`, `b` and `c`". */
static void put_reloadable_keys(struct ob_buf *b, const char *quote)
{
    size_t n = 0, left = 0;
    for (size_t i = 0; i < ob_config_n_keys; i++)
        left += (ob_config_keys[i].flags & OB_CK_RELOAD) != 0;
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        if (!(ob_config_keys[i].flags & OB_CK_RELOAD))
            continue;
        left--;
        ob_buf_printf(b, "%s%s%s%s", n++ ? (left ? ", " : " and ") : "", quote, ob_config_keys[i].path, quote);
    }
}

static void put_doc_reload(struct ob_buf *b, const struct ob_config_key *k)
{
    if (k->flags & OB_CK_RELOAD)
        ob_buf_puts(b, " Applied by SIGHUP.");
}

/* One reference, two renderings (docs/CONFIGURATION.md and the man page
 * outboxd.yaml(5)). Text handed to a format carries Markdown's inline
 * markup, `code` and **strong**, which the man format translates. */
struct doc_format {
    void (*begin)(struct ob_buf *b, const char *date);
    void (*para)(struct ob_buf *b, const char *text);
    void (*list)(struct ob_buf *b, const char *const *items, size_t n);
    void (*keys_part)(struct ob_buf *b);                             /* the per-key part starts */
    void (*heading)(struct ob_buf *b, int level, const char *name);  /* 2: a top-level key, 3: a sink type */
    void (*table_begin)(struct ob_buf *b);
    void (*key)(struct ob_buf *b, const char *path, const char *type, const char *def, const char *doc);
    void (*table_end)(struct ob_buf *b);
    void (*end)(struct ob_buf *b);
};

/* Markdown table cells: a '|' would end the cell. */
static void put_cell(struct ob_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            ob_buf_putc(b, '\\');
        ob_buf_putc(b, *s);
    }
}

static void md_begin(struct ob_buf *b, const char *date)
{
    (void)date;
    ob_buf_puts(b, "# outboxd configuration reference\n\n"
                   "<!-- Generated from src/core/config_schema.c and the sinks' key tables (src/sinks/)"
                   " by `build/tools/config_reference markdown`; do not edit. -->\n\n");
}

static void md_para(struct ob_buf *b, const char *text)
{
    ob_buf_cat(b, text, "\n\n", NULL);
}

static void md_list(struct ob_buf *b, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ob_buf_cat(b, "- ", items[i], "\n", NULL);
    ob_buf_putc(b, '\n');
}

static void md_nothing(struct ob_buf *b)
{
    (void)b;
}

static void md_heading(struct ob_buf *b, int level, const char *name)
{
    ob_buf_printf(b, "%.*s `%s`\n\n", level, "###", name);
}

static void md_table_begin(struct ob_buf *b)
{
    ob_buf_puts(b, "| Key | Type | Default | Description |\n|---|---|---|---|\n");
}

static void md_key(struct ob_buf *b, const char *path, const char *type, const char *def, const char *doc)
{
    ob_buf_printf(b, "| `%s` | ", path);
    put_cell(b, type);
    ob_buf_puts(b, " | ");
    put_cell(b, def);
    ob_buf_puts(b, " | ");
    put_cell(b, doc);
    ob_buf_puts(b, " |\n");
}

static void md_table_end(struct ob_buf *b)
{
    ob_buf_putc(b, '\n');
}

static const struct doc_format markdown = {
    md_begin, md_para, md_list, md_nothing, md_heading, md_table_begin, md_key, md_table_end, md_nothing,
};

/* Text as roff: `code` (never hyphenated) and **strong** in bold, the
 * characters roff would read as requests or escapes quoted, '-' in code a
 * minus (what one types), every non-ASCII character by its code point. */
static void put_roff(struct ob_buf *b, const char *s)
{
    bool code = false, strong = false;
    if (*s == '.' || *s == '\'')
        ob_buf_puts(b, "\\&");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '`') {
            code = !code;
            ob_buf_puts(b, code ? "\\fB\\%" : "\\fR");
        } else if (p[0] == '*' && p[1] == '*') {
            strong = !strong;
            ob_buf_puts(b, strong ? "\\fB" : "\\fR");
            p++;
        } else if (*p == '\\') {
            ob_buf_puts(b, "\\e");
        } else if (*p == '-' && code) {
            ob_buf_puts(b, "\\-");
        } else if (*p >= 0xc0) {
            int more = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : 1;
            uint32_t cp = *p & (0x3f >> more);
            for (int i = 0; i < more && (p[1] & 0xc0) == 0x80; i++)
                cp = cp << 6 | (*++p & 0x3f);
            ob_buf_printf(b, "\\[u%04" PRIX32 "]", cp);
        } else {
            ob_buf_putc(b, (char)*p);
        }
    }
}

static void man_begin(struct ob_buf *b, const char *date)
{
    ob_buf_printf(b, ".\\\" Generated from src/core/config_schema.c and the sinks' key tables (src/sinks/)\n"
                     ".\\\" by `build/tools/config_reference man DATE`; do not edit.\n"
                     ".TH OUTBOXD.YAML 5 %s outboxd \"File Formats Manual\"\n", date);
    ob_buf_puts(b, ".SH NAME\noutboxd.yaml \\- configuration file of the outboxd relay\n"
                   ".SH SYNOPSIS\n/etc/outboxd/outboxd.yaml\n"
                   ".SH DESCRIPTION\n");
}

/* A paragraph right after a heading needs no .PP (and mandoc warns of one). */
static void man_para(struct ob_buf *b, const char *text)
{
    const char *s = ob_buf_cstr(b);
    const char *last = s + b->len - 1;
    while (last > s && last[-1] != '\n')
        last--;
    if (strncmp(last, ".SH ", 4) != 0 && strncmp(last, ".SS ", 4) != 0)
        ob_buf_puts(b, ".PP\n");
    put_roff(b, text);
    ob_buf_putc(b, '\n');
}

static void man_list(struct ob_buf *b, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ob_buf_puts(b, ".IP \\(bu 2\n");
        put_roff(b, items[i]);
        ob_buf_putc(b, '\n');
    }
}

static void man_keys_part(struct ob_buf *b)
{
    ob_buf_puts(b, ".SH KEYS\n");
}

static void man_heading(struct ob_buf *b, int level, const char *name)
{
    ob_buf_puts(b, ".SS ");
    if (level > 2)
        ob_buf_puts(b, "sinks: ");
    put_roff(b, name);
    ob_buf_putc(b, '\n');
}

static void man_key(struct ob_buf *b, const char *path, const char *type, const char *def, const char *doc)
{
    ob_buf_puts(b, ".TP\n\\fB");
    put_roff(b, path);
    ob_buf_puts(b, "\\fR (");
    put_roff(b, type);
    ob_buf_puts(b, ")\n");
    put_roff(b, doc);
    ob_buf_puts(b, "\nDefault: ");
    put_roff(b, def);
    ob_buf_puts(b, ".\n");
}

static void man_end(struct ob_buf *b)
{
    ob_buf_puts(b, ".SH FILES\n"
                   ".TP\n/etc/outboxd/outboxd.yaml\nThe configuration of the packaged service.\n"
                   ".TP\n/usr/share/doc/outboxd/CONFIGURATION.md\nThis reference as Markdown.\n"
                   ".SH ENVIRONMENT\n"
                   ".TP\n\\fBOUTBOXD_CONFIG\\fR\nThe file read when no \\fB\\-c\\fR is given.\n"
                   ".SH SEE ALSO\n\\fBoutboxd\\fR(8)\n");
}

static const struct doc_format man = {
    man_begin, man_para, man_list, man_keys_part, man_heading, md_nothing, man_key, md_nothing, man_end,
};

static void put_doc_table(struct ob_buf *b, const struct doc_format *fmt, const struct ob_config_key *keys,
                          size_t from, size_t n, const char *prefix)
{
    size_t plen = strlen(prefix);
    fmt->table_begin(b);
    for (size_t i = from; i < n; i++) {
        const struct ob_config_key *k = &keys[i];
        if (k->type == OB_CT_SECTION && !strchr(k->path, '.') && plen)
            continue;
        if (plen && (strncmp(k->path, prefix, plen) != 0 || k->path[plen] != '.'))
            continue;
        struct ob_buf type = {0}, def = {0}, doc = {0};
        put_doc_type(&type, k);
        put_doc_default(&def, k);
        ob_buf_puts(&doc, k->doc);
        put_doc_reload(&doc, k);
        fmt->key(b, k->path, ob_buf_cstr(&type), ob_buf_cstr(&def), ob_buf_cstr(&doc));
        ob_buf_free(&type);
        ob_buf_free(&def);
        ob_buf_free(&doc);
    }
    fmt->table_end(b);
}

static void write_reference(FILE *f, const struct ob_sink_catalogue *sinks, const struct doc_format *fmt,
                            const char *date)
{
    struct ob_buf b = {0}, sighup = {0};
    fmt->begin(&b, date);
    fmt->para(&b, "outboxd reads one YAML file: `-c FILE`, else `$OUTBOXD_CONFIG`, else "
                  "`/etc/outboxd/outboxd.yaml`. `outboxd check -c FILE` validates it and prints every problem as "
                  "`FILE:LINE:COLUMN: error: MESSAGE`.");
    ob_buf_puts(&sighup, "SIGHUP reads the file again and applies ");
    put_reloadable_keys(&sighup, "`");
    ob_buf_puts(&sighup, " (with the keys of every sink and route). Every other key is read at start: a reload "
                         "that changes one logs a warning naming it, and the new value takes effect on the next "
                         "restart.");
    const char *const rules[] = {
        "Strict: an unknown key, a duplicate key, a wrong type or a bad value is an error.",
        "`${VAR}` and `${VAR:-default}` are replaced from the environment in every value "
        "(the default also applies when `VAR` is empty); `$$` is a literal `$`. An unset variable "
        "without a default is an error.",
        "A key without a value, or whose value is empty after expansion, is not set: its default applies.",
        "Durations are an integer and a unit: `250ms`, `5s`, `10m`, `2h`, `7d`; `0` needs no unit.",
        "Booleans are `true` or `false`.",
        "Templates put message attributes in `{braces}`: `{messageType}`, `{aggregateType}`, "
        "`{aggregateId}`, `{pk}`, `{table}`, ... A missing attribute expands to an empty string.",
        "Secrets never appear in messages, logs or `check` output; give them through `${VAR}`.",
        ob_buf_cstr(&sighup),
    };
    fmt->list(&b, rules, sizeof rules / sizeof rules[0]);
    fmt->keys_part(&b);
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        const struct ob_config_key *k = &ob_config_keys[i];
        if (strchr(k->path, '.'))
            continue;
        struct ob_buf doc = {0};
        ob_buf_puts(&doc, k->doc);
        put_doc_reload(&doc, k);
        fmt->heading(&b, 2, k->path);
        fmt->para(&b, ob_buf_cstr(&doc));
        ob_buf_free(&doc);
        if (k->type == OB_CT_SECTION) {
            put_doc_table(&b, fmt, ob_config_keys, 0, ob_config_n_keys, k->path);
        } else if (k->type == OB_CT_SINKS) {
            fmt->para(&b, "Keys of every sink:");
            put_doc_table(&b, fmt, ob_sink_common_keys, 0, ob_sink_n_common, "");
            for (size_t s = 0; s < sinks->n; s++) {
                const struct ob_sink_schema *sc = sinks->types[s];
                struct ob_buf name = {0};
                ob_buf_cat(&name, "type: ", sc->type, NULL);
                fmt->heading(&b, 3, ob_buf_cstr(&name));
                ob_buf_free(&name);
                fmt->para(&b, sc->doc);
                if (!sc->n_keys)
                    fmt->para(&b, "No keys of its own.");
                else
                    put_doc_table(&b, fmt, sc->keys, 0, sc->n_keys, "");
            }
        } else if (k->type == OB_CT_ROUTES) {
            put_doc_table(&b, fmt, ob_route_keys, 0, ob_route_n_keys, "");
        } else {
            put_doc_table(&b, fmt, ob_config_keys, i, i + 1, "");
        }
    }
    fmt->end(&b);
    fputs(ob_buf_cstr(&b), f);
    ob_buf_free(&sighup);
    ob_buf_free(&b);
}

void ob_config_write_reference(FILE *f, const struct ob_sink_catalogue *sinks)
{
    write_reference(f, sinks, &markdown, NULL);
}

void ob_config_write_man(FILE *f, const struct ob_sink_catalogue *sinks, const char *date)
{
    write_reference(f, sinks, &man, date);
}

/* A YAML scalar as written in the example: quoted unless plainly safe. */
static void put_yaml_value(struct ob_buf *b, const struct ob_config_key *k, const char *v)
{
    bool plain = *v && k->type != OB_CT_TEMPLATE;
    for (const char *p = v; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:-@,", *p) != NULL;
    if (plain || k->type == OB_CT_MAP) {
        ob_buf_puts(b, v);
        return;
    }
    ob_buf_putc(b, '"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            ob_buf_putc(b, '\\');
        ob_buf_putc(b, *p);
    }
    ob_buf_putc(b, '"');
}

struct example {
    struct ob_buf b;
    bool commented;              /* this whole block is commented out */
    const char *dash;            /* "- " before the next key line of a list item */
};

/* A key line. A key commented out in a live block has its "# " after the
 * indentation, so deleting those two characters is all it takes to use it. */
static void put_indent(struct example *ex, int depth, bool comment)
{
    int spaces = depth * 2 - (ex->dash ? 2 : 0);
    if (ex->commented)
        ob_buf_puts(&ex->b, "# ");
    for (int i = 0; i < spaces; i++)
        ob_buf_putc(&ex->b, ' ');
    if (comment && !ex->commented)
        ob_buf_puts(&ex->b, "# ");
    if (ex->dash)
        ob_buf_puts(&ex->b, ex->dash);
    ex->dash = NULL;
}

static void put_comment(struct example *ex, int depth, const struct ob_config_key *k)
{
    if (ex->dash)
        return;
    if (ex->commented)
        ob_buf_puts(&ex->b, "# ");
    for (int i = 0; i < depth * 2; i++)
        ob_buf_putc(&ex->b, ' ');
    ob_buf_printf(&ex->b, "# %s", k->doc);
    if (k->flags & OB_CK_REQUIRED)
        ob_buf_puts(&ex->b, " Required.");
    else if (!k->def && k->def_doc)
        ob_buf_printf(&ex->b, " Default: %s.", k->def_doc);
    ob_buf_putc(&ex->b, '\n');
}

/* overrides: key, value, ..., NULL: values shown live instead of the schema's. */
static void put_example_keys(struct example *ex, const struct ob_config_key *keys, size_t n, const char *prefix,
                             int depth, const char *const *overrides);

static void put_example_key(struct example *ex, const struct ob_config_key *k, const struct ob_config_key *keys,
                            size_t n, int depth, const char *const *overrides)
{
    const char *name = strrchr(k->path, '.') ? strrchr(k->path, '.') + 1 : k->path;
    if (k->type == OB_CT_SECTION) {
        put_comment(ex, depth, k);
        put_indent(ex, depth, false);
        ob_buf_printf(&ex->b, "%s:\n", name);
        put_example_keys(ex, keys, n, k->path, depth + 1, overrides);
        return;
    }
    const char *v = (k->flags & OB_CK_REQUIRED) || !k->def ? k->example : k->def;
    bool live = k->flags & OB_CK_REQUIRED;
    for (size_t i = 0; overrides && overrides[i]; i += 2) {
        if (!strcmp(k->path, overrides[i])) {
            v = overrides[i + 1];
            live = true;
        }
    }
    if (!v)
        return;
    put_comment(ex, depth, k);
    put_indent(ex, depth, !live);
    ob_buf_printf(&ex->b, "%s: ", name);
    put_yaml_value(&ex->b, k, v);
    ob_buf_putc(&ex->b, '\n');
}

static void put_example_keys(struct example *ex, const struct ob_config_key *keys, size_t n, const char *prefix,
                             int depth, const char *const *overrides)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < n; i++) {
        const char *p = keys[i].path;
        if (plen && (strncmp(p, prefix, plen) != 0 || p[plen] != '.'))
            continue;
        if (strchr(plen ? p + plen + 1 : p, '.'))
            continue;
        put_example_key(ex, &keys[i], keys, n, depth, overrides);
    }
}

void ob_config_write_example(FILE *f, const struct ob_sink_catalogue *sinks)
{
    struct example ex = {0};
    ob_buf_puts(&ex.b,
                "# outboxd configuration example.\n"
                "# Generated from src/core/config_schema.c and the sinks' key tables (src/sinks/)\n"
                "# by `build/tools/config_reference example`;\n"
                "# docs/CONFIGURATION.md describes every key. Keys that are commented out show\n"
                "# their default or an example value. ${VAR} and ${VAR:-default} come from the\n"
                "# environment: keep secrets there. SIGHUP applies only these keys (and\n"
                "# those of every sink and route); the others take effect on restart:\n# ");
    put_reloadable_keys(&ex.b, "");
    ob_buf_puts(&ex.b, ".\n");
    for (size_t i = 0; i < ob_config_n_keys; i++) {
        const struct ob_config_key *k = &ob_config_keys[i];
        if (strchr(k->path, '.'))
            continue;
        ob_buf_putc(&ex.b, '\n');
        if (k->type == OB_CT_SINKS) {
            put_comment(&ex, 0, k);
            ob_buf_puts(&ex.b, "sinks:\n");
            /* A live sink of the first type; the others show each type's keys. */
            for (size_t s = 0; s < sinks->n; s++) {
                const struct ob_sink_schema *sc = sinks->types[s];
                bool live = s == 0;
                ex.commented = !live;
                ob_buf_printf(&ex.b, "%s  # %s\n", live ? "" : "\n", sc->doc);
                ex.dash = "- ";
                const char *const overrides[] = {"name", live ? "events" : sc->type, "type", sc->type, NULL};
                put_example_keys(&ex, ob_sink_common_keys, ob_sink_n_common, "", 2, overrides);
                put_example_keys(&ex, sc->keys, sc->n_keys, "", 2, overrides);
                ex.commented = false;
            }
        } else if (k->type == OB_CT_ROUTES) {
            put_comment(&ex, 0, k);
            ex.commented = true;
            ob_buf_puts(&ex.b, "# routes:\n");
            ex.dash = "- ";
            static const char *const overrides[] = {"topic", "orders.{messageType}", NULL};
            put_example_keys(&ex, ob_route_keys, ob_route_n_keys, "", 2, overrides);
            ex.commented = false;
        } else {
            put_example_key(&ex, k, ob_config_keys, ob_config_n_keys, 0, NULL);
        }
    }
    fputs(ob_buf_cstr(&ex.b), f);
    ob_buf_free(&ex.b);
}
