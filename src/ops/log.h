/* Process-wide logger: one line per event on stderr, `text` or `json`.
 * When stderr is the journal's stream (systemd says so in JOURNAL_STREAM),
 * each line starts with its syslog priority, "<3>" to "<7>", which
 * journald takes off and stores, so `journalctl -p err` selects by it.
 * Thread-safe; the level can change at run time (SIGHUP reload). Never
 * pass secrets in: nothing here can tell them apart. What producers wrote
 * may be passed in: the shard, id and message are escaped so that they
 * can neither end the line nor pass for another field. */
#ifndef OB_OPS_LOG_H
#define OB_OPS_LOG_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/log_level.h"

void ob_log_setup(enum ob_log_severity level, int json);
void ob_log_set_stream(FILE *f);
int ob_log_enabled(enum ob_log_severity sev);

/* What a line written to the log's stream without ob_log_at (the config
 * errors of `check` and `run`, in the compilers' format) starts with to
 * have its priority in the journal: "<3>" and so on, "" when the stream
 * is not the journal's. */
const char *ob_log_journal_prefix(enum ob_log_severity sev);

/* Whether journal_stream, the value of JOURNAL_STREAM ("DEVICE:INODE" in
 * decimal, systemd.exec(5)), names the file with this device and inode. */
bool ob_log_journal_names(const char *journal_stream, dev_t dev, ino_t ino);

/* ctx: optional "shard" / message id fields, NULL when not relevant. */
void ob_log_at(enum ob_log_severity sev, const char *shard, const char *message_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ob_log_error(...) ob_log_at(OB_SEV_ERROR, NULL, NULL, __VA_ARGS__)
#define ob_log_warn(...) ob_log_at(OB_SEV_WARN, NULL, NULL, __VA_ARGS__)
#define ob_log_info(...) ob_log_at(OB_SEV_INFO, NULL, NULL, __VA_ARGS__)
#define ob_log_debug(...) ob_log_at(OB_SEV_DEBUG, NULL, NULL, __VA_ARGS__)

#endif
