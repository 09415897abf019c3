/*
 * The round trip over the project's test data: every example of
 * tests/data/valid (STU3, and R4 of both PZP generations) converts to the
 * other version with no validator error there, converts back with no
 * validator error in its own version, and keeps its codes, dates,
 * identifiers and texts apart from what the first conversion reported as
 * lost. Examples whose resource types are not yet mapped are run too
 * (never a crash) but only counted, from the xfail list below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "outcome.h"
#include "transform.h"
#include "util.h"
#include "validate.h"
#include "both_versions.h"

/* Resource types whose examples do not pass yet: an example holding one
 * of them may fail; remove a type once every example holding it passes.
 * Empty: every example of tests/data/valid passes. */
static const char *const xfail_types[] = {
    NULL,
};

/* ---- facts: codes, dates, identifiers, texts with their paths ---- */

static const char *const fact_keys[] = {
    "code",
    "display",
    "text",
    "value",
    "valueString",
    "valueCode",
    "valueDateTime",
    "valueDate",
    "date",
    "dateTime",
    "start",
    "end",
    "birthDate",
    "authoredOn",
    "recorded",
    "issued",
    "effectiveDateTime",
    "occurrenceDateTime",
    "performedDateTime",
    "family",
    "given",
    "comment",
    NULL,
};

struct fact {
	char *path;
	char *key;
	char *val;
};

struct facts {
	struct fact *v;
	size_t n, cap;
};

static bool
is_fact_key(const char *k, size_t len)
{
	for (size_t i = 0; fact_keys[i] != NULL; i++)
		if (strlen(fact_keys[i]) == len &&
		    memcmp(fact_keys[i], k, len) == 0)
			return true;
	return false;
}

static void
facts_add(struct facts *f, const char *path, const char *key, size_t klen,
	  const char *val)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->v = realloc(f->v, f->cap * sizeof(*f->v));
		assert_non_null(f->v);
	}
	f->v[f->n].path = strdup(path);
	f->v[f->n].key = strndup(key, klen);
	f->v[f->n].val = strdup(val);
	f->n++;
}

static void
facts_free(struct facts *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].key);
		free(f->v[i].val);
	}
	free(f->v);
}

/* Collect the string leaves under a fact key (also inside arrays). */
static void
collect(const struct fj_node *n, const char *path, const char *key, size_t klen,
	struct facts *f)
{
	char sub[1024];

	if (n->type == FJ_STRING) {
		if (key != NULL && is_fact_key(key, klen))
			facts_add(f, path, key, klen, n->u.str.s);
		return;
	}
	if (n->type == FJ_ARRAY) {
		size_t i = 0;

		for (const struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next, i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			collect(k, sub, key, klen, f);
		}
		return;
	}
	if (n->type != FJ_OBJECT)
		return;
	for (const struct fj_node *m = n->u.kids.first; m != NULL;
	     m = m->next) {
		/* a primitive's extensions belong to it: _x -> x */
		const char *k = m->key;
		size_t kl = m->keylen;

		if (kl > 0 && k[0] == '_') {
			k++;
			kl--;
		}
		snprintf(sub, sizeof(sub), "%s.%.*s", path, (int)kl, k);
		collect(m, sub, k, kl, f);
	}
}

/* Whether the report has a loss at path or at an element above it. */
static bool
excused(const json_t *report, const char *path)
{
	size_t i;
	const json_t *is;

	json_array_foreach(json_object_get(report, "issue"), i, is)
	{
		const char *e = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));
		size_t el;

		/* an issue about a whole resource excuses nothing */
		if (e == NULL || strchr(e, '.') == NULL ||
		    (strlen(e) > 9 &&
		     strcmp(e + strlen(e) - 9, ".resource") == 0))
			continue;
		el = strlen(e);
		if (strncmp(path, e, el) == 0 &&
		    (path[el] == '\0' || path[el] == '.' || path[el] == '['))
			return true;
	}
	return false;
}

/* Every fact of a is in b as many times, but for occurrences the
 * report excuses: per (key, value), the occurrences missing from b must
 * not outnumber the excused ones of a (which occurrence went missing is
 * not known, only how many). The first unexcused one goes into why. */
static bool
facts_kept(const struct facts *a, const struct facts *b, const json_t *report,
	   char *why, size_t whylen)
{
	for (size_t i = 0; i < a->n; i++) {
		size_t na = 0, nb = 0, nexc = 0, first = SIZE_MAX;
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(a->v[i].key, a->v[j].key) == 0 &&
			       strcmp(a->v[i].val, a->v[j].val) == 0;
		if (seen)
			continue;
		for (size_t j = i; j < a->n; j++) {
			if (strcmp(a->v[i].key, a->v[j].key) != 0 ||
			    strcmp(a->v[i].val, a->v[j].val) != 0)
				continue;
			na++;
			if (excused(report, a->v[j].path))
				nexc++;
			else if (first == SIZE_MAX)
				first = j;
		}
		for (size_t j = 0; j < b->n; j++)
			if (strcmp(a->v[i].key, b->v[j].key) == 0 &&
			    strcmp(a->v[i].val, b->v[j].val) == 0)
				nb++;
		if (nb >= na || na - nb <= nexc)
			continue;
		if (first == SIZE_MAX)
			first = i;
		snprintf(why, whylen,
			 "%s (%s): %zu of %zu lost, %zu excused by the report",
			 a->v[first].path, a->v[first].key, na - nb, na, nexc);
		return false;
	}
	return true;
}

/* ---- one example ---- */

static bool
has_xfail_type(const struct fj_node *root)
{
	const char *t = fj_get_str(root, "resourceType");
	const struct fj_node *entries = fj_get(root, "entry");

	for (size_t i = 0; t != NULL && xfail_types[i] != NULL; i++)
		if (strcmp(t, xfail_types[i]) == 0)
			return true;
	if (entries != NULL && entries->type == FJ_ARRAY)
		for (const struct fj_node *e = entries->u.kids.first; e != NULL;
		     e = e->next)
			if (has_xfail_type(fj_get(e, "resource")))
				return true;
	return false;
}

/* The first error of validating root in version v, or NULL (static). */
static const char *
first_error(struct both_versions *s, enum rules_fhir v,
	    const struct fj_node *root)
{
	static char msg[1024];
	json_t *out = fhir_outcome_new();
	size_t i;
	const json_t *is;
	const char *ret = NULL;

	assert_int_equal(
	    validate_document(s->ctx[v == RULES_R4 ? 0 : 1], root, NULL, out),
	    GW_OK);
	json_array_foreach(json_object_get(out, "issue"), i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));

		if (sev == NULL ||
		    (strcmp(sev, "error") != 0 && strcmp(sev, "fatal") != 0))
			continue;
		snprintf(msg, sizeof(msg), "%s: %s",
			 json_string_value(json_array_get(
			     json_object_get(is, "expression"), 0)),
			 json_string_value(json_object_get(is, "diagnostics")));
		ret = msg;
		break;
	}
	json_decref(out);
	return ret;
}

/* A meta.profile of root (or of a resource inside) that the rules of
 * version v do not know, or NULL: the validator only warns about those,
 * so the output would go unchecked. */
static const char *
unknown_profile(struct both_versions *s, enum rules_fhir v,
		const struct fj_node *res)
{
	const struct fj_node *prof = fj_get(fj_get(res, "meta"), "profile");
	const struct fj_node *entries = fj_get(res, "entry");
	const struct fj_node *cont = fj_get(res, "contained");
	const char *u;

	if (prof != NULL && prof->type == FJ_ARRAY)
		for (const struct fj_node *p = prof->u.kids.first; p != NULL;
		     p = p->next)
			if (p->type == FJ_STRING &&
			    rules_structure(s->set[v == RULES_R4 ? 0 : 1],
					    p->u.str.s) == NULL)
				return p->u.str.s;
	if (entries != NULL && entries->type == FJ_ARRAY)
		for (const struct fj_node *e = entries->u.kids.first; e != NULL;
		     e = e->next)
			if ((u = unknown_profile(
				 s, v, fj_get(e, "resource"))) != NULL)
				return u;
	if (cont != NULL && cont->type == FJ_ARRAY)
		for (const struct fj_node *e = cont->u.kids.first; e != NULL;
		     e = e->next)
			if ((u = unknown_profile(s, v, e)) != NULL)
				return u;
	return NULL;
}

/* Round trip of one file; NULL when it passes, else why (static). */
/* Whether a and b serialise to the same bytes. */
static bool
same_bytes(const struct fj_node *a, const struct fj_node *b)
{
	struct buf ba, bb;
	bool same;

	buf_init(&ba, 1 << 24);
	buf_init(&bb, 1 << 24);
	assert_int_equal(fj_dump(a, 0, &ba), GW_OK);
	assert_int_equal(fj_dump(b, 0, &bb), GW_OK);
	same = ba.len == bb.len && memcmp(ba.data, bb.data, ba.len) == 0;
	buf_cleanup(&ba);
	buf_cleanup(&bb);
	return same;
}

static const char *
round_trip(struct both_versions *s, const char *path, enum rules_fhir from,
	   bool *xfail)
{
	static char why[1200];
	enum rules_fhir to = from == RULES_R4 ? RULES_STU3 : RULES_R4;
	char *text = NULL;
	size_t len;
	struct fj_doc *orig = NULL, *doc = NULL, *quiet = NULL;
	struct fj_error jerr;
	json_t *fwd = fhir_outcome_new(), *back = fhir_outcome_new();
	struct facts fa = {0}, fb = {0};
	const char *err, *ret = NULL;
	enum gw_err rc;

	assert_int_equal(util_read_file(path, 1 << 24, &text, &len), GW_OK);
	assert_int_equal(fj_parse(text, len, 0, &orig, &jerr), GW_OK);
	assert_int_equal(fj_parse(text, len, 0, &doc, &jerr), GW_OK);
	assert_int_equal(fj_parse(text, len, 0, &quiet, &jerr), GW_OK);
	*xfail = has_xfail_type(orig->root);
	if ((err = first_error(s, from, orig->root)) != NULL) {
		snprintf(why, sizeof(why), "the example itself is invalid: %s",
			 err);
		ret = why;
		goto done;
	}
	rc = xf_convert(doc, from, to, fwd);
	/* Without a report (the Provider API's way) the conversion skips
	 * building paths and messages: same verdict, same bytes. */
	assert_int_equal(xf_convert(quiet, from, to, NULL), rc);
	if (rc == GW_OK)
		assert_true(same_bytes(doc->root, quiet->root));
	if (rc != GW_OK) {
		char *r = fhir_dump(fwd);

		snprintf(why, sizeof(why), "refused (%s): %.900s",
			 gw_strerror(rc), r);
		free(r);
		ret = why;
		goto done;
	}
	if ((err = first_error(s, to, doc->root)) != NULL) {
		snprintf(why, sizeof(why), "converted, invalid: %s", err);
		ret = why;
		goto done;
	}
	if ((err = unknown_profile(s, to, doc->root)) != NULL) {
		snprintf(why, sizeof(why), "converted, profile %s unknown",
			 err);
		ret = why;
		goto done;
	}
	if ((rc = xf_convert(doc, to, from, back)) != GW_OK) {
		snprintf(why, sizeof(why), "back: refused (%s)",
			 gw_strerror(rc));
		ret = why;
		goto done;
	}
	if ((err = first_error(s, from, doc->root)) != NULL) {
		snprintf(why, sizeof(why), "back, invalid: %s", err);
		ret = why;
		goto done;
	}
	collect(orig->root, fj_get_str(orig->root, "resourceType"), NULL, 0,
		&fa);
	collect(doc->root, fj_get_str(doc->root, "resourceType"), NULL, 0, &fb);
	if (!facts_kept(&fa, &fb, fwd, why, sizeof(why)))
		ret = why;
done:
	facts_free(&fa);
	facts_free(&fb);
	json_decref(fwd);
	json_decref(back);
	fj_doc_free(orig);
	fj_doc_free(doc);
	fj_doc_free(quiet);
	free(text);
	return ret;
}

static void
run_dir(struct both_versions *s, const char *rel, enum rules_fhir from,
	size_t *pass, size_t *fail, size_t *xfailed, size_t *xpass)
{
	char dir[4096], path[8192];
	char **names = NULL;
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/tests/data/valid/%s", srcdir(), rel);
	assert_int_equal(util_dir_names(dir, "", ".json", &names, &n), GW_OK);
	for (size_t i = 0; i < n; i++) {
		bool xf = false;
		const char *why;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		why = round_trip(s, path, from, &xf);
		if (why == NULL && !xf) {
			(*pass)++;
		} else if (why == NULL) {
			(*xpass)++;
			printf("XPASS %s/%s (its types could leave the xfail "
			       "list)\n",
			       rel, names[i]);
		} else if (xf) {
			(*xfailed)++;
		} else {
			(*fail)++;
			printf("FAIL %s/%s: %s\n", rel, names[i], why);
		}
	}
	util_names_free(names, n);
}

static void
test_round_trip(void **state)
{
	struct both_versions *s = *state;
	size_t pass = 0, fail = 0, xfailed = 0, xpass = 0;

	run_dir(s, "stu3", RULES_STU3, &pass, &fail, &xfailed, &xpass);
	run_dir(s, "r4", RULES_R4, &pass, &fail, &xfailed, &xpass);
	run_dir(s, "r4/pzp-0.1.3", RULES_R4, &pass, &fail, &xfailed, &xpass);
	run_dir(s, "r4/pzp-1.0.0-rc1", RULES_R4, &pass, &fail, &xfailed,
		&xpass);
	run_dir(s, "r4/pzp-1.0.0-rc1-own", RULES_R4, &pass, &fail, &xfailed,
		&xpass);
	printf("round trip: %zu pass, %zu fail, %zu xfail, %zu xpass\n", pass,
	       fail, xfailed, xpass);
	if (pass == 0 || fail > 0)
		fail_msg("got %zu failing examples (and %zu passing), want 0 "
			 "failing",
			 fail, pass);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, both_versions_setup,
				      both_versions_teardown);
}
