#include "relay/sink_health.h"

#include "ops/clock.h"
#include "ops/log.h"
#include "ops/metrics.h"

/* A sink is down after this many retriable failures in a row. */
#define SINK_DOWN_AFTER 3

void ob_sink_answered(struct ob_sink_health *h)
{
    atomic_store(&h->answered_at_ms, ob_mono_ms());
    atomic_store(&h->consecutive_retry, 0);
    atomic_store(&h->probe_failures, 0);
    if (!atomic_exchange(&h->up, true)) {
        ob_metric_set(h->up_gauge, 1);
        ob_log_info("a sink is up again; delivering what waited");
    }
}

bool ob_sink_failed_retriably(struct ob_sink_health *h, const struct ob_delivery *d, int64_t sent_at)
{
    /* Another host is down, not the sink: its messages wait for it, as
     * during any outage, without counting (SPEC §3) or stopping the rest. */
    if (d->destination_unreachable)
        return false;
    int in_a_row = atomic_fetch_add(&h->consecutive_retry, 1) + 1;
    if ((d->unreachable || in_a_row >= SINK_DOWN_AFTER) && atomic_exchange(&h->up, false)) {
        ob_metric_set(h->up_gauge, 0);
        if (d->unreachable)
            ob_log_warn("a sink is down (%s); its messages wait for it, one probe at a time", d->error);
        else
            ob_log_warn("a sink is down (%d retriable failures in a row); its messages wait for it, one probe at "
                        "a time", SINK_DOWN_AFTER);
    }
    return atomic_load(&h->up) && atomic_load(&h->answered_at_ms) >= sent_at;
}

size_t ob_sink_admit(const struct ob_config *cfg, struct ob_sink_health *h, size_t k, int64_t now, int64_t *retry_at,
                     bool *probe)
{
    /* up is read once: whether this is the probe is what was taken here,
     * not what another read of up (the sink may flap meanwhile) says. */
    *probe = false;
    if (atomic_load(&h->up))
        return k;
    int64_t probe_at = atomic_load(&h->next_probe_at_ms);
    *probe = now >= probe_at && !atomic_exchange(&h->probing, true);
    *retry_at = probe_at > now ? probe_at : now + cfg->relay.backoff_initial_ms;
    return *probe ? 1 : 0;
}

void ob_sink_probed(const struct ob_config *cfg, struct ob_sink_health *h, bool answered, uint64_t message,
                    int64_t now)
{
    atomic_store(&h->failed_probe, answered ? 0 : message);
    if (!answered) {
        int n = atomic_fetch_add(&h->probe_failures, 1) + 1;
        atomic_store(&h->next_probe_at_ms, now + ob_relay_backoff_ms(cfg, n));
    }
    atomic_store(&h->probing, false);
}

bool ob_sink_probe_failed_last(struct ob_sink_health *h, uint64_t message)
{
    return atomic_load(&h->failed_probe) == message;
}
