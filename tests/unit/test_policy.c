/* Unit tests for the error policy: every kind's answer, intake's
 * retry-versus-reject decision per gw_err, signature checks, and the
 * deliverer's decision per HTTP status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

/* Every kind has a status and a code; exactly the 503s say when to come
 * back, so that no permanent answer tells a sender to retry. */
static void
test_every_kind_answers(void **state)
{
	(void)state;
	for (int k = 0; k < POLICY_KIND_COUNT; k++) {
		const struct policy_answer *a = policy_answer(k);

		if (a->status < 400 || a->status > 599 || a->code == NULL)
			fail_msg("kind %d: got status %d code %s, want an "
				 "error status and a code",
				 k, a->status, a->code ? a->code : "NULL");
		if ((a->status == 503) != (a->retry_after != NULL))
			fail_msg("kind %d: got status %d with Retry-After %s",
				 k, a->status,
				 a->retry_after ? a->retry_after : "none");
	}
	/* Out of range: the internal error, never NULL. */
	assert_int_equal(policy_answer(POLICY_KIND_COUNT)->status, 500);
}

/* The answers the README's Errors table and the e2e tests rely on. */
static void
test_answers(void **state)
{
	static const struct {
		enum policy_kind kind;
		int status;
		const char *code, *retry_after;
	} cases[] = {
	    {POLICY_MALFORMED, 400, "structure", NULL},
	    {POLICY_IDENTITY, 401, "security", NULL},
	    {POLICY_FORBIDDEN, 403, "forbidden", NULL},
	    {POLICY_CONFLICT, 409, "duplicate", NULL},
	    {POLICY_TOO_LARGE, 413, "too-costly", NULL},
	    {POLICY_INVALID, 422, "invalid", NULL},
	    {POLICY_INTERNAL, 500, "exception", NULL},
	    {POLICY_BUSY, 503, "transient", "5"},
	    {POLICY_RETRY_LATER, 503, "transient", "10"},
	    {POLICY_STORE_REFUSED, 503, "transient", "60"},
	    {POLICY_TOO_COSTLY, 503, "too-costly", "30"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct policy_answer *a = policy_answer(cases[i].kind);
		const char *ra = a->retry_after ? a->retry_after : "none";
		const char *want =
		    cases[i].retry_after ? cases[i].retry_after : "none";

		if (a->status != cases[i].status ||
		    strcmp(a->code, cases[i].code) != 0 ||
		    strcmp(ra, want) != 0)
			fail_msg("kind %d: got %d %s %s, want %d %s %s",
				 cases[i].kind, a->status, a->code, ra,
				 cases[i].status, cases[i].code, want);
	}
}

/* A failure of the gateway's own work: temporary errors get the
 * caller's 503, permanent ones (a corrupt store: GW_PERM; an unknown
 * schema: GW_CONFIG; a malformed request to the store: GW_INVALID) a 500
 * without Retry-After. */
static void
test_intake_decision(void **state)
{
	static const struct {
		enum gw_err err;
		int status;
	} cases[] = {
	    {GW_NOMEM, 503},	{GW_IO, 503},	   {GW_TEMP, 503},
	    {GW_PARSE, 500},	{GW_INVALID, 500}, {GW_TOOBIG, 500},
	    {GW_NOTFOUND, 500}, {GW_EXISTS, 500},  {GW_DENIED, 500},
	    {GW_CRYPTO, 500},	{GW_CONFIG, 500},  {GW_PERM, 500},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum policy_kind k =
		    policy_intake(cases[i].err, POLICY_RETRY_LATER);
		const struct policy_answer *a = policy_answer(k);

		if (a->status != cases[i].status)
			fail_msg("%s: got %d, want %d",
				 gw_strerror(cases[i].err), a->status,
				 cases[i].status);
		if (a->status == 500 && a->retry_after != NULL)
			fail_msg("%s: got Retry-After %s on a 500",
				 gw_strerror(cases[i].err), a->retry_after);
	}
	assert_int_equal(policy_intake(GW_TEMP, POLICY_BUSY), POLICY_BUSY);
	assert_int_equal(policy_intake(GW_PERM, POLICY_BUSY), POLICY_INTERNAL);
}

static void
test_sign_checks(void **state)
{
	(void)state;
	assert_int_equal(policy_sign_status(SIGN_CHECK_OK), 200);
	for (int c = SIGN_CHECK_MISSING; c < SIGN_CHECK_COUNT; c++) {
		bool identity = c == SIGN_CHECK_CERT ||
				c == SIGN_CHECK_UNTRUSTED ||
				c == SIGN_CHECK_EXPIRED ||
				c == SIGN_CHECK_REVOKED || c == SIGN_CHECK_URA;
		int want = identity ? 401 : 422;

		if (policy_sign_status(c) != want)
			fail_msg("check %s: got %d, want %d",
				 sign_check_name(c), policy_sign_status(c),
				 want);
	}
	/* Out of memory while verifying says nothing about the signature. */
	assert_int_equal(policy_verify(GW_NOMEM, SIGN_CHECK_URA), POLICY_BUSY);
	assert_int_equal(policy_verify(GW_CRYPTO, SIGN_CHECK_URA),
			 POLICY_IDENTITY);
	assert_int_equal(policy_verify(GW_CRYPTO, SIGN_CHECK_OK),
			 POLICY_INVALID);
}

static void
test_delivery_decision(void **state)
{
	static const char no_route[] =
	    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
	    "\"severity\":\"error\",\"code\":\"not-found\","
	    "\"diagnostics\":\"no route to receiver 90000004\","
	    "\"expression\":[\"Bundle.entry[0].resource.ofType("
	    "MessageHeader).destination[0].receiver\"]},{\"severity\":"
	    "\"warning\",\"code\":\"invalid\"}]}";
	static const char content[] =
	    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
	    "\"severity\":\"error\",\"code\":\"not-found\","
	    "\"diagnostics\":\"no route to receiver 90000004\","
	    "\"expression\":[\"Bundle.entry[0].resource.ofType("
	    "MessageHeader).destination[0].receiver\"]},{\"severity\":"
	    "\"error\",\"code\":\"invalid\",\"expression\":["
	    "\"Bundle.entry[2].resource.gender\"]}]}";
	static const char only_warnings[] =
	    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
	    "\"severity\":\"warning\",\"code\":\"not-found\"}]}";
	static const char elsewhere[] =
	    "{\"resourceType\":\"OperationOutcome\",\"issue\":[{"
	    "\"severity\":\"error\",\"code\":\"not-found\","
	    "\"expression\":[\"Bundle.entry[3].resource.subject\"]}]}";
	static const struct {
		bool answered;
		long status;
		const char *outcome;
		enum policy_delivery want;
		enum policy_hold hold;
	} cases[] = {
	    {false, 0, NULL, POLICY_RETRY, POLICY_HOLD_NONE},	/* no conn. */
	    {false, 503, NULL, POLICY_RETRY, POLICY_HOLD_BUSY}, /* cut off */
	    {true, 200, NULL, POLICY_DELIVERED, POLICY_HOLD_NONE},
	    {true, 202, NULL, POLICY_DELIVERED, POLICY_HOLD_NONE},
	    {true, 301, NULL, POLICY_RETRY, POLICY_HOLD_NONE}, /* a route */
	    {true, 400, NULL, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 400, no_route, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 401, NULL, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 403, NULL, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 404, NULL, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 405, NULL, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 408, NULL, POLICY_RETRY, POLICY_HOLD_NONE},
	    {true, 409, NULL, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 410, NULL, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 421, NULL, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 422, NULL, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 422, no_route, POLICY_RETRY, POLICY_HOLD_ROUTE},
	    {true, 422, content, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 422, only_warnings, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 422, elsewhere, POLICY_DEAD, POLICY_HOLD_NONE},
	    {true, 429, NULL, POLICY_RETRY, POLICY_HOLD_BUSY},
	    {true, 500, NULL, POLICY_RETRY, POLICY_HOLD_NONE},
	    {true, 503, NULL, POLICY_RETRY, POLICY_HOLD_BUSY},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum policy_hold hold = (enum policy_hold)99;
		json_t *oo = NULL;
		enum policy_delivery got;

		if (cases[i].outcome != NULL)
			assert_non_null(
			    oo = json_loads(cases[i].outcome, 0, NULL));
		got = policy_delivery(cases[i].answered, cases[i].status, oo,
				      &hold);
		json_decref(oo);
		if (got != cases[i].want || hold != cases[i].hold)
			fail_msg("case %zu status %ld answered %d: got %d "
				 "hold %d, want %d hold %d",
				 i, cases[i].status, cases[i].answered, got,
				 hold, cases[i].want, cases[i].hold);
	}
	assert_int_equal(policy_delivery(true, 410, NULL, NULL), POLICY_DEAD);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_kind_answers),
	    cmocka_unit_test(test_answers),
	    cmocka_unit_test(test_intake_decision),
	    cmocka_unit_test(test_sign_checks),
	    cmocka_unit_test(test_delivery_decision),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
