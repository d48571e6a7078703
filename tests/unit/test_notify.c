/* sd_notify messages, caught on a datagram socket standing in for systemd's. */
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ops/notify.h"

struct fake_systemd {
    int fd;
    char path[108];
};

static bool fake_start(struct fake_systemd *f)
{
    snprintf(f->path, sizeof f->path, "/tmp/ob-notify-%d.sock", (int)getpid());
    unlink(f->path);
    f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
    struct timeval tv = { .tv_usec = 200 * 1000 };
    setsockopt(f->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (f->fd < 0 || bind(f->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return false;
    setenv("NOTIFY_SOCKET", f->path, 1);
    return true;
}

/* The next message into msg, "" when none came. */
static void fake_next(struct fake_systemd *f, char *msg, size_t size)
{
    ssize_t n = recv(f->fd, msg, size - 1, 0);
    msg[n > 0 ? n : 0] = '\0';
}

static void fake_stop(struct fake_systemd *f)
{
    unsetenv("NOTIFY_SOCKET");
    close(f->fd);
    unlink(f->path);
}

TEST(ready_status_stopping_and_watchdog_reach_systemd)
{
    struct fake_systemd f;
    CHECK(fake_start(&f));
    char ready[512], ready_status[512], status[512], watchdog[512], stopping[512];
    ob_notify_ready(NULL);
    fake_next(&f, ready, sizeof ready);
    ob_notify_ready("reading 2 shards");
    fake_next(&f, ready_status, sizeof ready_status);
    ob_notify_status("delivered %d, failed %d", 7, 1);
    fake_next(&f, status, sizeof status);
    ob_notify_watchdog();
    fake_next(&f, watchdog, sizeof watchdog);
    ob_notify_stopping();
    fake_next(&f, stopping, sizeof stopping);
    fake_stop(&f);
    CHECK_STR(ready, "READY=1");
    CHECK_STR(ready_status, "READY=1\nSTATUS=reading 2 shards");
    CHECK_STR(status, "STATUS=delivered 7, failed 1");
    CHECK_STR(watchdog, "WATCHDOG=1");
    CHECK_STR(stopping, "STOPPING=1");
}

TEST(status_stays_on_one_line)
{
    struct fake_systemd f;
    CHECK(fake_start(&f));
    char m[512];
    ob_notify_status("bad\nREADY=1\r\nx");
    fake_next(&f, m, sizeof m);
    fake_stop(&f);
    CHECK_STR(m, "STATUS=bad READY=1  x");
}

TEST(reloading_carries_the_monotonic_time)
{
    struct fake_systemd f;
    CHECK(fake_start(&f));
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
    char m[512];
    ob_notify_reloading();
    fake_next(&f, m, sizeof m);
    fake_stop(&f);
    unsigned long long usec = 0;
    CHECK(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec) == 1);
    CHECK(usec >= before && usec < before + 10 * 1000000ULL);
}

TEST(nothing_is_sent_without_notify_socket)
{
    struct fake_systemd f;
    CHECK(fake_start(&f));
    unsetenv("NOTIFY_SOCKET");
    ob_notify_ready("x");
    ob_notify_status("x");
    ob_notify_stopping();
    ob_notify_reloading();
    ob_notify_watchdog();
    char m[512];
    fake_next(&f, m, sizeof m);
    fake_stop(&f);
    CHECK_STR(m, "");
}

TEST(watchdog_interval_is_half_of_watchdog_usec_for_this_process)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CHECK_INT(ob_notify_watchdog_interval_us(), 0);
    setenv("WATCHDOG_USEC", "20000000", 1);
    setenv("WATCHDOG_PID", pid, 1);
    int64_t mine = ob_notify_watchdog_interval_us();
    setenv("WATCHDOG_PID", "1", 1);
    int64_t other = ob_notify_watchdog_interval_us();
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CHECK_INT(mine, 10000000);
    CHECK_INT(other, 0);
}
