/*
 * transform driver: walks a resource or Bundle, applies the rules every
 * resource shares (canonical URLs, encounter <-> context, Reference.type)
 * and dispatches to the per-type tables; plus the helpers of
 * transform_impl.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"
#include "transform_impl.h"

/* Extension of zib2017 that keeps a PractitionerRole reference beside
 * the Practitioner reference STU3 elements can hold. */
#define XF_ROLE_REF_URL                                                        \
	"http://nictiz.nl/fhir/StructureDefinition/practitionerrole-reference"

/* Canonical URLs renamed between zib2017 and zib2020 that any resource
 * may carry (data types: Address, CodeableConcept, the zib Comment). */
const struct xf_url_map xf_urls_core[] = {
    {"http://nictiz.nl/fhir/StructureDefinition/ext-CodeSpecification",
     "http://nictiz.nl/fhir/StructureDefinition/code-specification"},
    {"http://nictiz.nl/fhir/StructureDefinition/ext-AddressInformation."
     "AddressType",
     "http://nictiz.nl/fhir/StructureDefinition/"
     "zib-AddressInformation-AddressType"},
    {"http://nictiz.nl/fhir/StructureDefinition/ext-Comment",
     "http://nictiz.nl/fhir/StructureDefinition/Comment"},
    {NULL, NULL},
};

/* Canonical bases of the IKNL PZP profiles per version; a profile URL
 * under a source base that no table maps is reported (the target's
 * validator would not know it). */
static const char *const pzp_bases_r4[] = {
    "https://api.iknl.nl/docs/pzp/r4/",
    "https://fhir.iknl.nl/fhir/",
    NULL,
};
static const char *const pzp_bases_stu3[] = {
    "https://api.iknl.nl/docs/pzp/stu3/",
    NULL,
};

/* Resource types that exist in one version only (FHIR's own R3/R4
 * maps): without a per-type rule they cannot be converted. */
static const char *const types_r4_only[] = {
    "ServiceRequest",
    "MedicationKnowledge",
    "ChargeItemDefinition",
    "Invoice",
    "ResearchDefinition",
    "ResearchElementDefinition",
    "RiskEvidenceSynthesis",
    "EffectEvidenceSynthesis",
    "Evidence",
    "EvidenceVariable",
    "InsurancePlan",
    "CatalogEntry",
    "VerificationResult",
    "DeviceDefinition",
    "ObservationDefinition",
    "SpecimenDefinition",
    "OrganizationAffiliation",
    NULL,
};
static const char *const types_stu3_only[] = {
    "ProcedureRequest",
    "ReferralRequest",
    "DataElement",
    "DeviceComponent",
    "EligibilityRequest",
    "EligibilityResponse",
    "EnrollmentRequest",
    "ExpansionProfile",
    "ImagingManifest",
    "ProcessRequest",
    "ProcessResponse",
    "ServiceDefinition",
    NULL,
};

/* Types whose R4 "encounter" is STU3 "context" (a Reference to the
 * Encounter in both; STU3 may also point at an EpisodeOfCare). */
static const char *const types_encounter_context[] = {
    "Procedure",
    "Observation",
    "Communication",
    "CommunicationRequest",
    "QuestionnaireResponse",
    "Condition",
    "DiagnosticReport",
    "RiskAssessment",
    "ClinicalImpression",
    "MedicationRequest",
    "MedicationStatement",
    "MedicationAdministration",
    "MedicationDispense",
    "DeviceRequest",
    "NutritionOrder",
    "Media",
    "Flag",
    NULL,
};

static bool
in_list(const char *const *list, const char *s)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

static bool
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* snprintf for FHIRPaths: a path too long for the buffer is cut (the
 * report then names a prefix of the element, never overflows). */
static void path_fmt(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
path_fmt(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

/* ---- report ---- */

static enum gw_err
report_v(struct xf_ctx *c, const char *sev, const char *code, const char *rel,
	 const char *fmt, va_list ap)
{
	char path[XF_PATH_MAX + 128];
	char msg[512];

	if (c->report == NULL)
		return GW_OK;
	if (rel != NULL && rel[0] != '\0')
		path_fmt(path, sizeof(path), "%s.%s", c->path, rel);
	else
		path_fmt(path, sizeof(path), "%s", c->path);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	return fhir_outcome_add(c->report, sev, code, path, 0, 0, "%s", msg);
}

enum gw_err
xf_loss(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_WARNING, "informational", rel, fmt, ap);
	va_end(ap);
	return e;
}

enum gw_err
xf_note(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_INFORMATION, "informational", rel, fmt, ap);
	va_end(ap);
	return e;
}

enum gw_err
xf_refuse(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_ERROR, "not-supported", rel, fmt, ap);
	va_end(ap);
	return e == GW_OK ? GW_REJECT : e;
}

/* ---- URLs ---- */

static const struct xf_url_map *const url_tables[] = {
    xf_urls_core, xf_urls_consent, xf_urls_zib, xf_urls_care, NULL,
};

const char *
xf_url(const struct xf_ctx *c, const char *u)
{
	if (u == NULL || c->from == c->to)
		return u;
	for (size_t t = 0; url_tables[t] != NULL; t++) {
		for (const struct xf_url_map *m = url_tables[t]; m->r4 != NULL;
		     m++) {
			if (c->to == RULES_STU3 && strcmp(m->r4, u) == 0)
				return m->stu3;
			if (c->to == RULES_R4 && strcmp(m->stu3, u) == 0)
				return m->r4;
		}
	}
	return u;
}

/* True when u is a PZP canonical of version v. */
static bool
is_pzp_url(const char *u, enum rules_fhir v)
{
	const char *const *b = v == RULES_R4 ? pzp_bases_r4 : pzp_bases_stu3;

	for (; *b != NULL; b++)
		if (has_prefix(u, *b))
			return true;
	return false;
}

/* Extension namespaces only one version uses (zib2017 names its
 * extensions zib-X-Y, zib2020 ext-X.Y), beside the PZP canonicals. */
static const char *const ext_only_r4[] = {
    "http://nictiz.nl/fhir/StructureDefinition/ext-",
    NULL,
};
static const char *const ext_only_stu3[] = {
    "http://nictiz.nl/fhir/StructureDefinition/zib-",
    "http://fhir.nl/fhir/StructureDefinition/nl-core-",
    XF_ROLE_REF_URL,
    "http://nictiz.nl/fhir/StructureDefinition/BodySite-Qualifier",
    NULL,
};

/* True when extension url u can only be of version v: left in the other
 * version it would be an unknown extension. */
static bool
is_version_only_ext(const char *u, enum rules_fhir v)
{
	const char *const *b = v == RULES_R4 ? ext_only_r4 : ext_only_stu3;

	if (is_pzp_url(u, v))
		return true;
	for (; *b != NULL; b++)
		if (has_prefix(u, *b))
			return true;
	return false;
}

/* Replace the string node n by its url mapped to c->to (the node keeps
 * its place); a URL no table names stays (drop_profiles and
 * walk_drop_ext deal with those after the per-type rule). */
static void
map_url_node(struct xf_ctx *c, struct fj_node *n)
{
	const char *t = xf_url(c, n->u.str.s);

	/* t is a static string of a table: the node may point at it. */
	n->u.str.s = t;
	n->u.str.len = strlen(t);
}

/* ---- generic helpers ---- */

bool
xf_rename(struct fj_node *obj, const char *from, const char *to)
{
	struct fj_node *m = fj_get(obj, from);

	if (m == NULL)
		return false;
	/* A member already named `to` would make a duplicate key. */
	if (strcmp(from, to) != 0)
		fj_remove(obj, to);
	/* to is a literal of the rules: it outlives the document. */
	m->key = to;
	m->keylen = strlen(to);
	return true;
}

/* Unlink element n from array arr. */
static void
arr_unlink(struct fj_node *arr, struct fj_node *n)
{
	struct fj_node *p, *prev = NULL;

	for (p = arr->u.kids.first; p != NULL; prev = p, p = p->next) {
		if (p != n)
			continue;
		if (prev != NULL)
			prev->next = p->next;
		else
			arr->u.kids.first = p->next;
		if (arr->u.kids.last == p)
			arr->u.kids.last = prev;
		arr->u.kids.count--;
		p->next = NULL;
		return;
	}
}

struct fj_node *
xf_ext_find(const struct fj_node *obj, const char *url, bool modifier)
{
	const struct fj_node *arr =
	    fj_get(obj, modifier ? "modifierExtension" : "extension");

	if (arr == NULL || arr->type != FJ_ARRAY)
		return NULL;
	for (struct fj_node *e = arr->u.kids.first; e != NULL; e = e->next)
		if (e->type == FJ_OBJECT && fj_str_eq(fj_get(e, "url"), url))
			return e;
	return NULL;
}

struct fj_node *
xf_ext_take(struct fj_node *obj, const char *url, bool modifier)
{
	const char *key = modifier ? "modifierExtension" : "extension";
	struct fj_node *arr = fj_get(obj, key);
	struct fj_node *e = xf_ext_find(obj, url, modifier);

	if (e == NULL)
		return NULL;
	arr_unlink(arr, e);
	if (arr->u.kids.count == 0)
		fj_remove(obj, key);
	return e;
}

enum gw_err
xf_ext_add(struct xf_ctx *c, struct fj_node *obj, const char *url,
	   bool modifier, const char *valuekey, struct fj_node *val)
{
	const char *key = modifier ? "modifierExtension" : "extension";
	struct fj_node *arr = fj_get(obj, key);
	struct fj_node *e, *u;

	if (val == NULL || obj == NULL || obj->type != FJ_OBJECT)
		return GW_NOMEM;
	if (arr != NULL && arr->type != FJ_ARRAY)
		return GW_INVALID;
	if (arr == NULL) {
		if ((arr = fj_new_array(c->doc)) == NULL ||
		    fj_set(c->doc, obj, key, arr) != GW_OK)
			return GW_NOMEM;
	}
	if ((e = fj_new_object(c->doc)) == NULL ||
	    (u = fj_new_string(c->doc, url)) == NULL ||
	    fj_set(c->doc, e, "url", u) != GW_OK ||
	    fj_set(c->doc, e, valuekey, val) != GW_OK)
		return GW_NOMEM;
	fj_append(arr, e);
	return GW_OK;
}

struct fj_node *
xf_coding(struct xf_ctx *c, const char *system, const char *code,
	  const char *display)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *s, *k, *d;

	if (o == NULL || (s = fj_new_string(c->doc, system)) == NULL ||
	    fj_set(c->doc, o, "system", s) != GW_OK ||
	    (k = fj_new_string(c->doc, code)) == NULL ||
	    fj_set(c->doc, o, "code", k) != GW_OK)
		return NULL;
	if (display != NULL && ((d = fj_new_string(c->doc, display)) == NULL ||
				fj_set(c->doc, o, "display", d) != GW_OK))
		return NULL;
	return o;
}

struct fj_node *
xf_dar(struct xf_ctx *c, const char *code)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *u, *k;

	if (o == NULL || (u = fj_new_string(c->doc, XF_DAR_URL)) == NULL ||
	    fj_set(c->doc, o, "url", u) != GW_OK ||
	    (k = fj_new_string(c->doc, code)) == NULL ||
	    fj_set(c->doc, o, "valueCode", k) != GW_OK)
		return NULL;
	return o;
}

struct fj_node *
xf_resolve(const struct xf_ctx *c, const char *reference)
{
	const struct fj_node *entries;

	if (c->bundle == NULL || reference == NULL || reference[0] == '\0')
		return NULL;
	entries = fj_get(c->bundle, "entry");
	if (entries == NULL || entries->type != FJ_ARRAY)
		return NULL;
	for (const struct fj_node *e = entries->u.kids.first; e != NULL;
	     e = e->next) {
		struct fj_node *res = fj_get(e, "resource");
		const char *full = fj_get_str(e, "fullUrl");
		const char *type = fj_get_str(res, "resourceType");
		const char *id = fj_get_str(res, "id");
		size_t tl;

		if (res == NULL || res->type != FJ_OBJECT)
			continue;
		if (full != NULL && strcmp(full, reference) == 0)
			return res;
		if (type == NULL || id == NULL)
			continue;
		/* "Type/id", also when an absolute fullUrl ends with it */
		tl = strlen(type);
		if (strncmp(reference, type, tl) == 0 && reference[tl] == '/' &&
		    strcmp(reference + tl + 1, id) == 0)
			return res;
	}
	return NULL;
}

/* A copy of Reference ref without extension (for the role extension). */
static struct fj_node *
ref_copy_plain(struct xf_ctx *c, const struct fj_node *ref)
{
	struct fj_node *o = fj_new_object(c->doc);

	if (o == NULL)
		return NULL;
	for (const struct fj_node *m = ref->u.kids.first; m != NULL;
	     m = m->next) {
		struct fj_node *v;
		char key[64];

		if (m->keylen >= sizeof(key) ||
		    (m->keylen == 9 && memcmp(m->key, "extension", 9) == 0))
			continue;
		memcpy(key, m->key, m->keylen);
		key[m->keylen] = '\0';
		if ((v = fj_copy(c->doc, m)) == NULL ||
		    fj_set(c->doc, o, key, v) != GW_OK)
			return NULL;
	}
	return o;
}

/* Move every member of src (an unlinked object) into ref, replacing
 * ref's members except its extension array, which stays. */
static enum gw_err
ref_replace(struct xf_ctx *c, struct fj_node *ref, struct fj_node *src)
{
	struct fj_node *ext = fj_get(ref, "extension");

	if (ext != NULL)
		fj_remove(ref, "extension");
	ref->u.kids.first = NULL;
	ref->u.kids.last = NULL;
	ref->u.kids.count = 0;
	for (struct fj_node *m = src->u.kids.first, *next; m != NULL;
	     m = next) {
		char key[64];

		next = m->next;
		if (m->keylen >= sizeof(key))
			continue;
		memcpy(key, m->key, m->keylen);
		key[m->keylen] = '\0';
		if (strcmp(key, "extension") == 0)
			continue;
		if (fj_set(c->doc, ref, key, m) != GW_OK)
			return GW_NOMEM;
	}
	if (ext != NULL && fj_set(c->doc, ref, "extension", ext) != GW_OK)
		return GW_NOMEM;
	return GW_OK;
}

/* R4 -> STU3 half of xf_role_ref. */
static enum gw_err
role_ref_to_stu3(struct xf_ctx *c, struct fj_node *ref, const char *rel)
{
	const char *r = fj_get_str(ref, "reference");
	struct fj_node *role = xf_resolve(c, r);
	const struct fj_node *prac = NULL;
	struct fj_node *orig, *nref;

	if (role != NULL) {
		if (!fj_str_eq(fj_get(role, "resourceType"),
			       "PractitionerRole"))
			return GW_OK;
		prac = fj_get(role, "practitioner");
	} else if (r == NULL || !has_prefix(r, "PractitionerRole/")) {
		return GW_OK;
	}
	if ((orig = ref_copy_plain(c, ref)) == NULL)
		return GW_NOMEM;
	if (prac != NULL && prac->type == FJ_OBJECT) {
		if ((nref = ref_copy_plain(c, prac)) == NULL)
			return GW_NOMEM;
		fj_remove(nref, "type");
	} else {
		/* The role's Practitioner is not known here: the reference
		   keeps only its display, the role goes in the extension. */
		struct fj_node *d;

		if ((nref = fj_new_object(c->doc)) == NULL)
			return GW_NOMEM;
		if (fj_get_str(ref, "display") != NULL &&
		    ((d = fj_new_string(c->doc, fj_get_str(ref, "display"))) ==
			 NULL ||
		     fj_set(c->doc, nref, "display", d) != GW_OK))
			return GW_NOMEM;
		if (xf_loss(c, rel,
			    "the Practitioner of %s is not in the Bundle; "
			    "the role reference is kept in the "
			    "practitionerrole-reference extension",
			    r) != GW_OK)
			return GW_NOMEM;
	}
	if (ref_replace(c, ref, nref) != GW_OK)
		return GW_NOMEM;
	return xf_ext_add(c, ref, XF_ROLE_REF_URL, false, "valueReference",
			  orig);
}

enum gw_err
xf_role_ref(struct xf_ctx *c, struct fj_node *ref, const char *rel)
{
	struct fj_node *ext, *val;

	if (ref == NULL || ref->type != FJ_OBJECT)
		return GW_OK;
	if (c->to == RULES_STU3)
		return role_ref_to_stu3(c, ref, rel);
	/* STU3 -> R4: the role reference in the extension wins. */
	if ((ext = xf_ext_take(ref, XF_ROLE_REF_URL, false)) == NULL)
		return GW_OK;
	val = fj_get(ext, "valueReference");
	if (val == NULL || val->type != FJ_OBJECT)
		return xf_loss(c, rel,
			       "practitionerrole-reference without a "
			       "valueReference is dropped");
	fj_remove(ext, "valueReference");
	{
		/* The Practitioner reference goes; it comes back from the
		   role when the role is in the Bundle and names it. */
		const char *pr = fj_get_str(ref, "reference");
		const char *pd = fj_get_str(ref, "display");
		const struct fj_node *role =
		    xf_resolve(c, fj_get_str(val, "reference"));
		const struct fj_node *rp = fj_get(role, "practitioner");
		const char *rpr = fj_get_str(rp, "reference");
		const char *rpd = fj_get_str(rp, "display");
		bool kept =
		    (pr == NULL || (rpr != NULL && strcmp(pr, rpr) == 0)) &&
		    (pd == NULL || (rpd != NULL && strcmp(pd, rpd) == 0));

		if (!kept &&
		    xf_loss(c, rel,
			    "R4 refers to the PractitionerRole only: the "
			    "Practitioner reference%s left out (the role "
			    "names its practitioner)",
			    pd != NULL ? " and its display are" : " is") !=
			GW_OK)
			return GW_NOMEM;
	}
	return ref_replace(c, ref, val);
}

bool
xf_version_parse(const char *s, enum rules_fhir *out)
{
	static const struct {
		const char *name;
		enum rules_fhir v;
	} names[] = {
	    {"stu3", RULES_STU3}, {"STU3", RULES_STU3}, {"r3", RULES_STU3},
	    {"R3", RULES_STU3},	  {"r4", RULES_R4},	{"R4", RULES_R4},
	};
	const char *p;

	if (s == NULL)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].v;
			return true;
		}
	}
	/* "3.0", "3.0.2", "4.0", "4.0.1": major.minor[.patch] */
	if ((s[0] != '3' && s[0] != '4') || strncmp(s + 1, ".0", 2) != 0)
		return false;
	p = s + 3;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0')
		return false;
	*out = s[0] == '3' ? RULES_STU3 : RULES_R4;
	return true;
}

/* ---- shared rules ---- */

/* Map the extension URLs of every extension below n (not entering other
 * resources: contained ones are converted on their own). rel is the
 * FHIRPath of n below the resource ("" for the resource). */
static enum gw_err
walk_urls(struct xf_ctx *c, struct fj_node *n, const char *rel, int depth)
{
	char sub[XF_PATH_MAX];
	enum gw_err e;

	if (depth > FJ_MAX_DEPTH + 2)
		return GW_OK;
	if (n->type == FJ_ARRAY) {
		size_t i = 0;

		for (struct fj_node *k = n->u.kids.first; k != NULL;
		     k = k->next, i++) {
			path_fmt(sub, sizeof(sub), "%s[%zu]", rel, i);
			if ((e = walk_urls(c, k, sub, depth + 1)) != GW_OK)
				return e;
		}
		return GW_OK;
	}
	if (n->type != FJ_OBJECT)
		return GW_OK;
	for (struct fj_node *m = n->u.kids.first; m != NULL; m = m->next) {
		bool ext =
		    (m->keylen == 9 && memcmp(m->key, "extension", 9) == 0) ||
		    (m->keylen == 17 &&
		     memcmp(m->key, "modifierExtension", 17) == 0);

		if ((m->keylen == 9 && memcmp(m->key, "contained", 9) == 0) ||
		    (m->type == FJ_OBJECT && fj_get(m, "resourceType") != NULL))
			continue;
		path_fmt(sub, sizeof(sub), "%s%s%.*s", rel,
			 rel[0] != '\0' ? "." : "", (int)m->keylen, m->key);
		if (ext && m->type == FJ_ARRAY) {
			size_t i = 0;

			for (struct fj_node *x = m->u.kids.first; x != NULL;
			     x = x->next, i++) {
				struct fj_node *u = fj_get(x, "url");
				char xp[XF_PATH_MAX];

				path_fmt(xp, sizeof(xp), "%s[%zu]", sub, i);
				if (u != NULL && u->type == FJ_STRING)
					map_url_node(c, u);
				if ((e = walk_urls(c, x, xp, depth + 1)) !=
				    GW_OK)
					return e;
			}
			continue;
		}
		if ((e = walk_urls(c, m, sub, depth + 1)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* STU3 -> R4, after the per-type rule: every Reference still carrying a
 * practitionerrole-reference extension becomes the role reference (R4
 * elements take PractitionerRole wherever zib2017 needed the extension). */
static enum gw_err
walk_role_refs(struct xf_ctx *c, struct fj_node *n, const char *rel, int depth)
{
	char sub[XF_PATH_MAX];
	enum gw_err e;
	size_t i = 0;

	if (depth > FJ_MAX_DEPTH + 2 ||
	    (n->type != FJ_OBJECT && n->type != FJ_ARRAY))
		return GW_OK;
	if (n->type == FJ_OBJECT && depth > 0 &&
	    xf_ext_find(n, XF_ROLE_REF_URL, false) != NULL &&
	    (e = xf_role_ref(c, n, rel)) != GW_OK)
		return e;
	for (struct fj_node *m = n->u.kids.first; m != NULL; m = m->next, i++) {
		if (n->type == FJ_ARRAY) {
			path_fmt(sub, sizeof(sub), "%s[%zu]", rel, i);
		} else {
			if ((m->keylen == 9 &&
			     memcmp(m->key, "contained", 9) == 0) ||
			    (m->type == FJ_OBJECT &&
			     fj_get(m, "resourceType") != NULL))
				continue;
			path_fmt(sub, sizeof(sub), "%s%s%.*s", rel,
				 rel[0] != '\0' ? "." : "", (int)m->keylen,
				 m->key);
		}
		if ((e = walk_role_refs(c, m, sub, depth + 1)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* After the per-type rule: an extension still named by a PZP canonical
 * or another namespace only the source version uses has no counterpart
 * (no table maps it, no rule took it); the target's validator would
 * refuse it, so it is left out and reported. */
static enum gw_err
walk_drop_ext(struct xf_ctx *c, struct fj_node *n, const char *rel, int depth)
{
	char sub[XF_PATH_MAX];
	enum gw_err e;
	size_t i = 0;

	if (depth > FJ_MAX_DEPTH + 2 ||
	    (n->type != FJ_OBJECT && n->type != FJ_ARRAY))
		return GW_OK;
	for (struct fj_node *m = n->u.kids.first, *next; m != NULL;
	     m = next, i++) {
		next = m->next;
		if (n->type == FJ_ARRAY) {
			path_fmt(sub, sizeof(sub), "%s[%zu]", rel, i);
		} else {
			if ((m->keylen == 9 &&
			     memcmp(m->key, "contained", 9) == 0) ||
			    (m->type == FJ_OBJECT &&
			     fj_get(m, "resourceType") != NULL))
				continue;
			path_fmt(sub, sizeof(sub), "%s%s%.*s", rel,
				 rel[0] != '\0' ? "." : "", (int)m->keylen,
				 m->key);
		}
		if (n->type == FJ_OBJECT && m->type == FJ_ARRAY &&
		    ((m->keylen == 9 && memcmp(m->key, "extension", 9) == 0) ||
		     (m->keylen == 17 &&
		      memcmp(m->key, "modifierExtension", 17) == 0))) {
			size_t j = 0;

			for (struct fj_node *x = m->u.kids.first, *nx;
			     x != NULL; x = nx, j++) {
				const char *u = fj_get_str(x, "url");
				char xp[XF_PATH_MAX];

				nx = x->next;
				path_fmt(xp, sizeof(xp), "%s[%zu]", sub, j);
				if (u == NULL ||
				    !is_version_only_ext(u, c->from) ||
				    xf_url(c, u) != u) {
					if ((e = walk_drop_ext(
						 c, x, xp, depth + 1)) != GW_OK)
						return e;
					continue;
				}
				if ((e = xf_loss(c, xp,
						 "the extension %s has no %s "
						 "counterpart: it is left out",
						 u,
						 c->to == RULES_R4 ? "R4"
								   : "STU3")) !=
				    GW_OK)
					return e;
				arr_unlink(m, x);
			}
			if (m->u.kids.count == 0) {
				char key[20];

				memcpy(key, m->key, m->keylen);
				key[m->keylen] = '\0';
				fj_remove(n, key);
			}
			continue;
		}
		if ((e = walk_drop_ext(c, m, sub, depth + 1)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* True when obj looks like a Reference: a string "type" beside a
 * reference, identifier or display (no other FHIR type has those). */
static bool
is_reference(const struct fj_node *obj)
{
	const struct fj_node *t = fj_get(obj, "type");

	if (t == NULL || t->type != FJ_STRING)
		return false;
	return fj_get_str(obj, "reference") != NULL ||
	       (fj_get(obj, "identifier") != NULL &&
		fj_get(obj, "identifier")->type == FJ_OBJECT) ||
	       fj_get_str(obj, "display") != NULL;
}

/* R4 -> STU3: remove Reference.type everywhere below n (not entering
 * other resources); each removal is reported. */
static enum gw_err
walk_ref_type(struct xf_ctx *c, struct fj_node *n, const char *rel, int depth)
{
	char sub[XF_PATH_MAX];
	enum gw_err e;

	if (depth > FJ_MAX_DEPTH + 2)
		return GW_OK;
	if (n->type == FJ_OBJECT && depth > 0 && is_reference(n)) {
		const char *t = fj_get_str(n, "type");

		if ((e = xf_loss(c, rel,
				 "Reference.type (%s) does not exist in STU3 "
				 "and is left out",
				 t)) != GW_OK)
			return e;
		fj_remove(n, "type");
	}
	if (n->type != FJ_OBJECT && n->type != FJ_ARRAY)
		return GW_OK;
	{
		size_t i = 0;

		for (struct fj_node *m = n->u.kids.first; m != NULL;
		     m = m->next, i++) {
			if (n->type == FJ_OBJECT) {
				if ((m->keylen == 9 &&
				     memcmp(m->key, "contained", 9) == 0) ||
				    (m->type == FJ_OBJECT &&
				     fj_get(m, "resourceType") != NULL))
					continue;
				path_fmt(sub, sizeof(sub), "%s%s%.*s", rel,
					 rel[0] != '\0' ? "." : "",
					 (int)m->keylen, m->key);
			} else {
				path_fmt(sub, sizeof(sub), "%s[%zu]", rel, i);
			}
			if ((e = walk_ref_type(c, m, sub, depth + 1)) != GW_OK)
				return e;
		}
	}
	return GW_OK;
}

static enum gw_err
rule_encounter_context(struct xf_ctx *c, struct fj_node *res, const char *type)
{
	struct fj_node *ctx;
	const char *r;

	if (!in_list(types_encounter_context, type))
		return GW_OK;
	if (c->to == RULES_STU3) {
		xf_rename(res, "encounter", "context");
		return GW_OK;
	}
	if ((ctx = fj_get(res, "context")) == NULL)
		return GW_OK;
	r = fj_get_str(ctx, "reference");
	if (r != NULL && has_prefix(r, "EpisodeOfCare/")) {
		/* R4 has no element for an EpisodeOfCare here. */
		fj_remove(res, "context");
		return xf_loss(c, "context",
			       "R4 %s.encounter cannot point at an "
			       "EpisodeOfCare; the reference %s is left out",
			       type, r);
	}
	xf_rename(res, "context", "encounter");
	return GW_OK;
}

static enum gw_err
shared_rules(struct xf_ctx *c, struct fj_node *res, const char *type)
{
	struct fj_node *meta = fj_get(res, "meta");
	struct fj_node *prof = fj_get(meta, "profile");
	enum gw_err e;

	if (prof != NULL && prof->type == FJ_ARRAY)
		for (struct fj_node *p = prof->u.kids.first; p != NULL;
		     p = p->next)
			if (p->type == FJ_STRING)
				map_url_node(c, p);
	/* Bundle.timestamp is new in R4 */
	if (c->to == RULES_STU3 && strcmp(type, "Bundle") == 0 &&
	    fj_get(res, "timestamp") != NULL) {
		fj_remove(res, "timestamp");
		if ((e = xf_loss(c, "timestamp",
				 "STU3 Bundle has no timestamp: it is left "
				 "out")) != GW_OK)
			return e;
	}
	if ((e = walk_urls(c, res, "", 0)) != GW_OK)
		return e;
	if ((e = rule_encounter_context(c, res, type)) != GW_OK)
		return e;
	if (c->to == RULES_STU3 && (e = walk_ref_type(c, res, "", 0)) != GW_OK)
		return e;
	return GW_OK;
}

/* After the per-type rule: a meta.profile still naming a PZP profile of
 * the source version has no counterpart; the target's validator would
 * only warn and check nothing, so it is left out (reported) and the
 * validator detects the profile instead. */
static enum gw_err
drop_profiles(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *meta = fj_get(res, "meta");
	struct fj_node *prof = fj_get(meta, "profile");
	size_t i = 0;
	enum gw_err e;

	if (prof == NULL || prof->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *p = prof->u.kids.first, *nx; p != NULL;
	     p = nx, i++) {
		char rel[48];

		nx = p->next;
		if (p->type != FJ_STRING || !is_pzp_url(p->u.str.s, c->from) ||
		    xf_url(c, p->u.str.s) != p->u.str.s)
			continue;
		path_fmt(rel, sizeof(rel), "meta.profile[%zu]", i);
		if ((e = xf_loss(c, rel,
				 "no %s counterpart of profile %s: it is left "
				 "out",
				 c->to == RULES_R4 ? "R4" : "STU3",
				 p->u.str.s)) != GW_OK)
			return e;
		arr_unlink(prof, p);
	}
	if (prof->u.kids.count == 0) {
		fj_remove(meta, "profile");
		if (meta->u.kids.count == 0)
			fj_remove(res, "meta");
	}
	return GW_OK;
}

/* ---- driver ---- */

static const struct xf_type *const type_tables[] = {
    xf_types_consent,
    xf_types_zib,
    xf_types_care,
    NULL,
};

static xf_rule_fn
rule_for(const char *type)
{
	for (size_t t = 0; type_tables[t] != NULL; t++)
		for (const struct xf_type *x = type_tables[t]; x->type != NULL;
		     x++)
			if (strcmp(x->type, type) == 0)
				return x->rule;
	return NULL;
}

static enum gw_err convert_resource(struct xf_ctx *c, struct fj_node *res,
				    int depth);

/* Convert each entry[i].resource of Bundle b. */
static enum gw_err
convert_entries(struct xf_ctx *c, struct fj_node *b, int depth)
{
	struct fj_node *entries = fj_get(b, "entry");
	char saved[XF_PATH_MAX];
	size_t i = 0;
	enum gw_err e = GW_OK;

	if (entries == NULL || entries->type != FJ_ARRAY)
		return GW_OK;
	memcpy(saved, c->path, sizeof(saved));
	for (struct fj_node *en = entries->u.kids.first; en != NULL;
	     en = en->next, i++) {
		struct fj_node *res = fj_get(en, "resource");

		if (res == NULL)
			continue;
		path_fmt(c->path, sizeof(c->path), "%s.entry[%zu].resource",
			 saved, i);
		if ((e = convert_resource(c, res, depth + 1)) != GW_OK)
			break;
	}
	memcpy(c->path, saved, sizeof(saved));
	return e;
}

static enum gw_err
convert_contained(struct xf_ctx *c, struct fj_node *res, int depth)
{
	struct fj_node *arr = fj_get(res, "contained");
	char saved[XF_PATH_MAX];
	size_t i = 0;
	enum gw_err e = GW_OK;

	if (arr == NULL || arr->type != FJ_ARRAY)
		return GW_OK;
	memcpy(saved, c->path, sizeof(saved));
	for (struct fj_node *r = arr->u.kids.first; r != NULL;
	     r = r->next, i++) {
		path_fmt(c->path, sizeof(c->path), "%s.contained[%zu]", saved,
			 i);
		if ((e = convert_resource(c, r, depth + 1)) != GW_OK)
			break;
	}
	memcpy(c->path, saved, sizeof(saved));
	return e;
}

static enum gw_err
convert_resource(struct xf_ctx *c, struct fj_node *res, int depth)
{
	const char *type = fj_get_str(res, "resourceType");
	xf_rule_fn rule;
	enum gw_err e;

	if (res->type != FJ_OBJECT || type == NULL)
		return xf_refuse(c, NULL,
				 "not a FHIR resource: no "
				 "resourceType");
	if (depth > 8)
		return xf_refuse(c, NULL, "resources nested too deep");
	rule = rule_for(type);
	if (rule == NULL &&
	    in_list(c->from == RULES_R4 ? types_r4_only : types_stu3_only,
		    type))
		return xf_refuse(c, NULL,
				 "%s cannot be converted to %s: no mapping of "
				 "this resource type",
				 type, c->to == RULES_R4 ? "R4" : "STU3");
	if ((e = shared_rules(c, res, type)) != GW_OK)
		return e;
	if (rule != NULL && (e = rule(c, res)) != GW_OK)
		return e;
	if (c->to == RULES_R4 && (e = walk_role_refs(c, res, "", 0)) != GW_OK)
		return e;
	if ((e = walk_drop_ext(c, res, "", 0)) != GW_OK ||
	    (e = drop_profiles(c, res)) != GW_OK)
		return e;
	if ((e = convert_contained(c, res, depth)) != GW_OK)
		return e;
	if (strcmp(type, "Bundle") == 0)
		return convert_entries(c, res, depth);
	return GW_OK;
}

enum gw_err
xf_convert(struct fj_doc *doc, enum rules_fhir from, enum rules_fhir to,
	   json_t *report)
{
	struct xf_ctx c;
	const char *type;

	if (from == to)
		return GW_OK;
	memset(&c, 0, sizeof(c));
	c.doc = doc;
	c.from = from;
	c.to = to;
	c.report = report;
	type = doc != NULL ? fj_get_str(doc->root, "resourceType") : NULL;
	if (type == NULL || doc->root->type != FJ_OBJECT) {
		if (report != NULL &&
		    fhir_outcome_add(report, FHIR_ERROR, "structure", NULL, 0,
				     0,
				     "not a FHIR resource: the document has "
				     "no resourceType") != GW_OK)
			return GW_NOMEM;
		return GW_REJECT;
	}
	path_fmt(c.path, sizeof(c.path), "%s", type);
	if (strcmp(type, "Bundle") == 0)
		c.bundle = doc->root;
	return convert_resource(&c, doc->root, 0);
}
