/*
 * Process-wide metrics rendered in the Prometheus text format. Series are
 * keyed by name plus a preformatted label string such as
 * `status="200",ura="01234567"` (build it with metrics_label). Single
 * threaded: called from the event loop only.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* Declare a family once (type and HELP text); later calls are no-ops. */
void metrics_describe(const char *name, enum metrics_type type,
		      const char *help);
/* Add n to a counter series. */
void metrics_add(const char *name, const char *labels, uint64_t n);
/* Set a gauge series. */
void metrics_set(const char *name, const char *labels, double value);
/* Record one observation (seconds, bytes, ...) in a histogram series. */
void metrics_observe(const char *name, const char *labels, double value);
/* Remove every series of a gauge family (before re-setting them all). */
void metrics_clear(const char *name);

/* Append `key="value"` (value escaped) to out, comma-separated from what
 * is already there. out is NUL-terminated, size n; cut when too long. */
void metrics_label(char *out, size_t n, const char *key, const char *value);

/* Label every series with node="NAME" (NULL or "": none), first. */
void metrics_set_node(const char *node);

/* Render every family into out. */
enum gw_err metrics_render(struct buf *out);

/* Forget everything (tests, shutdown). */
void metrics_reset(void);

#endif
