/* OperationOutcome construction and JSON rendering. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
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

/* Length of the valid UTF-8 character at s (n bytes left), 0 when it is
 * not one: by the rules jansson checks a string with (no overlong form,
 * no surrogate, nothing past U+10FFFF). */
static size_t
utf8_char(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = s[0] & (0x7fu >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool
fhir_utf8_repair(char *s, size_t n)
{
	bool changed = false;

	for (size_t i = 0; i < n;) {
		size_t l = utf8_char((const unsigned char *)s + i, n - i);

		if (l == 0) {
			s[i++] = '?';
			changed = true;
		} else {
			i += l;
		}
	}
	return changed;
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
	(void)fhir_utf8_repair(msg, strlen(msg));
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

/* Strings shared by the issues of one fhir_outcome_add_issues call,
 * found by the caller's pointer (severities and codes are constants). */
#define SHARED_MAX 16

#define SHARED_INTS 8

struct shared {
	const char *key[SHARED_MAX];
	json_t *val[SHARED_MAX];
	size_t n;
	/* the first few small position numbers met (columns repeat) */
	int ikey[SHARED_INTS];
	json_t *ival[SHARED_INTS];
	size_t ni;
};

/* A new reference to the JSON integer v (shared when there is room), or
 * NULL without memory. */
static json_t *
shared_int(struct shared *sh, int v)
{
	json_t *j;

	for (size_t i = 0; i < sh->ni; i++)
		if (sh->ikey[i] == v)
			return json_incref(sh->ival[i]);
	if ((j = json_integer(v)) == NULL || sh->ni == SHARED_INTS)
		return j;
	sh->ikey[sh->ni] = v;
	sh->ival[sh->ni++] = j;
	return json_incref(j);
}

/* A new reference to the JSON string s (shared when there is room), or
 * NULL (invalid UTF-8, no memory). */
static json_t *
shared_str(struct shared *sh, const char *s)
{
	json_t *v;

	for (size_t i = 0; i < sh->n; i++)
		if (sh->key[i] == s)
			return json_incref(sh->val[i]);
	if ((v = json_string(s)) == NULL || sh->n == SHARED_MAX)
		return v;
	sh->key[sh->n] = s;
	sh->val[sh->n++] = v;
	return json_incref(v);
}

/* {"url": url, "valueInteger": v} with url shared; NULL without memory. */
static json_t *
int_ext_shared(struct shared *sh, const char *url, int v)
{
	json_t *e = json_object();

	if (e == NULL ||
	    json_object_set_new_nocheck(e, "url", shared_str(sh, url)) ||
	    json_object_set_new_nocheck(e, "valueInteger", shared_int(sh, v))) {
		json_decref(e);
		return NULL;
	}
	return e;
}

/* Whether s[0..len) is ASCII only (so valid UTF-8): eight bytes at a
 * time. */
static bool
is_ascii(const char *s, size_t len)
{
	uint64_t any = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		any |= w;
	}
	for (; i < len; i++)
		any |= (unsigned char)s[i];
	return (any & 0x8080808080808080ULL) == 0;
}

/* json_stringn(s, len), without its UTF-8 check where s is ASCII (most
 * messages and expressions): the check cost a tenth of building an
 * issue. The same value, and the same NULL for invalid UTF-8. */
static json_t *
text_str(const char *s, size_t len)
{
	return is_ascii(s, len) ? json_stringn_nocheck(s, len)
				: json_stringn(s, len);
}

/* One issue as outcome_vadd builds it (the same members in the same
 * order); NULL without memory or with invalid UTF-8. */
static json_t *
issue_new(struct shared *sh, const struct fhir_issue *x)
{
	json_t *issue = json_object(), *exprs;
	size_t len = strnlen(x->msg, 1023);
	const char *msg = x->msg;
	char fixed[1024];

	if (issue == NULL)
		return NULL;
	if (!is_ascii(msg, len)) {
		memcpy(fixed, msg, len);
		if (fhir_utf8_repair(fixed, len))
			msg = fixed;
	}
	if (x->line > 0 || x->col > 0) {
		json_t *ext = json_array();

		if (ext == NULL ||
		    json_object_set_new_nocheck(issue, "extension", ext) ||
		    (x->line > 0 &&
		     json_array_append_new(
			 ext, int_ext_shared(sh, FHIR_EXT_LINE, x->line))) ||
		    (x->col > 0 &&
		     json_array_append_new(
			 ext, int_ext_shared(sh, FHIR_EXT_COL, x->col))))
			goto fail;
	}
	/* the message is cut where fhir_outcome_add's buffer would cut it */
	if (json_object_set_new_nocheck(issue, "severity",
					shared_str(sh, x->severity)) ||
	    json_object_set_new_nocheck(issue, "code",
					shared_str(sh, x->code)) ||
	    json_object_set_new_nocheck(issue, "diagnostics",
					text_str(msg, len)))
		goto fail;
	if (x->expression != NULL) {
		exprs = json_array();
		if (exprs == NULL ||
		    json_object_set_new_nocheck(issue, "expression", exprs) ||
		    json_array_append_new(
			exprs, text_str(x->expression, strlen(x->expression))))
			goto fail;
	}
	return issue;
fail:
	json_decref(issue);
	return NULL;
}

enum gw_err
fhir_outcome_add_issues(json_t *outcome, const struct fhir_issue *v, size_t n)
{
	json_t *issues = json_object_get(outcome, "issue");
	struct shared sh;
	enum gw_err err = GW_OK;

	if (issues == NULL || !json_is_array(issues))
		return GW_INVALID;
	/* the caches' entries below n and ni are the only ones read */
	sh.n = sh.ni = 0;
	for (size_t i = 0; i < n; i++)
		/* json_array_append_new steals the issue (and frees it when
		 * it cannot append) */
		if (json_array_append_new(issues, issue_new(&sh, &v[i])) != 0) {
			err = GW_NOMEM;
			break;
		}
	for (size_t i = 0; i < sh.n; i++)
		json_decref(sh.val[i]);
	for (size_t i = 0; i < sh.ni; i++)
		json_decref(sh.ival[i]);
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
