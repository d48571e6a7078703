/* sinks/aws_sink: how a publish's entries pack into batch calls (one
 * destination a call, the sink's entry and byte limits, a destination's
 * entries in publish order). */
#include "test.h"

#include "ops/clock.h"
#include "relay/sink_health.h"
#include "sinks/aws_sink.h"

static const struct ob_aws_batch_rules at_most_10_and_100_bytes = {.max_entries = 10, .max_bytes = 100};
static const struct ob_aws_batch_rules under_100_bytes = {.max_entries = 10, .max_bytes = 100, .bytes_below = true};

/* n entries to destinations dest[i] of sizes size[i]; packs them by r. */
static size_t pack(const struct ob_aws_batch_rules *r, const char *const *dest, const size_t *size, size_t n,
                   size_t *call_of)
{
    struct ob_aws_entry e[64] = {0};
    for (size_t i = 0; i < n; i++)
        e[i] = (struct ob_aws_entry){.destination = dest[i], .size = size[i]};
    return ob_aws_sink_pack(r, e, n, call_of);
}

TEST(aws_pack_puts_at_most_max_entries_in_a_call)
{
    const char *dest[25];
    size_t size[25], call_of[25];
    for (size_t i = 0; i < 25; i++) {
        dest[i] = "q";
        size[i] = 1;
    }
    CHECK_INT(pack(&at_most_10_and_100_bytes, dest, size, 25, call_of), 3);
    for (size_t i = 0; i < 25; i++)
        CHECK_INT(call_of[i], i / 10);
}

TEST(aws_pack_puts_each_destination_in_calls_of_its_own_its_entries_in_publish_order)
{
    const char *dest[] = {"a", "b", "a", "c", "b", "a"};
    size_t size[] = {1, 1, 1, 1, 1, 1}, call_of[6];
    CHECK_INT(pack(&at_most_10_and_100_bytes, dest, size, 6, call_of), 3);
    size_t want[] = {0, 1, 0, 2, 1, 0};
    for (size_t i = 0; i < 6; i++)
        CHECK_INT(call_of[i], want[i]);
}

TEST(aws_pack_at_most_rule_fills_a_call_to_exactly_max_bytes)
{
    const char *dest[] = {"q", "q", "q"};
    size_t size[] = {60, 40, 1}, call_of[3];
    CHECK_INT(pack(&at_most_10_and_100_bytes, dest, size, 3, call_of), 2);
    CHECK_INT(call_of[1], 0);
    CHECK_INT(call_of[2], 1);
}

TEST(aws_pack_under_rule_keeps_a_calls_bytes_below_max_bytes)
{
    const char *dest[] = {"q", "q", "q"};
    size_t size[] = {60, 40, 39}, call_of[3];
    CHECK_INT(pack(&under_100_bytes, dest, size, 3, call_of), 2);
    CHECK_INT(call_of[0], 0);
    CHECK_INT(call_of[1], 1);
    CHECK_INT(call_of[2], 1);
}

TEST(aws_pack_never_puts_a_later_entry_before_an_earlier_one_of_its_destination)
{
    /* The third fits the first call but goes after the second, in the latest. */
    const char *dest[] = {"q", "q", "q"};
    size_t size[] = {60, 60, 30}, call_of[3];
    CHECK_INT(pack(&at_most_10_and_100_bytes, dest, size, 3, call_of), 2);
    CHECK_INT(call_of[0], 0);
    CHECK_INT(call_of[1], 1);
    CHECK_INT(call_of[2], 1);
}

TEST(aws_pack_gives_an_entry_over_max_bytes_a_call_of_its_own)
{
    const char *dest[] = {"q", "q", "q"};
    size_t size[] = {1, 500, 1}, call_of[3];
    CHECK_INT(pack(&at_most_10_and_100_bytes, dest, size, 3, call_of), 3);
    CHECK_INT(call_of[1], 1);
    CHECK_INT(call_of[2], 2);
}

TEST(aws_pack_of_no_entries_is_no_call)
{
    size_t call_of[1];
    CHECK_INT(pack(&at_most_10_and_100_bytes, NULL, NULL, 0, call_of), 0);
}

/* A call failed as a whole with this error: its message's result. */
static struct ob_delivery failed_with(enum ob_err code, bool retriable, const char *aws_type)
{
    struct ob_delivery d = {0};
    struct ob_aws_call call = {.operation = "PutEvents", .result = code};
    ob_error_set(&call.err, code, "%s: refused", aws_type);
    call.err.retriable = retriable;
    snprintf(call.err.aws_type, sizeof call.err.aws_type, "%s", aws_type);
    call.http_status = 400;
    struct ob_delivery *dp = &d;
    ob_aws_sink_call_failed(&call, &dp, 1);
    return d;
}

TEST(refused_credentials_or_rights_are_retried_never_a_rejection_of_the_message)
{
    static const char *const names[] = {"SignatureDoesNotMatch", "AccessDeniedException",
                                        "UnrecognizedClientException", "KmsAccessDenied"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_INT(failed_with(OB_ERR_ACCESS_DENIED, false, names[i]).result, OB_DELIVERY_RETRY);
    /* Expired credentials outlasting the client's attempts: the message waits for new ones. */
    CHECK_INT(failed_with(OB_ERR_CREDENTIALS, true, "ExpiredTokenException").result, OB_DELIVERY_RETRY);
    CHECK_INT(failed_with(OB_ERR_THROTTLED, true, "ThrottlingException").result, OB_DELIVERY_RETRY);
    CHECK_INT(failed_with(OB_ERR_NOT_FOUND, false, "ResourceNotFoundException").result, OB_DELIVERY_REJECT);
    CHECK_INT(failed_with(OB_ERR_VALIDATION, false, "ValidationException").result, OB_DELIVERY_REJECT);
}

TEST(expired_credentials_never_count_toward_max_attempts_though_other_messages_go_through)
{
    /* Another message was answered while this one was out (signed after
     * a refresh, or refused for itself): still every message to the sink
     * waits on the same credentials, and an expired token is never a dead
     * letter (SPEC §6). */
    struct ob_sink_health h;
    memset(&h, 0, sizeof h);
    atomic_init(&h.up, true);
    int64_t sent_at = ob_mono_ms();
    ob_sink_answered(&h);
    struct ob_delivery expired = failed_with(OB_ERR_CREDENTIALS, true, "ExpiredTokenException");
    CHECK(!ob_sink_failed_retriably(&h, &expired, sent_at));
}
