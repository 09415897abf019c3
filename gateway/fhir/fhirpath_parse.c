/*
 * fhirpath_parse: lexer and Pratt parser of FHIRPath into the AST of a
 * compiled expression (fhirpath_compile, fhirpath_free, fhirpath_text).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fdate.h"
#include "fhirpath_impl.h"
#include "util.h"

/* ------------------------------------------------------------ functions */

const struct fdef fp_fdefs[] = {
    {"empty", F_EMPTY, 0, 0, 0},
    {"exists", F_EXISTS, 0, 1, FA_LAMBDA},
    {"not", F_NOT, 0, 0, 0},
    {"all", F_ALL, 1, 1, FA_LAMBDA},
    {"count", F_COUNT, 0, 0, 0},
    {"hasValue", F_HASVALUE, 0, 0, 0},
    {"extension", F_EXTENSION, 1, 1, 0},
    {"ofType", F_OFTYPE, 1, 1, FA_TYPE},
    {"as", F_AS, 1, 1, FA_TYPE},
    {"is", F_IS, 1, 1, FA_TYPE},
    {"where", F_WHERE, 1, 1, FA_LAMBDA},
    {"select", F_SELECT, 1, 1, FA_LAMBDA},
    {"repeat", F_REPEAT, 1, 1, FA_LAMBDA},
    {"children", F_CHILDREN, 0, 0, 0},
    {"descendants", F_DESCENDANTS, 0, 0, 0},
    {"first", F_FIRST, 0, 0, 0},
    {"last", F_LAST, 0, 0, 0},
    {"tail", F_TAIL, 0, 0, 0},
    {"skip", F_SKIP, 1, 1, 0},
    {"take", F_TAKE, 1, 1, 0},
    {"single", F_SINGLE, 0, 0, 0},
    {"distinct", F_DISTINCT, 0, 0, 0},
    {"isDistinct", F_ISDISTINCT, 0, 0, 0},
    {"iif", F_IIF, 2, 3, 0},
    {"trace", F_TRACE, 1, 2, 0},
    {"startsWith", F_STARTSWITH, 1, 1, 0},
    {"endsWith", F_ENDSWITH, 1, 1, 0},
    {"contains", F_CONTAINS, 1, 1, 0},
    {"matches", F_MATCHES, 1, 1, 0},
    {"replaceMatches", F_REPLACEMATCHES, 2, 2, 0},
    {"replace", F_REPLACE, 2, 2, 0},
    {"length", F_LENGTH, 0, 0, 0},
    {"toString", F_TOSTRING, 0, 0, 0},
    {"toInteger", F_TOINTEGER, 0, 0, 0},
    {"toDecimal", F_TODECIMAL, 0, 0, 0},
    {"substring", F_SUBSTRING, 1, 2, 0},
    {"upper", F_UPPER, 0, 0, 0},
    {"lower", F_LOWER, 0, 0, 0},
    {"indexOf", F_INDEXOF, 1, 1, 0},
    {"today", F_TODAY, 0, 0, 0},
    {"now", F_NOW, 0, 0, 0},
    {"htmlChecks", F_HTMLCHECKS, 0, 0, 0},
    {"htmlchecks", F_HTMLCHECKS, 0, 0, 0},
    {"subsetOf", F_SUBSETOF, 1, 1, 0},
    {"supersetOf", F_SUPERSETOF, 1, 1, 0},
    {"intersect", F_INTERSECT, 1, 1, 0},
    {"exclude", F_EXCLUDE, 1, 1, 0},
    {"union", F_UNION, 1, 1, 0},
    {"combine", F_COMBINE, 1, 1, 0},
    {"allTrue", F_ALLTRUE, 0, 0, 0},
    {"anyTrue", F_ANYTRUE, 0, 0, 0},
    {"allFalse", F_ALLFALSE, 0, 0, 0},
    {"anyFalse", F_ANYFALSE, 0, 0, 0},
    {"memberOf", F_MEMBEROF, 1, 1, 0},
    {"resolve", F_RESOLVE, 0, 0, 0},
    {"trim", F_TRIM, 0, 0, 0},
    {"toBoolean", F_TOBOOLEAN, 0, 0, 0},
    {"convertsToBoolean", F_CONVERTSTOBOOLEAN, 0, 0, 0},
    {"convertsToInteger", F_CONVERTSTOINTEGER, 0, 0, 0},
    {"convertsToDecimal", F_CONVERTSTODECIMAL, 0, 0, 0},
    {"convertsToString", F_CONVERTSTOSTRING, 0, 0, 0},
    {"convertsToDate", F_CONVERTSTODATE, 0, 0, 0},
    {"convertsToDateTime", F_CONVERTSTODATETIME, 0, 0, 0},
};

const size_t fp_nfdefs = sizeof(fp_fdefs) / sizeof(fp_fdefs[0]);

/* ---------------------------------------------------------------- lexer */

struct tok {
	enum tk t;
	size_t start, end; /* source span */
	const char *s;	   /* decoded text: identifiers, strings, %names */
	size_t slen;
};

struct parser {
	const char *src;
	size_t len, pos;
	struct tok cur;
	struct fhirpath *fp;
	int depth;
	enum gw_err err;
	char *errbuf;
	size_t errlen;
};

static void perr(struct parser *p, enum gw_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct parser *p, enum gw_err e, const char *fmt, ...)
{
	va_list ap;

	if (p->err != GW_OK)
		return;
	p->err = e;
	p->cur.t = T_ERR;
	if (p->errbuf && p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->errbuf, p->errlen, fmt, ap);
		va_end(ap);
	}
}

static void
put_utf8(char *out, size_t *n, unsigned long cp)
{
	if (cp < 0x80) {
		out[(*n)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*n)++] = (char)(0xc0 | (cp >> 6));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*n)++] = (char)(0xe0 | (cp >> 12));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*n)++] = (char)(0xf0 | (cp >> 18));
		out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*n)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* Decode a quoted string or delimited identifier starting at p->pos (the
 * quote); sets p->cur.s/slen. */
static void
lex_quoted(struct parser *p, char q)
{
	const char *s = p->src;
	size_t i = p->pos + 1, n = 0, end = i;
	char *out;

	/* decoded text is never longer than the quoted text */
	while (end < p->len && s[end] != q)
		end += s[end] == '\\' ? 2 : 1;
	out = fp_ar_alloc(&p->fp->ar, end - i + 8);
	if (!out) {
		perr(p, p->fp->ar.err, "out of memory");
		return;
	}
	for (;;) {
		if (i >= p->len) {
			perr(p, GW_PARSE, "unterminated %s at offset %zu",
			     q == '`' ? "identifier" : "string", p->pos);
			return;
		}
		if (s[i] == q)
			break;
		if (s[i] != '\\') {
			out[n++] = s[i++];
			continue;
		}
		if (++i >= p->len)
			continue;
		switch (s[i]) {
		case 'n':
			out[n++] = '\n';
			break;
		case 't':
			out[n++] = '\t';
			break;
		case 'r':
			out[n++] = '\r';
			break;
		case 'f':
			out[n++] = '\f';
			break;
		case 'u': {
			unsigned long cp = 0;
			int k, h;

			for (k = 1; k <= 4; k++) {
				h = i + k < p->len ? util_hexval(s[i + k]) : -1;
				if (h < 0) {
					perr(p, GW_PARSE,
					     "bad \\u escape at offset %zu", i);
					return;
				}
				cp = cp * 16 + (unsigned long)h;
			}
			if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) {
				perr(p, GW_PARSE,
				     "unsupported \\u escape at offset %zu", i);
				return;
			}
			put_utf8(out, &n, cp);
			i += 4;
			break;
		}
		case '\'':
		case '"':
		case '`':
		case '\\':
		case '/':
			out[n++] = s[i];
			break;
		default:
			perr(p, GW_PARSE, "bad escape \\%c at offset %zu", s[i],
			     i);
			return;
		}
		i++;
	}
	out[n] = '\0';
	p->cur.s = out;
	p->cur.slen = n;
	p->pos = i + 1;
}

static bool
is_ident_start(int c)
{
	return isalpha(c) || c == '_';
}

static bool
is_ident_char(int c)
{
	return isalnum(c) || c == '_';
}

static const struct {
	const char *w;
	enum tk t;
} keywords[] = {{"and", T_AND}, {"or", T_OR},
		{"xor", T_XOR}, {"implies", T_IMPLIES},
		{"in", T_IN},	{"contains", T_CONTAINS},
		{"div", T_DIV}, {"mod", T_MOD},
		{"is", T_IS},	{"as", T_AS}};

/* Lex the next token into p->cur. Keywords come back as T_IDENT; the
 * parser decides from the position whether they are operators. */
static void
next(struct parser *p)
{
	const char *s = p->src;
	size_t i;
	int c;

	if (p->err != GW_OK)
		return;
	for (;;) {
		while (p->pos < p->len &&
		       (s[p->pos] == ' ' || s[p->pos] == '\t' ||
			s[p->pos] == '\r' || s[p->pos] == '\n'))
			p->pos++;
		if (p->pos + 1 < p->len && s[p->pos] == '/' &&
		    s[p->pos + 1] == '/') {
			while (p->pos < p->len && s[p->pos] != '\n')
				p->pos++;
			continue;
		}
		if (p->pos + 1 < p->len && s[p->pos] == '/' &&
		    s[p->pos + 1] == '*') {
			const char *e = NULL;

			for (i = p->pos + 2; i + 1 < p->len; i++)
				if (s[i] == '*' && s[i + 1] == '/') {
					e = s + i;
					break;
				}
			if (!e) {
				perr(p, GW_PARSE, "unterminated comment");
				return;
			}
			p->pos = (size_t)(e - s) + 2;
			continue;
		}
		break;
	}
	memset(&p->cur, 0, sizeof(p->cur));
	p->cur.start = p->pos;
	if (p->pos >= p->len) {
		p->cur.t = T_EOF;
		return;
	}
	c = (unsigned char)s[p->pos];
	if (is_ident_start(c)) {
		i = p->pos;
		while (i < p->len && is_ident_char((unsigned char)s[i]))
			i++;
		p->cur.t = T_IDENT;
		p->cur.s = s + p->pos;
		p->cur.slen = i - p->pos;
		p->pos = i;
	} else if (c == '`' || c == '\'') {
		p->cur.t = c == '`' ? T_DIDENT : T_STRING;
		lex_quoted(p, (char)c);
	} else if (isdigit(c)) {
		i = p->pos;
		while (i < p->len && isdigit((unsigned char)s[i]))
			i++;
		if (i + 1 < p->len && s[i] == '.' &&
		    isdigit((unsigned char)s[i + 1])) {
			i++;
			while (i < p->len && isdigit((unsigned char)s[i]))
				i++;
		}
		p->cur.t = T_NUMBER;
		p->cur.s = s + p->pos;
		p->cur.slen = i - p->pos;
		p->pos = i;
	} else if (c == '@') {
		i = p->pos + 1;
		while (i < p->len && (isdigit((unsigned char)s[i]) ||
				      strchr("-:.TZ+", s[i]) != NULL))
			i++;
		p->cur.s = s + p->pos + 1;
		p->cur.slen = i - p->pos - 1;
		if (p->cur.slen > 0 && p->cur.s[0] == 'T')
			p->cur.t = T_TIME;
		else if (memchr(p->cur.s, 'T', p->cur.slen))
			p->cur.t = T_DATETIME;
		else
			p->cur.t = T_DATE;
		p->pos = i;
	} else if (c == '%' || c == '$') {
		p->pos++;
		if (c == '%' && p->pos < p->len &&
		    (s[p->pos] == '`' || s[p->pos] == '\'' ||
		     s[p->pos] == '"')) {
			if (s[p->pos] == '"') {
				/* %"name" was allowed by older versions */
				const char *e = memchr(s + p->pos + 1, '"',
						       p->len - p->pos - 1);

				if (!e) {
					perr(p, GW_PARSE, "unterminated name");
					return;
				}
				p->cur.s = s + p->pos + 1;
				p->cur.slen = (size_t)(e - s) - p->pos - 1;
				p->pos = (size_t)(e - s) + 1;
			} else {
				lex_quoted(p, s[p->pos]);
			}
		} else {
			i = p->pos;
			while (i < p->len &&
			       (is_ident_char((unsigned char)s[i]) ||
				(c == '%' && s[i] == '-')))
				i++;
			if (i == p->pos) {
				perr(p, GW_PARSE,
				     "name expected after %c at "
				     "offset %zu",
				     c, p->pos - 1);
				return;
			}
			p->cur.s = s + p->pos;
			p->cur.slen = i - p->pos;
			p->pos = i;
		}
		p->cur.t = c == '%' ? T_ENV : T_DOLLAR;
	} else {
		static const struct {
			const char *op;
			enum tk t;
		} ops[] = {{"!=", T_NE},    {"!~", T_NEQUIV}, {"<=", T_LE},
			   {">=", T_GE},    {"=", T_EQ},      {"~", T_EQUIV},
			   {"<", T_LT},	    {">", T_GT},      {"|", T_PIPE},
			   {"&", T_AMP},    {"+", T_PLUS},    {"-", T_MINUS},
			   {"*", T_STAR},   {"/", T_SLASH},   {".", T_DOT},
			   {",", T_COMMA},  {"(", T_LPAREN},  {")", T_RPAREN},
			   {"[", T_LBRACK}, {"]", T_RBRACK},  {"{", T_LBRACE},
			   {"}", T_RBRACE}};
		size_t k;

		for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
			size_t l = strlen(ops[k].op);

			if (p->len - p->pos >= l &&
			    memcmp(s + p->pos, ops[k].op, l) == 0) {
				p->cur.t = ops[k].t;
				p->pos += l;
				break;
			}
		}
		if (k == sizeof(ops) / sizeof(ops[0])) {
			perr(p, GW_PARSE,
			     "unexpected character '%c' at offset "
			     "%zu",
			     isprint(c) ? c : '?', p->pos);
			return;
		}
	}
	p->cur.end = p->pos;
}

/* The keyword operator the current identifier token is, or T_IDENT. */
static enum tk
keyword(const struct tok *t)
{
	size_t k;

	if (t->t != T_IDENT)
		return t->t;
	for (k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
		if (strlen(keywords[k].w) == t->slen &&
		    memcmp(keywords[k].w, t->s, t->slen) == 0)
			return keywords[k].t;
	return T_IDENT;
}

static bool
tok_is(const struct tok *t, const char *w)
{
	return (t->t == T_IDENT || t->t == T_DOLLAR) && strlen(w) == t->slen &&
	       memcmp(t->s, w, t->slen) == 0;
}

/* ---------------------------------------------------------------- parser */

static struct ast *
mk(struct parser *p, enum nk k, int op, struct ast *l, struct ast *r)
{
	struct ast *a;

	if (p->err != GW_OK)
		return NULL;
	a = fp_ar_alloc(&p->fp->ar, sizeof(*a));
	if (!a) {
		perr(p, p->fp->ar.err, "out of memory");
		return NULL;
	}
	memset(a, 0, sizeof(*a));
	a->k = k;
	a->op = op;
	a->l = l;
	a->r = r;
	a->depth = 1 + (l ? l->depth : 0);
	if (r && r->depth + 1 > a->depth)
		a->depth = r->depth + 1;
	if (a->depth > 4 * FHIRPATH_MAX_DEPTH)
		perr(p, GW_TOOBIG, "expression nested too deeply");
	return a;
}

static struct ast *parse_expr(struct parser *p, int minprec);

static bool
expect(struct parser *p, enum tk t, const char *what)
{
	if (p->err != GW_OK)
		return false;
	if (p->cur.t != t) {
		perr(p, GW_PARSE, "%s expected at offset %zu", what,
		     p->cur.start);
		return false;
	}
	next(p);
	return true;
}

/* qualifiedIdentifier after is/as or inside ofType(): "Patient",
 * "FHIR.Patient", "System.String", `Patient`. */
static bool
parse_type(struct parser *p, struct ast *a)
{
	size_t start;

	if (p->cur.t != T_IDENT && p->cur.t != T_DIDENT) {
		perr(p, GW_PARSE, "type name expected at offset %zu",
		     p->cur.start);
		return false;
	}
	start = p->cur.start;
	a->name = p->cur.s;
	a->namelen = p->cur.slen;
	next(p);
	if (p->cur.t == T_DOT) {
		/* only FHIR. and System. qualifiers exist */
		if ((a->namelen == 4 && memcmp(a->name, "FHIR", 4) == 0) ||
		    (a->namelen == 6 && memcmp(a->name, "System", 6) == 0)) {
			next(p);
			if (p->cur.t != T_IDENT && p->cur.t != T_DIDENT) {
				perr(p, GW_PARSE,
				     "type name expected at offset %zu",
				     p->cur.start);
				return false;
			}
			if (a->namelen == 6) {
				/* keep "System.X" to tell it apart */
				a->name = p->src + start;
				a->namelen = p->cur.end - start;
			} else {
				a->name = p->cur.s;
				a->namelen = p->cur.slen;
			}
			next(p);
		}
	}
	a->name = fp_ar_strndup(&p->fp->ar, a->name, a->namelen);
	if (!a->name) {
		perr(p, p->fp->ar.err, "out of memory");
		return false;
	}
	return p->err == GW_OK;
}

static const struct fdef *
find_fn(const char *s, size_t n)
{
	size_t k;

	for (k = 0; k < fp_nfdefs; k++)
		if (strlen(fp_fdefs[k].name) == n &&
		    memcmp(fp_fdefs[k].name, s, n) == 0)
			return &fp_fdefs[k];
	return NULL;
}

/* Function call: name already consumed, current token is '('. */
static struct ast *
parse_call(struct parser *p, const char *name, size_t nlen)
{
	const struct fdef *f = find_fn(name, nlen);
	struct ast *a, *args[8];
	int n = 0, i;

	if (!f) {
		perr(p, GW_INVALID, "unsupported function %.*s()",
		     (int)(nlen > 64 ? 64 : nlen), name);
		return NULL;
	}
	next(p); /* ( */
	a = mk(p, N_FUNC, (int)f->id, NULL, NULL);
	if (!a)
		return NULL;
	if (p->cur.t != T_RPAREN) {
		for (;;) {
			if (n == 8) {
				perr(p, GW_PARSE, "too many arguments");
				return NULL;
			}
			if ((f->flags & FA_TYPE) && n == 0) {
				struct ast *t = mk(p, N_MEMBER, 0, NULL, NULL);

				if (!t || !parse_type(p, t))
					return NULL;
				args[n++] = t;
			} else {
				args[n] = parse_expr(p, 0);
				if (!args[n])
					return NULL;
				n++;
			}
			if (p->cur.t != T_COMMA)
				break;
			next(p);
		}
	}
	if (!expect(p, T_RPAREN, "')'"))
		return NULL;
	if (n < f->min || n > f->max) {
		perr(p, GW_PARSE, "%s() takes %d to %d arguments, got %d",
		     f->name, f->min, f->max, n);
		return NULL;
	}
	a->nargs = n;
	if (n) {
		a->args =
		    fp_ar_alloc(&p->fp->ar, sizeof(struct ast *) * (size_t)n);
		if (!a->args) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
	}
	for (i = 0; i < n; i++) {
		a->args[i] = args[i];
		if (args[i]->depth + 1 > a->depth)
			a->depth = args[i]->depth + 1;
	}
	if (a->depth > 4 * FHIRPATH_MAX_DEPTH) {
		perr(p, GW_TOOBIG, "expression nested too deeply");
		return NULL;
	}
	if (n > 0 && (f->flags & FA_TYPE)) {
		a->name = args[0]->name;
		a->namelen = args[0]->namelen;
	}
	/* a literal pattern is compiled once, here */
	if ((f->id == F_MATCHES || f->id == F_REPLACEMATCHES) && n > 0 &&
	    args[0]->k == N_LIT && args[0]->lit.kind == FHIRPATH_STRING) {
		char why[96];
		enum gw_err e;

		a->re = fp_ar_alloc(&p->fp->ar, sizeof(*a->re));
		if (!a->re) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
		e = fp_regex_compile(args[0]->lit.text, args[0]->lit.len, a->re,
				     why, sizeof(why));
		if (e != GW_OK) {
			a->re = NULL;
			perr(p, e, "%s() %s", f->name, why);
			return NULL;
		}
		a->next_re = p->fp->res;
		p->fp->res = a;
	}
	return a;
}

static const struct {
	const char *name;
	int var;
	const char *text;
} env_vars[] = {
    {"resource", VAR_RESOURCE, NULL},
    {"rootResource", VAR_ROOT, NULL},
    {"context", VAR_CONTEXT, NULL},
    {"ucum", -1, "http://unitsofmeasure.org"},
    {"sct", -1, "http://snomed.info/sct"},
    {"loinc", -1, "http://loinc.org"},
};

static struct ast *
str_lit(struct parser *p, const char *s, size_t n)
{
	struct ast *a = mk(p, N_LIT, 0, NULL, NULL);

	if (!a)
		return NULL;
	a->lit.kind = FHIRPATH_STRING;
	a->lit.text = fp_ar_strndup(&p->fp->ar, s, n);
	a->lit.len = n;
	if (!a->lit.text) {
		perr(p, p->fp->ar.err, "out of memory");
		return NULL;
	}
	return a;
}

static struct ast *
parse_env(struct parser *p)
{
	const char *s = p->cur.s;
	size_t n = p->cur.slen, k;
	struct ast *a = NULL;
	char buf[256];

	for (k = 0; k < sizeof(env_vars) / sizeof(env_vars[0]); k++) {
		if (strlen(env_vars[k].name) != n ||
		    memcmp(env_vars[k].name, s, n) != 0)
			continue;
		if (env_vars[k].text)
			a = str_lit(p, env_vars[k].text,
				    strlen(env_vars[k].text));
		else
			a = mk(p, N_VAR, env_vars[k].var, NULL, NULL);
		next(p);
		return a;
	}
	if (n > 3 && n < 200 && memcmp(s, "vs-", 3) == 0) {
		snprintf(buf, sizeof(buf), "http://hl7.org/fhir/ValueSet/%.*s",
			 (int)(n - 3), s + 3);
		a = str_lit(p, buf, strlen(buf));
	} else if (n > 4 && n < 200 && memcmp(s, "ext-", 4) == 0) {
		snprintf(buf, sizeof(buf),
			 "http://hl7.org/fhir/StructureDefinition/%.*s",
			 (int)(n - 4), s + 4);
		a = str_lit(p, buf, strlen(buf));
	} else {
		perr(p, GW_INVALID, "unsupported variable %%%.*s",
		     (int)(n > 64 ? 64 : n), s);
		return NULL;
	}
	next(p);
	return a;
}

static bool
is_calendar_unit(const struct tok *t)
{
	static const char *const units[] = {
	    "year",	    "years",   "month",	 "months",  "week",
	    "weeks",	    "day",     "days",	 "hour",    "hours",
	    "minute",	    "minutes", "second", "seconds", "millisecond",
	    "milliseconds", NULL};
	size_t k;

	for (k = 0; units[k]; k++)
		if (tok_is(t, units[k]))
			return true;
	return false;
}

static struct ast *
parse_term(struct parser *p)
{
	struct ast *a = NULL;
	struct tok t = p->cur;

	switch (t.t) {
	case T_LPAREN:
		next(p);
		a = parse_expr(p, 0);
		if (!expect(p, T_RPAREN, "')'"))
			return NULL;
		return a;
	case T_LBRACE:
		next(p);
		if (!expect(p, T_RBRACE, "'}'"))
			return NULL;
		return mk(p, N_EMPTY, 0, NULL, NULL);
	case T_STRING:
		a = mk(p, N_LIT, 0, NULL, NULL);
		if (!a)
			return NULL;
		a->lit.kind = FHIRPATH_STRING;
		a->lit.text = t.s;
		a->lit.len = t.slen;
		next(p);
		return a;
	case T_NUMBER: {
		bool dec = memchr(t.s, '.', t.slen) != NULL;

		next(p);
		if (p->cur.t == T_STRING || is_calendar_unit(&p->cur)) {
			perr(p, GW_INVALID,
			     "unsupported quantity literal at "
			     "offset %zu",
			     t.start);
			return NULL;
		}
		a = mk(p, N_LIT, 0, NULL, NULL);
		if (!a)
			return NULL;
		if (!dec) {
			int64_t v = 0;
			size_t k;

			for (k = 0; k < t.slen && !dec; k++) {
				if (v > (INT64_MAX - 9) / 10)
					dec = true; /* too big: decimal */
				else
					v = v * 10 + (t.s[k] - '0');
			}
			a->lit.kind = FHIRPATH_INTEGER;
			a->lit.i = v;
		}
		if (dec) {
			a->lit.kind = FHIRPATH_DECIMAL;
			a->lit.text = fp_ar_strndup(&p->fp->ar, t.s, t.slen);
			a->lit.len = t.slen;
			if (!a->lit.text) {
				perr(p, p->fp->ar.err, "out of memory");
				return NULL;
			}
		}
		return a;
	}
	case T_DATE:
	case T_DATETIME:
	case T_TIME: {
		struct fdate tmp;

		a = mk(p, N_LIT, 0, NULL, NULL);
		if (!a)
			return NULL;
		a->lit.kind = t.t == T_DATE   ? FHIRPATH_DATE
			      : t.t == T_TIME ? FHIRPATH_TIME
					      : FHIRPATH_DATETIME;
		/* "@2014T" is a dateTime of year precision */
		a->lit.len = t.slen;
		if (t.t == T_TIME) {
			a->lit.len--;
			a->lit.text =
			    fp_ar_strndup(&p->fp->ar, t.s + 1, t.slen - 1);
		} else {
			if (t.slen && t.s[t.slen - 1] == 'T')
				a->lit.len--;
			a->lit.text =
			    fp_ar_strndup(&p->fp->ar, t.s, a->lit.len);
		}
		if (!a->lit.text) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
		if (!fdate_parse(a->lit.text, a->lit.len,
				 a->lit.kind == FHIRPATH_TIME ? FDATE_TIME
							      : FDATE_DATETIME,
				 &tmp)) {
			perr(p, GW_PARSE, "bad date/time literal at offset %zu",
			     t.start);
			return NULL;
		}
		next(p);
		return a;
	}
	case T_ENV:
		return parse_env(p);
	case T_DOLLAR:
		if (tok_is(&t, "this"))
			a = mk(p, N_THIS, 0, NULL, NULL);
		else if (tok_is(&t, "index"))
			a = mk(p, N_INDEX, 0, NULL, NULL);
		else if (tok_is(&t, "total"))
			perr(p, GW_INVALID, "unsupported variable $total");
		else
			perr(p, GW_PARSE, "unknown $%.*s",
			     (int)(t.slen > 32 ? 32 : t.slen), t.s);
		next(p);
		return a;
	case T_IDENT:
	case T_DIDENT:
		if (t.t == T_IDENT &&
		    (tok_is(&t, "true") || tok_is(&t, "false"))) {
			a = mk(p, N_LIT, 0, NULL, NULL);
			if (!a)
				return NULL;
			a->lit.kind = FHIRPATH_BOOLEAN;
			a->lit.b = tok_is(&t, "true");
			next(p);
			return a;
		}
		next(p);
		if (p->cur.t == T_LPAREN && t.t == T_IDENT)
			return parse_call(p, t.s, t.slen);
		a = mk(p, N_MEMBER, 0, NULL, NULL);
		if (!a)
			return NULL;
		a->name = fp_ar_strndup(&p->fp->ar, t.s, t.slen);
		a->namelen = t.slen;
		if (!a->name) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
		return a;
	case T_ERR:
		return NULL;
	default:
		perr(p, GW_PARSE, "unexpected %s at offset %zu",
		     t.t == T_EOF ? "end of expression" : "token", t.start);
		return NULL;
	}
}

/* term followed by .invocation and [index] */
static struct ast *
parse_postfix(struct parser *p)
{
	struct ast *a = parse_term(p), *r;

	while (a && p->err == GW_OK) {
		if (p->cur.t == T_DOT) {
			struct tok t;

			next(p);
			t = p->cur;
			if (t.t == T_DOLLAR || t.t == T_IDENT ||
			    t.t == T_DIDENT) {
				if (t.t == T_IDENT && (tok_is(&t, "true") ||
						       tok_is(&t, "false"))) {
					perr(p, GW_PARSE,
					     "name expected at offset %zu",
					     t.start);
					return NULL;
				}
				r = parse_term(p);
			} else {
				perr(p, GW_PARSE, "name expected at offset %zu",
				     t.start);
				return NULL;
			}
			a = mk(p, N_DOT, 0, a, r);
			if (!r)
				return NULL;
		} else if (p->cur.t == T_LBRACK) {
			next(p);
			r = parse_expr(p, 0);
			if (!expect(p, T_RBRACK, "']'"))
				return NULL;
			a = mk(p, N_INDEXER, 0, a, r);
		} else {
			break;
		}
	}
	return p->err == GW_OK ? a : NULL;
}

static struct ast *
parse_unary(struct parser *p)
{
	struct ast *a;
	enum tk t = p->cur.t;

	if (t != T_MINUS && t != T_PLUS)
		return parse_postfix(p);
	if (++p->depth > FHIRPATH_MAX_DEPTH) {
		perr(p, GW_TOOBIG, "expression nested too deeply");
		return NULL;
	}
	next(p);
	a = parse_unary(p);
	p->depth--;
	if (!a || t == T_PLUS)
		return a;
	if (a->k == N_LIT && a->lit.kind == FHIRPATH_INTEGER) {
		a->lit.i = -a->lit.i;
		return a;
	}
	if (a->k == N_LIT && a->lit.kind == FHIRPATH_DECIMAL) {
		char *s = fp_ar_alloc(&p->fp->ar, a->lit.len + 2);

		if (!s) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
		s[0] = '-';
		memcpy(s + 1, a->lit.text, a->lit.len + 1);
		a->lit.text = s;
		a->lit.len++;
		return a;
	}
	return mk(p, N_NEG, 0, a, NULL);
}

/* Binding power of the operator at the current token, 0 if none. */
static int
binprec(const struct tok *t, enum tk *op)
{
	*op = keyword(t);
	switch (*op) {
	case T_IMPLIES:
		return 1;
	case T_OR:
	case T_XOR:
		return 2;
	case T_AND:
		return 3;
	case T_IN:
	case T_CONTAINS:
		return 4;
	case T_EQ:
	case T_NE:
	case T_EQUIV:
	case T_NEQUIV:
		return 5;
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
		return 6;
	case T_PIPE:
		return 7;
	case T_IS:
	case T_AS:
		return 8;
	case T_PLUS:
	case T_MINUS:
	case T_AMP:
		return 9;
	case T_STAR:
	case T_SLASH:
	case T_DIV:
	case T_MOD:
		return 10;
	default:
		return 0;
	}
}

static struct ast *
parse_expr(struct parser *p, int minprec)
{
	struct ast *l, *r;
	enum tk op;
	int prec;

	if (++p->depth > FHIRPATH_MAX_DEPTH) {
		perr(p, GW_TOOBIG, "expression nested too deeply");
		return NULL;
	}
	l = parse_unary(p);
	while (l && p->err == GW_OK) {
		prec = binprec(&p->cur, &op);
		if (prec == 0 || prec <= minprec)
			break;
		next(p);
		if (op == T_IS || op == T_AS) {
			l = mk(p, N_TYPE, (int)op, l, NULL);
			if (!l || !parse_type(p, l))
				l = NULL;
			continue;
		}
		r = parse_expr(p, prec);
		if (!r)
			l = NULL;
		else
			l = mk(p, N_BIN, (int)op, l, r);
	}
	p->depth--;
	return p->err == GW_OK ? l : NULL;
}

void
fhirpath_free(struct fhirpath *fp)
{
	struct ast *a;

	if (!fp)
		return;
	for (a = fp->res; a; a = a->next_re)
		regfree(a->re);
	fp_ar_cleanup(&fp->ar);
	free(fp);
}

const char *
fhirpath_text(const struct fhirpath *fp)
{
	return fp->text;
}

enum gw_err
fhirpath_compile(const char *expr, struct fhirpath **out, char *errbuf,
		 size_t errlen)
{
	struct parser p;
	struct fhirpath *fp;
	size_t len;

	*out = NULL;
	if (errbuf && errlen)
		errbuf[0] = '\0';
	len = strlen(expr);
	if (len > FHIRPATH_MAX_EXPR) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "expression too long");
		return GW_TOOBIG;
	}
	fp = calloc(1, sizeof(*fp));
	if (!fp)
		return GW_NOMEM;
	fp_ar_init(&fp->ar, NULL, 0, 16u * 1024 * 1024);
	memset(&p, 0, sizeof(p));
	p.src = expr;
	p.len = len;
	p.fp = fp;
	p.errbuf = errbuf;
	p.errlen = errlen;
	fp->text = fp_ar_strndup(&fp->ar, expr, len);
	if (!fp->text) {
		fhirpath_free(fp);
		return GW_NOMEM;
	}
	next(&p);
	fp->root = parse_expr(&p, 0);
	if (p.err == GW_OK && p.cur.t != T_EOF)
		perr(&p, GW_PARSE, "unexpected token at offset %zu",
		     p.cur.start);
	if (p.err != GW_OK || !fp->root) {
		if (p.err == GW_OK)
			perr(&p, GW_PARSE, "syntax error");
		fhirpath_free(fp);
		return p.err;
	}
	*out = fp;
	return GW_OK;
}
