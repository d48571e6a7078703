/* The event loop the bench servers (ddb_bench_server, http_receiver)
 * share: a listener on 127.0.0.1, one epoll set, SIGINT and SIGTERM read
 * from a signalfd so that the loop ends cleanly, and accepted connections
 * made non-blocking with TCP_NODELAY. What a connection does stays in
 * each server, behind three callbacks. */
#ifndef OB_BENCH_LOOP_H
#define OB_BENCH_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_loop {
    const char *name; /* the program's, in messages */
    int ep, listen_fd, signal_fd;
    /* A new connection, not yet watched: returns the epoll events to
     * watch it for. */
    uint32_t (*on_accept)(int fd);
    /* Events on any other watched descriptor. */
    void (*on_event)(int fd, uint32_t events);
    /* Sends what a connection marked in this round has to send. */
    void (*on_flush)(int fd);
    /* The connections marked in this round, in order, each once. */
    int *marked;
    size_t n_marked, marked_cap;
    bool *is_marked; /* by descriptor */
    size_t n_is_marked;
};

#define BENCH_LOOP_INIT(prog) { .name = (prog), .ep = -1, .listen_fd = -1, .signal_fd = -1 }

/* Ignores SIGPIPE, blocks SIGINT and SIGTERM into the signalfd, listens on
 * 127.0.0.1:port (0 picks a free port) and prints "listening on
 * 127.0.0.1:PORT" once bound. Returns -1 after printing why it failed. */
int bench_loop_open(struct bench_loop *l, long port);

/* Adds fd to the epoll set. */
void bench_loop_watch(struct bench_loop *l, int fd, uint32_t events);

/* Has on_flush send fd's answers once every ready connection of this
 * round was handled: the client is woken by the first and finds the
 * others, instead of being woken once per answer, which costs more in the
 * kernel than the call itself. */
void bench_loop_mark(struct bench_loop *l, int fd);

/* Runs until SIGINT or SIGTERM (0; the round that saw the signal is
 * finished first) or until epoll fails (-1, printed). */
int bench_loop_run(struct bench_loop *l);

/* Closes the loop's descriptors (not the connections') and frees it. */
void bench_loop_close(struct bench_loop *l);

/* The array slots of *n elements of size bytes, grown when index is past
 * its end (the new elements zeroed): a table indexed by descriptor. */
void *bench_slots_reserve(void *slots, size_t *n, size_t size, size_t index);

/* s as a whole number in [lo, hi]. */
bool bench_int_arg(const char *s, long lo, long hi, long *out);

#endif
