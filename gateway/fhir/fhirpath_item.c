/*
 * fhirpath_item: items and collections of one evaluation: building them
 * in the arena, navigating fjson members and children, and item types.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fhirpath_impl.h"

/* ---------------------------------------------------------- collections */

enum gw_err
fp_efail(struct ectx *x, enum gw_err e, const char *fmt, ...)
{
	va_list ap;

	if (x->errbuf && x->errlen && x->errbuf[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(x->errbuf, x->errlen, fmt, ap);
		va_end(ap);
	}
	return e;
}

enum gw_err
fp_enomem(struct ectx *x)
{
	return fp_efail(x, x->ar.err,
			x->ar.err == GW_TOOBIG
			    ? "evaluation uses too much memory"
			    : "out of memory");
}

enum gw_err
fp_cb_push(struct ectx *x, struct cb *b, const item_t *it)
{
	if (++x->steps > MAX_STEPS)
		return fp_efail(x, GW_TOOBIG, "evaluation takes too long");
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4;
		item_t *nv;

		if (b->n >= FHIRPATH_MAX_ITEMS)
			return fp_efail(x, GW_TOOBIG, "collection too large");
		nv = fp_ar_alloc(&x->ar, nc * sizeof(*nv));
		if (!nv)
			return fp_enomem(x);
		if (b->n)
			memcpy(nv, b->v, b->n * sizeof(*nv));
		b->v = nv;
		b->cap = nc;
	}
	b->v[b->n++] = *it;
	return GW_OK;
}

enum gw_err
fp_cb_append(struct ectx *x, struct cb *b, const struct coll *c)
{
	size_t i;
	enum gw_err e;

	for (i = 0; i < c->n; i++)
		if ((e = fp_cb_push(x, b, &c->v[i])) != GW_OK)
			return e;
	return GW_OK;
}

void
fp_cb_done(struct cb *b, struct coll *out)
{
	out->v = b->v;
	out->n = b->n;
}

enum gw_err
fp_one(struct ectx *x, const item_t *it, struct coll *out)
{
	item_t *v = fp_ar_alloc(&x->ar, sizeof(*v));

	if (!v)
		return fp_enomem(x);
	*v = *it;
	out->v = v;
	out->n = 1;
	return GW_OK;
}

enum gw_err
fp_one_bool(struct ectx *x, bool b, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_BOOLEAN;
	it.b = b;
	return fp_one(x, &it, out);
}

enum gw_err
fp_one_int(struct ectx *x, int64_t v, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_INTEGER;
	it.i = v;
	return fp_one(x, &it, out);
}

/* A string item; s is copied into the arena unless copy is false. */
enum gw_err
fp_one_str(struct ectx *x, enum fhirpath_kind kind, const char *s, size_t n,
	   bool copy, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = kind;
	it.text = copy ? fp_ar_strndup(&x->ar, s, n) : s;
	it.len = n;
	if (!it.text)
		return fp_enomem(x);
	return fp_one(x, &it, out);
}

/* Three-valued result as a collection. */
enum gw_err
fp_one_b3(struct ectx *x, enum fhirpath_bool b, struct coll *out)
{
	if (b == FHIRPATH_EMPTY) {
		out->n = 0;
		return GW_OK;
	}
	return fp_one_bool(x, b == FHIRPATH_TRUE, out);
}

/* ------------------------------------------------------------ navigation */

static bool
key_eq(const struct fj_node *m, const char *s, size_t n)
{
	return m->keylen == n && memcmp(m->key, s, n) == 0;
}

static bool
key_eq_ext(const struct fj_node *m, const char *s, size_t n)
{
	return m->keylen == n + 1 && m->key[0] == '_' &&
	       memcmp(m->key + 1, s, n) == 0;
}

const char *
fp_node_rtype(const struct fj_node *n)
{
	const struct fj_node *m;

	if (!n || n->type != FJ_OBJECT)
		return NULL;
	for (m = n->u.kids.first; m; m = m->next)
		if (key_eq(m, "resourceType", 12) && m->type == FJ_STRING)
			return m->u.str.s;
	return NULL;
}

/* Choice elements ([x]) of FHIR R4 and STU3 resources and data types. */
static const char *const choice_names[] = {
    "value",	    "effective",     "onset",	   "abatement",
    "deceased",	    "multipleBirth", "born",	   "age",
    "occurrence",   "performed",     "timing",	   "medication",
    "reported",	    "serviced",	     "product",	   "item",
    "answer",	    "asNeeded",	     "dose",	   "rate",
    "defaultValue", "fixed",	     "pattern",	   "minValue",
    "maxValue",	    "scheduled",     "collected",  "location",
    "diagnosis",    "procedure",     "subject",	   "probability",
    "source",	    "target",	     "content",	   "detail",
    "due",	    "bounds",	     "allowed",	   "used",
    "valueSet",	    "definition",    "onBehalfOf", "entity",
    "event",	    "author",	     "amount",	   "instantiates",
    "substance",    "statusReason",  "identified", NULL};

/* The FHIR type of member key (NUL-terminated) of parent. choice is the
 * length of the element name when key is a choice member, else 0. */
static const char *
member_type(struct ectx *x, const struct fj_node *parent, const char *ptype,
	    const char *key, size_t keylen, size_t choice)
{
	const char *t = NULL;
	size_t i;

	if (x->env && x->env->type_of)
		t = x->env->type_of(x->env->arg, parent, ptype, key);
	if (t)
		return t;
	/* Only a choice element has its type in its name; for children()
	 * a guess from any name (dateTime: "Time"?) would mislead, so only
	 * the names of known choice elements are split. */
	if (choice)
		return fp_suffix_type(key + choice, keylen - choice);
	for (i = 0; choice_names[i]; i++) {
		size_t n;

		/* the first letter sorts out most names cheaply: this runs
		 * for every member whose type the callback does not know */
		if (choice_names[i][0] != key[0])
			continue;
		n = strlen(choice_names[i]);
		if (keylen > n && memcmp(key, choice_names[i], n) == 0 &&
		    (t = fp_suffix_type(key + n, keylen - n)) != NULL)
			return t;
	}
	return NULL;
}

/* Push the item(s) of one member: val (may be NULL) and its _x part ext
 * (may be NULL); arrays pair element by element. */
enum gw_err
fp_emit_member(struct ectx *x, const struct fj_node *val,
	       const struct fj_node *ext, const char *type, struct cb *out)
{
	item_t it;
	enum gw_err e;

	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_NODE;
	if ((val && val->type == FJ_ARRAY) || (ext && ext->type == FJ_ARRAY)) {
		const struct fj_node *a =
		    val && val->type == FJ_ARRAY ? val->u.kids.first : NULL;
		const struct fj_node *b =
		    ext && ext->type == FJ_ARRAY ? ext->u.kids.first : NULL;

		while (a || b) {
			it.node = a && a->type != FJ_NULL ? a : NULL;
			it.ext = b && b->type == FJ_OBJECT ? b : NULL;
			if (it.node || it.ext) {
				const char *rt = fp_node_rtype(it.node);

				it.type = rt ? rt : type;
				if ((e = fp_cb_push(x, out, &it)) != GW_OK)
					return e;
			}
			a = a ? a->next : NULL;
			b = b ? b->next : NULL;
		}
		return GW_OK;
	}
	it.node = val && val->type != FJ_NULL ? val : NULL;
	it.ext = ext && ext->type == FJ_OBJECT ? ext : NULL;
	if (!it.node && !it.ext)
		return GW_OK;
	it.type = fp_node_rtype(it.node);
	if (!it.type)
		it.type = type;
	return fp_cb_push(x, out, &it);
}

/* The object whose members an item has: itself, or for a primitive its
 * _x part (id, extension). */
const struct fj_node *
fp_item_obj(const item_t *it)
{
	if (it->kind != FHIRPATH_NODE)
		return NULL;
	if (it->node && it->node->type == FJ_OBJECT)
		return it->node;
	return it->ext;
}

static bool
is_choice_key(const struct fj_node *m, size_t off, const char *name, size_t n)
{
	return m->keylen > n + off && memcmp(m->key + off, name, n) == 0 &&
	       isupper((unsigned char)m->key[off + n]);
}

static const struct fj_node *
find_ext(const struct fj_node *obj, const char *s, size_t n)
{
	const struct fj_node *m;

	for (m = obj->u.kids.first; m; m = m->next)
		if (key_eq_ext(m, s, n))
			return m;
	return NULL;
}

const struct fj_node *
fp_find_key(const struct fj_node *obj, const char *s, size_t n)
{
	const struct fj_node *m;

	for (m = obj->u.kids.first; m; m = m->next)
		if (key_eq(m, s, n))
			return m;
	return NULL;
}

/* it.name: the member, its _name part, or the choice members name[Type]. */
enum gw_err
fp_nav_member(struct ectx *x, const item_t *it, const char *name, size_t n,
	      struct cb *out)
{
	const struct fj_node *obj = fp_item_obj(it), *m, *val = NULL,
			     *ext = NULL;
	enum gw_err e;

	if (++x->steps > MAX_STEPS)
		return fp_efail(x, GW_TOOBIG, "evaluation takes too long");
	if (!obj)
		return GW_OK;
	for (m = obj->u.kids.first; m; m = m->next) {
		if (key_eq(m, name, n))
			val = m;
		else if (key_eq_ext(m, name, n))
			ext = m;
	}
	if (val || ext) {
		const char *key = val ? val->key : ext->key + 1;
		const char *t = member_type(x, obj, it->type, key, n, 0);

		return fp_emit_member(x, val, ext, t, out);
	}
	/* choice element: value -> valueString, _valueString */
	for (m = obj->u.kids.first; m; m = m->next) {
		const char *t;
		size_t klen;

		if (is_choice_key(m, 0, name, n)) {
			klen = m->keylen;
			t = member_type(x, obj, it->type, m->key, klen, n);
			if (!t)
				continue;
			ext = find_ext(obj, m->key, klen);
			if ((e = fp_emit_member(x, m, ext, t, out)) != GW_OK)
				return e;
		} else if (is_choice_key(m, 1, name, n) && m->key[0] == '_' &&
			   !fp_find_key(obj, m->key + 1, m->keylen - 1)) {
			klen = m->keylen - 1;
			t = member_type(x, obj, it->type, m->key + 1, klen, n);
			if (!t)
				continue;
			if ((e = fp_emit_member(x, NULL, m, t, out)) != GW_OK)
				return e;
		}
	}
	return GW_OK;
}

/* children(): every member's item(s), primitives paired with _x. */
enum gw_err
fp_nav_children(struct ectx *x, const item_t *it, struct cb *out)
{
	const struct fj_node *obj = fp_item_obj(it), *m, *other;
	enum gw_err e;

	if (!obj)
		return GW_OK;
	for (m = obj->u.kids.first; m; m = m->next) {
		const char *t;

		if (++x->steps > MAX_STEPS)
			return fp_efail(x, GW_TOOBIG,
					"evaluation takes too long");
		if (key_eq(m, "resourceType", 12) ||
		    key_eq(m, "fhir_comments", 13))
			continue;
		if (m->keylen > 0 && m->key[0] == '_') {
			if (fp_find_key(obj, m->key + 1, m->keylen - 1))
				continue; /* emitted with its value */
			t = member_type(x, obj, it->type, m->key + 1,
					m->keylen - 1, 0);
			e = fp_emit_member(x, NULL, m, t, out);
		} else {
			other = find_ext(obj, m->key, m->keylen);
			t = member_type(x, obj, it->type, m->key, m->keylen, 0);
			e = fp_emit_member(x, m, other, t, out);
		}
		if (e != GW_OK)
			return e;
	}
	return GW_OK;
}

/* ----------------------------------------------------------- item types */

/* The item's FHIR type as far as it can be known, or NULL. */
const char *
fp_item_type(const item_t *it)
{
	const char *rt;

	if (it->type)
		return it->type;
	rt = fp_node_rtype(it->node);
	if (rt)
		return rt;
	if (it->node && it->node->type == FJ_BOOL)
		return "boolean";
	if (it->node && it->node->type == FJ_NUMBER &&
	    strpbrk(it->node->u.str.s, ".eE"))
		return "decimal";
	return NULL;
}

/* Whether item it is of type want ("Patient", "FHIR.string",
 * "System.String", "Boolean"); GW_INVALID when that cannot be known. */
enum gw_err
fp_type_is(struct ectx *x, const item_t *it, const char *want, bool *out)
{
	const char *t, *sys = NULL;

	*out = false;
	if (strncmp(want, "System.", 7) == 0)
		sys = want + 7;
	else if (fp_is_system_name(want))
		sys = want;
	if (it->kind != FHIRPATH_NODE) {
		const char *k = fp_kind_system(it->kind);

		*out = sys ? strcmp(k, sys) == 0
			   : (fp_system_of(want) &&
			      strcmp(fp_system_of(want), k) == 0 &&
			      (strcmp(want, "boolean") == 0 ||
			       strcmp(want, "string") == 0 ||
			       strcmp(want, "integer") == 0 ||
			       strcmp(want, "decimal") == 0 ||
			       strcmp(want, "dateTime") == 0 ||
			       strcmp(want, "date") == 0 ||
			       strcmp(want, "time") == 0));
		return GW_OK;
	}
	t = fp_item_type(it);
	if (!t) {
		bool obj = it->node ? it->node->type == FJ_OBJECT : false;
		bool prim_want = sys || fp_is_primitive_type(want);

		/* what the JSON shape alone decides */
		if (it->node && obj == prim_want) {
			*out = false;
			return GW_OK;
		}
		if (obj && !fp_is_datatype(want) &&
		    strcmp(want, "Element") != 0) {
			*out = false; /* resources carry resourceType */
			return GW_OK;
		}
		return fp_efail(x, GW_INVALID,
				"type of an element needed for "
				"'%s' is unknown",
				want);
	}
	if (sys) {
		const char *s = fp_system_of(t);

		*out = s && strcmp(s, sys) == 0;
		return GW_OK;
	}
	*out = fp_fhir_type_is(t, want);
	return GW_OK;
}
