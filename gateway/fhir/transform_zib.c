/*
 * transform rules of the zib profiles (Patient, RelatedPerson, Practitioner,
 * PractitionerRole, Observation): filled by i12-profiles.
 */
#include "transform_impl.h"

const struct xf_url_map xf_urls_zib[] = {
    {NULL, NULL},
};

const struct xf_type xf_types_zib[] = {
    {NULL, NULL},
};
