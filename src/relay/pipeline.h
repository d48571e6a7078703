/* The delivery pipeline a shard worker (and the sweeper) runs: its window
 * of records, sent in waves to the sinks, marked published, retried,
 * dead-lettered. One thread owns a pipeline. */
#ifndef OB_RELAY_PIPELINE_H
#define OB_RELAY_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/log.h"
#include "relay/relay_internal.h"
#include "relay/window.h"

struct ob_pipeline {
    struct ob_relay *relay;
    struct ob_ddb_session *session;  /* borrowed: the owning thread's */
    struct ob_window window;
    const char *log_name;            /* the `shard` of its log lines: a shard id, or "sweep" */
    /* Whether sending may go on (the shard's lease still holds); NULL: always. */
    bool (*may_send)(void *ctx);
    /* Only marks go out: what the sinks acknowledged is marked, nothing
     * new is sent (a stop). */
    bool marks_only;
    /* Sleeps until a monotonic time (or less, when woken). */
    void (*wait_until)(void *ctx, int64_t until_ms);
    /* A sink call starts (true) or ends: time waiting for a sink does not
     * make a worker stuck (SPEC §7). NULL: not told. */
    void (*sink_call)(void *ctx, bool started);
    void *ctx;
    struct ob_item_writer *writer;            /* owned, made at the first write; its marks run in the session */
    size_t n_flying;                          /* marks started and not yet taken back */
    struct pipeline_write *waiting;           /* failed writes to try again when their entry is due */
    struct pipeline_write *spare;             /* finished writes' allocations, for the next */
    size_t n_spare;
    struct pipeline_scratch *scratch;         /* a wave's arrays, kept between waves */
};

struct pipeline_write;
struct pipeline_scratch;
struct ob_item_writer;

void ob_pipeline_init(struct ob_pipeline *p, struct ob_relay *r, struct ob_ddb_session *s, const char *log_name);
/* Takes back the writes (marks, failure records) still running in the
 * session; before the session goes, whose calls they are. */
void ob_pipeline_abandon_writes(struct ob_pipeline *p);
void ob_pipeline_free(struct ob_pipeline *p);

/* One wave: what the window allows now goes to the sinks, acknowledged
 * messages are marked, failures rescheduled or dead-lettered. Returns
 * whether anything was sent or written. */
bool ob_pipeline_wave(struct ob_pipeline *p, int64_t now_ms);

/* Takes the marks that finished and settles their entries, without a
 * wave: for a caller waiting on another operation of the same session,
 * whose every poll a finished mark left untaken would end at once. */
void ob_pipeline_collect(struct ob_pipeline *p, int64_t now_ms);

/* Waits until until_ms (or less: woken, or a running mark finished, or,
 * when others_running, one of the caller's own calls in the session). */
void ob_pipeline_wait(struct ob_pipeline *p, int64_t until_ms, bool others_running);

void ob_pipeline_log(const struct ob_pipeline *p, enum ob_log_severity sev, const char *msg_id, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

#endif
