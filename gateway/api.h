/*
 * The gateway's own endpoints: the CapabilityStatement (built from the
 * routes really served), health, readiness and metrics.
 */
#ifndef GW_API_H
#define GW_API_H

#include <stdbool.h>

#include "buf.h"
#include "http.h"

/* Readiness probe supplied by the daemon: true when the store is
 * writable; reason gets a short word otherwise. */
typedef bool (*api_ready_fn)(void *arg, const char **reason);

struct api {
	struct http_server *srv;	     /* borrowed */
	const struct http_route *org_routes; /* borrowed, for metadata */
	api_ready_fn store_ready;
	void *store_arg;
	int64_t started; /* unix seconds */
	/* Writes a JSON resource as FHIR XML into out (the pull API's
	   writer), or NULL: /fhir/metadata answers JSON only. */
	enum gw_err (*to_xml)(void *arg, const json_t *res, struct buf *out);
	void *xml_arg;
	/* /fhir/metadata's answers as sent, made at the first request of
	   each kind (R4 or STU3, JSON or XML) for the organisation name
	   they carry (meta_name); owned, freed by api_cleanup. */
	char *meta_name;
	struct {
		char *body;
		size_t len;
		bool xml;
	} meta[4];
};

/* Free what the handlers cached in api (loop thread, after the last
 * request); safe on a zeroed struct. */
void api_cleanup(struct api *api);

/* Handlers; arg is a struct api. */
void api_metadata(struct http_req *req, void *arg);
void api_healthz(struct http_req *req, void *arg);
void api_readyz(struct http_req *req, void *arg);
void api_metrics(struct http_req *req, void *arg);

/* The CapabilityStatement for routes (new reference, NULL without
 * memory). */
json_t *api_capability_statement(const struct http_route *routes,
				 const struct config *cfg);

#endif
