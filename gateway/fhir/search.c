/*
 * search: parsing of a FHIR search (query string or POSTed form) against
 * the Provider's parameter table, the scope that narrows the store read,
 * and the canonical form of a query for Bundle links.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdate.h"
#include "outcome.h"
#include "search_impl.h"
#include "util.h"

/* Limits on what a client may send: the whole form (also once
 * re-encoded for the links), the number of name=value pairs and of
 * parameters kept (with _count, as many as a link may carry), the
 * alternatives of one parameter, one name and one value (decoded). */
#define SQ_FORM_MAX   8192
#define SQ_PAIRS_MAX  128
#define SQ_PARAMS_MAX 64
#define SQ_VALUES_MAX 32
#define SQ_NAME_MAX   128
#define SQ_VALUE_MAX  2048
#define SQ_ID_MAX     64

struct pstate {
	struct search_query *q;
	const struct sp_type *t;
	json_t *oo;
	unsigned flags;
	bool bad;   /* an error issue was added */
	bool nomem; /* out of memory: stop */
	bool count_seen, sort_seen, since_seen;
};

/* name as it may appear in an issue: printable ASCII, at most 64 bytes
 * (a client's bytes may be anything; jansson takes only UTF-8). */
static void
safe_name(const char *name, char *out, size_t n)
{
	size_t i;

	for (i = 0; name[i] != '\0' && i + 1 < n && i < 64; i++)
		out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
	out[i] = '\0';
}

static void add_issue(struct pstate *ps, const char *severity, const char *code,
		      const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
add_issue(struct pstate *ps, const char *severity, const char *code,
	  const char *name, const char *fmt, ...)
{
	char sname[72], expr[96], msg[512];
	va_list ap;

	if (strcmp(severity, FHIR_ERROR) == 0)
		ps->bad = true;
	if (ps->oo == NULL)
		return;
	safe_name(name, sname, sizeof(sname));
	snprintf(expr, sizeof(expr), "parameter %s", sname);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (fhir_outcome_add(ps->oo, severity, code, expr, 0, 0,
			     "parameter %s: %s", sname, msg) != GW_OK)
		ps->nomem = true;
}

/* A parameter (or modifier, prefix) this Provider does not support:
 * ignored with a warning under Prefer: handling=lenient, else an error.
 * Returns true when the caller should go on without it. */
static void
unsupported(struct pstate *ps, const char *name, const char *why)
{
	if (ps->flags & SEARCH_LENIENT)
		add_issue(ps, FHIR_WARNING, "not-supported", name,
			  "%s; ignored (handling=lenient)", why);
	else
		add_issue(ps, FHIR_ERROR, "not-supported", name, "%s", why);
}

static void
invalid(struct pstate *ps, const char *name, const char *why)
{
	add_issue(ps, FHIR_ERROR, "invalid", name, "%s", why);
}

/*
 * Decode n bytes of application/x-www-form-urlencoded text: %XX and '+'
 * for a space. NULL with *bad set when malformed (a lone '%', %00), or
 * NULL without memory.
 */
static char *
form_decode(const char *s, size_t n, bool *bad)
{
	char *out = malloc(n + 1);
	size_t i, j = 0;

	*bad = false;
	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[j++] = ' ';
		} else if (s[i] == '%') {
			int hi = i + 2 < n
				     ? util_hexval((unsigned char)s[i + 1])
				     : -1;
			int lo = i + 2 < n
				     ? util_hexval((unsigned char)s[i + 2])
				     : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			out[j++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (s[i] == '\0') {
			goto bad;
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
bad:
	*bad = true;
	free(out);
	return NULL;
}

/* Length of s[0..n) up to the first sep not escaped by '\'. */
static size_t
part_len(const char *s, size_t n, char sep)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == sep)
			return i;
	}
	return n;
}

/* s[0..n) with FHIR's search escapes (\, \| \$ \\) undone; caller frees. */
static char *
unescape(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	size_t i, j = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		out[j++] = s[i];
	}
	out[j] = '\0';
	return out;
}

static bool
is_type_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z')))
			return false;
	return true;
}

/* A FHIR id: [A-Za-z0-9-.]{1,64}. */
static bool
is_id(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > SQ_ID_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '.'))
			return false;
	return true;
}

static void
value_cleanup(struct sq_value *v)
{
	free(v->system);
	free(v->code);
	free(v->rtype);
	free(v->rid);
	free(v->url);
}

static char *
dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* One token alternative s[0..n) (still escaped). */
static enum gw_err
token_value(struct pstate *ps, const char *name, enum sq_mod mod, const char *s,
	    size_t n, struct sq_value *v)
{
	size_t bar = part_len(s, n, '|');

	if (mod == SQ_MOD_IN || bar == n) {
		v->code = unescape(s, n);
		return v->code == NULL ? GW_NOMEM : GW_OK;
	}
	if (bar == 0 && n == 1) {
		invalid(ps, name, "'|' alone is no token");
		return GW_INVALID;
	}
	if ((v->system = unescape(s, bar)) == NULL)
		return GW_NOMEM;
	if (bar + 1 < n &&
	    (v->code = unescape(s + bar + 1, n - bar - 1)) == NULL)
		return GW_NOMEM;
	return GW_OK;
}

/* One reference alternative: id, Type/id, an absolute URL, or for a
 * canonical element (QuestionnaireResponse.questionnaire) its URL. */
static enum gw_err
ref_value(struct pstate *ps, const char *name, const struct sp_def *def,
	  const char *mod_type, const char *s, size_t n, struct sq_value *v)
{
	char *u = unescape(s, n);
	const char *slash, *prev;
	size_t len;

	if (u == NULL)
		return GW_NOMEM;
	len = strlen(u);
	if ((def->target != NULL &&
	     strcmp(def->target, "Questionnaire") == 0) ||
	    strstr(u, "://") != NULL || strncmp(u, "urn:", 4) == 0) {
		v->url = u;
		/* the Type/id tail of an absolute reference */
		slash = strrchr(u, '/');
		if (slash == NULL || slash == u)
			return GW_OK;
		for (prev = slash - 1; prev > u && *prev != '/'; prev--)
			;
		if (*prev == '/' &&
		    is_type_name(prev + 1, (size_t)(slash - prev - 1)) &&
		    is_id(slash + 1, strlen(slash + 1))) {
			v->rtype = dupn(prev + 1, (size_t)(slash - prev - 1));
			v->rid = dupn(slash + 1, strlen(slash + 1));
			if (v->rtype == NULL || v->rid == NULL)
				return GW_NOMEM;
		}
		return GW_OK;
	}
	slash = strchr(u, '/');
	if (slash != NULL) {
		if (!is_type_name(u, (size_t)(slash - u)) ||
		    !is_id(slash + 1, strlen(slash + 1))) {
			free(u);
			invalid(
			    ps, name,
			    "a reference is id, Type/id or an absolute URL");
			return GW_INVALID;
		}
		v->rtype = dupn(u, (size_t)(slash - u));
		v->rid = dupn(slash + 1, strlen(slash + 1));
		free(u);
		if (v->rtype == NULL || v->rid == NULL)
			return GW_NOMEM;
		if (mod_type != NULL && strcmp(mod_type, v->rtype) != 0) {
			invalid(ps, name,
				"the type modifier and the value's "
				"type differ");
			return GW_INVALID;
		}
		return GW_OK;
	}
	if (!is_id(u, len)) {
		free(u);
		invalid(ps, name,
			"a reference is id, Type/id or an absolute URL");
		return GW_INVALID;
	}
	v->rid = u;
	if (mod_type != NULL || def->target != NULL) {
		v->rtype = strdup(mod_type != NULL ? mod_type : def->target);
		if (v->rtype == NULL)
			return GW_NOMEM;
	}
	return GW_OK;
}

static const char *const prefixes[] = {"eq", "ne", "gt", "lt",
				       "ge", "le", "sa", "eb"};

/* One date alternative: [prefix]date. */
static enum gw_err
date_value(struct pstate *ps, const char *name, const char *s, size_t n,
	   struct sq_value *v)
{
	char text[64];
	struct fdate d;
	size_t i;

	v->prefix = SQ_EQ;
	if (n >= 2 && s[0] >= 'a' && s[0] <= 'z') {
		for (i = 0; i < UTIL_ARRAY_LEN(prefixes); i++)
			if (memcmp(s, prefixes[i], 2) == 0)
				break;
		if (i == UTIL_ARRAY_LEN(prefixes)) {
			if (memcmp(s, "ap", 2) == 0)
				unsupported(ps, name,
					    "the prefix ap is not "
					    "supported");
			else
				invalid(ps, name, "unknown date prefix");
			return GW_INVALID;
		}
		v->prefix = (int)i;
		s += 2;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(text)) {
		invalid(ps, name, "not a FHIR date or dateTime");
		return GW_INVALID;
	}
	/* a '+' of a zone offset that the client did not percent-encode
	 * arrives as a space */
	for (i = 0; i < n; i++)
		text[i] = s[i] == ' ' ? '+' : s[i];
	text[n] = '\0';
	if (!fdate_parse(text, n, FDATE_DATETIME, &d) ||
	    !fdate_range_ms(&d, &v->lo, &v->hi)) {
		invalid(ps, name, "not a FHIR date or dateTime");
		return GW_INVALID;
	}
	return GW_OK;
}

/* The values of a filtering parameter into p; GW_INVALID when one is
 * bad (the issue is added). */
static enum gw_err
param_values(struct pstate *ps, const char *name, const char *value,
	     struct sq_param *p)
{
	const struct sp_def *def = p->chain != NULL ? p->chain : p->def;
	enum sq_mod mod = p->chain != NULL ? p->chain_mod : p->mod;
	size_t n = strlen(value), off = 0, k, count = 1;
	enum gw_err err = GW_OK;

	for (k = 0; k < n; k += part_len(value + k, n - k, ',') + 1)
		if (k + part_len(value + k, n - k, ',') < n)
			count++;
	if (count > SQ_VALUES_MAX) {
		invalid(ps, name, "too many values");
		return GW_INVALID;
	}
	if ((p->v = calloc(count, sizeof(*p->v))) == NULL)
		return GW_NOMEM;
	while (off <= n && p->nv < count) {
		size_t len = part_len(value + off, n - off, ',');
		struct sq_value *v = &p->v[p->nv++];

		if (len == 0) {
			invalid(ps, name, "an empty value in a list");
			return GW_INVALID;
		}
		switch (def->kind) {
		case SP_TOKEN:
			err = token_value(ps, name, mod, value + off, len, v);
			break;
		case SP_REFERENCE:
			err = ref_value(ps, name, def, p->mod_type, value + off,
					len, v);
			break;
		case SP_DATE:
			err = date_value(ps, name, value + off, len, v);
			break;
		}
		if (err != GW_OK)
			return err;
		off += len + 1;
	}
	return GW_OK;
}

static void
param_cleanup(struct sq_param *p)
{
	size_t i;

	for (i = 0; i < p->nv; i++)
		value_cleanup(&p->v[i]);
	free(p->v);
}

/* A modifier of a parameter of kind k: SQ_MOD_* or -1 (issue added). */
static int
modifier(struct pstate *ps, const char *name, const struct sp_def *def,
	 const char *mod, size_t len, const char **mod_type)
{
	const struct sp_type *mt;

	if (len == 0)
		return SQ_MOD_NONE;
	if (def->kind == SP_TOKEN && len == 2 && memcmp(mod, "in", 2) == 0 &&
	    def->in_ok)
		return SQ_MOD_IN;
	if (def->kind == SP_REFERENCE && is_type_name(mod, len)) {
		/* only the types this Provider holds can be pointed at */
		char tname[72];

		memcpy(tname, mod, len);
		tname[len] = '\0';
		mt = sp_type_find(tname);
		if (mt == NULL || (def->target != NULL &&
				   strcmp(def->target, mt->type) != 0)) {
			invalid(ps, name,
				"the type modifier names a type "
				"this parameter cannot refer to");
			return -1;
		}
		*mod_type = mt->type;
		return SQ_MOD_TYPE;
	}
	unsupported(ps, name, "this modifier is not supported");
	return -1;
}

/*
 * A filtering parameter: name[:modifier][.chained[:modifier]] of the
 * searched type, or _id / _lastUpdated.
 */
static enum gw_err
filter_param(struct pstate *ps, const char *name, const char *value)
{
	struct search_query *q = ps->q;
	struct sq_param p;
	size_t base = strcspn(name, ":."), mlen;
	const char *rest = name + base, *mod = "", *chain = NULL;
	int m;
	enum gw_err err;

	memset(&p, 0, sizeof(p));
	p.def = sp_def_find(ps->t, name, base);
	if (p.def == NULL) {
		unsupported(ps, name, "unknown search parameter");
		return GW_OK;
	}
	if (*rest == ':') {
		mod = rest + 1;
		mlen = strcspn(mod, ".");
		rest = mod + mlen;
	} else {
		mlen = 0;
	}
	if (*rest == '.')
		chain = rest + 1;
	m = modifier(ps, name, p.def, mod, mlen, &p.mod_type);
	if (m < 0)
		return GW_OK;
	p.mod = (enum sq_mod)m;
	if (chain != NULL) {
		const struct sp_type *ct;
		size_t clen = strcspn(chain, ":.");

		if (p.def->kind != SP_REFERENCE) {
			invalid(ps, name, "only a reference can be chained");
			return GW_OK;
		}
		p.chain_type = p.mod_type != NULL ? p.mod_type : p.def->target;
		if (p.chain_type == NULL) {
			invalid(ps, name,
				"a chain through this parameter "
				"needs its type, as in "
				"reason-reference:Procedure.code");
			return GW_OK;
		}
		ct = sp_type_find(p.chain_type);
		p.chain = sp_def_find(ct, chain, clen);
		if (p.chain == NULL || p.chain->kind != SP_TOKEN ||
		    chain[clen] == '.') {
			unsupported(ps, name,
				    "this chained parameter is not "
				    "supported");
			return GW_OK;
		}
		m = SQ_MOD_NONE;
		if (chain[clen] == ':' &&
		    (m = modifier(ps, name, p.chain, chain + clen + 1,
				  strlen(chain + clen + 1), &p.mod_type)) < 0)
			return GW_OK;
		p.chain_mod = (enum sq_mod)m;
	}
	if (*value == '\0')
		return GW_OK; /* an empty value is no criterion */
	err = param_values(ps, name, value, &p);
	if (err != GW_OK) {
		param_cleanup(&p);
		return err == GW_NOMEM ? GW_NOMEM : GW_OK;
	}
	q->p[q->np++] = p;
	return GW_OK;
}

static void
include_param(struct pstate *ps, const char *name, const char *value)
{
	struct search_query *q = ps->q;
	const struct sp_include *inc;
	size_t tlen = strcspn(value, ":"), nlen, i;
	const char *iname, *target = NULL;

	if (q->type == NULL || value[tlen] != ':' || strlen(q->type) != tlen ||
	    memcmp(value, q->type, tlen) != 0) {
		invalid(ps, name,
			"_include is <searched type>:<parameter>"
			"[:<target type>]");
		return;
	}
	iname = value + tlen + 1;
	nlen = strcspn(iname, ":");
	inc = sp_include_find(ps->t, iname, nlen);
	if (inc == NULL) {
		unsupported(ps, name, "this _include is not supported");
		return;
	}
	if (iname[nlen] == ':') {
		const struct sp_type *tt = sp_type_find(iname + nlen + 1);

		if (tt == NULL || (inc->target != NULL &&
				   strcmp(inc->target, tt->type) != 0)) {
			invalid(ps, name,
				"the _include's target type cannot "
				"be referred to");
			return;
		}
		target = tt->type;
	} else {
		target = inc->target;
	}
	for (i = 0; i < q->ninc; i++)
		if (q->inc[i].inc == inc && q->inc[i].target == target)
			return;
	if (q->ninc >= UTIL_ARRAY_LEN(q->inc)) {
		invalid(ps, name, "too many _include");
		return;
	}
	q->inc[q->ninc].inc = inc;
	q->inc[q->ninc].target = target;
	q->ninc++;
}

/* Whether name is a result or special parameter this Provider takes. */
static bool
result_name(const char *name)
{
	static const char *const names[] = {"_count",  "_sort",	  "_include",
					    "_format", "_pretty", "_since"};
	size_t i;

	for (i = 0; i < UTIL_ARRAY_LEN(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* A result or special parameter (one result_name takes) with a value. */
static void
result_param(struct pstate *ps, const char *name, const char *value, bool *keep)
{
	struct search_query *q = ps->q;
	long long n;

	*keep = false;
	if (strcmp(name, "_count") == 0) {
		if (ps->count_seen) {
			invalid(ps, name, "given more than once");
		} else if (util_parse_ll(value, 0, 1000000000, &n) != GW_OK) {
			invalid(ps, name, "not a whole number >= 0");
		} else if (n > SEARCH_COUNT_MAX) {
			/* a server may send fewer (FHIR search); the links
			 * carry the number used */
			q->count = SEARCH_COUNT_MAX;
		} else {
			q->count = (size_t)n;
		}
		ps->count_seen = true;
		return;
	}
	if (strcmp(name, "_sort") == 0) {
		if (ps->sort_seen)
			invalid(ps, name, "given more than once");
		else if (strcmp(value, "_lastUpdated") == 0)
			*keep = true;
		else if (strcmp(value, "-_lastUpdated") == 0)
			*keep = q->sort_desc = true;
		else
			unsupported(ps, name,
				    "only _lastUpdated and "
				    "-_lastUpdated are supported");
		ps->sort_seen = true;
		return;
	}
	if (strcmp(name, "_include") == 0) {
		size_t before = q->ninc;

		include_param(ps, name, value);
		*keep = q->ninc > before;
		return;
	}
	if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0) {
		/* the HTTP layer's; kept so that links carry them */
		*keep = true;
		return;
	}
	if (strcmp(name, "_since") == 0) {
		struct sq_value v;

		memset(&v, 0, sizeof(v));
		if (ps->since_seen)
			invalid(ps, name, "given more than once");
		else if (date_value(ps, name, value, strlen(value), &v) ==
			 GW_OK) {
			if (v.prefix != SQ_EQ)
				invalid(ps, name, "_since takes no prefix");
			else
				q->since = v.lo, *keep = true;
		}
		ps->since_seen = true;
	}
}

static enum gw_err
keep_kv(struct search_query *q, const char *name, const char *value)
{
	struct sq_kv *kv = &q->kv[q->nkv];

	kv->name = strdup(name);
	kv->value = strdup(value);
	q->nkv++;
	return kv->name == NULL || kv->value == NULL ? GW_NOMEM : GW_OK;
}

/* One name=value pair, both decoded. */
static enum gw_err
one_param(struct pstate *ps, const char *name, const char *value)
{
	bool keep = false;
	size_t before = ps->q->np;
	enum gw_err err;

	if (strlen(name) > SQ_NAME_MAX || strlen(value) > SQ_VALUE_MAX) {
		add_issue(ps, FHIR_ERROR, "too-long", name,
			  "name or value too long");
		return GW_OK;
	}
	if ((ps->q->type == NULL || (ps->flags & SEARCH_HISTORY)) &&
	    strcmp(name, "_since") != 0 && strcmp(name, "_count") != 0 &&
	    strcmp(name, "_format") != 0 && strcmp(name, "_pretty") != 0) {
		unsupported(ps, name,
			    "a history takes _since and _count "
			    "only");
		return GW_OK;
	}
	if (strcmp(name, "_since") == 0 && ps->q->type != NULL &&
	    !(ps->flags & SEARCH_HISTORY)) {
		unsupported(ps, name, "_since is a parameter of _history");
		return GW_OK;
	}
	if (name[0] == '_' && strcmp(name, "_id") != 0 &&
	    strncmp(name, "_id:", 4) != 0 &&
	    strncmp(name, "_lastUpdated", 12) != 0) {
		if (!result_name(name)) {
			unsupported(ps, name,
				    strncmp(name, "_include:", 9) == 0
					? "_include takes no modifier (the "
					  "form is _include=Type:parameter)"
					: "unknown or unsupported parameter");
			return GW_OK;
		}
		/* an empty value is no criterion (FHIR search) */
		if (*value == '\0')
			return GW_OK;
		result_param(ps, name, value, &keep);
	} else {
		err = filter_param(ps, name, value);
		if (err != GW_OK)
			return err;
		keep = ps->q->np > before;
	}
	if (!keep)
		return GW_OK;
	/* _count joins them at the end */
	if (ps->q->nkv + 1 >= SQ_PARAMS_MAX) {
		add_issue(ps, FHIR_ERROR, "too-costly", name,
			  "more than %d parameters", SQ_PARAMS_MAX - 1);
		return GW_OK;
	}
	return keep_kv(ps->q, name, value);
}

static int
kv_cmp(const void *a, const void *b)
{
	const struct sq_kv *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

/* The scope fields from the parsed parameters. */
static void
derive_scope(struct search_query *q)
{
	size_t i;

	for (i = 0; i < q->np; i++) {
		struct sq_param *p = &q->p[i];
		const struct sq_value *v = &p->v[0];

		if (p->nv != 1)
			continue;
		if (p->def == &sp_def_id && p->mod == SQ_MOD_NONE &&
		    v->system == NULL && q->id == NULL) {
			q->id = v->code;
		} else if (p->def == &sp_def_last_updated) {
			int64_t at =
			    v->prefix == SQ_GT || v->prefix == SQ_SA   ? v->hi
			    : v->prefix == SQ_GE || v->prefix == SQ_EQ ? v->lo
								       : 0;
			if (at > q->since)
				q->since = at;
		} else if (p->def->kind == SP_REFERENCE && p->chain == NULL &&
			   (strcmp(p->def->name, "patient") == 0 ||
			    strcmp(p->def->name, "subject") == 0) &&
			   v->rid != NULL && v->rtype != NULL &&
			   strcmp(v->rtype, "Patient") == 0 && v->url == NULL &&
			   q->patient_id == NULL) {
			q->patient_id = v->rid;
		} else if (((p->chain != NULL && p->chain_mod == SQ_MOD_NONE &&
			     strcmp(p->chain_type, "Patient") == 0 &&
			     strcmp(p->chain->name, "identifier") == 0) ||
			    (p->chain == NULL && p->mod == SQ_MOD_NONE &&
			     strcmp(q->type, "Patient") == 0 &&
			     strcmp(p->def->name, "identifier") == 0)) &&
			   v->system != NULL &&
			   strcmp(v->system, SEARCH_BSN_SYSTEM) == 0 &&
			   v->code != NULL && q->patient_bsn == NULL) {
			q->patient_bsn = v->code;
			p->bsn_scoped = p->chain != NULL;
		}
	}
}

enum gw_err
search_parse(const char *type, const char *form, size_t len, unsigned flags,
	     struct search_query **out, json_t *oo)
{
	struct pstate ps;
	struct search_query *q = NULL;
	size_t off = 0, npairs = 0, i;
	enum gw_err err = GW_OK;
	struct buf canon;
	char num[24];

	*out = NULL;
	memset(&ps, 0, sizeof(ps));
	ps.oo = oo;
	ps.flags = flags;
	if (type != NULL) {
		ps.t = sp_type_find(type);
		if (ps.t == NULL || !ps.t->search) {
			char sname[72];

			safe_name(type, sname, sizeof(sname));
			if (oo != NULL &&
			    fhir_outcome_add(
				oo, FHIR_ERROR, "not-supported", NULL, 0, 0,
				"%s cannot be searched here", sname) != GW_OK)
				return GW_NOMEM;
			return GW_NOTFOUND;
		}
	}
	if (len > SQ_FORM_MAX) {
		add_issue(&ps, FHIR_ERROR, "too-long", "*",
			  "the query is longer than %d bytes", SQ_FORM_MAX);
		return ps.nomem ? GW_NOMEM : GW_INVALID;
	}
	for (i = 0; i < len; i++)
		npairs += form[i] == '&';
	if (npairs + 1 > SQ_PAIRS_MAX) {
		add_issue(&ps, FHIR_ERROR, "too-costly", "*",
			  "more than %d parameters", SQ_PAIRS_MAX);
		return ps.nomem ? GW_NOMEM : GW_INVALID;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return GW_NOMEM;
	ps.q = q;
	q->type = ps.t != NULL ? ps.t->type : NULL;
	q->count = SEARCH_COUNT_DEFAULT;
	q->p = calloc(npairs + 1, sizeof(*q->p));
	/* every pair may be kept, plus _count */
	q->kv = calloc(npairs + 2, sizeof(*q->kv));
	if (q->p == NULL || q->kv == NULL) {
		err = GW_NOMEM;
		goto out;
	}
	while (off < len) {
		const char *amp = memchr(form + off, '&', len - off);
		size_t plen = amp != NULL ? (size_t)(amp - (form + off))
					  : len - off,
		       nlen;
		char *name = NULL, *value = NULL;
		bool bad1 = false, bad2 = false;

		nlen = 0;
		while (nlen < plen && form[off + nlen] != '=')
			nlen++;
		if (plen > 0) {
			name = form_decode(form + off, nlen, &bad1);
			value = form_decode(
			    form + off + nlen + (nlen < plen ? 1 : 0),
			    plen - nlen - (nlen < plen ? 1 : 0), &bad2);
			if (bad1 || bad2) {
				add_issue(&ps, FHIR_ERROR, "invalid",
					  name != NULL ? name : "?",
					  "malformed percent-encoding");
			} else if (name == NULL || value == NULL) {
				err = GW_NOMEM;
			} else if (*name == '\0') {
				add_issue(&ps, FHIR_ERROR, "invalid", "?",
					  "a value without a name");
			} else {
				err = one_param(&ps, name, value);
			}
			free(name);
			free(value);
			if (err != GW_OK)
				goto out;
		}
		off += plen + 1;
	}
	if (ps.nomem) {
		err = GW_NOMEM;
		goto out;
	}
	if (ps.bad) {
		err = GW_INVALID;
		goto out;
	}
	snprintf(num, sizeof(num), "%zu", q->count);
	if (keep_kv(q, "_count", num) != GW_OK) {
		err = GW_NOMEM;
		goto out;
	}
	qsort(q->kv, q->nkv, sizeof(*q->kv), kv_cmp);
	/* the links must parse again: re-encoding may lengthen the form */
	buf_init(&canon, SQ_FORM_MAX);
	err = search_canonical(q, &canon);
	buf_cleanup(&canon);
	if (err == GW_TOOBIG) {
		add_issue(&ps, FHIR_ERROR, "too-long", "*",
			  "the query is longer than %d bytes once encoded",
			  SQ_FORM_MAX);
		err = ps.nomem ? GW_NOMEM : GW_INVALID;
		goto out;
	}
	if (err != GW_OK)
		goto out;
	if (q->type != NULL)
		derive_scope(q);
out:
	if (err != GW_OK) {
		search_free(q);
		return err;
	}
	*out = q;
	return GW_OK;
}

void
search_free(struct search_query *q)
{
	size_t i;

	if (q == NULL)
		return;
	if (q->p != NULL)
		for (i = 0; i < q->np; i++)
			param_cleanup(&q->p[i]);
	free(q->p);
	if (q->kv != NULL)
		for (i = 0; i < q->nkv; i++) {
			free(q->kv[i].name);
			free(q->kv[i].value);
		}
	free(q->kv);
	free(q);
}

void
search_scope_of(const struct search_query *q, struct search_scope *out)
{
	memset(out, 0, sizeof(*out));
	out->type = q->type;
	out->patient_id = q->patient_id;
	out->patient_bsn = q->patient_bsn;
	out->id = q->id;
	out->since = q->since;
	out->count = q->count;
	out->sort_desc = q->sort_desc;
}

/* Append s percent-encoded except RFC 3986's unreserved characters and
 * the sub-delimiters a FHIR query reads plainly (: / , @ $ and so on). */
static enum gw_err
encode(struct buf *out, const char *s)
{
	static const char keep[] = "-._~:/@!$'()*,;?";
	static const char hex[] = "0123456789ABCDEF";
	enum gw_err err = GW_OK;

	for (; *s != '\0' && err == GW_OK; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || strchr(keep, c) != NULL) {
			err = buf_addc(out, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};

			err = buf_add(out, e, 3);
		}
	}
	return err;
}

enum gw_err
search_canonical(const struct search_query *q, struct buf *out)
{
	size_t before = out->len, i;
	enum gw_err err = GW_OK;

	for (i = 0; i < q->nkv && err == GW_OK; i++) {
		if (i > 0)
			err = buf_addc(out, '&');
		if (err == GW_OK)
			err = encode(out, q->kv[i].name);
		if (err == GW_OK)
			err = buf_addc(out, '=');
		if (err == GW_OK)
			err = encode(out, q->kv[i].value);
	}
	if (err != GW_OK && out->data != NULL) {
		/* leave out as it was */
		out->len = before;
		out->data[before] = '\0';
	}
	return err;
}
