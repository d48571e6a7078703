/* The sweeper's Scan of the outbox table: the requests of each segment's
 * pages, and how an answer moves its segment on. */
#include <jansson.h>

#include "dynamo/outbox_scan.h"
#include "test.h"

/* 2026-01-01T00:00:00.000Z */
#define CUTOFF_MS 1767225600000LL

static bool same_json(const json_t *got, const char *want)
{
    json_t *w = json_loads(want, 0, NULL);
    bool same = w && json_equal(got, w);
    if (!same) {
        char *text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fprintf(stderr, "  got      %s\n  expected %s\n", text ? text : "(null)", want);
        free(text);
    }
    json_decref(w);
    return same;
}

/* createdAt is compared as text, where an offset moves an instant by up
 * to 14 h: the Scan's bound is that much later than the cutoff. */
TEST(a_page_asks_for_unpublished_live_items_created_before_the_cutoff_plus_14_h)
{
    struct ob_outbox_scan scan;
    ob_outbox_scan_init(&scan, "outbox", CUTOFF_MS, false);
    json_t *req = ob_outbox_scan_request(&scan, 1, 25);
    CHECK(same_json(req, "{\"TableName\":\"outbox\",\"Segment\":1,\"TotalSegments\":4,\"Limit\":25,"
                         "\"FilterExpression\":\"(attribute_not_exists(isPublished) OR isPublished <> :t) AND "
                         "attribute_not_exists(deadLetteredAt) AND createdAt < :cutoff\","
                         "\"ExpressionAttributeValues\":{\":t\":{\"BOOL\":true},"
                         "\":cutoff\":{\"S\":\"2026-01-01T14:00:00.000Z\"}},\"ReturnConsumedCapacity\":\"TOTAL\"}"));
    json_decref(req);
    ob_outbox_scan_free(&scan);
}

TEST(undated_items_are_asked_for_only_when_included)
{
    struct ob_outbox_scan scan;
    ob_outbox_scan_init(&scan, "outbox", CUTOFF_MS, true);
    json_t *req = ob_outbox_scan_request(&scan, 0, 100);
    CHECK_STR(json_string_value(json_object_get(req, "FilterExpression")),
              "(attribute_not_exists(isPublished) OR isPublished <> :t) AND attribute_not_exists(deadLetteredAt) "
              "AND (attribute_not_exists(createdAt) OR createdAt < :cutoff)");
    json_decref(req);
    ob_outbox_scan_free(&scan);
}

TEST(a_page_moves_its_segment_on_and_the_last_page_ends_it)
{
    struct ob_outbox_scan scan;
    ob_outbox_scan_init(&scan, "outbox", CUTOFF_MS, false);
    CHECK_INT(ob_outbox_scan_left(&scan), OB_OUTBOX_SCAN_SEGMENTS);
    struct ob_outbox_scan_pages pages = { 0 };
    json_t *page = json_loads("{\"Items\":[{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"1\"}},{\"pk\":{\"S\":\"a\"},"
                              "\"sk\":{\"S\":\"2\"}}],\"ScannedCount\":5,\"ConsumedCapacity\":{\"TableName\":"
                              "\"outbox\",\"CapacityUnits\":2.5},\"LastEvaluatedKey\":{\"pk\":{\"S\":\"a\"},"
                              "\"sk\":{\"S\":\"4\"}}}",
                              0, NULL);
    ob_outbox_scan_take_page(&scan, 2, page, &pages);
    json_decref(page);
    CHECK_INT(ob_outbox_scan_left(&scan), OB_OUTBOX_SCAN_SEGMENTS);
    json_t *req = ob_outbox_scan_request(&scan, 2, 10);
    CHECK(same_json(json_object_get(req, "ExclusiveStartKey"), "{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"4\"}}"));
    json_decref(req);

    page = json_loads("{\"Items\":[{\"pk\":{\"S\":\"b\"},\"sk\":{\"S\":\"3\"}}],\"ScannedCount\":2,"
                      "\"ConsumedCapacity\":{\"TableName\":\"outbox\",\"CapacityUnits\":1}}",
                      0, NULL);
    ob_outbox_scan_take_page(&scan, 2, page, &pages);
    json_decref(page);
    CHECK_INT(ob_outbox_scan_left(&scan), OB_OUTBOX_SCAN_SEGMENTS - 1);
    CHECK(scan.done[2]);
    CHECK(same_json(pages.items, "[{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":\"1\"}},{\"pk\":{\"S\":\"a\"},\"sk\":{\"S\":"
                                 "\"2\"}},{\"pk\":{\"S\":\"b\"},\"sk\":{\"S\":\"3\"}}]"));
    CHECK(pages.units == 3.5);
    CHECK(pages.scanned == 7);
    ob_outbox_scan_pages_free(&pages);
    ob_outbox_scan_free(&scan);
}
