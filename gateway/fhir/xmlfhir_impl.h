/*
 * xmlfhir_impl: what the FHIR XML reader (xmlfhir.c) and writer
 * (xmlfhir_write.c) share: where an element stands in the definitions of
 * a rule set, so that both sides agree on names, types and order.
 */
#ifndef GW_XMLFHIR_IMPL_H
#define GW_XMLFHIR_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "rules.h"

#define XMLFHIR_NS	  "http://hl7.org/fhir"
#define XMLFHIR_XHTML_NS  "http://www.w3.org/1999/xhtml"
#define XMLFHIR_MAX_DEPTH 100

/* Where a converted element stands in the definitions. */
struct xmlfhir_ctx {
	const struct rules_structure *st; /* NULL: no type information */
	const char *path;		  /* path of the element in st */
};

/* What the definitions say about one child element. */
struct xmlfhir_info {
	bool known;
	bool array;
	const char *type; /* type code, NULL when unknown */
	size_t order;	  /* index of the definition in its structure */
	struct xmlfhir_ctx child;
};

/* Look up child element name (a JSON/XML member name, choice elements
 * by their suffixed name) of ctx in set; info->known false when the
 * definitions do not have it. Borrowed pointers, valid as long as set. */
void xmlfhir_lookup(const struct rules_set *set, const struct xmlfhir_ctx *ctx,
		    const char *name, struct xmlfhir_info *info);
/* Is the element a primitive (value attribute in XML)? */
bool xmlfhir_is_primitive(const struct xmlfhir_info *info);
/* Is type a resource type (contained, Bundle.entry.resource, ...)? */
bool xmlfhir_is_resource_type(const struct rules_set *set, const char *type);

/* Append the XML of n (an XHTML div) to b as a text of its own: with the
 * namespace declarations it uses, characters kept as UTF-8. How a
 * narrative div's JSON text is made from XML on both sides. Returns as
 * xmlNodeDump (-1 on failure). */
int xmlfhir_xhtml_dump(const xmlNode *n, xmlBuffer *b);

#endif
