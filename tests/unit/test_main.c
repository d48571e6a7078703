/* Runs every registered TEST, or those whose name contains argv[1]. */
#include "test.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "core/buf.h"

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

bool ob_test_read_buf(const char *path, struct ob_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ob_buf_append(out, chunk, n);
    bool ok = !ferror(f);
    fclose(f);
    if (!out->data)
        ob_buf_puts(out, "");
    return ok;
}

char *ob_test_read_file(const char *path, size_t *len)
{
    struct ob_buf b = {0};
    if (!ob_test_read_buf(path, &b)) {
        ob_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return ob_buf_steal(&b);
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **ob_test_list_files(const char *dir, const char *suffix, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    size_t suffix_len = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > suffix_len && !strcmp(e->d_name + len - suffix_len, suffix)) {
            names = ob_xrealloc(names, (*n + 1) * sizeof *names);
            names[(*n)++] = ob_xstrndup(e->d_name, len - suffix_len);
        }
    }
    closedir(d);
    qsort(names, *n, sizeof *names, by_string);
    return names;
}

void ob_test_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Appends value[0..len) to out with each \x{HH} as its byte. */
static void put_unescaped(struct ob_buf *out, const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (len - i >= 6 && !memcmp(value + i, "\\x{", 3) && isxdigit((unsigned char)value[i + 3]) &&
            isxdigit((unsigned char)value[i + 4]) && value[i + 5] == '}') {
            ob_buf_putc(out, (char)strtol((char[]){value[i + 3], value[i + 4], 0}, NULL, 16));
            i += 5;
        } else {
            ob_buf_putc(out, value[i]);
        }
    }
}

bool ob_test_table_load(struct ob_test_table *t, const char *path)
{
    memset(t, 0, sizeof *t);
    char *text = ob_test_read_file(path, NULL);
    if (!text) {
        printf("  %s: cannot read\n", path);
        return false;
    }
    t->path = ob_xstrdup(path);
    bool ok = true, in_row = false;
    int line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        line_no++;
        size_t len = strcspn(line, "\n");
        next = line[len] ? line + len + 1 : NULL;
        line[len] = 0;
        if (len == 0) {
            in_row = false;
            continue;
        }
        if (!in_row) {
            t->rows = ob_xrealloc(t->rows, (t->n + 1) * sizeof *t->rows);
            t->rows[t->n++] = (struct ob_test_row){.path = t->path, .line = line_no, .why = ob_xstrdup("")};
            in_row = true;
        }
        struct ob_test_row *row = &t->rows[t->n - 1];
        const char *colon = strstr(line, ": ");
        if (line[0] == '#') {
            struct ob_buf why = {0};
            ob_buf_printf(&why, "%s%s%s", row->why, *row->why ? " " : "", line + 1 + strspn(line + 1, " "));
            free(row->why);
            row->why = ob_buf_steal(&why);
        } else if (colon || (len > 1 && line[len - 1] == ':')) {
            size_t key_len = colon ? (size_t)(colon - line) : len - 1;
            const char *value = colon ? colon + 2 : line + len;
            struct ob_buf v = {0};
            put_unescaped(&v, value, strlen(value));
            row->fields = ob_xrealloc(row->fields, (row->n_fields + 1) * sizeof *row->fields);
            size_t value_len = v.len;
            row->fields[row->n_fields++] =
                (struct ob_test_field){ob_xstrndup(line, key_len), ob_buf_steal(&v), value_len};
        } else {
            printf("  %s:%d: neither \"# why\" nor \"key: value\": %s\n", path, line_no, line);
            ok = false;
        }
    }
    free(text);
    /* A block of only "# " lines speaks of the whole file, not of a case. */
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->rows[i].n_fields)
            t->rows[kept++] = t->rows[i];
        else
            free(t->rows[i].why);
    }
    t->n = kept;
    return ok;
}

void ob_test_table_free(struct ob_test_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        for (size_t j = 0; j < t->rows[i].n_fields; j++) {
            free(t->rows[i].fields[j].key);
            free(t->rows[i].fields[j].value);
        }
        free(t->rows[i].fields);
        free(t->rows[i].why);
    }
    free(t->rows);
    free(t->path);
    memset(t, 0, sizeof *t);
}

const struct ob_test_field *ob_test_row_field(const struct ob_test_row *row, const char *key)
{
    for (size_t i = 0; i < row->n_fields; i++)
        if (!strcmp(row->fields[i].key, key))
            return &row->fields[i];
    return NULL;
}

const char *ob_test_row_get(const struct ob_test_row *row, const char *key)
{
    const struct ob_test_field *f = ob_test_row_field(row, key);
    return f ? f->value : NULL;
}

static bool is_known_key(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (!strcmp(keys[i], key))
            return true;
    return false;
}

void ob_test_each_row(const char *path, const char *const *keys, void (*check)(const struct ob_test_row *row))
{
    struct ob_test_table t;
    if (!ob_test_table_load(&t, path))
        ob_test_fail(__FILE__, __LINE__, "%s: not a case table", path);
    else if (t.n == 0)
        ob_test_fail(__FILE__, __LINE__, "%s: no cases", path);
    for (size_t i = 0; i < t.n; i++) {
        for (size_t j = 0; keys && j < t.rows[i].n_fields; j++)
            if (!is_known_key(t.rows[i].fields[j].key, keys))
                ob_test_row_fail(&t.rows[i], "unknown key %s", t.rows[i].fields[j].key);
        check(&t.rows[i]);
    }
    ob_test_table_free(&t);
}

void ob_test_row_fail(const struct ob_test_row *row, const char *fmt, ...)
{
    ob_test_failed_now = 1;
    fprintf(stdout, "  %s:%d: (%s) ", row->path, row->line, row->why);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
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

int ob_test_listen_loopback(int receive_timeout_ms, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        abort();
    struct timeval patience = { .tv_sec = receive_timeout_ms / 1000, .tv_usec = receive_timeout_ms % 1000 * 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    *port = ntohs(a.sin_port);
    return fd;
}
