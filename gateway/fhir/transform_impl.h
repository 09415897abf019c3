/*
 * transform internals shared by transform.c (the driver: Bundle walk,
 * dispatch per resource type, canonical URLs, the rules every resource
 * shares, xf_url), transform_help.c (the other helpers below: the rule
 * files call only those, so they do not depend on the driver that
 * reads their tables), transform_consent.c (TreatmentDirective,
 * AdvanceDirective), transform_zib.c (Patient, RelatedPerson,
 * Practitioner, PractitionerRole, Observation), transform_care.c
 * (Encounter, Procedure, Goal, Communication, CommunicationRequest,
 * Device, DeviceUseStatement, QuestionnaireResponse and the rest) and
 * transform_norm.c (xf_normalise).
 *
 * A per-type rule receives the resource object after the driver has
 * applied the shared rules (meta.profile and extension URLs through the
 * xf_url_map tables, R4 encounter <-> STU3 context, R4-only
 * Reference.type removed) and changes it in place for c->to.
 */
#ifndef GW_TRANSFORM_IMPL_H
#define GW_TRANSFORM_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "transform.h"

/* Longest FHIRPath the report names. */
#define XF_PATH_MAX 512

/* The NullFlavor code system (zib2017 and zib2020 alike). */
#define XF_NULLFLAVOR_SYSTEM "http://hl7.org/fhir/v3/NullFlavor"
#define XF_DAR_URL	     "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
/* zib2017's extension that keeps a PractitionerRole reference beside the
 * Practitioner reference STU3 elements can hold. */
#define XF_ROLE_REF_URL                                                        \
	"http://nictiz.nl/fhir/StructureDefinition/practitionerrole-reference"

/* One Bundle entry as xf_resolve looks at it (built once per xf_convert:
 * the conversion changes no entry's fullUrl, resourceType or id). */
struct xf_entry {
	const char *full; /* entry.fullUrl, or NULL */
	const char *type; /* resource.resourceType, or NULL */
	const char *id;	  /* resource.id, or NULL */
	size_t type_len;
	struct fj_node *res; /* entry.resource (an object) */
};

struct xf_ctx {
	struct fj_doc *doc;
	enum rules_fhir from, to;
	json_t *report;		/* may be NULL */
	struct fj_node *bundle; /* the root Bundle, or NULL */
	/* bundle's entries with a resource, in order (owned; NULL: xf_resolve
	   walks the Bundle itself) */
	struct xf_entry *ents;
	size_t nents;
	/* FHIRPath of the resource being converted in the SOURCE
	   ("Consent", "Bundle.entry[2].resource"). */
	char path[XF_PATH_MAX];
};

/* One canonical URL pair: the R4 URL and the STU3 URL of the same
 * profile or extension. Tables end with a {NULL, NULL} row. Several R4
 * URLs may map to one STU3 URL (the R4 snapshot and the later
 * api.iknl.nl canonicals): the first row for a URL wins when mapping
 * back. */
struct xf_url_map {
	const char *r4;
	const char *stu3;
};

/* A per-type rule: converts res (a resourceType object) from c->from to
 * c->to in place. GW_OK, GW_REJECT (reported with xf_refuse) or
 * GW_NOMEM. */
typedef enum gw_err (*xf_rule_fn)(struct xf_ctx *c, struct fj_node *res);

struct xf_type {
	const char *type; /* resourceType (the same in both versions) */
	xf_rule_fn rule;
};

/* The tables each file owns (NULL-terminated); the driver consults them
 * in this order. */
extern const struct xf_url_map xf_urls_core[];	  /* transform.c */
extern const struct xf_url_map xf_urls_consent[]; /* transform_consent.c */
extern const struct xf_url_map xf_urls_zib[];	  /* transform_zib.c */
extern const struct xf_url_map xf_urls_care[];	  /* transform_care.c */
extern const struct xf_type xf_types_consent[];
extern const struct xf_type xf_types_zib[];
extern const struct xf_type xf_types_care[];

/* The URL u maps to in c->to (u itself when no table names it). For the
 * driver (transform.c): extension and meta.profile URLs are already
 * mapped when a per-type rule runs. */
const char *xf_url(const struct xf_ctx *c, const char *u);

/* Report a loss or a filled default at c->path + "." + rel (rel may be
 * NULL: the resource itself). GW_OK or GW_NOMEM. */
enum gw_err xf_loss(struct xf_ctx *c, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Report a normalisation change (severity information). */
enum gw_err xf_note(struct xf_ctx *c, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Report a refusal (severity error); returns GW_REJECT (GW_NOMEM when
 * the report could not grow). */
enum gw_err xf_refuse(struct xf_ctx *c, const char *rel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Unlink element n from array arr (n stays in the document). */
void xf_arr_remove(struct fj_node *arr, struct fj_node *n);

/* Rename member from to to in obj (keeps its position); false when obj
 * has no member from. */
bool xf_rename(struct fj_node *obj, const char *from, const char *to);
/* The extension of obj (in "extension", or "modifierExtension" when
 * modifier) whose url is url, or NULL. */
struct fj_node *xf_ext_find(const struct fj_node *obj, const char *url,
			    bool modifier);
/* Remove that extension from obj (and the array when it becomes
 * empty); returns it (still in the document) or NULL. */
struct fj_node *xf_ext_take(struct fj_node *obj, const char *url,
			    bool modifier);
/* Append {url, value<key>: val} to obj's extension (or modifierExtension)
 * array, making the array when missing; val is a fresh node. */
enum gw_err xf_ext_add(struct xf_ctx *c, struct fj_node *obj, const char *url,
		       bool modifier, const char *valuekey,
		       struct fj_node *val);
/* A new Coding {system, code, display (NULL: none)} in c->doc. */
struct fj_node *xf_coding(struct xf_ctx *c, const char *system,
			  const char *code, const char *display);
/* A new data-absent-reason extension object with code. */
struct fj_node *xf_dar(struct xf_ctx *c, const char *code);

/* The resource a reference string points at inside the Bundle (by
 * fullUrl, or "Type/id" against each entry's resource), or NULL. */
struct fj_node *xf_resolve(const struct xf_ctx *c, const char *reference);
/* Fill c->ents/nents from c->bundle's entries for xf_resolve (each
 * reference resolved would otherwise look up four members of every
 * entry); the caller frees c->ents. GW_NOMEM. */
enum gw_err xf_entries_take(struct xf_ctx *c);

/*
 * PractitionerRole references, shared by Consent, Encounter and the
 * other rules that meet them. R4 -> STU3: a Reference to a
 * PractitionerRole becomes a Reference to that role's Practitioner
 * with the zib practitionerrole-reference extension carrying the
 * original reference; STU3 -> R4: the reverse (the extension's
 * reference wins). ref is the Reference object; rel its path below
 * the resource for the report.
 */
enum gw_err xf_role_ref(struct xf_ctx *c, struct fj_node *ref, const char *rel);

/* ---- helpers the rule files share (transform_help.c) ---- */

#define XF_SNOMED "http://snomed.info/sct"

/* A member of a resource type that only one version has: left out
 * (and reported) when converting from that version. Tables end with a
 * NULL type. */
struct xf_only_in {
	const char *type; /* resourceType */
	const char *key;  /* member name */
	enum rules_fhir in;
};

/* Leave out (reported) every member of res (of type) that table says
 * only c->from has. */
enum gw_err xf_drop_only(struct xf_ctx *c, struct fj_node *res,
			 const struct xf_only_in *table, const char *type);
/* obj[key] = a new string s. */
enum gw_err xf_set_str(struct xf_ctx *c, struct fj_node *obj, const char *key,
		       const char *s);
/* True when res claims profile url in meta.profile. */
bool xf_has_profile(const struct fj_node *res, const char *url);
/*
 * True when res is of the PZP profile url (mapped to c->to): it claims
 * it, or it claims no profile and its element elem (a CodeableConcept)
 * has the profile's SNOMED code, as the validator's detection finds it
 * (code NULL: any resource of the type without a profile).
 */
bool xf_is_profile(const struct fj_node *res, const char *url, const char *elem,
		   const char *code);
/* xf_role_ref on obj[key], a Reference or an array of them; prefix is
 * obj's path below the resource ("" or "participant[0]."). */
enum gw_err xf_role_refs(struct xf_ctx *c, struct fj_node *obj, const char *key,
			 const char *prefix);
/* The resource type Reference ref points at into out (n bytes): the
 * resolved Bundle entry's, else the type segment of "Type/id" (also at
 * the end of an absolute URL); "" when unknown. */
void xf_ref_type(const struct xf_ctx *c, const struct fj_node *ref, char *out,
		 size_t n);

#endif
