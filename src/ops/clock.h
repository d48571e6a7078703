/* Clocks in milliseconds: wall time for timestamps, monotonic for waits. */
#ifndef OB_OPS_CLOCK_H
#define OB_OPS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ob_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t ob_wall_ms(void)
{
    return ob_clock_ms(CLOCK_REALTIME);
}

static inline int64_t ob_mono_ms(void)
{
    return ob_clock_ms(CLOCK_MONOTONIC);
}

/* The CLOCK_REALTIME instant ms from now, for pthread_cond_timedwait. */
static inline struct timespec ob_realtime_after(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

#endif
