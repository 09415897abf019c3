/*
 * `pzpgw inbox`: what this gateway received for the organisations it
 * serves (inbound messages per local receiver and patient), read-only.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "fjson.h"
#include "store.h"
#include "util.h"

#define INBOX_CMD	"inbox"
#define INBOX_LIMIT_MAX 1000000

struct inbox_args {
	const char *config;
	const char *store;
	bool json;
	const char *receiver;
	const char *patient;
	const char *since;
	long long limit;
	long long after;
	char **pos;
	int npos;
};

enum {
	OPT_STORE = 256,
	OPT_FORMAT,
	OPT_RECEIVER,
	OPT_PATIENT,
	OPT_SINCE,
	OPT_LIMIT,
	OPT_AFTER,
};

static const struct option inbox_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"receiver", required_argument, NULL, OPT_RECEIVER},
    {"patient", required_argument, NULL, OPT_PATIENT},
    {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {NULL, 0, NULL, 0},
};

/* Open the store named by --store or by the configuration, read only:
 * the inbox never writes (nor makes -wal/-shm files beside a store no
 * gateway has open). */
static int
inbox_open(const struct inbox_args *a, struct store **s)
{
	struct store_options o = {.readonly = true};

	return cli_store_open("inbox", a->config, a->store, &o, NULL, s, NULL);
}

/* RFC 3339 text of a ms timestamp. */
static const char *
inbox_time(int64_t ms, char *buf, size_t n)
{
	util_rfc3339(ms / 1000, buf, n);
	return buf;
}

static json_t *
inbox_json(const struct store_inbox *m)
{
	char t[32];

	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:s, s:s, s:i, s:I}",
			 "seq", (json_int_t)m->seq, "id", m->id, "receiver",
			 m->receiver, "sender", m->sender, "via", m->via,
			 "patient", m->bsn[0] != '\0' ? m->bsn : NULL,
			 "fhir_version", m->fhir_version, "accepted_at",
			 inbox_time(m->accepted_at, t, sizeof(t)), "resources",
			 (int)m->resources, "bytes", (json_int_t)m->doc_len);
}

static int
inbox_list(struct store *s, const struct inbox_args *a)
{
	struct store_inbox_filter f = {.receiver = a->receiver,
				       .bsn = a->patient,
				       .after_seq = a->after,
				       .limit = (size_t)a->limit};
	struct store_inbox *v = NULL;
	enum gw_err err;
	size_t n = 0;
	char t[32];

	if (a->since != NULL && !cli_parse_time(a->since, &f.since))
		return cli_usage(INBOX_CMD, "bad time '%s'", a->since);
	if ((err = store_inbox_list(s, &f, &v, &n)) != GW_OK) {
		fprintf(stderr, "pzpgw inbox list: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		json_t *arr = json_array();
		char *text;

		for (size_t i = 0; arr != NULL && i < n; i++)
			json_array_append_new(arr, inbox_json(&v[i]));
		free(v);
		text =
		    arr != NULL
			? json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
			: NULL;
		json_decref(arr);
		if (text == NULL)
			return CLI_USAGE;
		puts(text);
		free(text);
		return CLI_OK;
	}
	printf("%-8s  %-36s  %-8s  %-8s  %-8s  %-10s  %-5s  %9s  %s\n", "SEQ",
	       "ID", "RECEIVER", "SENDER", "VIA", "PATIENT", "FHIR",
	       "RESOURCES", "ACCEPTED");
	for (size_t i = 0; i < n; i++)
		printf(
		    "%-8lld  %-36s  %-8s  %-8s  %-8s  %-10s  %-5s  %9u  %s\n",
		    (long long)v[i].seq, v[i].id,
		    v[i].receiver[0] != '\0' ? v[i].receiver : "-", v[i].sender,
		    v[i].via, v[i].bsn[0] != '\0' ? v[i].bsn : "-",
		    v[i].fhir_version, v[i].resources,
		    inbox_time(v[i].accepted_at, t, sizeof(t)));
	free(v);
	return CLI_OK;
}

/* The received document ID as JSON (indented, numbers as written) on
 * stdout. */
static int
inbox_show(struct store *s, const char *id)
{
	struct store_message *m = NULL;
	struct fj_doc *doc = NULL;
	enum gw_err err;
	struct buf out;
	int rc = CLI_USAGE;

	err = store_get_document(s, id, &m);
	if (err == GW_OK && m->direction != STORE_INBOUND)
		err = GW_NOTFOUND;
	if (err == GW_NOTFOUND) {
		fprintf(stderr, "pzpgw inbox show: %s: no received message\n",
			id);
		store_message_free(m);
		return CLI_FAIL;
	}
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw inbox show: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	buf_init(&out, m->doc_len * 4 + 4096);
	if (fj_parse(m->doc, m->doc_len, 0, &doc, NULL) != GW_OK ||
	    fj_dump(doc->root, FJ_PRETTY, &out) != GW_OK) {
		fprintf(stderr,
			"pzpgw inbox show: %s: stored document does "
			"not read back as JSON\n",
			id);
		goto out;
	}
	if (fwrite(out.data, 1, out.len, stdout) == out.len &&
	    fflush(stdout) == 0)
		rc = CLI_OK;
	/* stdout stays the document alone (it pipes); what intake changed
	 * is said beside it. */
	if (m->report != NULL)
		fprintf(stderr,
			"pzpgw inbox show: %s was normalised or converted on "
			"intake; the report: pzpgw queue show %s\n",
			id, id);
out:
	buf_cleanup(&out);
	fj_doc_free(doc);
	store_message_free(m);
	return rc;
}

static int
inbox_parse(int argc, char **argv, struct inbox_args *a)
{
	int ch;

	memset(a, 0, sizeof(*a));
	a->limit = 100;
	optind = 0; /* full reinitialisation (GNU), argv is permuted */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "c:", inbox_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			a->config = optarg;
			break;
		case OPT_STORE:
			a->store = optarg;
			break;
		case OPT_FORMAT:
			if (strcmp(optarg, "json") != 0 &&
			    strcmp(optarg, "table") != 0)
				return cli_usage(INBOX_CMD, "bad format '%s'",
						 optarg);
			a->json = strcmp(optarg, "json") == 0;
			break;
		case OPT_RECEIVER:
			if (!util_is_ura(optarg))
				return cli_usage(INBOX_CMD,
						 "bad URA '%s' (8 digits)",
						 optarg);
			a->receiver = optarg;
			break;
		case OPT_PATIENT:
			if (optarg[0] == '\0' ||
			    strlen(optarg) > STORE_BSN_MAX ||
			    strspn(optarg, "0123456789") != strlen(optarg))
				return cli_usage(
				    INBOX_CMD, "bad BSN '%s' (digits)", optarg);
			a->patient = optarg;
			break;
		case OPT_SINCE:
			a->since = optarg;
			break;
		case OPT_LIMIT:
			if (util_parse_ll(optarg, 1, INBOX_LIMIT_MAX,
					  &a->limit) != GW_OK)
				return cli_usage(INBOX_CMD, "bad limit '%s'",
						 optarg);
			break;
		case OPT_AFTER:
			if (util_parse_ll(optarg, 0, INT64_MAX, &a->after) !=
			    GW_OK)
				return cli_usage(INBOX_CMD, "bad seq '%s'",
						 optarg);
			break;
		default:
			return cli_usage(INBOX_CMD, "unknown option '%s'",
					 argv[optind - 1]);
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos == 0)
		return cli_usage(INBOX_CMD, "an action is needed");
	if (strcmp(a->pos[0], "list") == 0 && a->npos == 1)
		return CLI_OK;
	if (strcmp(a->pos[0], "show") == 0 && a->npos == 2)
		return CLI_OK;
	if (strcmp(a->pos[0], "list") != 0 && strcmp(a->pos[0], "show") != 0)
		return cli_usage(INBOX_CMD, "unknown action '%s'", a->pos[0]);
	return cli_usage(INBOX_CMD, "wrong arguments for %s", a->pos[0]);
}

int
cli_inbox(int argc, char **argv)
{
	struct inbox_args a;
	struct store *s = NULL;
	int rc;

	if ((rc = inbox_parse(argc, argv, &a)) != CLI_OK)
		return rc;
	if (a.pos == NULL || a.npos < 1)
		return CLI_USAGE;
	if ((rc = inbox_open(&a, &s)) != CLI_OK)
		return rc;
	if (strcmp(a.pos[0], "list") == 0)
		rc = inbox_list(s, &a);
	else
		rc = inbox_show(s, a.pos[1]);
	store_free(s);
	return rc;
}
