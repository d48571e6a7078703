/* A minimal unit test harness. Each test_*.c is one binary; each TEST is
 * one behaviour. Output: "PASS name" / "FAIL name: file:line: what" per
 * test, then "N passed, N failed" — tests/run adds these up. */
#ifndef OB_TEST_H
#define OB_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

struct ob_test_case {
    const char *name;
    void (*fn)(void);
};

extern int ob_test_failed_now;

#define TEST(name)                                                              \
    static void name(void);                                                     \
    __attribute__((constructor)) static void register_##name(void)              \
    {                                                                           \
        ob_test_register(#name, name);                                          \
    }                                                                           \
    static void name(void)

void ob_test_register(const char *name, void (*fn)(void));
void ob_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- data files (tests/data/<area>/, read from the repository root) ---- */

/* The whole file, NUL-terminated (the length in *len when len is not
 * NULL), or NULL when it cannot be read. Owned by the caller (free). */
char *ob_test_read_file(const char *path, size_t *len);

/* A listening TCP socket on 127.0.0.1 at a free port (written to *port);
 * accept(2) on it gives up after receive_timeout_ms (0: never). Aborts
 * when the kernel refuses one. The caller closes it. */
int ob_test_listen_loopback(int receive_timeout_ms, int *port);
/* Appends the file to out; false when it cannot be read. An empty file
 * leaves out "" (never a NULL data, as libFuzzer never passes NULL). */
bool ob_test_read_buf(const char *path, struct ob_buf *out);

/* The names in dir ending in suffix, without it, sorted; the count in *n.
 * NULL (and *n 0) when dir cannot be read. Free with ob_test_names_free. */
char **ob_test_list_files(const char *dir, const char *suffix, size_t *n);
void ob_test_names_free(char **names, size_t n);

/* A case table: cases separated by blank lines; in each, "# " lines say
 * why (which behaviour the case specifies) and "key: value" lines give
 * its data, a key possibly repeated (a block of only "# " lines is about
 * the whole file). Values are the text after ": " to
 * the end of the line, except that \x{HH} stands for the byte 0xHH (so a
 * value can hold control characters and NUL). */
struct ob_test_field {
    char *key, *value;  /* value NUL-terminated after its len bytes */
    size_t len;
};

struct ob_test_row {
    const char *path;
    int line;           /* of the case's first line */
    char *why;          /* its "# " lines joined by spaces */
    struct ob_test_field *fields;
    size_t n_fields;
};

struct ob_test_table {
    char *path;
    struct ob_test_row *rows;
    size_t n;
};

/* Loads path; false (and the reason printed) when it cannot be read or a
 * line is neither "# why", "key: value" nor blank. */
bool ob_test_table_load(struct ob_test_table *t, const char *path);
void ob_test_table_free(struct ob_test_table *t);
/* The first value of key in row, or NULL. */
const struct ob_test_field *ob_test_row_field(const struct ob_test_row *row, const char *key);
const char *ob_test_row_get(const struct ob_test_row *row, const char *key);
/* Calls check on every case of the table at path, which must load and
 * hold at least one, each using only the keys of the NULL-terminated
 * list keys (so a misspelt expectation fails instead of going unchecked;
 * NULL when check refuses unknown keys itself);
 * check reports a failing case with ob_test_row_fail, so every failing
 * case is listed. */
void ob_test_each_row(const char *path, const char *const *keys, void (*check)(const struct ob_test_row *row));
/* Fails the running test naming the row (file:line and why). */
void ob_test_row_fail(const struct ob_test_row *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            ob_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);               \
            return;                                                             \
        }                                                                       \
    } while (0)

#define CHECK_INT(a, b)                                                         \
    do {                                                                        \
        long long _a = (long long)(a), _b = (long long)(b);                     \
        if (_a != _b) {                                                         \
            ob_test_fail(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", \
                         #a, _a, #b, _b);                                       \
            return;                                                             \
        }                                                                       \
    } while (0)

#define CHECK_STR(a, b)                                                         \
    do {                                                                        \
        const char *_a = (a), *_b = (b);                                        \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                \
            ob_test_fail(__FILE__, __LINE__, "%s:\n  got      \"%s\"\n  expected \"%s\"", \
                         #a, _a ? _a : "(null)", _b ? _b : "(null)");           \
            return;                                                             \
        }                                                                       \
    } while (0)

#endif
