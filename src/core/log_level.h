/* How severe a log line is: what the logger filters on (ops/log.h) and
 * what `log.level` stores (core/config.h). Here, in pure code, so that
 * the config can hold the logger's own value without depending on ops/. */
#ifndef OB_CORE_LOG_LEVEL_H
#define OB_CORE_LOG_LEVEL_H

/* Most severe first; the names of `log.level` in config_schema.c follow this order. */
enum ob_log_severity { OB_SEV_ERROR, OB_SEV_WARN, OB_SEV_INFO, OB_SEV_DEBUG };

#endif
