/* The JSON-lines sinks (stdout, file) where the integration tests cannot
 * reach: a closed stdout, concurrent publishers, a path that vanishes. */
#include "test.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/cloudevents.h"
#include "sinks/common.h"
#include "core/config.h"
#include "sinks/sink.h"

#define THREADS 4
#define BATCHES 25
#define BATCH 8

static struct ob_config *load(const char *sinks_yaml)
{
    struct ob_buf y = {0};
    ob_buf_printf(&y, "aws:\n  region: us-east-1\ntable:\n  name: outbox\nsinks:\n%s", sinks_yaml);
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    if (ob_config_load_string("test.yaml", y.data, y.len, &ob_sinks, &cfg, &diag) != OB_OK)
        for (size_t i = 0; i < diag.n; i++)
            printf("  | %s\n", diag.lines[i]);
    ob_config_diag_free(&diag);
    ob_buf_free(&y);
    return cfg;
}

static struct ob_sink *create(const struct ob_config *cfg, struct ob_error *err)
{
    struct ob_sink_context ctx = {.table = cfg->table.name, .aws = &cfg->aws};
    struct ob_sink *s = NULL;
    ob_sink_create(&cfg->sinks[0], &ctx, &s, err);
    return s;
}

/* A message whose payload is size bytes of JSON string, so that batches
 * are larger than PIPE_BUF and writes could tear. */
static void make_message(struct ob_message *m, struct ob_ce *ce, const char *sk, size_t size)
{
    memset(m, 0, sizeof *m);
    m->pk = ob_xstrdup("p1");
    m->sk = ob_xstrdup(sk);
    m->message_type = ob_xstrdup("T");
    m->payload = ob_xmalloc(size + 3);
    m->payload[0] = '"';
    memset(m->payload + 1, 'x', size);
    m->payload[size + 1] = '"';
    m->payload[size + 2] = '\0';
    m->payload_len = size + 2;
    ob_ce_from_message(ce, m, NULL, "outbox");
}

struct publisher {
    struct ob_sink *sink;
    int id;
};

static void *publish_many(void *arg)
{
    struct publisher *p = arg;
    struct ob_message m[BATCH];
    struct ob_ce ce[BATCH];
    struct ob_delivery d[BATCH];
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            char sk[32];
            snprintf(sk, sizeof sk, "t%d-b%d-%d", p->id, b, i);
            make_message(&m[i], &ce[i], sk, 3000);
            d[i] = (struct ob_delivery){.msg = &m[i], .ce = &ce[i]};
        }
        ob_sink_publish(p->sink, d, BATCH);
        for (int i = 0; i < BATCH; i++) {
            ob_ce_free(&ce[i]);
            ob_message_free(&m[i]);
        }
    }
    return NULL;
}

TEST(stdout_lines_of_concurrent_batches_never_interleave)
{
    char path[] = "/tmp/outboxd-stdout-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);

    struct ob_config *cfg = load("  - name: out\n    type: stdout\n");
    struct ob_error err = {0};
    struct ob_sink *sink = cfg ? create(cfg, &err) : NULL;
    struct publisher pubs[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; sink && t < THREADS; t++) {
        pubs[t] = (struct publisher){.sink = sink, .id = t};
        pthread_create(&th[t], NULL, publish_many, &pubs[t]);
    }
    for (int t = 0; sink && t < THREADS; t++)
        pthread_join(th[t], NULL);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    CHECK(sink != NULL);
    ob_sink_destroy(sink);
    ob_config_free(cfg);

    FILE *f = fdopen(fd, "r");
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *ev = json_loads(line, 0, NULL);
        bad += !ev || strlen(json_string_value(json_object_get(ev, "data"))) != 3000;
        json_decref(ev);
        lines++;
    }
    free(line);
    fclose(f);
    CHECK_INT(bad, 0);
    CHECK_INT(lines, THREADS * BATCHES * BATCH);
}

TEST(stdout_closed_by_its_reader_is_retry)
{
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    CHECK(pipe(p) == 0);
    close(p[0]);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(p[1], STDOUT_FILENO);
    close(p[1]);

    struct ob_config *cfg = load("  - name: out\n    type: stdout\n");
    struct ob_error err = {0};
    struct ob_sink *sink = cfg ? create(cfg, &err) : NULL;
    struct ob_message m;
    struct ob_ce ce;
    make_message(&m, &ce, "m1", 10);
    struct ob_delivery d = {.msg = &m, .ce = &ce};
    if (sink)
        ob_sink_publish(sink, &d, 1);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    ob_ce_free(&ce);
    ob_message_free(&m);
    ob_sink_destroy(sink);
    ob_config_free(cfg);
    CHECK_INT(d.result, OB_DELIVERY_RETRY);
    CHECK_STR(d.error, "write stdout: Broken pipe");
}

TEST(file_sink_reopen_retries_a_path_that_came_back)
{
    char dir[] = "/tmp/outboxd-file-XXXXXX";
    CHECK(mkdtemp(dir));
    struct ob_buf yaml = {0}, sub = {0}, path = {0};
    ob_buf_printf(&sub, "%s/sub", dir);
    ob_buf_printf(&path, "%s/events.jsonl", sub.data);
    ob_buf_printf(&yaml, "  - name: f\n    type: file\n    path: %s\n", path.data);
    CHECK(mkdir(sub.data, 0700) == 0);
    struct ob_config *cfg = load(yaml.data);
    struct ob_error err = {0};
    struct ob_sink *sink = cfg ? create(cfg, &err) : NULL;
    CHECK(sink != NULL);

    /* The directory goes away (rotation gone wrong): reopen fails, publish retries. */
    unlink(path.data);
    rmdir(sub.data);
    ob_sink_reopen(sink);
    struct ob_message m;
    struct ob_ce ce;
    make_message(&m, &ce, "m1", 10);
    struct ob_delivery d = {.msg = &m, .ce = &ce};
    ob_sink_publish(sink, &d, 1);
    int first = d.result;
    bool mentions_open = strncmp(d.error, "open ", 5) == 0;

    /* It comes back: the next publish opens the path again. */
    mkdir(sub.data, 0700);
    ob_sink_publish(sink, &d, 1);
    int second = d.result;
    ob_sink_destroy(sink);
    ob_config_free(cfg);
    ob_ce_free(&ce);
    ob_message_free(&m);
    bool written = access(path.data, F_OK) == 0;
    unlink(path.data);
    rmdir(sub.data);
    rmdir(dir);
    ob_buf_free(&yaml);
    ob_buf_free(&sub);
    ob_buf_free(&path);
    CHECK_INT(first, OB_DELIVERY_RETRY);
    CHECK(mentions_open);
    CHECK_INT(second, OB_DELIVERY_ACK);
    CHECK(written);
}

/* SQS and SNS refuse a message holding U+FFFE or U+FFFF; escaped, the JSON reads the same. */
TEST(noncharacters_in_a_json_text_become_escapes_that_read_the_same)
{
    struct ob_buf b = { 0 };
    ob_buf_puts(&b, "{\"data\":\"a\xef\xbf\xbe" "b\xef\xbf\xbf\xef\xbf\xbd\"}");
    ob_json_escape_noncharacters(&b);
    CHECK_STR(ob_buf_cstr(&b), "{\"data\":\"a\\ufffeb\\uffff\xef\xbf\xbd\"}");
    json_t *j = json_loads(ob_buf_cstr(&b), 0, NULL);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "data")), "a\xef\xbf\xbe" "b\xef\xbf\xbf\xef\xbf\xbd");
    json_decref(j);
    ob_buf_free(&b);
}
