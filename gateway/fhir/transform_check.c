/*
 * The check after the transform rules (xf_check): the converted document
 * against the target version's own validator, a missing required element
 * marked data-absent-reason where its type can carry the mark, and every
 * requirement still unmet a refusal naming the output element.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outcome.h"
#include "transform.h"
#include "validate.h"

/* Longest output FHIRPath looked at; most data-absent marks made. */
#define XC_PATH_MAX 512
#define XC_FILL_MAX 32

#define XC_DAR_URL "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

/* One data-absent mark made: where, for the report. */
struct xc_fill {
	char path[XC_PATH_MAX];
};

static const char *
vname(enum rules_fhir v)
{
	return v == RULES_R4 ? "R4" : "STU3";
}

/* Errors of validating root; GW_OK with *out a new OperationOutcome the
 * caller frees. */
static enum gw_err
run_validator(struct validate_ctx *vctx, const struct fj_node *root,
	      json_t **out)
{
	struct validate_opts vo = {.quiet_when_valid = true};
	json_t *oo = fhir_outcome_new();
	enum gw_err err;

	*out = NULL;
	if (oo == NULL)
		return GW_NOMEM;
	if ((err = validate_document(vctx, root, &vo, oo)) != GW_OK) {
		json_decref(oo);
		/* no verdict (GW_TEMP cannot happen without a deadline):
		   the conversion cannot be vouched for */
		return err == GW_NOMEM ? GW_NOMEM : GW_PERM;
	}
	*out = oo;
	return GW_OK;
}

/*
 * The element definition of the resource type rtype at the member path
 * segs[0..n-1] (names without indexes), following complex types into
 * their own definitions; NULL when unknown.
 */
static const struct rules_element *
element_at(const struct rules_set *set, const char *rtype, char segs[][64],
	   size_t n)
{
	const struct rules_structure *st = rules_type(set, rtype);
	char base[XC_PATH_MAX], want[XC_PATH_MAX];
	const struct rules_element *el = NULL;

	snprintf(base, sizeof(base), "%s", rtype);
	for (size_t i = 0; i < n && st != NULL; i++) {
		int w = snprintf(want, sizeof(want), "%s.%s", base, segs[i]);

		el = NULL;
		if (w < 0 || (size_t)w >= sizeof(want))
			return NULL;
		for (size_t k = 0; k < st->nelements; k++) {
			const struct rules_element *e = &st->elements[k];

			if (e->slice_name == NULL &&
			    strcmp(e->path, want) == 0) {
				el = e;
				break;
			}
		}
		if (el == NULL || i + 1 == n)
			return el;
		if (el->ntypes != 1 || el->types[0].code == NULL)
			return NULL;
		/* A backbone element's children are in the same snapshot;
		   a data type's in the type's own definition. */
		if ((strcmp(el->types[0].code, "BackboneElement") == 0 ||
		     strcmp(el->types[0].code, "Element") == 0)) {
			snprintf(base, sizeof(base), "%s", want);
			continue;
		}
		st = rules_type(set, el->types[0].code);
		snprintf(base, sizeof(base), "%s", el->types[0].code);
	}
	/* a type on the way has no definition here */
	return NULL;
}

/*
 * Walk the output path expr ("Bundle.entry[2].resource.relationship")
 * in root: the object that should hold the last member into *parent, the
 * member name into key, and the element definition into *el. False when
 * the path is not a plain member path of this document.
 */
static bool
locate(const struct rules_set *set, struct fj_node *root, const char *expr,
       struct fj_node **parent, char *key, size_t keylen,
       const struct rules_element **el)
{
	char segs[32][64], rel[32][64];
	size_t nsegs = 0, nrel = 0;
	const char *p = expr, *rtype;
	struct fj_node *n = root;

	/* split at '.', refusing anything but names and [index] */
	while (*p != '\0') {
		size_t l = strcspn(p, ".");

		if (l == 0 || l >= sizeof(segs[0]) || nsegs == 32)
			return false;
		memcpy(segs[nsegs], p, l);
		segs[nsegs][l] = '\0';
		/* "ofType(T)" after a Bundle entry's resource names its type;
		   nothing else but names and [index] is walked */
		if (strncmp(segs[nsegs], "ofType(", 7) != 0 &&
		    strcspn(segs[nsegs], "():' ") != l)
			return false;
		nsegs++;
		p += l;
		if (*p == '.')
			p++;
	}
	rtype = fj_get_str(root, "resourceType");
	if (nsegs < 2 || rtype == NULL || strcmp(segs[0], rtype) != 0)
		return false;
	for (size_t i = 1; i + 1 < nsegs; i++) {
		char name[64];
		char *br = strchr(segs[i], '[');
		long idx = -1;

		if (strncmp(segs[i], "ofType(", 7) == 0) {
			size_t tl = strlen(rtype);

			if (n == root || strncmp(segs[i] + 7, rtype, tl) != 0 ||
			    strcmp(segs[i] + 7 + tl, ")") != 0 || nrel != 0)
				return false;
			continue;
		}
		snprintf(name, sizeof(name), "%s", segs[i]);
		if (br != NULL) {
			char *end;

			name[br - segs[i]] = '\0';
			idx = strtol(br + 1, &end, 10);
			if (idx < 0 || strcmp(end, "]") != 0)
				return false;
		}
		n = fj_get(n, name);
		if (n != NULL && idx >= 0)
			n = n->type == FJ_ARRAY ? fj_at(n, (size_t)idx) : NULL;
		if (n == NULL || n->type != FJ_OBJECT)
			return false;
		if (fj_get_str(n, "resourceType") != NULL) {
			rtype = fj_get_str(n, "resourceType");
			nrel = 0;
			continue;
		}
		if (nrel == 32)
			return false;
		snprintf(rel[nrel++], sizeof(rel[0]), "%s", name);
	}
	if (strpbrk(segs[nsegs - 1], "[(") != NULL || nrel == 32)
		return false;
	snprintf(rel[nrel++], sizeof(rel[0]), "%s", segs[nsegs - 1]);
	*parent = n;
	snprintf(key, keylen, "%s", segs[nsegs - 1]);
	*el = element_at(set, rtype, rel, nrel);
	return *el != NULL;
}

/* A new {"extension": [data-absent-reason unknown]} in doc. */
static struct fj_node *
dar_holder(struct fj_doc *doc)
{
	struct fj_node *o = fj_new_object(doc), *arr = fj_new_array(doc);
	struct fj_node *x = fj_new_object(doc), *u, *c;

	if (o == NULL || arr == NULL || x == NULL ||
	    (u = fj_new_string(doc, XC_DAR_URL)) == NULL ||
	    fj_set(doc, x, "url", u) != GW_OK ||
	    (c = fj_new_string(doc, "unknown")) == NULL ||
	    fj_set(doc, x, "valueCode", c) != GW_OK)
		return NULL;
	fj_append(arr, x);
	if (fj_set(doc, o, "extension", arr) != GW_OK)
		return NULL;
	return o;
}

/*
 * Mark the element the finding is names as absent, when it is a
 * required element missing from an object that exists, not a modifier,
 * and its type can carry the data-absent-reason extension (a complex
 * type; a primitive that is not a list, in its "_name" companion). True
 * when marked.
 */
static bool
fill_one(const struct rules_set *set, struct fj_doc *doc, const json_t *is,
	 enum gw_err *err)
{
	const char *code = json_string_value(json_object_get(is, "code"));
	const char *diag =
	    json_string_value(json_object_get(is, "diagnostics"));
	const char *expr = json_string_value(
	    json_array_get(json_object_get(is, "expression"), 0));
	const char *colon;
	const struct rules_element *el = NULL;
	struct fj_node *parent = NULL, *val;
	char key[64], under[66];
	bool prim;

	if (code == NULL || diag == NULL || expr == NULL ||
	    strcmp(code, "required") != 0 ||
	    strstr(diag, "but only found 0") == NULL)
		return false;
	/* a slice ("X.relationship:role") needs its discriminating value,
	   which no mark supplies */
	colon = strstr(diag, ": minimum required");
	if (colon == NULL || memchr(diag, ':', (size_t)(colon - diag)) != NULL)
		return false;
	if (!locate(set, doc->root, expr, &parent, key, sizeof(key), &el) ||
	    el->ntypes != 1 || el->types[0].code == NULL ||
	    fj_get(parent, key) != NULL)
		return false;
	snprintf(under, sizeof(under), "_%s", key);
	prim = el->types[0].code[0] >= 'a' && el->types[0].code[0] <= 'z';
	if (prim && (el->base_max > 1 || fj_get(parent, under) != NULL))
		return false;
	/* a modifier marked unknown would change what the resource means */
	if (el->is_modifier || strcmp(el->types[0].code, "Resource") == 0 ||
	    strcmp(el->types[0].code, "Extension") == 0)
		return false;
	if ((val = dar_holder(doc)) == NULL) {
		*err = GW_NOMEM;
		return false;
	}
	if (!prim && el->base_max > 1) {
		struct fj_node *arr = fj_new_array(doc);

		if (arr == NULL) {
			*err = GW_NOMEM;
			return false;
		}
		fj_append(arr, val);
		val = arr;
	}
	if (fj_set(doc, parent, prim ? under : key, val) != GW_OK) {
		*err = GW_NOMEM;
		return false;
	}
	return true;
}

enum gw_err
xf_check(struct fj_doc *doc, const struct rules_set *set,
	 struct validate_ctx *vctx, json_t *report)
{
	enum rules_fhir to = rules_set_fhir(set);
	struct xc_fill *fills = NULL;
	json_t *first = NULL, *second = NULL, *last;
	size_t nfills = 0, i;
	json_t *is;
	enum gw_err err;

	if (doc == NULL || doc->root == NULL)
		return GW_REJECT;
	if ((err = run_validator(vctx, doc->root, &first)) != GW_OK)
		goto done;
	if (fhir_outcome_errors(first) == 0)
		goto done;
	if ((fills = calloc(XC_FILL_MAX, sizeof(*fills))) == NULL) {
		err = GW_NOMEM;
		goto done;
	}
	json_array_foreach(json_object_get(first, "issue"), i, is)
	{
		const char *expr = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));

		if (nfills == XC_FILL_MAX)
			break;
		if (!fill_one(set, doc, is, &err)) {
			if (err != GW_OK)
				goto done;
			continue;
		}
		snprintf(fills[nfills++].path, XC_PATH_MAX, "%s", expr);
	}
	last = first;
	if (nfills > 0) {
		if ((err = run_validator(vctx, doc->root, &second)) != GW_OK)
			goto done;
		last = second;
	}
	if (fhir_outcome_errors(last) == 0) {
		for (i = 0; i < nfills && report != NULL; i++)
			if (fhir_outcome_add(
				report, FHIR_WARNING, "informational",
				fills[i].path, 0, 0,
				"the %s profile requires this element and "
				"the input has nothing for it: marked "
				"data-absent-reason 'unknown' in the output",
				vname(to)) != GW_OK) {
				err = GW_NOMEM;
				goto done;
			}
		goto done;
	}
	/* What no rule and no mark could meet: the output would be invalid,
	   so nothing is output; each finding names the output element. */
	err = GW_REJECT;
	json_array_foreach(json_object_get(last, "issue"), i, is)
	{
		const char *sev =
		    json_string_value(json_object_get(is, "severity"));
		const char *code =
		    json_string_value(json_object_get(is, "code"));
		const char *expr = json_string_value(
		    json_array_get(json_object_get(is, "expression"), 0));
		const char *diag =
		    json_string_value(json_object_get(is, "diagnostics"));

		if (report == NULL)
			break;
		if (sev == NULL || (strcmp(sev, FHIR_ERROR) != 0 &&
				    strcmp(sev, FHIR_FATAL) != 0))
			continue;
		if (fhir_outcome_add(
			report, FHIR_ERROR, code != NULL ? code : "invalid",
			expr, 0, 0,
			"the %s output would break this (no "
			"rule maps it, no standard mark fills "
			"it): %s",
			vname(to), diag != NULL ? diag : "invalid") != GW_OK) {
			err = GW_NOMEM;
			goto done;
		}
	}
done:
	free(fills);
	json_decref(second);
	json_decref(first);
	return err;
}
