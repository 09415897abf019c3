/*
 * The request gate of both listeners: request heads checked on the raw
 * (decrypted) bytes before libevent's evhttp sees them (strict framing,
 * routing, permission, limits), bodies passed on by their length or chunk
 * by chunk, refusals answered without reading the body, always as an
 * OperationOutcome (evhttp's own refusals are HTML pages).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>

#include "http_impl.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

/* ---- request heads, checked before evhttp sees them ---- */

/* The largest body c's listener takes: the admin listener serves only
 * small GET requests. */
static uint64_t
gate_max_body(const struct http_conn *c)
{
	return c->lst->admin ? HTTP_ADMIN_BODY_MAX : c->srv->cfg->max_body;
}

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
		if (i + 2 >= n ||
		    (hi = util_hexval((unsigned char)t[i + 1])) < 0 ||
		    (lo = util_hexval((unsigned char)t[i + 2])) < 0)
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

/* http_route_find for a path of n bytes that is not NUL-terminated. */
static const struct http_route *
gate_route(struct http_conn *c, const char *method, const char *path, size_t n,
	   bool *path_known, char *allow, size_t allowlen)
{
	char *copy = strndup(path, n);
	const struct http_route *r = NULL;

	*path_known = false;
	allow[0] = '\0';
	if (copy != NULL)
		r = http_route_find(c->lst, method, copy, path_known, allow,
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
	 * Expect: 100-continue) drops that body before answering; a body
	 * somewhat over the limit too (413), so the client sees why; not on
	 * the admin listener, which takes no bodies and answers a declared
	 * one from the head. */
	if (body_method && h.n_te == 0 && h.n_expect == 0 &&
	    (len <= gate_max_body(c) ||
	     (!c->lst->admin && len <= HTTP_DRAIN_MAX))) {
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
	/* The admin listener (loopback, plain HTTP) has no peers. */
	if (!c->lst->admin && (tls_peer_get(c->ssl, &peer) != GW_OK ||
			       !http_route_permitted(cfg, r, peer.ura))) {
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
	if (body_method && len > gate_max_body(c)) {
		gate_refuse(c, out, POLICY_TOO_LARGE,
			    "request body of %llu bytes exceeds the limit of "
			    "%llu bytes",
			    (unsigned long long)len,
			    (unsigned long long)gate_max_body(c));
		return;
	}
	if (body_method && (r->flags & HTTP_ROUTE_FORM_BODY)) {
		snprintf(ct, sizeof(ct), "%.*s", (int)h.ct_len,
			 h.ct ? h.ct : "");
		if (!http_form_type_ok(h.ct ? ct : NULL)) {
			gate_refuse(c, out, POLICY_MEDIA_TYPE,
				    "media type '%s' is not supported: send "
				    "application/x-www-form-urlencoded",
				    h.ct ? ct : "(none)");
			return;
		}
		/* A search form is small: a larger one is refused before
		 * it is read, and it reserves no memory of note. */
		if (len > HTTP_FORM_MAX) {
			gate_refuse(c, out, POLICY_TOO_LARGE,
				    "a search form of %llu bytes exceeds the "
				    "limit of %d bytes",
				    (unsigned long long)len, HTTP_FORM_MAX);
			return;
		}
	}
	if (body_method && (r->flags & HTTP_ROUTE_HAS_BODY)) {
		snprintf(ct, sizeof(ct), "%.*s", (int)h.ct_len,
			 h.ct ? h.ct : "");
		if (!http_media_type_ok(h.ct ? ct : NULL)) {
			gate_refuse(c, out, POLICY_MEDIA_TYPE,
				    "media type '%s' is not supported: send "
				    "application/fhir+json (UTF-8)",
				    h.ct ? ct : "(none)");
			return;
		}
		/* max_memory is decided before the body is read, from its
		 * declared length; a chunked one is counted once read. */
		if (h.n_te == 0 &&
		    (c->mem = http_mem_reserve(c->srv, len, peer.ura)) == 0) {
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

	/* Anything but hex digits before the CR is refused as soon as it
	 * arrives: a bare LF line end would otherwise leave the request
	 * waiting, unanswered, until read_timeout. */
	for (i = 0; p != NULL && i < m && p[i] != '\r'; i++)
		if (util_hexval((unsigned char)p[i]) < 0) {
			gate_refuse(c, out, POLICY_BAD_REQUEST,
				    "malformed chunked body");
			return true;
		}
	if (p == NULL || cr == NULL || (size_t)(cr - p) + 1 >= m) {
		if (m < GATE_SIZE_MAX)
			return false;
		gate_refuse(c, out, POLICY_BAD_REQUEST,
			    "malformed chunked body");
		return true;
	}
	len = (size_t)(cr - p);
	for (i = 0; i < len && util_hexval((unsigned char)p[i]) >= 0; i++)
		size = size * 16 + (uint64_t)util_hexval((unsigned char)p[i]);
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
	if (size > gate_max_body(c) - c->chunked_total) {
		gate_refuse(c, out, POLICY_TOO_LARGE,
			    "request body exceeds the limit of %llu bytes",
			    (unsigned long long)gate_max_body(c));
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
void
http_gate_release(struct http_conn *c)
{
	struct evbuffer *in;

	if (c->gate != GATE_HOLD || c->bev == NULL)
		return;
	c->gate = GATE_HEAD;
	c->scanned = 0;
	c->in_gate = true;
	in = bufferevent_get_input(c->bev);
	/* A socket bufferevent (the admin listener) keeps the end of its
	 * input frozen outside its own reads: open it for what the gate
	 * passes on now. */
	if (c->ssl == NULL)
		evbuffer_unfreeze(in, 0);
	gate_pump(c, in);
	if (c->ssl == NULL)
		evbuffer_freeze(in, 0);
	c->in_gate = false;
}

/* Put the gate on a new connection's input (TLS-decrypted for the org
 * listener). False when out of memory. */
bool
http_gate_attach(struct http_conn *c, struct bufferevent *bev)
{
	if ((c->held = evbuffer_new()) == NULL)
		return false;
	c->gate_cb =
	    evbuffer_add_cb(bufferevent_get_input(bev), gate_input_cb, c);
	return c->gate_cb != NULL;
}

void
http_gate_detach(struct http_conn *c, struct bufferevent *bev)
{
	if (c->gate_cb != NULL && bev != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(bev),
					 c->gate_cb);
	c->gate_cb = NULL;
	if (c->held != NULL)
		evbuffer_free(c->held);
	c->held = NULL;
}
