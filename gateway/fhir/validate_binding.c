/*
 * validate_binding: value set bindings (required and extensible) and the
 * fixed[x] and pattern[x] values of element definitions.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_impl.h"

/* ---- bindings ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* True when some code of vs (any system) equals code. Small sets are
 * scanned; larger ones get a sorted index, once per context. */
bool
v_vs_has_code_ctx(struct validate_ctx *ctx, const struct rules_valueset *vs,
		  const char *code)
{
	struct vcodes *vc;

	if (vs->ncodes <= 16 || ctx == NULL) {
		for (size_t i = 0; i < vs->ncodes; i++)
			if (strcmp(vs->codes[i].code, code) == 0)
				return true;
		return false;
	}
	if ((vc = hmap_get(&ctx->vcodes, vs, NULL)) == NULL) {
		if ((vc = calloc(1, sizeof(*vc))) == NULL ||
		    (vc->codes = calloc(vs->ncodes, sizeof(*vc->codes))) ==
			NULL) {
			free(vc);
			return v_vs_has_code_ctx(NULL, vs, code);
		}
		for (size_t i = 0; i < vs->ncodes; i++)
			vc->codes[i] = vs->codes[i].code;
		vc->n = vs->ncodes;
		qsort(vc->codes, vc->n, sizeof(*vc->codes), cmp_str);
		if (hmap_put(&ctx->vcodes, vs, vc) != GW_OK) {
			free(vc->codes);
			free(vc);
			return v_vs_has_code_ctx(NULL, vs, code);
		}
	}
	return bsearch(&code, vc->codes, vc->n, sizeof(*vc->codes), cmp_str) !=
	       NULL;
}

static char vs_unknown; /* marker: the binding's value set is not loaded */

/* The value set of a binding URL, cached by the URL's (interned)
 * pointer. */
static const struct rules_valueset *
binding_vs(struct vrun *r, const char *url)
{
	void *hit = hmap_get(&r->ctx->vsets, url, NULL);
	const struct rules_valueset *vs;

	if (hit == (void *)&vs_unknown)
		return NULL;
	if (hit != NULL)
		return hit;
	vs = rules_valueset(r->ctx->set, url);
	(void)hmap_put(&r->ctx->vsets, url,
		       vs != NULL ? (void *)vs : (void *)&vs_unknown);
	return vs;
}

static const char *
strength_name(enum rules_strength s)
{
	return s == RULES_BIND_REQUIRED ? "required" : "extensible";
}

/* Value sets of at most this many codes are small: a finding lists the
 * first few allowed codes so the reader can fix the value at once. */
#define V_SMALL_VS   10
#define V_LIST_CODES 5

/* "the value set 'Title' (url), required binding[; allowed: ...]" into
 * out (bounded, always terminated). */
static void
describe_vs(const struct rules_valueset *vs, enum rules_strength strength,
	    char *out, size_t outsz)
{
	size_t n;
	int w;

	if (vs->title != NULL)
		w = snprintf(out, outsz,
			     "the value set '%.80s' (%.120s), %s binding",
			     vs->title, vs->url, strength_name(strength));
	else
		w = snprintf(out, outsz, "the value set %.120s, %s binding",
			     vs->url, strength_name(strength));
	if (w < 0 || (size_t)w >= outsz || vs->ncodes == 0 ||
	    vs->ncodes > V_SMALL_VS)
		return;
	n = (size_t)w;
	for (size_t i = 0; i < vs->ncodes && i < V_LIST_CODES; i++) {
		w = snprintf(out + n, outsz - n, "%s'%.40s'",
			     i == 0 ? "; allowed: " : ", ", vs->codes[i].code);
		if (w < 0 || (size_t)w >= outsz - n)
			return;
		n += (size_t)w;
	}
	if (vs->ncodes > V_LIST_CODES)
		snprintf(out + n, outsz - n, " (%zu codes in all)", vs->ncodes);
}

/* The description of value set vs at strength, written once per run
 * for the last few value sets (a Bundle repeats the same binding finding
 * in each of its resources); NULL without memory (r->nomem set). */
static const char *
vs_description(struct vrun *r, const struct rules_valueset *vs,
	       enum rules_strength strength)
{
	struct vdesc *d;

	for (size_t i = 0; i < V_DESC_CACHE; i++) {
		d = &r->desc[i];
		if (d->vs == vs && d->strength == strength && d->text != NULL)
			return d->text;
	}
	d = &r->desc[r->ndesc++ % V_DESC_CACHE];
	free(d->text);
	d->vs = vs;
	d->strength = strength;
	if ((d->text = malloc(640)) == NULL) {
		r->nomem = true;
		return NULL;
	}
	describe_vs(vs, strength, d->text, 640);
	return d->text;
}

/* A binding finding: head (printf-style), then the value set's
 * description. Nothing is written for a finding v_issue would not keep:
 * describing the value set for every coded element cost a sixth of the
 * gateway accept's validation. */
static void binding_issue(struct vrun *r, const char *sev,
			  const struct fj_node *v,
			  const struct rules_valueset *vs,
			  enum rules_strength strength, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
binding_issue(struct vrun *r, const char *sev, const struct fj_node *v,
	      const struct rules_valueset *vs, enum rules_strength strength,
	      const char *fmt, ...)
{
	char head[400], msg[768];
	const char *what;
	size_t hl, wl;
	va_list ap;
	int w;

	if (!v_keeps(r, sev))
		return;
	va_start(ap, fmt);
	w = vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if ((what = vs_description(r, vs, strength)) == NULL)
		return;
	/* head then the description, cut where v_issue's 768-byte buffer
	 * cut "%s%s" of the two */
	hl = w < 0 ? 0 : strnlen(head, sizeof(head));
	wl = strlen(what);
	if (hl + wl > sizeof(msg) - 1)
		wl = sizeof(msg) - 1 - hl;
	memcpy(msg, head, hl);
	memcpy(msg + hl, what, wl);
	v_issue_text(r, sev, "code-invalid", v, msg, hl + wl);
}

void
v_check_binding(struct vrun *r, const struct rules_element *el,
		const char *type, const struct fj_node *v)
{
	const struct rules_valueset *vs;
	const char *sev, *code, *system, *qcode = NULL, *qsys = NULL;
	bool ok = false, any = false;
	size_t ncodes = 0;
	enum rules_strength st = el->strength;

	if (el->valueset == NULL || v == NULL ||
	    (st != RULES_BIND_REQUIRED && st != RULES_BIND_EXTENSIBLE))
		return;
	if ((vs = binding_vs(r, el->valueset)) == NULL || !vs->complete)
		return;
	sev = st == RULES_BIND_REQUIRED ? FHIR_ERROR : FHIR_WARNING;
	if (v->type == FJ_STRING) {
		if (strcmp(type, "code") != 0 && strcmp(type, "string") != 0 &&
		    strcmp(type, "uri") != 0)
			return;
		if (!vs_has_code(vs, v->u.str.s))
			binding_issue(r, sev, v, vs, st,
				      "the code '%.80s' is not in ",
				      v->u.str.s);
		return;
	}
	if (v->type != FJ_OBJECT)
		return;
	if (strcmp(type, "Coding") == 0 || strcmp(type, "Quantity") == 0) {
		code = fj_get_str(v, "code");
		system = fj_get_str(v, "system");
		if (code == NULL)
			return;
		if (!(system != NULL ? rules_valueset_has(vs, system, code)
				     : vs_has_code(vs, code)))
			binding_issue(r, sev, v, vs, st,
				      "the code '%.80s' (system '%.120s') is "
				      "not in ",
				      code, system != NULL ? system : "(none)");
		return;
	}
	if (strcmp(type, "CodeableConcept") != 0)
		return;
	for (const struct fj_node *c =
		 fj_get(v, "coding") != NULL &&
			 fj_get(v, "coding")->type == FJ_ARRAY
		     ? fj_get(v, "coding")->u.kids.first
		     : NULL;
	     c != NULL; c = c->next) {
		code = fj_get_str(c, "code");
		system = fj_get_str(c, "system");
		if (code == NULL)
			continue;
		if (!any) {
			qcode = code;
			qsys = system;
		}
		any = true;
		ncodes++;
		if (system != NULL ? rules_valueset_has(vs, system, code)
				   : vs_has_code(vs, code))
			ok = true;
	}
	if (ok)
		return;
	if (!any) {
		if (st == RULES_BIND_REQUIRED)
			binding_issue(r, FHIR_ERROR, v, vs, st,
				      "no code provided, and a code is "
				      "required from ");
		return;
	}
	if (ncodes == 1)
		binding_issue(r, sev, v, vs, st,
			      "the code '%.80s' (system '%.120s') is not in ",
			      qcode, qsys != NULL ? qsys : "(none)");
	else
		binding_issue(r, sev, v, vs, st,
			      "none of the %zu codes provided (first: "
			      "'%.80s', system '%.120s') is in ",
			      ncodes, qcode, qsys != NULL ? qsys : "(none)");
}

/* ---- fixed and pattern ---- */

void
v_check_fixed(struct vrun *r, const struct rules_element *el,
	      const struct fj_node *v)
{
	char want[200];

	if (v == NULL)
		return;
	if (el->fixed != NULL && !fj_equal(v, el->fixed, FDEC_DOUBLE)) {
		v_short_json(el->fixed, want, sizeof(want));
		v_issue(r, FHIR_ERROR, "value", v,
			"value does not equal the fixed value %s (%s)", want,
			el->id);
	}
	if (el->pattern != NULL && !v_fj_contains_v(v, el->pattern)) {
		v_short_json(el->pattern, want, sizeof(want));
		v_issue(r, FHIR_ERROR, "value", v,
			"value does not match the pattern %s (%s)", want,
			el->id);
	}
}
