/* The sweeper's read of the outbox table (SPEC §3): a Scan, in
 * OB_OUTBOX_SCAN_SEGMENTS parallel segments, for the items neither
 * published nor dead-lettered that were created before a cutoff. All the
 * items of a partition key lie in one segment, in sort-key order, so a
 * segment's pages taken in order keep each key's order. */
#ifndef OB_DYNAMO_OUTBOX_SCAN_H
#define OB_DYNAMO_OUTBOX_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/codec.h"
#include "dynamo/ddb.h"

#define OB_OUTBOX_SCAN_SEGMENTS 4

struct ob_outbox_scan {
    const char *table;                       /* borrowed */
    bool include_undated;                    /* items without createdAt too */
    char cutoff[OB_ISO8601_LEN];             /* the bound of createdAt, as text */
    json_t *start[OB_OUTBOX_SCAN_SEGMENTS];  /* ExclusiveStartKey of a segment's next page (owned); NULL: its start */
    bool done[OB_OUTBOX_SCAN_SEGMENTS];      /* the segment is read to its end */
};

/* What the pages of a round brought. */
struct ob_outbox_scan_pages {
    json_t *items;  /* segment after segment, each page's in its order (owned; ob_outbox_scan_pages_free) */
    double units;   /* read capacity units the pages consumed */
    double scanned; /* items the pages read, before the filter */
};

/* A scan of table (borrowed) from the start of every segment, for items
 * created before cutoff_ms (wall). createdAt is compared as text, where an
 * offset (-05:00) moves an instant by up to 14 h: the Scan's bound is that
 * much later, and the caller decides on each item's parsed createdAt. */
void ob_outbox_scan_init(struct ob_outbox_scan *scan, const char *table, int64_t cutoff_ms, bool include_undated);
void ob_outbox_scan_free(struct ob_outbox_scan *scan);
/* How many segments are not read to their end. */
int ob_outbox_scan_left(const struct ob_outbox_scan *scan);

/* The Scan request of segment's next page, of at most limit items read
 * (caller owns). */
json_t *ob_outbox_scan_request(const struct ob_outbox_scan *scan, int segment, int limit);
/* Takes a Scan answer of segment's page: its items, units and count go
 * into pages, and the segment moves on (or is done, on its last page). */
void ob_outbox_scan_take_page(struct ob_outbox_scan *scan, int segment, const json_t *response,
                              struct ob_outbox_scan_pages *pages);
void ob_outbox_scan_pages_free(struct ob_outbox_scan_pages *pages);

/* Reads the next page of every segment not read to its end, concurrently
 * on s, and returns when every page has answered (the session's other
 * calls make progress meanwhile). Capacity is counted as for every call.
 * A page that failed leaves its segment where it was: the others are
 * taken into pages (caller frees) all the same, and err tells the first
 * failure. */
enum ob_err ob_outbox_scan_round(struct ob_ddb_session *s, struct ob_outbox_scan *scan, int limit,
                                 struct ob_outbox_scan_pages *pages, struct ob_error *err);

#endif
