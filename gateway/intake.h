/*
 * Intake: the endpoints that take FHIR documents from organisations,
 * `$validate` now and `$process-message` (accept, sign, store, deliver).
 * Holds the validation rules loaded at start.
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "http.h"
#include "rules.h"
#include "sign.h"
#include "store.h"
#include "validate.h"

/* Largest clock difference accepted for a signature time (seconds). */
#define INTAKE_SIGN_SKEW 300
/* Most worker threads for $validate and $process-message. */
#define INTAKE_MAX_WORKERS 8

struct event_base;
struct workpool;

struct intake {
	struct rules_set *rules[2];	  /* indexed by enum rules_fhir */
	struct validate_ctx *validate[2]; /* over rules[] */
	/* Set by the daemon before $process-message is served; borrowed. */
	struct store *store;
	const struct sign_key *key;	/* signs what the gateway forwards */
	const struct sign_trust *trust; /* verifies what other gateways send */
	/* Called after each outbound commit (the deliverer's kick). */
	void (*kick)(void *arg);
	void *kick_arg;
	/* Worker threads (intake_workers_start); NULL: work inline. */
	struct workpool *pool;
};

/*
 * Load the compiled rules for R4 and STU3 from cfg->schemas. On failure
 * errbuf says why and in is left cleaned up.
 */
enum gw_err intake_init(struct intake *in, const struct config *cfg,
			char *errbuf, size_t errlen);
/* Release what intake_init made (stopping the workers first); safe on
 * a zeroed struct. */
void intake_cleanup(struct intake *in);

/*
 * Run all work on the documents of $validate and $process-message
 * (parsing, message checks, routing, signature checks, validation,
 * signing, serialisation) in n worker threads (at most
 * INTAKE_MAX_WORKERS, each with its own validation context), handing
 * the results back to base's loop thread, which alone answers requests
 * and submits to the store. Order per connection is unchanged: a client
 * gets its answer before it sends the next request. n 0 keeps the work
 * inline. Returns GW_OK, or GW_NOMEM/GW_IO with no workers running.
 */
enum gw_err intake_workers_start(struct intake *in, struct event_base *base,
				 unsigned n);
/* Loop thread: wait until no job is queued or running and finish the
 * completed ones (answers sent or submitted to the store). Before
 * freeing the in->key or in->trust a job may use, call this or keep them
 * until no request is pending (jobs take them when the request arrives).
 * No-op without workers. */
void intake_workers_drain(struct intake *in);
/* Loop thread: drain, then stop and join the workers. The store must
 * still be open. No-op without workers. */
void intake_workers_stop(struct intake *in);

/* POST /fhir/$validate and /fhir/{type}/$validate; arg is a struct
 * intake. Answers 200 with an OperationOutcome, 400 for malformed JSON,
 * 503 (POLICY_TOO_COSTLY: code too-costly, Retry-After 30) when checking
 * took longer than [limits] max_request_time from the request's arrival.
 * The same budget holds for $process-message. */
void intake_validate(struct http_req *req, void *arg);

/*
 * POST /fhir/$process-message: a message Bundle from an organisation or
 * from another gateway. A signature must verify and name the TLS peer;
 * MessageHeader.sender must be the TLS peer, or a sender the peer (a
 * gateway that signed the message) may relay for ([peer] relay); a sender
 * signature a relay kept must verify and be the sender's. A signed message
 * forwarded keeps its sender's signature beside the gateway's own.
 * Checked, validated, signed when forwarded, committed with one outbox row
 * per remote receiver, then answered 202 with the message id and a status
 * URL; a duplicate (peer, Bundle.identifier) gets the original answer.
 */
void intake_process_message(struct http_req *req, void *arg);

/* GET /fhir/$process-message/{id}: delivery state per receiver, for the
 * organisation that sent the message. */
void intake_message_status(struct http_req *req, void *arg);

/*
 * A stored R4 message (len bytes of doc) for a receiver that speaks
 * STU3 ([peer] fhir = stu3): converted (xf_convert and message_convert),
 * then signed with in->key over the STU3 form, serialised into *out (a
 * NUL-terminated heap copy, *out_len bytes; caller frees). *notes is the
 * number of issues the conversion reported. GW_OK; GW_REJECT (the
 * message has no STU3 form, or there is no key) with errbuf saying why;
 * GW_NOMEM.
 */
enum gw_err intake_to_stu3(const struct intake *in, const void *doc, size_t len,
			   char **out, size_t *out_len, size_t *notes,
			   char *errbuf, size_t errlen);

#endif
