/*
 * transform normalisation on intake (either version): urn:uuid fullUrls
 * for Bundle entries without one and the relative references to them,
 * meta.profile of the root, the Bundle's identifier and timestamp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "transform_impl.h"
#include "util.h"

/* One entry that got a fullUrl: what references to it looked like. */
struct norm_entry {
	const char *type, *id; /* borrowed from the document */
	const char *full;      /* in the document's arena */
};

/* Rewrite every "reference": "Type/id" below n that names one of the
 * entries in ents to that entry's new fullUrl; rel is n's path. */
static enum gw_err
rewrite_refs(struct xf_ctx *c, struct fj_node *n, const char *rel,
	     const struct norm_entry *ents, size_t nents, int depth)
{
	char sub[XF_PATH_MAX];
	size_t i = 0;
	enum gw_err e;

	if (depth > FJ_MAX_DEPTH + 2 ||
	    (n->type != FJ_OBJECT && n->type != FJ_ARRAY))
		return GW_OK;
	for (struct fj_node *m = n->u.kids.first; m != NULL; m = m->next, i++) {
		if (n->type == FJ_ARRAY)
			snprintf(sub, sizeof(sub), "%.*s[%zu]",
				 (int)(sizeof(sub) - 24), rel, i);
		else
			snprintf(sub, sizeof(sub), "%.*s%s%.*s",
				 (int)(sizeof(sub) - 200), rel,
				 rel[0] != '\0' ? "." : "",
				 (int)(m->keylen < 128 ? m->keylen : 128),
				 m->key);
		if (n->type == FJ_OBJECT && m->type == FJ_STRING &&
		    m->keylen == 9 && memcmp(m->key, "reference", 9) == 0) {
			for (size_t k = 0; k < nents; k++) {
				size_t tl = strlen(ents[k].type);
				const char *r = m->u.str.s;

				if (strncmp(r, ents[k].type, tl) != 0 ||
				    r[tl] != '/' ||
				    strcmp(r + tl + 1, ents[k].id) != 0)
					continue;
				if ((e = xf_note(c, sub,
						 "the relative reference %s "
						 "now names the entry's "
						 "fullUrl",
						 r)) != GW_OK)
					return e;
				m->u.str.s = ents[k].full;
				m->u.str.len = strlen(ents[k].full);
				break;
			}
			continue;
		}
		if ((e = rewrite_refs(c, m, sub, ents, nents, depth + 1)) !=
		    GW_OK)
			return e;
	}
	return GW_OK;
}

/* Give every entry without fullUrl a urn:uuid one; rewrite the
 * references to it. */
static enum gw_err
norm_full_urls(struct xf_ctx *c, struct fj_node *bundle)
{
	struct fj_node *entries = fj_get(bundle, "entry");
	struct norm_entry *ents = NULL;
	size_t nents = 0, i = 0;
	enum gw_err e = GW_OK;

	if (entries == NULL || entries->type != FJ_ARRAY ||
	    entries->u.kids.count == 0)
		return GW_OK;
	ents = calloc(entries->u.kids.count, sizeof(*ents));
	if (ents == NULL)
		return GW_NOMEM;
	for (struct fj_node *en = entries->u.kids.first; en != NULL;
	     en = en->next, i++) {
		struct fj_node *res = fj_get(en, "resource"), *full;
		char uuid[48], url[64], rel[64];

		if (en->type != FJ_OBJECT || fj_get(en, "fullUrl") != NULL ||
		    res == NULL)
			continue;
		util_uuid(uuid);
		snprintf(url, sizeof(url), "urn:uuid:%s", uuid);
		snprintf(rel, sizeof(rel), "entry[%zu].fullUrl", i);
		if ((full = fj_new_string(c->doc, url)) == NULL ||
		    fj_set(c->doc, en, "fullUrl", full) != GW_OK) {
			e = GW_NOMEM;
			goto out;
		}
		if ((e = xf_note(c, rel, "the entry had no fullUrl: %s",
				 url)) != GW_OK)
			goto out;
		if (fj_get_str(res, "resourceType") != NULL &&
		    fj_get_str(res, "id") != NULL) {
			ents[nents].type = fj_get_str(res, "resourceType");
			ents[nents].id = fj_get_str(res, "id");
			ents[nents].full = full->u.str.s;
			nents++;
		}
	}
	if (nents > 0)
		e = rewrite_refs(c, bundle, "", ents, nents, 0);
out:
	free(ents);
	return e;
}

/* Put profile first in root's meta.profile unless it is there. */
static enum gw_err
norm_profile(struct xf_ctx *c, struct fj_node *root, const char *profile)
{
	struct fj_node *meta = fj_get(root, "meta");
	struct fj_node *prof = fj_get(meta, "profile");
	struct fj_node *s;

	if (prof != NULL && prof->type == FJ_ARRAY)
		for (struct fj_node *p = prof->u.kids.first; p != NULL;
		     p = p->next)
			if (fj_str_eq(p, profile))
				return GW_OK;
	if (meta == NULL || meta->type != FJ_OBJECT) {
		if ((meta = fj_new_object(c->doc)) == NULL ||
		    fj_set(c->doc, root, "meta", meta) != GW_OK)
			return GW_NOMEM;
	}
	if (prof == NULL || prof->type != FJ_ARRAY) {
		if ((prof = fj_new_array(c->doc)) == NULL ||
		    fj_set(c->doc, meta, "profile", prof) != GW_OK)
			return GW_NOMEM;
	}
	if ((s = fj_new_string(c->doc, profile)) == NULL)
		return GW_NOMEM;
	/* first: the profile the validator chose leads */
	s->next = prof->u.kids.first;
	prof->u.kids.first = s;
	if (prof->u.kids.last == NULL)
		prof->u.kids.last = s;
	prof->u.kids.count++;
	return xf_note(c, "meta.profile", "set to the detected profile %s",
		       profile);
}

static enum gw_err
norm_bundle_id(struct xf_ctx *c, struct fj_node *b, long long now)
{
	char uuid[48], url[64], ts[40];
	struct fj_node *id, *v;
	enum gw_err e;

	if (fj_get(b, "identifier") == NULL) {
		util_uuid(uuid);
		snprintf(url, sizeof(url), "urn:uuid:%s", uuid);
		if ((id = fj_new_object(c->doc)) == NULL ||
		    (v = fj_new_string(c->doc, "urn:ietf:rfc:3986")) == NULL ||
		    fj_set(c->doc, id, "system", v) != GW_OK ||
		    (v = fj_new_string(c->doc, url)) == NULL ||
		    fj_set(c->doc, id, "value", v) != GW_OK ||
		    fj_set(c->doc, b, "identifier", id) != GW_OK)
			return GW_NOMEM;
		if ((e = xf_note(c, "identifier", "the Bundle had none: %s",
				 url)) != GW_OK)
			return e;
	}
	if (fj_get(b, "timestamp") == NULL) {
		util_rfc3339((int64_t)now, ts, sizeof(ts));
		if ((v = fj_new_string(c->doc, ts)) == NULL ||
		    fj_set(c->doc, b, "timestamp", v) != GW_OK)
			return GW_NOMEM;
		if ((e = xf_note(c, "timestamp", "the Bundle had none: %s",
				 ts)) != GW_OK)
			return e;
	}
	return GW_OK;
}

enum gw_err
xf_normalise(struct fj_doc *doc, enum rules_fhir v,
	     const struct xf_norm_opts *opts, json_t *report)
{
	struct xf_ctx c;
	const char *type;
	bool bundle;
	enum gw_err e;

	type = doc != NULL ? fj_get_str(doc->root, "resourceType") : NULL;
	if (type == NULL || doc->root->type != FJ_OBJECT) {
		if (report != NULL &&
		    fhir_outcome_add(report, FHIR_ERROR, "structure", NULL, 0,
				     0,
				     "not a FHIR resource: the document has "
				     "no resourceType") != GW_OK)
			return GW_NOMEM;
		return GW_REJECT;
	}
	memset(&c, 0, sizeof(c));
	c.doc = doc;
	c.from = c.to = v;
	c.report = report;
	snprintf(c.path, sizeof(c.path), "%.*s", (int)(sizeof(c.path) - 1),
		 type);
	bundle = strcmp(type, "Bundle") == 0;
	if (bundle) {
		c.bundle = doc->root;
		if ((e = norm_full_urls(&c, doc->root)) != GW_OK)
			return e;
	}
	if (opts != NULL && opts->root_profile != NULL &&
	    (e = norm_profile(&c, doc->root, opts->root_profile)) != GW_OK)
		return e;
	if (bundle && opts != NULL && opts->bundle_id &&
	    (e = norm_bundle_id(&c, doc->root, opts->now_unix)) != GW_OK)
		return e;
	return GW_OK;
}
