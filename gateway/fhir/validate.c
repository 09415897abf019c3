/*
 * validate: walks an fjson document against compiled StructureDefinition
 * snapshots (rules.h): JSON form, cardinality, types and primitive formats,
 * fixed/pattern, bindings, slicing, references, invariants (fhirpath.h).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/sha.h>

#include "b64.h"
#include "outcome.h"
#include "fhirpath.h"
#include "util.h"
#include "validate.h"
#include "xmlfhir.h"

#define V_MAX_PATH   2048  /* longest expression kept */
#define V_MAX_DEPTH  96	   /* nesting of resources/elements walked */
#define V_MAX_ISSUES 10000 /* findings kept per document */
/* Elements between two looks at the clock: a clock_gettime costs about
 * as much as checking one element, so 256 keeps it under 1%, and 256
 * elements take well under a millisecond. */
#define V_DEADLINE_EVERY 256u
#define V_MAX_SET	 64 /* values one discriminator path may yield */

/* One element of a structure, arranged as a tree. */
struct vnode {
	const struct rules_element *el;
	const char *name; /* last path segment, "value[x]" */
	size_t prefixlen; /* choice: length without "[x]" */
	bool choice;
	struct vnode **kids;
	size_t nkids, capkids;
	struct vnode **slices;
	size_t nslices, capslices;
	const struct vnode *ref;	  /* contentReference target */
	const struct vnode *owner;	  /* for a slice: the sliced element */
	const struct rules_element *card; /* a repeated slice's later
					     cardinality, or NULL */
	struct vnode **req;		  /* kids that must be checked even when
				   absent (a minimum, or a slice's) */
	size_t nreq;
	const struct vtype *vt0; /* cache: the type of types[0] */
};

/* A structure's element tree. */
struct vstruct {
	const struct rules_structure *sd;
	struct vnode *nodes;
	struct vnode *root;
};

enum vkind { VK_PRIM, VK_COMPLEX, VK_RESOURCE, VK_UNKNOWN };

enum vjson { VJ_STRING, VJ_BOOL, VJ_NUMBER };

struct vtype {
	enum vkind kind;
	const struct vstruct *vs; /* the type's base structure, or NULL */
	const char *name;
	enum vjson json; /* primitives: the JSON type of the value */
};

/* Detection candidates of one resource type. */
struct vcands {
	const struct rules_structure **sd;
	size_t n, cap;
};

/* A value set's codes sorted by code alone (for bindings on code). */
struct vcodes {
	const char **codes;
	size_t n;
};

/* Open-addressing maps: pointer keys and string keys. */
struct pmap {
	const void **keys;
	void **vals;
	size_t cap, count;
};

struct smap {
	char **keys;
	void **vals;
	size_t cap, count;
};

struct validate_ctx {
	const struct rules_set *set;
	struct pmap structs; /* rules_structure -> vstruct */
	struct smap types;   /* type name -> vtype */
	struct pmap paths;   /* constraint expression -> fhirpath (or a
				marker for expressions that do not compile) */
	struct pmap vsets;   /* binding URL (interned) -> value set, or a
				marker when unknown */
	struct pmap vcodes;  /* value set -> vcodes */
	char **detect;	     /* URL prefixes of the profiles detection may
				choose */
	size_t ndetect;
	struct smap cands; /* resource type -> vcands, built on first use */
	bool cands_built;
	const char *last_profile;
};

/* A Bundle entry, indexed for reference resolution. */
struct ventry {
	const char *fullurl;
	const struct fj_node *res;
	const char *rtype;
	const char *id;
};

struct vbundle {
	struct ventry *e;
	size_t n;
	bool must_resolve;
	struct vbundle *up;
	/* Indexes built once per Bundle so that resolving a reference and
	 * the fullUrl uniqueness check do not scan every entry: fullUrl and
	 * "Type/id" -> entry index + 1 (the first entry that has it). */
	struct smap by_url, by_tid;
};

struct vissue {
	const char *sev, *code;
	char *expr, *msg;
	uint32_t line, col;
};

/* Memo of "resource conforms to structure" answers. */
struct vconf {
	const struct fj_node *res;
	const struct rules_structure *sd;
	int state; /* 1 busy, 2 yes, 3 no */
};

/* One step of the walk from the innermost resource: the element name and
 * its type, for extension contexts. */
struct vseg {
	const char *name; /* NULL for a resource root */
	size_t len;
	const char *type; /* element type, or the resource type at a root */
	bool boundary;	  /* a complex datatype: its paths start here */
};

#define V_MAX_SEGS (V_MAX_DEPTH * 2 + 8)

/* One validation run over one document (or a scratch conformance check). */
struct vrun {
	struct validate_ctx *ctx;
	char path[V_MAX_PATH];
	size_t plen;
	bool overflow;
	struct vissue *issues;
	size_t nissues, capissues;
	struct smap seen;
	struct smap noteval; /* invariant keys reported as not evaluated */
	bool scratch;	     /* count errors only */
	size_t nerrors;
	struct vbundle *bundle;
	const struct fj_node *resource; /* innermost resource */
	const char *resource_type;
	const struct fj_node *root;
	const struct rules_structure *cur_sd; /* profile being checked */
	int depth;
	struct vconf *conf; /* shared with scratch runs */
	size_t *nconf, *capconf;
	/* Set when out of memory, and when the deadline passed: the flag
	 * every loop of the walk checks to stop. */
	bool nomem;
	bool late;	   /* the deadline passed (nomem is set too) */
	uint64_t deadline; /* util_mono_ms(); 0: none */
	unsigned ticks;	   /* elements since the clock was last read */
	struct vseg segs[V_MAX_SEGS]; /* the walk, for extension contexts */
	size_t nsegs;		      /* may exceed V_MAX_SEGS (not kept) */
	const char *ext_url;	      /* innermost enclosing extension's url */
};

static const char *const prim_names[] = {
    "base64Binary", "boolean",	   "canonical", "code",	       "date",
    "dateTime",	    "decimal",	   "id",	"instant",     "integer",
    "integer64",    "markdown",	   "oid",	"positiveInt", "string",
    "time",	    "unsignedInt", "uri",	"url",	       "uuid",
    "xhtml",
};

/* ---- primitive formats (FHIR R4/STU3 datatypes page regexes) ---- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

static int
num2(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static bool
leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* YYYY, YYYY-MM or YYYY-MM-DD at s; *used is the length consumed. */
static const char *
check_date_part(const char *s, size_t len, size_t *used, bool full)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int y, m, d;

	if (len < 4 || !digits(s, 4))
		return "the year must be four digits";
	y = num2(s) * 100 + num2(s + 2);
	if (y == 0)
		return "year 0000 is not allowed";
	if (len == 4 || s[4] != '-') {
		*used = 4;
		return full ? "a full date (YYYY-MM-DD) is required" : NULL;
	}
	if (len < 7 || !digits(s + 5, 2))
		return "the month must be two digits";
	m = num2(s + 5);
	if (m < 1 || m > 12)
		return "the month is out of range";
	if (len == 7 || s[7] != '-') {
		*used = 7;
		return full ? "a full date (YYYY-MM-DD) is required" : NULL;
	}
	if (len < 10 || !digits(s + 8, 2))
		return "the day must be two digits";
	d = num2(s + 8);
	if (d < 1 || d > mdays[m - 1] + (m == 2 && leap_year(y) ? 1 : 0))
		return "the day does not exist in that month";
	*used = 10;
	return NULL;
}

/* hh:mm:ss(.fff)? at s; *used is the length consumed. */
static const char *
check_time_part(const char *s, size_t len, size_t *used)
{
	size_t i;

	if (len < 8 || !digits(s, 2) || s[2] != ':' || !digits(s + 3, 2) ||
	    s[5] != ':' || !digits(s + 6, 2))
		return "the time must be hh:mm:ss";
	if (num2(s) > 23 || num2(s + 3) > 59 || num2(s + 6) > 60)
		return "the time is out of range";
	i = 8;
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return "a fraction of a second needs digits";
		while (i < len && is_digit(s[i]))
			i++;
	}
	*used = i;
	return NULL;
}

static const char *
check_tz(const char *s, size_t len)
{
	if (len == 1 && s[0] == 'Z')
		return NULL;
	if (len == 6 && (s[0] == '+' || s[0] == '-') && digits(s + 1, 2) &&
	    s[3] == ':' && digits(s + 4, 2)) {
		int h = num2(s + 1), m = num2(s + 4);

		if (m > 59 || h > 14 || (h == 14 && m != 0))
			return "the time zone offset is out of range";
		return NULL;
	}
	return "a time needs a time zone (Z or +hh:mm)";
}

static const char *
check_datetime(const char *s, size_t len, bool instant)
{
	size_t used = 0, tused = 0;
	const char *why = check_date_part(s, len, &used, instant);

	if (why != NULL)
		return why;
	if (used == len)
		return instant ? "an instant needs a time and time zone" : NULL;
	if (used != 10 || s[used] != 'T')
		return "unexpected characters after the date";
	s += 11;
	len -= 11;
	if ((why = check_time_part(s, len, &tused)) != NULL)
		return why;
	return check_tz(s + tused, len - tused);
}

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *
check_base64(const char *s, size_t len)
{
	size_t n = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (is_ws(c))
			continue;
		if (c == '=') {
			pad++;
			n++;
			continue;
		}
		if (pad > 0)
			return "data after base64 padding";
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      is_digit(c) || c == '+' || c == '/'))
			return "not a valid base64 character";
		n++;
	}
	if (n % 4 != 0 || pad > 2)
		return "base64 length is not a multiple of 4";
	return NULL;
}

/* Parse a JSON integer text; false when it has a fraction/exponent or
 * does not fit. */
static bool
parse_int_text(const char *s, size_t len, long long *out)
{
	long long v = 0;
	size_t i = 0;
	bool neg = false;

	if (len > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i >= len || len - i > 12)
		return false;
	for (; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

const char *
validate_primitive(const char *type, const char *s, size_t len, bool is_string)
{
	long long v;
	size_t used;

	if (strncmp(type, "http://hl7.org/fhirpath/System.", 31) == 0) {
		type += 31;
		if (strcmp(type, "String") == 0)
			type = "string";
		else if (strcmp(type, "Boolean") == 0)
			type = "boolean";
		else if (strcmp(type, "Integer") == 0)
			type = "integer";
		else if (strcmp(type, "Decimal") == 0)
			type = "decimal";
		else if (strcmp(type, "Date") == 0)
			type = "date";
		else if (strcmp(type, "DateTime") == 0)
			type = "dateTime";
		else if (strcmp(type, "Time") == 0)
			type = "time";
		else
			type = "string";
	}
	if (strcmp(type, "boolean") == 0)
		return NULL; /* the JSON type says it all */
	if (strcmp(type, "integer") == 0 || strcmp(type, "positiveInt") == 0 ||
	    strcmp(type, "unsignedInt") == 0) {
		if (is_string)
			return "an integer must be a JSON number";
		if (!parse_int_text(s, len, &v))
			return "not an integer";
		if (v < -2147483648LL || v > 2147483647LL)
			return "the integer is out of range";
		if (type[0] == 'p' && v < 1)
			return "a positiveInt must be at least 1";
		if (type[0] == 'u' && v < 0)
			return "an unsignedInt must not be negative";
		return NULL;
	}
	if (strcmp(type, "decimal") == 0)
		return is_string ? "a decimal must be a JSON number" : NULL;
	if (!is_string)
		return "the value must be a JSON string";
	if (len == 0)
		return "a primitive value must not be empty";
	if (strlen(s) != len)
		return "the value contains a NUL character";
	switch (type[0]) {
	case 'b':
		if (strcmp(type, "base64Binary") == 0)
			return check_base64(s, len);
		break;
	case 'c':
		if (strcmp(type, "code") == 0) {
			if (is_ws(s[0]) || is_ws(s[len - 1]))
				return "a code must not start or end with "
				       "whitespace";
			for (size_t i = 1; i < len; i++)
				if (is_ws(s[i]) && is_ws(s[i - 1]))
					return "a code must not contain "
					       "repeated whitespace";
			return NULL;
		}
		if (strcmp(type, "canonical") == 0)
			goto uri;
		break;
	case 'd':
		if (strcmp(type, "date") == 0) {
			const char *why = check_date_part(s, len, &used, false);

			if (why == NULL && used != len)
				why = "unexpected characters after the date";
			return why;
		}
		if (strcmp(type, "dateTime") == 0)
			return check_datetime(s, len, false);
		break;
	case 'i':
		if (strcmp(type, "id") == 0) {
			if (len > 64)
				return "an id is at most 64 characters";
			for (size_t i = 0; i < len; i++)
				if (!((s[i] >= 'A' && s[i] <= 'Z') ||
				      (s[i] >= 'a' && s[i] <= 'z') ||
				      is_digit(s[i]) || s[i] == '-' ||
				      s[i] == '.'))
					return "an id may only contain "
					       "A-Z, a-z, 0-9, '-' and '.'";
			return NULL;
		}
		if (strcmp(type, "instant") == 0)
			return check_datetime(s, len, true);
		break;
	case 'o':
		if (strcmp(type, "oid") == 0) {
			size_t i = 8;

			if (len < 10 || strncmp(s, "urn:oid:", 8) != 0 ||
			    s[8] < '0' || s[8] > '2')
				return "an oid must be urn:oid:[0-2](.n)+";
			i = 9;
			if (i >= len)
				return "an oid must be urn:oid:[0-2](.n)+";
			while (i < len) {
				size_t st;

				if (s[i] != '.')
					return "an oid must be "
					       "urn:oid:[0-2](.n)+";
				st = ++i;
				while (i < len && is_digit(s[i]))
					i++;
				if (i == st || (s[st] == '0' && i - st > 1))
					return "an oid must be "
					       "urn:oid:[0-2](.n)+";
			}
			return NULL;
		}
		break;
	case 't':
		if (strcmp(type, "time") == 0) {
			const char *why = check_time_part(s, len, &used);

			if (why == NULL && used != len)
				why = "unexpected characters after the time";
			return why;
		}
		break;
	case 'u':
		if (strcmp(type, "uuid") == 0) {
			if (len != 45 || strncmp(s, "urn:uuid:", 9) != 0)
				return "a uuid must be urn:uuid: and 36 "
				       "lower-case hex characters";
			for (size_t i = 9; i < len; i++) {
				size_t k = i - 9;
				bool dash =
				    k == 8 || k == 13 || k == 18 || k == 23;

				if (dash ? s[i] != '-'
					 : !(is_digit(s[i]) ||
					     (s[i] >= 'a' && s[i] <= 'f')))
					return "a uuid must be urn:uuid: and "
					       "36 lower-case hex characters";
			}
			return NULL;
		}
		if (strcmp(type, "uri") == 0 || strcmp(type, "url") == 0)
			goto uri;
		break;
	case 'x':
		if (strcmp(type, "xhtml") == 0) {
			if (len < 5 || strncmp(s, "<div", 4) != 0)
				return "narrative must be a <div> element";
			return NULL;
		}
		break;
	default:
		break;
	}
	/* string, markdown and anything else: any non-empty text; the
	 * regex [ \r\n\t\S]+ excludes nothing else. */
	return NULL;
uri:
	for (size_t i = 0; i < len; i++)
		if (is_ws(s[i]))
			return "a URI must not contain whitespace";
	return NULL;
}
/* ---- small hash maps ---- */

static size_t
hash_ptr(const void *p)
{
	uintptr_t x = (uintptr_t)p;

	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t
hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

static void *
pmap_get(const struct pmap *m, const void *key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = hash_ptr(key) & (m->cap - 1);;
	     i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == NULL)
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static bool
pmap_put(struct pmap *m, const void *key, void *val)
{
	size_t i;

	if ((m->count + 1) * 2 > m->cap) {
		size_t ncap = m->cap == 0 ? 64 : m->cap * 2;
		const void **nk = calloc(ncap, sizeof(*nk));
		void **nv = calloc(ncap, sizeof(*nv));

		if (nk == NULL || nv == NULL) {
			free(nk);
			free(nv);
			return false;
		}
		for (size_t j = 0; j < m->cap; j++) {
			if (m->keys[j] == NULL)
				continue;
			for (i = hash_ptr(m->keys[j]) & (ncap - 1);
			     nk[i] != NULL; i = (i + 1) & (ncap - 1))
				;
			nk[i] = m->keys[j];
			nv[i] = m->vals[j];
		}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->cap = ncap;
	}
	for (i = hash_ptr(key) & (m->cap - 1); m->keys[i] != NULL;
	     i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == key) {
			m->vals[i] = val;
			return true;
		}
	m->keys[i] = key;
	m->vals[i] = val;
	m->count++;
	return true;
}

static void
pmap_free(struct pmap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

static void **
smap_slot(const struct smap *m, const char *key, bool *found)
{
	size_t i;

	*found = false;
	if (m->cap == 0)
		return NULL;
	for (i = hash_str(key) & (m->cap - 1); m->keys[i] != NULL;
	     i = (i + 1) & (m->cap - 1))
		if (strcmp(m->keys[i], key) == 0) {
			*found = true;
			break;
		}
	return &m->vals[i];
}

static void *
smap_get(const struct smap *m, const char *key, bool *found)
{
	void **slot = smap_slot(m, key, found);

	return *found ? *slot : NULL;
}

/* Insert a copy of key; false without memory. */
static bool
smap_put(struct smap *m, const char *key, void *val)
{
	bool found;
	void **slot;
	size_t i;

	if ((m->count + 1) * 2 > m->cap) {
		size_t ncap = m->cap == 0 ? 64 : m->cap * 2;
		char **nk = calloc(ncap, sizeof(*nk));
		void **nv = calloc(ncap, sizeof(*nv));

		if (nk == NULL || nv == NULL) {
			free(nk);
			free(nv);
			return false;
		}
		for (size_t j = 0; j < m->cap; j++) {
			if (m->keys[j] == NULL)
				continue;
			for (i = hash_str(m->keys[j]) & (ncap - 1);
			     nk[i] != NULL; i = (i + 1) & (ncap - 1))
				;
			nk[i] = m->keys[j];
			nv[i] = m->vals[j];
		}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->cap = ncap;
	}
	slot = smap_slot(m, key, &found);
	if (found) {
		*slot = val;
		return true;
	}
	i = (size_t)(slot - m->vals);
	if ((m->keys[i] = strdup(key)) == NULL)
		return false;
	m->vals[i] = val;
	m->count++;
	return true;
}

static void
smap_free(struct smap *m, void (*freeval)(void *))
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i] == NULL)
			continue;
		free(m->keys[i]);
		if (freeval != NULL)
			freeval(m->vals[i]);
	}
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- structure trees ---- */

static bool
vnode_push(struct vnode ***arr, size_t *n, size_t *cap, struct vnode *x)
{
	if (*n == *cap) {
		size_t ncap = *cap == 0 ? 4 : *cap * 2;
		struct vnode **na =
		    realloc(*arr, ncap * sizeof(struct vnode *));

		if (na == NULL)
			return false;
		*arr = na;
		*cap = ncap;
	}
	(*arr)[(*n)++] = x;
	return true;
}

static void
vstruct_free(struct vstruct *vs)
{
	if (vs == NULL)
		return;
	for (size_t i = 0; i < vs->sd->nelements; i++) {
		free(vs->nodes[i].kids);
		free(vs->nodes[i].slices);
		free(vs->nodes[i].req);
	}
	free(vs->nodes);
	free(vs);
}

static size_t
path_depth(const char *p)
{
	size_t d = 1;

	for (; *p != '\0'; p++)
		if (*p == '.')
			d++;
	return d;
}

static struct vstruct *
vstruct_build(const struct rules_structure *sd)
{
	struct vnode *stack[V_MAX_DEPTH + 2];
	struct vstruct *vs = calloc(1, sizeof(*vs));

	if (vs == NULL)
		return NULL;
	vs->sd = sd;
	if (sd->nelements == 0 ||
	    (vs->nodes = calloc(sd->nelements, sizeof(*vs->nodes))) == NULL)
		goto fail;
	memset(stack, 0, sizeof(stack));
	for (size_t i = 0; i < sd->nelements; i++) {
		const struct rules_element *e = &sd->elements[i];
		struct vnode *n = &vs->nodes[i];
		size_t d = path_depth(e->path);
		const char *dot = strrchr(e->path, '.');
		size_t nl;

		n->el = e;
		n->name = dot != NULL ? dot + 1 : e->path;
		nl = strlen(n->name);
		n->choice = nl > 3 && strcmp(n->name + nl - 3, "[x]") == 0;
		n->prefixlen = n->choice ? nl - 3 : nl;
		if (d > V_MAX_DEPTH)
			continue;
		if (i == 0 || d == 1) {
			if (vs->root == NULL) {
				vs->root = n;
				stack[1] = n;
			}
			continue;
		}
		if (e->slice_name != NULL && stack[d] != NULL &&
		    strcmp(stack[d]->el->path, e->path) == 0) {
			struct vnode *owner =
			    stack[d]->owner != NULL
				? (struct vnode *)stack[d]->owner
				: stack[d];
			struct vnode *same = NULL;

			/* a slice named twice: one slice, the later
			 * cardinality wins */
			for (size_t j = 0; j < owner->nslices; j++)
				if (strcmp(owner->slices[j]->el->slice_name,
					   e->slice_name) == 0)
					same = owner->slices[j];
			if (same != NULL) {
				same->card = e;
				n = same;
			} else {
				if (!vnode_push(&owner->slices, &owner->nslices,
						&owner->capslices, n))
					goto fail;
				n->owner = owner;
			}
		} else {
			struct vnode *parent = stack[d - 1];

			if (parent == NULL)
				continue;
			if (!vnode_push(&parent->kids, &parent->nkids,
					&parent->capkids, n))
				goto fail;
		}
		stack[d] = n;
		for (size_t k = d + 1; k < V_MAX_DEPTH + 2; k++)
			stack[k] = NULL;
	}
	if (vs->root == NULL)
		goto fail;
	/* contentReference targets, by element id (or path). */
	for (size_t i = 0; i < sd->nelements; i++) {
		const char *ref = sd->elements[i].content_ref;

		if (ref == NULL)
			continue;
		if (ref[0] == '#')
			ref++;
		for (size_t j = 0; j < sd->nelements; j++)
			if ((sd->elements[j].id != NULL &&
			     strcmp(sd->elements[j].id, ref) == 0) ||
			    (sd->elements[j].slice_name == NULL &&
			     strcmp(sd->elements[j].path, ref) == 0)) {
				vs->nodes[i].ref = &vs->nodes[j];
				break;
			}
		if (vs->nodes[i].ref == NULL) {
			/* "#Questionnaire.item" in a profile whose ids carry
			 * the type name: match on the path's tail. */
			const char *dot = strchr(ref, '.');

			for (size_t j = 0; dot != NULL && j < sd->nelements;
			     j++) {
				const char *p =
				    strchr(sd->elements[j].path, '.');

				if (p != NULL && strcmp(p, dot) == 0 &&
				    sd->elements[j].slice_name == NULL) {
					vs->nodes[i].ref = &vs->nodes[j];
					break;
				}
			}
		}
	}
	/* kids that need a look when absent */
	for (size_t i = 0; i < sd->nelements; i++) {
		struct vnode *n = &vs->nodes[i];

		for (size_t j = 0; j < n->nkids; j++) {
			const struct vnode *k = n->kids[j];
			size_t cap = n->nreq;
			bool need = k->el->min > 0;

			for (size_t t = 0; t < k->nslices && !need; t++)
				need = k->slices[t]->el->min > 0 ||
				       (k->slices[t]->card != NULL &&
					k->slices[t]->card->min > 0);
			if (need && !vnode_push(&n->req, &n->nreq, &cap,
						(struct vnode *)k))
				goto fail;
		}
	}
	return vs;
fail:
	if (vs->nodes == NULL) {
		free(vs);
		return NULL;
	}
	vstruct_free(vs);
	return NULL;
}

static const struct vstruct *
vstruct_get(struct validate_ctx *ctx, const struct rules_structure *sd)
{
	struct vstruct *vs;

	if (sd == NULL)
		return NULL;
	if ((vs = pmap_get(&ctx->structs, sd)) != NULL)
		return vs;
	if ((vs = vstruct_build(sd)) == NULL)
		return NULL;
	if (!pmap_put(&ctx->structs, sd, vs)) {
		vstruct_free(vs);
		return NULL;
	}
	return vs;
}

static bool
is_prim_name(const char *t)
{
	if (strncmp(t, "http://hl7.org/fhirpath/System.", 31) == 0)
		return true;
	for (size_t i = 0; i < sizeof(prim_names) / sizeof(prim_names[0]); i++)
		if (strcmp(prim_names[i], t) == 0)
			return true;
	return false;
}

static const struct vtype *
vtype_get(struct validate_ctx *ctx, const char *name)
{
	const struct rules_structure *sd;
	struct vtype *t;
	bool found;

	t = smap_get(&ctx->types, name, &found);
	if (found)
		return t;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	sd = rules_type(ctx->set, name);
	t->vs = vstruct_get(ctx, sd);
	if (is_prim_name(name) || (sd != NULL && sd->kind != NULL &&
				   strcmp(sd->kind, "primitive-type") == 0)) {
		t->kind = VK_PRIM;
		if (strcmp(name, "boolean") == 0 ||
		    strcmp(name, "http://hl7.org/fhirpath/System.Boolean") == 0)
			t->json = VJ_BOOL;
		else if (strcmp(name, "integer") == 0 ||
			 strcmp(name, "decimal") == 0 ||
			 strcmp(name, "positiveInt") == 0 ||
			 strcmp(name, "unsignedInt") == 0 ||
			 strcmp(name,
				"http://hl7.org/fhirpath/System.Integer") ==
			     0 ||
			 strcmp(name,
				"http://hl7.org/fhirpath/System.Decimal") == 0)
			t->json = VJ_NUMBER;
	} else if (strcmp(name, "Resource") == 0 ||
		   strcmp(name, "DomainResource") == 0 ||
		   (sd != NULL && sd->kind != NULL &&
		    strcmp(sd->kind, "resource") == 0))
		t->kind = VK_RESOURCE;
	else if (sd != NULL)
		t->kind = VK_COMPLEX;
	else
		t->kind = VK_UNKNOWN;
	if (!smap_put(&ctx->types, name, t)) {
		free(t);
		return NULL;
	}
	/* the key copy is stable for the context's life */
	t->name = NULL;
	for (size_t i = 0; i < ctx->types.cap; i++)
		if (ctx->types.vals[i] == t) {
			t->name = ctx->types.keys[i];
			break;
		}
	return t;
}

/* ---- context ---- */

static char fp_bad; /* marker: expression could not be compiled */

static void
vcands_free(void *p)
{
	struct vcands *c = p;

	if (c != NULL)
		free(c->sd);
	free(c);
}

static void
cands_free(struct validate_ctx *ctx)
{
	smap_free(&ctx->cands, vcands_free);
	ctx->cands_built = false;
}

enum gw_err
validate_ctx_detect_prefix(struct validate_ctx *ctx, const char *prefix)
{
	char **n, *copy;

	for (size_t i = 0; i < ctx->ndetect; i++)
		if (strcmp(ctx->detect[i], prefix) == 0)
			return GW_OK;
	if ((copy = strdup(prefix)) == NULL ||
	    (n = realloc(ctx->detect, (ctx->ndetect + 1) * sizeof(*n))) ==
		NULL) {
		free(copy);
		return GW_NOMEM;
	}
	ctx->detect = n;
	ctx->detect[ctx->ndetect++] = copy;
	cands_free(ctx);
	return GW_OK;
}

enum gw_err
validate_ctx_new(const struct rules_set *set, struct validate_ctx **out)
{
	static const char *const pzp[] = {
	    "https://api.iknl.nl/docs/pzp/",
	    "https://fhir.iknl.nl/fhir/",
	};
	struct validate_ctx *ctx;

	*out = NULL;
	if ((ctx = calloc(1, sizeof(*ctx))) == NULL)
		return GW_NOMEM;
	ctx->set = set;
	for (size_t i = 0; i < sizeof(pzp) / sizeof(pzp[0]); i++)
		if (validate_ctx_detect_prefix(ctx, pzp[i]) != GW_OK) {
			validate_ctx_free(ctx);
			return GW_NOMEM;
		}
	*out = ctx;
	return GW_OK;
}

void
validate_ctx_free(struct validate_ctx *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->structs.cap; i++)
		if (ctx->structs.keys[i] != NULL)
			vstruct_free(ctx->structs.vals[i]);
	pmap_free(&ctx->structs);
	smap_free(&ctx->types, free);
	for (size_t i = 0; i < ctx->paths.cap; i++)
		if (ctx->paths.keys[i] != NULL &&
		    ctx->paths.vals[i] != (void *)&fp_bad)
			fhirpath_free(ctx->paths.vals[i]);
	pmap_free(&ctx->paths);
	pmap_free(&ctx->vsets);
	for (size_t i = 0; i < ctx->ndetect; i++)
		free(ctx->detect[i]);
	free(ctx->detect);
	cands_free(ctx);
	for (size_t i = 0; i < ctx->vcodes.cap; i++)
		if (ctx->vcodes.keys[i] != NULL) {
			struct vcodes *vc = ctx->vcodes.vals[i];

			free(vc->codes);
			free(vc);
		}
	pmap_free(&ctx->vcodes);
	free(ctx);
}

const char *
validate_last_profile(const struct validate_ctx *ctx)
{
	return ctx != NULL ? ctx->last_profile : NULL;
}
/* ---- issues and the expression path ---- */

static size_t path_push(struct vrun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static size_t
path_push(struct vrun *r, const char *fmt, ...)
{
	size_t old = r->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->path + r->plen, sizeof(r->path) - r->plen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(r->path) - r->plen) {
		r->overflow = true;
		r->path[old] = '\0';
		return old;
	}
	r->plen += (size_t)n;
	return old;
}

/* Append sep and n bytes of name (no formatting: the walk's hot path). */
static size_t
path_add(struct vrun *r, const char *sep, const char *name, size_t n)
{
	size_t old = r->plen, sl = strlen(sep);

	if (r->plen + sl + n + 1 > sizeof(r->path)) {
		r->overflow = true;
		return old;
	}
	memcpy(r->path + r->plen, sep, sl);
	memcpy(r->path + r->plen + sl, name, n);
	r->plen += sl + n;
	r->path[r->plen] = '\0';
	return old;
}

/* Append "[i]". */
static size_t
path_index(struct vrun *r, size_t i)
{
	char tmp[24];
	size_t n = sizeof(tmp), old = r->plen;

	tmp[--n] = ']';
	do {
		tmp[--n] = (char)('0' + i % 10);
		i /= 10;
	} while (i > 0 && n > 1);
	tmp[--n] = '[';
	if (r->plen + (sizeof(tmp) - n) + 1 > sizeof(r->path)) {
		r->overflow = true;
		return old;
	}
	memcpy(r->path + r->plen, tmp + n, sizeof(tmp) - n);
	r->plen += sizeof(tmp) - n;
	r->path[r->plen] = '\0';
	return old;
}

static void
path_pop(struct vrun *r, size_t old)
{
	r->plen = old;
	r->path[old] = '\0';
}

static void issue(struct vrun *r, const char *sev, const char *code,
		  const struct fj_node *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
issue(struct vrun *r, const char *sev, const char *code,
      const struct fj_node *at, const char *fmt, ...)
{
	char msg[768], *key = NULL;
	struct vissue *is;
	size_t klen;
	bool found;
	va_list ap;

	bool is_err =
	    strcmp(sev, FHIR_ERROR) == 0 || strcmp(sev, FHIR_FATAL) == 0;

	if (r->scratch) {
		if (is_err)
			r->nerrors++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The same finding (code, expression, message) once. */
	klen = strlen(code) + r->plen + strlen(msg) + 3;
	if ((key = malloc(klen)) == NULL)
		goto nomem;
	snprintf(key, klen, "%s|%s|%s", code, r->path, msg);
	smap_get(&r->seen, key, &found);
	if (found) {
		free(key);
		return;
	}
	if (is_err)
		r->nerrors++;
	if (r->nissues >= V_MAX_ISSUES) {
		free(key);
		return;
	}
	if (!smap_put(&r->seen, key, NULL))
		goto nomem;
	free(key);
	key = NULL;
	if (r->nissues == r->capissues) {
		size_t ncap = r->capissues == 0 ? 16 : r->capissues * 2;
		struct vissue *n = realloc(r->issues, ncap * sizeof(*n));

		if (n == NULL)
			goto nomem;
		r->issues = n;
		r->capissues = ncap;
	}
	is = &r->issues[r->nissues];
	memset(is, 0, sizeof(*is));
	is->sev = sev;
	is->code = code;
	is->expr = strdup(r->path);
	/* name the profile (not part of the dedupe key: a rule shared by a
	 * profile and its parent is one finding) */
	if (r->cur_sd != NULL && r->cur_sd->constraint &&
	    r->cur_sd->url != NULL) {
		size_t ml = strlen(msg);

		snprintf(msg + ml, sizeof(msg) - ml, " (profile %s)",
			 r->cur_sd->url);
	}
	is->msg = strdup(msg);
	if (is->expr == NULL || is->msg == NULL) {
		free(is->expr);
		free(is->msg);
		goto nomem;
	}
	if (at != NULL) {
		is->line = at->line;
		is->col = at->col;
	}
	r->nissues++;
	return;
nomem:
	free(key);
	r->nomem = true;
}

/* Count one element; true when the walk must stop (out of memory, or
 * past the deadline, read every V_DEADLINE_EVERY elements). */
static bool
run_stopped(struct vrun *r)
{
	if (r->deadline != 0 && !r->late && ++r->ticks >= V_DEADLINE_EVERY) {
		r->ticks = 0;
		if (util_mono_ms() >= r->deadline)
			r->late = r->nomem = true;
	}
	return r->nomem;
}

static void
run_cleanup(struct vrun *r)
{
	for (size_t i = 0; i < r->nissues; i++) {
		free(r->issues[i].expr);
		free(r->issues[i].msg);
	}
	free(r->issues);
	smap_free(&r->seen, NULL);
	smap_free(&r->noteval, NULL);
}

/* ---- JSON value helpers ---- */

static const char *
jtype_name(const struct fj_node *n)
{
	static const char *const names[] = {"null",   "boolean", "number",
					    "string", "array",	 "object"};

	return names[n->type];
}

static bool
num_equal(const struct fj_node *a, const struct fj_node *b)
{
	if (a->u.str.len == b->u.str.len &&
	    memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0)
		return true;
	return strtod(a->u.str.s, NULL) == strtod(b->u.str.s, NULL);
}

/* Exact equality of JSON values (fixed[x]); member order ignored. */
static bool
fj_equal_v(const struct fj_node *a, const struct fj_node *b)
{
	const struct fj_node *x, *y;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case FJ_NULL:
		return true;
	case FJ_BOOL:
		return a->u.b == b->u.b;
	case FJ_NUMBER:
		return num_equal(a, b);
	case FJ_STRING:
		return a->u.str.len == b->u.str.len &&
		       memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
	case FJ_ARRAY:
		if (a->u.kids.count != b->u.kids.count)
			return false;
		for (x = a->u.kids.first, y = b->u.kids.first; x && y;
		     x = x->next, y = y->next)
			if (!fj_equal_v(x, y))
				return false;
		return true;
	case FJ_OBJECT:
		if (a->u.kids.count != b->u.kids.count)
			return false;
		for (x = a->u.kids.first; x != NULL; x = x->next) {
			y = fj_get(b, x->key);
			if (y == NULL || !fj_equal_v(x, y))
				return false;
		}
		return true;
	}
	return false;
}

/* Pattern semantics: inst holds at least what pat holds; for arrays each
 * pattern element is matched by some instance element. */
static bool
fj_contains_v(const struct fj_node *inst, const struct fj_node *pat)
{
	const struct fj_node *x, *y;

	if (pat->type == FJ_ARRAY) {
		if (inst->type != FJ_ARRAY) {
			/* a one-element pattern array against one value */
			for (x = pat->u.kids.first; x != NULL; x = x->next)
				if (!fj_contains_v(inst, x))
					return false;
			return true;
		}
		for (x = pat->u.kids.first; x != NULL; x = x->next) {
			for (y = inst->u.kids.first; y != NULL; y = y->next)
				if (fj_contains_v(y, x))
					break;
			if (y == NULL)
				return false;
		}
		return true;
	}
	if (pat->type == FJ_OBJECT) {
		if (inst->type != FJ_OBJECT)
			return false;
		for (x = pat->u.kids.first; x != NULL; x = x->next) {
			y = fj_get(inst, x->key);
			if (y == NULL || !fj_contains_v(y, x))
				return false;
		}
		return true;
	}
	return fj_equal_v(inst, pat);
}

/* Short text of a value for messages (never patient data beyond codes). */
static void
short_json(const struct fj_node *n, char *out, size_t len)
{
	struct buf b;

	buf_init(&b, 4096);
	if (fj_dump(n, FJ_CANONICAL, &b) == GW_OK && b.data != NULL) {
		if (b.len >= len && len > 4) {
			memcpy(out, b.data, len - 4);
			memcpy(out + len - 4, "...", 4);
		} else {
			snprintf(out, len, "%s", b.data);
		}
	} else {
		snprintf(out, len, "(value)");
	}
	buf_cleanup(&b);
}

static const char *
sd_label(const struct rules_structure *sd)
{
	if (sd == NULL)
		return "?";
	return sd->url != NULL ? sd->url : sd->name != NULL ? sd->name : "?";
}
/* ---- the walk ---- */

static void validate_resource(struct vrun *r, const struct fj_node *res,
			      const char *const *profiles, size_t nprofiles,
			      bool is_root, const struct rules_structure *only);
static void validate_item(struct vrun *r, const struct vstruct *vs,
			  const struct vnode *d, const char *type,
			  const struct fj_node *v, const struct fj_node *u);
static bool conforms(struct vrun *r, const struct fj_node *res,
		     const struct rules_structure *sd);

/* Capitalised type name after a choice prefix: "valueQuantity" ->
 * "Quantity" matches type "Quantity"; "valueString" matches "string". */
static bool
choice_type_matches(const char *suffix, const char *type)
{
	if (suffix[0] == '\0' || type[0] == '\0')
		return false;
	if (suffix[0] != type[0] &&
	    !(type[0] >= 'a' && type[0] <= 'z' && suffix[0] == type[0] - 32))
		return false;
	return strcmp(suffix + 1, type + 1) == 0;
}

/* The kid of a member name; for choices *type is set to the chosen type. */
static const struct vnode *
find_kid(struct vnode *const *kids, size_t nkids, const char *name,
	 const char **type)
{
	*type = NULL;
	for (size_t i = 0; i < nkids; i++) {
		const struct vnode *k = kids[i];

		if (k->name[0] != name[0])
			continue;
		if (!k->choice) {
			if (strcmp(k->name, name) == 0)
				return k;
			continue;
		}
		if (strncmp(k->name, name, k->prefixlen) != 0)
			continue;
		for (size_t t = 0; t < k->el->ntypes; t++)
			if (choice_type_matches(name + k->prefixlen,
						k->el->types[t].code)) {
				*type = k->el->types[t].code;
				return k;
			}
	}
	return NULL;
}

/* For a choice element, the type slice constraining type (e.g.
 * value[x]:valueQuantity), or d itself. */
static const struct vnode *
choice_slice(const struct vnode *d, const char *type)
{
	for (size_t i = 0; i < d->nslices; i++) {
		const struct vnode *s = d->slices[i];

		if (s->el->ntypes == 1 &&
		    strcmp(s->el->types[0].code, type) == 0)
			return s;
	}
	return d;
}

/* Children definitions of element d, following contentReference. */
static const struct vnode *
kids_of(const struct vnode *d)
{
	int guard = 0;

	while (d != NULL && d->nkids == 0 && d->ref != NULL && guard++ < 8)
		d = d->ref;
	return d;
}

struct vmember {
	const struct fj_node *m;
	const struct vnode *kid;
	const char *type;
	bool under;
};

struct vitem {
	const struct fj_node *v, *u;
	const struct vnode *def;
	int slice; /* index into the owner's slices, -1 none */
	size_t index;
};

static void check_kid(struct vrun *r, const struct vstruct *vs,
		      const struct vnode *k, const struct vmember *ms,
		      size_t nm, const struct fj_node *obj);

/* Check the members of object obj against the child definitions kids. */
static void
check_members(struct vrun *r, const struct vstruct *vs, const struct vnode *pn,
	      const struct fj_node *obj, bool resource_root, bool skip_value)
{
	struct vnode *const *kids = pn->kids;
	size_t nkids = pn->nkids;
	struct vmember stackms[48], *ms = stackms;
	size_t nm = 0, cnt = obj->u.kids.count;

	if (cnt > sizeof(stackms) / sizeof(stackms[0])) {
		if ((ms = calloc(cnt, sizeof(*ms))) == NULL) {
			r->nomem = true;
			return;
		}
	}
	for (const struct fj_node *m = obj->u.kids.first; m != NULL;
	     m = m->next) {
		const char *name = m->key, *type = NULL;
		const struct vnode *k;
		bool under = false;
		size_t old;

		if (resource_root && strcmp(name, "resourceType") == 0)
			continue;
		if (strlen(name) != m->keylen) {
			old = path_push(r, ".?");
			issue(r, FHIR_ERROR, "structure", m,
			      "a property name contains a NUL character");
			path_pop(r, old);
			continue;
		}
		if (name[0] == '_' && name[1] != '\0') {
			under = true;
			name++;
		}
		k = find_kid(kids, nkids, name, &type);
		if (k != NULL && skip_value && strcmp(name, "value") == 0)
			k = NULL;
		if (k == NULL) {
			old = path_push(r, ".%s", m->key);
			issue(r, FHIR_ERROR, "structure", m,
			      "unrecognised property '%s'", m->key);
			path_pop(r, old);
			continue;
		}
		ms[nm].m = m;
		ms[nm].kid = k;
		ms[nm].type = type;
		ms[nm].under = under;
		nm++;
	}
	/* the kids present, in member order, each once */
	for (size_t i = 0; i < nm && !r->nomem; i++) {
		bool first = true;

		for (size_t j = 0; j < i && first; j++)
			first = ms[j].kid != ms[i].kid;
		if (first)
			check_kid(r, vs, ms[i].kid, ms, nm, obj);
	}
	/* absent kids that a minimum (theirs or a slice's) requires */
	for (size_t i = 0; i < pn->nreq && !r->nomem; i++) {
		const struct vnode *k = pn->req[i];
		bool present = false;

		if (skip_value && strcmp(k->name, "value") == 0)
			continue;
		for (size_t j = 0; j < nm && !present; j++)
			present = ms[j].kid == k;
		if (!present)
			check_kid(r, vs, k, ms, nm, obj);
	}
	if (ms != stackms)
		free(ms);
}

static bool
is_array_el(const struct rules_element *el)
{
	uint32_t m = el->base_max != 0 ? el->base_max : el->max;

	return m > 1;
}

static void assign_slices(struct vrun *r, const struct vstruct *vs,
			  const struct vnode *k, struct vitem *items, size_t n,
			  const char *type, size_t parent_len);

/*
 * Report a cardinality finding (minimum: is_max false) at the parent
 * element (path length parent_len), as the HL7 validator does; the message
 * names the child.
 */
static void
issue_card(struct vrun *r, size_t parent_len, const struct fj_node *at,
	   const char *what, bool is_max, unsigned limit, size_t found)
{
	size_t cur = r->plen;
	char c;

	if (parent_len > cur)
		parent_len = cur;
	c = r->path[parent_len];
	r->path[parent_len] = '\0';
	r->plen = parent_len;
	if (is_max)
		issue(r, FHIR_ERROR, "structure", at,
		      "%s: max allowed = %u, but found %zu", what, limit,
		      found);
	else
		issue(r, FHIR_ERROR, "required", at,
		      "%s: minimum required = %u, but only found %zu", what,
		      limit, found);
	r->path[parent_len] = c;
	r->plen = cur;
}

static void
check_kid(struct vrun *r, const struct vstruct *vs, const struct vnode *k,
	  const struct vmember *ms, size_t nm, const struct fj_node *obj)
{
	const struct fj_node *vm = NULL, *um = NULL, *at = obj;
	const char *type = NULL;
	struct vitem stackitems[16], *items = stackitems;
	const struct rules_element *el = k->el;
	bool arr = is_array_el(el);
	size_t n = 0, nv = 0, nu = 0, old, old2;
	const struct vnode *d = k;

	for (size_t i = 0; i < nm; i++) {
		if (ms[i].kid != k)
			continue;
		if (ms[i].type != NULL && type != NULL &&
		    strcmp(ms[i].type, type) != 0) {
			old = path_push(r, ".%s", ms[i].m->key);
			issue(r, FHIR_ERROR, "structure", ms[i].m,
			      "only one type of %s is allowed", k->name);
			path_pop(r, old);
			continue;
		}
		if (ms[i].type != NULL)
			type = ms[i].type;
		if (ms[i].under)
			um = ms[i].m;
		else
			vm = ms[i].m;
	}
	if (vm == NULL && um == NULL) {
		/* absent: only a minimum (of the element or one of its
		 * slices) can be broken */
		bool need = el->min > 0;

		for (size_t j = 0; j < k->nslices && !need; j++)
			need = k->slices[j]->el->min > 0 ||
			       (k->slices[j]->card != NULL &&
				k->slices[j]->card->min > 0);
		if (!need)
			return;
	}
	if (k->choice) {
		old = path_add(r, ".", k->name, k->prefixlen);
		if (type != NULL) {
			path_add(r, ".ofType(", type, strlen(type));
			path_add(r, ")", "", 0);
			d = choice_slice(k, type);
		}
	} else {
		old = path_add(r, ".", k->name, k->prefixlen);
	}
	if (vm == NULL && um == NULL) {
		if (el->min > 0)
			issue_card(r, old, obj, el->id, false,
				   (unsigned)el->min, 0);
		else
			assign_slices(r, vs, k, NULL, 0, NULL, old);
		path_pop(r, old);
		return;
	}
	if (vm != NULL) {
		at = vm;
		if (vm->type == FJ_ARRAY) {
			nv = vm->u.kids.count;
			if (!arr)
				issue(r, FHIR_ERROR, "structure", vm,
				      "this property must be a single value, "
				      "not an array");
			if (nv == 0)
				issue(r, FHIR_ERROR, "structure", vm,
				      "arrays must not be empty");
		} else {
			nv = 1;
			if (arr)
				issue(r, FHIR_ERROR, "structure", vm,
				      "this property must be an array, not "
				      "a %s",
				      jtype_name(vm));
		}
	}
	if (um != NULL) {
		if (um->type == FJ_ARRAY) {
			nu = um->u.kids.count;
			if (!arr)
				issue(r, FHIR_ERROR, "structure", um,
				      "this property must be a single value, "
				      "not an array");
		} else {
			nu = 1;
			if (arr)
				issue(r, FHIR_ERROR, "structure", um,
				      "this property must be an array");
		}
		if (vm != NULL && nv != nu)
			issue(r, FHIR_ERROR, "structure", um,
			      "the arrays %s and _%s differ in length", k->name,
			      k->name);
	}
	n = nv > nu ? nv : nu;
	if (n < el->min)
		issue_card(r, old, at, el->id, false, (unsigned)el->min, n);
	if (el->max != RULES_UNBOUNDED && n > el->max)
		issue_card(r, old, at, el->id, true, (unsigned)el->max, n);
	if (n > sizeof(stackitems) / sizeof(stackitems[0])) {
		if ((items = calloc(n, sizeof(*items))) == NULL) {
			r->nomem = true;
			path_pop(r, old);
			return;
		}
	}
	/* Walk both member lists once (fj_at per item would make a long
	 * array quadratic). */
	{
		const struct fj_node *cv = vm == NULL ? NULL
					   : vm->type == FJ_ARRAY
					       ? vm->u.kids.first
					       : vm;
		const struct fj_node *cu = um == NULL ? NULL
					   : um->type == FJ_ARRAY
					       ? um->u.kids.first
					       : um;

		for (size_t i = 0; i < n; i++) {
			items[i].v = cv;
			items[i].u = cu;
			items[i].def = d;
			items[i].slice = -1;
			items[i].index = i;
			if (cv != NULL)
				cv = vm->type == FJ_ARRAY ? cv->next : NULL;
			if (cu != NULL)
				cu = um->type == FJ_ARRAY ? cu->next : NULL;
		}
	}
	if (k->nslices > 0 || el->slicing != NULL)
		assign_slices(r, vs, k, items, n, type, old);
	for (size_t i = 0; i < n && !r->nomem; i++) {
		old2 = arr ? path_index(r, i) : r->plen;
		validate_item(r, vs, items[i].def, type, items[i].v,
			      items[i].u);
		path_pop(r, old2);
	}
	if (items != stackitems)
		free(items);
	path_pop(r, old);
}
/* ---- bindings ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when some code of vs (any system) equals code. Small sets are
 * scanned; larger ones get a sorted index, once per context. */
static bool
vs_has_code_ctx(struct validate_ctx *ctx, const struct rules_valueset *vs,
		const char *code)
{
	struct vcodes *vc;

	if (vs->ncodes <= 16 || ctx == NULL) {
		for (size_t i = 0; i < vs->ncodes; i++)
			if (strcmp(vs->codes[i].code, code) == 0)
				return true;
		return false;
	}
	if ((vc = pmap_get(&ctx->vcodes, vs)) == NULL) {
		if ((vc = calloc(1, sizeof(*vc))) == NULL ||
		    (vc->codes = calloc(vs->ncodes, sizeof(*vc->codes))) ==
			NULL) {
			free(vc);
			return vs_has_code_ctx(NULL, vs, code);
		}
		for (size_t i = 0; i < vs->ncodes; i++)
			vc->codes[i] = vs->codes[i].code;
		vc->n = vs->ncodes;
		qsort(vc->codes, vc->n, sizeof(*vc->codes), cmp_str);
		if (!pmap_put(&ctx->vcodes, vs, vc)) {
			free(vc->codes);
			free(vc);
			return vs_has_code_ctx(NULL, vs, code);
		}
	}
	return bsearch(&code, vc->codes, vc->n, sizeof(*vc->codes), cmp_str) !=
	       NULL;
}

#define vs_has_code(vs, code) vs_has_code_ctx(r->ctx, (vs), (code))

static char vs_unknown; /* marker: the binding's value set is not loaded */

/* The value set of a binding URL, cached by the URL's (interned)
 * pointer. */
static const struct rules_valueset *
binding_vs(struct vrun *r, const char *url)
{
	void *hit = pmap_get(&r->ctx->vsets, url);
	const struct rules_valueset *vs;

	if (hit == (void *)&vs_unknown)
		return NULL;
	if (hit != NULL)
		return hit;
	vs = rules_valueset(r->ctx->set, url);
	(void)pmap_put(&r->ctx->vsets, url,
		       vs != NULL ? (void *)vs : (void *)&vs_unknown);
	return vs;
}

static const char *
strength_name(enum rules_strength s)
{
	return s == RULES_BIND_REQUIRED ? "required" : "extensible";
}

static void
check_binding(struct vrun *r, const struct rules_element *el, const char *type,
	      const struct fj_node *v)
{
	const struct rules_valueset *vs;
	const char *sev, *code, *system;
	bool ok = false, any = false;

	if (el->valueset == NULL || v == NULL ||
	    (el->strength != RULES_BIND_REQUIRED &&
	     el->strength != RULES_BIND_EXTENSIBLE))
		return;
	if ((vs = binding_vs(r, el->valueset)) == NULL || !vs->complete)
		return;
	sev = el->strength == RULES_BIND_REQUIRED ? FHIR_ERROR : FHIR_WARNING;
	if (v->type == FJ_STRING) {
		if (strcmp(type, "code") != 0 && strcmp(type, "string") != 0 &&
		    strcmp(type, "uri") != 0)
			return;
		if (!vs_has_code(vs, v->u.str.s))
			issue(r, sev, "code-invalid", v,
			      "the code '%s' is not in the value set %s "
			      "(%s binding)",
			      v->u.str.s, vs->url, strength_name(el->strength));
		return;
	}
	if (v->type != FJ_OBJECT)
		return;
	if (strcmp(type, "Coding") == 0 || strcmp(type, "Quantity") == 0) {
		code = fj_get_str(v, "code");
		system = fj_get_str(v, "system");
		if (code == NULL)
			return;
		if (!(system != NULL ? rules_valueset_has(vs, system, code)
				     : vs_has_code(vs, code)))
			issue(r, sev, "code-invalid", v,
			      "the code %s#%s is not in the value set %s "
			      "(%s binding)",
			      system != NULL ? system : "", code, vs->url,
			      strength_name(el->strength));
		return;
	}
	if (strcmp(type, "CodeableConcept") != 0)
		return;
	for (const struct fj_node *c =
		 fj_get(v, "coding") != NULL &&
			 fj_get(v, "coding")->type == FJ_ARRAY
		     ? fj_get(v, "coding")->u.kids.first
		     : NULL;
	     c != NULL; c = c->next) {
		code = fj_get_str(c, "code");
		system = fj_get_str(c, "system");
		if (code == NULL)
			continue;
		any = true;
		if (system != NULL ? rules_valueset_has(vs, system, code)
				   : vs_has_code(vs, code))
			ok = true;
	}
	if (ok)
		return;
	if (!any) {
		if (el->strength == RULES_BIND_REQUIRED)
			issue(r, FHIR_ERROR, "code-invalid", v,
			      "no code provided, and a code is required from "
			      "the value set %s",
			      vs->url);
		return;
	}
	issue(r, sev, "code-invalid", v,
	      "none of the codes provided are in the value set %s (%s "
	      "binding)",
	      vs->url, strength_name(el->strength));
}

/* ---- fixed and pattern ---- */

static void
check_fixed(struct vrun *r, const struct rules_element *el,
	    const struct fj_node *v)
{
	char want[200];

	if (v == NULL)
		return;
	if (el->fixed != NULL && !fj_equal_v(v, el->fixed)) {
		short_json(el->fixed, want, sizeof(want));
		issue(r, FHIR_ERROR, "value", v,
		      "value does not equal the fixed value %s (%s)", want,
		      el->id);
	}
	if (el->pattern != NULL && !fj_contains_v(v, el->pattern)) {
		short_json(el->pattern, want, sizeof(want));
		issue(r, FHIR_ERROR, "value", v,
		      "value does not match the pattern %s (%s)", want, el->id);
	}
}

/* ---- references ---- */

static const char *
url_type(const struct validate_ctx *ctx, const char *url,
	 const struct rules_structure **sd)
{
	const char *slash;

	*sd = rules_structure(ctx->set, url);
	if (*sd != NULL && (*sd)->type != NULL)
		return (*sd)->type;
	slash = strrchr(url, '/');
	return slash != NULL ? slash + 1 : url;
}

static const struct fj_node *
find_contained(const struct fj_node *res, const char *id)
{
	const struct fj_node *c = fj_get(res, "contained");

	if (c == NULL || c->type != FJ_ARRAY)
		return NULL;
	for (c = c->u.kids.first; c != NULL; c = c->next)
		if (c->type == FJ_OBJECT && fj_str_eq(fj_get(c, "id"), id))
			return c;
	return NULL;
}

/* Entry index + 1 of key in m, 0 when absent. */
static size_t
idx_get(const struct smap *m, const char *key)
{
	bool found;
	void *v = smap_get(m, key, &found);

	return found ? (size_t)(uintptr_t)v : 0;
}

/*
 * The entry that a Type/id reference starting at p names ("Type/id" or
 * "Type/id/_history/v"), as index + 1, 0 when none. key is scratch space
 * of at least strlen(p) + 1 bytes.
 */
static size_t
tid_at(const struct vbundle *b, const char *p, char *key)
{
	const char *s1 = strchr(p, '/'), *end;
	size_t kl;

	if (s1 == NULL || s1 == p)
		return 0;
	end = strchr(s1 + 1, '/');
	if (end == NULL)
		end = s1 + 1 + strlen(s1 + 1);
	else if (strncmp(end, "/_history/", 10) != 0)
		return 0;
	kl = (size_t)(end - p);
	memcpy(key, p, kl);
	key[kl] = '\0';
	return idx_get(&b->by_tid, key);
}

/*
 * Find the target of reference ref in the Bundles around the resource:
 * an entry whose fullUrl is ref, else one whose Type/id ref is (a
 * relative reference, possibly with _history) or ends with (an absolute
 * http(s) URL). Ids with a '/' are not FHIR ids and are not indexed. The
 * lookups use the Bundle's indexes: linear in the length of ref, not in
 * the number of entries.
 */
static const struct fj_node *
resolve_ref(const struct vrun *r, const char *ref)
{
	size_t rl = strlen(ref);
	char stack[256], *key = rl < sizeof(stack) ? stack : malloc(rl + 1);
	const struct fj_node *found = NULL;

	if (key == NULL)
		return NULL;
	for (const struct vbundle *b = r->bundle; b != NULL; b = b->up) {
		size_t best = idx_get(&b->by_url, ref), k;

		if (best != 0) {
			found = b->e[best - 1].res;
			break;
		}
		if (strchr(ref, '/') == NULL || strncmp(ref, "urn:", 4) == 0)
			continue;
		if (strncmp(ref, "http", 4) != 0) {
			best = tid_at(b, ref, key);
		} else {
			/* any Type/id tail of the URL; the first entry in
			 * Bundle order wins */
			for (const char *p = ref; p != NULL;
			     p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
				if ((k = tid_at(b, p, key)) != 0 &&
				    (best == 0 || k < best))
					best = k;
		}
		if (best != 0) {
			found = b->e[best - 1].res;
			break;
		}
	}
	if (key != stack)
		free(key);
	return found;
}

/* The resource type a literal reference names ("Patient/1", ".../fhir/
 * Patient/1/_history/2"), copied into buf, when it is a known resource
 * type; else NULL. */
static const char *
ref_url_type(struct vrun *r, const char *ref, char *buf, size_t len)
{
	const char *seg[4] = {NULL, NULL, NULL, NULL}, *end, *p;
	size_t n = 0, tl;
	const struct vtype *t;

	if (strncmp(ref, "urn:", 4) == 0 || strchr(ref, '?') != NULL)
		return NULL;
	end = ref + strlen(ref);
	/* the last four '/'-separated segments, newest first */
	for (p = end; p > ref && n < 4;) {
		const char *q = p;

		while (q > ref && q[-1] != '/')
			q--;
		seg[n++] = q;
		p = q > ref ? q - 1 : ref;
		if (q == ref)
			break;
	}
	if (n >= 4 && strncmp(seg[1], "_history/", 9) == 0) {
		seg[0] = seg[2];
		seg[1] = seg[3];
		n -= 2;
	}
	if (n < 2 || seg[1] >= seg[0])
		return NULL;
	tl = (size_t)(seg[0] - seg[1]) - 1; /* without the '/' */
	if (tl == 0 || tl >= len)
		return NULL;
	memcpy(buf, seg[1], tl);
	buf[tl] = '\0';
	if ((t = vtype_get(r->ctx, buf)) == NULL || t->kind != VK_RESOURCE)
		return NULL;
	return buf;
}

static void
check_reference(struct vrun *r, const struct rules_element *el,
		const struct fj_node *v)
{
	const struct fj_node *target = NULL;
	const struct rules_type *rt = NULL;
	const char *ref, *ttype, *rtyp;
	bool ok = false, any = false;
	char allowed[512], urltype[64];
	size_t alen = 0;

	if ((ref = fj_get_str(v, "reference")) == NULL)
		return;
	if (ref[0] == '#') {
		if (ref[1] == '\0')
			return; /* the containing resource itself */
		if (r->root != NULL &&
		    (target = find_contained(r->root, ref + 1)) == NULL &&
		    (r->resource == NULL ||
		     (target = find_contained(r->resource, ref + 1)) == NULL)) {
			issue(r, FHIR_ERROR, "structure", v,
			      "the contained resource '%s' was not found", ref);
			return;
		}
	} else {
		target = resolve_ref(r, ref);
		if (target == NULL) {
			if (r->bundle != NULL && r->bundle->must_resolve &&
			    (strncmp(ref, "urn:", 4) == 0 ||
			     (strchr(ref, ':') == NULL &&
			      strchr(ref, '/') != NULL))) {
				issue(r, FHIR_ERROR, "not-found", v,
				      "the reference '%s' does not resolve "
				      "within the Bundle",
				      ref);
				return;
			}
		}
	}
	/* the type: the target's, else the one its URL implies */
	if (target != NULL)
		ttype = fj_get_str(target, "resourceType");
	else
		ttype = ref_url_type(r, ref, urltype, sizeof(urltype));
	if (ttype == NULL)
		return;
	if ((rtyp = fj_get_str(v, "type")) != NULL &&
	    strcmp(rtyp, ttype) != 0 && strchr(rtyp, ':') == NULL) {
		size_t o2 = path_add(r, ".", "type", 4);

		issue(r, FHIR_ERROR, "value", fj_get(v, "type"),
		      "the reference type '%.60s' does not match the %s the "
		      "reference points to",
		      rtyp, ttype);
		path_pop(r, o2);
	}
	for (size_t i = 0; i < el->ntypes; i++)
		if (strcmp(el->types[i].code, "Reference") == 0)
			rt = &el->types[i];
	if (rt == NULL || rt->ntargets == 0)
		return;
	allowed[0] = '\0';
	for (size_t i = 0; i < rt->ntargets && !ok; i++) {
		const struct rules_structure *sd;
		const char *t = url_type(r->ctx, rt->targets[i], &sd);
		int n;

		n = snprintf(allowed + alen, sizeof(allowed) - alen, "%s%s",
			     alen > 0 ? ", " : "", rt->targets[i]);
		if (n > 0 && (size_t)n < sizeof(allowed) - alen)
			alen += (size_t)n;
		if (strcmp(t, "Resource") == 0) {
			ok = true;
			break;
		}
		if (strcmp(t, ttype) != 0)
			continue;
		any = true;
		/* a target outside the document cannot be checked against a
		 * profile; its type is all that is known */
		if (sd == NULL || !sd->constraint || target == NULL ||
		    conforms(r, target, sd))
			ok = true;
	}
	if (ok)
		return;
	if (!any)
		issue(r, FHIR_ERROR, "structure", v,
		      "the reference points to a %s, which is not an allowed "
		      "target (%s)",
		      ttype, allowed);
	else
		issue(r, FHIR_ERROR, "structure", v,
		      "the referenced %s does not conform to any allowed "
		      "target profile (%s)",
		      ttype, allowed);
}

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
			   ? find_contained(r->resource, reference + 1)
			   : NULL;
	else
		*out = resolve_ref(r, reference);
	return GW_OK;
}

static enum gw_err
fp_member_of(void *arg, const struct fj_node *node, const char *type,
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

/* FHIRPath type callback: the FHIR type of member of a parent of type
 * parent_type ("Observation", "CodeableConcept", or a backbone element's
 * path such as "Bundle.entry"), from the base definitions. */
static const char *
fp_type_of(void *arg, const struct fj_node *parent, const char *parent_type,
	   const char *member)
{
	static const char *const sys[][2] = {
	    {"String", "string"},   {"Boolean", "boolean"},
	    {"Integer", "integer"}, {"Decimal", "decimal"},
	    {"Date", "date"},	    {"DateTime", "dateTime"},
	    {"Time", "time"},
	};
	struct vrun *r = arg;
	const struct vtype *t;
	const struct vnode *kd, *k;
	const char *dot, *type = NULL, *code;
	char head[128];
	size_t hl;

	(void)parent;
	if (parent_type == NULL || member == NULL)
		return NULL;
	dot = strchr(parent_type, '.');
	/* A copy, not snprintf: this runs for every member a FHIRPath
	 * invariant navigates. */
	hl = dot != NULL ? (size_t)(dot - parent_type) : strlen(parent_type);
	if (hl >= sizeof(head))
		hl = sizeof(head) - 1;
	memcpy(head, parent_type, hl);
	head[hl] = '\0';
	if ((t = vtype_get(r->ctx, head)) == NULL || t->vs == NULL)
		return NULL;
	kd = t->vs->root;
	while (dot != NULL && kd != NULL) {
		const char *seg = dot + 1;
		const struct vnode *next = NULL;
		size_t sl;

		dot = strchr(seg, '.');
		sl = dot != NULL ? (size_t)(dot - seg) : strlen(seg);
		kd = kids_of(kd);
		for (size_t i = 0; i < kd->nkids; i++)
			if (strncmp(kd->kids[i]->name, seg, sl) == 0 &&
			    kd->kids[i]->name[sl] == '\0')
				next = kd->kids[i];
		kd = next;
	}
	if (kd == NULL)
		return NULL;
	kd = kids_of(kd);
	if ((k = find_kid(kd->kids, kd->nkids, member, &type)) == NULL)
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

static void
not_evaluated(struct vrun *r, const struct rules_constraint *c,
	      const struct fj_node *at, const char *why)
{
	bool found;
	size_t old;

	smap_get(&r->noteval, c->key, &found);
	if (found || r->scratch)
		return;
	if (!smap_put(&r->noteval, c->key, NULL)) {
		r->nomem = true;
		return;
	}
	/* once per key, where it was first met */
	old = r->plen;
	issue(r, FHIR_INFORMATION, "not-supported", at,
	      "invariant %s was not evaluated: %s [%s]", c->key, why,
	      c->expression != NULL ? c->expression : "");
	path_pop(r, old);
}

static void
check_constraints(struct vrun *r, const struct rules_element *el,
		  const struct fj_node *v, const char *type)
{
	struct fhirpath_env env;
	char why[160];

	for (size_t i = 0; i < el->nconstraints && !r->nomem; i++) {
		const struct rules_constraint *c = &el->constraints[i];
		struct fhirpath *fp;
		enum fhirpath_bool res;
		enum gw_err err;

		if (c->key == NULL || c->expression == NULL ||
		    native_constraint(c->key))
			continue;
		fp = pmap_get(&r->ctx->paths, c->expression);
		if (fp == NULL) {
			why[0] = '\0';
			err = fhirpath_compile(c->expression, &fp, why,
					       sizeof(why));
			if (err == GW_NOMEM) {
				r->nomem = true;
				return;
			}
			if (err != GW_OK)
				fp = (struct fhirpath *)(void *)&fp_bad;
			if (!pmap_put(&r->ctx->paths, c->expression, fp)) {
				if (fp != (struct fhirpath *)(void *)&fp_bad)
					fhirpath_free(fp);
				r->nomem = true;
				return;
			}
		}
		if (fp == (struct fhirpath *)(void *)&fp_bad) {
			why[0] = '\0';
			fp = NULL;
			fhirpath_compile(c->expression, &fp, why, sizeof(why));
			fhirpath_free(fp);
			not_evaluated(r, c, v,
				      why[0] != '\0' ? why
						     : "outside the supported "
						       "FHIRPath subset");
			continue;
		}
		memset(&env, 0, sizeof(env));
		env.resource = r->resource;
		env.resource_type = r->resource_type;
		env.root_resource = r->root;
		env.resolve = fp_resolve;
		env.member_of = fp_member_of;
		env.type_of = fp_type_of;
		env.arg = r;
		why[0] = '\0';
		env.errbuf = why;
		env.errlen = sizeof(why);
		err = fhirpath_eval_bool(fp, v, type, &env, &res);
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
			issue(r, c->error ? FHIR_ERROR : FHIR_WARNING,
			      "invariant", v, "%s: %s [%s]", c->key,
			      c->human != NULL ? c->human : "", c->expression);
	}
}
/* ---- elements ---- */

/* The structure of an extension item: its definition's profile, else the
 * one named by its url. */
static const struct vstruct *
extension_struct(struct vrun *r, const struct vnode *d, const struct fj_node *v,
		 bool *unknown)
{
	const struct rules_structure *sd = NULL;
	const char *url;

	*unknown = false;
	for (size_t i = 0; i < d->el->ntypes && sd == NULL; i++)
		for (size_t j = 0; j < d->el->types[i].nprofiles && sd == NULL;
		     j++)
			sd = rules_structure(r->ctx->set,
					     d->el->types[i].profiles[j]);
	/* only absolute URLs name a definition; relative ones are the
	 * parts of a complex extension, defined by its slices */
	if (sd == NULL && v != NULL && v->type == FJ_OBJECT &&
	    (url = fj_get_str(v, "url")) != NULL && strchr(url, ':') != NULL) {
		sd = rules_structure(r->ctx->set, url);
		if (sd == NULL)
			*unknown = true;
	}
	if (sd != NULL && sd->type != NULL &&
	    strcmp(sd->type, "Extension") != 0)
		return NULL;
	return vstruct_get(r->ctx, sd);
}

/* Profiles on a type ("Quantity" with profile SimpleQuantity, ...). */
static const struct vstruct *
type_profile_struct(struct vrun *r, const struct vnode *d, const char *type)
{
	for (size_t i = 0; i < d->el->ntypes; i++) {
		const struct rules_type *t = &d->el->types[i];

		if (strcmp(t->code, type) != 0)
			continue;
		for (size_t j = 0; j < t->nprofiles; j++) {
			const struct rules_structure *sd =
			    rules_structure(r->ctx->set, t->profiles[j]);

			if (sd != NULL)
				return vstruct_get(r->ctx, sd);
		}
	}
	return NULL;
}

static bool
root_has_constraint(const struct vnode *d, const char *key)
{
	for (size_t i = 0; i < d->el->nconstraints; i++)
		if (d->el->constraints[i].key != NULL &&
		    strcmp(d->el->constraints[i].key, key) == 0)
			return true;
	return false;
}

static bool
only_whitespace(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_ws(s[i]))
			return false;
	return true;
}

/* Elements and attributes allowed in narrative (FHIR: the basic HTML
 * formatting of HTML 4, a, img and style attributes; no scripts, forms,
 * event handlers). */
static const char *const xhtml_elements[] = {
    "a",	  "abbr",  "acronym", "address", "b",	  "bdo", "big",
    "blockquote", "br",	   "caption", "cite",	 "code",  "col", "colgroup",
    "dd",	  "dfn",   "div",     "dl",	 "dt",	  "em",	 "h1",
    "h2",	  "h3",	   "h4",      "h5",	 "h6",	  "hr",	 "i",
    "img",	  "kbd",   "li",      "ol",	 "p",	  "pre", "q",
    "samp",	  "small", "span",    "strong",	 "sub",	  "sup", "table",
    "tbody",	  "td",	   "tfoot",   "th",	 "thead", "tr",	 "tt",
    "ul",	  "var",
};

static const char *const xhtml_attributes[] = {
    "abbr",	   "accesskey",	  "align",   "alt",	"axis",	    "border",
    "cellpadding", "cellspacing", "char",    "charoff", "class",    "colspan",
    "dir",	   "frame",	  "headers", "height",	"href",	    "id",
    "lang",	   "name",	  "rowspan", "rules",	"scope",    "span",
    "src",	   "start",	  "style",   "summary", "tabindex", "title",
    "type",	   "valign",	  "value",   "width",
};

static bool
in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Walk the narrative tree; *text is set when non-blank text or an image
 * is found. Reports the first offending element and attribute. */
static void
xhtml_walk(struct vrun *r, const struct fj_node *v, xmlNode *n, bool *text,
	   bool *reported)
{
	for (; n != NULL; n = n->next) {
		if (n->type == XML_TEXT_NODE ||
		    n->type == XML_CDATA_SECTION_NODE) {
			const char *c = (const char *)n->content;

			if (c != NULL && !only_whitespace(c, strlen(c)))
				*text = true;
			continue;
		}
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (!in_list(xhtml_elements,
			     sizeof(xhtml_elements) / sizeof(xhtml_elements[0]),
			     (const char *)n->name)) {
			if (!*reported)
				issue(r, FHIR_ERROR, "value", v,
				      "txt-1: illegal element name in the "
				      "XHTML ('%.40s')",
				      (const char *)n->name);
			*reported = true;
		}
		if (strcmp((const char *)n->name, "img") == 0)
			*text = true;
		for (xmlAttr *a = n->properties; a != NULL; a = a->next) {
			const char *an = (const char *)a->name;
			bool xml_lang =
			    a->ns != NULL && a->ns->prefix != NULL &&
			    strcmp((const char *)a->ns->prefix, "xml") == 0;

			if (xml_lang || in_list(xhtml_attributes,
						sizeof(xhtml_attributes) /
						    sizeof(xhtml_attributes[0]),
						an))
				continue;
			if (!*reported)
				issue(r, FHIR_ERROR, "value", v,
				      "txt-1: illegal attribute name in the "
				      "XHTML ('%.40s' on '%.40s')",
				      an, (const char *)n->name);
			*reported = true;
		}
		xhtml_walk(r, v, n->children, text, reported);
	}
}

/* HTML 4 character entities (Latin-1 and common punctuation), declared
 * for narrative that uses them as XHTML written by hand often does; the
 * reference validator accepts them too. */
static const char xhtml_entities[] =
    "<!DOCTYPE div [<!ENTITY nbsp \"&#160;\"><!ENTITY iexcl \"&#161;\">"
    "<!ENTITY cent \"&#162;\"><!ENTITY pound \"&#163;\">"
    "<!ENTITY curren \"&#164;\"><!ENTITY yen \"&#165;\">"
    "<!ENTITY brvbar \"&#166;\"><!ENTITY sect \"&#167;\">"
    "<!ENTITY uml \"&#168;\"><!ENTITY copy \"&#169;\">"
    "<!ENTITY ordf \"&#170;\"><!ENTITY laquo \"&#171;\">"
    "<!ENTITY not \"&#172;\"><!ENTITY shy \"&#173;\">"
    "<!ENTITY reg \"&#174;\"><!ENTITY macr \"&#175;\">"
    "<!ENTITY deg \"&#176;\"><!ENTITY plusmn \"&#177;\">"
    "<!ENTITY sup2 \"&#178;\"><!ENTITY sup3 \"&#179;\">"
    "<!ENTITY acute \"&#180;\"><!ENTITY micro \"&#181;\">"
    "<!ENTITY para \"&#182;\"><!ENTITY middot \"&#183;\">"
    "<!ENTITY cedil \"&#184;\"><!ENTITY sup1 \"&#185;\">"
    "<!ENTITY ordm \"&#186;\"><!ENTITY raquo \"&#187;\">"
    "<!ENTITY frac14 \"&#188;\"><!ENTITY frac12 \"&#189;\">"
    "<!ENTITY frac34 \"&#190;\"><!ENTITY iquest \"&#191;\">"
    "<!ENTITY Agrave \"&#192;\"><!ENTITY Aacute \"&#193;\">"
    "<!ENTITY Acirc \"&#194;\"><!ENTITY Atilde \"&#195;\">"
    "<!ENTITY Auml \"&#196;\"><!ENTITY Aring \"&#197;\">"
    "<!ENTITY AElig \"&#198;\"><!ENTITY Ccedil \"&#199;\">"
    "<!ENTITY Egrave \"&#200;\"><!ENTITY Eacute \"&#201;\">"
    "<!ENTITY Ecirc \"&#202;\"><!ENTITY Euml \"&#203;\">"
    "<!ENTITY Igrave \"&#204;\"><!ENTITY Iacute \"&#205;\">"
    "<!ENTITY Icirc \"&#206;\"><!ENTITY Iuml \"&#207;\">"
    "<!ENTITY ETH \"&#208;\"><!ENTITY Ntilde \"&#209;\">"
    "<!ENTITY Ograve \"&#210;\"><!ENTITY Oacute \"&#211;\">"
    "<!ENTITY Ocirc \"&#212;\"><!ENTITY Otilde \"&#213;\">"
    "<!ENTITY Ouml \"&#214;\"><!ENTITY times \"&#215;\">"
    "<!ENTITY Oslash \"&#216;\"><!ENTITY Ugrave \"&#217;\">"
    "<!ENTITY Uacute \"&#218;\"><!ENTITY Ucirc \"&#219;\">"
    "<!ENTITY Uuml \"&#220;\"><!ENTITY Yacute \"&#221;\">"
    "<!ENTITY THORN \"&#222;\"><!ENTITY szlig \"&#223;\">"
    "<!ENTITY agrave \"&#224;\"><!ENTITY aacute \"&#225;\">"
    "<!ENTITY acirc \"&#226;\"><!ENTITY atilde \"&#227;\">"
    "<!ENTITY auml \"&#228;\"><!ENTITY aring \"&#229;\">"
    "<!ENTITY aelig \"&#230;\"><!ENTITY ccedil \"&#231;\">"
    "<!ENTITY egrave \"&#232;\"><!ENTITY eacute \"&#233;\">"
    "<!ENTITY ecirc \"&#234;\"><!ENTITY euml \"&#235;\">"
    "<!ENTITY igrave \"&#236;\"><!ENTITY iacute \"&#237;\">"
    "<!ENTITY icirc \"&#238;\"><!ENTITY iuml \"&#239;\">"
    "<!ENTITY eth \"&#240;\"><!ENTITY ntilde \"&#241;\">"
    "<!ENTITY ograve \"&#242;\"><!ENTITY oacute \"&#243;\">"
    "<!ENTITY ocirc \"&#244;\"><!ENTITY otilde \"&#245;\">"
    "<!ENTITY ouml \"&#246;\"><!ENTITY divide \"&#247;\">"
    "<!ENTITY oslash \"&#248;\"><!ENTITY ugrave \"&#249;\">"
    "<!ENTITY uacute \"&#250;\"><!ENTITY ucirc \"&#251;\">"
    "<!ENTITY uuml \"&#252;\"><!ENTITY yacute \"&#253;\">"
    "<!ENTITY thorn \"&#254;\"><!ENTITY yuml \"&#255;\">"
    "<!ENTITY euro \"&#8364;\"><!ENTITY ndash \"&#8211;\">"
    "<!ENTITY mdash \"&#8212;\"><!ENTITY lsquo \"&#8216;\">"
    "<!ENTITY rsquo \"&#8217;\"><!ENTITY ldquo \"&#8220;\">"
    "<!ENTITY rdquo \"&#8221;\"><!ENTITY bull \"&#8226;\">"
    "<!ENTITY hellip \"&#8230;\"><!ENTITY trade \"&#8482;\">"
    "<!ENTITY larr \"&#8592;\"><!ENTITY rarr \"&#8594;\">"
    "<!ENTITY le \"&#8804;\"><!ENTITY ge \"&#8805;\">"
    "<!ENTITY ne \"&#8800;\">]>";

/* Narrative.div: well-formed XHTML, a div in the XHTML namespace, no
 * DOCTYPE, only basic formatting (txt-1), some content (txt-2). */
static void
check_xhtml(struct vrun *r, const struct fj_node *v)
{
	xmlDoc *doc;
	xmlNode *root;
	bool text = false, reported = false;

	if (v->u.str.len > INT32_MAX / 2)
		return;
	if (strstr(v->u.str.s, "<!DOCTYPE") != NULL ||
	    strstr(v->u.str.s, "<!doctype") != NULL) {
		issue(r, FHIR_ERROR, "value", v,
		      "the narrative must not have a DOCTYPE declaration");
		return;
	}
	doc = xmlReadMemory(v->u.str.s, (int)v->u.str.len, "narrative", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				XML_PARSE_NOWARNING);
	if (doc == NULL && strchr(v->u.str.s, '&') != NULL) {
		/* again with the HTML entities declared (internal subset
		 * only, not substituted, nothing fetched) */
		struct buf b;

		buf_init(&b, sizeof(xhtml_entities) + v->u.str.len + 1);
		if (buf_adds(&b, xhtml_entities) == GW_OK &&
		    buf_add(&b, v->u.str.s, v->u.str.len) == GW_OK)
			doc =
			    xmlReadMemory(b.data, (int)b.len, "narrative", NULL,
					  XML_PARSE_NONET | XML_PARSE_NOERROR |
					      XML_PARSE_NOWARNING);
		buf_cleanup(&b);
	}
	if (doc == NULL) {
		issue(r, FHIR_ERROR, "value", v,
		      "the narrative is not well-formed XHTML");
		return;
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || strcmp((const char *)root->name, "div") != 0) {
		issue(r, FHIR_ERROR, "value", v,
		      "the narrative must be a single <div> element");
	} else if (root->ns == NULL || root->ns->href == NULL ||
		   strcmp((const char *)root->ns->href,
			  "http://www.w3.org/1999/xhtml") != 0) {
		issue(r, FHIR_ERROR, "value", v,
		      "wrong namespace on the XHTML ('%.80s', should be "
		      "'http://www.w3.org/1999/xhtml')",
		      root->ns != NULL && root->ns->href != NULL
			  ? (const char *)root->ns->href
			  : "null");
	} else {
		xhtml_walk(r, v, root->children, &text, &reported);
		if (!text)
			issue(r, FHIR_ERROR, "value", v,
			      "txt-2: the narrative SHALL have some "
			      "non-whitespace content");
	}
	xmlFreeDoc(doc);
}

/* Attachment.size and .hash (SHA-1, base64) must describe .data. */
static void
check_attachment(struct vrun *r, const struct fj_node *v)
{
	const struct fj_node *data = fj_get(v, "data"),
			     *size = fj_get(v, "size");
	const char *hash = fj_get_str(v, "hash");
	struct buf clean, raw;
	unsigned char md[SHA_DIGEST_LENGTH];

	if (data == NULL || data->type != FJ_STRING ||
	    check_base64(data->u.str.s, data->u.str.len) != NULL)
		return;
	buf_init(&clean, data->u.str.len + 1);
	buf_init(&raw, data->u.str.len + 1);
	for (size_t i = 0; i < data->u.str.len; i++)
		if (!is_ws(data->u.str.s[i]) &&
		    buf_addc(&clean, data->u.str.s[i]) != GW_OK)
			goto done;
	if (clean.len == 0 ||
	    b64_decode(clean.data, clean.len, false, &raw) != GW_OK)
		goto done;
	if (size != NULL && size->type == FJ_NUMBER) {
		unsigned long long want = strtoull(size->u.str.s, NULL, 10);

		if (want != raw.len) {
			size_t old = path_add(r, ".", "size", 4);

			issue(r, FHIR_ERROR, "value", size,
			      "stated attachment size %llu does not match the "
			      "actual size %zu",
			      want, raw.len);
			path_pop(r, old);
		}
	}
	if (hash != NULL && raw.data != NULL) {
		struct buf enc;

		SHA1((const unsigned char *)raw.data, raw.len, md);
		buf_init(&enc, 64);
		if (b64_encode(md, sizeof(md), false, &enc) == GW_OK &&
		    strcmp(enc.data, hash) != 0) {
			size_t old = path_add(r, ".", "hash", 4);

			issue(r, FHIR_ERROR, "value", fj_get(v, "hash"),
			      "stated attachment hash does not match the SHA-1 "
			      "of the data");
			path_pop(r, old);
		}
		buf_cleanup(&enc);
	}
done:
	buf_cleanup(&clean);
	buf_cleanup(&raw);
}

/* ---- minValue / maxValue / maxLength ---- */

/* A date, dateTime or instant reduced for comparison: prec 1 (year), 2
 * (month), 3 (day) or 4 (with a time: secs is UTC seconds since 1970). */
struct vdate {
	int prec;
	long y, m, d;
	double secs;
};

/* Parse a lexically valid date/dateTime/instant; false when it is not. */
static bool
vdate_parse(const char *s, size_t len, struct vdate *out)
{
	long hh, mi;
	double sec;
	size_t i;

	memset(out, 0, sizeof(*out));
	if (len < 4 || !digits(s, 4))
		return false;
	out->y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
		 (s[3] - '0');
	out->m = out->d = 1;
	out->prec = 1;
	if (len >= 7 && s[4] == '-' && digits(s + 5, 2)) {
		out->m = num2(s + 5);
		out->prec = 2;
	}
	if (out->prec == 2 && len >= 10 && s[7] == '-' && digits(s + 8, 2)) {
		out->d = num2(s + 8);
		out->prec = 3;
	}
	if (out->prec < 3 || len < 19 || s[10] != 'T')
		return true;
	if (!digits(s + 11, 2) || !digits(s + 14, 2) || !digits(s + 17, 2))
		return false;
	hh = num2(s + 11);
	mi = num2(s + 14);
	sec = num2(s + 17);
	i = 19;
	if (i < len && s[i] == '.') {
		double scale = 0.1;

		/* scale steps in the body: cert-flp30-c wants an integer
		 * loop counter */
		for (i++; i < len && is_digit(s[i]); i++) {
			sec += (s[i] - '0') * scale;
			scale /= 10;
		}
	}
	out->secs =
	    (double)util_days_from_civil(out->y, out->m, out->d) * 86400.0 +
	    (double)(hh * 3600 + mi * 60) + sec;
	if (i < len && (s[i] == '+' || s[i] == '-') && len - i >= 6 &&
	    digits(s + i + 1, 2) && digits(s + i + 4, 2)) {
		long off = num2(s + i + 1) * 3600L + num2(s + i + 4) * 60L;

		out->secs -= s[i] == '+' ? (double)off : -(double)off;
	}
	out->prec = 4;
	return true;
}

/* Compare two dates: -1, 0, 1; 0 also when the values differ only below
 * the precision of one of them (then neither is known to be smaller). */
static int
vdate_cmp(const struct vdate *a, const struct vdate *b)
{
	int p = a->prec < b->prec ? a->prec : b->prec;

	if (a->prec == 4 && b->prec == 4)
		return a->secs < b->secs ? -1 : a->secs > b->secs ? 1 : 0;
	if (a->y != b->y)
		return a->y < b->y ? -1 : 1;
	if (p >= 2 && a->m != b->m)
		return a->m < b->m ? -1 : 1;
	if (p >= 3 && a->d != b->d)
		return a->d < b->d ? -1 : 1;
	return 0;
}

/* Compare two decimal texts (JSON numbers): -1, 0, 1. */
static int
dec_cmp(const char *a, const char *b)
{
	double x = strtod(a, NULL), y = strtod(b, NULL);

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Compare value text v (of the instance) with limit node lim (a
 * minValue[x]/maxValue[x] member; its key names the type). Returns false
 * when the two cannot be compared; else *cmp is -1, 0 or 1.
 */
static bool
limit_cmp(const struct fj_node *lim, const char *type, const char *v,
	  size_t vlen, int *cmp)
{
	const char *t = lim->keylen > 8 ? lim->key + 8 : "";
	const char *ls = lim->u.str.s;

	if (lim->type != FJ_STRING && lim->type != FJ_NUMBER)
		return false;
	if (strcmp(t, "Integer") == 0 || strcmp(t, "PositiveInt") == 0 ||
	    strcmp(t, "UnsignedInt") == 0 || strcmp(t, "Integer64") == 0 ||
	    strcmp(t, "Decimal") == 0) {
		if (strcmp(type, "integer") != 0 &&
		    strcmp(type, "decimal") != 0 &&
		    strcmp(type, "positiveInt") != 0 &&
		    strcmp(type, "unsignedInt") != 0)
			return false;
		*cmp = dec_cmp(v, ls);
		return true;
	}
	if (strcmp(t, "Date") == 0 || strcmp(t, "DateTime") == 0 ||
	    strcmp(t, "Instant") == 0) {
		struct vdate a, b;

		if (strcmp(type, "date") != 0 &&
		    strcmp(type, "dateTime") != 0 &&
		    strcmp(type, "instant") != 0)
			return false;
		if (!vdate_parse(v, vlen, &a) ||
		    !vdate_parse(ls, lim->u.str.len, &b))
			return false;
		*cmp = vdate_cmp(&a, &b);
		return true;
	}
	if (strcmp(t, "Time") == 0 && strcmp(type, "time") == 0) {
		int c = strcmp(v, ls);

		*cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
		return true;
	}
	return false;
}

/* Number of characters (not bytes) of UTF-8 text. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		if (((unsigned char)s[i] & 0xC0u) != 0x80u)
			n++;
	return n;
}

/* Check the limits of one element definition el on a valid primitive. */
static void
check_limits_el(struct vrun *r, const struct rules_element *el,
		const char *type, const struct fj_node *v)
{
	const struct fj_node *lims[2] = {el->min_value, el->max_value};
	int cmp;

	if (el->max_length > 0 && v->type == FJ_STRING &&
	    strcmp(type, "boolean") != 0) {
		size_t n = utf8_chars(v->u.str.s, v->u.str.len);

		if (n > el->max_length)
			issue(r, FHIR_ERROR, "value", v,
			      "the value is %zu characters long, more than "
			      "the maxLength %u of %s",
			      n, (unsigned)el->max_length, el->id);
	}
	for (int i = 0; i < 2; i++) {
		const struct fj_node *lim = lims[i];

		if (lim == NULL)
			continue;
		if (!limit_cmp(lim, type, v->u.str.s, v->u.str.len, &cmp)) {
			issue(r, FHIR_INFORMATION, "not-supported", v,
			      "%s of %s cannot be compared with a %s", lim->key,
			      el->id, type);
			continue;
		}
		if ((i == 0 && cmp < 0) || (i == 1 && cmp > 0))
			issue(r, FHIR_ERROR, "value", v,
			      "the value %.60s is %s the %s %.60s of %s",
			      v->u.str.s, i == 0 ? "below" : "above", lim->key,
			      lim->u.str.s, el->id);
	}
}

/* minValue/maxValue/maxLength of a primitive value: on its element, on
 * the element's "value" child (profiles put maxLength there) and on the
 * primitive type's own value element. */
static void
check_limits(struct vrun *r, const struct vnode *d, const struct vtype *ti,
	     const char *type, const struct fj_node *v)
{
	const struct vnode *kd = kids_of(d), *vk;
	const char *dummy;

	check_limits_el(r, d->el, type, v);
	if (kd->nkids > 0 &&
	    (vk = find_kid(kd->kids, kd->nkids, "value", &dummy)) != NULL)
		check_limits_el(r, vk->el, type, v);
	if (ti->vs != NULL && ti->vs->root != NULL &&
	    (vk = find_kid(ti->vs->root->kids, ti->vs->root->nkids, "value",
			   &dummy)) != NULL &&
	    vk->el->max_length > 0)
		check_limits_el(r, vk->el, type, v);
}

static bool
is_quantity_type(const char *t)
{
	static const char *const q[] = {
	    "Quantity",	      "Age",	      "Count", "Distance", "Duration",
	    "SimpleQuantity", "MoneyQuantity"};

	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++)
		if (strcmp(t, q[i]) == 0)
			return true;
	return false;
}

/* minValueQuantity/maxValueQuantity on a Quantity: compared when the
 * units agree (no unit conversion offline). */
static void
check_quantity_limits(struct vrun *r, const struct rules_element *el,
		      const struct fj_node *v)
{
	const struct fj_node *lims[2] = {el->min_value, el->max_value};
	const struct fj_node *val = fj_get(v, "value");

	if (val == NULL || val->type != FJ_NUMBER)
		return;
	for (int i = 0; i < 2; i++) {
		const struct fj_node *lim = lims[i], *lv;
		const char *lc, *ls, *ic, *is;
		int cmp;

		if (lim == NULL)
			continue;
		if (lim->type != FJ_OBJECT ||
		    (lv = fj_get(lim, "value")) == NULL ||
		    lv->type != FJ_NUMBER) {
			issue(r, FHIR_INFORMATION, "not-supported", v,
			      "%s of %s cannot be compared with a Quantity",
			      lim->key, el->id);
			continue;
		}
		lc = fj_get_str(lim, "code");
		ls = fj_get_str(lim, "system");
		ic = fj_get_str(v, "code");
		is = fj_get_str(v, "system");
		if ((lc != NULL && (ic == NULL || strcmp(lc, ic) != 0)) ||
		    (ls != NULL && is != NULL && strcmp(ls, is) != 0)) {
			issue(r, FHIR_INFORMATION, "not-supported", v,
			      "%s of %s is in unit %s: the value's unit "
			      "differs and is not converted",
			      lim->key, el->id, lc);
			continue;
		}
		cmp = dec_cmp(val->u.str.s, lv->u.str.s);
		if ((i == 0 && cmp < 0) || (i == 1 && cmp > 0))
			issue(r, FHIR_ERROR, "value", val,
			      "the quantity %.40s is %s the %s %.40s of %s",
			      val->u.str.s, i == 0 ? "below" : "above",
			      lim->key, lv->u.str.s, el->id);
	}
}

static void
validate_primitive_item(struct vrun *r, const struct vtype *ti,
			const struct vnode *d, const char *type,
			const struct fj_node *v, const struct fj_node *u)
{
	const char *why;
	bool want_bool, want_num, lexical_ok = false;

	if (u != NULL && u->type != FJ_NULL) {
		if (u->type != FJ_OBJECT) {
			issue(r, FHIR_ERROR, "structure", u,
			      "the _ part of a primitive must be an object");
		} else if (u->u.kids.count == 0) {
			issue(r, FHIR_ERROR, "structure", u,
			      "objects must not be empty");
		} else if (kids_of(d)->nkids > 0) {
			/* the profile constrains the primitive's extensions */
			check_members(r, NULL, kids_of(d), u, false, true);
		} else if (ti->vs != NULL) {
			check_members(r, ti->vs, ti->vs->root, u, false, true);
		}
	}
	if (v == NULL || v->type == FJ_NULL) {
		if (u == NULL || u->type == FJ_NULL)
			issue(r, FHIR_ERROR, "structure", v != NULL ? v : u,
			      "null is not allowed here");
		return;
	}
	want_bool = ti->json == VJ_BOOL;
	want_num = ti->json == VJ_NUMBER;
	if (want_bool) {
		if (v->type != FJ_BOOL)
			issue(r, FHIR_ERROR, "structure", v,
			      "must be a JSON boolean (%s), not a %s", type,
			      jtype_name(v));
	} else if (want_num) {
		if (v->type != FJ_NUMBER)
			issue(r, FHIR_ERROR, "structure", v,
			      "must be a JSON number (%s), not a %s", type,
			      jtype_name(v));
		else if ((why = validate_primitive(type, v->u.str.s,
						   v->u.str.len, false)))
			issue(r, FHIR_ERROR, "value", v,
			      "the value %.40s is not a valid %s: %s",
			      v->u.str.s, type, why);
		else
			lexical_ok = true;
	} else if (v->type != FJ_STRING) {
		issue(r, FHIR_ERROR, "structure", v,
		      "must be a JSON string (%s), not a %s", type,
		      jtype_name(v));
	} else if ((why = validate_primitive(type, v->u.str.s, v->u.str.len,
					     true)) != NULL) {
		issue(r, FHIR_ERROR, "value", v,
		      "the value \"%.60s\" is not a valid %s: %s", v->u.str.s,
		      type, why);
	} else if (strcmp(type, "xhtml") == 0) {
		check_xhtml(r, v);
	} else {
		lexical_ok = true;
		if (only_whitespace(v->u.str.s, v->u.str.len))
			issue(r, FHIR_WARNING, "value", v,
			      "primitive values should not be only "
			      "whitespace");
	}
	if (lexical_ok)
		check_limits(r, d, ti, type, v);
	check_fixed(r, d->el, v);
	check_binding(r, d->el, type, v);
	check_constraints(r, d->el, v, type);
}

/* ---- extension contexts ---- */

static void
seg_push(struct vrun *r, const char *name, size_t len, const char *type,
	 bool boundary)
{
	if (r->nsegs < V_MAX_SEGS) {
		struct vseg *g = &r->segs[r->nsegs];

		g->name = name;
		g->len = len;
		g->type = type;
		g->boundary = boundary;
	}
	r->nsegs++;
}

/* True when context expression e (with "[x]" ignored) equals the type
 * name t followed by the names of segs[from..to). */
static bool
ctx_path_is(const char *e, const char *t, const struct vseg *segs, size_t from,
	    size_t to)
{
	size_t tl = strlen(t);

	if (strncmp(e, t, tl) != 0)
		return false;
	e += tl;
	for (size_t i = from; i < to; i++) {
		if (*e++ != '.' || strncmp(e, segs[i].name, segs[i].len) != 0)
			return false;
		e += segs[i].len;
		if (strncmp(e, "[x]", 3) == 0)
			e += 3;
	}
	return *e == '\0';
}

/* Whether element context expression e allows the place the host segment
 * segs[top - 1] stands for: its paths from the resource and from every
 * datatype on the way, its type, or a base type (Element, Resource...). */
static bool
ctx_element_ok(const struct vrun *r, const char *e, size_t top)
{
	const struct vseg *host = &r->segs[top - 1];
	size_t root = top - 1;
	const char *comma = strchr(e, ',');

	/* STU3: "*" is anywhere; some list several paths in one string */
	if (comma != NULL) {
		char part[256];
		size_t n = (size_t)(comma - e);

		if (n >= sizeof(part))
			return false;
		memcpy(part, e, n);
		part[n] = '\0';
		return ctx_element_ok(r, part, top) ||
		       ctx_element_ok(r, comma + 1, top);
	}
	if (strcmp(e, "*") == 0 || strcmp(e, "Element") == 0 ||
	    strcmp(e, "Base") == 0)
		return true;
	while (root > 0 && r->segs[root].name != NULL)
		root--;
	if (host->name == NULL)
		return (host->type != NULL && strcmp(e, host->type) == 0) ||
		       strcmp(e, "Resource") == 0 ||
		       strcmp(e, "DomainResource") == 0;
	/* a segment whose type is not known matches by path only */
	if (host->type != NULL &&
	    (strcmp(e, host->type) == 0 ||
	     (is_quantity_type(host->type) && strcmp(e, "Quantity") == 0) ||
	     ((strcmp(e, "DataType") == 0 || strcmp(e, "Type") == 0) &&
	      host->boundary)))
		return true;
	for (size_t i = root; i < top; i++) {
		if (i != root && !r->segs[i].boundary)
			continue;
		if (ctx_path_is(e, r->segs[i].type, r->segs, i + 1, top))
			return true;
		if (i != root && is_quantity_type(r->segs[i].type) &&
		    ctx_path_is(e, "Quantity", r->segs, i + 1, top))
			return true;
	}
	return false;
}

/* Report extension v (url, definition sd) used where none of its contexts
 * allows it. The extension's own segment is the top of the walk. */
static void
check_ext_context(struct vrun *r, const struct rules_structure *sd,
		  const struct fj_node *v, const char *url)
{
	size_t top = r->nsegs - 1; /* the extension's own segment */
	char allowed[256];
	size_t al = 0;

	if (sd->ncontexts == 0 || r->nsegs > V_MAX_SEGS || top == 0)
		return;
	for (size_t i = 0; i < sd->ncontexts; i++) {
		const struct rules_context *c = &sd->contexts[i];

		switch (c->type) {
		case RULES_CTX_ELEMENT:
			if (ctx_element_ok(r, c->expr, top))
				return;
			break;
		case RULES_CTX_EXTENSION:
			if (r->segs[top - 1].type != NULL &&
			    strcmp(r->segs[top - 1].type, "Extension") == 0 &&
			    r->ext_url != NULL &&
			    strcmp(c->expr, r->ext_url) == 0)
				return;
			break;
		case RULES_CTX_FHIRPATH:
			issue(r, FHIR_INFORMATION, "not-supported", v,
			      "the context '%.100s' of extension %.200s is a "
			      "FHIRPath expression and was not evaluated",
			      c->expr, url);
			return;
		}
		if (al < sizeof(allowed)) {
			int n = snprintf(allowed + al, sizeof(allowed) - al,
					 "%s%s", i ? ", " : "", c->expr);

			al += n > 0 ? (size_t)n : 0;
		}
	}
	issue(r, FHIR_ERROR, "structure", v,
	      "The extension %.200s is not allowed to be used at this point "
	      "(allowed: %.200s)",
	      url, allowed);
}

static void validate_item_in(struct vrun *r, const struct vstruct *vs,
			     const struct vnode *d, const char *type,
			     const struct vtype *ti, const struct fj_node *v,
			     const struct fj_node *u);

static void
validate_item(struct vrun *r, const struct vstruct *vs, const struct vnode *d,
	      const char *type, const struct fj_node *v,
	      const struct fj_node *u)
{
	const struct vtype *ti = NULL;
	const char *segtype;

	if (run_stopped(r))
		return;
	if (type == NULL && d->el->ntypes >= 1)
		type = d->el->types[0].code;
	segtype = type;
	if (type != NULL && d->el->ntypes >= 1 &&
	    type == d->el->types[0].code && d->vt0 != NULL) {
		ti = d->vt0;
	} else if (type != NULL) {
		if ((ti = vtype_get(r->ctx, type)) == NULL) {
			r->nomem = true;
			return;
		}
		/* the tree belongs to the context: caching in it is fine */
		if (d->el->ntypes >= 1 && type == d->el->types[0].code)
			((struct vnode *)d)->vt0 = ti;
	}
	/* a contentReference element has no type of its own: it has the
	 * type of the element it refers to (extension contexts look at it) */
	if (segtype == NULL && d->ref != NULL) {
		const struct vnode *t = kids_of(d);

		if (t != NULL && t->el->ntypes >= 1)
			segtype = t->el->types[0].code;
	}
	seg_push(r, d->name, d->choice ? d->prefixlen : strlen(d->name),
		 segtype,
		 ti != NULL && ti->kind == VK_COMPLEX && type != NULL &&
		     strcmp(type, "BackboneElement") != 0 &&
		     strcmp(type, "Element") != 0);
	validate_item_in(r, vs, d, type, ti, v, u);
	r->nsegs--;
}

/* validate_item once the item's type is known. */
static void
validate_item_in(struct vrun *r, const struct vstruct *vs,
		 const struct vnode *d, const char *type,
		 const struct vtype *ti, const struct fj_node *v,
		 const struct fj_node *u)
{
	const struct vnode *kd;
	const struct vstruct *tvs = NULL;
	bool unknown_ext = false;
	const char *saved_ext = r->ext_url;

	if (ti != NULL && ti->kind == VK_PRIM) {
		validate_primitive_item(r, ti, d, type, v, u);
		return;
	}
	if (u != NULL) {
		issue(r, FHIR_ERROR, "structure", u,
		      "a _ property is only allowed for primitive types");
	}
	if (v == NULL)
		return;
	if (v->type != FJ_OBJECT) {
		issue(r, FHIR_ERROR, "structure", v,
		      "this property must be an object, not a %s",
		      jtype_name(v));
		return;
	}
	if (ti != NULL && ti->kind == VK_RESOURCE) {
		const char *const *profiles = NULL;
		size_t np = 0;

		for (size_t i = 0; i < d->el->ntypes; i++)
			if (d->el->types[i].nprofiles > 0) {
				profiles = d->el->types[i].profiles;
				np = d->el->types[i].nprofiles;
			}
		validate_resource(r, v, profiles, np, false, NULL);
		return;
	}
	if (v->u.kids.count == 0) {
		issue(r, FHIR_ERROR, "structure", v,
		      "objects must not be empty");
		return;
	}
	if (r->depth >= V_MAX_DEPTH) {
		issue(r, FHIR_ERROR, "structure", v, "nesting is too deep");
		return;
	}
	r->depth++;
	kd = kids_of(d);
	if (type != NULL && strcmp(type, "Extension") == 0) {
		const char *url = fj_get_str(v, "url");
		const struct rules_structure *esd;

		/* only absolute URLs name a definition (relative ones are
		 * the parts of a complex extension) */
		if (url != NULL && strchr(url, ':') != NULL) {
			if ((esd = rules_structure(r->ctx->set, url)) != NULL)
				check_ext_context(r, esd, v, url);
			r->ext_url = url;
		}
	}
	if (type != NULL && strcmp(type, "Extension") == 0 && kd->nkids == 0) {
		tvs = extension_struct(r, d, v, &unknown_ext);
		if (unknown_ext)
			issue(r, FHIR_ERROR, "structure", v,
			      "the extension %.200s is unknown, and not "
			      "allowed here",
			      fj_get_str(v, "url"));
	} else if (type != NULL && kd->nkids == 0) {
		tvs = type_profile_struct(r, d, type);
	}
	if (kd->nkids > 0) {
		check_members(r, vs, kd, v, false, false);
	} else if (tvs != NULL) {
		check_members(r, tvs, tvs->root, v, false, false);
	} else if (ti != NULL && ti->vs != NULL) {
		check_members(r, ti->vs, ti->vs->root, v, false, false);
	} else if (type == NULL || ti == NULL || ti->kind == VK_UNKNOWN) {
		/* a type with no definition loaded: nothing to check */
	}
	if (type != NULL && strcmp(type, "Extension") == 0) {
		/* ext-1: either extensions or a value, not both */
		const struct fj_node *m;
		bool has_ext = fj_get(v, "extension") != NULL, has_val = false;

		for (m = v->u.kids.first; m != NULL; m = m->next)
			if (strncmp(m->key, "value", 5) == 0 ||
			    strncmp(m->key, "_value", 6) == 0)
				has_val = true;
		if (has_ext && has_val)
			issue(r, FHIR_ERROR, "invariant", v,
			      "ext-1: Must have either extensions or "
			      "value[x], not both");
	}
	check_fixed(r, d->el, v);
	if ((d->el->min_value != NULL || d->el->max_value != NULL) &&
	    type != NULL && is_quantity_type(type))
		check_quantity_limits(r, d->el, v);
	if (type != NULL) {
		check_binding(r, d->el, type, v);
		if (strcmp(type, "Reference") == 0)
			check_reference(r, d->el, v);
		else if (strcmp(type, "Attachment") == 0)
			check_attachment(r, v);
		else if (strcmp(type, "Coding") == 0 &&
			 fj_get(v, "code") != NULL &&
			 fj_get(v, "system") == NULL)
			issue(r, FHIR_WARNING, "value", v,
			      "a code with no system has no defined meaning; "
			      "a system should be provided");
	}
	check_constraints(r, d->el, v, type);
	if (tvs != NULL && tvs->root != d) {
		check_fixed(r, tvs->root->el, v);
		check_constraints(r, tvs->root->el, v, type);
	}
	if (ti != NULL && ti->vs != NULL && ti->vs != tvs) {
		const struct rules_element *re = ti->vs->root->el;

		/* the datatype's own invariants, unless the element already
		 * carries them */
		for (size_t i = 0; i < re->nconstraints; i++) {
			struct rules_element one = *re;

			if (re->constraints[i].key == NULL ||
			    root_has_constraint(d, re->constraints[i].key))
				continue;
			one.constraints = &re->constraints[i];
			one.nconstraints = 1;
			check_constraints(r, &one, v, type);
		}
	}
	r->ext_url = saved_ext;
	r->depth--;
}
/* ---- slicing ---- */

struct vval {
	const struct fj_node *n;
	const char *type;
};

/* Split the next segment of a discriminator path (dots inside quotes or
 * parentheses do not split). */
static const char *
next_segment(const char *p, char *seg, size_t len)
{
	size_t i = 0;
	int depth = 0;
	char quote = 0;

	for (; *p != '\0'; p++) {
		if (quote != 0) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '(') {
			depth++;
		} else if (*p == ')') {
			depth--;
		} else if (*p == '.' && depth == 0) {
			p++;
			break;
		}
		if (i + 1 < len)
			seg[i++] = *p;
	}
	seg[i] = '\0';
	return p;
}

/* "extension('url')" -> url into out; false when seg is something else */
static bool
seg_call(const char *seg, const char *fn, char *out, size_t len)
{
	size_t fl = strlen(fn), sl = strlen(seg);

	if (sl < fl + 2 || strncmp(seg, fn, fl) != 0 || seg[fl] != '(' ||
	    seg[sl - 1] != ')')
		return false;
	seg += fl + 1;
	sl -= fl + 2;
	if (sl >= 2 && (seg[0] == '\'' || seg[0] == '"')) {
		seg++;
		sl -= 2;
	}
	snprintf(out, len, "%.*s", (int)sl, seg);
	return true;
}

static const char *
suffix_type(struct vrun *r, const char *suffix)
{
	char lower[64];
	const struct vtype *t;

	snprintf(lower, sizeof(lower), "%s", suffix);
	if (lower[0] >= 'A' && lower[0] <= 'Z' &&
	    is_prim_name((lower[0] = (char)(lower[0] + 32), lower)) &&
	    (t = vtype_get(r->ctx, lower)) != NULL && t->name != NULL)
		return t->name;
	t = vtype_get(r->ctx, suffix);
	return t != NULL ? t->name : NULL;
}

/* The resourceType of a resource value, else NULL. */
static const char *
res_type(const struct fj_node *v)
{
	return v->type == FJ_OBJECT ? fj_get_str(v, "resourceType") : NULL;
}

static size_t
vals_add(struct vval *out, size_t n, const struct fj_node *v, const char *type)
{
	if (v == NULL)
		return n;
	if (v->type == FJ_ARRAY) {
		for (const struct fj_node *x = v->u.kids.first; x != NULL;
		     x = x->next)
			if (n < V_MAX_SET && x->type != FJ_NULL) {
				out[n].n = x;
				out[n++].type =
				    type != NULL ? type : res_type(x);
			}
		return n;
	}
	if (n < V_MAX_SET) {
		out[n].n = v;
		out[n++].type = type != NULL ? type : res_type(v);
	}
	return n;
}

/* Values of an item at a discriminator path. */
static size_t
disc_values(struct vrun *r, const char *path, const struct fj_node *item,
	    const char *itype, struct vval *out)
{
	struct vval cur[V_MAX_SET], nxt[V_MAX_SET];
	size_t nc = 1, nn;
	char seg[256] = "", arg[256] = "";
	const char *p = path;

	cur[0].n = item;
	cur[0].type = itype;
	while (*p != '\0' && nc > 0) {
		p = next_segment(p, seg, sizeof(seg));
		nn = 0;
		if (strcmp(seg, "$this") == 0 || seg[0] == '\0')
			continue;
		for (size_t i = 0; i < nc; i++) {
			const struct fj_node *v = cur[i].n;

			if (strcmp(seg, "resolve()") == 0) {
				const char *ref = v->type == FJ_OBJECT
						      ? fj_get_str(v, "referen"
								      "ce")
						  : v->type == FJ_STRING
						      ? v->u.str.s
						      : NULL;
				const struct fj_node *t = NULL;

				if (ref == NULL)
					continue;
				if (ref[0] == '#' && r->resource != NULL)
					t = find_contained(r->resource,
							   ref + 1);
				else
					t = resolve_ref(r, ref);
				if (t != NULL)
					nn = vals_add(nxt, nn, t,
						      fj_get_str(t, "resourceT"
								    "ype"));
			} else if (seg_call(seg, "ofType", arg, sizeof(arg)) ||
				   seg_call(seg, "as", arg, sizeof(arg))) {
				if (cur[i].type != NULL &&
				    strcmp(cur[i].type, arg) == 0)
					nn = vals_add(nxt, nn, v, cur[i].type);
			} else if (seg_call(seg, "extension", arg,
					    sizeof(arg))) {
				const struct fj_node *e;

				if (v->type != FJ_OBJECT ||
				    (e = fj_get(v, "extension")) == NULL ||
				    e->type != FJ_ARRAY)
					continue;
				for (e = e->u.kids.first; e != NULL;
				     e = e->next)
					if (fj_str_eq(fj_get(e, "url"), arg))
						nn = vals_add(nxt, nn, e,
							      "Extension");
			} else if (v->type == FJ_OBJECT) {
				const struct fj_node *m = fj_get(v, seg);
				size_t sl = strlen(seg);

				if (m != NULL) {
					nn = vals_add(nxt, nn, m, NULL);
					continue;
				}
				for (m = v->u.kids.first; m != NULL;
				     m = m->next)
					if (strncmp(m->key, seg, sl) == 0 &&
					    m->key[sl] >= 'A' &&
					    m->key[sl] <= 'Z')
						nn = vals_add(
						    nxt, nn, m,
						    suffix_type(r,
								m->key + sl));
			}
		}
		memcpy(cur, nxt, nn * sizeof(cur[0]));
		nc = nn;
	}
	memcpy(out, cur, nc * sizeof(cur[0]));
	return nc;
}

/* The children of definition node d, looking into its type when the
 * snapshot does not list them. */
static const struct vnode *
def_kids(struct vrun *r, const struct vnode *d)
{
	const struct vnode *kd = kids_of(d);
	const struct vstruct *tvs;
	const struct vtype *ti;
	bool unknown;

	if (kd->nkids > 0 || d->el->ntypes == 0)
		return kd;
	if (strcmp(d->el->types[0].code, "Extension") == 0 &&
	    (tvs = extension_struct(r, d, NULL, &unknown)) != NULL)
		return tvs->root;
	if ((tvs = type_profile_struct(r, d, d->el->types[0].code)) != NULL)
		return tvs->root;
	if ((ti = vtype_get(r->ctx, d->el->types[0].code)) != NULL &&
	    ti->vs != NULL)
		return ti->vs->root;
	return kd;
}

/* The definition of a slice at a discriminator path, or NULL. */
static const struct vnode *
disc_def(struct vrun *r, const struct vnode *s, const char *path,
	 bool keep_resolve)
{
	const struct vnode *d = s;
	char seg[256] = "", arg[256] = "";
	const char *p = path;

	while (*p != '\0' && d != NULL) {
		const struct vnode *kd, *next = NULL;

		p = next_segment(p, seg, sizeof(seg));
		if (strcmp(seg, "$this") == 0 || seg[0] == '\0')
			continue;
		if (seg_call(seg, "ofType", arg, sizeof(arg)) ||
		    seg_call(seg, "as", arg, sizeof(arg))) {
			d = choice_slice(d, arg);
			continue;
		}
		if (strcmp(seg, "resolve()") == 0) {
			const struct rules_structure *sd = NULL;

			if (keep_resolve)
				return d;
			for (size_t i = 0; i < d->el->ntypes && sd == NULL; i++)
				for (size_t j = 0;
				     j < d->el->types[i].ntargets && sd == NULL;
				     j++)
					sd = rules_structure(
					    r->ctx->set,
					    d->el->types[i].targets[j]);
			d = sd != NULL && vstruct_get(r->ctx, sd) != NULL
				? vstruct_get(r->ctx, sd)->root
				: NULL;
			continue;
		}
		kd = def_kids(r, d);
		if (seg_call(seg, "extension", arg, sizeof(arg))) {
			const struct vnode *ext = NULL;

			for (size_t i = 0; i < kd->nkids; i++)
				if (strcmp(kd->kids[i]->name, "extension") == 0)
					ext = kd->kids[i];
			for (size_t i = 0; ext != NULL && i < ext->nslices;
			     i++) {
				const struct rules_element *se =
				    ext->slices[i]->el;

				for (size_t t = 0; t < se->ntypes; t++)
					for (size_t j = 0;
					     j < se->types[t].nprofiles; j++)
						if (strcmp(se->types[t]
							       .profiles[j],
							   arg) == 0)
							next = ext->slices[i];
			}
			d = next;
			continue;
		}
		for (size_t i = 0; i < kd->nkids; i++) {
			const struct vnode *k = kd->kids[i];

			if (strcmp(k->name, seg) == 0 ||
			    (k->choice && strlen(seg) == k->prefixlen &&
			     strncmp(k->name, seg, k->prefixlen) == 0)) {
				next = k;
				break;
			}
		}
		d = next;
	}
	return d;
}

static bool
val_in_vs(struct vrun *r, const struct rules_element *el,
	  const struct fj_node *v)
{
	bool in = false;

	if (el->strength != RULES_BIND_REQUIRED || el->valueset == NULL)
		return false;
	if (fp_member_of(r, v, NULL, el->valueset, &in) != GW_OK)
		return false;
	return in;
}

static bool
slice_matches(struct vrun *r, const struct vnode *k, const struct vnode *s,
	      const struct vitem *it, const char *itype)
{
	const struct rules_slicing *sl = k->el->slicing;
	struct vval vals[V_MAX_SET];

	if (it->v == NULL || it->v->type == FJ_NULL || sl == NULL ||
	    sl->ndisc == 0)
		return false;
	for (size_t di = 0; di < sl->ndisc; di++) {
		const struct rules_discriminator *disc = &sl->disc[di];
		const char *path = disc->path != NULL ? disc->path : "$this";
		size_t nv = disc_values(r, path, it->v, itype, vals);
		const struct vnode *d;
		bool ok = false;

		switch (disc->type) {
		case RULES_DISC_VALUE:
		case RULES_DISC_PATTERN:
			d = disc_def(r, s, path, false);
			if (d == NULL)
				return false;
			if (d->el->fixed == NULL && d->el->pattern == NULL &&
			    (d->el->strength != RULES_BIND_REQUIRED ||
			     d->el->valueset == NULL))
				return false;
			for (size_t i = 0; i < nv && !ok; i++) {
				if (d->el->fixed != NULL)
					ok =
					    fj_equal_v(vals[i].n, d->el->fixed);
				else if (d->el->pattern != NULL)
					ok = fj_contains_v(vals[i].n,
							   d->el->pattern);
				else
					ok = val_in_vs(r, d->el, vals[i].n);
			}
			break;
		case RULES_DISC_EXISTS:
			d = disc_def(r, s, path, false);
			if (d == NULL)
				return false;
			ok = d->el->max == 0 ? nv == 0
					     : (d->el->min > 0 ? nv > 0 : true);
			break;
		case RULES_DISC_TYPE: {
			/* after resolve(): the types of the target profiles */
			bool via_ref = strstr(path, "resolve()") != NULL;

			d = disc_def(r, s, path, via_ref);
			if (d == NULL)
				return false;
			for (size_t i = 0; i < nv && !ok; i++)
				for (size_t t = 0; t < d->el->ntypes && !ok;
				     t++) {
					const struct rules_type *ty =
					    &d->el->types[t];

					if (vals[i].type == NULL)
						continue;
					if (!via_ref) {
						ok = strcmp(vals[i].type,
							    ty->code) == 0;
						continue;
					}
					for (size_t j = 0; j < ty->ntargets;
					     j++) {
						const struct rules_structure
						    *tsd;

						if (strcmp(
							url_type(r->ctx,
								 ty->targets[j],
								 &tsd),
							vals[i].type) == 0)
							ok = true;
					}
				}
			break;
		}
		case RULES_DISC_PROFILE: {
			bool via_ref = strstr(path, "resolve()") != NULL;

			d = disc_def(r, s, path, true);
			if (d == NULL)
				return false;
			for (size_t i = 0; i < nv && !ok; i++)
				for (size_t t = 0; t < d->el->ntypes && !ok;
				     t++) {
					const struct rules_type *ty =
					    &d->el->types[t];
					const char *const *urls =
					    via_ref ? ty->targets
						    : ty->profiles;
					size_t nu = via_ref ? ty->ntargets
							    : ty->nprofiles;

					for (size_t j = 0; j < nu && !ok; j++) {
						const struct rules_structure
						    *psd = rules_structure(
							r->ctx->set, urls[j]);

						if (psd != NULL &&
						    vals[i].n->type ==
							FJ_OBJECT)
							ok = conforms(
							    r, vals[i].n, psd);
					}
				}
			break;
		}
		}
		if (!ok)
			return false;
	}
	return true;
}

static void
assign_slices(struct vrun *r, const struct vstruct *vs, const struct vnode *k,
	      struct vitem *items, size_t n, const char *type,
	      size_t parent_len)
{
	const struct rules_slicing *sl = k->el->slicing;
	size_t stackcounts[16], *counts = stackcounts;
	int last = -1;
	bool unmatched_seen = false;

	(void)vs;
	if (k->nslices == 0)
		return;
	if (k->nslices > 16 &&
	    (counts = calloc(k->nslices, sizeof(*counts))) == NULL) {
		r->nomem = true;
		return;
	}
	memset(counts, 0, k->nslices * sizeof(*counts));
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < k->nslices; j++) {
			const struct vnode *s = k->slices[j];

			/* a type slice of a choice element */
			if (k->choice && type != NULL && s->el->ntypes == 1 &&
			    (sl == NULL || sl->ndisc == 0)) {
				if (strcmp(s->el->types[0].code, type) != 0)
					continue;
			} else if (!slice_matches(r, k, s, &items[i], type)) {
				continue;
			}
			items[i].def = s;
			items[i].slice = (int)j;
			counts[j]++;
			break;
		}
		if (sl == NULL)
			continue;
		if (items[i].slice < 0) {
			if (sl->rules == RULES_SLICE_CLOSED) {
				size_t old = is_array_el(k->el)
						 ? path_push(r, "[%zu]", i)
						 : r->plen;

				issue(r, FHIR_ERROR, "structure",
				      items[i].v != NULL ? items[i].v
							 : items[i].u,
				      "this element does not match any known "
				      "slice of %s, and slicing is closed",
				      k->el->id);
				path_pop(r, old);
			}
			unmatched_seen = true;
			continue;
		}
		if ((sl->rules == RULES_SLICE_OPEN_AT_END && unmatched_seen) ||
		    (sl->ordered && items[i].slice < last)) {
			size_t old =
			    is_array_el(k->el) ? path_index(r, i) : r->plen;

			if (sl->rules == RULES_SLICE_OPEN_AT_END &&
			    unmatched_seen)
				issue(
				    r, FHIR_ERROR, "structure", items[i].v,
				    "slice %s: elements of open slices must "
				    "come after the defined slices "
				    "(openAtEnd)",
				    k->slices[items[i].slice]->el->slice_name);
			else
				issue(r, FHIR_ERROR, "structure", items[i].v,
				      "slice %s is out of order (slicing of %s "
				      "is ordered)",
				      k->slices[items[i].slice]->el->slice_name,
				      k->el->id);
			path_pop(r, old);
		}
		if (items[i].slice > last)
			last = items[i].slice;
	}
	for (size_t j = 0; j < k->nslices; j++) {
		const struct rules_element *se = k->slices[j]->card != NULL
						     ? k->slices[j]->card
						     : k->slices[j]->el;

		if (se->slice_name != NULL && strchr(se->slice_name, '/'))
			continue; /* reslices are counted in their parent */
		if (counts[j] < se->min)
			issue_card(r, parent_len, n > 0 ? items[0].v : NULL,
				   se->id, false, (unsigned)se->min, counts[j]);
		if (se->max != RULES_UNBOUNDED && counts[j] > se->max)
			issue_card(r, parent_len, n > 0 ? items[0].v : NULL,
				   se->id, true, (unsigned)se->max, counts[j]);
	}
	if (counts != stackcounts)
		free(counts);
}
/* ---- resources ---- */

/* Remember that res does (2) or does not (3) conform to sd, or that the
 * check is under way (1). False without memory. */
static bool
conf_put(struct vrun *r, const struct fj_node *res,
	 const struct rules_structure *sd, int state)
{
	if (*r->nconf == *r->capconf) {
		size_t ncap = *r->capconf == 0 ? 16 : *r->capconf * 2;
		struct vconf *n = realloc(r->conf, ncap * sizeof(*n));

		if (n == NULL) {
			r->nomem = true;
			return false;
		}
		r->conf = n;
		*r->capconf = ncap;
	}
	r->conf[*r->nconf].res = res;
	r->conf[*r->nconf].sd = sd;
	r->conf[*r->nconf].state = state;
	(*r->nconf)++;
	return true;
}

static bool
conforms(struct vrun *r, const struct fj_node *res,
	 const struct rules_structure *sd)
{
	struct vrun sub;
	bool ok;

	for (size_t i = 0; i < *r->nconf; i++)
		if (r->conf[i].res == res && r->conf[i].sd == sd)
			return r->conf[i].state != 3;
	if (r->depth >= V_MAX_DEPTH / 2)
		return true;
	if (!conf_put(r, res, sd, 1))
		return true;
	memset(&sub, 0, sizeof(sub));
	sub.ctx = r->ctx;
	sub.scratch = true;
	sub.bundle = r->bundle;
	sub.root = r->root;
	sub.resource = r->resource;
	sub.depth = r->depth + 1;
	sub.conf = r->conf;
	sub.nconf = r->nconf;
	sub.capconf = r->capconf;
	sub.deadline = r->deadline;
	validate_resource(&sub, res, NULL, 0, false, sd);
	/* the memo may have moved while the sub-run grew it */
	r->conf = sub.conf;
	ok = sub.nerrors == 0;
	if (sub.nomem)
		r->nomem = true;
	if (sub.late)
		r->late = true;
	for (size_t i = 0; i < *r->nconf; i++)
		if (r->conf[i].res == res && r->conf[i].sd == sd)
			r->conf[i].state = ok ? 2 : 3;
	run_cleanup(&sub);
	return ok;
}

/* Whether obj meets the fixed/pattern values and required slices that
 * node's kids define (and, two levels down, those of single-valued kids:
 * Observation.code.coding:loinc); *score counts the ones met. */
static bool
patterns_match(struct vrun *r, const struct vnode *node,
	       const struct fj_node *obj, int *score, int depth)
{
	const struct vnode *pn = kids_of(node);

	for (size_t i = 0; i < pn->nkids; i++) {
		const struct vnode *k = pn->kids[i];
		const struct rules_element *el = k->el;
		const struct fj_node *v;
		bool hit = false;

		if (k->choice)
			continue;
		v = fj_get(obj, k->name);
		if (el->fixed != NULL || el->pattern != NULL) {
			if (v == NULL) {
				if (el->min > 0)
					return false;
				continue;
			}
			for (const struct fj_node *x =
				 v->type == FJ_ARRAY ? v->u.kids.first : v;
			     x != NULL && !hit;
			     x = v->type == FJ_ARRAY ? x->next : NULL)
				hit = el->fixed != NULL
					  ? fj_equal_v(x, el->fixed)
					  : fj_contains_v(x, el->pattern);
			if (!hit)
				return false;
			(*score)++;
			continue;
		}
		for (size_t j = 0; j < k->nslices; j++) {
			const struct vnode *s = k->slices[j];
			struct vitem it;

			if (s->el->min == 0)
				continue;
			if (v == NULL)
				return false;
			hit = false;
			memset(&it, 0, sizeof(it));
			for (const struct fj_node *x =
				 v->type == FJ_ARRAY ? v->u.kids.first : v;
			     x != NULL && !hit;
			     x = v->type == FJ_ARRAY ? x->next : NULL) {
				it.v = x;
				hit = slice_matches(r, k, s, &it, NULL);
			}
			if (!hit)
				return false;
			(*score)++;
		}
		if (depth < 2 && k->nslices == 0 && kids_of(k)->nkids > 0 &&
		    v != NULL && v->type == FJ_OBJECT &&
		    !patterns_match(r, k, v, score, depth + 1))
			return false;
	}
	return true;
}

static bool
top_patterns_match(struct vrun *r, const struct vstruct *vs,
		   const struct fj_node *res, int *score)
{
	*score = 0;
	return patterns_match(r, vs->root, res, score, 0);
}

/* True when sd has anc in its base chain. */
static bool
derives_from(struct vrun *r, const struct rules_structure *sd,
	     const struct rules_structure *anc)
{
	for (int i = 0; i < 32 && sd != NULL && sd->base != NULL; i++) {
		if (strcmp(sd->base, anc->url) == 0)
			return true;
		sd = rules_structure(r->ctx->set, sd->base);
	}
	return false;
}

/* Index the profiles detection may choose by resource type. */
static bool
build_cands(struct validate_ctx *ctx)
{
	const struct rules_structure *sd;

	cands_free(ctx);
	for (size_t i = 0; (sd = rules_structure_at(ctx->set, i)) != NULL;
	     i++) {
		struct vcands *c;
		bool ok = false, found;

		if (!sd->constraint || sd->type == NULL || sd->url == NULL ||
		    sd->kind == NULL || strcmp(sd->kind, "resource") != 0)
			continue;
		for (size_t j = 0; j < ctx->ndetect && !ok; j++)
			ok = strncmp(sd->url, ctx->detect[j],
				     strlen(ctx->detect[j])) == 0;
		if (!ok)
			continue;
		c = smap_get(&ctx->cands, sd->type, &found);
		if (c == NULL) {
			if ((c = calloc(1, sizeof(*c))) == NULL)
				return false;
			if (!smap_put(&ctx->cands, sd->type, c)) {
				free(c);
				return false;
			}
		}
		if (c->n == c->cap) {
			size_t ncap = c->cap == 0 ? 4 : c->cap * 2;
			const struct rules_structure **n = realloc(
			    c->sd,
			    ncap * sizeof(const struct rules_structure *));

			if (n == NULL)
				return false;
			c->sd = n;
			c->cap = ncap;
		}
		c->sd[c->n++] = sd;
	}
	ctx->cands_built = true;
	return true;
}

/* The profile of resource type rt whose fixed codes and required slices
 * the resource meets best, or NULL. */
static const struct rules_structure *
detect_profile(struct vrun *r, const struct fj_node *res, const char *rt)
{
	const struct rules_structure *sd, *best = NULL;
	int bestscore = 0, score;

	const struct vcands *c;
	bool found;

	if (!r->ctx->cands_built && !build_cands(r->ctx)) {
		r->nomem = true;
		return NULL;
	}
	c = smap_get(&r->ctx->cands, rt, &found);
	for (size_t i = 0; c != NULL && i < c->n; i++) {
		const struct vstruct *vs;

		sd = c->sd[i];
		if ((vs = vstruct_get(r->ctx, sd)) == NULL)
			continue;
		if (!top_patterns_match(r, vs, res, &score) || score == 0)
			continue;
		if (score > bestscore || (score == bestscore &&
					  (derives_from(r, sd, best) ||
					   (!derives_from(r, best, sd) &&
					    strcmp(sd->url, best->url) < 0)))) {
			best = sd;
			bestscore = score;
		}
	}
	return best;
}

/* A RESTful fullUrl (".../Type/...") must end with the resource's
 * Type/id (a _history/version tail allowed). */
static void
check_fullurl(struct vrun *r, const struct fj_node *e, const struct ventry *en,
	      size_t i)
{
	char want[256];
	const char *f = en->fullurl, *hist;
	size_t wl, fl;

	if (f == NULL)
		return;
	if (strchr(f, ':') == NULL) {
		size_t old = path_push(r, ".entry[%zu].fullUrl", i);

		issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
		      "the fullUrl must be an absolute URL (not '%.200s')", f);
		path_pop(r, old);
		return;
	}
	if (en->rtype == NULL || en->id == NULL || strncmp(f, "urn:", 4) == 0)
		return;
	snprintf(want, sizeof(want), "/%s/", en->rtype);
	if (strstr(f, want) == NULL)
		return;
	snprintf(want, sizeof(want), "/%s/%s", en->rtype, en->id);
	wl = strlen(want);
	hist = strstr(f, "/_history/");
	fl = hist != NULL ? (size_t)(hist - f) : strlen(f);
	if (fl >= wl && memcmp(f + fl - wl, want, wl) == 0)
		return;
	{
		size_t old = path_push(r, ".entry[%zu].fullUrl", i);

		issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
		      "the fullUrl '%.200s' looks like a RESTful server URL, "
		      "so it must end with the resource's type and id (%s)",
		      f, want);
		path_pop(r, old);
	}
}

/* Free what bundle_build allocated; b itself is the caller's. */
static void
bundle_cleanup(struct vbundle *b)
{
	free(b->e);
	smap_free(&b->by_url, NULL);
	smap_free(&b->by_tid, NULL);
}

static bool
bundle_build(struct vrun *r, const struct fj_node *res, struct vbundle *b)
{
	const struct fj_node *entries = fj_get(res, "entry"), *e;
	const char *type = fj_get_str(res, "type");
	bool history = type != NULL && strcmp(type, "history") == 0;
	size_t i = 0;

	memset(b, 0, sizeof(*b));
	b->must_resolve = type != NULL && (strcmp(type, "collection") == 0 ||
					   strcmp(type, "transaction") == 0 ||
					   strcmp(type, "message") == 0 ||
					   strcmp(type, "document") == 0);
	if (entries == NULL || entries->type != FJ_ARRAY ||
	    entries->u.kids.count == 0)
		return true;
	if ((b->e = calloc(entries->u.kids.count, sizeof(*b->e))) == NULL) {
		r->nomem = true;
		return false;
	}
	for (e = entries->u.kids.first; e != NULL; e = e->next, i++) {
		const struct fj_node *rs;
		size_t j;

		if (e->type != FJ_OBJECT)
			continue;
		b->e[i].fullurl = fj_get_str(e, "fullUrl");
		rs = fj_get(e, "resource");
		if (rs != NULL && rs->type == FJ_OBJECT) {
			b->e[i].res = rs;
			b->e[i].rtype = fj_get_str(rs, "resourceType");
			b->e[i].id = fj_get_str(rs, "id");
			check_fullurl(r, e, &b->e[i], i);
		}
		if (b->e[i].rtype != NULL && b->e[i].id != NULL &&
		    strchr(b->e[i].rtype, '/') == NULL &&
		    strchr(b->e[i].id, '/') == NULL) {
			size_t kl =
			    strlen(b->e[i].rtype) + strlen(b->e[i].id) + 2;
			char stack[256],
			    *key = kl <= sizeof(stack) ? stack : malloc(kl);
			bool ok = key != NULL;

			if (ok) {
				snprintf(key, kl, "%s/%s", b->e[i].rtype,
					 b->e[i].id);
				ok = idx_get(&b->by_tid, key) != 0 ||
				     smap_put(&b->by_tid, key,
					      (void *)(uintptr_t)(i + 1));
			}
			if (key != stack)
				free(key);
			if (!ok) {
				r->nomem = true;
				return false;
			}
		}
		if (b->e[i].fullurl == NULL)
			continue;
		if ((j = idx_get(&b->by_url, b->e[i].fullurl)) == 0) {
			if (!smap_put(&b->by_url, b->e[i].fullurl,
				      (void *)(uintptr_t)(i + 1))) {
				r->nomem = true;
				return false;
			}
			continue;
		}
		/* history Bundles may repeat a fullUrl with different
		 * versions */
		if (history && b->e[i].res != NULL &&
		    fj_get(b->e[i].res, "meta") != NULL)
			continue;
		{
			size_t old = path_push(r, ".entry[%zu].fullUrl", i);

			issue(r, FHIR_ERROR, "invalid", fj_get(e, "fullUrl"),
			      "fullUrl '%s' is used by entry %zu too; "
			      "it must be unique in the Bundle",
			      b->e[i].fullurl, j - 1);
			path_pop(r, old);
		}
	}
	b->n = i;
	return true;
}

static void
validate_resource(struct vrun *r, const struct fj_node *res,
		  const char *const *profiles, size_t nprofiles, bool is_root,
		  const struct rules_structure *only)
{
	const struct rules_structure *list[16], *base, *sd;
	const struct fj_node *saved_res = r->resource, *meta, *mp;
	const char *saved_type = r->resource_type, *rt, *why;
	const struct rules_structure *saved_sd = r->cur_sd;
	const char *saved_ext = r->ext_url;
	const struct fj_node *idn;
	struct vbundle *bundle = NULL, *saved_bundle = r->bundle;
	bool is_bundle = false, base_done = false;
	size_t err0;
	size_t nlist = 0, old, mpi = 0;
	char url[512];

	if ((rt = fj_get_str(res, "resourceType")) == NULL) {
		issue(r, FHIR_ERROR, "structure", res,
		      "a resource must have a string resourceType");
		return;
	}
	base = rules_type(r->ctx->set, rt);
	if (base == NULL || base->kind == NULL ||
	    strcmp(base->kind, "resource") != 0) {
		issue(r, FHIR_ERROR, "structure", fj_get(res, "resourceType"),
		      "unknown resource type '%.60s'", rt);
		return;
	}
	old =
	    is_root ? path_push(r, "%s", rt) : path_push(r, ".ofType(%s)", rt);
	seg_push(r, NULL, 0, base->type != NULL ? base->type : rt, false);
	r->ext_url = NULL;
	r->resource = res;
	r->resource_type = base->type != NULL ? base->type : rt;
	r->cur_sd = NULL; /* until this resource's own profiles are chosen */
	if (only != NULL) {
		list[nlist++] = only;
	} else {
		for (size_t i = 0; i < nprofiles && nlist < 16; i++) {
			if ((sd = rules_structure(r->ctx->set, profiles[i])) !=
			    NULL)
				list[nlist++] = sd;
			else if (is_root)
				issue(r, FHIR_ERROR, "not-found", res,
				      "profile %s is not known", profiles[i]);
		}
		meta = fj_get(res, "meta");
		mp = meta != NULL && meta->type == FJ_OBJECT
			 ? fj_get(meta, "profile")
			 : NULL;
		for (mp = !(is_root && nprofiles > 0) && mp != NULL &&
				  mp->type == FJ_ARRAY
			      ? mp->u.kids.first
			      : NULL;
		     mp != NULL && nlist < 16; mp = mp->next, mpi++) {
			const char *bar;

			if (mp->type != FJ_STRING)
				continue;
			bar = strchr(mp->u.str.s, '|');
			snprintf(url, sizeof(url), "%.*s",
				 (int)(bar != NULL ? (size_t)(bar - mp->u.str.s)
						   : mp->u.str.len),
				 mp->u.str.s);
			if ((sd = rules_structure(r->ctx->set, url)) != NULL)
				list[nlist++] = sd;
			else {
				size_t o2 =
				    path_push(r, ".meta.profile[%zu]", mpi);

				issue(r, FHIR_WARNING, "not-supported", mp,
				      "profile %.200s is not known, so the "
				      "resource was not checked against it",
				      url);
				path_pop(r, o2);
			}
		}
		if (nlist == 0 && (sd = detect_profile(r, res, rt)) != NULL) {
			list[nlist++] = sd;
			issue(r, FHIR_INFORMATION, "informational", res,
			      "no meta.profile: validated against the "
			      "detected profile %s",
			      sd->url);
		}
	}
	if (nlist == 0)
		list[nlist++] = base;
	if (is_root && r->ctx->last_profile == NULL && !r->scratch)
		r->ctx->last_profile = list[0]->url;
	/* Resource.id is System.String in the R4 snapshots, yet an id */
	idn = fj_get(res, "id");
	if (idn != NULL && idn->type == FJ_STRING &&
	    (why = validate_primitive("id", idn->u.str.s, idn->u.str.len,
				      true)) != NULL) {
		size_t o2 = path_push(r, ".id");

		issue(r, FHIR_ERROR, "value", idn,
		      "the value \"%.60s\" is not a valid id: %s", idn->u.str.s,
		      why);
		path_pop(r, o2);
	}
	if (strcmp(rt, "Bundle") == 0) {
		if ((bundle = calloc(1, sizeof(*bundle))) == NULL)
			r->nomem = true;
		else if (bundle_build(r, res, bundle)) {
			bundle->up = r->bundle;
			r->bundle = bundle;
			is_bundle = true;
		}
	}
	err0 = r->nerrors;
	for (size_t i = 0; i < nlist && !r->nomem; i++) {
		const struct vstruct *vs;

		sd = list[i];
		if (sd->type == NULL || strcmp(sd->type, rt) != 0) {
			issue(r, FHIR_ERROR, "structure", res,
			      "profile %s constrains %s, not %s", sd_label(sd),
			      sd->type != NULL ? sd->type : "?", rt);
			/* still check the resource against its own type */
			if (!base_done) {
				base_done = true;
				list[i--] = base;
			}
			continue;
		}
		if (sd == base)
			base_done = true;
		if ((vs = vstruct_get(r->ctx, sd)) == NULL) {
			r->nomem = true;
			break;
		}
		r->cur_sd = sd;
		check_members(r, vs, vs->root, res, true, false);
		check_fixed(r, vs->root->el, res);
		check_constraints(r, vs->root->el, res, r->resource_type);
	}
	/* a resource that passed its profiles in the main walk need not be
	 * walked again when a reference or slice asks whether it conforms */
	if (!r->scratch && r->nerrors == err0)
		for (size_t i = 0; i < nlist; i++)
			(void)conf_put(r, res, list[i], 2);
	if (is_bundle)
		r->bundle = saved_bundle;
	if (bundle != NULL) {
		bundle_cleanup(bundle);
		free(bundle);
	}
	r->resource = saved_res;
	r->resource_type = saved_type;
	r->cur_sd = saved_sd;
	r->ext_url = saved_ext;
	r->nsegs--;
	path_pop(r, old);
}

/* ---- entry points ---- */

static enum gw_err
emit(struct vrun *r, json_t *outcome)
{
	for (size_t i = 0; i < r->nissues; i++) {
		const struct vissue *is = &r->issues[i];

		if (fhir_outcome_add(outcome, is->sev, is->code,
				     is->expr[0] != '\0' ? is->expr : NULL,
				     (int)is->line, (int)is->col, "%s",
				     is->msg) != GW_OK)
			return GW_NOMEM;
	}
	if (r->late)
		return GW_TEMP;
	return r->nomem ? GW_NOMEM : GW_OK;
}

enum gw_err
validate_document(struct validate_ctx *ctx, const struct fj_node *root,
		  const struct validate_opts *opts, json_t *outcome)
{
	struct vrun r;
	size_t nconf = 0, capconf = 0;
	enum gw_err err;
	const char *forced[1];

	if (ctx == NULL || root == NULL || !json_is_object(outcome) ||
	    !json_is_array(json_object_get(outcome, "issue")))
		return GW_INVALID;
	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	r.root = root;
	r.nconf = &nconf;
	r.capconf = &capconf;
	ctx->last_profile = NULL;
	if (opts != NULL && opts->deadline_ms != 0) {
		r.deadline = opts->deadline_ms;
		if (util_mono_ms() >= r.deadline)
			r.late = r.nomem = true;
	}
	if (r.late) {
		/* past the deadline already: no walk */
	} else if (root->type != FJ_OBJECT) {
		issue(&r, FHIR_ERROR, "structure", root,
		      "a FHIR resource must be a JSON object, not a %s",
		      jtype_name(root));
	} else if (opts != NULL && opts->profile != NULL) {
		forced[0] = opts->profile;
		validate_resource(&r, root, forced, 1, true, NULL);
	} else {
		validate_resource(&r, root, NULL, 0, true, NULL);
	}
	err = emit(&r, outcome);
	free(r.conf);
	run_cleanup(&r);
	return err;
}

enum gw_err
validate_text(struct validate_ctx *ctx, const char *text, size_t len,
	      const struct validate_opts *opts, json_t *outcome)
{
	struct fj_doc *doc = NULL;
	struct fj_error perr;
	enum gw_err err;
	size_t i = 0;

	if (ctx == NULL || !json_is_object(outcome))
		return GW_INVALID;
	size_t j;

	/* a UTF-8 byte order mark is tolerated, as HTTP bodies carry it */
	if (len >= 3 && (unsigned char)text[0] == 0xef &&
	    (unsigned char)text[1] == 0xbb && (unsigned char)text[2] == 0xbf)
		i = 3;
	for (j = i; j < len && (text[j] == ' ' || text[j] == '\t' ||
				text[j] == '\r' || text[j] == '\n');
	     j++)
		;
	if (j < len && text[j] == '<') {
		char why[256];

		why[0] = '\0';
		err = xmlfhir_to_fjson(text + i, len - i, ctx->set, &doc, why,
				       sizeof(why));
		if (err == GW_NOMEM)
			return GW_NOMEM;
		if (err != GW_OK)
			return fhir_outcome_add(
			    outcome, FHIR_FATAL, "structure", NULL, 0, 0,
			    "the document is not FHIR XML: %s",
			    why[0] != '\0' ? why : "parse error");
		err = validate_document(ctx, doc->root, opts, outcome);
		fj_doc_free(doc);
		return err;
	}
	memset(&perr, 0, sizeof(perr));
	err = fj_parse(text + i, len - i, 0, &doc, &perr);
	if (err == GW_NOMEM)
		return GW_NOMEM;
	if (err != GW_OK) {
		return fhir_outcome_add(
		    outcome, FHIR_FATAL, "structure", NULL, (int)perr.line,
		    (int)perr.col, "the document is not valid JSON: %s",
		    perr.msg[0] != '\0' ? perr.msg : "parse error");
	}
	err = validate_document(ctx, doc->root, opts, outcome);
	fj_doc_free(doc);
	return err;
}
