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

			if (xml_lang || in_list(xhtml_attributes,
						sizeof(xhtml_attributes) /
						    sizeof(xhtml_attributes[0]),
						an))
				continue;
			if (!*reported)
				v_issue(r, FHIR_ERROR, "value", v,
					"txt-1: illegal attribute name in the "
					"XHTML ('%.40s' on '%.40s')",
					an, (const char *)n->name);
			*reported = true;
		}
		xhtml_walk(r, v, n->children, text, reported);
	}
}

/* HTML 4 character entities (Latin-1 and common punctuation), declared
 * for narrative that uses them as XHTML written by hand often does; the
 * reference validator accepts them too. */
static const char xhtml_entities[] =
    "<!DOCTYPE div [<!ENTITY nbsp \"&#160;\"><!ENTITY iexcl \"&#161;\">"
    "<!ENTITY cent \"&#162;\"><!ENTITY pound \"&#163;\">"
    "<!ENTITY curren \"&#164;\"><!ENTITY yen \"&#165;\">"
    "<!ENTITY brvbar \"&#166;\"><!ENTITY sect \"&#167;\">"
    "<!ENTITY uml \"&#168;\"><!ENTITY copy \"&#169;\">"
    "<!ENTITY ordf \"&#170;\"><!ENTITY laquo \"&#171;\">"
    "<!ENTITY not \"&#172;\"><!ENTITY shy \"&#173;\">"
    "<!ENTITY reg \"&#174;\"><!ENTITY macr \"&#175;\">"
    "<!ENTITY deg \"&#176;\"><!ENTITY plusmn \"&#177;\">"
    "<!ENTITY sup2 \"&#178;\"><!ENTITY sup3 \"&#179;\">"
    "<!ENTITY acute \"&#180;\"><!ENTITY micro \"&#181;\">"
    "<!ENTITY para \"&#182;\"><!ENTITY middot \"&#183;\">"
    "<!ENTITY cedil \"&#184;\"><!ENTITY sup1 \"&#185;\">"
    "<!ENTITY ordm \"&#186;\"><!ENTITY raquo \"&#187;\">"
    "<!ENTITY frac14 \"&#188;\"><!ENTITY frac12 \"&#189;\">"
    "<!ENTITY frac34 \"&#190;\"><!ENTITY iquest \"&#191;\">"
    "<!ENTITY Agrave \"&#192;\"><!ENTITY Aacute \"&#193;\">"
    "<!ENTITY Acirc \"&#194;\"><!ENTITY Atilde \"&#195;\">"
    "<!ENTITY Auml \"&#196;\"><!ENTITY Aring \"&#197;\">"
    "<!ENTITY AElig \"&#198;\"><!ENTITY Ccedil \"&#199;\">"
    "<!ENTITY Egrave \"&#200;\"><!ENTITY Eacute \"&#201;\">"
    "<!ENTITY Ecirc \"&#202;\"><!ENTITY Euml \"&#203;\">"
    "<!ENTITY Igrave \"&#204;\"><!ENTITY Iacute \"&#205;\">"
    "<!ENTITY Icirc \"&#206;\"><!ENTITY Iuml \"&#207;\">"
    "<!ENTITY ETH \"&#208;\"><!ENTITY Ntilde \"&#209;\">"
    "<!ENTITY Ograve \"&#210;\"><!ENTITY Oacute \"&#211;\">"
    "<!ENTITY Ocirc \"&#212;\"><!ENTITY Otilde \"&#213;\">"
    "<!ENTITY Ouml \"&#214;\"><!ENTITY times \"&#215;\">"
    "<!ENTITY Oslash \"&#216;\"><!ENTITY Ugrave \"&#217;\">"
    "<!ENTITY Uacute \"&#218;\"><!ENTITY Ucirc \"&#219;\">"
    "<!ENTITY Uuml \"&#220;\"><!ENTITY Yacute \"&#221;\">"
    "<!ENTITY THORN \"&#222;\"><!ENTITY szlig \"&#223;\">"
    "<!ENTITY agrave \"&#224;\"><!ENTITY aacute \"&#225;\">"
    "<!ENTITY acirc \"&#226;\"><!ENTITY atilde \"&#227;\">"
    "<!ENTITY auml \"&#228;\"><!ENTITY aring \"&#229;\">"
    "<!ENTITY aelig \"&#230;\"><!ENTITY ccedil \"&#231;\">"
    "<!ENTITY egrave \"&#232;\"><!ENTITY eacute \"&#233;\">"
    "<!ENTITY ecirc \"&#234;\"><!ENTITY euml \"&#235;\">"
    "<!ENTITY igrave \"&#236;\"><!ENTITY iacute \"&#237;\">"
    "<!ENTITY icirc \"&#238;\"><!ENTITY iuml \"&#239;\">"
    "<!ENTITY eth \"&#240;\"><!ENTITY ntilde \"&#241;\">"
    "<!ENTITY ograve \"&#242;\"><!ENTITY oacute \"&#243;\">"
    "<!ENTITY ocirc \"&#244;\"><!ENTITY otilde \"&#245;\">"
    "<!ENTITY ouml \"&#246;\"><!ENTITY divide \"&#247;\">"
    "<!ENTITY oslash \"&#248;\"><!ENTITY ugrave \"&#249;\">"
    "<!ENTITY uacute \"&#250;\"><!ENTITY ucirc \"&#251;\">"
    "<!ENTITY uuml \"&#252;\"><!ENTITY yacute \"&#253;\">"
    "<!ENTITY thorn \"&#254;\"><!ENTITY yuml \"&#255;\">"
    "<!ENTITY euro \"&#8364;\"><!ENTITY ndash \"&#8211;\">"
    "<!ENTITY mdash \"&#8212;\"><!ENTITY lsquo \"&#8216;\">"
    "<!ENTITY rsquo \"&#8217;\"><!ENTITY ldquo \"&#8220;\">"
    "<!ENTITY rdquo \"&#8221;\"><!ENTITY bull \"&#8226;\">"
    "<!ENTITY hellip \"&#8230;\"><!ENTITY trade \"&#8482;\">"
    "<!ENTITY larr \"&#8592;\"><!ENTITY rarr \"&#8594;\">"
    "<!ENTITY le \"&#8804;\"><!ENTITY ge \"&#8805;\">"
    "<!ENTITY ne \"&#8800;\">]>";

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
	if (doc == NULL && strchr(v->u.str.s, '&') != NULL) {
		/* again with the HTML entities declared (internal subset
		 * only, not substituted, nothing fetched) */
		struct buf b;

		buf_init(&b, sizeof(xhtml_entities) + v->u.str.len + 1);
		if (buf_adds(&b, xhtml_entities) == GW_OK &&
		    buf_add(&b, v->u.str.s, v->u.str.len) == GW_OK)
			doc =
			    xmlReadMemory(b.data, (int)b.len, "narrative", NULL,
					  XML_PARSE_NONET | XML_PARSE_NOERROR |
					      XML_PARSE_NOWARNING);
		buf_cleanup(&b);
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
