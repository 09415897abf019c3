/*
 * `pzpgw transform`: convert a PZP resource or Bundle between FHIR STU3
 * and R4 (transform.h), JSON or XML in, JSON or XML out, with the report
 * of every loss as an OperationOutcome.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "outcome.h"
#include "transform.h"
#include "util.h"
#include "validate.h"
#include "xmlfhir.h"

#define TCLI_MAX_INPUT (64u * 1024 * 1024)

/* Canonical bases that tell the version of a document. */
static const struct {
	const char *prefix;
	enum rules_fhir v;
} version_hints[] = {
    {"https://api.iknl.nl/docs/pzp/stu3/", RULES_STU3},
    {"http://nictiz.nl/fhir/StructureDefinition/zib-", RULES_STU3},
    {"https://api.iknl.nl/docs/pzp/r4/", RULES_R4},
    {"https://fhir.iknl.nl/fhir/", RULES_R4},
    {"http://nictiz.nl/fhir/StructureDefinition/nl-core-", RULES_R4},
};

/* Votes of one resource's meta.profile and shape for STU3 / R4. */
static void
vote(const struct fj_node *res, int *stu3, int *r4)
{
	const struct fj_node *prof = fj_get(fj_get(res, "meta"), "profile");

	if (prof != NULL && prof->type == FJ_ARRAY) {
		for (const struct fj_node *p = prof->u.kids.first; p != NULL;
		     p = p->next) {
			for (size_t i = 0; i < UTIL_ARRAY_LEN(version_hints);
			     i++) {
				const char *pre = version_hints[i].prefix;

				if (p->type != FJ_STRING ||
				    strncmp(p->u.str.s, pre, strlen(pre)) != 0)
					continue;
				if (version_hints[i].v == RULES_STU3)
					(*stu3)++;
				else
					(*r4)++;
			}
		}
	}
	/* elements only one version has */
	if (fj_get(res, "consentingParty") != NULL ||
	    fj_get(res, "except") != NULL || fj_get(res, "context") != NULL)
		(*stu3)++;
	if (fj_get(res, "provision") != NULL || fj_get(res, "scope") != NULL ||
	    fj_get(res, "encounter") != NULL ||
	    fj_get(res, "lifecycleStatus") != NULL)
		(*r4)++;
}

/* The version of doc from its profiles and shape; false when it cannot
 * be told. */
static bool
detect_version(const struct fj_doc *doc, enum rules_fhir *out)
{
	int stu3 = 0, r4 = 0;
	const struct fj_node *entries = fj_get(doc->root, "entry");

	vote(doc->root, &stu3, &r4);
	if (entries != NULL && entries->type == FJ_ARRAY)
		for (const struct fj_node *e = entries->u.kids.first; e != NULL;
		     e = e->next)
			vote(fj_get(e, "resource"), &stu3, &r4);
	if (stu3 == r4)
		return false;
	*out = stu3 > r4 ? RULES_STU3 : RULES_R4;
	return true;
}

/* The rules of version v (for FHIR XML), or NULL with the reason said. */
static struct rules_set *
load_rules(enum rules_fhir v, const char *schemas)
{
	char dir[4096], errbuf[512];
	struct rules_set *set = rules_set_new(v);
	enum gw_err err;

	if (set == NULL) {
		fprintf(stderr, "pzpgw transform: out of memory\n");
		return NULL;
	}
	if (schemas == NULL) {
		cli_default_schemas(dir, sizeof(dir));
		schemas = dir;
	}
	errbuf[0] = '\0';
	if ((err = rules_load_dir(set, schemas, errbuf, sizeof(errbuf))) !=
	    GW_OK) {
		fprintf(stderr, "pzpgw transform: rules in %s: %s%s%s\n",
			schemas, gw_strerror(err), errbuf[0] ? ": " : "",
			errbuf);
		rules_set_free(set);
		return NULL;
	}
	return set;
}

/*
 * The check refused (xf_check): say whether the input itself passes its
 * own version's validator, so the reader knows whether to fix the input
 * or whether the conversion has no rule for it. Only on this path: it
 * costs a second rules load.
 */
static void
say_input_verdict(const char *name, const char *text, size_t len,
		  enum rules_fhir from, const char *schemas)
{
	struct rules_set *set = load_rules(from, schemas);
	struct validate_ctx *vctx = NULL;
	json_t *oo = fhir_outcome_new();
	const char *v = from == RULES_R4 ? "r4" : "stu3";
	size_t n;

	if (set == NULL || oo == NULL ||
	    validate_ctx_new(set, &vctx) != GW_OK ||
	    validate_text(vctx, text, len, NULL, oo) != GW_OK)
		goto done;
	n = fhir_outcome_errors(oo);
	if (n > 0)
		fprintf(stderr,
			"pzpgw transform: the input is not valid %s either "
			"(%zu errors: pzpgw validate --fhir %s %s)\n",
			from == RULES_R4 ? "R4" : "STU3", n, v, name);
	else
		fprintf(stderr,
			"pzpgw transform: the input is valid %s: the "
			"conversion has no rule that makes the output meet "
			"this\n",
			from == RULES_R4 ? "R4" : "STU3");
done:
	json_decref(oo);
	validate_ctx_free(vctx);
	rules_set_free(set);
}

/* Print the error issues of report on stderr. */
static void
print_refusal(const json_t *report)
{
	const json_t *issues = json_object_get(report, "issue");
	size_t i;
	json_t *is;

	json_array_foreach(issues, i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));
		const char *expr = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));
		const char *msg =
		    json_string_value(json_object_get(is, "diagnostics"));

		if (sev == NULL || strcmp(sev, "error") != 0)
			continue;
		fprintf(stderr, "pzpgw transform: refused: %s%s%s\n",
			expr != NULL ? expr : "", expr != NULL ? ": " : "",
			msg != NULL ? msg : "");
	}
}

int
cli_transform(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"from", required_argument, NULL, 'f'},
	    {"report", required_argument, NULL, 'r'},
	    {"format", required_argument, NULL, 'o'},
	    {"schemas", required_argument, NULL, 's'},
	    {"no-check", no_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	enum rules_fhir from = RULES_R4, to = RULES_R4;
	bool have_from = false, have_to = false, xml_out = false;
	bool check = true;
	const char *report_path = NULL, *schemas = NULL, *name;
	struct rules_set *set_in = NULL, *set_out = NULL;
	struct validate_ctx *vctx = NULL;
	struct fj_doc *doc = NULL;
	json_t *report = NULL;
	char *text = NULL, *rep = NULL, errbuf[512];
	size_t len = 0, i;
	struct buf out;
	int ch, status = CLI_USAGE;
	bool checked_out = false;
	enum gw_err err;

	buf_init(&out, 4 * TCLI_MAX_INPUT);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (!xf_version_parse(optarg, &to))
				return cli_usage("transform",
						 "--to must be r4 or stu3");
			have_to = true;
			break;
		case 'f':
			if (!xf_version_parse(optarg, &from))
				return cli_usage("transform",
						 "--from must be r4 or stu3");
			have_from = true;
			break;
		case 'r':
			report_path = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") == 0)
				xml_out = false;
			else if (strcmp(optarg, "xml") == 0)
				xml_out = true;
			else
				return cli_usage(
				    "transform",
				    "--format must be json or xml");
			break;
		case 's':
			schemas = optarg;
			break;
		case 'n':
			check = false;
			break;
		default:
			return cli_usage("transform", "unknown option");
		}
	}
	if (!have_to)
		return cli_usage("transform", "--to r4|stu3 is required");
	if (optind != argc - 1)
		return cli_usage("transform", "give exactly one FILE");
	name = argv[optind];
	if ((err = util_read_file(name, TCLI_MAX_INPUT, &text, &len)) !=
	    GW_OK) {
		fprintf(stderr, "pzpgw transform: %s: %s\n", name,
			gw_strerror(err));
		goto done;
	}
	i = strspn(text, " \t\r\n");
	if (text[i] == '<') {
		/* FHIR XML: read with the definitions of its version (R4
		   when not given; again as STU3 when it then looks so) */
		enum rules_fhir v = have_from ? from : RULES_R4;

		for (int attempt = 0; attempt < 2; attempt++) {
			rules_set_free(set_in);
			fj_doc_free(doc);
			doc = NULL;
			if ((set_in = load_rules(v, schemas)) == NULL)
				goto done;
			errbuf[0] = '\0';
			if (xmlfhir_to_fjson(text, len, set_in, &doc, errbuf,
					     sizeof(errbuf)) != GW_OK) {
				fprintf(stderr,
					"pzpgw transform: %s: not FHIR XML: "
					"%s\n",
					name, errbuf);
				goto done;
			}
			if (have_from)
				break;
			if (!detect_version(doc, &from)) {
				fprintf(stderr,
					"pzpgw transform: %s: cannot tell "
					"whether this is STU3 or R4; give "
					"--from\n",
					name);
				goto done;
			}
			have_from = true;
			if (from == v)
				break;
			v = from;
		}
	} else {
		struct fj_error jerr;

		if ((err = fj_parse(text, len, 0, &doc, &jerr)) != GW_OK) {
			fprintf(stderr, "pzpgw transform: %s:%u:%u: %s\n", name,
				jerr.line, jerr.col,
				err == GW_PARSE ? jerr.msg : gw_strerror(err));
			goto done;
		}
	}
	if (!have_from && !detect_version(doc, &from)) {
		fprintf(stderr,
			"pzpgw transform: %s: cannot tell whether this is STU3 "
			"or R4; give --from\n",
			name);
		goto done;
	}
	if ((report = fhir_outcome_new()) == NULL) {
		fprintf(stderr, "pzpgw transform: out of memory\n");
		goto done;
	}
	err = xf_convert(doc, from, to, report);
	/* Output the target's own validator rejects is never written: the
	   check marks what it can and refuses the rest, naming the output
	   element (--no-check: the caller validates the output itself). */
	if (err == GW_OK && check) {
		if ((set_out = load_rules(to, schemas)) == NULL)
			goto done;
		if (validate_ctx_new(set_out, &vctx) != GW_OK) {
			fprintf(stderr, "pzpgw transform: out of memory\n");
			goto done;
		}
		err = xf_check(doc, set_out, vctx, report);
		if (err == GW_PERM) {
			fprintf(stderr, "pzpgw transform: the output could not "
					"be validated\n");
			goto done;
		}
		if (err == GW_REJECT)
			checked_out = true;
	}
	if (report_path != NULL) {
		if ((rep = fhir_dump(report)) == NULL ||
		    util_write_file(report_path, rep, strlen(rep), 0644) !=
			GW_OK) {
			fprintf(stderr, "pzpgw transform: cannot write %s\n",
				report_path);
			goto done;
		}
	}
	if (err == GW_REJECT) {
		print_refusal(report);
		if (checked_out)
			say_input_verdict(name, text, len, from, schemas);
		status = CLI_FAIL;
		goto done;
	}
	if (err != GW_OK) {
		fprintf(stderr, "pzpgw transform: %s\n", gw_strerror(err));
		goto done;
	}
	if (xml_out) {
		if (set_out == NULL &&
		    (set_out = load_rules(to, schemas)) == NULL)
			goto done;
		errbuf[0] = '\0';
		if ((err = xmlfhir_from_fjson(doc->root, set_out, &out, errbuf,
					      sizeof(errbuf))) != GW_OK ||
		    buf_add(&out, "\n", 1) != GW_OK) {
			fprintf(stderr, "pzpgw transform: XML output: %s%s%s\n",
				gw_strerror(err), errbuf[0] ? ": " : "",
				errbuf);
			goto done;
		}
	} else if ((err = fj_dump(doc->root, FJ_PRETTY, &out)) != GW_OK) {
		fprintf(stderr, "pzpgw transform: %s\n", gw_strerror(err));
		goto done;
	}
	if (fwrite(out.data, 1, out.len, stdout) != out.len ||
	    fflush(stdout) != 0) {
		fprintf(stderr, "pzpgw transform: cannot write the output\n");
		goto done;
	}
	status = CLI_OK;
done:
	buf_cleanup(&out);
	free(rep);
	json_decref(report);
	fj_doc_free(doc);
	validate_ctx_free(vctx);
	rules_set_free(set_out);
	rules_set_free(set_in);
	free(text);
	return status;
}
