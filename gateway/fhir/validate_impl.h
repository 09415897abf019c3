/*
 * validate_impl: the private side of the validator, shared by its files:
 * validate.c (the walk and the public API), validate_core.c (maps, element
 * trees, path and issues), and the rule families it calls: validate_prim.c
 * (primitive formats and limits), validate_datatype.c (XHTML, Attachment),
 * validate_binding.c (bindings, fixed, pattern), validate_ref.c
 * (references), validate_inv.c (invariants), validate_ext.c (extensions),
 * validate_slice.c (slicing) and validate_profile.c (profile detection,
 * Bundle rules). The rule files never call the walk, except through
 * vrun.conforms; none of them calls a file above it in that list.
 */
#ifndef GW_VALIDATE_IMPL_H
#define GW_VALIDATE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fhirpath.h"
#include "fjson.h"
#include "hmap.h"
#include "outcome.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

#define V_MAX_PATH   2048  /* longest expression kept */
#define V_MAX_DEPTH  96	   /* nesting of resources/elements walked */
#define V_MAX_ISSUES 10000 /* findings kept per document */
#define V_DESC_CACHE 4	   /* value set descriptions kept per run */
/* Elements between two looks at the clock: a clock_gettime costs about
 * as much as checking one element, so 256 keeps it under 1%, and 256
 * elements take well under a millisecond. */
#define V_DEADLINE_EVERY 256u
#define V_MAX_SET	 64 /* values one discriminator path may yield */
/* Entries of the FHIRPath member-type memo (validate_ctx.types_of) at
 * most: its keys may come from documents (about 1 MB at most). */
#define V_TYPES_OF_MAX 4096u

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
	/* cache: the invariants of el the walk evaluates (compiled once),
	 * and those of a datatype's root for an item of that type */
	struct vinv *inv;
	struct vinv *dtinv;
	/* cache: the elements whose minValue/maxValue/maxLength apply to a
	 * primitive value of type lim_ti here (v_check_limits) */
	const struct vtype *lim_ti;
	const struct rules_element *lim[3];
	unsigned char nlim;
	/* cache, for a slice: the definition at each of the first
	 * V_DISC_CACHE discriminator paths of its slicing (disc_done bit i
	 * set: disc_d[i] is known, NULL included) */
	const struct vnode *disc_d[4];
	unsigned char disc_done;
};
#define V_DISC_CACHE 4

/* The leading terms of an invariant that the walk can decide by looking
 * at the value's members (validate_inv.c): "a.exists() or b.empty() or
 * ..." and "a.exists() implies ...". The FHIRPath evaluator
 * short-circuits or/implies from the left, so a term decided here that
 * settles the expression gives its result; anything else goes to the
 * evaluator. */
#define V_PLAN_TERMS 6
enum vplan_kind { VP_NONE, VP_OR, VP_IMPLIES, VP_ENTRY_ALL };
struct vplan {
	enum vplan_kind kind;
	unsigned char nterms; /* terms of the or-chain (2 for implies) */
	unsigned char natoms; /* leading terms decided here */
	struct vatom {
		const char *name; /* a member name, in the expression */
		unsigned char len;
		bool empty; /* name.empty(), else name.exists() */
		/* "name.name2.exists()": a member of that member (len2 0:
		 * none) */
		const char *name2;
		unsigned char len2;
	} atom[V_PLAN_TERMS];
	/* implies: a right side "name.contains('lit').not()" (rlen 0:
	 * none) */
	const char *rname, *rlit;
	unsigned char rlen, rlitlen;
	/* VP_ENTRY_ALL (bdl-3, bdl-4): every entry has member `entry_member`
	 * exactly when the Bundle's type is one of entry_types */
	const char *entry_member;
	const char *const *entry_types;
};

/* Invariants of one element, compiled: those FHIRPath evaluates (not
 * the ones the walk checks natively). Built on first use, freed with
 * the element tree; fp is borrowed from validate_ctx.paths. */
struct vinv {
	const struct vtype *ti; /* dtinv: the datatype it is for */
	struct vinv *next;	/* dtinv: the next datatype's */
	size_t n;
	struct vinv_one {
		const struct rules_constraint *c;
		struct fhirpath *fp; /* NULL: does not compile */
		bool contained_only; /* holds on a resource without
					contained (dom-2..dom-5) */
		struct vplan plan;
		/* the finding's message, written at its first finding
		 * (owned; NULL until then) */
		char *msg;
		size_t msglen;
	} e[];
};

/* A structure's element tree. */
struct vstruct {
	const struct rules_structure *sd;
	struct vnode *nodes;
	struct vnode *root;
};

enum vkind { VK_PRIM, VK_COMPLEX, VK_RESOURCE, VK_UNKNOWN };

enum vjson { VJ_STRING, VJ_BOOL, VJ_NUMBER };

/* What the walk asks of a type by name, answered once per type (the
 * string compares it replaces ran at every element). */
#define VT_EXTENSION  0x1u  /* Extension */
#define VT_REFERENCE  0x2u  /* Reference */
#define VT_ATTACHMENT 0x4u  /* Attachment */
#define VT_CODING     0x8u  /* Coding */
#define VT_XHTML      0x10u /* xhtml */
#define VT_BACKBONE   0x20u /* BackboneElement or Element */
#define VT_QUANTITY   0x40u /* v_is_quantity_type */
#define VT_URI	      0x80u /* uri or url (example URLs are looked for) */

struct vtype {
	enum vkind kind;
	const struct vstruct *vs; /* the type's base structure, or NULL */
	const char *name;
	enum vjson json; /* primitives: the JSON type of the value */
	unsigned flags;	 /* VT_* */
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

/* The maps (hmap.h) keyed by pointer are HMAP_PTR, those keyed by string
 * HMAP_STR_OWN (keys copied): validate_ctx_new, each run and
 * v_bundle_build set the kinds. */
struct validate_ctx {
	const struct rules_set *set;
	struct hmap structs;  /* rules_structure -> vstruct */
	struct hmap types;    /* type name -> vtype */
	struct hmap paths;    /* constraint expression -> fhirpath (or a
				marker for expressions that do not compile) */
	struct hmap vsets;    /* binding URL (interned) -> value set, or a
				marker when unknown */
	struct hmap vcodes;   /* value set -> vcodes */
	struct hmap rule_sd;  /* URL string of the rules set (by pointer) ->
				its structure, or a marker when unknown */
	struct hmap types_of; /* "parent type\x1fmember" -> the member's
				 type for FHIRPath, or a marker */
	char **detect;	      /* URL prefixes of the profiles detection may
				choose */
	size_t ndetect;
	struct hmap cands; /* resource type -> vcands, built on first use */
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
	 * "Type/id" -> entry index + 1 (the first entry that has it);
	 * by_ver: fullUrl "\n" meta.versionId of fullUrls that repeat
	 * (bdl-7), filled only when one does. */
	struct hmap by_url, by_tid, by_ver;
};

struct vissue {
	const char *sev, *code;
	char *expr; /* owned: one block, the expression then the message */
	char *msg;  /* in expr's block */
	/* 32-bit lengths (a path is at most V_MAX_PATH, a message 767
	 * bytes): 16 issues take less than 1 KB, below the allocator's
	 * large requests, which consolidate its free lists (a run of a
	 * small resource paid for that) */
	uint32_t exprlen;
	uint32_t keylen; /* the message's bytes in the dedupe key (no note) */
	uint32_t hash;	 /* of the dedupe key (v_issue_text) */
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

struct vrun;

/* Whether resource res conforms to structure sd (memoised, in a scratch
 * run of the walk). */
typedef bool (*v_conforms_fn)(struct vrun *r, const struct fj_node *res,
			      const struct rules_structure *sd);
/* Whether resource res passes the profiles it chooses itself (its type,
 * meta.profile, global, detected). */
typedef bool (*v_own_ok_fn)(struct vrun *r, const struct fj_node *res);

/* One validation run over one document (or a scratch conformance check). */
struct vrun {
	struct validate_ctx *ctx;
	size_t plen;
	bool overflow;
	struct vissue *issues;
	size_t nissues, capissues;
	/* dedupe table of the kept issues: open addressing, index + 1 into
	 * issues (0: free), capdedup a power of two, at most half full */
	uint32_t *dedup;
	size_t capdedup;
	/* the last value set descriptions of binding findings (owned) */
	struct vdesc {
		const struct rules_valueset *vs;
		enum rules_strength strength;
		char *text;
	} desc[V_DESC_CACHE];
	size_t ndesc;
	struct hmap noteval; /* invariant keys reported as not evaluated */
	bool scratch;	     /* count errors only */
	bool quiet;	     /* record errors only (quiet_when_valid) */
	size_t nerrors;
	struct vbundle *bundle;
	const struct fj_node *resource; /* innermost resource */
	const char *resource_type;
	const struct fj_node *root;
	const struct rules_structure *cur_sd; /* profile being checked */
	int depth;
	struct vconf *conf; /* shared with scratch runs */
	size_t *nconf, *capconf;
	/* Speculation (the main run only): "resource res conforms to
	 * profile sd" taken as true, without a scratch walk, when res
	 * claims sd in its meta.profile; its own walk (which checks it
	 * against sd) then usually proves it. Each guess is checked when
	 * the Bundle it was made in is done (bundle: that Bundle, NULL
	 * outside one); a wrong one sets guess_wrong, and the document is
	 * walked again without guessing, so the findings are those of a
	 * walk that asked every question. */
	bool speculate;
	bool guess_wrong;
	struct vguess {
		const struct fj_node *res;
		const struct rules_structure *sd;
		const struct vbundle *bundle;
	} * guesses;
	size_t nguesses, capguesses;
	/* Set when out of memory, and when the deadline passed: the flag
	 * every loop of the walk checks to stop. */
	bool nomem;
	bool late; /* the deadline passed (nomem is set too) */
	/* A scratch run stops at its first error (nomem is set too): its
	 * one question, "no error?", is then answered. */
	bool halted;
	bool allow_examples; /* validate_opts.allow_example_urls */
	uint64_t deadline;   /* util_mono_ms(); 0: none */
	unsigned ticks;	     /* elements since the clock was last read */
	size_t nsegs;	     /* may exceed V_MAX_SEGS (not kept) */
	const char *ext_url; /* innermost enclosing extension's url */
	/* The walk's "resource conforms to structure" check: references and
	 * slicing sit below the walk and reach it only through this. */
	v_conforms_fn conforms;
	v_own_ok_fn own_ok;
	/* The large arrays last: a new run zeroes the fields before them
	 * only (v_run_init); path[plen] ends the path, segs below nsegs are
	 * the walk's. */
	char path[V_MAX_PATH];
	struct vseg segs[V_MAX_SEGS]; /* the walk, for extension contexts */
};

/* Make *r an empty run: every field zero, the path empty (the arrays'
 * unused parts are left as they are: 8 KB a scratch run need not
 * clear). */
static inline void
v_run_init(struct vrun *r)
{
	memset(r, 0, offsetof(struct vrun, path));
	r->path[0] = '\0';
}

struct vitem {
	const struct fj_node *v, *u;
	const struct vnode *def;
	int slice; /* index into the owner's slices, -1 none */
	size_t index;
};

/* ---- validate_core.c ---- */

/* Entry index + 1 of key in m (a Bundle index), 0 when absent. */
size_t v_idx_get(const struct hmap *m, const char *key);

/* The element tree of sd, built once per context; NULL for NULL or
 * without memory. */
const struct vstruct *v_vstruct_get(struct validate_ctx *ctx,
				    const struct rules_structure *sd);
void v_vstruct_free(struct vstruct *vs);
/* rules_structure for a URL that is a string of the rules set (a type's
 * profile or target profile, which live as long as the context), cached
 * by its pointer; never for a document's strings. */
const struct rules_structure *v_rule_structure(struct validate_ctx *ctx,
					       const char *url);
/* The type called name (cached in the context); NULL without memory. */
const struct vtype *v_vtype_get(struct validate_ctx *ctx, const char *name);
bool v_is_prim_name(const char *t);
bool v_is_quantity_type(const char *t);
/* Free an element's compiled invariants (a list); NULL is a no-op. */
void v_vinv_free(struct vinv *inv);

/* The expression path: each push returns the length to pop back to. */
size_t v_path_push(struct vrun *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t v_path_add(struct vrun *r, const char *sep, const char *name, size_t n);
size_t v_path_index(struct vrun *r, size_t i);
/* Record a finding at the current path (once per code, path, message). */
void v_issue(struct vrun *r, const char *sev, const char *code,
	     const struct fj_node *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same with a ready message of mlen bytes (no NUL among them; at
 * most 767 are kept, as v_issue keeps of a formatted one). */
void v_issue_text(struct vrun *r, const char *sev, const char *code,
		  const struct fj_node *at, const char *msg, size_t mlen);
/* Cardinality finding reported at the parent element. */
void v_issue_card(struct vrun *r, size_t parent_len, const struct fj_node *at,
		  const char *what, bool is_max, unsigned limit, size_t found);
void v_run_cleanup(struct vrun *r);

const char *v_jtype_name(const struct fj_node *n);
bool v_fj_contains_v(const struct fj_node *inst, const struct fj_node *pat);
void v_short_json(const struct fj_node *n, char *out, size_t len);
const char *v_sd_label(const struct rules_structure *sd);

/* Definition trees: the kid of a member name, a choice's type slice. */
const struct vnode *v_find_kid(struct vnode *const *kids, size_t nkids,
			       const char *name, const char **type);
const struct vnode *v_choice_slice(const struct vnode *d, const char *type);

/* Small helpers of the hot path, inline in every file. */

static inline void
v_path_pop(struct vrun *r, size_t old)
{
	r->plen = old;
	r->path[old] = '\0';
}

/* Count one element; true when the walk must stop (out of memory, or
 * past the deadline, read every V_DEADLINE_EVERY elements). */
static inline bool
v_run_stopped(struct vrun *r)
{
	if (r->deadline != 0 && !r->late && ++r->ticks >= V_DEADLINE_EVERY) {
		r->ticks = 0;
		if (util_mono_ms() >= r->deadline)
			r->late = r->nomem = true;
	}
	return r->nomem;
}

/* Whether a finding of severity sev would be kept by v_issue: a scratch
 * run counts errors only, a quiet one records errors only. Callers skip
 * writing the message of a finding that is not kept. */
static inline bool
v_keeps(const struct vrun *r, const char *sev)
{
	return (!r->scratch && !r->quiet) || strcmp(sev, FHIR_ERROR) == 0 ||
	       strcmp(sev, FHIR_FATAL) == 0;
}

/* Children definitions of element d, following contentReference. */
static inline const struct vnode *
v_kids_of(const struct vnode *d)
{
	int guard = 0;

	while (d != NULL && d->nkids == 0 && d->ref != NULL && guard++ < 8)
		d = d->ref;
	return d;
}

static inline bool
v_is_array_el(const struct rules_element *el)
{
	uint32_t m = el->base_max != 0 ? el->base_max : el->max;

	return m > 1;
}

/* ---- validate_prim.c ---- */

bool v_is_ws(char c);
bool v_only_whitespace(const char *s, size_t len);
/* NULL when s is valid base64 (whitespace allowed), else a reason. */
const char *v_check_base64(const char *s, size_t len);
/* minValue/maxValue/maxLength of a lexically valid primitive value. */
void v_check_limits(struct vrun *r, const struct vnode *d,
		    const struct vtype *ti, const char *type,
		    const struct fj_node *v);
void v_check_quantity_limits(struct vrun *r, const struct rules_element *el,
			     const struct fj_node *v);

/* ---- validate_datatype.c ---- */

/* validate_prim.c: "; expected <form>, e.g. <example>" for the date and
 * time types (a static string), "" for the others. */
const char *v_expected_form(const char *type);

void v_check_xhtml(struct vrun *r, const struct fj_node *v);
void v_check_attachment(struct vrun *r, const struct fj_node *v);
/* validate_url.c: example.org / example.com URLs outside examples */
void v_check_example_url(struct vrun *r, const struct rules_element *el,
			 const char *type, const struct fj_node *v);
void v_check_example_ref(struct vrun *r, const struct fj_node *ref);

/* ---- validate_binding.c ---- */

bool v_vs_has_code_ctx(struct validate_ctx *ctx,
		       const struct rules_valueset *vs, const char *code);
#define vs_has_code(vs, code) v_vs_has_code_ctx(r->ctx, (vs), (code))
void v_check_binding(struct vrun *r, const struct rules_element *el,
		     const char *type, const struct fj_node *v);
void v_check_fixed(struct vrun *r, const struct rules_element *el,
		   const struct fj_node *v);

/* ---- validate_ref.c ---- */

/* The resource type a target profile or type URL names (*sd: its
 * structure, when known). */
const char *v_url_type(struct validate_ctx *ctx, const char *url,
		       const struct rules_structure **sd);
const struct fj_node *v_find_contained(const struct fj_node *res,
				       const char *id);
const struct fj_node *v_resolve_ref(const struct vrun *r, const char *ref);
void v_check_reference(struct vrun *r, const struct rules_element *el,
		       const struct fj_node *v);

/* ---- validate_inv.c ---- */

extern char v_fp_bad; /* ctx->paths marker: expression does not compile */
enum gw_err v_fp_member_of(void *arg, const struct fj_node *node,
			   const char *type, const char *valueset, bool *out);
/* The plan of invariant expression e (kind VP_NONE: none). */
void v_plan_build(const char *e, struct vplan *p);
/* Plan p on object v (resource: %resource, the resource v is in): TRUE or
 * FALSE, exactly what the evaluator gives, or FHIRPATH_EMPTY when the
 * evaluator must decide. */
enum fhirpath_bool v_plan_eval(const struct vplan *p, const struct fj_node *v,
			       const struct fj_node *resource);
/* The invariants of d's element on value v of type type. */
void v_check_constraints(struct vrun *r, const struct vnode *d,
			 const struct fj_node *v, const char *type);
/* A datatype's own invariants (those of ti's root element that d's
 * element does not carry itself) on value v. */
void v_check_type_constraints(struct vrun *r, const struct vnode *d,
			      const struct vtype *ti, const struct fj_node *v,
			      const char *type);

/* ---- validate_ext.c ---- */

const struct vstruct *v_extension_struct(struct vrun *r, const struct vnode *d,
					 const struct fj_node *v,
					 bool *unknown);
const struct vstruct *
v_type_profile_struct(struct vrun *r, const struct vnode *d, const char *type);
/* Push one step of the walk (pop with r->nsegs--). */
void v_seg_push(struct vrun *r, const char *name, size_t len, const char *type,
		bool boundary);
void v_check_ext_context(struct vrun *r, const struct rules_structure *sd,
			 const struct fj_node *v, const char *url);

/* ---- validate_slice.c ---- */

bool v_slice_matches(struct vrun *r, const struct vnode *k,
		     const struct vnode *s, const struct vitem *it,
		     const char *itype);
void v_assign_slices(struct vrun *r, const struct vstruct *vs,
		     const struct vnode *k, struct vitem *items, size_t n,
		     const char *type, size_t parent_len);

/* ---- validate_profile.c ---- */

void v_cands_free(struct validate_ctx *ctx);
const struct rules_structure *
v_detect_profile(struct vrun *r, const struct fj_node *res, const char *rt);
bool v_bundle_build(struct vrun *r, const struct fj_node *res,
		    struct vbundle *b);
void v_bundle_cleanup(struct vbundle *b);

#endif
