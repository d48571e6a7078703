/* The daemon (`outboxd run`): a supervisor on the main thread, one
 * coordinator thread (shard discovery and lineage), one worker thread per
 * shard being read, the operations HTTP server. See ARCHITECTURE.md. */
#ifndef OB_RELAY_RELAY_H
#define OB_RELAY_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/config.h"
#include "outboxd/error.h"

struct ob_cred_context;

/* Runs the relay until SIGTERM/SIGINT (graceful stop) and reloads on
 * SIGHUP. `cfg` is the loaded configuration (borrowed; reloads read
 * cfg->path again); `aws` the process's region and credentials
 * (borrowed; a reload keeps them). Returns OB_OK after a clean stop;
 * startup failures return their code with err filled. */
enum ob_err ob_relay_run(const struct ob_config *cfg, const struct ob_cred_context *aws, struct ob_error *err);

struct ob_sweep_request {
    int64_t older_than_ms;
    bool include_undated; /* items without createdAt too */
    bool dry_run;        /* list what would be delivered, deliver nothing */
    FILE *list;          /* one line per item found (id, key, type, createdAt), or NULL */
};

struct ob_sweep_result {
    size_t found, poison, undelivered, blocked, rechecked;
    double read_units;
    int64_t cutoff_ms;   /* epoch ms: items created before it were swept; 0: none, the stream's readers held it */
    char behind[256];    /* the shard whose reader held the cutoff back, or "" */
};

/* `outboxd sweep`: one sweep of the table under the sweep lease, through
 * the configured sinks and routes. */
enum ob_err ob_relay_sweep(const struct ob_config *cfg, const struct ob_cred_context *aws,
                           const struct ob_sweep_request *req, struct ob_sweep_result *res, struct ob_error *err);

#endif
