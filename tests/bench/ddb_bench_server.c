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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

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

/* ---- attribute values ---------------------------------------------------- */

/* The type letter(s) of an AttributeValue {"S": ...} and its payload. */
static const char *av_type(const json_t *av, const json_t **inner)
{
    if (!json_is_object(av) || json_object_size(av) != 1)
        return NULL;
    void *it = json_object_iter((json_t *)av);
    *inner = json_object_iter_value(it);
    return json_object_iter_key(it);
}

/* DynamoDB's item size rules, close enough for capacity accounting. */
static size_t av_size(const json_t *av)
{
    const json_t *v;
    const char *t = av_type(av, &v);
    size_t n = 0, i;
    const json_t *e;
    const char *k;
    if (!t)
        return 0;
    switch (t[0]) {
    case 'S':
        if (t[1] == 'S')
            json_array_foreach(v, i, e) n += json_string_length(e);
        else
            n = json_string_length(v);
        return n;
    case 'N':
        if (t[1] == 'S')
            json_array_foreach(v, i, e) n += json_string_length(e) / 2 + 1;
        else
            n = json_string_length(v) / 2 + 1;
        return n;
    case 'B':
        if (t[1] == 'S')
            json_array_foreach(v, i, e) n += json_string_length(e) * 3 / 4;
        else if (t[1] == 'O')
            n = 1;
        else
            n = json_string_length(v) * 3 / 4;
        return n;
    case 'L':
        n = 3;
        json_array_foreach(v, i, e) n += 1 + av_size(e);
        return n;
    case 'M':
        n = 3;
        json_object_foreach((json_t *)v, k, e) n += 1 + strlen(k) + av_size(e);
        return n;
    default: /* NULL */
        return 1;
    }
}

static size_t item_size(const json_t *attrs)
{
    size_t n = 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)attrs, k, v) n += strlen(k) + av_size(v);
    return n;
}

/* The text of a scalar key value (S, N or B), else NULL. */
static const char *key_scalar(const json_t *av)
{
    const json_t *v;
    const char *t = av_type(av, &v);
    if (!t || t[1] || (t[0] != 'S' && t[0] != 'N' && t[0] != 'B'))
        return NULL;
    return json_string_value(v);
}

/* <0, 0, >0 for comparable scalars of one type; *ok false otherwise. */
static int av_compare(const json_t *a, const json_t *b, bool *ok)
{
    const json_t *va, *vb;
    const char *ta = av_type(a, &va), *tb = av_type(b, &vb);
    *ok = ta && tb && strcmp(ta, tb) == 0 && !ta[1] && json_is_string(va) && json_is_string(vb);
    if (!*ok)
        return 0;
    if (ta[0] == 'N') {
        long double x = strtold(json_string_value(va), NULL), y = strtold(json_string_value(vb), NULL);
        return (x > y) - (x < y);
    }
    return strcmp(json_string_value(va), json_string_value(vb));
}

static bool av_equal(const json_t *a, const json_t *b)
{
    bool ok;
    int c = av_compare(a, b, &ok);
    return ok ? c == 0 : json_equal((json_t *)a, (json_t *)b);
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

struct eval {
    const json_t *attrs; /* NULL: no item */
    const json_t *names;
    const json_t *values;
    struct fail *f;
};

static enum ddb_err path_name(const struct eval *ev, const struct node *nd, const char **name)
{
    if (nd->text[0] != '#') {
        *name = nd->text;
        return E_OK;
    }
    *name = json_string_value(json_object_get(ev->names, nd->text));
    if (!*name)
        return fail(ev->f, E_VALIDATION, "An expression attribute name used in the document path is not defined; "
                                         "attribute name: %s", nd->text);
    return E_OK;
}

/* Borrowed value of a path (NULL when absent) or of an :value. */
static enum ddb_err operand(const struct eval *ev, const struct expr *e, int i, const json_t **out)
{
    const struct node *nd = &e->nodes[i];
    if (nd->kind == K_VALUE) {
        *out = json_object_get(ev->values, nd->text);
        if (!*out)
            return fail(ev->f, E_VALIDATION, "An expression attribute value used in expression is not defined; "
                                             "attribute value: %s", nd->text);
        return E_OK;
    }
    const char *name;
    enum ddb_err rc = path_name(ev, nd, &name);
    *out = rc ? NULL : json_object_get(ev->attrs, name);
    return rc;
}

static enum ddb_err eval_cond(const struct eval *ev, const struct expr *e, int i, bool *out)
{
    const struct node *nd = &e->nodes[i];
    const json_t *a, *b;
    enum ddb_err rc;
    bool x, ok;
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
        *out = (a != NULL) == (nd->kind == K_EXISTS);
        return rc;
    case K_BEGINS:
        if ((rc = operand(ev, e, nd->a, &a)) || (rc = operand(ev, e, nd->b, &b)))
            return rc;
        {
            const char *sa = json_string_value(json_object_get(a, "S"));
            const char *sb = json_string_value(json_object_get(b, "S"));
            *out = sa && sb && strncmp(sa, sb, strlen(sb)) == 0;
        }
        return E_OK;
    case K_CMP:
        if ((rc = operand(ev, e, nd->a, &a)) || (rc = operand(ev, e, nd->b, &b)))
            return rc;
        if (!a || !b) {
            *out = false;
            return E_OK;
        }
        if (nd->op == T_EQ || nd->op == T_NE) {
            *out = av_equal(a, b) == (nd->op == T_EQ);
            return E_OK;
        }
        {
            int c = av_compare(a, b, &ok);
            *out = ok && (nd->op == T_LT ? c < 0 : nd->op == T_LE ? c <= 0 : nd->op == T_GT ? c > 0 : c >= 0);
        }
        return E_OK;
    default:
        return fail(ev->f, E_VALIDATION, "Invalid ConditionExpression: an operand is not a condition");
    }
}

static json_t *number_value(long double v)
{
    char n[64];
    if (v == floorl(v) && fabsl(v) < 1e18L)
        snprintf(n, sizeof n, "%lld", (long long)v);
    else
        snprintf(n, sizeof n, "%.17Lg", v);
    return json_pack("{s:s}", "N", n);
}

static enum ddb_err eval_value(const struct eval *ev, const struct expr *e, int i, json_t **out);

static enum ddb_err eval_arith(const struct eval *ev, const struct expr *e, const struct node *nd, json_t **out)
{
    json_t *x = NULL, *y = NULL;
    enum ddb_err rc;
    if ((rc = eval_value(ev, e, nd->a, &x)) || (rc = eval_value(ev, e, nd->b, &y)))
        goto out;
    const char *nx = json_string_value(json_object_get(x, "N"));
    const char *ny = json_string_value(json_object_get(y, "N"));
    if (!nx || !ny) {
        rc = fail(ev->f, E_VALIDATION, "An operand in the update expression has an incorrect data type");
        goto out;
    }
    long double vx = strtold(nx, NULL), vy = strtold(ny, NULL);
    *out = number_value(nd->kind == K_ADD ? vx + vy : vx - vy);
out:
    json_decref(x);
    json_decref(y);
    return rc;
}

/* New reference to the value a SET action assigns. */
static enum ddb_err eval_value(const struct eval *ev, const struct expr *e, int i, json_t **out)
{
    const struct node *nd = &e->nodes[i];
    const json_t *a;
    enum ddb_err rc;
    switch (nd->kind) {
    case K_IF_NOT_EXISTS:
        if ((rc = operand(ev, e, nd->a, &a)))
            return rc;
        if (!a)
            return eval_value(ev, e, nd->b, out);
        *out = json_incref((json_t *)a);
        return E_OK;
    case K_ADD:
    case K_SUB:
        return eval_arith(ev, e, nd, out);
    default:
        if ((rc = operand(ev, e, i, &a)))
            return rc;
        if (!a)
            return fail(ev->f, E_VALIDATION,
                        "The provided expression refers to an attribute that does not exist in the item");
        *out = json_incref((json_t *)a);
        return E_OK;
    }
}

/* ---- tables, items, streams ------------------------------------------------ */

struct item {
    char *key; /* hash value "\0" range value, owned */
    size_t key_len;
    uint64_t hash;
    json_t *attrs;
    char *image; /* compact JSON of attrs, owned */
    size_t image_len;
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

static struct {
    int latency_ms;
    unsigned shards;
    int seq_width;
    uint64_t seq;
    unsigned next_table_id;
    uint64_t request_id;
    struct table *tables;
    struct ob_buf key;     /* the item key of the current call */
    struct ob_buf scratch; /* item images being serialized */
} srv = { .shards = 1, .seq_width = 21, .seq = 1000, .next_table_id = 1 };

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
        struct item_map g = { ob_xcalloc(m->cap ? m->cap * 2 : 1024, sizeof *g.slot), m->cap ? m->cap * 2 : 1024,
                              m->n };
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
    json_decref(it->attrs);
    free(it->image);
    free(it);
}

static void item_refresh(struct item *it)
{
    ob_buf_reset(&srv.scratch);
    put_json(&srv.scratch, it->attrs);
    free(it->image);
    it->image = ob_xstrndup(srv.scratch.data, srv.scratch.len);
    it->image_len = srv.scratch.len;
    it->size = item_size(it->attrs);
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

static enum ddb_err table_of(const json_t *req, struct table **t, struct fail *f)
{
    const char *name = json_string_value(json_object_get(req, "TableName"));
    if (!name)
        return fail(f, E_VALIDATION, "TableName is required");
    *t = table_find(name);
    return *t ? E_OK : fail(f, E_NOT_FOUND, "Requested resource not found: Table: %s not found", name);
}

/* The item key (hash "\0" range) of a Key or Item object, in srv.key. */
static enum ddb_err key_of(const struct table *t, const json_t *obj, bool exact, uint64_t *h, struct fail *f)
{
    const char *hv = key_scalar(json_object_get(obj, t->hash_key));
    const char *rv = t->range_key ? key_scalar(json_object_get(obj, t->range_key)) : "";
    if (!hv || !rv || (exact && json_object_size(obj) != (t->range_key ? 2u : 1u)))
        return fail(f, E_VALIDATION, "The provided key element does not match the schema");
    ob_buf_reset(&srv.key);
    ob_buf_puts(&srv.key, hv);
    ob_buf_append(&srv.key, "", 1);
    ob_buf_puts(&srv.key, rv);
    *h = fnv1a(srv.key.data, srv.key.len, FNV_SEED);
    return E_OK;
}

static struct item *item_new(const char *key, size_t len, uint64_t h, json_t *attrs)
{
    struct item *it = ob_xcalloc(1, sizeof *it);
    it->key = ob_xmalloc(len);
    memcpy(it->key, key, len);
    it->key_len = len;
    it->hash = h;
    it->attrs = attrs;
    return it;
}

static void put_keys(struct ob_buf *b, const struct table *t, const json_t *attrs)
{
    ob_buf_putc(b, '{');
    put_str(b, t->hash_key);
    ob_buf_putc(b, ':');
    put_json(b, json_object_get(attrs, t->hash_key));
    if (t->range_key) {
        ob_buf_putc(b, ',');
        put_str(b, t->range_key);
        ob_buf_putc(b, ':');
        put_json(b, json_object_get(attrs, t->range_key));
    }
    ob_buf_putc(b, '}');
}

/* Appends one change to the shard of its hash key. new/old: images, NULL
 * when absent; attrs: either image's attributes, for the keys. */
static void stream_record(struct table *t, const json_t *attrs, const char *new_img, size_t new_len,
                          const char *old_img, size_t old_len)
{
    if (!t->view_type)
        return;
    const char *hv = key_scalar(json_object_get(attrs, t->hash_key));
    struct shard *sh = &t->shards[fnv1a(hv, strlen(hv), FNV_SEED) % srv.shards];
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? sh->cap * 2 : 1024;
        sh->v = ob_xrealloc(sh->v, sh->cap * sizeof *sh->v);
    }
    uint64_t seq = ++srv.seq;
    char seqs[64];
    seq_format(seqs, sizeof seqs, seq);
    struct ob_buf *b = &sh->log;
    size_t off = b->len;
    bool keys_only = strcmp(t->view_type, "KEYS_ONLY") == 0;
    bool want_new = !keys_only && strcmp(t->view_type, "OLD_IMAGE") != 0;
    bool want_old = !keys_only && strcmp(t->view_type, "NEW_IMAGE") != 0;
    ob_buf_printf(b,
                  "{\"eventID\":\"%016llx%016llx\",\"eventName\":\"%s\",\"eventVersion\":\"1.1\","
                  "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"" REGION "\",\"dynamodb\":{"
                  "\"ApproximateCreationDateTime\":%lld,\"Keys\":",
                  (unsigned long long)t->id, (unsigned long long)seq,
                  !old_img ? "INSERT" : !new_img ? "REMOVE" : "MODIFY", (long long)time(NULL));
    size_t keys_at = b->len;
    put_keys(b, t, attrs);
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
    ob_buf_printf(b, ",\"SequenceNumber\":\"%s\",\"SizeBytes\":%zu,\"StreamViewType\":\"%s\"}}", seqs, size,
                  t->view_type);
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

static bool wants_capacity(const json_t *req)
{
    const char *v = json_string_value(json_object_get(req, "ReturnConsumedCapacity"));
    return v && strcmp(v, "NONE") != 0;
}

static void put_capacity(struct ob_buf *b, const char *table, double units)
{
    ob_buf_puts(b, "{\"TableName\":");
    put_str(b, table);
    ob_buf_printf(b, ",\"CapacityUnits\":%.1f}", units);
}

/* ---- operations ------------------------------------------------------------ */

typedef enum ddb_err (*op_fn)(const json_t *req, struct ob_buf *out, struct fail *f);

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

/* Evaluates the request's ConditionExpression, if any, against attrs. */
static enum ddb_err check_condition(const json_t *req, const json_t *attrs, struct fail *f)
{
    const char *src = json_string_value(json_object_get(req, "ConditionExpression"));
    if (!src)
        return E_OK;
    const struct expr *e;
    struct expr *own = NULL;
    enum ddb_err rc = expr_get('C', src, &e, &own, f);
    if (rc)
        return rc;
    struct eval ev = { attrs, json_object_get(req, "ExpressionAttributeNames"),
                       json_object_get(req, "ExpressionAttributeValues"), f };
    bool ok = false;
    rc = eval_cond(&ev, e, e->root, &ok);
    if (!rc && !ok)
        rc = fail(f, E_CONDITION, "The conditional request failed");
    expr_free(own);
    return rc;
}

static enum ddb_err return_values(const json_t *req, bool *old, bool *new_, struct fail *f)
{
    const char *rv = json_string_value(json_object_get(req, "ReturnValues"));
    *old = rv && strcmp(rv, "ALL_OLD") == 0;
    *new_ = rv && strcmp(rv, "ALL_NEW") == 0;
    if (rv && !*old && !*new_ && strcmp(rv, "NONE") != 0)
        return fail(f, E_VALIDATION, "ReturnValues %s is not supported by ddb_bench_server", rv);
    return E_OK;
}

/* The answer of a single-item write: {} with the optional parts. */
static void write_answer(struct ob_buf *out, const json_t *req, const struct table *t, const char *attributes,
                         size_t attributes_len, double units)
{
    bool sep = false;
    ob_buf_putc(out, '{');
    if (attributes) {
        ob_buf_puts(out, "\"Attributes\":");
        ob_buf_append(out, attributes, attributes_len);
        sep = true;
    }
    if (wants_capacity(req)) {
        ob_buf_puts(out, sep ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
        put_capacity(out, t->name, units);
    }
    ob_buf_putc(out, '}');
}

/* Stores item (a new reference) in t, replacing any old one; the caller
 * has checked conditions. Returns the write's capacity units; *old_image
 * receives the replaced image (caller frees) when wanted. */
static double put_item(struct table *t, json_t *item, char **old_image, size_t *old_len)
{
    uint64_t h;
    struct fail ignored;
    key_of(t, item, false, &h, &ignored);
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    char *old = NULL;
    size_t old_n = 0, old_size = 0;
    if (it) {
        old = it->image;
        old_n = it->image_len;
        old_size = it->size;
        it->image = NULL;
        json_decref(it->attrs);
        it->attrs = item;
    } else {
        it = item_new(srv.key.data, srv.key.len, h, item);
        map_insert(&t->items, it);
    }
    item_refresh(it);
    stream_record(t, it->attrs, it->image, it->image_len, old, old_n);
    double units = write_units(it->size > old_size ? it->size : old_size);
    if (old_image) {
        *old_image = old;
        *old_len = old_n;
    } else {
        free(old);
    }
    return units;
}

static enum ddb_err op_put_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    enum ddb_err rc = table_of(req, &t, f);
    json_t *item = json_object_get(req, "Item");
    if (rc || (rc = return_values(req, &want_old, &want_new, f)))
        return rc;
    if (want_new)
        return fail(f, E_VALIDATION, "ReturnValues ALL_NEW is not valid for PutItem");
    if ((rc = key_of(t, item, false, &h, f)))
        return rc;
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(req, it ? it->attrs : NULL, f)))
        return rc;
    char *old = NULL;
    size_t old_len = 0;
    double units = put_item(t, json_incref(item), &old, &old_len);
    write_answer(out, req, t, old, old_len, units);
    free(old);
    return E_OK;
}

/* Removes it from t; returns the write's capacity units. *old_image
 * receives its image (caller frees) when wanted. */
static double delete_item(struct table *t, struct item *it, char **old_image, size_t *old_len)
{
    stream_record(t, it->attrs, NULL, 0, it->image, it->image_len);
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

static enum ddb_err op_delete_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    enum ddb_err rc = table_of(req, &t, f);
    if (rc || (rc = return_values(req, &want_old, &want_new, f)) ||
        (rc = key_of(t, json_object_get(req, "Key"), true, &h, f)))
        return rc;
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(req, it ? it->attrs : NULL, f)))
        return rc;
    if (!it) {
        write_answer(out, req, t, NULL, 0, 1.0);
        return E_OK;
    }
    char *old = NULL;
    size_t old_len = 0;
    double units = delete_item(t, it, want_old ? &old : NULL, &old_len);
    write_answer(out, req, t, old, old_len, units);
    free(old);
    return E_OK;
}

static bool is_key_attr(const struct table *t, const char *name)
{
    return strcmp(name, t->hash_key) == 0 || (t->range_key && strcmp(name, t->range_key) == 0);
}

static enum ddb_err op_update_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    bool want_old, want_new;
    const struct expr *e = NULL;
    struct expr *own = NULL;
    json_t *vals[MAX_ACTIONS];
    const char *names[MAX_ACTIONS];
    size_t n_vals = 0;
    const json_t *key = json_object_get(req, "Key");
    const char *src = json_string_value(json_object_get(req, "UpdateExpression"));
    enum ddb_err rc = table_of(req, &t, f);
    if (rc || (rc = return_values(req, &want_old, &want_new, f)) || (rc = key_of(t, key, true, &h, f)))
        return rc;
    if (!src)
        return fail(f, E_VALIDATION, "UpdateExpression is required by ddb_bench_server");
    struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    if ((rc = check_condition(req, it ? it->attrs : NULL, f)) || (rc = expr_get('U', src, &e, &own, f)))
        goto out;
    /* Every value is computed from the item as it was, before any is set. */
    struct eval ev = { it ? it->attrs : NULL, json_object_get(req, "ExpressionAttributeNames"),
                       json_object_get(req, "ExpressionAttributeValues"), f };
    for (; n_vals < e->n_acts; n_vals++) {
        const struct action *a = &e->acts[n_vals];
        vals[n_vals] = NULL;
        if ((rc = path_name(&ev, &e->nodes[a->path], &names[n_vals])))
            goto out;
        if (is_key_attr(t, names[n_vals])) {
            rc = fail(f, E_VALIDATION, "Cannot update attribute %s. This attribute is part of the key",
                      names[n_vals]);
            goto out;
        }
        if (!a->remove && (rc = eval_value(&ev, e, a->value, &vals[n_vals])))
            goto out;
    }
    char *old = NULL;
    size_t old_len = 0, old_size = 0;
    if (it) {
        old = it->image;
        old_len = it->image_len;
        old_size = it->size;
        it->image = NULL;
    } else {
        it = item_new(srv.key.data, srv.key.len, h, json_deep_copy(key));
        map_insert(&t->items, it);
    }
    for (size_t i = 0; i < n_vals; i++) {
        if (vals[i])
            json_object_set_new(it->attrs, names[i], vals[i]);
        else
            json_object_del(it->attrs, names[i]);
        vals[i] = NULL;
    }
    item_refresh(it);
    stream_record(t, it->attrs, it->image, it->image_len, old, old_len);
    write_answer(out, req, t, want_old ? old : want_new ? it->image : NULL, want_old ? old_len : it->image_len,
                 write_units(it->size > old_size ? it->size : old_size));
    free(old);
out:
    for (size_t i = 0; i < n_vals; i++)
        json_decref(vals[i]);
    expr_free(own);
    return rc;
}

/* Appends the item's image, or its projection when e is set. */
static void put_item_image(struct ob_buf *out, const struct item *it, const struct expr *e, const json_t *names)
{
    if (!e) {
        ob_buf_append(out, it->image, it->image_len);
        return;
    }
    struct fail ignored;
    struct eval ev = { it->attrs, names, NULL, &ignored };
    bool first = true;
    ob_buf_putc(out, '{');
    for (size_t i = 0; i < e->n_acts; i++) {
        const char *name;
        const json_t *v;
        if (path_name(&ev, &e->nodes[e->acts[i].path], &name) || !(v = json_object_get(it->attrs, name)))
            continue;
        if (!first)
            ob_buf_putc(out, ',');
        first = false;
        put_str(out, name);
        ob_buf_putc(out, ':');
        put_json(out, v);
    }
    ob_buf_putc(out, '}');
}

static enum ddb_err projection_of(const json_t *req, const struct expr **e, struct expr **own, struct fail *f)
{
    const char *src = json_string_value(json_object_get(req, "ProjectionExpression"));
    *e = NULL;
    return src ? expr_get('P', src, e, own, f) : E_OK;
}

static enum ddb_err op_get_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    uint64_t h;
    const struct expr *e = NULL;
    struct expr *own = NULL;
    enum ddb_err rc = table_of(req, &t, f);
    if (rc || (rc = key_of(t, json_object_get(req, "Key"), true, &h, f)) || (rc = projection_of(req, &e, &own, f)))
        return rc;
    const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
    bool sep = false;
    ob_buf_putc(out, '{');
    if (it) {
        ob_buf_puts(out, "\"Item\":");
        put_item_image(out, it, e, json_object_get(req, "ExpressionAttributeNames"));
        sep = true;
    }
    if (wants_capacity(req)) {
        ob_buf_puts(out, sep ? ",\"ConsumedCapacity\":" : "\"ConsumedCapacity\":");
        put_capacity(out, t->name, read_units(it ? it->size : 0, json_is_true(json_object_get(req, "ConsistentRead"))));
    }
    ob_buf_putc(out, '}');
    expr_free(own);
    return E_OK;
}

static enum ddb_err op_batch_get_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    const json_t *ri = json_object_get(req, "RequestItems"), *spec, *key;
    const char *name;
    size_t total = 0, i;
    struct ob_buf cap = { 0 };
    enum ddb_err rc = E_OK;
    if (!json_is_object(ri) || json_object_size(ri) == 0)
        return fail(f, E_VALIDATION, "RequestItems is required");
    json_object_foreach((json_t *)ri, name, spec) {
        if (!table_find(name))
            return fail(f, E_NOT_FOUND, "Requested resource not found: Table: %s not found", name);
        total += json_array_size(json_object_get(spec, "Keys"));
    }
    if (total == 0 || total > 100)
        return fail(f, E_VALIDATION, "Too many items requested for the BatchGetItem call");
    ob_buf_puts(out, "{\"Responses\":{");
    bool first_table = true;
    json_object_foreach((json_t *)ri, name, spec) {
        struct table *t = table_find(name);
        const struct expr *e = NULL;
        struct expr *own = NULL;
        double units = 0;
        bool consistent = json_is_true(json_object_get(spec, "ConsistentRead")), first = true;
        if ((rc = projection_of(spec, &e, &own, f)))
            goto out;
        if (!first_table)
            ob_buf_putc(out, ',');
        first_table = false;
        put_str(out, name);
        ob_buf_puts(out, ":[");
        json_array_foreach(json_object_get(spec, "Keys"), i, key) {
            uint64_t h;
            if ((rc = key_of(t, key, true, &h, f))) {
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
            put_item_image(out, it, e, json_object_get(spec, "ExpressionAttributeNames"));
        }
        ob_buf_putc(out, ']');
        if (cap.len)
            ob_buf_putc(&cap, ',');
        put_capacity(&cap, name, units);
        expr_free(own);
    }
    ob_buf_puts(out, "},\"UnprocessedKeys\":{}");
    if (wants_capacity(req)) {
        ob_buf_puts(out, ",\"ConsumedCapacity\":[");
        ob_buf_append(out, cap.data, cap.len);
        ob_buf_putc(out, ']');
    }
    ob_buf_putc(out, '}');
out:
    ob_buf_free(&cap);
    return rc;
}

static enum ddb_err op_batch_write_item(const json_t *req, struct ob_buf *out, struct fail *f)
{
    const json_t *ri = json_object_get(req, "RequestItems"), *writes, *w;
    const char *name;
    size_t total = 0, i;
    uint64_t h;
    if (!json_is_object(ri) || json_object_size(ri) == 0)
        return fail(f, E_VALIDATION, "RequestItems is required");
    /* Validate everything first: a batch is applied whole or not at all. */
    json_object_foreach((json_t *)ri, name, writes) {
        struct table *t = table_find(name);
        if (!t)
            return fail(f, E_NOT_FOUND, "Requested resource not found: Table: %s not found", name);
        json_array_foreach(writes, i, w) {
            const json_t *put = json_object_get(json_object_get(w, "PutRequest"), "Item");
            const json_t *del = json_object_get(json_object_get(w, "DeleteRequest"), "Key");
            enum ddb_err rc = put ? key_of(t, put, false, &h, f)
                              : del ? key_of(t, del, true, &h, f)
                                    : fail(f, E_VALIDATION, "a write request is neither PutRequest nor DeleteRequest");
            if (rc)
                return rc;
            total++;
        }
    }
    if (total == 0 || total > 25)
        return fail(f, E_VALIDATION, "Too many items requested for the BatchWriteItem call");
    bool capacity = wants_capacity(req), first = true;
    ob_buf_puts(out, capacity ? "{\"UnprocessedItems\":{},\"ConsumedCapacity\":[" : "{\"UnprocessedItems\":{}");
    json_object_foreach((json_t *)ri, name, writes) {
        struct table *t = table_find(name);
        double units = 0;
        json_array_foreach(writes, i, w) {
            json_t *put = json_object_get(json_object_get(w, "PutRequest"), "Item");
            if (put) {
                units += put_item(t, json_incref(put), NULL, NULL);
                continue;
            }
            struct fail ignored;
            key_of(t, json_object_get(json_object_get(w, "DeleteRequest"), "Key"), true, &h, &ignored);
            struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
            if (it)
                units += delete_item(t, it, NULL, NULL);
        }
        if (capacity) {
            if (!first)
                ob_buf_putc(out, ',');
            first = false;
            put_capacity(out, name, units);
        }
    }
    ob_buf_puts(out, capacity ? "]}" : "}");
    return E_OK;
}

static enum ddb_err op_scan(const json_t *req, struct ob_buf *out, struct fail *f)
{
    struct table *t;
    const struct expr *proj = NULL, *filter = NULL;
    struct expr *own_proj = NULL, *own_filter = NULL;
    const char *filter_src = json_string_value(json_object_get(req, "FilterExpression"));
    const json_t *names = json_object_get(req, "ExpressionAttributeNames");
    const json_t *start = json_object_get(req, "ExclusiveStartKey");
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    enum ddb_err rc = table_of(req, &t, f);
    if (rc || (rc = projection_of(req, &proj, &own_proj, f)) ||
        (filter_src && (rc = expr_get('C', filter_src, &filter, &own_filter, f))))
        goto out;
    size_t i = 0, count = 0, scanned = 0, bytes = 0;
    if (start) {
        uint64_t h;
        if ((rc = key_of(t, start, true, &h, f)))
            goto out;
        const struct item *it = map_get(&t->items, srv.key.data, srv.key.len, h);
        i = it ? map_slot_of(&t->items, it) + 1 : (size_t)(h & (t->items.cap ? t->items.cap - 1 : 0));
    }
    const struct item *last = NULL;
    ob_buf_puts(out, "{\"Items\":[");
    for (; i < t->items.cap && (limit <= 0 || (json_int_t)scanned < limit); i++) {
        const struct item *it = t->items.slot[i];
        if (!it)
            continue;
        scanned++;
        bytes += it->size;
        last = it;
        if (filter) {
            bool keep = false;
            struct eval ev = { it->attrs, names, json_object_get(req, "ExpressionAttributeValues"), f };
            if ((rc = eval_cond(&ev, filter, filter->root, &keep)))
                goto out;
            if (!keep)
                continue;
        }
        if (count++)
            ob_buf_putc(out, ',');
        put_item_image(out, it, proj, names);
    }
    ob_buf_printf(out, "],\"Count\":%zu,\"ScannedCount\":%zu", count, scanned);
    bool more = false;
    for (size_t j = i; j < t->items.cap && !more; j++)
        more = t->items.slot[j] != NULL;
    if (more && last) {
        ob_buf_puts(out, ",\"LastEvaluatedKey\":");
        put_keys(out, t, last->attrs);
    }
    if (wants_capacity(req)) {
        ob_buf_puts(out, ",\"ConsumedCapacity\":");
        put_capacity(out, t->name, read_units(bytes, json_is_true(json_object_get(req, "ConsistentRead"))));
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

static const struct {
    const char *target;
    op_fn fn;
} ops[] = {
    { "DynamoDB_20120810.UpdateItem", op_update_item },
    { "DynamoDB_20120810.BatchGetItem", op_batch_get_item },
    { "DynamoDB_20120810.BatchWriteItem", op_batch_write_item },
    { "DynamoDB_20120810.PutItem", op_put_item },
    { "DynamoDB_20120810.GetItem", op_get_item },
    { "DynamoDB_20120810.DeleteItem", op_delete_item },
    { "DynamoDB_20120810.Scan", op_scan },
    { "DynamoDB_20120810.CreateTable", op_create_table },
    { "DynamoDB_20120810.DeleteTable", op_delete_table },
    { "DynamoDB_20120810.DescribeTable", op_describe_table },
    { "DynamoDB_20120810.ListTables", op_list_tables },
    { "DynamoDB_20120810.UpdateTimeToLive", op_update_ttl },
    { "DynamoDB_20120810.DescribeTimeToLive", op_describe_ttl },
    { "DynamoDBStreams_20120810.GetRecords", op_get_records },
    { "DynamoDBStreams_20120810.GetShardIterator", op_get_shard_iterator },
    { "DynamoDBStreams_20120810.DescribeStream", op_describe_stream },
    { "DynamoDBStreams_20120810.ListStreams", op_list_streams },
};

/* Runs one call; the answer body goes to out, the status is returned. */
static int dispatch(const char *target, size_t target_len, const char *body, size_t body_len, struct ob_buf *out)
{
    struct fail f = { E_OK, "" };
    op_fn fn = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !fn; i++)
        if (strlen(ops[i].target) == target_len && memcmp(ops[i].target, target, target_len) == 0)
            fn = ops[i].fn;
    json_t *req = NULL;
    if (!fn) {
        fail(&f, E_UNKNOWN_OP, "ddb_bench_server does not implement %.*s", (int)target_len, target);
    } else {
        json_error_t jerr;
        req = json_loadb(body, body_len, 0, &jerr);
        if (!json_is_object(req))
            fail(&f, E_SERIALIZATION, "the request body is not a JSON object: %s", jerr.text);
        else
            fn(req, out, &f);
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
 * latency a FIFO is already sorted. */
struct pending {
    int fd;
    unsigned gen;
    uint64_t end;
    uint64_t due_ns;
};

static struct {
    int ep, listen_fd, timer_fd;
    struct conn *conns;
    size_t n_conns;
    struct pending *q;
    size_t q_cap, q_head, q_len;
    struct ob_buf body;
} loop = { -1, -1, -1, NULL, 0, NULL, 0, 0, 0, { 0 } };

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void conn_close(int fd)
{
    struct conn *c = &loop.conns[fd];
    epoll_ctl(loop.ep, EPOLL_CTL_DEL, fd, NULL);
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
    epoll_ctl(loop.ep, EPOLL_CTL_MOD, fd, &ev);
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
        ob_buf_reset(&c->out);
        if (c->close_after && c->released == c->out_base) {
            conn_close(fd);
            return -1;
        }
    } else if (c->out_off > (64u << 10)) {
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
        timer_arm(due_ns);
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
        /* Flush once per connection: later entries of the same fd follow. */
        if (!loop.q_len || loop.q[loop.q_head].fd != p.fd || loop.q[loop.q_head].due_ns > now)
            conn_flush(p.fd);
    }
    if (loop.q_len)
        timer_arm(loop.q[loop.q_head].due_ns);
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
    ob_buf_printf(&c->out,
                  "HTTP/1.1 %s\r\nx-amzn-RequestId: BENCH%024llu\r\n"
                  "Content-Type: application/x-amz-json-1.0\r\nContent-Length: %zu\r\n%s\r\n",
                  status == 200 ? "200 OK" : "400 Bad Request", (unsigned long long)++srv.request_id, body->len,
                  c->close_after ? "Connection: close\r\n" : "");
    ob_buf_append(&c->out, body->data, body->len);
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
    conn_flush(fd);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(loop.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if ((size_t)fd >= loop.n_conns) {
            size_t n = (size_t)fd * 2 + 16;
            loop.conns = ob_xrealloc(loop.conns, n * sizeof *loop.conns);
            memset(loop.conns + loop.n_conns, 0, (n - loop.n_conns) * sizeof *loop.conns);
            loop.n_conns = n;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = &loop.conns[fd];
        unsigned gen = c->gen;
        struct ob_buf in = c->in, out = c->out;
        *c = (struct conn){ .open = true, .gen = gen, .in = in, .out = out };
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
        epoll_ctl(loop.ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static int usage(void)
{
    fputs("usage: ddb_bench_server --port P [--latency-ms L] [--shards N] [--seq-width W]\n"
          "  port 0 picks a free port; the bound one is printed as \"listening on 127.0.0.1:P\"\n",
          stderr);
    return 64;
}

static bool int_arg(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int listen_on(long port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("ddb_bench_server: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    printf("listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    long port = -1, v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--port") == 0 && val && int_arg(val, 0, 65535, &port))
            i++;
        else if (strcmp(a, "--latency-ms") == 0 && val && int_arg(val, 0, 60000, &v))
            srv.latency_ms = (int)v, i++;
        else if (strcmp(a, "--shards") == 0 && val && int_arg(val, 1, 100000, &v))
            srv.shards = (unsigned)v, i++;
        else if (strcmp(a, "--seq-width") == 0 && val && int_arg(val, 12, 40, &v))
            srv.seq_width = (int)v, i++;
        else
            return usage();
    }
    if (port < 0)
        return usage();
    signal(SIGPIPE, SIG_IGN);
    loop.listen_fd = listen_on(port);
    loop.ep = epoll_create1(EPOLL_CLOEXEC);
    loop.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (loop.listen_fd < 0 || loop.ep < 0 || loop.timer_fd < 0) {
        perror("ddb_bench_server: setup");
        return 71;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = loop.listen_fd };
    epoll_ctl(loop.ep, EPOLL_CTL_ADD, loop.listen_fd, &ev);
    ev.data.fd = loop.timer_fd;
    epoll_ctl(loop.ep, EPOLL_CTL_ADD, loop.timer_fd, &ev);
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(loop.ep, evs, 512, -1);
        if (n < 0 && errno != EINTR) {
            perror("ddb_bench_server: epoll_wait");
            return 71;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == loop.listen_fd)
                accept_all();
            else if (fd == loop.timer_fd)
                release_due();
            else if (loop.conns[fd].open && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                conn_readable(fd);
            else if (loop.conns[fd].open && (evs[i].events & EPOLLOUT))
                conn_flush(fd);
        }
    }
}
