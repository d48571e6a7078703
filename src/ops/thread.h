/* Threads that never take a process-directed signal: SIGTERM, SIGINT and
 * SIGHUP belong to the thread that waits for them (the relay's main
 * thread). A thread started with them unblocked would take one whenever
 * that thread is not inside its wait, and die of it: SIGTERM's and
 * SIGHUP's default action ends the process. */
#ifndef OB_OPS_THREAD_H
#define OB_OPS_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread (the
 * caller's mask is left as it was). Returns pthread_create's error. */
int ob_thread_start_without_signals(pthread_t *thread, void *(*main)(void *), void *arg);

#endif
