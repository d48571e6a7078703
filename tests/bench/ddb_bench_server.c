/* ddb_bench_server: an in-memory, single-threaded server that speaks the
 * DynamoDB and DynamoDB Streams JSON 1.0 wire protocol for the calls
 * outboxd makes, with a fixed added latency per answer.
 *
 *   ddb_bench_server --port P [--latency-ms L] [--shards N] [--seq-width W]
 *
 * A benchmark instrument, never a test double: it exists so the relay's
 * throughput can be measured without DynamoDB Local (a few hundred writes
 * per second) being the limit. It must therefore never be the bottleneck:
 * one epoll loop, keep-alive and pipelined requests, answers delayed by a
 * deadline queue instead of sleeping, parsed expressions cached, item
 * images and stream records kept serialized so a GetRecords answer is a
 * concatenation. Signatures are not verified. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "loop.h"

#define REGION "us-east-1"
#define ACCOUNT "000000000000"
#define MAX_ACTIONS 64
#define MAX_BODY (16u << 20)
#define GET_RECORDS_MAX_BYTES (1u << 20)

/* ---- errors ------------------------------------------------------------ */

enum ddb_err {
    E_OK,
    E_VALIDATION,
    E_NOT_FOUND,
    E_IN_USE,
    E_CONDITION,
    E_SERIALIZATION,
    E_UNKNOWN_OP,
};

static const char *const err_type[] = {
    [E_VALIDATION] = "ValidationException",
    [E_NOT_FOUND] = "ResourceNotFoundException",
    [E_IN_USE] = "ResourceInUseException",
    [E_CONDITION] = "ConditionalCheckFailedException",
    [E_SERIALIZATION] = "SerializationException",
    [E_UNKNOWN_OP] = "UnknownOperationException",
};

struct fail {
    enum ddb_err code;
    char msg[256];
};

__attribute__((format(printf, 3, 4))) static enum ddb_err fail(struct fail *f, enum ddb_err code, const char *fmt,
                                                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    f->code = code;
    return code;
}

/* ---- JSON output --------------------------------------------------------- */

static int dump_to_buf(const char *p, size_t n, void *data)
{
    ob_buf_append(data, p, n);
    return 0;
}

static void put_json(struct ob_buf *b, const json_t *v)
{
    json_dump_callback(v, dump_to_buf, b, JSON_COMPACT);
}

static void put_str(struct ob_buf *b, const char *s)
{
    ob_buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            ob_buf_putc(b, '\\');
            ob_buf_putc(b, (char)*p);
        } else if (*p < 0x20) {
            ob_buf_printf(b, "\\u%04x", *p);
        } else {
            ob_buf_putc(b, (char)*p);
        }
    }
    ob_buf_putc(b, '"');
}

/* ---- request documents ------------------------------------------------------
 * A flat token tree over the request body, jsmn-style: one array per call,
 * strings left escaped in place. jansson needs ~12 us to load one
 * UpdateItem body on the benchmark machine, more than everything else the
 * call costs, so the item operations read requests through this and keep
 * items as JSON text; jansson serves only the rare table calls. */

enum { J_OBJ, J_ARR, J_STR, J_PRIM };

struct jtok {
    uint8_t type;
    uint32_t start, end; /* strings: inside the quotes */
    uint32_t next;       /* the token after this subtree */
    uint32_t size;       /* pairs of an object, elements of an array */
    uint32_t str;        /* strings: 1 + offset of the unescaped text in strs, 0 until asked */
};

struct doc {
    const char *js;
    size_t len;
    struct jtok *t;
    size_t n, cap;
    struct ob_buf strs; /* unescaped strings, each once; reserved so pointers stay put */
};

static size_t skip_ws(const char *js, size_t i, size_t len)
{
    while (i < len && (js[i] == ' ' || js[i] == '\t' || js[i] == '\n' || js[i] == '\r'))
        i++;
    return i;
}

static size_t doc_add(struct doc *d, int type, size_t start)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->t = ob_xrealloc(d->t, d->cap * sizeof *d->t);
    }
    d->t[d->n] = (struct jtok){ (uint8_t)type, (uint32_t)start, (uint32_t)start, 0, 0, 0 };
    return d->n++;
}

static int parse_json(struct doc *d, size_t *pos, int depth)
{
    const char *js = d->js;
    size_t len = d->len, i = skip_ws(js, *pos, len);
    if (i >= len || depth > 64)
        return -1;
    size_t me;
    if (js[i] == '"') {
        me = doc_add(d, J_STR, i + 1);
        for (i++;;) {
            const char *q = memchr(js + i, '"', len - i);
            if (!q)
                return -1;
            size_t at = (size_t)(q - js), bs = 0;
            while (at - bs > i && js[at - bs - 1] == '\\')
                bs++;
            i = at;
            if (bs % 2 == 0)
                break;
            i++;
        }
        d->t[me].end = (uint32_t)i++;
    } else if (js[i] == '{' || js[i] == '[') {
        char close = js[i] == '{' ? '}' : ']';
        me = doc_add(d, close == '}' ? J_OBJ : J_ARR, i);
        i = skip_ws(js, i + 1, len);
        if (i < len && js[i] == close) {
            i++;
        } else {
            for (;;) {
                if (close == '}') {
                    if (i >= len || js[i] != '"' || parse_json(d, &i, depth + 1) < 0)
                        return -1;
                    i = skip_ws(js, i, len);
                    if (i >= len || js[i++] != ':')
                        return -1;
                }
                if (parse_json(d, &i, depth + 1) < 0)
                    return -1;
                d->t[me].size++;
                i = skip_ws(js, i, len);
                if (i < len && js[i] == ',') {
                    i = skip_ws(js, i + 1, len);
                    continue;
                }
                if (i >= len || js[i++] != close)
                    return -1;
                break;
            }
        }
        d->t[me].end = (uint32_t)i;
    } else {
        me = doc_add(d, J_PRIM, i);
        while (i < len && !strchr(",}] \t\r\n", js[i]))
            i++;
        if (i == d->t[me].start || !strchr("-0123456789tfn", js[d->t[me].start]))
            return -1;
        d->t[me].end = (uint32_t)i;
    }
    d->t[me].next = (uint32_t)d->n;
    *pos = i;
    return 0;
}

static int doc_load(struct doc *d, const char *js, size_t len)
{
    size_t pos = 0;
    d->js = js;
    d->len = len;
    d->n = 0;
    if (parse_json(d, &pos, 0) < 0 || skip_ws(js, pos, len) != len || d->t[0].type != J_OBJ)
        return -1;
    /* Unescaping never lengthens a string; each gets a NUL. */
    ob_buf_reset(&d->strs);
    ob_buf_reserve(&d->strs, len + d->n);
    return 0;
}

static bool tok_raw_is(const struct doc *d, int i, const char *s, size_t n)
{
    const struct jtok *t = &d->t[i];
    return t->type == J_STR && t->end - t->start == n && memcmp(d->js + t->start, s, n) == 0;
}

/* The value of key in object obj, or -1. */
static int doc_getn(const struct doc *d, int obj, const char *key, size_t n)
{
    if (obj < 0 || d->t[obj].type != J_OBJ)
        return -1;
    int k = obj + 1;
    for (uint32_t i = 0; i < d->t[obj].size; i++, k = (int)d->t[k + 1].next)
        if (tok_raw_is(d, k, key, n))
            return k + 1;
    return -1;
}

static int doc_get(const struct doc *d, int obj, const char *key)
{
    return doc_getn(d, obj, key, strlen(key));
}

#define doc_foreach_pair(d, obj, k)                                                                            \
    for (int k = (obj) + 1, k##_n = 0; k##_n < (int)(d)->t[obj].size; k##_n++, k = (int)(d)->t[k + 1].next)
#define doc_foreach_elem(d, arr, e)                                                                            \
    for (int e = (arr) + 1, e##_n = 0; e##_n < (int)(d)->t[arr].size; e##_n++, e = (int)(d)->t[e].next)

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The unescaped text of string token i (NULL for anything else); valid
 * for the rest of the call. */
static const char *doc_str(struct doc *d, int i)
{
    if (i < 0 || d->t[i].type != J_STR)
        return NULL;
    if (d->t[i].str)
        return d->strs.data + d->t[i].str - 1;
    const char *p = d->js + d->t[i].start, *end = d->js + d->t[i].end;
    char *out = d->strs.data + d->strs.len, *o = out;
    d->t[i].str = (uint32_t)d->strs.len + 1;
    while (p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char c = p[1];
        p += 2;
        if (c == 'u' && end - p >= 4) {
            unsigned cp = (unsigned)strtoul((char[]){ p[0], p[1], p[2], p[3], 0 }, NULL, 16);
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = (unsigned)strtoul((char[]){ p[2], p[3], p[4], p[5], 0 }, NULL, 16);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            o += utf8_put(o, cp);
        } else {
            *o++ = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == 'b' ? '\b' : c == 'f' ? '\f' : c;
        }
    }
    *o++ = '\0';
    d->strs.len += (size_t)(o - out);
    return out;
}

/* JSON text of token i, quotes included. */
static void tok_text(const struct doc *d, int i, const char **p, size_t *n)
{
    const struct jtok *t = &d->t[i];
    size_t q = t->type == J_STR;
    *p = d->js + t->start - q;
    *n = t->end - t->start + 2 * q;
}

/* Copies JSON text without the whitespace between tokens. */
static void put_compact(struct ob_buf *b, const char *p, size_t n)
{
    ob_buf_reserve(b, n);
    char *o = b->data + b->len;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            *o++ = c;
            if (c == '\\' && i + 1 < n)
                *o++ = p[++i];
            else if (c == '"')
                in_str = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            *o++ = c;
            in_str = c == '"';
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

static bool wants_capacity(struct doc *d, int obj)
{
    const char *v = doc_str(d, doc_get(d, obj, "ReturnConsumedCapacity"));
    return v && strcmp(v, "NONE") != 0;
}

/* Decimal digits of v, zero-padded to width; printf is a visible share
 * of a call's cost, so the hot answers are assembled by hand. */
static void put_u64(struct ob_buf *b, uint64_t v, int width)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    ob_buf_reserve(b, (size_t)(n > width ? n : width));
    for (int i = n; i < width; i++)
        b->data[b->len++] = '0';
    while (n > 0)
        b->data[b->len++] = d[--n];
    b->data[b->len] = '\0';
}

/* ---- attribute values as text -------------------------------------------------- */

struct val {
    const char *p; /* JSON text of an AttributeValue; NULL: absent */
    size_t n;
};

/* Type name and payload text of {"T": payload}. */
static bool val_parts(struct val v, const char **type, size_t *type_len, const char **inner, size_t *inner_len)
{
    size_t i = skip_ws(v.p, 0, v.n);
    if (i >= v.n || v.p[i] != '{')
        return false;
    i = skip_ws(v.p, i + 1, v.n);
    if (i >= v.n || v.p[i] != '"')
        return false;
    const char *t = v.p + i + 1, *q = memchr(t, '"', v.n - i - 1);
    if (!q)
        return false;
    i = skip_ws(v.p, (size_t)(q - v.p) + 1, v.n);
    if (i >= v.n || v.p[i] != ':')
        return false;
    i = skip_ws(v.p, i + 1, v.n);
    size_t end = v.n;
    while (end > i && v.p[end - 1] != '}')
        end--;
    while (end > i + 1 && strchr(" \t\r\n", v.p[end - 2]))
        end--;
    *type = t;
    *type_len = (size_t)(q - t);
    *inner = v.p + i;
    *inner_len = end > i ? end - 1 - i : 0;
    return true;
}

static bool type_is(const char *t, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(t, want, n) == 0;
}

/* Equal as JSON text, ignoring the whitespace between tokens. */
static bool text_equal(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;
    bool in_str = false;
    for (;;) {
        if (!in_str) {
            i = skip_ws(a, i, an);
            j = skip_ws(b, j, bn);
        }
        if (i == an || j == bn)
            return i == an && j == bn;
        if (a[i] != b[j])
            return false;
        if (a[i] == '\\' && in_str) {
            if (i + 1 == an || j + 1 == bn || a[i + 1] != b[j + 1])
                return false;
            i++, j++;
        } else if (a[i] == '"') {
            in_str = !in_str;
        }
        i++, j++;
    }
}

static long double val_number(const char *inner)
{
    return strtold(inner + (*inner == '"'), NULL);
}

/* <0, 0, >0 for two scalars of one type (S, N or B); *ok false otherwise. */
static int val_compare(struct val a, struct val b, bool *ok)
{
    const char *ta, *tb, *ia, *ib;
    size_t tal, tbl, ial, ibl;
    *ok = val_parts(a, &ta, &tal, &ia, &ial) && val_parts(b, &tb, &tbl, &ib, &ibl) && tal == 1 && tbl == 1 &&
          *ta == *tb && strchr("SNB", *ta);
    if (!*ok)
        return 0;
    if (*ta == 'N') {
        long double x = val_number(ia), y = val_number(ib);
        return (x > y) - (x < y);
    }
    int c = memcmp(ia, ib, ial < ibl ? ial : ibl);
    return c ? c : (ial > ibl) - (ial < ibl);
}

static bool val_equal(struct val a, struct val b)
{
    if (text_equal(a.p, a.n, b.p, b.n))
        return true;
    bool ok;
    int c = val_compare(a, b, &ok);
    return ok && c == 0;
}

/* DynamoDB's item size rules, close enough for capacity accounting. */
static size_t val_size(struct val v)
{
    const char *t, *inner;
    size_t tl, il;
    if (!val_parts(v, &t, &tl, &inner, &il))
        return v.n;
    if (type_is(t, tl, "S") || type_is(t, tl, "B"))
        return il >= 2 ? il - 2 : 0;
    if (type_is(t, tl, "N"))
        return il / 2 + 1;
    if (type_is(t, tl, "BOOL") || type_is(t, tl, "NULL"))
        return 1;
    return il;
}

/* ---- expressions ----------------------------------------------------------
 * A small evaluator for what outboxd sends: SET a = :v / #n = :v lists
 * (with + / - and if_not_exists), REMOVE lists, and conditions made of
 * attribute_exists / attribute_not_exists / begins_with / comparisons /
 * AND / OR / NOT / parentheses. Nested paths are not supported. */

enum tok { T_END, T_IDENT, T_NAME, T_VALUE, T_LP, T_RP, T_COMMA, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_PLUS, T_MINUS, T_BAD };

struct lexer {
    const char *p;
    enum tok t;
    const char *s;
    size_t n;
};

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void lex_next(struct lexer *lx)
{
    while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')
        lx->p++;
    const char *p = lx->p;
    lx->s = p;
    lx->n = 1;
    switch (*p) {
    case '\0': lx->t = T_END; lx->n = 0; return;
    case '(': lx->t = T_LP; break;
    case ')': lx->t = T_RP; break;
    case ',': lx->t = T_COMMA; break;
    case '=': lx->t = T_EQ; break;
    case '+': lx->t = T_PLUS; break;
    case '-': lx->t = T_MINUS; break;
    case '<':
        lx->t = p[1] == '>' ? T_NE : p[1] == '=' ? T_LE : T_LT;
        lx->n = lx->t == T_LT ? 1 : 2;
        break;
    case '>':
        lx->t = p[1] == '=' ? T_GE : T_GT;
        lx->n = lx->t == T_GT ? 1 : 2;
        break;
    case '#':
    case ':':
        lx->t = *p == '#' ? T_NAME : T_VALUE;
        while (word_char(p[lx->n]))
            lx->n++;
        if (lx->n == 1)
            lx->t = T_BAD;
        break;
    default:
        if (word_char(*p)) {
            lx->t = T_IDENT;
            lx->n = 0;
            while (word_char(p[lx->n]))
                lx->n++;
        } else {
            lx->t = T_BAD;
        }
    }
    lx->p += lx->n;
}

static bool lex_is(const struct lexer *lx, const char *word)
{
    return lx->t == T_IDENT && strlen(word) == lx->n && strncasecmp(lx->s, word, lx->n) == 0;
}

static bool lex_is_fn(const struct lexer *lx, const char *fn)
{
    return lx->t == T_IDENT && strlen(fn) == lx->n && strncmp(lx->s, fn, lx->n) == 0;
}

enum node_kind { K_PATH, K_VALUE, K_AND, K_OR, K_NOT, K_CMP, K_EXISTS, K_NOT_EXISTS, K_BEGINS, K_ADD, K_SUB,
                 K_IF_NOT_EXISTS };

struct node {
    enum node_kind kind;
    enum tok op;
    int a, b;
    char *text; /* path or :value token, owned */
};

struct action {
    bool remove;
    int path;
    int value;
};

/* kind: 'C' condition, 'U' update, 'P' projection. */
struct expr {
    char kind;
    char *src;
    struct node *nodes;
    size_t n_nodes;
    int root;
    struct action acts[MAX_ACTIONS];
    size_t n_acts;
};

struct parser {
    struct lexer lx;
    struct expr *e;
    struct fail *f;
};

static void expr_free(struct expr *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_nodes; i++)
        free(e->nodes[i].text);
    free(e->nodes);
    free(e->src);
    free(e);
}

static int add_node(struct parser *p, enum node_kind kind, enum tok op, int a, int b, bool with_text)
{
    struct expr *e = p->e;
    e->nodes = ob_xrealloc(e->nodes, (e->n_nodes + 1) * sizeof *e->nodes);
    e->nodes[e->n_nodes] = (struct node){ kind, op, a, b, with_text ? ob_xstrndup(p->lx.s, p->lx.n) : NULL };
    return (int)e->n_nodes++;
}

static int syntax(struct parser *p)
{
    fail(p->f, E_VALIDATION, "Invalid %s: syntax error near \"%.20s\" in \"%s\"",
         p->e->kind == 'U' ? "UpdateExpression" : p->e->kind == 'P' ? "ProjectionExpression" : "ConditionExpression",
         p->lx.s, p->e->src);
    return -1;
}

static bool reserved_word(const struct lexer *lx)
{
    static const char *const words[] = { "AND", "OR", "NOT", "SET", "REMOVE", "ADD", "DELETE", "BETWEEN", "IN" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (lex_is(lx, words[i]))
            return true;
    return false;
}

static int parse_path(struct parser *p)
{
    if (p->lx.t != T_NAME && (p->lx.t != T_IDENT || reserved_word(&p->lx)))
        return syntax(p);
    int n = add_node(p, K_PATH, T_END, -1, -1, true);
    lex_next(&p->lx);
    if (p->lx.t == T_BAD)
        return fail(p->f, E_VALIDATION, "nested attribute paths are not supported by ddb_bench_server"), -1;
    return n;
}

static int parse_operand(struct parser *p)
{
    if (p->lx.t != T_VALUE)
        return parse_path(p);
    int n = add_node(p, K_VALUE, T_END, -1, -1, true);
    lex_next(&p->lx);
    return n;
}

static bool expect(struct parser *p, enum tok t)
{
    if (p->lx.t != t)
        return false;
    lex_next(&p->lx);
    return true;
}

static int parse_cond(struct parser *p);

/* "(first, operand)" of a two-argument function. */
static int parse_call2(struct parser *p, enum node_kind kind, int (*first)(struct parser *))
{
    int a, b;
    if (!expect(p, T_LP))
        return syntax(p);
    if ((a = first(p)) < 0)
        return -1;
    if (!expect(p, T_COMMA))
        return syntax(p);
    if ((b = parse_operand(p)) < 0)
        return -1;
    return expect(p, T_RP) ? add_node(p, kind, T_END, a, b, false) : syntax(p);
}

static int parse_primary(struct parser *p)
{
    int a, b;
    if (p->lx.t == T_LP) {
        lex_next(&p->lx);
        a = parse_cond(p);
        return a < 0 ? a : expect(p, T_RP) ? a : syntax(p);
    }
    if (lex_is_fn(&p->lx, "attribute_exists") || lex_is_fn(&p->lx, "attribute_not_exists")) {
        enum node_kind k = lex_is_fn(&p->lx, "attribute_exists") ? K_EXISTS : K_NOT_EXISTS;
        lex_next(&p->lx);
        if (!expect(p, T_LP))
            return syntax(p);
        a = parse_path(p);
        if (a < 0)
            return a;
        return expect(p, T_RP) ? add_node(p, k, T_END, a, -1, false) : syntax(p);
    }
    if (lex_is_fn(&p->lx, "begins_with")) {
        lex_next(&p->lx);
        return parse_call2(p, K_BEGINS, parse_operand);
    }
    a = parse_operand(p);
    if (a < 0)
        return a;
    enum tok op = p->lx.t;
    if (op < T_EQ || op > T_GE)
        return syntax(p);
    lex_next(&p->lx);
    b = parse_operand(p);
    return b < 0 ? b : add_node(p, K_CMP, op, a, b, false);
}

static int parse_unary(struct parser *p)
{
    if (!lex_is(&p->lx, "NOT"))
        return parse_primary(p);
    lex_next(&p->lx);
    int a = parse_unary(p);
    return a < 0 ? a : add_node(p, K_NOT, T_END, a, -1, false);
}

static int parse_and(struct parser *p)
{
    int a = parse_unary(p);
    while (a >= 0 && lex_is(&p->lx, "AND")) {
        lex_next(&p->lx);
        int b = parse_unary(p);
        a = b < 0 ? b : add_node(p, K_AND, T_END, a, b, false);
    }
    return a;
}

static int parse_cond(struct parser *p)
{
    int a = parse_and(p);
    while (a >= 0 && lex_is(&p->lx, "OR")) {
        lex_next(&p->lx);
        int b = parse_and(p);
        a = b < 0 ? b : add_node(p, K_OR, T_END, a, b, false);
    }
    return a;
}

static int parse_set_term(struct parser *p)
{
    if (!lex_is_fn(&p->lx, "if_not_exists"))
        return parse_operand(p);
    lex_next(&p->lx);
    return parse_call2(p, K_IF_NOT_EXISTS, parse_path);
}

static int parse_set_value(struct parser *p)
{
    int a = parse_set_term(p);
    if (a < 0 || (p->lx.t != T_PLUS && p->lx.t != T_MINUS))
        return a;
    enum node_kind k = p->lx.t == T_PLUS ? K_ADD : K_SUB;
    lex_next(&p->lx);
    int b = parse_set_term(p);
    return b < 0 ? b : add_node(p, k, T_END, a, b, false);
}

static int add_action(struct parser *p, bool remove, int path, int value)
{
    if (p->e->n_acts == MAX_ACTIONS)
        return fail(p->f, E_VALIDATION, "more than %d actions in one expression", MAX_ACTIONS), -1;
    p->e->acts[p->e->n_acts++] = (struct action){ remove, path, value };
    return 0;
}

static int parse_update(struct parser *p)
{
    while (p->lx.t != T_END) {
        bool set = lex_is(&p->lx, "SET");
        if (!set && !lex_is(&p->lx, "REMOVE"))
            return lex_is(&p->lx, "ADD") || lex_is(&p->lx, "DELETE")
                       ? (fail(p->f, E_VALIDATION, "ADD and DELETE are not supported by ddb_bench_server"), -1)
                       : syntax(p);
        do {
            lex_next(&p->lx);
            int path = parse_path(p), value = -1;
            if (path < 0)
                return -1;
            if (set) {
                if (!expect(p, T_EQ))
                    return syntax(p);
                value = parse_set_value(p);
                if (value < 0)
                    return -1;
            }
            if (add_action(p, !set, path, value) < 0)
                return -1;
        } while (p->lx.t == T_COMMA);
    }
    return 0;
}

static int parse_projection(struct parser *p)
{
    for (;;) {
        int path = parse_path(p);
        if (path < 0 || add_action(p, false, path, -1) < 0)
            return -1;
        if (p->lx.t == T_END)
            return 0;
        if (!expect(p, T_COMMA))
            return syntax(p);
    }
}

static enum ddb_err expr_compile(char kind, const char *src, struct expr **out, struct fail *f)
{
    struct expr *e = ob_xcalloc(1, sizeof *e);
    e->kind = kind;
    e->src = ob_xstrdup(src);
    struct parser p = { { src, T_END, src, 0 }, e, f };
    lex_next(&p.lx);
    int rc;
    if (kind == 'C') {
        rc = e->root = parse_cond(&p);
        if (rc >= 0 && p.lx.t != T_END)
            rc = syntax(&p);
    } else {
        rc = kind == 'U' ? parse_update(&p) : parse_projection(&p);
    }
    if (rc < 0) {
        expr_free(e);
        return f->code;
    }
    *out = e;
    return E_OK;
}

/* Compiled expressions by text: outboxd sends a handful of distinct ones. */
#define EXPR_CACHE_SIZE 1024

static struct expr *expr_cache[EXPR_CACHE_SIZE];

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    for (const unsigned char *c = p; n--; c++)
        h = (h ^ *c) * 0x100000001b3ull;
    return h;
}

#define FNV_SEED 0xcbf29ce484222325ull

/* Borrowed result: cached, or *to_free holds it for the caller. */
static enum ddb_err expr_get(char kind, const char *src, const struct expr **out, struct expr **to_free,
                             struct fail *f)
{
    uint64_t h = fnv1a(src, strlen(src), fnv1a(&kind, 1, FNV_SEED));
    for (size_t probe = 0; probe < 8; probe++) {
        struct expr **slot = &expr_cache[(h + probe) & (EXPR_CACHE_SIZE - 1)];
        if (*slot && (*slot)->kind == kind && strcmp((*slot)->src, src) == 0) {
            *out = *slot;
            return E_OK;
        }
        if (!*slot) {
            enum ddb_err rc = expr_compile(kind, src, slot, f);
            *out = *slot;
            return rc;
        }
    }
    enum ddb_err rc = expr_compile(kind, src, to_free, f);
    *out = *to_free;
    return rc;
}

struct item;
static struct val item_attr(const struct item *it, const char *name, size_t n);

struct eval {
    const struct item *it; /* NULL: no item */
    struct doc *d;
    int names;             /* ExpressionAttributeNames token, or -1 */
    int values;            /* ExpressionAttributeValues token, or -1 */
    struct fail *f;
    struct ob_buf *tmp;    /* computed values; reserved so views stay put */
};

/* The attribute name of a path node, as written in JSON (escaped). */
static enum ddb_err path_name(const struct eval *ev, const struct node *nd, const char **name, size_t *n)
{
    if (nd->text[0] != '#') {
        *name = nd->text;
        *n = strlen(nd->text);
        return E_OK;
    }
    int v = doc_get(ev->d, ev->names, nd->text);
    if (v < 0 || ev->d->t[v].type != J_STR)
        return fail(ev->f, E_VALIDATION, "An expression attribute name used in the document path is not defined; "
                                         "attribute name: %s", nd->text);
    *name = ev->d->js + ev->d->t[v].start;
    *n = ev->d->t[v].end - ev->d->t[v].start;
    return E_OK;
}

/* The value of a path (p NULL when absent) or of an :value. */
static enum ddb_err operand(const struct eval *ev, const struct expr *e, int i, struct val *out)
{
    const struct node *nd = &e->nodes[i];
    if (nd->kind == K_VALUE) {
        int v = doc_get(ev->d, ev->values, nd->text);
        if (v < 0)
            return fail(ev->f, E_VALIDATION, "An expression attribute value used in expression is not defined; "
                                             "attribute value: %s", nd->text);
        tok_text(ev->d, v, &out->p, &out->n);
        return E_OK;
    }
    const char *name;
    size_t n;
    enum ddb_err rc = path_name(ev, nd, &name, &n);
    *out = rc ? (struct val){ NULL, 0 } : item_attr(ev->it, name, n);
    return rc;
}

static enum ddb_err eval_cond(const struct eval *ev, const struct expr *e, int i, bool *out)
{
    const struct node *nd = &e->nodes[i];
    struct val a, b;
    enum ddb_err rc;
    bool x, ok;
    const char *ta, *tb, *ia, *ib;
    size_t tal, tbl, ial, ibl;
    switch (nd->kind) {
    case K_AND:
    case K_OR:
        if ((rc = eval_cond(ev, e, nd->a, &x)))
            return rc;
        if (x == (nd->kind == K_OR)) {
            *out = x;
            return E_OK;
        }
        return eval_cond(ev, e, nd->b, out);
    case K_NOT:
        rc = eval_cond(ev, e, nd->a, &x);
        *out = !x;
        return rc;
    case K_EXISTS:
    case K_NOT_EXISTS:
        rc = operand(ev, e, nd->a, &a);
        *out = (a.p != NULL) == (nd->kind == K_EXISTS);
        return rc;
    case K_BEGINS:
        if ((rc = operand(ev, e, nd->a, &a)) || (rc = operand(ev, e, nd->b, &b)))
            return rc;
        /* Both S: a's text starts with b's text without its closing quote. */
        *out = a.p && b.p && val_parts(a, &ta, &tal, &ia, &ial) && val_parts(b, &tb, &tbl, &ib, &ibl) &&
               type_is(ta, tal, "S") && type_is(tb, tbl, "S") && ibl >= 2 && ial >= ibl - 1 &&
               memcmp(ia, ib, ibl - 1) == 0;
        return E_OK;
    case K_CMP:
        if ((rc = operand(ev, e, nd->a, &a)) || (rc = operand(ev, e, nd->b, &b)))
            return rc;
        if (!a.p || !b.p) {
            *out = false;
            return E_OK;
        }
        if (nd->op == T_EQ || nd->op == T_NE) {
            *out = val_equal(a, b) == (nd->op == T_EQ);
            return E_OK;
        }
        {
            int c = val_compare(a, b, &ok);
            *out = ok && (nd->op == T_LT ? c < 0 : nd->op == T_LE ? c <= 0 : nd->op == T_GT ? c > 0 : c >= 0);
        }
        return E_OK;
    default:
        return fail(ev->f, E_VALIDATION, "Invalid ConditionExpression: an operand is not a condition");
    }
}

static enum ddb_err eval_value(const struct eval *ev, const struct expr *e, int i, struct val *out);

static enum ddb_err eval_arith(const struct eval *ev, const struct expr *e, const struct node *nd, struct val *out)
{
    struct val x, y;
    const char *tx, *ty, *ix, *iy;
    size_t txl, tyl, ixl, iyl;
    enum ddb_err rc;
    if ((rc = eval_value(ev, e, nd->a, &x)) || (rc = eval_value(ev, e, nd->b, &y)))
        return rc;
    if (!val_parts(x, &tx, &txl, &ix, &ixl) || !val_parts(y, &ty, &tyl, &iy, &iyl) || !type_is(tx, txl, "N") ||
        !type_is(ty, tyl, "N"))
        return fail(ev->f, E_VALIDATION, "An operand in the update expression has an incorrect data type");
    if (ev->tmp->cap - ev->tmp->len < 96)
        return fail(ev->f, E_VALIDATION, "the update expression has too many computed values");
    long double v = nd->kind == K_ADD ? val_number(ix) + val_number(iy) : val_number(ix) - val_number(iy);
    char *o = ev->tmp->data + ev->tmp->len;
    int n = v == floorl(v) && fabsl(v) < 1e18L ? snprintf(o, 96, "{\"N\":\"%lld\"}", (long long)v)
                                               : snprintf(o, 96, "{\"N\":\"%.17Lg\"}", v);
    ev->tmp->len += (size_t)n + 1;
    *out = (struct val){ o, (size_t)n };
    return E_OK;
}

/* The value a SET action assigns. */
static enum ddb_err eval_value(const struct eval *ev, const struct expr *e, int i, struct val *out)
{
    const struct node *nd = &e->nodes[i];
    enum ddb_err rc;
    switch (nd->kind) {
    case K_IF_NOT_EXISTS:
        if ((rc = operand(ev, e, nd->a, out)))
            return rc;
        return out->p ? E_OK : eval_value(ev, e, nd->b, out);
    case K_ADD:
    case K_SUB:
        return eval_arith(ev, e, nd, out);
    default:
        if ((rc = operand(ev, e, i, out)))
            return rc;
        return out->p ? E_OK
                      : fail(ev->f, E_VALIDATION,
                             "The provided expression refers to an attribute that does not exist in the item");
    }
}

/* ---- tables, items, streams ------------------------------------------------ */

/* One attribute of an item: offsets into its image. The name is kept as
 * written in JSON, and looked up that way. */
struct attr {
    uint32_t name, name_len;
    uint32_t val, val_len;
};

struct item {
    char *key; /* hash value "\0" range value, owned */
    size_t key_len;
    uint64_t hash;
    char *image; /* compact JSON of the whole item, owned */
    size_t image_len;
    struct attr *attrs;
    size_t n_attrs;
    size_t size;
};

struct item_map {
    struct item **slot;
    size_t cap, n;
};

struct record {
    uint64_t seq;
    size_t off;
    size_t len;
};

struct shard {
    struct ob_buf log; /* serialized records back to back */
    struct record *v;
    size_t n, cap;
    uint64_t start_seq;
};

struct table {
    unsigned id;
    char *name;
    char *hash_key;
    char *range_key; /* NULL: hash key only */
    json_t *key_schema;
    json_t *attr_defs;
    char *billing_mode;
    json_t *throughput;
    char *view_type; /* NULL: no stream */
    char *stream_arn;
    char *stream_label;
    char *ttl_attr;
    double created;
    struct item_map items;
    struct shard *shards;
    struct table *next;
};

/* An item image being built. */
struct image {
    struct ob_buf text;
    struct attr *v;
    size_t n, cap;
};

static struct {
    int latency_ms;
    unsigned shards;
    int seq_width;
    uint64_t seq;
    unsigned next_table_id;
    uint64_t request_id;
    struct table *tables;
    struct ob_buf key; /* the item key of the current call */
    struct ob_buf tmp; /* values computed by update expressions */
    struct image image;
    struct doc doc;
} srv = { .shards = 1, .seq_width = 21, .seq = 1000, .next_table_id = 1 };

static struct val item_attr(const struct item *it, const char *name, size_t n)
{
    for (size_t i = 0; it && i < it->n_attrs; i++) {
        const struct attr *a = &it->attrs[i];
        if (a->name_len == n && memcmp(it->image + a->name, name, n) == 0)
            return (struct val){ it->image + a->val, a->val_len };
    }
    return (struct val){ NULL, 0 };
}

static void image_start(struct image *im)
{
    ob_buf_reset(&im->text);
    ob_buf_putc(&im->text, '{');
    im->n = 0;
}

/* compact: v is known to be compact already (it comes from an image). */
static void image_add(struct image *im, const char *name, size_t name_len, struct val v, bool compact)
{
    if (im->n == im->cap) {
        im->cap = im->cap ? im->cap * 2 : 32;
        im->v = ob_xrealloc(im->v, im->cap * sizeof *im->v);
    }
    struct ob_buf *b = &im->text;
    if (im->n)
        ob_buf_putc(b, ',');
    ob_buf_putc(b, '"');
    uint32_t name_at = (uint32_t)b->len;
    ob_buf_append(b, name, name_len);
    ob_buf_puts(b, "\":");
    uint32_t val_at = (uint32_t)b->len;
    if (compact)
        ob_buf_append(b, v.p, v.n);
    else
        put_compact(b, v.p, v.n);
    im->v[im->n++] = (struct attr){ name_at, (uint32_t)name_len, val_at, (uint32_t)(b->len - val_at) };
}

/* Moves the built image into it (replacing its old one, which the caller
 * has taken). */
static void image_finish(struct image *im, struct item *it)
{
    ob_buf_putc(&im->text, '}');
    it->image = ob_xstrndup(im->text.data, im->text.len);
    it->image_len = im->text.len;
    free(it->attrs);
    it->attrs = ob_xmalloc(im->n * sizeof *im->v);
    memcpy(it->attrs, im->v, im->n * sizeof *im->v);
    it->n_attrs = im->n;
    it->size = 0;
    for (size_t i = 0; i < im->n; i++)
        it->size += im->v[i].name_len + val_size((struct val){ it->image + im->v[i].val, im->v[i].val_len });
}

static void seq_format(char *out, size_t size, uint64_t seq)
{
    snprintf(out, size, "1%0*llu", srv.seq_width - 1, (unsigned long long)seq);
}

static enum ddb_err seq_parse(const char *s, uint64_t *seq, struct fail *f)
{
    size_t n = s ? strlen(s) : 0;
    bool digits = n == (size_t)srv.seq_width && s[0] == '1';
    for (size_t i = 0; digits && i < n; i++)
        digits = s[i] >= '0' && s[i] <= '9';
    if (!digits)
        return fail(f, E_VALIDATION, "Invalid SequenceNumber: %.64s", s ? s : "(missing)");
    *seq = strtoull(s + 1, NULL, 10);
    return E_OK;
}

static struct item *map_get(const struct item_map *m, const char *key, size_t len, uint64_t h)
{
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct item *it = m->slot[i];
        if (!it)
            return NULL;
        if (it->hash == h && it->key_len == len && memcmp(it->key, key, len) == 0)
            return it;
    }
}

static size_t map_free_slot(const struct item_map *m, uint64_t h)
{
    size_t i = h & (m->cap - 1);
    while (m->slot[i])
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void map_insert(struct item_map *m, struct item *it)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        struct item_map g = { ob_xcalloc(cap, sizeof *g.slot), cap, m->n };
        for (size_t i = 0; i < m->cap; i++)
            if (m->slot[i])
                g.slot[map_free_slot(&g, m->slot[i]->hash)] = m->slot[i];
        free(m->slot);
        *m = g;
    }
    m->slot[map_free_slot(m, it->hash)] = it;
    m->n++;
}

static size_t map_slot_of(const struct item_map *m, const struct item *it)
{
    size_t i = it->hash & (m->cap - 1);
    while (m->slot[i] != it)
        i = (i + 1) & (m->cap - 1);
    return i;
}

/* Backward-shift deletion keeps linear probing free of tombstones. */
static void map_remove(struct item_map *m, struct item *it)
{
    size_t mask = m->cap - 1, i = map_slot_of(m, it), j = i;
    m->slot[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slot[j])
            break;
        size_t home = m->slot[j]->hash & mask;
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slot[i] = m->slot[j];
            m->slot[j] = NULL;
            i = j;
        }
    }
    m->n--;
}

static void item_free(struct item *it)
{
    if (!it)
        return;
    free(it->key);
    free(it->image);
    free(it->attrs);
    free(it);
}

static struct item *item_new(const char *key, size_t len, uint64_t h)
{
    struct item *it = ob_xcalloc(1, sizeof *it);
    it->key = ob_xmalloc(len);
    memcpy(it->key, key, len);
    it->key_len = len;
    it->hash = h;
    return it;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->items.cap; i++)
        item_free(t->items.slot[i]);
    free(t->items.slot);
    for (unsigned s = 0; t->shards && s < srv.shards; s++) {
        ob_buf_free(&t->shards[s].log);
        free(t->shards[s].v);
    }
    free(t->shards);
    json_decref(t->key_schema);
    json_decref(t->attr_defs);
    json_decref(t->throughput);
    free(t->name);
    free(t->hash_key);
    free(t->range_key);
    free(t->billing_mode);
    free(t->view_type);
    free(t->stream_arn);
    free(t->stream_label);
    free(t->ttl_attr);
    free(t);
}

static struct table *table_find(const char *name)
{
    for (struct table *t = srv.tables; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static enum ddb_err table_named(const char *name, struct table **t, struct fail *f)
{
    if (!name)
        return fail(f, E_VALIDATION, "TableName is required");
    *t = table_find(name);
    return *t ? E_OK : fail(f, E_NOT_FOUND, "Requested resource not found: Table: %s not found", name);
}

static enum ddb_err table_of(const json_t *req, struct table **t, struct fail *f)
{
    return table_named(json_string_value(json_object_get(req, "TableName")), t, f);
}

/* The text of a scalar key value {"S"|"N"|"B": "..."}, else NULL. */
static const char *key_scalar(struct doc *d, int v)
{
    if (v < 0 || d->t[v].type != J_OBJ || d->t[v].size != 1)
        return NULL;
    if (!tok_raw_is(d, v + 1, "S", 1) && !tok_raw_is(d, v + 1, "N", 1) && !tok_raw_is(d, v + 1, "B", 1))
        return NULL;
    return doc_str(d, v + 2);
}

/* The item key (hash "\0" range) of a Key or Item object, in srv.key. */
static enum ddb_err key_of(const struct table *t, struct doc *d, int obj, bool exact, uint64_t *h, struct fail *f)
{
    const char *hv = key_scalar(d, doc_get(d, obj, t->hash_key));
    const char *rv = t->range_key ? key_scalar(d, doc_get(d, obj, t->range_key)) : "";
    if (!hv || !rv || (exact && d->t[obj].size != (t->range_key ? 2u : 1u)))
        return fail(f, E_VALIDATION, "The provided key element does not match the schema");
    ob_buf_reset(&srv.key);
    ob_buf_puts(&srv.key, hv);
    ob_buf_append(&srv.key, "", 1);
    ob_buf_puts(&srv.key, rv);
    *h = fnv1a(srv.key.data, srv.key.len, FNV_SEED);
    return E_OK;
}

static void put_keys(struct ob_buf *b, const struct table *t, const struct item *it)
{
    struct val hv = item_attr(it, t->hash_key, strlen(t->hash_key));
    ob_buf_putc(b, '{');
    put_str(b, t->hash_key);
    ob_buf_putc(b, ':');
    ob_buf_append(b, hv.p, hv.n);
    if (t->range_key) {
        struct val rv = item_attr(it, t->range_key, strlen(t->range_key));
        ob_buf_putc(b, ',');
        put_str(b, t->range_key);
        ob_buf_putc(b, ':');
        ob_buf_append(b, rv.p, rv.n);
    }
    ob_buf_putc(b, '}');
}

/* Room for extra more bytes in a shard's log. The log only grows, into
 * memory never touched: its new pages are faulted in by one call, not one
 * fault per page on first write, which under a hypervisor costs more than
 * writing the record. */
static void log_reserve(struct ob_buf *b, size_t extra)
{
    size_t old_cap = b->cap;
    ob_buf_reserve(b, extra);
    if (b->cap == old_cap || b->cap < (1u << 20))
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)b->data + b->len + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)b->data + b->cap) & ~(page - 1);
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE); /* a hint: pages fault in anyway */
}

/* Appends one change of it to the shard of its hash key. new/old: the
 * images after and before, NULL when absent. */
static void stream_record(struct table *t, const struct item *it, const char *new_img, size_t new_len,
                          const char *old_img, size_t old_len)
{
    if (!t->view_type)
        return;
    struct shard *sh = &t->shards[fnv1a(it->key, strlen(it->key), FNV_SEED) % srv.shards];
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? sh->cap * 2 : 1024;
        sh->v = ob_xrealloc(sh->v, sh->cap * sizeof *sh->v);
    }
    uint64_t seq = ++srv.seq;
    struct ob_buf *b = &sh->log;
    log_reserve(b, 1024 + new_len + old_len + 2 * strlen(it->key));
    size_t off = b->len;
    bool keys_only = strcmp(t->view_type, "KEYS_ONLY") == 0;
    bool want_new = !keys_only && strcmp(t->view_type, "OLD_IMAGE") != 0;
    bool want_old = !keys_only && strcmp(t->view_type, "NEW_IMAGE") != 0;
    ob_buf_puts(b, "{\"eventID\":\"");
    put_u64(b, t->id, 8);
    put_u64(b, seq, 24);
    ob_buf_puts(b, !old_img ? "\",\"eventName\":\"INSERT" : !new_img ? "\",\"eventName\":\"REMOVE"
                                                                : "\",\"eventName\":\"MODIFY");
    ob_buf_puts(b, "\",\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"" REGION
                   "\",\"dynamodb\":{\"ApproximateCreationDateTime\":");
    put_u64(b, (uint64_t)time(NULL), 0);
    ob_buf_puts(b, ",\"Keys\":");
    size_t keys_at = b->len;
    put_keys(b, t, it);
    size_t size = b->len - keys_at;
    if (new_img && want_new) {
        ob_buf_puts(b, ",\"NewImage\":");
        ob_buf_append(b, new_img, new_len);
        size += new_len;
    }
    if (old_img && want_old) {
        ob_buf_puts(b, ",\"OldImage\":");
        ob_buf_append(b, old_img, old_len);
        size += old_len;
    }
    ob_buf_puts(b, ",\"SequenceNumber\":\"1");
    put_u64(b, seq, srv.seq_width - 1);
    ob_buf_puts(b, "\",\"SizeBytes\":");
    put_u64(b, size, 0);
    ob_buf_puts(b, ",\"StreamViewType\":\"");
    ob_buf_puts(b, t->view_type);
    ob_buf_puts(b, "\"}}");
    sh->v[sh->n++] = (struct record){ seq, off, b->len - off };
}

static double write_units(size_t size)
{
    return size <= 1024 ? 1.0 : ceil((double)size / 1024.0);
}

static double read_units(size_t size, bool consistent)
{
    double u = size <= 4096 ? 1.0 : ceil((double)size / 4096.0);
    return consistent ? u : u / 2;
}

static void put_capacity(struct ob_buf *b, const char *table, double units)
{
    ob_buf_puts(b, "{\"TableName\":");
    put_str(b, table);
    ob_buf_puts(b, ",\"CapacityUnits\":");
    put_u64(b, (uint64_t)units, 0);
    ob_buf_puts(b, units - floor(units) >= 0.5 ? ".5}" : ".0}");
}

/* ---- operations ------------------------------------------------------------ */

typedef enum ddb_err (*json_op)(const json_t *req, struct ob_buf *out, struct fail *f);
typedef enum ddb_err (*doc_op)(struct doc *d, struct ob_buf *out, struct fail *f);

static json_t *table_description(const struct table *t, const char *status)
{
    char arn[512], id[64];
    snprintf(arn, sizeof arn, "arn:aws:dynamodb:" REGION ":" ACCOUNT ":table/%s", t->name);
    snprintf(id, sizeof id, "00000000-0000-0000-0000-%012u", t->id);
    json_t *d = json_pack("{s:s,s:s,s:O,s:O,s:f,s:I,s:I,s:s,s:s,s:{s:s},s:O}", "TableName", t->name,
                          "TableStatus", status, "KeySchema", t->key_schema, "AttributeDefinitions", t->attr_defs,
                          "CreationDateTime", t->created, "ItemCount", (json_int_t)t->items.n, "TableSizeBytes",
                          (json_int_t)0, "TableArn", arn, "TableId", id, "BillingModeSummary", "BillingMode",
                          t->billing_mode, "ProvisionedThroughput", t->throughput);
    if (t->view_type) {
        json_object_set_new(d, "StreamSpecification",
                            json_pack("{s:b,s:s}", "StreamEnabled", 1, "StreamViewType", t->view_type));
        json_object_set_new(d, "LatestStreamArn", json_string(t->stream_arn));
        json_object_set_new(d, "LatestStreamLabel", json_string(t->stream_label));
    }
    return d;
}

static void put_described(struct ob_buf *out, const char *field, const struct table *t, const char *status)
{
    json_t *d = json_pack("{s:o}", field, table_description(t, status));
    put_json(out, d);
    json_decref(d);
}

static enum ddb_err key_schema_of(const json_t *req, struct table *t, struct fail *f)
{
    size_t i;
    const json_t *ks;
    const json_t *schema = json_object_get(req, "KeySchema");
    if (!json_is_array(schema) || json_array_size(schema) < 1 || json_array_size(schema) > 2)
        return fail(f, E_VALIDATION, "KeySchema must have one or two elements");
    json_array_foreach(schema, i, ks) {
        const char *name = json_string_value(json_object_get(ks, "AttributeName"));
        const char *type = json_string_value(json_object_get(ks, "KeyType"));
        if (!name || !type || (strcmp(type, "HASH") != 0 && strcmp(type, "RANGE") != 0))
            return fail(f, E_VALIDATION, "KeySchema element %zu is invalid", i);
        char **slot = strcmp(type, "HASH") == 0 ? &t->hash_key : &t->range_key;
        if (*slot)
            return fail(f, E_VALIDATION, "KeySchema has two %s keys", type);
        *slot = ob_xstrdup(name);
    }
    if (!t->hash_key)
        return fail(f, E_VALIDATION, "KeySchema has no HASH key");
    if (!json_is_array(json_object_get(req, "AttributeDefinitions")))
        return fail(f, E_VALIDATION, "AttributeDefinitions is required");
    t->key_schema = json_incref(json_object_get(req, "KeySchema"));
    t->attr_defs = json_incref(json_object_get(req, "AttributeDefinitions"));
    return E_OK;
}

static enum ddb_err op_create_table(const json_t *req, struct ob_buf *out, struct fail *f)
{
    const char *name = json_string_value(json_object_get(req, "TableName"));
    if (!name || !*name)
        return fail(f, E_VALIDATION, "TableName is required");
    if (table_find(name))
        return fail(f, E_IN_USE, "Table already exists: %s", name);
    struct table *t = ob_xcalloc(1, sizeof *t);
    t->id = srv.next_table_id++;
    t->name = ob_xstrdup(name);
    enum ddb_err rc = key_schema_of(req, t, f);
    if (rc)
        goto out;
    const char *billing = json_string_value(json_object_get(req, "BillingMode"));
    t->billing_mode = ob_xstrdup(billing ? billing : "PROVISIONED");
    const json_t *pt = json_object_get(req, "ProvisionedThroughput");
    t->throughput = json_pack("{s:I,s:I,s:i}", "ReadCapacityUnits",
                              (json_int_t)json_integer_value(json_object_get(pt, "ReadCapacityUnits")),
                              "WriteCapacityUnits",
                              (json_int_t)json_integer_value(json_object_get(pt, "WriteCapacityUnits")),
                              "NumberOfDecreasesToday", 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    t->created = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1000.0;
    const json_t *ss = json_object_get(req, "StreamSpecification");
    if (json_is_true(json_object_get(ss, "StreamEnabled"))) {
        const char *view = json_string_value(json_object_get(ss, "StreamViewType"));
        if (!view || (strcmp(view, "NEW_AND_OLD_IMAGES") != 0 && strcmp(view, "NEW_IMAGE") != 0 &&
                      strcmp(view, "OLD_IMAGE") != 0 && strcmp(view, "KEYS_ONLY") != 0)) {
            rc = fail(f, E_VALIDATION, "StreamViewType is invalid");
            goto out;
        }
        t->view_type = ob_xstrdup(view);
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        char label[64], arn[512];
        snprintf(label, sizeof label, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
        snprintf(arn, sizeof arn, "arn:aws:dynamodb:" REGION ":" ACCOUNT ":table/%s/stream/%s", name, label);
        t->stream_label = ob_xstrdup(label);
        t->stream_arn = ob_xstrdup(arn);
        t->shards = ob_xcalloc(srv.shards, sizeof *t->shards);
        for (unsigned s = 0; s < srv.shards; s++)
            t->shards[s].start_seq = srv.seq + 1;
    }
    t->next = srv.tables;
    srv.tables = t;
    put_described(out, "TableDescription", t, "ACTIVE");
    t = NULL;
out:
    if (t)
        table_free(t);
    return rc;
}

static enum ddb_err op_delete_table(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    enum ddb_err rc = table_of(req, &t, f);
    if (rc)
        return rc;
    for (struct table **pp = &srv.tables; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    put_described(out, "TableDescription", t, "DELETING");
    table_free(t);
    return E_OK;
}

static enum ddb_err op_describe_table(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    enum ddb_err rc = table_of(req, &t, f);
    if (!rc)
        put_described(out, "Table", t, "ACTIVE");
    return rc;
}

static enum ddb_err op_list_tables(const json_t *req, struct ob_buf *out, struct fail *f)
{
    (void)req;
    (void)f;
    json_t *names = json_array();
    for (struct table *t = srv.tables; t; t = t->next)
        json_array_insert_new(names, 0, json_string(t->name));
    json_t *resp = json_pack("{s:o}", "TableNames", names);
    put_json(out, resp);
    json_decref(resp);
    return E_OK;
}

static enum ddb_err op_update_ttl(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    enum ddb_err rc = table_of(req, &t, f);
    if (rc)
        return rc;
    const json_t *spec = json_object_get(req, "TimeToLiveSpecification");
    const char *attr = json_string_value(json_object_get(spec, "AttributeName"));
    if (!attr || !json_is_boolean(json_object_get(spec, "Enabled")))
        return fail(f, E_VALIDATION, "TimeToLiveSpecification needs AttributeName and Enabled");
    free(t->ttl_attr);
    t->ttl_attr = json_is_true(json_object_get(spec, "Enabled")) ? ob_xstrdup(attr) : NULL;
    ob_buf_puts(out, "{\"TimeToLiveSpecification\":");
    put_json(out, spec);
    ob_buf_putc(out, '}');
    return E_OK;
}

static enum ddb_err op_describe_ttl(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    enum ddb_err rc = table_of(req, &t, f);
    if (rc)
        return rc;
    ob_buf_puts(out, "{\"TimeToLiveDescription\":{\"TimeToLiveStatus\":");
    if (t->ttl_attr) {
        ob_buf_puts(out, "\"ENABLED\",\"AttributeName\":");
        put_str(out, t->ttl_attr);
    } else {
        ob_buf_puts(out, "\"DISABLED\"");
    }
    ob_buf_puts(out, "}}");
    return E_OK;
}

static bool doc_true(const struct doc *d, int obj, const char *key)
{
    int v = doc_get(d, obj, key);
    return v >= 0 && d->t[v].type == J_PRIM && d->js[d->t[v].start] == 't';
}

static enum ddb_err table_of_doc(struct doc *d, int obj, struct table **t, struct fail *f)
{
    return table_named(doc_str(d, doc_get(d, obj, "TableName")), t, f);
}

/* Evaluates the request's ConditionExpression, if any, against it. */
static enum ddb_err check_condition(struct doc *d, const struct item *it, struct fail *f)
{
    const char *src = doc_str(d, doc_get(d, 0, "ConditionExpression"));
    if (!src)
        return E_OK;
    const struct expr *e;
    struct expr *own = NULL;
    enum ddb_err rc = expr_get('C', src, &e, &own, f);
    if (rc)
        return rc;
    struct eval ev = { it, d, doc_get(d, 0, "ExpressionAttributeNames"), doc_get(d, 0, "ExpressionAttributeValues"),
                       f, &srv.tmp };
    bool ok = false;
    rc = eval_cond(&ev, e, e->root, &ok);
    if (!rc && !ok)
        rc = fail(f, E_CONDITION, "The conditional request failed");
    expr_free(own);
    return rc;
}

static enum ddb_err return_values(struct doc *d, bool *old, bool *new_, struct fail *f)
{
    const char *rv = doc_str(d, doc_get(d, 0, "ReturnValues"));
    *old = rv && strcmp(rv, "ALL_OLD") == 0;
    *new_ = rv && strcmp(rv, "ALL_NEW") == 0;
    if (rv && !*old && !*new_ && strcmp(rv, "NONE") != 0)
        return fail(f, E_VALIDATION, "ReturnValues %s is not supported by ddb_bench_server", rv);
    return E_OK;
}

/* The answer of a single-item write: {} with the optional parts. */
static void write_answer(struct ob_buf *out, struct doc *d, const struct table *t, const char *attributes,
                         size_t attributes_len, double units)
{
    bool sep = false;
    ob_buf_putc(out, '{');
    if (attributes) {
        ob_buf_puts(out, "\"Attributes\":");
        ob_buf_append(out, attributes, attributes_len);
        sep = true;
    }
    if (wants_capacity(d, 0)) {
        ob_buf_puts(out, sep ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
        put_capacity(out, t->name, units);
    }
    ob_buf_putc(out, '}');
}

/* Stores the Item object `obj` under the key in srv.key (hash h),
 * replacing any old item; the caller has checked conditions. Returns the
 * write's capacity units; *old_image receives the replaced image (caller
 * frees) when wanted. */
static double put_item(struct table *t, struct doc *d, int obj, uint64_t h, char **old_image, size_t *old_len)
{
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    char *old = NULL;
    size_t old_n = 0, old_size = 0;
    if (it) {
        old = it->image;
        old_n = it->image_len;
        old_size = it->size;
    } else {
        it = item_new(srv.key.data, srv.key.len, h);
        map_insert(&t->items, it);
    }
    image_start(&srv.image);
    doc_foreach_pair(d, obj, k) {
        struct val v;
        tok_text(d, k + 1, &v.p, &v.n);
        image_add(&srv.image, d->js + d->t[k].start, d->t[k].end - d->t[k].start, v, false);
    }
    image_finish(&srv.image, it);
    stream_record(t, it, it->image, it->image_len, old, old_n);
    double units = write_units(it->size > old_size ? it->size : old_size);
    if (old_image) {
        *old_image = old;
        *old_len = old_n;
    } else {
        free(old);
    }
    return units;
}

static enum ddb_err item_object(struct doc *d, int obj, struct fail *f)
{
    if (obj < 0 || d->t[obj].type != J_OBJ)
        return fail(f, E_VALIDATION, "Item is required");
    doc_foreach_pair(d, obj, k) if (d->t[k + 1].type != J_OBJ || d->t[k + 1].size != 1)
        return fail(f, E_VALIDATION, "Supplied AttributeValue is empty, must contain exactly one of the supported "
                                     "datatypes");
    return E_OK;
}

static enum ddb_err op_put_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    int item = doc_get(d, 0, "Item");
    enum ddb_err rc = table_of_doc(d, 0, &t, f);
    if (rc || (rc = return_values(d, &want_old, &want_new, f)) || (rc = item_object(d, item, f)))
        return rc;
    if (want_new)
        return fail(f, E_VALIDATION, "ReturnValues ALL_NEW is not valid for PutItem");
    if ((rc = key_of(t, d, item, false, &h, f)))
        return rc;
    const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(d, it, f)))
        return rc;
    char *old = NULL;
    size_t old_len = 0;
    double units = put_item(t, d, item, h, &old, &old_len);
    write_answer(out, d, t, want_old ? old : NULL, old_len, units);
    free(old);
    return E_OK;
}

/* Removes it from t; returns the write's capacity units. *old_image
 * receives its image (caller frees) when wanted. */
static double delete_item(struct table *t, struct item *it, char **old_image, size_t *old_len)
{
    stream_record(t, it, NULL, 0, it->image, it->image_len);
    double units = write_units(it->size);
    if (old_image) {
        *old_image = it->image;
        *old_len = it->image_len;
        it->image = NULL;
    }
    map_remove(&t->items, it);
    item_free(it);
    return units;
}

static enum ddb_err op_delete_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    enum ddb_err rc = table_of_doc(d, 0, &t, f);
    if (rc || (rc = return_values(d, &want_old, &want_new, f)) ||
        (rc = key_of(t, d, doc_get(d, 0, "Key"), true, &h, f)))
        return rc;
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(d, it, f)))
        return rc;
    char *old = NULL;
    size_t old_len = 0;
    double units = it ? delete_item(t, it, want_old ? &old : NULL, &old_len) : 1.0;
    write_answer(out, d, t, old, old_len, units);
    free(old);
    return E_OK;
}

static bool is_key_attr(const struct table *t, const char *name, size_t n)
{
    return (strlen(t->hash_key) == n && memcmp(name, t->hash_key, n) == 0) ||
           (t->range_key && strlen(t->range_key) == n && memcmp(name, t->range_key, n) == 0);
}

struct change {
    const char *name;
    size_t name_len;
    struct val v; /* p NULL: REMOVE */
    bool done;
};

/* Evaluates every action against the item as it was, before any applies. */
static enum ddb_err update_changes(const struct eval *ev, const struct expr *e, const struct table *t,
                                   struct change *ch)
{
    enum ddb_err rc;
    for (size_t i = 0; i < e->n_acts; i++) {
        const struct action *a = &e->acts[i];
        ch[i] = (struct change){ NULL, 0, { NULL, 0 }, false };
        if ((rc = path_name(ev, &e->nodes[a->path], &ch[i].name, &ch[i].name_len)))
            return rc;
        if (is_key_attr(t, ch[i].name, ch[i].name_len))
            return fail(ev->f, E_VALIDATION, "Cannot update attribute %.*s. This attribute is part of the key",
                        (int)ch[i].name_len, ch[i].name);
        for (size_t j = 0; j < i; j++)
            if (ch[j].name_len == ch[i].name_len && memcmp(ch[j].name, ch[i].name, ch[i].name_len) == 0)
                return fail(ev->f, E_VALIDATION, "Two document paths overlap with each other: %.*s",
                            (int)ch[i].name_len, ch[i].name);
        if (!a->remove && (rc = eval_value(ev, e, a->value, &ch[i].v)))
            return rc;
    }
    return E_OK;
}

static enum ddb_err op_update_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    const struct expr *e = NULL;
    struct expr *own = NULL;
    struct change ch[MAX_ACTIONS];
    int key = doc_get(d, 0, "Key");
    const char *src = doc_str(d, doc_get(d, 0, "UpdateExpression"));
    enum ddb_err rc = table_of_doc(d, 0, &t, f);
    if (rc || (rc = return_values(d, &want_old, &want_new, f)) || (rc = key_of(t, d, key, true, &h, f)))
        return rc;
    if (!src)
        return fail(f, E_VALIDATION, "UpdateExpression is required by ddb_bench_server");
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(d, it, f)) || (rc = expr_get('U', src, &e, &own, f)))
        goto out;
    struct eval ev = { it, d, doc_get(d, 0, "ExpressionAttributeNames"), doc_get(d, 0, "ExpressionAttributeValues"),
                       f, &srv.tmp };
    if ((rc = update_changes(&ev, e, t, ch)))
        goto out;
    image_start(&srv.image);
    if (it) {
        for (size_t i = 0; i < it->n_attrs; i++) {
            const struct attr *a = &it->attrs[i];
            struct val v = { it->image + a->val, a->val_len };
            for (size_t j = 0; j < e->n_acts; j++)
                if (ch[j].name_len == a->name_len && memcmp(ch[j].name, it->image + a->name, a->name_len) == 0) {
                    v = ch[j].v;
                    ch[j].done = true;
                }
            if (v.p)
                image_add(&srv.image, it->image + a->name, a->name_len, v, v.p == it->image + a->val);
        }
    } else {
        doc_foreach_pair(d, key, k) {
            struct val v;
            tok_text(d, k + 1, &v.p, &v.n);
            image_add(&srv.image, d->js + d->t[k].start, d->t[k].end - d->t[k].start, v, false);
        }
        it = item_new(srv.key.data, srv.key.len, h);
        map_insert(&t->items, it);
    }
    for (size_t j = 0; j < e->n_acts; j++)
        if (!ch[j].done && ch[j].v.p)
            image_add(&srv.image, ch[j].name, ch[j].name_len, ch[j].v, false);
    char *old = it->image;
    size_t old_len = it->image_len, old_size = it->size;
    image_finish(&srv.image, it);
    stream_record(t, it, it->image, it->image_len, old, old_len);
    write_answer(out, d, t, want_old ? old : want_new ? it->image : NULL, want_old ? old_len : it->image_len,
                 write_units(it->size > old_size ? it->size : old_size));
    free(old);
out:
    expr_free(own);
    return rc;
}

/* Appends the item's image, or its projection when e is set. */
static void put_item_image(struct ob_buf *out, const struct item *it, const struct expr *e, struct doc *d,
                           int names)
{
    if (!e) {
        ob_buf_append(out, it->image, it->image_len);
        return;
    }
    struct fail ignored;
    struct eval ev = { it, d, names, -1, &ignored, &srv.tmp };
    bool first = true;
    ob_buf_putc(out, '{');
    for (size_t i = 0; i < e->n_acts; i++) {
        const char *name;
        size_t n;
        if (path_name(&ev, &e->nodes[e->acts[i].path], &name, &n))
            continue;
        struct val v = item_attr(it, name, n);
        if (!v.p)
            continue;
        ob_buf_puts(out, first ? "\"" : ",\"");
        first = false;
        ob_buf_append(out, name, n);
        ob_buf_puts(out, "\":");
        ob_buf_append(out, v.p, v.n);
    }
    ob_buf_putc(out, '}');
}

static enum ddb_err projection_of(struct doc *d, int obj, const struct expr **e, struct expr **own, struct fail *f)
{
    const char *src = doc_str(d, doc_get(d, obj, "ProjectionExpression"));
    *e = NULL;
    return src ? expr_get('P', src, e, own, f) : E_OK;
}

static enum ddb_err op_get_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    const struct expr *e = NULL;
    struct expr *own = NULL;
    enum ddb_err rc = table_of_doc(d, 0, &t, f);
    if (rc || (rc = key_of(t, d, doc_get(d, 0, "Key"), true, &h, f)) || (rc = projection_of(d, 0, &e, &own, f)))
        return rc;
    const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    bool sep = false, consistent = doc_true(d, 0, "ConsistentRead");
    ob_buf_putc(out, '{');
    if (it) {
        ob_buf_puts(out, "\"Item\":");
        put_item_image(out, it, e, d, doc_get(d, 0, "ExpressionAttributeNames"));
        sep = true;
    }
    if (wants_capacity(d, 0)) {
        ob_buf_puts(out, sep ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
        put_capacity(out, t->name, read_units(it ? it->size : 0, consistent));
    }
    ob_buf_putc(out, '}');
    expr_free(own);
    return E_OK;
}

static enum ddb_err op_batch_get_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    int ri = doc_get(d, 0, "RequestItems");
    size_t total = 0;
    struct ob_buf cap = { 0 };
    enum ddb_err rc = E_OK;
    if (ri < 0 || d->t[ri].type != J_OBJ || d->t[ri].size == 0)
        return fail(f, E_VALIDATION, "RequestItems is required");
    doc_foreach_pair(d, ri, k) {
        struct table *t;
        if ((rc = table_named(doc_str(d, k), &t, f)))
            return rc;
        int keys = doc_get(d, k + 1, "Keys");
        total += keys >= 0 && d->t[keys].type == J_ARR ? d->t[keys].size : 0;
    }
    if (total == 0 || total > 100)
        return fail(f, E_VALIDATION, "Too many items requested for the BatchGetItem call");
    ob_buf_puts(out, "{\"Responses\":{");
    doc_foreach_pair(d, ri, k) {
        int spec = k + 1, names = doc_get(d, spec, "ExpressionAttributeNames");
        struct table *t = table_find(doc_str(d, k));
        const struct expr *e = NULL;
        struct expr *own = NULL;
        double units = 0;
        bool consistent = doc_true(d, spec, "ConsistentRead"), first = true;
        if ((rc = projection_of(d, spec, &e, &own, f)))
            goto out;
        if (k_n)
            ob_buf_putc(out, ',');
        put_str(out, t->name);
        ob_buf_puts(out, ":[");
        int keys = doc_get(d, spec, "Keys");
        doc_foreach_elem(d, keys, key) {
            uint64_t h;
            if ((rc = key_of(t, d, key, true, &h, f))) {
                expr_free(own);
                goto out;
            }
            const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
            units += read_units(it ? it->size : 0, consistent);
            if (!it)
                continue;
            if (!first)
                ob_buf_putc(out, ',');
            first = false;
            put_item_image(out, it, e, d, names);
        }
        ob_buf_putc(out, ']');
        if (cap.len)
            ob_buf_putc(&cap, ',');
        put_capacity(&cap, t->name, units);
        expr_free(own);
    }
    ob_buf_puts(out, "},\"UnprocessedKeys\":{}");
    if (wants_capacity(d, 0)) {
        ob_buf_puts(out, ",\"ConsumedCapacity\":[");
        ob_buf_append(out, cap.data, cap.len);
        ob_buf_putc(out, ']');
    }
    ob_buf_putc(out, '}');
out:
    ob_buf_free(&cap);
    return rc;
}

static enum ddb_err op_batch_write_item(struct doc *d, struct ob_buf *out, struct fail *f)
{
    int ri = doc_get(d, 0, "RequestItems");
    size_t total = 0;
    uint64_t h;
    enum ddb_err rc;
    if (ri < 0 || d->t[ri].type != J_OBJ || d->t[ri].size == 0)
        return fail(f, E_VALIDATION, "RequestItems is required");
    /* Validate everything first: a batch is applied whole or not at all. */
    doc_foreach_pair(d, ri, k) {
        struct table *t;
        if ((rc = table_named(doc_str(d, k), &t, f)))
            return rc;
        if (d->t[k + 1].type != J_ARR)
            return fail(f, E_VALIDATION, "the writes of table %s are not a list", t->name);
        doc_foreach_elem(d, k + 1, w) {
            int put = doc_get(d, doc_get(d, w, "PutRequest"), "Item");
            int del = doc_get(d, doc_get(d, w, "DeleteRequest"), "Key");
            rc = put >= 0   ? item_object(d, put, f) ?: key_of(t, d, put, false, &h, f)
                 : del >= 0 ? key_of(t, d, del, true, &h, f)
                            : fail(f, E_VALIDATION, "a write request is neither PutRequest nor DeleteRequest");
            if (rc)
                return rc;
            total++;
        }
    }
    if (total == 0 || total > 25)
        return fail(f, E_VALIDATION, "Too many items requested for the BatchWriteItem call");
    bool capacity = wants_capacity(d, 0);
    ob_buf_puts(out, capacity ? "{\"UnprocessedItems\":{},\"ConsumedCapacity\":[" : "{\"UnprocessedItems\":{}");
    doc_foreach_pair(d, ri, k) {
        struct table *t = table_find(doc_str(d, k));
        double units = 0;
        struct fail ignored;
        doc_foreach_elem(d, k + 1, w) {
            int put = doc_get(d, doc_get(d, w, "PutRequest"), "Item");
            if (put >= 0) {
                key_of(t, d, put, false, &h, &ignored);
                units += put_item(t, d, put, h, NULL, NULL);
                continue;
            }
            key_of(t, d, doc_get(d, doc_get(d, w, "DeleteRequest"), "Key"), true, &h, &ignored);
            struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
            if (it)
                units += delete_item(t, it, NULL, NULL);
        }
        if (capacity) {
            if (k_n)
                ob_buf_putc(out, ',');
            put_capacity(out, t->name, units);
        }
    }
    ob_buf_puts(out, capacity ? "]}" : "}");
    return E_OK;
}

static enum ddb_err op_scan(struct doc *d, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    const struct expr *proj = NULL, *filter = NULL;
    struct expr *own_proj = NULL, *own_filter = NULL;
    const char *filter_src = doc_str(d, doc_get(d, 0, "FilterExpression"));
    int names = doc_get(d, 0, "ExpressionAttributeNames"), start = doc_get(d, 0, "ExclusiveStartKey");
    int limit_tok = doc_get(d, 0, "Limit");
    long limit = limit_tok >= 0 ? strtol(d->js + d->t[limit_tok].start, NULL, 10) : 0;
    enum ddb_err rc = table_of_doc(d, 0, &t, f);
    if (rc || (rc = projection_of(d, 0, &proj, &own_proj, f)) ||
        (filter_src && (rc = expr_get('C', filter_src, &filter, &own_filter, f))))
        goto out;
    size_t i = 0, count = 0, scanned = 0, bytes = 0;
    if (start >= 0) {
        uint64_t h;
        if ((rc = key_of(t, d, start, true, &h, f)))
            goto out;
        const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
        i = it ? map_slot_of(&t->items, it) + 1 : (size_t)(h & (t->items.cap ? t->items.cap - 1 : 0));
    }
    const struct item *last = NULL;
    ob_buf_puts(out, "{\"Items\":[");
    for (; i < t->items.cap && (limit <= 0 || (long)scanned < limit); i++) {
        const struct item *it = t->items.slot[i];
        if (!it)
            continue;
        scanned++;
        bytes += it->size;
        last = it;
        if (filter) {
            bool keep = false;
            struct eval ev = { it, d, names, doc_get(d, 0, "ExpressionAttributeValues"), f, &srv.tmp };
            if ((rc = eval_cond(&ev, filter, filter->root, &keep)))
                goto out;
            if (!keep)
                continue;
        }
        if (count++)
            ob_buf_putc(out, ',');
        put_item_image(out, it, proj, d, names);
    }
    ob_buf_printf(out, "],\"Count\":%zu,\"ScannedCount\":%zu", count, scanned);
    bool more = false;
    for (size_t j = i; j < t->items.cap && !more; j++)
        more = t->items.slot[j] != NULL;
    if (more && last) {
        ob_buf_puts(out, ",\"LastEvaluatedKey\":");
        put_keys(out, t, last);
    }
    if (wants_capacity(d, 0)) {
        ob_buf_puts(out, ",\"ConsumedCapacity\":");
        put_capacity(out, t->name, read_units(bytes, doc_true(d, 0, "ConsistentRead")));
    }
    ob_buf_putc(out, '}');
out:
    expr_free(own_proj);
    expr_free(own_filter);
    return rc;
}

/* ---- streams operations ------------------------------------------------------ */

static enum ddb_err stream_of(const json_t *req, struct table **t, struct fail *f)
{
    const char *arn = json_string_value(json_object_get(req, "StreamArn"));
    if (!arn)
        return fail(f, E_VALIDATION, "StreamArn is required");
    for (*t = srv.tables; *t; *t = (*t)->next)
        if ((*t)->stream_arn && strcmp((*t)->stream_arn, arn) == 0)
            return E_OK;
    return fail(f, E_NOT_FOUND, "Requested resource not found: Stream: %s not found", arn);
}

static void shard_id(char *out, size_t size, unsigned k)
{
    snprintf(out, size, "shardId-00000001700000000000-%08u", k);
}

static enum ddb_err shard_of(const struct table *t, const char *id, unsigned *k, struct fail *f)
{
    char want[64];
    for (unsigned s = 0; id && s < srv.shards; s++) {
        shard_id(want, sizeof want, s);
        if (strcmp(want, id) == 0) {
            *k = s;
            return E_OK;
        }
    }
    return fail(f, E_NOT_FOUND, "Requested resource not found: Shard: %s in %s not found", id ? id : "(missing)",
                t->stream_arn);
}

static enum ddb_err op_describe_stream(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    enum ddb_err rc = stream_of(req, &t, f);
    if (rc)
        return rc;
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    const char *after = json_string_value(json_object_get(req, "ExclusiveStartShardId"));
    unsigned first = 0;
    if (limit <= 0 || limit > 100)
        limit = 100;
    if (after) {
        if ((rc = shard_of(t, after, &first, f)))
            return rc;
        first++;
    }
    ob_buf_puts(out, "{\"StreamDescription\":{\"StreamArn\":");
    put_str(out, t->stream_arn);
    ob_buf_printf(out, ",\"StreamLabel\":\"%s\",\"StreamStatus\":\"ENABLED\",\"StreamViewType\":\"%s\","
                       "\"CreationRequestDateTime\":%.3f,\"TableName\":",
                  t->stream_label, t->view_type, t->created);
    put_str(out, t->name);
    ob_buf_puts(out, ",\"KeySchema\":");
    put_json(out, t->key_schema);
    ob_buf_puts(out, ",\"Shards\":[");
    unsigned s = first;
    for (; s < srv.shards && s < first + (unsigned)limit; s++) {
        char id[64], seq[64];
        shard_id(id, sizeof id, s);
        seq_format(seq, sizeof seq, t->shards[s].start_seq);
        ob_buf_printf(out, "%s{\"ShardId\":\"%s\",\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"%s\"}}",
                      s == first ? "" : ",", id, seq);
    }
    ob_buf_putc(out, ']');
    if (s < srv.shards) {
        char id[64];
        shard_id(id, sizeof id, s - 1);
        ob_buf_printf(out, ",\"LastEvaluatedShardId\":\"%s\"", id);
    }
    ob_buf_puts(out, "}}");
    return E_OK;
}

static enum ddb_err op_list_streams(const json_t *req, struct ob_buf *out, struct fail *f)
{
    (void)f;
    const char *only = json_string_value(json_object_get(req, "TableName"));
    bool first = true;
    ob_buf_puts(out, "{\"Streams\":[");
    for (const struct table *t = srv.tables; t; t = t->next) {
        if (!t->view_type || (only && strcmp(only, t->name) != 0))
            continue;
        ob_buf_puts(out, first ? "{\"StreamArn\":" : ",{\"StreamArn\":");
        first = false;
        put_str(out, t->stream_arn);
        ob_buf_puts(out, ",\"TableName\":");
        put_str(out, t->name);
        ob_buf_printf(out, ",\"StreamLabel\":\"%s\"}", t->stream_label);
    }
    ob_buf_puts(out, "]}");
    return E_OK;
}

/* First record index of a shard whose sequence number is >= seq. */
static size_t shard_lower_bound(const struct shard *sh, uint64_t seq)
{
    size_t lo = 0, hi = sh->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sh->v[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Iterators are "<table id>/<shard>/<record index>" behind a fixed prefix;
 * shards never close and records are never trimmed, so they never expire. */
static void put_iterator(struct ob_buf *out, const struct table *t, unsigned k, size_t pos)
{
    ob_buf_printf(out, "\"bench-iterator/%u/%u/%zu\"", t->id, k, pos);
}

static enum ddb_err op_get_shard_iterator(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    unsigned k;
    uint64_t seq = 0;
    size_t pos;
    enum ddb_err rc = stream_of(req, &t, f);
    if (rc || (rc = shard_of(t, json_string_value(json_object_get(req, "ShardId")), &k, f)))
        return rc;
    const struct shard *sh = &t->shards[k];
    const char *type = json_string_value(json_object_get(req, "ShardIteratorType"));
    const char *seqs = json_string_value(json_object_get(req, "SequenceNumber"));
    if (!type)
        return fail(f, E_VALIDATION, "ShardIteratorType is required");
    if (strcmp(type, "TRIM_HORIZON") == 0) {
        pos = 0;
    } else if (strcmp(type, "LATEST") == 0) {
        pos = sh->n;
    } else if (strcmp(type, "AT_SEQUENCE_NUMBER") == 0 || strcmp(type, "AFTER_SEQUENCE_NUMBER") == 0) {
        if ((rc = seq_parse(seqs, &seq, f)))
            return rc;
        pos = shard_lower_bound(sh, type[0] == 'A' && type[1] == 'T' ? seq : seq + 1);
    } else {
        return fail(f, E_VALIDATION, "ShardIteratorType %s is invalid", type);
    }
    ob_buf_puts(out, "{\"ShardIterator\":");
    put_iterator(out, t, k, pos);
    ob_buf_putc(out, '}');
    return E_OK;
}

static enum ddb_err op_get_records(const json_t *req, struct ob_buf *out, struct fail *f)
{
    const char *it = json_string_value(json_object_get(req, "ShardIterator"));
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    unsigned id, k;
    size_t pos;
    int used = 0;
    if (!it || sscanf(it, "bench-iterator/%u/%u/%zu%n", &id, &k, &pos, &used) != 3 || it[used] || k >= srv.shards)
        return fail(f, E_VALIDATION, "Invalid ShardIterator");
    if (json_object_get(req, "Limit") && (limit < 1 || limit > 1000))
        return fail(f, E_VALIDATION, "Limit must be between 1 and 1000");
    if (limit <= 0)
        limit = 1000;
    const struct table *t = srv.tables;
    while (t && t->id != id)
        t = t->next;
    if (!t || !t->view_type)
        return fail(f, E_NOT_FOUND, "Requested resource not found: the stream of this iterator is gone");
    const struct shard *sh = &t->shards[k];
    if (pos > sh->n)
        return fail(f, E_VALIDATION, "Invalid ShardIterator");
    size_t end = pos, bytes = 0;
    ob_buf_puts(out, "{\"Records\":[");
    for (; end < sh->n && end - pos < (size_t)limit && bytes < GET_RECORDS_MAX_BYTES; end++) {
        if (end > pos)
            ob_buf_putc(out, ',');
        ob_buf_append(out, sh->log.data + sh->v[end].off, sh->v[end].len);
        bytes += sh->v[end].len;
    }
    ob_buf_puts(out, "],\"NextShardIterator\":");
    put_iterator(out, t, k, end);
    ob_buf_putc(out, '}');
    return E_OK;
}

/* Item calls read the request as tokens; table calls, rare, as jansson. */
static const struct {
    const char *target;
    doc_op doc;
    json_op json;
} ops[] = {
    { "DynamoDB_20120810.UpdateItem", op_update_item, NULL },
    { "DynamoDB_20120810.BatchGetItem", op_batch_get_item, NULL },
    { "DynamoDB_20120810.BatchWriteItem", op_batch_write_item, NULL },
    { "DynamoDB_20120810.PutItem", op_put_item, NULL },
    { "DynamoDB_20120810.GetItem", op_get_item, NULL },
    { "DynamoDB_20120810.DeleteItem", op_delete_item, NULL },
    { "DynamoDB_20120810.Scan", op_scan, NULL },
    { "DynamoDB_20120810.CreateTable", NULL, op_create_table },
    { "DynamoDB_20120810.DeleteTable", NULL, op_delete_table },
    { "DynamoDB_20120810.DescribeTable", NULL, op_describe_table },
    { "DynamoDB_20120810.ListTables", NULL, op_list_tables },
    { "DynamoDB_20120810.UpdateTimeToLive", NULL, op_update_ttl },
    { "DynamoDB_20120810.DescribeTimeToLive", NULL, op_describe_ttl },
    { "DynamoDBStreams_20120810.GetRecords", NULL, op_get_records },
    { "DynamoDBStreams_20120810.GetShardIterator", NULL, op_get_shard_iterator },
    { "DynamoDBStreams_20120810.DescribeStream", NULL, op_describe_stream },
    { "DynamoDBStreams_20120810.ListStreams", NULL, op_list_streams },
};

/* Runs one call; the answer body goes to out, the status is returned. */
static int dispatch(const char *target, size_t target_len, const char *body, size_t body_len, struct ob_buf *out)
{
    struct fail f = { E_OK, "" };
    size_t op = 0, n_ops = sizeof ops / sizeof ops[0];
    while (op < n_ops && !(strlen(ops[op].target) == target_len && memcmp(ops[op].target, target, target_len) == 0))
        op++;
    json_t *req = NULL;
    ob_buf_reset(&srv.tmp);
    ob_buf_reserve(&srv.tmp, MAX_ACTIONS * 96);
    if (op == n_ops) {
        fail(&f, E_UNKNOWN_OP, "ddb_bench_server does not implement %.*s", (int)target_len, target);
    } else if (ops[op].doc) {
        if (doc_load(&srv.doc, body, body_len) < 0)
            fail(&f, E_SERIALIZATION, "the request body is not a JSON object");
        else
            ops[op].doc(&srv.doc, out, &f);
    } else {
        json_error_t jerr;
        req = json_loadb(body, body_len, 0, &jerr);
        if (!json_is_object(req))
            fail(&f, E_SERIALIZATION, "the request body is not a JSON object: %s", jerr.text);
        else
            ops[op].json(req, out, &f);
    }
    json_decref(req);
    if (f.code == E_OK)
        return 200;
    ob_buf_reset(out);
    ob_buf_printf(out, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#%s\",\"message\":", err_type[f.code]);
    put_str(out, f.msg);
    ob_buf_putc(out, '}');
    return 400;
}

/* ---- connections and the event loop ------------------------------------------ */

struct conn {
    bool open;
    bool close_after; /* the client asked for Connection: close */
    bool continued;   /* 100 Continue sent for the request being received */
    unsigned gen;
    struct ob_buf in;
    size_t in_off;
    struct ob_buf out;
    size_t out_off;
    uint64_t out_base; /* stream offset of out.data[0] */
    uint64_t released; /* stream offset up to which answers may be sent */
    bool want_out;
};

/* Answers waiting for their latency, in deadline order: with one fixed
 * latency a FIFO is already sorted. The timer fires COALESCE_NS after the
 * first deadline so one wake-up releases a batch: an answer waits L ms
 * plus at most that. */
#define COALESCE_NS 250000u

struct pending {
    int fd;
    unsigned gen;
    uint64_t end;
    uint64_t due_ns;
};

static struct {
    struct bench_loop io;
    int timer_fd;
    struct conn *conns;
    size_t n_conns;
    struct pending *q;
    size_t q_cap, q_head, q_len;
    struct ob_buf body;
} loop = { .io = BENCH_LOOP_INIT("ddb_bench_server"), .timer_fd = -1 };

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Buffers of big answers (GetRecords pages) sent, for the next big answer
 * on whichever connection: kept per connection, each connection's first
 * page faulted in fresh memory; freed, glibc unmapped it. */
#define BIG_ANSWER (64u << 10)
#define SPARE_BUFFERS 8
static struct ob_buf spare[SPARE_BUFFERS];
static size_t n_spare;

static void spare_put(struct ob_buf *b)
{
    if (n_spare < SPARE_BUFFERS) {
        spare[n_spare++] = *b;
        *b = (struct ob_buf){ 0 };
    } else {
        ob_buf_free(b);
    }
}

static void spare_take(struct ob_buf *b)
{
    if (!n_spare)
        return;
    ob_buf_free(b);
    *b = spare[--n_spare];
    ob_buf_reset(b);
}

static void conn_close(int fd)
{
    struct conn *c = &loop.conns[fd];
    epoll_ctl(loop.io.ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    c->open = false;
    c->gen++;
    /* Keep small buffers for the next connection on this fd. */
    if (c->in.cap > (1u << 20))
        ob_buf_free(&c->in);
    if (c->out.cap > (1u << 20))
        ob_buf_free(&c->out);
    ob_buf_reset(&c->in);
    ob_buf_reset(&c->out);
}

static void conn_watch(int fd, bool want_out)
{
    struct conn *c = &loop.conns[fd];
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.fd = fd };
    epoll_ctl(loop.io.ep, EPOLL_CTL_MOD, fd, &ev);
    c->want_out = want_out;
}

/* Sends what is released; returns -1 when the connection was closed. */
static int conn_flush(int fd)
{
    struct conn *c = &loop.conns[fd];
    while (c->out_base + c->out_off < c->released) {
        size_t n = (size_t)(c->released - c->out_base - c->out_off);
        ssize_t w = send(fd, c->out.data + c->out_off, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(fd, true);
            return 0;
        }
        if (w <= 0) {
            conn_close(fd);
            return -1;
        }
        c->out_off += (size_t)w;
    }
    conn_watch(fd, false);
    if (c->out_off == c->out.len) {
        c->out_base += c->out.len;
        c->out_off = 0;
        if (c->out.cap > BIG_ANSWER)
            spare_put(&c->out);
        ob_buf_reset(&c->out);
        if (c->close_after && c->released == c->out_base) {
            conn_close(fd);
            return -1;
        }
    } else if (c->out_off > (64u << 10) && c->out_off >= c->out.len - c->out_off) {
        /* Moved only when more was sent than is left: a big answer sent in
         * many pieces is not moved again and again. */
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out.data[c->out.len] = '\0';
        c->out_base += c->out_off;
        c->out_off = 0;
    }
    return 0;
}

static void timer_arm(uint64_t due_ns)
{
    struct itimerspec its = { .it_value = { (time_t)(due_ns / 1000000000u), (long)(due_ns % 1000000000u) } };
    timerfd_settime(loop.timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void queue_answer(int fd, uint64_t end, uint64_t due_ns)
{
    if (loop.q_len == loop.q_cap) {
        size_t cap = loop.q_cap ? loop.q_cap * 2 : 1024;
        struct pending *q = ob_xmalloc(cap * sizeof *q);
        for (size_t i = 0; i < loop.q_len; i++)
            q[i] = loop.q[(loop.q_head + i) % loop.q_cap];
        free(loop.q);
        loop.q = q;
        loop.q_cap = cap;
        loop.q_head = 0;
    }
    loop.q[(loop.q_head + loop.q_len) % loop.q_cap] = (struct pending){ fd, loop.conns[fd].gen, end, due_ns };
    if (loop.q_len++ == 0)
        timer_arm(due_ns + COALESCE_NS);
}

static void release_due(void)
{
    uint64_t expirations, now = mono_ns();
    if (read(loop.timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        perror("ddb_bench_server: timerfd");
    while (loop.q_len && loop.q[loop.q_head].due_ns <= now) {
        struct pending p = loop.q[loop.q_head];
        loop.q_head = (loop.q_head + 1) % loop.q_cap;
        loop.q_len--;
        struct conn *c = &loop.conns[p.fd];
        if (!c->open || c->gen != p.gen)
            continue;
        if (p.end > c->released)
            c->released = p.end;
        bench_loop_mark(&loop.io, p.fd);
    }
    if (loop.q_len)
        timer_arm(loop.q[loop.q_head].due_ns + COALESCE_NS);
}

static bool header_is(const char *line, size_t len, const char *name, const char **value, size_t *value_len)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return false;
    const char *v = line + n + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *value = v;
    *value_len = (size_t)(end - v);
    return true;
}

static void append_answer(struct conn *c, int status, const struct ob_buf *body)
{
    struct ob_buf *o = &c->out;
    if (o->len == 0 && body->len > BIG_ANSWER)
        spare_take(o);
    ob_buf_puts(o, status == 200 ? "HTTP/1.1 200 OK\r\nx-amzn-RequestId: BENCH"
                                 : "HTTP/1.1 400 Bad Request\r\nx-amzn-RequestId: BENCH");
    put_u64(o, ++srv.request_id, 24);
    ob_buf_puts(o, "\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: ");
    put_u64(o, body->len, 0);
    ob_buf_puts(o, c->close_after ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
    ob_buf_append(o, body->data, body->len);
}

/* Parses and answers every complete request in c->in. Returns -1 when the
 * input is not HTTP we accept (the caller closes). */
static int conn_process(struct conn *c)
{
    for (;;) {
        const char *data = c->in.data + c->in_off;
        size_t avail = c->in.len - c->in_off;
        const char *end = avail ? memmem(data, avail, "\r\n\r\n", 4) : NULL;
        if (!end)
            return avail > (64u << 10) ? -1 : 0;
        size_t head_len = (size_t)(end - data) + 4, content_len = 0, target_len = 0, v_len;
        const char *target = NULL, *v;
        bool expect_continue = false;
        const char *line = data, *eol = memchr(line, '\r', head_len);
        if (!eol || eol - line < 14 || memcmp(eol - 8, "HTTP/1.", 7) != 0)
            return -1;
        c->close_after = eol[-1] == '0';
        for (line = eol + 2; line < end; line = eol + 2) {
            eol = memchr(line, '\r', (size_t)(end + 2 - line));
            size_t len = (size_t)(eol - line);
            if (header_is(line, len, "Content-Length", &v, &v_len))
                content_len = strtoul(v, NULL, 10);
            else if (header_is(line, len, "X-Amz-Target", &v, &v_len))
                target = v, target_len = v_len;
            else if (header_is(line, len, "Expect", &v, &v_len))
                expect_continue = v_len == 12 && strncasecmp(v, "100-continue", 12) == 0;
            else if (header_is(line, len, "Connection", &v, &v_len))
                c->close_after = v_len == 5 && strncasecmp(v, "close", 5) == 0;
            else if (header_is(line, len, "Transfer-Encoding", &v, &v_len))
                return -1;
        }
        if (content_len > MAX_BODY)
            return -1;
        if (avail < head_len + content_len) {
            if (expect_continue && !c->continued) {
                ob_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                c->continued = true;
            }
            return 0;
        }
        c->continued = false;
        ob_buf_reset(&loop.body);
        int status = dispatch(target ? target : "", target_len, data + head_len, content_len, &loop.body);
        append_answer(c, status, &loop.body);
        c->in_off += head_len + content_len;
        if (c->close_after)
            return 0;
    }
}

static void conn_readable(int fd)
{
    struct conn *c = &loop.conns[fd];
    ob_buf_reserve(&c->in, 64u << 10);
    ssize_t r = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        conn_close(fd);
        return;
    }
    c->in.len += (size_t)r;
    c->in.data[c->in.len] = '\0';
    uint64_t before = c->out_base + c->out.len;
    if (conn_process(c) < 0) {
        conn_close(fd);
        return;
    }
    if (c->in_off == c->in.len) {
        ob_buf_reset(&c->in);
        c->in_off = 0;
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in.data[c->in.len] = '\0';
        c->in_off = 0;
    }
    uint64_t after = c->out_base + c->out.len;
    if (after == before)
        return;
    if (srv.latency_ms > 0 && !c->continued)
        queue_answer(fd, after, mono_ns() + (uint64_t)srv.latency_ms * 1000000u);
    else
        c->released = after;
    bench_loop_mark(&loop.io, fd);
}

static void flush_if_open(int fd)
{
    if (loop.conns[fd].open)
        conn_flush(fd);
}

static uint32_t conn_accept(int fd)
{
    loop.conns = bench_slots_reserve(loop.conns, &loop.n_conns, sizeof *loop.conns, (size_t)fd);
    struct conn *c = &loop.conns[fd];
    unsigned gen = c->gen;
    struct ob_buf in = c->in, out = c->out;
    *c = (struct conn){ .open = true, .gen = gen, .in = in, .out = out };
    return EPOLLIN;
}

static void handle_event(int fd, uint32_t events)
{
    if (fd == loop.timer_fd)
        release_due();
    else if (loop.conns[fd].open && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        conn_readable(fd);
    else if (loop.conns[fd].open && (events & EPOLLOUT))
        conn_flush(fd);
}

static int usage(void)
{
    fputs("usage: ddb_bench_server --port P [--latency-ms L] [--shards N] [--seq-width W]\n"
          "  port 0 picks a free port; the bound one is printed as \"listening on 127.0.0.1:P\"\n",
          stderr);
    return 64;
}

/* Frees everything, so a sanitizer build reports real leaks at exit. */
static void shutdown_all(void)
{
    for (size_t fd = 0; fd < loop.n_conns; fd++) {
        if (loop.conns[fd].open)
            close((int)fd);
        ob_buf_free(&loop.conns[fd].in);
        ob_buf_free(&loop.conns[fd].out);
    }
    free(loop.conns);
    free(loop.q);
    ob_buf_free(&loop.body);
    while (n_spare)
        ob_buf_free(&spare[--n_spare]);
    while (srv.tables) {
        struct table *t = srv.tables;
        srv.tables = t->next;
        table_free(t);
    }
    for (size_t i = 0; i < EXPR_CACHE_SIZE; i++)
        expr_free(expr_cache[i]);
    ob_buf_free(&srv.key);
    ob_buf_free(&srv.tmp);
    ob_buf_free(&srv.image.text);
    free(srv.image.v);
    free(srv.doc.t);
    ob_buf_free(&srv.doc.strs);
    if (loop.timer_fd >= 0)
        close(loop.timer_fd);
    bench_loop_close(&loop.io);
}

int main(int argc, char **argv)
{
    long port = -1, v;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--port") == 0 && val && bench_int_arg(val, 0, 65535, &port))
            i++;
        else if (strcmp(a, "--latency-ms") == 0 && val && bench_int_arg(val, 0, 60000, &v))
            srv.latency_ms = (int)v, i++;
        else if (strcmp(a, "--shards") == 0 && val && bench_int_arg(val, 1, 100000, &v))
            srv.shards = (unsigned)v, i++;
        else if (strcmp(a, "--seq-width") == 0 && val && bench_int_arg(val, 12, 40, &v))
            srv.seq_width = (int)v, i++;
        else
            return usage();
    }
    if (port < 0)
        return usage();
    loop.io.on_accept = conn_accept;
    loop.io.on_event = handle_event;
    loop.io.on_flush = flush_if_open;
    if (bench_loop_open(&loop.io, port) < 0) {
        rc = 71;
        goto out;
    }
    loop.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop.timer_fd < 0) {
        perror("ddb_bench_server: setup");
        rc = 71;
        goto out;
    }
    bench_loop_watch(&loop.io, loop.timer_fd, EPOLLIN);
    if (bench_loop_run(&loop.io) < 0)
        rc = 71;
out:
    shutdown_all();
    return rc;
}
