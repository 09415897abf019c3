/* Unit tests for the Consent rules (ACP-TreatmentDirective and
 * ACP-AdvanceDirective) both ways: one row per mapping rule, each
 * TreatmentPermitted value, each NullFlavor and JA_MAAR, references
 * inside Bundles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "outcome.h"
#include "transform.h"

#define SCT    "http://snomed.info/sct"
#define NICTIZ "http://nictiz.nl/fhir/StructureDefinition/"
#define NF     "http://hl7.org/fhir/v3/NullFlavor"
#define OID    "urn:oid:2.16.840.1.113883.2.4.3.11.60.40.4"
#define ROLE   "http://terminology.hl7.org/CodeSystem/v3-RoleCode"

/* R4 TreatmentDirective around the provision and modifierExtension. */
#define R4_TD(extra)                                                           \
	"{\"resourceType\":\"Consent\",\"status\":\"active\","                 \
	"\"scope\":{\"coding\":[{\"system\":\"http://terminology.hl7.org/"     \
	"CodeSystem/consentscope\",\"code\":\"treatment\"}]},"                 \
	"\"category\":[{\"coding\":[{\"system\":\"" SCT                        \
	"\",\"code\":\"129125009\"}]}],"                                       \
	"\"patient\":{\"reference\":\"Patient/p\"}" extra "}"
#define R4_PROV(type)                                                          \
	",\"provision\":{" type "\"code\":[{\"coding\":[{\"system\":\"" SCT    \
	"\",\"code\":\"305351004\"}]}]}"
#define SPEC(text)                                                             \
	",\"modifierExtension\":[{\"url\":\"" NICTIZ                           \
	"ext-TreatmentDirective2.SpecificationOther\",\"valueString\":\"" text \
	"\"}]"

/* STU3 TreatmentDirective with TreatmentPermitted coding and more. */
#define STU3_TD(coding, extra)                                                 \
	"{\"resourceType\":\"Consent\",\"status\":\"active\","                 \
	"\"category\":[{\"coding\":[{\"system\":\"" SCT                        \
	"\",\"code\":\"11291000146105\"}]}],"                                  \
	"\"patient\":{\"reference\":\"Patient/p\"},"                           \
	"\"extension\":[{\"url\":\"" NICTIZ                                    \
	"zib-TreatmentDirective-Treatment\",\"valueCodeableConcept\":"         \
	"{\"coding\":[{\"system\":\"" SCT "\",\"code\":\"305351004\"}]}}],"    \
	"\"modifierExtension\":[{\"url\":\"" NICTIZ                            \
	"zib-TreatmentDirective-TreatmentPermitted\","                         \
	"\"valueCodeableConcept\":{\"coding\":[" coding "]}}]" extra "}"

struct consent_case {
	const char *name;
	enum rules_fhir from, to;
	const char *in;
	enum gw_err rc;
	/* substrings the canonical output must hold / must not hold */
	const char *has[6];
	const char *hasnt[4];
	/* a report issue: its expression (exact) and a diagnostics part;
	   NULL: none wanted */
	const char *issue_expr, *issue_diag;
};

#define PERMITTED(c)                                                           \
	"\"modifierExtension\":[{\"url\":\"" NICTIZ                            \
	"zib-TreatmentDirective-TreatmentPermitted\",\"valueCodeableConcept\"" \
	":{\"coding\":[{" c "}]}}]"

static const struct consent_case cases[] = {
    /* ---- R4 -> STU3: provision.type and specificationOther ---- */
    {"permit is JA with except permit",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"permit\",")),
     GW_OK,
     {PERMITTED("\"code\":\"JA\",\"display\":\"Ja\",\"system\":\"" OID "\""),
      "\"except\":[{\"type\":\"permit\"}]", "\"code\":\"11291000146105\"",
      NICTIZ "zib-TreatmentDirective-Treatment"},
     {"\"provision\"", "\"scope\"", "129125009"},
     NULL,
     NULL},
    {"deny is NEE with except deny",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"deny\",")),
     GW_OK,
     {PERMITTED("\"code\":\"NEE\",\"display\":\"Nee\",\"system\":\"" OID "\""),
      "\"except\":[{\"type\":\"deny\"}]"},
     {"\"provision\""},
     NULL,
     NULL},
    {"'Nee, nog geen besluit genomen' is NullFlavor ASKU",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("Nee, nog geen besluit genomen")),
     GW_OK,
     {PERMITTED("\"code\":\"ASKU\",\"display\":\"Nee, nog geen besluit "
		"genomen\",\"system\":\"" NF "\"")},
     {"\"except\"", "SpecificationOther"},
     NULL,
     NULL},
    {"'Nog onbekend' is NullFlavor UNK",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("Nog onbekend")),
     GW_OK,
     {PERMITTED("\"code\":\"UNK\",\"display\":\"Nog onbekend\",\"system\":"
		"\"" NF "\"")},
     {"\"except\""},
     NULL,
     NULL},
    {"'Onbekend' is NullFlavor UNK",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("Onbekend")),
     GW_OK,
     {PERMITTED("\"code\":\"UNK\",\"display\":\"Onbekend\",\"system\":"
		"\"" NF "\"")},
     {"\"except\""},
     NULL,
     NULL},
    {"'Niet besproken' is NullFlavor NASK",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("Niet besproken")),
     GW_OK,
     {PERMITTED("\"code\":\"NASK\",\"display\":\"Niet besproken\","
		"\"system\":\"" NF "\"")},
     {"\"except\""},
     NULL,
     NULL},
    {"'Niet gevraagd' is NullFlavor NASK (any case)",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("niet gevraagd")),
     GW_OK,
     {PERMITTED("\"code\":\"NASK\",\"display\":\"niet gevraagd\","
		"\"system\":\"" NF "\"")},
     {"\"except\""},
     NULL,
     NULL},
    {"any other text is JA_MAAR with the Restrictions text",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("") SPEC("Alleen kort")),
     GW_OK,
     {PERMITTED("\"code\":\"JA_MAAR\",\"display\":\"Ja, maar met "
		"beperkingen\",\"system\":\"" OID "\""),
      "\"except\":[{\"extension\":[{\"url\":\"" NICTIZ
      "zib-TreatmentDirective-Restrictions\",\"valueString\":\"Alleen "
      "kort\"}],\"type\":\"deny\"}]"},
     {"SpecificationOther"},
     NULL,
     NULL},
    {"permit with a text keeps the text as Restrictions",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"permit\",") SPEC("Wel uitvoeren")),
     GW_OK,
     {PERMITTED("\"code\":\"JA\",\"display\":\"Ja\",\"system\":\"" OID "\""),
      "\"valueString\":\"Wel uitvoeren\"}],\"type\":\"permit\"}]"},
     {"SpecificationOther"},
     NULL,
     NULL},
    {"no decision at all: UNK, reported",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("")),
     GW_OK,
     {PERMITTED("\"code\":\"UNK\",\"system\":\"" NF "\"")},
     {"\"except\""},
     "Consent.provision.type",
     "NullFlavor UNK"},
    {"no verification in R4: Verified absent, reported",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"permit\",")),
     GW_OK,
     {"\"_valueBoolean\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/"
      "StructureDefinition/data-absent-reason\",\"valueCode\":\"unknown\"}"
      "]},\"url\":\"Verified\"",
      NICTIZ "zib-TreatmentDirective-Verification"},
     {NULL},
     NULL,
     "Verified absent"},
    {"verification with the patient is VerifiedWith Patient",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"permit\",") ",\"verification\":[{"
					   "\"verified\":true,"
					   "\"verifiedWith\":{"
					   "\"reference\":\"Patient/"
					   "p\"},\"verificationDate\":"
					   "\"2020-10-01\"}]"),
     GW_OK,
     {"{\"url\":\"Verified\",\"valueBoolean\":true}",
      "{\"url\":\"VerificationDate\",\"valueDateTime\":\"2020-10-01\"}",
      "\"code\":\"116154003\""},
     {"\"verification\""},
     NULL,
     NULL},
    {"a second verification without verified (invalid R4) is reported, "
     "not a crash",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"permit\",") ",\"verification\":[{"
					   "\"verified\":true},{"
					   "\"verificationDate\":"
					   "\"2020\"}]"),
     GW_OK,
     {"{\"url\":\"Verified\",\"valueBoolean\":true}"},
     {"2020"},
     "Consent.verification[1]",
     "one Verified"},
    {"two identifiers: the first, the other reported",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"deny\",") ",\"identifier\":[{\"value\":"
					 "\"a\"},{\"value\":\"b\"}]"),
     GW_OK,
     {"\"identifier\":{\"value\":\"a\"}"},
     {"\"b\""},
     "Consent.identifier",
     "1 after the first"},
    {"two treatment codes: the first, the other reported",
     RULES_R4,
     RULES_STU3,
     R4_TD(",\"provision\":{\"type\":\"deny\",\"code\":[{\"text\":\"a\"},{"
	   "\"text\":\"b\"}]}"),
     GW_OK,
     {"Treatment\",\"valueCodeableConcept\":{\"text\":\"a\"}"},
     {"\"b\""},
     "Consent.provision.code",
     "one code"},
    {"a scope other than the profile's is reported",
     RULES_R4,
     RULES_STU3,
     "{\"resourceType\":\"Consent\",\"scope\":{\"text\":\"x\"},"
     "\"category\":[{\"coding\":[{\"system\":\"" SCT
     "\",\"code\":\"129125009\",\"display\":\"d\"}]}],\"provision\":{"
     "\"type\":\"permit\"}}",
     GW_OK,
     {"\"code\":\"11291000146105\",\"system\""},
     {"\"scope\"", "\"display\":\"d\""},
     "Consent.scope",
     "no scope"},
    {"CONSENTER actors are consentingParty, a PractitionerRole in the "
     "Bundle its Practitioner, other roles STU3 actors",
     RULES_R4,
     RULES_STU3,
     "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
     "{\"fullUrl\":\"urn:uuid:role\",\"resource\":{\"resourceType\":"
     "\"PractitionerRole\",\"practitioner\":{\"reference\":"
     "\"urn:uuid:prac\",\"display\":\"Dr P\"}}},"
     "{\"resource\":" R4_TD(",\"provision\":{\"type\":\"permit\","
			    "\"actor\":[{\"role\":{\"coding\":[{"
			    "\"system\":\"" ROLE "\",\"code\":\"CONSENTER\"}]},"
			    "\"reference\":{\"reference\":"
			    "\"urn:uuid:role\",\"type\":"
			    "\"PractitionerRole\"}},{\"role\":{"
			    "\"coding\":[{\"system\":\"" ROLE
			    "\",\"code\":\"INF\"}]},\"reference\":{"
			    "\"reference\":\"Patient/p\"}}]}") "}]}",
     GW_OK,
     {"\"consentingParty\":[{\"display\":\"Dr P\",\"extension\":[{\"url\":"
      "\"" NICTIZ "practitionerrole-reference\",\"valueReference\":{"
      "\"reference\":\"urn:uuid:role\"}}],\"reference\":\"urn:uuid:prac\"}]",
      "\"actor\":[{\"reference\":{\"reference\":\"Patient/p\"},\"role\":"},
     {"\"type\":\"PractitionerRole\""},
     "Bundle.entry[1].resource.provision.actor[0].reference",
     "Reference.type"},
    {"AdvanceDirective: acd, the living will type a category, RESPRSN "
     "consentingParty",
     RULES_R4,
     RULES_STU3,
     "{\"resourceType\":\"Consent\",\"scope\":{\"coding\":[{\"system\":"
     "\"http://terminology.hl7.org/CodeSystem/consentscope\",\"code\":"
     "\"adr\"}]},\"category\":[{\"coding\":[{\"system\":\"http://"
     "terminology.hl7.org/CodeSystem/consentcategorycodes\",\"code\":"
     "\"acd\"}]}],\"provision\":{\"actor\":[{\"role\":{\"coding\":[{"
     "\"system\":\"" ROLE "\",\"code\":\"RESPRSN\"}]},\"reference\":{"
     "\"reference\":\"RelatedPerson/r\"}}],\"code\":[{\"coding\":[{"
     "\"system\":\"urn:oid:x\",\"code\":\"NR\"}]}]}}",
     GW_OK,
     {"\"category\":[{\"coding\":[{\"code\":\"11341000146107\",\"system\":"
      "\"" SCT "\"}]},{\"coding\":[{\"code\":\"NR\"",
      "\"consentingParty\":[{\"reference\":\"RelatedPerson/r\"}]"},
     {"\"scope\"", "TreatmentPermitted", "Verification", "\"actor\""},
     NULL,
     NULL},

    {"AdvanceDirective: no dateTime is set absent, sourceReference left "
     "out, both reported",
     RULES_R4,
     RULES_STU3,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"http://terminology.hl7.org/CodeSystem/"
     "consentcategorycodes\",\"code\":\"acd\"}]}],\"sourceReference\":{"
     "\"reference\":\"DocumentReference/d\"}}",
     GW_OK,
     {"\"_dateTime\":{\"extension\":[{\"url\":\"http://hl7.org/fhir/"
      "StructureDefinition/data-absent-reason\",\"valueCode\":\"unknown\"}"
      "]}"},
     {"sourceReference"},
     "Consent.sourceReference",
     "left out"},
    {"TreatmentDirective: sourceAttachment left out, reported",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"deny\",") ",\"sourceAttachment\":{"
					 "\"title\":\"t\"}"),
     GW_OK,
     {"\"code\":\"NEE\""},
     {"sourceAttachment", "\"_dateTime\""},
     "Consent.sourceAttachment",
     "TreatmentDirective takes no sourceAttachment"},
    {"additionalSources: an Identifier becomes a Reference's, an "
     "Attachment is left out (reported)",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"" SCT "\",\"code\":\"11291000146105\"}]}],"
     "\"extension\":[{\"url\":\"" NICTIZ "consent-additionalSources\","
     "\"valueIdentifier\":{\"value\":\"ad-1\"}},{\"url\":\"" NICTIZ
     "consent-additionalSources\",\"valueAttachment\":{\"title\":"
     "\"pdf\"}},{\"url\":\"" NICTIZ "zib-TreatmentDirective-Treatment\","
     "\"valueCodeableConcept\":{\"text\":\"t\"}}],"
     "\"modifierExtension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-TreatmentPermitted\",\"valueCodeableConcept\":"
     "{\"coding\":[{\"system\":\"" OID "\",\"code\":\"JA\"}]}}]}",
     GW_OK,
     {"{\"url\":\"" NICTIZ "ext-TreatmentDirective2.AdvanceDirective\","
      "\"valueReference\":{\"identifier\":{\"value\":\"ad-1\"}}}"},
     {"valueAttachment", "consent-additionalSources"},
     "Consent.extension[1]",
     "left out"},
    {"policyRule coding is system#code in STU3",
     RULES_R4,
     RULES_STU3,
     R4_TD(R4_PROV("\"type\":\"deny\",") ",\"policyRule\":{\"coding\":"
					 "[{\"system\":\"urn:s\",\"code\":"
					 "\"OPTIN\"}]}"),
     GW_OK,
     {"\"policyRule\":\"urn:s#OPTIN\""},
     {NULL},
     NULL,
     NULL},
    {"policyRule system#code back to a coding, another uri its text",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"JA\"}",
	     ",\"policyRule\":\"urn:s#OPTIN\""),
     GW_OK,
     {"\"policyRule\":{\"coding\":[{\"code\":\"OPTIN\",\"system\":"
      "\"urn:s\"}]}"},
     {NULL},
     NULL,
     NULL},
    /* ---- STU3 -> R4: each TreatmentPermitted value ---- */
    {"JA is permit; its except is consumed",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"JA\"}",
	     ",\"except\":[{\"type\":\"permit\"}]"),
     GW_OK,
     {"\"provision\":{\"code\":[{\"coding\":[{\"code\":\"305351004\","
      "\"system\":\"" SCT "\"}]}],\"type\":\"permit\"}",
      "\"scope\":{\"coding\":[{\"code\":\"treatment\"",
      "\"code\":\"129125009\""},
     {"modifierExtension", "except", "11291000146105"},
     "Consent",
     "scope"},
    {"NEE is deny",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"NEE\"}",
	     ",\"except\":[{\"type\":\"deny\"}]"),
     GW_OK,
     {"\"type\":\"deny\"}"},
     {"modifierExtension", "except"},
     NULL,
     NULL},
    {"JA_MAAR is no type and specificationOther with the restriction",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"JA_MAAR\"}",
	     ",\"except\":[{\"type\":\"deny\",\"extension\":[{\"url\":"
	     "\"" NICTIZ "zib-TreatmentDirective-Restrictions\","
	     "\"valueString\":\"Alleen kort\"}]}]"),
     GW_OK,
     {"\"modifierExtension\":[{\"url\":\"" NICTIZ
      "ext-TreatmentDirective2.SpecificationOther\",\"valueString\":"
      "\"Alleen kort\"}]"},
     {"\"type\"", "except", "Restrictions"},
     NULL,
     NULL},
    {"JA_MAAR without a restriction text: the value's words, reported",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"JA_MAAR\"}", ""),
     GW_OK,
     {"\"valueString\":\"Ja, maar met beperkingen\""},
     {"\"type\""},
     "Consent.modifierExtension",
     "JA_MAAR"},
    {"ASKU is its specificationOther text",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" NF "\",\"code\":\"ASKU\"}", ""),
     GW_OK,
     {"\"valueString\":\"Nee, nog geen besluit genomen\""},
     {"\"type\""},
     NULL,
     NULL},
    {"UNK is 'Nog onbekend'",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"http://terminology.hl7.org/CodeSystem/"
	     "v3-NullFlavor\",\"code\":\"UNK\"}",
	     ""),
     GW_OK,
     {"\"valueString\":\"Nog onbekend\""},
     {"\"type\""},
     NULL,
     NULL},
    {"NASK keeps a known display as its text",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" NF "\",\"code\":\"NASK\",\"display\":"
	     "\"Niet gevraagd\"}",
	     ""),
     GW_OK,
     {"\"valueString\":\"Niet gevraagd\""},
     {"\"type\""},
     NULL,
     NULL},
    {"NASK without display is 'Niet besproken'",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" NF "\",\"code\":\"NASK\"}", ""),
     GW_OK,
     {"\"valueString\":\"Niet besproken\""},
     {NULL},
     NULL,
     NULL},
    {"a NullFlavor with no PZP text is refused",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" NF "\",\"code\":\"MSK\"}", ""),
     GW_REJECT,
     {NULL},
     {NULL},
     "Consent.modifierExtension",
     "MSK"},
    {"a code outside the value set is refused",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"urn:x\",\"code\":\"JA\"}", ""),
     GW_REJECT,
     {NULL},
     {NULL},
     "Consent.modifierExtension",
     NULL},
    {"Verification becomes verification, one per VerifiedWith",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"JA\"}",
	     ",\"identifier\":{\"value\":\"i\"}"),
     GW_OK,
     {"\"identifier\":[{\"value\":\"i\"}]"},
     {NULL},
     NULL,
     NULL},
    {"Verification: one R4 verification per VerifiedWith; an "
     "Organization consentingParty is performer",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{\"system\""
     ":\"" SCT "\",\"code\":\"11291000146105\"}]}],\"modifierExtension\":"
     "[{\"url\":\"" NICTIZ "zib-TreatmentDirective-TreatmentPermitted\","
     "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"" OID
     "\",\"code\":\"NEE\"}]}},{\"url\":\"u\"}],\"extension\":[{\"url\":"
     "\"" NICTIZ "zib-TreatmentDirective-Verification\",\"extension\":["
     "{\"url\":\"Verified\",\"valueBoolean\":false},{\"url\":"
     "\"VerifiedWith\",\"valueCodeableConcept\":{\"coding\":[{\"system\":"
     "\"" SCT "\",\"code\":\"116154003\"}]}},{\"url\":\"VerifiedWith\","
     "\"valueCodeableConcept\":{\"coding\":[{\"system\":\"" NF "\","
     "\"code\":\"OTH\"}],\"text\":\"Buurman\"}}]},{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-Treatment\",\"valueCodeableConcept\":{"
     "\"text\":\"t\"}}],\"patient\":{\"reference\":\"Patient/p\"},"
     "\"consentingParty\":[{\"reference\":\"Organization/o\"}]}",
     GW_OK,
     {"\"verification\":[{\"verified\":false,\"verifiedWith\":{"
      "\"reference\":\"Patient/p\"}},{\"verified\":false,\"verifiedWith\":"
      "{\"display\":\"Buurman\"}}]",
      "\"modifierExtension\":[{\"url\":\"u\"}]",
      "\"performer\":[{\"reference\":\"Organization/o\"}]",
      "\"code\":[{\"text\":\"t\"}]"},
     {"consentingParty", "\"actor\""},
     NULL,
     NULL},
    {"no Treatment: refused (R4 requires it, no default exists)",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"" SCT "\",\"code\":\"11291000146105\"}]}],"
     "\"modifierExtension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-TreatmentPermitted\",\"valueCodeableConcept\""
     ":{\"coding\":[{\"system\":\"" OID "\",\"code\":\"NEE\"}]}}]}",
     GW_REJECT,
     {NULL},
     {NULL},
     "Consent.extension",
     "requires provision.code"},
    {"except.code is the nested provision's code, reported with the "
     "except's input index",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"NEE\"}",
	     ",\"except\":[{\"type\":\"deny\"},{\"type\":\"deny\",\"code\":"
	     "[{\"system\":\"" SCT "\",\"code\":\"40617009\"}]}]"),
     GW_OK,
     {"\"provision\":[{\"code\":[{\"coding\":[{\"code\":\"40617009\","
      "\"system\":\"" SCT "\"}]}],\"type\":\"deny\"}]"},
     {"\"except\""},
     "Consent.except[1].code",
     "nested R4 provision.provision[0].code"},
    {"a bare Practitioner as consentingParty is R4 performer, reported",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"NEE\"}",
	     ",\"consentingParty\":[{\"reference\":\"Practitioner/1\"}]"),
     GW_OK,
     {"\"performer\":[{\"reference\":\"Practitioner/1\"}]"},
     {"\"actor\"", "consentingParty"},
     "Consent.consentingParty[0]",
     "cannot be a Practitioner"},
    {"a bare Practitioner as actor is R4 performer, its role reported",
     RULES_STU3,
     RULES_R4,
     STU3_TD("{\"system\":\"" OID "\",\"code\":\"NEE\"}",
	     ",\"actor\":[{\"role\":{\"text\":\"r\"},\"reference\":{"
	     "\"reference\":\"Practitioner/2\"}}]"),
     GW_OK,
     {"\"performer\":[{\"reference\":\"Practitioner/2\"}]"},
     {"\"actor\""},
     "Consent.actor[0].reference",
     "its actor role is left out"},
    {"a Treatment outside the zib2020 list is NullFlavor OTH, the code "
     "in the text",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"" SCT "\",\"code\":\"11291000146105\"}]}],"
     "\"extension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-Treatment\",\"valueCodeableConcept\":"
     "{\"coding\":[{\"system\":\"" SCT "\",\"code\":\"229912004\","
     "\"display\":\"Enteral feeding\"}]}}],"
     "\"modifierExtension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-TreatmentPermitted\",\"valueCodeableConcept\""
     ":{\"coding\":[{\"system\":\"" OID "\",\"code\":\"NEE\"}]}}]}",
     GW_OK,
     {"\"code\":[{\"coding\":[{\"code\":\"OTH\",\"display\":\"other\","
      "\"system\":\"http://terminology.hl7.org/CodeSystem/v3-NullFlavor\"}],"
      "\"text\":\"Enteral feeding (SNOMED CT - 229912004)\"}]"},
     {"\"code\":\"229912004\""},
     "Consent.extension",
     "not in the zib2020 list R4 requires"},
    {"a Treatment of the zib2020 list is kept as it is",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"" SCT "\",\"code\":\"11291000146105\"}]}],"
     "\"extension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-Treatment\",\"valueCodeableConcept\":"
     "{\"coding\":[{\"system\":\"" SCT "\",\"code\":\"281789004\"}]}}],"
     "\"modifierExtension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-TreatmentPermitted\",\"valueCodeableConcept\""
     ":{\"coding\":[{\"system\":\"" OID "\",\"code\":\"NEE\"}]}}]}",
     GW_OK,
     {"\"code\":[{\"coding\":[{\"code\":\"281789004\",\"system\":\"" SCT
      "\"}]}]"},
     {"OTH"},
     NULL,
     NULL},
    {"AdvanceDirective: a second representative is left out, reported",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{"
     "\"system\":\"" SCT "\",\"code\":\"11341000146107\"}]}],"
     "\"consentingParty\":[{\"reference\":\"RelatedPerson/a\"}],"
     "\"actor\":[{\"role\":{\"coding\":[{\"system\":\"" ROLE
     "\",\"code\":\"RESPRSN\"}]},\"reference\":{\"reference\":"
     "\"RelatedPerson/b\"}}]}",
     GW_OK,
     {"\"reference\":\"RelatedPerson/a\""},
     {"RelatedPerson/b"},
     "Consent.actor[0].reference",
     "one representative"},
    {"AdvanceDirective: category to provision.code, consentingParty "
     "RESPRSN, the Treatment copy reported",
     RULES_STU3,
     RULES_R4,
     "{\"resourceType\":\"Consent\",\"category\":[{\"coding\":[{\"system\":"
     "\"" SCT "\",\"code\":\"11341000146107\"}]},{\"coding\":[{\"system\":"
     "\"urn:oid:x\",\"code\":\"NR\"}]}],\"extension\":[{\"url\":\"" NICTIZ
     "zib-TreatmentDirective-Treatment\",\"valueCodeableConcept\":{"
     "\"coding\":[{\"system\":\"urn:oid:x\",\"code\":\"NR\"}]}}],"
     "\"consentingParty\":[{\"reference\":\"RelatedPerson/r\"}],"
     "\"sourceIdentifier\":{\"value\":\"s\"}}",
     GW_OK,
     {"\"category\":[{\"coding\":[{\"code\":\"acd\",\"system\":\"http://"
      "terminology.hl7.org/CodeSystem/consentcategorycodes\"}]}]",
      "\"provision\":{\"actor\":[{\"reference\":{\"reference\":"
      "\"RelatedPerson/r\"},\"role\":{\"coding\":[{\"code\":\"RESPRSN\"",
      "\"code\":[{\"coding\":[{\"code\":\"NR\"",
      "\"sourceReference\":{\"identifier\":{\"value\":\"s\"}}",
      "\"scope\":{\"coding\":[{\"code\":\"adr\""},
     {"Treatment", "consentingParty", "sourceIdentifier"},
     "Consent.extension",
     "AdvanceDirective"},
};

static void
test_consent_rules(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct consent_case *k = &cases[i];
		struct fj_doc *d = NULL;
		struct fj_error jerr;
		json_t *rep = fhir_outcome_new();
		struct buf b;
		char *out, *r;
		enum gw_err rc;

		if (fj_parse(k->in, strlen(k->in), 0, &d, &jerr) != GW_OK)
			fail_msg("%s: input does not parse: %s", k->name,
				 jerr.msg);
		rc = xf_convert(d, k->from, k->to, rep);
		r = fhir_dump(rep);
		if (rc != k->rc)
			fail_msg("%s: got %s, want %s; report %s", k->name,
				 gw_strerror(rc), gw_strerror(k->rc), r);
		buf_init(&b, 1 << 20);
		assert_int_equal(fj_dump(d->root, FJ_CANONICAL, &b), GW_OK);
		out = buf_steal(&b, NULL);
		for (size_t j = 0; rc == GW_OK && j < 6 && k->has[j]; j++)
			if (strstr(out, k->has[j]) == NULL)
				fail_msg("%s:\n got  %s\n want it to hold %s",
					 k->name, out, k->has[j]);
		for (size_t j = 0; rc == GW_OK && j < 4 && k->hasnt[j]; j++)
			if (strstr(out, k->hasnt[j]) != NULL)
				fail_msg("%s:\n got  %s\n want no %s", k->name,
					 out, k->hasnt[j]);
		if (k->issue_expr != NULL || k->issue_diag != NULL) {
			bool found = false;
			size_t j;
			const json_t *is;

			json_array_foreach(json_object_get(rep, "issue"), j, is)
			{
				const char *e =
				    json_string_value(json_array_get(
					json_object_get(is, "expression"), 0));
				const char *dg = json_string_value(
				    json_object_get(is, "diagnostics"));

				if (k->issue_expr != NULL &&
				    (e == NULL ||
				     strcmp(e, k->issue_expr) != 0))
					continue;
				if (k->issue_diag != NULL &&
				    (dg == NULL ||
				     strstr(dg, k->issue_diag) == NULL))
					continue;
				found = true;
			}
			if (!found)
				fail_msg(
				    "%s: no issue at %s saying %s: %s", k->name,
				    k->issue_expr ? k->issue_expr : "*",
				    k->issue_diag ? k->issue_diag : "*", r);
		}
		free(r);
		free(out);
		json_decref(rep);
		fj_doc_free(d);
	}
}

static bool
same(const struct fj_node *a, const struct fj_node *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return fj_equal(a, b, FDEC_EXACT);
}

/* Each R4 decision survives R4 -> STU3 -> R4 unchanged. */
static void
test_decisions_round_trip(void **state)
{
	static const char *const inputs[] = {
	    R4_TD(R4_PROV("\"type\":\"permit\",")),
	    R4_TD(R4_PROV("\"type\":\"deny\",")),
	    R4_TD(R4_PROV("") SPEC("Nee, nog geen besluit genomen")),
	    R4_TD(R4_PROV("") SPEC("Nog onbekend")),
	    R4_TD(R4_PROV("") SPEC("Onbekend")),
	    R4_TD(R4_PROV("") SPEC("Niet besproken")),
	    R4_TD(R4_PROV("") SPEC("Niet gevraagd")),
	    R4_TD(R4_PROV("") SPEC("Alleen als het kort duurt")),
	    R4_TD(R4_PROV("\"type\":\"permit\",") SPEC("Wel uitvoeren")),
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		struct fj_doc *a = NULL, *d = NULL;
		struct fj_error jerr;
		const struct fj_node *pa, *pd, *ma, *md;

		assert_int_equal(
		    fj_parse(inputs[i], strlen(inputs[i]), 0, &a, &jerr),
		    GW_OK);
		assert_int_equal(
		    fj_parse(inputs[i], strlen(inputs[i]), 0, &d, &jerr),
		    GW_OK);
		assert_int_equal(xf_convert(d, RULES_R4, RULES_STU3, NULL),
				 GW_OK);
		assert_int_equal(xf_convert(d, RULES_STU3, RULES_R4, NULL),
				 GW_OK);
		pa = fj_get(a->root, "provision");
		pd = fj_get(d->root, "provision");
		ma = fj_get(a->root, "modifierExtension");
		md = fj_get(d->root, "modifierExtension");
		if (!same(fj_get(pa, "type"), fj_get(pd, "type")) ||
		    !same(fj_get(pa, "code"), fj_get(pd, "code")) ||
		    (ma == NULL) != (md == NULL) ||
		    (ma != NULL && !fj_equal(ma, md, FDEC_EXACT))) {
			struct buf b;

			buf_init(&b, 1 << 20);
			fj_dump(d->root, FJ_CANONICAL, &b);
			fail_msg("case %zu back:\n got  %.*s\n want %s", i,
				 (int)b.len, b.data, inputs[i]);
		}
		fj_doc_free(a);
		fj_doc_free(d);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_consent_rules),
	    cmocka_unit_test(test_decisions_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
