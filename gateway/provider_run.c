/*
 * The FHIR work of one pull request, in a worker thread: the path and
 * parameters, the answer's format, reads, version reads, history and
 * searches over the caller's part of the store, searchset and history
 * Bundles with paging links, JSON or XML.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "fjson.h"
#include "outcome.h"
#include "policy.h"
#include "provider_impl.h"
#include "rules.h"
#include "search.h"
#include "transform.h"
#include "util.h"
#include "xmlfhir.h"

#define BSN_SYSTEM "http://fhir.nl/fhir/NamingSystem/bsn"
/* Most versions one instance history lists. */
#define HISTORY_INSTANCE_MAX 1000
/* Most stored resources one search considers (before matching). */
#define PROVIDER_CANDIDATES_MAX 10000
/* Most _include targets of one page. */
#define INCLUDE_MAX 1024

enum fmt { FMT_JSON, FMT_XML, FMT_NONE };

/* A stored version with its parsed form (kept while it may be sent). */
struct hit {
	struct store_res *v; /* borrowed from the store_res array */
	struct fj_doc *doc;  /* owned */
};

/* A resource resolved for a chained parameter, kept for the request. */
struct resolved {
	struct resolved *next;
	const struct fj_doc *doc; /* NULL: none, or not visible */
	struct fj_doc *own;	  /* doc when not in the worker's cache */
	char key[STORE_TYPE_MAX + STORE_RID_MAX + 2];
};

/* Resolved resources a worker keeps between jobs. */
#define CACHE_SLOTS 64

/*
 * The set of IG searches for one patient resolves the same Patient in
 * each search (patient.identifier); that lookup and parse were about 8%
 * of a set's CPU time. What find_current returns is fixed by the scope,
 * the reference and the snapshot, as long as retention removes nothing
 * (store_res_generation): an entry holds for exactly those.
 */
struct cache_slot {
	bool full;
	char ura[STORE_URA_MAX + 1];
	char key[STORE_TYPE_MAX + STORE_RID_MAX + 2];
	int64_t snapshot;
	uint64_t gen;
	uint64_t job;	    /* the job that last used it: kept while it runs */
	struct fj_doc *doc; /* owned; NULL: nothing there at the snapshot */
	struct store_res v; /* the version doc is (json NULL) */
};

struct provider_cache {
	struct cache_slot slot[CACHE_SLOTS];
	uint64_t job;  /* the running job's number (from 1) */
	unsigned next; /* where the search for a slot to reuse starts */
};

struct run {
	struct provider_job *j;
	struct store_reader *r;
	struct provider_cache *cache; /* NULL: none, or not usable now */
	uint64_t gen;		      /* store_res_generation */
	enum fmt fmt;
	bool fmt_param;	    /* chosen by _format: kept in links */
	int64_t snapshot;   /* what the request sees */
	struct fj_doc *out; /* the answer */
	struct resolved *resolved;
	/* A searchset in JSON R4: its entries as text (splice_entry),
	   outside out; NULL otherwise. */
	struct buf *raw;
	size_t nraw; /* entries in raw */
};

/* ---- what a peer sees ---- */

/*
 * The social-domain preset (`view = social`): municipal and Wmo care
 * workers see the patient, the contact persons, the specific care
 * wishes, the preferred place of death and the sense of purpose, under
 * both PZP R4 canonical bases; treatment directives, the medical policy
 * goal, devices and the rest only when `resources` names them.
 */
static const char *const social_view[] = {
    "Patient",
    "RelatedPerson",
    "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
    "ACP-SpecificCareWishes",
    "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
    "ACP-PreferredPlaceOfDeath",
    "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/ACP-SenseOfPurpose",
    "https://fhir.iknl.nl/fhir/StructureDefinition/ACP-SpecificCareWishes",
    "https://fhir.iknl.nl/fhir/StructureDefinition/ACP-PreferredPlaceOfDeath",
    "https://fhir.iknl.nl/fhir/StructureDefinition/ACP-SenseOfPurpose",
};

/* Whether item (n bytes: a type name or a profile URL) admits the
 * resource; a profile matches with or without a "|version". */
static bool
item_allows(const char *item, size_t n, const char *type,
	    const char *const *profiles, size_t np)
{
	if (strncmp(item, "http://", 7) != 0 &&
	    strncmp(item, "https://", 8) != 0)
		return strlen(type) == n && strncmp(item, type, n) == 0;
	for (size_t i = 0; i < np; i++) {
		size_t len = strcspn(profiles[i], "|");

		if (len == n && strncmp(profiles[i], item, n) == 0)
			return true;
	}
	return false;
}

bool
provider_view_allows(const char *resources, const char *view, const char *type,
		     const char *const *profiles, size_t n)
{
	bool social = view != NULL && strcmp(view, "social") == 0;
	const char *s = resources;
	size_t len;

	if (resources == NULL && !social)
		return true;
	if (social)
		for (size_t i = 0; i < UTIL_ARRAY_LEN(social_view); i++)
			if (item_allows(social_view[i], strlen(social_view[i]),
					type, profiles, n))
				return true;
	while (s != NULL && *s != '\0') {
		if ((len = strcspn(s, ", \t")) == 0) {
			s++;
			continue;
		}
		if (item_allows(s, len, type, profiles, n))
			return true;
		s += len;
	}
	return false;
}

/* ---- small helpers ---- */

static void
fmt_instant(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* RFC 9110 IMF-fixdate, independent of the locale. */
static void
fmt_http_date(int64_t ms, char *out, size_t n)
{
	static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed",
					 "Thu", "Fri", "Sat"};
	static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr",
					 "May", "Jun", "Jul", "Aug",
					 "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday],
		 tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
		 tm.tm_min, tm.tm_sec);
}

/* A FHIR id: [A-Za-z0-9-.]{1,64}. */
static bool
is_fhir_id(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '.')
			return false;
	return n >= 1 && n <= 64;
}

/* Decode a form value (%XX and '+') into out; false when malformed or
 * too long. */
static bool
form_decode(const char *s, size_t len, char *out, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)s[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return false;
			hi = util_hexval(s[i + 1]);
			lo = util_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		}
		if (k + 1 >= n || c == 0)
			return false;
		out[k++] = (char)c;
	}
	out[k] = '\0';
	return true;
}

/*
 * Take the parameters the gateway handles itself out of form (in place):
 * _format, _pretty (ignored: answers are compact) and _page (the paging
 * state of a link). The values land in fmt and page ("" when absent).
 * False when one of them is malformed or given twice.
 */
static bool
take_control(char *form, char *fmt, size_t fmtn, char *page, size_t pagen)
{
	char *rd = form, *wr = form;
	bool ok = true, seen_fmt = false, seen_page = false;

	fmt[0] = page[0] = '\0';
	while (*rd != '\0') {
		size_t len = strcspn(rd, "&");
		size_t klen = strcspn(rd, "=&");
		const char *val = rd + klen + (rd[klen] == '=' ? 1 : 0);
		size_t vlen = len - (size_t)(val - rd);

		if (klen == 7 && strncmp(rd, "_format", 7) == 0) {
			ok = ok && !seen_fmt &&
			     form_decode(val, vlen, fmt, fmtn);
			seen_fmt = true;
		} else if (klen == 5 && strncmp(rd, "_page", 5) == 0) {
			ok = ok && !seen_page &&
			     form_decode(val, vlen, page, pagen);
			seen_page = true;
		} else if (!(klen == 7 && strncmp(rd, "_pretty", 7) == 0) &&
			   len > 0) {
			if (wr != form)
				*wr++ = '&';
			memmove(wr, rd, len);
			wr += len;
		}
		rd += len;
		if (*rd == '&')
			rd++;
	}
	*wr = '\0';
	return ok;
}

/* The format one media type (or _format value) names. */
static enum fmt
fmt_of(const char *s, size_t n)
{
	static const struct {
		const char *name;
		enum fmt fmt;
	} names[] = {
	    {"application/fhir+json", FMT_JSON},
	    {"application/fhir json", FMT_JSON}, /* '+' decoded as ' ' */
	    {"application/json", FMT_JSON},
	    {"json", FMT_JSON},
	    {"application/*", FMT_JSON},
	    {"*/*", FMT_JSON},
	    {"application/fhir+xml", FMT_XML},
	    {"application/fhir xml", FMT_XML},
	    {"application/xml", FMT_XML},
	    {"text/xml", FMT_XML},
	    {"xml", FMT_XML},
	};

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(names); i++)
		if (strlen(names[i].name) == n &&
		    strncasecmp(names[i].name, s, n) == 0)
			return names[i].fmt;
	return FMT_NONE;
}

/* The format an Accept header asks for: the acceptable type of highest
 * quality that the gateway writes, the first on a tie; JSON without
 * Accept; FMT_NONE when nothing acceptable is offered. */
static enum fmt
fmt_accept(const char *accept)
{
	enum fmt best = FMT_NONE;
	double bestq = 0.0;
	const char *s = accept;

	if (*accept == '\0')
		return FMT_JSON;
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		size_t tlen = strcspn(s, ";,");
		const char *q = s + tlen;
		double qv = 1.0;
		enum fmt f = fmt_of(s, tlen);

		while (q < s + len && *q == ';') {
			q++;
			while (*q == ' ')
				q++;
			if (strncmp(q, "q=", 2) == 0)
				qv = strtod(q + 2, NULL);
			q += strcspn(q, ";,");
		}
		if (f != FMT_NONE && qv > bestq) {
			best = f;
			bestq = qv;
		}
		s += len;
		if (*s == ',')
			s++;
	}
	return best;
}

/* ---- answers ---- */

/*
 * root converted to STU3 (xf_convert) in a new document *out (caller
 * frees), for a client that asked for STU3. An OperationOutcome is the
 * same in both versions and stays R4 (*out NULL, GW_OK). The conversion
 * is deterministic, so the same stored data gives the same bytes; its
 * losses are not reported to the client (the stored R4 is the record).
 * *out shares root's text (fj_copy_shared): it must be freed before
 * root's document.
 */
static enum gw_err
to_stu3(const struct fj_node *root, struct fj_doc **out)
{
	struct fj_doc *d;
	enum gw_err rc;

	*out = NULL;
	if (fj_str_eq(fj_get(root, "resourceType"), "OperationOutcome"))
		return GW_OK;
	if ((d = fj_doc_new()) == NULL ||
	    (d->root = fj_copy_shared(d, root)) == NULL) {
		fj_doc_free(d);
		return GW_NOMEM;
	}
	if ((rc = xf_convert(d, RULES_R4, RULES_STU3, NULL)) != GW_OK) {
		fj_doc_free(d);
		return rc;
	}
	*out = d;
	return GW_OK;
}

static void answer_outcome(struct run *rn, int status, json_t *oo);

/*
 * The 406 for a client that asked for STU3 when root has no STU3 form
 * (xf_convert refused): the conversion runs again with a report, only on
 * this path, to name what STU3 cannot say and where.
 */
static void
answer_no_stu3(struct run *rn, const struct fj_node *root)
{
	struct fj_doc *d = fj_doc_new();
	json_t *rep = fhir_outcome_new(), *issue = NULL, *oo;
	const char *why = NULL, *expr = NULL;

	if (d != NULL && rep != NULL && (d->root = fj_copy(d, root)) != NULL &&
	    xf_convert(d, RULES_R4, RULES_STU3, rep) != GW_OK) {
		size_t i;
		json_t *it;

		json_array_foreach(json_object_get(rep, "issue"), i, it)
		{
			const char *sev =
			    json_string_value(json_object_get(it, "severity"));

			if (sev != NULL && strcmp(sev, "error") == 0)
				issue = it;
		}
	}
	why = json_string_value(json_object_get(issue, "diagnostics"));
	expr = json_string_value(
	    json_array_get(json_object_get(issue, "expression"), 0));
	oo = fhir_outcome_one(FHIR_ERROR, "not-supported", expr,
			      "this answer has no FHIR STU3 form (%s); ask for "
			      "R4 (Accept: application/fhir+json; "
			      "fhirVersion=4.0)",
			      why != NULL ? why : "the conversion refused it");
	json_decref(rep);
	fj_doc_free(d);
	rn->j->etag[0] = rn->j->last_modified[0] = '\0';
	answer_outcome(rn, 406, oo);
}

/* Serialise root as the answer with status (in STU3 when the client asked
 * for it). */
static void
answer_root(struct run *rn, int status, const struct fj_node *root)
{
	struct provider_job *j = rn->j;
	const struct rules_set *rules = j->prov->r4;
	struct fj_doc *conv = NULL;
	char err[256];
	enum gw_err rc = GW_OK;

	j->status = status;
	buf_cleanup(&j->out);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	j->xml = rn->fmt == FMT_XML;
	j->out_stu3 = false;
	if (j->stu3) {
		rc = to_stu3(root, &conv);
		if (rc == GW_REJECT) {
			answer_no_stu3(rn, root);
			return;
		}
		if (conv != NULL) {
			root = conv->root;
			j->out_stu3 = true;
			rules = j->prov->stu3;
		}
	}
	if (rc == GW_OK && j->xml)
		rc = rules != NULL ? xmlfhir_from_fjson(root, rules, &j->out,
							err, sizeof(err))
				   : GW_INVALID;
	else if (rc == GW_OK)
		rc = fj_dump(root, 0, &j->out);
	fj_doc_free(conv);
	if (rc == GW_OK)
		return;
	j->out_stu3 = false;
	/* A resource the writer cannot place: said in JSON. */
	buf_cleanup(&j->out);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	j->xml = false;
	j->status = rc == GW_TOOBIG ? 413 : 500;
	j->etag[0] = j->last_modified[0] = '\0';
	buf_printf(&j->out,
		   "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
		   "\"severity\":\"error\",\"code\":\"%s\",\"diagnostics\":"
		   "\"the answer could not be written (%s)\"}]}",
		   rc == GW_TOOBIG ? "too-costly" : "exception",
		   rc == GW_TOOBIG ? "too large: ask for a smaller _count"
				   : "format");
}

/*
 * Answer the searchset b (200) whose entries are the text in rn->raw:
 * b as JSON with "entry" added last, as fj_set would have put it (the
 * same bytes as answer_root with the entries in b).
 */
static void
answer_raw(struct run *rn, const struct fj_node *b)
{
	struct provider_job *j = rn->j;
	enum gw_err rc;

	j->status = 200;
	buf_cleanup(&j->out);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	j->xml = false;
	j->out_stu3 = false;
	rc = fj_dump(b, 0, &j->out);
	if (rc == GW_OK && rn->nraw > 0) {
		/* Reopen the object fj_dump closed. */
		j->out.data[--j->out.len] = '\0';
		rc = buf_adds(&j->out, ",\"entry\":[");
		if (rc == GW_OK)
			rc = buf_add(&j->out, rn->raw->data, rn->raw->len);
		if (rc == GW_OK)
			rc = buf_adds(&j->out, "]}");
	}
	if (rc == GW_OK)
		return;
	buf_cleanup(&j->out);
	buf_init(&j->out, PROVIDER_OUT_MAX);
	j->status = rc == GW_TOOBIG ? 413 : 500;
	buf_printf(&j->out,
		   "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
		   "\"severity\":\"error\",\"code\":\"%s\",\"diagnostics\":"
		   "\"the answer could not be written (%s)\"}]}",
		   rc == GW_TOOBIG ? "too-costly" : "exception",
		   rc == GW_TOOBIG ? "too large: ask for a smaller _count"
				   : "format");
}

/* Answer the OperationOutcome oo (taken). */
static void
answer_outcome(struct run *rn, int status, json_t *oo)
{
	struct fj_doc *d = fj_doc_new();
	struct fj_node *root =
	    d != NULL && oo != NULL ? fj_from_jansson(d, oo) : NULL;

	if (root != NULL) {
		answer_root(rn, status, root);
	} else {
		rn->j->status = 503;
		rn->j->retry_after = policy_answer(POLICY_BUSY)->retry_after;
	}
	fj_doc_free(d);
	json_decref(oo);
}

static void answer_error(struct run *rn, int status, const char *code,
			 const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
answer_error(struct run *rn, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	answer_outcome(rn, status,
		       fhir_outcome_one(FHIR_ERROR, code, NULL, "%s", msg));
}

/* A failure of the store: 503 with Retry-After (temporary) or 500. */
static void
answer_store_error(struct run *rn, enum gw_err err)
{
	if (gw_err_is_temporary(err)) {
		rn->j->retry_after = policy_answer(POLICY_BUSY)->retry_after;
		answer_error(rn, 503, "transient",
			     "the store is busy (%s); retry later",
			     gw_strerror(err));
	} else {
		answer_error(rn, 500, "exception", "the store failed (%s)",
			     gw_strerror(err));
	}
}

static void
answer_not_found(struct run *rn, const char *type, const char *id)
{
	/* The same words whether the resource was sent to another
	 * organisation or never existed. */
	answer_error(rn, 404, "not-found", "%s/%s is not known", type, id);
}

/* ---- building ---- */

static bool
set_str(struct fj_doc *d, struct fj_node *obj, const char *key, const char *val)
{
	struct fj_node *n = fj_new_string(d, val);

	return n != NULL && fj_set(d, obj, key, n) == GW_OK;
}

static bool
set_num(struct fj_doc *d, struct fj_node *obj, const char *key, int64_t v)
{
	char t[32];
	struct fj_node *n;

	snprintf(t, sizeof(t), "%" PRId64, v);
	n = fj_new_number(d, t);
	return n != NULL && fj_set(d, obj, key, n) == GW_OK;
}

/* The meta.profile values of a stored resource (at most max). */
static size_t
profiles_of(const struct fj_node *res, const char **out, size_t max)
{
	const struct fj_node *prof = fj_get(fj_get(res, "meta"), "profile");
	size_t n = 0;

	if (prof == NULL || prof->type != FJ_ARRAY)
		return 0;
	for (const struct fj_node *p = prof->u.kids.first; p && n < max;
	     p = p->next)
		if (p->type == FJ_STRING)
			out[n++] = p->u.str.s;
	return n;
}

/* Whether the caller's view admits res (parsed) of type. */
static bool
visible(const struct run *rn, const char *type, const struct fj_node *res)
{
	const char *prof[16];
	size_t n;

	if (rn->j->resources == NULL &&
	    (rn->j->view == NULL || strcmp(rn->j->view, "full") == 0))
		return true;
	n = profiles_of(res, prof, UTIL_ARRAY_LEN(prof));
	return provider_view_allows(rn->j->resources, rn->j->view, type, prof,
				    n);
}

/* v in the answer document: its logical id, meta.versionId and
 * meta.lastUpdated set from the store. NULL without memory. */
static struct fj_node *
served(struct run *rn, const struct store_res *v, const struct fj_doc *doc)
{
	struct fj_doc *d = rn->out;
	struct fj_node *res = fj_copy(d, doc->root), *meta, *nm;
	char t[64], vid[24];

	if (res == NULL || res->type != FJ_OBJECT)
		return NULL;
	if (!set_str(d, res, "id", v->id))
		return NULL;
	meta = fj_get(res, "meta");
	if (meta == NULL || meta->type != FJ_OBJECT) {
		/* versionId and lastUpdated first, the rest after. */
		if ((nm = fj_new_object(d)) == NULL ||
		    fj_set(d, res, "meta", nm) != GW_OK)
			return NULL;
		meta = nm;
	}
	snprintf(vid, sizeof(vid), "%" PRId64, v->vid);
	fmt_instant(v->updated, t, sizeof(t));
	if (!set_str(d, meta, "versionId", vid) ||
	    !set_str(d, meta, "lastUpdated", t))
		return NULL;
	return res;
}

/* Parse a stored version; NULL when it does not parse (never expected:
 * the gateway wrote it) or without memory. */
static struct fj_doc *
parse_version(const struct store_res *v)
{
	struct fj_doc *doc = NULL;

	if (fj_parse(v->json, v->json_len, 0, &doc, NULL) != GW_OK)
		return NULL;
	if (doc->root == NULL || doc->root->type != FJ_OBJECT) {
		fj_doc_free(doc);
		return NULL;
	}
	return doc;
}

/* The page token "snapshot.pos.mac" binding the caller, the kind of
 * listing and its canonical parameters. */
static void
page_mac(const struct run *rn, const char *kind, const char *canon,
	 int64_t snap, int64_t pos, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char msg[64];
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t outl = 0;

	params[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	snprintf(msg, sizeof(msg), "\n%" PRId64 "\n%" PRId64, snap, pos);
	if (ctx != NULL &&
	    EVP_MAC_init(ctx, rn->j->prov->link_key,
			 sizeof(rn->j->prov->link_key), params) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)rn->j->ura,
			   strlen(rn->j->ura) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)kind,
			   strlen(kind) + 1) == 1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)canon, strlen(canon)) ==
		1 &&
	    EVP_MAC_update(ctx, (const unsigned char *)msg, strlen(msg)) == 1 &&
	    EVP_MAC_final(ctx, md, &outl, sizeof(md)) == 1)
		mdlen = (unsigned int)outl;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	if (mdlen < 16) {
		/* No MAC: a token that never verifies. */
		memset(out, '0', 32);
		out[32] = '\0';
		return;
	}
	util_hex(md, 16, out);
}

/* Check a page token; false when forged, altered or from another
 * listing (or an earlier run of the gateway). */
static bool
page_parse(const struct run *rn, const char *kind, const char *canon,
	   const char *tok, int64_t *snap, int64_t *pos)
{
	char mac[33];
	long long a, b;
	int used = 0;

	if (sscanf(tok, "%lld.%lld.%n", &a, &b, &used) != 2 || used <= 0 ||
	    a < 0 || b < 0 || strlen(tok + used) != 32)
		return false;
	page_mac(rn, kind, canon, a, b, mac);
	if (CRYPTO_memcmp(mac, tok + used, 32) != 0)
		return false;
	*snap = a;
	*pos = b;
	return true;
}

/* Append one link {relation, url} to links. */
static bool
add_link(struct run *rn, struct fj_node *links, const char *rel,
	 const char *url)
{
	struct fj_node *l = fj_new_object(rn->out);

	if (l == NULL || !set_str(rn->out, l, "relation", rel) ||
	    !set_str(rn->out, l, "url", url))
		return false;
	fj_append(links, l);
	return true;
}

/* The URL of a listing at pos (pos < 0: without paging state). */
static bool
link_url(struct run *rn, const char *path, const char *kind, const char *canon,
	 int64_t pos, struct buf *url)
{
	char tok[96], mac[33];
	bool any = canon[0] != '\0';

	url->len = 0;
	if (url->data != NULL)
		url->data[0] = '\0';
	if (buf_printf(url, "%s%s%s%s", rn->j->base, path, any ? "?" : "",
		       canon) != GW_OK)
		return false;
	if (rn->fmt_param && rn->fmt == FMT_XML) {
		if (buf_printf(url, "%s_format=xml", any ? "&" : "?") != GW_OK)
			return false;
		any = true;
	}
	if (pos < 0)
		return true;
	page_mac(rn, kind, canon, rn->snapshot, pos, mac);
	snprintf(tok, sizeof(tok), "%" PRId64 ".%" PRId64 ".%s", rn->snapshot,
		 pos, mac);
	return buf_printf(url, "%s_page=%s", any ? "&" : "?", tok) == GW_OK;
}

/* A new Bundle of type in the answer document, with links and entries
 * arrays returned for filling. */
static struct fj_node *
new_bundle(struct run *rn, const char *type, struct fj_node **links,
	   struct fj_node **entries)
{
	struct fj_doc *d = rn->out;
	struct fj_node *b = fj_new_object(d), *meta = fj_new_object(d);
	char id[40], t[64];

	util_uuid(id);
	fmt_instant(util_wall_ms(), t, sizeof(t));
	*links = fj_new_array(d);
	*entries = fj_new_array(d);
	if (b == NULL || meta == NULL || *links == NULL || *entries == NULL ||
	    !set_str(d, b, "resourceType", "Bundle") ||
	    !set_str(d, b, "id", id) || !set_str(d, meta, "lastUpdated", t) ||
	    fj_set(d, b, "meta", meta) != GW_OK || !set_str(d, b, "type", type))
		return NULL;
	return b;
}

/* Bundle.entry = entries, left out when empty (FHIR has no empty
 * arrays). */
static bool
set_entries(struct run *rn, struct fj_node *b, struct fj_node *entries)
{
	return entries->u.kids.count == 0 ||
	       fj_set(rn->out, b, "entry", entries) == GW_OK;
}

/* An entry for version v (parsed as doc): fullUrl, resource, and the
 * search mode (searchset) or request/response (history). */
static bool
add_entry(struct run *rn, struct fj_node *entries, const struct store_res *v,
	  const struct fj_doc *doc, const char *mode)
{
	struct fj_doc *d = rn->out;
	struct fj_node *e = fj_new_object(d), *res = served(rn, v, doc), *x;
	char url[STORE_TYPE_MAX + STORE_RID_MAX + 400];

	if (e == NULL || res == NULL)
		return false;
	snprintf(url, sizeof(url), "%s/%s/%s", rn->j->base, v->type, v->id);
	if (!set_str(d, e, "fullUrl", url) ||
	    fj_set(d, e, "resource", res) != GW_OK)
		return false;
	if (mode != NULL) {
		if ((x = fj_new_object(d)) == NULL ||
		    !set_str(d, x, "mode", mode) ||
		    fj_set(d, e, "search", x) != GW_OK)
			return false;
	} else {
		char rel[STORE_TYPE_MAX + STORE_RID_MAX + 2], etag[32], t[64];

		snprintf(rel, sizeof(rel), "%s/%s", v->type, v->id);
		snprintf(etag, sizeof(etag), "W/\"%" PRId64 "\"", v->vid);
		fmt_instant(v->updated, t, sizeof(t));
		if ((x = fj_new_object(d)) == NULL ||
		    !set_str(d, x, "method", v->vid == 1 ? "POST" : "PUT") ||
		    !set_str(d, x, "url", v->vid == 1 ? v->type : rel) ||
		    fj_set(d, e, "request", x) != GW_OK)
			return false;
		if ((x = fj_new_object(d)) == NULL ||
		    !set_str(d, x, "status", v->vid == 1 ? "201" : "200") ||
		    !set_str(d, x, "etag", etag) ||
		    !set_str(d, x, "lastModified", t) ||
		    fj_set(d, e, "response", x) != GW_OK)
			return false;
	}
	if (rn->raw != NULL)
		return (rn->nraw++ == 0 || buf_addc(rn->raw, ',') == GW_OK) &&
		       fj_dump(e, 0, rn->raw) == GW_OK;
	fj_append(entries, e);
	return true;
}

/*
 * The end of the JSON value at s[i] (compact or not; the store holds what
 * fj_dump wrote), or len when it runs past len.
 */
static size_t
json_skip(const char *s, size_t len, size_t i)
{
	int depth = 0;

	do {
		while (i < len && (s[i] == ' ' || s[i] == '\n' ||
				   s[i] == '\r' || s[i] == '\t'))
			i++;
		if (i >= len)
			return len;
		if (s[i] == '"') {
			const char *q;

			/* The closing quote: one with an even run of
			   backslashes before it. */
			for (i++; (q = memchr(s + i, '"', len - i)) != NULL;) {
				size_t k = (size_t)(q - s), b = 0;

				while (k - b > i && s[k - b - 1] == '\\')
					b++;
				i = k + 1;
				if (b % 2 == 0)
					break;
			}
			if (q == NULL)
				return len;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
			i++;
		} else if (s[i] == '}' || s[i] == ']') {
			depth--;
			i++;
		} else if (s[i] == ',' || s[i] == ':') {
			i++;
		} else {
			/* A number, true, false or null. */
			while (i < len && strchr(",:]} \n\r\t", s[i]) == NULL)
				i++;
		}
	} while (depth > 0 && i < len);
	return i > len ? len : i;
}

/* The members of the JSON object at s[i] ('{'): for each, its key (from
 * the byte after the opening quote, klen bytes, escapes left as they
 * are) and where its value starts and ends, until fn returns false;
 * returns the position of the object's closing '}', or where the member
 * fn stopped at ends, or len when it is not an object or is cut. */
struct json_member {
	const char *key;
	size_t klen, vs, ve;
};

static size_t
json_members(const char *s, size_t len, size_t i,
	     bool (*fn)(const struct json_member *m, void *arg), void *arg)
{
	struct json_member m;

	if (i >= len || s[i] != '{')
		return len;
	for (i++; i < len;) {
		while (i < len && strchr(" \n\r\t,", s[i]) != NULL)
			i++;
		if (i < len && s[i] == '}')
			return i;
		if (i >= len || s[i] != '"')
			return len;
		m.key = s + i + 1;
		i = json_skip(s, len, i);
		m.klen = (size_t)(s + i - 1 - m.key);
		while (i < len && strchr(" \n\r\t", s[i]) != NULL)
			i++;
		if (i >= len || s[i] != ':')
			return len;
		for (i++; i < len && strchr(" \n\r\t", s[i]) != NULL; i++)
			;
		m.vs = i;
		m.ve = i = json_skip(s, len, i);
		if (m.ve >= len)
			return len;
		if (!fn(&m, arg))
			return i;
	}
	return len;
}

/* Where a stored resource's id value and meta object are. */
struct splice_at {
	size_t id_vs, id_ve, meta_vs, meta_ve;
	bool id, meta, clash; /* clash: meta has versionId/lastUpdated */
};

static bool
key_is(const struct json_member *m, const char *k)
{
	return m->klen == strlen(k) && memcmp(m->key, k, m->klen) == 0;
}

static bool
meta_member(const struct json_member *m, void *arg)
{
	struct splice_at *at = arg;

	at->clash |= key_is(m, "versionId") || key_is(m, "lastUpdated");
	return true;
}

static bool
top_member(const struct json_member *m, void *arg)
{
	struct splice_at *at = arg;

	if (key_is(m, "id")) {
		at->id = true;
		at->id_vs = m->vs;
		at->id_ve = m->ve;
	} else if (key_is(m, "meta")) {
		at->meta = true;
		at->meta_vs = m->vs;
		at->meta_ve = m->ve;
	}
	/* Both found (the first three members): the rest is copied. */
	return !at->id || !at->meta;
}

/*
 * A searchset entry for version v from its stored JSON (written by
 * fj_dump, so parse and dump would give it back byte for byte): the
 * logical id and meta.versionId/lastUpdated spliced into the text, the
 * same bytes add_entry's served() and fj_dump give, without copying and
 * dumping the resource's nodes (about 10% of a search's CPU). False
 * when v has a form this does not handle (no id or meta object, meta
 * with a versionId or lastUpdated of its own): add_entry then.
 */
static bool
splice_entry(struct run *rn, const struct store_res *v, const char *mode,
	     bool *ok)
{
	const char *s = v->json;
	size_t len = v->json_len, stop, mclose;
	struct splice_at at = {0};
	struct buf *o = rn->raw;
	char t[64];
	enum gw_err err;

	*ok = false;
	if (s == NULL || !is_fhir_id(v->id))
		return false;
	/* fj_dump wrote it: one object, nothing after. */
	if (len < 2 || s[len - 1] != '}')
		return false;
	stop = json_members(s, len, 0, top_member, &at);
	if (stop >= len || !at.id || !at.meta || s[at.id_vs] != '"' ||
	    at.id_vs > at.meta_vs)
		return false;
	mclose = json_members(s, len, at.meta_vs, meta_member, &at);
	if (mclose >= len || s[mclose] != '}' || at.clash ||
	    mclose + 1 != at.meta_ve)
		return false;
	fmt_instant(v->updated, t, sizeof(t));
	err = rn->nraw > 0 ? buf_addc(o, ',') : GW_OK;
	if (err == GW_OK)
		err = buf_adds(o, "{\"fullUrl\":\"");
	if (err == GW_OK)
		err = buf_adds(o, rn->j->base);
	if (err == GW_OK)
		err = buf_addc(o, '/');
	if (err == GW_OK)
		err = buf_adds(o, v->type);
	if (err == GW_OK)
		err = buf_addc(o, '/');
	if (err == GW_OK)
		err = buf_adds(o, v->id);
	if (err == GW_OK)
		err = buf_adds(o, "\",\"resource\":");
	/* Up to the id's value, the id, on to the end of meta, the two
	   members, the rest. */
	if (err == GW_OK)
		err = buf_add(o, s, at.id_vs);
	if (err == GW_OK)
		err = buf_addc(o, '"');
	if (err == GW_OK)
		err = buf_adds(o, v->id);
	if (err == GW_OK)
		err = buf_addc(o, '"');
	if (err == GW_OK)
		err = buf_add(o, s + at.id_ve, mclose - at.id_ve);
	if (err == GW_OK)
		err = buf_printf(
		    o, "%s\"versionId\":\"%" PRId64 "\",\"lastUpdated\":\"%s\"",
		    s[mclose - 1] == '{' ? "" : ",", v->vid, t);
	if (err == GW_OK)
		err = buf_add(o, s + mclose, len - mclose);
	if (err == GW_OK)
		err = buf_adds(o, ",\"search\":{\"mode\":\"");
	if (err == GW_OK)
		err = buf_adds(o, mode);
	if (err == GW_OK)
		err = buf_adds(o, "\"}}");
	rn->nraw++;
	*ok = err == GW_OK;
	return true;
}

/* ---- lookups ---- */

/* The current version of type/id in the caller's scope at the snapshot
 * (hidden ones too when hidden). *out NULL when there is none. */
static enum gw_err
find_current(struct run *rn, const char *type, const char *id, bool hidden,
	     struct store_res **out, size_t *n)
{
	struct store_res_query q = {
	    .receiver = rn->j->ura,
	    .bare = true,
	    .type = type,
	    .id = id,
	    .snapshot = rn->snapshot,
	    .hidden = hidden,
	};

	return store_res_find(rn->r, &q, out, n);
}

struct provider_cache *
provider_cache_new(void)
{
	return calloc(1, sizeof(struct provider_cache));
}

void
provider_cache_free(struct provider_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CACHE_SLOTS; i++)
		fj_doc_free(c->slot[i].doc);
	free(c);
}

/* The worker's entry for key in the caller's scope at the run's
 * snapshot, or NULL. */
static struct cache_slot *
cache_find(struct run *rn, const char *key)
{
	struct provider_cache *c = rn->cache;

	for (size_t i = 0; c != NULL && i < CACHE_SLOTS; i++) {
		struct cache_slot *e = &c->slot[i];

		if (e->full && e->snapshot == rn->snapshot &&
		    e->gen == rn->gen && strcmp(e->key, key) == 0 &&
		    strcmp(e->ura, rn->j->ura) == 0) {
			e->job = c->job;
			return e;
		}
	}
	return NULL;
}

/* Keep doc (taken; version v) as what key holds at the run's snapshot;
 * NULL (doc not taken) when every slot serves the running job. */
static struct cache_slot *
cache_put(struct run *rn, const char *key, struct fj_doc *doc,
	  const struct store_res *v)
{
	struct provider_cache *c = rn->cache;

	for (size_t k = 0; c != NULL && k < CACHE_SLOTS; k++) {
		struct cache_slot *e = &c->slot[(c->next + k) % CACHE_SLOTS];

		if (e->full && e->job == c->job)
			continue;
		c->next = (unsigned)((c->next + k + 1) % CACHE_SLOTS);
		fj_doc_free(e->doc);
		e->full = true;
		util_strlcpy(e->ura, rn->j->ura, sizeof(e->ura));
		util_strlcpy(e->key, key, sizeof(e->key));
		e->snapshot = rn->snapshot;
		e->gen = rn->gen;
		e->job = c->job;
		e->doc = doc;
		memset(&e->v, 0, sizeof(e->v));
		if (doc != NULL) {
			e->v = *v;
			e->v.json = NULL;
			e->v.json_len = 0;
		}
		return e;
	}
	return NULL;
}

/*
 * The current version of type/id (key "type/id") in the caller's scope at
 * the snapshot, parsed: from the worker's cache, or read and then kept
 * there. Returns the cache's slot, or tmp (filled; the caller frees
 * tmp->doc) when the cache cannot keep it; its doc is NULL when there is
 * none (or on a failed read). Borrowed while the job runs.
 */
static const struct cache_slot *
current_parsed(struct run *rn, const char *type, const char *id,
	       const char *key, struct cache_slot *tmp)
{
	struct cache_slot *e;
	struct store_res *v = NULL;
	struct fj_doc *doc = NULL;
	size_t n = 0;
	enum gw_err err;

	memset(tmp, 0, sizeof(*tmp));
	if ((e = cache_find(rn, key)) != NULL) {
		rn->j->cached++;
		return e;
	}
	err = find_current(rn, type, id, false, &v, &n);
	if (err == GW_OK && n == 1)
		doc = parse_version(&v[0]);
	/* A failed read is not kept: only what the store said. */
	if (err == GW_OK && (n == 0 || doc != NULL) &&
	    (e = cache_put(rn, key, doc, n == 1 ? &v[0] : NULL)) != NULL) {
		store_res_free(v, n);
		return e;
	}
	tmp->doc = doc;
	if (doc != NULL) {
		tmp->v = v[0];
		tmp->v.json = NULL;
		tmp->v.json_len = 0;
	}
	store_res_free(v, n);
	return tmp;
}

/* search_env.resolve: a resource of the caller's scope, parsed once per
 * request (and kept by the worker for the next ones at this snapshot). */
static const struct fj_node *
env_resolve(void *arg, const char *type, const char *id)
{
	struct run *rn = arg;
	struct resolved *c;
	const struct cache_slot *e;
	struct cache_slot tmp;
	char key[sizeof(c->key)];

	if (strlen(type) > STORE_TYPE_MAX || strlen(id) > STORE_RID_MAX)
		return NULL;
	snprintf(key, sizeof(key), "%s/%s", type, id);
	for (c = rn->resolved; c != NULL; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c->doc != NULL ? c->doc->root : NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	util_strlcpy(c->key, key, sizeof(c->key));
	e = current_parsed(rn, type, id, key, &tmp);
	c->doc = e->doc;
	if (e == &tmp)
		c->own = tmp.doc;
	if (c->doc != NULL && !visible(rn, type, c->doc->root))
		c->doc = NULL;
	c->next = rn->resolved;
	rn->resolved = c;
	return c->doc != NULL ? c->doc->root : NULL;
}

/* search_env.in_valueset: from the R4 rules (PZP value sets included). */
static enum gw_err
env_in_valueset(void *arg, const char *url, const char *system,
		const char *code, bool *in)
{
	struct run *rn = arg;
	const struct rules_valueset *vs = rules_valueset(rn->j->prov->r4, url);

	if (vs == NULL)
		return GW_NOTFOUND;
	*in = rules_valueset_has(vs, system, code);
	return GW_OK;
}

/* ---- interactions ---- */

static void
do_read(struct run *rn, const char *type, const char *id, const char *vids)
{
	struct provider_job *j = rn->j;
	struct store_res *v = NULL;
	struct fj_doc *doc = NULL;
	struct fj_node *res;
	long long vid = 0;
	size_t n = 0;
	enum gw_err err;

	util_strlcpy(j->audit.interaction, vids != NULL ? "vread" : "read",
		     sizeof(j->audit.interaction));
	if (!is_fhir_id(id) ||
	    (vids != NULL &&
	     (util_parse_ll(vids, 1, INT64_MAX, &vid) != GW_OK))) {
		answer_not_found(rn, type, id);
		return;
	}
	{
		struct store_res_query q = {
		    .receiver = j->ura,
		    .bare = true,
		    .type = type,
		    .id = id,
		    .vid = vid,
		    .history = vids != NULL,
		    .hidden = true,
		};

		err = store_res_find(rn->r, &q, &v, &n);
	}
	if (err != GW_OK) {
		answer_store_error(rn, err);
		return;
	}
	if (n == 0 || (doc = parse_version(&v[n - 1])) == NULL ||
	    !visible(rn, type, doc->root)) {
		answer_not_found(rn, type, id);
		goto done;
	}
	util_strlcpy(j->audit.bsn, v[n - 1].bsn, sizeof(j->audit.bsn));
	if (vids == NULL && v[n - 1].hidden) {
		/* Entered in error: gone from reads and searches, its
		 * versions still in _history. */
		answer_error(rn, 410, "deleted",
			     "%s/%s was entered in error; its versions remain "
			     "readable at %s/%s/_history",
			     type, id, type, id);
		goto done;
	}
	if ((res = served(rn, &v[n - 1], doc)) == NULL) {
		answer_error(rn, 503, "transient", "out of memory");
		goto done;
	}
	j->audit.count = 1;
	answer_root(rn, 200, res);
	if (j->status == 200) {
		snprintf(j->etag, sizeof(j->etag), "W/\"%" PRId64 "\"",
			 v[n - 1].vid);
		fmt_http_date(v[n - 1].updated, j->last_modified,
			      sizeof(j->last_modified));
	}
done:
	fj_doc_free(doc);
	store_res_free(v, n);
}

/* _count and _since of a history listing, from search_parse(NULL). */
static bool
history_params(struct run *rn, const char *type, const char *form,
	       struct search_scope *sc, char **canon)
{
	struct search_query *q = NULL;
	json_t *oo = fhir_outcome_new();
	struct buf c;
	enum gw_err err;

	*canon = NULL;
	if (oo == NULL) {
		answer_error(rn, 503, "transient", "out of memory");
		return false;
	}
	err = search_parse(type, form, strlen(form),
			   (rn->j->lenient ? SEARCH_LENIENT : 0) |
			       (type != NULL ? SEARCH_HISTORY : 0),
			   &q, oo);
	if (err != GW_OK) {
		if (err == GW_NOMEM) {
			json_decref(oo);
			answer_error(rn, 503, "transient", "out of memory");
		} else {
			answer_outcome(rn, 400, oo);
		}
		return false;
	}
	json_decref(oo);
	search_scope_of(q, sc);
	buf_init(&c, 16384);
	if (search_canonical(q, &c) != GW_OK) {
		search_free(q);
		buf_cleanup(&c);
		answer_error(rn, 503, "transient", "out of memory");
		return false;
	}
	*canon = buf_steal(&c, NULL);
	if (*canon == NULL)
		*canon = strdup("");
	search_free(q);
	if (*canon == NULL) {
		answer_error(rn, 503, "transient", "out of memory");
		return false;
	}
	return true;
}

/* GET [type/id/]_history: every version of one resource, newest
 * first. */
static void
do_history_instance(struct run *rn, const char *type, const char *id,
		    const char *form)
{
	struct provider_job *j = rn->j;
	struct store_res *v = NULL;
	struct fj_node *b, *links, *entries;
	struct search_scope sc;
	struct buf url;
	char *canon = NULL, path[STORE_TYPE_MAX + STORE_RID_MAX + 32];
	size_t n = 0, shown = 0;
	enum gw_err err;

	util_strlcpy(j->audit.interaction, "history-instance",
		     sizeof(j->audit.interaction));
	buf_init(&url, 65536);
	if (!is_fhir_id(id)) {
		answer_not_found(rn, type, id);
		goto done;
	}
	if (!history_params(rn, type, form, &sc, &canon))
		goto done;
	{
		struct store_res_query q = {
		    .receiver = j->ura,
		    .bare = true,
		    .type = type,
		    .id = id,
		    .history = true,
		    .hidden = true,
		    .since = sc.since,
		    .limit = HISTORY_INSTANCE_MAX,
		};

		if ((err = store_res_find(rn->r, &q, &v, &n)) != GW_OK) {
			answer_store_error(rn, err);
			goto done;
		}
	}
	if ((b = new_bundle(rn, "history", &links, &entries)) == NULL)
		goto nomem;
	for (size_t i = n; i-- > 0;) {
		struct fj_doc *doc = parse_version(&v[i]);
		bool ok = doc != NULL && visible(rn, type, doc->root);

		if (ok && !add_entry(rn, entries, &v[i], doc, NULL)) {
			fj_doc_free(doc);
			goto nomem;
		}
		if (ok) {
			shown++;
			util_strlcpy(j->audit.bsn, v[i].bsn,
				     sizeof(j->audit.bsn));
		}
		fj_doc_free(doc);
	}
	if (shown == 0 && sc.since == 0) {
		answer_not_found(rn, type, id);
		goto done;
	}
	snprintf(path, sizeof(path), "/%s/%s/_history", type, id);
	if (!set_num(rn->out, b, "total", (int64_t)shown) ||
	    !link_url(rn, path, "history-instance", canon, -1, &url) ||
	    !add_link(rn, links, "self", url.data) ||
	    fj_set(rn->out, b, "link", links) != GW_OK ||
	    !set_entries(rn, b, entries))
		goto nomem;
	j->audit.count = (unsigned)shown;
	answer_root(rn, 200, b);
	goto done;
nomem:
	answer_error(rn, 503, "transient", "out of memory");
done:
	free(canon);
	buf_cleanup(&url);
	store_res_free(v, n);
}

/*
 * GET [type/]_history?_since=T: versions in commit order, oldest first,
 * so that a system without notifications follows next links to what is
 * new while more arrives; paged by a cursor (the last version's seq), no
 * total, no previous link.
 */
static void
do_history_list(struct run *rn, const char *type, const char *form,
		const char *page)
{
	struct provider_job *j = rn->j;
	struct store_res *v = NULL;
	struct fj_node *b, *links, *entries;
	struct search_scope sc;
	struct buf url;
	const char *kind = type != NULL ? "history-type" : "history-system";
	char *canon = NULL, path[STORE_TYPE_MAX + 32];
	int64_t cursor = 0, last = 0;
	size_t n = 0, shown = 0;
	bool more = false;
	enum gw_err err;

	util_strlcpy(j->audit.interaction, kind, sizeof(j->audit.interaction));
	buf_init(&url, 65536);
	if (!history_params(rn, type, form, &sc, &canon))
		goto done;
	if (page[0] != '\0' &&
	    !page_parse(rn, kind, canon, page, &rn->snapshot, &cursor)) {
		answer_error(rn, 400, "invalid",
			     "the paging link is not valid here (altered, "
			     "or made before the gateway restarted): run "
			     "the listing again");
		goto done;
	}
	if ((b = new_bundle(rn, "history", &links, &entries)) == NULL)
		goto nomem;
	last = cursor;
	/* Versions outside the caller's view are skipped, so read on
	 * until a page is full or the snapshot is exhausted. */
	while (shown < sc.count) {
		struct store_res_query q = {
		    .receiver = j->ura,
		    .bare = true,
		    .type = type,
		    .history = true,
		    .hidden = true,
		    .snapshot = rn->snapshot,
		    .since = sc.since,
		    .after_seq = last,
		    .limit = sc.count - shown + 1,
		};
		size_t i;

		if ((err = store_res_find(rn->r, &q, &v, &n)) != GW_OK) {
			answer_store_error(rn, err);
			goto done;
		}
		for (i = 0; i < n && shown < sc.count; i++) {
			struct fj_doc *doc = parse_version(&v[i]);
			bool ok =
			    doc != NULL && visible(rn, v[i].type, doc->root);

			last = v[i].seq;
			if (ok && !add_entry(rn, entries, &v[i], doc, NULL)) {
				fj_doc_free(doc);
				goto nomem;
			}
			shown += ok ? 1 : 0;
			fj_doc_free(doc);
		}
		more = i < n;
		store_res_free(v, n);
		v = NULL;
		if (more || n < q.limit)
			break;
	}
	n = 0;
	if (type != NULL)
		snprintf(path, sizeof(path), "/%s/_history", type);
	else
		snprintf(path, sizeof(path), "/_history");
	if (!link_url(rn, path, kind, canon, cursor > 0 ? cursor : -1, &url) ||
	    !add_link(rn, links, "self", url.data))
		goto nomem;
	if (more && (!link_url(rn, path, kind, canon, last, &url) ||
		     !add_link(rn, links, "next", url.data)))
		goto nomem;
	if (fj_set(rn->out, b, "link", links) != GW_OK ||
	    !set_entries(rn, b, entries))
		goto nomem;
	j->audit.count = (unsigned)shown;
	answer_root(rn, 200, b);
	goto done;
nomem:
	answer_error(rn, 503, "transient", "out of memory");
done:
	free(canon);
	buf_cleanup(&url);
	store_res_free(v, n);
}

struct includes {
	char (*keys)[STORE_TYPE_MAX + STORE_RID_MAX + 2];
	size_t n, cap;
};

static void
include_emit(void *arg, const char *type, const char *id)
{
	struct includes *inc = arg;
	char key[STORE_TYPE_MAX + STORE_RID_MAX + 2];

	if (strlen(type) > STORE_TYPE_MAX || strlen(id) > STORE_RID_MAX ||
	    inc->n >= INCLUDE_MAX)
		return;
	snprintf(key, sizeof(key), "%s/%s", type, id);
	for (size_t i = 0; i < inc->n; i++)
		if (strcmp(inc->keys[i], key) == 0)
			return;
	if (inc->n == inc->cap) {
		size_t cap = inc->cap == 0 ? 16 : inc->cap * 2;
		void *p = realloc(inc->keys, cap * sizeof(*inc->keys));

		if (p == NULL)
			return;
		inc->keys = p;
		inc->cap = cap;
	}
	util_strlcpy(inc->keys[inc->n++], key, sizeof(*inc->keys));
}

/* Add the _include targets of the page's matches (not themselves
 * matches on the page) as entries with search.mode include. */
static bool
add_includes(struct run *rn, const struct search_query *q,
	     struct fj_node *entries, const struct hit *page, size_t npage,
	     size_t *added)
{
	struct includes inc = {0};
	bool ok = true;

	for (size_t i = 0; i < npage; i++)
		search_includes(q, page[i].doc->root, include_emit, &inc);
	for (size_t k = 0; ok && k < inc.n; k++) {
		char *slash = strchr(inc.keys[k], '/');
		char key[sizeof(*inc.keys)];
		const struct cache_slot *e;
		struct cache_slot tmp;
		bool dup = false;

		if (slash == NULL)
			continue;
		/* The worker's cache knows it by "type/id". */
		util_strlcpy(key, inc.keys[k], sizeof(key));
		*slash = '\0';
		for (size_t i = 0; i < npage && !dup; i++)
			dup = strcmp(page[i].v->type, inc.keys[k]) == 0 &&
			      strcmp(page[i].v->id, slash + 1) == 0;
		if (dup)
			continue;
		e = current_parsed(rn, inc.keys[k], slash + 1, key, &tmp);
		if (e->doc != NULL && visible(rn, e->v.type, e->doc->root)) {
			ok = add_entry(rn, entries, &e->v, e->doc, "include");
			*added += ok ? 1 : 0;
		}
		if (e == &tmp)
			fj_doc_free(tmp.doc);
	}
	free(inc.keys);
	return ok;
}

/* GET /fhir/{type}?... and POST /fhir/{type}/_search. */
static void
do_search(struct run *rn, const char *type, const char *form, const char *page)
{
	struct provider_job *j = rn->j;
	struct search_query *q = NULL;
	struct search_env env = {env_resolve, env_in_valueset, rn};
	struct search_scope sc;
	struct store_res *v = NULL, *pv = NULL;
	struct hit *hits = NULL;
	struct fj_node *b, *links, *entries;
	struct buf canon, url, raw;
	json_t *oo = fhir_outcome_new();
	char path[STORE_TYPE_MAX + 8];
	const char *bsn;
	char bsnbuf[STORE_BSN_MAX + 1] = "";
	size_t n = 0, np = 0, nhits = 0, added = 0;
	int64_t offset = 0;
	bool none = false;
	enum gw_err err;

	util_strlcpy(j->audit.interaction, "search-type",
		     sizeof(j->audit.interaction));
	buf_init(&canon, 16384);
	buf_init(&url, 65536);
	/* Larger than an answer: a too large one is refused (413) when the
	   answer is put together, as in answer_root. */
	buf_init(&raw, 2 * PROVIDER_OUT_MAX);
	if (rn->fmt == FMT_JSON && !j->stu3)
		rn->raw = &raw;
	if (oo == NULL)
		goto nomem;
	err = search_parse(type, form, strlen(form),
			   j->lenient ? SEARCH_LENIENT : 0, &q, oo);
	if (err == GW_NOMEM)
		goto nomem;
	if (err != GW_OK) {
		if (fhir_outcome_errors(oo) == 0)
			fhir_outcome_add(oo, FHIR_ERROR, "not-supported", NULL,
					 0, 0, "%s cannot be searched here",
					 type);
		answer_outcome(rn, 400, oo);
		oo = NULL;
		goto done;
	}
	search_scope_of(q, &sc);
	if (search_canonical(q, &canon) != GW_OK)
		goto nomem;
	if (page[0] != '\0' &&
	    !page_parse(rn, type, canon.data != NULL ? canon.data : "", page,
			&rn->snapshot, &offset)) {
		answer_error(rn, 400, "invalid",
			     "the paging link is not valid here (altered, "
			     "or made before the gateway restarted): run "
			     "the search again");
		goto done;
	}
	/* The patient narrows the read to one BSN: by identifier, or by
	 * the logical id of a Patient in the caller's scope (another
	 * organisation's patient is not found: an empty result, the same
	 * as an unknown one). */
	bsn = sc.patient_bsn;
	if (sc.patient_id != NULL) {
		if ((err = find_current(rn, "Patient", sc.patient_id, false,
					&pv, &np)) != GW_OK) {
			answer_store_error(rn, err);
			goto done;
		}
		if (np == 1 && (bsn == NULL || strcmp(bsn, pv[0].bsn) == 0)) {
			util_strlcpy(bsnbuf, pv[0].bsn, sizeof(bsnbuf));
			bsn = bsnbuf;
		} else {
			none = true;
		}
	}
	if (bsn != NULL)
		util_strlcpy(j->audit.bsn, bsn, sizeof(j->audit.bsn));
	if (!none) {
		struct store_res_query sq = {
		    .receiver = j->ura,
		    .bare = true,
		    .bsn = bsn,
		    .type = type,
		    .id = sc.id,
		    .snapshot = rn->snapshot,
		    .since = sc.since,
		    .limit = PROVIDER_CANDIDATES_MAX + 1,
		};

		if ((err = store_res_find(rn->r, &sq, &v, &n)) != GW_OK) {
			answer_store_error(rn, err);
			goto done;
		}
	}
	if (n > PROVIDER_CANDIDATES_MAX) {
		/* A search over everything sent to the organisation (no
		   patient) is refused rather than held in memory whole. */
		answer_error(rn, 400, "too-costly",
			     "more than %d %s resources to consider: search "
			     "with patient or patient.identifier",
			     PROVIDER_CANDIDATES_MAX, type);
		goto done;
	}
	if (n > 0 && (hits = calloc(n, sizeof(*hits))) == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct fj_doc *doc = parse_version(&v[i]);

		if (doc != NULL && visible(rn, type, doc->root) &&
		    search_match(q, doc->root, v[i].updated, &env)) {
			/* Only the page's documents are kept (in commit
			   order the page is known now; the other order
			   parses its page again below). */
			bool keep = !sc.sort_desc && nhits >= (size_t)offset &&
				    nhits < (size_t)offset + sc.count;

			hits[nhits].v = &v[i];
			hits[nhits++].doc = keep ? doc : NULL;
			if (!keep)
				fj_doc_free(doc);
		} else {
			fj_doc_free(doc);
		}
	}
	if (sc.sort_desc)
		for (size_t i = 0; i < nhits / 2; i++) {
			struct hit t = hits[i];

			hits[i] = hits[nhits - 1 - i];
			hits[nhits - 1 - i] = t;
		}
	if ((b = new_bundle(rn, "searchset", &links, &entries)) == NULL)
		goto nomem;
	if (!set_num(rn->out, b, "total", (int64_t)nhits))
		goto nomem;
	{
		size_t from = (size_t)offset < nhits ? (size_t)offset : nhits;
		size_t to = from + sc.count < nhits ? from + sc.count : nhits;
		const char *c = canon.data != NULL ? canon.data : "";

		snprintf(path, sizeof(path), "/%s", type);
		for (size_t i = from; i < to; i++) {
			bool ok;

			/* The nodes serve _include below either way. */
			if (hits[i].doc == NULL &&
			    (hits[i].doc = parse_version(hits[i].v)) == NULL)
				goto nomem;
			if (rn->raw != NULL &&
			    splice_entry(rn, hits[i].v, "match", &ok)) {
				if (!ok)
					goto nomem;
			} else if (!add_entry(rn, entries, hits[i].v,
					      hits[i].doc, "match")) {
				goto nomem;
			}
		}
		if (!add_includes(rn, q, entries, hits + from, to - from,
				  &added))
			goto nomem;
		if (!link_url(rn, path, type, c, offset > 0 ? offset : -1,
			      &url) ||
		    !add_link(rn, links, "self", url.data))
			goto nomem;
		if (to < nhits && sc.count > 0 &&
		    (!link_url(rn, path, type, c, (int64_t)to, &url) ||
		     !add_link(rn, links, "next", url.data)))
			goto nomem;
		if (from > 0 &&
		    (!link_url(rn, path, type, c,
			       from > sc.count ? (int64_t)(from - sc.count) : 0,
			       &url) ||
		     !add_link(rn, links, "previous", url.data)))
			goto nomem;
		j->audit.count = (unsigned)(to - from + added);
	}
	/* Warnings of a lenient parse travel as an outcome entry. */
	if (json_array_size(json_object_get(oo, "issue")) > 0) {
		struct fj_node *e = fj_new_object(rn->out), *res, *s;

		if (e == NULL || (res = fj_from_jansson(rn->out, oo)) == NULL ||
		    fj_set(rn->out, e, "resource", res) != GW_OK ||
		    (s = fj_new_object(rn->out)) == NULL ||
		    !set_str(rn->out, s, "mode", "outcome") ||
		    fj_set(rn->out, e, "search", s) != GW_OK)
			goto nomem;
		if (rn->raw != NULL) {
			if ((rn->nraw++ > 0 &&
			     buf_addc(rn->raw, ',') != GW_OK) ||
			    fj_dump(e, 0, rn->raw) != GW_OK)
				goto nomem;
		} else {
			fj_append(entries, e);
		}
	}
	if (fj_set(rn->out, b, "link", links) != GW_OK ||
	    !set_entries(rn, b, entries))
		goto nomem;
	if (rn->raw != NULL)
		answer_raw(rn, b);
	else
		answer_root(rn, 200, b);
	goto done;
nomem:
	answer_error(rn, 503, "transient", "out of memory");
done:
	for (size_t i = 0; i < nhits; i++)
		fj_doc_free(hits[i].doc);
	free(hits);
	store_res_free(v, n);
	store_res_free(pv, np);
	json_decref(oo);
	search_free(q);
	buf_cleanup(&canon);
	buf_cleanup(&url);
	rn->raw = NULL;
	buf_cleanup(&raw);
}

void
provider_run(struct provider_job *j, struct store_reader *r,
	     struct provider_cache *cache)
{
	struct run rn = {.j = j, .r = r, .fmt = FMT_JSON};
	uint64_t gen = 0;
	char *seg[5] = {0}, *path = NULL, fmt[64], page[128];
	size_t nseg = 0;
	enum gw_err err;

	if ((rn.out = fj_doc_new()) == NULL ||
	    (path = strdup(j->path + strlen("/fhir/"))) == NULL) {
		j->status = 503;
		j->retry_after = policy_answer(POLICY_BUSY)->retry_after;
		goto done;
	}
	if (!take_control(j->form, fmt, sizeof(fmt), page, sizeof(page))) {
		answer_error(&rn, 400, "invalid",
			     "_format or _page is malformed or repeated");
		goto done;
	}
	if (fmt[0] != '\0') {
		rn.fmt = fmt_of(fmt, strlen(fmt));
		rn.fmt_param = true;
	} else {
		rn.fmt = fmt_accept(j->accept);
	}
	if (rn.fmt == FMT_NONE) {
		rn.fmt = FMT_JSON;
		answer_error(&rn, 406, "not-supported",
			     "the gateway answers application/fhir+json or "
			     "application/fhir+xml only (Accept or _format)");
		goto done;
	}
	for (char *s = path, *save = NULL;
	     nseg < UTIL_ARRAY_LEN(seg) && (s = strtok_r(s, "/", &save));
	     s = NULL)
		seg[nseg++] = s;
	if (r == NULL) {
		answer_store_error(&rn, GW_TEMP);
		goto done;
	}
	/* One read transaction for the request's reads (store.h); the
	   worker's cache only when no removal ran while it began. */
	gen = store_res_generation(r);
	if ((err = store_reader_begin(r)) != GW_OK ||
	    (err = store_res_snapshot(r, &rn.snapshot)) != GW_OK) {
		answer_store_error(&rn, err);
		goto done;
	}
	if (cache != NULL && gen % 2 == 0 && store_res_generation(r) == gen) {
		cache->job++;
		rn.cache = cache;
		rn.gen = gen;
	}
	if (nseg == 1 && strcmp(seg[0], "_history") == 0)
		do_history_list(&rn, NULL, j->form, page);
	else if (nseg == 1 || (nseg == 2 && j->post))
		do_search(&rn, seg[0], j->form, page);
	else if (nseg == 2 && strcmp(seg[1], "_history") == 0)
		do_history_list(&rn, seg[0], j->form, page);
	else if (nseg == 2)
		do_read(&rn, seg[0], seg[1], NULL);
	else if (nseg == 3 && strcmp(seg[2], "_history") == 0)
		do_history_instance(&rn, seg[0], seg[1], j->form);
	else if (nseg == 4 && strcmp(seg[2], "_history") == 0)
		do_read(&rn, seg[0], seg[1], seg[3]);
	else
		answer_error(&rn, 404, "not-found", "no such endpoint");
done:
	store_reader_end(r);
	while (rn.resolved != NULL) {
		struct resolved *c = rn.resolved;

		rn.resolved = c->next;
		fj_doc_free(c->own);
		free(c);
	}
	fj_doc_free(rn.out);
	free(path);
}

enum gw_err
provider_to_xml(void *arg, const json_t *res, struct buf *out)
{
	const struct provider *p = arg;
	struct fj_doc *d = fj_doc_new();
	struct fj_node *root = d != NULL ? fj_from_jansson(d, res) : NULL;
	char err[256];
	enum gw_err rc = GW_NOMEM;

	if (root != NULL)
		rc = xmlfhir_from_fjson(root, p->r4, out, err, sizeof(err));
	fj_doc_free(d);
	return rc;
}
