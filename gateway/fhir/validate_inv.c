/*
 * validate_inv: invariants (constraint expressions) evaluated with
 * fhirpath.h, with the callbacks FHIRPath needs: resolve(), memberOf() and
 * the types of members.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "validate_impl.h"

char v_fp_bad; /* marker: expression could not be compiled */

/* ---- invariants ---- */

struct vfp_env {
	struct vrun *r;
};

static enum gw_err
fp_resolve(void *arg, const char *reference, const struct fj_node **out,
	   const char **out_type)
{
	struct vrun *r = arg;

	*out = NULL;
	if (reference[0] == '#')
		*out = r->resource != NULL
			   ? v_find_contained(r->resource, reference + 1)
			   : NULL;
	else
		*out = v_resolve_ref(r, reference);
	return GW_OK;
}

enum gw_err
v_fp_member_of(void *arg, const struct fj_node *node, const char *type,
	       const char *valueset, bool *out)
{
	struct vrun *r = arg;
	const struct rules_valueset *vs;
	const char *code, *system;
	char url[512];
	const char *bar = strchr(valueset, '|');

	snprintf(
	    url, sizeof(url), "%.*s",
	    (int)(bar != NULL ? (size_t)(bar - valueset) : strlen(valueset)),
	    valueset);
	if ((vs = rules_valueset(r->ctx->set, url)) == NULL || !vs->complete)
		return GW_INVALID;
	*out = false;
	if (node->type == FJ_STRING) {
		*out = vs_has_code(vs, node->u.str.s);
		return GW_OK;
	}
	if (node->type != FJ_OBJECT)
		return GW_OK;
	if ((code = fj_get_str(node, "code")) != NULL) {
		system = fj_get_str(node, "system");
		*out = system != NULL ? rules_valueset_has(vs, system, code)
				      : vs_has_code(vs, code);
		return GW_OK;
	}
	(void)type;
	{
		const struct fj_node *c = fj_get(node, "coding");

		for (c = c != NULL && c->type == FJ_ARRAY ? c->u.kids.first
							  : NULL;
		     c != NULL; c = c->next) {
			code = fj_get_str(c, "code");
			system = fj_get_str(c, "system");
			if (code != NULL && system != NULL &&
			    rules_valueset_has(vs, system, code))
				*out = true;
		}
	}
	return GW_OK;
}

static const char *type_of_uncached(struct vrun *r, const char *parent_type,
				    const char *member);

static char type_none; /* ctx->types_of marker: no type known */

/* FHIRPath type callback: the FHIR type of member of a parent of type
 * parent_type, remembered per context by the two names (the answer
 * depends on nothing else; every member an invariant navigates asks). */
static const char *
fp_type_of(void *arg, const struct fj_node *parent, const char *parent_type,
	   const char *member)
{
	struct vrun *r = arg;
	char key[256];
	size_t pl, ml;
	const char *t;
	bool found;
	void *hit;

	(void)parent;
	if (parent_type == NULL || member == NULL)
		return NULL;
	pl = strlen(parent_type);
	ml = strlen(member);
	if (pl + ml + 2 > sizeof(key))
		return type_of_uncached(r, parent_type, member);
	memcpy(key, parent_type, pl);
	key[pl] = '\x1f';
	memcpy(key + pl + 1, member, ml + 1);
	hit = hmap_get(&r->ctx->types_of, key, &found);
	if (found)
		return hit == (void *)&type_none ? NULL : hit;
	t = type_of_uncached(r, parent_type, member);
	/* without memory the answer is still right, only not kept; the
	 * names come from documents too (a member's key, a resourceType),
	 * so the memo of a long-lived context stops growing at a bound */
	if (r->ctx->types_of.count < V_TYPES_OF_MAX)
		(void)hmap_put(&r->ctx->types_of, key,
			       t != NULL ? (void *)(uintptr_t)t
					 : (void *)&type_none);
	return t;
}

/* The FHIR type of member of a parent of type parent_type
 * ("Observation", "CodeableConcept", or a backbone element's path such as
 * "Bundle.entry"), from the base definitions. */
static const char *
type_of_uncached(struct vrun *r, const char *parent_type, const char *member)
{
	static const char *const sys[][2] = {
	    {"String", "string"},   {"Boolean", "boolean"},
	    {"Integer", "integer"}, {"Decimal", "decimal"},
	    {"Date", "date"},	    {"DateTime", "dateTime"},
	    {"Time", "time"},
	};
	const struct vtype *t;
	const struct vnode *kd, *k;
	const char *dot, *type = NULL, *code;
	char head[128];
	size_t hl;

	dot = strchr(parent_type, '.');
	/* A copy, not snprintf: this runs for every member a FHIRPath
	 * invariant navigates. */
	hl = dot != NULL ? (size_t)(dot - parent_type) : strlen(parent_type);
	if (hl >= sizeof(head))
		hl = sizeof(head) - 1;
	memcpy(head, parent_type, hl);
	head[hl] = '\0';
	/* a type the rules do not know has no members to look up (and the
	 * name may come from a document: not for the type cache) */
	if (rules_type(r->ctx->set, head) == NULL ||
	    (t = v_vtype_get(r->ctx, head)) == NULL || t->vs == NULL)
		return NULL;
	kd = t->vs->root;
	while (dot != NULL && kd != NULL) {
		const char *seg = dot + 1;
		const struct vnode *next = NULL;
		size_t sl;

		dot = strchr(seg, '.');
		sl = dot != NULL ? (size_t)(dot - seg) : strlen(seg);
		kd = v_kids_of(kd);
		for (size_t i = 0; i < kd->nkids; i++)
			if (strncmp(kd->kids[i]->name, seg, sl) == 0 &&
			    kd->kids[i]->name[sl] == '\0')
				next = kd->kids[i];
		kd = next;
	}
	if (kd == NULL)
		return NULL;
	kd = v_kids_of(kd);
	if ((k = v_find_kid(kd->kids, kd->nkids, member, &type)) == NULL)
		return NULL;
	if (type != NULL)
		return type;
	if (k->ref != NULL)
		return k->ref->el->path;
	if (k->el->ntypes != 1)
		return NULL;
	code = k->el->types[0].code;
	if (strcmp(code, "BackboneElement") == 0 ||
	    strcmp(code, "Element") == 0)
		return k->el->path;
	if (strncmp(code, "http://hl7.org/fhirpath/System.", 31) == 0) {
		for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
			if (strcmp(code + 31, sys[i][0]) == 0)
				return sys[i][1];
		return "string";
	}
	return code;
}

/* Keys checked natively by the walker (structure rules). */
static bool
native_constraint(const char *key)
{
	return strcmp(key, "ele-1") == 0 || strcmp(key, "ext-1") == 0 ||
	       strcmp(key, "bdl-7") == 0 || strcmp(key, "ref-1") == 0 ||
	       strcmp(key, "txt-1") == 0 || strcmp(key, "txt-2") == 0;
}

/*
 * The resource invariants about contained resources (dom-2 to dom-5, R4
 * and STU3 texts): each starts from the resource's `contained`, so on a
 * resource without it each holds (an empty collection is empty; `and` of
 * two such; trace of nothing is nothing), and evaluating them, about a
 * third of the invariants of a message, decides nothing. Matched by the
 * whole expression text, so any other rule is still evaluated.
 */
static const char *const contained_only[] = {
    "contained.contained.empty()",
    "contained.meta.security.empty()",
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empt"
    "y()",
    "contained.where(('#'+id in %resource.descendants().reference).not())"
    ".empty()",
    "contained.where((('#'+id in (%resource.descendants().reference | %re"
    "source.descendants().as(canonical) | %resource.descendants().as(uri)"
    " | %resource.descendants().as(url))) or descendants().where(referenc"
    "e = '#').exists() or descendants().where(as(canonical) = '#').exists"
    "() or descendants().where(as(canonical) = '#').exists()).not()).trac"
    "e('unmatched', id).empty()",
    NULL,
};

/* Whether c is one of the contained-only invariants (above). */
static bool
is_contained_only(const struct rules_constraint *c)
{
	if (strncmp(c->key, "dom-", 4) != 0)
		return false;
	for (size_t i = 0; contained_only[i] != NULL; i++)
		if (strcmp(c->expression, contained_only[i]) == 0)
			return true;
	return false;
}

static void
not_evaluated(struct vrun *r, const struct rules_constraint *c,
	      const struct fj_node *at, const char *why)
{
	bool found;
	size_t old;

	hmap_get(&r->noteval, c->key, &found);
	if (found || r->scratch)
		return;
	if (hmap_put(&r->noteval, c->key, NULL) != GW_OK) {
		r->nomem = true;
		return;
	}
	/* once per key, where it was first met */
	old = r->plen;
	v_issue(r, FHIR_INFORMATION, "not-supported", at,
		"invariant %s was not evaluated: %s [%s]", c->key, why,
		c->expression != NULL ? c->expression : "");
	v_path_pop(r, old);
}

/* ---- invariants decided without the evaluator ---- */

/* Length of the top-level operator word at p (" or ", " implies ", " and
 * ", " xor "), 0 when there is none; *op is its first letter. */
static size_t
top_op(const char *p, char *op)
{
	static const char *const words[] = {" or ", " implies ", " and ",
					    " xor "};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i]);

		if (strncmp(p, words[i], n) == 0) {
			*op = words[i][1];
			return n;
		}
	}
	return 0;
}

static bool
is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '$' || c == '%' ||
	       c == '.';
}

/* Whether an operator word (or, and, xor, implies) starts at s (in
 * expression e) without a space on both sides: the plan splits at " op "
 * only, so such an expression gets none. */
static bool
is_op_word(const char *e, const char *s)
{
	static const char *const ops[] = {"or", "and", "xor", "implies"};

	if (s > e && is_word_char(s[-1]))
		return false;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = strlen(ops[i]);

		if (strncmp(s, ops[i], n) == 0 && !is_word_char(s[n]))
			return s == e || s[-1] != ' ' || s[n] != ' ';
	}
	return false;
}

static bool
is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

/* Whether s (n bytes) is ".exists()" or ".empty()"; sets a->empty. */
static bool
fn_suffix(const char *s, size_t n, struct vatom *a)
{
	if (n == 9 && strncmp(s, ".exists()", 9) == 0)
		a->empty = false;
	else if (n == 8 && strncmp(s, ".empty()", 8) == 0)
		a->empty = true;
	else
		return false;
	return true;
}

/* Whether term t (n bytes, no outer blanks) is "name.exists()" or
 * "name.empty()" with name a plain lower-case member name (an upper-case
 * one is a type filter in FHIRPath); fills *a. */
static bool
atom_parse(const char *t, size_t n, struct vatom *a)
{
	static const char *const kw[] = {"and", "or",  "xor",  "implies",
					 "is",	"as",  "in",   "contains",
					 "div", "mod", "true", "false"};
	size_t k = 0;

	while (n >= 2 && t[0] == '(' && t[n - 1] == ')') {
		/* one pair of parentheses around the whole term */
		int depth = 0;
		bool whole = true;

		for (size_t i = 0; i < n && whole; i++) {
			depth += t[i] == '(' ? 1 : t[i] == ')' ? -1 : 0;
			whole = depth > 0 || i == n - 1;
		}
		if (!whole)
			break;
		t++;
		n -= 2;
	}
	if (n == 0 || t[0] < 'a' || t[0] > 'z')
		return false;
	while (k < n &&
	       ((t[k] >= 'a' && t[k] <= 'z') || (t[k] >= 'A' && t[k] <= 'Z') ||
		(t[k] >= '0' && t[k] <= '9')))
		k++;
	if (k == 0 || k > 255)
		return false;
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if (strlen(kw[i]) == k && strncmp(t, kw[i], k) == 0)
			return false;
	a->name = t;
	a->len = (unsigned char)k;
	a->name2 = NULL;
	a->len2 = 0;
	if (fn_suffix(t + k, n - k, a))
		return true;
	/* a second step: ".name2" or ".`name2`" (a delimited name, such as
	 * text.`div`) */
	if (n - k < 2 || t[k] != '.')
		return false;
	t += k + 1;
	n -= k + 1;
	k = 0;
	if (t[0] == '`') {
		k = 1;
		while (k < n && is_name_char(t[k]))
			k++;
		if (k == 1 || k >= n || t[k] != '`' || k - 1 > 255)
			return false;
		a->name2 = t + 1;
		a->len2 = (unsigned char)(k - 1);
		k++;
	} else {
		while (k < n && is_name_char(t[k]))
			k++;
		if (k == 0 || k > 255 || t[0] < 'a' || t[0] > 'z')
			return false;
		for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
			if (strlen(kw[i]) == k && strncmp(t, kw[i], k) == 0)
				return false;
		a->name2 = t;
		a->len2 = (unsigned char)k;
	}
	return fn_suffix(t + k, n - k, a);
}

/* Whether term t (n bytes) is "name.contains('lit').not()" (lit without
 * quotes or backslashes, not empty); fills p's right side. */
static bool
rhs_parse(const char *t, size_t n, struct vplan *p)
{
	static const char mid[] = ".contains('", tail[] = "').not()";
	size_t k = 0, ml = sizeof(mid) - 1, tl = sizeof(tail) - 1, ll;

	while (k < n &&
	       ((t[k] >= 'a' && t[k] <= 'z') || (t[k] >= 'A' && t[k] <= 'Z') ||
		(t[k] >= '0' && t[k] <= '9')))
		k++;
	if (k == 0 || k > 255 || t[0] < 'a' || t[0] > 'z' ||
	    n < k + ml + tl + 1 || strncmp(t + k, mid, ml) != 0 ||
	    strncmp(t + n - tl, tail, tl) != 0)
		return false;
	ll = n - k - ml - tl;
	if (ll > 255 || memchr(t + k + ml, '\'', ll) != NULL ||
	    memchr(t + k + ml, '\\', ll) != NULL)
		return false;
	p->rname = t;
	p->rlen = (unsigned char)k;
	p->rlit = t + k + ml;
	p->rlitlen = (unsigned char)ll;
	return true;
}

static int atom_exists(const struct fj_node *v, const struct vatom *a);

/* bdl-3 and bdl-4 (R4 core, matched by their whole text): on a Bundle of
 * 20 entries each cost as much as the rest of the Bundle's invariants. */
static const char bdl3[] =
    "entry.all(request.exists() = (%resource.type = 'batch' or "
    "%resource.type = 'transaction' or %resource.type = 'history'))";
static const char bdl4[] =
    "entry.all(response.exists() = (%resource.type = 'batch-response' or "
    "%resource.type = 'transaction-response' or %resource.type = "
    "'history'))";
static const char *const bdl3_types[] = {"batch", "transaction", "history",
					 NULL};
static const char *const bdl4_types[] = {
    "batch-response", "transaction-response", "history", NULL};

/* Whether object v has a member whose name is name followed by an
 * upper-case letter, or its _ part: a choice element the evaluator might
 * take for name. */
static bool
has_choice_key(const struct fj_node *v, const char *name, size_t len)
{
	for (const struct fj_node *m = v->u.kids.first; m != NULL;
	     m = m->next) {
		size_t off = m->key[0] == '_' ? 1 : 0;

		if (m->keylen > len + off &&
		    memcmp(m->key + off, name, len) == 0 &&
		    m->key[off + len] >= 'A' && m->key[off + len] <= 'Z')
			return true;
	}
	return false;
}

/* bdl-3/bdl-4 on Bundle v (also %resource), as the evaluator computes
 * them, where the members are plain: "type" one JSON string or absent,
 * "entry" an array of objects or absent, no _type/_entry parts and no
 * member the evaluator could take for them; else FHIRPATH_EMPTY. */
static enum fhirpath_bool
entry_all_eval(const struct vplan *p, const struct fj_node *v)
{
	const struct fj_node *type = NULL, *entry = NULL, *m;
	bool want = false;
	size_t ml = strlen(p->entry_member);

	for (m = v->u.kids.first; m != NULL; m = m->next) {
		if (strcmp(m->key, "type") == 0)
			type = m;
		else if (strcmp(m->key, "entry") == 0)
			entry = m;
		else if (strcmp(m->key, "_type") == 0 ||
			 strcmp(m->key, "_entry") == 0)
			return FHIRPATH_EMPTY;
	}
	if (has_choice_key(v, "type", 4) || has_choice_key(v, "entry", 5) ||
	    (type != NULL && type->type != FJ_STRING) ||
	    (entry != NULL && entry->type != FJ_ARRAY))
		return FHIRPATH_EMPTY;
	if (entry == NULL)
		return FHIRPATH_TRUE; /* all() of nothing */
	if (type == NULL)	      /* the comparison is empty: all() fails */
		return entry->u.kids.count == 0 ? FHIRPATH_TRUE
						: FHIRPATH_FALSE;
	for (size_t i = 0; p->entry_types[i] != NULL; i++)
		if (strlen(p->entry_types[i]) == type->u.str.len &&
		    memcmp(type->u.str.s, p->entry_types[i], type->u.str.len) ==
			0)
			want = true;
	for (m = entry->u.kids.first; m != NULL; m = m->next) {
		struct vatom a = {p->entry_member, (unsigned char)ml, false,
				  NULL, 0};
		int x;

		if (m->type != FJ_OBJECT)
			return FHIRPATH_EMPTY;
		if ((x = atom_exists(m, &a)) < 0)
			return FHIRPATH_EMPTY;
		if ((x == 1) != want)
			return FHIRPATH_FALSE;
	}
	return FHIRPATH_TRUE;
}

/* The plan of expression e: its top-level terms (outside parentheses,
 * brackets and quotes) when they are joined by "or" only, or are two
 * joined by one "implies", and which leading ones are atoms. */
void
v_plan_build(const char *e, struct vplan *p)
{
	const char *term[V_PLAN_TERMS + 1], *end[V_PLAN_TERMS + 1];
	size_t nt = 0, depth = 0;
	char quote = 0, op, ops = 0;
	const char *s = e;

	memset(p, 0, sizeof(*p));
	if (strcmp(e, bdl3) == 0 || strcmp(e, bdl4) == 0) {
		p->kind = VP_ENTRY_ALL;
		bool three = strcmp(e, bdl3) == 0;

		p->entry_member = three ? "request" : "response";
		p->entry_types = three ? bdl3_types : bdl4_types;
		return;
	}
	term[nt] = s;
	for (; *s != '\0'; s++) {
		size_t w;

		if (quote != 0) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			else if (*s == quote)
				quote = 0;
			continue;
		}
		if (*s == '\t' || *s == '\n' || *s == '\r')
			return; /* operators are looked for between spaces */
		if (depth == 0 && is_op_word(e, s))
			return; /* an operator not written " op ": unsure */
		if (*s == '\'' || *s == '"' || *s == '`') {
			quote = *s;
		} else if (*s == '(' || *s == '[' || *s == '{') {
			depth++;
		} else if (*s == ')' || *s == ']' || *s == '}') {
			if (depth == 0)
				return;
			depth--;
		} else if (depth == 0 && (w = top_op(s, &op)) != 0) {
			if (op == 'a' || op == 'x' || nt + 1 >= V_PLAN_TERMS)
				return; /* and/xor bind otherwise: not here */
			if (ops != 0 && (op != 'o' || ops != 'o'))
				return; /* only "or ... or", or one implies */
			ops = op;
			end[nt++] = s;
			term[nt] = s + w;
			s += w - 1;
		}
	}
	if (quote != 0 || depth != 0)
		return;
	if (ops == 0)
		ops = 'o'; /* one term: an or-chain of one */
	end[nt++] = s;
	for (size_t i = 0; i < nt; i++) {
		const char *a = term[i], *b = end[i];

		while (a < b && *a == ' ')
			a++;
		while (b > a && b[-1] == ' ')
			b--;
		if (ops == 'i' && i == 1 && p->natoms == 1)
			(void)rhs_parse(a, (size_t)(b - a), p);
		if (!atom_parse(a, (size_t)(b - a), &p->atom[p->natoms]))
			break;
		p->natoms++;
	}
	if (p->natoms == 0)
		return;
	p->nterms = (unsigned char)nt;
	p->kind = ops == 'o' ? VP_OR : VP_IMPLIES;
}

/* name.exists() on object v as the evaluator computes it (member name,
 * its _name part, pairing arrays): 1 true, 0 false, -1 when a choice
 * member (nameString) might be meant and the evaluator must say. */
static int
atom_exists(const struct fj_node *v, const struct vatom *a)
{
	const struct fj_node *m, *val = NULL, *ext = NULL;

	if (a->len2 > 0) {
		/* name.name2: through one member that is an object (or
		 * absent, or a primitive: nothing below it), with no _name
		 * part; else the evaluator's */
		struct vatom b = {a->name2, a->len2, false, NULL, 0};

		for (m = v->u.kids.first; m != NULL; m = m->next) {
			if (m->keylen == a->len &&
			    memcmp(m->key, a->name, a->len) == 0)
				val = m;
			else if (m->keylen == (size_t)a->len + 1 &&
				 m->key[0] == '_' &&
				 memcmp(m->key + 1, a->name, a->len) == 0)
				return -1;
		}
		if (val == NULL)
			return has_choice_key(v, a->name, a->len) ? -1 : 0;
		if (val->type == FJ_ARRAY)
			return -1;
		if (val->type != FJ_OBJECT)
			return 0;
		return atom_exists(val, &b);
	}

	for (m = v->u.kids.first; m != NULL; m = m->next) {
		if (m->keylen == a->len && memcmp(m->key, a->name, a->len) == 0)
			val = m;
		else if (m->keylen == (size_t)a->len + 1 && m->key[0] == '_' &&
			 memcmp(m->key + 1, a->name, a->len) == 0)
			ext = m;
	}
	if (val == NULL && ext == NULL) {
		for (m = v->u.kids.first; m != NULL; m = m->next) {
			size_t off = m->key[0] == '_' ? 1 : 0;

			if (m->keylen > a->len + off &&
			    memcmp(m->key + off, a->name, a->len) == 0 &&
			    m->key[off + a->len] >= 'A' &&
			    m->key[off + a->len] <= 'Z')
				return -1;
		}
		return 0;
	}
	if ((val != NULL && val->type == FJ_ARRAY) ||
	    (ext != NULL && ext->type == FJ_ARRAY)) {
		const struct fj_node *x = val != NULL && val->type == FJ_ARRAY
					      ? val->u.kids.first
					      : NULL;
		const struct fj_node *y = ext != NULL && ext->type == FJ_ARRAY
					      ? ext->u.kids.first
					      : NULL;

		for (; x != NULL || y != NULL; x = x != NULL ? x->next : NULL,
					       y = y != NULL ? y->next : NULL)
			if ((x != NULL && x->type != FJ_NULL) ||
			    (y != NULL && y->type == FJ_OBJECT))
				return 1;
		return 0;
	}
	return (val != NULL && val->type != FJ_NULL) ||
	       (ext != NULL && ext->type == FJ_OBJECT);
}

/* The right side of an implies whose left side holds: "name.contains(
 * 'lit').not()" on a member that is one JSON string (with no _name part:
 * its value is the string), else FHIRPATH_EMPTY (the evaluator's). */
static enum fhirpath_bool
rhs_eval(const struct vplan *p, const struct fj_node *v)
{
	const struct fj_node *m, *val = NULL;
	size_t n;

	if (p->rlen == 0)
		return FHIRPATH_EMPTY;
	for (m = v->u.kids.first; m != NULL; m = m->next) {
		if (m->keylen == p->rlen &&
		    memcmp(m->key, p->rname, p->rlen) == 0)
			val = m;
		else if (m->keylen == (size_t)p->rlen + 1 && m->key[0] == '_' &&
			 memcmp(m->key + 1, p->rname, p->rlen) == 0)
			return FHIRPATH_EMPTY;
	}
	if (val == NULL || val->type != FJ_STRING)
		return FHIRPATH_EMPTY;
	n = val->u.str.len;
	for (size_t i = 0; i + p->rlitlen <= n; i++)
		if (memcmp(val->u.str.s + i, p->rlit, p->rlitlen) == 0)
			return FHIRPATH_FALSE; /* contains: not() is false */
	return FHIRPATH_TRUE;
}

/* The result of plan p on object v: FHIRPATH_TRUE or FHIRPATH_FALSE, or
 * FHIRPATH_EMPTY when the evaluator must decide. */
enum fhirpath_bool
v_plan_eval(const struct vplan *p, const struct fj_node *v,
	    const struct fj_node *resource)
{
	if (p->kind == VP_ENTRY_ALL)
		return resource == v ? entry_all_eval(p, v) : FHIRPATH_EMPTY;
	for (size_t i = 0; i < p->natoms; i++) {
		int x = atom_exists(v, &p->atom[i]);

		if (x < 0)
			return FHIRPATH_EMPTY;
		if (p->atom[i].empty)
			x = !x;
		if (p->kind == VP_IMPLIES)
			/* false implies anything: true; else the right side */
			return x ? rhs_eval(p, v) : FHIRPATH_TRUE;
		if (x)
			return FHIRPATH_TRUE; /* true or anything */
	}
	/* every term false: false when all were decided here */
	return p->natoms == p->nterms ? FHIRPATH_FALSE : FHIRPATH_EMPTY;
}

/* The compiled form of expression (cached in the context by its interned
 * pointer); NULL when it does not compile, *nomem without memory. */
static struct fhirpath *
compiled(struct validate_ctx *ctx, const char *expression, bool *nomem)
{
	struct fhirpath *fp = hmap_get(&ctx->paths, expression, NULL);
	enum gw_err err;
	char why[160];

	if (fp == NULL) {
		why[0] = '\0';
		err = fhirpath_compile(expression, &fp, why, sizeof(why));
		if (err == GW_NOMEM) {
			*nomem = true;
			return NULL;
		}
		if (err != GW_OK)
			fp = (struct fhirpath *)(void *)&v_fp_bad;
		if (hmap_put(&ctx->paths, expression, fp) != GW_OK) {
			if (fp != (struct fhirpath *)(void *)&v_fp_bad)
				fhirpath_free(fp);
			*nomem = true;
			return NULL;
		}
	}
	return fp == (struct fhirpath *)(void *)&v_fp_bad ? NULL : fp;
}

/* Whether element el carries an invariant called key. */
static bool
has_constraint(const struct rules_element *el, const char *key)
{
	for (size_t i = 0; i < el->nconstraints; i++)
		if (el->constraints[i].key != NULL &&
		    strcmp(el->constraints[i].key, key) == 0)
			return true;
	return false;
}

/* The evaluated invariants among el's, except those `except` carries
 * too (NULL: none); NULL without memory. Each is compiled here, once per
 * element and context, instead of being looked up, sorted out from the
 * native ones and fetched from the cache at every value. */
static struct vinv *
vinv_build(struct vrun *r, const struct rules_element *el,
	   const struct rules_element *except)
{
	struct vinv *inv;
	bool nomem = false;

	inv = calloc(1, sizeof(*inv) + el->nconstraints * sizeof(inv->e[0]));
	if (inv == NULL)
		return NULL;
	for (size_t i = 0; i < el->nconstraints; i++) {
		const struct rules_constraint *c = &el->constraints[i];
		struct vinv_one *o = &inv->e[inv->n];

		if (c->key == NULL || c->expression == NULL ||
		    native_constraint(c->key) ||
		    (except != NULL && has_constraint(except, c->key)))
			continue;
		o->c = c;
		o->fp = compiled(r->ctx, c->expression, &nomem);
		if (nomem) {
			free(inv);
			return NULL;
		}
		o->contained_only = is_contained_only(c);
		if (o->fp != NULL)
			v_plan_build(c->expression, &o->plan);
		inv->n++;
	}
	return inv;
}

/* The finding of invariant o, which v does not meet. Its message is the
 * invariant's alone: written at its first finding and kept with it (o is
 * the context's), not formatted at every one (a Bundle's dom-6 warnings
 * are a third of its findings). */
static void
inv_failed(struct vrun *r, const struct vinv_one *o, const struct fj_node *v)
{
	const struct rules_constraint *c = o->c;
	const char *sev = c->error ? FHIR_ERROR : FHIR_WARNING;
	struct vinv_one *w = (struct vinv_one *)o; /* the context's */

	if (!v_keeps(r, sev))
		return;
	if (w->msg == NULL) {
		char msg[768];
		int n =
		    snprintf(msg, sizeof(msg), "%s: %s [%s]", c->key,
			     c->human != NULL ? c->human : "", c->expression);

		if (n < 0)
			msg[0] = '\0';
		w->msglen = strnlen(msg, sizeof(msg));
		if ((w->msg = malloc(w->msglen + 1)) == NULL) {
			r->nomem = true;
			return;
		}
		memcpy(w->msg, msg, w->msglen + 1);
	}
	v_issue_text(r, sev, "invariant", v, w->msg, w->msglen);
}

static void
eval_all(struct vrun *r, const struct vinv *inv, const struct fj_node *v,
	 const char *type)
{
	struct fhirpath_env env;
	char why[160];

	for (size_t i = 0; i < inv->n && !r->nomem; i++) {
		const struct vinv_one *o = &inv->e[i];
		const struct rules_constraint *c = o->c;
		enum fhirpath_bool res;
		enum gw_err err;

		/* a finding the run would not keep (a warning in a quiet or
		 * scratch run) need not be looked for */
		if (!v_keeps(r, c->error ? FHIR_ERROR : FHIR_WARNING))
			continue;
		if (o->contained_only && v->type == FJ_OBJECT &&
		    fj_get(v, "contained") == NULL)
			continue;
		if (o->fp == NULL) {
			struct fhirpath *fp = NULL;

			why[0] = '\0';
			fhirpath_compile(c->expression, &fp, why, sizeof(why));
			fhirpath_free(fp);
			not_evaluated(r, c, v,
				      why[0] != '\0' ? why
						     : "outside the supported "
						       "FHIRPath subset");
			continue;
		}
		if (o->plan.kind != VP_NONE && v->type == FJ_OBJECT &&
		    (res = v_plan_eval(&o->plan, v, r->resource)) !=
			FHIRPATH_EMPTY) {
			if (res == FHIRPATH_FALSE)
				inv_failed(r, o, v);
			continue;
		}
		memset(&env, 0, sizeof(env));
		env.resource = r->resource;
		env.resource_type = r->resource_type;
		env.root_resource = r->root;
		env.resolve = fp_resolve;
		env.member_of = v_fp_member_of;
		env.type_of = fp_type_of;
		env.arg = r;
		why[0] = '\0';
		env.errbuf = why;
		env.errlen = sizeof(why);
		err = fhirpath_eval_bool(o->fp, v, type, &env, &res);
		if (err == GW_NOMEM) {
			r->nomem = true;
			return;
		}
		if (err != GW_OK) {
			not_evaluated(r, c, v,
				      why[0] != '\0' ? why : gw_strerror(err));
			continue;
		}
		if (res == FHIRPATH_FALSE)
			inv_failed(r, o, v);
	}
}

void
v_check_constraints(struct vrun *r, const struct vnode *d,
		    const struct fj_node *v, const char *type)
{
	struct vnode *w = (struct vnode *)d; /* the tree is the context's */

	if (d->el->nconstraints == 0)
		return;
	if (w->inv == NULL && (w->inv = vinv_build(r, d->el, NULL)) == NULL) {
		r->nomem = true;
		return;
	}
	eval_all(r, w->inv, v, type);
}

void
v_check_type_constraints(struct vrun *r, const struct vnode *d,
			 const struct vtype *ti, const struct fj_node *v,
			 const char *type)
{
	struct vnode *w = (struct vnode *)d; /* the tree is the context's */
	struct vinv *inv;

	if (ti->vs->root->el->nconstraints == 0)
		return;
	for (inv = w->dtinv; inv != NULL && inv->ti != ti; inv = inv->next)
		;
	if (inv == NULL) {
		if ((inv = vinv_build(r, ti->vs->root->el, d->el)) == NULL) {
			r->nomem = true;
			return;
		}
		inv->ti = ti;
		inv->next = w->dtinv;
		w->dtinv = inv;
	}
	eval_all(r, inv, v, type);
}
