/*
 * Growing-array benchmark: builds documents whose arrays (or objects) have
 * 1,000, 10,000 and 100,000 elements and times each step of document work
 * on them, printing CPU time per element. Work that is linear in the array
 * keeps that figure flat; a figure that grows with the size is a quadratic
 * path, and the program then exits 1.
 * usage: bench_arrays SCHEMAS [MAX_N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "canon.h"
#include "outcome.h"
#include "fhirpath.h"
#include "fjson.h"
#include "message.h"
#include "rules.h"
#include "util.h"
#include "validate.h"

/* Per-element time may rise this much from one size to the next, ten
 * times larger, before it counts as growth: caches and the allocator
 * cost up to about 2x, a quadratic path costs 10x. */
#define GROWTH_LIMIT 2.5
/* A size that takes longer than this (seconds) ends its case. */
#define SLOW_S 30.0

static struct validate_ctx *vctx;

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
must(enum gw_err e, const char *what)
{
	if (e != GW_OK) {
		fprintf(stderr, "bench_arrays: %s: %s\n", what, gw_strerror(e));
		exit(2);
	}
}

/* ---- documents ---- */

static void
gen_keys(struct buf *b, size_t n)
{
	must(buf_adds(b, "{\"resourceType\":\"Basic\""), "gen");
	for (size_t i = 0; i < n; i++)
		must(buf_printf(b, ",\"k%zu\":%zu", i, i), "gen");
	must(buf_adds(b, "}"), "gen");
}

static void
gen_extensions(struct buf *b, size_t n)
{
	must(buf_adds(b, "{\"resourceType\":\"Patient\",\"id\":\"p\","
			 "\"extension\":["),
	     "gen");
	for (size_t i = 0; i < n; i++)
		must(buf_printf(b,
				"%s{\"url\":\"http://example.org/ext/%zu\","
				"\"valueString\":\"v%zu\"}",
				i ? "," : "", i, i),
		     "gen");
	must(buf_adds(b, "]}"), "gen");
}

static void
gen_identifiers(struct buf *b, size_t n)
{
	must(buf_adds(b, "{\"resourceType\":\"Patient\",\"id\":\"p\","
			 "\"identifier\":["),
	     "gen");
	for (size_t i = 0; i < n; i++)
		must(buf_printf(b,
				"%s{\"system\":\"urn:oid:1.2.3\","
				"\"value\":\"%zu\"}",
				i ? "," : "", i),
		     "gen");
	must(buf_adds(b, "]}"), "gen");
}

/* A message Bundle: a MessageHeader whose n focus references point at n
 * Patient entries, half by fullUrl, half by Type/id; each Patient links
 * to the first one by Type/id. */
static void
gen_message(struct buf *b, size_t n)
{
	must(
	    buf_adds(
		b,
		"{\"resourceType\":\"Bundle\",\"type\":\"message\","
		"\"identifier\":{\"system\":\"urn:ietf:rfc:3986\","
		"\"value\":\"urn:uuid:6d1f0c3c-6d0e-4a43-9d4c-"
		"1b2a3c4d5e6f\"},\"timestamp\":"
		"\"2024-01-01T00:00:00Z\",\"entry\":[{\"fullUrl\":"
		"\"urn:uuid:00000000-0000-4000-8000-ffffffffffff\","
		"\"resource\":{\"resourceType\":\"MessageHeader\","
		"\"id\":\"mh\",\"eventCoding\":{\"system\":"
		"\"" MESSAGE_EVENT_SYSTEM
		"\",\"code\":\"pzp-shared\"},\"source\":{"
		"\"endpoint\":\"https://a.example/fhir\"},"
		"\"sender\":{\"identifier\":{\"system\":\"" MESSAGE_URA_SYSTEM
		"\",\"value\":\"12345678\"}},\"destination\":[{"
		"\"endpoint\":\"https://b.example/fhir\","
		"\"receiver\":{\"identifier\":{\"system\":\"" MESSAGE_URA_SYSTEM
		"\",\"value\":\"87654321\"}}}],\"focus\":["),
	    "gen");
	for (size_t i = 0; i < n; i++) {
		if (i % 2 == 0)
			must(buf_printf(b,
					"%s{\"reference\":\"urn:uuid:00000000-"
					"0000-4000-8000-%012zu\"}",
					i ? "," : "", i),
			     "gen");
		else
			must(buf_printf(b, ",{\"reference\":\"Patient/p%zu\"}",
					i),
			     "gen");
	}
	must(buf_adds(b, "]}}"), "gen");
	for (size_t i = 0; i < n; i++)
		must(buf_printf(b,
				",{\"fullUrl\":\"urn:uuid:00000000-0000-4000-"
				"8000-%012zu\",\"resource\":{\"resourceType\":"
				"\"Patient\",\"id\":\"p%zu\",\"link\":[{"
				"\"other\":{\"reference\":\"Patient/p0\"},"
				"\"type\":\"seealso\"}]}}",
				i, i),
		     "gen");
	must(buf_adds(b, "]}"), "gen");
}

/* ---- work ---- */

static void
gen_array(struct buf *b, size_t n)
{
	must(buf_adds(b, "{\"resourceType\":\"Basic\",\"a\":["), "gen");
	for (size_t i = 0; i < n; i++)
		must(buf_printf(b, "%s%zu", i ? "," : "", i), "gen");
	must(buf_adds(b, "]}"), "gen");
}

static void
run_parse(const char *text, size_t len, const char *arg)
{
	struct fj_doc *doc = NULL;

	must(fj_parse(text, len, 0, &doc, NULL), "fj_parse");
	fj_doc_free(doc);
}

static void
run_canon(const char *text, size_t len, const char *arg)
{
	struct buf out;

	buf_init(&out, (size_t)1 << 30);
	must(canon_text(text, len, &out, NULL), "canon_text");
	buf_cleanup(&out);
}

static void
run_validate(const char *text, size_t len, const char *arg)
{
	json_t *oo = fhir_outcome_new();

	if (oo == NULL)
		must(GW_NOMEM, "outcome");
	must(validate_text(vctx, text, len, NULL, oo), "validate_text");
	json_decref(oo);
}

static void
run_message(const char *text, size_t len, const char *arg)
{
	struct fj_doc *doc = NULL;
	struct message_info info;
	json_t *oo = fhir_outcome_new();

	must(fj_parse(text, len, 0, &doc, NULL), "fj_parse");
	if (message_parse(doc->root, &info, oo) != GW_OK) {
		char *s = fhir_dump(oo);

		fprintf(stderr, "bench_arrays: message_parse: %.400s\n", s);
		exit(2);
	}
	json_decref(oo);
	fj_doc_free(doc);
}

static void
run_fhirpath(const char *text, size_t len, const char *expr)
{
	struct fj_doc *doc = NULL;
	struct fhirpath_env env;
	struct fhirpath *fp = NULL;
	struct fhirpath_result *r = NULL;
	enum gw_err e;

	memset(&env, 0, sizeof(env));
	must(fj_parse(text, len, 0, &doc, NULL), "fj_parse");
	env.resource = doc->root;
	must(fhirpath_compile(expr, &fp, NULL, 0), expr);
	/* past FHIRPATH_MAX_ITEMS or _MEMORY: refused, which is linear */
	e = fhirpath_eval(fp, doc->root, "Patient", &env, &r);
	if (e != GW_TOOBIG)
		must(e, expr);
	fhirpath_result_free(r);
	fhirpath_free(fp);
	fj_doc_free(doc);
}

struct bcase {
	const char *name;
	void (*gen)(struct buf *, size_t);
	void (*run)(const char *, size_t, const char *);
	const char *arg;
};

/* FHIRPath expressions run over the extensions (the sets stay within
 * FHIRPATH_MAX_ITEMS at n = 100,000). */
static const struct bcase cases[] = {
    {"parse: array elements (reference)", gen_array, run_parse, NULL},
    {"parse: object keys", gen_keys, run_parse, NULL},
    {"canonicalise: object keys", gen_keys, run_canon, NULL},
    {"fhirpath: isDistinct()", gen_extensions, run_fhirpath,
     "extension.url.isDistinct()"},
    {"fhirpath: distinct()", gen_extensions, run_fhirpath,
     "extension.url.distinct().count()"},
    {"fhirpath: union |", gen_extensions, run_fhirpath,
     "(extension.url | extension.url.first()).count()"},
    {"fhirpath: intersect()", gen_extensions, run_fhirpath,
     "extension.url.intersect(extension.url).count()"},
    {"fhirpath: subsetOf()", gen_extensions, run_fhirpath,
     "extension.url.subsetOf(extension.url)"},
    {"$validate: extensions", gen_extensions, run_validate, NULL},
    {"$validate: repeated identifier", gen_identifiers, run_validate, NULL},
    {"message_parse: entries + focus", gen_message, run_message, NULL},
    {"$validate: message entries + focus", gen_message, run_validate, NULL},
    {"canonicalise: message entries", gen_message, run_canon, NULL},
};

int
main(int argc, char **argv)
{
	static const size_t sizes[] = {1000, 10000, 100000};
	struct rules_set *set;
	char errbuf[256];
	long long max_n = 100000;
	int status = 0;

	if (argc < 2 || argc > 3 ||
	    (argc == 3 &&
	     util_parse_ll(argv[2], 1, 10000000, &max_n) != GW_OK)) {
		fprintf(stderr, "usage: bench_arrays SCHEMAS [MAX_N]\n");
		return 2;
	}
	set = rules_set_new(RULES_R4);
	if (set == NULL ||
	    rules_load_dir(set, argv[1], errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "bench_arrays: rules: %s\n", errbuf);
		return 2;
	}
	must(validate_ctx_new(set, &vctx), "validate_ctx_new");
	printf("%-40s %8s %12s\n", "case", "n", "us/element");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double prev = 0;

		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			size_t n = sizes[s], reps = 0;
			struct buf b;
			double t0, t, per;

			if ((long long)n > max_n)
				break;
			buf_init(&b, (size_t)1 << 30);
			cases[c].gen(&b, n);
			/* repeat small sizes to at least 0.3 s */
			t0 = cpu_s();
			do {
				cases[c].run(b.data, b.len, cases[c].arg);
				reps++;
				t = cpu_s() - t0;
			} while (t < 0.3);
			buf_cleanup(&b);
			per = t / (double)reps / (double)n * 1e6;
			printf("%-40s %8zu %12.3f\n", cases[c].name, n, per);
			fflush(stdout);
			if (prev > 0 && per > prev * GROWTH_LIMIT) {
				printf("%-40s GROWS with n (x%.1f per element "
				       "for 10x the elements)\n",
				       cases[c].name, per / prev);
				status = 1;
			}
			prev = per;
			if (t / (double)reps > SLOW_S) {
				printf("%-40s %8s (larger sizes skipped: "
				       "%.0f s for one run)\n",
				       cases[c].name, "", t / (double)reps);
				status = 1;
				break;
			}
		}
	}
	validate_ctx_free(vctx);
	rules_set_free(set);
	return status;
}
