/*
 * search_params: the resource types and search parameters of the PZP
 * Provider (the IG's ACP-CapabilityStatementProvider), with the element
 * paths of their R4 SearchParameter expressions, and the
 * CapabilityStatement rest.resource array built from them.
 */
#include <stdio.h>
#include <string.h>

#include "search_impl.h"

#define SP_BASE	 "http://hl7.org/fhir/SearchParameter/"
#define ACP_BASE "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"

const struct sp_def sp_def_id = {"_id", "id",	  NULL, SP_BASE "Resource-id",
				 NULL,	SP_TOKEN, false};
const struct sp_def sp_def_last_updated = {
    "_lastUpdated",
    NULL,
    NULL,
    SP_BASE "Resource-lastUpdated",
    "Prefixes eq, ne, gt, lt, ge, le, sa, eb; a value without a "
    "zone is read as UTC.",
    SP_DATE,
    false};

/* patient: R4 clinical-patient is X.subject.where(resolve() is Patient)
 * for these types (Consent.patient, DeviceUseStatement.subject). */
#define PATIENT(path)                                                          \
	{                                                                      \
		"patient", path, "Patient", SP_BASE "clinical-patient", NULL,  \
		    SP_REFERENCE, false                                        \
	}
#define SUBJECT(type)                                                          \
	{                                                                      \
		"subject", "subject", NULL, SP_BASE type "-subject", NULL,     \
		    SP_REFERENCE, false                                        \
	}
#define TOKEN(name, path, def)                                                 \
	{                                                                      \
		name, path, NULL, def, NULL, SP_TOKEN, true                    \
	}
#define END                                                                    \
	{                                                                      \
		NULL, NULL, NULL, NULL, NULL, SP_TOKEN, false                  \
	}

static const struct sp_def patient_params[] = {
    {"identifier", "identifier", NULL, SP_BASE "Patient-identifier", NULL,
     SP_TOKEN, false},
    END};
static const struct sp_def encounter_params[] = {
    PATIENT("subject"),
    SUBJECT("Encounter"),
    {"reason-reference", "reasonReference", NULL,
     SP_BASE "Encounter-reason-reference",
     "Chained as reason-reference:Procedure.code=system|code.", SP_REFERENCE,
     false},
    END};
static const struct sp_def procedure_params[] = {
    PATIENT("subject"), SUBJECT("Procedure"),
    TOKEN("code", "code", SP_BASE "clinical-code"), END};
static const struct sp_def consent_params[] = {
    PATIENT("patient"), TOKEN("scope", "scope", SP_BASE "Consent-scope"),
    TOKEN("category", "category", SP_BASE "Consent-category"), END};
static const struct sp_def goal_params[] = {
    PATIENT("subject"),
    SUBJECT("Goal"),
    TOKEN("category", "category", SP_BASE "Goal-category"),
    /* R5's Goal-description, which the IG's data exchange page uses */
    {"description", "description", NULL, SP_BASE "Goal-description",
     "Defined from R5 on; the IG applies it to R4 (also :in).", SP_TOKEN, true},
    END};
static const struct sp_def observation_params[] = {
    PATIENT("subject"), SUBJECT("Observation"),
    TOKEN("code", "code", SP_BASE "clinical-code"), END};
static const struct sp_def dus_params[] = {
    PATIENT("subject"),
    SUBJECT("DeviceUseStatement"),
    {"device", "device", "Device", SP_BASE "DeviceUseStatement-device",
     "Chained as device.type=system|code or device.type:in=ValueSet.",
     SP_REFERENCE, false},
    END};
static const struct sp_def device_params[] = {
    {"type", "type", NULL, SP_BASE "Device-type", "Also type:in=ValueSet.",
     SP_TOKEN, true},
    END};
static const struct sp_def commreq_params[] = {
    PATIENT("subject"), SUBJECT("CommunicationRequest"),
    TOKEN("category", "category", SP_BASE "CommunicationRequest-category"),
    END};
static const struct sp_def comm_params[] = {
    PATIENT("subject"), SUBJECT("Communication"),
    TOKEN("category", "category", SP_BASE "Communication-category"),
    TOKEN(
	"reason-code", "reasonCode",
	"https://fhir.iknl.nl/fhir/SearchParameter/Communication-reason-code"),
    END};
static const struct sp_def qr_params[] = {
    PATIENT("subject"),
    SUBJECT("QuestionnaireResponse"),
    {"questionnaire", "questionnaire", "Questionnaire",
     SP_BASE "QuestionnaireResponse-questionnaire",
     "The Questionnaire's canonical URL (with or without |version).",
     SP_REFERENCE, false},
    END};
static const struct sp_def no_params[] = {END};

#define INC_END                                                                \
	{                                                                      \
		NULL, NULL, NULL                                               \
	}
static const struct sp_include no_incs[] = {INC_END};
static const struct sp_include encounter_incs[] = {
    {"reason-reference", "reasonReference", NULL}, INC_END};
static const struct sp_include procedure_incs[] = {
    {"encounter", "encounter", "Encounter"}, INC_END};
/* R4 Consent-actor: Consent.provision.actor.reference */
static const struct sp_include consent_incs[] = {
    {"actor", "provision.actor.reference", NULL}, INC_END};
static const struct sp_include dus_incs[] = {{"device", "device", "Device"},
					     INC_END};

static const char *const patient_prof[] = {ACP_BASE "ACP-Patient", NULL};
static const char *const encounter_prof[] = {ACP_BASE "ACP-Encounter", NULL};
static const char *const procedure_prof[] = {ACP_BASE "ACP-Procedure", NULL};
static const char *const consent_prof[] = {
    ACP_BASE "ACP-AdvanceDirective", ACP_BASE "ACP-TreatmentDirective", NULL};
static const char *const goal_prof[] = {ACP_BASE "ACP-MedicalPolicyGoal", NULL};
static const char *const observation_prof[] = {
    ACP_BASE "ACP-OrganDonationChoiceRegistration",
    ACP_BASE "ACP-SenseOfPurpose",
    ACP_BASE "ACP-PositionRegardingEuthanasia",
    ACP_BASE "ACP-PreferredPlaceOfDeath",
    ACP_BASE "ACP-SpecificCareWishes",
    NULL};
static const char *const dus_prof[] = {ACP_BASE "ACP-MedicalDevice", NULL};
static const char *const device_prof[] = {
    ACP_BASE "ACP-MedicalDevice.Product-ICD", NULL};
static const char *const commreq_prof[] = {
    ACP_BASE "ACP-InformRelativesRequest", NULL};
static const char *const related_prof[] = {ACP_BASE "ACP-ContactPerson", NULL};
static const char *const pract_prof[] = {
    ACP_BASE "ACP-HealthProfessional-Practitioner", NULL};
static const char *const role_prof[] = {
    ACP_BASE "ACP-HealthProfessional-PractitionerRole", NULL};
static const char *const no_prof[] = {NULL};

static const struct sp_type types[] = {
    {"Patient", true, patient_params, no_incs, patient_prof},
    {"Encounter", true, encounter_params, encounter_incs, encounter_prof},
    {"Procedure", true, procedure_params, procedure_incs, procedure_prof},
    {"Consent", true, consent_params, consent_incs, consent_prof},
    {"Goal", true, goal_params, no_incs, goal_prof},
    {"Observation", true, observation_params, no_incs, observation_prof},
    {"DeviceUseStatement", true, dus_params, dus_incs, dus_prof},
    {"Device", true, device_params, no_incs, device_prof},
    {"CommunicationRequest", true, commreq_params, no_incs, commreq_prof},
    {"Communication", true, comm_params, no_incs, no_prof},
    {"QuestionnaireResponse", true, qr_params, no_incs, no_prof},
    /* read only, as the IG has them */
    {"RelatedPerson", false, no_params, no_incs, related_prof},
    {"Practitioner", false, no_params, no_incs, pract_prof},
    {"PractitionerRole", false, no_params, no_incs, role_prof},
};

const struct sp_type *
sp_type_find(const char *type)
{
	size_t i;

	if (type == NULL)
		return NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].type, type) == 0)
			return &types[i];
	return NULL;
}

static bool
name_is(const char *def, const char *name, size_t len)
{
	return strlen(def) == len && memcmp(def, name, len) == 0;
}

const struct sp_def *
sp_def_find(const struct sp_type *t, const char *name, size_t len)
{
	const struct sp_def *d;

	if (name_is(sp_def_id.name, name, len))
		return &sp_def_id;
	if (name_is(sp_def_last_updated.name, name, len))
		return &sp_def_last_updated;
	if (t == NULL)
		return NULL;
	for (d = t->params; d->name != NULL; d++)
		if (name_is(d->name, name, len))
			return d;
	return NULL;
}

const struct sp_include *
sp_include_find(const struct sp_type *t, const char *name, size_t len)
{
	const struct sp_include *inc;

	if (t == NULL)
		return NULL;
	for (inc = t->incs; inc->name != NULL; inc++)
		if (name_is(inc->name, name, len))
			return inc;
	return NULL;
}

static const char *const kind_names[] = {"token", "reference", "date"};

/* Append {name, definition, type[, documentation]} to arr. */
static int
add_param(json_t *arr, const struct sp_def *d)
{
	json_t *p = json_pack("{s:s, s:s, s:s}", "name", d->name, "definition",
			      d->definition, "type", kind_names[d->kind]);

	if (p == NULL)
		return -1;
	if (d->doc != NULL &&
	    json_object_set_new(p, "documentation", json_string(d->doc)) != 0) {
		json_decref(p);
		return -1;
	}
	/* json_array_append_new steals p, also when it fails */
	return json_array_append_new(arr, p);
}

static json_t *
type_capability(const struct sp_type *t)
{
	json_t *r, *arr;
	const struct sp_def *d;
	const struct sp_include *inc;
	const char *const *prof;
	char incname[128];

	r = json_pack("{s:s, s:[{s:s}, {s:s}, {s:s}], s:s, s:b}", "type",
		      t->type, "interaction", "code", "read", "code", "vread",
		      "code", "history-instance", "versioning", "versioned",
		      "readHistory", 1);
	if (r == NULL)
		return NULL;
	if (t->profiles[0] != NULL) {
		if ((arr = json_array()) == NULL ||
		    json_object_set_new(r, "supportedProfile", arr) != 0)
			goto fail;
		for (prof = t->profiles; *prof != NULL; prof++)
			if (json_array_append_new(arr, json_string(*prof)))
				goto fail;
	}
	if (!t->search)
		return r;
	if (json_array_append_new(json_object_get(r, "interaction"),
				  json_pack("{s:s}", "code", "search-type")))
		goto fail;
	if (t->incs[0].name != NULL) {
		if ((arr = json_array()) == NULL ||
		    json_object_set_new(r, "searchInclude", arr) != 0)
			goto fail;
		for (inc = t->incs; inc->name != NULL; inc++) {
			snprintf(incname, sizeof(incname), "%s:%s", t->type,
				 inc->name);
			if (json_array_append_new(arr, json_string(incname)))
				goto fail;
		}
	}
	if ((arr = json_array()) == NULL ||
	    json_object_set_new(r, "searchParam", arr) != 0)
		goto fail;
	for (d = t->params; d->name != NULL; d++)
		if (add_param(arr, d) != 0)
			goto fail;
	if (add_param(arr, &sp_def_id) != 0 ||
	    add_param(arr, &sp_def_last_updated) != 0)
		goto fail;
	return r;
fail:
	json_decref(r);
	return NULL;
}

json_t *
search_capability(void)
{
	json_t *arr = json_array();
	size_t i;

	if (arr == NULL)
		return NULL;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		json_t *r = type_capability(&types[i]);

		/* json_array_append_new steals r (NULL fails) */
		if (r == NULL || json_array_append_new(arr, r) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}
