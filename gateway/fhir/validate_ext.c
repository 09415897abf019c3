/*
 * validate_ext: extensions: the structure an extension (or a profiled
 * type) is checked against, and the contexts where an extension may be
 * used.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_impl.h"

/* ---- extension and type profiles ---- */

/* The structure of an extension item: its definition's profile, else the
 * one named by its url. */
const struct vstruct *
v_extension_struct(struct vrun *r, const struct vnode *d,
		   const struct fj_node *v, bool *unknown)
{
	const struct rules_structure *sd = NULL;
	const char *url;

	*unknown = false;
	for (size_t i = 0; i < d->el->ntypes && sd == NULL; i++)
		for (size_t j = 0; j < d->el->types[i].nprofiles && sd == NULL;
		     j++)
			sd = v_rule_structure(r->ctx,
					      d->el->types[i].profiles[j]);
	/* only absolute URLs name a definition; relative ones are the
	 * parts of a complex extension, defined by its slices */
	if (sd == NULL && v != NULL && v->type == FJ_OBJECT &&
	    (url = fj_get_str(v, "url")) != NULL && strchr(url, ':') != NULL) {
		sd = rules_structure(r->ctx->set, url);
		if (sd == NULL)
			*unknown = true;
	}
	if (sd != NULL && sd->type != NULL &&
	    strcmp(sd->type, "Extension") != 0)
		return NULL;
	return v_vstruct_get(r->ctx, sd);
}

/* Profiles on a type ("Quantity" with profile SimpleQuantity, ...). */
const struct vstruct *
v_type_profile_struct(struct vrun *r, const struct vnode *d, const char *type)
{
	for (size_t i = 0; i < d->el->ntypes; i++) {
		const struct rules_type *t = &d->el->types[i];

		if (strcmp(t->code, type) != 0)
			continue;
		for (size_t j = 0; j < t->nprofiles; j++) {
			const struct rules_structure *sd =
			    v_rule_structure(r->ctx, t->profiles[j]);

			if (sd != NULL)
				return v_vstruct_get(r->ctx, sd);
		}
	}
	return NULL;
}

/* ---- extension contexts ---- */

void
v_seg_push(struct vrun *r, const char *name, size_t len, const char *type,
	   bool boundary)
{
	if (r->nsegs < V_MAX_SEGS) {
		struct vseg *g = &r->segs[r->nsegs];

		g->name = name;
		g->len = len;
		g->type = type;
		g->boundary = boundary;
	}
	r->nsegs++;
}

/* R4 resources that later FHIR versions derive from the abstract
 * CanonicalResource (all of these) and MetadataResource (those marked
 * true), sorted: contexts written for R4B/R5 (cross-version extensions)
 * name the abstract types, which R4 does not have. */
static const struct {
	const char *name;
	bool metadata;
} canonical_types[] = {
    {"ActivityDefinition", true},
    {"CapabilityStatement", false},
    {"ChargeItemDefinition", true},
    {"CodeSystem", true},
    {"CompartmentDefinition", false},
    {"ConceptMap", true},
    {"EffectEvidenceSynthesis", true},
    {"EventDefinition", true},
    {"Evidence", true},
    {"EvidenceVariable", true},
    {"ExampleScenario", false},
    {"GraphDefinition", false},
    {"ImplementationGuide", false},
    {"Library", true},
    {"Measure", true},
    {"MessageDefinition", false},
    {"NamingSystem", true},
    {"OperationDefinition", false},
    {"PlanDefinition", true},
    {"Questionnaire", true},
    {"ResearchDefinition", true},
    {"ResearchElementDefinition", true},
    {"RiskEvidenceSynthesis", true},
    {"SearchParameter", false},
    {"StructureDefinition", false},
    {"StructureMap", false},
    {"TerminologyCapabilities", false},
    {"TestScript", false},
    {"ValueSet", true},
};

/* Whether the context's type name (its first n bytes) names type t:
 * itself, or an abstract CanonicalResource/MetadataResource that t is a
 * concrete form of. */
static bool
ctx_type_is(const char *e, size_t n, const char *t)
{
	bool meta;

	if (strlen(t) == n && strncmp(e, t, n) == 0)
		return true;
	if (n == 17 && strncmp(e, "CanonicalResource", n) == 0)
		meta = false;
	else if (n == 16 && strncmp(e, "MetadataResource", n) == 0)
		meta = true;
	else
		return false;
	for (size_t i = 0;
	     i < sizeof(canonical_types) / sizeof(canonical_types[0]); i++)
		if (strcmp(canonical_types[i].name, t) == 0)
			return !meta || canonical_types[i].metadata;
	return false;
}

/* True when context expression e (with "[x]" ignored) equals the type
 * name t followed by the names of segs[from..to). */
static bool
ctx_path_is(const char *e, const char *t, const struct vseg *segs, size_t from,
	    size_t to)
{
	size_t tl = strcspn(e, ".");

	if (!ctx_type_is(e, tl, t))
		return false;
	e += tl;
	for (size_t i = from; i < to; i++) {
		if (*e++ != '.' || strncmp(e, segs[i].name, segs[i].len) != 0)
			return false;
		e += segs[i].len;
		if (strncmp(e, "[x]", 3) == 0)
			e += 3;
	}
	return *e == '\0';
}

/* Whether element context expression e allows the place the host segment
 * segs[top - 1] stands for: its paths from the resource and from every
 * datatype on the way, its type, or a base type (Element, Resource...). */
static bool
ctx_element_ok(const struct vrun *r, const char *e, size_t top)
{
	const struct vseg *host = &r->segs[top - 1];
	size_t root = top - 1;
	const char *comma = strchr(e, ',');

	/* STU3: "*" is anywhere; some list several paths in one string */
	if (comma != NULL) {
		char part[256];
		size_t n = (size_t)(comma - e);

		if (n >= sizeof(part))
			return false;
		memcpy(part, e, n);
		part[n] = '\0';
		return ctx_element_ok(r, part, top) ||
		       ctx_element_ok(r, comma + 1, top);
	}
	if (strcmp(e, "*") == 0 || strcmp(e, "Element") == 0 ||
	    strcmp(e, "Base") == 0)
		return true;
	while (root > 0 && r->segs[root].name != NULL)
		root--;
	if (host->name == NULL)
		return (host->type != NULL &&
			ctx_type_is(e, strlen(e), host->type)) ||
		       strcmp(e, "Resource") == 0 ||
		       strcmp(e, "DomainResource") == 0;
	/* a segment whose type is not known matches by path only */
	if (host->type != NULL &&
	    (strcmp(e, host->type) == 0 ||
	     (v_is_quantity_type(host->type) && strcmp(e, "Quantity") == 0) ||
	     ((strcmp(e, "DataType") == 0 || strcmp(e, "Type") == 0) &&
	      host->boundary)))
		return true;
	for (size_t i = root; i < top; i++) {
		/* the root and the boundaries always have a type; the test
		 * says so to the analyzer, which sees this file alone */
		if ((i != root && !r->segs[i].boundary) ||
		    r->segs[i].type == NULL)
			continue;
		if (ctx_path_is(e, r->segs[i].type, r->segs, i + 1, top))
			return true;
		if (i != root && v_is_quantity_type(r->segs[i].type) &&
		    ctx_path_is(e, "Quantity", r->segs, i + 1, top))
			return true;
	}
	return false;
}

/* Report extension v (url, definition sd) used where none of its contexts
 * allows it. The extension's own segment is the top of the walk. */
void
v_check_ext_context(struct vrun *r, const struct rules_structure *sd,
		    const struct fj_node *v, const char *url)
{
	size_t top = r->nsegs - 1; /* the extension's own segment */
	char allowed[256];
	size_t al = 0;

	if (sd->ncontexts == 0 || r->nsegs > V_MAX_SEGS || top == 0)
		return;
	for (size_t i = 0; i < sd->ncontexts; i++) {
		const struct rules_context *c = &sd->contexts[i];

		switch (c->type) {
		case RULES_CTX_ELEMENT:
			if (ctx_element_ok(r, c->expr, top))
				return;
			break;
		case RULES_CTX_EXTENSION:
			if (r->segs[top - 1].type != NULL &&
			    strcmp(r->segs[top - 1].type, "Extension") == 0 &&
			    r->ext_url != NULL &&
			    strcmp(c->expr, r->ext_url) == 0)
				return;
			break;
		case RULES_CTX_FHIRPATH:
			v_issue(r, FHIR_INFORMATION, "not-supported", v,
				"the context '%.100s' of extension %.200s is a "
				"FHIRPath expression and was not evaluated",
				c->expr, url);
			return;
		}
	}
	/* no context allows it: the list for the message (written only
	 * now, not for every extension checked) */
	for (size_t i = 0; i < sd->ncontexts && al < sizeof(allowed); i++) {
		int n = snprintf(allowed + al, sizeof(allowed) - al, "%s%s",
				 i ? ", " : "", sd->contexts[i].expr);

		al += n > 0 ? (size_t)n : 0;
	}
	v_issue(r, FHIR_ERROR, "structure", v,
		"The extension %.200s is not allowed to be used at this point "
		"(allowed: %.200s)",
		url, allowed);
}
