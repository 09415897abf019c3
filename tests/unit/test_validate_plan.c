/*
 * Unit tests of the invariants the walk decides without the FHIRPath
 * evaluator (validate_inv.c v_plan_build / v_plan_eval, issue 14): for
 * every expression and object of the tables, a plan that decides must
 * give what fhirpath_eval_bool gives, and the expressions whose form is
 * not certain (an operator not between spaces, and/xor, a choice member
 * that may be meant) must get no plan or leave the decision to the
 * evaluator.
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
#include "fhirpath.h"
#include "fjson.h"
#include "outcome.h"
#include "rules.h"
#include "validate.h"
#include "validate_impl.h"

static const char *const exprs[] = {
    "resource.exists() or request.exists() or response.exists()",
    "policy.exists() or policyRule.exists()",
    "patient.exists() or scope.coding.where(system='something' and "
    "code='adr').exists().not()",
    "dataAbsentReason.empty() or value.empty()",
    "value.empty() or system.exists()",
    "total.empty() or (type = 'searchset') or (type = 'history')",
    "fullUrl.exists() implies fullUrl.contains('/_history/').not()",
    "(name.exists()) or (telecom.exists())",
    "name.exists() or telecom.exists() or address.exists() or "
    "organization.exists()",
    "a.exists() implies b.exists()",
    "a.empty() implies b.exists()",
    "a.exists() or b.exists() and c.exists()",
    "a.exists() xor b.exists()",
    "a.exists() or b.exists() implies c.exists()",
    "a.exists() or b.exists()\timplies c.exists()",
    "a.exists() or b.exists() implies(c.exists())",
    "a.exists() or (b.exists())implies c.exists()",
    "a.exists() or b.where(x or y).exists()",
    "a.exists() or 'x or y' = b",
    "Patient.exists() or a.exists()",
    "a.exists() or b.empty() or c.exists() or d.empty() or e.exists() "
    "or f.exists() or g.exists()",
    "a.exists() implies a.contains('/_history/').not()",
    "fullUrl.exists() implies b.contains('x').not()",
    "a.exists() implies a.contains('').not()",
    "text.`div`.exists()",
    "a.exists()",
    "a.b.empty() or c.d.exists()",
    "entry.all(request.exists() = (%resource.type = 'batch' or "
    "%resource.type = 'transaction' or %resource.type = 'history'))",
    "entry.all(response.exists() = (%resource.type = 'batch-response' or "
    "%resource.type = 'transaction-response' or %resource.type = "
    "'history'))",
};

static const char *const objects[] = {
    "{}",
    "{\"resource\":{\"resourceType\":\"Patient\"}}",
    "{\"request\":{\"method\":\"GET\"}}",
    "{\"policy\":[{\"uri\":\"x\"}]}",
    "{\"policyRule\":{\"text\":\"x\"}}",
    "{\"patient\":null}",
    "{\"value\":\"x\",\"system\":\"phone\"}",
    "{\"value\":\"x\"}",
    "{\"_value\":{\"extension\":[{\"url\":\"u\",\"valueCode\":\"c\"}]}}",
    "{\"valueString\":\"x\"}",
    "{\"_valueString\":{\"id\":\"1\"}}",
    "{\"dataAbsentReason\":{\"text\":\"x\"},\"valueQuantity\":{}}",
    "{\"total\":3,\"type\":\"searchset\"}",
    "{\"type\":\"collection\"}",
    "{\"fullUrl\":\"urn:uuid:1\"}",
    "{\"fullUrl\":\"http://x/Patient/1/_history/2\"}",
    "{\"name\":[null]}",
    "{\"name\":[null],\"_name\":[{\"id\":\"1\"}]}",
    "{\"name\":[],\"telecom\":[{\"value\":\"1\"}]}",
    "{\"a\":1}",
    "{\"a\":[null,null],\"b\":true}",
    "{\"b\":false,\"c\":\"x\"}",
    "{\"aX\":1,\"b\":2}",
    "{\"_a\":1}",
    "{\"_a\":{\"id\":\"1\"}}",
    "{\"g\":1}",
    "{\"a\":\"http://h/Patient/1/_history/2\"}",
    "{\"a\":\"http://h/Patient/1\"}",
    "{\"a\":\"/_history/\"}",
    "{\"a\":\"/_history\"}",
    "{\"a\":[\"/_history/\"]}",
    "{\"a\":\"x\",\"_a\":{\"id\":\"1\"}}",
    "{\"fullUrl\":\"u\",\"b\":\"axb\"}",
    "{\"fullUrl\":\"u\",\"b\":\"ab\"}",
    "{\"fullUrl\":\"u\",\"b\":7}",
    "{\"text\":{\"status\":\"generated\",\"div\":\"<div/>\"}}",
    "{\"text\":{\"status\":\"generated\"}}",
    "{\"text\":{\"_div\":{\"id\":\"1\"}}}",
    "{\"text\":{\"div\":null}}",
    "{\"text\":\"x\"}",
    "{\"text\":[{\"div\":\"x\"}]}",
    "{\"text\":{\"div\":\"x\"},\"_text\":{\"id\":\"1\"}}",
    "{\"textX\":{\"div\":\"x\"}}",
    "{\"a\":{\"b\":1},\"c\":{\"d\":[]}}",
    "{\"a\":{\"bX\":1},\"c\":{\"d\":[2]}}",
    "{\"a\":{},\"c\":null}",
    "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
    "\"entry\":[{\"fullUrl\":\"u\"},{\"resource\":{}}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"collection\","
    "\"entry\":[{\"fullUrl\":\"u\"},{\"request\":{\"url\":\"x\"}}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\","
    "\"entry\":[{\"request\":{}},{\"request\":{\"url\":\"x\"}}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\","
    "\"entry\":[{\"request\":{}},{\"fullUrl\":\"x\"}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"history\","
    "\"entry\":[{\"request\":{},\"response\":{}}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch-response\","
    "\"entry\":[{\"response\":{}},{\"_response\":{\"id\":\"1\"}}]}",
    "{\"resourceType\":\"Bundle\",\"entry\":[{\"request\":{}}]}",
    "{\"resourceType\":\"Bundle\",\"entry\":[]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\"}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"2020-01-01\","
    "\"entry\":[{\"fullUrl\":\"u\"}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\","
    "\"entry\":[{\"request\":null}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\","
    "\"entry\":[{\"requestX\":{}}]}",
    "{\"resourceType\":\"Bundle\",\"type\":7,\"entry\":[{}]}",
    "{\"resourceType\":\"Bundle\",\"type\":\"batch\",\"entry\":[1]}",
    "{\"type\":\"batch\",\"entry\":[{\"request\":{}}]}",
};

static void
test_plan_agrees_with_the_evaluator(void **state)
{
	size_t decided = 0, planned = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
		struct fhirpath *fp = NULL;
		struct vplan p;
		char why[160];

		assert_int_equal(
		    fhirpath_compile(exprs[i], &fp, why, sizeof(why)), GW_OK);
		v_plan_build(exprs[i], &p);
		planned += p.kind != VP_NONE;
		for (size_t j = 0; j < sizeof(objects) / sizeof(objects[0]);
		     j++) {
			struct fj_doc *doc = NULL;
			enum fhirpath_bool want, got;
			enum gw_err err;

			assert_int_equal(fj_parse(objects[j],
						  strlen(objects[j]), 0, &doc,
						  NULL),
					 GW_OK);
			err = fhirpath_eval_bool(fp, doc->root, "Element", NULL,
						 &want);
			/* without an environment the evaluator's %resource
			 * is the focus when it is a resource */
			got = p.kind == VP_NONE
				  ? FHIRPATH_EMPTY
				  : v_plan_eval(&p, doc->root,
						fj_get(doc->root,
						       "resourceType") != NULL
						    ? doc->root
						    : NULL);
			if (got != FHIRPATH_EMPTY) {
				decided++;
				if (err != GW_OK || got != want)
					fail_msg("%s on %s: plan gives %d, the "
						 "evaluator %d (%s)",
						 exprs[i], objects[j], (int)got,
						 (int)want,
						 err == GW_OK ? "ok" : "error");
			}
			fj_doc_free(doc);
		}
		fhirpath_free(fp);
	}
	/* the comparison means something: many cases were decided */
	assert_true(planned >= 10);
	assert_true(decided >= 100);
}

/* Forms whose meaning a split at " or " would get wrong get no plan. */
static void
test_unsure_forms_get_no_plan(void **state)
{
	static const char *const none[] = {
	    "a.exists() or b.exists() and c.exists()",
	    "a.exists() xor b.exists()",
	    "a.exists() or b.exists() implies c.exists()",
	    "a.exists() or b.exists()\timplies c.exists()",
	    "a.exists() or b.exists() implies(c.exists())",
	    "a.exists() or (b.exists())implies c.exists()",
	    "Patient.exists() or a.exists()",
	    "a.where(b or c).exists() or d.exists()",
	    "a.b.c.exists()",
	    "a.`b.exists()",
	    "a.div.exists()",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		struct vplan p;

		v_plan_build(none[i], &p);
		if (p.kind != VP_NONE)
			fail_msg("%s: got a plan of %u atoms, want none",
				 none[i], (unsigned)p.natoms);
	}
}

/* A choice member the name may stand for is the evaluator's to judge. */
static void
test_choice_member_left_to_the_evaluator(void **state)
{
	struct fj_doc *doc = NULL;
	struct vplan p;
	const char *obj = "{\"valueString\":\"x\"}";

	(void)state;
	v_plan_build("value.empty() or system.exists()", &p);
	assert_int_equal(p.kind, VP_OR);
	assert_int_equal(fj_parse(obj, strlen(obj), 0, &doc, NULL), GW_OK);
	assert_int_equal(v_plan_eval(&p, doc->root, NULL), FHIRPATH_EMPTY);
	fj_doc_free(doc);
}

/* The FHIRPath member-type memo of a context stays bounded whatever
 * member names documents bring (dom-3's descendants() asks the type of
 * every member of a resource with contained resources). */
static void
test_type_memo_is_bounded(void **state)
{
	const char *src = getenv("PZPGW_SRCDIR");
	char dir[4096], errbuf[256];
	struct rules_set *set = rules_set_new(RULES_R4);
	struct validate_ctx *ctx = NULL;
	struct buf b;
	struct fj_doc *doc = NULL;
	json_t *oo;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/schemas",
		 src != NULL && src[0] != '\0' ? src : ".");
	assert_non_null(set);
	assert_int_equal(rules_load_dir(set, dir, errbuf, sizeof(errbuf)),
			 GW_OK);
	assert_int_equal(validate_ctx_new(set, &ctx), GW_OK);
	buf_init(&b, 1u << 22);
	assert_int_equal(buf_adds(&b, "{\"resourceType\":\"Patient\","
				      "\"contained\":[{\"resourceType\":"
				      "\"Basic\",\"id\":\"b\",\"code\":"
				      "{\"text\":\"x\"}}]"),
			 GW_OK);
	for (int i = 0; i < 6000; i++) {
		char m[32];

		snprintf(m, sizeof(m), ",\"k%d\":1", i);
		assert_int_equal(buf_adds(&b, m), GW_OK);
	}
	assert_int_equal(buf_adds(&b, "}"), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);
	oo = fhir_outcome_new();
	assert_int_equal(validate_document(ctx, doc->root, NULL, oo), GW_OK);
	/* the document is checked (its 6000 unknown members found) */
	assert_true(fhir_outcome_errors(oo) >= 6000);
	if (ctx->types_of.count > V_TYPES_OF_MAX)
		fail_msg("the memo holds %zu entries, more than %u",
			 ctx->types_of.count, V_TYPES_OF_MAX);
	json_decref(oo);
	fj_doc_free(doc);
	buf_cleanup(&b);

	/* nor does the type cache keep the type names of references */
	buf_init(&b, 1u << 22);
	assert_int_equal(buf_adds(&b, "{\"resourceType\":\"Observation\","
				      "\"status\":\"final\",\"code\":{"
				      "\"text\":\"x\"},\"basedOn\":["),
			 GW_OK);
	for (int i = 0; i < 3000; i++) {
		char m[48];

		snprintf(m, sizeof(m), "%s{\"reference\":\"Fake%d/1\"}",
			 i > 0 ? "," : "", i);
		assert_int_equal(buf_adds(&b, m), GW_OK);
	}
	assert_int_equal(buf_adds(&b, "]}"), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);
	oo = fhir_outcome_new();
	assert_int_equal(validate_document(ctx, doc->root, NULL, oo), GW_OK);
	if (ctx->types.count > 1000)
		fail_msg("the type cache holds %zu entries after 3000 "
			 "references to made-up types",
			 ctx->types.count);
	json_decref(oo);
	fj_doc_free(doc);
	buf_cleanup(&b);
	validate_ctx_free(ctx);
	rules_set_free(set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_agrees_with_the_evaluator),
	    cmocka_unit_test(test_unsure_forms_get_no_plan),
	    cmocka_unit_test(test_choice_member_left_to_the_evaluator),
	    cmocka_unit_test(test_type_memo_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
