/* Unit tests for the rules module: the committed schemas/ (R4 and STU3
 * facts checked against the sources), snapshot generation on hand-written
 * differentials, value set expansion, XML input, the rule-file reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"
#include "rules_impl.h"
#include "util.h"
#include "xmlfhir.h"

#define R4PZP	  "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define R4PZP_OLD "https://fhir.iknl.nl/fhir/StructureDefinition/"
#define STU3PZP	  "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
#define NICTIZ	  "http://nictiz.nl/fhir/StructureDefinition/"
#define CORE	  "http://hl7.org/fhir/StructureDefinition/"
#define TEST	  "http://example.org/fhir/StructureDefinition/"

static struct rules_set *r4, *stu3;

static const char *
srcdir(void)
{
	const char *s = getenv("PZPGW_SRCDIR");

	return s != NULL ? s : ".";
}

static void
data_path(char *out, size_t n, const char *rel)
{
	snprintf(out, n, "%s/%s", srcdir(), rel);
}

static struct rules_set *
load_schemas(enum rules_fhir fhir)
{
	char dir[1024], err[512];
	struct rules_set *set = rules_set_new(fhir);
	enum gw_err rc;

	assert_non_null(set);
	data_path(dir, sizeof(dir), "schemas");
	rc = rules_load_dir(set, dir, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("rules_load_dir(%s): got %s (%s), want ok", dir,
			 gw_strerror(rc), err);
	return set;
}

static int
setup(void **state)
{
	r4 = load_schemas(RULES_R4);
	stu3 = load_schemas(RULES_STU3);
	return 0;
}

static int
teardown(void **state)
{
	rules_set_free(r4);
	rules_set_free(stu3);
	return 0;
}

static const struct rules_structure *
need_sd(const struct rules_set *set, const char *url)
{
	const struct rules_structure *st = rules_structure(set, url);

	if (st == NULL)
		fail_msg("structure %s: got none, want it", url);
	return st;
}

static const struct rules_element *
el(const struct rules_structure *st, const char *id)
{
	for (size_t i = 0; i < st->nelements; i++)
		if (strcmp(st->elements[i].id, id) == 0)
			return &st->elements[i];
	fail_msg("%s: element %s: got none, want it", st->url, id);
	return NULL;
}

static bool
has_el(const struct rules_structure *st, const char *id)
{
	for (size_t i = 0; i < st->nelements; i++)
		if (strcmp(st->elements[i].id, id) == 0)
			return true;
	return false;
}

static void
card(const struct rules_element *e, uint32_t min, uint32_t max)
{
	if (e->min != min || e->max != max)
		fail_msg("%s: got %u..%u, want %u..%u", e->id, e->min, e->max,
			 min, max);
}

static bool
has_target(const struct rules_element *e, const char *url)
{
	for (size_t t = 0; t < e->ntypes; t++)
		for (size_t k = 0; k < e->types[t].ntargets; k++)
			if (strcmp(e->types[t].targets[k], url) == 0)
				return true;
	return false;
}

static bool
has_profile(const struct rules_element *e, const char *url)
{
	for (size_t t = 0; t < e->ntypes; t++)
		for (size_t k = 0; k < e->types[t].nprofiles; k++)
			if (strcmp(e->types[t].profiles[k], url) == 0)
				return true;
	return false;
}

static bool
has_constraint(const struct rules_element *e, const char *key)
{
	for (size_t i = 0; i < e->nconstraints; i++)
		if (strcmp(e->constraints[i].key, key) == 0)
			return true;
	return false;
}

/* The JSON of a fixed/pattern member, e.g. {"fixedUri":"x"}. */
static void
value_is(const struct fj_node *n, const char *want)
{
	struct buf b;

	if (n == NULL)
		fail_msg("value: got none, want %s", want);
	buf_init(&b, 1 << 16);
	assert_int_equal(buf_printf(&b, "{\"%.*s\":", (int)n->keylen, n->key),
			 GW_OK);
	assert_int_equal(fj_dump(n, FJ_CANONICAL, &b), GW_OK);
	assert_int_equal(buf_addc(&b, '}'), GW_OK);
	if (strcmp(b.data, want) != 0)
		fail_msg("value: got %s, want %s", b.data, want);
	buf_cleanup(&b);
}

static void
test_r4_core_patient(void **state)
{
	const struct rules_structure *st = rules_type(r4, "Patient");
	const struct rules_element *g;
	const struct rules_valueset *vs;
	static const char *const codes[] = {"female", "male", "other",
					    "unknown"};

	assert_non_null(st);
	assert_string_equal(st->url, CORE "Patient");
	assert_string_equal(st->kind, "resource");
	assert_false(st->constraint);
	assert_int_equal(st->fhir, RULES_R4);
	g = el(st, "Patient.gender");
	card(g, 0, 1);
	assert_int_equal(g->base_max, 1);
	assert_int_equal(g->ntypes, 1);
	assert_string_equal(g->types[0].code, "code");
	assert_int_equal(g->strength, RULES_BIND_REQUIRED);
	assert_string_equal(
	    g->valueset, "http://hl7.org/fhir/ValueSet/administrative-gender");
	vs = rules_valueset(r4, g->valueset);
	assert_non_null(vs);
	assert_true(vs->complete);
	assert_int_equal(vs->ncodes, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_true(rules_valueset_has(
		    vs, "http://hl7.org/fhir/administrative-gender", codes[i]));
		assert_true(rules_valueset_has(vs, NULL, codes[i]));
	}
	assert_false(rules_valueset_has(
	    vs, "http://hl7.org/fhir/administrative-gender", "Male"));
	assert_false(rules_valueset_has(vs, "http://example.org", "male"));
	/* "|version" suffixes resolve by URL */
	assert_ptr_equal(rules_valueset(r4, "http://hl7.org/fhir/ValueSet/"
					    "administrative-gender|4.0.1"),
			 vs);
	assert_ptr_equal(rules_structure(r4, CORE "Patient|4.0.1"), st);
	/* arrays and choice types */
	assert_int_equal(el(st, "Patient.name")->base_max, RULES_UNBOUNDED);
	assert_int_equal(el(st, "Patient.deceased[x]")->ntypes, 2);
	/* the id element is typed through the fhir-type extension */
	assert_string_equal(el(st, "Patient.id")->types[0].code, "string");
	assert_true(has_constraint(el(st, "Patient"), "dom-2"));
	/* datatypes and primitive types are there too */
	assert_string_equal(rules_type(r4, "CodeableConcept")->kind,
			    "complex-type");
	assert_string_equal(rules_type(r4, "dateTime")->kind, "primitive-type");
	assert_null(rules_type(r4, "NoSuchType"));
	/* core value sets defined by filters on core code systems are
	 * expanded: v2-0131 is-not-a O, v3-ActReason is-a PurposeOfUse */
	vs = rules_valueset(r4, "http://hl7.org/fhir/ValueSet/"
				"patient-contactrelationship");
	assert_true(vs->complete);
	assert_true(rules_valueset_has(
	    vs, "http://terminology.hl7.org/CodeSystem/v2-0131", "N"));
	assert_false(rules_valueset_has(
	    vs, "http://terminology.hl7.org/CodeSystem/v2-0131", "O"));
	vs = rules_valueset(r4, "http://terminology.hl7.org/ValueSet/"
				"v3-PurposeOfUse");
	assert_true(vs->complete);
	assert_true(rules_valueset_has(
	    vs, "http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT"));
	/* STU3-only elements are not in the R4 set */
	assert_false(has_el(st, "Patient.animal"));
	assert_true(has_el(rules_type(stu3, "Patient"), "Patient.animal"));
}

/* The newest PZP TreatmentDirective: its own differential plus what it
 * inherits from nl-core-TreatmentDirective2 and zib-TreatmentDirective2
 * (facts read from the three differentials). */
static void
test_r4_pzp_treatment_directive(void **state)
{
	const struct rules_structure *st =
	    need_sd(r4, R4PZP "ACP-TreatmentDirective");
	const struct rules_element *e;

	assert_string_equal(st->type, "Consent");
	assert_string_equal(st->base, NICTIZ "nl-core-TreatmentDirective2");
	assert_true(st->constraint);
	/* PZP: patient must be an ACP-Patient */
	e = el(st, "Consent.patient");
	assert_true(has_target(e, R4PZP "ACP-Patient"));
	assert_false(has_target(e, NICTIZ "nl-core-Patient"));
	/* PZP: sourceReference narrowed to ACP-AdvanceDirective; the
	 * slicing (type, $this) comes from the zib */
	e = el(st, "Consent.source[x]:sourceReference");
	assert_string_equal(e->slice_name, "sourceReference");
	assert_int_equal(e->ntypes, 1);
	assert_string_equal(e->types[0].code, "Reference");
	assert_true(has_target(e, R4PZP "ACP-AdvanceDirective"));
	e = el(st, "Consent.source[x]");
	assert_non_null(e->slicing);
	assert_int_equal(e->slicing->disc[0].type, RULES_DISC_TYPE);
	assert_string_equal(e->slicing->disc[0].path, "$this");
	/* zib: category slice treatmentDirectiveCode 1..1, pattern SNOMED
	 * 129125009, category sliced by value $this */
	e = el(st, "Consent.category");
	assert_int_equal(e->slicing->disc[0].type, RULES_DISC_VALUE);
	assert_string_equal(e->slicing->disc[0].path, "$this");
	e = el(st, "Consent.category:treatmentDirectiveCode");
	card(e, 1, 1);
	value_is(e->pattern, "{\"patternCodeableConcept\":{\"coding\":[{"
			     "\"code\":\"129125009\",\"system\":"
			     "\"http://snomed.info/sct\"}]}}");
	/* zib: scope pattern consentscope#treatment */
	value_is(el(st, "Consent.scope")->pattern,
		 "{\"patternCodeableConcept\":{\"coding\":[{\"code\":"
		 "\"treatment\",\"system\":\"http://terminology.hl7.org/"
		 "CodeSystem/consentscope\"}]}}");
	/* zib: provision.code max 1, required binding */
	e = el(st, "Consent.provision.code");
	card(e, 0, 1);
	assert_int_equal(e->base_max, RULES_UNBOUNDED);
	assert_int_equal(e->strength, RULES_BIND_REQUIRED);
	assert_string_equal(e->valueset,
			    "http://decor.nictiz.nl/fhir/ValueSet/"
			    "2.16.840.1.113883.2.4.3.11.60.40.2.2.2.1--"
			    "20200901000000");
	/* zib: comment extension max 1 with the ext-Comment profile, whose
	 * own definition gives url fixed and value[x] string */
	e = el(st, "Consent.extension:comment");
	card(e, 0, 1);
	assert_true(has_profile(e, NICTIZ "ext-Comment"));
	value_is(el(st, "Consent.extension:comment.url")->fixed,
		 "{\"fixedUri\":\"" NICTIZ "ext-Comment\"}");
	assert_string_equal(
	    el(st, "Consent.extension:comment.value[x]")->types[0].code,
	    "string");
	assert_int_equal(el(st, "Consent.extension")->slicing->disc[0].type,
			 RULES_DISC_VALUE);
	assert_string_equal(el(st, "Consent.extension")->slicing->disc[0].path,
			    "url");
	/* nl-core: additionalAdvanceDirective value -> nl-core-AdvanceDirective */
	e = el(st, "Consent.extension:additionalAdvanceDirective.value[x]");
	assert_true(has_target(e, NICTIZ "nl-core-AdvanceDirective"));
	/* zib: modifier extension specificationOther */
	assert_true(
	    has_profile(el(st, "Consent.modifierExtension:specificationOther"),
			NICTIZ "ext-TreatmentDirective2.SpecificationOther"));
	/* zib: actor sliced by role; agreementParty role pattern CONSENTER;
	 * PZP: its reference targets */
	e = el(st, "Consent.provision.actor");
	assert_string_equal(e->slicing->disc[0].path, "role");
	value_is(el(st, "Consent.provision.actor:agreementParty.role")->pattern,
		 "{\"patternCodeableConcept\":{\"coding\":[{\"code\":"
		 "\"CONSENTER\",\"system\":\"http://terminology.hl7.org/"
		 "CodeSystem/v3-RoleCode\"}]}}");
	e = el(st, "Consent.provision.actor:agreementParty.reference");
	assert_true(has_target(e, R4PZP "ACP-ContactPerson"));
	assert_true(
	    has_target(e, R4PZP "ACP-HealthProfessional-PractitionerRole"));
	assert_false(has_target(e, CORE "Device"));
	/* invariants accumulate: core, zib */
	e = el(st, "Consent");
	assert_true(has_constraint(e, "ppc-1"));
	assert_true(has_constraint(e, "dom-2"));
	assert_true(has_constraint(e, "zib-TreatmentDirective2-1"));
	assert_true(has_constraint(e, "zib-TreatmentDirective2-2"));
	/* the core binding of status survives */
	assert_int_equal(el(st, "Consent.status")->strength,
			 RULES_BIND_REQUIRED);
	/* both generations are there */
	need_sd(r4, R4PZP "ACP-InformRelativesRequest");
	need_sd(r4, R4PZP "ACP-SenseOfPurpose");
	need_sd(r4, R4PZP_OLD "ACP-TreatmentDirective");
	need_sd(r4, R4PZP_OLD "ACP-OtherImportantInformation");
}

/* STU3 ACP-AdvanceDirective on zib-AdvanceDirective (zib2017, XML). */
static void
test_stu3_pzp_advance_directive(void **state)
{
	const struct rules_structure *st =
	    need_sd(stu3, STU3PZP "ACP-AdvanceDirective");
	const struct rules_element *e;

	assert_int_equal(st->fhir, RULES_STU3);
	assert_string_equal(st->base, NICTIZ "zib-AdvanceDirective");
	/* zib (XML): category min 2, slice livingWill 1..1 with pattern */
	card(el(st, "Consent.category"), 2, RULES_UNBOUNDED);
	e = el(st, "Consent.category:livingWill");
	card(e, 1, 1);
	value_is(e->pattern, "{\"patternCodeableConcept\":{\"coding\":[{"
			     "\"code\":\"11341000146107\",\"system\":"
			     "\"http://snomed.info/sct\"}]}}");
	e = el(st, "Consent.category:typeOfLivingWill");
	card(e, 1, 1);
	assert_int_equal(e->strength, RULES_BIND_REQUIRED);
	assert_string_equal(e->valueset,
			    "http://decor.nictiz.nl/fhir/ValueSet/"
			    "2.16.840.1.113883.2.4.3.11.60.40.2.7.15.1--"
			    "20171231000000");
	/* zib: datatype children constrained below the slice */
	card(el(st, "Consent.category:typeOfLivingWill.coding.system"), 1, 1);
	/* zib: extensions with their profiles */
	e = el(st, "Consent.extension:comment");
	card(e, 0, 1);
	assert_true(has_profile(e, NICTIZ "Comment"));
	assert_true(has_profile(el(st, "Consent.extension:disorder"),
				NICTIZ "zib-AdvanceDirective-Disorder"));
	/* PZP: patient is an ACP-Patient; source[x] only Attachment */
	assert_true(
	    has_target(el(st, "Consent.patient"), STU3PZP "ACP-Patient"));
	e = el(st, "Consent.source[x]");
	assert_int_equal(e->ntypes, 1);
	assert_string_equal(e->types[0].code, "Attachment");
	/* STU3 core is below it */
	assert_true(has_constraint(el(st, "Consent"), "ppc-1"));
	assert_int_equal(el(st, "Consent.status")->strength,
			 RULES_BIND_REQUIRED);
}

/* The ICD value set: SNOMED is-a 72506001, expanded from the codes the
 * STU3 package enumerates, with the expansion noted. */
static void
test_icd_valueset(void **state)
{
	static const char *const urls[] = {
	    "https://api.iknl.nl/docs/pzp/r4/ValueSet/"
	    "ACP-MedicalDeviceProductType-ICD",
	    "https://fhir.iknl.nl/fhir/ValueSet/"
	    "ACP-MedicalDeviceProductType-ICD"};

	for (size_t i = 0; i < 2; i++) {
		const struct rules_valueset *vs = rules_valueset(r4, urls[i]);

		assert_non_null(vs);
		assert_true(vs->complete);
		assert_int_equal(vs->ncodes, 6);
		assert_true(rules_valueset_has(vs, "http://snomed.info/sct",
					       "72506001"));
		assert_true(rules_valueset_has(vs, "http://snomed.info/sct",
					       "1236894001"));
		assert_false(rules_valueset_has(vs, "http://snomed.info/sct",
						"129125009"));
		assert_non_null(strstr(vs->expansion, "72506001"));
	}
	assert_non_null(rules_valueset(stu3, "https://api.iknl.nl/docs/pzp/"
					     "stu3/ValueSet/"
					     "ACP-MedicalDeviceProductType-"
					     "ICD"));
}

/* A fresh R4 set with the hand-written terminology and profiles. */
static struct rules_set *
load_test_profiles(const char *sd)
{
	struct rules_set *set = load_schemas(RULES_R4);
	char path[1024], err[512];
	enum gw_err rc;

	data_path(path, sizeof(path), "tests/data/rules/terminology");
	rc = rules_add_path(set, path, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("add %s: got %s (%s)", path, gw_strerror(rc), err);
	data_path(path, sizeof(path), sd);
	rc = rules_add_path(set, path, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("add %s: got %s (%s)", path, gw_strerror(rc), err);
	return set;
}

static void
test_snapshot_generation(void **state)
{
	struct rules_set *set = load_test_profiles("tests/data/rules");
	const struct rules_structure *st = need_sd(set, TEST "test-patient");
	const struct rules_element *e;

	assert_true(st->constraint);
	assert_string_equal(st->type, "Patient");
	/* everything of the base is there, in order, root first */
	assert_string_equal(st->elements[0].id, "Patient");
	assert_true(st->nelements > rules_type(set, "Patient")->nelements);
	/* gender 1..1, binding kept from the core */
	e = el(st, "Patient.gender");
	card(e, 1, 1);
	assert_true(e->must_support);
	assert_int_equal(e->strength, RULES_BIND_REQUIRED);
	/* identifier sliced by value:system, min 1; slice bsn 0..1 with
	 * its datatype children expanded */
	e = el(st, "Patient.identifier");
	card(e, 1, RULES_UNBOUNDED);
	assert_non_null(e->slicing);
	assert_int_equal(e->slicing->ndisc, 1);
	assert_int_equal(e->slicing->disc[0].type, RULES_DISC_VALUE);
	assert_string_equal(e->slicing->disc[0].path, "system");
	assert_int_equal(e->slicing->rules, RULES_SLICE_OPEN);
	e = el(st, "Patient.identifier:bsn");
	assert_string_equal(e->slice_name, "bsn");
	assert_string_equal(e->path, "Patient.identifier");
	card(e, 0, 1);
	assert_null(e->slicing);
	e = el(st, "Patient.identifier:bsn.system");
	assert_string_equal(e->path, "Patient.identifier.system");
	card(e, 1, 1);
	value_is(e->fixed,
		 "{\"fixedUri\":\"http://fhir.nl/fhir/NamingSystem/bsn\"}");
	card(el(st, "Patient.identifier:bsn.value"), 1, 1);
	assert_true(has_el(st, "Patient.identifier:bsn.period"));
	/* the slice comes after the sliced element's own children */
	assert_true(el(st, "Patient.identifier:bsn") >
		    el(st, "Patient.identifier"));
	/* choice rename deceasedBoolean: deceased[x] narrowed and closed-
	 * sliced by type, the constraint on the type slice */
	e = el(st, "Patient.deceased[x]");
	assert_int_equal(e->ntypes, 1);
	assert_string_equal(e->types[0].code, "boolean");
	assert_null(e->fixed);
	assert_int_equal(e->slicing->disc[0].type, RULES_DISC_TYPE);
	assert_int_equal(e->slicing->rules, RULES_SLICE_CLOSED);
	e = el(st, "Patient.deceased[x]:deceasedBoolean");
	assert_string_equal(e->slice_name, "deceasedBoolean");
	assert_string_equal(e->types[0].code, "boolean");
	value_is(e->fixed, "{\"fixedBoolean\":false}");
	/* binding replaced, version suffix dropped */
	e = el(st, "Patient.maritalStatus");
	assert_int_equal(e->strength, RULES_BIND_REQUIRED);
	assert_string_equal(e->valueset,
			    "http://example.org/fhir/ValueSet/test-colors");
	/* backbone child */
	e = el(st, "Patient.contact.relationship");
	card(e, 0, 1);
	assert_int_equal(e->base_max, RULES_UNBOUNDED);
	assert_non_null(e->pattern);
	/* maxLength below a datatype; min/max value on a type slice */
	assert_int_equal(el(st, "Patient.name.family")->max_length, 70);
	assert_int_equal(el(st, "Patient.name.given")->max_length, 0);
	e = el(st, "Patient.multipleBirth[x]:multipleBirthInteger");
	assert_string_equal(e->types[0].code, "integer");
	value_is(e->min_value, "{\"minValueInteger\":1}");
	value_is(e->max_value, "{\"maxValueInteger\":9}");
	assert_null(el(st, "Patient.multipleBirth[x]")->min_value);
	/* two datatype levels: Reference -> Identifier */
	card(el(st, "Patient.managingOrganization.identifier.system"), 1, 1);
	/* extension slice from the extension's own definition */
	e = el(st, "Patient.extension:birthPlace");
	card(e, 0, 1);
	assert_true(has_profile(e, CORE "patient-birthPlace"));
	e = el(st, "Patient.extension:birthPlace.value[x]");
	card(e, 1, 1);
	assert_int_equal(e->ntypes, 1);
	assert_string_equal(e->types[0].code, "Address");
	value_is(el(st, "Patient.extension:birthPlace.url")->fixed,
		 "{\"fixedUri\":\"" CORE "patient-birthPlace\"}");
	assert_string_equal(el(st, "Patient.extension")->slicing->disc[0].path,
			    "url");
	/* invariants: own plus inherited */
	e = el(st, "Patient");
	assert_true(has_constraint(e, "tst-1"));
	assert_true(has_constraint(e, "dom-2"));

	/* a profile on the profile: constraints accumulate, slices add up */
	st = need_sd(set, TEST "test-patient-child");
	e = el(st, "Patient");
	assert_true(has_constraint(e, "tst-1"));
	assert_true(has_constraint(e, "tst-2"));
	for (size_t i = 0; i < e->nconstraints; i++)
		if (strcmp(e->constraints[i].key, "tst-2") == 0) {
			assert_false(e->constraints[i].error);
			assert_string_equal(e->constraints[i].source,
					    TEST "test-patient-child");
		}
	card(el(st, "Patient.identifier:bsn"), 1, 1);
	value_is(el(st, "Patient.identifier:bsn.system")->fixed,
		 "{\"fixedUri\":\"http://fhir.nl/fhir/NamingSystem/bsn\"}");
	e = el(st, "Patient.identifier:local");
	card(e, 0, RULES_UNBOUNDED);
	value_is(el(st, "Patient.identifier:local.system")->pattern,
		 "{\"patternUri\":\"urn:oid:2.16.528.1.1007.3.3.1234567\"}");
	assert_true(el(st, "Patient.identifier:local") >
		    el(st, "Patient.identifier:bsn.period"));
	e = el(st, "Patient.gender");
	card(e, 1, 1);
	assert_int_equal(e->strength, RULES_BIND_EXTENSIBLE);

	/* a differential without ids: slices from the element order */
	st = need_sd(set, TEST "test-noids");
	card(el(st, "Patient.identifier:bsn"), 0, 1);
	value_is(el(st, "Patient.identifier:bsn.system")->fixed,
		 "{\"fixedUri\":\"http://fhir.nl/fhir/NamingSystem/bsn\"}");
	assert_null(el(st, "Patient.identifier:bsn.system")->pattern);
	value_is(el(st, "Patient.identifier:other.system")->pattern,
		 "{\"patternUri\":\"urn:oid:2.16.840.1.113883.2.4.6.3\"}");
	assert_null(el(st, "Patient.identifier:other.system")->fixed);
	assert_false(has_el(st, "Patient.identifier.system"));
	card(el(st, "Patient.gender"), 1, 1);

	/* re-slicing and children of a contentReference element */
	st = need_sd(set, TEST "test-questionnaire");
	e = el(st, "Questionnaire.identifier");
	assert_true(e->slicing->ordered);
	assert_int_equal(e->slicing->rules, RULES_SLICE_CLOSED);
	e = el(st, "Questionnaire.identifier:local");
	assert_string_equal(e->slicing->disc[0].path, "use");
	assert_int_equal(e->slicing->rules, RULES_SLICE_OPEN_AT_END);
	e = el(st, "Questionnaire.identifier:local/usual");
	assert_string_equal(e->slice_name, "local/usual");
	card(e, 0, 1);
	assert_true(e > el(st, "Questionnaire.identifier:local.assigner"));
	value_is(el(st, "Questionnaire.identifier:local/usual.use")->fixed,
		 "{\"fixedCode\":\"usual\"}");
	/* the re-slice inherits its slice's constraints */
	value_is(el(st, "Questionnaire.identifier:local/usual.system")->fixed,
		 "{\"fixedUri\":\"urn:oid:2.16.528.1.1007.3.3.1234567.1\"}");
	e = el(st, "Questionnaire.item.item");
	assert_string_equal(e->content_ref, "Questionnaire.item");
	card(e, 0, 10);
	card(el(st, "Questionnaire.item.item.text"), 1, 1);
	card(el(st, "Questionnaire.item.item.linkId"), 1, 1);
	/* the recursion point below is the base definition again */
	card(el(st, "Questionnaire.item.item.item"), 0, RULES_UNBOUNDED);
	rules_set_free(set);
}

static void
test_valueset_expansion(void **state)
{
	struct rules_set *set = load_test_profiles("tests/data/rules");
	const struct rules_valueset *vs;
	const char *cs = "http://example.org/fhir/CodeSystem/test-colors";

	/* whole code system, nested concepts included */
	vs =
	    rules_valueset(set, "http://example.org/fhir/ValueSet/test-colors");
	assert_non_null(vs);
	assert_true(vs->complete);
	assert_int_equal(vs->ncodes, 4);
	assert_true(rules_valueset_has(vs, cs, "crimson"));
	assert_true(rules_valueset_has(vs, cs, "blue"));
	/* include of a value set plus a concept, minus an exclude */
	vs = rules_valueset(set, "http://example.org/fhir/ValueSet/test-warm");
	assert_non_null(vs);
	assert_true(vs->complete);
	assert_int_equal(vs->ncodes, 4);
	assert_true(rules_valueset_has(vs, cs, "red"));
	assert_false(rules_valueset_has(vs, cs, "blue"));
	assert_true(rules_valueset_has(
	    vs, "http://example.org/fhir/CodeSystem/test-extra", "orange"));
	for (size_t i = 1; i < vs->ncodes; i++)
		assert_true(
		    strcmp(vs->codes[i - 1].system, vs->codes[i].system) < 0 ||
		    strcmp(vs->codes[i - 1].code, vs->codes[i].code) < 0);
	/* filters on a local code system with a hierarchy: is-a (the
	 * concept and its descendants), is-not-a, exclude by descendent-of
	 * (yellow has none) and by value set */
	vs = rules_valueset(set, "http://example.org/fhir/ValueSet/test-reds");
	assert_non_null(vs);
	assert_true(vs->complete);
	assert_int_equal(vs->ncodes, 2);
	assert_true(rules_valueset_has(vs, cs, "red"));
	assert_true(rules_valueset_has(vs, cs, "crimson"));
	vs = rules_valueset(set,
			    "http://example.org/fhir/ValueSet/test-not-red");
	assert_non_null(vs);
	assert_true(vs->complete);
	assert_int_equal(vs->ncodes, 1);
	assert_true(rules_valueset_has(vs, cs, "yellow"));
	assert_false(rules_valueset_has(vs, cs, "blue"));
	assert_false(rules_valueset_has(vs, cs, "crimson"));
	/* a filter that cannot be computed offline */
	vs =
	    rules_valueset(set, "http://example.org/fhir/ValueSet/test-filter");
	assert_non_null(vs);
	assert_false(vs->complete);
	assert_int_equal(vs->ncodes, 0);
	rules_set_free(set);
}

static void
same_elements(const struct rules_structure *a, const struct rules_structure *b)
{
	struct buf x, y;

	if (a->nelements != b->nelements)
		fail_msg("%s: got %zu elements, want %zu", a->url, a->nelements,
			 b->nelements);
	for (size_t i = 0; i < a->nelements; i++) {
		const struct rules_element *p = &a->elements[i];
		const struct rules_element *q = &b->elements[i];

		assert_string_equal(p->id, q->id);
		assert_string_equal(p->path, q->path);
		assert_int_equal(p->min, q->min);
		assert_int_equal(p->max, q->max);
		assert_int_equal(p->base_max, q->base_max);
		assert_int_equal(p->ntypes, q->ntypes);
		for (size_t t = 0; t < p->ntypes; t++) {
			assert_string_equal(p->types[t].code, q->types[t].code);
			assert_int_equal(p->types[t].nprofiles,
					 q->types[t].nprofiles);
			assert_int_equal(p->types[t].ntargets,
					 q->types[t].ntargets);
		}
		assert_int_equal(p->strength, q->strength);
		assert_true((p->valueset == NULL) == (q->valueset == NULL));
		if (p->valueset != NULL)
			assert_string_equal(p->valueset, q->valueset);
		assert_int_equal(p->nconstraints, q->nconstraints);
		assert_true((p->slicing == NULL) == (q->slicing == NULL));
		assert_true((p->slice_name == NULL) == (q->slice_name == NULL));
		assert_int_equal(p->must_support, q->must_support);
		assert_true((p->fixed == NULL) == (q->fixed == NULL));
		assert_true((p->pattern == NULL) == (q->pattern == NULL));
		assert_true((p->min_value == NULL) == (q->min_value == NULL));
		assert_true((p->max_value == NULL) == (q->max_value == NULL));
		assert_int_equal(p->max_length, q->max_length);
		buf_init(&x, 1 << 16);
		buf_init(&y, 1 << 16);
		if (p->fixed != NULL) {
			assert_int_equal(fj_dump(p->fixed, FJ_CANONICAL, &x),
					 GW_OK);
			assert_int_equal(fj_dump(q->fixed, FJ_CANONICAL, &y),
					 GW_OK);
			assert_string_equal(x.data, y.data);
			assert_int_equal(p->fixed->keylen, q->fixed->keylen);
		}
		buf_cleanup(&x);
		buf_cleanup(&y);
	}
}

static void
test_xml_equals_json(void **state)
{
	struct rules_set *js = load_test_profiles(
	    "tests/data/rules/StructureDefinition-test-patient.json");
	struct rules_set *xs = load_test_profiles(
	    "tests/data/rules/xml/StructureDefinition-test-patient.xml");

	same_elements(need_sd(js, TEST "test-patient"),
		      need_sd(xs, TEST "test-patient"));
	/* and a real XML source: the zib2017 parent compiled from XML */
	assert_string_equal(need_sd(stu3, NICTIZ "zib-AdvanceDirective")->type,
			    "Consent");
	rules_set_free(js);
	rules_set_free(xs);
}

static void
test_xml_instance(void **state)
{
	static const char xml[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<Patient xmlns=\"http://hl7.org/fhir\">\n"
	    "  <id value=\"p1\"/>\n"
	    "  <text><status value=\"generated\"/>"
	    "<div xmlns=\"http://www.w3.org/1999/xhtml\">Hi</div></text>\n"
	    "  <contained><Organization><id value=\"o1\"/>"
	    "<name value=\"Zkh\"/></Organization></contained>\n"
	    "  <extension url=\"http://example.org/x\">"
	    "<valueString value=\"a\"/></extension>\n"
	    "  <active value=\"true\"/>\n"
	    "  <name><family value=\"Jansen\"/><given value=\"A\"/>"
	    "<given value=\"B\"><extension url=\"http://example.org/q\">"
	    "<valueCode value=\"IN\"/></extension></given>"
	    "<given value=\"C\"/></name>\n"
	    "  <gender><extension url=\"http://example.org/g\">"
	    "<valueBoolean value=\"true\"/></extension></gender>\n"
	    "  <birthDate value=\"1950-02-03\"/>\n"
	    "  <multipleBirthInteger value=\"2\"/>\n"
	    "</Patient>\n";
	/* arrays where max > 1, primitives typed, "_name" for extensions
	 * (aligned with null), a value-less primitive only as "_name" */
	static const char want[] =
	    "{\"_gender\":{\"extension\":[{\"url\":\"http://example.org/g\","
	    "\"valueBoolean\":true}]},"
	    "\"active\":true,\"birthDate\":\"1950-02-03\","
	    "\"contained\":[{\"id\":\"o1\",\"name\":\"Zkh\","
	    "\"resourceType\":\"Organization\"}],"
	    "\"extension\":[{\"url\":\"http://example.org/x\","
	    "\"valueString\":\"a\"}],\"id\":\"p1\","
	    "\"multipleBirthInteger\":2,"
	    "\"name\":[{\"_given\":[null,{\"extension\":[{\"url\":"
	    "\"http://example.org/q\",\"valueCode\":\"IN\"}]},null],"
	    "\"family\":\"Jansen\",\"given\":[\"A\",\"B\",\"C\"]}],"
	    "\"resourceType\":\"Patient\",\"text\":{\"div\":"
	    "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">Hi</div>\","
	    "\"status\":\"generated\"}}";
	struct fj_doc *doc = NULL;
	char err[256];
	struct buf b;

	assert_int_equal(
	    xmlfhir_to_fjson(xml, strlen(xml), r4, &doc, err, sizeof(err)),
	    GW_OK);
	buf_init(&b, 1 << 16);
	assert_int_equal(fj_dump(doc->root, FJ_CANONICAL, &b), GW_OK);
	if (strcmp(b.data, want) != 0)
		fail_msg("got  %s\nwant %s", b.data, want);
	/* it is in the definitions' order */
	fj_doc_free(doc);
	assert_int_equal(xmlfhir_to_fjson_flags(xml, strlen(xml), r4,
						XMLFHIR_STRICT_ORDER, &doc, err,
						sizeof(err)),
			 GW_OK);
	{
		static const char swapped[] =
		    "<Patient xmlns=\"http://hl7.org/fhir\">"
		    "<birthDate value=\"1950-02-03\"/><active value=\"true\"/>"
		    "</Patient>";
		struct fj_doc *d2 = NULL;

		assert_int_equal(xmlfhir_to_fjson_flags(swapped,
							strlen(swapped), r4,
							XMLFHIR_STRICT_ORDER,
							&d2, err, sizeof(err)),
				 GW_PARSE);
		assert_non_null(strstr(err, "active out of order"));
		assert_int_equal(xmlfhir_to_fjson(swapped, strlen(swapped), r4,
						  &d2, err, sizeof(err)),
				 GW_OK);
		fj_doc_free(d2);
	}
	/* positions are XML lines */
	assert_int_equal(fj_get(doc->root, "birthDate")->line, 10);
	assert_null(fj_get(doc->root, "gender"));
	buf_cleanup(&b);
	fj_doc_free(doc);
	/* FHIR XML rules: no empty primitives, no unknown attributes, no
	 * text outside xhtml; attributes of other namespaces are fine */
	{
		static const char *const bad[] = {
		    "<Patient "
		    "xmlns=\"http://hl7.org/fhir\"><active/></Patient>",
		    "<Patient xmlns=\"http://hl7.org/fhir\"><active "
		    "value=\"true\" x=\"1\"/></Patient>",
		    "<Patient xmlns=\"http://hl7.org/fhir\"><name "
		    "value=\"x\"/></Patient>",
		    "<Patient xmlns=\"http://hl7.org/fhir\">hello</Patient>",
		    "<Patient xmlns=\"http://hl7.org/fhir\" id=\"x\"/>",
		    /* JSON's "_name" form is no XML element; beside a
		       primitive with extensions it crashed the reader
		       (fuzz_xmlfhir) */
		    "<Patient xmlns=\"http://hl7.org/fhir\"><name><_given "
		    "value=\"x\"/><given><extension url=\"http://e.org/q\">"
		    "<valueCode value=\"IN\"/></extension></given></name>"
		    "</Patient>",
		    "<Patient xmlns=\"http://hl7.org/fhir\"><_active "
		    "value=\"true\"/></Patient>",
		};
		static const char ok[] =
		    "<Patient xmlns=\"http://hl7.org/fhir\" "
		    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
		    "xsi:schemaLocation=\"http://hl7.org/fhir x.xsd\">"
		    "<active value=\"false\"/></Patient>";

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			if (xmlfhir_to_fjson(bad[i], strlen(bad[i]), r4, &doc,
					     err, sizeof(err)) != GW_PARSE)
				fail_msg("%s: got accepted, want GW_PARSE",
					 bad[i]);
			assert_null(doc);
		}
		assert_int_equal(xmlfhir_to_fjson(ok, strlen(ok), r4, &doc, err,
						  sizeof(err)),
				 GW_OK);
		assert_false(fj_get(doc->root, "active")->u.b);
		fj_doc_free(doc);
	}
	/* not XML, not FHIR */
	assert_int_equal(xmlfhir_to_fjson("<a", 2, r4, &doc, err, sizeof(err)),
			 GW_PARSE);
	assert_null(doc);
	assert_int_equal(xmlfhir_to_fjson("<a xmlns=\"urn:x\"/>", 18, r4, &doc,
					  err, sizeof(err)),
			 GW_PARSE);
	assert_null(doc);
}

/* A div's characters stay UTF-8, in attributes too, whether or not the
 * XML declares its encoding (libxml2 alone writes &#x201C; in attributes
 * of documents without a declaration). */
static void
test_xml_div_utf8(void **state)
{
	static const char *const heads[] = {
	    "", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"};
	static const char want[] =
	    "<div xmlns=\"http://www.w3.org/1999/xhtml\" "
	    "title=\"\xe2\x80\x9cq\xe2\x80\x9d\">\xc3\xa9</div>";

	for (size_t i = 0; i < 2; i++) {
		char xml[512], err[256];
		struct fj_doc *doc = NULL;
		const char *div;

		snprintf(xml, sizeof(xml),
			 "%s<Patient xmlns=\"http://hl7.org/fhir\"><text>"
			 "<status value=\"generated\"/>%s</text></Patient>",
			 heads[i], want);
		assert_int_equal(xmlfhir_to_fjson(xml, strlen(xml), r4, &doc,
						  err, sizeof(err)),
				 GW_OK);
		div = fj_get_str(fj_get(doc->root, "text"), "div");
		assert_non_null(div);
		if (strcmp(div, want) != 0)
			fail_msg("declaration \"%s\": got %s, want %s",
				 heads[i], div, want);
		fj_doc_free(doc);
	}
}

/* A div whose namespace an ancestor declares gets the declaration in its
 * JSON text, which must stand alone as XHTML. */
static void
test_xml_div_ns(void **state)
{
	static const struct {
		const char *xml, *want;
	} cases[] = {
	    {"<Patient xmlns=\"http://hl7.org/fhir\" "
	     "xmlns:h=\"http://www.w3.org/1999/xhtml\"><text><status "
	     "value=\"generated\"/><h:div><h:p>x</h:p></h:div></text>"
	     "</Patient>",
	     "<h:div xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:p>x</h:p>"
	     "</h:div>"},
	    {"<f:Patient xmlns:f=\"http://hl7.org/fhir\" "
	     "xmlns=\"http://www.w3.org/1999/xhtml\"><f:text><f:status "
	     "value=\"generated\"/><div><p>x</p></div></f:text></f:Patient>",
	     "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>x</p></div>"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fj_doc *doc = NULL;
		const char *div;
		char err[256];

		assert_int_equal(xmlfhir_to_fjson(cases[i].xml,
						  strlen(cases[i].xml), r4,
						  &doc, err, sizeof(err)),
				 GW_OK);
		div = fj_get_str(fj_get(doc->root, "text"), "div");
		assert_non_null(div);
		if (strcmp(div, cases[i].want) != 0)
			fail_msg("got %s, want %s", div, cases[i].want);
		fj_doc_free(doc);
	}
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

/* Write the hand-written profiles as a package, read them back. */
static void
test_rule_file_roundtrip(void **state)
{
	struct rules_set *set = load_test_profiles("tests/data/rules");
	struct rules_set *back = rules_set_new(RULES_R4);
	char dir[] = "/tmp/test_rules.XXXXXX", path[256], err[256], *text;
	size_t ns = 0, nv = 0, len;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r4-local.rules", dir);
	assert_int_equal(rs_write_package(set, "local", path, &ns, &nv), GW_OK);
	assert_int_equal(ns, 4);
	assert_int_equal(nv, 6);
	assert_int_equal(rules_load_dir(back, dir, err, sizeof(err)), GW_OK);
	same_elements(need_sd(back, TEST "test-patient"),
		      need_sd(set, TEST "test-patient"));
	same_elements(need_sd(back, TEST "test-patient-child"),
		      need_sd(set, TEST "test-patient-child"));
	assert_true(rules_valueset_has(
	    rules_valueset(back, "http://example.org/fhir/ValueSet/test-warm"),
	    "http://example.org/fhir/CodeSystem/test-colors", "crimson"));
	assert_false(rules_valueset(back, "http://example.org/fhir/ValueSet/"
					  "test-filter")
			 ->complete);
	/* the value set's name (no title) is kept for findings to quote */
	assert_string_equal(
	    rules_valueset(back, "http://example.org/fhir/ValueSet/test-warm")
		->title,
	    "TestWarm");
	/* only this FHIR version's files are read */
	rules_set_free(back);
	back = rules_set_new(RULES_STU3);
	assert_int_equal(rules_load_dir(back, dir, err, sizeof(err)),
			 GW_NOTFOUND);
	rules_set_free(back);
	/* damaged files are refused with file:line */
	assert_int_equal(util_read_file(path, 1 << 24, &text, &len), GW_OK);
	{
		static const char *const bad[] = {
		    /* another format version (2: before contexts) */
		    "pzpgw-rules\t4\tr4\tlocal\t0\t0\t0\t0\t0\t0\t0\t0\t0\n",
		    "pzpgw-rules\t2\tr4\tlocal\t0\t0\t0\t0\t0\t0\t0\t0\t0\n",
		    "pzpgw-rules\t3\tr4\tlocal\t1\t0\t0\t0\t0\t0\t0\t0\t0\n",
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t1\t0\n"
		    "s\tu\nS\t0\t-\t-\t0\t-\t-\t0\t1\t-\ne\t9\n",
		    /* a structure without its CONTEXTS field */
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t1\t0\n"
		    "s\tu\nS\t0\t-\t-\t0\t-\t-\t0\t0\n",
		    /* unknown context type, string out of range, empty */
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t1\t0\n"
		    "s\tu\nS\t0\t-\t-\t0\t-\t-\t0\t0\tq:0\n",
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t1\t0\n"
		    "s\tu\nS\t0\t-\t-\t0\t-\t-\t0\t0\te:0,x:7\n",
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t1\t0\n"
		    "s\tu\nS\t0\t-\t-\t0\t-\t-\t0\t0\te:0,\n",
		    "pzpgw-rules\t3\tr4\tx\t1\t0\t0\t0\t0\t0\t0\t0\t1\n"
		    "s\tu\nV\t0\t-\t1\t-\t2\nk\t0\t0\t-\nk\t0\t0\t-\n",
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			back = rules_set_new(RULES_R4);
			assert_int_equal(rs_load_text(back, xstrdup(bad[i]),
						      strlen(bad[i]), "bad",
						      err, sizeof(err)),
					 GW_PARSE);
			assert_non_null(strstr(err, "bad:"));
			rules_set_free(back);
		}
		/* the real file cut in the middle */
		back = rules_set_new(RULES_R4);
		text[len / 2] = '\0';
		assert_int_equal(
		    rs_load_text(back, text, len / 2, "cut", err, sizeof(err)),
		    GW_PARSE);
		rules_set_free(back);
	}
	unlink(path);
	rmdir(dir);
	rules_set_free(set);
}

static void write_text(const char *path, const char *text);

/* Number of contexts of st with type t and expression expr. */
static size_t
count_ctx(const struct rules_structure *st, enum rules_ctx_type t,
	  const char *expr)
{
	size_t n = 0;

	for (size_t i = 0; i < st->ncontexts; i++)
		if (st->contexts[i].type == t &&
		    strcmp(st->contexts[i].expr, expr) == 0)
			n++;
	return n;
}

/* Extension contexts: compiled from R4 context[] and STU3 contextType +
 * context[], kept through the rule files. */
static void
test_extension_contexts(void **state)
{
	const struct rules_structure *st;
	struct rules_set *set = load_schemas(RULES_STU3);
	char dir[] = "/tmp/test_rules_ctx.XXXXXX", path[256], err[256];
	static const char sd[] =
	    "{\"resourceType\":\"StructureDefinition\","
	    "\"url\":\"http://example.org/fhir/StructureDefinition/ext-x\","
	    "\"name\":\"ExtX\",\"status\":\"draft\",\"kind\":"
	    "\"complex-type\",\"abstract\":false,\"contextType\":"
	    "\"resource\",\"context\":[\"Consent\",\"Goal.target\"],"
	    "\"type\":\"Extension\",\"baseDefinition\":"
	    "\"http://hl7.org/fhir/StructureDefinition/Extension\","
	    "\"derivation\":\"constraint\",\"differential\":{\"element\":"
	    "[{\"id\":\"Extension.url\",\"path\":\"Extension.url\","
	    "\"fixedUri\":\"http://example.org/fhir/StructureDefinition/"
	    "ext-x\"}]}}";

	(void)state;
	/* R4, from the committed rule files */
	st = need_sd(r4, R4PZP "ext-LegallyCapable-MedicalTreatmentDecisions");
	assert_int_equal(st->ncontexts, 1);
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Patient"), 1);
	st = need_sd(r4, R4PZP_OLD "ext-EncounterReference");
	assert_int_equal(st->ncontexts, 3);
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Goal"), 1);
	st = need_sd(r4, NICTIZ "ext-TreatmentDirective2.ReasonForEnding");
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Consent.provision"),
			 1);
	st = need_sd(r4, CORE "patient-birthPlace");
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Patient"), 1);
	/* a profile has none */
	assert_int_equal(need_sd(r4, R4PZP "ACP-Patient")->ncontexts, 0);
	/* STU3 */
	st = need_sd(stu3, STU3PZP
		     "ext-Patient.LegallyCapableMedicalTreatmentDecisions");
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Patient"), 1);
	/* compiled from an STU3 source */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ext.json", dir);
	write_text(path, sd);
	assert_int_equal(rules_add_path(set, path, err, sizeof(err)), GW_OK);
	st = need_sd(set, TEST "ext-x");
	assert_int_equal(st->ncontexts, 2);
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Consent"), 1);
	assert_int_equal(count_ctx(st, RULES_CTX_ELEMENT, "Goal.target"), 1);
	unlink(path);
	rmdir(dir);
	rules_set_free(set);
}

static void
test_missing_sources(void **state)
{
	struct rules_set *set = rules_set_new(RULES_R4);
	char err[256];

	assert_int_equal(
	    rules_load_dir(set, "/nonexistent/schemas", err, sizeof(err)),
	    GW_NOTFOUND);
	assert_int_equal(
	    rules_add_path(set, "/nonexistent/x.json", err, sizeof(err)),
	    GW_NOTFOUND);
	assert_null(rules_structure_at(set, 0));
	rules_set_free(set);
	rules_set_free(NULL);
}

static void
write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

/* An IG folder given at run time: files that are not FHIR are passed
 * over, a broken file given by itself is an error. */
static void
test_ig_folder(void **state)
{
	struct rules_set *set = load_schemas(RULES_R4);
	char dir[] = "/tmp/test_rules_ig.XXXXXX", path[256], err[256];
	static const char sd[] =
	    "{\"resourceType\":\"StructureDefinition\","
	    "\"url\":\"http://example.org/fhir/StructureDefinition/ig-obs\","
	    "\"name\":\"IgObs\",\"status\":\"draft\",\"kind\":"
	    "\"resource\",\"abstract\":false,\"type\":\"Observation\","
	    "\"baseDefinition\":\"http://hl7.org/fhir/StructureDefinition/"
	    "Observation\",\"derivation\":\"constraint\",\"differential\":"
	    "{\"element\":[{\"id\":\"Observation.valueQuantity.unit\","
	    "\"path\":\"Observation.valueQuantity.unit\",\"min\":1}]}}";
	static const char *const names[] = {"broken.json", "package.json",
					    "other.xml", "sd.json"};
	const struct rules_structure *st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/broken.json", dir);
	write_text(path, "{\"resourceType\": ");
	assert_int_equal(rules_add_path(set, path, err, sizeof(err)), GW_PARSE);
	assert_non_null(strstr(err, "broken.json"));
	snprintf(path, sizeof(path), "%s/package.json", dir);
	write_text(path, "{\"name\":\"x\"}");
	snprintf(path, sizeof(path), "%s/other.xml", dir);
	write_text(path, "<x/>");
	snprintf(path, sizeof(path), "%s/sd.json", dir);
	write_text(path, sd);
	assert_int_equal(rules_add_path(set, dir, err, sizeof(err)), GW_OK);
	/* a choice renamed in an R4 differential becomes a type slice */
	st = need_sd(set, "http://example.org/fhir/StructureDefinition/ig-obs");
	card(el(st, "Observation.value[x]:valueQuantity.unit"), 1, 1);
	assert_string_equal(
	    el(st, "Observation.value[x]:valueQuantity")->types[0].code,
	    "Quantity");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	rules_set_free(set);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_r4_core_patient),
	    cmocka_unit_test(test_r4_pzp_treatment_directive),
	    cmocka_unit_test(test_stu3_pzp_advance_directive),
	    cmocka_unit_test(test_icd_valueset),
	    cmocka_unit_test(test_snapshot_generation),
	    cmocka_unit_test(test_valueset_expansion),
	    cmocka_unit_test(test_xml_equals_json),
	    cmocka_unit_test(test_xml_instance),
	    cmocka_unit_test(test_xml_div_utf8),
	    cmocka_unit_test(test_xml_div_ns),
	    cmocka_unit_test(test_rule_file_roundtrip),
	    cmocka_unit_test(test_missing_sources),
	    cmocka_unit_test(test_extension_contexts),
	    cmocka_unit_test(test_ig_folder),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
