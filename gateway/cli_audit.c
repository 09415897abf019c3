/*
 * `pzpgw audit`: the audit trail of a (running) gateway's store: list
 * records, export them as FHIR R4 AuditEvent resources (NEN 7513), and
 * verify the hash chain. Read only: never writes or migrates the store.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cli.h"
#include "config.h"
#include "store.h"
#include "util.h"

#define AUDIT_CMD	"audit"
#define AUDIT_PAGE	1000 /* records read per store call */
#define AUDIT_LIMIT_MAX 100000000LL

#define AUDIT_URA_SYSTEM  "http://fhir.nl/fhir/NamingSystem/ura"
#define AUDIT_BSN_SYSTEM  "http://fhir.nl/fhir/NamingSystem/bsn"
#define AUDIT_REQ_SYSTEM  "http://pzpgw.nl/fhir/NamingSystem/request-id"
#define AUDIT_CERT_SYSTEM "http://pzpgw.nl/fhir/NamingSystem/client-certificate"

struct audit_args {
	const char *config;
	const char *store;
	bool json;
	const char *patient;
	const char *organisation;
	int64_t since; /* ms; 0: none */
	bool has_since;
	long long limit; /* 0: all */
	long long after;
	char **pos;
	int npos;
};

enum {
	OPT_STORE = 256,
	OPT_FORMAT,
	OPT_PATIENT,
	OPT_ORGANISATION,
	OPT_SINCE,
	OPT_LIMIT,
	OPT_AFTER,
};

static const struct option audit_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"store", required_argument, NULL, OPT_STORE},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"patient", required_argument, NULL, OPT_PATIENT},
    {"organisation", required_argument, NULL, OPT_ORGANISATION},
    {"organization", required_argument, NULL, OPT_ORGANISATION},
    {"since", required_argument, NULL, OPT_SINCE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"after", required_argument, NULL, OPT_AFTER},
    {NULL, 0, NULL, 0},
};

/* The gateway that observed the records (export's AuditEvent.source). */
struct audit_observer {
	char ura[CONFIG_URA_LEN + 1]; /* "" with --store */
	char name[128];
};

/* Open the store read only, from --store or the configuration. */
static int
audit_open(const struct audit_args *a, struct store **s,
	   struct audit_observer *obs)
{
	struct store_options o = {.readonly = true};
	struct config *cfg = NULL;
	int rc;

	memset(obs, 0, sizeof(*obs));
	rc = cli_store_open("audit", a->config, a->store, &o, NULL, s, &cfg);
	if (cfg != NULL) {
		util_strlcpy(obs->ura, cfg->ura, sizeof(obs->ura));
		if (cfg->name != NULL)
			util_strlcpy(obs->name, cfg->name, sizeof(obs->name));
		config_free(cfg);
	}
	return rc;
}

/* RFC 3339 with milliseconds, UTC. */
static const char *
audit_time(int64_t ms, char *buf, size_t n)
{
	char sec[32];
	int64_t frac = ms % 1000;

	if (frac < 0)
		frac += 1000;
	util_rfc3339((ms - frac) / 1000, sec, sizeof(sec));
	/* "...:SSZ" -> "...:SS.mmmZ" */
	sec[strlen(sec) - 1] = '\0';
	snprintf(buf, n, "%s.%03dZ", sec, (int)frac);
	return buf;
}

/* One record as the plain JSON of `list --format json`. */
static json_t *
audit_rec_json(const struct store_audit_rec *r)
{
	char t[40];

	return json_pack(
	    "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:s, s:s, "
	    "s:s}",
	    "seq", (json_int_t)r->seq, "at", audit_time(r->at, t, sizeof(t)),
	    "organisation", r->ura, "cert_serial", r->cert_serial,
	    "cert_issuer", r->cert_issuer, "patient", r->bsn, "interaction",
	    r->interaction, "query", r->query, "count", (json_int_t)r->count,
	    "status", r->status, "request_id", r->request_id, "prev_hash",
	    r->prev_hash, "hash", r->hash);
}

/* Printable text for a table column ("-" when empty). */
static const char *
audit_col(const char *s)
{
	return s[0] != '\0' ? s : "-";
}

static void
audit_row_text(const struct store_audit_rec *r)
{
	char t[40];

	printf("%-8" PRId64 "  %-24s  %-8s  %-14s  %6d  %5u  %-9s  %s\n",
	       r->seq, audit_time(r->at, t, sizeof(t)), audit_col(r->ura),
	       audit_col(r->interaction), r->status, r->count,
	       audit_col(r->bsn), audit_col(r->query));
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0 when invalid. */
static size_t
audit_utf8_len(const unsigned char *p)
{
	size_t n;
	unsigned min;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		min = 0x80;
		cp = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		min = 0x800;
		cp = p[0] & 0x0fu;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		min = 0x10000;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Make a text field safe to print and to put in JSON: control
 * characters and bytes that are not UTF-8 become '?'. The records come
 * from requests; a terminal must not be steered by them. */
static void
audit_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		size_t n = audit_utf8_len(p);

		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

/* A record fit for display (list, export); verify reads the raw ones. */
static void
audit_rec_clean(struct store_audit_rec *r)
{
	audit_clean(r->ura);
	audit_clean(r->cert_serial);
	audit_clean(r->cert_issuer);
	audit_clean(r->bsn);
	audit_clean(r->interaction);
	audit_clean(r->query);
	audit_clean(r->request_id);
	audit_clean(r->prev_hash);
	audit_clean(r->hash);
}

/* Each record matching a's filters, in seq order, page by page;
 * fn returns false to stop (out of memory). */
static int
audit_each(struct store *s, const struct audit_args *a,
	   bool (*fn)(const struct store_audit_rec *r, void *arg), void *arg)
{
	struct store_audit_filter f = {.bsn = a->patient,
				       .ura = a->organisation,
				       .since = a->since,
				       .after_seq = a->after};
	struct store_audit_rec *v = NULL;
	long long left = a->limit > 0 ? a->limit : -1;
	enum gw_err err;
	size_t n;

	do {
		f.limit =
		    left > 0 && left < AUDIT_PAGE ? (size_t)left : AUDIT_PAGE;
		if ((err = store_audit_list(s, &f, &v, &n)) != GW_OK) {
			fprintf(stderr, "pzpgw audit: %s\n", gw_strerror(err));
			return CLI_USAGE;
		}
		for (size_t i = 0; i < n; i++) {
			audit_rec_clean(&v[i]);
			if (!fn(&v[i], arg)) {
				free(v);
				fprintf(stderr, "pzpgw audit: out of memory\n");
				return CLI_USAGE;
			}
		}
		if (n > 0)
			f.after_seq = v[n - 1].seq;
		free(v);
		v = NULL;
		if (left > 0)
			left -= (long long)n;
	} while (n == f.limit && left != 0);
	return CLI_OK;
}

static bool
audit_print_text(const struct store_audit_rec *r, void *arg)
{
	(void)arg;
	audit_row_text(r);
	return true;
}

static bool
audit_add_json(const struct store_audit_rec *r, void *arg)
{
	return json_array_append_new(arg, audit_rec_json(r)) == 0;
}

/* Print v on stdout; takes ownership. */
static int
audit_print_json(json_t *v, size_t flags)
{
	char *text = v != NULL ? json_dumps(v, flags) : NULL;

	json_decref(v);
	if (text == NULL) {
		fprintf(stderr, "pzpgw audit: out of memory\n");
		return CLI_USAGE;
	}
	puts(text);
	free(text);
	return CLI_OK;
}

static int
audit_list(struct store *s, const struct audit_args *a)
{
	json_t *arr;
	int rc;

	if (!a->json) {
		printf("%-8s  %-24s  %-8s  %-14s  %6s  %5s  %-9s  %s\n", "SEQ",
		       "AT", "ORG", "INTERACTION", "STATUS", "COUNT", "PATIENT",
		       "QUERY");
		return audit_each(s, a, audit_print_text, NULL);
	}
	if ((arr = json_array()) == NULL)
		return CLI_USAGE;
	if ((rc = audit_each(s, a, audit_add_json, arr)) != CLI_OK) {
		json_decref(arr);
		return rc;
	}
	return audit_print_json(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

/* The AuditEvent.action of a FHIR restful interaction: C, R, U, D, E. */
static const char *
audit_action(const char *interaction)
{
	if (strcmp(interaction, "create") == 0)
		return "C";
	if (strcmp(interaction, "update") == 0 ||
	    strcmp(interaction, "patch") == 0)
		return "U";
	if (strcmp(interaction, "delete") == 0)
		return "D";
	if (strcmp(interaction, "read") == 0 ||
	    strcmp(interaction, "vread") == 0 ||
	    strncmp(interaction, "history", 7) == 0)
		return "R";
	return "E"; /* searches, operations, refusals */
}

static json_t *
audit_coding(const char *system, const char *code, const char *display)
{
	return json_pack("{s:s, s:s, s:s*}", "system", system, "code", code,
			 "display", display);
}

static json_t *
audit_ident(const char *system, const char *value)
{
	return json_pack("{s:{s:s, s:s}}", "identifier", "system", system,
			 "value", value);
}

static json_t *
audit_detail(const char *type, const char *value)
{
	return json_pack("{s:s, s:s}", "type", type, "valueString", value);
}

/* Text with &, < and > escaped for XHTML, cut to fit n. */
static void
audit_xhtml(const char *s, char *out, size_t n)
{
	size_t o = 0;

	for (; *s != '\0'; s++) {
		const char *e = *s == '&'   ? "&amp;"
				: *s == '<' ? "&lt;"
				: *s == '>' ? "&gt;"
					    : NULL;
		size_t len = e != NULL ? strlen(e) : 1;

		if (o + len + 1 > n)
			break;
		if (e != NULL)
			memcpy(out + o, e, len);
		else
			out[o] = *s;
		o += len;
	}
	out[o] = '\0';
}

/*
 * One record as an R4 AuditEvent with the NEN 7513 fields: when
 * (recorded), who (the organisation by URA, its client certificate as a
 * second agent), what patient (entity by BSN), which action (subtype,
 * action, the query), outcome; the request id, count and the record's
 * place in the hash chain as details, so the export can be checked.
 */
static json_t *
audit_event(const struct store_audit_rec *r, const struct audit_observer *obs)
{
	char t[40], num[32], id[48], cert[400];
	json_t *ev, *agents, *entities, *who, *observer, *req, *text;
	struct buf q;

	buf_init(&q, 4 * sizeof(r->query));
	if (b64_encode(r->query, strlen(r->query), false, &q) != GW_OK) {
		buf_cleanup(&q);
		return NULL;
	}
	snprintf(id, sizeof(id), "pzpgw-audit-%" PRId64, r->seq);
	snprintf(cert, sizeof(cert), "serial=%s; issuer=%s",
		 audit_col(r->cert_serial), audit_col(r->cert_issuer));
	who = r->ura[0] != '\0' ? audit_ident(AUDIT_URA_SYSTEM, r->ura)
				: json_pack("{s:s}", "display", "unknown");
	if (who != NULL && r->ura[0] != '\0')
		json_object_set_new(who, "type", json_string("Organization"));
	agents = json_pack(
	    "[{s:{s:[o]}, s:o, s:b}]", "type", "coding",
	    audit_coding("http://terminology.hl7.org/CodeSystem/v3-RoleClass",
			 "PROV", "healthcare provider"),
	    "who", who, "requestor", 1);
	if (r->cert_serial[0] != '\0' || r->cert_issuer[0] != '\0')
		json_array_append_new(
		    agents,
		    json_pack("{s:{s:[o]}, s:o, s:b}", "type", "coding",
			      audit_coding("http://dicom.nema.org/resources/"
					   "ontology/DCM",
					   "110150", "Application"),
			      "who", audit_ident(AUDIT_CERT_SYSTEM, cert),
			      "requestor", 0));
	entities = json_array();
	if (r->bsn[0] != '\0')
		json_array_append_new(
		    entities,
		    json_pack("{s:o, s:o, s:o}", "what",
			      audit_ident(AUDIT_BSN_SYSTEM, r->bsn), "type",
			      audit_coding("http://terminology.hl7.org/"
					   "CodeSystem/audit-entity-type",
					   "1", "Person"),
			      "role",
			      audit_coding("http://terminology.hl7.org/"
					   "CodeSystem/object-role",
					   "1", "Patient")));
	req = json_pack(
	    "{s:o, s:o, s:o, s:s%}", "what",
	    audit_ident(AUDIT_REQ_SYSTEM, audit_col(r->request_id)), "type",
	    audit_coding("http://terminology.hl7.org/CodeSystem/"
			 "audit-entity-type",
			 "2", "System Object"),
	    "role",
	    audit_coding("http://terminology.hl7.org/CodeSystem/object-role",
			 "24", "Query"),
	    "query", q.data != NULL ? q.data : "", q.len);
	buf_cleanup(&q);
	if (req != NULL) {
		json_t *details = json_array();

		snprintf(num, sizeof(num), "%u", r->count);
		json_array_append_new(details, audit_detail("count", num));
		snprintf(num, sizeof(num), "%" PRId64, r->seq);
		json_array_append_new(details, audit_detail("seq", num));
		json_array_append_new(details,
				      audit_detail("prev_hash", r->prev_hash));
		json_array_append_new(details, audit_detail("hash", r->hash));
		json_object_set_new(req, "detail", details);
		/* A query of nothing (a create has its path) is left out. */
		if (r->query[0] == '\0')
			json_object_del(req, "query");
	}
	json_array_append_new(entities, req);
	observer = obs->ura[0] != '\0' ? audit_ident(AUDIT_URA_SYSTEM, obs->ura)
				       : json_object();
	json_object_set_new(
	    observer, "display",
	    json_string(obs->name[0] != '\0' ? obs->name : "pzpgw"));
	/* A short narrative (dom-6), without the patient's number. */
	{
		char what[sizeof(r->interaction) * 5], div[512];

		audit_xhtml(r->interaction, what, sizeof(what));
		snprintf(div, sizeof(div),
			 "<div xmlns=\"http://www.w3.org/1999/xhtml\">%s by "
			 "organisation %s at %s: HTTP %d, %u resources</div>",
			 what, audit_col(r->ura),
			 audit_time(r->at, t, sizeof(t)), r->status, r->count);
		text =
		    json_pack("{s:s, s:s}", "status", "generated", "div", div);
	}
	snprintf(num, sizeof(num), "HTTP %d", r->status);
	ev = json_pack("{s:s, s:s, s:o, s:o, s:[o], s:s, s:s, s:s, s:s, s:o, "
		       "s:{s:o, s:[o]}, s:o}",
		       "resourceType", "AuditEvent", "id", id, "text", text,
		       "type",
		       audit_coding("http://terminology.hl7.org/CodeSystem/"
				    "audit-event-type",
				    "rest", "RESTful Operation"),
		       "subtype",
		       audit_coding("http://hl7.org/fhir/restful-interaction",
				    r->interaction, NULL),
		       "action", audit_action(r->interaction), "recorded",
		       audit_time(r->at, t, sizeof(t)), "outcome",
		       r->status > 0 && r->status < 400	     ? "0"
		       : r->status >= 400 && r->status < 500 ? "4"
							     : "8",
		       "outcomeDesc", num, "agent", agents, "source",
		       "observer", observer, "type",
		       audit_coding("http://terminology.hl7.org/CodeSystem/"
				    "security-source-type",
				    "4", "Application Server"),
		       "entity", entities);
	return ev;
}

struct audit_export {
	json_t *entries;
	const struct audit_observer *obs;
};

static bool
audit_add_event(const struct store_audit_rec *r, void *arg)
{
	struct audit_export *x = arg;
	char url[48] = "urn:uuid:";
	json_t *ev = audit_event(r, x->obs);

	if (ev == NULL)
		return false;
	util_uuid(url + 9);
	return json_array_append_new(x->entries,
				     json_pack("{s:s, s:o}", "fullUrl", url,
					       "resource", ev)) == 0;
}

/* A collection Bundle of AuditEvents (JSON whatever --format says: it
 * is FHIR). */
static int
audit_export(struct store *s, const struct audit_args *a,
	     const struct audit_observer *obs)
{
	struct audit_export x = {.entries = json_array(), .obs = obs};
	char t[40], id[40];
	json_t *bundle;
	int rc;

	if (x.entries == NULL)
		return CLI_USAGE;
	if ((rc = audit_each(s, a, audit_add_event, &x)) != CLI_OK) {
		json_decref(x.entries);
		return rc;
	}
	util_uuid(id);
	bundle = json_pack(
	    "{s:s, s:s, s:s, s:s, s:o}", "resourceType", "Bundle", "id", id,
	    "type", "collection", "timestamp",
	    audit_time(util_wall_ms(), t, sizeof(t)), "entry", x.entries);
	/* Bundle.total is for searchsets only (bdl-1): the count goes to
	   stderr. */
	if (bundle != NULL)
		fprintf(stderr, "pzpgw audit export: %zu records\n",
			json_array_size(json_object_get(bundle, "entry")));
	return audit_print_json(bundle, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
}

static int
audit_verify(struct store *s, const struct audit_args *a)
{
	struct store_audit_check chk;
	enum gw_err err = store_audit_verify(s, &chk);

	if (err != GW_OK && err != GW_INVALID) {
		fprintf(stderr, "pzpgw audit verify: %s\n", gw_strerror(err));
		return CLI_USAGE;
	}
	if (a->json) {
		json_t *o =
		    json_pack("{s:b, s:I, s:I, s:I, s:s}", "ok", err == GW_OK,
			      "records", (json_int_t)chk.records, "first_seq",
			      (json_int_t)chk.first_seq, "last_seq",
			      (json_int_t)chk.last_seq, "head", chk.last_hash);

		if (o != NULL && err != GW_OK) {
			json_object_set_new(o, "broken_seq",
					    json_integer(chk.broken_seq));
			json_object_set_new(o, "problem",
					    json_string(chk.problem));
		}
		if (audit_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) !=
		    CLI_OK)
			return CLI_USAGE;
	} else if (err == GW_OK) {
		printf("audit trail ok: %" PRIu64 " records", chk.records);
		if (chk.records > 0)
			printf(", seq %" PRId64 "..%" PRId64 ", head %s",
			       chk.first_seq, chk.last_seq, chk.last_hash);
		putchar('\n');
	} else {
		printf("audit trail broken at seq %" PRId64 ": %s\n",
		       chk.broken_seq, chk.problem);
	}
	return err == GW_OK ? CLI_OK : CLI_FAIL;
}

/* --since: a date or RFC 3339 time, or a duration back from now. */
static bool
audit_since(const char *s, int64_t *out)
{
	uint64_t ms;

	if (cli_parse_time(s, out))
		return true;
	if (util_parse_duration(s, 1, UINT64_C(100) * 365 * 86400000, &ms) !=
	    GW_OK)
		return false;
	*out = util_wall_ms() - (int64_t)ms;
	return true;
}

static bool
audit_is_bsn(const char *s)
{
	size_t n = strlen(s);

	if (n < 8 || n > 9)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int
audit_parse(int argc, char **argv, struct audit_args *a)
{
	int ch;

	memset(a, 0, sizeof(*a));
	optind = 0; /* full reinitialisation (GNU), argv is permuted */
	while ((ch = getopt_long(argc, argv, "c:", audit_opts, NULL)) != -1) {
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
			else if (strcmp(optarg, "text") != 0 &&
				 strcmp(optarg, "table") != 0)
				return cli_usage(AUDIT_CMD, "bad format '%s'",
						 optarg);
			break;
		case OPT_PATIENT:
			if (!audit_is_bsn(optarg))
				return cli_usage(AUDIT_CMD,
						 "bad patient BSN '%s' (9 "
						 "digits)",
						 optarg);
			a->patient = optarg;
			break;
		case OPT_ORGANISATION:
			if (!util_is_ura(optarg))
				return cli_usage(AUDIT_CMD,
						 "bad organisation URA '%s'",
						 optarg);
			a->organisation = optarg;
			break;
		case OPT_SINCE:
			if (!audit_since(optarg, &a->since))
				return cli_usage(AUDIT_CMD, "bad --since '%s'",
						 optarg);
			a->has_since = true;
			break;
		case OPT_LIMIT:
			if (util_parse_ll(optarg, 1, AUDIT_LIMIT_MAX,
					  &a->limit) != GW_OK)
				return cli_usage(AUDIT_CMD, "bad limit '%s'",
						 optarg);
			break;
		case OPT_AFTER:
			if (util_parse_ll(optarg, 0, INT64_MAX, &a->after) !=
			    GW_OK)
				return cli_usage(AUDIT_CMD, "bad --after '%s'",
						 optarg);
			break;
		default:
			return cli_usage(AUDIT_CMD, "unknown option");
		}
	}
	if (a->config != NULL && a->store != NULL)
		return cli_usage(AUDIT_CMD, "give -c or --store, not both");
	a->pos = argv + optind;
	a->npos = argc - optind;
	if (a->npos < 1)
		return cli_usage(AUDIT_CMD, "missing action");
	if (a->npos > 1)
		return cli_usage(AUDIT_CMD, "unexpected argument '%s'",
				 a->pos[1]);
	return CLI_OK;
}

int
cli_audit(int argc, char **argv)
{
	struct audit_observer obs;
	struct audit_args a;
	struct store *s = NULL;
	const char *act;
	int rc;

	if ((rc = audit_parse(argc, argv, &a)) != CLI_OK)
		return rc;
	if (a.pos == NULL || a.npos < 1)
		return CLI_USAGE;
	act = a.pos[0];
	if (strcmp(act, "list") != 0 && strcmp(act, "export") != 0 &&
	    strcmp(act, "verify") != 0)
		return cli_usage(AUDIT_CMD, "unknown action '%s'", act);
	if (strcmp(act, "export") == 0 && !a.has_since)
		return cli_usage(AUDIT_CMD, "export needs --since");
	if (strcmp(act, "verify") == 0 &&
	    (a.patient != NULL || a.organisation != NULL || a.has_since ||
	     a.limit != 0 || a.after != 0))
		return cli_usage(AUDIT_CMD,
				 "verify checks the whole trail: no filters");
	if ((rc = audit_open(&a, &s, &obs)) != CLI_OK)
		return rc;
	if (strcmp(act, "list") == 0)
		rc = audit_list(s, &a);
	else if (strcmp(act, "export") == 0)
		rc = audit_export(s, &a, &obs);
	else
		rc = audit_verify(s, &a);
	store_free(s);
	return rc;
}
