/* A fake DynamoDB behind dynamo/item_writes.h, linked instead of the real
 * writer: no session, no sockets. Every write succeeds (one unit) unless
 * the test says otherwise for its item (by sk); it keeps a journal of the
 * writes it was given. */
#ifndef OB_TEST_FAKE_ITEM_WRITER_H
#define OB_TEST_FAKE_ITEM_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "outboxd/error.h"

enum fake_write_kind { FAKE_MARK, FAKE_MARK_MINIMAL, FAKE_FAILED, FAKE_DEAD_LETTER };

/* Forgets every answer, hold and journal entry. */
void fake_writes_reset(void);

/* The next `times` writes of the item sk (any kind; -1: every one) fail
 * with code, aws_type naming the DynamoDB error; after them it succeeds. */
void fake_writes_fail(const char *sk, enum ob_err code, const char *aws_type, int times);

/* Started writes of the item sk finish only after fake_writes_release:
 * answers that come late, after later waves. */
void fake_writes_hold(const char *sk);
void fake_writes_release(void);

/* How many writes of kind were given for the item sk (started or run). */
int fake_writes_count(const char *sk, enum fake_write_kind kind);
/* The ttl_seconds of the last dead-letter record of sk (-1: none). */
int64_t fake_writes_dead_letter_ttl(const char *sk);
/* Started writes not yet taken back. */
size_t fake_writes_running(void);

#endif
