/*
 * FHIR static canonicalisation over the fjson model: the FHIR rules
 * (numbers as FHIR allows them, the root members FHIR excludes) here; key
 * order, escaping and verbatim numbers are fjson's canonical output.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canon.h"

/* Root members a canonical form leaves out. */
static const char *const canon_skip_bundle[] = {"text", "meta", "signature",
						NULL};
static const char *const canon_skip_other[] = {"text", "meta", NULL};

static void
canon_fail(struct fj_error *err, const struct fj_node *n, const char *msg,
	   const char *arg)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
	if (n != NULL) {
		err->line = n->line;
		err->col = n->col;
	}
	snprintf(err->msg, sizeof(err->msg), "%s%s", msg, arg);
}

/* True when s (len bytes) is a number FHIR JSON allows:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)? and not a negative zero. */
static bool
canon_number_ok(const char *s, size_t len)
{
	size_t i = 0;
	bool neg = false, nonzero = false;

	if (i < len && s[i] == '-') {
		neg = true;
		i++;
	}
	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	if (s[i] == '0') {
		i++;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			return false; /* leading zero */
	} else {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		nonzero = true;
	}
	if (i < len && s[i] == '.') {
		size_t digits = 0;
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
			if (s[i] != '0')
				nonzero = true;
		if (digits == 0)
			return false;
	}
	if (i != len)
		return false; /* exponent or anything else */
	return !(neg && !nonzero);
}

static enum gw_err
canon_check(const struct fj_node *n, struct fj_error *err)
{
	enum gw_err e;

	switch (n->type) {
	case FJ_NUMBER:
		if (!canon_number_ok(n->u.str.s, n->u.str.len)) {
			char num[32];
			size_t k = n->u.str.len < sizeof(num) - 1
				       ? n->u.str.len
				       : sizeof(num) - 1;
			memcpy(num, n->u.str.s, k);
			num[k] = '\0';
			canon_fail(err, n,
				   "number not allowed in FHIR (exponent, "
				   "leading zero or negative zero): ",
				   num);
			return GW_INVALID;
		}
		return GW_OK;
	case FJ_ARRAY:
	case FJ_OBJECT:
		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next)
			if ((e = canon_check(k, err)) != GW_OK)
				return e;
		return GW_OK;
	default:
		return GW_OK;
	}
}

enum gw_err
canon_resource(const struct fj_node *res, struct buf *out, struct fj_error *err)
{
	const struct fj_node *rt;
	enum gw_err e;

	if (res == NULL || res->type != FJ_OBJECT) {
		canon_fail(err, res, "a resource must be a JSON object", "");
		return GW_INVALID;
	}
	rt = fj_get(res, "resourceType");
	if (rt == NULL || rt->type != FJ_STRING || rt->u.str.len == 0) {
		canon_fail(err, res, "resourceType missing", "");
		return GW_INVALID;
	}
	if ((e = canon_check(res, err)) != GW_OK)
		return e;
	return fj_dump_except(res, FJ_CANONICAL,
			      fj_str_eq(rt, "Bundle") ? canon_skip_bundle
						      : canon_skip_other,
			      out);
}

enum gw_err
canon_text(const char *text, size_t len, struct buf *out, struct fj_error *err)
{
	struct fj_doc *doc = NULL;
	enum gw_err e;

	if ((e = fj_parse(text, len, 0, &doc, err)) != GW_OK)
		return e;
	e = canon_resource(doc->root, out, err);
	fj_doc_free(doc);
	return e;
}
