#include "aws/credentials_provider.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/codec.h"
#include "ops/clock.h"
#include "ops/log.h"
#include "ops/thread.h"

/* How long the refresher sleeps at most between looks at the wall clock:
 * its waits run on the monotonic clock, expiries are wall-clock times. */
#define LOOK_AGAIN_MS 60000
#define REFRESH_MARGIN_MS 300000
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 60000
/* How long destroy waits for a resolve under way: a credential_process may
 * take a minute, STS tens of seconds, and the process must exit within its
 * shutdown timeout. */
#define STOP_WAIT_MS 1000

struct ob_cred_provider {
    pthread_mutex_t mu;
    pthread_cond_t wake;              /* on CLOCK_MONOTONIC */
    pthread_cond_t stopped;           /* on CLOCK_MONOTONIC: signalled once finished */
    struct ob_cred_snapshot *current; /* one reference is the provider's */
    int64_t obtained_ms;              /* when current was resolved (wall) */
    uint64_t installed;
    struct ob_cred_source source;
    bool refreshing;                  /* the refresher thread runs */
    bool stop;
    bool finished;                    /* the refresher has left its loop */
    bool abandoned;                   /* destroy stopped waiting: the refresher frees the provider */
    bool expired_reported;
    bool resolving;                   /* a refresh is asking the source */
    int failures;                     /* refreshes failed in a row */
    int quick;                        /* refreshes in a row that replaced a refreshed set within a minute */
    int64_t retry_ms;                 /* when failures > 0: the next try (wall) */
    pthread_t thread;
};

static atomic_uint_fast64_t next_generation = 1;

int64_t ob_cred_refresh_at(int64_t obtained_ms, int64_t expires_ms)
{
    if (!expires_ms)
        return 0;
    int64_t lifetime = expires_ms - obtained_ms;
    if (lifetime <= 0)
        return obtained_ms;
    int64_t margin = lifetime / 3 < REFRESH_MARGIN_MS ? lifetime / 3 : REFRESH_MARGIN_MS;
    return expires_ms - margin;
}

int64_t ob_cred_retry_at(int64_t now_ms, int64_t expires_ms, int failures)
{
    static const struct ob_backoff retry = { .initial_ms = RETRY_FIRST_MS, .max_ms = RETRY_MAX_MS };
    int64_t delay = ob_backoff_exponential_ms(&retry, failures);
    if (expires_ms > now_ms) {
        int64_t half = (expires_ms - now_ms) / 2;
        if (half < RETRY_FIRST_MS)
            half = RETRY_FIRST_MS;
        if (half < delay)
            delay = half;
    }
    return now_ms + delay;
}

static int64_t expires_ms(const struct ob_aws_credentials *c)
{
    return c->expires_at * 1000;
}

/* A snapshot of creds (taken over: *creds is left empty), one reference. */
static struct ob_cred_snapshot *snapshot_new(struct ob_aws_credentials *creds)
{
    struct ob_cred_snapshot *s = ob_xcalloc(1, sizeof *s);
    s->creds = *creds;
    memset(creds, 0, sizeof *creds);
    s->generation = atomic_fetch_add(&next_generation, 1);
    atomic_init(&s->refs, 1);
    return s;
}

struct ob_cred_snapshot *ob_cred_acquire(struct ob_cred_provider *p)
{
    pthread_mutex_lock(&p->mu);
    struct ob_cred_snapshot *s = p->current;
    atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&p->mu);
    return s;
}

void ob_cred_release(struct ob_cred_snapshot *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1) {
        ob_aws_credentials_free(&s->creds);
        free(s);
    }
}

uint64_t ob_cred_installed(struct ob_cred_provider *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->installed;
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* Makes creds (taken over) the current credentials; the caller holds mu. */
static void install(struct ob_cred_provider *p, struct ob_aws_credentials *creds, int64_t now_ms)
{
    struct ob_cred_snapshot *old = p->current;
    p->current = snapshot_new(creds);
    /* The set found at creation may be stale: replacing it soon is no sign. */
    p->quick = p->installed > 1 && now_ms - p->obtained_ms < RETRY_MAX_MS ? p->quick + 1 : 0;
    p->obtained_ms = now_ms;
    p->installed++;
    p->failures = 0;
    ob_cred_release(old);
}

void ob_cred_report_expired(struct ob_cred_provider *p, const struct ob_cred_snapshot *s)
{
    pthread_mutex_lock(&p->mu);
    /* A refresh under way answers the report; while refreshes fail, the
     * retry schedule stands: a storm of reports must not make it a hot
     * loop. */
    if (p->refreshing && s->generation == p->current->generation && !p->resolving && p->failures == 0 &&
        !p->expired_reported) {
        p->expired_reported = true;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->mu);
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Why freshly resolved credentials are no better than the current ones,
 * or NULL when they are. */
static const char *not_fresh(const struct ob_aws_credentials *fresh, const struct ob_aws_credentials *cur,
                             int64_t now_ms)
{
    if (fresh->expires_at && expires_ms(fresh) <= now_ms)
        return "the source handed out credentials that have expired already";
    if (same_text(fresh->access_key_id, cur->access_key_id) &&
        same_text(fresh->secret_access_key, cur->secret_access_key) &&
        same_text(fresh->session_token, cur->session_token) && fresh->expires_at == cur->expires_at)
        return "the source handed out the credentials in use again";
    return NULL;
}

static void put_expiry(char out[OB_ISO8601_LEN + 8], int64_t expires_at)
{
    if (expires_at)
        ob_iso8601_ms(expires_at * 1000, out);
    else
        strcpy(out, "never");
}

/* One refresh: resolves without the lock, then installs or schedules the
 * next try. Called and returns with mu held. */
static void refresh_once(struct ob_cred_provider *p)
{
    struct ob_aws_credentials fresh = { 0 };
    struct ob_error err = { 0 };
    p->resolving = true;
    pthread_mutex_unlock(&p->mu);
    enum ob_err rc = p->source.resolve(p->source.ctx, &fresh, &err);
    pthread_mutex_lock(&p->mu);
    p->resolving = false;
    if (p->stop) { /* nobody signs any more */
        ob_aws_credentials_free(&fresh);
        return;
    }
    int64_t now = ob_wall_ms();
    const struct ob_aws_credentials *cur = &p->current->creds;
    const char *why = rc ? err.msg : not_fresh(&fresh, cur, now);
    char expiry[OB_ISO8601_LEN + 8];
    if (!why) {
        put_expiry(expiry, fresh.expires_at);
        install(p, &fresh, now);
        ob_log_at(p->quick ? OB_SEV_WARN : OB_SEV_INFO, NULL, NULL, "credentials refreshed: %s; they expire at %s%s",
                  p->current->creds.source, expiry,
                  p->quick ? "; the ones before lasted less than a minute, the next refresh waits longer" : "");
        return;
    }
    p->failures++;
    p->retry_ms = ob_cred_retry_at(now, expires_ms(cur), p->failures);
    put_expiry(expiry, cur->expires_at);
    bool valid = !cur->expires_at || expires_ms(cur) > now;
    ob_log_warn("refreshing the AWS credentials failed (%s); %s (%s, expiry %s); next try in %lld ms", why,
                valid ? "the current ones stay in use" : "the current ones have expired and stay in use", cur->source,
                expiry, (long long)(p->retry_ms - now));
    ob_aws_credentials_free(&fresh);
}

static void wait_ms(struct ob_cred_provider *p, int64_t ms)
{
    if (ms > LOOK_AGAIN_MS)
        ms = LOOK_AGAIN_MS;
    struct timespec until = ob_clock_after(CLOCK_MONOTONIC, ms);
    pthread_cond_timedwait(&p->wake, &p->mu, &until);
}

/* When to refresh next (wall ms; 0: only on a report); the caller holds mu. */
static int64_t refresh_due(const struct ob_cred_provider *p)
{
    if (p->failures)
        return p->retry_ms;
    int64_t expiry = expires_ms(&p->current->creds);
    int64_t due = p->expired_reported ? p->obtained_ms : ob_cred_refresh_at(p->obtained_ms, expiry);
    /* Sets replaced soon after their install, again and again (a source
     * handing out sets that expire at once, or that services call
     * expired), are paced as failed refreshes are: neither the schedule
     * nor a stream of reports makes a loop against the source. */
    if (due && p->quick) {
        int64_t not_before = ob_cred_retry_at(p->obtained_ms, expiry, p->quick);
        if (due < not_before)
            due = not_before;
    }
    return due;
}

/* Frees p, stopped: by destroy, or by a refresher destroy left behind. */
static void provider_free(struct ob_cred_provider *p)
{
    ob_cred_release(p->current);
    if (p->source.free)
        p->source.free(p->source.ctx);
    pthread_cond_destroy(&p->stopped);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void *refresher_main(void *arg)
{
    struct ob_cred_provider *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int64_t due = refresh_due(p);
        int64_t now = ob_wall_ms();
        if (due && now >= due) {
            p->expired_reported = false;
            refresh_once(p);
        } else if (due) {
            wait_ms(p, due - now);
        } else {
            pthread_cond_wait(&p->wake, &p->mu); /* nothing expires: until a report or the end */
        }
    }
    p->finished = true;
    bool abandoned = p->abandoned;
    pthread_cond_signal(&p->stopped);
    pthread_mutex_unlock(&p->mu);
    if (abandoned)
        provider_free(p);
    return NULL;
}

static struct ob_cred_provider *provider_new(struct ob_aws_credentials *creds)
{
    struct ob_cred_provider *p = ob_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &monotonic);
    pthread_cond_init(&p->stopped, &monotonic);
    pthread_condattr_destroy(&monotonic);
    install(p, creds, ob_wall_ms());
    return p;
}

struct ob_cred_provider *ob_cred_provider_static(const struct ob_aws_credentials *creds)
{
    struct ob_aws_credentials copy = *creds;
    copy.access_key_id = ob_xstrdup(creds->access_key_id);
    copy.secret_access_key = ob_xstrdup(creds->secret_access_key);
    copy.session_token = creds->session_token ? ob_xstrdup(creds->session_token) : NULL;
    return provider_new(&copy);
}

enum ob_err ob_cred_provider_create_from(const struct ob_cred_source *source, bool refresh,
                                         struct ob_cred_provider **out, struct ob_error *err)
{
    *out = NULL;
    struct ob_aws_credentials creds = { 0 };
    enum ob_err rc = source->resolve(source->ctx, &creds, err);
    if (rc) {
        if (source->free)
            source->free(source->ctx);
        return rc;
    }
    struct ob_cred_provider *p = provider_new(&creds);
    p->source = *source;
    p->refreshing = refresh;
    int e = refresh ? ob_thread_start_without_signals(&p->thread, refresher_main, p) : 0;
    if (e) {
        p->refreshing = false;
        ob_cred_provider_destroy(p);
        return ob_error_set(err, OB_ERR_INTERNAL, "starting the credentials refresher: %s", strerror(e));
    }
    *out = p;
    return OB_OK;
}

static enum ob_err resolve_chain(void *ctx, struct ob_aws_credentials *out, struct ob_error *err)
{
    return ob_credentials_resolve(ctx, out, err);
}

static char *dup_or_null(const char *s)
{
    return s ? ob_xstrdup(s) : NULL;
}

static void chain_free(void *ctx)
{
    struct ob_credentials_options *o = ctx;
    char *owned[] = { (char *)o->access_key_id, (char *)o->secret_access_key, (char *)o->session_token,
                      (char *)o->profile, (char *)o->region };
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (owned[i])
            explicit_bzero(owned[i], strlen(owned[i]));
        free(owned[i]);
    }
    free(o);
}

enum ob_err ob_cred_provider_create(const struct ob_credentials_options *opt, bool refresh,
                                    struct ob_cred_provider **out, struct ob_error *err)
{
    struct ob_credentials_options *chain = ob_xcalloc(1, sizeof *chain);
    chain->access_key_id = dup_or_null(opt->access_key_id);
    chain->secret_access_key = dup_or_null(opt->secret_access_key);
    chain->session_token = dup_or_null(opt->session_token);
    chain->profile = dup_or_null(opt->profile);
    chain->region = dup_or_null(opt->region);
    const struct ob_cred_source source = { .resolve = resolve_chain, .ctx = chain, .free = chain_free };
    return ob_cred_provider_create_from(&source, refresh, out, err);
}

void ob_cred_provider_destroy(struct ob_cred_provider *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    struct timespec until = ob_clock_after(CLOCK_MONOTONIC, STOP_WAIT_MS);
    int e = 0;
    while (p->refreshing && !p->finished && e != ETIMEDOUT)
        e = pthread_cond_timedwait(&p->stopped, &p->mu, &until);
    p->abandoned = p->refreshing && !p->finished;
    if (p->abandoned) {
        /* Still asking its source: the provider is the refresher's now. */
        pthread_detach(p->thread);
        pthread_mutex_unlock(&p->mu);
        ob_log_info("the AWS credentials refresh under way has not ended within %d ms: stopping without it",
                    STOP_WAIT_MS);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    if (p->refreshing)
        pthread_join(p->thread, NULL);
    provider_free(p);
}

enum ob_err ob_cred_context_open(const char *configured_region, const struct ob_credentials_options *opt, bool refresh,
                                struct ob_cred_context *out, struct ob_error *err)
{
    memset(out, 0, sizeof *out);
    enum ob_err rc = ob_aws_region_resolve(configured_region, opt->profile, &out->region, err);
    if (rc)
        return rc;
    struct ob_credentials_options chain = *opt;
    chain.region = out->region;
    rc = ob_cred_provider_create(&chain, refresh, &out->credentials, err);
    if (rc)
        ob_cred_context_close(out);
    return rc;
}

enum ob_err ob_cred_context_open_config(const struct ob_config_aws *aws, bool refresh, struct ob_cred_context *out,
                                       struct ob_error *err)
{
    const struct ob_credentials_options opt = ob_credentials_options_of(aws);
    return ob_cred_context_open(aws->region, &opt, refresh, out, err);
}

void ob_cred_context_close(struct ob_cred_context *c)
{
    ob_cred_provider_destroy(c->credentials);
    free(c->region);
    memset(c, 0, sizeof *c);
}
