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

/* The sequence numbers (as ints) of the entries ready at `now`. */
static int ready_seqs(struct ob_window *w, int64_t now, int *out, size_t max)
{
    struct ob_entry *e[64];
    size_t n = ob_window_ready(w, now, e, max);
    for (size_t i = 0; i < n; i++)
        out[i] = atoi(e[i]->rec.msg.sequence_number);
    return (int)n;
}

static void set_state_seq(struct ob_window *w, int seq, enum ob_entry_state st)
{
    for (size_t i = w->head; i < w->len; i++)
        if (atoi(w->v[i].rec.msg.sequence_number) == seq)
            ob_window_set_state(w, &w->v[i], st);
}

TEST(key_ordering_sends_the_first_undelivered_message_of_each_key)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    push(&w, OB_RECORD_MESSAGE, "a", 1);
    push(&w, OB_RECORD_MESSAGE, "a", 2);
    push(&w, OB_RECORD_MESSAGE, "b", 3);
    push(&w, OB_RECORD_MESSAGE, "c", 4);
    push(&w, OB_RECORD_MESSAGE, "b", 5);
    int s[8];
    CHECK_INT(ready_seqs(&w, 0, s, 8), 3);
    CHECK_INT(s[0], 1);
    CHECK_INT(s[1], 3);
    CHECK_INT(s[2], 4);
    ob_window_free(&w);
}

TEST(key_ordering_lets_the_next_message_go_once_the_previous_is_acknowledged)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    push(&w, OB_RECORD_MESSAGE, "a", 1);
    push(&w, OB_RECORD_MESSAGE, "a", 2);
    set_state_seq(&w, 1, OB_ENTRY_ACKED);
    int s[8];
    CHECK_INT(ready_seqs(&w, 0, s, 8), 1);
    CHECK_INT(s[0], 2);
    ob_window_free(&w);
}

TEST(a_message_waiting_for_its_retry_holds_back_its_key_only)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_KEY);
    push(&w, OB_RECORD_MESSAGE, "a", 1)->next_at_ms = 500;
    push(&w, OB_RECORD_MESSAGE, "a", 2);
    push(&w, OB_RECORD_MESSAGE, "b", 3);
    int s[8];
    CHECK_INT(ready_seqs(&w, 100, s, 8), 1);
    CHECK_INT(s[0], 3);
    CHECK_INT(ob_window_next_due(&w, 100), 500);
    CHECK_INT(ready_seqs(&w, 500, s, 8), 2);
    CHECK_INT(s[0], 1);
    ob_window_free(&w);
}

TEST(shard_ordering_sends_one_message_at_a_time_in_stream_order)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_SHARD);
    push(&w, OB_RECORD_MESSAGE, "a", 1);
    push(&w, OB_RECORD_MESSAGE, "b", 2);
    int s[8];
    CHECK_INT(ready_seqs(&w, 0, s, 8), 1);
    CHECK_INT(s[0], 1);
    set_state_seq(&w, 1, OB_ENTRY_ACKED);
    CHECK_INT(ready_seqs(&w, 0, s, 8), 1);
    CHECK_INT(s[0], 2);
    ob_window_free(&w);
}

TEST(no_ordering_sends_everything_up_to_the_limit)
{
    struct ob_window w;
    ob_window_init(&w, OB_ORDER_NONE);
    for (int i = 1; i <= 10; i++)
        push(&w, OB_RECORD_MESSAGE, "a", i);
    int s[8];
    CHECK_INT(ready_seqs(&w, 0, s, 4), 4);
    CHECK_INT(s[3], 4);
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
    int s[8];
    CHECK_INT(ready_seqs(&w, 0, s, 8), 1);
    CHECK_INT(s[0], 2);
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

/* After a crash: a key's old published messages are skipped until one of
 * its messages is found unpublished; from there on every old message of
 * that key goes out again, so the key's consumer never ends on an older
 * message than it saw (13, 14 delivered, only 14 marked: 13, 14 again). */
TEST(replay_skips_published_messages_until_their_key_has_an_unpublished_one)
{
    struct ob_replay rp;
    ob_replay_init(&rp, OB_ORDER_KEY);
    CHECK(!ob_replay_deliver(&rp, "a", true));
    CHECK(!ob_replay_deliver(&rp, "b", true));
    CHECK(ob_replay_deliver(&rp, "a", false));
    CHECK(ob_replay_deliver(&rp, "a", true));
    CHECK(!ob_replay_deliver(&rp, "b", true));
    CHECK(ob_replay_deliver(&rp, "b", false));
    CHECK(ob_replay_deliver(&rp, "b", true));
    CHECK(ob_replay_deliver(&rp, "a", true));
    ob_replay_free(&rp);
}

TEST(replay_with_shard_ordering_delivers_everything_after_the_first_unpublished)
{
    struct ob_replay rp;
    ob_replay_init(&rp, OB_ORDER_SHARD);
    CHECK(!ob_replay_deliver(&rp, "a", true));
    CHECK(ob_replay_deliver(&rp, "b", false));
    CHECK(ob_replay_deliver(&rp, "a", true));
    CHECK(ob_replay_deliver(&rp, "c", true));
    ob_replay_free(&rp);
}

TEST(replay_without_ordering_skips_every_published_message)
{
    struct ob_replay rp;
    ob_replay_init(&rp, OB_ORDER_NONE);
    CHECK(ob_replay_deliver(&rp, "a", false));
    CHECK(!ob_replay_deliver(&rp, "a", true));
    ob_replay_free(&rp);
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
