/*
 * rules_file: the compiled rule-file format (schemas/NAME.rules): writing a
 * package of a rule set deterministically and loading files fast.
 *
 * A file is UTF-8 text, one record per line, fields separated by tabs.
 * The first line is the header, then tables, then records that refer to
 * table entries by 0-based index ("-" for none):
 *   pzpgw-rules 3 FHIR PACKAGE nstr nval ntype ntlist ncons nclist
 *               nslice nstruct nvs
 *   s TEXT            string (\\ \t \n \r escaped); all strings below
 *                     are string indexes
 *   v JSON            fixed/pattern value: {"fixedCode":"x"} (string idx)
 *   t CODE PROFILES TARGETS         a type; lists are "i,j,k" or "-"
 *   T TYPES                          a list of types (t indexes)
 *   c KEY E|W HUMAN EXPR SOURCE      a constraint
 *   C CONSTRAINTS                    a list of constraints (c indexes)
 *   l ORDERED RULES DISCS            slicing; RULES o|c|e; DISCS
 *                                    "type:pathidx,..." with type
 *                                    v|p|t|r|e
 *   S URL VERSION NAME TYPE KIND BASE FLAGS NELEMENTS CONTEXTS
 *                     a structure (FLAGS bit 0 abstract, bit 1
 *                     constraint; CONTEXTS "-" or "type:expr,..." with
 *                     type e(lement) x (extension) f(hirpath), expr a
 *                     string index)
 *   e ID PATH SLICE MIN MAX BASEMAX TYPES CREF FIXED PATTERN STRENGTH
 *     VALUESET SLICING CONSTRAINTS FLAGS MINVALUE MAXVALUE MAXLENGTH
 *                     an element of the structure above (MAX "*"
 *                     unbounded; STRENGTH n|r|e|p|x; FLAGS bit 0
 *                     modifier, bit 1 mustSupport; MAXLENGTH 0 none)
 *   V URL VERSION COMPLETE EXPANSION NCODES   a value set
 *   k SYSTEM CODE DISPLAY                     a code of the value set
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_impl.h"
#include "util.h"

#define RF_MAGIC   "pzpgw-rules"
#define RF_VERSION 3
/* Largest rule file accepted. */
#define RF_MAX_FILE (64u * 1024 * 1024)

/* ---- writing ---- */

/* A deduplicating table of lines (or raw strings for the string table). */
struct rf_tab {
	struct hmap map;
	char **items;
	size_t n, cap;
	bool oom;
};

static size_t
rf_tab_add(struct rf_tab *t, const char *item)
{
	size_t v;
	char *copy, **ni;

	if (t->oom)
		return 0;
	if ((v = hmap_get_num(&t->map, item)) != 0)
		return v - 1;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 256;

		if ((ni = realloc(t->items, ncap * sizeof(*ni))) == NULL) {
			t->oom = true;
			return 0;
		}
		t->items = ni;
		t->cap = ncap;
	}
	if ((copy = strdup(item)) == NULL ||
	    hmap_put_num(&t->map, copy, t->n + 1) != GW_OK) {
		free(copy);
		t->oom = true;
		return 0;
	}
	t->items[t->n] = copy;
	return t->n++;
}

static void
rf_tab_free(struct rf_tab *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->items[i]);
	free(t->items);
	hmap_free(&t->map, NULL);
}

struct rf_writer {
	struct rf_tab str, val, type, tlist, cons, clist, slice;
	struct buf body;
	bool oom;
};

/* Append the string index of s (or "-") to b. */
static void
rf_sref(struct rf_writer *w, struct buf *b, const char *s)
{
	if (s == NULL) {
		if (buf_adds(b, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	if (buf_printf(b, "\t%zu", rf_tab_add(&w->str, s)) != GW_OK)
		w->oom = true;
}

static void
rf_slist(struct rf_writer *w, struct buf *b, const char *const *v, size_t n)
{
	if (n == 0) {
		if (buf_adds(b, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (buf_printf(b, "%c%zu", i ? ',' : '\t',
			       rf_tab_add(&w->str, v[i])) != GW_OK)
			w->oom = true;
}

/* Add the line in tmp to table t; append its index to the body. */
static void
rf_ref_line(struct rf_writer *w, struct rf_tab *t, struct buf *tmp)
{
	if (tmp->data == NULL) {
		w->oom = true;
		return;
	}
	if (buf_printf(&w->body, "\t%zu", rf_tab_add(t, tmp->data)) != GW_OK)
		w->oom = true;
}

static void
rf_types(struct rf_writer *w, const struct rules_element *e)
{
	struct buf list, one;

	if (e->ntypes == 0) {
		if (buf_adds(&w->body, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	buf_init(&list, 1u << 20);
	for (size_t i = 0; i < e->ntypes; i++) {
		const struct rules_type *t = &e->types[i];

		buf_init(&one, 1u << 20);
		if (buf_adds(&one, "t") != GW_OK)
			w->oom = true;
		rf_sref(w, &one, t->code);
		rf_slist(w, &one, t->profiles, t->nprofiles);
		rf_slist(w, &one, t->targets, t->ntargets);
		if (one.data == NULL ||
		    buf_printf(&list, "%s%zu", i ? "," : "T\t",
			       rf_tab_add(&w->type, one.data)) != GW_OK)
			w->oom = true;
		buf_cleanup(&one);
	}
	rf_ref_line(w, &w->tlist, &list);
	buf_cleanup(&list);
}

static void
rf_value(struct rf_writer *w, const struct fj_node *n)
{
	struct buf json, line;

	if (n == NULL) {
		if (buf_adds(&w->body, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	buf_init(&json, 1u << 24);
	buf_init(&line, 1u << 24);
	/* {"key":value} so the choice type travels with the value */
	if (buf_addc(&json, '{') != GW_OK ||
	    buf_printf(&json, "\"%.*s\":", (int)n->keylen,
		       n->key ? n->key : "") != GW_OK ||
	    fj_dump(n, FJ_CANONICAL, &json) != GW_OK ||
	    buf_addc(&json, '}') != GW_OK || buf_adds(&line, "v") != GW_OK)
		w->oom = true;
	if (!w->oom) {
		rf_sref(w, &line, json.data);
		rf_ref_line(w, &w->val, &line);
	}
	buf_cleanup(&json);
	buf_cleanup(&line);
}

static const char rf_disc_chars[] = "vptre";
/* enum rules_ctx_type in order */
static const char rf_ctx_chars[] = "exf";

static void
rf_slicing(struct rf_writer *w, const struct rules_slicing *sl)
{
	struct buf line;
	static const char rules[] = "oce";

	if (sl == NULL) {
		if (buf_adds(&w->body, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	buf_init(&line, 1u << 20);
	if (buf_printf(&line, "l\t%d\t%c\t", sl->ordered ? 1 : 0,
		       rules[sl->rules]) != GW_OK)
		w->oom = true;
	if (sl->ndisc == 0 && buf_addc(&line, '-') != GW_OK)
		w->oom = true;
	for (size_t i = 0; i < sl->ndisc; i++)
		if (buf_printf(&line, "%s%c:%zu", i ? "," : "",
			       rf_disc_chars[sl->disc[i].type],
			       rf_tab_add(&w->str, sl->disc[i].path)) != GW_OK)
			w->oom = true;
	rf_ref_line(w, &w->slice, &line);
	buf_cleanup(&line);
}

static void
rf_constraints(struct rf_writer *w, const struct rules_element *e)
{
	struct buf list, one;

	if (e->nconstraints == 0) {
		if (buf_adds(&w->body, "\t-") != GW_OK)
			w->oom = true;
		return;
	}
	buf_init(&list, 1u << 20);
	for (size_t i = 0; i < e->nconstraints; i++) {
		const struct rules_constraint *c = &e->constraints[i];

		buf_init(&one, 1u << 20);
		if (buf_adds(&one, "c") != GW_OK)
			w->oom = true;
		rf_sref(w, &one, c->key);
		if (buf_adds(&one, c->error ? "\tE" : "\tW") != GW_OK)
			w->oom = true;
		rf_sref(w, &one, c->human);
		rf_sref(w, &one, c->expression);
		rf_sref(w, &one, c->source);
		if (one.data == NULL ||
		    buf_printf(&list, "%s%zu", i ? "," : "C\t",
			       rf_tab_add(&w->cons, one.data)) != GW_OK)
			w->oom = true;
		buf_cleanup(&one);
	}
	rf_ref_line(w, &w->clist, &list);
	buf_cleanup(&list);
}

static void
rf_uint(struct rf_writer *w, uint32_t v)
{
	enum gw_err err = v == RULES_UNBOUNDED
			      ? buf_adds(&w->body, "\t*")
			      : buf_printf(&w->body, "\t%u", (unsigned)v);

	if (err != GW_OK)
		w->oom = true;
}

static void
rf_element(struct rf_writer *w, const struct rules_element *e)
{
	static const char strength[] = "nrepx";

	if (buf_adds(&w->body, "e") != GW_OK)
		w->oom = true;
	rf_sref(w, &w->body, e->id);
	rf_sref(w, &w->body, e->path);
	rf_sref(w, &w->body, e->slice_name);
	rf_uint(w, e->min);
	rf_uint(w, e->max);
	rf_uint(w, e->base_max);
	rf_types(w, e);
	rf_sref(w, &w->body, e->content_ref);
	rf_value(w, e->fixed);
	rf_value(w, e->pattern);
	if (buf_printf(&w->body, "\t%c", strength[e->strength]) != GW_OK)
		w->oom = true;
	rf_sref(w, &w->body, e->valueset);
	rf_slicing(w, e->slicing);
	rf_constraints(w, e);
	if (buf_printf(&w->body, "\t%d",
		       (e->is_modifier ? 1 : 0) | (e->must_support ? 2 : 0)) !=
	    GW_OK)
		w->oom = true;
	rf_value(w, e->min_value);
	rf_value(w, e->max_value);
	if (buf_printf(&w->body, "\t%u\n", (unsigned)e->max_length) != GW_OK)
		w->oom = true;
}

static int
rf_st_cmp(const void *a, const void *b)
{
	const struct rules_structure *x =
	    *(const struct rules_structure *const *)a;
	const struct rules_structure *y =
	    *(const struct rules_structure *const *)b;

	return strcmp(x->url, y->url);
}

static int
rf_vs_cmp(const void *a, const void *b)
{
	const struct rules_valueset *x =
	    *(const struct rules_valueset *const *)a;
	const struct rules_valueset *y =
	    *(const struct rules_valueset *const *)b;

	return strcmp(x->url, y->url);
}

/* Write s escaped. */
static enum gw_err
rf_escape(struct buf *b, const char *s)
{
	enum gw_err err = GW_OK;

	for (; *s != '\0' && err == GW_OK; s++) {
		switch (*s) {
		case '\\':
			err = buf_adds(b, "\\\\");
			break;
		case '\t':
			err = buf_adds(b, "\\t");
			break;
		case '\n':
			err = buf_adds(b, "\\n");
			break;
		case '\r':
			err = buf_adds(b, "\\r");
			break;
		default:
			err = buf_addc(b, *s);
		}
	}
	return err;
}

static enum gw_err
rf_tab_write(struct buf *out, const struct rf_tab *t)
{
	enum gw_err err = GW_OK;

	for (size_t i = 0; i < t->n && err == GW_OK; i++)
		if ((err = buf_adds(out, t->items[i])) == GW_OK)
			err = buf_addc(out, '\n');
	return err;
}

enum gw_err
rs_write_package(const struct rules_set *set, const char *label,
		 const char *path, size_t *nstruct, size_t *nvs)
{
	struct rf_writer w;
	const struct rules_structure **sts = NULL;
	const struct rules_valueset **vss = NULL;
	size_t ns = 0, nv = 0;
	struct buf out;
	enum gw_err err = GW_NOMEM;

	memset(&w, 0, sizeof(w));
	buf_init(&w.body, (size_t)1 << 30);
	buf_init(&out, (size_t)1 << 30);
	/* Arrays of pointers: the pointer types are named. */
	sts = calloc(set->nst + 1, sizeof(const struct rules_structure *));
	vss = calloc(set->nvs + 1, sizeof(const struct rules_valueset *));
	if (sts == NULL || vss == NULL)
		goto out;
	for (size_t i = 0; i < set->nst; i++)
		if (strcmp(set->pkgs[set->st_pkg[i]], label) == 0)
			sts[ns++] = set->st[i];
	for (size_t i = 0; i < set->nvs; i++)
		if (strcmp(set->pkgs[set->vs_pkg[i]], label) == 0)
			vss[nv++] = set->vs[i];
	qsort(sts, ns, sizeof(const struct rules_structure *), rf_st_cmp);
	qsort(vss, nv, sizeof(const struct rules_valueset *), rf_vs_cmp);
	for (size_t i = 0; i < ns && !w.oom; i++) {
		const struct rules_structure *st = sts[i];

		if (buf_adds(&w.body, "S") != GW_OK)
			w.oom = true;
		rf_sref(&w, &w.body, st->url);
		rf_sref(&w, &w.body, st->version);
		rf_sref(&w, &w.body, st->name);
		rf_sref(&w, &w.body, st->type);
		rf_sref(&w, &w.body, st->kind);
		rf_sref(&w, &w.body, st->base);
		if (buf_printf(&w.body, "\t%d\t%zu\t",
			       (st->abstract ? 1 : 0) |
				   (st->constraint ? 2 : 0),
			       st->nelements) != GW_OK)
			w.oom = true;
		if (st->ncontexts == 0 && buf_addc(&w.body, '-') != GW_OK)
			w.oom = true;
		for (size_t k = 0; k < st->ncontexts; k++)
			if (buf_printf(
				&w.body, "%s%c:%zu", k ? "," : "",
				rf_ctx_chars[st->contexts[k].type],
				rf_tab_add(&w.str, st->contexts[k].expr)) !=
			    GW_OK)
				w.oom = true;
		if (buf_addc(&w.body, '\n') != GW_OK)
			w.oom = true;
		for (size_t k = 0; k < st->nelements; k++)
			rf_element(&w, &st->elements[k]);
	}
	for (size_t i = 0; i < nv && !w.oom; i++) {
		const struct rules_valueset *vs = vss[i];

		if (buf_adds(&w.body, "V") != GW_OK)
			w.oom = true;
		rf_sref(&w, &w.body, vs->url);
		rf_sref(&w, &w.body, vs->version);
		if (buf_printf(&w.body, "\t%d", vs->complete ? 1 : 0) != GW_OK)
			w.oom = true;
		rf_sref(&w, &w.body, vs->expansion);
		if (buf_printf(&w.body, "\t%zu", vs->ncodes) != GW_OK)
			w.oom = true;
		/* the title last: files written before it have 6 fields */
		rf_sref(&w, &w.body, vs->title);
		if (buf_addc(&w.body, '\n') != GW_OK)
			w.oom = true;
		for (size_t k = 0; k < vs->ncodes; k++) {
			if (buf_adds(&w.body, "k") != GW_OK)
				w.oom = true;
			rf_sref(&w, &w.body, vs->codes[k].system);
			rf_sref(&w, &w.body, vs->codes[k].code);
			rf_sref(&w, &w.body, vs->codes[k].display);
			if (buf_addc(&w.body, '\n') != GW_OK)
				w.oom = true;
		}
	}
	if (w.oom || w.str.oom || w.val.oom || w.type.oom || w.tlist.oom ||
	    w.cons.oom || w.clist.oom || w.slice.oom)
		goto out;
	if (buf_printf(&out,
		       "%s\t%d\t%s\t%s\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu"
		       "\t%zu\n",
		       RF_MAGIC, RF_VERSION,
		       set->fhir == RULES_R4 ? "r4" : "stu3", label, w.str.n,
		       w.val.n, w.type.n, w.tlist.n, w.cons.n, w.clist.n,
		       w.slice.n, ns, nv) != GW_OK)
		goto out;
	for (size_t i = 0; i < w.str.n; i++) {
		if (buf_adds(&out, "s\t") != GW_OK ||
		    rf_escape(&out, w.str.items[i]) != GW_OK ||
		    buf_addc(&out, '\n') != GW_OK)
			goto out;
	}
	if (rf_tab_write(&out, &w.val) != GW_OK ||
	    rf_tab_write(&out, &w.type) != GW_OK ||
	    rf_tab_write(&out, &w.tlist) != GW_OK ||
	    rf_tab_write(&out, &w.cons) != GW_OK ||
	    rf_tab_write(&out, &w.clist) != GW_OK ||
	    rf_tab_write(&out, &w.slice) != GW_OK ||
	    buf_add(&out, w.body.data ? w.body.data : "", w.body.len) != GW_OK)
		goto out;
	err = util_write_file(path, out.data, out.len, 0644);
	if (nstruct != NULL)
		*nstruct = ns;
	if (nvs != NULL)
		*nvs = nv;
out:
	free(sts);
	free(vss);
	buf_cleanup(&out);
	buf_cleanup(&w.body);
	rf_tab_free(&w.str);
	rf_tab_free(&w.val);
	rf_tab_free(&w.type);
	rf_tab_free(&w.tlist);
	rf_tab_free(&w.cons);
	rf_tab_free(&w.clist);
	rf_tab_free(&w.slice);
	return err;
}

/* ---- reading ---- */

struct rf_reader {
	struct rules_set *set;
	const char *name;
	char *errbuf;
	size_t errlen;
	size_t lineno;
	enum gw_err rc;
	/* tables */
	const char **str;
	const struct fj_node **val;
	struct rules_type *type;
	struct rules_type **tlist; /* contiguous arrays */
	size_t *tlist_n;
	struct rules_constraint *cons;
	struct rules_constraint **clist;
	size_t *clist_n;
	struct rules_slicing **slice;
	size_t n[9], got[9];
};

enum {
	RF_STR,
	RF_VAL,
	RF_TYPE,
	RF_TLIST,
	RF_CONS,
	RF_CLIST,
	RF_SLICE,
	RF_STRUCT,
	RF_VS
};

/* Record the first error and leave the (void) function. */
#define RF_FAIL(r, rc, msg)                                                    \
	do {                                                                   \
		rf_err((r), (rc), (msg));                                      \
		return;                                                        \
	} while (0)

static void
rf_err(struct rf_reader *r, enum gw_err rc, const char *msg)
{
	if (r->rc != GW_OK)
		return;
	r->rc = rc;
	snprintf(r->errbuf, r->errlen, "%s:%zu: %s", r->name, r->lineno, msg);
}

/* Split line into at most max tab-separated fields (in place). */
static size_t
rf_fields(char *line, char **f, size_t max)
{
	size_t n = 0;

	f[n++] = line;
	for (char *p = strchr(line, '\t'); p != NULL; p = strchr(p + 1, '\t')) {
		*p = '\0';
		if (n == max)
			return max + 1;
		f[n++] = p + 1;
	}
	return n;
}

static bool
rf_num(const char *s, size_t limit, size_t *out)
{
	size_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (size_t)(*s - '0');
		if (v > limit)
			return false;
	}
	*out = v;
	return true;
}

static bool
rf_u32(const char *s, uint32_t *out)
{
	size_t v;

	if (strcmp(s, "*") == 0) {
		*out = RULES_UNBOUNDED;
		return true;
	}
	if (!rf_num(s, UINT32_MAX - 1, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* Index into table t ("-" gives none when allowed). */
static bool
rf_idx(struct rf_reader *r, const char *s, int t, bool opt, size_t *out)
{
	if (opt && strcmp(s, "-") == 0) {
		*out = SIZE_MAX;
		return true;
	}
	if (!rf_num(s, SIZE_MAX / 16, out) || *out >= r->got[t]) {
		rf_err(r, GW_PARSE, "bad table reference");
		return false;
	}
	return true;
}

static const char *
rf_str(struct rf_reader *r, const char *s, bool *ok)
{
	size_t i;

	if (!rf_idx(r, s, RF_STR, true, &i)) {
		*ok = false;
		return NULL;
	}
	return i == SIZE_MAX ? NULL : r->str[i];
}

/* Parse "i,j,k" string indexes into an arena array. */
static bool
rf_strlist(struct rf_reader *r, char *s, const char ***out, size_t *n)
{
	size_t cnt = 1, k = 0;
	const char **v;
	bool ok = true;

	*out = NULL;
	*n = 0;
	if (strcmp(s, "-") == 0)
		return true;
	for (const char *p = s; *p; p++)
		cnt += *p == ',';
	if ((v = rs_alloc(r->set, cnt * sizeof(*v))) == NULL) {
		rf_err(r, GW_NOMEM, "out of memory");
		return false;
	}
	for (char *tok = s, *next; tok != NULL && ok; tok = next) {
		if ((next = strchr(tok, ',')) != NULL)
			*next++ = '\0';
		v[k] = rf_str(r, tok, &ok);
		if (ok && v[k] == NULL) {
			rf_err(r, GW_PARSE, "empty list item");
			ok = false;
		}
		k++;
	}
	*out = v;
	*n = k;
	return ok;
}

/* Unescape s in place. */
static bool
rf_unescape(char *s)
{
	char *o;

	/* most strings have nothing to unescape */
	if ((s = strchr(s, '\\')) == NULL)
		return true;
	o = s;
	for (; *s != '\0'; s++) {
		if (*s != '\\') {
			*o++ = *s;
			continue;
		}
		switch (*++s) {
		case '\\':
			*o++ = '\\';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		default:
			return false;
		}
	}
	*o = '\0';
	return true;
}

/* Index list "i,j" of table t into a freshly allocated index array. */
static size_t
rf_idxlist(struct rf_reader *r, char *s, int t, size_t *idx, size_t max)
{
	size_t k = 0;

	for (char *tok = s, *next; tok != NULL; tok = next) {
		if ((next = strchr(tok, ',')) != NULL)
			*next++ = '\0';
		if (k == max || !rf_idx(r, tok, t, false, &idx[k])) {
			rf_err(r, GW_PARSE, "bad list");
			return SIZE_MAX;
		}
		k++;
	}
	return k;
}

static void
rf_line_table(struct rf_reader *r, char **f, size_t nf)
{
	struct rules_set *set = r->set;
	char tag = f[0][0];
	bool ok = true;

	switch (tag) {
	case 's':
		if (nf != 2 || !rf_unescape(f[1]))
			RF_FAIL(r, GW_PARSE, "bad string");
		r->str[r->got[RF_STR]++] = f[1];
		return;
	case 'v': {
		const char *json;
		struct fj_doc *doc = NULL;
		const struct fj_node *m;

		if (nf != 2 || (json = rf_str(r, f[1], &ok)) == NULL)
			RF_FAIL(r, GW_PARSE, "bad value");
		if (fj_parse(json, strlen(json), 0, &doc, NULL) != GW_OK ||
		    doc->root == NULL || doc->root->type != FJ_OBJECT ||
		    doc->root->u.kids.count != 1) {
			fj_doc_free(doc);
			RF_FAIL(r, GW_PARSE, "bad value JSON");
		}
		m = rs_copy_member(set, doc->root->u.kids.first);
		fj_doc_free(doc);
		if (m == NULL)
			RF_FAIL(r, GW_NOMEM, "out of memory");
		r->val[r->got[RF_VAL]++] = m;
		return;
	}
	case 't': {
		struct rules_type *t = &r->type[r->got[RF_TYPE]];

		if (nf != 4)
			RF_FAIL(r, GW_PARSE, "bad type");
		t->code = rf_str(r, f[1], &ok);
		if (!ok || t->code == NULL ||
		    !rf_strlist(r, f[2], &t->profiles, &t->nprofiles) ||
		    !rf_strlist(r, f[3], &t->targets, &t->ntargets))
			RF_FAIL(r, GW_PARSE, "bad type");
		r->got[RF_TYPE]++;
		return;
	}
	case 'c': {
		struct rules_constraint *c = &r->cons[r->got[RF_CONS]];

		if (nf != 6 || (f[2][0] != 'E' && f[2][0] != 'W') ||
		    f[2][1] != '\0')
			RF_FAIL(r, GW_PARSE, "bad constraint");
		c->key = rf_str(r, f[1], &ok);
		c->error = f[2][0] == 'E';
		c->human = rf_str(r, f[3], &ok);
		c->expression = rf_str(r, f[4], &ok);
		c->source = rf_str(r, f[5], &ok);
		if (!ok || c->key == NULL)
			RF_FAIL(r, GW_PARSE, "bad constraint");
		r->got[RF_CONS]++;
		return;
	}
	case 'T':
	case 'C': {
		int t = tag == 'T' ? RF_TYPE : RF_CONS;
		size_t cnt = 1, *idx, k;

		if (nf != 2)
			RF_FAIL(r, GW_PARSE, "bad list");
		for (const char *p = f[1]; *p; p++)
			cnt += *p == ',';
		if ((idx = malloc(cnt * sizeof(*idx))) == NULL)
			RF_FAIL(r, GW_NOMEM, "out of memory");
		if ((k = rf_idxlist(r, f[1], t, idx, cnt)) == SIZE_MAX) {
			free(idx);
			return;
		}
		if (tag == 'T') {
			struct rules_type *v = rs_alloc(set, k * sizeof(*v));

			if (v == NULL) {
				free(idx);
				RF_FAIL(r, GW_NOMEM, "out of memory");
			}
			for (size_t i = 0; i < k; i++)
				v[i] = r->type[idx[i]];
			r->tlist_n[r->got[RF_TLIST]] = k;
			r->tlist[r->got[RF_TLIST]++] = v;
		} else {
			struct rules_constraint *v =
			    rs_alloc(set, k * sizeof(*v));

			if (v == NULL) {
				free(idx);
				RF_FAIL(r, GW_NOMEM, "out of memory");
			}
			for (size_t i = 0; i < k; i++)
				v[i] = r->cons[idx[i]];
			r->clist_n[r->got[RF_CLIST]] = k;
			r->clist[r->got[RF_CLIST]++] = v;
		}
		free(idx);
		return;
	}
	case 'l': {
		struct rules_slicing *sl = rs_alloc(set, sizeof(*sl));
		const char *rc = "oce", *p;
		size_t cnt = 1, k = 0;

		if (sl == NULL)
			RF_FAIL(r, GW_NOMEM, "out of memory");
		if (nf != 4 || (f[1][0] != '0' && f[1][0] != '1') ||
		    f[1][1] != '\0' || f[2][0] == '\0' || f[2][1] != '\0' ||
		    (p = strchr(rc, f[2][0])) == NULL)
			RF_FAIL(r, GW_PARSE, "bad slicing");
		sl->ordered = f[1][0] == '1';
		sl->rules = (enum rules_slice_rules)(p - rc);
		if (strcmp(f[3], "-") != 0) {
			for (const char *q = f[3]; *q; q++)
				cnt += *q == ',';
			sl->disc = rs_alloc(set, cnt * sizeof(*sl->disc));
			if (sl->disc == NULL)
				RF_FAIL(r, GW_NOMEM, "out of memory");
			for (char *tok = f[3], *next; tok; tok = next) {
				const char *d;

				if ((next = strchr(tok, ',')) != NULL)
					*next++ = '\0';
				if (tok[0] == '\0' || tok[1] != ':' ||
				    (d = strchr(rf_disc_chars, tok[0])) == NULL)
					RF_FAIL(r, GW_PARSE,
						"bad discriminator");
				sl->disc[k].type =
				    (enum rules_disc)(d - rf_disc_chars);
				sl->disc[k].path = rf_str(r, tok + 2, &ok);
				if (!ok || sl->disc[k].path == NULL)
					RF_FAIL(r, GW_PARSE,
						"bad discriminator");
				k++;
			}
		}
		sl->ndisc = k;
		r->slice[r->got[RF_SLICE]++] = sl;
		return;
	}
	default:
		rf_err(r, GW_PARSE, "unknown record");
	}
}

static void
rf_element_line(struct rf_reader *r, char **f, size_t nf,
		struct rules_element *e)
{
	static const char strength[] = "nrepx";
	const char *p;
	size_t i, flags;
	bool ok = true;

	if (nf != 19)
		RF_FAIL(r, GW_PARSE, "bad element");
	e->id = rf_str(r, f[1], &ok);
	e->path = rf_str(r, f[2], &ok);
	e->slice_name = rf_str(r, f[3], &ok);
	if (!ok || e->id == NULL || e->path == NULL || !rf_u32(f[4], &e->min) ||
	    !rf_u32(f[5], &e->max) || !rf_u32(f[6], &e->base_max))
		RF_FAIL(r, GW_PARSE, "bad element");
	if (!rf_idx(r, f[7], RF_TLIST, true, &i))
		return;
	if (i != SIZE_MAX) {
		e->types = r->tlist[i];
		e->ntypes = r->tlist_n[i];
	}
	e->content_ref = rf_str(r, f[8], &ok);
	if (!ok || !rf_idx(r, f[9], RF_VAL, true, &i))
		RF_FAIL(r, GW_PARSE, "bad element");
	e->fixed = i == SIZE_MAX ? NULL : r->val[i];
	if (!rf_idx(r, f[10], RF_VAL, true, &i))
		return;
	e->pattern = i == SIZE_MAX ? NULL : r->val[i];
	if (f[11][0] == '\0' || f[11][1] != '\0' ||
	    (p = strchr(strength, f[11][0])) == NULL)
		RF_FAIL(r, GW_PARSE, "bad binding strength");
	e->strength = (enum rules_strength)(p - strength);
	e->valueset = rf_str(r, f[12], &ok);
	if (!ok || !rf_idx(r, f[13], RF_SLICE, true, &i))
		RF_FAIL(r, GW_PARSE, "bad element");
	e->slicing = i == SIZE_MAX ? NULL : r->slice[i];
	if (!rf_idx(r, f[14], RF_CLIST, true, &i))
		return;
	if (i != SIZE_MAX) {
		e->constraints = r->clist[i];
		e->nconstraints = r->clist_n[i];
	}
	if (!rf_num(f[15], 3, &flags))
		RF_FAIL(r, GW_PARSE, "bad element flags");
	e->is_modifier = (flags & 1) != 0;
	e->must_support = (flags & 2) != 0;
	if (!rf_idx(r, f[16], RF_VAL, true, &i))
		return;
	e->min_value = i == SIZE_MAX ? NULL : r->val[i];
	if (!rf_idx(r, f[17], RF_VAL, true, &i))
		return;
	e->max_value = i == SIZE_MAX ? NULL : r->val[i];
	if (!rf_u32(f[18], &e->max_length) || e->max_length == RULES_UNBOUNDED)
		RF_FAIL(r, GW_PARSE, "bad maxLength");
}

/* Next line of text (in place), NULL at the end. */
static char *
rf_next_line(char **pos, char *end)
{
	char *s = *pos, *nl;

	if (s >= end)
		return NULL;
	nl = memchr(s, '\n', (size_t)(end - s));
	if (nl == NULL)
		nl = end;
	*nl = '\0';
	*pos = nl + 1;
	return s;
}

/* The CONTEXTS field of a structure: "-" or "type:stridx,...". */
static void
rf_contexts(struct rf_reader *r, char *s, struct rules_structure *st)
{
	size_t n = 1, k = 0;

	if (strcmp(s, "-") == 0)
		return;
	for (const char *p = s; *p != '\0'; p++)
		n += *p == ',';
	st->contexts = rs_alloc(r->set, n * sizeof(*st->contexts));
	if (st->contexts == NULL)
		RF_FAIL(r, GW_NOMEM, "out of memory");
	for (char *item = s, *next; item != NULL; item = next, k++) {
		const char *t;
		bool ok = true;

		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		if (item[0] == '\0' ||
		    (t = strchr(rf_ctx_chars, item[0])) == NULL ||
		    item[1] != ':')
			RF_FAIL(r, GW_PARSE, "bad context");
		st->contexts[k].type = (enum rules_ctx_type)(t - rf_ctx_chars);
		st->contexts[k].expr = rf_str(r, item + 2, &ok);
		if (!ok || st->contexts[k].expr == NULL)
			RF_FAIL(r, GW_PARSE, "bad context");
	}
	st->ncontexts = n;
}

static void
rf_body(struct rf_reader *r, char *pos, char *end)
{
	struct rules_set *set = r->set;
	char *line, *f[20];
	size_t nf;

	while (r->rc == GW_OK && (line = rf_next_line(&pos, end)) != NULL) {
		r->lineno++;
		nf = rf_fields(line, f, 19);
		if (nf > 19 || f[0][0] == '\0' || f[0][1] != '\0')
			RF_FAIL(r, GW_PARSE, "bad record");
		switch (f[0][0]) {
		case 's':
		case 'v':
		case 't':
		case 'T':
		case 'c':
		case 'C':
		case 'l': {
			static const char tags[] = "svtTcCl";
			int t = (int)(strchr(tags, f[0][0]) - tags);

			if (r->got[t] >= r->n[t])
				RF_FAIL(r, GW_PARSE, "table overflow");
			rf_line_table(r, f, nf);
			break;
		}
		case 'S': {
			struct rules_structure *st;
			size_t flags, ne;
			bool ok = true;

			if (nf != 10 || r->got[RF_STRUCT] >= r->n[RF_STRUCT])
				RF_FAIL(r, GW_PARSE, "bad structure");
			if ((st = rs_alloc(set, sizeof(*st))) == NULL)
				RF_FAIL(r, GW_NOMEM, "out of memory");
			st->url = rf_str(r, f[1], &ok);
			st->version = rf_str(r, f[2], &ok);
			st->name = rf_str(r, f[3], &ok);
			st->type = rf_str(r, f[4], &ok);
			st->kind = rf_str(r, f[5], &ok);
			st->base = rf_str(r, f[6], &ok);
			st->fhir = set->fhir;
			if (!ok || st->url == NULL || st->type == NULL ||
			    !rf_num(f[7], 3, &flags) ||
			    !rf_num(f[8], 1000000, &ne) ||
			    ne > (size_t)(end - pos) / 16)
				RF_FAIL(r, GW_PARSE, "bad structure");
			st->abstract = (flags & 1) != 0;
			st->constraint = (flags & 2) != 0;
			rf_contexts(r, f[9], st);
			st->elements = rs_alloc(set, (ne ? ne : 1) *
							 sizeof(*st->elements));
			if (st->elements == NULL)
				RF_FAIL(r, GW_NOMEM, "out of memory");
			for (size_t k = 0; k < ne && r->rc == GW_OK; k++) {
				if ((line = rf_next_line(&pos, end)) == NULL)
					RF_FAIL(r, GW_PARSE,
						"missing elements");
				r->lineno++;
				nf = rf_fields(line, f, 19);
				if (nf > 19 || strcmp(f[0], "e") != 0)
					RF_FAIL(r, GW_PARSE,
						"expected an element");
				rf_element_line(r, f, nf, &st->elements[k]);
			}
			st->nelements = ne;
			r->got[RF_STRUCT]++;
			if (r->rc == GW_OK) {
				enum gw_err e = rs_add_structure(set, st);

				if (e != GW_OK && e != GW_EXISTS)
					RF_FAIL(r, e, gw_strerror(e));
			}
			break;
		}
		case 'V': {
			struct rules_valueset *vs;
			size_t nc;
			bool ok = true;

			if ((nf != 6 && nf != 7) ||
			    r->got[RF_VS] >= r->n[RF_VS])
				RF_FAIL(r, GW_PARSE, "bad value set");
			if ((vs = rs_alloc(set, sizeof(*vs))) == NULL)
				RF_FAIL(r, GW_NOMEM, "out of memory");
			vs->url = rf_str(r, f[1], &ok);
			vs->version = rf_str(r, f[2], &ok);
			vs->expansion = rf_str(r, f[4], &ok);
			vs->title = nf == 7 ? rf_str(r, f[6], &ok) : NULL;
			if (!ok || vs->url == NULL ||
			    (strcmp(f[3], "0") != 0 &&
			     strcmp(f[3], "1") != 0) ||
			    !rf_num(f[5], 10000000, &nc) ||
			    nc > (size_t)(end - pos) / 8)
				RF_FAIL(r, GW_PARSE, "bad value set");
			vs->complete = f[3][0] == '1';
			if (nc > 0 &&
			    (vs->codes = rs_alloc(
				 set, nc * sizeof(*vs->codes))) == NULL)
				RF_FAIL(r, GW_NOMEM, "out of memory");
			for (size_t k = 0; k < nc; k++) {
				struct rules_code *c = &vs->codes[k];

				if ((line = rf_next_line(&pos, end)) == NULL)
					RF_FAIL(r, GW_PARSE, "missing codes");
				r->lineno++;
				nf = rf_fields(line, f, 19);
				if (nf != 4 || strcmp(f[0], "k") != 0)
					RF_FAIL(r, GW_PARSE, "expected a code");
				c->system = rf_str(r, f[1], &ok);
				c->code = rf_str(r, f[2], &ok);
				c->display = rf_str(r, f[3], &ok);
				if (!ok || c->code == NULL)
					RF_FAIL(r, GW_PARSE, "bad code");
				/* the lookup needs sorted codes */
				if (k > 0) {
					const struct rules_code *b = c - 1;
					int cmp =
					    strcmp(b->system ? b->system : "",
						   c->system ? c->system : "");

					if (cmp > 0 ||
					    (cmp == 0 &&
					     strcmp(b->code, c->code) >= 0))
						RF_FAIL(r, GW_PARSE,
							"codes not "
							"sorted");
				}
			}
			vs->ncodes = nc;
			r->got[RF_VS]++;
			enum gw_err e = rs_add_valueset(set, vs);

			if (e != GW_OK && e != GW_EXISTS)
				RF_FAIL(r, e, gw_strerror(e));
			break;
		}
		default:
			RF_FAIL(r, GW_PARSE, "unknown record");
		}
	}
}

enum gw_err
rs_load_text(struct rules_set *set, char *text, size_t len, const char *name,
	     char *errbuf, size_t errlen)
{
	struct rf_reader r;
	char *pos = text, *end = text + len, *line, *f[14];
	size_t nf, nlines = 1;
	int saved_pkg;
	char **nb;

	memset(&r, 0, sizeof(r));
	r.set = set;
	r.name = name;
	r.errbuf = errbuf;
	r.errlen = errlen;
	/* the set owns the text from here: strings point into it */
	if (set->nbufs == set->capbufs) {
		size_t ncap = set->capbufs ? set->capbufs * 2 : 16;

		if ((nb = realloc(set->bufs, ncap * sizeof(*nb))) == NULL) {
			free(text);
			snprintf(errbuf, errlen, "%s: out of memory", name);
			return GW_NOMEM;
		}
		set->bufs = nb;
		set->capbufs = ncap;
	}
	set->bufs[set->nbufs++] = text;
	for (const char *q = text, *e = text + len;
	     (q = memchr(q, '\n', (size_t)(e - q))) != NULL; q++)
		nlines++;
	if (memchr(text, '\0', len) != NULL) {
		rf_err(&r, GW_PARSE, "NUL byte");
		return r.rc;
	}
	if ((line = rf_next_line(&pos, end)) == NULL) {
		rf_err(&r, GW_PARSE, "empty file");
		return r.rc;
	}
	r.lineno = 1;
	nf = rf_fields(line, f, 13);
	if (nf != 13 || strcmp(f[0], RF_MAGIC) != 0 || strcmp(f[1], "3") != 0) {
		rf_err(&r, GW_PARSE, "not a pzpgw rule file (version 3)");
		return r.rc;
	}
	if (strcmp(f[2], set->fhir == RULES_R4 ? "r4" : "stu3") != 0) {
		rf_err(&r, GW_PARSE, "rules for another FHIR version");
		return r.rc;
	}
	for (int t = 0; t < 9; t++) {
		if (!rf_num(f[4 + t], nlines, &r.n[t])) {
			rf_err(&r, GW_PARSE, "bad header counts");
			return r.rc;
		}
	}
	/* what a file holds belongs to its package */
	saved_pkg = set->cur_pkg;
	if (rules_set_package(set, f[3]) != GW_OK) {
		rf_err(&r, GW_NOMEM, "out of memory");
		return r.rc;
	}
	r.str = calloc(r.n[RF_STR] + 1, sizeof(*r.str));
	/* val, tlist, clist and slice are arrays of pointers. */
	r.val = calloc(r.n[RF_VAL] + 1, sizeof(const struct fj_node *));
	r.type = rs_alloc(set, (r.n[RF_TYPE] + 1) * sizeof(*r.type));
	r.tlist = calloc(r.n[RF_TLIST] + 1, sizeof(struct rules_type *));
	r.tlist_n = calloc(r.n[RF_TLIST] + 1, sizeof(*r.tlist_n));
	r.cons = rs_alloc(set, (r.n[RF_CONS] + 1) * sizeof(*r.cons));
	r.clist = calloc(r.n[RF_CLIST] + 1, sizeof(struct rules_constraint *));
	r.clist_n = calloc(r.n[RF_CLIST] + 1, sizeof(*r.clist_n));
	r.slice = calloc(r.n[RF_SLICE] + 1, sizeof(struct rules_slicing *));
	if (r.str == NULL || r.val == NULL || r.type == NULL ||
	    r.tlist == NULL || r.tlist_n == NULL || r.cons == NULL ||
	    r.clist == NULL || r.clist_n == NULL || r.slice == NULL)
		rf_err(&r, GW_NOMEM, "out of memory");
	else
		rf_body(&r, pos, end);
	if (r.rc == GW_OK) {
		for (int t = 0; t < 9; t++) {
			if (r.got[t] != r.n[t]) {
				rf_err(&r, GW_PARSE,
				       "record counts differ from the header");
				break;
			}
		}
	}
	set->cur_pkg = saved_pkg;
	free(r.str);
	free(r.val);
	free(r.tlist);
	free(r.tlist_n);
	free(r.clist);
	free(r.clist_n);
	free(r.slice);
	return r.rc;
}

enum gw_err
rules_load_dir(struct rules_set *set, const char *dir, char *errbuf,
	       size_t errlen)
{
	const char *prefix = set->fhir == RULES_R4 ? "r4-" : "stu3-";
	char **names = NULL, path[4096], *text;
	size_t n = 0, len;
	enum gw_err err;

	if (errlen > 0)
		errbuf[0] = '\0';
	if ((err = util_dir_names(dir, prefix, ".rules", &names, &n)) ==
	    GW_IO) {
		snprintf(errbuf, errlen, "%s: cannot open directory", dir);
		return GW_NOTFOUND;
	}
	if (err == GW_OK && n == 0) {
		snprintf(errbuf, errlen, "%s: no %s*.rules files", dir, prefix);
		err = GW_NOTFOUND;
	}
	for (size_t i = 0; i < n && err == GW_OK; i++) {
		int k = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);

		if (k < 0 || (size_t)k >= sizeof(path)) {
			err = GW_NOTFOUND;
			break;
		}
		if ((err = util_read_file(path, RF_MAX_FILE, &text, &len)) !=
		    GW_OK) {
			snprintf(errbuf, errlen, "%s: %s", path,
				 gw_strerror(err));
			break;
		}
		err = rs_load_text(set, text, len, names[i], errbuf, errlen);
	}
	if (err == GW_NOMEM && errlen > 0 && errbuf[0] == '\0')
		snprintf(errbuf, errlen, "%s: out of memory", dir);
	util_names_free(names, n);
	return err;
}
