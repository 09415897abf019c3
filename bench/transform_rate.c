/*
 * Benchmark helper for bench/bench_transform.sh: for one Bundle (or
 * resource) FILE of version FROM, the rates per second of CPU time of
 * parsing it, parsing + converting it to the other version, and
 * validating it (parsed once) in its own version; the conversion's own
 * cost is the difference of the first two.
 * usage: transform_rate SCHEMAS SECONDS r4|stu3 FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fjson.h"
#include "outcome.h"
#include "rules.h"
#include "transform.h"
#include "util.h"
#include "validate.h"

/* CPU time of this process in us: rates stay comparable on a busy box. */
static uint64_t
cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

enum what { PARSE, CONVERT, VALIDATE };

/* Iterations per CPU second of one task for about budget_us. */
static double
rate(enum what w, const char *text, size_t len, enum rules_fhir from,
     struct validate_ctx *ctx, uint64_t budget_us)
{
	struct fj_doc *once = NULL;
	uint64_t t0 = cpu_us(), t;
	size_t n = 0;

	if (w == VALIDATE && fj_parse(text, len, 0, &once, NULL) != GW_OK)
		exit(2);
	do {
		struct fj_doc *d = NULL;
		json_t *out;

		switch (w) {
		case PARSE:
		case CONVERT:
			if (fj_parse(text, len, 0, &d, NULL) != GW_OK)
				exit(2);
			if (w == CONVERT &&
			    xf_convert(d, from,
				       from == RULES_R4 ? RULES_STU3 : RULES_R4,
				       NULL) != GW_OK)
				exit(1);
			fj_doc_free(d);
			break;
		case VALIDATE:
			out = fhir_outcome_new();
			if (validate_document(ctx, once->root, NULL, out) !=
			    GW_OK)
				exit(2);
			json_decref(out);
			break;
		}
		n++;
	} while ((t = cpu_us() - t0) < budget_us);
	fj_doc_free(once);
	return (double)n * 1e6 / (double)t;
}

int
main(int argc, char **argv)
{
	struct rules_set *set;
	struct validate_ctx *ctx = NULL;
	enum rules_fhir from;
	char errbuf[256], *text = NULL;
	size_t len;
	long long secs;
	double p, c, v;

	if (argc != 5 || util_parse_ll(argv[2], 1, 3600, &secs) != GW_OK ||
	    !xf_version_parse(argv[3], &from)) {
		fprintf(stderr, "usage: transform_rate SCHEMAS SECONDS "
				"r4|stu3 FILE\n");
		return 2;
	}
	if (util_read_file(argv[4], 64u << 20, &text, &len) != GW_OK)
		return 2;
	set = rules_set_new(from);
	if (set == NULL ||
	    rules_load_dir(set, argv[1], errbuf, sizeof(errbuf)) != GW_OK ||
	    validate_ctx_new(set, &ctx) != GW_OK) {
		fprintf(stderr, "rules: %s\n", errbuf);
		return 2;
	}
	p = rate(PARSE, text, len, from, ctx, (uint64_t)secs * 1000000);
	c = rate(CONVERT, text, len, from, ctx, (uint64_t)secs * 1000000);
	v = rate(VALIDATE, text, len, from, ctx, (uint64_t)secs * 1000000);
	/* per document: parse+convert minus parse = the conversion */
	printf("parse_per_s=%.0f\nparse_convert_per_s=%.0f\n"
	       "convert_us=%.1f\nvalidate_per_s=%.0f\nvalidate_us=%.1f\n",
	       p, c, 1e6 / c - 1e6 / p, v, 1e6 / v);
	validate_ctx_free(ctx);
	rules_set_free(set);
	free(text);
	return 0;
}
