/*
 * Unit tests of validate_opts.quiet_when_valid, the gateway accept's
 * validation, and of the contained-resource invariants skipped where
 * they hold: over every valid and invalid example of tests/data, the
 * quiet run gives the same verdict as the full one, builds no issue for a
 * valid document, and gives an invalid document the full run's outcome
 * issue for issue (warnings included).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fjson.h"
#include "outcome.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

struct quiet_state {
	struct rules_set *set[2];
	struct validate_ctx *ctx[2];
	/* what the walk over the files saw */
	size_t files, valid, invalid, valid_with_issues;
};

static struct quiet_state Q;

static const char *
srcdir(void)
{
	const char *d = getenv("PZPGW_SRCDIR");

	return d != NULL && d[0] != '\0' ? d : ".";
}

static int
setup(void **state)
{
	static const enum rules_fhir fhir[2] = {RULES_R4, RULES_STU3};
	char path[4096], errbuf[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/schemas", srcdir());
	for (size_t i = 0; i < 2; i++) {
		if ((Q.set[i] = rules_set_new(fhir[i])) == NULL ||
		    rules_load_dir(Q.set[i], path, errbuf, sizeof(errbuf)) !=
			GW_OK) {
			fprintf(stderr, "rules %s: %s\n", path, errbuf);
			return -1;
		}
		if (validate_ctx_new(Q.set[i], &Q.ctx[i]) != GW_OK)
			return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < 2; i++) {
		validate_ctx_free(Q.ctx[i]);
		rules_set_free(Q.set[i]);
	}
	return 0;
}

/* Validate doc both ways and compare. */
static void
check_doc(struct validate_ctx *ctx, const struct fj_node *root,
	  const char *name)
{
	struct validate_opts quiet = {.quiet_when_valid = true};
	json_t *full = fhir_outcome_new(), *q = fhir_outcome_new();
	size_t nfull, nq;

	assert_non_null(full);
	assert_non_null(q);
	assert_int_equal(validate_document(ctx, root, NULL, full), GW_OK);
	assert_int_equal(validate_document(ctx, root, &quiet, q), GW_OK);
	nfull = json_array_size(json_object_get(full, "issue"));
	nq = json_array_size(json_object_get(q, "issue"));
	if (fhir_outcome_errors(full) != fhir_outcome_errors(q))
		fail_msg("%s: %zu errors in full, %zu quiet", name,
			 fhir_outcome_errors(full), fhir_outcome_errors(q));
	if (fhir_outcome_errors(full) == 0) {
		Q.valid++;
		if (nfull > 0)
			Q.valid_with_issues++;
		if (nq != 0)
			fail_msg("%s: valid, yet the quiet run built %zu "
				 "issues",
				 name, nq);
	} else {
		Q.invalid++;
		if (!json_equal(full, q))
			fail_msg("%s: invalid, and the quiet run's outcome "
				 "(%zu issues) is not the full one (%zu)",
				 name, nq, nfull);
	}
	json_decref(full);
	json_decref(q);
}

static void
check_file(struct validate_ctx *ctx, const char *path)
{
	struct fj_doc *doc = NULL;
	char *text = NULL;
	size_t len;

	assert_int_equal(util_read_file(path, 64u << 20, &text, &len), GW_OK);
	/* a few invalid cases are not JSON at all: nothing to walk */
	if (fj_parse(text, len, 0, &doc, NULL) == GW_OK) {
		Q.files++;
		check_doc(ctx, doc->root, path);
		fj_doc_free(doc);
	}
	free(text);
}

/* Every *.json under dir (recursively). */
static void
check_dir(struct validate_ctx *ctx, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;
		size_t n = strlen(e->d_name);

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			check_dir(ctx, path);
		else if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0)
			check_file(ctx, path);
	}
	closedir(d);
}

static void
test_same_verdicts(void **state)
{
	static const char *const dirs[][2] = {
	    {"tests/data/valid/r4", "r4"},
	    {"tests/data/invalid/r4", "r4"},
	    {"tests/data/valid/stu3", "stu3"},
	    {"tests/data/invalid/stu3", "stu3"},
	};
	char path[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", srcdir(), dirs[i][0]);
		check_dir(Q.ctx[strcmp(dirs[i][1], "r4") == 0 ? 0 : 1], path);
	}
	print_message("%zu documents: %zu valid (%zu with warnings), "
		      "%zu invalid\n",
		      Q.files, Q.valid, Q.valid_with_issues, Q.invalid);
	/* the comparison meant something: valid documents with warnings
	 * (the IKNL examples have them) and invalid ones were seen */
	assert_true(Q.files >= 100);
	assert_true(Q.valid_with_issues >= 10);
	assert_true(Q.invalid >= 20);
}

/* The message the bench sends: its warnings are not built quietly, and a
 * broken copy gets the full outcome, warnings and all. */
static void
test_bundle_warnings(void **state)
{
	struct validate_opts quiet = {.quiet_when_valid = true};
	char path[4096], *text = NULL;
	struct fj_doc *doc = NULL;
	struct fj_node *type;
	size_t len, nfull;
	json_t *o;

	(void)state;
	snprintf(path, sizeof(path),
		 "%s/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json", srcdir());
	assert_int_equal(util_read_file(path, 64u << 20, &text, &len), GW_OK);
	assert_int_equal(fj_parse(text, len, 0, &doc, NULL), GW_OK);

	o = fhir_outcome_new();
	assert_int_equal(validate_document(Q.ctx[0], doc->root, NULL, o),
			 GW_OK);
	nfull = json_array_size(json_object_get(o, "issue"));
	assert_true(nfull > 10);
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);

	o = fhir_outcome_new();
	assert_int_equal(validate_document(Q.ctx[0], doc->root, &quiet, o),
			 GW_OK);
	assert_int_equal(json_array_size(json_object_get(o, "issue")), 0);
	json_decref(o);

	/* an unknown Bundle.type: one error more than the warnings */
	type = fj_get(doc->root, "type");
	assert_non_null(type);
	type->u.str.s = "not-a-type";
	type->u.str.len = strlen(type->u.str.s);
	o = fhir_outcome_new();
	assert_int_equal(validate_document(Q.ctx[0], doc->root, &quiet, o),
			 GW_OK);
	assert_true(fhir_outcome_errors(o) >= 1);
	assert_true(json_array_size(json_object_get(o, "issue")) > nfull);
	json_decref(o);

	fj_doc_free(doc);
	free(text);
}

/* Whether outcome has an error whose text names invariant key. */
static bool
has_invariant_error(const json_t *outcome, const char *key)
{
	const json_t *is;
	size_t i;

	json_array_foreach(json_object_get(outcome, "issue"), i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));
		const char *txt =
		    json_string_value(json_object_get(is, "diagnostics"));

		if (sev != NULL && strcmp(sev, "error") == 0 && txt != NULL &&
		    strncmp(txt, key, strlen(key)) == 0)
			return true;
	}
	return false;
}

/* dom-2 to dom-5 are not evaluated on a resource without `contained`
 * (they hold there); with it, each still catches what it is about, in
 * the full and the quiet run alike. */
static void
test_contained_invariants(void **state)
{
	static const struct {
		const char *key, *json;
	} cases[] = {
	    {"dom-2", "{\"resourceType\":\"Patient\",\"contained\":[{"
		      "\"resourceType\":\"Organization\",\"id\":\"o\","
		      "\"contained\":[{\"resourceType\":\"Organization\","
		      "\"id\":\"o2\"}]}],\"managingOrganization\":{"
		      "\"reference\":\"#o\"}}"},
	    {"dom-3", "{\"resourceType\":\"Patient\",\"contained\":[{"
		      "\"resourceType\":\"Organization\",\"id\":\"o\"}]}"},
	    {"dom-4", "{\"resourceType\":\"Patient\",\"contained\":[{"
		      "\"resourceType\":\"Organization\",\"id\":\"o\","
		      "\"meta\":{\"versionId\":\"1\"}}],"
		      "\"managingOrganization\":{\"reference\":\"#o\"}}"},
	    {"dom-5", "{\"resourceType\":\"Patient\",\"contained\":[{"
		      "\"resourceType\":\"Organization\",\"id\":\"o\","
		      "\"meta\":{\"security\":[{\"code\":\"R\"}]}}],"
		      "\"managingOrganization\":{\"reference\":\"#o\"}}"},
	};
	struct validate_opts quiet = {.quiet_when_valid = true};
	static const char plain[] = "{\"resourceType\":\"Patient\","
				    "\"managingOrganization\":{"
				    "\"reference\":\"Organization/o\"}}";
	json_t *o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int q = 0; q < 2; q++) {
			o = fhir_outcome_new();
			assert_int_equal(validate_text(Q.ctx[0], cases[i].json,
						       strlen(cases[i].json),
						       q ? &quiet : NULL, o),
					 GW_OK);
			if (!has_invariant_error(o, cases[i].key))
				fail_msg("%s: not reported (%s run)",
					 cases[i].key, q ? "quiet" : "full");
			json_decref(o);
		}
	}
	o = fhir_outcome_new();
	assert_int_equal(validate_text(Q.ctx[0], plain, strlen(plain), NULL, o),
			 GW_OK);
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_contained_invariants),
	    cmocka_unit_test(test_bundle_warnings),
	    cmocka_unit_test(test_same_verdicts),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
