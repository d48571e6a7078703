/* Runs every registered TEST, or those whose name contains argv[1]. */
#include "test.h"

#include <stdarg.h>

#define MAX_TESTS 1024

static struct ob_test_case tests[MAX_TESTS];
static int n_tests;
int ob_test_failed_now;

void ob_test_register(const char *name, void (*fn)(void))
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void ob_test_fail(const char *file, int line, const char *fmt, ...)
{
    ob_test_failed_now = 1;
    fprintf(stdout, "  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct ob_test_case *)a)->name, ((const struct ob_test_case *)b)->name);
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    qsort(tests, (size_t)n_tests, sizeof tests[0], by_name);
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && !strstr(tests[i].name, argv[1]))
            continue;
        ob_test_failed_now = 0;
        tests[i].fn();
        fflush(stderr);
        if (ob_test_failed_now) {
            printf("FAIL %s\n", tests[i].name);
            failed++;
        } else {
            printf("PASS %s\n", tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
