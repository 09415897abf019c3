/*
 * Intake: the endpoints that take FHIR documents from organisations,
 * `$validate` now and `$process-message` (accept, sign, store, deliver).
 * Holds the validation rules loaded at start.
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "rules.h"
#include "validate.h"

struct intake {
	struct rules_set *rules[2];	  /* indexed by enum rules_fhir */
	struct validate_ctx *validate[2]; /* over rules[] */
};

/*
 * Load the compiled rules for R4 and STU3 from cfg->schemas. On failure
 * errbuf says why and in is left cleaned up.
 */
enum gw_err intake_init(struct intake *in, const struct config *cfg,
			char *errbuf, size_t errlen);
/* Release what intake_init made; safe on a zeroed struct. */
void intake_cleanup(struct intake *in);

/* POST /fhir/$validate and /fhir/{type}/$validate; arg is a struct
 * intake. Answers 200 with an OperationOutcome, 400 for malformed JSON. */
void intake_validate(struct http_req *req, void *arg);

#endif
