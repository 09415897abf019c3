/* Unit tests for the transform rules of the zib and care profiles
 * (transform_zib.c, transform_care.c): one table row per mapping rule,
 * each direction, with the report issue each loss must raise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"
#include "transform_impl.h"

/* The cases write JSON with single quotes (the data has none of its
 * own); this makes it JSON. Caller frees. */
static char *
dq(const char *s)
{
	char *t = strdup(s);

	if (t == NULL)
		abort();
	for (char *p = t; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return t;
}

static struct fj_doc *
parse(const char *text)
{
	char *t = dq(text);
	struct fj_doc *d = NULL;
	struct fj_error err;

	if (fj_parse(t, strlen(t), 0, &d, &err) != GW_OK)
		fail_msg("test input does not parse: %s: %s", err.msg, t);
	free(t);
	return d;
}

static char *
dump(const struct fj_node *n)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	if (fj_dump(n, FJ_CANONICAL, &b) != GW_OK)
		fail_msg("dump failed");
	return buf_steal(&b, NULL);
}

/* The issue of rep whose expression is expr, or NULL. */
static const json_t *
find_issue(const json_t *rep, const char *expr)
{
	const json_t *issues = json_object_get(rep, "issue");
	const json_t *is;
	size_t i;

	json_array_foreach(issues, i, is)
	{
		const json_t *ex = json_object_get(is, "expression");
		const char *e = json_string_value(json_array_get(ex, 0));

		if (e != NULL && strcmp(e, expr) == 0)
			return is;
	}
	return NULL;
}

#define R4A	 "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"
#define R4B	 "https://fhir.iknl.nl/fhir/StructureDefinition/"
#define S3	 "https://api.iknl.nl/docs/pzp/stu3/StructureDefinition/"
#define NICTIZ	 "http://nictiz.nl/fhir/StructureDefinition/"
#define ROLE_EXT NICTIZ "practitionerrole-reference"
#define RP_ROLE                                                                \
	"http://fhir.nl/fhir/StructureDefinition/nl-core-relatedperson-role"
#define SCT    "http://snomed.info/sct"
#define V3ROLE "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
/* STU3's name of the same code system (transform.c walk_systems) */
#define V3ROLE_S3 "http://hl7.org/fhir/v3/RoleCode"
#define OID472	  "urn:oid:2.16.840.1.113883.2.4.3.11.22.472"
#define ACH	  "http://terminology.hl7.org/CodeSystem/goal-achievement"

#define EN_QUAL	      "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier"
#define CC(sys, code) "{'coding':[{'system':'" sys "','code':'" code "'}]}"

struct pcase {
	const char *name;
	enum rules_fhir from, to;
	const char *in;
	const char *want; /* the output (member order ignored); NULL: no
			     output check (refusals) */
	enum gw_err rc;
	/* the report: exactly these expressions (each issue once), the
	   first one's diagnostics containing diag (NULL: any) */
	const char *issues[4];
	const char *diag;
};

static const struct pcase cases[] = {
    /* ---- canonical URLs (xf_urls_zib, xf_urls_care) ---- */
    {"Patient profile, newest R4 canonical to STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Patient','meta':{'profile':['" R4A "ACP-Patient']}}",
     "{'resourceType':'Patient','meta':{'profile':['" S3 "ACP-Patient']}}",
     GW_OK,
     {NULL},
     NULL},
    {"Patient profile, PZP 0.1.3 canonical to STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Patient','meta':{'profile':['" R4B "ACP-Patient']}}",
     "{'resourceType':'Patient','meta':{'profile':['" S3 "ACP-Patient']}}",
     GW_OK,
     {NULL},
     NULL},
    {"STU3 profile back to the newest R4 canonical",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Observation','meta':{'profile':['" S3
     "ACP-SenseOfPurpose']}}",
     "{'resourceType':'Observation','meta':{'profile':['" R4A
     "ACP-SenseOfPurpose']}}",
     GW_OK,
     {NULL},
     NULL},
    {"PZP 0.1.3 OtherImportantInformation is STU3 SenseOfPurpose",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" R4B "ACP-OtherImportantInformation']}}",
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" S3 "ACP-SenseOfPurpose']}}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal profile renamed",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','meta':{'profile':['" R4B
     "ACP-Medical-Policy-Goal']},'category':[" CC(SCT, "713603004") "]}",
     "{'resourceType':'Goal','meta':{'profile':['" S3
     "ACP-MedicalPolicyGoal']},'category':[" CC(SCT, "713603004") "]}",
     GW_OK,
     {NULL},
     NULL},
    {"legally capable extension renamed to zib2017",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Patient','extension':[{'url':'" R4B
     "ext-LegallyCapable-MedicalTreatmentDecisions','extension':[{'url':"
     "'legallyCapable','valueBoolean':true}]}]}",
     "{'resourceType':'Patient','extension':[{'url':'" S3
     "ext-Patient.LegallyCapableMedicalTreatmentDecisions','extension':[{"
     "'url':'legallyCapable','valueBoolean':true}]}]}",
     GW_OK,
     {NULL},
     NULL},
    {"legally capable extension back to R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Patient','extension':[{'url':'" S3
     "ext-Patient.LegallyCapableMedicalTreatmentDecisions'}]}",
     "{'resourceType':'Patient','extension':[{'url':'" R4A
     "ext-LegallyCapable-MedicalTreatmentDecisions'}]}",
     GW_OK,
     {NULL},
     NULL},

    /* ---- Patient ---- */
    {"language proficiency extension to its zib2017 URL",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Patient','communication':[{'language':{'text':'nl'},"
     "'extension':[{'url':'http://hl7.org/fhir/StructureDefinition/"
     "patient-proficiency','extension':[{'url':'level','valueCoding':{"
     "'code':'E'}}]}]}]}",
     "{'resourceType':'Patient','communication':[{'language':{'text':'nl'},"
     "'extension':[{'url':'" NICTIZ "patient-proficiency','extension':[{"
     "'url':'level','valueCoding':{'code':'E'}}]}]}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Patient.contact link to its RelatedPerson left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Patient','contact':[{'extension':[{'url':"
     "'http://hl7.org/fhir/StructureDefinition/patient-relatedPerson',"
     "'valueReference':{'reference':'RelatedPerson/1'}}],'name':{'text':"
     "'M'}}]}",
     "{'resourceType':'Patient','contact':[{'name':{'text':'M'}}]}",
     GW_OK,
     {"Patient.contact[0].extension[0]"},
     "RelatedPerson"},
    {"ACP-Patient without a name: marked for R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Patient','meta':{'profile':['" S3 "ACP-Patient']}}",
     "{'resourceType':'Patient','meta':{'profile':['" R4A "ACP-Patient']},"
     "'name':[{'extension':[{'url':'" XF_DAR_URL "','valueCode':'unknown'}"
     "]}]}",
     GW_OK,
     {"Patient.name"},
     "data-absent-reason"},
    {"Patient.animal (STU3 only) left out",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Patient','animal':{'species':{'text':'dog'}}}",
     "{'resourceType':'Patient'}",
     GW_OK,
     {"Patient.animal"},
     NULL},

    /* ---- RelatedPerson ---- */
    {"ContactPerson roles to the zib2017 role extension",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'RelatedPerson','relationship':[" CC(OID472, "01") "," CC(
	 OID472, "24") "," CC(V3ROLE, "BRO") "]}",
     "{'resourceType':'RelatedPerson','relationship':" CC(
	 V3ROLE_S3, "BRO") ",'extension':[{'url':'" RP_ROLE
			   "','valueCodeableConcept':" CC(
			       OID472, "01") "},{'url':'" RP_ROLE
					     "','valueCodeableConcept':" CC(
						 OID472, "24") "}]}",
     GW_OK,
     {NULL},
     NULL},
    {"ContactPerson with a role only keeps it as relationship",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'RelatedPerson','relationship':[" CC(OID472, "01") "]}",
     "{'resourceType':'RelatedPerson','relationship':" CC(OID472, "01") "}",
     GW_OK,
     {NULL},
     NULL},
    {"ContactPerson second family relationship reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'RelatedPerson','relationship':[" CC(
	 V3ROLE, "BRO") "," CC(V3ROLE, "SIS") "]}",
     "{'resourceType':'RelatedPerson','relationship':" CC(V3ROLE_S3, "BRO") "}",
     GW_OK,
     {"RelatedPerson.relationship[1]"},
     "one relationship"},
    {"ContactPerson roles back into relationship",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'RelatedPerson','relationship':" CC(
	 V3ROLE, "BRO") ",'extension':[{'url':'" RP_ROLE
			"','valueCodeableConcept':" CC(
			    OID472, "24") "},{'url':'" RP_ROLE
					  "','valueCodeableConcept':" CC(
					      SCT, "310141000146103") "}]}",
     "{'resourceType':'RelatedPerson','relationship':[" CC(OID472, "24") "," CC(
	 SCT, "310141000146103") "," CC(V3ROLE, "BRO") "]}",
     GW_OK,
     {NULL},
     NULL},
    {"ContactPerson without a role gets 23 Contactpersoon in R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'RelatedPerson','meta':{'profile':['" S3
     "ACP-ContactPerson']},'relationship':" CC(V3ROLE, "BRO") "}",
     "{'resourceType':'RelatedPerson','meta':{'profile':['" R4A
     "ACP-ContactPerson']},'relationship':[" CC(
	 V3ROLE, "BRO") ",{'coding':"
			"[{'system':'" OID472
			"','code':'23','display':'Contactpersoon'}]}]}",
     GW_OK,
     {"RelatedPerson.relationship"},
     "requires a role"},
    {"ContactPerson communication (R4 only) left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'RelatedPerson','communication':[{'language':{'text':"
     "'nl'}}]}",
     "{'resourceType':'RelatedPerson'}",
     GW_OK,
     {"RelatedPerson.communication"},
     "no STU3 counterpart"},

    /* ---- Observation ---- */
    {"Observation note to comment",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','note':[{'text':'t'}]}",
     "{'resourceType':'Observation','comment':'t'}",
     GW_OK,
     {NULL},
     NULL},
    {"Observation further notes and the author reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','note':[{'authorString':'a','text':'t'},"
     "{'text':'u'}]}",
     "{'resourceType':'Observation','comment':'t'}",
     GW_OK,
     {"Observation.note[0]", "Observation.note"},
     "author"},
    {"Observation comment to note",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Observation','comment':'t'}",
     "{'resourceType':'Observation','note':[{'text':'t'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Observation hasMember and derivedFrom to related",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','hasMember':[{'reference':"
     "'Observation/a'}],'derivedFrom':[{'reference':'Observation/b'}]}",
     "{'resourceType':'Observation','related':[{'type':'has-member',"
     "'target':{'reference':'Observation/a'}},{'type':'derived-from',"
     "'target':{'reference':'Observation/b'}}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Observation related back; sequel-to reported",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Observation','related':[{'type':'derived-from',"
     "'target':{'reference':'Observation/b'}},{'type':'sequel-to','target':"
     "{'reference':'Observation/c'}},{'target':{'reference':'Observation/"
     "a'}}]}",
     "{'resourceType':'Observation','derivedFrom':[{'reference':"
     "'Observation/b'}],'hasMember':[{'reference':'Observation/a'}]}",
     GW_OK,
     {"Observation.related[1]"},
     "sequel-to"},
    {"Observation effectiveInstant carried as effectiveDateTime",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','effectiveInstant':'2020-10-01T10:00:"
     "00Z'}",
     "{'resourceType':'Observation','effectiveDateTime':'2020-10-01T10:00:"
     "00Z'}",
     GW_OK,
     {"Observation.effectiveInstant"},
     NULL},
    {"Observation partOf and focus (R4 only) left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','partOf':[{'reference':'Procedure/1'}],"
     "'focus':[{'reference':'Patient/1'}]}",
     "{'resourceType':'Observation'}",
     GW_OK,
     {"Observation.partOf", "Observation.focus"},
     NULL},
    {"OrganDonationChoiceRegistration method filled for STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" R4A "ACP-OrganDonationChoiceRegistration']}}",
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" S3
     "ACP-OrganDonationChoiceRegistration']},'method':{'coding':[{'system':"
     "'" SCT "','code':'1156040003','display':'self reported'}]}}",
     GW_OK,
     {"Observation.method"},
     "1156040003"},
    {"OrganDonation detected by its code when no profile is claimed",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','code':" CC(SCT, "570801000146104") "}",
     "{'resourceType':'Observation','code':" CC(
	 SCT, "570801000146104") ",'method':{'coding':[{'system':'" SCT
				 "','code':'1156040003',"
				 "'display':'self reported'}]}}",
     GW_OK,
     {"Observation.method"},
     NULL},
    {"other Observations get no method",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" R4A
     "ACP-SenseOfPurpose']},'code':" CC(SCT, "570801000146104") "}",
     "{'resourceType':'Observation','subject':{'reference':'Patient/"
     "1'},'meta':{'profile':['" S3
     "ACP-SenseOfPurpose']},'code':" CC(SCT, "570801000146104") "}",
     GW_OK,
     {NULL},
     NULL},
    {"Observation performer PractitionerRole outside a Bundle",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','performer':[{'reference':"
     "'PractitionerRole/r','display':'d'}]}",
     "{'resourceType':'Observation','performer':[{'display':'d',"
     "'extension':[{'url':'" ROLE_EXT "','valueReference':{'reference':"
     "'PractitionerRole/r','display':'d'}}]}]}",
     GW_OK,
     {"Observation.performer[0]"},
     NULL},

    {"Observation CareTeam performer left out of STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','performer':[{'reference':'https://x/"
     "fhir/CareTeam/1'},{'reference':'Patient/1'}]}",
     "{'resourceType':'Observation','performer':[{'reference':'Patient/1'}]}",
     GW_OK,
     {"Observation.performer[0]"},
     "CareTeam"},

    {"ACP Observation without subject: marked for STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','meta':{'profile':['" R4A
     "ACP-SpecificCareWishes']}}",
     "{'resourceType':'Observation','meta':{'profile':['" S3
     "ACP-SpecificCareWishes']},'subject':{'extension':[{'url':'" XF_DAR_URL
     "','valueCode':'unknown'}]}}",
     GW_OK,
     {"Observation.subject"},
     "requires subject"},
    {"Practitioner identifier without value: marked for STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Practitioner','identifier':[{'system':'http://"
     "fhir.nl/fhir/NamingSystem/agb-z'},{'system':'s','value':'1'}]}",
     "{'resourceType':'Practitioner','identifier':[{'system':'http://"
     "fhir.nl/fhir/NamingSystem/"
     "agb-z','_value':{'extension':[{'url':'" XF_DAR_URL
     "','valueCode':'unknown'}]}},{'system':'s','value':'1'}]}",
     GW_OK,
     {"Practitioner.identifier[0].value"},
     NULL},

    {"given names without their kind get BR (name) or IN (initial) in R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Practitioner','name':[{'use':'official','given':["
     "'Desiree','J.','K'],'_given':[{'extension':[{'url':'u','valueCode':"
     "'x'}]}]}]}",
     "{'resourceType':'Practitioner','name':[{'use':'official','given':["
     "'Desiree','J.','K'],'_given':[{'extension':[{'url':'u','valueCode':"
     "'x'},{'url':'" EN_QUAL
     "','valueCode':'BR'}]},{'extension':[{'url':'" EN_QUAL
     "','valueCode':'IN'}]},{'extension':[{'url':'" EN_QUAL
     "','valueCode':'IN'}]}]}]}",
     GW_OK,
     {"Practitioner.name[0].given[0]", "Practitioner.name[0].given[1]",
      "Practitioner.name[0].given[2]"},
     "BR"},
    {"given names with their kind are kept as they are in R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Patient','name':[{'given':['A','B'],'_given':[{"
     "'extension':[{'url':'" EN_QUAL "','valueCode':'CL'}]},{'extension':[{"
     "'url':'" EN_QUAL "','valueCode':'BR'}]}]}]}",
     "{'resourceType':'Patient','name':[{'given':['A','B'],'_given':[{"
     "'extension':[{'url':'" EN_QUAL "','valueCode':'CL'}]},{'extension':[{"
     "'url':'" EN_QUAL "','valueCode':'BR'}]}]}]}",
     GW_OK,
     {NULL},
     NULL},

    {"a usual name without given is left out of R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Practitioner','name':[{'use':'official','family':"
     "'F'},{'use':'usual','text':'t'}]}",
     "{'resourceType':'Practitioner','name':[{'use':'official','family':"
     "'F'}]}",
     GW_OK,
     {"Practitioner.name[1]"},
     "given"},

    {"Observation interpretations and valueInteger to STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Observation','interpretation':[{'text':'a'},{'text':"
     "'b'}],'component':[{'code':{'text':'c'},'valueInteger':3,"
     "'interpretation':[{'text':'x'}]}]}",
     "{'resourceType':'Observation','interpretation':{'text':'a'},"
     "'component':[{'code':{'text':'c'},'valueQuantity':{'value':3},"
     "'interpretation':{'text':'x'}}]}",
     GW_OK,
     {"Observation.interpretation", "Observation.component[0].valueInteger"},
     "one interpretation"},
    {"Observation interpretation to R4; valueAttachment left out",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Observation','interpretation':{'text':'a'},"
     "'valueAttachment':{'url':'http://x/a'}}",
     "{'resourceType':'Observation','interpretation':[{'text':'a'}]}",
     GW_OK,
     {"Observation.valueAttachment"},
     NULL},

    /* ---- Encounter ---- */
    {"Encounter reasonReference to diagnosis.condition, use to role",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Encounter','diagnosis':[{'condition':{'reference':"
     "'Condition/c'},'use':{'text':'u'}}],'reasonReference':[{'reference':"
     "'Procedure/p'}],'reasonCode':[{'text':'r'}]}",
     "{'resourceType':'Encounter','diagnosis':[{'condition':{'reference':"
     "'Condition/c'},'role':{'text':'u'}},{'condition':{'reference':"
     "'Procedure/p'}}],'reason':[{'text':'r'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Encounter bare diagnosis.condition back to reasonReference",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Encounter','diagnosis':[{'condition':{'reference':"
     "'Condition/c'},'role':{'text':'u'}},{'condition':{'reference':"
     "'Procedure/p'}}],'reason':[{'text':'r'}]}",
     "{'resourceType':'Encounter','diagnosis':[{'condition':{'reference':"
     "'Condition/c'},'use':{'text':'u'}}],'reasonReference':[{'reference':"
     "'Procedure/p'}],'reasonCode':[{'text':'r'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Encounter R4-only elements and extra appointments reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Encounter','basedOn':[{'reference':'ServiceRequest/"
     "1'}],'location':[{'location':{'reference':'Location/1'},"
     "'physicalType':{'text':'ro'}}],'appointment':[{'reference':"
     "'Appointment/1'},{'reference':'Appointment/2'}]}",
     "{'resourceType':'Encounter','location':[{'location':{'reference':"
     "'Location/1'}}],'appointment':{'reference':'Appointment/1'}}",
     GW_OK,
     {"Encounter.basedOn", "Encounter.location[0].physicalType",
      "Encounter.appointment"},
     NULL},
    {"ACP-Encounter without subject or period.start: marked for STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Encounter','meta':{'profile':['" R4A
     "ACP-Encounter']},'period':{'end':'2020'}}",
     "{'resourceType':'Encounter','meta':{'profile':['" S3
     "ACP-Encounter']},'period':{'end':'2020','_start':{'extension':[{"
     "'url':'" XF_DAR_URL "','valueCode':'unknown'}]}},'subject':{"
     "'extension':[{'url':'" XF_DAR_URL "','valueCode':'unknown'}]}}",
     GW_OK,
     {"Encounter.subject", "Encounter.period.start"},
     "subject"},
    {"Encounter appointment becomes an array",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Encounter','appointment':{'reference':'Appointment/"
     "1'},'incomingReferral':[{'reference':'ReferralRequest/1'}]}",
     "{'resourceType':'Encounter','appointment':[{'reference':'Appointment/"
     "1'}]}",
     GW_OK,
     {"Encounter.incomingReferral"},
     NULL},
    {"Encounter participant PractitionerRole in a Bundle",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Bundle','entry':[{'fullUrl':'urn:uuid:r','resource':"
     "{'resourceType':'PractitionerRole','practitioner':{'reference':"
     "'urn:uuid:p'}}},{'resource':{'resourceType':'Encounter',"
     "'participant':[{'individual':{'reference':'urn:uuid:r'}}]}}]}",
     "{'resourceType':'Bundle','entry':[{'fullUrl':'urn:uuid:r','resource':"
     "{'resourceType':'PractitionerRole','practitioner':{'reference':"
     "'urn:uuid:p'}}},{'resource':{'resourceType':'Encounter',"
     "'participant':[{'individual':{'reference':'urn:uuid:p','extension':[{"
     "'url':'" ROLE_EXT "','valueReference':{'reference':'urn:uuid:r'}}]}}]}"
     "}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Encounter participant role extension back to the role",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Encounter','participant':[{'individual':{'reference':"
     "'Practitioner/p','extension':[{'url':'" ROLE_EXT "','valueReference':{"
     "'reference':'PractitionerRole/r'}}]}}]}",
     "{'resourceType':'Encounter','participant':[{'individual':{'reference':"
     "'PractitionerRole/r'}}]}",
     GW_OK,
     {"Encounter.participant[0].individual"},
     NULL},

    /* ---- Procedure ---- */
    {"ACP Procedure: category filled, patient and contact performers "
     "left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Bundle','entry':[{'fullUrl':'urn:uuid:pt','resource':"
     "{'resourceType':'Patient'}},{'resource':{'resourceType':'Procedure',"
     "'code':" CC(
	 SCT, "713603004") ",'performer':[{'actor':{'reference':"
			   "'Practitioner/"
			   "1'},'function':{'text':'f'}},{'actor':{'reference':"
			   "'urn:uuid:pt'}},{'actor':{'reference':'"
			   "RelatedPerson/2'}}]}}]}",
     "{'resourceType':'Bundle','entry':[{'fullUrl':'urn:uuid:pt','resource':"
     "{'resourceType':'Patient'}},{'resource':{'resourceType':'Procedure',"
     "'code':" CC(
	 SCT, "713603004") ",'performer':[{'actor':{'reference':"
			   "'Practitioner/"
			   "1'},'role':{'text':'f'}}],'category':{'coding':[{"
			   "'system':'" SCT
			   "','code':'11429006','display':'Consultation "
			   "(procedure)'}]}}}]}",
     GW_OK,
     {"Bundle.entry[1].resource.performer[1]",
      "Bundle.entry[1].resource.performer[2]",
      "Bundle.entry[1].resource.category"},
     "Practitioner or Organization"},
    {"ACP Procedure claiming an unknown PZP profile: left out first, "
     "the rule then tells the profile from the code (fuzz_transform)",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','meta':{'profile':['" R4A
     "ACP-Procedur']},'code':" CC(SCT, "713603004") "}",
     "{'resourceType':'Procedure','code':" CC(
	 SCT, "713603004") ",'category':{'coding':[{'system':'" SCT
			   "','code':'11429006','display':'Consultation "
			   "(procedure)'}]}}",
     GW_OK,
     {"Procedure.meta.profile[0]", "Procedure.category"},
     "no STU3 counterpart of profile"},
    {"ACP Procedure Device performer left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','category':{'text':'c'},'code':" CC(
	 SCT, "713603004") ",'performer':[{'actor':{'reference':'Device/1'}},{"
			   "'actor':{'display':'someone'}}]}",
     "{'resourceType':'Procedure','category':{'text':'c'},'code':" CC(
	 SCT, "713603004") ",'performer':[{'actor':{'display':'someone'}}]}",
     GW_OK,
     {"Procedure.performer[0]"},
     NULL},
    {"other Procedures keep their performers and get no category",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','code':" CC(
	 SCT, "1") ",'performer':[{"
		   "'actor':{'reference':'Patient/1'}}]}",
     "{'resourceType':'Procedure','code':" CC(
	 SCT, "1") ",'performer':[{"
		   "'actor':{'reference':'Patient/1'}}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Procedure not-done to notDone",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','status':'not-done','statusReason':{"
     "'text':'r'},'recorder':{'reference':'Practitioner/1'}}",
     "{'resourceType':'Procedure','status':'unknown','notDone':true,"
     "'notDoneReason':{'text':'r'}}",
     GW_OK,
     {"Procedure.recorder"},
     NULL},
    {"Procedure notDone back to not-done; performer.role to function",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Procedure','status':'unknown','notDone':true,"
     "'notDoneReason':{'text':'r'},'performer':[{'role':{'text':'f'}}]}",
     "{'resourceType':'Procedure','status':'not-done','statusReason':{"
     "'text':'r'},'performer':[{'function':{'text':'f'}}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Procedure on-hold to suspended, statusReason reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','status':'on-hold','statusReason':{"
     "'text':'r'}}",
     "{'resourceType':'Procedure','status':'suspended'}",
     GW_OK,
     {"Procedure.statusReason"},
     NULL},
    {"Procedure aborted to stopped",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Procedure','status':'aborted','notDone':false}",
     "{'resourceType':'Procedure','status':'stopped'}",
     GW_OK,
     {NULL},
     NULL},

    /* ---- Goal ---- */
    {"Goal lifecycleStatus active to in-progress, category filled",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','meta':{'profile':['" R4A
     "ACP-Medical-Policy-Goal']},'lifecycleStatus':'active'}",
     "{'resourceType':'Goal','meta':{'profile':['" S3
     "ACP-MedicalPolicyGoal']},'status':'in-progress','category':[{"
     "'coding':[{'system':'" SCT "','code':'713603004','display':'advance "
     "care planning'}]}]}",
     GW_OK,
     {"Goal.category"},
     "713603004"},
    {"a Goal claiming no profile gets no category",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','lifecycleStatus':'active'}",
     "{'resourceType':'Goal','status':'in-progress'}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal active and improving to ahead-of-target",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','lifecycleStatus':'active',"
     "'achievementStatus':" CC(ACH, "improving") ",'category':[]}",
     "{'resourceType':'Goal','status':'ahead-of-target','category':[]}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal achievement that no status carries is reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','lifecycleStatus':'completed',"
     "'achievementStatus':" CC(ACH, "not-achieved") ",'category':[]}",
     "{'resourceType':'Goal','status':'achieved','category':[]}",
     GW_OK,
     {"Goal.achievementStatus"},
     NULL},
    {"Goal on-hold unchanged",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','lifecycleStatus':'on-hold','category':[]}",
     "{'resourceType':'Goal','status':'on-hold','category':[]}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal behind-target to active and worsening",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Goal','subject':{'reference':'Patient/"
     "1'},'status':'behind-target'}",
     "{'resourceType':'Goal','subject':{'reference':'Patient/"
     "1'},'lifecycleStatus':'active',"
     "'achievementStatus':{'coding':[{'system':'" ACH "','code':"
     "'worsening'}]}}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal in-progress to active, achieved to completed",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Bundle','entry':[{'resource':{'resourceType':'Goal','"
     "subject':{'reference':'Patient/1'},"
     "'status':'in-progress'}},{'resource':{'resourceType':'Goal','subject':{'"
     "reference':'Patient/1'},'status':"
     "'achieved'}}]}",
     "{'resourceType':'Bundle','entry':[{'resource':{'resourceType':'Goal','"
     "subject':{'reference':'Patient/1'},"
     "'lifecycleStatus':'active'}},{'resource':{'resourceType':'Goal','subject'"
     ":{'reference':'Patient/1'},"
     "'lifecycleStatus':'completed'}}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Goal encounter extension (PZP 0.1.3) left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','extension':[{'url':'" R4B
     "ext-EncounterReference','valueReference':{'reference':'Encounter/1'}}"
     "],'category':[]}",
     "{'resourceType':'Goal','category':[]}",
     GW_OK,
     {"Goal.extension[0]"},
     "Encounter"},

    {"Goal targets: the first to STU3, more reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Goal','target':[{'dueDate':'2021'},{'dueDate':"
     "'2022'}]}",
     "{'resourceType':'Goal','target':{'dueDate':'2021'}}",
     GW_OK,
     {"Goal.target"},
     "one target"},
    {"Goal target becomes an array in R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Goal','subject':{'reference':'Patient/"
     "1'},'target':{'dueDate':'2021'}}",
     "{'resourceType':'Goal','subject':{'reference':'Patient/"
     "1'},'target':[{'dueDate':'2021'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"Procedure instantiatesCanonical <-> definition",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Procedure','instantiatesCanonical':['http://x/"
     "PlanDefinition/1']}",
     "{'resourceType':'Procedure','definition':[{'reference':'http://x/"
     "PlanDefinition/1'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"DeviceUseStatement statusReason (R4 only) left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'DeviceUseStatement','statusReason':[{'text':'r'}]}",
     "{'resourceType':'DeviceUseStatement'}",
     GW_OK,
     {"DeviceUseStatement.statusReason"},
     NULL},
    {"QuestionnaireResponse subject kept (both versions have it)",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'QuestionnaireResponse','subject':{'reference':"
     "'Patient/1'}}",
     "{'resourceType':'QuestionnaireResponse','subject':{'reference':"
     "'Patient/1'}}",
     GW_OK,
     {NULL},
     NULL},

    {"Goal without subject: marked for R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Goal','status':'proposed'}",
     "{'resourceType':'Goal','lifecycleStatus':'proposed','subject':{"
     "'extension':[{'url':'" XF_DAR_URL "','valueCode':'unknown'}]}}",
     GW_OK,
     {"Goal.subject"},
     "requires subject"},

    /* ---- Communication ---- */
    {"Communication coded topic left out, about to topic, sender role",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Communication','topic':{'text':'t'},'about':[{"
     "'reference':'Goal/1'}],'sender':{'reference':'PractitionerRole/r'},"
     "'instantiatesCanonical':['http://x/PlanDefinition/1']}",
     "{'resourceType':'Communication','topic':[{'reference':'Goal/1'}],"
     "'sender':{'extension':[{'url':'" ROLE_EXT "','valueReference':{"
     "'reference':'PractitionerRole/r'}}]},'definition':[{'reference':"
     "'http://x/PlanDefinition/1'}]}",
     GW_OK,
     {"Communication.topic", "Communication.sender"},
     NULL},
    {"Communication topic to about, notDone, definition",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Communication','topic':[{'reference':'Goal/1'}],"
     "'notDone':true,'status':'suspended','notDoneReason':{'text':'r'},"
     "'definition':[{'reference':'http://x/PlanDefinition/1'},{'display':"
     "'d'}]}",
     "{'resourceType':'Communication','about':[{'reference':'Goal/1'}],"
     "'status':'not-done','statusReason':{'text':'r'},"
     "'instantiatesCanonical':['http://x/PlanDefinition/1']}",
     GW_OK,
     {"Communication.definition[1]"},
     NULL},

    /* ---- CommunicationRequest ---- */
    {"CommunicationRequest requester becomes requester.agent",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'CommunicationRequest','status':'revoked','requester':"
     "{'reference':'Practitioner/p','display':'d'},'about':[{'reference':"
     "'Goal/1'}],'doNotPerform':false}",
     "{'resourceType':'CommunicationRequest','status':'cancelled',"
     "'requester':{'agent':{'reference':'Practitioner/p','display':'d'}},"
     "'topic':[{'reference':'Goal/1'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"CommunicationRequest requester.agent back; onBehalfOf reported",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'CommunicationRequest','status':'suspended',"
     "'requester':{'agent':{'reference':'Practitioner/p','extension':[{"
     "'url':'" ROLE_EXT "','valueReference':{'reference':'PractitionerRole/"
     "r'}}]},'onBehalfOf':{'reference':'Organization/o'}}}",
     "{'resourceType':'CommunicationRequest','status':'on-hold',"
     "'requester':{'reference':'PractitionerRole/r'}}",
     GW_OK,
     {"CommunicationRequest.requester.onBehalfOf",
      "CommunicationRequest.requester.agent"},
     NULL},
    {"CommunicationRequest doNotPerform refused",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'CommunicationRequest','doNotPerform':true}",
     NULL,
     GW_REJECT,
     {"CommunicationRequest.doNotPerform"},
     "must not"},
    {"CommunicationRequest statusReason left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'CommunicationRequest','statusReason':{'text':'r'}}",
     "{'resourceType':'CommunicationRequest'}",
     GW_OK,
     {"CommunicationRequest.statusReason"},
     NULL},

    /* ---- Device ---- */
    {"Device udiCarrier, version, modelNumber to STU3",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Device','udiCarrier':[{'carrierHRF':'8700'},{"
     "'carrierHRF':'8701'}],'version':[{'value':'2'}],'modelNumber':'m',"
     "'deviceName':[{'name':'n','type':'model-name'}]}",
     "{'resourceType':'Device','udi':{'carrierHRF':'8700'},'version':'2',"
     "'model':'m'}",
     GW_OK,
     {"Device.udiCarrier", "Device.deviceName"},
     "one UDI"},
    {"Device udi, version, model to R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'Device','udi':{'carrierHRF':'8700','issuer':'https:"
     "//www.gs1.org/gtin','name':'n'},'version':'2','model':'m'}",
     "{'resourceType':'Device','udiCarrier':[{'carrierHRF':'8700','issuer':"
     "'https://www.gs1.org/gtin'}],'version':[{'value':'2'}],'modelNumber':"
     "'m'}",
     GW_OK,
     {"Device.udi.name"},
     NULL},
    {"Device version type reported",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'Device','version':[{'type':{'text':'fw'},'value':'2'"
     "}],'serialNumber':'s'}",
     "{'resourceType':'Device','version':'2'}",
     GW_OK,
     {"Device.serialNumber", "Device.version"},
     NULL},

    /* ---- DeviceUseStatement ---- */
    {"DeviceUseStatement reasons to indication, health professional",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'DeviceUseStatement','reasonCode':[{'text':'c'}],"
     "'reasonReference':[{'reference':'Condition/1'}],'extension':[{'url':"
     "'" NICTIZ "ext-MedicalDevice.HealthProfessional','valueReference':{"
     "'reference':'PractitionerRole/r'}}],'bodySite':{'extension':[{'url':"
     "'" NICTIZ "ext-AnatomicalLocation.Laterality','valueCodeableConcept':"
     "{'text':'l'}}]}}",
     "{'resourceType':'DeviceUseStatement','indication':[{'text':'c'},{"
     "'extension':[{'url':'" NICTIZ "zib-MedicalDevice-Problem',"
     "'valueReference':{'reference':'Condition/1'}}]}],'extension':[{'url':"
     "'" NICTIZ "zib-MedicalDevice-Practitioner','valueReference':{"
     "'extension':[{'url':'" ROLE_EXT "','valueReference':{'reference':"
     "'PractitionerRole/r'}}]}}],'bodySite':{'extension':[{'url':'" NICTIZ
     "BodySite-Qualifier','valueCodeableConcept':{'text':'l'}}]}}",
     GW_OK,
     {"DeviceUseStatement.extension[0].valueReference"},
     NULL},
    {"DeviceUseStatement indication and whenUsed to R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'DeviceUseStatement','indication':[{'text':'c'},{"
     "'extension':[{'url':'" NICTIZ "zib-MedicalDevice-Problem',"
     "'valueReference':{'reference':'Condition/1'}}]}],'whenUsed':{'start':"
     "'2018'},'extension':[{'url':'" NICTIZ "zib-MedicalDevice-Practitioner',"
     "'valueReference':{'reference':'Practitioner/"
     "p','extension':[{'url':'" ROLE_EXT
     "','valueReference':{'reference':'PractitionerRole/r'}}]}}]}",
     "{'resourceType':'DeviceUseStatement','reasonCode':[{'text':'c'}],"
     "'reasonReference':[{'reference':'Condition/1'}],'timingPeriod':{"
     "'start':'2018'},'extension':[{'url':'" NICTIZ
     "ext-MedicalDevice.HealthProfessional','valueReference':{'reference':"
     "'PractitionerRole/r'}}]}",
     GW_OK,
     {"DeviceUseStatement.extension[0].valueReference"},
     NULL},
    {"DeviceUseStatement backported reasonReference extension to R4",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'DeviceUseStatement','extension':[{'url':'" NICTIZ
     "deviceUseStatement-reasonReferenceSTU3','valueReference':{"
     "'reference':'Condition/1'}}]}",
     "{'resourceType':'DeviceUseStatement','reasonReference':[{'reference':"
     "'Condition/1'}]}",
     GW_OK,
     {NULL},
     NULL},
    {"DeviceUseStatement health professional without a role: R4 has no place",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'DeviceUseStatement','extension':[{'url':'" NICTIZ
     "zib-MedicalDevice-Practitioner','valueReference':{'reference':"
     "'Practitioner/p','display':'d'}}]}",
     "{'resourceType':'DeviceUseStatement'}",
     GW_OK,
     {"DeviceUseStatement.extension[0]"},
     "without its role"},
    {"DeviceUseStatement whenUsed beside a timing reported",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'DeviceUseStatement','whenUsed':{'start':'2018'},"
     "'timingPeriod':{'start':'2019'}}",
     "{'resourceType':'DeviceUseStatement','timingPeriod':{'start':'2019'}}",
     GW_OK,
     {"DeviceUseStatement.whenUsed"},
     NULL},
    {"DeviceUseStatement encounter extension and basedOn left out",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'DeviceUseStatement','extension':[{'url':'" R4B
     "ext-EncounterReference','valueReference':{'reference':'Encounter/1'}}"
     "],'basedOn':[{'reference':'ServiceRequest/1'}]}",
     "{'resourceType':'DeviceUseStatement'}",
     GW_OK,
     {"DeviceUseStatement.basedOn", "DeviceUseStatement.extension[0]"},
     NULL},

    /* ---- QuestionnaireResponse ---- */
    {"QuestionnaireResponse questionnaire canonical to Reference",
     RULES_R4,
     RULES_STU3,
     "{'resourceType':'QuestionnaireResponse','questionnaire':'http://x/"
     "Questionnaire/q|1','partOf':[{'reference':'Procedure/1'}],'author':{"
     "'reference':'Practitioner/p'}}",
     "{'resourceType':'QuestionnaireResponse','questionnaire':{'reference':"
     "'http://x/Questionnaire/q|1'},'parent':[{'reference':'Procedure/1'}],"
     "'author':{'reference':'Practitioner/p'}}",
     GW_OK,
     {NULL},
     NULL},
    {"QuestionnaireResponse Reference back to canonical",
     RULES_STU3,
     RULES_R4,
     "{'resourceType':'QuestionnaireResponse','questionnaire':{'reference':"
     "'http://x/Questionnaire/q|1','display':'d'},'parent':[{'reference':"
     "'Procedure/1'}]}",
     "{'resourceType':'QuestionnaireResponse','questionnaire':'http://x/"
     "Questionnaire/q|1','partOf':[{'reference':'Procedure/1'}]}",
     GW_OK,
     {"QuestionnaireResponse.questionnaire"},
     NULL},
};

static void
test_rules(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *k = &cases[i];
		struct fj_doc *d = parse(k->in);
		json_t *rep = fhir_outcome_new();
		enum gw_err rc = xf_convert(d, k->from, k->to, rep);
		size_t n = json_array_size(json_object_get(rep, "issue"));
		size_t want_n = 0;

		if (rc != k->rc)
			fail_msg("%s: got %s, want %s: %s", k->name,
				 gw_strerror(rc), gw_strerror(k->rc),
				 fhir_dump(rep));
		if (k->want != NULL) {
			struct fj_doc *w = parse(k->want);

			if (!fj_equal(d->root, w->root, FDEC_EXACT)) {
				char *got = dump(d->root);
				char *want = dump(w->root);

				fail_msg("%s:\n got  %s\n want %s", k->name,
					 got, want);
			}
			fj_doc_free(w);
		}
		for (; want_n < 4 && k->issues[want_n] != NULL; want_n++) {
			const json_t *is = find_issue(rep, k->issues[want_n]);
			const char *diag = json_string_value(
			    json_object_get(is, "diagnostics"));

			if (is == NULL)
				fail_msg("%s: no issue at %s: %s", k->name,
					 k->issues[want_n], fhir_dump(rep));
			if (want_n == 0 && k->diag != NULL &&
			    (diag == NULL || strstr(diag, k->diag) == NULL))
				fail_msg("%s: issue at %s says \"%s\", want "
					 "\"%s\" in it",
					 k->name, k->issues[0],
					 diag ? diag : "", k->diag);
		}
		if (n != want_n)
			fail_msg("%s: got %zu issues, want %zu: %s", k->name, n,
				 want_n, fhir_dump(rep));
		json_decref(rep);
		fj_doc_free(d);
	}
}

/* Each profile of both R4 generations maps to STU3, and each STU3
 * profile back to the newest R4 canonical. */
static void
test_profile_urls(void **state)
{
	static const char *const names[][2] = {
	    {"ACP-Patient", "ACP-Patient"},
	    {"ACP-ContactPerson", "ACP-ContactPerson"},
	    {"ACP-HealthProfessional-Practitioner",
	     "ACP-HealthProfessional-Practitioner"},
	    {"ACP-HealthProfessional-PractitionerRole",
	     "ACP-HealthProfessional-PractitionerRole"},
	    {"ACP-OrganDonationChoiceRegistration",
	     "ACP-OrganDonationChoiceRegistration"},
	    {"ACP-PositionRegardingEuthanasia",
	     "ACP-PositionRegardingEuthanasia"},
	    {"ACP-PreferredPlaceOfDeath", "ACP-PreferredPlaceOfDeath"},
	    {"ACP-SenseOfPurpose", "ACP-SenseOfPurpose"},
	    {"ACP-SpecificCareWishes", "ACP-SpecificCareWishes"},
	    {"ACP-Encounter", "ACP-Encounter"},
	    {"ACP-Procedure", "ACP-Procedure"},
	    {"ACP-Medical-Policy-Goal", "ACP-MedicalPolicyGoal"},
	    {"ACP-MedicalDevice", "ACP-MedicalDevice"},
	    {"ACP-MedicalDevice.Product-ICD", "ACP-MedicalDevice.Product-ICD"},
	    {"ACP-InformRelativesRequest", "ACP-InformRelativesRequest"},
	};
	struct xf_ctx c = {.from = RULES_R4};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char r4a[256], r4b[256], s3[256];

		snprintf(r4a, sizeof(r4a), R4A "%s", names[i][0]);
		snprintf(r4b, sizeof(r4b), R4B "%s", names[i][0]);
		snprintf(s3, sizeof(s3), S3 "%s", names[i][1]);
		c.from = RULES_R4;
		c.to = RULES_STU3;
		assert_string_equal(xf_url(&c, r4a), s3);
		/* InformRelativesRequest is new in the newest R4 */
		if (strcmp(names[i][0], "ACP-InformRelativesRequest") != 0)
			assert_string_equal(xf_url(&c, r4b), s3);
		c.from = RULES_STU3;
		c.to = RULES_R4;
		assert_string_equal(xf_url(&c, s3), r4a);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_profile_urls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
