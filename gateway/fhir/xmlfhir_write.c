/*
 * xmlfhir_write: the fjson model to FHIR XML, driven by the same rule-set
 * type information as the reader (xmlfhir.c), so that reading the output
 * gives the input back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "rules.h"
#include "xmlfhir.h"
#include "xmlfhir_impl.h"

#define XW_MAX_PATH 512

struct xw {
	const struct rules_set *set;
	const struct rules_structure *element; /* Element: "_name" objects */
	struct buf *out;
	char *err;
	size_t errlen;
	enum gw_err rc;
	char path[XW_MAX_PATH]; /* where we are, for error messages */
	size_t pathlen;
};

/* One element to write: a JSON member and its "_name" companion. */
struct xw_member {
	const char *name;
	const struct fj_node *val; /* "name", NULL when absent */
	const struct fj_node *ext; /* "_name", NULL when absent */
	struct xmlfhir_info info;
};

static void
xw_fail(struct xw *x, enum gw_err rc, const char *what, const char *name)
{
	if (x->rc != GW_OK)
		return;
	x->rc = rc;
	if (x->errlen == 0)
		return;
	if (rc == GW_INVALID && what != NULL)
		/* the end of a long path says most */
		snprintf(x->err, x->errlen, "%s%s%s%s: %s",
			 x->pathlen > 120 ? "..." : "",
			 x->path + (x->pathlen > 120 ? x->pathlen - 120 : 0),
			 name ? "." : "", name ? name : "", what);
	else
		snprintf(x->err, x->errlen, "%s", gw_strerror(rc));
}

/* Extend the error path with ".name" or "[i]"; returns the old length
 * to restore with xw_pop. A path too long to hold stays cut short. */
static size_t
xw_push(struct xw *x, const char *name, long index)
{
	size_t old = x->pathlen, room = sizeof(x->path) - old, n;

	if (name != NULL) {
		/* the common case, without snprintf's cost */
		n = strlen(name) + (old ? 1 : 0);
		if (n < room) {
			if (old)
				x->path[old] = '.';
			memcpy(x->path + old + (old ? 1 : 0), name,
			       n - (old ? 1 : 0) + 1);
			x->pathlen = old + n;
		}
		return old;
	}
	int k = snprintf(x->path + old, room, "[%ld]", index);

	if (k > 0 && (size_t)k < room)
		x->pathlen = old + (size_t)k;
	else
		x->path[old] = '\0';
	return old;
}

static void
xw_pop(struct xw *x, size_t old)
{
	x->pathlen = old;
	x->path[old] = '\0';
}

static void
xw_add(struct xw *x, const char *s, size_t n)
{
	enum gw_err rc;

	if (x->rc != GW_OK)
		return;
	if ((rc = buf_add(x->out, s, n)) != GW_OK)
		xw_fail(x, rc, NULL, NULL);
}

static void
xw_adds(struct xw *x, const char *s)
{
	xw_add(x, s, strlen(s));
}

/*
 * Append s escaped for an attribute value or text. Tab, newline and
 * carriage return become character references so that attribute value
 * normalization keeps them; other control characters and U+FFFE/U+FFFF
 * cannot be written in XML 1.0 at all.
 */
static void
xw_escape(struct xw *x, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0;

	for (size_t i = 0; i < len && x->rc == GW_OK; i++) {
		const char *ent = NULL;

		switch (p[i]) {
		case '&':
			ent = "&amp;";
			break;
		case '<':
			ent = "&lt;";
			break;
		case '>':
			ent = "&gt;";
			break;
		case '"':
			ent = "&quot;";
			break;
		case '\t':
			ent = "&#x9;";
			break;
		case '\n':
			ent = "&#xA;";
			break;
		case '\r':
			ent = "&#xD;";
			break;
		default:
			if (p[i] < 0x20 ||
			    (p[i] == 0xEF && i + 2 < len && p[i + 1] == 0xBF &&
			     (p[i + 2] == 0xBE || p[i + 2] == 0xBF))) {
				xw_fail(x, GW_INVALID,
					"character not allowed in XML", NULL);
				return;
			}
			continue;
		}
		xw_add(x, s + run, i - run);
		xw_adds(x, ent);
		run = i + 1;
	}
	xw_add(x, s + run, len - run);
}

/* Write an attribute name="value" from a JSON string. */
static void
xw_attr(struct xw *x, const char *name, const struct fj_node *v)
{
	if (v->type != FJ_STRING) {
		xw_fail(x, GW_INVALID, "must be a string", name);
		return;
	}
	xw_adds(x, " ");
	xw_adds(x, name);
	xw_adds(x, "=\"");
	xw_escape(x, v->u.str.s, v->u.str.len);
	xw_adds(x, "\"");
}

/* The JSON type a primitive of FHIR type code has (as the reader makes
 * it): booleans and numbers, everything else a string. */
static enum fj_type
xw_prim_json_type(const char *type)
{
	static const char *const nums[] = {
	    "integer",
	    "decimal",
	    "positiveInt",
	    "unsignedInt",
	    "integer64",
	    "http://hl7.org/fhirpath/System.Integer",
	    "http://hl7.org/fhirpath/System.Decimal",
	};

	if (type == NULL)
		return FJ_STRING;
	if (strcmp(type, "boolean") == 0 ||
	    strcmp(type, "http://hl7.org/fhirpath/System.Boolean") == 0)
		return FJ_BOOL;
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(type, nums[i]) == 0)
			return FJ_NUMBER;
	return FJ_STRING;
}

static void xw_resource(struct xw *x, const struct fj_node *res, bool top,
			int depth);
static void xw_element(struct xw *x, const char *name,
		       const struct fj_node *obj, const struct xmlfhir_ctx *ctx,
		       const struct fj_node *value, int depth);

/* Is name one of the elements whose "url" is an XML attribute? */
static bool
xw_is_extension(const char *name)
{
	return strcmp(name, "extension") == 0 ||
	       strcmp(name, "modifierExtension") == 0;
}

/*
 * Gather the members of obj (an element or a resource) into elements in
 * the order of their definitions. *out is malloc'ed (caller frees), *n
 * its length; on failure x->rc is set.
 */
static void
xw_members(struct xw *x, const struct fj_node *obj,
	   const struct xmlfhir_ctx *ctx, bool resource, bool extension,
	   struct xw_member **out, size_t *n)
{
	struct xw_member *m;
	size_t count = 0;

	*out = NULL;
	*n = 0;
	if (obj->u.kids.count == 0)
		return;
	if ((m = calloc(obj->u.kids.count, sizeof(*m))) == NULL) {
		xw_fail(x, GW_NOMEM, NULL, NULL);
		return;
	}
	for (const struct fj_node *k = obj->u.kids.first; k; k = k->next) {
		bool under = k->key[0] == '_';
		const char *name = under ? k->key + 1 : k->key;
		size_t i;

		if (strlen(k->key) != k->keylen || name[0] == '\0') {
			xw_fail(x, GW_INVALID, "not an element name", NULL);
			goto fail;
		}
		/* attributes, written by the caller; they have no "_" form */
		if (resource && strcmp(k->key, "resourceType") == 0)
			continue;
		if (!resource && (strcmp(name, "id") == 0 ||
				  (extension && strcmp(name, "url") == 0))) {
			if (!under)
				continue;
			xw_fail(x, GW_INVALID,
				"an XML attribute cannot have extensions",
				k->key);
			goto fail;
		}
		for (i = 0; i < count; i++)
			if (strcmp(m[i].name, name) == 0)
				break;
		if (i == count) {
			m[count].name = name;
			xmlfhir_lookup(x->set, ctx, name, &m[count].info);
			if (!m[count].info.known) {
				xw_fail(x, GW_INVALID,
					"not an element of the definitions",
					name);
				goto fail;
			}
			count++;
		}
		if (under)
			m[i].ext = k;
		else
			m[i].val = k;
	}
	/* definition order; insertion sort keeps it stable and n is small */
	for (size_t i = 1; i < count; i++) {
		struct xw_member t = m[i];
		size_t j = i;

		for (; j > 0 && m[j - 1].info.order > t.info.order; j--)
			m[j] = m[j - 1];
		m[j] = t;
	}
	for (size_t i = 1; i < count; i++)
		if (m[i].info.order == m[i - 1].info.order) {
			/* valueString next to valueCode */
			xw_fail(x, GW_INVALID, "more than one type of a choice",
				m[i].name);
			goto fail;
		}
	*out = m;
	*n = count;
	return;
fail:
	free(m);
}

/*
 * The narrative div: parsed on its own (no DTD, no network) and written
 * as libxml2 serializes it, which is what the reader puts back in JSON.
 */
static void
xw_div(struct xw *x, const struct fj_node *v)
{
	xmlParserCtxt *pc = NULL;
	xmlDoc *xd = NULL;
	xmlBuffer *b = NULL;
	const xmlNode *root;

	if (v->type != FJ_STRING || v->u.str.len > (size_t)INT32_MAX) {
		xw_fail(x, GW_INVALID, "must be a string", NULL);
		goto done;
	}
	if ((pc = xmlNewParserCtxt()) == NULL) {
		xw_fail(x, GW_NOMEM, NULL, NULL);
		goto done;
	}
	xd = xmlCtxtReadMemory(pc, v->u.str.s, (int)v->u.str.len, NULL, "UTF-8",
			       XML_PARSE_NONET | XML_PARSE_NOERROR |
				   XML_PARSE_NOWARNING);
	/* namespace errors (an undeclared prefix) do not stop libxml2, but
	 * the div would not be XHTML, nor our output namespace-well-formed */
	if (xd == NULL || !pc->wellFormed || !pc->nsWellFormed ||
	    xd->intSubset != NULL || xd->extSubset != NULL ||
	    (root = xmlDocGetRootElement(xd)) == NULL ||
	    strcmp((const char *)root->name, "div") != 0 || root->ns == NULL ||
	    root->ns->href == NULL ||
	    strcmp((const char *)root->ns->href, XMLFHIR_XHTML_NS) != 0) {
		xw_fail(
		    x, GW_INVALID,
		    "not a well-formed XHTML div (with the XHTML namespace)",
		    NULL);
		goto done;
	}
	if ((b = xmlBufferCreate()) == NULL ||
	    xmlfhir_xhtml_dump(root, b) < 0) {
		xw_fail(x, GW_NOMEM, NULL, NULL);
		goto done;
	}
	xw_add(x, (const char *)xmlBufferContent(b),
	       (size_t)xmlBufferLength(b));
done:
	if (b != NULL)
		xmlBufferFree(b);
	if (xd != NULL)
		xmlFreeDoc(xd);
	if (pc != NULL)
		xmlFreeParserCtxt(pc);
}

/* One primitive: value from v (may be NULL), id and extensions from e
 * (its "_name" object, may be NULL). */
static void
xw_primitive(struct xw *x, const char *name, const struct xmlfhir_info *info,
	     const struct fj_node *v, const struct fj_node *e, int depth)
{
	struct xmlfhir_ctx ec = {x->element, "Element"};

	if (v == NULL && e == NULL) {
		xw_fail(x, GW_INVALID, "neither a value nor extensions", NULL);
		return;
	}
	if (v != NULL && v->type != xw_prim_json_type(info->type)) {
		xw_fail(x, GW_INVALID,
			v->type == FJ_OBJECT || v->type == FJ_ARRAY
			    ? "a primitive must not be an object or array"
			    : "value of the wrong JSON type",
			NULL);
		return;
	}
	if (e != NULL && e->type != FJ_OBJECT) {
		xw_fail(x, GW_INVALID, "id/extensions must be an object", NULL);
		return;
	}
	if (e != NULL && fj_get(e, "id") == NULL &&
	    fj_get(e, "extension") == NULL) {
		/* XML has no place for an empty "_name": {} */
		xw_fail(x, GW_INVALID, "\"_\" form without id or extensions",
			NULL);
		return;
	}
	if (ec.st == NULL) {
		xw_fail(x, GW_INVALID, "no definition of Element", NULL);
		return;
	}
	xw_element(x, name, e, &ec, v, depth + 1);
}

/* Does the element hold a resource (contained, entry.resource)? As
 * xmlfhir_is_resource_type, from the structure the lookup found for its
 * type instead of a second lookup by name: a backbone element's context
 * is a path inside its resource, never the resource itself. */
static bool
xw_is_resource(const struct xmlfhir_info *info)
{
	const struct rules_structure *st = info->child.st;

	return info->type != NULL && st != NULL && st->kind != NULL &&
	       strcmp(st->kind, "resource") == 0 && st->type != NULL &&
	       strcmp(info->child.path, st->type) == 0;
}

/* Write the children of obj (the elements of ctx), in definition order. */
static void
xw_children(struct xw *x, const struct fj_node *obj,
	    const struct xmlfhir_ctx *ctx, bool resource, bool extension,
	    int depth)
{
	struct xw_member *m = NULL;
	size_t n = 0;

	xw_members(x, obj, ctx, resource, extension, &m, &n);
	for (size_t i = 0; i < n && x->rc == GW_OK; i++) {
		const struct xmlfhir_info *info = &m[i].info;
		const struct fj_node *v = m[i].val, *e = m[i].ext;
		size_t old = xw_push(x, m[i].name, 0);
		bool div =
		    info->type != NULL && strcmp(info->type, "xhtml") == 0;
		/* xhtml is a primitive type, but written as XHTML */
		bool prim = !div && xmlfhir_is_primitive(info);
		size_t count = 1;

		if (e != NULL && !prim) {
			xw_fail(x, GW_INVALID,
				"\"_\" form on an element that is not a "
				"primitive",
				NULL);
			break;
		}
		if (info->array) {
			if ((v != NULL && v->type != FJ_ARRAY) ||
			    (e != NULL && e->type != FJ_ARRAY)) {
				xw_fail(x, GW_INVALID, "must be an array",
					NULL);
				break;
			}
			count = v != NULL ? v->u.kids.count : 0;
			if (e != NULL && e->u.kids.count > count)
				count = e->u.kids.count;
			if (count == 0) {
				xw_fail(x, GW_INVALID, "empty array", NULL);
				break;
			}
		} else if ((v != NULL && v->type == FJ_ARRAY) ||
			   (e != NULL && e->type == FJ_ARRAY)) {
			xw_fail(x, GW_INVALID, "must not be an array", NULL);
			break;
		}
		for (size_t k = 0; k < count && x->rc == GW_OK; k++) {
			const struct fj_node *vk = v, *ek = e;
			size_t o2 = info->array ? xw_push(x, NULL, (long)k)
						: x->pathlen;

			if (info->array) {
				vk = v != NULL ? fj_at(v, k) : NULL;
				ek = e != NULL ? fj_at(e, k) : NULL;
				/* null holds the place of the other array */
				if (vk != NULL && vk->type == FJ_NULL)
					vk = NULL;
				if (ek != NULL && ek->type == FJ_NULL)
					ek = NULL;
			}
			if (prim) {
				xw_primitive(x, m[i].name, info, vk, ek, depth);
			} else if (vk == NULL || vk->type == FJ_NULL) {
				xw_fail(x, GW_INVALID, "null", NULL);
			} else if (div) {
				xw_div(x, vk);
			} else if (xw_is_resource(info)) {
				xw_adds(x, "<");
				xw_adds(x, m[i].name);
				xw_adds(x, ">");
				xw_resource(x, vk, false, depth + 1);
				xw_adds(x, "</");
				xw_adds(x, m[i].name);
				xw_adds(x, ">");
			} else if (vk->type != FJ_OBJECT) {
				xw_fail(x, GW_INVALID, "must be an object",
					NULL);
			} else if (info->child.st == NULL) {
				xw_fail(x, GW_INVALID,
					"type without a definition", NULL);
			} else {
				xw_element(x, m[i].name, vk, &info->child, NULL,
					   depth + 1);
			}
			xw_pop(x, o2);
		}
		xw_pop(x, old);
	}
	free(m);
}

/*
 * <name id=".." url=".." value=".."> children </name> for an element
 * object obj (may be NULL for a primitive without extensions); value is
 * the primitive's value (already checked against its type), or NULL.
 */
static void
xw_element(struct xw *x, const char *name, const struct fj_node *obj,
	   const struct xmlfhir_ctx *ctx, const struct fj_node *value,
	   int depth)
{
	bool ext = xw_is_extension(name);
	const struct fj_node *a;
	size_t mark;

	if (depth > XMLFHIR_MAX_DEPTH) {
		xw_fail(x, GW_INVALID, "nesting too deep", NULL);
		return;
	}
	xw_adds(x, "<");
	xw_adds(x, name);
	if (obj != NULL && (a = fj_get(obj, "id")) != NULL)
		xw_attr(x, "id", a);
	if (obj != NULL && ext && (a = fj_get(obj, "url")) != NULL)
		xw_attr(x, "url", a);
	if (value != NULL) {
		xw_adds(x, " value=\"");
		if (value->type == FJ_BOOL)
			xw_adds(x, value->u.b ? "true" : "false");
		else if (value->type == FJ_NUMBER)
			/* decimals keep their text: 1.50 stays 1.50 */
			xw_add(x, value->u.str.s, value->u.str.len);
		else
			xw_escape(x, value->u.str.s, value->u.str.len);
		xw_adds(x, "\"");
	}
	if (x->rc != GW_OK)
		return;
	mark = x->out->len;
	xw_adds(x, ">");
	if (obj != NULL)
		xw_children(x, obj, ctx, false, ext, depth);
	if (x->rc != GW_OK)
		return;
	if (x->out->len == mark + 1) {
		/* no children: <name .../> */
		x->out->len = mark;
		x->out->data[mark] = '\0';
		xw_adds(x, "/>");
		return;
	}
	xw_adds(x, "</");
	xw_adds(x, name);
	xw_adds(x, ">");
}

static void
xw_resource(struct xw *x, const struct fj_node *res, bool top, int depth)
{
	const struct rules_structure *st;
	struct xmlfhir_ctx ctx;
	const char *rt;
	size_t mark, old;

	if (depth > XMLFHIR_MAX_DEPTH) {
		xw_fail(x, GW_INVALID, "nesting too deep", NULL);
		return;
	}
	if (res->type != FJ_OBJECT ||
	    (rt = fj_get_str(res, "resourceType")) == NULL) {
		xw_fail(x, GW_INVALID, "not a resource (no resourceType)",
			NULL);
		return;
	}
	st = rules_type(x->set, rt);
	if (st == NULL || st->type == NULL || st->kind == NULL ||
	    strcmp(st->kind, "resource") != 0 || strcmp(st->type, rt) != 0) {
		xw_fail(x, GW_INVALID, "unknown resource type", rt);
		return;
	}
	ctx.st = st;
	ctx.path = st->type;
	old = xw_push(x, rt, 0);
	xw_adds(x, "<");
	xw_adds(x, rt);
	if (top)
		xw_adds(x, " xmlns=\"" XMLFHIR_NS "\"");
	mark = x->out->len;
	xw_adds(x, ">");
	xw_children(x, res, &ctx, true, false, depth);
	if (x->rc == GW_OK && x->out->len == mark + 1) {
		x->out->len = mark;
		x->out->data[mark] = '\0';
		xw_adds(x, "/>");
	} else {
		xw_adds(x, "</");
		xw_adds(x, rt);
		xw_adds(x, ">");
	}
	xw_pop(x, old);
}

enum gw_err
xmlfhir_from_fjson(const struct fj_node *res, const struct rules_set *set,
		   struct buf *out, char *err, size_t errlen)
{
	struct xw x = {.set = set, .out = out, .err = err, .errlen = errlen};
	size_t start = out->len;

	if (errlen > 0)
		err[0] = '\0';
	if (set == NULL || res == NULL) {
		snprintf(err, errlen, "no definitions to write XML with");
		return GW_INVALID;
	}
	x.element = rules_type(set, "Element");
	xw_resource(&x, res, true, 0);
	if (x.rc != GW_OK && out->data != NULL) {
		/* leave out as it was */
		out->len = start;
		out->data[start] = '\0';
	}
	return x.rc;
}
