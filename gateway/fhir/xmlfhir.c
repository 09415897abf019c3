/*
 * xmlfhir: FHIR XML to the fjson model. Element types and repetition come
 * from the base definitions in a rule set; primitives become JSON strings,
 * numbers or booleans with their id/extensions in "_name" members.
 */
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "rules.h"
#include "xmlfhir.h"
#include "xmlfhir_impl.h"

struct xf {
	const struct rules_set *set;
	unsigned flags;
	struct fj_doc *doc;
	char *err;
	size_t errlen;
	enum gw_err rc;
};

static bool
xf_is_fhir(const xmlNode *n)
{
	return n->type == XML_ELEMENT_NODE && n->ns != NULL &&
	       n->ns->href != NULL &&
	       strcmp((const char *)n->ns->href, XMLFHIR_NS) == 0;
}

static const char *
xf_attr(const xmlNode *n, const char *name)
{
	for (const xmlAttr *a = n->properties; a != NULL; a = a->next)
		if (a->ns == NULL && strcmp((const char *)a->name, name) == 0 &&
		    a->children != NULL && a->children->content != NULL)
			return (const char *)a->children->content;
	return NULL;
}

static bool
xf_has_attr(const xmlNode *n, const char *name)
{
	for (const xmlAttr *a = n->properties; a != NULL; a = a->next)
		if (a->ns == NULL && strcmp((const char *)a->name, name) == 0)
			return true;
	return false;
}

/* Refuse attributes other than those listed (NULL-terminated); those in
 * another namespace (xsi:schemaLocation) are allowed. */
static bool
xf_attrs_ok(const xmlNode *n, const char *const *allowed)
{
	for (const xmlAttr *a = n->properties; a != NULL; a = a->next) {
		bool ok = a->ns != NULL;

		for (size_t i = 0; !ok && allowed[i] != NULL; i++)
			ok = strcmp((const char *)a->name, allowed[i]) == 0;
		if (!ok)
			return false;
	}
	return true;
}

/* Non-blank text directly inside a FHIR element? */
static bool
xf_has_text(const xmlNode *n)
{
	for (const xmlNode *c = n->children; c != NULL; c = c->next) {
		if (c->type == XML_CDATA_SECTION_NODE)
			return true;
		if (c->type != XML_TEXT_NODE || c->content == NULL)
			continue;
		for (const xmlChar *t = c->content; *t != '\0'; t++)
			if (*t != ' ' && *t != '\t' && *t != '\r' && *t != '\n')
				return true;
	}
	return false;
}

static const struct rules_element *
xf_find(const struct rules_structure *st, const char *path)
{
	for (size_t i = 0; i < st->nelements; i++)
		if (st->elements[i].slice_name == NULL &&
		    strcmp(st->elements[i].path, path) == 0)
			return &st->elements[i];
	return NULL;
}

static bool
xf_has_children(const struct rules_structure *st, const char *path)
{
	size_t n = strlen(path);

	for (size_t i = 0; i < st->nelements; i++)
		if (strncmp(st->elements[i].path, path, n) == 0 &&
		    st->elements[i].path[n] == '.')
			return true;
	return false;
}

static bool
xf_type_match(const char *code, const char *suffix)
{
	if (code == NULL || suffix[0] == '\0')
		return false;
	if (code[0] >= 'a' && code[0] <= 'z')
		return code[0] == suffix[0] - 'A' + 'a' &&
		       strcmp(code + 1, suffix + 1) == 0;
	return strcmp(code, suffix) == 0;
}

/* Fallback for elements without definitions: names that repeat in the
 * conformance resources. */
static bool
xf_guess_array(const char *name)
{
	static const char *const names[] = {
	    "extension",     "modifierExtension",
	    "coding",	     "element",
	    "concept",	     "include",
	    "exclude",	     "contains",
	    "type",	     "constraint",
	    "discriminator", "profile",
	    "targetProfile", "contact",
	    "telecom",	     "mapping",
	    "identifier",    "entry",
	    "parameter",     "part",
	    "filter",	     "designation",
	    "property",	     "code",
	    "alias",	     "condition",
	    "jurisdiction",  "useContext",
	    "given",	     "prefix",
	    "suffix",	     "line",
	    "name",	     "item",
	    "contained",     "context",
	    "keyword"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

void
xmlfhir_lookup(const struct rules_set *set, const struct xmlfhir_ctx *ctx,
	       const char *name, struct xmlfhir_info *info)
{
	char path[512];
	const struct rules_element *e;
	const char *type = NULL;
	size_t pl, nl;

	memset(info, 0, sizeof(*info));
	if (ctx->st == NULL)
		return;
	/* path "ctx.name", bounded; not snprintf: this runs for every
	 * element read or written */
	pl = strlen(ctx->path);
	nl = strlen(name);
	if (pl + 1 + nl >= sizeof(path))
		return;
	memcpy(path, ctx->path, pl);
	path[pl] = '.';
	memcpy(path + pl + 1, name, nl + 1);
	if ((e = xf_find(ctx->st, path)) != NULL) {
		if (e->ntypes > 0)
			type = e->types[0].code;
	} else {
		/* choice: valueString -> value[x] of type string */
		for (size_t i = 0; i < ctx->st->nelements && e == NULL; i++) {
			const struct rules_element *c = &ctx->st->elements[i];
			size_t cl = strlen(c->path);

			if (c->slice_name != NULL || cl < pl + 5 ||
			    strncmp(c->path, ctx->path, pl) != 0 ||
			    c->path[pl] != '.' ||
			    strcmp(c->path + cl - 3, "[x]") != 0 ||
			    strchr(c->path + pl + 1, '.') != NULL)
				continue;
			size_t bl = cl - pl - 4;

			if (strncmp(name, c->path + pl + 1, bl) != 0)
				continue;
			for (size_t t = 0; t < c->ntypes; t++)
				if (xf_type_match(c->types[t].code, name + bl))
					type = c->types[t].code, e = c;
		}
		if (e == NULL)
			return;
	}
	info->known = true;
	info->order = (size_t)(e - ctx->st->elements);
	info->array = e->base_max > 1;
	info->type = type;
	if (e->content_ref != NULL) {
		const char *hash = strchr(e->content_ref, '#');

		info->child.st = ctx->st;
		info->child.path = hash ? hash + 1 : e->content_ref;
		info->type = NULL;
	} else if (xf_has_children(ctx->st, e->path) ||
		   (type != NULL && (strcmp(type, "BackboneElement") == 0 ||
				     strcmp(type, "Element") == 0))) {
		info->child.st = ctx->st;
		info->child.path = e->path;
	} else if (type != NULL) {
		info->child.st = rules_type(set, type);
		info->child.path = info->child.st ? info->child.st->type : NULL;
		if (info->child.path == NULL)
			info->child.st = NULL;
	}
}

static void
xf_fail(struct xf *x, enum gw_err rc, const xmlNode *n, const char *msg)
{
	if (x->rc != GW_OK)
		return;
	x->rc = rc;
	if (n != NULL)
		snprintf(x->err, x->errlen, "line %ld: %s", xmlGetLineNo(n),
			 msg);
	else
		snprintf(x->err, x->errlen, "%s", msg);
}

static struct fj_node *
xf_mark(struct fj_node *v, const xmlNode *n)
{
	if (v != NULL) {
		long line = xmlGetLineNo(n);

		v->line = line > 0 ? (uint32_t)line : 0;
		v->col = 0;
	}
	return v;
}

/* Put val as member name of obj; arrays collect repeats. */
static void
xf_put(struct xf *x, struct fj_node *obj, const char *name, struct fj_node *val,
       bool array, size_t index)
{
	struct fj_node *m = fj_get(obj, name), *arr;

	if (x->rc != GW_OK || val == NULL) {
		if (val == NULL)
			xf_fail(x, GW_NOMEM, NULL, "out of memory");
		return;
	}
	if (!array) {
		if (m != NULL) {
			/* a repeat of a single element: keep it as an
			 * array so the validator sees the violation */
			if (m->type != FJ_ARRAY) {
				arr = fj_new_array(x->doc);
				if (arr == NULL) {
					xf_fail(x, GW_NOMEM, NULL, "no memory");
					return;
				}
				fj_append(arr, fj_copy(x->doc, m));
				if (fj_set(x->doc, obj, name, arr) != GW_OK)
					return;
				m = fj_get(obj, name);
			}
			fj_append(m, val);
			return;
		}
		if (fj_set(x->doc, obj, name, val) != GW_OK)
			xf_fail(x, GW_NOMEM, NULL, "out of memory");
		return;
	}
	if (m == NULL) {
		if ((arr = fj_new_array(x->doc)) == NULL ||
		    fj_set(x->doc, obj, name, arr) != GW_OK) {
			xf_fail(x, GW_NOMEM, NULL, "out of memory");
			return;
		}
		m = fj_get(obj, name);
	}
	if (m->type != FJ_ARRAY) { /* a single member of that name: no list */
		xf_fail(x, GW_PARSE, NULL, "element both single and repeated");
		return;
	}
	/* "_name" arrays are aligned with "name" arrays: pad with null */
	while (m->u.kids.count < index) {
		struct fj_node *nul = fj_new_null(x->doc);

		if (nul == NULL) {
			xf_fail(x, GW_NOMEM, NULL, "out of memory");
			return;
		}
		fj_append(m, nul);
	}
	fj_append(m, val);
}

int
xmlfhir_xhtml_dump(const xmlNode *n, xmlBuffer *b)
{
	xmlDoc *tmp;
	xmlNode *copy;
	int rc = -1;

	/* A copy in a document of its own: libxml2 then declares on the copy
	 * the namespaces the div uses but an ancestor declared (<h:div> under
	 * xmlns:h on the resource), so the JSON text stands alone. Without a
	 * document encoding libxml2 writes every non-ASCII character of an
	 * attribute as a character reference; UTF-8 keeps them as written. */
	if ((tmp = xmlNewDoc((const xmlChar *)"1.0")) == NULL)
		return -1;
	if ((tmp->encoding = xmlStrdup((const xmlChar *)"UTF-8")) != NULL &&
	    (copy = xmlDocCopyNode((xmlNode *)n, tmp, 1)) != NULL) {
		xmlDocSetRootElement(tmp, copy);
		rc = xmlNodeDump(b, tmp, copy, 0, 0);
	}
	xmlFreeDoc(tmp);
	return rc;
}

bool
xmlfhir_is_primitive(const struct xmlfhir_info *info)
{
	const char *t = info->type;

	if (t == NULL)
		return false;
	if (strncmp(t, "http://hl7.org/fhirpath/System.", 31) == 0)
		return true;
	if (info->child.st != NULL && info->child.st->kind != NULL)
		return strcmp(info->child.st->kind, "primitive-type") == 0;
	return t[0] >= 'a' && t[0] <= 'z' && strcmp(t, "xhtml") != 0;
}

bool
xmlfhir_is_resource_type(const struct rules_set *set, const char *type)
{
	const struct rules_structure *st;

	if (type == NULL)
		return false;
	if (strcmp(type, "Resource") == 0 ||
	    strcmp(type, "DomainResource") == 0)
		return true;
	st = rules_type(set, type);
	return st != NULL && st->kind != NULL &&
	       strcmp(st->kind, "resource") == 0;
}

static struct fj_node *xf_object(struct xf *x, const xmlNode *n,
				 const struct xmlfhir_ctx *ctx, int depth);
static struct fj_node *xf_resource(struct xf *x, const xmlNode *n, int depth);

static struct fj_node *
xf_primitive_value(struct xf *x, const char *type, const char *v)
{
	if (strcmp(type, "boolean") == 0 &&
	    (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
		return fj_new_bool(x->doc, v[0] == 't');
	if (strcmp(type, "integer") == 0 || strcmp(type, "decimal") == 0 ||
	    strcmp(type, "positiveInt") == 0 ||
	    strcmp(type, "unsignedInt") == 0 ||
	    strcmp(type, "integer64") == 0) {
		struct fj_node *num = fj_new_number(x->doc, v);

		if (num != NULL)
			return num;
	}
	return fj_new_string(x->doc, v);
}

/* Does the element carry anything besides a value (id, extensions)? */
static bool
xf_has_extras(const xmlNode *n)
{
	if (xf_has_attr(n, "id"))
		return true;
	for (const xmlNode *c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return true;
	return false;
}

static void
xf_children(struct xf *x, struct fj_node *obj, const xmlNode *n,
	    const struct xmlfhir_ctx *ctx, int depth)
{
	size_t last = 0;

	for (const xmlNode *c = n->children; c && x->rc == GW_OK; c = c->next) {
		const char *name = (const char *)c->name;
		struct xmlfhir_info info;
		struct fj_node *v;
		char uname[256];
		size_t index;

		if (c->type != XML_ELEMENT_NODE)
			continue;
		if (!xf_is_fhir(c)) {
			/* xhtml narrative */
			if (strcmp(name, "div") == 0) {
				xmlBufferPtr b = xmlBufferCreate();

				if (b == NULL) {
					xf_fail(x, GW_NOMEM, c, "no memory");
					return;
				}
				if (xmlfhir_xhtml_dump(c, b) < 0) {
					xmlBufferFree(b);
					xf_fail(x, GW_NOMEM, c, "no memory");
					return;
				}
				v = fj_new_string(
				    x->doc, (const char *)xmlBufferContent(b));
				xmlBufferFree(b);
				xf_put(x, obj, "div", xf_mark(v, c), false, 0);
				continue;
			}
			xf_fail(x, GW_PARSE, c,
				"element outside the FHIR namespace");
			return;
		}
		if (name[0] == '_') {
			/* JSON's form of a primitive's id and extensions;
			   as an XML element it would collide with it */
			xf_fail(
			    x, GW_PARSE, c,
			    "element name starting with '_' (not FHIR XML)");
			return;
		}
		xmlfhir_lookup(x->set, ctx, name, &info);
		if (!info.known)
			info.array = xf_guess_array(name);
		if (info.known && (x->flags & XMLFHIR_STRICT_ORDER)) {
			/* FHIR XML keeps the order of the definitions */
			if (info.order < last) {
				char msg[160];

				snprintf(msg, sizeof(msg),
					 "element %s out of order", name);
				xf_fail(x, GW_PARSE, c, msg);
				return;
			}
			last = info.order;
		}
		if (xmlfhir_is_resource_type(x->set, info.type)) {
			/* a contained resource: one child element */
			const xmlNode *r = c->children;

			while (r != NULL && r->type != XML_ELEMENT_NODE)
				r = r->next;
			if (r == NULL) {
				xf_fail(x, GW_PARSE, c, "empty resource");
				return;
			}
			xf_put(x, obj, name, xf_resource(x, r, depth + 1),
			       info.array, 0);
			continue;
		}
		if (xmlfhir_is_primitive(&info) ||
		    (!info.known && xf_has_attr(c, "value"))) {
			static const char *const pattrs[] = {"value", "id",
							     NULL};
			const char *val = xf_attr(c, "value");
			struct fj_node *m = fj_get(obj, name);

			if (!xf_attrs_ok(c, pattrs) || xf_has_text(c)) {
				xf_fail(x, GW_PARSE, c,
					"unexpected attribute or text in a "
					"primitive element");
				return;
			}
			if (val == NULL && !xf_has_extras(c)) {
				xf_fail(x, GW_PARSE, c,
					"primitive element with neither a "
					"value nor extensions");
				return;
			}

			index = m != NULL && m->type == FJ_ARRAY
				    ? m->u.kids.count
				    : 0;
			/* a value-less single primitive has only "_name";
			 * in an array it holds its place with null */
			if (val != NULL)
				v = xf_primitive_value(
				    x, info.type ? info.type : "string", val);
			else
				v = info.array ? fj_new_null(x->doc) : NULL;
			if (val != NULL || info.array)
				xf_put(x, obj, name, xf_mark(v, c), info.array,
				       0);
			if (xf_has_extras(c)) {
				struct xmlfhir_ctx ec = {
				    rules_type(x->set, "Element"), "Element"};
				int k =
				    snprintf(uname, sizeof(uname), "_%s", name);

				if (k < 0 || (size_t)k >= sizeof(uname))
					continue;
				if (ec.st == NULL)
					ec.path = NULL;
				v = xf_object(x, c, &ec, depth + 1);
				xf_put(x, obj, uname, v, info.array, index);
			}
			continue;
		}
		{
			static const char *const eattrs[] = {"id", "url", NULL};
			static const char *const cattrs[] = {"id", NULL};
			bool ext = strcmp(name, "extension") == 0 ||
				   strcmp(name, "modifierExtension") == 0;

			if (!xf_attrs_ok(c, ext ? eattrs : cattrs) ||
			    xf_has_text(c)) {
				xf_fail(x, GW_PARSE, c,
					"unexpected attribute or text in a "
					"complex element");
				return;
			}
		}
		v = xf_object(x, c, &info.child, depth + 1);
		xf_put(x, obj, name, v, info.array, 0);
	}
	/* "_name" arrays as long as their "name" arrays */
	for (struct fj_node *m = obj->u.kids.first; m && x->rc == GW_OK;
	     m = m->next) {
		const struct fj_node *base;

		if (m->keylen < 2 || m->key[0] != '_' || m->type != FJ_ARRAY)
			continue;
		base = fj_get(obj, m->key + 1);
		while (base != NULL && base->type == FJ_ARRAY &&
		       m->u.kids.count < base->u.kids.count) {
			struct fj_node *nul = fj_new_null(x->doc);

			if (nul == NULL) {
				xf_fail(x, GW_NOMEM, NULL, "out of memory");
				return;
			}
			fj_append(m, nul);
		}
	}
}

/* An element with children (complex type or backbone element). */
static struct fj_node *
xf_object(struct xf *x, const xmlNode *n, const struct xmlfhir_ctx *ctx,
	  int depth)
{
	struct fj_node *obj;
	const char *v;

	if (depth > XMLFHIR_MAX_DEPTH) {
		xf_fail(x, GW_PARSE, n, "nesting too deep");
		return NULL;
	}
	if ((obj = xf_mark(fj_new_object(x->doc), n)) == NULL)
		return NULL;
	if ((v = xf_attr(n, "id")) != NULL)
		xf_put(x, obj, "id", xf_mark(fj_new_string(x->doc, v), n),
		       false, 0);
	if ((v = xf_attr(n, "url")) != NULL)
		xf_put(x, obj, "url", xf_mark(fj_new_string(x->doc, v), n),
		       false, 0);
	xf_children(x, obj, n, ctx, depth);
	return obj;
}

static struct fj_node *
xf_resource(struct xf *x, const xmlNode *n, int depth)
{
	const char *name = (const char *)n->name;
	struct xmlfhir_ctx ctx = {NULL, NULL};
	struct fj_node *obj, *rt;

	if (!xf_is_fhir(n)) {
		xf_fail(x, GW_PARSE, n, "not a FHIR resource element");
		return NULL;
	}
	if (depth > XMLFHIR_MAX_DEPTH) {
		xf_fail(x, GW_PARSE, n, "nesting too deep");
		return NULL;
	}
	static const char *const none[] = {NULL};

	if (!xf_attrs_ok(n, none) || xf_has_text(n)) {
		xf_fail(x, GW_PARSE, n,
			"unexpected attribute or text in a resource element");
		return NULL;
	}
	if (x->set != NULL && (ctx.st = rules_type(x->set, name)) != NULL)
		ctx.path = ctx.st->type;
	if (ctx.path == NULL)
		ctx.st = NULL;
	if ((obj = xf_mark(fj_new_object(x->doc), n)) == NULL ||
	    (rt = fj_new_string(x->doc, name)) == NULL ||
	    fj_set(x->doc, obj, "resourceType", xf_mark(rt, n)) != GW_OK) {
		xf_fail(x, GW_NOMEM, NULL, "out of memory");
		return NULL;
	}
	xf_children(x, obj, n, &ctx, depth);
	return obj;
}

enum gw_err
xmlfhir_to_fjson(const char *xml, size_t len, const struct rules_set *set,
		 struct fj_doc **out, char *err, size_t errlen)
{
	return xmlfhir_to_fjson_flags(xml, len, set, 0, out, err, errlen);
}

enum gw_err
xmlfhir_to_fjson_flags(const char *xml, size_t len, const struct rules_set *set,
		       unsigned flags, struct fj_doc **out, char *err,
		       size_t errlen)
{
	struct xf x = {
	    .set = set, .flags = flags, .err = err, .errlen = errlen};
	xmlDoc *xd = NULL;
	xmlNode *root;
	struct fj_node *r;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (len > (size_t)INT32_MAX) {
		snprintf(err, errlen, "document too large");
		return GW_PARSE;
	}
	xd = xmlReadMemory(xml, (int)len, NULL, NULL,
			   XML_PARSE_NONET | XML_PARSE_NOERROR |
			       XML_PARSE_NOWARNING);
	if (xd == NULL) {
		const xmlError *e = xmlGetLastError();

		snprintf(err, errlen, "not well-formed XML%s%s",
			 e && e->message ? ": " : "",
			 e && e->message ? e->message : "");
		/* libxml2 messages end with a newline */
		size_t n = strlen(err);

		if (n > 0 && err[n - 1] == '\n')
			err[n - 1] = '\0';
		return GW_PARSE;
	}
	root = xmlDocGetRootElement(xd);
	if (root == NULL) {
		snprintf(err, errlen, "no root element");
		xmlFreeDoc(xd);
		return GW_PARSE;
	}
	if ((x.doc = fj_doc_new()) == NULL) {
		xmlFreeDoc(xd);
		return GW_NOMEM;
	}
	r = xf_resource(&x, root, 0);
	xmlFreeDoc(xd);
	if (x.rc == GW_OK && r == NULL)
		x.rc = GW_NOMEM;
	if (x.rc != GW_OK) {
		fj_doc_free(x.doc);
		return x.rc;
	}
	x.doc->root = r;
	*out = x.doc;
	return GW_OK;
}
