/* Route selection (SPEC §6 routes): which sink, and which destination
 * template, a message goes to under a configuration. Pure code. */
#ifndef OB_CORE_ROUTE_H
#define OB_CORE_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "outboxd/message.h"

/* Shell-style glob: '*' any run, '?' one character; no classes. */
bool ob_glob_match(const char *glob, const char *s);

/* The first route matching m, else default_sink: the sink's index in
 * cfg->sinks and the route's destination template (NULL: the sink's own). */
void ob_route_select(const struct ob_config *cfg, const struct ob_message *m, size_t *sink_index,
                     const char **destination_template);

#endif
