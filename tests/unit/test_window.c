/* The shard worker's window: what may be sent under each ordering, and
 * where the checkpoint may move. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "relay/window.h"
#include "test.h"

static struct ob_entry *push(struct ob_window *w, enum ob_record_kind kind, const char *pk, int seq)
{
    struct ob_record r = { .kind = kind };
    char s[32];
    snprintf(s, sizeof s, "%020d", seq);
    r.msg.pk = ob_xstrdup(pk);
    r.msg.sk = ob_xstrdup(s);
    r.msg.sequence_number = ob_xstrdup(s);
    return ob_window_push(w, &r, 0);
}

/* Pushes one message a character of keys, its key that character, with
 * sequence numbers 1, 2, ... */
static void push_keys(struct ob_window *w, const char *keys)
{
    for (int i = 0; keys[i]; i++)
        push(w, OB_RECORD_MESSAGE, (char[]){keys[i], 0}, i + 1);
}

/* The sequence numbers of the entries ready at `now` (at most max), as
 * "1,3,4"; the text lasts until the next call. */
static const char *ready_list(struct ob_window *w, int64_t now, size_t max)
{
    static char text[512];
    struct ob_entry *e[64];
    size_t n = ob_window_ready(w, now, e, max), len = 0;
    text[0] = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%d", i ? "," : "", atoi(e[i]->rec.msg.sequence_number));
    return text;
}

static struct ob_entry *entry_of(struct ob_window *w, int seq)
{
    for (size_t i = w->head; i < w->len; i++)
        if (atoi(w->v[i].rec.msg.sequence_number) == seq)
            return &w->v[i];
    return NULL;
}

static void set_state_seq(struct ob_window *w, int seq, enum ob_entry_state st)
{
    ob_window_set_state(w, entry_of(w, seq), st);
}

/* What may be sent: messages of keys (a key a character, sequence numbers
 * 1, 2, ...) under an ordering, the one of sequence number acked
 * acknowledged (0: none); at most max of them are ready, in this order. */
static const struct ready_case {
    const char *why;
    enum ob_ordering ordering;
    const char *keys;
    int acked;
    size_t max;
    const char *ready;
} ready_cases[] = {
    {"key ordering sends the first undelivered message of each key", OB_ORDER_KEY, "aabcb", 0, 8, "1,3,4"},
    {"key ordering lets the next message go once the previous is acknowledged", OB_ORDER_KEY, "aa", 1, 8, "2"},
    {"shard ordering sends one message at a time, in stream order", OB_ORDER_SHARD, "ab", 0, 8, "1"},
    {"shard ordering sends the next message once the previous is acknowledged", OB_ORDER_SHARD, "ab", 1, 8, "2"},
    {"no ordering sends everything up to the limit", OB_ORDER_NONE, "aaaaaaaaaa", 0, 4, "1,2,3,4"},
};

TEST(the_window_sends_what_every_ready_case_says)
{
    for (size_t i = 0; i < sizeof ready_cases / sizeof ready_cases[0]; i++) {
        const struct ready_case *c = &ready_cases[i];
        struct ob_window w;
        ob_window_init(&w, c->ordering);
        push_keys(&w, c->keys);
        if (c->acked)
            set_state_seq(&w, c->acked, OB_ENTRY_ACKED);
        const char *ready = ready_list(&w, 0, c->max);
        if (strcmp(ready, c->ready))
            ob_test_fail(__FILE__, __LINE__, "%s: ready %s, expected %s", c->why, ready, c->ready);
        ob_window_free(&w);
    }
}

TEST(a_message_waiting_for_its_retry_holds_back_its_key_only)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    push_keys(&w, "aab");
    entry_of(&w, 1)->next_at_ms = 500;
    CHECK_STR(ready_list(&w, 100, 8), "3");
    CHECK_INT(ob_window_next_due(&w, 100), 500);
    CHECK_STR(ready_list(&w, 500, 8), "1,3");
    ob_window_free(&w);
}

TEST(skipped_records_are_done_and_poison_ones_wait_for_the_dead_letter_path)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    CHECK_INT(push(&w, OB_RECORD_SKIP, "a", 1)->state, OB_ENTRY_DONE);
    CHECK_INT(push(&w, OB_RECORD_POISON, "a", 2)->state, OB_ENTRY_DEAD);
    push(&w, OB_RECORD_MESSAGE, "a", 3);
    CHECK_INT((int)w.undone, 2);
    CHECK_STR(ready_list(&w, 0, 8), "2");
    ob_window_free(&w);
}

TEST(the_checkpoint_moves_to_the_last_of_the_done_records_at_the_head)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    char cp[64] = "";
    push(&w, OB_RECORD_MESSAGE, "a", 1);
    push(&w, OB_RECORD_SKIP, "a", 2);
    push(&w, OB_RECORD_MESSAGE, "b", 3);
    push(&w, OB_RECORD_MESSAGE, "c", 4);
    CHECK(!ob_window_advance(&w, cp, sizeof cp));
    set_state_seq(&w, 3, OB_ENTRY_DONE);
    CHECK(!ob_window_advance(&w, cp, sizeof cp)); /* 1 is not done: nothing may pass it */
    set_state_seq(&w, 1, OB_ENTRY_DONE);
    CHECK(ob_window_advance(&w, cp, sizeof cp));
    CHECK_STR(cp, "00000000000000000003");
    CHECK_INT((int)ob_window_count(&w), 1);
    set_state_seq(&w, 4, OB_ENTRY_DONE);
    CHECK(ob_window_advance(&w, cp, sizeof cp));
    CHECK_STR(cp, "00000000000000000004");
    CHECK_INT((int)ob_window_count(&w), 0);
    CHECK_INT((int)w.undone, 0);
    ob_window_free(&w);
}

TEST(a_long_window_keeps_order_across_growth_and_compaction)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    char cp[64];
    int next = 1;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 100; i++, next++)
            push(&w, OB_RECORD_MESSAGE, i % 2 ? "odd" : "even", next);
        struct ob_entry *e[64];
        for (;;) {
            size_t n = ob_window_ready(&w, 0, e, 64);
            if (n == 0)
                break;
            CHECK((int)n <= 2);
            for (size_t k = 0; k < n; k++)
                ob_window_set_state(&w, e[k], OB_ENTRY_DONE);
            ob_window_advance(&w, cp, sizeof cp);
        }
        CHECK_INT(atoi(cp), next - 1);
    }
    CHECK_INT((int)ob_window_count(&w), 0);
    ob_window_free(&w);
}

TEST(a_waiting_key_keeps_only_the_last_of_each_run_of_done_entries_behind_it)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    push(&w, OB_RECORD_MESSAGE, "slow", 1);
    for (int seq = 2; seq <= 10000; seq++) {
        struct ob_entry *e = push(&w, OB_RECORD_MESSAGE, "fast", seq);
        if (seq != 5000)
            ob_window_set_state(&w, e, OB_ENTRY_DONE);
    }
    CHECK(w.cap <= 512);
    CHECK_INT(w.undone, 2);
    char cp[32] = "";
    CHECK(!ob_window_advance(&w, cp, sizeof cp));
    set_state_seq(&w, 1, OB_ENTRY_DONE);
    CHECK(ob_window_advance(&w, cp, sizeof cp));
    CHECK_INT(atoi(cp), 4999);
    set_state_seq(&w, 5000, OB_ENTRY_DONE);
    CHECK(ob_window_advance(&w, cp, sizeof cp));
    CHECK_INT(atoi(cp), 10000);
    CHECK_INT(ob_window_count(&w), 0);
    ob_window_free(&w);
}

TEST(the_window_counts_what_is_delivered_and_not_yet_marked)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_NONE);
    struct ob_entry *a = push(&w, OB_RECORD_MESSAGE, "a", 1);
    ob_window_set_state(&w, a, OB_ENTRY_ACKED);
    struct ob_entry *b = push(&w, OB_RECORD_MESSAGE, "b", 2);
    ob_window_set_state(&w, b, OB_ENTRY_ACKED);
    CHECK_INT(w.acked, 2);
    set_state_seq(&w, 1, OB_ENTRY_DONE);
    set_state_seq(&w, 2, OB_ENTRY_PENDING); /* its mark failed for good: delivered again */
    CHECK_INT(w.acked, 0);
    CHECK_INT(w.undone, 1);
    ob_window_free(&w);
}

/* After a crash, a message of key pk found published or not is delivered
 * again or skipped: each case a run of such messages under one ordering. */
static const struct replay_case {
    const char *why;
    enum ob_ordering ordering;
    struct {
        const char *pk;
        bool published, delivered;
    } steps[8];
} replay_cases[] = {
    /* A key's consumer never ends on an older message than it saw (13, 14
     * delivered, only 14 marked: 13, 14 go out again). */
    {"key ordering skips published messages until their key has an unpublished one, then delivers the key's every one",
     OB_ORDER_KEY,
     {{"a", true, false}, {"b", true, false}, {"a", false, true}, {"a", true, true},
      {"b", true, false}, {"b", false, true}, {"b", true, true}, {"a", true, true}}},
    {"shard ordering delivers everything after the first unpublished message",
     OB_ORDER_SHARD,
     {{"a", true, false}, {"b", false, true}, {"a", true, true}, {"c", true, true}}},
    {"without ordering every published message is skipped",
     OB_ORDER_NONE,
     {{"a", false, true}, {"a", true, false}}},
};

TEST(replay_delivers_again_or_skips_as_every_replay_case_says)
{
    for (size_t i = 0; i < sizeof replay_cases / sizeof replay_cases[0]; i++) {
        const struct replay_case *c = &replay_cases[i];
        struct ob_replay rp;
        ob_replay_init(&rp, c->ordering);
        for (size_t j = 0; j < 8 && c->steps[j].pk; j++)
            if (ob_replay_deliver(&rp, c->steps[j].pk, c->steps[j].published) != c->steps[j].delivered)
                ob_test_fail(__FILE__, __LINE__, "%s: message %zu (%s) %s", c->why, j + 1, c->steps[j].pk,
                             c->steps[j].delivered ? "skipped" : "delivered");
        ob_replay_free(&rp);
    }
}

TEST(replay_remembers_every_key_it_replays)
{
    struct ob_replay rp;
    ob_replay_init(&rp, OB_ORDER_KEY);
    char pk[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(pk, sizeof pk, "key-%d", i);
        CHECK(ob_replay_deliver(&rp, pk, false));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(pk, sizeof pk, "key-%d", i);
        CHECK(ob_replay_deliver(&rp, pk, true));
    }
    CHECK(!ob_replay_deliver(&rp, "key-5000", true));
    ob_replay_free(&rp);
}
