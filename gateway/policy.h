/*
 * The one error policy: the answer (HTTP status, OperationOutcome issue
 * code, Retry-After) each kind of failure gets, intake's retry-versus-
 * reject decision for the gateway's own failures, the answer to a failed
 * signature check, and the deliverer's decision after an attempt.
 * Handlers name a kind; they choose no status of their own.
 */
#ifndef GW_POLICY_H
#define GW_POLICY_H

#include <stdbool.h>

#include <jansson.h>

#include "err.h"
#include "sign.h"

/* What went wrong, as the client is told. */
enum policy_kind {
	POLICY_MALFORMED,	/* 400 structure: the body is not JSON */
	POLICY_BAD_REQUEST,	/* 400 invalid: head, path or query refused */
	POLICY_REQUIRED,	/* 400 required: a parameter is missing */
	POLICY_IDENTITY,	/* 401 security: who signed does not check */
	POLICY_FORBIDDEN,	/* 403 forbidden: not allowed for this peer */
	POLICY_NOT_FOUND,	/* 404 not-found */
	POLICY_METHOD,		/* 405 not-supported (caller adds Allow) */
	POLICY_CONFLICT,	/* 409 duplicate: identifier reused */
	POLICY_LENGTH_REQUIRED, /* 411 invalid */
	POLICY_TOO_LARGE,	/* 413 too-costly: body over max_body */
	POLICY_MEDIA_TYPE,	/* 415 not-supported */
	POLICY_EXPECTATION,	/* 417 not-supported */
	POLICY_INVALID,		/* 422 invalid: breaks a rule */
	POLICY_UNSUPPORTED,	/* 422 not-supported: not accepted here */
	POLICY_HEAD_TOO_LARGE,	/* 431 too-costly: head over max_header */
	POLICY_INTERNAL,	/* 500 exception: permanent own failure */
	POLICY_BUSY,		/* 503 transient, retry in 5s */
	POLICY_RETRY_LATER,	/* 503 transient, retry in 10s */
	POLICY_STORE_REFUSED,	/* 503 transient, retry in 60s */
	POLICY_TOO_COSTLY,	/* 503 too-costly, retry in 30s */
	POLICY_KIND_COUNT
};

/* The answer for one kind. */
struct policy_answer {
	int status;		 /* HTTP status */
	const char *code;	 /* OperationOutcome issue code */
	const char *retry_after; /* Retry-After seconds, or NULL: none */
};

/* The answer for kind; never NULL (POLICY_INTERNAL's for a value out of
 * range). Static storage. */
const struct policy_answer *policy_answer(enum policy_kind kind);

/*
 * Intake's retry-versus-reject decision for a failure of the gateway's
 * own work (memory, the store, the validator) on a request it would
 * otherwise take: a temporary err (gw_err_is_temporary: memory, I/O, a
 * busy store, a full disk) gets `temporary`, a 503 with its Retry-After;
 * a permanent one (a corrupt store, a schema it does not know, a bug)
 * gets POLICY_INTERNAL, a 500 without Retry-After: the sender must not be
 * told that trying again will help.
 */
enum policy_kind policy_intake(enum gw_err err, enum policy_kind temporary);

/* A failed signature check: POLICY_IDENTITY for who signed (certificate,
 * chain, expiry, revocation, URA), POLICY_INVALID for what was signed
 * (also for SIGN_CHECK_OK, a failure without a check named). */
enum policy_kind policy_sign_check(enum sign_check check);

/* The answer to a verification that returned err with res->check: out of
 * memory is POLICY_BUSY, anything else policy_sign_check's. */
enum policy_kind policy_verify(enum gw_err err, enum sign_check check);

/* The HTTP status for check: 200 for SIGN_CHECK_OK, else 401 or 422 as
 * policy_sign_check says. */
int policy_sign_status(enum sign_check check);

/*
 * An OperationOutcome for a failed verification: one error issue with
 * policy_sign_check's code ("security" or "invalid"), expression
 * Bundle.signature, diagnostics "signature check CHECK failed: reason".
 * New reference (caller decrefs), NULL without memory.
 */
json_t *policy_sign_outcome(const struct sign_result *res);

/* What the deliverer does with an outbox row after an attempt. */
enum policy_delivery {
	POLICY_DELIVERED, /* 2xx: done */
	POLICY_RETRY,	  /* try again after a backoff, up to max_age */
	POLICY_DEAD,	  /* refused for good: dead-letter, operator acts */
};

/* Whether an attempt's answer speaks for the whole receiver, which the
 * deliverer then holds (one probe at a time until it answers otherwise). */
enum policy_hold {
	POLICY_HOLD_NONE,
	POLICY_HOLD_BUSY,  /* 429, 503: overloaded */
	POLICY_HOLD_ROUTE, /* the route is wrong, not the message */
};

/*
 * The deliverer's retry-versus-reject decision after one attempt.
 * status: the HTTP status received (0 none); answered: the transfer
 * completed with it, otherwise it failed (connection, TLS, timeout) and
 * is retried. outcome: the answer's body when it is a JSON object (the
 * receiver's OperationOutcome), or NULL. Retried: no answer, 1xx/3xx
 * (redirects are not followed: a route to fix), 408, 429 and 5xx, and
 * the answers that say the route is wrong (*hold POLICY_HOLD_ROUTE): 401,
 * 403, 404, 405, 421, and a 422 whose every error is "no route to
 * receiver" (code not-found on MessageHeader.destination: the receiving
 * gateway does not serve the receiver). Dead: any other 4xx (the
 * receiver refused the message itself). *hold (may be NULL) is
 * POLICY_HOLD_BUSY for a 429 or 503 status, answered or not.
 */
enum policy_delivery policy_delivery(bool answered, long status,
				     const json_t *outcome,
				     enum policy_hold *hold);

#endif
