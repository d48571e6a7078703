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
    OB_CT_SINKS,      /* the list of sinks, keys in a catalogue's schemas */
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

/* 1-based position in the file; line 0: none (a default, the file as a whole). */
struct ob_config_pos {
    int line, column;
};

struct ob_config_sink;
/* One sink section being loaded (config.c): what its type's check hook
 * reads besides the section's options, and where it reports. */
struct ob_sink_check;

/* Whether the file gives key a value: a good one (set, unlike an empty
 * one) or a bad one (its own error was reported: no need for another). */
bool ob_sink_check_given(const struct ob_sink_check *c, const char *key);
/* Where the file gives key's value, line 0 when it does not. */
struct ob_config_pos ob_sink_check_value_at(const struct ob_sink_check *c, const char *key);
/* How messages name the section: "TYPE sink 'events'", "TYPE sink #2". */
const char *ob_sink_check_owner(const struct ob_sink_check *c);
/* Reports MESSAGE at `at`, or at the section's list item when at.line is 0. */
void ob_sink_check_error(struct ob_sink_check *c, struct ob_config_pos at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One sink type as the loader knows it. Core names no sink type: each
 * sink fills its own (sinks/), and the list of them, a catalogue, is
 * handed to the loader (cmd/). */
struct ob_sink_schema {
    const char *type;                  /* the config `type` */
    const char *doc;
    const struct ob_config_key *keys;  /* the type's own; ob_sink_common_keys come before them */
    size_t n_keys;
    /* Rules between the section's keys, once each was typed and
     * defaulted: reports through c, connects nowhere and writes nothing
     * (it may read a file the section names, as a TLS setup does). NULL: none. */
    void (*check)(const struct ob_config_sink *sink, struct ob_sink_check *c);
};

/* The sink types a build has, in the order messages and docs list them. */
struct ob_sink_catalogue {
    const struct ob_sink_schema *const *types;
    size_t n;
};

extern const struct ob_config_key ob_config_keys[];
extern const size_t ob_config_n_keys;
/* Every sink has these keys, first. */
extern const struct ob_config_key ob_sink_common_keys[];
extern const size_t ob_sink_n_common;
extern const struct ob_config_key ob_route_keys[];
extern const size_t ob_route_n_keys;

/* Key i of a sink of this type: the common keys, then the type's own. */
const struct ob_config_key *ob_sink_key(const struct ob_sink_schema *schema, size_t i);
size_t ob_sink_n_keys(const struct ob_sink_schema *schema);

const struct ob_sink_schema *ob_sink_catalogue_find(const struct ob_sink_catalogue *catalogue, const char *type);

struct ob_buf;
/* A key's type in words: for an error ("a string", "one of key, shard or
 * none") or, with doc, for the reference's type column ("string", "`key`,
 * `shard`, `none`"). */
void ob_config_put_type(struct ob_buf *b, const struct ob_config_key *k, bool doc);
/* The largest unit that divides ms evenly: "10m", "1500ms", "0". */
void ob_config_format_duration(struct ob_buf *b, int64_t ms);

#endif
