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

/* The instant ms from now on clock id, for timed waits: the relay's
 * condition variable waits on CLOCK_MONOTONIC, so a step of the wall
 * clock neither stalls its waits nor ends them early;
 * pthread_timedjoin_np takes CLOCK_REALTIME. */
static inline struct timespec ob_clock_after(clockid_t id, int64_t ms)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

#endif
