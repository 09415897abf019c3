/* CapabilityStatement, health, readiness and metrics endpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "outcome.h"
#include "metrics.h"
#include "policy.h"
#include "search.h"
#include "util.h"
#include "version.h"

/* Operations the gateway may serve, with their definitions. */
static const struct {
	const char *path; /* route path */
	const char *name;
	const char *definition;
} api_ops[] = {
    {"/fhir/$validate", "validate",
     "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
    {"/fhir/$process-message", "process-message",
     "http://hl7.org/fhir/OperationDefinition/"
     "MessageHeader-process-message"},
};

/* Types a pulling system may read (and vread, and list the history
 * of) beside those it may search: the other resources a PZP message
 * carries, which the searches' references and _include lead to. */
static const char *const api_read_only[] = {
    "Device",	    "Organization",	"Patient",
    "Practitioner", "PractitionerRole", "RelatedPerson",
};

/* True when routes serve the pull API (its routes are limited to FHIR
 * resource types). */
static bool
api_pull_served(const struct http_route *routes)
{
	for (size_t i = 0; routes != NULL && routes[i].fn != NULL; i++)
		if (routes[i].types != NULL)
			return true;
	return false;
}

/* The pull API's part of the CapabilityStatement: formats JSON and XML,
 * each searchable type with its parameters and includes (search.c), the
 * read-only types, and history-system with _since. */
static enum gw_err
add_pull(json_t *cs, json_t *rest)
{
	json_t *res = search_capability(), *fmts, *inter;

	if (res == NULL || !json_is_array(res))
		goto fail;
	for (size_t k = 0; k < UTIL_ARRAY_LEN(api_read_only); k++) {
		bool have = false;
		size_t i;
		json_t *r;

		json_array_foreach(res, i, r)
		{
			const char *t =
			    json_string_value(json_object_get(r, "type"));

			have = have || (t && strcmp(t, api_read_only[k]) == 0);
		}
		if (have)
			continue;
		/* json_array_append_new steals the new object. */
		if (json_array_append_new(
			res, json_pack("{s:s, s:[{s:s}, {s:s}, {s:s}]}", "type",
				       api_read_only[k], "interaction", "code",
				       "read", "code", "vread", "code",
				       "history-instance")) != 0)
			goto fail;
	}
	fmts = json_object_get(cs, "format");
	if (json_array_append_new(fmts, json_string("application/fhir+xml")) !=
		0 ||
	    json_array_append_new(fmts, json_string("xml")) != 0)
		goto fail;
	inter =
	    json_pack("[{s:s, s:s}]", "code", "history-system", "documentation",
		      "GET [base]/_history?_since=T: what arrived for the "
		      "caller since T, oldest first, paged by next links");
	/* json_object_set_new steals the value, also when it fails. */
	if (inter == NULL ||
	    json_object_set_new(rest, "interaction", inter) != 0)
		goto fail;
	if (json_object_set_new(rest, "resource", res) != 0)
		return GW_NOMEM;
	json_object_set_new(
	    rest, "documentation",
	    json_string("PZP gateway: care plans are pushed as FHIR messages "
			"and exchanged between organisations over mutual TLS; "
			"the PZP Provider searches serve what was sent to the "
			"calling organisation (allow = pull), each read "
			"audited."));
	return GW_OK;
fail:
	json_decref(res);
	return GW_NOMEM;
}

json_t *
api_capability_statement(const struct http_route *routes,
			 const struct config *cfg)
{
	json_t *cs, *rest, *ops, *formats;
	char date[32];

	util_rfc3339(util_wall_ms() / 1000, date, sizeof(date));
	formats = json_pack("[s, s]", "application/fhir+json", "json");
	ops = json_array();
	rest = json_pack(
	    "{s:s, s:s, s:{s:b, s:s}}", "mode", "server", "documentation",
	    "PZP gateway: care plans are pushed as FHIR messages and "
	    "exchanged between organisations over mutual TLS.",
	    "security", "cors", 0, "description",
	    "Mutual TLS with UZI server certificates; the organisation "
	    "is identified by the URA number in its certificate.");
	cs =
	    json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s}, s:s, "
		      "s:o}",
		      "resourceType", "CapabilityStatement", "status", "active",
		      "date", date, "kind", "instance", "software", "name",
		      "pzpgw", "version", PZPGW_VERSION, "implementation",
		      "description", cfg->name ? cfg->name : "pzpgw gateway",
		      "fhirVersion", "4.0.1", "format", formats);
	if (cs == NULL || rest == NULL || ops == NULL)
		goto fail;
	for (size_t i = 0; routes != NULL && routes[i].fn != NULL; i++) {
		for (size_t k = 0; k < UTIL_ARRAY_LEN(api_ops); k++) {
			if (strcmp(routes[i].path, api_ops[k].path) != 0)
				continue;
			/* json_array_append_new steals the operation. */
			if (json_array_append_new(
				ops, json_pack("{s:s, s:s}", "name",
					       api_ops[k].name, "definition",
					       api_ops[k].definition)) != 0)
				goto fail;
		}
	}
	if (json_array_size(ops) > 0)
		json_object_set(rest, "operation", ops);
	if (api_pull_served(routes) && add_pull(cs, rest) != GW_OK)
		goto fail;
	json_decref(ops);
	ops = NULL;
	/* json_pack "o" steals rest. */
	if (json_object_set_new(cs, "rest", json_pack("[o]", rest)) != 0) {
		rest = NULL;
		goto fail;
	}
	return cs;
fail:
	json_decref(ops);
	json_decref(rest);
	json_decref(cs);
	return NULL;
}

/* Whether a request asks for XML: _format, else Accept naming an XML
 * type before any JSON one. */
static bool
api_wants_xml(struct http_req *req)
{
	const char *f = http_req_query(req, "_format");
	const char *a = http_req_header(req, "Accept");
	const char *x, *j;

	if (f != NULL)
		return strstr(f, "xml") != NULL;
	if (a == NULL || (x = strstr(a, "xml")) == NULL)
		return false;
	j = strstr(a, "json");
	return j == NULL || x < j;
}

void
api_cleanup(struct api *api)
{
	free(api->meta_name);
	api->meta_name = NULL;
	for (size_t i = 0; i < UTIL_ARRAY_LEN(api->meta); i++) {
		free(api->meta[i].body);
		api->meta[i].body = NULL;
	}
}

/* Make the answer of kind k (bit 0: STU3, bit 1: XML) into api->meta[k];
 * false without memory. */
static bool
api_meta_make(struct api *api, const struct config *cfg, unsigned k)
{
	json_t *cs = api_capability_statement(api->org_routes, cfg);
	struct buf out;
	char *text;

	if (cs == NULL)
		return false;
	/* A client that asks for STU3 (or a peer with fhir = stu3) is
	 * answered in STU3 by the pull API (provider.c): say so here. */
	if ((k & 1u) != 0)
		json_object_set_new(cs, "fhirVersion", json_string("3.0.2"));
	buf_init(&out, 16 << 20);
	if ((k & 2u) != 0 && api->to_xml != NULL &&
	    api->to_xml(api->xml_arg, cs, &out) == GW_OK && out.data != NULL) {
		api->meta[k].body = buf_steal(&out, &api->meta[k].len);
		api->meta[k].xml = true;
		json_decref(cs);
		return true;
	}
	buf_cleanup(&out);
	text = fhir_dump(cs);
	json_decref(cs);
	if (text == NULL)
		return false;
	api->meta[k].body = text;
	api->meta[k].len = strlen(text);
	api->meta[k].xml = false;
	return true;
}

/*
 * The statement depends only on the routes (fixed), the organisation
 * name (a reload may change it) and the kind: made once per kind, it
 * is sent as it was made (building it took about 0.2 ms of CPU, more
 * than a search), and its date is when it was made.
 */
void
api_metadata(struct http_req *req, void *arg)
{
	struct api *api = arg;
	const struct config *cfg = http_req_config(req);
	const struct tls_peer *peer = http_req_peer(req);
	const char *name = cfg->name != NULL ? cfg->name : "";
	unsigned k = 0;

	if (config_fhir_stu3(peer != NULL ? config_peer_find(cfg, peer->ura)
					  : NULL,
			     http_req_header(req, "Accept")))
		k |= 1u;
	if (api->to_xml != NULL && api_wants_xml(req))
		k |= 2u;
	if (api->meta_name == NULL || strcmp(api->meta_name, name) != 0) {
		api_cleanup(api);
		if ((api->meta_name = strdup(name)) == NULL) {
			http_reply_error(req, POLICY_BUSY, NULL,
					 "out of memory");
			return;
		}
	}
	if (api->meta[k].body == NULL && !api_meta_make(api, cfg, k)) {
		http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
		return;
	}
	http_reply(req, 200,
		   api->meta[k].xml ? "application/fhir+xml; charset=utf-8"
				    : "application/fhir+json; charset=utf-8",
		   api->meta[k].body, api->meta[k].len);
}

static void
reply_text(struct http_req *req, int status, const char *text)
{
	http_reply(req, status, "text/plain; charset=utf-8", text,
		   strlen(text));
}

void
api_healthz(struct http_req *req, void *arg)
{
	reply_text(req, 200, "ok\n");
}

void
api_readyz(struct http_req *req, void *arg)
{
	struct api *api = arg;
	const char *reason = NULL;
	char text[128];

	if (!http_server_ready(api->srv))
		reason = "listener";
	else if (api->store_ready != NULL &&
		 !api->store_ready(api->store_arg, &reason) && reason == NULL)
		reason = "store";
	if (reason != NULL) {
		const struct policy_answer *a = policy_answer(POLICY_BUSY);

		snprintf(text, sizeof(text), "not ready: %s\n", reason);
		http_req_add_header(req, "Retry-After", a->retry_after);
		reply_text(req, a->status, text);
		return;
	}
	reply_text(req, 200, "ready\n");
}

static void
cert_expiry(const char *name, const char *path)
{
	char labels[128] = "";
	int64_t left;

	if (path == NULL || strncmp(path, "pkcs11:", 7) == 0)
		return;
	if (tls_cert_file_expiry(path, &left) != GW_OK)
		return;
	metrics_label(labels, sizeof(labels), "certificate", name);
	metrics_set("pzpgw_certificate_expiry_days", labels,
		    (double)left / 86400.0);
}

void
api_metrics(struct http_req *req, void *arg)
{
	struct api *api = arg;
	const struct config *cfg = http_req_config(req);
	struct buf out;

	metrics_describe("pzpgw_certificate_expiry_days", METRICS_GAUGE,
			 "Days until a configured certificate expires "
			 "(negative: expired).");
	metrics_describe("pzpgw_up_seconds", METRICS_GAUGE,
			 "Seconds since the gateway started.");
	metrics_clear("pzpgw_certificate_expiry_days");
	cert_expiry("listen", cfg->tls_cert);
	cert_expiry("trust", cfg->tls_trust);
	if (cfg->sign_cert != NULL &&
	    (cfg->tls_cert == NULL ||
	     strcmp(cfg->sign_cert, cfg->tls_cert) != 0))
		cert_expiry("signing", cfg->sign_cert);
	metrics_set("pzpgw_up_seconds", "",
		    (double)util_wall_ms() / 1000.0 - (double)api->started);
	buf_init(&out, 16 << 20);
	if (metrics_render(&out) != GW_OK) {
		buf_cleanup(&out);
		reply_text(req, policy_answer(POLICY_INTERNAL)->status,
			   "metrics unavailable\n");
		return;
	}
	http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8",
		   out.data ? out.data : "", out.len);
	buf_cleanup(&out);
}
