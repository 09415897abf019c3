/*
 * transform helpers shared by the driver (transform.c) and the per-type
 * rules (transform_consent.c, transform_zib.c, transform_care.c): the
 * report, element and extension edits, references inside the Bundle,
 * PractitionerRole references, version names (transform_impl.h). They
 * read no rule table, so the rule files depend on them and not on the
 * driver that reads their tables.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "outcome.h"
#include "transform_impl.h"

static bool
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* snprintf for FHIRPaths: a path too long for the buffer is cut. */
static void path_fmt(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
path_fmt(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, n, fmt, ap);
	va_end(ap);
}

/* ---- report ---- */

static enum gw_err
report_v(struct xf_ctx *c, const char *sev, const char *code, const char *rel,
	 const char *fmt, va_list ap)
{
	char path[XF_PATH_MAX + 128];
	char msg[512];

	if (c->report == NULL)
		return GW_OK;
	if (rel != NULL && rel[0] != '\0')
		path_fmt(path, sizeof(path), "%s.%s", c->path, rel);
	else
		path_fmt(path, sizeof(path), "%s", c->path);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	return fhir_outcome_add(c->report, sev, code, path, 0, 0, "%s", msg);
}

enum gw_err
xf_loss(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_WARNING, "informational", rel, fmt, ap);
	va_end(ap);
	return e;
}

enum gw_err
xf_note(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_INFORMATION, "informational", rel, fmt, ap);
	va_end(ap);
	return e;
}

enum gw_err
xf_refuse(struct xf_ctx *c, const char *rel, const char *fmt, ...)
{
	va_list ap;
	enum gw_err e;

	va_start(ap, fmt);
	e = report_v(c, FHIR_ERROR, "not-supported", rel, fmt, ap);
	va_end(ap);
	return e == GW_OK ? GW_REJECT : e;
}

/* ---- generic helpers ---- */

bool
xf_rename(struct fj_node *obj, const char *from, const char *to)
{
	struct fj_node *m = fj_get(obj, from);

	if (m == NULL)
		return false;
	/* A member already named `to` would make a duplicate key. */
	if (strcmp(from, to) != 0)
		fj_remove(obj, to);
	/* to is a literal of the rules: it outlives the document. */
	m->key = to;
	m->keylen = strlen(to);
	return true;
}

void
xf_arr_remove(struct fj_node *arr, struct fj_node *n)
{
	struct fj_node *p, *prev = NULL;

	for (p = arr->u.kids.first; p != NULL; prev = p, p = p->next) {
		if (p != n)
			continue;
		if (prev != NULL)
			prev->next = p->next;
		else
			arr->u.kids.first = p->next;
		if (arr->u.kids.last == p)
			arr->u.kids.last = prev;
		arr->u.kids.count--;
		p->next = NULL;
		return;
	}
}

struct fj_node *
xf_ext_find(const struct fj_node *obj, const char *url, bool modifier)
{
	const struct fj_node *arr =
	    fj_get(obj, modifier ? "modifierExtension" : "extension");

	if (arr == NULL || arr->type != FJ_ARRAY)
		return NULL;
	for (struct fj_node *e = arr->u.kids.first; e != NULL; e = e->next)
		if (e->type == FJ_OBJECT && fj_str_eq(fj_get(e, "url"), url))
			return e;
	return NULL;
}

struct fj_node *
xf_ext_take(struct fj_node *obj, const char *url, bool modifier)
{
	const char *key = modifier ? "modifierExtension" : "extension";
	struct fj_node *arr = fj_get(obj, key);
	struct fj_node *e = xf_ext_find(obj, url, modifier);

	if (e == NULL)
		return NULL;
	xf_arr_remove(arr, e);
	if (arr->u.kids.count == 0)
		fj_remove(obj, key);
	return e;
}

enum gw_err
xf_ext_add(struct xf_ctx *c, struct fj_node *obj, const char *url,
	   bool modifier, const char *valuekey, struct fj_node *val)
{
	const char *key = modifier ? "modifierExtension" : "extension";
	struct fj_node *arr = fj_get(obj, key);
	struct fj_node *e, *u;

	if (val == NULL || obj == NULL || obj->type != FJ_OBJECT)
		return GW_NOMEM;
	if (arr != NULL && arr->type != FJ_ARRAY)
		return GW_INVALID;
	if (arr == NULL) {
		if ((arr = fj_new_array(c->doc)) == NULL ||
		    fj_set(c->doc, obj, key, arr) != GW_OK)
			return GW_NOMEM;
	}
	if ((e = fj_new_object(c->doc)) == NULL ||
	    (u = fj_new_string(c->doc, url)) == NULL ||
	    fj_set(c->doc, e, "url", u) != GW_OK ||
	    fj_set(c->doc, e, valuekey, val) != GW_OK)
		return GW_NOMEM;
	fj_append(arr, e);
	return GW_OK;
}

struct fj_node *
xf_coding(struct xf_ctx *c, const char *system, const char *code,
	  const char *display)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *s, *k, *d;

	if (o == NULL || (s = fj_new_string(c->doc, system)) == NULL ||
	    fj_set(c->doc, o, "system", s) != GW_OK ||
	    (k = fj_new_string(c->doc, code)) == NULL ||
	    fj_set(c->doc, o, "code", k) != GW_OK)
		return NULL;
	if (display != NULL && ((d = fj_new_string(c->doc, display)) == NULL ||
				fj_set(c->doc, o, "display", d) != GW_OK))
		return NULL;
	return o;
}

struct fj_node *
xf_dar(struct xf_ctx *c, const char *code)
{
	struct fj_node *o = fj_new_object(c->doc);
	struct fj_node *u, *k;

	if (o == NULL || (u = fj_new_string(c->doc, XF_DAR_URL)) == NULL ||
	    fj_set(c->doc, o, "url", u) != GW_OK ||
	    (k = fj_new_string(c->doc, code)) == NULL ||
	    fj_set(c->doc, o, "valueCode", k) != GW_OK)
		return NULL;
	return o;
}

struct fj_node *
xf_resolve(const struct xf_ctx *c, const char *reference)
{
	const struct fj_node *entries;

	if (c->bundle == NULL || reference == NULL || reference[0] == '\0')
		return NULL;
	if (c->ents != NULL) {
		/* the same scan as below over the entries taken once */
		for (size_t i = 0; i < c->nents; i++) {
			const struct xf_entry *x = &c->ents[i];

			if (x->full != NULL && strcmp(x->full, reference) == 0)
				return x->res;
			if (x->type != NULL && x->id != NULL &&
			    strncmp(reference, x->type, x->type_len) == 0 &&
			    reference[x->type_len] == '/' &&
			    strcmp(reference + x->type_len + 1, x->id) == 0)
				return x->res;
		}
		return NULL;
	}
	entries = fj_get(c->bundle, "entry");
	if (entries == NULL || entries->type != FJ_ARRAY)
		return NULL;
	for (const struct fj_node *e = entries->u.kids.first; e != NULL;
	     e = e->next) {
		struct fj_node *res = fj_get(e, "resource");
		const char *full = fj_get_str(e, "fullUrl");
		const char *type = fj_get_str(res, "resourceType");
		const char *id = fj_get_str(res, "id");
		size_t tl;

		if (res == NULL || res->type != FJ_OBJECT)
			continue;
		if (full != NULL && strcmp(full, reference) == 0)
			return res;
		if (type == NULL || id == NULL)
			continue;
		/* "Type/id", also when an absolute fullUrl ends with it */
		tl = strlen(type);
		if (strncmp(reference, type, tl) == 0 && reference[tl] == '/' &&
		    strcmp(reference + tl + 1, id) == 0)
			return res;
	}
	return NULL;
}

/* A copy of Reference ref without extension (for the role extension). */
static struct fj_node *
ref_copy_plain(struct xf_ctx *c, const struct fj_node *ref)
{
	struct fj_node *o = fj_new_object(c->doc);

	if (o == NULL)
		return NULL;
	for (const struct fj_node *m = ref->u.kids.first; m != NULL;
	     m = m->next) {
		struct fj_node *v;
		char key[64];

		if (m->keylen >= sizeof(key) ||
		    (m->keylen == 9 && memcmp(m->key, "extension", 9) == 0))
			continue;
		memcpy(key, m->key, m->keylen);
		key[m->keylen] = '\0';
		if ((v = fj_copy(c->doc, m)) == NULL ||
		    fj_set(c->doc, o, key, v) != GW_OK)
			return NULL;
	}
	return o;
}

/* Move every member of src (an unlinked object) into ref, replacing
 * ref's members except its extension array, which stays. */
static enum gw_err
ref_replace(struct xf_ctx *c, struct fj_node *ref, struct fj_node *src)
{
	struct fj_node *ext = fj_get(ref, "extension");

	if (ext != NULL)
		fj_remove(ref, "extension");
	ref->u.kids.first = NULL;
	ref->u.kids.last = NULL;
	ref->u.kids.count = 0;
	for (struct fj_node *m = src->u.kids.first, *next; m != NULL;
	     m = next) {
		char key[64];

		next = m->next;
		if (m->keylen >= sizeof(key))
			continue;
		memcpy(key, m->key, m->keylen);
		key[m->keylen] = '\0';
		if (strcmp(key, "extension") == 0)
			continue;
		if (fj_set(c->doc, ref, key, m) != GW_OK)
			return GW_NOMEM;
	}
	if (ext != NULL && fj_set(c->doc, ref, "extension", ext) != GW_OK)
		return GW_NOMEM;
	return GW_OK;
}

/* Whether reference r names a PractitionerRole: "PractitionerRole/id",
 * or an absolute URL whose last type segment is PractitionerRole
 * ("https://host/fhir/PractitionerRole/id[/_history/v]"). */
static bool
names_role(const char *r)
{
	static const char seg[] = "/PractitionerRole/";
	const char *p;

	if (r == NULL)
		return false;
	if (has_prefix(r, seg + 1))
		return r[sizeof(seg) - 2] != '\0';
	for (p = strstr(r, seg); p != NULL; p = strstr(p + 1, seg)) {
		const char *id = p + sizeof(seg) - 1;
		const char *slash = strchr(id, '/');

		if (*id != '\0' && id[0] != '/' &&
		    (slash == NULL || has_prefix(slash, "/_history/")))
			return true;
	}
	return false;
}

/* R4 -> STU3 half of xf_role_ref. */
static enum gw_err
role_ref_to_stu3(struct xf_ctx *c, struct fj_node *ref, const char *rel)
{
	const char *r = fj_get_str(ref, "reference");
	struct fj_node *role = xf_resolve(c, r);
	const struct fj_node *prac = NULL;
	struct fj_node *orig, *nref;

	if (role != NULL) {
		if (!fj_str_eq(fj_get(role, "resourceType"),
			       "PractitionerRole"))
			return GW_OK;
		prac = fj_get(role, "practitioner");
	} else if (!names_role(r)) {
		return GW_OK;
	}
	if ((orig = ref_copy_plain(c, ref)) == NULL)
		return GW_NOMEM;
	if (prac != NULL && prac->type == FJ_OBJECT) {
		if ((nref = ref_copy_plain(c, prac)) == NULL)
			return GW_NOMEM;
		fj_remove(nref, "type");
	} else {
		/* The role's Practitioner is not known here: the reference
		   keeps only its display, the role goes in the extension. */
		struct fj_node *d;

		if ((nref = fj_new_object(c->doc)) == NULL)
			return GW_NOMEM;
		if (fj_get_str(ref, "display") != NULL &&
		    ((d = fj_new_string(c->doc, fj_get_str(ref, "display"))) ==
			 NULL ||
		     fj_set(c->doc, nref, "display", d) != GW_OK))
			return GW_NOMEM;
		if (xf_loss(c, rel,
			    "the Practitioner of %s is not in the Bundle; "
			    "the role reference is kept in the "
			    "practitionerrole-reference extension",
			    r) != GW_OK)
			return GW_NOMEM;
	}
	if (ref_replace(c, ref, nref) != GW_OK)
		return GW_NOMEM;
	return xf_ext_add(c, ref, XF_ROLE_REF_URL, false, "valueReference",
			  orig);
}

enum gw_err
xf_role_ref(struct xf_ctx *c, struct fj_node *ref, const char *rel)
{
	struct fj_node *ext, *val;

	if (ref == NULL || ref->type != FJ_OBJECT)
		return GW_OK;
	if (c->to == RULES_STU3)
		return role_ref_to_stu3(c, ref, rel);
	/* STU3 -> R4: the role reference in the extension wins. */
	if ((ext = xf_ext_take(ref, XF_ROLE_REF_URL, false)) == NULL)
		return GW_OK;
	val = fj_get(ext, "valueReference");
	if (val == NULL || val->type != FJ_OBJECT)
		return xf_loss(c, rel,
			       "practitionerrole-reference without a "
			       "valueReference is dropped");
	fj_remove(ext, "valueReference");
	{
		/* The Practitioner reference goes; it comes back from the
		   role when the role is in the Bundle and names it. */
		const char *pr = fj_get_str(ref, "reference");
		const char *pd = fj_get_str(ref, "display");
		const struct fj_node *role =
		    xf_resolve(c, fj_get_str(val, "reference"));
		const struct fj_node *rp = fj_get(role, "practitioner");
		const char *rpr = fj_get_str(rp, "reference");
		const char *rpd = fj_get_str(rp, "display");
		bool kept =
		    (pr == NULL || (rpr != NULL && strcmp(pr, rpr) == 0)) &&
		    (pd == NULL || (rpd != NULL && strcmp(pd, rpd) == 0));

		if (!kept &&
		    xf_loss(c, rel,
			    "R4 refers to the PractitionerRole only: the "
			    "Practitioner reference%s left out (the role "
			    "names its practitioner)",
			    pd != NULL ? " and its display are" : " is") !=
			GW_OK)
			return GW_NOMEM;
	}
	return ref_replace(c, ref, val);
}

bool
xf_version_parse(const char *s, enum rules_fhir *out)
{
	static const struct {
		const char *name;
		enum rules_fhir v;
	} names[] = {
	    {"stu3", RULES_STU3}, {"STU3", RULES_STU3}, {"r3", RULES_STU3},
	    {"R3", RULES_STU3},	  {"r4", RULES_R4},	{"R4", RULES_R4},
	};
	const char *p;

	if (s == NULL)
		return false;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].v;
			return true;
		}
	}
	/* "3.0", "3.0.2", "4.0", "4.0.1": major.minor[.patch] */
	if ((s[0] != '3' && s[0] != '4') || strncmp(s + 1, ".0", 2) != 0)
		return false;
	p = s + 3;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p != '\0')
		return false;
	*out = s[0] == '3' ? RULES_STU3 : RULES_R4;
	return true;
}

enum gw_err
xf_set_str(struct xf_ctx *c, struct fj_node *obj, const char *key,
	   const char *s)
{
	struct fj_node *v = fj_new_string(c->doc, s);

	if (v == NULL)
		return GW_NOMEM;
	return fj_set(c->doc, obj, key, v);
}

bool
xf_has_profile(const struct fj_node *res, const char *url)
{
	const struct fj_node *p = fj_get(fj_get(res, "meta"), "profile");

	if (p == NULL || p->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *k = p->u.kids.first; k != NULL; k = k->next)
		if (fj_str_eq(k, url))
			return true;
	return false;
}

bool
xf_is_profile(const struct fj_node *res, const char *url, const char *elem,
	      const char *code)
{
	const struct fj_node *p = fj_get(fj_get(res, "meta"), "profile");
	const struct fj_node *cod;

	if (xf_has_profile(res, url))
		return true;
	if (p != NULL && p->type == FJ_ARRAY && p->u.kids.count > 0)
		return false;
	if (code == NULL)
		return true;
	cod = fj_get(fj_get(res, elem), "coding");
	if (cod == NULL || cod->type != FJ_ARRAY)
		return false;
	for (const struct fj_node *k = cod->u.kids.first; k != NULL;
	     k = k->next)
		if (fj_str_eq(fj_get(k, "system"), XF_SNOMED) &&
		    fj_str_eq(fj_get(k, "code"), code))
			return true;
	return false;
}

enum gw_err
xf_role_refs(struct xf_ctx *c, struct fj_node *obj, const char *key,
	     const char *prefix)
{
	struct fj_node *m = fj_get(obj, key);
	char rel[XF_PATH_MAX];
	size_t i = 0;
	enum gw_err e;

	if (m == NULL)
		return GW_OK;
	if (m->type == FJ_OBJECT) {
		snprintf(rel, sizeof(rel), "%s%s", prefix, key);
		return xf_role_ref(c, m, rel);
	}
	if (m->type != FJ_ARRAY)
		return GW_OK;
	for (struct fj_node *k = m->u.kids.first; k != NULL; k = k->next, i++) {
		snprintf(rel, sizeof(rel), "%s%s[%zu]", prefix, key, i);
		if ((e = xf_role_ref(c, k, rel)) != GW_OK)
			return e;
	}
	return GW_OK;
}

void
xf_ref_type(const struct xf_ctx *c, const struct fj_node *ref, char *out,
	    size_t n)
{
	const char *r = fj_get_str(ref, "reference");
	const struct fj_node *res = xf_resolve(c, r);
	const char *t = fj_get_str(res, "resourceType");
	const char *slash, *start;

	out[0] = '\0';
	if (t != NULL) {
		snprintf(out, n, "%s", t);
		return;
	}
	if (r == NULL || (slash = strrchr(r, '/')) == NULL)
		return;
	/* the segment before the last "/" */
	for (start = slash; start > r && start[-1] != '/'; start--)
		;
	if ((size_t)(slash - start) < n)
		snprintf(out, n, "%.*s", (int)(slash - start), start);
}

enum gw_err
xf_drop_only(struct xf_ctx *c, struct fj_node *res,
	     const struct xf_only_in *only_in, const char *type)
{
	enum gw_err e;

	for (const struct xf_only_in *o = only_in; o->type != NULL; o++) {
		if (o->in != c->from || strcmp(o->type, type) != 0 ||
		    fj_get(res, o->key) == NULL)
			continue;
		if ((e = xf_loss(c, o->key,
				 "%s.%s has no %s counterpart and is left out",
				 type, o->key,
				 c->to == RULES_R4 ? "R4" : "STU3")) != GW_OK)
			return e;
		fj_remove(res, o->key);
	}
	return GW_OK;
}
