/* The configuration schema: one row per key. The loader, the `check`
 * summary and the generated reference and example read these tables and
 * nothing else, so a key added here is parsed, validated, defaulted and
 * documented at once. */
#ifndef OB_CORE_CONFIG_SCHEMA_H
#define OB_CORE_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ob_ct {
    OB_CT_STRING,
    OB_CT_URL,        /* a string starting with one of `values` (schemes) */
    OB_CT_TEMPLATE,   /* a string with {name} placeholders */
    OB_CT_BOOL,
    OB_CT_INT,        /* decimal, within [min, max] */
    OB_CT_NUMBER,     /* a double, within [min, max] */
    OB_CT_DURATION,   /* milliseconds, within [min, max] */
    OB_CT_ENUM,       /* one of `values`, stored as its index */
    OB_CT_MAP,        /* string → string */
    OB_CT_SECTION,    /* a mapping of the keys below this path */
    OB_CT_SINKS,      /* the list of sinks, keys in ob_sink_schemas */
    OB_CT_ROUTES,     /* the list of routes, keys in ob_route_keys */
};

#define OB_CK_REQUIRED 0x1u
#define OB_CK_SECRET   0x2u
#define OB_CK_DEST     0x4u   /* route: one of the destination spellings */
/* SIGHUP applies the key: it is read through the routing a reload replaces
 * (or is the log's). Every other key is read once at start and needs a
 * restart; the keys of sinks and routes come and go with their lists. */
#define OB_CK_RELOAD   0x8u

struct ob_config_key {
    const char *path;              /* dotted, relative to its table */
    enum ob_ct type;
    unsigned flags;
    const char *def;               /* default, written as in the file; NULL = none */
    const char *def_doc;           /* how a derived default is found, for the docs */
    int64_t min, max;              /* int, number, duration (ms) */
    const char *const *values;     /* enum values in C enum order; URL schemes */
    size_t offset, size;           /* field in the target struct; size 0 = not stored */
    const char *example;           /* shown in the generated example */
    const char *doc;
};

struct ob_sink_schema {
    const char *type;
    const char *doc;
    const struct ob_config_key *keys;  /* the common keys first, then the type's own */
    size_t n_keys;
};

extern const struct ob_config_key ob_config_keys[];
extern const size_t ob_config_n_keys;
extern const struct ob_sink_schema ob_sink_schemas[];
extern const size_t ob_sink_n_schemas;
/* The first ob_sink_n_common keys of every sink schema are these. */
extern const struct ob_config_key ob_sink_common_keys[];
extern const size_t ob_sink_n_common;
extern const struct ob_config_key ob_route_keys[];
extern const size_t ob_route_n_keys;

const struct ob_sink_schema *ob_sink_schema_find(const char *type);

struct ob_buf;
/* A key's type in words: for an error ("a string", "one of key, shard or
 * none") or, with doc, for the reference's type column ("string", "`key`,
 * `shard`, `none`"). */
void ob_config_put_type(struct ob_buf *b, const struct ob_config_key *k, bool doc);
/* The largest unit that divides ms evenly: "10m", "1500ms", "0". */
void ob_config_format_duration(struct ob_buf *b, int64_t ms);

#endif
