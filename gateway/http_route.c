/*
 * HTTP routes and admission: matching a method and raw path to a route,
 * the peer's permission for it, the media type of a body, and the memory
 * a request may hold ([limits] max_memory).
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

/* True when ct is one of the n types, with only a UTF-8 charset. */
static bool
media_type_in(const char *ct, const char *const *types, size_t ntypes)
{
	const char *p;
	size_t n;

	if (ct == NULL)
		return false;
	for (size_t i = 0; i < ntypes; i++) {
		n = strlen(types[i]);
		if (strncasecmp(ct, types[i], n) == 0 &&
		    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '))
			break;
		if (i + 1 == ntypes)
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

/* True when the media type is FHIR JSON in UTF-8. */
bool
http_media_type_ok(const char *ct)
{
	static const char *const types[] = {"application/fhir+json",
					    "application/json"};

	return media_type_in(ct, types, UTIL_ARRAY_LEN(types));
}

/* True when the media type is a URL-encoded form in UTF-8. */
bool
http_form_type_ok(const char *ct)
{
	static const char *const types[] = {
	    "application/x-www-form-urlencoded"};

	return media_type_in(ct, types, UTIL_ARRAY_LEN(types));
}

/*
 * Reserve the memory a request with a body of len bytes is estimated to
 * need ([limits] max_memory), until it is answered (req_free). 0 when the
 * reservation would go beyond max_memory, else the bytes reserved; a
 * request is admitted whatever its size when nothing else holds memory,
 * so that the largest body allowed can always be sent.
 */
uint64_t
http_mem_reserve(struct http_server *srv, uint64_t len, const char *ura)
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

void
http_mem_release(struct http_server *srv, uint64_t *mem)
{
	if (srv == NULL || *mem == 0)
		return;
	srv->mem_inflight -= *mem;
	*mem = 0;
	metrics_set("pzpgw_http_memory_reserved_bytes", "",
		    (double)srv->mem_inflight);
}

/* True when the n bytes at s are one of types (sorted, NULL-ended). */
static bool
segment_in(const char *const *types, const char *s, size_t n)
{
	size_t lo = 0, hi = 0;

	while (types[hi] != NULL)
		hi++;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(types[mid], s, n);

		if (c == 0 && types[mid][n] == '\0')
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Match path against pattern, where '*' stands for one whole path
 * segment (no '/'); the first one must be in types when given. */
static bool
glob_segments(const char *pat, const char *path, const char *const *types)
{
	while (*pat != '\0') {
		if (*pat == '*') {
			const char *seg = path;

			if (*path == '/' || *path == '\0')
				return false;
			while (*path != '\0' && *path != '/')
				path++;
			if (types != NULL &&
			    !segment_in(types, seg, (size_t)(path - seg)))
				return false;
			types = NULL;
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
	return glob_segments(r->path, path, r->types);
}

/*
 * The route for method and the raw (still percent-encoded) path, or NULL;
 * *path_known says whether another method would have matched, and allow
 * lists those methods.
 */
const struct http_route *
http_route_find(const struct http_listener *lst, const char *method,
		const char *path, bool *path_known, char *allow,
		size_t allowlen)
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
bool
http_route_permitted(const struct config *cfg, const struct http_route *r,
		     const char *ura)
{
	const struct config_peer *p;

	if (r->need == 0)
		return true;
	p = config_peer_find(cfg, ura);
	return p != NULL && (p->allow & r->need) == r->need;
}
