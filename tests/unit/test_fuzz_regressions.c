/* Every input under tests/fuzz/corpus/<target>/ and
 * tests/fuzz/regressions/<target>/ replays through the fuzz target's own
 * body without a crash, so a crash `make fuzz` finds stays fixed once its
 * file is copied into regressions/. Each input runs in a child process:
 * a crash fails the test with the file's name instead of ending the suite.
 * Paths are relative to the repository root, where the tests run. */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fuzz/bodies.c"
#include "core/buf.h"
#include "test.h"

typedef int (*fuzz_body)(const uint8_t *data, size_t size);

/* Runs body on the file in a child; false (and a FAIL line) when it crashed. */
static bool replay_file(const char *path, fuzz_body body)
{
    struct ob_buf input = {0};
    if (!ob_test_read_buf(path, &input)) {
        ob_test_fail(__FILE__, __LINE__, "cannot read %s", path);
        ob_buf_free(&input);
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        body((const uint8_t *)input.data, input.len);
        _exit(0);
    }
    ob_buf_free(&input);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        ob_test_fail(__FILE__, __LINE__, "cannot run %s", path);
        return false;
    }
    if (WIFSIGNALED(status)) {
        ob_test_fail(__FILE__, __LINE__, "%s: killed by signal %d (%s)", path, WTERMSIG(status),
                     strsignal(WTERMSIG(status)));
        return false;
    }
    if (WEXITSTATUS(status) != 0) {
        ob_test_fail(__FILE__, __LINE__, "%s: exit status %d", path, WEXITSTATUS(status));
        return false;
    }
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every file of dir (README and dotfiles aside) in name order;
 * the number replayed, or -1 when dir is missing or one crashed. */
static int replay_dir(const char *dir, fuzz_body body)
{
    DIR *d = opendir(dir);
    if (!d) {
        ob_test_fail(__FILE__, __LINE__, "cannot open %s (run from the repository root)", dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0)
            continue;
        names = ob_xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = ob_xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    bool ok = true;
    struct ob_buf path = {0};
    for (size_t i = 0; i < n; i++) {
        ob_buf_reset(&path);
        ob_buf_printf(&path, "%s/%s", dir, names[i]);
        ok = replay_file(path.data, body) && ok;
        free(names[i]);
    }
    free(names);
    ob_buf_free(&path);
    return ok ? (int)n : -1;
}

/* The seed corpus must not be empty: an empty one means a wrong path. */
static void replay_target(const char *target, fuzz_body body)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
    int seeds = replay_dir(dir, body);
    if (seeds == 0)
        ob_test_fail(__FILE__, __LINE__, "%s holds no seed inputs", dir);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
    replay_dir(dir, body);
}

TEST(fuzz_config_corpus_and_regressions_replay_without_crash)
{
    replay_target("config", ob_fuzz_config);
}

TEST(fuzz_record_corpus_and_regressions_replay_without_crash)
{
    replay_target("record", ob_fuzz_record);
}

TEST(fuzz_cloudevents_corpus_and_regressions_replay_without_crash)
{
    replay_target("cloudevents", ob_fuzz_cloudevents);
}

TEST(fuzz_proxy_corpus_and_regressions_replay_without_crash)
{
    replay_target("proxy", ob_fuzz_proxy);
}
