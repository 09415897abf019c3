/*
 * FHIR static canonicalisation (http://hl7.org/fhir/canonicalization/json#static)
 * of a resource held in the fjson model: the bytes PZP-JWS signs.
 */
#ifndef GW_CANON_H
#define GW_CANON_H

#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "fjson.h"

#define CANON_URI "http://hl7.org/fhir/canonicalization/json#static"
/* Signature.targetFormat of a PZP-JWS signature. */
#define CANON_TARGET_FORMAT "application/fhir+json;canonicalization=" CANON_URI

/*
 * Append the canonical form of resource res to out: the root members
 * "text" and "meta" (and "signature" when res is a Bundle) left out, the
 * rest in RFC 8785 form (members sorted by UTF-16 code units, no
 * whitespace, minimal escaping) with numbers copied exactly as written.
 * res is not modified. Returns GW_OK; GW_INVALID when res is not an object
 * with a string resourceType, or holds a number FHIR does not allow (an
 * exponent, a leading zero, negative zero), with err (may be NULL) saying
 * where; GW_TOOBIG/GW_NOMEM from out. out is unchanged on failure.
 */
enum gw_err canon_resource(const struct fj_node *res, struct buf *out,
			   struct fj_error *err);

/*
 * Parse len bytes of JSON text (duplicate keys and invalid UTF-8 refused)
 * and append its canonical form to out. GW_PARSE when the text is not
 * acceptable JSON, otherwise as canon_resource.
 */
enum gw_err canon_text(const char *text, size_t len, struct buf *out,
		       struct fj_error *err);

#endif
