#include "dynamo/outbox_scan.h"

#include <stdlib.h>
#include <string.h>

#define OFFSET_SLACK_MS (14 * 3600 * 1000LL)

void ob_outbox_scan_init(struct ob_outbox_scan *scan, const char *table, int64_t cutoff_ms, bool include_undated)
{
    memset(scan, 0, sizeof *scan);
    scan->table = table;
    scan->include_undated = include_undated;
    ob_iso8601_ms(cutoff_ms + OFFSET_SLACK_MS, scan->cutoff);
}

void ob_outbox_scan_free(struct ob_outbox_scan *scan)
{
    for (int i = 0; i < OB_OUTBOX_SCAN_SEGMENTS; i++) {
        json_decref(scan->start[i]);
        scan->start[i] = NULL;
    }
}

int ob_outbox_scan_left(const struct ob_outbox_scan *scan)
{
    int n = 0;
    for (int i = 0; i < OB_OUTBOX_SCAN_SEGMENTS; i++)
        n += !scan->done[i];
    return n;
}

json_t *ob_outbox_scan_request(const struct ob_outbox_scan *scan, int segment, int limit)
{
    /* Without createdAt nothing tells whether the stream still has it. */
    const char *filter = scan->include_undated
                             ? "(attribute_not_exists(isPublished) OR isPublished <> :t) AND "
                               "attribute_not_exists(deadLetteredAt) AND (attribute_not_exists(createdAt) OR "
                               "createdAt < :cutoff)"
                             : "(attribute_not_exists(isPublished) OR isPublished <> :t) AND "
                               "attribute_not_exists(deadLetteredAt) AND createdAt < :cutoff";
    json_t *req = json_pack("{s:s,s:i,s:i,s:i,s:s,s:{s:{s:b},s:{s:s}},s:s}", "TableName", scan->table, "Segment",
                            segment, "TotalSegments", OB_OUTBOX_SCAN_SEGMENTS, "Limit", limit, "FilterExpression",
                            filter, "ExpressionAttributeValues", ":t", "BOOL", 1, ":cutoff", "S", scan->cutoff,
                            "ReturnConsumedCapacity", "TOTAL");
    if (scan->start[segment])
        json_object_set(req, "ExclusiveStartKey", scan->start[segment]);
    return req;
}

void ob_outbox_scan_take_page(struct ob_outbox_scan *scan, int segment, const json_t *response,
                              struct ob_outbox_scan_pages *pages)
{
    if (!pages->items)
        pages->items = json_array();
    pages->units += json_number_value(json_object_get(json_object_get(response, "ConsumedCapacity"),
                                                      "CapacityUnits"));
    pages->scanned += json_number_value(json_object_get(response, "ScannedCount"));
    json_array_extend(pages->items, json_object_get(response, "Items"));
    json_decref(scan->start[segment]);
    scan->start[segment] = json_incref(json_object_get(response, "LastEvaluatedKey"));
    scan->done[segment] = scan->start[segment] == NULL;
}

void ob_outbox_scan_pages_free(struct ob_outbox_scan_pages *pages)
{
    json_decref(pages->items);
    pages->items = NULL;
}

enum ob_err ob_outbox_scan_round(struct ob_ddb_session *s, struct ob_outbox_scan *scan, int limit,
                                 struct ob_outbox_scan_pages *pages, struct ob_error *err)
{
    json_t *requests[OB_OUTBOX_SCAN_SEGMENTS], *responses[OB_OUTBOX_SCAN_SEGMENTS];
    enum ob_err results[OB_OUTBOX_SCAN_SEGMENTS];
    struct ob_error errs[OB_OUTBOX_SCAN_SEGMENTS];
    int which[OB_OUTBOX_SCAN_SEGMENTS], n = 0;
    for (int i = 0; i < OB_OUTBOX_SCAN_SEGMENTS; i++) {
        if (scan->done[i])
            continue;
        requests[n] = ob_outbox_scan_request(scan, i, limit);
        which[n++] = i;
    }
    ob_ddb_call_all(s, "Scan", requests, (size_t)n, results, responses, errs);
    enum ob_err rc = OB_OK;
    for (int k = 0; k < n; k++) {
        if (results[k] == OB_OK) {
            ob_outbox_scan_take_page(scan, which[k], responses[k], pages);
        } else if (!rc) {
            rc = results[k];
            *err = errs[k];
            ob_error_prefix(err, "Scan %s", scan->table);
        }
        json_decref(responses[k]);
        json_decref(requests[k]);
    }
    return rc;
}
