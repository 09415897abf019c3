/*
 * transform rules of the Consent profiles: ACP-TreatmentDirective and
 * ACP-AdvanceDirective, both ways.
 */
#include "transform_impl.h"

const struct xf_url_map xf_urls_consent[] = {
    {NULL, NULL},
};

const struct xf_type xf_types_consent[] = {
    {NULL, NULL},
};
