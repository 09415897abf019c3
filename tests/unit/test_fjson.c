/* Unit tests for the fjson FHIR JSON model: parsing, positions, errors,
 * verbatim numbers, canonical output and building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fjson.h"
#include "util.h"

static char *
dump(const struct fj_node *n, unsigned flags)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	assert_int_equal(fj_dump(n, flags, &b), GW_OK);
	return buf_steal(&b, NULL);
}

static void
check_roundtrip(const char *in, unsigned flags, const char *want)
{
	struct fj_doc *doc = NULL;
	struct fj_error err;
	enum gw_err rc = fj_parse(in, strlen(in), 0, &doc, &err);
	char *got;

	if (rc != GW_OK)
		fail_msg("parse %s: got error '%s' at %u:%u, want success", in,
			 err.msg, err.line, err.col);
	got = dump(doc->root, flags);
	if (strcmp(got, want) != 0)
		fail_msg("dump of %s: got %s, want %s", in, got, want);
	free(got);
	fj_doc_free(doc);
}

static void
test_valid_roundtrip(void **state)
{
	static const struct {
		const char *in, *compact, *canonical;
	} cases[] = {
	    {"{}", "{}", "{}"},
	    {"[]", "[]", "[]"},
	    {" {\"b\": 1, \"a\": [true, false, null]} ",
	     "{\"b\":1,\"a\":[true,false,null]}",
	     "{\"a\":[true,false,null],\"b\":1}"},
	    /* numbers are copied exactly as written */
	    {"{\"v\":1.50}", "{\"v\":1.50}", "{\"v\":1.50}"},
	    {"[1.5,1.50,-0.0,0,1e5,1E-7,100]", "[1.5,1.50,-0.0,0,1e5,1E-7,100]",
	     "[1.5,1.50,-0.0,0,1e5,1E-7,100]"},
	    /* escapes decoded, then written minimally */
	    {"\"\\u0041\\/\\t\\u001f\\u007f\"", "\"A/\\t\\u001f\x7f\"",
	     "\"A/\\t\\u001f\x7f\""},
	    /* RFC 8785 section 3.2.2.2 string example */
	    {"\"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\"",
	     "\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"",
	     "\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\""},
	    /* surrogate pair becomes one UTF-8 sequence */
	    {"\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"",
	     "\"\xf0\x9f\x98\x80\""},
	    {"[[[]],{\"x\":{}}]", "[[[]],{\"x\":{}}]", "[[[]],{\"x\":{}}]"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		check_roundtrip(cases[i].in, 0, cases[i].compact);
		check_roundtrip(cases[i].in, FJ_CANONICAL, cases[i].canonical);
	}
}

/* RFC 8785 section 3.2.3: keys sorted by UTF-16 code units. */
static void
test_canonical_key_order(void **state)
{
	const char *in = "{\"\\u20ac\":1,\"\\r\":2,\"\\ufb33\":3,\"1\":4,"
			 "\"\\ud83d\\ude00\":5,\"\\u0080\":6,\"\\u00f6\":7}";
	const char *want = "{\"\\r\":2,\"1\":4,\"\xc2\x80\":6,\"\xc3\xb6\":7,"
			   "\"\xe2\x82\xac\":1,\"\xf0\x9f\x98\x80\":5,"
			   "\"\xef\xac\xb3\":3}";

	check_roundtrip(in, FJ_CANONICAL, want);
	/* A key that is a prefix of another sorts first. */
	check_roundtrip("{\"identifier\":1,\"id\":2,\"i\":3,\"\":4}",
			FJ_CANONICAL,
			"{\"\":4,\"i\":3,\"id\":2,\"identifier\":1}");
}

static void
test_errors(void **state)
{
	static const struct {
		const char *in;
		uint32_t line, col;
		const char *msg;
	} cases[] = {
	    {"", 1, 1, "unexpected end"},
	    {"{\"a\":1,\"a\":2}", 1, 8, "duplicate member"},
	    {"{\n  \"a\": 01\n}", 2, 8, "invalid number"},
	    {"[1.]", 1, 2, "invalid number"},
	    {"[.5]", 1, 2, "unexpected character"},
	    {"[+1]", 1, 2, "unexpected character"},
	    {"{\"a\":tru}", 1, 6, "invalid literal"},
	    {"\"\xc3\x28\"", 1, 2, "invalid UTF-8"},
	    {"\"\xed\xa0\x80\"", 1, 2, "invalid UTF-8"}, /* surrogate */
	    {"\"\xc0\xaf\"", 1, 2, "invalid UTF-8"},	 /* overlong */
	    {"\"\\ud83d\"", 1, 8, "lone high surrogate"},
	    {"\"\\ude00\"", 1, 8, "lone low surrogate"},
	    {"\"a\nb\"", 1, 3, "control character"},
	    {"\"\\x\"", 1, 3, "invalid escape"},
	    {"{\"a\":1,}", 1, 8, "member name"},
	    {"[1,]", 1, 4, "unexpected character"},
	    {"{} x", 1, 4, "after the JSON value"},
	    {"\xef\xbb\xbf{}", 1, 1, "unexpected character"},
	    {"{\"a\" 1}", 1, 6, "expected ':'"},
	    {"[1 2]", 1, 4, "expected ','"},
	    {"\"abc", 1, 5, "unterminated"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fj_doc *doc = NULL;
		struct fj_error err;
		enum gw_err rc =
		    fj_parse(cases[i].in, strlen(cases[i].in), 0, &doc, &err);

		if (rc != GW_PARSE)
			fail_msg("case %zu: got %s, want parse error", i,
				 gw_strerror(rc));
		assert_null(doc);
		if (err.line != cases[i].line || err.col != cases[i].col ||
		    strstr(err.msg, cases[i].msg) == NULL)
			fail_msg("case %zu: got %u:%u '%s', want %u:%u '%s'", i,
				 err.line, err.col, err.msg, cases[i].line,
				 cases[i].col, cases[i].msg);
	}
}

static void
test_depth_limit(void **state)
{
	char deep[2 * FJ_MAX_DEPTH + 8];
	struct fj_doc *doc = NULL;
	size_t i, n = FJ_MAX_DEPTH + 2;

	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[2 * n - 1 - i] = ']';
	}
	assert_int_equal(fj_parse(deep, 2 * n, 0, &doc, NULL), GW_PARSE);
	assert_int_equal(fj_parse(deep + 3, 2 * n - 6, 0, &doc, NULL), GW_OK);
	fj_doc_free(doc);
}

static void
test_positions_and_access(void **state)
{
	const char *in = "{\n  \"resourceType\": \"Patient\",\n"
			 "  \"name\": [ {\"family\": \"Jansen\"} ],\n"
			 "  \"_birthDate\": {\"id\": \"x\"}\n}";
	struct fj_doc *doc = NULL;
	struct fj_node *name, *first;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	assert_string_equal(fj_get_str(doc->root, "resourceType"), "Patient");
	name = fj_get(doc->root, "name");
	assert_non_null(name);
	assert_int_equal(name->type, FJ_ARRAY);
	assert_int_equal(name->line, 3);
	assert_int_equal(name->col, 11);
	first = fj_at(name, 0);
	assert_int_equal(first->col, 13);
	assert_true(fj_str_eq(fj_get(first, "family"), "Jansen"));
	assert_null(fj_at(name, 1));
	assert_null(fj_get(doc->root, "birthDate"));
	assert_null(fj_get(name, "x"));
	fj_doc_free(doc);
}

static void
test_duplicates_allowed_by_flag(void **state)
{
	const char *in = "{\"a\":1,\"a\":2}";
	struct fj_doc *doc = NULL;

	assert_int_equal(
	    fj_parse(in, strlen(in), FJ_ALLOW_DUPLICATES, &doc, NULL), GW_OK);
	assert_int_equal(doc->root->u.kids.count, 2);
	fj_doc_free(doc);
}

static void
test_build_and_modify(void **state)
{
	const char *in = "{\"resourceType\":\"Bundle\",\"meta\":{},\"x\":1.0}";
	struct fj_doc *doc = NULL, *other;
	struct fj_node *sig, *copy;
	char *got;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	sig = fj_new_object(doc);
	assert_int_equal(fj_set(doc, sig, "data", fj_new_string(doc, "q\"")),
			 GW_OK);
	assert_int_equal(fj_set(doc, doc->root, "signature", sig), GW_OK);
	assert_int_equal(
	    fj_set(doc, doc->root, "x", fj_new_number(doc, "2.50")), GW_OK);
	assert_true(fj_remove(doc->root, "meta"));
	assert_false(fj_remove(doc->root, "meta"));
	assert_null(fj_new_number(doc, "1e"));
	assert_null(fj_new_number(doc, "01"));
	got = dump(doc->root, 0);
	assert_string_equal(got, "{\"resourceType\":\"Bundle\",\"x\":2.50,"
				 "\"signature\":{\"data\":\"q\\\"\"}}");
	free(got);

	other = fj_doc_new();
	copy = fj_copy(other, doc->root);
	fj_doc_free(doc);
	other->root = copy;
	got = dump(copy, FJ_CANONICAL);
	assert_string_equal(got, "{\"resourceType\":\"Bundle\",\"signature\":"
				 "{\"data\":\"q\\\"\"},\"x\":2.50}");
	free(got);
	fj_doc_free(other);
}

/* fj_copy_shared: an editable copy that points at the source's text;
 * edits of the copy leave the source as it was. */
static void
test_copy_shared(void **state)
{
	const char *in = "{\"resourceType\":\"Goal\",\"a\":[\"x\",2.50,true,"
			 "null],\"b\":{\"c\":\"d\"}}";
	struct fj_doc *doc = NULL, *other = fj_doc_new();
	struct fj_node *copy;
	char *got;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	copy = fj_copy_shared(other, doc->root);
	assert_non_null(copy);
	other->root = copy;
	got = dump(copy, 0);
	assert_string_equal(got, in);
	free(got);
	/* the text is shared, the nodes are not */
	assert_ptr_equal(fj_get_str(copy, "resourceType"),
			 fj_get_str(doc->root, "resourceType"));
	assert_ptr_not_equal(fj_get(copy, "b"), fj_get(doc->root, "b"));
	assert_true(fj_remove(fj_get(copy, "b"), "c"));
	assert_int_equal(fj_set(other, copy, "resourceType",
				fj_new_string(other, "Consent")),
			 GW_OK);
	got = dump(doc->root, 0);
	assert_string_equal(got, in);
	free(got);
	got = dump(copy, 0);
	assert_string_equal(got, "{\"resourceType\":\"Consent\",\"a\":[\"x\","
				 "2.50,true,null],\"b\":{}}");
	free(got);
	fj_doc_free(other);
	fj_doc_free(doc);
}

static void
test_pretty(void **state)
{
	const char *in = "{\"a\":[1,{}],\"b\":{\"c\":null}}";
	struct fj_doc *doc = NULL;
	char *got;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	got = dump(doc->root, FJ_PRETTY);
	assert_string_equal(got, "{\n  \"a\": [\n    1,\n    {}\n  ],\n"
				 "  \"b\": {\n    \"c\": null\n  }\n}\n");
	free(got);
	fj_doc_free(doc);
}

static void
test_jansson_interop(void **state)
{
	const char *in = "{\"i\":12345678901,\"d\":0.5,\"s\":\"\xc3\xa9\","
			 "\"a\":[true,null]}";
	struct fj_doc *doc = NULL, *back;
	json_t *j;
	char *got;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	j = fj_to_jansson(doc->root);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "i")),
			 12345678901LL);
	back = fj_doc_new();
	back->root = fj_from_jansson(back, j);
	got = dump(back->root, 0);
	assert_string_equal(got, in);
	free(got);
	json_decref(j);
	fj_doc_free(back);
	fj_doc_free(doc);
}

static void
test_buffer_limit(void **state)
{
	const char *in = "[\"0123456789\",\"0123456789\"]";
	struct fj_doc *doc = NULL;
	struct buf b;

	assert_int_equal(fj_parse(in, strlen(in), 0, &doc, NULL), GW_OK);
	buf_init(&b, 10);
	assert_int_equal(fj_dump(doc->root, 0, &b), GW_TOOBIG);
	buf_cleanup(&b);
	fj_doc_free(doc);
	fj_doc_free(NULL);
}

/* An object with many members: the duplicate check indexes the names
 * (it used to compare each new name with every earlier one: 200,000
 * members took about a minute). A duplicate far in is still found, at its
 * own position; one among the first few, before the index exists, too. */
static void
test_many_keys(void **state)
{
	enum { N = 200000 };
	struct fj_doc *doc = NULL;
	struct fj_error err;
	struct buf b;
	char want[32];

	buf_init(&b, (size_t)64 << 20);
	assert_int_equal(buf_adds(&b, "{"), GW_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(
		    buf_printf(&b, "%s\"k%zu\":%zu", i ? "," : "", i, i),
		    GW_OK);
	assert_int_equal(buf_adds(&b, "}"), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, &err), GW_OK);
	assert_int_equal(doc->root->u.kids.count, N);
	assert_non_null(fj_get(doc->root, "k0"));
	assert_string_equal(doc->root->u.kids.last->key, "k199999");
	fj_doc_free(doc);
	doc = NULL;

	/* the same object with "k123456" again at the end */
	b.len--;
	snprintf(want, sizeof(want), ",\"k123456\":0}");
	assert_int_equal(buf_adds(&b, want), GW_OK);
	assert_int_equal(fj_parse(b.data, b.len, 0, &doc, &err), GW_PARSE);
	assert_null(doc);
	assert_string_equal(err.msg, "duplicate member name");
	if (err.offset != b.len - strlen(want) + 1)
		fail_msg("duplicate at offset %zu, want %zu", err.offset,
			 b.len - strlen(want) + 1);
	/* duplicates are found both sides of the indexing threshold */
	for (size_t n = 2; n < 40; n++) {
		buf_cleanup(&b);
		buf_init(&b, 1 << 20);
		assert_int_equal(buf_adds(&b, "{"), GW_OK);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(buf_printf(&b, "\"k%zu\":0,", i),
					 GW_OK);
		assert_int_equal(buf_printf(&b, "\"k%zu\":0}", n / 2), GW_OK);
		assert_int_equal(fj_parse(b.data, b.len, 0, &doc, &err),
				 GW_PARSE);
		assert_string_equal(err.msg, "duplicate member name");
	}
	buf_cleanup(&b);
}

/* fj_parse_until: a deadline already past stops a long array with
 * GW_TEMP and no document; one far ahead parses it. */
static void
test_parse_deadline(void **state)
{
	enum { N = 100000 };
	size_t len = 2 + (size_t)N * 2;
	char *text = malloc(len);
	struct fj_doc *doc = NULL;
	struct fj_error err;

	(void)state;
	assert_non_null(text);
	text[0] = '[';
	for (size_t i = 0; i < N; i++) {
		text[1 + 2 * i] = '1';
		text[2 + 2 * i] = i + 1 < N ? ',' : ']';
	}
	len = 1 + (size_t)N * 2;
	assert_int_equal(
	    fj_parse_until(text, len, 0, util_mono_ms() - 1, &doc, &err),
	    GW_TEMP);
	assert_null(doc);
	assert_int_equal(
	    fj_parse_until(text, len, 0, util_mono_ms() + 600000, &doc, &err),
	    GW_OK);
	assert_int_equal(doc->root->u.kids.count, N);
	fj_doc_free(doc);
	free(text);
}

/* fj_equal: member order ignored; numbers by value per mode. */
static void
test_equal(void **state)
{
	static const struct {
		const char *a, *b;
		int exact, dbl; /* want for FDEC_EXACT, FDEC_DOUBLE */
	} cases[] = {
	    {"1", "1.00", 1, 1},
	    {"1e0", "10e-1", 1, 1},
	    {"0.1", "0.10000000000000000001", 0, 1},
	    {"1e400", "2e400", 0, 1},
	    {"{\"a\":1,\"b\":[true,null]}", "{\"b\":[true,null],\"a\":1.0}", 1,
	     1},
	    {"[1,2]", "[2,1]", 0, 0},
	    {"{\"a\":1}", "{\"a\":1,\"b\":2}", 0, 0},
	    {"\"1\"", "1", 0, 0},
	    {"\"a\\u0000b\"", "\"a\"", 0, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fj_doc *a = NULL, *b = NULL;
		bool ge, gd;

		assert_int_equal(
		    fj_parse(cases[i].a, strlen(cases[i].a), 0, &a, NULL),
		    GW_OK);
		assert_int_equal(
		    fj_parse(cases[i].b, strlen(cases[i].b), 0, &b, NULL),
		    GW_OK);
		ge = fj_equal(a->root, b->root, FDEC_EXACT);
		gd = fj_equal(a->root, b->root, FDEC_DOUBLE);
		if (ge != (cases[i].exact != 0) || gd != (cases[i].dbl != 0))
			fail_msg("fj_equal(%s, %s): got exact %d double %d, "
				 "want %d %d",
				 cases[i].a, cases[i].b, ge, gd, cases[i].exact,
				 cases[i].dbl);
		fj_doc_free(a);
		fj_doc_free(b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_roundtrip),
	    cmocka_unit_test(test_canonical_key_order),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_positions_and_access),
	    cmocka_unit_test(test_duplicates_allowed_by_flag),
	    cmocka_unit_test(test_build_and_modify),
	    cmocka_unit_test(test_copy_shared),
	    cmocka_unit_test(test_pretty),
	    cmocka_unit_test(test_jansson_interop),
	    cmocka_unit_test(test_buffer_limit),
	    cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_parse_deadline),
	    cmocka_unit_test(test_equal),
	};

	return cmocka_run_group_tests_name("fjson", tests, NULL, NULL);
}
