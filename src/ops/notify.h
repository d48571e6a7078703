/* systemd's notification protocol (sd_notify(3)) for Type=notify and
 * Type=notify-reload units. Every call is a no-op when NOTIFY_SOCKET is
 * unset, as outside systemd; failures to notify are not errors outboxd can
 * act on, so none is reported. Thread-safe. */
#ifndef OB_OPS_NOTIFY_H
#define OB_OPS_NOTIFY_H

#include <stdint.h>

/* READY=1, with STATUS= when status is not NULL. Also ends a reload. */
void ob_notify_ready(const char *status);
/* STATUS=..., one line: newlines become spaces. */
void ob_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ob_notify_stopping(void);
/* RELOADING=1 with MONOTONIC_USEC=, which Type=notify-reload (systemd 253)
 * wants; follow with ob_notify_ready once the new config is live. */
void ob_notify_reloading(void);
void ob_notify_watchdog(void);
/* How often to call ob_notify_watchdog: half of WatchdogSec in
 * microseconds, 0 when the watchdog is off for this process. */
int64_t ob_notify_watchdog_interval_us(void);

#endif
