/*
 * libFuzzer harness for the STU3 <-> R4 transform: the first byte picks
 * the direction (even: R4 -> STU3, odd: STU3 -> R4), the rest is parsed
 * as JSON, converted (xf_convert) and checked (xf_check, as `pzpgw
 * transform` does). Must never crash or leak; a refusal carries an error
 * issue; and output that is not refused passes the target version's
 * validator (nothing invalid leaves silently). Rules from $PZPGW_SCHEMAS
 * or ./schemas.
 *
 * FUZZ_TRANSFORM_STRICT kept its name from when the last check was
 * optional: it now runs always. FUZZ_TRANSFORM_GAPS (for longer runs
 * that look for rules to write) also stops at an input valid in its own
 * version whose conversion the rules leave invalid, so that xf_check had
 * to mark or refuse it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "rules.h"
#include "transform.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Resource types whose rules are done: FUZZ_TRANSFORM_GAPS looks for
 * gaps in documents holding only these (and Bundles of them). Add a type
 * when its rules (transform_zib.c, transform_care.c) are. */
static const char *const fz_mapped[] = {
    "Consent",
    "Patient",
    "RelatedPerson",
    "Practitioner",
    "PractitionerRole",
    "Observation",
    "Encounter",
    "Procedure",
    "Goal",
    "Communication",
    "CommunicationRequest",
    "Device",
    "DeviceUseStatement",
    "QuestionnaireResponse",
    NULL,
};

static bool
fz_all_mapped(const struct fj_node *res)
{
	const char *t = fj_get_str(res, "resourceType");
	const struct fj_node *entries = fj_get(res, "entry");
	bool known = false;

	if (t == NULL)
		return false;
	if (strcmp(t, "Bundle") == 0) {
		if (entries != NULL && entries->type == FJ_ARRAY)
			for (const struct fj_node *e = entries->u.kids.first;
			     e != NULL; e = e->next)
				if (!fz_all_mapped(fj_get(e, "resource")))
					return false;
		return true;
	}
	for (size_t i = 0; fz_mapped[i] != NULL; i++)
		known = known || strcmp(t, fz_mapped[i]) == 0;
	return known && fj_get(res, "contained") == NULL;
}

static struct rules_set *fz_set[2];
static struct validate_ctx *fz_ctx[2];
static int fz_gaps;

/* True when res (or an entry of the Bundle res) claims a profile the
 * rules of version index v do not know: the validator then checks it
 * against the base only, and "valid" says little about the profile the
 * target's validator will detect. */
static bool
fz_unknown_profile(int v, const struct fj_node *res)
{
	const struct fj_node *p = fj_get(fj_get(res, "meta"), "profile");
	const struct fj_node *entries = fj_get(res, "entry");

	if (p != NULL && p->type == FJ_ARRAY)
		for (const struct fj_node *k = p->u.kids.first; k != NULL;
		     k = k->next)
			if (k->type != FJ_STRING ||
			    rules_structure(fz_set[v], k->u.str.s) == NULL)
				return true;
	if (entries != NULL && entries->type == FJ_ARRAY)
		for (const struct fj_node *e = entries->u.kids.first; e != NULL;
		     e = e->next)
			if (fz_unknown_profile(v, fj_get(e, "resource")))
				return true;
	return false;
}

static void
fz_init(void)
{
	const char *dir = getenv("PZPGW_SCHEMAS");
	char errbuf[256];

	fz_gaps = getenv("FUZZ_TRANSFORM_GAPS") != NULL;

	for (int v = 0; v < 2; v++) {
		fz_set[v] = rules_set_new(v == 0 ? RULES_R4 : RULES_STU3);
		if (fz_set[v] == NULL)
			abort();
		/* without rule files the transform is still fuzzed */
		(void)rules_load_dir(fz_set[v], dir != NULL ? dir : "schemas",
				     errbuf, sizeof(errbuf));
		if (validate_ctx_new(fz_set[v], &fz_ctx[v]) != GW_OK)
			abort();
	}
}

/* Errors of validating root in version index v; SIZE_MAX when the
 * validator could not run. */
static size_t
errors(int v, const struct fj_node *root)
{
	json_t *out = fhir_outcome_new();
	size_t n = SIZE_MAX;

	if (out != NULL &&
	    validate_document(fz_ctx[v], root, NULL, out) == GW_OK)
		n = fhir_outcome_errors(out);
	json_decref(out);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fj_doc *doc = NULL;
	json_t *report;
	int from, to;
	size_t before, notes;
	bool mapped;
	enum gw_err err;

	if (size < 1)
		return 0;
	if (fz_ctx[0] == NULL)
		fz_init();
	from = data[0] & 1; /* 0: R4, 1: STU3 (index of fz_ctx) */
	to = !from;
	if (fj_parse((const char *)data + 1, size - 1, 0, &doc, NULL) != GW_OK)
		return 0;
	if ((report = fhir_outcome_new()) == NULL) {
		fj_doc_free(doc);
		return 0;
	}
	mapped = fz_all_mapped(doc->root);
	before = fz_gaps && mapped && !fz_unknown_profile(from, doc->root)
		     ? errors(from, doc->root)
		     : SIZE_MAX;
	err = xf_convert(doc, from == 0 ? RULES_R4 : RULES_STU3,
			 to == 0 ? RULES_R4 : RULES_STU3, report);
	if (err != GW_OK && err != GW_REJECT && err != GW_NOMEM)
		abort();
	notes = json_array_size(json_object_get(report, "issue"));
	if (err == GW_OK) {
		err = xf_check(doc, fz_set[to], fz_ctx[to], report);
		if (err != GW_OK && err != GW_REJECT && err != GW_NOMEM)
			abort();
		/* not refused: the target's validator accepts the output */
		if (err == GW_OK && errors(to, doc->root) != 0)
			abort();
		/* a gap of the rules: a valid input the check had to mend */
		if (before == 0 &&
		    json_array_size(json_object_get(report, "issue")) != notes)
			abort();
	}
	if (err == GW_REJECT && fhir_outcome_errors(report) == 0)
		abort();
	json_decref(report);
	fj_doc_free(doc);
	return 0;
}
