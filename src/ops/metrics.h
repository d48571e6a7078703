/* Process-wide metrics registry, rendered in Prometheus text format 0.0.4.
 * Families are declared once in metrics.c (name, kind, labels, help); a
 * series is a family plus a label set. Series live until ob_metrics_reset,
 * so hot paths look a series up once and keep the pointer. Updates are
 * lock-free; only creating, dropping and rendering take the registry lock. */
#ifndef OB_OPS_METRICS_H
#define OB_OPS_METRICS_H

#include "core/buf.h"

struct ob_metric_series;

/* labels: a Prometheus label list without braces, values already escaped
 * with ob_metrics_escape, e.g. `table="outbox",operation="PutItem"`, or "".
 * Looking up a dropped series makes it render again, value kept.
 * Returns NULL only for an undeclared family (a bug: logged). */
struct ob_metric_series *ob_metric_series(const char *family, const char *labels);
/* Counters and gauges; no-ops on a histogram series. */
void ob_metric_add(struct ob_metric_series *s, double v);
void ob_metric_set(struct ob_metric_series *s, double v);
/* Histograms: counts v in the first bucket whose bound is >= v, adds it to
 * the sum. A no-op on counter and gauge series. */
void ob_metric_observe(struct ob_metric_series *s, double v);
/* The value of a counter or gauge; the number of observations of a histogram. */
double ob_metric_get(const struct ob_metric_series *s);

/* Convenience for cold paths: look up and add in one call. */
void ob_metric_count(const char *family, const char *labels, double v);

/* Stops rendering a series (a retired shard's lag) without freeing it, so
 * holders of the pointer stay safe; their updates go unseen until the next
 * ob_metric_series of the same labels. No-op when the series does not exist. */
void ob_metric_drop(const char *family, const char *labels);

/* Appends a label value escaped for the text format (\\, \", \n). */
void ob_metrics_escape(struct ob_buf *out, const char *value);

/* Appends every family: HELP and TYPE once each, then its series sorted by
 * labels. A family declared without labels always has its one sample (0
 * before the first update); a labelled family shows only existing series. */
void ob_metrics_render(struct ob_buf *out);
/* Drops and frees every series (tests only: no pointer may be held). */
void ob_metrics_reset(void);

#endif
