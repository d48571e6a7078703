/* The supervisor on the main thread: startup checks, the routing (sinks
 * and routes, replaced on SIGHUP), the coordinator and the operations
 * server, then signals until a graceful stop. */
#include "relay/relay.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/config_schema.h"
#include "dynamo/leases.h"
#include "dynamo/table.h"
#include "ops/clock.h"
#include "ops/http_server.h"
#include "ops/log.h"
#include "ops/metrics.h"
#include "ops/notify.h"
#include "relay/relay_internal.h"

void ob_relay_wake(struct ob_relay *r)
{
    pthread_mutex_lock(&r->lock);
    atomic_fetch_add(&r->wakes, 1);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

void ob_relay_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t monotonic;
    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &monotonic);
    pthread_condattr_destroy(&monotonic);
}

void ob_relay_wait(struct ob_relay *r, int64_t until_ms, bool (*done)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&r->lock);
    while (!done(ctx) && ob_mono_ms() < until_ms) {
        struct timespec ts = ob_clock_after(CLOCK_MONOTONIC, until_ms - ob_mono_ms());
        if (pthread_cond_timedwait(&r->wake, &r->lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&r->lock);
}

void ob_relay_want_sweep(struct ob_relay *r)
{
    atomic_store(&r->sweep_needed, true);
    ob_relay_wake(r);
}

int64_t ob_relay_budget_take(struct ob_relay *r, double n)
{
    if (r->write_budget.rate <= 0)
        return 0; /* unlimited: no lock on the hot path */
    pthread_mutex_lock(&r->budget_lock);
    int64_t wait = ob_bucket_take(&r->write_budget, n, ob_mono_ms());
    pthread_mutex_unlock(&r->budget_lock);
    return wait;
}

void ob_relay_budget_settle(struct ob_relay *r, double delta)
{
    if (r->write_budget.rate <= 0)
        return;
    pthread_mutex_lock(&r->budget_lock);
    ob_bucket_settle(&r->write_budget, delta);
    pthread_mutex_unlock(&r->budget_lock);
}

/* ---- routing -------------------------------------------------------------- */

static void routing_destroy(struct ob_routing *rt)
{
    for (size_t i = 0; i < rt->cfg->n_sinks; i++) {
        if (!rt->sinks[i])
            continue;
        struct ob_error err;
        if (ob_sink_flush(rt->sinks[i], &err))
            ob_log_warn("sink %s: flush on close: %s", rt->sinks[i]->name, err.msg);
        ob_sink_destroy(rt->sinks[i]);
    }
    free(rt->sinks);
    free(rt->health);
    ob_config_free(rt->cfg);
    free(rt);
}

static void sink_labels(struct ob_buf *b, const char *name)
{
    ob_buf_reset(b);
    ob_buf_puts(b, "sink=\"");
    ob_metrics_escape(b, name);
    ob_buf_putc(b, '"');
}

/* Creates every sink of cfg (taken over) for the table the relay runs on
 * (a reload does not move it), with the relay's region and credentials.
 * The caller owns *out. */
static enum ob_err routing_create(const struct ob_relay *r, struct ob_config *cfg, struct ob_routing **out,
                                  struct ob_error *err)
{
    struct ob_routing *rt = ob_xcalloc(1, sizeof *rt);
    atomic_init(&rt->refs, 1);
    rt->cfg = cfg;
    rt->sinks = ob_xcalloc(cfg->n_sinks ? cfg->n_sinks : 1, sizeof *rt->sinks);
    rt->health = ob_xcalloc(cfg->n_sinks ? cfg->n_sinks : 1, sizeof *rt->health);
    struct ob_sink_context ctx = { .table = r->cfg->table.name, .aws = &cfg->aws, .region = r->aws->region,
                                   .credentials = r->aws->credentials };
    struct ob_buf l = { 0 };
    enum ob_err rc = OB_OK;
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        rc = ob_sink_create(&cfg->sinks[i], &ctx, &rt->sinks[i], err);
        if (rc) {
            ob_error_prefix(err, "sink %s (%s)", cfg->sinks[i].name, cfg->sinks[i].type);
            goto out;
        }
        struct ob_sink_health *h = &rt->health[i];
        atomic_init(&h->consecutive_retry, 0);
        atomic_init(&h->answered_at_ms, 0);
        atomic_init(&h->up, true);
        atomic_init(&h->probing, false);
        atomic_init(&h->next_probe_at_ms, 0);
        atomic_init(&h->probe_failures, 0);
        sink_labels(&l, cfg->sinks[i].name);
        h->up_gauge = ob_metric_series("outboxd_sink_up", l.data);
        h->delivered = ob_metric_series("outboxd_messages_delivered_total", l.data);
        h->failed = ob_metric_series("outboxd_messages_failed_total", l.data);
        h->latency = ob_metric_series("outboxd_delivery_latency_seconds", l.data);
        ob_metric_set(h->up_gauge, 1);
        if (cfg->relay.dead_letter_sink && strcmp(cfg->relay.dead_letter_sink, cfg->sinks[i].name) == 0) {
            rt->dead_letter = rt->sinks[i];
            rt->dead_letter_health = h;
        }
    }
out:
    ob_buf_free(&l);
    if (rc) {
        routing_destroy(rt);
        return rc;
    }
    *out = rt;
    return OB_OK;
}

struct ob_routing *ob_routing_get(struct ob_relay *r)
{
    pthread_mutex_lock(&r->routing_lock);
    struct ob_routing *rt = r->routing;
    atomic_fetch_add(&rt->refs, 1);
    pthread_mutex_unlock(&r->routing_lock);
    return rt;
}

void ob_routing_put(struct ob_routing *rt)
{
    if (rt && atomic_fetch_sub(&rt->refs, 1) == 1)
        routing_destroy(rt);
}

/* ---- SIGHUP ---------------------------------------------------------------- */

/* One warning naming every setting of the new file that differs from the
 * running one but is read only at start; r->cfg keeps those values, so a
 * later SIGHUP names them again until a restart. */
static void warn_restart_needed(const struct ob_config *running, const struct ob_config *loaded)
{
    const char **changed = ob_xcalloc(ob_config_n_keys, sizeof *changed);
    size_t n = ob_config_restart_changes(running, loaded, changed, ob_config_n_keys);
    if (n) {
        struct ob_buf applied = { 0 };
        for (size_t i = 0; i < ob_config_n_keys; i++)
            if (ob_config_keys[i].flags & OB_CK_RELOAD)
                ob_buf_printf(&applied, "%s%s", applied.len ? ", " : "", ob_config_keys[i].path);
        struct ob_buf names = { 0 };
        for (size_t i = 0; i < n; i++)
            ob_buf_printf(&names, "%s%s", i ? ", " : "", changed[i]);
        ob_log_warn("reload: changed settings that take effect only on restart: %s; the reloadable settings (%s) "
                    "were applied", ob_buf_cstr(&names), ob_buf_cstr(&applied));
        ob_buf_free(&names);
        ob_buf_free(&applied);
    }
    free(changed);
}

static void reload(struct ob_relay *r)
{
    ob_notify_reloading();
    struct ob_config *cfg = NULL;
    struct ob_config_diag diag = { 0 };
    if (ob_config_load(r->cfg->path, r->cfg->sink_types, &cfg, &diag)) {
        for (size_t i = 0; i < diag.n; i++)
            ob_log_error("%s", diag.lines[i]);
        ob_log_error("reload: %s has errors; keeping the running configuration", r->cfg->path);
        ob_config_diag_free(&diag);
        goto out;
    }
    struct ob_routing *rt;
    struct ob_error err;
    enum ob_log_severity level = cfg->log.level;
    enum ob_log_format format = cfg->log.format;
    if (routing_create(r, cfg, &rt, &err)) {
        ob_log_error("reload: %s; keeping the running configuration", err.msg);
        goto out;
    }
    pthread_mutex_lock(&r->routing_lock);
    struct ob_routing *old = r->routing;
    r->routing = rt;
    pthread_mutex_unlock(&r->routing_lock);
    ob_routing_put(old);
    ob_log_setup(level, format == OB_LOG_JSON);
    warn_restart_needed(r->cfg, rt->cfg);
    ob_log_info("reloaded %s: %zu sinks, %zu routes", r->cfg->path, rt->cfg->n_sinks, rt->cfg->n_routes);
out:
    ob_notify_ready(NULL);
}

/* ---- readiness and liveness ----------------------------------------------- */

/* Ready once the stream is read. A sink that is down does not make the
 * relay unready: a sidecar's readiness gates its whole pod, and the
 * sink's state is in outboxd_sink_up and STATUS= (SPEC §7). */
static bool ready(void *ctx, struct ob_buf *why)
{
    struct ob_relay *r = ctx;
    if (atomic_load(&r->stopping)) {
        ob_buf_puts(why, "stopping\n");
        return false;
    }
    if (!atomic_load(&r->discovered)) {
        ob_buf_puts(why, "the stream's shards are not listed yet\n");
        return false;
    }
    return true;
}

/* Live unless a worker or the coordinator is stuck. Runs on the operations
 * server's thread: it reads atomics only (ob_health_check). A stop has its
 * own deadline, shutdown_timeout. */
static bool healthy(void *ctx, struct ob_buf *why)
{
    struct ob_relay *r = ctx;
    if (atomic_load(&r->stopping))
        return true;
    bool coordinator;
    size_t shards = ob_health_check(&r->health, ob_mono_ms(), why, false, &coordinator);
    return shards == 0 && !coordinator;
}

/* The main thread's turn of the health check: logs what became stuck or
 * no longer is and sets outboxd_shards_stuck. Returns how many parts
 * (shards, the coordinator) are stuck. */
static size_t watch_health(struct ob_relay *r)
{
    bool coordinator;
    size_t shards = ob_health_check(&r->health, ob_mono_ms(), NULL, true, &coordinator);
    ob_metric_set(ob_metric_series("outboxd_shards_stuck", ""), (double)shards);
    return shards + coordinator;
}

/* ---- startup and the signal loop ------------------------------------------ */

static enum ob_err prepare_tables(struct ob_relay *r, struct ob_error *err)
{
    const struct ob_config *cfg = r->cfg;
    struct ob_ddb_session *s = ob_ddb_session_create(r->ddb);
    enum ob_table_outcome outcome;
    enum ob_err rc = OB_OK;
    if (cfg->table.create_if_not_exists) {
        struct ob_table_spec spec = { .name = cfg->table.name,
                                      .provisioned = cfg->table.billing_mode == OB_BILLING_PROVISIONED,
                                      .read_capacity = cfg->table.read_capacity,
                                      .write_capacity = cfg->table.write_capacity };
        rc = ob_table_ensure_outbox(s, &spec, &outcome, err);
        if (rc) {
            ob_error_prefix(err, "outbox table %s", cfg->table.name);
            goto out;
        }
    }
    rc = ob_stream_arn(s, cfg->table.name, true, &r->stream_arn, err);
    if (rc) {
        if (rc == OB_ERR_NOT_FOUND)
            ob_error_set(err, rc, "table %s does not exist; create it with `outboxd init` or set "
                                  "table.create_if_not_exists", cfg->table.name);
        goto out;
    }
    /* The lease table is outboxd's own: create it when missing. */
    struct ob_table_spec leases = { .name = cfg->leases.table };
    rc = ob_table_ensure_leases(s, &leases, &outcome, err);
    if (rc) {
        ob_error_prefix(err, "lease table %s", cfg->leases.table);
        goto out;
    }
    if (outcome == OB_TABLE_CREATED)
        ob_log_info("created the lease table %s", cfg->leases.table);
out:
    ob_ddb_session_destroy(s);
    return rc;
}

/* STATUS=: counts, what is stuck, and the sinks that are down (they do
 * not make the relay unready, so `systemctl status` says so here). */
static void status_line(struct ob_relay *r, const char *state, size_t stuck)
{
    pthread_mutex_lock(&r->lock);
    int shards = r->workers_running;
    pthread_mutex_unlock(&r->lock);
    struct ob_buf down = { 0 };
    struct ob_routing *rt = ob_routing_get(r);
    for (size_t i = 0; i < rt->cfg->n_sinks; i++)
        if (!atomic_load(&rt->health[i].up))
            ob_buf_printf(&down, "%s%s", down.len ? ", " : "; sinks down: ", rt->cfg->sinks[i].name);
    ob_routing_put(rt);
    char stuck_text[32] = "";
    if (stuck)
        snprintf(stuck_text, sizeof stuck_text, ", %zu stuck", stuck);
    ob_notify_status("%s: %d shards read, %.0f records read%s%s", state, shards,
                     ob_metric_get(ob_metric_series("outboxd_stream_records_read_total", "")), stuck_text,
                     ob_buf_cstr(&down));
    ob_buf_free(&down);
}

/* Waits for SIGTERM/SIGINT, reloading on SIGHUP. Every tick (a second at
 * most) it checks the relay's health; WATCHDOG=1 goes only while nothing
 * is stuck, so systemd restarts a relay that stopped moving. */
static void signal_loop(struct ob_relay *r, const sigset_t *set)
{
    int64_t watchdog_us = ob_notify_watchdog_interval_us();
    int64_t tick_ms = watchdog_us > 0 && watchdog_us / 1000 < 1000 ? watchdog_us / 1000 : 1000;
    if (tick_ms < 10)
        tick_ms = 10;
    bool announced = false;
    for (;;) {
        struct timespec ts = { .tv_sec = tick_ms / 1000, .tv_nsec = (tick_ms % 1000) * 1000000 };
        if (!announced && atomic_load(&r->discovered)) {
            ob_notify_ready("reading the stream");
            ob_log_info("reading the stream of %s", r->cfg->table.name);
            announced = true;
        } else if (!announced) {
            ts.tv_sec = 0;
            ts.tv_nsec = 50000000;
        }
        int sig = sigtimedwait(set, NULL, &ts);
        size_t stuck = watch_health(r);
        if (stuck == 0 && watchdog_us > 0)
            ob_notify_watchdog();
        if (sig == SIGHUP) {
            ob_log_info("SIGHUP: reloading %s", r->cfg->path);
            reload(r);
        } else if (sig == SIGTERM || sig == SIGINT) {
            ob_log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        } else if (sig < 0 && errno != EAGAIN && errno != EINTR) {
            ob_log_error("waiting for signals: %s", strerror(errno));
            return;
        }
        if (announced)
            status_line(r, "running", stuck);
    }
}

/* Stops the coordinator (which stops and joins the workers), waiting at
 * most shutdown_timeout for in-flight messages. */
/* Joins `thread` by the deadline; past it, exits (what was in flight is
 * read again on restart). */
static void join_by(pthread_t thread, const struct timespec *deadline, int64_t timeout)
{
    if (pthread_timedjoin_np(thread, NULL, deadline) == ETIMEDOUT) {
        ob_log_error("shutdown_timeout (%lld ms) passed with work still in flight; exiting, undelivered "
                     "messages are read again on restart", (long long)timeout);
        fflush(NULL);
        _exit(0);
    }
}

/* Asks every part to stop, draining until a deadline early enough to
 * checkpoint and exit within shutdown_timeout. Async-signal-safe. */
static void ask_to_stop(struct ob_relay *r)
{
    if (atomic_load(&r->stopping))
        return; /* a second signal does not move the deadline */
    int64_t timeout = r->cfg->relay.shutdown_timeout_ms;
    int64_t drain = timeout > 4000 ? timeout - 2000 : timeout / 2;
    atomic_store(&r->stop_deadline_ms, ob_mono_ms() + drain);
    atomic_store(&r->stopping, true);
}

/* Stops the sweeper and the coordinator (which stops and joins the
 * workers), waiting at most shutdown_timeout for in-flight messages. */
static void stop(struct ob_relay *r, pthread_t coordinator, pthread_t sweeper)
{
    int64_t timeout = r->cfg->relay.shutdown_timeout_ms;
    ask_to_stop(r);
    ob_notify_stopping();
    ob_relay_wake(r);
    struct timespec deadline = ob_clock_after(CLOCK_REALTIME, timeout);
    join_by(sweeper, &deadline, timeout);
    join_by(coordinator, &deadline, timeout);
}

/* Everything a relay (or a sweep) needs before threads start: clients,
 * the routing, the budget. relay_close undoes it, also after a failure. */
static enum ob_err relay_open(struct ob_relay *r, const struct ob_config *cfg, const struct ob_cred_context *aws,
                              struct ob_error *err)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->aws = aws;
    ob_health_init(&r->health, cfg->relay.stuck_after_ms);
    pthread_mutex_init(&r->lock, NULL);
    ob_relay_cond_init(&r->wake);
    pthread_mutex_init(&r->routing_lock, NULL);
    pthread_mutex_init(&r->budget_lock, NULL);
    ob_given_up_init(&r->given_up, OB_GIVEN_UP_MAX);
    /* A second of budget may be saved up, no more. */
    ob_bucket_init(&r->write_budget, cfg->capacity.max_write_units_per_second,
                   cfg->capacity.max_write_units_per_second, ob_mono_ms());
    if (cfg->leases.instance_id) {
        snprintf(r->instance_buf, sizeof r->instance_buf, "%s", cfg->leases.instance_id);
    } else if (gethostname(r->instance_buf, sizeof r->instance_buf) != 0) {
        snprintf(r->instance_buf, sizeof r->instance_buf, "outboxd-%d", (int)getpid());
    }
    r->instance_buf[sizeof r->instance_buf - 1] = '\0';
    r->instance_id = r->instance_buf;
    srandom((unsigned)(ob_wall_ms() ^ getpid()));

    enum ob_err rc = ob_ddb_open_config(cfg, aws, &r->ddb, err);
    if (rc)
        return rc;

    /* The routing owns a config of its own so that SIGHUP can replace it. */
    struct ob_config *routing_cfg = NULL;
    struct ob_config_diag diag = { 0 };
    rc = ob_config_load(cfg->path, cfg->sink_types, &routing_cfg, &diag);
    if (rc) {
        ob_error_set(err, OB_ERR_CONFIG, "%s", diag.n ? diag.lines[0] : "cannot reload the configuration");
        ob_config_diag_free(&diag);
        return rc;
    }
    return routing_create(r, routing_cfg, &r->routing, err);
}

static void relay_close(struct ob_relay *r)
{
    if (r->routing)
        ob_routing_put(r->routing);
    free(r->stream_arn);
    ob_ddb_close(r->ddb);
    ob_health_free(&r->health);
    pthread_mutex_destroy(&r->routing_lock);
    pthread_mutex_destroy(&r->budget_lock);
    ob_given_up_free(&r->given_up);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
}

enum ob_err ob_relay_run(const struct ob_config *cfg, const struct ob_cred_context *aws, struct ob_error *err)
{
    struct ob_relay r;
    struct ob_http_server *http = NULL;
    bool coordinator_started = false, sweeper_started = false;
    pthread_t coordinator, sweeper;

    /* Signals go to the main thread's sigtimedwait only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    enum ob_err rc = relay_open(&r, cfg, aws, err);
    if (rc)
        goto out;
    rc = prepare_tables(&r, err);
    if (rc)
        goto out;

    if (cfg->metrics.listen) {
        struct ob_http_routes routes = { .ready = ready, .ready_ctx = &r, .healthy = healthy, .healthy_ctx = &r };
        rc = ob_http_server_start(cfg->metrics.listen, &routes, &http, err);
        if (rc)
            goto out;
        ob_log_info("metrics on http://%s/metrics", cfg->metrics.listen);
    }

    atomic_store(&r.health.coordinator_turn_ms, ob_mono_ms());
    int e = pthread_create(&coordinator, NULL, ob_coordinator_main, &r);
    if (e) {
        rc = ob_error_set(err, OB_ERR_INTERNAL, "starting the coordinator: %s", strerror(e));
        goto out;
    }
    coordinator_started = true;
    e = pthread_create(&sweeper, NULL, ob_sweeper_main, &r);
    if (e) {
        rc = ob_error_set(err, OB_ERR_INTERNAL, "starting the sweeper: %s", strerror(e));
        goto out;
    }
    sweeper_started = true;
    ob_log_info("instance %s, leases in %s", r.instance_id, cfg->leases.table);
    signal_loop(&r, &set);
    stop(&r, coordinator, sweeper);
    coordinator_started = sweeper_started = false;
    ob_log_info("stopped");
out:
    if (coordinator_started || sweeper_started) {
        atomic_store(&r.stopping, true);
        ob_relay_wake(&r);
    }
    if (coordinator_started)
        pthread_join(coordinator, NULL);
    if (sweeper_started)
        pthread_join(sweeper, NULL);
    ob_http_server_stop(http);
    relay_close(&r);
    return rc;
}

/* The sweep being run by `outboxd sweep`, for its signal handler. */
static struct ob_relay *interrupted_sweep;

static void stop_sweep(int sig)
{
    (void)sig;
    if (interrupted_sweep)
        ask_to_stop(interrupted_sweep);
}

enum ob_err ob_relay_sweep(const struct ob_config *cfg, const struct ob_cred_context *aws,
                           const struct ob_sweep_request *req, struct ob_sweep_result *res, struct ob_error *err)
{
    struct ob_relay r;
    struct ob_ddb_session *s = NULL;
    enum ob_err rc = relay_open(&r, cfg, aws, err);
    if (rc)
        goto out;
    s = ob_ddb_session_create(r.ddb);
    struct ob_table_spec leases = { .name = cfg->leases.table };
    enum ob_table_outcome outcome;
    rc = ob_table_ensure_leases(s, &leases, &outcome, err);
    if (rc) {
        ob_error_prefix(err, "lease table %s", cfg->leases.table);
        goto out;
    }
    /* How far the stream's readers are bounds what may be swept. */
    rc = ob_stream_arn(s, cfg->table.name, false, &r.stream_arn, err);
    if (rc == OB_ERR_MISMATCH) /* no stream: nobody reads one */
        rc = OB_OK;
    if (rc)
        goto out;
    struct ob_sweep_lease lease;
    ob_sweep_lease_init(&lease, cfg->leases.table, cfg->table.name, r.instance_id);
    rc = ob_sweep_lease_take(s, &lease, ob_wall_ms(), OB_SWEEP_HOLD_MS, false, err);
    if (rc == OB_ERR_CONDITION_FAILED) {
        rc = ob_error_set(err, OB_ERR_RESOURCE_IN_USE, "another instance is sweeping %s now; try again later",
                          cfg->table.name);
        goto out;
    }
    if (rc)
        goto out;
    interrupted_sweep = &r;
    signal(SIGINT, stop_sweep);
    signal(SIGTERM, stop_sweep);
    struct ob_sweep_options o = { .older_than_ms = req->older_than_ms, .include_undated = req->include_undated,
                                  .dry_run = req->dry_run, .list = req->list, .lease = &lease };
    struct ob_sweep_stats st;
    rc = ob_sweep_pass(&r, s, &o, &st, err);
    interrupted_sweep = NULL;
    res->found = st.candidates;
    res->poison = st.poison;
    res->undelivered = st.undelivered;
    res->blocked = st.blocked;
    res->rechecked = st.rechecked;
    res->read_units = st.read_units;
    res->cutoff_ms = st.cutoff_ms;
    snprintf(res->behind, sizeof res->behind, "%s", st.behind ? st.behind : "");
    free(st.behind);
    struct ob_error ferr;
    /* A sweep run by hand keeps the daemons' schedule. */
    if (ob_sweep_lease_finish(s, &lease, ob_wall_ms() + cfg->sweep.interval_ms, &ferr))
        ob_log_warn("ending the sweep lease failed: %s", ferr.msg);
out:
    ob_ddb_session_destroy(s);
    relay_close(&r);
    return rc;
}

int64_t ob_relay_backoff_ms(const struct ob_config *cfg, int attempt)
{
    /* Full jitter, but never a hot retry loop. */
    const struct ob_backoff b = { .initial_ms = cfg->relay.backoff_initial_ms, .max_ms = cfg->relay.backoff_max_ms,
                                  .floor_ms = 10 };
    return ob_backoff_ms(&b, attempt);
}
