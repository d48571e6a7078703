/* Route selection: the first route whose globs match. */
#include "core/route.h"

/* Iterative: on a mismatch only the most recent '*' is retried, one
 * character further, so no pattern takes more than O(len(glob)·len(s)). */
bool ob_glob_match(const char *glob, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*glob == '*') {
            star = glob++;
            resume = s;
        } else if (*glob == '?' || (*glob && *glob == *s)) {
            glob++;
            s++;
        } else if (star) {
            glob = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*glob == '*')
        glob++;
    return !*glob;
}

static bool route_matches(const struct ob_config_route *route, const struct ob_message *m)
{
    const char *type = m->message_type ? m->message_type : "";
    const char *aggregate = m->aggregate_type ? m->aggregate_type : "";
    return (!route->match_message_type || ob_glob_match(route->match_message_type, type)) &&
           (!route->match_aggregate_type || ob_glob_match(route->match_aggregate_type, aggregate));
}

void ob_route_select(const struct ob_config *cfg, const struct ob_message *m, size_t *sink_index,
                     const char **destination_template)
{
    for (size_t i = 0; i < cfg->n_routes; i++) {
        if (route_matches(&cfg->routes[i], m)) {
            *sink_index = cfg->routes[i].sink_index;
            *destination_template = cfg->routes[i].destination;
            return;
        }
    }
    /* Loading guarantees default_sink names a defined sink. */
    const struct ob_config_sink *sink = ob_config_find_sink(cfg, cfg->default_sink);
    *sink_index = sink ? (size_t)(sink - cfg->sinks) : 0;
    *destination_template = NULL;
}
