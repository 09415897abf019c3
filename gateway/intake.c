/* $validate (and later $process-message) on the organisation listener. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/sha.h>

#include "buf.h"
#include "canon.h"
#include "outcome.h"
#include "fjson.h"
#include "index.h"
#include "intake.h"
#include "log.h"
#include "message.h"
#include "notify.h"
#include "policy.h"
#include "transform.h"
#include "util.h"
#include "workpool.h"

/* message.c reads URAs into buffers of its own size. */
_Static_assert(MESSAGE_URA_LEN == CONFIG_URA_LEN, "one URA length");
/* One notice per receiver fits (job_notices). */
_Static_assert(STORE_NOTICES_MAX >= MESSAGE_MAX_RECEIVERS, "notices fit");
/* A BSN the index keeps fits in a Task (job_notices). */
_Static_assert(NOTIFY_BSN_MAX >= STORE_BSN_MAX, "one BSN length");

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
	intake_workers_stop(in);
	for (size_t i = 0; i < 2; i++) {
		validate_ctx_free(in->validate[i]);
		rules_set_free(in->rules[i]);
		in->validate[i] = NULL;
		in->rules[i] = NULL;
	}
}

/* The FHIR version a request's Content-Type names (fhirVersion=3.0 is
 * STU3, fhirVersion=4.0 R4); R4 otherwise. *stated says whether it named
 * one. */
static enum rules_fhir
request_fhir(const struct http_req *req, bool *stated)
{
	const char *ct = http_req_header(req, "Content-Type");
	const char *p = ct ? strstr(ct, "fhirVersion=") : NULL;

	*stated = p != NULL;
	if (p != NULL && strncmp(p + 12, "3.", 2) == 0)
		return RULES_STU3;
	return RULES_R4;
}

/*
 * The FHIR version of a message Bundle whose request did not name one,
 * from what only one version has: STU3's MessageHeader.event (a Coding;
 * R4 has eventCoding or eventUri) or top-level receiver, or STU3's
 * Bundle.signature.blob (R4: data). R4 when nothing tells.
 */
static enum rules_fhir
detect_fhir(const struct fj_node *bundle)
{
	const struct fj_node *entry = fj_get(bundle, "entry");
	const struct fj_node *mh =
	    entry != NULL && entry->type == FJ_ARRAY && entry->u.kids.first
		? fj_get(entry->u.kids.first, "resource")
		: NULL;

	if (fj_get(fj_get(bundle, "signature"), "blob") != NULL)
		return RULES_STU3;
	if (fj_str_eq(fj_get(mh, "resourceType"), "MessageHeader") &&
	    (fj_get(mh, "event") != NULL || fj_get(mh, "receiver") != NULL))
		return RULES_STU3;
	return RULES_R4;
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

/* ---- $process-message ---- */

/* A request waiting for its commit. */
struct pending {
	struct http_req *req;
	struct intake *in;
	bool outbound;
	size_t nnotices; /* notices stored with it (the deliverer posts) */
	char peer[CONFIG_URA_LEN + 1];
	char *ident; /* Bundle.identifier value, for a 409; owned */
};

static const char *
status_path(char *out, size_t n, const char *id)
{
	snprintf(out, n, "/fhir/$process-message/%s", id);
	return out;
}

/* The answer given for an accepted message (also kept for duplicates);
 * note (may be NULL) is one more information issue, such as what intake
 * converted. */
static char *
accepted_body(const char *id, size_t nreceivers, bool outbound,
	      const char *note)
{
	char path[160];
	json_t *oo = fhir_outcome_new();
	char *text;

	if (oo == NULL)
		return NULL;
	status_path(path, sizeof(path), id);
	if (outbound)
		fhir_outcome_add(
		    oo, FHIR_INFORMATION, "informational", NULL, 0, 0,
		    "accepted as message %s for %zu receiver%s; "
		    "delivery state at %s",
		    id, nreceivers, nreceivers == 1 ? "" : "s", path);
	else
		fhir_outcome_add(oo, FHIR_INFORMATION, "informational", NULL, 0,
				 0, "received and stored as message %s", id);
	if (note != NULL)
		fhir_outcome_add(oo, FHIR_INFORMATION, "informational", NULL, 0,
				 0, "%s", note);
	text = fhir_dump(oo);
	json_decref(oo);
	return text;
}

static void
reply_accepted(struct http_req *req, const struct store_result *res,
	       bool duplicate)
{
	char path[160];
	const char *body = res->answer_body ? res->answer_body : "";

	status_path(path, sizeof(path), res->id);
	http_req_add_header(req, "Location", path);
	http_req_add_header(req, "X-Message-Id", res->id);
	if (duplicate)
		http_req_add_header(req, "X-Duplicate", "true");
	http_reply(req, res->answer_status ? res->answer_status : 202,
		   "application/fhir+json; charset=utf-8", body, strlen(body));
}

/* A second message under an identifier already used for other content
 * (the stored canonical SHA-256 differs): 409 naming the identifier and
 * the message it belongs to; nothing was stored. */
static void
reply_conflict(struct pending *p, const struct store_result *res)
{
	log_warnx("event=conflict id=%s message=%s peer=%s",
		  http_req_id(p->req), res->id, p->peer);
	http_req_add_header(p->req, "X-Message-Id", res->id);
	http_reply_error(p->req, POLICY_CONFLICT, "Bundle.identifier",
			 "Bundle.identifier %.200s was already used for "
			 "message %s with different content; nothing was "
			 "stored (send changed content under a new "
			 "identifier)",
			 p->ident ? p->ident : "", res->id);
}

/* The store could not take the message (submit or commit failed with
 * err): a temporary failure is answered as `temporary` says, a permanent
 * one (a corrupt store, a schema it does not know) 500 without
 * Retry-After (policy_intake). Nothing was stored either way. */
static void
reply_store_failed(struct http_req *req, const char *peer, enum gw_err err,
		   enum policy_kind temporary)
{
	enum policy_kind kind = policy_intake(err, temporary);

	log_warnx("event=accept_failed id=%s peer=%s error=\"%s\" retry=%s",
		  http_req_id(req), peer, gw_strerror(err),
		  kind == temporary ? "yes" : "no");
	if (kind == temporary)
		http_reply_error(req, kind, NULL,
				 "the message could not be stored (%s); "
				 "nothing was accepted, retry later",
				 gw_strerror(err));
	else
		http_reply_error(req, kind, NULL,
				 "the message could not be stored (%s); "
				 "nothing was accepted, and retrying will not "
				 "help until the gateway's operator acts",
				 gw_strerror(err));
}

static void
on_committed(void *arg, const struct store_result *res)
{
	struct pending *p = arg;

	switch (res->err) {
	case GW_OK:
		log_info("event=accepted id=%s message=%s peer=%s "
			 "direction=%s notices=%zu",
			 http_req_id(p->req), res->id, p->peer,
			 p->outbound ? "outbound" : "inbound", p->nnotices);
		reply_accepted(p->req, res, false);
		if ((p->outbound || p->nnotices > 0) && p->in->kick != NULL)
			p->in->kick(p->in->kick_arg);
		break;
	case GW_EXISTS:
		if (res->conflict) {
			reply_conflict(p, res);
			break;
		}
		log_info("event=duplicate id=%s message=%s peer=%s",
			 http_req_id(p->req), res->id, p->peer);
		reply_accepted(p->req, res, true);
		break;
	default:
		reply_store_failed(p->req, p->peer, res->err,
				   POLICY_RETRY_LATER);
		break;
	}
	free(p->ident);
	free(p);
}

/* A receiver is local when this gateway serves it: our own URA, or a
 * peer that pulls from us and has no endpoint elsewhere. */
static bool
receiver_local(const struct config *cfg, const char *ura)
{
	const struct config_peer *p = config_peer_find(cfg, ura);

	if (strcmp(ura, cfg->ura) == 0)
		return true;
	return p != NULL && p->endpoint == NULL &&
	       (p->allow & CONFIG_ALLOW_PULL) != 0;
}

/*
 * Sort the receivers into local and remote ones. Problems (no route,
 * both kinds in one message) go to oo. Returns true for outbound.
 */
static bool
route_receivers(const struct config *cfg, const struct message_info *info,
		const char **remote, size_t *nremote, json_t *oo)
{
	size_t nlocal = 0;

	*nremote = 0;
	for (size_t i = 0; i < info->nreceivers; i++) {
		const char *ura = info->receivers[i];
		const struct config_peer *p = config_peer_find(cfg, ura);
		char expr[160];

		if (receiver_local(cfg, ura)) {
			nlocal++;
		} else if (p != NULL && p->endpoint != NULL) {
			remote[(*nremote)++] = ura;
		} else {
			snprintf(expr, sizeof(expr),
				 "Bundle.entry[0].resource.ofType("
				 "MessageHeader).destination[%zu].receiver",
				 i);
			fhir_outcome_add(oo, FHIR_ERROR, "not-found", expr, 0,
					 0,
					 "no route to receiver %s: this "
					 "gateway neither serves it nor knows "
					 "the gateway that does",
					 ura);
		}
	}
	if (nlocal > 0 && *nremote > 0)
		fhir_outcome_add(oo, FHIR_ERROR, "not-supported",
				 "Bundle.entry[0].resource.ofType("
				 "MessageHeader).destination",
				 0, 0,
				 "receivers served here and receivers served "
				 "by other gateways cannot share one message: "
				 "send them separately");
	return *nremote > 0;
}

static void
reply_invalid(struct http_req *req, int status, json_t *oo)
{
	log_info("event=rejected id=%s peer=%s status=%d errors=%zu",
		 http_req_id(req), http_req_peer(req)->ura, status,
		 fhir_outcome_errors(oo));
	http_reply_json(req, status, oo);
}

/* One notice a job made (job_notices): the Task for receiver. */
struct job_notice {
	char id[40]; /* its message id (a UUID) */
	char receiver[CONFIG_URA_LEN + 1];
	char sha[65];
	struct buf doc;
};

/*
 * A $validate or $process-message request between its arrival and its
 * answer, the one place for its state. The loop thread fills in the input
 * (job_new) and, at the end, answers or submits the result to the store
 * (job_finish); everything between, all work on the document (parse,
 * message checks, routing, signature checks, validation, signing,
 * serialisation), runs in a worker thread (job_run), so that a large or
 * hostile document never holds up the event loop (/healthz, SIGTERM,
 * other organisations). Only the loop thread touches req.
 */
struct intake_job {
	struct workpool_job link; /* in the workers' pool */
	struct http_req *req;
	bool validate_only; /* $validate: answer the outcome, store nothing */
	/* The request body: borrowed from req (http_req_body), whose memory
	 * lasts until the reply, which job_finish sends after job_run. */
	const char *body;
	size_t body_len;
	/*
	 * The configuration the request arrived with, borrowed (a reference,
	 * not a copy): a SIGHUP puts a new one in place for new requests,
	 * and serve.c frees a replaced configuration only when no request is
	 * pending (http_server_pending), while this one is pending from
	 * job_submit (http_req_defer) until job_finish or on_committed
	 * answers it. So the worker may read it, as the loop thread does.
	 */
	const struct config *cfg;
	uint64_t deadline;  /* util_mono_ms(): past it, answer 503 */
	char *profile;	    /* $validate ?profile=; owned, or NULL */
	char *type;	    /* $validate's {type} in /fhir/{type}/$validate;
			      owned, or NULL */
	struct fj_doc *doc; /* owned; parsed by job_run */
	struct message_info info;
	const char *remote[MESSAGE_MAX_RECEIVERS]; /* into info */
	size_t nremote;
	const struct sign_key *key;
	const struct sign_trust *trust;
	/* Where a refused push's findings are counted (job_count_findings)
	   and the rules its profiles are checked against; the intake's,
	   borrowed (they outlive the workers). */
	struct store *store;
	struct rules_set *const *rules;
	enum rules_fhir v;    /* the version worked on (R4 once converted) */
	bool v_stated;	      /* the Content-Type named the version */
	bool converted;	      /* received as STU3, converted to R4 */
	char *report;	      /* transform report (JSON) to store; owned */
	size_t report_issues; /* its number of issues */
	bool outbound;
	bool is_signed;
	char peer[CONFIG_URA_LEN + 1];
	char peer_serial[65]; /* its certificate, for the audit */
	char peer_issuer[257];
	const char *relay; /* the peer's [peer] relay value in cfg, or NULL */
	char reqid[80];
	/* Who signed, as job_verify found: Bundle.signature ("" unsigned)
	 * and a sender signature kept by a relay ("" none). */
	char signer[CONFIG_URA_LEN + 1];
	char kept[CONFIG_URA_LEN + 1];
	/* Results. status 0: bytes/sha/jws are ready to store. */
	int status;
	bool rejected;		 /* invalid document: logged as rejected */
	const char *retry_after; /* static string or NULL */
	json_t *oo;		 /* reply body when status != 0; owned */
	/* Notified pull (job_notices): one Task per local receiver with a
	 * [peer] notify URL; owned. */
	struct job_notice *notices;
	size_t nnotices;
	struct buf bytes;
	char sha[65];
	char *jws;
	/* The received-data index per local receiver of an inbound
	 * message (job_index), committed with it; owned. */
	const unsigned char *secret; /* store_index_secret, borrowed */
	struct index_set *index[MESSAGE_MAX_RECEIVERS];
	size_t nindex;
};

static void
job_free(struct intake_job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nnotices; i++)
		buf_cleanup(&j->notices[i].doc);
	free(j->notices);
	json_decref(j->oo);
	for (size_t i = 0; i < j->nindex; i++)
		index_free(j->index[i]);
	free(j->jws);
	free(j->report);
	free(j->profile);
	free(j->type);
	buf_cleanup(&j->bytes);
	fj_doc_free(j->doc);
	free(j);
}

/* Record an error answer for the loop thread to send. */
static void job_fail(struct intake_job *j, enum policy_kind kind,
		     const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
job_fail(struct intake_job *j, enum policy_kind kind, const char *expression,
	 const char *fmt, ...)
{
	const struct policy_answer *a = policy_answer(kind);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j->status = a->status;
	j->retry_after = a->retry_after;
	json_decref(j->oo);
	j->oo = fhir_outcome_one(FHIR_ERROR, a->code, expression, "%s", msg);
}

/* The request ran out of time at step: log it and put a 503 too-costly
 * in j. */
static void
job_too_costly(struct intake_job *j, const char *step)
{
	log_warnx("event=too_costly id=%s peer=%s step=%s limit_ms=%llu "
		  "bytes=%zu",
		  j->reqid, j->peer, step,
		  (unsigned long long)j->cfg->max_request_ms, j->body_len);
	job_fail(j, POLICY_TOO_COSTLY, NULL,
		 "checking this document took longer than the gateway "
		 "allows (%llu ms); it was abandoned and nothing was stored",
		 (unsigned long long)j->cfg->max_request_ms);
}

/* Whether the request's time (cfg's max_request_time from its arrival)
 * is up; if so the answer, a 503, is in j. Looked at between the steps
 * of job_run, and inside parsing (fj_parse_until) and validation
 * (validate_opts.deadline_ms); the other steps are linear in the body
 * and short beside those two. */
static bool
job_late(struct intake_job *j, const char *step)
{
	if (util_mono_ms() < j->deadline)
		return false;
	job_too_costly(j, step);
	return true;
}

/* Parse the body as FHIR JSON into j->doc. False on failure (the answer,
 * a 400 with the position, is in j). */
static bool
job_parse(struct intake_job *j)
{
	struct fj_error ferr;
	enum gw_err err = fj_parse_until(j->body, j->body_len, 0, j->deadline,
					 &j->doc, &ferr);

	if (err == GW_OK)
		return !job_late(j, "parse");
	if (err == GW_TEMP) {
		job_too_costly(j, "parse");
		return false;
	}
	if (err == GW_NOMEM) {
		job_fail(j, POLICY_BUSY, NULL, "out of memory");
		return false;
	}
	j->status = policy_answer(POLICY_MALFORMED)->status;
	json_decref(j->oo);
	if ((j->oo = fhir_outcome_new()) != NULL)
		fhir_outcome_add(j->oo, FHIR_ERROR,
				 policy_answer(POLICY_MALFORMED)->code, NULL,
				 (int)ferr.line, (int)ferr.col,
				 "malformed JSON at line %u column %u: %s",
				 ferr.line, ferr.col, ferr.msg);
	return false;
}

/* $validate in a job: the resource (or Parameters.parameter[resource])
 * against its profiles; the answer, 200 with the outcome or an error, is
 * in j. */
static void
job_validate_only(struct intake_job *j, struct validate_ctx *vctx)
{
	struct validate_opts opts = {.profile = j->profile,
				     .deadline_ms = j->deadline};
	const struct fj_node *res = j->doc->root;
	const char *rt;
	enum gw_err err;
	json_t *oo;

	if (fj_str_eq(fj_get(res, "resourceType"), "Parameters")) {
		const char *profile = NULL;

		if (parameter(res, "profile", &profile) != NULL && profile)
			opts.profile = profile;
		if ((res = parameter(j->doc->root, "resource", NULL)) == NULL) {
			job_fail(j, POLICY_REQUIRED, "Parameters.parameter",
				 "no parameter 'resource' to validate");
			return;
		}
	}
	/* Only a resource can be validated: an array, a number or an
	 * object without resourceType is a malformed request (400), not a
	 * resource with issues (200). */
	rt = fj_get_str(res, "resourceType");
	if (res->type != FJ_OBJECT || rt == NULL || rt[0] == '\0') {
		job_fail(j, POLICY_MALFORMED,
			 j->doc->root == res ? NULL
					     : "Parameters.parameter.resource",
			 "$validate takes a FHIR resource: a JSON object with "
			 "a resourceType%s, not %s",
			 j->doc->root == res ? " (or a Parameters resource "
					       "with a parameter 'resource')"
					     : "",
			 res->type == FJ_ARRAY	  ? "an array"
			 : res->type == FJ_OBJECT ? "an object without one"
			 : res->type == FJ_STRING ? "a string"
			 : res->type == FJ_NUMBER ? "a number"
			 : res->type == FJ_BOOL	  ? "a boolean"
						  : "null");
		return;
	}
	if ((oo = fhir_outcome_new()) == NULL) {
		job_fail(j, POLICY_BUSY, NULL, "out of memory");
		return;
	}
	/* /fhir/{type}/$validate: the resource must be of that type. */
	if (j->type != NULL && (rt == NULL || strcmp(rt, j->type) != 0))
		fhir_outcome_add(oo, FHIR_ERROR, "invalid", "resourceType",
				 (int)res->line, (int)res->col,
				 "resource type %s does not match the "
				 "endpoint %s",
				 rt ? rt : "(none)", j->type);
	err = validate_document(vctx, res, &opts, oo);
	if (err == GW_TEMP) {
		json_decref(oo);
		job_too_costly(j, "validate");
		return;
	}
	if (err != GW_OK) {
		json_decref(oo);
		job_fail(j, policy_intake(err, POLICY_BUSY), NULL,
			 "validation failed internally");
		return;
	}
	if (json_array_size(json_object_get(oo, "issue")) == 0)
		fhir_outcome_add(oo, FHIR_INFORMATION, "informational", NULL, 0,
				 0, "no issues found");
	j->status = 200;
	json_decref(j->oo);
	j->oo = oo;
}

/* The message checks and the route: MessageHeader, identifier, sender,
 * receivers (message_parse), then local or remote (route_receivers) by
 * j->cfg. False with a 422 in j when the message breaks a rule. */
static bool
job_check_message(struct intake_job *j)
{
	const struct config_peer *cpeer;
	json_t *oo = fhir_outcome_new();
	bool bad;

	if (oo == NULL) {
		job_fail(j, POLICY_BUSY, NULL, "out of memory");
		return false;
	}
	if (message_parse(j->doc->root, &j->info, oo) != GW_OK) {
		bad = true;
	} else if (strcmp(j->info.id_system, STORE_NOTICE_SYSTEM) == 0) {
		/* The store keeps its notices under this system. */
		fhir_outcome_add(oo, FHIR_ERROR, "value",
				 "Bundle.identifier.system", 0, 0,
				 "Bundle.identifier.system %s is reserved for "
				 "the gateway's own notifications",
				 STORE_NOTICE_SYSTEM);
		bad = true;
	} else {
		j->outbound = route_receivers(j->cfg, &j->info, j->remote,
					      &j->nremote, oo);
		bad = fhir_outcome_errors(oo) > 0;
	}
	if (bad) {
		j->status = policy_answer(POLICY_INVALID)->status;
		j->rejected = true;
		json_decref(j->oo);
		j->oo = oo;
		return false;
	}
	json_decref(oo);
	j->is_signed = j->info.signed_r4 || j->info.signed_stu3;
	/* What the peer may relay (job_sender_allowed). */
	cpeer = config_peer_find(j->cfg, j->peer);
	j->relay = cpeer != NULL ? cpeer->relay : NULL;
	return !job_late(j, "message");
}

/* Verify one signature of the message: Bundle.signature (kept false),
 * whose signer must be the TLS peer, or the sender signature a relaying
 * gateway kept (sign_verify_kept), whose signer job_sender_allowed
 * compares with the sender. The signer's URA goes to j. False on failure
 * (the answer is in j); true also when there is no kept signature. */
static bool
job_verify_one(struct intake_job *j, bool kept)
{
	struct sign_verify_opts vo = {.trust = j->trust,
				      .expect_ura = kept ? NULL : j->peer,
				      .skew = INTAKE_SIGN_SKEW};
	const char *what = kept ? "kept sender signature" : "signature";
	struct sign_result res;
	enum gw_err err;

	if (kept)
		err = sign_verify_kept(j->doc->root, &vo, &res);
	else if (j->trust != NULL)
		err = sign_verify(j->doc->root, NULL, &vo, &res);
	else
		err = GW_CONFIG;
	if (err == GW_NOTFOUND) {
		sign_result_cleanup(&res);
		return true;
	}
	if (j->trust == NULL) {
		if (kept)
			sign_result_cleanup(&res);
		job_fail(j, POLICY_UNSUPPORTED, "Bundle.signature",
			 "this gateway does not accept signed messages (no "
			 "trust anchors configured)");
		return false;
	}
	if (err != GW_OK) {
		log_warnx("event=audit action=reject_signature id=%s peer=%s "
			  "which=%s check=%s",
			  j->reqid, j->peer, kept ? "kept" : "bundle",
			  sign_check_name(res.check));
		job_fail(j, policy_verify(err, res.check),
			 kept ? "Bundle.entry.resource.ofType(Provenance)."
				"signature"
			      : "Bundle.signature",
			 "%s check '%s' failed: %s", what,
			 sign_check_name(res.check), res.reason);
		sign_result_cleanup(&res);
		return false;
	}
	if (kept) {
		util_strlcpy(j->kept, res.ura, sizeof(j->kept));
	} else {
		util_strlcpy(j->signer, res.ura, sizeof(j->signer));
		util_hex(res.hash, SIGN_HASH_LEN, j->sha);
		j->jws = res.jws;
		res.jws = NULL;
	}
	sign_result_cleanup(&res);
	return true;
}

/* Verify the signatures a message carries (job_verify_one). False on
 * failure (the answer is in j). */
static bool
job_verify(struct intake_job *j)
{
	if (j->is_signed && !job_verify_one(j, false))
		return false;
	return job_verify_one(j, true);
}

/*
 * The sender rule, the one place that decides whether the TLS peer may
 * send this message in MessageHeader.sender's name (after job_verify
 * checked the signatures). Allowed when
 *  - the sender is the peer itself, or
 *  - the peer is a gateway relaying for the sender: its [peer URA] relay
 *    names the sender (or is "*"), and it signed the message itself
 *    (Bundle.signature verified with the peer's URA);
 * and in both cases a sender signature a relay kept (sign_relay_keep),
 * when there is one, is the sender's own. So a peer's own signature never
 * speaks for another organisation. False with a 403 in j otherwise.
 */
static bool
job_sender_allowed(struct intake_job *j)
{
	const char *sender = j->info.sender, *why = NULL;
	char msg[200];

	if (j->kept[0] != '\0' && strcmp(j->kept, sender) != 0) {
		snprintf(msg, sizeof(msg),
			 "the kept sender signature is by URA %s, not by the "
			 "sender %s",
			 j->kept, sender);
		why = "kept_signer";
	} else if (strcmp(sender, j->peer) == 0) {
		return true;
	} else if (!config_relay_allows(j->relay, sender)) {
		snprintf(msg, sizeof(msg),
			 "sender URA %s is not the URA of your certificate "
			 "(%s), and you may not relay for it here",
			 sender, j->peer);
		why = "not_relay";
	} else if (strcmp(j->signer, j->peer) != 0) {
		snprintf(msg, sizeof(msg),
			 "a message relayed for sender URA %s must carry your "
			 "signature (%s)",
			 sender, j->peer);
		why = "relay_unsigned";
	} else {
		return true;
	}
	log_warnx("event=audit action=reject_sender id=%s peer=%s sender=%s "
		  "reason=%s",
		  j->reqid, j->peer, sender, why);
	job_fail(j, POLICY_FORBIDDEN,
		 "Bundle.entry[0].resource.ofType(MessageHeader).sender", "%s",
		 msg);
	return false;
}

/* A gateway forwarding a message its sender signed keeps that signature
 * beside its own (sign_relay_keep). False on failure (answer in j). */
static bool
job_keep_sender_signature(struct intake_job *j)
{
	char err[256];
	enum gw_err e;

	/* A converted message is not what its sender signed: the sender's
	 * STU3 signature would not verify over the R4 form (job_transform
	 * reports it). */
	if (!j->outbound || !j->is_signed || j->converted ||
	    j->kept[0] != '\0' || strcmp(j->signer, j->info.sender) != 0)
		return true;
	e = sign_relay_keep(j->doc,
			    j->v == RULES_STU3 ? SIGN_FHIR_STU3 : SIGN_FHIR_R4,
			    err, sizeof(err));
	if (e == GW_OK)
		return true;
	if (e == GW_NOMEM)
		job_fail(j, POLICY_BUSY, NULL, "out of memory");
	else
		job_fail(j, POLICY_INVALID, "Bundle.signature",
			 "the sender's signature cannot be kept: %s", err);
	return false;
}

/* Sign what the gateway forwards. False on failure (answer in j). */
static bool
job_sign(struct intake_job *j)
{
	struct sign_opts so = {.fhir = j->v == RULES_STU3 ? SIGN_FHIR_STU3
							  : SIGN_FHIR_R4,
			       .purpose = SIGN_PURPOSE_VERIFICATION};
	struct sign_output out = {0};
	char err[256];

	if (j->key == NULL ||
	    sign_bundle(j->key, j->doc, &so, &out, err, sizeof(err)) != GW_OK) {
		log_warnx("event=sign_failed id=%s reason=\"%s\"", j->reqid,
			  j->key ? err : "no key");
		job_fail(j, POLICY_INTERNAL, NULL,
			 "the gateway could not sign the message");
		sign_output_cleanup(&out);
		return false;
	}
	/* The dedupe hash is of the content as received: job_verify's when
	 * the message came signed (a relay entry added since is not part of
	 * it), else this one (the signature is outside the canonical form). */
	if (j->sha[0] == '\0')
		util_hex(out.hash, SIGN_HASH_LEN, j->sha);
	j->jws = out.jws;
	out.jws = NULL;
	sign_output_cleanup(&out);
	return true;
}

/* Whether c may stand in a rule key: a path's or an invariant key's
 * characters (an extension's URL included), nothing else. */
static bool
finding_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("._-()'/:", c) != NULL;
}

/*
 * The rule a finding broke, never a value from the document: "<code>
 * <key>" with an invariant's key (its message starts "key: "), else
 * "<code> <path>": the element path from the resource type a Bundle
 * entry names (ofType(T)), list indexes dropped, runs of 3 or more
 * digits written '#' (an element name is the document's: a number
 * there could be a BSN), other characters dropped; cut to out's size.
 */
static void
finding_rule(const char *code, const char *expr, const char *msg, char *out,
	     size_t len)
{
	size_t o, k = 0;
	const char *p;
	bool in_type = false; /* inside ofType(T: its ')' is dropped */

	o = (size_t)snprintf(out, len, "%s", code);
	if (o >= len)
		return;
	if (strcmp(code, "invariant") == 0 && msg != NULL) {
		while (k < 32 && msg[k] != '\0' && msg[k] != ':' &&
		       finding_char(msg[k]) && msg[k] != '(')
			k++;
		if (k > 0 && msg[k] == ':') {
			snprintf(out + o, len - o, " %.*s", (int)k, msg);
			return;
		}
	}
	if (expr == NULL || expr[0] == '\0')
		return;
	if ((p = strstr(expr, "ofType(")) != NULL) {
		const char *q;

		while ((q = strstr(p + 1, "ofType(")) != NULL)
			p = q;
		p += 7;
		in_type = true;
	} else
		p = expr;
	out[o++] = ' ';
	while (*p != '\0' && o + 1 < len) {
		if (*p == '[') { /* an index: [n] */
			while (*p != '\0' && *p != ']')
				p++;
			if (*p == ']')
				p++;
			continue;
		}
		if (*p >= '0' && *p <= '9') {
			size_t d = strspn(p, "0123456789");

			if (d >= 3) {
				out[o++] = '#';
				p += d;
				continue;
			}
		}
		/* ofType(T).rest: T, then .rest */
		if (*p == ')' && in_type) {
			in_type = false;
			p++;
			continue;
		}
		if (finding_char(*p))
			out[o++] = *p;
		p++;
	}
	out[o] = '\0';
}

/* The profile a finding names ("... (profile URL)" at the end of its
 * message), when the rules hold it (so it is no text of the document);
 * else "". */
static void
finding_profile(const struct rules_set *set, const char *msg, char *out,
		size_t len)
{
	const char *p = NULL, *q;
	size_t n;

	out[0] = '\0';
	if (msg == NULL || set == NULL)
		return;
	for (q = strstr(msg, " (profile "); q != NULL;
	     q = strstr(q + 1, " (profile "))
		p = q;
	if (p == NULL)
		return;
	p += 10;
	n = strlen(p);
	if (n < 2 || p[n - 1] != ')' || n - 1 >= len)
		return;
	memcpy(out, p, n - 1);
	out[n - 1] = '\0';
	if (rules_structure(set, out) == NULL)
		out[0] = '\0';
}

/*
 * Worker: count the findings of a refused push (its 422
 * OperationOutcome) for `pzpgw report`, per sender (the TLS peer),
 * severity, rule and profile. Never a value: see finding_rule. The
 * store writes the counts every few seconds (store_count_finding).
 */
static void
job_count_findings(struct intake_job *j)
{
	struct store_finding f = {.n = 1};
	json_t *issue;
	size_t i;

	if (j->store == NULL || !j->rejected || j->validate_only ||
	    j->oo == NULL)
		return;
	f.hour = (int64_t)(util_wall_ms() / 3600000);
	util_strlcpy(f.sender, j->peer, sizeof(f.sender));
	json_array_foreach(json_object_get(j->oo, "issue"), i, issue)
	{
		const char *sev =
		    json_string_value(json_object_get(issue, "severity"));
		const char *code =
		    json_string_value(json_object_get(issue, "code"));
		const char *msg =
		    json_string_value(json_object_get(issue, "diagnostics"));
		json_t *ex =
		    json_array_get(json_object_get(issue, "expression"), 0);

		/* the note intake adds to a transform report says nothing
		   about the document */
		if (sev == NULL || code == NULL ||
		    strcmp(sev, FHIR_INFORMATION) == 0)
			continue;
		util_strlcpy(f.severity, sev, sizeof(f.severity));
		finding_rule(code, json_string_value(ex), msg, f.rule,
			     sizeof(f.rule));
		finding_profile(j->rules != NULL ? j->rules[j->v] : NULL, msg,
				f.profile, sizeof(f.profile));
		if (store_count_finding(j->store, &f) == GW_TEMP)
			break; /* full until the writer's next write */
	}
}

/* Validate; false when invalid or validation could not run (answer in
 * j). */
static bool
job_validate(struct intake_job *j, struct validate_ctx *vctx)
{
	/* A valid message's warnings are not answered: not built either. */
	struct validate_opts opts = {.deadline_ms = j->deadline,
				     .quiet_when_valid = true};
	json_t *oo = fhir_outcome_new();
	enum gw_err err = oo != NULL
			      ? validate_document(vctx, j->doc->root, &opts, oo)
			      : GW_NOMEM;

	if (err == GW_TEMP) {
		json_decref(oo);
		job_too_costly(j, "validate");
		return false;
	}
	if (err != GW_OK) {
		json_decref(oo);
		job_fail(j, policy_intake(err, POLICY_RETRY_LATER), NULL,
			 "validation could not run");
		return false;
	}
	if (fhir_outcome_errors(oo) > 0) {
		j->status = policy_answer(POLICY_INVALID)->status;
		j->rejected = true;
		json_decref(j->oo);
		j->oo = oo;
		return false;
	}
	json_decref(oo);
	return true;
}

/* An inbound message: its index for each receiver (all of them local,
 * route_receivers refuses a mix), so that the accept commits it and the
 * message is searchable exactly when acknowledged. An STU3 message is
 * indexed in its R4 form (job_transform). False on failure (answer in
 * j). */
static bool
job_index(struct intake_job *j)
{
	enum gw_err err;

	if (j->outbound)
		return true;
	if (j->secret == NULL) {
		job_fail(j, POLICY_INTERNAL, NULL,
			 "the gateway's store cannot index received data");
		return false;
	}
	for (size_t i = 0; i < j->info.nreceivers; i++) {
		err = index_prepare(j->doc->root, j->info.receivers[i],
				    j->secret, 0, &j->index[j->nindex]);
		if (err != GW_OK) {
			job_fail(j, policy_intake(err, POLICY_BUSY), NULL,
				 "the message could not be indexed (%s)",
				 gw_strerror(err));
			return false;
		}
		j->nindex++;
	}
	return !job_late(j, "index");
}

/* Largest Task accepted from notify_task_write (it is about 2 KB). */
#define INTAKE_NOTICE_MAX (64 * 1024)

/*
 * Notified pull: for an inbound R4 message, a Task (notify.c) for each
 * receiver whose [peer] has a notify URL, stored with the message
 * (store_accept.notices). The patient is the index's BSN (job_index),
 * the one the Task's searches find. Without a BSN no Task can name the
 * patient: no notice then, said in the log. False on failure (answer in
 * j).
 */
static bool
job_notices(struct intake_job *j)
{
	const char *bsn = j->nindex > 0 ? index_get(j->index[0])->bsn : "";
	const char *skip = NULL;
	size_t want = 0;
	enum gw_err err;

	if (j->outbound)
		return true;
	for (size_t i = 0; i < j->info.nreceivers; i++) {
		const struct config_peer *p =
		    config_peer_find(j->cfg, j->info.receivers[i]);

		if (p != NULL && p->notify != NULL)
			want++;
	}
	if (want == 0)
		return true;
	if (bsn == NULL || bsn[0] == '\0')
		skip = "no_bsn";
	if (skip != NULL) {
		log_info("event=notify_skipped id=%s peer=%s receivers=%zu "
			 "reason=%s",
			 j->reqid, j->peer, want, skip);
		return true;
	}
	if ((j->notices = calloc(want, sizeof(*j->notices))) == NULL)
		goto nomem;
	for (size_t i = 0; i < j->info.nreceivers; i++) {
		const char *ura = j->info.receivers[i];
		const struct config_peer *p = config_peer_find(j->cfg, ura);
		struct job_notice *n = &j->notices[j->nnotices];
		struct notify_task t = {.bsn = bsn,
					.requester = j->info.sender,
					.owner = ura,
					.authored_ms = util_wall_ms()};

		if (p == NULL || p->notify == NULL)
			continue;
		util_uuid(n->id);
		util_strlcpy(n->receiver, ura, sizeof(n->receiver));
		buf_init(&n->doc, INTAKE_NOTICE_MAX);
		j->nnotices++;
		t.id = n->id;
		if ((err = notify_task_write(&t, &n->doc, n->sha)) != GW_OK) {
			if (err != GW_NOMEM)
				log_warnx("event=notify_failed id=%s "
					  "receiver=%s error=%s",
					  j->reqid, ura, gw_strerror(err));
			goto nomem;
		}
	}
	return true;
nomem:
	job_fail(j, POLICY_BUSY, NULL, "out of memory");
	return false;
}

/* j->sha: the hex SHA-256 of the canonical form of the document as
 * received (the dedupe key), before job_transform changes it. False on
 * failure (answer in j). */
static bool
job_hash(struct intake_job *j)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	struct buf canon;
	enum gw_err err;

	buf_init(&canon, j->body_len * 2 + 65536);
	err = canon_resource(j->doc->root, &canon, NULL);
	if (err == GW_OK) {
		SHA256((const unsigned char *)canon.data, canon.len, md);
		util_hex(md, sizeof(md), j->sha);
	}
	buf_cleanup(&canon);
	if (err == GW_OK)
		return true;
	job_fail(j, err == GW_NOMEM ? POLICY_BUSY : POLICY_INVALID, NULL,
		 "the message has no canonical form (%s)", gw_strerror(err));
	return false;
}

/* Put the transform report rep in j as the answer: status 422 (rejected)
 * with note (an information issue saying what it is about) appended. */
static void
job_transform_fail(struct intake_job *j, json_t *rep, const char *note)
{
	fhir_outcome_add(rep, FHIR_INFORMATION, "informational", NULL, 0, 0,
			 "%s", note);
	j->status = policy_answer(POLICY_INVALID)->status;
	j->rejected = true;
	json_decref(j->oo);
	j->oo = rep;
}

/*
 * Normalise and, for STU3, convert (issue 12), after the document passed
 * validation in the version it came in: an STU3 message is converted to
 * R4 (xf_convert) and validated again as R4, so the gateway signs, indexes
 * and stores R4 only; xf_normalise runs on every message the gateway
 * signs itself (an R4 message whose signature is kept is left as it came,
 * which the signature covers). Each change goes to the report kept beside
 * the message (j->report). The dedupe hash is taken first (job_hash): a
 * retry of the same content is a duplicate although normalising makes new
 * uuids. False on failure (answer in j: 422 with the report when the
 * conversion refuses or the R4 form is invalid).
 */
static bool
job_transform(struct intake_job *j, struct validate_ctx *const vctx[2])
{
	struct xf_norm_opts no = {.root_profile = NULL, .bundle_id = false};
	json_t *rep;
	enum gw_err err;

	if (j->v != RULES_STU3 && j->is_signed)
		return true;
	if (j->sha[0] == '\0' && !job_hash(j))
		return false;
	if ((rep = fhir_outcome_new()) == NULL)
		goto nomem;
	if ((err = xf_normalise(j->doc, j->v, &no, rep)) != GW_OK) {
		if (err == GW_NOMEM)
			goto nomem;
		job_transform_fail(j, rep,
				   "the message could not be normalised");
		return false;
	}
	if (j->v == RULES_STU3) {
		err = xf_convert(j->doc, RULES_STU3, RULES_R4, rep);
		if (err == GW_OK)
			err = message_convert(j->doc, true, rep);
		if (err == GW_NOMEM)
			goto nomem;
		if (err != GW_OK) {
			log_info("event=transform_refused id=%s peer=%s "
				 "from=stu3 to=r4",
				 j->reqid, j->peer);
			job_transform_fail(
			    j, rep,
			    "the message came as FHIR STU3 and cannot be "
			    "converted to R4, the version this gateway stores; "
			    "nothing was stored");
			return false;
		}
		j->v = RULES_R4;
		j->converted = true;
		if (j->is_signed)
			fhir_outcome_add(
			    rep, FHIR_WARNING, "informational",
			    "Bundle.signature", 0, 0,
			    "the STU3 signature does not cover the R4 form: "
			    "the gateway signs the R4 form instead");
		if (job_late(j, "transform"))
			goto out;
		if (!job_validate(j, vctx[RULES_R4])) {
			if (j->rejected)
				fhir_outcome_add(
				    j->oo, FHIR_INFORMATION, "informational",
				    NULL, 0, 0,
				    "these findings are about the R4 form "
				    "the gateway converted the STU3 message "
				    "to; nothing was stored");
			goto out;
		}
		log_info("event=transformed id=%s peer=%s from=stu3 to=r4 "
			 "notes=%zu",
			 j->reqid, j->peer,
			 json_array_size(json_object_get(rep, "issue")));
	}
	j->report_issues = json_array_size(json_object_get(rep, "issue"));
	if (j->report_issues > 0 && (j->report = fhir_dump(rep)) == NULL)
		goto nomem;
	json_decref(rep);
	return true;
nomem:
	json_decref(rep);
	job_fail(j, POLICY_BUSY, NULL, "out of memory");
	return false;
out:
	json_decref(rep);
	return false;
}

/* All work on the document; any thread, touches only j (and what it
 * borrows: body, cfg, key, trust) and vctx. */
static void
job_work(struct intake_job *j, struct validate_ctx *const vctx[2])
{
	/* Queued behind others past its time: abandoned before any work. */
	if (job_late(j, "queue") || !job_parse(j))
		return;
	if (j->validate_only) {
		job_validate_only(j, vctx[j->v]);
		return;
	}
	/* A message whose request named no version: the one its content
	 * shows (said in the answer). */
	if (!j->v_stated)
		j->v = detect_fhir(j->doc->root);
	if (!job_check_message(j))
		return;
	if (!job_verify(j) || !job_sender_allowed(j) || job_late(j, "verify"))
		return;
	if (!job_validate(j, vctx[j->v]) || !job_transform(j, vctx))
		return;
	/* The gateway signs what it forwards and what an organisation gave
	 * it unsigned; a verified signature of another gateway is kept, and
	 * so is the sender's when it signed what the gateway forwards. */
	if (j->outbound || !j->is_signed || j->converted) {
		if (!job_keep_sender_signature(j))
			return;
		free(j->jws);
		j->jws = NULL;
		if (!job_sign(j) || job_late(j, "sign"))
			return;
	}
	if (!job_index(j))
		return;
	if (fj_dump(j->doc->root, 0, &j->bytes) != GW_OK) {
		job_fail(j, POLICY_BUSY, NULL, "out of memory");
		return;
	}
	(void)job_notices(j);
}

/*
 * The audit records of an inbound message, one "create" per local
 * receiver (idx), written by the store in the accept's transaction:
 * the organisation on the connection with its certificate, the patient,
 * how many resources were indexed. NULL (no records) when n is 0 or out
 * of memory; caller frees.
 */
static struct store_audit_rec *
job_audit_creates(const struct intake_job *j, const struct store_index *idx,
		  size_t n)
{
	struct store_audit_rec *v;

	if (n == 0 || (v = calloc(n, sizeof(*v))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		util_strlcpy(v[i].ura, j->peer, sizeof(v[i].ura));
		util_strlcpy(v[i].cert_serial, j->peer_serial,
			     sizeof(v[i].cert_serial));
		util_strlcpy(v[i].cert_issuer, j->peer_issuer,
			     sizeof(v[i].cert_issuer));
		util_strlcpy(v[i].bsn, idx[i].bsn, sizeof(v[i].bsn));
		util_strlcpy(v[i].interaction, "create",
			     sizeof(v[i].interaction));
		snprintf(v[i].query, sizeof(v[i].query),
			 "POST /fhir/$process-message receiver=%s sender=%s",
			 idx[i].receiver, j->info.sender);
		v[i].count = (unsigned)idx[i].n;
		v[i].status = 202;
		util_strlcpy(v[i].request_id, j->reqid,
			     sizeof(v[i].request_id));
	}
	return v;
}

/* Loop thread: answer a failed job or hand a good one to the store.
 * Frees j. */
static void
job_finish(struct intake *in, struct intake_job *j)
{
	struct http_req *req = j->req;
	struct store_notice notices[STORE_NOTICES_MAX];
	struct pending *p = NULL;
	char id[40], *answer = NULL, note[300] = "";
	enum gw_err err;

	if (j->status != 0) {
		if (j->retry_after != NULL)
			http_req_add_header(req, "Retry-After", j->retry_after);
		if (j->validate_only && j->status == 200)
			log_info("event=validate id=%s peer=%s fhir=%s "
				 "errors=%zu",
				 j->reqid, j->peer,
				 j->v == RULES_STU3 ? "stu3" : "r4",
				 fhir_outcome_errors(j->oo));
		if (j->rejected)
			reply_invalid(req, j->status, j->oo);
		else
			http_reply_json(req, j->status, j->oo);
		j->oo = NULL;
		job_free(j);
		return;
	}
	util_uuid(id);
	if (j->converted) {
		snprintf(note, sizeof(note),
			 "received as FHIR STU3 (%s), converted to R4 and "
			 "stored as R4 with %zu transform note%s "
			 "(pzpgw queue show %s)",
			 j->v_stated ? "Content-Type fhirVersion=3.0"
				     : "detected from its content",
			 j->report_issues, j->report_issues == 1 ? "" : "s",
			 id);
	} else if (j->report_issues > 0) {
		snprintf(note, sizeof(note),
			 "normalised with %zu transform note%s (pzpgw queue "
			 "show %s)",
			 j->report_issues, j->report_issues == 1 ? "" : "s",
			 id);
	}
	answer = accepted_body(id, j->nremote, j->outbound,
			       note[0] != '\0' ? note : NULL);
	if (answer == NULL || (p = calloc(1, sizeof(*p))) == NULL) {
		http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
		goto done;
	}
	p->req = req;
	p->in = in;
	p->outbound = j->outbound;
	p->nnotices = j->nnotices;
	for (size_t i = 0; i < j->nnotices && i < STORE_NOTICES_MAX; i++)
		notices[i] = (struct store_notice){
		    .id = j->notices[i].id,
		    .receiver = j->notices[i].receiver,
		    .doc = j->notices[i].doc.data,
		    .doc_len = j->notices[i].doc.len,
		    .sha256 = j->notices[i].sha,
		};
	util_strlcpy(p->peer, j->peer, sizeof(p->peer));
	if ((p->ident = strdup(j->info.id_value)) == NULL) {
		free(p);
		http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
		goto done;
	}
	{
		struct store_index idx[MESSAGE_MAX_RECEIVERS];
		struct store_audit_rec *audit;
		struct store_accept acc = {
		    .id = id,
		    .direction = j->outbound ? STORE_OUTBOUND : STORE_INBOUND,
		    .sender_ura = j->peer,
		    .bundle_system = j->info.id_system,
		    .bundle_value = j->info.id_value,
		    .patient_key = j->info.patient_key,
		    .fhir_version = j->v == RULES_STU3 ? "3.0.2" : "4.0.1",
		    .doc = j->bytes.data,
		    .doc_len = j->bytes.len,
		    .jws = j->jws,
		    .sha256 = j->sha,
		    .answer_status = 202,
		    .answer_body = answer,
		    .report = j->report,
		    .event = j->info.event,
		    .receivers = j->remote,
		    .nreceivers = j->nremote,
		    .index = idx,
		    .nindex = j->nindex,
		    .notices = j->nnotices > 0 ? notices : NULL,
		    .nnotices = j->nnotices,
		};

		for (size_t i = 0; i < j->nindex; i++)
			idx[i] = *index_get(j->index[i]);
		acc.audit = audit = job_audit_creates(j, idx, j->nindex);
		acc.naudit = audit != NULL ? j->nindex : 0;
		/* A message for local receivers is never stored unaudited. */
		err =
		    j->nindex > 0 && audit == NULL
			? GW_NOMEM
			: store_submit_accept(in->store, &acc, on_committed, p);
		free(audit);
	}
	if (err != GW_OK) {
		free(p->ident);
		free(p);
		if (policy_intake(err, POLICY_BUSY) == POLICY_BUSY)
			http_reply_error(req, POLICY_BUSY, NULL,
					 "the gateway is busy (%s); retry "
					 "later",
					 gw_strerror(err));
		else
			reply_store_failed(req, j->peer, err, POLICY_BUSY);
	}
done:
	free(answer);
	job_free(j);
}

enum gw_err
intake_to_stu3(const struct intake *in, const void *doc, size_t len, char **out,
	       size_t *out_len, size_t *notes, char *errbuf, size_t errlen)
{
	struct sign_opts so = {.fhir = SIGN_FHIR_STU3,
			       .purpose = SIGN_PURPOSE_VERIFICATION};
	json_t *rep = fhir_outcome_new();
	struct fj_doc *d = NULL;
	struct buf b;
	enum gw_err err;

	*out = NULL;
	*out_len = 0;
	*notes = 0;
	buf_init(&b, len * 2 + 65536);
	if (rep == NULL) {
		err = GW_NOMEM;
		goto done;
	}
	if ((err = fj_parse((const char *)doc, len, 0, &d, NULL)) != GW_OK) {
		snprintf(errbuf, errlen, "the stored message is not JSON");
		err = err == GW_NOMEM ? GW_NOMEM : GW_REJECT;
		goto done;
	}
	/* The envelope first: MessageHeader.timestamp takes Bundle.timestamp,
	 * which STU3's Bundle cannot hold. */
	if ((err = message_convert(d, false, rep)) == GW_OK)
		err = xf_convert(d, RULES_R4, RULES_STU3, rep);
	*notes = json_array_size(json_object_get(rep, "issue"));
	if (err != GW_OK) {
		const json_t *last =
		    json_array_get(json_object_get(rep, "issue"), *notes - 1);
		const char *expr = json_string_value(
		    json_array_get(json_object_get(last, "expression"), 0));

		snprintf(errbuf, errlen, "no STU3 form: %s%s%s",
			 *notes > 0 ? json_string_value(
					  json_object_get(last, "diagnostics"))
				    : gw_strerror(err),
			 expr != NULL ? " at " : "", expr != NULL ? expr : "");
		goto done;
	}
	if (in->key == NULL) {
		snprintf(errbuf, errlen, "no signing key");
		err = GW_REJECT;
		goto done;
	}
	if ((err = sign_bundle(in->key, d, &so, NULL, errbuf, errlen)) !=
	    GW_OK) {
		err = err == GW_NOMEM ? GW_NOMEM : GW_REJECT;
		goto done;
	}
	/* buf keeps its data NUL-terminated */
	if ((err = fj_dump(d->root, 0, &b)) != GW_OK)
		goto done;
	*out_len = b.len;
	*out = b.data;
	b.data = NULL;
done:
	buf_cleanup(&b);
	fj_doc_free(d);
	json_decref(rep);
	return err;
}

/* ---- workers (workpool.h) ---- */

/* A worker's context: its own validation context per FHIR version. */
struct intake_worker {
	struct validate_ctx *validate[2];
};

static enum gw_err
worker_init(void *arg, void **wctx)
{
	const struct intake *in = arg;
	struct intake_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return GW_NOMEM;
	for (size_t i = 0; i < 2; i++)
		if (validate_ctx_new(in->rules[i], &w->validate[i]) != GW_OK) {
			validate_ctx_free(w->validate[0]);
			free(w);
			return GW_NOMEM;
		}
	*wctx = w;
	return GW_OK;
}

static void
worker_cleanup(void *arg, void *wctx)
{
	struct intake_worker *w = wctx;

	(void)arg;
	validate_ctx_free(w->validate[0]);
	validate_ctx_free(w->validate[1]);
	free(w);
}

/* Worker (or the loop thread without workers): do j's work, then count
 * the findings when it was refused. */
static void
job_run(struct intake_job *j, struct validate_ctx *const vctx[2])
{
	job_work(j, vctx);
	job_count_findings(j);
}

static void
worker_run(struct workpool_job *link, void *wctx)
{
	struct intake_worker *w = wctx;

	job_run(WORKPOOL_JOB(link, struct intake_job, link), w->validate);
}

static void
worker_finish(struct workpool_job *link, void *arg)
{
	job_finish(arg, WORKPOOL_JOB(link, struct intake_job, link));
}

static const struct workpool_ops worker_ops = {
    .worker_init = worker_init,
    .worker_cleanup = worker_cleanup,
    .run = worker_run,
    .finish = worker_finish,
    .name = "pzpgw-intake",
};

enum gw_err
intake_workers_start(struct intake *in, struct event_base *base, unsigned n)
{
	if (in->pool != NULL)
		return GW_OK;
	if (n > INTAKE_MAX_WORKERS)
		n = INTAKE_MAX_WORKERS;
	if (n == 0)
		return GW_OK;
	return workpool_start(&in->pool, base, n, &worker_ops, in);
}

void
intake_workers_drain(struct intake *in)
{
	if (in->pool != NULL)
		workpool_drain(in->pool);
}

void
intake_workers_stop(struct intake *in)
{
	workpool_stop(in->pool);
	in->pool = NULL;
}

/* Queue j for a worker, or run it here when there are none. */
static void
job_submit(struct intake *in, struct intake_job *j)
{
	struct workpool *pool = in->pool;

	http_req_defer(j->req);
	log_debug("event=intake_job id=%s endpoint=%s bytes=%zu", j->reqid,
		  j->validate_only ? "validate" : "process-message",
		  j->body_len);
	if (pool == NULL) {
		job_run(j, in->validate);
		job_finish(in, j);
		return;
	}
	/* Unbounded: the listener's max_pending bounds the requests. */
	(void)workpool_submit(pool, &j->link, 0);
}

/*
 * Loop thread: a new job for req with what the worker needs, copied or
 * borrowed for as long as the request is pending (see struct intake_job),
 * the deadline starting now. NULL when out of memory.
 */
static struct intake_job *
job_new(struct intake *in, struct http_req *req)
{
	const struct config *cfg = http_req_config(req);
	const struct tls_peer *peer = http_req_peer(req);
	struct intake_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->req = req;
	j->body = http_req_body(req, &j->body_len);
	j->cfg = cfg;
	j->deadline = util_mono_ms() + cfg->max_request_ms;
	j->v = request_fhir(req, &j->v_stated);
	j->key = in->key;
	j->trust = in->trust;
	j->secret = in->store != NULL ? store_index_secret(in->store) : NULL;
	j->store = in->store;
	j->rules = in->rules;
	buf_init(&j->bytes, cfg->max_body * 2 + 65536);
	util_strlcpy(j->peer, peer != NULL ? peer->ura : "-", sizeof(j->peer));
	if (peer != NULL) {
		util_strlcpy(j->peer_serial, peer->serial,
			     sizeof(j->peer_serial));
		util_strlcpy(j->peer_issuer, peer->issuer,
			     sizeof(j->peer_issuer));
	}
	util_strlcpy(j->reqid, http_req_id(req), sizeof(j->reqid));
	return j;
}

void
intake_validate(struct http_req *req, void *arg)
{
	struct intake *in = arg;
	const char *path = http_req_path(req), *profile, *slash;
	struct intake_job *j = job_new(in, req);

	if (j == NULL)
		goto nomem;
	j->validate_only = true;
	profile = http_req_query(req, "profile");
	if (profile != NULL && (j->profile = strdup(profile)) == NULL)
		goto nomem;
	/* /fhir/{type}/$validate names the type the resource must have. */
	if (strncmp(path, "/fhir/", 6) == 0 &&
	    (slash = strchr(path + 6, '/')) != NULL &&
	    (j->type = strndup(path + 6, (size_t)(slash - (path + 6)))) == NULL)
		goto nomem;
	job_submit(in, j);
	return;
nomem:
	job_free(j);
	http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
}

void
intake_process_message(struct http_req *req, void *arg)
{
	struct intake *in = arg;
	struct intake_job *j;

	size_t body_len = 0;
	const char *why = "store_closed";

	(void)http_req_body(req, &body_len);
	if (in->store == NULL || !store_intake_ok(in->store, body_len, &why)) {
		log_warnx("event=intake_refused id=%s reason=%s",
			  http_req_id(req), why);
		http_reply_error(req, POLICY_STORE_REFUSED, NULL, "%s",
				 strcmp(why, "disk_low") == 0
				     ? "the gateway's store is low on disk "
				       "space; retry later"
				     : "the gateway's store is unavailable; "
				       "nothing was accepted, retry later");
		return;
	}
	if ((j = job_new(in, req)) == NULL) {
		http_reply_error(req, POLICY_BUSY, NULL, "out of memory");
		return;
	}
	job_submit(in, j);
}

static json_t *
part(const char *name, const char *type, json_t *value)
{
	/* json_pack "o" steals value. */
	return json_pack("{s:s, s:o}", "name", name, type, value);
}

static json_t *
instant(int64_t ms)
{
	char t[32];

	util_rfc3339(ms / 1000, t, sizeof(t));
	return json_string(t);
}

/*
 * When receiver first retrieved data of the patient bsn through the pull
 * API after since (ms): its first audit record for that patient with
 * resources returned and a 2xx answer. 0 when not yet (or not known: no
 * BSN). Reads at most a few pages: this runs on the event loop.
 */
static int64_t
first_retrieved(struct store *st, const char *receiver, const char *bsn,
		int64_t since)
{
	struct store_audit_filter f = {
	    .bsn = bsn, .ura = receiver, .since = since, .limit = 100};
	int64_t at = 0;

	if (bsn[0] == '\0')
		return 0;
	for (int page = 0; page < 10 && at == 0; page++) {
		struct store_audit_rec *recs = NULL;
		size_t n = 0;

		if (store_audit_list(st, &f, &recs, &n) != GW_OK)
			break;
		for (size_t i = 0; i < n && at == 0; i++)
			if (recs[i].count > 0 && recs[i].status >= 200 &&
			    recs[i].status < 300 &&
			    strcmp(recs[i].interaction, "create") != 0)
				at = recs[i].at;
		if (n > 0)
			f.after_seq = recs[n - 1].seq;
		free(recs);
		if (n < f.limit)
			break;
	}
	return at;
}

/*
 * The receivers of an inbound message this gateway serves, as status
 * parameters: stored here since acceptance, and when the organisation
 * first retrieved them. Its inbox rows are the first ones after the
 * message's predecessor in acceptance order.
 */
static void
local_receivers(struct store *st, const struct store_message *msg, json_t *list)
{
	struct store_inbox_filter f = {.after_seq = msg->seq - 1,
				       .limit = MESSAGE_MAX_RECEIVERS};
	struct store_inbox *rows = NULL;
	size_t n = 0;

	if (store_inbox_list(st, &f, &rows, &n) != GW_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		const struct store_inbox *r = &rows[i];
		json_t *parts;
		int64_t got;

		if (strcmp(r->id, msg->id) != 0 || r->receiver[0] == '\0')
			continue;
		parts = json_array();
		json_array_append_new(parts, part("ura", "valueString",
						  json_string(r->receiver)));
		json_array_append_new(
		    parts, part("state", "valueCode", json_string("stored")));
		json_array_append_new(parts, part("storedAt", "valueInstant",
						  instant(r->accepted_at)));
		got = first_retrieved(st, r->receiver, r->bsn, r->accepted_at);
		if (got != 0)
			json_array_append_new(parts, part("firstRetrieved",
							  "valueInstant",
							  instant(got)));
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:o}", "name", "receiver", "part", parts));
	}
	free(rows);
}

void
intake_message_status(struct http_req *req, void *arg)
{
	struct intake *in = arg;
	const char *path = http_req_path(req);
	const char *id = strrchr(path, '/') + 1;
	struct store_message *msg = NULL;
	json_t *params, *list;

	if (store_show(in->store, id, false, &msg) != GW_OK ||
	    msg->direction == STORE_NOTICE ||
	    strcmp(msg->sender, http_req_peer(req)->ura) != 0) {
		/* Another organisation's message does not exist for you. */
		store_message_free(msg);
		http_reply_error(req, POLICY_NOT_FOUND, NULL,
				 "no message %s from your organisation", id);
		return;
	}
	list = json_array();
	json_array_append_new(
	    list, part("message", "valueString", json_string(msg->id)));
	json_array_append_new(
	    list, part("accepted", "valueInstant", instant(msg->accepted_at)));
	for (size_t i = 0; i < msg->nrows; i++) {
		const struct store_row *r = &msg->rows[i];
		json_t *parts = json_array();

		json_array_append_new(parts, part("ura", "valueString",
						  json_string(r->receiver)));
		json_array_append_new(
		    parts, part("state", "valueCode",
				json_string(store_state_name(r->state))));
		json_array_append_new(parts, part("attempts", "valueInteger",
						  json_integer(r->attempts)));
		if (r->last_status != 0)
			json_array_append_new(
			    parts, part("lastStatus", "valueInteger",
					json_integer(r->last_status)));
		if (r->last_error != NULL)
			json_array_append_new(parts,
					      part("lastError", "valueString",
						   json_string(r->last_error)));
		if (r->delivered_at != 0)
			json_array_append_new(
			    parts, part("deliveredAt", "valueInstant",
					instant(r->delivered_at)));
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:o}", "name", "receiver", "part", parts));
	}
	if (msg->direction == STORE_INBOUND)
		local_receivers(in->store, msg, list);
	params = json_pack("{s:s, s:o}", "resourceType", "Parameters",
			   "parameter", list);
	store_message_free(msg);
	http_reply_json(req, 200, params);
}
