/* Unit tests for the FHIR static canonicalisation: RFC 8785 vectors that
 * do not re-render numbers, FHIR root exclusions, and rejected input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canon.h"
#include "util.h"

/* Canonical form of in, or fail the test. */
static char *
canon_ok(const char *in)
{
	struct buf b;
	struct fj_error err;
	enum gw_err rc;

	buf_init(&b, 1 << 20);
	memset(&err, 0, sizeof(err));
	rc = canon_text(in, strlen(in), &b, &err);
	if (rc != GW_OK)
		fail_msg("canon of %s: got %s (%s), want success", in,
			 gw_strerror(rc), err.msg);
	return buf_steal(&b, NULL);
}

static void
check(const char *in, const char *want)
{
	char *got = canon_ok(in);

	if (strcmp(got, want) != 0)
		fail_msg("canon of %s:\n got  %s\n want %s", in, got, want);
	free(got);
}

static void
test_vectors(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    /* key order, whitespace */
	    {"{ \"resourceType\" : \"Basic\",\n\t\"b\": 1, \"a\" : [ 2 , 3 ] }",
	     "{\"a\":[2,3],\"b\":1,\"resourceType\":\"Basic\"}"},
	    /* a key that is a prefix of another sorts first */
	    {"{\"resourceType\":\"Basic\",\"identifier\":[],\"id\":\"1\","
	     "\"x\":{\"identifier\":1,\"id\":2,\"i\":3}}",
	     "{\"id\":\"1\",\"identifier\":[],\"resourceType\":\"Basic\","
	     "\"x\":{\"i\":3,\"id\":2,\"identifier\":1}}"},
	    /* numbers copied as written: 1.50 is not 1.5 */
	    {"{\"resourceType\":\"Observation\",\"v\":1.50,\"w\":1.5,"
	     "\"x\":-0.5,\"y\":0,\"z\":100}",
	     "{\"resourceType\":\"Observation\",\"v\":1.50,\"w\":1.5,"
	     "\"x\":-0.5,\"y\":0,\"z\":100}"},
	    /* unicode escapes become UTF-8; surrogate pairs one code point */
	    {"{\"resourceType\":\"Basic\",\"s\":\"\\u00e9\\u20ac\\ud83d\\ude00"
	     "\\/\"}",
	     "{\"resourceType\":\"Basic\",\"s\":\"\xc3\xa9\xe2\x82\xac"
	     "\xf0\x9f\x98\x80/\"}"},
	    /* minimal escaping: only quote, backslash and controls */
	    {"{\"resourceType\":\"Basic\",\"s\":\"\\\"\\\\\\b\\f\\n\\r\\t"
	     "\\u0001\\u001f\\u007f<>&\"}",
	     "{\"resourceType\":\"Basic\",\"s\":\"\\\"\\\\\\b\\f\\n\\r\\t"
	     "\\u0001\\u001f\x7f<>&\"}"},
	    /* nested arrays keep their order; objects inside are sorted */
	    {"{\"resourceType\":\"Basic\",\"n\":[[3,[2,[1,{\"b\":[],\"a\":{}}]]"
	     "],"
	     "[]]}",
	     "{\"n\":[[3,[2,[1,{\"a\":{},\"b\":[]}]]],[]],"
	     "\"resourceType\":\"Basic\"}"},
	    /* RFC 8785 arrays vector, nested */
	    {"{\"resourceType\":\"Basic\",\"x\":[56,{\"d\":true,\"10\":null,"
	     "\"1\":[]}]}",
	     "{\"resourceType\":\"Basic\",\"x\":[56,{\"1\":[],\"10\":null,"
	     "\"d\":true}]}"},
	    /* RFC 8785 french vector: no locale, code units */
	    {"{\"resourceType\":\"Basic\",\"x\":{\"peach\":\"This sorting "
	     "order\",\"p\xc3\xa9\x63h\xc3\xa9\":\"is wrong according to "
	     "French\",\"p\xc3\xaa\x63he\":\"but canonicalization MUST\","
	     "\"sin\":\"ignore locale\"}}",
	     "{\"resourceType\":\"Basic\",\"x\":{\"peach\":\"This sorting "
	     "order\",\"p\xc3\xa9\x63h\xc3\xa9\":\"is wrong according to "
	     "French\",\"p\xc3\xaa\x63he\":\"but canonicalization MUST\","
	     "\"sin\":\"ignore locale\"}}"},
	    /* RFC 8785 structures vector (56.0 stays 56.0 here: numbers
	     * are never re-rendered) */
	    {"{\"resourceType\":\"Basic\",\"x\":{\"1\":{\"f\":{\"f\":\"hi\","
	     "\"F\":5},\"\\n\":56.0},\"10\":{},\"\":\"empty\",\"a\":{},"
	     "\"111\":[{\"e\":\"yes\",\"E\":\"no\"}],\"A\":{}}}",
	     "{\"resourceType\":\"Basic\",\"x\":{\"\":\"empty\",\"1\":{\"\\n\":"
	     "56.0,\"f\":{\"F\":5,\"f\":\"hi\"}},\"10\":{},\"111\":[{\"E\":"
	     "\"no\",\"e\":\"yes\"}],\"A\":{},\"a\":{}}}"},
	    /* RFC 8785 unicode vector: no normalisation */
	    {"{\"resourceType\":\"Basic\",\"x\":{\"Unnormalized Unicode\":"
	     "\"A\\u030a\"}}",
	     "{\"resourceType\":\"Basic\",\"x\":{\"Unnormalized Unicode\":"
	     "\"A\xcc\x8a\"}}"},
	};

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
		check(cases[i].in, cases[i].want);
}

/* RFC 8785 "weird" vector: sorting by UTF-16 code units, where U+1F602
 * (a surrogate pair) sorts before U+FB33. Checked at the root (sorted by
 * canon itself) and nested (sorted by fjson). */
static void
test_utf16_order(void **state)
{
	static const char members[] =
	    "\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\","
	    "\"\\u000a\":\"Newline\",\"1\":\"One\",\"\\u0080\":"
	    "\"Control\\u007f\",\"\\ud83d\\ude02\":\"Smiley\",\"\\u00f6\":"
	    "\"Latin Small Letter O With Diaeresis\",\"\\ufb33\":\"Hebrew "
	    "Letter Dalet With Dagesh\",\"</script>\":\"Browser Challenge\"";
	static const char head[] =
	    "\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\","
	    "\"</script>\":\"Browser Challenge\"";
	static const char tail[] =
	    "\"\xc2\x80\":\"Control\x7f\",\"\xc3\xb6\":\"Latin Small Letter O "
	    "With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\",\"\xf0\x9f\x98\x82"
	    "\":\"Smiley\",\"\xef\xac\xb3\":\"Hebrew Letter Dalet With "
	    "Dagesh\"";
	char in[1024], want[1024];

	snprintf(in, sizeof(in), "{%s,\"resourceType\":\"Basic\"}", members);
	snprintf(want, sizeof(want), "{%s,\"resourceType\":\"Basic\",%s}", head,
		 tail);
	check(in, want);

	snprintf(in, sizeof(in), "{\"resourceType\":\"Basic\",\"x\":{%s}}",
		 members);
	snprintf(want, sizeof(want),
		 "{\"resourceType\":\"Basic\",\"x\":{%s,%s}}", head, tail);
	check(in, want);
}

static void
test_fhir_exclusions(void **state)
{
	/* Bundle: root text, meta, signature go; nested ones stay. */
	check("{\"resourceType\":\"Bundle\",\"meta\":{\"versionId\":\"1\"},"
	      "\"text\":{\"div\":\"x\"},\"signature\":{\"data\":\"AA==\"},"
	      "\"type\":\"collection\",\"entry\":[{\"resource\":{"
	      "\"resourceType\":\"Patient\",\"meta\":{\"v\":1},\"text\":{}}}]}",
	      "{\"entry\":[{\"resource\":{\"meta\":{\"v\":1},\"resourceType\":"
	      "\"Patient\",\"text\":{}}}],\"resourceType\":\"Bundle\","
	      "\"type\":\"collection\"}");
	/* Another resource: text and meta go, a member named signature
	 * stays. */
	check("{\"resourceType\":\"Provenance\",\"text\":{},\"meta\":{},"
	      "\"signature\":[{\"data\":\"AA==\"}],\"recorded\":\"2026-01-01"
	      "T00:00:00Z\"}",
	      "{\"recorded\":\"2026-01-01T00:00:00Z\",\"resourceType\":"
	      "\"Provenance\",\"signature\":[{\"data\":\"AA==\"}]}");
	/* Formatting, member order and meta/text changes do not matter. */
	{
		char *a = canon_ok("{\"resourceType\":\"Bundle\",\"id\":\"1\","
				   "\"meta\":{\"versionId\":\"1\"}}");
		char *b = canon_ok("{\n  \"meta\": {\"versionId\": \"7\"},\n"
				   "  \"id\": \"1\",\n  \"resourceType\": "
				   "\"Bundle\",\n  \"text\": {}\n}\n");
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
}

static void
test_rejected(void **state)
{
	static const struct {
		const char *in;
		enum gw_err want;
	} cases[] = {
	    {"{\"resourceType\":\"Basic\",\"a\":1,\"a\":2}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"s\":\"\xc3\x28\"}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"s\":\"\xed\xa0\x80\"}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"s\":\"\\ud800\"}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"v\":1e5}", GW_INVALID},
	    {"{\"resourceType\":\"Basic\",\"v\":1.5E-7}", GW_INVALID},
	    {"{\"resourceType\":\"Basic\",\"v\":[0,{\"w\":2e0}]}", GW_INVALID},
	    {"{\"resourceType\":\"Basic\",\"v\":01}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"v\":-0}", GW_INVALID},
	    {"{\"resourceType\":\"Basic\",\"v\":-0.00}", GW_INVALID},
	    {"{\"resourceType\":\"Basic\",\"v\":1.}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\",\"v\":.5}", GW_PARSE},
	    {"{\"resourceType\":\"Basic\"} x", GW_PARSE},
	    {"{\"a\":1}", GW_INVALID},
	    {"{\"resourceType\":7}", GW_INVALID},
	    {"[{\"resourceType\":\"Basic\"}]", GW_INVALID},
	    {"\"Basic\"", GW_INVALID},
	};
	struct buf b;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
		enum gw_err rc;
		buf_init(&b, 1 << 20);
		assert_int_equal(buf_adds(&b, "keep"), GW_OK);
		rc = canon_text(cases[i].in, strlen(cases[i].in), &b, NULL);
		if (rc != cases[i].want)
			fail_msg("canon of %s: got %s, want %s", cases[i].in,
				 gw_strerror(rc), gw_strerror(cases[i].want));
		/* out is left as it was */
		assert_string_equal(b.data, "keep");
		buf_cleanup(&b);
	}
	/* -0.5 and 0.0 are fine */
	check("{\"resourceType\":\"Basic\",\"v\":[-0.5,0.0,0]}",
	      "{\"resourceType\":\"Basic\",\"v\":[-0.5,0.0,0]}");
}

static void
test_error_position(void **state)
{
	const char *in = "{\"resourceType\":\"Basic\",\n\"v\": 2E3}";
	struct fj_error err;
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(canon_text(in, strlen(in), &b, &err), GW_INVALID);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 6);
	assert_non_null(strstr(err.msg, "2E3"));
	buf_cleanup(&b);
}

static void
test_document_unchanged(void **state)
{
	const char *in = "{\"resourceType\":\"Bundle\",\"text\":{},\"meta\":"
			 "{},\"signature\":{},\"b\":1,\"a\":2}";
	struct fj_doc *doc = NULL;
	struct buf before, after, c;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	buf_init(&before, 4096);
	buf_init(&after, 4096);
	buf_init(&c, 4096);
	assert_int_equal(fj_dump(doc->root, 0, &before), GW_OK);
	assert_int_equal(canon_resource(doc->root, &c, NULL), GW_OK);
	assert_string_equal(c.data, "{\"a\":2,\"b\":1,\"resourceType\":"
				    "\"Bundle\"}");
	assert_int_equal(fj_dump(doc->root, 0, &after), GW_OK);
	assert_string_equal(before.data, after.data);
	/* appends to what out holds; a full buffer fails cleanly */
	c.max = c.len + 5;
	assert_int_equal(canon_resource(doc->root, &c, NULL), GW_TOOBIG);
	assert_string_equal(c.data, "{\"a\":2,\"b\":1,\"resourceType\":"
				    "\"Bundle\"}");
	buf_cleanup(&before);
	buf_cleanup(&after);
	buf_cleanup(&c);
	fj_doc_free(doc);
}

/* The project's test Bundles: canonical output is stable and parses back
 * to the same canonical output (idempotent). */
static void
test_files_idempotent(void **state)
{
	static const char *files[] = {"tests/data/sign/bundle-small.json",
				      "tests/data/sign/bundle-20k.json"};
	const char *src = getenv("PZPGW_SRCDIR");
	char path[4096], *text;
	size_t len;
	struct buf a, b;

	for (size_t i = 0; i < UTIL_ARRAY_LEN(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", src ? src : ".",
			 files[i]);
		assert_int_equal(util_read_file(path, 1 << 22, &text, &len),
				 GW_OK);
		buf_init(&a, 1 << 22);
		buf_init(&b, 1 << 22);
		assert_int_equal(canon_text(text, len, &a, NULL), GW_OK);
		assert_int_equal(canon_text(a.data, a.len, &b, NULL), GW_OK);
		assert_string_equal(a.data, b.data);
		assert_true(a.len < len);
		if (i == 0)
			assert_non_null(strstr(a.data, "\"value\":1.50"));
		free(text);
		buf_cleanup(&a);
		buf_cleanup(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_utf16_order),
	    cmocka_unit_test(test_fhir_exclusions),
	    cmocka_unit_test(test_rejected),
	    cmocka_unit_test(test_error_position),
	    cmocka_unit_test(test_document_unchanged),
	    cmocka_unit_test(test_files_idempotent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
