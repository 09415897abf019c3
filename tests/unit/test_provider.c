/* Unit tests for the pull API's view of a peer (provider_view_allows). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "provider.h"

#define TD_OLD                                                                 \
	"https://fhir.iknl.nl/fhir/StructureDefinition/ACP-TreatmentDirective"
#define TD_NEW                                                                 \
	"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"                 \
	"ACP-TreatmentDirective"
#define WISH_NEW                                                               \
	"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"                 \
	"ACP-SpecificCareWishes"
#define WISH_OLD                                                               \
	"https://fhir.iknl.nl/fhir/StructureDefinition/ACP-SpecificCareWishes"
#define DEATH_NEW                                                              \
	"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"                 \
	"ACP-PreferredPlaceOfDeath"
#define PURPOSE_OLD                                                            \
	"https://fhir.iknl.nl/fhir/StructureDefinition/ACP-SenseOfPurpose"
#define EUTH_NEW                                                               \
	"https://api.iknl.nl/docs/pzp/r4/StructureDefinition/"                 \
	"ACP-PositionRegardingEuthanasia"

struct view_case {
	const char *name;
	const char *resources;
	const char *view;
	const char *type;
	const char *profile; /* NULL: none */
	bool want;
};

static const struct view_case view_cases[] = {
    {"no view: all", NULL, NULL, "Consent", TD_NEW, true},
    {"full: all", NULL, "full", "Consent", TD_OLD, true},
    {"social: patient", NULL, "social", "Patient", NULL, true},
    {"social: contact person", NULL, "social", "RelatedPerson", NULL, true},
    {"social: no treatment directive", NULL, "social", "Consent", TD_NEW,
     false},
    {"social: no old treatment directive", NULL, "social", "Consent", TD_OLD,
     false},
    {"social: care wishes", NULL, "social", "Observation", WISH_NEW, true},
    {"social: old care wishes", NULL, "social", "Observation", WISH_OLD, true},
    {"social: versioned profile", NULL, "social", "Observation",
     DEATH_NEW "|1.0.0", true},
    {"social: sense of purpose", NULL, "social", "Observation", PURPOSE_OLD,
     true},
    {"social: no euthanasia position", NULL, "social", "Observation", EUTH_NEW,
     false},
    {"social: no unprofiled observation", NULL, "social", "Observation", NULL,
     false},
    {"social: no goal", NULL, "social", "Goal", NULL, false},
    {"social widened by profile", TD_NEW, "social", "Consent", TD_NEW, true},
    {"social widened: other profile still hidden", TD_NEW, "social", "Consent",
     TD_OLD, false},
    {"social widened by type", "Goal", "social", "Goal", NULL, true},
    {"resources: type", "Patient Goal", NULL, "Goal", NULL, true},
    {"resources: type is exact", "Patient, Goal", NULL, "Go", NULL, false},
    {"resources: prefix of a type is not it", "Pat", NULL, "Patient", NULL,
     false},
    {"resources: other type", "Patient,Goal", NULL, "Consent", TD_NEW, false},
    {"resources: profile", "Patient, " TD_NEW, NULL, "Consent", TD_NEW, true},
    {"resources: profile prefix is not it",
     "https://api.iknl.nl/docs/pzp/r4/StructureDefinition/ACP-Treatment", NULL,
     "Consent", TD_NEW, false},
};

static void
test_view(void **state)
{
	for (size_t i = 0; i < sizeof(view_cases) / sizeof(view_cases[0]);
	     i++) {
		const struct view_case *c = &view_cases[i];
		const char *prof[1] = {c->profile};
		bool got = provider_view_allows(c->resources, c->view, c->type,
						prof, c->profile ? 1 : 0);

		if (got != c->want)
			fail_msg("%s: got %d, want %d", c->name, got, c->want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_view),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
