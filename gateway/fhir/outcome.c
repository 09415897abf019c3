/* OperationOutcome construction and JSON rendering. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"

#define FHIR_EXT_LINE                                                          \
	"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line"
#define FHIR_EXT_COL                                                           \
	"http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col"

json_t *
fhir_outcome_new(void)
{
	return json_pack("{s:s, s:[]}", "resourceType", "OperationOutcome",
			 "issue");
}

/* {"url": url, "valueInteger": v}: built member by member (json_pack
 * parses its format at every call, and a validation outcome has an
 * issue per finding, two of these each). NULL without memory. */
static json_t *
int_ext(const char *url, int v)
{
	json_t *e = json_object();

	if (e == NULL ||
	    json_object_set_new_nocheck(e, "url", json_string_nocheck(url)) ||
	    json_object_set_new_nocheck(e, "valueInteger", json_integer(v))) {
		json_decref(e);
		return NULL;
	}
	return e;
}

static json_t *
position_ext(int line, int col)
{
	json_t *ext = json_array();

	if (ext == NULL)
		return NULL;
	/* json_array_append_new steals the new objects' references. */
	if (line > 0 &&
	    json_array_append_new(ext, int_ext(FHIR_EXT_LINE, line)) != 0)
		goto fail;
	if (col > 0 &&
	    json_array_append_new(ext, int_ext(FHIR_EXT_COL, col)) != 0)
		goto fail;
	return ext;
fail:
	json_decref(ext);
	return NULL;
}

static enum gw_err
outcome_vadd(json_t *outcome, const char *severity, const char *code,
	     const char *expression, int line, int col, const char *fmt,
	     va_list ap)
{
	json_t *issues = json_object_get(outcome, "issue");
	json_t *issue = NULL, *exprs;
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (issues == NULL || !json_is_array(issues))
		return GW_INVALID;
	if ((issue = json_object()) == NULL)
		return GW_NOMEM;
	if (line > 0 || col > 0) {
		json_t *ext = position_ext(line, col);

		if (ext == NULL ||
		    json_object_set_new_nocheck(issue, "extension", ext) != 0)
			goto nomem;
	}
	if (json_object_set_new_nocheck(issue, "severity",
					json_string(severity)) ||
	    json_object_set_new_nocheck(issue, "code", json_string(code)) ||
	    json_object_set_new_nocheck(issue, "diagnostics", json_string(msg)))
		goto nomem;
	if (expression != NULL) {
		exprs = json_array();
		if (exprs == NULL ||
		    json_object_set_new_nocheck(issue, "expression", exprs) ||
		    json_array_append_new(exprs, json_string(expression)))
			goto nomem;
	}
	/* json_array_append_new steals issue. */
	if (json_array_append_new(issues, issue) != 0)
		return GW_NOMEM;
	return GW_OK;
nomem:
	json_decref(issue);
	return GW_NOMEM;
}

enum gw_err
fhir_outcome_add(json_t *outcome, const char *severity, const char *code,
		 const char *expression, int line, int col, const char *fmt,
		 ...)
{
	va_list ap;
	enum gw_err err;

	va_start(ap, fmt);
	err = outcome_vadd(outcome, severity, code, expression, line, col, fmt,
			   ap);
	va_end(ap);
	return err;
}

json_t *
fhir_outcome_one(const char *severity, const char *code, const char *expression,
		 const char *fmt, ...)
{
	json_t *oo = fhir_outcome_new();
	va_list ap;
	enum gw_err err;

	if (oo == NULL)
		return NULL;
	va_start(ap, fmt);
	err = outcome_vadd(oo, severity, code, expression, 0, 0, fmt, ap);
	va_end(ap);
	if (err != GW_OK) {
		json_decref(oo);
		return NULL;
	}
	return oo;
}

size_t
fhir_outcome_errors(const json_t *outcome)
{
	const json_t *issue;
	size_t i, n = 0;

	json_array_foreach(json_object_get(outcome, "issue"), i, issue)
	{
		const char *sev =
		    json_string_value(json_object_get(issue, "severity"));

		if (sev != NULL && (strcmp(sev, FHIR_ERROR) == 0 ||
				    strcmp(sev, FHIR_FATAL) == 0))
			n++;
	}
	return n;
}

char *
fhir_dump(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
}
