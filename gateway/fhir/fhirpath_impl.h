/*
 * fhirpath_impl: what the files of the FHIRPath engine share (not part of
 * the API, which is fhirpath.h). Calls go one way only:
 *   arena, types, regex  <-  parse  (compile)
 *   arena, types  <-  item  <-  value  <-  fn  <-  eval  (evaluate)
 * (fn also reads parse's table of functions, fp_fdefs; all use fdate,
 * fdecimal and fjson below them.)
 * fn evaluates its arguments through ectx.ev, set by the evaluator, so
 * that the evaluator and its function library do not call each other.
 * All memory is in an arena: a compiled expression owns its own; one
 * evaluation owns another, handed to its result (fhirpath_result_free).
 */
#ifndef GW_FHIRPATH_IMPL_H
#define GW_FHIRPATH_IMPL_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "fhirpath.h"

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

/* n bytes from the arena, NULL (a->err says why) past its limit. */
void *fp_ar_alloc(struct arena *a, size_t n);
/* Free every block; the arena is then empty. */
void fp_ar_cleanup(struct arena *a);
/* An empty arena of at most max bytes; first (may be NULL) is a
 * caller-owned first block of firstlen bytes. */
void fp_ar_init(struct arena *a, void *first, size_t firstlen, size_t max);
/* A NUL-terminated copy of n bytes of s in the arena, or NULL. */
char *fp_ar_strndup(struct arena *a, const char *s, size_t n);

/* ---------------------------------------------------------------- types */

/* Whether FHIR type t is, or specialises, FHIR type want. */
bool fp_fhir_type_is(const char *t, const char *want);
/* Whether t names a FHIR data type (or Resource), not a resource. */
bool fp_is_datatype(const char *t);
/* Whether t names a FHIR primitive type. */
bool fp_is_primitive_type(const char *t);
/* Whether t is a System type name ("Boolean", "String", ...). */
bool fp_is_system_name(const char *t);
/* The System type of a computed item kind, or NULL for a node. */
const char *fp_kind_system(enum fhirpath_kind k);
/* The FHIR type a choice suffix names (first letter uppercase), or
 * NULL; the string is static. */
const char *fp_suffix_type(const char *s, size_t n);
/* The System type a FHIR primitive maps to ("Boolean"), or NULL. */
const char *fp_system_of(const char *t);

/* ---------------------------------------------------------------- regex */

/* Compile a FHIRPath regex into *re (caller regfree()s on success);
 * GW_INVALID with the reason in why otherwise. */
enum gw_err fp_regex_compile(const char *pat, size_t n, regex_t *re, char *why,
			     size_t whylen);

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

/* The functions, in fhirpath_parse.c. */
extern const struct fdef fp_fdefs[];
extern const size_t fp_nfdefs;

/* ---------------------------------------------------------------- items */

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

struct ectx;

/* The evaluator, as the function library calls it (see above). */
typedef enum gw_err (*fp_eval_fn)(struct ectx *x, const struct ast *a,
				  const struct coll *in, struct coll *out);

struct ectx {
	struct arena ar;
	const struct fhirpath_env *env;
	struct coll thisc; /* $this as a collection */
	int64_t index;	   /* $index */
	struct coll context, resource, root;
	unsigned long steps;
	char *errbuf;
	size_t errlen;
	fp_eval_fn ev; /* evaluates a subexpression */
};

/* Record why the evaluation fails (first reason wins); returns e. */
enum gw_err fp_efail(struct ectx *x, enum gw_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Append the items of c to b. */
enum gw_err fp_cb_append(struct ectx *x, struct cb *b, const struct coll *c);
/* The collection b has built (borrowed from the arena). */
void fp_cb_done(struct cb *b, struct coll *out);
/* Append one item to b; GW_TOOBIG past the limits of an evaluation. */
enum gw_err fp_cb_push(struct ectx *x, struct cb *b, const item_t *it);
/* Push the item(s) of a member (val, its _x part ext; either NULL). */
enum gw_err fp_emit_member(struct ectx *x, const struct fj_node *val,
			   const struct fj_node *ext, const char *type,
			   struct cb *out);
/* The arena's failure (GW_NOMEM or GW_TOOBIG) with its reason. */
enum gw_err fp_enomem(struct ectx *x);
/* Member of obj named by s (n bytes), or NULL. */
const struct fj_node *fp_find_key(const struct fj_node *obj, const char *s,
				  size_t n);
/* The object whose members an item has, or NULL. */
const struct fj_node *fp_item_obj(const item_t *it);
/* The item's FHIR type as far as it can be known, or NULL. */
const char *fp_item_type(const item_t *it);
/* children() of one item, appended to out. */
enum gw_err fp_nav_children(struct ectx *x, const item_t *it, struct cb *out);
/* Member name (n bytes) of one item, choice members included. */
enum gw_err fp_nav_member(struct ectx *x, const item_t *it, const char *name,
			  size_t n, struct cb *out);
/* resourceType of an object node, or NULL. */
const char *fp_node_rtype(const struct fj_node *n);
/* A collection of one item (copied into the arena). */
enum gw_err fp_one(struct ectx *x, const item_t *it, struct coll *out);
/* A three-valued boolean as a collection (empty for EMPTY). */
enum gw_err fp_one_b3(struct ectx *x, enum fhirpath_bool b, struct coll *out);
/* A collection of one Boolean. */
enum gw_err fp_one_bool(struct ectx *x, bool b, struct coll *out);
/* A collection of one Integer. */
enum gw_err fp_one_int(struct ectx *x, int64_t v, struct coll *out);
/* A collection of one string-like item; s copied unless !copy. */
enum gw_err fp_one_str(struct ectx *x, enum fhirpath_kind kind, const char *s,
		       size_t n, bool copy, struct coll *out);
/* Whether item it is of type want; GW_INVALID when unknowable. */
enum gw_err fp_type_is(struct ectx *x, const item_t *it, const char *want,
		       bool *out);

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

/* Items of c without repeats (first occurrence kept). */
enum gw_err fp_distinct(struct ectx *x, const struct coll *c, struct coll *out);
/* Order of two items: *r, *ok false when uncomparable; GW_INVALID
 * for types without an order. */
enum gw_err fp_item_cmp(struct ectx *x, const item_t *a, const item_t *b,
			bool *ok, int *r);
/* FHIRPath equality of two items (=): TRUE, FALSE or EMPTY. */
enum fhirpath_bool fp_item_eq(const item_t *a, const item_t *b);
/* FHIRPath equivalence of two items (~). */
bool fp_item_equiv(const item_t *a, const item_t *b);
/* The string value of an item; false when it has none. */
bool fp_item_str(const item_t *it, const char **s, size_t *len);
/* The value of an item (pointers borrowed from the item). */
void fp_item_val(const item_t *it, struct val *v);
/* For each item of a whether it is in b (*flags in the arena). */
enum gw_err fp_member_flags(struct ectx *x, const struct coll *a,
			    const struct coll *b, bool **flags);
/* A decimal integer of n bytes of s that fits 64 bits. */
bool fp_parse_int(const char *s, size_t n, int64_t *out);
/* The single Integer of c; *empty when c is empty. */
enum gw_err fp_single_int(struct ectx *x, const struct coll *c,
			  const char *what, int64_t *v, bool *empty);
/* The single string of c; *empty when c is empty or not a string. */
enum gw_err fp_single_str(struct ectx *x, const struct coll *c,
			  const char *what, const char **s, size_t *len,
			  bool *empty);
/* A collection as a boolean: EMPTY, the one boolean, or TRUE for one
 * other item; GW_INVALID for several items. */
enum gw_err fp_to_b3(struct ectx *x, const struct coll *c,
		     enum fhirpath_bool *out);

/* ---------------------------------------------------------------- functions */

/* Evaluate a function call node a on input in. */
enum gw_err fp_ev_func(struct ectx *x, const struct ast *a,
		       const struct coll *in, struct coll *out);

#endif
