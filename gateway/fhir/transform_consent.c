/*
 * transform rules of the Consent profiles: ACP-TreatmentDirective
 * (zib TreatmentDirective / TreatmentDirective2) and ACP-AdvanceDirective,
 * both ways, after the PZP mapping notes (STU3-R4-NOTES.md).
 */
#include <string.h>
#include <strings.h>

#include "transform_impl.h"

#define SNOMED		  "http://snomed.info/sct"
#define CONSENTCAT	  "http://terminology.hl7.org/CodeSystem/consentcategorycodes"
#define CONSENTSCOPE	  "http://terminology.hl7.org/CodeSystem/consentscope"
#define ROLECODE	  "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
#define NF_R4		  "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
#define PERMITTED_SYSTEM  "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4"
#define NICTIZ		  "http://nictiz.nl/fhir/StructureDefinition/"
#define URL_PERMITTED	  NICTIZ "zib-TreatmentDirective-TreatmentPermitted"
#define URL_TREATMENT	  NICTIZ "zib-TreatmentDirective-Treatment"
#define URL_VERIFICATION  NICTIZ "zib-TreatmentDirective-Verification"
#define URL_RESTRICTIONS  NICTIZ "zib-TreatmentDirective-Restrictions"
#define URL_SPECOTHER	  NICTIZ "ext-TreatmentDirective2.SpecificationOther"
#define URL_REASONEND	  NICTIZ "ext-TreatmentDirective2.ReasonForEnding"
#define URL_ADDITIONAL_R4 NICTIZ "ext-TreatmentDirective2.AdvanceDirective"

/* Category codes: zib2020 (R4) and zib2017 (STU3). */
#define TD_R4	"129125009"
#define TD_STU3 "11291000146105"
#define AD_R4	"acd"
#define AD_STU3 "11341000146107"
/* VerifiedWith: the patient (SNOMED "Patient"). */
#define VERIFIED_PATIENT "116154003"

const struct xf_url_map xf_urls_consent[] = {
    {"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
     "ACP-TreatmentDirective",
     "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
     "ACP-TreatmentDirective"},
    {"https://fhir.iknl.nl/fhir/StructureDefinition/ACP-TreatmentDirective",
     "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
     "ACP-TreatmentDirective"},
    {"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
     "ACP-AdvanceDirective",
     "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
     "ACP-AdvanceDirective"},
    {"https://fhir.iknl.nl/fhir/StructureDefinition/ACP-AdvanceDirective",
     "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
     "ACP-AdvanceDirective"},
    {NICTIZ "ext-TreatmentDirective2.AdvanceDirective",
     NICTIZ "consent-additionalSources"},
    {NICTIZ "ext-AdvanceDirective.Disorder",
     NICTIZ "zib-AdvanceDirective-Disorder"},
    {NULL, NULL},
};

enum consent_kind { CK_OTHER, CK_TREATMENT, CK_ADVANCE };

/* TreatmentPermitted NullFlavors and the specificationOther texts the
 * PZP R4 guidance gives for them; the first text of a code is the one
 * written back to R4 when the STU3 coding has no matching display. */
static const struct {
	const char *code;
	const char *text;
} nullflavor_texts[] = {
    {"ASKU", "Nee, nog geen besluit genomen"},
    {"UNK", "Nog onbekend"},
    {"UNK", "Onbekend"},
    {"NASK", "Niet besproken"},
    {"NASK", "Niet gevraagd"},
};

static bool
is_nullflavor_system(const char *s)
{
	return s != NULL &&
	       (strcmp(s, XF_NULLFLAVOR_SYSTEM) == 0 || strcmp(s, NF_R4) == 0);
}

/* Coding of a CodeableConcept (or Coding) n with system sys and code
 * code, or NULL. */
static struct fj_node *
cc_find(const struct fj_node *cc, const char *sys, const char *code)
{
	const struct fj_node *arr = fj_get(cc, "coding");

	if (arr == NULL || arr->type != FJ_ARRAY)
		return NULL;
	for (struct fj_node *c = arr->u.kids.first; c != NULL; c = c->next)
		if (fj_str_eq(fj_get(c, "system"), sys) &&
		    fj_str_eq(fj_get(c, "code"), code))
			return c;
	return NULL;
}

static enum consent_kind
consent_kind(const struct fj_node *res, enum rules_fhir v)
{
	const struct fj_node *cats = fj_get(res, "category");

	if (cats == NULL || cats->type != FJ_ARRAY)
		return CK_OTHER;
	for (const struct fj_node *c = cats->u.kids.first; c != NULL;
	     c = c->next) {
		if (cc_find(c, SNOMED, v == RULES_R4 ? TD_R4 : TD_STU3))
			return CK_TREATMENT;
		if (v == RULES_R4 ? cc_find(c, CONSENTCAT, AD_R4) != NULL
				  : cc_find(c, SNOMED, AD_STU3) != NULL)
			return CK_ADVANCE;
	}
	return CK_OTHER;
}

/* Whether a and b (either may be NULL) are the same JSON value. */
static bool
same(const struct fj_node *a, const struct fj_node *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return fj_equal(a, b, FDEC_EXACT);
}

/* A string node, or NULL. */
static struct fj_node *
str(struct xf_ctx *c, const char *s)
{
	return fj_new_string(c->doc, s);
}

/* {coding: [coding]} */
static struct fj_node *
cc_of(struct xf_ctx *c, struct fj_node *coding)
{
	struct fj_node *cc = fj_new_object(c->doc);
	struct fj_node *arr = fj_new_array(c->doc);

	if (cc == NULL || arr == NULL || coding == NULL)
		return NULL;
	fj_append(arr, coding);
	if (fj_set(c->doc, cc, "coding", arr) != GW_OK)
		return NULL;
	return cc;
}

/* A CodeableConcept with only a data-absent-reason extension. */
static struct fj_node *
cc_absent(struct xf_ctx *c)
{
	struct fj_node *cc = fj_new_object(c->doc);

	if (cc == NULL || xf_ext_add(c, cc, XF_DAR_URL, false, "valueCode",
				     str(c, "unknown")) != GW_OK)
		return NULL;
	return cc;
}

/* Append val to array obj[key], making the array when missing. */
static enum gw_err
push(struct xf_ctx *c, struct fj_node *obj, const char *key,
     struct fj_node *val)
{
	struct fj_node *arr = fj_get(obj, key);

	if (val == NULL)
		return GW_NOMEM;
	if (arr == NULL || arr->type != FJ_ARRAY) {
		if ((arr = fj_new_array(c->doc)) == NULL ||
		    fj_set(c->doc, obj, key, arr) != GW_OK)
			return GW_NOMEM;
	}
	fj_append(arr, val);
	return GW_OK;
}

/* Move member key of from into to (as key2), if present. */
static enum gw_err
move(struct xf_ctx *c, struct fj_node *from, const char *key,
     struct fj_node *to, const char *key2)
{
	struct fj_node *m = fj_get(from, key);

	if (m == NULL)
		return GW_OK;
	fj_remove(from, key);
	return fj_set(c->doc, to, key2, m);
}

/* Map the category codings of res between the versions. */
static enum gw_err
map_categories(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *cats = fj_get(res, "category");
	size_t i = 0;

	if (cats == NULL || cats->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *cat = cats->u.kids.first; cat != NULL;
	     cat = cat->next, i++) {
		struct fj_node *arr = fj_get(cat, "coding");
		size_t j = 0;

		if (arr == NULL || arr->type != FJ_ARRAY)
			continue;
		for (struct fj_node *cd = arr->u.kids.first; cd != NULL;
		     cd = cd->next, j++) {
			const char *sys = NULL, *code = NULL;
			char rel[64];

			if (c->to == RULES_STU3) {
				if (fj_str_eq(fj_get(cd, "system"), SNOMED) &&
				    fj_str_eq(fj_get(cd, "code"), TD_R4))
					sys = SNOMED, code = TD_STU3;
				else if (fj_str_eq(fj_get(cd, "system"),
						   CONSENTCAT) &&
					 fj_str_eq(fj_get(cd, "code"), AD_R4))
					sys = SNOMED, code = AD_STU3;
			} else if (fj_str_eq(fj_get(cd, "system"), SNOMED)) {
				if (fj_str_eq(fj_get(cd, "code"), TD_STU3))
					sys = SNOMED, code = TD_R4;
				else if (fj_str_eq(fj_get(cd, "code"), AD_STU3))
					sys = CONSENTCAT, code = AD_R4;
			}
			if (code == NULL)
				continue;
			snprintf(rel, sizeof(rel), "category[%zu].coding[%zu]",
				 i, j);
			if (fj_set(c->doc, cd, "system", str(c, sys)) !=
				GW_OK ||
			    fj_set(c->doc, cd, "code", str(c, code)) != GW_OK)
				return GW_NOMEM;
			/* The display named the other code. */
			if (fj_remove(cd, "display") &&
			    xf_loss(c, rel,
				    "the display of the category code is left "
				    "out: it belongs to the %s code",
				    c->to == RULES_R4 ? "STU3" : "R4") != GW_OK)
				return GW_NOMEM;
		}
	}
	return GW_OK;
}

/* R4 identifier 0..* <-> STU3 identifier 0..1. */
static enum gw_err
map_identifier(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *id = fj_get(res, "identifier");

	if (id == NULL)
		return GW_OK;
	if (c->to == RULES_R4) {
		struct fj_node *arr;

		if (id->type != FJ_OBJECT)
			return GW_OK;
		fj_remove(res, "identifier");
		if ((arr = fj_new_array(c->doc)) == NULL)
			return GW_NOMEM;
		fj_append(arr, id);
		return fj_set(c->doc, res, "identifier", arr);
	}
	if (id->type != FJ_ARRAY)
		return GW_OK;
	fj_remove(res, "identifier");
	if (id->u.kids.count == 0)
		return GW_OK;
	if (id->u.kids.count > 1 &&
	    xf_loss(c, "identifier",
		    "STU3 Consent holds one identifier: the %zu after the "
		    "first are left out",
		    id->u.kids.count - 1) != GW_OK)
		return GW_NOMEM;
	return fj_set(c->doc, res, "identifier", id->u.kids.first);
}

/* policyRule: a CodeableConcept in R4, a uri in STU3. A coding goes as
 * "system#code" (and back); other content is reported. It stays, as
 * ppc-1 needs policy or policyRule. */
static enum gw_err
policy_rule(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *pr = fj_get(res, "policyRule");
	char buf[1024];
	enum gw_err e;

	if (pr == NULL)
		return GW_OK;
	if (c->to == RULES_STU3) {
		const struct fj_node *cd = fj_at(fj_get(pr, "coding"), 0);
		const char *sys = fj_get_str(cd, "system");
		const char *code = fj_get_str(cd, "code");
		struct fj_node *u;

		if (sys == NULL || code == NULL ||
		    (size_t)snprintf(buf, sizeof(buf), "%s#%s", sys, code) >=
			sizeof(buf)) {
			fj_remove(res, "policyRule");
			return xf_loss(c, "policyRule",
				       "a policyRule without system and code "
				       "has no STU3 uri: it is left out");
		}
		if ((u = fj_new_string(c->doc, buf)) == NULL ||
		    fj_set(c->doc, res, "policyRule", u) != GW_OK)
			return GW_NOMEM;
		if ((fj_get(pr, "text") != NULL ||
		     fj_get(cd, "display") != NULL ||
		     fj_get(pr, "coding")->u.kids.count > 1) &&
		    (e = xf_loss(c, "policyRule",
				 "STU3 policyRule is a uri: only the first "
				 "coding's system#code is kept")) != GW_OK)
			return e;
		return GW_OK;
	}
	if (pr->type == FJ_STRING) {
		const char *hash = strchr(pr->u.str.s, '#');
		struct fj_node *cc;

		if (hash != NULL && hash[1] != '\0') {
			struct fj_node *sys = fj_new_stringn(
			    c->doc, pr->u.str.s, (size_t)(hash - pr->u.str.s));
			struct fj_node *cd = fj_new_object(c->doc);

			if (sys == NULL || cd == NULL ||
			    fj_set(c->doc, cd, "system", sys) != GW_OK ||
			    fj_set(c->doc, cd, "code", str(c, hash + 1)) !=
				GW_OK ||
			    (cc = cc_of(c, cd)) == NULL)
				return GW_NOMEM;
		} else {
			if ((cc = fj_new_object(c->doc)) == NULL ||
			    fj_set(c->doc, cc, "text", str(c, pr->u.str.s)) !=
				GW_OK)
				return GW_NOMEM;
			if ((e = xf_loss(c, "policyRule",
					 "R4 policyRule is a CodeableConcept: "
					 "the uri is its text")) != GW_OK)
				return e;
		}
		return fj_set(c->doc, res, "policyRule", cc);
	}
	return GW_OK;
}

/* ---- R4 -> STU3 ---- */

/* The role code of the actor that is STU3 consentingParty. */
static const char *
party_role(enum consent_kind k)
{
	return k == CK_ADVANCE ? "RESPRSN" : "CONSENTER";
}

/* R4 provision.type + specificationOther -> STU3 TreatmentPermitted
 * modifier extension and the except that says permit/deny. */
static enum gw_err
permitted_to_stu3(struct xf_ctx *c, struct fj_node *res, struct fj_node *prov)
{
	const char *type = fj_get_str(prov, "type");
	struct fj_node *spec = xf_ext_take(res, URL_SPECOTHER, true);
	const char *text = fj_get_str(spec, "valueString");
	const char *code = NULL, *display = NULL, *sys = PERMITTED_SYSTEM;
	const char *except_type = NULL;
	struct fj_node *coding, *ex = NULL;
	enum gw_err e;

	if (spec != NULL && text == NULL &&
	    (e = xf_loss(c, "modifierExtension",
			 "specificationOther without a valueString is left "
			 "out")) != GW_OK)
		return e;
	if (type != NULL && strcmp(type, "permit") == 0)
		code = "JA", display = "Ja", except_type = "permit";
	else if (type != NULL && strcmp(type, "deny") == 0)
		code = "NEE", display = "Nee", except_type = "deny";
	if (code == NULL && text != NULL) {
		for (size_t i = 0;
		     i < sizeof(nullflavor_texts) / sizeof(nullflavor_texts[0]);
		     i++) {
			if (strcasecmp(text, nullflavor_texts[i].text) == 0) {
				code = nullflavor_texts[i].code;
				display = text; /* kept: it goes back as is */
				sys = XF_NULLFLAVOR_SYSTEM;
				text = NULL;
				break;
			}
		}
		if (code == NULL) {
			/* a restriction in words: "yes, but ..." */
			code = "JA_MAAR";
			display = "Ja, maar met beperkingen";
			except_type = "deny";
		}
	}
	if (code == NULL) {
		/* TreatmentPermitted is required in STU3; nothing says
		   what was decided: the NullFlavor for unknown. */
		code = "UNK";
		display = NULL;
		sys = XF_NULLFLAVOR_SYSTEM;
		if ((e = xf_loss(c, "provision.type",
				 "no provision.type nor specificationOther: "
				 "TreatmentPermitted is set to NullFlavor "
				 "UNK")) != GW_OK)
			return e;
	}
	if ((coding = xf_coding(c, sys, code, display)) == NULL)
		return GW_NOMEM;
	if ((e = xf_ext_add(c, res, URL_PERMITTED, true, "valueCodeableConcept",
			    cc_of(c, coding))) != GW_OK)
		return e;
	if (except_type == NULL && text == NULL)
		return GW_OK;
	if (except_type == NULL) /* NullFlavor with a further text */
		except_type = "deny";
	if ((ex = fj_new_object(c->doc)) == NULL)
		return GW_NOMEM;
	if (text != NULL &&
	    (e = xf_ext_add(c, ex, URL_RESTRICTIONS, false, "valueString",
			    str(c, text))) != GW_OK)
		return e;
	if ((e = fj_set(c->doc, ex, "type", str(c, except_type))) != GW_OK)
		return e;
	return push(c, res, "except", ex);
}

/* A provision (nested, R4) -> an STU3 except: code and class are Coding
 * lists there. */
static enum gw_err
provision_to_except(struct xf_ctx *c, struct fj_node *p, const char *rel)
{
	struct fj_node *codes = fj_get(p, "code");
	struct fj_node *nested = fj_get(p, "provision");
	enum gw_err e;

	if (nested != NULL) {
		fj_remove(p, "provision");
		if ((e = xf_loss(c, rel,
				 "STU3 except cannot nest: the provisions "
				 "inside are left out")) != GW_OK)
			return e;
	}
	if (codes != NULL && codes->type == FJ_ARRAY) {
		struct fj_node *flat = fj_new_array(c->doc);

		if (flat == NULL)
			return GW_NOMEM;
		for (struct fj_node *cc = codes->u.kids.first; cc != NULL;
		     cc = cc->next) {
			struct fj_node *arr = fj_get(cc, "coding");

			if (fj_get(cc, "text") != NULL &&
			    (e = xf_loss(c, rel,
					 "the text of provision.code is left "
					 "out (STU3 except.code is a "
					 "Coding)")) != GW_OK)
				return e;
			if (arr == NULL || arr->type != FJ_ARRAY)
				continue;
			for (struct fj_node *cd = arr->u.kids.first, *nx;
			     cd != NULL; cd = nx) {
				nx = cd->next;
				fj_append(flat, cd);
			}
		}
		fj_remove(p, "code");
		if (flat->u.kids.count > 0 &&
		    fj_set(c->doc, p, "code", flat) != GW_OK)
			return GW_NOMEM;
	}
	return GW_OK;
}

/* R4 verification.verifiedWith -> a VerifiedWith CodeableConcept: the
 * patient has a SNOMED code; anyone else is NullFlavor OTH with the
 * reference's display as text. */
static enum gw_err
verified_with_to_stu3(struct xf_ctx *c, struct fj_node *ext,
		      const struct fj_node *vw, const char *patient,
		      const char *rel)
{
	const char *r = fj_get_str(vw, "reference");
	const char *d = fj_get_str(vw, "display");
	struct fj_node *cc;
	enum gw_err e;

	if (r != NULL && patient != NULL && strcmp(r, patient) == 0) {
		cc =
		    cc_of(c, xf_coding(c, SNOMED, VERIFIED_PATIENT, "Patient"));
	} else {
		cc = cc_of(c,
			   xf_coding(c, XF_NULLFLAVOR_SYSTEM, "OTH", "Other"));
		if (cc != NULL && (d != NULL || r != NULL) &&
		    fj_set(c->doc, cc, "text", str(c, d != NULL ? d : r)) !=
			GW_OK)
			return GW_NOMEM;
		if (r != NULL &&
		    (e = xf_loss(
			 c, rel,
			 "VerifiedWith is a code in STU3: the reference "
			 "%s becomes NullFlavor OTH with %s as text",
			 r, d != NULL ? "its display" : "it")) != GW_OK)
			return e;
	}
	return xf_ext_add(c, ext, "VerifiedWith", false, "valueCodeableConcept",
			  cc);
}

/* R4 Consent.verification -> the zib Verification extension (STU3
 * TreatmentDirective requires one): Verified and VerificationDate of the
 * first, a VerifiedWith per verification. */
static enum gw_err
verification_to_stu3(struct xf_ctx *c, struct fj_node *res, enum consent_kind k)
{
	struct fj_node *ver = fj_get(res, "verification");
	struct fj_node *v, *ext, *val;
	const char *pat = fj_get_str(fj_get(res, "patient"), "reference");
	size_t i = 0;
	enum gw_err e;

	if (ver != NULL)
		fj_remove(res, "verification");
	v = ver != NULL && ver->type == FJ_ARRAY ? ver->u.kids.first : NULL;
	if (k != CK_TREATMENT) {
		if (v != NULL)
			return xf_loss(c, "verification",
				       "STU3 has no verification for this "
				       "Consent: it is left out");
		return GW_OK;
	}
	if ((ext = fj_new_object(c->doc)) == NULL ||
	    fj_set(c->doc, ext, "url", str(c, URL_VERIFICATION)) != GW_OK)
		return GW_NOMEM;
	if (v == NULL) {
		/* Required in STU3, no source in R4: Verified is present
		   with only a data-absent-reason. */
		struct fj_node *prim = fj_new_object(c->doc);

		if (prim == NULL ||
		    xf_ext_add(c, prim, XF_DAR_URL, false, "valueCode",
			       str(c, "unknown")) != GW_OK ||
		    xf_ext_add(c, ext, "Verified", false, "_valueBoolean",
			       prim) != GW_OK)
			return GW_NOMEM;
		if ((e = xf_loss(c, NULL,
				 "R4 has no verification: the STU3 "
				 "Verification extension is added with "
				 "Verified absent (data-absent-reason "
				 "unknown)")) != GW_OK)
			return e;
		return push(c, res, "extension", ext);
	}
	if ((val = fj_get(v, "verified")) != NULL &&
	    (e = xf_ext_add(c, ext, "Verified", false, "valueBoolean",
			    fj_copy(c->doc, val))) != GW_OK)
		return e;
	if ((val = fj_get(v, "verificationDate")) != NULL &&
	    (e = xf_ext_add(c, ext, "VerificationDate", false, "valueDateTime",
			    fj_copy(c->doc, val))) != GW_OK)
		return e;
	for (struct fj_node *w = v; w != NULL; w = w->next, i++) {
		const struct fj_node *vw = fj_get(w, "verifiedWith");
		char rel[64];

		snprintf(rel, sizeof(rel), "verification[%zu]", i);
		if (w != v &&
		    (!same(fj_get(w, "verified"), fj_get(v, "verified")) ||
		     (fj_get(w, "verificationDate") != NULL &&
		      !same(fj_get(w, "verificationDate"),
			    fj_get(v, "verificationDate")))) &&
		    (e = xf_loss(c, rel,
				 "the zib Verification extension has one "
				 "Verified and one date: those of this "
				 "verification are left out")) != GW_OK)
			return e;
		if (vw == NULL)
			continue;
		snprintf(rel, sizeof(rel), "verification[%zu].verifiedWith", i);
		if ((e = verified_with_to_stu3(c, ext, vw, pat, rel)) != GW_OK)
			return e;
	}
	return push(c, res, "extension", ext);
}

/* What the STU3 profiles restrict: a TreatmentDirective's source is a
 * Reference (to an AdvanceDirective), an AdvanceDirective's an
 * Attachment, and an AdvanceDirective needs its dateTime. */
static enum gw_err
source_to_stu3(struct xf_ctx *c, struct fj_node *res, enum consent_kind k)
{
	const char *bad = k == CK_TREATMENT ? "sourceAttachment"
			  : k == CK_ADVANCE ? "sourceReference"
					    : NULL;
	enum gw_err e;

	if (bad != NULL && fj_get(res, bad) != NULL) {
		fj_remove(res, bad);
		if ((e = xf_loss(c, bad,
				 "the STU3 %s takes no %s: it is left out",
				 k == CK_TREATMENT ? "TreatmentDirective"
						   : "AdvanceDirective",
				 bad)) != GW_OK)
			return e;
	}
	if (k == CK_ADVANCE && fj_get(res, "dateTime") == NULL &&
	    fj_get(res, "_dateTime") == NULL) {
		struct fj_node *prim = fj_new_object(c->doc);

		if (prim == NULL ||
		    xf_ext_add(c, prim, XF_DAR_URL, false, "valueCode",
			       str(c, "unknown")) != GW_OK ||
		    fj_set(c->doc, res, "_dateTime", prim) != GW_OK)
			return GW_NOMEM;
		return xf_loss(c, "dateTime",
			       "the STU3 AdvanceDirective requires dateTime: "
			       "it is set absent (data-absent-reason "
			       "unknown)");
	}
	return GW_OK;
}

static enum gw_err
actors_to_stu3(struct xf_ctx *c, struct fj_node *res, struct fj_node *prov,
	       enum consent_kind k)
{
	struct fj_node *actors = fj_get(prov, "actor");
	struct fj_node *perf = fj_get(res, "performer");
	size_t i = 0, parties = 0;
	enum gw_err e;
	char rel[64];

	if (perf != NULL && perf->type == FJ_ARRAY) {
		fj_remove(res, "performer");
		for (struct fj_node *p = perf->u.kids.first, *nx; p != NULL;
		     p = nx, i++) {
			nx = p->next;
			snprintf(rel, sizeof(rel), "performer[%zu]", i);
			if ((e = xf_role_ref(c, p, rel)) != GW_OK ||
			    (e = push(c, res, "consentingParty", p)) != GW_OK)
				return e;
			parties++;
		}
	}
	if (actors == NULL || actors->type != FJ_ARRAY)
		return GW_OK;
	fj_remove(prov, "actor");
	i = 0;
	for (struct fj_node *a = actors->u.kids.first, *nx; a != NULL;
	     a = nx, i++) {
		struct fj_node *ref = fj_get(a, "reference");

		nx = a->next;
		snprintf(rel, sizeof(rel), "provision.actor[%zu].reference", i);
		if ((e = xf_role_ref(c, ref, rel)) != GW_OK)
			return e;
		/* the party that agrees: consentingParty (the Advance
		   Directive's holds one, further ones stay actors) */
		if (k != CK_OTHER &&
		    cc_find(fj_get(a, "role"), ROLECODE, party_role(k)) !=
			NULL &&
		    ref != NULL && (k != CK_ADVANCE || parties == 0)) {
			fj_remove(a, "reference");
			if ((e = push(c, res, "consentingParty", ref)) != GW_OK)
				return e;
			parties++;
			continue;
		}
		if ((e = push(c, res, "actor", a)) != GW_OK)
			return e;
	}
	return GW_OK;
}

static enum gw_err
consent_to_stu3(struct xf_ctx *c, struct fj_node *res, enum consent_kind k)
{
	struct fj_node *prov = fj_get(res, "provision");
	struct fj_node *scope = fj_get(res, "scope");
	struct fj_node *x;
	enum gw_err e;

	if ((e = map_identifier(c, res)) != GW_OK ||
	    (e = map_categories(c, res)) != GW_OK)
		return e;
	if (scope != NULL) {
		const char *want = k == CK_TREATMENT ? "treatment"
				   : k == CK_ADVANCE ? "adr"
						     : NULL;

		fj_remove(res, "scope");
		/* the profile fixes it; any other scope is lost */
		if ((want == NULL ||
		     cc_find(scope, CONSENTSCOPE, want) == NULL) &&
		    (e = xf_loss(c, "scope",
				 "STU3 Consent has no scope: it is left "
				 "out")) != GW_OK)
			return e;
	}
	if ((e = policy_rule(c, res)) != GW_OK)
		return e;
	if ((e = verification_to_stu3(c, res, k)) != GW_OK ||
	    (e = source_to_stu3(c, res, k)) != GW_OK)
		return e;
	if (prov == NULL || prov->type != FJ_OBJECT) {
		if (k == CK_TREATMENT)
			return permitted_to_stu3(c, res, NULL);
		return GW_OK;
	}
	fj_remove(res, "provision");
	if (k == CK_TREATMENT && (e = permitted_to_stu3(c, res, prov)) != GW_OK)
		return e;
	if ((e = actors_to_stu3(c, res, prov, k)) != GW_OK)
		return e;
	/* provision.code: the Treatment (TreatmentDirective), the type of
	   living will (AdvanceDirective, a category in STU3) */
	if ((x = fj_get(prov, "code")) != NULL && x->type == FJ_ARRAY &&
	    k != CK_OTHER) {
		fj_remove(prov, "code");
		for (struct fj_node *cc = x->u.kids.first, *nx; cc != NULL;
		     cc = nx) {
			nx = cc->next;
			if (k == CK_ADVANCE) {
				if ((e = push(c, res, "category", cc)) != GW_OK)
					return e;
			} else if (cc == x->u.kids.first) {
				if ((e = xf_ext_add(
					 c, res, URL_TREATMENT, false,
					 "valueCodeableConcept", cc)) != GW_OK)
					return e;
			} else if ((e = xf_loss(c, "provision.code",
						"the Treatment extension holds "
						"one code: the others are left "
						"out")) != GW_OK) {
				return e;
			}
		}
	}
	if (k == CK_TREATMENT)
		fj_remove(prov, "type");
	if (fj_get(prov, "extension") != NULL) {
		fj_remove(prov, "extension");
		if ((e = xf_loss(c, "provision.extension",
				 "STU3 Consent has no provision: its "
				 "extensions (e.g. ReasonForEnding) are left "
				 "out")) != GW_OK)
			return e;
	}
	if ((e = move(c, prov, "period", res, "period")) != GW_OK ||
	    (e = move(c, prov, "dataPeriod", res, "dataPeriod")) != GW_OK ||
	    (e = move(c, prov, "securityLabel", res, "securityLabel")) !=
		GW_OK ||
	    (e = move(c, prov, "purpose", res, "purpose")) != GW_OK ||
	    (e = move(c, prov, "action", res, "action")) != GW_OK ||
	    (e = move(c, prov, "data", res, "data")) != GW_OK)
		return e;
	/* what is left (type, class, code of a plain Consent; nested
	   provisions) becomes an except */
	if ((x = fj_get(prov, "provision")) != NULL && x->type == FJ_ARRAY) {
		size_t i = 0;

		fj_remove(prov, "provision");
		for (struct fj_node *p = x->u.kids.first, *nx; p != NULL;
		     p = nx, i++) {
			char rel[48];

			nx = p->next;
			snprintf(rel, sizeof(rel), "provision.provision[%zu]",
				 i);
			if ((e = provision_to_except(c, p, rel)) != GW_OK ||
			    (e = push(c, res, "except", p)) != GW_OK)
				return e;
		}
	}
	fj_remove(prov, "id");
	if (prov->u.kids.count > 0) {
		if ((e = provision_to_except(c, prov, "provision")) != GW_OK)
			return e;
		if (fj_get(prov, "type") == NULL &&
		    fj_set(c->doc, prov, "type", str(c, "permit")) != GW_OK)
			return GW_NOMEM;
		if ((e = push(c, res, "except", prov)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* ---- STU3 -> R4 ---- */

static struct fj_node *
new_provision(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *p = fj_get(res, "provision");

	if (p != NULL)
		return p;
	if ((p = fj_new_object(c->doc)) == NULL ||
	    fj_set(c->doc, res, "provision", p) != GW_OK)
		return NULL;
	return p;
}

/* Whether a reference string names an Organization. */
static bool
is_org_ref(const char *r)
{
	return r != NULL && strncmp(r, "Organization/", 13) == 0;
}

/*
 * STU3 -> R4, a consentingParty or actor reference r of a PZP Consent:
 * the R4 profiles' provision.actor takes a Patient, PractitionerRole or
 * ContactPerson, never a bare Practitioner (zib2017 allowed one); R4
 * Consent.performer (who agrees) takes it, so it goes there and the
 * actor's role is reported lost. *moved says whether it went.
 */
static enum gw_err
practitioner_to_performer(struct xf_ctx *c, struct fj_node *res,
			  struct fj_node *r, const char *rel, bool *moved)
{
	char type[64];

	*moved = false;
	xf_ref_type(c, r, type, sizeof(type));
	if (strcmp(type, "Practitioner") != 0)
		return GW_OK;
	*moved = true;
	if (push(c, res, "performer", r) != GW_OK)
		return GW_NOMEM;
	return xf_loss(c, rel,
		       "R4's provision.actor cannot be a Practitioner (only "
		       "its PractitionerRole, which the input does not "
		       "name): the reference is Consent.performer, who "
		       "agrees, and its actor role is left out");
}

/* The restriction text of an except, taken out of it, or NULL. */
static const char *
take_restriction(struct fj_node *ex)
{
	struct fj_node *r = xf_ext_take(ex, URL_RESTRICTIONS, false);

	return fj_get_str(r, "valueString");
}

/* True when ex is only {type[, restrictions]}: the STU3 rendering of the
 * decision itself, not a real exception. */
static bool
except_is_decision(const struct fj_node *ex)
{
	for (const struct fj_node *m = ex->u.kids.first; m != NULL;
	     m = m->next) {
		if (m->keylen == 4 && memcmp(m->key, "type", 4) == 0)
			continue;
		if (m->keylen == 9 && memcmp(m->key, "extension", 9) == 0 &&
		    m->type == FJ_ARRAY && m->u.kids.count == 1 &&
		    xf_ext_find(ex, URL_RESTRICTIONS, false) != NULL)
			continue;
		return false;
	}
	return true;
}

static enum gw_err
permitted_to_r4(struct xf_ctx *c, struct fj_node *res, struct fj_node *prov)
{
	struct fj_node *ext = xf_ext_take(res, URL_PERMITTED, true);
	struct fj_node *cc = fj_get(ext, "valueCodeableConcept");
	struct fj_node *exs = fj_get(res, "except");
	struct fj_node *ex = NULL, *cd;
	const char *code = NULL, *text = NULL, *type = NULL;
	bool nf = false;
	enum gw_err e;

	if (exs != NULL && exs->type == FJ_ARRAY && exs->u.kids.count > 0 &&
	    except_is_decision(exs->u.kids.first))
		ex = exs->u.kids.first;
	if ((cd = cc_find(cc, PERMITTED_SYSTEM, "JA")) != NULL)
		code = "JA", type = "permit";
	else if ((cd = cc_find(cc, PERMITTED_SYSTEM, "NEE")) != NULL)
		code = "NEE", type = "deny";
	else if ((cd = cc_find(cc, PERMITTED_SYSTEM, "JA_MAAR")) != NULL)
		code = "JA_MAAR";
	else {
		const struct fj_node *arr = fj_get(cc, "coding");

		for (cd = arr != NULL && arr->type == FJ_ARRAY
			      ? arr->u.kids.first
			      : NULL;
		     cd != NULL; cd = cd->next) {
			if (is_nullflavor_system(fj_get_str(cd, "system"))) {
				code = fj_get_str(cd, "code");
				nf = true;
				break;
			}
		}
	}
	if (code == NULL) {
		if (ext != NULL || cc != NULL)
			return xf_refuse(c, "modifierExtension",
					 "TreatmentPermitted has no code R4 "
					 "can express");
		/* no decision at all: R4 leaves provision.type out */
		return GW_OK;
	}
	if (ex != NULL) {
		text = take_restriction(ex);
		/* the except said the decision again: it is consumed */
		xf_arr_remove(exs, ex);
		if (exs->u.kids.count == 0)
			fj_remove(res, "except");
	}
	if (nf) {
		const char *display = fj_get_str(cd, "display");
		const char *back = NULL;

		for (size_t i = 0;
		     i < sizeof(nullflavor_texts) / sizeof(nullflavor_texts[0]);
		     i++) {
			if (strcmp(code, nullflavor_texts[i].code) != 0)
				continue;
			if (back == NULL)
				back = nullflavor_texts[i].text;
			if (display != NULL &&
			    strcasecmp(display, nullflavor_texts[i].text) == 0)
				back = display;
		}
		if (back == NULL)
			return xf_refuse(c, "modifierExtension",
					 "NullFlavor %s of TreatmentPermitted "
					 "has no R4 specificationOther text",
					 code);
		if (text != NULL &&
		    (e = xf_loss(c, "except[0].extension",
				 "the restriction text beside NullFlavor %s "
				 "is left out (R4 specificationOther holds "
				 "one text)",
				 code)) != GW_OK)
			return e;
		text = back;
	} else if (strcmp(code, "JA_MAAR") == 0 && text == NULL) {
		text = "Ja, maar met beperkingen";
		if ((e = xf_loss(c, "modifierExtension",
				 "JA_MAAR without a restriction text: "
				 "specificationOther says \"%s\"",
				 text)) != GW_OK)
			return e;
	}
	if (type != NULL && fj_set(c->doc, prov, "type", str(c, type)) != GW_OK)
		return GW_NOMEM;
	if (text != NULL)
		return xf_ext_add(c, res, URL_SPECOTHER, true, "valueString",
				  str(c, text));
	return GW_OK;
}

/* One R4 verification {verified, verifiedWith?, verificationDate?}. */
static struct fj_node *
new_verification(struct xf_ctx *c, const struct fj_node *verified,
		 const struct fj_node *date, struct fj_node *with)
{
	struct fj_node *v = fj_new_object(c->doc);

	if (v == NULL ||
	    fj_set(c->doc, v, "verified", fj_copy(c->doc, verified)) != GW_OK)
		return NULL;
	if (with != NULL && fj_set(c->doc, v, "verifiedWith", with) != GW_OK)
		return NULL;
	if (date != NULL && fj_set(c->doc, v, "verificationDate",
				   fj_copy(c->doc, date)) != GW_OK)
		return NULL;
	return v;
}

/* The Verification extension -> R4 Consent.verification, one per
 * VerifiedWith (R4's verifiedWith is a single Reference). */
static enum gw_err
verification_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *ext = xf_ext_take(res, URL_VERIFICATION, false);
	const struct fj_node *verified, *date = NULL;
	struct fj_node *x, *subs, *arr;
	const char *pat = fj_get_str(fj_get(res, "patient"), "reference");
	enum gw_err e;

	if (ext == NULL)
		return GW_OK;
	x = xf_ext_find(ext, "Verified", false);
	verified = fj_get(x, "valueBoolean");
	if (verified == NULL) {
		/* Verified absent (as R4 -> STU3 writes it): R4's
		   verification needs verified, so there is none. */
		if (xf_ext_find(ext, "VerificationDate", false) != NULL ||
		    xf_ext_find(ext, "VerifiedWith", false) != NULL)
			return xf_loss(c, "extension",
				       "Verification without Verified: R4 "
				       "verification needs it, so it is left "
				       "out");
		return GW_OK;
	}
	x = xf_ext_find(ext, "VerificationDate", false);
	if (x != NULL)
		date = fj_get(x, "valueDateTime");
	if ((arr = fj_new_array(c->doc)) == NULL)
		return GW_NOMEM;
	subs = fj_get(ext, "extension");
	for (struct fj_node *w = subs != NULL && subs->type == FJ_ARRAY
				     ? subs->u.kids.first
				     : NULL;
	     w != NULL; w = w->next) {
		struct fj_node *cc = fj_get(w, "valueCodeableConcept");
		struct fj_node *ref, *v;

		if (!fj_str_eq(fj_get(w, "url"), "VerifiedWith"))
			continue;
		if ((ref = fj_new_object(c->doc)) == NULL)
			return GW_NOMEM;
		if (cc_find(cc, SNOMED, VERIFIED_PATIENT) != NULL &&
		    pat != NULL) {
			if (fj_set(c->doc, ref, "reference", str(c, pat)) !=
			    GW_OK)
				return GW_NOMEM;
		} else {
			const char *t = fj_get_str(cc, "text");
			const struct fj_node *cd =
			    fj_at(fj_get(cc, "coding"), 0);

			if (t == NULL)
				t = fj_get_str(cd, "display");
			if (t == NULL ||
			    !is_nullflavor_system(fj_get_str(cd, "system")) ||
			    !fj_str_eq(fj_get(cd, "code"), "OTH")) {
				if ((e = xf_loss(c, "extension",
						 "VerifiedWith %s has no R4 "
						 "reference: it is kept as "
						 "the display of verifiedWith",
						 t != NULL ? "(a code)"
							   : "without text")) !=
				    GW_OK)
					return e;
			}
			if (t != NULL &&
			    fj_set(c->doc, ref, "display", str(c, t)) != GW_OK)
				return GW_NOMEM;
			if (t == NULL)
				continue;
		}
		if ((v = new_verification(c, verified, date, ref)) == NULL)
			return GW_NOMEM;
		fj_append(arr, v);
	}
	if (arr->u.kids.count == 0) {
		struct fj_node *v = new_verification(c, verified, date, NULL);

		if (v == NULL)
			return GW_NOMEM;
		fj_append(arr, v);
	}
	return fj_set(c->doc, res, "verification", arr);
}

/* consent-additionalSources (STU3: Attachment, Identifier or Reference)
 * -> ext-TreatmentDirective2.AdvanceDirective (R4: a Reference). */
static enum gw_err
additional_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *arr = fj_get(res, "extension");
	size_t i = 0;
	enum gw_err e;

	if (arr == NULL || arr->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *x = arr->u.kids.first, *nx; x != NULL;
	     x = nx, i++) {
		struct fj_node *v;
		char rel[48];

		nx = x->next;
		if (!fj_str_eq(fj_get(x, "url"), URL_ADDITIONAL_R4))
			continue;
		snprintf(rel, sizeof(rel), "extension[%zu]", i);
		if ((v = fj_get(x, "valueIdentifier")) != NULL) {
			struct fj_node *r = fj_new_object(c->doc);

			fj_remove(x, "valueIdentifier");
			if (r == NULL ||
			    fj_set(c->doc, r, "identifier", v) != GW_OK ||
			    fj_set(c->doc, x, "valueReference", r) != GW_OK)
				return GW_NOMEM;
			continue;
		}
		if (fj_get(x, "valueReference") != NULL)
			continue;
		xf_arr_remove(arr, x);
		if ((e = xf_loss(c, rel,
				 "R4 additionalAdvanceDirective is a "
				 "Reference: this additional source is left "
				 "out")) != GW_OK)
			return e;
	}
	if (arr->u.kids.count == 0)
		fj_remove(res, "extension");
	return GW_OK;
}

/* An STU3 except -> an R4 provision: code becomes CodeableConcepts,
 * reported (the treatment an exception names moves one level down, into
 * the nested provision). i is the except's index, j the nested
 * provision's. */
static enum gw_err
except_to_provision(struct xf_ctx *c, struct fj_node *ex, size_t i, size_t j)
{
	struct fj_node *codes = fj_get(ex, "code");
	char rel[48];
	enum gw_err e;

	if (codes != NULL && codes->type == FJ_ARRAY) {
		struct fj_node *ccs = fj_new_array(c->doc);

		if (ccs == NULL)
			return GW_NOMEM;
		snprintf(rel, sizeof(rel), "except[%zu].code", i);
		if ((e = xf_note(c, rel,
				 "the except's %zu code(s) are the "
				 "CodeableConcepts of the nested R4 "
				 "provision.provision[%zu].code",
				 codes->u.kids.count, j)) != GW_OK)
			return e;
		for (struct fj_node *cd = codes->u.kids.first, *nx; cd != NULL;
		     cd = nx) {
			struct fj_node *cc;

			nx = cd->next;
			if ((cc = cc_of(c, cd)) == NULL)
				return GW_NOMEM;
			fj_append(ccs, cc);
		}
		if (fj_set(c->doc, ex, "code", ccs) != GW_OK)
			return GW_NOMEM;
	}
	return GW_OK;
}

/* zib2020 BehandelingCodelijst (2.16.840.1.113883.2.4.3.11.60.40.2.2.2.1,
 * 2020-09-01), the required binding of R4 provision.code, beside
 * NullFlavor OTH; zib2017's list is extensible. */
static const char *const treatments_r4[] = {
    "116762002", "281789004", "305351004", "32485007", "40617009", "89666000",
};

/*
 * STU3 -> R4: a Treatment coded outside the zib2020 list (STU3's binding
 * is extensible, R4's required) becomes NullFlavor OTH with the code in
 * the text, "<text or display> (SNOMED CT - <code>)", the form IKNL's
 * own examples use for another treatment; reported. cc is the R4
 * provision.code.
 */
static enum gw_err
treatment_code_r4(struct xf_ctx *c, struct fj_node *cc)
{
	struct fj_node *arr = fj_get(cc, "coding"), *first, *nf, *oth;
	const char *sys, *code, *label;
	char text[512];

	if (arr == NULL || arr->type != FJ_ARRAY || arr->u.kids.count == 0)
		return GW_OK;
	for (struct fj_node *cd = arr->u.kids.first; cd != NULL;
	     cd = cd->next) {
		sys = fj_get_str(cd, "system");
		code = fj_get_str(cd, "code");
		if (code == NULL)
			continue;
		if (is_nullflavor_system(sys) && strcmp(code, "OTH") == 0)
			return GW_OK;
		if (sys != NULL && strcmp(sys, SNOMED) == 0)
			for (size_t i = 0; i < sizeof(treatments_r4) /
						   sizeof(treatments_r4[0]);
			     i++)
				if (strcmp(code, treatments_r4[i]) == 0)
					return GW_OK;
	}
	first = arr->u.kids.first;
	sys = fj_get_str(first, "system");
	code = fj_get_str(first, "code");
	label = fj_get_str(cc, "text");
	if (label == NULL)
		label = fj_get_str(first, "display");
	if (code == NULL)
		snprintf(text, sizeof(text), "%s", label != NULL ? label : "");
	else
		snprintf(text, sizeof(text), "%s%s(%s - %s)",
			 label != NULL ? label : "", label != NULL ? " " : "",
			 sys != NULL && strcmp(sys, SNOMED) == 0
			     ? "SNOMED CT"
			     : (sys != NULL ? sys : "no system"),
			 code);
	if ((nf = fj_new_array(c->doc)) == NULL ||
	    (oth = xf_coding(c, NF_R4, "OTH", "other")) == NULL)
		return GW_NOMEM;
	fj_append(nf, oth);
	if (fj_set(c->doc, cc, "coding", nf) != GW_OK ||
	    fj_set(c->doc, cc, "text", str(c, text)) != GW_OK)
		return GW_NOMEM;
	return xf_loss(c, "extension",
		       "the Treatment %s is not in the zib2020 list R4 "
		       "requires: provision.code is NullFlavor OTH with "
		       "the code in its text (\"%s\")",
		       code != NULL ? code : "(no code)", text);
}

static enum gw_err
consent_to_r4(struct xf_ctx *c, struct fj_node *res, enum consent_kind k)
{
	struct fj_node *prov, *x, *scope;
	size_t i, parties = 0, n_except;
	bool moved;
	enum gw_err e;

	if ((e = map_identifier(c, res)) != GW_OK ||
	    (e = map_categories(c, res)) != GW_OK)
		return e;
	/* R4 requires a scope; the profile fixes it */
	if (k == CK_OTHER) {
		if ((scope = cc_absent(c)) == NULL)
			return GW_NOMEM;
	} else if ((scope = cc_of(
			c, xf_coding(c, CONSENTSCOPE,
				     k == CK_TREATMENT ? "treatment" : "adr",
				     NULL))) == NULL) {
		return GW_NOMEM;
	}
	if (fj_set(c->doc, res, "scope", scope) != GW_OK)
		return GW_NOMEM;
	if ((e = (k == CK_OTHER
		      ? xf_loss(c, NULL,
				"R4 requires Consent.scope: it is set "
				"absent (data-absent-reason unknown)")
		      : xf_note(c, NULL,
				"R4 requires Consent.scope: it is set to the "
				"value the profile fixes (%s)",
				k == CK_TREATMENT ? "treatment" : "adr"))) !=
	    GW_OK)
		return e;
	if ((e = policy_rule(c, res)) != GW_OK)
		return e;
	if ((x = fj_get(res, "sourceIdentifier")) != NULL) {
		struct fj_node *r = fj_new_object(c->doc);

		fj_remove(res, "sourceIdentifier");
		if (r == NULL || fj_set(c->doc, r, "identifier", x) != GW_OK ||
		    fj_set(c->doc, res, "sourceReference", r) != GW_OK)
			return GW_NOMEM;
		if ((e = xf_loss(c, "sourceIdentifier",
				 "R4 has no sourceIdentifier: it is the "
				 "identifier of sourceReference")) != GW_OK)
			return e;
	}
	/* additional sources first: the report's extension indexes are
	   then still those of the input */
	if ((e = additional_to_r4(c, res)) != GW_OK ||
	    (e = verification_to_r4(c, res)) != GW_OK)
		return e;
	if ((prov = new_provision(c, res)) == NULL)
		return GW_NOMEM;
	n_except = fj_get(res, "except") != NULL
		       ? fj_get(res, "except")->u.kids.count
		       : 0;
	if (k == CK_TREATMENT && (e = permitted_to_r4(c, res, prov)) != GW_OK)
		return e;
	/* the report names each except by its index in the input: the
	   first one is gone when it only said the decision again */
	if (fj_get(res, "except") == NULL)
		n_except = 0;
	else
		n_except -= fj_get(res, "except")->u.kids.count;
	/* the Treatment: provision.code (for an AdvanceDirective the code
	   is the second category, the extension a copy of it) */
	if ((x = xf_ext_take(res, URL_TREATMENT, false)) != NULL) {
		struct fj_node *cc = fj_get(x, "valueCodeableConcept");

		if (cc != NULL && k == CK_TREATMENT) {
			fj_remove(x, "valueCodeableConcept");
			if ((e = treatment_code_r4(c, cc)) != GW_OK ||
			    (e = push(c, prov, "code", cc)) != GW_OK)
				return e;
		} else if ((e = xf_loss(c, "extension",
					"the Treatment extension has no place "
					"in an R4 %s: it is left out",
					k == CK_ADVANCE
					    ? "AdvanceDirective (the code is "
					      "its category)"
					    : "Consent")) != GW_OK) {
			return e;
		}
	}
	if (k == CK_ADVANCE && (x = fj_get(res, "category")) != NULL &&
	    x->type == FJ_ARRAY) {
		for (struct fj_node *cat = x->u.kids.first, *nx; cat != NULL;
		     cat = nx) {
			nx = cat->next;
			if (cc_find(cat, CONSENTCAT, AD_R4) != NULL)
				continue;
			xf_arr_remove(x, cat);
			if ((e = push(c, prov, "code", cat)) != GW_OK)
				return e;
		}
	}
	/* zib2017 allows a TreatmentDirective without Treatment (0..*); R4
	   requires provision.code, bound (required) to zib2020's list,
	   whose one NullFlavor is OTH: "another treatment" would say what
	   the input does not, and data-absent-reason alone breaks the
	   binding. No conformant form exists. */
	if (k == CK_TREATMENT && fj_get(prov, "code") == NULL)
		return xf_refuse(c, "extension",
				 "no Treatment extension: the R4 "
				 "TreatmentDirective requires provision.code "
				 "(the treatment), bound to zib2020's "
				 "BehandelingCodelijst, and has no default "
				 "for it (its only NullFlavor, OTH, would "
				 "name another treatment): add the Treatment "
				 "the directive is about");
	/* consentingParty: the actor that agrees (a plain Consent's
	   performer) */
	if ((x = fj_get(res, "consentingParty")) != NULL &&
	    x->type == FJ_ARRAY) {
		fj_remove(res, "consentingParty");
		i = 0;
		for (struct fj_node *r = x->u.kids.first, *nx; r != NULL;
		     r = nx, i++) {
			char rel[48];
			struct fj_node *a;

			nx = r->next;
			snprintf(rel, sizeof(rel), "consentingParty[%zu]", i);
			if ((e = xf_role_ref(c, r, rel)) != GW_OK)
				return e;
			/* R4 actors of the profiles cannot be an
			   Organization; performer (who agrees) can */
			if (k == CK_OTHER ||
			    is_org_ref(fj_get_str(r, "reference"))) {
				if ((e = push(c, res, "performer", r)) != GW_OK)
					return e;
				continue;
			}
			if ((e = practitioner_to_performer(c, res, r, rel,
							   &moved)) != GW_OK)
				return e;
			if (moved)
				continue;
			if (k == CK_ADVANCE && parties++ > 0) {
				if ((e = xf_loss(
					 c, rel,
					 "the R4 AdvanceDirective holds "
					 "one representative: this one "
					 "is left out")) != GW_OK)
					return e;
				continue;
			}
			if ((a = fj_new_object(c->doc)) == NULL ||
			    fj_set(c->doc, a, "role",
				   cc_of(c, xf_coding(c, ROLECODE,
						      party_role(k), NULL))) !=
				GW_OK ||
			    fj_set(c->doc, a, "reference", r) != GW_OK ||
			    push(c, prov, "actor", a) != GW_OK)
				return GW_NOMEM;
		}
	}
	if ((x = fj_get(res, "actor")) != NULL && x->type == FJ_ARRAY) {
		fj_remove(res, "actor");
		i = 0;
		for (struct fj_node *a = x->u.kids.first, *nx; a != NULL;
		     a = nx, i++) {
			char rel[48];

			nx = a->next;
			snprintf(rel, sizeof(rel), "actor[%zu].reference", i);
			if ((e = xf_role_ref(c, fj_get(a, "reference"), rel)) !=
			    GW_OK)
				return e;
			if (k != CK_OTHER && fj_get(a, "reference") != NULL) {
				if ((e = practitioner_to_performer(
					 c, res, fj_get(a, "reference"), rel,
					 &moved)) != GW_OK)
					return e;
				if (moved)
					continue;
			}
			if (k == CK_ADVANCE &&
			    cc_find(fj_get(a, "role"), ROLECODE, "RESPRSN") !=
				NULL &&
			    parties++ > 0) {
				if ((e = xf_loss(
					 c, rel,
					 "the R4 AdvanceDirective holds "
					 "one representative: this one "
					 "is left out")) != GW_OK)
					return e;
				continue;
			}
			if ((e = push(c, prov, "actor", a)) != GW_OK)
				return e;
		}
	}
	if ((e = move(c, res, "period", prov, "period")) != GW_OK ||
	    (e = move(c, res, "dataPeriod", prov, "dataPeriod")) != GW_OK ||
	    (e = move(c, res, "securityLabel", prov, "securityLabel")) !=
		GW_OK ||
	    (e = move(c, res, "purpose", prov, "purpose")) != GW_OK ||
	    (e = move(c, res, "action", prov, "action")) != GW_OK ||
	    (e = move(c, res, "data", prov, "data")) != GW_OK)
		return e;
	if ((x = fj_get(res, "except")) != NULL && x->type == FJ_ARRAY) {
		const struct fj_node *nested = fj_get(prov, "provision");
		size_t j = nested != NULL && nested->type == FJ_ARRAY
			       ? nested->u.kids.count
			       : 0;

		fj_remove(res, "except");
		i = n_except;
		for (struct fj_node *ex = x->u.kids.first, *nx; ex != NULL;
		     ex = nx, i++, j++) {
			nx = ex->next;
			if ((e = except_to_provision(c, ex, i, j)) != GW_OK ||
			    (e = push(c, prov, "provision", ex)) != GW_OK)
				return e;
		}
	}
	if (prov->u.kids.count == 0)
		fj_remove(res, "provision");
	return GW_OK;
}

static enum gw_err
rule_consent(struct xf_ctx *c, struct fj_node *res)
{
	enum consent_kind k = consent_kind(res, c->from);

	if (c->to == RULES_STU3)
		return consent_to_stu3(c, res, k);
	return consent_to_r4(c, res, k);
}

const struct xf_type xf_types_consent[] = {
    {"Consent", rule_consent},
    {NULL, NULL},
};
