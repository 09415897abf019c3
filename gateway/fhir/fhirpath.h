/*
 * fhirpath: compiles and evaluates the FHIRPath subset used by FHIR
 * invariants (ElementDefinition.constraint.expression) and slicing
 * discriminators over documents in the fjson model.
 */
#ifndef GW_FHIRPATH_H
#define GW_FHIRPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "fjson.h"

/* A compiled expression: immutable, may be shared between threads. */
struct fhirpath;

/* Limits: nesting of the expression, items of one collection, and the
 * memory one evaluation may use. */
#define FHIRPATH_MAX_EXPR   65536
#define FHIRPATH_MAX_DEPTH  64
#define FHIRPATH_MAX_ITEMS  200000
#define FHIRPATH_MAX_MEMORY (64u * 1024 * 1024)

/*
 * Semantics worth knowing: matches() and replaceMatches() search (a match
 * anywhere, as in FHIRPath N1 used by R4; anchor with ^...$) in
 * single-line mode ('.' matches a newline), POSIX ERE after translating
 * \d \s \w and escapes; lazy quantifiers, look-around, back-references
 * and inline flags are refused. Dates compare per FHIRPath partial
 * precision (equal as far as both go but of different precision:
 * empty); a dateTime without a zone is taken as UTC. Decimals compare
 * exactly from their text; arithmetic on decimals uses doubles.
 * htmlChecks() is true: narrative XHTML is checked by the engine.
 */

enum fhirpath_bool { FHIRPATH_FALSE, FHIRPATH_TRUE, FHIRPATH_EMPTY };

/*
 * Type of member `member` (the JSON member name, e.g. "code" or, for a
 * choice element, "valueQuantity") of `parent`, whose FHIR type is
 * parent_type ("Observation", "CodeableConcept", may be NULL). Returns a
 * FHIR type name that stays valid as long as the rules do ("Quantity",
 * "string", "Patient"), or NULL when unknown: the evaluator then falls
 * back to resourceType and choice-suffix heuristics.
 */
typedef const char *(*fhirpath_type_fn)(void *arg, const struct fj_node *parent,
					const char *parent_type,
					const char *member);

/*
 * resolve(): find the resource a reference (a Reference.reference or a
 * canonical/uri string) points to. Set *out (and *out_type when the node
 * has no resourceType) or leave *out NULL when it cannot be found (the
 * item then yields nothing). Any other result aborts the evaluation.
 */
typedef enum gw_err (*fhirpath_resolve_fn)(void *arg, const char *reference,
					   const struct fj_node **out,
					   const char **out_type);

/*
 * memberOf(valueset): whether a code, Coding, CodeableConcept (node, of
 * FHIR type `type` when known) is in the value set. GW_INVALID when the
 * value set is not known (the invariant is then not evaluated).
 */
typedef enum gw_err (*fhirpath_member_of_fn)(void *arg,
					     const struct fj_node *node,
					     const char *type,
					     const char *valueset, bool *out);

/* The evaluation environment; zero-initialise and fill what is known. */
struct fhirpath_env {
	const struct fj_node *resource;	     /* %resource (may be NULL) */
	const char *resource_type;	     /* when it lacks resourceType */
	const struct fj_node *root_resource; /* %rootResource; NULL: same
						as resource */
	const char *root_resource_type;
	fhirpath_type_fn type_of;	 /* all callbacks optional */
	fhirpath_resolve_fn resolve;	 /* absent: resolve() is GW_INVALID */
	fhirpath_member_of_fn member_of; /* absent: memberOf() GW_INVALID */
	void *arg;			 /* passed to every callback */
	int64_t now;			 /* unix seconds for today()/now();
					   0: the wall clock */
	const struct fj_node *focus_ext; /* the focus's _x object when the
					    focus is a primitive; the focus node
					    may then be NULL (only extensions) */
	char *errbuf;			 /* optional: why the evaluation */
	size_t errlen;			 /* failed (GW_INVALID, GW_TOOBIG) */
};

/*
 * Compile expr. On success *out is the expression (free with
 * fhirpath_free). GW_PARSE on a syntax error; GW_INVALID when the
 * expression uses something outside the supported subset (a quantity
 * literal, conformsTo(), an unknown function or variable): errbuf then
 * names it. GW_TOOBIG when too long or nested too deep; GW_NOMEM.
 * errbuf may be NULL.
 */
enum gw_err fhirpath_compile(const char *expr, struct fhirpath **out,
			     char *errbuf, size_t errlen);

/* Free a compiled expression; NULL is a no-op. */
void fhirpath_free(struct fhirpath *fp);

/* The source text of a compiled expression (borrowed). */
const char *fhirpath_text(const struct fhirpath *fp);

/*
 * Evaluate fp with focus (an element or resource of the document, of FHIR
 * type focus_type, NULL when unknown; an array stands for its items) as
 * %context and $this, and convert
 * the result to a boolean as invariants are: empty -> FHIRPATH_EMPTY, one
 * boolean -> its value, one other item -> FHIRPATH_TRUE. GW_INVALID when
 * the result has several items or evaluation needs something not
 * available (a type that is unknown, resolve()/memberOf() without a
 * callback, an error per the FHIRPath rules such as single() on several
 * items); GW_TOOBIG past the limits; GW_NOMEM; or a callback's error.
 */
enum gw_err fhirpath_eval_bool(const struct fhirpath *fp,
			       const struct fj_node *focus,
			       const char *focus_type,
			       const struct fhirpath_env *env,
			       enum fhirpath_bool *out);

/* The result of a general evaluation. */
struct fhirpath_result;

enum fhirpath_kind {
	FHIRPATH_NODE,	  /* an element of the document */
	FHIRPATH_BOOLEAN, /* computed values: */
	FHIRPATH_INTEGER,
	FHIRPATH_DECIMAL, /* text holds the decimal as written */
	FHIRPATH_STRING,
	FHIRPATH_DATE, /* text holds the ISO 8601 form */
	FHIRPATH_DATETIME,
	FHIRPATH_TIME
};

/* One item of a result; pointers borrowed from the result, the document
 * and the compiled expression: valid while all three are. */
struct fhirpath_item {
	enum fhirpath_kind kind;
	const struct fj_node *node; /* FHIRPATH_NODE: the value, NULL when a
				       primitive has only its _x part */
	const struct fj_node *ext;  /* primitive's _x object, or NULL */
	const char *type;	    /* FHIR type when known, else NULL */
	bool b;
	int64_t i;
	const char *text; /* DECIMAL, STRING, DATE*, TIME (NUL-terminated) */
	size_t len;
};

/*
 * Evaluate fp like fhirpath_eval_bool but return the whole collection in
 * *out (caller frees with fhirpath_result_free; NULL on failure).
 */
enum gw_err fhirpath_eval(const struct fhirpath *fp,
			  const struct fj_node *focus, const char *focus_type,
			  const struct fhirpath_env *env,
			  struct fhirpath_result **out);

/* Number of items in r. */
size_t fhirpath_result_count(const struct fhirpath_result *r);

/* Item i of r (borrowed until r is freed), NULL past the end. */
const struct fhirpath_item *
fhirpath_result_item(const struct fhirpath_result *r, size_t i);

/*
 * Append a one-line text form of r to out, e.g. "[true]", "['a', 2,
 * 1.50, @2020-01]"; objects as canonical JSON. Errors from out.
 */
enum gw_err fhirpath_result_dump(const struct fhirpath_result *r,
				 struct buf *out);

/* Free a result; NULL is a no-op. */
void fhirpath_result_free(struct fhirpath_result *r);

#endif
