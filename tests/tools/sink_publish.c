/* Test tool: publishes messages through one sink of a config, without the
 * relay, and prints each result as a JSON line {"sk","result","error"}, with
 * "too_large" and "unreachable" when they are true:
 *   sink_publish CONFIG SINKNAME [--batch N] [--threads N]
 * stdin: one JSON object a line, {"pk","sk","messageType","payload_b64",
 * "headers":{..},"aggregateId","aggregateType","correlationId",
 * "causationId","createdAt","destination","error_info"} (destination is
 * a route template; error_info makes it a dead letter), all optional. Lines are published as one batch at EOF, or
 * every N lines with --batch N; --threads N splits each batch into N
 * parts published from N threads at once (as shard workers do). A line {"reopen":true} publishes what is
 * pending, then reopens the sink (what SIGHUP does in the daemon). */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/config.h"
#include "core/template.h"
#include "sinks/sink.h"

struct pending {
    struct ob_message *msgs;
    struct ob_ce *ces;
    struct ob_buf *dests;
    char **infos;
    struct ob_delivery *deliveries;
    size_t n, cap;
};

static char *opt_dup(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? ob_xstrdup(v) : NULL;
}

/* Fills m from one input line; false when the line is unusable. */
static bool message_from_json(json_t *o, struct ob_message *m)
{
    m->pk = opt_dup(o, "pk");
    m->sk = opt_dup(o, "sk");
    if (!m->pk)
        m->pk = ob_xstrdup("");
    if (!m->sk)
        m->sk = ob_xstrdup("");
    m->message_type = opt_dup(o, "messageType");
    m->aggregate_id = opt_dup(o, "aggregateId");
    m->aggregate_type = opt_dup(o, "aggregateType");
    m->correlation_id = opt_dup(o, "correlationId");
    m->causation_id = opt_dup(o, "causationId");
    m->created_at = opt_dup(o, "createdAt");
    if (m->created_at && !ob_iso8601_parse(m->created_at, &m->created_at_ms))
        m->created_at_ms = 0;
    const char *b64 = json_string_value(json_object_get(o, "payload_b64"));
    struct ob_buf payload = {0};
    if (b64 && !ob_base64_decode(&payload, b64, strlen(b64))) {
        ob_buf_free(&payload);
        return false;
    }
    m->payload_len = payload.len;
    m->payload = (unsigned char *)(payload.data ? ob_buf_steal(&payload) : ob_xstrdup(""));
    json_t *h = json_object_get(o, "headers");
    if (json_is_object(h)) {
        m->headers = ob_xcalloc(json_object_size(h) + 1, sizeof *m->headers);
        const char *k;
        json_t *v;
        json_object_foreach(h, k, v) {
            if (!json_is_string(v))
                return false;
            m->headers[m->n_headers].name = ob_xstrdup(k);
            m->headers[m->n_headers].value = ob_xstrdup(json_string_value(v));
            m->n_headers++;
        }
    }
    return true;
}

struct part {
    struct ob_sink *sink;
    struct ob_delivery *d;
    size_t n;
};

static void *publish_part(void *arg)
{
    struct part *pt = arg;
    ob_sink_publish(pt->sink, pt->d, pt->n);
    return NULL;
}

static void publish(struct ob_sink *sink, struct pending *p, size_t threads)
{
    /* The arrays may have moved since the deliveries were filled in. */
    for (size_t i = 0; i < p->n; i++) {
        p->deliveries[i].msg = &p->msgs[i];
        p->deliveries[i].ce = &p->ces[i];
    }
    struct part parts[64];
    pthread_t th[64];
    size_t n_parts = threads < p->n ? threads : p->n;
    for (size_t t = 0, off = 0; t < n_parts; t++) {
        size_t len = p->n / n_parts + (t < p->n % n_parts);
        parts[t] = (struct part){.sink = sink, .d = p->deliveries + off, .n = len};
        off += len;
        pthread_create(&th[t], NULL, publish_part, &parts[t]);
    }
    for (size_t t = 0; t < n_parts; t++)
        pthread_join(th[t], NULL);
    static const char *const names[] = {"ack", "retry", "reject"};
    for (size_t i = 0; i < p->n; i++) {
        struct ob_delivery *d = &p->deliveries[i];
        json_t *line = json_pack("{s:s,s:s,s:s}", "sk", p->msgs[i].sk, "result", names[d->result], "error", d->error);
        if (d->too_large)
            json_object_set_new(line, "too_large", json_true());
        if (d->unreachable)
            json_object_set_new(line, "unreachable", json_true());
        char *text = json_dumps(line, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(line);
        ob_ce_free(&p->ces[i]);
        ob_message_free(&p->msgs[i]);
        ob_buf_free(&p->dests[i]);
        free(p->infos[i]);
    }
    fflush(stdout);
    p->n = 0;
}

static void pending_free(struct pending *p)
{
    free(p->msgs);
    free(p->ces);
    free(p->dests);
    free(p->infos);
    free(p->deliveries);
}

int main(int argc, char **argv)
{
    size_t batch = 0, threads = 1;
    bool usage = argc < 3 || argc % 2 == 0;
    for (int i = 3; !usage && i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0)
            batch = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = strtoul(argv[i + 1], NULL, 10);
        else
            usage = true;
    }
    if (usage || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: sink_publish CONFIG SINKNAME [--batch N] [--threads 1..64]\n");
        return 64;
    }
    /* A reader that went away is a sink error to report, not a reason to die. */
    signal(SIGPIPE, SIG_IGN);

    int rc = 0;
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = {0};
    struct ob_cred_context aws = {0};
    struct ob_sink *sink = NULL;
    struct pending p = {0};
    char *line = NULL;
    size_t line_cap = 0;
    if (ob_config_load(argv[1], &ob_sinks, &cfg, &diag) != OB_OK) {
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "%s\n", diag.lines[i]);
        rc = 78;
        goto out;
    }
    const struct ob_config_sink *sc = ob_config_find_sink(cfg, argv[2]);
    if (!sc) {
        fprintf(stderr, "sink_publish: no sink '%s' in %s\n", argv[2], argv[1]);
        rc = 64;
        goto out;
    }
    struct ob_error err = {0}, aws_err = {0};
    /* Only the AWS sinks need it: without, they say so when created. */
    if (ob_cred_context_open_config(&cfg->aws, true, &aws, &aws_err) != OB_OK)
        memset(&aws, 0, sizeof aws);
    struct ob_sink_context ctx = {.table = cfg->table.name, .aws = &cfg->aws, .region = aws.region,
                                  .credentials = aws.credentials};
    if (ob_sink_create(sc, &ctx, &sink, &err) != OB_OK) {
        fprintf(stderr, "sink_publish: %s%s%s\n", err.msg, aws_err.code ? "; AWS: " : "", aws_err.msg);
        rc = 78;
        goto out;
    }

    while (getline(&line, &line_cap, stdin) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        if (!json_is_object(o)) {
            fprintf(stderr, "sink_publish: bad input line: %s\n", jerr.text);
            json_decref(o);
            rc = 65;
            goto out;
        }
        if (json_is_true(json_object_get(o, "reopen"))) {
            json_decref(o);
            publish(sink, &p, threads);
            ob_sink_reopen(sink);
            continue;
        }
        if (p.n == p.cap) {
            p.cap = p.cap ? 2 * p.cap : 16;
            p.msgs = ob_xrealloc(p.msgs, p.cap * sizeof *p.msgs);
            p.ces = ob_xrealloc(p.ces, p.cap * sizeof *p.ces);
            p.dests = ob_xrealloc(p.dests, p.cap * sizeof *p.dests);
            p.infos = ob_xrealloc(p.infos, p.cap * sizeof *p.infos);
            p.deliveries = ob_xrealloc(p.deliveries, p.cap * sizeof *p.deliveries);
        }
        struct ob_message *m = &p.msgs[p.n];
        memset(m, 0, sizeof *m);
        memset(&p.dests[p.n], 0, sizeof p.dests[p.n]);
        bool ok = message_from_json(o, m);
        const char *dest = json_string_value(json_object_get(o, "destination"));
        if (ok && dest)
            ob_template_expand(&p.dests[p.n], dest, m, cfg->table.name);
        p.infos[p.n] = opt_dup(o, "error_info");
        json_decref(o);
        if (!ok) {
            fprintf(stderr, "sink_publish: bad payload_b64 or headers in line %zu\n", p.n + 1);
            ob_message_free(m);
            free(p.infos[p.n]);
            rc = 65;
            goto out;
        }
        ob_ce_from_message(&p.ces[p.n], m, cfg->cloudevents.source, cfg->table.name);
        p.deliveries[p.n] = (struct ob_delivery){
            .destination = dest ? ob_buf_cstr(&p.dests[p.n]) : NULL,
            .error_info = p.infos[p.n],
        };
        p.n++;
        if (batch && p.n == batch)
            publish(sink, &p, threads);
    }
    publish(sink, &p, threads);
    if (ob_sink_flush(sink, &err) != OB_OK) {
        fprintf(stderr, "sink_publish: %s\n", err.msg);
        rc = 74;
    }
out:
    /* Lines read but not published (bad input) are dropped with their messages. */
    for (size_t i = 0; i < p.n; i++) {
        ob_ce_free(&p.ces[i]);
        ob_message_free(&p.msgs[i]);
        ob_buf_free(&p.dests[i]);
        free(p.infos[i]);
    }
    pending_free(&p);
    free(line);
    ob_sink_destroy(sink);
    ob_cred_context_close(&aws);
    ob_config_free(cfg);
    ob_config_diag_free(&diag);
    return rc;
}
