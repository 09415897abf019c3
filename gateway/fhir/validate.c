/*
 * validate: walks an fjson document against compiled StructureDefinition
 * snapshots (rules.h): JSON form, cardinality, types and primitive formats,
 * fixed/pattern, bindings, slicing, references, invariants (fhirpath.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "fhirpath.h"
#include "util.h"
#include "validate.h"
#include "validate_impl.h"
#include "xmlfhir.h"

/* ---- context ---- */

enum gw_err
validate_ctx_detect_prefix(struct validate_ctx *ctx, const char *prefix)
{
	char **n, *copy;

	for (size_t i = 0; i < ctx->ndetect; i++)
		if (strcmp(ctx->detect[i], prefix) == 0)
			return GW_OK;
	if ((copy = strdup(prefix)) == NULL ||
	    (n = realloc(ctx->detect, (ctx->ndetect + 1) * sizeof(*n))) ==
		NULL) {
		free(copy);
		return GW_NOMEM;
	}
	ctx->detect = n;
	ctx->detect[ctx->ndetect++] = copy;
	v_cands_free(ctx);
	return GW_OK;
}

enum gw_err
validate_ctx_new(const struct rules_set *set, struct validate_ctx **out)
{
	static const char *const pzp[] = {
	    "https://api.iknl.nl/docs/pzp/",
	    "https://fhir.iknl.nl/fhir/",
	};
	struct validate_ctx *ctx;

	*out = NULL;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return GW_NOMEM;
	ctx->set = set;
	ctx->structs.kind = ctx->paths.kind = HMAP_PTR;
	ctx->vsets.kind = ctx->vcodes.kind = ctx->rule_sd.kind = HMAP_PTR;
	ctx->types.kind = ctx->cands.kind = ctx->types_of.kind = HMAP_STR_OWN;
	for (size_t i = 0; i < sizeof(pzp) / sizeof(pzp[0]); i++)
		if (validate_ctx_detect_prefix(ctx, pzp[i]) != GW_OK) {
			validate_ctx_free(ctx);
			return GW_NOMEM;
		}
	*out = ctx;
	return GW_OK;
}

void
validate_ctx_free(struct validate_ctx *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->structs.cap; i++)
		if (ctx->structs.slot[i].key != NULL)
			v_vstruct_free(ctx->structs.slot[i].val.ptr);
	hmap_free(&ctx->structs, NULL);
	hmap_free(&ctx->types, free);
	for (size_t i = 0; i < ctx->paths.cap; i++)
		if (ctx->paths.slot[i].key != NULL &&
		    ctx->paths.slot[i].val.ptr != (void *)&v_fp_bad)
			fhirpath_free(ctx->paths.slot[i].val.ptr);
	hmap_free(&ctx->paths, NULL);
	hmap_free(&ctx->vsets, NULL);
	hmap_free(&ctx->rule_sd, NULL);
	hmap_free(&ctx->types_of, NULL);
	for (size_t i = 0; i < ctx->ndetect; i++)
		free(ctx->detect[i]);
	free(ctx->detect);
	v_cands_free(ctx);
	for (size_t i = 0; i < ctx->vcodes.cap; i++)
		if (ctx->vcodes.slot[i].key != NULL) {
			struct vcodes *vc = ctx->vcodes.slot[i].val.ptr;

			free(vc->codes);
			free(vc);
		}
	hmap_free(&ctx->vcodes, NULL);
	free(ctx);
}

const char *
validate_last_profile(const struct validate_ctx *ctx)
{
	return ctx != NULL ? ctx->last_profile : NULL;
}

/* ---- the walk ---- */

static void validate_resource(struct vrun *r, const struct fj_node *res,
			      const char *const *profiles, size_t nprofiles,
			      bool is_root, const struct rules_structure *only);
static void validate_item(struct vrun *r, const struct vstruct *vs,
			  const struct vnode *d, const char *type,
			  const struct fj_node *v, const struct fj_node *u);
static bool conforms(struct vrun *r, const struct fj_node *res,
		     const struct rules_structure *sd);

struct vmember {
	const struct fj_node *m;
	const struct vnode *kid;
	const char *type;
	bool under;
};

static void check_kid(struct vrun *r, const struct vstruct *vs,
		      const struct vnode *k, const struct vmember *ms,
		      size_t nm, const struct fj_node *obj);

/* Check the members of object obj against the child definitions kids. */
static void
check_members(struct vrun *r, const struct vstruct *vs, const struct vnode *pn,
	      const struct fj_node *obj, bool resource_root, bool skip_value)
{
	struct vnode *const *kids = pn->kids;
	size_t nkids = pn->nkids;
	struct vmember stackms[48], *ms = stackms;
	size_t nm = 0, cnt = obj->u.kids.count;

	if (cnt > sizeof(stackms) / sizeof(stackms[0])) {
		if ((ms = calloc(cnt, sizeof(*ms))) == NULL) {
			r->nomem = true;
			return;
		}
	}
	for (const struct fj_node *m = obj->u.kids.first; m != NULL;
	     m = m->next) {
		const char *name = m->key, *type = NULL;
		const struct vnode *k;
		bool under = false;
		size_t old;

		if (resource_root && strcmp(name, "resourceType") == 0)
			continue;
		if (strlen(name) != m->keylen) {
			old = v_path_push(r, ".?");
			v_issue(r, FHIR_ERROR, "structure", m,
				"a property name contains a NUL character");
			v_path_pop(r, old);
			continue;
		}
		if (name[0] == '_' && name[1] != '\0') {
			under = true;
			name++;
		}
		k = v_find_kid(kids, nkids, name, &type);
		if (k != NULL && skip_value && strcmp(name, "value") == 0)
			k = NULL;
		if (k == NULL) {
			old = v_path_push(r, ".%s", m->key);
			v_issue(r, FHIR_ERROR, "structure", m,
				"unrecognised property '%s'", m->key);
			v_path_pop(r, old);
			continue;
		}
		ms[nm].m = m;
		ms[nm].kid = k;
		ms[nm].type = type;
		ms[nm].under = under;
		nm++;
	}
	/* the kids present, in member order, each once */
	for (size_t i = 0; i < nm && !r->nomem; i++) {
		bool first = true;

		for (size_t j = 0; j < i && first; j++)
			first = ms[j].kid != ms[i].kid;
		if (first)
			check_kid(r, vs, ms[i].kid, ms, nm, obj);
	}
	/* absent kids that a minimum (theirs or a slice's) requires */
	for (size_t i = 0; i < pn->nreq && !r->nomem; i++) {
		const struct vnode *k = pn->req[i];
		bool present = false;

		if (skip_value && strcmp(k->name, "value") == 0)
			continue;
		for (size_t j = 0; j < nm && !present; j++)
			present = ms[j].kid == k;
		if (!present)
			check_kid(r, vs, k, ms, nm, obj);
	}
	if (ms != stackms)
		free(ms);
}

static void
check_kid(struct vrun *r, const struct vstruct *vs, const struct vnode *k,
	  const struct vmember *ms, size_t nm, const struct fj_node *obj)
{
	const struct fj_node *vm = NULL, *um = NULL, *at = obj;
	const char *type = NULL;
	struct vitem stackitems[16], *items = stackitems;
	const struct rules_element *el = k->el;
	bool arr = v_is_array_el(el);
	size_t n = 0, nv = 0, nu = 0, old, old2;
	const struct vnode *d = k;

	for (size_t i = 0; i < nm; i++) {
		if (ms[i].kid != k)
			continue;
		if (ms[i].type != NULL && type != NULL &&
		    strcmp(ms[i].type, type) != 0) {
			old = v_path_push(r, ".%s", ms[i].m->key);
			v_issue(r, FHIR_ERROR, "structure", ms[i].m,
				"only one type of %s is allowed", k->name);
			v_path_pop(r, old);
			continue;
		}
		if (ms[i].type != NULL)
			type = ms[i].type;
		if (ms[i].under)
			um = ms[i].m;
		else
			vm = ms[i].m;
	}
	if (vm == NULL && um == NULL) {
		/* absent: only a minimum (of the element or one of its
		 * slices) can be broken */
		bool need = el->min > 0;

		for (size_t j = 0; j < k->nslices && !need; j++)
			need = k->slices[j]->el->min > 0 ||
			       (k->slices[j]->card != NULL &&
				k->slices[j]->card->min > 0);
		if (!need)
			return;
	}
	if (k->choice) {
		old = v_path_add(r, ".", k->name, k->prefixlen);
		if (type != NULL) {
			v_path_add(r, ".ofType(", type, strlen(type));
			v_path_add(r, ")", "", 0);
			d = v_choice_slice(k, type);
		}
	} else {
		old = v_path_add(r, ".", k->name, k->prefixlen);
	}
	if (vm == NULL && um == NULL) {
		if (el->min > 0)
			v_issue_card(r, old, obj, el->id, false,
				     (unsigned)el->min, 0);
		else
			v_assign_slices(r, vs, k, NULL, 0, NULL, old);
		v_path_pop(r, old);
		return;
	}
	if (vm != NULL) {
		at = vm;
		if (vm->type == FJ_ARRAY) {
			nv = vm->u.kids.count;
			if (!arr)
				v_issue(r, FHIR_ERROR, "structure", vm,
					"this property must be a single value, "
					"not an array");
			if (nv == 0)
				v_issue(r, FHIR_ERROR, "structure", vm,
					"arrays must not be empty");
		} else {
			nv = 1;
			if (arr)
				v_issue(r, FHIR_ERROR, "structure", vm,
					"this property must be an array, not "
					"a %s",
					v_jtype_name(vm));
		}
	}
	if (um != NULL) {
		if (um->type == FJ_ARRAY) {
			nu = um->u.kids.count;
			if (!arr)
				v_issue(r, FHIR_ERROR, "structure", um,
					"this property must be a single value, "
					"not an array");
		} else {
			nu = 1;
			if (arr)
				v_issue(r, FHIR_ERROR, "structure", um,
					"this property must be an array");
		}
		if (vm != NULL && nv != nu)
			v_issue(r, FHIR_ERROR, "structure", um,
				"the arrays %s and _%s differ in length",
				k->name, k->name);
	}
	n = nv > nu ? nv : nu;
	if (n < el->min)
		v_issue_card(r, old, at, el->id, false, (unsigned)el->min, n);
	if (el->max != RULES_UNBOUNDED && n > el->max)
		v_issue_card(r, old, at, el->id, true, (unsigned)el->max, n);
	if (n > sizeof(stackitems) / sizeof(stackitems[0])) {
		if ((items = calloc(n, sizeof(*items))) == NULL) {
			r->nomem = true;
			v_path_pop(r, old);
			return;
		}
	}
	/* Walk both member lists once (fj_at per item would make a long
	 * array quadratic). */
	{
		const struct fj_node *cv = vm == NULL ? NULL
					   : vm->type == FJ_ARRAY
					       ? vm->u.kids.first
					       : vm;
		const struct fj_node *cu = um == NULL ? NULL
					   : um->type == FJ_ARRAY
					       ? um->u.kids.first
					       : um;

		for (size_t i = 0; i < n; i++) {
			items[i].v = cv;
			items[i].u = cu;
			items[i].def = d;
			items[i].slice = -1;
			items[i].index = i;
			if (cv != NULL)
				cv = vm->type == FJ_ARRAY ? cv->next : NULL;
			if (cu != NULL)
				cu = um->type == FJ_ARRAY ? cu->next : NULL;
		}
	}
	if (k->nslices > 0 || el->slicing != NULL)
		v_assign_slices(r, vs, k, items, n, type, old);
	for (size_t i = 0; i < n && !r->nomem; i++) {
		old2 = arr ? v_path_index(r, i) : r->plen;
		validate_item(r, vs, items[i].def, type, items[i].v,
			      items[i].u);
		v_path_pop(r, old2);
	}
	if (items != stackitems)
		free(items);
	v_path_pop(r, old);
}

static void
validate_primitive_item(struct vrun *r, const struct vtype *ti,
			const struct vnode *d, const char *type,
			const struct fj_node *v, const struct fj_node *u)
{
	const char *why;
	bool want_bool, want_num, lexical_ok = false;

	if (u != NULL && u->type != FJ_NULL) {
		if (u->type != FJ_OBJECT) {
			v_issue(r, FHIR_ERROR, "structure", u,
				"the _ part of a primitive must be an object");
		} else if (u->u.kids.count == 0) {
			v_issue(r, FHIR_ERROR, "structure", u,
				"objects must not be empty");
		} else if (v_kids_of(d)->nkids > 0) {
			/* the profile constrains the primitive's extensions */
			check_members(r, NULL, v_kids_of(d), u, false, true);
		} else if (ti->vs != NULL) {
			check_members(r, ti->vs, ti->vs->root, u, false, true);
		}
	}
	if (v == NULL || v->type == FJ_NULL) {
		if (u == NULL || u->type == FJ_NULL)
			v_issue(r, FHIR_ERROR, "structure", v != NULL ? v : u,
				"null is not allowed here");
		return;
	}
	want_bool = ti->json == VJ_BOOL;
	want_num = ti->json == VJ_NUMBER;
	if (want_bool) {
		if (v->type != FJ_BOOL)
			v_issue(r, FHIR_ERROR, "structure", v,
				"must be a JSON boolean (%s), not a %s", type,
				v_jtype_name(v));
	} else if (want_num) {
		if (v->type != FJ_NUMBER)
			v_issue(r, FHIR_ERROR, "structure", v,
				"must be a JSON number (%s), not a %s", type,
				v_jtype_name(v));
		else if ((why = validate_primitive(type, v->u.str.s,
						   v->u.str.len, false)))
			v_issue(r, FHIR_ERROR, "value", v,
				"the value %.40s is not a valid %s: %s",
				v->u.str.s, type, why);
		else
			lexical_ok = true;
	} else if (v->type != FJ_STRING) {
		v_issue(r, FHIR_ERROR, "structure", v,
			"must be a JSON string (%s), not a %s", type,
			v_jtype_name(v));
	} else if ((why = validate_primitive(type, v->u.str.s, v->u.str.len,
					     true)) != NULL) {
		v_issue(r, FHIR_ERROR, "value", v,
			"the value \"%.60s\" is not a valid %s: %s%s",
			v->u.str.s, type, why, v_expected_form(type));
	} else if (ti->flags & VT_XHTML) {
		v_check_xhtml(r, v);
	} else {
		lexical_ok = true;
		if (v_only_whitespace(v->u.str.s, v->u.str.len))
			v_issue(r, FHIR_WARNING, "value", v,
				"primitive values should not be only "
				"whitespace");
	}
	if (lexical_ok) {
		v_check_limits(r, d, ti, type, v);
		if (ti->flags & VT_URI)
			v_check_example_url(r, d->el, type, v);
	}
	v_check_fixed(r, d->el, v);
	v_check_binding(r, d->el, type, v);
	v_check_constraints(r, d, v, type);
}

static void validate_item_in(struct vrun *r, const struct vstruct *vs,
			     const struct vnode *d, const char *type,
			     const struct vtype *ti, const struct fj_node *v,
			     const struct fj_node *u);

static void
validate_item(struct vrun *r, const struct vstruct *vs, const struct vnode *d,
	      const char *type, const struct fj_node *v,
	      const struct fj_node *u)
{
	const struct vtype *ti = NULL;
	const char *segtype;

	if (v_run_stopped(r))
		return;
	if (type == NULL && d->el->ntypes >= 1)
		type = d->el->types[0].code;
	segtype = type;
	if (type != NULL && d->el->ntypes >= 1 &&
	    type == d->el->types[0].code && d->vt0 != NULL) {
		ti = d->vt0;
	} else if (type != NULL) {
		if ((ti = v_vtype_get(r->ctx, type)) == NULL) {
			r->nomem = true;
			return;
		}
		/* the tree belongs to the context: caching in it is fine */
		if (d->el->ntypes >= 1 && type == d->el->types[0].code)
			((struct vnode *)d)->vt0 = ti;
	}
	/* a contentReference element has no type of its own: it has the
	 * type of the element it refers to (extension contexts look at it) */
	if (segtype == NULL && d->ref != NULL) {
		const struct vnode *t = v_kids_of(d);

		if (t != NULL && t->el->ntypes >= 1)
			segtype = t->el->types[0].code;
	}
	v_seg_push(r, d->name, d->choice ? d->prefixlen : strlen(d->name),
		   segtype,
		   ti != NULL && ti->kind == VK_COMPLEX && type != NULL &&
		       !(ti->flags & VT_BACKBONE));
	validate_item_in(r, vs, d, type, ti, v, u);
	r->nsegs--;
}

/* validate_item once the item's type is known. */
static void
validate_item_in(struct vrun *r, const struct vstruct *vs,
		 const struct vnode *d, const char *type,
		 const struct vtype *ti, const struct fj_node *v,
		 const struct fj_node *u)
{
	const struct vnode *kd;
	const struct vstruct *tvs = NULL;
	bool unknown_ext = false, is_ext;
	const char *saved_ext = r->ext_url;

	if (ti != NULL && ti->kind == VK_PRIM) {
		validate_primitive_item(r, ti, d, type, v, u);
		return;
	}
	if (u != NULL) {
		v_issue(r, FHIR_ERROR, "structure", u,
			"a _ property is only allowed for primitive types");
	}
	if (v == NULL)
		return;
	if (v->type != FJ_OBJECT) {
		v_issue(r, FHIR_ERROR, "structure", v,
			"this property must be an object, not a %s",
			v_jtype_name(v));
		return;
	}
	if (ti != NULL && ti->kind == VK_RESOURCE) {
		/* the candidates of every type ("Patient" with one profile,
		 * "Observation" with another) */
		const char *profiles[16];
		size_t np = 0;

		for (size_t i = 0; i < d->el->ntypes; i++)
			for (size_t k = 0;
			     k < d->el->types[i].nprofiles && np < 16; k++)
				profiles[np++] = d->el->types[i].profiles[k];
		validate_resource(r, v, profiles, np, false, NULL);
		return;
	}
	if (v->u.kids.count == 0) {
		v_issue(r, FHIR_ERROR, "structure", v,
			"objects must not be empty");
		return;
	}
	if (r->depth >= V_MAX_DEPTH) {
		v_issue(r, FHIR_ERROR, "structure", v, "nesting is too deep");
		return;
	}
	r->depth++;
	kd = v_kids_of(d);
	/* ti is type's (NULL when type is) */
	is_ext = ti != NULL && (ti->flags & VT_EXTENSION);
	if (is_ext) {
		const char *url = fj_get_str(v, "url");
		const struct rules_structure *esd;

		/* only absolute URLs name a definition (relative ones are
		 * the parts of a complex extension) */
		if (url != NULL && strchr(url, ':') != NULL) {
			if ((esd = rules_structure(r->ctx->set, url)) != NULL)
				v_check_ext_context(r, esd, v, url);
			r->ext_url = url;
		}
	}
	if (is_ext && kd->nkids == 0) {
		tvs = v_extension_struct(r, d, v, &unknown_ext);
		/* as the HL7 validator by default: an extension of the
		 * FHIR specification's own namespace must be known; one
		 * from elsewhere may come from an IG not loaded */
		if (unknown_ext && strncmp(fj_get_str(v, "url"),
					   "http://hl7.org/fhir/", 20) == 0)
			v_issue(r, FHIR_ERROR, "structure", v,
				"the extension %.200s is unknown, and not "
				"allowed here: extensions in the "
				"http://hl7.org/fhir/ namespace must be known",
				fj_get_str(v, "url"));
		else if (unknown_ext)
			v_issue(r, FHIR_WARNING, "structure", v,
				"the extension %.200s is unknown, so its "
				"content was not checked (load its definition "
				"with --ig)",
				fj_get_str(v, "url"));
	} else if (type != NULL && kd->nkids == 0) {
		tvs = v_type_profile_struct(r, d, type);
	}
	if (kd->nkids > 0) {
		check_members(r, vs, kd, v, false, false);
	} else if (tvs != NULL) {
		check_members(r, tvs, tvs->root, v, false, false);
	} else if (ti != NULL && ti->vs != NULL) {
		check_members(r, ti->vs, ti->vs->root, v, false, false);
	} else if (type == NULL || ti == NULL || ti->kind == VK_UNKNOWN) {
		/* a type with no definition loaded: nothing to check */
	}
	if (is_ext) {
		/* ext-1: either extensions or a value, not both */
		const struct fj_node *m;
		bool has_ext = fj_get(v, "extension") != NULL, has_val = false;

		for (m = v->u.kids.first; m != NULL; m = m->next)
			if (strncmp(m->key, "value", 5) == 0 ||
			    strncmp(m->key, "_value", 6) == 0)
				has_val = true;
		if (has_ext && has_val)
			v_issue(r, FHIR_ERROR, "invariant", v,
				"ext-1: Must have either extensions or "
				"value[x], not both");
	}
	v_check_fixed(r, d->el, v);
	if ((d->el->min_value != NULL || d->el->max_value != NULL) &&
	    ti != NULL && (ti->flags & VT_QUANTITY))
		v_check_quantity_limits(r, d->el, v);
	if (type != NULL) {
		v_check_binding(r, d->el, type, v);
		if (ti->flags & VT_REFERENCE) {
			v_check_reference(r, d->el, v);
			v_check_example_ref(r, v);
		} else if (ti->flags & VT_ATTACHMENT)
			v_check_attachment(r, v);
		else if ((ti->flags & VT_CODING) && fj_get(v, "code") != NULL &&
			 fj_get(v, "system") == NULL)
			v_issue(r, FHIR_WARNING, "value", v,
				"a code with no system has no defined meaning; "
				"a system should be provided");
	}
	v_check_constraints(r, d, v, type);
	if (tvs != NULL && tvs->root != d) {
		v_check_fixed(r, tvs->root->el, v);
		v_check_constraints(r, tvs->root, v, type);
	}
	/* the datatype's own invariants, unless the element already
	 * carries them */
	if (ti != NULL && ti->vs != NULL && ti->vs != tvs)
		v_check_type_constraints(r, d, ti, v, type);
	r->ext_url = saved_ext;
	r->depth--;
}

/* ---- resources ---- */

/* Remember that res does (2) or does not (3) conform to sd, or that the
 * check is under way (1). False without memory. */
static bool
conf_put(struct vrun *r, const struct fj_node *res,
	 const struct rules_structure *sd, int state)
{
	if (*r->nconf == *r->capconf) {
		size_t ncap = *r->capconf == 0 ? 16 : *r->capconf * 2;
		struct vconf *n = realloc(r->conf, ncap * sizeof(*n));

		if (n == NULL) {
			r->nomem = true;
			return false;
		}
		r->conf = n;
		*r->capconf = ncap;
	}
	r->conf[*r->nconf].res = res;
	r->conf[*r->nconf].sd = sd;
	r->conf[*r->nconf].state = state;
	(*r->nconf)++;
	return true;
}

/* Whether res names sd itself in its meta.profile. */
static bool
claims_exactly(const struct vrun *r, const struct fj_node *res,
	       const struct rules_structure *sd)
{
	const struct fj_node *meta = fj_get(res, "meta"), *mp;

	mp = meta != NULL && meta->type == FJ_OBJECT ? fj_get(meta, "profile")
						     : NULL;
	if (mp == NULL || mp->type != FJ_ARRAY)
		return false;
	for (mp = mp->u.kids.first; mp != NULL; mp = mp->next)
		if (mp->type == FJ_STRING &&
		    rules_structure(r->ctx->set, mp->u.str.s) == sd)
			return true;
	return false;
}

/* Record a guess; false without memory. */
static bool
guess_put(struct vrun *r, const struct fj_node *res,
	  const struct rules_structure *sd)
{
	if (r->nguesses == r->capguesses) {
		size_t ncap = r->capguesses == 0 ? 16 : r->capguesses * 2;
		struct vguess *n = realloc(r->guesses, ncap * sizeof(*n));

		if (n == NULL)
			return false;
		r->guesses = n;
		r->capguesses = ncap;
	}
	r->guesses[r->nguesses].res = res;
	r->guesses[r->nguesses].sd = sd;
	r->guesses[r->nguesses].bundle = r->bundle;
	r->nguesses++;
	return true;
}

static bool conforms_walk(struct vrun *r, const struct fj_node *res,
			  const struct rules_structure *sd);

static bool
conforms(struct vrun *r, const struct fj_node *res,
	 const struct rules_structure *sd)
{
	for (size_t i = 0; i < *r->nconf; i++)
		if (r->conf[i].res == res && r->conf[i].sd == sd)
			return r->conf[i].state != 3;
	if (r->depth >= V_MAX_DEPTH / 2)
		return true;
	/* A resource that claims the profile is walked against it anyway:
	 * the scratch walk here would do that work twice (a resource
	 * sliced by profile, e.g. the targets of a reference slice, came
	 * to a sixth of a message's validation). */
	if (r->speculate && !r->scratch && claims_exactly(r, res, sd) &&
	    guess_put(r, res, sd))
		return true;
	return conforms_walk(r, res, sd);
}

/* Check the guesses made inside Bundle b (NULL: outside any), with the
 * walk's Bundle context as it was when they were made. */
static void
guesses_check(struct vrun *r, const struct vbundle *b)
{
	bool was = r->speculate;

	r->speculate = false;
	for (size_t i = 0; i < r->nguesses && !r->guess_wrong && !r->nomem; i++)
		if (r->guesses[i].bundle == b &&
		    !conforms(r, r->guesses[i].res, r->guesses[i].sd))
			r->guess_wrong = true;
	r->speculate = was;
}

/* The scratch walk of res against sd (the memo knows nothing yet). */
static bool
conforms_walk(struct vrun *r, const struct fj_node *res,
	      const struct rules_structure *sd)
{
	struct vrun sub;
	bool ok;

	if (!conf_put(r, res, sd, 1))
		return true;
	v_run_init(&sub);
	sub.noteval.kind = HMAP_STR_OWN;
	sub.ctx = r->ctx;
	sub.scratch = true;
	sub.bundle = r->bundle;
	sub.root = r->root;
	sub.resource = r->resource;
	sub.depth = r->depth + 1;
	sub.conf = r->conf;
	sub.nconf = r->nconf;
	sub.capconf = r->capconf;
	sub.deadline = r->deadline;
	sub.allow_examples = r->allow_examples;
	sub.conforms = r->conforms;
	sub.own_ok = r->own_ok;
	validate_resource(&sub, res, NULL, 0, false, sd);
	/* the memo may have moved while the sub-run grew it */
	r->conf = sub.conf;
	ok = sub.nerrors == 0;
	if (sub.nomem && !sub.halted)
		r->nomem = true;
	if (sub.late)
		r->late = r->nomem = true;
	for (size_t i = 0; i < *r->nconf; i++)
		if (r->conf[i].res == res && r->conf[i].sd == sd)
			r->conf[i].state = ok ? 2 : 3;
	v_run_cleanup(&sub);
	return ok;
}

/* Add sd to the profile list unless it is there already. */
static void
list_add(const struct rules_structure **list, size_t *n,
	 const struct rules_structure *sd)
{
	for (size_t i = 0; i < *n; i++)
		if (list[i] == sd)
			return;
	if (*n < 16)
		list[(*n)++] = sd;
}

/* The type profiles of the element a contained resource sits in
 * (Bundle.entry.resource with profiles): candidates, like slices. One
 * that constrains another resource type, or that the resource does not
 * conform to while another candidate does, is "not this one", not an
 * error (as in the HL7 validator). None of the resource's type: one
 * error; none it conforms to: checked against each of its type, so the
 * findings say why. */
static void
type_profiles(struct vrun *r, const struct fj_node *res, const char *rt,
	      const char *const *profiles, size_t nprofiles,
	      const struct rules_structure **list, size_t *nlist)
{
	const struct rules_structure *fit[16], *sd;
	size_t nfit = 0, nok = 0, n0 = *nlist;
	char names[512];
	size_t nl = 0;

	names[0] = '\0';
	for (size_t i = 0; i < nprofiles && nfit < 16; i++) {
		if ((sd = v_rule_structure(r->ctx, profiles[i])) == NULL)
			continue;
		if (nl < sizeof(names))
			nl += (size_t)snprintf(names + nl, sizeof(names) - nl,
					       "%s%s", nl > 0 ? ", " : "",
					       v_sd_label(sd));
		if (sd->type != NULL && strcmp(sd->type, rt) == 0)
			fit[nfit++] = sd;
	}
	if (nfit == 0) {
		if (names[0] != '\0')
			v_issue(r, FHIR_ERROR, "structure", res,
				"a %s is not allowed here: the allowed "
				"profiles are %s",
				rt, names);
		return;
	}
	if (nfit > 1)
		for (size_t i = 0; i < nfit && !r->nomem; i++)
			if (r->conforms(r, res, fit[i])) {
				list_add(list, nlist, fit[i]);
				nok++;
			}
	if (nok == 0) {
		*nlist = n0;
		for (size_t i = 0; i < nfit; i++)
			list_add(list, nlist, fit[i]);
	}
}

/* The profiles a resource chooses itself, added to list: its
 * meta.profile (beside a forced or element profile, as in the HL7
 * validator), the IG's global profiles for its type, else a detected
 * one. report: say which meta.profile is unknown and which profile was
 * detected (the main walk); false for a reference's look at its target. */
static void
own_profiles(struct vrun *r, const struct fj_node *res, const char *rt,
	     const struct rules_structure **list, size_t *pn, bool report)
{
	const struct rules_structure *sd;
	const struct fj_node *meta, *mp;
	size_t nlist = *pn, mpi = 0;
	char url[512];

	meta = fj_get(res, "meta");
	mp = meta != NULL && meta->type == FJ_OBJECT ? fj_get(meta, "profile")
						     : NULL;
	for (mp = mp != NULL && mp->type == FJ_ARRAY ? mp->u.kids.first : NULL;
	     mp != NULL && nlist < 16; mp = mp->next, mpi++) {
		const char *bar;

		if (mp->type != FJ_STRING)
			continue;
		bar = strchr(mp->u.str.s, '|');
		snprintf(url, sizeof(url), "%.*s",
			 (int)(bar != NULL ? (size_t)(bar - mp->u.str.s)
					   : mp->u.str.len),
			 mp->u.str.s);
		if ((sd = rules_structure(r->ctx->set, url)) != NULL)
			list_add(list, &nlist, sd);
		else if (report) {
			size_t o2 = v_path_push(r, ".meta.profile[%zu]", mpi);

			v_issue(r, FHIR_WARNING, "not-supported", mp,
				"profile %.200s is not known, so the "
				"resource was not checked against it",
				url);
			v_path_pop(r, o2);
		}
	}
	/* ImplementationGuide.global: every resource of the type */
	for (size_t i = 0; nlist < 16; i++) {
		const char *g = rules_global_profile(r->ctx->set, rt, i);

		if (g == NULL)
			break;
		if ((sd = rules_structure(r->ctx->set, g)) != NULL)
			list_add(list, &nlist, sd);
	}
	/* a resource that claims a profile, even one not loaded, is not
	 * guessed at: the unknown claim is reported, the base applies */
	if (nlist == 0 && mpi == 0 &&
	    (sd = v_detect_profile(r, res, rt)) != NULL) {
		list[nlist++] = sd;
		if (report)
			v_issue(r, FHIR_INFORMATION, "informational", res,
				"no meta.profile: validated against the "
				"detected profile %s (detection chooses by "
				"fixed codes and required slices, among the "
				"built-in PZP profiles only, unless --detect "
				"is given)",
				sd->url);
	}
	*pn = nlist;
}

static void
validate_resource(struct vrun *r, const struct fj_node *res,
		  const char *const *profiles, size_t nprofiles, bool is_root,
		  const struct rules_structure *only)
{
	const struct rules_structure *list[16], *base, *sd;
	const struct fj_node *saved_res = r->resource;
	const char *saved_type = r->resource_type, *rt, *why;
	const struct rules_structure *saved_sd = r->cur_sd;
	const char *saved_ext = r->ext_url;
	const struct fj_node *idn;
	struct vbundle *bundle = NULL, *saved_bundle = r->bundle;
	bool is_bundle = false, base_done = false;
	size_t err0;
	size_t nlist = 0, old;

	if ((rt = fj_get_str(res, "resourceType")) == NULL) {
		v_issue(r, FHIR_ERROR, "structure", res,
			"a resource must have a string resourceType");
		return;
	}
	base = rules_type(r->ctx->set, rt);
	if (base == NULL || base->kind == NULL ||
	    strcmp(base->kind, "resource") != 0) {
		v_issue(r, FHIR_ERROR, "structure", fj_get(res, "resourceType"),
			"unknown resource type '%.60s'", rt);
		return;
	}
	old = is_root ? v_path_push(r, "%s", rt)
		      : v_path_push(r, ".ofType(%s)", rt);
	v_seg_push(r, NULL, 0, base->type != NULL ? base->type : rt, false);
	r->ext_url = NULL;
	r->resource = res;
	r->resource_type = base->type != NULL ? base->type : rt;
	r->cur_sd = NULL; /* until this resource's own profiles are chosen */
	if (only != NULL) {
		list[nlist++] = only;
	} else {
		if (is_root) {
			for (size_t i = 0; i < nprofiles && nlist < 16; i++) {
				if ((sd = rules_structure(r->ctx->set,
							  profiles[i])) != NULL)
					list_add(list, &nlist, sd);
				else
					v_issue(r, FHIR_ERROR, "not-found", res,
						"profile %s is not known",
						profiles[i]);
			}
		} else if (nprofiles > 0) {
			type_profiles(r, res, rt, profiles, nprofiles, list,
				      &nlist);
		}
		own_profiles(r, res, rt, list, &nlist, true);
	}
	if (nlist == 0)
		list[nlist++] = base;
	if (is_root && r->ctx->last_profile == NULL && !r->scratch)
		r->ctx->last_profile = list[0]->url;
	/* Resource.id is System.String in the R4 snapshots, yet an id */
	idn = fj_get(res, "id");
	if (idn != NULL && idn->type == FJ_STRING &&
	    (why = validate_primitive("id", idn->u.str.s, idn->u.str.len,
				      true)) != NULL) {
		size_t o2 = v_path_push(r, ".id");

		v_issue(r, FHIR_ERROR, "value", idn,
			"the value \"%.60s\" is not a valid id: %s",
			idn->u.str.s, why);
		v_path_pop(r, o2);
	}
	if (strcmp(rt, "Bundle") == 0) {
		if ((bundle = calloc(1, sizeof(*bundle))) == NULL)
			r->nomem = true;
		else if (v_bundle_build(r, res, bundle)) {
			bundle->up = r->bundle;
			r->bundle = bundle;
			is_bundle = true;
		}
	}
	err0 = r->nerrors;
	for (size_t i = 0; i < nlist && !r->nomem; i++) {
		const struct vstruct *vs;

		sd = list[i];
		if (sd->type == NULL || strcmp(sd->type, rt) != 0) {
			v_issue(r, FHIR_ERROR, "structure", res,
				"profile %s constrains %s, not %s",
				v_sd_label(sd),
				sd->type != NULL ? sd->type : "?", rt);
			/* still check the resource against its own type */
			if (!base_done) {
				base_done = true;
				list[i--] = base;
			}
			continue;
		}
		if (sd == base)
			base_done = true;
		if ((vs = v_vstruct_get(r->ctx, sd)) == NULL) {
			r->nomem = true;
			break;
		}
		r->cur_sd = sd;
		check_members(r, vs, vs->root, res, true, false);
		v_check_fixed(r, vs->root->el, res);
		v_check_constraints(r, vs->root, res, r->resource_type);
	}
	/* a resource that passed its profiles in the main walk need not be
	 * walked again when a reference or slice asks whether it conforms */
	if (!r->scratch && r->nerrors == err0)
		for (size_t i = 0; i < nlist; i++)
			(void)conf_put(r, res, list[i], 2);
	if (is_bundle) {
		if (r->nguesses > 0)
			guesses_check(r, bundle);
		r->bundle = saved_bundle;
	}
	if (bundle != NULL) {
		v_bundle_cleanup(bundle);
		free(bundle);
	}
	r->resource = saved_res;
	r->resource_type = saved_type;
	r->cur_sd = saved_sd;
	r->ext_url = saved_ext;
	r->nsegs--;
	v_path_pop(r, old);
}

/* Whether resource res passes the profiles it chooses itself (its base
 * type, meta.profile, the IG's global ones or a detected one): a
 * reference to a target that does not need not repeat its findings. */
static bool
own_ok(struct vrun *r, const struct fj_node *res)
{
	const struct rules_structure *list[16], *base;
	const char *rt = fj_get_str(res, "resourceType");
	size_t n = 0;

	if (rt == NULL || (base = rules_type(r->ctx->set, rt)) == NULL)
		return false;
	own_profiles(r, res, rt, list, &n, false);
	list_add(list, &n, base);
	for (size_t i = 0; i < n && !r->nomem; i++)
		if (!conforms(r, res, list[i]))
			return false;
	return true;
}

/* ---- entry points ---- */

static enum gw_err
emit(struct vrun *r, json_t *outcome)
{
	struct fhir_issue batch[64];
	size_t n = 0;

	/* in batches: the issues of a batch share their severity, code and
	 * extension url strings */
	for (size_t i = 0; i < r->nissues; i++) {
		const struct vissue *is = &r->issues[i];

		batch[n++] = (struct fhir_issue){
		    .severity = is->sev,
		    .code = is->code,
		    .expression = is->expr[0] != '\0' ? is->expr : NULL,
		    .msg = is->msg,
		    .line = (int)is->line,
		    .col = (int)is->col};
		if (n == sizeof(batch) / sizeof(batch[0]) ||
		    i + 1 == r->nissues) {
			if (fhir_outcome_add_issues(outcome, batch, n) != GW_OK)
				return GW_NOMEM;
			n = 0;
		}
	}
	if (r->late)
		return GW_TEMP;
	return r->nomem ? GW_NOMEM : GW_OK;
}

/* One walk of the document. quiet: record errors only and emit nothing
 * (unless out of time or memory); *nerrors says how many there were. */
static enum gw_err
walk_document(struct validate_ctx *ctx, const struct fj_node *root,
	      const struct validate_opts *opts, bool quiet, json_t *outcome,
	      size_t *nerrors)
{
	struct vrun r;
	size_t nconf = 0, capconf = 0;
	enum gw_err err;
	const char *forced[1];
	bool speculate = true;

again:
	v_run_init(&r);
	r.speculate = speculate;
	r.quiet = quiet;
	r.noteval.kind = HMAP_STR_OWN;
	r.ctx = ctx;
	r.root = root;
	r.nconf = &nconf;
	r.capconf = &capconf;
	r.conforms = conforms;
	r.own_ok = own_ok;
	ctx->last_profile = NULL;
	r.allow_examples = opts != NULL && opts->allow_example_urls;
	if (opts != NULL && opts->deadline_ms != 0) {
		r.deadline = opts->deadline_ms;
		if (util_mono_ms() >= r.deadline)
			r.late = r.nomem = true;
	}
	if (r.late) {
		/* past the deadline already: no walk */
	} else if (root->type != FJ_OBJECT) {
		v_issue(&r, FHIR_ERROR, "structure", root,
			"a FHIR resource must be a JSON object, not a %s",
			v_jtype_name(root));
	} else if (opts != NULL && opts->profile != NULL) {
		forced[0] = opts->profile;
		validate_resource(&r, root, forced, 1, true, NULL);
	} else {
		validate_resource(&r, root, NULL, 0, true, NULL);
	}
	if (r.nguesses > 0)
		guesses_check(&r, NULL);
	if (r.guess_wrong && !r.nomem) {
		/* a resource did not conform to a profile it claims: walk
		 * again asking every question (rare: the document is
		 * invalid) */
		free(r.conf);
		v_run_cleanup(&r);
		nconf = capconf = 0;
		speculate = false;
		goto again;
	}
	*nerrors = r.nerrors;
	if (quiet && !r.late && !r.nomem)
		err = GW_OK;
	else
		err = emit(&r, outcome);
	free(r.conf);
	v_run_cleanup(&r);
	return err;
}

enum gw_err
validate_document(struct validate_ctx *ctx, const struct fj_node *root,
		  const struct validate_opts *opts, json_t *outcome)
{
	struct validate_opts full;
	size_t nerrors = 0;
	enum gw_err err;

	if (ctx == NULL || root == NULL || !json_is_object(outcome) ||
	    !json_is_array(json_object_get(outcome, "issue")))
		return GW_INVALID;
	if (opts == NULL || !opts->quiet_when_valid)
		return walk_document(ctx, root, opts, false, outcome, &nerrors);
	/* The quiet walk finds an error wherever the full one does (it only
	 * skips the other findings), so no error means valid; otherwise the
	 * full walk gives the outcome and the verdict. That walk costs what
	 * the quiet one did, which finished in time: it runs without the
	 * deadline, so that an invalid document is answered as invalid. */
	err = walk_document(ctx, root, opts, true, outcome, &nerrors);
	if (err != GW_OK || nerrors == 0)
		return err;
	full = *opts;
	full.deadline_ms = 0;
	return walk_document(ctx, root, &full, false, outcome, &nerrors);
}

enum gw_err
validate_text(struct validate_ctx *ctx, const char *text, size_t len,
	      const struct validate_opts *opts, json_t *outcome)
{
	struct fj_doc *doc = NULL;
	struct fj_error perr;
	enum gw_err err;
	size_t i = 0;

	if (ctx == NULL || !json_is_object(outcome))
		return GW_INVALID;
	size_t j;

	/* a UTF-8 byte order mark is tolerated, as HTTP bodies carry it */
	if (len >= 3 && (unsigned char)text[0] == 0xef &&
	    (unsigned char)text[1] == 0xbb && (unsigned char)text[2] == 0xbf)
		i = 3;
	for (j = i; j < len && (text[j] == ' ' || text[j] == '\t' ||
				text[j] == '\r' || text[j] == '\n');
	     j++)
		;
	if (j < len && text[j] == '<') {
		char why[256];

		why[0] = '\0';
		err = xmlfhir_to_fjson(text + i, len - i, ctx->set, &doc, why,
				       sizeof(why));
		if (err == GW_NOMEM)
			return GW_NOMEM;
		if (err != GW_OK)
			return fhir_outcome_add(
			    outcome, FHIR_FATAL, "structure", NULL, 0, 0,
			    "the document is not FHIR XML: %s",
			    why[0] != '\0' ? why : "parse error");
		err = validate_document(ctx, doc->root, opts, outcome);
		fj_doc_free(doc);
		return err;
	}
	memset(&perr, 0, sizeof(perr));
	err = fj_parse(text + i, len - i, 0, &doc, &perr);
	if (err == GW_NOMEM)
		return GW_NOMEM;
	if (err != GW_OK) {
		return fhir_outcome_add(
		    outcome, FHIR_FATAL, "structure", NULL, (int)perr.line,
		    (int)perr.col, "the document is not valid JSON: %s",
		    perr.msg[0] != '\0' ? perr.msg : "parse error");
	}
	err = validate_document(ctx, doc->root, opts, outcome);
	fj_doc_free(doc);
	return err;
}
