/*
 * rules: the rule set (arena, interned strings, lookups) and the compiler
 * from FHIR conformance resources (StructureDefinition, ValueSet,
 * CodeSystem; JSON or XML) to compiled rules.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rules_impl.h"
#include "util.h"
#include "xmlfhir.h"

/* Largest conformance source file accepted (the R4 core bundles are
 * about 35 MB). */
#define RS_MAX_SOURCE (128u * 1024 * 1024)
#define RS_CHUNK      65536u

struct rs_chunk {
	struct rs_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

void *
rs_alloc(struct rules_set *set, size_t size)
{
	struct rs_chunk *c = set->chunks;
	void *p;

	size = (size + 15u) & ~(size_t)15u;
	if (c == NULL || c->cap - c->used < size) {
		size_t cap = size > RS_CHUNK / 4 ? size : RS_CHUNK;

		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;
		c->used = 0;
		c->cap = cap;
		if (cap == RS_CHUNK || set->chunks == NULL) {
			c->next = set->chunks;
			set->chunks = c;
		} else {
			/* big block: keep the current chunk in front */
			c->next = set->chunks->next;
			set->chunks->next = c;
		}
	}
	p = (char *)c->data + c->used;
	c->used += size;
	memset(p, 0, size);
	return p;
}

const char *
rs_internn(struct rules_set *set, const char *s, size_t n)
{
	struct hmap_slot *slot;
	enum gw_err err;
	char *copy;

	if (s == NULL)
		return NULL;
	/* A C string: it ends at its first NUL. */
	n = strnlen(s, n);
	if ((slot = hmap_find(&set->strings, s, n)) != NULL)
		return slot->key;
	if ((copy = rs_alloc(set, n + 1)) == NULL)
		return NULL;
	memcpy(copy, s, n);
	err = hmap_insert(&set->strings, copy, n, &slot);
	return err == GW_OK ? copy : NULL;
}

const char *
rs_intern(struct rules_set *set, const char *s)
{
	return s == NULL ? NULL : rs_internn(set, s, strlen(s));
}

void
rs_warn(struct rules_set *set, const char *fmt, ...)
{
	va_list ap;

	set->nwarn++;
	if (set->quiet)
		return;
	fputs("rules: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct rules_set *
rules_set_new(enum rules_fhir fhir)
{
	struct rules_set *set = calloc(1, sizeof(*set));

	if (set == NULL)
		return NULL;
	set->fhir = fhir;
	set->quiet = true;
	if ((set->doc = fj_doc_new()) == NULL ||
	    rules_set_package(set, "local") != GW_OK) {
		rules_set_free(set);
		return NULL;
	}
	return set;
}

static void
rs_free_sources(struct rules_set *set)
{
	for (size_t i = 0; i < set->nsrcdocs; i++)
		fj_doc_free(set->srcdocs[i]);
	free(set->srcdocs);
	free(set->psd);
	free(set->pvs);
	hmap_free(&set->psd_url, NULL);
	hmap_free(&set->pvs_url, NULL);
	set->srcdocs = NULL;
	set->psd = set->pvs = NULL;
	set->nsrcdocs = set->capsrcdocs = 0;
	set->npsd = set->cappsd = set->npvs = set->cappvs = 0;
}

void
rules_set_free(struct rules_set *set)
{
	struct rs_chunk *c, *next;

	if (set == NULL)
		return;
	rs_free_sources(set);
	for (c = set->chunks; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	for (size_t i = 0; i < set->nbufs; i++)
		free(set->bufs[i]);
	free(set->bufs);
	hmap_free(&set->strings, NULL);
	hmap_free(&set->st_url, NULL);
	hmap_free(&set->vs_url, NULL);
	hmap_free(&set->cs_url, NULL);
	free(set->st);
	free(set->st_pkg);
	free(set->vs);
	free(set->vs_pkg);
	free(set->cs);
	free(set->pkgs);
	free(set->isa);
	fj_doc_free(set->doc);
	free(set);
}

enum rules_fhir
rules_set_fhir(const struct rules_set *set)
{
	return set->fhir;
}

enum gw_err
rules_set_package(struct rules_set *set, const char *label)
{
	const char **n;
	const char *s;

	for (size_t i = 0; i < set->npkgs; i++) {
		if (strcmp(set->pkgs[i], label) == 0) {
			set->cur_pkg = (int)i;
			return GW_OK;
		}
	}
	if ((s = rs_intern(set, label)) == NULL)
		return GW_NOMEM;
	if ((n = realloc(set->pkgs, (set->npkgs + 1) * sizeof(*n))) == NULL)
		return GW_NOMEM;
	set->pkgs = n;
	set->pkgs[set->npkgs] = s;
	set->cur_pkg = (int)set->npkgs++;
	return GW_OK;
}

/* Grow a parallel pair of arrays by one slot. */
static enum gw_err
rs_grow(void **arr, int **pkg, size_t n, size_t *cap, size_t elsize)
{
	void *a;
	int *p;

	if (n < *cap)
		return GW_OK;
	size_t ncap = *cap ? *cap * 2 : 256;
	if ((a = realloc(*arr, ncap * elsize)) == NULL)
		return GW_NOMEM;
	*arr = a;
	if (pkg != NULL) {
		if ((p = realloc(*pkg, ncap * sizeof(int))) == NULL)
			return GW_NOMEM;
		*pkg = p;
	}
	*cap = ncap;
	return GW_OK;
}

enum gw_err
rs_add_structure(struct rules_set *set, struct rules_structure *st)
{
	enum gw_err err;

	if (st->url == NULL)
		return GW_INVALID;
	if (hmap_get_num(&set->st_url, st->url) != 0)
		return GW_EXISTS;
	err = rs_grow((void **)&set->st, &set->st_pkg, set->nst, &set->capst,
		      sizeof(struct rules_structure *));
	if (err != GW_OK)
		return err;
	if ((err = hmap_put_num(&set->st_url, st->url, set->nst + 1)) != GW_OK)
		return err;
	set->st[set->nst] = st;
	set->st_pkg[set->nst++] = set->cur_pkg;
	return GW_OK;
}

enum gw_err
rs_add_valueset(struct rules_set *set, struct rules_valueset *vs)
{
	enum gw_err err;

	if (vs->url == NULL)
		return GW_INVALID;
	if (hmap_get_num(&set->vs_url, vs->url) != 0)
		return GW_EXISTS;
	err = rs_grow((void **)&set->vs, &set->vs_pkg, set->nvs, &set->capvs,
		      sizeof(struct rules_valueset *));
	if (err != GW_OK)
		return err;
	if ((err = hmap_put_num(&set->vs_url, vs->url, set->nvs + 1)) != GW_OK)
		return err;
	set->vs[set->nvs] = vs;
	set->vs_pkg[set->nvs++] = set->cur_pkg;
	return GW_OK;
}

/* url without a "|version" suffix, in tmp (or url itself). */
static const char *
rs_strip_version(const char *url, char *tmp, size_t n)
{
	const char *bar;

	if (url == NULL || (bar = strchr(url, '|')) == NULL)
		return url;
	if ((size_t)(bar - url) >= n)
		return url;
	memcpy(tmp, url, (size_t)(bar - url));
	tmp[bar - url] = '\0';
	return tmp;
}

const struct rules_structure *
rules_structure(const struct rules_set *set, const char *url)
{
	char tmp[1024];
	size_t v =
	    hmap_get_num(&set->st_url, rs_strip_version(url, tmp, sizeof(tmp)));

	return v ? set->st[v - 1] : NULL;
}

const struct rules_structure *
rules_type(const struct rules_set *set, const char *type)
{
	char url[512];
	int n;

	if (type == NULL)
		return NULL;
	if (strchr(type, ':') != NULL) /* already a URL */
		return rules_structure(set, type);
	n = snprintf(url, sizeof(url),
		     "http://hl7.org/fhir/StructureDefinition/%s", type);
	if (n < 0 || (size_t)n >= sizeof(url))
		return NULL;
	return rules_structure(set, url);
}

const struct rules_valueset *
rules_valueset(const struct rules_set *set, const char *url)
{
	char tmp[1024];
	size_t v =
	    hmap_get_num(&set->vs_url, rs_strip_version(url, tmp, sizeof(tmp)));

	return v ? set->vs[v - 1] : NULL;
}

const struct rules_structure *
rules_structure_at(const struct rules_set *set, size_t i)
{
	return i < set->nst ? set->st[i] : NULL;
}

const char *
rs_structure_pkg(const struct rules_set *set, size_t i)
{
	return i < set->nst ? set->pkgs[set->st_pkg[i]] : NULL;
}

const struct rules_valueset *
rs_valueset_at(const struct rules_set *set, size_t i)
{
	return i < set->nvs ? set->vs[i] : NULL;
}

const char *
rs_valueset_pkg(const struct rules_set *set, size_t i)
{
	return i < set->nvs ? set->pkgs[set->vs_pkg[i]] : NULL;
}

static int
rs_strcmp0(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == NULL ? (b == NULL ? 0 : -1) : 1;
	return strcmp(a, b);
}

static int
rs_code_cmp(const void *pa, const void *pb)
{
	const struct rules_code *a = pa, *b = pb;
	int c = rs_strcmp0(a->system, b->system);

	return c != 0 ? c : rs_strcmp0(a->code, b->code);
}

/* Sort order of expansions: (system, code), then display so that the
 * output does not depend on the qsort implementation. */
static int
rs_code_sort_cmp(const void *pa, const void *pb)
{
	const struct rules_code *a = pa, *b = pb;
	int c = rs_code_cmp(pa, pb);

	return c != 0 ? c : rs_strcmp0(a->display, b->display);
}

bool
rules_valueset_has(const struct rules_valueset *vs, const char *system,
		   const char *code)
{
	struct rules_code key = {system, code, NULL};

	if (vs == NULL || code == NULL || vs->ncodes == 0)
		return false;
	if (system == NULL) {
		for (size_t i = 0; i < vs->ncodes; i++)
			if (strcmp(vs->codes[i].code, code) == 0)
				return true;
		return false;
	}
	return bsearch(&key, vs->codes, vs->ncodes, sizeof(key), rs_code_cmp) !=
	       NULL;
}

enum gw_err
rs_set_isa(struct rules_set *set, const char *system, const char *code,
	   const struct rules_code *codes, size_t n, const char *note)
{
	struct rs_isa *ni, *x;

	if ((ni = realloc(set->isa, (set->nisa + 1) * sizeof(*ni))) == NULL)
		return GW_NOMEM;
	set->isa = ni;
	x = &set->isa[set->nisa];
	x->system = rs_intern(set, system);
	x->code = rs_intern(set, code);
	x->note = rs_intern(set, note);
	x->ncodes = n;
	if ((x->codes = rs_alloc(set, (n ? n : 1) * sizeof(*codes))) == NULL ||
	    x->system == NULL || x->code == NULL || x->note == NULL)
		return GW_NOMEM;
	for (size_t i = 0; i < n; i++) {
		x->codes[i].system = x->system;
		x->codes[i].code = rs_intern(set, codes[i].code);
		x->codes[i].display = rs_intern(set, codes[i].display);
		if (x->codes[i].code == NULL)
			return GW_NOMEM;
	}
	set->nisa++;
	return GW_OK;
}

/* ---- ElementDefinition ---- */

static const char *
rs_get_istr(struct rules_set *set, const struct fj_node *obj, const char *key)
{
	const struct fj_node *n = fj_get(obj, key);

	if (n == NULL || n->type != FJ_STRING)
		return NULL;
	return rs_internn(set, n->u.str.s, n->u.str.len);
}

static bool
rs_get_uint(const struct fj_node *obj, const char *key, uint32_t *out)
{
	const struct fj_node *n = fj_get(obj, key);
	long long v;

	if (n == NULL)
		return false;
	if (n->type == FJ_STRING && strcmp(n->u.str.s, "*") == 0) {
		*out = RULES_UNBOUNDED;
		return true;
	}
	if (n->type != FJ_NUMBER && n->type != FJ_STRING)
		return false;
	if (util_parse_ll(n->u.str.s, 0, UINT32_MAX - 1, &v) != GW_OK)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool
rs_get_bool(const struct fj_node *obj, const char *key, bool *out)
{
	const struct fj_node *n = fj_get(obj, key);

	if (n == NULL || n->type != FJ_BOOL)
		return false;
	*out = n->u.b;
	return true;
}

/* Interned url without |version. */
static const char *
rs_canon(struct rules_set *set, const char *url)
{
	const char *bar;

	if (url == NULL)
		return NULL;
	if ((bar = strchr(url, '|')) != NULL)
		return rs_internn(set, url, (size_t)(bar - url));
	return rs_intern(set, url);
}

/* Add string s (interned) to a growable list in the arena. */
static enum gw_err
rs_list_add(struct rules_set *set, const char ***list, size_t *n, const char *s)
{
	const char **nl;

	if (s == NULL)
		return GW_OK;
	for (size_t i = 0; i < *n; i++)
		if ((*list)[i] == s)
			return GW_OK;
	if ((nl = rs_alloc(set, (*n + 1) * sizeof(*nl))) == NULL)
		return GW_NOMEM;
	if (*n > 0)
		memcpy(nl, *list, *n * sizeof(*nl));
	nl[(*n)++] = s;
	*list = nl;
	return GW_OK;
}

static enum gw_err
rs_add_strings(struct rules_set *set, const struct fj_node *n,
	       const char ***list, size_t *count)
{
	enum gw_err err = GW_OK;

	if (n == NULL)
		return GW_OK;
	if (n->type == FJ_STRING)
		return rs_list_add(set, list, count, rs_canon(set, n->u.str.s));
	if (n->type != FJ_ARRAY)
		return GW_OK;
	for (const struct fj_node *k = n->u.kids.first; k && err == GW_OK;
	     k = k->next)
		if (k->type == FJ_STRING)
			err = rs_list_add(set, list, count,
					  rs_canon(set, k->u.str.s));
	return err;
}

/* The type code, using the fhir-type extension R4 puts on System.*
 * codes of id/url elements. */
static const char *
rs_type_code(struct rules_set *set, const struct fj_node *t)
{
	const struct fj_node *ext = fj_get(t, "extension");
	const struct fj_node *code = fj_get(t, "code");

	for (const struct fj_node *e =
		 ext && ext->type == FJ_ARRAY ? ext->u.kids.first : NULL;
	     e != NULL; e = e->next) {
		const char *url = fj_get_str(e, "url");
		const char *v = fj_get_str(e, "valueUrl");

		if (v == NULL)
			v = fj_get_str(e, "valueUri");
		if (url != NULL && v != NULL &&
		    strcmp(url, "http://hl7.org/fhir/StructureDefinition/"
				"structuredefinition-fhir-type") == 0)
			return rs_intern(set, v);
	}
	if (code != NULL && code->type == FJ_STRING)
		return rs_internn(set, code->u.str.s, code->u.str.len);
	return NULL;
}

static enum gw_err
rs_types(struct rules_set *set, const struct fj_node *arr,
	 struct rules_element *el)
{
	size_t n = 0;
	struct rules_type *types;
	enum gw_err err;

	if (arr == NULL || arr->type != FJ_ARRAY || arr->u.kids.count == 0)
		return GW_OK;
	types = rs_alloc(set, arr->u.kids.count * sizeof(*types));
	if (types == NULL)
		return GW_NOMEM;
	for (const struct fj_node *t = arr->u.kids.first; t; t = t->next) {
		const char *code = rs_type_code(set, t);
		struct rules_type *rt = NULL;

		if (code == NULL)
			continue;
		/* STU3 repeats the code for every profile */
		for (size_t i = 0; i < n; i++)
			if (types[i].code == code)
				rt = &types[i];
		if (rt == NULL) {
			rt = &types[n++];
			rt->code = code;
		}
		if ((err = rs_add_strings(set, fj_get(t, "profile"),
					  &rt->profiles, &rt->nprofiles)) !=
			GW_OK ||
		    (err = rs_add_strings(set, fj_get(t, "targetProfile"),
					  &rt->targets, &rt->ntargets)) !=
			GW_OK)
			return err;
	}
	el->types = types;
	el->ntypes = n;
	return GW_OK;
}

static enum rules_disc
rs_disc_type(const char *s)
{
	if (s == NULL || strcmp(s, "value") == 0)
		return RULES_DISC_VALUE;
	if (strcmp(s, "pattern") == 0)
		return RULES_DISC_PATTERN;
	if (strcmp(s, "type") == 0)
		return RULES_DISC_TYPE;
	if (strcmp(s, "profile") == 0)
		return RULES_DISC_PROFILE;
	return RULES_DISC_EXISTS;
}

static enum gw_err
rs_slicing(struct rules_set *set, const struct fj_node *sl,
	   struct rules_element *el)
{
	const struct fj_node *d = fj_get(sl, "discriminator");
	const char *rules = fj_get_str(sl, "rules");
	struct rules_slicing *s;
	size_t n = 0;

	if ((s = rs_alloc(set, sizeof(*s))) == NULL)
		return GW_NOMEM;
	if (d != NULL && d->type == FJ_ARRAY && d->u.kids.count > 0) {
		s->disc = rs_alloc(set, d->u.kids.count * sizeof(*s->disc));
		if (s->disc == NULL)
			return GW_NOMEM;
		for (const struct fj_node *k = d->u.kids.first; k;
		     k = k->next) {
			struct rules_discriminator *x = &s->disc[n];

			if (k->type == FJ_STRING) {
				/* STU3: a path; @type / @profile */
				const char *p = k->u.str.s;

				if (strcmp(p, "@type") == 0) {
					x->type = RULES_DISC_TYPE;
					p = "$this";
				} else if (strcmp(p, "@profile") == 0) {
					x->type = RULES_DISC_PROFILE;
					p = "$this";
				} else {
					x->type = RULES_DISC_VALUE;
				}
				x->path = rs_intern(set, p);
			} else if (k->type == FJ_OBJECT) {
				x->type = rs_disc_type(fj_get_str(k, "type"));
				x->path = rs_get_istr(set, k, "path");
			} else {
				continue;
			}
			if (x->path == NULL)
				return GW_NOMEM;
			n++;
		}
	}
	s->ndisc = n;
	rs_get_bool(sl, "ordered", &s->ordered);
	if (rules != NULL && strcmp(rules, "closed") == 0)
		s->rules = RULES_SLICE_CLOSED;
	else if (rules != NULL && strcmp(rules, "openAtEnd") == 0)
		s->rules = RULES_SLICE_OPEN_AT_END;
	else
		s->rules = RULES_SLICE_OPEN;
	el->slicing = s;
	return GW_OK;
}

static enum gw_err
rs_constraints(struct rules_set *set, const struct fj_node *arr,
	       const char *source, struct rules_element *el)
{
	struct rules_constraint *c;
	size_t n = 0;

	if (arr == NULL || arr->type != FJ_ARRAY || arr->u.kids.count == 0)
		return GW_OK;
	if ((c = rs_alloc(set, arr->u.kids.count * sizeof(*c))) == NULL)
		return GW_NOMEM;
	for (const struct fj_node *k = arr->u.kids.first; k; k = k->next) {
		const char *sev = fj_get_str(k, "severity");

		c[n].key = rs_get_istr(set, k, "key");
		if (c[n].key == NULL)
			continue;
		c[n].error = sev == NULL || strcmp(sev, "error") == 0;
		c[n].human = rs_get_istr(set, k, "human");
		c[n].expression = rs_get_istr(set, k, "expression");
		c[n].source = rs_canon(set, fj_get_str(k, "source"));
		if (c[n].source == NULL)
			c[n].source = source;
		n++;
	}
	el->constraints = c;
	el->nconstraints = n;
	return GW_OK;
}

/* fixedX / patternX member: prefix followed by an upper-case letter. */
static bool
rs_is_choice(const struct fj_node *m, const char *prefix)
{
	size_t n = strlen(prefix);

	return m->keylen > n && strncmp(m->key, prefix, n) == 0 &&
	       m->key[n] >= 'A' && m->key[n] <= 'Z';
}

const struct fj_node *
rs_copy_member(struct rules_set *set, const struct fj_node *n)
{
	struct fj_node *c = fj_copy(set->doc, n);

	if (c == NULL)
		return NULL;
	if (n->key != NULL) {
		if ((c->key = rs_internn(set, n->key, n->keylen)) == NULL)
			return NULL;
		c->keylen = n->keylen;
	}
	return c;
}

enum gw_err
rs_element_from_json(struct rules_set *set, const struct fj_node *ed,
		     const char *source, struct rules_element *out,
		     unsigned *has)
{
	const struct fj_node *n, *base, *bind;
	const char *s;
	bool b;
	enum gw_err err;

	memset(out, 0, sizeof(*out));
	*has = 0;
	if (ed == NULL || ed->type != FJ_OBJECT)
		return GW_INVALID;
	out->path = rs_get_istr(set, ed, "path");
	out->id = rs_get_istr(set, ed, "id");
	if (out->path == NULL)
		return GW_INVALID;
	if (out->id == NULL)
		out->id = out->path;
	else
		*has |= RS_HAS_ID;
	if ((out->slice_name = rs_get_istr(set, ed, "sliceName")) != NULL)
		*has |= RS_HAS_SLICENAME;
	out->max = RULES_UNBOUNDED;
	if (rs_get_uint(ed, "min", &out->min))
		*has |= RS_HAS_MIN;
	if (rs_get_uint(ed, "max", &out->max))
		*has |= RS_HAS_MAX;
	out->base_max = out->max;
	if ((base = fj_get(ed, "base")) != NULL)
		rs_get_uint(base, "max", &out->base_max);
	if ((n = fj_get(ed, "type")) != NULL) {
		*has |= RS_HAS_TYPE;
		if ((err = rs_types(set, n, out)) != GW_OK)
			return err;
	}
	if ((s = fj_get_str(ed, "contentReference")) != NULL) {
		const char *hash = strchr(s, '#');

		*has |= RS_HAS_CONTENTREF;
		out->content_ref = rs_intern(set, hash ? hash + 1 : s);
	}
	for (n = ed->u.kids.first; n != NULL; n = n->next) {
		if (rs_is_choice(n, "fixed")) {
			*has |= RS_HAS_FIXED;
			if ((out->fixed = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "pattern")) {
			*has |= RS_HAS_PATTERN;
			if ((out->pattern = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "minValue")) {
			*has |= RS_HAS_MINVALUE;
			if ((out->min_value = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		} else if (rs_is_choice(n, "maxValue")) {
			*has |= RS_HAS_MAXVALUE;
			if ((out->max_value = rs_copy_member(set, n)) == NULL)
				return GW_NOMEM;
		}
	}
	if (rs_get_uint(ed, "maxLength", &out->max_length))
		*has |= RS_HAS_MAXLENGTH;
	if (out->max_length == RULES_UNBOUNDED)
		out->max_length = 0; /* "*" is not a length */
	if ((bind = fj_get(ed, "binding")) != NULL) {
		const char *st = fj_get_str(bind, "strength");
		const char *vs = fj_get_str(bind, "valueSet");
		const struct fj_node *ref;

		*has |= RS_HAS_BINDING;
		if (vs == NULL)
			vs = fj_get_str(bind, "valueSetUri");
		if (vs == NULL && (ref = fj_get(bind, "valueSetReference")))
			vs = fj_get_str(ref, "reference");
		out->valueset = rs_canon(set, vs);
		if (st == NULL)
			out->strength = RULES_BIND_NONE;
		else if (strcmp(st, "required") == 0)
			out->strength = RULES_BIND_REQUIRED;
		else if (strcmp(st, "extensible") == 0)
			out->strength = RULES_BIND_EXTENSIBLE;
		else if (strcmp(st, "preferred") == 0)
			out->strength = RULES_BIND_PREFERRED;
		else
			out->strength = RULES_BIND_EXAMPLE;
	}
	if ((n = fj_get(ed, "slicing")) != NULL && n->type == FJ_OBJECT) {
		*has |= RS_HAS_SLICING;
		if ((err = rs_slicing(set, n, out)) != GW_OK)
			return err;
	}
	if ((n = fj_get(ed, "constraint")) != NULL) {
		*has |= RS_HAS_CONSTRAINT;
		if ((err = rs_constraints(set, n, source, out)) != GW_OK)
			return err;
	}
	if (rs_get_bool(ed, "isModifier", &b)) {
		*has |= RS_HAS_MODIFIER;
		out->is_modifier = b;
	}
	if (rs_get_bool(ed, "mustSupport", &b)) {
		*has |= RS_HAS_MUSTSUPPORT;
		out->must_support = b;
	}
	return GW_OK;
}

/* ---- gathering sources ---- */

static enum gw_err
rs_pending_add(struct rules_set *set, struct rs_pending **arr, size_t *n,
	       size_t *cap, struct hmap *map, const struct fj_node *res,
	       const char *file)
{
	const char *url = rs_canon(set, fj_get_str(res, "url"));
	struct rs_pending *p;

	if (url == NULL)
		return GW_OK; /* nothing can refer to it */
	if (hmap_get_num(map, url) != 0)
		return GW_OK; /* first one wins */
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;

		if ((p = realloc(*arr, ncap * sizeof(*p))) == NULL)
			return GW_NOMEM;
		*arr = p;
		*cap = ncap;
	}
	p = &(*arr)[*n];
	memset(p, 0, sizeof(*p));
	p->res = res;
	p->url = url;
	p->file = rs_intern(set, file);
	p->pkg = set->cur_pkg;
	(*n)++;
	return hmap_put_num(map, url, *n);
}

static enum gw_err rs_add_codesystem(struct rules_set *set,
				     const struct fj_node *res);

static enum gw_err
rs_gather(struct rules_set *set, const struct fj_node *res, const char *file)
{
	const char *rt = fj_get_str(res, "resourceType");
	const struct fj_node *entries;
	enum gw_err err = GW_OK;

	if (rt == NULL)
		return GW_OK;
	if (strcmp(rt, "Bundle") == 0) {
		entries = fj_get(res, "entry");
		if (entries == NULL || entries->type != FJ_ARRAY)
			return GW_OK;
		for (const struct fj_node *e = entries->u.kids.first;
		     e && err == GW_OK; e = e->next) {
			const struct fj_node *r = fj_get(e, "resource");

			if (r != NULL && r->type == FJ_OBJECT)
				err = rs_gather(set, r, file);
		}
		return err;
	}
	if (strcmp(rt, "StructureDefinition") == 0)
		return rs_pending_add(set, &set->psd, &set->npsd, &set->cappsd,
				      &set->psd_url, res, file);
	if (strcmp(rt, "ValueSet") == 0)
		return rs_pending_add(set, &set->pvs, &set->npvs, &set->cappvs,
				      &set->pvs_url, res, file);
	if (strcmp(rt, "CodeSystem") == 0)
		return rs_add_codesystem(set, res);
	return GW_OK;
}

static bool
rs_has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static enum gw_err
rs_gather_file(struct rules_set *set, const char *path, char *errbuf,
	       size_t errlen)
{
	char *text = NULL;
	size_t len = 0, i = 0;
	struct fj_doc *doc = NULL;
	struct fj_error ferr;
	struct fj_doc **nd;
	enum gw_err err;

	if ((err = util_read_file(path, RS_MAX_SOURCE, &text, &len)) != GW_OK) {
		snprintf(errbuf, errlen, "%s: %s", path, gw_strerror(err));
		return err;
	}
	while (i < len && (text[i] == ' ' || text[i] == '\t' ||
			   text[i] == '\r' || text[i] == '\n'))
		i++;
	if (i < len && text[i] == '<') {
		char xerr[256] = "";

		err =
		    xmlfhir_to_fjson(text, len, set, &doc, xerr, sizeof(xerr));
		if (err != GW_OK)
			snprintf(errbuf, errlen, "%s: %s", path, xerr);
	} else {
		err = fj_parse(text, len, 0, &doc, &ferr);
		if (err != GW_OK)
			snprintf(errbuf, errlen, "%s:%u:%u: %s", path,
				 (unsigned)ferr.line, (unsigned)ferr.col,
				 ferr.msg);
	}
	free(text);
	if (err != GW_OK)
		return err;
	if (set->nsrcdocs == set->capsrcdocs) {
		size_t ncap = set->capsrcdocs ? set->capsrcdocs * 2 : 32;

		/* An array of pointers: the pointer type named. */
		if ((nd = realloc(set->srcdocs,
				  ncap * sizeof(struct fj_doc *))) == NULL) {
			fj_doc_free(doc);
			return GW_NOMEM;
		}
		set->srcdocs = nd;
		set->capsrcdocs = ncap;
	}
	set->srcdocs[set->nsrcdocs++] = doc;
	if (doc->root == NULL || doc->root->type != FJ_OBJECT)
		return GW_OK;
	err = rs_gather(set, doc->root, path);
	if (err != GW_OK)
		snprintf(errbuf, errlen, "%s: %s", path, gw_strerror(err));
	return err;
}

static int
rs_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum gw_err
rs_gather_path(struct rules_set *set, const char *path, int depth, char *errbuf,
	       size_t errlen)
{
	struct stat sb;
	DIR *d;
	struct dirent *de;
	char **names = NULL, full[4096];
	size_t n = 0, cap = 0;
	enum gw_err err = GW_OK;

	if (stat(path, &sb) != 0) {
		snprintf(errbuf, errlen, "%s: not found", path);
		return GW_NOTFOUND;
	}
	if (!S_ISDIR(sb.st_mode))
		return rs_gather_file(set, path, errbuf, errlen);
	if (depth > 4 || (d = opendir(path)) == NULL) {
		snprintf(errbuf, errlen, "%s: cannot read directory", path);
		return GW_IO;
	}
	while ((de = readdir(d)) != NULL) {
		char **nn;

		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nn = realloc(names, cap * sizeof(*nn))) == NULL) {
				err = GW_NOMEM;
				break;
			}
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			err = GW_NOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (err == GW_OK)
		if (n > 1)
			qsort(names, n, sizeof(*names), rs_name_cmp);
	for (size_t i = 0; i < n && err == GW_OK; i++) {
		int len = snprintf(full, sizeof(full), "%s/%s", path, names[i]);

		if (len < 0 || (size_t)len >= sizeof(full))
			continue;
		if (stat(full, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			err = rs_gather_path(set, full, depth + 1, errbuf,
					     errlen);
		else if (rs_has_suffix(names[i], ".json") ||
			 rs_has_suffix(names[i], ".xml")) {
			err = rs_gather_file(set, full, errbuf, errlen);
			/* in a folder, a file that is not FHIR (JSON or
			 * XML) is passed over with a warning */
			if (err == GW_PARSE) {
				rs_warn(set, "%s (skipped)", errbuf);
				err = GW_OK;
				if (errlen > 0)
					errbuf[0] = '\0';
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return err;
}

/* ---- compiling ---- */

static enum gw_err rs_compile_sd(struct rules_set *set, size_t idx);

const struct rules_structure *
rs_need_structure(struct rules_set *set, const char *url)
{
	const struct rules_structure *st = rules_structure(set, url);
	char tmp[1024];
	size_t v;

	if (st != NULL)
		return st;
	v = hmap_get_num(&set->psd_url,
			 rs_strip_version(url, tmp, sizeof(tmp)));
	if (v == 0 || rs_compile_sd(set, v - 1) != GW_OK)
		return NULL;
	return rules_structure(set, url);
}

/* Is path an element path of the base definitions (following datatypes
 * from the root type)? */
static bool
rs_base_has_path(struct rules_set *set, const char *path)
{
	char url[512], cur[1024];
	const struct rules_structure *st;
	const char *seg = strchr(path, '.'), *next;
	size_t curlen;
	int n;

	if (seg == NULL)
		return false;
	n = snprintf(url, sizeof(url),
		     "http://hl7.org/fhir/StructureDefinition/%.*s",
		     (int)(seg - path), path);
	if (n < 0 || (size_t)n >= sizeof(url) ||
	    (st = rs_need_structure(set, url)) == NULL)
		return false;
	curlen = (size_t)(seg - path);
	memcpy(cur, path, curlen);
	cur[curlen] = '\0';
	for (int depth = 0; seg != NULL && depth < 32; depth++, seg = next) {
		const struct rules_element *found = NULL;
		bool has_kids = false;
		size_t sl;

		next = strchr(seg + 1, '.');
		sl = next ? (size_t)(next - seg) : strlen(seg);
		if (curlen + sl >= sizeof(cur))
			return false;
		memcpy(cur + curlen, seg, sl);
		curlen += sl;
		cur[curlen] = '\0';
		for (size_t i = 0; i < st->nelements && found == NULL; i++)
			if (st->elements[i].slice_name == NULL &&
			    strcmp(st->elements[i].path, cur) == 0)
				found = &st->elements[i];
		if (found == NULL)
			return false;
		if (next == NULL)
			return true;
		for (size_t i = 0; i < st->nelements && !has_kids; i++)
			has_kids =
			    strncmp(st->elements[i].path, cur, curlen) == 0 &&
			    st->elements[i].path[curlen] == '.';
		if (has_kids)
			continue;
		/* children of a datatype element: go on in its type */
		if (found->ntypes != 1)
			return false;
		n = snprintf(url, sizeof(url),
			     "http://hl7.org/fhir/StructureDefinition/%s",
			     found->types[0].code);
		if (n < 0 || (size_t)n >= sizeof(url) ||
		    (st = rs_need_structure(set, url)) == NULL ||
		    st->type == NULL || strlen(st->type) >= sizeof(cur))
			return false;
		curlen = strlen(st->type);
		memcpy(cur, st->type, curlen + 1);
	}
	return false;
}

/*
 * STU3 snapshots name a choice constrained to one type by that type
 * ("Observation.valueQuantity.unit"); the rules always use the [x] form.
 * A renamed segment is recognised by the base definitions knowing
 * "prefix[x]" and not the name itself. Path and id are rewritten
 * segment by segment (ids carry slice names after ':').
 */
static enum gw_err
rs_unrename(struct rules_set *set, struct rules_element *el)
{
	char np[1024], ni[1024], probe[1100];
	const char *p = el->path, *i = el->id;
	size_t npl = 0, nil = 0;
	bool changed = false;

	if (strchr(p, '.') == NULL)
		return GW_OK;
	for (int seg = 0; *p != '\0' || *i != '\0'; seg++) {
		size_t pl = strcspn(p, "."), il = strcspn(i, ".");
		size_t namel = strcspn(i, ".:");
		const char *u = NULL;

		if (namel > il)
			namel = il;
		if (npl + pl + 8 >= sizeof(np) || nil + il + 8 >= sizeof(ni))
			return GW_OK;
		if (seg > 0) {
			for (const char *c = p + 1; c < p + pl; c++)
				if (*c >= 'A' && *c <= 'Z') {
					u = c;
					break;
				}
		}
		if (u != NULL && memchr(p, '[', pl) == NULL) {
			int a = snprintf(probe, sizeof(probe), "%.*s.%.*s",
					 (int)npl, np, (int)pl, p);
			int b;

			if (a > 0 && (size_t)a < sizeof(probe) &&
			    !rs_base_has_path(set, probe)) {
				b = snprintf(probe, sizeof(probe),
					     "%.*s.%.*s[x]", (int)npl, np,
					     (int)(u - p), p);
				if (b > 0 && (size_t)b < sizeof(probe) &&
				    rs_base_has_path(set, probe)) {
					/* rename this segment */
					npl = (size_t)b;
					memcpy(np, probe, npl + 1);
					nil += (size_t)snprintf(
					    ni + nil, sizeof(ni) - nil,
					    "%s%.*s[x]%.*s", seg ? "." : "",
					    (int)(u - p), p, (int)(il - namel),
					    i + namel);
					changed = true;
					goto next;
				}
			}
		}
		npl += (size_t)snprintf(np + npl, sizeof(np) - npl, "%s%.*s",
					seg ? "." : "", (int)pl, p);
		nil += (size_t)snprintf(ni + nil, sizeof(ni) - nil, "%s%.*s",
					seg ? "." : "", (int)il, i);
	next:
		p += pl;
		i += il;
		if (*p == '.')
			p++;
		if (*i == '.')
			i++;
		if ((*p == '\0') != (*i == '\0'))
			return GW_OK; /* id and path disagree: leave it */
	}
	if (!changed)
		return GW_OK;
	if ((el->path = rs_intern(set, np)) == NULL ||
	    (el->id = rs_intern(set, ni)) == NULL)
		return GW_NOMEM;
	return GW_OK;
}

/*
 * Differential elements without an id (older profiles give only path and
 * sliceName): make the id from the slices in force, as the element order
 * implies. A slice of path P is in force from its sliceName element until
 * P appears again without one; it applies to the elements below P.
 */
static enum gw_err
rs_diff_ids(struct rules_set *set, struct rules_element *diff,
	    const unsigned *has, size_t n)
{
	const char **apath = NULL, **aname = NULL;
	size_t na = 0;
	enum gw_err err = GW_OK;
	char id[2048];

	for (size_t k = 0; k < n; k++)
		if (!(has[k] & RS_HAS_ID))
			break;
		else if (k + 1 == n)
			return GW_OK;
	if ((apath = calloc(n + 1, sizeof(*apath))) == NULL ||
	    (aname = calloc(n + 1, sizeof(*aname))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	for (size_t k = 0; k < n; k++) {
		const char *p = diff[k].path;
		size_t plen = strlen(p), ilen = 0;

		/* this path again ends its slices and those below it */
		for (size_t a = 0; a < na;) {
			if (strncmp(apath[a], p, plen) == 0 &&
			    (apath[a][plen] == '\0' || apath[a][plen] == '.')) {
				apath[a] = apath[--na];
				aname[a] = aname[na];
			} else {
				a++;
			}
		}
		if (diff[k].slice_name != NULL) {
			apath[na] = p;
			aname[na++] = diff[k].slice_name;
		}
		if (has[k] & RS_HAS_ID)
			continue;
		/* rebuild: each prefix of the path with its slice */
		for (const char *seg = p; seg != NULL;) {
			const char *dot = strchr(seg, '.');
			size_t end = dot ? (size_t)(dot - p) : plen;
			const char *name = NULL;
			int w;

			for (size_t a = 0; a < na; a++)
				if (strlen(apath[a]) == end &&
				    strncmp(apath[a], p, end) == 0)
					name = aname[a];
			w = snprintf(id + ilen, sizeof(id) - ilen, "%.*s%s%s",
				     (int)(end - (size_t)(seg - p)), seg,
				     name ? ":" : "", name ? name : "");
			if (w < 0 || (size_t)w >= sizeof(id) - ilen)
				break;
			ilen += (size_t)w;
			if (dot == NULL)
				break;
			if (ilen + 1 < sizeof(id))
				id[ilen++] = '.';
			id[ilen] = '\0';
			seg = dot + 1;
		}
		if ((diff[k].id = rs_intern(set, id)) == NULL) {
			err = GW_NOMEM;
			goto out;
		}
	}
out:
	free(apath);
	free(aname);
	return err;
}

/*
 * The contexts of an extension definition: R4 context[] {type,
 * expression}; STU3 contextType plus context[] strings. Unknown context
 * types are kept as FHIRPath (not checked).
 */
static enum gw_err
rs_contexts(struct rules_set *set, const struct fj_node *res,
	    struct rules_structure *st)
{
	const struct fj_node *ctx = fj_get(res, "context");
	const char *stu3type = fj_get_str(res, "contextType");
	size_t n = 0;

	if (ctx == NULL || ctx->type != FJ_ARRAY || ctx->u.kids.count == 0)
		return GW_OK;
	st->contexts = rs_alloc(set, ctx->u.kids.count * sizeof(*st->contexts));
	if (st->contexts == NULL)
		return GW_NOMEM;
	for (const struct fj_node *c = ctx->u.kids.first; c != NULL;
	     c = c->next) {
		const char *type = stu3type, *expr = NULL;
		struct rules_context *out = &st->contexts[n];

		if (c->type == FJ_OBJECT) {
			type = fj_get_str(c, "type");
			expr = fj_get_str(c, "expression");
		} else if (c->type == FJ_STRING) {
			expr = c->u.str.s;
		}
		if (type == NULL || expr == NULL || expr[0] == '\0')
			continue;
		if (strcmp(type, "element") == 0 ||
		    strcmp(type, "resource") == 0 ||
		    strcmp(type, "datatype") == 0)
			out->type = RULES_CTX_ELEMENT;
		else if (strcmp(type, "extension") == 0)
			out->type = RULES_CTX_EXTENSION;
		else
			out->type = RULES_CTX_FHIRPATH;
		if ((out->expr = rs_intern(set, expr)) == NULL)
			return GW_NOMEM;
		n++;
	}
	st->ncontexts = n;
	return GW_OK;
}

static enum gw_err
rs_compile_sd(struct rules_set *set, size_t idx)
{
	struct rs_pending *p = &set->psd[idx];
	const struct fj_node *res = p->res, *elems, *snap;
	struct rules_structure *st;
	struct rules_element *diff = NULL;
	unsigned *has = NULL;
	const char *der;
	size_t n = 0;
	enum gw_err err = GW_OK;
	int saved_pkg = set->cur_pkg;

	if (p->state == 2)
		return GW_OK;
	if (p->state == 3)
		return GW_NOTFOUND;
	if (p->state == 1)
		return GW_INVALID; /* being compiled: a cycle */
	p->state = 1;
	if ((st = rs_alloc(set, sizeof(*st))) == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	st->url = p->url;
	st->version = rs_get_istr(set, res, "version");
	st->name = rs_get_istr(set, res, "name");
	st->type = rs_get_istr(set, res, "type");
	st->kind = rs_get_istr(set, res, "kind");
	st->base = rs_canon(set, fj_get_str(res, "baseDefinition"));
	st->fhir = set->fhir;
	rs_get_bool(res, "abstract", &st->abstract);
	der = fj_get_str(res, "derivation");
	st->constraint = der != NULL && strcmp(der, "constraint") == 0;
	if ((err = rs_contexts(set, res, st)) != GW_OK)
		goto out;
	if (st->type == NULL) {
		err = GW_INVALID;
		rs_warn(set, "%s: no type", p->url);
		goto out;
	}

	snap = fj_get(res, "snapshot");
	elems = snap ? fj_get(snap, "element") : NULL;
	if (elems != NULL && elems->type == FJ_ARRAY &&
	    elems->u.kids.count > 0) {
		st->elements =
		    rs_alloc(set, elems->u.kids.count * sizeof(*diff));
		if (st->elements == NULL) {
			err = GW_NOMEM;
			goto out;
		}
		for (const struct fj_node *e = elems->u.kids.first; e;
		     e = e->next) {
			unsigned h;

			err = rs_element_from_json(set, e, st->url,
						   &st->elements[n], &h);
			if (err == GW_INVALID)
				continue; /* not an element: skipped */
			if (err != GW_OK ||
			    (set->fhir == RULES_STU3 &&
			     (err = rs_unrename(set, &st->elements[n])) !=
				 GW_OK))
				goto out;
			n++;
		}
		st->nelements = n;
	} else {
		const struct rules_structure *base;
		const struct fj_node *d = fj_get(res, "differential");

		elems = d ? fj_get(d, "element") : NULL;
		if (st->base == NULL) {
			err = GW_INVALID;
			rs_warn(set, "%s: neither snapshot nor base", p->url);
			goto out;
		}
		if ((base = rs_need_structure(set, st->base)) == NULL) {
			err = GW_NOTFOUND;
			rs_warn(set, "%s: base %s not available (or circular)",
				p->url, st->base);
			goto out;
		}
		set->cur_pkg = p->pkg;
		if (elems != NULL && elems->type == FJ_ARRAY &&
		    elems->u.kids.count > 0) {
			diff = calloc(elems->u.kids.count, sizeof(*diff));
			has = calloc(elems->u.kids.count, sizeof(*has));
			if (diff == NULL || has == NULL) {
				err = GW_NOMEM;
				goto out;
			}
			for (const struct fj_node *e = elems->u.kids.first; e;
			     e = e->next) {
				err = rs_element_from_json(set, e, st->url,
							   &diff[n], &has[n]);
				if (err == GW_INVALID)
					continue;
				if (err != GW_OK)
					goto out;
				n++;
			}
		}
		if ((err = rs_diff_ids(set, diff, has, n)) != GW_OK)
			goto out;
		err = rs_snapshot(set, base, diff, has, n, st->url,
				  &st->elements, &st->nelements);
		if (err != GW_OK) {
			rs_warn(set, "%s: snapshot generation failed: %s",
				p->url, gw_strerror(err));
			goto out;
		}
	}
	set->cur_pkg = p->pkg;
	err = rs_add_structure(set, st);
	if (err == GW_EXISTS)
		err = GW_OK;
out:
	set->cur_pkg = saved_pkg;
	free(diff);
	free(has);
	p->state = err == GW_OK ? 2 : 3;
	return err;
}

/* ---- code systems and value sets ---- */

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

static enum gw_err
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

static enum gw_err rs_compile_vs(struct rules_set *set, size_t idx);

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

static enum gw_err
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

enum gw_err
rs_add_paths(struct rules_set *set, const char *const *paths, size_t n,
	     char *errbuf, size_t errlen)
{
	enum gw_err err = GW_OK;

	if (errlen > 0)
		errbuf[0] = '\0';
	for (size_t i = 0; i < n && err == GW_OK; i++)
		err = rs_gather_path(set, paths[i], 0, errbuf, errlen);
	/* structures first: value sets do not depend on them */
	for (size_t i = 0; i < set->npsd && err == GW_OK; i++) {
		enum gw_err e = rs_compile_sd(set, i);

		if (e == GW_NOMEM)
			err = e;
	}
	for (size_t i = 0; i < set->npvs && err == GW_OK; i++) {
		enum gw_err e = rs_compile_vs(set, i);

		if (e == GW_NOMEM)
			err = e;
	}
	if (err == GW_NOMEM && errlen > 0 && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "out of memory");
	rs_free_sources(set);
	return err;
}

enum gw_err
rules_add_path(struct rules_set *set, const char *path, char *errbuf,
	       size_t errlen)
{
	return rs_add_paths(set, &path, 1, errbuf, errlen);
}
