/*
 * What the audit trail costs accepts: the store's writer thread takes
 * accepts (32 outstanding, 8 KB each, one fsync per group commit) for a
 * few seconds, alone and then while another thread submits audit
 * records at a fixed rate, on a real SQLite file in the same run.
 * Prints accepts per second, p50/p99 from submit to callback, and audit
 * records written per second.
 * usage: bench_audit DIR SECONDS AUDITS_PER_SECOND
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define WINDOW	32
#define DOC_LEN 8192
#define MAX_LAT 2000000

struct run {
	struct store *s;
	atomic_bool stop;
	long rate; /* audit records per second, 0: none */
	long audits;
	long refused;
	int64_t *lat; /* us */
	size_t nlat;
	size_t outstanding;
};

struct slot {
	struct run *r;
	uint64_t t0;
};

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
done(void *arg, const struct store_result *res)
{
	struct slot *sl = arg;
	struct run *r = sl->r;

	if (res->err == GW_OK && r->nlat < MAX_LAT)
		r->lat[r->nlat++] = (int64_t)(now_us() - sl->t0);
	r->outstanding--;
	free(sl);
}

/* Audit records at r->rate per second, in steps of 1 ms. */
static void *
auditor(void *arg)
{
	struct run *r = arg;
	struct store_audit_rec rec;
	uint64_t start = now_us();

	memset(&rec, 0, sizeof(rec));
	util_strlcpy(rec.ura, "90000003", sizeof(rec.ura));
	util_strlcpy(rec.cert_serial,
		     "5EAA17F281B4EF1E27DA4BAB3B5EB1A3AFCBEA08",
		     sizeof(rec.cert_serial));
	util_strlcpy(rec.cert_issuer,
		     "CN=TEST UZI-register Private Server CA G1,O=TEST "
		     "CIBG,C=NL",
		     sizeof(rec.cert_issuer));
	util_strlcpy(rec.bsn, "999911120", sizeof(rec.bsn));
	util_strlcpy(rec.interaction, "search-type", sizeof(rec.interaction));
	util_strlcpy(rec.query,
		     "/fhir/Consent?patient.identifier=http://fhir.nl/fhir/"
		     "NamingSystem/bsn|999911120&scope=treatment",
		     sizeof(rec.query));
	util_strlcpy(rec.request_id, "0b7c4f1e-5d1a-4c1e-9a4e-1d2f3a4b5c6d",
		     sizeof(rec.request_id));
	rec.status = 200;
	rec.count = 3;
	while (!atomic_load(&r->stop)) {
		long due =
		    (long)((now_us() - start) * (uint64_t)r->rate / 1000000u);

		while (r->audits + r->refused < due) {
			if (store_submit_audit(r->s, &rec) == GW_OK)
				r->audits++;
			else
				r->refused++;
		}
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	}
	return NULL;
}

static int
cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int
run_one(const char *dir, long long seconds, long rate, int n)
{
	struct store_options o = {0};
	char path[512], id[48];
	static char doc[DOC_LEN];
	struct run r = {.rate = rate};
	struct pollfd p;
	pthread_t th;
	uint64_t t_start, t_end;
	size_t accepted = 0;

	snprintf(path, sizeof(path), "%s/bench-%d.db", dir, n);
	o.path = path;
	o.create = true;
	o.relaxed_state = true;
	o.background_upkeep = true;
	if (store_open(&o, &r.s) != GW_OK)
		return 1;
	memset(doc, 'x', sizeof(doc));
	doc[0] = '{';
	doc[sizeof(doc) - 1] = '}';
	r.lat = calloc(MAX_LAT, sizeof(*r.lat));
	p.fd = store_notify_fd(r.s);
	p.events = POLLIN;
	if (rate > 0)
		pthread_create(&th, NULL, auditor, &r);
	t_start = now_us();
	t_end = t_start + (uint64_t)seconds * 1000000u;
	while (now_us() < t_end) {
		while (r.outstanding < WINDOW) {
			struct slot *sl = malloc(sizeof(*sl));
			struct store_accept a = {
			    .id = id,
			    .direction = STORE_INBOUND,
			    .sender_ura = "90000001",
			    .bundle_system = "urn:ietf:rfc:3986",
			    .bundle_value = id,
			    .patient_key = "p",
			    .fhir_version = "4.0.1",
			    .doc = doc,
			    .doc_len = sizeof(doc),
			    .sha256 = "ab",
			    .answer_status = 202,
			};

			util_uuid(id);
			sl->r = &r;
			sl->t0 = now_us();
			if (store_submit_accept(r.s, &a, done, sl) != GW_OK) {
				free(sl);
				break;
			}
			r.outstanding++;
			accepted++;
		}
		if (poll(&p, 1, 100) > 0)
			store_dispatch(r.s);
	}
	atomic_store(&r.stop, true);
	if (rate > 0)
		pthread_join(th, NULL);
	while (r.outstanding > 0)
		if (poll(&p, 1, 100) > 0)
			store_dispatch(r.s);
	store_flush(r.s);
	t_end = now_us();
	qsort(r.lat, r.nlat, sizeof(*r.lat), cmp);
	printf("audit_rate %ld accepts_per_s %.0f p50_ms %.2f p99_ms %.2f "
	       "audits_per_s %.0f refused %ld\n",
	       rate, (double)r.nlat / ((double)seconds),
	       r.nlat ? (double)r.lat[r.nlat / 2] / 1000.0 : 0,
	       r.nlat ? (double)r.lat[r.nlat * 99 / 100] / 1000.0 : 0,
	       (double)r.audits / ((double)(t_end - t_start) / 1e6), r.refused);
	(void)accepted;
	free(r.lat);
	store_free(r.s);
	return 0;
}

int
main(int argc, char **argv)
{
	long long seconds = 3, rate = 10000;

	if (argc < 2 ||
	    (argc > 2 && util_parse_ll(argv[2], 1, 3600, &seconds) != GW_OK) ||
	    (argc > 3 && util_parse_ll(argv[3], 0, 10000000, &rate) != GW_OK))
		return 2;
	if (run_one(argv[1], seconds, 0, 0) != 0 ||
	    run_one(argv[1], seconds, (long)rate, 1) != 0 ||
	    run_one(argv[1], seconds, 0, 2) != 0 ||
	    run_one(argv[1], seconds, (long)rate, 3) != 0)
		return 1;
	return 0;
}
