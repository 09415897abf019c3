/*
 * transform rules of the care resources (Encounter, Procedure, Goal,
 * Communication, CommunicationRequest, Device, DeviceUseStatement,
 * QuestionnaireResponse): STU3 <-> R4 element renames and restructures
 * of FHIR core and the PZP/zib profiles on them.
 */
#include <stdio.h>
#include <string.h>

#include "transform_impl.h"

#define R4A    "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define R4B    "https://fhir.iknl.nl/fhir/StructureDefinition/"
#define S3     "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
#define NICTIZ "http://nictiz.nl/fhir/StructureDefinition/"

#define SNOMED "http://snomed.info/sct"
#define GOAL_ACHIEVEMENT                                                       \
	"http://terminology.hl7.org/CodeSystem/goal-achievement"
/* R4 PZP 0.1.3 extension pointing a Goal, DeviceUseStatement or
 * Consent at its Encounter; STU3 and newer R4 have none. */
#define ENC_REF_URL R4B "ext-EncounterReference"
/* zib2017 MedicalDevice: the problem a device is used for, on
 * DeviceUseStatement.indication. */
#define DUS_PROBLEM_URL NICTIZ "zib-MedicalDevice-Problem"
#define DUS_HP_URL_R4	NICTIZ "ext-MedicalDevice.HealthProfessional"
/* zib2017's backport of R4 DeviceUseStatement.reasonReference */
#define DUS_REASONREF_URL NICTIZ "deviceUseStatement-reasonReferenceSTU3"

/* The newest R4 canonical first: STU3 maps back to it. */
const struct xf_url_map xf_urls_care[] = {
    {R4A "ACP-Encounter", S3 "ACP-Encounter"},
    {R4B "ACP-Encounter", S3 "ACP-Encounter"},
    {R4A "ACP-Procedure", S3 "ACP-Procedure"},
    {R4B "ACP-Procedure", S3 "ACP-Procedure"},
    {R4A "ACP-Medical-Policy-Goal", S3 "ACP-MedicalPolicyGoal"},
    {R4B "ACP-Medical-Policy-Goal", S3 "ACP-MedicalPolicyGoal"},
    {R4A "ACP-MedicalDevice", S3 "ACP-MedicalDevice"},
    {R4B "ACP-MedicalDevice", S3 "ACP-MedicalDevice"},
    {R4A "ACP-MedicalDevice.Product-ICD", S3 "ACP-MedicalDevice.Product-ICD"},
    {R4B "ACP-MedicalDevice.Product-ICD", S3 "ACP-MedicalDevice.Product-ICD"},
    {R4A "ACP-InformRelativesRequest", S3 "ACP-InformRelativesRequest"},
    /* zib2017 MedicalDevice -> zib2020 MedicalDevice extensions */
    {DUS_HP_URL_R4, NICTIZ "zib-MedicalDevice-Practitioner"},
    {NICTIZ "ext-AnatomicalLocation.Laterality", NICTIZ "BodySite-Qualifier"},
    {NULL, NULL},
};

/* ---- small helpers ---- */

/* obj[key] as an array, made when missing; NULL without memory or when
 * obj[key] is not an array. */
static struct fj_node *
get_array(struct xf_ctx *c, struct fj_node *obj, const char *key)
{
	struct fj_node *a = fj_get(obj, key);

	if (a != NULL)
		return a->type == FJ_ARRAY ? a : NULL;
	if ((a = fj_new_array(c->doc)) == NULL ||
	    fj_set(c->doc, obj, key, a) != GW_OK)
		return NULL;
	return a;
}

/* Detach member key of obj and return it as a fresh node, or NULL. */
static struct fj_node *
take(struct fj_node *obj, const char *key)
{
	struct fj_node *m = fj_get(obj, key);

	if (m == NULL)
		return NULL;
	fj_remove(obj, key);
	m->next = NULL;
	m->key = NULL;
	m->keylen = 0;
	return m;
}

/* A CodeableConcept {coding: [{system, code, display}]}. */
static struct fj_node *
cc_new(struct xf_ctx *c, const char *sys, const char *code, const char *display)
{
	struct fj_node *cc = fj_new_object(c->doc);
	struct fj_node *arr = fj_new_array(c->doc);
	struct fj_node *cod = xf_coding(c, sys, code, display);

	if (cc == NULL || arr == NULL || cod == NULL)
		return NULL;
	fj_append(arr, cod);
	if (fj_set(c->doc, cc, "coding", arr) != GW_OK)
		return NULL;
	return cc;
}

/* role_refs on member sub of each element of array obj[key]. */
static enum gw_err
role_refs_in(struct xf_ctx *c, struct fj_node *obj, const char *key,
	     const char *sub)
{
	struct fj_node *arr = fj_get(obj, key);
	size_t i = 0;
	enum gw_err e;

	if (arr == NULL || arr->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *k = arr->u.kids.first; k != NULL;
	     k = k->next, i++) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "%s[%zu].", key, i);
		if ((e = xf_role_refs(c, k, sub, prefix)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* Elements that exist in one version only and have no counterpart:
 * left out and reported when converting from that version. */
static const struct xf_only_in only_in[] = {
    {"Encounter", "basedOn", RULES_R4},
    {"Encounter", "serviceType", RULES_R4},
    {"Encounter", "incomingReferral", RULES_STU3},
    {"Procedure", "recorder", RULES_R4},
    {"Procedure", "asserter", RULES_R4},
    {"Procedure", "instantiatesUri", RULES_R4},
    {"Procedure", "performedString", RULES_R4},
    {"Procedure", "performedAge", RULES_R4},
    {"Procedure", "performedRange", RULES_R4},
    {"Goal", "achievementStatus", RULES_R4},
    {"Communication", "topic", RULES_R4},
    {"Communication", "inResponseTo", RULES_R4},
    {"Communication", "priority", RULES_R4},
    {"Communication", "instantiatesUri", RULES_R4},
    {"CommunicationRequest", "statusReason", RULES_R4},
    {"Device", "statusReason", RULES_R4},
    {"Device", "distinctIdentifier", RULES_R4},
    {"Device", "serialNumber", RULES_R4},
    {"Device", "partNumber", RULES_R4},
    {"Device", "specialization", RULES_R4},
    {"Device", "property", RULES_R4},
    {"Device", "parent", RULES_R4},
    {"Device", "definition", RULES_R4},
    {"DeviceUseStatement", "basedOn", RULES_R4},
    {"DeviceUseStatement", "derivedFrom", RULES_R4},
    {"DeviceUseStatement", "statusReason", RULES_R4},
    {NULL, NULL, RULES_R4},
};

/* R4 0.1.3 ext-EncounterReference: no STU3 element holds the Encounter
 * of a Goal or DeviceUseStatement; each is left out and reported at its
 * index. */
static enum gw_err
drop_encounter_ext(struct xf_ctx *c, struct fj_node *res, const char *type)
{
	struct fj_node *arr = fj_get(res, "extension");
	struct fj_node *k, *next;
	size_t i = 0;
	enum gw_err e;

	if (c->to != RULES_STU3 || arr == NULL || arr->type != FJ_ARRAY)
		return GW_OK;
	for (k = arr->u.kids.first; k != NULL; k = next, i++) {
		char rel[48];

		next = k->next;
		if (!fj_str_eq(fj_get(k, "url"), ENC_REF_URL))
			continue;
		snprintf(rel, sizeof(rel), "extension[%zu]", i);
		if ((e = xf_loss(c, rel,
				 "STU3 %s has no element for its Encounter; "
				 "the ext-EncounterReference extension is "
				 "left out",
				 type)) != GW_OK)
			return e;
		xf_arr_remove(arr, k);
	}
	if (arr->u.kids.count == 0)
		fj_remove(res, "extension");
	return GW_OK;
}

/* A code renamed between the versions; tables end with {NULL, NULL}. */
struct code_map {
	const char *r4;
	const char *stu3;
};

/* The code s maps to in c->to, or s itself. */
static const char *
code_to(const struct xf_ctx *c, const struct code_map *m, const char *s)
{
	for (; m->r4 != NULL; m++) {
		if (c->to == RULES_STU3 && strcmp(m->r4, s) == 0)
			return m->stu3;
		if (c->to == RULES_R4 && strcmp(m->stu3, s) == 0)
			return m->r4;
	}
	return s;
}

/* Map the code in res[key] in place. */
static enum gw_err
map_code(struct xf_ctx *c, struct fj_node *res, const char *key,
	 const struct code_map *m)
{
	const char *s = fj_get_str(res, key);
	const char *t;

	if (s == NULL || (t = code_to(c, m, s)) == s)
		return GW_OK;
	return xf_set_str(c, res, key, t);
}

/*
 * Event status R4 <-> STU3 (Procedure, Communication): R4 "not-done" is
 * STU3's notDone flag (with status "unknown": STU3 says nothing more of
 * a procedure that did not happen); on-hold <-> suspended, stopped <->
 * aborted; statusReason <-> notDoneReason.
 */
static const struct code_map event_status[] = {
    {"on-hold", "suspended"},
    {"stopped", "aborted"},
    {NULL, NULL},
};

static enum gw_err
event_status_rule(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *v;
	enum gw_err e;

	if (c->to == RULES_STU3) {
		if (fj_str_eq(fj_get(res, "status"), "not-done")) {
			if ((v = fj_new_bool(c->doc, true)) == NULL)
				return GW_NOMEM;
			if ((e = fj_set(c->doc, res, "notDone", v)) != GW_OK ||
			    (e = xf_set_str(c, res, "status", "unknown")) !=
				GW_OK)
				return e;
			xf_rename(res, "statusReason", "notDoneReason");
			return GW_OK;
		}
		if (fj_get(res, "statusReason") != NULL) {
			fj_remove(res, "statusReason");
			if ((e = xf_loss(c, "statusReason",
					 "STU3 has a reason only for what was "
					 "not done; statusReason is left "
					 "out")) != GW_OK)
				return e;
		}
		return map_code(c, res, "status", event_status);
	}
	v = fj_get(res, "notDone");
	if (v != NULL && v->type == FJ_BOOL && v->u.b) {
		fj_remove(res, "notDone");
		xf_rename(res, "notDoneReason", "statusReason");
		return xf_set_str(c, res, "status", "not-done");
	}
	fj_remove(res, "notDone");
	return map_code(c, res, "status", event_status);
}

/* ---- Encounter ---- */

/*
 * R4 reasonReference (the ACP Procedure the encounter was for) <-> STU3
 * diagnosis.condition; reasonCode <-> reason; diagnosis.use <-> role;
 * participant.individual PractitionerRole <-> Practitioner + extension.
 */
static enum gw_err
enc_to_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *rr = take(res, "reasonReference");
	struct fj_node *diag = fj_get(res, "diagnosis");
	struct fj_node *loc = fj_get(res, "location");
	struct fj_node *app = fj_get(res, "appointment");
	size_t i = 0;
	enum gw_err e;

	if (diag != NULL && diag->type == FJ_ARRAY)
		for (struct fj_node *k = diag->u.kids.first; k != NULL;
		     k = k->next)
			xf_rename(k, "use", "role");
	if (rr != NULL && rr->type == FJ_ARRAY) {
		struct fj_node *k, *next;

		if ((diag = get_array(c, res, "diagnosis")) == NULL)
			return GW_NOMEM;
		for (k = rr->u.kids.first; k != NULL; k = next) {
			struct fj_node *d = fj_new_object(c->doc);

			next = k->next;
			if (d == NULL ||
			    fj_set(c->doc, d, "condition", k) != GW_OK)
				return GW_NOMEM;
			fj_append(diag, d);
		}
	}
	xf_rename(res, "reasonCode", "reason");
	if (loc != NULL && loc->type == FJ_ARRAY)
		for (struct fj_node *k = loc->u.kids.first; k != NULL;
		     k = k->next, i++) {
			char rel[48];

			if (fj_get(k, "physicalType") == NULL)
				continue;
			fj_remove(k, "physicalType");
			snprintf(rel, sizeof(rel), "location[%zu].physicalType",
				 i);
			if ((e = xf_loss(c, rel,
					 "STU3 has no location.physicalType; "
					 "left out")) != GW_OK)
				return e;
		}
	/* STU3 appointment is 0..1 */
	if (app != NULL && app->type == FJ_ARRAY) {
		struct fj_node *first = app->u.kids.first;

		if (app->u.kids.count > 1 &&
		    (e = xf_loss(c, "appointment",
				 "STU3 holds one appointment; %zu more are "
				 "left out",
				 app->u.kids.count - 1)) != GW_OK)
			return e;
		if (first == NULL)
			fj_remove(res, "appointment");
		else if ((e = fj_set(c->doc, res, "appointment", first)) !=
			 GW_OK)
			return e;
	}
	return GW_OK;
}

static enum gw_err
enc_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *diag = fj_get(res, "diagnosis");
	struct fj_node *app = fj_get(res, "appointment");
	enum gw_err e;

	if (diag != NULL && diag->type == FJ_ARRAY) {
		struct fj_node *rr = NULL, *k, *next;

		for (k = diag->u.kids.first; k != NULL; k = next) {
			struct fj_node *cond = fj_get(k, "condition");

			next = k->next;
			xf_rename(k, "role", "use");
			/* a bare condition is what R4 calls the reason;
			   one with a use or rank stays a diagnosis */
			if (cond == NULL || k->u.kids.count != 1)
				continue;
			if (rr == NULL &&
			    (rr = get_array(c, res, "reasonReference")) == NULL)
				return GW_NOMEM;
			xf_arr_remove(diag, k);
			fj_remove(k, "condition");
			fj_append(rr, cond);
		}
		if (diag->u.kids.count == 0)
			fj_remove(res, "diagnosis");
	}
	xf_rename(res, "reason", "reasonCode");
	if (app != NULL && app->type == FJ_OBJECT) {
		struct fj_node *arr = fj_new_array(c->doc);

		fj_remove(res, "appointment");
		if (arr == NULL)
			return GW_NOMEM;
		fj_append(arr, app);
		if ((e = fj_set(c->doc, res, "appointment", arr)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* obj[key] = an object holding only a data-absent-reason "unknown"
 * extension: the way FHIR marks a required element with no value (for a
 * primitive, its "_key" twin). */
static enum gw_err
set_absent(struct xf_ctx *c, struct fj_node *obj, const char *key)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *arr = fj_new_array(c->doc);
	struct fj_node *dar = xf_dar(c, "unknown");

	if (o == NULL || arr == NULL || dar == NULL)
		return GW_NOMEM;
	fj_append(arr, dar);
	if (fj_set(c->doc, o, "extension", arr) != GW_OK)
		return GW_NOMEM;
	return fj_set(c->doc, obj, key, o);
}

/* zib-Encounter (STU3) requires subject and period.start, R4 neither. */
static enum gw_err
enc_required_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *per = fj_get(res, "period");
	enum gw_err e;

	/* an Encounter claiming no profile is not taken for ACP-Encounter
	   by the validator (the profile has no fixed pattern) */
	if (!xf_has_profile(res, S3 "ACP-Encounter"))
		return GW_OK;
	if (fj_get(res, "subject") == NULL) {
		if ((e = set_absent(c, res, "subject")) != GW_OK)
			return e;
		if ((e = xf_loss(c, "subject",
				 "STU3 ACP-Encounter requires subject; marked "
				 "with data-absent-reason unknown")) != GW_OK)
			return e;
	}
	if (per != NULL && per->type == FJ_OBJECT &&
	    fj_get(per, "start") == NULL && fj_get(per, "_start") == NULL) {
		if ((e = set_absent(c, per, "_start")) != GW_OK)
			return e;
		if ((e = xf_loss(c, "period.start",
				 "STU3 ACP-Encounter requires period.start; "
				 "marked with data-absent-reason unknown")) !=
		    GW_OK)
			return e;
	}
	return GW_OK;
}

static enum gw_err
rule_encounter(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Encounter")) != GW_OK ||
	    (e = role_refs_in(c, res, "participant", "individual")) != GW_OK)
		return e;
	if (c->to == RULES_R4)
		return enc_to_r4(c, res);
	if ((e = enc_to_stu3(c, res)) != GW_OK)
		return e;
	return enc_required_stu3(c, res);
}

/* R4 instantiatesCanonical (canonical[]) <-> STU3 definition
 * (Reference[]): a canonical is a Reference with only "reference". */
static enum gw_err
canonical_refs(struct xf_ctx *c, struct fj_node *res, const char *r4key,
	       const char *stu3key)
{
	const char *from = c->to == RULES_STU3 ? r4key : stu3key;
	const char *to = c->to == RULES_STU3 ? stu3key : r4key;
	struct fj_node *src = take(res, from);
	struct fj_node *out;
	size_t i = 0;
	enum gw_err e;

	if (src == NULL || src->type != FJ_ARRAY)
		return GW_OK;
	if ((out = fj_new_array(c->doc)) == NULL)
		return GW_NOMEM;
	for (struct fj_node *k = src->u.kids.first; k != NULL;
	     k = k->next, i++) {
		const char *r = k->type == FJ_STRING
				    ? k->u.str.s
				    : fj_get_str(k, "reference");
		struct fj_node *n, *s;
		char rel[48];

		if (r == NULL ||
		    (k->type == FJ_OBJECT && k->u.kids.count != 1)) {
			snprintf(rel, sizeof(rel), "%s[%zu]", from, i);
			if ((e = xf_loss(c, rel,
					 "%s holds a canonical URL only; this "
					 "reference is left out",
					 r4key)) != GW_OK)
				return e;
			continue;
		}
		if ((s = fj_new_string(c->doc, r)) == NULL)
			return GW_NOMEM;
		n = s;
		if (c->to == RULES_STU3 &&
		    ((n = fj_new_object(c->doc)) == NULL ||
		     fj_set(c->doc, n, "reference", s) != GW_OK))
			return GW_NOMEM;
		fj_append(out, n);
	}
	if (out->u.kids.count == 0)
		return GW_OK;
	return fj_set(c->doc, res, to, out);
}

/* ---- Procedure ---- */

static enum gw_err
rule_procedure(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *perf = fj_get(res, "performer");
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Procedure")) != GW_OK ||
	    (e = event_status_rule(c, res)) != GW_OK ||
	    (e = role_refs_in(c, res, "performer", "actor")) != GW_OK ||
	    (e = canonical_refs(c, res, "instantiatesCanonical",
				"definition")) != GW_OK)
		return e;
	if (perf != NULL && perf->type == FJ_ARRAY)
		for (struct fj_node *k = perf->u.kids.first; k != NULL;
		     k = k->next)
			xf_rename(k, c->to == RULES_STU3 ? "function" : "role",
				  c->to == RULES_STU3 ? "role" : "function");
	if (c->to != RULES_STU3 ||
	    !xf_is_profile(res, S3 "ACP-Procedure", "code", "713603004"))
		return GW_OK;
	/* STU3 ACP-Procedure (zib-Procedure) allows a Practitioner or an
	   Organization as performer; R4 also the patient, contacts and
	   devices. A reference of unknown type is kept. */
	if (perf != NULL && perf->type == FJ_ARRAY) {
		struct fj_node *k, *next;
		size_t i = 0;

		for (k = perf->u.kids.first; k != NULL; k = next, i++) {
			char rel[48], t[32];

			next = k->next;
			xf_ref_type(c, fj_get(k, "actor"), t, sizeof(t));
			if (t[0] == '\0' || strcmp(t, "Practitioner") == 0 ||
			    strcmp(t, "Organization") == 0)
				continue;
			snprintf(rel, sizeof(rel), "performer[%zu]", i);
			if ((e = xf_loss(c, rel,
					 "STU3 ACP-Procedure admits only a "
					 "Practitioner or Organization as "
					 "performer; this one is left out")) !=
			    GW_OK)
				return e;
			xf_arr_remove(perf, k);
		}
		if (perf->u.kids.count == 0)
			fj_remove(res, "performer");
	}
	/* zib-Procedure requires category; IKNL's STU3 examples carry
	   SNOMED 11429006 for the ACP conversation. */
	if (fj_get(res, "category") == NULL) {
		struct fj_node *cc =
		    cc_new(c, SNOMED, "11429006", "Consultation (procedure)");

		if (cc == NULL)
			return GW_NOMEM;
		if ((e = fj_set(c->doc, res, "category", cc)) != GW_OK)
			return e;
		return xf_loss(c, "category",
			       "STU3 ACP-Procedure requires category; filled "
			       "with SNOMED 11429006 (Consultation)");
	}
	return GW_OK;
}

/* ---- Goal ---- */

/*
 * R4 lifecycleStatus (+ achievementStatus) <-> STU3 status. The STU3
 * codes that say how far the goal is (on-target, ahead-of-target,
 * behind-target, sustaining) are R4 "active" with that achievement;
 * STU3 in-progress is R4 active alone, achieved is completed.
 */
static const struct {
	const char *stu3, *r4, *achievement;
} goal_status[] = {
    {"in-progress", "active", NULL},
    {"on-target", "active", "in-progress"},
    {"ahead-of-target", "active", "improving"},
    {"behind-target", "active", "worsening"},
    {"sustaining", "active", "sustaining"},
    {"achieved", "completed", NULL},
};

static enum gw_err
goal_to_stu3(struct xf_ctx *c, struct fj_node *res)
{
	const char *life = fj_get_str(res, "lifecycleStatus");
	struct fj_node *ach = fj_get(res, "achievementStatus");
	struct fj_node *cod = fj_get(ach, "coding");
	const char *code = NULL;
	const char *st;
	bool carried = false;

	if (life == NULL)
		return GW_OK;
	if (cod != NULL && cod->type == FJ_ARRAY)
		for (struct fj_node *k = cod->u.kids.first; k != NULL;
		     k = k->next)
			if (fj_str_eq(fj_get(k, "system"), GOAL_ACHIEVEMENT))
				code = fj_get_str(k, "code");
	st = life;
	for (size_t i = 0; i < sizeof(goal_status) / sizeof(goal_status[0]);
	     i++) {
		const char *a = goal_status[i].achievement;

		if (strcmp(goal_status[i].r4, life) != 0)
			continue;
		if (a == NULL && !carried)
			st = goal_status[i].stu3;
		else if (a != NULL && code != NULL && strcmp(a, code) == 0) {
			st = goal_status[i].stu3;
			carried = true;
		}
	}
	/* the status carries the achievement when it is all there is;
	   anything more is left out and reported by drop_only */
	if (carried && cod->u.kids.count == 1 && ach->u.kids.count == 1)
		fj_remove(res, "achievementStatus");
	fj_remove(res, "lifecycleStatus");
	return xf_set_str(c, res, "status", st);
}

static enum gw_err
goal_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	const char *st = fj_get_str(res, "status");
	const char *life;
	const char *ach = NULL;
	enum gw_err e;

	if (st == NULL)
		return GW_OK;
	life = st;
	for (size_t i = 0; i < sizeof(goal_status) / sizeof(goal_status[0]);
	     i++)
		if (strcmp(goal_status[i].stu3, st) == 0) {
			life = goal_status[i].r4;
			ach = goal_status[i].achievement;
		}
	fj_remove(res, "status");
	if ((e = xf_set_str(c, res, "lifecycleStatus", life)) != GW_OK)
		return e;
	if (ach != NULL && fj_get(res, "achievementStatus") == NULL) {
		struct fj_node *cc = cc_new(c, GOAL_ACHIEVEMENT, ach, NULL);

		if (cc == NULL)
			return GW_NOMEM;
		if ((e = fj_set(c->doc, res, "achievementStatus", cc)) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* R4 Goal.target 0..* <-> STU3 0..1 (the first; more reported). */
static enum gw_err
goal_target(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *t = fj_get(res, "target");
	enum gw_err e;

	if (t == NULL)
		return GW_OK;
	if (c->to == RULES_R4) {
		struct fj_node *arr;

		if (t->type != FJ_OBJECT)
			return GW_OK;
		if ((arr = fj_new_array(c->doc)) == NULL)
			return GW_NOMEM;
		fj_remove(res, "target");
		fj_append(arr, t);
		return fj_set(c->doc, res, "target", arr);
	}
	if (t->type != FJ_ARRAY)
		return GW_OK;
	if (t->u.kids.count > 1 &&
	    (e = xf_loss(c, "target",
			 "STU3 Goal holds one target; %zu more are left out",
			 t->u.kids.count - 1)) != GW_OK)
		return e;
	if (t->u.kids.first == NULL) {
		fj_remove(res, "target");
		return GW_OK;
	}
	return fj_set(c->doc, res, "target", t->u.kids.first);
}

static enum gw_err
rule_goal(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e;

	if ((e = goal_target(c, res)) != GW_OK)
		return e;

	if ((e = drop_encounter_ext(c, res, "Goal")) != GW_OK ||
	    (e = xf_role_refs(c, res, "expressedBy", "")) != GW_OK)
		return e;
	if (c->to == RULES_R4) {
		/* R4 Goal.subject is 1..1, STU3's 0..1 */
		if (fj_get(res, "subject") == NULL) {
			if ((e = set_absent(c, res, "subject")) != GW_OK)
				return e;
			if ((e = xf_loss(c, "subject",
					 "R4 Goal requires subject; marked "
					 "with data-absent-reason unknown")) !=
			    GW_OK)
				return e;
		}
		return goal_to_r4(c, res);
	}
	if ((e = goal_to_stu3(c, res)) != GW_OK ||
	    (e = xf_drop_only(c, res, only_in, "Goal")) != GW_OK)
		return e;
	/* STU3 ACP-MedicalPolicyGoal requires category, fixed to SNOMED
	   713603004 (advance care planning); the R4 profile has none. A
	   Goal that claims no profile is left alone: without that category
	   the STU3 validator does not take it for the ACP profile. */
	if (xf_has_profile(res, S3 "ACP-MedicalPolicyGoal") &&
	    fj_get(res, "category") == NULL) {
		struct fj_node *cc =
		    cc_new(c, SNOMED, "713603004", "advance care planning");
		struct fj_node *arr = fj_new_array(c->doc);

		if (cc == NULL || arr == NULL)
			return GW_NOMEM;
		fj_append(arr, cc);
		if ((e = fj_set(c->doc, res, "category", arr)) != GW_OK)
			return e;
		return xf_loss(c, "category",
			       "STU3 ACP-MedicalPolicyGoal requires category; "
			       "filled with its fixed code SNOMED 713603004");
	}
	return GW_OK;
}

/* ---- Communication, CommunicationRequest ---- */

static enum gw_err
rule_communication(struct xf_ctx *c, struct fj_node *res)
{
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Communication")) != GW_OK ||
	    (e = event_status_rule(c, res)) != GW_OK ||
	    (e = xf_role_refs(c, res, "sender", "")) != GW_OK ||
	    (e = xf_role_refs(c, res, "recipient", "")) != GW_OK ||
	    (e = canonical_refs(c, res, "instantiatesCanonical",
				"definition")) != GW_OK)
		return e;
	/* STU3 topic (Reference[]) is what R4 calls about; R4's coded
	   topic was left out above. */
	if (c->to == RULES_STU3)
		xf_rename(res, "about", "topic");
	else
		xf_rename(res, "topic", "about");
	return GW_OK;
}

static const struct code_map request_status[] = {
    {"on-hold", "suspended"},
    {"revoked", "cancelled"},
    {NULL, NULL},
};

/* R4 requester (Reference) <-> STU3 requester.agent (+ onBehalfOf). */
static enum gw_err
commreq_requester(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *rq = fj_get(res, "requester");
	struct fj_node *agent, *o;
	enum gw_err e;

	if (rq == NULL || rq->type != FJ_OBJECT)
		return GW_OK;
	if (c->to == RULES_STU3) {
		if ((e = xf_role_ref(c, rq, "requester")) != GW_OK)
			return e;
		if ((o = fj_new_object(c->doc)) == NULL)
			return GW_NOMEM;
		fj_remove(res, "requester");
		rq->next = NULL;
		if ((e = fj_set(c->doc, o, "agent", rq)) != GW_OK)
			return e;
		return fj_set(c->doc, res, "requester", o);
	}
	agent = fj_get(rq, "agent");
	if (fj_get(rq, "onBehalfOf") != NULL &&
	    (e = xf_loss(c, "requester.onBehalfOf",
			 "R4 CommunicationRequest.requester is one "
			 "Reference; onBehalfOf is left out")) != GW_OK)
		return e;
	fj_remove(res, "requester");
	if (agent == NULL || agent->type != FJ_OBJECT)
		return GW_OK;
	if ((e = xf_role_ref(c, agent, "requester.agent")) != GW_OK)
		return e;
	return fj_set(c->doc, res, "requester", agent);
}

static enum gw_err
rule_commreq(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *dnp = fj_get(res, "doNotPerform");
	enum gw_err e;

	/* a modifier: leaving it out would ask for what was forbidden */
	if (c->to == RULES_STU3 && dnp != NULL) {
		if (dnp->type == FJ_BOOL && dnp->u.b)
			return xf_refuse(c, "doNotPerform",
					 "STU3 CommunicationRequest cannot say "
					 "that something must not be done");
		fj_remove(res, "doNotPerform");
	}
	if ((e = xf_drop_only(c, res, only_in, "CommunicationRequest")) !=
		GW_OK ||
	    (e = map_code(c, res, "status", request_status)) != GW_OK ||
	    (e = xf_role_refs(c, res, "sender", "")) != GW_OK ||
	    (e = xf_role_refs(c, res, "recipient", "")) != GW_OK ||
	    (e = commreq_requester(c, res)) != GW_OK)
		return e;
	if (c->to == RULES_STU3)
		xf_rename(res, "about", "topic");
	else
		xf_rename(res, "topic", "about");
	return GW_OK;
}

/* ---- Device ---- */

/*
 * R4 udiCarrier[] <-> STU3 udi (0..1, the first); R4 version[].value <->
 * STU3 version (the first); R4 modelNumber <-> STU3 model.
 */
static enum gw_err
rule_device(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *n;
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "Device")) != GW_OK)
		return e;
	if (c->to == RULES_R4) {
		struct fj_node *arr;

		xf_rename(res, "model", "modelNumber");
		if ((n = take(res, "udi")) != NULL) {
			if ((arr = fj_new_array(c->doc)) == NULL)
				return GW_NOMEM;
			if (fj_get(n, "name") != NULL) {
				fj_remove(n, "name");
				if ((e = xf_loss(c, "udi.name",
						 "R4 udiCarrier has no name; "
						 "left out")) != GW_OK)
					return e;
			}
			fj_append(arr, n);
			if ((e = fj_set(c->doc, res, "udiCarrier", arr)) !=
			    GW_OK)
				return e;
		}
		if ((n = take(res, "version")) != NULL) {
			struct fj_node *o = fj_new_object(c->doc);

			if ((arr = fj_new_array(c->doc)) == NULL || o == NULL ||
			    fj_set(c->doc, o, "value", n) != GW_OK)
				return GW_NOMEM;
			fj_append(arr, o);
			if ((e = fj_set(c->doc, res, "version", arr)) != GW_OK)
				return e;
		}
		return GW_OK;
	}
	xf_rename(res, "modelNumber", "model");
	if ((n = take(res, "udiCarrier")) != NULL && n->type == FJ_ARRAY &&
	    n->u.kids.first != NULL) {
		if (n->u.kids.count > 1 &&
		    (e = xf_loss(c, "udiCarrier",
				 "STU3 holds one UDI; %zu more are left out",
				 n->u.kids.count - 1)) != GW_OK)
			return e;
		if ((e = fj_set(c->doc, res, "udi", n->u.kids.first)) != GW_OK)
			return e;
	}
	if ((n = take(res, "version")) != NULL && n->type == FJ_ARRAY &&
	    n->u.kids.first != NULL) {
		struct fj_node *v = fj_get(n->u.kids.first, "value");

		if (n->u.kids.count > 1 || fj_get(n->u.kids.first, "type") ||
		    fj_get(n->u.kids.first, "component"))
			if ((e = xf_loss(c, "version",
					 "STU3 Device.version is one string: "
					 "the first version's value; type, "
					 "component and further versions are "
					 "left out")) != GW_OK)
				return e;
		if (v != NULL &&
		    (e = fj_set(c->doc, res, "version", v)) != GW_OK)
			return e;
	}
	if (fj_get(res, "deviceName") != NULL) {
		fj_remove(res, "deviceName");
		if ((e = xf_loss(c, "deviceName",
				 "STU3 Device has no deviceName; left "
				 "out")) != GW_OK)
			return e;
	}
	return GW_OK;
}

/* ---- DeviceUseStatement ---- */

/*
 * STU3 indication[] (CodeableConcept, with the zib2017 problem as an
 * extension) <-> R4 reasonCode[] + reasonReference[]; STU3 whenUsed ->
 * R4 timingPeriod when the statement has no timing; the zib
 * HealthProfessional extension's reference through xf_role_ref.
 */
static enum gw_err
dus_to_r4(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *ind = take(res, "indication");
	enum gw_err e;

	if (ind != NULL && ind->type == FJ_ARRAY) {
		struct fj_node *k, *next;

		for (k = ind->u.kids.first; k != NULL; k = next) {
			struct fj_node *x, *arr;

			next = k->next;
			while ((x = xf_ext_take(k, DUS_PROBLEM_URL, false)) !=
			       NULL) {
				struct fj_node *v = fj_get(x, "valueReference");

				if (v == NULL)
					continue;
				if ((arr = get_array(
					 c, res, "reasonReference")) == NULL)
					return GW_NOMEM;
				fj_remove(x, "valueReference");
				fj_append(arr, v);
			}
			if (k->u.kids.count == 0)
				continue;
			if ((arr = get_array(c, res, "reasonCode")) == NULL)
				return GW_NOMEM;
			fj_append(arr, k);
		}
	}
	{
		struct fj_node *x, *arr;

		while ((x = xf_ext_take(res, DUS_REASONREF_URL, false)) !=
		       NULL) {
			struct fj_node *v = fj_get(x, "valueReference");

			if (v == NULL)
				continue;
			if ((arr = get_array(c, res, "reasonReference")) ==
			    NULL)
				return GW_NOMEM;
			fj_remove(x, "valueReference");
			fj_append(arr, v);
		}
	}
	if (fj_get(res, "whenUsed") != NULL) {
		if (fj_get(res, "timingPeriod") == NULL &&
		    fj_get(res, "timingDateTime") == NULL &&
		    fj_get(res, "timingTiming") == NULL) {
			xf_rename(res, "whenUsed", "timingPeriod");
			return GW_OK;
		}
		fj_remove(res, "whenUsed");
		if ((e = xf_loss(c, "whenUsed",
				 "R4 has no whenUsed beside the timing; left "
				 "out")) != GW_OK)
			return e;
	}
	return GW_OK;
}

static enum gw_err
dus_to_stu3(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *rc = take(res, "reasonCode");
	struct fj_node *rr = take(res, "reasonReference");
	struct fj_node *ind = NULL, *k, *next;
	enum gw_err e;

	if ((rc != NULL || rr != NULL) &&
	    (ind = get_array(c, res, "indication")) == NULL)
		return GW_NOMEM;
	if (rc != NULL && rc->type == FJ_ARRAY)
		for (k = rc->u.kids.first; k != NULL; k = next) {
			next = k->next;
			fj_append(ind, k);
		}
	if (rr != NULL && rr->type == FJ_ARRAY)
		for (k = rr->u.kids.first; k != NULL; k = next) {
			struct fj_node *cc = fj_new_object(c->doc);

			next = k->next;
			k->next = NULL;
			k->key = NULL;
			if (cc == NULL)
				return GW_NOMEM;
			if ((e = xf_ext_add(c, cc, DUS_PROBLEM_URL, false,
					    "valueReference", k)) != GW_OK)
				return e;
			fj_append(ind, cc);
		}
	return GW_OK;
}

static enum gw_err
rule_dus(struct xf_ctx *c, struct fj_node *res)
{
	const char *hp = c->to == RULES_R4 ? DUS_HP_URL_R4
					   : NICTIZ
			     "zib-MedicalDevice-Practitioner";
	struct fj_node *exts = fj_get(res, "extension");
	enum gw_err e;

	/* before anything is removed: the report names source indexes */
	if (exts != NULL && exts->type == FJ_ARRAY) {
		size_t i = 0;

		struct fj_node *x, *next;

		for (x = exts->u.kids.first; x != NULL; x = next, i++) {
			char rel[64], t[32];

			next = x->next;
			if (!fj_str_eq(fj_get(x, "url"), hp))
				continue;
			snprintf(rel, sizeof(rel),
				 "extension[%zu].valueReference", i);
			if ((e = xf_role_ref(c, fj_get(x, "valueReference"),
					     rel)) != GW_OK)
				return e;
			/* zib2020 names the health professional by role only;
			   a zib2017 Practitioner without its role has no
			   place there */
			xf_ref_type(c, fj_get(x, "valueReference"), t,
				    sizeof(t));
			if (c->to != RULES_R4 || t[0] == '\0' ||
			    strcmp(t, "PractitionerRole") == 0)
				continue;
			snprintf(rel, sizeof(rel), "extension[%zu]", i);
			if ((e = xf_loss(
				 c, rel,
				 "R4 ext-MedicalDevice.HealthProfessional "
				 "refers to a PractitionerRole; this %s "
				 "reference without its role is left out",
				 t)) != GW_OK)
				return e;
			xf_arr_remove(exts, x);
		}
		if (exts->u.kids.count == 0)
			fj_remove(res, "extension");
	}
	if ((e = xf_drop_only(c, res, only_in, "DeviceUseStatement")) !=
		GW_OK ||
	    (e = drop_encounter_ext(c, res, "DeviceUseStatement")) != GW_OK ||
	    (e = xf_role_refs(c, res, "source", "")) != GW_OK)
		return e;
	return c->to == RULES_R4 ? dus_to_r4(c, res) : dus_to_stu3(c, res);
}

/* ---- QuestionnaireResponse ---- */

/* R4 questionnaire (canonical) <-> STU3 questionnaire (Reference);
 * STU3 parent <-> R4 partOf; author/source PractitionerRole. */
static enum gw_err
rule_qr(struct xf_ctx *c, struct fj_node *res)
{
	struct fj_node *q = fj_get(res, "questionnaire");
	enum gw_err e;

	if ((e = xf_drop_only(c, res, only_in, "QuestionnaireResponse")) !=
		GW_OK ||
	    (e = xf_role_refs(c, res, "author", "")) != GW_OK ||
	    (e = xf_role_refs(c, res, "source", "")) != GW_OK)
		return e;
	if (c->to == RULES_STU3) {
		xf_rename(res, "partOf", "parent");
		if (q != NULL && q->type == FJ_STRING) {
			struct fj_node *o = fj_new_object(c->doc);
			struct fj_node *s = fj_new_string(c->doc, q->u.str.s);

			if (o == NULL || s == NULL ||
			    fj_set(c->doc, o, "reference", s) != GW_OK)
				return GW_NOMEM;
			return fj_set(c->doc, res, "questionnaire", o);
		}
		return GW_OK;
	}
	xf_rename(res, "parent", "partOf");
	if (q != NULL && q->type == FJ_OBJECT) {
		const char *r = fj_get_str(q, "reference");
		struct fj_node *s;

		if (q->u.kids.count > (r != NULL ? 1u : 0u) &&
		    (e = xf_loss(c, "questionnaire",
				 "R4 questionnaire is a canonical URL; the "
				 "reference's other elements are left "
				 "out")) != GW_OK)
			return e;
		if (r == NULL) {
			fj_remove(res, "questionnaire");
			return GW_OK;
		}
		if ((s = fj_new_string(c->doc, r)) == NULL)
			return GW_NOMEM;
		return fj_set(c->doc, res, "questionnaire", s);
	}
	return GW_OK;
}

const struct xf_type xf_types_care[] = {
    {"Encounter", rule_encounter},
    {"Procedure", rule_procedure},
    {"Goal", rule_goal},
    {"Communication", rule_communication},
    {"CommunicationRequest", rule_commreq},
    {"Device", rule_device},
    {"DeviceUseStatement", rule_dus},
    {"QuestionnaireResponse", rule_qr},
    {NULL, NULL},
};
