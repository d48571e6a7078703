/* Pure encoders: base64, ISO 8601 timestamps, UUIDv7. No I/O: the clock
 * and random bytes are the caller's inputs. */
#ifndef OB_CORE_CODEC_H
#define OB_CORE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Standard alphabet with '=' padding, appended to out. */
void ob_base64_encode(struct ob_buf *out, const void *data, size_t len);
/* Strict decode (standard alphabet, padding required, no whitespace).
 * Appends the bytes to out; returns false on any invalid input. */
bool ob_base64_decode(struct ob_buf *out, const char *s, size_t len);
/* The same into dst, which has room for len / 4 * 3 + 1 bytes: the bytes
 * and a NUL; their count in *n. */
bool ob_base64_decode_to(unsigned char *dst, const char *s, size_t len, size_t *n);

/* A UTC calendar time, computed without gmtime_r (which takes glibc's
 * time-zone lock on every call, and a mark formats one per message). */
struct ob_utc {
    int year, mon, day, hour, min, sec; /* mon and day from 1 */
};
void ob_utc_from_epoch(int64_t epoch_seconds, struct ob_utc *out);
/* Writes v as exactly width decimal digits (v >= 0); returns the end. */
char *ob_put_digits(char *w, int v, int width);

/* "2026-11-25T22:05:12.123Z" (24 chars + NUL) from milliseconds since the epoch. */
#define OB_ISO8601_LEN 25
void ob_iso8601_ms(int64_t epoch_ms, char out[OB_ISO8601_LEN]);
/* Parses RFC 3339 / ISO 8601 UTC-or-offset timestamps with optional
 * fraction into epoch milliseconds. */
bool ob_iso8601_parse(const char *s, int64_t *epoch_ms);

/* RFC 9562 UUID version 7: 48-bit ms timestamp, 74 random bits.
 * rand must hold 10 bytes. out: 36 chars + NUL. */
#define OB_UUID_STR_LEN 37
void ob_uuid7_format(int64_t epoch_ms, const uint8_t rand[10], char out[OB_UUID_STR_LEN]);

/* Lowercase hex of len bytes into out (2*len+1). */
void ob_hex_encode(const uint8_t *data, size_t len, char *out);

#endif
