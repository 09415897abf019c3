/*
 * Benchmark helper for bench/bench_deliver.sh: posts FHIR messages to a
 * gateway over keep-alive mutual TLS connections (libcurl multi) and
 * prints throughput and latency percentiles; also measures raw fsync.
 *
 * usage: loadgen post URL CERT KEY CACERT CONC COUNT RATE TEMPLATE...
 *   every TEMPLATE is a message Bundle whose text holds @@@@@@@@@@@@ (12
 *   characters) where a per-request hex counter goes (unique Bundle
 *   identifiers; every occurrence, so resource identifiers may carry it
 *   too), and may hold ######### (9) where the BSN of patient number
 *   "request number" (plus LOADGEN_PATIENT_BASE) goes (lg_bsn);
 *   templates are used in turn. RATE 0:
 *   as fast as CONC
 *   connections allow; otherwise requests start at RATE per second.
 *   The first request of each connection carries its TLS handshake: it
 *   counts for the rate but not for p50/p99 (keep-alive clients do not
 *   pay it per request); the slowest of them is printed as first_ms_max.
 *   LOADGEN_DUMP=FILE writes "start_s latency_ms first" per request.
 * usage: loadgen get BASE CERT KEY CACERT CONC SETS PATIENTS URLFILE [RATE]
 *   the pull API: each of CONC keep-alive connections runs sets, a set
 *   being every path of URLFILE (one per line, ######### standing for
 *   the BSN of a patient chosen in turn among PATIENTS) one after the
 *   other; prints sets and requests per second, the p50/p99 of a
 *   whole set (its first request, carrying the handshake, not counted)
 *   and its own CPU time per set. Without RATE (or 0) a connection
 *   starts its next set when one ends (closed loop: the rate is the
 *   saturation throughput). With RATE, after one uncounted warm-up set
 *   per connection, set k is due at k / RATE seconds and starts then on
 *   an idle connection (later when none is idle); its latency counts
 *   from when it was due, so queueing in the client is not hidden
 *   (coordinated omission); prints also set_max_ms and
 *   start_late_max_ms (the longest a due set waited for a connection).
 *   LOADGEN_ACCEPT=LINE replaces the Accept header line (e.g. "Accept:
 *   application/fhir+json; fhirVersion=3.0" for STU3 answers).
 *   LOADGEN_PROCS=P (1) runs the connections in P processes (at most
 *   CONC and SETS), each with its share of CONC, SETS, RATE and the
 *   patients: one process multiplexing every connection delays all
 *   their sets together whenever it waits for a CPU, which independent
 *   clients do not. The figures printed are those of all sets together.
 * usage: loadgen fsync DIR COUNT
 *   COUNT times write 4 KiB and fdatasync in DIR; prints fsyncs/s.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#define LG_MARK	    "@@@@@@@@@@@@"
#define LG_MARK_LEN 12
#define LG_MAX_TPL  256
#define LG_MAX_CONC 1024
#define LG_BSN	    "#########"
#define LG_BSN_LEN  9
#define LG_MAX_MARK 256
#define LG_MAX_URL  64

struct tpl {
	char *text;
	size_t len;
	size_t mark[LG_MAX_MARK]; /* offsets of LG_MARK */
	size_t nmark;
	size_t bsn[LG_MAX_MARK]; /* offsets of LG_BSN */
	size_t nbsn;
};

/* A BSN (nine digits passing the eleven test) for patient number i,
 * distinct per i. */
static void
lg_bsn(unsigned long long i, char out[LG_BSN_LEN + 1])
{
	for (unsigned long long d8 = 10000000ULL + (i * 2) % 89999998ULL;;
	     d8++) {
		unsigned sum = 0;
		char t[16];

		snprintf(t, sizeof(t), "%08llu", d8);
		for (int k = 0; k < 8; k++)
			sum += (unsigned)(9 - k) * (unsigned)(t[k] - '0');
		if (sum % 11 < 10) {
			snprintf(out, LG_BSN_LEN + 1, "%.8s%u", t, sum % 11);
			return;
		}
	}
}

struct slot {
	CURL *easy;
	char *body;
	double started;
	long status;
	bool used; /* its connection has carried a request */
	struct curl_slist *hdrs;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static int
read_tpl(const char *path, struct tpl *t)
{
	FILE *f = fopen(path, "rb");
	char *m;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		perror(path);
		return -1;
	}
	t->text = malloc((size_t)n + 1);
	if (t->text == NULL || fread(t->text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return -1;
	}
	fclose(f);
	t->text[n] = '\0';
	t->len = (size_t)n;
	t->nmark = t->nbsn = 0;
	for (m = t->text; (m = strstr(m, LG_MARK)) != NULL; m += LG_MARK_LEN)
		if (t->nmark < LG_MAX_MARK)
			t->mark[t->nmark++] = (size_t)(m - t->text);
	for (m = t->text; (m = strstr(m, LG_BSN)) != NULL; m += LG_BSN_LEN)
		if (t->nbsn < LG_MAX_MARK)
			t->bsn[t->nbsn++] = (size_t)(m - t->text);
	if (t->nmark == 0) {
		fprintf(stderr, "%s: no %s mark\n", path, LG_MARK);
		return -1;
	}
	return 0;
}

static void
start_one(CURLM *multi, struct slot *s, const struct tpl *t,
	  unsigned long long n, unsigned long long patient)
{
	char mark[LG_MARK_LEN + 1], bsn[LG_BSN_LEN + 1];

	memcpy(s->body, t->text, t->len);
	snprintf(mark, sizeof(mark), "%012llx", n & 0xffffffffffffULL);
	lg_bsn(patient, bsn);
	for (size_t i = 0; i < t->nmark; i++)
		memcpy(s->body + t->mark[i], mark, LG_MARK_LEN);
	for (size_t i = 0; i < t->nbsn; i++)
		memcpy(s->body + t->bsn[i], bsn, LG_BSN_LEN);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)t->len);
	s->started = now_s();
	curl_multi_add_handle(multi, s->easy);
}

static int
cmd_post(int argc, char **argv)
{
	const char *url = argv[2], *cert = argv[3], *key = argv[4],
		   *cacert = argv[5];
	int conc = (int)strtol(argv[6], NULL, 10);
	long count = strtol(argv[7], NULL, 10);
	double rate = strtod(argv[8], NULL);
	static struct tpl tpls[LG_MAX_TPL];
	int ntpl = argc - 9;
	struct slot *slots;
	double *lat, t0, next_start, elapsed, el, first_max = 0;
	long nlat = 0;
	FILE *dump = NULL;
	long started = 0, done = 0, ok = 0, errors = 0, inflight = 0;
	/* 12 hex digits: 20 bits of the clock, 28 of the counter, so runs
	   never repeat an identifier (a repeat would be a duplicate). */
	unsigned long long seed = ((unsigned long long)time(NULL) & 0xfffffULL)
				  << 28;
	size_t maxlen = 0;
	CURLM *multi;
	int *idle, nidle = 0;
	/* LOADGEN_PATIENT_BASE: the first patient number (a fill in parts). */
	const char *pb = getenv("LOADGEN_PATIENT_BASE");
	unsigned long long pbase = pb != NULL ? strtoull(pb, NULL, 10) : 0;

	if (conc < 1 || conc > LG_MAX_CONC || count < 1 || ntpl < 1 ||
	    ntpl > LG_MAX_TPL) {
		fprintf(stderr, "loadgen post: bad arguments\n");
		return 2;
	}
	for (int i = 0; i < ntpl; i++) {
		if (read_tpl(argv[9 + i], &tpls[i]) != 0)
			return 2;
		if (tpls[i].len > maxlen)
			maxlen = tpls[i].len;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	slots = calloc((size_t)conc, sizeof(*slots));
	idle = calloc((size_t)conc, sizeof(*idle));
	lat = calloc((size_t)count, sizeof(*lat));
	/* LOADGEN_DUMP=FILE: "start_s latency_ms" per request, to see when
	   slow requests happen. */
	if (getenv("LOADGEN_DUMP") != NULL)
		dump = fopen(getenv("LOADGEN_DUMP"), "w");
	if (multi == NULL || slots == NULL || idle == NULL || lat == NULL) {
		free(slots);
		free(idle);
		free(lat);
		return 2;
	}
	for (int i = 0; i < conc; i++) {
		struct slot *s = &slots[i];

		s->easy = curl_easy_init();
		s->body = malloc(maxlen + 1);
		s->hdrs = curl_slist_append(
		    NULL, "Content-Type: application/fhir+json");
		s->hdrs = curl_slist_append(s->hdrs, "Expect:");
		curl_easy_setopt(s->easy, CURLOPT_URL, url);
		curl_easy_setopt(s->easy, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(s->easy, CURLOPT_SSLKEY, key);
		curl_easy_setopt(s->easy, CURLOPT_CAINFO, cacert);
		curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
		idle[nidle++] = i;
	}
	t0 = now_s();
	next_start = t0;
	while (done < count) {
		int running, left;
		CURLMsg *m;

		/* Start what the connection count and the rate allow. */
		while (nidle > 0 && started < count &&
		       (rate <= 0 || now_s() >= next_start)) {
			struct slot *s = &slots[idle[--nidle]];

			start_one(multi, s, &tpls[started % ntpl],
				  seed + pbase + (unsigned long long)started,
				  pbase + (unsigned long long)started);
			started++;
			inflight++;
			next_start += rate > 0 ? 1.0 / rate : 0;
		}
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&s);
			s->status = 0;
			curl_easy_getinfo(m->easy_handle,
					  CURLINFO_RESPONSE_CODE, &s->status);
			if (m->data.result == CURLE_OK && s->status == 202)
				ok++;
			else if (errors++ < 5)
				fprintf(stderr, "loadgen: %s status %ld\n",
					curl_easy_strerror(m->data.result),
					s->status);
			curl_multi_remove_handle(multi, s->easy);
			el = now_s() - s->started;
			done++;
			if (dump != NULL)
				fprintf(dump, "%.4f %.2f %d\n", s->started - t0,
					el * 1000, !s->used);
			if (s->used)
				lat[nlat++] = el;
			else if (el > first_max)
				first_max = el;
			s->used = true;
			inflight--;
			idle[nidle++] = (int)(s - slots);
		}
		if (done < count) {
			/* Sleep until the next start is due or I/O. */
			int wait_ms = 50;

			if (rate > 0 && nidle > 0 && started < count) {
				double d = (next_start - now_s()) * 1000;

				wait_ms = d < 1 ? 1 : d > 50 ? 50 : (int)d;
			}
			curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
		}
	}
	elapsed = now_s() - t0;
	qsort(lat, (size_t)nlat, sizeof(*lat), cmp_double);
	if (nlat == 0)
		lat[0] = 0;
	printf("requests=%ld ok=%ld errors=%ld seconds=%.2f rate=%.0f "
	       "p50_ms=%.1f p99_ms=%.1f first_ms_max=%.1f\n",
	       done, ok, errors, elapsed, (double)ok / elapsed,
	       lat[nlat / 2] * 1000, lat[(nlat * 99) / 100] * 1000,
	       first_max * 1000);
	for (int i = 0; i < conc; i++) {
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].hdrs);
		free(slots[i].body);
	}
	curl_multi_cleanup(multi);
	free(slots);
	free(idle);
	free(lat);
	if (dump != NULL)
		fclose(dump);
	for (int i = 0; i < ntpl; i++)
		free(tpls[i].text);
	curl_global_cleanup();
	return errors == 0 ? 0 : 1;
}

/* One connection of cmd_get: the set it runs. */
struct gslot {
	CURL *easy;
	struct curl_slist *hdrs;
	unsigned long long patient;
	int next;	/* index of the next path of the set */
	double started; /* of the set: when it was due (paced) or begun */
	bool used;	/* its connection has carried a set */
	bool busy;	/* a set is running on it */
	bool warm;	/* the set running is the uncounted warm-up */
	bool failed;
};

static void
get_start(CURLM *multi, struct gslot *s, const char *base, char **paths)
{
	char url[4096], bsn[LG_BSN_LEN + 1], *m;

	lg_bsn(s->patient, bsn);
	snprintf(url, sizeof(url), "%s%s", base, paths[s->next]);
	while ((m = strstr(url, LG_BSN)) != NULL)
		memcpy(m, bsn, LG_BSN_LEN);
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_multi_add_handle(multi, s->easy);
}

/* What a process of LOADGEN_PROCS hands its parent: these, then nlat
 * latencies (seconds, doubles). */
struct get_result {
	long done, requests, errors, warm, nlat;
	double elapsed, late_max, cpu;
};

static bool
fd_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

static bool
fd_read_all(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);

		if (r <= 0)
			return false;
		c += r;
		n -= (size_t)r;
	}
	return true;
}

static void
get_result_write(int fd, const struct get_result *gr, const double *lat)
{
	if (!fd_write_all(fd, gr, sizeof(*gr)) ||
	    !fd_write_all(fd, lat, (size_t)gr->nlat * sizeof(*lat)))
		perror("loadgen: result");
}

/* Print a run's figures from gr and its nlat set latencies (lat holds
 * room for at least one; sorted here). rate: the offered sets/s, 0 in a
 * closed loop; procs > 1 is printed as processes=. */
static void
get_report(const struct get_result *gr, double *lat, double rate, int procs)
{
	long n = gr->nlat;

	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	if (n == 0)
		lat[0] = 0;
	printf("sets=%ld requests=%ld errors=%ld seconds=%.2f sets_per_s=%.0f "
	       "requests_per_s=%.0f set_p50_ms=%.2f set_p99_ms=%.2f "
	       "client_cpu_ms_per_set=%.3f",
	       gr->done, gr->requests, gr->errors, gr->elapsed,
	       (double)gr->done / gr->elapsed,
	       (double)gr->requests / gr->elapsed, lat[n / 2] * 1000,
	       lat[(n * 99) / 100] * 1000,
	       gr->cpu * 1000 / (double)(gr->done + gr->warm));
	if (procs > 1)
		printf(" processes=%d", procs);
	if (rate > 0)
		printf(" offered_per_s=%.0f set_max_ms=%.2f start_late_max_ms="
		       "%.2f",
		       rate, lat[n > 0 ? n - 1 : 0] * 1000,
		       gr->late_max * 1000);
	printf("\n");
}

static int cmd_get(int argc, char **argv);

/*
 * LOADGEN_PROCS=P: P processes of cmd_get, process k with CONC, SETS and
 * RATE divided among them (the first ones take the remainders) and its
 * patients starting at k * PATIENTS / P; their latencies merged and
 * printed as one run's.
 */
static int
get_procs(int argc, char **argv, int procs)
{
	int conc = (int)strtol(argv[6], NULL, 10);
	long sets = strtol(argv[7], NULL, 10);
	long npat = strtol(argv[8], NULL, 10);
	double rate = argc > 10 ? strtod(argv[10], NULL) : 0;
	struct get_result all = {0};
	double *lat = NULL;
	int fds[LG_MAX_CONC];
	pid_t pids[LG_MAX_CONC];
	int rc = 0;

	/* No process without a connection or a set. */
	if (procs > conc)
		procs = conc;
	if (sets >= 1 && procs > sets)
		procs = (int)sets;
	if (procs < 1 || sets < 1) {
		fprintf(stderr, "loadgen get: bad arguments\n");
		return 2;
	}
	fflush(stdout);
	for (int k = 0; k < procs; k++) {
		char cbuf[32], sbuf[32], rbuf[64], first[32], fdbuf[16];
		char *av[12];
		int p[2];

		if (pipe(p) != 0) {
			perror("loadgen: pipe");
			return 2;
		}
		if ((pids[k] = fork()) == -1) {
			perror("loadgen: fork");
			return 2;
		}
		if (pids[k] > 0) {
			close(p[1]);
			fds[k] = p[0];
			continue;
		}
		close(p[0]);
		snprintf(cbuf, sizeof(cbuf), "%d",
			 conc / procs + (k < conc % procs));
		snprintf(sbuf, sizeof(sbuf), "%ld",
			 sets / procs + (k < sets % procs));
		snprintf(rbuf, sizeof(rbuf), "%.6f", rate / procs);
		snprintf(first, sizeof(first), "%ld", npat * k / procs);
		snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
		setenv("LOADGEN_FIRST_PATIENT", first, 1);
		setenv("LOADGEN_RESULT_FD", fdbuf, 1);
		for (int i = 0; i < argc; i++)
			av[i] = argv[i];
		av[6] = cbuf;
		av[7] = sbuf;
		if (argc > 10)
			av[10] = rbuf;
		av[argc] = NULL;
		_exit(cmd_get(argc, av) == 2 ? 2 : 0);
	}
	for (int k = 0; k < procs; k++) {
		struct get_result gr;
		int st = 0;
		double *more;

		if (!fd_read_all(fds[k], &gr, sizeof(gr)) || gr.nlat < 0 ||
		    (more = realloc(lat, (size_t)(all.nlat + gr.nlat + 1) *
					     sizeof(*lat))) == NULL ||
		    !fd_read_all(fds[k], (lat = more) + all.nlat,
				 (size_t)gr.nlat * sizeof(*lat))) {
			fprintf(stderr, "loadgen: process %d gave no result\n",
				k);
			rc = 2;
		} else {
			all.done += gr.done;
			all.requests += gr.requests;
			all.errors += gr.errors;
			all.warm += gr.warm;
			all.nlat += gr.nlat;
			all.cpu += gr.cpu;
			if (gr.elapsed > all.elapsed)
				all.elapsed = gr.elapsed;
			if (gr.late_max > all.late_max)
				all.late_max = gr.late_max;
		}
		close(fds[k]);
		waitpid(pids[k], &st, 0);
	}
	if (rc != 0 || lat == NULL || all.elapsed <= 0) {
		free(lat);
		return 2;
	}
	get_report(&all, lat, rate, procs);
	free(lat);
	return all.errors == 0 ? 0 : 1;
}

static int
cmd_get(int argc, char **argv)
{
	const char *base = argv[2], *cert = argv[3], *key = argv[4],
		   *cacert = argv[5];
	int conc = (int)strtol(argv[6], NULL, 10);
	long sets = strtol(argv[7], NULL, 10);
	long npat = strtol(argv[8], NULL, 10);
	/* RATE: sets per second started on schedule (open loop); 0 or
	   absent: each connection starts its next set when one ends. */
	double rate = argc > 10 ? strtod(argv[10], NULL) : 0;
	char *paths[LG_MAX_URL], line[4096];
	int npaths = 0, nwarm = 0;
	struct gslot *slots;
	struct rusage ru;
	double *lat, t0, elapsed, cpu, late_max = 0;
	long started = 0, done = 0, nlat = 0, requests = 0, errors = 0;
	/* A process of LOADGEN_PROCS: its first patient, and where its
	   result goes (get_result_write) instead of stdout. */
	unsigned long long next_patient =
	    getenv("LOADGEN_FIRST_PATIENT") != NULL
		? strtoull(getenv("LOADGEN_FIRST_PATIENT"), NULL, 10)
		: 0;
	int result_fd = getenv("LOADGEN_RESULT_FD") != NULL
			    ? (int)strtol(getenv("LOADGEN_RESULT_FD"), NULL, 10)
			    : -1;
	FILE *f = fopen(argv[9], "r");
	CURLM *multi;

	if (f == NULL || conc < 1 || conc > LG_MAX_CONC || sets < 1 ||
	    npat < 1 || rate < 0) {
		fprintf(stderr, "loadgen get: bad arguments\n");
		if (f != NULL)
			fclose(f);
		return 2;
	}
	while (npaths < LG_MAX_URL && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((paths[npaths] = strdup(line)) != NULL)
			npaths++;
	}
	fclose(f);
	if (npaths == 0)
		return 2;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	slots = calloc((size_t)conc, sizeof(*slots));
	lat = calloc((size_t)sets, sizeof(*lat));
	if (multi == NULL || slots == NULL || lat == NULL) {
		free(slots);
		free(lat);
		for (int i = 0; i < npaths; i++)
			free(paths[i]);
		return 2;
	}
	for (int i = 0; i < conc; i++) {
		struct gslot *s = &slots[i];

		s->easy = curl_easy_init();
		/* LOADGEN_ACCEPT: the whole Accept header line, e.g. for
		 * STU3 answers (bench_pull_stu3.sh). */
		s->hdrs = curl_slist_append(
		    NULL, getenv("LOADGEN_ACCEPT") != NULL
			      ? getenv("LOADGEN_ACCEPT")
			      : "Accept: application/fhir+json");
		curl_easy_setopt(s->easy, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(s->easy, CURLOPT_SSLKEY, key);
		curl_easy_setopt(s->easy, CURLOPT_CAINFO, cacert);
		curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
		curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
		curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	}
	/* Paced: every connection first runs one set that is not counted
	   (its TLS handshake), all at once; the schedule starts when the
	   last ends, so handshakes do not put the first sets behind. */
	if (rate > 0)
		for (int i = 0; i < conc; i++) {
			struct gslot *s = &slots[i];

			s->patient = next_patient++ % (unsigned long long)npat;
			s->busy = s->warm = true;
			nwarm++;
			get_start(multi, s, base, paths);
		}
	t0 = now_s();
	while (done < sets) {
		int running, left, wait_ms = 50;
		bool added = false;
		CURLMsg *m;

		/* Start what is due on idle connections. Set k is due at
		   t0 + k / RATE (paced) or now; its latency counts from
		   when it was due, so a set that waited for a connection
		   shows the wait (no coordinated omission). */
		for (int i = 0; i < conc && nwarm == 0 && started < sets; i++) {
			struct gslot *s = &slots[i];
			double due =
			    rate > 0 ? t0 + (double)started / rate : now_s();

			if (s->busy)
				continue;
			if (rate > 0 && now_s() < due)
				break;
			if (rate > 0 && now_s() - due > late_max)
				late_max = now_s() - due;
			s->patient = next_patient++ % (unsigned long long)npat;
			s->started = due;
			s->busy = true;
			s->next = 0;
			started++;
			get_start(multi, s, base, paths);
		}
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct gslot *s;
			long status = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&s);
			curl_easy_getinfo(m->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			curl_multi_remove_handle(multi, s->easy);
			requests++;
			if (m->data.result != CURLE_OK || status != 200) {
				s->failed = true;
				if (errors++ < 5)
					fprintf(
					    stderr,
					    "loadgen: %s status %ld (%s)\n",
					    curl_easy_strerror(m->data.result),
					    status, paths[s->next]);
			}
			if (++s->next < npaths) {
				get_start(multi, s, base, paths);
				added = true;
				continue;
			}
			/* The set is done: the next starts at the top of the
			   loop, without polling first. */
			added = true;
			s->busy = false;
			s->next = 0;
			s->failed = false;
			if (s->warm) {
				s->warm = false;
				s->used = true;
				if (--nwarm == 0)
					t0 = now_s();
				continue;
			}
			done++;
			if (s->used)
				lat[nlat++] = now_s() - s->started;
			s->used = true;
		}
		if (done < sets && rate > 0 && nwarm == 0 && started < sets) {
			/* Wake when the next set is due if a connection is
			   idle to take it (else on I/O: one ends). */
			double d =
			    (t0 + (double)started / rate - now_s()) * 1000;
			bool idle = false;

			for (int i = 0; i < conc && !idle; i++)
				idle = !slots[i].busy;
			if (idle)
				wait_ms = d < 1 ? 1 : d > 50 ? 50 : (int)d;
		}
		/* A request just added is started by the next
		   curl_multi_perform, and a connection just freed takes its
		   next set at the top of the loop: polling first waited up
		   to wait_ms with nothing in flight (50 ms a set on one
		   connection). */
		if (done < sets && wait_ms > 0 && !added)
			curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
	}
	elapsed = now_s() - t0;
	/* The client's own CPU time per set: with the gateway on the same
	   cores, what it takes is not the gateway's. */
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	{
		struct get_result gr = {.done = done,
					.requests = requests,
					.errors = errors,
					.warm = rate > 0 ? conc : 0,
					.nlat = nlat,
					.elapsed = elapsed,
					.late_max = late_max,
					.cpu = cpu};

		if (result_fd >= 0)
			get_result_write(result_fd, &gr, lat);
		else
			get_report(&gr, lat, rate, 1);
	}
	for (int i = 0; i < conc; i++) {
		curl_easy_cleanup(slots[i].easy);
		curl_slist_free_all(slots[i].hdrs);
	}
	for (int i = 0; i < npaths; i++)
		free(paths[i]);
	curl_multi_cleanup(multi);
	free(slots);
	free(lat);
	curl_global_cleanup();
	return errors == 0 ? 0 : 1;
}

static int
cmd_fsync(const char *dir, long count)
{
	char path[4096], block[4096];
	double t0, el;
	int fd;

	snprintf(path, sizeof(path), "%s/loadgen-fsync.tmp", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1) {
		perror(path);
		return 2;
	}
	memset(block, 'x', sizeof(block));
	t0 = now_s();
	for (long i = 0; i < count; i++) {
		if (pwrite(fd, block, sizeof(block),
			   (off_t)(i % 16) * (off_t)sizeof(block)) !=
			(ssize_t)sizeof(block) ||
		    fdatasync(fd) != 0) {
			perror(path);
			close(fd);
			return 2;
		}
	}
	el = now_s() - t0;
	close(fd);
	unlink(path);
	printf("fsyncs=%ld seconds=%.2f rate=%.0f\n", count, el,
	       (double)count / el);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 10 && strcmp(argv[1], "post") == 0)
		return cmd_post(argc, argv);
	if ((argc == 10 || argc == 11) && strcmp(argv[1], "get") == 0) {
		int procs = getenv("LOADGEN_PROCS") != NULL
				? (int)strtol(getenv("LOADGEN_PROCS"), NULL, 10)
				: 1;

		if (procs > 1 && procs <= LG_MAX_CONC)
			return get_procs(argc, argv, procs);
		return cmd_get(argc, argv);
	}
	if (argc == 4 && strcmp(argv[1], "fsync") == 0)
		return cmd_fsync(argv[2], strtol(argv[3], NULL, 10));
	fprintf(stderr,
		"usage: loadgen post URL CERT KEY CACERT CONC COUNT "
		"RATE TEMPLATE...\n       loadgen get BASE CERT KEY CACERT "
		"CONC SETS PATIENTS URLFILE [RATE]\n       loadgen fsync DIR "
		"COUNT\n");
	return 2;
}
