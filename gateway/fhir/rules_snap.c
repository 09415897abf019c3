/*
 * rules_snap: snapshot generation. Applies a differential to the compiled
 * snapshot of its base, expanding datatype children, slices, choice-type
 * renames and type profiles (extensions) on demand. Structures beyond the
 * base come through the caller's struct rs_resolver: this file does not
 * call the compiler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"

/* Deepest nesting of on-demand expansions (guards against cycles). */
#define SNAP_MAX_DEPTH 24

struct snap {
	struct rules_set *set;
	const struct rs_resolver *res; /* profiled types */
	const char *url;
	const struct rules_structure *base;
	struct rules_element *w;
	size_t n, cap;
	/* choice renames: ids starting with from[i] become to[i] */
	const char **from, **to;
	size_t nren;
};

static enum gw_err
snap_reserve(struct snap *s, size_t more)
{
	struct rules_element *nw;
	size_t ncap;

	if (s->n + more <= s->cap)
		return GW_OK;
	ncap = s->cap ? s->cap * 2 : 256;
	while (ncap < s->n + more)
		ncap *= 2;
	if ((nw = realloc(s->w, ncap * sizeof(*nw))) == NULL)
		return GW_NOMEM;
	s->w = nw;
	s->cap = ncap;
	return GW_OK;
}

static long
snap_find(const struct snap *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->w[i].id == id || strcmp(s->w[i].id, id) == 0)
			return (long)i;
	return -1;
}

/* True when id is below prefix: "prefix." (children) or, with slices,
 * "prefix:" / "prefix/" (its slices and re-slices). */
static bool
snap_below(const char *id, const char *prefix, size_t plen, bool slices)
{
	if (strncmp(id, prefix, plen) != 0)
		return false;
	return id[plen] == '.' ||
	       (slices && (id[plen] == ':' || id[plen] == '/'));
}

/* Index after the last element below w[i] (optionally with slices). */
static size_t
snap_end(const struct snap *s, size_t i, bool slices)
{
	const char *id = s->w[i].id;
	size_t plen = strlen(id), j;

	for (j = i + 1; j < s->n; j++)
		if (!snap_below(s->w[j].id, id, plen, slices))
			break;
	return j;
}

/* Interned prefix + (old + skip). */
static const char *
snap_rename(struct rules_set *set, const char *prefix, const char *old,
	    size_t skip)
{
	char tmp[1024];
	int n = snprintf(tmp, sizeof(tmp), "%s%s", prefix, old + skip);

	if (n < 0 || (size_t)n >= sizeof(tmp))
		return NULL;
	return rs_intern(set, tmp);
}

/* Insert cnt elements at position at (copies of src, which may point
 * into s->w). */
static enum gw_err
snap_insert(struct snap *s, size_t at, const struct rules_element *src,
	    size_t cnt)
{
	struct rules_element *tmp;
	enum gw_err err;

	if (cnt == 0)
		return GW_OK;
	if ((tmp = malloc(cnt * sizeof(*tmp))) == NULL)
		return GW_NOMEM;
	memcpy(tmp, src, cnt * sizeof(*tmp));
	if ((err = snap_reserve(s, cnt)) != GW_OK) {
		free(tmp);
		return err;
	}
	memmove(&s->w[at + cnt], &s->w[at], (s->n - at) * sizeof(*s->w));
	memcpy(&s->w[at], tmp, cnt * sizeof(*tmp));
	s->n += cnt;
	free(tmp);
	return GW_OK;
}

/* "value[x]" + "valueCodeableConcept" -> "CodeableConcept" or NULL. */
static const char *
snap_choice_type(const char *path, const char *name)
{
	const char *last = strrchr(path, '.');
	size_t n;

	last = last ? last + 1 : path;
	n = strlen(last);
	if (n < 4 || strcmp(last + n - 3, "[x]") != 0)
		return NULL;
	n -= 3;
	if (strncmp(name, last, n) != 0 || name[n] < 'A' || name[n] > 'Z')
		return NULL;
	return name + n;
}

static bool
snap_type_is(const char *code, const char *cap)
{
	/* "CodeableConcept" vs code "CodeableConcept"; "String" vs
	 * "string" (primitive types start lower-case) */
	if (code == NULL)
		return false;
	if (code[0] >= 'a' && code[0] <= 'z')
		return code[0] == cap[0] - 'A' + 'a' &&
		       strcmp(code + 1, cap + 1) == 0;
	return strcmp(code, cap) == 0;
}

/* Narrow el's types to the one named by cap; false when none matches. */
static bool
snap_narrow(struct rules_set *set, struct rules_element *el, const char *cap)
{
	for (size_t i = 0; i < el->ntypes; i++) {
		if (snap_type_is(el->types[i].code, cap)) {
			struct rules_type *t = rs_alloc(set, sizeof(*t));

			if (t == NULL)
				return false;
			*t = el->types[i];
			el->types = t;
			el->ntypes = 1;
			return true;
		}
	}
	return false;
}

static enum gw_err
snap_default_slicing(struct rules_set *set, struct rules_element *el)
{
	const char *last;
	struct rules_slicing *sl;

	if (el->slicing != NULL)
		return GW_OK;
	last = strrchr(el->path, '.');
	last = last ? last + 1 : el->path;
	if ((sl = rs_alloc(set, sizeof(*sl))) == NULL ||
	    (sl->disc = rs_alloc(set, sizeof(*sl->disc))) == NULL)
		return GW_NOMEM;
	sl->ndisc = 1;
	sl->rules = RULES_SLICE_OPEN;
	if (strcmp(last, "extension") == 0 ||
	    strcmp(last, "modifierExtension") == 0) {
		sl->disc[0].type = RULES_DISC_VALUE;
		sl->disc[0].path = rs_intern(set, "url");
	} else if (strstr(last, "[x]") != NULL) {
		sl->disc[0].type = RULES_DISC_TYPE;
		sl->disc[0].path = rs_intern(set, "$this");
	} else {
		return GW_OK; /* unknown: leave it to the profile */
	}
	if (sl->disc[0].path == NULL)
		return GW_NOMEM;
	el->slicing = sl;
	return GW_OK;
}

static long snap_materialize(struct snap *s, const char *id, int depth);

static long
snap_locate(struct snap *s, const char *id, int depth)
{
	long i = snap_find(s, id);

	if (i >= 0 || depth > SNAP_MAX_DEPTH)
		return i;
	return snap_materialize(s, id, depth + 1);
}

/* Create the slice id (sliced element at index si, slice name name). */
static long
snap_new_slice(struct snap *s, const char *id, long si, const char *name)
{
	struct rules_set *set = s->set;
	size_t end_children = snap_end(s, (size_t)si, false);
	size_t at = snap_end(s, (size_t)si, true);
	size_t cnt = end_children - (size_t)si;
	const char *sid = s->w[si].id, *cap;
	size_t slen = strlen(sid);

	if (snap_default_slicing(set, &s->w[si]) != GW_OK)
		return -1;
	if (snap_insert(s, at, &s->w[si], cnt) != GW_OK)
		return -1;
	for (size_t k = at; k < at + cnt; k++) {
		s->w[k].id = snap_rename(set, id, s->w[k].id, slen);
		if (s->w[k].id == NULL)
			return -1;
	}
	s->w[at].slice_name = rs_intern(set, name);
	s->w[at].slicing = NULL;
	s->w[at].min = 0;
	if ((cap = snap_choice_type(s->w[at].path, name)) != NULL)
		snap_narrow(set, &s->w[at], cap);
	return (long)at;
}

/* Children of the element at pi from its type (or type profile, or
 * content reference). */
static enum gw_err
snap_expand(struct snap *s, long pi, int depth)
{
	struct rules_set *set = s->set;
	struct rules_element *p = &s->w[pi];
	const struct rules_structure *ts = NULL;
	const struct rules_element *src;
	const char *pid = p->id, *ppath = p->path, *rootid, *rootpath;
	size_t nsrc, skipid, skippath, at = (size_t)pi + 1;
	struct rules_element *copy;
	long ri;

	if (p->content_ref != NULL) {
		/* copy the referenced element's children from the
		 * working list (they are there: it is in the base) */
		char tmp[1024];
		int n = snprintf(tmp, sizeof(tmp), "%s", p->content_ref);

		if (n < 0 || (size_t)n >= sizeof(tmp))
			return GW_INVALID;
		/* the referenced definition as the base has it (the
		 * profile's own constraints on it do not recur) */
		const struct rules_structure *b = s->base;
		const char *rid = rs_intern(set, tmp);
		size_t end, plen;

		ri = -1;
		for (size_t k = 0; k < b->nelements && ri < 0; k++)
			if (b->elements[k].id == rid ||
			    strcmp(b->elements[k].id, rid) == 0)
				ri = (long)k;
		if (ri < 0)
			return GW_NOTFOUND;
		plen = strlen(rid);
		for (end = (size_t)ri + 1; end < b->nelements; end++)
			if (!snap_below(b->elements[end].id, rid, plen, false))
				break;
		nsrc = end - (size_t)ri - 1;
		if ((copy = malloc((nsrc ? nsrc : 1) * sizeof(*copy))) == NULL)
			return GW_NOMEM;
		memcpy(copy, &b->elements[ri + 1], nsrc * sizeof(*copy));
		rootid = b->elements[ri].id;
		rootpath = b->elements[ri].path;
	} else {
		if (p->ntypes != 1)
			return GW_NOTFOUND;
		if (p->types[0].nprofiles > 0)
			ts = s->res->structure(s->res->arg,
					       p->types[0].profiles[0]);
		if (ts == NULL)
			ts = rules_type(set, p->types[0].code);
		if (ts == NULL || ts->nelements < 2)
			return GW_NOTFOUND;
		if ((copy = malloc((ts->nelements - 1) * sizeof(*copy))) ==
		    NULL)
			return GW_NOMEM;
		nsrc = ts->nelements - 1;
		memcpy(copy, ts->elements + 1, nsrc * sizeof(*copy));
		rootid = ts->elements[0].id;
		rootpath = ts->elements[0].path;
	}
	skipid = strlen(rootid);
	skippath = strlen(rootpath);
	for (size_t k = 0; k < nsrc; k++) {
		src = &copy[k];
		if (strncmp(src->id, rootid, skipid) != 0 ||
		    strncmp(src->path, rootpath, skippath) != 0) {
			free(copy);
			return GW_INVALID;
		}
		copy[k].id = snap_rename(set, pid, src->id, skipid);
		copy[k].path = snap_rename(set, ppath, src->path, skippath);
		if (copy[k].id == NULL || copy[k].path == NULL) {
			free(copy);
			return GW_NOMEM;
		}
	}
	enum gw_err err = snap_insert(s, at, copy, nsrc);

	free(copy);
	(void)depth;
	return err;
}

/*
 * A renamed choice (parent.valueQuantity for parent.value[x] at index k):
 * as the R4 reference snapshot generator does, the [x] element is
 * narrowed to the one type and closed-sliced by type, and the constraints
 * go to the type slice value[x]:valueQuantity; in STU3 they go to the
 * narrowed [x] element itself. Later ids below the renamed one are mapped
 * accordingly.
 */
static long
snap_rename_choice(struct snap *s, const char *id, long k, const char *name,
		   const char *cap)
{
	struct rules_set *set = s->set;
	struct rules_element *c = &s->w[k];
	const char **nf, **nt, *sid;
	char tmp[1024];
	long si;
	int n;

	snap_narrow(set, c, cap);
	if (set->fhir == RULES_STU3) {
		/* the STU3 generator constrains [x] itself */
		sid = c->id;
		si = k;
		goto map;
	}
	if (c->slicing == NULL) {
		if (snap_default_slicing(set, c) != GW_OK)
			return -1;
		if (c->slicing != NULL)
			c->slicing->rules = RULES_SLICE_CLOSED;
	}
	n = snprintf(tmp, sizeof(tmp), "%s:%s", c->id, name);
	if (n < 0 || (size_t)n >= sizeof(tmp) ||
	    (sid = rs_intern(set, tmp)) == NULL)
		return -1;
	if ((si = snap_find(s, sid)) < 0 &&
	    (si = snap_new_slice(s, sid, k, name)) < 0)
		return -1;
map:
	if ((nf = realloc(s->from, (s->nren + 1) * sizeof(*nf))) == NULL)
		return -1;
	s->from = nf;
	if ((nt = realloc(s->to, (s->nren + 1) * sizeof(*nt))) == NULL)
		return -1;
	s->to = nt;
	s->from[s->nren] = id;
	s->to[s->nren++] = sid;
	return si;
}

static long
snap_materialize(struct snap *s, const char *id, int depth)
{
	struct rules_set *set = s->set;
	char parent[1024];
	const char *dot = strrchr(id, '.'), *colon, *name, *cap;
	long pi, i;
	size_t plen;

	if (dot == NULL || (size_t)(dot - id) >= sizeof(parent))
		return -1;
	name = dot + 1;
	if ((colon = strchr(name, ':')) != NULL) {
		/* a slice: the sliced element is id minus the last
		 * ":name" (or "/name" for a re-slice) */
		const char *cut = strrchr(colon, '/');
		const char *sname = colon + 1;

		if (cut == NULL)
			cut = colon;
		plen = (size_t)(cut - id);
		if (plen >= sizeof(parent))
			return -1;
		memcpy(parent, id, plen);
		parent[plen] = '\0';
		pi = snap_locate(s, rs_intern(set, parent), depth);
		if (pi < 0)
			return -1;
		/* the sliced element may have been found under another id
		 * (a renamed choice) */
		if (strcmp(s->w[pi].id, parent) != 0 &&
		    (id = snap_rename(set, s->w[pi].id, id, plen)) == NULL)
			return -1;
		if ((i = snap_find(s, id)) >= 0)
			return i;
		return snap_new_slice(s, id, pi, sname);
	}
	plen = (size_t)(dot - id);
	memcpy(parent, id, plen);
	parent[plen] = '\0';
	pi = snap_locate(s, rs_intern(set, parent), depth);
	if (pi < 0)
		return -1;
	if (strcmp(s->w[pi].id, parent) != 0) {
		/* found under another id (a renamed choice) */
		if ((id = snap_rename(set, s->w[pi].id, id, plen)) == NULL)
			return -1;
		plen = strlen(s->w[pi].id);
	}
	/* making the parent may have made this element too */
	if ((i = snap_find(s, id)) >= 0)
		return i;
	/* children not there yet: expand the parent's type */
	if ((size_t)pi + 1 >= s->n || !snap_below(s->w[pi + 1].id, s->w[pi].id,
						  strlen(s->w[pi].id), false)) {
		if (snap_expand(s, pi, depth) != GW_OK)
			return -1;
		if ((i = snap_find(s, id)) >= 0)
			return i;
	}
	/* a renamed choice: parent.valueQuantity -> parent.value[x] */
	for (size_t k = (size_t)pi + 1; k < s->n; k++) {
		struct rules_element *c = &s->w[k];
		const char *cid = c->id;

		if (!snap_below(cid, s->w[pi].id, plen, true))
			break;
		if (cid[plen] != '.' || strchr(cid + plen + 1, '.') != NULL ||
		    strchr(cid + plen + 1, ':') != NULL)
			continue;
		if ((cap = snap_choice_type(c->path, name)) == NULL)
			continue;
		return snap_rename_choice(s, id, (long)k, name, cap);
	}
	return -1;
}

/* Apply choice renames to a differential id. */
static const char *
snap_map_id(struct snap *s, const char *id)
{
	for (size_t k = s->nren; k-- > 0;) {
		size_t n = strlen(s->from[k]);

		if (strncmp(id, s->from[k], n) == 0 &&
		    (id[n] == '\0' || id[n] == '.' || id[n] == ':'))
			return snap_rename(s->set, s->to[k], id, n);
	}
	return id;
}

static enum gw_err
snap_merge(struct snap *s, struct rules_element *w,
	   const struct rules_element *d, unsigned has)
{
	struct rules_set *set = s->set;

	if (has & RS_HAS_MIN)
		w->min = d->min;
	if (has & RS_HAS_MAX)
		w->max = d->max;
	if ((has & RS_HAS_TYPE) && d->ntypes > 0) {
		w->types = d->types;
		w->ntypes = d->ntypes;
	}
	if (has & RS_HAS_FIXED)
		w->fixed = d->fixed;
	if (has & RS_HAS_PATTERN)
		w->pattern = d->pattern;
	if (has & RS_HAS_MINVALUE)
		w->min_value = d->min_value;
	if (has & RS_HAS_MAXVALUE)
		w->max_value = d->max_value;
	if (has & RS_HAS_MAXLENGTH)
		w->max_length = d->max_length;
	if (has & RS_HAS_BINDING) {
		w->strength = d->strength;
		if (d->valueset != NULL)
			w->valueset = d->valueset;
	}
	if ((has & RS_HAS_SLICING) && d->slicing != NULL) {
		/* a differential may give only the discriminator or only
		 * the rules; keep the rest */
		if (w->slicing != NULL && d->slicing->ndisc == 0) {
			struct rules_slicing *sl = rs_alloc(set, sizeof(*sl));

			if (sl == NULL)
				return GW_NOMEM;
			*sl = *w->slicing;
			sl->rules = d->slicing->rules;
			sl->ordered = d->slicing->ordered;
			w->slicing = sl;
		} else {
			w->slicing = d->slicing;
		}
	}
	if ((has & RS_HAS_CONSTRAINT) && d->nconstraints > 0) {
		size_t n = w->nconstraints;
		struct rules_constraint *c =
		    rs_alloc(set, (n + d->nconstraints) * sizeof(*c));

		if (c == NULL)
			return GW_NOMEM;
		if (n > 0)
			memcpy(c, w->constraints, n * sizeof(*c));
		for (size_t k = 0; k < d->nconstraints; k++) {
			bool dup = false;

			for (size_t j = 0; j < w->nconstraints; j++)
				if (strcmp(c[j].key, d->constraints[k].key) ==
				    0)
					dup = true;
			if (!dup)
				c[n++] = d->constraints[k];
		}
		w->constraints = c;
		w->nconstraints = n;
	}
	if (has & RS_HAS_MODIFIER)
		w->is_modifier = d->is_modifier;
	if (has & RS_HAS_MUSTSUPPORT)
		w->must_support = d->must_support;
	if (has & RS_HAS_CONTENTREF)
		w->content_ref = d->content_ref;
	return GW_OK;
}

enum gw_err
rs_snapshot(struct rules_set *set, const struct rs_resolver *res,
	    const struct rules_structure *base,
	    const struct rules_element *diff, const unsigned *has, size_t n,
	    const char *url, struct rules_element **out, size_t *nout)
{
	struct snap s = {.set = set, .res = res, .url = url, .base = base};
	enum gw_err err = GW_OK;

	*out = NULL;
	*nout = 0;
	if ((err = snap_reserve(&s, base->nelements + 16)) != GW_OK)
		goto out;
	/* Never NULL after a reserve of at least 16, but the analyzer
	 * considers the sum wrapping to 0; an element-less base has no
	 * array to copy from. */
	if (s.w == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	if (base->nelements > 0)
		memcpy(s.w, base->elements, base->nelements * sizeof(*s.w));
	s.n = base->nelements;
	for (size_t k = 0; k < n; k++) {
		const char *id = snap_map_id(&s, diff[k].id);
		long i;

		if (id == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		if ((i = snap_locate(&s, id, 0)) < 0) {
			rs_warn(set, "%s: element %s not found in the base",
				url, id);
			continue;
		}
		if ((err = snap_merge(&s, &s.w[i], &diff[k], has[k])) != GW_OK)
			goto out;
	}
	/* slices without a slicing (extensions, choice types) */
	for (size_t k = 0; k < s.n; k++) {
		const char *id = s.w[k].id, *cut;
		char tmp[1024];
		long si;

		if (s.w[k].slice_name == NULL)
			continue;
		cut = strrchr(id, '/');
		if (cut == NULL || strrchr(id, '.') > cut)
			cut = strrchr(id, ':');
		if (cut == NULL || (size_t)(cut - id) >= sizeof(tmp))
			continue;
		memcpy(tmp, id, (size_t)(cut - id));
		tmp[cut - id] = '\0';
		if ((si = snap_find(&s, tmp)) >= 0 &&
		    (err = snap_default_slicing(set, &s.w[si])) != GW_OK)
			goto out;
	}
	if ((*out = rs_alloc(set, s.n * sizeof(**out))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	memcpy(*out, s.w, s.n * sizeof(**out));
	*nout = s.n;
out:
	free(s.w);
	free(s.from);
	free(s.to);
	return err;
}
