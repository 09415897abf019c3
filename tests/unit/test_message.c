/* Unit tests for message: the focus check of a message Bundle with many
 * entries and focus references; the STU3 envelope (parse and
 * message_convert). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"
#include "fjson.h"
#include "message.h"

static void
add_header(struct buf *b)
{
	assert_int_equal(
	    buf_adds(b, "{\"resourceType\":\"Bundle\",\"type\":\"message\","
			"\"identifier\":{\"system\":\"urn:ietf:rfc:3986\","
			"\"value\":\"urn:uuid:6d1f0c3c-6d0e-4a43-9d4c-"
			"1b2a3c4d5e6f\"},\"entry\":[{\"resource\":{"
			"\"resourceType\":\"MessageHeader\",\"eventCoding\":{"
			"\"system\":\"" MESSAGE_EVENT_SYSTEM "\",\"code\":\""
			"pzp-shared\"},\"sender\":{\"identifier\":{\"system\":"
			"\"" MESSAGE_URA_SYSTEM "\",\"value\":\"12345678\"}},"
			"\"destination\":[{\"receiver\":{\"identifier\":{"
			"\"system\":\"" MESSAGE_URA_SYSTEM "\",\"value\":"
			"\"87654321\"}}}],\"focus\":["),
	    GW_OK);
}

/*
 * 50,000 focus references to 50,000 entries, by fullUrl and by Type/id:
 * the entries are indexed once (each focus used to scan every entry, so
 * this test ran for about a minute). Only the one reference that points
 * nowhere is reported, with its index.
 */
static void
test_many_focus(void **state)
{
	enum { N = 50000 };
	struct fj_doc *doc = NULL;
	struct message_info info;
	struct buf b;
	json_t *oo = fhir_outcome_new(), *is;
	const char *expr;

	(void)state;
	assert_non_null(oo);
	buf_init(&b, (size_t)64 << 20);
	add_header(&b);
	for (size_t i = 0; i < N; i++) {
		if (i == 4321)
			assert_int_equal(
			    buf_adds(&b, ",{\"reference\":\"Patient/nope\"}"),
			    GW_OK);
		else if (i % 2 == 0)
			assert_int_equal(
			    buf_printf(&b,
				       "%s{\"reference\":\"urn:uuid:00000000-"
				       "0000-4000-8000-%012zu\"}",
				       i ? "," : "", i),
			    GW_OK);
		else
			assert_int_equal(
			    buf_printf(&b, ",{\"reference\":\"Patient/p%zu\"}",
				       i),
			    GW_OK);
	}
	assert_int_equal(buf_adds(&b, "]}}"), GW_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(
		    buf_printf(&b,
			       ",{\"fullUrl\":\"urn:uuid:00000000-0000-4000-"
			       "8000-%012zu\",\"resource\":{\"resourceType\":"
			       "\"Patient\",\"id\":\"p%zu\"}}",
			       i, i),
		    GW_OK);
	assert_int_equal(buf_adds(&b, "]}"), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);
	assert_int_equal(message_parse(doc->root, &info, oo), GW_INVALID);
	assert_int_equal(fhir_outcome_errors(oo), 1);
	is = json_array_get(json_object_get(oo, "issue"), 0);
	expr = json_string_value(
	    json_array_get(json_object_get(is, "expression"), 0));
	assert_non_null(expr);
	assert_string_equal(expr, "Bundle.entry[0].resource.ofType("
				  "MessageHeader).focus[4321]");
	json_decref(oo);
	fj_doc_free(doc);
	buf_cleanup(&b);
}

/* A focus that names an entry only by the entry's resource Type/id or
 * fullUrl is found; a near miss is not. */
static void
test_focus_forms(void **state)
{
	static const struct {
		const char *ref;
		bool ok;
	} cases[] = {
	    {"urn:uuid:00000000-0000-4000-8000-000000000001", true},
	    {"Patient/p1", true},
	    {"Patient/p", false},
	    {"Patient/p12", false},
	    {"Observation/p1", false},
	    {"urn:uuid:00000000-0000-4000-8000-00000000000", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fj_doc *doc = NULL;
		struct message_info info;
		struct buf b;
		json_t *oo = fhir_outcome_new();

		buf_init(&b, 1 << 20);
		add_header(&b);
		assert_int_equal(
		    buf_printf(&b,
			       "{\"reference\":\"%s\"}]}},{\"fullUrl\":"
			       "\"urn:uuid:00000000-0000-4000-8000-"
			       "000000000001\",\"resource\":{\"resourceType\":"
			       "\"Patient\",\"id\":\"p1\"}}]}",
			       cases[i].ref),
		    GW_OK);
		assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);
		if ((message_parse(doc->root, &info, oo) == GW_OK) !=
		    cases[i].ok)
			fail_msg("%s: got %s, want %s", cases[i].ref,
				 cases[i].ok ? "not found" : "found",
				 cases[i].ok ? "found" : "not found");
		json_decref(oo);
		fj_doc_free(doc);
		buf_cleanup(&b);
	}
}

/* The identifier `pzpgw send` derives: the same for the same content
 * (whitespace and receiver order aside), another for another receiver,
 * event or sender; wrapping under one identifier makes the same
 * fullUrls. */
static void
test_wrap_identifier(void **state)
{
	static const char a[] = "{\"resourceType\":\"Bundle\",\"entry\":[{"
				"\"resource\":{\"resourceType\":\"Patient\","
				"\"id\":\"p\"}}]}";
	static const char a_spaced[] =
	    "{ \"resourceType\" : \"Bundle\",\n \"entry\" : [ { "
	    "\"resource\" : {\"resourceType\":\"Patient\", \"id\":\"p\"}"
	    "} ] }";
	static const char b[] = "{\"resourceType\":\"Bundle\",\"entry\":[{"
				"\"resource\":{\"resourceType\":\"Patient\","
				"\"id\":\"q\"}}]}";
	const char *r12[] = {"11111111", "22222222"};
	const char *r21[] = {"22222222", "11111111"};
	char i1[MESSAGE_IDENT_LEN], i2[MESSAGE_IDENT_LEN];
	struct fj_doc *da = NULL, *ds = NULL, *db = NULL, *w1 = NULL,
		      *w2 = NULL;
	struct fj_error err;
	char eb[128];

	(void)state;
	assert_int_equal(fj_parse(a, strlen(a), 0, &da, &err), GW_OK);
	assert_int_equal(fj_parse(a_spaced, strlen(a_spaced), 0, &ds, &err),
			 GW_OK);
	assert_int_equal(fj_parse(b, strlen(b), 0, &db, &err), GW_OK);
	assert_int_equal(message_wrap_identifier(da->root, "90000002", r12, 2,
						 MESSAGE_EVENT_SHARED, i1),
			 GW_OK);
	assert_int_equal(strlen(i1), 45);
	assert_memory_equal(i1, "urn:uuid:", 9);
	assert_int_equal(i1[9 + 14], '8'); /* version 8 */
	assert_int_equal(message_wrap_identifier(ds->root, "90000002", r21, 2,
						 MESSAGE_EVENT_SHARED, i2),
			 GW_OK);
	assert_string_equal(i1, i2);
	assert_int_equal(message_wrap_identifier(db->root, "90000002", r12, 2,
						 MESSAGE_EVENT_SHARED, i2),
			 GW_OK);
	assert_string_not_equal(i1, i2);
	assert_int_equal(message_wrap_identifier(da->root, "90000002", r12, 1,
						 MESSAGE_EVENT_SHARED, i2),
			 GW_OK);
	assert_string_not_equal(i1, i2);
	assert_int_equal(message_wrap_identifier(da->root, "90000002", r12, 2,
						 MESSAGE_EVENT_UPDATED, i2),
			 GW_OK);
	assert_string_not_equal(i1, i2);
	assert_int_equal(message_wrap_identifier(da->root, "90000005", r12, 2,
						 MESSAGE_EVENT_SHARED, i2),
			 GW_OK);
	assert_string_not_equal(i1, i2);
	assert_int_equal(message_wrap(da->root, "90000002", r12, 2,
				      MESSAGE_EVENT_SHARED, i1, &w1, eb,
				      sizeof(eb)),
			 GW_OK);
	assert_int_equal(message_wrap(da->root, "90000002", r12, 2,
				      MESSAGE_EVENT_SHARED, i1, &w2, eb,
				      sizeof(eb)),
			 GW_OK);
	assert_string_equal(fj_get_str(fj_get(w1->root, "identifier"), "value"),
			    i1);
	for (int k = 0; k < 2; k++)
		assert_string_equal(
		    fj_get_str(fj_at(fj_get(w1->root, "entry"), k), "fullUrl"),
		    fj_get_str(fj_at(fj_get(w2->root, "entry"), k), "fullUrl"));
	assert_string_not_equal(
	    fj_get_str(fj_at(fj_get(w1->root, "entry"), 0), "fullUrl"),
	    fj_get_str(fj_at(fj_get(w1->root, "entry"), 1), "fullUrl"));
	fj_doc_free(w1);
	fj_doc_free(w2);
	fj_doc_free(da);
	fj_doc_free(ds);
	fj_doc_free(db);
}

/* A message Bundle with MessageHeader mh (JSON members) and one Patient
 * entry the focus points at. */
static struct fj_doc *
envelope_doc(const char *bundle_extra, const char *mh)
{
	struct fj_doc *doc = NULL;
	struct buf b;

	buf_init(&b, 1 << 16);
	assert_int_equal(
	    buf_printf(&b,
		       "{\"resourceType\":\"Bundle\",\"type\":\"message\","
		       "\"identifier\":{\"system\":\"urn:ietf:rfc:3986\","
		       "\"value\":\"urn:uuid:6d1f0c3c-6d0e-4a43-9d4c-"
		       "1b2a3c4d5e6f\"}%s,\"entry\":[{\"resource\":{"
		       "\"resourceType\":\"MessageHeader\",\"sender\":{"
		       "\"identifier\":{\"system\":\"" MESSAGE_URA_SYSTEM
		       "\",\"value\":\"12345678\"}},%s,\"focus\":[{"
		       "\"reference\":\"Patient/p1\"}]}},{\"fullUrl\":"
		       "\"urn:uuid:00000000-0000-4000-8000-000000000001\","
		       "\"resource\":{\"resourceType\":\"Patient\",\"id\":"
		       "\"p1\"}}]}",
		       bundle_extra, mh),
	    GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, NULL), GW_OK);
	buf_cleanup(&b);
	return doc;
}

#define EV_STU3                                                                \
	"\"event\":{\"system\":\"" MESSAGE_EVENT_SYSTEM                        \
	"\",\"code\":\"pzp-updated\"}"
#define URA_REF(u)                                                             \
	"{\"identifier\":{\"system\":\"" MESSAGE_URA_SYSTEM                    \
	"\",\"value\":\"" u "\"}}"

/* The STU3 envelope: the event is MessageHeader.event, each receiver a
 * destination endpoint urn:ura:URA (or, for a single destination, the
 * MessageHeader's receiver); the R4 fallbacks stay R4-only. */
static void
test_parse_stu3_envelope(void **state)
{
	static const struct {
		const char *mh;
		size_t n; /* receivers found; 0: invalid */
		const char *first;
	} cases[] = {
	    {EV_STU3 ",\"destination\":[{\"endpoint\":\"urn:ura:87654321\"},"
		     "{\"endpoint\":\"urn:ura:87654322\"}]",
	     2, "87654321"},
	    {EV_STU3 ",\"destination\":[{\"endpoint\":\"https://x/fhir\"}],"
		     "\"receiver\":" URA_REF("87654323"),
	     1, "87654323"},
	    /* two destinations, one without a URA endpoint: not known */
	    {EV_STU3 ",\"destination\":[{\"endpoint\":\"urn:ura:87654321\"},"
		     "{\"endpoint\":\"https://x/fhir\"}],\"receiver\":" URA_REF(
			 "87654323"),
	     0, NULL},
	    /* R4 form: the endpoint alone does not name the receiver */
	    {"\"eventCoding\":{\"system\":\"" MESSAGE_EVENT_SYSTEM
	     "\",\"code\":\"pzp-shared\"},\"destination\":[{\"endpoint\":"
	     "\"urn:ura:87654321\"}]",
	     0, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fj_doc *doc = envelope_doc("", cases[i].mh);
		struct message_info info;
		json_t *oo = fhir_outcome_new();
		enum gw_err err = message_parse(doc->root, &info, oo);

		if (cases[i].n == 0) {
			assert_int_equal(err, GW_INVALID);
		} else {
			if (err != GW_OK)
				fail_msg("case %zu: %s", i, json_dumps(oo, 0));
			assert_int_equal(info.nreceivers, cases[i].n);
			assert_string_equal(info.receivers[0], cases[i].first);
			assert_string_equal(info.event, "pzp-updated");
		}
		json_decref(oo);
		fj_doc_free(doc);
	}
}

/* message_convert both ways: STU3 -> R4 gives the R4 form message_parse
 * reads (eventCoding, destination.receiver, Bundle.timestamp), R4 ->
 * STU3 gives event, endpoints urn:ura, receiver for a single destination
 * and MessageHeader.timestamp; each change is reported. */
static void
test_convert_envelope(void **state)
{
	struct fj_doc *doc = envelope_doc(
	    "", EV_STU3 ",\"timestamp\":\"2026-11-23T10:00:00Z\","
			"\"destination\":[{\"endpoint\":\"urn:ura:87654321\"},"
			"{\"endpoint\":\"urn:ura:87654322\"}]");
	json_t *rep = fhir_outcome_new();
	struct message_info info;
	struct fj_node *mh;
	json_t *oo = fhir_outcome_new();
	struct buf out;

	(void)state;
	assert_int_equal(message_convert(doc, true, rep), GW_OK);
	mh = fj_get(fj_at(fj_get(doc->root, "entry"), 0), "resource");
	assert_null(fj_get(mh, "event"));
	assert_null(fj_get(mh, "timestamp"));
	assert_string_equal(fj_get_str(doc->root, "timestamp"),
			    "2026-11-23T10:00:00Z");
	assert_string_equal(
	    fj_get_str(
		fj_get(fj_get(fj_at(fj_get(mh, "destination"), 1), "receiver"),
		       "identifier"),
		"value"),
	    "87654322");
	assert_int_equal(message_parse(doc->root, &info, oo), GW_OK);
	assert_int_equal(info.nreceivers, 2);
	assert_true(json_array_size(json_object_get(rep, "issue")) >= 1);

	/* and back */
	assert_int_equal(message_convert(doc, false, rep), GW_OK);
	assert_null(fj_get(mh, "eventCoding"));
	assert_string_equal(fj_get_str(fj_get(mh, "event"), "code"),
			    "pzp-updated");
	assert_null(fj_get(fj_at(fj_get(mh, "destination"), 0), "receiver"));
	assert_null(fj_get(mh, "receiver")); /* two destinations */
	assert_string_equal(fj_get_str(mh, "timestamp"),
			    "2026-11-23T10:00:00Z");
	assert_int_equal(message_parse(doc->root, &info, oo), GW_OK);
	assert_int_equal(info.nreceivers, 2);
	assert_string_equal(info.receivers[1], "87654322");
	buf_init(&out, 1 << 16);
	assert_int_equal(fj_dump(mh, 0, &out), GW_OK);
	buf_cleanup(&out);
	json_decref(oo);
	json_decref(rep);
	fj_doc_free(doc);

	/* an envelope already in the target form is left as it is (the
	 * event was lost: found by fuzz_message) */
	doc = envelope_doc("", EV_STU3 ",\"destination\":[{\"endpoint\":"
				       "\"urn:ura:87654321\"}]");
	assert_int_equal(message_convert(doc, false, NULL), GW_OK);
	oo = fhir_outcome_new();
	assert_int_equal(message_parse(doc->root, &info, oo), GW_OK);
	assert_string_equal(info.event, "pzp-updated");
	assert_int_equal(message_convert(doc, true, NULL), GW_OK);
	assert_int_equal(message_convert(doc, true, NULL), GW_OK);
	assert_int_equal(message_parse(doc->root, &info, oo), GW_OK);
	assert_string_equal(info.event, "pzp-updated");
	json_decref(oo);
	fj_doc_free(doc);

	/* one R4 destination: STU3's receiver names it */
	doc = envelope_doc(
	    ",\"timestamp\":\"2026-11-23T10:00:00Z\"",
	    "\"eventCoding\":{\"system\":\"" MESSAGE_EVENT_SYSTEM
	    "\",\"code\":\"pzp-shared\"},\"destination\":[{"
	    "\"endpoint\":\"https://b/fhir\",\"receiver\":" URA_REF(
		"87654321") "}]");
	assert_int_equal(message_convert(doc, false, NULL), GW_OK);
	mh = fj_get(fj_at(fj_get(doc->root, "entry"), 0), "resource");
	assert_string_equal(
	    fj_get_str(fj_get(fj_get(mh, "receiver"), "identifier"), "value"),
	    "87654321");
	assert_string_equal(
	    fj_get_str(fj_at(fj_get(mh, "destination"), 0), "endpoint"),
	    "urn:ura:87654321");
	assert_string_equal(fj_get_str(mh, "timestamp"),
			    "2026-11-23T10:00:00Z");
	fj_doc_free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_many_focus),
	    cmocka_unit_test(test_focus_forms),
	    cmocka_unit_test(test_wrap_identifier),
	    cmocka_unit_test(test_parse_stu3_envelope),
	    cmocka_unit_test(test_convert_envelope),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
