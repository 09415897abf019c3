/*
 * deliver: sends claimed outbox rows to the receivers' gateways. One
 * libcurl multi handle per configuration generation, driven by the
 * daemon's libevent loop; mutual TLS with the server's URA checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "buf.h"
#include "deliver.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "tls.h"
#include "util.h"
#include "version.h"

#define DELIVER_BODY_MAX	(64 * 1024)   /* receiver's answer kept */
#define DELIVER_READ_MAX	(1024 * 1024) /* answer read at most */
#define DELIVER_METRICS_MS	5000	      /* queue gauges refresh */
#define DELIVER_IDLE_MS		1000	      /* longest sleep between checks */
#define DELIVER_POLL_MIN_MS	50
#define DELIVER_CONNECT_MS	10000 /* connect + handshake at most */
#define DELIVER_CONN_LIFE_S	300   /* no connection reused after this */
#define DELIVER_RETRY_AFTER_MAX (7LL * 24 * 3600)
#define DELIVER_ERR_MAX		256
#define DELIVER_HOLD_MAX_MS	60000 /* an unreachable receiver is probed */
#define DELIVER_HOLD_SYNC_MS	250   /* shared holds read at most this often */

#define M_HELD	   "pzpgw_receiver_held"
#define M_TOTAL	   "pzpgw_deliveries_total"
#define M_DURATION "pzpgw_delivery_duration_seconds"

/* A receiver with a route: where its messages go (a peer with an
 * endpoint) or its notices (a peer this gateway serves, with a notify
 * URL); config.c allows only one of the two. */
struct deliver_peer {
	char ura[CONFIG_URA_LEN + 1];
	char server_ura[CONFIG_URA_LEN + 1];
	char *url;    /* endpoint + "/$process-message", or NULL */
	char *notify; /* [peer] notify, or NULL */
	unsigned limit;
	unsigned active;
	/* Receiver unreachable (no connection, TLS session or answer) or
	 * busy (429, 503): no claims before hold_until, then one probe at
	 * a time, so a down receiver costs one attempt per hold instead of
	 * one per queued lane head. conn_fails counts the failed probes. */
	int64_t hold_until;
	unsigned conn_fails;
	/* Why it is held: "unreachable", "busy" or "misconfigured" (the
	 * receiving gateway refused the route: 401, 403, 404, 405, 421, no
	 * route 422); a new reason is logged. Static storage. */
	const char *hold_reason;
	/* Shared holds: another node probes it; ask again after this. */
	int64_t probe_after;
};

/* One multi handle with its timer; a new one per configuration so that
 * connections made under an old configuration are never reused. */
struct deliver_multi {
	struct deliver *d;
	struct deliver_multi *next;
	CURLM *m;
	struct event *timer;
	struct deliver_sock *socks;
	unsigned nxfers;
};

struct deliver_sock {
	struct deliver_multi *dm;
	struct deliver_sock *prev, *next;
	struct event *ev;
	curl_socket_t fd;
};

/* One attempt in flight. */
struct deliver_xfer {
	struct deliver *d;
	struct deliver_multi *dm;
	struct deliver_xfer *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	struct store_message *msg; /* the document being posted */
	char id[STORE_ID_MAX + 1];
	char receiver[STORE_URA_MAX + 1];
	char server_ura[CONFIG_URA_LEN + 1];
	int64_t seq;	     /* its outbox row's message */
	int64_t leased_till; /* its row's lease runs out (wall ms) */
	unsigned attempt;
	bool notice;	  /* a notice (STORE_NOTICE) to the notify URL */
	bool stu3;	  /* msg->doc was converted to STU3 (deliver_stu3) */
	int64_t age_from; /* the maximum age counts from here */
	uint64_t started;
	struct buf body;	/* first DELIVER_BODY_MAX bytes of the answer */
	size_t body_seen;	/* bytes of the answer seen */
	bool body_too_big;	/* aborted past DELIVER_READ_MAX */
	int64_t retry_after_ms; /* from Retry-After, -1 none */
	char tls_error[DELIVER_ERR_MAX];
	char curl_error[CURL_ERROR_SIZE];
};

struct deliver {
	struct event_base *base;
	struct store *store;
	const struct config *cfg;
	struct deliver_multi *multis; /* head: the current one */
	struct event *kick_ev, *due_ev, *metrics_ev;
	/* A store shared by nodes leases each claimed row for lease_ms;
	   renew_ev renews the leases of attempts still running a third of
	   the way in (0, NULL: SQLite, no leases). */
	int64_t lease_ms;
	struct event *renew_ev;
	bool renew_failed; /* the last renewal failed: logged once */
	struct deliver_peer *peers;
	size_t npeers;
	struct deliver_xfer *xfers;
	size_t nxfers;
	char (*noroute)[CONFIG_URA_LEN + 1]; /* receivers already logged */
	size_t nnoroute;
	struct store_backoff backoff;
	bool stopped;
	bool claim_failed; /* the last claim failed: logged once */
	/* The store is shared by nodes (PostgreSQL): the receivers' holds
	   live in it (store_hold_fail), read into the peers at most every
	   DELIVER_HOLD_SYNC_MS, so the nodes probe a receiver that is down
	   once per hold between them. SQLite (one node) keeps them here. */
	bool shared;
	int64_t holds_read_at;
	deliver_stu3_fn to_stu3; /* deliver_set_stu3 */
	void *to_stu3_arg;
};

static void deliver_multi_check(struct deliver_multi *dm);

/* ---- helpers ---- */

static uint32_t
deliver_rand(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)util_mono_ms();
	return r;
}

static struct deliver_peer *
deliver_peer_find(struct deliver *d, const char *ura)
{
	for (size_t i = 0; i < d->npeers; i++)
		if (strcmp(d->peers[i].ura, ura) == 0)
			return &d->peers[i];
	return NULL;
}

static void
deliver_peers_free(struct deliver_peer *peers, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(peers[i].url);
		free(peers[i].notify);
	}
	free(peers);
}

/* Length of the scheme://host:port part of url. */
static size_t
deliver_origin_len(const char *url)
{
	const char *p = strstr(url, "://");

	p = p != NULL ? strchr(p + 3, '/') : NULL;
	return p != NULL ? (size_t)(p - url) : strlen(url);
}

/*
 * Connections are pooled per host and port and the server's URA is
 * checked when one is made: two routes to one server that expect
 * different URAs would share connections. Say so (a configuration
 * mistake: one server has one certificate).
 */
/* The URL a peer's rows go to (the one it has). */
static const char *
deliver_peer_url(const struct deliver_peer *p)
{
	return p->url != NULL ? p->url : p->notify;
}

static void
deliver_check_shared(const struct deliver_peer *peers, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *ui = deliver_peer_url(&peers[i]);
		size_t li = deliver_origin_len(ui);

		for (size_t k = i + 1; k < n; k++)
			if (li == deliver_origin_len(
				      deliver_peer_url(&peers[k])) &&
			    strncmp(ui, deliver_peer_url(&peers[k]), li) == 0 &&
			    strcmp(peers[i].server_ura, peers[k].server_ura) !=
				0)
				log_warnx("event=delivery_route_conflict "
					  "peer=%s other=%s server_ura=%s "
					  "other_server_ura=%s reason=\"one "
					  "server, two expected URAs\"",
					  peers[i].ura, peers[k].ura,
					  peers[i].server_ura,
					  peers[k].server_ura);
	}
}

/*
 * What a rebuilt route keeps of the current one (old, may be NULL): its
 * transfers in flight, and its hold. A receiver held for a wrong route or
 * for no answer is probed at once: the reload may be the fix, and then
 * its messages go without waiting out their backoff. A busy one keeps its
 * Retry-After.
 */
static void
deliver_peer_carry(struct deliver_peer *p, const struct deliver_peer *old)
{
	if (old == NULL)
		return;
	p->active = old->active;
	p->conn_fails = old->conn_fails;
	p->hold_reason = old->hold_reason;
	p->hold_until = old->hold_until;
	if (old->hold_reason != NULL && strcmp(old->hold_reason, "busy") != 0)
		p->hold_until = 0;
}

/* The routes of cfg: every peer with an endpoint or a notify URL.
 * Active counts and holds are carried over from the current table
 * (deliver_peer_carry). */
static enum gw_err
deliver_peers_build(struct deliver *d, const struct config *cfg,
		    struct deliver_peer **out, size_t *nout)
{
	struct deliver_peer *peers;
	size_t n = 0, len;

	*out = NULL;
	*nout = 0;
	if ((peers = calloc(cfg->npeers + 1, sizeof(*peers))) == NULL)
		return GW_NOMEM;
	for (size_t i = 0; i < cfg->npeers; i++) {
		const struct config_peer *cp = &cfg->peers[i];
		struct deliver_peer *p = &peers[n];

		bool notify = cp->endpoint == NULL && cp->notify != NULL;

		if (!notify &&
		    (cp->endpoint == NULL || cp->endpoint[0] == '\0'))
			continue;
		util_strlcpy(p->ura, cp->ura, sizeof(p->ura));
		util_strlcpy(p->server_ura,
			     cp->server_ura[0] ? cp->server_ura : cp->ura,
			     sizeof(p->server_ura));
		p->limit = cp->concurrency ? cp->concurrency
					   : cfg->delivery_concurrency;
		if (p->limit == 0)
			p->limit = 1;
		if (notify) {
			if ((p->notify = strdup(cp->notify)) == NULL) {
				deliver_peers_free(peers, n);
				return GW_NOMEM;
			}
			deliver_peer_carry(p, deliver_peer_find(d, p->ura));
			n++;
			continue;
		}
		len = strlen(cp->endpoint);
		while (len > 0 && cp->endpoint[len - 1] == '/')
			len--;
		if ((p->url = malloc(len + sizeof("/$process-message"))) ==
		    NULL) {
			deliver_peers_free(peers, n);
			return GW_NOMEM;
		}
		memcpy(p->url, cp->endpoint, len);
		memcpy(p->url + len, "/$process-message",
		       sizeof("/$process-message"));
		deliver_peer_carry(p, deliver_peer_find(d, p->ura));
		n++;
	}
	deliver_check_shared(peers, n);
	*out = peers;
	*nout = n;
	return GW_OK;
}

static void
deliver_backoff_from(struct deliver *d, const struct config *cfg)
{
	d->backoff.min_ms = (int64_t)cfg->backoff_min_ms;
	d->backoff.max_ms = (int64_t)cfg->backoff_max_ms;
	d->backoff.max_age_ms = (int64_t)cfg->max_age_ms;
}

/* ---- libcurl <-> libevent ---- */

static void
deliver_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_sock *s = arg;
	struct deliver_multi *dm = s->dm;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	/* s may be freed inside (CURL_POLL_REMOVE). */
	curl_multi_socket_action(dm->m, fd, flags, &running);
	deliver_multi_check(dm);
}

static void
deliver_sock_free(struct deliver_multi *dm, struct deliver_sock *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		dm->socks = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->ev != NULL)
		event_free(s->ev);
	free(s);
}

static int
deliver_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
		void *socketp)
{
	struct deliver_multi *dm = userp;
	struct deliver_sock *s = socketp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			curl_multi_assign(dm->m, fd, NULL);
			deliver_sock_free(dm, s);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		s->dm = dm;
		s->fd = fd;
		s->ev = event_new(dm->d->base, fd, kind, deliver_sock_event, s);
		if (s->ev == NULL) {
			free(s);
			return -1;
		}
		s->next = dm->socks;
		if (dm->socks != NULL)
			dm->socks->prev = s;
		dm->socks = s;
		curl_multi_assign(dm->m, fd, s);
	} else {
		event_del(s->ev);
		event_assign(s->ev, dm->d->base, fd, kind, deliver_sock_event,
			     s);
	}
	if (event_add(s->ev, NULL) != 0)
		return -1;
	return 0;
}

static void
deliver_timer_event(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_multi *dm = arg;
	int running;

	curl_multi_socket_action(dm->m, CURL_SOCKET_TIMEOUT, 0, &running);
	deliver_multi_check(dm);
}

static int
deliver_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct deliver_multi *dm = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(dm->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(dm->timer, &tv) == 0 ? 0 : -1;
}

static struct deliver_multi *
deliver_multi_new(struct deliver *d, size_t maxconn)
{
	struct deliver_multi *dm = calloc(1, sizeof(*dm));

	if (dm == NULL)
		return NULL;
	dm->d = d;
	if ((dm->m = curl_multi_init()) == NULL ||
	    (dm->timer = evtimer_new(d->base, deliver_timer_event, dm)) ==
		NULL) {
		if (dm->m != NULL)
			curl_multi_cleanup(dm->m);
		free(dm);
		return NULL;
	}
	curl_multi_setopt(dm->m, CURLMOPT_SOCKETFUNCTION, deliver_sock_cb);
	curl_multi_setopt(dm->m, CURLMOPT_SOCKETDATA, dm);
	curl_multi_setopt(dm->m, CURLMOPT_TIMERFUNCTION, deliver_timer_cb);
	curl_multi_setopt(dm->m, CURLMOPT_TIMERDATA, dm);
	/* Keep an idle connection to every peer for reuse. */
	curl_multi_setopt(dm->m, CURLMOPT_MAXCONNECTS, (long)maxconn);
	return dm;
}

static void
deliver_multi_free(struct deliver_multi *dm)
{
	struct deliver_sock *s;

	if (dm == NULL)
		return;
	curl_multi_cleanup(dm->m); /* may still report sockets removed */
	s = dm->socks;
	dm->socks = NULL;
	while (s != NULL) {
		struct deliver_sock *next = s->next;

		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
		s = next;
	}
	event_free(dm->timer);
	free(dm);
}

/* Connections a multi handle keeps: a few per routed peer. */
static size_t
deliver_maxconn(const struct deliver *d)
{
	size_t n = 8;

	for (size_t i = 0; i < d->npeers; i++)
		n += d->peers[i].limit;
	return n;
}

/* Free multi handles of older configurations once they are idle. */
static void
deliver_multi_reap(struct deliver *d)
{
	struct deliver_multi **pp = &d->multis;

	if (*pp == NULL)
		return;
	pp = &(*pp)->next; /* never the current one */
	while (*pp != NULL) {
		struct deliver_multi *dm = *pp;

		if (dm->nxfers == 0) {
			*pp = dm->next;
			deliver_multi_free(dm);
		} else {
			pp = &dm->next;
		}
	}
}

/* ---- one transfer ---- */

static size_t
deliver_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct deliver_xfer *x = arg;
	size_t len = size * nmemb, room;

	if (x->body_seen + len > DELIVER_READ_MAX) {
		x->body_too_big = true;
		return 0; /* abort the transfer */
	}
	x->body_seen += len;
	room = x->body.max - x->body.len;
	if (room > 0)
		(void)buf_add(&x->body, ptr, len < room ? len : room);
	return len;
}

static size_t
deliver_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct deliver_xfer *x = arg;
	size_t len = size * nmemb, i, j;
	char val[64];
	long long secs;
	time_t t;

	if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		x->retry_after_ms = -1; /* a new response begins */
		return len;
	}
	if (len <= 12 || strncasecmp(ptr, "Retry-After:", 12) != 0)
		return len;
	for (i = 12; i < len && (ptr[i] == ' ' || ptr[i] == '\t'); i++)
		;
	for (j = len; j > i && (ptr[j - 1] == '\r' || ptr[j - 1] == '\n' ||
				ptr[j - 1] == ' ' || ptr[j - 1] == '\t');
	     j--)
		;
	if (j - i == 0 || j - i >= sizeof(val))
		return len;
	memcpy(val, ptr + i, j - i);
	val[j - i] = '\0';
	if (util_parse_ll(val, 0, DELIVER_RETRY_AFTER_MAX, &secs) == GW_OK) {
		x->retry_after_ms = secs * 1000;
	} else if ((t = curl_getdate(val, NULL)) > 0) {
		int64_t ms = (int64_t)t * 1000 - util_wall_ms();

		if (ms > DELIVER_RETRY_AFTER_MAX * 1000)
			ms = DELIVER_RETRY_AFTER_MAX * 1000;
		x->retry_after_ms = ms > 0 ? ms : 0;
	}
	return len;
}

/*
 * Chain verification for one new connection, then the server's URA must
 * be the one configured for the peer. arg is the transfer that opened the
 * connection; the handshake happens while it is alive.
 */
static int
deliver_verify_cb(X509_STORE_CTX *xs, void *arg)
{
	struct deliver_xfer *x = arg;
	char ura[CONFIG_URA_LEN + 1];
	X509 *leaf;

	ura[0] = '\0';
	if (X509_verify_cert(xs) != 1)
		return 0;
	leaf = X509_STORE_CTX_get0_cert(xs);
	if (leaf == NULL || tls_cert_ura(leaf, ura) != GW_OK) {
		snprintf(x->tls_error, sizeof(x->tls_error),
			 "server certificate carries no URA, expected %s",
			 x->server_ura);
	} else if (strcmp(ura, x->server_ura) != 0) {
		snprintf(x->tls_error, sizeof(x->tls_error),
			 "server URA %s, expected %s", ura, x->server_ura);
	} else {
		return 1;
	}
	log_info("event=tls_refused side=client reason=server_ura "
		 "receiver=%s expected=%s got=%s",
		 x->receiver, x->server_ura, ura[0] ? ura : "-");
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

/* libcurl made a fresh SSL_CTX for a new connection: our identity, trust
 * and checks replace its defaults. */
static CURLcode
deliver_ssl_ctx_cb(CURL *easy, void *sslctx, void *arg)
{
	struct deliver_xfer *x = arg;
	SSL_CTX *ctx = sslctx;
	char err[200];

	if (tls_client_ctx_setup(x->d->cfg, ctx, err, sizeof(err)) != GW_OK) {
		snprintf(x->tls_error, sizeof(x->tls_error),
			 "client TLS setup: %s", err);
		return CURLE_SSL_CERTPROBLEM;
	}
	/* A resumed session would skip the checks: none are kept. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_cert_verify_callback(ctx, deliver_verify_cb, x);
	return CURLE_OK;
}

static void
deliver_xfer_free(struct deliver_xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	store_message_free(x->msg);
	buf_cleanup(&x->body);
	free(x);
}

static void
deliver_unlink(struct deliver *d, struct deliver_xfer *x)
{
	struct deliver_peer *p = deliver_peer_find(d, x->receiver);

	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		d->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	d->nxfers--;
	x->dm->nxfers--;
	if (p != NULL && p->active > 0)
		p->active--;
}

static enum gw_err
deliver_easy_setup(struct deliver *d, const char *url, struct deliver_xfer *x)
{
	const struct config *cfg = d->cfg;
	char hdr[STORE_ID_MAX + 32];
	struct curl_slist *h = NULL;
	long timeout = (long)cfg->delivery_timeout_ms;
	CURLcode rc = CURLE_OK;

	const char *const fixed[] = {
	    x->stu3 ? "Content-Type: application/fhir+json; fhirVersion=3.0"
		    : "Content-Type: application/fhir+json",
	    "Accept: application/fhir+json",
	    "Expect:", /* no 100-continue round trip */
	};

	snprintf(hdr, sizeof(hdr), "X-Request-Id: %s", x->id);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(fixed) + 1; i++) {
		h = curl_slist_append(
		    x->headers, i < UTIL_ARRAY_LEN(fixed) ? fixed[i] : hdr);
		if (h == NULL)
			return GW_NOMEM;
		x->headers = h;
	}
	if ((x->easy = curl_easy_init()) == NULL)
		return GW_NOMEM;
#define SET(opt, val)                                                          \
	do {                                                                   \
		if (rc == CURLE_OK)                                            \
			rc = curl_easy_setopt(x->easy, opt, val);              \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_PROTOCOLS_STR, "https");
	SET(CURLOPT_POST, 1L);
	SET(CURLOPT_POSTFIELDS, (const char *)x->msg->doc);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->msg->doc_len);
	SET(CURLOPT_HTTPHEADER, x->headers);
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	SET(CURLOPT_USERAGENT, "pzpgw/" PZPGW_VERSION);
	SET(CURLOPT_WRITEFUNCTION, deliver_write_cb);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, deliver_header_cb);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_PRIVATE, x);
	SET(CURLOPT_ERRORBUFFER, x->curl_error);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, timeout);
	SET(CURLOPT_CONNECTTIMEOUT_MS,
	    timeout < DELIVER_CONNECT_MS ? timeout : DELIVER_CONNECT_MS);
	SET(CURLOPT_MAXLIFETIME_CONN, (long)DELIVER_CONN_LIFE_S);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, cfg->tls_trust);
	SET(CURLOPT_CAPATH, (char *)NULL);
	SET(CURLOPT_CA_CACHE_TIMEOUT, 0L);
	SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
	SET(CURLOPT_SSL_CTX_FUNCTION, deliver_ssl_ctx_cb);
	SET(CURLOPT_SSL_CTX_DATA, x);
#undef SET
	return rc == CURLE_OK ? GW_OK : GW_PERM;
}

/*
 * A claimed row whose kind its receiver's route does not take any more
 * (the [peer] changed). A notice for an organisation that now has an
 * endpoint tells nobody anything: it goes dead at once, so it does not
 * hold up that (receiver, patient) lane, and `pzpgw queue replay` sends
 * it once a notify URL is back. A message waits, as rows without a route
 * do.
 */
static void
deliver_no_url(struct deliver *d, const struct deliver_xfer *x,
	       const struct store_row *row, int64_t now)
{
	char labels[64] = "";

	if (x->notice) {
		store_failed_perm(d->store, row->id, row->receiver, 0,
				  "no [peer] notify URL for this receiver "
				  "any more",
				  NULL);
		metrics_label(labels, sizeof(labels), "receiver",
			      row->receiver);
		metrics_label(labels, sizeof(labels), "outcome", "dead");
		metrics_add(M_TOTAL, labels, 1);
	} else {
		store_failed_temp(d->store, row->id, row->receiver, 0,
				  "no [peer] endpoint for this message",
				  now + d->backoff.max_ms);
	}
	log_warnx("event=delivery_no_route id=%s receiver=%s kind=%s "
		  "outcome=%s",
		  row->id, row->receiver, x->notice ? "notice" : "message",
		  x->notice ? "dead" : "retry");
}

void
deliver_set_stu3(struct deliver *d, deliver_stu3_fn fn, void *arg)
{
	d->to_stu3 = fn;
	d->to_stu3_arg = arg;
}

/*
 * A message for a receiver whose [peer] has fhir = stu3 goes converted
 * and signed over the STU3 bytes (issue 12): x->msg->doc is replaced.
 * GW_OK (also when nothing was to do); GW_INVALID when the message has no
 * STU3 form (why says it: dead-lettered by the caller, like any
 * permanent failure); GW_NOMEM.
 */
static enum gw_err
deliver_stu3(struct deliver *d, struct deliver_xfer *x, char *why,
	     size_t whylen)
{
	const struct config_peer *cp = config_peer_find(d->cfg, x->receiver);
	size_t len = 0, notes = 0;
	char *out = NULL;
	enum gw_err err;

	if (x->notice || cp == NULL || cp->fhir == NULL ||
	    strcmp(cp->fhir, "stu3") != 0)
		return GW_OK;
	if (d->to_stu3 == NULL) {
		snprintf(why, whylen, "no STU3 converter");
		return GW_INVALID;
	}
	err = d->to_stu3(d->to_stu3_arg, x->msg->doc, x->msg->doc_len, &out,
			 &len, &notes, why, whylen);
	if (err != GW_OK)
		return err;
	free(x->msg->doc);
	x->msg->doc = out;
	x->msg->doc_len = len;
	x->stu3 = true;
	log_info("event=delivery_converted id=%s receiver=%s to=stu3 notes=%zu",
		 x->id, x->receiver, notes);
	return GW_OK;
}

/* Start one claimed row. On failure the row goes back to the store. */
static void
deliver_start(struct deliver *d, struct deliver_peer *p,
	      const struct store_row *row)
{
	struct deliver_multi *dm = d->multis;
	struct deliver_xfer *x = NULL;
	int64_t now = util_wall_ms();
	char labels[64] = "", conv[256] = "";
	const char *why, *url;
	enum gw_err err;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		why = "out of memory";
		goto fail;
	}
	x->d = d;
	x->dm = dm;
	util_strlcpy(x->id, row->id, sizeof(x->id));
	util_strlcpy(x->receiver, row->receiver, sizeof(x->receiver));
	util_strlcpy(x->server_ura, p->server_ura, sizeof(x->server_ura));
	x->attempt = row->attempts;
	x->seq = row->seq;
	x->leased_till = now + d->lease_ms;
	x->age_from = row->age_from ? row->age_from : now;
	x->retry_after_ms = -1;
	buf_init(&x->body, DELIVER_BODY_MAX);
	err = store_get_document(d->store, row->id, &x->msg);
	if (err == GW_NOTFOUND || (err == GW_OK && x->msg->doc == NULL)) {
		log_warnx("event=delivery id=%s receiver=%s outcome=dead "
			  "error=document_missing",
			  row->id, row->receiver);
		store_failed_perm(d->store, row->id, row->receiver, 0,
				  "document missing from the store", NULL);
		metrics_label(labels, sizeof(labels), "receiver",
			      row->receiver);
		metrics_label(labels, sizeof(labels), "outcome", "dead");
		metrics_add(M_TOTAL, labels, 1);
		deliver_xfer_free(x);
		return;
	}
	if (err != GW_OK) {
		why = "cannot read the document from the store";
		goto fail;
	}
	/* A message goes to the endpoint, a notice to the notify URL; after
	   a configuration change the peer may have only the other one. */
	x->notice = x->msg->direction == STORE_NOTICE;
	url = x->notice ? p->notify : p->url;
	if (url == NULL) {
		deliver_no_url(d, x, row, now);
		deliver_xfer_free(x);
		return;
	}
	if ((err = deliver_stu3(d, x, conv, sizeof(conv))) != GW_OK) {
		if (err == GW_NOMEM) {
			why = "out of memory converting to STU3";
			goto fail;
		}
		log_warnx("event=delivery id=%s receiver=%s outcome=dead "
			  "error=no_stu3_form",
			  row->id, row->receiver);
		store_failed_perm(d->store, row->id, row->receiver, 0, conv,
				  NULL);
		metrics_label(labels, sizeof(labels), "receiver",
			      row->receiver);
		metrics_label(labels, sizeof(labels), "outcome", "dead");
		metrics_add(M_TOTAL, labels, 1);
		deliver_xfer_free(x);
		return;
	}
	if (deliver_easy_setup(d, url, x) != GW_OK) {
		why = "cannot set up the transfer";
		goto fail;
	}
	x->started = util_mono_ms();
	if (curl_multi_add_handle(dm->m, x->easy) != CURLM_OK) {
		why = "cannot start the transfer";
		goto fail;
	}
	x->next = d->xfers;
	if (d->xfers != NULL)
		d->xfers->prev = x;
	d->xfers = x;
	d->nxfers++;
	dm->nxfers++;
	p->active++;
	return;
fail:
	log_warnx("event=delivery_start_failed id=%s receiver=%s reason=\"%s\"",
		  row->id, row->receiver, why);
	store_failed_temp(d->store, row->id, row->receiver, 0, why,
			  now + d->backoff.min_ms);
	deliver_xfer_free(x);
}

static const char *const deliver_outcome_names[] = {
    [POLICY_DELIVERED] = "delivered",
    [POLICY_RETRY] = "retry",
    [POLICY_DEAD] = "dead",
};

/* The receiver's answer when it is a JSON object (its OperationOutcome),
 * else NULL. New reference: caller decrefs. */
static json_t *
deliver_outcome_json(const struct deliver_xfer *x)
{
	json_t *j;

	if (x->body.len == 0 || x->body.len >= x->body.max)
		return NULL;
	j = json_loadb(x->body.data, x->body.len, 0, NULL);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/*
 * "code: diagnostics; ..." of the first three issues of the receiver's
 * OperationOutcome (NULL: nothing), appended to out after sep, cut to
 * fit. Only for answers about the route (who may push, which path, which
 * gateway serves whom): those carry no care plan content; the
 * OperationOutcome of a refused document is kept in the row, not logged.
 */
static void
deliver_outcome_text(const json_t *oo, const char *sep, char *out, size_t n)
{
	const json_t *issue;
	const char *code, *diag;
	size_t i, len = strlen(out);

	json_array_foreach(json_object_get(oo, "issue"), i, issue)
	{
		if (i >= 3 || len + 1 >= n)
			break;
		code = json_string_value(json_object_get(issue, "code"));
		diag = json_string_value(json_object_get(issue, "diagnostics"));
		snprintf(out + len, n - len, "%s%s%s%s", i == 0 ? sep : "; ",
			 code != NULL ? code : "-", diag != NULL ? ": " : "",
			 diag != NULL ? diag : "");
		len = strlen(out);
	}
}

/* pzpgw_receiver_held{receiver}: 1 while the receiver is held. */
static void
deliver_held_gauge(const char *ura, bool held)
{
	char labels[64] = "";

	metrics_label(labels, sizeof(labels), "receiver", ura);
	metrics_set(M_HELD, labels, held ? 1.0 : 0.0);
}

/* The static name of a stored hold reason. */
static const char *
deliver_reason_name(const char *reason)
{
	static const char *const names[] = {"unreachable", "busy",
					    "misconfigured"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(reason, names[i]) == 0)
			return names[i];
	return names[0];
}

/* Shared holds: take the receivers' holds from the store, where another
 * node may have held or released one. On a failed read the peers keep
 * what they had. */
static void
deliver_holds_sync(struct deliver *d, int64_t now, bool force)
{
	struct store_hold *h = NULL;
	size_t n = 0;

	if (!d->shared ||
	    (!force && now - d->holds_read_at < DELIVER_HOLD_SYNC_MS))
		return;
	if (store_holds(d->store, &h, &n) != GW_OK)
		return;
	d->holds_read_at = now;
	for (size_t i = 0; i < d->npeers; i++) {
		struct deliver_peer *p = &d->peers[i];
		const struct store_hold *f = NULL;

		for (size_t k = 0; k < n && f == NULL; k++)
			if (strcmp(h[k].receiver, p->ura) == 0)
				f = &h[k];
		if (f != NULL) {
			if (p->conn_fails == 0)
				deliver_held_gauge(p->ura, true);
			p->conn_fails = f->fails;
			p->hold_until = f->until;
			p->hold_reason = deliver_reason_name(f->reason);
		} else if (p->conn_fails > 0) {
			p->conn_fails = 0;
			p->hold_until = 0;
			p->hold_reason = NULL;
			deliver_held_gauge(p->ura, false);
		}
	}
	free(h);
}

/*
 * Hold or release the receiver's peer after a transfer: held (growing
 * like a row's backoff, at most DELIVER_HOLD_MAX_MS) while no HTTP answer
 * comes back at all, it answers 429/503, or it refuses the route
 * (hold POLICY_HOLD_ROUTE; why: its answer, for the log); released by any
 * other answer; then the rows that backed off meanwhile are due at once.
 */
static void
deliver_peer_reachable(struct deliver *d, const struct deliver_xfer *x,
		       CURLcode rc, long status, enum policy_hold hold_kind,
		       const char *why, int64_t now)
{
	struct deliver_peer *p = deliver_peer_find(d, x->receiver);
	struct store_backoff hold = d->backoff;
	bool busy = hold_kind == POLICY_HOLD_BUSY;
	bool route = hold_kind == POLICY_HOLD_ROUTE;
	const char *reason, *before;
	char safe[DELIVER_ERR_MAX + 64];
	int64_t not_before = 0;
	size_t n = 0;
	bool was = true, changed = true;
	struct store_hold sh;

	if (p == NULL)
		return;
	if (status > 0 && hold_kind == POLICY_HOLD_NONE) {
		if (p->conn_fails == 0)
			return;
		p->conn_fails = 0;
		p->hold_until = 0;
		p->hold_reason = NULL;
		deliver_held_gauge(p->ura, false);
		/* Shared: the node that ends the hold reschedules; another
		   that finds it ended already has nothing more to do. */
		if (d->shared &&
		    store_hold_clear(d->store, p->ura, &was) == GW_OK && !was) {
			deliver_kick(d);
			return;
		}
		if (store_reschedule(d->store, p->ura, now, &n) != GW_OK)
			n = 0;
		log_info("event=receiver_reachable receiver=%s rescheduled=%zu",
			 p->ura, n);
		deliver_kick(d);
		return;
	}
	/* Transfers that were already under way when the hold began do not
	 * make it longer. */
	if ((hold_kind == POLICY_HOLD_NONE &&
	     (rc == CURLE_OK || rc == CURLE_ABORTED_BY_CALLBACK)) ||
	    p->hold_until > now)
		return;
	reason = route ? "misconfigured" : busy ? "busy" : "unreachable";
	before = p->conn_fails == 0 ? NULL : p->hold_reason;
	hold.max_age_ms = 0;
	if (hold.max_ms > DELIVER_HOLD_MAX_MS)
		hold.max_ms = DELIVER_HOLD_MAX_MS;
	if (hold.min_ms > hold.max_ms)
		hold.min_ms = hold.max_ms;
	/* A busy receiver's Retry-After is honoured in full: the probe
	 * must not come before it. */
	if (busy && x->retry_after_ms > 0)
		not_before = now + x->retry_after_ms;
	if (d->shared && store_hold_fail(d->store, p->ura, reason, now, &hold,
					 deliver_rand(), not_before, &changed,
					 &sh) == GW_OK) {
		/* The nodes' count and hold, which another node may have
		   begun meanwhile (then this failure changes nothing). */
		p->conn_fails = sh.fails;
		p->hold_until = sh.until;
		p->hold_reason = deliver_reason_name(sh.reason);
		if (before == NULL)
			deliver_held_gauge(p->ura, true);
		if (!changed)
			return;
	} else {
		/* One node, or the store cannot say: hold here. */
		p->conn_fails++;
		p->hold_reason = reason;
		p->hold_until = store_hold_until(&hold, p->conn_fails, now,
						 deliver_rand(), not_before);
	}
	if (before == NULL || strcmp(before, reason) != 0) {
		deliver_held_gauge(p->ura, true);
		if (route)
			log_warnx(
			    "event=receiver_misconfigured receiver=%s "
			    "status=%ld url=%s outcome=\"%s\" "
			    "action=\"messages wait: fix the route ([peer] "
			    "endpoint and server_ura here, or the "
			    "receiving gateway's [peer] allow) and "
			    "reload; they go then\"",
			    p->ura, status, deliver_peer_url(p),
			    log_quoted(safe, sizeof(safe),
				       why != NULL ? why : ""));
		else
			log_warnx("event=receiver_%s receiver=%s status=%ld "
				  "action=\"one probe at a time until it "
				  "answers\"",
				  reason, p->ura, status);
	}
}

/* A transfer finished with rc: record the result and count it. */
static void
deliver_finish(struct deliver *d, struct deliver_xfer *x, CURLcode rc)
{
	enum policy_delivery out;
	bool answered;
	long status = 0;
	int64_t now = util_wall_ms(), next = 0;
	double secs = (double)(util_mono_ms() - x->started) / 1000.0;
	char error[DELIVER_ERR_MAX + CURL_ERROR_SIZE + 64];
	char labels[64] = "", safe[sizeof(error)];
	char *outcome = NULL;
	json_t *oo = NULL;
	enum policy_hold hold = POLICY_HOLD_NONE;
	enum gw_err err;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	error[0] = '\0';
	answered = rc == CURLE_OK || (x->body_too_big && status >= 200);
	if (answered && (status < 200 || status >= 300))
		oo = deliver_outcome_json(x);
	out = policy_delivery(answered, status, oo, &hold);
	if (answered) {
		if (out != POLICY_DELIVERED)
			snprintf(error, sizeof(error), "HTTP %ld", status);
		/* The receiver's reason why the route is refused goes with
		 * the row (queue show) and the log line. */
		if (hold == POLICY_HOLD_ROUTE)
			deliver_outcome_text(oo, ": route refused: ", error,
					     sizeof(error));
		if (out == POLICY_DEAD && oo != NULL)
			outcome = json_dumps(oo, JSON_COMPACT);
	} else {
		if (x->tls_error[0] != '\0')
			util_strlcpy(error, x->tls_error, sizeof(error));
		else if (x->curl_error[0] != '\0')
			snprintf(error, sizeof(error), "%s: %s",
				 curl_easy_strerror(rc), x->curl_error);
		else
			util_strlcpy(error, curl_easy_strerror(rc),
				     sizeof(error));
	}
	deliver_peer_reachable(d, x, rc, status, hold,
			       hold == POLICY_HOLD_ROUTE ? error : NULL, now);
	if (out == POLICY_RETRY) {
		if (!store_next_attempt(&d->backoff, x->attempt, x->age_from,
					now, deliver_rand(), &next)) {
			size_t n = strlen(error);

			out = POLICY_DEAD;
			snprintf(error + n, sizeof(error) - n,
				 "%smax age exceeded", n ? "; " : "");
		} else if (x->retry_after_ms > 0 &&
			   now + x->retry_after_ms > next) {
			next = now + x->retry_after_ms;
			if (d->backoff.max_age_ms > 0 &&
			    next > x->age_from + d->backoff.max_age_ms)
				next = x->age_from + d->backoff.max_age_ms;
		}
	}
	switch (out) {
	case POLICY_DELIVERED:
		err = store_delivered(d->store, x->id, x->receiver, (int)status,
				      now);
		break;
	case POLICY_RETRY:
		err = store_failed_temp(d->store, x->id, x->receiver,
					(int)status, error, next);
		break;
	default:
		err = store_failed_perm(d->store, x->id, x->receiver,
					(int)status, error, outcome);
		break;
	}
	if (err != GW_OK)
		log_warnx("event=delivery_record_failed id=%s receiver=%s "
			  "error=%s",
			  x->id, x->receiver, gw_strerror(err));
	metrics_label(labels, sizeof(labels), "receiver", x->receiver);
	metrics_observe(M_DURATION, labels, secs);
	metrics_label(labels, sizeof(labels), "outcome",
		      deliver_outcome_names[out]);
	metrics_add(M_TOTAL, labels, 1);
	log_info("event=delivery id=%s receiver=%s%s status=%ld outcome=%s "
		 "attempt=%u duration_ms=%.0f%s%s%s",
		 x->id, x->receiver, x->notice ? " kind=notice" : "", status,
		 deliver_outcome_names[out], x->attempt, secs * 1000.0,
		 error[0] ? " error=\"" : "",
		 error[0] ? log_quoted(safe, sizeof(safe), error) : "",
		 error[0] ? "\"" : "");
	free(outcome);
	json_decref(oo);
}

/* ---- claiming and wake-ups ---- */

static void
deliver_arm_due(struct deliver *d, int64_t now)
{
	struct timeval tv;
	int64_t at, delay = DELIVER_IDLE_MS;

	if (d->stopped)
		return;
	if (store_next_due_at(d->store, &at) == GW_OK) {
		if (at > now) {
			delay = at - now;
		} else {
			/* Due but not claimable now (peer at its limit, no
         route): completions kick; poll as a safety net. */
			delay = d->backoff.min_ms;
			if (delay < DELIVER_POLL_MIN_MS)
				delay = DELIVER_POLL_MIN_MS;
		}
		if (delay > DELIVER_IDLE_MS)
			delay = DELIVER_IDLE_MS;
	}
	/* Wake for the end of a hold: its probe does not wait for rows. */
	for (size_t i = 0; i < d->npeers; i++)
		if (d->peers[i].conn_fails > 0 &&
		    d->peers[i].hold_until > now &&
		    d->peers[i].hold_until - now < delay)
			delay = d->peers[i].hold_until - now;
	/* The idle poll also notices what `pzpgw queue` did meanwhile. */
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)((delay % 1000) * 1000);
	evtimer_add(d->due_ev, &tv);
}

/* Claim what the limits allow and start it. */
static void
deliver_pass(struct deliver *d)
{
	int64_t now = util_wall_ms(), at;
	struct store_row *rows = NULL;
	size_t n = 0;
	enum gw_err err;
	bool probe = false;

	if (d->stopped)
		return;
	deliver_multi_reap(d);
	deliver_holds_sync(d, now, false);
	/* A held receiver whose hold ran out is probed even when none of
	   its rows is due by its own backoff yet. */
	for (size_t i = 0; i < d->npeers && !probe; i++)
		probe = d->peers[i].conn_fails > 0 &&
			d->peers[i].hold_until <= now &&
			d->peers[i].active == 0;
	if (!probe && (store_next_due_at(d->store, &at) != GW_OK || at > now)) {
		deliver_arm_due(d, now);
		return;
	}
	for (size_t i = 0; i < d->npeers; i++) {
		struct deliver_peer *p = &d->peers[i];
		int64_t due_by = now;
		size_t max;

		if (p->active >= p->limit || p->hold_until > now)
			continue;
		max = p->limit - p->active;
		/* An unreachable receiver gets one probe at a time: its
		 * lane head that is due first, even when that row's own
		 * backoff has not run out, so recovery is seen within a
		 * hold. */
		if (p->conn_fails > 0) {
			if (p->active > 0 || p->probe_after > now)
				continue;
			/* Shared: one node wins the probe (a conditional
			   update); the others wait for its outcome. */
			err =
			    d->shared
				? store_hold_probe(
				      d->store, p->ura, now,
				      now +
					  (int64_t)d->cfg->delivery_timeout_ms +
					  5000)
				: GW_OK;
			if (err == GW_NOTFOUND) {
				/* Another node saw it answer. */
				p->conn_fails = 0;
				p->hold_until = 0;
				p->hold_reason = NULL;
				deliver_held_gauge(p->ura, false);
			} else if (err != GW_OK) {
				p->probe_after = now + DELIVER_HOLD_SYNC_MS;
				d->holds_read_at = 0;
				continue;
			} else {
				max = 1;
				due_by = INT64_MAX;
			}
		}
		err =
		    store_claim(d->store, p->ura, due_by, now, max, &rows, &n);
		if (err != GW_OK) {
			if (!d->claim_failed)
				log_warnx("event=claim_failed receiver=%s "
					  "error=%s",
					  p->ura, gw_strerror(err));
			d->claim_failed = true;
			continue;
		}
		d->claim_failed = false;
		for (size_t k = 0; k < n; k++)
			deliver_start(d, p, &rows[k]);
		store_rows_free(rows, n);
		rows = NULL;
	}
	deliver_arm_due(d, util_wall_ms());
}

/*
 * Renew the lease of every attempt whose lease is two thirds gone: an
 * attempt may run longer than a lease (a reload raised [delivery]
 * timeout, the loop was held up, the nodes' clocks differ), and its row
 * must not be taken over by another node while it still sends. An
 * attempt whose row was taken over already is stopped: the other node
 * sends it, and this one's result would be dropped.
 */
static void
deliver_renew_event(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	struct deliver_xfer *x, *next;
	int64_t now = util_wall_ms();
	enum gw_err err;

	for (x = d->xfers; x != NULL; x = next) {
		next = x->next;
		if (x->leased_till - now > 2 * d->lease_ms / 3)
			continue;
		err = store_renew(d->store, x->seq, x->receiver,
				  now + d->lease_ms);
		if (err == GW_OK) {
			x->leased_till = now + d->lease_ms;
			d->renew_failed = false;
			continue;
		}
		if (err != GW_NOTFOUND) {
			if (!d->renew_failed)
				log_warnx("event=lease_renew_failed id=%s "
					  "receiver=%s error=%s",
					  x->id, x->receiver, gw_strerror(err));
			d->renew_failed = true;
			continue;
		}
		log_warnx("event=delivery_lease_lost id=%s receiver=%s "
			  "attempt=%u action=\"stopped: another node took the "
			  "row over\"",
			  x->id, x->receiver, x->attempt);
		curl_multi_remove_handle(x->dm->m, x->easy);
		deliver_unlink(d, x);
		deliver_xfer_free(x);
	}
}

static void
deliver_kick_event(evutil_socket_t fd, short what, void *arg)
{
	deliver_pass(arg);
}

static void
deliver_due_event(evutil_socket_t fd, short what, void *arg)
{
	deliver_pass(arg);
}

static void
deliver_multi_check(struct deliver_multi *dm)
{
	struct deliver *d = dm->d;
	struct deliver_xfer *x;
	CURLMsg *msg;
	CURLcode rc;
	CURL *easy;
	int left;
	bool done = false;

	while ((msg = curl_multi_info_read(dm->m, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		rc = msg->data.result;
		x = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(dm->m, easy);
		if (x == NULL)
			continue;
		deliver_unlink(d, x);
		deliver_finish(d, x, rc);
		deliver_xfer_free(x);
		done = true;
	}
	if (done)
		deliver_kick(d);
}

/* Receivers with due rows and no route: say so once per receiver. */
static void
deliver_check_routes(struct deliver *d)
{
	struct store_stat *st = NULL;
	size_t n = 0;
	void *grown;

	if (store_stats_recent(d->store, &st, &n) != GW_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		if (st[i].state != STORE_DUE || st[i].count == 0 ||
		    deliver_peer_find(d, st[i].receiver) != NULL)
			continue;
		for (size_t k = 0; k < d->nnoroute && !seen; k++)
			seen = strcmp(d->noroute[k], st[i].receiver) == 0;
		if (seen)
			continue;
		log_warnx("event=delivery_no_route receiver=%s due=%llu "
			  "action=\"rows wait until a [peer] endpoint is "
			  "configured\"",
			  st[i].receiver, (unsigned long long)st[i].count);
		grown = realloc(d->noroute,
				(d->nnoroute + 1) * sizeof(*d->noroute));
		if (grown == NULL)
			break;
		d->noroute = grown;
		util_strlcpy(d->noroute[d->nnoroute++], st[i].receiver,
			     sizeof(d->noroute[0]));
	}
	free(st);
}

static void
deliver_metrics_event(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	int64_t now = util_wall_ms();
	size_t n = 0;

	/* Rows that can no longer be attempted in time (e.g. behind a held
	 * receiver) are dead at their maximum age, attempted or not. */
	if (d->backoff.max_age_ms > 0 &&
	    store_expire_later(d->store, now - d->backoff.max_age_ms, now,
			       &n) == GW_OK &&
	    n > 0) {
		metrics_add("pzpgw_expired_total", "", n);
		deliver_kick(d);
	}
	store_metrics_update(d->store, now);
	deliver_check_routes(d);
}

/* ---- public ---- */

enum gw_err
deliver_new(struct event_base *base, struct store *store,
	    const struct config *cfg, struct deliver **out, char *errbuf,
	    size_t errlen)
{
	static bool curl_ready;
	struct timeval tv = {DELIVER_METRICS_MS / 1000,
			     (DELIVER_METRICS_MS % 1000) * 1000};
	struct deliver *d = NULL;
	enum gw_err err = GW_NOMEM;
	size_t recovered = 0;

	*out = NULL;
	snprintf(errbuf, errlen, "%s", "");
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(errbuf, errlen,
				 "deliver: libcurl init failed");
			return GW_PERM;
		}
		curl_ready = true;
	}
	metrics_describe(M_TOTAL, METRICS_COUNTER,
			 "Delivery attempts to receiving gateways by "
			 "receiver and outcome (delivered, retry, dead).");
	metrics_describe(M_DURATION, METRICS_HISTOGRAM,
			 "Duration of delivery attempts in seconds.");
	metrics_describe(M_HELD, METRICS_GAUGE,
			 "1 while a receiver is held for giving no answer, "
			 "answering 429/503, or refusing the route (401, 403, "
			 "404, 405, 421, no route 422); probed one row at a "
			 "time.");
	metrics_describe("pzpgw_expired_total", METRICS_COUNTER,
			 "Outbox rows dead-lettered at their maximum age "
			 "without a final attempt.");
	if ((d = calloc(1, sizeof(*d))) == NULL)
		goto fail;
	d->base = base;
	d->store = store;
	d->cfg = cfg;
	deliver_backoff_from(d, cfg);
	if (deliver_peers_build(d, cfg, &d->peers, &d->npeers) != GW_OK ||
	    (d->multis = deliver_multi_new(d, deliver_maxconn(d))) == NULL ||
	    (d->kick_ev = event_new(base, -1, 0, deliver_kick_event, d)) ==
		NULL ||
	    (d->due_ev = evtimer_new(base, deliver_due_event, d)) == NULL ||
	    (d->metrics_ev = event_new(base, -1, EV_PERSIST,
				       deliver_metrics_event, d)) == NULL)
		goto fail;
	/* Rows left in flight by a previous run go first, before anything
     new (the daemon may have done this already: then none are left). */
	if ((err = store_recover(store, &recovered)) != GW_OK) {
		snprintf(errbuf, errlen, "deliver: recovering rows: %s",
			 gw_strerror(err));
		goto fail;
	}
	if (recovered > 0)
		log_info("event=delivery_recovered rows=%zu", recovered);
	d->shared = strcmp(store_backend(store), "postgresql") == 0;
	deliver_holds_sync(d, util_wall_ms(), true);
	event_add(d->metrics_ev, &tv);
	if ((d->lease_ms = store_lease_ms(store)) > 0) {
		struct timeval rt = {(time_t)(d->lease_ms / 3000),
				     (suseconds_t)(d->lease_ms / 3 % 1000) *
					 1000};

		if ((d->renew_ev = event_new(base, -1, EV_PERSIST,
					     deliver_renew_event, d)) == NULL) {
			err = GW_NOMEM;
			goto fail;
		}
		event_add(d->renew_ev, &rt);
	}
	deliver_arm_due(d, util_wall_ms());
	log_info("event=delivery_started routes=%zu", d->npeers);
	*out = d;
	return GW_OK;
fail:
	if (errbuf[0] == '\0')
		snprintf(errbuf, errlen, "deliver: out of memory");
	deliver_free(d);
	return err;
}

void
deliver_kick(struct deliver *d)
{
	if (d == NULL || d->stopped)
		return;
	/* Coalesced: many kicks before the loop runs make one pass. */
	if (!event_pending(d->kick_ev, EV_TIMEOUT, NULL))
		event_active(d->kick_ev, EV_TIMEOUT, 0);
}

void
deliver_reconfigure(struct deliver *d, const struct config *cfg)
{
	struct deliver_peer *peers;
	struct deliver_multi *dm;
	size_t n;

	if (d == NULL)
		return;
	if (deliver_peers_build(d, cfg, &peers, &n) != GW_OK) {
		log_warnx("event=delivery_reconfigure_failed "
			  "reason=out_of_memory action=keeping_old_routes");
		return;
	}
	d->cfg = cfg;
	/* A held receiver without a route any more is not held. */
	for (size_t i = 0; i < d->npeers; i++) {
		bool kept = false;

		for (size_t k = 0; k < n && !kept; k++)
			kept = strcmp(peers[k].ura, d->peers[i].ura) == 0;
		if (!kept && d->peers[i].conn_fails > 0)
			deliver_held_gauge(d->peers[i].ura, false);
	}
	deliver_peers_free(d->peers, d->npeers);
	d->peers = peers;
	d->npeers = n;
	deliver_backoff_from(d, cfg);
	free(d->noroute);
	d->noroute = NULL;
	d->nnoroute = 0;
	/* New connections for the new certificate and routes; transfers in
     flight finish on the old handle. */
	if ((dm = deliver_multi_new(d, deliver_maxconn(d))) != NULL) {
		dm->next = d->multis;
		d->multis = dm;
		deliver_multi_reap(d);
	}
	log_info("event=delivery_reconfigured routes=%zu", n);
	deliver_kick(d);
}

void
deliver_stop(struct deliver *d)
{
	int64_t now = util_wall_ms();

	if (d == NULL || d->stopped)
		return;
	d->stopped = true;
	event_del(d->kick_ev);
	event_del(d->due_ev);
	event_del(d->metrics_ev);
	if (d->renew_ev != NULL)
		event_del(d->renew_ev);
	while (d->xfers != NULL) {
		struct deliver_xfer *x = d->xfers;

		curl_multi_remove_handle(x->dm->m, x->easy);
		deliver_unlink(d, x);
		/* Due again at once; the attempt counted stays counted. */
		store_failed_temp(d->store, x->id, x->receiver, 0,
				  "delivery interrupted by shutdown", now);
		deliver_xfer_free(x);
	}
	log_info("event=delivery_stopped");
}

void
deliver_free(struct deliver *d)
{
	if (d == NULL)
		return;
	if (d->kick_ev != NULL && d->due_ev != NULL && d->metrics_ev != NULL)
		deliver_stop(d);
	while (d->multis != NULL) {
		struct deliver_multi *dm = d->multis;

		d->multis = dm->next;
		deliver_multi_free(dm);
	}
	if (d->kick_ev != NULL)
		event_free(d->kick_ev);
	if (d->due_ev != NULL)
		event_free(d->due_ev);
	if (d->metrics_ev != NULL)
		event_free(d->metrics_ev);
	if (d->renew_ev != NULL)
		event_free(d->renew_ev);
	deliver_peers_free(d->peers, d->npeers);
	free(d->noroute);
	free(d);
}
