/*
 * rules: the in-memory form of compiled validation rules (StructureDefinition
 * snapshots reduced to facts, and value sets reduced to their codes), and
 * loading them from the compiled rule files in schemas/ or from FHIR
 * conformance resources (JSON or XML) given at run time.
 *
 * Everything reachable from a struct rules_set is owned by it and freed by
 * rules_set_free; lookups return borrowed pointers valid until then.
 */
#ifndef GW_RULES_H
#define GW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "fjson.h"

#define RULES_UNBOUNDED UINT32_MAX

enum rules_fhir { RULES_R4, RULES_STU3 };

enum rules_strength {
	RULES_BIND_NONE,
	RULES_BIND_REQUIRED,
	RULES_BIND_EXTENSIBLE,
	RULES_BIND_PREFERRED,
	RULES_BIND_EXAMPLE
};

enum rules_disc {
	RULES_DISC_VALUE,
	RULES_DISC_PATTERN,
	RULES_DISC_TYPE,
	RULES_DISC_PROFILE,
	RULES_DISC_EXISTS
};

enum rules_slice_rules {
	RULES_SLICE_OPEN,
	RULES_SLICE_CLOSED,
	RULES_SLICE_OPEN_AT_END
};

/* One allowed type of an element (ElementDefinition.type). */
struct rules_type {
	const char *code;      /* "string", "CodeableConcept", "Reference",
				     "Resource", a resource type, ... */
	const char **profiles; /* type profiles (e.g. extension URLs) */
	size_t nprofiles;
	const char **targets; /* targetProfile for Reference/canonical */
	size_t ntargets;
};

struct rules_discriminator {
	enum rules_disc type;
	const char *path; /* FHIRPath relative to the sliced element */
};

struct rules_slicing {
	struct rules_discriminator *disc;
	size_t ndisc;
	bool ordered;
	enum rules_slice_rules rules;
};

/* An invariant (ElementDefinition.constraint). */
struct rules_constraint {
	const char *key;	/* "ele-1", "pzp-1" */
	bool error;		/* severity error (else warning) */
	const char *human;	/* the short statement of the rule */
	const char *expression; /* FHIRPath */
	const char *source;	/* URL of the defining structure */
};

/*
 * One element of a snapshot, in snapshot order (slices follow the sliced
 * element's children). Paths always use the [x] form of choice elements:
 * a choice constrained to one type is, in R4, narrowed and type-sliced
 * ("Observation.value[x]:valueQuantity", discriminator type $this, as the
 * HL7 generator does), in STU3 narrowed in place ("Observation.value[x]"
 * with the one type).
 */
struct rules_element {
	const char *id;		/* "Consent.extension:comment.value[x]" */
	const char *path;	/* "Consent.extension.value[x]" */
	const char *slice_name; /* set when this element starts a slice */
	uint32_t min;
	uint32_t max;	   /* RULES_UNBOUNDED for "*" */
	uint32_t base_max; /* max in the base resource/type: > 1 means
				   the JSON form is an array */
	struct rules_type *types;
	size_t ntypes;
	const char *content_ref; /* contentReference without '#', or NULL */
	/* fixed[x] / pattern[x] or NULL: the member node, whose key says
	 * the type ("fixedUri", "patternCodeableConcept") */
	const struct fj_node *fixed;
	const struct fj_node *pattern;
	enum rules_strength strength;
	const char *valueset; /* binding.valueSet (canonical, no |ver) */
	struct rules_slicing *slicing; /* NULL when not sliced here */
	struct rules_constraint *constraints;
	size_t nconstraints;
	bool is_modifier;
	bool must_support;
	/* minValue[x] / maxValue[x] member nodes or NULL; max_length 0 when
	 * not set */
	const struct fj_node *min_value;
	const struct fj_node *max_value;
	uint32_t max_length;
};

/* Where an extension may be used (StructureDefinition.context; STU3
 * contextType resource/datatype become ELEMENT). */
enum rules_ctx_type {
	RULES_CTX_ELEMENT,   /* expr: an element path or type, "Patient",
				"Consent.provision", "Element" */
	RULES_CTX_EXTENSION, /* expr: the URL of the enclosing extension */
	RULES_CTX_FHIRPATH   /* expr: a FHIRPath expression (not checked) */
};

struct rules_context {
	enum rules_ctx_type type;
	const char *expr;
};

/* The expression of the one element context of an extension whose
 * contexts are all for other FHIR versions (version-specific use): it
 * matches no element. */
#define RULES_CTX_NONE_HERE "(none in this FHIR version)"

/* A compiled StructureDefinition with its full snapshot. */
struct rules_structure {
	const char *url;
	const char *version;
	const char *name;
	const char *type; /* the constrained type, "Consent" */
	const char *kind; /* "resource", "complex-type",
				   "primitive-type", "logical" */
	const char *base; /* baseDefinition URL, NULL for Base */
	bool abstract;
	bool constraint; /* derivation = constraint (a profile) */
	enum rules_fhir fhir;
	struct rules_element *elements;
	size_t nelements;
	/* extensions: the contexts they may be used in (none: anywhere) */
	struct rules_context *contexts;
	size_t ncontexts;
};

/* One code of a value set. */
struct rules_code {
	const char *system;
	const char *code;
	const char *display; /* may be NULL */
};

struct rules_valueset {
	const char *url;
	const char *version;
	const char *title; /* title, else name; NULL when neither (or from
			      a rule file written before titles were kept) */
	struct rules_code *codes; /* sorted by (system, code) */
	size_t ncodes;
	bool complete;	       /* false when the expansion could not be
				   made (e.g. a filter on a code system that
				   is not available): no membership check */
	const char *expansion; /* note on how/when it was expanded */
};

struct rules_set;

/* A new empty set for one FHIR version (caller frees). */
struct rules_set *rules_set_new(enum rules_fhir fhir);
/* Free the set and everything in it; NULL is a no-op. */
void rules_set_free(struct rules_set *set);

/*
 * Load compiled rule files from dir (schemas/) into set. Errors are
 * written to errbuf. Returns GW_OK, GW_NOTFOUND, GW_PARSE, GW_NOMEM.
 */
enum gw_err rules_load_dir(struct rules_set *set, const char *dir, char *errbuf,
			   size_t errlen);

/*
 * Add FHIR conformance resources from path (a JSON or XML file, a Bundle
 * of them, or a directory of such files): StructureDefinitions (snapshots
 * generated from differentials along the base chain when missing),
 * ValueSets, CodeSystems (used to expand value sets) and the global
 * profiles of ImplementationGuides (rules_global_profile). Bases may be in
 * the set already or anywhere under path. A URL already in the set keeps
 * its first definition. In a directory (searched 4 levels deep, *.json
 * and *.xml, name order) files that are not FHIR are passed over; a
 * single file that does not parse is GW_PARSE. Returns as rules_load_dir.
 */
enum gw_err rules_add_path(struct rules_set *set, const char *path,
			   char *errbuf, size_t errlen);

/* Lookups; NULL when unknown. url may carry a "|version" suffix. */
const struct rules_structure *rules_structure(const struct rules_set *set,
					      const char *url);
/* The base definition of a type or resource ("Consent", "string"). */
const struct rules_structure *rules_type(const struct rules_set *set,
					 const char *type);
const struct rules_valueset *rules_valueset(const struct rules_set *set,
					    const char *url);
/* Iterate over every structure: i from 0 until NULL. */
const struct rules_structure *rules_structure_at(const struct rules_set *set,
						 size_t i);
enum rules_fhir rules_set_fhir(const struct rules_set *set);

/*
 * The profiles an ImplementationGuide loaded with rules_add_path declares
 * global for resource type `type` (ImplementationGuide.global): the i-th
 * one, i from 0 until NULL. Borrowed from the set.
 */
const char *rules_global_profile(const struct rules_set *set, const char *type,
				 size_t i);

/* True when url (an optional "|version" suffix is ignored) names a loaded
 * StructureDefinition, ValueSet or CodeSystem. */
bool rules_known_url(const struct rules_set *set, const char *url);

/* True when (system, code) is in vs. */
bool rules_valueset_has(const struct rules_valueset *vs, const char *system,
			const char *code);

#endif
