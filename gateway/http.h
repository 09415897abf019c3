/*
 * HTTP layer: libevent evhttp listeners, TLS through OpenSSL bufferevents
 * on the organisation listener, limits and deadlines, routing by method and
 * path with the peer organisation's permissions, FHIR error responses.
 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "config.h"
#include "err.h"
#include "policy.h"
#include "tls.h"

struct http_server;
struct http_req;

typedef void (*http_handler_fn)(struct http_req *req, void *arg);

/* Route flags. */
#define HTTP_ROUTE_PREFIX   0x1u /* path matches as a prefix */
#define HTTP_ROUTE_HAS_BODY 0x2u /* a FHIR JSON body is expected */
/* An application/x-www-form-urlencoded body of at most HTTP_FORM_MAX
 * bytes is expected (FHIR POST _search). */
#define HTTP_ROUTE_FORM_BODY 0x4u
#define HTTP_FORM_MAX	     65536

struct http_route {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* "/fhir/metadata"; "*" matches one path
			       segment; a prefix with HTTP_ROUTE_PREFIX */
	unsigned flags;	    /* HTTP_ROUTE_* */
	unsigned need;	    /* CONFIG_ALLOW_* bits the peer needs; 0: any
				   trusted organisation */
	http_handler_fn fn;
	void *arg;
	/* NULL, or a NULL-terminated list sorted by strcmp: the first '*'
	   segment of path matches only these names (FHIR resource types),
	   so that other paths stay 404 for everyone. Borrowed for the
	   server's life. */
	const char *const *types;
};

/* Called once the server has shut down (all requests answered). */
typedef void (*http_done_fn)(void *arg);

/*
 * A new server on base. cfg is borrowed until http_server_free or the
 * next http_server_reconfigure. Listeners start with http_server_listen.
 */
enum gw_err http_server_new(struct event_base *base, const struct config *cfg,
			    struct http_server **out);

/*
 * Open the organisation listener (mutual TLS with ctx; the server takes a
 * reference on ctx) and, when cfg->admin_port is set, the plain admin
 * listener on cfg->admin_address. Routes are copied; NULL-terminated by a
 * route with fn == NULL. Writes a reason to errbuf on failure.
 */
enum gw_err http_server_listen(struct http_server *srv, SSL_CTX *ctx,
			       const struct http_route *org_routes,
			       const struct http_route *admin_routes,
			       char *errbuf, size_t errlen);

/* Ports actually bound (useful when configured as 0). */
unsigned http_server_port(const struct http_server *srv, bool admin);

/* Swap in a new configuration and TLS context for new connections and
 * requests (SIGHUP). Takes a reference on ctx. */
void http_server_reconfigure(struct http_server *srv, const struct config *cfg,
			     SSL_CTX *ctx);

/*
 * Stop accepting, close idle connections, let requests in flight finish,
 * then call done. Connections still busy after grace_ms are dropped.
 */
void http_server_shutdown(struct http_server *srv, unsigned grace_ms,
			  http_done_fn done, void *arg);

/* Free the server; NULL is a no-op. Call after shutdown completed. */
void http_server_free(struct http_server *srv);

/* True while the server holds a loaded TLS context (readiness). */
bool http_server_ready(const struct http_server *srv);

/* Number of requests being processed (accepted, not yet answered). */
unsigned http_server_pending(const struct http_server *srv);

/* ---- inside a handler ---- */

const char *http_req_method(const struct http_req *req);
/* The decoded path without the query string. */
const char *http_req_path(const struct http_req *req);
/* A query parameter's decoded value, or NULL. Borrowed until the reply. */
const char *http_req_query(const struct http_req *req, const char *name);
/* The query string as sent (still percent-encoded, without '?'), or "".
 * Borrowed until the reply. */
const char *http_req_query_string(const struct http_req *req);
const char *http_req_header(const struct http_req *req, const char *name);
/* The request id (also sent back as X-Request-Id). */
const char *http_req_id(const struct http_req *req);
/* The client's numeric address (without port) into out, "-" when it
 * is not known; on either listener. */
void http_req_peer_addr(const struct http_req *req, char *out, size_t n);
/* Set what req's one log line (event=request, written with the reply)
 * adds at its end: key=value words, never request data, truncated to 95
 * bytes; a later call replaces it. A handler's facts then cost no line
 * of their own. */
void http_req_log_note(struct http_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The verified peer on the organisation listener, NULL on admin. */
const struct tls_peer *http_req_peer(const struct http_req *req);
/* The configuration in force when the request arrived; it stays valid
 * until the request is answered (serve.c frees a replaced configuration
 * only when no deferred request is pending), also in other threads. */
const struct config *http_req_config(const struct http_req *req);
/* The request body, contiguous and NUL-terminated; borrowed until the
 * reply. */
const char *http_req_body(struct http_req *req, size_t *len);

/*
 * Keep the request open after the handler returns; a later http_reply_*
 * answers it. If the client goes away meanwhile, the reply is dropped and
 * only the request's memory is released.
 */
void http_req_defer(struct http_req *req);
/* True when the client connection is still there. */
bool http_req_alive(const struct http_req *req);

/* Add a response header (before replying). */
void http_req_add_header(struct http_req *req, const char *name,
			 const char *value);

/* Answer with body (copied) and content type. Ends the request. */
void http_reply(struct http_req *req, int status, const char *content_type,
		const char *body, size_t len);
/* Answer with JSON (application/fhir+json); takes ownership of j. */
void http_reply_json(struct http_req *req, int status, json_t *j);
/* Answer with an OperationOutcome of one issue. */
void http_reply_outcome(struct http_req *req, int status, const char *severity,
			const char *code, const char *expression,
			const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Answer an error of the given kind (policy.h): its status, an
 * OperationOutcome of one error issue with its code, and its Retry-After
 * when it has one. */
void http_reply_error(struct http_req *req, enum policy_kind kind,
		      const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The standard reason phrase for an HTTP status. */
const char *http_reason(int status);

#endif
