/* The bench servers' event loop (loop.h). */
#include "loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"

#define MAX_EVENTS 512

static void fail(const struct bench_loop *l, const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", l->name, what, strerror(errno));
}

static int listen_on(const struct bench_loop *l, long port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        fail(l, "listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    printf("listening on 127.0.0.1:%u\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

int bench_loop_open(struct bench_loop *l, long port)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    l->signal_fd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    if (l->signal_fd < 0 || l->ep < 0) {
        fail(l, "setup");
        return -1;
    }
    l->listen_fd = listen_on(l, port);
    if (l->listen_fd < 0)
        return -1;
    bench_loop_watch(l, l->listen_fd, EPOLLIN);
    bench_loop_watch(l, l->signal_fd, EPOLLIN);
    return 0;
}

void bench_loop_watch(struct bench_loop *l, int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.fd = fd };
    epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev);
}

void bench_loop_mark(struct bench_loop *l, int fd)
{
    l->is_marked = bench_slots_reserve(l->is_marked, &l->n_is_marked, sizeof *l->is_marked, (size_t)fd);
    if (l->is_marked[fd])
        return;
    if (l->n_marked == l->marked_cap) {
        l->marked_cap = l->marked_cap ? l->marked_cap * 2 : 256;
        l->marked = ob_xrealloc(l->marked, l->marked_cap * sizeof *l->marked);
    }
    l->marked[l->n_marked++] = fd;
    l->is_marked[fd] = true;
}

static void flush_marked(struct bench_loop *l)
{
    for (size_t i = 0; i < l->n_marked; i++) {
        l->is_marked[l->marked[i]] = false;
        l->on_flush(l->marked[i]);
    }
    l->n_marked = 0;
}

static void accept_all(struct bench_loop *l)
{
    for (;;) {
        int fd = accept4(l->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        bench_loop_watch(l, fd, l->on_accept(fd));
    }
}

int bench_loop_run(struct bench_loop *l)
{
    struct epoll_event evs[MAX_EVENTS];
    for (bool running = true; running;) {
        int n = epoll_wait(l->ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            fail(l, "epoll_wait");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l->listen_fd)
                accept_all(l);
            else if (fd == l->signal_fd)
                running = false;
            else
                l->on_event(fd, evs[i].events);
        }
        flush_marked(l);
    }
    return 0;
}

void bench_loop_close(struct bench_loop *l)
{
    int fds[] = { l->listen_fd, l->ep, l->signal_fd };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    l->listen_fd = l->ep = l->signal_fd = -1;
    free(l->marked);
    free(l->is_marked);
}

void *bench_slots_reserve(void *slots, size_t *n, size_t size, size_t index)
{
    if (index < *n)
        return slots;
    size_t grown = index * 2 + 16;
    slots = ob_xrealloc(slots, grown * size);
    memset((char *)slots + *n * size, 0, (grown - *n) * size);
    *n = grown;
    return slots;
}

bool bench_int_arg(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}
