/*
 * fhirpath_eval: the evaluator (operators, arithmetic, paths) and the
 * public evaluation API (fhirpath_eval, fhirpath_eval_bool, results).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdecimal.h"
#include "fhirpath_impl.h"

/* ---------------------------------------------------------------- eval */

static enum gw_err ev(struct ectx *x, const struct ast *a,
		      const struct coll *in, struct coll *out);

static enum gw_err
arith(struct ectx *x, int op, const struct coll *l, const struct coll *r,
      struct coll *out)
{
	struct val a, b;
	int64_t v;
	double da, db, dv;
	char tmp[64];

	out->n = 0;
	if (l->n == 0 || r->n == 0)
		return GW_OK;
	if (l->n > 1 || r->n > 1)
		return fp_efail(x, GW_INVALID, "arithmetic on a collection");
	fp_item_val(&l->v[0], &a);
	fp_item_val(&r->v[0], &b);
	if (op == T_PLUS && a.k == V_STR && b.k == V_STR) {
		char *s;

		if (a.len + b.len > FHIRPATH_MAX_MEMORY / 4)
			return fp_efail(x, GW_TOOBIG, "string too long");
		s = fp_ar_alloc(&x->ar, a.len + b.len + 1);
		if (!s)
			return fp_enomem(x);
		memcpy(s, a.s, a.len);
		memcpy(s + a.len, b.s, b.len);
		s[a.len + b.len] = '\0';
		return fp_one_str(x, FHIRPATH_STRING, s, a.len + b.len, false,
				  out);
	}
	if ((a.k != V_INT && a.k != V_DEC) || (b.k != V_INT && b.k != V_DEC))
		return fp_efail(x, GW_INVALID,
				"arithmetic on values of these types "
				"is not supported");
	if (a.k == V_INT && b.k == V_INT && op != T_SLASH) {
		switch (op) {
		case T_PLUS:
			if (__builtin_add_overflow(a.i, b.i, &v))
				return GW_OK;
			break;
		case T_MINUS:
			if (__builtin_sub_overflow(a.i, b.i, &v))
				return GW_OK;
			break;
		case T_STAR:
			if (__builtin_mul_overflow(a.i, b.i, &v))
				return GW_OK;
			break;
		default: /* div, mod */
			if (b.i == 0 || (a.i == INT64_MIN && b.i == -1))
				return GW_OK;
			v = op == T_DIV ? a.i / b.i : a.i % b.i;
		}
		return fp_one_int(x, v, out);
	}
	/* decimals: double arithmetic, printed back with 15 digits */
	da = a.k == V_INT ? (double)a.i : strtod(a.s, NULL);
	db = b.k == V_INT ? (double)b.i : strtod(b.s, NULL);
	switch (op) {
	case T_PLUS:
		dv = da + db;
		break;
	case T_MINUS:
		dv = da - db;
		break;
	case T_STAR:
		dv = da * db;
		break;
	case T_SLASH:
		if (db == 0)
			return GW_OK;
		dv = da / db;
		break;
	case T_DIV:
		if (db == 0)
			return GW_OK;
		dv = da / db;
		/* The Integer result of div must fit: a quotient out of range
		 * (or NaN from infinite operands) is empty, as for an Integer
		 * overflow. Converting it would be undefined behaviour. The
		 * negated test also catches NaN. */
		if (!(dv < 9e18 && dv > -9e18))
			return GW_OK;
		return fp_one_int(x, (int64_t)dv, out);
	default:
		if (db == 0)
			return GW_OK;
		/* Truncated remainder without forming the truncated quotient
		 * as an integer, which need not fit in 64 bits; fmod is exact
		 * and its result is smaller than |db|. */
		dv = fmod(da, db);
	}
	if (dv != dv || dv > 1e300 || dv < -1e300)
		return GW_OK;
	if (!fdec_format_double(dv, tmp, sizeof(tmp)))
		return fp_efail(x, GW_INVALID, "decimal out of range");
	return fp_one_str(x, FHIRPATH_DECIMAL, tmp, strlen(tmp), true, out);
}

/* & : concatenation treating empty as ''. */
static enum gw_err
concat(struct ectx *x, const struct coll *l, const struct coll *r,
       struct coll *out)
{
	const char *a = "", *b = "";
	size_t an = 0, bn = 0;
	bool empty;
	char *s;
	enum gw_err e;

	if ((e = fp_single_str(x, l, "&", &a, &an, &empty)) != GW_OK)
		return e;
	if (empty)
		a = "", an = 0;
	if ((e = fp_single_str(x, r, "&", &b, &bn, &empty)) != GW_OK)
		return e;
	if (empty)
		b = "", bn = 0;
	if (an + bn > FHIRPATH_MAX_MEMORY / 4)
		return fp_efail(x, GW_TOOBIG, "string too long");
	s = fp_ar_alloc(&x->ar, an + bn + 1);
	if (!s)
		return fp_enomem(x);
	memcpy(s, a, an);
	memcpy(s + an, b, bn);
	s[an + bn] = '\0';
	return fp_one_str(x, FHIRPATH_STRING, s, an + bn, false, out);
}

static enum gw_err
ev_bin(struct ectx *x, const struct ast *a, const struct coll *in,
       struct coll *out)
{
	struct coll l, r;
	enum fhirpath_bool bl, br, res;
	enum gw_err e;
	size_t i;
	int c;
	bool ok;

	out->n = 0;
	out->v = NULL;
	if ((e = ev(x, a->l, in, &l)) != GW_OK)
		return e;
	/* and/or/implies: the right side is not needed on some values */
	if (a->op == T_AND || a->op == T_OR || a->op == T_IMPLIES ||
	    a->op == T_XOR) {
		if ((e = fp_to_b3(x, &l, &bl)) != GW_OK)
			return e;
		if ((a->op == T_AND && bl == FHIRPATH_FALSE) ||
		    (a->op == T_OR && bl == FHIRPATH_TRUE))
			return fp_one_b3(x, bl, out);
		if (a->op == T_IMPLIES && bl == FHIRPATH_FALSE)
			return fp_one_bool(x, true, out);
		if ((e = ev(x, a->r, in, &r)) != GW_OK ||
		    (e = fp_to_b3(x, &r, &br)) != GW_OK)
			return e;
		switch (a->op) {
		case T_AND:
			res = br == FHIRPATH_FALSE ? FHIRPATH_FALSE
			      : (bl == FHIRPATH_TRUE && br == FHIRPATH_TRUE)
				  ? FHIRPATH_TRUE
				  : FHIRPATH_EMPTY;
			break;
		case T_OR:
			res = br == FHIRPATH_TRUE ? FHIRPATH_TRUE
			      : (bl == FHIRPATH_FALSE && br == FHIRPATH_FALSE)
				  ? FHIRPATH_FALSE
				  : FHIRPATH_EMPTY;
			break;
		case T_XOR:
			res = (bl == FHIRPATH_EMPTY || br == FHIRPATH_EMPTY)
				  ? FHIRPATH_EMPTY
			      : bl != br ? FHIRPATH_TRUE
					 : FHIRPATH_FALSE;
			break;
		default: /* implies, left true or empty */
			res = br == FHIRPATH_TRUE   ? FHIRPATH_TRUE
			      : bl == FHIRPATH_TRUE ? br
						    : FHIRPATH_EMPTY;
		}
		return fp_one_b3(x, res, out);
	}
	if ((e = ev(x, a->r, in, &r)) != GW_OK)
		return e;
	switch (a->op) {
	case T_PIPE: {
		struct cb b = {0};
		struct coll u;

		if ((e = fp_cb_append(x, &b, &l)) != GW_OK ||
		    (e = fp_cb_append(x, &b, &r)) != GW_OK)
			return e;
		fp_cb_done(&b, &u);
		return fp_distinct(x, &u, out);
	}
	case T_EQ:
	case T_NE:
		if (l.n == 0 || r.n == 0)
			return GW_OK;
		res = FHIRPATH_TRUE;
		if (l.n != r.n)
			res = FHIRPATH_FALSE;
		for (i = 0; i < l.n && res != FHIRPATH_FALSE; i++) {
			enum fhirpath_bool q = fp_item_eq(&l.v[i], &r.v[i]);

			if (q != FHIRPATH_TRUE)
				res = q;
		}
		if (a->op == T_NE && res != FHIRPATH_EMPTY)
			res = res == FHIRPATH_TRUE ? FHIRPATH_FALSE
						   : FHIRPATH_TRUE;
		return fp_one_b3(x, res, out);
	case T_EQUIV:
	case T_NEQUIV:
		ok = l.n == r.n;
		for (i = 0; i < l.n && ok; i++) {
			size_t j;

			for (j = 0; j < r.n; j++)
				if (fp_item_equiv(&l.v[i], &r.v[j]))
					break;
			ok = j < r.n;
		}
		return fp_one_bool(x, a->op == T_EQUIV ? ok : !ok, out);
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
		if (l.n == 0 || r.n == 0)
			return GW_OK;
		if (l.n > 1 || r.n > 1)
			return fp_efail(x, GW_INVALID,
					"comparison of a "
					"collection");
		if ((e = fp_item_cmp(x, &l.v[0], &r.v[0], &ok, &c)) != GW_OK ||
		    !ok)
			return e;
		return fp_one_bool(x,
				   a->op == T_LT   ? c < 0
				   : a->op == T_LE ? c <= 0
				   : a->op == T_GT ? c > 0
						   : c >= 0,
				   out);
	case T_IN:
	case T_CONTAINS: {
		const struct coll *item = a->op == T_IN ? &l : &r;
		const struct coll *set = a->op == T_IN ? &r : &l;

		if (item->n == 0)
			return GW_OK;
		if (item->n > 1)
			return fp_efail(x, GW_INVALID,
					"'%s' with several items",
					a->op == T_IN ? "in" : "contains");
		for (i = 0; i < set->n; i++)
			if (fp_item_eq(&item->v[0], &set->v[i]) ==
			    FHIRPATH_TRUE)
				return fp_one_bool(x, true, out);
		return fp_one_bool(x, false, out);
	}
	case T_AMP:
		return concat(x, &l, &r, out);
	default:
		return arith(x, a->op, &l, &r, out);
	}
}

static enum gw_err
ev(struct ectx *x, const struct ast *a, const struct coll *in, struct coll *out)
{
	struct cb b = {0};
	struct coll c, idx;
	size_t i;
	int64_t k;
	bool empty, r;
	enum gw_err e;

	out->n = 0;
	out->v = NULL;
	if (++x->steps > MAX_STEPS)
		return fp_efail(x, GW_TOOBIG, "evaluation takes too long");
	switch (a->k) {
	case N_LIT:
		return fp_one(x, &a->lit, out);
	case N_EMPTY:
		return GW_OK;
	case N_THIS:
		*out = x->thisc;
		return GW_OK;
	case N_INDEX:
		return fp_one_int(x, x->index, out);
	case N_VAR:
		*out = a->op == VAR_RESOURCE ? x->resource
		       : a->op == VAR_ROOT   ? x->root
					     : x->context;
		return GW_OK;
	case N_MEMBER:
		for (i = 0; i < in->n; i++) {
			const item_t *it = &in->v[i];

			/* A type name at the start of a path selects the
			 * focus when it has that type (Patient.name). */
			if (isupper((unsigned char)a->name[0])) {
				const char *t = fp_item_type(it);

				if (t && fp_fhir_type_is(t, a->name) &&
				    (e = fp_cb_push(x, &b, it)) != GW_OK)
					return e;
				continue;
			}
			if ((e = fp_nav_member(x, it, a->name, a->namelen,
					       &b)) != GW_OK)
				return e;
		}
		fp_cb_done(&b, out);
		return GW_OK;
	case N_FUNC:
		return fp_ev_func(x, a, in, out);
	case N_DOT:
		if ((e = ev(x, a->l, in, &c)) != GW_OK)
			return e;
		return ev(x, a->r, &c, out);
	case N_INDEXER:
		if ((e = ev(x, a->l, in, &c)) != GW_OK ||
		    (e = ev(x, a->r, in, &idx)) != GW_OK ||
		    (e = fp_single_int(x, &idx, "[]", &k, &empty)) != GW_OK)
			return e;
		if (!empty && k >= 0 && (uint64_t)k < c.n)
			return fp_one(x, &c.v[k], out);
		return GW_OK;
	case N_NEG: {
		struct coll zero;
		item_t z;

		struct val v;

		if ((e = ev(x, a->l, in, &c)) != GW_OK)
			return e;
		if (c.n == 1) {
			fp_item_val(&c.v[0], &v);
			if (v.k == V_DEC && v.len > 0 && v.len < 64) {
				/* keep the decimal's digits: flip the sign */
				char t[72];

				if (v.s[0] == '-' || v.s[0] == '+')
					snprintf(t, sizeof(t), "%.*s",
						 (int)v.len - 1, v.s + 1);
				else
					snprintf(t, sizeof(t), "-%.*s",
						 (int)v.len, v.s);
				return fp_one_str(x, FHIRPATH_DECIMAL, t,
						  strlen(t), true, out);
			}
		}
		memset(&z, 0, sizeof(z));
		z.kind = FHIRPATH_INTEGER;
		zero.v = &z;
		zero.n = 1;
		return arith(x, T_MINUS, &zero, &c, out);
	}
	case N_BIN:
		return ev_bin(x, a, in, out);
	case N_TYPE:
		if ((e = ev(x, a->l, in, &c)) != GW_OK)
			return e;
		if (a->op == T_IS) {
			if (c.n == 0)
				return GW_OK;
			if (c.n > 1)
				return fp_efail(x, GW_INVALID,
						"'is' on several items");
			if ((e = fp_type_is(x, &c.v[0], a->name, &r)) != GW_OK)
				return e;
			return fp_one_bool(x, r, out);
		}
		for (i = 0; i < c.n; i++) {
			if ((e = fp_type_is(x, &c.v[i], a->name, &r)) != GW_OK)
				return e;
			if (r && (e = fp_cb_push(x, &b, &c.v[i])) != GW_OK)
				return e;
		}
		fp_cb_done(&b, out);
		return GW_OK;
	}
	return fp_efail(x, GW_INVALID, "internal: unknown node");
}

/* ---------------------------------------------------------------- API */

struct fhirpath_result {
	struct arena ar;
	struct coll c;
};

static enum gw_err
node_coll(struct ectx *x, const struct fj_node *n, const char *type,
	  struct coll *out)
{
	item_t it;

	out->n = 0;
	out->v = NULL;
	if (!n || n->type == FJ_NULL)
		return GW_OK;
	if (n->type == FJ_ARRAY) {
		/* a repeating element given whole: its items */
		struct cb b = {0};
		enum gw_err e = fp_emit_member(x, n, NULL, type, &b);

		fp_cb_done(&b, out);
		return e;
	}
	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_NODE;
	it.node = n;
	it.type = fp_node_rtype(n);
	if (!it.type)
		it.type = type;
	return fp_one(x, &it, out);
}

static enum gw_err
run(const struct fhirpath *fp, const struct fj_node *focus,
    const char *focus_type, const struct fhirpath_env *env, struct ectx *x,
    struct coll *out)
{
	enum gw_err e;
	const struct fj_node *root;
	const char *root_type;

	x->env = env;
	x->ev = ev;
	if (env) {
		x->errbuf = env->errbuf;
		x->errlen = env->errlen;
		if (x->errbuf && x->errlen)
			x->errbuf[0] = '\0';
	}
	if ((e = node_coll(x, focus, focus_type, &x->context)) != GW_OK)
		return e;
	if (env && env->focus_ext && env->focus_ext->type == FJ_OBJECT) {
		item_t it;

		memset(&it, 0, sizeof(it));
		it.kind = FHIRPATH_NODE;
		it.node = focus;
		it.ext = env->focus_ext;
		it.type = focus_type;
		if ((e = fp_one(x, &it, &x->context)) != GW_OK)
			return e;
	}
	x->thisc = x->context;
	if (env && env->resource) {
		root = env->root_resource ? env->root_resource : env->resource;
		root_type = env->root_resource ? env->root_resource_type
					       : env->resource_type;
		if ((e = node_coll(x, env->resource, env->resource_type,
				   &x->resource)) != GW_OK ||
		    (e = node_coll(x, root, root_type, &x->root)) != GW_OK)
			return e;
	} else if (fp_node_rtype(focus)) {
		/* no environment: the focus is the resource */
		x->resource = x->context;
		x->root = x->context;
	}
	return ev(x, fp->root, &x->context, out);
}

enum gw_err
fhirpath_eval(const struct fhirpath *fp, const struct fj_node *focus,
	      const char *focus_type, const struct fhirpath_env *env,
	      struct fhirpath_result **out)
{
	struct fhirpath_result *r;
	struct ectx x;
	enum gw_err e;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return GW_NOMEM;
	memset(&x, 0, sizeof(x));
	fp_ar_init(&x.ar, NULL, 0, FHIRPATH_MAX_MEMORY);
	e = run(fp, focus, focus_type, env, &x, &r->c);
	r->ar = x.ar;
	if (e != GW_OK) {
		fhirpath_result_free(r);
		return e;
	}
	*out = r;
	return GW_OK;
}

enum gw_err
fhirpath_eval_bool(const struct fhirpath *fp, const struct fj_node *focus,
		   const char *focus_type, const struct fhirpath_env *env,
		   enum fhirpath_bool *out)
{
	/* most invariants fit in this first block: no malloc at all */
	_Alignas(16) char first[8192];
	struct ectx x;
	struct coll c;
	enum gw_err e;

	*out = FHIRPATH_EMPTY;
	memset(&x, 0, sizeof(x));
	fp_ar_init(&x.ar, first, sizeof(first), FHIRPATH_MAX_MEMORY);
	e = run(fp, focus, focus_type, env, &x, &c);
	if (e == GW_OK && c.n > 1)
		e = fp_efail(&x, GW_INVALID,
			     "the result has %zu items, not one boolean", c.n);
	if (e == GW_OK)
		e = fp_to_b3(&x, &c, out);
	fp_ar_cleanup(&x.ar);
	return e;
}

size_t
fhirpath_result_count(const struct fhirpath_result *r)
{
	return r->c.n;
}

const struct fhirpath_item *
fhirpath_result_item(const struct fhirpath_result *r, size_t i)
{
	return i < r->c.n ? &r->c.v[i] : NULL;
}

static enum gw_err
dump_str(struct buf *out, const char *s, size_t n)
{
	enum gw_err e = buf_addc(out, '\'');
	size_t i;

	for (i = 0; i < n && e == GW_OK; i++) {
		if (s[i] == '\'' || s[i] == '\\')
			e = buf_addc(out, '\\');
		if (e == GW_OK)
			e = buf_addc(out, s[i]);
	}
	return e == GW_OK ? buf_addc(out, '\'') : e;
}

enum gw_err
fhirpath_result_dump(const struct fhirpath_result *r, struct buf *out)
{
	enum gw_err e = buf_addc(out, '[');
	size_t i;

	for (i = 0; i < r->c.n && e == GW_OK; i++) {
		const item_t *it = &r->c.v[i];

		if (i)
			e = buf_adds(out, ", ");
		if (e != GW_OK)
			break;
		switch (it->kind) {
		case FHIRPATH_BOOLEAN:
			e = buf_adds(out, it->b ? "true" : "false");
			break;
		case FHIRPATH_INTEGER:
			e = buf_printf(out, "%lld", (long long)it->i);
			break;
		case FHIRPATH_DECIMAL:
			e = buf_add(out, it->text, it->len);
			break;
		case FHIRPATH_STRING:
			e = dump_str(out, it->text, it->len);
			break;
		case FHIRPATH_DATE:
		case FHIRPATH_DATETIME:
			e = buf_printf(out, "@%s", it->text);
			break;
		case FHIRPATH_TIME:
			e = buf_printf(out, "@T%s", it->text);
			break;
		case FHIRPATH_NODE:
			if (!it->node)
				e = buf_adds(out, "<no value>");
			else if (it->node->type == FJ_STRING)
				e = dump_str(out, it->node->u.str.s,
					     it->node->u.str.len);
			else
				e = fj_dump(it->node, FJ_CANONICAL, out);
			break;
		}
	}
	return e == GW_OK ? buf_addc(out, ']') : e;
}

void
fhirpath_result_free(struct fhirpath_result *r)
{
	if (!r)
		return;
	fp_ar_cleanup(&r->ar);
	free(r);
}
