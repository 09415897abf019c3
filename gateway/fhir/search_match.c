/*
 * search_match: whether a stored resource matches a parsed search (token,
 * reference, chained and _lastUpdated semantics of FHIR R4 search), and
 * the references its _include asks for.
 */
#include <string.h>

#include "search_impl.h"

/* A reference's target as far as its text says: Type and id of
 * "Type/id", ".../Type/id" or "Type/id/_history/v"; Reference.type when
 * the text names no type. */
struct ref {
	char type[SQ_REF_PART_MAX + 1];
	char id[SQ_REF_PART_MAX + 1];
	bool ok; /* an id was found */
};

static bool
id_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Parse s[0..n) into r; relative: true when it is exactly Type/id. */
static void
ref_parse(const char *s, const char *type_elem, struct ref *r, bool *relative)
{
	const char *hist = strstr(s, "/_history/");
	size_t n = hist != NULL ? (size_t)(hist - s) : strlen(s);
	size_t idstart = n, tstart, i;

	memset(r, 0, sizeof(*r));
	*relative = false;
	while (idstart > 0 && s[idstart - 1] != '/')
		idstart--;
	if (n - idstart == 0 || n - idstart > SQ_REF_PART_MAX)
		return;
	for (i = idstart; i < n; i++)
		if (!id_char(s[i]))
			return;
	memcpy(r->id, s + idstart, n - idstart);
	r->ok = true;
	if (idstart > 0) {
		tstart = idstart - 1;
		while (tstart > 0 && s[tstart - 1] != '/')
			tstart--;
		if (idstart - 1 - tstart > 0 &&
		    idstart - 1 - tstart <= SQ_REF_PART_MAX &&
		    s[tstart] >= 'A' && s[tstart] <= 'Z') {
			memcpy(r->type, s + tstart, idstart - 1 - tstart);
			*relative = tstart == 0 && hist == NULL;
		}
	}
	if (r->type[0] == '\0' && type_elem != NULL &&
	    strlen(type_elem) <= SQ_REF_PART_MAX)
		memcpy(r->type, type_elem, strlen(type_elem) + 1);
}

/*
 * Call fn on every value at the dotted path below n, walking arrays;
 * true as soon as fn returns true.
 */
static bool
walk(const struct fj_node *n, const char *path,
     bool (*fn)(const struct fj_node *, void *), void *arg)
{
	char seg[64];
	size_t len;
	const struct fj_node *c;

	if (n == NULL)
		return false;
	if (n->type == FJ_ARRAY) {
		for (c = n->u.kids.first; c != NULL; c = c->next)
			if (walk(c, path, fn, arg))
				return true;
		return false;
	}
	if (*path == '\0')
		return fn(n, arg);
	if (n->type != FJ_OBJECT)
		return false;
	len = strcspn(path, ".");
	if (len >= sizeof(seg))
		return false;
	memcpy(seg, path, len);
	seg[len] = '\0';
	return walk(fj_get(n, seg), path[len] == '.' ? path + len + 1 : "", fn,
		    arg);
}

/* The token value v against a system and code found in a resource. */
static bool
sys_code(const char *sys, const char *code, const struct sq_value *v)
{
	if (v->system != NULL) {
		if (v->system[0] == '\0') {
			if (sys != NULL)
				return false;
		} else if (sys == NULL || strcmp(sys, v->system) != 0) {
			return false;
		}
	}
	return v->code == NULL || (code != NULL && strcmp(code, v->code) == 0);
}

struct mctx {
	const struct sq_param *p;
	const struct sp_def *def;
	enum sq_mod mod;
	const struct sq_value *v;
	const struct search_env *env;
};

static bool
coding_match(const struct fj_node *c, const struct mctx *m)
{
	const char *sys = fj_get_str(c, "system"),
		   *code = fj_get_str(c, "code");
	bool in = false;

	if (m->mod != SQ_MOD_IN)
		return sys_code(sys, code, m->v);
	if (code == NULL || m->env == NULL || m->env->in_valueset == NULL)
		return false;
	return m->env->in_valueset(m->env->arg, m->v->code,
				   sys != NULL ? sys : "", code,
				   &in) == GW_OK &&
	       in;
}

/* A token against a CodeableConcept, Coding, Identifier, code or id. */
static bool
token_cb(const struct fj_node *n, void *arg)
{
	const struct mctx *m = arg;
	const struct fj_node *c;

	switch (n->type) {
	case FJ_STRING:
		return m->mod == SQ_MOD_NONE &&
		       sys_code(NULL, n->u.str.s, m->v);
	case FJ_BOOL:
		return m->mod == SQ_MOD_NONE &&
		       sys_code(NULL, n->u.b ? "true" : "false", m->v);
	case FJ_OBJECT:
		if ((c = fj_get(n, "coding")) != NULL) {
			if (c->type != FJ_ARRAY)
				return false;
			for (c = c->u.kids.first; c != NULL; c = c->next)
				if (c->type == FJ_OBJECT && coding_match(c, m))
					return true;
			return false;
		}
		if (fj_get(n, "code") != NULL)
			return coding_match(n, m);
		if (fj_get(n, "value") != NULL && m->mod == SQ_MOD_NONE)
			return sys_code(fj_get_str(n, "system"),
					fj_get_str(n, "value"), m->v);
		return false;
	default:
		return false;
	}
}

/* A canonical element against the URL searched: the same, or the
 * element has a |version the URL leaves open. */
static bool
canonical_match(const char *s, const char *url)
{
	size_t n = strlen(url);

	return strncmp(s, url, n) == 0 && (s[n] == '\0' || s[n] == '|');
}

static bool
ref_cb(const struct fj_node *n, void *arg)
{
	const struct mctx *m = arg;
	const struct sq_value *v = m->v;
	const char *s;
	struct ref r;
	bool rel;

	if (n->type == FJ_STRING)
		return v->url != NULL && canonical_match(n->u.str.s, v->url);
	if (n->type != FJ_OBJECT || (s = fj_get_str(n, "reference")) == NULL)
		return false;
	ref_parse(s, fj_get_str(n, "type"), &r, &rel);
	if (m->def->target != NULL && strcmp(r.type, m->def->target) != 0)
		return false;
	if (m->p->mod_type != NULL && strcmp(r.type, m->p->mod_type) != 0)
		return false;
	if (v->url != NULL && strcmp(s, v->url) == 0)
		return true;
	if (!r.ok || v->rid == NULL || strcmp(r.id, v->rid) != 0)
		return false;
	return v->rtype == NULL || strcmp(r.type, v->rtype) == 0;
}

/* A chained parameter: the reference's target (resolved in the
 * caller's scope) matches the chained token. */
static bool
chain_cb(const struct fj_node *n, void *arg)
{
	const struct mctx *m = arg;
	const struct sq_param *p = m->p;
	const struct fj_node *target = NULL;
	struct mctx tm = *m;
	const char *s;
	struct ref r;
	bool rel;

	if (n->type != FJ_OBJECT || (s = fj_get_str(n, "reference")) == NULL)
		return false;
	ref_parse(s, fj_get_str(n, "type"), &r, &rel);
	if (!r.ok || (r.type[0] != '\0' && strcmp(r.type, p->chain_type) != 0))
		return false;
	if (m->def->target != NULL && r.type[0] != '\0' &&
	    strcmp(r.type, m->def->target) != 0)
		return false;
	if (m->env != NULL && m->env->resolve != NULL)
		target = m->env->resolve(m->env->arg, p->chain_type, r.id);
	if (target == NULL)
		/* patient.identifier=<bsn>|N: the store read was narrowed to
		 * that patient's messages already */
		return p->bsn_scoped;
	tm.def = p->chain;
	tm.mod = p->chain_mod;
	return walk(target, p->chain->path, token_cb, &tm);
}

static bool
date_match(const struct sq_value *v, int64_t t)
{
	switch (v->prefix) {
	case SQ_NE:
		return t < v->lo || t >= v->hi;
	case SQ_GT:
	case SQ_SA:
		return t >= v->hi;
	case SQ_LT:
	case SQ_EB:
		return t < v->lo;
	case SQ_GE:
		return t >= v->lo;
	case SQ_LE:
		return t < v->hi;
	default:
		return t >= v->lo && t < v->hi;
	}
}

static bool
param_match(const struct sq_param *p, const struct fj_node *res,
	    int64_t updated_ms, const struct search_env *env)
{
	struct mctx m;
	size_t i;
	bool (*fn)(const struct fj_node *, void *);

	m.p = p;
	m.def = p->def;
	m.mod = p->mod;
	m.env = env;
	fn = p->chain != NULL		    ? chain_cb
	     : p->def->kind == SP_TOKEN	    ? token_cb
	     : p->def->kind == SP_REFERENCE ? ref_cb
					    : NULL;
	for (i = 0; i < p->nv; i++) {
		m.v = &p->v[i];
		if (fn == NULL ? date_match(m.v, updated_ms)
			       : walk(res, p->def->path, fn, &m))
			return true;
	}
	return false;
}

bool
search_match(const struct search_query *q, const struct fj_node *res,
	     int64_t updated_ms, const struct search_env *env)
{
	const char *rt;
	size_t i;

	if (res == NULL || res->type != FJ_OBJECT)
		return false;
	rt = fj_get_str(res, "resourceType");
	if (q->type != NULL && (rt == NULL || strcmp(rt, q->type) != 0))
		return false;
	for (i = 0; i < q->np; i++)
		if (!param_match(&q->p[i], res, updated_ms, env))
			return false;
	return true;
}

struct ictx {
	const char *target;
	void (*emit)(void *arg, const char *type, const char *id);
	void *arg;
};

static bool
include_cb(const struct fj_node *n, void *arg)
{
	const struct ictx *c = arg;
	const char *s;
	struct ref r;
	bool rel;

	if (n->type != FJ_OBJECT || (s = fj_get_str(n, "reference")) == NULL)
		return false;
	ref_parse(s, NULL, &r, &rel);
	if (rel && r.ok &&
	    (c->target == NULL || strcmp(r.type, c->target) == 0))
		c->emit(c->arg, r.type, r.id);
	return false;
}

void
search_includes(const struct search_query *q, const struct fj_node *res,
		void (*emit)(void *arg, const char *type, const char *id),
		void *arg)
{
	const char *rt;
	struct ictx c;
	size_t i;

	if (res == NULL || res->type != FJ_OBJECT || q->type == NULL)
		return;
	rt = fj_get_str(res, "resourceType");
	if (rt == NULL || strcmp(rt, q->type) != 0)
		return;
	c.emit = emit;
	c.arg = arg;
	for (i = 0; i < q->ninc; i++) {
		c.target = q->inc[i].target;
		walk(res, q->inc[i].inc->path, include_cb, &c);
	}
}
