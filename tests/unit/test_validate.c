/*
 * Unit tests of the validation engine: primitive formats, every valid
 * example accepted, every invalid case raising exactly the issues of
 * tests/data/invalid/manifest.tsv, and the engine's own behaviour
 * (dedupe, detection, forced profile, parse errors, XML, invariants,
 * extensions in contentReference elements).
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

#include "outcome.h"
#include "fjson.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

struct sets {
	struct rules_set *r4, *r4ig, *stu3;
	struct validate_ctx *vr4, *vr4ig, *vstu3;
};

static struct sets S;

static const char *
srcdir(void)
{
	const char *d = getenv("PZPGW_SRCDIR");

	return d != NULL && d[0] != '\0' ? d : ".";
}

static struct rules_set *
load_set(enum rules_fhir fhir, const char *ig)
{
	struct rules_set *set = rules_set_new(fhir);
	char path[4096], errbuf[512];

	if (set == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/schemas", srcdir());
	if (rules_load_dir(set, path, errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "rules %s: %s\n", path, errbuf);
		rules_set_free(set);
		return NULL;
	}
	if (ig != NULL) {
		snprintf(path, sizeof(path), "%s/%s", srcdir(), ig);
		if (rules_add_path(set, path, errbuf, sizeof(errbuf)) !=
		    GW_OK) {
			fprintf(stderr, "ig %s: %s\n", path, errbuf);
			rules_set_free(set);
			return NULL;
		}
	}
	return set;
}

static int
setup(void **state)
{
	(void)state;
	S.r4 = load_set(RULES_R4, NULL);
	S.r4ig = load_set(RULES_R4, "tests/data/validate/ig");
	S.stu3 = load_set(RULES_STU3, NULL);
	if (S.r4 == NULL || S.r4ig == NULL || S.stu3 == NULL)
		return -1;
	if (validate_ctx_new(S.r4, &S.vr4) != GW_OK ||
	    validate_ctx_new(S.r4ig, &S.vr4ig) != GW_OK ||
	    validate_ctx_new(S.stu3, &S.vstu3) != GW_OK)
		return -1;
	/* the test profiles may be detected too, as with --ig */
	if (validate_ctx_detect_prefix(S.vr4ig, "http://example.org/fhir/") !=
	    GW_OK)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	validate_ctx_free(S.vr4);
	validate_ctx_free(S.vr4ig);
	validate_ctx_free(S.vstu3);
	rules_set_free(S.r4);
	rules_set_free(S.r4ig);
	rules_set_free(S.stu3);
	return 0;
}

/* Validate text; returns a new OperationOutcome. */
static json_t *
run_text(struct validate_ctx *ctx, const char *text, const char *profile)
{
	struct validate_opts opts = {.profile = profile};
	json_t *o = fhir_outcome_new();

	assert_non_null(o);
	assert_int_equal(validate_text(ctx, text, strlen(text), &opts, o),
			 GW_OK);
	return o;
}

static json_t *
run_file(struct validate_ctx *ctx, const char *rel)
{
	char path[4096], *text;
	size_t len;
	json_t *o = fhir_outcome_new();

	snprintf(path, sizeof(path), "%s/%s", srcdir(), rel);
	if (util_read_file(path, 64u << 20, &text, &len) != GW_OK)
		fail_msg("cannot read %s", path);
	assert_int_equal(validate_text(ctx, text, len, NULL, o), GW_OK);
	free(text);
	return o;
}

static const char *
issue_expr(const json_t *is)
{
	const char *e = json_string_value(
	    json_array_get(json_object_get(is, "expression"), 0));

	return e != NULL ? e : "-";
}

static const char *
issue_str(const json_t *is, const char *key)
{
	const char *s = json_string_value(json_object_get(is, key));

	return s != NULL ? s : "";
}

/* Number of issues matching severity/code/expression (NULL: any). */
static size_t
count_issues(const json_t *o, const char *sev, const char *code,
	     const char *expr)
{
	size_t i, n = 0;
	json_t *is;

	json_array_foreach(json_object_get(o, "issue"), i, is)
	{
		if ((sev == NULL ||
		     strcmp(issue_str(is, "severity"), sev) == 0) &&
		    (code == NULL ||
		     strcmp(issue_str(is, "code"), code) == 0) &&
		    (expr == NULL || strcmp(issue_expr(is), expr) == 0))
			n++;
	}
	return n;
}

/* Number of issues as count_issues whose diagnostics contain text. */
static size_t
count_issues_msg(const json_t *o, const char *sev, const char *code,
		 const char *expr, const char *text)
{
	size_t i, n = 0;
	json_t *is;

	json_array_foreach(json_object_get(o, "issue"), i, is)
	{
		if (strcmp(issue_str(is, "severity"), sev) == 0 &&
		    strcmp(issue_str(is, "code"), code) == 0 &&
		    strcmp(issue_expr(is), expr) == 0 &&
		    strstr(issue_str(is, "diagnostics"), text) != NULL)
			n++;
	}
	return n;
}

static void
print_issues(const char *what, const json_t *o)
{
	size_t i;
	json_t *is;

	json_array_foreach(json_object_get(o, "issue"), i, is)
	{
		fprintf(stderr, "  %s: %s %s %s: %s\n", what,
			issue_str(is, "severity"), issue_str(is, "code"),
			issue_expr(is), issue_str(is, "diagnostics"));
	}
}

/* ---- primitives ---- */

static void
test_primitives(void **state)
{
	static const struct {
		const char *type, *text;
		bool is_string, ok;
	} cases[] = {
	    {"date", "2020", true, true},
	    {"date", "2020-02", true, true},
	    {"date", "2020-02-29", true, true},
	    {"date", "2021-02-29", true, false},
	    {"date", "1900-02-29", true, false},
	    {"date", "2000-02-29", true, true},
	    {"date", "2020-13-01", true, false},
	    {"date", "2020-04-31", true, false},
	    {"date", "0000-01-01", true, false},
	    {"date", "20-01-01", true, false},
	    {"date", "2020-01-01T10:00:00Z", true, false},
	    {"dateTime", "2020-01-01T10:00:00Z", true, true},
	    {"dateTime", "2020-01-01T10:00:00.123+01:00", true, true},
	    {"dateTime", "2020-01-01T10:00:00", true, false},
	    {"dateTime", "2020-01-01T10:00Z", true, false},
	    {"dateTime", "2020-01-01T24:00:00Z", true, false},
	    {"dateTime", "2020-01-01T10:00:00+15:00", true, false},
	    {"dateTime", "2020", true, true},
	    {"instant", "2020-01-01T10:00:00Z", true, true},
	    {"instant", "2020-01-01", true, false},
	    {"time", "23:59:59", true, true},
	    {"time", "23:59", true, false},
	    {"time", "23:60:00", true, false},
	    {"integer", "2147483647", false, true},
	    {"integer", "2147483648", false, false},
	    {"integer", "-2147483648", false, true},
	    {"integer", "1.0", false, false},
	    {"integer", "1", true, false},
	    {"positiveInt", "0", false, false},
	    {"positiveInt", "1", false, true},
	    {"unsignedInt", "0", false, true},
	    {"unsignedInt", "-1", false, false},
	    {"decimal", "1.50", false, true},
	    {"decimal", "1.50", true, false},
	    {"id", "abc-DEF.123", true, true},
	    {"id", "abc_def", true, false},
	    {"id",
	     "a123456789012345678901234567890123456789012345678901234567890"
	     "1234",
	     true, false},
	    {"code", "a b", true, true},
	    {"code", " a", true, false},
	    {"code", "a  b", true, false},
	    {"uri", "urn:uuid:x", true, true},
	    {"uri", "a b", true, false},
	    {"oid", "urn:oid:2.16.840.1.113883", true, true},
	    {"oid", "urn:oid:3.1", true, false},
	    {"oid", "urn:oid:1.02", true, false},
	    {"uuid", "urn:uuid:c757873d-ec9a-4326-a141-556f43239520", true,
	     true},
	    {"uuid", "urn:uuid:C757873D-EC9A-4326-A141-556F43239520", true,
	     false},
	    {"base64Binary", "aGVsbG8=", true, true},
	    {"base64Binary", "aGVsbG8", true, false},
	    {"base64Binary", "%%%2@()()", true, false},
	    {"string", "", true, false},
	    {"string", "x", true, true},
	    {"boolean", "true", false, true},
	    {"xhtml", "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>",
	     true, true},
	    {"xhtml", "plain", true, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = validate_primitive(
		    cases[i].type, cases[i].text, strlen(cases[i].text),
		    cases[i].is_string);

		if ((why == NULL) != cases[i].ok)
			fail_msg("%s '%s': got %s, want %s", cases[i].type,
				 cases[i].text, why == NULL ? "valid" : why,
				 cases[i].ok ? "valid" : "invalid");
	}
}

/* ---- every valid example ---- */

static size_t
validate_tree(struct validate_ctx *ctx, const char *rel, size_t *bad)
{
	char path[8192], sub[2048];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", srcdir(), rel);
	if ((d = opendir(path)) == NULL)
		fail_msg("cannot open %s", path);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", rel,
				     de->d_name) >= sizeof(sub))
			continue;
		snprintf(path, sizeof(path), "%s/%s", srcdir(), sub);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			n += validate_tree(ctx, sub, bad);
			continue;
		}
		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		{
			json_t *o = run_file(ctx, sub);

			n++;
			if (fhir_outcome_errors(o) > 0) {
				(*bad)++;
				fprintf(stderr, "%s: got errors, want none\n",
					sub);
				print_issues(sub, o);
			}
			json_decref(o);
		}
	}
	closedir(d);
	return n;
}

static void
test_valid_r4(void **state)
{
	size_t bad = 0, n;

	(void)state;
	n = validate_tree(S.vr4, "tests/data/valid/r4", &bad);
	assert_true(n >= 55);
	assert_int_equal(bad, 0);
}

static void
test_valid_stu3(void **state)
{
	size_t bad = 0, n;

	(void)state;
	n = validate_tree(S.vstu3, "tests/data/valid/stu3", &bad);
	assert_true(n >= 51);
	assert_int_equal(bad, 0);
}

static void
test_valid_ig(void **state)
{
	json_t *o;

	(void)state;
	o = run_file(S.vr4ig, "tests/data/validate/bundle-ok.json");
	if (fhir_outcome_errors(o) != 0)
		print_issues("bundle-ok", o);
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);
	o = run_file(S.vr4ig, "tests/data/validate/bundle-profiled.json");
	if (fhir_outcome_errors(o) != 0)
		print_issues("bundle-profiled", o);
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);
}

/* ---- the manifest, exactly ---- */

struct row {
	char file[256], sev[32], code[64], expr[512];
	bool seen;
};

static void
test_manifest(void **state)
{
	char path[4096], line[1024], *text, *save = NULL;
	struct row *rows = NULL;
	size_t nrows = 0, len, failures = 0, files = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/data/invalid/manifest.tsv",
		 srcdir());
	assert_int_equal(util_read_file(path, 1u << 20, &text, &len), GW_OK);
	for (char *l = strtok_r(text, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		struct row *r;

		if (l[0] == '#' || l[0] == '\0')
			continue;
		rows = realloc(rows, (nrows + 1) * sizeof(*rows));
		assert_non_null(rows);
		r = &rows[nrows++];
		memset(r, 0, sizeof(*r));
		util_strlcpy(line, l, sizeof(line));
		if (sscanf(line, "%255[^\t]\t%31[^\t]\t%63[^\t]\t%511[^\t]",
			   r->file, r->sev, r->code, r->expr) != 4)
			fail_msg("bad manifest line: %s", l);
	}
	free(text);
	assert_true(nrows >= 60);
	for (size_t i = 0; i < nrows; i++) {
		struct validate_ctx *ctx;
		char rel[512];
		size_t k;
		json_t *o, *is;

		if (i > 0 && strcmp(rows[i].file, rows[i - 1].file) == 0)
			continue;
		files++;
		ctx = strncmp(rows[i].file, "stu3/", 5) == 0	? S.vstu3
		      : strncmp(rows[i].file, "r4-ig/", 6) == 0 ? S.vr4ig
								: S.vr4;
		snprintf(rel, sizeof(rel), "tests/data/invalid/%s",
			 rows[i].file);
		o = run_file(ctx, rel);
		/* every error-level issue must be a listed row */
		json_array_foreach(json_object_get(o, "issue"), k, is)
		{
			const char *sev = issue_str(is, "severity");
			bool listed = false;

			for (size_t j = i;
			     j < nrows &&
			     strcmp(rows[j].file, rows[i].file) == 0;
			     j++)
				if (strcmp(rows[j].sev, sev) == 0 &&
				    strcmp(rows[j].code,
					   issue_str(is, "code")) == 0 &&
				    strcmp(rows[j].expr, issue_expr(is)) == 0) {
					rows[j].seen = true;
					listed = true;
				}
			if (!listed && (strcmp(sev, "error") == 0 ||
					strcmp(sev, "fatal") == 0)) {
				fprintf(stderr,
					"%s: got unexpected %s %s %s: %s\n",
					rows[i].file, sev,
					issue_str(is, "code"), issue_expr(is),
					issue_str(is, "diagnostics"));
				failures++;
			}
		}
		for (size_t j = i;
		     j < nrows && strcmp(rows[j].file, rows[i].file) == 0; j++)
			if (!rows[j].seen) {
				fprintf(stderr,
					"%s: want %s %s %s, not found\n",
					rows[j].file, rows[j].sev, rows[j].code,
					rows[j].expr);
				print_issues(rows[j].file, o);
				failures++;
			}
		json_decref(o);
	}
	free(rows);
	assert_true(files >= 59);
	assert_int_equal(failures, 0);
}

/* ---- engine behaviour ---- */

static const char *MISSING_STATUS =
    "{\"resourceType\":\"Consent\",\"meta\":{\"profile\":["
    "\"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
    "ACP-TreatmentDirective\","
    "\"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
    "ACP-TreatmentDirective\","
    "\"http://hl7.org/fhir/StructureDefinition/Consent\"]},"
    "\"scope\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"
    "CodeSystem/consentscope\",\"code\":\"treatment\"}]},"
    "\"category\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\","
    "\"code\":\"129125009\"}]}],"
    "\"patient\":{\"reference\":\"Patient/p\"},"
    "\"policy\":[{\"uri\":\"https://wetten.overheid.nl/\"}]}";

static void
test_dedupe_profiles(void **state)
{
	json_t *o;

	(void)state;
	o = run_text(S.vr4, MISSING_STATUS, NULL);
	/* the profile twice and its base: the same finding once */
	/* reported at the element's own path (issue 14) */
	if (count_issues(o, "error", "required", "Consent.status") != 1)
		print_issues("dedupe", o);
	assert_int_equal(count_issues_msg(o, "error", "required",
					  "Consent.status",
					  "Consent.status: minimum required = "
					  "1, but only found 0"),
			 1);
	assert_string_equal(validate_last_profile(S.vr4),
			    "https://api.iknl.nl/docs/pzp/r4/"
			    "StructureDefinition/ACP-TreatmentDirective");
	json_decref(o);
}

static void
test_detection(void **state)
{
	const char *proc =
	    "{\"resourceType\":\"Procedure\",\"status\":\"completed\","
	    "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\","
	    "\"code\":\"713603004\"}]},"
	    "\"subject\":{\"reference\":\"Patient/p\"}}";
	const char *base = "{\"resourceType\":\"Procedure\","
			   "\"status\":\"completed\","
			   "\"subject\":{\"reference\":\"Patient/p\"}}";
	json_t *o;

	(void)state;
	o = run_text(S.vr4, proc, NULL);
	assert_int_equal(
	    count_issues(o, "information", "informational", "Procedure"), 1);
	assert_string_equal(validate_last_profile(S.vr4),
			    "https://api.iknl.nl/docs/pzp/r4/"
			    "StructureDefinition/ACP-Procedure");
	json_decref(o);
	/* without the fixed code no profile fits: base Procedure */
	o = run_text(S.vr4, base, NULL);
	assert_int_equal(count_issues(o, "information", "informational", NULL),
			 0);
	assert_string_equal(validate_last_profile(S.vr4),
			    "http://hl7.org/fhir/StructureDefinition/"
			    "Procedure");
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);
}

static void
test_detection_prefixes(void **state)
{
	const char *bw =
	    "{\"resourceType\":\"Observation\",\"status\":\"final\","
	    "\"category\":[{\"coding\":[{\"system\":\"http://"
	    "terminology.hl7.org/CodeSystem/observation-category\","
	    "\"code\":\"vital-signs\"}]}],"
	    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
	    "\"code\":\"29463-7\"}]},"
	    "\"subject\":{\"reference\":\"Patient/p\"},"
	    "\"effectiveDateTime\":\"2020-01-01\","
	    "\"valueQuantity\":{\"value\":70,\"unit\":\"kg\","
	    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"kg\"}}";
	struct validate_ctx *all = NULL;
	json_t *o;

	(void)state;
	/* by default only PZP profiles are detected */
	o = run_text(S.vr4, bw, NULL);
	assert_string_equal(validate_last_profile(S.vr4),
			    "http://hl7.org/fhir/StructureDefinition/"
			    "Observation");
	json_decref(o);
	/* with every profile eligible, the vital signs body weight profile
	 * (a required category slice and a code.coding slice) is the most
	 * specific match */
	assert_int_equal(validate_ctx_new(S.r4, &all), GW_OK);
	assert_int_equal(validate_ctx_detect_prefix(all, ""), GW_OK);
	o = run_text(all, bw, NULL);
	assert_string_equal(validate_last_profile(all),
			    "http://hl7.org/fhir/StructureDefinition/"
			    "bodyweight");
	assert_int_equal(
	    count_issues(o, "information", "informational", "Observation"), 1);
	json_decref(o);
	validate_ctx_free(all);
}

static void
test_forced_profile(void **state)
{
	const char *goal = "{\"resourceType\":\"Procedure\","
			   "\"status\":\"completed\","
			   "\"subject\":{\"reference\":\"Patient/p\"}}";
	json_t *o;

	(void)state;
	o = run_text(S.vr4, goal,
		     "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
		     "ACP-Procedure");
	/* the ACP-Procedure profile requires its code */
	assert_int_equal(count_issues_msg(o, "error", "required",
					  "Procedure.code",
					  "Procedure.code: minimum required"),
			 1);
	json_decref(o);
}

static void
test_parse_errors(void **state)
{
	json_t *o;
	json_t *is;

	(void)state;
	o = run_text(S.vr4, "{\n  \"resourceType\": \"Patient\",\n}", NULL);
	assert_int_equal(fhir_outcome_errors(o), 1);
	is = json_array_get(json_object_get(o, "issue"), 0);
	assert_string_equal(issue_str(is, "code"), "structure");
	assert_string_equal(issue_str(is, "severity"), "fatal");
	/* line and column as OperationOutcome extensions */
	assert_int_equal(
	    json_integer_value(json_object_get(
		json_array_get(json_object_get(is, "extension"), 0),
		"valueInteger")),
	    3);
	json_decref(o);
	o = run_text(S.vr4, "[1, 2]", NULL);
	assert_int_equal(count_issues(o, "error", "structure", NULL), 1);
	json_decref(o);
	o = run_text(S.vr4, "{\"resourceType\":\"NoSuchThing\"}", NULL);
	assert_int_equal(count_issues(o, "error", "structure", NULL), 1);
	json_decref(o);
}

static void
test_xml_input(void **state)
{
	const char *xml = "<Patient xmlns=\"http://hl7.org/fhir\">\n"
			  "  <id value=\"p1\"/>\n"
			  "  <gender value=\"man\"/>\n"
			  "  <birthDate value=\"1950-02-30\"/>\n"
			  "</Patient>\n";
	json_t *o;

	(void)state;
	o = run_text(S.vr4, xml, NULL);
	assert_int_equal(
	    count_issues(o, "error", "code-invalid", "Patient.gender"), 1);
	assert_int_equal(count_issues(o, "error", "value", "Patient.birthDate"),
			 1);
	assert_int_equal(fhir_outcome_errors(o), 2);
	json_decref(o);
	o = run_text(S.vr4, "<Patient", NULL);
	assert_int_equal(count_issues(o, "fatal", "structure", NULL), 1);
	json_decref(o);
}

static void
test_invariants(void **state)
{
	const char *pat =
	    "{\"resourceType\":\"Patient\",\"meta\":{\"profile\":["
	    "\"http://example.org/fhir/StructureDefinition/"
	    "test-invariant\"]},\"name\":[{\"family\":\"A\"},"
	    "{\"given\":[\"B\"]},{\"family\":\"C\"},{\"given\":[\"D\"]}]}";
	json_t *o;

	(void)state;
	o = run_text(S.vr4ig, pat, NULL);
	/* evaluated invariant: fails on name[1] and name[3] */
	assert_int_equal(
	    count_issues(o, "error", "invariant", "Patient.name[1]"), 1);
	assert_int_equal(
	    count_issues(o, "error", "invariant", "Patient.name[3]"), 1);
	assert_int_equal(count_issues(o, "error", "invariant", NULL), 2);
	/* outside the subset: one information issue for the key, not one
	 * per element, never an error */
	assert_int_equal(count_issues(o, "information", "not-supported", NULL),
			 1);
	json_decref(o);
}

static void
test_narrative(void **state)
{
	static const struct {
		const char *div;
		bool ok;
	} cases[] = {
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>caf&#233;"
	     "&#160;<b>x</b> &amp; <a href=\\\"#a\\\">y</a></p></div>",
	     true},
	    /* issue 14: HTML entities are not XHTML (the HL7 validator) */
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>caf&eacute;"
	     "</p></div>",
	     false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><img "
	     "src=\\\"a.png\\\" alt=\\\"\\\"/></div>",
	     true},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>&bogus;</p>"
	     "</div>",
	     false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>x</pa>"
	     "</div>",
	     false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"> </div>", false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtmlx\\\">x</div>", false},
	    {"<div>x</div>", false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><script>x"
	     "</script></div>",
	     false},
	    {"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p "
	     "onClick=\\\"x()\\\">x</p></div>",
	     false},
	};
	char doc[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *o;

		snprintf(doc, sizeof(doc),
			 "{\"resourceType\":\"List\",\"status\":\"current\","
			 "\"mode\":\"working\",\"text\":{\"status\":"
			 "\"generated\",\"div\":\"%s\"}}",
			 cases[i].div);
		o = run_text(S.vr4, doc, NULL);
		if ((fhir_outcome_errors(o) == 0) != cases[i].ok) {
			print_issues("narrative", o);
			fail_msg("%s: got %s, want %s", cases[i].div,
				 fhir_outcome_errors(o) == 0 ? "valid"
							     : "invalid",
				 cases[i].ok ? "valid" : "invalid");
		}
		if (!cases[i].ok)
			assert_int_equal(
			    count_issues(o, "error", NULL, "List.text.div"), 1);
		json_decref(o);
	}
}

/* minValue/maxValue/maxLength of the test profiles (tests/data/validate/ig):
 * limits are inclusive, partial dates that may lie inside the range pass,
 * time zones count, maxLength counts characters. */
static void
test_limits(void **state)
{
	static const struct {
		const char *member; /* JSON member(s) added to the Patient */
		const char *expr;   /* expected error, NULL: valid */
	} cases[] = {
	    {"\"birthDate\":\"1900-01-01\"", NULL},
	    {"\"birthDate\":\"1900\"", NULL},
	    {"\"birthDate\":\"1899-12\"", "Patient.birthDate"},
	    {"\"birthDate\":\"2100-12-31\"", NULL},
	    {"\"birthDate\":\"2101\"", "Patient.birthDate"},
	    {"\"multipleBirthInteger\":1", NULL},
	    {"\"multipleBirthInteger\":9", NULL},
	    {"\"multipleBirthInteger\":-1",
	     "Patient.multipleBirth.ofType(integer)"},
	    {"\"multipleBirthBoolean\":true", NULL},
	    {"\"name\":[{\"family\":\"0123456789\"}]", NULL},
	    {"\"name\":[{\"family\":\"01234567890\"}]",
	     "Patient.name[0].family"},
	    /* ten characters of two bytes each */
	    {"\"name\":[{\"family\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}]",
	     NULL},
	    {"\"name\":[{\"family\":\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	     "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
	     "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\"}]",
	     "Patient.name[0].family"},
	};
	char doc[1024];
	json_t *o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(doc, sizeof(doc),
			 "{\"resourceType\":\"Patient\",\"gender\":\"female\","
			 "%s}",
			 cases[i].member);
		o = run_text(S.vr4ig, doc,
			     "http://example.org/fhir/StructureDefinition/"
			     "test-patient");
		if (fhir_outcome_errors(o) != (cases[i].expr != NULL ? 1 : 0)) {
			print_issues("limits", o);
			fail_msg("%s: got %zu errors, want %d", cases[i].member,
				 (size_t)fhir_outcome_errors(o),
				 cases[i].expr != NULL);
		}
		if (cases[i].expr != NULL)
			assert_int_equal(
			    count_issues(o, "error", "value", cases[i].expr),
			    1);
		json_decref(o);
	}
	/* a Quantity limit in a unit kPa cannot be converted to (pressure
	 * is outside ucum.c's tables): a warning, not an error, not silence
	 * (issue 14) */
	o = run_text(
	    S.vr4ig,
	    "{\"resourceType\":\"Observation\",\"status\":\"final\","
	    "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7."
	    "org/CodeSystem/"
	    "observation-category\",\"code\":\"vital-signs\"}]}],"
	    "\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":"
	    "\"85354-9\"}]},\"subject\":{\"reference\":\"Patient/p\"},"
	    "\"performer\":[{\"reference\":\"Organization/o\"}],"
	    "\"effectiveDateTime\":\"2000-01-01T00:00:00+01:00\","
	    "\"component\":[{\"code\":{\"coding\":[{\"system\":\"http://loinc."
	    "org\",\"code\":\"8480-6\"}]},\"valueQuantity\":{\"value\":2,"
	    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"kPa\"}}]}",
	    "http://example.org/fhir/StructureDefinition/test-obs");
	if (count_issues(o, "warning", "not-supported",
			 "Observation.component[0].value.ofType(Quantity)") !=
	    2)
		print_issues("quantity unit", o);
	assert_int_equal(
	    count_issues(o, "warning", "not-supported",
			 "Observation.component[0].value.ofType(Quantity)"),
	    2);
	assert_int_equal(count_issues(o, "error", "value", NULL), 0);
	json_decref(o);
}

#define EXT_PARENT "http://example.org/fhir/StructureDefinition/test-ext-parent"
#define EXT_PART                                                               \
	"{\"url\":\"http://example.org/fhir/StructureDefinition/test-ext-"     \
	"part\",\"valueString\":\"x\"}"

/* Extension contexts (test profiles test-ext-parent: Patient or
 * Observation.component; test-ext-part: inside test-ext-parent or on
 * Quantity.value): the place is matched by its path from the resource,
 * from each datatype on the way, or by its enclosing extension. */
static void
test_extension_context(void **state)
{
	static const struct {
		const char *doc;
		const char *expr; /* expected context error, NULL: none */
	} cases[] = {
	    {"{\"resourceType\":\"Patient\",\"gender\":\"female\","
	     "\"extension\":[{\"url\":\"" EXT_PARENT "\",\"extension\":"
	     "[" EXT_PART "]}]}",
	     NULL},
	    {"{\"resourceType\":\"Patient\",\"gender\":\"female\","
	     "\"extension\":[" EXT_PART "]}",
	     "Patient.extension[0]"},
	    {"{\"resourceType\":\"Observation\",\"status\":\"final\","
	     "\"code\":{\"text\":\"x\"},\"extension\":[{\"url\":\"" EXT_PARENT
	     "\",\"extension\":[" EXT_PART "]}]}",
	     "Observation.extension[0]"},
	    {"{\"resourceType\":\"Observation\",\"status\":\"final\","
	     "\"code\":{\"text\":\"x\"},\"component\":[{\"code\":{\"text\":"
	     "\"y\"},\"extension\":[{\"url\":\"" EXT_PARENT "\",\"extension\":"
	     "[" EXT_PART "]}],\"valueQuantity\":{\"value\":1,\"_value\":"
	     "{\"extension\":[" EXT_PART "]}}}]}",
	     NULL},
	    {"{\"resourceType\":\"Observation\",\"status\":\"final\","
	     "\"code\":{\"text\":\"x\"},\"valueQuantity\":{\"value\":1,"
	     "\"extension\":[" EXT_PART "]}}",
	     "Observation.value.ofType(Quantity).extension[0]"},
	    /* in a Bundle: the context is the entry's resource */
	    {"{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":"
	     "[{\"fullUrl\":\"urn:uuid:0d6b4d31-5f32-4d3a-9a0e-1b0e3c3c0009\","
	     "\"resource\":{\"resourceType\":\"Patient\",\"gender\":"
	     "\"female\",\"extension\":[{\"url\":\"" EXT_PARENT "\","
	     "\"extension\":[" EXT_PART
	     "]}],\"contact\":[{\"name\":{\"text\":\"A\"},\"extension\":["
	     "{\"url\":\"" EXT_PARENT "\","
	     "\"extension\":[" EXT_PART "]}]}]}}]}",
	     "Bundle.entry[0].resource.ofType(Patient).contact[0].extension["
	     "0]"},
	};
	json_t *o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t want = cases[i].expr != NULL ? 1 : 0;

		o = run_text(S.vr4ig, cases[i].doc, NULL);
		if (fhir_outcome_errors(o) != want) {
			print_issues("context", o);
			fail_msg("case %zu: got %zu errors, want %zu", i,
				 (size_t)fhir_outcome_errors(o), want);
		}
		if (cases[i].expr != NULL)
			assert_int_equal(
			    count_issues_msg(
				o, "error", "structure", cases[i].expr,
				"is not allowed to be used at this "
				"point"),
			    1);
		json_decref(o);
	}
	/* a FHIRPath context is not evaluated: said, not guessed */
	o = run_text(S.vr4,
		     "{\"resourceType\":\"Observation\",\"status\":\"final\","
		     "\"code\":{\"text\":\"x\"},\"extension\":[{\"url\":"
		     "\"http://nictiz.nl/fhir/StructureDefinition/ext-"
		     "AdditionalCategory\",\"valueCodeableConcept\":{\"text\":"
		     "\"a\"}}]}",
		     NULL);
	assert_int_equal(count_issues(o, "information", "not-supported",
				      "Observation.extension[0]"),
			 1);
	assert_int_equal(fhir_outcome_errors(o), 0);
	json_decref(o);
}

/* Cardinality findings sit at the parent and name the child (HL7). */
static void
test_cardinality_at_element(void **state)
{
	const char *cat = "{\"coding\":[{\"system\":\"http://terminology.hl7."
			  "org/CodeSystem/observation-category\",\"code\":"
			  "\"vital-signs\"}]}";
	char doc[1024];
	json_t *o;

	(void)state;
	snprintf(doc, sizeof(doc),
		 "{\"resourceType\":\"Observation\",\"status\":\"final\","
		 "\"category\":[%s,%s],\"code\":{\"coding\":[{\"system\":"
		 "\"http://loinc.org\",\"code\":\"85354-9\"}]},\"subject\":"
		 "{\"reference\":\"Patient/p\"},\"performer\":[{\"reference\":"
		 "\"Organization/o\"}],\"component\":[{\"code\":{\"coding\":"
		 "[{\"system\":\"http://loinc.org\",\"code\":\"8480-6\"}]}}]}",
		 cat, cat);
	o = run_text(S.vr4ig, doc,
		     "http://example.org/fhir/StructureDefinition/test-obs");
	/* (the performer cannot be resolved outside a Bundle, so the
	 * resolve()-typed slice org stays empty) */
	if (fhir_outcome_errors(o) != 2)
		print_issues("cardinality", o);
	assert_int_equal(fhir_outcome_errors(o), 2);
	/* at the element's own path, not the parent (issue 14) */
	assert_int_equal(count_issues_msg(o, "error", "required",
					  "Observation.performer",
					  "Observation.performer:org: minimum "
					  "required = 1, but only found 0"),
			 1);
	assert_int_equal(count_issues_msg(o, "error", "structure",
					  "Observation.category",
					  "Observation.category:vs: max "
					  "allowed = 1, but found 2"),
			 1);
	json_decref(o);
}

static void
test_api_errors(void **state)
{
	json_t *notoutcome = json_object();
	struct fj_doc *doc = NULL;

	(void)state;
	assert_int_equal(fj_parse("{}", 2, 0, &doc, NULL), GW_OK);
	assert_int_equal(validate_document(S.vr4, doc->root, NULL, notoutcome),
			 GW_INVALID);
	json_decref(notoutcome);
	fj_doc_free(doc);
	validate_ctx_free(NULL);
	assert_null(validate_last_profile(NULL));
}

/*
 * Long arrays are checked in linear time: a Patient with 100,000
 * identifiers (each array item, of any element, extensions too, used to
 * be found by walking the list from its start), and a Bundle of 20,000 entries whose references resolve
 * through an index (they used to scan every entry, as did the fullUrl
 * uniqueness check). Before, this test ran for minutes; the findings are
 * the same as before.
 */
static void
test_large_arrays(void **state)
{
	enum { NID = 100000, NENT = 20000 };
	struct buf b;
	json_t *o;

	(void)state;
	buf_init(&b, (size_t)64 << 20);
	assert_int_equal(buf_adds(&b, "{\"resourceType\":\"Patient\","
				      "\"identifier\":["),
			 GW_OK);
	for (size_t i = 0; i < NID; i++)
		assert_int_equal(buf_printf(&b,
					    "%s{\"system\":\"urn:oid:1.2.3\","
					    "\"value\":\"%zu\"}",
					    i ? "," : "", i),
				 GW_OK);
	/* the last one is broken: a value of the wrong JSON type */
	assert_int_equal(buf_adds(&b, ",{\"system\":\"urn:oid:1.2.3\","
				      "\"value\":1}]}"),
			 GW_OK);
	o = run_text(S.vr4, b.data, NULL);
	if (count_issues(o, "error", NULL, NULL) != 1 ||
	    count_issues(o, "error", NULL,
			 "Patient.identifier[100000].value") != 1) {
		print_issues("identifiers", o);
		fail_msg("want one error, at identifier[100000].value");
	}
	json_decref(o);

	buf_cleanup(&b);
	buf_init(&b, (size_t)64 << 20);
	assert_int_equal(buf_adds(&b, "{\"resourceType\":\"Bundle\","
				      "\"type\":\"collection\",\"entry\":["),
			 GW_OK);
	for (size_t i = 0; i < NENT; i++) {
		/* entry 19999 repeats the fullUrl of entry 7; every
		 * Patient links to p0 by Type/id, p5 also by an absolute
		 * URL with a version, p6 to a urn: that is not there (a
		 * relative one need not resolve in a collection) */
		const char *other = i == 5   ? "http://x.example/fhir/Patient/"
					       "p0/_history/2"
				    : i == 6 ? "urn:uuid:00000000-0000-4000-"
					       "8000-999999999999"
					     : "Patient/p0";

		assert_int_equal(
		    buf_printf(
			&b,
			"%s{\"fullUrl\":\"urn:uuid:00000000-0000-4000-8000-"
			"%012zu\",\"resource\":{\"resourceType\":"
			"\"Patient\",\"id\":\"p%zu\",\"link\":[{"
			"\"other\":{\"reference\":\"%s\"},\"type\":"
			"\"seealso\"}]}}",
			i ? "," : "", i == NENT - 1 ? (size_t)7 : i, i, other),
		    GW_OK);
	}
	assert_int_equal(buf_adds(&b, "]}"), GW_OK);
	o = run_text(S.vr4, b.data, NULL);
	if (count_issues_msg(o, "error", "invalid",
			     "Bundle.entry[19999].fullUrl",
			     "is used by entry 7 too") != 1 ||
	    count_issues(o, "error", "not-found", NULL) != 1 ||
	    count_issues(o, "error", "not-found",
			 "Bundle.entry[6].resource.ofType(Patient).link[0]."
			 "other") != 1) {
		print_issues("bundle", o);
		fail_msg("want the duplicate fullUrl and one unresolved "
			 "reference (entry 6)");
	}
	json_decref(o);
	buf_cleanup(&b);
}

/*
 * A deadline (validate_opts.deadline_ms) stops the walk: one already past
 * gives GW_TEMP at once, with no finding (the outcome is no verdict); one
 * a few milliseconds ahead stops a document of 200,000 elements part way
 * (the whole walk takes far longer); one far ahead changes nothing.
 */
static void
test_deadline(void **state)
{
	enum { N = 200000 };
	struct validate_opts opts = {0};
	struct fj_doc *doc = NULL;
	struct buf b;
	uint64_t t0;
	json_t *o;

	(void)state;
	buf_init(&b, (size_t)64 << 20);
	assert_int_equal(buf_adds(&b, "{\"resourceType\":\"Patient\","
				      "\"identifier\":["),
			 GW_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(buf_printf(&b,
					    "%s{\"system\":\"urn:oid:1.2.3\","
					    "\"value\":\"%zu\"}",
					    i ? "," : "", i),
				 GW_OK);
	assert_int_equal(buf_adds(&b, "]}"), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);

	opts.deadline_ms = util_mono_ms() - 1;
	o = fhir_outcome_new();
	assert_int_equal(validate_document(S.vr4, doc->root, &opts, o),
			 GW_TEMP);
	assert_int_equal(json_array_size(json_object_get(o, "issue")), 0);
	json_decref(o);

	/* A deadline that passes during the walk (a whole walk takes tens of
	 * milliseconds) stops it too. No comparison of times: the machine
	 * may be busy. */
	t0 = util_mono_ms();
	opts.deadline_ms = t0 + 5;
	o = fhir_outcome_new();
	assert_int_equal(validate_document(S.vr4, doc->root, &opts, o),
			 GW_TEMP);
	json_decref(o);

	t0 = util_mono_ms();
	opts.deadline_ms = t0 + 600000;
	o = fhir_outcome_new();
	assert_int_equal(validate_document(S.vr4, doc->root, &opts, o), GW_OK);
	if (fhir_outcome_errors(o) != 0) {
		print_issues("deadline far ahead", o);
		fail_msg("want no error");
	}
	json_decref(o);
	fj_doc_free(doc);
	buf_cleanup(&b);
}

/* Many findings, each made by the profile (listed twice) and by its base
 * type: every one is kept once, however large the run's dedupe table
 * grows (it doubles from 64 slots), and identical findings at different
 * paths stay apart. */
static void
test_dedupe_many(void **state)
{
	enum { N = 300 };
	size_t cap = strlen(MISSING_STATUS) + N * 32, used, total;
	char *doc = malloc(cap);
	char expr[64];
	json_t *o;

	(void)state;
	assert_non_null(doc);
	/* MISSING_STATUS with N unknown members x0..x(N-1) after its
	 * resourceType */
	used = (size_t)snprintf(doc, cap, "{\"resourceType\":\"Consent\",");
	for (int i = 0; i < N; i++)
		used += (size_t)snprintf(doc + used, cap - used, "\"x%d\":%d,",
					 i, i);
	snprintf(doc + used, cap - used, "%s",
		 MISSING_STATUS + strlen("{\"resourceType\":\"Consent\","));
	o = run_text(S.vr4, doc, NULL);
	total = json_array_size(json_object_get(o, "issue"));
	for (int i = 0; i < N; i++) {
		snprintf(expr, sizeof(expr), "Consent.x%d", i);
		if (count_issues(o, "error", "structure", expr) != 1) {
			print_issues("dedupe_many", o);
			fail_msg("%s: not once", expr);
		}
	}
	assert_int_equal(count_issues(o, "error", "required", "Consent.status"),
			 1);
	assert_true(total >= N + 1);
	json_decref(o);
	free(doc);
}

/* A message quotes a value cut to a number of bytes ('%.80s'): a cut
 * inside a UTF-8 character left invalid UTF-8, which the OperationOutcome
 * refused, and the document was answered "out of memory". The cut
 * character is now a '?', the finding reported. */
static void
test_cut_utf8_in_message(void **state)
{
	/* 79 'a', then an e-acute (2 bytes: the 80th byte is its first) */
	const char *doc = "{\"resourceType\":\"Patient\",\"gender\":\""
			  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9"
			  "b\"}";
	json_t *o;

	(void)state;
	o = run_text(S.vr4, doc, NULL);
	if (count_issues_msg(o, "error", "code-invalid", "Patient.gender",
			     "aaaa?' is not in") != 1)
		print_issues("cut_utf8", o);
	assert_int_equal(count_issues_msg(o, "error", "code-invalid",
					  "Patient.gender", "aaaa?' is not in"),
			 1);
	json_decref(o);
}

/* ---- extensions in contentReference elements ---- */

/* Regression tests: an extension inside an element defined by
 * contentReference (Questionnaire.item.item) has its context checked
 * without dereferencing the element's missing type (it crashed before).
 * Each test has a fresh context over the R4 rules. */

#define HIDDEN "http://hl7.org/fhir/StructureDefinition/questionnaire-hidden"

static struct validate_ctx *ctxref;

static int
ctxref_setup(void **state)
{
	(void)state;
	return validate_ctx_new(S.r4, &ctxref) == GW_OK ? 0 : -1;
}

static int
ctxref_teardown(void **state)
{
	(void)state;
	validate_ctx_free(ctxref);
	ctxref = NULL;
	return 0;
}

/* Number of issues whose diagnostics contain needle and, when expr is not
 * NULL, whose first expression is expr. */
static size_t
count_diag(const json_t *outcome, const char *needle, const char *expr)
{
	const json_t *issues = json_object_get(outcome, "issue"), *is;
	size_t i, n = 0;

	json_array_foreach(issues, i, is)
	{
		const char *d =
		    json_string_value(json_object_get(is, "diagnostics"));
		const char *e = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));

		if (d == NULL || strstr(d, needle) == NULL)
			continue;
		if (expr == NULL || (e != NULL && strcmp(e, expr) == 0))
			n++;
	}
	return n;
}

/* Questionnaire.item.item (contentReference to Questionnaire.item) is one
 * of the extension's listed contexts: allowed, and no crash. */
static void
test_ext_in_content_reference_element(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\","
	    "\"valueBoolean\":true}]}]}]}";
	json_t *outcome;
	size_t n;

	(void)state;
	outcome = run_text(ctxref, doc, NULL);
	n = count_diag(outcome, "is not allowed to be used at this point",
		       NULL);
	if (n != 0)
		fprintf(stderr, "got %zu context issues, want 0\n", n);
	assert_int_equal(n, 0);
	json_decref(outcome);
}

/* Deeper nesting, and the extension on the contentReference element's
 * parent too: validation completes and reports through the outcome. */
static void
test_ext_deeper_content_reference(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\",\"valueBoolean\":true}],"
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"" HIDDEN "\","
	    "\"valueBoolean\":true}]}]}]}]}";
	json_t *outcome;

	(void)state;
	outcome = run_text(ctxref, doc, NULL);
	/* the Questionnaire.item one is allowed in any case */
	assert_int_equal(count_diag(outcome, "is not allowed",
				    "Questionnaire.item[0].extension[0]"),
			 0);
	json_decref(outcome);
}

/* An extension whose contexts name a resource element, placed on a
 * contentReference element of another path: reported, no crash. */
static void
test_ext_wrong_place_content_reference(void **state)
{
	static const char doc[] =
	    "{\"resourceType\":\"Questionnaire\",\"status\":\"draft\","
	    "\"item\":[{\"linkId\":\"1\",\"type\":\"group\","
	    "\"item\":[{\"linkId\":\"1.1\",\"type\":\"string\","
	    "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
	    "allergyintolerance-certainty\",\"valueCodeableConcept\":"
	    "{\"text\":\"x\"}}]}]}]}";
	json_t *outcome;
	size_t n;

	(void)state;
	outcome = run_text(ctxref, doc, NULL);
	n = count_diag(outcome, "is not allowed to be used at this point",
		       NULL);
	if (n != 1)
		fprintf(stderr, "got %zu context issues, want 1\n", n);
	assert_int_equal(n, 1);
	json_decref(outcome);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_primitives),
	    cmocka_unit_test(test_valid_r4),
	    cmocka_unit_test(test_valid_stu3),
	    cmocka_unit_test(test_valid_ig),
	    cmocka_unit_test(test_manifest),
	    cmocka_unit_test(test_dedupe_profiles),
	    cmocka_unit_test(test_dedupe_many),
	    cmocka_unit_test(test_cut_utf8_in_message),
	    cmocka_unit_test(test_detection),
	    cmocka_unit_test(test_detection_prefixes),
	    cmocka_unit_test(test_forced_profile),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_xml_input),
	    cmocka_unit_test(test_invariants),
	    cmocka_unit_test(test_narrative),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_extension_context),
	    cmocka_unit_test(test_cardinality_at_element),
	    cmocka_unit_test(test_api_errors),
	    cmocka_unit_test(test_large_arrays),
	    cmocka_unit_test(test_deadline),
	    cmocka_unit_test_setup_teardown(
		test_ext_in_content_reference_element, ctxref_setup,
		ctxref_teardown),
	    cmocka_unit_test_setup_teardown(test_ext_deeper_content_reference,
					    ctxref_setup, ctxref_teardown),
	    cmocka_unit_test_setup_teardown(
		test_ext_wrong_place_content_reference, ctxref_setup,
		ctxref_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
