/*
 * validate_profile: choosing the profile of a resource without
 * meta.profile (fixed values and required slices it meets), and the
 * Bundle's own rules: its entry index and fullUrl checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_impl.h"

/* ---- profile detection ---- */

static void
vcands_free(void *p)
{
	struct vcands *c = p;

	if (c != NULL)
		free(c->sd);
	free(c);
}

void
v_cands_free(struct validate_ctx *ctx)
{
	hmap_free(&ctx->cands, vcands_free);
	ctx->cands_built = false;
}

/* Whether obj meets the fixed/pattern values and required slices that
 * node's kids define (and, two levels down, those of single-valued kids:
 * Observation.code.coding:loinc); *score counts the ones met. */
static bool
patterns_match(struct vrun *r, const struct vnode *node,
	       const struct fj_node *obj, int *score, int depth)
{
	const struct vnode *pn = v_kids_of(node);

	for (size_t i = 0; i < pn->nkids; i++) {
		const struct vnode *k = pn->kids[i];
		const struct rules_element *el = k->el;
		const struct fj_node *v;
		bool hit = false;

		if (k->choice)
			continue;
		v = fj_get(obj, k->name);
		if (el->fixed != NULL || el->pattern != NULL) {
			if (v == NULL) {
				if (el->min > 0)
					return false;
				continue;
			}
			for (const struct fj_node *x =
				 v->type == FJ_ARRAY ? v->u.kids.first : v;
			     x != NULL && !hit;
			     x = v->type == FJ_ARRAY ? x->next : NULL)
				hit = el->fixed != NULL
					  ? fj_equal(x, el->fixed, FDEC_DOUBLE)
					  : v_fj_contains_v(x, el->pattern);
			if (!hit)
				return false;
			(*score)++;
			continue;
		}
		for (size_t j = 0; j < k->nslices; j++) {
			const struct vnode *s = k->slices[j];
			struct vitem it;

			if (s->el->min == 0)
				continue;
			if (v == NULL)
				return false;
			hit = false;
			memset(&it, 0, sizeof(it));
			for (const struct fj_node *x =
				 v->type == FJ_ARRAY ? v->u.kids.first : v;
			     x != NULL && !hit;
			     x = v->type == FJ_ARRAY ? x->next : NULL) {
				it.v = x;
				hit = v_slice_matches(r, k, s, &it, NULL);
			}
			if (!hit)
				return false;
			(*score)++;
		}
		if (depth < 2 && k->nslices == 0 && v_kids_of(k)->nkids > 0 &&
		    v != NULL && v->type == FJ_OBJECT &&
		    !patterns_match(r, k, v, score, depth + 1))
			return false;
	}
	return true;
}

static bool
top_patterns_match(struct vrun *r, const struct vstruct *vs,
		   const struct fj_node *res, int *score)
{
	*score = 0;
	return patterns_match(r, vs->root, res, score, 0);
}

/* True when sd has anc in its base chain. */
static bool
derives_from(struct vrun *r, const struct rules_structure *sd,
	     const struct rules_structure *anc)
{
	for (int i = 0; i < 32 && sd != NULL && sd->base != NULL; i++) {
		if (strcmp(sd->base, anc->url) == 0)
			return true;
		sd = rules_structure(r->ctx->set, sd->base);
	}
	return false;
}

/* Index the profiles detection may choose by resource type. */
static bool
build_cands(struct validate_ctx *ctx)
{
	const struct rules_structure *sd;

	v_cands_free(ctx);
	for (size_t i = 0; (sd = rules_structure_at(ctx->set, i)) != NULL;
	     i++) {
		struct vcands *c;
		bool ok = false, found;

		if (!sd->constraint || sd->type == NULL || sd->url == NULL ||
		    sd->kind == NULL || strcmp(sd->kind, "resource") != 0)
			continue;
		for (size_t j = 0; j < ctx->ndetect && !ok; j++)
			ok = strncmp(sd->url, ctx->detect[j],
				     strlen(ctx->detect[j])) == 0;
		if (!ok)
			continue;
		c = hmap_get(&ctx->cands, sd->type, &found);
		if (c == NULL) {
			if ((c = calloc(1, sizeof(*c))) == NULL)
				return false;
			if (hmap_put(&ctx->cands, sd->type, c) != GW_OK) {
				free(c);
				return false;
			}
		}
		if (c->n == c->cap) {
			size_t ncap = c->cap == 0 ? 4 : c->cap * 2;
			const struct rules_structure **n = realloc(
			    c->sd,
			    ncap * sizeof(const struct rules_structure *));

			if (n == NULL)
				return false;
			c->sd = n;
			c->cap = ncap;
		}
		c->sd[c->n++] = sd;
	}
	ctx->cands_built = true;
	return true;
}

/* The profile of resource type rt whose fixed codes and required slices
 * the resource meets best, or NULL. */
const struct rules_structure *
v_detect_profile(struct vrun *r, const struct fj_node *res, const char *rt)
{
	const struct rules_structure *sd, *best = NULL;
	int bestscore = 0, score;

	const struct vcands *c;
	bool found;

	if (!r->ctx->cands_built && !build_cands(r->ctx)) {
		r->nomem = true;
		return NULL;
	}
	c = hmap_get(&r->ctx->cands, rt, &found);
	for (size_t i = 0; c != NULL && i < c->n; i++) {
		const struct vstruct *vs;

		sd = c->sd[i];
		if ((vs = v_vstruct_get(r->ctx, sd)) == NULL)
			continue;
		if (!top_patterns_match(r, vs, res, &score) || score == 0)
			continue;
		if (score > bestscore || (score == bestscore &&
					  (derives_from(r, sd, best) ||
					   (!derives_from(r, best, sd) &&
					    strcmp(sd->url, best->url) < 0)))) {
			best = sd;
			bestscore = score;
		}
	}
	return best;
}

/* A RESTful fullUrl (".../Type/...") must end with the resource's
 * Type/id (a _history/version tail allowed). */
static void
check_fullurl(struct vrun *r, const struct fj_node *e, const struct ventry *en,
	      size_t i)
{
	char want[256];
	const char *f = en->fullurl, *hist;
	size_t wl, fl;

	if (f == NULL)
		return;
	if (strchr(f, ':') == NULL) {
		size_t old = v_path_push(r, ".entry[%zu].fullUrl", i);

		v_issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
			"the fullUrl must be an absolute URL (not '%.200s')",
			f);
		v_path_pop(r, old);
		return;
	}
	if (en->rtype == NULL || en->id == NULL || strncmp(f, "urn:", 4) == 0)
		return;
	snprintf(want, sizeof(want), "/%s/", en->rtype);
	if (strstr(f, want) == NULL)
		return;
	snprintf(want, sizeof(want), "/%s/%s", en->rtype, en->id);
	wl = strlen(want);
	hist = strstr(f, "/_history/");
	fl = hist != NULL ? (size_t)(hist - f) : strlen(f);
	if (fl >= wl && memcmp(f + fl - wl, want, wl) == 0)
		return;
	{
		size_t old = v_path_push(r, ".entry[%zu].fullUrl", i);

		v_issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
			"the fullUrl '%.200s' looks like a RESTful server URL, "
			"so it must end with the resource's type and id (%s)",
			f, want);
		v_path_pop(r, old);
	}
}

/* Free what bundle_build allocated; b itself is the caller's. */
void
v_bundle_cleanup(struct vbundle *b)
{
	free(b->e);
	hmap_free(&b->by_url, NULL);
	hmap_free(&b->by_tid, NULL);
	hmap_free(&b->by_ver, NULL);
}

/* meta.versionId of an entry's resource, "" when it has none. */
static const char *
entry_version(const struct ventry *en)
{
	const struct fj_node *meta =
	    en->res != NULL ? fj_get(en->res, "meta") : NULL;
	const char *v = meta != NULL && meta->type == FJ_OBJECT
			    ? fj_get_str(meta, "versionId")
			    : NULL;

	return v != NULL ? v : "";
}

/* Index entry i under its fullUrl and version in b->by_ver; *prev: the
 * index + 1 of an earlier entry with both the same, else 0. False
 * without memory. */
static bool
ver_put(struct vbundle *b, size_t i, size_t *prev)
{
	const char *u = b->e[i].fullurl, *v = entry_version(&b->e[i]);
	size_t kl = strlen(u) + strlen(v) + 2;
	char stack[256], *key = kl <= sizeof(stack) ? stack : malloc(kl);
	bool ok = key != NULL;

	*prev = 0;
	if (ok) {
		snprintf(key, kl, "%s\n%s", u, v);
		if ((*prev = v_idx_get(&b->by_ver, key)) == 0)
			ok = hmap_put(&b->by_ver, key,
				      (void *)(uintptr_t)(i + 1)) == GW_OK;
	}
	if (key != stack)
		free(key);
	return ok;
}

/* Bundle.link: the paging and identity relations occur at most once
 * (a searchset's self/first/next/previous/last say one thing each). */
static void
check_links(struct vrun *r, const struct fj_node *res)
{
	static const char *const once[] = {"self", "first", "next", "previous",
					   "last"};
	const struct fj_node *links = fj_get(res, "link"), *l;
	size_t seen[5] = {0}, i = 0;

	if (links == NULL || links->type != FJ_ARRAY)
		return;
	for (l = links->u.kids.first; l != NULL; l = l->next, i++) {
		const char *rel =
		    l->type == FJ_OBJECT ? fj_get_str(l, "relation") : NULL;

		for (size_t k = 0; rel != NULL && k < 5; k++) {
			size_t old;

			if (strcmp(rel, once[k]) != 0)
				continue;
			if (seen[k] == 0) {
				seen[k] = i + 1;
				break;
			}
			old = v_path_push(r, ".link[%zu].relation", i);
			v_issue(r, FHIR_ERROR, "invalid", fj_get(l, "relation"),
				"the link relation '%s' occurs more than once "
				"(also link %zu); it may occur once",
				rel, seen[k] - 1);
			v_path_pop(r, old);
			break;
		}
	}
}

bool
v_bundle_build(struct vrun *r, const struct fj_node *res, struct vbundle *b)
{
	const struct fj_node *entries = fj_get(res, "entry"), *e;
	const char *type = fj_get_str(res, "type");
	bool history = type != NULL && strcmp(type, "history") == 0;
	size_t i = 0;

	memset(b, 0, sizeof(*b));
	b->by_url.kind = b->by_tid.kind = b->by_ver.kind = HMAP_STR_OWN;
	/* Relative references must resolve inside documents and messages,
	 * which travel as a whole; in a collection, searchset or
	 * transaction they may name resources on a server (urn: ones must
	 * resolve in every Bundle: see v_check_reference). */
	b->must_resolve = type != NULL && (strcmp(type, "message") == 0 ||
					   strcmp(type, "document") == 0);
	check_links(r, res);
	if (entries == NULL || entries->type != FJ_ARRAY ||
	    entries->u.kids.count == 0)
		return true;
	if ((b->e = calloc(entries->u.kids.count, sizeof(*b->e))) == NULL) {
		r->nomem = true;
		return false;
	}
	for (e = entries->u.kids.first; e != NULL; e = e->next, i++) {
		const struct fj_node *rs;
		size_t j, k;

		if (e->type != FJ_OBJECT)
			continue;
		b->e[i].fullurl = fj_get_str(e, "fullUrl");
		rs = fj_get(e, "resource");
		if (rs != NULL && rs->type == FJ_OBJECT) {
			b->e[i].res = rs;
			b->e[i].rtype = fj_get_str(rs, "resourceType");
			b->e[i].id = fj_get_str(rs, "id");
			check_fullurl(r, e, &b->e[i], i);
		}
		if (b->e[i].rtype != NULL && b->e[i].id != NULL &&
		    strchr(b->e[i].rtype, '/') == NULL &&
		    strchr(b->e[i].id, '/') == NULL) {
			size_t kl =
			    strlen(b->e[i].rtype) + strlen(b->e[i].id) + 2;
			char stack[256],
			    *key = kl <= sizeof(stack) ? stack : malloc(kl);
			bool ok = key != NULL;

			if (ok) {
				/* kl is exact: the check only tells gcc the
				 * key is whole (-Wformat-truncation) */
				ok = (size_t)snprintf(key, kl, "%s/%s",
						      b->e[i].rtype,
						      b->e[i].id) < kl &&
				     (v_idx_get(&b->by_tid, key) != 0 ||
				      hmap_put(&b->by_tid, key,
					       (void *)(uintptr_t)(i + 1)) ==
					  GW_OK);
			}
			if (key != stack)
				free(key);
			if (!ok) {
				r->nomem = true;
				return false;
			}
		}
		if (b->e[i].fullurl == NULL)
			continue;
		if ((j = v_idx_get(&b->by_url, b->e[i].fullurl)) == 0) {
			if (hmap_put(&b->by_url, b->e[i].fullurl,
				     (void *)(uintptr_t)(i + 1)) != GW_OK) {
				r->nomem = true;
				return false;
			}
			continue;
		}
		/* bdl-7: a fullUrl may repeat with another meta.versionId,
		 * and anyhow in a history Bundle */
		if (history)
			continue;
		if (!ver_put(b, j - 1, &k) || !ver_put(b, i, &k)) {
			r->nomem = true;
			return false;
		}
		if (k == 0)
			continue;
		{
			size_t old = v_path_push(r, ".entry[%zu].fullUrl", i);

			v_issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
				"fullUrl '%s' is used by entry %zu too, with "
				"the same meta.versionId; it must be unique in "
				"the Bundle unless the versions differ",
				b->e[i].fullurl, k - 1);
			v_path_pop(r, old);
		}
	}
	b->n = i;
	return true;
}
