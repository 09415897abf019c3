/*
 * transform rules of the care resources (Encounter, Procedure, Goal,
 * Communication, CommunicationRequest, Device, DeviceUseStatement,
 * QuestionnaireResponse and the rest): filled by i12-profiles.
 */
#include "transform_impl.h"

const struct xf_url_map xf_urls_care[] = {
    {NULL, NULL},
};

const struct xf_type xf_types_care[] = {
    {NULL, NULL},
};
