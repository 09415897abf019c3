/*
 * validate_ref: references: resolving them in contained resources and the
 * enclosing Bundles, and checking the target's type and profiles.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_impl.h"

/* ---- references ---- */

const char *
v_url_type(struct validate_ctx *ctx, const char *url,
	   const struct rules_structure **sd)
{
	const char *slash;

	*sd = v_rule_structure(ctx, url);
	if (*sd != NULL && (*sd)->type != NULL)
		return (*sd)->type;
	slash = strrchr(url, '/');
	return slash != NULL ? slash + 1 : url;
}

const struct fj_node *
v_find_contained(const struct fj_node *res, const char *id)
{
	const struct fj_node *c = fj_get(res, "contained");

	if (c == NULL || c->type != FJ_ARRAY)
		return NULL;
	for (c = c->u.kids.first; c != NULL; c = c->next)
		if (c->type == FJ_OBJECT && fj_str_eq(fj_get(c, "id"), id))
			return c;
	return NULL;
}

/*
 * The entry that a Type/id reference starting at p names ("Type/id" or
 * "Type/id/_history/v"), as index + 1, 0 when none. key is scratch space
 * of at least strlen(p) + 1 bytes.
 */
static size_t
tid_at(const struct vbundle *b, const char *p, char *key)
{
	const char *s1 = strchr(p, '/'), *end;
	size_t kl;

	if (s1 == NULL || s1 == p)
		return 0;
	end = strchr(s1 + 1, '/');
	if (end == NULL)
		end = s1 + 1 + strlen(s1 + 1);
	else if (strncmp(end, "/_history/", 10) != 0)
		return 0;
	kl = (size_t)(end - p);
	memcpy(key, p, kl);
	key[kl] = '\0';
	return v_idx_get(&b->by_tid, key);
}

/*
 * Find the target of reference ref in the Bundles around the resource:
 * an entry whose fullUrl is ref, else one whose Type/id ref is (a
 * relative reference, possibly with _history) or ends with (an absolute
 * http(s) URL). Ids with a '/' are not FHIR ids and are not indexed. The
 * lookups use the Bundle's indexes: linear in the length of ref, not in
 * the number of entries.
 */
const struct fj_node *
v_resolve_ref(const struct vrun *r, const char *ref)
{
	size_t rl = strlen(ref);
	char stack[256], *key = rl < sizeof(stack) ? stack : malloc(rl + 1);
	const struct fj_node *found = NULL;

	if (key == NULL)
		return NULL;
	for (const struct vbundle *b = r->bundle; b != NULL; b = b->up) {
		size_t best = v_idx_get(&b->by_url, ref), k;

		if (best != 0) {
			found = b->e[best - 1].res;
			break;
		}
		if (strchr(ref, '/') == NULL || strncmp(ref, "urn:", 4) == 0)
			continue;
		if (strncmp(ref, "http", 4) != 0) {
			best = tid_at(b, ref, key);
		} else {
			/* any Type/id tail of the URL; the first entry in
			 * Bundle order wins */
			for (const char *p = ref; p != NULL;
			     p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
				if ((k = tid_at(b, p, key)) != 0 &&
				    (best == 0 || k < best))
					best = k;
		}
		if (best != 0) {
			found = b->e[best - 1].res;
			break;
		}
	}
	if (key != stack)
		free(key);
	return found;
}

/* The resource type a literal reference names ("Patient/1", ".../fhir/
 * Patient/1/_history/2"), copied into buf, when it is a known resource
 * type; else NULL. */
static const char *
ref_url_type(struct vrun *r, const char *ref, char *buf, size_t len)
{
	const char *seg[4] = {NULL, NULL, NULL, NULL}, *end, *p;
	size_t n = 0, tl;
	const struct vtype *t;

	if (strncmp(ref, "urn:", 4) == 0 || strchr(ref, '?') != NULL)
		return NULL;
	end = ref + strlen(ref);
	/* the last four '/'-separated segments, newest first */
	for (p = end; p > ref && n < 4;) {
		const char *q = p;

		while (q > ref && q[-1] != '/')
			q--;
		seg[n++] = q;
		p = q > ref ? q - 1 : ref;
		if (q == ref)
			break;
	}
	if (n >= 4 && strncmp(seg[1], "_history/", 9) == 0) {
		seg[0] = seg[2];
		seg[1] = seg[3];
		n -= 2;
	}
	if (n < 2 || seg[1] >= seg[0])
		return NULL;
	tl = (size_t)(seg[0] - seg[1]) - 1; /* without the '/' */
	if (tl == 0 || tl >= len)
		return NULL;
	memcpy(buf, seg[1], tl);
	buf[tl] = '\0';
	/* a name the rules do not know is no resource type; asked of the
	 * type cache it would stay there (the document chose the name) */
	if (rules_type(r->ctx->set, buf) == NULL ||
	    (t = v_vtype_get(r->ctx, buf)) == NULL || t->kind != VK_RESOURCE)
		return NULL;
	return buf;
}

/* Whether target claims profile sd in its meta.profile, or a profile
 * derived from it: its own validation then judges it against sd. */
static bool
claims_profile(const struct vrun *r, const struct fj_node *target,
	       const struct rules_structure *sd)
{
	const struct fj_node *meta = fj_get(target, "meta"), *mp;

	mp = meta != NULL && meta->type == FJ_OBJECT ? fj_get(meta, "profile")
						     : NULL;
	if (mp == NULL || mp->type != FJ_ARRAY)
		return false;
	for (mp = mp->u.kids.first; mp != NULL; mp = mp->next) {
		const struct rules_structure *c;

		if (mp->type != FJ_STRING)
			continue;
		c = rules_structure(r->ctx->set, mp->u.str.s);
		for (int i = 0; i < 32 && c != NULL; i++) {
			if (c == sd)
				return true;
			c = c->base != NULL
				? rules_structure(r->ctx->set, c->base)
				: NULL;
		}
	}
	return false;
}

/* Where target is, for a message: "Bundle entry N" or "contained". */
static void
target_where(const struct vrun *r, const struct fj_node *target, char *buf,
	     size_t len)
{
	for (const struct vbundle *b = r->bundle; b != NULL; b = b->up)
		for (size_t i = 0; i < b->n; i++)
			if (b->e[i].res == target) {
				snprintf(buf, len, "Bundle entry %zu", i);
				return;
			}
	snprintf(buf, len, "contained");
}

void
v_check_reference(struct vrun *r, const struct rules_element *el,
		  const struct fj_node *v)
{
	const struct fj_node *target = NULL;
	const struct rules_type *rt = NULL;
	const char *ref, *ttype, *rtyp;
	bool ok = false, any = false;
	char allowed[512], urltype[64];
	size_t alen = 0;

	if ((ref = fj_get_str(v, "reference")) == NULL)
		return;
	if (ref[0] == '#') {
		if (ref[1] == '\0')
			return; /* the containing resource itself */
		if (r->root != NULL &&
		    (target = v_find_contained(r->root, ref + 1)) == NULL &&
		    (r->resource == NULL ||
		     (target = v_find_contained(r->resource, ref + 1)) ==
			 NULL)) {
			v_issue(r, FHIR_ERROR, "structure", v,
				"the contained resource '%s' was not found",
				ref);
			return;
		}
	} else {
		target = v_resolve_ref(r, ref);
		if (target == NULL) {
			/* a urn: names nothing outside the Bundle, so it
			 * must resolve in every Bundle (a transaction's
			 * internal references too); a relative one only in
			 * documents and messages (must_resolve) */
			if (r->bundle != NULL &&
			    (strncmp(ref, "urn:", 4) == 0 ||
			     (r->bundle->must_resolve &&
			      strchr(ref, ':') == NULL &&
			      strchr(ref, '/') != NULL))) {
				v_issue(r, FHIR_ERROR, "not-found", v,
					"the reference '%s' does not resolve "
					"within the Bundle",
					ref);
				return;
			}
		}
	}
	/* the type: the target's, else the one its URL implies */
	if (target != NULL)
		ttype = fj_get_str(target, "resourceType");
	else
		ttype = ref_url_type(r, ref, urltype, sizeof(urltype));
	if (ttype == NULL)
		return;
	if ((rtyp = fj_get_str(v, "type")) != NULL &&
	    strcmp(rtyp, ttype) != 0 && strchr(rtyp, ':') == NULL) {
		size_t o2 = v_path_add(r, ".", "type", 4);

		v_issue(r, FHIR_ERROR, "value", fj_get(v, "type"),
			"the reference type '%.60s' does not match the %s the "
			"reference points to",
			rtyp, ttype);
		v_path_pop(r, o2);
	}
	for (size_t i = 0; i < el->ntypes; i++)
		if (strcmp(el->types[i].code, "Reference") == 0)
			rt = &el->types[i];
	if (rt == NULL || rt->ntargets == 0)
		return;
	for (size_t i = 0; i < rt->ntargets && !ok; i++) {
		const struct rules_structure *sd;
		const char *t = v_url_type(r->ctx, rt->targets[i], &sd);

		if (strcmp(t, "Resource") == 0) {
			ok = true;
			break;
		}
		if (strcmp(t, ttype) != 0)
			continue;
		any = true;
		/* a target outside the document cannot be checked against a
		 * profile; its type is all that is known. One that claims
		 * the profile is judged against it by its own validation. */
		if (sd == NULL || !sd->constraint || target == NULL ||
		    claims_profile(r, target, sd) || r->conforms(r, target, sd))
			ok = true;
	}
	if (ok)
		return;
	/* the allowed targets, for the message (written only now: every
	 * reference of a message went through here) */
	allowed[0] = '\0';
	for (size_t i = 0; i < rt->ntargets; i++) {
		int n = snprintf(allowed + alen, sizeof(allowed) - alen, "%s%s",
				 alen > 0 ? ", " : "", rt->targets[i]);

		if (n > 0 && (size_t)n < sizeof(allowed) - alen)
			alen += (size_t)n;
	}
	/* a target with errors of its own would fail any profile: say so
	 * once, pointing there, rather than adding a cascade of errors */
	if (any && target != NULL && r->own_ok != NULL &&
	    !r->own_ok(r, target)) {
		char where[64];

		target_where(r, target, where, sizeof(where));
		v_issue(r, FHIR_INFORMATION, "informational", v,
			"the referenced %s (%s) has errors of its own, "
			"reported there; whether it conforms to an allowed "
			"target profile (%s) was not judged",
			ttype, where, allowed);
		return;
	}
	if (!any)
		v_issue(r, FHIR_ERROR, "structure", v,
			"the reference points to a %s, which is not an allowed "
			"target (%s)",
			ttype, allowed);
	else
		v_issue(r, FHIR_ERROR, "structure", v,
			"the referenced %s does not conform to any allowed "
			"target profile (%s)",
			ttype, allowed);
}
