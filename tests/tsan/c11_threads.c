/* Linked into every binary of a SANITIZE=thread build (Makefile). TSan
 * (clang 14) intercepts none of glibc's C11 threads, which Debian's
 * librdkafka uses, so its threads and locks were unknown to TSan, which
 * crashed on them: these definitions come before libc's and route them
 * through the pthread functions TSan intercepts (glibc's mtx_t and cnd_t
 * are a pthread_mutex_t and a pthread_cond_t). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>
struct start { thrd_start_t f; void *arg; };
static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    return (void *)(intptr_t)s.f(s.arg);
}
int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    struct start *s = malloc(sizeof *s);
    if (!s)
        return thrd_nomem;
    s->f = func;
    s->arg = arg;
    if (pthread_create(thr, NULL, trampoline, s)) {
        free(s);
        return thrd_error;
    }
    return thrd_success;
}
int thrd_join(thrd_t thr, int *res)
{
    void *r;
    if (pthread_join(thr, &r))
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)r;
    return thrd_success;
}
static int rc(int e) { return e == 0 ? thrd_success : e == ETIMEDOUT ? thrd_timedout : e == EBUSY ? thrd_busy : thrd_error; }
int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int e = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return rc(e);
}
int mtx_lock(mtx_t *m) { return rc(pthread_mutex_lock((pthread_mutex_t *)m)); }
int mtx_unlock(mtx_t *m) { return rc(pthread_mutex_unlock((pthread_mutex_t *)m)); }
void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }
int cnd_init(cnd_t *c) { return rc(pthread_cond_init((pthread_cond_t *)c, NULL)); }
int cnd_signal(cnd_t *c) { return rc(pthread_cond_signal((pthread_cond_t *)c)); }
int cnd_broadcast(cnd_t *c) { return rc(pthread_cond_broadcast((pthread_cond_t *)c)); }
int cnd_wait(cnd_t *c, mtx_t *m) { return rc(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m)); }
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return rc(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}
void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }
void call_once(once_flag *f, void (*fn)(void)) { pthread_once((pthread_once_t *)f, fn); }
