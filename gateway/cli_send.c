/*
 * `pzpgw send`: wrap PZP resources into a FHIR message for one or more
 * receivers, post it to a gateway's $process-message over mutual TLS and
 * show the answer; with --status, follow delivery until it is settled.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "buf.h"
#include "cli.h"
#include "fjson.h"
#include "message.h"
#include "tls.h"
#include "util.h"
#include "version.h"

#define SEND_CMD	  "send"
#define SEND_MAX_INPUT	  (64u * 1024 * 1024)
#define SEND_MAX_ANSWER	  (1024u * 1024)
#define SEND_DEFAULT_URL  "https://localhost:8443"
#define SEND_DEV_CERT	  "var/dev-pki/hospital.crt"
#define SEND_DEV_KEY	  "var/dev-pki/hospital.key"
#define SEND_DEV_CA	  "var/dev-pki/ca.pem"
#define SEND_WAIT_DEFAULT 60
#define SEND_POLL_MS	  250
#define SEND_TIMEOUT_S	  60L
#define SEND_LOCATION_MAX 512
#define SEND_ID_MAX	  128
#define SEND_IDENT_MAX	  200 /* --identifier length */

struct send_args {
	const char *to[MESSAGE_MAX_RECEIVERS];
	size_t nto;
	const char *event;
	const char *gateway;
	const char *cert, *key, *cacert;
	const char *from;
	const char *file;
	const char *identifier; /* --identifier, or NULL: derived */
	bool status;
	long long wait_s;
};

/* What came back from one request. */
struct send_answer {
	long status;
	struct buf body;
	char location[SEND_LOCATION_MAX];
	char message_id[SEND_ID_MAX];
	char duplicate[8]; /* X-Duplicate: "true" when the gateway had it */
};

enum {
	OPT_TO = 256,
	OPT_EVENT,
	OPT_GATEWAY,
	OPT_CERT,
	OPT_KEY,
	OPT_CACERT,
	OPT_FROM,
	OPT_STATUS,
	OPT_WAIT,
	OPT_IDENTIFIER
};

static const struct option send_opts[] = {
    {"to", required_argument, NULL, OPT_TO},
    {"event", required_argument, NULL, OPT_EVENT},
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"from", required_argument, NULL, OPT_FROM},
    {"status", no_argument, NULL, OPT_STATUS},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"identifier", required_argument, NULL, OPT_IDENTIFIER},
    {NULL, 0, NULL, 0},
};

/* A Bundle.identifier value under system urn:ietf:rfc:3986: a URI,
 * "scheme:rest", printable, no spaces. */
static bool
send_identifier_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > SEND_IDENT_MAX ||
	    !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return false;
	for (i = 0; i < n && s[i] != ':'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
		      s[i] == '-' || s[i] == '.'))
			return false;
	if (i == n || i + 1 == n)
		return false;
	for (; i < n; i++)
		if (s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

static bool
send_exists(const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return false;
	fclose(f);
	return true;
}

/* Read FILE, or stdin for "-", up to SEND_MAX_INPUT bytes. */
static enum gw_err
send_read(const char *path, char **out, size_t *len)
{
	struct buf b;
	char chunk[65536];
	size_t n;
	enum gw_err err = GW_OK;

	/* send_parse sets it whenever it returns CLI_OK; the analyzer
	 * cannot see that cli_usage() (another file) never returns it. */
	if (path == NULL)
		return GW_INVALID;
	if (strcmp(path, "-") != 0)
		return util_read_file(path, SEND_MAX_INPUT, out, len);
	buf_init(&b, SEND_MAX_INPUT);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
		if ((err = buf_add(&b, chunk, n)) != GW_OK)
			break;
	if (err == GW_OK && ferror(stdin))
		err = GW_IO;
	if (err == GW_OK && b.data == NULL)
		err = buf_add(&b, "", 0);
	if (err != GW_OK) {
		buf_cleanup(&b);
		return err;
	}
	*out = buf_steal(&b, len);
	return GW_OK;
}

/* The URA in the first certificate of a PEM file; says on stderr what
 * is wrong when there is none. */
static enum gw_err
send_cert_ura(const char *path, char ura[CONFIG_URA_LEN + 1])
{
	FILE *f = fopen(path, "r");
	X509 *x;
	enum gw_err err;

	ura[0] = '\0';
	if (f == NULL) {
		fprintf(stderr, "pzpgw send: certificate %s: %s\n", path,
			strerror(errno));
		return GW_IO;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		fprintf(stderr,
			"pzpgw send: certificate %s: not a PEM certificate\n",
			path);
		return GW_PARSE;
	}
	err = tls_cert_ura(x, ura);
	X509_free(x);
	if (err != GW_OK)
		fprintf(stderr,
			"pzpgw send: certificate %s: no URA in it (an UZI "
			"server certificate carries one); give --from URA\n",
			path);
	return err;
}

/* The client certificate and key must be readable files: said before
 * anything else (curl would only say "could not load"). */
static bool
send_files_ok(const struct send_args *a)
{
	const char *what[] = {"certificate (--cert)", "key (--key)",
			      "trust anchors (--cacert)"};
	const char *path[] = {a->cert, a->key, a->cacert};
	FILE *f;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(path); i++) {
		if (path[i] == NULL)
			continue;
		if ((f = fopen(path[i], "r")) == NULL) {
			fprintf(stderr, "pzpgw send: %s %s: %s\n", what[i],
				path[i], strerror(errno));
			return false;
		}
		fclose(f);
	}
	return true;
}

static size_t
send_body_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct send_answer *a = arg;
	size_t len = size * nmemb;

	return buf_add(&a->body, ptr, len) == GW_OK ? len : 0;
}

/* Copy header value `name` of line ptr (len bytes) into out. */
static void
send_header_value(const char *ptr, size_t len, const char *name, char *out,
		  size_t n)
{
	size_t k = strlen(name), i, j;

	if (len <= k || strncasecmp(ptr, name, k) != 0 || ptr[k] != ':')
		return;
	for (i = k + 1; i < len && (ptr[i] == ' ' || ptr[i] == '\t'); i++)
		;
	for (j = len; j > i && (ptr[j - 1] == '\r' || ptr[j - 1] == '\n' ||
				ptr[j - 1] == ' ');
	     j--)
		;
	if (j - i >= n)
		return;
	memcpy(out, ptr + i, j - i);
	out[j - i] = '\0';
}

static size_t
send_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct send_answer *a = arg;
	size_t len = size * nmemb;

	send_header_value(ptr, len, "Location", a->location,
			  sizeof(a->location));
	send_header_value(ptr, len, "X-Message-Id", a->message_id,
			  sizeof(a->message_id));
	send_header_value(ptr, len, "X-Duplicate", a->duplicate,
			  sizeof(a->duplicate));
	return len;
}

/*
 * One request: POST body (when not NULL) or GET to url with the client
 * certificate. GW_OK with a->status filled, GW_IO when no answer came
 * (curl's message on stderr).
 */
static enum gw_err
send_request(const struct send_args *args, const char *url, const char *body,
	     size_t len, struct send_answer *a)
{
	struct curl_slist *h = NULL, *t;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode rc = CURLE_OK;
	CURL *c;
	static const char *const hdrs[] = {
	    "Content-Type: application/fhir+json",
	    "Accept: application/fhir+json",
	    "Expect:",
	};

	buf_init(&a->body, SEND_MAX_ANSWER);
	a->status = 0;
	a->location[0] = a->message_id[0] = a->duplicate[0] = '\0';
	if ((c = curl_easy_init()) == NULL)
		return GW_NOMEM;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(hdrs); i++) {
		if ((t = curl_slist_append(h, hdrs[i])) == NULL) {
			rc = CURLE_OUT_OF_MEMORY;
			break;
		}
		h = t;
	}
#define SET(opt, val)                                                          \
	do {                                                                   \
		if (rc == CURLE_OK)                                            \
			rc = curl_easy_setopt(c, opt, val);                    \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_HTTPHEADER, h);
	SET(CURLOPT_USERAGENT, "pzpgw-send/" PZPGW_VERSION);
	SET(CURLOPT_SSLCERT, args->cert);
	SET(CURLOPT_SSLKEY, args->key);
	if (args->cacert != NULL)
		SET(CURLOPT_CAINFO, args->cacert);
	SET(CURLOPT_WRITEFUNCTION, send_body_cb);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_HEADERFUNCTION, send_header_cb);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_ERRORBUFFER, errbuf);
	SET(CURLOPT_TIMEOUT, SEND_TIMEOUT_S);
	SET(CURLOPT_NOSIGNAL, 1L);
	if (body != NULL) {
		SET(CURLOPT_POST, 1L);
		SET(CURLOPT_POSTFIELDS, body);
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
#undef SET
	if (rc == CURLE_OK)
		rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
	else
		fprintf(stderr, "pzpgw send: %s: %s\n", url,
			errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return rc == CURLE_OK ? GW_OK : GW_IO;
}

/*
 * Findings about a message send wrapped, told in terms of the user's
 * file: "Bundle.entry[K].resource.REST" of the message is the K-th
 * resource taken from FILE (entry[0] is the MessageHeader send made).
 */
struct send_map {
	const char *file;
	const struct fj_node *root; /* FILE as parsed */
	bool bundle;		    /* FILE is a Bundle (else one resource) */
};

/* The input entry index and resource behind message entry k (k >= 1),
 * as message_wrap took them: the entries with a resource, in order. */
static const struct fj_node *
send_map_entry(const struct send_map *m, size_t k, size_t *index)
{
	const struct fj_node *entries, *e;
	size_t i = 0, n = 0;

	if (k == 0)
		return NULL;
	if (!m->bundle) {
		*index = 0;
		return k == 1 ? m->root : NULL;
	}
	entries = fj_get(m->root, "entry");
	for (e = entries != NULL && entries->type == FJ_ARRAY
		     ? entries->u.kids.first
		     : NULL;
	     e != NULL; e = e->next, i++) {
		if (fj_get(e, "resource") == NULL)
			continue;
		if (++n == k) {
			*index = i;
			return fj_get(e, "resource");
		}
	}
	return NULL;
}

/* The length of ".ofType(T)" at p (T into type), or 0. */
static size_t
send_oftype(const char *p, char *type, size_t n)
{
	const char *close;

	if (strncmp(p, ".ofType(", 8) != 0 ||
	    (close = strchr(p + 8, ')')) == NULL ||
	    (size_t)(close - (p + 8)) >= n)
		return 0;
	memcpy(type, p + 8, (size_t)(close - (p + 8)));
	type[close - (p + 8)] = '\0';
	return (size_t)(close - p) + 1;
}

/* Follow "a.b[2].c" (the plain steps of a FHIRPath, and value.ofType(T)
 * as valueT) from node as far as the input has it; the deepest node
 * reached. */
static const struct fj_node *
send_map_walk(const struct fj_node *node, const char *path)
{
	char name[128], type[64];
	const char *p = path;
	const struct fj_node *next;
	size_t k;

	while (*p == '.') {
		size_t n = 0;
		char *end;
		long idx = -1;

		p++;
		while (p[n] != '\0' && p[n] != '.' && p[n] != '[' &&
		       p[n] != '(' && n + 1 < sizeof(name))
			n++;
		if (n == 0 || p[n] == '(')
			break; /* where(), exists(): as far as here */
		memcpy(name, p, n);
		name[n] = '\0';
		p += n;
		/* A choice element: value.ofType(Quantity) is valueQuantity. */
		if ((k = send_oftype(p, type, sizeof(type))) > 0 &&
		    fj_get(node, name) == NULL &&
		    strlen(name) + strlen(type) < sizeof(name)) {
			type[0] = (char)((type[0] >= 'a' && type[0] <= 'z')
					     ? type[0] - 'a' + 'A'
					     : type[0]);
			memcpy(name + strlen(name), type, strlen(type) + 1);
			p += k;
		}
		if (*p == '[') {
			idx = strtol(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' || idx < 0)
				break;
			p = end + 1;
		}
		if ((next = fj_get(node, name)) == NULL)
			break;
		if (idx >= 0 && next->type == FJ_ARRAY)
			next = fj_at(next, (size_t)idx);
		if (next == NULL)
			break;
		node = next;
	}
	return node;
}

/* One issue of the answer, mapped onto the user's file when it is about
 * one of its resources. */
static void
send_print_issue(FILE *fp, const struct send_map *m, const char *sev,
		 const char *code, const char *expr, const char *diag)
{
	static const char prefix[] = "Bundle.entry[";
	const struct fj_node *res = NULL, *at;
	const char *rest = NULL, *walk = NULL, *rt;
	size_t index = 0;
	char *end;
	long k;

	if (m != NULL && expr != NULL &&
	    strncmp(expr, prefix, sizeof(prefix) - 1) == 0) {
		k = strtol(expr + sizeof(prefix) - 1, &end, 10);
		if (k > 0 && strncmp(end, "].resource", 10) == 0) {
			rest = end + 10;
			res = send_map_entry(m, (size_t)k, &index);
		}
	}
	/* "resource.ofType(Patient).x": the type is the resource's own. */
	if (res != NULL) {
		char type[64];
		size_t n = send_oftype(rest, type, sizeof(type));

		walk = rest + n;
	}
	if (res == NULL) {
		fprintf(fp, "  %s %s%s%s: %s\n", sev, code, expr ? " at " : "",
			expr ? expr : "", diag);
		return;
	}
	at = send_map_walk(res, walk);
	rt = fj_get_str(res, "resourceType");
	if (at->line > 0)
		fprintf(fp, "%s:%u:%u: ", m->file, at->line, at->col);
	else
		fprintf(fp, "%s: ", m->file);
	if (m->bundle)
		fprintf(fp, "%s %s at Bundle.entry[%zu].resource%s: %s\n", sev,
			code, index, rest, diag);
	else
		fprintf(fp, "%s %s at %s%s: %s\n", sev, code,
			rt != NULL ? rt : "(resource)", walk, diag);
}

/* Print the issues of an OperationOutcome answer to fp; with m, those
 * about the user's resources as FILE:LINE:COL in FILE's terms. */
static void
send_print_outcome(FILE *fp, const struct buf *body, const struct send_map *m)
{
	json_t *oo =
	    body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
	json_t *issues = json_object_get(oo, "issue"), *is;
	size_t i;

	if (!json_is_array(issues)) {
		if (body->len > 0)
			fprintf(fp, "%.*s\n",
				(int)(body->len > 2000 ? 2000 : body->len),
				body->data);
		json_decref(oo);
		return;
	}
	json_array_foreach(issues, i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));
		const char *code =
		    json_string_value(json_object_get(is, "code"));
		const char *diag =
		    json_string_value(json_object_get(is, "diagnostics"));
		const char *expr = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));

		send_print_issue(fp, m, sev ? sev : "?", code ? code : "?",
				 expr, diag ? diag : "");
	}
	json_decref(oo);
}

/* scheme://host[:port] of url into out. */
static void
send_origin(const char *url, char *out, size_t n)
{
	const char *p = strstr(url, "://");
	size_t len;

	p = p != NULL ? strchr(p + 3, '/') : NULL;
	len = p != NULL ? (size_t)(p - url) : strlen(url);
	if (len >= n)
		len = n - 1;
	memcpy(out, url, len);
	out[len] = '\0';
}

/* A receiver's part value by name from a status Parameters entry. */
static json_t *
send_part(json_t *param, const char *name)
{
	json_t *parts = json_object_get(param, "part"), *p;
	size_t i;

	json_array_foreach(parts, i, p)
	{
		const char *n = json_string_value(json_object_get(p, "name"));

		if (n != NULL && strcmp(n, name) == 0)
			return p;
	}
	return NULL;
}

/*
 * Poll the status URL until every receiver is delivered or dead, or
 * wait_s passed. Prints each receiver's final line. Returns CLI_OK when
 * all were delivered, CLI_FAIL otherwise, CLI_USAGE on I/O errors.
 */
static int
send_follow(const struct send_args *args, const char *url)
{
	uint64_t end = util_mono_ms() + (uint64_t)args->wait_s * 1000;
	struct send_answer a;
	struct timespec ts = {0, SEND_POLL_MS * 1000000L};

	for (;;) {
		json_t *doc, *params, *p;
		size_t i, nrecv = 0, settled = 0, delivered = 0;
		bool last = util_mono_ms() >= end;

		if (send_request(args, url, NULL, 0, &a) != GW_OK) {
			buf_cleanup(&a.body);
			return CLI_USAGE;
		}
		if (a.status != 200) {
			fprintf(stderr, "pzpgw send: status %s: HTTP %ld\n",
				url, a.status);
			send_print_outcome(stderr, &a.body, NULL);
			buf_cleanup(&a.body);
			return CLI_FAIL;
		}
		doc = json_loadb(a.body.data ? a.body.data : "", a.body.len, 0,
				 NULL);
		buf_cleanup(&a.body);
		params = json_object_get(doc, "parameter");
		json_array_foreach(params, i, p)
		{
			const char *n =
			    json_string_value(json_object_get(p, "name"));
			const char *st;

			if (n == NULL || strcmp(n, "receiver") != 0)
				continue;
			nrecv++;
			st = json_string_value(json_object_get(
			    send_part(p, "state"), "valueCode"));
			/* "stored": a receiver the gateway serves itself has
			 * the message once it was accepted. */
			if (st != NULL && (strcmp(st, "delivered") == 0 ||
					   strcmp(st, "stored") == 0))
				delivered++;
			if (st != NULL && (strcmp(st, "delivered") == 0 ||
					   strcmp(st, "stored") == 0 ||
					   strcmp(st, "dead") == 0))
				settled++;
		}
		if (settled == nrecv || last) {
			json_array_foreach(params, i, p)
			{
				const char *n = json_string_value(
				    json_object_get(p, "name"));
				const char *ura, *st, *err;
				json_int_t att;

				if (n == NULL || strcmp(n, "receiver") != 0)
					continue;
				ura = json_string_value(json_object_get(
				    send_part(p, "ura"), "valueString"));
				st = json_string_value(json_object_get(
				    send_part(p, "state"), "valueCode"));
				att = json_integer_value(json_object_get(
				    send_part(p, "attempts"), "valueInteger"));
				err = json_string_value(json_object_get(
				    send_part(p, "lastError"), "valueString"));
				if (st != NULL && strcmp(st, "stored") == 0) {
					const char *got =
					    json_string_value(json_object_get(
						send_part(p, "firstRetrieved"),
						"valueInstant"));

					printf("receiver %s stored (served by "
					       "this gateway) retrieved=%s\n",
					       ura ? ura : "?",
					       got ? got : "not-yet");
					continue;
				}
				printf("receiver %s %s attempts=%lld%s%s\n",
				       ura ? ura : "?", st ? st : "?",
				       (long long)att, err ? " error=" : "",
				       err ? err : "");
			}
			json_decref(doc);
			if (settled < nrecv)
				fprintf(stderr,
					"pzpgw send: not settled after %llds\n",
					args->wait_s);
			return delivered == nrecv ? CLI_OK : CLI_FAIL;
		}
		json_decref(doc);
		nanosleep(&ts, NULL);
	}
}

static int
send_parse(int argc, char **argv, struct send_args *a)
{
	int ch;

	memset(a, 0, sizeof(*a));
	a->event = MESSAGE_EVENT_SHARED;
	/* The environment moves the default, e.g. to a development
	 * gateway on another port (certs/dev-config.sh), for every send. */
	a->gateway = getenv("PZPGW_GATEWAY");
	if (a->gateway == NULL || a->gateway[0] == '\0')
		a->gateway = SEND_DEFAULT_URL;
	a->wait_s = SEND_WAIT_DEFAULT;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", send_opts, NULL)) != -1) {
		switch (ch) {
		case OPT_TO:
			if (!util_is_ura(optarg))
				return cli_usage(SEND_CMD,
						 "--to wants a URA (8 digits), "
						 "not '%s'",
						 optarg);
			if (a->nto == MESSAGE_MAX_RECEIVERS)
				return cli_usage(SEND_CMD,
						 "at most %d receivers",
						 MESSAGE_MAX_RECEIVERS);
			a->to[a->nto++] = optarg;
			break;
		case OPT_EVENT:
			if (strcmp(optarg, "shared") == 0)
				a->event = MESSAGE_EVENT_SHARED;
			else if (strcmp(optarg, "updated") == 0)
				a->event = MESSAGE_EVENT_UPDATED;
			else
				return cli_usage(
				    SEND_CMD, "--event is shared or updated");
			break;
		case OPT_GATEWAY:
			a->gateway = optarg;
			break;
		case OPT_CERT:
			a->cert = optarg;
			break;
		case OPT_KEY:
			a->key = optarg;
			break;
		case OPT_CACERT:
			a->cacert = optarg;
			break;
		case OPT_FROM:
			if (!util_is_ura(optarg))
				return cli_usage(
				    SEND_CMD, "--from wants a URA (8 digits)");
			a->from = optarg;
			break;
		case OPT_STATUS:
			a->status = true;
			break;
		case OPT_IDENTIFIER:
			if (!send_identifier_ok(optarg))
				return cli_usage(
				    SEND_CMD,
				    "--identifier wants a URI of at most %d "
				    "characters (urn:uuid:..., urn:oid:..., "
				    "https://...), not '%s'",
				    SEND_IDENT_MAX, optarg);
			a->identifier = optarg;
			break;
		case OPT_WAIT:
			if (util_parse_ll(optarg, 1, 86400, &a->wait_s) !=
			    GW_OK)
				return cli_usage(
				    SEND_CMD, "--wait wants seconds (1-86400)");
			break;
		default:
			return cli_usage(SEND_CMD, "unknown option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage(SEND_CMD, "one FILE (or -) is needed");
	a->file = argv[optind];
	if (strncmp(a->gateway, "https://", 8) != 0)
		return cli_usage(SEND_CMD, "--gateway wants an https:// URL");
	if (a->cert == NULL && a->key == NULL && send_exists(SEND_DEV_CERT) &&
	    send_exists(SEND_DEV_KEY)) {
		a->cert = SEND_DEV_CERT;
		a->key = SEND_DEV_KEY;
	}
	if (a->cacert == NULL && send_exists(SEND_DEV_CA))
		a->cacert = SEND_DEV_CA;
	if (a->cert == NULL || a->key == NULL)
		return cli_usage(SEND_CMD, "--cert and --key are needed (no "
					   "dev PKI in var/dev-pki)");
	return CLI_OK;
}

int
cli_send(int argc, char **argv)
{
	struct send_args args;
	struct send_answer ans = {0};
	struct fj_doc *in = NULL, *msg = NULL;
	struct fj_error perr;
	struct buf out;
	char *text = NULL, url[2048], origin[1024], status_url[2048];
	char sender[CONFIG_URA_LEN + 1], errbuf[256];
	char ident[SEND_IDENT_MAX + 1] = "";
	struct send_map map = {0};
	bool derived = false;
	const char *type;
	size_t len = 0;
	enum gw_err err;
	int rc;

	if ((rc = send_parse(argc, argv, &args)) != CLI_OK)
		return rc;
	if (!send_files_ok(&args))
		return CLI_USAGE;
	buf_init(&out, SEND_MAX_INPUT + SEND_MAX_ANSWER);
	rc = CLI_USAGE;
	if ((err = send_read(args.file, &text, &len)) != GW_OK) {
		fprintf(stderr, "pzpgw send: %s: %s\n", args.file,
			gw_strerror(err));
		goto done;
	}
	if (fj_parse(text, len, 0, &in, &perr) != GW_OK) {
		fprintf(stderr, "pzpgw send: %s:%u:%u: %s\n", args.file,
			perr.line, perr.col, perr.msg);
		rc = CLI_FAIL;
		goto done;
	}
	type = fj_get_str(in->root, "type");
	if (fj_str_eq(fj_get(in->root, "resourceType"), "Bundle") &&
	    type != NULL && strcmp(type, "message") == 0) {
		/* Already a message: sent as it is. */
		if (args.nto > 0 || args.identifier != NULL) {
			rc = cli_usage(SEND_CMD,
				       "FILE is already a message Bundle (with "
				       "its own receivers and identifier): "
				       "leave out --to and --identifier");
			goto done;
		}
		if (buf_add(&out, text, len) != GW_OK)
			goto done;
	} else {
		if (args.nto == 0) {
			rc = cli_usage(SEND_CMD, "--to URA is needed");
			goto done;
		}
		if (args.from != NULL) {
			util_strlcpy(sender, args.from, sizeof(sender));
		} else if (send_cert_ura(args.cert, sender) != GW_OK) {
			goto done;
		}
		/* Running the same send again (after a timeout, say) or
		 * with the same --identifier is recognised as the same
		 * message. */
		if (args.identifier != NULL) {
			util_strlcpy(ident, args.identifier, sizeof(ident));
		} else if (message_wrap_identifier(in->root, sender, args.to,
						   args.nto, args.event,
						   ident) == GW_OK) {
			derived = true;
		} else {
			fprintf(stderr, "pzpgw send: cannot derive the message "
					"identifier\n");
			goto done;
		}
		if ((err = message_wrap(in->root, sender, args.to, args.nto,
					args.event, ident, &msg, errbuf,
					sizeof(errbuf))) != GW_OK) {
			fprintf(stderr, "pzpgw send: %s: %s\n", args.file,
				err == GW_NOMEM ? "out of memory" : errbuf);
			rc = CLI_FAIL;
			goto done;
		}
		if (fj_dump(msg->root, 0, &out) != GW_OK)
			goto done;
		map.file = strcmp(args.file, "-") == 0 ? "stdin" : args.file;
		map.root = in->root;
		map.bundle =
		    fj_str_eq(fj_get(in->root, "resourceType"), "Bundle");
	}
	len = strlen(args.gateway);
	while (len > 0 && args.gateway[len - 1] == '/')
		len--;
	snprintf(url, sizeof(url), "%.*s/fhir/$process-message", (int)len,
		 args.gateway);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (send_request(&args, url, out.data, out.len, &ans) != GW_OK) {
		if (ident[0] != '\0')
			fprintf(stderr,
				"pzpgw send: no answer: the gateway may have "
				"the message (identifier %s); running the same "
				"send again is safe, it is not stored or "
				"delivered twice\n",
				ident);
		goto done;
	}
	printf("HTTP %ld\n", ans.status);
	if (ans.message_id[0] != '\0')
		printf("message %s\n", ans.message_id);
	if (ident[0] != '\0')
		printf("identifier %s\n", ident);
	status_url[0] = '\0';
	if (ans.location[0] != '\0') {
		if (ans.location[0] == '/') {
			send_origin(args.gateway, origin, sizeof(origin));
			snprintf(status_url, sizeof(status_url), "%s%s", origin,
				 ans.location);
		} else {
			util_strlcpy(status_url, ans.location,
				     sizeof(status_url));
		}
		printf("status %s\n", status_url);
	}
	if (strcmp(ans.duplicate, "true") == 0)
		printf("already accepted: sent before with this identifier "
		       "and content; not sent again\n");
	if (ans.status == 409 && ans.message_id[0] != '\0' && derived) {
		/* The identifier is a digest of the content, the sender and
		 * the receivers: the gateway has this very message already
		 * (sent before with another Bundle.timestamp). Nothing new
		 * was stored or will be delivered. */
		send_origin(args.gateway, origin, sizeof(origin));
		snprintf(status_url, sizeof(status_url),
			 "%s/fhir/$process-message/%s", origin, ans.message_id);
		printf("already accepted: the same content to the same "
		       "receivers was sent before; not sent again\n");
		printf("status %s\n", status_url);
	} else if (ans.status < 200 || ans.status >= 300) {
		send_print_outcome(stderr, &ans.body,
				   msg != NULL ? &map : NULL);
		if (ans.status == 409 && args.identifier != NULL)
			fprintf(stderr,
				"pzpgw send: identifier %s is message %s "
				"already: if this repeats that send, it was "
				"accepted then and is not sent again; for "
				"other content use another --identifier\n",
				args.identifier,
				ans.message_id[0] ? ans.message_id : "?");
		rc = CLI_FAIL;
		goto done;
	}
	fflush(stdout);
	rc = CLI_OK;
	if (args.status) {
		if (status_url[0] == '\0') {
			fprintf(stderr, "pzpgw send: no status URL in the "
					"answer\n");
			rc = CLI_FAIL;
		} else {
			rc = send_follow(&args, status_url);
		}
	}
done:
	buf_cleanup(&ans.body);
	buf_cleanup(&out);
	fj_doc_free(msg);
	fj_doc_free(in);
	free(text);
	curl_global_cleanup();
	return rc;
}
