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
#include "http_impl.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

static int conn_ex_index = -1;
/* Every bound listener, to find ours from the evhttp that libevent hands
 * the accept error callback. */
static struct http_listener *all_listeners;

static void conn_check_done(struct http_server *srv);

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
	http_gate_detach(c, c->bev);
	http_mem_release(c->srv,
			 &c->mem); /* gone before its request was read */
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
	if (!http_gate_attach(c, bev)) { /* never serve a connection ungated */
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
	http_gate_detach(c, c->bev);
	http_mem_release(c->srv, &c->mem);
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
		http_gate_detach(c, bev);
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
	    (c->deadline = evtimer_new(base, admin_deadline_cb, c)) == NULL ||
	    !http_gate_attach(c, bev)) {
		log_warnx("event=conn_alloc_failed listener=admin");
		if (c != NULL) {
			http_gate_detach(c, bev);
			if (c->deadline != NULL)
				event_free(c->deadline);
		}
		free(c);
		return bev; /* served (ungated), but not counted */
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
	http_mem_release(req->srv, &req->mem);
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
	http_gate_release(c);
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
		 "duration_ms=%llu%s%s",
		 req->id, req->client_id[0] ? " client_request_id=" : "",
		 req->client_id, listener_name(req), ura, http_req_method(req),
		 path, status, req->body_len, out_len, (unsigned long long)ms,
		 req->log_note[0] != '\0' ? " " : "", req->log_note);
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

/* Largest answer sent as one piece: one TLS record. */
#define HTTP_COALESCE_MAX 16384

/* The output of c's connection, NULL without one. */
static struct evbuffer *
http_conn_output(struct http_conn *c)
{
	return c != NULL && c->bev != NULL ? bufferevent_get_output(c->bev)
					   : NULL;
}

/*
 * Make a small answer just queued on an output that held nothing before
 * (queued_before 0) one piece, so that it leaves in one TLS record and
 * one system call: the TLS bufferevent writes each piece of its output
 * (evhttp's headers, the body) as a record of its own, each a write and
 * a wake-up of the client. With something queued before, a write of it
 * may be waiting to be retried with the same buffer: left alone.
 */
static void
http_coalesce(struct evbuffer *o, size_t queued_before)
{
	if (o != NULL && queued_before == 0 &&
	    evbuffer_get_length(o) <= HTTP_COALESCE_MAX)
		(void)evbuffer_pullup(o, -1);
}

void
http_reply(struct http_req *req, int status, const char *content_type,
	   const char *body, size_t len)
{
	struct http_server *srv = req->srv;
	struct evbuffer *out, *conn_out;
	struct evkeyvalq *hdr;
	size_t queued;

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
	conn_out = http_conn_output(req->conn);
	queued = conn_out != NULL ? evbuffer_get_length(conn_out) : 0;
	evhttp_send_reply(req->ev, status, http_reason(status), NULL);
	http_coalesce(conn_out, queued);
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
http_req_query_string(const struct http_req *req)
{
	const struct evhttp_uri *uri;
	const char *q;

	if (req->ev == NULL ||
	    (uri = evhttp_request_get_evhttp_uri(req->ev)) == NULL)
		return "";
	q = evhttp_uri_get_query(uri);
	return q != NULL ? q : "";
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

void
http_req_peer_addr(const struct http_req *req, char *out, size_t n)
{
	struct evhttp_connection *evcon =
	    req->ev != NULL ? evhttp_request_get_connection(req->ev) : NULL;
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (evcon != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	util_strlcpy(out, addr != NULL && addr[0] != '\0' ? addr : "-", n);
}

void
http_req_log_note(struct http_req *req, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->log_note, sizeof(req->log_note), fmt, ap);
	va_end(ap);
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

/* A request whose body the gate did not reserve for (chunked, or the
 * admin listener): reserve now that the body is read. */
static bool
req_mem_reserve(struct http_req *req)
{
	if (req->mem == 0)
		req->mem = http_mem_reserve(
		    req->srv,
		    evbuffer_get_length(
			evhttp_request_get_input_buffer(req->ev)),
		    req->has_peer ? req->peer.ura : "-");
	return req->mem > 0;
}

static void
route(struct http_req *req)
{
	const struct http_listener *lst = req->lst;
	const struct http_route *hit;
	const char *method = http_req_method(req);
	char allow[64];
	bool path_known;

	hit = http_route_find(lst, method, req->rawpath, &path_known, allow,
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
		if (!http_route_permitted(req->cfg, hit, req->peer.ura)) {
			log_warnx("event=forbidden id=%s peer=%s", req->id,
				  req->peer.ura);
			http_reply_error(req, POLICY_FORBIDDEN, NULL,
					 "organisation %s is not allowed to "
					 "use this endpoint",
					 req->peer.ura);
			return;
		}
	}
	if (hit->flags & HTTP_ROUTE_FORM_BODY) {
		const char *ct = http_req_header(req, "Content-Type");
		size_t len = evbuffer_get_length(
		    evhttp_request_get_input_buffer(req->ev));

		if (!http_form_type_ok(ct)) {
			http_reply_error(req, POLICY_MEDIA_TYPE, NULL,
					 "media type '%s' is not supported: "
					 "send application/x-www-form-"
					 "urlencoded",
					 ct ? ct : "(none)");
			return;
		}
		/* A chunked form is only counted once read. */
		if (len > HTTP_FORM_MAX) {
			http_reply_error(req, POLICY_TOO_LARGE, NULL,
					 "a search form of %zu bytes exceeds "
					 "the limit of %d bytes",
					 len, HTTP_FORM_MAX);
			return;
		}
		if (!req_take_body(req))
			return;
	}
	if (hit->flags & HTTP_ROUTE_HAS_BODY) {
		const char *ct = http_req_header(req, "Content-Type");

		if (!http_media_type_ok(ct)) {
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

/*
 * Answer ev with a one-issue OperationOutcome without a struct http_req
 * (none could be made): text is a fixed string without characters that
 * need escaping in JSON. libevent's evhttp_send_error would send an HTML
 * page; it remains only when not even this can be built.
 */
static void
reply_bare(struct evhttp_request *ev, enum policy_kind kind, const char *text)
{
	const struct policy_answer *a = policy_answer(kind);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(ev);
	struct evbuffer *out = evhttp_request_get_output_buffer(ev);

	if (hdr == NULL || out == NULL ||
	    evhttp_add_header(hdr, "Content-Type",
			      "application/fhir+json; charset=utf-8") != 0 ||
	    evhttp_add_header(hdr, "Connection", "close") != 0 ||
	    (a->retry_after != NULL &&
	     evhttp_add_header(hdr, "Retry-After", a->retry_after) != 0) ||
	    evbuffer_add_printf(out,
				"{\"resourceType\":\"OperationOutcome\","
				"\"issue\":[{\"severity\":\"error\",\"code\":"
				"\"%s\",\"diagnostics\":\"%s\"}]}",
				a->code, text) < 0) {
		evhttp_send_error(ev, a->status, NULL);
		return;
	}
	evhttp_send_reply(ev, a->status, http_reason(a->status), NULL);
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
		reply_bare(ev, POLICY_BUSY, "out of memory");
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
			reply_bare(ev, POLICY_BAD_REQUEST,
				   "the organisation listener takes TLS only");
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
		if (req->conn != NULL && req->conn->rej.status != 0) {
			gate_answer(req, req->conn);
			return;
		}
		/* As on the org listener: nothing is read until the answer
		 * (the gate holds a pipelined request meanwhile). */
		bufferevent_disable(evhttp_connection_get_bufferevent(
					evhttp_request_get_connection(ev)),
				    EV_READ);
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
	    lst->admin ? HTTP_ADMIN_BODY_MAX : cfg->max_body + HTTP_BODY_SLACK;

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
