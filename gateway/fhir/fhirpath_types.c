/*
 * fhirpath_types: the FHIR data types FHIRPath knows (choice suffixes,
 * primitives) and how FHIR and System types relate (is, as, ofType).
 */
#include <ctype.h>
#include <string.h>

#include "fhirpath_impl.h"

/* ---------------------------------------------------------------- types */

/* FHIR data types (R4 and STU3) a choice suffix may name. */
static const char *const fhir_types[] = {"base64Binary",
					 "boolean",
					 "canonical",
					 "code",
					 "date",
					 "dateTime",
					 "decimal",
					 "id",
					 "instant",
					 "integer",
					 "integer64",
					 "markdown",
					 "oid",
					 "positiveInt",
					 "string",
					 "time",
					 "unsignedInt",
					 "uri",
					 "url",
					 "uuid",
					 "xhtml",
					 "Address",
					 "Age",
					 "Annotation",
					 "Attachment",
					 "CodeableConcept",
					 "CodeableReference",
					 "Coding",
					 "ContactDetail",
					 "ContactPoint",
					 "Contributor",
					 "Count",
					 "DataRequirement",
					 "Distance",
					 "Dosage",
					 "Duration",
					 "Expression",
					 "Extension",
					 "HumanName",
					 "Identifier",
					 "Meta",
					 "Money",
					 "MoneyQuantity",
					 "Narrative",
					 "ParameterDefinition",
					 "Period",
					 "Quantity",
					 "Range",
					 "Ratio",
					 "RatioRange",
					 "Reference",
					 "RelatedArtifact",
					 "SampledData",
					 "Signature",
					 "SimpleQuantity",
					 "Timing",
					 "TriggerDefinition",
					 "UsageContext",
					 "Element",
					 "BackboneElement",
					 "ElementDefinition",
					 "MarketingStatus",
					 "Population",
					 "ProdCharacteristic",
					 "ProductShelfLife",
					 "SubstanceAmount",
					 "Availability",
					 "ExtendedContactDetail",
					 "MonetaryComponent",
					 "VirtualServiceDetail",
					 NULL};

/* Index of the first primitive-type entry past the primitives. */
#define FHIR_PRIMITIVES 21

/* The table entry the choice suffix s (first letter uppercase) names. */
const char *
fp_suffix_type(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || !isupper((unsigned char)s[0]))
		return NULL;
	for (i = 0; fhir_types[i]; i++) {
		const char *t = fhir_types[i];

		if (strlen(t) == n &&
		    tolower((unsigned char)t[0]) ==
			tolower((unsigned char)s[0]) &&
		    memcmp(t + 1, s + 1, n - 1) == 0)
			return t;
	}
	return NULL;
}

bool
fp_is_primitive_type(const char *t)
{
	size_t i;

	for (i = 0; i < FHIR_PRIMITIVES; i++)
		if (strcmp(fhir_types[i], t) == 0)
			return true;
	return false;
}

bool
fp_is_datatype(const char *t)
{
	size_t i;

	for (i = 0; fhir_types[i]; i++)
		if (strcmp(fhir_types[i], t) == 0)
			return true;
	return strcmp(t, "Resource") == 0 || strcmp(t, "DomainResource") == 0;
}

static const char *const string_family[] = {
    "string",	 "code", "id",	 "markdown",	 "uri",	  "url",
    "canonical", "oid",	 "uuid", "base64Binary", "xhtml", NULL};

static bool
in_list(const char *const *l, const char *t)
{
	for (; *l; l++)
		if (strcmp(*l, t) == 0)
			return true;
	return false;
}

/* Whether FHIR type t is, or specialises, FHIR type want. */
bool
fp_fhir_type_is(const char *t, const char *want)
{
	static const char *const quantities[] = {
	    "Quantity",	      "Age",	       "Count", "Distance", "Duration",
	    "SimpleQuantity", "MoneyQuantity", NULL};

	if (strcmp(t, want) == 0)
		return true;
	if (strcmp(want, "Element") == 0 || strcmp(want, "Base") == 0)
		return true;
	if (strcmp(want, "Resource") == 0)
		return !fp_is_datatype(t);
	if (strcmp(want, "DomainResource") == 0)
		return !fp_is_datatype(t) && strcmp(t, "Bundle") != 0 &&
		       strcmp(t, "Binary") != 0 && strcmp(t, "Parameters") != 0;
	if (strcmp(want, "string") == 0)
		return strcmp(t, "code") == 0 || strcmp(t, "id") == 0 ||
		       strcmp(t, "markdown") == 0;
	if (strcmp(want, "uri") == 0)
		return strcmp(t, "url") == 0 || strcmp(t, "canonical") == 0 ||
		       strcmp(t, "oid") == 0 || strcmp(t, "uuid") == 0;
	if (strcmp(want, "integer") == 0)
		return strcmp(t, "positiveInt") == 0 ||
		       strcmp(t, "unsignedInt") == 0;
	if (strcmp(want, "Quantity") == 0)
		return in_list(quantities, t);
	return false;
}

/* The System type a FHIR primitive maps to ("Boolean"), or NULL. */
const char *
fp_system_of(const char *t)
{
	if (strcmp(t, "boolean") == 0)
		return "Boolean";
	if (in_list(string_family, t))
		return "String";
	if (strcmp(t, "integer") == 0 || strcmp(t, "positiveInt") == 0 ||
	    strcmp(t, "unsignedInt") == 0)
		return "Integer";
	if (strcmp(t, "decimal") == 0)
		return "Decimal";
	if (strcmp(t, "dateTime") == 0 || strcmp(t, "instant") == 0)
		return "DateTime";
	if (strcmp(t, "date") == 0)
		return "Date";
	if (strcmp(t, "time") == 0)
		return "Time";
	return NULL;
}

const char *
fp_kind_system(enum fhirpath_kind k)
{
	switch (k) {
	case FHIRPATH_BOOLEAN:
		return "Boolean";
	case FHIRPATH_INTEGER:
		return "Integer";
	case FHIRPATH_DECIMAL:
		return "Decimal";
	case FHIRPATH_STRING:
		return "String";
	case FHIRPATH_DATE:
		return "Date";
	case FHIRPATH_DATETIME:
		return "DateTime";
	case FHIRPATH_TIME:
		return "Time";
	default:
		return NULL;
	}
}

bool
fp_is_system_name(const char *t)
{
	static const char *const sys[] = {"Boolean", "String", "Integer",
					  "Decimal", "Date",   "DateTime",
					  "Time",    NULL};

	return in_list(sys, t);
}
