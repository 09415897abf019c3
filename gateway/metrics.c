/* In-memory metric families and their Prometheus text rendering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

/* Histogram bucket upper bounds; suits latencies in seconds and batch
 * sizes alike when observations are scaled by the caller. */
static const double metrics_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
					0.05,  0.1,    0.25,  0.5,  1,
					2.5,   5,      10,    30,   60};
#define METRICS_NBOUNDS UTIL_ARRAY_LEN(metrics_bounds)

struct series {
	struct series *next;
	char *labels;
	double value; /* counter/gauge value, histogram sum */
	uint64_t count;
	uint64_t buckets[METRICS_NBOUNDS];
};

struct family {
	struct family *next;
	char *name;
	char *help;
	enum metrics_type type;
	struct series *series;
};

static struct family *families;
/* `node="NAME"` or "" (metrics_set_node): put before each series' own
 * labels when rendering. */
static char metrics_node[300];

static struct family *
family_get(const char *name, enum metrics_type type)
{
	struct family *f, **tail = &families;

	for (f = families; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0)
			return f;
		tail = &f->next;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if ((f->name = strdup(name)) == NULL) {
		free(f);
		return NULL;
	}
	f->type = type;
	*tail = f; /* keep declaration order in the output */
	return f;
}

void
metrics_describe(const char *name, enum metrics_type type, const char *help)
{
	struct family *f = family_get(name, type);

	if (f != NULL && f->help == NULL) {
		f->type = type;
		f->help = strdup(help);
	}
}

static struct series *
series_get(const char *name, enum metrics_type type, const char *labels)
{
	struct family *f = family_get(name, type);
	struct series *s, **tail;

	if (f == NULL)
		return NULL;
	if (labels == NULL)
		labels = "";
	tail = &f->series;
	for (s = f->series; s != NULL; s = s->next) {
		if (strcmp(s->labels, labels) == 0)
			return s;
		tail = &s->next;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	if ((s->labels = strdup(labels)) == NULL) {
		free(s);
		return NULL;
	}
	*tail = s;
	return s;
}

void
metrics_add(const char *name, const char *labels, uint64_t n)
{
	struct series *s = series_get(name, METRICS_COUNTER, labels);

	if (s != NULL)
		s->value += (double)n;
}

void
metrics_set(const char *name, const char *labels, double value)
{
	struct series *s = series_get(name, METRICS_GAUGE, labels);

	if (s != NULL)
		s->value = value;
}

void
metrics_observe(const char *name, const char *labels, double value)
{
	struct series *s = series_get(name, METRICS_HISTOGRAM, labels);

	if (s == NULL)
		return;
	s->count++;
	s->value += value;
	for (size_t i = 0; i < METRICS_NBOUNDS; i++)
		if (value <= metrics_bounds[i])
			s->buckets[i]++;
}

static void
series_free(struct series *s)
{
	while (s != NULL) {
		struct series *next = s->next;

		free(s->labels);
		free(s);
		s = next;
	}
}

void
metrics_clear(const char *name)
{
	for (struct family *f = families; f != NULL; f = f->next) {
		if (strcmp(f->name, name) == 0) {
			series_free(f->series);
			f->series = NULL;
			return;
		}
	}
}

void
metrics_label(char *out, size_t n, const char *key, const char *value)
{
	size_t len = strlen(out);
	int w;

	if (len >= n)
		return;
	w = snprintf(out + len, n - len, "%s%s=\"", len ? "," : "", key);
	if (w < 0 || (size_t)w >= n - len) {
		out[len] = '\0';
		return;
	}
	len += (size_t)w;
	for (; *value != '\0' && len + 3 < n; value++) {
		if (*value == '"' || *value == '\\' || *value == '\n') {
			out[len++] = '\\';
			out[len++] = *value == '\n' ? 'n' : *value;
		} else {
			out[len++] = *value;
		}
	}
	if (len + 1 < n)
		out[len++] = '"';
	out[len] = '\0';
}

static const char *
type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter"
	       : t == METRICS_GAUGE ? "gauge"
				    : "histogram";
}

void
metrics_set_node(const char *node)
{
	metrics_node[0] = '\0';
	if (node != NULL && node[0] != '\0')
		metrics_label(metrics_node, sizeof(metrics_node), "node", node);
}

static enum gw_err
render_histogram(struct buf *out, const struct family *f,
		 const struct series *s)
{
	const char *mid = metrics_node[0] && s->labels[0] ? "," : "";
	const char *sep = metrics_node[0] || s->labels[0] ? "," : "";
	enum gw_err err = GW_OK;

	for (size_t i = 0; i < METRICS_NBOUNDS && err == GW_OK; i++)
		err = buf_printf(out, "%s_bucket{%s%s%s%sle=\"%g\"} %llu\n",
				 f->name, metrics_node, mid, s->labels, sep,
				 metrics_bounds[i],
				 (unsigned long long)s->buckets[i]);
	if (err == GW_OK)
		err = buf_printf(out, "%s_bucket{%s%s%s%sle=\"+Inf\"} %llu\n",
				 f->name, metrics_node, mid, s->labels, sep,
				 (unsigned long long)s->count);
	if (err == GW_OK)
		err = buf_printf(
		    out, "%s_sum{%s%s%s} %.6f\n%s_count{%s%s%s} %llu\n",
		    f->name, metrics_node, mid, s->labels, s->value, f->name,
		    metrics_node, mid, s->labels, (unsigned long long)s->count);
	return err;
}

enum gw_err
metrics_render(struct buf *out)
{
	enum gw_err err = GW_OK;

	for (const struct family *f = families; f != NULL && err == GW_OK;
	     f = f->next) {
		if (f->help != NULL)
			err =
			    buf_printf(out, "# HELP %s %s\n", f->name, f->help);
		if (err == GW_OK)
			err = buf_printf(out, "# TYPE %s %s\n", f->name,
					 type_name(f->type));
		for (const struct series *s = f->series;
		     s != NULL && err == GW_OK; s = s->next) {
			if (f->type == METRICS_HISTOGRAM)
				err = render_histogram(out, f, s);
			else if (s->labels[0] != '\0' || metrics_node[0])
				err = buf_printf(
				    out, "%s{%s%s%s} %.17g\n", f->name,
				    metrics_node,
				    metrics_node[0] && s->labels[0] ? "," : "",
				    s->labels, s->value);
			else
				err = buf_printf(out, "%s %.17g\n", f->name,
						 s->value);
		}
	}
	return err;
}

void
metrics_reset(void)
{
	metrics_node[0] = '\0';
	while (families != NULL) {
		struct family *next = families->next;

		series_free(families->series);
		free(families->name);
		free(families->help);
		free(families);
		families = next;
	}
}
