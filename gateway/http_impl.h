/*
 * Internals shared by the files of the HTTP layer (http.c: listeners,
 * connections, requests and replies; http_gate.c: the request gate;
 * http_route.c: routes, permissions and admission). Not for other
 * modules: they use http.h.
 */
#ifndef GW_HTTP_IMPL_H
#define GW_HTTP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "http.h"
#include "policy.h"

/*
 * The request gate refuses a declared or chunked body over max_body before
 * libevent reads it; libevent's own ceiling, a little above, stays as a
 * second line.
 */
#define HTTP_BODY_SLACK	    (256 * 1024)
#define HTTP_ADMIN_BODY_MAX (64 * 1024) /* admin listener: GET only */
/* A refused body the client sends unasked is read and dropped, up to
 * this many bytes (or the body limit when larger), so that the client
 * reads the answer instead of a reset; beyond it the connection closes
 * unread. Main listener only. */
#define HTTP_DRAIN_MAX (1024 * 1024)

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
	uint64_t mem;	   /* bytes reserved in srv->mem_inflight */
	char log_note[96]; /* http_req_log_note, "" none */
};

/* ---- http_route.c ---- */

/* True when the media type is FHIR JSON in UTF-8. */
bool http_media_type_ok(const char *ct);
/* True when the media type is application/x-www-form-urlencoded (UTF-8). */
bool http_form_type_ok(const char *ct);
/* Reserve the estimated memory of a body of len bytes ([limits]
 * max_memory); the bytes reserved, or 0 when over the limit. */
uint64_t http_mem_reserve(struct http_server *srv, uint64_t len,
			  const char *ura);
/* Give back *mem (set to 0); srv NULL or *mem 0 is a no-op. */
void http_mem_release(struct http_server *srv, uint64_t *mem);
/* The route for method and the raw path, or NULL; *path_known says
 * whether another method matched, allow lists those methods. */
const struct http_route *http_route_find(const struct http_listener *lst,
					 const char *method, const char *path,
					 bool *path_known, char *allow,
					 size_t allowlen);
/* True when organisation ura may use route r under cfg. */
bool http_route_permitted(const struct config *cfg, const struct http_route *r,
			  const char *ura);

/* ---- http_gate.c ---- */

/* Put the request gate on a new connection's input (TLS-decrypted on
 * the org listener); false when out of memory. */
bool http_gate_attach(struct http_conn *c, struct bufferevent *bev);
/* Take the gate off c's connection (bev: its bufferevent, still alive)
 * and free what it holds; a no-op when none is attached. */
void http_gate_detach(struct http_conn *c, struct bufferevent *bev);
/* The request passed on was answered: let the next one through. */
void http_gate_release(struct http_conn *c);

#endif
