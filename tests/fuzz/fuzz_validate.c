/*
 * libFuzzer harness for the validation path: any bytes are parsed (JSON,
 * or XML when they start with '<') and validated against the R4 rules of
 * schemas/ ($PZPGW_SCHEMAS or ./schemas, loaded once). Must never crash,
 * leak or fail other than by reporting issues; the accept's quiet run
 * (validate_opts.quiet_when_valid) must give the same verdict, and the same
 * outcome when there is an error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "outcome.h"
#include "rules.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rules_set *fz_set;
static struct validate_ctx *fz_ctx;

static void
fz_init(void)
{
	const char *dir = getenv("PZPGW_SCHEMAS");
	char errbuf[256];

	fz_set = rules_set_new(RULES_R4);
	if (fz_set == NULL)
		abort();
	/* without rule files the parse path is still fuzzed */
	(void)rules_load_dir(fz_set, dir != NULL ? dir : "schemas", errbuf,
			     sizeof(errbuf));
	if (validate_ctx_new(fz_set, &fz_ctx) != GW_OK)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *outcome;
	enum gw_err err;

	if (fz_ctx == NULL)
		fz_init();
	if ((outcome = fhir_outcome_new()) == NULL)
		return 0;
	err = validate_text(fz_ctx, (const char *)data, size, NULL, outcome);
	/* GW_NOMEM too: allocations do not fail here (a too large one ends
	 * the run instead), so it is a document the outcome could not take
	 * (a message cut inside a UTF-8 character was one) */
	if (err != GW_OK)
		abort();
	/* a document that is not even JSON must be reported, not passed */
	if (size == 0 && fhir_outcome_errors(outcome) == 0)
		abort();
	/* the accept's quiet run gives the same verdict, and the same
	 * outcome when there is an error */
	{
		struct validate_opts quiet = {.quiet_when_valid = true};
		json_t *q = fhir_outcome_new();

		if (q == NULL)
			abort();
		err =
		    validate_text(fz_ctx, (const char *)data, size, &quiet, q);
		if (err != GW_OK ||
		    fhir_outcome_errors(q) != fhir_outcome_errors(outcome) ||
		    (fhir_outcome_errors(q) > 0 && !json_equal(q, outcome)))
			abort();
		json_decref(q);
	}
	json_decref(outcome);
	return 0;
}
