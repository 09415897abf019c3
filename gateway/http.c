/*
 * HTTP listeners on libevent's evhttp: mutual TLS through OpenSSL
 * bufferevents, connection and request limits, whole-request deadlines,
 * routing with permission checks, FHIR OperationOutcome errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>

#include "outcome.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/*
 * The request gate refuses a declared or chunked body over max_body before
 * libevent reads it; libevent's own ceiling, a little above, stays as a
 * second line.
 */
#define HTTP_BODY_SLACK (256 * 1024)

/*
 * What handling a request with a body of n bytes is estimated to take at
 * its peak: n * HTTP_MEM_FACTOR + HTTP_MEM_BASE. Measured on
 * $process-message with PZP resources (7,000 entries, 10 MB): 87 MB above
 * the idle daemon for one request (the body read by evhttp and copied,
 * the parsed tree, validation, the canonical and signed copies, the store
 * row), 8.7 times the body.
 */
#define HTTP_MEM_FACTOR 10
#define HTTP_MEM_BASE	(64 * 1024)

enum conn_state { CONN_NEW, CONN_BUSY, CONN_IDLE };

/* Where the request gate is in the client's byte stream (gate_pump). */
enum gate_state {
	GATE_HEAD,	 /* collecting a request head */
	GATE_BODY,	 /* passing c->left more body bytes */
	GATE_CHUNK_SIZE, /* expecting a chunk-size line */
	GATE_CHUNK_DATA, /* passing c->left more chunk bytes */
	GATE_CHUNK_CRLF, /* expecting the CRLF after chunk data */
	GATE_CHUNK_LAST, /* after the last chunk: expecting CRLF */
	GATE_HOLD,	 /* a whole request passed on, not yet answered */
	GATE_DRAIN,	 /* refused: dropping c->left body bytes first */
	GATE_DISCARD,	 /* refused: drop everything */
};

/* A request the gate refused, answered by on_request. */
struct gate_refusal {
	int status; /* 0: none */
	enum policy_kind kind;
	char msg[200];
	char method[16];
	char path[128];
	char allow[64];
};

struct http_listener {
	struct http_server *srv;
	struct evhttp *evh;
	struct evhttp_bound_socket *bound;
	struct http_route *routes;
	size_t nroutes;
	struct http_conn *conns; /* open connections */
	/* Connections still in the TLS handshake, oldest first: a pool of
	 * their own (max_handshakes), so that sockets which never finish a
	 * handshake cannot take the places of organisations. */
	struct http_conn *hs_head, *hs_tail;
	uint64_t full_logged_ms; /* last event=handshake_pool_full line */
	/* accept() failing (EMFILE, ENFILE, ENOBUFS): accepting pauses
	 * for backoff_ms, doubling while it fails, and it is logged once
	 * a minute with the number of failures in between. */
	struct event *backoff_ev;
	uint64_t backoff_ms;
	uint64_t err_logged_ms;
	struct http_listener *next_all; /* in all_listeners */
	unsigned port;
	unsigned nconns;
	unsigned nhandshakes;
	unsigned nestablished; /* past the handshake; max_connections */
	unsigned err_suppressed;
	bool admin;
	bool paused; /* accepting stopped (limit or backoff) */
	bool backing_off;
};

struct http_conn {
	struct http_server *srv;
	struct http_listener *lst;
	struct bufferevent *bev;
	SSL *ssl;
	struct event *deadline;
	struct http_req *current;
	struct evhttp_connection *evcon;
	enum conn_state state;
	bool nodelay;	  /* TCP_NODELAY set on the socket */
	bool handshaking; /* in the handshake pool */
	bool established; /* counted in lst->nestablished */
	bool adopting;	  /* admin: waiting for admin_adopt (see admin_bevcb) */
	uint64_t bytes_mark; /* raw bytes read when the last reply ended */
	struct http_conn *prev, *next;	 /* in lst->conns */
	struct http_conn *hprev, *hnext; /* in lst's handshake pool */
	/* The request gate (gate_pump): */
	struct evbuffer *held; /* decrypted, not yet passed to evhttp */
	struct evbuffer_cb_entry *gate_cb;
	enum gate_state gate;
	bool in_gate;
	uint64_t left;		/* body or chunk bytes still to pass */
	uint64_t chunked_total; /* chunk data passed in this request */
	size_t scanned;		/* head bytes already checked */
	struct gate_refusal rej;
	uint64_t mem; /* reserved by the gate for the request it passed on */
	/* A refusal of this head first drops its body (GATE_DRAIN): the
	   body's length and the head's. 0: answer at once. */
	uint64_t drain;
	size_t drain_head;
};

struct http_server {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *ctx;
	struct http_listener org;
	struct http_listener admin;
	unsigned pending;
	/* Estimated bytes the requests being handled hold (max_memory). */
	uint64_t mem_inflight;
	bool stopping;
	struct event *grace;
	http_done_fn done;
	void *done_arg;
	struct evbuffer *scratch; /* gate_input_cb's temporary */
};

struct http_req {
	struct http_server *srv;
	struct http_listener *lst;
	struct evhttp_request *ev;
	struct http_conn *conn;
	const struct config *cfg;
	struct tls_peer peer;
	bool has_peer;
	bool deferred;
	bool gone;
	char id[65];
	char client_id[65]; /* the client's X-Request-Id, sanitised */
	char *path;
	char *rawpath;		 /* as sent, still percent-encoded: routing */
	const char *method_name; /* the refused request's method */
	struct evkeyvalq query;
	bool query_parsed;
	char *body;
	size_t body_len;
	uint64_t start_ms;
	uint64_t mem; /* bytes reserved in srv->mem_inflight */
};

static int conn_ex_index = -1;
/* Every bound listener, to find ours from the evhttp that libevent hands
 * the accept error callback. */
static struct http_listener *all_listeners;

static void conn_check_done(struct http_server *srv);
static bool gate_attach(struct http_conn *c, struct bufferevent *bev);
static void gate_release(struct http_conn *c);
static void mem_release(struct http_server *srv, uint64_t *mem);

/* ---- connections ---- */

static const char *
lst_name(const struct http_listener *lst)
{
	return lst->admin ? "admin" : "org";
}

/* One label set {listener="..."} for the connection metrics. */
static const char *
lst_labels(const struct http_listener *lst, char *out, size_t n)
{
	out[0] = '\0';
	metrics_label(out, n, "listener", lst_name(lst));
	return out;
}

static void
conn_gauges(const struct http_listener *lst)
{
	char labels[96];

	lst_labels(lst, labels, sizeof(labels));
	metrics_label(labels, sizeof(labels), "state", "handshake");
	metrics_set("pzpgw_http_connections", labels, (double)lst->nhandshakes);
	lst_labels(lst, labels, sizeof(labels));
	metrics_label(labels, sizeof(labels), "state", "established");
	metrics_set("pzpgw_http_connections", labels,
		    (double)lst->nestablished);
}

static void
conn_link(struct http_listener *lst, struct http_conn *c)
{
	c->prev = NULL;
	c->next = lst->conns;
	if (lst->conns != NULL)
		lst->conns->prev = c;
	lst->conns = c;
}

static void
conn_unlink(struct http_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (c->lst != NULL)
		c->lst->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Put c at the young end of its listener's handshake pool. */
static void
hs_enter(struct http_conn *c)
{
	struct http_listener *lst = c->lst;

	c->handshaking = true;
	c->hnext = NULL;
	c->hprev = lst->hs_tail;
	if (lst->hs_tail != NULL)
		lst->hs_tail->hnext = c;
	else
		lst->hs_head = c;
	lst->hs_tail = c;
	lst->nhandshakes++;
}

/* Take c out of the handshake pool (no-op when it is not in it). */
static void
hs_leave(struct http_conn *c)
{
	struct http_listener *lst = c->lst;

	if (!c->handshaking)
		return;
	if (c->hprev != NULL)
		c->hprev->hnext = c->hnext;
	else
		lst->hs_head = c->hnext;
	if (c->hnext != NULL)
		c->hnext->hprev = c->hprev;
	else
		lst->hs_tail = c->hprev;
	c->hprev = c->hnext = NULL;
	c->handshaking = false;
	lst->nhandshakes--;
}

static void
conn_close(struct http_conn *c)
{
	/* Makes evhttp see end-of-file and free the connection; our state
	 * goes with the SSL object (conn_ex_free). */
	if (c->bev != NULL)
		bufferevent_trigger_event(c->bev,
					  BEV_EVENT_EOF | BEV_EVENT_READING, 0);
}

static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	char labels[64];

	lst_labels(c->lst, labels, sizeof(labels));
	if (c->handshaking) {
		log_debug("conn handshake deadline listener=%s",
			  lst_name(c->lst));
		metrics_add("pzpgw_http_handshake_timeouts_total", labels, 1);
		/* Out of the pool now: its place is free before evhttp has
		 * let go of the socket. */
		hs_leave(c);
		conn_gauges(c->lst);
	} else {
		log_debug("conn deadline state=%d", (int)c->state);
		metrics_add("pzpgw_http_timeouts_total", "", 1);
	}
	conn_close(c);
}

static void
conn_arm_deadline(struct http_conn *c, uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(c->deadline, &tv);
}

/* Accept while fewer than max_connections connections are past their
 * first stage (the pool of conn_pool_admit makes room for itself) and no
 * accept error backoff runs. */
static void
listener_update(struct http_listener *lst)
{
	struct http_server *srv = lst->srv;
	bool full = lst->nestablished >= srv->cfg->max_connections;
	bool want = !full && !lst->backing_off && !srv->stopping;

	if (lst->bound == NULL || want == !lst->paused)
		return;
	if (want) {
		evconnlistener_enable(
		    evhttp_bound_socket_get_listener(lst->bound));
	} else {
		evconnlistener_disable(
		    evhttp_bound_socket_get_listener(lst->bound));
		if (full)
			log_warnx("event=connection_limit listener=%s "
				  "connections=%u",
				  lst_name(lst), lst->nestablished);
	}
	lst->paused = !want;
}

static void
listener_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_listener *lst = arg;

	lst->backing_off = false;
	listener_update(lst);
}

/*
 * accept() failed with an error that does not go away by retrying at
 * once (out of file descriptors, or of kernel memory): the connection
 * stays in the backlog and the socket stays readable, so libevent would
 * call accept() again at once for ever. Pause accepting instead, from
 * 10 ms doubling to 1 s while it keeps failing, and log once a minute.
 */
static void
listener_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct http_listener *lst;
	char labels[64];
	uint64_t now = util_mono_ms();
	struct timeval tv;

	for (lst = all_listeners; lst != NULL; lst = lst->next_all)
		if (lst->evh == arg)
			break;
	if (lst == NULL || lst->backoff_ev == NULL) {
		evconnlistener_disable(l); /* cannot happen; never spin */
		return;
	}
	metrics_add("pzpgw_http_accept_errors_total",
		    lst_labels(lst, labels, sizeof(labels)), 1);
	if (lst->backoff_ms == 0)
		lst->backoff_ms = 10;
	else if (lst->backoff_ms < 1000)
		lst->backoff_ms *= 2;
	if (lst->err_logged_ms == 0 || now - lst->err_logged_ms >= 60 * 1000) {
		log_warnx("event=accept_error listener=%s error=\"%s\" "
			  "backoff_ms=%llu suppressed=%u",
			  lst_name(lst), evutil_socket_error_to_string(err),
			  (unsigned long long)lst->backoff_ms,
			  lst->err_suppressed);
		lst->err_logged_ms = now;
		lst->err_suppressed = 0;
	} else {
		lst->err_suppressed++;
	}
	lst->backing_off = true;
	listener_update(lst);
	tv.tv_sec = (time_t)(lst->backoff_ms / 1000);
	tv.tv_usec = (suseconds_t)(lst->backoff_ms % 1000) * 1000;
	evtimer_add(lst->backoff_ev, &tv);
}

/* c leaves the handshake pool for the established one. */
static void
conn_established(struct http_conn *c)
{
	struct http_listener *lst = c->lst;

	hs_leave(c);
	c->established = true;
	lst->nestablished++;
	/* From here read_timeout bounds the wait for a request. */
	conn_arm_deadline(c, c->srv->cfg->read_timeout_ms);
	listener_update(lst);
	conn_gauges(lst);
}

/* The TLS handshake of an org connection is complete. OpenSSL calls
 * this from inside SSL_do_handshake: only bookkeeping here. */
static void
conn_info_cb(const SSL *ssl, int where, int ret)
{
	struct http_conn *c;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_DONE))
		return;
	c = SSL_get_ex_data(ssl, conn_ex_index);
	if (c != NULL && c->srv != NULL && c->handshaking)
		conn_established(c);
}

/* Forget c, whose connection evhttp has freed. Frees c. */
static void
conn_gone(struct http_conn *c)
{
	struct http_server *srv = c->srv;
	struct http_listener *lst = c->lst;

	event_free(c->deadline);
	if (srv == NULL) { /* the server went first (http_server_free) */
		free(c);
		return;
	}
	hs_leave(c);
	if (c->established)
		lst->nestablished--;
	conn_unlink(c);
	lst->nconns--;
	free(c);
	listener_update(lst);
	conn_gauges(lst);
	conn_check_done(srv);
}

/* Runs when OpenSSL frees the SSL object of a connection, which libevent
 * does when it frees the connection's bufferevent. */
static void
conn_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
	     void *argp)
{
	struct http_conn *c = ptr;

	if (c == NULL)
		return;
	/*
	 * OpenSSL frees ex_data first in SSL_free, so the SSL is still
	 * whole; libevent frees the SSL from the bufferevent's destructor,
	 * while the bufferevent's memory (and its saved errors) still exist.
	 */
	if (!SSL_is_init_finished(c->ssl))
		tls_note_handshake_failure(
		    c->ssl, bufferevent_get_openssl_error(c->bev));
	if (c->current != NULL) {
		c->current->gone = true;
		c->current->ev = NULL;
		c->current->conn = NULL;
	}
	if (c->gate_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(c->bev),
					 c->gate_cb);
	if (c->held != NULL)
		evbuffer_free(c->held);
	mem_release(c->srv, &c->mem); /* gone before its request was read */
	conn_gone(c);
}

static void
conn_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *c = arg;

	if (c->current != NULL) {
		c->current->gone = true;
		c->current->ev = NULL;
		c->current = NULL;
	}
	c->evcon = NULL;
}

/*
 * A new connection enters the handshake pool. When the pool is full the
 * oldest connection in it is closed to make room: a socket that has not
 * finished its handshake in the time max_handshakes newer ones took to
 * arrive gives way. Refusing the new one instead would let a handful of
 * idle sockets, renewed every handshake_timeout, lock every organisation
 * out; evicting the oldest makes an attacker outpace each legitimate
 * handshake (a few round trips) with max_handshakes new connections.
 */
static void
conn_pool_admit(struct http_conn *c)
{
	struct http_listener *lst = c->lst;
	struct http_server *srv = c->srv;
	char labels[64];

	if (lst->nhandshakes >= srv->cfg->max_handshakes &&
	    lst->hs_head != NULL) {
		struct http_conn *old = lst->hs_head;
		uint64_t now = util_mono_ms();

		hs_leave(old);
		metrics_add("pzpgw_http_handshakes_evicted_total",
			    lst_labels(lst, labels, sizeof(labels)), 1);
		if (lst->full_logged_ms == 0 ||
		    now - lst->full_logged_ms >= 60 * 1000) {
			lst->full_logged_ms = now;
			log_warnx("event=handshake_pool_full listener=%s "
				  "handshakes=%u action=close_oldest",
				  lst_name(lst), lst->nhandshakes + 1);
		}
		conn_close(old);
	}
	lst->backoff_ms = 0; /* accept() works again */
	conn_link(lst, c);
	lst->nconns++;
	hs_enter(c);
	conn_arm_deadline(c, srv->cfg->handshake_timeout_ms);
	conn_gauges(lst);
}

static struct bufferevent *
conn_bevcb(struct event_base *base, void *arg)
{
	struct http_server *srv = arg;
	struct http_conn *c = NULL;
	struct bufferevent *bev;
	SSL *ssl;

	/*
	 * evhttp falls back to a plain socket when this returns NULL, so a
	 * bufferevent is always returned; without TLS it is refused in
	 * on_request (no SSL object, no peer).
	 */
	if ((ssl = SSL_new(srv->ctx)) == NULL ||
	    (c = calloc(1, sizeof(*c))) == NULL ||
	    (c->deadline = evtimer_new(base, conn_deadline_cb, c)) == NULL) {
		log_warnx("event=conn_alloc_failed");
		if (c != NULL)
			free(c);
		SSL_free(ssl);
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		event_free(c->deadline);
		free(c);
		SSL_free(ssl);
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!gate_attach(c, bev)) { /* never serve a connection ungated */
		log_warnx("event=conn_alloc_failed");
		if (c->held != NULL)
			evbuffer_free(c->held);
		bufferevent_free(bev); /* frees ssl */
		event_free(c->deadline);
		free(c);
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	c->srv = srv;
	c->lst = &srv->org;
	c->bev = bev;
	c->ssl = ssl;
	c->state = CONN_NEW;
	SSL_set_ex_data(ssl, conn_ex_index, c);
	SSL_set_info_callback(ssl, conn_info_cb);
	conn_pool_admit(c);
	return bev;
}

static void
admin_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *c = arg;

	conn_closecb(evcon, c);
	c->bev = NULL;
	conn_gone(c);
}

/* The next turn of the loop after admin_bevcb: evhttp has set its
 * callbacks on the bufferevent, with the connection as their argument,
 * or has freed it already (callbacks cleared). */
static void
admin_adopt(struct http_conn *c)
{
	bufferevent_data_cb rd, wr;
	bufferevent_event_cb evcb;
	void *cbarg = NULL;
	struct bufferevent *bev = c->bev;

	c->adopting = false;
	bufferevent_getcb(bev, &rd, &wr, &evcb, &cbarg);
	if (evcb == NULL || cbarg == NULL) {
		c->bev = NULL;
		conn_gone(c);
		bufferevent_decref(bev);
		return;
	}
	c->evcon = cbarg;
	evhttp_connection_set_closecb(c->evcon, admin_closecb, c);
	conn_arm_deadline(c, c->srv->cfg->handshake_timeout_ms);
	bufferevent_decref(bev);
}

static void
admin_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	if (c->adopting)
		admin_adopt(c);
	else
		conn_deadline_cb(fd, what, arg);
}

/*
 * An admin connection: plain HTTP, with the same pools, limits and
 * deadlines as the org listener, where "handshake" is the time until its
 * first request. A plain bufferevent has no SSL object whose destructor
 * says when evhttp frees it; evhttp's close callback does, but it can be
 * set only on the evhttp_connection, which is made after this returns.
 * So the bufferevent is held (a reference) until admin_adopt runs, from
 * the connection's timer activated now.
 */
static struct bufferevent *
admin_bevcb(struct event_base *base, void *arg)
{
	struct http_server *srv = arg;
	struct http_conn *c;
	struct bufferevent *bev;

	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->deadline = evtimer_new(base, admin_deadline_cb, c)) == NULL) {
		log_warnx("event=conn_alloc_failed listener=admin");
		free(c);
		return bev; /* served, but not counted */
	}
	c->srv = srv;
	c->lst = &srv->admin;
	c->bev = bev;
	c->state = CONN_NEW;
	c->adopting = true;
	bufferevent_incref(bev);
	conn_pool_admit(c);
	event_active(c->deadline, EV_TIMEOUT, 1);
	return bev;
}

/* The admin connection that carries evcon, or NULL. */
static struct http_conn *
admin_conn_find(struct http_server *srv, struct evhttp_connection *evcon)
{
	for (struct http_conn *c = srv->admin.conns; c != NULL; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

/* ---- requests ---- */

const char *
http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Status";
	}
}

static void
req_free(struct http_req *req)
{
	mem_release(req->srv, &req->mem);
	if (req->query_parsed)
		evhttp_clear_headers(&req->query);
	free(req->path);
	free(req->rawpath);
	free(req->body);
	free(req);
}

static void
on_complete(struct evhttp_request *ev, void *arg)
{
	struct http_conn *c = arg;

	c->state = CONN_IDLE;
	if (c->ssl != NULL)
		c->bytes_mark = BIO_number_read(SSL_get_rbio(c->ssl));
	gate_release(c);
	/* While stopping, the reply said "Connection: close" and evhttp
	 * closes the connection itself; closing it from here would fail an
	 * assertion in evhttp. */
	if (!c->srv->stopping)
		conn_arm_deadline(c, c->srv->cfg->read_timeout_ms);
}

static const char *
listener_name(const struct http_req *req)
{
	return req->lst->admin ? "admin" : "org";
}

/* The ura label of a request's metrics: only this gateway's own URA and
 * its [peer] sections get a series of their own, so that organisations
 * the CA trusts but the configuration does not name cannot grow the
 * metric set; they count as "other". */
static const char *
metrics_ura(const struct http_req *req)
{
	if (!req->has_peer)
		return "-";
	if (strcmp(req->peer.ura, req->cfg->ura) == 0 ||
	    config_peer_find(req->cfg, req->peer.ura) != NULL)
		return req->peer.ura;
	return "other";
}

static void
req_log(struct http_req *req, int status, size_t out_len)
{
	char path[128], labels[128] = "", code[8];
	uint64_t ms = util_mono_ms() - req->start_ms;
	const char *ura = req->has_peer ? req->peer.ura : "-";

	log_safe(path, sizeof(path), req->path ? req->path : "-");
	log_info("event=request id=%s%s%s listener=%s peer=%s method=%s "
		 "path=%s status=%d bytes_in=%zu bytes_out=%zu "
		 "duration_ms=%llu",
		 req->id, req->client_id[0] ? " client_request_id=" : "",
		 req->client_id, listener_name(req), ura, http_req_method(req),
		 path, status, req->body_len, out_len, (unsigned long long)ms);
	snprintf(code, sizeof(code), "%d", status);
	metrics_label(labels, sizeof(labels), "listener", listener_name(req));
	metrics_label(labels, sizeof(labels), "status", code);
	metrics_label(labels, sizeof(labels), "ura", metrics_ura(req));
	metrics_add("pzpgw_http_requests_total", labels, 1);
	labels[0] = '\0';
	metrics_label(labels, sizeof(labels), "listener", listener_name(req));
	metrics_observe("pzpgw_http_request_duration_seconds", labels,
			(double)ms / 1000.0);
}

void
http_reply(struct http_req *req, int status, const char *content_type,
	   const char *body, size_t len)
{
	struct http_server *srv = req->srv;
	struct evbuffer *out;
	struct evkeyvalq *hdr;

	if (req->deferred)
		srv->pending--;
	if (req->gone || req->ev == NULL) {
		log_info(
		    "event=reply_dropped id=%s status=%d reason=client_gone",
		    req->id, status);
		req_free(req);
		conn_check_done(srv);
		return;
	}
	hdr = evhttp_request_get_output_headers(req->ev);
	evhttp_add_header(hdr, "Content-Type", content_type);
	evhttp_add_header(hdr, "X-Request-Id", req->id);
	evhttp_add_header(hdr, "Cache-Control", "no-store");
	evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
	if (srv->stopping)
		evhttp_add_header(hdr, "Connection", "close");
	out = evhttp_request_get_output_buffer(req->ev);
	evbuffer_add(out, body, len);
	req_log(req, status, len);
	if (req->conn != NULL) {
		req->conn->current = NULL;
		evhttp_request_set_on_complete_cb(req->ev, on_complete,
						  req->conn);
	}
	evhttp_send_reply(req->ev, status, http_reason(status), NULL);
	req_free(req);
	conn_check_done(srv);
}

void
http_reply_json(struct http_req *req, int status, json_t *j)
{
	char *text = j != NULL ? fhir_dump(j) : NULL;

	json_decref(j);
	if (text == NULL) {
		static const char oom[] =
		    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
		    "\"severity\":\"fatal\",\"code\":\"exception\"}]}";

		http_reply(req, policy_answer(POLICY_INTERNAL)->status,
			   "application/fhir+json; charset=utf-8", oom,
			   sizeof(oom) - 1);
		return;
	}
	http_reply(req, status, "application/fhir+json; charset=utf-8", text,
		   strlen(text));
	free(text);
}

void
http_reply_outcome(struct http_req *req, int status, const char *severity,
		   const char *code, const char *expression, const char *fmt,
		   ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_reply_json(
	    req, status,
	    fhir_outcome_one(severity, code, expression, "%s", msg));
}

void
http_reply_error(struct http_req *req, enum policy_kind kind,
		 const char *expression, const char *fmt, ...)
{
	const struct policy_answer *a = policy_answer(kind);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->retry_after != NULL)
		http_req_add_header(req, "Retry-After", a->retry_after);
	http_reply_json(
	    req, a->status,
	    fhir_outcome_one(FHIR_ERROR, a->code, expression, "%s", msg));
}

void
http_req_defer(struct http_req *req)
{
	if (!req->deferred) {
		req->deferred = true;
		req->srv->pending++;
	}
}

bool
http_req_alive(const struct http_req *req)
{
	return !req->gone && req->ev != NULL;
}

void
http_req_add_header(struct http_req *req, const char *name, const char *value)
{
	if (req->ev != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req->ev),
				  name, value);
}

const char *
http_req_method(const struct http_req *req)
{
	if (req->method_name != NULL)
		return req->method_name;
	if (req->ev == NULL)
		return "-";
	switch (evhttp_request_get_command(req->ev)) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "-";
}

const char *
http_req_path(const struct http_req *req)
{
	return req->path;
}

const char *
http_req_query(const struct http_req *req, const char *name)
{
	if (!req->query_parsed)
		return NULL;
	return evhttp_find_header(&req->query, name);
}

const char *
http_req_header(const struct http_req *req, const char *name)
{
	if (req->ev == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(req->ev),
				  name);
}

const char *
http_req_id(const struct http_req *req)
{
	return req->id;
}

const struct tls_peer *
http_req_peer(const struct http_req *req)
{
	return req->has_peer ? &req->peer : NULL;
}

const struct config *
http_req_config(const struct http_req *req)
{
	return req->cfg;
}

const char *
http_req_body(struct http_req *req, size_t *len)
{
	*len = req->body_len;
	return req->body;
}

/*
 * The request id is always ours: a client-chosen one would become the id
 * of audit records and logs. The client's own X-Request-Id is kept, made
 * printable and at most 64 characters, only to be logged beside ours.
 */
static void
req_set_id(struct http_req *req)
{
	const char *in = evhttp_find_header(
	    evhttp_request_get_input_headers(req->ev), "X-Request-Id");

	util_uuid(req->id);
	if (in != NULL && *in != '\0')
		log_safe(req->client_id, sizeof(req->client_id), in);
}

/* True when the media type is FHIR JSON in UTF-8. */
static bool
media_type_ok(const char *ct)
{
	static const char *types[] = {"application/fhir+json",
				      "application/json"};
	const char *p;
	size_t n;

	if (ct == NULL)
		return false;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(types); i++) {
		n = strlen(types[i]);
		if (strncasecmp(ct, types[i], n) == 0 &&
		    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			break;
		if (i + 1 == UTIL_ARRAY_LEN(types))
			return false;
	}
	/* Any charset parameter must be UTF-8. */
	for (p = strchr(ct, ';'); p != NULL; p = strchr(p + 1, ';')) {
		const char *q = p + 1;

		while (*q == ' ')
			q++;
		if (strncasecmp(q, "charset=", 8) == 0) {
			q += 8;
			if (*q == '"')
				q++;
			if (strncasecmp(q, "utf-8", 5) != 0)
				return false;
		}
	}
	return true;
}

/* Read the body into req (with a limit). False when a reply was sent. */
static bool
req_take_body(struct http_req *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
	size_t len = evbuffer_get_length(in);

	if (len > req->cfg->max_body) {
		http_reply_error(req, POLICY_TOO_LARGE, NULL,
				 "request body of %zu bytes exceeds the "
				 "limit of %llu bytes",
				 len, (unsigned long long)req->cfg->max_body);
		return false;
	}
	if ((req->body = malloc(len + 1)) == NULL) {
		http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
		return false;
	}
	if (evbuffer_remove(in, req->body, len) != (int)len) {
		http_reply_error(req, POLICY_INTERNAL, NULL,
				 "could not read the request body");
		return false;
	}
	req->body[len] = '\0';
	req->body_len = len;
	return true;
}

/*
 * Reserve the memory a request with a body of len bytes is estimated to
 * need ([limits] max_memory), until it is answered (req_free). 0 when the
 * reservation would go beyond max_memory, else the bytes reserved; a
 * request is admitted whatever its size when nothing else holds memory,
 * so that the largest body allowed can always be sent.
 */
static uint64_t
mem_reserve(struct http_server *srv, uint64_t len, const char *ura)
{
	uint64_t need = len * HTTP_MEM_FACTOR + HTTP_MEM_BASE;

	if (srv->mem_inflight > 0 &&
	    srv->mem_inflight + need > srv->cfg->max_memory) {
		log_warnx("event=memory_limit peer=%s need=%llu "
			  "in_flight=%llu",
			  ura, (unsigned long long)need,
			  (unsigned long long)srv->mem_inflight);
		metrics_add("pzpgw_http_memory_refused_total", "", 1);
		return 0;
	}
	srv->mem_inflight += need;
	metrics_set("pzpgw_http_memory_reserved_bytes", "",
		    (double)srv->mem_inflight);
	return need;
}

static void
mem_release(struct http_server *srv, uint64_t *mem)
{
	if (srv == NULL || *mem == 0)
		return;
	srv->mem_inflight -= *mem;
	*mem = 0;
	metrics_set("pzpgw_http_memory_reserved_bytes", "",
		    (double)srv->mem_inflight);
}

/* A request whose body the gate did not reserve for (chunked, or the
 * admin listener): reserve now that the body is read. */
static bool
req_mem_reserve(struct http_req *req)
{
	if (req->mem == 0)
		req->mem =
		    mem_reserve(req->srv,
				evbuffer_get_length(
				    evhttp_request_get_input_buffer(req->ev)),
				req->has_peer ? req->peer.ura : "-");
	return req->mem > 0;
}

/* Match path against pattern, where '*' stands for one whole path
 * segment (no '/'). */
static bool
glob_segments(const char *pat, const char *path)
{
	while (*pat != '\0') {
		if (*pat == '*') {
			if (*path == '/' || *path == '\0')
				return false;
			while (*path != '\0' && *path != '/')
				path++;
			pat++;
			continue;
		}
		if (*pat++ != *path++)
			return false;
	}
	return *path == '\0';
}

static bool
route_matches_path(const struct http_route *r, const char *path)
{
	if (r->flags & HTTP_ROUTE_PREFIX)
		return strncmp(path, r->path, strlen(r->path)) == 0;
	return glob_segments(r->path, path);
}

/*
 * The route for method and the raw (still percent-encoded) path, or NULL;
 * *path_known says whether another method would have matched, and allow
 * lists those methods.
 */
static const struct http_route *
route_find(const struct http_listener *lst, const char *method,
	   const char *path, bool *path_known, char *allow, size_t allowlen)
{
	allow[0] = '\0';
	*path_known = false;
	for (size_t i = 0; i < lst->nroutes; i++) {
		const struct http_route *r = &lst->routes[i];

		if (!route_matches_path(r, path))
			continue;
		*path_known = true;
		if (strcmp(r->method, method) == 0 ||
		    (strcmp(method, "HEAD") == 0 &&
		     strcmp(r->method, "GET") == 0))
			return r;
		if (strstr(allow, r->method) == NULL)
			snprintf(allow + strlen(allow),
				 allowlen - strlen(allow), "%s%s",
				 allow[0] ? ", " : "", r->method);
	}
	return NULL;
}

/* True when the organisation ura may use route r. */
static bool
route_permitted(const struct config *cfg, const struct http_route *r,
		const char *ura)
{
	const struct config_peer *p;

	if (r->need == 0)
		return true;
	p = config_peer_find(cfg, ura);
	return p != NULL && (p->allow & r->need) == r->need;
}

static void
route(struct http_req *req)
{
	const struct http_listener *lst = req->lst;
	const struct http_route *hit;
	const char *method = http_req_method(req);
	char allow[64];
	bool path_known;

	hit = route_find(lst, method, req->rawpath, &path_known, allow,
			 sizeof(allow));
	if (hit == NULL && path_known) {
		http_req_add_header(req, "Allow", allow);
		http_reply_error(req, POLICY_METHOD, NULL,
				 "method %s is not allowed here (allowed: "
				 "%s)",
				 method, allow);
		return;
	}
	if (hit == NULL) {
		http_reply_error(req, POLICY_NOT_FOUND, NULL,
				 "no such endpoint");
		return;
	}
	if (!lst->admin && hit->need != 0) {
		if (!route_permitted(req->cfg, hit, req->peer.ura)) {
			log_warnx("event=forbidden id=%s peer=%s", req->id,
				  req->peer.ura);
			http_reply_error(req, POLICY_FORBIDDEN, NULL,
					 "organisation %s is not allowed to "
					 "use this endpoint",
					 req->peer.ura);
			return;
		}
	}
	if (hit->flags & HTTP_ROUTE_HAS_BODY) {
		const char *ct = http_req_header(req, "Content-Type");

		if (!media_type_ok(ct)) {
			http_reply_error(
			    req, POLICY_MEDIA_TYPE, NULL,
			    "media type '%s' is not supported: send "
			    "application/fhir+json (UTF-8)",
			    ct ? ct : "(none)");
			return;
		}
		if (req->srv->pending >= req->cfg->max_pending) {
			http_reply_error(req, POLICY_BUSY, NULL,
					 "the gateway is busy; retry later");
			return;
		}
		if (!req_mem_reserve(req)) {
			http_reply_error(req, POLICY_BUSY, NULL,
					 "the gateway is handling too much "
					 "data at once; retry later");
			return;
		}
		if (!req_take_body(req))
			return;
	}
	hit->fn(req, hit->arg);
}

/* An admin request began: its connection leaves the first-request pool
 * and read_timeout bounds the request, as on the org listener. */
static void
admin_conn_begin(struct http_req *req)
{
	struct http_conn *c =
	    admin_conn_find(req->srv, evhttp_request_get_connection(req->ev));

	if (c == NULL)
		return; /* not counted (conn_alloc_failed) */
	if (c->handshaking)
		conn_established(c);
	req->conn = c;
	c->state = CONN_BUSY;
	c->current = req;
	evtimer_del(c->deadline);
}

/* ---- request heads, checked before evhttp sees them ---- */

/*
 * evhttp in libevent 2.1 reads a request's whole body before the request
 * callback runs, sends "100 Continue" on its own, and parses heads
 * leniently (bare LF line ends, folded lines, the first of two
 * Content-Length headers, a signed Content-Length). So the organisation
 * listener keeps what TLS decrypts in http_conn.held and hands evhttp one
 * request at a time: a head only once it is complete and checked, then
 * exactly its body (by Content-Length, or chunk by chunk with the chunk
 * framing checked). A head that is refused (or a chunked body that is
 * malformed or too large) is replaced by a short bodiless request that
 * makes evhttp call on_request, which answers with the refusal and closes
 * the connection; the rest of what the client sends is dropped. After a
 * whole request is passed on, nothing more is until it is answered
 * (on_complete), so a refusal always belongs to the request evhttp is
 * dispatching.
 */
#define GATE_SYNTH    "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
#define GATE_LAST     "0\r\n\r\n"
#define GATE_SIZE_MAX 34 /* a chunk-size line: 16 hex digits and CRLF */

static void gate_refuse(struct http_conn *c, struct evbuffer *out,
			enum policy_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
gate_refuse(struct http_conn *c, struct evbuffer *out, enum policy_kind kind,
	    const char *fmt, ...)
{
	va_list ap;
	bool in_body = c->gate != GATE_HEAD;

	c->rej.status = policy_answer(kind)->status;
	c->rej.kind = kind;
	va_start(ap, fmt);
	vsnprintf(c->rej.msg, sizeof(c->rej.msg), fmt, ap);
	va_end(ap);
	if (!in_body && c->drain > 0) {
		/* A client that sends its body without waiting for 100
		 * Continue would meet a reset, not the answer, if the
		 * connection closed under its upload: the body is dropped
		 * unread (no memory held; read_timeout still bounds it),
		 * then the refusal is answered. */
		evbuffer_drain(c->held, c->drain_head);
		c->left = c->drain;
		c->drain = 0;
		c->gate = GATE_DRAIN;
		return;
	}
	/* In a chunked body evhttp waits for a chunk-size line: end the
	 * body there; otherwise give it a request to dispatch. */
	if (in_body)
		evbuffer_add(out, GATE_LAST, sizeof(GATE_LAST) - 1);
	else
		evbuffer_add(out, GATE_SYNTH, sizeof(GATE_SYNTH) - 1);
	evbuffer_drain(c->held, evbuffer_get_length(c->held));
	c->gate = GATE_DISCARD;
}

/* Whole request passed on: hold the rest until it is answered. */
static void
gate_hold(struct http_conn *c)
{
	c->gate = GATE_HOLD;
}

static bool
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Case-insensitive: does the n bytes at s equal word? */
static bool
span_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* The fields of a head the gate looks at; values point into the head. */
struct gate_head {
	const char *method, *target, *version;
	size_t method_len, target_len, version_len, path_len;
	const char *cl, *te, *ct, *expect;
	size_t cl_len, te_len, ct_len, expect_len;
	unsigned n_cl, n_te, n_ct, n_expect, n_host;
};

/*
 * Parse the request line and header fields of head (n bytes, ending in
 * CRLF CRLF, with no bare LF). Returns NULL or why the head is malformed.
 */
static const char *
gate_parse(const char *head, size_t n, struct gate_head *h)
{
	const char *p = head, *end = head + n - 2, *eol, *sp;

	memset(h, 0, sizeof(*h));
	eol = memchr(p, '\r', (size_t)(end - p));
	if (eol == NULL)
		return "malformed request line";
	h->method = p;
	if ((sp = memchr(p, ' ', (size_t)(eol - p))) == NULL)
		return "malformed request line";
	h->method_len = (size_t)(sp - p);
	h->target = sp + 1;
	if ((sp = memchr(h->target, ' ', (size_t)(eol - h->target))) == NULL)
		return "malformed request line";
	h->target_len = (size_t)(sp - h->target);
	h->version = sp + 1;
	h->version_len = (size_t)(eol - h->version);
	if (h->method_len == 0 || h->target_len == 0)
		return "malformed request line";
	for (size_t i = 0; i < h->method_len; i++)
		if (!is_tchar((unsigned char)h->method[i]))
			return "malformed request line";
	if (!(h->version_len == 8 && (memcmp(h->version, "HTTP/1.1", 8) == 0 ||
				      memcmp(h->version, "HTTP/1.0", 8) == 0)))
		return "malformed request line or unsupported HTTP version";
	h->path_len = h->target_len;
	for (size_t i = 0; i < h->target_len; i++)
		if (h->target[i] == '?') {
			h->path_len = i;
			break;
		}
	for (p = eol + 2; p < end; p = eol + 2) {
		const char *name = p, *v, *ve;
		size_t name_len;

		eol = memchr(p, '\r', (size_t)(end - p) + 1);
		if (*p == ' ' || *p == '\t')
			return "obsolete line folding";
		while (p < eol && is_tchar((unsigned char)*p))
			p++;
		name_len = (size_t)(p - name);
		if (name_len == 0 || p == eol || *p != ':')
			return "malformed header field";
		for (v = p + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t');
		     ve--)
			;
		for (const char *q = v; q < ve; q++) {
			unsigned char ch = (unsigned char)*q;

			if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
				return "control character in a header field";
		}
		if (span_is(name, name_len, "Content-Length")) {
			h->n_cl++;
			h->cl = v;
			h->cl_len = (size_t)(ve - v);
		} else if (span_is(name, name_len, "Transfer-Encoding")) {
			h->n_te++;
			h->te = v;
			h->te_len = (size_t)(ve - v);
		} else if (span_is(name, name_len, "Content-Type")) {
			h->n_ct++;
			h->ct = v;
			h->ct_len = (size_t)(ve - v);
		} else if (span_is(name, name_len, "Expect")) {
			h->n_expect++;
			h->expect = v;
			h->expect_len = (size_t)(ve - v);
		} else if (span_is(name, name_len, "Host")) {
			h->n_host++;
		}
	}
	return NULL;
}

/* NULL, or why a path is refused: a percent-encoded '/' or NUL, or a
 * broken escape, would be read differently by a proxy and by us. */
static const char *
gate_path_check(const char *t, size_t n, size_t path_len)
{
	if (n == 0 || t[0] != '/')
		return "the request target must be an absolute path";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)t[i];
		int hi, lo;

		if (ch <= 0x20 || ch >= 0x7f || ch == '#')
			return "invalid character in the request target";
		if (ch != '%')
			continue;
		if (i + 2 >= n || (hi = hexval((unsigned char)t[i + 1])) < 0 ||
		    (lo = hexval((unsigned char)t[i + 2])) < 0)
			return "malformed percent-encoding in the request "
			       "target";
		if (hi == 0 && lo == 0)
			return "percent-encoded NUL in the request target";
		if (i < path_len && hi == 2 && lo == 0xf)
			return "percent-encoded '/' in the request path";
		i += 2;
	}
	return NULL;
}

/* NULL, or why a Content-Type's charset is refused: it must be UTF-8. */
static const char *
gate_charset_check(const char *ct, size_t n)
{
	const char *p = ct, *end = ct + n;

	while ((p = memchr(p, ';', (size_t)(end - p))) != NULL) {
		const char *v, *ve;

		for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
			;
		if ((size_t)(end - p) < 8 || strncasecmp(p, "charset=", 8) != 0)
			continue;
		v = p + 8;
		ve = memchr(v, ';', (size_t)(end - v));
		if (ve == NULL)
			ve = end;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
			v++;
			ve--;
		}
		if (!span_is(v, (size_t)(ve - v), "utf-8"))
			return "only the UTF-8 charset is accepted";
	}
	return NULL;
}

/* route_find for a path of n bytes that is not NUL-terminated. */
static const struct http_route *
gate_route(struct http_conn *c, const char *method, const char *path, size_t n,
	   bool *path_known, char *allow, size_t allowlen)
{
	char *copy = strndup(path, n);
	const struct http_route *r = NULL;

	*path_known = false;
	allow[0] = '\0';
	if (copy != NULL)
		r = route_find(&c->srv->org, method, copy, path_known, allow,
			       allowlen);
	free(copy);
	return r;
}

/* Check a complete head (n bytes at head) and pass it on, or refuse. */
static void
gate_head(struct http_conn *c, struct evbuffer *out, const char *head, size_t n)
{
	const struct config *cfg = c->srv->cfg;
	const struct http_route *r;
	struct gate_head h;
	struct tls_peer peer;
	const char *why;
	char method[16], allow[64], ct[256];
	bool body_method, path_known;
	uint64_t len = 0;

	c->drain = 0;
	why = gate_parse(head, n, &h);
	memset(&peer, 0, sizeof(peer));
	snprintf(method, sizeof(method), "%.*s",
		 (int)(h.method_len < 15 ? h.method_len : 15),
		 h.method_len ? h.method : "-");
	snprintf(c->rej.path, sizeof(c->rej.path), "%.*s",
		 (int)(h.path_len < 127 ? h.path_len : 127),
		 h.path_len ? h.target : "-");
	util_strlcpy(c->rej.method, method, sizeof(c->rej.method));
	if (why != NULL) {
		gate_refuse(c, out, POLICY_BAD_REQUEST, "%s", why);
		return;
	}
	if (h.n_cl > 1 || h.n_te > 1 || h.n_ct > 1 || h.n_expect > 1 ||
	    h.n_host > 1) {
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "a header that must appear once is repeated "
			    "(Content-Length, Transfer-Encoding, "
			    "Content-Type, Expect or Host)");
		return;
	}
	if (h.n_cl == 1) {
		if (h.cl_len == 0 || h.cl_len > 15) {
			gate_refuse(c, out, POLICY_BAD_REQUEST,
				    "malformed Content-Length");
			return;
		}
		for (size_t i = 0; i < h.cl_len; i++) {
			if (h.cl[i] < '0' || h.cl[i] > '9') {
				gate_refuse(c, out, POLICY_BAD_REQUEST,
					    "malformed Content-Length");
				return;
			}
			len = len * 10 + (uint64_t)(h.cl[i] - '0');
		}
	}
	if (h.n_te == 1 && (!span_is(h.te, h.te_len, "chunked") ||
			    h.n_cl == 1 || h.version[7] == '0')) {
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "Transfer-Encoding must be exactly 'chunked', "
			    "without Content-Length, in HTTP/1.1");
		return;
	}
	if (h.n_ct == 1 && (why = gate_charset_check(h.ct, h.ct_len)) != NULL) {
		gate_refuse(c, out, POLICY_BAD_REQUEST, "%s", why);
		return;
	}
	if (h.n_expect == 1 &&
	    !span_is(h.expect, h.expect_len, "100-continue")) {
		gate_refuse(c, out, POLICY_EXPECTATION,
			    "only 'Expect: 100-continue' is supported");
		return;
	}
	if (!(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	      strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	      strcmp(method, "DELETE") == 0 || strcmp(method, "OPTIONS") == 0 ||
	      strcmp(method, "PATCH") == 0)) {
		gate_refuse(c, out, POLICY_METHOD, "method %s is not supported",
			    method);
		return;
	}
	if ((why = gate_path_check(h.target, h.target_len, h.path_len)) !=
	    NULL) {
		gate_refuse(c, out, POLICY_BAD_REQUEST, "%s", why);
		return;
	}
	/* evhttp reads a body only for these; for the others the bytes
	 * would be taken for the next request. */
	body_method = strcmp(method, "POST") == 0 ||
		      strcmp(method, "PUT") == 0 ||
		      strcmp(method, "PATCH") == 0;
	/* From here a refusal of a body the client sends unasked (no
	 * Expect: 100-continue) drops that body before answering. */
	if (body_method && h.n_te == 0 && h.n_expect == 0 &&
	    len <= cfg->max_body) {
		c->drain = len;
		c->drain_head = n;
	}
	if (!body_method && (len > 0 || h.n_te == 1)) {
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "a %s request carries no body", method);
		return;
	}
	r = gate_route(c, method, h.target, h.path_len, &path_known, allow,
		       sizeof(allow));
	if (r == NULL && path_known) {
		util_strlcpy(c->rej.allow, allow, sizeof(c->rej.allow));
		gate_refuse(c, out, POLICY_METHOD,
			    "method %s is not allowed here (allowed: %s)",
			    method, allow);
		return;
	}
	if (r == NULL) {
		gate_refuse(c, out, POLICY_NOT_FOUND, "no such endpoint");
		return;
	}
	if (tls_peer_get(c->ssl, &peer) != GW_OK ||
	    !route_permitted(cfg, r, peer.ura)) {
		gate_refuse(c, out, POLICY_FORBIDDEN,
			    "organisation %s is not allowed to use this "
			    "endpoint",
			    peer.ura);
		return;
	}
	if (body_method && h.n_cl == 0 && h.n_te == 0) {
		gate_refuse(c, out, POLICY_LENGTH_REQUIRED,
			    "send Content-Length or chunked encoding");
		return;
	}
	if (body_method && len > cfg->max_body) {
		gate_refuse(c, out, POLICY_TOO_LARGE,
			    "request body of %llu bytes exceeds the limit of "
			    "%llu bytes",
			    (unsigned long long)len,
			    (unsigned long long)cfg->max_body);
		return;
	}
	if (body_method && (r->flags & HTTP_ROUTE_HAS_BODY)) {
		snprintf(ct, sizeof(ct), "%.*s", (int)h.ct_len,
			 h.ct ? h.ct : "");
		if (!media_type_ok(h.ct ? ct : NULL)) {
			gate_refuse(c, out, POLICY_MEDIA_TYPE,
				    "media type '%s' is not supported: send "
				    "application/fhir+json (UTF-8)",
				    h.ct ? ct : "(none)");
			return;
		}
		/* max_memory is decided before the body is read, from its
		 * declared length; a chunked one is counted once read. */
		if (h.n_te == 0 &&
		    (c->mem = mem_reserve(c->srv, len, peer.ura)) == 0) {
			gate_refuse(c, out, POLICY_BUSY,
				    "the gateway is handling too much data at "
				    "once; retry later");
			return;
		}
	}
	c->drain = 0;
	evbuffer_remove_buffer(c->held, out, n);
	c->chunked_total = 0;
	if (body_method && h.n_te == 1) {
		c->gate = GATE_CHUNK_SIZE;
	} else if (body_method && len > 0) {
		c->left = len;
		c->gate = GATE_BODY;
	} else {
		gate_hold(c);
	}
}

/* In GATE_HEAD: find the end of the head. False while more is needed. */
static bool
gate_find_head(struct http_conn *c, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(c->held);
	size_t limit = (size_t)c->srv->cfg->max_header;
	size_t m = n < limit ? n : limit;
	const char *p;

	if (n == 0)
		return false;
	if ((p = (const char *)evbuffer_pullup(c->held, (ev_ssize_t)m)) ==
	    NULL) {
		gate_refuse(c, out, POLICY_BUSY, "out of memory");
		return true;
	}
	/* Empty lines before a request line are allowed (RFC 9112 2.2). */
	if (c->scanned == 0 && p[0] == '\r') {
		if (m < 2)
			return false;
		if (p[1] == '\n') {
			evbuffer_drain(c->held, 2);
			return true;
		}
	}
	for (size_t i = c->scanned; i < m; i++) {
		if (p[i] == '\0') {
			gate_refuse(c, out, POLICY_BAD_REQUEST,
				    "NUL byte in the request head");
			return true;
		}
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) {
			gate_refuse(c, out, POLICY_BAD_REQUEST,
				    "bare LF line ending in the request head");
			return true;
		}
		if (i > 0 && p[i - 1] == '\r' && p[i] != '\n') {
			gate_refuse(c, out, POLICY_BAD_REQUEST,
				    "bare CR in the request head");
			return true;
		}
		if (p[i] == '\n' && i >= 3 && p[i - 2] == '\n') {
			c->scanned = 0;
			gate_head(c, out, p, i + 1);
			return true;
		}
	}
	if (m >= limit) {
		gate_refuse(c, out, POLICY_HEAD_TOO_LARGE,
			    "request head exceeds %zu bytes", limit);
		return true;
	}
	c->scanned = m;
	return false;
}

/* In GATE_CHUNK_SIZE: check and pass one chunk-size line (hex digits
 * only: no chunk extensions). False while more is needed. */
static bool
gate_chunk_size(struct http_conn *c, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(c->held);
	size_t m = n < GATE_SIZE_MAX ? n : GATE_SIZE_MAX;
	const char *p = (const char *)evbuffer_pullup(c->held, (ev_ssize_t)m);
	const char *cr = p != NULL ? memchr(p, '\r', m) : NULL;
	uint64_t size = 0;
	size_t i, len;

	if (p == NULL || cr == NULL || (size_t)(cr - p) + 1 >= m) {
		if (m < GATE_SIZE_MAX)
			return false;
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "malformed chunked body");
		return true;
	}
	len = (size_t)(cr - p);
	for (i = 0; i < len && hexval((unsigned char)p[i]) >= 0; i++)
		size = size * 16 + (uint64_t)hexval((unsigned char)p[i]);
	if (len == 0 || len > 16 || i != len || cr[1] != '\n') {
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "malformed chunked body");
		return true;
	}
	if (size == 0) {
		evbuffer_drain(c->held, len + 2);
		c->gate = GATE_CHUNK_LAST;
		return true;
	}
	if (size > c->srv->cfg->max_body - c->chunked_total) {
		gate_refuse(c, out, POLICY_TOO_LARGE,
			    "request body exceeds the limit of %llu bytes",
			    (unsigned long long)c->srv->cfg->max_body);
		return true;
	}
	c->chunked_total += size;
	evbuffer_remove_buffer(c->held, out, len + 2);
	c->left = size;
	c->gate = GATE_CHUNK_DATA;
	return true;
}

/* Pass on what the gate allows of c->held into out (evhttp's input). */
static void
gate_pump(struct http_conn *c, struct evbuffer *out)
{
	for (;;) {
		size_t n = evbuffer_get_length(c->held), k;
		const unsigned char *p;

		switch (c->gate) {
		case GATE_HOLD:
			return;
		case GATE_DISCARD:
			evbuffer_drain(c->held, n);
			return;
		case GATE_DRAIN:
			k = n < c->left ? n : (size_t)c->left;
			evbuffer_drain(c->held, k);
			c->left -= k;
			if (c->left > 0)
				return;
			evbuffer_add(out, GATE_SYNTH, sizeof(GATE_SYNTH) - 1);
			c->gate = GATE_DISCARD;
			break;
		case GATE_HEAD:
			if (!gate_find_head(c, out))
				return;
			break;
		case GATE_BODY:
		case GATE_CHUNK_DATA:
			k = n < c->left ? n : (size_t)c->left;
			if (k == 0)
				return;
			evbuffer_remove_buffer(c->held, out, k);
			c->left -= k;
			if (c->left == 0 && c->gate == GATE_BODY)
				gate_hold(c);
			else if (c->left == 0)
				c->gate = GATE_CHUNK_CRLF;
			break;
		case GATE_CHUNK_SIZE:
			if (!gate_chunk_size(c, out))
				return;
			break;
		case GATE_CHUNK_CRLF:
		case GATE_CHUNK_LAST:
			if (n < 2)
				return;
			p = evbuffer_pullup(c->held, 2);
			if (p == NULL || p[0] != '\r' || p[1] != '\n') {
				gate_refuse(c, out, POLICY_BAD_REQUEST,
					    c->gate == GATE_CHUNK_LAST
						? "trailer fields are not "
						  "accepted"
						: "malformed chunked body");
				break;
			}
			if (c->gate == GATE_CHUNK_CRLF) {
				evbuffer_remove_buffer(c->held, out, 2);
				c->gate = GATE_CHUNK_SIZE;
			} else {
				evbuffer_drain(c->held, 2);
				evbuffer_add(out, GATE_LAST,
					     sizeof(GATE_LAST) - 1);
				gate_hold(c);
			}
			break;
		}
	}
}

/*
 * Callback on the TLS bufferevent's input buffer: runs when OpenSSL adds
 * decrypted bytes, before evhttp's read callback. The new bytes (at the
 * end) move to c->held; the gate passes on what it allows.
 */
static void
gate_input_cb(struct evbuffer *in, const struct evbuffer_cb_info *info,
	      void *arg)
{
	struct http_conn *c = arg;
	struct evbuffer *tmp;
	size_t keep;

	if (c->in_gate || info->n_added == 0 || c->srv == NULL ||
	    (tmp = c->srv->scratch) == NULL)
		return;
	c->in_gate = true; /* our own changes below call back here */
	keep = evbuffer_get_length(in) - info->n_added;
	evbuffer_add_buffer(tmp, in);
	evbuffer_remove_buffer(tmp, in, keep);
	evbuffer_add_buffer(c->held, tmp);
	gate_pump(c, in);
	c->in_gate = false;
}

/* The request passed on was answered: let the next one through. */
static void
gate_release(struct http_conn *c)
{
	if (c->gate != GATE_HOLD || c->bev == NULL)
		return;
	c->gate = GATE_HEAD;
	c->scanned = 0;
	c->in_gate = true;
	gate_pump(c, bufferevent_get_input(c->bev));
	c->in_gate = false;
}

/* Put the gate on a new connection's TLS input. False when out of
 * memory. */
static bool
gate_attach(struct http_conn *c, struct bufferevent *bev)
{
	if ((c->held = evbuffer_new()) == NULL)
		return false;
	c->gate_cb =
	    evbuffer_add_cb(bufferevent_get_input(bev), gate_input_cb, c);
	return c->gate_cb != NULL;
}

/* Answer a request the gate refused, and close the connection. */
static void
gate_answer(struct http_req *req, struct http_conn *c)
{
	char reason[200];

	req->method_name = c->rej.method;
	req->path = strdup(c->rej.path);
	if (c->rej.kind == POLICY_METHOD && c->rej.allow[0] != '\0')
		http_req_add_header(req, "Allow", c->rej.allow);
	http_req_add_header(req, "Connection", "close");
	log_warnx("event=%s id=%s peer=%s status=%d reason=\"%s\"",
		  c->rej.kind == POLICY_FORBIDDEN ? "forbidden"
						  : "request_refused",
		  req->id, req->peer.ura, c->rej.status,
		  log_quoted(reason, sizeof(reason), c->rej.msg));
	http_reply_error(req, c->rej.kind, NULL, "%s", c->rej.msg);
}

static void
on_request(struct evhttp_request *ev, void *arg)
{
	struct http_listener *lst = arg;
	struct http_server *srv = lst->srv;
	struct http_req *req;
	const struct evhttp_uri *uri;
	const char *rawpath, *q;

	if ((req = calloc(1, sizeof(*req))) == NULL) {
		evhttp_send_error(ev, policy_answer(POLICY_BUSY)->status, NULL);
		return;
	}
	req->srv = srv;
	req->lst = lst;
	req->ev = ev;
	req->cfg = srv->cfg;
	req->start_ms = util_mono_ms();
	req_set_id(req);
	if (!lst->admin) {
		struct evhttp_connection *evcon =
		    evhttp_request_get_connection(ev);
		struct bufferevent *bev =
		    evhttp_connection_get_bufferevent(evcon);
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		struct http_conn *c =
		    ssl ? SSL_get_ex_data(ssl, conn_ex_index) : NULL;

		if (c == NULL || tls_peer_get(ssl, &req->peer) != GW_OK) {
			/* Only a connection without TLS gets here. */
			log_warnx("event=no_tls_peer id=%s", req->id);
			free(req);
			evhttp_send_error(
			    ev, policy_answer(POLICY_BAD_REQUEST)->status,
			    NULL);
			return;
		}
		req->has_peer = true;
		req->conn = c;
		/* Small replies must not wait for the client's delayed ACK
		 * (Nagle): set once, when the socket first carries a request. */
		if (!c->nodelay) {
			int one = 1;
			evutil_socket_t fd = bufferevent_getfd(bev);

			if (fd >= 0)
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
			c->nodelay = true;
		}
		c->state = CONN_BUSY;
		c->current = req;
		evtimer_del(c->deadline);
		if (c->evcon != evcon) {
			c->evcon = evcon;
			evhttp_connection_set_closecb(evcon, conn_closecb, c);
		}
		if (c->rej.status != 0) {
			gate_answer(req, c);
			return;
		}
		req->mem = c->mem; /* the gate's reservation, if any */
		c->mem = 0;
		/* Nothing is read until this request is answered: evhttp
		 * would abort on input while it answers (EVCON_WRITING);
		 * it enables reading again for the next request. */
		bufferevent_disable(bev, EV_READ);
	} else {
		admin_conn_begin(req);
	}
	uri = evhttp_request_get_evhttp_uri(ev);
	rawpath = uri ? evhttp_uri_get_path(uri) : NULL;
	if (rawpath == NULL || *rawpath == '\0')
		rawpath = "/";
	req->path = evhttp_uridecode(rawpath, 0, NULL);
	req->rawpath = strdup(rawpath);
	if (req->path == NULL || req->rawpath == NULL) {
		http_reply_error(req, POLICY_BAD_REQUEST, NULL,
				 "malformed request path");
		return;
	}
	q = uri ? evhttp_uri_get_query(uri) : NULL;
	/* An empty evkeyvalq (a TAILQ head from keyvalq_struct.h). */
	req->query.tqh_first = NULL;
	req->query.tqh_last = &req->query.tqh_first;
	if (q != NULL) {
		if (evhttp_parse_query_str(q, &req->query) != 0) {
			evhttp_clear_headers(&req->query);
			http_reply_error(req, POLICY_BAD_REQUEST, NULL,
					 "malformed query string");
			return;
		}
	}
	req->query_parsed = true;
	route(req);
}

/* ---- server ---- */

enum gw_err
http_server_new(struct event_base *base, const struct config *cfg,
		struct http_server **out)
{
	struct http_server *srv;

	*out = NULL;
	if (conn_ex_index == -1) {
		conn_ex_index =
		    SSL_get_ex_new_index(0, NULL, NULL, NULL, conn_ex_free);
		if (conn_ex_index == -1)
			return GW_NOMEM;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return GW_NOMEM;
	srv->base = base;
	srv->cfg = cfg;
	if ((srv->scratch = evbuffer_new()) == NULL) {
		free(srv);
		return GW_NOMEM;
	}
	metrics_describe("pzpgw_http_requests_total", METRICS_COUNTER,
			 "HTTP requests answered, by listener, status and "
			 "peer URA.");
	metrics_describe("pzpgw_http_request_duration_seconds",
			 METRICS_HISTOGRAM,
			 "Time from a complete request to its answer.");
	metrics_describe("pzpgw_http_timeouts_total", METRICS_COUNTER,
			 "Connections closed because a request took longer "
			 "than read_timeout.");
	metrics_describe("pzpgw_http_connections", METRICS_GAUGE,
			 "Open connections by listener, in the handshake "
			 "pool or established.");
	metrics_describe("pzpgw_http_handshake_timeouts_total", METRICS_COUNTER,
			 "Connections closed because their handshake (org) or "
			 "first request (admin) took longer than "
			 "handshake_timeout.");
	metrics_describe("pzpgw_http_handshakes_evicted_total", METRICS_COUNTER,
			 "Connections in the handshake pool closed to make "
			 "room for a newer one (max_handshakes).");
	metrics_describe("pzpgw_http_memory_reserved_bytes", METRICS_GAUGE,
			 "Memory the requests being handled are estimated to "
			 "hold (max_memory).");
	metrics_describe("pzpgw_http_memory_refused_total", METRICS_COUNTER,
			 "Requests answered 503 because max_memory was "
			 "reserved by others.");
	metrics_describe("pzpgw_http_accept_errors_total", METRICS_COUNTER,
			 "accept() failures (out of file descriptors), each "
			 "followed by a pause in accepting.");
	*out = srv;
	return GW_OK;
}

static enum gw_err
copy_routes(struct http_listener *lst, const struct http_route *routes)
{
	size_t n = 0;

	while (routes != NULL && routes[n].fn != NULL)
		n++;
	if (n == 0)
		return GW_OK;
	if ((lst->routes = calloc(n, sizeof(*lst->routes))) == NULL)
		return GW_NOMEM;
	memcpy(lst->routes, routes, n * sizeof(*routes));
	lst->nroutes = n;
	return GW_OK;
}

static void
apply_limits(struct http_listener *lst, const struct config *cfg)
{
	uint64_t ms = cfg->write_timeout_ms;
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
			     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
	uint64_t ceiling =
	    lst->admin ? 64 * 1024 : cfg->max_body + HTTP_BODY_SLACK;

	evhttp_set_max_headers_size(lst->evh, (ev_ssize_t)cfg->max_header);
	evhttp_set_max_body_size(lst->evh, (ev_ssize_t)ceiling);
	evhttp_set_timeout_tv(lst->evh, &tv);
}

static enum gw_err
listener_open(struct http_server *srv, struct http_listener *lst, bool admin,
	      const char *address, unsigned port,
	      const struct http_route *routes, char *errbuf, size_t errlen)
{
	evutil_socket_t fd;
	struct sockaddr_storage ss;
	ev_socklen_t sl = sizeof(ss);

	lst->srv = srv;
	lst->admin = admin;
	if (copy_routes(lst, routes) != GW_OK ||
	    (lst->evh = evhttp_new(srv->base)) == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return GW_NOMEM;
	}
	evhttp_set_allowed_methods(
	    lst->evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
			  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
			  EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_default_content_type(lst->evh, NULL);
	evhttp_set_gencb(lst->evh, on_request, lst);
	evhttp_set_bevcb(lst->evh, admin ? admin_bevcb : conn_bevcb, srv);
	if ((lst->backoff_ev =
		 evtimer_new(srv->base, listener_backoff_cb, lst)) == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return GW_NOMEM;
	}
	apply_limits(lst, srv->cfg);
	lst->bound = evhttp_bind_socket_with_handle(lst->evh, address,
						    (ev_uint16_t)port);
	if (lst->bound == NULL) {
		snprintf(errbuf, errlen, "cannot listen on %s port %u%s",
			 address, port, admin ? " (admin)" : "");
		return GW_IO;
	}
	lst->next_all = all_listeners;
	all_listeners = lst;
	evconnlistener_set_error_cb(
	    evhttp_bound_socket_get_listener(lst->bound), listener_error_cb);
	fd = evhttp_bound_socket_get_fd(lst->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			lst->port =
			    ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			lst->port =
			    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	log_info("event=listening listener=%s address=%s port=%u",
		 admin ? "admin" : "org", address, lst->port);
	return GW_OK;
}

enum gw_err
http_server_listen(struct http_server *srv, SSL_CTX *ctx,
		   const struct http_route *org_routes,
		   const struct http_route *admin_routes, char *errbuf,
		   size_t errlen)
{
	enum gw_err err;

	SSL_CTX_up_ref(ctx);
	srv->ctx = ctx;
	err = listener_open(srv, &srv->org, false, srv->cfg->listen_address,
			    srv->cfg->listen_port, org_routes, errbuf, errlen);
	if (err != GW_OK)
		return err;
	if (srv->cfg->admin_port != 0)
		err = listener_open(
		    srv, &srv->admin, true, srv->cfg->admin_address,
		    srv->cfg->admin_port, admin_routes, errbuf, errlen);
	return err;
}

unsigned
http_server_port(const struct http_server *srv, bool admin)
{
	return admin ? srv->admin.port : srv->org.port;
}

void
http_server_reconfigure(struct http_server *srv, const struct config *cfg,
			SSL_CTX *ctx)
{
	srv->cfg = cfg;
	if (ctx != NULL) {
		SSL_CTX_up_ref(ctx);
		SSL_CTX_free(srv->ctx);
		srv->ctx = ctx;
	}
	if (srv->org.evh != NULL)
		apply_limits(&srv->org, cfg);
	if (srv->admin.evh != NULL)
		apply_limits(&srv->admin, cfg);
	listener_update(&srv->org);
	listener_update(&srv->admin);
}

bool
http_server_ready(const struct http_server *srv)
{
	return srv->ctx != NULL && srv->org.bound != NULL && !srv->stopping;
}

unsigned
http_server_pending(const struct http_server *srv)
{
	return srv->pending;
}

static void
conn_check_done(struct http_server *srv)
{
	http_done_fn done;

	if (!srv->stopping || srv->done == NULL)
		return;
	if (srv->org.nconns > 0 || srv->admin.nconns > 0 || srv->pending > 0)
		return;
	done = srv->done;
	srv->done = NULL;
	if (srv->grace != NULL)
		evtimer_del(srv->grace);
	done(srv->done_arg);
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;
	struct http_conn *c, *next;
	http_done_fn done = srv->done;

	log_warnx("event=shutdown_grace_expired connections=%u pending=%u",
		  srv->org.nconns + srv->admin.nconns, srv->pending);
	for (c = srv->org.conns; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
	for (c = srv->admin.conns; c != NULL; c = next) {
		next = c->next;
		if (!c->adopting)
			conn_close(c);
	}
	srv->done = NULL;
	if (done != NULL)
		done(srv->done_arg);
}

void
http_server_shutdown(struct http_server *srv, unsigned grace_ms,
		     http_done_fn done, void *arg)
{
	struct http_conn *c, *next;
	struct timeval tv = {.tv_sec = grace_ms / 1000,
			     .tv_usec = (suseconds_t)(grace_ms % 1000) * 1000};

	srv->stopping = true;
	srv->done = done;
	srv->done_arg = arg;
	if (srv->org.bound != NULL) {
		evhttp_del_accept_socket(srv->org.evh, srv->org.bound);
		srv->org.bound = NULL;
	}
	if (srv->admin.bound != NULL) {
		evhttp_del_accept_socket(srv->admin.evh, srv->admin.bound);
		srv->admin.bound = NULL;
	}
	/* Idle connections go now; those in the middle of a request stay
	 * until it is answered. */
	for (c = srv->org.conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_BUSY)
			continue;
		if (c->state == CONN_NEW && SSL_is_init_finished(c->ssl))
			continue;
		if (c->state == CONN_IDLE &&
		    BIO_number_read(SSL_get_rbio(c->ssl)) != c->bytes_mark)
			continue;
		conn_close(c);
	}
	/* Admin connections between requests (or before their first) go
	 * too; admin_closecb forgets them at once. */
	for (c = srv->admin.conns; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_BUSY && !c->adopting)
			conn_close(c);
	}
	if ((srv->grace = evtimer_new(srv->base, grace_cb, srv)) != NULL)
		evtimer_add(srv->grace, &tv);
	conn_check_done(srv);
}

static void
listener_free(struct http_listener *lst)
{
	for (struct http_listener **p = &all_listeners; *p != NULL;
	     p = &(*p)->next_all) {
		if (*p == lst) {
			*p = lst->next_all;
			break;
		}
	}
	if (lst->backoff_ev != NULL)
		event_free(lst->backoff_ev);
	lst->backoff_ev = NULL;
	if (lst->evh != NULL)
		evhttp_free(lst->evh);
	free(lst->routes);
	lst->evh = NULL;
	lst->routes = NULL;
}

void
http_server_free(struct http_server *srv)
{
	struct http_conn *c, *next;

	if (srv == NULL)
		return;
	/* Connections still open are freed by evhttp_free below; detach
	 * them so their destructor does not reach back into srv. */
	while ((c = srv->org.conns) != NULL) {
		conn_unlink(c);
		c->srv = NULL;
	}
	/* Admin ones are freed by admin_closecb from evhttp_free, or here
	 * when evhttp has not been adopted by them yet. */
	for (c = srv->admin.conns; c != NULL; c = next) {
		next = c->next;
		c->prev = c->next = NULL;
		c->srv = NULL;
		if (c->adopting) {
			bufferevent_decref(c->bev);
			event_free(c->deadline);
			free(c);
		}
	}
	srv->admin.conns = NULL;
	listener_free(&srv->org);
	listener_free(&srv->admin);
	if (srv->grace != NULL)
		event_free(srv->grace);
	SSL_CTX_free(srv->ctx);
	if (srv->scratch != NULL)
		evbuffer_free(srv->scratch);
	free(srv);
}
