/*
 * `pzpgw validate`: load the rules (schemas/ plus --ig sources), validate
 * each FILE (or stdin) and print the findings as text or OperationOutcome.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "outcome.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

#define VCLI_MAX_INPUT (64u * 1024 * 1024)
#define VCLI_MAX_IG    64

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The default rules directory: $PZPGW_SCHEMAS, the source tree the binary
 * was built in (build/<variant>/pzpgw -> schemas/), the installed copy,
 * then ./schemas. (Also used by cli_transform.c.) */
void
cli_default_schemas(char *out, size_t len)
{
	const char *env = getenv("PZPGW_SCHEMAS");
	char exe[4096];
	ssize_t n;

	if (env != NULL && env[0] != '\0') {
		util_strlcpy(out, env, len);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		for (int up = 0; up < 3; up++) {
			if ((slash = strrchr(exe, '/')) == NULL)
				break;
			*slash = '\0';
			if (up == 2) {
				char cand[sizeof(exe) + 16];

				snprintf(cand, sizeof(cand), "%s/schemas", exe);
				if (strlen(cand) < len && is_dir(cand)) {
					util_strlcpy(out, cand, len);
					return;
				}
			}
		}
	}
	if (is_dir("/usr/share/pzpgw/schemas")) {
		util_strlcpy(out, "/usr/share/pzpgw/schemas", len);
		return;
	}
	util_strlcpy(out, "schemas", len);
}

static enum gw_err
read_stdin(char **out, size_t *outlen)
{
	struct buf b;
	char chunk[65536];
	size_t n;

	buf_init(&b, VCLI_MAX_INPUT);
	while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
		enum gw_err err = buf_add(&b, chunk, n);

		if (err != GW_OK) {
			buf_cleanup(&b);
			return err;
		}
	}
	if (ferror(stdin)) {
		buf_cleanup(&b);
		return GW_IO;
	}
	if (b.data == NULL && buf_add(&b, "", 0) != GW_OK) {
		buf_cleanup(&b);
		return GW_NOMEM;
	}
	*out = buf_steal(&b, outlen);
	return *out != NULL ? GW_OK : GW_NOMEM;
}

static int
issue_int_ext(const json_t *issue, const char *suffix)
{
	const json_t *ext = json_object_get(issue, "extension");
	size_t i;
	json_t *e;

	json_array_foreach(ext, i, e)
	{
		const char *url = json_string_value(json_object_get(e, "url"));
		size_t ul = url != NULL ? strlen(url) : 0, sl = strlen(suffix);

		if (ul >= sl && strcmp(url + ul - sl, suffix) == 0)
			return (int)json_integer_value(
			    json_object_get(e, "valueInteger"));
	}
	return 0;
}

/* Severity order for --min-severity: information < warning < error <
 * fatal; unknown severities count as errors (never hidden). */
static int
sev_rank(const char *sev)
{
	if (sev == NULL)
		return 3;
	if (strcmp(sev, "information") == 0)
		return 1;
	if (strcmp(sev, "warning") == 0)
		return 2;
	return strcmp(sev, "fatal") == 0 ? 4 : 3;
}

/* Remove the issues below rank min; returns how many. With json, an
 * outcome left empty gets one information issue saying so
 * (OperationOutcome.issue is 1..*); the text summary says it itself. */
static size_t
hide_below(json_t *outcome, int min, bool json_out)
{
	json_t *issues = json_object_get(outcome, "issue");
	size_t i = 0, hidden = 0;

	while (i < json_array_size(issues)) {
		const json_t *is = json_array_get(issues, i);

		if (sev_rank(json_string_value(
			json_object_get(is, "severity"))) < min) {
			json_array_remove(issues, i);
			hidden++;
		} else {
			i++;
		}
	}
	if (json_out && hidden > 0 && json_array_size(issues) == 0)
		(void)fhir_outcome_add(outcome, FHIR_INFORMATION,
				       "informational", NULL, 0, 0,
				       "%zu finding%s below --min-severity "
				       "hidden",
				       hidden, hidden == 1 ? "" : "s");
	return hidden;
}

static void
print_text(const char *name, const json_t *outcome, size_t hidden)
{
	const json_t *issues = json_object_get(outcome, "issue");
	size_t i, nerr = 0, nwarn = 0;
	json_t *is;

	json_array_foreach(issues, i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));
		const char *msg =
		    json_string_value(json_object_get(is, "diagnostics"));
		const char *expr = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));
		int line = issue_int_ext(is, "issue-line"),
		    col = issue_int_ext(is, "issue-col");

		if (sev == NULL)
			sev = "error";
		if (strcmp(sev, "error") == 0 || strcmp(sev, "fatal") == 0)
			nerr++;
		else if (strcmp(sev, "warning") == 0)
			nwarn++;
		if (line > 0) {
			if (col > 0)
				printf("%s:%d:%d: ", name, line, col);
			else
				printf("%s:%d: ", name, line);
		} else
			printf("%s: ", name);
		printf("%s%s%s: %s\n", sev, expr != NULL ? " " : "",
		       expr != NULL ? expr : "", msg != NULL ? msg : "");
	}
	if (hidden > 0)
		printf("%s: %s, %zu error%s, %zu warning%s, %zu hidden\n", name,
		       nerr > 0 ? "invalid" : "valid", nerr,
		       nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s",
		       hidden);
	else
		printf("%s: %s, %zu error%s, %zu warning%s\n", name,
		       nerr > 0 ? "invalid" : "valid", nerr,
		       nerr == 1 ? "" : "s", nwarn, nwarn == 1 ? "" : "s");
}

/* With --detect, profiles given with --ig (structures from index nbase
 * on) may be detected too: add their canonical bases
 * ("http://x/StructureDefinition/") as detection prefixes. Without it
 * only the built-in PZP profiles are: guessing among an integrator's
 * profiles judges valid resources by profiles they never claimed. */
static enum gw_err
detect_ig_profiles(struct validate_ctx *ctx, const struct rules_set *set,
		   size_t nbase)
{
	const struct rules_structure *sd;
	char prefix[1024];

	for (size_t i = nbase; (sd = rules_structure_at(set, i)) != NULL; i++) {
		const char *slash;
		size_t n;
		enum gw_err err;

		if (!sd->constraint || sd->url == NULL ||
		    (slash = strrchr(sd->url, '/')) == NULL)
			continue;
		n = (size_t)(slash - sd->url) + 1;
		if (n >= sizeof(prefix))
			continue;
		memcpy(prefix, sd->url, n);
		prefix[n] = '\0';
		if ((err = validate_ctx_detect_prefix(ctx, prefix)) != GW_OK)
			return err;
	}
	return GW_OK;
}

/* The other FHIR version's rules, loaded on first need (a file with
 * errors) to say when a file looks like that version. */
struct vcli_other {
	enum rules_fhir fhir;
	bool tried;
	struct rules_set *set;
	struct validate_ctx *ctx;
};

static void
other_free(struct vcli_other *o)
{
	validate_ctx_free(o->ctx);
	rules_set_free(o->set);
}

/* Errors text has under the other version's rules (from schemas), or
 * SIZE_MAX when those cannot be loaded. */
static size_t
other_errors(struct vcli_other *o, const char *schemas, const char *text,
	     size_t len)
{
	struct validate_opts opts = {0};
	char errbuf[256];
	json_t *oo;
	size_t n;

	if (!o->tried) {
		o->tried = true;
		if ((o->set = rules_set_new(o->fhir)) == NULL ||
		    rules_load_dir(o->set, schemas, errbuf, sizeof(errbuf)) !=
			GW_OK ||
		    validate_ctx_new(o->set, &o->ctx) != GW_OK) {
			validate_ctx_free(o->ctx);
			rules_set_free(o->set);
			o->ctx = NULL;
			o->set = NULL;
		}
	}
	if (o->ctx == NULL || (oo = fhir_outcome_new()) == NULL)
		return SIZE_MAX;
	n = validate_text(o->ctx, text, len, &opts, oo) == GW_OK
		? fhir_outcome_errors(oo)
		: SIZE_MAX;
	json_decref(oo);
	return n;
}

int
cli_validate(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"fhir", required_argument, NULL, 'f'},
	    {"ig", required_argument, NULL, 'i'},
	    {"profile", required_argument, NULL, 'p'},
	    {"format", required_argument, NULL, 'o'},
	    {"schemas", required_argument, NULL, 's'},
	    {"detect", no_argument, NULL, 'd'},
	    {"allow-example-urls", no_argument, NULL, 'x'},
	    {"min-severity", required_argument, NULL, 'm'},
	    {NULL, 0, NULL, 0},
	};
	const char *igs[VCLI_MAX_IG], *schemas = NULL;
	struct validate_opts opts = {0};
	enum rules_fhir fhir = RULES_R4;
	struct validate_ctx *ctx = NULL;
	struct rules_set *set = NULL;
	struct vcli_other other = {0};
	char dir[4096], errbuf[512];
	size_t nigs = 0, nbase = 0;
	bool json_out = false, detect = false;
	int ch, status = CLI_OK, min_rank = 1;
	enum gw_err err;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			if (strcmp(optarg, "r4") == 0 ||
			    strcmp(optarg, "R4") == 0)
				fhir = RULES_R4;
			else if (strcmp(optarg, "stu3") == 0 ||
				 strcmp(optarg, "STU3") == 0)
				fhir = RULES_STU3;
			else
				return cli_usage("validate",
						 "--fhir must be r4 or stu3");
			break;
		case 'i':
			if (nigs == VCLI_MAX_IG)
				return cli_usage("validate",
						 "too many --ig options");
			igs[nigs++] = optarg;
			break;
		case 'p':
			opts.profile = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "json") == 0)
				json_out = true;
			else if (strcmp(optarg, "text") == 0)
				json_out = false;
			else
				return cli_usage("validate",
						 "--format must be text or "
						 "json");
			break;
		case 's':
			schemas = optarg;
			break;
		case 'd':
			detect = true;
			break;
		case 'x':
			opts.allow_example_urls = true;
			break;
		case 'm':
			if (strcmp(optarg, "error") == 0)
				min_rank = 3;
			else if (strcmp(optarg, "warning") == 0)
				min_rank = 2;
			else if (strcmp(optarg, "information") == 0)
				min_rank = 1;
			else
				return cli_usage(
				    "validate", "--min-severity must be error, "
						"warning or information");
			break;
		default:
			return cli_usage("validate", "unknown option");
		}
	}
	if (optind >= argc)
		return cli_usage("validate", "no FILE given");
	if (schemas == NULL) {
		cli_default_schemas(dir, sizeof(dir));
		schemas = dir;
	}
	if ((set = rules_set_new(fhir)) == NULL) {
		fprintf(stderr, "pzpgw validate: out of memory\n");
		return CLI_USAGE;
	}
	errbuf[0] = '\0';
	err = rules_load_dir(set, schemas, errbuf, sizeof(errbuf));
	if (err != GW_OK && !(err == GW_NOTFOUND && nigs > 0)) {
		fprintf(stderr, "pzpgw validate: rules in %s: %s%s%s\n",
			schemas, gw_strerror(err), errbuf[0] ? ": " : "",
			errbuf);
		status = CLI_USAGE;
		goto done;
	}
	while (rules_structure_at(set, nbase) != NULL)
		nbase++;
	for (size_t i = 0; i < nigs; i++) {
		errbuf[0] = '\0';
		err = rules_add_path(set, igs[i], errbuf, sizeof(errbuf));
		if (err != GW_OK) {
			fprintf(stderr, "pzpgw validate: --ig %s: %s%s%s\n",
				igs[i], gw_strerror(err), errbuf[0] ? ": " : "",
				errbuf);
			status = CLI_USAGE;
			goto done;
		}
	}
	if (opts.profile != NULL &&
	    rules_structure(set, opts.profile) == NULL) {
		fprintf(stderr, "pzpgw validate: profile %s is not known\n",
			opts.profile);
		status = CLI_USAGE;
		goto done;
	}
	if (validate_ctx_new(set, &ctx) != GW_OK ||
	    (detect && detect_ig_profiles(ctx, set, nbase) != GW_OK)) {
		fprintf(stderr, "pzpgw validate: out of memory\n");
		status = CLI_USAGE;
		goto done;
	}
	for (int i = optind; i < argc; i++) {
		const char *name = argv[i];
		char *text = NULL;
		size_t len = 0, nerr, nother, hidden;
		json_t *outcome;

		if (strcmp(name, "-") == 0)
			err = read_stdin(&text, &len);
		else
			err = util_read_file(name, VCLI_MAX_INPUT, &text, &len);
		if (err != GW_OK) {
			fprintf(stderr, "pzpgw validate: %s: %s\n", name,
				gw_strerror(err));
			status = CLI_USAGE;
			continue;
		}
		if ((outcome = fhir_outcome_new()) == NULL ||
		    validate_text(ctx, text, len, &opts, outcome) != GW_OK) {
			fprintf(stderr, "pzpgw validate: %s: out of memory\n",
				name);
			json_decref(outcome);
			free(text);
			status = CLI_USAGE;
			continue;
		}
		/* the verdict counts every finding, shown or not */
		nerr = fhir_outcome_errors(outcome);
		hidden = hide_below(outcome, min_rank, json_out);
		if (json_out) {
			char *s = fhir_dump(outcome);

			if (s != NULL)
				printf("%s\n", s);
			free(s);
		} else {
			print_text(strcmp(name, "-") == 0 ? "stdin" : name,
				   outcome, hidden);
		}
		/* The wrong --fhir gives many errors for a good file: when
		 * the other version's rules find fewer than half as many,
		 * say so (only for the plain schemas: --ig and --profile
		 * name one version's profiles). */
		if (nerr > 0 && nigs == 0 && opts.profile == NULL) {
			other.fhir = fhir == RULES_R4 ? RULES_STU3 : RULES_R4;
			nother = other_errors(&other, schemas, text, len);
			if (nother != SIZE_MAX && nother * 2 < nerr)
				fprintf(stderr,
					"pzpgw validate: %s: this looks like "
					"%s (%zu error%s with --fhir %s): "
					"try --fhir %s\n",
					strcmp(name, "-") == 0 ? "stdin" : name,
					fhir == RULES_R4 ? "STU3" : "R4",
					nother, nother == 1 ? "" : "s",
					fhir == RULES_R4 ? "stu3" : "r4",
					fhir == RULES_R4 ? "stu3" : "r4");
		}
		free(text);
		if (nerr > 0 && status == CLI_OK)
			status = CLI_FAIL;
		json_decref(outcome);
	}
	fflush(stdout);
done:
	other_free(&other);
	validate_ctx_free(ctx);
	rules_set_free(set);
	return status;
}
