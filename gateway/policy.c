/* The one error policy: failure kinds to HTTP answers, and the
 * retry-versus-reject decisions of intake and delivery. */
#include "policy.h"

#include <string.h>

#include "outcome.h"

static const struct policy_answer policy_answers[POLICY_KIND_COUNT] = {
    [POLICY_MALFORMED] = {400, "structure", NULL},
    [POLICY_BAD_REQUEST] = {400, "invalid", NULL},
    [POLICY_REQUIRED] = {400, "required", NULL},
    [POLICY_IDENTITY] = {401, "security", NULL},
    [POLICY_FORBIDDEN] = {403, "forbidden", NULL},
    [POLICY_NOT_FOUND] = {404, "not-found", NULL},
    [POLICY_METHOD] = {405, "not-supported", NULL},
    [POLICY_CONFLICT] = {409, "duplicate", NULL},
    [POLICY_LENGTH_REQUIRED] = {411, "invalid", NULL},
    [POLICY_TOO_LARGE] = {413, "too-costly", NULL},
    [POLICY_MEDIA_TYPE] = {415, "not-supported", NULL},
    [POLICY_EXPECTATION] = {417, "not-supported", NULL},
    [POLICY_INVALID] = {422, "invalid", NULL},
    [POLICY_UNSUPPORTED] = {422, "not-supported", NULL},
    [POLICY_HEAD_TOO_LARGE] = {431, "too-costly", NULL},
    [POLICY_INTERNAL] = {500, "exception", NULL},
    [POLICY_BUSY] = {503, "transient", "5"},
    [POLICY_RETRY_LATER] = {503, "transient", "10"},
    /* Disk space or a store file an operator must restore: not seconds. */
    [POLICY_STORE_REFUSED] = {503, "transient", "60"},
    /* The budget is wall-clock time: the same document may pass when the
     * gateway is less busy (README, Errors). */
    [POLICY_TOO_COSTLY] = {503, "too-costly", "30"},
};

/* Signature checks: who signed is an identity failure (401), the rest is
 * about the document (422). */
static const enum policy_kind policy_sign_kinds[SIGN_CHECK_COUNT] = {
    [SIGN_CHECK_OK] = POLICY_INVALID,
    [SIGN_CHECK_MISSING] = POLICY_INVALID,
    [SIGN_CHECK_MALFORMED] = POLICY_INVALID,
    [SIGN_CHECK_ALG] = POLICY_INVALID,
    [SIGN_CHECK_CANON] = POLICY_INVALID,
    [SIGN_CHECK_DOCUMENT] = POLICY_INVALID,
    [SIGN_CHECK_TARGET] = POLICY_INVALID,
    [SIGN_CHECK_SIGNATURE] = POLICY_INVALID,
    [SIGN_CHECK_TIME] = POLICY_INVALID,
    [SIGN_CHECK_CERT] = POLICY_IDENTITY,
    [SIGN_CHECK_UNTRUSTED] = POLICY_IDENTITY,
    [SIGN_CHECK_EXPIRED] = POLICY_IDENTITY,
    [SIGN_CHECK_REVOKED] = POLICY_IDENTITY,
    [SIGN_CHECK_URA] = POLICY_IDENTITY,
};

const struct policy_answer *
policy_answer(enum policy_kind kind)
{
	if ((unsigned)kind >= POLICY_KIND_COUNT)
		kind = POLICY_INTERNAL;
	return &policy_answers[kind];
}

enum policy_kind
policy_intake(enum gw_err err, enum policy_kind temporary)
{
	return gw_err_is_temporary(err) ? temporary : POLICY_INTERNAL;
}

enum policy_kind
policy_sign_check(enum sign_check check)
{
	if ((unsigned)check >= SIGN_CHECK_COUNT)
		return POLICY_INVALID;
	return policy_sign_kinds[check];
}

enum policy_kind
policy_verify(enum gw_err err, enum sign_check check)
{
	return err == GW_NOMEM ? POLICY_BUSY : policy_sign_check(check);
}

int
policy_sign_status(enum sign_check check)
{
	if (check == SIGN_CHECK_OK)
		return 200;
	return policy_answer(policy_sign_check(check))->status;
}

json_t *
policy_sign_outcome(const struct sign_result *res)
{
	return fhir_outcome_one(
	    FHIR_ERROR, policy_answer(policy_sign_check(res->check))->code,
	    "Bundle.signature", "signature check %s failed: %s",
	    sign_check_name(res->check), res->reason);
}

/* A 422 that only says the receiver is not served by the gateway that
 * answered (intake.c route_receivers: code not-found, expression on
 * MessageHeader.destination): the sender's route is wrong. */
static bool
policy_no_route(const json_t *outcome)
{
	const json_t *issue, *expr;
	const char *sev, *code, *e;
	size_t i, nerrors = 0;

	json_array_foreach(json_object_get(outcome, "issue"), i, issue)
	{
		sev = json_string_value(json_object_get(issue, "severity"));
		if (sev == NULL ||
		    (strcmp(sev, "error") != 0 && strcmp(sev, "fatal") != 0))
			continue;
		nerrors++;
		code = json_string_value(json_object_get(issue, "code"));
		expr = json_array_get(json_object_get(issue, "expression"), 0);
		e = json_string_value(expr);
		if (code == NULL || strcmp(code, "not-found") != 0 ||
		    e == NULL ||
		    strstr(e, "MessageHeader).destination") == NULL)
			return false;
	}
	return nerrors > 0;
}

enum policy_delivery
policy_delivery(bool answered, long status, const json_t *outcome,
		enum policy_hold *hold)
{
	enum policy_hold h = POLICY_HOLD_NONE;
	enum policy_delivery out;

	if (status == 429 || status == 503)
		h = POLICY_HOLD_BUSY;
	if (!answered)
		out = POLICY_RETRY;
	else if (status >= 200 && status < 300)
		out = POLICY_DELIVERED;
	else if (status == 408 || status == 429 || status >= 500 ||
		 status < 400)
		out = POLICY_RETRY;
	else if (status == 401 || status == 403 || status == 404 ||
		 status == 405 || status == 421 ||
		 (status == 422 && policy_no_route(outcome))) {
		/* Who may push, the endpoint's path, which gateway serves
		 * the receiver: configuration, not the care plan. */
		h = POLICY_HOLD_ROUTE;
		out = POLICY_RETRY;
	} else {
		out = POLICY_DEAD;
	}
	if (hold != NULL)
		*hold = h;
	return out;
}
