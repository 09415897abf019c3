/*
 * rules: the rule set: its arena, interned strings, package labels and
 * lookups (structures, types, value sets), and the helpers that read
 * conformance resource fields into it. Compiling is in rules_src.c
 * (gathering sources), rules_sd.c, rules_snap.c and rules_vs.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"

#define RS_CHUNK 65536u

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

void
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
	free(set->globals);
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
const char *
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

const char *
rules_global_profile(const struct rules_set *set, const char *type, size_t i)
{
	for (size_t j = 0; j < set->nglobals; j++)
		if (strcmp(set->globals[j].type, type) == 0 && i-- == 0)
			return set->globals[j].profile;
	return NULL;
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
int
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

/* ---- reading conformance resources ---- */

const char *
rs_get_istr(struct rules_set *set, const struct fj_node *obj, const char *key)
{
	const struct fj_node *n = fj_get(obj, key);

	if (n == NULL || n->type != FJ_STRING)
		return NULL;
	return rs_internn(set, n->u.str.s, n->u.str.len);
}

bool
rs_get_bool(const struct fj_node *obj, const char *key, bool *out)
{
	const struct fj_node *n = fj_get(obj, key);

	if (n == NULL || n->type != FJ_BOOL)
		return false;
	*out = n->u.b;
	return true;
}

/* Interned url without |version. */
const char *
rs_canon(struct rules_set *set, const char *url)
{
	const char *bar;

	if (url == NULL)
		return NULL;
	if ((bar = strchr(url, '|')) != NULL)
		return rs_internn(set, url, (size_t)(bar - url));
	return rs_intern(set, url);
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
