/*
 * FHIR JSON helpers: OperationOutcome building and rendering, shared by
 * the HTTP layer, the validator and the CLI.
 */
#ifndef GW_OUTCOME_H
#define GW_OUTCOME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* Severity and code values of OperationOutcome.issue (FHIR R4). */
#define FHIR_FATAL	 "fatal"
#define FHIR_ERROR	 "error"
#define FHIR_WARNING	 "warning"
#define FHIR_INFORMATION "information"

/* A new, empty OperationOutcome (caller owns the reference). */
json_t *fhir_outcome_new(void);

/*
 * Append one issue to outcome. expression (a FHIRPath) may be NULL;
 * line/col are added as the standard issue-line/issue-col extensions when
 * > 0. The message is printf-formatted into issue.diagnostics (bytes
 * that are not UTF-8 there become '?', see fhir_utf8_repair).
 * Returns GW_OK or GW_NOMEM (outcome unchanged).
 */
enum gw_err fhir_outcome_add(json_t *outcome, const char *severity,
			     const char *code, const char *expression, int line,
			     int col, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* One issue for fhir_outcome_add_issues: a ready message, no format. */
struct fhir_issue {
	const char *severity, *code; /* kept (shared) while adding */
	const char *expression;	     /* NULL: none */
	const char *msg;	     /* issue.diagnostics (at most 1023 bytes
					kept, as fhir_outcome_add keeps) */
	int line, col;		     /* > 0: the position extensions */
};

/*
 * Append n issues to outcome, in order, as fhir_outcome_add(outcome,
 * severity, code, expression, line, col, "%s", msg) would one by one (the
 * same JSON), but cheaper: the severity, code and extension url strings
 * and the first few position numbers are one JSON value each, shared by
 * the issues (no caller changes a value of an outcome in place). Stops at
 * the first issue that cannot be added (an expression that is not UTF-8,
 * no memory): GW_NOMEM, the issues before it added. GW_INVALID when outcome has no
 * issue array.
 */
enum gw_err fhir_outcome_add_issues(json_t *outcome, const struct fhir_issue *v,
				    size_t n);

/*
 * Replace every byte of s[0..n) that is not part of a valid UTF-8
 * character (by jansson's rules) with '?'. A message that quotes a value
 * cut to a number of bytes ('%.80s') may end inside a character, and a
 * JSON string takes UTF-8 only: the issue was refused and the caller
 * answered "out of memory". fhir_outcome_add and fhir_outcome_add_issues
 * repair their messages so. Whether it changed anything.
 */
bool fhir_utf8_repair(char *s, size_t n);

/* A new OperationOutcome holding a single issue, or NULL without memory. */
json_t *fhir_outcome_one(const char *severity, const char *code,
			 const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Number of issues with severity error or fatal. */
size_t fhir_outcome_errors(const json_t *outcome);

/* Compact JSON text of v (caller frees), or NULL without memory. */
char *fhir_dump(const json_t *v);

#endif
