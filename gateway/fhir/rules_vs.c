/*
 * rules_vs: code systems (compile time only) and ValueSet expansion:
 * shipped expansions, compose include/exclude of concepts, filters on
 * local code systems, other value sets, and registered is-a expansions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"

struct rs_codes {
	struct rules_code *v;
	size_t n, cap;
};

static enum gw_err
rs_codes_add(struct rs_codes *c, const char *system, const char *code,
	     const char *display)
{
	if (code == NULL)
		return GW_OK;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 32;
		struct rules_code *nv = realloc(c->v, ncap * sizeof(*nv));

		if (nv == NULL)
			return GW_NOMEM;
		c->v = nv;
		c->cap = ncap;
	}
	c->v[c->n].system = system;
	c->v[c->n].code = code;
	c->v[c->n].display = display;
	c->n++;
	return GW_OK;
}

/* Concepts of a code system, nested ones with their parent index. */
struct rs_cs_build {
	struct rs_codes c;
	int *parent;
	size_t pcap;
};

static enum gw_err
rs_cs_concepts(struct rules_set *set, const char *system,
	       const struct fj_node *arr, struct rs_cs_build *b, int parent,
	       int depth)
{
	enum gw_err err = GW_OK;

	if (arr == NULL || arr->type != FJ_ARRAY || depth > 64)
		return GW_OK;
	for (const struct fj_node *k = arr->u.kids.first; k && err == GW_OK;
	     k = k->next) {
		const char *code = rs_get_istr(set, k, "code");
		int me = (int)b->c.n;

		if (code == NULL)
			continue;
		if (b->c.n >= (size_t)INT32_MAX)
			return GW_TOOBIG;
		if (b->pcap <= b->c.n) {
			size_t ncap = b->pcap ? b->pcap * 2 : 64;
			int *np = realloc(b->parent, ncap * sizeof(*np));

			if (np == NULL)
				return GW_NOMEM;
			b->parent = np;
			b->pcap = ncap;
		}
		b->parent[b->c.n] = parent;
		err = rs_codes_add(&b->c, system, code,
				   rs_get_istr(set, k, "display"));
		if (err == GW_OK)
			err = rs_cs_concepts(set, system, fj_get(k, "concept"),
					     b, me, depth + 1);
	}
	return err;
}

enum gw_err
rs_add_codesystem(struct rules_set *set, const struct fj_node *res)
{
	const char *url = rs_canon(set, fj_get_str(res, "url"));
	const char *content = fj_get_str(res, "content");
	struct rs_codesystem *cs, **ncs;
	struct rs_cs_build b;
	enum gw_err err;

	memset(&b, 0, sizeof(b));
	if (url == NULL || hmap_get_num(&set->cs_url, url) != 0)
		return GW_OK;
	if ((cs = rs_alloc(set, sizeof(*cs))) == NULL)
		return GW_NOMEM;
	cs->url = url;
	/* STU3 has no content element on some older code systems */
	cs->complete = content == NULL || strcmp(content, "complete") == 0;
	if ((err = rs_cs_concepts(set, url, fj_get(res, "concept"), &b, -1,
				  0)) != GW_OK)
		goto out;
	if (b.c.n > 0) {
		cs->codes = rs_alloc(set, b.c.n * sizeof(*b.c.v));
		cs->parent = rs_alloc(set, b.c.n * sizeof(*b.parent));
		if (cs->codes == NULL || cs->parent == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		memcpy(cs->codes, b.c.v, b.c.n * sizeof(*b.c.v));
		memcpy(cs->parent, b.parent, b.c.n * sizeof(*b.parent));
		cs->ncodes = b.c.n;
	} else {
		cs->complete = false;
	}
	if (set->ncs == set->capcs) {
		size_t ncap = set->capcs ? set->capcs * 2 : 64;

		if ((ncs = realloc(set->cs,
				   ncap * sizeof(struct rs_codesystem *))) ==
		    NULL) {
			err = GW_NOMEM;
			goto out;
		}
		set->cs = ncs;
		set->capcs = ncap;
	}
	set->cs[set->ncs++] = cs;
	err = hmap_put_num(&set->cs_url, url, set->ncs);
out:
	free(b.c.v);
	free(b.parent);
	return err;
}

/* Is concept i of cs the concept a or below it? */
static bool
rs_cs_below(const struct rs_codesystem *cs, int i, int a)
{
	for (int depth = 0; i >= 0 && depth < 64; depth++) {
		if (i == a)
			return true;
		i = cs->parent[i];
	}
	return false;
}

/*
 * Mark the concepts of a complete local code system that pass all the
 * filters (concept is-a, descendent-of, is-not-a, =). False when a
 * filter cannot be computed here.
 */
static bool
rs_cs_filter(const struct rs_codesystem *cs, const struct fj_node *filters,
	     bool *mark)
{
	for (size_t i = 0; i < cs->ncodes; i++)
		mark[i] = true;
	for (const struct fj_node *f = filters->u.kids.first; f; f = f->next) {
		const char *op = fj_get_str(f, "op");
		const char *v = fj_get_str(f, "value");
		const char *prop = fj_get_str(f, "property");
		int a = -1;

		if (op == NULL || v == NULL || prop == NULL ||
		    (strcmp(prop, "concept") != 0 && strcmp(prop, "code") != 0))
			return false;
		for (size_t i = 0; i < cs->ncodes && a < 0; i++)
			if (strcmp(cs->codes[i].code, v) == 0)
				a = (int)i;
		for (size_t i = 0; i < cs->ncodes; i++) {
			bool below = a >= 0 && rs_cs_below(cs, (int)i, a);
			bool keep;

			if (strcmp(op, "is-a") == 0)
				keep = below;
			else if (strcmp(op, "descendent-of") == 0)
				keep = below && (int)i != a;
			else if (strcmp(op, "is-not-a") == 0)
				keep = !below;
			else if (strcmp(op, "=") == 0)
				keep = (int)i == a;
			else
				return false;
			mark[i] = mark[i] && keep;
		}
	}
	return true;
}

static const struct rs_codesystem *
rs_codesystem(const struct rules_set *set, const char *url)
{
	size_t v = hmap_get_num(&set->cs_url, url);

	return v ? set->cs[v - 1] : NULL;
}

bool
rules_known_url(const struct rules_set *set, const char *url)
{
	char plain[1024];
	const char *bar = strchr(url, '|');

	if (bar != NULL) {
		if ((size_t)(bar - url) >= sizeof(plain))
			return false;
		snprintf(plain, sizeof(plain), "%.*s", (int)(bar - url), url);
		url = plain;
	}
	return rs_codesystem(set, url) != NULL ||
	       rules_valueset(set, url) != NULL ||
	       rules_structure(set, url) != NULL;
}

static const struct rules_valueset *
rs_need_valueset(struct rules_set *set, const char *url)
{
	const struct rules_valueset *vs = rules_valueset(set, url);
	char tmp[1024];
	size_t v;

	if (vs != NULL)
		return vs;
	v = hmap_get_num(&set->pvs_url,
			 rs_strip_version(url, tmp, sizeof(tmp)));
	if (v == 0 || rs_compile_vs(set, v - 1) != GW_OK)
		return NULL;
	return rules_valueset(set, url);
}

static enum gw_err
rs_contains(struct rules_set *set, const struct fj_node *arr,
	    struct rs_codes *c, int depth)
{
	enum gw_err err = GW_OK;

	if (arr == NULL || arr->type != FJ_ARRAY || depth > 64)
		return GW_OK;
	for (const struct fj_node *k = arr->u.kids.first; k && err == GW_OK;
	     k = k->next) {
		bool abstract = false;

		rs_get_bool(k, "abstract", &abstract);
		if (!abstract)
			err = rs_codes_add(
			    c, rs_canon(set, fj_get_str(k, "system")),
			    rs_get_istr(set, k, "code"),
			    rs_get_istr(set, k, "display"));
		if (err == GW_OK)
			err = rs_contains(set, fj_get(k, "contains"), c,
					  depth + 1);
	}
	return err;
}

/* One compose.include: codes go to c; *complete cleared when it cannot
 * be expanded offline. */
static enum gw_err
rs_include(struct rules_set *set, const struct fj_node *inc, struct rs_codes *c,
	   bool *complete, const char **note)
{
	const char *system = rs_canon(set, fj_get_str(inc, "system"));
	const struct fj_node *concepts = fj_get(inc, "concept");
	const struct fj_node *filter = fj_get(inc, "filter");
	const struct fj_node *vsets = fj_get(inc, "valueSet");
	enum gw_err err = GW_OK;

	if (vsets != NULL) {
		struct rules_code *v;
		size_t nv;

		if (system != NULL || vsets->type != FJ_ARRAY ||
		    vsets->u.kids.count != 1) {
			*complete = false; /* intersections: not done */
			return GW_OK;
		}
		const struct rules_valueset *vs =
		    rs_need_valueset(set, vsets->u.kids.first->u.str.s);

		if (vs == NULL || !vs->complete) {
			*complete = false;
			return GW_OK;
		}
		v = vs->codes;
		nv = vs->ncodes;
		for (size_t i = 0; i < nv && err == GW_OK; i++)
			err = rs_codes_add(c, v[i].system, v[i].code,
					   v[i].display);
		return err;
	}
	if (system == NULL) {
		*complete = false;
		return GW_OK;
	}
	if (concepts != NULL && concepts->type == FJ_ARRAY) {
		for (const struct fj_node *k = concepts->u.kids.first;
		     k && err == GW_OK; k = k->next)
			err =
			    rs_codes_add(c, system, rs_get_istr(set, k, "code"),
					 rs_get_istr(set, k, "display"));
		return err;
	}
	if (filter != NULL) {
		const struct fj_node *f =
		    filter->type == FJ_ARRAY ? filter->u.kids.first : NULL;

		if (f != NULL && f->next == NULL &&
		    fj_str_eq(fj_get(f, "property"), "concept") &&
		    fj_str_eq(fj_get(f, "op"), "is-a")) {
			const char *v = fj_get_str(f, "value");

			for (size_t i = 0; v != NULL && i < set->nisa; i++) {
				const struct rs_isa *x = &set->isa[i];

				if (x->system != system ||
				    strcmp(x->code, v) != 0)
					continue;
				*note = x->note;
				for (size_t k = 0;
				     k < x->ncodes && err == GW_OK; k++)
					err = rs_codes_add(c, system,
							   x->codes[k].code,
							   x->codes[k].display);
				return err;
			}
		}
		const struct rs_codesystem *fcs = rs_codesystem(set, system);
		bool *mark;

		if (fcs == NULL || !fcs->complete || filter->type != FJ_ARRAY) {
			*complete = false;
			return GW_OK;
		}
		if ((mark = calloc(fcs->ncodes + 1, sizeof(*mark))) == NULL)
			return GW_NOMEM;
		if (!rs_cs_filter(fcs, filter, mark))
			*complete = false;
		else
			for (size_t i = 0; i < fcs->ncodes && err == GW_OK; i++)
				if (mark[i])
					err = rs_codes_add(
					    c, system, fcs->codes[i].code,
					    fcs->codes[i].display);
		free(mark);
		return err;
	}
	const struct rs_codesystem *cs = rs_codesystem(set, system);

	if (cs == NULL || !cs->complete) {
		*complete = false;
		return GW_OK;
	}
	for (size_t i = 0; i < cs->ncodes && err == GW_OK; i++)
		err = rs_codes_add(c, cs->codes[i].system, cs->codes[i].code,
				   cs->codes[i].display);
	return err;
}

static void
rs_exclude(struct rules_set *set, const struct fj_node *exc, struct rs_codes *c,
	   bool *complete)
{
	const char *system = rs_canon(set, fj_get_str(exc, "system"));
	const struct fj_node *concepts = fj_get(exc, "concept");
	const struct fj_node *filter = fj_get(exc, "filter");
	const struct fj_node *vsets = fj_get(exc, "valueSet");
	const struct rules_valueset *vs = NULL;
	const struct rs_codesystem *cs = NULL;
	bool *mark = NULL;

	if (vsets != NULL) {
		if (system != NULL || vsets->type != FJ_ARRAY ||
		    vsets->u.kids.count != 1 ||
		    (vs = rs_need_valueset(
			 set, vsets->u.kids.first->u.str.s)) == NULL ||
		    !vs->complete) {
			*complete = false;
			return;
		}
		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].code != NULL &&
			    rules_valueset_has(vs, c->v[i].system,
					       c->v[i].code))
				c->v[i].code = NULL;
		return;
	}
	if (system == NULL) {
		*complete = false;
		return;
	}
	if (filter != NULL) {
		cs = rs_codesystem(set, system);
		if (cs == NULL || !cs->complete || filter->type != FJ_ARRAY ||
		    (mark = calloc(cs->ncodes + 1, sizeof(*mark))) == NULL ||
		    !rs_cs_filter(cs, filter, mark)) {
			free(mark);
			*complete = false;
			return;
		}
	}
	for (size_t i = 0; i < c->n; i++) {
		bool drop = false;

		if (c->v[i].system != system || c->v[i].code == NULL)
			continue;
		if (mark != NULL) {
			for (size_t k = 0; k < cs->ncodes && !drop; k++)
				drop = mark[k] && strcmp(cs->codes[k].code,
							 c->v[i].code) == 0;
		} else if (concepts == NULL || concepts->type != FJ_ARRAY) {
			drop = true;
		} else {
			for (const struct fj_node *k = concepts->u.kids.first;
			     k; k = k->next)
				if (fj_str_eq(fj_get(k, "code"), c->v[i].code))
					drop = true;
		}
		if (drop)
			c->v[i].code = NULL;
	}
	free(mark);
}

enum gw_err
rs_compile_vs(struct rules_set *set, size_t idx)
{
	struct rs_pending *p = &set->pvs[idx];
	const struct fj_node *res = p->res, *exp, *compose, *arr;
	struct rules_valueset *vs;
	struct rs_codes c = {0};
	bool complete = true;
	const char *isanote = NULL;
	char note[512];
	enum gw_err err = GW_OK;
	int saved_pkg = set->cur_pkg;
	size_t n = 0;

	if (p->state == 2)
		return GW_OK;
	if (p->state == 3)
		return GW_NOTFOUND;
	if (p->state == 1) {
		rs_warn(set, "%s: value set includes itself", p->url);
		return GW_INVALID;
	}
	p->state = 1;
	if ((vs = rs_alloc(set, sizeof(*vs))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	vs->url = p->url;
	vs->version = rs_get_istr(set, res, "version");
	if ((vs->title = rs_get_istr(set, res, "title")) == NULL)
		vs->title = rs_get_istr(set, res, "name");
	exp = fj_get(res, "expansion");
	compose = fj_get(res, "compose");
	if (exp != NULL && fj_get(exp, "contains") != NULL) {
		const char *ts = fj_get_str(exp, "timestamp");

		err = rs_contains(set, fj_get(exp, "contains"), &c, 0);
		snprintf(note, sizeof(note), "expansion %s from the source",
			 ts ? ts : "(undated)");
	} else if (compose != NULL) {
		arr = fj_get(compose, "include");
		for (const struct fj_node *k = arr && arr->type == FJ_ARRAY
						   ? arr->u.kids.first
						   : NULL;
		     k && err == GW_OK; k = k->next)
			err = rs_include(set, k, &c, &complete, &isanote);
		arr = fj_get(compose, "exclude");
		for (const struct fj_node *k = arr && arr->type == FJ_ARRAY
						   ? arr->u.kids.first
						   : NULL;
		     k && err == GW_OK; k = k->next)
			rs_exclude(set, k, &c, &complete);
		snprintf(note, sizeof(note), "%s",
			 !complete ? "compose (not expandable offline)"
			 : isanote ? isanote
				   : "compose");
	} else {
		complete = false;
		snprintf(note, sizeof(note), "no content");
	}
	if (err != GW_OK)
		goto out;
	/* sort, drop excluded and duplicate codes */
	if (c.n > 1)
		qsort(c.v, c.n, sizeof(*c.v), rs_code_sort_cmp);
	if (c.n > 0 &&
	    (vs->codes = rs_alloc(set, c.n * sizeof(*c.v))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < c.n; i++) {
		if (c.v[i].code == NULL)
			continue;
		if (n > 0 && vs->codes[n - 1].system == c.v[i].system &&
		    strcmp(vs->codes[n - 1].code, c.v[i].code) == 0)
			continue;
		vs->codes[n++] = c.v[i];
	}
	vs->ncodes = n;
	vs->complete = complete;
	if ((vs->expansion = rs_intern(set, note)) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	set->cur_pkg = p->pkg;
	err = rs_add_valueset(set, vs);
	if (err == GW_EXISTS)
		err = GW_OK;
out:
	set->cur_pkg = saved_pkg;
	free(c.v);
	p->state = err == GW_OK ? 2 : 3;
	return err;
}
