/*
 * transform driver: walks a resource or Bundle, applies the rules every
 * resource shares (canonical URLs, encounter <-> context, Reference.type,
 * leftover role references, extensions and profiles of one version only)
 * and dispatches to the per-type tables; xf_url. The other helpers of
 * transform_impl.h are in transform_help.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "transform_impl.h"

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

/* rel + "." + key (no dot when rel is empty) into dst, cut to fit.
 * The walks build a path per node, so this avoids printf. */
static void
path_key(const struct xf_ctx *c, char *dst, size_t n, const char *rel,
	 const char *key, size_t klen)
{
	size_t rl, at;

	/* Paths only name report entries: none to write, none to build. */
	if (c->report == NULL) {
		dst[0] = '\0';
		return;
	}
	rl = strnlen(rel, n - 1);
	memmove(dst, rel, rl);
	at = rl;
	if (rl > 0 && at < n - 1)
		dst[at++] = '.';
	if (klen > n - 1 - at)
		klen = n - 1 - at;
	memcpy(dst + at, key, klen);
	dst[at + klen] = '\0';
}

/* rel + "[i]" into dst, cut to fit. */
static void
path_idx(const struct xf_ctx *c, char *dst, size_t n, const char *rel, size_t i)
{
	char num[24];
	size_t k = sizeof(num), rl, nl;

	if (c->report == NULL) {
		dst[0] = '\0';
		return;
	}
	rl = strnlen(rel, n - 1);
	num[--k] = ']';
	do {
		num[--k] = (char)('0' + i % 10);
		i /= 10;
	} while (i > 0);
	num[--k] = '[';
	nl = sizeof(num) - k;
	memmove(dst, rel, rl);
	if (nl > n - 1 - rl)
		nl = n - 1 - rl;
	memcpy(dst + rl, num + k, nl);
	dst[rl + nl] = '\0';
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
			path_idx(c, sub, sizeof(sub), rel, i);
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
		path_key(c, sub, sizeof(sub), rel, m->key, m->keylen);
		if (ext && m->type == FJ_ARRAY) {
			size_t i = 0;

			for (struct fj_node *x = m->u.kids.first; x != NULL;
			     x = x->next, i++) {
				struct fj_node *u = fj_get(x, "url");
				char xp[XF_PATH_MAX];

				path_idx(c, xp, sizeof(xp), sub, i);
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
			path_idx(c, sub, sizeof(sub), rel, i);
		} else {
			if ((m->keylen == 9 &&
			     memcmp(m->key, "contained", 9) == 0) ||
			    (m->type == FJ_OBJECT &&
			     fj_get(m, "resourceType") != NULL))
				continue;
			path_key(c, sub, sizeof(sub), rel, m->key, m->keylen);
		}
		if ((e = walk_role_refs(c, m, sub, depth + 1)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* The HL7 v2 tables and v3 code systems: STU3 names them under
 * hl7.org/fhir, R4 under terminology.hl7.org (FHIR's R3/R4 notes). */
#define V2_STU3 "http://hl7.org/fhir/v2/"
#define V3_STU3 "http://hl7.org/fhir/v3/"
#define V2_R4	"http://terminology.hl7.org/CodeSystem/v2-"
#define V3_R4	"http://terminology.hl7.org/CodeSystem/v3-"

/* Replace the string node n, a code system URL, by its c->to name when
 * it is a v2 table or v3 code system of the other version. */
static enum gw_err
map_system(struct xf_ctx *c, struct fj_node *n)
{
	static const struct {
		const char *stu3, *r4;
	} bases[] = {{V2_STU3, V2_R4}, {V3_STU3, V3_R4}};
	char u[512];
	struct fj_node *t;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		const char *from =
		    c->to == RULES_R4 ? bases[i].stu3 : bases[i].r4;
		const char *to =
		    c->to == RULES_R4 ? bases[i].r4 : bases[i].stu3;
		size_t fl = strlen(from);
		int w;

		if (n->u.str.len <= fl || memcmp(n->u.str.s, from, fl) != 0 ||
		    memchr(n->u.str.s, '\0', n->u.str.len) != NULL)
			continue;
		/* IKNL's STU3 PZP value sets (ACP-EuthanasiaStatement,
		   ACP-YesNoUnknownVS) name NullFlavor as R4 does; the zib2017
		   rules write the old name themselves where theirs want it */
		if (c->to == RULES_STU3 &&
		    strcmp(n->u.str.s, V3_R4 "NullFlavor") == 0)
			return GW_OK;
		w = snprintf(u, sizeof(u), "%s%s", to, n->u.str.s + fl);
		if (w < 0 || (size_t)w >= sizeof(u))
			return GW_OK; /* no code system has such a name */
		if ((t = fj_new_string(c->doc, u)) == NULL)
			return GW_NOMEM;
		n->u.str = t->u.str;
		return GW_OK;
	}
	return GW_OK;
}

/* After the per-type rule: an extension still named by a PZP canonical
 * or another namespace only the source version uses has no counterpart
 * (no table maps it, no rule took it); the target's validator would
 * refuse it, so it is left out and reported. The same walk gives every
 * "system" naming a v2 table or v3 code system the target's name
 * (map_system; after the rules, whose tables name the source's systems;
 * not reported: the same code system under its other name, as the
 * canonical URLs of profiles). */
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
			path_idx(c, sub, sizeof(sub), rel, i);
		} else {
			if ((m->keylen == 9 &&
			     memcmp(m->key, "contained", 9) == 0) ||
			    (m->type == FJ_OBJECT &&
			     fj_get(m, "resourceType") != NULL))
				continue;
			if (m->type == FJ_STRING && m->keylen == 6 &&
			    memcmp(m->key, "system", 6) == 0) {
				if ((e = map_system(c, m)) != GW_OK)
					return e;
				continue;
			}
			path_key(c, sub, sizeof(sub), rel, m->key, m->keylen);
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
				path_idx(c, xp, sizeof(xp), sub, j);
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
				xf_arr_remove(m, x);
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
				path_key(c, sub, sizeof(sub), rel, m->key,
					 m->keylen);
			} else {
				path_idx(c, sub, sizeof(sub), rel, i);
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

/* After the canonical URLs are mapped, before the per-type rule: a
 * meta.profile still naming a PZP profile of the source version has no
 * counterpart; the target's validator would only warn and check nothing,
 * so it is left out (reported) and the validator detects the profile
 * instead. */
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
		xf_arr_remove(prof, p);
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
		if (c->report != NULL)
			path_fmt(c->path, sizeof(c->path),
				 "%s.entry[%zu].resource", saved, i);
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
		if (c->report != NULL)
			path_fmt(c->path, sizeof(c->path), "%s.contained[%zu]",
				 saved, i);
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
	/* a PZP profile of the source that nothing maps goes before the
	   rule: the rule then tells the profile from the content, as the
	   target's validator will (a claimed but unknown profile hid it) */
	if ((e = shared_rules(c, res, type)) != GW_OK ||
	    (e = drop_profiles(c, res)) != GW_OK)
		return e;
	if (rule != NULL && (e = rule(c, res)) != GW_OK)
		return e;
	if (c->to == RULES_R4 && (e = walk_role_refs(c, res, "", 0)) != GW_OK)
		return e;
	if ((e = walk_drop_ext(c, res, "", 0)) != GW_OK)
		return e;
	if ((e = convert_contained(c, res, depth)) != GW_OK)
		return e;
	if (strcmp(type, "Bundle") == 0)
		return convert_entries(c, res, depth);
	return GW_OK;
}

enum gw_err
xf_entries_take(struct xf_ctx *c)
{
	const struct fj_node *entries = fj_get(c->bundle, "entry");
	size_t n = 0;

	if (entries == NULL || entries->type != FJ_ARRAY ||
	    entries->u.kids.count == 0)
		return GW_OK;
	c->ents = calloc(entries->u.kids.count, sizeof(*c->ents));
	if (c->ents == NULL)
		return GW_NOMEM;
	for (const struct fj_node *e = entries->u.kids.first; e != NULL;
	     e = e->next) {
		struct fj_node *res = fj_get(e, "resource");
		struct xf_entry *x = &c->ents[n];

		if (res == NULL || res->type != FJ_OBJECT)
			continue;
		x->res = res;
		x->full = fj_get_str(e, "fullUrl");
		x->type = fj_get_str(res, "resourceType");
		x->id = fj_get_str(res, "id");
		x->type_len = x->type != NULL ? strlen(x->type) : 0;
		n++;
	}
	c->nents = n;
	return GW_OK;
}

enum gw_err
xf_convert(struct fj_doc *doc, enum rules_fhir from, enum rules_fhir to,
	   json_t *report)
{
	struct xf_ctx c;
	const char *type;
	enum gw_err rc;

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
	if (strcmp(type, "Bundle") == 0) {
		c.bundle = doc->root;
		if ((rc = xf_entries_take(&c)) != GW_OK)
			return rc;
	}
	rc = convert_resource(&c, doc->root, 0);
	free(c.ents);
	return rc;
}
