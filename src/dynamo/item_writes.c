#include "dynamo/item_writes.h"

#include <stddef.h>
#include <stdlib.h>

#include "dynamo/ddb.h"
#include "dynamo/mark.h"

/* One write: its body and its call, kept for the next write (1.6 KiB,
 * past malloc's per-thread cache). The call's answer is read and
 * released as it finishes; result and err stay in it. */
struct ob_item_write {
    void *tag;
    struct ob_buf body;              /* the UpdateItem's JSON text */
    struct ob_aws_call call;
    double units;                    /* ob_ddb_raw_units of its answer */
    struct ob_item_write *next, *prev;  /* in the writer's started writes */
};

struct ob_item_writer {
    struct ob_ddb_session *s;        /* borrowed, as is table */
    const char *table;
    struct ob_item_write *started;   /* running or finished, not yet taken */
    struct ob_aws_call **calls;      /* ob_item_writer_run's, kept between runs */
    size_t calls_cap;
    double units;                    /* reported by the writes taken since the last count */
};

struct ob_item_writer *ob_item_writer_create(struct ob_ddb_session *s, const char *table)
{
    struct ob_item_writer *wr = ob_xcalloc(1, sizeof *wr);
    wr->s = s;
    wr->table = table;
    return wr;
}

struct ob_item_write *ob_item_write_new(void *tag)
{
    struct ob_item_write *x = ob_xcalloc(1, sizeof *x);
    x->tag = tag;
    return x;
}

void ob_item_write_free(struct ob_item_write *x)
{
    if (!x)
        return;
    ob_aws_call_release(&x->call);
    ob_buf_free(&x->body);
    free(x);
}

void *ob_item_write_tag(const struct ob_item_write *x)
{
    return x->tag;
}

void ob_item_write_set_mark(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                            int64_t now_ms, int64_t ttl_seconds)
{
    ob_buf_reset(&x->body);
    ob_mark_published_body(&x->body, wr->table, pk, sk, now_ms, ttl_seconds);
}

/* The rare writes are built as JSON values. */
static void set_request(struct ob_item_write *x, json_t *request)
{
    char *text = ob_ddb_request_text("UpdateItem", request);
    ob_buf_reset(&x->body);
    ob_buf_puts(&x->body, text);
    free(text);
    json_decref(request);
}

void ob_item_write_set_mark_minimal(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                    const char *sk)
{
    set_request(x, ob_mark_published_minimal_request(wr->table, pk, sk));
}

void ob_item_write_set_failed(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                              int64_t retry_count, const char *error)
{
    set_request(x, ob_mark_failed_request(wr->table, pk, sk, retry_count, error));
}

void ob_item_write_set_dead_letter(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                   const char *sk, int64_t now_ms, int64_t retry_count, const char *error,
                                   int64_t ttl_seconds)
{
    set_request(x, ob_mark_dead_letter_request(wr->table, pk, sk, now_ms, retry_count, error, ttl_seconds));
}

void ob_item_write_recycle(struct ob_item_write *x)
{
    if (x->body.cap > 4096)
        ob_buf_free(&x->body);
}

static void prepare(struct ob_item_writer *wr, struct ob_item_write *x)
{
    ob_ddb_prepare_raw_call(wr->s->ddb, &x->call, "UpdateItem", x->body.data, x->body.len);
    x->call.owner = wr;
}

/* Reads a finished write's answer and lets it go. */
static void finish(struct ob_item_writer *wr, struct ob_item_write *x)
{
    x->units = ob_ddb_raw_units(&x->call);
    if (x->units > 0)
        wr->units += x->units;
    ob_aws_call_release(&x->call);
}

static void count_units(struct ob_item_writer *wr)
{
    ob_ddb_count_units(wr->table, "UpdateItem", "write", wr->units);
    wr->units = 0;
}

static void unlink_started(struct ob_item_writer *wr, struct ob_item_write *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        wr->started = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

void ob_item_writer_start(struct ob_item_writer *wr, struct ob_item_write *x)
{
    prepare(wr, x);
    x->prev = NULL;
    x->next = wr->started;
    if (wr->started)
        wr->started->prev = x;
    wr->started = x;
    ob_aws_start(wr->s->aws, &x->call);
}

void ob_item_writer_send(struct ob_item_writer *wr)
{
    ob_ddb_session_send(wr->s);
}

void ob_item_writer_run(struct ob_item_writer *wr, struct ob_item_write *const *xs, size_t n)
{
    if (wr->calls_cap < n) {
        wr->calls_cap = n;
        wr->calls = ob_xrealloc(wr->calls, n * sizeof *wr->calls);
    }
    for (size_t i = 0; i < n; i++) {
        prepare(wr, xs[i]);
        wr->calls[i] = &xs[i]->call;
    }
    ob_aws_run(wr->s->aws, wr->calls, n);
    for (size_t i = 0; i < n; i++)
        finish(wr, xs[i]);
    count_units(wr);
}

void ob_item_writer_poll(struct ob_item_writer *wr, int timeout_ms)
{
    ob_ddb_session_poll(wr->s, timeout_ms);
}

struct ob_item_write *ob_item_writer_next_done(struct ob_item_writer *wr)
{
    struct ob_aws_call *call = ob_aws_next_done(wr->s->aws, wr);
    if (!call) {
        count_units(wr);
        return NULL;
    }
    struct ob_item_write *x = (struct ob_item_write *)((char *)call - offsetof(struct ob_item_write, call));
    unlink_started(wr, x);
    finish(wr, x);
    return x;
}

struct ob_item_write *ob_item_writer_take_back(struct ob_item_writer *wr)
{
    struct ob_item_write *x = wr->started;
    if (!x)
        return NULL;
    unlink_started(wr, x);
    ob_aws_abandon(wr->s->aws, &x->call);
    ob_aws_call_release(&x->call);
    return x;
}

void ob_item_writer_destroy(struct ob_item_writer *wr)
{
    free(wr->calls);
    free(wr);
}

enum ob_err ob_item_write_result(const struct ob_item_write *x)
{
    return x->call.result;
}

const struct ob_error *ob_item_write_error(const struct ob_item_write *x)
{
    return &x->call.err;
}

double ob_item_write_units(const struct ob_item_write *x)
{
    return x->units;
}
