/* The fake behind dynamo/item_writes.h (see fake_item_writer.h). Writes
 * finish when they are run, polled for or taken: whatever answers were
 * set for their item, in the order they were started. */
#include "fake_item_writer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "dynamo/item_writes.h"

#define MAX_RULES 32
#define MAX_JOURNAL 4096

struct ob_item_write {
    void *tag;
    char sk[64];
    enum fake_write_kind kind;
    int64_t ttl_seconds;
    bool held;
    enum ob_err result;
    struct ob_error err;
    double units;
    struct ob_item_write *next;      /* among the started writes, in start order */
};

struct ob_item_writer {
    struct ob_item_write *started;
};

static struct rule {
    char sk[64];
    enum ob_err code;
    char aws_type[96];
    int times;                       /* left; -1: every one */
} rules[MAX_RULES];
static size_t n_rules;

static char holds[MAX_RULES][64];
static size_t n_holds;

static struct entry {
    char sk[64];
    enum fake_write_kind kind;
    int64_t ttl_seconds;
} journal[MAX_JOURNAL];
static size_t n_journal;

static struct ob_item_writer *the_writer;

void fake_writes_reset(void)
{
    n_rules = n_holds = n_journal = 0;
}

void fake_writes_fail(const char *sk, enum ob_err code, const char *aws_type, int times)
{
    struct rule *r = &rules[n_rules++];
    snprintf(r->sk, sizeof r->sk, "%s", sk);
    snprintf(r->aws_type, sizeof r->aws_type, "%s", aws_type);
    r->code = code;
    r->times = times;
}

void fake_writes_hold(const char *sk)
{
    snprintf(holds[n_holds++], sizeof holds[0], "%s", sk);
}

void fake_writes_release(void)
{
    n_holds = 0;
    for (struct ob_item_write *x = the_writer ? the_writer->started : NULL; x; x = x->next)
        x->held = false;
}

int fake_writes_count(const char *sk, enum fake_write_kind kind)
{
    int n = 0;
    for (size_t i = 0; i < n_journal; i++)
        n += strcmp(journal[i].sk, sk) == 0 && journal[i].kind == kind;
    return n;
}

int64_t fake_writes_dead_letter_ttl(const char *sk)
{
    int64_t ttl = -1;
    for (size_t i = 0; i < n_journal; i++)
        if (strcmp(journal[i].sk, sk) == 0 && journal[i].kind == FAKE_DEAD_LETTER)
            ttl = journal[i].ttl_seconds;
    return ttl;
}

size_t fake_writes_running(void)
{
    size_t n = 0;
    for (struct ob_item_write *x = the_writer ? the_writer->started : NULL; x; x = x->next)
        n++;
    return n;
}

/* ---- dynamo/item_writes.h ------------------------------------------------ */

struct ob_item_writer *ob_item_writer_create(struct ob_ddb_session *s, const char *table)
{
    (void)s;
    (void)table;
    the_writer = ob_xcalloc(1, sizeof *the_writer);
    return the_writer;
}

void ob_item_writer_destroy(struct ob_item_writer *wr)
{
    if (wr == the_writer)
        the_writer = NULL;
    free(wr);
}

void *ob_item_write_tag(const struct ob_item_write *x)
{
    return x->tag;
}

struct ob_item_write *ob_item_write_new(void *tag)
{
    struct ob_item_write *x = ob_xcalloc(1, sizeof *x);
    x->tag = tag;
    x->result = OB_ERR_INTERNAL; /* until it is answered */
    return x;
}

void ob_item_write_free(struct ob_item_write *x)
{
    free(x);
}

static void set(struct ob_item_write *x, const char *sk, enum fake_write_kind kind, int64_t ttl_seconds)
{
    snprintf(x->sk, sizeof x->sk, "%s", sk);
    x->kind = kind;
    x->ttl_seconds = ttl_seconds;
}

void ob_item_write_set_mark(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                            int64_t now_ms, int64_t ttl_seconds)
{
    (void)wr, (void)pk, (void)now_ms;
    set(x, sk, FAKE_MARK, ttl_seconds);
}

void ob_item_write_set_mark_minimal(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                    const char *sk)
{
    (void)wr, (void)pk;
    set(x, sk, FAKE_MARK_MINIMAL, 0);
}

void ob_item_write_set_failed(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk, const char *sk,
                              int64_t retry_count, const char *error)
{
    (void)wr, (void)pk, (void)retry_count, (void)error;
    set(x, sk, FAKE_FAILED, 0);
}

void ob_item_write_set_dead_letter(struct ob_item_writer *wr, struct ob_item_write *x, const char *pk,
                                   const char *sk, int64_t now_ms, int64_t retry_count, const char *error,
                                   int64_t ttl_seconds)
{
    (void)wr, (void)pk, (void)now_ms, (void)retry_count, (void)error;
    set(x, sk, FAKE_DEAD_LETTER, ttl_seconds);
}

void ob_item_write_recycle(struct ob_item_write *x)
{
    (void)x;
}

static void journal_add(const struct ob_item_write *x)
{
    if (n_journal == MAX_JOURNAL)
        abort(); /* a write in a loop: the test says so by crashing */
    struct entry *j = &journal[n_journal++];
    snprintf(j->sk, sizeof j->sk, "%s", x->sk);
    j->kind = x->kind;
    j->ttl_seconds = x->ttl_seconds;
}

/* The answer the rules give x. */
static void answer(struct ob_item_write *x)
{
    memset(&x->err, 0, sizeof x->err);
    x->result = OB_OK;
    x->units = 1.0;
    for (size_t i = 0; i < n_rules; i++) {
        struct rule *r = &rules[i];
        if (r->times == 0 || strcmp(r->sk, x->sk) != 0)
            continue;
        if (r->times > 0)
            r->times--;
        x->result = r->code;
        x->units = -1;
        ob_error_set(&x->err, r->code, "UpdateItem: %s (fake)", r->aws_type);
        snprintf(x->err.aws_type, sizeof x->err.aws_type, "%s", r->aws_type);
        return;
    }
}

void ob_item_writer_start(struct ob_item_writer *wr, struct ob_item_write *x)
{
    journal_add(x);
    x->held = false;
    for (size_t i = 0; i < n_holds; i++)
        x->held |= strcmp(holds[i], x->sk) == 0;
    x->next = NULL;
    struct ob_item_write **at = &wr->started;
    while (*at)
        at = &(*at)->next;
    *at = x;
}

void ob_item_writer_send(struct ob_item_writer *wr)
{
    (void)wr;
}

void ob_item_writer_run(struct ob_item_writer *wr, struct ob_item_write *const *xs, size_t n)
{
    (void)wr;
    for (size_t i = 0; i < n; i++) {
        journal_add(xs[i]);
        answer(xs[i]);
    }
}

void ob_item_writer_poll(struct ob_item_writer *wr, int timeout_ms)
{
    (void)wr, (void)timeout_ms;
}

struct ob_item_write *ob_item_writer_next_done(struct ob_item_writer *wr)
{
    for (struct ob_item_write **at = &wr->started; *at; at = &(*at)->next)
        if (!(*at)->held) {
            struct ob_item_write *x = *at;
            *at = x->next;
            answer(x);
            return x;
        }
    return NULL;
}

struct ob_item_write *ob_item_writer_take_back(struct ob_item_writer *wr)
{
    struct ob_item_write *x = wr->started;
    if (x)
        wr->started = x->next;
    return x;
}

enum ob_err ob_item_write_result(const struct ob_item_write *x)
{
    return x->result;
}

const struct ob_error *ob_item_write_error(const struct ob_item_write *x)
{
    return &x->err;
}

double ob_item_write_units(const struct ob_item_write *x)
{
    return x->units;
}
