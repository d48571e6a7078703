/* The bodies of the relay's writes to outbox items (run by
 * dynamo/item_writes.h): mark published, record a failed attempt, record
 * a dead letter; and the cold-start check of which candidates are already
 * published. Every write is conditional on the item existing and not
 * being published, so a late or repeated write never undoes a
 * publication. */
#ifndef OB_DYNAMO_MARK_H
#define OB_DYNAMO_MARK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "dynamo/ddb.h"

/* The mark-published UpdateItem body, as JSON text with
 * ReturnConsumedCapacity TOTAL, appended to out. Written without a DOM:
 * it is the relay's most frequent call. */
void ob_mark_published_body(struct ob_buf *out, const char *table, const char *pk, const char *sk, int64_t now_ms,
                            int64_t ttl_seconds);

/* Request bodies for UpdateItem (caller owns: json_decref). */
/* The smallest mark: isPublished = true without publishedAt and ttl, for
 * an item the whole mark would take past DynamoDB's 400 KB. */
json_t *ob_mark_published_minimal_request(const char *table, const char *pk, const char *sk);
json_t *ob_mark_failed_request(const char *table, const char *pk, const char *sk, int64_t retry_count,
                               const char *error);
/* ttl_seconds 0: no ttl (the item stays until an operator acts). */
json_t *ob_mark_dead_letter_request(const char *table, const char *pk, const char *sk, int64_t now_ms,
                                    int64_t retry_count, const char *error, int64_t ttl_seconds);

/* Whether a failed write of an item will fail again however often it is
 * tried: ValidationException (such as the 400 KB item size) and
 * AccessDeniedException (a policy denies it). A refused signature or token
 * (InvalidSignatureException, ExpiredTokenException,
 * UnrecognizedClientException, MissingAuthenticationToken) is not: a
 * clock or credentials that were off for a while (SPEC §6). */
bool ob_mark_error_permanent(const struct ob_error *err);

/* A dead-lettered item (deadLetteredAt set) is handled, though not
 * published (SPEC §3). OB_ITEM_UNKNOWN: the answer does not name the
 * item, which may be deleted or merely left out of it. */
enum ob_item_state { OB_ITEM_UNKNOWN, OB_ITEM_UNPUBLISHED, OB_ITEM_PUBLISHED, OB_ITEM_DEAD_LETTERED };

/* FNV-1a over pk, a separator, sk: where an item is kept in a hash table
 * (equal hashes are told apart by the keys). */
uint64_t ob_item_key_hash(const char *pk, size_t pk_len, const char *sk, size_t sk_len);

struct ob_item_key {
    const char *pk;
    const char *sk;
};

/* Looks up the publication state of n items with BatchGetItem (100 keys a
 * call, strongly consistent) while its caller works on: the calls run on
 * the session (started with the lookup as their owner). Each
 * ob_items_lookup_poll takes what finished and, for keys left unprocessed
 * (throttling), starts another round after a backoff (50 ms doubling, at
 * most 5 s), until it says the lookup is done; ob_items_lookup_finish then
 * gives its outcome (states[i] answers keys[i]) and frees it. Keys must be
 * distinct; table, keys and states are borrowed until then.
 * ob_items_lookup_abandon takes running calls back and frees the lookup. */
struct ob_items_lookup;
struct ob_items_lookup *ob_items_lookup_start(struct ob_ddb_session *s, const char *table,
                                              const struct ob_item_key *keys, size_t n,
                                              enum ob_item_state *states);
bool ob_items_lookup_poll(struct ob_items_lookup *l);
enum ob_err ob_items_lookup_finish(struct ob_items_lookup *l, struct ob_error *err);
void ob_items_lookup_abandon(struct ob_items_lookup *l);

#endif
