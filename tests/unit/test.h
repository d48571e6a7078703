/* A minimal unit test harness. Each test_*.c is one binary; each TEST is
 * one behaviour. Output: "PASS name" / "FAIL name: file:line: what" per
 * test, then "N passed, N failed" — tests/run adds these up. */
#ifndef OB_TEST_H
#define OB_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
