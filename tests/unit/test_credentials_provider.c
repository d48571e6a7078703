/* The credential provider: its schedule (pure), snapshots that outlive a
 * refresh, refreshes started by the schedule and by an "expired" answer,
 * failed refreshes, and stopping while a refresh runs, short or slow. The
 * source is a fake that counts its calls and hands out "AKID<n>" on call
 * n. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "aws/credentials_provider.h"
#include "ops/clock.h"
#include "test.h"

#define MIN 60000

TEST(refresh_is_five_minutes_before_expiry_or_a_third_of_a_short_lifetime)
{
    int64_t t = 1700000000000;
    CHECK(ob_cred_refresh_at(t, t + 60 * MIN) == t + 55 * MIN);
    CHECK(ob_cred_refresh_at(t, t + 15 * MIN) == t + 10 * MIN);
    CHECK(ob_cred_refresh_at(t, t + 6 * MIN) == t + 4 * MIN);
    CHECK(ob_cred_refresh_at(t, t + 3000) == t + 2000);
}

TEST(credentials_that_do_not_expire_are_never_refreshed)
{
    CHECK(ob_cred_refresh_at(1700000000000, 0) == 0);
}

TEST(credentials_obtained_expired_are_refreshed_now)
{
    int64_t t = 1700000000000;
    CHECK(ob_cred_refresh_at(t, t - 1000) == t);
}

TEST(failed_refreshes_back_off_from_a_second_to_a_minute)
{
    int64_t t = 1700000000000, far = t + 60 * MIN;
    CHECK(ob_cred_retry_at(t, far, 1) == t + 1000);
    CHECK(ob_cred_retry_at(t, far, 2) == t + 2000);
    CHECK(ob_cred_retry_at(t, far, 3) == t + 4000);
    CHECK(ob_cred_retry_at(t, far, 7) == t + MIN);
    CHECK(ob_cred_retry_at(t, far, 40) == t + MIN);
    CHECK(ob_cred_retry_at(t, 0, 40) == t + MIN);
}

TEST(retries_come_before_the_credentials_expire)
{
    int64_t t = 1700000000000;
    /* Two minutes left: at most one of them to wait, then 30 s of 60. */
    CHECK(ob_cred_retry_at(t, t + 2 * MIN, 9) == t + MIN);
    CHECK(ob_cred_retry_at(t, t + MIN, 9) == t + 30000);
    CHECK(ob_cred_retry_at(t, t + 1500, 9) == t + 1000);
    /* Expired already: the backoff alone. */
    CHECK(ob_cred_retry_at(t, t - 1000, 3) == t + 4000);
}

/* ---- the provider, with a fake source ------------------------------------ */

struct fake_source {
    pthread_mutex_t mu;
    int calls;
    int fail_call;         /* this call fails (0: none) */
    int same_from_call;    /* from this call on, the first call's credentials again (0: never) */
    int lifetime_s;        /* 0: they do not expire */
    int block_ms;          /* calls after the first take this long */
};

static enum ob_err fake_resolve(void *ctx, struct ob_aws_credentials *out, struct ob_error *err)
{
    struct fake_source *f = ctx;
    pthread_mutex_lock(&f->mu);
    int call = ++f->calls;
    pthread_mutex_unlock(&f->mu);
    if (call > 1 && f->block_ms)
        usleep((useconds_t)f->block_ms * 1000);
    memset(out, 0, sizeof *out);
    if (call == f->fail_call)
        return ob_error_set(err, OB_ERR_NETWORK, "fake source: connection refused");
    int n = f->same_from_call && call >= f->same_from_call ? 1 : call;
    char akid[32], secret[32];
    snprintf(akid, sizeof akid, "AKID%d", n);
    snprintf(secret, sizeof secret, "secret%d", n);
    out->access_key_id = ob_xstrdup(akid);
    out->secret_access_key = ob_xstrdup(secret);
    out->session_token = ob_xstrdup("token");
    out->expires_at = f->lifetime_s ? time(NULL) + f->lifetime_s : 0;
    snprintf(out->source, sizeof out->source, "fake source call %d", call);
    return OB_OK;
}

static struct ob_cred_provider *fake_provider(struct fake_source *f)
{
    pthread_mutex_init(&f->mu, NULL);
    const struct ob_cred_source source = { .resolve = fake_resolve, .ctx = f };
    struct ob_cred_provider *p = NULL;
    struct ob_error err = { 0 };
    if (ob_cred_provider_create_from(&source, true, &p, &err) != OB_OK) {
        fprintf(stderr, "fake provider: %s\n", err.msg);
        exit(2);
    }
    return p;
}

static int calls_of(struct fake_source *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Waits (10 s at most) until the provider has installed n sets. */
static bool wait_installed(struct ob_cred_provider *p, uint64_t n)
{
    for (int i = 0; i < 1000 && ob_cred_installed(p) < n; i++)
        usleep(10000);
    return ob_cred_installed(p) >= n;
}

static bool wait_calls(struct fake_source *f, int n)
{
    for (int i = 0; i < 1000 && calls_of(f) < n; i++)
        usleep(10000);
    return calls_of(f) >= n;
}

TEST(a_static_provider_hands_out_its_credentials)
{
    const struct ob_aws_credentials fixed = { .access_key_id = "AKIDSTATIC", .secret_access_key = "s",
                                              .source = "config" };
    struct ob_cred_provider *p = ob_cred_provider_static(&fixed);
    struct ob_cred_snapshot *a = ob_cred_acquire(p), *b = ob_cred_acquire(p);
    CHECK(a == b);
    CHECK_STR(a->creds.access_key_id, "AKIDSTATIC");
    CHECK_STR(a->creds.source, "config");
    CHECK(a->creds.session_token == NULL);
    /* Nobody refreshes it: a report changes nothing. */
    ob_cred_report_expired(p, a);
    CHECK(ob_cred_installed(p) == 1);
    ob_cred_release(a);
    ob_cred_release(b);
    ob_cred_provider_destroy(p);
}

TEST(temporary_credentials_are_refreshed_before_they_expire_and_old_snapshots_stay_whole)
{
    struct fake_source f = { .lifetime_s = 3 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *old = ob_cred_acquire(p);
    CHECK_STR(old->creds.access_key_id, "AKID1");
    int64_t start = ob_wall_ms();
    CHECK(wait_installed(p, 2));
    /* Before the 3 s are up (a third of the lifetime before). */
    CHECK(ob_wall_ms() - start < 3000);
    struct ob_cred_snapshot *now = ob_cred_acquire(p);
    CHECK(now != old);
    CHECK(now->generation != old->generation);
    CHECK_STR(now->creds.access_key_id, "AKID2");
    /* The holder of the old snapshot still signs with one consistent set. */
    CHECK_STR(old->creds.access_key_id, "AKID1");
    CHECK_STR(old->creds.secret_access_key, "secret1");
    ob_cred_release(old);
    ob_cred_release(now);
    ob_cred_provider_destroy(p);
}

TEST(signers_do_not_wait_for_a_refresh_in_progress)
{
    struct fake_source f = { .block_ms = 800 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    CHECK(wait_calls(&f, 2)); /* the refresher is in the source now */
    int64_t t = ob_mono_ms();
    struct ob_cred_snapshot *during = ob_cred_acquire(p);
    CHECK(ob_mono_ms() - t < 200);
    CHECK(during == s);
    ob_cred_release(during);
    ob_cred_release(s);
    CHECK(wait_installed(p, 2));
    ob_cred_provider_destroy(p);
}

TEST(an_expired_answer_refreshes_at_once)
{
    struct fake_source f = { 0 }; /* they do not expire: only a report refreshes */
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    CHECK(wait_installed(p, 2));
    struct ob_cred_snapshot *fresh = ob_cred_acquire(p);
    CHECK_STR(fresh->creds.access_key_id, "AKID2");
    ob_cred_release(fresh);
    ob_cred_release(s);
    ob_cred_provider_destroy(p);
}

TEST(an_expired_answer_for_credentials_already_replaced_refreshes_nothing)
{
    struct fake_source f = { 0 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *old = ob_cred_acquire(p);
    ob_cred_report_expired(p, old);
    CHECK(wait_installed(p, 2));
    /* A request signed with the old ones comes back expired late. */
    ob_cred_report_expired(p, old);
    usleep(300000);
    CHECK_INT(calls_of(&f), 2);
    CHECK(ob_cred_installed(p) == 2);
    ob_cred_release(old);
    ob_cred_provider_destroy(p);
}

TEST(a_failed_refresh_keeps_the_current_credentials_and_tries_again)
{
    struct fake_source f = { .fail_call = 2 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    CHECK(wait_calls(&f, 2));
    struct ob_cred_snapshot *kept = ob_cred_acquire(p);
    CHECK(kept == s);
    /* Further reports while it backs off do not hurry it. */
    ob_cred_report_expired(p, s);
    CHECK(calls_of(&f) == 2);
    /* The second try, a second later, succeeds. */
    CHECK(wait_installed(p, 2));
    CHECK_INT(calls_of(&f), 3);
    struct ob_cred_snapshot *fresh = ob_cred_acquire(p);
    CHECK_STR(fresh->creds.access_key_id, "AKID3");
    ob_cred_release(fresh);
    ob_cred_release(kept);
    ob_cred_release(s);
    ob_cred_provider_destroy(p);
}

TEST(the_same_credentials_again_after_an_expired_answer_are_not_news)
{
    struct fake_source f = { .same_from_call = 2 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    CHECK(wait_calls(&f, 2));
    usleep(100000);
    /* Not installed (no new generation to sign with), and not asked again at once. */
    CHECK(ob_cred_installed(p) == 1);
    CHECK(calls_of(&f) == 2);
    ob_cred_release(s);
    ob_cred_provider_destroy(p);
}

TEST(credentials_called_expired_again_and_again_are_refreshed_with_growing_pauses)
{
    /* Every new set is called expired as soon as it is used (a source
     * whose sessions the services no longer take): the reports must not
     * make the refresher a loop against the source. */
    struct fake_source f = { 0 };
    struct ob_cred_provider *p = fake_provider(&f);
    int64_t until = ob_mono_ms() + 2500;
    while (ob_mono_ms() < until) {
        struct ob_cred_snapshot *s = ob_cred_acquire(p);
        ob_cred_report_expired(p, s);
        ob_cred_release(s);
        usleep(1000);
    }
    /* At creation, at the first two reports, then 1 s and 2 s after the
     * last install: the fifth comes after 3 s. */
    CHECK(calls_of(&f) >= 3);
    CHECK(calls_of(&f) <= 4);
    ob_cred_provider_destroy(p);
}

TEST(destroy_waits_out_a_short_refresh_in_progress_and_stops)
{
    struct fake_source f = { .block_ms = 300 };
    struct ob_cred_provider *p = fake_provider(&f);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    ob_cred_release(s);
    CHECK(wait_calls(&f, 2));
    int64_t t = ob_mono_ms();
    ob_cred_provider_destroy(p);
    CHECK(ob_mono_ms() - t < 2000);
    CHECK_INT(calls_of(&f), 2);
}

/* A source owned by the provider (freed with it), whose refreshes block. */
static atomic_int slow_sources_freed;

static void slow_source_free(void *ctx)
{
    pthread_mutex_destroy(&((struct fake_source *)ctx)->mu);
    free(ctx);
    atomic_fetch_add(&slow_sources_freed, 1);
}

TEST(destroy_does_not_wait_out_a_slow_refresh_and_the_refresher_frees_the_provider_when_it_returns)
{
    /* SIGTERM during a credential_process or an STS call that takes its
     * time: the process must still exit within its shutdown timeout. */
    struct fake_source *f = ob_xcalloc(1, sizeof *f);
    f->block_ms = 3000;
    pthread_mutex_init(&f->mu, NULL);
    const struct ob_cred_source source = { .resolve = fake_resolve, .ctx = f, .free = slow_source_free };
    struct ob_cred_provider *p = NULL;
    struct ob_error err = { 0 };
    CHECK_INT(ob_cred_provider_create_from(&source, true, &p, &err), OB_OK);
    struct ob_cred_snapshot *s = ob_cred_acquire(p);
    ob_cred_report_expired(p, s);
    ob_cred_release(s);
    CHECK(wait_calls(f, 2));
    int64_t t = ob_mono_ms();
    ob_cred_provider_destroy(p);
    CHECK(ob_mono_ms() - t < 2000);
    CHECK_INT(atomic_load(&slow_sources_freed), 0);
    /* The refresh returns 3 s on; nothing outlives it (ASan would say). */
    for (int i = 0; i < 1000 && !atomic_load(&slow_sources_freed); i++)
        usleep(10000);
    CHECK_INT(atomic_load(&slow_sources_freed), 1);
}

TEST(destroy_of_an_idle_provider_is_prompt)
{
    struct fake_source f = { .lifetime_s = 3600 };
    struct ob_cred_provider *p = fake_provider(&f);
    int64_t t = ob_mono_ms();
    ob_cred_provider_destroy(p);
    CHECK(ob_mono_ms() - t < 200);
}

TEST(a_source_that_fails_at_creation_is_the_callers_error)
{
    struct fake_source f = { .fail_call = 1 };
    pthread_mutex_init(&f.mu, NULL);
    const struct ob_cred_source source = { .resolve = fake_resolve, .ctx = &f };
    struct ob_cred_provider *p = NULL;
    struct ob_error err = { 0 };
    CHECK_INT(ob_cred_provider_create_from(&source, true, &p, &err), OB_ERR_NETWORK);
    CHECK(p == NULL);
    CHECK(strstr(err.msg, "connection refused") != NULL);
}

/* Whether every thread of the process but the caller blocks sig
 * (SigBlk of /proc/self/task/TID/status, a hex mask of signals 1..64). */
static bool other_threads_block(int sig)
{
    char self[32];
    snprintf(self, sizeof self, "%ld", (long)syscall(SYS_gettid));
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return false;
    bool all = true;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "SigBlk:", 7) == 0 && !((strtoull(line + 7, NULL, 16) >> (sig - 1)) & 1))
                all = false;
        fclose(f);
    }
    closedir(d);
    return all;
}

/* The relay's main thread waits for SIGTERM and SIGHUP; a refresher that
 * took one instead would die of it, and the process with it. */
TEST(the_refresher_takes_no_signal_meant_for_the_main_thread)
{
    struct fake_source f = { .lifetime_s = 3600 };
    struct ob_cred_provider *p = fake_provider(&f);
    CHECK(other_threads_block(SIGTERM));
    CHECK(other_threads_block(SIGHUP));
    CHECK(other_threads_block(SIGINT));
    ob_cred_provider_destroy(p);
}
