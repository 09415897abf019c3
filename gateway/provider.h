/*
 * The PZP Provider API (issue 11): FHIR R4 reads, searches and history
 * over what this gateway received for local receivers, for peers with
 * `allow = pull`, each scoped to what was sent to its own URA, every
 * request audited. Work runs in worker threads of its own, each with its
 * own store reader; the loop thread only hands requests over and answers.
 */
#ifndef GW_PROVIDER_H
#define GW_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "err.h"
#include "http.h"
#include "store.h"

struct event_base;
struct rules_set;
struct workpool;

/* Most worker threads of the pull API. */
#define PROVIDER_MAX_WORKERS 8

struct provider {
	/* Set by the daemon once the store is open; borrowed. */
	struct store *store;
	/* R4 base definitions (the resource types served, the XML writer);
	   borrowed from the intake for the daemon's life. */
	const struct rules_set *r4;
	/* STU3 base definitions (the XML writer of STU3 answers); borrowed
	   like r4; NULL: STU3 answers in JSON only. */
	const struct rules_set *stu3;
	/* The R4 resource type names, sorted, NULL-terminated: the routes'
	   http_route.types. Owned. */
	char **types;
	size_t ntypes;
	/* Key of the paging links' MAC: random per process, so a link
	   outlives neither a restart nor another gateway. */
	unsigned char link_key[32];
	struct workpool *pool; /* NULL: work inline */
};

/* Fill p from the R4 rules (borrowed until provider_cleanup). GW_NOMEM,
 * GW_CRYPTO when no random key can be made. */
enum gw_err provider_init(struct provider *p, const struct rules_set *r4);
/* Stop the workers and release what provider_init made; safe on a
 * zeroed struct. */
void provider_cleanup(struct provider *p);

/* Start n workers (at most PROVIDER_MAX_WORKERS), each opening its own
 * store_reader on p->store, answering through base's loop thread. */
enum gw_err provider_workers_start(struct provider *p, struct event_base *base,
				   unsigned n);
/* Loop thread: answer every queued request, then stop the workers. */
void provider_workers_stop(struct provider *p);

/*
 * The handler of every pull route (arg is a struct provider):
 * GET /fhir/{type}, POST /fhir/{type}/_search, GET /fhir/{type}/{id},
 * GET /fhir/{type}/{id}/_history[/{vid}], GET /fhir/{type}/_history and
 * GET /fhir/_history. Refuses organisations without `allow = pull` (403,
 * audited).
 */
void provider_handle(struct http_req *req, void *arg);

/* api.to_xml: res (a JSON resource, borrowed) as FHIR XML appended to
 * out; arg is a struct provider. GW_INVALID/GW_NOMEM. */
enum gw_err provider_to_xml(void *arg, const json_t *res, struct buf *out);

/* Whether a peer with this view sees a resource of type with profiles
 * (meta.profile values, n of them): [peer] resources and view (NULL:
 * everything). Pure; exposed for the unit tests. */
bool provider_view_allows(const char *resources, const char *view,
			  const char *type, const char *const *profiles,
			  size_t n);

#endif
