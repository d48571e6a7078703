#include "dynamo/mark.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/codec.h"
#include "core/json_scan.h"
#include "ops/clock.h"

/* Marking publishes an item that is unpublished by the schema's rules. */
#define UNPUBLISHED "attribute_exists(pk) AND (isPublished = :b OR attribute_not_exists(isPublished))"
/* Failure records go on any item not published, a poison item's
 * malformed isPublished included. */
#define NOT_PUBLISHED "attribute_exists(pk) AND (attribute_not_exists(isPublished) OR isPublished <> :b)"

static json_t *update_request(const char *table, const char *pk, const char *sk, const char *expression,
                              const char *condition, bool b)
{
    return json_pack("{s:s,s:{s:{s:s},s:{s:s}},s:s,s:s,s:{s:{s:b}}}", "TableName", table, "Key", "pk", "S", pk,
                     "sk", "S", sk, "UpdateExpression", expression, "ConditionExpression", condition,
                     "ExpressionAttributeValues", ":b", "BOOL", b);
}

static void set_value(json_t *req, const char *name, json_t *value)
{
    json_object_set_new(json_object_get(req, "ExpressionAttributeValues"), name, value);
}

static json_t *string(const char *s)
{
    return json_pack("{s:s}", "S", s);
}

static json_t *timestamp(int64_t ms)
{
    char iso[OB_ISO8601_LEN];
    ob_iso8601_ms(ms, iso);
    return string(iso);
}

/* `ttl` is a DynamoDB reserved word. */
static void name_ttl(json_t *req)
{
    json_object_set_new(req, "ExpressionAttributeNames", json_pack("{s:s}", "#ttl", "ttl"));
}

void ob_mark_published_body(struct ob_buf *out, const char *table, const char *pk, const char *sk, int64_t now_ms,
                            int64_t ttl_seconds)
{
    char iso[OB_ISO8601_LEN];
    ob_iso8601_ms(now_ms, iso);
    ob_buf_reserve(out, 640); /* the body, in one allocation */
    ob_buf_puts(out, "{\"TableName\":");
    ob_json_put_string(out, table);
    ob_buf_puts(out, ",\"Key\":{\"pk\":{\"S\":");
    ob_json_put_string(out, pk);
    ob_buf_puts(out, "},\"sk\":{\"S\":");
    ob_json_put_string(out, sk);
    ob_buf_cat(out,
               "}},\"UpdateExpression\":\"SET isPublished = :t, publishedAt = :now, #ttl = :ttl REMOVE lastError\","
               "\"ConditionExpression\":\"" UNPUBLISHED "\","
               "\"ExpressionAttributeNames\":{\"#ttl\":\"ttl\"},"
               "\"ExpressionAttributeValues\":{\":b\":{\"BOOL\":false},\":t\":{\"BOOL\":true},"
               "\":now\":{\"S\":\"", iso, "\"},\":ttl\":{\"N\":\"", NULL);
    ob_buf_put_int(out, now_ms / 1000 + ttl_seconds);
    ob_buf_puts(out, "\"}},\"ReturnConsumedCapacity\":\"TOTAL\"}");
}

json_t *ob_mark_published_minimal_request(const char *table, const char *pk, const char *sk)
{
    json_t *req = update_request(table, pk, sk, "SET isPublished = :t REMOVE lastError", UNPUBLISHED, false);
    set_value(req, ":t", json_pack("{s:b}", "BOOL", 1));
    return req;
}

json_t *ob_mark_failed_request(const char *table, const char *pk, const char *sk, int64_t retry_count,
                               const char *error)
{
    json_t *req = update_request(table, pk, sk, "SET retryCount = :n, lastError = :e", NOT_PUBLISHED, true);
    set_value(req, ":n", ob_ddb_number(retry_count));
    set_value(req, ":e", string(error));
    return req;
}

json_t *ob_mark_dead_letter_request(const char *table, const char *pk, const char *sk, int64_t now_ms,
                                    int64_t retry_count, const char *error, int64_t ttl_seconds)
{
    json_t *req;
    if (ttl_seconds > 0) {
        req = update_request(table, pk, sk,
                             "SET deadLetteredAt = :now, retryCount = :n, lastError = :e, #ttl = :ttl",
                             NOT_PUBLISHED, true);
        name_ttl(req);
        set_value(req, ":ttl", ob_ddb_number(now_ms / 1000 + ttl_seconds));
    } else {
        req = update_request(table, pk, sk, "SET deadLetteredAt = :now, retryCount = :n, lastError = :e",
                             NOT_PUBLISHED, true);
    }
    set_value(req, ":now", timestamp(now_ms));
    set_value(req, ":n", ob_ddb_number(retry_count));
    set_value(req, ":e", string(error));
    return req;
}

bool ob_mark_error_permanent(const struct ob_error *err)
{
    /* OB_ERR_ACCESS_DENIED also names refusals of the credentials or the
     * signature (InvalidSignatureException from a skewed clock, an expired
     * or rotated token): those pass once the clock or the credentials do. */
    return err->code == OB_ERR_VALIDATION || strcmp(err->aws_type, "AccessDeniedException") == 0;
}

/* Lookups run in chunks of at most 100 keys (BatchGetItem's limit). The
 * request is written as text and the answer read with the scanner: a
 * cold start checks every record of a backlog. */
#define KEYS_PER_CALL 100

uint64_t ob_item_key_hash(const char *pk, size_t pk_len, const char *sk, size_t sk_len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < pk_len; i++)
        h = (h ^ (unsigned char)pk[i]) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (size_t i = 0; i < sk_len; i++)
        h = (h ^ (unsigned char)sk[i]) * 1099511628211ULL;
    return h;
}

/* A key's string as read from an answer: its text, decoded into owned
 * only when it had escapes (keys seldom do). */
struct key_text {
    struct ob_jspan v;
    char *owned;
};

static bool key_text_is(const struct key_text *k, const char *s)
{
    return strncmp(s, k->v.s, k->v.len) == 0 && s[k->v.len] == '\0';
}

struct lookup_chunk {
    size_t idx[KEYS_PER_CALL];  /* indexes into the keys */
    uint64_t hash[KEYS_PER_CALL];
    size_t n;
    struct ob_buf body;
    struct ob_aws_call call;
};

static void chunk_body(struct lookup_chunk *ch, const char *table, const struct ob_item_key *keys)
{
    struct ob_buf *b = &ch->body;
    ob_buf_reset(b);
    ob_buf_puts(b, "{\"RequestItems\":{");
    ob_json_put_string(b, table);
    ob_buf_puts(b, ":{\"Keys\":[");
    for (size_t i = 0; i < ch->n; i++) {
        const struct ob_item_key *k = &keys[ch->idx[i]];
        ob_buf_puts(b, i ? ",{\"pk\":{\"S\":" : "{\"pk\":{\"S\":");
        ob_json_put_string(b, k->pk);
        ob_buf_puts(b, "},\"sk\":{\"S\":");
        ob_json_put_string(b, k->sk);
        ob_buf_puts(b, "}}");
    }
    ob_buf_puts(b, "],\"ConsistentRead\":true,\"ProjectionExpression\":\"pk, sk, isPublished, deadLetteredAt\"}},"
                   "\"ReturnConsumedCapacity\":\"TOTAL\"}");
}

/* The value of a {"S": ...} attribute into *out; false when there is
 * none or it does not decode. */
static bool scan_attr_s(struct ob_jscan *s, struct key_text *out)
{
    struct ob_jspan k, v;
    bool found = false;
    if (!ob_jscan_try_object(s))
        return false;
    while (ob_jscan_key(s, &k))
        if (!found && ob_jspan_is(&k, "S") && ob_jscan_string(s, &v)) {
            out->v = v;
            if (v.escaped) {
                out->owned = ob_jspan_dup(&v);
                out->v = (struct ob_jspan){ .s = out->owned, .len = out->owned ? strlen(out->owned) : 0 };
            }
            found = out->v.s != NULL;
        } else {
            ob_jscan_skip(s);
        }
    return found;
}

/* An item or a key: pk, sk and its state from isPublished (false when
 * absent) and deadLetteredAt. Which of the chunk's keys it is, or -1. */
static long scan_item(struct ob_jscan *s, const struct lookup_chunk *ch, const struct ob_item_key *keys,
                      enum ob_item_state *state)
{
    struct ob_jspan k;
    struct key_text pk = { 0 }, sk = { 0 };
    bool has_pk = false, has_sk = false;
    long which = -1;
    bool published = false, dead_lettered = false;
    if (!ob_jscan_try_object(s))
        return -1;
    while (ob_jscan_key(s, &k)) {
        if (ob_jspan_is(&k, "pk") && !has_pk) {
            has_pk = scan_attr_s(s, &pk);
        } else if (ob_jspan_is(&k, "sk") && !has_sk) {
            has_sk = scan_attr_s(s, &sk);
        } else if (ob_jspan_is(&k, "isPublished") && ob_jscan_try_object(s)) {
            while (ob_jscan_key(s, &k))
                if (!(ob_jspan_is(&k, "BOOL") && ob_jscan_bool(s, &published)))
                    ob_jscan_skip(s);
        } else if (ob_jspan_is(&k, "deadLetteredAt")) {
            dead_lettered = true;
            ob_jscan_skip(s);
        } else {
            ob_jscan_skip(s);
        }
    }
    if (has_pk && has_sk) {
        uint64_t h = ob_item_key_hash(pk.v.s, pk.v.len, sk.v.s, sk.v.len);
        for (size_t i = 0; i < ch->n && which < 0; i++)
            if (ch->hash[i] == h && key_text_is(&pk, keys[ch->idx[i]].pk) && key_text_is(&sk, keys[ch->idx[i]].sk))
                which = (long)i;
    }
    free(pk.owned);
    free(sk.owned);
    *state = published ? OB_ITEM_PUBLISHED : dead_lettered ? OB_ITEM_DEAD_LETTERED : OB_ITEM_UNPUBLISHED;
    return which;
}

/* Reads a chunk's answer: the states of the items found, the keys left
 * unprocessed (appended to *todo), the read units. False if the answer
 * is not what BatchGetItem returns. */
static bool read_answer(struct lookup_chunk *ch, const char *table, const struct ob_item_key *keys,
                        enum ob_item_state *states, size_t *todo, size_t *n_todo, double *units)
{
    struct ob_jscan s;
    struct ob_jspan k, num;
    enum ob_item_state state;
    ob_jscan_init(&s, ch->call.rx.data ? ch->call.rx.data : "", ch->call.rx.len);
    if (!ob_jscan_object(&s))
        return false;
    while (ob_jscan_key(&s, &k)) {
        if (ob_jspan_is(&k, "Responses") && ob_jscan_try_object(&s)) {
            while (ob_jscan_key(&s, &k)) {
                if (!ob_jspan_is(&k, table) || !ob_jscan_try_array(&s)) {
                    ob_jscan_skip(&s);
                    continue;
                }
                while (ob_jscan_element(&s)) {
                    long i = scan_item(&s, ch, keys, &state);
                    if (i >= 0)
                        states[ch->idx[i]] = state;
                }
            }
        } else if (ob_jspan_is(&k, "UnprocessedKeys") && ob_jscan_try_object(&s)) {
            while (ob_jscan_key(&s, &k)) {
                if (!ob_jspan_is(&k, table) || !ob_jscan_try_object(&s)) {
                    ob_jscan_skip(&s);
                    continue;
                }
                while (ob_jscan_key(&s, &k)) {
                    if (!ob_jspan_is(&k, "Keys") || !ob_jscan_try_array(&s)) {
                        ob_jscan_skip(&s);
                        continue;
                    }
                    while (ob_jscan_element(&s)) {
                        long i = scan_item(&s, ch, keys, &state);
                        if (i >= 0)
                            todo[(*n_todo)++] = ch->idx[i];
                    }
                }
            }
        } else if (ob_jspan_is(&k, "ConsumedCapacity") && ob_jscan_try_array(&s)) {
            while (ob_jscan_element(&s)) {
                if (!ob_jscan_try_object(&s))
                    continue;
                while (ob_jscan_key(&s, &k))
                    if (ob_jspan_is(&k, "CapacityUnits") && ob_jscan_number(&s, &num))
                        *units += ob_jspan_double(&num);
                    else
                        ob_jscan_skip(&s);
            }
        } else {
            ob_jscan_skip(&s);
        }
    }
    return !s.failed && ob_jscan_done(&s);
}

/* BatchGetItem per 100 keys, the chunks of a round concurrently; each
 * round asks again for what the last one left unprocessed. */
struct ob_items_lookup {
    struct ob_ddb_session *s;        /* borrowed, as are table, keys and states */
    const char *table;
    const struct ob_item_key *keys;
    enum ob_item_state *states;
    struct lookup_chunk *chunks;
    size_t n_chunks;                 /* allocated: the first round's count, the most any round needs */
    size_t k;                        /* chunks in the current round */
    size_t pending;                  /* of them, still running (ob_items_lookup_start) */
    size_t *todo, *left, n_todo, n_left;
    int round;
    int64_t next_round_ms;           /* when keys are left unprocessed: the next round starts then */
    enum ob_err rc;
    struct ob_error err;
};

static struct ob_items_lookup *lookup_new(struct ob_ddb_session *s, const char *table,
                                          const struct ob_item_key *keys, size_t n, enum ob_item_state *states)
{
    struct ob_items_lookup *l = ob_xcalloc(1, sizeof *l);
    l->s = s;
    l->table = table;
    l->keys = keys;
    l->states = states;
    l->n_chunks = n ? (n + KEYS_PER_CALL - 1) / KEYS_PER_CALL : 1;
    l->chunks = ob_xcalloc(l->n_chunks, sizeof *l->chunks);
    l->todo = ob_xmalloc((n ? n : 1) * sizeof *l->todo);
    l->left = ob_xmalloc((n ? n : 1) * sizeof *l->left);
    l->n_todo = n;
    for (size_t i = 0; i < n; i++) {
        states[i] = OB_ITEM_UNKNOWN;
        l->todo[i] = i;
    }
    return l;
}

static void lookup_free(struct ob_items_lookup *l)
{
    /* Every chunk's body: a later round may use fewer chunks than the first. */
    for (size_t i = 0; i < l->n_chunks; i++) {
        ob_aws_call_release(&l->chunks[i].call);
        ob_buf_free(&l->chunks[i].body);
    }
    free(l->chunks);
    free(l->todo);
    free(l->left);
    free(l);
}

static bool rounds_left(const struct ob_items_lookup *l)
{
    return l->rc == OB_OK && l->n_todo;
}

/* Builds the round's calls for the keys still to do. */
static void round_prepare(struct ob_items_lookup *l)
{
    l->k = 0;
    l->n_left = 0;
    for (size_t at = 0; at < l->n_todo; l->k++) {
        struct lookup_chunk *ch = &l->chunks[l->k];
        for (ch->n = 0; ch->n < KEYS_PER_CALL && at < l->n_todo; ch->n++, at++) {
            ch->idx[ch->n] = l->todo[at];
            const struct ob_item_key *k = &l->keys[l->todo[at]];
            ch->hash[ch->n] = ob_item_key_hash(k->pk, strlen(k->pk), k->sk, strlen(k->sk));
        }
        chunk_body(ch, l->table, l->keys);
        ob_ddb_prepare_raw_call(l->s->ddb, &ch->call, "BatchGetItem", ch->body.data, ch->body.len);
        ch->call.owner = l;
    }
}

/* Reads the answers of a round whose calls are all done. */
static void round_settle(struct ob_items_lookup *l)
{
    double units = 0;
    for (size_t i = 0; i < l->k; i++) {
        struct lookup_chunk *ch = &l->chunks[i];
        if (ch->call.result != OB_OK) {
            if (l->rc == OB_OK) {
                l->rc = ch->call.result;
                l->err = ch->call.err;
                ob_error_prefix(&l->err, "BatchGetItem %s", l->table);
            }
        } else if (!read_answer(ch, l->table, l->keys, l->states, l->left, &l->n_left, &units) && l->rc == OB_OK) {
            l->rc = ob_error_set(&l->err, OB_ERR_SERVICE, "BatchGetItem %s: the answer is not a BatchGetItem answer",
                                 l->table);
        }
        ob_aws_call_release(&ch->call);
    }
    ob_ddb_count_units(l->table, "BatchGetItem", "read", units);
    size_t *t = l->todo;
    l->todo = l->left;
    l->left = t;
    l->n_todo = l->n_left;
    l->round++;
}

/* Starts the round's calls for the keys still to do. */
static void round_start(struct ob_items_lookup *l)
{
    round_prepare(l);
    for (size_t i = 0; i < l->k; i++)
        ob_aws_start(l->s->aws, &l->chunks[i].call);
    l->pending = l->k;
    ob_aws_send(l->s->aws); /* they go out now */
}

struct ob_items_lookup *ob_items_lookup_start(struct ob_ddb_session *s, const char *table,
                                              const struct ob_item_key *keys, size_t n,
                                              enum ob_item_state *states)
{
    struct ob_items_lookup *l = lookup_new(s, table, keys, n, states);
    round_start(l);
    return l;
}

bool ob_items_lookup_poll(struct ob_items_lookup *l)
{
    while (l->pending && ob_aws_next_done(l->s->aws, l))
        l->pending--;
    if (l->pending)
        return false;
    if (l->k) {
        round_settle(l);
        l->k = 0;
        /* Unprocessed keys mean throttling: back off before asking again. */
        if (rounds_left(l)) {
            static const struct ob_backoff unprocessed = { .initial_ms = 50, .max_ms = 5000 };
            l->next_round_ms = ob_mono_ms() + ob_backoff_exponential_ms(&unprocessed, l->round); /* rounds done */
        }
    }
    if (!rounds_left(l))
        return true;
    if (ob_mono_ms() >= l->next_round_ms)
        round_start(l);
    return false;
}

enum ob_err ob_items_lookup_finish(struct ob_items_lookup *l, struct ob_error *err)
{
    enum ob_err rc = l->rc;
    if (rc)
        *err = l->err;
    lookup_free(l);
    return rc;
}

void ob_items_lookup_abandon(struct ob_items_lookup *l)
{
    for (size_t i = 0; i < l->k; i++)
        ob_aws_abandon(l->s->aws, &l->chunks[i].call);
    lookup_free(l);
}
