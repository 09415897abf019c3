/*
 * validate_slice: slicing: which slice an item of a sliced element
 * belongs to (discriminators value, pattern, exists, type, profile),
 * closed and ordered slicing, and the cardinality of each slice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_impl.h"

/* ---- slicing ---- */

struct vval {
	const struct fj_node *n;
	const char *type;
};

/* Split the next segment of a discriminator path (dots inside quotes or
 * parentheses do not split). */
static const char *
next_segment(const char *p, char *seg, size_t len)
{
	size_t i = 0;
	int depth = 0;
	char quote = 0;

	for (; *p != '\0'; p++) {
		if (quote != 0) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')') {
			depth--;
		} else if (*p == '.' && depth == 0) {
			p++;
			break;
		}
		if (i + 1 < len)
			seg[i++] = *p;
	}
	seg[i] = '\0';
	return p;
}

/* "extension('url')" -> url into out; false when seg is something else */
static bool
seg_call(const char *seg, const char *fn, char *out, size_t len)
{
	size_t fl = strlen(fn), sl = strlen(seg);

	if (sl < fl + 2 || strncmp(seg, fn, fl) != 0 || seg[fl] != '(' ||
	    seg[sl - 1] != ')')
		return false;
	seg += fl + 1;
	sl -= fl + 2;
	if (sl >= 2 && (seg[0] == '\'' || seg[0] == '"')) {
		seg++;
		sl -= 2;
	}
	snprintf(out, len, "%.*s", (int)sl, seg);
	return true;
}

static const char *
suffix_type(struct vrun *r, const char *suffix)
{
	char lower[64];
	const struct vtype *t;

	snprintf(lower, sizeof(lower), "%s", suffix);
	if (lower[0] >= 'A' && lower[0] <= 'Z' &&
	    v_is_prim_name((lower[0] = (char)(lower[0] + 32), lower)) &&
	    (t = v_vtype_get(r->ctx, lower)) != NULL && t->name != NULL)
		return t->name;
	t = v_vtype_get(r->ctx, suffix);
	return t != NULL ? t->name : NULL;
}

/* The resourceType of a resource value, else NULL. */
static const char *
res_type(const struct fj_node *v)
{
	return v->type == FJ_OBJECT ? fj_get_str(v, "resourceType") : NULL;
}

static size_t
vals_add(struct vval *out, size_t n, const struct fj_node *v, const char *type)
{
	if (v == NULL)
		return n;
	if (v->type == FJ_ARRAY) {
		for (const struct fj_node *x = v->u.kids.first; x != NULL;
		     x = x->next)
			if (n < V_MAX_SET && x->type != FJ_NULL) {
				out[n].n = x;
				out[n++].type =
				    type != NULL ? type : res_type(x);
			}
		return n;
	}
	if (n < V_MAX_SET) {
		out[n].n = v;
		out[n++].type = type != NULL ? type : res_type(v);
	}
	return n;
}

/* Values of an item at a discriminator path. */
static size_t
disc_values(struct vrun *r, const char *path, const struct fj_node *item,
	    const char *itype, struct vval *out)
{
	struct vval cur[V_MAX_SET], nxt[V_MAX_SET];
	size_t nc = 1, nn;
	char seg[256] = "", arg[256] = "";
	const char *p = path;

	cur[0].n = item;
	cur[0].type = itype;
	while (*p != '\0' && nc > 0) {
		p = next_segment(p, seg, sizeof(seg));
		nn = 0;
		if (strcmp(seg, "$this") == 0 || seg[0] == '\0')
			continue;
		for (size_t i = 0; i < nc; i++) {
			const struct fj_node *v = cur[i].n;

			if (strcmp(seg, "resolve()") == 0) {
				const char *ref = v->type == FJ_OBJECT
						      ? fj_get_str(v, "referen"
								      "ce")
						  : v->type == FJ_STRING
						      ? v->u.str.s
						      : NULL;
				const struct fj_node *t = NULL;

				if (ref == NULL)
					continue;
				if (ref[0] == '#' && r->resource != NULL)
					t = v_find_contained(r->resource,
							     ref + 1);
				else
					t = v_resolve_ref(r, ref);
				if (t != NULL)
					nn = vals_add(nxt, nn, t,
						      fj_get_str(t, "resourceT"
								    "ype"));
			} else if (seg_call(seg, "ofType", arg, sizeof(arg)) ||
				   seg_call(seg, "as", arg, sizeof(arg))) {
				if (cur[i].type != NULL &&
				    strcmp(cur[i].type, arg) == 0)
					nn = vals_add(nxt, nn, v, cur[i].type);
			} else if (seg_call(seg, "extension", arg,
					    sizeof(arg))) {
				const struct fj_node *e;

				if (v->type != FJ_OBJECT ||
				    (e = fj_get(v, "extension")) == NULL ||
				    e->type != FJ_ARRAY)
					continue;
				for (e = e->u.kids.first; e != NULL;
				     e = e->next)
					if (fj_str_eq(fj_get(e, "url"), arg))
						nn = vals_add(nxt, nn, e,
							      "Extension");
			} else if (v->type == FJ_OBJECT) {
				const struct fj_node *m = fj_get(v, seg);
				size_t sl = strlen(seg);

				if (m != NULL) {
					nn = vals_add(nxt, nn, m, NULL);
					continue;
				}
				for (m = v->u.kids.first; m != NULL;
				     m = m->next)
					if (strncmp(m->key, seg, sl) == 0 &&
					    m->key[sl] >= 'A' &&
					    m->key[sl] <= 'Z')
						nn = vals_add(
						    nxt, nn, m,
						    suffix_type(r,
								m->key + sl));
			}
		}
		memcpy(cur, nxt, nn * sizeof(cur[0]));
		nc = nn;
	}
	memcpy(out, cur, nc * sizeof(cur[0]));
	return nc;
}

/* The children of definition node d, looking into its type when the
 * snapshot does not list them. */
static const struct vnode *
def_kids(struct vrun *r, const struct vnode *d)
{
	const struct vnode *kd = v_kids_of(d);
	const struct vstruct *tvs;
	const struct vtype *ti;
	bool unknown;

	if (kd->nkids > 0 || d->el->ntypes == 0)
		return kd;
	if (strcmp(d->el->types[0].code, "Extension") == 0 &&
	    (tvs = v_extension_struct(r, d, NULL, &unknown)) != NULL)
		return tvs->root;
	if ((tvs = v_type_profile_struct(r, d, d->el->types[0].code)) != NULL)
		return tvs->root;
	if ((ti = v_vtype_get(r->ctx, d->el->types[0].code)) != NULL &&
	    ti->vs != NULL)
		return ti->vs->root;
	return kd;
}

/* The definition of a slice at a discriminator path, or NULL. */
static const struct vnode *
disc_def(struct vrun *r, const struct vnode *s, const char *path,
	 bool keep_resolve)
{
	const struct vnode *d = s;
	char seg[256] = "", arg[256] = "";
	const char *p = path;

	while (*p != '\0' && d != NULL) {
		const struct vnode *kd, *next = NULL;

		p = next_segment(p, seg, sizeof(seg));
		if (strcmp(seg, "$this") == 0 || seg[0] == '\0')
			continue;
		if (seg_call(seg, "ofType", arg, sizeof(arg)) ||
		    seg_call(seg, "as", arg, sizeof(arg))) {
			d = v_choice_slice(d, arg);
			continue;
		}
		if (strcmp(seg, "resolve()") == 0) {
			const struct rules_structure *sd = NULL;

			if (keep_resolve)
				return d;
			for (size_t i = 0; i < d->el->ntypes && sd == NULL; i++)
				for (size_t j = 0;
				     j < d->el->types[i].ntargets && sd == NULL;
				     j++)
					sd = v_rule_structure(
					    r->ctx, d->el->types[i].targets[j]);
			d = sd != NULL && v_vstruct_get(r->ctx, sd) != NULL
				? v_vstruct_get(r->ctx, sd)->root
				: NULL;
			continue;
		}
		kd = def_kids(r, d);
		if (seg_call(seg, "extension", arg, sizeof(arg))) {
			const struct vnode *ext = NULL;

			for (size_t i = 0; i < kd->nkids; i++)
				if (strcmp(kd->kids[i]->name, "extension") == 0)
					ext = kd->kids[i];
			for (size_t i = 0; ext != NULL && i < ext->nslices;
			     i++) {
				const struct rules_element *se =
				    ext->slices[i]->el;

				for (size_t t = 0; t < se->ntypes; t++)
					for (size_t j = 0;
					     j < se->types[t].nprofiles; j++)
						if (strcmp(se->types[t]
							       .profiles[j],
							   arg) == 0)
							next = ext->slices[i];
			}
			d = next;
			continue;
		}
		for (size_t i = 0; i < kd->nkids; i++) {
			const struct vnode *k = kd->kids[i];

			if (strcmp(k->name, seg) == 0 ||
			    (k->choice && strlen(seg) == k->prefixlen &&
			     strncmp(k->name, seg, k->prefixlen) == 0)) {
				next = k;
				break;
			}
		}
		d = next;
	}
	return d;
}

/* disc_def for discriminator di of slice s, found once per context (the
 * definition depends on the rules only). */
static const struct vnode *
disc_def_of(struct vrun *r, const struct vnode *s, size_t di, const char *path,
	    bool keep_resolve)
{
	struct vnode *w = (struct vnode *)s; /* the tree is the context's */
	const struct vnode *d;

	if (di >= V_DISC_CACHE)
		return disc_def(r, s, path, keep_resolve);
	if (w->disc_done & (1u << di))
		return w->disc_d[di];
	d = disc_def(r, s, path, keep_resolve);
	if (!r->nomem) {
		w->disc_d[di] = d;
		w->disc_done |= (unsigned char)(1u << di);
	}
	return d;
}

static bool
val_in_vs(struct vrun *r, const struct rules_element *el,
	  const struct fj_node *v)
{
	bool in = false;

	if (el->strength != RULES_BIND_REQUIRED || el->valueset == NULL)
		return false;
	if (v_fp_member_of(r, v, NULL, el->valueset, &in) != GW_OK)
		return false;
	return in;
}

/* The values of an item at the first V_DISC_CACHE discriminator paths
 * of a slicing, found once per item rather than once per slice tried:
 * they depend on the item alone. */
struct vdvals {
	bool have[V_DISC_CACHE];
	size_t n[V_DISC_CACHE];
	struct vval v[V_DISC_CACHE][V_MAX_SET];
};

static bool
slice_matches(struct vrun *r, const struct vnode *k, const struct vnode *s,
	      const struct vitem *it, const char *itype, struct vdvals *dv)
{
	const struct rules_slicing *sl = k->el->slicing;
	struct vval own[V_MAX_SET];

	if (it->v == NULL || it->v->type == FJ_NULL || sl == NULL ||
	    sl->ndisc == 0)
		return false;
	for (size_t di = 0; di < sl->ndisc; di++) {
		const struct rules_discriminator *disc = &sl->disc[di];
		const char *path = disc->path != NULL ? disc->path : "$this";
		struct vval *vals = own;
		size_t nv;
		const struct vnode *d;
		bool ok = false;

		if (dv != NULL && di < V_DISC_CACHE) {
			vals = dv->v[di];
			if (!dv->have[di]) {
				dv->n[di] =
				    disc_values(r, path, it->v, itype, vals);
				dv->have[di] = true;
			}
			nv = dv->n[di];
		} else {
			nv = disc_values(r, path, it->v, itype, vals);
		}

		switch (disc->type) {
		case RULES_DISC_VALUE:
		case RULES_DISC_PATTERN:
			d = disc_def_of(r, s, di, path, false);
			if (d == NULL)
				return false;
			if (d->el->fixed == NULL && d->el->pattern == NULL &&
			    (d->el->strength != RULES_BIND_REQUIRED ||
			     d->el->valueset == NULL))
				return false;
			for (size_t i = 0; i < nv && !ok; i++) {
				if (d->el->fixed != NULL)
					ok = fj_equal(vals[i].n, d->el->fixed,
						      FDEC_DOUBLE);
				else if (d->el->pattern != NULL)
					ok = v_fj_contains_v(vals[i].n,
							     d->el->pattern);
				else
					ok = val_in_vs(r, d->el, vals[i].n);
			}
			break;
		case RULES_DISC_EXISTS:
			d = disc_def_of(r, s, di, path, false);
			if (d == NULL)
				return false;
			ok = d->el->max == 0 ? nv == 0
					     : (d->el->min > 0 ? nv > 0 : true);
			break;
		case RULES_DISC_TYPE: {
			/* after resolve(): the types of the target profiles */
			bool via_ref = strstr(path, "resolve()") != NULL;

			d = disc_def_of(r, s, di, path, via_ref);
			if (d == NULL)
				return false;
			for (size_t i = 0; i < nv && !ok; i++)
				for (size_t t = 0; t < d->el->ntypes && !ok;
				     t++) {
					const struct rules_type *ty =
					    &d->el->types[t];

					if (vals[i].type == NULL)
						continue;
					if (!via_ref) {
						ok = strcmp(vals[i].type,
							    ty->code) == 0;
						continue;
					}
					for (size_t j = 0; j < ty->ntargets;
					     j++) {
						const struct rules_structure
						    *tsd;

						if (strcmp(v_url_type(
							       r->ctx,
							       ty->targets[j],
							       &tsd),
							   vals[i].type) == 0)
							ok = true;
					}
				}
			break;
		}
		case RULES_DISC_PROFILE: {
			bool via_ref = strstr(path, "resolve()") != NULL;

			d = disc_def_of(r, s, di, path, true);
			if (d == NULL)
				return false;
			for (size_t i = 0; i < nv && !ok; i++)
				for (size_t t = 0; t < d->el->ntypes && !ok;
				     t++) {
					const struct rules_type *ty =
					    &d->el->types[t];
					const char *const *urls =
					    via_ref ? ty->targets
						    : ty->profiles;
					size_t nu = via_ref ? ty->ntargets
							    : ty->nprofiles;

					for (size_t j = 0; j < nu && !ok; j++) {
						const struct rules_structure
						    *psd = v_rule_structure(
							r->ctx, urls[j]);

						if (psd != NULL &&
						    vals[i].n->type ==
							FJ_OBJECT)
							ok = r->conforms(
							    r, vals[i].n, psd);
					}
				}
			break;
		}
		}
		if (!ok)
			return false;
	}
	return true;
}

bool
v_slice_matches(struct vrun *r, const struct vnode *k, const struct vnode *s,
		const struct vitem *it, const char *itype)
{
	return slice_matches(r, k, s, it, itype, NULL);
}

void
v_assign_slices(struct vrun *r, const struct vstruct *vs, const struct vnode *k,
		struct vitem *items, size_t n, const char *type,
		size_t parent_len)
{
	const struct rules_slicing *sl = k->el->slicing;
	size_t stackcounts[16], *counts = stackcounts;
	int last = -1;
	bool unmatched_seen = false;

	(void)vs;
	if (k->nslices == 0)
		return;
	if (k->nslices > 16 &&
	    (counts = calloc(k->nslices, sizeof(*counts))) == NULL) {
		r->nomem = true;
		return;
	}
	memset(counts, 0, k->nslices * sizeof(*counts));
	for (size_t i = 0; i < n; i++) {
		struct vdvals dv;

		memset(dv.have, 0, sizeof(dv.have));
		for (size_t j = 0; j < k->nslices; j++) {
			const struct vnode *s = k->slices[j];

			/* a type slice of a choice element */
			if (k->choice && type != NULL && s->el->ntypes == 1 &&
			    (sl == NULL || sl->ndisc == 0)) {
				if (strcmp(s->el->types[0].code, type) != 0)
					continue;
			} else if (!slice_matches(r, k, s, &items[i], type,
						  &dv)) {
				continue;
			}
			items[i].def = s;
			items[i].slice = (int)j;
			counts[j]++;
			break;
		}
		if (sl == NULL)
			continue;
		if (items[i].slice < 0) {
			if (sl->rules == RULES_SLICE_CLOSED) {
				size_t old = v_is_array_el(k->el)
						 ? v_path_push(r, "[%zu]", i)
						 : r->plen;

				v_issue(r, FHIR_ERROR, "structure",
					items[i].v != NULL ? items[i].v
							   : items[i].u,
					"this element does not match any known "
					"slice of %s, and slicing is closed",
					k->el->id);
				v_path_pop(r, old);
			}
			unmatched_seen = true;
			continue;
		}
		if ((sl->rules == RULES_SLICE_OPEN_AT_END && unmatched_seen) ||
		    (sl->ordered && items[i].slice < last)) {
			size_t old =
			    v_is_array_el(k->el) ? v_path_index(r, i) : r->plen;

			if (sl->rules == RULES_SLICE_OPEN_AT_END &&
			    unmatched_seen)
				v_issue(
				    r, FHIR_ERROR, "structure", items[i].v,
				    "slice %s: elements of open slices must "
				    "come after the defined slices "
				    "(openAtEnd)",
				    k->slices[items[i].slice]->el->slice_name);
			else
				v_issue(
				    r, FHIR_ERROR, "structure", items[i].v,
				    "slice %s is out of order (slicing of %s "
				    "is ordered)",
				    k->slices[items[i].slice]->el->slice_name,
				    k->el->id);
			v_path_pop(r, old);
		}
		if (items[i].slice > last)
			last = items[i].slice;
	}
	for (size_t j = 0; j < k->nslices; j++) {
		const struct rules_element *se = k->slices[j]->card != NULL
						     ? k->slices[j]->card
						     : k->slices[j]->el;

		if (se->slice_name != NULL && strchr(se->slice_name, '/'))
			continue; /* reslices are counted in their parent */
		if (counts[j] < se->min)
			v_issue_card(r, parent_len, n > 0 ? items[0].v : NULL,
				     se->id, false, (unsigned)se->min,
				     counts[j]);
		if (se->max != RULES_UNBOUNDED && counts[j] > se->max)
			v_issue_card(r, parent_len, n > 0 ? items[0].v : NULL,
				     se->id, true, (unsigned)se->max,
				     counts[j]);
	}
	if (counts != stackcounts)
		free(counts);
}
