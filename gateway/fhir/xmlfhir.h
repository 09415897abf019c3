/*
 * xmlfhir: FHIR XML to the fjson model, using the type information of a
 * rule set (which elements repeat, which are primitives of which type).
 */
#ifndef GW_XMLFHIR_H
#define GW_XMLFHIR_H

#include <stddef.h>

#include "err.h"
#include "buf.h"
#include "fjson.h"

struct rules_set;

/*
 * Convert len bytes of FHIR XML (one resource) to its JSON form. set gives
 * the base definitions of the FHIR version (may be NULL: then only
 * repeated elements become arrays). Elements unknown to the definitions
 * are kept (with their XML shape) so that a validator reports them.
 * On success *out is a new document (caller frees with fj_doc_free);
 * nodes carry the XML line (col 0). On failure *out is NULL, err says
 * why, and the result is GW_PARSE (not well-formed XML, not FHIR) or
 * GW_NOMEM. No network access, no entity expansion.
 */
enum gw_err xmlfhir_to_fjson(const char *xml, size_t len,
			     const struct rules_set *set, struct fj_doc **out,
			     char *err, size_t errlen);

/*
 * Flags of xmlfhir_to_fjson_flags. XMLFHIR_STRICT_ORDER: an element out of
 * the order of its definitions is a GW_PARSE error ("element X out of
 * order"), as FHIR XML requires (the 531 published zib2017/zib2020
 * conformance XML files all pass it).
 */
#define XMLFHIR_STRICT_ORDER 0x1u

/* xmlfhir_to_fjson with flags (XMLFHIR_*). */
enum gw_err xmlfhir_to_fjson_flags(const char *xml, size_t len,
				   const struct rules_set *set, unsigned flags,
				   struct fj_doc **out, char *err,
				   size_t errlen);

/*
 * Write res (one resource in the fjson model) as FHIR XML into out, with
 * the type information of set (R4 base definitions): elements in the
 * order of their definitions, primitives as value attributes with their
 * id and extensions, choice types by their suffixed names, resources
 * inside contained/entry.resource/parameter.resource wrapped in their
 * type's element, narrative xhtml divs written as XHTML. Reading the
 * result with xmlfhir_to_fjson gives res back. GW_INVALID (with err) for
 * a node the definitions cannot place, GW_NOMEM.
 * The XML (UTF-8, no XML declaration, no indentation) is appended to out;
 * on any failure out is left as it was, GW_TOOBIG when out's maximum is
 * reached. err names the JSON path ("Patient.name[0].given[1]: ...").
 * A div is written as libxml2 serializes it, so its text after a round
 * trip may differ from the input's in XML spelling only (quotes,
 * character references). No state of its own: threads may call it at
 * once (libxml2, used for the divs, is thread-safe).
 */
enum gw_err xmlfhir_from_fjson(const struct fj_node *res,
			       const struct rules_set *set, struct buf *out,
			       char *err, size_t errlen);

#endif
