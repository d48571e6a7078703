/* Process-wide metrics registry, rendered in Prometheus text format.
 * Families are declared once in metrics.c (name, kind, help); a series is
 * a family plus a label set. Series live until ob_metrics_reset, so hot
 * paths look a series up once and keep the pointer. Updates are lock-free. */
#ifndef OB_OPS_METRICS_H
#define OB_OPS_METRICS_H

#include "core/buf.h"

struct ob_metric_series;

/* labels: a Prometheus label list without braces, values already escaped
 * with ob_metrics_escape, e.g. `table="outbox",operation="PutItem"`, or "".
 * Returns NULL only for an undeclared family (a bug: logged). */
struct ob_metric_series *ob_metric_series(const char *family, const char *labels);
void ob_metric_add(struct ob_metric_series *s, double v);
void ob_metric_set(struct ob_metric_series *s, double v);
double ob_metric_get(const struct ob_metric_series *s);

/* Convenience for cold paths: look up and add in one call. */
void ob_metric_count(const char *family, const char *labels, double v);

/* Appends a label value escaped for the text format (\\, \", \n). */
void ob_metrics_escape(struct ob_buf *out, const char *value);

void ob_metrics_render(struct ob_buf *out);
/* Drops every series (tests). */
void ob_metrics_reset(void);

#endif
