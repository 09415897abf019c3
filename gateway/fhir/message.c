/* Reading and building the FHIR message Bundles care plans travel in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "outcome.h"
#include "message.h"
#include "hmap.h"
#include "util.h"

#define MH "Bundle.entry[0].resource.ofType(MessageHeader)"

static void
hex_sha256(const char *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		out[0] = '\0';
		return;
	}
	util_hex(md, sizeof(md), out);
}

void
message_patient_key(const struct fj_node *bundle, char out[65])
{
	const struct fj_node *entries = fj_get(bundle, "entry");
	char buf[1024];

	out[0] = '\0';
	for (const struct fj_node *e = entries ? entries->u.kids.first : NULL;
	     e != NULL; e = e->next) {
		const struct fj_node *res = fj_get(e, "resource");
		const struct fj_node *ids, *id;
		const char *sys, *val, *full;

		if (!fj_str_eq(fj_get(res, "resourceType"), "Patient"))
			continue;
		ids = fj_get(res, "identifier");
		id = fj_at(ids, 0);
		sys = fj_get_str(id, "system");
		val = fj_get_str(id, "value");
		if (val != NULL) {
			snprintf(buf, sizeof(buf), "%s|%s", sys ? sys : "",
				 val);
			hex_sha256(buf, strlen(buf), out);
			return;
		}
		if ((full = fj_get_str(e, "fullUrl")) != NULL) {
			hex_sha256(full, strlen(full), out);
			return;
		}
	}
}

/* The URA of an element holding identifier {system ura, value}. */
static bool
ura_of(const struct fj_node *holder, char out[MESSAGE_URA_LEN + 1])
{
	const struct fj_node *id = fj_get(holder, "identifier");
	const char *sys = fj_get_str(id, "system");
	const char *val = fj_get_str(id, "value");

	if (sys == NULL || val == NULL ||
	    strcmp(sys, MESSAGE_URA_SYSTEM) != 0 || !util_is_ura(val))
		return false;
	util_strlcpy(out, val, MESSAGE_URA_LEN + 1);
	return true;
}

/*
 * The names a focus reference may use for an entry: its fullUrl, and
 * "Type/id" of its resource. Indexed once per message so that checking n
 * focus references against n entries is linear, not quadratic. Keys are
 * borrowed from the document (fullUrl) or from tids (Type/id).
 */
struct entry_names {
	struct hmap map;
	char *tids;
};

static void
entry_names_free(struct entry_names *en)
{
	hmap_free(&en->map, NULL);
	free(en->tids);
}

/* GW_OK or GW_NOMEM (en then freed and empty). */
static enum gw_err
entry_names_build(const struct fj_node *entries, struct entry_names *en)
{
	size_t need = 0, used = 0;
	const struct fj_node *e;
	char *tids = NULL;

	memset(en, 0, sizeof(*en));
	for (e = entries->u.kids.first; e != NULL; e = e->next) {
		const struct fj_node *res = fj_get(e, "resource");
		const char *rt = fj_get_str(res, "resourceType");
		const char *id = fj_get_str(res, "id");

		if (rt != NULL && id != NULL)
			need += strlen(rt) + strlen(id) + 2;
	}
	if (need > 0 && (tids = malloc(need)) == NULL)
		return GW_NOMEM;
	en->tids = tids;
	for (e = entries->u.kids.first; e != NULL; e = e->next) {
		const char *full = fj_get_str(e, "fullUrl");
		const struct fj_node *res = fj_get(e, "resource");
		const char *rt = fj_get_str(res, "resourceType");
		const char *id = fj_get_str(res, "id");

		if (full != NULL && hmap_put_num(&en->map, full, 1) != GW_OK)
			goto nomem;
		if (rt != NULL && id != NULL && tids != NULL) {
			int kl =
			    snprintf(tids + used, need - used, "%s/%s", rt, id);

			if (hmap_put_num(&en->map, tids + used, 1) != GW_OK)
				goto nomem;
			used += (size_t)kl + 1;
		}
	}
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): tids is en->tids */
	return GW_OK;
nomem:
	hmap_free(&en->map, NULL);
	en->tids = NULL;
	free(tids);
	return GW_NOMEM;
}

static void
issue(json_t *oo, const struct fj_node *at, const char *code, const char *expr,
      const char *msg)
{
	fhir_outcome_add(oo, FHIR_ERROR, code, expr, at ? (int)at->line : 0,
			 at ? (int)at->col : 0, "%s", msg);
}

/* Whether mh is in the STU3 form: event (a Coding) instead of R4's
 * eventCoding. */
static bool
mh_stu3(const struct fj_node *mh)
{
	return fj_get(mh, "eventCoding") == NULL && fj_get(mh, "event") != NULL;
}

/*
 * The URA destination d of mh names. R4: d.receiver. STU3, which has no
 * receiver per destination: the endpoint "urn:ura:URA" (what message_wrap
 * writes), else, for the only destination, mh.receiver.
 */
static bool
stu3_dest_ura(const struct fj_node *mh, const struct fj_node *d, size_t ndest,
	      char out[MESSAGE_URA_LEN + 1])
{
	const char *ep = fj_get_str(d, "endpoint");

	if (ep != NULL && strncmp(ep, "urn:ura:", 8) == 0 &&
	    util_is_ura(ep + 8)) {
		util_strlcpy(out, ep + 8, MESSAGE_URA_LEN + 1);
		return true;
	}
	return ndest == 1 && ura_of(fj_get(mh, "receiver"), out);
}

static bool
dest_ura(const struct fj_node *mh, const struct fj_node *d, size_t ndest,
	 char out[MESSAGE_URA_LEN + 1])
{
	if (!mh_stu3(mh) || fj_get(d, "receiver") != NULL)
		return ura_of(fj_get(d, "receiver"), out);
	return stu3_dest_ura(mh, d, ndest, out);
}

static void
parse_receivers(const struct fj_node *mh, struct message_info *info, json_t *oo)
{
	const struct fj_node *dest = fj_get(mh, "destination");
	char expr[160], ura[MESSAGE_URA_LEN + 1];
	size_t i = 0;

	if (dest == NULL || dest->type != FJ_ARRAY || dest->u.kids.count == 0) {
		issue(oo, mh, "required", MH ".destination",
		      "the MessageHeader names no receiver "
		      "(destination.receiver.identifier with a URA)");
		return;
	}
	for (const struct fj_node *d = dest->u.kids.first; d != NULL;
	     d = d->next, i++) {
		bool dup = false;

		snprintf(expr, sizeof(expr), MH ".destination[%zu].receiver",
			 i);
		if (!dest_ura(mh, d, dest->u.kids.count, ura)) {
			issue(oo, d, "required", expr,
			      mh_stu3(mh)
				  ? "receiver must be identified by a URA "
				    "(STU3: destination.endpoint urn:ura:URA, "
				    "or the receiver's "
				    "identifier.system " MESSAGE_URA_SYSTEM
				    " for a single destination)"
				  : "receiver must be identified by a URA "
				    "(identifier.system " MESSAGE_URA_SYSTEM
				    ", 8 digits)");
			continue;
		}
		for (size_t k = 0; k < info->nreceivers; k++)
			dup |= strcmp(info->receivers[k], ura) == 0;
		if (dup)
			continue;
		if (info->nreceivers == MESSAGE_MAX_RECEIVERS) {
			issue(oo, d, "too-costly", expr, "too many receivers");
			return;
		}
		util_strlcpy(info->receivers[info->nreceivers++], ura,
			     sizeof(info->receivers[0]));
	}
}

static void
parse_focus(const struct fj_node *mh, const struct fj_node *entries, json_t *oo)
{
	const struct fj_node *focus = fj_get(mh, "focus");
	struct entry_names names;
	char expr[160];
	size_t i = 0;

	if (focus == NULL || focus->type != FJ_ARRAY ||
	    focus->u.kids.count == 0) {
		issue(oo, mh, "required", MH ".focus",
		      "the MessageHeader must point (focus) at the PZP "
		      "resources it carries");
		return;
	}
	if (entry_names_build(entries, &names) != GW_OK) {
		issue(oo, mh, "exception", MH ".focus",
		      "out of memory checking the focus references");
		return;
	}
	for (const struct fj_node *f = focus->u.kids.first; f != NULL;
	     f = f->next, i++) {
		const char *ref = fj_get_str(f, "reference");

		if (ref != NULL && hmap_get_num(&names.map, ref) != 0)
			continue;
		snprintf(expr, sizeof(expr), MH ".focus[%zu]", i);
		issue(oo, f, "not-found", expr,
		      "focus does not point at a resource in this Bundle");
	}
	entry_names_free(&names);
}

enum gw_err
message_parse(const struct fj_node *root, struct message_info *info, json_t *oo)
{
	const struct fj_node *entries, *mh, *ident, *ev, *sig;
	size_t before = fhir_outcome_errors(oo);

	memset(info, 0, sizeof(*info));
	if (!fj_str_eq(fj_get(root, "resourceType"), "Bundle")) {
		issue(oo, root, "structure", "Bundle",
		      "$process-message takes a Bundle of type message");
		return GW_INVALID;
	}
	if (!fj_str_eq(fj_get(root, "type"), "message"))
		issue(oo, fj_get(root, "type"), "value", "Bundle.type",
		      "Bundle.type must be 'message'");
	ident = fj_get(root, "identifier");
	info->id_system = fj_get_str(ident, "system");
	info->id_value = fj_get_str(ident, "value");
	if (info->id_system == NULL)
		info->id_system = "";
	if (info->id_value == NULL || info->id_value[0] == '\0')
		issue(oo, root, "required", "Bundle.identifier",
		      "Bundle.identifier.value is required: receivers "
		      "deduplicate on it");
	entries = fj_get(root, "entry");
	mh = fj_get(fj_at(entries, 0), "resource");
	if (!fj_str_eq(fj_get(mh, "resourceType"), "MessageHeader")) {
		issue(oo, mh ? mh : root, "structure",
		      "Bundle.entry[0].resource",
		      "the first entry must be the MessageHeader");
		return GW_INVALID;
	}
	ev = fj_get(mh, mh_stu3(mh) ? "event" : "eventCoding");
	info->event = fj_get_str(ev, "code");
	if (!fj_str_eq(fj_get(ev, "system"), MESSAGE_EVENT_SYSTEM) ||
	    info->event == NULL ||
	    (strcmp(info->event, MESSAGE_EVENT_SHARED) != 0 &&
	     strcmp(info->event, MESSAGE_EVENT_UPDATED) != 0))
		issue(oo, ev ? ev : mh, "code-invalid",
		      mh_stu3(mh) ? MH ".event" : MH ".eventCoding",
		      "eventCoding (STU3: event) must be " MESSAGE_EVENT_SYSTEM
		      "#" MESSAGE_EVENT_SHARED " or #" MESSAGE_EVENT_UPDATED);
	if (!ura_of(fj_get(mh, "sender"), info->sender))
		issue(oo, mh, "required", MH ".sender",
		      "sender must be identified by a URA "
		      "(identifier.system " MESSAGE_URA_SYSTEM ")");
	parse_receivers(mh, info, oo);
	parse_focus(mh, entries, oo);
	sig = fj_get(root, "signature");
	info->signed_r4 = fj_get(sig, "data") != NULL;
	info->signed_stu3 = fj_get(sig, "blob") != NULL;
	message_patient_key(root, info->patient_key);
	return fhir_outcome_errors(oo) == before ? GW_OK : GW_INVALID;
}

/* Set obj[key] to a new string; false without memory. */
static bool
set_str(struct fj_doc *doc, struct fj_node *obj, const char *key,
	const char *val)
{
	struct fj_node *n = fj_new_string(doc, val);

	return n != NULL && fj_set(doc, obj, key, n) == GW_OK;
}

static struct fj_node *
ura_holder(struct fj_doc *doc, const char *ura)
{
	struct fj_node *h = fj_new_object(doc), *id = fj_new_object(doc);

	if (h == NULL || id == NULL ||
	    !set_str(doc, id, "system", MESSAGE_URA_SYSTEM) ||
	    !set_str(doc, id, "value", ura) ||
	    fj_set(doc, h, "identifier", id) != GW_OK)
		return NULL;
	return h;
}

/* "urn:uuid:" and a version 8 UUID made of the first 16 bytes of md
 * (a SHA-256) into out (MESSAGE_IDENT_LEN bytes). */
static void
urn_of_digest(const unsigned char md[32], char out[MESSAGE_IDENT_LEN])
{
	unsigned char u[16];
	char hex[33];

	memcpy(u, md, sizeof(u));
	u[6] = (unsigned char)((u[6] & 0x0f) | 0x80); /* version 8 */
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	util_hex(u, sizeof(u), hex);
	snprintf(out, MESSAGE_IDENT_LEN, "urn:uuid:%.8s-%.4s-%.4s-%.4s-%.12s",
		 hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* A fullUrl for the n-th entry made: random without a seed (the message
 * identifier), else derived from seed and n. */
static struct fj_node *
new_urn(struct fj_doc *doc, const char *seed, unsigned n)
{
	char urn[MESSAGE_IDENT_LEN] = "urn:uuid:", text[320];
	unsigned char md[32];
	unsigned int mdlen = 0;
	int len;

	if (seed == NULL) {
		util_uuid(urn + 9);
		return fj_new_string(doc, urn);
	}
	len = snprintf(text, sizeof(text), "pzpgw-fullurl\n%u\n%s", n, seed);
	if (len < 0 || (size_t)len >= sizeof(text) ||
	    EVP_Digest(text, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1)
		return NULL;
	urn_of_digest(md, urn);
	return fj_new_string(doc, urn);
}

/* Add one resource (copied) as an entry and a focus reference to it. */
static bool
add_entry(struct fj_doc *doc, struct fj_node *entries, struct fj_node *focus,
	  const struct fj_node *res, const char *full_url, const char *seed)
{
	struct fj_node *e = fj_new_object(doc), *f = fj_new_object(doc);
	struct fj_node *url =
	    full_url ? fj_new_string(doc, full_url)
		     : new_urn(doc, seed, (unsigned)entries->u.kids.count);
	struct fj_node *copy = fj_copy(doc, res);

	if (e == NULL || f == NULL || url == NULL || copy == NULL ||
	    fj_set(doc, e, "fullUrl", url) != GW_OK ||
	    fj_set(doc, e, "resource", copy) != GW_OK ||
	    !set_str(doc, f, "reference", url->u.str.s))
		return false;
	fj_append(entries, e);
	fj_append(focus, f);
	return true;
}

enum gw_err
message_wrap(const struct fj_node *content, const char *sender,
	     const char *const *receivers, size_t nreceivers, const char *event,
	     const char *identifier, struct fj_doc **out, char *errbuf,
	     size_t errlen)
{
	struct fj_doc *doc = NULL;
	struct fj_node *b, *ident, *entries, *mh, *mhe, *ev, *dests, *focus,
	    *src, *urn;
	const char *rt = fj_get_str(content, "resourceType");
	char now[32], endpoint[32];

	*out = NULL;
	if (rt == NULL) {
		snprintf(errbuf, errlen, "the input is not a FHIR resource");
		return GW_INVALID;
	}
	if ((doc = fj_doc_new()) == NULL)
		goto nomem;
	util_rfc3339(util_wall_ms() / 1000, now, sizeof(now));
	b = fj_new_object(doc);
	ident = fj_new_object(doc);
	entries = fj_new_array(doc);
	mhe = fj_new_object(doc);
	mh = fj_new_object(doc);
	ev = fj_new_object(doc);
	dests = fj_new_array(doc);
	focus = fj_new_array(doc);
	src = fj_new_object(doc);
	if (b == NULL || ident == NULL || entries == NULL || mhe == NULL ||
	    mh == NULL || ev == NULL || dests == NULL || focus == NULL ||
	    src == NULL ||
	    (urn = identifier != NULL ? fj_new_string(doc, identifier)
				      : new_urn(doc, NULL, 0)) == NULL)
		goto nomem;
	doc->root = b;
	if (!set_str(doc, b, "resourceType", "Bundle") ||
	    !set_str(doc, ident, "system", "urn:ietf:rfc:3986") ||
	    fj_set(doc, ident, "value", urn) != GW_OK ||
	    fj_set(doc, b, "identifier", ident) != GW_OK ||
	    !set_str(doc, b, "type", "message") ||
	    !set_str(doc, b, "timestamp", now) ||
	    !set_str(doc, mh, "resourceType", "MessageHeader") ||
	    !set_str(doc, ev, "system", MESSAGE_EVENT_SYSTEM) ||
	    !set_str(doc, ev, "code", event) ||
	    fj_set(doc, mh, "eventCoding", ev) != GW_OK)
		goto nomem;
	for (size_t i = 0; i < nreceivers; i++) {
		struct fj_node *d = fj_new_object(doc);
		struct fj_node *r = ura_holder(doc, receivers[i]);

		snprintf(endpoint, sizeof(endpoint), "urn:ura:%s",
			 receivers[i]);
		if (d == NULL || r == NULL ||
		    !set_str(doc, d, "endpoint", endpoint) ||
		    fj_set(doc, d, "receiver", r) != GW_OK)
			goto nomem;
		fj_append(dests, d);
	}
	snprintf(endpoint, sizeof(endpoint), "urn:ura:%s", sender);
	if (fj_set(doc, mh, "destination", dests) != GW_OK ||
	    fj_set(doc, mh, "sender", ura_holder(doc, sender)) != GW_OK ||
	    !set_str(doc, src, "software", "pzpgw") ||
	    !set_str(doc, src, "endpoint", endpoint) ||
	    fj_set(doc, mh, "source", src) != GW_OK)
		goto nomem;
	if (fj_set(doc, mhe, "fullUrl", new_urn(doc, identifier, 0)) != GW_OK ||
	    fj_set(doc, mhe, "resource", mh) != GW_OK)
		goto nomem;
	fj_append(entries, mhe);
	if (strcmp(rt, "Bundle") == 0) {
		const struct fj_node *in = fj_get(content, "entry");

		for (const struct fj_node *e = in ? in->u.kids.first : NULL;
		     e != NULL; e = e->next) {
			const struct fj_node *res = fj_get(e, "resource");

			if (res == NULL)
				continue;
			if (!add_entry(doc, entries, focus, res,
				       fj_get_str(e, "fullUrl"), identifier))
				goto nomem;
		}
	} else if (!add_entry(doc, entries, focus, content, NULL, identifier)) {
		goto nomem;
	}
	if (focus->u.kids.count == 0) {
		snprintf(errbuf, errlen, "the input Bundle has no resources");
		fj_doc_free(doc);
		return GW_INVALID;
	}
	if (fj_set(doc, mh, "focus", focus) != GW_OK ||
	    fj_set(doc, b, "entry", entries) != GW_OK)
		goto nomem;
	*out = doc;
	return GW_OK;
nomem:
	fj_doc_free(doc);
	snprintf(errbuf, errlen, "out of memory");
	return GW_NOMEM;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

enum gw_err
message_wrap_identifier(const struct fj_node *content, const char *sender,
			const char *const *receivers, size_t nreceivers,
			const char *event, char out[MESSAGE_IDENT_LEN])
{
	const char *sorted[MESSAGE_MAX_RECEIVERS];
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	struct buf text;
	enum gw_err err = GW_CRYPTO;
	bool ok;

	out[0] = '\0';
	if (nreceivers > MESSAGE_MAX_RECEIVERS)
		return GW_INVALID;
	buf_init(&text, (size_t)128 * 1024 * 1024); /* 2x send's input max */
	if ((err = fj_dump(content, 0, &text)) != GW_OK)
		goto done;
	err = GW_CRYPTO;
	memcpy(sorted, receivers, nreceivers * sizeof(*sorted));
	qsort(sorted, nreceivers, sizeof(*sorted), cmp_str);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto done;
	/* Each field ends in a newline, which no URA or event code holds:
	 * one input cannot pass for another. */
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, "pzpgw-send\n", 11) == 1 &&
	     EVP_DigestUpdate(ctx, sender, strlen(sender)) == 1 &&
	     EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
	     EVP_DigestUpdate(ctx, event, strlen(event)) == 1 &&
	     EVP_DigestUpdate(ctx, "\n", 1) == 1;
	for (size_t i = 0; ok && i < nreceivers; i++)
		ok = EVP_DigestUpdate(ctx, sorted[i], strlen(sorted[i])) == 1 &&
		     EVP_DigestUpdate(ctx, "\n", 1) == 1;
	ok = ok && EVP_DigestUpdate(ctx, text.data, text.len) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
	if (!ok)
		goto done;
	urn_of_digest(md, out);
	err = GW_OK;
done:
	EVP_MD_CTX_free(ctx);
	buf_cleanup(&text);
	return err;
}

/* An information issue of the envelope conversion. */
static void
note(json_t *report, const char *expr, const char *msg)
{
	if (report != NULL)
		fhir_outcome_add(report, FHIR_INFORMATION, "informational",
				 expr, 0, 0, "%s", msg);
}

/* Rename member from of obj to `to`, a literal (the key is borrowed). */
static void
rename_member(struct fj_node *obj, const char *from, const char *to)
{
	struct fj_node *m = fj_get(obj, from);

	if (m == NULL)
		return;
	m->key = to;
	m->keylen = strlen(to);
}

/* STU3 envelope to R4 (message_convert). */
static enum gw_err
envelope_to_r4(struct fj_doc *doc, struct fj_node *mh, json_t *report)
{
	struct fj_node *dest = fj_get(mh, "destination"), *ts;
	size_t ndest =
	    dest != NULL && dest->type == FJ_ARRAY ? dest->u.kids.count : 0;
	char ura[MESSAGE_URA_LEN + 1];

	/* An envelope already in the R4 form keeps its eventCoding. */
	if (fj_get(mh, "event") != NULL) {
		fj_remove(mh, "eventCoding");
		rename_member(mh, "event", "eventCoding");
	}
	for (struct fj_node *d = ndest ? dest->u.kids.first : NULL; d != NULL;
	     d = d->next) {
		struct fj_node *r;

		if (fj_get(d, "receiver") != NULL ||
		    !stu3_dest_ura(mh, d, ndest, ura))
			continue;
		if ((r = ura_holder(doc, ura)) == NULL ||
		    fj_set(doc, d, "receiver", r) != GW_OK)
			return GW_NOMEM;
	}
	if (fj_remove(mh, "receiver"))
		note(report, MH ".receiver",
		     "the STU3 MessageHeader.receiver is carried as "
		     "destination.receiver in R4");
	if ((ts = fj_get(mh, "timestamp")) != NULL) {
		if (fj_get(doc->root, "timestamp") == NULL) {
			struct fj_node *c = fj_copy(doc, ts);

			if (c == NULL ||
			    fj_set(doc, doc->root, "timestamp", c) != GW_OK)
				return GW_NOMEM;
		}
		fj_remove(mh, "timestamp");
		note(report, MH ".timestamp",
		     "the STU3 MessageHeader.timestamp is carried as "
		     "Bundle.timestamp in R4");
	}
	return GW_OK;
}

/* R4 envelope to STU3 (message_convert). */
static enum gw_err
envelope_to_stu3(struct fj_doc *doc, struct fj_node *mh, json_t *report)
{
	struct fj_node *dest = fj_get(mh, "destination");
	const struct fj_node *ts = fj_get(doc->root, "timestamp");
	size_t ndest =
	    dest != NULL && dest->type == FJ_ARRAY ? dest->u.kids.count : 0;
	char ura[MESSAGE_URA_LEN + 1], ep[32];

	if (fj_get(mh, "eventCoding") != NULL) {
		fj_remove(mh, "event");
		rename_member(mh, "eventCoding", "event");
	}
	for (struct fj_node *d = ndest ? dest->u.kids.first : NULL; d != NULL;
	     d = d->next) {
		struct fj_node *r = fj_get(d, "receiver"), *c;

		if (r == NULL)
			continue;
		/* The single receiver goes to STU3's MessageHeader.receiver;
		 * every one stays named by its endpoint urn:ura:URA. */
		if (ndest == 1 && fj_get(mh, "receiver") == NULL) {
			if ((c = fj_copy(doc, r)) == NULL ||
			    fj_set(doc, mh, "receiver", c) != GW_OK)
				return GW_NOMEM;
		}
		if (ura_of(r, ura)) {
			snprintf(ep, sizeof(ep), "urn:ura:%s", ura);
			if ((c = fj_new_string(doc, ep)) == NULL ||
			    fj_set(doc, d, "endpoint", c) != GW_OK)
				return GW_NOMEM;
		}
		fj_remove(d, "receiver");
	}
	note(report, MH ".destination",
	     "R4 destination.receiver is carried in STU3 as "
	     "destination.endpoint urn:ura:URA (and MessageHeader.receiver "
	     "for a single destination)");
	if (ts != NULL && fj_get(mh, "timestamp") == NULL) {
		struct fj_node *c = fj_copy(doc, ts);

		if (c == NULL || fj_set(doc, mh, "timestamp", c) != GW_OK)
			return GW_NOMEM;
		note(report, "Bundle.timestamp",
		     "R4 Bundle.timestamp is carried as the STU3 "
		     "MessageHeader.timestamp");
	}
	return GW_OK;
}

enum gw_err
message_convert(struct fj_doc *doc, bool to_r4, json_t *report)
{
	struct fj_node *mh;

	if (doc->root == NULL ||
	    !fj_str_eq(fj_get(doc->root, "resourceType"), "Bundle") ||
	    !fj_str_eq(fj_get(doc->root, "type"), "message"))
		return GW_OK;
	mh = fj_get(fj_at(fj_get(doc->root, "entry"), 0), "resource");
	if (!fj_str_eq(fj_get(mh, "resourceType"), "MessageHeader"))
		return GW_INVALID;
	return to_r4 ? envelope_to_r4(doc, mh, report)
		     : envelope_to_stu3(doc, mh, report);
}
