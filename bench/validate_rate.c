/*
 * Benchmark helper for bench/bench_validate.sh: validates JSON files
 * repeatedly on one core (parsed once, warm caches) and prints rates per
 * second of CPU time.
 * usage: validate_rate SCHEMAS SECONDS MODE FILE...
 *   MODE each: every FILE in turn counts as one resource
 *   MODE bundle: every FILE is a Bundle; rate counts its entries too
 *   VALIDATE_RATE_QUIET=1 in the environment: the gateway accept's
 *   validation (validate_opts.quiet_when_valid: no warnings built for a
 *   valid document)
 */
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "fjson.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

/* CPU time of this process in ms: rates stay comparable on a busy box. */
static uint64_t
cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	struct rules_set *set;
	struct validate_ctx *ctx = NULL;
	struct fj_doc **docs;
	char errbuf[256];
	uint64_t t0, t1, budget_ms;
	long long secs;
	size_t nfiles, nres = 0, iters = 0, errors = 0;
	const char *quiet = getenv("VALIDATE_RATE_QUIET");
	struct validate_opts opts = {
	    .quiet_when_valid = quiet != NULL && strcmp(quiet, "1") == 0};

	if (argc < 5 || util_parse_ll(argv[2], 1, 3600, &secs) != GW_OK) {
		fprintf(stderr, "usage: validate_rate SCHEMAS SECONDS "
				"each|bundle FILE...\n");
		return 2;
	}
	budget_ms = (uint64_t)secs * 1000;
	nfiles = (size_t)(argc - 4);
	t0 = util_mono_ms();
	set = rules_set_new(RULES_R4);
	if (set == NULL ||
	    rules_load_dir(set, argv[1], errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "validate_rate: rules: %s\n", errbuf);
		return 2;
	}
	if (validate_ctx_new(set, &ctx) != GW_OK)
		return 2;
	t1 = util_mono_ms();
	printf("startup_ms=%llu\n", (unsigned long long)(t1 - t0));
	if ((docs = calloc(nfiles, sizeof(*docs))) == NULL)
		return 2;
	for (size_t i = 0; i < nfiles; i++) {
		char *text;
		size_t len;
		const struct fj_node *e;

		if (util_read_file(argv[4 + i], 64u << 20, &text, &len) !=
			GW_OK ||
		    fj_parse(text, len, 0, &docs[i], NULL) != GW_OK) {
			fprintf(stderr, "validate_rate: %s: unreadable\n",
				argv[4 + i]);
			return 2;
		}
		free(text);
		nres++;
		e = fj_get(docs[i]->root, "entry");
		if (strcmp(argv[3], "bundle") == 0 && e != NULL)
			nres += e->u.kids.count;
	}
	/* warm up: build every per-structure index once */
	for (size_t i = 0; i < nfiles; i++) {
		json_t *o = fhir_outcome_new();

		validate_document(ctx, docs[i]->root, NULL, o);
		errors += fhir_outcome_errors(o);
		json_decref(o);
	}
	t0 = cpu_ms();
	do {
		for (size_t i = 0; i < nfiles; i++) {
			json_t *o = fhir_outcome_new();

			if (validate_document(ctx, docs[i]->root, &opts, o) !=
			    GW_OK)
				return 2;
			json_decref(o);
		}
		iters++;
		t1 = cpu_ms();
	} while (t1 - t0 < budget_ms);
	printf("files=%zu resources_per_pass=%zu passes=%zu ms=%llu "
	       "errors=%zu\n",
	       nfiles, nres, iters, (unsigned long long)(t1 - t0), errors);
	printf("resources_per_s=%.0f\n",
	       (double)nres * (double)iters * 1000.0 / (double)(t1 - t0));
	for (size_t i = 0; i < nfiles; i++)
		fj_doc_free(docs[i]);
	free(docs);
	validate_ctx_free(ctx);
	rules_set_free(set);
	return 0;
}
