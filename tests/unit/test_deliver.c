/* Unit tests for deliver: a real store, real libcurl and TLS against an
 * in-process receiving gateway (the project's own HTTP server with the dev
 * PKI's gateway2 certificate) on one libevent loop. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "config.h"
#include "deliver.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "tls.h"
#include "util.h"

#define SENDER_URA   "90000001"
#define RECEIVER_URA "90000009"
#define MAX_SEEN     64

static char dir[64];
/* Where the receiver listens and the host name the sender's route uses. */
static const char *rcv_address = "127.0.0.1";
static const char *route_host = "localhost";

/* The receiving gateway: answers by script and records what arrives. */
struct receiver {
	struct http_server *srv;
	SSL_CTX *ctx;
	struct config *cfg;
	unsigned port;
	int status;	  /* answer for every request ... */
	int first_status; /* ... except the first ones, while count > 0 */
	int first_count;  /* how many get first_status */
	const char *retry_after; /* Retry-After header or NULL */
	bool hang;		 /* defer the request and never answer */
	struct http_req *held[MAX_SEEN];
	size_t nheld;
	size_t nseen;
	char ids[MAX_SEEN][STORE_ID_MAX + 1];
	char peer[CONFIG_URA_LEN + 1];
	char *bodies[MAX_SEEN];
	bool down;
};

struct fixture {
	struct event_base *base;
	struct receiver rcv;
	struct config *cfg; /* the sender's */
	struct store *store;
	struct deliver *d;
	int seq;
};

static void
recv_handler(struct http_req *req, void *arg)
{
	struct receiver *r = arg;
	const char *rid = http_req_header(req, "X-Request-Id");
	const struct tls_peer *peer = http_req_peer(req);
	size_t len = 0;
	const char *body = http_req_body(req, &len);
	int status = r->status;

	if (r->nseen < MAX_SEEN) {
		util_strlcpy(r->ids[r->nseen], rid ? rid : "",
			     sizeof(r->ids[0]));
		r->bodies[r->nseen] = strndup(body, len);
		r->nseen++;
	}
	if (peer != NULL)
		util_strlcpy(r->peer, peer->ura, sizeof(r->peer));
	if (r->hang) {
		http_req_defer(req);
		if (r->nheld < MAX_SEEN)
			r->held[r->nheld++] = req;
		return;
	}
	if (r->first_count > 0) {
		r->first_count--;
		status = r->first_status;
	}
	if (r->retry_after != NULL)
		http_req_add_header(req, "Retry-After", r->retry_after);
	if (status >= 400)
		http_reply_outcome(req, status, "error", "invalid", "Bundle",
				   "refused by the test receiver");
	else
		http_reply(req, status, "application/fhir+json", "{}", 2);
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
cfg_error(void *arg, const char *file, int line, const char *msg)
{
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

static struct config *
load_config(const char *name, const char *text)
{
	char path[128];
	struct config *cfg = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_text(path, text);
	if (config_load(path, cfg_error, NULL, &cfg) != GW_OK)
		fail_msg("config %s does not load:\n%s", name, text);
	return cfg;
}

/* A port nobody listens on right now. */
static unsigned
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
receiver_listen(struct fixture *fx, unsigned port)
{
	static const char fmt[] =
	    "[organisation]\nura = " RECEIVER_URA "\nname = B\n"
	    "[listen]\naddress = %s\nport = %u\n"
	    "certificate = %s/gateway2.crt\nkey = %s/gateway2.key\n"
	    "trust = %s/uzi-server-ca.pem\nenvironment = test\n"
	    "[admin]\nport = 0\n"
	    "[store]\npath = %s/b.db\n"
	    "[peer " SENDER_URA "]\nallow = push\n";
	struct receiver *r = &fx->rcv;
	char text[2048], err[256];
	struct http_route routes[] = {
	    {"POST", "/fhir/$process-message", HTTP_ROUTE_HAS_BODY,
	     CONFIG_ALLOW_PUSH, recv_handler, r, NULL},
	    {NULL, NULL, 0, 0, NULL, NULL, NULL},
	};
	struct http_route none[] = {{NULL, NULL, 0, 0, NULL, NULL, NULL}};

	snprintf(text, sizeof(text), fmt, rcv_address, port, dir, dir, dir,
		 dir);
	r->cfg = load_config("b.conf", text);
	assert_int_equal(tls_server_ctx_new(r->cfg, &r->ctx, err, sizeof(err)),
			 GW_OK);
	assert_int_equal(http_server_new(fx->base, r->cfg, &r->srv), GW_OK);
	if (http_server_listen(r->srv, r->ctx, routes, none, err,
			       sizeof(err)) != GW_OK)
		fail_msg("listen: %s", err);
	r->port = http_server_port(r->srv, false);
	r->status = 200;
	r->down = false;
}

static void
receiver_start(struct fixture *fx)
{
	receiver_listen(fx, free_port());
}

static void
on_shutdown(void *arg)
{
	*(bool *)arg = true;
}

static void
receiver_stop(struct fixture *fx)
{
	struct receiver *r = &fx->rcv;
	bool done = false;

	/* Answer what was held (dropped when the client has gone). */
	while (r->nheld > 0)
		http_reply(r->held[--r->nheld], 200, "application/fhir+json",
			   "{}", 2);
	if (!r->down)
		http_server_shutdown(r->srv, 100, on_shutdown, &done);
	for (int i = 0; i < 200 && !done && !r->down; i++)
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	http_server_free(r->srv);
	SSL_CTX_free(r->ctx);
	config_free(r->cfg);
	for (size_t i = 0; i < r->nseen; i++)
		free(r->bodies[i]);
}

/* Stop listening (the port stays known, so receiver_listen can bring
 * the receiver back where the sender's route points). */
static void
receiver_down(struct fixture *fx)
{
	struct receiver *r = &fx->rcv;
	bool done = false;

	http_server_shutdown(r->srv, 0, on_shutdown, &done);
	for (int i = 0; i < 100 && !done; i++)
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_true(done);
	http_server_free(r->srv);
	SSL_CTX_free(r->ctx);
	config_free(r->cfg);
	r->srv = NULL;
	r->ctx = NULL;
	r->cfg = NULL;
	r->down = true;
}

/* The sender's configuration: extra text goes into its [peer] section. */
static void
sender_config(struct fixture *fx, const char *delivery, const char *peer)
{
	static const char fmt[] =
	    "[organisation]\nura = " SENDER_URA "\nname = A\n"
	    "[listen]\nport = 1\n"
	    "certificate = %s/gateway.crt\nkey = %s/gateway.key\n"
	    "trust = %s/uzi-server-ca.pem\nenvironment = test\n"
	    "[store]\npath = %s/a.db\n"
	    "[delivery]\nbackoff_min = 100ms\nbackoff_max = 400ms\n"
	    "timeout = 3s\n%s\n"
	    "[peer " RECEIVER_URA "]\n"
	    "endpoint = https://%s:%u/fhir\n%s\n";
	char text[4096];

	snprintf(text, sizeof(text), fmt, dir, dir, dir, dir,
		 delivery ? delivery : "", route_host, fx->rcv.port,
		 peer ? peer : "");
	config_free(fx->cfg);
	fx->cfg = load_config("a.conf", text);
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct store_options opts = {0};
	char path[128];

	if (fx == NULL)
		return -1;
	fx->base = event_base_new();
	snprintf(path, sizeof(path), "%s/a.db", dir);
	remove(path);
	opts.path = path;
	opts.create = true;
	opts.relaxed_state = true;
	if (fx->base == NULL || store_open(&opts, &fx->store) != GW_OK)
		return -1;
	receiver_start(fx);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	deliver_stop(fx->d);
	deliver_free(fx->d);
	receiver_stop(fx);
	store_free(fx->store);
	config_free(fx->cfg);
	event_base_free(fx->base);
	metrics_reset();
	free(fx);
	return 0;
}

/* Queue one outbound message to the receiver; returns its id (static
 * storage per call slot). */
static const char *
queue_one(struct fixture *fx, const char *patient)
{
	static char ids[MAX_SEEN][40];
	static const char sha[] =
	    "0000000000000000000000000000000000000000000000000000000000000000";
	const char *receivers[] = {RECEIVER_URA};
	char value[64], doc[128];
	struct store_result res = {0};
	int n = fx->seq++ % MAX_SEEN;
	struct store_accept req = {
	    .id = ids[n],
	    .direction = STORE_OUTBOUND,
	    .sender_ura = "90000002",
	    .bundle_system = "urn:ietf:rfc:3986",
	    .bundle_value = value,
	    .patient_key = patient,
	    .fhir_version = "4.0.1",
	    .doc = doc,
	    .sha256 = sha,
	    .answer_status = 202,
	    .receivers = receivers,
	    .nreceivers = 1,
	};

	snprintf(ids[n], sizeof(ids[n]), "msg-%03d", fx->seq);
	snprintf(value, sizeof(value), "urn:uuid:test-%d", fx->seq);
	snprintf(doc, sizeof(doc),
		 "{\"resourceType\":\"Bundle\",\"type\":\"message\",\"n\":%d}",
		 fx->seq);
	req.doc_len = strlen(doc);
	assert_int_equal(store_accept(fx->store, &req, &res), GW_OK);
	store_result_cleanup(&res);
	return ids[n];
}

static void
start(struct fixture *fx)
{
	char err[256];

	if (deliver_new(fx->base, fx->store, fx->cfg, &fx->d, err,
			sizeof(err)) != GW_OK)
		fail_msg("deliver_new: %s", err);
	deliver_kick(fx->d);
}

/* The outbox row of id (caller frees with store_rows_free(row, 1)). */
static struct store_row *
row_of(struct fixture *fx, const char *id)
{
	struct store_message *m = NULL;
	struct store_row *r;

	assert_int_equal(store_show(fx->store, id, false, &m), GW_OK);
	assert_int_equal(m->nrows, 1);
	r = calloc(1, sizeof(*r));
	assert_non_null(r);
	*r = m->rows[0];
	/* take the heap strings over */
	m->rows[0].last_error = NULL;
	m->rows[0].outcome = NULL;
	store_message_free(m);
	return r;
}

static bool
in_state(struct fixture *fx, const char *id, enum store_state st,
	 unsigned min_attempts)
{
	struct store_row *r = row_of(fx, id);
	bool ok = r->state == st && r->attempts >= min_attempts;

	store_rows_free(r, 1);
	return ok;
}

/* Run the loop until pred holds or timeout_ms passes. */
static bool
run_until(struct fixture *fx, bool (*pred)(struct fixture *, void *), void *arg,
	  uint64_t timeout_ms)
{
	uint64_t end = util_mono_ms() + timeout_ms;
	struct timeval tick = {0, 20000};

	while (!pred(fx, arg)) {
		if (util_mono_ms() > end)
			return false;
		event_base_loopexit(fx->base, &tick);
		event_base_dispatch(fx->base);
	}
	return true;
}

/* Run the loop for ms whatever happens. */
static void
run_for(struct fixture *fx, uint64_t ms)
{
	uint64_t end = util_mono_ms() + ms;
	struct timeval tick = {0, 20000};

	while (util_mono_ms() < end) {
		event_base_loopexit(fx->base, &tick);
		event_base_dispatch(fx->base);
	}
}

struct want {
	const char *id;
	enum store_state state;
	unsigned attempts;
};

static bool
pred_state(struct fixture *fx, void *arg)
{
	const struct want *w = arg;

	return in_state(fx, w->id, w->state, w->attempts);
}

static bool
pred_seen(struct fixture *fx, void *arg)
{
	return fx->rcv.nseen >= *(size_t *)arg;
}

static void
expect_state(struct fixture *fx, const char *id, enum store_state st,
	     unsigned attempts, uint64_t timeout_ms)
{
	struct want w = {id, st, attempts};

	if (!run_until(fx, pred_state, &w, timeout_ms)) {
		struct store_row *r = row_of(fx, id);

		fail_msg("%s: got state %s attempts %u error %s, want %s "
			 "after >= %u attempts",
			 id, store_state_name(r->state), r->attempts,
			 r->last_error ? r->last_error : "-",
			 store_state_name(st), attempts);
	}
}

static double
metric(const char *series)
{
	struct buf out;
	const char *p;
	double v = -1;

	buf_init(&out, 1 << 20);
	assert_int_equal(metrics_render(&out), GW_OK);
	if ((p = strstr(out.data, series)) != NULL)
		v = strtod(p + strlen(series), NULL);
	buf_cleanup(&out);
	return v;
}

/* Delivered in acceptance order, exactly the stored bytes, with the
 * message id as X-Request-Id, over mTLS as the sender's URA. */
static void
test_delivers_in_order(void **state)
{
	struct fixture *fx = *state;
	const char *ids[5];
	size_t want = 5;

	sender_config(fx, NULL, "concurrency = 1");
	for (int i = 0; i < 5; i++)
		ids[i] = queue_one(fx, "patient-a");
	start(fx);
	assert_true(run_until(fx, pred_seen, &want, 10000));
	for (int i = 0; i < 5; i++) {
		struct store_message *m = NULL;

		expect_state(fx, ids[i], STORE_DELIVERED, 1, 5000);
		assert_string_equal(fx->rcv.ids[i], ids[i]);
		assert_int_equal(store_get_document(fx->store, ids[i], &m),
				 GW_OK);
		assert_int_equal(strlen(fx->rcv.bodies[i]), m->doc_len);
		assert_memory_equal(fx->rcv.bodies[i], m->doc, m->doc_len);
		store_message_free(m);
	}
	assert_int_equal(fx->rcv.nseen, 5);
	assert_string_equal(fx->rcv.peer, SENDER_URA);
	assert_true(metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
			   "\",outcome=\"delivered\"} ") == 5.0);
}

/* 500 is temporary: attempts go up with backoff, then past the maximum
 * age the row is dead with its last error. */
static void
test_500_retries_then_dead(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	struct store_row *r;

	fx->rcv.status = 500;
	sender_config(fx, "max_age = 1500ms", NULL);
	id = queue_one(fx, "patient-b");
	start(fx);
	expect_state(fx, id, STORE_DUE, 2, 5000);
	r = row_of(fx, id);
	assert_int_equal(r->last_status, 500);
	assert_string_equal(r->last_error, "HTTP 500");
	assert_true(r->next_attempt_at > r->last_attempt_at);
	store_rows_free(r, 1);
	expect_state(fx, id, STORE_DEAD, 3, 6000);
	r = row_of(fx, id);
	assert_non_null(strstr(r->last_error, "max age exceeded"));
	store_rows_free(r, 1);
	assert_true(metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
			   "\",outcome=\"dead\"} ") == 1.0);
	assert_true(metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
			   "\",outcome=\"retry\"} ") >= 2.0);
}

/* 400 is permanent: dead after one attempt, the receiver's
 * OperationOutcome kept; 500 once then 200 delivers on the retry. */
static void
test_400_dead_at_once_and_retry_succeeds(void **state)
{
	struct fixture *fx = *state;
	const char *bad, *flaky;
	struct store_row *r;

	fx->rcv.first_status = 400;
	fx->rcv.first_count = 1;
	sender_config(fx, NULL, "concurrency = 1");
	bad = queue_one(fx, "patient-c");
	start(fx);
	expect_state(fx, bad, STORE_DEAD, 1, 5000);
	r = row_of(fx, bad);
	assert_int_equal(r->attempts, 1);
	assert_int_equal(r->last_status, 400);
	assert_non_null(r->outcome);
	assert_non_null(strstr(r->outcome, "OperationOutcome"));
	assert_non_null(strstr(r->outcome, "refused by the test receiver"));
	store_rows_free(r, 1);

	fx->rcv.first_status = 503;
	fx->rcv.first_count = 1;
	flaky = queue_one(fx, "patient-c");
	deliver_kick(fx->d);
	expect_state(fx, flaky, STORE_DELIVERED, 2, 5000);
}

/* A server whose certificate carries another URA than the route says is
 * refused before anything is sent: a temporary failure saying why. */
static void
test_wrong_server_ura_refused(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	struct store_row *r;

	sender_config(fx, NULL, "server_ura = 90000003");
	id = queue_one(fx, "patient-d");
	start(fx);
	expect_state(fx, id, STORE_DUE, 1, 5000);
	r = row_of(fx, id);
	assert_int_equal(r->last_status, 0);
	assert_non_null(r->last_error);
	assert_string_equal(r->last_error,
			    "server URA 90000009, expected 90000003");
	store_rows_free(r, 1);
	assert_int_equal(fx->rcv.nseen, 0);
}

/* Retry-After later than the backoff is honoured. */
static void
test_retry_after_honoured(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	struct store_row *r;

	fx->rcv.status = 429;
	fx->rcv.retry_after = "3";
	sender_config(fx, NULL, NULL);
	id = queue_one(fx, "patient-e");
	start(fx);
	expect_state(fx, id, STORE_DUE, 1, 5000);
	r = row_of(fx, id);
	assert_int_equal(r->last_status, 429);
	assert_true(r->next_attempt_at - r->last_attempt_at >= 2900);
	store_rows_free(r, 1);
	/* The whole receiver waits: another patient's message queued now
	 * is not sent before the Retry-After either. */
	queue_one(fx, "patient-e2");
	deliver_kick(fx->d);
	run_for(fx, 1500);
	assert_int_equal(fx->rcv.nseen, 1);
}

/* Nobody listening: connection errors are temporary. */
static void
test_connection_refused_is_temporary(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	struct store_row *r;
	bool done = false;

	sender_config(fx, NULL, NULL);
	http_server_shutdown(fx->rcv.srv, 0, on_shutdown, &done);
	for (int i = 0; i < 100 && !done; i++)
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_true(done);
	fx->rcv.down = true;
	id = queue_one(fx, "patient-f");
	start(fx);
	expect_state(fx, id, STORE_DUE, 2, 5000);
	r = row_of(fx, id);
	assert_int_equal(r->last_status, 0);
	assert_non_null(r->last_error);
	store_rows_free(r, 1);
}

/* Sum of the attempts of every outbox row. */
static unsigned
total_attempts(struct fixture *fx)
{
	struct store_filter f = {.state = -1};
	struct store_row *rows = NULL;
	unsigned sum = 0;
	size_t n = 0;

	assert_int_equal(store_list(fx->store, &f, &rows, &n), GW_OK);
	for (size_t i = 0; i < n; i++)
		sum += rows[i].attempts;
	store_rows_free(rows, n);
	return sum;
}

/* A receiver that cannot be reached is held and probed one row at a
 * time, not attempted once per queued lane head; when it listens again
 * everything is delivered, in order, without waiting out the rows' own
 * backoff. */
static void
test_unreachable_receiver_held(void **state)
{
	struct fixture *fx = *state;
	const char *ids[20];
	char patient[16];
	size_t want = 20;
	unsigned attempts;

	sender_config(fx, NULL, "concurrency = 4");
	receiver_down(fx);
	for (int i = 0; i < 20; i++) {
		snprintf(patient, sizeof(patient), "p%d", i % 10);
		ids[i] = queue_one(fx, patient);
	}
	start(fx);
	/* 1.5 s down with a 100 ms minimum backoff: per-row retries would
	 * attempt each of the 10 lane heads about four times. */
	run_for(fx, 1500);
	attempts = total_attempts(fx);
	assert_true(attempts >= 2);
	assert_true(attempts <= 12);
	assert_true(metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
			   "\",outcome=\"delivered\"} ") < 0);
	assert_true(metric("pzpgw_receiver_held{receiver=\"" RECEIVER_URA
			   "\"} ") == 1.0);
	receiver_listen(fx, fx->rcv.port);
	assert_true(run_until(fx, pred_seen, &want, 5000));
	for (int i = 0; i < 20; i++)
		expect_state(fx, ids[i], STORE_DELIVERED, 1, 1000);
	assert_true(metric("pzpgw_receiver_held{receiver=\"" RECEIVER_URA
			   "\"} ") == 0.0);
	/* Per patient, in acceptance order. */
	for (int p = 0; p < 10; p++) {
		int first = -1, second = -1;

		for (size_t k = 0; k < fx->rcv.nseen; k++) {
			if (strcmp(fx->rcv.ids[k], ids[p]) == 0)
				first = (int)k;
			if (strcmp(fx->rcv.ids[k], ids[p + 10]) == 0)
				second = (int)k;
		}
		assert_true(first >= 0 && second > first);
	}
}

static bool
pred_attempted(struct fixture *fx, void *arg)
{
	struct store_row *r = row_of(fx, arg);
	bool ok = r->attempts >= 1 && r->state == STORE_DUE;

	store_rows_free(r, 1);
	return ok;
}

/* The probe at the end of a hold does not wait for the row's own
 * backoff (which may be an hour): a receiver back up is seen within the
 * hold. */
static void
test_probe_ignores_row_backoff(void **state)
{
	struct fixture *fx = *state;
	char path[128], sql[160];
	sqlite3 *db = NULL;
	const char *id;

	sender_config(fx, NULL, NULL);
	receiver_down(fx);
	id = queue_one(fx, "patient-h");
	start(fx);
	assert_true(run_until(fx, pred_attempted, (void *)id, 3000));
	/* As if it had backed off for an hour. */
	snprintf(path, sizeof(path), "%s/a.db", dir);
	snprintf(sql, sizeof(sql), "UPDATE outbox SET next_attempt_at = %lld",
		 (long long)util_wall_ms() + 3600000LL);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	receiver_listen(fx, fx->rcv.port);
	expect_state(fx, id, STORE_DELIVERED, 2, 3000);
}

static bool
pred_all_delivered(struct fixture *fx, void *arg)
{
	(void)fx;
	(void)arg;
	return metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
		      "\",outcome=\"delivered\"} ") >= 10.0;
}

/* 503 (and 429) say the whole receiver is overloaded: it is held and
 * probed like an unreachable one, then everything flows. */
static void
test_busy_receiver_held(void **state)
{
	struct fixture *fx = *state;
	char patient[16];
	size_t want;

	fx->rcv.first_status = 503;
	fx->rcv.first_count = 1000;
	sender_config(fx, NULL, "concurrency = 4");
	for (int i = 0; i < 10; i++) {
		snprintf(patient, sizeof(patient), "p%d", i);
		queue_one(fx, patient);
	}
	start(fx);
	run_for(fx, 1000);
	/* The first claim (4 at once), then one probe per hold. */
	assert_true(fx->rcv.nseen >= 5);
	assert_true(fx->rcv.nseen <= 10);
	fx->rcv.first_count = 0;
	want = fx->rcv.nseen + 10;
	assert_true(run_until(fx, pred_seen, &want, 5000));
	/* The receiver has answered all ten; the sender counts each once
	 * it has read the answer, a moment later. */
	assert_true(run_until(fx, pred_all_delivered, NULL, 5000));
	assert_true(metric("pzpgw_deliveries_total{receiver=\"" RECEIVER_URA
			   "\",outcome=\"delivered\"} ") == 10.0);
}

/* Behind an unreachable receiver every row of a lane is dead at the
 * maximum age counted from acceptance, the followers too (probed or
 * expired without an attempt, see test_store's test_expire). */
static void
test_max_age_without_attempt(void **state)
{
	struct fixture *fx = *state;
	const char *ids[3];
	struct store_row *r;

	sender_config(fx, "max_age = 1s", NULL);
	receiver_down(fx);
	for (int i = 0; i < 3; i++)
		ids[i] = queue_one(fx, "patient-m");
	start(fx);
	for (int i = 0; i < 3; i++)
		expect_state(fx, ids[i], STORE_DEAD, 0, 8000);
	for (int i = 0; i < 3; i++) {
		r = row_of(fx, ids[i]);
		assert_non_null(r->last_error);
		assert_non_null(strstr(r->last_error, "max age exceeded"));
		store_rows_free(r, 1);
	}
}

/* The route's host must be named by the server certificate (localhost
 * and 127.0.0.1 in the dev PKI): 127.0.0.2 is refused, the IP works. */
static void
test_host_name_checked(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	struct store_row *r;

	receiver_stop(fx);
	memset(&fx->rcv, 0, sizeof(fx->rcv));
	rcv_address = "127.0.0.2";
	receiver_start(fx);
	rcv_address = "127.0.0.1";
	route_host = "127.0.0.2";
	sender_config(fx, NULL, NULL);
	route_host = "localhost";
	id = queue_one(fx, "patient-h");
	start(fx);
	expect_state(fx, id, STORE_DUE, 1, 5000);
	r = row_of(fx, id);
	assert_non_null(r->last_error);
	if (strstr(r->last_error, "127.0.0.2") == NULL)
		fail_msg("got error %s, want a host name mismatch",
			 r->last_error);
	store_rows_free(r, 1);
	assert_int_equal(fx->rcv.nseen, 0);
}

static void
test_ip_route_accepted(void **state)
{
	struct fixture *fx = *state;
	const char *id;

	route_host = "127.0.0.1";
	sender_config(fx, NULL, NULL);
	route_host = "localhost";
	id = queue_one(fx, "patient-i");
	start(fx);
	expect_state(fx, id, STORE_DELIVERED, 1, 5000);
	assert_int_equal(fx->rcv.nseen, 1);
}

/* Stopping with a transfer in flight leaves its row due, not lost. */
static void
test_stop_returns_inflight_to_due(void **state)
{
	struct fixture *fx = *state;
	const char *id;
	size_t want = 1;

	fx->rcv.hang = true;
	sender_config(fx, NULL, NULL);
	id = queue_one(fx, "patient-g");
	start(fx);
	assert_true(run_until(fx, pred_seen, &want, 5000));
	assert_true(in_state(fx, id, STORE_INFLIGHT, 1));
	deliver_stop(fx->d);
	assert_true(in_state(fx, id, STORE_DUE, 1));
}

/* Per-receiver concurrency: with limit 3 and a receiver that holds every
 * request, exactly 3 are in flight. */
static void
test_concurrency_limit(void **state)
{
	struct fixture *fx = *state;
	char patient[16];
	size_t want = 3;
	struct store_filter f = {.state = STORE_INFLIGHT};
	struct store_row *rows = NULL;
	size_t n = 0;

	fx->rcv.hang = true;
	sender_config(fx, NULL, "concurrency = 3");
	for (int i = 0; i < 6; i++) {
		snprintf(patient, sizeof(patient), "p%d", i);
		queue_one(fx, patient);
	}
	start(fx);
	assert_true(run_until(fx, pred_seen, &want, 5000));
	/* give it the chance to overrun */
	for (int i = 0; i < 10; i++)
		event_base_loop(fx->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(store_list(fx->store, &f, &rows, &n), GW_OK);
	store_rows_free(rows, n);
	assert_int_equal(n, 3);
	assert_int_equal(fx->rcv.nheld, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_delivers_in_order, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_500_retries_then_dead, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_400_dead_at_once_and_retry_succeeds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrong_server_ura_refused,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_connection_refused_is_temporary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_host_name_checked, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_ip_route_accepted, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_stop_returns_inflight_to_due,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrency_limit, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_unreachable_receiver_held,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_age_without_attempt, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_busy_receiver_held, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_probe_ignores_row_backoff,
					    setup, teardown),
	};
	const char *src = getenv("PZPGW_SRCDIR");
	char cmd[512];
	int rc;

	log_init(LOG_TO_STDERR, getenv("PZPGW_DEBUG") != NULL, "test_deliver");
	/* As the daemon does: a peer closing a connection is no signal. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/pzpgw-deliver-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(cmd, sizeof(cmd), "sh '%s/certs/dev-pki.sh' '%s' >/dev/null",
		 src != NULL ? src : ".", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "dev-pki.sh failed (set PZPGW_SRCDIR)\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
