/*
 * notify tests: the Task of notified pull (exact content, valid JSON, its
 * SHA-256, no value that could break out of a string).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "buf.h"
#include "notify.h"
#include "util.h"

#define BSN "999911120"

static const struct notify_task good = {
    .id = "0b7c1e2a-1111-4222-8333-444455556666",
    .bsn = BSN,
    .requester = "90000002",
    .owner = "90000003",
    .authored_ms = 1764900000123LL,
};

static const char *
str_at(const json_t *o, const char *path)
{
	json_t *v = json_object_get(o, path);

	return json_string_value(v);
}

static void
test_task(void **state)
{
	struct buf b;
	char sha[65], want[65];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	json_error_t jerr;
	json_t *t, *in, *ref;
	const char *k;
	json_t *v;
	size_t n = 0;

	buf_init(&b, 65536);
	assert_int_equal(buf_adds(&b, "prefix"), GW_OK);
	assert_int_equal(notify_task_write(&good, &b, sha), GW_OK);
	/* Appended; the hash covers the Task only. */
	assert_memory_equal(b.data, "prefix", 6);
	EVP_Digest(b.data + 6, b.len - 6, md, &mdlen, EVP_sha256(), NULL);
	util_hex(md, mdlen, want);
	assert_string_equal(sha, want);
	t = json_loadb(b.data + 6, b.len - 6, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(t);
	json_object_foreach(t, k, v) n++;
	assert_int_equal(n, 10);
	assert_string_equal(str_at(t, "resourceType"), "Task");
	assert_string_equal(str_at(t, "status"), "requested");
	assert_string_equal(str_at(t, "intent"), "order");
	assert_string_equal(str_at(t, "authoredOn"), "2025-12-05T02:00:00Z");
	assert_string_equal(
	    str_at(json_array_get(json_object_get(t, "identifier"), 0),
		   "value"),
	    "urn:uuid:0b7c1e2a-1111-4222-8333-444455556666");
	ref = json_object_get(t, "for");
	assert_string_equal(str_at(ref, "type"), "Patient");
	assert_string_equal(str_at(json_object_get(ref, "identifier"), "value"),
			    BSN);
	assert_string_equal(
	    str_at(json_object_get(ref, "identifier"), "system"),
	    NOTIFY_BSN_SYSTEM);
	ref = json_object_get(t, "requester");
	assert_string_equal(str_at(json_object_get(ref, "identifier"), "value"),
			    "90000002");
	ref = json_object_get(t, "owner");
	assert_string_equal(str_at(json_object_get(ref, "identifier"), "value"),
			    "90000003");
	in = json_object_get(t, "input");
	assert_int_equal(json_array_size(in), 10);
	assert_string_equal(
	    str_at(json_array_get(in, 0), "valueUrl"),
	    "Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|" BSN);
	assert_string_equal(
	    str_at(json_array_get(in, 9), "valueUrl"),
	    "QuestionnaireResponse?patient.identifier=http://fhir.nl/fhir/"
	    "NamingSystem/bsn|" BSN "&questionnaire=https://fhir.iknl.nl/fhir/"
	    "Questionnaire/ACP-zib2020");
	json_decref(t);
	buf_cleanup(&b);
}

/* Anything that is not an id, BSN or URA is refused, so nothing can
 * leave its JSON string or its query parameter. */
static void
test_task_refused(void **state)
{
	static const char *const bad_ids[] = {"",    "a\"b", "a\\b",
					      "a b", "a&b",  NULL};
	static const char *const bad_bsns[] = {
	    "", "99991112x", "1|2", "1&2", "12345678901234567", NULL};
	static const char *const bad_uras[] = {"", "9000000", "9000000a",
					       "900000021", NULL};
	struct notify_task t;
	struct buf b;
	char sha[65];

	buf_init(&b, 65536);
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_ids); i++) {
		t = good;
		t.id = bad_ids[i];
		assert_int_equal(notify_task_write(&t, &b, sha), GW_INVALID);
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_bsns); i++) {
		t = good;
		t.bsn = bad_bsns[i];
		assert_int_equal(notify_task_write(&t, &b, sha), GW_INVALID);
	}
	for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_uras); i++) {
		t = good;
		t.requester = bad_uras[i];
		assert_int_equal(notify_task_write(&t, &b, sha), GW_INVALID);
		t = good;
		t.owner = bad_uras[i];
		assert_int_equal(notify_task_write(&t, &b, sha), GW_INVALID);
	}
	assert_int_equal(b.len, 0);
	/* Too small a buffer: GW_TOOBIG. */
	buf_cleanup(&b);
	buf_init(&b, 100);
	assert_int_equal(notify_task_write(&good, &b, sha), GW_TOOBIG);
	buf_cleanup(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_task),
	    cmocka_unit_test(test_task_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
