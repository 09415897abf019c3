/*
 * The console's pages, run on a console worker: each reads the store
 * through store.h (its own connection, under the page's time limit) and
 * writes HTML. Shown are message ids, organisation URAs and names, states,
 * times, counts and the receivers' OperationOutcome codes: never a BSN,
 * a person's name or content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "config.h"
#include "console_impl.h"
#include "fhir/outcome.h"
#include "log.h"
#include "report.h"
#include "util.h"
#include "validate.h"

#define HOUR_MS 3600000LL
#define DAY_MS	86400000LL

static const char *
peer_name(const struct config *cfg, const char *ura)
{
	const struct config_peer *p = config_peer_find(cfg, ura);

	if (p != NULL && p->name != NULL)
		return p->name;
	if (cfg->ura[0] != '\0' && strcmp(cfg->ura, ura) == 0 &&
	    cfg->name != NULL)
		return cfg->name;
	return "";
}

/* "URA (name)" escaped. */
static void
org(FILE *fp, const struct config *cfg, const char *ura)
{
	const char *name = peer_name(cfg, ura);

	fputs("<span class=\"ura\">", fp);
	console_esc(fp, ura);
	fputs("</span>", fp);
	if (name[0] != '\0') {
		fputs(" <span class=\"name\">", fp);
		console_esc(fp, name);
		fputs("</span>", fp);
	}
}

/*
 * The worker's store connection, opened at first use: read-only for
 * pages, writable for an operator's action. The daemon's own store keeps
 * the WAL in check, so neither runs an upkeep thread of its own; and the
 * daemon's own connection holds the node's name (PostgreSQL): these are
 * the same node's, not a second node.
 */
static enum gw_err
open_store(struct console_job *j, bool readonly, struct store **s)
{
	struct store_options o;
	enum gw_err err;

	if (*s != NULL)
		return GW_OK;
	store_options_from_config(&o, j->cfg);
	o.readonly = readonly;
	o.create = false;
	o.quiet = true;
	o.background_upkeep = false;
	o.node_claim = false;
	if ((err = store_open(&o, s)) != GW_OK)
		log_warnx("event=console_store_failed mode=%s error=%s",
			  readonly ? "read" : "write", gw_strerror(err));
	return err;
}

static enum gw_err
open_ro(struct console_job *j, struct console_worker *w)
{
	return open_store(j, true, &w->ro);
}

static enum gw_err
open_rw(struct console_job *j, struct console_worker *w)
{
	return open_store(j, false, &w->rw);
}

static bool
late(const struct console_job *j)
{
	return (int64_t)util_mono_ms() >= j->deadline;
}

/* Start the page's text. */
static FILE *
page_open(struct console_job *j)
{
	free(j->out);
	j->out = NULL;
	j->out_len = 0;
	return open_memstream(&j->out, &j->out_len);
}

static void
page_close(struct console_job *j, FILE *fp)
{
	if (fp != NULL && fclose(fp) != 0) {
		free(j->out);
		j->out = NULL;
	}
}

void
console_page_message(struct console_job *j, const char *title, const char *text)
{
	FILE *fp = page_open(j);

	if (fp == NULL)
		return;
	j->ctype = "text/html; charset=utf-8";
	console_head(fp, title, NULL, NULL);
	fputs("<p class=\"message\">", fp);
	console_esc(fp, text);
	fputs("</p>\n", fp);
	console_foot(fp);
	page_close(j, fp);
}

/* 503 for a page over its time, or that could not read the store. */
static void
store_trouble(struct console_job *j, enum gw_err err)
{
	char text[256];

	j->status = 503;
	if (late(j))
		snprintf(text, sizeof(text),
			 "This page took longer than its limit of %llu ms "
			 "([admin] time_limit) and was stopped; try a "
			 "narrower filter or again later.",
			 (unsigned long long)j->cfg->admin_time_limit_ms);
	else
		snprintf(text, sizeof(text),
			 "The store could not be read (%s); see the daemon's "
			 "log.",
			 gw_strerror(err));
	console_page_message(j, "Unavailable", text);
}

/* The report for [from, to) by period as parsed JSON (report_write's
 * machine form); *out: caller decrefs. */
static enum gw_err
report_json(struct console_job *j, struct store *s, int64_t from, int64_t to,
	    enum report_by by, bool exact, json_t **out)
{
	struct report *r = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *fp = NULL;
	enum gw_err err;

	*out = NULL;
	if ((err = report_new(from, to, by, &r)) != GW_OK)
		goto done;
	if ((err = report_collect(r, s)) != GW_OK)
		goto done;
	if ((fp = open_memstream(&text, &len)) == NULL) {
		err = GW_NOMEM;
		goto done;
	}
	err = report_write(r, fp, REPORT_JSON, exact, j->cfg);
	if (fclose(fp) != 0 && err == GW_OK)
		err = GW_NOMEM;
	fp = NULL;
	if (err == GW_OK && (*out = json_loadb(text, len, 0, NULL)) == NULL)
		err = GW_NOMEM;
done:
	free(text);
	report_free(r);
	return err;
}

/* The count of item key in section sec of a report ("<5" is small). */
static void
count_of(json_t *rep, const char *sec, const char *key, struct console_point *p)
{
	size_t i;
	json_t *it;

	json_array_foreach(json_object_get(rep, sec), i, it)
	{
		json_t *c = json_object_get(it, "count");

		if (strcmp(json_string_value(json_object_get(it, "key"))
			       ? json_string_value(json_object_get(it, "key"))
			       : "",
			   key) != 0)
			continue;
		if (json_is_integer(c))
			p->value = (double)json_integer_value(c);
		else if (json_is_string(c)) {
			p->small = true;
			p->value = 0;
		}
		return;
	}
}

/* n consecutive periods from start (hours or days), labelled the way
 * report.c labels them, with the counts of sec. */
static void
series(json_t *rep, const char *sec, int64_t start, int64_t step, size_t n,
       bool hours, struct console_point *p)
{
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)((start + (int64_t)i * step) / 1000);
		struct tm tm;
		char key[24];

		memset(&p[i], 0, sizeof(p[i]));
		if (gmtime_r(&t, &tm) == NULL)
			continue;
		strftime(key, sizeof(key), hours ? "%Y-%m-%dT%H" : "%Y-%m-%d",
			 &tm);
		strftime(p[i].label, sizeof(p[i].label), hours ? "%H" : "%d %b",
			 &tm);
		count_of(rep, sec, key, &p[i]);
	}
}

/* A row of delivery latency from a report's JSON; from an exact report
 * the "<5" rule is applied here (count shown "<5", no percentiles). */
static void
latency(FILE *fp, const char *label, json_t *rep)
{
	json_t *lat = json_object_get(rep, "delivery_latency_ms");
	json_t *c = json_object_get(lat, "count");
	json_int_t n = json_integer_value(c);
	bool small = json_is_string(c) || (n > 0 && n < REPORT_MIN_COUNT);

	fputs("<tr><th>", fp);
	console_esc(fp, label);
	fputs("</th><td>", fp);
	if (small)
		fputs("&lt;5", fp);
	else
		fprintf(fp, "%lld", (long long)n);
	fputs("</td>", fp);
	for (int i = 0; i < 3; i++) {
		static const char *const q[] = {"p50", "p90", "p99"};
		json_t *v = json_object_get(lat, q[i]);

		if (!small && json_is_integer(v))
			fprintf(fp, "<td class=\"num\">%.3f s</td>",
				(double)json_integer_value(v) / 1000.0);
		else
			fputs("<td class=\"num\">-</td>", fp);
	}
	fputs("</tr>\n", fp);
}

/* The n days from day0 summed from the hourly items of sec (keys
 * "YYYY-MM-DDTHH" of an exact report). */
static void
day_sums(json_t *rep, const char *sec, int64_t day0, size_t n,
	 struct console_point *p)
{
	char keys[30][16];
	json_t *it;
	size_t i;

	if (n > 30)
		n = 30;
	for (i = 0; i < n; i++) {
		time_t t = (time_t)((day0 + (int64_t)i * DAY_MS) / 1000);
		struct tm tm;

		memset(&p[i], 0, sizeof(p[i]));
		keys[i][0] = '\0';
		if (gmtime_r(&t, &tm) == NULL)
			continue;
		strftime(keys[i], sizeof(keys[i]), "%Y-%m-%d", &tm);
		strftime(p[i].label, sizeof(p[i].label), "%d %b", &tm);
	}
	json_array_foreach(json_object_get(rep, sec), i, it)
	{
		const char *k = json_string_value(json_object_get(it, "key"));
		json_t *c = json_object_get(it, "count");

		if (k == NULL || strlen(k) < 10 || !json_is_integer(c))
			continue;
		for (size_t d = 0; d < n; d++)
			if (strncmp(k, keys[d], 10) == 0 && keys[d][0] != '\0')
				p[d].value += (double)json_integer_value(c);
	}
}

/* Counts from 1 to 4 shown as "<5" (the report's rule, for figures the
 * console sums itself from an exact report). */
static void
small_counts(struct console_point *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].value > 0 && p[i].value < REPORT_MIN_COUNT) {
			p[i].small = true;
			p[i].value = 0;
		}
}

static void
page_overview(struct console_job *j, struct console_worker *w)
{
	int64_t hour0 = (j->now / HOUR_MS - 23) * HOUR_MS;
	int64_t day0 = (j->now / DAY_MS - 29) * DAY_MS;
	struct console_point hours[24], days[30];
	json_t *h = NULL;
	struct store_stat *st = NULL;
	size_t nst = 0;
	enum gw_err err;
	FILE *fp;
	char t[32];

	if ((err = open_ro(j, w)) != GW_OK) {
		store_trouble(j, err);
		return;
	}
	store_set_deadline(w->ro, j->deadline);
	/* One report (the expensive part) for both charts: 30 days by
	   hour, exact, the days summed here and "<5" applied after. */
	err = report_json(j, w->ro, day0, 0, REPORT_BY_HOUR, true, &h);
	if (err == GW_OK)
		err = store_stats(w->ro, &st, &nst);
	store_set_deadline(w->ro, 0);
	if (err != GW_OK || late(j)) {
		store_trouble(j, err);
		goto done;
	}
	series(h, "messages_by_period", hour0, HOUR_MS, 24, true, hours);
	small_counts(hours, 24);
	day_sums(h, "messages_by_period", day0, 30, days);
	small_counts(days, 30);
	if ((fp = page_open(j)) == NULL)
		goto done;
	console_head(fp, "Overview", "/", j->authed ? j->csrf : NULL);
	fputs("<section class=\"charts\">", fp);
	console_svg_line(fp, "chart-24h",
			 "Messages accepted per hour, last 24 hours", hours,
			 24);
	console_svg_bars(fp, "chart-30d",
			 "Messages accepted per day, last 30 days", days, 30);
	if (json_array_size(json_object_get(h, "delivered_by_period")) > 0) {
		series(h, "delivered_by_period", hour0, HOUR_MS, 24, true,
		       hours);
		small_counts(hours, 24);
		console_svg_line(fp, "chart-24h-delivered",
				 "Deliveries per hour, last 24 hours", hours,
				 24);
	}
	fputs("</section>\n<h2>Delivery latency (accepted to "
	      "delivered)</h2>\n<table id=\"latency\"><tr><th>Period</th>"
	      "<th>Deliveries</th><th>p50</th><th>p90</th><th>p99</th></tr>\n",
	      fp);
	latency(fp, "last 30 days", h);
	fputs("</table>\n<h2>Receivers held</h2>\n", fp);
	if (j->nheld == 0) {
		fputs("<p id=\"held\">No receiver is held by the deliverer."
		      "</p>\n",
		      fp);
	} else {
		fputs("<ul id=\"held\">", fp);
		for (size_t i = 0; i < j->nheld; i++) {
			fputs("<li>", fp);
			org(fp, j->cfg, j->held[i]);
			fputs(" (not answering: deliveries wait)</li>", fp);
		}
		fputs("</ul>\n", fp);
	}
	fputs("<h2>Queue depth</h2>\n<table id=\"depth\"><tr><th>State</th>"
	      "<th>Receiver</th><th>Rows</th><th>Oldest accepted</th></tr>\n",
	      fp);
	for (size_t i = 0; i < nst; i++) {
		const char *sn = store_state_name(st[i].state);

		fputs("<tr><td>", fp);
		fprintf(fp, "<a href=\"/queue?state=%s&amp;receiver=",
			sn != NULL ? sn : "");
		console_esc(fp, st[i].receiver);
		fprintf(fp, "\">%s</a></td><td>", sn != NULL ? sn : "?");
		org(fp, j->cfg, st[i].receiver);
		console_time(t, sizeof(t), st[i].oldest_accepted_at);
		fprintf(fp,
			"</td><td class=\"num\">%llu</td><td>%s</td></tr>\n",
			(unsigned long long)st[i].count, t);
	}
	if (nst == 0)
		fputs("<tr><td colspan=\"4\">The queue is empty.</td></tr>\n",
		      fp);
	fputs("</table>\n", fp);
	console_foot(fp);
	page_close(j, fp);
done:
	free(st);
	json_decref(h);
}

static void
state_options(FILE *fp, int state)
{
	fputs("<option value=\"\">any</option>", fp);
	for (int i = 0; i < STORE_STATE_COUNT; i++)
		fprintf(fp, "<option%s>%s</option>",
			i == state ? " selected" : "",
			store_state_name((enum store_state)i));
}

static void
page_queue(struct console_job *j, struct console_worker *w)
{
	struct store_filter f = {.state = j->state,
				 .receiver =
				     j->receiver[0] ? j->receiver : NULL,
				 .after_seq = j->after_seq,
				 .limit = 100};
	struct store_row *rows = NULL;
	size_t n = 0, shown = 0;
	int64_t last = 0;
	enum gw_err err;
	FILE *fp;
	char t[32];

	if ((err = open_ro(j, w)) != GW_OK) {
		store_trouble(j, err);
		return;
	}
	store_set_deadline(w->ro, j->deadline);
	err = store_list(w->ro, &f, &rows, &n);
	store_set_deadline(w->ro, 0);
	if (err != GW_OK || late(j)) {
		store_trouble(j, err);
		goto done;
	}
	if ((fp = page_open(j)) == NULL)
		goto done;
	console_head(fp, "Queue", "/queue", j->authed ? j->csrf : NULL);
	fputs("<form method=\"get\" action=\"/queue\" class=\"filter\">"
	      "<label>State <select name=\"state\">",
	      fp);
	state_options(fp, j->state);
	fputs("</select></label> <label>Receiver <input name=\"receiver\" "
	      "size=\"9\" value=\"",
	      fp);
	console_esc(fp, j->receiver);
	fprintf(fp,
		"\"></label> <label>Older than <input name=\"age\" size=\"4\" "
		"value=\"%u\"> hours</label> <button>Filter</button></form>\n",
		j->age_h);
	fputs("<table id=\"rows\"><tr><th>Message</th><th>Receiver</th>"
	      "<th>State</th><th>Accepted</th><th>Attempts</th><th>Last "
	      "status</th><th>Next attempt</th></tr>\n",
	      fp);
	for (size_t i = 0; i < n; i++) {
		const struct store_row *r = &rows[i];
		const char *sn = store_state_name(r->state);

		last = r->seq;
		if (j->age_h > 0 &&
		    r->accepted_at > j->now - (int64_t)j->age_h * HOUR_MS)
			continue;
		shown++;
		fprintf(fp,
			"<tr class=\"row\" data-state=\"%s\"><td><a "
			"href=\"/queue/row?id=",
			sn != NULL ? sn : "");
		console_esc(fp, r->id);
		fputs("&amp;receiver=", fp);
		console_esc(fp, r->receiver);
		fputs("\" class=\"id\">", fp);
		console_esc(fp, r->id);
		fputs("</a></td><td>", fp);
		org(fp, j->cfg, r->receiver);
		console_time(t, sizeof(t), r->accepted_at);
		fprintf(fp,
			"</td><td class=\"state\">%s%s</td><td>%s</td><td "
			"class=\"num\">%u</td>",
			sn != NULL ? sn : "?", r->waiting ? " (waiting)" : "",
			t, r->attempts);
		if (r->last_status != 0)
			fprintf(fp, "<td class=\"num\">%d</td>",
				r->last_status);
		else
			fputs("<td>-</td>", fp);
		console_time(t, sizeof(t),
			     r->state == STORE_DUE ? r->next_attempt_at : 0);
		fprintf(fp, "<td>%s</td></tr>\n", t);
	}
	if (shown == 0)
		fputs("<tr><td colspan=\"7\">No rows match.</td></tr>\n", fp);
	fputs("</table>\n", fp);
	if (n == f.limit) {
		fprintf(fp, "<p><a id=\"next\" href=\"/queue?after=%lld",
			(long long)last);
		if (j->state >= 0)
			fprintf(fp, "&amp;state=%s",
				store_state_name((enum store_state)j->state));
		if (j->receiver[0] != '\0') {
			fputs("&amp;receiver=", fp);
			console_esc(fp, j->receiver);
		}
		if (j->age_h > 0)
			fprintf(fp, "&amp;age=%u", j->age_h);
		fputs("\">Next rows</a></p>\n", fp);
	}
	console_foot(fp);
	page_close(j, fp);
done:
	store_rows_free(rows, n);
}

/* Why a row failed, as a fixed label (as the report counts it): the
 * free text of last_error may quote a receiver's answer, which may name
 * a patient, so it is not shown. */
static const char *
failure_cause(const struct store_row *r)
{
	if (r->last_error != NULL &&
	    strstr(r->last_error, "max age exceeded") != NULL)
		return "maximum age exceeded";
	if (r->last_status != 0)
		return "the receiver answered with an error (see its "
		       "OperationOutcome)";
	if (r->last_error != NULL &&
	    strstr(r->last_error, "document missing") != NULL)
		return "document missing";
	return "no answer (connection, TLS or local)";
}

/* Which actions the row's state allows (as store_act checks them). */
static bool
allowed(enum store_state st, int action)
{
	switch (action) {
	case STORE_RETRY:
		return st == STORE_DUE;
	case STORE_HOLD:
		return st == STORE_DUE;
	case STORE_RELEASE:
		return st == STORE_HELD;
	case STORE_REPLAY:
		return st == STORE_DEAD || st == STORE_DELIVERED;
	default:
		return false;
	}
}

static const char *const act_names[] = {"retry", "hold", "release", "replay"};

/* The receiver's OperationOutcome issues: severity, code, expression and
 * diagnostics (digit runs that could be a BSN masked). */
static void
outcome_issues(FILE *fp, const char *text)
{
	json_t *oo = text != NULL ? json_loads(text, 0, NULL) : NULL;
	json_t *it;
	size_t i;

	if (oo == NULL) {
		fputs("<p>No OperationOutcome from the receiver.</p>\n", fp);
		return;
	}
	fputs("<table class=\"issues\"><tr><th>Severity</th><th>Code</th>"
	      "<th>Element</th><th>Diagnostics</th></tr>\n",
	      fp);
	json_array_foreach(json_object_get(oo, "issue"), i, it)
	{
		json_t *ex = json_object_get(it, "expression");

		fputs("<tr><td>", fp);
		console_esc(fp,
			    json_string_value(json_object_get(it, "severity")));
		fputs("</td><td>", fp);
		console_esc(fp, json_string_value(json_object_get(it, "code")));
		fputs("</td><td><code class=\"path\">", fp);
		console_esc_masked(fp,
				   json_string_value(json_array_get(ex, 0)));
		fputs("</code></td><td>", fp);
		console_esc_masked(
		    fp, json_string_value(json_object_get(it, "diagnostics")));
		fputs("</td></tr>\n", fp);
	}
	fputs("</table>\n", fp);
	json_decref(oo);
}

static void
page_row(struct console_job *j, struct console_worker *w)
{
	struct store_message *m = NULL;
	enum gw_err err;
	size_t shown = 0;
	FILE *fp;
	char t[32];

	if ((err = open_ro(j, w)) != GW_OK) {
		store_trouble(j, err);
		return;
	}
	store_set_deadline(w->ro, j->deadline);
	err = store_show(w->ro, j->id, false, &m);
	store_set_deadline(w->ro, 0);
	if (err == GW_NOTFOUND) {
		j->status = 404;
		console_page_message(j, "Not found", "No such message.");
		return;
	}
	if (err != GW_OK || late(j)) {
		store_trouble(j, err);
		goto done;
	}
	if ((fp = page_open(j)) == NULL)
		goto done;
	console_head(fp, "Message", "/queue", j->authed ? j->csrf : NULL);
	fputs("<dl class=\"meta\"><dt>Message id</dt><dd id=\"msgid\">", fp);
	console_esc(fp, m->id);
	fprintf(fp, "</dd><dt>Direction</dt><dd>%s</dd><dt>Sender</dt><dd>",
		store_direction_name(m->direction) != NULL
		    ? store_direction_name(m->direction)
		    : "?");
	org(fp, j->cfg, m->sender);
	console_time(t, sizeof(t), m->accepted_at);
	fprintf(fp,
		"</dd><dt>Accepted</dt><dd>%s</dd><dt>FHIR "
		"version</dt><dd>",
		t);
	console_esc(fp, m->fhir_version != NULL ? m->fhir_version : "-");
	fputs("</dd></dl>\n", fp);
	for (size_t i = 0; i < m->nrows; i++) {
		const struct store_row *r = &m->rows[i];
		const char *sn = store_state_name(r->state);

		if (j->receiver[0] != '\0' &&
		    strcmp(r->receiver, j->receiver) != 0)
			continue;
		shown++;
		fputs("<section class=\"outrow\"><h2>To ", fp);
		org(fp, j->cfg, r->receiver);
		fputs("</h2>\n<dl class=\"meta\"><dt>State</dt><dd "
		      "class=\"state\" id=\"state-",
		      fp);
		console_esc(fp, r->receiver);
		fprintf(fp, "\">%s</dd><dt>Attempts</dt><dd>%u</dd>",
			sn != NULL ? sn : "?", r->attempts);
		console_time(t, sizeof(t), r->first_attempt_at);
		fprintf(fp, "<dt>First attempt</dt><dd>%s</dd>", t);
		console_time(t, sizeof(t), r->last_attempt_at);
		fprintf(fp, "<dt>Last attempt</dt><dd>%s</dd>", t);
		if (r->last_status != 0)
			fprintf(fp, "<dt>Last status</dt><dd>HTTP %d</dd>",
				r->last_status);
		if (r->state == STORE_DUE) {
			console_time(t, sizeof(t), r->next_attempt_at);
			fprintf(fp, "<dt>Next attempt</dt><dd>%s</dd>", t);
		}
		console_time(t, sizeof(t), r->delivered_at);
		fprintf(fp,
			"<dt>Delivered</dt><dd>%s</dd><dt>Replays</dt>"
			"<dd>%u</dd>",
			t, r->replays);
		if (r->last_error != NULL || r->last_status != 0) {
			fputs("<dt>Last failure</dt><dd class=\"error\">", fp);
			console_esc(fp, failure_cause(r));
			fputs("</dd>", fp);
		}
		fputs("</dl>\n<h3>The receiver's OperationOutcome</h3>\n", fp);
		outcome_issues(fp, r->outcome);
		fputs("<p class=\"actions\">", fp);
		for (int a = 0; a < 4; a++) {
			if (!allowed(r->state, a))
				continue;
			fprintf(fp,
				"<a class=\"button\" id=\"act-%s\" "
				"href=\"/queue/act?action=%s&amp;id=",
				act_names[a], act_names[a]);
			console_esc(fp, m->id);
			fputs("&amp;receiver=", fp);
			console_esc(fp, r->receiver);
			fprintf(fp, "\">%c%s</a> ", act_names[a][0] - 32,
				act_names[a] + 1);
		}
		fputs("</p></section>\n", fp);
	}
	if (shown == 0)
		fputs("<p>This message has no outbox row for that "
		      "receiver.</p>\n",
		      fp);
	console_foot(fp);
	page_close(j, fp);
done:
	store_message_free(m);
}

static const char *const act_words[] = {
    "Try again now (the row stays due, its next attempt moves to now)",
    "Hold (the deliverer leaves the row alone until it is released)",
    "Release (the row is due now; its maximum age counts from now)",
    "Replay (the row is sent again: attempts reset, maximum age from now)",
};

static void
page_confirm(struct console_job *j)
{
	FILE *fp = page_open(j);

	if (fp == NULL)
		return;
	console_head(fp, "Confirm", "/queue", j->authed ? j->csrf : NULL);
	fputs("<form method=\"post\" action=\"/queue/act\" id=\"confirm\">"
	      "<p>",
	      fp);
	console_esc(fp, act_words[j->action]);
	fputs(" for message <code>", fp);
	console_esc(fp, j->id);
	fputs("</code>", fp);
	if (j->receiver[0] != '\0') {
		fputs(" to ", fp);
		org(fp, j->cfg, j->receiver);
	}
	fputs("?</p><input type=\"hidden\" name=\"csrf\" value=\"", fp);
	console_esc(fp, j->csrf);
	fputs("\"><input type=\"hidden\" name=\"id\" value=\"", fp);
	console_esc(fp, j->id);
	fputs("\"><input type=\"hidden\" name=\"receiver\" value=\"", fp);
	console_esc(fp, j->receiver);
	fprintf(fp,
		"\"><input type=\"hidden\" name=\"action\" value=\"%s\">"
		"<button id=\"do\">Confirm: %s</button> <a href=\"/queue/"
		"row?id=",
		act_names[j->action], act_names[j->action]);
	console_esc(fp, j->id);
	fputs("&amp;receiver=", fp);
	console_esc(fp, j->receiver);
	fputs("\">Cancel</a></form>\n", fp);
	console_foot(fp);
	page_close(j, fp);
}

/* POST /queue/act: store_act as `pzpgw queue` does, then an audit record
 * naming who did it. */
static void
page_act(struct console_job *j, struct console_worker *w)
{
	struct store_audit_rec rec;
	size_t changed = 0;
	enum gw_err err;
	char text[256];

	if ((err = open_rw(j, w)) != GW_OK) {
		store_trouble(j, err);
		return;
	}
	err = store_act(w->rw, j->id, j->receiver[0] ? j->receiver : NULL,
			(enum store_action)j->action, util_wall_ms(), &changed);
	if (err == GW_NOTFOUND || err == GW_INVALID) {
		j->status = err == GW_NOTFOUND ? 404 : 409;
		snprintf(text, sizeof(text),
			 err == GW_NOTFOUND
			     ? "No such message or outbox row."
			     : "No row of this message is in a state that "
			       "allows %s.",
			 act_names[j->action]);
		console_page_message(j, "Not done", text);
		return;
	}
	if (err != GW_OK) {
		store_trouble(j, err);
		return;
	}
	memset(&rec, 0, sizeof(rec));
	util_strlcpy(rec.ura, j->receiver[0] ? j->receiver : j->cfg->ura,
		     sizeof(rec.ura));
	/* Who did it: the admin listener's peer and how it got in. */
	snprintf(rec.cert_issuer, sizeof(rec.cert_issuer), "console %s",
		 j->who);
	snprintf(rec.interaction, sizeof(rec.interaction), "operator-%s",
		 act_names[j->action]);
	snprintf(rec.query, sizeof(rec.query),
		 "/queue/act?action=%s&id=%s&receiver=%s", act_names[j->action],
		 j->id, j->receiver);
	rec.count = (unsigned)changed;
	rec.status = 200;
	util_strlcpy(rec.request_id, j->reqid, sizeof(rec.request_id));
	if (j->c->store == NULL ||
	    (err = store_submit_audit(j->c->store, &rec)) != GW_OK)
		log_warnx("event=console_audit_failed id=%s action=%s "
			  "message=%s error=%s",
			  j->reqid, act_names[j->action], j->id,
			  gw_strerror(err));
	log_info("event=console_action id=%s action=%s message=%s "
		 "receiver=%s rows=%zu by=\"%s\"",
		 j->reqid, act_names[j->action], j->id,
		 j->receiver[0] ? j->receiver : "-", changed, j->who);
	j->kick = true;
	snprintf(j->location, sizeof(j->location),
		 "/queue/row?id=%s&receiver=%s&done=%s", j->id, j->receiver,
		 act_names[j->action]);
}

/* One section of the report as a table (and the key's name). */
static void
report_table(FILE *fp, json_t *rep, const char *sec, const char *title,
	     bool orgs, const struct config *cfg)
{
	json_t *arr = json_object_get(rep, sec), *it;
	size_t i;

	if (arr == NULL)
		return;
	fputs("<h2>", fp);
	console_esc(fp, title);
	fputs("</h2>\n<table class=\"report\" id=\"t-", fp);
	console_esc(fp, sec);
	fputs("\"><tr><th>Key</th><th>Count</th></tr>\n", fp);
	json_array_foreach(arr, i, it)
	{
		json_t *c = json_object_get(it, "count");
		const char *k = json_string_value(json_object_get(it, "key"));

		fputs("<tr><td>", fp);
		if (orgs && k != NULL)
			org(fp, cfg, k);
		else
			console_esc(fp, k);
		fputs("</td><td class=\"num\">", fp);
		if (json_is_string(c))
			console_esc(fp, json_string_value(c));
		else
			fprintf(fp, "%lld", (long long)json_integer_value(c));
		fputs("</td></tr>\n", fp);
	}
	if (json_array_size(arr) == 0)
		fputs("<tr><td colspan=\"2\">none</td></tr>\n", fp);
	fputs("</table>\n", fp);
}

/* A section as a bar chart, one bar per item. */
static void
report_bars(FILE *fp, json_t *rep, const char *sec, const char *title)
{
	json_t *arr = json_object_get(rep, sec), *it;
	size_t n = json_array_size(arr), i;
	struct console_point *p;

	if (n == 0)
		return;
	if (n > 400)
		n = 400;
	if ((p = calloc(n, sizeof(*p))) == NULL)
		return;
	json_array_foreach(arr, i, it)
	{
		json_t *c = json_object_get(it, "count");

		if (i >= n)
			break;
		util_strlcpy(p[i].label,
			     json_string_value(json_object_get(it, "key"))
				 ? json_string_value(json_object_get(it, "key"))
				 : "",
			     sizeof(p[i].label));
		if (json_is_string(c))
			p[i].small = true;
		else
			p[i].value = (double)json_integer_value(c);
	}
	console_svg_bars(fp, sec, title, p, n);
	free(p);
}

static void
page_usage(struct console_job *j, struct console_worker *w, bool csv)
{
	static const char *const by_names[] = {"", "hour", "day", "week",
					       "month"};
	static const struct {
		const char *sec, *title;
		bool orgs;
	} secs[] = {
	    {"messages_by_sender", "Messages by sender", true},
	    {"messages_by_receiver", "Outbox rows by receiver", true},
	    {"messages_by_direction", "Messages by direction", false},
	    {"messages_by_event", "Messages by event", false},
	    {"messages_by_fhir_version", "Messages by FHIR version", false},
	    {"outbox_by_state", "Outbox rows by state", false},
	    {"dead_letters_by_cause", "Dead letters by cause", false},
	    {"failing_by_cause", "Rows failing by cause", false},
	    {"pulls_by_organisation", "Pulls by organisation", true},
	    {"patients_read_by_organisation",
	     "Distinct patients read by organisation", true},
	    {"validation_findings_by_rule", "Validation findings by rule",
	     false},
	    {"validation_findings_by_profile", "Validation findings by profile",
	     false},
	};
	struct report *r = NULL;
	json_t *rep = NULL;
	enum gw_err err;
	FILE *fp;
	char from[16] = "", to[16] = "";

	if ((err = open_ro(j, w)) != GW_OK) {
		store_trouble(j, err);
		return;
	}
	store_set_deadline(w->ro, j->deadline);
	if (csv) {
		err = report_new(j->from, j->to, (enum report_by)j->by, &r);
		if (err == GW_OK)
			err = report_collect(r, w->ro);
	} else {
		err = report_json(j, w->ro, j->from, j->to,
				  (enum report_by)j->by, false, &rep);
	}
	store_set_deadline(w->ro, 0);
	if (err != GW_OK || late(j)) {
		store_trouble(j, err);
		goto done;
	}
	if ((fp = page_open(j)) == NULL)
		goto done;
	if (csv) {
		j->ctype = "text/csv; charset=utf-8";
		if (report_write(r, fp, REPORT_CSV, false, j->cfg) != GW_OK)
			j->status = 500;
		page_close(j, fp);
		goto done;
	}
	{
		time_t t = (time_t)(j->from / 1000);
		struct tm tm;

		if (gmtime_r(&t, &tm) != NULL)
			strftime(from, sizeof(from), "%Y-%m-%d", &tm);
		t = (time_t)(j->to / 1000);
		if (j->to != 0 && gmtime_r(&t, &tm) != NULL)
			strftime(to, sizeof(to), "%Y-%m-%d", &tm);
	}
	console_head(fp, "Usage", "/usage", j->authed ? j->csrf : NULL);
	fprintf(fp,
		"<form method=\"get\" action=\"/usage\" class=\"filter\">"
		"<label>From <input type=\"date\" name=\"from\" "
		"value=\"%s\"></label> <label>To <input type=\"date\" "
		"name=\"to\" value=\"%s\"></label> <label>By <select "
		"name=\"by\">",
		from, to);
	for (int i = 1; i < 5; i++)
		fprintf(fp, "<option%s>%s</option>",
			i == j->by ? " selected" : "", by_names[i]);
	fprintf(fp,
		"</select></label> <button>Show</button> <a id=\"csv\" "
		"href=\"/usage.csv?from=%s&amp;to=%s&amp;by=%s\">CSV</a>"
		"</form>\n",
		from, to, by_names[j->by]);
	report_bars(fp, rep, "messages_by_period",
		    "Messages accepted by period");
	report_bars(fp, rep, "messages_by_receiver", "Outbox rows by receiver");
	fputs("<h2>Delivery latency</h2>\n<table id=\"latency\"><tr><th>"
	      "Period</th><th>Deliveries</th><th>p50</th><th>p90</th><th>p99"
	      "</th></tr>\n",
	      fp);
	latency(fp, "this range", rep);
	fputs("</table>\n", fp);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(secs); i++)
		report_table(fp, rep, secs[i].sec, secs[i].title, secs[i].orgs,
			     j->cfg);
	console_foot(fp);
	page_close(j, fp);
done:
	report_free(r);
	json_decref(rep);
}

static void
playground_form(FILE *fp, struct console_job *j)
{
	fputs("<form method=\"post\" action=\"/playground\" id=\"pg\">"
	      "<input type=\"hidden\" name=\"csrf\" value=\"",
	      fp);
	console_esc(fp, j->csrf);
	fputs("\"><p><label>FHIR version <select name=\"version\">", fp);
	fprintf(fp, "<option value=\"r4\"%s>R4</option>",
		j->stu3 ? "" : " selected");
	fprintf(fp, "<option value=\"stu3\"%s>STU3</option>",
		j->stu3 ? " selected" : "");
	fputs("</select></label> <label>Load a file <input type=\"file\" "
	      "id=\"file\" accept=\".json,.xml\"></label></p>"
	      "<textarea name=\"resource\" id=\"resource\" rows=\"18\" "
	      "spellcheck=\"false\" placeholder=\"A FHIR resource or Bundle, "
	      "JSON or XML (at most 64 KiB)\">",
	      fp);
	if (j->text != NULL)
		console_escn(fp, j->text, j->text_len);
	fputs("</textarea><p><button id=\"validate\">Validate</button></p>"
	      "</form>\n",
	      fp);
}

void
console_page_playground_form(struct console_job *j)
{
	FILE *fp = page_open(j);

	if (fp == NULL)
		return;
	console_head(fp, "Validation playground", "/playground",
		     j->authed ? j->csrf : NULL);
	fputs("<p>Checks a resource against the PZP profiles with the rules "
	      "$validate uses. Nothing is stored or logged.</p>\n",
	      fp);
	playground_form(fp, j);
	console_foot(fp);
	page_close(j, fp);
}

/* The line extension of an issue, 0 when none. */
static long long
issue_pos(json_t *issue, const char *suffix)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(issue, "extension"), i, e)
	{
		const char *url = json_string_value(json_object_get(e, "url"));

		if (url != NULL && strlen(url) > strlen(suffix) &&
		    strcmp(url + strlen(url) - strlen(suffix), suffix) == 0)
			return (long long)json_integer_value(
			    json_object_get(e, "valueInteger"));
	}
	return 0;
}

static void
page_playground(struct console_job *j, struct console_worker *w)
{
	struct validate_ctx *v = w->v[j->stu3 ? 1 : 0];
	struct validate_opts opts = {.deadline_ms = (uint64_t)j->deadline};
	json_t *oo = fhir_outcome_new(), *it;
	enum gw_err err;
	size_t i, errors = 0;
	FILE *fp;

	if (oo == NULL || v == NULL) {
		j->status = 503;
		console_page_message(j, "Unavailable",
				     "The validation rules are not loaded.");
		json_decref(oo);
		return;
	}
	err = validate_text(v, j->text, j->text_len, &opts, oo);
	if (err == GW_TEMP) {
		json_decref(oo);
		store_trouble(j, err);
		return;
	}
	if (err != GW_OK) {
		json_decref(oo);
		j->status = 500;
		console_page_message(j, "Failed",
				     "Validation failed internally.");
		return;
	}
	if ((fp = page_open(j)) == NULL) {
		json_decref(oo);
		return;
	}
	console_head(fp, "Validation playground", "/playground",
		     j->authed ? j->csrf : NULL);
	json_array_foreach(json_object_get(oo, "issue"), i, it)
	{
		const char *sev =
		    json_string_value(json_object_get(it, "severity"));

		if (sev != NULL &&
		    (strcmp(sev, "error") == 0 || strcmp(sev, "fatal") == 0))
			errors++;
	}
	fprintf(
	    fp,
	    "<p id=\"verdict\" class=\"%s\">%zu issue%s, %zu error%s.</p>\n",
	    errors > 0 ? "bad" : "good",
	    json_array_size(json_object_get(oo, "issue")),
	    json_array_size(json_object_get(oo, "issue")) == 1 ? "" : "s",
	    errors, errors == 1 ? "" : "s");
	fputs("<table class=\"issues\" id=\"findings\"><tr><th>Severity</th>"
	      "<th>Code</th><th>Element</th><th>Line</th><th>Finding</th>"
	      "</tr>\n",
	      fp);
	json_array_foreach(json_object_get(oo, "issue"), i, it)
	{
		const char *sev =
		    json_string_value(json_object_get(it, "severity"));
		long long line = issue_pos(it, "issue-line");
		long long col = issue_pos(it, "issue-col");

		fputs("<tr class=\"sev-", fp);
		console_esc(fp, sev);
		fputs("\"><td>", fp);
		console_esc(fp, sev);
		fputs("</td><td>", fp);
		console_esc(fp, json_string_value(json_object_get(it, "code")));
		fputs("</td><td><mark class=\"path\">", fp);
		console_esc(fp, json_string_value(json_array_get(
				    json_object_get(it, "expression"), 0)));
		fputs("</mark></td><td>", fp);
		if (line > 0)
			fprintf(fp,
				"<a href=\"#resource\" class=\"goto\" "
				"data-line=\"%lld\" data-col=\"%lld\">%lld:%lld"
				"</a>",
				line, col, line, col);
		fputs("</td><td>", fp);
		console_esc(
		    fp, json_string_value(json_object_get(it, "diagnostics")));
		fputs("</td></tr>\n", fp);
	}
	fputs("</table>\n", fp);
	playground_form(fp, j);
	console_foot(fp);
	page_close(j, fp);
	json_decref(oo);
}

void
console_page_login(struct console_job *j, const char *problem)
{
	FILE *fp = page_open(j);

	if (fp == NULL)
		return;
	j->ctype = "text/html; charset=utf-8";
	console_head(fp, "Log in", NULL, NULL);
	if (problem != NULL) {
		fputs("<p class=\"message bad\" id=\"problem\">", fp);
		console_esc(fp, problem);
		fputs("</p>\n", fp);
	}
	fputs("<form method=\"post\" action=\"/login\" id=\"login\"><input "
	      "type=\"hidden\" name=\"csrf\" value=\"",
	      fp);
	console_esc(fp, j->csrf);
	fputs("\"><p><label>Console token <input type=\"password\" "
	      "name=\"token\" id=\"token\" autocomplete=\"current-password\">"
	      "</label> <button>Log in</button></p><p>The token is the first "
	      "line of the file [admin] token_file names.</p></form>\n",
	      fp);
	console_foot(fp);
	page_close(j, fp);
}

void
console_page_run(struct console_job *j, struct console_worker *w)
{
	if (late(j)) {
		store_trouble(j, GW_TEMP);
		return;
	}
	switch (j->page) {
	case CONSOLE_OVERVIEW:
		page_overview(j, w);
		break;
	case CONSOLE_QUEUE:
		page_queue(j, w);
		break;
	case CONSOLE_ROW:
		page_row(j, w);
		break;
	case CONSOLE_CONFIRM:
		page_confirm(j);
		break;
	case CONSOLE_ACT:
		page_act(j, w);
		break;
	case CONSOLE_USAGE:
		page_usage(j, w, false);
		break;
	case CONSOLE_USAGE_CSV:
		page_usage(j, w, true);
		break;
	case CONSOLE_PLAYGROUND:
		page_playground(j, w);
		break;
	}
}
