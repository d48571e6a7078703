/* curl's socket interface on epoll (see multi.h for why). */
#include "aws/multi.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

#define EVENTS_PER_WAIT 64

struct ob_multi {
    CURLM *curl;
    int epoll_fd;
    int wake_fd;          /* an eventfd in the epoll set */
    int64_t timer_at_ms;  /* when curl wants CURL_SOCKET_TIMEOUT; -1: no timer */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct ob_multi *m = userp;
    if (what == CURL_POLL_REMOVE) {
        /* The socket may be closed already; then the kernel dropped it. */
        epoll_ctl(m->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = { .data.fd = fd };
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev.events |= EPOLLOUT;
    if (epoll_ctl(m->epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT)
        epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct ob_multi *m = userp;
    m->timer_at_ms = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
    return 0;
}

struct ob_multi *ob_multi_create(void)
{
    struct ob_multi *m = ob_xcalloc(1, sizeof *m);
    m->timer_at_ms = -1;
    m->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->curl = curl_multi_init();
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = m->wake_fd };
    if (m->epoll_fd < 0 || m->wake_fd < 0 || !m->curl || epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->wake_fd, &ev)) {
        ob_multi_destroy(m);
        return NULL;
    }
    curl_multi_setopt(m->curl, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->curl, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->curl, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(m->curl, CURLMOPT_TIMERDATA, m);
    return m;
}

void ob_multi_destroy(struct ob_multi *m)
{
    if (!m)
        return;
    if (m->curl)
        curl_multi_cleanup(m->curl);
    if (m->epoll_fd >= 0)
        close(m->epoll_fd);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    free(m);
}

CURLM *ob_multi_curl(struct ob_multi *m)
{
    return m->curl;
}

CURLMcode ob_multi_add(struct ob_multi *m, CURL *easy)
{
    return curl_multi_add_handle(m->curl, easy);
}

void ob_multi_remove(struct ob_multi *m, CURL *easy)
{
    curl_multi_remove_handle(m->curl, easy);
}

void ob_multi_drive(struct ob_multi *m, int timeout_ms)
{
    int running;
    int64_t now = mono_ms();
    if (m->timer_at_ms >= 0 && m->timer_at_ms - now < timeout_ms)
        timeout_ms = m->timer_at_ms <= now ? 0 : (int)(m->timer_at_ms - now);
    struct epoll_event ev[EVENTS_PER_WAIT];
    int n = epoll_wait(m->epoll_fd, ev, EVENTS_PER_WAIT, timeout_ms < 0 ? 0 : timeout_ms);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.fd == m->wake_fd) {
            uint64_t v;
            while (read(m->wake_fd, &v, sizeof v) > 0)
                ;
            continue;
        }
        int flags = 0;
        if (ev[i].events & EPOLLIN)
            flags |= CURL_CSELECT_IN;
        if (ev[i].events & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (ev[i].events & (EPOLLERR | EPOLLHUP))
            flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(m->curl, ev[i].data.fd, flags, &running);
    }
    if (m->timer_at_ms >= 0 && m->timer_at_ms <= mono_ms()) {
        m->timer_at_ms = -1;
        curl_multi_socket_action(m->curl, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

void ob_multi_wakeup(struct ob_multi *m)
{
    uint64_t one = 1;
    ssize_t w = write(m->wake_fd, &one, sizeof one);
    (void)w; /* a full counter already wakes the waiter */
}
