/*
 * fhirpath: lexer, Pratt parser and tree-walking evaluator for the FHIRPath
 * subset of FHIR invariants, over fjson documents. One arena per evaluation.
 */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fdate.h"
#include "fdecimal.h"
#include "fhirpath.h"
#include "util.h"

/* ---------------------------------------------------------------- arena */

#define AR_CHUNK  65536
#define AR_ALIGN  16
#define MAX_STEPS 50000000u /* bounds the work of one evaluation */

struct chunk {
	struct chunk *next;
	size_t size;
};

struct arena {
	char *buf; /* current block */
	size_t cap, used;
	struct chunk *chunks; /* malloc'd blocks */
	size_t total, max;
	size_t next;	 /* size of the next block: doubles up to AR_CHUNK */
	enum gw_err err; /* why the last allocation failed */
};

#define CHUNK_HDR                                                              \
	((sizeof(struct chunk) + AR_ALIGN - 1) & ~(size_t)(AR_ALIGN - 1))

static void
ar_init(struct arena *a, void *first, size_t firstlen, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->buf = first;
	a->cap = first ? firstlen : 0;
	a->max = max;
	/* a compiled expression is small; an evaluation may grow */
	a->next = first ? AR_CHUNK / 4 : 1024;
}

static void
ar_cleanup(struct arena *a)
{
	struct chunk *c, *n;

	for (c = a->chunks; c; c = n) {
		n = c->next;
		free(c);
	}
	a->chunks = NULL;
}

static void *
ar_alloc(struct arena *a, size_t n)
{
	void *p;
	size_t sz;
	struct chunk *c;

	if (n > a->max) {
		a->err = GW_TOOBIG;
		return NULL;
	}
	n = (n + AR_ALIGN - 1) & ~(size_t)(AR_ALIGN - 1);
	if (n == 0)
		n = AR_ALIGN;
	if (!a->buf || n > a->cap - a->used) {
		sz = n + CHUNK_HDR > a->next ? n + CHUNK_HDR : a->next;
		if (a->next < AR_CHUNK)
			a->next *= 2;
		if (a->total + sz > a->max) {
			a->err = GW_TOOBIG;
			return NULL;
		}
		c = malloc(sz);
		if (!c) {
			a->err = GW_NOMEM;
			return NULL;
		}
		c->next = a->chunks;
		c->size = sz;
		a->chunks = c;
		a->total += sz;
		a->buf = (char *)c + CHUNK_HDR;
		a->cap = sz - CHUNK_HDR;
		a->used = 0;
	}
	p = a->buf + a->used;
	a->used += n;
	return p;
}

static char *
ar_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = ar_alloc(a, n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

/* ---------------------------------------------------------------- types */

/* FHIR data types (R4 and STU3) a choice suffix may name. */
static const char *const fhir_types[] = {"base64Binary",
					 "boolean",
					 "canonical",
					 "code",
					 "date",
					 "dateTime",
					 "decimal",
					 "id",
					 "instant",
					 "integer",
					 "integer64",
					 "markdown",
					 "oid",
					 "positiveInt",
					 "string",
					 "time",
					 "unsignedInt",
					 "uri",
					 "url",
					 "uuid",
					 "xhtml",
					 "Address",
					 "Age",
					 "Annotation",
					 "Attachment",
					 "CodeableConcept",
					 "CodeableReference",
					 "Coding",
					 "ContactDetail",
					 "ContactPoint",
					 "Contributor",
					 "Count",
					 "DataRequirement",
					 "Distance",
					 "Dosage",
					 "Duration",
					 "Expression",
					 "Extension",
					 "HumanName",
					 "Identifier",
					 "Meta",
					 "Money",
					 "MoneyQuantity",
					 "Narrative",
					 "ParameterDefinition",
					 "Period",
					 "Quantity",
					 "Range",
					 "Ratio",
					 "RatioRange",
					 "Reference",
					 "RelatedArtifact",
					 "SampledData",
					 "Signature",
					 "SimpleQuantity",
					 "Timing",
					 "TriggerDefinition",
					 "UsageContext",
					 "Element",
					 "BackboneElement",
					 "ElementDefinition",
					 "MarketingStatus",
					 "Population",
					 "ProdCharacteristic",
					 "ProductShelfLife",
					 "SubstanceAmount",
					 "Availability",
					 "ExtendedContactDetail",
					 "MonetaryComponent",
					 "VirtualServiceDetail",
					 NULL};

/* Index of the first primitive-type entry past the primitives. */
#define FHIR_PRIMITIVES 21

/* The table entry the choice suffix s (first letter uppercase) names. */
static const char *
suffix_type(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !isupper((unsigned char)s[0]))
		return NULL;
	for (i = 0; fhir_types[i]; i++) {
		const char *t = fhir_types[i];

		if (strlen(t) == n &&
		    tolower((unsigned char)t[0]) ==
			tolower((unsigned char)s[0]) &&
		    memcmp(t + 1, s + 1, n - 1) == 0)
			return t;
	}
	return NULL;
}

static bool
is_primitive_type(const char *t)
{
	size_t i;

	for (i = 0; i < FHIR_PRIMITIVES; i++)
		if (strcmp(fhir_types[i], t) == 0)
			return true;
	return false;
}

static bool
is_datatype(const char *t)
{
	size_t i;

	for (i = 0; fhir_types[i]; i++)
		if (strcmp(fhir_types[i], t) == 0)
			return true;
	return strcmp(t, "Resource") == 0 || strcmp(t, "DomainResource") == 0;
}

/* ---------------------------------------------------------------- AST */

enum tk {
	T_EOF,
	T_ERR,
	T_IDENT,
	T_DIDENT, /* `delimited` */
	T_STRING,
	T_NUMBER,
	T_DATE,
	T_DATETIME,
	T_TIME,
	T_ENV,	  /* %name */
	T_DOLLAR, /* $this, $index, $total */
	T_LPAREN,
	T_RPAREN,
	T_LBRACK,
	T_RBRACK,
	T_LBRACE,
	T_RBRACE,
	T_DOT,
	T_COMMA,
	T_EQ,
	T_NE,
	T_EQUIV,
	T_NEQUIV,
	T_LT,
	T_LE,
	T_GT,
	T_GE,
	T_PIPE,
	T_AMP,
	T_PLUS,
	T_MINUS,
	T_STAR,
	T_SLASH,
	/* keyword operators (identifiers in the source) */
	T_AND,
	T_OR,
	T_XOR,
	T_IMPLIES,
	T_IN,
	T_CONTAINS,
	T_DIV,
	T_MOD,
	T_IS,
	T_AS
};

enum nk {
	N_LIT,	   /* lit */
	N_EMPTY,   /* {} */
	N_MEMBER,  /* name */
	N_THIS,	   /* $this */
	N_INDEX,   /* $index */
	N_VAR,	   /* op: VAR_* */
	N_FUNC,	   /* op: F_*, args */
	N_DOT,	   /* l . r */
	N_INDEXER, /* l [ r ] */
	N_NEG,	   /* - l */
	N_BIN,	   /* l op r, op a token */
	N_TYPE	   /* l is/as name, op T_IS/T_AS */
};

enum { VAR_RESOURCE, VAR_ROOT, VAR_CONTEXT };

enum fn {
	F_EMPTY,
	F_EXISTS,
	F_NOT,
	F_ALL,
	F_COUNT,
	F_HASVALUE,
	F_EXTENSION,
	F_OFTYPE,
	F_AS,
	F_IS,
	F_WHERE,
	F_SELECT,
	F_REPEAT,
	F_CHILDREN,
	F_DESCENDANTS,
	F_FIRST,
	F_LAST,
	F_TAIL,
	F_SKIP,
	F_TAKE,
	F_SINGLE,
	F_DISTINCT,
	F_ISDISTINCT,
	F_IIF,
	F_TRACE,
	F_STARTSWITH,
	F_ENDSWITH,
	F_CONTAINS,
	F_MATCHES,
	F_REPLACEMATCHES,
	F_REPLACE,
	F_LENGTH,
	F_TOSTRING,
	F_TOINTEGER,
	F_TODECIMAL,
	F_SUBSTRING,
	F_UPPER,
	F_LOWER,
	F_INDEXOF,
	F_TODAY,
	F_NOW,
	F_HTMLCHECKS,
	F_SUBSETOF,
	F_SUPERSETOF,
	F_INTERSECT,
	F_EXCLUDE,
	F_UNION,
	F_COMBINE,
	F_ALLTRUE,
	F_ANYTRUE,
	F_ALLFALSE,
	F_ANYFALSE,
	F_MEMBEROF,
	F_RESOLVE,
	F_TRIM,
	F_TOBOOLEAN,
	F_CONVERTSTOBOOLEAN,
	F_CONVERTSTOINTEGER,
	F_CONVERTSTODECIMAL,
	F_CONVERTSTOSTRING,
	F_CONVERTSTODATE,
	F_CONVERTSTODATETIME
};

#define FA_LAMBDA 0x1u /* arguments are evaluated per input item */
#define FA_TYPE	  0x2u /* the argument is a type specifier */

struct fdef {
	const char *name;
	enum fn id;
	int min, max;
	unsigned flags;
};

static const struct fdef fdefs[] = {
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

struct ast {
	enum nk k;
	int op;
	int depth;
	struct ast *l, *r;
	struct ast **args;
	int nargs;
	const char *name; /* N_MEMBER; type name of N_TYPE, ofType/as/is */
	size_t namelen;
	struct fhirpath_item lit; /* N_LIT */
	regex_t *re;		  /* matches/replaceMatches on a literal */
	struct ast *next_re;	  /* list of nodes owning a regex */
};

struct fhirpath {
	struct arena ar;
	struct ast *root;
	struct ast *res; /* nodes with a compiled regex */
	char *text;
};

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

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
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
	out = ar_alloc(&p->fp->ar, end - i + 8);
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
				h = i + k < p->len ? hexval(s[i + k]) : -1;
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

/* ---------------------------------------------------------------- regex */

/*
 * Translate a FHIRPath (Perl-flavoured) regular expression into POSIX ERE:
 * \d \D \s \S \w \W become classes, other escapes become the literal
 * character, bracket expressions are rebuilt so that ] and - sit where
 * POSIX wants them. Returns false (and a reason) for constructs POSIX
 * lacks: lazy quantifiers, look-around, inline flags, back-references.
 */
static bool
regex_translate(const char *re, size_t n, struct buf *out, const char **why)
{
	size_t i = 0;

	while (i < n) {
		char c = re[i];

		if (c == '\\') {
			char e;

			if (++i >= n) {
				*why = "trailing backslash";
				return false;
			}
			e = re[i++];
			switch (e) {
			case 'd':
				buf_adds(out, "[0-9]");
				break;
			case 'D':
				buf_adds(out, "[^0-9]");
				break;
			case 's':
				buf_adds(out, "[[:space:]]");
				break;
			case 'S':
				buf_adds(out, "[^[:space:]]");
				break;
			case 'w':
				buf_adds(out, "[A-Za-z0-9_]");
				break;
			case 'W':
				buf_adds(out, "[^A-Za-z0-9_]");
				break;
			case 'n':
				buf_addc(out, '\n');
				break;
			case 't':
				buf_addc(out, '\t');
				break;
			case 'r':
				buf_addc(out, '\r');
				break;
			default:
				if (isalnum((unsigned char)e)) {
					*why = "unsupported escape";
					return false;
				}
				if (strchr(".[]()*+?{}|^$\\", e))
					buf_addc(out, '\\');
				buf_addc(out, e);
			}
		} else if (c == '[') {
			/* collect the set, then emit it in POSIX order */
			bool neg = false, rbrack = false, dash = false,
			     caret = false, lbrack = false;
			struct buf set;

			buf_init(&set, n * 16 + 16);
			i++;
			if (i < n && re[i] == '^') {
				neg = true;
				i++;
			}
			if (i < n && re[i] == ']') {
				rbrack = true; /* literal when first */
				i++;
			}
			while (i < n && re[i] != ']') {
				char a = re[i++];

				if (a == '\\' && i < n) {
					char e = re[i++];

					if (e == 'd')
						buf_adds(&set, "0-9");
					else if (e == 's')
						buf_adds(&set, "[:space:]");
					else if (e == 'w')
						buf_adds(&set, "A-Za-z0-9_");
					else if (e == 'n')
						buf_addc(&set, '\n');
					else if (e == 't')
						buf_addc(&set, '\t');
					else if (e == 'r')
						buf_addc(&set, '\r');
					else if (e == ']')
						rbrack = true;
					else if (e == '-')
						dash = true;
					else if (e == '^')
						caret = true;
					else if (e == '[')
						lbrack = true;
					else if (isalnum((unsigned char)e)) {
						buf_cleanup(&set);
						*why = "unsupported escape in "
						       "a set";
						return false;
					} else
						buf_addc(&set, e);
				} else if (a == '[' && i < n && re[i] == ':') {
					const char *e = strstr(re + i, ":]");

					if (!e || (size_t)(e - re) >= n) {
						buf_cleanup(&set);
						*why = "bad class";
						return false;
					}
					buf_addc(&set, '[');
					buf_add(&set, re + i,
						(size_t)(e - re) + 2 - i);
					i = (size_t)(e - re) + 2;
				} else if (a == '-' &&
					   (set.len == 0 || i >= n ||
					    re[i] == ']')) {
					dash = true;
				} else if (a == '^') {
					caret = true;
				} else if (a == '[') {
					/* literal: never before . : = */
					lbrack = true;
				} else {
					buf_addc(&set, a);
				}
			}
			if (i >= n) {
				buf_cleanup(&set);
				*why = "unterminated [";
				return false;
			}
			i++; /* ] */
			buf_addc(out, '[');
			if (neg)
				buf_addc(out, '^');
			if (rbrack)
				buf_addc(out, ']');
			if (set.len)
				buf_add(out, set.data, set.len);
			if (lbrack)
				buf_addc(out, '[');
			if (caret)
				buf_addc(out, '^');
			if (dash)
				buf_addc(out, '-');
			if (!rbrack && !set.len && !caret && !dash && !lbrack) {
				buf_cleanup(&set);
				*why = "empty set";
				return false;
			}
			buf_addc(out, ']');
			buf_cleanup(&set);
		} else if (c == '(' && i + 1 < n && re[i + 1] == '?') {
			*why = "(? groups";
			return false;
		} else if ((c == '?' || c == '+') && i > 0 &&
			   strchr("*+?}", re[i - 1]) &&
			   (i < 2 || re[i - 2] != '\\')) {
			*why = "lazy or possessive quantifier";
			return false;
		} else {
			buf_addc(out, c);
			i++;
		}
	}
	return out->data != NULL || n == 0;
}

/* Compile a FHIRPath regex into *re (caller regfree()s on success). */
static enum gw_err
regex_compile(const char *pat, size_t n, regex_t *re, char *why, size_t whylen)
{
	struct buf b;
	const char *reason = "bad pattern";
	enum gw_err e = GW_OK;

	buf_init(&b, n * 16 + 64);
	if (!regex_translate(pat, n, &b, &reason) || buf_addc(&b, '\0')) {
		snprintf(why, whylen, "unsupported regular expression (%s)",
			 reason);
		e = GW_INVALID;
		goto out;
	}
	if (regcomp(re, b.data, REG_EXTENDED) != 0) {
		snprintf(why, whylen, "invalid regular expression");
		e = GW_INVALID;
	}
out:
	buf_cleanup(&b);
	return e;
}

/* ---------------------------------------------------------------- parser */

static struct ast *
mk(struct parser *p, enum nk k, int op, struct ast *l, struct ast *r)
{
	struct ast *a;

	if (p->err != GW_OK)
		return NULL;
	a = ar_alloc(&p->fp->ar, sizeof(*a));
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
	a->name = ar_strndup(&p->fp->ar, a->name, a->namelen);
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

	for (k = 0; k < sizeof(fdefs) / sizeof(fdefs[0]); k++)
		if (strlen(fdefs[k].name) == n &&
		    memcmp(fdefs[k].name, s, n) == 0)
			return &fdefs[k];
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
		    ar_alloc(&p->fp->ar, sizeof(struct ast *) * (size_t)n);
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

		a->re = ar_alloc(&p->fp->ar, sizeof(*a->re));
		if (!a->re) {
			perr(p, p->fp->ar.err, "out of memory");
			return NULL;
		}
		e = regex_compile(args[0]->lit.text, args[0]->lit.len, a->re,
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
	a->lit.text = ar_strndup(&p->fp->ar, s, n);
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
			a->lit.text = ar_strndup(&p->fp->ar, t.s, t.slen);
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
			    ar_strndup(&p->fp->ar, t.s + 1, t.slen - 1);
		} else {
			if (t.slen && t.s[t.slen - 1] == 'T')
				a->lit.len--;
			a->lit.text = ar_strndup(&p->fp->ar, t.s, a->lit.len);
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
		a->name = ar_strndup(&p->fp->ar, t.s, t.slen);
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
		char *s = ar_alloc(&p->fp->ar, a->lit.len + 2);

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
	ar_cleanup(&fp->ar);
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
	ar_init(&fp->ar, NULL, 0, 16u * 1024 * 1024);
	memset(&p, 0, sizeof(p));
	p.src = expr;
	p.len = len;
	p.fp = fp;
	p.errbuf = errbuf;
	p.errlen = errlen;
	fp->text = ar_strndup(&fp->ar, expr, len);
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

/* ---------------------------------------------------------------- eval */

typedef struct fhirpath_item item_t;

struct coll {
	item_t *v;
	size_t n;
};

/* A collection being built in the arena. */
struct cb {
	item_t *v;
	size_t n, cap;
};

struct ectx {
	struct arena ar;
	const struct fhirpath_env *env;
	struct coll thisc; /* $this as a collection */
	int64_t index;	   /* $index */
	struct coll context, resource, root;
	unsigned long steps;
	char *errbuf;
	size_t errlen;
};

static enum gw_err efail(struct ectx *x, enum gw_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum gw_err
efail(struct ectx *x, enum gw_err e, const char *fmt, ...)
{
	va_list ap;

	if (x->errbuf && x->errlen && x->errbuf[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(x->errbuf, x->errlen, fmt, ap);
		va_end(ap);
	}
	return e;
}

static enum gw_err
enomem(struct ectx *x)
{
	return efail(x, x->ar.err,
		     x->ar.err == GW_TOOBIG ? "evaluation uses too much memory"
					    : "out of memory");
}

static enum gw_err
cb_push(struct ectx *x, struct cb *b, const item_t *it)
{
	if (++x->steps > MAX_STEPS)
		return efail(x, GW_TOOBIG, "evaluation takes too long");
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 4;
		item_t *nv;

		if (b->n >= FHIRPATH_MAX_ITEMS)
			return efail(x, GW_TOOBIG, "collection too large");
		nv = ar_alloc(&x->ar, nc * sizeof(*nv));
		if (!nv)
			return enomem(x);
		if (b->n)
			memcpy(nv, b->v, b->n * sizeof(*nv));
		b->v = nv;
		b->cap = nc;
	}
	b->v[b->n++] = *it;
	return GW_OK;
}

static enum gw_err
cb_append(struct ectx *x, struct cb *b, const struct coll *c)
{
	size_t i;
	enum gw_err e;

	for (i = 0; i < c->n; i++)
		if ((e = cb_push(x, b, &c->v[i])) != GW_OK)
			return e;
	return GW_OK;
}

static void
cb_done(struct cb *b, struct coll *out)
{
	out->v = b->v;
	out->n = b->n;
}

static enum gw_err
one(struct ectx *x, const item_t *it, struct coll *out)
{
	item_t *v = ar_alloc(&x->ar, sizeof(*v));

	if (!v)
		return enomem(x);
	*v = *it;
	out->v = v;
	out->n = 1;
	return GW_OK;
}

static enum gw_err
one_bool(struct ectx *x, bool b, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_BOOLEAN;
	it.b = b;
	return one(x, &it, out);
}

static enum gw_err
one_int(struct ectx *x, int64_t v, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_INTEGER;
	it.i = v;
	return one(x, &it, out);
}

/* A string item; s is copied into the arena unless copy is false. */
static enum gw_err
one_str(struct ectx *x, enum fhirpath_kind kind, const char *s, size_t n,
	bool copy, struct coll *out)
{
	item_t it;

	memset(&it, 0, sizeof(it));
	it.kind = kind;
	it.text = copy ? ar_strndup(&x->ar, s, n) : s;
	it.len = n;
	if (!it.text)
		return enomem(x);
	return one(x, &it, out);
}

/* Three-valued result as a collection. */
static enum gw_err
one_b3(struct ectx *x, enum fhirpath_bool b, struct coll *out)
{
	if (b == FHIRPATH_EMPTY) {
		out->n = 0;
		return GW_OK;
	}
	return one_bool(x, b == FHIRPATH_TRUE, out);
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

static const char *
node_rtype(const struct fj_node *n)
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
		return suffix_type(key + choice, keylen - choice);
	for (i = 0; choice_names[i]; i++) {
		size_t n = strlen(choice_names[i]);

		if (keylen > n && memcmp(key, choice_names[i], n) == 0 &&
		    (t = suffix_type(key + n, keylen - n)) != NULL)
			return t;
	}
	return NULL;
}

/* Push the item(s) of one member: val (may be NULL) and its _x part ext
 * (may be NULL); arrays pair element by element. */
static enum gw_err
emit_member(struct ectx *x, const struct fj_node *val,
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
				const char *rt = node_rtype(it.node);

				it.type = rt ? rt : type;
				if ((e = cb_push(x, out, &it)) != GW_OK)
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
	it.type = node_rtype(it.node);
	if (!it.type)
		it.type = type;
	return cb_push(x, out, &it);
}

/* The object whose members an item has: itself, or for a primitive its
 * _x part (id, extension). */
static const struct fj_node *
item_obj(const item_t *it)
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

static const struct fj_node *
find_key(const struct fj_node *obj, const char *s, size_t n)
{
	const struct fj_node *m;

	for (m = obj->u.kids.first; m; m = m->next)
		if (key_eq(m, s, n))
			return m;
	return NULL;
}

/* it.name: the member, its _name part, or the choice members name[Type]. */
static enum gw_err
nav_member(struct ectx *x, const item_t *it, const char *name, size_t n,
	   struct cb *out)
{
	const struct fj_node *obj = item_obj(it), *m, *val = NULL, *ext = NULL;
	enum gw_err e;

	if (++x->steps > MAX_STEPS)
		return efail(x, GW_TOOBIG, "evaluation takes too long");
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

		return emit_member(x, val, ext, t, out);
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
			if ((e = emit_member(x, m, ext, t, out)) != GW_OK)
				return e;
		} else if (is_choice_key(m, 1, name, n) && m->key[0] == '_' &&
			   !find_key(obj, m->key + 1, m->keylen - 1)) {
			klen = m->keylen - 1;
			t = member_type(x, obj, it->type, m->key + 1, klen, n);
			if (!t)
				continue;
			if ((e = emit_member(x, NULL, m, t, out)) != GW_OK)
				return e;
		}
	}
	return GW_OK;
}

/* children(): every member's item(s), primitives paired with _x. */
static enum gw_err
nav_children(struct ectx *x, const item_t *it, struct cb *out)
{
	const struct fj_node *obj = item_obj(it), *m, *other;
	enum gw_err e;

	if (!obj)
		return GW_OK;
	for (m = obj->u.kids.first; m; m = m->next) {
		const char *t;

		if (++x->steps > MAX_STEPS)
			return efail(x, GW_TOOBIG, "evaluation takes too long");
		if (key_eq(m, "resourceType", 12) ||
		    key_eq(m, "fhir_comments", 13))
			continue;
		if (m->keylen > 0 && m->key[0] == '_') {
			if (find_key(obj, m->key + 1, m->keylen - 1))
				continue; /* emitted with its value */
			t = member_type(x, obj, it->type, m->key + 1,
					m->keylen - 1, 0);
			e = emit_member(x, NULL, m, t, out);
		} else {
			other = find_ext(obj, m->key, m->keylen);
			t = member_type(x, obj, it->type, m->key, m->keylen, 0);
			e = emit_member(x, m, other, t, out);
		}
		if (e != GW_OK)
			return e;
	}
	return GW_OK;
}

/* ---------------------------------------------------------------- types */

static const char *const string_family[] = {
    "string",	 "code", "id",	 "markdown",	 "uri",	  "url",
    "canonical", "oid",	 "uuid", "base64Binary", "xhtml", NULL};

static bool
in_list(const char *const *l, const char *t)
{
	for (; *l; l++)
		if (strcmp(*l, t) == 0)
			return true;
	return false;
}

/* Whether FHIR type t is, or specialises, FHIR type want. */
static bool
fhir_type_is(const char *t, const char *want)
{
	static const char *const quantities[] = {
	    "Quantity",	      "Age",	       "Count", "Distance", "Duration",
	    "SimpleQuantity", "MoneyQuantity", NULL};

	if (strcmp(t, want) == 0)
		return true;
	if (strcmp(want, "Element") == 0 || strcmp(want, "Base") == 0)
		return true;
	if (strcmp(want, "Resource") == 0)
		return !is_datatype(t);
	if (strcmp(want, "DomainResource") == 0)
		return !is_datatype(t) && strcmp(t, "Bundle") != 0 &&
		       strcmp(t, "Binary") != 0 && strcmp(t, "Parameters") != 0;
	if (strcmp(want, "string") == 0)
		return strcmp(t, "code") == 0 || strcmp(t, "id") == 0 ||
		       strcmp(t, "markdown") == 0;
	if (strcmp(want, "uri") == 0)
		return strcmp(t, "url") == 0 || strcmp(t, "canonical") == 0 ||
		       strcmp(t, "oid") == 0 || strcmp(t, "uuid") == 0;
	if (strcmp(want, "integer") == 0)
		return strcmp(t, "positiveInt") == 0 ||
		       strcmp(t, "unsignedInt") == 0;
	if (strcmp(want, "Quantity") == 0)
		return in_list(quantities, t);
	return false;
}

/* The System type a FHIR primitive maps to ("Boolean"), or NULL. */
static const char *
system_of(const char *t)
{
	if (strcmp(t, "boolean") == 0)
		return "Boolean";
	if (in_list(string_family, t))
		return "String";
	if (strcmp(t, "integer") == 0 || strcmp(t, "positiveInt") == 0 ||
	    strcmp(t, "unsignedInt") == 0)
		return "Integer";
	if (strcmp(t, "decimal") == 0)
		return "Decimal";
	if (strcmp(t, "dateTime") == 0 || strcmp(t, "instant") == 0)
		return "DateTime";
	if (strcmp(t, "date") == 0)
		return "Date";
	if (strcmp(t, "time") == 0)
		return "Time";
	return NULL;
}

static const char *
kind_system(enum fhirpath_kind k)
{
	switch (k) {
	case FHIRPATH_BOOLEAN:
		return "Boolean";
	case FHIRPATH_INTEGER:
		return "Integer";
	case FHIRPATH_DECIMAL:
		return "Decimal";
	case FHIRPATH_STRING:
		return "String";
	case FHIRPATH_DATE:
		return "Date";
	case FHIRPATH_DATETIME:
		return "DateTime";
	case FHIRPATH_TIME:
		return "Time";
	default:
		return NULL;
	}
}

static bool
is_system_name(const char *t)
{
	static const char *const sys[] = {"Boolean", "String", "Integer",
					  "Decimal", "Date",   "DateTime",
					  "Time",    NULL};

	return in_list(sys, t);
}

/* The item's FHIR type as far as it can be known, or NULL. */
static const char *
item_type(const item_t *it)
{
	const char *rt;

	if (it->type)
		return it->type;
	rt = node_rtype(it->node);
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
static enum gw_err
type_is(struct ectx *x, const item_t *it, const char *want, bool *out)
{
	const char *t, *sys = NULL;

	*out = false;
	if (strncmp(want, "System.", 7) == 0)
		sys = want + 7;
	else if (is_system_name(want))
		sys = want;
	if (it->kind != FHIRPATH_NODE) {
		const char *k = kind_system(it->kind);

		*out =
		    sys ? strcmp(k, sys) == 0
			: (system_of(want) && strcmp(system_of(want), k) == 0 &&
			   (strcmp(want, "boolean") == 0 ||
			    strcmp(want, "string") == 0 ||
			    strcmp(want, "integer") == 0 ||
			    strcmp(want, "decimal") == 0 ||
			    strcmp(want, "dateTime") == 0 ||
			    strcmp(want, "date") == 0 ||
			    strcmp(want, "time") == 0));
		return GW_OK;
	}
	t = item_type(it);
	if (!t) {
		bool obj = it->node ? it->node->type == FJ_OBJECT : false;
		bool prim_want = sys || is_primitive_type(want);

		/* what the JSON shape alone decides */
		if (it->node && obj == prim_want) {
			*out = false;
			return GW_OK;
		}
		if (obj && !is_datatype(want) && strcmp(want, "Element") != 0) {
			*out = false; /* resources carry resourceType */
			return GW_OK;
		}
		return efail(x, GW_INVALID,
			     "type of an element needed for "
			     "'%s' is unknown",
			     want);
	}
	if (sys) {
		const char *s = system_of(t);

		*out = s && strcmp(s, sys) == 0;
		return GW_OK;
	}
	*out = fhir_type_is(t, want);
	return GW_OK;
}

/* ---------------------------------------------------------------- values */

enum vk { V_NONE, V_BOOL, V_INT, V_DEC, V_STR, V_DATE, V_OBJ };

struct val {
	enum vk k;
	bool b;
	int64_t i;
	const char *s;
	size_t len;
	enum fhirpath_kind dkind; /* V_DATE: DATE, DATETIME or TIME */
	const char *type;
};

static bool
parse_int(const char *s, size_t n, int64_t *out)
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

static void
item_val(const item_t *it, struct val *v)
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
			    !parse_int(v->s, v->len, &v->i))
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
static enum fhirpath_bool
item_eq(const item_t *a, const item_t *b)
{
	struct val va, vb;
	struct fdate da, db;
	struct fdec na, nb;
	int r;

	item_val(a, &va);
	item_val(b, &vb);
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

static bool
item_equiv(const item_t *a, const item_t *b)
{
	struct val va, vb;

	item_val(a, &va);
	item_val(b, &vb);
	if (va.k == V_STR && vb.k == V_STR)
		return str_equiv(va.s, va.len, vb.s, vb.len);
	return item_eq(a, b) == FHIRPATH_TRUE;
}

/* Order of two items for < > <= >=: *r, or false when uncomparable
 * (empty result); GW_INVALID for types that have no order. */
static enum gw_err
item_cmp(struct ectx *x, const item_t *a, const item_t *b, bool *ok, int *r)
{
	struct val va, vb;
	struct fdate da, db;
	struct fdec na, nb;
	size_t n;
	int c;

	item_val(a, &va);
	item_val(b, &vb);
	*ok = false;
	if (va.k == V_NONE || vb.k == V_NONE)
		return GW_OK;
	c = as_dates(&va, &vb, &da, &db);
	if (c == 1) {
		*ok = fdate_cmp(&da, &db, r);
		return GW_OK;
	}
	if (c == -1)
		return efail(x, GW_INVALID,
			     "cannot compare a date with this "
			     "value");
	if ((va.k == V_INT || va.k == V_DEC) &&
	    (vb.k == V_INT || vb.k == V_DEC)) {
		if (!to_fdec(&va, &na) || !to_fdec(&vb, &nb))
			return efail(x, GW_INVALID, "number out of range");
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
	return efail(x, GW_INVALID, "values of these types cannot be ordered");
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

	item_val(it, &v);
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
	h->head = ar_alloc(&x->ar, h->nb * sizeof(*h->head));
	h->next = ar_alloc(&x->ar, (c->n + 1) * sizeof(*h->next));
	h->hash = ar_alloc(&x->ar, (c->n + 1) * sizeof(*h->hash));
	if (!h->head || !h->next || !h->hash)
		return enomem(x);
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
		if (h->hash[k] == hv && item_eq(&h->v[k], it) == FHIRPATH_TRUE)
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
static enum gw_err
distinct(struct ectx *x, const struct coll *c, struct coll *out)
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
		if ((e = cb_push(x, &b, &c->v[i])) != GW_OK)
			return e;
	}
	cb_done(&b, out);
	return GW_OK;
}

/* Whether each item of a is in b (subsetOf), with an index of b. */
static enum gw_err
member_flags(struct ectx *x, const struct coll *a, const struct coll *b,
	     bool **flags)
{
	struct hset h;
	size_t i;
	enum gw_err e;

	*flags = ar_alloc(&x->ar, a->n + 1);
	if (!*flags)
		return enomem(x);
	if ((e = hset_init(x, &h, b)) != GW_OK)
		return e;
	for (i = 0; i < b->n; i++)
		hset_add(&h, i);
	for (i = 0; i < a->n; i++)
		(*flags)[i] = hset_has(x, &h, &a->v[i], item_hash(&a->v[i]));
	if (x->steps > MAX_STEPS)
		return efail(x, GW_TOOBIG, "evaluation takes too long");
	return GW_OK;
}

/* ---------------------------------------------------------------- eval */

static enum gw_err ev(struct ectx *x, const struct ast *a,
		      const struct coll *in, struct coll *out);

/* Collection to boolean for operators and criteria: EMPTY, or the one
 * boolean, or TRUE for one other item; GW_INVALID for several items. */
static enum gw_err
to_b3(struct ectx *x, const struct coll *c, enum fhirpath_bool *out)
{
	const item_t *it;

	*out = FHIRPATH_EMPTY;
	if (c->n == 0)
		return GW_OK;
	if (c->n > 1)
		return efail(x, GW_INVALID,
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

/* Evaluate a lambda argument with $this = it, $index = i. */
static enum gw_err
ev_lambda(struct ectx *x, const struct ast *a, const item_t *it, size_t i,
	  struct coll *out)
{
	struct coll saved = x->thisc, c = {(item_t *)it, 1};
	int64_t sidx = x->index;
	enum gw_err e;

	x->thisc = c;
	x->index = (int64_t)i;
	e = ev(x, a, &c, out);
	x->thisc = saved;
	x->index = sidx;
	return e;
}

/* Evaluate a value argument: relative to $this of the enclosing scope. */
static enum gw_err
ev_arg(struct ectx *x, const struct ast *a, struct coll *out)
{
	return ev(x, a, &x->thisc, out);
}

/* The string value of a single item; *ok false when it has none. */
static bool
item_str(const item_t *it, const char **s, size_t *len)
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
static enum gw_err
single_str(struct ectx *x, const struct coll *c, const char *what,
	   const char **s, size_t *len, bool *empty)
{
	*s = "";
	*len = 0;
	*empty = c->n == 0;
	if (*empty)
		return GW_OK;
	if (c->n > 1)
		return efail(x, GW_INVALID,
			     "%s: one string expected, got %zu "
			     "items",
			     what, c->n);
	if (!item_str(&c->v[0], s, len)) {
		*empty = true; /* not a string (or only an extension) */
		if (c->v[0].kind == FHIRPATH_NODE && !c->v[0].node)
			return GW_OK;
		return efail(x, GW_INVALID, "%s: a string is expected", what);
	}
	return GW_OK;
}

static enum gw_err
single_int(struct ectx *x, const struct coll *c, const char *what, int64_t *v,
	   bool *empty)
{
	struct val vv;

	*v = 0;
	*empty = c->n == 0;
	if (*empty)
		return GW_OK;
	if (c->n > 1)
		return efail(x, GW_INVALID, "%s: one integer expected", what);
	item_val(&c->v[0], &vv);
	if (vv.k != V_INT)
		return efail(x, GW_INVALID, "%s: an integer is expected", what);
	*v = vv.i;
	return GW_OK;
}

/* Number of UTF-8 code points in s. */
static size_t
u8_count(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

/* Byte offset of code point k in s (n when past the end). */
static size_t
u8_offset(const char *s, size_t n, size_t k)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80 && k-- == 0)
			return i;
	return n;
}

static const char *
memmem_(const char *h, size_t hn, const char *nd, size_t nn)
{
	size_t i;

	if (nn == 0)
		return h;
	for (i = 0; i + nn <= hn; i++)
		if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0)
			return h + i;
	return NULL;
}

/* Translate-and-compile a pattern given at run time. */
static enum gw_err
runtime_regex(struct ectx *x, const char *pat, size_t n, regex_t *re)
{
	char why[96];
	enum gw_err e = regex_compile(pat, n, re, why, sizeof(why));

	if (e != GW_OK)
		return efail(x, e, "%s", why);
	return GW_OK;
}

/* replaceMatches: every match of re in s replaced by sub ($1..$9 refer
 * to groups). */
static enum gw_err
regex_replace(struct ectx *x, const regex_t *re, const char *s, const char *sub,
	      size_t sublen, struct coll *out)
{
	struct buf b;
	regmatch_t m[10];
	const char *p = s;
	enum gw_err e = GW_OK;
	int flags = 0;
	size_t k;

	buf_init(&b, FHIRPATH_MAX_MEMORY / 4);
	while (*p && regexec(re, p, 10, m, flags) == 0) {
		if ((e = buf_add(&b, p, (size_t)m[0].rm_so)) != GW_OK)
			goto out;
		for (k = 0; k < sublen; k++) {
			if (sub[k] == '$' && k + 1 < sublen &&
			    isdigit((unsigned char)sub[k + 1])) {
				int g = sub[++k] - '0';

				if (m[g].rm_so >= 0)
					e = buf_add(
					    &b, p + m[g].rm_so,
					    (size_t)(m[g].rm_eo - m[g].rm_so));
			} else {
				e = buf_addc(&b, sub[k]);
			}
			if (e != GW_OK)
				goto out;
		}
		if (m[0].rm_eo == m[0].rm_so) {
			/* empty match: copy one character and go on */
			if (!p[m[0].rm_eo])
				break;
			if ((e = buf_addc(&b, p[m[0].rm_eo])) != GW_OK)
				goto out;
			p += m[0].rm_eo + 1;
		} else {
			p += m[0].rm_eo;
		}
		flags = REG_NOTBOL;
	}
	if ((e = buf_adds(&b, p)) != GW_OK)
		goto out;
	e = one_str(x, FHIRPATH_STRING, b.data ? b.data : "", b.len, true, out);
out:
	buf_cleanup(&b);
	if (e == GW_TOOBIG)
		return efail(x, e, "string too long");
	return e;
}

/* Functions on strings: the input is one string. */
static enum gw_err
fn_string(struct ectx *x, const struct ast *a, const struct coll *in,
	  struct coll *out)
{
	const struct fdef *f = NULL;
	struct coll c1 = {0}, c2 = {0};
	const char *s = NULL, *t = NULL, *u = NULL, *hit;
	size_t n = 0, tn = 0, un = 0, k;
	bool empty, e1 = true, e2 = true;
	int64_t i1 = 0, i2 = 0;
	enum gw_err e;
	regex_t rtmp;
	const regex_t *re;
	char *buf;

	for (k = 0; k < sizeof(fdefs) / sizeof(fdefs[0]); k++)
		if ((int)fdefs[k].id == a->op)
			f = &fdefs[k];
	out->n = 0;
	if (!f)
		return efail(x, GW_INVALID, "internal: string function");
	if ((e = single_str(x, in, f->name, &s, &n, &empty)) != GW_OK || empty)
		return e;
	if (a->nargs >= 1 && (e = ev_arg(x, a->args[0], &c1)) != GW_OK)
		return e;
	if (a->nargs >= 2 && (e = ev_arg(x, a->args[1], &c2)) != GW_OK)
		return e;
	switch (a->op) {
	case F_SUBSTRING:
		if ((e = single_int(x, &c1, f->name, &i1, &e1)) != GW_OK || e1)
			return e;
		if (a->nargs == 2 &&
		    (e = single_int(x, &c2, f->name, &i2, &e2)) != GW_OK)
			return e;
		n = u8_count(s, strlen(s) < n ? strlen(s) : n);
		if (i1 < 0 || (size_t)i1 >= n)
			return GW_OK;
		k = u8_offset(s, strlen(s), (size_t)i1);
		if (e2 || i2 >= (int64_t)n)
			tn = strlen(s + k);
		else if (i2 <= 0)
			tn = 0;
		else
			tn = u8_offset(s + k, strlen(s + k), (size_t)i2);
		return one_str(x, FHIRPATH_STRING, s + k, tn, true, out);
	case F_INDEXOF:
		if ((e = single_str(x, &c1, f->name, &t, &tn, &e1)) != GW_OK ||
		    e1)
			return e;
		hit = memmem_(s, n, t, tn);
		return one_int(
		    x, hit ? (int64_t)u8_count(s, (size_t)(hit - s)) : -1, out);
	case F_LENGTH:
		return one_int(x, (int64_t)u8_count(s, n), out);
	case F_UPPER:
	case F_LOWER:
		buf = ar_strndup(&x->ar, s, n);
		if (!buf)
			return enomem(x);
		for (k = 0; k < n; k++)
			buf[k] = (char)(a->op == F_UPPER
					    ? toupper((unsigned char)buf[k])
					    : tolower((unsigned char)buf[k]));
		return one_str(x, FHIRPATH_STRING, buf, n, false, out);
	default:
		break;
	}
	/* the rest take a string argument */
	if ((e = single_str(x, &c1, f->name, &t, &tn, &e1)) != GW_OK || e1)
		return e;
	switch (a->op) {
	case F_STARTSWITH:
		return one_bool(x, tn <= n && memcmp(s, t, tn) == 0, out);
	case F_ENDSWITH:
		return one_bool(x, tn <= n && memcmp(s + n - tn, t, tn) == 0,
				out);
	case F_CONTAINS:
		return one_bool(x, memmem_(s, n, t, tn) != NULL, out);
	case F_REPLACE: {
		struct buf b;
		const char *p = s;

		if ((e = single_str(x, &c2, f->name, &u, &un, &e2)) != GW_OK ||
		    e2)
			return e;
		buf_init(&b, FHIRPATH_MAX_MEMORY / 4);
		if (tn == 0) {
			/* '' matches between every character */
			for (k = 0; k < n && e == GW_OK; k++) {
				e = buf_add(&b, u, un);
				if (e == GW_OK)
					e = buf_addc(&b, s[k]);
			}
			if (e == GW_OK)
				e = buf_add(&b, u, un);
		} else {
			while (e == GW_OK &&
			       (hit = memmem_(p, n - (size_t)(p - s), t, tn))) {
				e = buf_add(&b, p, (size_t)(hit - p));
				if (e == GW_OK)
					e = buf_add(&b, u, un);
				p = hit + tn;
			}
			if (e == GW_OK)
				e = buf_add(&b, p, n - (size_t)(p - s));
		}
		if (e == GW_OK)
			e = one_str(x, FHIRPATH_STRING, b.data ? b.data : "",
				    b.len, true, out);
		buf_cleanup(&b);
		return e == GW_TOOBIG ? efail(x, e, "string too long") : e;
	}
	case F_MATCHES:
	case F_REPLACEMATCHES:
		re = a->re;
		if (!re) {
			if ((e = runtime_regex(x, t, tn, &rtmp)) != GW_OK)
				return e;
			re = &rtmp;
		}
		if (a->op == F_MATCHES) {
			e = one_bool(x, regexec(re, s, 0, NULL, 0) == 0, out);
		} else {
			e = single_str(x, &c2, f->name, &u, &un, &e2);
			if (e == GW_OK && !e2)
				e = regex_replace(x, re, s, u, un, out);
		}
		if (re == &rtmp)
			regfree(&rtmp);
		return e;
	default:
		return efail(x, GW_INVALID, "internal: string function");
	}
}

static enum gw_err
fn_tostring(struct ectx *x, const struct coll *in, struct coll *out)
{
	struct val v;
	char b[32];

	out->n = 0;
	if (in->n == 0)
		return GW_OK;
	if (in->n > 1)
		return efail(x, GW_INVALID, "toString(): one item expected");
	item_val(&in->v[0], &v);
	switch (v.k) {
	case V_BOOL:
		return one_str(x, FHIRPATH_STRING, v.b ? "true" : "false",
			       v.b ? 4 : 5, false, out);
	case V_INT:
		snprintf(b, sizeof(b), "%lld", (long long)v.i);
		return one_str(x, FHIRPATH_STRING, b, strlen(b), true, out);
	case V_DEC:
	case V_STR:
	case V_DATE:
		return one_str(x, FHIRPATH_STRING, v.s, v.len, false, out);
	default:
		return GW_OK;
	}
}

static enum gw_err
fn_tonumber(struct ectx *x, const struct ast *a, const struct coll *in,
	    struct coll *out)
{
	struct val v;
	struct fdec d;

	out->n = 0;
	if (in->n == 0)
		return GW_OK;
	if (in->n > 1)
		return efail(x, GW_INVALID, "conversion: one item expected");
	item_val(&in->v[0], &v);
	if (a->op == F_TOINTEGER) {
		int64_t i;

		if (v.k == V_INT)
			return one_int(x, v.i, out);
		if (v.k == V_BOOL)
			return one_int(x, v.b, out);
		if (v.k == V_STR && parse_int(v.s, v.len, &i))
			return one_int(x, i, out);
		return GW_OK;
	}
	if (v.k == V_INT || v.k == V_BOOL) {
		char b[32];

		snprintf(b, sizeof(b), "%lld",
			 (long long)(v.k == V_INT ? v.i : v.b));
		return one_str(x, FHIRPATH_DECIMAL, b, strlen(b), true, out);
	}
	if ((v.k == V_DEC || v.k == V_STR) && fdec_parse(v.s, v.len, &d) &&
	    !memchr(v.s, 'e', v.len) && !memchr(v.s, 'E', v.len))
		return one_str(x, FHIRPATH_DECIMAL, v.s, v.len, false, out);
	return GW_OK;
}

/* toBoolean() of v: 0 false, 1 true, -1 none. */
static int
val_bool(const struct val *v)
{
	static const char *const t[] = {"true", "t",   "yes", "y",
					"1",	"1.0", NULL};
	static const char *const f[] = {"false", "f",	"no", "n",
					"0",	 "0.0", NULL};
	size_t k;

	if (v->k == V_BOOL)
		return v->b;
	if (v->k == V_INT)
		return v->i == 1 ? 1 : v->i == 0 ? 0 : -1;
	if (v->k != V_STR && v->k != V_DEC)
		return -1;
	for (k = 0; t[k]; k++) {
		if (strlen(t[k]) == v->len &&
		    strncasecmp(t[k], v->s, v->len) == 0)
			return 1;
		if (strlen(f[k]) == v->len &&
		    strncasecmp(f[k], v->s, v->len) == 0)
			return 0;
	}
	return -1;
}

/* trim(), toBoolean() and the convertsTo*() tests. */
static enum gw_err
fn_convert(struct ectx *x, const struct ast *a, const struct coll *in,
	   struct coll *out)
{
	struct ast tmp;
	struct coll c;
	struct val v;
	struct fdate d;
	enum gw_err e;
	bool r;
	int b;

	out->n = 0;
	if (in->n == 0)
		return GW_OK;
	if (in->n > 1)
		return efail(x, GW_INVALID, "conversion: one item expected");
	item_val(&in->v[0], &v);
	switch (a->op) {
	case F_TRIM:
		if (v.k != V_STR)
			return efail(x, GW_INVALID,
				     "trim(): a string is "
				     "expected");
		while (v.len && isspace((unsigned char)v.s[0]))
			v.s++, v.len--;
		while (v.len && isspace((unsigned char)v.s[v.len - 1]))
			v.len--;
		return one_str(x, FHIRPATH_STRING, v.s, v.len, true, out);
	case F_TOBOOLEAN:
		b = val_bool(&v);
		return b < 0 ? GW_OK : one_bool(x, b == 1, out);
	case F_CONVERTSTOBOOLEAN:
		return one_bool(x, val_bool(&v) >= 0, out);
	case F_CONVERTSTOINTEGER:
	case F_CONVERTSTODECIMAL:
		memset(&tmp, 0, sizeof(tmp));
		tmp.op =
		    a->op == F_CONVERTSTOINTEGER ? F_TOINTEGER : F_TODECIMAL;
		if ((e = fn_tonumber(x, &tmp, in, &c)) != GW_OK)
			return e;
		return one_bool(x, c.n == 1, out);
	case F_CONVERTSTOSTRING:
		return one_bool(x, v.k != V_NONE && v.k != V_OBJ, out);
	default: /* convertsToDate, convertsToDateTime */
		r = (v.k == V_STR ||
		     (v.k == V_DATE && v.dkind != FHIRPATH_TIME)) &&
		    fdate_parse(v.s, v.len, FDATE_DATETIME, &d) &&
		    (a->op == F_CONVERTSTODATETIME || d.prec <= FDATE_DAY);
		return one_bool(x, r, out);
	}
}

static enum gw_err
fn_clock(struct ectx *x, bool date_only, struct coll *out)
{
	time_t t = x->env && x->env->now ? (time_t)x->env->now : time(NULL);
	struct tm tm;
	char b[40];

	if (!gmtime_r(&t, &tm))
		return efail(x, GW_INVALID, "clock out of range");
	if (date_only)
		strftime(b, sizeof(b), "%Y-%m-%d", &tm);
	else
		strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S+00:00", &tm);
	return one_str(x, date_only ? FHIRPATH_DATE : FHIRPATH_DATETIME, b,
		       strlen(b), true, out);
}

/* The reference a resolve() input item holds. */
static bool
reference_of(const item_t *it, const char **s)
{
	size_t n;
	const struct fj_node *r;

	if (item_str(it, s, &n))
		return true;
	if (it->kind == FHIRPATH_NODE && it->node &&
	    it->node->type == FJ_OBJECT) {
		r = find_key(it->node, "reference", 9);
		if (r && r->type == FJ_STRING) {
			*s = r->u.str.s;
			return true;
		}
	}
	return false;
}

static enum gw_err
fn_resolve(struct ectx *x, const struct coll *in, struct coll *out)
{
	const struct fhirpath_env *env = x->env;
	struct cb b = {0};
	size_t i;
	enum gw_err e;

	for (i = 0; i < in->n; i++) {
		const char *ref, *type = NULL;
		const struct fj_node *n = NULL;
		item_t it;

		if (!reference_of(&in->v[i], &ref))
			continue;
		if (!env || !env->resolve)
			return efail(x, GW_INVALID,
				     "resolve() is not available here");
		if ((e = env->resolve(env->arg, ref, &n, &type)) != GW_OK)
			return efail(x, e, "resolve() failed");
		if (!n)
			continue;
		memset(&it, 0, sizeof(it));
		it.kind = FHIRPATH_NODE;
		it.node = n;
		it.type = node_rtype(n);
		if (!it.type)
			it.type = type;
		if ((e = cb_push(x, &b, &it)) != GW_OK)
			return e;
	}
	cb_done(&b, out);
	return GW_OK;
}

static enum gw_err
fn_member_of(struct ectx *x, const struct ast *a, const struct coll *in,
	     struct coll *out)
{
	const struct fhirpath_env *env = x->env;
	struct coll c;
	const char *vs;
	size_t n;
	bool empty, r = false;
	enum gw_err e;
	const item_t *it;

	out->n = 0;
	if (in->n == 0)
		return GW_OK;
	if (!env || !env->member_of)
		return efail(x, GW_INVALID, "memberOf() is not available here");
	if (in->n > 1)
		return efail(x, GW_INVALID, "memberOf(): one item expected");
	if ((e = ev_arg(x, a->args[0], &c)) != GW_OK ||
	    (e = single_str(x, &c, "memberOf()", &vs, &n, &empty)) != GW_OK)
		return e;
	if (empty)
		return GW_OK;
	it = &in->v[0];
	if (it->kind != FHIRPATH_NODE || !it->node) {
		/* a computed string: hand over a code without a node */
		return efail(x, GW_INVALID, "memberOf() needs an element");
	}
	vs = ar_strndup(&x->ar, vs, n);
	if (!vs)
		return enomem(x);
	if ((e = env->member_of(env->arg, it->node, item_type(it), vs, &r)) !=
	    GW_OK)
		return efail(x, e, "memberOf('%s') could not be decided", vs);
	return one_bool(x, r, out);
}

static enum gw_err
fn_repeat(struct ectx *x, const struct ast *a, const struct coll *in,
	  struct coll *out)
{
	struct cb res = {0}, q = {0}, nq;
	struct coll r;
	size_t i, j, k;
	enum gw_err e;

	if ((e = cb_append(x, &q, in)) != GW_OK)
		return e;
	while (q.n) {
		memset(&nq, 0, sizeof(nq));
		for (i = 0; i < q.n; i++) {
			if ((e = ev_lambda(x, a->args[0], &q.v[i], i, &r)) !=
			    GW_OK)
				return e;
			for (j = 0; j < r.n; j++) {
				const item_t *it = &r.v[j];

				/* nodes by identity, values by equality */
				for (k = 0; k < res.n; k++) {
					const item_t *o = &res.v[k];

					x->steps++;
					if (it->kind == FHIRPATH_NODE
						? (o->kind == FHIRPATH_NODE &&
						   o->node == it->node &&
						   o->ext == it->ext)
						: item_eq(o, it) ==
						      FHIRPATH_TRUE)
						break;
				}
				if (k < res.n)
					continue;
				if ((e = cb_push(x, &res, it)) != GW_OK ||
				    (e = cb_push(x, &nq, it)) != GW_OK)
					return e;
			}
		}
		q = nq;
	}
	cb_done(&res, out);
	return GW_OK;
}

static enum gw_err
fn_descendants(struct ectx *x, const struct coll *in, struct coll *out)
{
	struct cb b = {0};
	size_t i;
	enum gw_err e;

	for (i = 0; i < in->n; i++)
		if ((e = nav_children(x, &in->v[i], &b)) != GW_OK)
			return e;
	/* the list grows while it is walked: breadth first */
	for (i = 0; i < b.n; i++) {
		item_t it = b.v[i];

		if ((e = nav_children(x, &it, &b)) != GW_OK)
			return e;
	}
	cb_done(&b, out);
	return GW_OK;
}

static enum gw_err
fn_bools(struct ectx *x, int op, const struct coll *in, struct coll *out)
{
	size_t i;
	bool any_t = false, any_f = false;
	enum fhirpath_bool b;
	enum gw_err e;

	for (i = 0; i < in->n; i++) {
		struct coll one_c = {&in->v[i], 1};

		if ((e = to_b3(x, &one_c, &b)) != GW_OK)
			return e;
		any_t |= b == FHIRPATH_TRUE;
		any_f |= b == FHIRPATH_FALSE;
	}
	switch (op) {
	case F_ALLTRUE:
		return one_bool(x, !any_f, out);
	case F_ANYTRUE:
		return one_bool(x, any_t, out);
	case F_ALLFALSE:
		return one_bool(x, !any_t, out);
	default:
		return one_bool(x, any_f, out);
	}
}

static enum gw_err
fn_sets(struct ectx *x, const struct ast *a, const struct coll *in,
	struct coll *out)
{
	struct coll o, both, swapped;
	struct cb b = {0};
	bool *flags;
	size_t i;
	enum gw_err e;

	if ((e = ev_arg(x, a->args[0], &o)) != GW_OK)
		return e;
	switch (a->op) {
	case F_UNION:
	case F_COMBINE:
		if ((e = cb_append(x, &b, in)) != GW_OK ||
		    (e = cb_append(x, &b, &o)) != GW_OK)
			return e;
		cb_done(&b, &both);
		if (a->op == F_COMBINE) {
			*out = both;
			return GW_OK;
		}
		return distinct(x, &both, out);
	case F_SUBSETOF:
	case F_SUPERSETOF:
		if (a->op == F_SUPERSETOF) {
			swapped = o;
			o = *in;
			in = &swapped;
			e = member_flags(x, in, &o, &flags);
		} else {
			e = member_flags(x, in, &o, &flags);
		}
		if (e != GW_OK)
			return e;
		for (i = 0; i < in->n; i++)
			if (!flags[i])
				return one_bool(x, false, out);
		return one_bool(x, true, out);
	default: /* intersect, exclude */
		if ((e = member_flags(x, in, &o, &flags)) != GW_OK)
			return e;
		for (i = 0; i < in->n; i++)
			if (flags[i] == (a->op == F_INTERSECT) &&
			    (e = cb_push(x, &b, &in->v[i])) != GW_OK)
				return e;
		cb_done(&b, &both);
		if (a->op == F_INTERSECT)
			return distinct(x, &both, out);
		*out = both;
		return GW_OK;
	}
}

static enum gw_err
ev_func(struct ectx *x, const struct ast *a, const struct coll *in,
	struct coll *out)
{
	struct cb b = {0};
	struct coll c;
	enum fhirpath_bool b3;
	size_t i;
	int64_t k;
	bool empty, r;
	enum gw_err e;

	out->n = 0;
	out->v = NULL;
	switch ((enum fn)a->op) {
	case F_EMPTY:
		return one_bool(x, in->n == 0, out);
	case F_COUNT:
		return one_int(x, (int64_t)in->n, out);
	case F_NOT:
		if ((e = to_b3(x, in, &b3)) != GW_OK)
			return e;
		return one_b3(x,
			      b3 == FHIRPATH_EMPTY  ? b3
			      : b3 == FHIRPATH_TRUE ? FHIRPATH_FALSE
						    : FHIRPATH_TRUE,
			      out);
	case F_EXISTS:
	case F_WHERE:
	case F_ALL:
		if (a->op == F_EXISTS && a->nargs == 0)
			return one_bool(x, in->n > 0, out);
		for (i = 0; i < in->n; i++) {
			if ((e = ev_lambda(x, a->args[0], &in->v[i], i, &c)) !=
				GW_OK ||
			    (e = to_b3(x, &c, &b3)) != GW_OK)
				return e;
			if (a->op == F_ALL && b3 != FHIRPATH_TRUE)
				return one_bool(x, false, out);
			if (a->op == F_EXISTS && b3 == FHIRPATH_TRUE)
				return one_bool(x, true, out);
			if (a->op == F_WHERE && b3 == FHIRPATH_TRUE &&
			    (e = cb_push(x, &b, &in->v[i])) != GW_OK)
				return e;
		}
		if (a->op != F_WHERE)
			return one_bool(x, a->op == F_ALL, out);
		cb_done(&b, out);
		return GW_OK;
	case F_SELECT:
		for (i = 0; i < in->n; i++) {
			if ((e = ev_lambda(x, a->args[0], &in->v[i], i, &c)) !=
				GW_OK ||
			    (e = cb_append(x, &b, &c)) != GW_OK)
				return e;
		}
		cb_done(&b, out);
		return GW_OK;
	case F_REPEAT:
		return fn_repeat(x, a, in, out);
	case F_HASVALUE:
		r = in->n == 1 &&
		    (in->v[0].kind != FHIRPATH_NODE ||
		     (in->v[0].node && in->v[0].node->type != FJ_OBJECT &&
		      in->v[0].node->type != FJ_ARRAY));
		return one_bool(x, r, out);
	case F_EXTENSION: {
		const char *url;
		size_t ulen;

		if ((e = ev_arg(x, a->args[0], &c)) != GW_OK ||
		    (e = single_str(x, &c, "extension()", &url, &ulen,
				    &empty)) != GW_OK ||
		    empty)
			return e;
		for (i = 0; i < in->n; i++)
			if ((e = nav_member(x, &in->v[i], "extension", 9,
					    &b)) != GW_OK)
				return e;
		for (i = k = 0; i < b.n; i++) {
			const struct fj_node *obj = item_obj(&b.v[i]), *u;

			u = obj ? find_key(obj, "url", 3) : NULL;
			if (u && u->type == FJ_STRING && u->u.str.len == ulen &&
			    memcmp(u->u.str.s, url, ulen) == 0)
				b.v[k++] = b.v[i];
		}
		b.n = (size_t)k;
		cb_done(&b, out);
		return GW_OK;
	}
	case F_OFTYPE:
	case F_AS:
		for (i = 0; i < in->n; i++) {
			if ((e = type_is(x, &in->v[i], a->name, &r)) != GW_OK)
				return e;
			if (r && (e = cb_push(x, &b, &in->v[i])) != GW_OK)
				return e;
		}
		cb_done(&b, out);
		return GW_OK;
	case F_IS:
		if (in->n == 0)
			return GW_OK;
		if (in->n > 1)
			return efail(x, GW_INVALID, "is(): one item expected");
		if ((e = type_is(x, &in->v[0], a->name, &r)) != GW_OK)
			return e;
		return one_bool(x, r, out);
	case F_CHILDREN:
		for (i = 0; i < in->n; i++)
			if ((e = nav_children(x, &in->v[i], &b)) != GW_OK)
				return e;
		cb_done(&b, out);
		return GW_OK;
	case F_DESCENDANTS:
		return fn_descendants(x, in, out);
	case F_FIRST:
	case F_LAST:
		if (in->n)
			return one(x, &in->v[a->op == F_FIRST ? 0 : in->n - 1],
				   out);
		return GW_OK;
	case F_TAIL:
		if (in->n > 1) {
			out->v = in->v + 1;
			out->n = in->n - 1;
		}
		return GW_OK;
	case F_SKIP:
	case F_TAKE:
		if ((e = ev_arg(x, a->args[0], &c)) != GW_OK ||
		    (e = single_int(x, &c,
				    a->op == F_SKIP ? "skip()" : "take()", &k,
				    &empty)) != GW_OK)
			return e;
		if (empty)
			return GW_OK;
		if (k < 0)
			k = 0;
		if ((uint64_t)k > in->n)
			k = (int64_t)in->n;
		if (a->op == F_SKIP) {
			out->v = in->v + k;
			out->n = in->n - (size_t)k;
		} else {
			out->v = in->v;
			out->n = (size_t)k;
		}
		return GW_OK;
	case F_SINGLE:
		if (in->n > 1)
			return efail(x, GW_INVALID, "single(): %zu items",
				     in->n);
		*out = *in;
		return GW_OK;
	case F_DISTINCT:
		return distinct(x, in, out);
	case F_ISDISTINCT:
		if ((e = distinct(x, in, &c)) != GW_OK)
			return e;
		return one_bool(x, c.n == in->n, out);
	case F_IIF:
		if ((e = ev(x, a->args[0], in, &c)) != GW_OK ||
		    (e = to_b3(x, &c, &b3)) != GW_OK)
			return e;
		if (b3 == FHIRPATH_TRUE)
			return ev(x, a->args[1], in, out);
		if (a->nargs == 3)
			return ev(x, a->args[2], in, out);
		return GW_OK;
	case F_TRACE:
		/* no output: tracing is for interactive tools */
		*out = *in;
		return GW_OK;
	case F_STARTSWITH:
	case F_ENDSWITH:
	case F_CONTAINS:
	case F_MATCHES:
	case F_REPLACEMATCHES:
	case F_REPLACE:
	case F_LENGTH:
	case F_SUBSTRING:
	case F_UPPER:
	case F_LOWER:
	case F_INDEXOF:
		return fn_string(x, a, in, out);
	case F_TOSTRING:
		return fn_tostring(x, in, out);
	case F_TOINTEGER:
	case F_TODECIMAL:
		return fn_tonumber(x, a, in, out);
	case F_TODAY:
	case F_NOW:
		return fn_clock(x, a->op == F_TODAY, out);
	case F_HTMLCHECKS:
		/* Narrative XHTML rules (allowed elements and attributes)
		 * are checked structurally by the validation engine; here
		 * the invariant is satisfied. */
		return one_bool(x, true, out);
	case F_SUBSETOF:
	case F_SUPERSETOF:
	case F_INTERSECT:
	case F_EXCLUDE:
	case F_UNION:
	case F_COMBINE:
		return fn_sets(x, a, in, out);
	case F_ALLTRUE:
	case F_ANYTRUE:
	case F_ALLFALSE:
	case F_ANYFALSE:
		return fn_bools(x, a->op, in, out);
	case F_MEMBEROF:
		return fn_member_of(x, a, in, out);
	case F_RESOLVE:
		return fn_resolve(x, in, out);
	case F_TRIM:
	case F_TOBOOLEAN:
	case F_CONVERTSTOBOOLEAN:
	case F_CONVERTSTOINTEGER:
	case F_CONVERTSTODECIMAL:
	case F_CONVERTSTOSTRING:
	case F_CONVERTSTODATE:
	case F_CONVERTSTODATETIME:
		return fn_convert(x, a, in, out);
	}
	return efail(x, GW_INVALID, "internal: unknown function");
}

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
		return efail(x, GW_INVALID, "arithmetic on a collection");
	item_val(&l->v[0], &a);
	item_val(&r->v[0], &b);
	if (op == T_PLUS && a.k == V_STR && b.k == V_STR) {
		char *s;

		if (a.len + b.len > FHIRPATH_MAX_MEMORY / 4)
			return efail(x, GW_TOOBIG, "string too long");
		s = ar_alloc(&x->ar, a.len + b.len + 1);
		if (!s)
			return enomem(x);
		memcpy(s, a.s, a.len);
		memcpy(s + a.len, b.s, b.len);
		s[a.len + b.len] = '\0';
		return one_str(x, FHIRPATH_STRING, s, a.len + b.len, false,
			       out);
	}
	if ((a.k != V_INT && a.k != V_DEC) || (b.k != V_INT && b.k != V_DEC))
		return efail(x, GW_INVALID,
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
		return one_int(x, v, out);
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
		return one_int(x, (int64_t)dv, out);
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
		return efail(x, GW_INVALID, "decimal out of range");
	return one_str(x, FHIRPATH_DECIMAL, tmp, strlen(tmp), true, out);
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

	if ((e = single_str(x, l, "&", &a, &an, &empty)) != GW_OK)
		return e;
	if (empty)
		a = "", an = 0;
	if ((e = single_str(x, r, "&", &b, &bn, &empty)) != GW_OK)
		return e;
	if (empty)
		b = "", bn = 0;
	if (an + bn > FHIRPATH_MAX_MEMORY / 4)
		return efail(x, GW_TOOBIG, "string too long");
	s = ar_alloc(&x->ar, an + bn + 1);
	if (!s)
		return enomem(x);
	memcpy(s, a, an);
	memcpy(s + an, b, bn);
	s[an + bn] = '\0';
	return one_str(x, FHIRPATH_STRING, s, an + bn, false, out);
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
		if ((e = to_b3(x, &l, &bl)) != GW_OK)
			return e;
		if ((a->op == T_AND && bl == FHIRPATH_FALSE) ||
		    (a->op == T_OR && bl == FHIRPATH_TRUE))
			return one_b3(x, bl, out);
		if (a->op == T_IMPLIES && bl == FHIRPATH_FALSE)
			return one_bool(x, true, out);
		if ((e = ev(x, a->r, in, &r)) != GW_OK ||
		    (e = to_b3(x, &r, &br)) != GW_OK)
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
		return one_b3(x, res, out);
	}
	if ((e = ev(x, a->r, in, &r)) != GW_OK)
		return e;
	switch (a->op) {
	case T_PIPE: {
		struct cb b = {0};
		struct coll u;

		if ((e = cb_append(x, &b, &l)) != GW_OK ||
		    (e = cb_append(x, &b, &r)) != GW_OK)
			return e;
		cb_done(&b, &u);
		return distinct(x, &u, out);
	}
	case T_EQ:
	case T_NE:
		if (l.n == 0 || r.n == 0)
			return GW_OK;
		res = FHIRPATH_TRUE;
		if (l.n != r.n)
			res = FHIRPATH_FALSE;
		for (i = 0; i < l.n && res != FHIRPATH_FALSE; i++) {
			enum fhirpath_bool q = item_eq(&l.v[i], &r.v[i]);

			if (q != FHIRPATH_TRUE)
				res = q;
		}
		if (a->op == T_NE && res != FHIRPATH_EMPTY)
			res = res == FHIRPATH_TRUE ? FHIRPATH_FALSE
						   : FHIRPATH_TRUE;
		return one_b3(x, res, out);
	case T_EQUIV:
	case T_NEQUIV:
		ok = l.n == r.n;
		for (i = 0; i < l.n && ok; i++) {
			size_t j;

			for (j = 0; j < r.n; j++)
				if (item_equiv(&l.v[i], &r.v[j]))
					break;
			ok = j < r.n;
		}
		return one_bool(x, a->op == T_EQUIV ? ok : !ok, out);
	case T_LT:
	case T_LE:
	case T_GT:
	case T_GE:
		if (l.n == 0 || r.n == 0)
			return GW_OK;
		if (l.n > 1 || r.n > 1)
			return efail(x, GW_INVALID,
				     "comparison of a "
				     "collection");
		if ((e = item_cmp(x, &l.v[0], &r.v[0], &ok, &c)) != GW_OK ||
		    !ok)
			return e;
		return one_bool(x,
				a->op == T_LT	? c < 0
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
			return efail(x, GW_INVALID, "'%s' with several items",
				     a->op == T_IN ? "in" : "contains");
		for (i = 0; i < set->n; i++)
			if (item_eq(&item->v[0], &set->v[i]) == FHIRPATH_TRUE)
				return one_bool(x, true, out);
		return one_bool(x, false, out);
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
		return efail(x, GW_TOOBIG, "evaluation takes too long");
	switch (a->k) {
	case N_LIT:
		return one(x, &a->lit, out);
	case N_EMPTY:
		return GW_OK;
	case N_THIS:
		*out = x->thisc;
		return GW_OK;
	case N_INDEX:
		return one_int(x, x->index, out);
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
				const char *t = item_type(it);

				if (t && fhir_type_is(t, a->name) &&
				    (e = cb_push(x, &b, it)) != GW_OK)
					return e;
				continue;
			}
			if ((e = nav_member(x, it, a->name, a->namelen, &b)) !=
			    GW_OK)
				return e;
		}
		cb_done(&b, out);
		return GW_OK;
	case N_FUNC:
		return ev_func(x, a, in, out);
	case N_DOT:
		if ((e = ev(x, a->l, in, &c)) != GW_OK)
			return e;
		return ev(x, a->r, &c, out);
	case N_INDEXER:
		if ((e = ev(x, a->l, in, &c)) != GW_OK ||
		    (e = ev(x, a->r, in, &idx)) != GW_OK ||
		    (e = single_int(x, &idx, "[]", &k, &empty)) != GW_OK)
			return e;
		if (!empty && k >= 0 && (uint64_t)k < c.n)
			return one(x, &c.v[k], out);
		return GW_OK;
	case N_NEG: {
		struct coll zero;
		item_t z;

		struct val v;

		if ((e = ev(x, a->l, in, &c)) != GW_OK)
			return e;
		if (c.n == 1) {
			item_val(&c.v[0], &v);
			if (v.k == V_DEC && v.len > 0 && v.len < 64) {
				/* keep the decimal's digits: flip the sign */
				char t[72];

				if (v.s[0] == '-' || v.s[0] == '+')
					snprintf(t, sizeof(t), "%.*s",
						 (int)v.len - 1, v.s + 1);
				else
					snprintf(t, sizeof(t), "-%.*s",
						 (int)v.len, v.s);
				return one_str(x, FHIRPATH_DECIMAL, t,
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
				return efail(x, GW_INVALID,
					     "'is' on several items");
			if ((e = type_is(x, &c.v[0], a->name, &r)) != GW_OK)
				return e;
			return one_bool(x, r, out);
		}
		for (i = 0; i < c.n; i++) {
			if ((e = type_is(x, &c.v[i], a->name, &r)) != GW_OK)
				return e;
			if (r && (e = cb_push(x, &b, &c.v[i])) != GW_OK)
				return e;
		}
		cb_done(&b, out);
		return GW_OK;
	}
	return efail(x, GW_INVALID, "internal: unknown node");
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
		enum gw_err e = emit_member(x, n, NULL, type, &b);

		cb_done(&b, out);
		return e;
	}
	memset(&it, 0, sizeof(it));
	it.kind = FHIRPATH_NODE;
	it.node = n;
	it.type = node_rtype(n);
	if (!it.type)
		it.type = type;
	return one(x, &it, out);
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
		if ((e = one(x, &it, &x->context)) != GW_OK)
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
	} else if (node_rtype(focus)) {
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
	ar_init(&x.ar, NULL, 0, FHIRPATH_MAX_MEMORY);
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
	ar_init(&x.ar, first, sizeof(first), FHIRPATH_MAX_MEMORY);
	e = run(fp, focus, focus_type, env, &x, &c);
	if (e == GW_OK && c.n > 1)
		e = efail(&x, GW_INVALID,
			  "the result has %zu items, not one boolean", c.n);
	if (e == GW_OK)
		e = to_b3(&x, &c, out);
	ar_cleanup(&x.ar);
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
	ar_cleanup(&r->ar);
	free(r);
}
