/*
 * transform rules of the zib profiles (Patient, RelatedPerson/ContactPerson,
 * Practitioner, PractitionerRole, Observation): the zib2017 (STU3) <->
 * zib2020/nl-core (R4) differences of the PZP profiles built on them.
 */
#include <stdio.h>
#include <string.h>

#include "transform_impl.h"

#define R4A "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define R4B "https://fhir.iknl.nl/fhir/StructureDefinition/"
#define S3  "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"

#define SNOMED "http://snomed.info/sct"
/* The role of a contact person in zib2017 (STU3 nl-core-relatedperson);
 * zib2020 puts it in RelatedPerson.relationship (slice "role"). */
#define RP_ROLE_URL                                                            \
	"http://fhir.nl/fhir/StructureDefinition/nl-core-relatedperson-role"
/* R4 core extension from Patient.contact to its RelatedPerson; neither
 * STU3 core nor zib2017 has it. */
/* The zib contact person role code list (RolCodeLijst). */
#define RP_ROLE_SYSTEM "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"
#define PAT_RELPERSON_URL                                                      \
	"http://hl7.org/fhir/StructureDefinition/patient-relatedPerson"

/*
 * The newest R4 canonical (api.iknl.nl) comes first: STU3 maps back to
 * it. The older R4 snapshot (fhir.iknl.nl, PZP 0.1.3) maps to the same
 * STU3 URL.
 */
#define PAIR(name)                                                             \
	{R4A name, S3 name},                                                   \
	{                                                                      \
		R4B name, S3 name                                              \
	}

const struct xf_url_map xf_urls_zib[] = {
    PAIR("ACP-Patient"),
    PAIR("ACP-ContactPerson"),
    PAIR("ACP-HealthProfessional-Practitioner"),
    PAIR("ACP-HealthProfessional-PractitionerRole"),
    PAIR("ACP-OrganDonationChoiceRegistration"),
    PAIR("ACP-PositionRegardingEuthanasia"),
    PAIR("ACP-PreferredPlaceOfDeath"),
    PAIR("ACP-SenseOfPurpose"),
    PAIR("ACP-SpecificCareWishes"),
    /* PZP 0.1.3's name of the same profile (code 247751003, a string
       value): renamed SenseOfPurpose in 1.0.0-rc1, the STU3 name */
    {R4B "ACP-OtherImportantInformation", S3 "ACP-SenseOfPurpose"},
    {R4A "ext-LegallyCapable-MedicalTreatmentDecisions",
     S3 "ext-Patient.LegallyCapableMedicalTreatmentDecisions"},
    {R4B "ext-LegallyCapable-MedicalTreatmentDecisions",
     S3 "ext-Patient.LegallyCapableMedicalTreatmentDecisions"},
    /* zib2017 backported the R4 core extension under its own URL */
    {"http://hl7.org/fhir/StructureDefinition/patient-proficiency",
     "http://nictiz.nl/fhir/StructureDefinition/patient-proficiency"},
    {NULL, NULL},
};

/* ---- small helpers ---- */

/* True when CodeableConcept cc has a coding of system sys. */
static bool
cc_has_system(const struct fj_node *cc, const char *sys)
{
	const struct fj_node *cod = fj_get(cc, "coding");

	if (cod == NULL || cod->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *k = cod->u.kids.first; k != NULL;
	     k = k->next)
		if (fj_str_eq(fj_get(k, "system"), sys))
			return true;
	return false;
}

/* STU3 Observation.performer admits these; R4 also CareTeam (and
 * PractitionerRole, which xf_role_ref turns into its Practitioner). */
static const char *const obs_performer_stu3[] = {
    "Practitioner", "Organization", "Patient", "RelatedPerson", NULL,
};

static enum gw_err
obs_performers_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *perf = fj_get(res, "performer");
	struct fj_node *k, *next;
	size_t i = 0;
	enum gw_err e;

	if (perf == NULL || perf->type != FJ_ARRAY)
		return GW_OK;
	for (k = perf->u.kids.first; k != NULL; k = next, i++) {
		char t[32], rel[48];
		bool ok = false;

		next = k->next;
		xf_ref_type(c, k, t, sizeof(t));
		for (size_t j = 0; obs_performer_stu3[j] != NULL; j++)
			ok = ok || strcmp(t, obs_performer_stu3[j]) == 0;
		if (t[0] == '\0' || ok)
			continue;
		snprintf(rel, sizeof(rel), "performer[%zu]", i);
		if ((e = xf_loss(c, rel,
				 "STU3 Observation.performer cannot be a %s; "
				 "this performer is left out",
				 t)) != GW_OK)
			return e;
		xf_arr_remove(perf, k);
	}
	if (perf->u.kids.count == 0)
		fj_remove(res, "performer");
	return GW_OK;
}

/* Remove every extension of obj with url, reporting each at
 * prefix + "extension[i]" with why. */
static enum gw_err
drop_ext(struct xf_ctx *c, struct fj_node *obj, const char *url,
	 const char *prefix, const char *why)
{
	struct fj_node *arr = fj_get(obj, "extension");
	struct fj_node *k, *next;
	char rel[XF_PATH_MAX];
	size_t i = 0;
	enum gw_err e;

	if (arr == NULL || arr->type != FJ_ARRAY)
		return GW_OK;
	for (k = arr->u.kids.first; k != NULL; k = next, i++) {
		next = k->next;
		if (!fj_str_eq(fj_get(k, "url"), url))
			continue;
		snprintf(rel, sizeof(rel), "%sextension[%zu]", prefix, i);
		if ((e = xf_loss(c, rel, "%s", why)) != GW_OK)
			return e;
		xf_arr_remove(arr, k);
	}
	if (arr->u.kids.count == 0)
		fj_remove(obj, "extension");
	return GW_OK;
}

/* Elements that exist in one version only and have no counterpart:
 * left out and reported when converting from that version. */
static const struct xf_only_in only_in[] = {
    {"Patient", "animal", RULES_STU3},
    {"RelatedPerson", "communication", RULES_R4},
    {"Observation", "partOf", RULES_R4},
    {"Observation", "focus", RULES_R4},
    {"Observation", "effectiveTiming", RULES_R4},
    {"Observation", "valueAttachment", RULES_STU3},
    {NULL, NULL, RULES_R4},
};

/* A new object holding only a data-absent-reason "unknown" extension:
 * how FHIR marks a required element that has no value (for a primitive,
 * as its "_name" twin). */
static struct fj_node *
absent(struct xf_ctx *c)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *arr = fj_new_array(c->doc);
	struct fj_node *dar = xf_dar(c, "unknown");

	if (o == NULL || arr == NULL || dar == NULL)
		return NULL;
	fj_append(arr, dar);
	if (fj_set(c->doc, o, "extension", arr) != GW_OK)
		return NULL;
	return o;
}

/* zib2017 (nl-core-patient, nl-core-practitioner) requires the value of
 * the identifier slices (BSN, UZI, AGB, BIG); R4 does not. An identifier
 * without a value gets it marked absent, reported. */
static enum gw_err
identifier_values_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *ids = fj_get(res, "identifier");
	size_t i = 0;
	enum gw_err e;

	if (c->to != RULES_STU3 || ids == NULL || ids->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *k = ids->u.kids.first; k != NULL;
	     k = k->next, i++) {
		struct fj_node *a;
		char rel[48];

		if (k->type != FJ_OBJECT || fj_get(k, "value") != NULL ||
		    fj_get(k, "_value") != NULL)
			continue;
		if ((a = absent(c)) == NULL)
			return GW_NOMEM;
		if ((e = fj_set(c->doc, k, "_value", a)) != GW_OK)
			return e;
		snprintf(rel, sizeof(rel), "identifier[%zu].value", i);
		if ((e = xf_loss(c, rel,
				 "zib2017 requires the identifier's value; "
				 "marked with data-absent-reason unknown")) !=
		    GW_OK)
			return e;
	}
	return GW_OK;
}

#define EN_QUALIFIER_URL                                                       \
	"http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier"

/* The EN-qualifier a given name gets in R4 when the source does not say:
 * IN (initial) for one letter, with or without a full stop; BR (a
 * full given name) otherwise. */
static const char *
given_kind(const struct fj_node *g)
{
	const char *s = g != NULL && g->type == FJ_STRING ? g->u.str.s : "";
	size_t n = g != NULL && g->type == FJ_STRING ? g->u.str.len : 0;

	return (n == 1 || (n == 2 && s[1] == '.')) ? "IN" : "BR";
}

/* zib2020 (R4) requires each given name to say in the EN-qualifier
 * extension (on _given) whether it is a full name or an initial;
 * zib2017 does not. Where the source does not say, the kind given_kind
 * finds is set and reported. name is one HumanName, rel its path. */
static enum gw_err
given_kinds_r4(struct xf_ctx *c, struct fj_node *name, const char *rel)
{
	struct fj_node *given = fj_get(name, "given");
	struct fj_node *ug = fj_get(name, "_given");
	struct fj_node *g, *u, *arr, *x, *code;
	bool missing = false;
	size_t j;
	enum gw_err e;

	if (given == NULL || given->type != FJ_ARRAY)
		return GW_OK;
	if (ug != NULL && ug->type != FJ_ARRAY)
		return GW_OK; /* not FHIR JSON: the validator says so */
	u = ug != NULL ? ug->u.kids.first : NULL;
	for (g = given->u.kids.first; g != NULL && !missing; g = g->next) {
		missing = u == NULL || u->type != FJ_OBJECT ||
			  xf_ext_find(u, EN_QUALIFIER_URL, false) == NULL;
		u = u != NULL ? u->next : NULL;
	}
	if (!missing)
		return GW_OK;
	/* _given is rebuilt beside given, element for element. */
	if ((arr = fj_new_array(c->doc)) == NULL)
		return GW_NOMEM;
	u = ug != NULL ? ug->u.kids.first : NULL;
	for (g = given->u.kids.first, j = 0; g != NULL; g = g->next, j++) {
		char at[XF_PATH_MAX];

		x = u != NULL && u->type == FJ_OBJECT ? fj_copy(c->doc, u)
						      : fj_new_object(c->doc);
		u = u != NULL ? u->next : NULL;
		if (x == NULL)
			return GW_NOMEM;
		fj_append(arr, x);
		if (xf_ext_find(x, EN_QUALIFIER_URL, false) != NULL)
			continue;
		if ((code = fj_new_string(c->doc, given_kind(g))) == NULL ||
		    (e = xf_ext_add(c, x, EN_QUALIFIER_URL, false, "valueCode",
				    code)) != GW_OK)
			return code == NULL ? GW_NOMEM : e;
		snprintf(at, sizeof(at), "%s.given[%zu]", rel, j);
		if ((e = xf_loss(c, at,
				 "zib2020 requires each given name to say "
				 "whether it is a full name (BR) or an initial "
				 "(IN); the source does not: set to %s",
				 given_kind(g))) != GW_OK)
			return e;
	}
	return fj_set(c->doc, name, "_given", arr);
}

/* zib2020 (R4) slices names by use: a "usual" name is the given name
 * (roepnaam) and requires given; zib2017 has no such rule. A usual name
 * without a given name is left out of R4, reported. */
static enum gw_err
usual_names_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *names = fj_get(res, "name");
	struct fj_node *k, *next;
	size_t i = 0;
	enum gw_err e;

	if (c->to != RULES_R4 || names == NULL || names->type != FJ_ARRAY)
		return GW_OK;
	for (k = names->u.kids.first; k != NULL; k = next, i++) {
		char rel[32];

		next = k->next;
		snprintf(rel, sizeof(rel), "name[%zu]", i);
		if (!fj_str_eq(fj_get(k, "use"), "usual") ||
		    fj_get(k, "given") != NULL) {
			if ((e = given_kinds_r4(c, k, rel)) != GW_OK)
				return e;
			continue;
		}
		if ((e = xf_loss(c, rel,
				 "zib2020 requires the given name in a "
				 "\"usual\" name; this name is left out")) !=
		    GW_OK)
			return e;
		xf_arr_remove(names, k);
	}
	if (names->u.kids.count == 0)
		fj_remove(res, "name");
	return GW_OK;
}

/* ---- Patient ---- */

static enum gw_err
rule_patient(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *contact = fj_get(res, "contact");
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Patient")) != GW_OK ||
	    (e = identifier_values_stu3(c, res)) != GW_OK ||
	    (e = usual_names_r4(c, res)) != GW_OK)
		return e;
	/* R4 allows a PractitionerRole, STU3 a Practitioner. */
	if ((e = xf_role_refs(c, res, "generalPractitioner", "")) != GW_OK)
		return e;
	/* R4 ACP-Patient requires a name, zib2017 does not */
	if (c->to == RULES_R4 && fj_get(res, "name") == NULL &&
	    xf_has_profile(res, R4A "ACP-Patient")) {
		struct fj_node *arr = fj_new_array(c->doc);
		struct fj_node *n = fj_new_object(c->doc);
		struct fj_node *x = fj_new_array(c->doc);
		struct fj_node *dar = xf_dar(c, "unknown");

		if (arr == NULL || n == NULL || x == NULL || dar == NULL)
			return GW_NOMEM;
		fj_append(x, dar);
		if ((e = fj_set(c->doc, n, "extension", x)) != GW_OK)
			return e;
		fj_append(arr, n);
		if ((e = fj_set(c->doc, res, "name", arr)) != GW_OK)
			return e;
		if ((e = xf_loss(c, "name",
				 "R4 ACP-Patient requires a name; marked with "
				 "data-absent-reason unknown")) != GW_OK)
			return e;
	}
	if (c->to != RULES_STU3 || contact == NULL || contact->type != FJ_ARRAY)
		return GW_OK;
	{
		size_t i = 0;

		for (struct fj_node *k = contact->u.kids.first; k != NULL;
		     k = k->next, i++) {
			char prefix[48];

			snprintf(prefix, sizeof(prefix), "contact[%zu].", i);
			if ((e = drop_ext(c, k, PAT_RELPERSON_URL, prefix,
					  "STU3 (zib2017) has no link from a "
					  "Patient.contact to its "
					  "RelatedPerson; the link is left "
					  "out, the contact is kept")) != GW_OK)
				return e;
		}
	}
	return GW_OK;
}

/* ---- RelatedPerson (ACP-ContactPerson) ---- */

/* True when cc is the kind of relationship (family tie, v3 RoleCode or
 * its NullFlavor), not the role of the contact person. */
static bool
rp_is_relationship(const struct fj_node *cc)
{
	return cc_has_system(
		   cc, "http://terminology.hl7.org/CodeSystem/v3-RoleCode") ||
	       cc_has_system(cc, "http://hl7.org/fhir/v3/RoleCode") ||
	       cc_has_system(
		   cc, "http://terminology.hl7.org/CodeSystem/v3-NullFlavor") ||
	       cc_has_system(cc, XF_NULLFLAVOR_SYSTEM);
}

/*
 * R4 -> STU3: relationship[] (roles and the relationship, zib2020) becomes
 * relationship (0..1, the first family relationship, or the first role
 * when there is none, as IKNL's own STU3 examples hold it) plus one
 * nl-core-relatedperson-role extension per other role. A second family
 * relationship has no place and is reported.
 */
static enum gw_err
rp_to_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *rel = fj_get(res, "relationship");
	struct fj_node *keep = NULL, *k, *next;
	size_t i = 0;
	enum gw_err e;

	if (rel == NULL || rel->type != FJ_ARRAY)
		return GW_OK;
	for (k = rel->u.kids.first; k != NULL; k = k->next)
		if (rp_is_relationship(k)) {
			keep = k;
			break;
		}
	if (keep == NULL)
		keep = rel->u.kids.first;
	for (k = rel->u.kids.first; k != NULL; k = next, i++) {
		char path[48];

		next = k->next;
		if (k == keep)
			continue;
		xf_arr_remove(rel, k);
		if (rp_is_relationship(k)) {
			snprintf(path, sizeof(path), "relationship[%zu]", i);
			if ((e = xf_loss(c, path,
					 "STU3 holds one relationship of a "
					 "contact person; this one is left "
					 "out")) != GW_OK)
				return e;
			continue;
		}
		if ((e = xf_ext_add(c, res, RP_ROLE_URL, false,
				    "valueCodeableConcept", k)) != GW_OK)
			return e;
	}
	if (keep == NULL) {
		fj_remove(res, "relationship");
		return GW_OK;
	}
	/* replaces the array in place: the member keeps its position */
	return fj_set(c->doc, res, "relationship", keep);
}

/* True when array arr holds a role (anything not a family
 * relationship). */
static bool
rp_has_role(const struct fj_node *arr)
{
	for (const struct fj_node *k = arr->u.kids.first; k != NULL;
	     k = k->next)
		if (!rp_is_relationship(k))
			return true;
	return false;
}

/* STU3 -> R4: the role extensions then the relationship, in one array
 * (the order of the zib2020 examples: roles first). */
static enum gw_err
rp_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *arr = fj_new_array(c->doc);
	struct fj_node *rel = fj_get(res, "relationship");
	struct fj_node *ext;
	enum gw_err e;

	if (arr == NULL)
		return GW_NOMEM;
	while ((ext = xf_ext_take(res, RP_ROLE_URL, false)) != NULL) {
		struct fj_node *v = fj_get(ext, "valueCodeableConcept");

		if (v == NULL || v->type != FJ_OBJECT) {
			if ((e = xf_loss(c, "extension",
					 "a contact person role without a "
					 "valueCodeableConcept is left "
					 "out")) != GW_OK)
				return e;
			continue;
		}
		fj_remove(ext, "valueCodeableConcept");
		fj_append(arr, v);
	}
	if (rel != NULL && rel->type == FJ_OBJECT) {
		fj_remove(res, "relationship");
		rel->next = NULL;
		rel->key = NULL;
		rel->keylen = 0;
		fj_append(arr, rel);
	}
	/*
	 * R4 ACP-ContactPerson requires a role (relationship:role, 1..*,
	 * required binding without a NullFlavor); zib2017 does not. The
	 * role every contact person has is "23 Contactpersoon" of the same
	 * code list: filled and reported.
	 */
	/* without a profile, the validator takes a RelatedPerson with a
	   relationship for ACP-ContactPerson (its slices' patterns) */
	if ((xf_has_profile(res, R4A "ACP-ContactPerson") ||
	     (xf_is_profile(res, R4A "ACP-ContactPerson", NULL, NULL) &&
	      arr->u.kids.count > 0)) &&
	    !rp_has_role(arr)) {
		struct fj_node *cc = fj_new_object(c->doc);
		struct fj_node *cod = fj_new_array(c->doc);
		struct fj_node *k =
		    xf_coding(c, RP_ROLE_SYSTEM, "23", "Contactpersoon");

		if (cc == NULL || cod == NULL || k == NULL)
			return GW_NOMEM;
		fj_append(cod, k);
		if ((e = fj_set(c->doc, cc, "coding", cod)) != GW_OK)
			return e;
		fj_append(arr, cc);
		if ((e = xf_loss(c, "relationship",
				 "R4 ACP-ContactPerson requires a role; "
				 "filled with 23 Contactpersoon (%s)",
				 RP_ROLE_SYSTEM)) != GW_OK)
			return e;
	}
	if (arr->u.kids.count == 0)
		return GW_OK;
	return fj_set(c->doc, res, "relationship", arr);
}

static enum gw_err
rule_related_person(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "RelatedPerson")) != GW_OK ||
	    (e = usual_names_r4(c, res)) != GW_OK)
		return e;
	return c->to == RULES_STU3 ? rp_to_stu3(c, res) : rp_to_r4(c, res);
}

/* ---- Practitioner, PractitionerRole ---- */

/* Practitioner: the identifier values zib2017 requires. PractitionerRole
 * has no element of its own that differs between zib2017 and zib2020 in
 * the PZP profiles; the shared rules (URLs, Reference.type) are all. */
static enum gw_err
rule_practitioner(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e = identifier_values_stu3(c, res);

	return e != GW_OK ? e : usual_names_r4(c, res);
}

/* ---- Observation ---- */

/*
 * R4 note (Annotation[]) <-> STU3 comment (string). R4 -> STU3: the first
 * note's text; its author and time, and any further note, have no place
 * and are reported. STU3 -> R4: one note with the text.
 */
static enum gw_err
obs_note(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *n, *first;
	enum gw_err e;

	if (c->to == RULES_R4) {
		struct fj_node *cm = fj_get(res, "comment");
		struct fj_node *arr, *ann;

		if (cm == NULL)
			return GW_OK;
		fj_remove(res, "comment");
		if ((arr = fj_new_array(c->doc)) == NULL ||
		    (ann = fj_new_object(c->doc)) == NULL)
			return GW_NOMEM;
		cm->next = NULL;
		if ((e = fj_set(c->doc, ann, "text", cm)) != GW_OK)
			return e;
		fj_append(arr, ann);
		return fj_set(c->doc, res, "note", arr);
	}
	n = fj_get(res, "note");
	if (n == NULL || n->type != FJ_ARRAY)
		return GW_OK;
	first = n->u.kids.first;
	if (first != NULL && fj_get(first, "text") != NULL) {
		struct fj_node *t = fj_get(first, "text");

		if (fj_get(first, "author") != NULL ||
		    fj_get(first, "authorReference") != NULL ||
		    fj_get(first, "authorString") != NULL ||
		    fj_get(first, "time") != NULL) {
			if ((e = xf_loss(c, "note[0]",
					 "STU3 Observation.comment holds the "
					 "text only; the note's author and "
					 "time are left out")) != GW_OK)
				return e;
		}
		fj_remove(first, "text");
		t->next = NULL;
		if ((e = fj_set(c->doc, res, "comment", t)) != GW_OK)
			return e;
	} else if (first != NULL &&
		   (e = xf_loss(c, "note[0]",
				"a note without text is left out")) != GW_OK) {
		return e;
	}
	if (n->u.kids.count > 1 &&
	    (e = xf_loss(c, "note",
			 "STU3 Observation.comment holds one text; %zu "
			 "further notes are left out",
			 n->u.kids.count - 1)) != GW_OK)
		return e;
	fj_remove(res, "note");
	return GW_OK;
}

/* R4 hasMember / derivedFrom <-> STU3 related {type, target}. */
static const struct {
	const char *r4key;
	const char *stu3type;
} obs_related[] = {
    {"hasMember", "has-member"},
    {"derivedFrom", "derived-from"},
};

static enum gw_err
obs_related_to_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *out = NULL;
	enum gw_err e;

	for (size_t r = 0; r < sizeof(obs_related) / sizeof(obs_related[0]);
	     r++) {
		struct fj_node *src = fj_get(res, obs_related[r].r4key);
		struct fj_node *k, *next;

		if (src == NULL || src->type != FJ_ARRAY)
			continue;
		if (out == NULL) {
			out = fj_get(res, "related");
			if (out == NULL) {
				if ((out = fj_new_array(c->doc)) == NULL ||
				    fj_set(c->doc, res, "related", out) !=
					GW_OK)
					return GW_NOMEM;
			}
		}
		for (k = src->u.kids.first; k != NULL; k = next) {
			struct fj_node *o = fj_new_object(c->doc);

			next = k->next;
			k->next = NULL;
			if (o == NULL)
				return GW_NOMEM;
			if ((e = xf_set_str(c, o, "type",
					    obs_related[r].stu3type)) !=
				GW_OK ||
			    (e = fj_set(c->doc, o, "target", k)) != GW_OK)
				return e;
			fj_append(out, o);
		}
		fj_remove(res, obs_related[r].r4key);
	}
	return GW_OK;
}

static enum gw_err
obs_related_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *rel = fj_get(res, "related");
	size_t i = 0;
	enum gw_err e;

	if (rel == NULL || rel->type != FJ_ARRAY)
		return GW_OK;
	fj_remove(res, "related");
	for (struct fj_node *k = rel->u.kids.first; k != NULL;
	     k = k->next, i++) {
		const char *t = fj_get_str(k, "type");
		struct fj_node *tgt = fj_get(k, "target");
		const char *key = NULL;
		struct fj_node *arr;
		char path[48];

		for (size_t r = 0;
		     r < sizeof(obs_related) / sizeof(obs_related[0]); r++)
			if (t != NULL &&
			    strcmp(t, obs_related[r].stu3type) == 0)
				key = obs_related[r].r4key;
		/* STU3's default type is has-member */
		if (t == NULL)
			key = "hasMember";
		if (key == NULL || tgt == NULL) {
			snprintf(path, sizeof(path), "related[%zu]", i);
			if ((e = xf_loss(c, path,
					 "R4 Observation has no \"%s\" "
					 "relation; it is left out",
					 t != NULL ? t : "?")) != GW_OK)
				return e;
			continue;
		}
		if ((arr = fj_get(res, key)) == NULL) {
			if ((arr = fj_new_array(c->doc)) == NULL ||
			    fj_set(c->doc, res, key, arr) != GW_OK)
				return GW_NOMEM;
		}
		fj_remove(k, "target");
		tgt->next = NULL;
		tgt->key = NULL;
		tgt->keylen = 0;
		fj_append(arr, tgt);
	}
	return GW_OK;
}

/* True when res claims one of the STU3 ACP Observation profiles. */
static bool
obs_is_acp_stu3(const struct fj_node *res)
{
	static const char *const names[] = {
	    S3 "ACP-OrganDonationChoiceRegistration",
	    S3 "ACP-PositionRegardingEuthanasia",
	    S3 "ACP-PreferredPlaceOfDeath",
	    S3 "ACP-SenseOfPurpose",
	    S3 "ACP-SpecificCareWishes",
	    NULL,
	};

	for (size_t i = 0; names[i] != NULL; i++)
		if (xf_has_profile(res, names[i]))
			return true;
	return false;
}

/*
 * interpretation: R4 0..*, STU3 0..1 (on the Observation and on each
 * component). To STU3 the first, more reported; to R4 an array of one.
 */
static enum gw_err
obs_interpretation(struct xf_ctx *c, struct fj_node *obj, const char *prefix)
{
	struct fj_node *in = fj_get(obj, "interpretation");
	char rel[64];
	enum gw_err e;

	if (in == NULL)
		return GW_OK;
	if (c->to == RULES_R4) {
		struct fj_node *arr;

		if (in->type != FJ_OBJECT)
			return GW_OK;
		if ((arr = fj_new_array(c->doc)) == NULL)
			return GW_NOMEM;
		fj_remove(obj, "interpretation");
		fj_append(arr, in);
		return fj_set(c->doc, obj, "interpretation", arr);
	}
	if (in->type != FJ_ARRAY)
		return GW_OK;
	if (in->u.kids.count > 1) {
		snprintf(rel, sizeof(rel), "%sinterpretation", prefix);
		if ((e = xf_loss(c, rel,
				 "STU3 holds one interpretation; %zu more are "
				 "left out",
				 in->u.kids.count - 1)) != GW_OK)
			return e;
	}
	if (in->u.kids.first == NULL) {
		fj_remove(obj, "interpretation");
		return GW_OK;
	}
	return fj_set(c->doc, obj, "interpretation", in->u.kids.first);
}

/* R4 valueInteger has no STU3 type: carried as a Quantity with that
 * value (no unit), reported. On the Observation and its components. */
static enum gw_err
obs_value_integer(struct xf_ctx *c, struct fj_node *obj, const char *prefix)
{
	struct fj_node *v = fj_get(obj, "valueInteger");
	struct fj_node *q;
	char rel[64];
	enum gw_err e;

	if (c->to != RULES_STU3 || v == NULL)
		return GW_OK;
	if ((q = fj_new_object(c->doc)) == NULL)
		return GW_NOMEM;
	fj_remove(obj, "valueInteger");
	if ((e = fj_set(c->doc, q, "value", v)) != GW_OK ||
	    (e = fj_set(c->doc, obj, "valueQuantity", q)) != GW_OK)
		return e;
	snprintf(rel, sizeof(rel), "%svalueInteger", prefix);
	return xf_loss(c, rel,
		       "STU3 has no valueInteger; carried as valueQuantity "
		       "without a unit");
}

/* obs_interpretation and obs_value_integer on the Observation and on
 * each component. */
static enum gw_err
obs_values(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *comp = fj_get(res, "component");
	size_t i = 0;
	enum gw_err e;

	if ((e = obs_interpretation(c, res, "")) != GW_OK ||
	    (e = obs_value_integer(c, res, "")) != GW_OK)
		return e;
	if (comp == NULL || comp->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *k = comp->u.kids.first; k != NULL;
	     k = k->next, i++) {
		char prefix[48];

		snprintf(prefix, sizeof(prefix), "component[%zu].", i);
		if ((e = obs_interpretation(c, k, prefix)) != GW_OK ||
		    (e = obs_value_integer(c, k, prefix)) != GW_OK)
			return e;
	}
	return GW_OK;
}

static enum gw_err
rule_observation(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Observation")) != GW_OK ||
	    (e = obs_values(c, res)) != GW_OK)
		return e;
	if ((e = xf_role_refs(c, res, "performer", "")) != GW_OK)
		return e;
	if ((e = obs_note(c, res)) != GW_OK)
		return e;
	if (c->to == RULES_R4)
		return obs_related_to_r4(c, res);
	/* zib-GeneralMeasurement (every STU3 ACP Observation) requires
	   subject; R4 Observation does not */
	if (fj_get(res, "subject") == NULL && obs_is_acp_stu3(res)) {
		struct fj_node *a = absent(c);

		if (a == NULL)
			return GW_NOMEM;
		if ((e = fj_set(c->doc, res, "subject", a)) != GW_OK)
			return e;
		if ((e = xf_loss(c, "subject",
				 "STU3 (zib-GeneralMeasurement) requires "
				 "subject; marked with data-absent-reason "
				 "unknown")) != GW_OK)
			return e;
	}
	if ((e = obs_performers_stu3(c, res)) != GW_OK ||
	    (e = obs_related_to_stu3(c, res)) != GW_OK)
		return e;
	/* An instant is a dateTime; STU3 has no effectiveInstant. */
	if (xf_rename(res, "effectiveInstant", "effectiveDateTime") &&
	    (e = xf_loss(c, "effectiveInstant",
			 "STU3 has no effectiveInstant; the instant is "
			 "carried as effectiveDateTime")) != GW_OK)
		return e;
	/*
	 * STU3 ACP-OrganDonationChoiceRegistration requires method (SNOMED
	 * 1156040003 "self reported", its fixed pattern); R4 has no such
	 * rule. IKNL's STU3 examples carry exactly this code.
	 */
	if (xf_is_profile(res, S3 "ACP-OrganDonationChoiceRegistration", "code",
			  "570801000146104") &&
	    fj_get(res, "method") == NULL) {
		struct fj_node *cc = fj_new_object(c->doc);
		struct fj_node *arr = fj_new_array(c->doc);
		struct fj_node *cod =
		    xf_coding(c, SNOMED, "1156040003", "self reported");

		if (cc == NULL || arr == NULL || cod == NULL)
			return GW_NOMEM;
		fj_append(arr, cod);
		if ((e = fj_set(c->doc, cc, "coding", arr)) != GW_OK ||
		    (e = fj_set(c->doc, res, "method", cc)) != GW_OK)
			return e;
		if ((e = xf_loss(c, "method",
				 "STU3 ACP-OrganDonationChoiceRegistration "
				 "requires method; filled with its fixed "
				 "code SNOMED 1156040003 (self reported)")) !=
		    GW_OK)
			return e;
	}
	return GW_OK;
}

const struct xf_type xf_types_zib[] = {
    {"Patient", rule_patient},
    {"RelatedPerson", rule_related_person},
    {"Practitioner", rule_practitioner},
    {"Observation", rule_observation},
    {NULL, NULL},
};
