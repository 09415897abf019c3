/*
 * rules_impl: the private side of the rules module, shared by its files:
 * rules.c (the set: arena, interned strings, lookups), rules_src.c
 * (gathering sources, the compile driver), rules_sd.c (StructureDefinition
 * compilation), rules_snap.c (snapshot generation), rules_vs.c (code
 * systems, ValueSet expansion), rules_file.c (compiled rule files), and by
 * cli_schemas.c. Calls go one way: src -> sd, vs -> set; sd -> snap -> set;
 * snap reaches the compiler only through a struct rs_resolver.
 */
#ifndef GW_RULES_IMPL_H
#define GW_RULES_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "fjson.h"
#include "hmap.h"
#include "rules.h"

/* A code system as far as value set expansion needs it (compile time). */
struct rs_codesystem {
	const char *url;
	bool complete;		  /* content = complete */
	struct rules_code *codes; /* in definition order */
	int *parent;		  /* index of the parent concept or -1 */
	size_t ncodes;
};

/* A conformance resource waiting to be compiled. */
struct rs_pending {
	const struct fj_node *res; /* in one of set->srcdocs */
	const char *url;
	const char *file; /* for messages */
	int state;	  /* 0 new, 1 busy, 2 done, 3 failed */
	int pkg;
};

/* A known expansion of an is-a filter (from a source that ships it). */
struct rs_isa {
	const char *system, *code, *note;
	struct rules_code *codes;
	size_t ncodes;
};

struct rs_chunk;

struct rules_set {
	enum rules_fhir fhir;
	struct rs_chunk *chunks; /* arena for everything in the set */
	struct hmap strings;	 /* interned strings */
	struct fj_doc *doc;	 /* fixed/pattern values */

	struct rules_structure **st;
	int *st_pkg;
	size_t nst, capst;
	struct hmap st_url;

	struct rules_valueset **vs;
	int *vs_pkg;
	size_t nvs, capvs;
	struct hmap vs_url;

	struct rs_codesystem **cs;
	size_t ncs, capcs;
	struct hmap cs_url;

	const char **pkgs; /* package labels (interned) */
	size_t npkgs;
	int cur_pkg;

	char **bufs; /* rule file texts strings point into */
	size_t nbufs, capbufs;

	/* sources of one rules_add_path call */
	struct fj_doc **srcdocs;
	size_t nsrcdocs, capsrcdocs;
	struct rs_pending *psd, *pvs;
	size_t npsd, cappsd, npvs, cappvs;
	struct hmap psd_url, pvs_url;

	struct rs_isa *isa;
	size_t nisa;

	/* ImplementationGuide.global (type, profile), interned */
	struct rs_global {
		const char *type, *profile;
	} * globals;
	size_t nglobals, capglobals;

	unsigned nwarn; /* warnings while compiling */
	bool quiet;	/* no warnings on stderr */
};

/* Arena allocation, zeroed; NULL without memory. */
void *rs_alloc(struct rules_set *set, size_t size);
/* Interned copy of s (NULL stays NULL); NULL without memory. */
const char *rs_intern(struct rules_set *set, const char *s);
const char *rs_internn(struct rules_set *set, const char *s, size_t n);

/* Register a compiled structure/value set under the current package.
 * GW_EXISTS when its URL is already known (the first one stays). */
enum gw_err rs_add_structure(struct rules_set *set, struct rules_structure *st);
enum gw_err rs_add_valueset(struct rules_set *set, struct rules_valueset *vs);
/* Select the package label later additions belong to. */
enum gw_err rules_set_package(struct rules_set *set, const char *label);
/* Package label of structure/value set i (rules_structure_at order). */
const char *rs_structure_pkg(const struct rules_set *set, size_t i);
const struct rules_valueset *rs_valueset_at(const struct rules_set *set,
					    size_t i);
const char *rs_valueset_pkg(const struct rules_set *set, size_t i);

/* Make value set filters "concept is-a code" of system expand to codes
 * (copied), with note recorded as the expansion. */
enum gw_err rs_set_isa(struct rules_set *set, const char *system,
		       const char *code, const struct rules_code *codes,
		       size_t n, const char *note);

/* Interned string member key of obj; NULL when absent, not a string or
 * without memory. */
const char *rs_get_istr(struct rules_set *set, const struct fj_node *obj,
			const char *key);
/* Boolean member key of obj into *out; false (and *out unchanged) when
 * absent or not a boolean. */
bool rs_get_bool(const struct fj_node *obj, const char *key, bool *out);
/* Interned url without its "|version"; NULL for NULL or without memory. */
const char *rs_canon(struct rules_set *set, const char *url);
/* url without a "|version" suffix, copied into tmp (n bytes) when it has
 * one, else url itself (also when it does not fit). */
const char *rs_strip_version(const char *url, char *tmp, size_t n);
/* qsort order of expanded codes: (system, code, display). */
int rs_code_sort_cmp(const void *pa, const void *pb);

/* Report a compile warning (counted; printed unless set->quiet). */
void rs_warn(struct rules_set *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copy of member node n (with its key, e.g. "fixedCode") into the set's
 * document; NULL without memory. */
const struct fj_node *rs_copy_member(struct rules_set *set,
				     const struct fj_node *n);

/* Fields of a differential element that were given. */
#define RS_HAS_MIN	   0x1u
#define RS_HAS_MAX	   0x2u
#define RS_HAS_TYPE	   0x4u
#define RS_HAS_FIXED	   0x8u
#define RS_HAS_PATTERN	   0x10u
#define RS_HAS_BINDING	   0x20u
#define RS_HAS_SLICING	   0x40u
#define RS_HAS_CONSTRAINT  0x80u
#define RS_HAS_MODIFIER	   0x100u
#define RS_HAS_MUSTSUPPORT 0x200u
#define RS_HAS_CONTENTREF  0x400u
#define RS_HAS_SLICENAME   0x800u
#define RS_HAS_ID	   0x1000u
#define RS_HAS_MINVALUE	   0x2000u
#define RS_HAS_MAXVALUE	   0x4000u
#define RS_HAS_MAXLENGTH   0x8000u

/*
 * Read one ElementDefinition (JSON model, R4 or STU3 form) into *out, all
 * strings interned and values copied into the set. *has says which fields
 * were present. source is the URL of the defining structure (default for
 * constraint.source).
 */
enum gw_err rs_element_from_json(struct rules_set *set,
				 const struct fj_node *ed, const char *source,
				 struct rules_element *out, unsigned *has);

/*
 * How snapshot generation finds a structure it needs beyond its base (the
 * profile named on a type), without calling the compiler itself:
 * structure(arg, url) returns the compiled structure for url (compiling it
 * first if the caller can), or NULL when unknown.
 */
struct rs_resolver {
	const struct rules_structure *(*structure)(void *arg, const char *url);
	void *arg;
};

/*
 * Generate the snapshot of a differential-only structure: base is the
 * compiled base structure, diff the n differential elements with their
 * has masks; res finds profiled types. On success *out and *nout are the
 * new element array (arena).
 */
enum gw_err rs_snapshot(struct rules_set *set, const struct rs_resolver *res,
			const struct rules_structure *base,
			const struct rules_element *diff, const unsigned *has,
			size_t n, const char *url, struct rules_element **out,
			size_t *nout);

/* Free the sources of one rs_add_paths call (documents, pending). */
void rs_free_sources(struct rules_set *set);

/* Register a CodeSystem resource (first one per URL wins); compile time
 * only. GW_OK (also when skipped) or GW_NOMEM/GW_TOOBIG. */
enum gw_err rs_add_codesystem(struct rules_set *set, const struct fj_node *res);

/* Compile pending StructureDefinition / ValueSet idx (set->psd, set->pvs)
 * unless done; GW_OK, GW_NOMEM, or another error when it is skipped (a
 * warning says why). */
enum gw_err rs_compile_sd(struct rules_set *set, size_t idx);
enum gw_err rs_compile_vs(struct rules_set *set, size_t idx);

/* rules_add_path for several paths compiled together (sources may refer
 * to each other in any order). */
enum gw_err rs_add_paths(struct rules_set *set, const char *const *paths,
			 size_t n, char *errbuf, size_t errlen);

/* Write every structure and value set of package label to path in the
 * rule-file format (deterministic). */
enum gw_err rs_write_package(const struct rules_set *set, const char *label,
			     const char *path, size_t *nstruct, size_t *nvs);

/* Load one rule file text (takes ownership of text, freed with the set
 * even on failure). name is for messages. */
enum gw_err rs_load_text(struct rules_set *set, char *text, size_t len,
			 const char *name, char *errbuf, size_t errlen);

#endif
