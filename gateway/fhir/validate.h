/*
 * validate: the FHIR profile engine. Walks a parsed document (fjson) against
 * compiled rules (rules.h) and reports every finding as an issue of a FHIR
 * OperationOutcome (fhir.h).
 */
#ifndef GW_VALIDATE_H
#define GW_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "fjson.h"
#include "rules.h"

/* Rules set plus caches (per-structure indexes, compiled invariants).
 * Reusable for many documents; not thread-safe. */
struct validate_ctx;

struct validate_opts {
	const char *profile; /* force this profile URL for the root resource;
				NULL: meta.profile, else detection */
	/* Give up at this util_mono_ms() time (looked at on entry and every
	 * few hundred elements); 0: no limit. */
	uint64_t deadline_ms;
	/* Only the verdict is wanted when the document is valid (the
	 * gateway's accept): warnings and information are then not built
	 * (outcome stays empty); when there is an error the walk runs again
	 * in full, so an invalid document's outcome is complete and the
	 * verdict is the same either way. */
	bool quiet_when_valid;
	/* Accept example.org / example.com URLs (as for an IG's examples);
	 * false: they are errors, as the HL7 validator reports them. */
	bool allow_example_urls;
};

/*
 * A new context over set (borrowed: set must outlive the context).
 * Returns GW_OK with *out (caller frees with validate_ctx_free) or
 * GW_NOMEM with *out NULL.
 */
enum gw_err validate_ctx_new(const struct rules_set *set,
			     struct validate_ctx **out);
/* Free the context; NULL is a no-op. */
void validate_ctx_free(struct validate_ctx *ctx);

/*
 * Profile detection (a resource without meta.profile and no forced
 * profile) chooses only among profiles whose URL starts with one of the
 * context's prefixes. A new context has the PZP canonicals
 * ("https://api.iknl.nl/docs/pzp/", "https://fhir.iknl.nl/fhir/"); add
 * others (e.g. those of --ig profiles), or "" for every profile. Returns
 * GW_OK or GW_NOMEM.
 */
enum gw_err validate_ctx_detect_prefix(struct validate_ctx *ctx,
				       const char *prefix);

/*
 * Validate the resource (or Bundle) root against the rules. Every finding
 * is appended to outcome (an OperationOutcome from fhir_outcome_new) as
 * one issue with severity, code, expression and line/col; the same finding
 * is reported once. opts may be NULL. Returns GW_OK when validation ran
 * (whether or not the document is valid: count errors with
 * fhir_outcome_errors), GW_NOMEM or GW_INVALID (outcome is not an
 * OperationOutcome) on internal failure, GW_TEMP when opts->deadline_ms
 * passed before the walk was done (outcome then holds only part of the
 * findings: no verdict).
 */
enum gw_err validate_document(struct validate_ctx *ctx,
			      const struct fj_node *root,
			      const struct validate_opts *opts,
			      json_t *outcome);

/*
 * Parse len bytes of FHIR JSON or FHIR XML (first non-blank byte '<',
 * converted with xmlfhir.h) and validate it as validate_document does.
 * Text that is not well-formed becomes an issue (code structure, with the
 * line and column when known) and the result is still GW_OK.
 */
enum gw_err validate_text(struct validate_ctx *ctx, const char *text,
			  size_t len, const struct validate_opts *opts,
			  json_t *outcome);

/* The profile URL the last validate_document call used for its root
 * resource (given, claimed or detected), or NULL; borrowed from the rules
 * set. */
const char *validate_last_profile(const struct validate_ctx *ctx);

/*
 * Check one primitive value against the lexical rules of FHIR primitive
 * type `type` ("date", "dateTime", "id", ...). For JSON strings pass
 * is_string true. Returns NULL when valid, else a static reason.
 */
const char *validate_primitive(const char *type, const char *text, size_t len,
			       bool is_string);

#endif
