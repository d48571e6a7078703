/* Process-wide logger: one line per event on stderr, `text` or `json`.
 * Thread-safe; the level can change at run time (SIGHUP reload). Never
 * pass secrets in: nothing here can tell them apart. What producers wrote
 * may be passed in: the shard, id and message are escaped so that they
 * can neither end the line nor pass for another field. */
#ifndef OB_OPS_LOG_H
#define OB_OPS_LOG_H

#include <stdio.h>

#include "core/log_level.h"

void ob_log_setup(enum ob_log_severity level, int json);
void ob_log_set_stream(FILE *f);
int ob_log_enabled(enum ob_log_severity sev);

/* ctx: optional "shard" / message id fields, NULL when not relevant. */
void ob_log_at(enum ob_log_severity sev, const char *shard, const char *message_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ob_log_error(...) ob_log_at(OB_SEV_ERROR, NULL, NULL, __VA_ARGS__)
#define ob_log_warn(...) ob_log_at(OB_SEV_WARN, NULL, NULL, __VA_ARGS__)
#define ob_log_info(...) ob_log_at(OB_SEV_INFO, NULL, NULL, __VA_ARGS__)
#define ob_log_debug(...) ob_log_at(OB_SEV_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
