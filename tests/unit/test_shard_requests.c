/* What a shard worker's dynamo operations ask: the GetRecords of a page
 * and the checkpoint write, conditional on the lease's owner. */
#include "core/buf.h"
#include "dynamo/leases.h"
#include "dynamo/streams.h"
#include "test.h"

TEST(a_records_read_asks_for_its_iterator_and_limit_with_the_iterator_escaped)
{
    struct ob_buf b = { 0 };
    ob_get_records_body(&b, "arn:aws:dynamodb:x|1|\"q\"\\", 250);
    CHECK_STR(b.data, "{\"ShardIterator\":\"arn:aws:dynamodb:x|1|\\\"q\\\"\\\\\",\"Limit\":250}");
    ob_buf_free(&b);
}

TEST(a_checkpoint_write_stores_checkpoint_and_time_only_while_the_owner_holds_the_lease)
{
    json_t *req = ob_checkpoint_request("leases", "shardId-1", "me-1", "000123", 1700000000123);
    char *text = json_dumps(req, JSON_COMPACT);
    CHECK_STR(text, "{\"TableName\":\"leases\",\"Key\":{\"leaseKey\":{\"S\":\"shardId-1\"}},"
                    "\"UpdateExpression\":\"SET checkpoint = :c, checkpointAt = :t\","
                    "\"ConditionExpression\":\"leaseOwner = :me\","
                    "\"ExpressionAttributeValues\":{\":c\":{\"S\":\"000123\"},"
                    "\":t\":{\"S\":\"2023-11-14T22:13:20.123Z\"},\":me\":{\"S\":\"me-1\"}}}");
    free(text);
    json_decref(req);
}
