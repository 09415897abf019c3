/*
 * validate_datatype: the content rules of two datatypes: narrative XHTML
 * (well-formed, a div, basic formatting only: txt-1, txt-2) and Attachment
 * (size and SHA-1 hash match the data).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/sha.h>

#include "b64.h"
#include "validate_impl.h"

/* Elements and attributes allowed in narrative (FHIR: the basic HTML
 * formatting of HTML 4, a, img and style attributes; no scripts, forms,
 * event handlers). */
static const char *const xhtml_elements[] = {
    "a",	  "abbr",  "acronym", "address", "b",	  "bdo", "big",
    "blockquote", "br",	   "caption", "cite",	 "code",  "col", "colgroup",
    "dd",	  "dfn",   "div",     "dl",	 "dt",	  "em",	 "h1",
    "h2",	  "h3",	   "h4",      "h5",	 "h6",	  "hr",	 "i",
    "img",	  "kbd",   "li",      "ol",	 "p",	  "pre", "q",
    "samp",	  "small", "span",    "strong",	 "sub",	  "sup", "table",
    "tbody",	  "td",	   "tfoot",   "th",	 "thead", "tr",	 "tt",
    "ul",	  "var",
};

static const char *const xhtml_attributes[] = {
    "abbr",	   "accesskey",	  "align",   "alt",	"axis",	    "border",
    "cellpadding", "cellspacing", "char",    "charoff", "class",    "colspan",
    "dir",	   "frame",	  "headers", "height",	"href",	    "id",
    "lang",	   "name",	  "rowspan", "rules",	"scope",    "span",
    "src",	   "start",	  "style",   "summary", "tabindex", "title",
    "type",	   "valign",	  "value",   "width",
};

static bool
in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Case-insensitive search of needle (lower case) in hay. */
static const char *
find_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++) {
		size_t i = 0;

		while (i < n && hay[i] != '\0' && (hay[i] | 0x20) == needle[i])
			i++;
		if (i == n)
			return hay;
	}
	return NULL;
}

/* What is wrong with an allowed attribute's value, or NULL: a script
 * (javascript: link) or, in style, a url() that fetches something from
 * outside the resource (narrative carries no external stylesheet or
 * image references through CSS; data: URLs are inside). */
static const char *
attr_value_problem(xmlAttr *a)
{
	const char *an = (const char *)a->name, *why = NULL;
	xmlChar *val = xmlNodeGetContent((xmlNode *)a);
	const char *s = (const char *)val;

	if (s == NULL)
		return NULL;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if ((strcmp(an, "href") == 0 || strcmp(an, "src") == 0) &&
	    find_nocase(s, "javascript:") == s)
		why = "script URL in an attribute";
	else if (strcmp(an, "style") == 0) {
		if (find_nocase(s, "expression(") != NULL)
			why = "script in a style attribute";
		for (const char *u = find_nocase(s, "url(");
		     why == NULL && u != NULL; u = find_nocase(u + 4, "url(")) {
			const char *t = u + 4;

			while (*t == ' ' || *t == '"' || *t == '\'')
				t++;
			if (find_nocase(t, "data:") != t && *t != '#')
				why = "external reference in a style attribute";
		}
	}
	xmlFree(val);
	return why;
}

/* Walk the narrative tree; *text is set when non-blank text or an image
 * is found. Reports the first offending element and attribute. */
static void
xhtml_walk(struct vrun *r, const struct fj_node *v, xmlNode *n, bool *text,
	   bool *reported)
{
	for (; n != NULL; n = n->next) {
		if (n->type == XML_TEXT_NODE ||
		    n->type == XML_CDATA_SECTION_NODE) {
			const char *c = (const char *)n->content;

			if (c != NULL && !v_only_whitespace(c, strlen(c)))
				*text = true;
			continue;
		}
		if (n->type != XML_ELEMENT_NODE)
			continue;
		if (!in_list(xhtml_elements,
			     sizeof(xhtml_elements) / sizeof(xhtml_elements[0]),
			     (const char *)n->name)) {
			if (!*reported)
				v_issue(r, FHIR_ERROR, "value", v,
					"txt-1: illegal element name in the "
					"XHTML ('%.40s')",
					(const char *)n->name);
			*reported = true;
		}
		if (strcmp((const char *)n->name, "img") == 0)
			*text = true;
		for (xmlAttr *a = n->properties; a != NULL; a = a->next) {
			const char *an = (const char *)a->name;
			bool xml_lang =
			    a->ns != NULL && a->ns->prefix != NULL &&
			    strcmp((const char *)a->ns->prefix, "xml") == 0;
			const char *why = NULL;

			if (xml_lang)
				continue;
			/* xlink:href and the like sit in another namespace
			 * under an allowed local name: refuse them first */
			if (a->ns != NULL)
				why = "illegal attribute in another namespace";
			else if (!in_list(xhtml_attributes,
					  sizeof(xhtml_attributes) /
					      sizeof(xhtml_attributes[0]),
					  an))
				why = "illegal attribute name";
			else
				why = attr_value_problem(a);
			if (why == NULL)
				continue;
			if (!*reported)
				v_issue(r, FHIR_ERROR, "value", v,
					"txt-1: %s in the XHTML ('%.40s' on "
					"'%.40s')",
					why, an, (const char *)n->name);
			*reported = true;
		}
		xhtml_walk(r, v, n->children, text, reported);
	}
}

/* The first "&name;" in s whose name is not one of XML's five predefined
 * entities, copied to out (bounded); false when there is none. XHTML in
 * FHIR is XML without a DTD, so "&reg;" or "&nbsp;" are undeclared
 * entities: the HL7 validator reports them, and a reader that parses the
 * div as XML fails on them. */
static bool
html_entity(const char *s, char *out, size_t outsz)
{
	static const char *const xml_ents[] = {"amp", "lt", "gt", "quot",
					       "apos"};

	for (const char *p = strchr(s, '&'); p != NULL;
	     p = strchr(p + 1, '&')) {
		size_t n =
		    strspn(p + 1, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");

		if (n == 0 || p[1 + n] != ';')
			continue;
		bool predefined = false;
		for (size_t i = 0; i < sizeof(xml_ents) / sizeof(xml_ents[0]);
		     i++)
			if (strlen(xml_ents[i]) == n &&
			    strncmp(p + 1, xml_ents[i], n) == 0)
				predefined = true;
		if (!predefined) {
			snprintf(out, outsz, "&%.*s;", (int)(n > 20 ? 20 : n),
				 p + 1);
			return true;
		}
	}
	return false;
}

/* Narrative.div: well-formed XHTML, a div in the XHTML namespace, no
 * DOCTYPE, only basic formatting (txt-1), some content (txt-2). */
void
v_check_xhtml(struct vrun *r, const struct fj_node *v)
{
	xmlDoc *doc;
	xmlNode *root;
	bool text = false, reported = false;

	if (v->u.str.len > INT32_MAX / 2)
		return;
	if (strstr(v->u.str.s, "<!DOCTYPE") != NULL ||
	    strstr(v->u.str.s, "<!doctype") != NULL) {
		v_issue(r, FHIR_ERROR, "value", v,
			"the narrative must not have a DOCTYPE declaration");
		return;
	}
	doc = xmlReadMemory(v->u.str.s, (int)v->u.str.len, "narrative", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				XML_PARSE_NOWARNING);
	if (doc == NULL) {
		char ent[32];

		if (html_entity(v->u.str.s, ent, sizeof(ent))) {
			v_issue(
			    r, FHIR_ERROR, "value", v,
			    "the narrative uses the HTML entity '%s': XHTML "
			    "allows only &amp; &lt; &gt; &quot; &apos; and "
			    "numeric character references such as &#174;",
			    ent);
			return;
		}
	}
	if (doc == NULL) {
		v_issue(r, FHIR_ERROR, "value", v,
			"the narrative is not well-formed XHTML");
		return;
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL || strcmp((const char *)root->name, "div") != 0) {
		v_issue(r, FHIR_ERROR, "value", v,
			"the narrative must be a single <div> element");
	} else if (root->ns == NULL || root->ns->href == NULL ||
		   strcmp((const char *)root->ns->href,
			  "http://www.w3.org/1999/xhtml") != 0) {
		v_issue(r, FHIR_ERROR, "value", v,
			"wrong namespace on the XHTML ('%.80s', should be "
			"'http://www.w3.org/1999/xhtml')",
			root->ns != NULL && root->ns->href != NULL
			    ? (const char *)root->ns->href
			    : "null");
	} else {
		xhtml_walk(r, v, root->children, &text, &reported);
		if (!text)
			v_issue(r, FHIR_ERROR, "value", v,
				"txt-2: the narrative SHALL have some "
				"non-whitespace content");
	}
	xmlFreeDoc(doc);
}

/* Attachment.size and .hash (SHA-1, base64) must describe .data. */
void
v_check_attachment(struct vrun *r, const struct fj_node *v)
{
	const struct fj_node *data = fj_get(v, "data"),
			     *size = fj_get(v, "size");
	const char *hash = fj_get_str(v, "hash");
	struct buf clean, raw;
	unsigned char md[SHA_DIGEST_LENGTH];

	if (data == NULL || data->type != FJ_STRING ||
	    v_check_base64(data->u.str.s, data->u.str.len) != NULL)
		return;
	buf_init(&clean, data->u.str.len + 1);
	buf_init(&raw, data->u.str.len + 1);
	for (size_t i = 0; i < data->u.str.len; i++)
		if (!v_is_ws(data->u.str.s[i]) &&
		    buf_addc(&clean, data->u.str.s[i]) != GW_OK)
			goto done;
	if (clean.len == 0 ||
	    b64_decode(clean.data, clean.len, false, &raw) != GW_OK)
		goto done;
	if (size != NULL && size->type == FJ_NUMBER) {
		unsigned long long want = strtoull(size->u.str.s, NULL, 10);

		if (want != raw.len) {
			size_t old = v_path_add(r, ".", "size", 4);

			v_issue(
			    r, FHIR_ERROR, "value", size,
			    "stated attachment size %llu does not match the "
			    "actual size %zu",
			    want, raw.len);
			v_path_pop(r, old);
		}
	}
	if (hash != NULL && raw.data != NULL) {
		struct buf enc;

		SHA1((const unsigned char *)raw.data, raw.len, md);
		buf_init(&enc, 64);
		if (b64_encode(md, sizeof(md), false, &enc) == GW_OK &&
		    strcmp(enc.data, hash) != 0) {
			size_t old = v_path_add(r, ".", "hash", 4);

			v_issue(
			    r, FHIR_ERROR, "value", fj_get(v, "hash"),
			    "stated attachment hash does not match the SHA-1 "
			    "of the data");
			v_path_pop(r, old);
		}
		buf_cleanup(&enc);
	}
done:
	buf_cleanup(&clean);
	buf_cleanup(&raw);
}
