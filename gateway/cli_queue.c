/*
 * `pzpgw queue`: the operator's view of the store of a (running) gateway:
 * list, show, retry, hold, release, replay and purge outbox rows.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "store.h"
#include "util.h"

#define QUEUE_CMD	"queue"
#define QUEUE_LIMIT_MAX 1000000

struct queue_args {
	const char *config;
	const char *store;
	bool json;
	int state; /* -1: any */
	const char *receiver;
	long long limit;
	long long after;
	bool content;
	bool meta;     /* show --content: metadata on stdout too */
	bool create;   /* init: create or migrate the store */
	bool readonly; /* list, show, stats: write nothing */
	const char *before;
	int64_t before_ms;
	const char *since; /* replay --state: rows last tried from then */
	int64_t since_ms;
	char **pos; /* subcommand and its arguments */
	int npos;
};

enum {
	OPT_STORE = 256,
	OPT_FORMAT,
	OPT_STATE,
	OPT_RECEIVER,
	OPT_LIMIT,
	OPT_AFTER,
	OPT_CONTENT,
	OPT_BEFORE,
	OPT_SINCE,
	OPT_META,
};

static const struct option queue_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"state", required_argument, NULL, OPT_STATE},
    {"receiver", required_argument, NULL, OPT_RECEIVER},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {"content", no_argument, NULL, OPT_CONTENT},
    {"delivered-before", required_argument, NULL, OPT_BEFORE},
    {"since", required_argument, NULL, OPT_SINCE},
    {"meta", no_argument, NULL, OPT_META},
    {NULL, 0, NULL, 0},
};

/* n decimal digits at *p into *out; advances *p. */
static bool
queue_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

bool
cli_parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
	const char *p = s;
	int64_t ms = 0, scale = 100;

	if (!queue_digits(&p, 4, &y) || *p++ != '-' ||
	    !queue_digits(&p, 2, &mo) || *p++ != '-' ||
	    !queue_digits(&p, 2, &d))
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return false;
	if (*p != '\0') {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return false;
		p++;
		if (!queue_digits(&p, 2, &h) || *p++ != ':' ||
		    !queue_digits(&p, 2, &mi) || *p++ != ':' ||
		    !queue_digits(&p, 2, &sec))
			return false;
		if (h > 23 || mi > 59 || sec > 60)
			return false;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return false;
			for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
				ms += (*p - '0') * scale;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			sign = *p++ == '+' ? 1 : -1;
			if (!queue_digits(&p, 2, &oh) || *p++ != ':' ||
			    !queue_digits(&p, 2, &om) || oh > 23 || om > 59)
				return false;
		} else {
			return false;
		}
		if (*p != '\0')
			return false;
	}
	*out = ((util_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
		 sec - sign * (oh * 3600 + om * 60)) *
		1000) +
	       ms;
	return true;
}

/* s, or "-" for a column that is NULL. */
static const char *
queue_nz(const char *s)
{
	return s != NULL ? s : "-";
}

/* RFC 3339 text of a ms timestamp, "-" for 0. */
static const char *
queue_time(int64_t ms, char *buf, size_t n)
{
	if (ms == 0) {
		util_strlcpy(buf, "-", n);
		return buf;
	}
	util_rfc3339(ms / 1000, buf, n);
	return buf;
}

/* Open the store named by --store or by the configuration. */
static int
queue_open(const struct queue_args *a, struct store **s)
{
	struct store_options o = {.create = a->create, .readonly = a->readonly};

	return cli_store_open("queue", a->config, a->store, &o,
			      " (pzpgw queue init creates one)", s, NULL);
}

/* Print a JSON value on stdout. Takes ownership of v. */
static int
queue_print_json(json_t *v)
{
	char *text;

	if (v == NULL)
		return CLI_USAGE;
	text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	if (text == NULL)
		return CLI_USAGE;
	puts(text);
	free(text);
	return CLI_OK;
}

static void
queue_json_time(json_t *o, const char *key, int64_t ms)
{
	char t[32];

	if (ms == 0)
		json_object_set_new(o, key, json_null());
	else
		json_object_set_new(o, key,
				    json_string(queue_time(ms, t, sizeof(t))));
}

static json_t *
queue_json_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* A row as a JSON object; the receiver's OperationOutcome only when
 * asked (it is the receiver's text, not clinical content). */
static json_t *
queue_row_json(const struct store_row *r, bool outcome)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "seq", json_integer(r->seq));
	json_object_set_new(o, "id", json_string(r->id));
	json_object_set_new(o, "receiver", json_string(r->receiver));
	json_object_set_new(o, "sender", json_string(r->sender));
	json_object_set_new(o, "direction",
			    json_string(store_direction_name(r->direction)));
	json_object_set_new(o, "state",
			    json_string(store_state_name(r->state)));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "replays", json_integer(r->replays));
	queue_json_time(o, "accepted_at", r->accepted_at);
	queue_json_time(o, "next_attempt_at",
			r->state == STORE_DUE ? r->next_attempt_at : 0);
	queue_json_time(o, "first_attempt_at", r->first_attempt_at);
	queue_json_time(o, "last_attempt_at", r->last_attempt_at);
	queue_json_time(o, "delivered_at", r->delivered_at);
	json_object_set_new(o, "last_status",
			    r->last_status > 0 ? json_integer(r->last_status)
					       : json_null());
	json_object_set_new(o, "last_error", queue_json_str(r->last_error));
	if (outcome)
		json_object_set_new(o, "outcome", queue_json_str(r->outcome));
	return o;
}

/* Error text cut to fit a table column, made printable. */
static const char *
queue_cut(const char *s, char *buf, size_t n)
{
	size_t i;

	if (s == NULL)
		return "-";
	for (i = 0; s[i] != '\0' && i + 1 < n; i++)
		buf[i] = (s[i] >= 0x20 && s[i] != 0x7f) ? s[i] : ' ';
	buf[i] = '\0';
	if (s[i] != '\0' && i >= 3)
		memcpy(buf + i - 3, "...", 3);
	return buf;
}

/* s on out with control characters as spaces (the receiver's text
 * must not move the terminal's cursor). */
static void
queue_put_clean(FILE *out, const char *s)
{
	for (; *s != '\0'; s++)
		fputc(((unsigned char)*s >= 0x20 && *s != 0x7f) ? *s : ' ',
		      out);
}

static void
queue_table(const struct store_row *rows, size_t n)
{
	char next[32], acc[32], err[44], status[16];

	printf("%-36s  %-8s  %-9s  %8s  %-20s  %-20s  %6s  %s\n", "ID",
	       "RECEIVER", "STATE", "ATTEMPTS", "ACCEPTED", "NEXT_ATTEMPT",
	       "STATUS", "LAST_ERROR");
	for (size_t i = 0; i < n; i++) {
		const struct store_row *r = &rows[i];

		if (r->last_status > 0)
			snprintf(status, sizeof(status), "%d", r->last_status);
		else
			util_strlcpy(status, "-", sizeof(status));
		printf(
		    "%-36s  %-8s  %-9s  %8u  %-20s  %-20s  %6s  %s\n", r->id,
		    r->receiver, store_state_name(r->state), r->attempts,
		    queue_time(r->accepted_at, acc, sizeof(acc)),
		    queue_time(r->state == STORE_DUE ? r->next_attempt_at : 0,
			       next, sizeof(next)),
		    status, queue_cut(r->last_error, err, sizeof(err)));
	}
}

static int
queue_list(struct store *s, const struct queue_args *a)
{
	struct store_filter f = {.state = a->state,
				 .receiver = a->receiver,
				 .after_seq = a->after,
				 .limit = (size_t)a->limit};
	struct store_row *rows = NULL;
	enum gw_err err;
	json_t *arr;
	size_t n = 0;

	if ((err = store_list(s, &f, &rows, &n)) != GW_OK) {
		fprintf(stderr, "pzpgw queue list: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		arr = json_array();
		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append_new(arr,
					      queue_row_json(&rows[i], false));
		store_rows_free(rows, n);
		return queue_print_json(arr);
	}
	queue_table(rows, n);
	store_rows_free(rows, n);
	/* A message for an organisation this gateway serves has no row
	 * here; on stderr, so the table still pipes. */
	fprintf(stderr,
		"pzpgw queue list: outbound rows only (deliveries "
		"to other gateways, notifications); messages received "
		"for the organisations served here: pzpgw inbox list\n");
	return CLI_OK;
}

/* Split "ID[:URA]" into id and receiver (which --receiver may also set). */
static int
queue_target(const struct queue_args *a, char *id, size_t n,
	     const char **receiver)
{
	const char *arg = a->pos[1];
	const char *colon = strrchr(arg, ':');

	*receiver = a->receiver;
	if (colon != NULL && util_is_ura(colon + 1)) {
		if ((size_t)(colon - arg) >= n || colon == arg)
			return cli_usage(QUEUE_CMD, "bad message id '%s'", arg);
		memcpy(id, arg, (size_t)(colon - arg));
		id[colon - arg] = '\0';
		if (*receiver != NULL && strcmp(*receiver, colon + 1) != 0)
			return cli_usage(QUEUE_CMD,
					 "two different receivers given");
		*receiver = colon + 1;
	} else {
		if (strlen(arg) >= n || arg[0] == '\0')
			return cli_usage(QUEUE_CMD, "bad message id '%s'", arg);
		util_strlcpy(id, arg, n);
	}
	return CLI_OK;
}

/* The transform report kept with a message (what intake normalised or
 * converted), one line per issue: severity, FHIRPath, diagnostics. */
static void
queue_print_report(FILE *out, const char *report)
{
	json_t *oo = report ? json_loads(report, 0, NULL) : NULL;
	json_t *issues = json_object_get(oo, "issue");
	size_t i;
	json_t *it;

	if (oo == NULL)
		return;
	fprintf(out, "transformed:   %zu note%s\n", json_array_size(issues),
		json_array_size(issues) == 1 ? "" : "s");
	json_array_foreach(issues, i, it)
	{
		const char *expr = json_string_value(
		    json_array_get(json_object_get(it, "expression"), 0));

		fprintf(out, "  %s %s: %s\n",
			queue_nz(
			    json_string_value(json_object_get(it, "severity"))),
			expr ? expr : "-",
			queue_nz(json_string_value(
			    json_object_get(it, "diagnostics"))));
	}
	json_decref(oo);
}

static int
queue_show(struct store *s, const struct queue_args *a)
{
	char id[STORE_ID_MAX + 1], t[32];
	struct store_message *m = NULL;
	const char *receiver;
	enum gw_err err;
	json_t *o, *rows;
	FILE *out;
	int rc;

	if ((rc = queue_target(a, id, sizeof(id), &receiver)) != CLI_OK)
		return rc;
	err = store_show(s, id, a->content, &m);
	if (err == GW_NOTFOUND) {
		fprintf(stderr, "pzpgw queue show: %s: not found\n", id);
		return CLI_FAIL;
	}
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw queue show: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		o = json_object();
		rows = json_array();
		json_object_set_new(o, "id", json_string(m->id));
		json_object_set_new(
		    o, "direction",
		    json_string(store_direction_name(m->direction)));
		json_object_set_new(o, "sender", json_string(m->sender));
		json_object_set_new(o, "bundle_identifier",
				    json_pack("{s:s?, s:s?}", "system",
					      m->bundle_system, "value",
					      m->bundle_value));
		json_object_set_new(o, "fhir_version",
				    json_string(m->fhir_version));
		json_object_set_new(o, "sha256", json_string(m->sha256));
		queue_json_time(o, "accepted_at", m->accepted_at);
		json_object_set_new(o, "answer_status",
				    json_integer(m->answer_status));
		if (m->report != NULL)
			json_object_set_new(
			    o, "transform_report",
			    json_loads(m->report, JSON_DECODE_ANY, NULL));
		for (size_t i = 0; i < m->nrows; i++)
			if (receiver == NULL ||
			    strcmp(receiver, m->rows[i].receiver) == 0)
				json_array_append_new(
				    rows, queue_row_json(&m->rows[i], true));
		json_object_set_new(o, "rows", rows);
		if (a->content) {
			json_object_set_new(
			    o, "document",
			    json_stringn_nocheck(m->doc, m->doc_len));
			json_object_set_new(o, "jws", queue_json_str(m->jws));
		}
		store_message_free(m);
		return queue_print_json(o);
	}
	/* With --content, stdout carries the document only: the metadata
	 * goes to stderr, unless --meta asks for both on stdout. */
	out = a->content && !a->meta ? stderr : stdout;
	fprintf(out, "id:            %s\n", m->id);
	fprintf(out, "direction:     %s\n", store_direction_name(m->direction));
	fprintf(out, "sender:        %s\n", m->sender);
	fprintf(out, "identifier:    %s|%s\n", queue_nz(m->bundle_system),
		queue_nz(m->bundle_value));
	fprintf(out, "fhir version:  %s\n", queue_nz(m->fhir_version));
	fprintf(out, "sha256:        %s\n", queue_nz(m->sha256));
	fprintf(out, "accepted at:   %s\n",
		queue_time(m->accepted_at, t, sizeof(t)));
	fprintf(out, "answer status: %d\n", m->answer_status);
	queue_print_report(out, m->report);
	for (size_t i = 0; i < m->nrows; i++) {
		const struct store_row *r = &m->rows[i];

		if (receiver != NULL && strcmp(receiver, r->receiver) != 0)
			continue;
		fprintf(out, "\nreceiver %s\n", r->receiver);
		fprintf(out, "  state:         %s\n",
			store_state_name(r->state));
		fprintf(out, "  attempts:      %u\n", r->attempts);
		if (r->replays > 0)
			fprintf(out, "  replays:       %u\n", r->replays);
		if (r->state == STORE_DUE)
			fprintf(out, "  next attempt:  %s\n",
				queue_time(r->next_attempt_at, t, sizeof(t)));
		fprintf(out, "  first attempt: %s\n",
			queue_time(r->first_attempt_at, t, sizeof(t)));
		fprintf(out, "  last attempt:  %s\n",
			queue_time(r->last_attempt_at, t, sizeof(t)));
		if (r->delivered_at != 0)
			fprintf(out, "  delivered at:  %s\n",
				queue_time(r->delivered_at, t, sizeof(t)));
		if (r->last_status > 0)
			fprintf(out, "  last status:   %d\n", r->last_status);
		/* In full: the table cuts it to a column, show does not. */
		if (r->last_error != NULL) {
			fputs("  last error:    ", out);
			queue_put_clean(out, r->last_error);
			fputc('\n', out);
		}
		if (r->outcome != NULL)
			fprintf(out, "  outcome:       %s\n", r->outcome);
	}
	if (a->content) {
		fprintf(out, "\njws: %s\n", m->jws != NULL ? m->jws : "-");
		/* The document alone on stdout, byte for byte as stored,
		 * for `> file` or `| jq`; with --meta after the metadata,
		 * marked. */
		if (a->meta)
			fputs("document:\n", stdout);
		fwrite(m->doc, 1, m->doc_len, stdout);
		if (a->meta)
			putchar('\n');
	}
	store_message_free(m);
	return CLI_OK;
}

static int
queue_act(struct store *s, const struct queue_args *a, enum store_action action)
{
	char id[STORE_ID_MAX + 1];
	const char *receiver, *verb = a->pos[0];
	enum gw_err err;
	size_t changed = 0;
	int rc;

	if ((rc = queue_target(a, id, sizeof(id), &receiver)) != CLI_OK)
		return rc;
	err = store_act(s, id, receiver, action, util_wall_ms(), &changed);
	if (err == GW_NOTFOUND) {
		fprintf(stderr, "pzpgw queue %s: %s%s%s: not found\n", verb, id,
			receiver != NULL ? ":" : "",
			receiver != NULL ? receiver : "");
		return CLI_FAIL;
	}
	if (err == GW_INVALID) {
		fprintf(stderr,
			"pzpgw queue %s: %s: not allowed in its current "
			"state (see pzpgw queue show %s)\n",
			verb, id, id);
		return CLI_FAIL;
	}
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw queue %s: %s\n", verb, gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json)
		return queue_print_json(
		    json_pack("{s:s, s:s, s:o, s:I}", "action", verb, "id", id,
			      "receiver", queue_json_str(receiver), "changed",
			      (json_int_t)changed));
	printf("%s: %s: %zu row%s\n", verb, id, changed,
	       changed == 1 ? "" : "s");
	return CLI_OK;
}

#define QUEUE_REPLAY_PAGE 500

/*
 * `replay --state dead|delivered [--receiver URA] [--since T]`: replay
 * every such row, page by page in acceptance order. A full page may end
 * inside one message's rows: those rows come again on the next page
 * (they start it), the ones replayed no longer match the state.
 */
static int
queue_replay_bulk(struct store *s, const struct queue_args *a)
{
	struct store_filter f = {.state = a->state,
				 .receiver = a->receiver,
				 .after_seq = 0,
				 .limit = QUEUE_REPLAY_PAGE};
	struct store_row *rows = NULL;
	enum gw_err err = GW_OK;
	size_t n = 0, upto, changed, total = 0;
	json_t *done = a->json ? json_array() : NULL;

	for (;;) {
		if ((err = store_list(s, &f, &rows, &n)) != GW_OK)
			break;
		if (n == 0)
			break;
		upto = n;
		if (n == QUEUE_REPLAY_PAGE)
			while (upto > 0 &&
			       rows[upto - 1].seq == rows[n - 1].seq)
				upto--;
		if (upto == 0) /* one message fills the page */
			upto = n;
		for (size_t i = 0; i < upto && err == GW_OK; i++) {
			const struct store_row *r = &rows[i];
			int64_t tried = r->last_attempt_at ? r->last_attempt_at
							   : r->accepted_at;

			if (a->since != NULL && tried < a->since_ms)
				continue;
			changed = 0;
			err = store_act(s, r->id, r->receiver, STORE_REPLAY,
					util_wall_ms(), &changed);
			if (err == GW_INVALID || err == GW_NOTFOUND)
				err = GW_OK; /* changed meanwhile: not ours */
			if (changed == 0)
				continue;
			total += changed;
			if (done != NULL)
				json_array_append_new(
				    done, json_pack("{s:s, s:s}", "id", r->id,
						    "receiver", r->receiver));
			else
				printf("replayed %s:%s\n", r->id, r->receiver);
		}
		f.after_seq = upto < n ? rows[upto].seq - 1 : rows[n - 1].seq;
		store_rows_free(rows, n);
		rows = NULL;
		if (err != GW_OK || n < QUEUE_REPLAY_PAGE)
			break;
	}
	store_rows_free(rows, n);
	if (err != GW_OK) {
		json_decref(done);
		fprintf(stderr, "pzpgw queue replay: %s (%zu rows replayed)\n",
			gw_strerror(err), total);
		return CLI_USAGE;
	}
	if (done != NULL)
		return queue_print_json(json_pack(
		    "{s:s, s:s, s:s?, s:s?, s:I, s:o}", "action", "replay",
		    "state", store_state_name((enum store_state)a->state),
		    "receiver", a->receiver, "since", a->since, "changed",
		    (json_int_t)total, "rows", done));
	printf("replay: %zu row%s\n", total, total == 1 ? "" : "s");
	return CLI_OK;
}

static int
queue_purge(struct store *s, const struct queue_args *a)
{
	enum gw_err err;
	size_t n = 0;

	if ((err = store_prune(s, a->before_ms, &n)) != GW_OK) {
		fprintf(stderr, "pzpgw queue purge: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json)
		return queue_print_json(json_pack(
		    "{s:s, s:I}", "action", "purge", "purged", (json_int_t)n));
	printf("purged %zu message%s delivered before %s\n", n,
	       n == 1 ? "" : "s", a->before);
	return CLI_OK;
}

static int
queue_stats(struct store *s, const struct queue_args *a)
{
	struct store_stat *st = NULL;
	int64_t now = util_wall_ms();
	enum gw_err err;
	json_t *arr;
	size_t n = 0;

	if ((err = store_stats(s, &st, &n)) != GW_OK) {
		fprintf(stderr, "pzpgw queue stats: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		arr = json_array();
		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append_new(
			    arr,
			    json_pack("{s:s, s:s, s:I, s:f}", "state",
				      store_state_name(st[i].state), "receiver",
				      st[i].receiver, "count",
				      (json_int_t)st[i].count,
				      "oldest_age_seconds",
				      (double)(now - st[i].oldest_accepted_at) /
					  1000.0));
		free(st);
		return queue_print_json(arr);
	}
	printf("%-9s  %-8s  %10s  %s\n", "STATE", "RECEIVER", "COUNT",
	       "OLDEST_AGE_S");
	for (size_t i = 0; i < n; i++)
		printf("%-9s  %-8s  %10llu  %.0f\n",
		       store_state_name(st[i].state), st[i].receiver,
		       (unsigned long long)st[i].count,
		       (double)(now - st[i].oldest_accepted_at) / 1000.0);
	free(st);
	return CLI_OK;
}

/* The held receivers: with a PostgreSQL store the holds the nodes share
 * (a SQLite node keeps its holds in memory: see pzpgw_receiver_held). */
static int
queue_receivers(struct store *s, const struct queue_args *a)
{
	struct store_hold *h = NULL;
	int64_t now = util_wall_ms();
	enum gw_err err;
	json_t *arr;
	size_t n = 0;

	if ((err = store_holds(s, &h, &n)) != GW_OK) {
		fprintf(stderr, "pzpgw queue receivers: %s\n",
			gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		arr = json_array();
		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append_new(
			    arr,
			    json_pack("{s:s, s:s, s:I, s:f, s:s?}", "receiver",
				      h[i].receiver, "reason", h[i].reason,
				      "failed_probes", (json_int_t)h[i].fails,
				      "held_for_seconds",
				      h[i].until > now
					  ? (double)(h[i].until - now) / 1000.0
					  : 0.0,
				      "probing_node",
				      h[i].prober[0] != '\0' &&
					      h[i].probe_until > now
					  ? h[i].prober
					  : NULL));
		free(h);
		return queue_print_json(arr);
	}
	printf("%-8s  %-13s  %6s  %8s  %s\n", "RECEIVER", "REASON", "FAILS",
	       "HELD_S", "PROBING_NODE");
	for (size_t i = 0; i < n; i++)
		printf("%-8s  %-13s  %6u  %8.1f  %s\n", h[i].receiver,
		       h[i].reason, h[i].fails,
		       h[i].until > now ? (double)(h[i].until - now) / 1000.0
					: 0.0,
		       h[i].prober[0] != '\0' && h[i].probe_until > now
			   ? h[i].prober
			   : "-");
	free(h);
	return CLI_OK;
}

static int
queue_init(struct store *s, const struct queue_args *a)
{
	if (a->json)
		return queue_print_json(
		    json_pack("{s:s, s:i}", "backend", store_backend(s),
			      "schema_version", store_schema_version(s)));
	printf("store ready: backend %s, schema version %d\n", store_backend(s),
	       store_schema_version(s));
	return CLI_OK;
}

static int
queue_parse(int argc, char **argv, struct queue_args *a)
{
	enum store_state st;
	int ch;

	memset(a, 0, sizeof(*a));
	a->state = -1;
	optind = 0; /* full reinitialisation (GNU), argv is permuted */
	while ((ch = getopt_long(argc, argv, "c:", queue_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case OPT_STORE:
			a->store = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "json") == 0)
				a->json = true;
			else if (strcmp(optarg, "table") != 0)
				return cli_usage(QUEUE_CMD, "bad format '%s'",
						 optarg);
			break;
		case OPT_STATE:
			if (store_state_parse(optarg, &st) != GW_OK)
				return cli_usage(QUEUE_CMD, "bad state '%s'",
						 optarg);
			a->state = (int)st;
			break;
		case OPT_RECEIVER:
			if (!util_is_ura(optarg))
				return cli_usage(
				    QUEUE_CMD, "bad receiver URA '%s'", optarg);
			a->receiver = optarg;
			break;
		case OPT_LIMIT:
			if (util_parse_ll(optarg, 1, QUEUE_LIMIT_MAX,
					  &a->limit) != GW_OK)
				return cli_usage(QUEUE_CMD, "bad limit '%s'",
						 optarg);
			break;
		case OPT_AFTER:
			if (util_parse_ll(optarg, 0, INT64_MAX, &a->after) !=
			    GW_OK)
				return cli_usage(QUEUE_CMD, "bad --after '%s'",
						 optarg);
			break;
		case OPT_CONTENT:
			a->content = true;
			break;
		case OPT_BEFORE:
			a->before = optarg;
			break;
		case OPT_SINCE:
			a->since = optarg;
			break;
		case OPT_META:
			a->meta = true;
			break;
		default:
			return cli_usage(QUEUE_CMD, "unknown option");
		}
	}
	if (a->config != NULL && a->store != NULL)
		return cli_usage(QUEUE_CMD, "give -c or --store, not both");
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < 1)
		return cli_usage(QUEUE_CMD, "missing action");
	return CLI_OK;
}

int
cli_queue(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;  /* positional arguments after the action */
		int action; /* enum store_action, or -1 */
	} acts[] = {
	    {"list", 0, -1},
	    {"show", 1, -1},
	    {"retry", 1, STORE_RETRY},
	    {"hold", 1, STORE_HOLD},
	    {"release", 1, STORE_RELEASE},
	    {"replay", 1, STORE_REPLAY},
	    {"purge", 0, -1},
	    {"stats", 0, -1},
	    {"receivers", 0, -1},
	    {"init", 0, -1},
	};
	struct queue_args a;
	struct store *s = NULL;
	bool bulk;
	size_t i;
	int rc;

	if ((rc = queue_parse(argc, argv, &a)) != CLI_OK)
		return rc;
	if (a.pos == NULL || a.npos < 1)
		return CLI_USAGE;
	for (i = 0; i < UTIL_ARRAY_LEN(acts); i++)
		if (strcmp(a.pos[0], acts[i].name) == 0)
			break;
	if (i == UTIL_ARRAY_LEN(acts))
		return cli_usage(QUEUE_CMD, "unknown action '%s'", a.pos[0]);
	/* replay takes an ID, or --state for every row in that state. */
	bulk = acts[i].action == STORE_REPLAY && a.npos == 1 && a.state >= 0;
	if (a.npos - 1 != acts[i].nargs && !bulk)
		return cli_usage(QUEUE_CMD, "%s takes %s", a.pos[0],
				 acts[i].nargs == 1 ? "one message ID"
						    : "no arguments");
	if (bulk && a.state != STORE_DEAD && a.state != STORE_DELIVERED)
		return cli_usage(QUEUE_CMD,
				 "replay --state takes dead or delivered");
	if (a.since != NULL && !bulk)
		return cli_usage(QUEUE_CMD,
				 "--since is for replay --state only");
	if (a.since != NULL && !cli_parse_time(a.since, &a.since_ms))
		return cli_usage(QUEUE_CMD, "bad time '%s'", a.since);
	if (a.content && strcmp(a.pos[0], "show") != 0)
		return cli_usage(QUEUE_CMD, "--content is for show only");
	if (a.meta && !a.content)
		return cli_usage(QUEUE_CMD,
				 "--meta is for show --content only");
	if (a.before != NULL && strcmp(a.pos[0], "purge") != 0)
		return cli_usage(QUEUE_CMD,
				 "--delivered-before is for purge only");
	if (strcmp(a.pos[0], "purge") == 0) {
		if (a.before == NULL)
			return cli_usage(QUEUE_CMD,
					 "purge needs --delivered-before");
		if (!cli_parse_time(a.before, &a.before_ms))
			return cli_usage(QUEUE_CMD, "bad date '%s'", a.before);
	}
	a.create = strcmp(a.pos[0], "init") == 0;
	a.readonly = strcmp(a.pos[0], "list") == 0 ||
		     strcmp(a.pos[0], "show") == 0 ||
		     strcmp(a.pos[0], "stats") == 0 ||
		     strcmp(a.pos[0], "receivers") == 0;
	if ((rc = queue_open(&a, &s)) != CLI_OK)
		return rc;
	if (a.create)
		rc = queue_init(s, &a);
	else if (strcmp(a.pos[0], "list") == 0)
		rc = queue_list(s, &a);
	else if (strcmp(a.pos[0], "show") == 0)
		rc = queue_show(s, &a);
	else if (strcmp(a.pos[0], "purge") == 0)
		rc = queue_purge(s, &a);
	else if (strcmp(a.pos[0], "stats") == 0)
		rc = queue_stats(s, &a);
	else if (strcmp(a.pos[0], "receivers") == 0)
		rc = queue_receivers(s, &a);
	else if (bulk)
		rc = queue_replay_bulk(s, &a);
	else
		rc = queue_act(s, &a, (enum store_action)acts[i].action);
	store_free(s);
	return rc;
}
