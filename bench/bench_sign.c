/*
 * PZP-JWS throughput: signatures and verifications per second of one
 * Bundle with one key, through the same sign_bundle/sign_verify calls
 * the daemon makes (canonicalisation, hashing, JWS, placement, checks).
 * usage: bench_sign KEY CERT TRUST BUNDLE SECONDS; prints "sign N",
 * "verify N" (per CPU second) and "alg A".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fjson.h"
#include "sign.h"
#include "util.h"

/* CPU milliseconds of this process: what `openssl speed` measures too
 * (without -elapsed), so a busy machine affects both alike. */
static uint64_t
bench_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Re-parse the signed document now and then so its arena (each signing
 * adds a signature element) stays small; parsing is not timed. */
#define BENCH_REPARSE 256

static struct fj_doc *
bench_parse(const char *text, size_t len)
{
	struct fj_doc *doc = NULL;
	struct fj_error err;

	if (fj_parse(text, len, 0, &doc, &err) != GW_OK) {
		fprintf(stderr, "bench_sign: parse: %s\n", err.msg);
		exit(2);
	}
	return doc;
}

int
main(int argc, char **argv)
{
	struct sign_key *key = NULL;
	struct sign_trust *trust = NULL;
	struct sign_opts so = {SIGN_FHIR_R4, SIGN_PURPOSE_VERIFICATION, 0};
	struct sign_verify_opts vo = {NULL, NULL, 300, 0};
	struct sign_result res;
	struct fj_doc *doc;
	char errbuf[512], *text;
	size_t len;
	uint64_t start, spent = 0, budget;
	long long secs, nsign = 0, nverify = 0;

	if (argc != 6 || util_parse_ll(argv[5], 1, 600, &secs) != GW_OK) {
		fprintf(stderr, "usage: bench_sign KEY CERT TRUST BUNDLE "
				"SECONDS\n");
		return 2;
	}
	budget = (uint64_t)secs * 1000;
	if (sign_key_load(argv[1], argv[2], NULL, NULL, &key, errbuf,
			  sizeof(errbuf)) != GW_OK ||
	    sign_trust_new(argv[3], NULL, 0, &trust, errbuf, sizeof(errbuf)) !=
		GW_OK) {
		fprintf(stderr, "bench_sign: %s\n", errbuf);
		return 2;
	}
	if (util_read_file(argv[4], 1 << 24, &text, &len) != GW_OK) {
		fprintf(stderr, "bench_sign: cannot read %s\n", argv[4]);
		return 2;
	}
	vo.trust = trust;

	doc = bench_parse(text, len);
	while (spent < budget) {
		start = bench_cpu_ms();
		for (int i = 0; i < BENCH_REPARSE; i++, nsign++)
			if (sign_bundle(key, doc, &so, NULL, errbuf,
					sizeof(errbuf)) != GW_OK) {
				fprintf(stderr, "bench_sign: sign: %s\n",
					errbuf);
				return 1;
			}
		spent += bench_cpu_ms() - start;
		fj_doc_free(doc);
		doc = bench_parse(text, len);
	}
	printf("sign %.1f\n", (double)nsign * 1000.0 / (double)spent);

	if (sign_bundle(key, doc, &so, NULL, errbuf, sizeof(errbuf)) != GW_OK) {
		fprintf(stderr, "bench_sign: sign: %s\n", errbuf);
		return 1;
	}
	spent = 0;
	start = bench_cpu_ms();
	while ((spent = bench_cpu_ms() - start) < budget) {
		for (int i = 0; i < 64; i++, nverify++) {
			if (sign_verify(doc->root, NULL, &vo, &res) != GW_OK) {
				fprintf(stderr, "bench_sign: verify: %s\n",
					res.reason);
				return 1;
			}
			sign_result_cleanup(&res);
		}
	}
	printf("verify %.1f\n", (double)nverify * 1000.0 / (double)spent);
	printf("alg %s\n", sign_alg_name(sign_key_alg(key)));

	fj_doc_free(doc);
	free(text);
	sign_trust_free(trust);
	sign_key_free(key);
	return 0;
}
