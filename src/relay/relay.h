/* The daemon (`outboxd run`): a supervisor on the main thread, one
 * coordinator thread (shard discovery and lineage), one worker thread per
 * shard being read, the operations HTTP server. See ARCHITECTURE.md. */
#ifndef OB_RELAY_RELAY_H
#define OB_RELAY_RELAY_H

#include "core/config.h"
#include "outboxd/error.h"

/* Runs the relay until SIGTERM/SIGINT (graceful stop) and reloads on
 * SIGHUP. `cfg` is the loaded configuration (borrowed; reloads read
 * cfg->path again). Returns OB_OK after a clean stop; startup failures
 * return their code with err filled. */
enum ob_err ob_relay_run(const struct ob_config *cfg, struct ob_error *err);

#endif
