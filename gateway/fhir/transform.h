/*
 * transform: PZP care plans between FHIR STU3 (zib2017, IKNL PZP STU3)
 * and R4 (zib2020/nl-core, IKNL PZP R4), both ways, for every PZP
 * profile, plus the normalisation applied on intake.
 *
 * The conversion works in place on an fjson document: new nodes are
 * made in the document's arena, replaced ones are simply unlinked (the
 * arena frees everything at fj_doc_free). It is deterministic: the same
 * input gives the same output bytes (no clock, no random numbers, member
 * order fixed by the rules), so a converted care plan can be signed and
 * compared.
 *
 * Nothing is dropped silently. Whatever the target version cannot hold
 * is marked the way the target allows (data-absent-reason, a NullFlavor,
 * or an extension the project documents) and listed in the report; a
 * required target element that has no source is filled only with a
 * documented, conformant default, and that is reported too.
 *
 * The report is an OperationOutcome (outcome.h) the caller owns; issues
 * are appended to it:
 *   - a loss or a filled default: severity "warning", code
 *     "informational", expression the SOURCE element's FHIRPath
 *     (e.g. "Bundle.entry[3].resource.scope"), diagnostics saying what
 *     happened and how the output marks it;
 *   - a normalisation change: severity "information", code
 *     "informational", expression the changed element;
 *   - a refusal (GW_REJECT): severity "error", code "not-supported" or
 *     "structure", naming the element that cannot be converted.
 */
#ifndef GW_TRANSFORM_H
#define GW_TRANSFORM_H

#include <jansson.h>

#include "err.h"
#include "fjson.h"
#include "rules.h"

/* The refusal of a conversion: permanent, the input breaks no rule of its
 * own version but cannot be carried to the other (err.h has no separate
 * value for it). */
#define GW_REJECT GW_INVALID

/*
 * Convert the resource or Bundle at doc->root from version `from` to
 * version `to` (enum rules_fhir: RULES_R4, RULES_STU3). Bundle entries
 * (and contained resources) are converted one by one; references inside
 * the Bundle keep pointing at the same entries. A resource type the
 * standard does not profile is converted by the generic rules (canonical
 * URLs, renamed elements of core FHIR) and, where even that is not
 * possible, refused.
 *
 * report may be NULL (nothing is recorded). Returns GW_OK (converted;
 * the report may list losses), GW_REJECT (not convertible: not a FHIR
 * resource, or an element with no possible mapping; doc may be partly
 * converted and must be discarded; an error issue is in the report) or
 * GW_NOMEM. from == to is GW_OK and changes nothing.
 */
enum gw_err xf_convert(struct fj_doc *doc, enum rules_fhir from,
		       enum rules_fhir to, json_t *report);

/* Options of xf_normalise. */
struct xf_norm_opts {
	/* The PZP profile canonical to set in meta.profile of the root
	   resource (the one the validator detected), or NULL to leave
	   meta.profile alone. */
	const char *root_profile;
	/* Make missing Bundle.identifier / Bundle.timestamp (a message
	   Bundle needs both). The timestamp is now_unix in UTC. */
	bool bundle_id;
	long long now_unix;
};

/*
 * Normalise a document of version v on intake: Bundle entries without a
 * fullUrl get a "urn:uuid:" one (libuuid) and relative references to
 * them ("Type/id") are rewritten to it; meta.profile of the root is set
 * per opts; the Bundle gets an identifier and timestamp when missing and
 * asked. Each change is reported (severity information). Not
 * deterministic where it makes uuids: it runs once, before signing.
 * Returns GW_OK, GW_REJECT (not a resource) or GW_NOMEM.
 */
enum gw_err xf_normalise(struct fj_doc *doc, enum rules_fhir v,
			 const struct xf_norm_opts *opts, json_t *report);

struct validate_ctx;

/*
 * The check after the rules, for callers that do not validate the result
 * themselves (pzpgw transform; the daemon's intake validates anyway and
 * the Provider API's STU3 answers skip it for their cost): validate the
 * converted doc with vctx, a context over set, the rules of the TARGET
 * version. A required element missing from an object that exists, whose
 * type can carry it (not a slice, a list of primitives or a resource),
 * is marked with data-absent-reason "unknown" and, when that makes the
 * document valid, each mark is reported (severity warning, expression
 * the OUTPUT element's FHIRPath). Otherwise every error finding left is
 * an error issue naming the output element and the result is GW_REJECT
 * (doc must be discarded). GW_OK: doc passes the target's validator;
 * GW_NOMEM; GW_PERM when the validator could not run. report may be
 * NULL.
 */
enum gw_err xf_check(struct fj_doc *doc, const struct rules_set *set,
		     struct validate_ctx *vctx, json_t *report);

/* "stu3" / "r4" (also "3.0", "3.0.2", "4.0", "4.0.1") to the version;
 * false when s names neither. */
bool xf_version_parse(const char *s, enum rules_fhir *out);

#endif
