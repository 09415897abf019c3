/*
 * fhirpath_value: the value of an item and what FHIRPath does with values:
 * equality, equivalence, order, hashing, distinct and membership.
 */
#include <ctype.h>
#include <string.h>

#include "fdate.h"
#include "fdecimal.h"
#include "fhirpath_impl.h"

/* ---------------------------------------------------------------- values */

bool
fp_parse_int(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	int64_t v = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == n)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

void
fp_item_val(const item_t *it, struct val *v)
{
	const struct fj_node *n = it->node;

	memset(v, 0, sizeof(*v));
	v->type = it->type;
	switch (it->kind) {
	case FHIRPATH_BOOLEAN:
		v->k = V_BOOL;
		v->b = it->b;
		return;
	case FHIRPATH_INTEGER:
		v->k = V_INT;
		v->i = it->i;
		return;
	case FHIRPATH_DECIMAL:
		v->k = V_DEC;
		break;
	case FHIRPATH_STRING:
		v->k = V_STR;
		break;
	case FHIRPATH_DATE:
	case FHIRPATH_DATETIME:
	case FHIRPATH_TIME:
		v->k = V_DATE;
		v->dkind = it->kind;
		break;
	case FHIRPATH_NODE:
		if (!n)
			return; /* only an extension */
		switch (n->type) {
		case FJ_BOOL:
			v->k = V_BOOL;
			v->b = n->u.b;
			return;
		case FJ_NUMBER:
			v->s = n->u.str.s;
			v->len = n->u.str.len;
			if (strpbrk(v->s, ".eE") ||
			    !fp_parse_int(v->s, v->len, &v->i))
				v->k = V_DEC;
			else
				v->k = V_INT;
			return;
		case FJ_STRING:
			v->k = V_STR;
			v->s = n->u.str.s;
			v->len = n->u.str.len;
			if (it->type && (strcmp(it->type, "date") == 0 ||
					 strcmp(it->type, "dateTime") == 0 ||
					 strcmp(it->type, "instant") == 0)) {
				v->k = V_DATE;
				v->dkind = FHIRPATH_DATETIME;
			} else if (it->type && strcmp(it->type, "time") == 0) {
				v->k = V_DATE;
				v->dkind = FHIRPATH_TIME;
			}
			return;
		case FJ_OBJECT:
		case FJ_ARRAY:
			v->k = V_OBJ;
			return;
		default:
			return;
		}
	}
	v->s = it->text;
	v->len = it->len;
}

/* A string that reads as a date with at least year and month. */
static bool
looks_date(const struct val *v)
{
	struct fdate d;

	return v->k == V_STR && v->len >= 7 && v->s[4] == '-' &&
	       fdate_parse(v->s, v->len, FDATE_DATETIME, &d);
}

/* When a and b are to be compared as dates/times, parse them. Returns 1
 * when both parsed, 0 when not a date comparison, -1 when one of them is
 * a date and the other cannot be read as one. */
static int
as_dates(const struct val *a, const struct val *b, struct fdate *da,
	 struct fdate *db)
{
	enum fhirpath_kind ka, kb;

	if (a->k == V_DATE || b->k == V_DATE) {
		if ((a->k != V_DATE && a->k != V_STR) ||
		    (b->k != V_DATE && b->k != V_STR))
			return -1;
	} else if (!(looks_date(a) && looks_date(b))) {
		return 0;
	}
	ka = a->k == V_DATE   ? a->dkind
	     : b->k == V_DATE ? b->dkind
			      : FHIRPATH_DATETIME;
	kb = b->k == V_DATE ? b->dkind : ka;
	if (a->k != V_DATE)
		ka = kb;
	if (!fdate_parse(a->s, a->len,
			 ka == FHIRPATH_TIME ? FDATE_TIME : FDATE_DATETIME,
			 da) ||
	    !fdate_parse(b->s, b->len,
			 kb == FHIRPATH_TIME ? FDATE_TIME : FDATE_DATETIME, db))
		return -1;
	return 1;
}

static bool
to_fdec(const struct val *v, struct fdec *d)
{
	if (v->k == V_INT) {
		fdec_from_int(v->i, d);
		return true;
	}
	return v->k == V_DEC && fdec_parse(v->s, v->len, d);
}

/* FHIRPath equality of two items (=): TRUE, FALSE or EMPTY. */
enum fhirpath_bool
fp_item_eq(const item_t *a, const item_t *b)
{
	struct val va, vb;
	struct fdate da, db;
	struct fdec na, nb;
	int r;

	fp_item_val(a, &va);
	fp_item_val(b, &vb);
	if (va.k == V_OBJ || vb.k == V_OBJ)
		return va.k == vb.k && fj_equal(a->node, b->node, FDEC_EXACT)
			   ? FHIRPATH_TRUE
			   : FHIRPATH_FALSE;
	if (va.k == V_NONE || vb.k == V_NONE)
		return FHIRPATH_EMPTY;
	switch (as_dates(&va, &vb, &da, &db)) {
	case 1:
		if (!fdate_cmp(&da, &db, &r))
			return FHIRPATH_EMPTY;
		return r == 0 ? FHIRPATH_TRUE : FHIRPATH_FALSE;
	case -1:
		return FHIRPATH_FALSE;
	default:
		break;
	}
	if (va.k == V_BOOL && vb.k == V_BOOL)
		return va.b == vb.b ? FHIRPATH_TRUE : FHIRPATH_FALSE;
	if ((va.k == V_INT || va.k == V_DEC) &&
	    (vb.k == V_INT || vb.k == V_DEC)) {
		if (va.k == V_INT && vb.k == V_INT)
			return va.i == vb.i ? FHIRPATH_TRUE : FHIRPATH_FALSE;
		if (!to_fdec(&va, &na) || !to_fdec(&vb, &nb))
			return FHIRPATH_FALSE;
		return fdec_cmp(&na, &nb) == 0 ? FHIRPATH_TRUE : FHIRPATH_FALSE;
	}
	if (va.k == V_STR && vb.k == V_STR)
		return va.len == vb.len && memcmp(va.s, vb.s, va.len) == 0
			   ? FHIRPATH_TRUE
			   : FHIRPATH_FALSE;
	return FHIRPATH_FALSE;
}

/* Equivalence (~): strings ignoring case and runs of whitespace, dates of
 * different precision are not equivalent. */
static bool
str_equiv(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, j = 0;

	for (;;) {
		while (
		    i < an && isspace((unsigned char)a[i]) &&
		    (i == 0 || i + 1 == an || isspace((unsigned char)a[i + 1])))
			i++;
		while (
		    j < bn && isspace((unsigned char)b[j]) &&
		    (j == 0 || j + 1 == bn || isspace((unsigned char)b[j + 1])))
			j++;
		if (i == an || j == bn)
			return i == an && j == bn;
		if (isspace((unsigned char)a[i]) &&
		    isspace((unsigned char)b[j])) {
			i++, j++;
			continue;
		}
		if (tolower((unsigned char)a[i]) !=
		    tolower((unsigned char)b[j]))
			return false;
		i++, j++;
	}
}

bool
fp_item_equiv(const item_t *a, const item_t *b)
{
	struct val va, vb;

	fp_item_val(a, &va);
	fp_item_val(b, &vb);
	if (va.k == V_STR && vb.k == V_STR)
		return str_equiv(va.s, va.len, vb.s, vb.len);
	return fp_item_eq(a, b) == FHIRPATH_TRUE;
}

/* Order of two items for < > <= >=: *r, or false when uncomparable
 * (empty result); GW_INVALID for types that have no order. */
enum gw_err
fp_item_cmp(struct ectx *x, const item_t *a, const item_t *b, bool *ok, int *r)
{
	struct val va, vb;
	struct fdate da, db;
	struct fdec na, nb;
	size_t n;
	int c;

	fp_item_val(a, &va);
	fp_item_val(b, &vb);
	*ok = false;
	if (va.k == V_NONE || vb.k == V_NONE)
		return GW_OK;
	c = as_dates(&va, &vb, &da, &db);
	if (c == 1) {
		*ok = fdate_cmp(&da, &db, r);
		return GW_OK;
	}
	if (c == -1)
		return fp_efail(x, GW_INVALID,
				"cannot compare a date with this "
				"value");
	if ((va.k == V_INT || va.k == V_DEC) &&
	    (vb.k == V_INT || vb.k == V_DEC)) {
		if (!to_fdec(&va, &na) || !to_fdec(&vb, &nb))
			return fp_efail(x, GW_INVALID, "number out of range");
		*r = fdec_cmp(&na, &nb);
		*ok = true;
		return GW_OK;
	}
	if (va.k == V_STR && vb.k == V_STR) {
		n = va.len < vb.len ? va.len : vb.len;
		c = memcmp(va.s, vb.s, n);
		*r = c != 0		? (c < 0 ? -1 : 1)
		     : va.len == vb.len ? 0
		     : va.len < vb.len	? -1
					: 1;
		*ok = true;
		return GW_OK;
	}
	return fp_efail(x, GW_INVALID,
			"values of these types cannot be ordered");
}

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n--)
		h = (h ^ *s++) * 1099511628211ull;
	return h;
}

static uint64_t
json_hash(const struct fj_node *n)
{
	uint64_t h = 14695981039346656037ull + (uint64_t)n->type;
	const struct fj_node *m;
	struct fdec d;

	switch (n->type) {
	case FJ_BOOL:
		return h + n->u.b;
	case FJ_NUMBER:
		if (fdec_parse(n->u.str.s, n->u.str.len, &d))
			return fnv(fnv(h, d.d, (size_t)d.nd), &d.e,
				   sizeof(d.e)) +
			       d.neg;
		return h;
	case FJ_STRING:
		return fnv(h, n->u.str.s, n->u.str.len);
	case FJ_ARRAY:
		for (m = n->u.kids.first; m; m = m->next)
			h = (h ^ json_hash(m)) * 1099511628211ull;
		return h;
	case FJ_OBJECT:
		for (m = n->u.kids.first; m; m = m->next)
			h += fnv(json_hash(m), m->key, m->keylen);
		return h;
	default:
		return h;
	}
}

/* A hash consistent with item_eq. */
static uint64_t
item_hash(const item_t *it)
{
	struct val v;
	struct fdec d;

	fp_item_val(it, &v);
	switch (v.k) {
	case V_OBJ:
		return json_hash(it->node);
	case V_BOOL:
		return 1 + v.b;
	case V_INT:
	case V_DEC:
		if (to_fdec(&v, &d))
			return fnv(fnv(3 + d.neg, d.d, (size_t)d.nd), &d.e,
				   sizeof(d.e));
		return 3;
	case V_STR:
	case V_DATE:
		/* dates equal across zones and notations: hash the year */
		if (v.len >= 4 && isdigit((unsigned char)v.s[0]) &&
		    isdigit((unsigned char)v.s[3]))
			return fnv(5, v.s, 4);
		return fnv(7, v.s, v.len);
	default:
		return 0;
	}
}

/* A hash set of item indexes over one collection. */
struct hset {
	const item_t *v;
	size_t nb;
	int32_t *head, *next;
	uint64_t *hash;
};

static enum gw_err
hset_init(struct ectx *x, struct hset *h, const struct coll *c)
{
	size_t i;

	h->v = c->v;
	h->nb = 16;
	while (h->nb < c->n * 2)
		h->nb *= 2;
	h->head = fp_ar_alloc(&x->ar, h->nb * sizeof(*h->head));
	h->next = fp_ar_alloc(&x->ar, (c->n + 1) * sizeof(*h->next));
	h->hash = fp_ar_alloc(&x->ar, (c->n + 1) * sizeof(*h->hash));
	if (!h->head || !h->next || !h->hash)
		return fp_enomem(x);
	for (i = 0; i < h->nb; i++)
		h->head[i] = -1;
	for (i = 0; i < c->n; i++)
		h->hash[i] = item_hash(&c->v[i]);
	return GW_OK;
}

static bool
hset_has(struct ectx *x, const struct hset *h, const item_t *it, uint64_t hv)
{
	int32_t k;

	for (k = h->head[hv & (h->nb - 1)]; k >= 0; k = h->next[k]) {
		x->steps++;
		if (h->hash[k] == hv &&
		    fp_item_eq(&h->v[k], it) == FHIRPATH_TRUE)
			return true;
	}
	return false;
}

static void
hset_add(struct hset *h, size_t i)
{
	size_t b = h->hash[i] & (h->nb - 1);

	h->next[i] = h->head[b];
	h->head[b] = (int32_t)i;
}

/* Items of c without repeats (first occurrence kept). */
enum gw_err
fp_distinct(struct ectx *x, const struct coll *c, struct coll *out)
{
	struct hset h;
	struct cb b = {0};
	size_t i;
	enum gw_err e;

	if (c->n < 2) {
		*out = *c;
		return GW_OK;
	}
	if ((e = hset_init(x, &h, c)) != GW_OK)
		return e;
	for (i = 0; i < c->n; i++) {
		if (hset_has(x, &h, &c->v[i], h.hash[i]))
			continue;
		hset_add(&h, i);
		if ((e = fp_cb_push(x, &b, &c->v[i])) != GW_OK)
			return e;
	}
	fp_cb_done(&b, out);
	return GW_OK;
}

/* Whether each item of a is in b (subsetOf), with an index of b. */
enum gw_err
fp_member_flags(struct ectx *x, const struct coll *a, const struct coll *b,
		bool **flags)
{
	struct hset h;
	size_t i;
	enum gw_err e;

	*flags = fp_ar_alloc(&x->ar, a->n + 1);
	if (!*flags)
		return fp_enomem(x);
	if ((e = hset_init(x, &h, b)) != GW_OK)
		return e;
	for (i = 0; i < b->n; i++)
		hset_add(&h, i);
	for (i = 0; i < a->n; i++)
		(*flags)[i] = hset_has(x, &h, &a->v[i], item_hash(&a->v[i]));
	if (x->steps > MAX_STEPS)
		return fp_efail(x, GW_TOOBIG, "evaluation takes too long");
	return GW_OK;
}

/* Collection to boolean for operators and criteria: EMPTY, or the one
 * boolean, or TRUE for one other item; GW_INVALID for several items. */
enum gw_err
fp_to_b3(struct ectx *x, const struct coll *c, enum fhirpath_bool *out)
{
	const item_t *it;

	*out = FHIRPATH_EMPTY;
	if (c->n == 0)
		return GW_OK;
	if (c->n > 1)
		return fp_efail(x, GW_INVALID,
				"a boolean was expected, got %zu "
				"items",
				c->n);
	it = &c->v[0];
	if (it->kind == FHIRPATH_BOOLEAN)
		*out = it->b ? FHIRPATH_TRUE : FHIRPATH_FALSE;
	else if (it->kind == FHIRPATH_NODE && it->node &&
		 it->node->type == FJ_BOOL)
		*out = it->node->u.b ? FHIRPATH_TRUE : FHIRPATH_FALSE;
	else
		*out = FHIRPATH_TRUE;
	return GW_OK;
}

/* The string value of a single item; *ok false when it has none. */
bool
fp_item_str(const item_t *it, const char **s, size_t *len)
{
	if (it->kind == FHIRPATH_STRING) {
		*s = it->text;
		*len = it->len;
		return true;
	}
	if (it->kind == FHIRPATH_NODE && it->node &&
	    it->node->type == FJ_STRING) {
		*s = it->node->u.str.s;
		*len = it->node->u.str.len;
		return true;
	}
	return false;
}

/* A single string from c: *empty when c is empty. */
enum gw_err
fp_single_str(struct ectx *x, const struct coll *c, const char *what,
	      const char **s, size_t *len, bool *empty)
{
	*s = "";
	*len = 0;
	*empty = c->n == 0;
	if (*empty)
		return GW_OK;
	if (c->n > 1)
		return fp_efail(x, GW_INVALID,
				"%s: one string expected, got %zu "
				"items",
				what, c->n);
	if (!fp_item_str(&c->v[0], s, len)) {
		*empty = true; /* not a string (or only an extension) */
		if (c->v[0].kind == FHIRPATH_NODE && !c->v[0].node)
			return GW_OK;
		return fp_efail(x, GW_INVALID, "%s: a string is expected",
				what);
	}
	return GW_OK;
}

enum gw_err
fp_single_int(struct ectx *x, const struct coll *c, const char *what,
	      int64_t *v, bool *empty)
{
	struct val vv;

	*v = 0;
	*empty = c->n == 0;
	if (*empty)
		return GW_OK;
	if (c->n > 1)
		return fp_efail(x, GW_INVALID, "%s: one integer expected",
				what);
	fp_item_val(&c->v[0], &vv);
	if (vv.k != V_INT)
		return fp_efail(x, GW_INVALID, "%s: an integer is expected",
				what);
	*v = vv.i;
	return GW_OK;
}
