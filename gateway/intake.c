/* $validate (and later $process-message) on the organisation listener. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fhir.h"
#include "fjson.h"
#include "intake.h"
#include "log.h"

enum gw_err
intake_init(struct intake *in, const struct config *cfg, char *errbuf,
	    size_t errlen)
{
	static const enum rules_fhir versions[] = {RULES_R4, RULES_STU3};
	enum gw_err err;

	memset(in, 0, sizeof(*in));
	for (size_t i = 0; i < 2; i++) {
		enum rules_fhir v = versions[i];

		if ((in->rules[v] = rules_set_new(v)) == NULL) {
			snprintf(errbuf, errlen, "out of memory");
			err = GW_NOMEM;
			goto fail;
		}
		err =
		    rules_load_dir(in->rules[v], cfg->schemas, errbuf, errlen);
		if (err != GW_OK)
			goto fail;
		if ((err = validate_ctx_new(in->rules[v], &in->validate[v])) !=
		    GW_OK) {
			snprintf(errbuf, errlen, "out of memory");
			goto fail;
		}
	}
	return GW_OK;
fail:
	intake_cleanup(in);
	return err;
}

void
intake_cleanup(struct intake *in)
{
	for (size_t i = 0; i < 2; i++) {
		validate_ctx_free(in->validate[i]);
		rules_set_free(in->rules[i]);
		in->validate[i] = NULL;
		in->rules[i] = NULL;
	}
}

/* The FHIR version a request's Content-Type names (fhirVersion=3.0 is
 * STU3); R4 otherwise. */
static enum rules_fhir
request_fhir(const struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	const char *p = ct ? strstr(ct, "fhirVersion=") : NULL;

	if (p != NULL && strncmp(p + 12, "3.", 2) == 0)
		return RULES_STU3;
	return RULES_R4;
}

/*
 * Parse the request body as FHIR JSON. On failure a 400 with the position
 * has been sent and false returned.
 */
static bool
parse_body(struct http_req *req, struct fj_doc **out)
{
	struct fj_error ferr;
	size_t len;
	const char *body = http_req_body(req, &len);
	enum gw_err err = fj_parse(body, len, 0, out, &ferr);
	json_t *oo;

	if (err == GW_OK)
		return true;
	if (err == GW_NOMEM) {
		http_req_add_header(req, "Retry-After", "5");
		http_reply_outcome(req, 503, FHIR_ERROR, "transient", NULL,
				   "out of memory");
		return false;
	}
	oo = fhir_outcome_new();
	if (oo != NULL)
		fhir_outcome_add(oo, FHIR_ERROR, "structure", NULL,
				 (int)ferr.line, (int)ferr.col,
				 "malformed JSON at line %u column %u: %s",
				 ferr.line, ferr.col, ferr.msg);
	http_reply_json(req, 400, oo);
	return false;
}

/* The value of Parameters.parameter[name] as a resource or a string. */
static const struct fj_node *
parameter(const struct fj_node *params, const char *name, const char **string)
{
	const struct fj_node *list = fj_get(params, "parameter");

	for (const struct fj_node *p = list ? list->u.kids.first : NULL;
	     p != NULL; p = p->next) {
		if (!fj_str_eq(fj_get(p, "name"), name))
			continue;
		if (string != NULL) {
			static const char *keys[] = {"valueUri",
						     "valueCanonical",
						     "valueString", "valueUrl"};

			for (size_t i = 0; i < 4; i++)
				if ((*string = fj_get_str(p, keys[i])) != NULL)
					return p;
		}
		return fj_get(p, "resource");
	}
	return NULL;
}

void
intake_validate(struct http_req *req, void *arg)
{
	struct intake *in = arg;
	enum rules_fhir v = request_fhir(req);
	struct validate_opts opts = {.profile = http_req_query(req, "profile")};
	const struct fj_node *res;
	struct fj_doc *doc = NULL;
	const char *path = http_req_path(req), *rt, *slash;
	json_t *oo;

	if (!parse_body(req, &doc))
		return;
	res = doc->root;
	if (fj_str_eq(fj_get(res, "resourceType"), "Parameters")) {
		const char *profile = NULL;

		if (parameter(res, "profile", &profile) != NULL && profile)
			opts.profile = profile;
		if ((res = parameter(doc->root, "resource", NULL)) == NULL) {
			http_reply_outcome(req, 400, FHIR_ERROR, "required",
					   "Parameters.parameter",
					   "no parameter 'resource' to "
					   "validate");
			fj_doc_free(doc);
			return;
		}
	}
	if ((oo = fhir_outcome_new()) == NULL) {
		fj_doc_free(doc);
		http_reply_outcome(req, 503, FHIR_ERROR, "transient", NULL,
				   "out of memory");
		return;
	}
	/* /fhir/{type}/$validate: the resource must be of that type. */
	rt = fj_get_str(res, "resourceType");
	slash = strchr(path + 6, '/');
	if (slash != NULL && strncmp(path, "/fhir/", 6) == 0 &&
	    (rt == NULL || strlen(rt) != (size_t)(slash - (path + 6)) ||
	     strncmp(rt, path + 6, (size_t)(slash - (path + 6))) != 0))
		fhir_outcome_add(oo, FHIR_ERROR, "invalid", "resourceType",
				 (int)res->line, (int)res->col,
				 "resource type %s does not match the "
				 "endpoint %.*s",
				 rt ? rt : "(none)", (int)(slash - (path + 6)),
				 path + 6);
	if (validate_document(in->validate[v], res, &opts, oo) != GW_OK) {
		json_decref(oo);
		fj_doc_free(doc);
		http_reply_outcome(req, 500, FHIR_ERROR, "exception", NULL,
				   "validation failed internally");
		return;
	}
	if (json_array_size(json_object_get(oo, "issue")) == 0)
		fhir_outcome_add(oo, FHIR_INFORMATION, "informational", NULL, 0,
				 0, "no issues found");
	log_info("event=validate id=%s peer=%s fhir=%s errors=%zu",
		 http_req_id(req), http_req_peer(req)->ura,
		 v == RULES_STU3 ? "stu3" : "r4", fhir_outcome_errors(oo));
	fj_doc_free(doc);
	http_reply_json(req, 200, oo);
}
